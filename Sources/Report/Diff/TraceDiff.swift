import LoaderModel
#if canImport(Glibc)
import Glibc
#endif
import TraceFormat

/// `loadprobe diff BEFORE AFTER`: two start-ups side by side — calls by kind
/// and purpose, search origins, server operations and predicted times under
/// one model, the measured (traced) times, which directories and libraries
/// stopped or started costing lookups, and whether the same objects (path and
/// content hash) were loaded in the same order.
public struct TraceDiff: Sendable {
    public struct Side: Sendable {
        public var file: String
        public var calls: Int
        public var failed: Int
        public var bySyscall: [FileCall: CallCount]
        public var byPurpose: [CallPurpose: Int]
        public var byOrigin: [String: Int]
        public var recorded: ScenarioResult?
        /// exec → main of the first audited process, as traced (slower than untraced).
        public var tracedStartupSeconds: Double?
        public var computeSeconds: Double
        public var objects: [LoadedObjectIdentity]
        /// A `record --what-if` trace: the fix tried and what it answered.
        public var whatIf: WhatIfSummary? = nil
        /// How the side was recorded (ptrace+audit, audit, ptrace).
        public var mode = ""
    }

    public struct LoadedObjectIdentity: Sendable, Equatable {
        public var path: String
        /// The path with symlinks resolved (when the file is on this machine).
        public var realPath: String?
        /// FNV-1a 64 of the file's bytes (when readable here).
        public var contentHash: UInt64?
        public var soname: String { SearchDirectory.basename(realPath ?? path) }
    }

    public struct DirectoryChange: Sendable {
        public var directory: String
        public var before: Int
        public var after: Int
    }

    public enum ObjectComparison: Sendable, Equatable {
        case sameOrder
        case sameSetDifferentOrder(firstDifference: Int)
        case different(added: [String], removed: [String])
    }

    public var before: Side
    public var after: Side
    public var directories: [DirectoryChange]
    public var libraries: [(name: String, before: Int, after: Int)]
    public var objects: ObjectComparison
    /// Objects with the same identity but a different path (a view's symlink, an absolute DT_NEEDED).
    public var samePathCount: Int
    public var options: ReportOptions
    /// Where the compute time both predictions include came from.
    public var computeSource: String

    /// `eachOwnCompute`: price each side with the compute time estimated from
    /// its own trace; by default both sides get the before trace's (or
    /// `--compute`), so that identical calls give identical predictions.
    public init(before b: TraceAnalysis, after a: TraceAnalysis, options: ReportOptions, eachOwnCompute: Bool = false) {
        self.options = options
        var o = options
        o.scenarios = [.recorded]
        func side(_ t: TraceAnalysis) -> Side {
            let r = Report(analyses: [t], options: o)
            var bySys: [FileCall: CallCount] = [:]
            var byPurpose: [CallPurpose: Int] = [:]
            var byOrigin: [String: Int] = [:]
            var calls = 0, failed = 0
            for p in t.processes {
                for c in p.calls {
                    calls += 1
                    if c.failed { failed += 1 }
                    bySys[c.event.call, default: CallCount()].add(failed: c.failed)
                    byPurpose[c.purpose, default: 0] += 1
                    let origin = c.candidate >= 0 ? p.searches[Int(c.search)].candidates[Int(c.candidate)].originLabel
                        : (c.search >= 0 ? "search" : "not a search")
                    byOrigin[origin, default: 0] += 1
                }
            }
            // exec → main as the trace's summary (and report) measures it: from the exec, not the fork.
            let traced = t.summary.processes.first { $0.execToMainNs != nil }?.execToMainNs.map { Double($0) / 1e9 }
            let compute = r.scenario(.recorded)?.computeSeconds ?? 0
            var objs: [LoadedObjectIdentity] = []
            if let p = t.processes.first(where: { !$0.objects.isEmpty }) {
                var recordedHash: [String: UInt64] = [:]
                for f in t.trace.objects { recordedHash[t.trace.path(f.path)] = f.contentHash }
                for ob in p.objects where !ob.path.isEmpty && ob.phase == .startup {
                    objs.append(TraceDiff.identity(ob.path, recordedHash: recordedHash[ob.path]))
                }
                for ob in p.objects where !ob.path.isEmpty && ob.phase != .startup {
                    objs.append(TraceDiff.identity(ob.path, recordedHash: recordedHash[ob.path]))
                }
            }
            return Side(file: t.file, calls: calls, failed: failed, bySyscall: bySys, byPurpose: byPurpose, byOrigin: byOrigin,
                        recorded: r.scenario(.recorded), tracedStartupSeconds: traced, computeSeconds: compute, objects: objs,
                        whatIf: r.whatIf, mode: t.mode)
        }
        before = side(b)
        if !eachOwnCompute && options.computeSeconds == nil { o.computeSeconds = before.computeSeconds }
        after = side(a)
        computeSource = options.computeSeconds != nil ? "given (--compute), both sides"
            : eachOwnCompute ? "estimated from each trace" : "the before trace's estimate, both sides"
        let wb = WasteRanking([b]), wa = WasteRanking([a])
        var dirs: [String: BeforeAfter] = [:]
        for d in wb.byDirectory { dirs[d.directory, default: BeforeAfter()].before = d.failed }
        for d in wa.byDirectory { dirs[d.directory, default: BeforeAfter()].after = d.failed }
        directories = dirs.map { DirectoryChange(directory: $0.key, before: $0.value.before, after: $0.value.after) }
            .filter { $0.before != $0.after }
            .sorted { abs($0.before - $0.after) != abs($1.before - $1.after) ? abs($0.before - $0.after) > abs($1.before - $1.after) : $0.directory < $1.directory }
        var libs: [String: BeforeAfter] = [:]
        var order: [String] = []
        for l in wb.byLibrary { if libs[l.name] == nil { order.append(l.name) }; libs[l.name, default: BeforeAfter()].before = l.attempts }
        for l in wa.byLibrary { if libs[l.name] == nil { order.append(l.name) }; libs[l.name, default: BeforeAfter()].after = l.attempts }
        libraries = order.map { ($0, libs[$0]!.before, libs[$0]!.after) }.filter { $0.1 != $0.2 }
            .sorted { abs($0.1 - $0.2) > abs($1.1 - $1.2) }
        // Objects: identity is the content hash when both sides have it, else the real path.
        func key(_ o: LoadedObjectIdentity) -> String {
            if let h = o.contentHash { return "hash:\(h)" }
            return "path:" + (o.realPath ?? o.path)
        }
        let kb = before.objects.map(key), ka = after.objects.map(key)
        samePathCount = zip(before.objects, after.objects).filter { $0.0.path == $0.1.path }.count
        if kb == ka {
            objects = .sameOrder
        } else if kb.sorted() == ka.sorted() {
            let i = zip(kb, ka).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? 0
            objects = .sameSetDifferentOrder(firstDifference: i)
        } else {
            let sb = Set(kb), sa = Set(ka)
            let added = after.objects.filter { !sb.contains(key($0)) }.map(\.path)
            let removed = before.objects.filter { !sa.contains(key($0)) }.map(\.path)
            objects = .different(added: added, removed: removed)
        }
    }

    /// An object's identity: the content hash the trace recorded (format 3),
    /// else the same hash of the file here, when it can be read.
    static func identity(_ path: String, recordedHash: UInt64?) -> LoadedObjectIdentity {
        var real: String?
        if let r = realpath(path, nil) { real = String(cString: r); free(r) }
        return LoadedObjectIdentity(path: path, realPath: real,
                                    contentHash: recordedHash ?? FileFacts.read(path, elfOnly: false)?.contentHash)
    }

    // MARK: output

    public func text(style: TextStyle) -> String {
        var out: [String] = []
        func whatIf(_ s: Side) -> String {
            s.whatIf.map { " — a what-if of \($0.scenario) (\($0.description): \($0.answered) searches answered, \($0.ranNormally) ran normally)" } ?? ""
        }
        out.append(style.bold("before: ") + before.file + whatIf(before))
        out.append(style.bold("after:  ") + after.file + whatIf(after))
        for c in [before.whatIf?.caveat, after.whatIf?.caveat].compactMap({ $0 }).prefix(1) {
            out.append(style.bold("note: ") + c)
        }
        if before.mode != after.mode {
            out.append(style.bold("note: ") + "recorded in different modes (\(before.mode) before, \(after.mode) after): "
                       + "a side recorded without ptrace has no system calls, so the call counts do not compare; record both the same way")
        }
        out.append("")
        var t = TextTable(header: ["", "before", "after", "change"], rightAligned: [1, 2, 3])
        func row(_ name: String, _ b: Int, _ a: Int) { t.rows.append([name, group(b), group(a), delta(b, a)]) }
        row("file calls", before.calls, after.calls)
        row("  found nothing", before.failed, after.failed)
        t.rows.append(["by call", "", "", ""])
        for c in FileCall.allCases where before.bySyscall[c] != nil || after.bySyscall[c] != nil {
            row("  \(c.name)", before.bySyscall[c]?.calls ?? 0, after.bySyscall[c]?.calls ?? 0)
        }
        t.rows.append(["by purpose", "", "", ""])
        for p in CallPurpose.allCases where before.byPurpose[p] != nil || after.byPurpose[p] != nil {
            row("  \(p.rawValue)", before.byPurpose[p] ?? 0, after.byPurpose[p] ?? 0)
        }
        let origins = Set(before.byOrigin.keys).union(after.byOrigin.keys).sorted()
        t.rows.append(["by origin of the directory", "", "", ""])
        for o in origins { row("  \(o)", before.byOrigin[o] ?? 0, after.byOrigin[o] ?? 0) }
        if let rb = before.recorded, let ra = after.recorded {
            row("server operations", rb.operations.total, ra.operations.total)
            for op in ServerOperation.allCases where rb.operations[op] + ra.operations[op] > 0 {
                row("  \(op.name)", rb.operations[op], ra.operations[op])
            }
            t.rows.append(["predicted per process", seconds(rb.predictedSeconds), seconds(ra.predictedSeconds), ratio(rb.predictedSeconds, ra.predictedSeconds)])
            t.rows.append(["predicted job", seconds(rb.jobSeconds), seconds(ra.jobSeconds), ratio(rb.jobSeconds, ra.jobSeconds)])
        }
        if let b = before.tracedStartupSeconds, let a = after.tracedStartupSeconds {
            t.rows.append(["measured exec → main (traced)", seconds(b), seconds(a), ratio(b, a)])
        }
        t.rows.append(["compute in the predictions (\(computeSource))", seconds(before.computeSeconds), seconds(after.computeSeconds), ratio(before.computeSeconds, after.computeSeconds)])
        out += t.render(indent: "  ", style: style)
        out.append("  model: \(options.profile.name) — \(options.profile.summary); \(options.job.processes) process(es) on \(options.job.nodes) node(s)")
        out.append("")
        out.append(style.bold("Objects loaded") + " (\(before.objects.count) before, \(after.objects.count) after; identity = content hash when readable, else real path)")
        switch objects {
        case .sameOrder:
            out.append("  " + style.green("the same objects in the same order") + (samePathCount < before.objects.count ? " (\(before.objects.count - samePathCount) under a different path, e.g. a view's symlink or an absolute DT_NEEDED)" : ""))
        case .sameSetDifferentOrder(let i):
            out.append("  the same objects, in a different order: first difference at #\(i + 1) (\(before.objects[i].path) before, \(after.objects[i].path) after)")
        case .different(let added, let removed):
            out.append("  " + style.red("different objects") + ": \(added.count) only after, \(removed.count) only before")
            for p in removed.prefix(5) { out.append("    - \(p)") }
            for p in added.prefix(5) { out.append("    + \(p)") }
        }
        /// The first rows of a before/after ranking, under its title.
        func changed(_ title: String, _ what: String, _ rows: [(before: Int, after: Int, name: String)]) {
            out.append("")
            out.append(style.bold(title) + " (top \(min(options.top, rows.count)) of \(rows.count))")
            var t = TextTable(header: ["before", "after", what], rightAligned: [0, 1])
            for x in rows.prefix(options.top) { t.rows.append([group(x.before), group(x.after), x.name]) }
            out += t.render(style: style)
        }
        if !directories.isEmpty {
            changed("Failed lookups by directory that changed", "directory", directories.map { ($0.before, $0.after, $0.directory) })
            let gone = directories.filter { $0.after == 0 }.count, new = directories.filter { $0.before == 0 }.count
            out.append("  \(gone) director\(gone == 1 ? "y" : "ies") no longer cost a failed lookup; \(new) started to")
        }
        if !libraries.isEmpty {
            changed("Tries per library that changed", "library", libraries.map { ($0.before, $0.after, $0.name) })
        }
        return out.joined(separator: "\n")
    }

    public func json() -> JSON {
        func side(_ s: Side) -> JSON {
            var f: [(String, JSON)] = [
                ("trace", .string(s.file)),
                ("calls", .int(Int64(s.calls))),
                ("failed", .int(Int64(s.failed))),
                ("bySyscall", .object(FileCall.allCases.compactMap { c in s.bySyscall[c].map { (c.name, JSON.object([("calls", .int(Int64($0.calls))), ("failed", .int(Int64($0.failed)))])) } })),
                ("byPurpose", .object(CallPurpose.allCases.compactMap { p in s.byPurpose[p].map { (p.rawValue, JSON.int(Int64($0))) } })),
                ("byOrigin", .object(s.byOrigin.keys.sorted().map { ($0, JSON.int(Int64(s.byOrigin[$0]!))) })),
                ("tracedStartupSeconds", s.tracedStartupSeconds.map { .double($0) } ?? .null),
                ("computeSeconds", .double(s.computeSeconds)),
                ("whatIf", s.whatIf?.json ?? .null),
                ("objects", .array(s.objects.map { o in
                    .object([("path", .string(o.path)), ("realPath", o.realPath.map { .string($0) } ?? .null),
                             ("contentHash", o.contentHash.map { .string(String($0, radix: 16)) } ?? .null)])
                })),
            ]
            if let r = s.recorded {
                f.append(("serverOperations", .int(Int64(r.operations.total))))
                f.append(("serverOperationsByKind", .object(ServerOperation.allCases.map { ($0.name, JSON.int(Int64(r.operations[$0]))) })))
                f.append(("predictedSeconds", .double(r.predictedSeconds)))
                f.append(("jobSeconds", .double(r.jobSeconds)))
            }
            return .object(f)
        }
        let cmp: JSON
        switch objects {
        case .sameOrder: cmp = .object([("result", .string("same-order"))])
        case .sameSetDifferentOrder(let i): cmp = .object([("result", .string("same-set-different-order")), ("firstDifference", .int(Int64(i)))])
        case .different(let a, let r): cmp = .object([("result", .string("different")), ("added", .array(a.map { .string($0) })), ("removed", .array(r.map { .string($0) }))])
        }
        return .object([
            ("format", .string("loadprobe-diff/1")),
            ("before", side(before)),
            ("after", side(after)),
            ("computeSource", .string(computeSource)),
            ("speedup", before.recorded.flatMap { b in after.recorded.map { a in JSON.double(a.jobSeconds > 0 ? b.jobSeconds / a.jobSeconds : 0) } } ?? .null),
            ("objects", cmp),
            ("directories", .array(directories.map { .object([("directory", .string($0.directory)), ("before", .int(Int64($0.before))), ("after", .int(Int64($0.after)))]) })),
            ("libraries", .array(libraries.map { .object([("name", .string($0.name)), ("before", .int(Int64($0.before))), ("after", .int(Int64($0.after)))]) })),
        ])
    }

    func delta(_ b: Int, _ a: Int) -> String {
        if b == a { return "=" }
        let d = a - b
        // (percent() takes a share: the sign goes in front.)
        return (d > 0 ? "+" : "") + group(d) + (b > 0 ? " (\(d > 0 ? "+" : "-")\(percent(Double(d.magnitude) / Double(b))))" : "")
    }

    func ratio(_ b: Double, _ a: Double) -> String {
        guard a > 0, b > 0 else { return "" }
        if abs(b - a) <= 0.005 * max(a, b) { return "no change" }
        if b < a { return String(rounding: a / b, places: a / b >= 10 ? 0 : 1) + "× slower" }
        return String(rounding: b / a, places: b / a >= 10 ? 0 : 1) + "× faster"
    }
}

/// A count before and after.
private struct BeforeAfter {
    var before = 0
    var after = 0
}
