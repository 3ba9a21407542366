import SystemLayer
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

public struct TraceWriteError: Error, CustomStringConvertible {
    public let description: String
}

/// Appends events to a trace file. Records are buffered and written a chunk at
/// a time, so a kill of loadprobe itself loses at most the last chunk; every
/// chunk on disk is complete and readable.
public final class TraceWriter {
    private let fd: Int32
    private var buffer: [UInt8] = []
    private var strings = ByteInterner()
    private var lastTime: UInt64 = 0
    private let chunkBytes: Int
    public private(set) var bytesWritten: Int = 0
    public private(set) var eventsWritten: Int = 0
    /// The first write that failed (a full disk, a quota, an I/O error): from
    /// then on records are dropped, not written, and nothing throws, so that
    /// the program runs on; the file is cut back to its last whole chunk and
    /// stays readable. `failedAtEvent` is the number of the first event lost.
    public private(set) var failure: TraceWriteError?
    public private(set) var failedAtEvent: Int?
    /// The files the program was seen to open, exec or map (successful opens
    /// without O_DIRECTORY, execs, la_objopen names), in first-seen order: the
    /// candidates for the OBJECT records written at the end (the loader's world).
    public private(set) var openedFiles: [PathRef] = []
    private var openedSeen = Set<PathRef>()
    /// The end record is written and the file closed: later records are dropped.
    public private(set) var finished = false
    /// Events in the buffer, not yet in the file.
    private var unflushedEvents = 0

    /// Takes ownership of `fd` (closed by `close()`).
    public init(fd: Int32, chunkBytes: Int = 1 << 20) throws {
        self.fd = fd
        self.chunkBytes = chunkBytes
        buffer.reserveCapacity(chunkBytes + 4096)
        var header = TraceWire.magic
        appendLE32(&header, TraceWire.version)
        appendLE32(&header, 0)
        try writeAll(header)
        if let failure { throw failure }
    }

    // MARK: strings and paths

    public func intern(_ s: String) -> UInt32 {
        var s = s
        return s.withUTF8 { intern(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// Interns raw bytes (a path as read from the traced process).
    public func intern(bytes: UnsafeRawBufferPointer) -> UInt32 {
        let (id, isNew) = strings.intern(bytes)
        if isNew {
            buffer.append(TraceWire.Kind.string.rawValue)
            putVar(UInt64(bytes.count))
            buffer.append(contentsOf: bytes)
        }
        return id
    }

    /// Interns a path as directory + base name (split at the last slash).
    public func internPath(_ path: String) -> PathRef {
        var path = path
        return path.withUTF8 { internPath(bytes: UnsafeRawBufferPointer($0)) }
    }

    public func internPath(bytes: UnsafeRawBufferPointer) -> PathRef {
        var slash = bytes.count - 1
        while slash >= 0 && bytes[slash] != UInt8(ascii: "/") { slash -= 1 }
        if slash < 0 { return PathRef(dir: 0, base: intern(bytes: bytes)) }
        let dir = intern(bytes: UnsafeRawBufferPointer(rebasing: bytes[0..<slash]))
        let base = intern(bytes: UnsafeRawBufferPointer(rebasing: bytes[(slash + 1)...]))
        return PathRef(dir: dir, base: base)
    }

    // MARK: records

    public func meta(_ key: String, _ value: String) throws {
        let k = intern(key), v = intern(value)
        buffer.append(TraceWire.Kind.meta.rawValue)
        putVar(UInt64(k)); putVar(UInt64(v))
        try record()
    }

    public func write(_ e: SyscallEvent) throws {
        buffer.append(TraceWire.Kind.syscall.rawValue)
        putVar(UInt64(UInt32(bitPattern: e.pid)))
        putSigned(Int64(e.tid) - Int64(e.pid))
        buffer.append(e.call.rawValue)
        var bits: UInt64 = 0
        if e.own { bits |= TraceWire.sysOwn }
        if !e.completed { bits |= TraceWire.sysIncomplete }
        if e.resolved != nil { bits |= TraceWire.sysHasResolved }
        if e.dirfd != nil { bits |= TraceWire.sysHasDirfd }
        if e.answered { bits |= TraceWire.sysAnswered }
        putVar(bits)
        if let d = e.dirfd { putSigned(Int64(d)) }
        putPath(e.path)
        if let r = e.resolved { putPath(r) }
        putVar(e.flags)
        putSigned(e.result)
        putTime(e.entryNs)
        putVar(e.exitNs >= e.entryNs ? e.exitNs - e.entryNs : 0)
        if e.result >= 0 && e.completed && !e.own && (e.call.isOpen && e.flags & 0o200000 == 0 || e.call.isExec) {
            noteOpened(e.resolved ?? e.path)
        }
        try record()
    }

    /// Called with each path `openedFiles` gains (the recorder reads the files meanwhile).
    public var onOpened: ((PathRef) -> Void)?

    /// Adds a file to `openedFiles` (a path seen opened or mapped).
    public func noteOpened(_ p: PathRef) {
        if p != .none && openedSeen.insert(p).inserted {
            openedFiles.append(p)
            onOpened?(p)
        }
    }

    /// The text of a path this writer interned.
    public func string(_ p: PathRef) -> String {
        let dir = strings.bytes(p.dir), base = strings.bytes(p.base)
        let d = String(decoding: dir, as: UTF8.self), b = String(decoding: base, as: UTF8.self)
        return p.dir == 0 ? b : d + "/" + b
    }

    public func write(_ e: AuditEvent) throws {
        buffer.append(TraceWire.Kind.audit.rawValue)
        putVar(UInt64(UInt32(bitPattern: e.pid)))
        buffer.append(e.kind.rawValue)
        putVar(UInt64(e.flag))
        putSigned(Int64(e.lmid))
        putPath(e.name)
        putVar(UInt64(e.seq))
        putTime(e.timeNs)
        if e.kind == .objopen || e.kind == .image { noteOpened(e.name) }
        try record()
    }

    public func write(_ e: ProcessEvent) throws {
        buffer.append(TraceWire.Kind.process.rawValue)
        putVar(UInt64(UInt32(bitPattern: e.pid)))
        putSigned(Int64(e.tid) - Int64(e.pid))
        putVar(UInt64(UInt32(bitPattern: e.parent)))
        buffer.append(e.how.rawValue)
        putTime(e.timeNs)
        try record()
    }

    public func write(_ e: ExecEvent) throws {
        noteOpened(e.path)
        buffer.append(TraceWire.Kind.exec.rawValue)
        putVar(UInt64(UInt32(bitPattern: e.pid)))
        putSigned(Int64(e.formerTid) - Int64(e.pid))
        putPath(e.path)
        putVar(UInt64(e.argv.count))
        for a in e.argv { putVar(UInt64(a)) }
        putTime(e.timeNs)
        try record()
    }

    public func write(_ e: ExitEvent) throws {
        buffer.append(TraceWire.Kind.exit.rawValue)
        putVar(UInt64(UInt32(bitPattern: e.pid)))
        putSigned(Int64(e.tid) - Int64(e.pid))
        putSigned(Int64(e.status))
        putTime(e.timeNs)
        try record()
    }

    public func note(pid: Int32, _ text: String) throws {
        try write(NoteEvent(pid: pid, text: intern(text)))
    }

    /// A note whose text is already interned in this writer.
    public func write(_ e: NoteEvent) throws {
        buffer.append(TraceWire.Kind.note.rawValue)
        putVar(UInt64(UInt32(bitPattern: e.pid)))
        putVar(UInt64(e.text))
        try record()
    }

    /// Any event whose string ids are this writer's.
    public func write(_ e: TraceEvent) throws {
        switch e {
        case .syscall(let x): try write(x)
        case .audit(let x): try write(x)
        case .process(let x): try write(x)
        case .exec(let x): try write(x)
        case .exit(let x): try write(x)
        case .note(let x): try write(x)
        case .caller(let x): try write(x)
        }
    }

    public func write(_ e: CallerEvent) throws {
        buffer.append(TraceWire.Kind.caller.rawValue)
        putVar(UInt64(UInt32(bitPattern: e.pid)))
        putSigned(Int64(e.tid) - Int64(e.pid))
        putPath(e.object)
        putVar(e.offset)
        putVar(UInt64(e.depth))
        putTime(e.timeNs)
        try record()
    }

    public func write(_ o: ObjectFacts) throws {
        buffer.append(TraceWire.Kind.object.rawValue)
        putPath(o.path)
        putVar(o.device); putVar(o.inode); putVar(o.size); putVar(o.contentHash)
        var bits: UInt64 = o.isDynamic ? TraceWire.objDynamic : 0
        if o.interpreter != nil { bits |= TraceWire.objInterpreter }
        if o.soname != nil { bits |= TraceWire.objSoname }
        if o.rpath != nil { bits |= TraceWire.objRpath }
        if o.runpath != nil { bits |= TraceWire.objRunpath }
        putVar(bits)
        buffer.append(o.elfClass); buffer.append(o.byteOrder); buffer.append(o.osABI); buffer.append(o.abiVersion)
        putVar(UInt64(o.type)); putVar(UInt64(o.machine))
        putVar(o.flags); putVar(o.flags1)
        for id in [o.interpreter, o.soname, o.rpath, o.runpath] { if let id { putVar(UInt64(id)) } }
        putVar(UInt64(o.needed.count))
        for id in o.needed { putVar(UInt64(id)) }
        try record()
    }

    /// Writes the end record and the last chunk, and closes the file.
    public func finish(endNs: UInt64) throws {
        if failure != nil || finished { close(); finished = true; return }
        buffer.append(TraceWire.Kind.end.rawValue)
        putTime(endNs)
        try flush()
        close()
        finished = true
    }

    /// Writes what is buffered as one chunk.
    public func flush() throws {
        guard !buffer.isEmpty else { return }
        if failure != nil || finished {
            buffer.removeAll(keepingCapacity: true)
            return
        }
        var chunk = TraceWire.chunkMagic
        appendLE32(&chunk, UInt32(buffer.count))
        chunk.append(contentsOf: buffer)
        buffer.removeAll(keepingCapacity: true)
        try writeAll(chunk)
    }

    public func close() {
        if fd >= 0 && !finished { _ = Glibc.close(fd) }
        finished = true
    }

    // MARK: encoding

    @inline(__always) private func record() throws {
        eventsWritten += 1
        unflushedEvents += 1
        if buffer.count >= chunkBytes { try flush() }
    }

    @inline(__always) private func putVar(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            buffer.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        buffer.append(UInt8(v))
    }

    @inline(__always) private func putSigned(_ v: Int64) { putVar(zigzag(v)) }

    @inline(__always) private func putPath(_ p: PathRef) {
        putVar(UInt64(p.dir)); putVar(UInt64(p.base))
    }

    @inline(__always) private func putTime(_ t: UInt64) {
        putSigned(Int64(bitPattern: t &- lastTime))
        lastTime = t
    }

    private func writeAll(_ bytes: [UInt8]) throws {
        do throws(SystemError) {
            try Sys.writeAll(fd, bytes)
        } catch {
            failure = TraceWriteError(description: "write failed: \(error)")
            // The first event of the chunk that did not reach the file.
            failedAtEvent = eventsWritten - unflushedEvents
            // A partial chunk would end the file in the middle of a record.
            _ = ftruncate(fd, off_t(bytesWritten))
            return
        }
        bytesWritten += bytes.count
        unflushedEvents = 0
    }
}

@inline(__always) func appendLE32(_ a: inout [UInt8], _ v: UInt32) {
    a.append(UInt8(v & 0xff)); a.append(UInt8((v >> 8) & 0xff))
    a.append(UInt8((v >> 16) & 0xff)); a.append(UInt8(v >> 24))
}
