import Foundation
import TestSupport
import Testing

/// A store-style program (every library in its own directory, every object's
/// RUNPATH naming every store directory), one library needing another under
/// a name that is not its soname (liba.so.1.0 for a file whose soname is
/// liba.so.1, as Debian's libsndio.so.7.0), and a dlopen. Fixed for real with
/// patchelf (shrinkwrap, bind, view) and recorded: each scenario's predicted
/// calls must be the calls the real fixed program makes.
struct StoreFixture: Sendable {
    let dir: String
    var store: String { dir + "/store" }
    func lib(_ name: String) -> String { store + "/\(name)/lib" }
    var app: String { store + "/app/bin/app" }
    var traces: String { dir + "/traces" }
    static let names = ["a", "b", "k", "d", "e", "plug"]

    static let shared: Result<StoreFixture, TestFailure> = {
        do { return .success(try StoreFixture.build()) } catch {
            return .failure(error as? TestFailure ?? TestFailure("\(error)"))
        }
    }()

    static func build() throws -> StoreFixture {
        let f = StoreFixture(dir: try scratch("store"))
        for d in names.map(f.lib) + [f.store + "/app/bin", f.dir + "/src", f.traces, f.dir + "/view"] {
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        }
        // liba's directory last: a search for it misses in every other directory first.
        let all = names.reversed().map(f.lib).joined(separator: ":")
        // liba.so.1.0 (soname liba.so.1) with a liba.so.1 link beside it; b needs "liba.so.1.0".
        try write("int a_value(void) { return 1; }\n", to: f.dir + "/src/a.c")
        try gcc(["-shared", "-fPIC", "-Wl,-soname,liba.so.1", "-o", f.lib("a") + "/liba.so.1.0", f.dir + "/src/a.c"])
        try FileManager.default.createSymbolicLink(atPath: f.lib("a") + "/liba.so.1", withDestinationPath: "liba.so.1.0")
        try write("int a_value(void);\nint b_value(void) { return 2 + a_value(); }\n", to: f.dir + "/src/b.c")
        try gcc(["-shared", "-fPIC", "-Wl,-soname,libb.so.2", "-o", f.lib("b") + "/libb.so.2", f.dir + "/src/b.c",
                 f.lib("a") + "/liba.so.1.0", "-Wl,--enable-new-dtags,-rpath," + all])
        _ = try must(["patchelf", "--replace-needed", "liba.so.1", "liba.so.1.0", f.lib("b") + "/libb.so.2"])
        for (n, v) in [("k", 3), ("d", 4)] {
            try write("int \(n)_value(void) { return \(v); }\n", to: f.dir + "/src/\(n).c")
            try gcc(["-shared", "-fPIC", "-Wl,-soname,lib\(n).so", "-o", f.lib(n) + "/lib\(n).so", f.dir + "/src/\(n).c",
                     "-Wl,--enable-new-dtags,-rpath," + all])
        }
        try write("int d_value(void);\nint e_value(void) { return 5 + d_value(); }\n", to: f.dir + "/src/e.c")
        try gcc(["-shared", "-fPIC", "-Wl,-soname,libe.so", "-o", f.lib("e") + "/libe.so", f.dir + "/src/e.c",
                 "-L" + f.lib("d"), "-ld", "-Wl,--enable-new-dtags,-rpath," + all])
        try write("int e_value(void);\nint plug_value(void) { return 10 * e_value(); }\n", to: f.dir + "/src/plug.c")
        try gcc(["-shared", "-fPIC", "-Wl,-soname,libplug.so", "-o", f.lib("plug") + "/libplug.so", f.dir + "/src/plug.c",
                 "-L" + f.lib("e"), "-le", "-Wl,-rpath-link," + f.lib("d"), "-Wl,--enable-new-dtags,-rpath," + all])
        try write("""
            #include <dlfcn.h>
            #include <stdio.h>
            int b_value(void); int k_value(void);
            int main(void) {
                void *h = dlopen("libplug.so", RTLD_NOW);
                int (*plug)(void) = h ? (int (*)(void))dlsym(h, "plug_value") : 0;
                printf("%d\\n", b_value() * 1000 + k_value() * 100 + (plug ? plug() : 0));
                return 0;
            }
            """, to: f.dir + "/src/main.c")
        try gcc([f.dir + "/src/main.c", "-o", f.app, "-L" + f.lib("b"), "-l:libb.so.2", "-L" + f.lib("k"), "-lk",
                 "-Wl,-rpath-link," + f.lib("a"), "-Wl,--enable-new-dtags,-rpath," + all])
        try record([f.app], to: f.trace("app"))
        try f.fix()
        for p in [f.app, f.app + ".shrinkwrap", f.app + ".bind", f.app + ".view"] {
            let out = try must([p]).stdoutText
            if out != "3390\n" { throw TestFailure("\(p) printed \(out)") }
        }
        for (p, name) in [(f.app + ".shrinkwrap", "shrinkwrap"), (f.app + ".bind", "bind"), (f.app + ".view", "view")] {
            try record([p], to: f.traces + "/\(name).lpt")
        }
        return f
    }

    /// The three fixes: shrinkwrap and view by `loadprobe fix`, bind with patchelf as Spack would.
    func fix() throws {
        // Shrinkwrap and view: loadprobe's own fix, from the recorded run.
        _ = try must([loadprobe, "fix", "shrinkwrap", app, "-o", app + ".shrinkwrap", "--from", trace("app")])
        _ = try must([loadprobe, "fix", "view", app, "-o", app + ".view", "--view-dir", dir + "/view", "--from", trace("app")])
        // Bind: every object's DT_NEEDED made absolute, in place in a copy of the store.
        let bindStore = dir + "/bind-store"
        _ = try must(["cp", "-a", store, bindStore])
        func inBind(_ p: String) -> String { p.hasPrefix(store + "/") ? bindStore + p.dropFirst(store.count) : p }
        let bindAll = StoreFixture.names.reversed().map { inBind(lib($0)) }.joined(separator: ":")
        for n in StoreFixture.names {
            for file in try FileManager.default.contentsOfDirectory(atPath: inBind(lib(n))) {
                let p = inBind(lib(n)) + "/" + file
                guard (try? FileManager.default.destinationOfSymbolicLink(atPath: p)) == nil else { continue }
                try bind(p, resolvedIn: lib(n) + "/" + file, runpath: bindAll, inBind: inBind)
            }
        }
        try bind(inBind(app), resolvedIn: app, runpath: bindAll, inBind: inBind)
        try FileManager.default.createSymbolicLink(atPath: app + ".bind", withDestinationPath: inBind(app))
    }

    /// `file`'s DT_NEEDED made the absolute paths ld.so resolves them to for `original`, in the bind store.
    func bind(_ file: String, resolvedIn original: String, runpath: String, inBind: (String) -> String) throws {
        let needed = try must(["patchelf", "--print-needed", file]).stdoutText.split(separator: "\n").map(String.init)
        var args: [String] = []
        for n in needed where !n.hasPrefix("/") {
            // Where the object's own search finds the name: its RUNPATH, else the system's copy.
            let hit = StoreFixture.names.map { lib($0) + "/" + n }.first { FileManager.default.fileExists(atPath: $0) }
            if let hit { args += ["--replace-needed", n, inBind(hit)] }
        }
        if !args.isEmpty { _ = try must(["patchelf"] + args + [file]) }
        _ = try must(["patchelf", "--set-rpath", runpath, file])
    }

    func trace(_ name: String) -> String { traces + "/\(name).lpt" }
}

@Suite("loader fixes predicted by the one simulation, against the real fixed programs")
struct StoreFixTests {
    func scenarios(_ trace: String, _ extra: [String] = []) throws -> [String: [String: Any]] {
        let d = try json(try must([loadprobe, "report", "--format", "json", trace] + extra))
        var out: [String: [String: Any]] = [:]
        for s in d["scenarios"] as! [[String: Any]] { out[s["name"] as! String] = s }
        return out
    }

    @Test("shrinkwrap, bind and view: predicted calls are the recorded calls of the real fixes; the DT_NEEDED that is not a soname makes no search")
    func predictions() throws {
        let f = try StoreFixture.shared.get()
        let predicted = try scenarios(f.trace("app"), ["--view-dir", f.dir + "/view"])
        for fix in ["shrinkwrap", "bind", "view"] {
            let real = try scenarios(f.trace(fix))["recorded"]!
            #expect(predicted[fix]!["operations"] as? Int == real["operations"] as? Int, "\(fix)")
            #expect(predicted[fix]!["operationsBySyscall"] as? [String: Int] == real["operationsBySyscall"] as? [String: Int], "\(fix)")
        }
        // The model reproduces the recorded start-up and dlopen exactly.
        let check = (predicted["recorded"]!["inputs"] as! [String: String])["model check"] ?? ""
        #expect(check.contains("(+0.0%)"), "\(check)")
        // libb asks for "liba.so.1.0", whose file's soname is liba.so.1: the shrinkwrapped program loads that
        // file by that name through its own search path (liba's directory first), so libb's request matches
        // by name and makes no search through libb's RUNPATH (every other store directory first).
        func opens(_ program: String) throws -> [StraceLine] {
            let out = f.dir + "/strace-\((program as NSString).lastPathComponent).txt"
            _ = try must(["strace", "-f", "-e", "trace=openat", "-o", out, program])
            return Strace.parse(try String(contentsOfFile: out, encoding: .utf8))
                .filter { $0.name == "openat" && ($0.path ?? "").hasSuffix("/liba.so.1.0") }
        }
        let before = try opens(f.app), after = try opens(f.app + ".shrinkwrap")
        #expect(before.filter { !$0.path!.hasPrefix(f.lib("a") + "/") }.count >= 5, "misses in libb's RUNPATH: \(before.map(\.text))")
        #expect(after.filter { !$0.path!.hasPrefix(f.lib("a") + "/") }.isEmpty, "\(after.map(\.text))")
        #expect(after.filter { $0.path == f.lib("a") + "/liba.so.1.0" && !$0.failed }.count == 1, "\(after.map(\.text))")
    }

    /// A trace's calls as "call path = result" (times and attribution dropped), the program's own
    /// exec and its calls after main on stdout left out (they name the runner's files).
    func calls(_ trace: String) throws -> [String] {
        try must([loadprobe, "report", "--calls", trace]).stdoutText.split(separator: "\n").compactMap { line in
            guard !line.hasPrefix("#"), !line.contains("[exec,"), !line.contains("[other,"),
                  let ms = line.range(of: " ms "), let bracket = line.range(of: "  [") else { return nil }
            return String(line[ms.upperBound..<bracket.lowerBound]).trimmingCharacters(in: .whitespaces)
        }
    }

    /// What is in `a` and not in `b`, as multisets.
    func minus(_ a: [String], _ b: [String]) -> [String] {
        var count: [String: Int] = [:]
        for x in b { count[x, default: 0] += 1 }
        return a.filter { x in
            if let n = count[x], n > 0 { count[x] = n - 1; return false }
            return true
        }
    }

    @Test("--what-if against the real fixes: the same calls as each fixed program, but for the view's links opened where they point")
    func whatIfAgainstFixes() throws {
        let f = try StoreFixture.shared.get()
        func tried(_ scenario: String, _ extra: [String] = []) throws -> [String] {
            let out = f.traces + "/whatif-\(scenario).lpt"
            let r = try run([loadprobe, "-q", "-o", out, "--what-if", scenario, "--from", f.trace("app")] + extra + ["--", f.app])
            #expect(r.stdoutText == "3390\n" && r.status == 0, "\(r.stderrText)")
            return try calls(out)
        }
        #expect(try tried("bind").count == calls(f.trace("bind")).count)
        // Shrinkwrap: liba.so.1.0 is not a soname, so the fixed program searches its own RUNPATH (a's directory
        // first) to give the object that name; the what-if makes that search's misses before it answers.
        let fixed = try calls(f.trace("shrinkwrap")), whatIf = try tried("shrinkwrap")
        #expect(minus(fixed, whatIf).isEmpty && minus(whatIf, fixed).isEmpty,
                "only fixed: \(minus(fixed, whatIf)); only tried: \(minus(whatIf, fixed))")
        #expect(whatIf.contains { $0.contains(" " + f.lib("a") + "/") && $0.hasSuffix("= -2") }, "the alias's search was not made")
        // View: the view directory's own lookups (its hwcaps subdirectories, a miss for libc.so.6, ld.so.cache)
        // are made where the fix puts it; only each library's open differs: the link, or where it points.
        let viewDir = f.dir + "/view/"
        let view = try calls(f.trace("view")), viewTried = try tried("view", ["--view-dir", f.dir + "/view"])
        let onlyView = minus(view, viewTried), onlyTried = minus(viewTried, view)
        #expect(!onlyView.isEmpty && onlyView.allSatisfy { $0.hasPrefix("openat " + viewDir) && $0.hasSuffix("= 3") }, "\(onlyView)")
        #expect(onlyTried.allSatisfy { $0.hasPrefix("openat ") && $0.hasSuffix("= 3") } && onlyTried.count == onlyView.count, "\(onlyTried)")
        #expect(viewTried.contains { $0.hasPrefix("openat " + viewDir + "glibc-hwcaps/") && $0.hasSuffix("= -2") })
    }

    @Test("--no-host gives the same scenario calls from the trace alone")
    func noHost() throws {
        let f = try StoreFixture.shared.get()
        let here = try scenarios(f.trace("app"))
        let alone = try scenarios(f.trace("app"), ["--no-host"])
        for s in ["shrinkwrap", "bind", "view", "loader-cache"] {
            #expect(here[s]?["operations"] as? Int == alone[s]?["operations"] as? Int, "\(s)")
            #expect(alone[s] != nil)
        }
    }

    @Test("diff of two recordings of the unchanged program: the predictions agree within 5% (one compute on both sides)")
    func diffUnchanged() throws {
        let f = try StoreFixture.shared.get()
        let again = f.traces + "/app-again.lpt"
        try record([f.app], to: again)
        let d = try json(try must([loadprobe, "diff", "--format", "json", f.trace("app"), again, "--fs", "nfs", "--remote", f.store]))
        let speedup = try #require(d["speedup"] as? Double)
        #expect(abs(speedup - 1) <= 0.05, "\(speedup)")
        #expect(d["computeSource"] as? String == "the before trace's estimate, both sides")
        let text = try must([loadprobe, "diff", f.trace("app"), again, "--fs", "nfs", "--remote", f.store]).stdoutText
        #expect(text.contains("predicted job") && text.contains("no change"), "\(text)")
    }
}
