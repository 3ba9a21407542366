#if canImport(Glibc)
import Glibc
#endif
import LoaderModel
import TraceFormat

/// A trace with every call of the program attributed: which search, candidate,
/// directory probe or other purpose it served, in which phase.
///
/// Within a process, audit records and system calls are merged by time (both
/// CLOCK_MONOTONIC); the calls between two audit records belong to the earlier
/// record. la_objsearch is called once with the bare name (LA_SER_ORIG) and then
/// once per candidate path just before ld.so opens it (elf/dl-load.c,
/// open_verify), so a candidate's open, the directory stat glibc makes after a
/// miss, and the fstat of a hit all follow its record.
public struct TraceAnalysis: Sendable {
    public var file: String
    public var trace: Trace
    public var processes: [ProcessAnalysis]
    /// Calls made by loadprobe's own audit library: left out of every count.
    public var ownCalls: Int
    public var mounts: MountTable
    /// The trace's summary, made in the same pass over the events.
    public var summary: TraceSummary

    public init(trace: Trace, file: String) {
        self.file = file
        self.trace = trace
        var builder = AttributionBuilder(trace: trace)
        builder.run()
        processes = builder.units
        ownCalls = builder.ownCalls
        summary = TraceSummary(counter: builder.counter, trace: trace, file: file)
        mounts = MountTable(mountinfo: trace.meta(.mountinfo) ?? "")
    }

    /// Names the dlopen callers' functions from the objects' symbol tables,
    /// where readable (`symbols` is shared by a report's traces: a job's ranks
    /// name the same objects).
    mutating func nameCallers(_ symbols: inout CodeSymbols.Cache) {
        for i in processes.indices {
            for j in processes[i].groups.indices {
                guard var c = processes[i].groups[j].caller else { continue }
                c.symbol = symbols.function(in: c.object, returnOffset: c.offset)
                processes[i].groups[j].caller = c
            }
        }
    }

    public var host: String? { trace.meta(.host) }
    /// The `mode` metadata as written ("unknown" when absent), for display.
    public var mode: String { trace.meta(.mode) ?? "unknown" }
    public var recordingMode: RecordingMode? { trace.recordingMode }
    public var allCalls: Int { processes.reduce(0) { $0 + $1.calls.count } }

    /// The environment the program was started with (from the trace's `env` metadata).
    public var environment: [String: String] {
        var env: [String: String] = [:]
        for entry in trace.metaAll(.env) {
            guard let eq = entry.firstIndex(of: "=") else { continue }
            env[String(entry[..<eq])] = String(entry[entry.index(after: eq)...])
        }
        return env
    }
}

private struct AttributionBuilder {
    let trace: Trace
    var units: [ProcessAnalysis] = []
    var ownCalls = 0
    /// The summary's counts and each process's parent, start and exit: made
    /// in the pass that sorts the events by process.
    var counter = TraceSummary.Counter()

    /// PYTHONPATH's directories (from the trace's environment): the sys.path
    /// entries Python's import scans first, wherever they are.
    let pythonPath: [String]

    init(trace: Trace) {
        self.trace = trace
        let value = trace.metaAll(.env).first { $0.hasPrefix("PYTHONPATH=") }?.dropFirst("PYTHONPATH=".count) ?? ""
        pythonPath = value.split(separator: ":").compactMap { entry in
            var d = String(entry)
            while d.count > 1 && d.hasSuffix("/") { d.removeLast() }
            return d.hasPrefix("/") ? d : nil // relative entries depend on the working directory
        }
    }

    /// Per process: the indices of its events, merged by time.
    mutating func run() {
        // Event indices per process, in file order (a pid → slot map, cached for runs of one pid).
        var slot: [Int32: Int] = [:]
        var byPid: [[Int32]] = []
        var order: [Int32] = []
        var lastPid: Int32 = 0, lastSlot = -1
        // Each event's time, read once (the merge below compares them often).
        times.reserveCapacity(trace.events.count)
        for (i, e) in trace.events.enumerated() {
            let pid = e.pid
            times.append(e.timeNs)
            counter.add(e, trace)
            if lastSlot < 0 || pid != lastPid {
                if let k = slot[pid] { lastSlot = k } else {
                    lastSlot = byPid.count
                    slot[pid] = lastSlot
                    byPid.append([])
                    order.append(pid)
                }
                lastPid = pid
            }
            byPid[lastSlot].append(Int32(truncatingIfNeeded: i))
        }
        let facts = StringFacts(trace)
        for (k, pid) in order.enumerated() {
            let indices = byPid[k]
            byPid[k] = []
            let (sorted, syscalls, listed) = inTimeOrder(indices)
            let info = counter.process(pid)
            var proc = ProcessRun(pid: pid, parent: info?.parent ?? 0, forked: info.map { $0.startNs != nil && $0.how != .root } ?? false,
                                  startNs: info?.startNs ?? (sorted.first.map { time($0) } ?? 0), facts: facts)
            proc.cur.calls.reserveCapacity(syscalls)
            proc.pythonPath = pythonPath
            if k == 0, info?.how != .fork, let program = trace.meta(.program) {
                proc.rootProgram = LoaderPath.absolute(program, in: trace.meta(.cwd) ?? "/")
            }
            proc.listedDirectories = Set(listed.map { trace.path($0) })
            adviseHugePages(&proc.cur.calls)
            for i in sorted { proc.consume(trace.events[i], trace: trace, own: &ownCalls) }
            var done = proc.finish()
            if let x = info, let exitNs = x.exitNs, var lastUnit = done.popLast() {
                lastUnit.exitStatus = x.exitStatus
                lastUnit.signal = x.signal
                lastUnit.endNs = max(lastUnit.endNs, exitNs)
                done.append(lastUnit)
            }
            units += done
        }
    }

    /// One process's events in the order they happened, with its count of
    /// calls and the directories it listed. Audit records reach the trace in
    /// batches, after the calls around them; each stream is in time order on
    /// its own, so the two are merged by time (a stream found out of order is
    /// sorted first). Notes go first.
    func inTimeOrder(_ indices: [Int32]) -> (events: [Int], syscalls: Int, listed: Set<PathRef>) {
        var audits: [Int] = [], others: [Int] = [], notes: [Int] = []
        others.reserveCapacity(indices.count)
        var syscalls = 0
        var listed = Set<PathRef>()
        for i32 in indices {
            let i = Int(i32)
            switch trace.events[i] {
            case .audit: audits.append(i)
            case .note: notes.append(i)
            case .syscall(let e):
                syscalls += 1; others.append(i)
                if e.call.isOpen && e.flags & UInt64(O_DIRECTORY) != 0 && e.completed && !e.failed { listed.insert(e.resolved ?? e.path) }
            default: others.append(i)
            }
        }
        let a = ordered(audits), o = ordered(others)
        var sorted: [Int] = notes
        sorted.reserveCapacity(indices.count)
        var ia = 0, io = 0
        while ia < a.count || io < o.count {
            // Ties: the call first (an audit record is written after the call it follows).
            if io < o.count && (ia >= a.count || time(o[io]) <= time(a[ia])) { sorted.append(o[io]); io += 1 } else { sorted.append(a[ia]); ia += 1 }
        }
        return (sorted, syscalls, listed)
    }

    /// The list as it is when in time order, else sorted by time (stable).
    func ordered(_ list: [Int]) -> [Int] {
        var last: UInt64 = 0
        for i in list {
            let t = time(i)
            if t < last {
                return list.enumerated().sorted { a, b in
                    let ta = time(a.element), tb = time(b.element)
                    return ta != tb ? ta < tb : a.offset < b.offset
                }.map(\.element)
            }
            last = max(last, t)
        }
        return list
    }

    /// Per event: the time it is ordered by (0 for notes).
    var times: [UInt64] = []

    @inline(__always) func time(_ i: Int) -> UInt64 { times[i] }
}

/// The state machine of one process, fed its events in time order: which image
/// and phase it is in, which library search and candidate a call serves, and
/// which load group (the start-up load, a dlopen) is open.
///
/// Phases: exec → startup → main → exit, with dlopen(n) groups entered from
/// startup (a constructor's dlopen, once the start-up load is done) or main
/// and left for the phase they came from. An exec starts a new image (a new
/// ProcessAnalysis) in the startup phase.
private struct ProcessRun {
    var units: [ProcessAnalysis] = []
    var cur: ProcessAnalysis
    var phase: Phase

    /// The search in progress (index into cur.searches) and the candidate
    /// path ld.so announced last (la_objsearch just before it opens it).
    struct Cursor {
        var search: Int
        var candidate: Candidate?
    }
    struct Candidate {
        var index: Int
        var path: PathRef
        /// Its directory part (a string id), which glibc stats after a miss.
        var directory: UInt32
    }
    var cursor: Cursor?

    /// A load group in progress: from its first search or la_activity(ADD)
    /// to the consistent la_activity (or main) that ends it.
    struct OpenGroup {
        var startNs: UInt64
        /// The phase it opened in (a failed dlopen's group may close later, elsewhere).
        var phase: Phase
        var names: [String] = []
    }
    var group: OpenGroup?

    /// A dlopen's caller: pending until the group's first loader call, then
    /// the caller the tracer last found for that thread (CALLER events).
    enum CallerLookup {
        case pending
        case found(CallerSite?)
        var site: CallerSite? { if case .found(let s) = self { s } else { nil } }
    }
    var caller = CallerLookup.pending
    var lastCaller: [Int32: CallerSite] = [:]

    /// Relocation runs between the last object mapped and the first call after
    /// it (an initialiser's), or the end of the group.
    struct Relocation {
        var lastObjectNs: UInt64
        var firstCallNs: UInt64?
    }
    var relocation: Relocation?

    var dlopenCount = 0
    /// Between la_activity(DELETE) and its consistent: a dlclose.
    var inDelete = false
    /// The current dlopen group saw la_activity(ADD): it mapped an object.
    var addSeen = false
    /// The start-up load is done (its la_activity consistent was seen): a
    /// search or an add before main is a constructor's dlopen.
    var startupLoaded = false
    /// The phase a dlopen group returns to (main, or start-up for a constructor's).
    var outerPhase = Phase.main

    var pythonPath: [String] = []
    /// The program loadprobe executed, made absolute (the root process's
    /// first image): an audit-only trace names an image by its argv[0].
    var rootProgram: String?
    /// Directories the process listed (opened with O_DIRECTORY): in a Python
    /// process, its import system's sys.path entries and packages, whose stat
    /// its path finder repeats at every import.
    var listedDirectories = Set<String>()
    var splits = SplitCache()

    let facts: StringFacts

    init(pid: Int32, parent: Int32, forked: Bool, startNs: UInt64, facts: StringFacts) {
        self.facts = facts
        cur = ProcessAnalysis(pid: pid, parent: parent, image: "", argv: [], imageIndex: 0,
                              forkedWithoutExec: forked, startNs: startNs, endNs: startNs)
        phase = forked ? .main : .exec
    }

    var hasContent: Bool { !cur.calls.isEmpty || !cur.objects.isEmpty || !cur.searches.isEmpty || !cur.image.isEmpty }

    /// After main, or before it once the start-up load is done: a new load is a dlopen.
    var dlopenPossible: Bool { phase == .main || (phase == .startup && startupLoaded) }

    // MARK: transitions

    mutating func newImage(path: String, argv: [String], at t: UInt64) {
        if hasContent {
            closeGroup(at: t)
            units.append(cur)
            cur = ProcessAnalysis(pid: cur.pid, parent: cur.parent, image: "", argv: [], imageIndex: cur.imageIndex + 1,
                                  forkedWithoutExec: false, startNs: t, endNs: t)
        } else {
            cur.forkedWithoutExec = false
            cur.startNs = min(cur.startNs == 0 ? t : cur.startNs, t)
        }
        cur.image = path
        cur.argv = argv
        phase = .startup
        cursor = nil
        dlopenCount = 0
        group = nil
        startupLoaded = false
        lastCaller = [:]
    }

    mutating func openDlopenGroup() {
        outerPhase = phase.isDlopen ? outerPhase : phase
        dlopenCount += 1
        phase = .dlopen(dlopenCount)
        caller = .pending
    }

    /// Opens a load group at t unless one is open.
    mutating func beginGroup(at t: UInt64) {
        if group == nil { group = OpenGroup(startNs: t, phase: phase) }
    }

    mutating func closeGroup(at t: UInt64) {
        if let r = relocation {
            let end = min(r.firstCallNs ?? t, t)
            if end > r.lastObjectNs { cur.relocationNs += end - r.lastObjectNs }
        }
        relocation = nil
        guard let g = group else { return }
        cur.groups.append(LoadGroup(phase: g.phase == .exec ? .startup : g.phase, startNs: g.startNs, endNs: max(g.startNs, t),
                                    names: g.names, caller: g.phase.isDlopen ? caller.site : nil))
        group = nil
        caller = .pending
    }

    /// Records where the current search ended up.
    mutating func settle(objectPath: String?) {
        guard let search = cursor?.search else { return }
        var s = cur.searches[search]
        if s.found == nil, let hit = s.candidates.lastIndex(where: { $0.outcome == .hit }) {
            s.found = s.candidates[hit].path
            s.foundOrigin = s.candidates[hit].origin
            s.foundDirectory = s.candidates[hit].directory
        } else if s.found == nil, s.isAbsolute, let p = objectPath {
            s.found = p
            s.foundOrigin = .absolute
            s.foundDirectory = SearchDirectory.dirname(p)
        }
        cur.searches[search] = s
    }

    // MARK: events

    mutating func consume(_ e: TraceEvent, trace: Trace, own: inout Int) {
        switch e {
        case .syscall(let s):
            if s.own { own += 1; return }
            if relocation != nil && relocation?.firstCallNs == nil { relocation?.firstCallNs = s.entryNs }
            syscall(s, trace: trace)
            cur.endNs = max(cur.endNs, s.exitNs)
        case .audit(let a):
            cur.audited = true
            audit(a, trace: trace)
            cur.endNs = max(cur.endNs, a.timeNs)
        case .exec(let x):
            // The successful execve call was seen just before: it opened this image.
            var path = trace.path(x.path)
            // The program loadprobe ran by a relative path ("./app"): its path (as ld.so's /proc/self/exe gives it).
            if !path.hasPrefix("/") && cur.imageIndex == 0, let root = rootProgram { path = root }
            let argv = x.argv.map { trace.string($0) }
            if cur.image.isEmpty && phase == .startup {
                cur.image = path; cur.argv = argv
            } else if !(cur.image == path && phase == .startup && cur.searches.isEmpty) {
                newImage(path: path, argv: argv, at: x.timeNs)
            }
        case .note(let n):
            cur.notes.append(trace.string(n.text))
        case .caller(let c):
            cur.callersRecorded = true
            lastCaller[c.tid] = c.object == .none ? nil : CallerSite(object: trace.path(c.object), offset: c.offset)
        case .process, .exit:
            break
        }
    }

    mutating func syscall(_ s: SyscallEvent, trace: Trace) {
        if s.call.isExec && s.completed && s.result == 0 {
            // A successful execve starts a new image; the call belongs to it.
            newImage(path: trace.path(s.resolved ?? s.path), argv: [], at: s.entryNs)
            cur.calls.append(AttributedCall(event: s, purpose: .exec, phase: .exec, search: -1, candidate: -1))
            return
        }
        let (purpose, search, candidate) = attribute(s, trace: trace)
        if let search {
            cur.searches[search].calls += 1
            if s.failed { cur.searches[search].failedCalls += 1 }
            if purpose == .absoluteOpen && !s.failed {
                let path = trace.path(s.resolved ?? s.path)
                cur.searches[search].found = path
                cur.searches[search].foundOrigin = .absolute
                cur.searches[search].foundDirectory = SearchDirectory.dirname(path)
            }
            if let candidate {
                cur.searches[search].candidates[candidate].calls += 1
                if s.failed { cur.searches[search].candidates[candidate].failedCalls += 1 }
            }
        }
        if case .pending = caller, phase.isDlopen, purpose != .other, purpose != .pythonImport, purpose != .exec {
            // The dlopen's first loader call: the tracer wrote its caller just before it.
            caller = .found(lastCaller[s.tid])
        }
        cur.calls.append(AttributedCall(event: s, purpose: purpose, phase: phase,
                                        search: Int32(search ?? -1), candidate: Int32(candidate ?? -1)))
    }

    /// What a call was for, and the search and candidate it served.
    mutating func attribute(_ s: SyscallEvent, trace: Trace) -> (CallPurpose, search: Int?, candidate: Int?) {
        let path = s.resolved ?? s.path
        if s.call.isExec { return (.exec, nil, nil) }
        if isLoaderConfig(path, trace) {
            guard let search = cursor?.search else { return (.loaderConfig, nil, nil) }
            if facts.isLdsoCache(path.base) { cur.searches[search].readCache = true }
            return (.loaderConfig, search, nil)
        }
        guard let cursor else {
            if s.call.isStat && isEmptyPath(s, trace) && (phase == .startup || phase.isDlopen) { return (.objectStat, nil, nil) }
            return (classifyOther(s, trace: trace), nil, nil)
        }
        let search = cursor.search
        if let candidate = cursor.candidate {
            let plain = cur.searches[search].candidates[candidate.index].subdirectory.isEmpty
            if s.call.isOpen && s.path == candidate.path {
                cur.searches[search].candidates[candidate.index].outcome = s.failed ? .miss : .hit
                return (plain ? .searchCandidate : .hwcapsProbe, search, candidate.index)
            }
            if s.call.isStat && isEmptyPath(s, trace) { return (.objectStat, search, candidate.index) }
            if s.call.isStat && matchesDirectory(s.path, candidate.directory, trace) {
                return (plain ? .directoryStat : .hwcapsProbe, search, candidate.index)
            }
            let purpose = classifyOther(s, trace: trace)
            return purpose == .other || purpose == .pythonImport ? (purpose, nil, nil) : (purpose, search, candidate.index)
        }
        if cur.searches[search].isAbsolute && s.call.isOpen { return (.absoluteOpen, search, nil) }
        if s.call.isStat && isEmptyPath(s, trace) { return (.objectStat, search, nil) }
        return (classifyOther(s, trace: trace), nil, nil)
    }

    mutating func audit(_ a: AuditEvent, trace: Trace) {
        switch a.kind {
        case .objsearch:
            if AuditSearchFlag(rawValue: a.flag).isOriginalName { searchBegins(a, trace: trace) } else { candidateAnnounced(a, trace: trace) }
        case .objopen:
            let path = trace.path(a.name)
            cur.objects.append(LoadedObjectRecord(path: path, phase: phase, timeNs: a.timeNs, namespace: a.lmid))
            relocation = Relocation(lastObjectNs: a.timeNs)
            if cursor != nil { settle(objectPath: path) }
            cursor = nil
        case .activity:
            activity(a)
        case .preinit:
            if cursor != nil { settle(objectPath: nil) }
            closeGroup(at: a.timeNs)
            cur.mainNs = a.timeNs
            phase = .main
            cursor = nil
        case .objclose:
            if !inDelete && phase == .main { phase = .exit }
        case .image:
            if cur.image.isEmpty {
                let name = trace.path(a.name)
                // argv[0] of the program loadprobe ran by a relative path ("./app") or a bare name: its path.
                cur.image = !name.hasPrefix("/") && cur.imageIndex == 0 && !cur.forkedWithoutExec ? rootProgram ?? name : name
            }
        }
    }

    /// la_objsearch with LA_SER_ORIG: ld.so starts looking for a name.
    mutating func searchBegins(_ a: AuditEvent, trace: Trace) {
        let name = trace.path(a.name)
        // After main, a search opens a dlopen group: ld.so searches before it
        // reports la_activity(LA_ACT_ADD) (that comes when the first new
        // object is mapped). A search after a failed dlopen opens the next.
        let afterFailedDlopen = phase.isDlopen && !addSeen && cursor.map { cur.searches[$0.search].found == nil } == true
        if dlopenPossible || afterFailedDlopen {
            if phase.isDlopen || group != nil { closeGroup(at: a.timeNs) }
            openDlopenGroup()
            addSeen = false
        }
        beginGroup(at: a.timeNs)
        group?.names.append(name)
        cur.searches.append(LibrarySearch(name: name, phase: phase, timeNs: a.timeNs))
        cursor = Cursor(search: cur.searches.count - 1)
    }

    /// la_objsearch with a candidate path: ld.so is about to open it.
    mutating func candidateAnnounced(_ a: AuditEvent, trace: Trace) {
        let search: Int
        if let current = cursor?.search {
            search = current
        } else {
            // No name was announced (a record lost or cut): the candidate's own name stands for it.
            cur.searches.append(LibrarySearch(name: trace.string(a.name.base), phase: phase, timeNs: a.timeNs))
            search = cur.searches.count - 1
        }
        // A candidate after a successful open: that file was rejected (wrong class).
        if let previous = cursor?.candidate, cur.searches[search].candidates[previous.index].outcome == .hit {
            cur.searches[search].candidates[previous.index].outcome = .skipped
        }
        // Candidate paths are interned as (directory part, name): the split
        // into search directory and subdirectory is made once per directory part.
        let parts = splits.split(a.name.dir, trace)
        cur.searches[search].candidates.append(SearchCandidate(
            directoryPart: parts.part, name: trace.string(a.name.base), directoryPartId: a.name.dir,
            directory: parts.directory, directoryId: parts.directoryId, subdirectory: parts.subdirectory,
            origin: AuditSearchFlag(rawValue: a.flag).origin, outcome: .untried, calls: 0, failedCalls: 0))
        cursor = Cursor(search: search, candidate: Candidate(index: cur.searches[search].candidates.count - 1,
                                                             path: a.name, directory: a.name.dir))
    }

    /// la_activity: objects are being added or removed, or the link map is consistent again.
    mutating func activity(_ a: AuditEvent) {
        switch AuditActivity(rawValue: a.flag) {
        case .add:
            if dlopenPossible { openDlopenGroup() }
            addSeen = true
            beginGroup(at: a.timeNs)
            inDelete = false
        case .delete:
            inDelete = true
        default: // consistent (or a flag ld.so does not send)
            if cursor != nil { settle(objectPath: nil) }
            if !inDelete { closeGroup(at: a.timeNs) }
            if case .dlopen = phase { phase = outerPhase }
            // (Without an exec call in the trace — audit only — the start-up
            // load runs in the exec phase.)
            if phase == .exec { phase = .startup }
            if phase == .startup { startupLoaded = true }
            inDelete = false
            addSeen = false
            cursor = nil
        }
    }

    func isLoaderConfig(_ p: PathRef, _ trace: Trace) -> Bool {
        facts.isEtc(p.dir) && (facts.isLdsoCache(p.base) || facts.isLdsoPreload(p.base))
    }

    func isEmptyPath(_ s: SyscallEvent, _ trace: Trace) -> Bool {
        s.path.dir == 0 && facts.isEmpty(s.path.base)
    }

    /// The stat of the candidate's directory: its path is the candidate's directory part.
    func matchesDirectory(_ p: PathRef, _ dirId: UInt32, _ trace: Trace) -> Bool {
        let want = trace.string(dirId).utf8
        let d = trace.string(p.dir).utf8, b = trace.string(p.base).utf8
        guard want.count == d.count + 1 + b.count else { return false }
        return want.starts(with: d) && want.dropFirst(d.count + 1).elementsEqual(b)
    }

    func classifyOther(_ s: SyscallEvent, trace: Trace) -> CallPurpose {
        if s.call.isExec { return .exec }
        guard phase != .startup, cur.isPython else { return .other }
        let base = trace.string((s.resolved ?? s.path).base)
        let dir = trace.string((s.resolved ?? s.path).dir)
        if !pythonPath.isEmpty {
            // A PYTHONPATH directory, or anything in it: the import's sys.path scan.
            let full = trace.path(s.resolved ?? s.path)
            if pythonPath.contains(where: { full == $0 || (full.hasPrefix($0) && full.dropFirst($0.count).first == "/") }) {
                return .pythonImport
            }
        }
        if !listedDirectories.isEmpty && s.call.isStat && listedDirectories.contains(trace.path(s.resolved ?? s.path)) {
            return .pythonImport
        }
        if (base.hasPrefix("python") && base.hasSuffix(".zip")) {
            return .pythonImport
        }
        if base.hasSuffix(".py") || base.hasSuffix(".pyc") || base.hasSuffix(".so") || base == "__pycache__"
            || base.hasSuffix(".pth") || dir.contains("/python3") || dir.contains("site-packages")
            || dir.hasSuffix("__pycache__") || (s.call.isOpen && s.flags & UInt64(O_DIRECTORY) != 0) {
            return .pythonImport
        }
        return .other
    }

    mutating func finish() -> [ProcessAnalysis] {
        if cursor != nil { settle(objectPath: nil) }
        closeGroup(at: cur.endNs)
        units.append(cur)
        return units
    }
}

/// Directory parts of candidate paths, split once each (by the trace's string id).
struct SplitCache {
    typealias Entry = (part: String, directory: String, directoryId: Int32, subdirectory: String)
    var byId: [Entry?] = []
    var directoryIds: [String: Int32] = [:]
    mutating func split(_ id: UInt32, _ trace: Trace) -> Entry {
        let i = Int(id)
        if i < byId.count, let v = byId[i] { return v }
        if byId.count < trace.strings.count { byId += [Entry?](repeating: nil, count: trace.strings.count - byId.count) }
        let part = trace.string(id)
        let (d, s) = SearchDirectory.split(part.isEmpty ? "/" : part)
        var dirId = directoryIds[d]
        if dirId == nil { dirId = Int32(directoryIds.count); directoryIds[d] = dirId }
        let v = (part.isEmpty ? "/" : part, d, dirId!, s)
        if i < byId.count { byId[i] = v }
        return v
    }
}

/// What the attribution asks of the trace's strings by id, worked out once per
/// trace (the trace interns each string once): no String per call.
struct StringFacts: Sendable {
    /// Per string id: bit 0 empty, 1 "/etc", 2 "ld.so.cache", 3 "ld.so.preload".
    var bits: [UInt8]

    init(_ trace: Trace) {
        bits = trace.strings.map { str in
            if str.isEmpty { return 1 }
            switch str {
            case "/etc": return 2
            case "ld.so.cache": return 4
            case "ld.so.preload": return 8
            default: return 0
            }
        }
    }

    @inline(__always) func has(_ id: UInt32, _ bit: UInt8) -> Bool {
        Int(id) >= bits.count ? bit == 1 : bits[Int(id)] & bit != 0
    }
    @inline(__always) func isEmpty(_ id: UInt32) -> Bool { has(id, 1) }
    @inline(__always) func isEtc(_ id: UInt32) -> Bool { has(id, 2) }
    @inline(__always) func isLdsoCache(_ id: UInt32) -> Bool { has(id, 4) }
    @inline(__always) func isLdsoPreload(_ id: UInt32) -> Bool { has(id, 8) }
}
