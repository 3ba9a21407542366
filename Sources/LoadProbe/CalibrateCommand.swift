import ArgumentParser
import Report
import LoaderModel


struct Calibrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure a file system's latency per operation, for the report's --latency.",
        discussion: """
            Run it on a compute node against the directory the program's libraries would live in (an NFS, \
            Lustre or FUSE mount). It only reads: lookups of names that were never used (each one server \
            operation, past every client cache), then up to COUNT existing entries below it once each: \
            directories looked up, links read, files loaded as ld.so loads a library (open, read, fstat, close). With --concurrency P, P threads probe at once, as P processes of a job on one node would, \
            each in its own directory (the further DIRs, else the first one's subdirectories: the client can \
            serialise lookups in one directory). \
            It prints the latencies and the flags to predict with (--latency, and --open-overhead: what a load \
            takes beyond its operations): loadprobe report TRACE --remote TREE --fs PROFILE --latency … --open-overhead …
            """
    )

    @Argument(help: "A directory on the file system to measure; more directories (or the first one's subdirectories) spread concurrent probes.")
    var directories: [String]
    @Option(help: "Fresh-name lookups in all (and at most this many existing entries, 200 of them loaded).") var count: Int = 2000
    @Option(help: "Threads probing at once (a job's processes per node).") var concurrency: Int = 1
    @Option(name: [.customLong("fs"), .customLong("profile")], help: ArgumentHelp(
        "The profile to predict with: the flag printed leaves out what it adds by itself (fuse: its 23 µs round trip).",
        valueName: "name"))
    var profile: String = "nfs"
    @Flag(help: "Print JSON (format loadprobe-calibrate/1).") var json = false

    func validate() throws {
        guard !directories.isEmpty else { throw ValidationError("give a directory to measure") }
        guard count >= 1 else { throw ValidationError("'--count' must be at least 1") }
        guard (1...1024).contains(concurrency) else { throw ValidationError("'--concurrency' must be 1…1024") }
        guard FileSystemProfile.named(profile) != nil else {
            throw ValidationError("unknown profile '\(profile)' (\(FileSystemProfile.named.map(\.name).joined(separator: ", ")))")
        }
    }

    func run() throws {
        let c: Calibration
        do {
            c = try Calibration.measure(directory: directories[0], others: Array(directories.dropFirst()),
                                        count: count, concurrency: concurrency)
        } catch {
            printError("loadprobe: calibrate: \(error.description)")
            throw ExitCode(1)
        }
        let p = FileSystemProfile.named(profile)!
        print(json ? c.json(profile: p) : c.text(profile: p), terminator: json ? "\n" : "")
    }
}
