import Foundation
import TestSupport
import Testing
@testable import LoaderModel

/// The inputs `loadprobe-fuzz` (docs/fuzzing.md) found that trapped a reader or
/// ran without end, each made again by hand: every command reports or refuses
/// with one line, and in seconds.
@Suite("inputs the fuzzers found")
struct FuzzFoundTests {
    /// A trace written record by record (docs/trace-format.md), its strings
    /// interned as the writer does: each defined once, before the record using it.
    struct Recording {
        var b = CraftedTraceTests.Builder()
        var ids: [String: UInt64] = [:]
        var last: Int64 = 0

        mutating func id(_ s: String) -> UInt64 {
            if let i = ids[s] { return i }
            b.string(s)
            ids[s] = UInt64(ids.count + 1)
            return UInt64(ids.count)
        }
        /// (directory id, base id): split at the last slash; no slash, directory 0.
        mutating func ref(_ p: String) -> (UInt64, UInt64) {
            guard let slash = p.lastIndex(of: "/") else { return (0, id(p)) }
            return (id(String(p[..<slash])), id(String(p[p.index(after: slash)...])))
        }
        mutating func put(_ r: (UInt64, UInt64)) { b.u(r.0); b.u(r.1) }
        mutating func time(_ at: Int64) { b.s(at &- last); last = at }

        mutating func meta(_ key: String, _ value: String) {
            let k = id(key), v = id(value)
            b.payload.append(0x02); b.u(k); b.u(v)
        }
        mutating func process(_ pid: UInt64, at: Int64) {
            b.payload.append(0x30); b.u(pid); b.s(0); b.u(1); b.payload.append(0); time(at)
        }
        mutating func exec(_ pid: UInt64, _ program: String, argv: [String], at: Int64) {
            let p = ref(program), args = argv.map { id($0) }
            b.payload.append(0x31); b.u(pid); b.s(0); put(p); b.u(UInt64(args.count)); for a in args { b.u(a) }; time(at)
        }
        /// kind: 1 image, 2 objsearch, 3 objopen, 4 activity, 5 preinit.
        mutating func audit(_ pid: UInt64, kind: UInt8, flag: UInt64 = 0, name: String = "", at: Int64) {
            let n = name.isEmpty ? (0, 0) : ref(name)
            b.payload.append(0x20); b.u(pid); b.payload.append(kind); b.u(flag); b.s(0); put(n); b.u(0); time(at)
        }
        /// call: 2 openat, 7 newfstatat; with dirfd AT_FDCWD.
        mutating func syscall(_ pid: UInt64, call: UInt8, _ path: String, flags: UInt64 = 0, result: Int64, at: Int64) {
            let p = ref(path)
            b.payload.append(0x10); b.u(pid); b.s(0); b.payload.append(call); b.u(8); b.s(-100); put(p)
            b.u(flags); b.s(result); time(at); b.u(1_000)
        }
        mutating func exit(_ pid: UInt64, at: Int64) {
            b.payload.append(0x32); b.u(pid); b.s(0); b.s(0); time(at)
        }
        /// An x86-64 ELF object of the loader's world (OBJECT, format 3).
        mutating func object(_ path: String, interpreter: String? = nil, rpath: String? = nil, needed: [String] = [], inode: UInt64) {
            let p = ref(path), i = interpreter.map { id($0) }, r = rpath.map { id($0) }, n = needed.map { id($0) }
            var bits: UInt64 = 1
            if i != nil { bits |= 2 }
            if r != nil { bits |= 8 }
            b.payload.append(0x50); put(p); b.u(2049); b.u(inode); b.u(16_384); b.u(inode &* 77); b.u(bits)
            b.payload += [2, 1, 0, 0]; b.u(3); b.u(62); b.u(0); b.u(0)
            if let i { b.u(i) }
            if let r { b.u(r) }
            b.u(UInt64(n.count)); for x in n { b.u(x) }
        }
        mutating func file(ending at: Int64, in dir: String, _ name: String) throws -> String {
            b.payload.append(0x7f); time(at)
            let path = dir + "/" + name
            try b.file().write(to: URL(fileURLWithPath: path))
            return path
        }
    }

    func statusOK(_ r: Run, _ what: String) {
        #expect(r.status == 0 || (r.status == 1 && r.stderrText.split(separator: "\n").count == 1), "\(what): \(r.status) \(r.stderrText)")
    }

    /// A program that searched its RPATH for one library (audited, so that a
    /// report simulates it on the world its OBJECT records give).
    func loaderRun(_ t: inout Recording, rpath: String, needed: [String]) {
        t.process(5, at: 1_000)
        t.exec(5, "/app/bin/prog", argv: ["prog"], at: 2_000)
        t.audit(5, kind: 1, name: "/app/bin/prog", at: 2_100)
        t.audit(5, kind: 4, flag: 1, at: 2_200)
        t.audit(5, kind: 2, flag: 1, name: "liba.so", at: 2_300)
        t.audit(5, kind: 2, flag: 4, name: "/app/lib/liba.so", at: 2_400)
        t.syscall(5, call: 2, "/app/lib/liba.so", flags: 0o2000000, result: 3, at: 2_500)
        t.audit(5, kind: 3, name: "/app/lib/liba.so", at: 2_600)
        t.audit(5, kind: 4, flag: 0, at: 2_700)
        t.audit(5, kind: 5, at: 2_800)
        t.exit(5, at: 3_000)
        t.object("/app/bin/prog", interpreter: "/lib64/ld-linux-x86-64.so.2", rpath: rpath, needed: needed, inode: 10)
        t.object("/app/lib/liba.so", inode: 11)
    }

    @Test("--python-view-dir /: the python-path scenario's view is the root, which has no parent")
    func pythonViewAtRoot() throws {
        let dir = try scratch("fuzz-pyview")
        var t = Recording()
        t.process(5, at: 1_000)
        t.exec(5, "/usr/bin/python3.11", argv: ["python3.11", "-c", "import m"], at: 2_000)
        t.audit(5, kind: 5, at: 3_000)   // main: the calls after it are the program's
        // sys.path entry /p listed (O_DIRECTORY), then stat'ed at an import.
        t.syscall(5, call: 2, "/p", flags: 0o200000, result: 3, at: 4_000)
        t.syscall(5, call: 7, "/p", result: 0, at: 5_000)
        t.syscall(5, call: 2, "/p/m.py", flags: 0o2000000, result: 4, at: 6_000)
        let trace = try t.file(ending: 10_000, in: dir, "py.lpt")
        for format in ["text", "json"] {
            let r = try run([loadprobe, "report", "--no-host", "--python-view-dir", "/", "--format", format, trace])
            #expect(r.status == 0, "\(format): \(r.status) \(r.stderrText)")
        }
    }

    @Test("--top 9223372036854775807: JSON and HTML list 10× and 2× --top rows without overflowing")
    func hugeTop() throws {
        let dir = try scratch("fuzz-top")
        let trace = try CraftedTraceTests().minimalTrace(in: dir)
        for format in ["json", "html", "text", "perfetto"] {
            let r = try run([loadprobe, "report", "--no-host", "--top", "9223372036854775807", "--format", format, trace])
            #expect(r.status == 0, "\(format): \(r.status) \(r.stderrText)")
        }
        let d = try run([loadprobe, "diff", "--top", "9223372036854775807", "--format", "json", trace, trace])
        #expect(d.status == 0, "\(d.status) \(d.stderrText)")
    }

    @Test("loader metadata naming 61 legacy hwcaps, 200 glibc-hwcaps or 3,000 default directories: not used, the report is made",
          .timeLimit(.minutes(1)))
    func absurdLoaderMetadata() throws {
        let dir = try scratch("fuzz-hwcaps")
        let cases: [(hwcaps: String, legacy: String, dirs: String)] = [
            // 61 names + platform + tls: 1 << 63 subsets, a range that traps.
            ("x86-64-v3", (0..<61).map { "cap\($0)" }.joined(separator: ","), "/lib/:/usr/lib/"),
            // 24 names: 2^26 subdirectories in every search directory.
            ("x86-64-v3", (0..<24).map { "cap\($0)" }.joined(separator: ","), "/lib/:/usr/lib/"),
            ((0..<200).map { "level\($0)" }.joined(separator: ","), "x86_64", "/lib/:/usr/lib/"),
            ("x86-64-v3", "x86_64", (0..<3000).map { "/d\($0)/" }.joined(separator: ":")),
        ]
        for (i, c) in cases.enumerated() {
            var t = Recording()
            t.meta("mode", "ptrace+audit")
            t.meta("libc", "glibc 2.36")
            t.meta("loader.hwcaps", c.hwcaps)
            t.meta("loader.legacyHwcaps", c.legacy)
            t.meta("loader.platform", "x86_64")
            t.meta("loader.lib", "lib/x86_64-linux-gnu")
            t.meta("loader.defaultDirs", c.dirs)
            loaderRun(&t, rpath: "/app/lib:/opt/a:/opt/b:/opt/c", needed: ["liba.so", "libmissing.so"])
            let trace = try t.file(ending: 10_000, in: dir, "h\(i).lpt")
            let r = try run([loadprobe, "report", "--no-host", "--format", "json", trace])
            #expect(r.status == 0, "case \(i): \(r.status) \(r.stderrText)")
            #expect(r.stdoutText.contains("more than a glibc has"), "case \(i)")
        }
        // The profile itself: a power set of at most 16 parts, whatever it is given.
        var p = GlibcProfile.debianX86_64(version: GlibcVersion(2, 36), legacyHwcapNames: (0..<70).map { "c\($0)" })
        #expect(p.capabilitySubdirectories.count == 2 + (1 << 16))
        p.legacyHwcapNames = []
        #expect(p.capabilitySubdirectories.count == 2 + 4)
    }

    @Test("an RPATH directory 2,000 components deep, missing: each subdirectory's walk up is not quadratic", .timeLimit(.minutes(1)))
    func deepMissingDirectory() throws {
        let dir = try scratch("fuzz-deep")
        let deep = String(repeating: "/a", count: 2_000)
        var t = Recording()
        t.meta("libc", "glibc 2.36")
        // Twelve deep directories (they share all but their last component), each
        // tried with every glibc-hwcaps and legacy subdirectory for two names.
        let rpath = (0..<12).map { deep + "/x\($0)" }.joined(separator: ":") + ":/app/lib"
        loaderRun(&t, rpath: rpath, needed: ["libmissing.so", "liba.so"])
        let trace = try t.file(ending: 10_000, in: dir, "deep.lpt")
        let started = Date()
        let r = try run([loadprobe, "report", "--no-host", trace])
        #expect(r.status == 0, "\(r.status) \(r.stderrText)")
        #expect(Date().timeIntervalSince(started) < 30)
    }

    @Test("a needed list of 3,000 missing names over 60 RPATH directories: the scenarios stop where ld.so stops", .timeLimit(.minutes(1)))
    func lookupsAfterTheFailure() throws {
        let dir = try scratch("fuzz-missing")
        var t = Recording()
        t.meta("libc", "glibc 2.36")
        let rpath = (0..<60).map { "/opt/p\($0)/lib" }.joined(separator: ":") + ":/app/lib"
        // The first name is found; the next 3,000 are not: ld.so stops at the first of them.
        loaderRun(&t, rpath: rpath, needed: ["liba.so"] + (0..<3000).map { "libmissing\($0).so" })
        let trace = try t.file(ending: 10_000, in: dir, "missing.lpt")
        let started = Date()
        let r = try run([loadprobe, "report", "--no-host", "--format", "json", trace])
        #expect(r.status == 0, "\(r.status) \(r.stderrText)")
        #expect(Date().timeIntervalSince(started) < 30)
        // Every scenario prices at most the one failed search (61 directories,
        // their subdirectories), not 3,000 of them.
        let json = try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any]
        let scenarios = json?["scenarios"] as? [[String: Any]] ?? []
        #expect(!scenarios.isEmpty)
        for s in scenarios {
            let ops = s["operations"] as? Int ?? 0
            #expect(ops < 5_000, "\(s["name"] ?? "?"): \(ops) calls")
        }
    }

    @Test("diff --compute-each of a run 2^64 ns long and one of 1 ns: a ratio Int cannot hold is shown, not converted")
    func hugeRatio() throws {
        let dir = try scratch("fuzz-ratio")
        var long = Recording()
        long.process(5, at: 1_000)
        // A time delta of −2,000: the clock wraps, the run ends 2^64 − 2,000 ns after it began.
        long.exit(5, at: -1_000)
        let before = try long.file(ending: -1_000, in: dir, "long.lpt")
        var short = Recording()
        short.process(5, at: 1_000)
        short.exit(5, at: 1_001)
        let after = try short.file(ending: 1_002, in: dir, "short.lpt")
        for args in [["diff", "--compute-each", before, after], ["diff", "--compute-each", after, before],
                     ["diff", "--compute-each", "--format", "json", before, after]] {
            let r = try run([loadprobe] + args)
            #expect(r.status == 0, "\(args): \(r.status) \(r.stderrText)")
        }
    }

    @Test("diff: a count that went down shows its percentage with a minus (it showed \"<0.1%\")")
    func decreaseInPercent() throws {
        let dir = try scratch("fuzz-decrease")
        func trace(_ name: String, calls: Int) throws -> String {
            var t = Recording()
            t.process(5, at: 1_000)
            for i in 0..<calls { t.syscall(5, call: 2, "/etc/f\(i)", result: -2, at: 2_000 + Int64(i) * 1_000) }
            t.exit(5, at: 90_000)
            return try t.file(ending: 100_000, in: dir, name)
        }
        let r = try run([loadprobe, "diff", "--no-host", try trace("before.lpt", calls: 4), try trace("after.lpt", calls: 2)])
        #expect(r.status == 0 && r.stdoutText.contains("-2 (-50%)") && !r.stdoutText.contains("(<0.1%)"), "\(r.stdoutText)")
    }
}
