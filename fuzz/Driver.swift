// The supervisor and the worker (main.swift reads the command line).
import Foundation
#if canImport(Glibc)
import Glibc
#endif

struct Config {
    var kind: String, seconds: Double, firstSeed: UInt64, count: Int, timeout: Double, maxRSSMB: Int, keepGoing: Bool, keep: Bool
}

/// One line on stdout, at once (a crash must not lose what came before it).
func say(_ text: String) {
    let line = Array((text + "\n").utf8)
    _ = line.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
}

/// What the worker writes before each input (fixed width, rewritten in place):
/// the seed about to run and the inputs done so far.
enum Progress {
    static let width = 48
    static func encode(seed: UInt64, done: Int) -> [UInt8] {
        var line = Array("\(seed) \(done)".utf8)
        line += [UInt8](repeating: 0x20, count: max(0, width - 1 - line.count))
        return line + [0x0a]
    }
    static func read(_ path: String) -> (seed: UInt64, done: Int)? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard parts.count >= 2, let s = UInt64(parts[0]), let d = Int(parts[1]) else { return nil }
        return (s, d)
    }
}

/// What runs with a configuration reads its fields by name.
protocol Configured {
    var config: Config { get }
}

extension Configured {
    var kind: String { config.kind }
    var firstSeed: UInt64 { config.firstSeed }
    var seconds: Double { config.seconds }
    var count: Int { config.count }
    var timeout: Double { config.timeout }
    var maxRSSMB: Int { config.maxRSSMB }
}

/// Runs the inputs, one after the other, in this process.
struct Worker: Configured {
    let config: Config, scratch: String

    func run() -> Never {
        // A cap on address space: an allocation sized by a bad field fails (and
        // crashes, reported with its seed) instead of taking the machine's memory.
        var limit = rlimit(rlim_cur: rlim_t(max(maxRSSMB, 1000) * 3) << 20, rlim_max: rlim_t(max(maxRSSMB, 1000) * 3) << 20)
        setrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &limit)
        let progress = open(scratch + "/progress", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        var stats = Stats()
        let start = Date()
        var seed = firstSeed
        var done = 0
        while done < count && Date().timeIntervalSince(start) < seconds {
            let line = Progress.encode(seed: seed, done: done)
            _ = line.withUnsafeBytes { pwrite(progress, $0.baseAddress, $0.count, 0) }
            let inputStart = Date()
            do {
                if kind == "trace" { try TraceFuzz.one(seed: seed, scratch: scratch, stats: &stats) } else { try ELFFuzz.one(seed: seed, scratch: scratch, stats: &stats) }
            } catch {
                say("fuzz harness error at seed \(seed): \(error)")
                exit(70)
            }
            let took = Date().timeIntervalSince(inputStart)
            if took > timeout {
                say("SLOW: seed \(seed) took \(String(format: "%.1f", took)) s (limit \(timeout) s)")
                exit(3)
            }
            var usage = rusage()
            getrusage(RUSAGE_SELF.rawValue, &usage)
            if usage.ru_maxrss / 1024 > maxRSSMB {
                say("MEMORY: seed \(seed) took the peak RSS to \(usage.ru_maxrss / 1024) MB (limit \(maxRSSMB) MB)")
                exit(4)
            }
            done += 1
            seed &+= 1
            if done % 5000 == 0 { say("  \(done) inputs, \(Int(Date().timeIntervalSince(start))) s") }
        }
        let line = Progress.encode(seed: seed, done: done)
        _ = line.withUnsafeBytes { pwrite(progress, $0.baseAddress, $0.count, 0) }
        say("  worker: \(done) inputs from seed \(firstSeed) in \(String(format: "%.0f", Date().timeIntervalSince(start))) s; \(stats.text)")
        exit(0)
    }
}

/// What the inputs did (so that a run shows the generators reach the readers).
struct Stats {
    var counts: [String: Int] = [:]
    mutating func add(_ key: String, _ n: Int = 1) { counts[key, default: 0] += n }
    var text: String { counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") }
}

/// Starts workers and watches them.
struct Supervisor: Configured {
    let config: Config

    func run() -> Int32 {
        let scratch = NSTemporaryDirectory() + "loadprobe-fuzz-\(kind)-\(getpid())"
        try? FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let start = Date()
        var next = firstSeed
        var total = 0
        var failures: [(seed: UInt64, what: String)] = []
        say("loadprobe-fuzz \(kind): first seed \(firstSeed), \(seconds) s, timeout \(timeout) s per input")
        while Date().timeIntervalSince(start) < seconds && total < count {
            let progressPath = scratch + "/progress"
            try? FileManager.default.removeItem(atPath: progressPath)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: exe)
            p.arguments = [kind, "--worker", scratch, "--seed", "\(next)", "--seconds", "\(seconds - Date().timeIntervalSince(start))",
                           "--count", "\(count - total)", "--timeout", "\(timeout)", "--max-rss", "\(maxRSSMB)"]
            do { try p.run() } catch { say("cannot start the worker: \(error)"); return 70 }
            var lastSeed: UInt64? = nil
            var lastChange = Date()
            var hung = false
            while p.isRunning {
                usleep(100_000)
                let now = Progress.read(progressPath)
                if now?.seed != lastSeed { lastSeed = now?.seed; lastChange = Date() }
                if !hung && Date().timeIntervalSince(lastChange) > timeout + 1 {
                    hung = true
                    say("HANG: seed \(lastSeed.map(String.init) ?? "?") has run for more than \(timeout + 1) s; stopping it (SIGABRT, for a backtrace)")
                    kill(p.processIdentifier, SIGABRT)
                    DispatchQueue.global().asyncAfter(deadline: .now() + 30) { [pid = p.processIdentifier] in kill(pid, SIGKILL) }
                }
            }
            let last = Progress.read(progressPath)
            total += last?.done ?? 0
            let status = p.terminationStatus, signalled = p.terminationReason == .uncaughtSignal
            if status == 0 && !signalled && !hung { break }
            let seed = last?.seed ?? next
            let what = hung ? "hang" : signalled ? "crash (signal \(status))" : status == 3 ? "slow" : status == 4 ? "memory" : "crash (exit status \(status))"
            failures.append((seed, what))
            let kept = scratch + "-failure-\(seed)"
            try? FileManager.default.removeItem(atPath: kept)
            try? FileManager.default.copyItem(atPath: scratch, toPath: kept)
            say("FAILURE: \(what) at seed \(seed); its input files are in \(kept); run it again: loadprobe-fuzz \(kind) --seed \(seed) --count 1")
            if !config.keepGoing { break }
            total += 1
            next = seed &+ 1
        }
        if config.keep { say("scratch directory: \(scratch)") } else { try? FileManager.default.removeItem(atPath: scratch) }
        let wall = Date().timeIntervalSince(start)
        say("loadprobe-fuzz \(kind): \(total) inputs in \(String(format: "%.0f", wall)) s (seeds \(firstSeed)...), \(failures.count) failures"
            + failures.map { "\n  seed \($0.seed): \($0.what)" }.joined())
        return failures.isEmpty ? 0 : 1
    }
}
