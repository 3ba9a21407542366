import LoaderModel
import TraceFormat
#if canImport(Glibc)
import Glibc
#endif

/// What `loadprobe fix` and `record --what-if` start from: the resolution of
/// every library of one program's start-up (and its dlopens, when recorded),
/// as the one loader model gives it, and the environment it was made in.
public struct FixBaseline: Sendable {
    public var load: LoadResult
    /// The environment the resolution holds in (the trace's, or this one).
    public var environment: LoaderEnvironment
    public var glibcVersion: GlibcVersion?
    /// Where the resolution came from, for the output.
    public var source: String
    /// The simulation's input (the trace's world), when the baseline comes
    /// from a trace: what-if maps simulate the fixed world on it.
    public var input: SimulationInput?

    /// The model in this environment, on this machine's files (no dlopens:
    /// only a recording knows them).
    public static func fromHost(program: String, environment: LoaderEnvironment,
                                glibcVersion: GlibcVersion? = nil) throws(FixError) -> FixBaseline {
        let load = try model(program: program, environment: environment, glibcVersion: glibcVersion)
        if let failure = load.failure {
            throw FixError("\(program) does not start here (\(failure.message)): there is nothing to fix; run it once, or give --from TRACE of a run that started")
        }
        return FixBaseline(load: load, environment: environment, glibcVersion: glibcVersion,
                           source: "the loader model in this environment", input: nil)
    }

    /// The model's start-up of `program` here, failed or not.
    public static func model(program: String, environment: LoaderEnvironment,
                             glibcVersion: GlibcVersion? = nil) throws(FixError) -> LoadResult {
        let options = ExplainOptions(environment: environment, glibcVersion: glibcVersion, findHazards: false)
        do throws(ExplainError) {
            let explanation = try Explainer.explain(program, options: options)
            var load = explanation.load
            load.failure = explanation.failure ?? load.failure
            return load
        } catch {
            throw FixError(error.description)
        }
    }

    /// The recorded run of `program` in `file`: the model on the world the
    /// trace carries, with the trace's environment and its dlopens (checked
    /// against the recording by `report`'s model check).
    public static func fromTrace(_ file: String, program: String) throws(FixError) -> FixBaseline {
        let trace: Trace
        do throws(TraceReadError) {
            trace = try TraceReader.read(file: file, allowPartial: true)
        } catch {
            throw FixError(error.description)
        }
        if trace.meta(.summary) != nil {
            throw FixError("\(file) is a summary trace (--full-ranks): it has no resolution to fix from; use a full trace")
        }
        if trace.meta(.whatIf) != nil {
            throw FixError("\(file) is a --what-if recording: fix from the trace of the unchanged program")
        }
        let analysis = TraceAnalysis(trace: trace, file: file)
        guard let world = TraceWorld(analysis, consultHost: true) else {
            throw FixError("\(file): the trace has no ELF facts of the program (recorded with --no-audit?)")
        }
        let wanted = FixBaseline.realPath(program)
        let candidates = analysis.processes.filter { $0.audited && !$0.image.isEmpty }
        guard let process = candidates.first(where: { FixBaseline.realPath($0.image) == wanted }) else {
            let images = Array(Set(candidates.map(\.image))).sorted().prefix(3).joined(separator: ", ")
            throw FixError("\(file) has no recorded start-up of \(program)" + (images.isEmpty ? "" : " (it recorded \(images))")
                           + (trace.complete ? "" : "; the trace was cut short: record the program again"))
        }
        guard var input = world.input(for: process) else {
            throw FixError("\(file): the start-up of \(process.image) cannot be simulated (not a dynamically linked glibc program)")
        }
        input.keepAttempts = true
        guard let load = input.run() else {
            throw FixError("\(file): the trace has no ELF facts of \(process.image)")
        }
        if let failure = load.failure {
            throw FixError("\(file): the recorded start-up of \(process.image) failed (\(failure.message)): there is nothing to fix")
        }
        return FixBaseline(load: load, environment: input.environment, glibcVersion: input.profile.version,
                           source: "the run recorded in \(file)", input: input)
    }

    static func realPath(_ path: String) -> String { HostFileSystem().realPath(path) ?? path }
}

/// Why a fix cannot be made: one line for the user.
public struct FixError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension FixBaseline {
    /// The program on disk differs from the recorded one where the fix and
    /// the what-if depend on it: its DT_NEEDED or its search path.
    public func programChanged(_ elf: ELFFile) -> Bool {
        elf.needed != load.program.needed || elf.runpath != load.program.runpath || elf.rpath != load.program.rpath
    }
}
