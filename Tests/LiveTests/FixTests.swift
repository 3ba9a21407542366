import Foundation
import TestSupport
import Testing

/// `loadprobe fix` on tiny programs compiled here, checked against independent
/// truth: `ld.so --list`, strace, the programs' own output, the files' bytes.
struct FixFixture: Sendable {
    let dir: String
    func path(_ name: String) -> String { dir + "/" + name }
    var app: String { path("bin/app") }

    static let shared = buildOnce { try FixFixture.build() }

    /// app (RUNPATH d1:d2:d3) needs libx (d1), liby (d2) and libz (d3); liby
    /// needs libt (d3, through its own RUNPATH); app dlopens libplug (d3).
    static func build() throws -> FixFixture {
        let f = FixFixture(dir: try scratch("fix"))
        for d in ["d1", "d2", "d3", "bin", "src"] {
            try FileManager.default.createDirectory(atPath: f.path(d), withIntermediateDirectories: true)
        }
        func lib(_ name: String, _ dir: String, _ body: String, _ extra: [String] = []) throws {
            try write(body, to: f.path("src/\(name).c"))
            try gcc(["-shared", "-fPIC", "-Wl,-soname,lib\(name).so", "-o", f.path("\(dir)/lib\(name).so"), f.path("src/\(name).c")] + extra)
        }
        try lib("t", "d3", "int t_value(void) { return 7; }\n")
        try lib("y", "d2", "int t_value(void);\nint y_value(void) { return 20 + t_value(); }\n",
                ["-L" + f.path("d3"), "-lt", "-Wl,--enable-new-dtags,-rpath," + f.path("d3")])
        try lib("x", "d1", "int x_value(void) { return 100; }\n")
        try lib("z", "d3", "int z_value(void) { return 3000; }\n")
        try lib("plug", "d3", "int plug_value(void) { return 40000; }\n")
        try write("""
            #include <dlfcn.h>
            #include <stdio.h>
            int x_value(void); int y_value(void); int z_value(void);
            int main(int argc, char **argv) {
                void *h = dlopen("libplug.so", RTLD_NOW);
                int (*p)(void) = h ? (int (*)(void))dlsym(h, "plug_value") : 0;
                printf("%d %d\\n", x_value() + y_value() + z_value() + (p ? p() : 0), argc);
                fprintf(stderr, "done\\n");
                return 5;
            }
            """, to: f.path("src/main.c"))
        let dirs = ["d1", "d2", "d3"].map(f.path)
        try gcc([f.path("src/main.c"), "-o", f.app] + dirs.map { "-L" + $0 } + ["-lx", "-ly", "-lz", "-ldl",
                 "-Wl,-rpath-link," + f.path("d3"), "-Wl,--enable-new-dtags,-rpath," + dirs.joined(separator: ":")])
        return f
    }

    /// Every input file's bytes: the program and every library.
    func inputs() throws -> [String: Data] {
        var out: [String: Data] = [:]
        for p in [app] + ["d1/libx.so", "d2/liby.so", "d3/libt.so", "d3/libz.so", "d3/libplug.so"].map(path) {
            out[p] = try Data(contentsOf: URL(fileURLWithPath: p))
        }
        return out
    }
}

func listed(_ program: String) throws -> [String] { try ldsoList(program) }

@Suite("loadprobe fix: shrinkwrap and view written for real")
struct FixTests {
    func scratchDir(_ name: String) throws -> String { try scratch("fix-" + name) }

    @Test("shrinkwrap from a recording with --lift-dlopen: same objects in the same order (ld.so --list), same output, fewer calls (strace), inputs unchanged, --check's verdict")
    func shrinkwrap() throws {
        let f = try FixFixture.shared.get()
        let dir = try scratchDir("sw")
        let before = try f.inputs()
        let trace = dir + "/app.lpt"
        _ = try run([loadprobe, "-q", "-o", trace, "--", f.app])
        let out = dir + "/app.fixed"
        let r = try run([loadprobe, "fix", "shrinkwrap", f.app, "-o", out, "--from", trace, "--lift-dlopen", "--check", "--", "arg"])
        #expect(r.status == 0, "\(r.stdoutText) \(r.stderrText)")
        #expect(r.stdoutText.contains("7 libraries in DT_NEEDED by absolute path"), "\(r.stdoutText)")
        #expect(r.stdoutText.contains("check: the same 8 objects (content hash) in the same order"), "\(r.stdoutText)")
        #expect(r.stdoutText.contains("check: the same exit status (5), stdout and stderr"), "\(r.stdoutText)")
        // ld.so --list shows ld.so where a library first needs it (here last of the start-up); the copy lists
        // it there too, and the lifted plug-in after the start-up's objects.
        #expect(try listed(out) == listed(f.app) + [f.path("d3/libplug.so")], "the lifted plug-in comes after the start-up's objects")
        let original = try run([f.app, "x"]), fixed = try run([out, "x"])
        #expect(fixed.status == 5 && fixed.stdout == original.stdout && fixed.stderr == original.stderr)
        let (callsBefore, _) = try straceCounts([f.app])
        let (callsAfter, _) = try straceCounts([out])
        let total = { (c: CallCounts) in c.counts.values.reduce(0) { $0 + $1.calls } }
        #expect(total(callsAfter) < total(callsBefore), "\(callsBefore) → \(callsAfter)")
        let opens = try run(["strace", "-f", "-e", "trace=openat", "-o", dir + "/st.txt", out])
        #expect(opens.status == 5)
        let failedLibraryOpens = Strace.parse(try String(contentsOfFile: dir + "/st.txt", encoding: .utf8))
            .filter { $0.name == "openat" && $0.failed && ($0.path ?? "").contains(f.dir) }
        #expect(failedLibraryOpens.isEmpty, "\(failedLibraryOpens.map(\.text))")
        #expect(try f.inputs() == before, "no input file changed")
        let mode = try FileManager.default.attributesOfItem(atPath: out)[.posixPermissions] as? Int
        #expect(mode == (try FileManager.default.attributesOfItem(atPath: f.app)[.posixPermissions] as? Int))
    }

    @Test("view: a directory of symlinks and a copy whose RUNPATH is that directory; the model's proof and --check")
    func view() throws {
        let f = try FixFixture.shared.get()
        let dir = try scratchDir("view")
        let out = dir + "/app.view", view = dir + "/libs"
        let r = try run([loadprobe, "fix", "view", f.app, "-o", out, "--view-dir", view, "--check"])
        #expect(r.status == 0, "\(r.stdoutText) \(r.stderrText)")
        #expect(try run(["patchelf", "--print-rpath", out]).stdoutText == view + "\n")
        let links = try FileManager.default.contentsOfDirectory(atPath: view).sorted()
        // What the start-up found through RUNPATH (libt through liby's), and the other libraries of the
        // program's own RUNPATH directories (libplug, which it dlopens).
        #expect(links == [".loadprobe-view", "libplug.so", "libt.so", "libx.so", "liby.so", "libz.so"], "\(links)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: view + "/liby.so") == f.path("d2/liby.so"))
        #expect(try run([out]).stdout == run([f.app]).stdout)
        #expect(r.stdoutText.contains("check: the same 8 objects"), "\(r.stdoutText)")
        // A second run into the same directory: refused, then --overwrite replaces its links.
        let again = try run([loadprobe, "fix", "view", f.app, "-o", dir + "/app.view2", "--view-dir", view])
        #expect(again.status == 1 && again.stderrText.contains("is not empty"), "\(again.stderrText)")
        let over = try run([loadprobe, "fix", "view", f.app, "-o", dir + "/app.view2", "--view-dir", view, "--overwrite"])
        #expect(over.status == 0, "\(over.stderrText)")
    }

    @Test("refused with one line: a library from LD_LIBRARY_PATH, a musl program, a set-user-ID program; --force goes on; nothing written")
    func refusals() throws {
        let f = try FixFixture.shared.get()
        let dir = try scratchDir("refuse")
        try write("int w_value(void) { return 1; }\n", to: dir + "/w.c")
        try gcc(["-shared", "-fPIC", "-Wl,-soname,libw.so", "-o", dir + "/libw.so", dir + "/w.c"])
        try write("int w_value(void);\nint main(void) { return w_value() - 1; }\n", to: dir + "/m.c")
        try gcc([dir + "/m.c", "-o", dir + "/plain", "-L" + dir, "-lw"])
        func oneLine(_ r: Run, _ words: String) {
            #expect(r.status == 1, "\(r.stderrText)")
            let lines = r.stderrText.split(separator: "\n")
            #expect(lines.count == 1 && lines[0].hasPrefix("loadprobe fix: refused: ") && lines[0].contains(words), "\(r.stderrText)")
        }
        var env = ProcessInfo.processInfo.environment
        env["LD_LIBRARY_PATH"] = dir
        oneLine(try run([loadprobe, "fix", "shrinkwrap", dir + "/plain", "-o", dir + "/out1"], env: env), "libw.so comes from LD_LIBRARY_PATH")
        #expect(!FileManager.default.fileExists(atPath: dir + "/out1"))
        let forced = try run([loadprobe, "fix", "shrinkwrap", dir + "/plain", "-o", dir + "/out1", "--force"], env: env)
        #expect(forced.status == 0 && forced.stderrText.contains("going on (--force)"), "\(forced.stderrText)")
        #expect(try run([dir + "/out1"]).status == 0)

        try write("#include <stdio.h>\nint main(void) { puts(\"musl\"); return 0; }\n", to: dir + "/musl.c")
        if Needs.command("musl-gcc") {
            _ = try run(["musl-gcc", dir + "/musl.c", "-o", dir + "/musl-app"])
            oneLine(try run([loadprobe, "fix", "shrinkwrap", dir + "/musl-app", "-o", dir + "/out2"]), "musl's loader")
        } else {
            Issue.record("musl-gcc is not installed (scripts/setup installs musl-tools)")
        }
        let suid = dir + "/suid-app"
        try FileManager.default.copyItem(atPath: f.app, toPath: suid)
        try FileManager.default.setAttributes([.posixPermissions: 0o4755], ofItemAtPath: suid)
        oneLine(try run([loadprobe, "fix", "shrinkwrap", suid, "-o", dir + "/out3"]), "set-user-ID")
        oneLine(try run([loadprobe, "fix", "view", suid, "-o", dir + "/out3", "--view-dir", dir + "/v"]), "set-user-ID")
        #expect(!FileManager.default.fileExists(atPath: dir + "/out3") && !FileManager.default.fileExists(atPath: dir + "/v"))
    }

    @Test("OUTPUT: refused when it exists; --overwrite replaces a symlink there without writing through it; never in place")
    func output() throws {
        let f = try FixFixture.shared.get()
        let dir = try scratchDir("output")
        let victim = dir + "/victim"
        try write("keep me\n", to: victim)
        try FileManager.default.createSymbolicLink(atPath: dir + "/link", withDestinationPath: victim)
        let refused = try run([loadprobe, "fix", "shrinkwrap", f.app, "-o", dir + "/link"])
        #expect(refused.status == 1 && refused.stderrText.contains("exists"), "\(refused.stderrText)")
        let over = try run([loadprobe, "fix", "shrinkwrap", f.app, "-o", dir + "/link", "--overwrite"])
        #expect(over.status == 0, "\(over.stderrText)")
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "keep me\n", "the symlink's target is not written")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: dir + "/link")) == nil, "the link itself is replaced")
        #expect(try run([dir + "/link"]).status == 5)
        let inPlace = try run([loadprobe, "fix", "shrinkwrap", f.app, "-o", f.app, "--overwrite"])
        #expect(inPlace.status == 1 && inPlace.stderrText.contains("never made in place"), "\(inPlace.stderrText)")
        let viewLink = dir + "/viewlink"
        try FileManager.default.createSymbolicLink(atPath: viewLink, withDestinationPath: dir)
        let v = try run([loadprobe, "fix", "view", f.app, "-o", dir + "/v.out", "--view-dir", viewLink])
        #expect(v.status == 1 && v.stderrText.contains("a symlink is not followed"), "\(v.stderrText)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/v.out"))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".loadprobe-") }
        #expect(leftovers.isEmpty, "\(leftovers)")
    }

    @Test("bad input: one line and status ≠ 0 (missing program, not ELF, a trace of another program, --lift-dlopen without a trace)")
    func badInput() throws {
        let f = try FixFixture.shared.get()
        let dir = try scratchDir("bad")
        try write("#!/bin/sh\necho hi\n", to: dir + "/script")
        let trace = dir + "/true.lpt"
        _ = try run([loadprobe, "-q", "-o", trace, "--", "/bin/true"])
        // A trace of the program cut short (a killed recording, a copy that stopped): said so.
        _ = try run([loadprobe, "-q", "-o", dir + "/app.lpt", "--", f.app])
        try Data(try Data(contentsOf: URL(fileURLWithPath: dir + "/app.lpt")).prefix(16)).write(to: URL(fileURLWithPath: dir + "/cut.lpt"))
        for (argv, words) in [
            (["shrinkwrap", f.app, "-o", dir + "/o", "--from", dir + "/cut.lpt"], "the trace was cut short: record the program again"),
            (["shrinkwrap", dir + "/missing", "-o", dir + "/o"], "No such file"),
            (["shrinkwrap", dir + "/script", "-o", dir + "/o"], "not an ELF"),
            (["shrinkwrap", f.app, "-o", dir + "/o", "--from", trace], "has no recorded start-up of"),
            (["shrinkwrap", f.app, "-o", dir + "/o", "--from", dir + "/missing.lpt"], "missing.lpt"),
            (["shrinkwrap", f.app, "-o", dir + "/o", "--lift-dlopen"], "needs '--from TRACE'"),
        ] {
            let r = try run([loadprobe, "fix"] + argv)
            #expect(r.status != 0 && r.stderrText.split(separator: "\n").count == 1 && r.stderrText.contains(words),
                    "\(argv): \(r.status) \(r.stderrText)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir + "/o"))
    }

    @Test("$ORIGIN: a copy in another directory keeps finding what the program dlopens through its $ORIGIN RUNPATH")
    func origin() throws {
        let dir = try scratchDir("origin")
        try makeDirectories(dir, ["pkg/bin", "pkg/lib", "out"])
        try write("int dep_value(void) { return 4; }\n", to: dir + "/dep.c")
        try gcc(["-shared", "-fPIC", "-Wl,-soname,libdep.so", "-o", dir + "/pkg/lib/libdep.so", dir + "/dep.c"])
        try write("int plug_value(void) { return 50; }\n", to: dir + "/plug.c")
        try gcc(["-shared", "-fPIC", "-Wl,-soname,libplug.so", "-o", dir + "/pkg/lib/libplug.so", dir + "/plug.c"])
        try write("""
            #include <dlfcn.h>
            #include <stdio.h>
            int dep_value(void);
            int main(void) {
                void *h = dlopen("libplug.so", RTLD_NOW);
                int (*p)(void) = h ? (int (*)(void))dlsym(h, "plug_value") : 0;
                printf("%d\\n", dep_value() + (p ? p() : 1000));
                return 0;
            }
            """, to: dir + "/main.c")
        try gcc([dir + "/main.c", "-o", dir + "/pkg/bin/app", "-L" + dir + "/pkg/lib", "-ldep", "-ldl", "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib"])
        let out = dir + "/out/app"
        let r = try run([loadprobe, "fix", "shrinkwrap", dir + "/pkg/bin/app", "-o", out, "--check"])
        #expect(r.status == 0, "\(r.stdoutText) \(r.stderrText)")
        #expect(try run([out]).stdoutText == "54\n", "the copy still finds libplug.so")
        #expect(try run(["patchelf", "--print-rpath", out]).stdoutText == dir + "/pkg/bin/../lib\n")
        // In the program's own directory $ORIGIN means the same: the path is left as it is.
        let beside = dir + "/pkg/bin/app.sw"
        #expect(try run([loadprobe, "fix", "shrinkwrap", dir + "/pkg/bin/app", "-o", beside]).status == 0)
        #expect(try run(["patchelf", "--print-rpath", beside]).stdoutText == "$ORIGIN/../lib\n")
    }

    @Test("nothing is installed when --check fails or patchelf does not do its work; a failed --overwrite leaves the earlier view working; only a view loadprobe made is replaced")
    func failures() throws {
        let f = try FixFixture.shared.get()
        let dir = try scratchDir("failures")
        // A program that prints its own name: the copy's output differs, so --check fails.
        try write("#include <stdio.h>\nint main(int c, char **v) { puts(v[0]); return 0; }\n", to: dir + "/name.c")
        try gcc([dir + "/name.c", "-o", dir + "/name"])
        let checked = try run([loadprobe, "fix", "shrinkwrap", dir + "/name", "-o", dir + "/name.fixed", "--check"])
        #expect(checked.status == 1 && checked.stderrText.contains("--check failed: stdout differs; nothing written"), "\(checked.stderrText)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/name.fixed"))
        let idle = try run([loadprobe, "fix", "shrinkwrap", f.app, "-o", dir + "/idle", "--patchelf", "/bin/true"])
        #expect(idle.status == 1 && idle.stderrText.contains("patchelf exited 0 but the copy is not as planned"), "\(idle.stderrText)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/idle"))

        let view = dir + "/view", copy = dir + "/app.view"
        #expect(try run([loadprobe, "fix", "view", f.app, "-o", copy, "--view-dir", view]).status == 0)
        let failed = try run([loadprobe, "fix", "view", f.app, "-o", dir + "/app.view2", "--view-dir", view, "--overwrite", "--patchelf", "/bin/false"])
        #expect(failed.status == 1, "\(failed.stderrText)")
        #expect(try run([copy]).status == 5, "the earlier copy still finds its libraries in the earlier view")
        #expect(try FileManager.default.contentsOfDirectory(atPath: view).count == 6)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".loadprobe-") }
        #expect(leftovers.isEmpty, "\(leftovers)")
        // A directory of symlinks loadprobe did not make is not a view to replace.
        let other = dir + "/alternatives"
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: other + "/editor", withDestinationPath: "/bin/true")
        let refused = try run([loadprobe, "fix", "view", f.app, "-o", dir + "/app.view3", "--view-dir", other, "--overwrite"])
        #expect(refused.status == 1 && refused.stderrText.contains("is not a view made by loadprobe fix view"), "\(refused.stderrText)")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: other + "/editor")) == "/bin/true")
    }

    @Test("refused: LD_PRELOAD set, a glibc-hwcaps variant, OUTPUT one of the program's libraries, a view for a program without RPATH/RUNPATH")
    func moreRefusals() throws {
        let f = try FixFixture.shared.get()
        let dir = try scratchDir("refuse2")
        var env = ProcessInfo.processInfo.environment
        env["LD_PRELOAD"] = f.path("d1/libx.so")
        let preload = try run([loadprobe, "fix", "shrinkwrap", f.app, "-o", dir + "/o1"], env: env)
        #expect(preload.status == 1 && preload.stderrText.contains("refused: LD_PRELOAD is set"), "\(preload.stderrText)")
        let lib = try run([loadprobe, "fix", "shrinkwrap", f.app, "-o", f.path("d3/libz.so"), "--overwrite"])
        #expect(lib.status == 1 && lib.stderrText.contains("which the program loads"), "\(lib.stderrText)")
        #expect(try run([f.app]).status == 5, "libz.so is still there")
        // A library with a glibc-hwcaps/x86-64-v2 variant (every x86-64 machine of this glibc has that level).
        try FileManager.default.createDirectory(atPath: dir + "/lib/glibc-hwcaps/x86-64-v2", withIntermediateDirectories: true)
        try write("int w_value(void) { return 1; }\n", to: dir + "/w.c")
        try gcc(["-shared", "-fPIC", "-Wl,-soname,libw.so", "-o", dir + "/lib/libw.so", dir + "/w.c"])
        try gcc(["-shared", "-fPIC", "-Wl,-soname,libw.so", "-o", dir + "/lib/glibc-hwcaps/x86-64-v2/libw.so", dir + "/w.c"])
        try write("int w_value(void);\nint main(void) { return w_value() - 1; }\n", to: dir + "/m.c")
        try gcc([dir + "/m.c", "-o", dir + "/hw", "-L" + dir + "/lib", "-lw", "-Wl,--enable-new-dtags,-rpath," + dir + "/lib"])
        let hw = try run([loadprobe, "fix", "shrinkwrap", dir + "/hw", "-o", dir + "/o2"])
        #expect(hw.status == 1 && hw.stderrText.contains("glibc-hwcaps variant"), "\(hw.stderrText)")
        let plain = try run([loadprobe, "fix", "view", "/bin/true", "-o", dir + "/o3", "--view-dir", dir + "/v"])
        #expect(plain.status == 1 && plain.stderrText.contains("has no RPATH or RUNPATH"), "\(plain.stderrText)")
    }

    /// The calls a trace records, from `report --format json`.
    func recordedCalls(_ trace: String) throws -> Int { try scenarioOperations(trace)["recorded"]! }

    /// The directories `names` inside `dir`, with their parents.
    func makeDirectories(_ dir: String, _ names: [String]) throws {
        for d in names { try FileManager.default.createDirectory(atPath: dir + "/" + d, withIntermediateDirectories: true) }
    }

    /// Each scenario's operations in `report --format json TRACE EXTRA…`, by name.
    func scenarioOperations(_ trace: String, _ extra: [String] = [], cwd: String? = nil) throws -> [String: Int] {
        let d = try JSONSerialization.jsonObject(with: try run([loadprobe, "report", "--format", "json", trace] + extra, cwd: cwd).stdout) as! [String: Any]
        var out: [String: Int] = [:]
        for s in d["scenarios"] as! [[String: Any]] { out[s["name"] as! String] = s["operations"] as? Int }
        return out
    }

    @Test("$ORIGIN through '.' and '..': a program run as bin/./app, and a view whose library's $ORIGIN/../lib2 goes through the view directory: predicted, fixed and tried agree")
    func originThroughDots() throws {
        let dir = try scratchDir("origin-dots")
        try makeDirectories(dir, ["bin", "lib", "lib2"])
        try write("int b(void) { return 5; }\n", to: dir + "/b.c")
        try gcc(["-shared", "-fPIC", "-o", dir + "/lib2/libb.so", dir + "/b.c"])
        try write("int b(void);\nint a(void) { return b() + 1; }\n", to: dir + "/a.c")
        try gcc(["-shared", "-fPIC", "-o", dir + "/lib/liba.so", dir + "/a.c", "-L" + dir + "/lib2", "-lb", "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib2"])
        try write("#include <stdio.h>\nint a(void);\nint main(void) { printf(\"%d\\n\", a()); return 0; }\n", to: dir + "/m.c")
        try gcc([dir + "/m.c", "-o", dir + "/bin/app", "-L" + dir + "/lib", "-la", "-Wl,-rpath-link," + dir + "/lib2",
                 "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../nolib:$ORIGIN/../lib"])
        // Run as bin/./app from the directory: ld.so's $ORIGIN is the directory of /proc/self/exe, without the dot.
        let dotted = try run([loadprobe, "-q", "-o", dir + "/dot.lpt", "--", "bin/./app"], cwd: dir)
        #expect(dotted.stdoutText == "6\n", "\(dotted.stderrText)")
        let report = try run([loadprobe, "report", dir + "/dot.lpt"]).stdoutText
        #expect(report.contains("(+0.0%)"), "\(report)")
        let fixed = try run([loadprobe, "fix", "shrinkwrap", dir + "/bin/app", "-o", dir + "/bin/app.sw", "--from", dir + "/dot.lpt"])
        #expect(fixed.status == 0, "\(fixed.stderrText)")
        // The view: liba is loaded as view/liba.so, so its $ORIGIN/../lib2 is the view's parent's lib2.
        let view = dir + "/view"
        #expect(try run([loadprobe, "fix", "view", dir + "/bin/app", "-o", dir + "/bin/app.view", "--view-dir", view, "--from", dir + "/dot.lpt"]).status == 0)
        #expect(try run([loadprobe, "-q", "-o", dir + "/view.lpt", "--", dir + "/bin/app.view"]).stdoutText == "6\n")
        let tried = try run([loadprobe, "-q", "-o", dir + "/w.lpt", "--what-if", "view", "--view-dir", view, "--from", dir + "/dot.lpt", "--", "bin/./app"], cwd: dir)
        #expect(tried.status == 0 && tried.stdoutText == "6\n", "\(tried.stderrText)")
        let predicted = try scenarioOperations(dir + "/dot.lpt", ["--view-dir", view])["view"]
        let applied = try recordedCalls(dir + "/view.lpt"), whatIf = try recordedCalls(dir + "/w.lpt")
        // The view copy's RUNPATH has no $ORIGIN: ld.so no longer reads /proc/self/exe. The unchanged program
        // under the what-if still does (at start, before any search): its one call more.
        #expect(predicted == applied && whatIf == applied + 1, "view: predicted \(predicted ?? -1), applied \(applied), tried \(whatIf)")
        #expect(try run([loadprobe, "report", "--calls", dir + "/view.lpt"]).stdoutText.contains("readlink /proc/self/exe") == false)
        #expect(try run([loadprobe, "report", "--calls", dir + "/w.lpt"]).stdoutText.contains("readlink /proc/self/exe"))
    }

    @Test("fix view links the library ld.so would take for a later dlopen, not a file of another machine earlier on the path")
    func viewSkipsForeignFiles() throws {
        let dir = try scratchDir("view-foreign")
        try makeDirectories(dir, ["d1", "d2", "lib"])
        try write("int bar(void) { return 9; }\n", to: dir + "/bar.c")
        try gcc(["-shared", "-fPIC", "-o", dir + "/d2/libbar.so", dir + "/bar.c"])
        // The same library for another machine (e_machine made aarch64) earlier on the path: ld.so skips it.
        var foreign = [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/d2/libbar.so")))
        foreign[18] = 0xb7; foreign[19] = 0
        try Data(foreign).write(to: URL(fileURLWithPath: dir + "/d1/libbar.so"))
        try write("int foo(void) { return 1; }\n", to: dir + "/foo.c")
        try gcc(["-shared", "-fPIC", "-o", dir + "/lib/libfoo.so", dir + "/foo.c"])
        try write("""
            #include <dlfcn.h>
            #include <stdio.h>
            #include <stdlib.h>
            int foo(void);
            int main(void) { int r = foo(); if (getenv("PLUG")) { void *h = dlopen("libbar.so", RTLD_NOW);
              if (!h) { printf("%s\\n", dlerror()); return 1; } r += ((int (*)(void))dlsym(h, "bar"))(); } printf("%d\\n", r); return 0; }
            """, to: dir + "/m.c")
        try gcc([dir + "/m.c", "-o", dir + "/app", "-ldl", "-L" + dir + "/lib", "-lfoo",
                 "-Wl,--enable-new-dtags,-rpath," + ["d1", "d2", "lib"].map { dir + "/" + $0 }.joined(separator: ":")])
        var env = ProcessInfo.processInfo.environment
        env["PLUG"] = "1"
        #expect(try run([dir + "/app"], env: env).stdoutText == "10\n")
        // Recorded without the dlopen, as a user records a run that did not need the plug-in.
        _ = try run([loadprobe, "-q", "-o", dir + "/app.lpt", "--", dir + "/app"])
        let made = try run([loadprobe, "fix", "view", dir + "/app", "-o", dir + "/app.view", "--view-dir", dir + "/view", "--from", dir + "/app.lpt"])
        #expect(made.status == 0, "\(made.stderrText)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: dir + "/view/libbar.so") == dir + "/d2/libbar.so")
        #expect(try run([dir + "/app.view"], env: env).stdoutText == "10\n")
    }

    @Test("bind where two objects ask for a library by a name that is not its soname: predicted, tried and a real bind (patchelf) make the same calls")
    func bindAliasTwice() throws {
        let dir = try scratchDir("bind-alias")
        try makeDirectories(dir, ["foo", "bar", "bind"])
        try write("int foo(void) { return 4; }\n", to: dir + "/foo.c")
        try gcc(["-shared", "-fPIC", "-Wl,-soname,libfoo.so.1", "-o", dir + "/foo/libfoo.so.1.0", dir + "/foo.c"])
        try write("int foo(void);\nint bar(void) { return foo() + 1; }\n", to: dir + "/bar.c")
        try gcc(["-shared", "-fPIC", "-o", dir + "/bar/libbar.so", dir + "/bar.c", "-L" + dir + "/foo", "-l:libfoo.so.1.0",
                 "-Wl,--enable-new-dtags,-rpath," + dir + "/foo"])
        try write("#include <stdio.h>\nint foo(void);\nint bar(void);\nint main(void) { printf(\"%d\\n\", foo() * 10 + bar()); return 0; }\n", to: dir + "/m.c")
        try gcc([dir + "/m.c", "-o", dir + "/app", "-L" + dir + "/foo", "-l:libfoo.so.1.0", "-L" + dir + "/bar", "-lbar",
                 "-Wl,--enable-new-dtags,-rpath," + [dir + "/nx", dir + "/bar", dir + "/foo"].joined(separator: ":")])
        // Both objects ask for the file name, not the soname (as Debian's ffmpeg asks for libsndio.so.7.0).
        for object in [dir + "/bar/libbar.so", dir + "/app"] {
            _ = try run(["patchelf", "--replace-needed", "libfoo.so.1", "libfoo.so.1.0", object])
            #expect(try run(["patchelf", "--print-needed", object]).stdoutText.contains("libfoo.so.1.0\n"))
        }
        #expect(try run([loadprobe, "-q", "-o", dir + "/app.lpt", "--", dir + "/app"]).stdoutText == "45\n")
        // Spack's bind by hand: every DT_NEEDED made the absolute path it resolves to, in copies.
        _ = try run(["cp", dir + "/bar/libbar.so", dir + "/bind/libbar.so"])
        _ = try run(["patchelf", "--replace-needed", "libfoo.so.1.0", dir + "/foo/libfoo.so.1.0", dir + "/bind/libbar.so"])
        _ = try run(["cp", dir + "/app", dir + "/app.bind"])
        _ = try run(["patchelf", "--replace-needed", "libfoo.so.1.0", dir + "/foo/libfoo.so.1.0", "--replace-needed", "libbar.so",
                     dir + "/bind/libbar.so", dir + "/app.bind"])
        #expect(try run([loadprobe, "-q", "-o", dir + "/bind.lpt", "--", dir + "/app.bind"]).stdoutText == "45\n")
        let tried = try run([loadprobe, "-q", "-o", dir + "/w.lpt", "--what-if", "bind", "--from", dir + "/app.lpt", "--", dir + "/app"])
        #expect(tried.stdoutText == "45\n")
        let predicted = try scenarioOperations(dir + "/app.lpt")["bind"]
        let applied = try recordedCalls(dir + "/bind.lpt"), whatIf = try recordedCalls(dir + "/w.lpt")
        #expect(predicted == applied && whatIf == applied, "predicted \(predicted ?? -1), applied \(applied), tried \(whatIf)")
    }

    @Test("each dlopen that consults ld.so.cache reads it again (ld.so unmaps it after every load): the model and the what-if count it as the program does")
    func cacheReadPerLoad() throws {
        let dir = try scratchDir("cache-per-load")
        try write("""
            #include <dlfcn.h>
            #include <stdio.h>
            int main(void) { printf("%d %d\\n", dlopen("libm.so.6", RTLD_NOW) != 0, dlopen("libz.so.1", RTLD_NOW) != 0); return 0; }
            """, to: dir + "/m.c")
        try gcc([dir + "/m.c", "-o", dir + "/m", "-ldl"])
        #expect(try run([loadprobe, "-q", "-o", dir + "/m.lpt", "--", dir + "/m"]).stdoutText == "1 1\n")
        let calls = try run([loadprobe, "report", "--calls", dir + "/m.lpt"]).stdoutText
        #expect(calls.components(separatedBy: "openat /etc/ld.so.cache").count - 1 == 3, "\(calls)")
        let d = try JSONSerialization.jsonObject(with: try run([loadprobe, "report", "--format", "json", dir + "/m.lpt"]).stdout) as! [String: Any]
        let recorded = (d["scenarios"] as! [[String: Any]]).first { $0["name"] as? String == "recorded" }!
        let check = (recorded["inputs"] as! [String: Any])["model check"] as! String
        #expect(check.contains("(+0.0%)"), "\(check)")
        // A view: each of the three loads misses in the view, then reads the cache; the what-if makes those reads
        // itself (the dlopens are answered too), once per load as ld.so does.
        try FileManager.default.createDirectory(atPath: dir + "/lib", withIntermediateDirectories: true)
        try write("int foo(void) { return 1; }\n", to: dir + "/foo.c")
        try gcc(["-shared", "-fPIC", "-o", dir + "/lib/libfoo.so", dir + "/foo.c"])
        try write("""
            #include <dlfcn.h>
            #include <stdio.h>
            int foo(void);
            int main(void) { printf("%d %d\\n", dlopen("libm.so.6", RTLD_NOW) != 0, foo() + (dlopen("libz.so.1", RTLD_NOW) != 0)); return 0; }
            """, to: dir + "/v.c")
        try gcc([dir + "/v.c", "-o", dir + "/v", "-ldl", "-L" + dir + "/lib", "-lfoo", "-Wl,--enable-new-dtags,-rpath," + dir + "/lib"])
        #expect(try run([loadprobe, "-q", "-o", dir + "/v.lpt", "--", dir + "/v"]).stdoutText == "1 2\n")
        #expect(try run([loadprobe, "fix", "view", dir + "/v", "-o", dir + "/v.view", "--view-dir", dir + "/view", "--from", dir + "/v.lpt"]).status == 0)
        #expect(try run([loadprobe, "-q", "-o", dir + "/fixed.lpt", "--", dir + "/v.view"]).stdoutText == "1 2\n")
        let tried = try run([loadprobe, "-q", "-o", dir + "/w.lpt", "--what-if", "view", "--view-dir", dir + "/view", "--from", dir + "/v.lpt", "--", dir + "/v"])
        #expect(tried.stdoutText == "1 2\n")
        func cacheReads(_ t: String) throws -> Int {
            try run([loadprobe, "report", "--calls", t]).stdoutText.components(separatedBy: "openat /etc/ld.so.cache").count - 1
        }
        #expect(try cacheReads(dir + "/fixed.lpt") == 3 && cacheReads(dir + "/w.lpt") == 3)
        #expect(try recordedCalls(dir + "/w.lpt") == recordedCalls(dir + "/fixed.lpt"))
    }

    @Test("--what-if view where a search left to ld.so misses in the directories an answered one missed in first (a library's own RPATH; LD_LIBRARY_PATH): the fixed view's calls")
    func whatIfViewSharedMisses() throws {
        let dir = try scratchDir("wi-shared")
        try makeDirectories(dir, ["a", "b", "c", "q"])
        try write("int b_value(void) { return 2; }\n", to: dir + "/b.c")
        try gcc(["-shared", "-fPIC", "-Wl,-soname,libb.so", "-o", dir + "/b/libb.so", dir + "/b.c"])
        try write("int q_value(void) { return 3; }\n", to: dir + "/q.c")
        try gcc(["-shared", "-fPIC", "-Wl,-soname,libq.so", "-o", dir + "/q/libq.so", dir + "/q.c"])
        // liba's own RPATH (nx is missing, q holds libq): its libb request goes on to the program's RPATH
        // (answered by the what-if), its libq request ends in q (left to ld.so, after the same misses).
        try write("int b_value(void);\nint q_value(void);\nint a_value(void) { return 40 + b_value() * q_value(); }\n", to: dir + "/a.c")
        try gcc(["-shared", "-fPIC", "-Wl,-soname,liba.so", "-o", dir + "/a/liba.so", dir + "/a.c", "-L" + dir + "/b", "-lb", "-L" + dir + "/q", "-lq",
                 "-Wl,--disable-new-dtags,-rpath," + dir + "/nx:" + dir + "/q"])
        try write("#include <stdio.h>\nint a_value(void);\nint main(void) { printf(\"%d\\n\", a_value()); return 0; }\n", to: dir + "/m.c")
        let rpath = ["c", "a", "b"].map { dir + "/" + $0 }.joined(separator: ":")
        try gcc([dir + "/m.c", "-o", dir + "/app", "-L" + dir + "/a", "-la", "-Wl,-rpath-link," + dir + "/b:" + dir + "/q",
                 "-Wl,--disable-new-dtags,-rpath," + rpath])
        for (label, libraryPath) in [("own RPATH", nil), ("LD_LIBRARY_PATH", dir + "/nolib:" + dir + "/c")] {
            var env = ProcessInfo.processInfo.environment
            env["LD_LIBRARY_PATH"] = libraryPath
            let tag = libraryPath == nil ? "o" : "l"
            let trace = dir + "/app-\(tag).lpt", view = dir + "/view-\(tag)"
            #expect(try run([loadprobe, "-q", "-o", trace, "--", dir + "/app"], env: env).stdoutText == "46\n")
            let made = try run([loadprobe, "fix", "view", dir + "/app", "-o", dir + "/app.view-\(tag)", "--view-dir", view, "--from", trace, "--force"], env: env)
            #expect(made.status == 0, "\(label): \(made.stderrText)")
            #expect(try run([loadprobe, "-q", "-o", dir + "/view-\(tag).lpt", "--", dir + "/app.view-\(tag)"], env: env).stdoutText == "46\n")
            let tried = try run([loadprobe, "-q", "-o", dir + "/whatif-\(tag).lpt", "--what-if", "view", "--view-dir", view, "--from", trace, "--", dir + "/app"], env: env)
            #expect(tried.stdoutText == "46\n", "\(label): \(tried.stderrText)")
            let fixed = try recordedCalls(dir + "/view-\(tag).lpt"), whatIf = try recordedCalls(dir + "/whatif-\(tag).lpt")
            let original = try recordedCalls(trace)
            #expect(whatIf == fixed && fixed < original, "\(label): fixed \(fixed), what-if \(whatIf), original \(original)")
        }
    }

    @Test("--what-if view on an RPATH-only program whose library inherits the RPATH: the fixed view's calls, the view directory's own lookups included")
    func whatIfViewInheritedRpath() throws {
        let dir = try scratchDir("wi-rpath")
        try makeDirectories(dir, ["a", "b", "c", "d", "e"])
        try write("int b_value(void) { return 2; }\n", to: dir + "/b.c")
        try gcc(["-shared", "-fPIC", "-Wl,-soname,libb.so", "-o", dir + "/b/libb.so", dir + "/b.c"])
        // liba has no search path of its own: it finds libb through the program's RPATH.
        try write("int b_value(void);\nint a_value(void) { return 40 + b_value(); }\n", to: dir + "/a.c")
        try gcc(["-shared", "-fPIC", "-Wl,-soname,liba.so", "-o", dir + "/a/liba.so", dir + "/a.c", "-L" + dir + "/b", "-lb"])
        try write("#include <stdio.h>\nint a_value(void);\nint main(void) { printf(\"%d\\n\", a_value()); return 0; }\n", to: dir + "/m.c")
        let rpath = ["c", "d", "e", "a", "b"].map { dir + "/" + $0 }.joined(separator: ":")
        try gcc([dir + "/m.c", "-o", dir + "/app", "-L" + dir + "/a", "-la", "-Wl,-rpath-link," + dir + "/b", "-Wl,--disable-new-dtags,-rpath," + rpath])
        let trace = dir + "/app.lpt"
        #expect(try run([loadprobe, "-q", "-o", trace, "--", dir + "/app"]).stdoutText == "42\n")
        #expect(try run([loadprobe, "fix", "view", dir + "/app", "-o", dir + "/app.view", "--view-dir", dir + "/view", "--from", trace]).status == 0)
        #expect(try run([loadprobe, "-q", "-o", dir + "/view.lpt", "--", dir + "/app.view"]).stdoutText == "42\n")
        let tried = try run([loadprobe, "-q", "-o", dir + "/whatif.lpt", "--what-if", "view", "--from", trace, "--", dir + "/app"])
        #expect(tried.stdoutText == "42\n", "\(tried.stderrText)")
        let original = try recordedCalls(trace), fixed = try recordedCalls(dir + "/view.lpt"), whatIf = try recordedCalls(dir + "/whatif.lpt")
        #expect(whatIf < original, "\(original) → \(whatIf)")
        // The view directory's own lookups (its hwcaps and legacy subdirectories probed once, a miss for libc.so.6,
        // ld.so.cache) are made by the what-if where the view would be (the default place is the fix's here).
        #expect(whatIf == fixed, "fixed \(fixed), what-if \(whatIf), original \(original)")
        // What it cannot measure (the links' own lookups) is said by report and diff.
        #expect(try run([loadprobe, "report", dir + "/whatif.lpt"]).stdoutText.contains("the view's links are not made by a what-if"))
        #expect(try run([loadprobe, "diff", trace, dir + "/whatif.lpt"]).stdoutText.contains("note: the view's links are not made by a what-if"))
        #expect(!(try run([loadprobe, "diff", trace, dir + "/view.lpt"]).stdoutText.contains("links are not made")))
    }

    @Test("--what-if refuses a trace recorded in another LD_LIBRARY_PATH, and an -o that is the --from trace")
    func whatIfRefusals() throws {
        let f = try FixFixture.shared.get()
        let dir = try scratchDir("wi-refuse")
        let trace = dir + "/app.lpt"
        _ = try run([loadprobe, "-q", "-o", trace, "--", f.app])
        var env = ProcessInfo.processInfo.environment
        env["LD_LIBRARY_PATH"] = f.path("d3")
        let r = try run([loadprobe, "-q", "-o", dir + "/w.lpt", "--what-if", "shrinkwrap", "--from", trace, "--", f.app], env: env)
        #expect(r.status == 1 && r.stderrText.contains("was recorded with LD_LIBRARY_PATH=(unset), this run has LD_LIBRARY_PATH="), "\(r.stderrText)")
        let before = try Data(contentsOf: URL(fileURLWithPath: trace))
        let same = try run([loadprobe, "-q", "-o", trace, "--what-if", "shrinkwrap", "--from", trace, "--", f.app])
        #expect(same.status == 64 && same.stderrText.contains("is the trace given with --from"), "\(same.stderrText)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: trace)) == before)
        let program = try run([loadprobe, "-q", "-o", f.app, "--", f.app])
        #expect(program.status == 64 && program.stderrText.contains("is the program to record"), "\(program.stderrText)")
        // --view-dir must be where `fix view` could make the view.
        try write("x", to: dir + "/a-file")
        try FileManager.default.createDirectory(atPath: dir + "/full", withIntermediateDirectories: true)
        try write("x", to: dir + "/full/other")
        for (viewDir, says) in [("/", "a directory of its own"), (dir + "/a-file", "exists and is not a directory"),
                                (dir + "/full", "not empty, and not a view made by 'loadprobe fix view'"),
                                (dir + "/no/such/view", "is not a directory: 'fix view' could not make the view there")] {
            let r = try run([loadprobe, "-q", "-o", dir + "/v.lpt", "--what-if", "view", "--view-dir", viewDir, "--from", trace, "--", f.app])
            #expect(r.status == 1 && r.stderrText.contains("--view-dir \(viewDir): ") && r.stderrText.contains(says) && r.stderrText.split(separator: "\n").count == 1,
                    "\(viewDir): \(r.stderrText)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/v.lpt"))
        }
        // A program rebuilt since the trace (another DT_NEEDED) is not answered with the old one's libraries.
        let copy = dir + "/app-copy"
        _ = try run(["cp", f.app, copy])
        _ = try run([loadprobe, "-q", "-o", dir + "/copy.lpt", "--", copy])
        _ = try run(["patchelf", "--add-needed", "libm.so.6", copy])
        let changed = try run([loadprobe, "-q", "-o", dir + "/c.lpt", "--what-if", "shrinkwrap", "--from", dir + "/copy.lpt", "--", copy])
        #expect(changed.status == 1 && changed.stderrText.contains("has changed since \(dir)/copy.lpt was recorded"), "\(changed.stderrText)")
        // --view-dir is the view's place: with --what-if view only.
        for (args, says) in [(["--what-if", "shrinkwrap", "--from", trace, "--view-dir", dir + "/v"], "--view-dir goes with --what-if view only"),
                             (["--view-dir", dir + "/v"], "--from, --lift-dlopen and --view-dir go with --what-if SCENARIO")] {
            let r = try run([loadprobe, "-q", "-o", dir + "/v.lpt"] + args + ["--", f.app])
            #expect(r.status == 64 && r.stderrText.contains(says), "\(args): \(r.stderrText)")
        }
    }

    @Test("report of an audit-only (--no-ptrace) trace: the unchanged start-up is modeled too, so the fixes show a gain, not a loss")
    func auditOnlyReport() throws {
        let f = try FixFixture.shared.get()
        let dir = try scratchDir("audit-only")
        _ = try run([loadprobe, "--no-ptrace", "-q", "-o", dir + "/np.lpt", "--", f.app])
        _ = try run([loadprobe, "-q", "-o", dir + "/full.lpt", "--", f.app])
        let ops = try scenarioOperations(dir + "/np.lpt")
        #expect(ops["recorded"]! > 0 && ops["shrinkwrap"]! < ops["recorded"]!, "\(ops)")
        // Near the full trace's count: without system calls the trace does not say which hwcaps subdirectories
        // exist, so the model probes a few the full run knew missing.
        let full = try recordedCalls(dir + "/full.lpt")
        #expect(Double(abs(full - ops["recorded"]!)) <= 0.3 * Double(full), "full \(full), modeled \(ops["recorded"]!)")
        #expect(try run([loadprobe, "report", dir + "/np.lpt"]).stdoutText.contains("recorded through the audit library alone"))
        // Started by a relative path (the audit library names an image by its argv[0], "./app"): still simulated,
        // to the same figures, and a what-if can be made from it.
        let appDir = (f.app as NSString).deletingLastPathComponent, appName = (f.app as NSString).lastPathComponent
        _ = try run([loadprobe, "--no-ptrace", "-q", "-o", dir + "/np-rel.lpt", "--", "./" + appName], cwd: appDir)
        let relOps = try scenarioOperations(dir + "/np-rel.lpt")
        #expect(relOps["recorded"] == ops["recorded"] && relOps["shrinkwrap"] == ops["shrinkwrap"], "relative \(relOps), absolute \(ops)")
        let fromRelative = try run([loadprobe, "--no-ptrace", "-q", "-o", dir + "/np-rel-w.lpt", "--what-if", "shrinkwrap", "--from", dir + "/np-rel.lpt",
                                    "--", "./" + appName], cwd: appDir)
        #expect(fromRelative.status == 5 && fromRelative.stderrText == "done\n", "\(fromRelative.stderrText)")  // the program's own status and stderr
        // An audit-only what-if is modeled in the fixed world it tried (not the unchanged one): the scenario's
        // prediction from the same kind of trace.
        for scenario in ["shrinkwrap", "bind", "view"] {
            let out = dir + "/np-\(scenario).lpt"
            _ = try run([loadprobe, "--no-ptrace", "-q", "-o", out, "--what-if", scenario, "--from", dir + "/full.lpt", "--", f.app])
            let recorded = try scenarioOperations(out)["recorded"]
            #expect(recorded == ops[scenario], "\(scenario): what-if modeled at \(recorded ?? -1), predicted \(ops[scenario]!), unchanged \(ops["recorded"]!)")
        }
    }

    @Test("an audit-only what-if: only the answered program is priced in the fixed world, not a program it runs")
    func auditOnlyWhatIfChild() throws {
        let dir = try scratchDir("audit-only-child")
        try makeDirectories(dir, ["lib", "e1", "e2", "e3"])
        try write("int v(void) { return 7; }\n", to: dir + "/v.c")
        try gcc(["-shared", "-fPIC", "-o", dir + "/lib/libv.so", dir + "/v.c"])
        let runpath = "-Wl,--enable-new-dtags,-rpath," + ["e1", "e2", "e3", "lib"].map { dir + "/" + $0 }.joined(separator: ":")
        try write("#include <stdio.h>\nint v(void);\nint main(void) { printf(\"child %d\\n\", v()); return 0; }\n", to: dir + "/c.c")
        try gcc([dir + "/c.c", "-o", dir + "/c", "-L" + dir + "/lib", "-lv", runpath])
        try write("""
            #include <stdio.h>
            #include <unistd.h>
            #include <sys/wait.h>
            int v(void);
            int main(void) { printf("parent %d\\n", v()); fflush(stdout); pid_t p = fork();
              if (p == 0) { execl("\(dir)/c", "\(dir)/c", (char *)0); _exit(127); } int st; waitpid(p, &st, 0); return WEXITSTATUS(st); }
            """, to: dir + "/p.c")
        try gcc([dir + "/p.c", "-o", dir + "/p", "-L" + dir + "/lib", "-lv", runpath])
        _ = try run([loadprobe, "-q", "-o", dir + "/full.lpt", "--", dir + "/p"])
        _ = try run([loadprobe, "--no-ptrace", "-q", "-o", dir + "/np.lpt", "--", dir + "/p"])
        let tried = try run([loadprobe, "--no-ptrace", "-q", "-o", dir + "/w.lpt", "--what-if", "shrinkwrap", "--from", dir + "/full.lpt", "--", dir + "/p"])
        #expect(tried.stdoutText == "parent 7\nchild 7\n", "\(tried.stderrText)")
        let np = try scenarioOperations(dir + "/np.lpt"), w = try scenarioOperations(dir + "/w.lpt")
        // The two programs load the same library through the same RUNPATH: each is half of every figure. The
        // shrinkwrap prediction fixes both; the what-if fixed the parent alone, the child's search is still in it.
        #expect(np["shrinkwrap"]! < np["recorded"]! && w["recorded"]! == (np["recorded"]! + np["shrinkwrap"]!) / 2, "unchanged \(np), what-if \(w)")
    }

    @Test("a fix ended by SIGTERM during --check leaves no copy, no scratch directory and no recording running")
    func killedDuringCheck() throws {
        let dir = try scratchDir("killed")
        try write("#include <unistd.h>\nint main(void) { sleep(30); return 0; }\n", to: dir + "/slow.c")
        try gcc([dir + "/slow.c", "-o", dir + "/slow"])
        // --check's scratch directory goes to $TMPDIR: one of this test's own (other tests run --check at the same time).
        let tmp = dir + "/tmp"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: loadprobe)
        p.arguments = ["fix", "shrinkwrap", dir + "/slow", "-o", dir + "/slow.fixed", "--check"]
        var env = ProcessInfo.processInfo.environment
        env["TMPDIR"] = tmp
        p.environment = env
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        // The prediction is printed just before --check starts the two recordings.
        var seen = ""
        while !seen.contains("predicted file calls") {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            seen += String(decoding: chunk, as: UTF8.self)
        }
        usleep(500_000)
        let during = try FileManager.default.contentsOfDirectory(atPath: tmp)
        #expect(during.count == 1 && during[0].hasPrefix("loadprobe-check-"), "scratch directory while --check runs: \(during)")
        p.terminate()
        p.waitUntilExit()
        #expect(p.terminationReason == .uncaughtSignal && p.terminationStatus == SIGTERM, "\(p.terminationReason) \(p.terminationStatus)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/slow.fixed"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".loadprobe-") }.isEmpty)
        let leftInTmp = try FileManager.default.contentsOfDirectory(atPath: tmp)
        #expect(leftInTmp.isEmpty, "\(leftInTmp)")
        usleep(300_000)
        let left = try run(["pgrep", "-f", dir + "/slow"])
        #expect(left.stdoutText.isEmpty, "still running: \(left.stdoutText)")
    }

    @Test("relative RPATH entries (relative to the working directory): the what-ifs answer every library search, the shrinkwrapped copy runs from anywhere")
    func relativeRpath() throws {
        let dir = try scratchDir("relative")
        try makeDirectories(dir, ["pkgs/a", "pkgs/b", "pkgs/c"])
        try write("int a_value(void) { return 1; }\n", to: dir + "/a.c")
        try gcc(["-shared", "-fPIC", "-Wl,-soname,liba.so", "-o", dir + "/pkgs/b/liba.so", dir + "/a.c"])
        try write("int a_value(void);\nint main(void) { return a_value() + 4; }\n", to: dir + "/m.c")
        try gcc([dir + "/m.c", "-o", dir + "/app", "-L" + dir + "/pkgs/b", "-la", "-Wl,--disable-new-dtags,-rpath,pkgs/a:pkgs/b:pkgs/c"])
        #expect(try run([dir + "/app"], cwd: dir).status == 5)
        _ = try run([loadprobe, "-q", "-o", "app.lpt", "--", "./app"], cwd: dir)
        for scenario in ["shrinkwrap", "bind", "view"] {
            let out = "whatif-\(scenario).lpt"
            let r = try run([loadprobe, "-q", "-o", out, "--what-if", scenario, "--from", "app.lpt", "--", "./app"], cwd: dir)
            #expect(r.status == 5, "\(scenario): \(r.stderrText)")
            let said = try run([loadprobe, "report", out], cwd: dir).stdoutText
            // Bind leaves libc's name (ld.so.cache found it): its search runs as before.
            let expected = scenario == "bind" ? "1 search answered from the earlier trace, 1 search it did not cover" : "0 searches it did not cover ran normally"
            #expect(said.contains(expected), "\(scenario): \(said.split(separator: "\n").filter { $0.contains("what-if") })")
        }
        let fixed = try run([loadprobe, "fix", "shrinkwrap", "./app", "-o", "app.fixed", "--from", "app.lpt"], cwd: dir)
        #expect(fixed.status == 0, "\(fixed.stderrText)")
        #expect(try run([dir + "/app.fixed"], cwd: "/").status == 5, "the copy finds liba.so from / too")
        // Recorded through the audit library alone (ld.so names the library by its relative path): the model still
        // has the library, so the start-up is modeled as it ran (not as a failure) and the fixes show their gain.
        _ = try run([loadprobe, "--no-ptrace", "-q", "-o", "np.lpt", "--", "./app"], cwd: dir)
        let app = try scenarioOperations("app.lpt", cwd: dir), np = try scenarioOperations("np.lpt", cwd: dir)
        let full = app["recorded"]!, modeled = np["recorded"]!
        #expect(Double(abs(full - modeled)) <= 0.3 * Double(full) && np["shrinkwrap"]! * 2 < modeled, "full \(app), audit-only \(np)")
    }
}
