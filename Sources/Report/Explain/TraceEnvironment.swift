import LoaderModel
import TraceFormat

/// The start-up conditions a trace recorded: the loader variables, the working
/// directory and the C library, so that `explain --env-from TRACE` simulates the
/// recorded run rather than the current shell.
public struct RecordedConditions: Sendable {
    public var environment: LoaderEnvironment
    /// From the trace's "libc" entry ("glibc 2.36"); nil when absent.
    public var glibcVersion: GlibcVersion?
    public var program: String?

    public init(trace: Trace) {
        var variables: [String: String] = [:]
        for entry in trace.metaAll(.env) {
            guard let eq = entry.firstIndex(of: "=") else { continue }
            variables[String(entry[..<eq])] = String(entry[entry.index(after: eq)...])
        }
        let cwd = trace.meta(.cwd) ?? HostFileSystem().workingDirectory
        environment = LoaderEnvironment(variables: variables, workingDirectory: cwd)
        glibcVersion = trace.meta(.libc).flatMap { text in
            text.hasPrefix("glibc ") ? GlibcVersion(string: String(text.dropFirst(6))) : nil
        }
        program = trace.meta(.program)
    }

    /// A trace file, or else a file of NAME=value entries (/proc/PID/environ).
    public static func load(path: String) -> RecordedConditions? {
        if let trace = try? TraceReader.read(file: path, allowPartial: true) {
            return RecordedConditions(trace: trace)
        }
        guard let bytes = HostFileSystem().readBytes(path) else { return nil }
        let variables = LoaderEnvironment.parse(environmentFile: bytes)
        return RecordedConditions(environment: LoaderEnvironment(variables: variables), glibcVersion: nil, program: nil)
    }

    public init(environment: LoaderEnvironment, glibcVersion: GlibcVersion?, program: String?) {
        self.environment = environment
        self.glibcVersion = glibcVersion
        self.program = program
    }
}
