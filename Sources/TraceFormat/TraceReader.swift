import SystemLayer
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a trace could not be read. `description` is one line that names the file.
public struct TraceReadError: Error, CustomStringConvertible, Equatable {
    public enum Reason: Equatable, Sendable {
        case unreadable(String)
        case notATrace
        case unsupportedVersion(UInt32)
        case truncated(offset: Int, recovered: Int)
        case corrupt(offset: Int, what: String)
        case incomplete(recovered: Int)
    }
    public let file: String
    public let reason: Reason

    public init(file: String, reason: Reason) {
        self.file = file
        self.reason = reason
    }

    public var description: String {
        switch reason {
        case .unreadable(let why): "\(file): cannot read: \(why)"
        case .notATrace: "\(file): not a loadprobe trace (no LPTRACE header)"
        case .unsupportedVersion(let v):
            "\(file): trace format version \(v) is not supported (this loadprobe reads versions \(TraceWire.oldestReadable) to \(TraceWire.version))"
        case .truncated(let off, let n):
            "\(file): truncated at byte \(off): the recording was cut short (\(n) events before it are readable; use --partial to read them)"
        case .corrupt(let off, let what): "\(file): corrupt at byte \(off): \(what)"
        case .incomplete(let n):
            "\(file): incomplete: the recording stopped before its end record (\(n) events are readable; use --partial to read them)"
        }
    }
}

/// A decoded trace: metadata, the string table and the events in file order.
public struct Trace: Sendable {
    public var version: UInt32
    public var meta: [(key: String, value: String)]
    /// strings[0] is the empty placeholder for id 0.
    public var strings: [String]
    public var events: [TraceEvent]
    /// The loader's world as recorded (OBJECT records, version 3), in file order.
    public var objects: [ObjectFacts] = []
    /// The end record was present.
    public var complete: Bool
    public var endNs: UInt64?
    public var fileBytes: Int

    public func string(_ id: UInt32) -> String { Int(id) < strings.count ? strings[Int(id)] : "" }

    public func path(_ p: PathRef) -> String {
        p.dir == 0 ? string(p.base) : string(p.dir) + "/" + string(p.base)
    }

    /// The first value of a metadata key.
    public func meta(_ key: String) -> String? { meta.first { $0.key == key }?.value }
    public func metaAll(_ key: String) -> [String] { meta.filter { $0.key == key }.map(\.value) }
}

public enum TraceReader {
    /// Reads a whole trace file. With `allowPartial`, a trace cut short (no end
    /// record, or a last chunk cut in the middle) gives what it holds.
    public static func read(file: String, allowPartial: Bool = false) throws(TraceReadError) -> Trace {
        let bytes: [UInt8]
        do { bytes = try readFile(file) } catch { throw TraceReadError(file: file, reason: .unreadable(error.description)) }
        return try decode(bytes, file: file, allowPartial: allowPartial)
    }

    public static func decode(_ bytes: [UInt8], file: String, allowPartial: Bool = false) throws(TraceReadError) -> Trace {
        guard bytes.count >= TraceWire.headerSize, Array(bytes[0..<8]) == TraceWire.magic else {
            throw TraceReadError(file: file, reason: .notATrace)
        }
        let version = le32(bytes, 8)
        guard version >= TraceWire.oldestReadable && version <= TraceWire.version else {
            throw TraceReadError(file: file, reason: .unsupportedVersion(version))
        }
        var decoder = Decoder(file: file, version: version)
        // A record takes ~16-20 bytes: reserve once instead of growing (and copying) the array.
        decoder.events.reserveCapacity(bytes.count / 16 + 16)
        adviseHugePages(&decoder.events)
        var off = TraceWire.headerSize
        var truncatedAt: Int?
        while off < bytes.count {
            if bytes.count - off < TraceWire.chunkHeaderSize { truncatedAt = off; break }
            guard bytes[off..<(off + 4)].elementsEqual(TraceWire.chunkMagic) else {
                throw TraceReadError(file: file, reason: .corrupt(offset: off, what: "expected a chunk header"))
            }
            let len = Int(le32(bytes, off + 4))
            let start = off + TraceWire.chunkHeaderSize
            if bytes.count - start < len { truncatedAt = off; break }
            try bytes.withUnsafeBufferPointer { buf throws(TraceReadError) in
                try decoder.decodeChunk(buf, from: start, to: start + len)
            }
            off = start + len
            if decoder.ended && off < bytes.count {
                throw TraceReadError(file: file, reason: .corrupt(offset: off, what: "data after the end record"))
            }
        }
        if let at = truncatedAt, !allowPartial {
            throw TraceReadError(file: file, reason: .truncated(offset: at, recovered: decoder.events.count))
        }
        if !decoder.ended && !allowPartial && truncatedAt == nil {
            throw TraceReadError(file: file, reason: .incomplete(recovered: decoder.events.count))
        }
        var trace = Trace(version: version, meta: decoder.meta, strings: decoder.strings, events: decoder.events,
                          complete: decoder.ended, endNs: decoder.endNs, fileBytes: bytes.count)
        trace.objects = decoder.objects
        return trace
    }

    static func readFile(_ path: String) throws(TraceWriteError) -> [UInt8] {
        // O_NONBLOCK: opening a FIFO must not wait for a writer; only regular files are read.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        if fd < 0 { throw TraceWriteError(description: Sys.describe(errno)) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw TraceWriteError(description: Sys.describe(errno)) }
        switch st.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: throw TraceWriteError(description: "is a directory")
        case S_IFIFO: throw TraceWriteError(description: "is a FIFO, not a trace file")
        case S_IFCHR, S_IFBLK: throw TraceWriteError(description: "is a device, not a trace file")
        default: throw TraceWriteError(description: "is not a regular file")
        }
        var out = [UInt8](repeating: 0, count: max(Int(st.st_size), 0))
        var got = 0
        while true {
            if got == out.count { out.append(contentsOf: [UInt8](repeating: 0, count: max(4096, out.count / 2))) }
            let n = out.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + got, $0.count - got) }
            if n < 0 {
                if errno == EINTR { continue }
                throw TraceWriteError(description: Sys.describe(errno))
            }
            if n == 0 { break }
            got += n
        }
        out.removeSubrange(got...)
        return out
    }
}

@inline(__always) func le32(_ b: [UInt8], _ o: Int) -> UInt32 {
    UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24
}

/// A read position inside one chunk: the bytes `[p, end)` are still to be
/// read. Every read checks `end`, so a record cut by its chunk's end fails
/// instead of reading the next chunk's header.
private struct ChunkCursor {
    let b: UnsafeBufferPointer<UInt8>
    var p: Int
    let end: Int
    let file: String

    /// The error for a record that does not decode, at the current position.
    func fail(_ what: String) -> TraceReadError { TraceReadError(file: file, reason: .corrupt(offset: p, what: what)) }

    /// An unsigned LEB128 varint.
    @inline(__always) mutating func u() throws(TraceReadError) -> UInt64 {
        var v: UInt64 = 0, shift: UInt64 = 0
        while true {
            guard p < end else { throw fail("record runs past its chunk") }
            let byte = b[p]; p += 1
            guard shift < 64 else { throw fail("varint too long") }
            v |= UInt64(byte & 0x7f) << shift
            if byte < 0x80 { return v }
            shift += 7
        }
    }

    /// A signed value, zigzag-coded as a varint.
    @inline(__always) mutating func s() throws(TraceReadError) -> Int64 { unzigzag(try u()) }

    @inline(__always) mutating func byte() throws(TraceReadError) -> UInt8 {
        guard p < end else { throw fail("record runs past its chunk") }
        p += 1
        return b[p - 1]
    }

    @inline(__always) func i32(_ v: Int64) throws(TraceReadError) -> Int32 {
        guard let x = Int32(exactly: v) else { throw fail("value out of range") }
        return x
    }

    /// A signed value that must fit 32 bits. (Not `i32(try s())`: that would
    /// take a copy of the cursor, and its offset, before `s()` moves it.)
    @inline(__always) mutating func s32() throws(TraceReadError) -> Int32 {
        let v = try s()
        return try i32(v)
    }

    @inline(__always) mutating func readPid() throws(TraceReadError) -> Int32 {
        let v = try u()
        guard v <= UInt64(UInt32.max) else { throw fail("pid out of range") }
        return Int32(bitPattern: UInt32(v))
    }

    /// A tid written as its difference from the pid (any 64-bit value a file can hold).
    @inline(__always) mutating func tid(_ pid: Int32) throws(TraceReadError) -> Int32 {
        let (v, overflow) = Int64(pid).addingReportingOverflow(try s())
        guard !overflow else { throw fail("value out of range") }
        return try i32(v)
    }
}

private struct Decoder {
    let file: String
    var strings: [String] = [""]
    var meta: [(key: String, value: String)] = []
    var events: [TraceEvent] = []
    var objects: [ObjectFacts] = []
    var lastTime: UInt64 = 0
    var ended = false
    var endNs: UInt64?

    let version: UInt32

    init(file: String, version: UInt32) { self.file = file; self.version = version }

    /// Decodes the records of `b[from..<end]`, one chunk's payload.
    mutating func decodeChunk(_ b: UnsafeBufferPointer<UInt8>, from: Int, to end: Int) throws(TraceReadError) {
        var c = ChunkCursor(b: b, p: from, end: end, file: file)
        while c.p < end {
            guard !ended else { throw c.fail("data after the end record") }
            let kindAt = c.p
            let k = b[c.p]; c.p += 1
            switch TraceWire.Kind(rawValue: k) {
            case .string: try stringRecord(&c)
            case .meta:
                let k = try sid(&c), v = try sid(&c)
                meta.append((strings[Int(k)], strings[Int(v)]))
            case .syscall: events.append(.syscall(try syscallRecord(&c)))
            case .audit: events.append(.audit(try auditRecord(&c)))
            case .process:
                let pid = try c.readPid()
                let tid = try c.tid(pid)
                let parent = try c.readPid()
                guard let how = ProcessStart(rawValue: try c.byte()) else { throw c.fail("unknown process start") }
                events.append(.process(ProcessEvent(pid: pid, tid: tid, parent: parent, how: how, timeNs: try time(&c))))
            case .exec: events.append(.exec(try execRecord(&c)))
            case .exit:
                let pid = try c.readPid()
                let tid = try c.tid(pid)
                let status = try c.s32()
                events.append(.exit(ExitEvent(pid: pid, tid: tid, status: status, timeNs: try time(&c))))
            case .note:
                let pid = try c.readPid()
                events.append(.note(NoteEvent(pid: pid, text: try sid(&c))))
            case .caller: events.append(.caller(try callerRecord(&c)))
            case .object: objects.append(try objectRecord(&c))
            case .end:
                endNs = try time(&c)
                ended = true
            case nil:
                c.p = kindAt
                throw c.fail("unknown record kind 0x\(String(k, radix: 16))")
            }
        }
    }

    // MARK: fields that depend on what came before

    /// A string id, which an earlier STRING record must have defined.
    @inline(__always) func sid(_ c: inout ChunkCursor) throws(TraceReadError) -> UInt32 {
        let v = try c.u()
        guard v < UInt64(strings.count) else { throw c.fail("string id \(v) not defined yet") }
        return UInt32(v)
    }

    @inline(__always) func readPath(_ c: inout ChunkCursor) throws(TraceReadError) -> PathRef {
        PathRef(dir: try sid(&c), base: try sid(&c))
    }

    /// A time, written as its difference from the previous record's.
    @inline(__always) mutating func time(_ c: inout ChunkCursor) throws(TraceReadError) -> UInt64 {
        lastTime = lastTime &+ UInt64(bitPattern: try c.s())
        return lastTime
    }

    /// A count of string ids, then the ids. A count larger than the bytes left
    /// in the chunk fails before anything is reserved for it.
    @inline(__always) func sidList(_ c: inout ChunkCursor, tooLong: String) throws(TraceReadError) -> [UInt32] {
        let count = try c.u()
        guard count <= UInt64(c.end - c.p) else { throw c.fail(tooLong) }
        var ids: [UInt32] = []
        ids.reserveCapacity(Int(count))
        for _ in 0..<count { ids.append(try sid(&c)) }
        return ids
    }

    // MARK: records

    mutating func stringRecord(_ c: inout ChunkCursor) throws(TraceReadError) {
        let len = try c.u()
        guard len <= UInt64(c.end - c.p) else { throw c.fail("string runs past its chunk") }
        let n = Int(len)
        strings.append(String(decoding: UnsafeBufferPointer(rebasing: c.b[c.p..<(c.p + n)]), as: UTF8.self))
        c.p += n
    }

    @inline(__always) mutating func syscallRecord(_ c: inout ChunkCursor) throws(TraceReadError) -> SyscallEvent {
        let pid = try c.readPid()
        let tid = try c.tid(pid)
        guard let call = FileCall(rawValue: try c.byte()) else { throw c.fail("unknown system call") }
        let bits = try c.u()
        let dirfd: Int32? = bits & TraceWire.sysHasDirfd != 0 ? try c.s32() : nil
        let path = try readPath(&c)
        let resolved: PathRef? = bits & TraceWire.sysHasResolved != 0 ? try readPath(&c) : nil
        let flags = try c.u()
        let result = try c.s()
        let t0 = try time(&c)
        let dt = try c.u()
        return SyscallEvent(
            pid: pid, tid: tid, call: call, dirfd: dirfd, path: path, resolved: resolved, flags: flags,
            result: result, completed: bits & TraceWire.sysIncomplete == 0, own: bits & TraceWire.sysOwn != 0,
            entryNs: t0, exitNs: t0 &+ dt, answered: bits & TraceWire.sysAnswered != 0)
    }

    @inline(__always) mutating func auditRecord(_ c: inout ChunkCursor) throws(TraceReadError) -> AuditEvent {
        let pid = try c.readPid()
        guard let kind = AuditKind(rawValue: try c.byte()) else { throw c.fail("unknown audit record kind") }
        let flag = try c.u()
        guard flag <= UInt64(UInt16.max) else { throw c.fail("audit flag out of range") }
        let lmid = try c.s32()
        let name = try readPath(&c)
        let seq = try c.u()
        guard seq <= UInt64(UInt32.max) else { throw c.fail("audit sequence out of range") }
        return AuditEvent(pid: pid, kind: kind, flag: UInt16(flag), lmid: lmid, name: name,
                          seq: UInt32(seq), timeNs: try time(&c))
    }

    mutating func execRecord(_ c: inout ChunkCursor) throws(TraceReadError) -> ExecEvent {
        let pid = try c.readPid()
        let former = try c.tid(pid)
        let path = try readPath(&c)
        let argv = try sidList(&c, tooLong: "argument count runs past its chunk")
        return ExecEvent(pid: pid, formerTid: former, path: path, argv: argv, timeNs: try time(&c))
    }

    mutating func callerRecord(_ c: inout ChunkCursor) throws(TraceReadError) -> CallerEvent {
        guard version >= 2 else { throw c.fail("a CALLER record in a version \(version) trace") }
        let pid = try c.readPid()
        let tid = try c.tid(pid)
        let object = try readPath(&c)
        let offset = try c.u()
        let depth = try c.u()
        guard depth <= UInt64(UInt32.max) else { throw c.fail("caller depth out of range") }
        return CallerEvent(pid: pid, tid: tid, object: object, offset: offset, depth: UInt32(depth), timeNs: try time(&c))
    }

    mutating func objectRecord(_ c: inout ChunkCursor) throws(TraceReadError) -> ObjectFacts {
        guard version >= 3 else { throw c.fail("an OBJECT record in a version \(version) trace") }
        let path = try readPath(&c)
        let device = try c.u(), inode = try c.u(), size = try c.u(), hash = try c.u()
        let bits = try c.u()
        let elfClass = try c.byte(), byteOrder = try c.byte(), osABI = try c.byte(), abiVersion = try c.byte()
        let type = try c.u(), machine = try c.u()
        guard type <= UInt64(UInt16.max), machine <= UInt64(UInt16.max) else { throw c.fail("object type or machine out of range") }
        let flags = try c.u(), flags1 = try c.u()
        // The dynamic section's optional strings, each present when its bit is set.
        let interpreter = bits & TraceWire.objInterpreter != 0 ? try sid(&c) : nil
        let soname = bits & TraceWire.objSoname != 0 ? try sid(&c) : nil
        let rpath = bits & TraceWire.objRpath != 0 ? try sid(&c) : nil
        let runpath = bits & TraceWire.objRunpath != 0 ? try sid(&c) : nil
        let needed = try sidList(&c, tooLong: "needed count runs past its chunk")
        return ObjectFacts(path: path, device: device, inode: inode, size: size, contentHash: hash,
                           elfClass: elfClass, byteOrder: byteOrder, osABI: osABI, abiVersion: abiVersion,
                           type: UInt16(type), machine: UInt16(machine),
                           isDynamic: bits & TraceWire.objDynamic != 0, interpreter: interpreter,
                           soname: soname, rpath: rpath, runpath: runpath, needed: needed,
                           flags: flags, flags1: flags1)
    }
}
