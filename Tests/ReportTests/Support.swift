import Foundation
import Testing
import TestSupport

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


