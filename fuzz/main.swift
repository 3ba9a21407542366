// loadprobe-fuzz: structure-aware fuzzing of the trace readers and the ELF
// reader (docs/fuzzing.md). Each input is generated from a seed (seed, seed+1,
// …). The process that runs them (the worker) is watched by a supervisor: a
// crash (a Swift trap, a signal), an input that runs longer than --timeout
// seconds or one that takes the worker over --max-rss MB is reported with its
// seed, and `loadprobe-fuzz KIND --seed N --count 1` runs that input again.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

let args = CommandLine.arguments
func value(_ name: String) -> String? { args.firstIndex(of: name).flatMap { $0 + 1 < args.count ? args[$0 + 1] : nil } }
func flag(_ name: String) -> Bool { args.contains(name) }

let usage = """
    usage: loadprobe-fuzz trace|elf [--seconds N] [--seed S] [--count N] [--timeout S] [--max-rss MB] [--keep-going] [--keep]
      --seconds N    run for N seconds (default 10)
      --seed S       the first input's seed (default: the clock); input i has seed S+i
      --count N      run at most N inputs
      --timeout S    an input running longer than S seconds is a hang (default 5)
      --max-rss MB   an input that takes the worker's peak memory over MB is a failure (default 3000)
      --keep-going   after a failure, go on from the next seed (every failing seed is listed at the end)
      --keep         keep the scratch directory (the last input's files) and print its path
    """
guard args.count >= 2, ["trace", "elf"].contains(args[1]) else {
    FileHandle.standardError.write(Data((usage + "\n").utf8))
    exit(64)
}
let config = Config(kind: args[1], seconds: Double(value("--seconds") ?? "10") ?? 10,
                    firstSeed: UInt64(value("--seed") ?? "") ?? UInt64(Date().timeIntervalSince1970 * 1000),
                    count: Int(value("--count") ?? "") ?? Int.max, timeout: Double(value("--timeout") ?? "5") ?? 5,
                    maxRSSMB: Int(value("--max-rss") ?? "3000") ?? 3000, keepGoing: flag("--keep-going"), keep: flag("--keep"))
if let dir = value("--worker") { Worker(config: config, scratch: dir).run() }
exit(Supervisor(config: config).run())

