import Foundation
import Testing
import TraceFormat
import TestSupport

/// The traced calls, as strace's -e trace= list.
let tracedCallNames = FileCall.allCases.map(\.name)

/// Calls per name and result from `strace -f`, the independent truth.
struct CallCounts: Equatable, CustomStringConvertible {
    var counts: [String: (calls: Int, failed: Int)] = [:]
    static func == (a: CallCounts, b: CallCounts) -> Bool {
        Set(a.counts.keys) == Set(b.counts.keys) && a.counts.allSatisfy { k, v in b.counts[k]! == v }
    }
    var description: String {
        counts.keys.sorted().map { "\($0)=\(counts[$0]!.calls)/\(counts[$0]!.failed)" }.joined(separator: " ")
    }
}

func straceCounts(_ argv: [String], env: [String: String]? = nil, cwd: String? = nil) throws -> (CallCounts, Run) {
    let out = try scratch("strace") + "/strace.txt"
    let r = try run(["strace", "-f", "-qq", "-e", "trace=" + tracedCallNames.joined(separator: ","), "-o", out] + argv,
                    env: env, cwd: cwd)
    var c = CallCounts()
    let names = Set(tracedCallNames)
    // An unfinished call is counted at its "resumed" line, which has the result.
    for line in Strace.parse(try String(contentsOfFile: out, encoding: .utf8)) where !line.unfinished && names.contains(line.name) {
        guard line.result != nil else { continue }
        c.counts[line.name, default: (0, 0)].calls += 1
        if line.failed { c.counts[line.name, default: (0, 0)].failed += 1 }
    }
    return (c, r)
}

/// Calls per name and result from loadprobe's JSON report.
func reportCounts(_ trace: String) throws -> CallCounts {
    let r = try run([loadprobe, "report", "--format", "json", trace])
    guard r.status == 0 else { throw TestFailure("report failed: \(r.stderrText)") }
    let obj = try JSONSerialization.jsonObject(with: r.stdout) as! [String: Any]
    #expect(obj["format"] as? String == "loadprobe-report/1")
    let totals = obj["totals"] as! [String: Any]
    let sys = totals["syscalls"] as! [String: [String: Int]]
    var c = CallCounts()
    for (k, v) in sys { c.counts[k] = (v["calls"]!, v["failed"]!) }
    return c
}
