import TraceFormat

/// How a shrinkwrapped copy of a program lists its libraries
/// (docs/fix-design.md): every library of the start-up closure by absolute
/// path, in the order the loader loads them, written with patchelf so that
/// the version table keeps naming the right files.
public struct ShrinkwrapPlan: Sendable {
    /// The program's own DT_NEEDED entries and the path each resolved to:
    /// renamed in place (`--replace-needed`, which renames their version
    /// requirements too).
    public var replacements: [(name: String, path: String)]
    /// Every library of the start-up, in load order: added at the front one at
    /// a time in reverse order (`--add-needed` puts an entry first), so that
    /// DT_NEEDED starts with them in this order. The renamed entries follow as
    /// repeats, which ld.so matches by name without a system call.
    public var closure: [String]

    /// The plan for a simulated start-up; nil when it fails (nothing to keep).
    public init?(load: LoadResult) {
        guard load.failure == nil else { return nil }
        closure = load.loaded.filter { $0.role == .library }.map(\.path)
        var seen = Set<String>()
        replacements = load.objects.compactMap { o in
            guard o.depth == 1, o.group == 0, o.neededBy != "LD_PRELOAD", let path = o.path,
                  o.needed != path, seen.insert(o.needed).inserted else { return nil }
            return (o.needed, path)
        }
    }

    /// patchelf's command lines, one change each (patchelf 0.14 writes wrong
    /// entries when it renames and adds in one call).
    public func patchelfCommands(patchelf: String = "patchelf", file: String) -> [[String]] {
        replacements.map { [patchelf, "--replace-needed", $0.name, $0.path, file] }
            + closure.reversed().map { [patchelf, "--add-needed", $0, file] }
    }
}
