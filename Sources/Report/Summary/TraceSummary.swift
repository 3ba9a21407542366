import TraceFormat

/// What one recorded run amounts to: per process and in total. Counts leave out
/// the calls made by loadprobe's own audit library.
public struct TraceSummary: Sendable {
    public struct CallCount: Sendable, Equatable {
        public var calls = 0
        public var failed = 0
    }

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
        public var syscalls: [FileCall: CallCount] = [:]
        public var searchAttempts = 0
        public var searchesByOrigin: [TraceFormat.SearchOrigin: Int] = [:]
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
    public var searchesByOrigin: [TraceFormat.SearchOrigin: Int]
    public var objects: Int
    public var ownCalls: Int
    public var events: Int
    public var fileBytes: Int
    public var mode: String
    public var complete: Bool

    public var totalCalls: Int { syscalls.values.reduce(0) { $0 + $1.calls } }
    public var totalFailed: Int { syscalls.values.reduce(0) { $0 + $1.failed } }

    public init(trace: Trace, file: String) {
        self.file = file
        var byPid: [Int32: Process] = [:]
        var order: [Int32] = []
        // exec → main: from the exec the tracer saw, else (audit only) from the
        // audit library's first record of the image.
        var lastExec: [Int32: UInt64] = [:]
        var lastImage: [Int32: UInt64] = [:]
        var lastPreinit: [Int32: UInt64] = [:]
        var own = 0
        func proc(_ pid: Int32) -> Process {
            if let p = byPid[pid] { return p }
            order.append(pid)
            return Process(pid: pid, parent: 0, how: .root, images: [], argv: [])
        }
        for e in trace.events {
            switch e {
            case .process(let p):
                if p.how == .thread {
                    var x = proc(p.pid); x.threads += 1; byPid[p.pid] = x
                } else if byPid[p.pid] == nil || byPid[p.pid]?.parent == 0 {
                    var x = proc(p.pid)
                    x.parent = p.parent; x.how = p.how
                    byPid[p.pid] = x
                }
            case .exec(let x):
                var p = proc(x.pid)
                p.images.append(trace.path(x.path))
                p.argv = x.argv.map { trace.string($0) }
                byPid[x.pid] = p
                lastExec[x.pid] = x.timeNs
            case .syscall(let s):
                if s.own { own += 1; continue }
                var p = proc(s.pid)
                p.syscalls[s.call, default: CallCount()].calls += 1
                if s.failed { p.syscalls[s.call, default: CallCount()].failed += 1 }
                byPid[s.pid] = p
            case .audit(let a):
                var p = proc(a.pid)
                p.audited = true
                switch a.kind {
                case .objsearch:
                    if let o = TraceFormat.SearchOrigin(rawValue: a.flag & 0x7f) ?? TraceFormat.SearchOrigin(rawValue: a.flag) {
                        p.searchesByOrigin[o, default: 0] += 1
                    }
                    if a.flag & 0x01 == 0 { p.searchAttempts += 1 }
                case .objopen: p.objects += 1
                case .preinit:
                    p.reachedMain = true
                    let previous = lastPreinit[a.pid] ?? 0
                    let start = lastExec[a.pid].flatMap { $0 > previous ? $0 : nil } ?? lastImage[a.pid]
                    if let start, a.timeNs >= start { p.execToMainNs = a.timeNs - start }
                    lastPreinit[a.pid] = a.timeNs
                case .image:
                    lastImage[a.pid] = a.timeNs
                    if p.images.isEmpty { p.images.append(trace.path(a.name)) }
                default: break
                }
                byPid[a.pid] = p
            case .exit(let x):
                guard x.tid == x.pid else { continue }
                var p = proc(x.pid)
                p.exitStatus = x.exitCode
                p.signal = x.signal
                byPid[x.pid] = p
            case .note(let n):
                var p = proc(n.pid)
                p.notes.append(trace.string(n.text))
                byPid[n.pid] = p
            case .caller:
                break
            }
        }
        processes = order.compactMap { byPid[$0] }
        var totals: [FileCall: CallCount] = [:]
        var origins: [TraceFormat.SearchOrigin: Int] = [:]
        for p in processes {
            for (k, v) in p.syscalls { totals[k, default: CallCount()].calls += v.calls; totals[k, default: CallCount()].failed += v.failed }
            for (k, v) in p.searchesByOrigin { origins[k, default: 0] += v }
        }
        syscalls = totals
        searchesByOrigin = origins
        searchAttempts = processes.reduce(0) { $0 + $1.searchAttempts }
        objects = processes.reduce(0) { $0 + $1.objects }
        ownCalls = own
        events = trace.events.count
        fileBytes = trace.fileBytes
        mode = trace.meta("mode") ?? "unknown"
        complete = trace.complete
    }
}
