import LoaderModel
import TraceFormat

/// The loadprobe-report/1 document extended with attribution, waste and
/// scenarios (docs/report-format.md). The keys of TraceSummary.json() come
/// first, unchanged; the new sections follow.
public enum ReportJSON {
    /// One trace: the summary document plus this report's sections.
    public static func document(_ r: Report) -> JSON {
        let base: JSON = r.summaries.count == 1 ? r.summaries[0].json() : jobSummary(r)
        guard case .object(var fields) = base else { return base }
        if let j = r.job { fields.append(("job", JobRender.json(j, options: r.options))) }
        if let w = r.whatIf { fields.append(("whatIf", w.json)) }
        if r.fullTraces > 0 { fields += sections(r) }
        return .object(fields)
    }

    /// Several traces taken as one job: the summary keys over all of them.
    static func jobSummary(_ r: Report) -> JSON {
        var processes: [JSON] = []
        var totals: [FileCall: CallCount] = [:]
        var attempts = 0, objects = 0, own = 0
        var origins: [String: Int] = [:]
        var originOrder: [String] = []
        for s in r.summaries {
            guard case .object(let f) = s.json() else { continue }
            for (k, v) in f where k == "processes" { if case .array(let a) = v { processes += a } }
            for (c, v) in s.syscalls { totals[c, default: CallCount()] += v }
            attempts += s.searchAttempts
            objects += s.objects
            own += s.ownCalls
            for e in s.searchesByFlag.entries(secureAlways: true) {
                if origins[e.name] == nil { originOrder.append(e.name) }
                origins[e.name, default: 0] += e.count
            }
        }
        let calls: JSON = .object(FileCall.allCases.compactMap { c in
            totals[c].map { (c.name, JSON.object([("calls", .int(Int64($0.calls))), ("failed", .int(Int64($0.failed)))])) }
        })
        return .object([
            ("format", .string("loadprobe-report/1")),
            ("traces", .array(r.summaries.map { .string($0.file) })),
            ("mode", .string(Set(r.summaries.map(\.mode)).sorted().joined(separator: ","))),
            ("complete", .bool(r.summaries.allSatisfy(\.complete))),
            ("processes", .array(processes)),
            ("totals", .object([
                ("syscalls", calls),
                ("searches", .object([("attempts", .int(Int64(attempts))),
                                      ("byOrigin", .object(originOrder.map { ($0, JSON.int(Int64(origins[$0] ?? 0))) }))])),
                ("objects", .int(Int64(objects))),
                ("ownCallsLeftOut", .int(Int64(own))),
            ])),
        ])
    }

    static func sections(_ r: Report) -> [(String, JSON)] {
        var out: [(String, JSON)] = [("attribution", attribution(r)), ("waste", waste(r)), ("model", model(r)), ("scenarios", scenarios(r))]
        if let u = r.scenariosUnavailable {
            out.append(("scenariosUnavailable", .object([("names", .array(u.scenarios.map { .string($0.rawValue) })),
                                                         ("reason", .string(u.reason))])))
        }
        return out
    }

    /// A fraction or a time, to six decimals.
    static func num(_ d: Double) -> JSON { .double((d * 1e6).rounded() / 1e6) }

    static func buckets(_ b: [WasteRanking.Bucket]) -> JSON {
        .array(b.map { .object([("name", .string($0.name)), ("calls", .int(Int64($0.calls))),
                                ("failed", .int(Int64($0.failed))), ("share", num($0.share))]) })
    }

    static func waste(_ r: Report) -> JSON {
        let w = r.waste
        let rows = r.options.rows(10)
        return .object([
            ("calls", .int(Int64(w.totalCalls))),
            ("failed", .int(Int64(w.totalFailed))),
            ("byDirectory", .array(w.byDirectory.prefix(rows).map { d in
                .object([("directory", .string(d.directory)), ("failed", .int(Int64(d.failed))), ("share", num(d.share)),
                         ("calls", .int(Int64(d.calls))), ("hwcapsFailed", .int(Int64(d.hwcapsFailed))),
                         ("origin", .string(d.origin)), ("namesMissed", .int(Int64(d.namesMissed)))])
            })),
            ("byLibrary", .array(w.byLibrary.prefix(rows).map { l in
                .object([("name", .string(l.name)), ("attempts", .int(Int64(l.attempts))),
                         ("foundIn", l.foundIn.isEmpty ? .null : .string(l.foundIn)),
                         ("failed", .int(Int64(l.failed))), ("share", num(l.share)),
                         ("directoriesSearched", .int(Int64(l.directoriesSearched))),
                         ("foundPath", l.foundPath.isEmpty ? .null : .string(l.foundPath)),
                         ("foundOrigin", l.foundOrigin.isEmpty ? .null : .string(l.foundOrigin)),
                         ("searches", .int(Int64(l.searches)))])
            })),
            ("byOrigin", buckets(w.byOrigin)),
            ("byPhase", buckets(w.byPhase)),
            ("byPurpose", buckets(w.byPurpose)),
            ("byLoadGroup", buckets(w.byLoadGroup)),
            ("byCaller", .array(w.byCaller.prefix(rows).map { c in
                .object([("name", .string(c.name)), ("object", c.object.map { .string($0) } ?? .null),
                         ("symbol", c.symbol.map { .string($0) } ?? .null),
                         ("offsets", .array(c.offsets.map { .string("0x" + String($0, radix: 16)) })),
                         ("groups", .int(Int64(c.groups))), ("firstNames", .array(c.firstNames.map { .string($0) })),
                         ("calls", .int(Int64(c.calls))), ("failed", .int(Int64(c.failed))), ("share", num(c.share))])
            })),
            ("pythonEntries", .array(w.pythonEntries.prefix(rows).map { e in
                .object([("entry", .string(e.entry)), ("scans", .int(Int64(e.scans))), ("found", .int(Int64(e.found))),
                         ("wasted", .int(Int64(e.wasted)))])
            })),
            ("hwcaps", .object([("calls", .int(Int64(w.hwcaps.calls))), ("failed", .int(Int64(w.hwcaps.failed))),
                                ("share", num(w.hwcaps.share))])),
            ("headlines", .array(w.headlines().map { .string($0) })),
        ])
    }

    static func scenarios(_ r: Report) -> JSON {
        .array(r.scenarios.map { s in
            .object([
                ("name", .string(s.scenario.rawValue)),
                ("operations", .int(Int64(s.calls))),
                ("serverOperations", .int(Int64(s.operations.total))),
                ("predictedSeconds", num(s.predictedSeconds)),
                ("jobSeconds", num(s.jobSeconds)),
                ("speedup", .double((s.speedup * 1000).rounded() / 1000)),
                ("summary", .string(s.scenario.summary)),
                ("failedOperations", .int(Int64(s.failedCalls))),
                ("operationsBySyscall", .object(FileCall.allCases.compactMap { c in
                    s.callsBySyscall[c].map { (c.name, JSON.int(Int64($0))) } })),
                ("operationsByPurpose", .object(CallPurpose.allCases.compactMap { c in
                    s.callsByPurpose[c].map { (c.rawValue, JSON.int(Int64($0))) } })),
                ("remoteOperations", .int(Int64(s.remoteCalls))),
                ("serverOperationsByKind", .object(ServerOperation.allCases.map { ($0.name, JSON.int(Int64(s.operations[$0]))) })),
                ("warmServerOperations", r.options.job.perNode > 1 ? .int(Int64(s.warmOperations.total)) : .null),
                ("fileSystemSeconds", num(s.fileSystemSeconds)),
                ("localSeconds", num(s.localSeconds)),
                ("computeSeconds", num(s.computeSeconds)),
                ("jobServerOperations", .int(Int64(s.jobOperations))),
                ("jobServerBytes", num(s.jobBytes)),
                ("serverBoundSeconds", num(s.serverBoundSeconds)),
                ("inputs", .object(s.assumptions.lines.map { ($0.0, JSON.string($0.1)) })),
            ])
        })
    }

    static func model(_ r: Report) -> JSON {
        let p = r.options.profile
        return .object([
            ("profile", .string(p.name)),
            ("latencySeconds", .object(ServerOperation.allCases.map { ($0.name, num(p.latency($0))) })),
            ("roundTripSeconds", num(p.roundTrip)),
            ("openOverheadSeconds", num(p.openOverhead)),
            ("positiveCacheSeconds", num(p.positiveCacheSeconds)),
            ("negativeCacheSeconds", num(p.negativeCacheSeconds)),
            ("serverOpsPerSecond", p.serverOpsPerSecond.map { .double($0) } ?? .null),
            ("serverBytesPerSecond", p.serverBytesPerSecond.map { .double($0) } ?? .null),
            ("processes", .int(Int64(r.options.job.processes))),
            ("nodes", .int(Int64(r.options.job.nodes))),
            ("remote", .array(r.remoteRoots.map { .object([("path", .string($0.path)), ("why", .string($0.why))]) })),
            ("capabilitySubdirectories", .array(r.capabilitySubdirectories.map { .string($0) })),
            ("programSearchPath", .object([("directories", .int(Int64(r.programSearchPath.count))),
                                           ("source", .string(r.programSearchPathSource))])),
            ("hostFileSystemConsulted", .bool(r.usedHost)),
        ])
    }

    static func attribution(_ r: Report) -> JSON {
        var attribution: [JSON] = []
        for p in r.attribution {
            attribution.append(.object([
                ("pid", .int(Int64(p.pid))),
                ("image", .string(p.image)),
                ("calls", .int(Int64(p.calls))),
                ("failed", .int(Int64(p.failed))),
                ("byPurpose", .object(p.byPurpose.map { k in
                    (k.purpose.rawValue, JSON.object([("calls", .int(Int64(k.calls))), ("failed", .int(Int64(k.failed)))])) })),
                ("searches", .int(Int64(p.searches))),
                ("objectsLoaded", .int(Int64(p.objectsLoaded))),
                ("relocationSeconds", num(Double(p.relocationNs) / 1e9)),
                ("loadGroups", .array(p.groups.map { g in
                    .object([("phase", .string(g.phase.name)), ("names", .int(Int64(g.names.count))),
                             ("first", g.names.first.map { .string($0) } ?? .null),
                             ("caller", g.caller.map { c in .object([
                                 ("object", .string(c.object)), ("offset", .string("0x" + String(c.offset, radix: 16))),
                                 ("symbol", c.symbol.map { .string($0) } ?? .null)]) } ?? .null),
                             ("seconds", num(Double(g.endNs > g.startNs ? g.endNs - g.startNs : 0) / 1e9))])
                })),
            ]))
        }
        return .array(attribution)
    }
}
