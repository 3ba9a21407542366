/// The metadata a recording writes and a report reads: one list for both
/// sides (docs/trace-format.md, "Metadata"), so that a key cannot be renamed
/// on one side only. Values are text.
public enum MetaKey: String, CaseIterable, Sendable {
    case loadprobeVersion = "loadprobe.version"
    /// A `RecordingMode`.
    case mode
    /// The program as executed (its path after the PATH search).
    case program
    /// One per argument.
    case argv
    case cwd
    /// `NAME=VALUE`, one per loader-related variable.
    case env
    case host, machine, kernel, libc
    case rank
    /// The rank on its node, and the job's size (when the launcher says).
    case localRank, jobSize
    /// What started the rank: slurm, open-mpi, mpich, mvapich2, pmix, flux, pbs, lsf.
    case launcher
    case jobid
    case auditLibrary, auditDir
    case startNs, startUnix
    /// CLOCK_REALTIME at the start, in nanoseconds (startUnix is its seconds).
    case startRealtimeNs
    case mountinfo
    case answeredCalls, callerUnwinds, callerUnwindNs, ownCalls
    case loaderHwcaps = "loader.hwcaps"
    case loaderLegacyHwcaps = "loader.legacyHwcaps"
    case loaderPlatform = "loader.platform"
    case loaderLib = "loader.lib"
    case loaderDefaultDirs = "loader.defaultDirs"
    case worldObjects, worldNs
    /// A `record --what-if` run: "SCENARIO from TRACE"; whatIfEntries: the
    /// number of entries the audit library was given (the searches it answers);
    /// whatIfPath: one per distinct path it answers with.
    case whatIf, whatIfEntries, whatIfPath
    /// The what-if's fix as the report models it: whatIfScenario (shrinkwrap,
    /// bind or view), whatIfLiftDlopen ("1" with --lift-dlopen),
    /// whatIfViewDirectory (view: where the view would be).
    case whatIfScenario, whatIfLiftDlopen, whatIfViewDirectory
    /// A summary trace (`--full-ranks`, docs/jobs.md): its format, "loadprobe-summary/1".
    /// Its other facts are the `summary.*` keys; it has no events.
    case summary
    case summaryExecToMainNs = "summary.execToMainNs"
    case summaryExit = "summary.exit"
    case summaryProcesses = "summary.processes"
    case summaryNames = "summary.names"
    case summaryCandidates = "summary.candidates"
    case summaryFailedCandidates = "summary.failedCandidates"
    case summaryByOrigin = "summary.byOrigin"
    case summaryObjects = "summary.objects"
    case summaryMissing = "summary.missing"
    case summaryDlopens = "summary.dlopens"
    case summaryDlopenNs = "summary.dlopenNs"
    case summaryLibrariesDigest = "summary.librariesDigest"
    case summarySearchDigest = "summary.searchDigest"
    case summaryEnvironmentDigest = "summary.environmentDigest"
}

/// How a trace was recorded (the `mode` metadata).
public enum RecordingMode: String, Sendable, CaseIterable {
    /// ptrace and the audit library (the default).
    case full = "ptrace+audit"
    /// The audit library alone (`--no-ptrace`).
    case auditOnly = "audit"
    /// ptrace alone (`--no-audit`, or a program audit cannot see).
    case ptraceOnly = "ptrace"

    /// The mode `--no-ptrace` / `--no-audit` ask for (not both).
    public init(noPtrace: Bool, noAudit: Bool) {
        self = noPtrace ? .auditOnly : noAudit ? .ptraceOnly : .full
    }
}

extension TraceWriter {
    public func meta(_ key: MetaKey, _ value: String) throws { try meta(key.rawValue, value) }
}

extension Trace {
    public func meta(_ key: MetaKey) -> String? { meta(key.rawValue) }
    public func metaAll(_ key: MetaKey) -> [String] { metaAll(key.rawValue) }
    /// The recording mode; nil when the trace does not say or says something unknown.
    public var recordingMode: RecordingMode? { meta(.mode).flatMap(RecordingMode.init(rawValue:)) }
}
