import LoaderModel
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
    /// Lift dlopen'ed names into DT_NEEDED too (the Shrinkwrap paper does this
    /// for Python modules known at build time).
    public var liftDlopen = false
    /// The view directory; default: beside the program's first search directory.
    public var viewDirectory: String?

    var dirNodes: [String: Int32] = [:]

    public init(world: ModelWorld) {
        self.world = world
    }

    /// A scenario's calls for the processes of one trace (`prepare`d); `recorded`
    /// and `searchPaths` are per process (ModelWorld.add, the program's search path).
    public mutating func build(_ scenario: Scenario, trace analysis: TraceAnalysis, recorded: [[ModelCall]], searchPaths: [[String]],
                               assumptions a: inout ScenarioAssumptions) -> [ModelProcess] {
        var procs: [ModelProcess] = []
        for (pi, p) in analysis.processes.enumerated() {
            let rec = recorded[pi]
            startProcess(pi)
            let calls: [ModelCall]
            switch scenario {
            case .recorded, .negativeCache: calls = rec
            case .shrinkwrap, .bind: calls = shrinkwrap(p, rec)
            case .view: calls = view(p, rec, searchPath: searchPaths[pi], assumptions: &a)
            case .loaderCache: calls = loaderCache(p, rec)
            case .staticLink: calls = staticLink(p, rec)
            }
            procs.append(ModelProcess(label: p.label, calls: calls, objects: p.objects.count))
        }
        return procs
    }

    /// The scenario's own inputs (after its traces were built).
    public func describe(_ scenario: Scenario, assumptions a: inout ScenarioAssumptions) {
        switch scenario {
        case .recorded: a.add("calls", "as recorded (loadprobe's own calls left out)")
        case .shrinkwrap:
            a.add("start-up searches", "each replaced by one open of the path it found, plus its fstat")
            a.add("dlopen searches", liftDlopen ? "lifted too (opened by absolute path)" : "replayed as glibc would run them without the start-up searches before (directory statuses start unknown)")
            a.add("ld.so.cache", "not read at start-up (every start-up name is absolute)")
        case .bind:
            a.add("every search", "as shrinkwrap: no loader world to simulate binding with")
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
    }

    // MARK: scenarios

    mutating func shrinkwrap(_ p: ProcessAnalysis, _ rec: [ModelCall]) -> [ModelCall] {
        var out: [ModelCall] = []
        out.reserveCapacity(rec.count)
        var done = [Bool](repeating: false, count: p.searches.count)
        var replayer = Replayer()
        for (i, c) in p.calls.enumerated() {
            guard c.search >= 0 else { out.append(rec[i]); continue }
            guard !done[Int(c.search)] else { continue }
            done[Int(c.search)] = true
            let s = p.searches[Int(c.search)]
            let lifted = s.phase == .startup || (liftDlopen && s.phase.isDlopen)
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
        var done = [Bool](repeating: false, count: p.searches.count)
        var replayer = Replayer()
        // Directories compared as tree nodes.
        let pathNodes = searchPath.map { dirNodes[$0] ?? world.tree.find($0) ?? -1 }
        let firstNode = dirNode(firstProgramDir)
        for (i, c) in p.calls.enumerated() {
            guard c.search >= 0 else { out.append(rec[i]); continue }
            guard !done[Int(c.search)] else { continue }
            done[Int(c.search)] = true
            let s = p.searches[Int(c.search)]
            if s.isAbsolute {
                out += callsOf(search: c.search, p, rec)
                continue
            }
            // The program's directories form one block in the search, in their
            // order, starting at the first of them; directories before the block
            // come from the needing library's own RPATH and stay.
            let recordedDirs = searchDirectoryNodes(s)
            guard let start = recordedDirs.firstIndex(of: firstNode) else {
                // Not through the program's directories: the same directories,
                // but with this scenario's directory statuses.
                replay(s, search: c.search, p, rec, replayer: &replayer, override: nil, into: &out)
                continue
            }
            var end = start
            var k = 0
            while end < recordedDirs.count, let at = pathNodes[k...].firstIndex(of: recordedDirs[end]) {
                k = at + 1
                end += 1
                if k >= pathNodes.count { break }
            }
            var dirs = Array(recordedDirs[..<start])
            dirs.append(v)
            dirs += recordedDirs[end...]
            var hit: (dir: Int32, cap: Int)?
            if let fd = s.foundDirectory, let found = s.found, let fdNode = dirNodes[fd], recordedDirs[start..<end].contains(fdNode) {
                let nameId = world.tree.name(s.name)
                world.tree.setSymlink(v, nameId, target: found)
                hit = (v, world.capabilitySubdirectories.firstIndex(of: "") ?? -1)
            }
            replay(s, search: c.search, p, rec, replayer: &replayer, override: (dirs, hit), into: &out)
        }
        return out
    }

    mutating func loaderCache(_ p: ProcessAnalysis, _ rec: [ModelCall]) -> [ModelCall] {
        var out: [ModelCall] = []
        var done = [Bool](repeating: false, count: p.searches.count)
        var cacheRead = false
        let prefix = SearchDirectory.dirname(SearchDirectory.dirname(p.image.isEmpty ? "/" : p.image))
        let cachePath = (prefix == "/" ? "" : prefix) + "/etc/ld.so.cache"
        for (i, c) in p.calls.enumerated() {
            guard c.search >= 0 else { out.append(rec[i]); continue }
            guard !done[Int(c.search)] else { continue }
            done[Int(c.search)] = true
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
            if c.purpose == .objectStat && c.phase.isDlopen { continue }
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

    /// Before building a scenario's calls for process `pi` of the trace.
    mutating func startProcess(_ pi: Int) {
        bySearch = bySearchOfProcess[pi]
        nodeOfDirectoryId.removeAll(keepingCapacity: true)
        seenStamp.removeAll(keepingCapacity: true)
    }

    /// Each process's calls by search, made once per trace (every scenario uses them).
    var bySearchOfProcess: [[[Int]]] = []
    /// Call before building a trace's scenarios.
    public mutating func prepare(_ analysis: TraceAnalysis) {
        bySearchOfProcess = analysis.processes.map { p in
            var by = [[Int]](repeating: [], count: p.searches.count)
            for (i, c) in p.calls.enumerated() where c.search >= 0 { by[Int(c.search)].append(i) }
            return by
        }
    }

    /// Per process: a candidate's directoryId → its tree node (-1: not yet).
    var nodeOfDirectoryId: [Int32] = []
    /// directoryIds seen in the search being listed (stamped with its number).
    var seenStamp: [UInt32] = []
    var stampNow: UInt32 = 0

    /// The recorded calls of one search, in order.
    func callsOf(search: Int32, _ p: ProcessAnalysis, _ rec: [ModelCall]) -> [ModelCall] {
        bySearch[Int(search)].map { rec[$0] }
    }

    mutating func emitAbsolute(_ path: String, into out: inout [ModelCall]) {
        let (d, n) = world.tree.file(path)
        out.append(ModelCall(kind: .open, call: .openat, dir: d, name: n, failed: false, purpose: .absoluteOpen))
        out.append(ModelCall(kind: .fstat, call: .newfstatat, dir: d, name: n, failed: false, purpose: .objectStat))
    }

    /// Search directories in the order the search went through them (LD_LIBRARY_PATH and RPATH/RUNPATH), as tree nodes.
    mutating func searchDirectoryNodes(_ s: LibrarySearch) -> [Int32] {
        var out: [Int32] = []
        stampNow &+= 1
        for c in s.candidates where c.origin == .rpath || c.origin == .ldLibraryPath {
            let id = Int(c.directoryId)
            if id >= nodeOfDirectoryId.count {
                nodeOfDirectoryId += [Int32](repeating: -1, count: id + 1 - nodeOfDirectoryId.count)
                seenStamp += [UInt32](repeating: 0, count: id + 1 - seenStamp.count)
            }
            if nodeOfDirectoryId[id] < 0 { nodeOfDirectoryId[id] = dirNode(c.directory) }
            if seenStamp[id] != stampNow { seenStamp[id] = stampNow; out.append(nodeOfDirectoryId[id]) }
        }
        return out
    }

    mutating func dirNode(_ path: String) -> Int32 {
        if let n = dirNodes[path] { return n }
        let n = world.tree.directory(path)
        dirNodes[path] = n
        return n
    }

    /// The capability subdirectory nodes of a search directory node, made once
    /// per directory: `capNodes[capStart[dir] + capIndex]`.
    var capStart: [Int32] = []
    var capNodes: [Int32] = []

    mutating func subNode(_ dir: Int32, _ capIndex: Int) -> Int32 {
        let d = Int(dir)
        if d >= capStart.count { capStart += [Int32](repeating: -1, count: d + 1 - capStart.count) }
        if capStart[d] < 0 {
            capStart[d] = Int32(capNodes.count)
            for cap in world.capabilitySubdirectories {
                var node = dir
                for comp in cap.split(separator: "/") {
                    node = world.tree.child(node, world.tree.name(String(comp)))
                }
                capNodes.append(node)
            }
        }
        return capNodes[Int(capStart[d]) + capIndex]
    }

    struct Replayer {
        /// Per (search directory, list position) slot of `capNodes`: 0 unknown, 1 exists, 2 missing (glibc's r_search_path_elem status).
        var status: [UInt8] = []
        var cacheRead = false
        @inline(__always) func get(_ node: Int32) -> UInt8 { Int(node) < status.count ? status[Int(node)] : 0 }
        @inline(__always) mutating func set(_ node: Int32, _ exists: Bool) {
            if Int(node) >= status.count { status += [UInt8](repeating: 0, count: max(Int(node) + 1, status.count * 2) - status.count) }
            status[Int(node)] = exists ? 1 : 2
        }
    }

    /// Runs a search again through `dirs` (default: the recorded ones) with the
    /// process's directory statuses, then the cache and default directories as recorded.
    mutating func replay(_ s: LibrarySearch, search: Int32, _ p: ProcessAnalysis, _ rec: [ModelCall],
                         replayer r: inout Replayer,
                         override: (dirs: [Int32], hit: (dir: Int32, cap: Int)?)?,
                         into out: inout [ModelCall]) {
        let dirs = override?.dirs ?? searchDirectoryNodes(s)
        var hit: (dir: Int32, cap: Int)? = override.map { $0.hit } ?? nil
        let caps = world.capabilitySubdirectories
        if override == nil, let h = s.candidates.last(where: { $0.outcome == .hit }), h.origin == .rpath || h.origin == .ldLibraryPath {
            hit = (dirNode(h.directory), caps.firstIndex(of: h.subdirectory) ?? -1)
        }
        let nameId = world.tree.name(s.name)
        for d in dirs {
            for ci in caps.indices {
                let sub = subNode(d, ci)
                // glibc keeps a status per search directory and list position (the list repeats some subdirectories).
                let slot = Int32(capStart[Int(d)]) + Int32(ci)
                let known = r.get(slot)
                if known == 2 { continue }
                let purpose: CallPurpose = caps[ci].isEmpty ? .searchCandidate : .hwcapsProbe
                if let h = hit, h.dir == d, h.cap == ci {
                    out.append(ModelCall(kind: .open, call: .openat, dir: sub, name: nameId, failed: false, purpose: purpose))
                    out.append(ModelCall(kind: .fstat, call: .newfstatat, dir: sub, name: nameId, failed: false, purpose: .objectStat))
                    r.set(slot, true)
                    return
                }
                out.append(ModelCall(kind: .open, call: .openat, dir: sub, name: nameId, failed: true, purpose: purpose))
                if known == 0 {
                    let exists = world.tree.exists(sub)
                    let parent = world.tree.parent(sub)
                    out.append(ModelCall(kind: .stat, call: .newfstatat, dir: parent, name: world.tree.nodes[Int(sub)].name,
                                         failed: !exists, purpose: caps[ci].isEmpty ? .directoryStat : .hwcapsProbe))
                    r.set(slot, exists)
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
                let origin = s.candidates[Int(c.candidate)].origin
                if origin == .rpath || origin == .ldLibraryPath { continue }
            }
            out.append(rec[i])
        }
        if readNow { r.cacheRead = true }
    }
}

extension ModelWorld {
    var defaultReadBytes: Int { 131072 }
}
