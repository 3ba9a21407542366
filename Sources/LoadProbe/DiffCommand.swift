import ArgumentParser
import Report
import LoaderModel
import TraceFormat

struct Diff: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare two start-ups: before and after Shrinkwrap, a view or a loader cache.",
        discussion: """
        Examples:
          loadprobe diff app.lpt app.shrinkwrap.lpt
          loadprobe diff before.lpt after.lpt --fs nfs-noneg --procs 512 --nodes 4 --format json
        """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable { case text, json }

    @Option(help: "Output format: text or json.") var format: Format = .text
    @Option(name: .shortAndLong, help: ArgumentHelp("Write to this file instead of stdout.", valueName: "file")) var output: String?
    @Flag(help: "Read traces that were cut short (no end record) as far as they go.") var partial = false
    @Option(help: "Rows per table.") var top: Int = 10
    @Flag(help: "Price each side with the compute time estimated from its own trace (default: the before trace's for both, so that the same calls give the same prediction).")
    var computeEach = false
    @OptionGroup var model: ModelOptions
    @Argument(help: "The trace before the change.") var before: String
    @Argument(help: "The trace after the change.") var after: String

    func validate() throws {
        if top < 1 { throw ValidationError("'--top' must be at least 1") }
    }

    func run() throws {
        var options = try model.reportOptions()
        options.top = top
        let analyses = try [before, after].map { file -> TraceAnalysis in
            let trace = try TraceFiles.read(file, partial: partial)
            if trace.meta(.summary) != nil {
                printError("loadprobe: \(file) is a summary trace (--full-ranks): it has no calls to compare; diff needs full traces (loadprobe report shows a summary trace)")
                throw ExitCode(1)
            }
            return TraceAnalysis(trace: trace, file: file)
        }
        let d = TraceDiff(before: analyses[0], after: analyses[1], options: options, eachOwnCompute: computeEach)
        let text = format == .json ? d.json().serialized() : d.text(style: TextStyle(color: output == nil && Output.colorOnStdout()))
        try Output.write(text, to: output)
    }
}
