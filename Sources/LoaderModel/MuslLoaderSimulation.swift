import TraceFormat
/// musl's dynamic linker (ldso/dynlink.c, `load_library`), simulated: the reserved
/// names that mean musl itself; names already loaded (by the short name a search
/// found them under); LD_LIBRARY_PATH first; then the RPATH/RUNPATH (musl treats
/// them alike and prefers RUNPATH) of the needing object and of every object up its
/// needed-by chain; then /etc/ld-musl-ARCH.path, whose contents replace the
/// default "/lib:/usr/local/lib:/usr/lib"; files already loaded (same device and
/// inode) reused. musl has no cache, no hardware subdirectories, no stat of
/// directories, and it does not skip a wrong-class file: the load fails.
public struct MuslLoaderSimulation: Sendable {
    public var profile: MuslProfile
    public var environment: LoaderEnvironment
    public var fileSystem: any LoaderFileSystem

    public init(profile: MuslProfile, environment: LoaderEnvironment, fileSystem: any LoaderFileSystem = HostFileSystem()) {
        self.profile = profile
        self.environment = environment
        self.fileSystem = fileSystem
    }

    public func run(program: ELFFile) -> LoadResult {
        MuslEngine(simulation: self, program: program).run()
    }

    /// The directories musl searches for the dependencies of `load.loaded[index]`:
    /// LD_LIBRARY_PATH, the RPATH/RUNPATH up the needed-by chain, the system path.
    public func searchPlan(forDependenciesOf index: Int, in load: LoadResult) -> SearchPlan {
        var plan = SearchPlan()
        func split(_ path: String) -> [String] { path.split(whereSeparator: { $0 == ":" || $0 == "\n" }).map(String.init) }
        if !environment.secure, let llp = environment.ldLibraryPath {
            plan.entries += split(llp).map { SearchPlan.Entry(directory: $0, origin: .ldLibraryPath, owner: nil) }
        }
        var current: Int? = load.loaded.indices.contains(index) ? index : nil
        while let i = current {
            let object = load.loaded[i]
            if let raw = object.elf?.runpath ?? object.elf?.rpath,
               let fixed = MuslEngine.expandOrigin(raw, objectPath: object.role == .program
                    ? (fileSystem.realPath(object.path) ?? object.path) : object.path) {
                let origin: LookupOrigin = object.elf?.runpath != nil ? .runpath : .rpath
                plan.entries += split(fixed).map { SearchPlan.Entry(directory: $0, origin: origin, owner: object.path) }
            }
            current = object.loader
        }
        let systemPath: String
        if let text = fileSystem.readText(profile.pathFile) {
            systemPath = text
        } else {
            systemPath = profile.defaultPath
        }
        plan.defaultEntries = split(systemPath).map { SearchPlan.Entry(directory: $0, origin: .defaultPath, owner: nil) }
        return plan
    }

    /// Where the search of `plan` finds `name`: the first directory, in plan
    /// order, in which the file opens.
    public func locate(_ name: String, plan: SearchPlan) -> (path: String, origin: LookupOrigin)? {
        for entry in plan.allEntries {
            let path = entry.directory + "/" + name
            if case .opened = fileSystem.open(path) { return (path, entry.origin) }
        }
        return nil
    }

    /// "lib" + c., pthread., rt., m., dl., util., xnet.: names musl answers itself.
    public static func isReservedName(_ name: String) -> Bool { reservedFamily(name) != nil }

    /// The reserved prefix a name matches ("c.", "m.", …), nil for ordinary names.
    public static func reservedFamily(_ name: String) -> String? {
        guard name.hasPrefix("lib") else { return nil }
        let rest = name.dropFirst(3)
        return ["c.", "pthread.", "rt.", "m.", "dl.", "util.", "xnet."].first { rest.hasPrefix($0) }
    }
}

final class MuslEngine {
    struct DSO {
        var name: String
        var shortname: String?
        var id: FileID?
        var neededBy: Int?
        var elf: ELFFile?
        var isLoader = false
        var rpath: String??
    }

    let sim: MuslLoaderSimulation
    let fs: any LoaderFileSystem
    let program: ELFFile
    var dsos: [DSO] = []
    /// Indices in musl's dso chain order (the loader's list).
    var chain: [Int] = []
    var loaderIndex: Int?
    var systemPath: String?
    var objects: [ResolvedObject] = []
    var total = SyscallCounts()
    var predicted = SyscallCounts()
    var failure: StartupFailure?
    var depth: [Int: Int] = [0: 0]

    init(simulation: MuslLoaderSimulation, program: ELFFile) {
        self.sim = simulation
        self.fs = simulation.fileSystem
        self.program = program
    }

    func run() -> LoadResult {
        dsos.append(DSO(name: program.path, shortname: nil, id: nil, neededBy: nil, elf: program))
        chain.append(0)
        if !sim.environment.secure, let preload = sim.environment.ldPreload {
            for name in preload.split(whereSeparator: { $0 == " " || $0 == ":" || $0 == "\t" || $0 == "\n" }) {
                _ = loadLibrary(String(name), neededBy: nil, requester: "LD_PRELOAD")
            }
        }
        var next = 0
        while next < chain.count {
            let index = chain[next]
            next += 1
            guard let elf = dsos[index].elf, !dsos[index].isLoader else { continue }
            // A name this object already failed to load fails the same way again
            // (same world, same path), unless an object loaded since answers to
            // it: recorded as failing, without a search (as in GlibcEngine).
            var failedHere: [String: ResolvedObject] = [:]
            for name in elf.needed {
                if let again = failedHere[name], !chain.contains(where: { dsos[$0].shortname == name }) {
                    var object = again
                    object.attempts = []
                    record(object)
                    continue
                }
                let recorded = objects.count
                if loadLibrary(name, neededBy: index, requester: dsos[index].name) == nil,
                   objects.count == recorded + 1, let failed = objects.last, failed.path == nil {
                    failedHere[name] = failed
                }
            }
        }
        var position = [Int: Int]()
        for (i, index) in chain.enumerated() { position[index] = i }
        let loaded = chain.map { index -> LoadedObject in
            let dso = dsos[index]
            let role: LoadedObject.Role = index == 0 ? .program : (dso.isLoader ? .interpreter : .library)
            return LoadedObject(path: dso.name, role: role, names: dso.shortname.map { [$0] } ?? [],
                                soname: dso.elf?.soname, fileID: dso.id, loader: dso.neededBy.flatMap { position[$0] },
                                elf: dso.elf)
        }
        return LoadResult(flavor: .musl, program: program, interpreter: sim.profile.interpreterPath, objects: objects,
                          loaded: loaded, total: total, predicted: predicted, failure: failure,
                          environment: sim.environment, glibcProfile: nil)
    }

    func selfObject() -> Int {
        if let loaderIndex { return loaderIndex }
        let index = dsos.count
        dsos.append(DSO(name: sim.profile.interpreterPath, shortname: "libc.so", id: nil, neededBy: nil, elf: nil, isLoader: true))
        chain.append(index)
        loaderIndex = index
        return index
    }

    func record(_ object: ResolvedObject) {
        total += object.cost
        if failure == nil { predicted += object.cost }
        if failure == nil, let message = object.failure {
            failure = StartupFailure(kind: .missingLibrary, object: object.neededBy,
                                     message: "Error loading shared library \(object.needed): \(message) (needed by \(object.neededBy))")
        }
        objects.append(object)
    }

    /// One name to load: who asked for it, and the depth its object gets.
    struct LoadRequest {
        let name: String
        let neededBy: Int?
        let requester: String
        let depth: Int
    }

    typealias Hit = (path: String, id: FileID, header: [UInt8], origin: LookupOrigin, owner: String?)

    /// What a search for one name has gathered: the attempts so far, the file
    /// opened, or an error that stopped the search (`inhibited`).
    struct NameSearch {
        var attempts: [SearchAttempt] = []
        var hit: Hit?
        var inhibited = false

        /// A file was opened, or the search stopped: no further path is tried.
        var isOver: Bool { hit != nil || inhibited }
    }

    func loadLibrary(_ name: String, neededBy: Int?, requester: String) -> Int? {
        let request = LoadRequest(name: name, neededBy: neededBy, requester: requester,
                                  depth: (neededBy.flatMap { depth[$0] } ?? 0) + 1)
        if name.isEmpty { return fail(request, "Invalid argument", []) }
        if MuslLoaderSimulation.isReservedName(name) || name == sim.profile.interpreterPath {
            return reuse(selfObject(), for: request)
        }
        var search = NameSearch()
        if name.contains("/") {
            let (result, attempt) = open(name, origin: .absolute, owner: nil)
            search.attempts.append(attempt)
            if case .opened(let id, let header, _) = result { search.hit = (name, id, header, .absolute, nil) }
        } else {
            for index in chain where dsos[index].shortname == name { return reuse(index, for: request) }
            if name.utf8.count > 255 { return fail(request, "File name too long", []) }
            searchPaths(for: request, search: &search)
        }
        guard let hit = search.hit else {
            let message = search.attempts.contains { if case .missing(let e) = $0.outcome { e != ENOENT } else { false } }
                ? "Permission denied" : "No such file or directory"
            return fail(request, message, search.attempts)
        }
        return mapFile(hit, request: request, attempts: search.attempts)
    }

    /// An object already loaded (or musl itself) serves the request.
    func reuse(_ index: Int, for request: LoadRequest) -> Int {
        record(ResolvedObject(needed: request.name, neededBy: request.requester, path: dsos[index].name, origin: .loaded,
                              originObject: nil, attempts: [], depth: request.depth, loadedNewObject: false,
                              soname: dsos[index].elf?.soname, failure: nil))
        return index
    }

    /// The request fails with `message`.
    func fail(_ request: LoadRequest, _ message: String, _ attempts: [SearchAttempt]) -> Int? {
        record(ResolvedObject(needed: request.name, neededBy: request.requester, path: nil, origin: nil, originObject: nil,
                              attempts: attempts, depth: request.depth, loadedNewObject: false, soname: nil,
                              failure: message))
        return nil
    }

    /// A name without a slash: LD_LIBRARY_PATH, then the RPATH/RUNPATH of the
    /// needing object and of each object up its needed-by chain, then the system
    /// path, until a file opens or an error stops the search.
    func searchPaths(for request: LoadRequest, search: inout NameSearch) {
        if !sim.environment.secure, let llp = sim.environment.ldLibraryPath {
            searchPath(llp, origin: .ldLibraryPath, owner: nil, name: request.name, search: &search)
        }
        var current = request.neededBy
        while let p = current, !search.isOver {
            if let rpath = fixedRpath(p) {
                searchPath(rpath, origin: dsos[p].elf?.runpath != nil ? .runpath : .rpath, owner: dsos[p].name,
                           name: request.name, search: &search)
            }
            current = dsos[p].neededBy
        }
        if !search.isOver {
            let systemPath = readSystemPath(attempts: &search.attempts)
            searchPath(systemPath, origin: .defaultPath, owner: nil, name: request.name, search: &search)
        }
    }

    /// path_open over one path, its outcome kept in `search`.
    func searchPath(_ path: String, origin: LookupOrigin, owner: String?, name: String, search: inout NameSearch) {
        switch pathOpen(name: name, path: path, origin: origin, owner: owner, attempts: &search.attempts) {
        case .found(let path, let id, let header): search.hit = (path, id, header, origin, owner)
        case .stop: search.inhibited = true
        case .notFound: break
        }
    }

    /// The file a search opened: fstat, then the same file as a loaded object,
    /// a file musl rejects, a second C library, or a new object.
    func mapFile(_ hit: Hit, request: LoadRequest, attempts: [SearchAttempt]) -> Int? {
        var attempts = attempts
        if let last = attempts.indices.last { attempts[last].cost.fstat += 1 }
        if let index = chain.first(where: { dsos[$0].id == hit.id }) {
            if dsos[index].shortname == nil && hit.path != request.name {
                dsos[index].shortname = LoaderPath.basename(dsos[index].name)
            }
            if let last = attempts.indices.last { attempts[last].outcome = .sameFileAsLoaded(dsos[index].name) }
            record(ResolvedObject(needed: request.name, neededBy: request.requester, path: dsos[index].name,
                                  origin: hit.origin, originObject: hit.owner, attempts: attempts, depth: request.depth,
                                  loadedNewObject: false, soname: dsos[index].elf?.soname, failure: nil))
            return index
        }
        if case .rejected(let reason) = LoaderHeaderCheck.musl(header: hit.header) {
            if let last = attempts.indices.last { attempts[last].outcome = .rejected(reason: reason) }
            return fail(request, reason, attempts)
        }
        // A second C library (glibc's or musl's own, found by path) is replaced by musl itself.
        if let symbols = fs.readDynamicSymbols(hit.path),
           symbols.definitions.contains(where: { $0.name == "__libc_start_main" }),
           symbols.definitions.contains(where: { $0.name == "stdin" }) {
            let index = selfObject()
            record(ResolvedObject(needed: request.name, neededBy: request.requester, path: dsos[index].name,
                                  origin: .loaded, originObject: nil, attempts: attempts, depth: request.depth,
                                  loadedNewObject: false, soname: nil, failure: nil))
            return index
        }
        return appendDSO(hit, request: request, attempts: attempts)
    }

    /// A file not loaded yet: a new object at the end of the chain.
    func appendDSO(_ hit: Hit, request: LoadRequest, attempts: [SearchAttempt]) -> Int {
        let elf = try? fs.readELF(hit.path)
        let index = dsos.count
        dsos.append(DSO(name: hit.path, shortname: hit.path != request.name ? LoaderPath.basename(hit.path) : nil,
                        id: hit.id, neededBy: request.neededBy, elf: elf))
        chain.append(index)
        depth[index] = request.depth
        record(ResolvedObject(needed: request.name, neededBy: request.requester, path: hit.path, origin: hit.origin,
                              originObject: hit.owner, attempts: attempts, depth: request.depth, loadedNewObject: true,
                              soname: elf?.soname, failure: elf == nil ? "Exec format error" : nil))
        return index
    }

    func open(_ path: String, origin: LookupOrigin, owner: String?) -> (OpenOutcome, SearchAttempt) {
        let result = fs.open(path)
        var attempt = SearchAttempt(path: path, origin: origin, originObject: owner, outcome: .found,
                                    cost: SyscallCounts(openat: 1))
        if case .failed(let e) = result { attempt.outcome = .missing(errno: e) }
        return (result, attempt)
    }

    enum PathOutcome { case found(String, FileID, [UInt8]), notFound, stop }

    /// path_open: "dir/name" for each non-empty entry split at ':' and newline.
    func pathOpen(name: String, path: String, origin: LookupOrigin, owner: String?,
                  attempts: inout [SearchAttempt]) -> PathOutcome {
        for dir in path.split(whereSeparator: { $0 == ":" || $0 == "\n" }) {
            let candidate = "\(dir)/\(name)"
            // snprintf into a 2*NAME_MAX+2 buffer: longer candidates are silently skipped.
            if candidate.utf8.count >= 512 { continue }
            let (result, attempt) = open(candidate, origin: origin, owner: owner)
            attempts.append(attempt)
            switch result {
            case .opened(let id, let header, _): return .found(candidate, id, header)
            case .failed(let e):
                if e == ENOENT || e == ENOTDIR || e == EACCES || e == ENAMETOOLONG { continue }
                return .stop
            }
        }
        return .notFound
    }

    /// fixup_rpath: RUNPATH else RPATH; only $ORIGIN / ${ORIGIN} are understood, and
    /// any other '$' makes musl ignore the whole list.
    func fixedRpath(_ index: Int) -> String? {
        if let cached = dsos[index].rpath { return cached }
        var result: String?
        if let raw = dsos[index].elf?.runpath ?? dsos[index].elf?.rpath {
            if !raw.contains("$") {
                result = raw
            } else {
                var valid = true
                var rest = Substring(raw)
                while let dollar = rest.firstIndex(of: "$") {
                    let after = rest[dollar...]
                    if !after.hasPrefix("$ORIGIN") && !after.hasPrefix("${ORIGIN}") { valid = false; break }
                    rest = rest[rest.index(after: dollar)...]
                }
                if valid && !(sim.environment.secure && index == 0) {
                    // The program's origin comes from /proc/self/exe, a library's from its path.
                    let name = index == 0 ? (fs.realPath(dsos[index].name) ?? dsos[index].name) : dsos[index].name
                    result = MuslEngine.expandOrigin(raw, objectPath: name)
                }
            }
        }
        dsos[index].rpath = .some(result)
        return result
    }

    /// $ORIGIN and ${ORIGIN} only; nil when another '$' appears (musl then ignores the list).
    static func expandOrigin(_ raw: String, objectPath: String) -> String? {
        guard raw.contains("$") else { return raw }
        var rest = Substring(raw)
        while let dollar = rest.firstIndex(of: "$") {
            let after = rest[dollar...]
            if !after.hasPrefix("$ORIGIN") && !after.hasPrefix("${ORIGIN}") { return nil }
            rest = rest[rest.index(after: dollar)...]
        }
        let origin = objectPath.contains("/") ? String(objectPath[..<objectPath.lastIndex(of: "/")!]) : "."
        return raw.replacingOccurrences("${ORIGIN}", with: origin).replacingOccurrences("$ORIGIN", with: origin)
    }

    /// The first search that reaches the system path reads /etc/ld-musl-ARCH.path.
    func readSystemPath(attempts: inout [SearchAttempt]) -> String {
        if let systemPath { return systemPath }
        let file = sim.profile.pathFile
        var value: String
        switch fs.open(file) {
        case .opened:
            attempts.append(SearchAttempt(path: file, origin: .defaultPath, outcome: .readPathFile(found: true),
                                          cost: SyscallCounts(openat: 1, fstat: 1)))
            value = fs.readText(file) ?? ""
        case .failed(let e):
            attempts.append(SearchAttempt(path: file, origin: .defaultPath, outcome: .readPathFile(found: false),
                                          cost: SyscallCounts(openat: 1)))
            value = e == ENOENT ? sim.profile.defaultPath : ""
        }
        systemPath = value
        return value
    }
}

extension String {
    func replacingOccurrences(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var result = ""
        var rest = Substring(self)
        while let range = rest.firstRange(of: target) {
            result += rest[..<range.lowerBound]
            result += replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}

#if canImport(Glibc)
import Glibc
#endif
