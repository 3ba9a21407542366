import Foundation
import Testing

/// Runs a command; returns its exit status, stdout and stderr.
struct Run {
    var status: Int32
    var stdout: Data
    var stderr: Data
    var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    var stderrText: String { String(decoding: stderr, as: UTF8.self) }
}

@discardableResult
func run(_ argv: [String], env: [String: String]? = nil, cwd: String? = nil) throws -> Run {
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
    nonisolated(unsafe) var errData = Data()
    let reader = Thread { errData = err.fileHandleForReading.readDataToEndOfFile() }
    reader.start()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    while !reader.isFinished { usleep(1000) }
    return Run(status: p.terminationStatus, stdout: outData, stderr: errData)
}

/// The directory holding the built products (loadprobe, libloadprobe-audit.so).
let productsDir: String = {
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
    while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("loadprobe").path), dir.path != "/" {
        dir = dir.deletingLastPathComponent()
    }
    return dir.path
}()

var loadprobe: String { productsDir + "/loadprobe" }

func scratch(_ name: String) throws -> String {
    let dir = NSTemporaryDirectory() + "lp-report-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

func write(_ text: String, to path: String) throws {
    try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try text.write(toFile: path, atomically: true, encoding: .utf8)
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

func must(_ argv: [String], cwd: String? = nil) throws -> Run {
    let r = try run(argv, cwd: cwd)
    if r.status != 0 { throw TestFailure("\(argv.joined(separator: " ")) failed (\(r.status)): \(r.stderrText)") }
    return r
}

/// Records `argv` with the built loadprobe (cwd /, a small environment) into `trace`.
func record(_ argv: [String], to trace: String) throws {
    let r = try run([loadprobe, "-q", "-o", trace, "--"] + argv, env: ["PATH": "/usr/bin:/bin", "LANG": "C"], cwd: "/")
    if !FileManager.default.fileExists(atPath: trace) { throw TestFailure("no trace written: \(r.stderrText)") }
}

func json(_ r: Run) throws -> [String: Any] {
    guard let obj = try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any] else {
        throw TestFailure("not a JSON object: \(r.stdoutText.prefix(200))")
    }
    return obj
}

func commandExists(_ name: String) -> Bool {
    ["/usr/bin/", "/bin/", "/usr/local/bin/"].contains { FileManager.default.isExecutableFile(atPath: $0 + name) }
}
