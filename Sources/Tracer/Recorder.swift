import SystemLayer
import CAudit
import LoaderModel
import TraceFormat
#if canImport(Glibc)
import Glibc
#endif

public struct RecordOptions: Sendable {
    public typealias Mode = RecordingMode
    /// The trace's name when `-o` is not given.
    public static let defaultOutputPattern = "loadprobe-%p.lpt"
    public var command: [String]
    /// The command's bytes as loadprobe was given them (argv may hold any bytes
    /// but NUL); nil to use `command`'s UTF-8.
    public var rawCommand: [[UInt8]]? = nil
    /// Output path pattern: %p program pid, %r rank, %j job id, %h short host name, %%.
    public var outputPattern: String
    public var mode: Mode
    /// The audit library; nil to find it next to the executable or in its prefix.
    public var auditLibrary: String?
    /// Run traced programs on the tracer's CPU until they reach main.
    public var pinToTracerCPU: Bool
    /// Answer lookups of missing paths at the first stop (PtraceSession.answerMiss).
    public var answerMisses: Bool = true
    /// Name the object that called each dlopen (CallerTracker).
    public var recordCallers: Bool = true
    /// Execute the command's first word as the path it is (relative to the
    /// working directory when it has no slash), as execve does, instead of
    /// searching PATH as a shell does (the SPANK plugin gives slurmstepd's path).
    public var executeAsGiven = false
    /// A summary rank (`--full-ranks`, docs/jobs.md): the recording (audit
    /// only) is made in local scratch, and the file written at the output path
    /// is a summary trace: the recording's metadata and what this returns for
    /// it (MetaKey.summary and the `summary.*` keys), no events. The loader's
    /// world (OBJECT records) is not collected.
    public var summarize: (@Sendable (Trace) -> [(String, String)])? = nil
    /// `--what-if`: the audit library answers the program's library searches
    /// from this map as the fixed program would make them; nil for an
    /// ordinary recording.
    public var whatIf: WhatIfRequest? = nil

    public init(command: [String], outputPattern: String = RecordOptions.defaultOutputPattern, mode: Mode = .full,
                auditLibrary: String? = nil, pinToTracerCPU: Bool = true) {
        self.command = command
        self.outputPattern = outputPattern
        self.mode = mode
        self.auditLibrary = auditLibrary
        self.pinToTracerCPU = pinToTracerCPU
    }
}

/// What `record --what-if` gives the recorder: the map file's bytes (its
/// format in audit-lib/README.md, "What-if"), made by the caller from an
/// earlier trace, and what the trace's metadata says of it.
public struct WhatIfRequest: Sendable, Equatable {
    /// The file `LOADPROBE_WHATIF` names, written into the audit directory.
    public var map: [UInt8]
    /// "SCENARIO from TRACE" (MetaKey.whatIf).
    public var description: String
    /// Entries in the map (MetaKey.whatIfEntries).
    public var entries: Int
    /// The distinct paths the map answers with (MetaKey.whatIfPath), so that a
    /// report can tell an answered search from one the program made by path.
    public var paths: [String]
    /// The fix tried (MetaKey.whatIfScenario, whatIfLiftDlopen, whatIfViewDirectory).
    public var scenario: String
    public var liftDlopen: Bool
    public var viewDirectory: String?

    public init(map: [UInt8], description: String, entries: Int, paths: [String], scenario: String,
                liftDlopen: Bool = false, viewDirectory: String? = nil) {
        self.map = map; self.description = description; self.entries = entries; self.paths = paths
        self.scenario = scenario; self.liftDlopen = liftDlopen; self.viewDirectory = viewDirectory
    }

    /// The map's file name in the audit directory: the tracer counts the
    /// library's open of it as its own call, as it does the record files.
    public static let fileName = "whatif.map"
}

public struct RecordResult: Sendable {
    /// The raw wait status of the program.
    public var waitStatus: Int32
    /// The status loadprobe exits with: the program's, or 128+N when killed by signal N.
    public var exitStatus: Int32
    public var traceFile: String
    public var mode: RecordOptions.Mode
    /// Things the user should know (why audit was off, …), one line each.
    public var notes: [String]
    public var ownCallsLeftOut: Int
    /// Where the program did not run as it would untraced (privileges not
    /// granted, its own ptrace refused, …): said on stderr even with -q.
    public var warnings: [String] = []
    /// Processes still running when the first one ended (traced, no longer
    /// recorded): `serve()` keeps them running until they end.
    public var remaining: RemainingTasks? = nil
}

/// The tracer's duty after the recording: the processes it traces carry its
/// seccomp filter, which without a tracer would fail their file calls with
/// ENOSYS, so the tracer stays until they end.
public final class RemainingTasks: @unchecked Sendable {
    let session: PtraceSession
    public let processes: Int
    init(_ session: PtraceSession) {
        self.session = session
        processes = session.remainingProcesses
    }
    public func serve() { session.serve() }
}

public struct RecordError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

public enum Recorder {
    /// Environment variables the loader (or a loader-like search) reads; kept in the trace.
    static let loaderVariables: Set<String> = [
        "LD_LIBRARY_PATH", "LD_PRELOAD", "LD_AUDIT", "LD_BIND_NOW", "LD_BIND_NOT", "LD_DEBUG", "LD_PROFILE",
        "LD_DYNAMIC_WEAK", "LD_HWCAP_MASK", "LD_ASSUME_KERNEL", "LD_USE_LOAD_BIAS", "GLIBC_TUNABLES",
        "PATH", "PYTHONPATH", "PYTHONHOME", "PYTHONNOUSERSITE", "MODULEPATH", "LOADEDMODULES",
        "SPACK_ROOT", "NIX_PROFILES", "LMOD_CMD",
    ]
    static let rankVariables = ["OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID"]
    static let jobVariables = ["SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID", "FLUX_JOB_ID"]

    /// Records one run: plan (what to run, in which mode, with which
    /// environment), launch (the program started, the trace opened), record
    /// (through the audit library alone, or the ptrace session), finish (audit
    /// records, the loader's world, the end record). `rawEnvironment` is
    /// loadprobe's own environment as bytes, in order, duplicates and entries
    /// without "=" included: the program gets exactly these entries plus
    /// loadprobe's own (see `programEnvironment`); nil to build it from
    /// `environment`.
    public static func run(_ options: RecordOptions, environment: [String: String],
                           rawEnvironment: [[UInt8]]? = nil) throws -> RecordResult {
        var plan = try Plan(options, environment: environment, rawEnvironment: rawEnvironment)
        defer { if let d = plan.auditDir { removeTree(d) } }
        let run = try launch(plan, options: options, environment: environment)
        // From the launch on, a signal sent to loadprobe goes to the program.
        defer { lp_forward_signals_to(0) }
        let outcome = plan.mode == .auditOnly ? try recordAuditOnly(plan, run) : try recordTraced(plan, run, options: options)
        return try finish(&plan, run, outcome, options: options)
    }

    /// What to run and how, decided before anything starts.
    struct Plan {
        var argv: [[UInt8]]
        var pathBytes: [UInt8]
        /// The program as found, for messages and the trace.
        var path: String
        /// The command as given, for messages.
        var name: String
        var mode: RecordingMode
        /// The seccomp filter (false: every system call stops; a privileged program without CAP_SYS_ADMIN).
        var filtered = true
        var notes: [String] = []
        var auditLibrary: String?
        var auditDir: String?
        var environment: [[UInt8]]
        /// Where the program and the tracer run until main (-1: anywhere).
        var cpu: Int32 = -1
        var originalAffinity: [Int32]?

        init(_ options: RecordOptions, environment: [String: String], rawEnvironment: [[UInt8]]?) throws {
            let rawEnv = rawEnvironment ?? environment.sorted { $0.key < $1.key }.map { Array("\($0.key)=\($0.value)".utf8) }
            argv = options.rawCommand ?? options.command.map { Array($0.utf8) }
            guard let nameBytes = argv.first else { throw RecordError("loadprobe: no command given (usage: loadprobe [options] -- COMMAND [ARGS...])") }
            name = String(decoding: nameBytes, as: UTF8.self)
            // PATH as execvp reads it: getenv's first entry.
            pathBytes = options.executeAsGiven ? nameBytes
                : try CommandLookup.resolve(bytes: nameBytes, path: firstValue(of: "PATH", in: rawEnv))
            var kind = ProgramKind.inspect(bytes: pathBytes)
            if kind.isPlainText {
                // Like execvp and the shell: an executable text file without "#!" runs under /bin/sh.
                argv = [Array("/bin/sh".utf8), pathBytes] + argv.dropFirst()
                pathBytes = Array("/bin/sh".utf8)
                kind = ProgramKind.inspect(bytes: pathBytes)
            }
            path = String(decoding: pathBytes, as: UTF8.self)
            mode = options.mode
            self.environment = rawEnv
            try chooseMode(kind)
            if options.whatIf != nil && mode == .ptraceOnly {
                let why = kind.auditUnavailableReason.map { ": \($0)" } ?? ""
                throw RecordError("loadprobe: --what-if answers the program's searches through the audit library, which cannot be used here\(why)")
            }
            if mode != .ptraceOnly { try prepareAudit(options, environment: environment) }
            if options.pinToTracerCPU && mode != .auditOnly { chooseCPU() }
        }

        /// Audit where the program allows it; no filter where it would drop privileges.
        private mutating func chooseMode(_ kind: ProgramKind) throws {
            if let reason = kind.auditUnavailableReason, mode != .ptraceOnly {
                if mode == .auditOnly {
                    notes.append("audit was not possible: \(reason); with --no-ptrace nothing of the start-up is recorded")
                } else {
                    notes.append("audit was not possible: \(reason); recorded through ptrace only")
                    mode = .ptraceOnly
                }
            }
            if let foreign = kind.foreignArchitecture {
                notes.append("the program is \(foreign): its system calls use another ABI and are not traced")
            }
            let cPath = pathBytes.map { CChar(bitPattern: $0) } + [0]
            let privileged = kind.setuid ? "is set-user-ID or set-group-ID"
                : lp_file_has_capabilities(cPath) == 1 ? "has file capabilities" : nil
            if let privileged, mode != .auditOnly {
                if geteuid() != 0 {
                    throw RecordError("loadprobe: \(path) \(privileged): under ptrace it would run without its privileges; run loadprobe as root, or run the program without loadprobe")
                }
                if lp_task_has_sys_admin(getpid()) != 1 {
                    // The filter would need no_new_privs, which drops the privileges.
                    filtered = false
                    notes.append("the program \(privileged) and loadprobe lacks CAP_SYS_ADMIN: traced without a seccomp filter (every system call stops) so it keeps its privileges")
                }
            }
        }

        /// The audit library, its directory, and the program's environment naming them.
        private mutating func prepareAudit(_ options: RecordOptions, environment: [String: String]) throws {
            guard let lib = options.auditLibrary ?? AuditLibraryLocator.find(environment: environment) else {
                throw RecordError("loadprobe: cannot find the audit library libloadprobe-audit.so (looked next to the loadprobe binary and in its prefix's lib/; set LOADPROBE_AUDIT_LIB); use --no-audit to record without it")
            }
            guard access(lib, R_OK) == 0 else {
                throw RecordError("loadprobe: audit library \(lib): \(Sys.describe(errno))")
            }
            let dir = try makeAuditDir(environment: environment)
            auditLibrary = lib
            auditDir = dir
            let map = try options.whatIf.map { try writeWhatIfMap($0, in: dir) }
            let added = programEnvironment(self.environment, auditLibrary: lib, auditDir: dir, ptrace: mode == .full, whatIfMap: map)
            self.environment = added.environment
            if let note = added.note { notes.append(note) }
        }

        /// The CPU loadprobe runs on: under a batch system each rank's loadprobe
        /// starts inside its own binding, so ranks do not pile up.
        private mutating func chooseCPU() {
            var cpus = [Int32](repeating: 0, count: 1024)
            let n = Int(lp_allowed_cpus(&cpus, 1024))
            guard n > 1 else { return }
            let allowed = Array(cpus[0..<n])
            originalAffinity = allowed
            let here = lp_current_cpu()
            cpu = allowed.contains(here) ? here : cpus[n - 1]
        }
    }

    /// The what-if map written into the audit directory (mode 0600, never
    /// over a file that is there); its path, for LOADPROBE_WHATIF.
    static func writeWhatIfMap(_ request: WhatIfRequest, in dir: String) throws -> String {
        let path = dir + "/" + WhatIfRequest.fileName
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw RecordError("loadprobe: cannot write the what-if map \(path): \(Sys.describe(errno))") }
        defer { close(fd) }
        do {
            try Sys.writeAll(fd, request.map)
        } catch {
            throw RecordError("loadprobe: cannot write the what-if map \(path): \(error)")
        }
        return path
    }

    /// The program started (stopped before exec when a tracer will seize it) and the trace opened.
    struct Launch {
        var pid: Int32
        var resultFd: Int32
        /// The exec's errno when it is already known (audit only), else 0.
        var execError: Int32
        var traceFile: String
        var writer: TraceWriter
        var collector: WorldCollector
        /// A summary rank: where the summary goes (`traceFile` is then the scratch recording).
        var summaryFile: String?
    }

    static func launch(_ plan: Plan, options: RecordOptions, environment: [String: String]) throws -> Launch {
        let argvC = cStrings(plan.argv)
        let envC = cStrings(plan.environment)
        defer { argvC.forEach { $0?.deallocate() }; envC.forEach { $0?.deallocate() } }
        // With the audit library alone nothing needs the program stopped: it starts at
        // once and runs while the trace is made and its header written (the machine's
        // other CPUs are otherwise idle at start-up). The tracer must seize it first.
        let stopped = plan.mode != .auditOnly
        var startNs = lp_monotonic_ns()
        var spawn = lp_spawn_options(install_filter: stopped && plan.filtered ? 1 : 0,
                                     stop_before_exec: stopped ? 1 : 0, cpu: plan.cpu)
        var resultFd: Int32 = -1
        let pid = lp_spawn(plan.pathBytes.map { CChar(bitPattern: $0) } + [0], argvC, envC, &spawn, &resultFd)
        guard pid > 0 else { throw RecordError("loadprobe: cannot start \(plan.name): \(Sys.describe(errno))") }
        lp_forward_signals_to(pid)

        var execError: Int32 = 0
        if stopped {
            // The child is stopped before exec: open the trace now that %p is known.
            var st: Int32 = 0
            var waited: Int32
            repeat { waited = waitpid(pid, &st, WUNTRACED) } while waited < 0 && errno == EINTR
            if lp_wifstopped(st) == 0 {
                let err = lp_spawn_exec_result(resultFd)
                lp_forward_signals_to(0)
                throw RecordError("loadprobe: cannot start \(plan.name): \(err != 0 ? Sys.describe(err) : "the child ended before exec")")
            }
        } else {
            // lp_spawn returned after the exec (or its failure): the outcome is in the pipe.
            execError = lp_spawn_exec_result(resultFd)
        }
        var traceFile = OutputPattern.expand(options.outputPattern, pid: pid, environment: environment)
        var summaryFile: String?
        if options.summarize != nil, let dir = plan.auditDir {
            summaryFile = traceFile
            traceFile = dir + "/recording.lpt"
        }
        let writer: TraceWriter
        do {
            writer = try TraceWriter(fd: try OutputPattern.create(traceFile))
        } catch {
            kill(pid, SIGKILL)
            _ = waitpid(pid, nil, 0)
            lp_forward_signals_to(0)
            throw error
        }
        if stopped { startNs = lp_monotonic_ns() }  // the program starts when the tracer lets it
        let collector = WorldCollector()
        // The loader's world is read for full traces only (a summary does not carry it).
        if summaryFile == nil { writer.onOpened = { [unowned writer] ref in collector.add(writer.string(ref)) } }
        writer.noteOpened(writer.internPath(collector.absolute(plan.path)))
        try writeMeta(writer, options: options, mode: plan.mode, path: plan.path, environment: environment,
                      auditLib: plan.auditLibrary, auditDir: plan.auditDir, startNs: startNs, notes: plan.notes)
        try writer.write(ProcessEvent(pid: pid, tid: pid, parent: getpid(), how: .root, timeNs: startNs))
        for n in plan.notes { try writer.note(pid: pid, n) }
        return Launch(pid: pid, resultFd: resultFd, execError: execError, traceFile: traceFile, writer: writer, collector: collector,
                      summaryFile: summaryFile)
    }

    /// What the recording loop leaves for the end.
    struct Outcome {
        var waitStatus: Int32 = 0
        var ownCalls = 0
        var warnings: [String] = []
        var remaining: RemainingTasks?
        var drain: AuditDrain?
    }

    /// The audit library alone: its records are moved while the program runs.
    static func recordAuditOnly(_ plan: Plan, _ run: Launch) throws -> Outcome {
        let pid = run.pid, writer = run.writer
        var outcome = Outcome()
        outcome.drain = plan.auditDir.map { AuditDrain(dir: $0, writer: writer, processEvents: true, rootPid: pid) }
        if run.execError != 0 {
            _ = waitpid(pid, nil, 0)
            try execFailed(run.execError, path: plan.path, pid: pid, writer: writer)
        }
        // Move audit records while the program runs, every 20 ms; its end
        // wakes the wait at once (pidfd), so loadprobe adds no wait to it.
        // 20 ms, not 2: each wake-up can take the program's CPU when the
        // machine's other CPUs are busy (bench/RESULTS.md: 1.15x instead of
        // 1.20x at N = 300 under load), and what is left at the end is at
        // most 20 ms of records (~1 ms to move; draining only at the end
        // took ~70 ms after the program for 417,000 records).
        var pidfd: Int32 = -1
        defer { lp_pidfd_close(&pidfd) }
        while true {
            let waited = waitpid(pid, &outcome.waitStatus, WNOHANG)
            if waited == pid && lp_wifstopped(outcome.waitStatus) == 0 { break }
            if waited < 0 && errno != EINTR { break }
            try outcome.drain?.poll()
            lp_wait_child_event(pid, &pidfd, 20)
        }
        try writer.write(ExitEvent(pid: pid, tid: pid, status: outcome.waitStatus, timeNs: lp_monotonic_ns()))
        return outcome
    }

    /// The ptrace session, until the program's first process has ended.
    static func recordTraced(_ plan: Plan, _ run: Launch, options: RecordOptions) throws -> Outcome {
        let pid = run.pid, writer = run.writer
        guard PT.request(PT.seize, pid, 0, PtraceSession.options) == 0 else {
            let e = errno
            kill(pid, SIGKILL)
            _ = waitpid(pid, nil, 0)
            writer.close()
            unlink(run.traceFile)
            throw RecordError("loadprobe: cannot trace \(plan.name): ptrace: \(Sys.describe(e))\(e == EPERM ? " (ptrace is not allowed here: check /proc/sys/kernel/yama/ptrace_scope, or use --no-ptrace)" : "")")
        }
        if plan.cpu >= 0 { _ = lp_pin_self(plan.cpu) }
        kill(pid, SIGCONT)
        var outcome = Outcome()
        outcome.drain = plan.auditDir.map { AuditDrain(dir: $0, writer: writer, processEvents: false, rootPid: pid) }
        // no_new_privs set for the filter, not inherited from loadprobe's own caller.
        let noNewPrivsByUs = plan.filtered && lp_task_no_new_privs(pid) == 1 && lp_task_no_new_privs(getpid()) != 1
        let session = PtraceSession(writer: writer, rootPid: pid, filtered: plan.filtered, auditLibrary: plan.auditLibrary,
                                    auditDir: plan.auditDir, originalAffinity: plan.originalAffinity,
                                    answerMisses: options.answerMisses, recordCallers: options.recordCallers,
                                    noNewPrivsByUs: noNewPrivsByUs)
        outcome.waitStatus = try session.run()
        outcome.warnings = session.warnings
        if session.remainingProcesses > 0 { outcome.remaining = RemainingTasks(session) }
        outcome.ownCalls = session.ownCalls
        try writer.meta(.answeredCalls, String(session.answeredCalls))
        if options.recordCallers {
            try writer.meta(.callerUnwinds, String(session.callers.unwinds))
            try writer.meta(.callerUnwindNs, String(session.callers.unwindNs))
        }
        let err = lp_spawn_exec_result(run.resultFd)
        if err != 0 { try execFailed(err, path: plan.path, pid: pid, writer: writer) }
        if let o = plan.originalAffinity { _ = o.withUnsafeBufferPointer { lp_set_affinity(0, $0.baseAddress, Int32($0.count)) } }
        return outcome
    }

    /// The audit records left, the loader's world, the end record.
    /// A summary trace at `file`: the recording's metadata, then the summary's entries; no events.
    static func writeSummary(of recording: String, to file: String, _ summarize: (Trace) -> [(String, String)]) throws {
        let trace: Trace
        do { trace = try TraceReader.read(file: recording) } catch { throw RecordError("loadprobe: cannot read back the recording for its summary: \(error)") }
        let writer = try TraceWriter(fd: try OutputPattern.create(file), chunkBytes: 1 << 16)
        for (k, v) in trace.meta { try writer.meta(k, v) }
        for (k, v) in summarize(trace) { try writer.meta(k, v) }
        try writer.finish(endNs: trace.endNs ?? lp_monotonic_ns())
        if let failure = writer.failure { throw RecordError("loadprobe: writing the summary trace \(file) failed: \(failure.description)") }
    }

    static func finish(_ plan: inout Plan, _ run: Launch, _ outcome: Outcome, options: RecordOptions) throws -> RecordResult {
        let writer = run.writer
        var warnings = outcome.warnings
        if let drain = outcome.drain {
            try drain.poll(final: true)
            for n in drain.notes { try writer.note(pid: run.pid, n) }
            plan.notes += drain.notes
        }
        if outcome.ownCalls > 0 {
            try writer.meta(.ownCalls, String(outcome.ownCalls))
        }
        if run.summaryFile == nil { try writeWorld(writer, run.collector) }
        try writer.finish(endNs: lp_monotonic_ns())
        var traceFile = run.traceFile
        if let summaryFile = run.summaryFile, let summarize = options.summarize, writer.failure == nil {
            try writeSummary(of: run.traceFile, to: summaryFile, summarize)
            traceFile = summaryFile
        }
        if let failure = writer.failure {
            warnings.append("writing the trace \(traceFile) failed after \(writer.failedAtEvent ?? 0) events (\(failure.description)): recording stopped there, the trace is readable up to that point, and the program ran on to its end")
        }
        let status = outcome.waitStatus
        let exitStatus: Int32 = lp_wifsignaled(status) != 0 ? 128 + lp_wtermsig(status) : lp_wexitstatus(status)
        return RecordResult(waitStatus: status, exitStatus: exitStatus, traceFile: traceFile, mode: plan.mode,
                            notes: plan.notes, ownCallsLeftOut: outcome.ownCalls, warnings: warnings, remaining: outcome.remaining)
    }

    /// NUL-terminated copies for execve, and the terminating nil.
    static func cStrings(_ list: [[UInt8]]) -> [UnsafeMutablePointer<CChar>?] {
        list.map { bytes in
            let p = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count + 1)
            for (i, b) in bytes.enumerated() { p[i] = CChar(bitPattern: b) }
            p[bytes.count] = 0
            return p
        } + [nil]
    }

    /// The value of the first entry named `name` (what getenv returns).
    static func firstValue(of name: String, in env: [[UInt8]]) -> [UInt8]? {
        let prefix = Array(name.utf8) + [0x3d]
        return env.first { $0.starts(with: prefix) }.map { Array($0.dropFirst(prefix.count)) }
    }

    /// How much larger glibc makes the static TLS surplus for one audit
    /// module, in bytes. glibc ≥ 2.32 counts each audit module as one more
    /// link namespace when it sizes the surplus (elf/dl-tls.c,
    /// `_dl_tls_static_surplus_init`); measured on Debian's glibc 2.36
    /// (x86-64) with `_dl_get_tls_static_info` and with a dlopen'ed library
    /// of initial-exec TLS: 4,224 → 4,352 bytes of static TLS, and the
    /// largest such library that loads 1,712 → 1,840 bytes. The parity test
    /// (ParityTests, "static TLS") checks that it holds on the test machine.
    static let auditStaticTLSSurplus = 128

    /// The program's environment: `env` unchanged, byte for byte and in
    /// order, with the audit library added to LD_AUDIT (the last entry, which
    /// ld.so reads last, gets ":LIB"; else one is appended), the audit
    /// directory and mode appended, and glibc's optional static TLS reduced
    /// by what the audit module adds to the surplus, so that a library with
    /// initial-exec TLS that fails to dlopen untraced fails the same way
    /// traced (the user's own GLIBC_TUNABLES are kept: the last entry gets
    /// ":glibc.rtld.optional_static_tls=N", which glibc reads after theirs).
    /// The note says when the surplus could not be kept.
    static func programEnvironment(_ env: [[UInt8]], auditLibrary lib: String, auditDir dir: String,
                                   ptrace: Bool, whatIfMap: String? = nil) -> (environment: [[UInt8]], note: String?) {
        let ours = [LP_ENV_AUDIT_DIR, LP_ENV_PTRACE, LP_ENV_WHATIF].map { Array(($0 + "=").utf8) }
        var out = env.filter { entry in !ours.contains { entry.starts(with: $0) } }
        func lastIndex(_ name: String) -> Int? {
            let prefix = Array(name.utf8) + [0x3d]
            return out.lastIndex { $0.starts(with: prefix) }
        }
        func extend(_ name: String, with value: String) {
            if let i = lastIndex(name) {
                let hasValue = out[i].count > name.utf8.count + 1
                out[i] += Array(((hasValue ? ":" : "") + value).utf8)
            } else {
                out.append(Array("\(name)=\(value)".utf8))
            }
        }
        extend("LD_AUDIT", with: lib)
        // The user's optional_static_tls, as glibc reads it: every
        // GLIBC_TUNABLES entry in order, the last setting winning.
        var optional = 512
        let tunablesPrefix = Array("GLIBC_TUNABLES=".utf8)
        for entry in out where entry.starts(with: tunablesPrefix) {
            for item in entry.dropFirst(tunablesPrefix.count).split(separator: 0x3a) {
                let text = String(decoding: item, as: UTF8.self)
                if text.hasPrefix("glibc.rtld.optional_static_tls="),
                   let v = Int(text.dropFirst("glibc.rtld.optional_static_tls=".count)), v >= 0 { optional = v }
            }
        }
        var note: String? = nil
        if optional >= auditStaticTLSSurplus {
            extend("GLIBC_TUNABLES", with: "glibc.rtld.optional_static_tls=\(optional - auditStaticTLSSurplus)")
        } else {
            note = "glibc.rtld.optional_static_tls is \(optional): the audit library leaves the program \(auditStaticTLSSurplus - optional) bytes more static TLS than untraced"
        }
        out.append(Array("\(LP_ENV_AUDIT_DIR)=\(dir)".utf8))
        out.append(Array("\(LP_ENV_PTRACE)=\(ptrace ? "1" : "0")".utf8))
        if let whatIfMap { out.append(Array("\(LP_ENV_WHATIF)=\(whatIfMap)".utf8)) }
        return (out, note)
    }

    /// The loader's world (trace format 3): an OBJECT record for every ELF file
    /// the run opened, executed or mapped (its identity, a hash of its bytes,
    /// its dynamic section), read by the collector's thread while the program
    /// ran, so that a report can run the loader simulation from the trace
    /// alone. What the recording's end waited for it is the trace's "worldNs".
    static func writeWorld(_ writer: TraceWriter, _ collector: WorldCollector) throws {
        let t0 = lp_monotonic_ns()
        var written = 0
        let read = collector.finish()
        var done = Set<String>()
        for ref in writer.openedFiles {
            // Read (and recorded) at its absolute path: the world resolves a relative one against the start directory.
            let path = collector.absolute(writer.string(ref))
            guard done.insert(path).inserted, let facts = read[path], let elf = facts.elf else { continue }
            func id(_ s: String?) -> UInt32? { s.map { writer.intern($0) } }
            try writer.write(ObjectFacts(
                path: writer.internPath(path), device: facts.id.device, inode: facts.id.inode, size: facts.size,
                contentHash: facts.contentHash, elfClass: elf.fileClass == .elf64 ? 2 : 1,
                byteOrder: elf.byteOrder == .littleEndian ? 1 : 2, osABI: elf.osABI, abiVersion: elf.abiVersion,
                type: elf.type.rawValue, machine: elf.machine.rawValue, isDynamic: elf.isDynamic,
                interpreter: id(elf.interpreter), soname: id(elf.soname), rpath: id(elf.rpath), runpath: id(elf.runpath),
                needed: elf.needed.map { writer.intern($0) }, flags: elf.flags, flags1: elf.flags1))
            written += 1
        }
        // The loader's CPU- and layout-dependent search rules, for a report on another machine.
        let profile = GlibcProfile.host()
        try writer.meta(.loaderHwcaps, profile.hwcapsSubdirectories.joined(separator: ","))
        try writer.meta(.loaderLegacyHwcaps, profile.legacyHwcapNames.joined(separator: ","))
        if let platform = profile.platform { try writer.meta(.loaderPlatform, platform) }
        try writer.meta(.loaderLib, profile.libToken)
        try writer.meta(.loaderDefaultDirs, profile.systemDirectories.joined(separator: ":"))
        try writer.meta(.worldObjects, String(written))
        try writer.meta(.worldNs, String(lp_monotonic_ns() - t0))
    }

    /// The program's exec failed (its errno came back through the spawn pipe):
    /// the trace says so and ends; the shell's status (127 not found, else 126).
    static func execFailed(_ err: Int32, path: String, pid: Int32, writer: TraceWriter) throws -> Never {
        let why = "cannot execute \(path): \(Sys.describe(err))"
        try writer.note(pid: pid, why)
        try writer.finish(endNs: lp_monotonic_ns())
        throw LaunchError(description: "loadprobe: \(why)", exitStatus: err == ENOENT ? 127 : 126)
    }

    static func writeMeta(_ w: TraceWriter, options: RecordOptions, mode: RecordOptions.Mode, path: String,
                          environment: [String: String], auditLib: String?, auditDir: String?,
                          startNs: UInt64, notes: [String]) throws {
        try w.meta(.loadprobeVersion, LoadProbeVersion.string)
        try w.meta(.mode, mode.rawValue)
        try w.meta(.program, path)
        for a in options.command { try w.meta(.argv, a) }
        if let cwd = Proc.readLink("/proc/self/cwd") { try w.meta(.cwd, cwd) }
        for (k, v) in environment.sorted(by: { $0.key < $1.key }) where loaderVariables.contains(k) || k.hasPrefix("LD_") {
            try w.meta(.env, "\(k)=\(v)")
        }
        let uts = Sys.uname()
        try w.meta(.host, uts?.nodename ?? "")
        try w.meta(.machine, uts?.machine ?? "")
        try w.meta(.kernel, uts?.release ?? "")
        try w.meta(.libc, "glibc " + String(cString: lp_libc_version()))
        if let r = rankVariables.lazy.compactMap({ environment[$0] }).first { try w.meta(.rank, r) }
        let place = JobPlace(environment: environment)
        if let l = place.localRank { try w.meta(.localRank, String(l)) }
        if let s = place.size { try w.meta(.jobSize, String(s)) }
        if let l = JobPlace.launcher(environment) { try w.meta(.launcher, l) }
        if let j = jobVariables.lazy.compactMap({ environment[$0] }).first { try w.meta(.jobid, j) }
        if let lib = auditLib { try w.meta(.auditLibrary, lib) }
        if let d = auditDir { try w.meta(.auditDir, d) }
        if let wi = options.whatIf {
            try w.meta(.whatIf, wi.description)
            try w.meta(.whatIfEntries, String(wi.entries))
            for p in wi.paths { try w.meta(.whatIfPath, p) }
            try w.meta(.whatIfScenario, wi.scenario)
            if wi.liftDlopen { try w.meta(.whatIfLiftDlopen, "1") }
            if let v = wi.viewDirectory { try w.meta(.whatIfViewDirectory, v) }
        }
        try w.meta(.startNs, String(startNs))
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        try w.meta(.startUnix, String(ts.tv_sec))
        // The same instant to the nanosecond: a job's ranks on several hosts placed on one time line.
        try w.meta(.startRealtimeNs, String(UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)))
        if let mounts = Proc.readSmallFile("/proc/self/mountinfo") { try w.meta(.mountinfo, mounts) }
    }

    /// The audit library's directory, `loadprobe-XXXXXX`: on tmpfs when
    /// /dev/shm is one (a page of the audit files is backed in ~3 µs there
    /// instead of ~8 µs on ext4, and removing the files at the end takes ~0.5 ms
    /// instead of ~2-3 ms); else in $TMPDIR or /tmp.
    static func makeAuditDir(environment: [String: String]) throws -> String {
        func make(in base: String) -> String? {
            var template = Array((base + "/loadprobe-XXXXXX").utf8CString)
            return template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }.map { String(cString: $0) }
        }
        var dir: String
        if lp_is_tmpfs("/dev/shm") != 0 && access("/dev/shm", W_OK | X_OK) == 0, let d = make(in: "/dev/shm") {
            dir = d
        } else {
            let base = environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
            guard let d = make(in: base) else {
                throw RecordError("loadprobe: cannot make a temporary directory in \(base): \(Sys.describe(errno))")
            }
            dir = d
        }
        // Removed even when loadprobe is killed with SIGKILL (a job's time limit).
        _ = lp_remove_at_exit(dir)
        return dir
    }

    static func removeTree(_ dir: String) {
        for f in AuditDrain.segmentFiles(in: dir) { unlink(f) }
        unlink(dir + "/" + WhatIfRequest.fileName)
        rmdir(dir)
    }
}

public enum LoadProbeVersion {
    public static let string = "0.1.0"
}
