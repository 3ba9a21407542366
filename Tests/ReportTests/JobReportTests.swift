import Foundation
import Report
import TestSupport
import Testing
import TraceFormat

/// A job's traces of one program: identical ranks are recognised without
/// their times and pids (TraceIdentity), and counting them (addRepeat) gives
/// the report that analysing each gives.
@Suite("identical ranks of a job")
struct JobReportTests {
    @Test("two recordings of one program have one identity; the Shrinkwrap copy and another LD_LIBRARY_PATH do not")
    func identity() throws {
        let f = try RPathFixture.get()
        let dir = try scratch("identity")
        try record([f.app], to: dir + "/again.lpt")
        let first = try TraceReader.read(file: f.traces + "/app.lpt")
        let again = try TraceReader.read(file: dir + "/again.lpt")
        #expect(first.meta(.auditDir) != again.meta(.auditDir), "each recording has its own scratch directory")
        #expect(TraceIdentity(first) == TraceIdentity(again))
        #expect(TraceIdentity(first) != TraceIdentity(try TraceReader.read(file: f.traces + "/shrinkwrap.lpt")))
        let r = try run([loadprobe, "-q", "-o", dir + "/llp.lpt", "--", f.app], env: ["PATH": "/usr/bin:/bin", "LD_LIBRARY_PATH": f.d3], cwd: "/")
        #expect(r.status == 0)
        #expect(TraceIdentity(first) != TraceIdentity(try TraceReader.read(file: dir + "/llp.lpt")))
    }

    @Test("a job of four copies: counted with addRepeat, the report is byte for byte the one made by analysing each")
    func repeatsEqualAnalysed() throws {
        let f = try RPathFixture.get()
        let file = f.traces + "/app.lpt"
        func analysis(_ i: Int) throws -> TraceAnalysis { TraceAnalysis(trace: try TraceReader.read(file: file), file: "rank\(i).lpt") }
        var each = ReportBuilder(options: ReportOptions())
        for i in 0..<4 { each.add(try analysis(i)) }
        var counted = ReportBuilder(options: ReportOptions())
        let rep = counted.add(try analysis(0))
        for i in 1..<4 { counted.addRepeat(of: rep, trace: try TraceReader.read(file: file), file: "rank\(i).lpt") }
        #expect(counted.repeats == 3 && each.repeats == 0)
        var a = try each.finish(), b = try counted.finish()
        #expect(b.job?.repeatedTraces == 3)
        b.job?.repeatedTraces = 0
        let ja = ReportJSON.document(a).serialized(), jb = ReportJSON.document(b).serialized()
        #expect(ja == jb)
        a.options.perRank = true; b.options.perRank = true
        #expect(ReportText.render(a, style: TextStyle(color: false)) == ReportText.render(b, style: TextStyle(color: false)))
        #expect(a.job?.ranks == 4 && a.scenarios.count > 1)
    }

    @Test("the job's server operations are the recorded scenario's at the job's shape; ranks that all start within a second put them all in the busiest second")
    func serverLoad() throws {
        let f = try RPathFixture.get()
        var options = ReportOptions()
        options.remotePrefixes = [f.dir]
        var b = ReportBuilder(options: options)
        for i in 0..<3 { b.add(TraceAnalysis(trace: try TraceReader.read(file: f.traces + "/app.lpt"), file: "rank\(i).lpt")) }
        let shape = try JobShape.ofJob(traces: b.rankCount, hosts: b.hosts.count, processes: nil, nodes: nil)
        let report = try b.finish(job: shape)
        let recorded = try #require(report.scenarios.first { $0.scenario == .recorded })
        let job = try #require(report.job)
        #expect(recorded.jobOperations > 0 && job.serverOperations == recorded.jobOperations)
        let busiest = try #require(job.busiestSecond)
        #expect(abs(busiest.operations - Double(recorded.jobOperations)) < 1e-6 * Double(recorded.jobOperations), "\(busiest) of \(recorded.jobOperations)")
        let text = ReportText.render(report, style: TextStyle(color: false))
        #expect(text.contains("server operations (as recorded, at the job's shape); the busiest second "), "\(text.prefix(800))")
    }

    @Test("a job directory as users leave them: a corrupt trace left out and named, a host subdirectory read, a rank claimed twice, a trace without the job id, a rank running another program")
    func untidyJobDirectory() throws {
        let f = try RPathFixture.get()
        let dir = try scratch("untidy") + "/job"
        try FileManager.default.createDirectory(atPath: dir + "/nodeb", withIntermediateDirectories: true)
        func rank(_ n: Int, _ program: String, to file: String, job: Bool = true) throws {
            var env = ["PATH": "/usr/bin:/bin", "SLURM_PROCID": String(n), "SLURM_NTASKS": "5"]
            if job { env["SLURM_JOB_ID"] = "77" }
            let r = try run([loadprobe, "-q", "--full-ranks", "0", "-o", file, "--", program], env: env, cwd: "/")
            #expect(r.status == 0, "\(r.stderrText)")
        }
        for n in 0..<3 { try rank(n, f.app, to: dir + "/\(n).lpt") }
        try rank(3, f.shrinkwrap, to: dir + "/3.lpt")
        try rank(1, f.app, to: dir + "/nodeb/1.lpt")
        try rank(4, f.app, to: dir + "/4.lpt", job: false)
        try write("not a trace at all\n", to: dir + "/bad.lpt")
        let r = try run([loadprobe, "report", "--format", "json", dir])
        #expect(r.status == 0, "\(r.stderrText)")
        #expect(r.stderrText.contains("bad.lpt: left out of the job"), "\(r.stderrText)")
        let job = try #require(try json(r)["job"] as? [String: Any])
        #expect(job["ranks"] as? Int == 6 && job["fullTraces"] as? Int == 1, "\(job)")
        #expect((job["unreadable"] as? [[String: Any]])?.map { $0["file"] as? String } == [dir + "/bad.lpt"])
        #expect(job["duplicateRanks"] as? [Int] == [1] && job["tracesWithoutJob"] as? Int == 1)
        let outliers = job["outliers"] as? [[String: Any]] ?? []
        let three = outliers.first { $0["rank"] as? Int == 3 }?["reason"] as? String ?? ""
        #expect(three.hasPrefix("runs another program: \(f.shrinkwrap)"), "\(outliers)")
        let text = try run([loadprobe, "report", dir]).stdoutText
        #expect(text.contains("1 trace left out, unreadable") && text.contains("claimed by more than one trace") && text.contains("has no job id"), "\(text.prefix(1500))")
    }

    @Test("ranks recorded without the audit library neither reached nor missed main; a 2/2 split names no side as the odd one")
    func noAuditAndTies() throws {
        let f = try RPathFixture.get()
        let dir = try scratch("noaudit")
        for n in 0..<2 {
            let r = try run([loadprobe, "-q", "--no-audit", "-o", dir + "/a/\(n).lpt", "--", f.app],
                            env: ["PATH": "/usr/bin:/bin", "SLURM_PROCID": String(n), "SLURM_JOB_ID": "9"], cwd: "/")
            #expect(r.status == 0)
        }
        let a = try #require(try json(try run([loadprobe, "report", "--format", "json", dir + "/a"]))["job"] as? [String: Any])
        #expect(a["failed"] as? Int == 0 && (a["outliers"] as? [Any])?.isEmpty == true, "\(a)")
        #expect(try run([loadprobe, "report", dir + "/a"]).stdoutText.contains("exec → main not recorded"))
        // Two ranks, two environments: neither is "most ranks".
        for (n, llp) in [(0, "/x"), (1, "/y"), (2, "/x"), (3, "/y")] {
            let r = try run([loadprobe, "-q", "--full-ranks", "none", "-o", dir + "/b/\(n).lpt", "--", f.app],
                            env: ["PATH": "/usr/bin:/bin", "SLURM_PROCID": String(n), "SLURM_JOB_ID": "9", "LD_LIBRARY_PATH": llp], cwd: "/")
            #expect(r.status == 0)
        }
        let b = try #require(try json(try run([loadprobe, "report", "--format", "json", dir + "/b"]))["job"] as? [String: Any])
        #expect((b["outliers"] as? [[String: Any]] ?? []).allSatisfy { !(($0["reason"] as? String) ?? "").contains("another environment") }, "\(b)")
    }
}
