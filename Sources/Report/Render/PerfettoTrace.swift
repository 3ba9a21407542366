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
        var w = Writer(analyses: analyses)
        let note = leftOut > 0 ? ",\"leftOut\":\"the first \(analyses.count) traces of the job are drawn; \(leftOut) more are left out\"" : ""
        w.out = "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"generator\":\"loadprobe report --format perfetto\"\(note)},\"traceEvents\":[\n"
        for (ti, a) in analyses.enumerated() {
            for p in a.processes { w.process(p, of: a, index: ti) }
        }
        w.out += "\n]}"
        return w.out
    }

    /// The events of one process, layer by layer: its phases, its load
    /// groups (clamped into their phase), its searches (clamped into their
    /// group), its calls (clamped into their search, group or phase).
    struct Writer {
        let analyses: [TraceAnalysis]
        /// The earliest start: times are microseconds from it.
        let t0: UInt64
        var out = ""
        private var first = true

        init(analyses: [TraceAnalysis]) {
            self.analyses = analyses
            var t0 = UInt64.max
            for a in analyses { for p in a.processes { t0 = min(t0, p.startNs) } }
            self.t0 = t0 == .max ? 0 : t0
        }

        mutating func emit(_ s: String) {
            if !first { out += ",\n" }
            first = false
            out += s
        }

        func us(_ ns: UInt64) -> String {
            let d = ns >= t0 ? ns - t0 : 0
            return String(d / 1000) + "." + pad3(d % 1000)
        }

        func dur(_ a: UInt64, _ b: UInt64) -> String {
            let d = b > a ? b - a : 0
            return String(d / 1000) + "." + pad3(d % 1000)
        }

        /// A complete ("X") slice on the process's main track.
        mutating func slice(_ name: String, _ cat: String, _ s: UInt64, _ e: UInt64, pid: Int, tid: Int, args: String? = nil) {
            emit("{\"name\":\(q(name)),\"cat\":\"\(cat)\",\"ph\":\"X\",\"ts\":\(us(s)),\"dur\":\(dur(s, e)),\"pid\":\(pid),\"tid\":\(tid)" + (args.map { ",\"args\":" + $0 } ?? "") + "}")
        }

        mutating func process(_ p: ProcessAnalysis, of a: TraceAnalysis, index ti: Int) {
            let pid = analyses.count == 1 ? Int(p.pid) : ti * 1_000_000 + Int(p.pid)
            var pname = p.label
            if analyses.count > 1 { pname += " — " + SearchDirectory.basename(a.file) }
            emit("{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":\(pid),\"tid\":\(pid),\"args\":{\"name\":\(q(pname))}}")
            emit("{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":\(pid),\"tid\":\(pid),\"args\":{\"name\":\"loader and main thread\"}}")
            let phases = self.phases(p, pid: pid)
            let groups = self.groups(p, phases: phases, pid: pid)
            let searches = self.searches(p, phases: phases, groups: groups, pid: pid)
            if a.allCalls <= callLimit { calls(p, of: a, phases: phases, groups: groups, searches: searches, pid: pid) }
        }

        /// Start-up (exec → main) and main, or one slice when main was not reached.
        mutating func phases(_ p: ProcessAnalysis, pid: Int) -> Bounds {
            let end = max(p.endNs, p.startNs)
            var phases: [(name: String, start: UInt64, end: UInt64)] = []
            if let m = p.mainNs.map({ min(max($0, p.startNs), end) }) {
                phases.append(("start-up (exec → main)", p.startNs, m))
                phases.append(("main", m, end))
            } else {
                phases.append((p.forkedWithoutExec ? "forked process" : "start-up (main not reached)", p.startNs, end))
            }
            for (name, s, e) in phases { slice(name, "phase", s, e, pid: pid, tid: pid) }
            return Bounds(spans: phases.map { (start: $0.start, end: $0.end) })
        }

        /// Load groups, clamped into their phase and not overlapping each other.
        mutating func groups(_ p: ProcessAnalysis, phases: Bounds, pid: Int) -> Bounds {
            var spans: [Span] = []
            var lastEnd: UInt64 = 0
            for g in p.groups {
                let (ps, pe) = phases.phase(g.startNs)
                let s = max(g.startNs, ps, lastEnd)
                let e = min(max(g.endNs, s), pe)
                spans.append((s, e))
                lastEnd = e
                let name = g.phase == .startup ? "load: start-up (\(g.names.count) names)" : "\(g.phase.name): \(g.names.first ?? "?")"
                let caller = g.caller.map { ",\"caller\":\(q($0.label)),\"callerObject\":\(q($0.object))" } ?? ""
                slice(name, "load-group", s, e, pid: pid, tid: pid, args: "{\"names\":\(g.names.count)\(caller)}")
            }
            return Bounds(spans: spans)
        }

        /// Search spans: from la_objsearch(ORIG) to the end of its last call, within their group.
        mutating func searches(_ p: ProcessAnalysis, phases: Bounds, groups: Bounds, pid: Int) -> [Span?] {
            var spans = [Span](repeating: (start: 0, end: 0), count: p.searches.count)
            for (i, s) in p.searches.enumerated() { spans[i] = (s.timeNs, s.timeNs) }
            for c in p.calls where c.search >= 0 && c.event.tid == p.pid {
                let i = Int(c.search)
                spans[i].end = max(spans[i].end, c.event.completed ? c.event.exitNs : c.event.entryNs)
            }
            var bounds = [Span?](repeating: nil, count: p.searches.count)
            for (i, s) in p.searches.enumerated() {
                let (gs, ge) = groups.group(spans[i].start) ?? phases.phase(spans[i].start)
                let next = i + 1 < spans.count ? spans[i + 1].start : ge
                let start = max(spans[i].start, gs)
                let stop = min(max(spans[i].end, start), ge, max(next, start))
                bounds[i] = (start, stop)
                let args = "{\"attempts\":\(s.attempts),\"failedCalls\":\(s.failedCalls),\"found\":\(q(s.found ?? "")),\"origin\":\(q(s.foundOriginLabel))}"
                slice("search " + s.name, "search", start, stop, pid: pid, tid: pid, args: args)
            }
            return bounds
        }

        /// Each call, clamped into its search, else its group, else its phase;
        /// calls of other threads on tracks of their own.
        mutating func calls(_ p: ProcessAnalysis, of a: TraceAnalysis, phases: Bounds, groups: Bounds,
                            searches: [Span?], pid: Int) {
            var otherThreads = Set<Int32>()
            for c in p.calls {
                let e = c.event
                let name = e.call.name + " " + a.trace.string((e.resolved ?? e.path).base)
                let args = "{\"path\":\(q(a.trace.path(e.resolved ?? e.path))),\"result\":\(e.result),\"purpose\":\(q(c.purpose.rawValue))}"
                let cat = e.failed ? "call,failed" : "call"
                if e.tid != p.pid {
                    let t = pid + Int(e.tid) - Int(p.pid)
                    if otherThreads.insert(e.tid).inserted {
                        emit("{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":\(pid),\"tid\":\(t),\"args\":{\"name\":\(q("thread \(e.tid)"))}}")
                    }
                    slice(name, cat, e.entryNs, e.exitNs, pid: pid, tid: t, args: args)
                    continue
                }
                let parent: Span
                if c.search >= 0, let b = searches[Int(c.search)] {
                    parent = b
                } else if let g = groups.group(e.entryNs) {
                    // A call of no search inside a search's time: nest it there.
                    parent = containing(e.entryNs, searches) ?? g
                } else {
                    parent = phases.phase(e.entryNs)
                }
                let s = min(max(e.entryNs, parent.start), parent.end)
                let f = min(max(e.completed ? e.exitNs : e.entryNs, s), parent.end)
                slice(name, cat, s, f, pid: pid, tid: pid, args: args)
            }
        }
    }

    /// Time spans of one layer (phases, or load groups), in order.
    /// A time span, start to end (ns).
    typealias Span = (start: UInt64, end: UInt64)

    struct Bounds {
        var spans: [Span]
        /// The phase holding t, else the last one.
        func phase(_ t: UInt64) -> Span {
            for (s, e) in spans where t >= s && t < e { return (s, e) }
            return spans.last!
        }
        /// The group holding t (its end included).
        func group(_ t: UInt64) -> Span? {
            for (s, e) in spans where t >= s && t <= e { return (s, e) }
            return nil
        }
    }

    /// The search span that contains t (spans are in time order and do not overlap).
    static func containing(_ t: UInt64, _ spans: [Span?]) -> Span? {
        var lo = 0, hi = spans.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if let b = spans[mid], b.start <= t { lo = mid + 1 } else if spans[mid] == nil { lo = mid + 1 } else { hi = mid }
        }
        var i = lo - 1
        while i >= 0 {
            if let b = spans[i] { return t >= b.start && t < b.end ? b : nil }
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
