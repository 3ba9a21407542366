// What the live test targets share: running commands, finding the built
// products, scratch directories, compiling C fixtures.
import Foundation

/// A finished command: exit status (128+N when killed by signal N), stdout, stderr.
public struct Run: Equatable, Sendable {
    public var status: Int32
    public var stdout: Data
    public var stderr: Data
    /// The signal that killed it (nil when it exited).
    public var signal: Int32? = nil
    public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
}

@discardableResult
public func run(_ argv: [String], env: [String: String]? = nil, cwd: String? = nil) throws -> Run {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: argv[0].contains("/") ? argv[0] : "/usr/bin/env")
    p.arguments = argv[0].contains("/") ? Array(argv.dropFirst()) : argv
    if let env { p.environment = env }
    if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle.nullDevice
    try p.run()
    // Read both pipes concurrently so a chatty program cannot block.
    nonisolated(unsafe) var errData = Data()
    let reader = Thread { errData = err.fileHandleForReading.readDataToEndOfFile() }
    reader.start()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    while !reader.isFinished { usleep(1000) }
    let killed = p.terminationReason == .uncaughtSignal
    return Run(status: killed ? 128 + p.terminationStatus : p.terminationStatus, stdout: outData, stderr: errData,
               signal: killed ? p.terminationStatus : nil)
}

/// The directory holding the built products (loadprobe, libloadprobe-audit.so).
public let productsDir: String = {
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
    // Swift Testing may run from inside an .xctest bundle directory.
    while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("loadprobe").path), dir.path != "/" {
        dir = dir.deletingLastPathComponent()
    }
    return dir.path
}()

/// The loadprobe under test: the built one, or LOADPROBE_TEST_BINARY (an
/// installed copy, or an older build to show a test fails without a fix).
public var loadprobe: String { ProcessInfo.processInfo.environment["LOADPROBE_TEST_BINARY"] ?? productsDir + "/loadprobe" }

/// A fresh scratch directory for one test.
public func scratch(_ name: String) throws -> String {
    let dir = NSTemporaryDirectory() + "lp-test-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

public func write(_ text: String, to path: String) throws {
    try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try text.write(toFile: path, atomically: false, encoding: .utf8)
}

/// Compiles C with gcc; throws with gcc's message on error.
public func gcc(_ args: [String]) throws {
    let r = try run(["gcc"] + args)
    if r.status != 0 { throw TestFailure("gcc \(args.joined(separator: " ")) failed: \(r.stderrText)") }
}

public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// What a test needs from the machine, for `.enabled(if:)`: a test whose need
/// is missing shows as skipped with the reason; on CI (CI set, as .ci/run
/// does) every need counts as met, so the test runs and fails instead.
public enum Needs {
    public static var ci: Bool { ProcessInfo.processInfo.environment["CI"] != nil }
    /// An executable file at this path.
    public static func file(_ path: String) -> Bool { ci || FileManager.default.isExecutableFile(atPath: path) }
    /// A command on PATH.
    public static func command(_ name: String) -> Bool {
        ci || (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
            .contains { FileManager.default.isExecutableFile(atPath: "\($0)/\(name)") }
    }
    public static var root: Bool { ci || geteuid() == 0 }
}

/// SplitMix64: a whole fuzz input follows from its seed (the fuzzers print it).
public struct SplitMix64: Sendable {
    public var state: UInt64
    public init(state: UInt64) { self.state = state }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// 0 ..< n (0 when n ≤ 0).
    public mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
}

/// One line of `strace -f -o FILE` output: the independent count the live
/// tests compare loadprobe with. One parser for every test target.
public struct StraceLine: Sendable {
    /// The line without its leading pid.
    public var text: Substring
    /// The system call's name ("openat"), also for a "<... openat resumed>" line.
    public var name: String
    /// The first quoted argument (the path), when there is one.
    public var path: String?
    /// With -y: the file a descriptor argument before the path names ("3</dir/file>").
    public var descriptorPath: String?
    /// What follows ") = ", when the line has a result.
    public var result: Substring?
    /// The call was cut by another task's line ("<unfinished ...>"): its result comes in a "resumed" line.
    public var unfinished: Bool
    public var resumed: Bool
    /// The result is -1 (an errno follows).
    public var failed: Bool { result?.hasPrefix("-1") ?? false }
    /// The task ended inside the call ("= ?").
    public var endedInside: Bool { result?.hasPrefix("?") ?? false }
}

public enum Strace {
    /// Parses a whole `-o` file; exit and signal lines ("+++", "---") are left out.
    public static func parse(_ text: String) -> [StraceLine] {
        var out: [StraceLine] = []
        for raw in text.split(separator: "\n") {
            var line = Substring(raw)
            if let sp = line.firstIndex(of: " "), line[..<sp].allSatisfy(\.isNumber) { line = line[sp...].drop { $0 == " " } }
            if line.hasPrefix("+++") || line.hasPrefix("---") { continue }
            let resumed = line.hasPrefix("<... ")
            let unfinished = line.hasSuffix("<unfinished ...>")
            let name = resumed ? String(line.dropFirst(5).prefix { $0 != " " }) : String(line.prefix { $0 != "(" })
            var path: String? = nil
            var descriptorPath: String? = nil
            if let paren = line.firstIndex(of: "("), let q1 = line[paren...].firstIndex(of: "\"") {
                let rest = line[line.index(after: q1)...]
                if let q2 = rest.firstIndex(of: "\"") { path = String(rest[..<q2]) }
                if let lt = line[line.index(after: paren)...].firstIndex(of: "<"), lt < q1, let gt = line[lt...].firstIndex(of: ">") {
                    descriptorPath = String(line[line.index(after: lt)..<gt])
                }
            }
            let eq = line.range(of: ") = ", options: .backwards) ?? (resumed ? line.range(of: " = ", options: .backwards) : nil)
            out.append(StraceLine(text: line, name: name, path: path, descriptorPath: descriptorPath,
                                  result: eq.map { line[$0.upperBound...] }, unfinished: unfinished, resumed: resumed))
        }
        return out
    }
}

/// A fixture built once per test run (in a `static let`): its value, or the
/// failure every test that needs it reports.
public func buildOnce<T>(_ build: () throws -> T) -> Result<T, TestFailure> {
    do { return .success(try build()) } catch {
        return .failure(error as? TestFailure ?? TestFailure("\(error)"))
    }
}

/// The objects `ld.so --list` shows for a program, in order (the vDSO left
/// out; ld.so lists the interpreter last): the independent truth for load order.
public func ldsoList(_ program: String, env: [String: String]? = nil) throws -> [String] {
    let r = try run(["/lib64/ld-linux-x86-64.so.2", "--list", program], env: env)
    return r.stdoutText.split(separator: "\n").compactMap { line in
        let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
        if parts.count >= 3, parts[1] == "=>" { return String(parts[2]) }
        if let first = parts.first, first.hasPrefix("/") { return String(first) }
        return nil
    }
}
