import Foundation
import Testing
import TestSupport

/// Python's import, attributed: the calls under the PYTHONPATH directories
/// are python-import (the extension module's load by ld.so excepted, which is
/// a dlopen group called from inside Python), checked against strace -f of the
/// same run.
@Suite("python import attribution", .serialized)
struct PythonImportTests {
    static let python = "/usr/bin/python3"

    /// One traced call under the test's directories: call, path, failed.
    struct Call: Hashable, CustomStringConvertible {
        var call: String, path: String, failed: Bool
        var description: String { "\(call) \(path)\(failed ? " (failed)" : "")" }
    }

    static func multiset(_ calls: [Call]) -> [Call: Int] { calls.reduce(into: [:]) { $0[$1, default: 0] += 1 } }

    /// strace -f of the traced call kinds; the calls whose path is under `root`.
    static func straceCalls(_ argv: [String], env: [String: String], root: String) throws -> [Call] {
        let out = try scratch("py-strace") + "/s.txt"
        // -y: a call on a descriptor (fstat's empty path) names the descriptor's file,
        // as loadprobe's resolved path does.
        let r = try run(["strace", "-f", "-qq", "-y", "-e", "trace=" + tracedCallNames.joined(separator: ","), "-o", out] + argv,
                        env: env, cwd: "/")
        guard r.status == 0 else { throw TestFailure("strace run failed: \(r.stderrText)") }
        var calls: [Call] = []
        for line in Strace.parse(try String(contentsOfFile: out, encoding: .utf8))
        where !line.resumed && !line.unfinished && tracedCallNames.contains(line.name) && line.result != nil {
            guard var path = line.path else { continue }
            if path.isEmpty, let file = line.descriptorPath { path = file } // "3</dir/file>, \"\""
            guard path.hasPrefix(root + "/") else { continue }
            calls.append(Call(call: line.name, path: path, failed: line.failed))
        }
        return calls
    }

    /// `loadprobe report --calls`: the calls under `root` with their purpose and phase.
    static func reportCalls(_ trace: String, root: String) throws -> [(Call, purpose: String, phase: String)] {
        let r = try run([loadprobe, "report", "--calls", trace])
        guard r.status == 0 else { throw TestFailure("report --calls failed: \(r.stderrText)") }
        var out: [(Call, purpose: String, phase: String)] = []
        for line in r.stdoutText.split(separator: "\n") {
            // "12.345 ms  newfstatat /path  = 0  [purpose, phase, …]"
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count >= 7, f[1] == "ms", f[4] == "=", f[3].hasPrefix(root + "/"),
                  let open = line.firstIndex(of: "["), let close = line.lastIndex(of: "]") else { continue }
            let tags = line[line.index(after: open)..<close].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            let result = Int(f[5]) ?? 0
            out.append((Call(call: String(f[2]), path: String(f[3]), failed: result < 0), tags.first ?? "", tags.count > 1 ? tags[1] : ""))
        }
        return out
    }

    @Test("calls under the PYTHONPATH directories are python-import, as many as strace sees; the extension's dlopen is called from Python",
          .timeLimit(.minutes(3)),
          .enabled(if: Needs.file("/usr/bin/python3"), "python3 is not installed"),
          .enabled(if: Needs.file("/usr/bin/strace"), "strace is not installed (it gives this test's independent count)"))
    func importAttribution() throws {
        let root = try scratch("pyimport")
        // Three sys.path directories from PYTHONPATH; the module lives in the last.
        // None of the paths says "python" or "site-packages".
        let dirs = ["first", "second", "third"].map { root + "/" + $0 }
        for d in dirs { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        try write("VALUE = 42\n", to: dirs[2] + "/lp_pure_mod.py")
        var imports = ["lp_pure_mod"]
        // A C extension module, when Python's headers are installed (python3-dev).
        let inc = try run([Self.python, "-c", "import sysconfig; print(sysconfig.get_paths()['include'])"]).stdoutText
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let suffix = try run([Self.python, "-c", "import importlib.machinery as m; print(m.EXTENSION_SUFFIXES[0])"]).stdoutText
            .trimmingCharacters(in: .whitespacesAndNewlines)
        var ext: String?
        if Needs.ci || FileManager.default.fileExists(atPath: inc + "/Python.h") {
            try write("""
            #include <Python.h>
            static struct PyModuleDef def = { PyModuleDef_HEAD_INIT, "lp_ext_mod", NULL, -1, NULL };
            PyMODINIT_FUNC PyInit_lp_ext_mod(void) { return PyModule_Create(&def); }
            """, to: root + "/src/ext.c")
            ext = dirs[2] + "/lp_ext_mod" + suffix
            try gcc(["-shared", "-fPIC", "-I" + inc, "-o", ext!, root + "/src/ext.c"])
            imports.append("lp_ext_mod")
        } else {
            print("extension-module part skipped: \(inc)/Python.h is missing (install python3-dev)")
        }
        let argv = [Self.python, "-c", "import \(imports.joined(separator: ", ")); print(lp_pure_mod.VALUE)"]
        // No .pyc written: both runs must see the same files.
        let env = ["PATH": "/usr/bin:/bin", "LANG": "C", "PYTHONPATH": dirs.joined(separator: ":"), "PYTHONDONTWRITEBYTECODE": "1"]

        let strace = try Self.straceCalls(argv, env: env, root: root)
        let trace = root + "/py.lpt"
        let rec = try run([loadprobe, "-q", "-o", trace, "--"] + argv, env: env, cwd: "/")
        #expect(rec.status == 0 && rec.stdoutText == "42\n", "\(rec.stderrText)")
        let recorded = try Self.reportCalls(trace, root: root)

        // The same calls under the directories, one for one.
        #expect(Self.multiset(recorded.map(\.0)) == Self.multiset(strace),
                "loadprobe: \(recorded.map(\.0)) strace: \(strace)")
        // Each directory's scan (its stat and listing) and the module's files are in it.
        for d in dirs { #expect(strace.contains { $0.path == d }, "python never looked at \(d)") }
        #expect(strace.contains { $0.path == dirs[2] + "/lp_pure_mod.py" && !$0.failed })

        // Purposes: python-import, except ld.so's open and fstat of the extension (its dlopen group).
        for (c, purpose, phase) in recorded {
            if phase.hasPrefix("dlopen") {
                #expect(c.path == ext && ["absolute", "object-stat"].contains(purpose), "\(c): \(purpose), \(phase)")
            } else {
                #expect(purpose == "python-import", "\(c): \(purpose), \(phase)")
            }
        }

        guard let ext else { return }
        // The extension's dlopen: a group of its own, called from inside Python
        // (the python3 executable, or libpython where Python is built shared).
        let report = try run([loadprobe, "report", "--format", "json", trace])
        let doc = try #require(try JSONSerialization.jsonObject(with: report.stdout) as? [String: Any])
        let groups = (doc["attribution"] as? [[String: Any]] ?? []).flatMap { $0["loadGroups"] as? [[String: Any]] ?? [] }
        let group = try #require(groups.first { $0["first"] as? String == ext }, "no load group for \(ext): \(groups)")
        #expect((group["phase"] as? String ?? "").hasPrefix("dlopen"))
        let caller = try #require(group["caller"] as? [String: Any], "no caller: \(group)")
        let object = caller["object"] as? String ?? ""
        let interpreter = (try? FileManager.default.destinationOfSymbolicLink(atPath: Self.python)).map {
            $0.hasPrefix("/") ? $0 : "/usr/bin/" + $0
        } ?? Self.python
        let base = (object as NSString).lastPathComponent
        #expect(object == interpreter || base.hasPrefix("libpython"), "caller \(object), python is \(interpreter)")
    }

    @Test("100 PYTHONPATH directories: the import system's calls are python-import; sys.path entries ranked; python-path predicts a real one-directory PYTHONPATH within 5%",
          .timeLimit(.minutes(3)), .enabled(if: Needs.file("/usr/bin/python3"), "python3 is not installed"))
    func consolidatedPath() throws {
        let root = try scratch("pypath")
        let dirs = (1...100).map { root + "/d\($0)" }
        var imports: [String] = []
        for (i, d) in dirs.enumerated() {
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
            if (i + 1) % 10 == 0 {
                try write("V = \(i)\n", to: d + "/lp_mod\(i).py")
                imports.append("lp_mod\(i)")
            }
        }
        // A package in the last directory, and the real fix: one directory of symlinks.
        try FileManager.default.createDirectory(atPath: dirs[99] + "/lp_pkg", withIntermediateDirectories: true)
        try write("W = 1\n", to: dirs[99] + "/lp_pkg/__init__.py")
        let view = root + "/view"
        try FileManager.default.createDirectory(atPath: view, withIntermediateDirectories: true)
        for d in dirs {
            for f in try FileManager.default.contentsOfDirectory(atPath: d) {
                try FileManager.default.createSymbolicLink(atPath: view + "/" + f, withDestinationPath: d + "/" + f)
            }
        }
        let argv = [Self.python, "-c", "import json, decimal, argparse, \((imports + ["lp_pkg"]).joined(separator: ", ")); print(lp_pkg.W)"]
        func record(_ path: [String], _ trace: String) throws {
            let env = ["PATH": "/usr/bin:/bin", "LANG": "C", "PYTHONPATH": path.joined(separator: ":"), "PYTHONDONTWRITEBYTECODE": "1"]
            let r = try run([loadprobe, "-q", "-o", trace, "--"] + argv, env: env, cwd: "/")
            #expect(r.status == 0 && r.stdoutText == "1\n", "\(r.stderrText)")
        }
        try record(dirs, root + "/long.lpt")
        try record([view], root + "/view.lpt")

        // Every call under the 100 directories is the import system's: at least 95% are attributed to it.
        let calls = try Self.reportCalls(root + "/long.lpt", root: root)
        let attributed = calls.filter { $0.purpose == "python-import" }.count
        #expect(calls.count > 1_000 && Double(attributed) >= 0.95 * Double(calls.count), "\(attributed) of \(calls.count)")

        func report(_ trace: String, _ extra: [String] = []) throws -> [String: Any] {
            let r = try run([loadprobe, "report", "--format", "json", trace] + extra)
            return try #require(try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any])
        }
        // The same entries put on sys.path by the program itself (as Pynamic's driver does): no
        // PYTHONPATH to go by, the import system's listings and stats still tell its entries.
        let list = "[" + dirs.map { "'\($0)'" }.joined(separator: ", ") + "]"
        let inCode = [Self.python, "-c", "import sys; sys.path[:0] = \(list); " + argv[2]]
        let r = try run([loadprobe, "-q", "-o", root + "/code.lpt", "--"] + inCode,
                        env: ["PATH": "/usr/bin:/bin", "LANG": "C", "PYTHONDONTWRITEBYTECODE": "1"], cwd: "/")
        #expect(r.status == 0 && r.stdoutText == "1\n", "\(r.stderrText)")
        let codeCalls = try Self.reportCalls(root + "/code.lpt", root: root)
        let codeAttributed = codeCalls.filter { $0.purpose == "python-import" }.count
        #expect(codeCalls.count > 1_000 && Double(codeAttributed) >= 0.95 * Double(codeCalls.count), "\(codeAttributed) of \(codeCalls.count)")

        let long = try report(root + "/long.lpt", ["--python-view-dir", view])
        // The first directories are scanned by every import and find nothing: they lead the ranking.
        let entries = (long["waste"] as? [String: Any])?["pythonEntries"] as? [[String: Any]] ?? []
        #expect(entries.count >= 100 && entries.first?["entry"] as? String == dirs[0], "\(entries.prefix(3))")
        let scen = (long["scenarios"] as? [[String: Any]] ?? []).first { $0["name"] as? String == "python-path" }
        let predicted = try #require(scen?["operations"] as? Int)
        let real = try #require(((try report(root + "/view.lpt"))["scenarios"] as? [[String: Any]])?.first { $0["name"] as? String == "recorded" }?["operations"] as? Int)
        #expect(abs(Double(predicted - real)) <= 0.05 * Double(real), "predicted \(predicted), real \(real)")
    }
}
