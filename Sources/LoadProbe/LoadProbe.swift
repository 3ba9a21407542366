import Tracer
import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

@main
struct LoadProbe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loadprobe",
        abstract: "Record and explain where a program's start-up time goes: every file lookup and library search.",
        version: LoadProbeVersion.string,
        subcommands: [Record.self, ReportCommand.self, Explain.self, Diff.self, Fix.self, Calibrate.self],
        defaultSubcommand: Record.self
    )

    /// Bad invocations get one line (and status 64, as sysexits' EX_USAGE);
    /// help and version print as usual.
    static func main() {
        let arguments = SpankLaunch.take().map { launch in
            RecordInvocation.launchedCommand = launch.rawCommand
            RecordInvocation.executeAsGiven = true
            return launch.arguments
        } ?? Array(CommandLine.arguments.dropFirst())
        if let invocation = RecordInvocation.fastParse(arguments[...]) {
            Glibc.exit(Record.record(invocation))
        }
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch let code as ExitCode {
            Glibc.exit(code.rawValue)
        } catch {
            let code = exitCode(for: error)
            if code == .success || code.rawValue == 0 {
                self.exit(withError: error)
            }
            let text = message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            printError("loadprobe: " + (text.hasPrefix("Error: ") ? String(text.dropFirst(7)) : text)
                       + " (see 'loadprobe --help')")
            Glibc.exit(code == .validationFailure ? 64 : code.rawValue)
        }
    }
}

/// loadprobe started by its SPANK plugin (`srun --loadprobe`, spank/loadprobe_spank.c):
/// slurmstepd ran loadprobe in place of the task's program, with the
/// program's arguments; the program's path and the record options are in two
/// variables, taken out of the environment here so the program does not see them.
enum SpankLaunch {
    static let programVariable = "LOADPROBE_SPANK_PROGRAM"
    static let optionsVariable = "LOADPROBE_SPANK_OPTIONS"

    /// The record arguments (`OPTIONS -- PROGRAM ARGS...`) and the command as bytes; nil when not started by the plugin.
    static func take() -> (arguments: [String], rawCommand: [[UInt8]])? {
        guard let found = getenv(programVariable), let program = strdup(found) else { return nil }
        defer { free(program) }
        let programBytes = Array(UnsafeRawBufferPointer(start: program, count: strlen(program)))
        let options = getenv(optionsVariable).map { String(cString: $0) } ?? ""
        unsetenv(programVariable)
        unsetenv(optionsVariable)
        var raw = [programBytes]
        for i in 1..<max(1, Int(CommandLine.argc)) {
            guard let p = CommandLine.unsafeArgv[i] else { break }
            raw.append(Array(UnsafeRawBufferPointer(start: p, count: strlen(p))))
        }
        let words = options.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map(String.init)
        if words.contains("--") {
            printError("loadprobe: the options of srun --loadprobe (and plugstack.conf) may not contain '--': the command is the task's own")
            Glibc.exit(64)
        }
        let command = raw.map { String(decoding: $0, as: UTF8.self) }
        // slurmstepd's own exit when the exec fails: its error, the errno as status.
        if access(program, X_OK) != 0 {
            let e = errno
            printError("loadprobe: execve(): \(String(cString: program)): \(String(cString: strerror(e)))")
            Glibc.exit(e)
        }
        // Always a recording: the options cannot name another subcommand.
        return (["record"] + words + ["--"] + command, raw)
    }
}
