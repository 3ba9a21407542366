import Foundation
import TestSupport
import Testing

@Suite("renderers", .serialized)
struct RenderTests {
    /// Checks a Chrome trace-event document: required fields per phase type,
    /// complete slices properly nested per thread, every pid named.
    @Test("perfetto: trace-event format, per-thread nesting, process names, the expected slices")
    func perfettoFormat() throws {
        let f = try RPathFixture.get()
        let r = try must([loadprobe, "report", "--format", "perfetto", f.trace("app")])
        let doc = try #require(try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any])
        let events = try #require(doc["traceEvents"] as? [[String: Any]])
        #expect(!events.isEmpty)
        var named = Set<Int>()
        var pids = Set<Int>()
        var slices: [Int: [(start: Double, end: Double, name: String)]] = [:]
        for e in events {
            let ph = try #require(e["ph"] as? String)
            #expect(e["name"] is String)
            let pid = try #require(e["pid"] as? Int)
            #expect(e["tid"] is Int)
            switch ph {
            case "M":
                if e["name"] as? String == "process_name" {
                    #expect(((e["args"] as? [String: Any])?["name"] as? String)?.isEmpty == false)
                    named.insert(pid)
                }
            case "X":
                pids.insert(pid)
                let ts = try #require((e["ts"] as? NSNumber)?.doubleValue)
                let dur = try #require((e["dur"] as? NSNumber)?.doubleValue)
                #expect(ts >= 0 && dur >= 0)
                slices[e["tid"] as! Int, default: []].append((ts, ts + dur, e["name"] as! String))
            default:
                Issue.record("unexpected phase \(ph)")
            }
        }
        #expect(pids.isSubset(of: named), "every process has a process_name")
        // Nesting: sorted by start (longer first), each slice lies inside the enclosing open one.
        let eps = 0.0015
        for (tid, list) in slices {
            let sorted = list.sorted { $0.start != $1.start ? $0.start < $1.start : $0.end > $1.end }
            var stack: [(start: Double, end: Double, name: String)] = []
            for s in sorted {
                while let top = stack.last, s.start >= top.end - eps, !(s.start == top.start && s.end <= top.end) { stack.removeLast() }
                if let top = stack.last {
                    #expect(s.end <= top.end + eps, "tid \(tid): \(s.name) [\(s.start), \(s.end)] overlaps \(top.name) [\(top.start), \(top.end)]")
                }
                stack.append(s)
            }
        }
        let names = slices.values.flatMap { $0.map(\.name) }
        for lib in ["libx.so", "liby.so", "libz.so", "libt.so", "libc.so.6"] {
            #expect(names.contains("search " + lib), "a slice for the search of \(lib)")
        }
        #expect(names.contains { $0.hasPrefix("start-up") })
        #expect(names.contains { $0.hasPrefix("load: start-up") })
        #expect(names.contains { $0.hasPrefix("openat ") })
    }

    /// The page as headless Chromium lays it out, and the `data-charts-rendered`
    /// attribute its inline script sets (the charts with a non-empty bounding box and bars).
    func chromium(_ html: String, profile: String) throws -> (dom: String, rendered: String?) {
        let r = try run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                         "--user-data-dir=" + profile, "--virtual-time-budget=5000", "--dump-dom", "file://" + html])
        #expect(r.status == 0, "chromium: \(r.stderrText.suffix(400))")
        let dom = r.stdoutText
        return (dom, dom.range(of: #"data-charts-rendered="(\d+)""#, options: .regularExpression).map { String(dom[$0]) })
    }

    @Test("html: one self-contained file; headless Chromium renders its charts",
          .enabled(if: Needs.command("chromium"), "Debian's chromium package is not installed (scripts/setup installs it)"),
          .timeLimit(.minutes(3)))
    func htmlInChromium() throws {
        let f = try RPathFixture.get()
        let dir = try scratch("html")
        let html = dir + "/report.html"
        _ = try must([loadprobe, "report", "--format", "html", "-o", html, f.trace("app"), "--remote", f.dir])
        let text = try String(contentsOfFile: html, encoding: .utf8)
        #expect(text.hasPrefix("<!doctype html>"))
        for external in ["src=\"http", "href=\"http", "src=\"//", "@import", "url("] {
            #expect(!text.contains(external), "nothing loaded from elsewhere: \(external)")
        }
        let (dom, rendered) = try chromium(html, profile: dir + "/profile")
        let count = rendered.flatMap { Int($0.filter(\.isNumber)) } ?? 0
        #expect(count >= 3, "charts rendered: \(rendered ?? "none")")
        #expect(dom.contains("chart-directories") && dom.contains("chart-scenarios"))
        #expect(dom.contains(f.d1))
    }

    @Test("html of a job: the rank histogram and the per-host chart render in headless Chromium beside the others",
          .enabled(if: Needs.command("chromium"), "Debian's chromium package is not installed (scripts/setup installs it)"),
          .timeLimit(.minutes(3)))
    func jobHtmlInChromium() throws {
        let f = try RPathFixture.get()
        let dir = try scratch("html-job")
        try FileManager.default.createDirectory(atPath: dir + "/job", withIntermediateDirectories: true)
        for name in ["app", "shrinkwrap", "view"] { try FileManager.default.copyItem(atPath: f.trace(name), toPath: dir + "/job/\(name).lpt") }
        let html = dir + "/report.html"
        _ = try must([loadprobe, "report", "--format", "html", "-o", html, dir + "/job", "--remote", f.dir])
        let (dom, rendered) = try chromium(html, profile: dir + "/profile")
        #expect(dom.contains("<h2>The job</h2>") && dom.contains("3 ranks on 1 node"), "\(dom.prefix(1500))")
        #expect(dom.contains("job-histogram") && dom.contains("job-hosts"))
        let count = rendered.flatMap { Int($0.filter(\.isNumber)) } ?? 0
        #expect(count >= 5, "the job's two charts and the report's: \(rendered ?? "none")")
    }
}
