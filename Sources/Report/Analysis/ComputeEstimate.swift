import TraceFormat
import LoaderModel
/// How long a process computed outside its file calls, estimated from a traced
/// run. Under ptrace every traced call costs a stop round trip (~25–140 µs),
/// far more than the call itself; the work between calls (mapping objects,
/// relocation, initialisers, main) runs at full speed, because the seccomp
/// filter stops only the file calls. So: the gaps between consecutive calls,
/// each less the stop overhead, summed. The stop overhead is the median gap
/// between two failed candidate opens of one search, where ld.so does almost
/// nothing between the calls.
public struct ComputeEstimate: Sendable {
    public var seconds: Double
    /// The tracer's cost per call that was taken off each gap.
    public var stopOverheadSeconds: Double
    /// How it was obtained.
    public var method: String

    /// Seconds ld.so spends mapping one object (open to la_objopen, without the
    /// file calls): measured untraced on the bench machine with pynamic-like
    /// libraries (docs/cost-model.md); objects with many segments or large
    /// symbol tables take longer.
    public static let mappingPerObject = 65e-6

    /// The k-th smallest value (what `sorted()[k]` gives), by quickselect: a
    /// 900-library start-up has ~400,000 gaps, and only the median is wanted.
    static func kthSmallest(_ a: inout [UInt64], _ k: Int) -> UInt64 {
        var lo = 0, hi = a.count - 1
        while lo < hi {
            let mid = lo + (hi - lo) / 2
            // Median of three as the pivot.
            if a[mid] < a[lo] { a.swapAt(mid, lo) }
            if a[hi] < a[lo] { a.swapAt(hi, lo) }
            if a[hi] < a[mid] { a.swapAt(hi, mid) }
            let pivot = a[mid]
            var i = lo, j = hi
            while i <= j {
                while a[i] < pivot { i += 1 }
                while a[j] > pivot { j -= 1 }
                if i <= j { a.swapAt(i, j); i += 1; j -= 1 }
            }
            if k <= j { hi = j } else if k >= i { lo = i } else { return a[k] }
        }
        return a[k]
    }

    public init(_ p: ProcessAnalysis, mode: RecordingMode?) {
        let calls = p.calls
        if calls.isEmpty || mode == .auditOnly {
            // No stops (audit-only): the recorded span is the real one.
            let end = p.mainNs ?? p.endNs
            seconds = Double(end > p.startNs ? end - p.startNs : 0) / 1e9
            stopOverheadSeconds = 0
            method = mode == .auditOnly ? "exec → main of an audit-only recording (no tracer stops)" : "recorded span (no calls)"
            return
        }
        var candidateGaps: [UInt64] = []
        for i in 1..<max(1, calls.count) {
            let a = calls[i - 1], b = calls[i]
            if a.event.tid != p.pid || b.event.tid != p.pid { continue }
            if a.search >= 0 && a.search == b.search && a.failed && b.failed && a.event.call.isOpen && b.event.call.isOpen
                && b.event.entryNs > a.event.exitNs {
                candidateGaps.append(b.event.entryNs - a.event.exitNs)
            }
        }
        var overhead: UInt64 = 25_000
        if !candidateGaps.isEmpty {
            overhead = ComputeEstimate.kthSmallest(&candidateGaps, candidateGaps.count / 2)
            method = "gaps between calls outside searches less the tracer's stop cost (median gap between failed candidate opens), plus 65 µs per object mapped"
        } else {
            method = "gaps between calls outside searches less an assumed 25 µs stop cost, plus 65 µs per object mapped"
        }
        // Inside a search, ld.so only builds the next candidate name between two
        // calls (that CPU time is part of each call's local cost): those gaps are
        // left out. The others hold mapping, relocation, initialisers and main.
        var total: UInt64 = 0
        var last = p.startNs
        var previous: AttributedCall?
        for c in calls where c.event.tid == p.pid {
            let e = c.event
            let withinSearch = previous.map { $0.search >= 0 && $0.search == c.search && $0.purpose != .objectStat } ?? false
            // After an object's fstat ld.so maps it; the tracer drains the audit
            // records at that stop, which inflates the gap: mapping is priced per
            // object instead (mappingPerObject).
            let afterMapping = previous.map { $0.purpose == .objectStat && $0.search >= 0 && c.search >= 0 } ?? false
            if e.entryNs > last && !withinSearch && !afterMapping {
                let gap = e.entryNs - last
                if gap > overhead { total = saturatingAdd(total, gap - overhead) }
            }
            last = max(last, e.completed ? e.exitNs : e.entryNs)
            previous = c
        }
        if p.endNs > last, p.endNs - last > overhead { total = saturatingAdd(total, p.endNs - last - overhead) }
        seconds = Double(total) / 1e9 + Double(p.objects.count) * ComputeEstimate.mappingPerObject
        stopOverheadSeconds = Double(overhead) / 1e9
    }
}

/// a + b, or UInt64.max where that overflows (times from a damaged trace).
@inline(__always) func saturatingAdd(_ a: UInt64, _ b: UInt64) -> UInt64 {
    let (r, o) = a.addingReportingOverflow(b)
    return o ? .max : r
}
