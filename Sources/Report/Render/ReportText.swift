import LoaderModel
import TraceFormat

/// Terminal styling: colour only when asked (a tty without NO_COLOR).
public struct TextStyle: Sendable {
    public var color: Bool
    public init(color: Bool) { self.color = color }
    func bold(_ s: String) -> String { color ? "\u{1B}[1m\(s)\u{1B}[0m" : s }
    func dim(_ s: String) -> String { color ? "\u{1B}[2m\(s)\u{1B}[0m" : s }
    func red(_ s: String) -> String { color ? "\u{1B}[31m\(s)\u{1B}[0m" : s }
    func green(_ s: String) -> String { color ? "\u{1B}[32m\(s)\u{1B}[0m" : s }
}

/// A table with aligned columns; numbers right-aligned, text left-aligned.
struct TextTable {
    var header: [String]
    var rightAligned: Set<Int>
    var rows: [[String]] = []

    func render(indent: String = "  ", style: TextStyle) -> [String] {
        var widths = header.map { $0.count }
        for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
        func line(_ cells: [String]) -> String {
            var parts: [String] = []
            for (i, c) in cells.enumerated() {
                let pad = String(repeating: " ", count: max(0, widths[i] - c.count))
                parts.append(rightAligned.contains(i) ? pad + c : (i == cells.count - 1 ? c : c + pad))
            }
            return indent + parts.joined(separator: "  ")
        }
        return [style.dim(line(header))] + rows.map(line)
    }
}

public enum ReportText {
    public static func render(_ r: Report, style: TextStyle) -> String {
        var out: [String] = []
        let isJob = (r.job?.ranks ?? 1) > 1
        if let j = r.job {
            if isJob {
                out += JobRender.text(j, options: r.options, style: style)
                out.append("")
            } else if let one = j.perRank.first, !one.full {
                out.append(style.bold("\(one.file): summary trace\(one.rank.map { " of rank \($0)" } ?? "")"))
                out.append(one.summary.text())
            }
        }
        if !isJob || r.options.perRank {
            for s in r.summaries {
                out.append(style.bold("\(s.file): \(s.events) events, mode \(s.mode)\(s.complete ? "" : " (incomplete)")"))
                out.append(s.text())
            }
        }
        if r.fullTraces == 0 {
            out.append("")
            out.append("No full trace: where the calls went and what the fixes would give back need one (--full-ranks 0 records rank 0 in full).")
            return out.joined(separator: "\n")
        }
        if isJob { out.append(style.bold("The full traces") + " (\(r.fullTraces) of \(r.job?.ranks ?? r.fullTraces) ranks; the fixes priced for the whole job)") }
        if let w = r.whatIf {
            out.append("")
            out.append(style.bold(w.text))
            if let c = w.caveat { out.append("  " + c) }
            out.append("  " + WhatIfSummary.fixesNote)
        }
        whereCallsWent(r, style: style, into: &out)
        inShort(r, style: style, into: &out)
        byDirectory(r, style: style, into: &out)
        byLibrary(r, style: style, into: &out)
        fixes(r, style: style, into: &out)
        return out.joined(separator: "\n")
    }

    /// The calls by purpose, phase, dlopen group, Python entry and caller.
    static func whereCallsWent(_ r: Report, style: TextStyle, into out: inout [String]) {
        let w = r.waste
        out.append("")
        out.append(style.bold("Where the calls went") + " (\(group(w.totalCalls)) calls, \(group(w.totalFailed)) found nothing — \(percent(w.totalCalls == 0 ? 0 : Double(w.totalFailed) / Double(w.totalCalls))))")
        var t = TextTable(header: ["calls", "failed", "share", "purpose"], rightAligned: [0, 1, 2])
        for b in w.byPurpose { t.rows.append([group(b.calls), group(b.failed), percent(b.share), purposeText(b.name)]) }
        out += t.render(style: style)
        let phases = w.byPhase.map { "\($0.name) \(group($0.calls))" + ($0.failed > 0 ? " (\(group($0.failed)) failed)" : "") }
        out.append("  by phase: " + phases.joined(separator: ", "))
        if !w.byLoadGroup.isEmpty {
            let g = w.byLoadGroup.prefix(5).map { "\($0.name) \(group($0.failed))" }
            out.append("  dlopen groups (by first name, failed calls): " + g.joined(separator: ", ")
                       + (w.byLoadGroup.count > 5 ? ", … \(w.byLoadGroup.count - 5) more" : ""))
        }
        if !w.pythonEntries.isEmpty {
            let e = w.pythonEntries.prefix(5).map { "\($0.entry) \(group($0.wasted)) (\(group($0.scans)) scans, \(group($0.found)) found)" }
            out.append("  Python sys.path entries (stats that found nothing): " + e.joined(separator: ", ")
                       + (w.pythonEntries.count > 5 ? ", … \(w.pythonEntries.count - 5) more" : ""))
        }
        if !w.byCaller.isEmpty {
            let c = w.byCaller.prefix(5).map { "\($0.name) (\($0.groups) dlopen\($0.groups == 1 ? "" : "s"): \($0.firstNames.prefix(3).joined(separator: ", "))) \(group($0.failed))" }
            out.append("  dlopen groups by caller (failed calls): " + c.joined(separator: ", ")
                       + (w.byCaller.count > 5 ? ", … \(w.byCaller.count - 5) more" : ""))
        }
    }

    /// The headlines.
    static func inShort(_ r: Report, style: TextStyle, into out: inout [String]) {
        let w = r.waste
        let heads = w.headlines()
        if !heads.isEmpty {
            out.append("")
            out.append(style.bold("In short"))
            for h in heads { out.append("  • " + h) }
        }
    }

    /// The directories that served the most failed lookups.
    static func byDirectory(_ r: Report, style: TextStyle, into out: inout [String]) {
        let w = r.waste
        if !w.byDirectory.isEmpty {
            out.append("")
            out.append(style.bold("Wasted lookups by directory") + " (top \(min(r.options.top, w.byDirectory.count)) of \(group(w.byDirectory.count)))")
            var d = TextTable(header: ["failed", "share", "hwcaps", "names", "directory", "origin"], rightAligned: [0, 1, 2, 3])
            for x in w.byDirectory.prefix(r.options.top) {
                d.rows.append([group(x.failed), percent(x.share), group(x.hwcapsFailed), group(x.namesMissed), x.directory, x.origin])
            }
            out += d.render(style: style)
        }
    }

    /// The libraries with the most tries before their hit.
    static func byLibrary(_ r: Report, style: TextStyle, into out: inout [String]) {
        let w = r.waste
        let libs = w.byLibrary.filter { $0.attempts > 0 || $0.failed > 0 }
        if !libs.isEmpty {
            out.append("")
            out.append(style.bold("Tries before the hit, by library") + " (top \(min(r.options.top, libs.count)) of \(group(libs.count)))")
            var l = TextTable(header: ["tries", "failed", "dirs", "library", "found in"], rightAligned: [0, 1, 2])
            for x in libs.prefix(r.options.top) {
                l.rows.append([group(x.attempts), group(x.failed), group(x.directoriesSearched), x.name,
                               x.foundIn.isEmpty ? style.red("not found") : "\(x.foundIn) (\(x.foundOrigin))"])
            }
            out += l.render(style: style)
        }
    }

    /// The scenarios priced, and their inputs.
    static func fixes(_ r: Report, style: TextStyle, into out: inout [String]) {
        if !r.scenarios.isEmpty {
            out.append("")
            let p = r.options.profile
            out.append(style.bold("What the fixes would give back") + " — \(p.name), \(r.options.job.processes) process\(r.options.job.processes == 1 ? "" : "es") on \(r.options.job.nodes) node\(r.options.job.nodes == 1 ? "" : "s")")
            out.append("  modeled file system: " + (r.remoteRoots.isEmpty ? style.red("none (no remote mount in the trace; use --remote PREFIX)")
                                                    : r.remoteRoots.map { "\($0.path) (\($0.why))" }.joined(separator: ", ")))
            var s = TextTable(header: ["scenario", "calls", "server ops", "lookups", "misses", "per process", "job", "speed-up"],
                              rightAligned: [1, 2, 3, 4, 5, 6, 7])
            for x in r.scenarios {
                let sp = String(rounding: x.speedup, places: x.speedup >= 10 ? 0 : 1) + "×"
                s.rows.append([x.scenario.rawValue, group(x.calls), group(x.operations.total), group(x.operations[.lookup]),
                               group(x.operations[.lookupMiss]), seconds(x.predictedSeconds), seconds(x.jobSeconds),
                               x.speedup > 1.05 ? style.green(sp) : sp])
            }
            out += s.render(style: style)
            if let u = r.scenariosUnavailable {
                out.append("  not predicted: " + u.scenarios.map(\.rawValue).joined(separator: ", ") + " — " + u.reason)
            }
            out.append("")
            out.append(style.bold("Inputs") + " (each prediction can be checked by hand)")
            if let first = r.scenarios.first {
                for (k, v) in first.assumptions.lines.suffix(4) { out.append("  \(k): \(v)") }
            }
            for x in r.scenarios {
                let specific = x.assumptions.lines.dropLast(4)
                let ops = ServerOperation.allCases.filter { x.operations[$0] > 0 }.map { "\($0.name) \(group(x.operations[$0]))" }
                out.append("  \(x.scenario.rawValue): \(x.scenario.summary)")
                for (k, v) in specific { out.append("    \(k): \(v)") }
                out.append("    server operations per process: " + (ops.isEmpty ? "none" : ops.joined(separator: ", "))
                           + (r.options.job.perNode > 1 ? "; on a warm node \(group(x.warmOperations.total))" : "") + "; job \(group(x.jobOperations))")
                out.append("    seconds: compute \(seconds(x.computeSeconds)) + local calls \(seconds(x.localSeconds)) + file system \(seconds(x.fileSystemSeconds)) = \(seconds(x.predictedSeconds))"
                           + (x.serverBoundSeconds > 0 ? "; server-bound job \(seconds(x.serverBoundSeconds))" : ""))
            }
        }
    }

    static func purposeText(_ raw: String) -> String {
        switch CallPurpose(rawValue: raw) {
        case .exec: "exec"
        case .loaderConfig: "loader configuration (ld.so.cache, ld.so.preload)"
        case .searchCandidate: "library search: candidate paths"
        case .hwcapsProbe: "library search: glibc-hwcaps and legacy subdirectories"
        case .directoryStat: "library search: directory-existence stats"
        case .absoluteOpen: "library opened by absolute path"
        case .objectStat: "fstat of a loaded object"
        case .pythonImport: "python import path scan"
        case .other: "other (the program's own files)"
        case nil: raw
        }
    }
}

extension ReportText {
    /// Every call of the program, one per line, with its attribution
    /// (`loadprobe report --calls`): time from the image start, call, result,
    /// purpose, phase, and the search and directory it served.
    public static func callListing(_ a: TraceAnalysis) -> String {
        var out: [String] = []
        for p in a.processes {
            out.append("# \(p.label) \(p.image)")
            for c in p.calls {
                let e = c.event
                let t = e.entryNs >= p.startNs ? Double(e.entryNs - p.startNs) / 1e6 : 0
                var line = String(rounding: t, places: 3) + " ms  " + e.call.name + " " + a.trace.path(e.resolved ?? e.path)
                line += e.failed ? "  = -\(e.errno)" : "  = \(e.result)"
                line += "  [\(c.purpose.rawValue), \(c.phase.name)"
                if c.search >= 0 {
                    let s = p.searches[Int(c.search)]
                    line += ", search \(s.name)"
                    if c.candidate >= 0 {
                        let cand = s.candidates[Int(c.candidate)]
                        line += " in \(cand.directory)" + (cand.subdirectory.isEmpty ? "" : " (\(cand.subdirectory))") + " \(cand.originLabel)"
                    }
                }
                out.append(line + "]")
            }
        }
        return out.joined(separator: "\n")
    }
}

extension ReportText {
    /// A scenario's calls, one per line, with the server operations each costs
    /// (`loadprobe report --calls --scenario NAME`): the by-hand check of a prediction.
    public static func scenarioListing(_ analyses: [TraceAnalysis], scenario: Scenario, options: ReportOptions) -> String {
        var listing: [String] = []
        _ = Report(analyses: analyses, options: options, scenarioListing: (scenario, { line in listing.append(line) }))
        return listing.joined(separator: "\n")
    }
}
