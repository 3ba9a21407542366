import ArgumentParser
import Report
import TraceFormat

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "report", abstract: "Summarise recorded traces.")

    enum Format: String, ExpressibleByArgument, CaseIterable { case text, json }

    @Option(help: "Output format: text or json.") var format: Format = .text
    @Flag(help: "Read traces that were cut short (no end record) as far as they go.") var partial = false
    @Argument(help: "Trace files (.lpt).") var traces: [String]

    func validate() throws {
        if traces.isEmpty { throw ValidationError("give at least one trace file") }
    }

    func run() throws {
        var docs: [JSON] = []
        for file in traces {
            let trace: Trace
            do { trace = try TraceReader.read(file: file, allowPartial: partial) } catch {
                printError("loadprobe: \(error.description)")
                throw ExitCode(1)
            }
            let summary = TraceSummary(trace: trace, file: file)
            switch format {
            case .json: docs.append(summary.json())
            case .text:
                print("\(file): \(summary.events) events, mode \(summary.mode)\(summary.complete ? "" : " (incomplete)")")
                print(summary.text())
            }
        }
        if format == .json { print(docs.count == 1 ? docs[0].serialized() : JSON.array(docs).serialized()) }
    }
}
