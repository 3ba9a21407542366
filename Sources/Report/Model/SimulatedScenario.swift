import LoaderModel
import TraceFormat

/// A recorded process prepared for the scenarios: its loader world, and what
/// the one glibc simulation does in it unchanged (the baseline every
/// transformation starts from, and the check of the model against the trace).
struct SimulatedProcess {
    let input: SimulationInput
    let baseline: LoadResult
    /// Recorded dlopen group number → the simulation's group.
    let groupOfPhase: [Int: Int]

    init?(_ p: ProcessAnalysis, world: TraceWorld) {
        guard p.audited, let input = world.input(for: p), let baseline = input.run() else { return nil }
        self.input = input
        self.baseline = baseline
        var map: [Int: Int] = [:]
        var k = 0
        for g in p.groups {
            guard case .dlopen(let n) = g.phase, !g.names.isEmpty else { continue }
            k += 1
            map[n] = k
        }
        groupOfPhase = map
    }

    /// The simulation's group of a recorded search; nil when not simulated.
    func group(of s: LibrarySearch) -> Int? {
        switch s.phase {
        case .startup: 0
        case .dlopen(let n): groupOfPhase[n]
        default: nil
        }
    }

    /// The process's calls in the world `transform` makes (nil: unchanged):
    /// the recorded calls, with every simulated load group's recorded loader
    /// calls replaced by the simulation's, in the group's place.
    func calls(_ transform: WorldTransform?, _ p: ProcessAnalysis, _ rec: [ModelCall], tree: inout PathTree) -> [ModelCall] {
        let input = transform.map { $0.apply(to: self.input, baseline: baseline) } ?? self.input
        let result = transform == nil ? baseline : (input.run() ?? baseline)
        var byGroup = [[ModelCall]](repeating: [], count: input.dlopens.count + 1)
        for o in result.objects where byGroup.indices.contains(o.group) {
            SimulatedProcess.append(o, world: input.world, into: &byGroup[o.group], tree: &tree)
        }
        var emitted = [Bool](repeating: false, count: byGroup.count)
        var out: [ModelCall] = []
        out.reserveCapacity(rec.count)
        for (i, c) in p.calls.enumerated() {
            // The start-up group goes where the recorded one began, or before main.
            if !emitted[0] && (c.phase >= .main || (c.search >= 0 && p.searches[Int(c.search)].phase == .startup)) {
                out += byGroup[0]
                emitted[0] = true
            }
            guard c.search >= 0, let g = group(of: p.searches[Int(c.search)]), g < byGroup.count else {
                out.append(rec[i])
                continue
            }
            if !emitted[g] { out += byGroup[g]; emitted[g] = true }
        }
        for g in byGroup.indices where !emitted[g] { out += byGroup[g] }
        return out
    }

    /// One lookup's system calls, as glibc makes them: each candidate's openat,
    /// the stat of a subdirectory of unknown status after a miss in it, the
    /// fstat of the file it keeps; the cache file's openat and fstat.
    static func append(_ o: ResolvedObject, world: LoaderWorld, into out: inout [ModelCall], tree: inout PathTree) {
        for a in o.attempts {
            switch a.outcome {
            case .readCache:
                let (d, n) = tree.file(a.path)
                out.append(ModelCall(kind: .open, call: .openat, dir: d, name: n, failed: a.cost.fstat == 0, purpose: .loaderConfig))
                if a.cost.fstat > 0 {
                    out.append(ModelCall(kind: .fstat, call: .newfstatat, dir: d, name: n, failed: false, purpose: .loaderConfig))
                }
                continue
            case .skippedMissingDirectory, .notInCache, .cacheEntryIgnoredByNodeflib, .readPathFile:
                continue
            default:
                break
            }
            let (d, n) = tree.file(a.path)
            // The directory exists in the world (a view directory the scenario made, a search directory).
            if world.stat(LoaderPath.directory(a.path)) == .directory { tree.markExists(d) }
            let missing: Bool
            if case .missing = a.outcome { missing = true } else { missing = false }
            let purpose: CallPurpose = a.origin == .absolute ? .absoluteOpen : a.subdirectory.isEmpty ? .searchCandidate : .hwcapsProbe
            if !missing, let target = world.symlinks[a.path] {
                tree.setSymlink(d, n, target: target)
            }
            if !missing { tree.markFile(d, n, exists: true) }
            out.append(ModelCall(kind: .open, call: .openat, dir: d, name: n, failed: missing, purpose: purpose))
            if a.cost.statPath > 0 {
                let sub = LoaderPath.directory(a.path)
                let node = tree.directory(sub)
                let exists = world.stat(sub) == .directory
                if exists { tree.markExists(node) } else { markMissing(node, world: world, tree: &tree) }
                out.append(ModelCall(kind: .stat, call: .newfstatat, dir: tree.parent(node), name: tree.nodes[Int(node)].name,
                                     failed: !exists, purpose: a.subdirectory.isEmpty ? .directoryStat : .hwcapsProbe))
            }
            if a.cost.fstat > 0 {
                out.append(ModelCall(kind: .fstat, call: .newfstatat, dir: d, name: n, failed: false, purpose: .objectStat))
            }
        }
    }

    /// A missing subdirectory: it, and its first ancestor below a directory the
    /// world knows, are missing, unless the trace already showed otherwise (a
    /// view directory holds no glibc-hwcaps/ at all).
    static func markMissing(_ node: Int32, world: LoaderWorld, tree: inout PathTree) {
        var n = node
        while n > 0 {
            let parent = tree.parent(n)
            if tree.nodes[Int(n)].state == .unknown { tree.markMissing(n) }
            if parent <= 0 || world.directories[tree.path(parent)] == true { break }
            n = parent
        }
    }

    /// The recorded loader calls of the groups the simulation covers, and the
    /// simulation's calls for the same groups in the unchanged world: how well
    /// the model reproduces this run.
    func check(_ p: ProcessAnalysis) -> (recorded: Int, simulated: Int) {
        var recorded = 0
        for c in p.calls where c.search >= 0 && group(of: p.searches[Int(c.search)]) != nil { recorded += 1 }
        let simulated = baseline.objects.reduce(0) { $0 + $1.cost.total }
        return (recorded, simulated)
    }
}
