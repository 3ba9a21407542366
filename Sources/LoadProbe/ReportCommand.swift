import ArgumentParser
import Report

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "report", abstract: "Summarise recorded traces.")
    @Argument(help: "Trace files.") var traces: [String]
    func run() throws {}
}
