import LoaderModel
/// The mount table of the recorded run (/proc/self/mountinfo as the trace kept
/// it): which file system serves a path.
public struct MountTable: Sendable {
    public struct Mount: Sendable, Equatable {
        public var mountPoint: String
        public var fsType: String
        public var source: String
    }
    /// Longest mount point first, so the first match is the serving mount.
    public var mounts: [Mount]

    /// File system types served over the network or by a user-space server: the
    /// ones the cost model prices with the profile (local ones are priced as local).
    public static let remoteTypes: Set<String> = [
        "nfs", "nfs4", "lustre", "gpfs", "beegfs", "cifs", "smb3", "ceph", "glusterfs", "9p", "afs",
        "panfs", "pvfs2", "orangefs", "wekafs", "virtiofs",
    ]

    public init(mountinfo: String) {
        var out: [Mount] = []
        for line in mountinfo.split(separator: "\n") {
            // id parent major:minor root mount-point options [optional…] - type source super-options
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count >= 7, let sep = f.firstIndex(of: "-"), sep + 1 < f.count else { continue }
            let point = MountTable.unescape(String(f[4]))
            let type = String(f[sep + 1])
            let source = sep + 2 < f.count ? String(f[sep + 2]) : ""
            out.append(Mount(mountPoint: point, fsType: type, source: source))
        }
        // Later mounts over the same point hide earlier ones: keep the last.
        var seen = Set<String>()
        var unique: [Mount] = []
        for m in out.reversed() where seen.insert(m.mountPoint).inserted { unique.append(m) }
        mounts = unique.sorted { $0.mountPoint.utf8.count > $1.mountPoint.utf8.count }
    }

    public init(mounts: [Mount]) {
        self.mounts = mounts.sorted { $0.mountPoint.utf8.count > $1.mountPoint.utf8.count }
    }

    /// The mount serving an absolute path.
    public func mount(for path: String) -> Mount? {
        for m in mounts where MountTable.isUnder(path, m.mountPoint) { return m }
        return nil
    }

    public static func isRemote(type: String) -> Bool {
        remoteTypes.contains(type) || type.hasPrefix("fuse.") || type == "fuse" || type.hasPrefix("nfs")
    }

    /// The remote mounts (network, parallel and FUSE file systems).
    public var remoteMounts: [Mount] { mounts.filter { MountTable.isRemote(type: $0.fsType) } }

    public static func isUnder(_ path: String, _ prefix: String) -> Bool {
        if prefix == "/" { return path.hasPrefix("/") }
        guard path.hasPrefix(prefix) else { return false }
        let rest = path.utf8.dropFirst(prefix.utf8.count)
        return rest.isEmpty || rest.first == UInt8(ascii: "/")
    }

    /// mountinfo escapes space, tab, newline and backslash as \ooo.
    static func unescape(_ s: String) -> String {
        guard s.contains("\\") else { return s }
        var out: [UInt8] = []
        let b = Array(s.utf8)
        var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "\\"), i + 4 <= b.count,
               let v = UInt8(String(decoding: b[(i + 1)..<(i + 4)], as: UTF8.self), radix: 8) {
                out.append(v); i += 4
            } else {
                out.append(b[i]); i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
