import LoaderModel
#if canImport(Glibc)
import Glibc
#endif

/// The directories the modeled calls walk through, interned as a tree, with what
/// is known about each: exists, missing, or a symlink, and which file system
/// serves it. File names stay names (a pair: directory node, name id) because a
/// 900-library search tries ~400,000 distinct file paths but only a few thousand
/// directories.
public struct PathTree: Sendable {
    public enum State: UInt8, Sendable { case unknown, exists, missing }

    struct Node: Sendable {
        var parent: Int32
        var name: Int32
        var depth: Int32
        var state: State = .unknown
        /// Inferred from descendants when the state is unknown.
        var anyExisting = false
        var anyMissing = false
        /// The mount that serves it: index into `mountRoots`, or -1 for local.
        var remote: Int32 = -1
        /// True for the root directory of a remote mount (no LOOKUP reaches it).
        var isMountRoot = false
        var children: [Int32: Int32] = [:]
        /// Symlink target, when the node is a symlink (an absolute or relative path).
        var symlink: String?
    }

    var nodes: [Node] = [Node(parent: -1, name: -1, depth: 0, state: .exists)]
    /// Names (components and file names): id → string and back.
    public private(set) var names: [String] = []
    var nameIds: [String: Int32] = [:]
    /// Remote mount roots (path, node).
    public private(set) var mountRoots: [(path: String, node: Int32)] = []
    /// Symlinks at the file level: (dir node, name id) → target.
    var fileSymlinks: [UInt64: String] = [:]
    /// Files known to exist, symlinks included: (dir node, name id). The
    /// walker's test for a failed call ("missed at its last component").
    var knownOrLinked = U64Set()
    /// Directory paths → their nodes (`directory`): the traces of a job repeat
    /// the same few thousand directories.
    var directoryCache: [String: Int32] = [:]
    /// Sizes of files, when known, for the read count.
    var fileSizes: [UInt64: Int] = [:]

    public init() {}

    public static let root: Int32 = 0

    public mutating func name(_ s: String) -> Int32 {
        if let id = nameIds[s] { return id }
        let id = Int32(names.count)
        names.append(s)
        nameIds[s] = id
        return id
    }

    public func nameString(_ id: Int32) -> String { id >= 0 && Int(id) < names.count ? names[Int(id)] : "" }

    @inline(__always) static func key(_ dir: Int32, _ name: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: dir)) << 32 | UInt64(UInt32(bitPattern: name))
    }

    public mutating func child(_ parent: Int32, _ nameId: Int32) -> Int32 {
        if let c = nodes[Int(parent)].children[nameId] { return c }
        let id = Int32(nodes.count)
        var n = Node(parent: parent, name: nameId, depth: nodes[Int(parent)].depth + 1)
        n.remote = nodes[Int(parent)].remote
        nodes.append(n)
        nodes[Int(parent)].children[nameId] = id
        return id
    }

    /// The node of an absolute directory path ("" and "/" are the root).
    /// Relative paths are taken as relative to the root; callers resolve them first.
    /// (Remembered per path string, and made from the parent's node: the
    /// directories of a trace share their prefixes.)
    public mutating func directory(_ path: String) -> Int32 {
        if let n = directoryCache[path] { return n }
        let node: Int32
        if let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) {
            let parent = directory(String(path[..<slash]))
            let last = path[path.utf8.index(after: slash)...]
            node = last.isEmpty || last == "." ? parent : child(parent, name(String(last)))
        } else {
            node = path.isEmpty || path == "." ? PathTree.root : child(PathTree.root, name(path))
        }
        directoryCache[path] = node
        return node
    }

    /// The node of an absolute directory path when the tree has it (nothing is added).
    public func find(_ path: String) -> Int32? {
        var node = PathTree.root
        for comp in path.split(separator: "/", omittingEmptySubsequences: true) {
            if comp == "." { continue }
            guard let id = nameIds[String(comp)], let c = nodes[Int(node)].children[id] else { return nil }
            node = c
        }
        return node
    }

    /// (directory node, name id) of an absolute path.
    public mutating func file(_ path: String) -> (dir: Int32, name: Int32) {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return (PathTree.root, name(path)) }
        let dir = directory(String(path[..<slash]))
        return (dir, name(String(path[path.utf8.index(after: slash)...])))
    }

    public func path(_ node: Int32) -> String {
        var parts: [String] = []
        var n = node
        while n > 0 {
            parts.append(names[Int(nodes[Int(n)].name)])
            n = nodes[Int(n)].parent
        }
        return "/" + parts.reversed().joined(separator: "/")
    }

    public func path(_ dir: Int32, _ name: Int32) -> String {
        let d = path(dir)
        return (d == "/" ? "" : d) + "/" + nameString(name)
    }

    @inline(__always) public func parent(_ node: Int32) -> Int32 { nodes[Int(node)].parent }

    /// A directory as a call on the directory itself names it: (its parent, its
    /// name). The root has no parent: (the root, no name).
    public func entry(_ node: Int32) -> (dir: Int32, name: Int32) {
        let p = nodes[Int(node)].parent
        return p >= 0 ? (p, nodes[Int(node)].name) : (node, -1)
    }
    public func depth(_ node: Int32) -> Int { Int(nodes[Int(node)].depth) }

    // MARK: knowledge

    public mutating func markExists(_ node: Int32) {
        var n = node
        while n > 0 && nodes[Int(n)].state != .exists {
            nodes[Int(n)].state = .exists
            n = nodes[Int(n)].parent
        }
    }

    public mutating func markMissing(_ node: Int32) {
        if nodes[Int(node)].state == .unknown { nodes[Int(node)].state = .missing }
    }

    public mutating func markFile(_ dir: Int32, _ name: Int32, exists: Bool) {
        // Only files that exist are remembered: a failed call whose directories
        // exist missed at its last component, which is what an unknown file means.
        guard exists else { return }
        knownOrLinked.insert(PathTree.key(dir, name))
        markExists(dir)
    }

    public mutating func setSymlink(_ dir: Int32, _ name: Int32, target: String) {
        fileSymlinks[PathTree.key(dir, name)] = target
        knownOrLinked.insert(PathTree.key(dir, name))
        markExists(dir)
    }

    /// A directory node that is a symlink to `target` (a path walked through it follows the link).
    public mutating func setDirectorySymlink(_ node: Int32, target: String) {
        nodes[Int(node)].symlink = target
        markExists(node)
    }

    public mutating func setSize(_ dir: Int32, _ name: Int32, bytes: Int) {
        fileSizes[PathTree.key(dir, name)] = bytes
    }

    public func size(_ dir: Int32, _ name: Int32) -> Int? { fileSizes[PathTree.key(dir, name)] }

    public func symlinkTarget(_ dir: Int32, _ name: Int32) -> String? { fileSymlinks[PathTree.key(dir, name)] }
    public func directorySymlink(_ node: Int32) -> String? { nodes[Int(node)].symlink }

    /// Whether a directory exists, as best known: proven, or inferred from what
    /// was seen below it (only missing things below it: taken as missing).
    @inline(__always) public func exists(_ node: Int32) -> Bool {
        // Fields read in place: a copy of the node would retain its children and symlink.
        switch nodes[Int(node)].state {
        case .exists: return true
        case .missing: return false
        case .unknown: return nodes[Int(node)].anyExisting || !nodes[Int(node)].anyMissing
        }
    }

    /// Propagates proven states up the tree for the inference in `exists`.
    public mutating func settleInference() {
        for i in stride(from: nodes.count - 1, to: 0, by: -1) {
            let p = Int(nodes[i].parent)
            if nodes[i].state == .exists || nodes[i].anyExisting { nodes[p].anyExisting = true }
            if nodes[i].state == .missing || nodes[i].anyMissing { nodes[p].anyMissing = true }
        }
    }

    /// Asks the machine's file system about every directory still unknown, and
    /// about symlinks among the directories (done only when the trace was
    /// recorded on this host and the paths still exist).
    public mutating func consultHost() {
        var st = stat()
        for i in 1..<nodes.count {
            let p = path(Int32(i))
            if lstat(p, &st) == 0 {
                if nodes[i].state == .unknown { nodes[i].state = (st.st_mode & S_IFMT) == S_IFDIR || (st.st_mode & S_IFMT) == S_IFLNK ? .exists : .missing }
                if (st.st_mode & S_IFMT) == S_IFLNK, let t = PathTree.readlink(p) { nodes[i].symlink = t }
            } else if errno == ENOENT || errno == ENOTDIR {
                if nodes[i].state == .unknown { nodes[i].state = .missing }
            }
        }
    }

    /// Sizes and symlinks of the files opened successfully, from the host.
    public mutating func consultHost(files: [(dir: Int32, name: Int32)]) {
        var st = stat()
        for (d, n) in files {
            let k = PathTree.key(d, n)
            if fileSizes[k] != nil || fileSymlinks[k] != nil { continue }
            let p = path(d, n)
            guard lstat(p, &st) == 0 else { continue }
            if (st.st_mode & S_IFMT) == S_IFLNK {
                if let t = PathTree.readlink(p) { fileSymlinks[k] = t; knownOrLinked.insert(k) }
                if fstatat(AT_FDCWD, p, &st, 0) == 0 { fileSizes[k] = Int(st.st_size) }
            } else {
                fileSizes[k] = Int(st.st_size)
            }
        }
    }

    static func readlink(_ p: String) -> String? {
        var buf = [CChar](repeating: 0, count: 4097)
        let n = Glibc.readlink(p, &buf, 4096)
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: mounts

    /// Marks `path` as the root of a remote file system (index returned).
    @discardableResult
    public mutating func addRemoteRoot(_ path: String) -> Int32 {
        let node = directory(path)
        if let i = mountRoots.firstIndex(where: { $0.node == node }) { return Int32(i) }
        let idx = Int32(mountRoots.count)
        mountRoots.append((path, node))
        nodes[Int(node)].isMountRoot = true
        markExists(node)
        // Existing nodes below inherit the mount (new ones inherit on creation).
        var stack = [node]
        while let n = stack.popLast() {
            nodes[Int(n)].remote = idx
            for (_, c) in nodes[Int(n)].children where !nodes[Int(c)].isMountRoot || c == node { stack.append(c) }
        }
        return idx
    }

    public mutating func addLocalRoot(_ path: String) {
        let node = directory(path)
        var stack = [node]
        nodes[Int(node)].isMountRoot = true
        while let n = stack.popLast() {
            nodes[Int(n)].remote = -1
            for (_, c) in nodes[Int(n)].children where !nodes[Int(c)].isMountRoot { stack.append(c) }
        }
    }

    @inline(__always) public func isRemote(_ node: Int32) -> Bool { nodes[Int(node)].remote >= 0 }
    @inline(__always) public func isMountRoot(_ node: Int32) -> Bool { nodes[Int(node)].isMountRoot }
    public var count: Int { nodes.count }
}
