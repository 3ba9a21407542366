import TraceFormat

/// One rank of a job as the job report compares it: its start-up time, how it
/// ended, its library searches and what it loaded, with digests that tell
/// ranks that did the same from ranks that did not. Made from any trace (full
/// or audit-only) by the same rules, so full and summary ranks compare; a
/// summary trace (`--full-ranks`) carries it as `summary.*` metadata
/// (docs/jobs.md).
public struct RankSummary: Sendable, Equatable {
    public static let format = "loadprobe-summary/1"

    /// exec → main of the rank's program (its first process's last image that reached main).
    public var execToMainNs: UInt64?
    /// "status N", "signal N", or "" when the trace does not say.
    public var exit: String
    public var processes: Int
    /// Names ld.so searched for (la_objsearch's first call for each).
    public var names: Int
    /// Candidate paths tried.
    public var candidates: Int
    /// Candidates that did not serve their name: every one tried before the
    /// hit, and all of a search that found nothing.
    public var failedCandidates: Int
    /// Candidates by origin (the summary's `byOrigin`, LA_SER_* names).
    public var byOrigin: [String: Int]
    public var objects: Int
    /// Names no candidate served, in order (a start-up that fails stops at the first).
    public var missing: [String]
    public var dlopens: Int
    public var dlopenNs: UInt64
    /// FNV-1a 64 digests, hex: of the objects loaded (sorted paths), of the
    /// search sequence (name and where it was found, in order), and of the
    /// loader environment (the trace's `env` entries, sorted).
    public var librariesDigest: String
    public var searchDigest: String
    public var environmentDigest: String

    public var reachedMain: Bool { execToMainNs != nil }
    /// The trace could show main (it has the audit library's records): a
    /// rank recorded without them (--no-audit) neither reached nor missed it.
    public var mainObservable = true

    /// A rank from its analysis (the same as from its trace and summary).
    public init(analysis a: TraceAnalysis) {
        self.init(trace: a.trace, summary: a.summary)
    }

    /// A rank from a trace's audit records, in one pass: what a summary rank
    /// computes right after its recording and a full rank gets in the report,
    /// by the same rules. A search is served when ld.so then reported (la_objopen)
    /// the last candidate it announced; a name with a slash, when that path was
    /// reported. A dlopen is an la_activity(ADD) after main, timed to its
    /// consistent la_activity.
    public init(trace t: Trace, summary s: TraceSummary) {
        (execToMainNs, exit) = Self.ending(s)
        processes = s.processes.count
        // Processes in order of appearance, found by pid once per run of one pid's records.
        var procs: [Process] = []
        var index: [Int32: Int] = [:]
        var lastPid: Int32 = 0, last = -1
        var originCounts = [Int](repeating: 0, count: LookupOrigin.allCases.count + 1)
        var audited = false
        for e in t.events {
            guard case .audit(let a) = e else { continue }
            audited = true
            if last < 0 || a.pid != lastPid {
                if let i = index[a.pid] { last = i } else {
                    last = procs.count
                    index[a.pid] = last
                    procs.append(Process())
                }
                lastPid = a.pid
            }
            Self.count(a, t, into: &procs[last], origins: &originCounts)
        }
        var origins: [String: Int] = [:]
        for (i, o) in LookupOrigin.allCases.enumerated() where originCounts[i] > 0 { origins[o.auditName, default: 0] += originCounts[i] }
        if let unknown = originCounts.last, unknown > 0 { origins["unknown"] = unknown }
        var names = 0, candidates = 0, failed = 0, objects = 0, dlopens = 0
        var dlopenNs: UInt64 = 0
        var missing: [String] = []
        var loadedPaths: [String] = []
        func text(_ p: PathRef) -> String { t.path(p) }
        var searchHash = FNV1a()
        for p in procs {
            objects += p.objects
            loadedPaths += p.paths.map(text).filter { !$0.isEmpty }
            dlopens += p.dlopens
            let (sum, over) = dlopenNs.addingReportingOverflow(p.dlopenNs)
            dlopenNs = over ? .max : sum
            for search in p.searches {
                names += 1
                candidates += search.candidates
                let name = text(search.name)
                let served: PathRef?
                if name.contains("/") && search.candidates == 0 {
                    served = p.loaded.contains(search.name) ? search.name : nil
                } else {
                    served = search.last.flatMap { p.loaded.contains($0) ? $0 : nil }
                }
                failed += search.candidates - (served != nil && search.candidates > 0 ? 1 : 0)
                if served == nil { missing.append(name) }
                searchHash.add(name)
                searchHash.add(served.map(text) ?? "")
            }
        }
        self.names = names
        self.candidates = candidates
        failedCandidates = failed
        byOrigin = origins
        self.objects = objects
        self.missing = missing
        self.dlopens = dlopens
        self.dlopenNs = dlopenNs
        var libs = FNV1a()
        for p in loadedPaths.sorted() { libs.add(p) }
        librariesDigest = libs.hex
        searchDigest = searchHash.hex
        var env = FNV1a()
        for e in t.metaAll(.env).sorted() { env.add(e) }
        environmentDigest = env.hex
        mainObservable = audited || execToMainNs != nil
    }

    // Paths as the trace's string ids (one path, one PathRef): no string is made per candidate.
    struct Search { var name: PathRef; var candidates = 0; var last: PathRef? }
    struct Process {
        var searches: [Search] = []
        var loaded = Set<PathRef>()
        var paths: [PathRef] = []
        var objects = 0
        var mainSeen = false
        var addedAt: UInt64?
        var dlopens = 0
        var dlopenNs: UInt64 = 0
    }

    /// One audit record into its process's searches, objects and dlopens.
    static func count(_ a: AuditEvent, _ t: Trace, into p: inout Process, origins: inout [Int]) {
        switch a.kind {
        case .objsearch:
            let flag = AuditSearchFlag(rawValue: a.flag)
            if flag.isOriginalName {
                p.searches.append(Search(name: a.name))
            } else {
                origins[flag.origin.flatMap { LookupOrigin.allCases.firstIndex(of: $0) } ?? origins.count - 1] += 1
                // A candidate without its name announced (a record lost): its base name stands for it.
                if p.searches.isEmpty { p.searches.append(Search(name: PathRef(dir: 0, base: a.name.base))) }
                p.searches[p.searches.count - 1].candidates += 1
                p.searches[p.searches.count - 1].last = a.name
            }
        case .objopen:
            p.objects += 1
            if p.loaded.insert(a.name).inserted { p.paths.append(a.name) }
        case .preinit:
            p.mainSeen = true
        case .activity:
            switch AuditActivity(rawValue: a.flag) {
            case .add:
                if p.mainSeen && p.addedAt == nil { p.addedAt = a.timeNs }
            case .delete:
                break
            default:
                if let start = p.addedAt {
                    p.dlopens += 1
                    // Saturating: a crafted trace's times may add up past 2^64.
                    let (sum, over) = p.dlopenNs.addingReportingOverflow(a.timeNs >= start ? a.timeNs - start : 0)
                    p.dlopenNs = over ? .max : sum
                    p.addedAt = nil
                }
            }
        default:
            break
        }
    }

    /// The trace's first process as the summary counts it: exec → main (its
    /// last image that reached main) and how it ended ("status N", "signal N", "").
    public static func ending(_ s: TraceSummary) -> (execToMainNs: UInt64?, exit: String) {
        let root = s.processes.first
        return (root?.execToMainNs, root?.signal.map { "signal \($0)" } ?? root?.exitStatus.map { "status \($0)" } ?? "")
    }

    /// The summary trace's entries (after the recording's own metadata).
    public var metadata: [(String, String)] {
        var m: [(MetaKey, String)] = [
            (.summary, Self.format),
            (.summaryExit, exit),
            (.summaryProcesses, String(processes)),
            (.summaryNames, String(names)),
            (.summaryCandidates, String(candidates)),
            (.summaryFailedCandidates, String(failedCandidates)),
            (.summaryByOrigin, byOrigin.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")),
            (.summaryObjects, String(objects)),
            (.summaryDlopens, String(dlopens)),
            (.summaryDlopenNs, String(dlopenNs)),
            (.summaryLibrariesDigest, librariesDigest),
            (.summarySearchDigest, searchDigest),
            (.summaryEnvironmentDigest, environmentDigest),
        ]
        if let t = execToMainNs { m.append((.summaryExecToMainNs, String(t))) }
        for name in missing { m.append((.summaryMissing, name)) }
        return m.map { ($0.0.rawValue, $0.1) }
    }

    /// A summary trace's rank; nil when the trace is not a summary (or not one this reader knows).
    public init?(summaryTrace t: Trace) {
        guard t.meta(.summary) == Self.format else { return nil }
        func int(_ k: MetaKey) -> Int { t.meta(k).flatMap { Int($0) } ?? 0 }
        execToMainNs = t.meta(.summaryExecToMainNs).flatMap { UInt64($0) }
        exit = t.meta(.summaryExit) ?? ""
        processes = int(.summaryProcesses)
        names = int(.summaryNames)
        candidates = int(.summaryCandidates)
        failedCandidates = int(.summaryFailedCandidates)
        var origins: [String: Int] = [:]
        for item in (t.meta(.summaryByOrigin) ?? "").split(separator: ",") {
            let kv = item.split(separator: "=", maxSplits: 1)
            if kv.count == 2, let n = Int(kv[1]) { origins[String(kv[0])] = n }
        }
        byOrigin = origins
        objects = int(.summaryObjects)
        missing = t.metaAll(.summaryMissing)
        dlopens = int(.summaryDlopens)
        dlopenNs = t.meta(.summaryDlopenNs).flatMap { UInt64($0) } ?? 0
        librariesDigest = t.meta(.summaryLibrariesDigest) ?? ""
        searchDigest = t.meta(.summarySearchDigest) ?? ""
        environmentDigest = t.meta(.summaryEnvironmentDigest) ?? ""
    }
}

/// FNV-1a, 64 bits: a digest that is the same in every process and run
/// (Swift's Hasher is seeded per process). Each string is ended by a 0 byte.
struct FNV1a {
    var value: UInt64 = 0xcbf2_9ce4_8422_2325
    mutating func add(_ s: String) {
        for b in s.utf8 { value = (value ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        value = (value ^ 0) &* 0x0000_0100_0000_01b3
    }
    var hex: String {
        let h = String(value, radix: 16)
        return String(repeating: "0", count: 16 - h.count) + h
    }
}

extension RankSummary {
    /// The lines printed after a summary rank's recording.
    public func text() -> String {
        var lines: [String] = []
        let main = execToMainNs.map { "exec → main \(Self.ms($0))" } ?? "main not reached"
        lines.append("  \(main); \(exit.isEmpty ? "end not recorded" : exit); \(processes) process\(processes == 1 ? "" : "es")")
        lines.append("  library searches: \(names) name\(names == 1 ? "" : "s"), \(candidates) candidate path\(candidates == 1 ? "" : "s") tried (\(failedCandidates) did not serve), \(objects) objects loaded")
        if !missing.isEmpty { lines.append("  not found: " + missing.prefix(5).joined(separator: ", ") + (missing.count > 5 ? ", …" : "")) }
        return lines.joined(separator: "\n")
    }

    static func ms(_ ns: UInt64) -> String { seconds(Double(ns) / 1e9) }
}
