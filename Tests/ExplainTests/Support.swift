import Foundation
import Testing
import TestSupport
@testable import Report
@testable import LoaderModel

/// A finished command: exit status (128+N when killed by signal N), stdout, stderr.
struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs argv[0] (a path, or a name looked up in PATH) with output captured to files,
/// so that a chatty command cannot block on a full pipe.
@discardableResult
func shell(_ argv: [String], environment: [String: String]? = nil, directory: String? = nil) throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: argv[0].contains("/") ? argv[0] : "/usr/bin/env")
    process.arguments = argv[0].contains("/") ? Array(argv.dropFirst()) : argv
    if let environment { process.environment = environment }
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let base = NSTemporaryDirectory() + "lp-explain-out-\(UUID().uuidString)"
    _ = FileManager.default.createFile(atPath: base + ".out", contents: nil)
    _ = FileManager.default.createFile(atPath: base + ".err", contents: nil)
    defer {
        try? FileManager.default.removeItem(atPath: base + ".out")
        try? FileManager.default.removeItem(atPath: base + ".err")
    }
    let out = try FileHandle(forWritingTo: URL(fileURLWithPath: base + ".out"))
    let err = try FileHandle(forWritingTo: URL(fileURLWithPath: base + ".err"))
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    try out.close()
    try err.close()
    let status = process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
    return CommandResult(status: status,
                         stdout: (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? "",
                         stderr: (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? "")
}

/// An environment without the loader variables of the test runner itself.
var cleanEnvironment: [String: String] {
    var env = ProcessInfo.processInfo.environment
    for name in ["LD_LIBRARY_PATH", "LD_PRELOAD", "LD_AUDIT", "LD_DEBUG"] { env[name] = nil }
    return env
}

struct FixtureError: Error, CustomStringConvertible {
    var description: String
}

/// A scratch directory of C fixtures compiled for one test.
struct Fixture {
    let root: String

    init(_ name: String) throws {
        root = NSTemporaryDirectory() + "lp-explain-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    func path(_ relative: String) -> String { root + "/" + relative }

    func write(_ relative: String, _ text: String) throws {
        let full = path(relative)
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try text.write(toFile: full, atomically: false, encoding: .utf8)
    }

    func mkdir(_ relative: String) throws {
        try FileManager.default.createDirectory(atPath: path(relative), withIntermediateDirectories: true)
    }

    /// Runs a compiler command in the fixture directory; throws with its stderr on failure.
    func compile(_ arguments: [String], compiler: String = "gcc") throws {
        let result = try shell([compiler] + arguments, environment: cleanEnvironment, directory: root)
        if result.status != 0 {
            throw FixtureError(description: "\(compiler) \(arguments.joined(separator: " ")) failed: \(result.stderr)")
        }
    }

    /// A shared library `dir/lib<name>.so` exporting `int <symbol>(void) { return value; }`.
    func library(_ name: String, in dir: String, symbol: String? = nil, value: Int = 1, needs: [String] = [],
                 linkFlags: [String] = [], compiler: String = "gcc", soname: String? = nil) throws {
        let source = "src/\(name)-\(value)-\(UInt32.random(in: 0...UInt32.max)).c"
        var text = ""
        for dep in needs { text += "int \(dep)_f(void);\n" }
        text += "int \(symbol ?? name + "_f")(void) { return \(value)"
        for dep in needs { text += " + \(dep)_f()" }
        text += "; }\n"
        try write(source, text)
        try mkdir(dir)
        try compile(["-shared", "-fPIC", "-o", "\(dir)/lib\(name).so", source, "-Wl,-soname,\(soname ?? "lib\(name).so")",
                     "-Wl,--no-as-needed"] + needs.map { "-l\($0)" } + linkFlags, compiler: compiler)
    }

    /// A program `name` calling `<lib>_f()` for each lib, linked with `linkFlags`.
    func program(_ name: String, calls: [String] = [], linkFlags: [String], compiler: String = "gcc") throws {
        var text = ""
        for lib in calls { text += "int \(lib)_f(void);\n" }
        text += "int main(void) { int r = 0;"
        for lib in calls { text += " r += \(lib)_f();" }
        text += " return r > 1000000 ? 1 : 0; }\n"
        try write("src/\(name).c", text)
        try compile(["-o", name, "src/\(name).c", "-Wl,--no-as-needed"] + linkFlags, compiler: compiler)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: root)
    }
}

/// What `strace -f` counts for one run: openat/open calls and stat-family calls.
struct StraceCounts: Equatable, CustomStringConvertible {
    var openat: Int
    var stat: Int
    var lines: [String]
    var description: String { "\(openat) openat, \(stat) stat" }
}

func straceCounts(_ argv: [String], environment: [String: String]) throws -> StraceCounts {
    let log = NSTemporaryDirectory() + "lp-explain-strace-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: log) }
    let result = try shell(["strace", "-f", "-qq", "-o", log,
                            "-e", "trace=openat,open,stat,newfstatat,fstat,lstat,statx"] + argv,
                           environment: environment)
    guard result.status == 0 || result.status == 1 || result.status == 127 else {
        throw FixtureError(description: "strace \(argv) exited \(result.status): \(result.stderr)")
    }
    var openat = 0, stat = 0
    var lines: [String] = []
    // Each call once: at its first line (a "resumed" line continues one).
    for line in Strace.parse(try String(contentsOfFile: log, encoding: .utf8)) where !line.resumed {
        switch line.name {
        case "openat", "open": openat += 1; lines.append(String(line.text))
        case "stat", "newfstatat", "fstat", "lstat", "statx": stat += 1; lines.append(String(line.text))
        default: break
        }
    }
    return StraceCounts(openat: openat, stat: stat, lines: lines)
}

/// The built `loadprobe` next to the test bundle.
let loadprobeExecutable: String = {
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
    while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("loadprobe").path), dir.path != "/" {
        dir = dir.deletingLastPathComponent()
    }
    return dir.appendingPathComponent("loadprobe").path
}()

/// Explains `path` in-process with an explicit environment (never the test runner's).
func explain(_ path: String, ldLibraryPath: String? = nil, ldPreload: String? = nil,
             directory: String = FileManager.default.currentDirectoryPath) throws -> Explanation {
    let environment = LoaderEnvironment(ldLibraryPath: ldLibraryPath, ldPreload: ldPreload, workingDirectory: directory)
    return try Explainer.explain(path, options: ExplainOptions(environment: environment))
}

extension Explanation {
    func hazards(_ kind: Hazard.Kind) -> [Hazard] { hazards.filter { $0.kind == kind } }
    /// needed name → resolved path for the objects the load mapped (first occurrence).
    var resolution: [String: String?] {
        var result: [String: String?] = [:]
        for object in load.objects where result[object.needed] == nil && (object.loadedNewObject || object.path == nil) {
            result[object.needed] = .some(object.path)
        }
        return result
    }
}
