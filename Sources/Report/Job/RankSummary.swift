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

    public init(analysis a: TraceAnalysis) {
        let rootPid = a.processes.first?.pid
        let ownUnits = a.processes.filter { $0.pid == rootPid }
        execToMainNs = Self.execToMain(a.summary)
        let last = ownUnits.last
        exit = last?.signal.map { "signal \($0)" } ?? last?.exitStatus.map { "status \($0)" } ?? ""
        processes = Set(a.processes.map(\.pid)).count
        var names = 0, candidates = 0, failed = 0, objects = 0, dlopens = 0
        var dlopenNs: UInt64 = 0
        var origins: [String: Int] = [:]
        var missing: [String] = []
        var loadedPaths: [String] = []
        var searchHash = FNV1a()
        for p in a.processes {
            let loaded = Set(p.objects.map(\.path))
            objects += p.objects.count
            loadedPaths += p.objects.map(\.path).filter { !$0.isEmpty }
            for s in p.searches {
                names += 1
                candidates += s.candidates.count
                for c in s.candidates { origins[c.origin?.auditName ?? "unknown", default: 0] += 1 }
                // A search is served by its hit (full traces), else by the last
                // candidate when ld.so then reported that object (audit only).
                let served = s.found ?? s.candidates.last.flatMap { loaded.contains($0.path) ? $0.path : nil }
                failed += max(0, s.candidates.count - (served != nil && !s.isAbsolute ? 1 : 0))
                if served == nil && !(s.isAbsolute && loaded.contains(s.name)) { missing.append(s.name) }
                searchHash.add(s.name)
                searchHash.add(served ?? "")
            }
            for g in p.groups where g.phase.isDlopen {
                dlopens += 1
                // Saturating: a crafted trace's times may add up past 2^64.
                let (sum, over) = dlopenNs.addingReportingOverflow(g.endNs >= g.startNs ? g.endNs - g.startNs : 0)
                dlopenNs = over ? .max : sum
            }
        }
        self.names = names
        self.candidates = candidates
        failedCandidates = max(0, failed)
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
        for e in a.trace.metaAll(.env).sorted() { env.add(e) }
        environmentDigest = env.hex
    }

    /// exec → main of the trace's first process (its last image that reached main), as the summary counts it.
    public static func execToMain(_ s: TraceSummary) -> UInt64? { s.processes.first?.execToMainNs }

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
        lines.append("  library searches: \(names) names, \(candidates) candidate paths tried (\(failedCandidates) did not serve), \(objects) objects loaded")
        if !missing.isEmpty { lines.append("  not found: " + missing.prefix(5).joined(separator: ", ") + (missing.count > 5 ? ", …" : "")) }
        return lines.joined(separator: "\n")
    }

    static func ms(_ ns: UInt64) -> String { seconds(Double(ns) / 1e9) }
}
