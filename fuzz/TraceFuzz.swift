// The trace fuzzer: well-formed traces written through TraceWriter (the
// recorder's own writer) whose field values are extreme, a share of them then
// damaged byte-wise, fed to everything that reads a trace in process.
import Foundation
import LoaderModel
import Report
import TraceFormat
#if canImport(Glibc)
import Glibc
#endif

enum TraceFuzz {
    static func one(seed: UInt64, scratch: String, stats: inout Stats) throws {
        var r = Random(state: seed)
        let a = scratch + "/a.lpt", b = scratch + "/b.lpt", c = scratch + "/c.lpt"
        try generate(&r, to: a, stats: &stats)
        if r.chance(25) { try damage(file: a, &r); stats.add("damaged") }
        var files = [a]
        if r.chance(35) {
            // A second trace: another run, the same one (a job's identical
            // ranks, priced once), or the same with byte damage.
            switch r.below(3) {
            case 0: try generate(&r, to: b, stats: &stats)
            case 1: try? FileManager.default.removeItem(atPath: b); try FileManager.default.copyItem(atPath: a, toPath: b)
            default: try generate(&r, to: b, stats: &stats); try damage(file: b, &r)
            }
            files.append(b)
            if r.chance(30) {
                try? FileManager.default.removeItem(atPath: c)
                try FileManager.default.copyItem(atPath: r.bool() ? a : b, toPath: c)
                files.append(c)
            }
        }
        Readers.readEverything(files, &r, stats: &stats)
    }

    /// One trace: a story of processes (mostly), or a soup of unrelated records.
    static func generate(_ r: inout Random, to path: String, stats: inout Stats) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw NSError(domain: "fuzz", code: Int(errno)) }
        let w = try TraceWriter(fd: fd, chunkBytes: r.chance(80) ? 1 << 20 : 1 << (6 + r.below(14)))
        var g = TraceStory(r: r, w: w)
        if r.chance(75) { try g.story(); stats.add("story") } else { try g.soup(); stats.add("soup") }
        r = g.r
    }

    /// Byte damage on a written trace: flips, extreme varints, cuts, a bad chunk length.
    static func damage(file: String, _ r: inout Random) throws {
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: file)))
        guard bytes.count > 24 else { return }
        for _ in 0..<(1 + r.below(4)) where bytes.count > 25 {
            let at = 16 + r.below(bytes.count - 16)
            switch r.below(7) {
            case 0: bytes[at] ^= UInt8(1 << r.below(8))
            case 1: bytes[at] = r.pick([0x00, 0x01, 0x7f, 0x80, 0xff])
            case 2: for i in at..<min(bytes.count, at + 10) { bytes[i] = 0xff }
            case 3: bytes.removeSubrange(at...)
            case 4: // a chunk length that runs past the end, or to zero
                if let chunk = (0..<(bytes.count - 8)).last(where: { bytes[$0] == 0x4c && bytes[$0 + 1] == 0x50 && bytes[$0 + 2] == 0x43 && bytes[$0 + 3] == 0x4b }) {
                    let v = UInt32(truncatingIfNeeded: r.extreme())
                    for i in 0..<4 { bytes[chunk + 4 + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) }
                }
            case 5: // a record kind byte replaced: another kind reads the following fields
                bytes[at] = r.pick([0x01, 0x02, 0x10, 0x20, 0x30, 0x31, 0x32, 0x40, 0x41, 0x50, 0x7f])
            default: // a block repeated: records (or string definitions) twice
                let n = min(1 + r.below(64), bytes.count - at)
                bytes.insert(contentsOf: bytes[at..<(at + n)], at: at)
            }
        }
        try Data(bytes).write(to: URL(fileURLWithPath: file))
    }
}

/// Writes one trace. `wild` is the chance (percent) that a field takes an
/// extreme value instead of a plausible one; it is chosen per trace.
struct TraceStory {
    var r: Random
    let w: TraceWriter
    var wild = 0
    var clock: UInt64 = 0
    /// 0 forward, 1 forward with jumps, 2 near 2^64 (wrapping), 3 backward.
    var clockMode = 0
    var budget = 0
    var nextPid: Int32 = 100
    var mode: RecordingMode? = .full

    // The trace's world: search directories, library names and the objects found.
    var rpathDirs: [[UInt8]] = []
    var libraryPathDirs: [[UInt8]] = []
    var systemDirs: [[UInt8]] = []
    var libraries: [[UInt8]] = []
    /// Library index → the indices it needs.
    var needs: [[Int]] = []
    /// Where each library is found: (search directory index in allDirs, subdirectory) or nil (missing).
    var location: [(dir: Int, sub: [UInt8])?] = []
    var allDirs: [(dir: [UInt8], flag: UInt16)] = []
    var programs: [[UInt8]] = []
    var found: [[UInt8]: (needed: [[UInt8]], soname: [UInt8]?)] = [:]
    var foundOrder: [[UInt8]] = []
    var callerObjects: [[UInt8]] = []

    init(r: Random, w: TraceWriter) {
        self.r = r
        self.w = w
    }

    // MARK: values

    var hit: Bool { mutating get { wild > 0 && r.below(100) < wild } }

    mutating func tick(_ typical: Int = 20_000) -> UInt64 {
        if hit { clock = r.chance(50) ? r.extreme() : clock &- UInt64(r.below(1_000_000_000)); return clock }
        switch clockMode {
        case 3: clock &-= UInt64(r.below(typical))
        case 1 where r.chance(3): clock &+= r.chance(50) ? r.extreme() : UInt64(r.below(1 << 40))
        default: clock &+= UInt64(r.below(typical))
        }
        return clock
    }

    mutating func tid(_ pid: Int32) -> Int32 { hit ? r.i32() : pid }
    mutating func pidField(_ pid: Int32) -> Int32 { hit ? r.i32() : pid }
    mutating func errnoResult(_ e: Int64) -> Int64 { hit ? r.i64() : -e }
    mutating func fdResult() -> Int64 { hit ? r.i64() : Int64(3 + r.below(60)) }

    mutating func ref(_ bytes: [UInt8]) -> PathRef { bytes.withUnsafeBytes { w.internPath(bytes: $0) } }
    mutating func id(_ bytes: [UInt8]) -> UInt32 { bytes.withUnsafeBytes { w.intern(bytes: $0) } }
    mutating func id(_ s: String) -> UInt32 { id(Array(s.utf8)) }

    /// A name, with a small chance of something odd in it.
    mutating func name(_ plain: String) -> [UInt8] {
        guard hit || r.chance(2) else { return Array(plain.utf8) }
        switch r.below(6) {
        case 0: return []
        case 1: return [UInt8](repeating: UInt8(ascii: "n"), count: 1 + r.below(4096))
        case 2: return Array(plain.utf8) + r.pick(OddBytes.fragments)
        case 3: return r.pick(OddBytes.fragments) + Array(plain.utf8)
        case 4: return Array("/".utf8) + Array(plain.utf8)
        default: return Array(plain.utf8) + Array("/".utf8)
        }
    }

    mutating func directory(_ plain: String) -> [UInt8] {
        guard hit || r.chance(2) else { return Array(plain.utf8) }
        switch r.below(8) {
        case 0: return []
        case 1: return Array("/".utf8)
        case 2: return Array("//".utf8)
        case 3: return Array(plain.utf8) + Array("/".utf8)
        case 4: return Array("relative/dir".utf8)
        case 5: return Array(plain.utf8) + [UInt8](repeating: UInt8(ascii: "d"), count: 4096)
        case 6: return Array(plain.utf8) + r.pick(OddBytes.fragments)
        default: return Array(String(repeating: "/a", count: 1 + r.below(1000)).utf8)
        }
    }

    static func join(_ dir: [UInt8], _ sub: [UInt8], _ name: [UInt8]) -> [UInt8] {
        (dir.last == UInt8(ascii: "/") ? dir : dir + [UInt8(ascii: "/")]) + sub + name
    }

    // MARK: the story

    /// A recording: metadata, a tree of processes that exec programs whose
    /// loaders search for libraries, then the loader's world (OBJECT records).
    mutating func story() throws {
        wild = r.pick([0, 0, 1, 1, 3, 10, 30])
        clockMode = r.pick([0, 0, 0, 1, 2, 3])
        clock = clockMode == 2 ? UInt64.max - UInt64(r.below(1 << 30)) : UInt64(r.below(1 << 40))
        mode = r.chance(85) ? r.pick([.full, .full, .full, .auditOnly, .ptraceOnly]) : nil
        budget = r.chance(92) ? 200 + r.below(3000) : 5000 + r.below(40_000)
        nextPid = r.chance(80) ? Int32(100 + r.below(100_000)) : r.i32()
        makeWorld()
        try metadata()
        let roots = r.chance(90) ? 1 : 1 + r.below(4)
        for _ in 0..<roots where budget > 0 { try process(parent: r.chance(90) ? 1 : r.i32(), how: .root, depth: 0) }
        // Many small processes: a job launcher, a shell script.
        if r.chance(8) {
            let n = 500 + r.below(4000)
            for _ in 0..<n where budget > 0 { try tinyProcess() }
        }
        try objects()
        switch r.below(20) {
        case 0: try w.flush(); w.close()                // no END: cut short
        case 1: try w.finish(endNs: r.extreme())
        default: try w.finish(endNs: tick())
        }
    }

    mutating func makeWorld() {
        let nDirs = r.chance(90) ? 1 + r.below(12) : 20 + r.below(130)
        rpathDirs = (0..<nDirs).map { directory("/opt/app\($0 % 3)/lib\($0)") }
        libraryPathDirs = (0..<r.below(4)).map { directory("/nfs/sw/pkg\($0)/lib") }
        systemDirs = [directory("/lib/x86_64-linux-gnu"), directory("/usr/lib/x86_64-linux-gnu"), directory("/lib"), directory("/usr/lib")]
        allDirs = rpathDirs.map { ($0, 0x04) } + libraryPathDirs.map { ($0, 0x02) } + systemDirs.map { ($0, 0x40) }
        if r.chance(30) {
            for i in stride(from: allDirs.count - 1, to: 0, by: -1) { allDirs.swapAt(i, r.below(i + 1)) }
        }
        let nLibs = r.chance(90) ? 1 + r.below(40) : 100 + r.below(400)
        libraries = (0..<nLibs).map { name("lib\($0).so.\($0 % 4)") }
        if r.chance(10) { libraries.append(Array("libc.so.6".utf8)) }
        if r.chance(5) { libraries.append(Array("/abs/path/libz.so.1".utf8)) }
        needs = libraries.indices.map { i in
            // Mostly a tree (each needs later ones); sometimes cycles and self-references.
            let n = r.chance(95) ? r.below(4) : r.below(libraries.count + 1)
            return (0..<n).map { _ in r.chance(90) && i + 1 < libraries.count ? i + 1 + r.below(libraries.count - i - 1) : r.below(libraries.count) }
        }
        location = libraries.map { _ in
            guard !allDirs.isEmpty, !r.chance(5) else { return nil }
            let sub: [UInt8] = r.chance(85) ? [] : Array(r.pick(["glibc-hwcaps/x86-64-v3/", "glibc-hwcaps/x86-64-v2/", "tls/", "x86_64/", "tls/x86_64/x86_64/"]).utf8)
            return (r.below(allDirs.count), sub)
        }
        programs = (0..<(1 + r.below(4))).map { i in
            r.chance(15) ? name("/usr/bin/python3.1\(i)") : name("/opt/app\(i)/bin/prog\(i)")
        }
        callerObjects = ["/bin/true", "/lib/x86_64-linux-gnu/libc.so.6", "/nonexistent/libx.so", "", "/proc/self/exe", "/dev/zero",
                         "/etc/passwd", "/"].map { Array($0.utf8) }
    }

    mutating func oddNumber() -> String {
        r.pick(["", "0", "-1", "1", "inf", "-inf", "nan", "1e308", "-0", "0x10", "99999999999999999999", "18446744073709551615",
                "9223372036854775807", "-9223372036854775808", "1.5", " 7", "7 ", "٣", String(r.next())])
    }

    mutating func metadata() throws {
        func m(_ key: MetaKey, _ value: String) throws { try w.meta(key, value) }
        if let mode { try m(.mode, mode.rawValue) } else if r.chance(50) { try m(.mode, r.pick(["", "ptrace+audit+x", "AUDIT", "\u{0}"])) }
        try m(.loadprobeVersion, r.chance(90) ? "0.9.0" : oddNumber())
        try m(.program, String(decoding: programs[0], as: UTF8.self))
        for _ in 0..<(r.chance(95) ? r.below(4) : r.below(3000)) { try m(.argv, r.pick(["-x", "", "--flag=1", String(repeating: "a", count: 4096)])) }
        if r.chance(90) { try m(.cwd, r.pick(["/home/u", "/", "", "relative", "/tmp/a b", String(repeating: "/c", count: 2000)])) }
        // The loader's variables.
        if r.chance(70) {
            let dirs = libraryPathDirs.map { String(decoding: $0, as: UTF8.self) }
            var value = dirs.joined(separator: ":")
            if hit { value = r.pick(["", ":", "::", "$ORIGIN", "$ORIGIN/../lib:$LIB", "/", String(repeating: "/x:", count: 3000), "\u{0}", ";"]) }
            try m(.env, "LD_LIBRARY_PATH=" + value)
        }
        if r.chance(15) { try m(.env, "LD_PRELOAD=" + r.pick(["libpre.so", "/opt/pre.so libq.so", "", ":"])) }
        if r.chance(15) { try m(.env, "PYTHONPATH=" + r.pick(["/p:/q", "", ":", "/", "rel", "/site-packages/", String(repeating: "/p", count: 2000)])) }
        if r.chance(10) { try m(.env, r.pick(["=", "NOEQUALS", "=value", "LD_LIBRARY_PATH", "PATH=/bin"])) }
        if r.chance(60) { try m(.host, r.chance(50) ? hostName() : r.pick(["node001", "", "\u{0}", "h\u{301}"])) }
        if r.chance(50) { try m(.machine, r.pick(["x86_64", "aarch64", ""])) }
        if r.chance(50) { try m(.kernel, "6.1.0") }
        if r.chance(70) {
            try m(.libc, r.chance(60) ? r.pick(["glibc 2.36", "glibc 2.31", "glibc 2.39", "glibc 2.33"])
                      : "glibc " + r.pick(["", "2", "2.", ".36", "0.0", "-1.-5", "2.99999999999999999999", "99999999999999999999.1",
                                          "9223372036854775807.9223372036854775807", "2.36.1", "2.36-9+deb12u4", "inf.nan", "２.３６"]))
        }
        if r.chance(30) { try m(.rank, oddNumber()) }
        if r.chance(30) { try m(.jobid, r.chance(50) ? oddNumber() : "job-\(r.below(100))") }
        for key in [MetaKey.startNs, .startUnix, .ownCalls, .answeredCalls, .callerUnwinds, .callerUnwindNs, .worldObjects, .worldNs] where r.chance(30) {
            try m(key, r.chance(60) ? String(r.below(1_000_000)) : oddNumber())
        }
        if r.chance(40) { try m(.auditLibrary, "/usr/lib/loadprobe/libloadprobe-audit.so") }
        if r.chance(40) { try m(.auditDir, "/dev/shm/loadprobe-x") }
        if r.chance(60) { try m(.mountinfo, mountinfo()) }
        // The recording host's glibc search rules: all four keys make the report use them.
        if r.chance(70) {
            let hw = hit ? (0..<r.below(200)).map { "lvl\($0)" } : r.pick([["x86-64-v3", "x86-64-v2"], [], ["x86-64-v4", "x86-64-v3", "x86-64-v2"]])
            let legacyCount = hit ? r.pick([0, 1, 5, 10, 20, 31, 62, 63, 64, 65, 100, 1000]) : r.below(3)
            let legacy = (0..<legacyCount).map { $0 == 0 ? "x86_64" : "cap\($0)" }
            try m(.loaderHwcaps, hw.joined(separator: r.chance(95) ? "," : ",,"))
            try m(.loaderLegacyHwcaps, legacy.joined(separator: ","))
            if r.chance(80) { try m(.loaderPlatform, hit ? r.pick(["", "/", "a/b", "$PLATFORM", String(repeating: "p", count: 4096)]) : "x86_64") }
            try m(.loaderLib, hit ? r.pick(["", "/", "..", "$LIB", "lib/../..", String(repeating: "l", count: 4096)]) : "lib/x86_64-linux-gnu")
            let dirs = systemDirs.map { String(decoding: $0, as: UTF8.self) + "/" }
            try m(.loaderDefaultDirs, hit ? r.pick(["", ":", "/", "relative:", String(repeating: "/d:", count: 2000)]) : dirs.joined(separator: ":"))
        }
        // Keys repeated, unknown keys, odd values.
        for _ in 0..<(r.chance(80) ? 0 : r.below(20)) {
            let key = r.pick(MetaKey.allCases.map(\.rawValue) + ["", "bogus", "loader.x", "mode ", "MODE"])
            try w.meta(key, r.chance(50) ? oddNumber() : String(decoding: r.pick(OddBytes.fragments), as: UTF8.self))
        }
    }

    mutating func mountinfo() -> String {
        var lines = ["22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw"]
        for (i, d) in (rpathDirs + libraryPathDirs).prefix(8).enumerated() where r.chance(50) {
            let fs = r.pick(["nfs", "nfs4", "lustre", "gpfs", "fuse.sshfs", "tmpfs", "ext4"])
            lines.append("\(40 + i) 22 0:\(50 + i) / \(String(decoding: d, as: UTF8.self)) rw - \(fs) srv:/x rw")
        }
        if hit {
            lines.append(r.pick(["", "garbage", "1 2 3", "36 25 0:23 / /mnt\\040space rw - nfs srv:/ rw", "- - - -",
                                 "99 1 0:1 / / rw - nfs", "4294967296 -1 x:y / /z rw - nfs s:/ rw", String(repeating: "x ", count: 5000)]))
        }
        return lines.joined(separator: "\n")
    }

    /// A process: start, an image (exec), perhaps children, more execs, threads, exit.
    mutating func process(parent: Int32, how: ProcessStart, depth: Int) throws {
        let pid = nextPid
        nextPid = nextPid &+ Int32(1 + r.below(3))
        let start = tick()
        if !(hit && r.chance(30)) {
            try w.write(ProcessEvent(pid: pid, tid: tid(pid), parent: pidField(parent), how: how, timeNs: start))
        }
        budget -= 1
        let exits = r.chance(95)
        if how == .root || r.chance(70) {
            try image(pid, program: r.pick(programs))
        } else {
            try calls(pid, count: r.below(10))
        }
        // Threads: their calls carry their own tid.
        if r.chance(20) {
            for _ in 0..<(1 + r.below(4)) where budget > 0 {
                let t = hit ? r.i32() : pid &+ Int32(1 + r.below(50))
                try w.write(ProcessEvent(pid: pid, tid: t, parent: pid, how: .thread, timeNs: tick()))
                try calls(pid, tid: t, count: r.below(8))
                if r.chance(80) { try w.write(ExitEvent(pid: pid, tid: t, status: 0, timeNs: tick())) }
            }
        }
        // Children, forked or vforked, that exec or not.
        if depth < 8 && budget > 0 {
            for _ in 0..<(r.chance(70) ? 0 : 1 + r.below(depth == 0 ? 6 : 3)) where budget > 0 {
                try process(parent: pid, how: r.pick([.fork, .fork, .vfork, .clone]), depth: depth + 1)
            }
        }
        // An exec chain: the same process runs other programs.
        if r.chance(15) {
            for _ in 0..<(r.chance(90) ? 1 + r.below(3) : 10 + r.below(40)) where budget > 0 {
                try image(pid, program: r.pick(programs))
            }
        }
        if exits {
            let status: Int32 = hit ? r.i32() : r.pick([0, 0, 256, 0x7f00, 9, 11, 0x8b, 0x7f, 0x137f])
            let t = r.chance(5) ? start &- UInt64(r.below(1_000_000)) : tick()   // exit before start, at times
            try w.write(ExitEvent(pid: pid, tid: r.chance(95) ? pid : tid(pid), status: status, timeNs: t))
        }
    }

    /// A process that makes a few calls (no image of its own, or a short one).
    mutating func tinyProcess() throws {
        let pid = nextPid
        nextPid = nextPid &+ 1
        budget -= 1
        try w.write(ProcessEvent(pid: pid, tid: pid, parent: pid &- 1, how: r.pick([.fork, .vfork, .clone]), timeNs: tick()))
        if r.chance(20) { try image(pid, program: r.pick(programs), brief: true) } else { try calls(pid, count: r.below(3)) }
        try w.write(ExitEvent(pid: pid, tid: pid, status: 0, timeNs: tick()))
    }

    var audit: Bool { mode != .ptraceOnly }
    var ptrace: Bool { mode != .auditOnly }

    mutating func syscall(_ pid: Int32, tid t: Int32? = nil, _ call: FileCall, _ path: [UInt8], resolved: [UInt8]? = nil,
                          dirfd: Int32? = nil, flags: UInt64 = 0, result: Int64, duration: Int = 3000) throws {
        guard ptrace else { return }
        budget -= 1
        let entry = tick()
        let own = r.chance(1)
        try w.write(SyscallEvent(pid: pid, tid: t ?? tid(pid), call: hit ? r.pick(FileCall.allCases) : call,
                                 dirfd: hit ? r.i32() : dirfd, path: ref(path), resolved: resolved.map { ref($0) },
                                 flags: hit ? r.extreme() : flags, result: result, completed: !(hit && r.chance(30)), own: own,
                                 entryNs: entry, exitNs: hit ? r.extreme() : entry &+ UInt64(r.below(duration)),
                                 answered: result < 0 && r.chance(20)))
    }

    mutating func auditRecord(_ pid: Int32, _ kind: AuditKind, flag: UInt16 = 0, name: [UInt8] = [], lmid: Int32 = 0, seq: inout UInt32) throws {
        guard audit else { return }
        budget -= 1
        try w.write(AuditEvent(pid: pidField(pid), kind: kind, flag: hit ? r.u16() : flag, lmid: hit ? r.i32() : lmid,
                               name: ref(name), seq: hit ? r.u32() : seq, timeNs: tick(2000)))
        seq &+= 1
    }

    /// Calls that are not the loader's: configuration files, Python imports, anything.
    mutating func calls(_ pid: Int32, tid t: Int32? = nil, count: Int) throws {
        for _ in 0..<count where budget > 0 {
            switch r.below(6) {
            case 0: try syscall(pid, tid: t, .openat, Array("/etc/passwd".utf8), dirfd: -100, flags: 0o2000000, result: fdResult())
            case 1: try syscall(pid, tid: t, .newfstatat, Array("/usr/lib/python3.11/site-packages/m\(r.below(50)).py".utf8), dirfd: -100, result: errnoResult(2))
            case 2: try syscall(pid, tid: t, .openat, Array("/usr/lib/python3.11/site-packages".utf8), dirfd: -100, flags: 0o200000, result: fdResult())
            case 3: try syscall(pid, tid: t, .access, Array("/etc/ld.so.preload".utf8), flags: 4, result: errnoResult(2))
            case 4: try syscall(pid, tid: t, r.pick(FileCall.allCases), name("data\(r.below(9)).txt"), resolved: r.chance(50) ? Array("/home/u/data.txt".utf8) : nil,
                                dirfd: r.chance(50) ? -100 : nil, flags: r.extreme(), result: hit ? r.i64() : r.chance(50) ? 0 : -Int64(1 + r.below(133)))
            default: try syscall(pid, tid: t, .readlink, Array("/proc/self/exe".utf8), result: Int64(r.below(4096)))
            }
        }
    }

    /// An exec and the loader's work for the image: start-up load, main, dlopens, exit.
    mutating func image(_ pid: Int32, program: [UInt8], brief: Bool = false) throws {
        var seq: UInt32 = hit ? r.u32() : 0
        // PATH search misses, then the execve that succeeds.
        for _ in 0..<(r.chance(80) ? 0 : r.below(4)) { try syscall(pid, .execve, name("/usr/local/bin/prog"), result: errnoResult(2)) }
        try syscall(pid, r.chance(95) ? .execve : .execveat, program, dirfd: nil, result: r.chance(97) ? 0 : r.i64())
        if ptrace || r.chance(30) {
            try w.write(ExecEvent(pid: pid, formerTid: tid(pid), path: ref(program),
                                  argv: (0..<(r.chance(97) ? 1 + r.below(4) : r.below(3000))).map { _ in id(name("arg")) }, timeNs: tick()))
        }
        try auditRecord(pid, .image, name: program, seq: &seq)
        if !found.keys.contains(program) { found[program] = (libraries.prefix(8).map { $0 }, nil); foundOrder.append(program) }
        try syscall(pid, .access, Array("/etc/ld.so.preload".utf8), flags: 4, result: errnoResult(2))
        try auditRecord(pid, .activity, flag: 1, seq: &seq)
        // The start-up load: breadth first over the needed graph.
        var loaded = Set<Int>()
        var queue = Array(0..<min(libraries.count, brief ? 2 : 8))
        var cacheRead = false
        var head = 0
        while head < queue.count && budget > 0 {
            let lib = queue[head]; head += 1
            guard loaded.insert(lib).inserted else { continue }
            if try search(pid, lib, seq: &seq, cacheRead: &cacheRead) {
                for n in needs[lib] where !loaded.contains(n) { queue.append(n) }
            }
            if queue.count > 5000 { break }
        }
        try auditRecord(pid, .activity, flag: 0, seq: &seq)
        // main (la_preinit): sometimes "before the start" (a time that went back).
        if r.chance(3) { clock &-= UInt64(r.below(1 << 30)) }
        if !(hit && r.chance(30)) { try auditRecord(pid, .preinit, seq: &seq) }
        if brief { return }
        if String(decoding: program, as: UTF8.self).contains("python") || r.chance(10) { try pythonImports(pid) }
        // dlopens from main: a caller, the search, the object.
        for _ in 0..<(r.chance(60) ? 0 : r.chance(90) ? 1 + r.below(5) : 20 + r.below(200)) where budget > 0 {
            if r.chance(70) {
                let object = r.chance(60) && !foundOrder.isEmpty ? r.pick(foundOrder) : r.pick(callerObjects)
                try w.write(CallerEvent(pid: pid, tid: tid(pid), object: r.chance(5) ? .none : ref(object),
                                        offset: hit || r.chance(20) ? r.extreme() : UInt64(0x1000 + r.below(0x10000)),
                                        depth: hit ? r.u32() : UInt32(r.below(6)), timeNs: tick()))
            }
            let lib = r.below(libraries.count)
            if r.chance(80) { try auditRecord(pid, .activity, flag: 1, seq: &seq) }
            _ = try search(pid, lib, seq: &seq, cacheRead: &cacheRead)
            for n in needs[lib].prefix(3) where budget > 0 { _ = try search(pid, n, seq: &seq, cacheRead: &cacheRead) }
            if r.chance(90) { try auditRecord(pid, .activity, flag: 0, seq: &seq) }
        }
        try calls(pid, count: r.below(10))
        // dlclose and the exit's unload.
        if r.chance(30) {
            try auditRecord(pid, .activity, flag: 2, seq: &seq)
            for p in foundOrder.prefix(r.below(5)) { try auditRecord(pid, .objclose, name: p, seq: &seq) }
            try auditRecord(pid, .activity, flag: 0, seq: &seq)
        }
    }

    /// One library search as glibc makes it: la_objsearch for the name, then per
    /// candidate its record, the open, the directory's stat after a miss; on a hit
    /// the fstat and la_objopen. Returns whether the library was found.
    mutating func search(_ pid: Int32, _ lib: Int, seq: inout UInt32, cacheRead: inout Bool) throws -> Bool {
        let libName = libraries[lib]
        try auditRecord(pid, .objsearch, flag: 1, name: libName, seq: &seq)
        if libName.contains(UInt8(ascii: "/")) {
            let ok = r.chance(70)
            try syscall(pid, .openat, libName, dirfd: -100, flags: 0o2000000, result: ok ? fdResult() : errnoResult(2))
            if ok { try hitObject(pid, path: libName, lib: lib, seq: &seq) }
            return ok
        }
        let target = location[lib]
        let subs: [[UInt8]] = r.chance(70) ? [[]] : ["glibc-hwcaps/x86-64-v3/", "glibc-hwcaps/x86-64-v2/", "tls/x86_64/", "x86_64/", ""].map { Array($0.utf8) }
        var cachePassed = false
        for (di, d) in allDirs.enumerated() where budget > 0 {
            // ld.so.cache: between LD_LIBRARY_PATH/RUNPATH and the default directories.
            if d.flag == 0x40 && !cachePassed {
                cachePassed = true
                if !cacheRead {
                    cacheRead = true
                    try syscall(pid, .openat, Array("/etc/ld.so.cache".utf8), dirfd: -100, flags: 0o2000000, result: fdResult())
                    try syscall(pid, .newfstatat, [], dirfd: 3, flags: 0x1000, result: 0)
                }
                if r.chance(20) {
                    let cand = TraceStory.join(systemDirs[0], [], libName)
                    try auditRecord(pid, .objsearch, flag: 0x08, name: cand, seq: &seq)
                    if target == nil || r.chance(30) {
                        try syscall(pid, .openat, cand, dirfd: -100, flags: 0o2000000, result: fdResult())
                        try hitObject(pid, path: cand, lib: lib, seq: &seq)
                        return true
                    }
                }
            }
            for sub in (d.flag == 0x40 && r.chance(50) ? [[]] : subs) {
                let cand = TraceStory.join(d.dir, sub, libName)
                let isHit = target.map { $0.dir == di && ($0.sub == sub || sub.isEmpty) } ?? false
                try auditRecord(pid, .objsearch, flag: d.flag | (r.chance(2) ? 0x80 : 0), name: cand, seq: &seq)
                try syscall(pid, .openat, cand, dirfd: -100, flags: 0o2000000, result: isHit ? fdResult() : errnoResult(r.chance(90) ? 2 : 20))
                if isHit {
                    try hitObject(pid, path: cand, lib: lib, seq: &seq)
                    return true
                }
                if r.chance(60) {
                    // The stat of the (sub)directory that did not have it.
                    let dir = TraceStory.join(d.dir, sub, [])
                    try syscall(pid, .newfstatat, Array(dir.dropLast()), dirfd: -100, result: r.chance(70) ? 0 : errnoResult(2))
                }
            }
        }
        return false
    }

    mutating func hitObject(_ pid: Int32, path: [UInt8], lib: Int, seq: inout UInt32) throws {
        try syscall(pid, .newfstatat, [], dirfd: 3, flags: 0x1000, result: 0)
        if r.chance(5) { try auditRecord(pid, .objsearch, flag: 0x04, name: path, seq: &seq) }  // rejected (wrong class), searched on
        try auditRecord(pid, .objopen, name: path, lmid: r.chance(97) ? 0 : Int32(r.below(16)), seq: &seq)
        if found[path] == nil {
            found[path] = (needs[lib].map { libraries[$0] }, libraries[lib])
            foundOrder.append(path)
        }
    }

    mutating func pythonImports(_ pid: Int32) throws {
        for i in 0..<(r.chance(90) ? r.below(30) : r.below(2000)) where budget > 0 {
            let dir = r.pick(["/usr/lib/python3.11", "/usr/lib/python3.11/site-packages", "/p", "/q/__pycache__", "/home/u"])
            switch r.below(4) {
            case 0: try syscall(pid, .newfstatat, Array("\(dir)/mod\(i).py".utf8), dirfd: -100, result: errnoResult(2))
            case 1: try syscall(pid, .openat, Array("\(dir)/__pycache__/mod\(i).cpython-311.pyc".utf8), dirfd: -100, flags: 0o2000000, result: fdResult())
            case 2: try syscall(pid, .openat, Array(dir.utf8), dirfd: -100, flags: 0o2200000, result: fdResult())
            default: try syscall(pid, .newfstatat, Array(dir.utf8), dirfd: -100, result: 0)
            }
        }
    }

    /// OBJECT records: the programs and the libraries found, with plausible or absurd facts.
    mutating func objects() throws {
        guard r.chance(85) else { return }
        var inode: UInt64 = 1000
        for path in foundOrder where !(hit && r.chance(30)) {
            let facts = found[path]!
            let isProgram = programs.contains(path)
            inode += 1
            let rpath = rpathDirs.map { String(decoding: $0, as: UTF8.self) }.joined(separator: ":")
            func text(_ s: String) -> UInt32 { id(s) }
            var needed = facts.needed.map { id($0) }
            if isProgram { needed = libraries.prefix(8).map { id($0) } }
            if hit { needed += (0..<r.pick([0, 1, 100, 3000])).map { _ in r.chance(50) ? needed.first ?? 0 : id("libx\(r.below(50)).so") } }
            if r.chance(3) { needed.append(id(path)) }  // an object that needs itself
            let interp: String? = isProgram || r.chance(5)
                ? (hit ? r.pick(["", "/lib/ld-musl-x86_64.so.1", "ld-musl-", "/x", String(repeating: "i", count: 4096), "/lib64/ld-linux-x86-64.so.2"]) : "/lib64/ld-linux-x86-64.so.2")
                : nil
            let rawRpath: String = hit ? r.pick(["", ":", "$ORIGIN", "$ORIGIN/../lib:$LIB:$PLATFORM", "${ORIGIN}/x", "$", "$$", "$ORIGIN$ORIGIN",
                                                  String(repeating: "$ORIGIN/", count: 500), String(repeating: "/r:", count: 3000), "/a\u{0}b"]) : rpath
            try w.write(ObjectFacts(
                path: ref(path), device: hit ? r.extreme() : 2049, inode: hit ? r.extreme() : r.chance(3) ? 1000 : inode,
                size: hit ? r.extreme() : UInt64(10_000 + r.below(1 << 24)), contentHash: r.next(),
                elfClass: hit ? UInt8(truncatingIfNeeded: r.extreme()) : 2, byteOrder: hit ? UInt8(truncatingIfNeeded: r.extreme()) : 1,
                osABI: hit ? UInt8(truncatingIfNeeded: r.extreme()) : 0, abiVersion: hit ? UInt8(truncatingIfNeeded: r.extreme()) : 0,
                type: hit ? r.u16() : isProgram && r.chance(30) ? 2 : 3, machine: hit ? r.u16() : 62, isDynamic: !(hit && r.chance(50)),
                interpreter: interp.map { text($0) }, soname: facts.soname.map { id($0) },
                rpath: isProgram && r.chance(50) ? text(rawRpath) : nil, runpath: isProgram && r.chance(30) ? text(rawRpath) : (hit ? text(rawRpath) : nil),
                needed: needed, flags: hit ? r.extreme() : 0, flags1: hit ? r.extreme() : r.pick([0, 0x8000001, 0x800, 1])))
        }
        // Objects for paths nothing opened, duplicates.
        for _ in 0..<(r.chance(90) ? 0 : r.below(50)) {
            let p = r.chance(50) && !foundOrder.isEmpty ? r.pick(foundOrder) : name("/ghost/lib\(r.below(9)).so")
            try w.write(ObjectFacts(path: ref(p), device: r.extreme(), inode: r.extreme(), size: r.extreme(), contentHash: r.next(),
                                    elfClass: 2, byteOrder: 1, osABI: 0, abiVersion: 0, type: 3, machine: 62, isDynamic: true,
                                    interpreter: nil, soname: r.chance(50) ? id(p) : nil, rpath: nil, runpath: nil,
                                    needed: [], flags: 0, flags1: 0))
        }
    }

    // MARK: the soup

    /// Records of every kind with unrelated extreme values: pids and times at random.
    mutating func soup() throws {
        wild = 20
        let badRefs = r.pick([0, 0, 0, 0, 1, 10])
        let paths = ["/", "", "/lib", "/usr/lib/x86_64-linux-gnu", "libc.so.6", "/lib/libm.so.6", "/nfs/app/lib", "relative/x",
                     "/proc/self/exe", "/usr/lib/python3.11/os.py", "/a/b/../c", String(repeating: "d/", count: 2048),
                     "/caf\u{e9}", "/\u{1F600}/lib.so", "/x/__pycache__/m.cpython-311.pyc", "/etc/ld.so.cache", "/etc",
                     "ld.so.cache", "/tmp/lp/lib1.so", "/tmp/lp/lib2.so", "/opt/glibc-hwcaps/x86-64-v3/libz.so.1"].map { Array($0.utf8) }
            + OddBytes.fragments
        for _ in 0..<r.below(12) { try w.meta(r.pick(MetaKey.allCases.map(\.rawValue)), oddNumber()) }
        if r.chance(70) { try w.meta(.mode, r.pick(RecordingMode.allCases).rawValue) }
        clock = r.chance(80) ? UInt64(r.below(1 << 30)) : r.extreme()
        func smallPid() -> Int32 { r.chance(80) ? Int32(1 + r.below(6)) : r.i32() }
        func pref() -> PathRef {
            r.below(100) < badRefs ? PathRef(dir: r.u32(), base: r.u32()) : ref(r.pick(paths))
        }
        func sid() -> UInt32 { r.below(100) < badRefs ? r.u32() : id(r.pick(paths)) }
        let count = r.chance(90) ? r.below(400) : r.below(20_000)
        for _ in 0..<count {
            switch r.below(10) {
            case 0:
                try w.write(ProcessEvent(pid: smallPid(), tid: smallPid(), parent: smallPid(),
                                         how: ProcessStart(rawValue: UInt8(r.below(5)))!, timeNs: tick()))
            case 1:
                try w.write(ExecEvent(pid: smallPid(), formerTid: smallPid(), path: pref(), argv: (0..<r.below(4)).map { _ in sid() }, timeNs: tick()))
            case 2:
                try w.write(ExitEvent(pid: smallPid(), tid: smallPid(), status: r.chance(70) ? Int32(r.below(0x10000)) : r.i32(), timeNs: tick()))
            case 3, 4, 5:
                let entry = tick()
                try w.write(SyscallEvent(pid: smallPid(), tid: smallPid(), call: r.pick(FileCall.allCases),
                                         dirfd: r.chance(50) ? nil : r.i32(), path: pref(), resolved: r.chance(70) ? nil : pref(),
                                         flags: r.extreme(), result: r.chance(60) ? -Int64(r.below(140)) : r.i64(),
                                         completed: r.chance(90), own: r.chance(10), entryNs: entry,
                                         exitNs: r.chance(90) ? entry &+ UInt64(r.below(10_000)) : r.extreme(), answered: r.chance(20)))
            case 6, 7:
                try w.write(AuditEvent(pid: smallPid(), kind: AuditKind(rawValue: UInt8(1 + r.below(6)))!,
                                       flag: r.chance(80) ? r.pick([0, 1, 2, 4, 8, 0x40, 0x80, 0x81]) : r.u16(),
                                       lmid: r.chance(90) ? 0 : r.i32(), name: pref(), seq: r.u32(), timeNs: tick()))
            case 8:
                if r.chance(50) {
                    try w.note(pid: smallPid(), oddNumber())
                } else {
                    try w.write(CallerEvent(pid: smallPid(), tid: smallPid(), object: pref(), offset: r.extreme(), depth: r.u32(), timeNs: tick()))
                }
            default:
                try w.write(ObjectFacts(path: pref(), device: r.extreme(), inode: r.extreme(), size: r.extreme(), contentHash: r.extreme(),
                                        elfClass: UInt8(r.below(4)), byteOrder: UInt8(r.below(4)), osABI: UInt8(truncatingIfNeeded: r.extreme()),
                                        abiVersion: UInt8(truncatingIfNeeded: r.extreme()), type: UInt16(r.below(5)),
                                        machine: r.chance(80) ? 62 : r.u16(), isDynamic: r.chance(80),
                                        interpreter: r.chance(50) ? sid() : nil, soname: r.chance(50) ? sid() : nil,
                                        rpath: r.chance(30) ? sid() : nil, runpath: r.chance(30) ? sid() : nil,
                                        needed: (0..<(r.chance(95) ? r.below(8) : r.below(3000))).map { _ in sid() },
                                        flags: r.extreme(), flags1: r.extreme()))
            }
        }
        if r.chance(85) { try w.finish(endNs: tick()) } else { try w.flush(); w.close() }
    }
}

/// This machine's name (a trace from "here" lets a report read the host's files).
func hostName() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    gethostname(&buffer, buffer.count - 1)
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
