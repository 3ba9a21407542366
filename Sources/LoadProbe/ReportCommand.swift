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
        let (files, isJob, unreadableDirectories) = try TraceFiles.expand(traces)
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
            // Ranks identical to one analysed before are counted, not analysed again.
            var representatives: [TraceIdentity: ReportBuilder.Representative] = [:]
            try TraceFiles.loadInParallel(files, partial: partial) { file, loaded in
                switch loaded {
                case .summary(let trace, let summary): builder.addSummary(trace, file: file, summary: summary)
                case .full(let analysis, let identity, let retain):
                    let rep = builder.add(analysis, partial: partial)
                    if retain, let identity { representatives[identity] = rep }
                case .repeatOf(let identity, let trace):
                    builder.addRepeat(of: representatives[identity]!, trace: trace, file: file)
                case .unreadable(let why):
                    // One broken rank does not hide the job: it is named and left out.
                    printError("loadprobe: \(file): left out of the job: \(why)")
                    builder.addUnreadable(file: file, reason: why)
                }
            }
            for (dir, why) in unreadableDirectories {
                printError("loadprobe: \(dir): left out of the job: \(why)")
                builder.addUnreadable(file: dir, reason: why)
            }
            if builder.rankCount == 0 {
                printError("loadprobe: no trace could be read")
                throw ExitCode(1)
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
                let trace = try TraceFiles.read(file, partial: partial)
                if let summary = RankSummary(summaryTrace: trace) {
                    // A summary trace alone: its rank, as a report of it alone shows it.
                    var one = ReportBuilder(options: options)
                    one.addSummary(trace, file: file, summary: summary)
                    let report: Report
                    do { report = try one.finish() } catch {
                        printError("loadprobe: \(error.description)")
                        throw ExitCode(1)
                    }
                    if format == .json { docs.append(ReportJSON.document(report)) } else { parts.append(render(report)) }
                    continue
                }
                let report = Report(analyses: [TraceAnalysis(trace: trace, file: file)], options: options)
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
    /// Files as given; a directory stands for its *.lpt files and its
    /// subdirectories' (a job). `unreadable`: subdirectories that could not be read, and why.
    static func expand(_ args: [String]) throws -> (files: [String], isJob: Bool, unreadable: [(String, String)]) {
        var files: [String] = []
        var unreadable: [(String, String)] = []
        var job = false
        for a in args {
            var st = stat()
            if stat(a, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR {
                job = true
                let found = try tracesBelow(a.hasSuffix("/") ? String(a.dropLast()) : a, depth: 3, unreadable: &unreadable)
                if found.isEmpty {
                    printError("loadprobe: \(a): no trace files (*.lpt) in the directory or its subdirectories")
                    throw ExitCode(1)
                }
                files += found
            } else {
                files.append(a)
            }
        }
        return (files, job, unreadable)
    }

    /// The *.lpt files in a directory and its subdirectories (`-o lp-%j/%h/%r.lpt`
    /// makes one per host), sorted, `depth` levels down at most; a symlinked
    /// directory is not entered.
    static func tracesBelow(_ dir: String, depth: Int, top: Bool = true, unreadable: inout [(String, String)]) throws -> [String] {
        guard let entries = Sys.listDirectory(dir) else {
            let why = "cannot read the directory: \(Sys.describe(errno))"
            // A subdirectory that cannot be read is left out of the job and named, as a trace would be.
            if !top { unreadable.append((dir, why)); return [] }
            printError("loadprobe: \(dir): \(why)")
            throw ExitCode(1)
        }
        var files: [String] = []
        for name in entries.map(\.name).sorted() where name != "." && name != ".." {
            let path = (dir == "/" ? "" : dir) + "/" + name
            var st = stat()
            guard lstat(path, &st) == 0 else { continue }
            if (st.st_mode & S_IFMT) == S_IFDIR {
                if depth > 0 { files += try tracesBelow(path, depth: depth - 1, top: false, unreadable: &unreadable) }
            } else if name.hasSuffix(".lpt") {
                files.append(path)
            }
        }
        return files
    }

    /// A trace read for a report: analysed, or a summary trace's rank.
    enum Loaded: Sendable {
        /// Analysed; `retain`: kept for the traces identical to it that follow.
        case full(TraceAnalysis, TraceIdentity?, retain: Bool)
        case summary(Trace, RankSummary)
        /// The same content as an earlier trace that was retained.
        case repeatOf(TraceIdentity, Trace)
        /// A job's trace that cannot be used, and why (the job goes on without it).
        case unreadable(String)
    }

    /// Which trace was the first with each content, and whether its analysis is
    /// kept for the ones that follow (the first `retained` contents only: a
    /// job of many different traces keeps no more than that in memory).
    final class Identities: @unchecked Sendable {
        private var first: [TraceIdentity: (index: Int, retained: Bool)] = [:]
        private var retainedCount = 0
        private let retained: Int
        private let mutex = Lock()
        init(retained: Int) { self.retained = retained }

        /// Trace `index` has content `id`: `repeatOf` when a retained trace of
        /// a smaller index has it (handed over before this one), else whether
        /// to retain this one's analysis (the first claim of a content, while
        /// there is room). Workers may claim out of order; a smaller index
        /// claiming after a larger one is analysed, not retained.
        func claim(_ id: TraceIdentity, index: Int) -> (repeatOf: Bool, retain: Bool) {
            mutex.lock()
            defer { mutex.unlock() }
            if let f = first[id] { return (f.retained && f.index < index, false) }
            let keep = retainedCount < retained
            if keep { retainedCount += 1 }
            first[id] = (index, keep)
            return (false, keep)
        }
    }

    /// Reads and analyses the traces on every core and hands them to `each`
    /// one by one in the files' order. Workers take the next file as they
    /// finish one, at most `window` files ahead of the one being handed over,
    /// so at most that many analyses are in memory.
    static func loadInParallel(_ files: [String], partial: Bool, each: (String, Loaded) throws -> Void) throws {
        // LOADPROBE_REPORT_WORKERS overrides (bench/job compares 1 and all cores).
        let cores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        let asked = getenv("LOADPROBE_REPORT_WORKERS").flatMap { Int(String(cString: $0)) }
        let workers = max(1, min(64, asked ?? min(8, cores)))
        let pipeline = OrderedPipeline<Result<Loaded, TraceReadError>>(count: files.count, window: workers)
        let identities = Identities(retained: 2)
        let threads = (0..<min(workers, files.count)).map { _ in
            startThread {
                while let k = pipeline.take() {
                    pipeline.put(k, Result { () throws(TraceReadError) -> Loaded in
                        let trace = try TraceReader.read(file: files[k], allowPartial: partial)
                        if let summary = RankSummary(summaryTrace: trace) { return .summary(trace, summary) }
                        if trace.events.isEmpty && files.count > 1 {
                            return .unreadable("no events and no summary (a summary trace cut short, or a recording that never started)")
                        }
                        guard files.count > 1 else { return .full(TraceAnalysis(trace: trace, file: files[k]), nil, retain: false) }
                        // A trace's first index claims its content; a later one with a
                        // retained first is handed over unanalysed (indices are taken in
                        // order, so the first is handed over before it).
                        let identity = TraceIdentity(trace)
                        let claim = identities.claim(identity, index: k)
                        if claim.repeatOf { return .repeatOf(identity, trace) }
                        return .full(TraceAnalysis(trace: trace, file: files[k]), identity, retain: claim.retain)
                    })
                }
            }
        }
        defer {
            pipeline.stop()
            for t in threads { pthread_join(t, nil) }
        }
        for (k, file) in files.enumerated() {
            switch pipeline.get(k) {
            case .success(let loaded): try each(file, loaded)
            case .failure(let error):
                if files.count > 1 {
                    // The reason without the file's name (the job section names it).
                    let why = error.description.hasPrefix(file + ": ") ? String(error.description.dropFirst(file.count + 2)) : error.description
                    try each(file, .unreadable(why))
                    continue
                }
                printError("loadprobe: \(error.description)")
                throw ExitCode(1)
            }
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

/// What a thread started by `startThread` runs.
private final class ThreadBody {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}

/// A thread running `body`, with 8 MiB of stack.
func startThread(_ body: @escaping () -> Void) -> pthread_t {
    let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    var attr = pthread_attr_t()
    pthread_attr_init(&attr)
    pthread_attr_setstacksize(&attr, 8 << 20)
    defer { pthread_attr_destroy(&attr) }
    var thread = pthread_t()
    let rc = pthread_create(&thread, &attr, { p in
        Unmanaged<ThreadBody>.fromOpaque(p!).takeRetainedValue().run()
        return nil
    }, box)
    precondition(rc == 0, "pthread_create: \(rc)")
    return thread
}

/// Items 0..<count made by worker threads and taken in order: a worker takes
/// the next index (`take`) when it is at most `window` ahead of the one the
/// consumer waits for, and `put`s its result; `get` waits for an index and
/// frees its slot.
final class OrderedPipeline<T>: @unchecked Sendable {
    private var slots: [Int: T] = [:]
    private var next = 0, consumed = 0, stopped = false
    private let count: Int, window: Int
    private let mutex = Lock()

    init(count: Int, window: Int) {
        self.count = count
        self.window = max(1, window)
    }

    /// The next index to make; nil when all are taken or the consumer stopped.
    func take() -> Int? {
        mutex.lock()
        defer { mutex.unlock() }
        while !stopped && next < count && next >= consumed + window { mutex.wait() }
        guard !stopped && next < count else { return nil }
        next += 1
        return next - 1
    }

    func put(_ k: Int, _ value: T) {
        mutex.lock()
        slots[k] = value
        mutex.broadcast()
        mutex.unlock()
    }

    /// Waits for item k (k = 0, 1, … in order) and hands it over.
    func get(_ k: Int) -> T {
        mutex.lock()
        defer { mutex.unlock() }
        while slots[k] == nil { mutex.wait() }
        consumed = k + 1
        mutex.broadcast()
        return slots.removeValue(forKey: k)!
    }

    /// No more items are wanted (the consumer is done or failed): workers end after their current one.
    func stop() {
        mutex.lock()
        stopped = true
        mutex.broadcast()
        mutex.unlock()
    }
}

/// A mutex and its condition, in memory of their own: pthread keeps their
/// addresses while a thread waits, which Swift's `&property` does not promise.
final class Lock: @unchecked Sendable {
    private let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let c = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    init() {
        pthread_mutex_init(m, nil)
        pthread_cond_init(c, nil)
    }
    deinit {
        pthread_cond_destroy(c)
        pthread_mutex_destroy(m)
        c.deallocate()
        m.deallocate()
    }
    func lock() { pthread_mutex_lock(m) }
    func unlock() { pthread_mutex_unlock(m) }
    /// Waits for a broadcast (the mutex held).
    func wait() { pthread_cond_wait(c, m) }
    func broadcast() { pthread_cond_broadcast(c) }
}
