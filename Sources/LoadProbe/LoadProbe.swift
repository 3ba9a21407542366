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
        subcommands: [Record.self, ReportCommand.self, Explain.self, Diff.self, Calibrate.self],
        defaultSubcommand: Record.self
    )

    /// Bad invocations get one line (and status 64, as sysexits' EX_USAGE);
    /// help and version print as usual.
    static func main() {
        if let invocation = RecordInvocation.fastParse(CommandLine.arguments.dropFirst()) {
            Glibc.exit(Record.record(invocation))
        }
        do {
            var command = try parseAsRoot()
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
