import ArgumentParser
import Report

#if canImport(Glibc)
import Glibc
#endif

struct Calibrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure a file system's latency per operation, for the report's --latency.",
        discussion: """
            Run it on a compute node against the directory the program's libraries would live in (an NFS, \
            Lustre or FUSE mount). It only reads: lookups of names that were never used (each one server \
            operation, past every client cache), then one lookup, open or readlink of up to COUNT existing \
            entries. With --concurrency P, P threads probe at once, as P processes of a job on one node would, \
            each in its own directory (the further DIRs, else the first one's subdirectories: the client can \
            serialise lookups in one directory). \
            It prints the latencies and the --latency flag to predict with: \
            loadprobe report TRACE --remote TREE --fs PROFILE --latency …
            """
    )

    @Argument(help: "A directory on the file system to measure; more directories (or the first one's subdirectories) spread concurrent probes.")
    var directories: [String]
    @Option(help: "Fresh-name lookups in all (and at most this many existing entries).") var count: Int = 2000
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
        let flags = c.reportFlags(for: p)
        func us(_ s: Double) -> String { s.isNaN ? "—" : String(Int((s * 1e6).rounded())) }
        if json {
            func series(_ s: Calibration.Series) -> String {
                "{\"calls\": \(s.samples.count), \"medianSeconds\": \(s.samples.isEmpty ? "null" : "\(s.median)"), "
                    + "\"p10Seconds\": \(s.samples.isEmpty ? "null" : "\(s.p10)"), \"p90Seconds\": \(s.samples.isEmpty ? "null" : "\(s.p90)")}"
            }
            print("""
                {"format": "loadprobe-calibrate/1", "directory": \(jsonString(c.directory)), \
                "filesystem": \(c.filesystem.map(jsonString) ?? "null"), "concurrency": \(c.concurrency), \
                "probeDirectories": \(c.probeDirectories), \
                "miss": \(series(c.miss)), "hit": \(series(c.hit)), "open": \(series(c.opens)), "readlink": \(series(c.readlink)), \
                "profile": \(jsonString(p.name)), "latency": \(jsonString(flags[1])), \
                "flags": [\(flags.map(jsonString).joined(separator: ", "))]}
                """)
            return
        }
        print("\(c.directory) (\(c.filesystem ?? "file system unknown")), \(c.concurrency) at once"
              + (c.concurrency > 1 ? " in \(c.probeDirectories) directories:" : ":"))
        print("  call                      calls  median µs   p10 µs   p90 µs")
        for (label, s) in [("lookup of a missing name", c.miss), ("first lookup of an entry", c.hit),
                           ("first open of a file", c.opens), ("first readlink", c.readlink)] {
            var line = "  " + label + String(repeating: " ", count: max(0, 24 - label.count))
            line += right(String(s.samples.count), 7) + right(us(s.median), 11)
            line += right(us(s.p10), 9) + right(us(s.p90), 9)
            print(line)
        }
        let why = p.roundTrip == 0 ? ""
            : c.concurrency > 1 ? "  (measured under load: the whole time per operation)"
            : "  (the profile adds its own \(Int(p.roundTrip * 1e6)) µs round trip)"
        print("predict with: --fs \(p.name) \(flags.joined(separator: " "))" + why)
    }
}

private func right(_ s: String, _ width: Int) -> String {
    String(repeating: " ", count: max(0, width - s.count)) + s
}

private func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 {
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else { out.unicodeScalars.append(u) }
        }
    }
    return out + "\""
}
