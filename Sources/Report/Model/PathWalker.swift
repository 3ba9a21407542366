/// Turns model calls into server operations the way the Linux VFS walks a path
/// on NFS or FUSE: one LOOKUP per component below the mount root that the
/// client has not cached (a missing component ends the walk with a failed
/// LOOKUP), a READLINK plus a walk of the target for each symlink followed, then
/// the call's own operation (OPEN and READs, GETATTR, ACCESS, READLINK). `..`
/// costs nothing (the kernel has the parent). Calls on local paths cost the
/// profile's local call time instead.
public struct PathWalker {
    public var tree: PathTree
    public let profile: FileSystemProfile
    /// Client cache state: directory nodes whose LOOKUP is cached, and file
    /// names (dir node, name) cached positively, negatively or with attributes.
    var cachedDirs: [Bool]
    var cachedNames: Set<UInt64> = []
    var cachedMisses: Set<UInt64> = []
    var cachedAttrs: Set<UInt64> = []
    var cachedData: Set<UInt64> = []

    public struct Cost: Sendable {
        public var ops = OperationCounts()
        public var remoteSeconds: Double = 0
        public var localSeconds: Double = 0
        public var localCalls = 0
        public var remoteCalls = 0
        /// Bytes read from the server (object data not in the client's page cache).
        public var bytesRead = 0
        public var seconds: Double { remoteSeconds + localSeconds }
        public static func + (a: Cost, b: Cost) -> Cost {
            Cost(ops: a.ops + b.ops, remoteSeconds: a.remoteSeconds + b.remoteSeconds, localSeconds: a.localSeconds + b.localSeconds,
                 localCalls: a.localCalls + b.localCalls, remoteCalls: a.remoteCalls + b.remoteCalls, bytesRead: a.bytesRead + b.bytesRead)
        }
    }

    public init(tree: PathTree, profile: FileSystemProfile) {
        self.tree = tree
        self.profile = profile
        cachedDirs = [Bool](repeating: false, count: tree.count)
        if profile.positiveCacheSeconds > 0 {
            cachedNames.reserveCapacity(4096)
            cachedAttrs.reserveCapacity(4096)
        }
    }

    /// Forgets the client caches (a cold node).
    public mutating func coldCaches() {
        cachedDirs = [Bool](repeating: false, count: tree.count)
        cachedNames.removeAll(keepingCapacity: true)
        cachedMisses.removeAll(keepingCapacity: true)
        cachedAttrs.removeAll(keepingCapacity: true)
        cachedData.removeAll(keepingCapacity: true)
    }

    var positive: Bool { profile.positiveCacheSeconds > 0 }
    var negative: Bool { profile.negativeCacheSeconds > 0 }

    mutating func op(_ o: ServerOperation, _ c: inout Cost) {
        c.ops[o] += 1
        c.remoteSeconds += profile.latency(o)
    }

    /// Prices one call, updating the client caches.
    public mutating func price(_ call: ModelCall) -> Cost {
        var c = Cost()
        if cachedDirs.count < tree.count { cachedDirs += [Bool](repeating: false, count: tree.count - cachedDirs.count) }
        if call.unresolved || (!tree.isRemote(call.dir) && call.kind != .fstat) {
            local(call, &c)
            return c
        }
        switch call.kind {
        case .fstat:
            if !tree.isRemote(call.dir) { local(call, &c); return c }
            c.remoteCalls += 1
            let k = PathTree.key(call.dir, call.name)
            if profile.fstatReachesServer && !(positive && cachedAttrs.contains(k)) { op(.getattr, &c) }
            if positive { cachedAttrs.insert(k) }
            return c
        default:
            break
        }
        c.remoteCalls += 1
        // The kernel's and ld.so's own work for the call, as on local disk.
        c.localSeconds += call.failed ? profile.localMissSeconds : profile.localHitSeconds
        var depth = 0
        guard let (d, n) = walk(dir: call.dir, name: call.name, follow: call.kind != .lstat && call.kind != .readlink,
                                failed: call.failed, cost: &c, depth: &depth) else {
            return c
        }
        let k = PathTree.key(d, n)
        switch call.kind {
        case .open, .exec:
            op(.open, &c)
            if profile.openRevalidates { op(.getattr, &c); if positive { cachedAttrs.insert(k) } }
            // execve asks for the file's attributes three more times on FUSE
            // (permission, set-id bits, the loader's fstat of AT_EXECFD-less
            // start) and reads its first page before the loader maps the rest:
            // measured with the bench's latfs (docs/cost-model.md).
            if call.kind == .exec && profile.fstatReachesServer { for _ in 0..<3 { op(.getattr, &c) } }
            if call.kind == .exec { op(.read, &c) }
            // The page cache keeps the data for the node when the client caches
            // (NFS revalidates it with the GETATTR above); FUSE without keep_cache drops it.
            if !(positive && cachedData.contains(k)) {
                let size = tree.size(d, n)
                let reads = size.map { max(1, ($0 + profile.readBytes - 1) / profile.readBytes) } ?? profile.readsPerObjectDefault
                for _ in 0..<reads { op(.read, &c) }
                c.bytesRead += size ?? reads * profile.readBytes
            }
            if positive { cachedData.insert(k) }
        case .openDirectory:
            op(.open, &c)
        case .stat, .lstat:
            if !(positive && cachedAttrs.contains(k)) { op(.getattr, &c) }
            if positive { cachedAttrs.insert(k) }
        case .access:
            op(.access, &c)
        case .readlink:
            op(.readlink, &c)
        case .fstat:
            break
        }
        return c
    }

    mutating func local(_ call: ModelCall, _ c: inout Cost) {
        c.localCalls += 1
        c.localSeconds += call.failed ? profile.localMissSeconds : profile.localHitSeconds
    }

    /// Walks to (dir, name); returns the final (dir, name) reached, or nil when
    /// the walk ended at a missing component.
    mutating func walk(dir: Int32, name: Int32, follow: Bool, failed: Bool, cost c: inout Cost,
                       depth: inout Int) -> (Int32, Int32)? {
        guard let realDir = walkDirectory(dir, cost: &c, depth: &depth) else { return nil }
        let k = PathTree.key(realDir, name)
        let remote = tree.isRemote(realDir)
        if failed && tree.knownFiles[k] != true && tree.fileSymlinks[k] == nil {
            if remote && !(negative && cachedMisses.contains(k)) { op(.lookupMiss, &c) }
            if negative { cachedMisses.insert(k) }
            return nil
        }
        if remote && !(positive && cachedNames.contains(k)) { op(.lookup, &c) }
        if positive { cachedNames.insert(k) }
        if follow, let target = tree.symlinkTarget(realDir, name), depth < 40 {
            depth += 1
            if remote { op(.readlink, &c) }
            let abs = target.hasPrefix("/") ? target : tree.path(realDir) + "/" + target
            let (td, tn) = tree.file(normalize(abs))
            if Int(td) >= cachedDirs.count { cachedDirs += [Bool](repeating: false, count: tree.count - cachedDirs.count) }
            return walk(dir: td, name: tn, follow: true, failed: failed, cost: &c, depth: &depth)
        }
        return (realDir, name)
    }

    /// Walks the directory chain of `node` from the root; returns the directory
    /// actually reached (through directory symlinks), nil at a missing component.
    /// The nodes from the root down to a directory, computed once per directory.
    var chains: [Int32: [Int32]] = [:]

    mutating func chain(_ node: Int32) -> [Int32] {
        if let c = chains[node] { return c }
        var chain: [Int32] = []
        var n = node
        while n > 0 { chain.append(n); n = tree.parent(n) }
        chain.reverse()
        chains[node] = chain
        return chain
    }

    mutating func walkDirectory(_ node: Int32, cost c: inout Cost, depth: inout Int) -> Int32? {
        let chain = chain(node)
        var reached: Int32 = PathTree.root
        for node in chain {
            let remote = tree.isRemote(node) && !tree.isMountRoot(node)
            if !tree.exists(node) {
                let k = PathTree.key(tree.parent(node), tree.nodes[Int(node)].name)
                if remote && !(negative && cachedMisses.contains(k)) { op(.lookupMiss, &c) }
                if negative { cachedMisses.insert(k) }
                return nil
            }
            if remote && !(positive && cachedDirs[Int(node)]) { op(.lookup, &c) }
            if positive { cachedDirs[Int(node)] = true }
            reached = node
            if let target = tree.directorySymlink(node), depth < 40 {
                depth += 1
                if remote { op(.readlink, &c) }
                let base = tree.path(tree.parent(node))
                let abs = target.hasPrefix("/") ? target : (base == "/" ? "" : base) + "/" + target
                let t = tree.directory(normalize(abs))
                if Int(t) >= cachedDirs.count { cachedDirs += [Bool](repeating: false, count: tree.count - cachedDirs.count) }
                // Continue below the target: re-walk the rest of the chain from there.
                let rest = chain.drop(while: { $0 != node }).dropFirst().map { tree.nodes[Int($0)].name }
                guard var cur = walkDirectory(t, cost: &c, depth: &depth) else { return nil }
                for name in rest {
                    cur = tree.child(cur, name)
                    if Int(cur) >= cachedDirs.count { cachedDirs += [Bool](repeating: false, count: tree.count - cachedDirs.count) }
                    let rm = tree.isRemote(cur) && !tree.isMountRoot(cur)
                    if !tree.exists(cur) {
                        if rm { op(.lookupMiss, &c) }
                        return nil
                    }
                    if rm && !(positive && cachedDirs[Int(cur)]) { op(.lookup, &c) }
                    if positive { cachedDirs[Int(cur)] = true }
                }
                return cur
            }
        }
        return reached
    }

    func normalize(_ path: String) -> String {
        var out: [Substring] = []
        for comp in path.split(separator: "/") {
            if comp == "." { continue }
            if comp == ".." { if !out.isEmpty { out.removeLast() }; continue }
            out.append(comp)
        }
        return "/" + out.joined(separator: "/")
    }
}
