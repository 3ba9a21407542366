import TraceFormat
/// Everything one simulated start-up needs: the world, the program, the
/// loader's profile and environment, the caches and the dlopens to replay.
public struct SimulationInput: Sendable {
    public var world: LoaderWorld
    public var program: String
    public var profile: GlibcProfile
    public var environment: LoaderEnvironment
    /// /etc/ld.so.cache as the run saw it (nil: absent).
    public var cache: LDSOCache?
    public var programCache: ProgramCache?
    public var dlopens: [DlopenRequest]
    /// Keep every lookup's attempts in the result (off for a baseline).
    public var keepAttempts = true

    public init(world: LoaderWorld, program: String, profile: GlibcProfile, environment: LoaderEnvironment,
                cache: LDSOCache?, programCache: ProgramCache? = nil, dlopens: [DlopenRequest] = []) {
        self.world = world; self.program = program; self.profile = profile; self.environment = environment
        self.cache = cache; self.programCache = programCache; self.dlopens = dlopens
    }

    /// The one glibc simulation on this world; nil when the world has no ELF
    /// facts for the program.
    public func run() -> LoadResult? {
        guard let elf = try? world.readELF(program) else { return nil }
        var sim = GlibcLoaderSimulation(profile: profile, environment: environment, cache: cache, fileSystem: world)
        sim.programCache = programCache
        sim.keepAttempts = keepAttempts
        // The report prices what ld.so does: nothing after a fatal failure.
        sim.stopAtFailure = true
        return sim.run(program: elf, dlopens: dlopens)
    }
}

/// A fix as a change of the loader's world (docs/cost-model.md, section 4).
/// Each takes the world and what the loader did in it (`baseline`, the same
/// simulation's result) and gives the world after the fix; the simulation then
/// tells what the start-up would do. The same transformation is what
/// `--what-if` tries and `loadprobe fix` writes.
public enum WorldTransform: Sendable, Hashable {
    /// The program's DT_NEEDED replaced by the absolute paths of every library
    /// the start-up loads, in load order (the paper's Shrinkwrap,
    /// fzakaria/shrinkwrap); with `liftDlopen`, the dlopen'ed ones too.
    /// Libraries are untouched. Exactly what `loadprobe fix shrinkwrap` writes
    /// (`ShrinkwrapPlan`, names that are not sonames included).
    case shrinkwrap(liftDlopen: Bool)
    /// Every object's DT_NEEDED that its RPATH/RUNPATH resolved made that
    /// absolute path (Spack's `shared_linking: bind`, which binds what its
    /// install tree provides); system libraries keep their names; RPATH/RUNPATH kept.
    case bind
    /// The program's RPATH/RUNPATH replaced by one directory of symlinks to
    /// every library the run found through an RPATH or RUNPATH (a Spack/Nix
    /// view; one link per name it was asked for, file name and soname);
    /// libraries keep their own RPATH/RUNPATH.
    case view(directory: String)
    /// A per-program loader cache at `path` (Guix-style: the program's
    /// `../etc/ld.so.cache`) listing every name the run resolved.
    case loaderCache(path: String)

    public func apply(to input: SimulationInput, baseline: LoadResult) -> SimulationInput {
        var out = input
        let programPath = input.world.resolve(input.program) ?? input.program
        func edit(_ path: String, _ change: (inout ELFFile) -> Void) {
            guard let real = out.world.resolve(path), var file = out.world.files[real], var elf = file.elf else { return }
            change(&elf)
            file.elf = elf
            out.world.addFile(real, file)
        }
        switch self {
        case .shrinkwrap(let liftDlopen):
            let plan = ShrinkwrapPlan(load: baseline, liftDlopen: liftDlopen)
            edit(programPath) { plan.apply(to: &$0) }
        case .bind:
            var resolved: [String: [String: String]] = [:]
            for r in BindPlan(load: baseline).rewrites {
                let by = r.object == input.program ? programPath : (out.world.resolve(r.object) ?? r.object)
                resolved[by, default: [:]][r.name] = r.path
            }
            for (object, names) in resolved {
                edit(object) { elf in elf.needed = elf.needed.map { names[$0] ?? $0 } }
            }
        case .view(let directory):
            let plan = ViewPlan(load: baseline, directory: LoaderWorld.trimmed(directory))
            out.world.setDirectory(plan.directory, exists: true)
            for (name, target) in plan.links {
                let link = LoaderPath.join(plan.directory, name)
                if out.world.files[link] == nil && out.world.symlinks[link] == nil {
                    out.world.addSymlink(link, target: target)
                }
            }
            edit(programPath) { plan.apply(to: &$0) }
        case .loaderCache:
            var resolution: [(name: String, path: String)] = []
            for o in baseline.objects where o.failure == nil {
                if let p = o.path { resolution.append((o.needed, p)) }
            }
            out = apply(to: input, resolution: resolution)
        }
        out.keepAttempts = true
        return out
    }

    /// The loader-cache world from a resolution alone (each name and the path
    /// it resolved to, first one kept), as ldconfig writes a cache from what
    /// it finds: the recorded run's, or the baseline's.
    public func apply(to input: SimulationInput, resolution: [(name: String, path: String)]) -> SimulationInput {
        guard case .loaderCache(let path) = self else { return input }
        var out = input
        var entries: [String: String] = [:]
        for (name, p) in resolution where !name.contains("/") && entries[name] == nil { entries[name] = p }
        out.world.addFile(path, LoaderWorld.File(id: out.world.newFileID(), elf: nil))
        out.programCache = ProgramCache(path: path, entries: entries)
        out.keepAttempts = true
        return out
    }
}

extension WorldTransform {
    /// Where the view scenario puts its directory when not told: "view" beside
    /// the program's first RPATH/RUNPATH directory (a store's or prefix's lib/
    /// gives its parent), else beside the program's own directory.
    public static func defaultViewDirectory(input: SimulationInput, baseline: LoadResult) -> String {
        let program = input.world.resolve(input.program) ?? input.program
        let prefix = LoaderPath.directory(LoaderPath.directory(program))
        let plan = GlibcLoaderSimulation(profile: input.profile, environment: input.environment, cache: nil,
                                         fileSystem: input.world).searchPlan(forDependenciesOf: 0, in: baseline)
        let first = plan.entries.first { $0.origin == .rpath || $0.origin == .runpath }?.directory
        let base = first.map { LoaderPath.directory(LoaderWorld.trimmedPath($0)) } ?? prefix
        let dir = LoaderPath.join(base, "view")
        // A relative RPATH entry is relative to the working directory: the view's place is absolute.
        return dir.hasPrefix("/") ? dir : LoaderPath.join(input.world.workingDirectory, dir)
    }
}
