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

    public var totalCalls: Int
    public var totalFailed: Int
    public var byDirectory: [DirectoryWaste]
    public var byLibrary: [LibraryWaste]
    public var byOrigin: [Bucket]
    public var byPhase: [Bucket]
    public var byPurpose: [Bucket]
    /// dlopen load groups, named by their first name (the caller is not recorded).
    public var byLoadGroup: [Bucket]
    /// glibc-hwcaps and legacy subdirectory probing, on its own.
    public var hwcaps: Bucket

    public init(_ analyses: [TraceAnalysis]) {
        var total = 0, failed = 0
        struct Dir { var failed = 0, calls = 0, hw = 0; var origin = ""; var missed = Set<String>() }
        var dirs: [String: Dir] = [:]
        struct Lib { var attempts = 0, failed = 0, dirs = 0, searches = 0; var found = "", path = "", origin = "" }
        var libs: [String: Lib] = [:]
        var libOrder: [String] = []
        var origins: [String: (Int, Int)] = [:]
        var phases: [String: (Int, Int)] = [:]
        var purposes: [String: (Int, Int)] = [:]
        var groups: [String: (Int, Int)] = [:]
        var hwCalls = 0, hwFailed = 0
        for a in analyses {
            for p in a.processes {
                var groupName: [Int: String] = [:]
                for g in p.groups { if case .dlopen(let n) = g.phase { groupName[n] = g.names.first } }
                for c in p.calls {
                    total += 1
                    let f = c.failed ? 1 : 0
                    failed += f
                    phases[c.phase.kind, default: (0, 0)].0 += 1
                    phases[c.phase.kind, default: (0, 0)].1 += f
                    purposes[c.purpose.rawValue, default: (0, 0)].0 += 1
                    purposes[c.purpose.rawValue, default: (0, 0)].1 += f
                    if case .dlopen(let n) = c.phase {
                        let g = groupName[n] ?? "dlopen #\(n)"
                        groups[g, default: (0, 0)].0 += 1
                        groups[g, default: (0, 0)].1 += f
                    }
                    if c.purpose == .hwcapsProbe { hwCalls += 1; hwFailed += f }
                    var dir: String
                    var origin: String
                    if c.search >= 0 && c.candidate >= 0 {
                        let cand = p.searches[Int(c.search)].candidates[Int(c.candidate)]
                        dir = cand.directory
                        origin = cand.origin.rawValue
                        // A name "missed" a directory when its plain candidate there failed
                        // (hwcaps probes fail for names found in the directory too).
                        if c.failed && c.purpose == .searchCandidate {
                            dirs[dir, default: Dir()].missed.insert(p.searches[Int(c.search)].name)
                        }
                    } else {
                        let path = a.trace.path(c.event.resolved ?? c.event.path)
                        dir = SearchDirectory.dirname(path)
                        origin = c.search >= 0 ? "search" : "not a search"
                        if c.purpose == .loaderConfig { origin = "loader configuration" }
                        if path.isEmpty { dir = "(open file)" }
                    }
                    origins[origin, default: (0, 0)].0 += 1
                    origins[origin, default: (0, 0)].1 += f
                    var d = dirs[dir] ?? Dir()
                    d.calls += 1
                    d.failed += f
                    if c.purpose == .hwcapsProbe { d.hw += f }
                    if d.origin.isEmpty { d.origin = origin }
                    dirs[dir] = d
                }
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
                        l.origin = s.foundOrigin?.rawValue ?? ""
                    }
                    libs[s.name] = l
                }
            }
        }
        func share(_ n: Int) -> Double { total == 0 ? 0 : Double(n) / Double(total) }
        totalCalls = total
        totalFailed = failed
        byDirectory = dirs.filter { $0.value.failed > 0 }.map { k, v in
            DirectoryWaste(directory: k, failed: v.failed, calls: v.calls, hwcapsFailed: v.hw, origin: v.origin,
                           namesMissed: v.missed.count, share: share(v.failed))
        }.sorted { $0.failed != $1.failed ? $0.failed > $1.failed : $0.directory < $1.directory }
        byLibrary = libOrder.map { name in
            let l = libs[name]!
            return LibraryWaste(name: name, attempts: l.attempts, failed: l.failed, directoriesSearched: l.dirs,
                                foundIn: l.found, foundPath: l.path, foundOrigin: l.origin, searches: l.searches,
                                share: share(l.failed))
        }.sorted { $0.failed != $1.failed ? $0.failed > $1.failed : ($0.attempts != $1.attempts ? $0.attempts > $1.attempts : $0.name < $1.name) }
        func buckets(_ d: [String: (Int, Int)]) -> [Bucket] {
            d.map { Bucket(name: $0.key, calls: $0.value.0, failed: $0.value.1, share: share($0.value.1)) }
                .sorted { $0.failed != $1.failed ? $0.failed > $1.failed : ($0.calls != $1.calls ? $0.calls > $1.calls : $0.name < $1.name) }
        }
        byOrigin = buckets(origins)
        byPhase = buckets(phases)
        byPurpose = buckets(purposes)
        byLoadGroup = buckets(groups)
        hwcaps = Bucket(name: "glibc-hwcaps and legacy subdirectories", calls: hwCalls, failed: hwFailed, share: share(hwFailed))
    }

    /// The sentences a user should read first: the worst library and directory.
    public func headlines(limit: Int = 3) -> [String] {
        var out: [String] = []
        // The name searched through the most directories first, then the costliest ones.
        var picks: [LibraryWaste] = []
        // Ties go to a name found elsewhere (ld.so.cache, default dirs) or not at
        // all: every directory it went through was wasted.
        func elsewhere(_ l: LibraryWaste) -> Bool { l.foundOrigin != CandidateOrigin.rpath.rawValue && l.foundOrigin != CandidateOrigin.ldLibraryPath.rawValue }
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
            } else if l.foundOrigin == CandidateOrigin.cache.rawValue {
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
    if p >= 10 || p == 0 { return "\(Int(p.rounded()))%" }
    return "\(Double(Int((p * 10).rounded())) / 10)%"
}
