import LoaderModel
import TraceFormat

/// The sys.path entries of a Python process as its import system used them:
/// the directories it listed (Python's path finder lists each entry once and
/// stats it at every import), less the packages among them (a listed directory
/// inside another, whose `__init__` file was found).
public enum PythonSysPath {
    public static func entries(_ p: ProcessAnalysis, trace: Trace) -> [String] {
        var listed: [String] = []
        var seen = Set<String>()
        var packages = Set<String>()
        for c in p.calls where c.purpose == .pythonImport && !c.failed {
            let ref = c.event.resolved ?? c.event.path
            if c.event.call.isOpen && c.event.flags & 0o200000 != 0 {
                let path = trace.path(ref)
                if seen.insert(path).inserted { listed.append(path) }
            } else if trace.string(ref.base).hasPrefix("__init__.") {
                packages.insert(trace.string(ref.dir))
            }
        }
        return listed.filter { d in !(packages.contains(d) && seen.contains(SearchDirectory.dirname(d))) }
    }

    /// The interpreter's own library (lib/pythonX.Y, its lib-dynload) and
    /// site's directories (site-packages, dist-packages: their .pth files are
    /// read at start-up): what a consolidated sys.path leaves in place.
    public static func staysInPlace(_ d: String) -> Bool {
        let parts = d.split(separator: "/")
        if let last = parts.last, last == "site-packages" || last == "dist-packages" { return true }
        guard let i = parts.lastIndex(where: { $0.hasPrefix("python3") || $0.hasPrefix("python2") }), i > 0, parts[i - 1] == "lib" else { return false }
        return i == parts.count - 1 || (i == parts.count - 2 && parts[i + 1] == "lib-dynload")
    }

    /// sys.path[0]: the script's directory, or the working directory for
    /// `-c`, `-m` and an interactive interpreter. It stays where it is.
    public static func scriptDirectory(_ p: ProcessAnalysis, cwd: String?) -> String? {
        var args = p.argv.dropFirst()
        while let a = args.first, a.hasPrefix("-") {
            if a == "-c" || a == "-m" || a == "-" { return cwd }
            args = args.dropFirst()
            // Options with a value.
            if a == "-W" || a == "-X" || a == "-Q" { args = args.dropFirst() }
        }
        guard let script = args.first else { return cwd }
        let full = script.hasPrefix("/") ? script : LoaderPath.join(cwd ?? "/", script)
        return SearchDirectory.dirname(full)
    }

    /// The entries a consolidated sys.path makes one directory: all but the
    /// script's directory, the interpreter's own library and site's directories.
    public static func consolidated(_ p: ProcessAnalysis, trace: Trace) -> [String] {
        let script = scriptDirectory(p, cwd: trace.meta(.cwd))
        return entries(p, trace: trace).filter { !staysInPlace($0) && $0 != script }
    }

    /// (entry, path below it) of a path in one of `entries`.
    public static func split(_ path: String, entries: Set<String>) -> (entry: String, rest: Substring)? {
        if entries.contains(path) { return (path, "") }
        var d = Substring(path)
        while let slash = d.utf8.lastIndex(of: UInt8(ascii: "/")), slash != d.startIndex {
            d = d[..<slash]
            if entries.contains(String(d)) { return (String(d), path.dropFirst(d.utf8.count + 1)) }
        }
        return nil
    }
}
