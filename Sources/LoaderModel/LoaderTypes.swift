import TraceFormat
/// The system calls a step of the load costs, counted as `strace -f` shows them.
public struct SyscallCounts: Sendable, Hashable {
    /// openat (glibc) or open (musl) calls, failed ones included.
    public var openat: Int
    /// stat of a path: glibc's directory-existence checks (newfstatat on a path).
    public var statPath: Int
    /// fstat of an opened object (glibc: newfstatat(fd, "", AT_EMPTY_PATH); musl: fstat).
    public var fstat: Int

    public init(openat: Int = 0, statPath: Int = 0, fstat: Int = 0) {
        self.openat = openat
        self.statPath = statPath
        self.fstat = fstat
    }

    /// Every stat-family call, the "stat" that strace counts.
    public var stat: Int { statPath + fstat }
    public var total: Int { openat + stat }

    public static func + (a: SyscallCounts, b: SyscallCounts) -> SyscallCounts {
        SyscallCounts(openat: a.openat + b.openat, statPath: a.statPath + b.statPath, fstat: a.fstat + b.fstat)
    }

    public static func += (a: inout SyscallCounts, b: SyscallCounts) { a = a + b }
}

/// One candidate path the loader considered for a name, and what became of it.
public struct SearchAttempt: Sendable, Hashable {
    public enum Outcome: Sendable, Hashable {
        /// Opened and accepted.
        case found
        /// Opened, and it is a file already loaded (same device and inode): reused.
        case sameFileAsLoaded(String)
        /// open failed: ENOENT, ENOTDIR, EACCES, …
        case missing(errno: Int32)
        /// An ELF file of the other class (32-bit): glibc skips it and searches on.
        case wrongClass
        /// An ELF file for another machine: glibc skips it silently.
        case wrongMachine
        /// A file glibc refuses with a fatal error ("invalid ELF header", "file too short").
        case rejected(reason: String)
        /// Not tried: the subdirectory is already known not to exist (glibc's
        /// per-directory cache), so no system call is made.
        case skippedMissingDirectory
        /// glibc read /etc/ld.so.cache (first cache lookup of the process).
        case readCache
        /// The cache has no usable entry for the name.
        case notInCache
        /// A cache entry glibc ignored because the needing object has DF_1_NODEFLIB.
        case cacheEntryIgnoredByNodeflib(String)
        /// musl read /etc/ld-musl-ARCH.path (or found it missing).
        case readPathFile(found: Bool)
    }

    public var path: String
    public var origin: LookupOrigin
    /// The object whose RPATH or RUNPATH supplied the directory.
    public var originObject: String?
    public var outcome: Outcome
    public var cost: SyscallCounts
    /// The capability subdirectory the candidate lies in ("glibc-hwcaps/x86-64-v3/",
    /// "tls/x86_64/", …; "" for the search directory itself).
    public var subdirectory: String

    public init(path: String, origin: LookupOrigin, originObject: String? = nil, outcome: Outcome, cost: SyscallCounts,
                subdirectory: String = "") {
        self.path = path
        self.origin = origin
        self.originObject = originObject
        self.outcome = outcome
        self.cost = cost
        self.subdirectory = subdirectory
    }

    /// True when this attempt opened (or tried to open) the candidate itself.
    public var isTry: Bool {
        switch outcome {
        case .found, .sameFileAsLoaded, .missing, .wrongClass, .wrongMachine, .rejected: true
        default: false
        }
    }
}

/// One DT_NEEDED entry (or LD_PRELOAD entry) processed by the loader, in the
/// loader's order, with how it was resolved.
public struct ResolvedObject: Sendable, Hashable {
    public var needed: String
    /// The path of the object whose DT_NEEDED this is; "LD_PRELOAD" for preloads.
    public var neededBy: String
    /// The file that ends up serving this name; nil when nothing was found.
    public var path: String?
    public var origin: LookupOrigin?
    /// Whose RPATH/RUNPATH held the directory of the hit.
    public var originObject: String?
    public var attempts: [SearchAttempt]
    /// Depth in the dependency tree: 1 for the program's own DT_NEEDED.
    public var depth: Int
    /// True when this lookup mapped a new object (false for LOADED and same-file reuse).
    public var loadedNewObject: Bool
    /// The soname of the file found (nil when it has none or nothing was found).
    public var soname: String?
    /// Why the load fails here, as ld.so would say it; nil on success.
    public var failure: String?
    /// The load group: 0 the start-up, n the n-th dlopen simulated.
    public var group = 0

    public init(needed: String, neededBy: String, path: String?, origin: LookupOrigin?, originObject: String?,
                attempts: [SearchAttempt], depth: Int, loadedNewObject: Bool, soname: String?, failure: String?) {
        self.needed = needed
        self.neededBy = neededBy
        self.path = path
        self.origin = origin
        self.originObject = originObject
        self.attempts = attempts
        self.depth = depth
        self.loadedNewObject = loadedNewObject
        self.soname = soname
        self.failure = failure
    }

    /// Candidates opened, the hit included.
    public var tries: Int { attempts.filter(\.isTry).count }
    public var cost: SyscallCounts { attempts.reduce(SyscallCounts()) { $0 + $1.cost } }
}

public enum LoaderFlavor: Sendable, Hashable, CustomStringConvertible {
    case glibc(GlibcVersion)
    case musl

    public var description: String {
        switch self {
        case .glibc(let v): "glibc \(v)"
        case .musl: "musl"
        }
    }
}

/// An object in the process after the load: the program, the loader itself, the
/// vDSO and every library mapped, in load order.
public struct LoadedObject: Sendable, Hashable {
    public enum Role: Sendable, Hashable { case program, interpreter, vdso, library }
    public var path: String
    public var role: Role
    /// The names it answers to (the names it was requested under, and its soname once matched).
    public var names: [String]
    public var soname: String?
    public var fileID: FileID?
    /// Index (in `LoadResult.loaded`) of the object whose DT_NEEDED loaded it.
    public var loader: Int?
    public var elf: ELFFile?
}

/// The outcome of a simulated start-up.
public struct LoadResult: Sendable {
    public var flavor: LoaderFlavor
    public var program: ELFFile
    /// The interpreter used (PT_INTERP, or the profile's for a library given as the program).
    public var interpreter: String
    public var objects: [ResolvedObject]
    public var loaded: [LoadedObject]
    /// System calls of the whole simulated load, continued past a failure as
    /// `ld.so --list` does.
    public var total: SyscallCounts
    /// System calls a real start-up makes: up to and including the first fatal error.
    public var predicted: SyscallCounts
    /// The first error that stops a real start-up.
    public var failure: StartupFailure?
    /// The search directories of the simulation, for hazard analysis.
    public var environment: LoaderEnvironment
    /// The glibc profile used (nil for musl).
    public var glibcProfile: GlibcProfile?

    /// Each distinct library path with the first name it was loaded under.
    public var libraries: [(name: String, path: String)] {
        objects.filter(\.loadedNewObject).compactMap { object in object.path.map { (object.needed, $0) } }
    }
}

/// Why the program would not start, in ld.so's words plus the context.
public struct StartupFailure: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable {
        case missingInterpreter, missingLibrary, rejectedLibrary, symbolVersion, wrongClass, wrongMachine
    }
    public var kind: Kind
    /// The object that could not be satisfied (the needing object for a missing library).
    public var object: String
    public var message: String
    package init(kind: Kind, object: String, message: String) {
        self.kind = kind; self.object = object; self.message = message
    }
}

/// The environment a start-up sees: the variables that steer the loader.
public struct LoaderEnvironment: Sendable, Hashable {
    public var ldLibraryPath: String?
    public var ldPreload: String?
    /// AT_SECURE (setuid/setgid): LD_LIBRARY_PATH and LD_PRELOAD are ignored.
    public var secure: Bool
    public var workingDirectory: String

    public init(ldLibraryPath: String? = nil, ldPreload: String? = nil, secure: Bool = false,
                workingDirectory: String = HostFileSystem().workingDirectory) {
        self.ldLibraryPath = ldLibraryPath
        self.ldPreload = ldPreload
        self.secure = secure
        self.workingDirectory = workingDirectory
    }

    /// From a variable list such as /proc/PID/environ or a trace's recorded environment.
    public init(variables: [String: String], workingDirectory: String = HostFileSystem().workingDirectory) {
        self.init(ldLibraryPath: variables["LD_LIBRARY_PATH"], ldPreload: variables["LD_PRELOAD"],
                  workingDirectory: workingDirectory)
    }

    /// This process's own environment.
    public static func current() -> LoaderEnvironment {
        func value(_ name: String) -> String? {
            guard let pointer = getenv(name) else { return nil }
            return String(cString: pointer)
        }
        return LoaderEnvironment(ldLibraryPath: value("LD_LIBRARY_PATH"), ldPreload: value("LD_PRELOAD"))
    }

    /// Parses "NAME=value" entries separated by NUL or newline (/proc/PID/environ, `env` output).
    public static func parse(environmentFile bytes: [UInt8]) -> [String: String] {
        var result: [String: String] = [:]
        for entry in bytes.split(whereSeparator: { $0 == 0 || $0 == 0x0a }) {
            guard let eq = entry.firstIndex(of: 0x3d) else { continue }
            let name = String(decoding: entry[entry.startIndex..<eq], as: UTF8.self)
            let value = String(decoding: entry[(eq + 1)...], as: UTF8.self)
            result[name] = value
        }
        return result
    }
}

#if canImport(Glibc)
import Glibc
#endif
