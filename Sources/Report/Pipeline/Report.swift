import SystemLayer
import LoaderModel
#if canImport(Glibc)
import Glibc
#endif
import TraceFormat

/// What `loadprobe report` was asked for.
public struct ReportOptions: Sendable {
    public var profile: FileSystemProfile = FileSystemProfile.named("nfs")!
    public var job = JobShape()
    public var remotePrefixes: [String] = []
    public var ignoreMountTable = false
    public var computeSeconds: Double?
    public var liftDlopen = false
    public var viewDirectory: String?
    /// The python-path scenario's directory (default: beside the first consolidated entry).
    public var pythonViewDirectory: String?
    public var consultHost: ModelWorld.HostUse = .sameHost
    /// Read the program's ELF file (when present) for its exact RPATH/RUNPATH.
    public var useELF = true
    public var scenarios: [Scenario] = Scenario.allCases
    /// Data per node the trace does not show (MiB read once per node).
    public var extraBytesPerNode: Double = 0
    /// Cores per node (nil: enough for every process).
    public var coresPerNode: Int?
    public var top = 10
    /// A job's report lists every rank (`--per-rank`); otherwise only the ranks that stand out.
    public var perRank = false
    public init() {}

    /// Rows of a list that shows `factor` × `top` (at least one row; `--top`
    /// has no upper bound, so the product saturates instead of overflowing).
    public func rows(_ factor: Int = 1) -> Int {
        let (n, overflow) = max(top, 1).multipliedReportingOverflow(by: factor)
        return overflow ? .max : n
    }
}

/// One program image's attribution (JSON `attribution[]`), kept instead of its calls.
public struct ProcessDigest: Sendable {
    public var pid: Int32
    public var image: String
    public var calls: Int
    public var failed: Int
    /// Calls and failed calls per purpose, in `CallPurpose.allCases` order (purposes with calls only).
    public var byPurpose: [(purpose: CallPurpose, calls: Int, failed: Int)]
    public var searches: Int
    public var objectsLoaded: Int
    public var relocationNs: UInt64
    public var groups: [LoadGroup]

    public init(_ p: ProcessAnalysis) {
        pid = p.pid
        image = p.image
        calls = p.calls.count
        var counts = [CallCount](repeating: CallCount(), count: CallPurpose.allCases.count)
        for c in p.calls { counts[c.purpose.index].add(failed: c.failed) }
        failed = counts.reduce(0) { $0 + $1.failed }
        byPurpose = CallPurpose.allCases.compactMap { k in counts[k.index].calls > 0 ? (k, counts[k.index].calls, counts[k.index].failed) : nil }
        searches = p.searches.count
        objectsLoaded = p.objects.count
        relocationNs = p.relocationNs
        groups = p.groups
    }
}

/// A report over one trace or a job's traces: attribution, waste, scenarios.
/// Made by `ReportBuilder`, which reads a job's traces one at a time.
public struct Report: Sendable {
    /// The traces kept whole for renderers that draw every call (Perfetto):
    /// all of them for a single trace, the first `ReportBuilder.keepTraces` of a job.
    public var analyses: [TraceAnalysis]
    /// Traces of the job not in `analyses`.
    public var tracesLeftOut: Int
    public var summaries: [TraceSummary]
    public var attribution: [ProcessDigest]
    /// The first processes with calls or searches (up to 13, calls dropped): the HTML timelines.
    public var timelineProcesses: [ProcessAnalysis]
    public var waste: WasteRanking
    public var scenarios: [ScenarioResult]
    public var options: ReportOptions
    public var remoteRoots: [(path: String, why: String)]
    public var capabilitySubdirectories: [String]
    /// Loader fixes left out, and why (no loader world to simulate them in).
    public var scenariosUnavailable: (scenarios: [Scenario], reason: String)?
    public var programSearchPathSource: String
    public var programSearchPath: [String]
    public var usedHost: Bool
    /// The job (several ranks, or a summary trace): start-up over ranks and hosts, outliers.
    public var job: JobReport?
    /// The first trace made by `record --what-if`: the fix tried and the searches it answered.
    public var whatIf: WhatIfSummary?
    /// Full traces in the report (the calls, waste and scenarios come from them alone).
    public var fullTraces: Int { summaries.count }

    init(analyses: [TraceAnalysis], tracesLeftOut: Int, summaries: [TraceSummary], attribution: [ProcessDigest],
         timelineProcesses: [ProcessAnalysis], waste: WasteRanking, scenarios: [ScenarioResult], options: ReportOptions,
         remoteRoots: [(path: String, why: String)], capabilitySubdirectories: [String], programSearchPathSource: String,
         programSearchPath: [String], usedHost: Bool) {
        self.analyses = analyses; self.tracesLeftOut = tracesLeftOut; self.summaries = summaries
        self.attribution = attribution; self.timelineProcesses = timelineProcesses; self.waste = waste
        self.scenarios = scenarios; self.options = options; self.remoteRoots = remoteRoots
        self.capabilitySubdirectories = capabilitySubdirectories; self.programSearchPathSource = programSearchPathSource
        self.programSearchPath = programSearchPath; self.usedHost = usedHost
    }

    public init(analyses: [TraceAnalysis], options: ReportOptions) {
        self.init(analyses: analyses, options: options, scenarioListing: nil)
    }

    /// With a listing, identical traces are listed each (not priced once).
    init(analyses: [TraceAnalysis], options: ReportOptions, scenarioListing: (Scenario, (String) -> Void)?) {
        var b = ReportBuilder(options: options)
        b.keepTraces = analyses.count
        b.dedup = scenarioListing == nil
        b.callBudget = .max
        for a in analyses { b.add(a) }
        // Every trace is in memory: nothing is read again.
        self = try! b.finish(scenarioListing: scenarioListing)
    }

    public func scenario(_ s: Scenario) -> ScenarioResult? { scenarios.first { $0.scenario == s } }

    /// The program's RPATH/RUNPATH from its ELF file, as glibc expands it.
    static func elfSearchPath(_ image: String) -> [String]? {
        guard !image.isEmpty, let elf = try? ELFFile(contentsOf: image) else { return nil }
        guard let raw = elf.runpath ?? elf.rpath, !raw.isEmpty else { return [] }
        let real = HostFileSystem().realPath(image) ?? image
        let profile = GlibcProfile.host()
        return GlibcPaths.decompose(raw, separators: ":", origin: SearchDirectory.dirname(real), profile: profile).map {
            $0.count > 1 && $0.hasSuffix("/") ? String($0.dropLast()) : $0
        }
    }

    static func hostName() -> String? {
        Sys.uname()?.nodename
    }
}
