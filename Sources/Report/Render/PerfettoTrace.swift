import LoaderModel
import TraceFormat

/// Chrome/Perfetto trace-event JSON (the "JSON Array/Object Format" that
/// ui.perfetto.dev and chrome://tracing open): one track per process, with
/// nested complete slices — phase (start-up, main) ⊃ load group (start-up
/// load, each dlopen) ⊃ library search ⊃ the calls it made. Calls outside any
/// search sit directly in their phase. Times are microseconds from the
/// earliest event.
public enum PerfettoTrace {
    /// Above this many calls per trace, single calls are left out (searches stay).
    public static let callLimit = 200_000

    /// `leftOut`: traces of the job not drawn (a job keeps only its first traces' calls in memory).
    public static func render(_ analyses: [TraceAnalysis], leftOut: Int = 0) -> String {
        let note = leftOut > 0 ? ",\"leftOut\":\"the first \(analyses.count) traces of the job are drawn; \(leftOut) more are left out\"" : ""
        var out = "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"generator\":\"loadprobe report --format perfetto\"\(note)},\"traceEvents\":[\n"
        var first = true
        func emit(_ s: String) {
            if !first { out += ",\n" }
            first = false
            out += s
        }
        var t0 = UInt64.max
        for a in analyses { for p in a.processes { t0 = min(t0, p.startNs) } }
        if t0 == .max { t0 = 0 }
        func us(_ ns: UInt64) -> String {
            let d = ns >= t0 ? ns - t0 : 0
            return String(d / 1000) + "." + pad3(d % 1000)
        }
        func dur(_ a: UInt64, _ b: UInt64) -> String {
            let d = b > a ? b - a : 0
            return String(d / 1000) + "." + pad3(d % 1000)
        }
        for (ti, a) in analyses.enumerated() {
            let withCalls = a.allCalls <= callLimit
            for p in a.processes {
                let pid = analyses.count == 1 ? Int(p.pid) : ti * 1_000_000 + Int(p.pid)
                let tid = pid
                var pname = p.label
                if analyses.count > 1 { pname += " — " + SearchDirectory.basename(a.file) }
                emit("{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":\(pid),\"tid\":\(tid),\"args\":{\"name\":\(q(pname))}}")
                emit("{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":\(pid),\"tid\":\(tid),\"args\":{\"name\":\"loader and main thread\"}}")
                // Phase slices.
                let end = max(p.endNs, p.startNs)
                let mainAt = p.mainNs.map { min(max($0, p.startNs), end) }
                var phases: [(String, UInt64, UInt64)] = []
                if let m = mainAt {
                    phases.append(("start-up (exec → main)", p.startNs, m))
                    phases.append(("main", m, end))
                } else {
                    phases.append((p.forkedWithoutExec ? "forked process" : "start-up (main not reached)", p.startNs, end))
                }
                for (name, s, e) in phases {
                    emit("{\"name\":\(q(name)),\"cat\":\"phase\",\"ph\":\"X\",\"ts\":\(us(s)),\"dur\":\(dur(s, e)),\"pid\":\(pid),\"tid\":\(tid)}")
                }
                func phaseBounds(_ t: UInt64) -> (UInt64, UInt64) {
                    for (_, s, e) in phases where t >= s && t < e { return (s, e) }
                    return (phases.last!.1, phases.last!.2)
                }
                // Load groups, clamped into their phase and not overlapping each other.
                var groups: [(LoadGroup, UInt64, UInt64)] = []
                var lastEnd: UInt64 = 0
                for g in p.groups {
                    let (ps, pe) = phaseBounds(g.startNs)
                    let s = max(g.startNs, ps, lastEnd)
                    let e = min(max(g.endNs, s), pe)
                    groups.append((g, s, e))
                    lastEnd = e
                    let name = g.phase == .startup ? "load: start-up (\(g.names.count) names)" : "\(g.phase.name): \(g.names.first ?? "?")"
                    let caller = g.caller.map { ",\"caller\":\(q($0.label)),\"callerObject\":\(q($0.object))" } ?? ""
                    emit("{\"name\":\(q(name)),\"cat\":\"load-group\",\"ph\":\"X\",\"ts\":\(us(s)),\"dur\":\(dur(s, e)),\"pid\":\(pid),\"tid\":\(tid),\"args\":{\"names\":\(g.names.count)\(caller)}}")
                }
                func groupBounds(_ t: UInt64) -> (UInt64, UInt64)? {
                    for (_, s, e) in groups where t >= s && t <= e { return (s, e) }
                    return nil
                }
                // Search spans: from la_objsearch(ORIG) to the end of its last call.
                var spans = [(UInt64, UInt64)](repeating: (0, 0), count: p.searches.count)
                for (i, s) in p.searches.enumerated() { spans[i] = (s.timeNs, s.timeNs) }
                for c in p.calls where c.search >= 0 && c.event.tid == p.pid {
                    let i = Int(c.search)
                    spans[i].1 = max(spans[i].1, c.event.completed ? c.event.exitNs : c.event.entryNs)
                }
                var searchBounds = [(UInt64, UInt64)?](repeating: nil, count: p.searches.count)
                for (i, s) in p.searches.enumerated() {
                    guard let (gs, ge) = groupBounds(spans[i].0) ?? Optional(phaseBounds(spans[i].0)) else { continue }
                    let next = i + 1 < spans.count ? spans[i + 1].0 : ge
                    let start = max(spans[i].0, gs)
                    let stop = min(max(spans[i].1, start), ge, max(next, start))
                    searchBounds[i] = (start, stop)
                    let args = "{\"attempts\":\(s.attempts),\"failedCalls\":\(s.failedCalls),\"found\":\(q(s.found ?? "")),\"origin\":\(q(s.foundOrigin?.rawValue ?? ""))}"
                    emit("{\"name\":\(q("search " + s.name)),\"cat\":\"search\",\"ph\":\"X\",\"ts\":\(us(start)),\"dur\":\(dur(start, stop)),\"pid\":\(pid),\"tid\":\(tid),\"args\":\(args)}")
                }
                guard withCalls else { continue }
                var otherThreads = Set<Int32>()
                for c in p.calls {
                    let e = c.event
                    let name = e.call.name + " " + a.trace.string((e.resolved ?? e.path).base)
                    let args = "{\"path\":\(q(a.trace.path(e.resolved ?? e.path))),\"result\":\(e.result),\"purpose\":\(q(c.purpose.rawValue))}"
                    let cat = e.failed ? "call,failed" : "call"
                    if e.tid != p.pid {
                        let t = pid + 0 + Int(e.tid) - Int(p.pid) + (analyses.count == 1 ? 0 : 0)
                        if otherThreads.insert(e.tid).inserted {
                            emit("{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":\(pid),\"tid\":\(t),\"args\":{\"name\":\(q("thread \(e.tid)"))}}")
                        }
                        emit("{\"name\":\(q(name)),\"cat\":\"\(cat)\",\"ph\":\"X\",\"ts\":\(us(e.entryNs)),\"dur\":\(dur(e.entryNs, e.exitNs)),\"pid\":\(pid),\"tid\":\(t),\"args\":\(args)}")
                        continue
                    }
                    // Clamp the call into its parent: its search, else its group, else its phase.
                    let parent: (UInt64, UInt64)
                    if c.search >= 0, let b = searchBounds[Int(c.search)] {
                        parent = b
                    } else if let g = groupBounds(e.entryNs) {
                        // A call of no search inside a search's time: nest it there.
                        parent = containing(e.entryNs, searchBounds) ?? g
                    } else {
                        parent = phaseBounds(e.entryNs)
                    }
                    let s = min(max(e.entryNs, parent.0), parent.1)
                    let f = min(max(e.completed ? e.exitNs : e.entryNs, s), parent.1)
                    emit("{\"name\":\(q(name)),\"cat\":\"\(cat)\",\"ph\":\"X\",\"ts\":\(us(s)),\"dur\":\(dur(s, f)),\"pid\":\(pid),\"tid\":\(tid),\"args\":\(args)}")
                }
            }
        }
        out += "\n]}"
        return out
    }

    /// The search span that contains t (spans are in time order and do not overlap).
    static func containing(_ t: UInt64, _ spans: [(UInt64, UInt64)?]) -> (UInt64, UInt64)? {
        var lo = 0, hi = spans.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if let b = spans[mid], b.0 <= t { lo = mid + 1 } else if spans[mid] == nil { lo = mid + 1 } else { hi = mid }
        }
        var i = lo - 1
        while i >= 0 {
            if let b = spans[i] { return t >= b.0 && t < b.1 ? b : nil }
            i -= 1
        }
        return nil
    }

    static func pad3(_ v: UInt64) -> String {
        let s = String(v)
        return String(repeating: "0", count: 3 - s.count) + s
    }

    static func q(_ s: String) -> String {
        var out = ""
        JSON.quote(s, into: &out)
        return out
    }
}
