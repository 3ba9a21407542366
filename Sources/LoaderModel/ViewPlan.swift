import TraceFormat

/// A dependency view (Spack/Nix views): one directory of symlinks to every
/// library the program's start-up found through an RPATH or RUNPATH, under
/// each name it was asked for, its file name and its soname (the first
/// target of a name wins), and the program's RPATH/RUNPATH made that one
/// directory. Libraries keep their own search paths; those found through
/// ld.so.cache or the default directories stay there. The scenario
/// (`WorldTransform.view`) and `loadprobe fix view` both come from this plan.
public struct ViewPlan: Sendable {
    public var directory: String
    /// (name in the view, absolute target), in load order.
    public var links: [(name: String, target: String)]

    public init(load: LoadResult, directory: String) {
        self.directory = directory
        var seen = Set<String>()
        var links: [(name: String, target: String)] = []
        for o in load.objects {
            guard let found = o.path, o.failure == nil, o.origin == .rpath || o.origin == .runpath else { continue }
            // A relative RPATH entry names a path relative to the working directory; a link's target is not.
            let path = found.hasPrefix("/") ? found : LoaderPath.join(load.environment.workingDirectory, found)
            for name in [o.needed, LoaderPath.basename(path), o.soname].compactMap({ $0 })
            where !name.contains("/") && !name.isEmpty && name != "." && name != ".." && seen.insert(name).inserted {
                links.append((name, path))
            }
        }
        self.links = links
    }

    /// Whether the program keeps an RPATH (it has RPATH and no RUNPATH) or gets a RUNPATH.
    public func keepsRpath(_ program: ELFFile) -> Bool { program.runpath == nil && program.rpath != nil }

    public func apply(to program: inout ELFFile) {
        if keepsRpath(program) { program.rpath = directory } else { program.runpath = directory; program.rpath = nil }
    }

    public func patchelfCommands(patchelf: String = "patchelf", program: ELFFile, file: String) -> [[String]] {
        if keepsRpath(program) { return [[patchelf, "--force-rpath", "--set-rpath", directory, file]] }
        var out: [[String]] = []
        if program.rpath != nil { out.append([patchelf, "--remove-rpath", file]) }
        out.append([patchelf, "--set-rpath", directory, file])
        return out
    }
}
