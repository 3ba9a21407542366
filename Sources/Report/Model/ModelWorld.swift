import LoaderModel
import TraceFormat

/// Everything the scenarios need from the traces: the recorded calls as model
/// calls, the directory tree with what is known about it, the remote mounts,
/// glibc's capability subdirectory list and the program's own search path.
public struct ModelWorld: Sendable {
    public var tree = PathTree()
    /// glibc's subdirectories tried in each search directory, in order ("" last).
    public var capabilitySubdirectories: [String] = [""]
    /// Where the program's RPATH/RUNPATH directories (what `view` replaces) come from.
    public var programSearchPathSource = "none"
    /// The remote roots and why each is remote.
    public var remote: [(path: String, why: String)] = []
    public var usedHost = false

    public struct Options: Sendable {
        /// `--remote PREFIX`: these trees are on the modeled file system.
        public var remotePrefixes: [String] = []
        /// Ignore the recorded mount table (only `remotePrefixes` are remote).
        public var ignoreMountTable = false
        /// Ask this machine's file system about directories and file sizes (when the
        /// trace comes from this host, or always with `.always`).
        public var consultHost: HostUse = .sameHost
        public init() {}
    }

    public enum HostUse: Sendable { case never, sameHost, always }

    public let options: Options
    /// Remote and local roots in the order they were collected (the traces'
    /// mount tables, then `--remote`), and those already in the tree.
    var mountRoots: [MountRoot] = []
    var addedRoots = Set<String>()
    var mountRootSeen = Set<MountRoot>()
    /// A directory whose calls are priced as remote (or, inside a remote one, local), and why.
    struct MountRoot: Hashable {
        var path: String
        var why: String
        var isRemote: Bool
    }
    /// Successful opens and execs, for the sizes and symlinks asked of the host.
    var consultFiles: [(Int32, Int32)] = []
    var consultSeen = U64Set()

    public init(options: Options) {
        self.options = options
    }

    /// Adds a trace's remote roots (its mount table) and `--remote`'s to the tree,
    /// shortest first, so nodes created later inherit them. Call before `add` of
    /// the same trace. (A trace whose mount table adds roots after other traces'
    /// calls were added: the new roots take over the nodes already below them.)
    public mutating func addRoots(_ a: TraceAnalysis) {
        var added = remote.isEmpty && addedRoots.isEmpty
        if !options.ignoreMountTable {
            // (A root already collected, the same way, adds nothing: a job's traces
            // usually share one mount table.)
            func collect(_ root: MountRoot) {
                if mountRootSeen.insert(root).inserted { mountRoots.append(root); added = true }
            }
            for m in a.mounts.mounts.reversed() {
                if MountTable.isRemote(type: m.fsType) {
                    collect(MountRoot(path: m.mountPoint, why: "\(m.fsType) in the recorded mount table", isRemote: true))
                } else if a.mounts.remoteMounts.contains(where: { MountTable.isUnder(m.mountPoint, $0.mountPoint) && $0.mountPoint != m.mountPoint }) {
                    collect(MountRoot(path: m.mountPoint, why: "local mount inside a remote one", isRemote: false))
                }
            }
        }
        guard added else { return }
        var roots = mountRoots
        for p in options.remotePrefixes {
            let clean = p.count > 1 && p.hasSuffix("/") ? String(p.dropLast()) : p
            roots.append(MountRoot(path: clean, why: "--remote", isRemote: true))
        }
        roots.sort { $0.path.utf8.count < $1.path.utf8.count }
        var seen = Set<String>()
        remote = []
        for root in roots where seen.insert(root.path).inserted {
            if addedRoots.insert(root.path).inserted {
                if root.isRemote { tree.addRemoteRoot(root.path) } else { tree.addLocalRoot(root.path) }
            }
            if root.isRemote { remote.append((root.path, root.why)) }
        }
    }

    /// One trace's calls as model calls (per process, index-aligned with
    /// `ProcessAnalysis.calls`), recording what they show about the tree, and
    /// glibc's capability subdirectory list.
    public mutating func add(_ a: TraceAnalysis) -> [[ModelCall]] {
        var caps = capabilitySubdirectories == [""] ? [] : capabilitySubdirectories
        var ids = IdMap(strings: a.trace.strings.count)
        var perTrace: [[ModelCall]] = []
        let cwd = a.trace.meta(.cwd)
        for p in a.processes {
            var calls: [ModelCall] = []
            calls.reserveCapacity(p.calls.count)
            for c in p.calls {
                let mc = ModelWorld.modelCall(c, trace: a.trace, cwd: cwd, tree: &tree, ids: &ids)
                calls.append(mc)
                if !c.failed {
                    switch mc.kind {
                    case .open, .exec, .stat, .lstat, .access, .readlink:
                        tree.markFile(mc.dir, mc.name, exists: true)
                        if (mc.kind == .open || mc.kind == .exec) && consultSeen.insert(PathTree.key(mc.dir, mc.name)) {
                            consultFiles.append((mc.dir, mc.name))
                        }
                    case .openDirectory:
                        tree.markExists(tree.child(mc.dir, mc.name))
                    case .fstat:
                        break
                    }
                } else if mc.kind != .fstat {
                    tree.markFile(mc.dir, mc.name, exists: false)
                }
                if c.purpose == .directoryStat || (c.purpose == .hwcapsProbe && c.event.call.isStat) {
                    let node = tree.child(mc.dir, mc.name)
                    if c.failed { tree.markMissing(node) } else { tree.markExists(node) }
                }
            }
            perTrace.append(calls)
            // The longest run of subdirectories tried in one directory is glibc's list.
            // (Directories compared by their number within the process; the run is
            // made into strings only when it is the longest so far.)
            for s in p.searches {
                var runStart = 0, runLength = 0
                var dir: Int32 = -1
                var first = true
                for ci in s.candidates.indices where s.candidates[ci].origin != .cache {
                    let dirId = s.candidates[ci].directoryId
                    if first || dirId != dir { runStart = ci; runLength = 0; dir = dirId; first = false }
                    runLength += 1
                    if runLength > caps.count && s.candidates[ci].subdirectory.isEmpty {
                        caps = s.candidates[runStart...ci].filter { $0.origin != .cache }.map(\.subdirectory)
                    }
                }
            }
        }
        if !caps.isEmpty { capabilitySubdirectories = caps }
        return perTrace
    }

    /// After the last `add`: settles what is inferred about directories, and asks
    /// the host's file system when allowed.
    public mutating func settle(consultHost: Bool) {
        tree.settleInference()
        if consultHost {
            tree.consultHost()
            tree.consultHost(files: consultFiles)
            usedHost = true
        }
    }

    /// The program's RPATH/RUNPATH as the trace shows it: the start-up search
    /// that went through the most directories among those starting where the
    /// first search started (the program's own DT_NEEDED are searched first).
    static func inferProgramSearchPath(_ p: ProcessAnalysis) -> [String] {
        let startup = p.searches.filter { $0.phase == .startup && !$0.candidates.isEmpty }
        guard let first = startup.first?.candidates.first(where: { $0.origin == .rpath })?.directory else { return [] }
        // (Directories compared by their number within the process; strings made for the longest only.)
        var best: [Int] = []
        var bestSearch = -1
        for (si, s) in startup.enumerated() {
            var dirs: [Int] = []
            var last: Int32 = -1
            for ci in s.candidates.indices where s.candidates[ci].origin == .rpath && (dirs.isEmpty || s.candidates[ci].directoryId != last) {
                dirs.append(ci)
                last = s.candidates[ci].directoryId
            }
            if let f = dirs.first, s.candidates[f].directory == first && dirs.count > best.count { best = dirs; bestSearch = si }
        }
        return bestSearch < 0 ? [] : best.map { startup[bestSearch].candidates[$0].directory }
    }

    /// Trace string ids → tree nodes and names, so each directory string is parsed once.
    struct IdMap {
        /// By trace string id: the tree node (-1: not absolute, -2: not seen yet) and the name id (-1: not seen yet).
        var dirs: [Int32]
        var names: [Int32]
        init(strings: Int) {
            dirs = [Int32](repeating: -2, count: strings)
            names = [Int32](repeating: -1, count: strings)
        }
    }

    static func modelCall(_ c: AttributedCall, trace: Trace, cwd: String?, tree: inout PathTree, ids: inout IdMap) -> ModelCall {
        let e = c.event
        let p = e.resolved ?? e.path
        var unresolved = false
        let kind = kindOf(e, trace)
        if p.dir != 0 && Int(p.dir) < ids.dirs.count && Int(p.base) < ids.names.count {
            var d = ids.dirs[Int(p.dir)]
            if d == -2 {
                let s = trace.string(p.dir)
                d = s.hasPrefix("/") ? tree.directory(s) : -1
                ids.dirs[Int(p.dir)] = d
            }
            if d >= 0 {
                var n = ids.names[Int(p.base)]
                if n < 0 { n = tree.name(trace.string(p.base)); ids.names[Int(p.base)] = n }
                return ModelCall(kind: kind, call: e.call, dir: d, name: n, failed: e.failed,
                                 unresolved: kind == .fstat && e.resolved == nil, purpose: c.purpose)
            }
        }
        var full = trace.path(p)
        if !full.hasPrefix("/") {
            if let cwd, e.dirfd == nil || e.dirfd == -100 {
                full = (cwd == "/" ? "" : cwd) + "/" + full
            } else {
                unresolved = true
            }
        }
        if kind == .fstat && e.resolved == nil { unresolved = true }
        let (d, n) = tree.file(full)
        return ModelCall(kind: kind, call: e.call, dir: d, name: n, failed: e.failed, unresolved: unresolved, purpose: c.purpose)
    }

    static func kindOf(_ e: SyscallEvent, _ trace: Trace) -> ModelCall.Kind {
        let kind: ModelCall.Kind
        switch e.call {
        case .open, .openat, .openat2, .creat:
            kind = e.flags & 0o200000 != 0 ? .openDirectory : .open
        case .stat, .newfstatat, .statx:
            if trace.string(e.path.base).isEmpty && e.path.dir == 0 {
                kind = .fstat
            } else {
                kind = e.flags & 0x100 != 0 ? .lstat : .stat
            }
        case .lstat: kind = .lstat
        case .access, .faccessat, .faccessat2: kind = .access
        case .readlink, .readlinkat: kind = .readlink
        case .execve, .execveat: kind = .exec
        }
        return kind
    }
}
