import TraceFormat

/// How a shrinkwrapped copy of a program lists its libraries
/// (docs/fix-design.md): every library of the start-up closure by absolute
/// path, in the order the loader loads them, written with patchelf so that
/// the version table keeps naming the right files. The scenario's prediction
/// (`WorldTransform.shrinkwrap`) and `loadprobe fix shrinkwrap` both come
/// from this one plan.
public struct ShrinkwrapPlan: Sendable {
    /// The program's own DT_NEEDED entries and the path each resolved to:
    /// renamed in place (`--replace-needed`, which renames their version
    /// requirements too).
    public var replacements: [(name: String, path: String)]
    /// Every library of the start-up (and, lifted, of the dlopens), in load
    /// order: added at the front one at a time in reverse order
    /// (`--add-needed` puts an entry first), so that DT_NEEDED starts with
    /// them in this order. The renamed entries follow as repeats, which ld.so
    /// matches by name without a system call. An entry is the library's
    /// absolute path, or for an alias its bare name.
    public var closure: [String]
    /// The closure's libraries by path, aliases too.
    public var closurePaths: [String]
    /// Names asked for that are not the soname of the file they resolve to
    /// (Debian's `libsndio.so.7.0`, soname `libsndio.so.7`). ld.so matches a
    /// name against loaded objects' names and sonames only, so a library asking
    /// for such a name would search again. The program loads that file by this
    /// bare name instead of its path, found at the first try of its own search
    /// path (`aliasDirectories` first), so that the name is the object's and
    /// the later requests match it.
    public var aliases: [(name: String, path: String)]
    /// The aliases' directories, in closure order, put before the program's own
    /// RUNPATH (or RPATH, when it has only that).
    public var aliasDirectories: [String]

    /// The plan for a simulated start-up (of a failed one, what loaded).
    /// With `liftDlopen`, the libraries the program dlopens are in the closure
    /// too, after the start-up's, in the order they were opened.
    public init(load: LoadResult, liftDlopen: Bool = false) {
        let program = load.program.path
        var closure: [String] = []
        var inClosure = Set<String>()
        // The objects the program reaches: a library only a preloaded one needs is not the program's.
        // Files some lookup mapped, and the interpreter where a library first asks for it: the copy's
        // search scope then has ld.so where the program's has it (a name match, no system call).
        let mapped = Set(load.objects.filter(\.loadedNewObject).compactMap(\.path))
            .union(load.loaded.filter { $0.role == .interpreter }.map(\.path))
        var reachable: Set<String> = [program]
        for o in load.objects where o.failure == nil && (liftDlopen || o.group == 0) {
            guard let path = o.path, o.neededBy != LoadResult.preloadRequester, reachable.contains(o.neededBy) else { continue }
            reachable.insert(path)
            if mapped.contains(path) && inClosure.insert(path).inserted { closure.append(path) }
        }
        var seen = Set<String>()
        replacements = load.objects.compactMap { o in
            guard o.depth == 1, o.group == 0, o.neededBy == program, let path = o.path, o.failure == nil,
                  o.needed != path, seen.insert(o.needed).inserted else { return nil }
            return (o.needed, path)
        }
        // Requests other than the program's own entries whose name is not the file's soname.
        var aliasOf: [String: String] = [:]
        var aliases: [(name: String, path: String)] = []
        // Every group: a dlopen that matched a start-up library by name must still match it.
        for o in load.objects where o.failure == nil {
            guard let path = o.path, inClosure.contains(path), !o.needed.contains("/"),
                  !(o.group == 0 && o.depth == 1 && o.neededBy == program),
                  o.needed != o.soname, aliasOf[path] == nil else { continue }
            aliasOf[path] = o.needed
            aliases.append((o.needed, path))
        }
        closurePaths = closure
        var directories: [String] = []
        self.closure = closure.map { path in
            guard let name = aliasOf[path] else { return path }
            let dir = LoaderPath.directory(path)
            if !directories.contains(dir) { directories.append(dir) }
            return name
        }
        self.aliases = aliases
        aliasDirectories = directories
        makeAbsolute(workingDirectory: load.environment.workingDirectory)
    }

    /// Every relative path (a library found through a relative RPATH entry,
    /// as ld.so opened it) made absolute against the run's working directory:
    /// the copy works from any directory.
    private mutating func makeAbsolute(workingDirectory wd: String) {
        func abs(_ p: String) -> String { p.hasPrefix("/") || !p.contains("/") ? p : LoaderPath.join(wd, p) }
        replacements = replacements.map { ($0.name, abs($0.path)) }
        closure = closure.map(abs)
        closurePaths = closurePaths.map(abs)
        aliases = aliases.map { ($0.name, abs($0.path)) }
        aliasDirectories = aliasDirectories.map { $0.hasPrefix("/") ? $0 : LoaderPath.join(wd, $0) }
    }

    /// The program's search path after the fix, when the aliases change it:
    /// which tag, and its value.
    public func searchPath(of program: ELFFile) -> (runpath: Bool, value: String)? {
        guard !aliasDirectories.isEmpty else { return nil }
        let dirs = aliasDirectories.joined(separator: ":")
        if let runpath = program.runpath { return (true, runpath.isEmpty ? dirs : dirs + ":" + runpath) }
        if let rpath = program.rpath { return (false, rpath.isEmpty ? dirs : dirs + ":" + rpath) }
        return (true, dirs)
    }

    /// The program's dynamic section as the patchelf calls leave it.
    public func apply(to program: inout ELFFile) {
        let renamed = Dictionary(replacements.map { ($0.name, $0.path) }, uniquingKeysWith: { a, _ in a })
        let path = searchPath(of: program)
        program.needed = closure + program.needed.map { renamed[$0] ?? $0 }
        if let path {
            if path.runpath { program.runpath = path.value } else { program.rpath = path.value }
        }
    }

    /// patchelf's command lines for `file` (a copy of `program`), four calls
    /// whatever the closure's size: the renames; the search path; the closure
    /// added as numbered placeholders (`--add-needed` puts several entries
    /// first, sorted by name, so zero-padded numbers keep load order); the
    /// placeholders renamed to the closure (`--replace-needed` keeps an
    /// entry's place). patchelf 0.14 writes wrong entries when it renames and
    /// adds in one call, hence separate calls.
    public func patchelfCommands(patchelf: String = "patchelf", program: ELFFile, file: String) -> [[String]] {
        var out: [[String]] = []
        if !replacements.isEmpty {
            out.append([patchelf] + replacements.flatMap { ["--replace-needed", $0.name, $0.path] } + [file])
        }
        if let path = searchPath(of: program) {
            out.append([patchelf] + (path.runpath ? [] : ["--force-rpath"]) + ["--set-rpath", path.value, file])
        }
        guard !closure.isEmpty else { return out }
        let width = String(closure.count).count
        let placeholders = closure.indices.map { i -> String in
            let n = String(i + 1)
            return ShrinkwrapPlan.placeholderPrefix + String(repeating: "0", count: width - n.count) + n
        }
        out.append([patchelf] + placeholders.flatMap { ["--add-needed", $0] } + [file])
        out.append([patchelf] + zip(placeholders, closure).flatMap { ["--replace-needed", $0, $1] } + [file])
        return out
    }

    /// The placeholder names' prefix: not a library any program needs.
    public static let placeholderPrefix = "loadprobe-fix-placeholder-"
}

extension LoadResult {
    /// `ResolvedObject.neededBy` of a library named in LD_PRELOAD.
    public static let preloadRequester = "LD_PRELOAD"

    /// Sonames that more than one loaded library carries, with those files, in load order.
    public var duplicateSonames: [(soname: String, paths: [String])] {
        var bySoname: [String: [String]] = [:]
        var order: [String] = []
        for o in loaded where o.role == .library {
            guard let soname = o.soname else { continue }
            if bySoname[soname] == nil { order.append(soname) }
            bySoname[soname, default: []].append(o.path)
        }
        return order.compactMap { s in bySoname[s].flatMap { $0.count > 1 ? (s, $0) : nil } }
    }
}
