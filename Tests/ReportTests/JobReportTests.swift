import Foundation
@testable import Report
@testable import LoaderModel
import TestSupport
import Testing
import TraceFormat

/// Job reports read their traces one at a time (ReportBuilder): these pin that
/// the result is what the traces add up to.
@Suite("job reports over many traces", .serialized)
struct JobReportTests {
    func doc(_ argv: [String]) throws -> [String: Any] { try json(try must([loadprobe, "report", "--format", "json"] + argv)) }

    func totals(_ d: [String: Any]) -> [String: [String: Int]] {
        (d["totals"] as! [String: Any])["syscalls"] as! [String: [String: Int]]
    }

    func scenarios(_ d: [String: Any]) -> [String: [String: Any]] {
        var out: [String: [String: Any]] = [:]
        for s in d["scenarios"] as? [[String: Any]] ?? [] { out[s["name"] as! String] = s }
        return out
    }

    /// A directory holding `n` copies of a trace (a job of identical ranks).
    func jobDir(_ trace: String, copies n: Int, name: String) throws -> String {
        let dir = try scratch(name)
        for i in 0..<n { try FileManager.default.copyItem(atPath: trace, toPath: dir + String(format: "/%04d.lpt", i)) }
        return dir
    }

    @Test("a job of N copies of a trace: N times the counts, per process the same scenarios", .timeLimit(.minutes(3)))
    func copies() throws {
        let f = try RPathFixture.get()
        let n = 5
        let single = try doc([f.trace("app"), "--remote", f.dir, "--fs", "nfs-noneg"])
        let job = try doc([try jobDir(f.trace("app"), copies: n, name: "job5"), "--remote", f.dir, "--fs", "nfs-noneg"])
        #expect((job["traces"] as? [String])?.count == n)
        for (call, c) in totals(single) {
            #expect(totals(job)[call]?["calls"] == n * c["calls"]!, "\(call)")
            #expect(totals(job)[call]?["failed"] == n * c["failed"]!, "\(call)")
        }
        let ws = single["waste"] as! [String: Any], wj = job["waste"] as! [String: Any]
        #expect(wj["calls"] as? Int == n * (ws["calls"] as! Int))
        #expect(wj["failed"] as? Int == n * (ws["failed"] as! Int))
        #expect((job["attribution"] as? [Any])?.count == n * (single["attribution"] as! [Any]).count)
        #expect((job["processes"] as? [Any])?.count == n * (single["processes"] as! [Any]).count)
        #expect((job["model"] as! [String: Any])["processes"] as? Int == n)
        // Per process (one trace), every scenario makes the same calls and server operations.
        let s1 = scenarios(single), sj = scenarios(job)
        #expect(s1.count == Scenario.allCases.count && sj.count == Scenario.allCases.count)
        for (name, s) in s1 {
            for key in ["operations", "failedOperations", "serverOperations", "remoteOperations"] {
                #expect(sj[name]?[key] as? Int == s[key] as? Int, "\(name) \(key)")
            }
            #expect(sj[name]?["serverOperationsByKind"] as? [String: Int] == s["serverOperationsByKind"] as? [String: Int], "\(name)")
            #expect(sj[name]?["predictedSeconds"] as? Double == s["predictedSeconds"] as? Double, "\(name)")
        }
    }

    @Test("several traces without --job: each document is that trace's own report", .timeLimit(.minutes(3)))
    func oneReportEach() throws {
        let f = try RPathFixture.get()
        let names = ["app", "view", "app", "shrinkwrap"]
        let r = try must([loadprobe, "report", "--format", "json"] + names.map { f.trace($0) } + ["--remote", f.dir])
        let docs = try #require(try JSONSerialization.jsonObject(with: r.stdout) as? [[String: Any]])
        #expect(docs.count == names.count)
        for (i, name) in names.enumerated() where i < docs.count {
            let alone = try doc([f.trace(name), "--remote", f.dir])
            func canonical(_ o: [String: Any]) throws -> String {
                String(decoding: try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), as: UTF8.self)
            }
            #expect(try canonical(docs[i]) == canonical(alone), "\(name)")
        }
    }

    @Test("grouping identical traces, and reading groups again, give the report of every trace priced on its own")
    func grouping() throws {
        let f = try RPathFixture.get()
        let files = ["app", "app", "view", "app", "shrinkwrap", "view"].map { f.trace($0) }
        var options = ReportOptions()
        options.remotePrefixes = [f.dir]
        options.job = JobShape(processes: files.count, nodes: 2)
        func report(dedup: Bool, budget: Int) throws -> String {
            var b = ReportBuilder(options: options)
            b.dedup = dedup
            b.callBudget = budget
            b.keepTraces = 0
            for file in files { b.add(TraceAnalysis(trace: try TraceReader.read(file: file), file: file)) }
            return ReportJSON.document(try b.finish()).serialized()
        }
        let each = try report(dedup: false, budget: .max)
        #expect(try report(dedup: true, budget: .max) == each)
        // Budget 0: only the first group stays in memory; the others are read again.
        #expect(try report(dedup: true, budget: 0) == each)
        #expect(try report(dedup: false, budget: 0) == each)
    }

    @Test("a trace that changed between its two readings is an error naming it")
    func changedTrace() throws {
        let f = try RPathFixture.get()
        let dir = try scratch("changed")
        let a = dir + "/a.lpt", b = dir + "/b.lpt"
        try FileManager.default.copyItem(atPath: f.trace("app"), toPath: a)
        try FileManager.default.copyItem(atPath: f.trace("view"), toPath: b)
        var builder = ReportBuilder(options: ReportOptions())
        builder.callBudget = 0
        for file in [a, b] { builder.add(TraceAnalysis(trace: try TraceReader.read(file: file), file: file)) }
        try FileManager.default.removeItem(atPath: b)
        try FileManager.default.copyItem(atPath: f.trace("shrinkwrap"), toPath: b)
        #expect(throws: TraceReadError.self) { _ = try builder.finish() }
    }
}
