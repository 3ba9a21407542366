import LoaderModel
/// The start-ups the report prices side by side.
public enum Scenario: String, Sendable, CaseIterable {
    /// The calls as recorded.
    case recorded
    /// Every library loaded at start-up named by absolute path in the program's
    /// DT_NEEDED, transitive dependencies lifted (Shrinkwrap): one open each.
    /// dlopen'ed names are still searched (unless lifted: `shrinkwrapDlopen`).
    case shrinkwrap
    /// Every object's DT_NEEDED made the absolute path it resolved to (Spack's
    /// `shared_linking: bind`).
    case bind
    /// The program's RPATH/RUNPATH replaced by one directory of symlinks.
    case view
    /// A per-program loader cache (Guix-style): one cache file read, then every
    /// name (dlopen'ed ones too) opened by absolute path.
    case loaderCache = "loader-cache"
    /// The recorded calls with the client caching failed lookups.
    case negativeCache = "negative-cache"
    /// A static link: no loader, no library files; the program's own calls remain.
    case staticLink = "static"
    /// Python's import: the sys.path entries outside the interpreter's own
    /// library made one directory (of symlinks, or one image).
    case pythonPath = "python-path"

    /// A fix of the loader's search, simulated on the loader's world.
    public var isLoaderFix: Bool { self == .shrinkwrap || self == .bind || self == .view || self == .loaderCache }

    public var summary: String {
        switch self {
        case .recorded: "the calls as recorded"
        case .shrinkwrap: "absolute DT_NEEDED for every start-up library, transitive dependencies lifted; dlopen'ed names still searched"
        case .bind: "every object's DT_NEEDED made the absolute path it resolved to (Spack's shared_linking: bind)"
        case .view: "the program's RPATH/RUNPATH replaced by one directory of symlinks (libraries keep their own)"
        case .loaderCache: "a per-program loader cache (Guix-style), read after LD_LIBRARY_PATH and before RUNPATH instead of /etc/ld.so.cache"
        case .negativeCache: "as recorded, with the client caching failed lookups"
        case .staticLink: "statically linked: no loader searches or library opens; data read from one file"
        case .pythonPath: "Python's sys.path entries (outside the interpreter's own library) made one directory of symlinks"
        }
    }
}

/// What a scenario assumed, for the reader to check by hand.
public struct ScenarioAssumptions: Sendable {
    public var lines: [(String, String)] = []
    public mutating func add(_ k: String, _ v: String) { lines.append((k, v)) }
}
