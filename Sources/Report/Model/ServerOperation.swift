/// What a file system serves, as NFS and FUSE count it: the kernel turns one
/// system call into several of these (a LOOKUP per path component not in the
/// client's cache, then GETATTR, ACCESS, OPEN, READLINK or READ).
public enum ServerOperation: Int, Sendable, CaseIterable, Hashable {
    case lookup, lookupMiss, getattr, access, open, readlink, read

    public var name: String {
        switch self {
        case .lookup: "lookup"
        case .lookupMiss: "lookupMiss"
        case .getattr: "getattr"
        case .access: "access"
        case .open: "open"
        case .readlink: "readlink"
        case .read: "read"
        }
    }

    /// The name used by `--latency` (a miss is priced as a lookup unless given).
    public static func parse(_ s: String) -> ServerOperation? {
        switch s.lowercased() {
        case "lookup", "hit": .lookup
        case "miss", "lookup-miss", "lookupmiss", "negative": .lookupMiss
        case "getattr", "stat", "attr": .getattr
        case "access": .access
        case "open": .open
        case "readlink", "symlink": .readlink
        case "read": .read
        default: nil
        }
    }
}

/// Counts per server operation kind.
public struct OperationCounts: Sendable, Equatable {
    public var counts = [Int](repeating: 0, count: ServerOperation.allCases.count)
    public init() {}
    public subscript(_ op: ServerOperation) -> Int {
        get { counts[op.rawValue] }
        set { counts[op.rawValue] = newValue }
    }
    public var total: Int { counts.reduce(0, +) }
    public var lookups: Int { self[.lookup] + self[.lookupMiss] }
    public static func + (a: OperationCounts, b: OperationCounts) -> OperationCounts {
        var r = a
        for i in r.counts.indices { r.counts[i] += b.counts[i] }
        return r
    }
    public static func += (a: inout OperationCounts, b: OperationCounts) { a = a + b }
    public func scaled(_ k: Int) -> OperationCounts {
        var r = self
        for i in r.counts.indices { r.counts[i] *= k }
        return r
    }
}
