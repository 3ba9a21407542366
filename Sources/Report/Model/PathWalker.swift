import LoaderModel
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
    /// With positive caching: directories whose whole chain was walked, exists,
    /// has no symlink and is in the client's cache: walking them again costs
    /// nothing and changes nothing (reset with the caches).
    var dirReady: [Bool]
    var cachedNames = U64Set()
    var cachedMisses = U64Set()
    var cachedAttrs = U64Set()
    var cachedData = U64Set()

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
        dirReady = [Bool](repeating: false, count: tree.count)
        if profile.positiveCacheSeconds > 0 {
            cachedNames = U64Set(capacity: 4096)
            cachedAttrs = U64Set(capacity: 4096)
        }
    }

    /// Forgets the client caches (a cold node).
    public mutating func coldCaches() {
        cachedDirs = [Bool](repeating: false, count: tree.count)
        dirReady = [Bool](repeating: false, count: tree.count)
        cachedNames.removeAll()
        cachedMisses.removeAll()
        cachedAttrs.removeAll()
        cachedData.removeAll()
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
            // What opening and closing the file costs beyond its operations
            // (the profile's open overhead), CPU time as the local part is.
            c.localSeconds += profile.openOverhead
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
        if failed && !tree.knownOrLinked.contains(k) {
            // (One probe: insert says whether the miss was cached already.)
            let cached = negative && !cachedMisses.insert(k)
            if remote && !cached { op(.lookupMiss, &c) }
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
    mutating func walkDirectory(_ node: Int32, cost c: inout Cost, depth: inout Int) -> Int32? {
        let ni = Int(node)
        if ni < dirReady.count && dirReady[ni] { return node }
        // The nodes from the root (or from the deepest ancestor already walked in
        // full: walking it again would cost and change nothing) down to the
        // directory, in a buffer on the stack.
        let n = tree.depth(node)
        let reached = withUnsafeTemporaryAllocation(of: Int32.self, capacity: max(1, n)) { buf in
            var x = node
            var i = n
            while x > 0 && i > 0 {
                if Int(x) < dirReady.count && dirReady[Int(x)] { break }
                i -= 1; buf[i] = x; x = tree.parent(x)
            }
            return walkChain(UnsafeBufferPointer(rebasing: buf[i..<n]), from: x, cost: &c, depth: &depth)
        }
        // Every component now exists and is cached (no symlink was followed: the
        // walk ended at the node itself).
        if positive && reached == node {
            if ni >= dirReady.count { dirReady += [Bool](repeating: false, count: max(ni + 1, tree.count) - dirReady.count) }
            if !chainHasSymlink(node) { dirReady[ni] = true }
        }
        return reached
    }

    func chainHasSymlink(_ node: Int32) -> Bool {
        var x = node
        while x > 0 {
            if tree.nodes[Int(x)].symlink != nil { return true }
            x = tree.parent(x)
        }
        return false
    }

    mutating func walkChain(_ chain: UnsafeBufferPointer<Int32>, from start: Int32 = PathTree.root,
                            cost c: inout Cost, depth: inout Int) -> Int32? {
        var reached: Int32 = start
        for node in chain {
            let remote = tree.isRemote(node) && !tree.isMountRoot(node)
            if !tree.exists(node) {
                let k = PathTree.key(tree.parent(node), tree.nodes[Int(node)].name)
                let cached = negative && !cachedMisses.insert(k)
                if remote && !cached { op(.lookupMiss, &c) }
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
