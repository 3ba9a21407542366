import LoaderModel
import TraceFormat

/// Makes a report from traces given one at a time, so that a job's traces are
/// never all in memory: each trace is summarised, ranked and turned into model
/// calls as it comes (`add`), and its events are dropped.
///
/// The scenarios need everything the traces show about the file tree before
/// any of them is priced, so they are built after the last trace (`finish`).
/// Traces whose model input is identical (the ranks of one program, as a job's
/// traces usually are) are priced once and counted as many times as they
/// occurred: a trace is kept in memory as its group's representative while the
/// kept traces stay under `callBudget` calls; beyond that, a representative is
/// read again from its file when the scenarios are built.
public struct ReportBuilder {
    public var options: ReportOptions
    /// Traces kept whole (calls included) for renderers that draw every call (Perfetto).
    public var keepTraces = 1
    /// Keep the first processes' searches for the HTML timelines.
    public var keepTimelines = true
    /// Group identical traces (off: every trace is built and priced on its own).
    public var dedup = true
    /// Calls of the groups' representatives kept in memory at most.
    public var callBudget = 2_000_000

    public private(set) var traceCount = 0
    /// Every rank, full or summary trace (the job report).
    public private(set) var jobRanks: [JobRank] = []
    /// Ranks in the job: full and summary traces.
    public var rankCount: Int { jobRanks.count }
    /// The recording hosts (for the job shape: one node per host).
    public private(set) var hosts = Set<String>()

    let here: String?
    var summaries: [TraceSummary] = []
    var waste = WasteRanking.Accumulator()
    var attribution: [ProcessDigest] = []
    var timeline: [ProcessAnalysis] = []
    var kept: [TraceAnalysis] = []
    var leftOut = 0
    var world: ModelWorld
    var computeTotal = 0.0
    var computeMethod = ""
    var allHere = true
    var images: [String] = []
    var imageSeen = Set<String>()
    var anyProcess = false
    /// The first trace's process images (the trace itself is kept: its group's representative).
    var firstImages: [String]?

    struct Group {
        var fingerprint: Fingerprint
        var count: Int
        var file: String
        var partial: Bool
        var analysis: TraceAnalysis?
        var recorded: [[ModelCall]]?
    }
    var groups: [Group] = []
    var groupOf: [Fingerprint: Int] = [:]
    /// The callers' objects' symbol tables, read once for all traces.
    var symbols = CodeSymbols.Cache()
    var keptCalls = 0
    var firstFingerprinted = false
    var unreadable: [(file: String, reason: String)] = []
    /// Traces counted with `addRepeat`.
    public private(set) var repeats = 0
    /// The first what-if recording among the traces.
    var whatIf: WhatIfSummary?

    public init(options: ReportOptions) {
        self.options = options
        here = Report.hostName()
        var wo = ModelWorld.Options()
        wo.remotePrefixes = options.remotePrefixes
        wo.ignoreMountTable = options.ignoreMountTable
        wo.consultHost = options.consultHost
        world = ModelWorld(options: wo)
    }

    /// What a trace added leaves for `addRepeat` of a trace identical to it.
    public struct Representative: Sendable {
        var analysis: TraceAnalysis
        var group: Int
        var rank: RankSummary
        var compute: Double
    }

    /// Folds one trace in. `partial` says how to read it again if needed.
    @discardableResult
    public mutating func add(_ analysis: TraceAnalysis, partial: Bool = false) -> Representative {
        var a = analysis
        a.nameCallers(&symbols)
        traceCount += 1
        summaries.append(a.summary)
        if whatIf == nil { whatIf = WhatIfSummary(a) }
        let rank = RankSummary(analysis: a)
        jobRanks.append(JobRank(trace: a.trace, file: a.file, summary: rank, full: true))
        // The events are not needed any more: the attribution holds the calls.
        a.trace.events = []
        waste.add(a)
        if let h = a.host { hosts.insert(h) }
        if a.host != here { allHere = false }
        var compute = 0.0
        for p in a.processes {
            attribution.append(ProcessDigest(p))
            if keepTimelines && timeline.count < 13 && (!p.calls.isEmpty || !p.searches.isEmpty) {
                var t = p
                t.calls = []
                timeline.append(t)
            }
            if options.computeSeconds == nil {
                let e = ComputeEstimate(p, mode: a.recordingMode)
                compute += e.seconds
                computeTotal += e.seconds
                if computeMethod.isEmpty { computeMethod = e.method }
            }
            anyProcess = true
            if imageSeen.insert(p.image).inserted { images.append(p.image) }
        }
        if firstImages == nil { firstImages = a.processes.map(\.image) }
        world.addRoots(a)
        let rec = world.add(a)
        // The first trace's fingerprint is made when a second one is analysed (a
        // single trace needs none).
        let first = groups.isEmpty
        if !first && dedup && !firstFingerprinted, let a0 = groups[0].analysis, let r0 = groups[0].recorded {
            groups[0].fingerprint = Fingerprint(a0, r0)
            groupOf = [groups[0].fingerprint: 0]
            firstFingerprinted = true
        }
        let fp = !dedup ? Fingerprint(unique: traceCount) : first ? Fingerprint(unique: 0) : Fingerprint(a, rec)
        let group: Int
        if let g = groupOf[fp] {
            groups[g].count += 1
            group = g
        } else {
            group = groups.count
            let calls = a.allCalls
            let keep = groups.isEmpty || keptCalls + calls <= callBudget
            if keep { keptCalls += calls }
            groupOf[fp] = groups.count
            groups.append(Group(fingerprint: fp, count: 1, file: a.file, partial: partial,
                                analysis: keep ? a : nil, recorded: keep ? rec : nil))
        }
        if kept.count < keepTraces { kept.append(a) } else { leftOut += 1 }
        return Representative(analysis: a, group: group, rank: rank, compute: compute)
    }

    /// A trace whose content is that of one added before (the same calls and
    /// searches in the same order, the same strings and mount table: the
    /// ranks of one program, TraceIdentity), counted without analysing it
    /// again: its own summary, exec → main, host and pids; the representative's
    /// calls, waste and model calls (docs/jobs.md).
    public mutating func addRepeat(of rep: Representative, trace: Trace, file: String) {
        traceCount += 1
        repeats += 1
        let own = TraceSummary(trace: trace, file: file)
        summaries.append(own)
        var rank = rep.rank
        (rank.execToMainNs, rank.exit) = RankSummary.ending(own)
        jobRanks.append(JobRank(trace: trace, file: file, summary: rank, full: true))
        waste.add(rep.analysis)
        let host = trace.meta(.host)
        if let h = host { hosts.insert(h) }
        if host != here { allHere = false }
        // The representative's processes, under this trace's pids (the same processes in the same order).
        var pids: [Int32: Int32] = [:]
        for (mine, theirs) in zip(own.processes, rep.analysis.summary.processes) { pids[theirs.pid] = mine.pid }
        for p in rep.analysis.processes {
            var d = ProcessDigest(p)
            d.pid = pids[p.pid] ?? p.pid
            attribution.append(d)
        }
        computeTotal += rep.compute
        groups[rep.group].count += 1
        leftOut += 1
    }

    /// A job's trace that could not be used: named in the job section.
    public mutating func addUnreadable(file: String, reason: String) {
        unreadable.append((file, reason))
    }

    /// A summary trace (`--full-ranks`): a rank of the job, without calls.
    public mutating func addSummary(_ trace: Trace, file: String, summary: RankSummary) {
        jobRanks.append(JobRank(trace: trace, file: file, summary: summary, full: false))
        if let h = trace.meta(.host) { hosts.insert(h) }
        if trace.meta(.host) != here { allHere = false }
    }

    /// The report over the traces added. `job` overrides the options' job shape.
    public mutating func finish(job: JobShape? = nil,
                                scenarioListing: (Scenario, (String) -> Void)? = nil) throws(TraceReadError) -> Report {
        var options = self.options
        if let job { options.job = job }
        let elfAllowed = options.useELF && (allHere || options.consultHost == .always)
        world.settle(consultHost: options.consultHost == .always
                     || (options.consultHost == .sameHost && here != nil && allHere))
        let (source, firstPath) = programSearchPath(elfAllowed: elfAllowed)
        world.programSearchPathSource = source

        var builder = ScenarioBuilder(world: world)
        builder.pythonViewDirectory = options.pythonViewDirectory
        world = ModelWorld(options: world.options)
        var pricing = Pricing(options: options, scenarios: options.scenarios.count)
        if options.computeSeconds == nil {
            // The traced run's own compute time: gaps between calls less the tracer's stops.
            pricing.model.computeSeconds = computeTotal / Double(max(1, traceCount))
            pricing.model.computeMethod = computeMethod
        }
        for g in groups.indices {
            try price(group: g, with: &pricing, builder: &builder, options: options, elfAllowed: elfAllowed,
                      scenarioListing: scenarioListing)
        }
        var results: [ScenarioResult] = []
        var unavailable: [Scenario] = []
        if scenarioListing == nil { (results, unavailable) = pricing.results(builder: builder, options: options) }
        if let base = results.first(where: { $0.scenario == .recorded }) {
            for i in results.indices where results[i].jobSeconds > 0 {
                results[i].speedup = base.jobSeconds / results[i].jobSeconds
            }
        }
        var report = Report(analyses: kept, tracesLeftOut: leftOut, summaries: summaries, attribution: attribution,
                            timelineProcesses: timeline, waste: WasteRanking(waste), scenarios: results, options: options,
                            remoteRoots: builder.world.remote, capabilitySubdirectories: builder.world.capabilitySubdirectories,
                            programSearchPathSource: source, programSearchPath: firstPath, usedHost: builder.world.usedHost)
        report.whatIf = whatIf
        if jobRanks.count > 1 || jobRanks.contains(where: { !$0.full }) || !unreadable.isEmpty {
            report.job = JobReport(jobRanks, top: options.top)
            report.job?.repeatedTraces = repeats
            report.job?.unreadable = unreadable
            if let recorded = results.first(where: { $0.scenario == .recorded }), traceCount > 0 {
                report.job?.load(jobOperations: recorded.jobOperations)
            }
        }
        if !unavailable.isEmpty {
            let without = pricing.tracesWithoutWorld
            report.scenariosUnavailable = (unavailable, "the loader's world is not known: \(without == traceCount ? "the traces have" : "\(without) of \(traceCount) traces have") no OBJECT records (trace format < 3) and their files are not on this host (or --no-host); record again with this loadprobe, or report on the recording host")
        }
        return report
    }

    /// The program's own search path (for the view scenarios) and where it was
    /// taken from: its ELF file when that may be read, else inferred from the
    /// directories of its first searches.
    func programSearchPath(elfAllowed: Bool) -> (source: String, path: [String]) {
        var elfCache: [String: [String]?] = [:]
        func exact(_ image: String) -> [String]? {
            guard elfAllowed else { return nil }
            if let v = elfCache[image] { return v }
            let v = Report.elfSearchPath(image)
            elfCache[image] = v
            return v
        }
        var source = anyProcess ? "inferred from the trace (the directories of the program's first searches)" : "none"
        if images.contains(where: { exact($0) != nil }) { source = "the program's ELF file (DT_RPATH/DT_RUNPATH)" }
        for (pi, image) in (firstImages ?? []).enumerated() {
            let path = exact(image) ?? groups.first?.analysis.map { ModelWorld.inferProgramSearchPath($0.processes[pi]) } ?? []
            if !path.isEmpty { return (source, path) }
        }
        return (source, [])
    }

    /// What pricing the scenarios gathers over the groups of identical traces.
    struct Pricing {
        var model: CostModel
        var assumptions: [ScenarioAssumptions]
        var simulated: [Bool]
        var modelCheck = ModelCheck()
        var worldSources = Set<String>()
        var tracesWithoutWorld = 0
        /// Audit-only traces whose unchanged start-up was priced from the simulation (they have no system calls).
        var modeledAuditOnly = 0
        /// Of those, what-if traces: modeled in the fixed world they tried.
        var modeledWhatIf = 0
        var tallies: [CostModel.Tally]

        init(options: ReportOptions, scenarios n: Int) {
            model = CostModel(profile: options.profile, job: options.job, computeSeconds: options.computeSeconds)
            model.extraBytesPerNode = options.extraBytesPerNode
            model.coresPerNode = options.coresPerNode
            assumptions = [ScenarioAssumptions](repeating: ScenarioAssumptions(), count: n)
            simulated = [Bool](repeating: false, count: n)
            tallies = [CostModel.Tally](repeating: CostModel.Tally(), count: n)
        }

        /// Each scenario priced, or left out when a loader fix cannot be predicted (no loader world).
        mutating func results(builder: ScenarioBuilder, options: ReportOptions) -> ([ScenarioResult], [Scenario]) {
            var results: [ScenarioResult] = []
            var unavailable: [Scenario] = []
            for (si, s) in options.scenarios.enumerated() {
                if s.isLoaderFix && !simulated[si] && tracesWithoutWorld > 0 {
                    unavailable.append(s)
                    continue
                }
                if simulated[si] {
                    ReportBuilder.describeSimulated(s, options: options, assumptions: &assumptions[si])
                } else {
                    builder.describe(s, assumptions: &assumptions[si])
                }
                if (s == .recorded || s == .negativeCache) && modeledAuditOnly > modeledWhatIf {
                    assumptions[si].add("audit-only traces", "\(modeledAuditOnly - modeledWhatIf) recorded through the audit library alone (no system calls): "
                                        + "their loader calls are the glibc simulation's of the unchanged world, so the fixes compare with like")
                }
                if (s == .recorded || s == .negativeCache) && modeledWhatIf > 0 {
                    assumptions[si].add("audit-only what-if", "\(modeledWhatIf) what-if trace(s) recorded through the audit library alone (no system calls): "
                                        + "their loader calls are the glibc simulation's of the fixed world they tried, whose lookups the what-if makes")
                }
                if s == .recorded {
                    for w in worldSources.sorted() { assumptions[si].add("loader world", w) }
                    assumptions[si].add("model check", modelCheck.text)
                }
                results.append(model.result(s, tallies[si], assumptions: assumptions[si]))
            }
            return (results, unavailable)
        }
    }

    /// One group of identical traces: its analysis (kept, or read again), the
    /// loader simulation on the world it carries, and every scenario's calls priced.
    mutating func price(group g: Int, with pricing: inout Pricing, builder: inout ScenarioBuilder, options: ReportOptions,
                        elfAllowed: Bool, scenarioListing: (Scenario, (String) -> Void)?) throws(TraceReadError) {
        var analysis: TraceAnalysis
        var recorded: [[ModelCall]]
        if let a = groups[g].analysis, let r = groups[g].recorded {
            analysis = a; recorded = r
            groups[g].analysis = nil; groups[g].recorded = nil
        } else {
            // Read again: the same calls give the same model calls (the tree already knows them).
            let trace = try TraceReader.read(file: groups[g].file, allowPartial: groups[g].partial)
            analysis = TraceAnalysis(trace: trace, file: groups[g].file)
            analysis.trace.events = []
            recorded = builder.world.add(analysis)
            if dedup && Fingerprint(analysis, recorded) != groups[g].fingerprint {
                throw TraceReadError(file: groups[g].file, reason: .corrupt(offset: 0, what: "the file changed while the report was made"))
            }
        }
        // The one loader simulation, on the world the trace carries.
        let traceWorld = TraceWorld(analysis, consultHost: elfAllowed)
        // An audit-only trace has no system calls: its unchanged start-up is the simulation's too.
        let auditOnly = analysis.recordingMode == .auditOnly
        let sims = analysis.processes.map { p in
            traceWorld.flatMap { w in
                SimulatedProcess(p, world: w, loaderCache: options.scenarios.contains(.loaderCache)
                                 ? ReportBuilder.loaderCacheTransform(image: p.image, world: w.world) : nil,
                                 modelUnchanged: auditOnly)
            }
        }
        if auditOnly && sims.contains(where: { $0 != nil }) { pricing.modeledAuditOnly += groups[g].count }
        // An audit-only what-if: its start-up made the fixed program's lookups (audit-lib/README.md, "What-if").
        let whatIf = auditOnly ? ReportBuilder.whatIfTransform(analysis.trace) : nil
        // Only the recorded program's image is answered (the map names it); the programs it runs are not.
        let answeredImage = whatIf == nil ? nil : WhatIfSummary.answeredProcess(analysis)?.image
        if whatIf != nil && sims.contains(where: { $0 != nil }) { pricing.modeledWhatIf += groups[g].count }
        for (pi, sim) in sims.enumerated() {
            if let sim { pricing.modelCheck.add(sim.check(analysis.processes[pi]), times: groups[g].count) } else { pricing.modelCheck.unsimulated += groups[g].count }
        }
        if let traceWorld { pricing.worldSources.insert("ELF facts from \(traceWorld.source.rawValue); loader profile from \(traceWorld.profileSource)") }
        if traceWorld == nil { pricing.tracesWithoutWorld += groups[g].count }
        for (si, s) in options.scenarios.enumerated() {
            // A loader fix: each simulated process's calls in the changed world; the others as recorded.
            var procs = builder.build(s, trace: analysis, recorded: recorded)
            let modeled = auditOnly && (s == .recorded || s == .negativeCache)
            if s.isLoaderFix || modeled {
                for (pi, p) in analysis.processes.enumerated() {
                    guard let sim = sims[pi] else { continue }
                    if !modeled { pricing.simulated[si] = true }
                    let fixed = p.image == answeredImage ? whatIf.map { $0(sim) } : nil
                    let calls = sim.calls(modeled ? fixed : ReportBuilder.transform(s, sim, options), p, recorded[pi], tree: &builder.world.tree)
                    procs[pi] = ModelProcess(label: p.label, calls: calls, objects: p.objects.count)
                }
            }
            if let (want, sink) = scenarioListing {
                if want == s { CostModel.list([procs], tree: builder.world.tree, profile: options.profile, sink: sink) }
                continue
            }
            var walker = PathWalker(tree: builder.world.tree, profile: pricing.model.profile(for: s))
            pricing.model.add(procs, walker: &walker, to: &pricing.tallies[si], times: groups[g].count)
        }
    }
}

extension ReportBuilder {
    /// The world change a loader scenario makes for one process.
    static func transform(_ s: Scenario, _ sim: SimulatedProcess, _ options: ReportOptions) -> WorldTransform? {
        switch s {
        case .loaderCache: return loaderCacheTransform(image: sim.input.program, world: sim.input.world)
        case .shrinkwrap: return .shrinkwrap(liftDlopen: options.liftDlopen)
        case .bind: return .bind
        case .view:
            if let dir = options.viewDirectory { return .view(directory: dir) }
            return .view(directory: WorldTransform.defaultViewDirectory(input: sim.input, baseline: sim.baseline))
        case .recorded, .negativeCache, .staticLink, .pythonPath: return nil
        }
    }

    /// The fix a what-if trace tried, as a world change for one process; nil
    /// for another trace (or one from before the scenario was recorded).
    static func whatIfTransform(_ trace: Trace) -> ((SimulatedProcess) -> WorldTransform)? {
        switch trace.meta(.whatIfScenario) {
        case "shrinkwrap":
            let lift = trace.meta(.whatIfLiftDlopen) == "1"
            return { _ in .shrinkwrap(liftDlopen: lift) }
        case "bind": return { _ in .bind }
        case "view":
            let dir = trace.meta(.whatIfViewDirectory)
            return { sim in .view(directory: dir ?? WorldTransform.defaultViewDirectory(input: sim.input, baseline: sim.baseline)) }
        default: return nil
        }
    }

    /// Guix's place for a program's cache: its prefix's etc/ld.so.cache.
    static func loaderCacheTransform(image: String, world: LoaderWorld) -> WorldTransform {
        let program = world.resolve(image) ?? image
        return .loaderCache(path: LoaderPath.join(LoaderPath.directory(LoaderPath.directory(program)), "etc/ld.so.cache"))
    }

    static func describeSimulated(_ s: Scenario, options: ReportOptions, assumptions a: inout ScenarioAssumptions) {
        a.add("method", "the loader's world changed as the fix changes it, then the one glibc simulation (the one explain uses) run on it; other calls as recorded")
        switch s {
        case .shrinkwrap:
            a.add("program's DT_NEEDED", "the absolute paths of every library the start-up loads, in load order" + (options.liftDlopen ? ", dlopen'ed ones included" : ""))
            a.add("libraries", "untouched: a DT_NEEDED whose name is no loaded object's name or soname is still searched")
        case .bind:
            a.add("every DT_NEEDED", "the absolute path it resolved to, in every object; RPATH/RUNPATH kept")
        case .view:
            a.add("program's RPATH/RUNPATH", "one directory of symlinks (one per name and file name of every library loaded); libraries keep theirs")
            a.add("symlinks", "each hit costs a readlink and a walk of its target")
        case .loaderCache:
            a.add("cache", "<program prefix>/etc/ld.so.cache: read once per process (open, fstat), consulted after LD_LIBRARY_PATH and before RUNPATH, in place of /etc/ld.so.cache; an RPATH is still searched first")
        case .recorded, .negativeCache, .staticLink, .pythonPath:
            break
        }
    }
}

/// How well the simulation reproduces the recorded loader calls.
struct ModelCheck {
    var recorded = 0, simulated = 0, processes = 0, unsimulated = 0
    mutating func add(_ c: (recorded: Int, simulated: Int), times: Int) {
        recorded += c.recorded * times; simulated += c.simulated * times; processes += times
    }
    var text: String {
        guard processes > 0 else { return "no process simulated (no loader world: the trace has no OBJECT records and its files are not here)" }
        let diff = recorded == 0 ? 0 : Double(simulated - recorded) / Double(recorded) * 100
        var t = "the unchanged world simulated gives \(simulated) loader calls where \(recorded) were recorded (\(diff >= 0 ? "+" : "")\(String(format1: diff))%)"
        if unsimulated > 0 { t += "; \(unsimulated) processes not simulated (their calls kept as recorded)" }
        return t
    }
}

extension String {
    init(format1 v: Double) {
        let r = (v * 10).rounded() / 10
        self = r == r.rounded() ? String(Int(r)) + ".0" : String(r)
    }
}

/// 128 bits over everything the scenarios read of a trace: per process the
/// image, objects, every call's model call, search, candidate, purpose and
/// phase, and every search with its candidates and what it found. Equal
/// fingerprints: the scenarios build and price the same calls.
struct Fingerprint: Hashable, Sendable {
    var a: UInt64 = 0xcbf2_9ce4_8422_2325
    var b: UInt64 = 0x6a09_e667_f3bc_c908

    init(unique n: Int) { add(0xdead_beef); add(UInt64(n)) }

    @inline(__always) mutating func add(_ x: UInt64) {
        a = (a ^ x) &* 0x0000_0100_0000_01b3
        a ^= a >> 32
        b = (b &+ x) &* 0x9e37_79b9_7f4a_7c15
        b = (b << 27 | b >> 37) ^ (b >> 29)
    }

    mutating func add(_ s: String) {
        add(UInt64(s.utf8.count) | 1 << 63)
        var word: UInt64 = 0, n = 0
        for byte in s.utf8 {
            word = word << 8 | UInt64(byte)
            n += 1
            if n == 8 { add(word); word = 0; n = 0 }
        }
        if n > 0 { add(word) }
    }

    static func phase(_ p: Phase) -> UInt64 {
        switch p {
        case .exec: 0
        case .startup: 1
        case .main: 2
        case .dlopen(let n): 3 | UInt64(UInt32(truncatingIfNeeded: n)) << 8
        case .exit: 4
        }
    }

    init(_ t: TraceAnalysis, _ recorded: [[ModelCall]]) {
        add(UInt64(t.processes.count))
        // Directory parts hashed once per string id.
        var partHash = [UInt64](repeating: 0, count: t.trace.strings.count)
        var partDone = [Bool](repeating: false, count: t.trace.strings.count)
        for (pi, p) in t.processes.enumerated() {
            add(p.image)
            add(UInt64(p.objects.count))
            add(UInt64(p.calls.count))
            add(UInt64(p.searches.count))
            let rec = recorded[pi]
            for (i, c) in p.calls.enumerated() {
                let m = rec[i]
                var bits = UInt64(m.kind.rawValue)
                bits |= UInt64(m.call.rawValue) << 8
                bits |= UInt64(c.purpose.index) << 16
                bits |= UInt64(m.purpose.index) << 24
                if m.failed { bits |= 1 << 32 }
                if m.unresolved { bits |= 1 << 33 }
                add(bits)
                add(UInt64(UInt32(bitPattern: m.dir)) << 32 | UInt64(UInt32(bitPattern: m.name)))
                add(UInt64(UInt32(bitPattern: c.search)) << 32 | UInt64(UInt32(bitPattern: c.candidate)))
                add(Fingerprint.phase(c.phase))
            }
            for s in p.searches {
                add(s.name)
                add(Fingerprint.phase(s.phase))
                add(s.found ?? "\u{0}")
                add(s.foundDirectory ?? "\u{0}")
                add(s.foundOrigin.map { UInt64(LookupOrigin.allCases.firstIndex(of: $0)!) } ?? 99)
                add(UInt64(s.candidates.count))
                for c in s.candidates {
                    let id = Int(c.directoryPartId)
                    var h: UInt64
                    if id < partHash.count {
                        if !partDone[id] {
                            var f = Fingerprint(unique: 0)
                            f.add(c.directoryPart)
                            partHash[id] = f.a ^ (f.b << 1)
                            partDone[id] = true
                        }
                        h = partHash[id]
                    } else {
                        var f = Fingerprint(unique: 0)
                        f.add(c.directoryPart)
                        h = f.a ^ (f.b << 1)
                    }
                    add(h)
                    add((c.origin.map { UInt64(LookupOrigin.allCases.firstIndex(of: $0)!) } ?? 98) | outcomeBits(c.outcome) << 8)
                }
            }
        }
    }

    func outcomeBits(_ o: SearchCandidate.Outcome) -> UInt64 {
        switch o {
        case .hit: 0
        case .miss: 1
        case .skipped: 2
        case .untried: 3
        }
    }
}
