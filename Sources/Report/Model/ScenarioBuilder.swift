import TraceFormat

/// Turns the recorded calls into each scenario's calls. Searches that a
/// scenario changes are replayed the way glibc's open_path runs them
/// (elf/dl-load.c): for each search directory, each capability subdirectory
/// whose status is not "missing" is tried; after a miss in a subdirectory of
/// unknown status glibc stats it once and remembers the answer for the rest of
/// the process (the status lives in the directory's r_search_path_elem, shared
/// by every search list that names the directory).
public struct ScenarioBuilder {
    public var world: ModelWorld
    public let analyses: [TraceAnalysis]
    /// Lift dlopen'ed names into DT_NEEDED too (the Shrinkwrap paper does this
    /// for Python modules known at build time).
    public var liftDlopen = false
    /// The view directory; default: beside the program's first search directory.
    public var viewDirectory: String?

    var dirNodes: [String: Int32] = [:]
    var subNodes: [UInt64: Int32] = [:]

    public init(world: ModelWorld, analyses: [TraceAnalysis]) {
        self.world = world
        self.analyses = analyses
    }

    public mutating func build(_ scenario: Scenario, assumptions a: inout ScenarioAssumptions) -> [[ModelProcess]] {
        var out: [[ModelProcess]] = []
        for (t, analysis) in analyses.enumerated() {
            var procs: [ModelProcess] = []
            for (pi, p) in analysis.processes.enumerated() {
                let rec = world.recorded[t][pi]
                let calls: [ModelCall]
                switch scenario {
                case .recorded, .negativeCache: calls = rec
                case .shrinkwrap: calls = shrinkwrap(p, rec)
                case .view: calls = view(p, rec, searchPath: world.programSearchPath[t][pi], assumptions: &a)
                case .loaderCache: calls = loaderCache(p, rec)
                case .staticLink: calls = staticLink(p, rec)
                }
                procs.append(ModelProcess(label: p.label, calls: calls, objects: p.objects.count))
            }
            out.append(procs)
        }
        switch scenario {
        case .recorded: a.add("calls", "as recorded (loadprobe's own calls left out)")
        case .shrinkwrap:
            a.add("start-up searches", "each replaced by one open of the path it found, plus its fstat")
            a.add("dlopen searches", liftDlopen ? "lifted too (opened by absolute path)" : "replayed as glibc would run them without the start-up searches before (directory statuses start unknown)")
            a.add("ld.so.cache", "not read at start-up (every start-up name is absolute)")
        case .view:
            break
        case .loaderCache:
            a.add("cache file", "<program prefix>/etc/ld.so.cache: one open, fstat and read per process")
            a.add("every search", "one cache lookup (no call), then one open of the path found, plus its fstat")
        case .negativeCache:
            a.add("calls", "as recorded; failed lookups cached by the client (per node, for the whole start-up)")
        case .staticLink:
            a.add("calls", "the exec and the program's own calls after main; no loader calls")
            a.add("data", "the libraries' bytes read from the one executable")
        }
        return out
    }

    // MARK: scenarios

    mutating func shrinkwrap(_ p: ProcessAnalysis, _ rec: [ModelCall]) -> [ModelCall] {
        index(p)
        var out: [ModelCall] = []
        out.reserveCapacity(rec.count)
        var done = Set<Int32>()
        var replayer = Replayer()
        for (i, c) in p.calls.enumerated() {
            guard c.search >= 0 else { out.append(rec[i]); continue }
            let s = p.searches[Int(c.search)]
            let lifted = s.phase == .startup || (liftDlopen && s.phase.kind == "dlopen")
            guard done.insert(c.search).inserted else { continue }
            if lifted {
                if let found = s.found { emitAbsolute(found, into: &out) } else { out += callsOf(search: c.search, p, rec) }
            } else {
                replay(s, search: c.search, p, rec, replayer: &replayer, override: nil, into: &out)
            }
        }
        return out
    }

    mutating func view(_ p: ProcessAnalysis, _ rec: [ModelCall], searchPath: [String],
                       assumptions a: inout ScenarioAssumptions) -> [ModelCall] {
        let r = Set(searchPath)
        guard !r.isEmpty else { return rec }
        index(p)
        // The first of the program's directories that exists starts its block.
        // (dirNode may add the node: look it up before reading the tree.)
        let firstProgramDir = searchPath.first { let n = dirNode($0); return world.tree.exists(n) } ?? searchPath[0]
        let viewDir = viewDirectory ?? (SearchDirectory.dirname(searchPath[0]) == "/" ? "/view" : SearchDirectory.dirname(searchPath[0]) + "/view")
        let v = world.tree.directory(viewDir)
        world.tree.markExists(v)
        // The view holds symlinks only: no capability subdirectories.
        for cap in world.capabilitySubdirectories where !cap.isEmpty {
            var node = v
            for comp in cap.split(separator: "/") {
                node = world.tree.child(node, world.tree.name(String(comp)))
                world.tree.markMissing(node)
            }
        }
        if a.lines.isEmpty {
            a.add("view directory", viewDir)
            a.add("replaces", "\(searchPath.count) search directories of the program (\(world.programSearchPathSource))")
            a.add("symlinks", "one per library found in those directories; each hit costs a readlink and a walk of its target")
            a.add("libraries' own RPATH/RUNPATH", "kept (as in a Spack view)")
        }
        var out: [ModelCall] = []
        out.reserveCapacity(rec.count)
        var done = Set<Int32>()
        var replayer = Replayer()
        for (i, c) in p.calls.enumerated() {
            guard c.search >= 0 else { out.append(rec[i]); continue }
            guard done.insert(c.search).inserted else { continue }
            let s = p.searches[Int(c.search)]
            if s.isAbsolute {
                out += callsOf(search: c.search, p, rec)
                continue
            }
            // The program's directories form one block in the search, in their
            // order, starting at the first of them; directories before the block
            // come from the needing library's own RPATH and stay.
            let recordedDirs = searchDirectories(s)
            guard let start = recordedDirs.firstIndex(where: { $0.0 == firstProgramDir }) else {
                // Not through the program's directories: the same directories,
                // but with this scenario's directory statuses.
                replay(s, search: c.search, p, rec, replayer: &replayer, override: nil, into: &out)
                continue
            }
            var end = start
            var k = 0
            while end < recordedDirs.count, let at = searchPath[k...].firstIndex(of: recordedDirs[end].0) {
                k = at + 1
                end += 1
                if k >= searchPath.count { break }
            }
            var dirs = Array(recordedDirs[..<start])
            dirs.append((viewDir, recordedDirs[start].1))
            dirs += recordedDirs[end...]
            let block = Set(recordedDirs[start..<end].map(\.0))
            var hit: (dir: String, sub: String)?
            if let fd = s.foundDirectory, block.contains(fd), let found = s.found {
                let nameId = world.tree.name(s.name)
                world.tree.setSymlink(v, nameId, target: found)
                hit = (viewDir, "")
            }
            replay(s, search: c.search, p, rec, replayer: &replayer, override: (dirs, hit), into: &out)
        }
        return out
    }

    mutating func loaderCache(_ p: ProcessAnalysis, _ rec: [ModelCall]) -> [ModelCall] {
        index(p)
        var out: [ModelCall] = []
        var done = Set<Int32>()
        var cacheRead = false
        let prefix = SearchDirectory.dirname(SearchDirectory.dirname(p.image.isEmpty ? "/" : p.image))
        let cachePath = (prefix == "/" ? "" : prefix) + "/etc/ld.so.cache"
        for (i, c) in p.calls.enumerated() {
            guard c.search >= 0 else { out.append(rec[i]); continue }
            guard done.insert(c.search).inserted else { continue }
            let s = p.searches[Int(c.search)]
            if !cacheRead {
                let (d, n) = world.tree.file(cachePath)
                world.tree.markFile(d, n, exists: true)
                out.append(ModelCall(kind: .open, call: .openat, dir: d, name: n, failed: false, purpose: .loaderConfig))
                out.append(ModelCall(kind: .fstat, call: .newfstatat, dir: d, name: n, failed: false, purpose: .loaderConfig))
                cacheRead = true
            }
            if let found = s.found { emitAbsolute(found, into: &out) } else { out += callsOf(search: c.search, p, rec) }
        }
        return out
    }

    mutating func staticLink(_ p: ProcessAnalysis, _ rec: [ModelCall]) -> [ModelCall] {
        var out: [ModelCall] = []
        var bytes = 0
        var known = true
        for (i, c) in p.calls.enumerated() where c.search >= 0 && !c.failed && (rec[i].kind == .open) {
            if let sz = world.tree.size(rec[i].dir, rec[i].name) { bytes += sz } else { known = false }
        }
        for (i, c) in p.calls.enumerated() {
            if c.search >= 0 || c.purpose == .loaderConfig || c.phase == .startup { continue }
            if c.purpose == .objectStat && c.phase.kind == "dlopen" { continue }
            var m = rec[i]
            if m.kind == .exec && !m.failed {
                // One executable holding the libraries' code and data.
                let staticName = world.tree.name(world.tree.nameString(m.name) + ".static")
                world.tree.markFile(m.dir, staticName, exists: true)
                let own = world.tree.size(m.dir, m.name) ?? 0
                let objects = p.searches.filter { $0.found != nil }.count
                world.tree.setSize(m.dir, staticName, bytes: known ? own + bytes : (objects + 1) * world.defaultReadBytes)
                m.name = staticName
            }
            out.append(m)
        }
        return out
    }

    // MARK: pieces

    /// The indices of each search's calls, for the process being built.
    var bySearch: [[Int]] = []

    mutating func index(_ p: ProcessAnalysis) {
        bySearch = [[Int]](repeating: [], count: p.searches.count)
        for (i, c) in p.calls.enumerated() where c.search >= 0 { bySearch[Int(c.search)].append(i) }
    }

    /// The recorded calls of one search, in order.
    func callsOf(search: Int32, _ p: ProcessAnalysis, _ rec: [ModelCall]) -> [ModelCall] {
        bySearch[Int(search)].map { rec[$0] }
    }

    mutating func emitAbsolute(_ path: String, into out: inout [ModelCall]) {
        let (d, n) = world.tree.file(path)
        out.append(ModelCall(kind: .open, call: .openat, dir: d, name: n, failed: false, purpose: .absoluteOpen))
        out.append(ModelCall(kind: .fstat, call: .newfstatat, dir: d, name: n, failed: false, purpose: .objectStat))
    }

    /// Search directories in the order the search went through them (LD_LIBRARY_PATH and RPATH/RUNPATH).
    func searchDirectories(_ s: LibrarySearch) -> [(String, CandidateOrigin)] {
        var out: [(String, CandidateOrigin)] = []
        var seen = Set<Int32>()
        for c in s.candidates where c.origin == .rpath || c.origin == .ldLibraryPath {
            if seen.insert(c.directoryId).inserted { out.append((c.directory, c.origin)) }
        }
        return out
    }

    mutating func dirNode(_ path: String) -> Int32 {
        if let n = dirNodes[path] { return n }
        let n = world.tree.directory(path)
        dirNodes[path] = n
        return n
    }

    mutating func subNode(_ dir: Int32, _ capIndex: Int) -> Int32 {
        let k = PathTree.key(dir, Int32(capIndex))
        if let n = subNodes[k] { return n }
        var node = dir
        for comp in world.capabilitySubdirectories[capIndex].split(separator: "/") {
            node = world.tree.child(node, world.tree.name(String(comp)))
        }
        subNodes[k] = node
        return node
    }

    struct Replayer {
        var status: [UInt64: Bool] = [:]
        var cacheRead = false
    }

    /// Runs a search again through `dirs` (default: the recorded ones) with the
    /// process's directory statuses, then the cache and default directories as recorded.
    mutating func replay(_ s: LibrarySearch, search: Int32, _ p: ProcessAnalysis, _ rec: [ModelCall],
                         replayer r: inout Replayer,
                         override: (dirs: [(String, CandidateOrigin)], hit: (dir: String, sub: String)?)?,
                         into out: inout [ModelCall]) {
        let dirs = override?.dirs ?? searchDirectories(s)
        var hit: (dir: String, sub: String)? = override.map { $0.hit } ?? nil
        if override == nil, let h = s.candidates.last(where: { $0.outcome == .hit }), h.origin == .rpath || h.origin == .ldLibraryPath {
            hit = (h.directory, h.subdirectory)
        }
        let nameId = world.tree.name(s.name)
        let caps = world.capabilitySubdirectories
        for (dir, _) in dirs {
            let d = dirNode(dir)
            for ci in caps.indices {
                let sk = PathTree.key(d, Int32(ci))
                if r.status[sk] == false { continue }
                let sub = subNode(d, ci)
                let purpose: CallPurpose = caps[ci].isEmpty ? .searchCandidate : .hwcapsProbe
                if let h = hit, h.dir == dir, h.sub == caps[ci] {
                    out.append(ModelCall(kind: .open, call: .openat, dir: sub, name: nameId, failed: false, purpose: purpose))
                    out.append(ModelCall(kind: .fstat, call: .newfstatat, dir: sub, name: nameId, failed: false, purpose: .objectStat))
                    r.status[sk] = true
                    return
                }
                out.append(ModelCall(kind: .open, call: .openat, dir: sub, name: nameId, failed: true, purpose: purpose))
                if r.status[sk] == nil {
                    let exists = world.tree.exists(sub)
                    let parent = world.tree.parent(sub)
                    out.append(ModelCall(kind: .stat, call: .newfstatat, dir: parent, name: world.tree.nodes[Int(sub)].name,
                                         failed: !exists, purpose: caps[ci].isEmpty ? .directoryStat : .hwcapsProbe))
                    r.status[sk] = exists
                }
            }
        }
        // The rest as recorded: the cache (read once per process), default directories.
        var readNow = false
        for i in bySearch[Int(search)] {
            let c = p.calls[i]
            if c.purpose == .loaderConfig {
                if !r.cacheRead { out.append(rec[i]); readNow = true }
                continue
            }
            if c.candidate >= 0 {
                let cand = s.candidates[Int(c.candidate)]
                if cand.origin == .rpath || cand.origin == .ldLibraryPath { continue }
            }
            out.append(rec[i])
        }
        if readNow { r.cacheRead = true }
    }
}

extension ModelWorld {
    var defaultReadBytes: Int { 131072 }
}
