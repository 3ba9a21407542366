import TraceFormat

/// Everything the scenarios need from the traces: the recorded calls as model
/// calls, the directory tree with what is known about it, the remote mounts,
/// glibc's capability subdirectory list and the program's own search path.
public struct ModelWorld: Sendable {
    public var tree = PathTree()
    /// Per trace, per process: the recorded calls, index-aligned with `ProcessAnalysis.calls`.
    public var recorded: [[[ModelCall]]] = []
    /// glibc's subdirectories tried in each search directory, in order ("" last).
    public var capabilitySubdirectories: [String] = [""]
    /// The program's RPATH/RUNPATH directories (what `view` replaces) per trace and process.
    public var programSearchPath: [[[String]]] = []
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
        /// The program's search path, when known better than the trace shows (ELF).
        public var programSearchPath: (@Sendable (ProcessAnalysis) -> [String]?)?
        public init() {}
    }

    public enum HostUse: Sendable { case never, sameHost, always }

    public init(analyses: [TraceAnalysis], options: Options, hostName: String?) {
        // Remote roots first, so nodes created later inherit them.
        var roots: [(String, String, Bool)] = []
        if !options.ignoreMountTable {
            for a in analyses {
                for m in a.mounts.mounts.reversed() {
                    if MountTable.isRemote(type: m.fsType) {
                        roots.append((m.mountPoint, "\(m.fsType) in the recorded mount table", true))
                    } else if a.mounts.remoteMounts.contains(where: { MountTable.isUnder(m.mountPoint, $0.mountPoint) && $0.mountPoint != m.mountPoint }) {
                        roots.append((m.mountPoint, "local mount inside a remote one", false))
                    }
                }
            }
        }
        for p in options.remotePrefixes {
            let clean = p.count > 1 && p.hasSuffix("/") ? String(p.dropLast()) : p
            roots.append((clean, "--remote", true))
        }
        roots.sort { $0.0.utf8.count < $1.0.utf8.count }
        var seen = Set<String>()
        for (path, why, isRemote) in roots where seen.insert(path).inserted {
            if isRemote { tree.addRemoteRoot(path); remote.append((path, why)) } else { tree.addLocalRoot(path) }
        }

        var caps: [String] = []
        var consultFiles: [(Int32, Int32)] = []
        for a in analyses {
            var ids = IdMap()
            var perTrace: [[ModelCall]] = []
            for p in a.processes {
                var calls: [ModelCall] = []
                calls.reserveCapacity(p.calls.count)
                let cwd = a.trace.meta("cwd")
                for c in p.calls {
                    let mc = ModelWorld.modelCall(c, trace: a.trace, cwd: cwd, tree: &tree, ids: &ids)
                    calls.append(mc)
                    if !c.failed {
                        switch mc.kind {
                        case .open, .exec, .stat, .lstat, .access, .readlink:
                            tree.markFile(mc.dir, mc.name, exists: true)
                            if mc.kind == .open || mc.kind == .exec { consultFiles.append((mc.dir, mc.name)) }
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
                for s in p.searches {
                    var run: [String] = []
                    var dir = ""
                    for cand in s.candidates where cand.origin != .cache {
                        if cand.directory != dir { run = []; dir = cand.directory }
                        run.append(cand.subdirectory)
                        if cand.subdirectory.isEmpty && run.count > caps.count { caps = run }
                    }
                }
            }
            recorded.append(perTrace)
        }
        if !caps.isEmpty { capabilitySubdirectories = caps }
        tree.settleInference()
        let sameHost = hostName != nil && analyses.allSatisfy { $0.host == hostName }
        if options.consultHost == .always || (options.consultHost == .sameHost && sameHost) {
            tree.consultHost()
            tree.consultHost(files: consultFiles)
            usedHost = true
        }

        // The program's own search path (what a view replaces).
        for a in analyses {
            var perTrace: [[String]] = []
            for p in a.processes {
                if let exact = options.programSearchPath?(p) {
                    perTrace.append(exact)
                    programSearchPathSource = "the program's ELF file (DT_RPATH/DT_RUNPATH)"
                } else {
                    perTrace.append(ModelWorld.inferProgramSearchPath(p))
                    if programSearchPathSource == "none" {
                        programSearchPathSource = "inferred from the trace (the directories of the program's first searches)"
                    }
                }
            }
            programSearchPath.append(perTrace)
        }
    }

    /// The program's RPATH/RUNPATH as the trace shows it: the start-up search
    /// that went through the most directories among those starting where the
    /// first search started (the program's own DT_NEEDED are searched first).
    static func inferProgramSearchPath(_ p: ProcessAnalysis) -> [String] {
        let startup = p.searches.filter { $0.phase == .startup && !$0.candidates.isEmpty }
        guard let first = startup.first?.candidates.first(where: { $0.origin == .rpath })?.directory else { return [] }
        var best: [String] = []
        for s in startup {
            var dirs: [String] = []
            for c in s.candidates where c.origin == .rpath && dirs.last != c.directory { dirs.append(c.directory) }
            if dirs.first == first && dirs.count > best.count { best = dirs }
        }
        return best
    }

    /// Trace string ids → tree nodes and names, so each directory string is parsed once.
    struct IdMap {
        var dirs: [UInt32: Int32] = [:]
        var names: [UInt32: Int32] = [:]
    }

    static func modelCall(_ c: AttributedCall, trace: Trace, cwd: String?, tree: inout PathTree, ids: inout IdMap) -> ModelCall {
        let e = c.event
        let p = e.resolved ?? e.path
        var unresolved = false
        let kind = kindOf(e, trace)
        if p.dir != 0 {
            var d = ids.dirs[p.dir]
            if d == nil {
                let s = trace.string(p.dir)
                d = s.hasPrefix("/") ? tree.directory(s) : -1
                ids.dirs[p.dir] = d
            }
            if let d, d >= 0 {
                var n = ids.names[p.base]
                if n == nil { n = tree.name(trace.string(p.base)); ids.names[p.base] = n }
                return ModelCall(kind: kind, call: e.call, dir: d, name: n!, failed: e.failed,
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
