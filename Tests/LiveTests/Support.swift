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
    let text = try String(contentsOfFile: out, encoding: .utf8)
    var c = CallCounts()
    let names = Set(tracedCallNames)
    for raw in text.split(separator: "\n") {
        var line = Substring(raw)
        // "1234  openat(...) = 3" with -f and -o: pid first.
        if let sp = line.firstIndex(where: { $0 == " " }), line[..<sp].allSatisfy(\.isNumber) {
            line = line[sp...].drop { $0 == " " }
        }
        if line.hasPrefix("+++") || line.hasPrefix("---") { continue }
        let name: Substring
        if line.hasPrefix("<... ") {
            // "<... openat resumed>..." completes an unfinished call
            let rest = line.dropFirst(5)
            name = rest.prefix { $0 != " " }
        } else {
            name = line.prefix { $0 != "(" }
            if line.hasSuffix("<unfinished ...>") { continue }
        }
        guard names.contains(String(name)) else { continue }
        guard let eq = line.range(of: ") = ", options: .backwards) ?? line.range(of: " = ", options: .backwards) else { continue }
        let result = line[eq.upperBound...]
        if result.hasPrefix("?") { // the process ended inside the call
            c.counts[String(name), default: (0, 0)].calls += 1
            continue
        }
        c.counts[String(name), default: (0, 0)].calls += 1
        if result.hasPrefix("-1 ") { c.counts[String(name), default: (0, 0)].failed += 1 }
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
