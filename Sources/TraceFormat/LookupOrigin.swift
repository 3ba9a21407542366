/// Where a lookup of a library came from: the one vocabulary of the trace (from
/// la_objsearch's flag), the loader model (explain, the hazards, the scenarios)
/// and the report. Each document names the origins its own way, kept as
/// documented: `rawValue` in explain's output, `auditName` in the summary's
/// `byOrigin` keys, `label` in the report's libraries and directories.
public enum LookupOrigin: String, Sendable, Hashable, CaseIterable {
    case ldLibraryPath = "LD_LIBRARY_PATH"
    /// A DT_RPATH directory (the model knows which of the two it was).
    case rpath = "RPATH"
    /// A DT_RUNPATH directory.
    case runpath = "RUNPATH"
    /// A DT_RPATH or DT_RUNPATH directory: la_objsearch's LA_SER_RUNPATH covers
    /// both, so a recorded search does not say which.
    case rpathOrRunpath = "RPATH/RUNPATH"
    /// ld.so.cache (glibc); musl has no cache.
    case cache = "CONFIG"
    /// glibc's default directories, or musl's /etc/ld-musl-ARCH.path (or its built-in default).
    case defaultPath = "DEFAULT"
    /// The name (DT_NEEDED, LD_PRELOAD entry, dlopen argument) contains a slash: opened as is.
    case absolute = "ABSOLUTE"
    /// Already loaded under this name or soname: no search at all.
    case loaded = "LOADED"

    /// True for a directory from an object's DT_RPATH or DT_RUNPATH.
    public var isObjectPath: Bool { self == .rpath || self == .runpath || self == .rpathOrRunpath }

    /// The name of the audit flag that marks it (LA_SER_*), as the summary's
    /// `byOrigin` keys spell it (loadprobe-report/1).
    public var auditName: String {
        switch self {
        case .ldLibraryPath: "LD_LIBRARY_PATH"
        case .rpath, .runpath, .rpathOrRunpath: "RUNPATH"
        case .cache: "CONFIG"
        case .defaultPath: "DEFAULT"
        case .absolute: "ABSOLUTE"
        case .loaded: "LOADED"
        }
    }

    /// The name the report's tables and its JSON `origin`/`foundOrigin` use.
    public var label: String {
        switch self {
        case .ldLibraryPath: "LD_LIBRARY_PATH"
        case .rpath, .runpath, .rpathOrRunpath: "RPATH/RUNPATH"
        case .cache: "ld.so.cache"
        case .defaultPath: "default dirs"
        case .absolute: "absolute"
        case .loaded: "loaded"
        }
    }

    /// The label of an origin that may be unknown (a flag that names none).
    public static func label(_ origin: LookupOrigin?) -> String { origin?.label ?? "unknown" }
}

/// la_objsearch's flag (<link.h> LA_SER_*, loadprobe_wire.h LP_LA_SER_*), as an
/// OBJSEARCH record stores it.
public struct AuditSearchFlag: OptionSet, Sendable, Hashable {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// The first call for a name: the name as asked, not a candidate path.
    public static let orig = AuditSearchFlag(rawValue: 0x01)
    public static let libpath = AuditSearchFlag(rawValue: 0x02)
    public static let runpath = AuditSearchFlag(rawValue: 0x04)
    public static let config = AuditSearchFlag(rawValue: 0x08)
    public static let defaultDirs = AuditSearchFlag(rawValue: 0x40)
    /// May be or'ed into another flag; alone it names no origin.
    public static let secure = AuditSearchFlag(rawValue: 0x80)

    /// la_objsearch's first call for a name (LA_SER_ORIG).
    public var isOriginalName: Bool { contains(.orig) }

    /// The origin of the candidate path this flag marks: nil for the name as
    /// asked (ORIG) and for a flag that names no origin.
    public var origin: LookupOrigin? {
        switch subtracting(.secure) {
        case .libpath: .ldLibraryPath
        case .runpath: .rpathOrRunpath
        case .config: .cache
        case .defaultDirs: .defaultPath
        default: nil
        }
    }

    /// SECURE without another origin or ORIG (the summary counts it apart).
    public var isSecureOnly: Bool { self == .secure }
}
