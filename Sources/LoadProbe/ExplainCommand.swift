import ArgumentParser
import Report
import LoaderModel

#if canImport(Glibc)
import Glibc
#endif

struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what the dynamic loader will do for PROGRAM, from its ELF files alone.",
        discussion: """
            Simulates glibc's ld.so (or musl's, for programs whose interpreter is ld-musl-*): which file each \
            needed library resolves to, through which rule, after how many tries, the openat/stat calls the \
            start-up will make, and the hazards in the set-up. Nothing is run. The JSON format is documented \
            in docs/explain.md.
            """
    )

    @Argument(help: "The program (or shared library) to analyse.") var program: String
    @Flag(help: "Print JSON (format loadprobe-explain/1).") var json = false
    @Flag(help: "List every candidate path tried, not only those of failed lookups.") var candidates = false
    @Option(name: .customLong("ld-library-path"), help: "Simulate with this LD_LIBRARY_PATH instead of the current one.")
    var ldLibraryPath: String?
    @Option(name: .customLong("env-from"), help: "Take the environment (and glibc version, working directory) from a recorded trace, or from a file of NAME=value entries such as /proc/PID/environ.")
    var environmentFile: String?
    @Option(name: .customLong("glibc"), help: "Simulate this glibc version (e.g. 2.38) with this machine's CPU and directories.")
    var glibcVersion: String?
    @Flag(name: .customLong("no-hazards"), help: "Skip the hazard analysis.") var noHazards = false
    @Flag(name: .customLong("all-hazards"), help: "List every hazard and note (default: the first few of each kind, with counts).") var allHazards = false

    func validate() throws {
        if let glibcVersion, GlibcVersion(string: glibcVersion) == nil {
            throw ValidationError("'--glibc' wants a version such as 2.36, not '\(glibcVersion)'")
        }
    }

    func run() throws {
        var environment = LoaderEnvironment.current()
        var version = glibcVersion.flatMap(GlibcVersion.init(string:))
        if let environmentFile {
            guard let recorded = RecordedConditions.load(path: environmentFile) else {
                fail("\(environmentFile): cannot read the trace or environment file")
            }
            environment = recorded.environment
            if version == nil { version = recorded.glibcVersion }
        }
        if let ldLibraryPath { environment.ldLibraryPath = ldLibraryPath }
        let options = ExplainOptions(environment: environment, glibcVersion: version, findHazards: !noHazards)
        let explanation: Explanation
        do {
            explanation = try Explainer.explain(program, options: options)
        } catch {
            fail(error.description)
        }
        if json {
            print(ExplanationJSON.render(explanation, includeCandidates: candidates))
        } else {
            print(ExplanationText.render(explanation, verbose: candidates, allHazards: allHazards), terminator: "")
        }
    }

    /// One line on stderr and exit status 1: the contract for bad input.
    private func fail(_ message: String) -> Never {
        let line = Array("loadprobe explain: \(message)\n".utf8)
        _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        Explain.exit(withError: ExitCode(1))
    }
}
