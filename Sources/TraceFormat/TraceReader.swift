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

    mutating func decodeChunk(_ b: UnsafeBufferPointer<UInt8>, from: Int, to end: Int) throws(TraceReadError) {
        var p = from
        func fail(_ what: String) -> TraceReadError { TraceReadError(file: file, reason: .corrupt(offset: p, what: what)) }
        func u() throws(TraceReadError) -> UInt64 {
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
        func s() throws(TraceReadError) -> Int64 { unzigzag(try u()) }
        func i32(_ v: Int64) throws(TraceReadError) -> Int32 {
            guard let x = Int32(exactly: v) else { throw fail("value out of range") }
            return x
        }
        /// A tid written as its difference from the pid (any 64-bit value a file can hold).
        func tid(_ pid: Int32) throws(TraceReadError) -> Int32 {
            let (v, overflow) = Int64(pid).addingReportingOverflow(try s())
            guard !overflow else { throw fail("value out of range") }
            return try i32(v)
        }
        func readPid() throws(TraceReadError) -> Int32 {
            let v = try u()
            guard v <= UInt64(UInt32.max) else { throw fail("pid out of range") }
            return Int32(bitPattern: UInt32(v))
        }
        func sid() throws(TraceReadError) -> UInt32 {
            let v = try u()
            guard v < UInt64(strings.count) else { throw fail("string id \(v) not defined yet") }
            return UInt32(v)
        }
        func readPath() throws(TraceReadError) -> PathRef { PathRef(dir: try sid(), base: try sid()) }
        func time() throws(TraceReadError) -> UInt64 {
            lastTime = lastTime &+ UInt64(bitPattern: try s())
            return lastTime
        }
        func byte() throws(TraceReadError) -> UInt8 {
            guard p < end else { throw fail("record runs past its chunk") }
            p += 1
            return b[p - 1]
        }

        while p < end {
            guard !ended else { throw fail("data after the end record") }
            let kindAt = p
            let k = b[p]; p += 1
            switch TraceWire.Kind(rawValue: k) {
            case .string:
                let len = try u()
                guard len <= UInt64(end - p) else { throw fail("string runs past its chunk") }
                let n = Int(len)
                strings.append(String(decoding: UnsafeBufferPointer(rebasing: b[p..<(p + n)]), as: UTF8.self))
                p += n
            case .meta:
                let k = try sid(), v = try sid()
                meta.append((strings[Int(k)], strings[Int(v)]))
            case .syscall:
                let pid = try readPid()
                let tid = try tid(pid)
                guard let call = FileCall(rawValue: try byte()) else { throw fail("unknown system call") }
                let bits = try u()
                let dirfd: Int32? = bits & TraceWire.sysHasDirfd != 0 ? try i32(try s()) : nil
                let path = try readPath()
                let resolved: PathRef? = bits & TraceWire.sysHasResolved != 0 ? try readPath() : nil
                let flags = try u()
                let result = try s()
                let t0 = try time()
                let dt = try u()
                events.append(.syscall(SyscallEvent(
                    pid: pid, tid: tid, call: call, dirfd: dirfd, path: path, resolved: resolved, flags: flags,
                    result: result, completed: bits & TraceWire.sysIncomplete == 0, own: bits & TraceWire.sysOwn != 0,
                    entryNs: t0, exitNs: t0 &+ dt, answered: bits & TraceWire.sysAnswered != 0)))
            case .audit:
                let pid = try readPid()
                guard let kind = AuditKind(rawValue: try byte()) else { throw fail("unknown audit record kind") }
                let flag = try u()
                guard flag <= UInt64(UInt16.max) else { throw fail("audit flag out of range") }
                let lmid = try i32(try s())
                let name = try readPath()
                let seq = try u()
                guard seq <= UInt64(UInt32.max) else { throw fail("audit sequence out of range") }
                events.append(.audit(AuditEvent(pid: pid, kind: kind, flag: UInt16(flag), lmid: lmid, name: name,
                                                seq: UInt32(seq), timeNs: try time())))
            case .process:
                let pid = try readPid()
                let tid = try tid(pid)
                let parent = try readPid()
                guard let how = ProcessStart(rawValue: try byte()) else { throw fail("unknown process start") }
                events.append(.process(ProcessEvent(pid: pid, tid: tid, parent: parent, how: how, timeNs: try time())))
            case .exec:
                let pid = try readPid()
                let former = try tid(pid)
                let path = try readPath()
                let argc = try u()
                guard argc <= UInt64(end - p) else { throw fail("argument count runs past its chunk") }
                var argv: [UInt32] = []
                argv.reserveCapacity(Int(argc))
                for _ in 0..<argc { argv.append(try sid()) }
                events.append(.exec(ExecEvent(pid: pid, formerTid: former, path: path, argv: argv, timeNs: try time())))
            case .exit:
                let pid = try readPid()
                let tid = try tid(pid)
                let status = try i32(try s())
                events.append(.exit(ExitEvent(pid: pid, tid: tid, status: status, timeNs: try time())))
            case .note:
                let pid = try readPid()
                events.append(.note(NoteEvent(pid: pid, text: try sid())))
            case .caller:
                guard version >= 2 else { throw fail("a CALLER record in a version \(version) trace") }
                let pid = try readPid()
                let tid = try tid(pid)
                let object = try readPath()
                let offset = try u()
                let depth = try u()
                guard depth <= UInt64(UInt32.max) else { throw fail("caller depth out of range") }
                events.append(.caller(CallerEvent(pid: pid, tid: tid, object: object, offset: offset,
                                                  depth: UInt32(depth), timeNs: try time())))
            case .object:
                guard version >= 3 else { throw fail("an OBJECT record in a version \(version) trace") }
                let path = try readPath()
                let device = try u(), inode = try u(), size = try u(), hash = try u()
                let bits = try u()
                let elfClass = try byte(), byteOrder = try byte(), osABI = try byte(), abiVersion = try byte()
                let type = try u(), machine = try u()
                guard type <= UInt64(UInt16.max), machine <= UInt64(UInt16.max) else { throw fail("object type or machine out of range") }
                let flags = try u(), flags1 = try u()
                func optional(_ bit: UInt64) throws(TraceReadError) -> UInt32? { bits & bit != 0 ? try sid() : nil }
                let interpreter = try optional(TraceWire.objInterpreter)
                let soname = try optional(TraceWire.objSoname)
                let rpath = try optional(TraceWire.objRpath)
                let runpath = try optional(TraceWire.objRunpath)
                let count = try u()
                guard count <= UInt64(end - p) else { throw fail("needed count runs past its chunk") }
                var needed: [UInt32] = []
                needed.reserveCapacity(Int(count))
                for _ in 0..<count { needed.append(try sid()) }
                objects.append(ObjectFacts(path: path, device: device, inode: inode, size: size, contentHash: hash,
                                           elfClass: elfClass, byteOrder: byteOrder, osABI: osABI, abiVersion: abiVersion,
                                           type: UInt16(type), machine: UInt16(machine),
                                           isDynamic: bits & TraceWire.objDynamic != 0, interpreter: interpreter,
                                           soname: soname, rpath: rpath, runpath: runpath, needed: needed,
                                           flags: flags, flags1: flags1))
            case .end:
                endNs = try time()
                ended = true
            case nil:
                p = kindAt
                throw fail("unknown record kind 0x\(String(k, radix: 16))")
            }
        }
    }
}
