import LoaderModel
import TraceFormat

/// What `record --what-if` gives the audit library: for each library search
/// the fixed program would not make, the path the fix gives it. The audit
/// library answers la_objsearch's first call of such a search (LA_SER_ORIG)
/// with that path, so ld.so opens it at once, as the fixed program would
/// (docs/fix.md). Where the fixed program still searches for the name (a
/// view; a shrinkwrap alias), the entry carries that search's failed lookups,
/// which the audit library makes before answering: the what-if pays for them
/// on the real file system as the fix would. Made from the same baseline and
/// plan as the prediction and `loadprobe fix`.
public struct WhatIfMap: Sendable {
    public enum Scenario: String, Sendable, CaseIterable {
        case shrinkwrap, bind, view
    }

    /// One system call (or record) of the fixed program's search, made by the
    /// audit library before it answers (audit-lib/README.md, "What-if").
    public enum Step: Sendable, Hashable {
        /// The open of a candidate that fails (or a file the loader skips),
        /// recorded as a candidate of that origin.
        case open(String, LookupOrigin)
        /// The loader's stat of a directory after a miss in it.
        case stat(String)
        /// The loader's first read of its cache file (openat and fstat).
        case readCache(String)
        /// The answer, recorded as the candidate the search found, of that origin.
        case found(LookupOrigin)
    }

    public struct Entry: Sendable, Hashable {
        /// The object asking, as ld.so names it (l_name: "" for the program);
        /// nil: any object.
        public var requester: String?
        public var name: String
        public var path: String
        /// The fixed program's search for the name before the answer; empty
        /// when it asks for the path itself.
        public var steps: [Step] = []
    }

    public var scenario: Scenario
    public var entries: [Entry]
    /// The programs (by file name) whose start-up is answered: the recorded
    /// image's, and the command's.
    public var programNames: [String]
    /// Why the scenario cannot be tried (its simulated world does not start).
    public var problem: String?
    /// The view's directory (view only): where its own lookups are made.
    public var viewDirectory: String?

    /// `input` (the baseline's simulation input) and `viewDirectory` are what
    /// the view needs: its world is simulated to see which searches it changes.
    public init(scenario: Scenario, baseline: LoadResult, input: SimulationInput? = nil, viewDirectory: String? = nil,
                liftDlopen: Bool = false, programNames: [String]) {
        self.scenario = scenario
        self.programNames = programNames
        var problem: String? = nil
        var view: String? = nil
        let program = baseline.program.path
        var out: [Entry] = []
        var seen = Set<Entry>()
        // ld.so opens a path found through a relative RPATH entry relative to the working directory;
        // the audit library answers with absolute paths only.
        let wd = baseline.environment.workingDirectory
        func absolute(_ found: String) -> String { found.hasPrefix("/") ? found : LoaderPath.join(wd, found) }
        func add(_ requester: String?, _ name: String, _ found: String, steps: [Step] = []) {
            let path = absolute(found)
            // An object answered with an absolute path is named by it when it asks in turn.
            let asker = requester.map { $0.isEmpty || $0.hasPrefix("/") ? $0 : LoaderPath.join(wd, $0) }
            let e = Entry(requester: asker, name: name, path: path, steps: steps)
            if seen.insert(e).inserted { out.append(e) }
        }
        func requester(_ neededBy: String) -> String { neededBy == program ? "" : neededBy }
        switch scenario {
        case .shrinkwrap:
            // Every library the fixed program lists: its first request, from any object, goes straight to the file.
            let plan = ShrinkwrapPlan(load: baseline, liftDlopen: liftDlopen)
            // ld.so itself is always there: a request for it matches by name, never reaches the audit library.
            let closure = Set(plan.closurePaths).subtracting(baseline.loaded.filter { $0.role == .interpreter }.map(\.path))
            // A name that is not the soname of its file (an alias) stays a bare name in the fixed program,
            // which searches its own RUNPATH for it, the alias's directory put first: that search's misses.
            // That directory is in the way of the dlopens the fix leaves as searches, too.
            var aliasSteps: [String: [Step]] = [:]
            var dlopens: [(requester: String, name: String, path: String, steps: [Step])] = []
            if !plan.aliases.isEmpty, let input {
                let fixedInput = WorldTransform.shrinkwrap(liftDlopen: liftDlopen).apply(to: input, baseline: baseline)
                let fixed = fixedInput.run() ?? baseline
                let aliasNames = Set(plan.aliases.map(\.name))
                var before: [String: [String]] = [:]
                for o in baseline.objects where o.group > 0 { before["\(o.group) \(o.neededBy) \(o.needed)"] = o.attempts.map(\.path) }
                var answered: [(ResolvedObject, alias: Bool)] = []
                var others: [ResolvedObject] = []
                var aliasSeen = Set<String>()
                for o in fixed.objects where !o.needed.contains("/") && !o.attempts.isEmpty {
                    if o.failure == nil, o.path != nil, o.group == 0, aliasNames.contains(o.needed), aliasSeen.insert(o.needed).inserted {
                        answered.append((o, true))
                    } else if o.failure == nil, o.path != nil, o.group > 0, before["\(o.group) \(o.neededBy) \(o.needed)"] != o.attempts.map(\.path) {
                        answered.append((o, false))
                    } else {
                        others.append(o)
                    }
                }
                let visited = Self.missesOf(others, in: fixed, input: fixedInput)
                for (o, alias) in answered {
                    guard let steps = Self.steps(o.attempts, group: o.group, missedElsewhere: visited, world: fixedInput.world) else { continue }
                    if alias { aliasSteps[o.needed] = steps } else { dlopens.append((requester(o.neededBy), o.needed, o.path!, steps)) }
                }
            }
            var named = Set<String>()
            for o in baseline.objects where o.failure == nil && !o.needed.contains("/") {
                // The plan's paths are absolute; the load's are as ld.so opened them (relative RPATH entries).
                guard let path = o.path, closure.contains(absolute(path)), o.neededBy != LoadResult.preloadRequester,
                      named.insert(o.needed).inserted else { continue }
                add(nil, o.needed, path, steps: aliasSteps[o.needed] ?? [])
            }
            for d in dlopens { add(d.requester, d.name, d.path, steps: d.steps) }
        case .bind:
            for r in BindPlan(load: baseline).rewrites { add(requester(r.object), r.name, r.path) }
        case .view:
            // The view world simulated: every search that goes through the view directory (the program's own,
            // and with an RPATH-only program its libraries', which inherit it) is answered with the file it ends at.
            guard let input else { break }
            let dir = viewDirectory ?? WorldTransform.defaultViewDirectory(input: input, baseline: baseline)
            view = dir
            let transformed = WorldTransform.view(directory: dir).apply(to: input, baseline: baseline)
            guard let result = transformed.run() else { break }
            if let failure = result.failure {
                problem = "the program would not start with the view (\(failure.message))"
                break
            }
            let prefix = LoaderWorld.trimmedPath(dir) + "/"
            // An object loaded through the view is named by its link there; under the what-if it is the
            // link's target that loads, and that is the name its own requests come with.
            func target(_ path: String) -> String { path.hasPrefix(prefix) ? transformed.world.symlinks[path] ?? path : path }
            func throughView(_ o: ResolvedObject) -> Bool {
                o.failure == nil && !o.needed.contains("/") && o.path != nil && o.attempts.contains { $0.path.hasPrefix(prefix) }
            }
            let visited = Self.missesOf(result.objects.filter { !throughView($0) }, in: result, input: transformed)
            for o in result.objects where throughView(o) {
                let steps = Self.steps(o.attempts, group: o.group, missedElsewhere: visited, world: transformed.world) ?? []
                add(o.neededBy == program ? "" : target(o.neededBy), o.needed, target(o.path!), steps: steps)
            }
        }
        entries = out
        self.problem = problem
        self.viewDirectory = view
    }

    /// Where these searches miss: each search directory and capability
    /// subdirectory ("dir", "sub/" or "") tried without a hit — the
    /// requester's search path up to the directory of the hit, the hit itself
    /// left out (all of it when the cache or a default directory gave the
    /// file, or nothing did). Keys as `missKey`.
    static func missesOf(_ searches: [ResolvedObject], in result: LoadResult, input: SimulationInput) -> Set<String> {
        let sim = GlibcLoaderSimulation(profile: input.profile, environment: input.environment, cache: nil, fileSystem: input.world)
        let caps = input.profile.capabilitySubdirectories
        var plans: [String: SearchPlan] = [:]
        var out = Set<String>()
        for o in searches where !o.needed.contains("/") && o.origin != .loaded && o.origin != .absolute {
            // A search that consults ld.so.cache reads it when its load has not (ld.so reads it once per load).
            if o.attempts.contains(where: { $0.origin == .cache }) { out.insert(cacheKey(o.group)) }
            guard let index = result.loaded.firstIndex(where: { $0.path == o.neededBy }) else { continue }
            let plan = plans[o.neededBy] ?? sim.searchPlan(forDependenciesOf: index, in: result)
            plans[o.neededBy] = plan
            var hit: (dir: String, sub: String)? = nil
            if let a = o.attempts.last, a.origin != .cache {
                switch a.outcome {
                case .found, .sameFileAsLoaded: hit = (searchDirectory(of: a), a.subdirectory)
                default: break
                }
            }
            entries: for e in plan.allEntries {
                let d = LoaderWorld.trimmedPath(e.directory)
                for cap in caps {
                    if let hit, hit.dir == d, hit.sub == cap { break entries }
                    out.insert(missKey(d, cap))
                }
            }
        }
        return out
    }

    static func missKey(_ dir: String, _ sub: String) -> String { dir + "\u{0}" + sub }
    static func cacheKey(_ group: Int) -> String { "\u{0}cache\u{0}\(group)" }

    /// The search directory of a candidate: "dir/sub/name" → "dir".
    static func searchDirectory(of a: SearchAttempt) -> String {
        var dir = directory(ofCandidate: a.path)
        if dir.isEmpty && a.path.hasPrefix("/") { dir = "/" }
        let sub = LoaderWorld.trimmedPath(a.subdirectory)
        guard !a.subdirectory.isEmpty, dir.hasSuffix("/" + sub) else { return dir }
        return String(dir.dropLast(sub.count + 1))
    }

    /// The steps of a search of the fixed program, from the simulation's
    /// attempts: every call before the one that finds the file, then the
    /// answer. nil when the search does not end at a file.
    ///
    /// ld.so learns from the first miss in a directory (or in one of its hwcaps
    /// subdirectories) whether it exists, and does not ask again; lookups the
    /// audit library makes teach ld.so nothing. So where a search the what-if
    /// leaves to ld.so misses in the same place (`missedElsewhere`, keys of
    /// `missKey`), ld.so makes that first miss and stat itself, and the steps
    /// leave them out; so with ld.so.cache, read once per load (`group`) by
    /// whichever search consults it first.
    static func steps(_ attempts: [SearchAttempt], group: Int, missedElsewhere: Set<String>, world: LoaderWorld) -> [Step]? {
        var steps: [Step] = []
        for a in attempts {
            switch a.outcome {
            case .found, .sameFileAsLoaded:
                steps.append(.found(a.origin))
                return steps
            case .readCache:
                if a.cost.openat > 0 && !missedElsewhere.contains(cacheKey(group)) { steps.append(.readCache(a.path)) }
            case .missing, .wrongClass, .wrongMachine:
                // open_path's stat of the candidate's directory ("dir/subdir" without the slash before the name).
                let probed = Self.directory(ofCandidate: a.path)
                if a.cost.statPath > 0 && missedElsewhere.contains(missKey(searchDirectory(of: a), a.subdirectory)) {
                    // ld.so's own search makes this directory's first miss and stat: a subdirectory (or directory)
                    // found missing is not tried again, one that exists is, by every search.
                    if world.stat(probed) == .directory && a.cost.openat > 0 { steps.append(.open(a.path, a.origin)) }
                    continue
                }
                if a.cost.openat > 0 { steps.append(.open(a.path, a.origin)) }
                if a.cost.statPath > 0 { steps.append(.stat(probed)) }
            case .rejected, .readPathFile:
                return nil
            case .skippedMissingDirectory, .notInCache, .cacheEntryIgnoredByNodeflib:
                break
            }
        }
        return nil
    }

    /// The path ld.so stats after a miss (open_path: the candidate cut at the
    /// slash before the name): "dir/sub/name" → "dir/sub", "/name" → "".
    static func directory(ofCandidate path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "" }
        return String(path[..<slash])
    }

    /// The file the audit library reads (audit-lib/README.md, "what-if"):
    /// "LPWHATIF2\0", the program names each ending in NUL, an empty name,
    /// then per entry requester, name and path each ending in NUL ("*" as
    /// the requester: any object), its steps each ending in NUL, and an
    /// empty step. A step is its operation ("o", "s", "c", "h"), the
    /// la_objsearch flag of its origin in two hex digits, then its path.
    public func encoded() -> [UInt8] {
        var bytes = Array("LPWHATIF2".utf8) + [0]
        for n in programNames where !n.isEmpty { bytes += Array(n.utf8) + [0] }
        bytes.append(0)
        for e in entries {
            bytes += Array((e.requester ?? "*").utf8) + [0]
            bytes += Array(e.name.utf8) + [0]
            bytes += Array(e.path.utf8) + [0]
            for step in e.steps { bytes += Self.encode(step) + [0] }
            bytes.append(0)
        }
        return bytes
    }

    static func encode(_ step: Step) -> [UInt8] {
        func flag(_ origin: LookupOrigin?) -> String {
            let raw: UInt16 = switch origin {
            case .ldLibraryPath: AuditSearchFlag.libpath.rawValue
            case .rpath, .runpath, .rpathOrRunpath: AuditSearchFlag.runpath.rawValue
            case .cache: AuditSearchFlag.config.rawValue
            case .defaultPath: AuditSearchFlag.defaultDirs.rawValue
            default: 0
            }
            let hex = Array("0123456789abcdef")
            return String([hex[Int(raw >> 4) & 15], hex[Int(raw) & 15]])
        }
        let text = switch step {
        case .open(let path, let origin): "o" + flag(origin) + path
        case .stat(let path): "s00" + path
        case .readCache(let path): "c00" + path
        case .found(let origin): "h" + flag(origin)
        }
        return Array(text.utf8)
    }
}
