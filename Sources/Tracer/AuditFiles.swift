import SystemLayer
import CAudit
import TraceFormat
#if canImport(Glibc)
import Glibc
#endif

/// Moves the audit library's records (`a-<pid>-<n>.lpa`, format in
/// loadprobe_wire.h) into the trace. It can run while the program runs: each
/// `poll()` takes the records completed since the last one (the library stores
/// a segment's `used` after each complete record), so with --no-ptrace the work
/// overlaps the program's start-up instead of following it.
///
/// Records name paths by per-segment directory and name ids; a string is
/// spelled out once per segment, where it is first used. The drain interns each
/// spelled-out string into the trace once and keeps the trace's id per audit id,
/// so a record costs a few byte reads and two array lookups.
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
        /// Decoder state: time of the last record, seq of the next one, the
        /// previous record's path (the next one is coded against it).
        var lastTime: UInt64
        var nextSeq: UInt32
        var prev: [UInt8] = []
        /// Where the previous path's last '/' is (-1: none), and its trace ids.
        var slash = -1
        var ref: PathRef?
        /// A record did not decode (the file is damaged): read no further.
        var broken = false
    }

    let dir: String
    let writer: TraceWriter
    let processEvents: Bool
    private var segments: [String: Segment] = [:]
    private var announced: Set<Int32>
    private var buffer: [UInt8] = []
    private var listedTime = timespec(tv_sec: -1, tv_nsec: 0)
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
        // List the directory only when it changed (a process started, exec'd or
        // rolled over to a new segment): one stat instead of five calls. The
        // change time has the kernel's coarse clock granularity, so a file made
        // within the tick of the last listing can wait for the next change, or
        // for the final poll, which always lists.
        var st = stat()
        let changed = stat(dir, &st) != 0 || st.st_mtim.tv_sec != listedTime.tv_sec || st.st_mtim.tv_nsec != listedTime.tv_nsec
        if final || changed {
            listedTime = st.st_mtim
            for file in Self.segmentFiles(in: dir) where segments[file] == nil {
                if let s = Self.open(file) { segments[file] = s }
            }
        }
        // The header fields only: a copy of the whole segment would share its
        // id tables and make take() copy them on the first append.
        let ordered = segments.values.sorted { ($0.imageStartNs, $0.segment) < ($1.imageStartNs, $1.segment) }
            .map { (file: $0.file, image: $0.imageId, segment: $0.segment, pid: $0.pid, ppid: $0.ppid,
                    forked: $0.forked, imageStartNs: $0.imageStartNs, fd: $0.fd) }
        for s in ordered {
            if processEvents && s.segment == 0 && !announced.contains(s.pid) {
                announced.insert(s.pid)
                try writer.write(ProcessEvent(pid: s.pid, tid: s.pid, parent: s.ppid,
                                              how: s.forked ? .fork : .root, timeNs: s.imageStartNs))
            }
            // in place: the segment's id tables are not copied
            try take(&segments[s.file]!)
        }
        guard final else { return }
        var lastSegment: [UInt64: UInt32] = [:]
        for s in ordered { lastSegment[s.image] = max(lastSegment[s.image] ?? 0, s.segment) }
        for s in ordered {
            // Bytes past `used` can only be a record its process did not finish
            // (killed while writing it), in the image's last segment.
            if lastSegment[s.image] == s.segment && endsInIncompleteRecord(segments[s.file]!) {
                notes.append("pid \(s.pid): the audit record being written when the process ended was incomplete and is left out")
            }
            var dropped: UInt32 = 0
            if pread(s.fd, &dropped, 4, AuditHeader.offset(\.dropped)) == 4 && dropped > 0 {
                notes.append("pid \(s.pid): the audit library gave up on \(dropped) record(s) (its lock was held too long)")
            }
        }
    }

    /// Whether the process ended in the middle of writing a record: every
    /// complete record was taken, and bytes follow `used`.
    private func endsInIncompleteRecord(_ s: Segment) -> Bool {
        var used: UInt64 = 0
        guard pread(s.fd, &used, 8, AuditHeader.offset(\.used)) == 8 else { return false }
        let end = min(Int(min(used, UInt64(Int32.max))), s.capacity)
        var tail: UInt64 = 0
        return s.consumed == end && end < s.capacity && pread(s.fd, &tail, 8, off_t(s.headerSize + end)) == 8 && tail != 0
    }

    /// Moves the complete records past `consumed`.
    private func take(_ s: inout Segment) throws {
        var used: UInt64 = 0
        guard pread(s.fd, &used, 8, AuditHeader.offset(\.used)) == 8 else { return }
        let end = min(Int(min(used, UInt64(Int32.max))), s.capacity)
        if end > s.consumed && !s.broken {
            let want = end - s.consumed
            if buffer.count < want { buffer = [UInt8](repeating: 0, count: want) }
            var got = 0
            while got < want {
                let n = buffer.withUnsafeMutableBytes { pread(s.fd, $0.baseAddress! + got, want - got, off_t(s.headerSize + s.consumed + got)) }
                if n <= 0 { break }
                got += n
            }
            let off = try buffer.withUnsafeBytes { raw in
                try decode(UnsafeRawBufferPointer(rebasing: raw[0..<got]), &s)
            }
            s.consumed += off
            if off < got && !s.broken {
                s.broken = true
                notes.append("pid \(s.pid): audit file \(s.file) is damaged at byte \(s.headerSize + s.consumed); the records after it are left out")
            }
        }
    }

    /// Decodes whole records of `raw` (wire format 3) into trace events;
    /// returns the bytes used. Stops early at a record that does not decode.
    private func decode(_ raw: UnsafeRawBufferPointer, _ s: inout Segment) throws -> Int {
        var c = AuditCursor(raw: raw)
        var done = 0
        while done < raw.count {
            guard let event = record(&c, &s) else { break }
            try writer.write(event)
            s.nextSeq &+= 1
            records += 1
            done = c.p
        }
        return done
    }

    /// The record at the cursor as a trace event, or nil when it does not
    /// decode (runs past the bytes, unknown kind, flag out of range).
    @inline(__always) private func record(_ c: inout AuditCursor, _ s: inout Segment) -> AuditEvent? {
        let b = c.byte()
        var flag = UInt64(b >> 4)
        if flag == UInt64(LP_AUDIT_FLAG_ESCAPE) { flag = c.varint() }
        let dt = c.varint()
        guard c.ok, let kind = AuditKind(rawValue: b & 0x0f), flag <= UInt64(UInt16.max) else { return nil }
        var lmid: Int64 = 0
        if kind == .objopen {
            let z = c.varint()
            lmid = Int64(bitPattern: z >> 1) ^ -Int64(bitPattern: z & 1)
        }
        var name = PathRef.none
        if kind != .activity && kind != .preinit {
            guard let ref = nextPath(&c, &s) else { return nil }
            name = ref
        }
        guard c.ok else { return nil }
        s.lastTime &+= dt
        return AuditEvent(pid: s.pid, kind: kind, flag: UInt16(flag), lmid: Int32(truncatingIfNeeded: lmid),
                          name: name, seq: s.nextSeq, timeNs: s.lastTime)
    }

    /// The record's path (front- and back-coded against the previous one),
    /// interned as directory + name; nil when the record is damaged.
    @inline(__always) private func nextPath(_ c: inout AuditCursor, _ s: inout Segment) -> PathRef? {
        let keep = Int(truncatingIfNeeded: c.varint())
        let tail = Int(truncatingIfNeeded: c.varint())
        let mid = Int(truncatingIfNeeded: c.varint())
        let plen = s.prev.count
        guard c.ok, keep >= 0, tail >= 0, mid >= 0, keep <= plen, tail <= plen - keep, mid <= c.raw.count - c.p else {
            c.ok = false
            return nil
        }
        let newBytes = UnsafeRawBufferPointer(rebasing: c.raw[c.p..<(c.p + mid)])
        if mid == plen - keep - tail {
            s.prev.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: keep).copyMemory(from: newBytes.baseAddress!, byteCount: mid) }
        } else {
            s.prev.replaceSubrange(keep..<(plen - tail), with: newBytes)
        }
        c.p += mid
        let ref = internPath(&s, keep: keep, tail: tail, previousLength: plen)
        s.ref = ref
        return ref
    }

    /// The trace ids of the path just rebuilt in `s.prev`. The directory or
    /// name that comes whole from the previous path keeps its id (ld.so tries
    /// one name in directory after directory): at most one look-up per candidate.
    @inline(__always) private func internPath(_ s: inout Segment, keep: Int, tail: Int, previousLength plen: Int) -> PathRef {
        let oldSlash = s.slash
        let previous = s.ref
        let (ref, slash) = s.prev.withUnsafeBytes { path -> (PathRef, Int) in
            let len = path.count
            var slash = len - 1
            while slash >= 0 && path[slash] != UInt8(ascii: "/") { slash -= 1 }
            // The name (and the '/' before it) came from the previous path's
            // end, which ended in a name of the same length: the same name.
            let sameName = previous != nil && len - slash == plen - oldSlash && tail >= len - slash
            // The directory came from the previous path's start, whose
            // directory had the same length.
            let sameDir = previous != nil && slash == oldSlash && keep >= max(slash, 0)
            let base = sameName ? previous!.base
                : writer.intern(bytes: UnsafeRawBufferPointer(rebasing: path[(slash + 1)...]))
            let dir = slash < 0 ? 0 : sameDir ? previous!.dir
                : writer.intern(bytes: UnsafeRawBufferPointer(rebasing: path[0..<slash]))
            return (PathRef(dir: dir, base: base), slash)
        }
        s.slash = slash
        return ref
    }

    static func open(_ file: String) -> Segment? {
        let fd = Glibc.open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        // The header as the audit library writes it (struct lp_audit_header).
        var h = lp_audit_header()
        let size = MemoryLayout<lp_audit_header>.size
        guard pread(fd, &h, size, 0) == size,
              withUnsafeBytes(of: h.magic, { Array($0) }) == Array(LP_AUDIT_MAGIC.utf8), h.version == LP_AUDIT_VERSION else {
            close(fd)
            return nil
        }
        return Segment(file: file, fd: fd, pid: h.pid, ppid: h.ppid,
                       segment: h.segment, imageId: h.image_id, imageStartNs: h.image_start_ns, forked: h.forked != 0,
                       headerSize: Int(h.header_size), capacity: Int(min(h.capacity, UInt64(Int32.max))),
                       lastTime: h.time_base_ns, nextSeq: h.first_seq)
    }

    static func segmentFiles(in dir: String) -> [String] {
        (Sys.listDirectory(dir) ?? []).map(\.name).filter { $0.hasPrefix("a-") && $0.hasSuffix(".lpa") }.map { dir + "/" + $0 }
    }
}

/// A read position in a segment's record bytes. A read past the end, or a
/// varint of more than ten bytes, clears `ok` (and gives 0) instead of
/// throwing: a record is checked once, at its end.
private struct AuditCursor {
    let raw: UnsafeRawBufferPointer
    var p = 0
    var ok = true

    init(raw: UnsafeRawBufferPointer) { self.raw = raw }

    @inline(__always) mutating func byte() -> UInt8 {
        guard p < raw.count else { ok = false; return 0 }
        let b = raw[p]
        p += 1
        return b
    }

    /// An unsigned LEB128 varint.
    @inline(__always) mutating func varint() -> UInt64 {
        var b = byte()
        if b < 0x80 { return UInt64(b) }
        var v = UInt64(b & 0x7f), shift: UInt64 = 7
        repeat {
            b = byte()
            guard shift < 64 else { ok = false; return 0 }
            v |= UInt64(b & 0x7f) << shift
            shift += 7
        } while b >= 0x80 && ok
        return v
    }
}

/// Where a field of the audit file header lies (struct lp_audit_header, shared with the audit library).
enum AuditHeader {
    static func offset(_ field: PartialKeyPath<lp_audit_header>) -> off_t {
        off_t(MemoryLayout<lp_audit_header>.offset(of: field)!)
    }
}
