/// Where a recording runs in a job: its rank, its rank on the node and the
/// job's size, from the launcher's variables (Slurm, Open MPI, MPICH/Hydra,
/// MVAPICH2, PMIx). All nil outside a job.
public struct JobPlace: Sendable, Equatable {
    public var rank: Int?
    public var localRank: Int?
    public var size: Int?

    public init(rank: Int? = nil, localRank: Int? = nil, size: Int? = nil) {
        self.rank = rank; self.localRank = localRank; self.size = size
    }

    static let localRankVariables = ["OMPI_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID",
                                     "PMIX_LOCAL_RANK", "SLURM_LOCALID"]
    static let sizeVariables = ["OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS", "SLURM_NPROCS"]

    /// What started this process, from the variables each launcher sets (the
    /// MPI library's first: mpirun under a Slurm allocation is mpirun).
    public static func launcher(_ env: [String: String]) -> String? {
        if env["OMPI_COMM_WORLD_RANK"] != nil { return "open-mpi" }
        if env["MV2_COMM_WORLD_RANK"] != nil { return "mvapich2" }
        if env["PMI_RANK"] != nil && env["SLURM_PROCID"] == nil { return "mpich" }
        if env["SLURM_PROCID"] != nil { return "slurm" }
        if env["PMIX_RANK"] != nil { return "pmix" }
        if env["FLUX_JOB_ID"] != nil { return "flux" }
        if env["PBS_JOBID"] != nil { return "pbs" }
        if env["LSB_JOBID"] != nil { return "lsf" }
        return nil
    }

    public init(environment env: [String: String]) {
        func first(_ names: [String]) -> Int? { names.lazy.compactMap { env[$0].flatMap { Int($0) } }.first }
        rank = first(Recorder.rankVariables)
        localRank = first(Self.localRankVariables)
        size = first(Self.sizeVariables)
    }
}

/// Which ranks record a full trace (`--full-ranks SPEC`); the others record
/// through the audit library alone and write a summary trace (docs/jobs.md).
/// SPEC is a comma-separated list of: a rank (`0`), a range (`0-7`),
/// `first-per-node` (local rank 0), `every:N` (ranks 0, N, 2N, …), `all`, `none`.
/// A recording outside a job (no rank) is always full.
public struct RankSelection: Sendable, Equatable {
    enum Item: Sendable, Equatable {
        case rank(Int), range(Int, Int), firstPerNode, every(Int), all, none
    }
    var items: [Item]
    public let spec: String

    public static let all = try! RankSelection("all")

    public init(_ spec: String) throws(RankSelectionError) {
        self.spec = spec
        var items: [Item] = []
        for word in spec.split(separator: ",", omittingEmptySubsequences: false).map({ String($0.filter { $0 != " " }) }) {
            switch word {
            case "all": items.append(.all)
            case "none": items.append(.none)
            case "first-per-node": items.append(.firstPerNode)
            default:
                if word.hasPrefix("every:") {
                    guard let n = Int(word.dropFirst(6)), n > 0 else { throw RankSelectionError(spec: spec, word: word, why: "every:N needs N > 0") }
                    items.append(.every(n))
                } else if let n = Int(word), n >= 0 {
                    items.append(.rank(n))
                } else if let dash = word.firstIndex(of: "-"), let a = Int(word[..<dash]), let b = Int(word[word.index(after: dash)...]), a >= 0, a <= b {
                    items.append(.range(a, b))
                } else {
                    throw RankSelectionError(spec: spec, word: word, why: "expected a rank, a range A-B, first-per-node, every:N, all or none")
                }
            }
        }
        self.items = items
    }

    /// True when this place records a full trace.
    public func recordsFully(_ place: JobPlace) -> Bool {
        guard let rank = place.rank else { return true }
        return items.contains { item in
            switch item {
            case .all: true
            case .none: false
            case .rank(let n): rank == n
            case .range(let a, let b): rank >= a && rank <= b
            case .firstPerNode: place.localRank == 0
            case .every(let n): rank % n == 0
            }
        }
    }

    /// True when every rank records fully (`all`, or no way to leave one out).
    public var isAll: Bool { items.contains(.all) }
}

public struct RankSelectionError: Error, CustomStringConvertible {
    public let spec: String, word: String, why: String
    public var description: String { "--full-ranks '\(spec)': '\(word)' is not understood (\(why))" }
}
