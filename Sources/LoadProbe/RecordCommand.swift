import SystemLayer
import ArgumentParser
import CAudit
import Report
import LoaderModel
import TraceFormat
import Tracer
#if canImport(Glibc)
import Glibc
#endif

struct Record: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a command and record its file lookups and library searches (the default subcommand).",
        discussion: """
        Examples:
          loadprobe -- ./mpi_app --input deck.in
          srun -n 512 loadprobe -o 'lp-%j/%r.lpt' -- ./mpi_app
        """
    )

    @Option(name: .shortAndLong, help: ArgumentHelp(
        "Trace file pattern: %p program pid, %r MPI/Slurm rank, %j job id, %h short host name, %% a percent sign.",
        valueName: "pattern"))
    var output: String = RecordOptions.defaultOutputPattern

    @Flag(name: .customLong("no-ptrace"), help: "Record only through the audit library (near-zero overhead; no system calls).")
    var noPtrace = false

    @Flag(name: .customLong("no-audit"), help: "Record only through ptrace (no library-search view).")
    var noAudit = false

    @Flag(name: .customLong("no-pin"), help: "Do not run the program on the tracer's CPU until main (slower tracing).")
    var noPin = false

    @Flag(name: .customLong("no-answer-misses"), help: ArgumentHelp(
        "Let every traced lookup run in the program (two stops per call).",
        discussion: "By default, a lookup of an absolute path that loadprobe itself finds missing, with the program's view of the file system and its rights, is answered at the first stop with that ENOENT/ENOTDIR."))
    var noAnswerMisses = false

    @Flag(name: .customLong("no-callers"), help: ArgumentHelp(
        "Do not name the object that called each dlopen.",
        discussion: "By default the tracer unwinds the calling thread's stack (libunwind-ptrace) at the first loader call of each dlopen."))
    var noCallers = false

    @Option(name: .customLong("full-ranks"), help: ArgumentHelp(
        "Which ranks of a job record a full trace; the others record through the audit library alone and write a summary trace of a few KB (docs/jobs.md).",
        discussion: "A comma-separated list of ranks (0), ranges (0-7), first-per-node, every:N, all (the default) or none.",
        valueName: "spec"))
    var fullRanks: String?

    @Option(name: .customLong("what-if"), help: ArgumentHelp(
        "Run the program unchanged while the audit library answers its library searches as the fixed program would make them: shrinkwrap, bind or view (needs --from).",
        discussion: "The searches come from the start-up recorded in --from's trace; searches it did not record run as usual. The trace says it is a what-if, and 'loadprobe diff' compares it with --from's.",
        valueName: "scenario"))
    var whatIf: String?

    @Option(name: .customLong("from"), help: ArgumentHelp("With --what-if: the trace of the unchanged program.", valueName: "trace"))
    var whatIfFrom: String?

    @Flag(name: .customLong("lift-dlopen"), help: "With --what-if shrinkwrap: answer the dlopens the trace recorded as well.")
    var liftDlopen = false

    @Option(name: .customLong("view-dir"), help: ArgumentHelp(
        "With --what-if view: where the view directory would be (as 'fix view --view-dir'); its own lookups are made there.",
        valueName: "dir"))
    var viewDir: String?

    @Flag(name: .shortAndLong, help: "Print no summary.")
    var quiet = false

    @Argument(parsing: .captureForPassthrough, help: "The command to run, after --.")
    var command: [String] = []

    func validate() throws {
        if noPtrace && noAudit { throw ValidationError("'--no-ptrace' and '--no-audit' are mutually exclusive") }
        if let first = command.first, first.hasPrefix("-"), first != "--" {
            throw ValidationError("unknown option '\(first)'")
        }
        if commandLine.isEmpty { throw ValidationError("no command given: loadprobe [options] -- COMMAND [ARGS...]") }
    }

    var commandLine: [String] { command.first == "--" ? Array(command.dropFirst()) : command }

    var invocation: RecordInvocation {
        RecordInvocation(command: commandLine, output: output,
                         mode: RecordOptions.Mode(noPtrace: noPtrace, noAudit: noAudit),
                         pin: !noPin, answerMisses: !noAnswerMisses, recordCallers: !noCallers, quiet: quiet, fullRanks: fullRanks,
                         whatIf: whatIf, whatIfFrom: whatIfFrom, liftDlopen: liftDlopen, viewDir: viewDir)
    }

    func run() throws {
        throw ExitCode(Record.record(invocation))
    }

    /// Records one run and prints the summary; returns loadprobe's exit status
    /// (the program's, or 126/127/1 when it could not be recorded).
    ///
    /// With ptrace, the tracer is a process of its own: loadprobe returns when
    /// the program's first process ends, as the shell would, while processes
    /// it left running (a daemon, a background job) stay traced, not recorded,
    /// until they end — without a tracer, loadprobe's seccomp filter would fail
    /// their file calls. The tracer sends the wait status through a pipe;
    /// signals sent to loadprobe go to it and on to the program.
    static func record(_ invocation: RecordInvocation) -> Int32 {
        var how = invocation
        if let spec = how.fullRanks {
            let selection: RankSelection
            do { selection = try RankSelection(spec) } catch {
                printError("loadprobe: \(error.description) (see 'loadprobe --help')")
                return 64
            }
            let place = JobPlace(environment: currentEnvironment())
            if !selection.recordsFully(place) {
                // A summary rank records through the audit library: --no-audit leaves it nothing.
                if how.mode == .ptraceOnly {
                    printError("loadprobe: --full-ranks records the other ranks through the audit library alone, which --no-audit turns off; use one or the other (see 'loadprobe --help')")
                    return 64
                }
                how.mode = .auditOnly
                how.summaryOnly = true
            }
        }
        do throws(WhatIfSetup.Refusal) {
            // Nothing runs when the what-if cannot be made, or the trace would replace an input.
            try WhatIfSetup.checkOutput(how)
            try WhatIfSetup.checkOptions(how)
            how.whatIfRequest = try WhatIfSetup.request(how)
        } catch {
            printError(error.line)
            return error.status
        }
        guard how.mode != .auditOnly else { return recordHere(how, statusPipe: -1) }
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return recordHere(how, statusPipe: -1) }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let tracer = fork()
        if tracer < 0 { close(fds[0]); close(fds[1]); return recordHere(how, statusPipe: -1) }
        if tracer == 0 {
            close(fds[0])
            Glibc._exit(recordHere(how, statusPipe: fds[1]))
        }
        close(fds[1])
        lp_forward_signals_to(tracer)
        var message: (Int32, Int32) = (0, 0)
        var got = 0
        withUnsafeMutableBytes(of: &message) { raw in
            while got < raw.count {
                let n = read(fds[0], raw.baseAddress! + got, raw.count - got)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                got += n
            }
        }
        close(fds[0])
        lp_forward_signals_to(0)
        guard got == MemoryLayout<(Int32, Int32)>.size else {
            // The tracer ended without a status (it could not start the program): its own.
            var st: Int32 = 0
            while waitpid(tracer, &st, 0) < 0 && errno == EINTR {}
            if st & 0x7f != 0 && st & 0x7f != 0x7f { dieLike(signal: st & 0x7f) }
            return st & 0x7f == 0 ? (st >> 8) & 0xff : 128 + (st & 0x7f)
        }
        // The tracer stays only for processes left running; nothing waits for it.
        if message.0 == 0 { var st: Int32 = 0; while waitpid(tracer, &st, 0) < 0 && errno == EINTR {} }
        else { signal(SIGCHLD, SIG_IGN) }
        let status = message.1
        if status & 0x7f != 0 && status & 0x7f != 0x7f { dieLike(signal: status & 0x7f) }
        return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// The recording itself; with `statusPipe`, the program's wait status is
    /// sent there once the summary is printed, then the remaining processes are served.
    static func recordHere(_ how: RecordInvocation, statusPipe: Int32) -> Int32 {
        let commandLine = how.command
        var options = RecordOptions(command: commandLine, outputPattern: how.output, mode: how.mode, pinToTracerCPU: how.pin)
        options.answerMisses = how.answerMisses
        options.recordCallers = how.recordCallers
        options.executeAsGiven = RecordInvocation.executeAsGiven
        options.whatIf = how.whatIfRequest
        if how.summaryOnly {
            options.summarize = { trace in RankSummary(trace: trace, summary: TraceSummary(trace: trace, file: "")).metadata }
        }
        // The parsed command is argv's tail (or what the SPANK plugin gave): the same arguments, as bytes.
        if let raw = RecordInvocation.launchedCommand ?? rawCommand(count: commandLine.count), raw.count == commandLine.count,
           zip(raw, commandLine).allSatisfy({ String(decoding: $0, as: UTF8.self) == $1 }) {
            options.rawCommand = raw
        }
        let result: RecordResult
        do {
            result = try Recorder.run(options, environment: currentEnvironment(), rawEnvironment: rawEnvironment())
        } catch let e as LaunchError {
            printError(e.description)
            return e.exitStatus
        } catch let e as RecordError {
            printError(e.description)
            return 1
        } catch {
            printError("loadprobe: \(error)")
            return 1
        }
        for w in result.warnings { printError("loadprobe: " + w) }
        if let w = largeJobWarning(how, traceFile: result.traceFile, environment: currentEnvironment()) { printError("loadprobe: " + w) }
        if let w = sharedOutputWarning(how, environment: currentEnvironment()) { printError("loadprobe: " + w) }
        if !how.quiet {
            let how = result.waitStatus & 0x7f != 0
                ? "was killed by signal \(result.waitStatus & 0x7f)" : "exited with status \(result.exitStatus)"
            do {
                let trace = try TraceReader.read(file: result.traceFile)
                if let rank = RankSummary(summaryTrace: trace) {
                    printError("loadprobe: \(commandLine[0]) \(how); summary trace: \(result.traceFile) (\(trace.fileBytes) bytes, rank \(trace.meta(.rank) ?? "?"))")
                    printError(rank.text())
                    return finishRecording(result, statusPipe: statusPipe)
                }
                let summary = TraceSummary(trace: trace, file: result.traceFile)
                printError("loadprobe: \(commandLine[0]) \(how); trace: \(result.traceFile) (\(summary.events) events, \(summary.fileBytes) bytes, \(result.mode.rawValue))")
                printError(summary.text())
                if trace.meta(.whatIf) != nil, let w = WhatIfSummary(TraceAnalysis(trace: trace, file: result.traceFile)) {
                    printError("  " + w.text)
                }
                if result.exitStatus == 127, let root = summary.processes.first, !root.reachedMain,
                   let program = trace.meta(.program),
                   let why = Explainer.startupDiagnosis(for: program, environment: LoaderEnvironment(
                       ldLibraryPath: currentEnvironment()["LD_LIBRARY_PATH"], ldPreload: currentEnvironment()["LD_PRELOAD"])) {
                    // ld.so gave up before main (its exit status is 127): say why, from the ELF files.
                    printError("loadprobe: " + why)
                }
            } catch {
                printError("loadprobe: \(commandLine[0]) \(how); the trace \(result.traceFile) cannot be read back: \(error)")
            }
        }
        return finishRecording(result, statusPipe: statusPipe)
    }

    /// Rank 0 of a large job whose every rank records in full says what that
    /// weighs (once per job, even with -q): the traces go to the shared file
    /// system while the job starts.
    static func largeJobWarning(_ how: RecordInvocation, traceFile: String, environment: [String: String]) -> String? {
        let place = JobPlace(environment: environment)
        guard place.rank == 0, let ranks = place.size, ranks >= largeJob, !how.summaryOnly,
              let selection = try? RankSelection(how.fullRanks ?? "all") else { return nil }
        // Every rank in full, however the spec says it (all, every:1, 0-99999, …).
        let everyRank = selection.isAll || (0..<min(ranks, 1 << 20)).allSatisfy {
            selection.recordsFully(JobPlace(rank: $0, localRank: nil, size: ranks))
        }
        guard everyRank else { return nil }
        var st = stat()
        guard stat(traceFile, &st) == 0, st.st_size >= 1 << 20 else { return nil }
        func size(_ bytes: Double) -> String {
            bytes >= 1_073_741_824 ? "\(Int((bytes / 1_073_741_824).rounded())) GB" : "\(Int((bytes / 1_048_576).rounded())) MB"
        }
        return "every one of the job's \(ranks) ranks records a full trace (this one \(size(Double(st.st_size))), about \(size(Double(st.st_size) * Double(ranks))) for the job); --full-ranks 0,first-per-node records the others as summary traces of a few KB (docs/jobs.md)"
    }

    /// Rank 0 of a job of several ranks whose output pattern names no rank or
    /// pid: every rank writes the same file, and only the last one's is left.
    static func sharedOutputWarning(_ how: RecordInvocation, environment: [String: String]) -> String? {
        let place = JobPlace(environment: environment)
        guard place.rank == 0, (place.size ?? 2) > 1, !OutputPattern.names(how.output, "r"), !OutputPattern.names(how.output, "p") else { return nil }
        return "-o '\(how.output)' has no %r (rank) or %p (pid): every rank of the job writes the same file and only the last one's is left (use -o 'lp-%j/%r.lpt')"
    }

    /// Ranks from which a job counts as large for that warning.
    static let largeJob = 64

    /// The program's status to loadprobe's caller (through the pipe when the
    /// tracer is a process of its own), then the remaining processes served.
    static func finishRecording(_ result: RecordResult, statusPipe: Int32) -> Int32 {
        let status = result.waitStatus
        if statusPipe >= 0 {
            var message: (Int32, Int32) = (result.remaining == nil ? 0 : 1, status)
            _ = withUnsafeBytes(of: &message) { write(statusPipe, $0.baseAddress!, $0.count) }
            close(statusPipe)
            if let remaining = result.remaining {
                // Out of the way: no terminal, no signals but SIGKILL, nothing of the caller's open.
                for s in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2, SIGALRM, SIGTSTP, SIGTTIN, SIGTTOU] { signal(s, SIG_IGN) }
                _ = setsid()
                let null = open("/dev/null", O_RDWR)
                if null >= 0 { for fd in Int32(0)...2 { dup2(null, fd) }; if null > 2 { close(null) } }
                lp_close_from(3)
                remaining.serve()
            }
            return 0
        }
        if status & 0x7f != 0 && status & 0x7f != 0x7f { dieLike(signal: status & 0x7f) }
        return result.exitStatus
    }

    /// Ends loadprobe the way the program ended, killed by its signal (as strace
    /// does), so that the shell and a batch system see the signal itself: "Segmentation
    /// fault", WIFSIGNALED. No core file of loadprobe's own (the program's was
    /// written as its limits said). Returns only for a signal that does not kill.
    static func dieLike(signal sig: Int32) {
        var none = rlimit(rlim_cur: 0, rlim_max: 0)
        _ = setrlimit(Int32(RLIMIT_CORE.rawValue), &none)
        Glibc.signal(sig, SIG_DFL)
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, sig)
        _ = sigprocmask(SIG_UNBLOCK, &set, nil)
        _ = kill(getpid(), sig)
    }
}

/// What one `loadprobe [record]` invocation asks for, however it was parsed.
struct RecordInvocation: Equatable {
    var command: [String]
    var output: String = RecordOptions.defaultOutputPattern
    var mode: RecordOptions.Mode = .full
    var pin = true
    var answerMisses = true
    var recordCallers = true
    var quiet = false
    var fullRanks: String?
    /// `--what-if SCENARIO --from TRACE [--lift-dlopen] [--view-dir DIR]` as given (checked by WhatIfSetup).
    var whatIf: String?
    var whatIfFrom: String?
    var liftDlopen = false
    var viewDir: String?
    /// This rank is outside --full-ranks: audit only, a summary trace.
    var summaryOnly = false
    /// The what-if map made from --from's trace, before anything runs.
    var whatIfRequest: WhatIfRequest?

    /// The command as bytes when loadprobe was not given it in argv's tail (SpankLaunch).
    nonisolated(unsafe) static var launchedCommand: [[UInt8]]?
    /// Execute the command as given, without a PATH search (SpankLaunch).
    nonisolated(unsafe) static var executeAsGiven = false

    /// The common invocation `loadprobe [record] [-q] [-o PATTERN] [--no-…] -- CMD ARGS…`,
    /// parsed without ArgumentParser. Its reflection-driven parse costs ~3.5 ms of
    /// CPU at every start (perf: protocol-conformance scans and metadata
    /// instantiation), which is a third of loadprobe's own start. Anything this
    /// strict grammar does not cover exactly (help, version, other subcommands,
    /// repeated, combined or unknown options, a missing `--`, conflicting
    /// modes) returns nil and goes through ArgumentParser, so errors and help read
    /// the same either way.
    static func fastParse(_ args: ArraySlice<String>) -> RecordInvocation? {
        var rest = args
        if rest.first == "record" { rest = rest.dropFirst() }
        var inv = RecordInvocation(command: [])
        var seen: [String] = []  // a handful of options: no hashing (a Set costs its seeding at start)
        var noPtrace = false, noAudit = false
        while let arg = rest.first {
            rest = rest.dropFirst()
            if arg == "--" {
                guard !rest.isEmpty, !(noPtrace && noAudit) else { return nil }
                inv.command = Array(rest)
                inv.mode = RecordOptions.Mode(noPtrace: noPtrace, noAudit: noAudit)
                return inv
            }
            var name = arg
            var inlineValue: String?
            if arg.hasPrefix("--output=") {
                name = "--output"
                inlineValue = String(arg.dropFirst("--output=".count))
            }
            let key = name == "-o" ? "--output" : name == "-q" ? "--quiet" : name
            guard !seen.contains(key) else { return nil }
            seen.append(key)
            switch key {
            case "--output":
                let value: String
                if let v = inlineValue {
                    value = v
                } else {
                    guard let v = rest.first else { return nil }
                    value = v
                    rest = rest.dropFirst()
                }
                guard !value.isEmpty, !value.hasPrefix("-") else { return nil }
                inv.output = value
            case "--quiet": inv.quiet = true
            case "--full-ranks", "--what-if", "--from", "--view-dir":
                guard let v = rest.first, !v.hasPrefix("-") else { return nil }
                switch key {
                case "--full-ranks": inv.fullRanks = v
                case "--what-if": inv.whatIf = v
                case "--view-dir": inv.viewDir = v
                default: inv.whatIfFrom = v
                }
                rest = rest.dropFirst()
            case "--lift-dlopen": inv.liftDlopen = true
            case "--no-ptrace": noPtrace = true
            case "--no-audit": noAudit = true
            case "--no-pin": inv.pin = false
            case "--no-answer-misses": inv.answerMisses = false
            case "--no-callers": inv.recordCallers = false
            default: return nil
            }
        }
        return nil
    }
}

/// The last `count` arguments loadprobe was given, as bytes: the command is
/// always the tail of argv, and Swift's `CommandLine.arguments` replaces bytes
/// that are not UTF-8. nil when argv is shorter (not run from main).
func rawCommand(count: Int) -> [[UInt8]]? {
    let argc = Int(CommandLine.argc)
    guard count > 0, count < argc else { return nil }
    return (argc - count..<argc).map { i in
        guard let p = CommandLine.unsafeArgv[i] else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: strlen(p)))
    }
}

/// loadprobe's environment as bytes, in order, every entry kept.
func rawEnvironment() -> [[UInt8]] {
    var out: [[UInt8]] = []
    var p = environ
    while let entry = p.pointee {
        out.append(Array(UnsafeRawBufferPointer(start: entry, count: strlen(entry))))
        p += 1
    }
    return out
}

func currentEnvironment() -> [String: String] {
    var env: [String: String] = [:]
    var p = environ
    while let entry = p.pointee {
        let s = String(cString: entry)
        if let eq = s.firstIndex(of: "=") { env[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
        p += 1
    }
    return env
}

func printError(_ s: String) {
    var line = s
    if !line.hasSuffix("\n") { line += "\n" }
    try? Sys.writeAll(2, Array(line.utf8))
}
