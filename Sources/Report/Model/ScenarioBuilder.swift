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

    public init(world: ModelWorld) {
        self.world = world
    }

    /// A scenario's calls for the processes of one trace; `recorded` is per
    /// process (ModelWorld.add). For a loader fix, the recorded calls (the
    /// processes the simulation does not cover keep them).
    public mutating func build(_ scenario: Scenario, trace analysis: TraceAnalysis, recorded: [[ModelCall]]) -> [ModelProcess] {
        analysis.processes.enumerated().map { pi, p in
            let calls = scenario == .staticLink ? staticLink(p, recorded[pi]) : recorded[pi]
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
        }
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
