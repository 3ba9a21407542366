import LoaderModel
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

/// Counts per server operation kind (stored inline: no allocation per call priced).
public struct OperationCounts: Sendable, Equatable {
    var c0 = 0, c1 = 0, c2 = 0, c3 = 0, c4 = 0, c5 = 0, c6 = 0
    public init() {}
    public subscript(_ op: ServerOperation) -> Int {
        get {
            switch op {
            case .lookup: c0
            case .lookupMiss: c1
            case .getattr: c2
            case .access: c3
            case .open: c4
            case .readlink: c5
            case .read: c6
            }
        }
        set {
            switch op {
            case .lookup: c0 = newValue
            case .lookupMiss: c1 = newValue
            case .getattr: c2 = newValue
            case .access: c3 = newValue
            case .open: c4 = newValue
            case .readlink: c5 = newValue
            case .read: c6 = newValue
            }
        }
    }
    public var counts: [Int] { [c0, c1, c2, c3, c4, c5, c6] }
    public var total: Int { c0 + c1 + c2 + c3 + c4 + c5 + c6 }
    public var lookups: Int { c0 + c1 }
    public static func + (a: OperationCounts, b: OperationCounts) -> OperationCounts {
        var r = a
        r.c0 += b.c0; r.c1 += b.c1; r.c2 += b.c2; r.c3 += b.c3; r.c4 += b.c4; r.c5 += b.c5; r.c6 += b.c6
        return r
    }
    public static func += (a: inout OperationCounts, b: OperationCounts) { a = a + b }
    /// Each count divided by `n`, rounded (per-trace averages).
    public func divided(by n: Int) -> OperationCounts {
        guard n > 1 else { return self }
        var r = OperationCounts()
        for op in ServerOperation.allCases { r[op] = (self[op] + n / 2) / n }
        return r
    }
}
