import TraceFormat
/// Finds the hazards of one simulated start-up. It re-asks the file system
/// ("would this object's own search find it?", "which other copies exist?") but
/// never changes the recorded load.
public struct HazardAnalysis {
    /// The loader the load was simulated with, for what-if questions.
    public enum Loader: Sendable {
        case glibc(GlibcLoaderSimulation)
        case musl(MuslLoaderSimulation)
    }

    public let load: LoadResult
    public let loader: Loader
    let fs: any LoaderFileSystem

    public init(load: LoadResult, loader: Loader) {
        self.load = load
        self.loader = loader
        switch loader {
        case .glibc(let sim): fs = sim.fileSystem
        case .musl(let sim): fs = sim.fileSystem
        }
    }

    /// Sonames of the C library's own parts: they define the same symbols on
    /// purpose (libm's frexp is libc's), so they are not a symbol conflict.
    static let cLibrarySonames: Set<String> = [
        "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "libutil.so.1",
        "libresolv.so.2", "libanl.so.1", "libmvec.so.1", "ld-linux-x86-64.so.2", "libc.so", "libBrokenLocale.so.1",
        "libnsl.so.1", "libcrypt.so.1",
    ]

    public func hazards() -> [Hazard] {
        var result: [Hazard] = []
        result += missingLibraries()
        result += symbolVersions()
        result += latentMissing()
        result += rpathIgnored()
        result += ldLibraryPathOverrides()
        result += shadowing()
        result += symbolConflicts()
        result += shrinkwrapSafety()
        var seen = Set<Hazard>()
        return result.filter { seen.insert($0).inserted }
    }

    // MARK: Helpers

    func index(ofObject path: String) -> Int? {
        if path == "LD_PRELOAD" { return load.loaded.firstIndex { $0.role == .program } }
        return load.loaded.firstIndex { $0.path == path }
    }

    func fileID(_ path: String) -> FileID? {
        if case .opened(let id, _, _) = fs.open(path) { return id }
        return nil
    }

    /// Same file, or different files with the same bytes (a copy is not a conflict).
    func sameContents(_ a: String, _ b: String) -> Bool {
        if let x = fileID(a), let y = fileID(b), x == y { return true }
        guard let x = fs.readBytes(a), let y = fs.readBytes(b) else { return false }
        return x == y
    }

    func accepts(_ path: String) -> Bool {
        guard case .opened(_, let header, nil) = fs.open(path) else { return false }
        switch loader {
        case .glibc(let sim):
            return LoaderHeaderCheck.glibc(header: header, fileClass: sim.profile.fileClass, machine: sim.profile.machine) == .accepted
        case .musl:
            return LoaderHeaderCheck.musl(header: header) == .accepted
        }
    }

    /// The directories searched for the dependencies of the object at `index`, in order.
    func plan(for index: Int) -> SearchPlan {
        switch loader {
        case .glibc(let sim):
            return sim.searchPlan(forDependenciesOf: index, in: load)
        case .musl(let sim):
            return sim.searchPlan(forDependenciesOf: index, in: load)
        }
    }

    /// Where the object's own search (nothing loaded yet) finds `name`.
    func locate(_ name: String, plan: SearchPlan) -> (path: String, origin: LookupOrigin)? {
        switch loader {
        case .glibc(let sim):
            return sim.locate(name, plan: plan)
        case .musl(let sim):
            return sim.locate(name, plan: plan)
        }
    }

    func describe(_ plan: SearchPlan) -> String {
        var parts: [String] = []
        var index = 0
        let entries = plan.allEntries
        while index < entries.count {
            let entry = entries[index]
            var dirs: [String] = []
            var j = index
            while j < entries.count, entries[j].origin == entry.origin, entries[j].owner == entry.owner {
                dirs.append(entries[j].directory)
                j += 1
            }
            let owner = entry.owner.map { " of \($0)" } ?? ""
            parts.append("\(entry.origin.rawValue)\(owner) [\(dirs.joined(separator: ":"))]")
            index = j
        }
        if case .glibc = loader { parts.append(plan.noDefaultLib ? "no cache or default directories (NODEFLIB)" : "ld.so.cache") }
        return parts.isEmpty ? "no directories" : parts.joined(separator: ", ")
    }

    // MARK: missing-library

    func missingLibraries() -> [Hazard] {
        var hazards: [Hazard] = []
        for object in load.objects where object.path == nil {
            var groups: [(String, Int)] = []
            var notes: [String] = []
            for attempt in object.attempts {
                let label: String
                switch attempt.origin {
                case .rpath, .runpath: label = "\(attempt.origin.rawValue) of \(attempt.originObject ?? "?")"
                case .cache: label = "ld.so.cache"
                case .defaultPath: label = "default directories"
                default: label = attempt.origin.rawValue
                }
                switch attempt.outcome {
                case .wrongClass: notes.append("\(attempt.path) is a 32-bit (ELFCLASS32) file, skipped")
                case .wrongMachine: notes.append("\(attempt.path) is for another machine, skipped")
                case .rejected(let reason): notes.append("\(attempt.path): \(reason)")
                case .notInCache: notes.append("ld.so.cache has no entry")
                case .cacheEntryIgnoredByNodeflib(let path): notes.append("cache entry \(path) ignored (DF_1_NODEFLIB)")
                case .skippedMissingDirectory: notes.append("\(attempt.path) does not exist")
                default: break
                }
                guard attempt.isTry else { continue }
                if let last = groups.last, last.0 == label {
                    groups[groups.count - 1].1 += 1
                } else {
                    groups.append((label, 1))
                }
            }
            let searched = groups.map { "\($0.0) (\($0.1) candidate\($0.1 == 1 ? "" : "s"))" }
            var message = "\(object.needed), needed by \(object.neededBy), is not found"
            if let failure = object.failure, !failure.contains("No such file") { message += " (\(failure))" }
            message += searched.isEmpty ? "; no directory to search" : "; searched " + searched.joined(separator: ", ")
            if !notes.isEmpty { message += "; " + notes.joined(separator: "; ") }
            hazards.append(Hazard(kind: .missingLibrary, message: message, objects: [object.neededBy]))
        }
        return hazards
    }

    // MARK: symbol-version

    func provider(named name: String) -> LoadedObject? {
        load.loaded.first { $0.names.contains(name) || $0.soname == name || ($0.role != .program && $0.path == name) }
    }

    func symbolVersions() -> [Hazard] {
        var hazards: [Hazard] = []
        var definitions: [String: [VersionDefinition]] = [:]
        for object in load.loaded {
            guard let elf = object.elf ?? (object.role == .program ? load.program : nil) else { continue }
            for need in elf.versionNeeds {
                guard let provider = provider(named: need.file) else { continue }
                let defs: [VersionDefinition]
                if let cached = definitions[provider.path] {
                    defs = cached
                } else {
                    let read = provider.elf ?? (try? fs.readELF(provider.path))
                    defs = read?.versionDefinitions ?? []
                    definitions[provider.path] = defs
                }
                // glibc only warns when the provider has no version information at all.
                guard !defs.isEmpty else { continue }
                let names = Set(defs.map(\.name))
                for version in need.versions where !version.isWeak && !names.contains(version.name) {
                    let newest = GlibcVersionName.newest(matching: version.name, in: defs.map(\.name))
                    let has = newest.map { ", which provides up to \($0)" } ?? ", which does not define it"
                    hazards.append(Hazard(kind: .symbolVersion,
                                          message: "\(object.path) requires \(version.name) from \(need.file) (\(provider.path))\(has): "
                                              + "version `\(version.name)' not found",
                                          objects: [object.path, provider.path]))
                }
            }
        }
        return hazards
    }

    // MARK: latent-missing

    func latentMissing() -> [Hazard] {
        var hazards: [Hazard] = []
        var firstLoader: [String: String] = [:]
        for object in load.objects where object.loadedNewObject {
            if let path = object.path, firstLoader[path] == nil { firstLoader[path] = object.neededBy }
        }
        var plans: [Int: SearchPlan] = [:]
        // Each (object, name) searched once: an object may list a name thousands
        // of times, and each search opens files.
        var searched = Set<String>()
        for object in load.objects where object.origin == .loaded {
            guard let path = object.path, let needer = index(ofObject: object.neededBy),
                  let served = load.loaded.first(where: { $0.path == path }), served.role == .library,
                  !object.needed.contains("/"), searched.insert("\(needer)\u{0}\(object.needed)").inserted else { continue }
            if case .musl = loader, MuslLoaderSimulation.isReservedName(object.needed) { continue }
            let plan = plans[needer] ?? self.plan(for: needer)
            plans[needer] = plan
            if locate(object.needed, plan: plan) == nil {
                let by = firstLoader[path] ?? "another object"
                hazards.append(Hazard(kind: .latentMissing,
                                      message: "\(object.neededBy) needs \(object.needed), which its own search would not find "
                                          + "(\(describe(plan))); it works only because \(by) loaded \(path) first",
                                      objects: [object.neededBy, path, by]))
            }
        }
        return hazards
    }

    // MARK: rpath-ignored

    func rpathIgnored() -> [Hazard] {
        var hazards: [Hazard] = []
        for object in load.loaded {
            guard let elf = object.elf, let rpath = elf.rpath, let runpath = elf.runpath, rpath != runpath else { continue }
            let musl = if case .musl = loader { true } else { false }
            hazards.append(Hazard(kind: .rpathIgnored,
                                  message: "\(object.path) has both RPATH (\(rpath)) and RUNPATH (\(runpath)): "
                                      + "\(musl ? "musl" : "glibc") ignores the RPATH for its dependencies",
                                  objects: [object.path]))
        }
        guard case .glibc(let sim) = loader else { return hazards }
        // A RUNPATH object's dependencies miss the RPATH of its loaders.
        for object in load.objects where object.loadedNewObject {
            guard let path = object.path, let needer = index(ofObject: object.neededBy),
                  load.loaded[needer].elf?.runpath != nil, !object.needed.contains("/") else { continue }
            // The RPATHs of the needer's loaders: the search it would make
            // without its RUNPATH (and its own RPATH, reported above), cut to them.
            var without = load
            without.loaded[needer].elf?.runpath = nil
            without.loaded[needer].elf?.rpath = nil
            let entries = sim.searchPlan(forDependenciesOf: needer, in: without).entries.filter { $0.origin == .rpath }
            guard !entries.isEmpty else { continue }
            var plan = SearchPlan()
            plan.entries = entries
            plan.noDefaultLib = true
            guard let wouldBe = locate(object.needed, plan: plan), wouldBe.path != path,
                  !sameContents(wouldBe.path, path) else { continue }
            let owner = entries.first { wouldBe.path.hasPrefix($0.directory) }?.owner ?? load.program.path
            hazards.append(Hazard(kind: .rpathIgnored,
                                  message: "\(object.neededBy) has RUNPATH, so the RPATH of \(owner) is not searched for its "
                                      + "dependency \(object.needed): that RPATH holds \(wouldBe.path), but \(path) was loaded "
                                      + "(\(object.origin?.rawValue ?? "?"))",
                                  objects: [object.neededBy, owner, wouldBe.path, path]))
        }
        return hazards
    }

    // MARK: ld-library-path-override

    func ldLibraryPathOverrides() -> [Hazard] {
        guard load.environment.ldLibraryPath?.isEmpty == false,
              load.objects.contains(where: { $0.origin == .ldLibraryPath }) else { return [] }
        var environment = load.environment
        environment.ldLibraryPath = nil
        let alternative: LoadResult
        switch loader {
        case .glibc(var sim):
            sim.environment = environment
            alternative = sim.run(program: load.program)
        case .musl(var sim):
            sim.environment = environment
            alternative = sim.run(program: load.program)
        }
        var without: [String: ResolvedObject] = [:]
        for object in alternative.objects where object.path != nil {
            let key = object.needed + "\u{0}" + object.neededBy
            if without[key] == nil { without[key] = object }
        }
        var hazards: [Hazard] = []
        for object in load.objects where object.origin == .ldLibraryPath {
            guard let path = object.path, let other = without[object.needed + "\u{0}" + object.neededBy],
                  let otherPath = other.path, otherPath != path, !sameContents(otherPath, path) else { continue }
            let neederHasRunpath = index(ofObject: object.neededBy).flatMap { load.loaded[$0].elf?.runpath } != nil
            let via = other.origin.map { origin -> String in
                switch origin {
                case .rpath, .runpath: "\(origin.rawValue) of \(other.originObject ?? "?")"
                case .cache: "ld.so.cache"
                case .defaultPath: "the default directories"
                default: origin.rawValue
                }
            } ?? "its own search"
            let what = neederHasRunpath && other.origin == .runpath ? "overrides the RUNPATH of \(object.neededBy)" : "is searched first"
            hazards.append(Hazard(kind: .ldLibraryPathOverride,
                                  message: "LD_LIBRARY_PATH \(what): \(object.needed) loads as \(path), "
                                      + "where \(via) would give \(otherPath)",
                                  objects: [object.neededBy, path, otherPath]))
        }
        return hazards
    }

    // MARK: shadowed-soname and unsatisfiable-order

    /// Directory listings, each read once.
    struct DirectoryListings {
        let fs: any LoaderFileSystem
        var listings: [String: Set<String>?] = [:]

        mutating func contains(_ dir: String, _ name: String) -> Bool {
            if listings[dir] == nil { listings[dir] = .some(fs.listDirectory(dir.isEmpty ? "." : dir)) }
            return (listings[dir] ?? nil)?.contains(name) ?? false
        }
    }

    /// The search paths of the objects that needed something, each numbered
    /// once by its directory list.
    struct ShadowingSearchPaths {
        struct SearchPath {
            var directories: [String]
            var key: Int
            var defaults: Set<String>
        }

        var keys: [[String]: Int] = [:]
        var directories: [[String]] = []
        // Per search path (by its directory list): name → directories holding a copy, in path order.
        var copies: [Int: [String: [String]]] = [:]
        var byNeeder: [Int: SearchPath] = [:]

        /// The search path of the object at `needer`, its directories without
        /// repeats; `plan` is asked the first time only.
        mutating func searchPath(of needer: Int, plan: () -> SearchPlan) -> SearchPath {
            if let known = byNeeder[needer] { return known }
            var seen = Set<String>()
            let plan = plan()
            let directories = plan.allEntries.map(\.directory).filter { seen.insert($0).inserted }
            let key = keys[directories] ?? self.directories.count
            if key == self.directories.count { keys[directories] = key; self.directories.append(directories) }
            let searchPath = SearchPath(directories: directories, key: key, defaults: Set(plan.defaultEntries.map(\.directory)))
            byNeeder[needer] = searchPath
            return searchPath
        }
    }

    /// The path of `name` in `dir` as the loader joins them (glibc's directories end in a slash; musl puts one between).
    func filePath(_ dir: String, _ name: String) -> String {
        if case .musl = loader { return dir + "/" + name }
        return dir + name
    }

    func shadowing() -> [Hazard] {
        var hazards: [Hazard] = []
        var listings = DirectoryListings(fs: fs)
        var searchPaths = ShadowingSearchPaths()
        var reported = Set<String>()
        for object in load.objects where object.loadedNewObject {
            guard let loadedPath = object.path, let origin = object.origin,
                  [.rpath, .runpath, .ldLibraryPath, .defaultPath, .cache].contains(origin),
                  let needer = index(ofObject: object.neededBy) else { continue }
            let searchPath = searchPaths.searchPath(of: needer) { plan(for: needer) }
            var holders: [String] = []
            for dir in searchPath.directories
            where listings.contains(dir, object.needed) && accepts(filePath(dir, object.needed)) {
                holders.append(dir)
            }
            guard holders.count > 1 || (holders.count == 1 && filePath(holders[0], object.needed) != loadedPath) else { continue }
            searchPaths.copies[searchPath.key, default: [:]][object.needed] = holders
            if let hazard = shadowedSoname(object, loadedPath: loadedPath, origin: origin, holders: holders,
                                           defaults: searchPath.defaults, reported: &reported) {
                hazards.append(hazard)
            }
        }
        hazards += unsatisfiableOrders(searchPaths)
        return hazards
    }

    /// The copies of `object.needed` in `holders` whose contents differ from the
    /// loaded one's: a shadowed-soname hazard, or a note when only the system's
    /// copies are behind an explicit path. nil when they are all the same, or
    /// that set of copies was reported already.
    func shadowedSoname(_ object: ResolvedObject, loadedPath: String, origin: LookupOrigin, holders: [String],
                        defaults: Set<String>, reported: inout Set<String>) -> Hazard? {
        // Distinct contents among the copies.
        var distinct: [String] = [loadedPath]
        for dir in holders {
            let candidate = filePath(dir, object.needed)
            if !distinct.contains(where: { sameContents($0, candidate) }) { distinct.append(candidate) }
        }
        guard distinct.count > 1, reported.insert(object.needed + "\u{0}" + distinct.joined(separator: ":")).inserted else { return nil }
        // Only a default directory's (the system's own) copy, behind an explicit RPATH/RUNPATH/LD_LIBRARY_PATH hit:
        // it loads only if the explicit one disappears. A note, not a hazard.
        if [.rpath, .runpath, .ldLibraryPath].contains(origin),
           distinct.dropFirst().allSatisfy({ copy in defaults.contains { copy.hasPrefix($0) } }) {
            return Hazard(kind: .shadowedSoname,
                          message: "\(object.needed) loads as \(loadedPath) (\(origin.rawValue)); the system's "
                              + "\(distinct.dropFirst().joined(separator: ", ")) in a default directory would load only "
                              + "if that one were gone",
                          objects: distinct, isNote: true)
        }
        return Hazard(kind: .shadowedSoname,
                      message: "\(object.needed) exists with different contents in \(distinct.count) places on the search path of "
                          + "\(object.neededBy): \(loadedPath) loads (\(origin.rawValue)); "
                          + "\(distinct.dropFirst().joined(separator: ", ")) \(distinct.count == 2 ? "is" : "are") shadowed, "
                          + "and a change of directory order or of one directory's contents switches the version",
                      objects: distinct)
    }

    /// Figure 4: two directories that each hold different copies of the same two names.
    func unsatisfiableOrders(_ searchPaths: ShadowingSearchPaths) -> [Hazard] {
        var hazards: [Hazard] = []
        var pairs = Set<String>()
        for (key, copies) in searchPaths.copies.sorted(by: { $0.key < $1.key }) {
            let directories = searchPaths.directories[key]
            let names = copies.keys.filter { copies[$0]!.count >= 2 }.sorted()
            for (i, first) in names.enumerated() {
                let firstHolders = Set(copies[first]!)
                for second in names[(i + 1)...] {
                    let secondHolders = Set(copies[second]!)
                    let common = directories.filter { firstHolders.contains($0) && secondHolders.contains($0) }
                    guard common.count >= 2 else { continue }
                    for (a, dirA) in common.enumerated() {
                        for dirB in common[(a + 1)...] {
                            guard !sameContents(filePath(dirA, first), filePath(dirB, first)),
                                  !sameContents(filePath(dirA, second), filePath(dirB, second)),
                                  pairs.insert([dirA, dirB, first, second].joined(separator: "\u{0}")).inserted else { continue }
                            hazards.append(unsatisfiableOrder(dirA, dirB, first, second))
                        }
                    }
                }
            }
        }
        return hazards
    }

    func unsatisfiableOrder(_ dirA: String, _ dirB: String, _ first: String, _ second: String) -> Hazard {
        Hazard(kind: .unsatisfiableOrder,
               message: "\(dirA) and \(dirB) both hold different copies of \(first) and \(second): "
                   + "a search path with both takes both libraries from whichever comes first, so no "
                   + "order gives \(first) from one and \(second) from the other",
               objects: [filePath(dirA, first), filePath(dirB, first), filePath(dirA, second), filePath(dirB, second)])
    }

    // MARK: symbol-conflict

    func symbolConflicts() -> [Hazard] {
        var tables: [(object: LoadedObject, symbols: DynamicSymbols)] = []
        for object in load.loaded where object.role == .program || object.role == .library {
            if let symbols = fs.readDynamicSymbols(object.path) { tables.append((object, symbols)) }
        }
        var referenced = Set<String>()
        for table in tables { for symbol in table.symbols.references { referenced.insert(symbol.name) } }
        var definers: [String: [Int]] = [:]
        // The program comes first whatever the DT_NEEDED order, so its definitions
        // (copy relocations of stdout, deliberate interposition) are not order-dependent.
        for (i, table) in tables.enumerated() where table.object.role != .program {
            var seen = Set<String>()
            for symbol in table.symbols.definitions where symbol.binding != .weak && referenced.contains(symbol.name) {
                let key = symbol.name + "@" + (symbol.version ?? "")
                if seen.insert(key).inserted { definers[key, default: []].append(i) }
            }
        }
        var byPair: [[Int]: [String]] = [:]
        for (key, list) in definers where list.count > 1 {
            let name = String(key.prefix { $0 != "@" })
            for other in list.dropFirst() {
                let a = tables[list[0]].object, b = tables[other].object
                if let sa = a.soname, let sb = b.soname,
                   HazardAnalysis.cLibrarySonames.contains(sa), HazardAnalysis.cLibrarySonames.contains(sb) { continue }
                byPair[[list[0], other], default: []].append(name)
            }
        }
        return byPair.keys.sorted { $0.lexicographicallyPrecedes($1) }.map { pair in
            let names = byPair[pair]!.sorted()
            let a = tables[pair[0]].object.path, b = tables[pair[1]].object.path
            let shown = names.prefix(5).joined(separator: ", ") + (names.count > 5 ? ", …" : "")
            return Hazard(kind: .symbolConflict,
                          message: "\(a) and \(b) both define \(names.count) symbol\(names.count == 1 ? "" : "s") that loaded objects use "
                              + "(\(shown)); \(a) comes first in the load order, so every reference binds to its copy",
                          objects: [a, b])
        }
    }

    // MARK: shrinkwrap-unsafe

    func shrinkwrapSafety() -> [Hazard] {
        var hazards: [Hazard] = []
        if load.flavor == .musl {
            hazards.append(Hazard(kind: .shrinkwrapUnsafe,
                                  message: "\(load.program.path) uses musl's loader: Shrinkwrap relies on glibc's soname dedup, "
                                      + "which musl does not do (it matches the name a search found, and files by inode)",
                                  objects: [load.program.path]))
        }
        for (soname, paths) in load.duplicateSonames.sorted(by: { $0.soname < $1.soname }) {
            hazards.append(Hazard(kind: .shrinkwrapUnsafe,
                                  message: "two files with soname \(soname) are loaded (\(paths.joined(separator: ", "))): "
                                      + "absolute DT_NEEDED paths cannot express which one each object should get",
                                  objects: paths))
        }
        for object in load.objects where object.origin == .ldLibraryPath {
            guard let path = object.path else { continue }
            hazards.append(Hazard(kind: .shrinkwrapUnsafe,
                                  message: "\(object.needed) comes from LD_LIBRARY_PATH (\(path)): Shrinkwrap would pin this file "
                                      + "and ignore the variable users set to swap it (GPU drivers, MPI)",
                                  objects: [object.neededBy, path]))
        }
        for object in load.objects where object.loadedNewObject && !object.needed.contains("/") {
            guard let soname = object.soname, soname != object.needed, let path = object.path else { continue }
            hazards.append(Hazard(kind: .shrinkwrapUnsafe,
                                  message: "\(object.neededBy) needs \(object.needed), but the file it resolves to has soname \(soname): "
                                      + "ld.so matches a requested name against loaded names and sonames, so after a plain Shrinkwrap "
                                      + "this request still searches; loadprobe fix loads the file under that name instead (docs/fix.md)",
                                  objects: [object.neededBy, path], isNote: true))
        }
        return hazards
    }
}

/// Symbol version names such as GLIBC_2.34 or GLIBCXX_3.4.30.
enum GlibcVersionName {
    static func split(_ name: String) -> (prefix: String, numbers: [Int])? {
        guard let underscore = name.lastIndex(of: "_") else { return nil }
        let numbers = name[name.index(after: underscore)...].split(separator: ".").map { Int($0) }
        guard !numbers.isEmpty, numbers.allSatisfy({ $0 != nil }) else { return nil }
        return (String(name[..<underscore]), numbers.map { $0! })
    }

    /// The newest version in `names` of the same family as `wanted` (GLIBC_…).
    static func newest(matching wanted: String, in names: [String]) -> String? {
        guard let family = split(wanted)?.prefix else { return nil }
        return names.compactMap { name in split(name).flatMap { $0.prefix == family ? (name, $0.numbers) : nil } }
            .max { $0.1.lexicographicallyPrecedes($1.1) }?.0
    }
}
