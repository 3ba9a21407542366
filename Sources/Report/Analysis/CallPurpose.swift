import LoaderModel
import TraceFormat

/// Why a recorded file call happened: the classes the report ranks.
public enum CallPurpose: String, Sendable, Hashable, CaseIterable {
    /// An execve (a PATH search's failed tries included).
    case exec
    /// /etc/ld.so.preload, /etc/ld.so.cache: the loader's own configuration.
    case loaderConfig = "loader-config"
    /// The open of a candidate path in a search directory (miss or hit).
    case searchCandidate = "search"
    /// A candidate in a glibc-hwcaps or legacy tls/platform subdirectory.
    case hwcapsProbe = "hwcaps"
    /// glibc's stat of a search directory after a miss in it (once per directory).
    case directoryStat = "dir-stat"
    /// The open of a DT_NEEDED or dlopen name that contains a slash: no search.
    case absoluteOpen = "absolute"
    /// The fstat of an object the loader just opened.
    case objectStat = "object-stat"
    /// Python's import machinery: sys.path scans, .py/.pyc/extension-module probes.
    case pythonImport = "python-import"
    /// Anything else the program did (configuration files, data, locale, …).
    case other

    /// Position in `allCases`, for counting in arrays.
    public var index: Int {
        switch self {
        case .exec: 0
        case .loaderConfig: 1
        case .searchCandidate: 2
        case .hwcapsProbe: 3
        case .directoryStat: 4
        case .absoluteOpen: 5
        case .objectStat: 6
        case .pythonImport: 7
        case .other: 8
        }
    }
}

/// The part of a process's life a call happened in.
public enum Phase: Sendable, Hashable, Comparable {
    /// The execve itself, before the loader ran.
    case exec
    /// ld.so loading the program's dependencies (before main).
    case startup
    /// From main on, outside any dlopen.
    case main
    /// Inside the n-th load group after main (a dlopen), counted from 1.
    case dlopen(Int)
    /// After the loader started closing objects at exit.
    case exit

    public var name: String {
        switch self {
        case .exec: "exec"
        case .startup: "libraries"
        case .main: "main"
        case .dlopen(let n): "dlopen #\(n)"
        case .exit: "exit"
        }
    }

    /// The name without the group number, for totals by phase.
    public var kind: String {
        switch self {
        case .dlopen: "dlopen"
        default: name
        }
    }

    /// A dlopen group (any number).
    public var isDlopen: Bool {
        if case .dlopen = self { return true }
        return false
    }
}

/// One recorded call of the program (loadprobe's own calls are left out),
/// with what it was for.
public struct AttributedCall: Sendable {
    public var event: SyscallEvent
    public var purpose: CallPurpose
    public var phase: Phase
    /// Index into `ProcessAnalysis.searches`, or -1.
    public var search: Int32
    /// Index into that search's candidates, or -1.
    public var candidate: Int32

    public var failed: Bool { event.failed }
    /// A call that found nothing: a failed open, stat, access or readlink.
    public var wasted: Bool { event.failed && !event.call.isExec }
}
