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
        public var records: [(kind: UInt8, flag: UInt16, timeNs: UInt64, pid: Int32, lmid: Int32, seq: UInt32, name: String)]
        /// Bytes that were reserved but never completed (a record cut by a kill).
        public var cutShort: Bool
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

    public static func read(_ file: String) -> Segment? {
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var head = [UInt8](repeating: 0, count: Int(LP_AUDIT_HEADER_SIZE))
        guard pread(fd, &head, head.count, 0) == head.count,
              Array(head[0..<8]) == Array(LP_AUDIT_MAGIC.utf8) else { return nil }
        func u32(_ b: [UInt8], _ o: Int) -> UInt32 { UInt32(b[o]) | UInt32(b[o+1]) << 8 | UInt32(b[o+2]) << 16 | UInt32(b[o+3]) << 24 }
        func u64(_ b: [UInt8], _ o: Int) -> UInt64 { UInt64(u32(b, o)) | UInt64(u32(b, o + 4)) << 32 }
        guard u32(head, 8) == LP_AUDIT_VERSION else { return nil }
        let headerSize = Int(u32(head, 12))
        let reserved = Int(min(u64(head, 16), u64(head, 24)))
        var seg = Segment(file: file, pid: Int32(bitPattern: u32(head, 32)), ppid: Int32(bitPattern: u32(head, 36)),
                          segment: u32(head, 40), imageId: u64(head, 56), imageStartNs: u64(head, 48),
                          forked: u32(head, 64) != 0, records: [], cutShort: false)
        guard reserved > 0 else { return seg }
        var body = [UInt8](repeating: 0, count: reserved)
        var got = 0
        while got < reserved {
            let n = body.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + got, reserved - got, off_t(headerSize + got)) }
            if n <= 0 { break }
            got += n
        }
        var off = 0
        while off + 32 <= got {
            let kind = UInt16(body[off]) | UInt16(body[off + 1]) << 8
            let size = Int(u32(body, off + 4))
            guard kind != 0, size >= 32, size % 8 == 0, off + size <= got else { seg.cutShort = true; break }
            let nameLen = Int(u32(body, off + 24))
            guard 32 + nameLen < size + 1, off + 32 + nameLen <= got else { seg.cutShort = true; break }
            let name = String(decoding: body[(off + 32)..<(off + 32 + nameLen)], as: UTF8.self)
            seg.records.append((kind: UInt8(truncatingIfNeeded: kind), flag: UInt16(body[off + 2]) | UInt16(body[off + 3]) << 8,
                                timeNs: u64(body, off + 8), pid: Int32(bitPattern: u32(body, off + 16)),
                                lmid: Int32(bitPattern: u32(body, off + 20)), seq: u32(body, off + 28), name: name))
            off += size
        }
        return seg
    }

    /// Moves every segment in `dir` into the trace. Returns the number of records.
    @discardableResult
    static func drain(dir: String, into writer: TraceWriter, processEvents: Bool, notes: inout [String]) throws -> Int {
        var count = 0
        var announced = Set<Int32>()
        var segments = segmentFiles(in: dir).compactMap(read)
        segments.sort { ($0.imageStartNs, $0.segment) < ($1.imageStartNs, $1.segment) }
        for seg in segments {
            if processEvents && seg.segment == 0 && !announced.contains(seg.pid) {
                announced.insert(seg.pid)
                try writer.write(ProcessEvent(pid: seg.pid, tid: seg.pid, parent: seg.ppid,
                                              how: seg.forked ? .fork : .root, timeNs: seg.imageStartNs))
            }
            for r in seg.records {
                guard let kind = AuditKind(rawValue: r.kind) else { continue }
                let name = kind == .image || kind == .objsearch || kind == .objopen || kind == .objclose
                    ? writer.internPath(r.name) : PathRef.none
                try writer.write(AuditEvent(pid: r.pid, kind: kind, flag: r.flag, lmid: r.lmid, name: name,
                                            seq: r.seq, timeNs: r.timeNs))
                count += 1
            }
            if seg.cutShort {
                notes.append("pid \(seg.pid): the audit record being written when the process ended was incomplete and is left out")
            }
        }
        return count
    }
}
