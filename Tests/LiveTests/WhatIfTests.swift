import Foundation
import Report
import TestSupport
import Testing
import TraceFormat

/// A program whose libraries sit in a 3-directory RUNPATH (libx in the first,
/// liby in the second, libz in the third), liby needing libt through its own
/// RUNPATH, a dlopen of libp (found through the program's RUNPATH), and a
/// child process (`system("/bin/true")`): what `record --what-if` answers.
struct WhatIfFixture: Sendable {
    let dir: String
    var dirs: [String] { ["d1", "d2", "d3", "d4"].map { dir + "/" + $0 } }
    var app: String { dir + "/app" }

    static let shared = buildOnce { try WhatIfFixture.build() }
    static func get() throws -> WhatIfFixture { try shared.get() }

    static func build() throws -> WhatIfFixture {
        let f = WhatIfFixture(dir: try scratch("whatif-fixture"))
        for d in f.dirs { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        let (d1, d2, d3, d4) = (f.dirs[0], f.dirs[1], f.dirs[2], f.dirs[3])
        try write("int fx(void) { return 1; }\n", to: f.dir + "/src/x.c")
        try write("int ft(void);\nint fy(void) { return ft() + 2; }\n", to: f.dir + "/src/y.c")
        try write("int fz(void) { return 8; }\n", to: f.dir + "/src/z.c")
        try write("int ft(void) { return 16; }\n", to: f.dir + "/src/t.c")
        try write("int fp(void) { return 100; }\n", to: f.dir + "/src/p.c")
        // Each library with its soname (as real ones have: a fixed program's later requests match it by name).
        func lib(_ dir: String, _ name: String, _ extra: [String] = []) throws {
            try gcc(["-shared", "-fPIC", "-Wl,-soname,lib\(name).so", "-o", "\(dir)/lib\(name).so", "\(f.dir)/src/\(name).c"] + extra)
        }
        try lib(d1, "x")
        try lib(d4, "t")
        try lib(d2, "y", ["-L" + d4, "-lt", "-Wl,--enable-new-dtags,-rpath," + d4])
        try lib(d3, "z")
        try lib(d3, "p")
        let main = """
        #include <dlfcn.h>
        #include <stdio.h>
        #include <stdlib.h>
        int fx(void); int fy(void); int fz(void);
        int main(int argc, char **argv) {
            void *h = dlopen("libp.so", RTLD_NOW);
            if (!h) { fprintf(stderr, "dlopen: %s\\n", dlerror()); return 1; }
            int (*fp)(void) = (int (*)(void))dlsym(h, "fp");
            printf("sum %d args %d\\n", fx() + fy() + fz() + fp(), argc);
            fflush(stdout);
            fprintf(stderr, "child %d\\n", system("/bin/true"));
            return 3;
        }
        """
        try write(main, to: f.dir + "/src/app.c")
        try gcc([f.dir + "/src/app.c", "-o", f.app, "-L" + d1, "-L" + d2, "-L" + d3, "-lx", "-ly", "-lz",
                 "-Wl,-rpath-link," + d4, "-Wl,--enable-new-dtags,-rpath,\(d1):\(d2):\(d3)"])
        return f
    }
}

@Suite("record --what-if", .serialized)
struct WhatIfTests {
    func json(_ argv: [String]) throws -> [String: Any] {
        let r = try run([loadprobe] + argv, env: baseEnvironment())
        guard r.status == 0 else { throw TestFailure("\(argv): \(r.stderrText)") }
        return try JSONSerialization.jsonObject(with: r.stdout) as! [String: Any]
    }

    /// The unchanged program's run and its trace (recorded once per test).
    func baseline(_ f: WhatIfFixture, in dir: String) throws -> (Run, String) {
        let trace = dir + "/before.lpt"
        let r = try run([loadprobe, "-q", "-o", trace, "--", f.app, "one"], env: baseEnvironment())
        #expect(r.status == 3, "\(r.stderrText)")
        return (r, trace)
    }

    /// The unchanged program recorded, then tried with `--what-if SCENARIO`: the run (the same as
    /// the unchanged one), both traces and diff's JSON with its two sides.
    struct Tried {
        var before: String, after: String
        var diff: [String: Any], b: [String: Any], a: [String: Any]
    }

    func tried(_ scenario: String, _ f: WhatIfFixture, in dir: String) throws -> Tried {
        let (plain, before) = try baseline(f, in: dir)
        let after = dir + "/after.lpt"
        let r = try run([loadprobe, "-q", "-o", after, "--what-if", scenario, "--from", before, "--", f.app, "one"],
                        env: baseEnvironment())
        #expect(r == plain, "\(r.stderrText)")
        let diff = try json(["diff", "--format", "json", before, after])
        return Tried(before: before, after: after, diff: diff, b: diff["before"] as! [String: Any], a: diff["after"] as! [String: Any])
    }

    @Test("shrinkwrap: same output, the same objects in the same order, fewer calls, the child not answered, the map's open the library's own")
    func shrinkwrap() throws {
        let f = try WhatIfFixture.get()
        let dir = try scratch("whatif")
        let t = try tried("shrinkwrap", f, in: dir)
        let (before, after, diff, b, a) = (t.before, t.after, t.diff, t.b, t.a)
        #expect((a["calls"] as! Int) < (b["calls"] as! Int), "calls \(b["calls"]!) → \(a["calls"]!)")
        #expect((diff["objects"] as! [String: Any])["result"] as? String == "same-order", "\(diff["objects"]!)")
        #expect((a["whatIf"] as? [String: Any])?["scenario"] as? String == "shrinkwrap")
        #expect(b["whatIf"] is NSNull)

        // x, y, z, libc and t answered; the dlopen (not lifted) searched as usual.
        let report = try json(["report", "--format", "json", after])
        // The start-up's calls (all processes): most are gone. (The dlopen, not lifted, now probes the
        // hwcaps subdirectories the start-up no longer found missing: as the fixed program would.)
        func startup(_ r: [String: Any]) -> Int {
            let phases = (r["waste"] as! [String: Any])["byPhase"] as! [[String: Any]]
            return phases.first { $0["name"] as? String == "libraries" }?["calls"] as? Int ?? 0
        }
        let startupBefore = startup(try json(["report", "--format", "json", before])), startupAfter = startup(report)
        #expect(startupAfter * 4 < startupBefore, "start-up calls \(startupBefore) → \(startupAfter)")
        let w = try #require(report["whatIf"] as? [String: Any])
        #expect(w["answered"] as? Int == 5 && w["ranNormally"] as? Int == 1, "\(w)")
        #expect(w["description"] as? String == "shrinkwrap from \(before)")
        let text = try run([loadprobe, "report", after], env: baseEnvironment()).stdoutText
        #expect(text.contains("what-if: shrinkwrap from \(before) — 5 searches answered from the earlier trace, 1 search it did not cover ran normally"), "\(text.prefix(800))")
        #expect(!text.contains("links are not made"), "a shrinkwrap what-if has no view caveat")
        #expect(try run([loadprobe, "diff", before, after], env: baseEnvironment()).stdoutText.contains("a what-if of shrinkwrap"))

        let trace = try TraceReader.read(file: after)
        #expect(trace.meta(.whatIf) == "shrinkwrap from \(before)")
        #expect(trace.meta(.whatIfEntries) == "5")
        // The audit library's open of its map is its own call, never the program's.
        var ownMapOpens = 0
        for case .syscall(let s) in trace.events where trace.path(s.path).hasSuffix("/whatif.map") {
            #expect(s.own, "the map's open counted as the program's")
            ownMapOpens += 1
        }
        #expect(ownMapOpens == 3, "the app, the shell and true each read the map")
        // The child (/bin/sh, then /bin/true) searched for libc.so.6 by name: not answered.
        let analysis = TraceAnalysis(trace: trace, file: after)
        let children = analysis.processes.filter { !$0.image.hasSuffix("/app") && $0.audited }
        #expect(children.count == 2)
        for c in children { #expect(c.searches.map(\.name) == ["libc.so.6"], "\(c.image): \(c.searches.map(\.name))") }
    }

    @Test("shrinkwrap (dlopens lifted) under strace -f: the program opens no library in vain, probes no search directory (--no-ptrace)",
          .enabled(if: Needs.command("strace"), "strace is not installed"))
    func noFailedOpens() throws {
        let f = try WhatIfFixture.get()
        let dir = try scratch("whatif-strace")
        let (plain, before) = try baseline(f, in: dir)
        let out = dir + "/strace.txt"
        let r = try run(["strace", "-f", "-e", "trace=execve,openat,newfstatat,stat,access", "-o", out, loadprobe, "record", "-q",
                         "--no-ptrace", "-o", dir + "/after.lpt", "--what-if", "shrinkwrap", "--lift-dlopen", "--from", before,
                         "--", f.app, "one"],
                        env: baseEnvironment())
        #expect(r.stdout == plain.stdout && r.status == plain.status, "\(r.stderrText)")
        let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n")
        // The program's own process: the one that executed the app (loadprobe's own lookups are not its).
        let pid = try #require(lines.first { $0.contains("execve(\"\(f.app)\"") }?.split(separator: " ").first)
        let mine = Strace.parse(lines.filter { $0.split(separator: " ").first == pid }.joined(separator: "\n"))
        let failedLibraries = mine.filter { $0.name == "openat" && $0.failed && ($0.path ?? "").contains(".so") }
        #expect(failedLibraries.isEmpty, "\(failedLibraries.map(\.text))")
        let inSearchDirs = mine.filter { l in l.failed && f.dirs.contains { (l.path ?? "").hasPrefix($0 + "/") } }
        #expect(inSearchDirs.map(\.text) == [], "the program still probed its search directories")
        // The same run untraced probes them (the test would pass without what-if otherwise).
        let (untraced, _) = try straceCounts([f.app, "one"], env: baseEnvironment())
        #expect((untraced.counts["openat"]?.failed ?? 0) > 20)
    }

    @Test("--lift-dlopen answers the recorded dlopen too")
    func liftDlopen() throws {
        let f = try WhatIfFixture.get()
        let dir = try scratch("whatif-lift")
        let (plain, before) = try baseline(f, in: dir)
        let after = dir + "/after.lpt"
        let r = try run([loadprobe, "-q", "-o", after, "--what-if", "shrinkwrap", "--lift-dlopen", "--from", before, "--", f.app, "one"],
                        env: baseEnvironment())
        #expect(r == plain, "\(r.stderrText)")
        let w = try #require(try json(["report", "--format", "json", after])["whatIf"] as? [String: Any])
        #expect(w["answered"] as? Int == 6 && w["ranNormally"] as? Int == 0, "\(w)")
        #expect(w["description"] as? String == "shrinkwrap from \(before) (lifted dlopens)")
    }

    @Test("bind and view: fewer failed lookups, the same objects in the same order", arguments: ["bind", "view"])
    func bindAndView(_ scenario: String) throws {
        let f = try WhatIfFixture.get()
        let t = try tried(scenario, f, in: try scratch("whatif-" + scenario))
        let (diff, b, a) = (t.diff, t.b, t.a)
        #expect((a["failed"] as! Int) < (b["failed"] as! Int), "failed \(b["failed"]!) → \(a["failed"]!)")
        #expect((diff["objects"] as! [String: Any])["result"] as? String == "same-order", "\(diff["objects"]!)")
        let w = try #require(a["whatIf"] as? [String: Any])
        #expect(w["scenario"] as? String == scenario && (w["answered"] as! Int) > 0, "\(w)")
    }

    @Test("refused with one line, nothing run: another program's trace, a what-if trace, a missing one, --no-audit, no --from")
    func refusals() throws {
        let f = try WhatIfFixture.get()
        let dir = try scratch("whatif-refuse")
        let (_, before) = try baseline(f, in: dir)
        let out = dir + "/never.lpt"
        let whatIf = dir + "/whatif.lpt"
        #expect(try run([loadprobe, "-q", "-o", whatIf, "--what-if", "view", "--from", before, "--", f.app], env: baseEnvironment()).status == 3)
        let cases: [([String], String, Int32)] = [
            (["--what-if", "shrinkwrap", "--from", before, "--", "/bin/echo", "hi"], "has no recorded start-up of /bin/echo", 1),
            (["--what-if", "shrinkwrap", "--from", whatIf, "--", f.app], "is a --what-if recording", 1),
            (["--what-if", "shrinkwrap", "--from", dir + "/missing.lpt", "--", f.app], "missing.lpt: cannot read", 1),
            (["--what-if", "shrinkwrap", "--no-audit", "--from", before, "--", f.app], "--no-audit", 64),
            (["--what-if", "shrinkwrap", "--", f.app], "needs --from", 64),
            (["--from", before, "--", f.app], "go with --what-if", 64),
            (["--what-if", "bind", "--lift-dlopen", "--from", before, "--", f.app], "shrinkwrap only", 64),
            (["--what-if", "static", "--from", before, "--", f.app], "not 'static'", 64),
        ]
        for (args, message, status) in cases {
            let r = try run([loadprobe, "-o", out] + args, env: baseEnvironment())
            #expect(r.status == status, "\(args): \(r.status) \(r.stderrText)")
            #expect(r.stderrText.split(separator: "\n").count == 1 && r.stderrText.hasPrefix("loadprobe: "), "\(r.stderrText)")
            #expect(r.stderrText.contains(message), "\(r.stderrText)")
            #expect(r.stdout.isEmpty, "the program ran: \(r.stdoutText)")
            #expect(!FileManager.default.fileExists(atPath: out))
        }
    }

    @Test("the audit library never trips on a crafted map: the program runs as without it")
    func craftedMaps() throws {
        let f = try WhatIfFixture.get()
        let dir = try scratch("whatif-crafted")
        var env = baseEnvironment()
        let plain = try run([f.app, "one"], env: env)
        env["LD_AUDIT"] = productsDir + "/libloadprobe-audit.so"
        func map(_ entries: [(String, String, String)]) -> Data {
            var d = Data("LPWHATIF2\0\(f.app)\0\0".utf8)
            for (r, n, p) in entries { d += Data("\(r)\0\(n)\0\(p)\0\0".utf8) }
            return d
        }
        // A valid map, first: the answer is taken (the libraries are found without a search). The program
        // is named by the path it is executed as (AT_EXECFN).
        let good = map([("*", "libx.so", f.dirs[0] + "/libx.so"), ("*", "liby.so", f.dirs[1] + "/liby.so")])
        var crafted: [(String, Data)] = [
            ("cut", good.prefix(good.count - 4)), ("garbage", Data((0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) })),
            ("empty", Data()), ("magic only", Data("LPWHATIF2".utf8)), ("the earlier version", Data("LPWHATIF1\0\(f.app)\0\0*\0libx.so\0\(f.dirs[0])/libx.so\0".utf8)), ("zeros", Data(count: 100)),
            ("no terminator", Data("LPWHATIF2\0\(f.app)".utf8)), ("steps not ended", good.prefix(good.count - 1)), ("relative path", map([("*", "libx.so", "d1/libx.so")])),
        ]
        var huge = Data("LPWHATIF2\0\(f.app)\0\0".utf8)
        for i in 0..<70_000 { huge += Data("*\0lib\(i).so\0/x\0\0".utf8) }
        crafted.append(("too many entries", huge))
        let answered = try runWith(good, env: env, dir: dir)
        #expect(answered.run == plain)
        #expect(!answered.debug.contains("trying file=\(f.dirs[0])/libx.so"), "the valid map was not used")
        for (name, data) in crafted {
            let r = try runWith(data, env: env, dir: dir)
            #expect(r.run == plain, "\(name): \(r.run.stderrText)")
            #expect(r.debug.contains("trying file=\(f.dirs[0])/libx.so"), "\(name): the search changed")
        }
    }

    /// The fixture's app with LD_AUDIT and this map (and once more with LD_DEBUG=libs: its trying lines).
    func runWith(_ data: Data, env: [String: String], dir: String) throws -> (run: Run, debug: String) {
        let file = dir + "/map"
        try data.write(to: URL(fileURLWithPath: file))
        var e = env
        e["LOADPROBE_WHATIF"] = file
        let f = try WhatIfFixture.get()
        let r = try run([f.app, "one"], env: e)
        e["LD_DEBUG"] = "libs"
        return (r, try run([f.app, "one"], env: e).stderrText)
    }
}
