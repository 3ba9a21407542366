import LoaderModel
import TraceFormat

/// The scenarios that keep the recorded calls: `recorded`, `negative-cache`
/// (the same calls, priced with failed lookups cached) and `static` (the
/// program's own calls after main, from one executable). The fixes of the
/// loader's search (shrinkwrap, bind, view, loader-cache) are not made here:
/// they change the loader's world and run the one simulation
/// (`SimulatedProcess`, `WorldTransform`).
public struct ScenarioBuilder {
    public var world: ModelWorld
    /// The python-path scenario's directory; nil: `<parent of the first entry>/python-view`.
    public var pythonViewDirectory: String?
    /// How many sys.path entries the python-path scenario made one (for its inputs).
    var pythonEntries = 0

    public init(world: ModelWorld) {
        self.world = world
    }

    /// A scenario's calls for the processes of one trace; `recorded` is per
    /// process (ModelWorld.add). For a loader fix, the recorded calls (the
    /// processes the simulation does not cover keep them).
    public mutating func build(_ scenario: Scenario, trace analysis: TraceAnalysis, recorded: [[ModelCall]]) -> [ModelProcess] {
        analysis.processes.enumerated().map { pi, p in
            let calls: [ModelCall]
            switch scenario {
            case .staticLink: calls = staticLink(p, recorded[pi])
            case .pythonPath: calls = pythonPath(p, recorded[pi], trace: analysis.trace)
            default: calls = recorded[pi]
            }
            return ModelProcess(label: p.label, calls: calls, objects: p.objects.count)
        }
    }

    /// The scenario's own inputs.
    public func describe(_ scenario: Scenario, assumptions a: inout ScenarioAssumptions) {
        switch scenario {
        case .recorded: a.add("calls", "as recorded (loadprobe's own calls left out)")
        case .negativeCache:
            a.add("calls", "as recorded; failed lookups cached by the client (per node, for the whole start-up)")
        case .staticLink:
            a.add("calls", "the exec and the program's own calls after main; no loader calls")
            a.add("data", "the libraries' bytes read from the one executable")
        case .shrinkwrap, .bind, .view, .loaderCache:
            a.add("calls", "as recorded: no process of these traces could be simulated")
        case .pythonPath:
            a.add("sys.path entries made one", pythonEntries == 0 ? "none (no Python process listed a directory outside its own library)"
                  : "\(pythonEntries): the directories the import system listed, less the script's directory (sys.path[0]), the interpreter's own lib/pythonX.Y (and its lib-dynload) and site's site-packages/dist-packages")
            a.add("directory", pythonViewDirectory ?? "<parent of the first entry>/python-view: a symlink per name the import found in an entry")
            a.add("path finder", "one stat of the directory where it statted each entry in turn, one listing for all; hits through a symlink (a READLINK and a walk of its target)")
        }
    }

    /// The python-path scenario of one process: every run of the path finder's
    /// stats of the consolidated entries becomes one stat of the one directory,
    /// their listings one listing, and each call under an entry the same call
    /// under the directory, through a symlink to the entry's file or package.
    mutating func pythonPath(_ p: ProcessAnalysis, _ rec: [ModelCall], trace: Trace) -> [ModelCall] {
        guard p.isPython else { return rec }
        let entries = PythonSysPath.consolidated(p, trace: trace)
        guard !entries.isEmpty else { return rec }
        pythonEntries = max(pythonEntries, entries.count)
        let entrySet = Set(entries)
        let viewPath = pythonViewDirectory ?? (SearchDirectory.dirname(entries[0]) == "/" ? "/python-view" : SearchDirectory.dirname(entries[0]) + "/python-view")
        let view = world.tree.directory(viewPath)
        world.tree.markExists(view)
        var out: [ModelCall] = []
        out.reserveCapacity(rec.count)
        var inRound = false, viewListed = false
        for (i, c) in p.calls.enumerated() {
            guard c.purpose == .pythonImport, let (entry, rest) = PythonSysPath.split(trace.path(c.event.resolved ?? c.event.path), entries: entrySet) else {
                if c.purpose == .pythonImport { inRound = false }
                out.append(rec[i])
                continue
            }
            var m = rec[i]
            if rest.isEmpty {
                if m.kind == .openDirectory {
                    // (A view directory of "/" is the root: no parent.)
                    if !viewListed { (m.dir, m.name) = world.tree.entry(view); out.append(m); viewListed = true }
                } else if !inRound {
                    (m.dir, m.name) = world.tree.entry(view); m.failed = false
                    out.append(m)
                    inRound = true
                }
                continue
            }
            inRound = false
            // entry/first/... → view/first/..., view/first a symlink to entry/first.
            let parts = rest.split(separator: "/", maxSplits: 1)
            let first = String(parts[0]), target = LoaderPath.join(entry, first)
            let firstName = world.tree.name(first)
            if parts.count > 1 {
                // A package (or a directory of one): the link is a directory on the way.
                let node = world.tree.child(view, firstName)
                if world.tree.directorySymlink(node) == nil { world.tree.setDirectorySymlink(node, target: target) }
            } else if world.tree.symlinkTarget(view, firstName) == nil && !m.failed {
                world.tree.setSymlink(view, firstName, target: target)
            }
            let (d, n) = world.tree.file(LoaderPath.join(viewPath, String(rest)))
            m.dir = d; m.name = n
            out.append(m)
        }
        return out
    }

    mutating func staticLink(_ p: ProcessAnalysis, _ rec: [ModelCall]) -> [ModelCall] {
        var out: [ModelCall] = []
        var bytes = 0
        var known = true
        for (i, c) in p.calls.enumerated() where c.search >= 0 && !c.failed && (rec[i].kind == .open) {
            if let sz = world.tree.size(rec[i].dir, rec[i].name) { bytes += sz } else { known = false }
        }
        for (i, c) in p.calls.enumerated() {
            if c.search >= 0 || c.purpose == .loaderConfig || c.phase == .startup { continue }
            if c.purpose == .objectStat && c.phase.isDlopen { continue }
            var m = rec[i]
            if m.kind == .exec && !m.failed {
                // One executable holding the libraries' code and data.
                let staticName = world.tree.name(world.tree.nameString(m.name) + ".static")
                world.tree.markFile(m.dir, staticName, exists: true)
                let own = world.tree.size(m.dir, m.name) ?? 0
                let objects = p.searches.filter { $0.found != nil }.count
                world.tree.setSize(m.dir, staticName, bytes: known ? own + bytes : (objects + 1) * world.defaultReadBytes)
                m.name = staticName
            }
            out.append(m)
        }
        return out
    }
}

extension ModelWorld {
    var defaultReadBytes: Int { 131072 }
}
