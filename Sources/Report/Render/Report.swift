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
    public var consultHost: ModelWorld.HostUse = .sameHost
    /// Read the program's ELF file (when present) for its exact RPATH/RUNPATH.
    public var useELF = true
    public var scenarios: [Scenario] = Scenario.allCases
    /// Data per node the trace does not show (MiB read once per node).
    public var extraBytesPerNode: Double = 0
    /// Cores per node (nil: enough for every process).
    public var coresPerNode: Int?
    public var top = 10
    public init() {}
}

/// A report over one trace or a job's traces: attribution, waste, scenarios.
public struct Report: Sendable {
    public var analyses: [TraceAnalysis]
    public var summaries: [TraceSummary]
    public var waste: WasteRanking
    public var scenarios: [ScenarioResult]
    public var options: ReportOptions
    public var remoteRoots: [(path: String, why: String)]
    public var capabilitySubdirectories: [String]
    public var programSearchPathSource: String
    public var programSearchPath: [String]
    public var usedHost: Bool

    public init(analyses: [TraceAnalysis], options: ReportOptions) {
        self.init(analyses: analyses, options: options, scenarioListing: nil)
    }

    init(analyses: [TraceAnalysis], options: ReportOptions, scenarioListing: (Scenario, (String) -> Void)?) {
        self.analyses = analyses
        self.options = options
        summaries = analyses.map { TraceSummary(trace: $0.trace, file: $0.file) }
        waste = WasteRanking(analyses)
        var wo = ModelWorld.Options()
        wo.remotePrefixes = options.remotePrefixes
        wo.ignoreMountTable = options.ignoreMountTable
        wo.consultHost = options.consultHost
        let here = Report.hostName()
        if options.useELF {
            let sameHost = analyses.allSatisfy { $0.host == here }
            if sameHost || options.consultHost == .always {
                wo.programSearchPath = { p in Report.elfSearchPath(p) }
            }
        }
        let world = ModelWorld(analyses: analyses, options: wo, hostName: here)
        remoteRoots = world.remote
        capabilitySubdirectories = world.capabilitySubdirectories
        programSearchPathSource = world.programSearchPathSource
        programSearchPath = world.programSearchPath.first?.first(where: { !$0.isEmpty }) ?? []
        usedHost = world.usedHost
        var builder = ScenarioBuilder(world: world, analyses: analyses)
        builder.liftDlopen = options.liftDlopen
        builder.viewDirectory = options.viewDirectory
        var model = CostModel(profile: options.profile, job: options.job, computeSeconds: options.computeSeconds)
        model.extraBytesPerNode = options.extraBytesPerNode
        model.coresPerNode = options.coresPerNode
        if options.computeSeconds == nil {
            // The traced run's own compute time: gaps between calls less the tracer's stops.
            var total = 0.0
            var method = ""
            for a in analyses {
                for p in a.processes {
                    let e = ComputeEstimate(p, mode: a.mode)
                    total += e.seconds
                    if method.isEmpty { method = e.method }
                }
            }
            model.computeSeconds = total / Double(max(1, analyses.count))
            model.computeMethod = method
        }
        var results: [ScenarioResult] = []
        for s in options.scenarios {
            var a = ScenarioAssumptions()
            let procs = builder.build(s, assumptions: &a)
            if let (want, sink) = scenarioListing {
                if want == s { CostModel.list(procs, tree: builder.world.tree, profile: options.profile, sink: sink) }
                continue
            }
            results.append(model.price(s, processes: procs, tree: builder.world.tree, assumptions: a))
        }
        if let base = results.first(where: { $0.scenario == .recorded }) {
            for i in results.indices where results[i].jobSeconds > 0 {
                results[i].speedup = base.jobSeconds / results[i].jobSeconds
            }
        }
        scenarios = results
    }

    public func scenario(_ s: Scenario) -> ScenarioResult? { scenarios.first { $0.scenario == s } }

    /// The program's RPATH/RUNPATH from its ELF file, as glibc expands it.
    static func elfSearchPath(_ p: ProcessAnalysis) -> [String]? {
        guard !p.image.isEmpty, let elf = try? ELFFile(contentsOf: p.image) else { return nil }
        guard let raw = elf.runpath ?? elf.rpath, !raw.isEmpty else { return [] }
        let real = HostFileSystem().realPath(p.image) ?? p.image
        let profile = GlibcProfile.host()
        return GlibcPaths.decompose(raw, separators: ":", origin: SearchDirectory.dirname(real), profile: profile).map {
            $0.count > 1 && $0.hasSuffix("/") ? String($0.dropLast()) : $0
        }
    }

    static func hostName() -> String? {
        var u = utsname()
        guard uname(&u) == 0 else { return nil }
        return withUnsafeBytes(of: &u.nodename) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}
