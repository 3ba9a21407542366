import TraceFormat

/// One rank of a job as the job report sees it: where it ran and its
/// RankSummary, from a full trace or a summary trace.
public struct JobRank: Sendable {
    public var file: String
    public var rank: Int?
    public var host: String
    public var jobid: String?
    public var launcher: String?
    /// A full trace (ptrace and audit: its start-up is slowed by the tracer).
    public var full: Bool
    /// CLOCK_MONOTONIC at the start, comparable between ranks of one host.
    public var startNs: UInt64?
    /// The wall-clock start in seconds (to the nanosecond when the trace says, else to the second).
    public var startSeconds: Double?
    /// The program as executed (`program` metadata).
    public var program: String
    /// The loader environment (`env` metadata: NAME=VALUE).
    public var environment: [String]
    public var summary: RankSummary

    public init(trace: Trace, file: String, summary: RankSummary, full: Bool) {
        self.file = file
        rank = trace.meta(.rank).flatMap { Int($0) }
        host = trace.meta(.host).flatMap { $0.isEmpty ? nil : $0 } ?? "(unknown host)"
        program = trace.meta(.program) ?? ""
        jobid = trace.meta(.jobid)
        launcher = trace.meta(.launcher)
        self.full = full
        startNs = trace.meta(.startNs).flatMap { UInt64($0) }
        startSeconds = trace.meta(.startRealtimeNs).flatMap { UInt64($0) }.map { Double($0) / 1e9 }
            ?? trace.meta(.startUnix).flatMap { UInt64($0) }.map(Double.init)
        environment = trace.metaAll(.env)
        self.summary = summary
    }

    public var seconds: Double? { summary.execToMainNs.map { Double($0) / 1e9 } }
}

/// The job: its ranks' start-up times over ranks and hosts, the slowest, and
/// the ranks that did something the others did not (docs/jobs.md).
public struct JobReport: Sendable {
    public struct Stats: Sendable, Equatable {
        public var count: Int
        public var min: Double, median: Double, p95: Double, max: Double
        init?(_ values: [Double]) {
            let v = values.sorted()
            guard let first = v.first, let last = v.last else { return nil }
            count = v.count
            min = first
            max = last
            median = Self.quantile(v, 0.5)
            p95 = Self.quantile(v, 0.95)
        }
        /// The nearest-rank quantile of sorted values.
        static func quantile(_ v: [Double], _ q: Double) -> Double {
            let k = Swift.max(1, Int((q * Double(v.count)).rounded(.up)))
            return v[Swift.min(v.count, k) - 1]
        }
    }

    public struct Bin: Sendable, Equatable {
        public var lower: Double, upper: Double, count: Int
    }

    public struct Slow: Sendable, Equatable {
        public var rank: Int?
        public var host: String
        public var seconds: Double
        public var full: Bool
        public var file: String
    }

    public struct HostRow: Sendable, Equatable {
        public var host: String
        public var ranks: Int
        public var median: Double?
        public var max: Double?
        /// The rank that started first on the host (page and client caches cold) and its time.
        public var firstRank: Int?
        public var firstSeconds: Double?
        /// The first rank was a full trace (its time slowed by the tracer).
        public var firstTraced = false
        /// The median of the host's other ranks.
        public var laterMedian: Double?
    }

    public struct Outlier: Sendable, Equatable {
        public var rank: Int?
        public var host: String
        public var file: String
        public var reason: String
    }

    public var ranks: Int
    public var nodes: Int
    public var fullTraces: Int
    public var summaryTraces: Int
    public var launcher: String?
    public var jobids: [String]
    /// Traces without a job id beside ones with one (a run from elsewhere in the directory).
    public var tracesWithoutJob: Int
    /// Rank numbers that more than one trace claims (several runs or steps in one directory).
    public var duplicateRanks: [Int]
    /// exec → main over the ranks that reached main: the summary ranks when
    /// there are any (untraced timing), else every rank.
    public var startup: Stats?
    /// Which ranks `startup` covers: "summary ranks" or "all ranks (traced)".
    public var startupOf: String { startupFromSummaries ? "summary ranks" : "all ranks (traced)" }
    /// `startup` is over the summary ranks (untraced timing), not over every rank.
    public var startupFromSummaries: Bool
    /// Which ranks `startup` covers, as the report says it.
    public var startupPhrase: String {
        let n = startup?.count ?? 0
        return startupFromSummaries ? "the \(n) summary ranks" : "all \(n) ranks (traced)"
    }
    /// The full-trace ranks apart, when there are summary ranks too.
    public var startupTraced: Stats?
    public var histogram: [Bin]
    public var slowest: [Slow]
    public var byHost: [HostRow]
    public var outliers: [Outlier]
    /// Ranks that did not reach main.
    public var failed: Int
    /// Traces of the job left out, and why.
    public var unreadable: [(file: String, reason: String)] = []
    /// Full traces with the content of an earlier one (TraceIdentity): counted, not analysed again.
    public var repeatedTraces = 0
    /// The server operations the job's start-ups made (the recorded scenario, priced at the job's shape).
    public var serverOperations: Int?
    /// The second of the job in which its ranks' start-ups made the most
    /// server operations, and how many: each rank's share of the job's
    /// operations spread over its exec → main, placed at its start.
    public var busiestSecond: (start: Double, operations: Double)?

    /// The server-load figures, from the recorded scenario's operations for the whole job.
    public mutating func load(jobOperations: Int) {
        serverOperations = jobOperations
        busiestSecond = Self.busiestSecond(perRank, operations: Double(jobOperations))
    }

    /// Spreads each rank's share over its start-up, in tenths of a second, and
    /// finds the ten consecutive tenths with the most.
    static func busiestSecond(_ ranks: [JobRank], operations: Double) -> (start: Double, operations: Double)? {
        let timed = ranks.compactMap { r -> (start: Double, length: Double)? in
            guard let s = r.startSeconds, let d = r.seconds, s.isFinite, d.isFinite else { return nil }
            return (s, max(d, 1e-3))
        }
        // Ranks within half a day of the median start (a stale trace in the
        // directory, or a crafted start time, does not stretch the time line).
        let starts = timed.map(\.start).sorted()
        guard !starts.isEmpty, operations > 0 else { return nil }
        let median = starts[starts.count / 2]
        let placed = timed.filter { abs($0.start - median) <= 43_200 && $0.length <= 86_400 }
        guard let origin = placed.map(\.start).min() else { return nil }
        // The job's operations over the ranks placed on the time line.
        let share = operations / Double(placed.count)
        let step = 0.1
        let end = placed.map { $0.start - origin + $0.length }.max()!
        guard end.isFinite, end < 2 * 86_400 else { return nil }
        var bins = [Double](repeating: 0, count: Int(end / step) + 2)
        for r in placed {
            let from = (r.start - origin) / step, to = (r.start - origin + r.length) / step
            var i = Int(from)
            while Double(i) < to && i < bins.count {
                let overlap = min(Double(i + 1), to) - max(Double(i), from)
                bins[i] += share * overlap / (to - from)
                i += 1
            }
        }
        var best = 0.0, bestStart = 0, window = 0.0
        for i in bins.indices {
            window += bins[i]
            if i >= 10 { window -= bins[i - 10] }
            if window > best { best = window; bestStart = max(0, i - 9) }
        }
        return (origin + Double(bestStart) * step, best)
    }
    public var perRank: [JobRank]

    /// MPI_Init waits for every rank: the job waited this long past its median rank.
    public var waitedForSlowest: Double? { startup.map { $0.max - $0.median } }

    public init(_ all: [JobRank], top: Int = 10) {
        let list = all.sorted { ($0.rank ?? Int.max, $0.file) < ($1.rank ?? Int.max, $1.file) }
        perRank = list
        ranks = list.count
        nodes = Set(list.map(\.host)).count
        fullTraces = list.filter(\.full).count
        summaryTraces = ranks - fullTraces
        launcher = Self.majority(list.compactMap(\.launcher))
        jobids = Array(Set(list.compactMap(\.jobid))).sorted()
        tracesWithoutJob = jobids.isEmpty ? 0 : list.filter { $0.jobid == nil }.count
        var seen: [Int: Int] = [:]
        for r in list { if let n = r.rank { seen[n, default: 0] += 1 } }
        duplicateRanks = seen.filter { $0.value > 1 }.keys.sorted()
        let timed = summaryTraces > 0 ? list.filter { !$0.full } : list
        startupFromSummaries = summaryTraces > 0
        startup = Stats(timed.compactMap(\.seconds))
        startupTraced = summaryTraces > 0 && fullTraces > 0 ? Stats(list.filter(\.full).compactMap(\.seconds)) : nil
        histogram = Self.histogram(timed.compactMap(\.seconds), bins: 10)
        var slow: [Slow] = []
        for r in list { if let s = r.seconds { slow.append(Slow(rank: r.rank, host: r.host, seconds: s, full: r.full, file: r.file)) } }
        slow.sort { a, b in a.seconds != b.seconds ? a.seconds > b.seconds : (a.rank ?? Int.max) < (b.rank ?? Int.max) }
        slowest = Array(slow.prefix(max(1, top)))
        failed = list.filter { !$0.summary.reachedMain && $0.summary.mainObservable }.count
        byHost = Self.hosts(list)
        outliers = Self.outliers(list)
    }

    /// The most common value; ties go to the value seen first (the lowest rank's).
    static func majority<T: Hashable>(_ values: [T]) -> T? { mostCommon(values)?.value }

    /// The value more than half the values have, if one does: what "most
    /// ranks" did (a 2/2 split has none, and no side is called the odd one).
    static func strictMajority<T: Hashable>(_ values: [T]) -> T? {
        guard let m = mostCommon(values), m.count * 2 > values.count else { return nil }
        return m.value
    }

    static func mostCommon<T: Hashable>(_ values: [T]) -> (value: T, count: Int)? {
        var counts: [T: (count: Int, first: Int)] = [:]
        for (i, v) in values.enumerated() { counts[v, default: (0, i)].count += 1 }
        return counts.max { a, b in a.value.count != b.value.count ? a.value.count < b.value.count : a.value.first > b.value.first }
            .map { ($0.key, $0.value.count) }
    }

    static func histogram(_ values: [Double], bins n: Int) -> [Bin] {
        guard let lo = values.min(), let hi = values.max() else { return [] }
        guard hi > lo else { return [Bin(lower: lo, upper: hi, count: values.count)] }
        let width = (hi - lo) / Double(n)
        var bins = (0..<n).map { Bin(lower: lo + Double($0) * width, upper: lo + Double($0 + 1) * width, count: 0) }
        for v in values { bins[min(n - 1, Int((v - lo) / width))].count += 1 }
        return bins
    }

    static func hosts(_ list: [JobRank]) -> [HostRow] {
        var order: [String] = []
        var byHost: [String: [JobRank]] = [:]
        for r in list {
            if byHost[r.host] == nil { order.append(r.host) }
            byHost[r.host, default: []].append(r)
        }
        return order.map { host in
            let rs = byHost[host]!
            // Untraced timing where there is some: full ranks are slowed by the tracer.
            let timed = rs.contains { !$0.full } ? rs.filter { !$0.full } : rs
            let stats = Stats(timed.compactMap(\.seconds))
            // The first to start on the node, traced or not (its caches were cold either way).
            let first = rs.filter { $0.startNs != nil && $0.seconds != nil }.min { $0.startNs! < $1.startNs! }
            let later = timed.filter { $0.file != first?.file }.compactMap(\.seconds)
            return HostRow(host: host, ranks: rs.count, median: stats?.median, max: stats?.max,
                           firstRank: first?.rank, firstSeconds: first?.seconds, firstTraced: first?.full ?? false,
                           laterMedian: later.isEmpty ? nil : Stats(later)?.median)
        }
    }

    /// Ranks that did something the majority did not, each with its reasons.
    static func outliers(_ list: [JobRank]) -> [Outlier] {
        guard list.count > 1 else { return [] }
        let program = strictMajority(list.map(\.program))
        let exit = strictMajority(list.map(\.summary.exit))
        let envDigest = strictMajority(list.map(\.summary.environmentDigest))
        let reference = list.first { $0.summary.environmentDigest == envDigest }
        let reached = list.filter(\.summary.reachedMain)
        let libsDigest = strictMajority(reached.map(\.summary.librariesDigest))
        let libsReference = reached.first { $0.summary.librariesDigest == libsDigest }
        let searchDigest = strictMajority(list.map(\.summary.searchDigest))
        let commonMissing = strictMajority(list.map { $0.summary.missing.joined(separator: "\u{0}") }) ?? ""
        let missingUsual = Set(commonMissing.split(separator: "\u{0}").map(String.init))
        // Ranks recorded without the audit library (--no-audit) cannot show main: neither failed nor reached.
        let observable = list.filter(\.summary.mainObservable)
        let mainUsual = reached.count * 2 > observable.count
        let failedMedian = Stats(list.map { Double($0.summary.failedCandidates) })?.median ?? 0
        var out: [Outlier] = []
        for r in list {
            var reasons: [String] = []
            if let program, r.program != program {
                reasons.append("runs another program: \(r.program) (most ranks: \(program))")
            }
            if r.summary.reachedMain, r.summary.exit.hasPrefix("signal"), r.summary.exit != exit {
                reasons.append("ended by \(r.summary.exit)")
            }
            if !r.summary.reachedMain && r.summary.mainObservable && mainUsual {
                let missing = r.summary.missing.filter { !missingUsual.contains($0) }
                reasons.append("did not reach main (\(r.summary.exit.isEmpty ? "end not recorded" : r.summary.exit))"
                               + (missing.isEmpty ? "" : ": \(missing.prefix(3).joined(separator: ", ")) not found"))
            } else {
                let missing = r.summary.missing.filter { !missingUsual.contains($0) }
                if !missing.isEmpty { reasons.append("did not find \(missing.prefix(3).joined(separator: ", "))" + (missing.count > 3 ? " and \(missing.count - 3) more" : "")) }
            }
            if let envDigest, r.summary.environmentDigest != envDigest, let reference {
                reasons.append("another environment: " + environmentDifference(r.environment, reference.environment))
            }
            if r.summary.reachedMain, r.program == program, let libsDigest, r.summary.librariesDigest != libsDigest, let libsReference {
                reasons.append("loaded other libraries (\(r.summary.objects) objects; most ranks \(libsReference.summary.objects))")
            }
            let failed = Double(r.summary.failedCandidates)
            if failed > failedMedian * 1.5 + 20 {
                reasons.append("\(r.summary.failedCandidates) failed lookups (median of the job \(Int(failedMedian)))")
            }
            if reasons.isEmpty, r.program == program, let searchDigest, r.summary.searchDigest != searchDigest {
                reasons.append("searched in another order or other directories (same libraries)")
            }
            if !reasons.isEmpty { out.append(Outlier(rank: r.rank, host: r.host, file: r.file, reason: reasons.joined(separator: "; "))) }
        }
        return out
    }

    /// What differs in a rank's loader environment from the majority's: each
    /// variable set otherwise, added or missing.
    static func environmentDifference(_ mine: [String], _ theirs: [String]) -> String {
        func parse(_ list: [String]) -> [String: String] {
            var d: [String: String] = [:]
            for e in list {
                guard let eq = e.firstIndex(of: "=") else { continue }
                d[String(e[..<eq])] = String(e[e.index(after: eq)...])
            }
            return d
        }
        let a = parse(mine), b = parse(theirs)
        var parts: [String] = []
        for k in Set(a.keys).union(b.keys).sorted() where a[k] != b[k] {
            switch (a[k], b[k]) {
            case let (x?, y?): parts.append("\(k)=\(x) (most ranks: \(y))")
            case let (x?, nil): parts.append("\(k)=\(x) (most ranks do not set it)")
            case let (nil, y?): parts.append("\(k) not set (most ranks: \(y))")
            default: break
            }
        }
        return parts.isEmpty ? "the same variables in another order" : parts.joined(separator: ", ")
    }
}
