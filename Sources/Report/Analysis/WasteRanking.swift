import TraceFormat
#if canImport(Glibc)
import Glibc
#endif
import LoaderModel
/// Wasted lookups (calls that found nothing) ranked by where they went: search
/// directory, library, origin, phase and load group. Shares are of all the
/// program's calls in the traces ranked.
public struct WasteRanking: Sendable {
    public struct DirectoryWaste: Sendable {
        public var directory: String
        public var failed: Int
        /// All calls attributed to the directory (hits and stats included).
        public var calls: Int
        /// Failed calls in its glibc-hwcaps / legacy subdirectories.
        public var hwcapsFailed: Int
        /// How the loader came to the directory ("RPATH/RUNPATH", …; "not a search" for other calls).
        public var origin: String
        /// Distinct names looked for in it without success.
        public var namesMissed: Int
        public var share: Double
    }

    public struct LibraryWaste: Sendable {
        public var name: String
        /// Candidate paths opened for the name, the hit included (summed over processes).
        public var attempts: Int
        public var failed: Int
        /// Search directories gone through (in the process that searched longest).
        public var directoriesSearched: Int
        /// The directory the name was found in ("" when never found).
        public var foundIn: String
        public var foundPath: String
        public var foundOrigin: String
        public var searches: Int
        public var share: Double
    }

    public struct Bucket: Sendable {
        public var name: String
        public var calls: Int
        public var failed: Int
        public var share: Double
    }

    /// The calls of the dlopen groups one caller made (see CallerSite).
    public struct CallerWaste: Sendable {
        /// "libA.so: load_plugin", or what is known instead.
        public var name: String
        /// nil when the caller was not recorded or not found.
        public var object: String?
        public var symbol: String?
        /// The return addresses seen (file offsets in the object), lowest first.
        public var offsets: [UInt64]
        /// dlopen groups it made, and the names they searched first.
        public var groups: Int
        public var firstNames: [String]
        public var calls: Int
        public var failed: Int
        public var share: Double
    }

    public var totalCalls: Int
    public var totalFailed: Int
    public var byDirectory: [DirectoryWaste]
    public var byLibrary: [LibraryWaste]
    public var byOrigin: [Bucket]
    public var byPhase: [Bucket]
    public var byPurpose: [Bucket]
    /// dlopen load groups, named by their first name.
    public var byLoadGroup: [Bucket]
    /// dlopen load groups by the code that called dlopen (CALLER events of
    /// the tracer; "caller not recorded" for audit-only traces).
    public var byCaller: [CallerWaste]
    /// glibc-hwcaps and legacy subdirectory probing, on its own.
    public var hwcaps: Bucket
    /// Python's sys.path entries, most wasted first: `scans` the path finder's
    /// stats of the entry (one per import that reached it), `found` the files
    /// the imports opened in it, `wasted` = scans − found.
    public var pythonEntries: [PythonEntryWaste]

    public struct PythonEntryWaste: Sendable {
        public var entry: String
        public var scans: Int
        public var found: Int
        public var wasted: Int { max(0, scans - found) }
    }

    /// Folds traces in one at a time (a job's traces are not all kept in memory);
    /// `WasteRanking(accumulator)` gives the same result as `WasteRanking(analyses)` over them.
    public struct Accumulator: Sendable {
        var total = 0, failed = 0
        struct Dir: Sendable { var failed = 0, calls = 0, hw = 0, missed = 0; var origin = "" }
        var dirs: [String: Dir] = [:]
        struct Lib: Sendable { var attempts = 0, failed = 0, dirs = 0, searches = 0; var found = "", path = "", origin = "" }
        var libs: [String: Lib] = [:]
        var libOrder: [String] = []
        var origins: [String: CallCount] = [:]
        static let phaseNames = ["exec", "libraries", "main", "dlopen", "exit"]
        var phases = [CallCount](repeating: CallCount(), count: 5)
        var purposes = [CallCount](repeating: CallCount(), count: CallPurpose.allCases.count)
        var groups: [String: CallCount] = [:]
        struct Caller: Sendable { var object: String?, symbol: String?, offsets: Set<UInt64> = [], groups = 0, calls = 0, failed = 0, names: [String] = [] }
        var callers: [String: Caller] = [:]
        var hwCalls = 0, hwFailed = 0
        var python: [String: (scans: Int, found: Int)] = [:]

        public init() {}

        static func phaseIndex(_ p: Phase) -> Int {
            switch p {
            case .exec: 0
            case .startup: 1
            case .main: 2
            case .dlopen: 3
            case .exit: 4
            }
        }

        /// Per directory part (the trace's string id, dense): calls, failed, hwcaps failures, names missed, origin.
        typealias PartCounts = (calls: Int, failed: Int, hw: Int, missed: Int, origin: LookupOrigin?)
        /// Per directory of calls outside a candidate: calls, failed, what they were.
        typealias DirCounts = (calls: Int, failed: Int, origin: String)

        public mutating func add(_ a: TraceAnalysis) {
            // Per trace, keyed by the trace's string ids; folded into strings at the end.
            var byPart = [PartCounts?](repeating: nil, count: a.trace.strings.count + 1)
            var byDir: [UInt32: DirCounts] = [:]
            // The tracer writes callerUnwinds when it looked for callers.
            let unwound = a.trace.meta(.callerUnwinds) != nil
            addPython(a)
            for p in a.processes {
                let groupCounts = addCalls(p, a, byPart: &byPart, byDir: &byDir)
                addCallers(p, a, groupCounts: groupCounts, unwound: unwound)
                addSearches(p)
            }
            fold(byPart, byDir, a.trace)
        }

        /// Python processes: each sys.path entry's scans (stats of the entry by
        /// the import system) and the modules found in it.
        mutating func addPython(_ a: TraceAnalysis) {
            for p in a.processes where p.isPython {
                let entries = Set(PythonSysPath.entries(p, trace: a.trace))
                guard !entries.isEmpty else { continue }
                for c in p.calls where c.purpose == .pythonImport || (c.event.call.isOpen && !c.failed) {
                    guard let (entry, rest) = PythonSysPath.split(a.trace.path(c.event.resolved ?? c.event.path), entries: entries) else { continue }
                    if rest.isEmpty && c.event.call.isStat && c.purpose == .pythonImport { python[entry, default: (0, 0)].scans += 1 }
                    // A module's file opened (by the import, or by ld.so for an extension module).
                    if !rest.isEmpty && c.event.call.isOpen && !c.failed && c.event.flags & UInt64(O_DIRECTORY) == 0
                        && !rest.hasSuffix(".pth") && !rest.contains("__pycache__") { python[entry, default: (0, 0)].found += 1 }
                }
            }
        }

        /// Every call of the process into the totals, its phase, purpose and
        /// directory; returns the calls and failures per dlopen group.
        mutating func addCalls(_ p: ProcessAnalysis, _ a: TraceAnalysis, byPart: inout [PartCounts?],
                               byDir: inout [UInt32: DirCounts]) -> [Int: CallCount] {
            var groupName: [Int: String] = [:]
            for g in p.groups { if case .dlopen(let n) = g.phase { groupName[n] = g.names.first } }
            var groupCounts: [Int: CallCount] = [:]
            for c in p.calls {
                total += 1
                let f = c.failed ? 1 : 0
                failed += f
                let ph = Self.phaseIndex(c.phase)
                phases[ph].add(failed: c.failed)
                let pu = c.purpose.index
                purposes[pu].add(failed: c.failed)
                if case .dlopen(let n) = c.phase { groupCounts[n, default: CallCount()].add(failed: c.failed) }
                if c.purpose == .hwcapsProbe { hwCalls += 1; hwFailed += f }
                if c.search >= 0 && c.candidate >= 0 {
                    let candidate = p.searches[Int(c.search)].candidates[Int(c.candidate)]
                    let partId = Int(candidate.directoryPartId)
                    if partId >= byPart.count { byPart += Array(repeating: nil, count: partId + 1 - byPart.count) }
                    var e = byPart[partId] ?? (0, 0, 0, 0, candidate.origin)
                    e.calls += 1
                    e.failed += f
                    if c.purpose == .hwcapsProbe { e.hw += f }
                    // A name "missed" a directory when its plain candidate there failed
                    // (hwcaps probes fail for names found in the directory too).
                    if c.failed && c.purpose == .searchCandidate { e.missed += 1 }
                    byPart[partId] = e
                } else {
                    let ref = c.event.resolved ?? c.event.path
                    var origin = c.search >= 0 ? "search" : "not a search"
                    if c.purpose == .loaderConfig { origin = "loader configuration" }
                    var e = byDir[ref.dir] ?? (0, 0, origin)
                    e.calls += 1
                    e.failed += f
                    byDir[ref.dir] = e
                }
            }
            for (n, v) in groupCounts {
                let g = groupName[n] ?? "dlopen #\(n)"
                groups[g, default: CallCount()] += v
            }
            return groupCounts
        }

        /// Each dlopen group under the object that called it.
        mutating func addCallers(_ p: ProcessAnalysis, _ a: TraceAnalysis, groupCounts: [Int: CallCount], unwound: Bool) {
            for g in p.groups {
                guard case .dlopen(let n) = g.phase else { continue }
                let key: String
                if let c = g.caller {
                    key = c.symbol.map { "\(c.object): \($0)" } ?? c.label
                } else {
                    key = p.callersRecorded || unwound ? "(caller not found)"
                        : a.recordingMode == .auditOnly ? "(caller not recorded: audit-only trace, --no-ptrace)" : "(caller not recorded)"
                }
                var e = callers[key] ?? Caller(object: g.caller?.object, symbol: g.caller?.symbol)
                if let o = g.caller?.offset { e.offsets.insert(o) }
                e.groups += 1
                let v = groupCounts[n] ?? CallCount()
                e.calls += v.calls
                e.failed += v.failed
                if let first = g.names.first, e.names.count < 5, !e.names.contains(first) { e.names.append(first) }
                callers[key] = e
            }
        }

        /// Each library name: its tries, failures and where it was found.
        mutating func addSearches(_ p: ProcessAnalysis) {
            for s in p.searches {
                if libs[s.name] == nil { libOrder.append(s.name) }
                var l = libs[s.name] ?? Lib()
                l.attempts += s.attempts
                l.failed += s.failedCalls
                l.searches += 1
                l.dirs = max(l.dirs, s.directoriesSearched)
                if l.found.isEmpty, let fd = s.foundDirectory {
                    l.found = fd
                    l.path = s.found ?? ""
                    l.origin = s.foundOriginLabel
                }
                libs[s.name] = l
            }
        }

        /// The trace's per-id counts folded into directories and origins by name.
        mutating func fold(_ byPart: [PartCounts?], _ byDir: [UInt32: DirCounts], _ trace: Trace) {
            var splits = SplitCache()
            for (part, entry) in byPart.enumerated() {
                guard let v = entry else { continue }
                let dir = splits.split(UInt32(part), trace).directory
                var d = dirs[dir] ?? Dir()
                d.calls += v.calls; d.failed += v.failed; d.hw += v.hw; d.missed += v.missed
                if d.origin.isEmpty { d.origin = LookupOrigin.label(v.origin) }
                dirs[dir] = d
                origins[LookupOrigin.label(v.origin), default: CallCount()] += CallCount(calls: v.calls, failed: v.failed)
            }
            for (id, v) in byDir {
                var dir = trace.string(id)
                if dir.isEmpty { dir = id == 0 ? "(open file or relative path)" : "/" }
                var d = dirs[dir] ?? Dir()
                d.calls += v.calls; d.failed += v.failed
                if d.origin.isEmpty { d.origin = v.origin }
                dirs[dir] = d
                origins[v.origin, default: CallCount()] += CallCount(calls: v.calls, failed: v.failed)
            }
        }
    }

    public init(_ analyses: [TraceAnalysis]) {
        var acc = Accumulator()
        for a in analyses { acc.add(a) }
        self.init(acc)
    }

    public init(_ acc: Accumulator) {
        let total = acc.total, failed = acc.failed, dirs = acc.dirs, libs = acc.libs, libOrder = acc.libOrder
        let origins = acc.origins, phases = acc.phases, purposes = acc.purposes, groups = acc.groups
        let hwCalls = acc.hwCalls, hwFailed = acc.hwFailed, phaseNames = Accumulator.phaseNames, callers = acc.callers
        pythonEntries = acc.python.map { PythonEntryWaste(entry: $0.key, scans: $0.value.scans, found: $0.value.found) }
            .sorted { $0.wasted != $1.wasted ? $0.wasted > $1.wasted : $0.entry < $1.entry }
        func share(_ n: Int) -> Double { total == 0 ? 0 : Double(n) / Double(total) }
        totalCalls = total
        totalFailed = failed
        byDirectory = dirs.filter { $0.value.failed > 0 }.map { k, v in
            DirectoryWaste(directory: k, failed: v.failed, calls: v.calls, hwcapsFailed: v.hw, origin: v.origin,
                           namesMissed: v.missed, share: share(v.failed))
        }.sorted { $0.failed != $1.failed ? $0.failed > $1.failed : $0.directory < $1.directory }
        byLibrary = libOrder.map { name in
            let l = libs[name]!
            return LibraryWaste(name: name, attempts: l.attempts, failed: l.failed, directoriesSearched: l.dirs,
                                foundIn: l.found, foundPath: l.path, foundOrigin: l.origin, searches: l.searches,
                                share: share(l.failed))
        }.sorted { $0.failed != $1.failed ? $0.failed > $1.failed : ($0.attempts != $1.attempts ? $0.attempts > $1.attempts : $0.name < $1.name) }
        func buckets(_ d: [String: CallCount]) -> [Bucket] {
            d.map { Bucket(name: $0.key, calls: $0.value.calls, failed: $0.value.failed, share: share($0.value.failed)) }
                .sorted { $0.failed != $1.failed ? $0.failed > $1.failed : ($0.calls != $1.calls ? $0.calls > $1.calls : $0.name < $1.name) }
        }
        byOrigin = buckets(origins)
        var ph: [String: CallCount] = [:]
        for (i, v) in phases.enumerated() where v.calls > 0 { ph[phaseNames[i]] = v }
        byPhase = buckets(ph)
        var pu: [String: CallCount] = [:]
        for (i, v) in purposes.enumerated() where v.calls > 0 { pu[CallPurpose.allCases[i].rawValue] = v }
        byPurpose = buckets(pu)
        byLoadGroup = buckets(groups)
        byCaller = callers.map { k, v in
            let name = v.object.map { CallerSite(object: $0, offset: v.offsets.min() ?? 0, symbol: v.symbol).label } ?? k
            return CallerWaste(name: name, object: v.object, symbol: v.symbol, offsets: v.offsets.sorted(), groups: v.groups,
                               firstNames: v.names, calls: v.calls, failed: v.failed, share: share(v.failed))
        }.sorted { $0.failed != $1.failed ? $0.failed > $1.failed : ($0.calls != $1.calls ? $0.calls > $1.calls : $0.name < $1.name) }
        hwcaps = Bucket(name: "glibc-hwcaps and legacy subdirectories", calls: hwCalls, failed: hwFailed, share: share(hwFailed))
    }

    /// The sentences a user should read first: the worst library and directory.
    public func headlines(limit: Int = 3) -> [String] {
        var out: [String] = []
        // The name searched through the most directories first, then the costliest ones.
        var picks: [LibraryWaste] = []
        // Ties go to a name found elsewhere (ld.so.cache, default dirs) or not at
        // all: every directory it went through was wasted.
        func elsewhere(_ l: LibraryWaste) -> Bool { l.foundOrigin != LookupOrigin.rpathOrRunpath.label && l.foundOrigin != LookupOrigin.ldLibraryPath.label }
        if let widest = byLibrary.max(by: { ($0.directoriesSearched, elsewhere($0) ? 1 : 0) < ($1.directoriesSearched, elsewhere($1) ? 1 : 0) }),
           widest.directoriesSearched > 1 {
            picks.append(widest)
        }
        for l in byLibrary where picks.count < limit && !picks.contains(where: { $0.name == l.name }) { picks.append(l) }
        for l in picks where l.failed > 0 {
            let through = l.directoriesSearched > 0 ? " through \(group(l.directoriesSearched)) director\(l.directoriesSearched == 1 ? "y" : "ies")" : ""
            let how: String
            if l.foundIn.isEmpty {
                how = "and was not found"
            } else if l.foundOrigin == LookupOrigin.cache.label {
                how = "before ld.so.cache found it"
            } else {
                how = "before it was found in \(l.foundIn) (\(l.foundOrigin))"
            }
            let times = l.searches > 1 ? " (\(group(l.searches)) searches)" : ""
            out.append("\(l.name) was searched\(through) \(how)\(times): \(group(l.failed)) failed calls, \(percent(l.share)) of all calls")
        }
        if let d = byDirectory.first {
            out.append("\(d.directory) (\(d.origin)) served \(group(d.failed)) failed lookups, \(percent(d.share)) of all calls"
                       + (d.namesMissed > 0 ? ": \(group(d.namesMissed)) names were looked for there and not found" : ""))
        }
        if hwcaps.failed > 0 {
            out.append("hwcaps and legacy subdirectory probing: \(group(hwcaps.failed)) failed calls, \(percent(hwcaps.share)) of all calls")
        }
        return out
    }
}

func group(_ n: Int) -> String {
    let s = String(n.magnitude)
    var out = ""
    for (i, c) in s.reversed().enumerated() {
        if i > 0 && i % 3 == 0 { out.append(",") }
        out.append(c)
    }
    return (n < 0 ? "-" : "") + String(out.reversed())
}

func percent(_ v: Double) -> String {
    let p = v * 100
    // A share is within 0...1; a diff's ratio of counts may be anything: shown
    // as it is where Int cannot hold it (or it is not a number).
    guard p.isFinite, p.magnitude < 1e15 else { return "\(p)%" }
    // 99.6% is not "100%", and 0.04% is not "0%".
    if p >= 99 && p < 100 { return "\(Double(Int((p * 10).rounded(.down))) / 10)%" }
    if p >= 10 || p == 0 { return "\(Int(p.rounded()))%" }
    if p < 0.05 { return "<0.1%" }
    return "\(Double(Int((p * 10).rounded())) / 10)%"
}
