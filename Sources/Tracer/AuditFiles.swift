import CAudit
import TraceFormat
#if canImport(Glibc)
import Glibc
#endif

/// Moves the audit library's records (`a-<pid>-<n>.lpa`, format in
/// loadprobe_wire.h) into the trace. It can run while the program runs: each
/// `poll()` takes the records completed since the last one (a record is
/// complete once its `kind` is stored, which the library does last), so with
/// --no-ptrace the work overlaps the program's start-up instead of following it.
final class AuditDrain {
    struct Segment {
        var file: String
        var fd: Int32
        var pid: Int32
        var ppid: Int32
        var segment: UInt32
        var imageId: UInt64
        var imageStartNs: UInt64
        var forked: Bool
        var headerSize: Int
        var capacity: Int
        /// Bytes after the header already moved into the trace.
        var consumed = 0
    }

    let dir: String
    let writer: TraceWriter
    let processEvents: Bool
    private var segments: [String: Segment] = [:]
    private var announced: Set<Int32>
    private var buffer: [UInt8] = []
    private(set) var records = 0
    private(set) var notes: [String] = []

    /// `processEvents`: announce each process from its segment header (when no
    /// tracer reports processes). The root was announced by the recorder.
    init(dir: String, writer: TraceWriter, processEvents: Bool, rootPid: Int32) {
        self.dir = dir
        self.writer = writer
        self.processEvents = processEvents
        self.announced = [rootPid]
    }

    deinit {
        for s in segments.values { close(s.fd) }
    }

    /// Takes what is complete now. `final`: the program has ended; whatever is
    /// left incomplete in an image's last segment was cut by a kill.
    func poll(final: Bool = false) throws {
        for file in Self.segmentFiles(in: dir) where segments[file] == nil {
            if let s = Self.open(file) { segments[file] = s }
        }
        let ordered = segments.values.sorted { ($0.imageStartNs, $0.segment) < ($1.imageStartNs, $1.segment) }
        var lastSegment: [UInt64: UInt32] = [:]
        for s in ordered { lastSegment[s.imageId] = max(lastSegment[s.imageId] ?? 0, s.segment) }
        for var s in ordered {
            if processEvents && s.segment == 0 && !announced.contains(s.pid) {
                announced.insert(s.pid)
                try writer.write(ProcessEvent(pid: s.pid, tid: s.pid, parent: s.ppid,
                                              how: s.forked ? .fork : .root, timeNs: s.imageStartNs))
            }
            let cut = try take(&s)
            segments[s.file] = s
            // A segment that rolled over ends in reserved-but-unused bytes by
            // design; only an image's last segment can end in a cut record.
            if final && cut && lastSegment[s.imageId] == s.segment {
                notes.append("pid \(s.pid): the audit record being written when the process ended was incomplete and is left out")
            }
        }
    }

    /// Moves the complete records past `consumed`; returns true when it stopped
    /// at an incomplete one.
    private func take(_ s: inout Segment) throws -> Bool {
        var reserved: UInt64 = 0
        guard pread(s.fd, &reserved, 8, 16) == 8 else { return false }
        let end = min(Int(min(reserved, UInt64(Int32.max))), s.capacity)
        guard end > s.consumed else { return false }
        let want = end - s.consumed
        if buffer.count < want { buffer = [UInt8](repeating: 0, count: want) }
        var got = 0
        while got < want {
            let n = buffer.withUnsafeMutableBytes { pread(s.fd, $0.baseAddress! + got, want - got, off_t(s.headerSize + s.consumed + got)) }
            if n <= 0 { break }
            got += n
        }
        var off = 0
        var cut = false
        try buffer.withUnsafeBytes { raw in
            while off + 32 <= got {
                let kind = raw.loadUnaligned(fromByteOffset: off, as: UInt16.self)
                let size = Int(raw.loadUnaligned(fromByteOffset: off + 4, as: UInt32.self))
                let nameLen = Int(raw.loadUnaligned(fromByteOffset: off + 24, as: UInt32.self))
                guard kind != 0, size >= 32, size % 8 == 0, off + size <= got, 32 + nameLen < size else { cut = true; break }
                if let k = AuditKind(rawValue: UInt8(truncatingIfNeeded: kind)) {
                    let name = k == .activity || k == .preinit ? PathRef.none
                        : writer.internPath(bytes: UnsafeRawBufferPointer(rebasing: raw[(off + 32)..<(off + 32 + nameLen)]))
                    try writer.write(AuditEvent(
                        pid: raw.loadUnaligned(fromByteOffset: off + 16, as: Int32.self), kind: k,
                        flag: raw.loadUnaligned(fromByteOffset: off + 2, as: UInt16.self),
                        lmid: raw.loadUnaligned(fromByteOffset: off + 20, as: Int32.self), name: name,
                        seq: raw.loadUnaligned(fromByteOffset: off + 28, as: UInt32.self),
                        timeNs: raw.loadUnaligned(fromByteOffset: off + 8, as: UInt64.self)))
                    records += 1
                }
                off += size
            }
        }
        if off + 32 > got && off < got { cut = true }
        s.consumed += off
        return cut
    }

    static func open(_ file: String) -> Segment? {
        let fd = Glibc.open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        var head = [UInt8](repeating: 0, count: Int(LP_AUDIT_HEADER_SIZE))
        guard pread(fd, &head, head.count, 0) == head.count, Array(head[0..<8]) == Array(LP_AUDIT_MAGIC.utf8) else {
            close(fd)
            return nil
        }
        func u32(_ o: Int) -> UInt32 { head.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: o, as: UInt32.self) } }
        func u64(_ o: Int) -> UInt64 { head.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: o, as: UInt64.self) } }
        guard u32(8) == LP_AUDIT_VERSION else { close(fd); return nil }
        return Segment(file: file, fd: fd, pid: Int32(bitPattern: u32(32)), ppid: Int32(bitPattern: u32(36)),
                       segment: u32(40), imageId: u64(56), imageStartNs: u64(48), forked: u32(64) != 0,
                       headerSize: Int(u32(12)), capacity: Int(min(u64(24), UInt64(Int32.max))))
    }

    static func segmentFiles(in dir: String) -> [String] {
        guard let d = opendir(dir) else { return [] }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name.hasPrefix("a-") && name.hasSuffix(".lpa") { names.append(dir + "/" + name) }
        }
        return names
    }
}
