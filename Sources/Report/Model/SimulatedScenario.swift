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
    /// The start-up's readlink("/proc/self/exe") calls: ld.so's _dl_get_origin,
    /// made because the program's own search path or DT_NEEDED uses $ORIGIN.
    let originReads: Set<Int>

    /// The loader-cache world and what the simulation does in it, made beside
    /// the baseline (from the recorded resolution: each name searched and the
    /// path it found), on a second thread.
    let loaderCache: (transform: WorldTransform, input: SimulationInput, result: LoadResult?)?

    /// `modelUnchanged`: the unchanged world's calls are the simulation's too
    /// (an audit-only trace, which recorded no system calls), so the baseline
    /// keeps its attempts.
    init?(_ p: ProcessAnalysis, world: TraceWorld, loaderCache cacheTransform: WorldTransform?, modelUnchanged: Bool = false) {
        guard p.audited, var input = world.input(for: p) else { return nil }
        input.keepAttempts = modelUnchanged
        var resolution: [(name: String, path: String)] = []
        for s in p.searches { if let found = s.found { resolution.append((s.name, found)) } }
        let cacheInput = cacheTransform.map { $0.apply(to: input, resolution: resolution) }
        let (base, cached) = concurrently({ input.run() }, { cacheInput?.run() })
        guard let baseline = base else { return nil }
        self.input = input
        self.baseline = baseline
        if let cacheTransform, let cacheInput {
            loaderCache = (cacheTransform, cacheInput, cached)
        } else {
            loaderCache = nil
        }
        var map: [Int: Int] = [:]
        var k = 0
        for g in p.groups {
            guard case .dlopen(let n) = g.phase, !g.names.isEmpty else { continue }
            k += 1
            map[n] = k
        }
        groupOfPhase = map
        var reads = Set<Int>()
        for (i, c) in p.calls.enumerated() where (c.event.call == .readlink || c.event.call == .readlinkat) && c.phase <= .startup
            && world.trace.path(c.event.path) == "/proc/self/exe" {
            reads.insert(i)
        }
        originReads = reads
    }

    /// Whether ld.so asks for the program's own directory at start: its
    /// RPATH, RUNPATH or DT_NEEDED, or LD_LIBRARY_PATH, names $ORIGIN.
    static func usesOwnOrigin(_ input: SimulationInput) -> Bool {
        guard let elf = try? input.world.readELF(input.program) else { return true }
        func has(_ s: String?) -> Bool { s.map { $0.contains("$ORIGIN") || $0.contains("${ORIGIN}") } ?? false }
        return has(elf.rpath) || has(elf.runpath) || elf.needed.contains(where: { has($0) })
            || (!input.environment.secure && has(input.environment.ldLibraryPath))
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
        let input: SimulationInput, result: LoadResult
        if let transform, let lc = loaderCache, lc.transform == transform {
            input = lc.input
            result = lc.result ?? baseline
        } else if let transform {
            input = transform.apply(to: self.input, baseline: baseline)
            result = input.run() ?? baseline
        } else {
            input = self.input
            result = baseline
        }
        var byGroup = [[ModelCall]](repeating: [], count: input.dlopens.count + 1)
        var maker = CallMaker(world: input.world)
        for o in result.objects where byGroup.indices.contains(o.group) {
            maker.append(o, into: &byGroup[o.group], tree: &tree)
        }
        var emitted = [Bool](repeating: false, count: byGroup.count)
        var out: [ModelCall] = []
        out.reserveCapacity(rec.count)
        // A fix that takes $ORIGIN out of the program's own paths takes ld.so's readlink of /proc/self/exe with it.
        let dropOriginReads = transform != nil && !originReads.isEmpty && !Self.usesOwnOrigin(input) && Self.usesOwnOrigin(self.input)
        for (i, c) in p.calls.enumerated() {
            if dropOriginReads && originReads.contains(i) { continue }
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

    /// Turns simulated lookups into model calls on the cost model's tree,
    /// each directory looked up once.
    struct CallMaker {
        let world: LoaderWorld
        /// Directory part of a candidate path → its tree node, and whether the world has it.
        var directories: [String: (node: Int32, exists: Bool)] = [:]
        /// Nodes already marked missing, or walked through while marking: their
        /// chain up to a directory the world knows is done (a node is never
        /// unknown again), so a walk stops at them.
        var markedMissing = Set<Int32>()

        mutating func directory(_ path: String, tree: inout PathTree) -> (node: Int32, exists: Bool) {
            if let d = directories[path] { return d }
            let d = (tree.directory(path), world.stat(path) == .directory)
            directories[path] = d
            return d
        }

        /// (directory part, directory node, whether it exists, name id) of an absolute path.
        mutating func split(_ path: String, tree: inout PathTree) -> (node: Int32, exists: Bool, name: Int32) {
            guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return (PathTree.root, true, tree.name(path)) }
            let (node, exists) = directory(slash == path.startIndex ? "/" : String(path[..<slash]), tree: &tree)
            return (node, exists, tree.name(String(path[path.utf8.index(after: slash)...])))
        }

        /// One lookup's system calls, as glibc makes them: each candidate's openat,
        /// the stat of a subdirectory of unknown status after a miss in it, the
        /// fstat of the file it keeps; the cache file's openat and fstat.
        mutating func append(_ o: ResolvedObject, into out: inout [ModelCall], tree: inout PathTree) {
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
                let (d, dirExists, n) = split(a.path, tree: &tree)
                // The directory exists in the world (a view directory the scenario made, a search directory).
                if dirExists { tree.markExists(d) }
                let missing: Bool
                if case .missing = a.outcome { missing = true } else { missing = false }
                let purpose: CallPurpose = a.origin == .absolute ? .absoluteOpen : a.subdirectory.isEmpty ? .searchCandidate : .hwcapsProbe
                if !missing {
                    if let target = world.symlinks[a.path] { tree.setSymlink(d, n, target: target) }
                    tree.markFile(d, n, exists: true)
                }
                out.append(ModelCall(kind: .open, call: .openat, dir: d, name: n, failed: missing, purpose: purpose))
                if a.cost.statPath > 0 {
                    if dirExists { tree.markExists(d) } else if !markedMissing.contains(d) { markMissing(d, tree: &tree) }
                    // The stat of the search directory itself ("/", a search path of "/", has no parent).
                    let entry = tree.entry(d)
                    out.append(ModelCall(kind: .stat, call: .newfstatat, dir: entry.dir, name: entry.name,
                                         failed: !dirExists, purpose: a.subdirectory.isEmpty ? .directoryStat : .hwcapsProbe))
                }
                if a.cost.fstat > 0 {
                    out.append(ModelCall(kind: .fstat, call: .newfstatat, dir: d, name: n, failed: false, purpose: .objectStat))
                }
            }
        }

        /// A missing subdirectory: it, and its ancestors up to the first one
        /// below a directory the world knows, are missing, unless the trace
        /// already showed otherwise (a view directory holds no glibc-hwcaps/ at all).
        /// Each parent's path is the child's cut before its last component: one
        /// path made per walk, not one per step (a directory 2,000 components
        /// deep made every walk quadratic).
        mutating func markMissing(_ node: Int32, tree: inout PathTree) {
            var n = node
            let full = tree.path(node)
            var length = full.utf8.count
            while n > 0 && markedMissing.insert(n).inserted {
                let parent = tree.parent(n)
                if tree.nodes[Int(n)].state == .unknown { tree.markMissing(n) }
                guard parent > 0 else { break }
                // path(n) is path(parent) + "/" + its name.
                length -= 1 + tree.nameString(tree.nodes[Int(n)].name).utf8.count
                let parentPath = String(Substring(full.utf8.prefix(length)))
                if world.directories[parentPath] == true { break }
                n = parent
            }
        }
    }

    /// The recorded loader calls of the groups the simulation covers, and the
    /// simulation's calls for the same groups in the unchanged world: how well
    /// the model reproduces this run.
    func check(_ p: ProcessAnalysis) -> (recorded: Int, simulated: Int) {
        var recorded = 0
        for c in p.calls where c.search >= 0 && group(of: p.searches[Int(c.search)]) != nil { recorded += 1 }
        let simulated = baseline.predicted.total
        return (recorded, simulated)
    }
}
