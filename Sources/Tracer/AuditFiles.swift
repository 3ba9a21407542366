import CAudit
import TraceFormat
#if canImport(Glibc)
import Glibc
#endif

/// Reads the audit library's record files (`a-<pid>-<n>.lpa`, format in
/// loadprobe_wire.h) and moves their records into the trace.
public enum AuditFiles {
    public struct Segment {
        public var file: String
        public var pid: Int32
        public var ppid: Int32
        public var segment: UInt32
        public var imageId: UInt64
        public var imageStartNs: UInt64
        public var forked: Bool
    }

    public static func segmentFiles(in dir: String) -> [String] {
        guard let d = opendir(dir) else { return [] }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name.hasPrefix("a-") && name.hasSuffix(".lpa") { names.append(dir + "/" + name) }
        }
        return names.sorted()
    }

    /// Moves every segment in `dir` into the trace, decoding each record in
    /// place (a 900-library start-up leaves ~415,000 of them per process).
    /// Returns the number of records.
    @discardableResult
    static func drain(dir: String, into writer: TraceWriter, processEvents: Bool, rootPid: Int32,
                      notes: inout [String]) throws -> Int {
        var count = 0
        var announced: Set<Int32> = [rootPid]
        var headers = segmentFiles(in: dir).compactMap { f -> (String, Segment)? in
            readHeader(f).map { (f, $0) }
        }
        headers.sort { ($0.1.imageStartNs, $0.1.segment) < ($1.1.imageStartNs, $1.1.segment) }
        // A segment that rolled over ends in reserved-but-unused bytes by design;
        // only an image's last segment can end in a record cut by a kill.
        var lastSegment: [UInt64: UInt32] = [:]
        for (_, seg) in headers { lastSegment[seg.imageId] = max(lastSegment[seg.imageId] ?? 0, seg.segment) }
        for (file, seg) in headers {
            if processEvents && seg.segment == 0 && !announced.contains(seg.pid) {
                announced.insert(seg.pid)
                try writer.write(ProcessEvent(pid: seg.pid, tid: seg.pid, parent: seg.ppid,
                                              how: seg.forked ? .fork : .root, timeNs: seg.imageStartNs))
            }
            guard let body = readBody(file) else { continue }
            var cutShort = false
            try body.withUnsafeBytes { raw in
                var off = 0
                let got = raw.count
                while off + 32 <= got {
                    let kind = raw.loadUnaligned(fromByteOffset: off, as: UInt16.self)
                    let size = Int(raw.loadUnaligned(fromByteOffset: off + 4, as: UInt32.self))
                    let nameLen = Int(raw.loadUnaligned(fromByteOffset: off + 24, as: UInt32.self))
                    guard kind != 0, size >= 32, size % 8 == 0, off + size <= got, 32 + nameLen < size else { cutShort = true; break }
                    if let k = AuditKind(rawValue: UInt8(truncatingIfNeeded: kind)) {
                        let name = k == .activity || k == .preinit ? PathRef.none
                            : writer.internPath(bytes: UnsafeRawBufferPointer(rebasing: raw[(off + 32)..<(off + 32 + nameLen)]))
                        try writer.write(AuditEvent(
                            pid: raw.loadUnaligned(fromByteOffset: off + 16, as: Int32.self), kind: k,
                            flag: raw.loadUnaligned(fromByteOffset: off + 2, as: UInt16.self),
                            lmid: raw.loadUnaligned(fromByteOffset: off + 20, as: Int32.self), name: name,
                            seq: raw.loadUnaligned(fromByteOffset: off + 28, as: UInt32.self),
                            timeNs: raw.loadUnaligned(fromByteOffset: off + 8, as: UInt64.self)))
                        count += 1
                    }
                    off += size
                }
            }
            if cutShort && lastSegment[seg.imageId] == seg.segment {
                notes.append("pid \(seg.pid): the audit record being written when the process ended was incomplete and is left out")
            }
        }
        return count
    }

    static func readHeader(_ file: String) -> Segment? {
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var head = [UInt8](repeating: 0, count: Int(LP_AUDIT_HEADER_SIZE))
        guard pread(fd, &head, head.count, 0) == head.count, Array(head[0..<8]) == Array(LP_AUDIT_MAGIC.utf8) else { return nil }
        func u32(_ o: Int) -> UInt32 { UInt32(head[o]) | UInt32(head[o+1]) << 8 | UInt32(head[o+2]) << 16 | UInt32(head[o+3]) << 24 }
        func u64(_ o: Int) -> UInt64 { UInt64(u32(o)) | UInt64(u32(o + 4)) << 32 }
        guard u32(8) == LP_AUDIT_VERSION else { return nil }
        return Segment(file: file, pid: Int32(bitPattern: u32(32)), ppid: Int32(bitPattern: u32(36)),
                       segment: u32(40), imageId: u64(56), imageStartNs: u64(48), forked: u32(64) != 0)
    }

    /// The completed record bytes of a segment (header's `reserved`, bounded by capacity and file size).
    static func readBody(_ file: String) -> [UInt8]? {
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var head = [UInt8](repeating: 0, count: 32)
        guard pread(fd, &head, 32, 0) == 32 else { return nil }
        let headerSize = Int(head.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 12, as: UInt32.self) })
        let reserved = head.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 16, as: UInt64.self) }
        let capacity = head.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 24, as: UInt64.self) }
        let want = Int(min(reserved, capacity, UInt64(Int32.max)))
        var body = [UInt8](repeating: 0, count: want)
        var got = 0
        while got < want {
            let n = body.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + got, want - got, off_t(headerSize + got)) }
            if n <= 0 { break }
            got += n
        }
        body.removeSubrange(got...)
        return body
    }
}
