import Foundation
import TestSupport
import Testing

/// Reports of real traces, recorded during the test with the built loadprobe.
@Suite("report on a 3-directory RPATH program", .serialized)
struct ReportLiveTests {
    func report(_ trace: String, _ extra: [String] = []) throws -> [String: Any] {
        try json(try must([loadprobe, "report", "--format", "json", trace] + extra))
    }

    func scenarios(_ doc: [String: Any]) -> [String: [String: Any]] {
        var out: [String: [String: Any]] = [:]
        for s in doc["scenarios"] as? [[String: Any]] ?? [] { out[s["name"] as! String] = s }
        return out
    }

    func totalCalls(_ doc: [String: Any]) -> Int {
        let sys = (doc["totals"] as! [String: Any])["syscalls"] as! [String: [String: Int]]
        return sys.values.reduce(0) { $0 + $1["calls"]! }
    }

    @Test("waste ranking: d1 before d2 before d3; libc.so.6 searched through all three before ld.so.cache",
          .timeLimit(.minutes(3)))
    func wasteRanking() throws {
        let f = try RPathFixture.get()
        let doc = try report(f.trace("app"), ["--remote", f.dir])
        #expect(doc["format"] as? String == "loadprobe-report/1")
        let waste = try #require(doc["waste"] as? [String: Any])
        let dirs = try #require(waste["byDirectory"] as? [[String: Any]])
        let ours = dirs.filter { [f.d1, f.d2, f.d3].contains($0["directory"] as? String) }
        #expect(ours.map { $0["directory"] as? String } == [f.d1, f.d2, f.d3])
        let failed = ours.map { $0["failed"] as! Int }
        #expect(failed[0] > failed[1] && failed[1] > failed[2])
        // The names that missed in each: d1 liby, libz, libc.so.6; d2 libz, libc.so.6; d3 libc.so.6.
        #expect(ours.map { $0["namesMissed"] as? Int } == [3, 2, 1])
        let calls = waste["calls"] as! Int
        for d in ours {
            let share = d["share"] as! Double
            #expect(abs(share - Double(d["failed"] as! Int) / Double(calls)) < 1e-5)
        }
        #expect(calls == totalCalls(doc))

        let libs = try #require(waste["byLibrary"] as? [[String: Any]])
        let byName = Dictionary(uniqueKeysWithValues: libs.map { ($0["name"] as! String, $0) })
        // Ranked by failed calls: libz paid d3's hwcaps probes on top of two plain misses.
        #expect(libs.first?["name"] as? String == "libz.so")
        #expect(byName["libx.so"]?["foundIn"] as? String == f.d1)
        #expect(byName["liby.so"]?["foundIn"] as? String == f.d2)
        #expect(byName["libz.so"]?["foundIn"] as? String == f.d3)
        #expect(byName["libt.so"]?["foundIn"] as? String == f.d3)
        #expect(byName["libx.so"]?["directoriesSearched"] as? Int == 1)
        #expect(byName["liby.so"]?["directoriesSearched"] as? Int == 2)
        #expect(byName["libz.so"]?["directoriesSearched"] as? Int == 3)
        #expect(byName["libc.so.6"]?["directoriesSearched"] as? Int == 3)
        #expect(byName["libc.so.6"]?["foundOrigin"] as? String == "ld.so.cache")
        // More tries the later the directory.
        let tries = ["libx.so", "liby.so", "libz.so"].map { byName[$0]?["attempts"] as? Int ?? 0 }
        #expect(tries[0] < tries[1] && tries[1] < tries[2])

        let text = try must([loadprobe, "report", f.trace("app"), "--remote", f.dir], ).stdoutText
        #expect(text.contains("libc.so.6 was searched through 3 directories before ld.so.cache found it"))
        #expect(!text.contains("\u{1B}["), "no colour when stdout is not a terminal")
    }

    @Test("the stable keys of loadprobe-report/1 are there, the summary keys first and unchanged")
    func stableKeys() throws {
        let f = try RPathFixture.get()
        let doc = try report(f.trace("app"))
        for k in ["format", "processes", "totals", "waste", "scenarios"] { #expect(doc[k] != nil, "missing \(k)") }
        let totals = doc["totals"] as! [String: Any]
        #expect((totals["searches"] as? [String: Any])?["byOrigin"] != nil)
        #expect(totals["objects"] as? Int ?? 0 > 0)
        let waste = doc["waste"] as! [String: Any]
        for d in waste["byDirectory"] as! [[String: Any]] {
            #expect(d["directory"] is String && d["failed"] is Int && d["share"] is Double)
        }
        for l in waste["byLibrary"] as! [[String: Any]] {
            #expect(l["name"] is String && l["attempts"] is Int && l.keys.contains("foundIn"))
        }
        let names = (doc["scenarios"] as! [[String: Any]]).map { $0["name"] as! String }
        #expect(names == ["recorded", "shrinkwrap", "bind", "view", "loader-cache", "negative-cache", "static", "python-path"])
        for s in doc["scenarios"] as! [[String: Any]] {
            for k in ["operations", "serverOperations"] { #expect(s[k] is Int, "\(k) in \(s["name"]!)") }
            for k in ["predictedSeconds", "jobSeconds", "speedup"] { #expect(s[k] is Double || s[k] is Int, "\(k) in \(s["name"]!)") }
            #expect((s["inputs"] as? [String: String])?.isEmpty == false)
        }
        let recorded = scenarios(doc)["recorded"]!
        #expect(recorded["operations"] as? Int == totalCalls(doc))
        #expect(recorded["speedup"] as? Double == 1 || recorded["speedup"] as? Int == 1)
    }

    @Test("shrinkwrap: the predicted calls and server operations are those of the real patchelf'd copy")
    func shrinkwrapAgainstRealCopy() throws {
        let f = try RPathFixture.get()
        let model = ["--remote", f.dir, "--fs", "fuse", "--latency", "all=100us"]
        let predicted = scenarios(try report(f.trace("app"), model))["shrinkwrap"]!
        let real = try report(f.trace("shrinkwrap"), model)
        let realRecorded = scenarios(real)["recorded"]!
        #expect(predicted["operations"] as? Int == totalCalls(real))
        #expect(predicted["operationsBySyscall"] as? [String: Int] == realRecorded["operationsBySyscall"] as? [String: Int])
        let p = predicted["serverOperationsByKind"] as! [String: Int]
        let r = realRecorded["serverOperationsByKind"] as! [String: Int]
        for k in ["lookup", "lookupMiss", "getattr", "open", "readlink", "access"] { #expect(p[k] == r[k], "\(k): \(p[k] ?? -1) vs \(r[k] ?? -1)") }
        // The patched executable's layout decides its page reads; one read either way.
        #expect(abs((p["read"] ?? 0) - (r["read"] ?? 0)) <= 2)
        // The recorded program wasted lookups, the shrinkwrapped one none in the RPATH.
        #expect((realRecorded["failedOperations"] as? Int ?? 99) <= 1)
    }

    @Test("view: the predicted calls and server operations are those of the real view copy")
    func viewAgainstRealCopy() throws {
        let f = try RPathFixture.get()
        let model = ["--remote", f.dir, "--fs", "fuse", "--latency", "all=100us", "--view-dir", f.view]
        let predicted = scenarios(try report(f.trace("app"), model))["view"]!
        let real = try report(f.trace("view"), model)
        let realRecorded = scenarios(real)["recorded"]!
        #expect(predicted["operations"] as? Int == totalCalls(real))
        #expect(predicted["failedOperations"] as? Int == realRecorded["failedOperations"] as? Int)
        let p = predicted["serverOperationsByKind"] as! [String: Int]
        let r = realRecorded["serverOperationsByKind"] as! [String: Int]
        for k in ["lookup", "lookupMiss", "getattr", "open", "readlink"] { #expect(p[k] == r[k], "\(k): \(p[k] ?? -1) vs \(r[k] ?? -1)") }
    }

    @Test("diff: the shrinkwrapped copy loads the same objects in the same order with fewer calls")
    func diffBeforeAfter() throws {
        let f = try RPathFixture.get()
        let d = try json(try must([loadprobe, "diff", "--format", "json", f.trace("app"), f.trace("shrinkwrap"), "--remote", f.dir]))
        #expect(d["format"] as? String == "loadprobe-diff/1")
        let before = d["before"] as! [String: Any], after = d["after"] as! [String: Any]
        #expect((after["calls"] as! Int) < (before["calls"] as! Int))
        #expect((after["failed"] as! Int) < (before["failed"] as! Int))
        let objects = d["objects"] as! [String: Any]
        // Lifting libt moves it before the others: the same objects, the order may differ.
        #expect(["same-order", "same-set-different-order"].contains(objects["result"] as? String))
        #expect(((before["objects"] as? [[String: Any]]) ?? []).count == ((after["objects"] as? [[String: Any]]) ?? []).count)
        let view = try json(try must([loadprobe, "diff", "--format", "json", f.trace("app"), f.trace("view")]))
        #expect((view["objects"] as! [String: Any])["result"] as? String == "same-order")
        let dirs = d["directories"] as! [[String: Any]]
        #expect(dirs.contains { $0["directory"] as? String == f.d1 && $0["after"] as? Int == 0 })
        let text = try must([loadprobe, "diff", f.trace("app"), f.trace("view")]).stdoutText
        #expect(text.contains("the same objects in the same order"))
    }

    @Test("job shape: more processes on one node raise the job's server operations only for uncached operations")
    func jobShape() throws {
        let f = try RPathFixture.get()
        let one = scenarios(try report(f.trace("app"), ["--remote", f.dir, "--fs", "nfs-noneg"]))
        let many = scenarios(try report(f.trace("app"), ["--remote", f.dir, "--fs", "nfs-noneg", "--procs", "64", "--nodes", "4"]))
        let oneOps = one["recorded"]!["jobServerOperations"] as! Int
        let manyOps = many["recorded"]!["jobServerOperations"] as! Int
        // Misses are not cached (lookupcache=positive): every process pays them.
        let misses = (one["recorded"]!["serverOperationsByKind"] as! [String: Int])["lookupMiss"]!
        #expect(misses > 0)
        #expect(manyOps >= 64 * misses)
        #expect(manyOps < 64 * oneOps, "positive entries are cached per node")
        let sw = many["shrinkwrap"]!["speedup"] as! Double
        #expect(sw > 1)
    }
}
