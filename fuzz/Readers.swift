// Everything that reads a trace in process, as the commands call it:
// report (text, JSON, HTML, Perfetto; one trace, a job, several traces one
// after the other; --calls; --calls --scenario), diff (text, JSON), the
// summary `record` prints, and `explain --env-from TRACE`.
import Foundation
import LoaderModel
import Report
import TraceFormat

enum Readers {
    /// Model options as `report`/`diff` accept them (ModelOptions.validate's bounds).
    static func options(_ r: inout Random, traces: [Trace]) -> ReportOptions {
        var o = ReportOptions()
        var p = r.pick(FileSystemProfile.named)
        if r.chance(20) { try? p.apply(latencies: r.pick(["all=1ms", "lookup=0", "all=3600s", "miss=1ns,open=0.5s", "all=0"])) }
        if r.chance(10) { p.roundTrip = r.pick([0, 20e-6, 3600]) }
        if r.chance(10) { p.openOverhead = r.pick([0, 1e-9, 3600]) }
        if r.chance(10) { p.negativeCacheSeconds = r.bool() ? 0 : max(p.negativeCacheSeconds, 30) }
        if r.chance(10) { p.positiveCacheSeconds = r.pick([0, 1e-9, 1e9]) }
        if r.chance(10) { p.serverOpsPerSecond = r.pick([1e-9, 1, 1e12]) }
        if r.chance(10) { p.serverBytesPerSecond = r.pick([1e-9, 1e15]) * 1_048_576 }
        o.profile = p
        let procs = r.chance(70) ? 1 : r.pick([1, 2, 512, 100_000_000])
        o.job = JobShape(processes: procs, nodes: r.chance(50) ? 1 : min(procs, r.pick([1, 4, 100_000_000])))
        if r.chance(20) {
            // Trees on the modeled file system, as --remote gives them.
            let some = traces.first.flatMap { $0.strings.isEmpty ? nil : r.pick($0.strings) } ?? "/"
            o.remotePrefixes = (0..<(1 + r.below(3))).map { _ in r.pick(["/", "", "/opt", "/nfs", "relative", "//", some]) }
        }
        o.ignoreMountTable = r.chance(10)
        if r.chance(20) { o.computeSeconds = r.pick([0, 1e-9, 1, 1e6]) }
        if r.chance(10) { o.extraBytesPerNode = r.pick([0, 1, 1e9]) * 1_048_576 }
        if r.chance(10) { o.coresPerNode = r.pick([1, 2, 1_000_000]) }
        o.liftDlopen = r.chance(30)
        if r.chance(10) { o.viewDirectory = r.pick(["/", "", "/v", "rel", String(repeating: "/v", count: 1000)]) }
        if r.chance(10) { o.pythonViewDirectory = r.pick(["/", "", "/pv"]) }
        // The host's files: only when the trace says it was recorded here (or never).
        o.consultHost = r.chance(90) ? .never : .sameHost
        o.useELF = o.consultHost != .never && r.chance(50)
        o.top = r.chance(90) ? 1 + r.below(20) : r.pick([1, 1000, Int.max])
        return o
    }

    static func readEverything(_ files: [String], _ r: inout Random, stats: inout Stats) {
        // As `report --partial` reads them, and once strictly (the refusal path).
        _ = try? TraceReader.read(file: files[0])
        var traces: [Trace] = []
        for f in files {
            do {
                traces.append(try TraceReader.read(file: f, allowPartial: true))
            } catch {
                stats.add("refused " + reasonName(error.reason))
                _ = error.description
            }
        }
        guard traces.count == files.count else { return }
        stats.add("read", traces.count)
        let options = options(&r, traces: traces)
        let analyses = zip(traces, files).map { TraceAnalysis(trace: $0, file: $1) }
        // How deep the generated traces reach: searches attributed, loader worlds.
        if analyses[0].processes.contains(where: { !$0.searches.isEmpty }) { stats.add("with searches") }
        if !traces[0].objects.isEmpty { stats.add("with OBJECT records") }
        if analyses[0].processes.count >= 500 { stats.add("500+ processes") }

        // What `record` prints at its end.
        for (t, f) in zip(traces, files) {
            let s = TraceSummary(trace: t, file: f)
            _ = s.text()
            _ = s.json().serialized()
        }
        // report --calls, and --calls --scenario.
        if r.chance(30) { for a in analyses { _ = ReportText.callListing(a) } }
        if r.chance(15) { _ = ReportText.scenarioListing(analyses, scenario: r.pick(Scenario.allCases), options: options); stats.add("scenario listing") }
        // explain --env-from TRACE (the recorded environment and glibc version).
        if r.chance(3) {
            let recorded = RecordedConditions(trace: traces[0])
            var env = recorded.environment
            if env.ldLibraryPath.map({ $0.utf8.count > 512 }) ?? false { env.ldLibraryPath = String(env.ldLibraryPath!.prefix(512)) }
            let explainOptions = ExplainOptions(environment: env, glibcVersion: recorded.glibcVersion, findHazards: r.chance(50))
            if let e = try? Explainer.explain("/bin/true", options: explainOptions) {
                _ = ExplanationText.render(e, verbose: r.chance(50))
                _ = ExplanationJSON.render(e, includeCandidates: r.chance(50))
                stats.add("explain --env-from")
            }
        }
        // report: one report over all the traces (a job), as ReportCommand builds it.
        if analyses.count == 1 || r.chance(70) {
            var builder = ReportBuilder(options: options)
            let format = r.below(4)
            builder.keepTraces = format == 3 ? 8 : r.chance(80) ? 0 : 1
            builder.keepTimelines = format == 2 || r.chance(20)
            // A tiny budget: identical traces' representatives are read again from their files.
            if r.chance(30) { builder.callBudget = r.pick([0, 1, 100]) }
            for (i, a) in analyses.enumerated() {
                // Some ranks as summary traces (--full-ranks): the trace's own
                // summary, or summary metadata with values a crafted file may hold.
                if r.chance(25) {
                    var t = a.trace
                    if r.chance(50) {
                        t.meta += RankSummary(analysis: a).metadata.map { (key: $0.0, value: $0.1) }
                    } else {
                        let values = ["0", "1", "-1", "18446744073709551615", "9223372036854775807", "x", "", "LD_LIBRARY_PATH=5,=3,RUNPATH=x,,a=b=c"]
                        t.meta.append((key: MetaKey.summary.rawValue, value: RankSummary.format))
                        for k in MetaKey.allCases where k.rawValue.hasPrefix("summary.") && r.chance(70) { t.meta.append((key: k.rawValue, value: r.pick(values))) }
                        for k in [MetaKey.rank, .host, .startNs, .startRealtimeNs, .startUnix, .launcher, .env] where r.chance(50) { t.meta.append((key: k.rawValue, value: r.pick(values + ["PATH=/x"]))) }
                    }
                    if let summary = RankSummary(summaryTrace: t) {
                        builder.addSummary(t, file: a.file, summary: summary)
                        stats.add("summary trace")
                        continue
                    }
                }
                builder.add(a, partial: i == 0 || r.chance(80))
            }
            if r.chance(20) { builder.options.perRank = true }
            let procs: Int? = r.chance(80) ? nil : r.pick([1, 2, 100_000_000])
            let nodes: Int? = r.chance(80) ? nil : r.pick([1, 3, 100_000_000])
            let shape = try? JobShape.ofJob(traces: builder.rankCount, hosts: builder.hosts.count, processes: procs, nodes: nodes)
            if let shape = shape ?? nil { _ = shape.perNode }
            do {
                let report = try builder.finish(job: shape ?? nil)
                stats.add("report")
                switch format {
                case 0: _ = ReportText.render(report, style: TextStyle(color: r.chance(30)))
                case 1: _ = ReportJSON.document(report).serialized()
                case 2: _ = ReportHTML.render(report)
                default: _ = PerfettoTrace.render(report.analyses, leftOut: report.tracesLeftOut)
                }
                if r.chance(20) { _ = ReportJSON.document(report).serialized(pretty: false) }
            } catch {
                stats.add("report refused")
                _ = error.description
            }
        } else {
            // Several traces, not a job: one document per trace.
            for a in analyses {
                let report = Report(analyses: [a], options: options)
                if r.bool() { _ = ReportJSON.document(report).serialized() } else { _ = ReportText.render(report, style: TextStyle(color: false)) }
            }
            stats.add("reports one by one")
        }
        // diff before after (and the other way round).
        if analyses.count >= 2 {
            let d = TraceDiff(before: analyses[0], after: analyses[1], options: options, eachOwnCompute: r.chance(50))
            _ = d.text(style: TextStyle(color: r.chance(50)))
            _ = d.json().serialized()
            if r.chance(30) { _ = TraceDiff(before: analyses[1], after: analyses[0], options: options).json().serialized() }
            stats.add("diff")
        } else if r.chance(10) {
            _ = TraceDiff(before: analyses[0], after: analyses[0], options: options).text(style: TextStyle(color: false))
            stats.add("diff")
        }
    }

    static func reasonName(_ reason: TraceReadError.Reason) -> String {
        switch reason {
        case .unreadable: "unreadable"
        case .notATrace: "not a trace"
        case .unsupportedVersion: "version"
        case .truncated: "truncated"
        case .corrupt: "corrupt"
        case .incomplete: "incomplete"
        }
    }
}
