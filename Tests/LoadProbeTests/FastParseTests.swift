import Foundation
import Testing
@testable import LoadProbe

/// The record fast path must read every command line it accepts exactly as
/// ArgumentParser does, and leave every other one to ArgumentParser.
@Suite struct FastParseTests {
    /// What ArgumentParser makes of a command line, as a RecordInvocation
    /// (nil when it is not a record invocation or is rejected).
    func viaArgumentParser(_ args: [String]) -> RecordInvocation? {
        guard let command = try? LoadProbe.parseAsRoot(args), let record = command as? Record else { return nil }
        return record.invocation
    }

    static let accepted: [[String]] = [
        ["--", "/bin/true"],
        ["record", "--", "/bin/true"],
        ["-q", "--", "./app", "-q", "--no-ptrace", "--"],
        ["-o", "t-%p.lpt", "--", "prog", "a b"],
        ["--output", "lp-%j/%r.lpt", "-q", "--", "prog"],
        ["--output=x.lpt", "--", "prog"],
        ["record", "--no-ptrace", "-q", "-o", "x", "--", "prog", "--help"],
        ["--no-audit", "--no-pin", "--", "prog"],
        ["--no-answer-misses", "--quiet", "--", "prog", "--version"],
        ["--no-pin", "--no-answer-misses", "--no-ptrace", "--output", "o", "--quiet", "--", "sh", "-c", "exit 3"],
        ["--no-callers", "-q", "--", "prog"],
        ["--full-ranks", "0,first-per-node,every:64", "-o", "lp-%j/%r.lpt", "--", "prog"],
        ["--what-if", "shrinkwrap", "--from", "app.lpt", "--lift-dlopen", "-q", "--", "prog"],
        ["--from", "app.lpt", "--what-if", "view", "--no-ptrace", "--", "prog"],
        ["--what-if", "view", "--view-dir", "/scratch/view", "--from", "app.lpt", "--", "prog"],
    ]

    @Test(arguments: accepted)
    func sameAsArgumentParser(_ args: [String]) throws {
        let fast = try #require(RecordInvocation.fastParse(args[...]), "the fast path should take \(args)")
        let slow = try #require(viaArgumentParser(args), "ArgumentParser rejects \(args)")
        #expect(fast == slow)
    }

    /// Every option `record --help` lists: an option added to Record and not
    /// to the fast path (or parsed differently there) fails here.
    @Test func everyRecordOptionIsOnTheFastPath() throws {
        let help = LoadProbe.helpMessage(for: Record.self, columns: 200)
        let names = help.split(separator: "\n").compactMap { line -> String? in
            let t = line.drop { $0 == " " }
            guard line.hasPrefix("  "), t.hasPrefix("-") else { return nil }
            // "-o, --output <pattern>" or "--no-pin": the long name.
            return t.split(separator: " ").map(String.init).first { $0.hasPrefix("--") }?
                .trimmingCharacters(in: CharacterSet(charactersIn: ","))
        }.filter { $0 != "--help" && $0 != "--version" }
        #expect(names.count >= 7, "options found in the help: \(names)")
        for name in names {
            let args = help.contains(name + " <") ? [name, "value", "--", "prog"] : [name, "--", "prog"]
            let fast = try #require(RecordInvocation.fastParse(args[...]), "the fast path does not take \(name)")
            #expect(fast == viaArgumentParser(args), "\(name)")
        }
    }

    static let leftToArgumentParser: [[String]] = [
        [], ["--help"], ["-h"], ["--version"], ["record", "--help"], ["report", "x.lpt"],
        ["explain", "--", "prog"], ["prog"], ["-q", "prog"], ["-q"], ["--"], ["record", "--"],
        ["-q", "-q", "--", "prog"], ["-qo", "x", "--", "prog"], ["-o", "--", "prog"], ["-o"],
        ["--output=", "--", "prog"], ["-o", "-x", "--", "prog"], ["--no-ptrace", "--no-audit", "--", "prog"],
        ["--bogus", "--", "prog"], ["-o", "a", "--output", "b", "--", "prog"], ["--", ], ["record", "record", "--", "p"],
        ["--what-if", "--", "prog"], ["--what-if", "bind", "--what-if", "view", "--", "prog"], ["--from", "-x.lpt", "--", "prog"],
    ]

    @Test(arguments: leftToArgumentParser)
    func otherCommandLinesGoToArgumentParser(_ args: [String]) {
        #expect(RecordInvocation.fastParse(args[...]) == nil)
    }

    @Test func modesAndDefaults() throws {
        let plain = try #require(RecordInvocation.fastParse(["--", "p"]))
        #expect(plain == RecordInvocation(command: ["p"], output: "loadprobe-%p.lpt", mode: .full,
                                          pin: true, answerMisses: true, recordCallers: true, quiet: false))
        #expect(RecordInvocation.fastParse(["--no-ptrace", "--", "p"])?.mode == .auditOnly)
        #expect(RecordInvocation.fastParse(["--no-audit", "--", "p"])?.mode == .ptraceOnly)
    }
}
