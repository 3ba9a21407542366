import Foundation
import TestSupport
import Testing
import TraceFormat

/// loadprobe under real launchers: Slurm's srun (a one-node cluster that
/// scripts/test starts with scripts/slurm-cluster and names in
/// LOADPROBE_TEST_SLURM_CONF), the SPANK plugin (srun --loadprobe, sbatch
/// --loadprobe), and Open MPI's mpirun. Each rank's trace must be complete and
/// carry its rank, the job id and the host, and the job must run as it does
/// untraced.
@Suite("jobs under srun, srun --loadprobe, sbatch and mpirun", .serialized)
struct JobTests {
    static let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("jobs").path

    struct Programs: Sendable {
        let dir: String
        var probe: String { dir + "/job_probe" }
        var mpiHello: String { dir + "/mpi_hello" }
    }

    static let programs = buildOnce { () throws -> Programs in
        let p = Programs(dir: try scratch("jobs"))
        try FileManager.default.createDirectory(atPath: p.dir + "/lib", withIntermediateDirectories: true)
        try gcc(["-shared", "-fPIC", "-o", p.dir + "/lib/libprobe.so", sources + "/libprobe.c"])
        try gcc(["-o", p.probe, sources + "/job_probe.c", "-L" + p.dir + "/lib", "-lprobe",
                 "-Wl,--enable-new-dtags,-rpath,/nonexistent/a:/nonexistent/b:" + p.dir + "/lib"])
        let mpicc = try run(["mpicc", "-o", p.mpiHello, sources + "/mpi_hello.c"])
        if mpicc.status != 0 { throw TestFailure("mpicc failed: \(mpicc.stderrText)") }
        return p
    }

    static var slurmConf: String? { ProcessInfo.processInfo.environment["LOADPROBE_TEST_SLURM_CONF"] }
    static var hasCluster: Bool { Needs.ci || slurmConf != nil }
    /// Skipped (and said) without the test cluster; never on CI, where it fails instead.
    static let needsCluster = ConditionTrait.enabled(if: hasCluster, "no Slurm cluster: run scripts/test, which starts one")

    /// The environment for srun/sbatch: this one, pointed at the test cluster.
    func slurmEnv() throws -> [String: String] {
        guard let conf = Self.slurmConf else { throw TestFailure("LOADPROBE_TEST_SLURM_CONF is not set: scripts/test starts the test cluster") }
        var env = ProcessInfo.processInfo.environment
        env["SLURM_CONF"] = conf
        for k in env.keys where k.hasPrefix("SLURM_") && k != "SLURM_CONF" { env[k] = nil }
        return env
    }

    /// Runs with a time limit, so a hung launcher fails the test instead of the run.
    func launch(_ argv: [String], env: [String: String], cwd: String? = nil) throws -> Run {
        try run(["/usr/bin/timeout", "-k", "5", "120"] + argv, env: env, cwd: cwd)
    }

    /// The traces in a directory, read, by file name.
    func traces(in dir: String) throws -> [String: Trace] {
        var out: [String: Trace] = [:]
        for f in try FileManager.default.contentsOfDirectory(atPath: dir) where f.hasSuffix(".lpt") {
            out[f] = try TraceReader.read(file: dir + "/" + f)
        }
        return out
    }

    /// The one job directory a pattern lp-%j/... made under `dir`, and its job id.
    func jobDirectory(_ dir: String) throws -> (path: String, job: String) {
        let dirs = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("lp-") }
        guard dirs.count == 1, let d = dirs.first else { throw TestFailure("expected one job directory in \(dir), found \(dirs)") }
        return (dir + "/" + d, String(d.dropFirst(3)))
    }

    /// Each rank's line from job_probe, by rank.
    func probeLines(_ out: String) -> [String: String] {
        var lines: [String: String] = [:]
        for line in out.split(separator: "\n") where line.hasPrefix("rank=") {
            let rank = line.dropFirst(5).prefix { $0 != " " }
            lines[String(rank)] = String(line)
        }
        return lines
    }

    func checkRanks(_ traces: [String: Trace], ranks: Int, job: String?, file: (Int) -> String) throws {
        #expect(traces.count == ranks, "traces: \(traces.keys.sorted())")
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? ""
        for r in 0..<ranks {
            let t = try #require(traces[file(r)], "no trace for rank \(r): \(traces.keys.sorted())")
            #expect(t.complete, "rank \(r)'s trace is not complete")
            #expect(t.meta(.rank) == String(r))
            if let job { #expect(t.meta(.jobid) == job, "rank \(r): jobid \(t.meta(.jobid) ?? "none")") }
            #expect(t.meta(.host)?.split(separator: ".").first.map(String.init) == host, "rank \(r): host \(t.meta(.host) ?? "none")")
            // The start-up was recorded: the library search through the RPATH, and main reached.
            #expect(t.events.contains { if case .audit(let a) = $0 { a.kind == .preinit } else { false } }, "rank \(r) did not reach main")
        }
    }

    @Test("srun -n 4 loadprobe -o 'lp-%j/%r.lpt': four complete traces, each with its rank, the job id and the host",
          needsCluster)
    func srunLoadprobe() throws {
        let p = try Self.programs.get()
        let dir = try scratch("srun")
        let r = try launch(["srun", "-n", "4", loadprobe, "-q", "-o", dir + "/lp-%j/%r.lpt", "--", p.probe, "x y", "z"], env: try slurmEnv())
        #expect(r.status == 0, "srun: \(r.stderrText)")
        let lines = probeLines(r.stdoutText)
        #expect(lines.count == 4, "output: \(r.stdoutText)")
        let (jobDir, job) = try jobDirectory(dir)
        for (_, line) in lines {
            #expect(line.contains(" job=\(job) ") && line.contains("value=42") && line.hasSuffix("argc=3 [\(p.probe)] [x y] [z]"), "\(line)")
        }
        try checkRanks(try traces(in: jobDir), ranks: 4, job: job) { "\($0).lpt" }
    }

    @Test("srun --mpi=pmix -n 4 loadprobe -- an MPI program: MPI_Init completes in every rank, four traces",
          needsCluster)
    func srunMPI() throws {
        let p = try Self.programs.get()
        let dir = try scratch("srun-mpi")
        let r = try launch(["srun", "--mpi=pmix", "-n", "4", loadprobe, "-q", "-o", dir + "/lp-%j/%r.lpt", "--", p.mpiHello], env: try slurmEnv())
        #expect(r.status == 0, "srun: \(r.stderrText)")
        let said = Set(r.stdoutText.split(separator: "\n").map(String.init))
        #expect(said == Set((0..<4).map { "mpi rank \($0) of 4" }), "output: \(r.stdoutText)")
        let (jobDir, job) = try jobDirectory(dir)
        try checkRanks(try traces(in: jobDir), ranks: 4, job: job) { "\($0).lpt" }
    }

    @Test("srun --loadprobe (the SPANK plugin): each task recorded, its argv and environment as untraced",
          needsCluster)
    func spankPlugin() throws {
        let p = try Self.programs.get()
        let dir = try scratch("spank")
        let env = try slurmEnv()
        let plain = try launch(["srun", "-n", "4", p.probe, "a", "b c"], env: env)
        let traced = try launch(["srun", "-n", "4", "--loadprobe=-q -o \(dir)/lp-%j/%r.lpt", p.probe, "a", "b c"], env: env)
        #expect(plain.status == 0 && traced.status == 0, "srun: \(plain.stderrText) \(traced.stderrText)")
        let (jobDir, job) = try jobDirectory(dir)
        let plainLines = probeLines(plain.stdoutText), tracedLines = probeLines(traced.stdoutText)
        #expect(tracedLines.count == 4, "output: \(traced.stdoutText)")
        for (rank, line) in tracedLines {
            // The same line as untraced, but for the job id; no plugin variable left.
            let untraced = try #require(plainLines[rank])
            let jobOf = { (s: String) in s.split(separator: " ").first { $0.hasPrefix("job=") }.map(String.init) ?? "" }
            #expect(line.replacingOccurrences(of: jobOf(line), with: "") == untraced.replacingOccurrences(of: jobOf(untraced), with: ""),
                    "traced: \(line)\nuntraced: \(untraced)")
            #expect(line.contains(" job=\(job) ") && line.contains("spank_variables=0"), "\(line)")
        }
        let traces = try traces(in: jobDir)
        try checkRanks(traces, ranks: 4, job: job) { "\($0).lpt" }
        for (_, t) in traces { #expect(t.metaAll(.argv) == [p.probe, "a", "b c"], "argv: \(t.metaAll(.argv))") }
        // Without --loadprobe the plugin does nothing.
        #expect(!plain.stdoutText.contains("spank_variables=1"))
        // The job's report: 4 ranks on 1 host, each with its start-up time.
        let report = try run([loadprobe, "report", "--per-rank", jobDir])
        #expect(report.status == 0, "report: \(report.stderrText)")
        #expect(report.stdoutText.contains("Job \(job) (slurm): 4 ranks on 1 node"), "\(report.stdoutText.prefix(600))")
        let json = try jobJSON(jobDir)
        #expect(json["ranks"] as? Int == 4 && json["nodes"] as? Int == 1, "\(json)")
        let perRank = json["perRank"] as? [[String: Any]] ?? []
        #expect(perRank.compactMap { $0["rank"] as? Int }.sorted() == [0, 1, 2, 3])
        #expect(perRank.allSatisfy { ($0["seconds"] as? Double ?? 0) > 0 }, "\(perRank)")
    }

    @Test("srun --loadprobe runs the program slurmstepd would: ./prog and a bare name found in the working directory, argv[0] as slurmstepd builds it; a missing program's status; no command in the options",
          needsCluster)
    func spankProgramLikeSlurm() throws {
        let p = try Self.programs.get()
        let dir = try scratch("spank-paths")
        let env = try slurmEnv()
        for argv in [["./job_probe", "a"], ["job_probe", "b"]] {
            let plain = try launch(["srun", "-n", "1"] + argv, env: env, cwd: p.dir)
            let traced = try launch(["srun", "-n", "1", "--loadprobe=-q -o \(dir)/t-%j.lpt"] + argv, env: env, cwd: p.dir)
            #expect(plain.status == 0 && traced.status == 0, "\(argv): \(plain.stderrText) \(traced.stderrText)")
            let jobOf = { (s: String) in s.split(separator: " ").filter { !$0.hasPrefix("job=") }.joined(separator: " ") }
            #expect(jobOf(traced.stdoutText) == jobOf(plain.stdoutText) && !plain.stdoutText.isEmpty,
                    "\(argv): traced \(traced.stdoutText) untraced \(plain.stdoutText)")
        }
        let missing = try launch(["srun", "-n", "1", "./no-such-program"], env: env, cwd: p.dir)
        let missingTraced = try launch(["srun", "-n", "1", "--loadprobe=-q -o \(dir)/m-%j.lpt", "./no-such-program"], env: env, cwd: p.dir)
        #expect(missing.status != 0 && missingTraced.status == missing.status, "untraced \(missing.status), traced \(missingTraced.status)")
        let injected = try launch(["srun", "-n", "1", "--loadprobe=-q -- /bin/echo injected", "/bin/echo", "normal"], env: env)
        #expect(injected.status != 0 && !injected.stdoutText.contains("injected"), "\(injected.stdoutText) \(injected.stderrText)")
        #expect(injected.stderrText.contains("may not contain '--'"))
    }

    /// The `job` object of the JSON report over a job directory.
    func jobJSON(_ dir: String, _ extra: [String] = ["--per-rank"]) throws -> [String: Any] {
        let r = try run([loadprobe, "report", "--format", "json"] + extra + [dir])
        guard r.status == 0, let doc = try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any],
              let job = doc["job"] as? [String: Any] else { throw TestFailure("report --format json \(dir): \(r.stderrText)") }
        return job
    }

    @Test("--full-ranks 0 under srun: rank 0 in full, the others as summary traces; a rank with another LD_LIBRARY_PATH and a rank whose library is missing are outliers with the reason",
          needsCluster)
    func summaryRanksAndOutliers() throws {
        let p = try Self.programs.get()
        let dir = try scratch("outliers")
        // Rank 2 runs a copy whose RUNPATH misses libprobe.so's directory.
        try gcc(["-o", dir + "/job_probe_broken", Self.sources + "/job_probe.c", "-L" + p.dir + "/lib", "-lprobe",
                 "-Wl,--enable-new-dtags,-rpath,/nonexistent/a"])
        let script = """
            case $SLURM_PROCID in 1) export LD_LIBRARY_PATH=\(dir)/elsewhere;; esac
            prog=\(p.probe); [ "$SLURM_PROCID" = 2 ] && prog=\(dir)/job_probe_broken
            exec \(loadprobe) -q --full-ranks 0 -o '\(dir)/lp-%j/%r.lpt' -- "$prog"
            """
        let r = try launch(["srun", "-n", "4", "/bin/sh", "-c", script], env: try slurmEnv())
        #expect(r.status != 0, "rank 2 cannot start: srun reports its failure")
        #expect(probeLines(r.stdoutText).keys.sorted() == ["0", "1", "3"], "output: \(r.stdoutText) \(r.stderrText)")
        let (jobDir, job) = try jobDirectory(dir)
        let traces = try traces(in: jobDir)
        #expect(traces.count == 4)
        #expect(traces["0.lpt"]?.meta(.summary) == nil && traces["0.lpt"]?.events.isEmpty == false, "rank 0 is a full trace")
        for r in 1...3 {
            let t = try #require(traces["\(r).lpt"])
            #expect(t.meta(.summary) == "loadprobe-summary/1" && t.events.isEmpty && t.fileBytes < 16_384, "rank \(r): \(t.fileBytes) bytes")
            #expect(t.meta(.jobid) == job && t.meta(.rank) == String(r))
        }
        let json = try jobJSON(jobDir, [])
        #expect(json["ranks"] as? Int == 4 && json["fullTraces"] as? Int == 1 && json["summaryTraces"] as? Int == 3, "\(json)")
        let outliers = json["outliers"] as? [[String: Any]] ?? []
        let reason = { (rank: Int) in outliers.first { $0["rank"] as? Int == rank }?["reason"] as? String ?? "" }
        #expect(reason(1).contains("another environment: LD_LIBRARY_PATH=\(dir)/elsewhere (most ranks do not set it)"), "\(outliers)")
        #expect(reason(2).contains("did not reach main") && reason(2).contains("libprobe.so not found"), "\(outliers)")
        #expect(outliers.count == 2, "only ranks 1 and 2 differ: \(outliers)")
        let text = try run([loadprobe, "report", jobDir]).stdoutText
        #expect(text.contains("rank 1 on ") && text.contains("rank 2 on ") && text.contains("Ranks that differ from the others (2)"), "\(text.prefix(1500))")
    }

    @Test("sbatch --loadprobe: the job's srun steps are recorded, the batch script is not",
          needsCluster)
    func sbatchPlugin() throws {
        let p = try Self.programs.get()
        let dir = try scratch("sbatch")
        try write("#!/bin/sh\nsrun -n 2 \(p.probe) batch\n", to: dir + "/job.sh")
        let r = try launch(["sbatch", "--wait", "-n", "2", "-o", dir + "/out.txt", "--loadprobe=-q -o \(dir)/lp-%j/%r.lpt", dir + "/job.sh"],
                           env: try slurmEnv(), cwd: dir)
        #expect(r.status == 0, "sbatch: \(r.stdoutText) \(r.stderrText)")
        let out = (try? String(contentsOfFile: dir + "/out.txt", encoding: .utf8)) ?? ""
        #expect(probeLines(out).count == 2, "job output: \(out)")
        let (jobDir, job) = try jobDirectory(dir)
        let traces = try traces(in: jobDir)
        try checkRanks(traces, ranks: 2, job: job) { "\($0).lpt" }
        for (_, t) in traces { #expect(t.meta(.program) == p.probe, "recorded \(t.meta(.program) ?? "nothing")") }
    }

    @Test("mpirun -np 4 loadprobe -- an MPI program: four traces by Open MPI rank",
          .enabled(if: Needs.command("mpirun"), "Open MPI is not installed (scripts/setup installs it)"))
    func mpirun() throws {
        let p = try Self.programs.get()
        let dir = try scratch("mpirun")
        var env = ProcessInfo.processInfo.environment
        for k in env.keys where k.hasPrefix("SLURM_") { env[k] = nil }
        let r = try launch(["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "4",
                            loadprobe, "-q", "-o", dir + "/%r.lpt", "--", p.mpiHello], env: env)
        #expect(r.status == 0, "mpirun: \(r.stderrText)")
        let said = Set(r.stdoutText.split(separator: "\n").map(String.init))
        #expect(said == Set((0..<4).map { "mpi rank \($0) of 4" }), "output: \(r.stdoutText)")
        try checkRanks(try traces(in: dir), ranks: 4, job: nil) { "\($0).lpt" }
    }
}
