import Dispatch
import SystemLayer
import ArgumentParser
import Report
import LoaderModel
import TraceFormat
#if canImport(Glibc)
import Glibc
#endif

/// The file-system and job options shared by `report` and `diff`.
struct ModelOptions: ParsableArguments {
    @Option(name: [.customLong("fs"), .customLong("profile")],
            help: "File-system profile: \(FileSystemProfile.named.map(\.name).joined(separator: ", ")) (docs/cost-model.md).")
    var fs: String = "nfs"

    @Option(help: ArgumentHelp("Latency of one operation of each kind: lookup=1ms,miss=…,getattr=…,access=…,open=…,readlink=…,read=… or all=….",
                               valueName: "kind=duration,…"))
    var latency: String?

    @Option(name: .customLong("round-trip"), help: ArgumentHelp("Transport overhead added to every operation (e.g. 20us).", valueName: "duration"))
    var roundTrip: String?

    @Option(name: .customLong("open-overhead"), help: ArgumentHelp(
        "Client time per file opened and read beyond its operations (e.g. an NFSv4 CLOSE, a FUSE FLUSH; calibrate measures it).",
        valueName: "duration"))
    var openOverhead: String?

    @Flag(name: .customLong("negative-cache"), help: "The client caches failed lookups (NFS lookupcache=all).")
    var negativeCache = false

    @Flag(name: .customLong("no-negative-cache"), help: "The client does not cache failed lookups (NFS lookupcache=positive).")
    var noNegativeCache = false

    @Option(name: .customLong("positive-cache"), help: ArgumentHelp("The client caches names and attributes for this long (0: off).", valueName: "seconds"))
    var positiveCache: Double?

    @Option(name: .customLong("server-ops"), help: ArgumentHelp("Metadata operations per second the server completes, all clients together.", valueName: "N"))
    var serverOps: Double?

    @Option(name: .customLong("server-bandwidth"), help: ArgumentHelp("Data the server delivers, all clients together, in MiB/s.", valueName: "MiB/s"))
    var serverBandwidth: Double?

    @Option(name: .customLong("extra-data"), help: ArgumentHelp("Data per node the trace does not show (a big executable's pages, input decks), in MiB, read once per node.", valueName: "MiB"))
    var extraData: Double?

    @Option(name: .customLong("remote"), help: ArgumentHelp("A tree on the modeled file system (repeatable); overrides the recorded mount table.", valueName: "prefix"))
    var remote: [String] = []

    @Flag(name: .customLong("no-mount-table"), help: "Ignore the recorded mount table: only --remote trees are modeled.")
    var noMountTable = false

    @Option(help: "Processes in the job (default 1; for a job's traces, one per trace).") var procs: Int?
    @Option(help: "Nodes the processes run on (client caches are per node; default 1; for a job's traces, one per host).") var nodes: Int?

    @Option(help: ArgumentHelp("Cores per node: processes beyond them share the CPU (default: enough cores).", valueName: "N"))
    var cores: Int?

    @Option(help: ArgumentHelp("Seconds of computation per process outside file calls (default: an audit-only trace's exec→main, else an estimate).",
                               valueName: "seconds"))
    var compute: Double?

    @Flag(name: .customLong("lift-dlopen"), help: "Shrinkwrap also lifts dlopen'ed names into DT_NEEDED.")
    var liftDlopen = false

    @Option(name: .customLong("view-dir"), help: ArgumentHelp("Where the view scenario's symlink directory would be.", valueName: "path"))
    var viewDir: String?
    @Option(name: .customLong("python-view-dir"), help: ArgumentHelp("Where the python-path scenario's one sys.path directory would be.", valueName: "path"))
    var pythonViewDir: String?

    @Flag(name: .customLong("no-host"), help: "Do not consult this machine's files (model from the trace alone).")
    var noHost = false

    func validate() throws {
        guard FileSystemProfile.named(fs) != nil else {
            throw ValidationError("unknown file-system profile '\(fs)' (known: \(FileSystemProfile.named.map(\.name).joined(separator: ", ")))")
        }
        if negativeCache && noNegativeCache { throw ValidationError("'--negative-cache' and '--no-negative-cache' are mutually exclusive") }
        // Bounds: a job model, not arithmetic on whatever a number can hold (no inf, no nan).
        if let p = procs, !(1...100_000_000).contains(p) { throw ValidationError("'--procs' must be between 1 and 100000000") }
        if let n = nodes, !(1...100_000_000).contains(n) { throw ValidationError("'--nodes' must be between 1 and 100000000") }
        if let n = nodes, let p = procs, n > p { throw ValidationError("'--nodes' (\(n)) cannot exceed '--procs' (\(p))") }
        func bounded(_ v: Double?, _ name: String, _ range: ClosedRange<Double>, _ what: String) throws {
            if let v, !(v.isFinite && range.contains(v)) { throw ValidationError("'\(name)' must be \(what)") }
        }
        try bounded(serverOps, "--server-ops", 1e-9...1e12, "positive and at most 1e12")
        try bounded(serverBandwidth, "--server-bandwidth", 1e-9...1e15, "positive and at most 1e15")
        try bounded(extraData, "--extra-data", 0...1e9, "between 0 and 1e9 (MB)")
        try bounded(positiveCache, "--positive-cache", 0...1e9, "between 0 and 1e9 (seconds)")
        try bounded(compute, "--compute", 0...1e6, "between 0 and 1e6 (seconds)")
        if let c = cores, !(1...1_000_000).contains(c) { throw ValidationError("'--cores' must be between 1 and 1000000") }
        for d in [roundTrip, openOverhead].compactMap({ $0 }) where FileSystemProfile.parseDuration(d) == nil {
            throw ValidationError("'\(d)' is not a duration (e.g. 20us)")
        }
        _ = try profile()
    }

    /// The file system profile with --latency applied (parsed here only).
    func profile() throws -> FileSystemProfile {
        var p = FileSystemProfile.named(fs)!
        if let l = latency {
            do { try p.apply(latencies: l) } catch { throw ValidationError(error.description) }
        }
        return p
    }

    func reportOptions() throws -> ReportOptions {
        var o = ReportOptions()
        var p = try profile()
        if let rt = roundTrip, let v = FileSystemProfile.parseDuration(rt) { p.roundTrip = v }
        if let o = openOverhead, let v = FileSystemProfile.parseDuration(o) { p.openOverhead = v }
        if negativeCache { p.negativeCacheSeconds = max(p.negativeCacheSeconds, 30) }
        if noNegativeCache { p.negativeCacheSeconds = 0 }
        if let pc = positiveCache { p.positiveCacheSeconds = pc }
        if let s = serverOps { p.serverOpsPerSecond = s }
        if let b = serverBandwidth { p.serverBytesPerSecond = b * 1_048_576 }
        o.profile = p
        o.job = JobShape(processes: procs ?? 1, nodes: nodes ?? 1)
        o.remotePrefixes = remote
        o.ignoreMountTable = noMountTable
        o.computeSeconds = compute
        o.extraBytesPerNode = (extraData ?? 0) * 1_048_576
        o.coresPerNode = cores
        o.liftDlopen = liftDlopen
        o.viewDirectory = viewDir
        o.pythonViewDirectory = pythonViewDir
        o.consultHost = noHost ? .never : .sameHost
        o.useELF = !noHost
        return o
    }
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Where the start-up went, what wasted it, and what Shrinkwrap, a view or a loader cache would give back.",
        discussion: """
        Examples:
          loadprobe report app.lpt
          loadprobe report lp-123456/ --fs nfs-noneg --procs 512 --nodes 4
          loadprobe report app.lpt --remote /nfs/apps --latency all=1ms --format html -o report.html
        """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable { case text, json, html, perfetto }

    @Option(help: "Output format: text, json, html (one self-contained file) or perfetto (Chrome trace-event JSON).")
    var format: Format = .text
    @Option(name: .shortAndLong, help: ArgumentHelp("Write the report to this file instead of stdout.", valueName: "file"))
    var output: String?
    @Flag(help: "Read traces that were cut short (no end record) as far as they go.") var partial = false
    @Flag(help: "Take several traces as one job (a directory always is).") var job = false
    @Option(help: "Rows per ranking.") var top: Int = 10
    @Flag(name: .customLong("per-rank"), help: "For a job: list every rank (by default only the slowest and those that differ).")
    var perRank = false
    @Flag(help: "List every call with what it was for (text format), instead of the report.") var calls = false
    @Option(help: ArgumentHelp("With --calls: list this scenario's calls with the server operations each costs.", valueName: "name"))
    var scenario: String?
    @OptionGroup var model: ModelOptions
    @Argument(help: "Trace files (.lpt) or directories of them.") var traces: [String]

    func validate() throws {
        if traces.isEmpty { throw ValidationError("give at least one trace file") }
        if top < 1 { throw ValidationError("'--top' must be at least 1") }
    }

    /// Traces of a job kept whole for the Perfetto output (every call drawn).
    static let perfettoTraces = 8

    func run() throws {
        var options = try model.reportOptions()
        options.top = top
        options.perRank = perRank
        let (files, isJob) = try TraceFiles.expand(traces)
        if calls, let name = scenario {
            guard let s = Scenario(rawValue: name) else {
                throw ValidationError("unknown scenario '\(name)' (\(Scenario.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            let analyses = try TraceFiles.load(files, partial: partial)
            try Output.write(ReportText.scenarioListing(analyses, scenario: s, options: options), to: output)
            return
        }
        if calls {
            // One trace at a time: each listing is made and the trace dropped.
            var parts: [String] = []
            for file in files { parts.append(ReportText.callListing(try TraceFiles.load(file, partial: partial))) }
            try Output.write(parts.joined(separator: "\n"), to: output)
            return
        }
        var text: String
        if isJob || job || files.count == 1 {
            // One report over all the traces, read one at a time (ReportBuilder).
            var builder = ReportBuilder(options: options)
            builder.keepTraces = format == .perfetto ? Self.perfettoTraces : 0
            builder.keepTimelines = format == .html
            try TraceFiles.loadInParallel(files, partial: partial) { file, loaded in
                switch loaded {
                case .summary(let trace, let summary): builder.addSummary(trace, file: file, summary: summary)
                case .full(let analysis): builder.add(analysis, partial: partial)
                }
            }
            let shape: JobShape?
            do {
                shape = try JobShape.ofJob(traces: builder.rankCount, hosts: builder.hosts.count,
                                           processes: model.procs, nodes: model.nodes)
            } catch { throw ValidationError(error.description) }
            let report: Report
            do { report = try builder.finish(job: shape) } catch {
                printError("loadprobe: \(error.description)")
                throw ExitCode(1)
            }
            text = render(report)
        } else {
            // Several traces: one document per trace, as an array (JSON), or one after the other.
            var docs: [JSON] = []
            var parts: [String] = []
            for file in files {
                let report = Report(analyses: [try TraceFiles.load(file, partial: partial)], options: options)
                if format == .json { docs.append(ReportJSON.document(report)) } else { parts.append(render(report)) }
            }
            text = format == .json ? JSON.array(docs).serialized() : parts.joined(separator: "\n\n")
        }
        try Output.write(text, to: output)
    }

    func render(_ r: Report) -> String {
        switch format {
        case .json: ReportJSON.document(r).serialized()
        case .text: ReportText.render(r, style: TextStyle(color: output == nil && Output.colorOnStdout()))
        case .html: ReportHTML.render(r)
        case .perfetto: PerfettoTrace.render(r.analyses, leftOut: r.tracesLeftOut)
        }
    }
}

enum TraceFiles {
    /// Files as given; a directory stands for its *.lpt files (a job).
    static func expand(_ args: [String]) throws -> ([String], Bool) {
        var files: [String] = []
        var job = false
        for a in args {
            var st = stat()
            if stat(a, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR {
                job = true
                guard let entries = Sys.listDirectory(a) else {
                    printError("loadprobe: \(a): cannot read the directory: \(Sys.describe(errno))")
                    throw ExitCode(1)
                }
                let names = entries.map(\.name).filter { $0.hasSuffix(".lpt") }
                if names.isEmpty {
                    printError("loadprobe: \(a): no trace files (*.lpt) in the directory")
                    throw ExitCode(1)
                }
                files += names.sorted().map { (a.hasSuffix("/") ? a : a + "/") + $0 }
            } else {
                files.append(a)
            }
        }
        return (files, job)
    }

    /// A trace read for a report: analysed, or a summary trace's rank.
    enum Loaded: Sendable {
        case full(TraceAnalysis)
        case summary(Trace, RankSummary)
    }

    /// Reads and analyses the traces on every core, a batch of one trace per
    /// core at a time (so at most that many analyses are in memory), and hands
    /// them to `each` one by one in the files' order.
    static func loadInParallel(_ files: [String], partial: Bool, each: (String, Loaded) throws -> Void) throws {
        // LOADPROBE_REPORT_WORKERS overrides (bench/job compares 1 and all cores).
        let cores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        let asked = getenv("LOADPROBE_REPORT_WORKERS").flatMap { Int(String(cString: $0)) }
        let workers = max(1, min(64, asked ?? min(8, cores)))
        var start = 0
        while start < files.count {
            let batch = Array(files[start..<min(files.count, start + workers)])
            let results = Slots<Result<Loaded, TraceReadError>>(count: batch.count)
            DispatchQueue.concurrentPerform(iterations: batch.count) { k in
                results[k] = Result { () throws(TraceReadError) -> Loaded in
                    let trace = try TraceReader.read(file: batch[k], allowPartial: partial)
                    if let summary = RankSummary(summaryTrace: trace) { return .summary(trace, summary) }
                    return .full(TraceAnalysis(trace: trace, file: batch[k]))
                }
            }
            for (k, file) in batch.enumerated() {
                switch results[k]! {
                case .success(let loaded): try each(file, loaded)
                case .failure(let error):
                    printError("loadprobe: \(error.description)")
                    throw ExitCode(1)
                }
            }
            start += batch.count
        }
    }

    static func load(_ files: [String], partial: Bool) throws -> [TraceAnalysis] {
        try files.map { try load($0, partial: partial) }
    }

    static func load(_ file: String, partial: Bool) throws -> TraceAnalysis {
        TraceAnalysis(trace: try read(file, partial: partial), file: file)
    }

    static func read(_ file: String, partial: Bool) throws -> Trace {
        do { return try TraceReader.read(file: file, allowPartial: partial) } catch {
            printError("loadprobe: \(error.description)")
            throw ExitCode(1)
        }
    }
}

enum Output {
    static func colorOnStdout() -> Bool {
        isatty(1) != 0 && getenv("NO_COLOR").map { String(cString: $0).isEmpty } ?? true
    }

    static func write(_ text: String, to path: String?) throws {
        var bytes = Array(text.utf8)
        if bytes.last != UInt8(ascii: "\n") { bytes.append(UInt8(ascii: "\n")) }
        let fd: Int32
        if let path {
            // Never through a symlink, never into a FIFO or a device: a regular file, made or replaced.
            fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, 0o644)
            if fd < 0 {
                let why = errno == ELOOP ? "is a symbolic link (not followed)" : Sys.describe(errno)
                printError("loadprobe: \(path): cannot write: \(why)")
                throw ExitCode(1)
            }
            var st = stat()
            if fstat(fd, &st) != 0 || st.st_mode & S_IFMT != S_IFREG || ftruncate(fd, 0) != 0 {
                close(fd)
                printError("loadprobe: \(path): cannot write: not a regular file")
                throw ExitCode(1)
            }
        } else {
            fd = 1
        }
        defer { if path != nil { close(fd) } }
        do throws(SystemError) {
            try Sys.writeAll(fd, Array(bytes))
        } catch {
            if error.errno == EPIPE { throw ExitCode(0) }
            printError("loadprobe: \(path ?? "stdout"): write failed: \(error)")
            throw ExitCode(1)
        }
    }
}

/// One slot per index, each written by one thread (concurrentPerform) and read after.
/// (Raw memory: no exclusivity check spans the slots, as one on an array would.)
final class Slots<T>: @unchecked Sendable {
    private let base: UnsafeMutablePointer<T?>
    let count: Int
    init(count: Int) {
        self.count = count
        base = .allocate(capacity: max(1, count))
        base.initialize(repeating: nil, count: count)
    }
    deinit {
        base.deinitialize(count: count)
        base.deallocate()
    }
    subscript(i: Int) -> T? {
        get { base[i] }
        set { base[i] = newValue }
    }
}
