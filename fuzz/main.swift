// loadprobe-fuzz: structure-aware fuzzing of the trace readers and the ELF
// reader (docs/fuzzing.md). Each input is generated from a seed; a crash
// (a Swift trap, a signal) ends the process, and the seed printed before the
// input reproduces it: `loadprobe-fuzz trace --seed N --count 1`.
import Foundation
import LoaderModel
import Report
import TestSupport
import TraceFormat

/// The whole input follows from the seed.
typealias Random = SplitMix64

extension SplitMix64 {
    mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
    mutating func pick<T>(_ a: [T]) -> T { a[below(a.count)] }

    static let edges64: [UInt64] = [0, 1, 2, 7, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff,
                                    0x1_0000_0000, 0x7fff_ffff_ffff_ffff, 0x8000_0000_0000_0000, .max, .max - 1]
    /// A value near an edge, or anything.
    mutating func extreme() -> UInt64 {
        switch below(4) {
        case 0: return pick(Self.edges64)
        case 1: return pick(Self.edges64) &+ UInt64(below(3)) &- 1
        case 2: return UInt64(below(1000))
        default: return next()
        }
    }
    mutating func i32() -> Int32 { Int32(truncatingIfNeeded: extreme()) }
    mutating func i64() -> Int64 { Int64(bitPattern: extreme()) }
    mutating func smallPid() -> Int32 { chance(80) ? Int32(1 + below(6)) : i32() }
}

// MARK: traces

enum TraceFuzz {
    static let paths = ["/", "", "/lib", "/usr/lib/x86_64-linux-gnu", "libc.so.6", "/lib/libm.so.6", "/nfs/app/lib", "relative/x",
                        "/proc/self/exe", "/usr/lib/python3.11/os.py", "/a/b/../c", String(repeating: "d/", count: 2048),
                        "/caf\u{e9}", "/\u{1F600}/lib.so", "/x/__pycache__/m.cpython-311.pyc", "/etc/ld.so.cache",
                        "/tmp/lp/lib1.so", "/tmp/lp/lib2.so", "/opt/glibc-hwcaps/x86-64-v3/libz.so.1"]
    static let metaKeys = MetaKey.allCases.map(\.rawValue) + ["", "bogus", "loader.x"]
    static let metaValues = ["", "0", "-1", "1", "inf", "nan", "-inf", "1e308", "99999999999999999999", "ptrace+audit", "audit",
                             "ptrace", "LD_LIBRARY_PATH=/a::/b:", "PYTHONPATH=/p:/q", "x86-64-v4,x86-64-v3", ":", ",",
                             "glibc 2.36", "36 25 0:23 / / rw - ext4 /dev/sda rw\n37 36 0:40 / /nfs rw - nfs srv:/ rw",
                             String(repeating: "z", count: 5000)]

    /// A well-formed trace with extreme values, written through TraceWriter.
    static func generate(_ r: inout Random, to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw NSError(domain: "fuzz", code: Int(errno)) }
        let w = try TraceWriter(fd: fd, chunkBytes: 1 << (6 + r.below(14)))
        for _ in 0..<r.below(12) { try w.meta(r.pick(metaKeys), r.pick(metaValues)) }
        if r.chance(70) { try w.meta(.mode, r.pick(RecordingMode.allCases).rawValue) }
        var time: UInt64 = r.chance(80) ? UInt64(r.below(1 << 30)) : r.extreme()
        func t() -> UInt64 {
            if r.chance(90) { time &+= UInt64(r.below(100_000)) } else { time = r.extreme() }
            return time
        }
        func ref() -> PathRef { r.chance(5) ? PathRef(dir: UInt32(truncatingIfNeeded: r.extreme()), base: UInt32(truncatingIfNeeded: r.extreme())) : w.internPath(r.pick(paths)) }
        func id() -> UInt32 { r.chance(5) ? UInt32(truncatingIfNeeded: r.extreme()) : w.intern(r.pick(paths)) }
        let count = r.chance(90) ? r.below(400) : r.below(20_000)
        for _ in 0..<count {
            switch r.below(10) {
            case 0:
                try w.write(ProcessEvent(pid: r.smallPid(), tid: r.smallPid(), parent: r.smallPid(),
                                         how: ProcessStart(rawValue: UInt8(r.below(5)))!, timeNs: t()))
            case 1:
                try w.write(ExecEvent(pid: r.smallPid(), formerTid: r.smallPid(), path: ref(), argv: (0..<r.below(4)).map { _ in id() }, timeNs: t()))
            case 2:
                try w.write(ExitEvent(pid: r.smallPid(), tid: r.smallPid(), status: r.chance(70) ? Int32(r.below(0x10000)) : r.i32(), timeNs: t()))
            case 3, 4, 5:
                let entry = t()
                try w.write(SyscallEvent(pid: r.smallPid(), tid: r.smallPid(), call: r.pick(FileCall.allCases),
                                         dirfd: r.chance(50) ? nil : r.i32(), path: ref(), resolved: r.chance(70) ? nil : ref(),
                                         flags: r.extreme(), result: r.chance(60) ? -Int64(r.below(140)) : r.i64(),
                                         completed: r.chance(90), own: r.chance(10), entryNs: entry,
                                         exitNs: r.chance(90) ? entry &+ UInt64(r.below(10_000)) : r.extreme(), answered: r.chance(20)))
            case 6, 7:
                try w.write(AuditEvent(pid: r.smallPid(), kind: AuditKind(rawValue: UInt8(1 + r.below(6)))!,
                                       flag: r.chance(80) ? r.pick([1, 2, 4, 8, 0x40, 0x80, 0x81]) : UInt16(truncatingIfNeeded: r.extreme()),
                                       lmid: r.chance(90) ? 0 : r.i32(), name: ref(), seq: UInt32(truncatingIfNeeded: r.extreme()), timeNs: t()))
            case 8:
                if r.chance(50) {
                    try w.note(pid: r.smallPid(), r.pick(metaValues))
                } else {
                    try w.write(CallerEvent(pid: r.smallPid(), tid: r.smallPid(), object: ref(), offset: r.extreme(),
                                            depth: UInt32(truncatingIfNeeded: r.extreme()), timeNs: t()))
                }
            default:
                try w.write(ObjectFacts(path: ref(), device: r.extreme(), inode: r.extreme(), size: r.extreme(), contentHash: r.extreme(),
                                        elfClass: UInt8(r.below(4)), byteOrder: UInt8(r.below(4)), osABI: UInt8(truncatingIfNeeded: r.extreme()),
                                        abiVersion: UInt8(truncatingIfNeeded: r.extreme()), type: UInt16(r.below(5)),
                                        machine: r.chance(80) ? 62 : UInt16(truncatingIfNeeded: r.extreme()), isDynamic: r.chance(80),
                                        interpreter: r.chance(50) ? id() : nil, soname: r.chance(50) ? id() : nil,
                                        rpath: r.chance(30) ? id() : nil, runpath: r.chance(30) ? id() : nil,
                                        needed: (0..<(r.chance(95) ? r.below(8) : r.below(3000))).map { _ in id() },
                                        flags: r.extreme(), flags1: r.extreme()))
            }
        }
        if r.chance(85) { try w.finish(endNs: t()) } else { try w.flush(); w.close() }
    }

    /// Byte damage on a well-formed trace: flips, extreme varints, cuts.
    static func damage(_ bytes: inout [UInt8], _ r: inout Random) {
        guard bytes.count > 24 else { return }
        for _ in 0..<(1 + r.below(4)) where bytes.count > 17 {
            let at = 16 + r.below(bytes.count - 16)
            switch r.below(4) {
            case 0: bytes[at] ^= UInt8(1 << r.below(8))
            case 1: bytes[at] = r.pick([0x00, 0x7f, 0x80, 0xff])
            case 2: for i in at..<min(bytes.count, at + 10) { bytes[i] = 0xff }
            default: bytes.removeSubrange(at...)
            }
        }
    }

    static func readEverything(_ bytes: [UInt8], other: [UInt8]?, _ r: inout Random) {
        guard let trace = try? TraceReader.decode(bytes, file: "fuzz.lpt", allowPartial: true) else { return }
        _ = TraceSummary(trace: trace, file: "fuzz.lpt").text()
        let a = TraceAnalysis(trace: trace, file: "fuzz.lpt")
        var options = ReportOptions()
        options.consultHost = .never
        options.useELF = false
        options.top = 1 + r.below(20)
        options.liftDlopen = r.chance(30)
        _ = ReportText.callListing(a)
        _ = ReportText.scenarioListing([a], scenario: r.pick(Scenario.allCases), options: options)
        var builder = ReportBuilder(options: options)
        builder.keepTraces = 1 + r.below(3)
        builder.keepTimelines = true
        builder.add(a, partial: true)
        var job: JobShape? = nil
        if let other, let t2 = try? TraceReader.decode(other, file: "other.lpt", allowPartial: true) {
            builder.add(TraceAnalysis(trace: t2, file: "other.lpt"), partial: true)
            job = JobShape(processes: 1 + r.below(100_000), nodes: 1 + r.below(1000))
            let d = TraceDiff(before: a, after: TraceAnalysis(trace: t2, file: "other.lpt"), options: options, eachOwnCompute: r.chance(50))
            _ = d.text(style: TextStyle(color: r.chance(50)))
            _ = d.json().serialized()
        }
        guard let report = try? builder.finish(job: job) else { return }
        _ = ReportText.render(report, style: TextStyle(color: false))
        _ = ReportJSON.document(report).serialized()
        _ = ReportHTML.render(report)
        _ = PerfettoTrace.render(report.analyses, leftOut: report.tracesLeftOut)
    }

    static func one(seed: UInt64, scratch: String) throws {
        var r = Random(state: seed)
        try generate(&r, to: scratch + "/a.lpt")
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: scratch + "/a.lpt")))
        if r.chance(30) { damage(&bytes, &r) }
        var other: [UInt8]? = nil
        if r.chance(25) {
            try generate(&r, to: scratch + "/b.lpt")
            other = Array(try Data(contentsOf: URL(fileURLWithPath: scratch + "/b.lpt")))
        }
        readEverything(bytes, other: other, &r)
    }
}

// MARK: ELF files

enum ELFFuzz {
    /// An ELF image built field by field: ehdr, phdrs (PT_LOAD, PT_INTERP,
    /// PT_DYNAMIC, PT_TLS), a dynamic section, a string table, section headers.
    static func generate(_ r: inout Random) -> [UInt8] {
        let is64 = r.chance(85)
        var b = [UInt8](repeating: 0, count: 4096 + r.below(8192))
        func put(_ v: UInt64, at: Int, size: Int) {
            guard at >= 0, at + size <= b.count else { return }
            for i in 0..<size { b[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
        }
        func word(_ v: UInt64, at: Int) { put(v, at: at, size: is64 ? 8 : 4) }
        func maybe(_ v: UInt64) -> UInt64 { r.chance(15) ? r.extreme() : v }
        b[0] = 0x7f; b[1] = 0x45; b[2] = 0x4c; b[3] = 0x46
        b[4] = UInt8(truncatingIfNeeded: maybe(is64 ? 2 : 1)); b[5] = UInt8(truncatingIfNeeded: maybe(1)); b[6] = 1
        b[7] = UInt8(truncatingIfNeeded: maybe(0))
        put(maybe(UInt64(r.pick([2, 3]))), at: 16, size: 2)          // e_type
        put(maybe(is64 ? 62 : 3), at: 18, size: 2)                    // e_machine
        put(1, at: 20, size: 4)
        let ehsize = is64 ? 64 : 52, phentsize = is64 ? 56 : 32, shentsize = is64 ? 64 : 40
        // Offsets far out of the file are kept as they are in the header, and clipped for writing.
        let phoffField = maybe(UInt64(ehsize))
        let phoff = Int(min(phoffField, 1 << 20))
        let phnum = Int(maybe(UInt64(1 + r.below(6))) & 0xffff)
        let strtab = 2048, dynamic = 1024, interp = 900
        word(0x1000, at: 24)                                          // e_entry
        word(phoffField, at: is64 ? 32 : 28)
        word(maybe(UInt64(3072)), at: is64 ? 40 : 32)
        put(UInt64(ehsize), at: is64 ? 52 : 40, size: 2)
        put(maybe(UInt64(phentsize)), at: is64 ? 54 : 42, size: 2)
        put(UInt64(phnum), at: is64 ? 56 : 44, size: 2)
        put(maybe(UInt64(shentsize)), at: is64 ? 58 : 46, size: 2)
        put(maybe(UInt64(r.below(4))), at: is64 ? 60 : 48, size: 2)   // e_shnum (0: PN_XNUM cases)
        put(maybe(0), at: is64 ? 62 : 50, size: 2)
        // Program headers.
        let kinds: [UInt64] = [1, 3, 2, 7, 6, 0x6474e551]
        for i in 0..<min(phnum, 16) {
            let o = phoff + i * phentsize
            let type = i < kinds.count ? kinds[i] : UInt64(r.below(8))
            put(maybe(type), at: o, size: 4)
            let (off, size): (UInt64, UInt64) = type == 3 ? (UInt64(interp), 28) : type == 2 ? (UInt64(dynamic), 256) : (0, UInt64(b.count))
            if is64 {
                put(5, at: o + 4, size: 4)
                put(maybe(off), at: o + 8, size: 8); put(maybe(off), at: o + 16, size: 8); put(maybe(off), at: o + 24, size: 8)
                put(maybe(size), at: o + 32, size: 8); put(maybe(size), at: o + 40, size: 8); put(maybe(0x1000), at: o + 48, size: 8)
            } else {
                put(maybe(off), at: o + 4, size: 4); put(maybe(off), at: o + 8, size: 4); put(maybe(off), at: o + 12, size: 4)
                put(maybe(size), at: o + 16, size: 4); put(maybe(size), at: o + 20, size: 4); put(5, at: o + 24, size: 4); put(0x1000, at: o + 28, size: 4)
            }
        }
        // The interpreter and the string table.
        let interpName = Array(r.pick(["/lib64/ld-linux-x86-64.so.2", "/lib/ld-musl-x86_64.so.1", "", "/x"]).utf8)
        for (i, c) in interpName.enumerated() where interp + i < b.count { b[interp + i] = c }
        var strings: [UInt8] = [0]
        var offsets: [UInt64] = []
        for s in ["libc.so.6", "libm.so.6", "$ORIGIN/../lib:/opt/lib", "libx.so.1", "/abs/libz.so", "$LIB/p:$PLATFORM", "libfoo.so"] {
            offsets.append(UInt64(strings.count)); strings += Array(s.utf8); if r.chance(95) { strings.append(0) }
        }
        for (i, c) in strings.enumerated() where strtab + i < b.count { b[strtab + i] = c }
        // The dynamic section.
        let tags: [UInt64] = [1, 1, 14, 15, 29, 5, 10, 30, 0x6ffffffb, 1, 0]
        let entsize = is64 ? 16 : 8
        for (i, tag) in tags.enumerated() {
            let o = dynamic + i * entsize
            let value: UInt64 = tag == 5 ? UInt64(strtab) : tag == 10 ? UInt64(strings.count) : tag == 0 ? 0
                : tag == 30 || tag == 0x6ffffffb ? r.extreme() : r.pick(offsets)
            word(maybe(tag), at: o); word(maybe(value), at: o + (is64 ? 8 : 4))
        }
        if r.chance(20) { b.removeSubrange(r.below(b.count)...) }
        return b
    }

    static func one(seed: UInt64, scratch: String) throws {
        var r = Random(state: seed)
        let bytes = generate(&r)
        // The program, and the same bytes as one of the libraries it may need
        // (found through LD_LIBRARY_PATH below): the simulation walks them too.
        let path = scratch + "/prog"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        try Data(bytes).write(to: URL(fileURLWithPath: scratch + "/" + r.pick(["libx.so.1", "libfoo.so", "libm.so.6", "libc.so.6"])))
        chmod(path, 0o755)
        if let elf = try? ELFFile(bytes: bytes, path: path) {
            _ = elf.needed; _ = elf.soname; _ = elf.rpath; _ = elf.runpath
        }
        _ = try? ELFFile(contentsOf: path)
        _ = LoaderHeaderCheck.glibc(header: Array(bytes.prefix(64)))
        _ = LoaderHeaderCheck.musl(header: Array(bytes.prefix(64)))
        var options = ExplainOptions(environment: LoaderEnvironment(ldLibraryPath: r.chance(50) ? scratch : nil, ldPreload: nil))
        options.environment = LoaderEnvironment(ldLibraryPath: r.chance(50) ? scratch : nil, ldPreload: nil)
        if let e = try? Explainer.explain(path, options: options) {
            _ = ExplanationText.render(e, verbose: r.chance(50), allHazards: r.chance(50))
            _ = ExplanationJSON.render(e, includeCandidates: r.chance(50))
        }
        _ = Explainer.startupDiagnosis(for: path, environment: LoaderEnvironment(ldLibraryPath: nil, ldPreload: nil))
    }
}

// MARK: driver

let args = CommandLine.arguments
func value(_ name: String) -> String? { args.firstIndex(of: name).flatMap { $0 + 1 < args.count ? args[$0 + 1] : nil } }
guard args.count >= 2, ["trace", "elf"].contains(args[1]) else {
    FileHandle.standardError.write("usage: loadprobe-fuzz trace|elf [--seconds N] [--seed S] [--count N]\n".data(using: .utf8)!)
    exit(64)
}
let seconds = Double(value("--seconds") ?? "10") ?? 10
var seed = UInt64(value("--seed") ?? "") ?? UInt64(Date().timeIntervalSince1970 * 1000)
let count = Int(value("--count") ?? "") ?? Int.max
let scratch = NSTemporaryDirectory() + "loadprobe-fuzz-\(getpid())"
try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: scratch) }
let start = Date()
var done = 0
print("loadprobe-fuzz \(args[1]): first seed \(seed), \(seconds) s")
while done < count && Date().timeIntervalSince(start) < seconds {
    // The seed of the input about to run, where a crash leaves it.
    try? "\(seed)\n".write(toFile: scratch + "/current-seed", atomically: false, encoding: .utf8)
    let inputStart = Date()
    if args[1] == "trace" { try TraceFuzz.one(seed: seed, scratch: scratch) } else { try ELFFuzz.one(seed: seed, scratch: scratch) }
    let took = Date().timeIntervalSince(inputStart)
    if took > 5 { print("slow input: seed \(seed) took \(String(format: "%.1f", took)) s"); exit(2) }
    done += 1
    seed &+= 1
    if done % 5000 == 0 { print("\(done) inputs, \(Int(Date().timeIntervalSince(start))) s") }
}
print("done: \(done) inputs in \(String(format: "%.0f", Date().timeIntervalSince(start))) s without a crash (last seed \(seed &- 1))")
