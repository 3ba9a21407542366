import LoaderModel
import TraceFormat

/// How many processes start together, on how many nodes.
public struct JobShape: Sendable, Equatable {
    public var processes: Int
    public var nodes: Int
    public init(processes: Int = 1, nodes: Int = 1) {
        self.processes = max(1, processes)
        self.nodes = max(1, min(nodes, max(1, processes)))
    }
    public var perNode: Int { (processes + nodes - 1) / nodes }

    /// A job's shape from its traces: one process per trace and one node per
    /// host, unless the user gave either; nil for a single trace. Nodes may not
    /// exceed processes.
    public static func ofJob(traces: Int, hosts: Int, processes: Int?, nodes: Int?) throws(JobShapeError) -> JobShape? {
        guard traces > 1 else { return nil }
        let p = processes ?? traces
        let n = nodes ?? min(max(1, hosts), p)
        if n > p { throw JobShapeError(description: "'--nodes' (\(n)) cannot exceed the processes (\(p))") }
        return JobShape(processes: p, nodes: n)
    }
}

public struct JobShapeError: Error, CustomStringConvertible {
    public let description: String
}

/// One scenario priced: calls, server operations, seconds for one process and for the job.
public struct ScenarioResult: Sendable {
    public var scenario: Scenario
    /// File calls one process (one trace) would make.
    public var calls: Int
    public var failedCalls: Int
    public var callsBySyscall: [FileCall: Int]
    public var callsByPurpose: [CallPurpose: Int]
    /// Calls on the modeled (remote) file system.
    public var remoteCalls: Int
    /// Operations the file system serves for one process on a cold client.
    public var operations: OperationCounts
    /// … for a process on a node where another one already ran (client caches warm).
    public var warmOperations: OperationCounts
    /// Seconds of one process: file-system time plus the compute time.
    public var predictedSeconds: Double
    public var fileSystemSeconds: Double
    public var localSeconds: Double
    public var computeSeconds: Double
    /// Server operations of the whole job.
    public var jobOperations: Int
    /// Bytes the server delivers for the whole job.
    public var jobBytes: Double
    /// Seconds the server needs for them at its rate (0 when unlimited).
    public var serverBoundSeconds: Double
    public var jobSeconds: Double
    public var speedup: Double
    public var assumptions: ScenarioAssumptions
}

/// Prices scenarios: the walker per process, then the job shape.
///
/// One process: seconds = compute + Σ local call costs + Σ over server operations
/// of their latency (one process makes its calls one after the other).
/// The job: every node's first process runs with cold client caches, the others
/// find what the client caches (positive and negative entries, per the profile)
/// already there; the server sees the sum. Job seconds = max(one cold process,
/// job server operations ÷ server rate) — the slowest chain or the server's
/// throughput, whichever binds.
public struct CostModel: Sendable {
    public var profile: FileSystemProfile
    public var job: JobShape
    /// Seconds per process outside file calls (relocation, constructors, main's
    /// work up to the end of the trace); nil: estimated.
    public var computeSeconds: Double?
    /// Estimated compute per loaded object when `computeSeconds` is nil.
    public var computePerObject: Double = 40e-6
    /// How `computeSeconds` was obtained, when it was not given.
    public var computeMethod: String?
    /// Cores per node: with more processes per node than cores, their CPU work
    /// (compute, local call time, a FUSE round trip) is shared; nil: enough cores.
    public var coresPerNode: Int?
    /// Data each process reads from the modeled file system that the trace does
    /// not show (a big executable's pages, input decks): once per node.
    public var extraBytesPerNode: Double = 0

    public init(profile: FileSystemProfile, job: JobShape, computeSeconds: Double? = nil) {
        self.profile = profile
        self.job = job
        self.computeSeconds = computeSeconds
    }

    /// What the traces of a scenario added up to so far (traces are priced one
    /// at a time; a job's traces are not all kept in memory).
    public struct Tally: Sendable {
        var cold = PathWalker.Cost(), warm = PathWalker.Cost()
        var calls = 0, failed = 0
        var sysCounts = [Int](repeating: 0, count: 256)
        var purposeCounts = [Int](repeating: 0, count: CallPurpose.allCases.count)
        var objects = 0
        var traces = 0
        public init() {}
    }

    func profile(for scenario: Scenario) -> FileSystemProfile {
        var prof = profile
        if scenario == .negativeCache && prof.negativeCacheSeconds == 0 { prof.negativeCacheSeconds = 30 }
        return prof
    }

    /// Prices one trace's processes (cold client, and warm when a node runs
    /// several) and adds them `times` times (identical traces of a job).
    public func add(_ trace: [ModelProcess], walker: inout PathWalker, to t: inout Tally, times: Int = 1) {
        walker.coldCaches()
        var cold = PathWalker.Cost(), warm = PathWalker.Cost()
        var calls = 0, failed = 0, objects = 0
        var sysCounts = [Int](repeating: 0, count: 256)
        var purposeCounts = [Int](repeating: 0, count: CallPurpose.allCases.count)
        for p in trace {
            objects += p.objects
            for c in p.calls {
                calls += 1
                if c.failed { failed += 1 }
                sysCounts[Int(c.call.rawValue)] += 1
                purposeCounts[c.purpose.index] += 1
                cold = cold + walker.price(c)
            }
        }
        // The same start-up again on the warm node (needed when a node runs several).
        if job.perNode > 1 { for p in trace { for c in p.calls { warm = warm + walker.price(c) } } }
        for _ in 0..<max(0, times) {
            t.cold = t.cold + cold
            t.warm = t.warm + warm
            t.calls += calls; t.failed += failed; t.objects += objects
            for i in sysCounts.indices where sysCounts[i] != 0 { t.sysCounts[i] += sysCounts[i] }
            for i in purposeCounts.indices { t.purposeCounts[i] += purposeCounts[i] }
            t.traces += 1
        }
    }

    /// The scenario's result over the traces added.
    public func result(_ scenario: Scenario, _ t: Tally, assumptions: ScenarioAssumptions) -> ScenarioResult {
        let prof = profile(for: scenario)
        let cold = t.cold, warm = t.warm
        let calls = t.calls, failed = t.failed, objects = t.objects
        let sysCounts = t.sysCounts, purposeCounts = t.purposeCounts
        let traces = max(1, t.traces)
        let remoteCalls: Int
        remoteCalls = cold.remoteCalls
        var bySys: [FileCall: Int] = [:]
        for c in FileCall.allCases where sysCounts[Int(c.rawValue)] > 0 { bySys[c] = sysCounts[Int(c.rawValue)] }
        var byPurpose: [CallPurpose: Int] = [:]
        for c in CallPurpose.allCases where purposeCounts[c.index] > 0 { byPurpose[c] = purposeCounts[c.index] }
        // Per trace (one rank's recording) averages.
        func avg(_ o: OperationCounts) -> OperationCounts { o.divided(by: traces) }
        let compute = computeSeconds ?? Double(objects / traces) * computePerObject
        let fsSeconds = cold.remoteSeconds / Double(traces)
        let localSeconds = cold.localSeconds / Double(traces)
        let one = compute + fsSeconds + localSeconds
        let perNode = job.perNode
        let coldOps = Double(cold.ops.total) / Double(traces)
        let warmOps = Double(warm.ops.total) / Double(traces)
        let nodeOps = coldOps + Double(perNode - 1) * warmOps
        let jobOps = Int((nodeOps * Double(job.nodes)).rounded())
        // Bytes: the node's first process reads what the page cache does not hold.
        let coldBytes = Double(cold.bytesRead) / Double(traces), warmBytes = Double(warm.bytesRead) / Double(traces)
        let jobBytes = (coldBytes + Double(perNode - 1) * warmBytes + extraBytesPerNode) * Double(job.nodes)
        let serverBound = (prof.serverOpsPerSecond.map { Double(jobOps) / $0 } ?? 0)
            + (prof.serverBytesPerSecond.map { jobBytes / $0 } ?? 0)
        // Processes beyond the node's cores share them: the CPU parts of each
        // process's time stretch by processes ÷ cores (processor sharing); waiting
        // on the server does not.
        let cpuRoundTrips = prof.roundTripIsCPU ? prof.roundTrip * Double(cold.ops.total) / Double(traces) : 0
        let share = coresPerNode.map { max(1, Double(perNode) / Double(max(1, $0))) } ?? 1
        let chain = (compute + localSeconds + cpuRoundTrips) * share + (fsSeconds - cpuRoundTrips)
        // The slowest process's chain, or the server's throughput, whichever binds;
        // computation overlaps neither (a process computes between its calls).
        let jobSeconds = max(chain, compute * share + serverBound)
        var a = assumptions
        a.add("file system", "\(prof.name): " + latencyText(prof))
        a.add("client caching", "positive \(prof.positiveCacheSeconds > 0 ? "on" : "off"), negative \(prof.negativeCacheSeconds > 0 ? "on" : "off")")
        a.add("compute per process", computeSeconds == nil ? "\(seconds(compute)) (estimate: \(objects / traces) objects × \(seconds(computePerObject)))"
              : "\(seconds(compute)) (\(computeMethod ?? "given"))")
        a.add("job", "\(job.processes) processes on \(job.nodes) node\(job.nodes == 1 ? "" : "s") (\(perNode) per node); "
              + "server \(prof.serverOpsPerSecond.map { "\(group(Int($0))) ops/s" } ?? "unlimited")"
              + (prof.serverBytesPerSecond.map { ", \(group(Int($0 / 1_048_576))) MiB/s" } ?? "")
              + (extraBytesPerNode > 0 ? "; \(group(Int(extraBytesPerNode / 1_048_576))) MiB more data per node" : "")
              + (coresPerNode.map { "; \($0) cores per node" + (share > 1 ? " (CPU work stretched \(String(rounding: share, places: 2))×)" : "") } ?? ""))
        return ScenarioResult(
            scenario: scenario, calls: calls / traces, failedCalls: failed / traces,
            callsBySyscall: bySys.mapValues { $0 / traces }, callsByPurpose: byPurpose.mapValues { $0 / traces },
            remoteCalls: remoteCalls / traces, operations: avg(cold.ops), warmOperations: avg(warm.ops),
            predictedSeconds: one, fileSystemSeconds: fsSeconds, localSeconds: localSeconds, computeSeconds: compute,
            jobOperations: jobOps, jobBytes: jobBytes, serverBoundSeconds: serverBound, jobSeconds: jobSeconds, speedup: 1,
            assumptions: a)
    }

    /// Each call of a scenario with the operations it costs (cold client).
    static func list(_ processes: [[ModelProcess]], tree: PathTree, profile: FileSystemProfile, sink: (String) -> Void) {
        var walker = PathWalker(tree: tree, profile: profile)
        for trace in processes {
            walker.coldCaches()
            for p in trace {
                sink("# \(p.label)")
                for c in p.calls {
                    let cost = walker.price(c)
                    let ops = ServerOperation.allCases.filter { cost.ops[$0] > 0 }.map { "\($0.name) \(cost.ops[$0])" }
                    let path = walker.tree.path(c.dir, c.name)
                    sink("\(c.call.name) \(path)\(c.failed ? " (fails)" : "")  [\(c.purpose.rawValue)]  "
                         + (cost.localCalls > 0 ? "local" : ops.joined(separator: ", ")))
                }
            }
        }
    }

    func latencyText(_ p: FileSystemProfile) -> String {
        let kinds: [ServerOperation] = [.lookup, .lookupMiss, .getattr, .access, .open, .readlink, .read]
        let vals = kinds.map { "\($0.name) \(seconds(p.latency($0)))" }
        return vals.joined(separator: ", ") + (p.roundTrip > 0 ? " (round trip \(seconds(p.roundTrip)) included)" : "")
            + (p.openOverhead > 0 ? "; \(seconds(p.openOverhead)) more per file opened" : "")
    }
}

/// "1.23 s", "12.3 ms", "45 µs".
func seconds(_ s: Double) -> String {
    if s == 0 { return "0 s" }
    if s >= 1 { return String(rounding: s, places: s >= 100 ? 1 : 3) + " s" }
    if s >= 1e-3 { return String(rounding: s * 1e3, places: s >= 0.1 ? 1 : 2) + " ms" }
    return String(rounding: s * 1e6, places: s >= 1e-5 ? 0 : 1) + " µs"
}

extension String {
    init(rounding v: Double, places: Int) {
        // Past 1e15 (a ratio of times from a trace whose clock jumped) decimals
        // mean nothing and Int cannot hold the value: shown as it is.
        guard v.isFinite, v.magnitude < 1e15 else { self = "\(v)"; return }
        var k = 1.0
        for _ in 0..<places { k *= 10 }
        let r = (v * k).rounded() / k
        if places == 0 { self = String(Int(r)); return }
        var s = String(r)
        if let dot = s.firstIndex(of: ".") {
            let have = s.distance(from: dot, to: s.endIndex) - 1
            if have < places { s += String(repeating: "0", count: places - have) }
        }
        self = s
    }
}
