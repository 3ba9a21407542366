import TraceFormat
/// glibc's ld.so, simulated from the ELF files and the file system: the order in
/// which it processes DT_NEEDED entries (breadth first), the search for each name
/// (`_dl_map_object` in elf/dl-load.c) and the system calls each step costs.
///
/// Rules simulated, with the glibc versions that have them (see docs/explain.md):
/// RPATH of the loader and its loaders up to the program, unless the loader has
/// RUNPATH; LD_LIBRARY_PATH; the loader's own RUNPATH; ld.so.cache (skipping
/// system-directory entries under DF_1_NODEFLIB); the default directories (not
/// under NODEFLIB); $ORIGIN, $LIB, $PLATFORM; glibc-hwcaps subdirectories (≥ 2.33)
/// and the legacy tls/platform/hwcap subdirectories (< 2.37) in every directory;
/// the per-directory existence cache with its stat; a path list dropped when none
/// of its directories exists; wrong-class and wrong-machine files skipped; names
/// and sonames already loaded reused; a file already loaded (same device and
/// inode) reused.
public struct GlibcLoaderSimulation: Sendable {
    public var profile: GlibcProfile
    public var environment: LoaderEnvironment
    /// nil when /etc/ld.so.cache is absent or unreadable (glibc then skips it).
    public var cache: LDSOCache?
    public var fileSystem: any LoaderFileSystem
    /// A per-program loader cache (the loader-cache scenario): consulted after
    /// the RPATH chain and LD_LIBRARY_PATH, before RUNPATH, in place of
    /// /etc/ld.so.cache. nil: glibc as released.
    public var programCache: ProgramCache?
    /// false: the result's lookups keep their cost but not their attempts (a
    /// baseline that only needs what resolved where, and the call count).
    public var keepAttempts = true
    /// Stop where ld.so stops: nothing is looked up after the start-up's first
    /// failure (the process exits; `LoadResult.predicted` ends there too), and a
    /// dlopen stops at its first failure. false (explain): go on, so that every
    /// missing library is named.
    public var stopAtFailure = false

    public init(profile: GlibcProfile, environment: LoaderEnvironment, cache: LDSOCache?,
                fileSystem: any LoaderFileSystem = HostFileSystem()) {
        self.profile = profile
        self.environment = environment
        self.cache = cache
        self.fileSystem = fileSystem
    }

    /// The host's loader, cache and environment.
    public static func host(environment: LoaderEnvironment = .current()) -> GlibcLoaderSimulation {
        let fs = HostFileSystem()
        let profile = GlibcProfile.host(fileSystem: fs)
        return GlibcLoaderSimulation(profile: profile, environment: environment,
                                     cache: LDSOCache.load(path: profile.cachePath, fileSystem: fs), fileSystem: fs)
    }

    /// Simulates the start-up of `program` (already read from `program.path`),
    /// then each dlopen in `dlopens`, in order (their lookups are tagged with
    /// their group: 1 for the first).
    public func run(program: ELFFile, dlopens: [DlopenRequest] = []) -> LoadResult {
        let engine = GlibcEngine(simulation: self, program: program)
        return engine.run(dlopens: dlopens)
    }

    /// The directories glibc searches, in order, for the dependencies of the object
    /// at `index` of `load.loaded` (without the existence cache, which only skips):
    /// the same steps `_dl_map_object` takes in the simulation (`GlibcEngine.searchSteps`).
    public func searchPlan(forDependenciesOf index: Int, in load: LoadResult) -> SearchPlan {
        var plan = SearchPlan()
        guard load.loaded.indices.contains(index) else { return plan }
        let engine = GlibcEngine(simulation: self, program: load.program)
        engine.seed(load)
        plan.noDefaultLib = load.loaded[index].elf?.noDefaultLib ?? false
        for step in engine.searchSteps(loader: index) {
            guard case .directories(let dirs, let origin, let owner, _) = step else { continue }
            let entries = dirs.map { SearchPlan.Entry(directory: $0, origin: origin, owner: owner) }
            if origin == .defaultPath { plan.defaultEntries += entries } else { plan.entries += entries }
        }
        return plan
    }

    /// Where the search of `plan` finds `name` with nothing loaded: its
    /// directories (every capability subdirectory), ld.so.cache, the default
    /// directories, in glibc's order; nil when nowhere.
    public func locate(_ name: String, plan: SearchPlan) -> (path: String, origin: LookupOrigin)? {
        let caps = profile.capabilitySubdirectories
        func accepts(_ path: String) -> Bool {
            guard case .opened(_, let header, nil) = fileSystem.open(path) else { return false }
            return LoaderHeaderCheck.glibc(header: header, fileClass: profile.fileClass, machine: profile.machine) == .accepted
        }
        for entry in plan.entries {
            for cap in caps where accepts(entry.directory + cap + name) { return (entry.directory + cap + name, entry.origin) }
        }
        if let cached = cache?.lookup(name, profile: profile),
           !(plan.noDefaultLib && profile.systemDirectories.contains { cached.path.hasPrefix($0) }), accepts(cached.path) {
            return (cached.path, .cache)
        }
        for entry in plan.defaultEntries {
            for cap in caps where accepts(entry.directory + cap + name) { return (entry.directory + cap + name, entry.origin) }
        }
        return nil
    }
}

/// A dlopen the program made: the name it passed and the object whose code
/// called it (whose RPATH/RUNPATH the search uses; nil: the program).
public struct DlopenRequest: Sendable, Hashable {
    public var name: String
    public var caller: String?
    public init(name: String, caller: String?) { self.name = name; self.caller = caller }
}

/// A per-program loader cache: the file read once per process, and the path
/// each name resolves to.
public struct ProgramCache: Sendable, Hashable {
    public var path: String
    public var entries: [String: String]
    public init(path: String, entries: [String: String]) { self.path = path; self.entries = entries }
}

/// The ordered directories of one object's dependency search.
public struct SearchPlan: Sendable, Hashable {
    public struct Entry: Sendable, Hashable {
        public var directory: String
        public var origin: LookupOrigin
        public var owner: String?
    }
    /// RPATH chain, LD_LIBRARY_PATH and RUNPATH, in search order (before the cache).
    public var entries: [Entry] = []
    /// The default directories (after the cache); empty under DF_1_NODEFLIB.
    public var defaultEntries: [Entry] = []
    public var noDefaultLib = false

    public var allEntries: [Entry] { entries + defaultEntries }
}

/// One run's mutable state: the directory-status cache, the loaded objects and
/// their decomposed path lists. Lives only inside `GlibcLoaderSimulation.run`.
final class GlibcEngine {
    enum DirState { case unknown, existing, nonexisting }
    enum PathList { case disabled, dirs([String]) }

    let sim: GlibcLoaderSimulation
    let fs: any LoaderFileSystem
    let profile: GlibcProfile
    let caps: [String]
    let program: ELFFile

    /// glibc's r_search_path_elem status: per directory, one slot per capability
    /// subdirectory, in `statuses` from the directory's `dirSlot`.
    var dirSlot: [String: Int] = [:]
    var statuses: [DirState] = []
    var loaded: [LoadedObject] = []
    var origins: [Int: String?] = [:]
    var rpathLists: [Int: PathList] = [:]
    var runpathLists: [Int: PathList] = [:]
    var envList: PathList = .disabled
    var cacheRead = false
    var objects: [ResolvedObject] = []
    var total = SyscallCounts()
    var predicted = SyscallCounts()
    var failure: StartupFailure?
    var depth: [Int: Int] = [:]
    var elfCache: [String: Result<ELFFile, ELFReadError>] = [:]
    let mainIndex = 0
    /// The load group being simulated: 0 the start-up, n the n-th dlopen.
    var group = 0
    var programCacheRead = false
    var reserved: Set<Int> = []
    /// A lookup of the load group being simulated failed.
    var groupFailed = false
    /// The kind of failure the last recorded lookup had.
    var lastFailureKind: StartupFailure.Kind?
    /// ld.so would stop here (`GlibcLoaderSimulation.stopAtFailure`): the
    /// start-up failed, or the dlopen being simulated did.
    var stopped: Bool { sim.stopAtFailure && (group == 0 ? failure != nil : groupFailed) }
    /// Name, path or soname → the first loaded object answering to it.
    var matchIndex: [String: Int] = [:]
    var fileIndex: [FileID: Int] = [:]

    init(simulation: GlibcLoaderSimulation, program: ELFFile) {
        self.sim = simulation
        self.fs = simulation.fileSystem
        self.profile = simulation.profile
        self.caps = simulation.profile.capabilitySubdirectories
        self.program = program
    }

    // MARK: Start-up

    func run(dlopens: [DlopenRequest]) -> LoadResult {
        let interpreter = program.interpreter ?? profile.interpreterPath
        var programObject = LoadedObject(path: program.path, role: .program, names: [], soname: program.soname,
                                         fileID: nil, loader: nil, elf: program)
        programObject.names = []
        append(programObject)
        depth[mainIndex] = 0
        // _dl_get_origin: the directory of /proc/self/exe, which the kernel gives without "." or "..".
        let mainPath = LoaderPath.withoutDots(fs.realPath(program.path) ?? program.path)
        origins[mainIndex] = LoaderPath.glibcOrigin(of: mainPath, workingDirectory: sim.environment.workingDirectory)

        // rtld's map answers to the PT_INTERP string and to its soname.
        var interpreterNames = [interpreter]
        var interpreterSoname = profile.interpreterSoname
        if let elf = try? fs.readELF(interpreter), let soname = elf.soname { interpreterSoname = soname }
        if !interpreterNames.contains(interpreterSoname) { interpreterNames.append(interpreterSoname) }
        append(LoadedObject(path: interpreter, role: .interpreter, names: interpreterNames,
                                   soname: interpreterSoname, fileID: nil, loader: nil, elf: nil))
        append(LoadedObject(path: "linux-vdso.so.1", role: .vdso, names: ["linux-vdso.so.1"],
                                   soname: "linux-vdso.so.1", fileID: nil, loader: nil, elf: nil))

        for dir in profile.systemDirectories { _ = slot(dir) }
        // _dl_init_paths: the program's RUNPATH (which hides its RPATH), then LD_LIBRARY_PATH.
        if program.runpath != nil {
            rpathLists[mainIndex] = .disabled
            _ = pathList(for: mainIndex, runpath: true)
        } else {
            runpathLists[mainIndex] = .disabled
            _ = pathList(for: mainIndex, runpath: false)
        }
        if !sim.environment.secure, let llp = sim.environment.ldLibraryPath, !llp.isEmpty {
            let dirs = decompose(llp, separators: ":;", origin: origins[mainIndex] ?? nil)
            envList = dirs.isEmpty ? .disabled : .dirs(dirs)
        }

        var queue: [Int] = [mainIndex]
        reserved = [mainIndex]
        if !sim.environment.secure, let preload = sim.environment.ldPreload {
            for name in preload.split(whereSeparator: { $0 == " " || $0 == ":" }) where !name.isEmpty {
                if let index = mapObject(loader: mainIndex, name: String(name), neededBy: "LD_PRELOAD"), !reserved.contains(index) {
                    reserved.insert(index)
                    queue.append(index)
                }
            }
        }
        loadDependencies(queue)
        for (n, request) in dlopens.enumerated() where !(sim.stopAtFailure && failure != nil) {
            group = n + 1
            groupFailed = false
            // ld.so unmaps its cache when a load is done (_dl_unload_cache, at the end of the start-up
            // and of each dlopen): a dlopen that consults it reads it again.
            cacheRead = false
            programCacheRead = false
            dlopen(request)
        }
        return LoadResult(flavor: .glibc(profile.version), program: program, interpreter: interpreter,
                          objects: objects, loaded: loaded, total: total, predicted: predicted, failure: failure,
                          environment: sim.environment, glibcProfile: profile)
    }

    /// _dl_open: the name searched for the calling object, then the new
    /// objects' dependencies breadth first.
    func dlopen(_ request: DlopenRequest) {
        let caller = request.caller.flatMap { c in
            matchIndex[c] ?? (fs.realPath(c) == fs.realPath(program.path) ? mainIndex : nil)
        } ?? mainIndex
        guard let name = request.name.contains("$") ? expandNeeded(request.name, object: caller) : request.name,
              let index = mapObject(loader: caller, name: name, neededBy: loaded[caller].path),
              !reserved.contains(index) else { return }
        reserved.insert(index)
        if depth[index] == nil { depth[index] = 1 }
        loadDependencies([index])
    }

    /// _dl_map_object_deps: the DT_NEEDED of the queued objects, breadth first.
    func loadDependencies(_ start: [Int]) {
        var queue = start
        var position = 0
        while position < queue.count && !stopped {
            let index = queue[position]
            position += 1
            guard let elf = loaded[index].elf else { continue }
            // Names of this object's DT_NEEDED already searched in vain. Searched
            // again, the same name fails the same way (same world, same search
            // path; only the directories known missing are skipped), unless an
            // object loaded since answers to it: it is recorded as failing again,
            // without a search (ld.so never gets there: the first failure ends it).
            // An object listing a missing name thousands of times made explain
            // search thousands of times.
            var failedHere: [String: (object: ResolvedObject, kind: StartupFailure.Kind)] = [:]
            for raw in elf.needed where !stopped {
                guard let name = expandNeeded(raw, object: index) else {
                    record(ResolvedObject(needed: raw, neededBy: loaded[index].path, path: nil, origin: nil, originObject: nil,
                                          attempts: [], depth: (depth[index] ?? 0) + 1, loadedNewObject: false,
                                          soname: nil, failure: "empty dynamic string token substitution"),
                           failureKind: .missingLibrary)
                    continue
                }
                if let again = failedHere[name], matchIndex[name] == nil {
                    var object = again.object
                    object.attempts = []
                    record(object, failureKind: again.kind)
                    continue
                }
                let recorded = objects.count
                if let dep = mapObject(loader: index, name: name, neededBy: loaded[index].path) {
                    if !reserved.contains(dep) {
                        reserved.insert(dep)
                        queue.append(dep)
                        if depth[dep] == nil { depth[dep] = (depth[index] ?? 0) + 1 }
                    }
                } else if objects.count == recorded + 1, let failed = objects.last, failed.path == nil, let kind = lastFailureKind {
                    failedHere[name] = (failed, kind)
                }
            }
        }
    }

    // MARK: One DT_NEEDED name (_dl_map_object)

    /// One name to map: who needs it, and the depth its object gets.
    struct MapRequest {
        let name: String
        let loader: Int
        let neededBy: String
        let depth: Int
    }

    /// What a search for one name has gathered: the attempts so far, and the
    /// file found, the error that ends the search, or a wrong-class file skipped.
    struct NameSearch {
        var attempts: [SearchAttempt] = []
        var hit: Hit?
        var fatal: String?
        var foundOtherClass = false

        /// A file was found, or the search failed for good: no further step runs.
        var isOver: Bool { hit != nil || fatal != nil }

        /// open_verify's verdict on `path`, reached through `origin`.
        mutating func take(_ verdict: Verdict, path: String, origin: LookupOrigin) {
            switch verdict {
            case .accepted(let id): hit = (path, id, origin, nil)
            case .fatal(let reason): fatal = reason
            case .skip(let otherClass): foundOtherClass = foundOtherClass || otherClass
            }
        }
    }

    /// Resolves `name` for the object at `loader`; returns the index of the object
    /// that serves it, nil when none does.
    func mapObject(loader: Int, name: String, neededBy: String) -> Int? {
        let request = MapRequest(name: name, loader: loader, neededBy: neededBy, depth: (depth[loader] ?? 0) + 1)
        if let index = reuseByName(request) { return index }

        var search = NameSearch()
        if name.contains("/") {
            openNamedPath(request, search: &search)
        } else {
            searchDirectories(request, search: &search)
        }

        guard let hit = search.hit else {
            recordMiss(request, search: search)
            return nil
        }
        // Skipped directories explain a miss; on a hit they are noise.
        search.attempts.removeAll { $0.outcome == .skippedMissingDirectory }
        return mapFile(hit, request: request, attempts: search.attempts)
    }

    /// Already loaded under this name, or with this soname: the first such
    /// object in load order. (_dl_name_match_p: the object's name, its path
    /// and "" for the program, or any name it was loaded under.)
    func reuseByName(_ request: MapRequest) -> Int? {
        let name = request.name
        guard let index = matchIndex[name] else { return nil }
        let object = loaded[index]
        if !object.names.contains(name) && !(object.role != .program && object.path == name) {
            addName(name, to: index)  // matched by soname: the name is remembered
        }
        record(reuse(index: index, name: name, neededBy: request.neededBy, depth: request.depth))
        return index
    }

    /// A name with a slash: the one path it names, its tokens expanded.
    func openNamedPath(_ request: MapRequest, search: inout NameSearch) {
        let path = expand(request.name, origin: origins[request.loader] ?? nil) ?? request.name
        let (verdict, attempt) = openVerify(path, origin: .absolute, originObject: nil)
        search.attempts.append(attempt)
        search.take(verdict, path: path, origin: .absolute)
    }

    /// A name without a slash: the steps of `searchSteps`, in order, until one
    /// finds the file or fails for good.
    func searchDirectories(_ request: MapRequest, search: inout NameSearch) {
        for step in searchSteps(loader: request.loader) {
            guard !search.isOver else { break }
            switch step {
            case .directories(let dirs, let origin, let owner, let list):
                searchPathList(request.name, dirs: dirs, origin: origin, owner: owner, list: list, search: &search)
            case .programCache(let cache):
                lookupProgramCache(cache, name: request.name, search: &search)
            case .systemCache(let nodeflib):
                lookupCache(name: request.name, nodeflib: nodeflib, search: &search)
            }
        }
    }

    /// open_path over one path list; a list none of whose directories exists is
    /// disabled for the rest of the run.
    func searchPathList(_ name: String, dirs: [String], origin: LookupOrigin, owner: String?,
                        list: (index: Int, runpath: Bool)?, search: inout NameSearch) {
        let outcome = openPath(name: name, dirs: dirs, origin: origin, owner: owner, attempts: &search.attempts)
        search.foundOtherClass = search.foundOtherClass || outcome.otherClass
        switch outcome.result {
        case .found(let path, let id): search.hit = (path, id, origin, owner)
        case .fatal(let reason): search.fatal = reason
        case .notFound(let anyDirectoryExists):
            if !anyDirectoryExists, let list {
                if list.runpath { runpathLists[list.index] = .disabled } else { rpathLists[list.index] = .disabled }
            }
        }
    }

    /// A name found nowhere: recorded with ld.so's message for the search's outcome.
    func recordMiss(_ request: MapRequest, search: NameSearch) {
        let fatal = search.fatal, foundOtherClass = search.foundOtherClass
        let message = fatal ?? (foundOtherClass ? "wrong ELF class: ELFCLASS32" : "cannot open shared object file: No such file or directory")
        record(ResolvedObject(needed: request.name, neededBy: request.neededBy, path: nil, origin: nil, originObject: nil,
                              attempts: search.attempts, depth: request.depth, loadedNewObject: false, soname: nil,
                              failure: message),
               failureKind: fatal != nil ? .rejectedLibrary : (foundOtherClass ? .wrongClass : .missingLibrary))
    }

    /// _dl_map_object_from_fd: fstat, then compare with every loaded file.
    func mapFile(_ hit: Hit, request: MapRequest, attempts: [SearchAttempt]) -> Int {
        var attempts = attempts
        if let last = attempts.indices.last { attempts[last].cost.fstat += 1 }
        if let index = fileIndex[hit.id] {
            if let last = attempts.indices.last { attempts[last].outcome = .sameFileAsLoaded(loaded[index].path) }
            if !loaded[index].names.contains(request.name) { addName(request.name, to: index) }
            record(ResolvedObject(needed: request.name, neededBy: request.neededBy, path: loaded[index].path,
                                  origin: hit.origin, originObject: hit.originObject, attempts: attempts,
                                  depth: request.depth, loadedNewObject: false, soname: loaded[index].soname,
                                  failure: nil))
            return index
        }
        return appendLibrary(hit, request: request, attempts: attempts)
    }

    /// A file not loaded yet: a new object in the link map, whose ELF facts
    /// (or why they cannot be read) come with it.
    func appendLibrary(_ hit: Hit, request: MapRequest, attempts: [SearchAttempt]) -> Int {
        let elf: ELFFile?
        var problem: String?
        switch readELF(hit.path) {
        case .success(let file): elf = file
        case .failure(let error): elf = nil; problem = error.reasonText
        }
        let index = loaded.count
        append(LoadedObject(path: hit.path, role: .library, names: [request.name], soname: elf?.soname,
                            fileID: hit.id, loader: request.loader, elf: elf))
        origins[index] = LoaderPath.glibcOrigin(of: hit.path, workingDirectory: sim.environment.workingDirectory)
        depth[index] = request.depth
        record(ResolvedObject(needed: request.name, neededBy: request.neededBy, path: hit.path, origin: hit.origin,
                              originObject: hit.originObject, attempts: attempts, depth: request.depth,
                              loadedNewObject: true, soname: elf?.soname, failure: problem),
               failureKind: problem != nil ? .rejectedLibrary : nil)
        return index
    }

    /// Adds an object to the link map, with its names, path and soname indexed
    /// for the name match (the first object in load order wins).
    func append(_ object: LoadedObject) {
        let index = loaded.count
        loaded.append(object)
        var keys = object.names
        if object.role != .program { keys.append(object.path) }
        if let soname = object.soname { keys.append(soname) }
        for k in keys where matchIndex[k] == nil { matchIndex[k] = index }
        if let id = object.fileID, fileIndex[id] == nil { fileIndex[id] = index }
    }

    func addName(_ name: String, to index: Int) {
        loaded[index].names.append(name)
        if let other = matchIndex[name], other <= index { return }
        matchIndex[name] = index
    }

    func reuse(index: Int, name: String, neededBy: String, depth: Int) -> ResolvedObject {
        ResolvedObject(needed: name, neededBy: neededBy, path: loaded[index].path, origin: .loaded, originObject: nil,
                       attempts: [], depth: depth, loadedNewObject: false, soname: loaded[index].soname, failure: nil)
    }

    func record(_ object: ResolvedObject, failureKind: StartupFailure.Kind? = nil) {
        var object = object
        object.group = group
        let cost = object.cost
        if !sim.keepAttempts { object.attempts = [] }
        total += cost
        if failure == nil { predicted += cost }
        if failureKind != nil && object.failure != nil { groupFailed = true }
        lastFailureKind = object.failure != nil ? failureKind : nil
        if failure == nil, group == 0, let failureKind, let message = object.failure {
            failure = StartupFailure(kind: failureKind, object: object.neededBy,
                                     message: "\(object.needed): \(message)")
        }
        objects.append(object)
    }

    func readELF(_ path: String) -> Result<ELFFile, ELFReadError> {
        if let cached = elfCache[path] { return cached }
        let result: Result<ELFFile, ELFReadError>
        do throws(ELFReadError) { result = .success(try fs.readELF(path)) } catch { result = .failure(error) }
        elfCache[path] = result
        return result
    }

    // MARK: The search order

    /// One step of a search for a name without a slash.
    enum SearchStep {
        /// A path list; `list` names the object's RPATH or RUNPATH list that a
        /// search finding none of its directories disables.
        case directories([String], LookupOrigin, owner: String?, list: (index: Int, runpath: Bool)?)
        case programCache(ProgramCache)
        case systemCache(nodeflib: Bool)
    }

    /// glibc's order (`_dl_map_object`, elf/dl-load.c) for a name the object at
    /// `loader` needs: the RPATH of the loader and of each object up its
    /// needed-by chain, then the program's, unless the loader has a RUNPATH;
    /// LD_LIBRARY_PATH; the loader's RUNPATH; ld.so.cache unless a per-program
    /// cache replaces it (read before RUNPATH); the default directories, unless
    /// DF_1_NODEFLIB. This is the only copy of the order: the simulation, the
    /// search plans and the hazards use it.
    func searchSteps(loader: Int) -> [SearchStep] {
        var steps: [SearchStep] = []
        let loaderObject = loaded[loader]
        if loaderObject.elf?.runpath == nil {
            var didMain = false
            var current: Int? = loader
            while let l = current {
                if case .dirs(let dirs) = pathList(for: l, runpath: false) {
                    steps.append(.directories(dirs, .rpath, owner: loaded[l].path, list: (l, false)))
                    didMain = didMain || l == mainIndex
                }
                current = loaded[l].loader
            }
            if !didMain, case .dirs(let dirs) = pathList(for: mainIndex, runpath: false) {
                steps.append(.directories(dirs, .rpath, owner: loaded[mainIndex].path, list: (mainIndex, false)))
            }
        }
        if case .dirs(let dirs) = envList { steps.append(.directories(dirs, .ldLibraryPath, owner: nil, list: nil)) }
        if let cache = sim.programCache { steps.append(.programCache(cache)) }
        if case .dirs(let dirs) = pathList(for: loader, runpath: true) {
            steps.append(.directories(dirs, .runpath, owner: loaderObject.path, list: (loader, true)))
        }
        let nodeflib = loaderObject.elf?.noDefaultLib ?? false
        if sim.programCache == nil { steps.append(.systemCache(nodeflib: nodeflib)) }
        if !nodeflib { steps.append(.directories(profile.systemDirectories, .defaultPath, owner: nil, list: nil)) }
        return steps
    }

    /// The link map of a finished load, for questions about its search order.
    func seed(_ load: LoadResult) {
        loaded = load.loaded
        for (i, object) in loaded.enumerated() {
            let path = object.role == .program ? (fs.realPath(object.path) ?? object.path) : object.path
            origins[i] = LoaderPath.glibcOrigin(of: path, workingDirectory: sim.environment.workingDirectory)
        }
        if !sim.environment.secure, let llp = sim.environment.ldLibraryPath, !llp.isEmpty {
            let dirs = decompose(llp, separators: ":;", origin: origins[mainIndex] ?? nil)
            envList = dirs.isEmpty ? .disabled : .dirs(dirs)
        }
        if loaded.indices.contains(mainIndex), loaded[mainIndex].elf?.runpath != nil { rpathLists[mainIndex] = .disabled }
    }

    // MARK: ld.so.cache

    typealias Hit = (path: String, id: FileID, origin: LookupOrigin, originObject: String?)

    /// _dl_sysdep_read_whole_file of a cache file: openat, then fstat only when the open worked.
    func readCacheFile(_ path: String, attempts: inout [SearchAttempt]) {
        let exists: Bool
        if case .opened = fs.open(path) { exists = true } else { exists = false }
        attempts.append(SearchAttempt(path: path, origin: .cache, outcome: .readCache,
                                      cost: SyscallCounts(openat: 1, fstat: exists ? 1 : 0)))
    }

    /// The open of the path a cache gave for a name (open_verify, LA_SER_CONFIG).
    func openCacheEntry(_ path: String, search: inout NameSearch) {
        let (verdict, attempt) = openVerify(path, origin: .cache, originObject: nil)
        search.attempts.append(attempt)
        search.take(verdict, path: path, origin: .cache)
    }

    /// The per-program cache: read at the first lookup, then the entry's path
    /// opened as a cache hit is.
    func lookupProgramCache(_ cache: ProgramCache, name: String, search: inout NameSearch) {
        if !programCacheRead {
            programCacheRead = true
            readCacheFile(cache.path, attempts: &search.attempts)
        }
        guard let path = cache.entries[name] else { return }
        openCacheEntry(path, search: &search)
    }

    func lookupCache(name: String, nodeflib: Bool, search: inout NameSearch) {
        if !cacheRead {
            cacheRead = true
            readCacheFile(profile.cachePath, attempts: &search.attempts)
        }
        guard let entry = sim.cache?.lookup(name, profile: profile) else {
            search.attempts.append(SearchAttempt(path: profile.cachePath, origin: .cache, outcome: .notInCache, cost: SyscallCounts()))
            return
        }
        if nodeflib, profile.systemDirectories.contains(where: { entry.path.hasPrefix($0) }) {
            search.attempts.append(SearchAttempt(path: entry.path, origin: .cache,
                                                 outcome: .cacheEntryIgnoredByNodeflib(entry.path), cost: SyscallCounts()))
            return
        }
        openCacheEntry(entry.path, search: &search)
    }

    // MARK: open_path

    enum Verdict { case accepted(FileID), skip(otherClass: Bool), fatal(String) }
    enum PathResult { case found(String, FileID), notFound(anyDirectoryExists: Bool), fatal(String) }

    /// open_verify: one openat, and the header checks.
    func openVerify(_ path: String, origin: LookupOrigin, originObject: String?) -> (Verdict, SearchAttempt) {
        var attempt = SearchAttempt(path: path, origin: origin, originObject: originObject,
                                    outcome: .missing(errno: ENOENT), cost: SyscallCounts(openat: 1))
        switch fs.open(path) {
        case .failed(let error):
            attempt.outcome = .missing(errno: error)
            return (.skip(otherClass: false), attempt)
        case .opened(let id, let header, let readErrno):
            if readErrno != nil {
                attempt.outcome = .rejected(reason: "cannot read file data")
                return (.fatal("cannot read file data: Is a directory"), attempt)
            }
            switch LoaderHeaderCheck.glibc(header: header, fileClass: profile.fileClass, machine: profile.machine) {
            case .accepted:
                attempt.outcome = .found
                return (.accepted(id), attempt)
            case .wrongClass:
                attempt.outcome = .wrongClass
                return (.skip(otherClass: true), attempt)
            case .wrongMachine:
                attempt.outcome = .wrongMachine
                return (.skip(otherClass: false), attempt)
            case .rejected(let reason):
                attempt.outcome = .rejected(reason: reason)
                return (.fatal(reason), attempt)
            }
        }
    }

    /// open_path: every capability subdirectory of every directory, skipping those
    /// known not to exist, and a stat of the subdirectory after the first miss in it.
    func openPath(name: String, dirs: [String], origin: LookupOrigin, owner: String?,
                  attempts: inout [SearchAttempt]) -> (result: PathResult, otherClass: Bool) {
        var any = false
        var otherClass = false
        for dir in dirs {
            let base = slot(dir)
            var hereAny = false
            var lastErrno: Int32 = ENOENT
            var allSkipped = true
            for (cnt, cap) in caps.enumerated() {
                if statuses[base + cnt] == .nonexisting { continue }
                allSkipped = false
                let path = dir + cap + name
                var (verdict, attempt) = openVerify(path, origin: origin, originObject: owner)
                attempt.subdirectory = cap
                var opened = false
                switch verdict {
                case .accepted: opened = true
                case .fatal(let reason):
                    attempts.append(attempt)
                    return (.fatal(reason), otherClass)
                case .skip(let oc):
                    otherClass = otherClass || oc
                    if case .missing(let e) = attempt.outcome { lastErrno = e } else { lastErrno = ENOENT }
                }
                if statuses[base + cnt] == .unknown {
                    if opened {
                        statuses[base + cnt] = .existing
                    } else {
                        // The subdirectory path: "dir/cap" without the slash before the name.
                        let subdirectory = String((dir + cap).dropLast())
                        attempt.cost.statPath += 1
                        switch subdirectory.isEmpty ? .failed(errno: ENOENT) : fs.stat(subdirectory) {
                        case .directory: statuses[base + cnt] = .existing
                        case .notDirectory: statuses[base + cnt] = .nonexisting
                        case .failed(let e): statuses[base + cnt] = .nonexisting; lastErrno = e
                        }
                    }
                }
                hereAny = hereAny || statuses[base + cnt] != .nonexisting
                attempts.append(attempt)
                if opened, case .accepted(let id) = verdict { return (.found(path, id), otherClass) }
            }
            if allSkipped {
                attempts.append(SearchAttempt(path: dir, origin: origin, originObject: owner,
                                              outcome: .skippedMissingDirectory, cost: SyscallCounts()))
            }
            // A directory that exists but fails with an unexpected error ends this list.
            if hereAny && lastErrno != ENOENT && lastErrno != EACCES {
                return (.notFound(anyDirectoryExists: true), otherClass)
            }
            any = any || hereAny
        }
        return (.notFound(anyDirectoryExists: any), otherClass)
    }

    // MARK: Path lists and dynamic string tokens

    /// The object's RPATH or RUNPATH list, decomposed on first use (cache_rpath).
    func pathList(for index: Int, runpath: Bool) -> PathList {
        if let existing = runpath ? runpathLists[index] : rpathLists[index] { return existing }
        let raw = runpath ? loaded[index].elf?.runpath : loaded[index].elf?.rpath
        var list = PathList.disabled
        if let raw, !raw.isEmpty {
            let dirs = decompose(raw, separators: ":", origin: origins[index] ?? nil)
            if !dirs.isEmpty { list = .dirs(dirs) }
        }
        if runpath { runpathLists[index] = list } else { rpathLists[index] = list }
        return list
    }

    /// Decomposes a path list and registers new directories in the status cache.
    func decompose(_ raw: String, separators: String, origin: String?) -> [String] {
        let result = GlibcPaths.decompose(raw, separators: separators, origin: origin, profile: profile)
        for dir in result { _ = slot(dir) }
        return result
    }

    /// The directory's first status slot, made on first sight. Relative
    /// directories are never marked missing: the working directory may change.
    func slot(_ dir: String) -> Int {
        if let s = dirSlot[dir] { return s }
        let s = statuses.count
        statuses += repeatElement(dir.hasPrefix("/") ? .unknown : .existing, count: caps.count)
        dirSlot[dir] = s
        return s
    }

    func expand(_ input: String, origin: String?) -> String? {
        GlibcPaths.expand(input, origin: origin, profile: profile)
    }

    /// expand_dst for DT_NEEDED: names with tokens are expanded; a token without a
    /// value makes the whole name empty, which ld.so reports as an error.
    func expandNeeded(_ name: String, object: Int) -> String? {
        guard name.contains("$") else { return name }
        guard let expanded = expand(name, origin: origins[object] ?? nil), !expanded.isEmpty else { return nil }
        return expanded
    }
}

/// glibc's path-list and dynamic-string-token rules, as pure functions.
public enum GlibcPaths {
    /// fillin_rpath: expand tokens, drop unexpandable entries, normalise trailing
    /// slashes, keep the first of duplicates; "" (an empty entry) is the working directory.
    public static func decompose(_ raw: String, separators: String, origin: String?, profile: GlibcProfile) -> [String] {
        var result: [String] = []
        // (A set beside the list: a path list of thousands of directories made the
        // duplicate test quadratic, as trimming thousands of trailing slashes was.)
        var seen = Set<String>()
        for component in raw.split(omittingEmptySubsequences: false, whereSeparator: { separators.contains($0) }) {
            var dir = ""
            if !component.isEmpty {
                guard let expanded = expand(String(component), origin: origin, profile: profile), !expanded.isEmpty else { continue }
                // Trailing slashes off, "/" kept; then one slash at the end.
                let bytes = expanded.utf8
                var end = bytes.endIndex
                while end > bytes.index(after: bytes.startIndex), bytes[bytes.index(before: end)] == UInt8(ascii: "/") {
                    end = bytes.index(before: end)
                }
                let trimmed = Substring(expanded.utf8[..<end])
                dir = trimmed.hasSuffix("/") ? String(trimmed) : trimmed + "/"
            }
            if seen.insert(dir).inserted { result.append(dir) }
        }
        return result
    }

    /// _dl_dst_substitute: $ORIGIN, $PLATFORM, $LIB (also in braces). nil when a
    /// known token has no value, which discards the entry.
    public static func expand(_ input: String, origin: String?, profile: GlibcProfile) -> String? {
        guard input.contains("$") else { return input }
        var result = ""
        var rest = Substring(input)
        while let dollar = rest.firstIndex(of: "$") {
            result += rest[..<dollar]
            let after = rest[rest.index(after: dollar)...]
            if let (token, length) = dynamicToken(after) {
                let value: String?
                switch token {
                case "ORIGIN": value = origin
                case "PLATFORM": value = profile.platform
                default: value = profile.libToken
                }
                guard let value else { return nil }
                result += value
                rest = after.dropFirst(length)
            } else {
                result += "$"
                rest = after
            }
        }
        return result + rest
    }

    /// is_dst: a known name, either braced or not followed by an identifier character.
    static func dynamicToken(_ text: Substring) -> (String, Int)? {
        for name in ["ORIGIN", "PLATFORM", "LIB"] {
            if text.hasPrefix("{" + name + "}") { return (name, name.count + 2) }
            if text.hasPrefix(name) {
                let next = text.dropFirst(name.count).first
                if let next, next.isASCII, next.isLetter || next.isNumber || next == "_" { continue }
                return (name, name.count)
            }
        }
        return nil
    }
}

#if canImport(Glibc)
import Glibc
#endif
