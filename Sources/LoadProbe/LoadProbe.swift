import ArgumentParser

@main
struct LoadProbe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loadprobe",
        abstract: "Record and explain where a program's start-up time goes: every file lookup and library search.",
        subcommands: [Record.self, ReportCommand.self, Explain.self],
        defaultSubcommand: Record.self
    )
}
