import Foundation
import Testing
import TestSupport
@testable import Report
@testable import LoaderModel

/// A mutation fuzzer for the ELF reading (libelf through CLibElf), the loader's
/// header check and the ld.so.cache parser: real files, damaged many times over,
/// must give a value or an error, never a crash or a hang.
///
/// `LOADPROBE_FUZZ_ITERATIONS` sets the number of mutants per seed file (default
/// 400, a few seconds), or `LOADPROBE_FUZZ_SECONDS` a duration to keep mutating
/// for; `LOADPROBE_FUZZ_SEED` the random seed. Each mutant must be handled in
/// well under a second: a slow one is reported as a hang.
@Suite("fuzzing the ELF reading")
struct FuzzTests {
    /// Reproducible from the seed printed on failure.
    typealias Random = SplitMix64

    static let interesting: [UInt64] = [0, 1, 2, 0x7f, 0x80, 0xff, 0xffff, 0x7fff_ffff, 0xffff_ffff,
                                        0x8000_0000_0000_0000, UInt64.max, 64, 56, 0x1000]

    /// One mutant: byte flips, interesting values written over header fields and
    /// random offsets, truncation, or a block copied elsewhere.
    static func mutate(_ seed: [UInt8], _ random: inout Random) -> [UInt8] {
        var bytes = seed
        let rounds = 1 + random.below(4)
        for _ in 0..<rounds {
            guard !bytes.isEmpty else { break }
            switch random.below(6) {
            case 0:
                bytes[random.below(bytes.count)] ^= UInt8(1 << random.below(8))
            case 1:
                // The ELF and program headers hold most offsets and counts.
                let at = random.below(min(bytes.count, 64 + 56 * 14))
                bytes[at] = UInt8(truncatingIfNeeded: interesting[random.below(interesting.count)])
            case 2:
                let width = [2, 4, 8][random.below(3)]
                let at = random.below(max(1, bytes.count - width))
                let value = interesting[random.below(interesting.count)]
                for i in 0..<width where at + i < bytes.count { bytes[at + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
            case 3:
                bytes = Array(bytes.prefix(random.below(bytes.count + 1)))
            case 4:
                let length = 1 + random.below(256)
                let from = random.below(bytes.count), to = random.below(bytes.count)
                for i in 0..<length where from + i < bytes.count && to + i < bytes.count { bytes[to + i] = bytes[from + i] }
            default:
                bytes[random.below(bytes.count)] = UInt8(truncatingIfNeeded: random.next())
            }
        }
        return bytes
    }

    static var iterations: Int {
        ProcessInfo.processInfo.environment["LOADPROBE_FUZZ_ITERATIONS"].flatMap(Int.init) ?? 400
    }

    static var seconds: Double? {
        ProcessInfo.processInfo.environment["LOADPROBE_FUZZ_SECONDS"].flatMap(Double.init)
    }

    static var seed: UInt64 {
        ProcessInfo.processInfo.environment["LOADPROBE_FUZZ_SEED"].flatMap(UInt64.init) ?? 0x1234_5678
    }

    /// Small real objects of every kind the reader meets: a PIE, a library with
    /// versions, the loader, a musl program when musl is installed.
    static func seedFiles() throws -> [(String, [UInt8])] {
        var paths = ["/bin/true", "/lib/x86_64-linux-gnu/libdl.so.2", "/lib/x86_64-linux-gnu/libpthread.so.0"]
        if FileManager.default.fileExists(atPath: "/usr/lib/x86_64-linux-musl/libc.so") {
            paths.append("/usr/lib/x86_64-linux-musl/libc.so")
        }
        return try paths.filter { FileManager.default.fileExists(atPath: $0) }.map {
            ($0, try [UInt8](Data(contentsOf: URL(fileURLWithPath: $0))))
        }
    }

    @Test("mutated ELF files: ELFFile, DynamicSymbols and the header check never crash")
    func mutateELF() throws {
        var random = Random(state: Self.seed)
        var parsed = 0, rejected = 0
        var slowest = 0.0
        let seeds = try Self.seedFiles()
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = Self.seconds.map { start + .milliseconds(Int($0 * 1000)) }
        var round = 0
        while deadline.map({ clock.now < $0 }) ?? (round < Self.iterations) {
            round += 1
            for (path, seed) in seeds {
                let iteration = round
                let mutant = Self.mutate(seed, &random)
                let began = clock.now
                defer {
                    let elapsed = clock.now - began
                    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                    slowest = max(slowest, seconds)
                }
                do {
                    let file = try ELFFile(bytes: mutant)
                    // Reading is deterministic: the same bytes give the same answer.
                    #expect(try ELFFile(bytes: mutant) == file, "\(path) mutant \(iteration), seed \(Self.seed)")
                    parsed += 1
                } catch {
                    #expect(!error.description.isEmpty)
                    rejected += 1
                }
                _ = try? DynamicSymbols(bytes: mutant)
                _ = LoaderHeaderCheck.glibc(header: Array(mutant.prefix(64)))
                _ = LoaderHeaderCheck.musl(header: Array(mutant.prefix(64)))
            }
        }
        let elapsed = clock.now - start
        print("ELF fuzzing: \(parsed + rejected) mutants (\(parsed) parsed, \(rejected) rejected) in \(elapsed), slowest \(slowest) s, seed \(Self.seed)")
        // Both outcomes must occur, or the mutator is not exercising the reader.
        #expect(parsed > 0 && rejected > 0, "parsed \(parsed), rejected \(rejected)")
        #expect(slowest < 2, "a mutant took \(slowest) s: a hang in the making")
    }

    @Test("mutated ld.so.cache files never crash the parser or a lookup", .timeLimit(.minutes(30)))
    func mutateCache() throws {
        let seed = try #require(HostFileSystem().readBytes("/etc/ld.so.cache"), "no /etc/ld.so.cache to mutate")
        var random = Random(state: Self.seed ^ 0xCAC4E)
        let profile = GlibcProfile.debianX86_64(version: GlibcVersion(2, 36))
        // The unmutated cache parses and finds libc: the fuzzer starts from a good input.
        let original = try LDSOCache(bytes: seed)
        #expect(original.lookup("libc.so.6", profile: profile) != nil)
        var parsed = 0, refused = 0
        for _ in 0..<Self.iterations {
            let mutant = Self.mutate(seed, &random)
            if let cache = try? LDSOCache(bytes: mutant) {
                parsed += 1
                _ = cache.lookup("libc.so.6", profile: profile)
                _ = cache.lookup("libz.so.1", profile: profile)
            } else {
                refused += 1
            }
        }
        // Both kinds of mutant were seen (else the mutator or the parser is not doing its work).
        #expect(parsed > 0 && refused > 0, "parsed \(parsed), refused \(refused)")
    }
}
