import ArgumentParser
import Report
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
    var output: String = "loadprobe-%p.lpt"

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

    func run() throws {
        let mode: RecordOptions.Mode = noPtrace ? .auditOnly : noAudit ? .ptraceOnly : .full
        var options = RecordOptions(command: commandLine, outputPattern: output, mode: mode, pinToTracerCPU: !noPin)
        options.answerMisses = !noAnswerMisses
        let result: RecordResult
        do {
            result = try Recorder.run(options, environment: currentEnvironment())
        } catch let e as LaunchError {
            printError(e.description)
            throw ExitCode(e.exitStatus)
        } catch let e as RecordError {
            printError(e.description)
            throw ExitCode(1)
        } catch {
            printError("loadprobe: \(error)")
            throw ExitCode(1)
        }
        if !quiet {
            let how = result.waitStatus & 0x7f != 0
                ? "was killed by signal \(result.waitStatus & 0x7f)" : "exited with status \(result.exitStatus)"
            do {
                let trace = try TraceReader.read(file: result.traceFile)
                let summary = TraceSummary(trace: trace, file: result.traceFile)
                printError("loadprobe: \(commandLine[0]) \(how); trace: \(result.traceFile) (\(summary.events) events, \(summary.fileBytes) bytes, \(result.mode.rawValue))")
                printError(summary.text())
                if result.exitStatus == 127, let root = summary.processes.first, !root.reachedMain,
                   let program = trace.meta("program"),
                   let why = Explainer.startupDiagnosis(for: program, environment: LoaderEnvironment(
                       ldLibraryPath: currentEnvironment()["LD_LIBRARY_PATH"], ldPreload: currentEnvironment()["LD_PRELOAD"])) {
                    // ld.so gave up before main (its exit status is 127): say why, from the ELF files.
                    printError("loadprobe: " + why)
                }
            } catch {
                printError("loadprobe: \(commandLine[0]) \(how); the trace \(result.traceFile) cannot be read back: \(error)")
            }
        }
        throw ExitCode(result.exitStatus)
    }
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
    var bytes = Array(line.utf8)
    var off = 0
    while off < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + off, $0.count - off) }
        if n <= 0 { break }
        off += n
    }
}
