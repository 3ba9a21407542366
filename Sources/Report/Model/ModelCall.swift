import LoaderModel
import TraceFormat

/// One file call of a scenario: what the program would call, on which path, and
/// whether it would find something. Scenarios produce these; the walker turns
/// them into server operations.
public struct ModelCall: Sendable {
    public enum Kind: UInt8, Sendable {
        /// open/openat of a file (a successful one is followed by reads).
        case open
        /// open of a directory (O_DIRECTORY), e.g. a listing.
        case openDirectory
        /// stat family on a path.
        case stat
        /// stat family that does not follow a final symlink (lstat, AT_SYMLINK_NOFOLLOW).
        case lstat
        /// fstat of an open file (newfstatat with AT_EMPTY_PATH): no walk.
        case fstat
        case access
        case readlink
        case exec
    }
    public var kind: Kind
    /// The system call as `totals.syscalls` names it.
    public var call: FileCall
    public var dir: Int32
    public var name: Int32
    public var failed: Bool
    /// The path could not be resolved (a relative path without its directory): priced as local.
    public var unresolved: Bool
    public var purpose: CallPurpose

    public init(kind: Kind, call: FileCall, dir: Int32, name: Int32, failed: Bool, unresolved: Bool = false,
                purpose: CallPurpose) {
        self.kind = kind; self.call = call; self.dir = dir; self.name = name; self.failed = failed
        self.unresolved = unresolved; self.purpose = purpose
    }
}

/// The calls of one process in one scenario.
public struct ModelProcess: Sendable {
    public var label: String
    public var calls: [ModelCall]
    /// Objects the process maps (for the reads of the static scenario).
    public var objects: Int
}
