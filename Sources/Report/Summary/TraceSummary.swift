import LoaderModel
import TraceFormat

/// What one recorded run amounts to: per process and in total. Counts leave out
/// the calls made by loadprobe's own audit library.
public struct TraceSummary: Sendable {
    public struct Process: Sendable {
        public var pid: Int32
        public var parent: Int32
        public var how: ProcessStart
        /// The program of each image the process ran, in order.
        public var images: [String]
        public var argv: [String]
        public var threads = 1
        public var exitStatus: Int32?
        public var signal: Int32?
        /// When the process appeared (its PROCESS record), and when its main thread ended.
        public var startNs: UInt64?
        public var exitNs: UInt64?
        public var syscalls: [FileCall: CallCount] = [:]
        public var searchAttempts = 0
        public var searchesByFlag = SearchFlagCounts()
        public var objects = 0
        /// From the start of the (last) image to la_preinit, when both are known.
        public var execToMainNs: UInt64?
        public var reachedMain = false
        public var audited = false
        public var notes: [String] = []
    }

    public var file: String
    public var processes: [Process]
    public var syscalls: [FileCall: CallCount]
    public var searchAttempts: Int
    public var searchesByFlag: SearchFlagCounts
    public var objects: Int
    public var ownCalls: Int
    public var events: Int
    public var fileBytes: Int
    /// The `mode` metadata as written ("unknown" when absent), for display.
    public var mode: String
    public var recordingMode: RecordingMode?
    public var complete: Bool

    public var totalCalls: Int { syscalls.values.reduce(0) { $0 + $1.calls } }
    public var totalFailed: Int { syscalls.values.reduce(0) { $0 + $1.failed } }

    /// The summary of a trace, in one pass over its events. (TraceAnalysis
    /// makes it in its own pass: `TraceAnalysis.summary`.)
    public init(trace: Trace, file: String) {
        var counter = Counter()
        for e in trace.events { counter.add(e, trace) }
        self.init(counter: counter, trace: trace, file: file)
    }

    init(counter: Counter, trace: Trace, file: String) {
        self.file = file
        processes = counter.finished()
        var totals: [FileCall: CallCount] = [:]
        var flags = SearchFlagCounts()
        for p in processes {
            for (k, v) in p.syscalls { totals[k, default: CallCount()].calls += v.calls; totals[k, default: CallCount()].failed += v.failed }
            flags += p.searchesByFlag
        }
        syscalls = totals
        searchesByFlag = flags
        searchAttempts = processes.reduce(0) { $0 + $1.searchAttempts }
        objects = processes.reduce(0) { $0 + $1.objects }
        ownCalls = counter.own
        events = trace.events.count
        fileBytes = trace.fileBytes
        mode = trace.meta(.mode) ?? "unknown"
        recordingMode = trace.recordingMode
        complete = trace.complete
    }

    /// One pass over the events. Processes in order of appearance, updated in
    /// place (a per-event copy of a Process with its dictionaries would copy
    /// them); calls counted per call number.
    struct Counter {
        var procs: [Process] = []
        var counts: [[CallCount]] = []
        var index: [Int32: Int] = [:]
        var lastPid: Int32 = 0, lastIdx = -1
        // exec → main: from the exec the tracer saw, else (audit only) from the
        // audit library's first record of the image.
        var lastExec: [Int32: UInt64] = [:]
        var lastImage: [Int32: UInt64] = [:]
        var lastPreinit: [Int32: UInt64] = [:]
        var own = 0

        /// The process seen with this pid, if any (a pid with only loadprobe's own calls has none).
        func process(_ pid: Int32) -> Process? { index[pid].map { procs[$0] } }

        mutating func proc(_ pid: Int32) -> Int {
            if lastIdx >= 0 && pid == lastPid { return lastIdx }
            let i: Int
            if let k = index[pid] { i = k } else {
                i = procs.count
                index[pid] = i
                procs.append(Process(pid: pid, parent: 0, how: .root, images: [], argv: []))
                counts.append([CallCount](repeating: CallCount(), count: 256))
            }
            lastPid = pid; lastIdx = i
            return i
        }

        mutating func add(_ e: TraceEvent, _ trace: Trace) {
            switch e {
            case .process(let p):
                if p.how == .thread {
                    procs[proc(p.pid)].threads += 1
                } else if index[p.pid] == nil || procs[index[p.pid]!].startNs == nil {
                    let i = proc(p.pid)
                    procs[i].parent = p.parent; procs[i].how = p.how; procs[i].startNs = p.timeNs
                }
            case .exec(let x):
                let i = proc(x.pid)
                procs[i].images.append(trace.path(x.path))
                procs[i].argv = x.argv.map { trace.string($0) }
                lastExec[x.pid] = x.timeNs
            case .syscall(let s):
                if s.own { own += 1; return }
                let i = proc(s.pid)
                let c = Int(s.call.rawValue)
                counts[i][c].calls += 1
                if s.failed { counts[i][c].failed += 1 }
            case .audit(let a):
                audit(a, trace)
            case .exit(let x):
                guard x.tid == x.pid else { return }
                let i = proc(x.pid)
                procs[i].exitStatus = x.exitCode
                procs[i].signal = x.signal
                procs[i].exitNs = x.timeNs
            case .note(let n):
                procs[proc(n.pid)].notes.append(trace.string(n.text))
            case .caller:
                break
            }
        }

        mutating func audit(_ a: AuditEvent, _ trace: Trace) {
            let i = proc(a.pid)
            procs[i].audited = true
            switch a.kind {
            case .objsearch:
                let flag = AuditSearchFlag(rawValue: a.flag)
                procs[i].searchesByFlag.add(flag)
                if !flag.isOriginalName { procs[i].searchAttempts += 1 }
            case .objopen: procs[i].objects += 1
            case .preinit:
                procs[i].reachedMain = true
                let previous = lastPreinit[a.pid] ?? 0
                let start = lastExec[a.pid].flatMap { $0 > previous ? $0 : nil } ?? lastImage[a.pid]
                if let start, a.timeNs >= start { procs[i].execToMainNs = a.timeNs - start }
                lastPreinit[a.pid] = a.timeNs
            case .image:
                lastImage[a.pid] = a.timeNs
                if procs[i].images.isEmpty { procs[i].images.append(trace.path(a.name)) }
            default: break
            }
        }

        /// The processes with their counts as dictionaries.
        func finished() -> [Process] {
            var procs = self.procs
            for i in procs.indices {
                for c in FileCall.allCases where counts[i][Int(c.rawValue)].calls > 0 {
                    procs[i].syscalls[c] = counts[i][Int(c.rawValue)]
                }
            }
            return procs
        }
    }
}

/// la_objsearch calls counted by their flag: the names asked (LA_SER_ORIG), the
/// candidate paths by origin, and LA_SER_SECURE alone. A flag that names none
/// of these (two origins at once) is not counted.
public struct SearchFlagCounts: Sendable, Equatable {
    public var namesAsked = 0
    /// Candidates per origin, by `LookupOrigin.allCases` index (an array: counted per record).
    var originCounts = [Int](repeating: 0, count: LookupOrigin.allCases.count)
    /// Candidates by origin (origins with none left out).
    public var byOrigin: [LookupOrigin: Int] {
        var d: [LookupOrigin: Int] = [:]
        for (i, o) in LookupOrigin.allCases.enumerated() where originCounts[i] > 0 { d[o] = originCounts[i] }
        return d
    }
    /// An origin's place in `LookupOrigin.allCases` (a switch: no hashing per record).
    @inline(__always) static func index(_ o: LookupOrigin) -> Int {
        switch o {
        case .ldLibraryPath: 0
        case .rpath: 1
        case .runpath: 2
        case .rpathOrRunpath: 3
        case .cache: 4
        case .defaultPath: 5
        case .absolute: 6
        case .loaded: 7
        }
    }
    public var secureOnly = 0
    public init() {}

    /// The origins a flag can name, in the documented order of `byOrigin`.
    public static let flagOrigins: [LookupOrigin] = [.ldLibraryPath, .rpathOrRunpath, .cache, .defaultPath]

    public mutating func add(_ flag: AuditSearchFlag) {
        if flag.subtracting(.secure) == .orig { namesAsked += 1 }
        else if let o = flag.origin { originCounts[Self.index(o)] += 1 }
        else if flag.isSecureOnly { secureOnly += 1 }
    }

    public static func += (a: inout SearchFlagCounts, b: SearchFlagCounts) {
        a.namesAsked += b.namesAsked
        a.secureOnly += b.secureOnly
        for i in a.originCounts.indices { a.originCounts[i] += b.originCounts[i] }
    }

    /// loadprobe-report/1's `byOrigin` entries: ORIG, the four origins by their
    /// flag names, then SECURE (only when counted, unless `secureAlways`).
    public func entries(secureAlways: Bool = false) -> [(name: String, count: Int)] {
        var e: [(name: String, count: Int)] = [("ORIG", namesAsked)]
        for o in Self.flagOrigins { e.append((o.auditName, originCounts[Self.index(o)])) }
        if secureAlways || secureOnly > 0 { e.append(("SECURE", secureOnly)) }
        return e
    }
}

/// Calls and how many of them failed: the pair every count of the report keeps.
public struct CallCount: Sendable, Equatable {
    public var calls = 0
    public var failed = 0

    public init(calls: Int = 0, failed: Int = 0) { self.calls = calls; self.failed = failed }

    /// One call more.
    @inline(__always) public mutating func add(failed f: Bool) {
        calls += 1
        if f { failed += 1 }
    }

    public static func += (a: inout CallCount, b: CallCount) {
        a.calls += b.calls
        a.failed += b.failed
    }
}
