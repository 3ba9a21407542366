/// The job section of a report (docs/jobs.md): text, JSON and HTML.
enum JobRender {
    static func rankName(_ rank: Int?, _ file: String) -> String { rank.map { "rank \($0)" } ?? file }

    /// The five slowest ranks, "rank 3 on node1 1.2 s (traced)".
    static func slowest(_ j: JobReport) -> [String] {
        j.slowest.prefix(5).map { "\(rankName($0.rank, $0.file)) on \($0.host) \(seconds($0.seconds))\($0.full ? " (traced)" : "")" }
    }

    static func text(_ j: JobReport, options: ReportOptions, style: TextStyle) -> [String] {
        var out: [String] = []
        let what = [j.jobids.isEmpty ? "The job" : "Job " + j.jobids.joined(separator: ", "), j.launcher.map { "(\($0))" }]
            .compactMap { $0 }.joined(separator: " ")
        out.append(style.bold(what + ": \(group(j.ranks)) rank\(j.ranks == 1 ? "" : "s") on \(group(j.nodes)) node\(j.nodes == 1 ? "" : "s")")
                   + " — \(group(j.fullTraces)) full trace\(j.fullTraces == 1 ? "" : "s"), \(group(j.summaryTraces)) summary trace\(j.summaryTraces == 1 ? "" : "s")")
        if let s = j.startup {
            out.append("  start-up (exec → main) over \(j.startupPhrase): min \(seconds(s.min)), median \(seconds(s.median)), p95 \(seconds(s.p95)), max \(seconds(s.max))")
            if let w = j.waitedForSlowest, s.count > 1 {
                out.append("  the job waited \(seconds(w)) for its slowest rank past the median one (MPI_Init waits for every rank)")
            }
        } else if j.perRank.allSatisfy({ !$0.summary.mainObservable }) {
            out.append("  exec → main not recorded (the ranks were recorded without the audit library: --no-audit)")
        } else {
            out.append("  no rank reached main")
        }
        if let t = j.startupTraced {
            out.append("  full-trace ranks, slowed by the tracer: median \(seconds(t.median)), max \(seconds(t.max)) (\(t.count) rank\(t.count == 1 ? "" : "s"))")
        }
        if let ops = j.serverOperations, ops > 0 {
            var line = "  the job's start-ups made \(group(ops)) server operations (as recorded, at the job's shape)"
            if let b = j.busiestSecond, b.operations > 0 {
                line += "; the busiest second \(group(Int(b.operations.rounded()))), \(String(rounding: b.start - (j.perRank.compactMap(\.startSeconds).min() ?? b.start), places: 1)) s into the job"
            }
            out.append(line)
        }
        if !j.duplicateRanks.isEmpty {
            out.append(style.red("  rank\(j.duplicateRanks.count == 1 ? "" : "s") \(j.duplicateRanks.prefix(8).map(String.init).joined(separator: ", "))\(j.duplicateRanks.count > 8 ? ", …" : "") claimed by more than one trace: several runs or steps in one directory?"))
        }
        if j.tracesWithoutJob > 0 {
            out.append(style.red("  \(group(j.tracesWithoutJob)) trace\(j.tracesWithoutJob == 1 ? " has" : "s have") no job id: recorded outside job \(j.jobids.joined(separator: ", "))?"))
        }
        if !j.unreadable.isEmpty {
            out.append(style.red("  \(group(j.unreadable.count)) trace\(j.unreadable.count == 1 ? "" : "s") left out, unreadable: ")
                       + j.unreadable.prefix(5).map { "\($0.file) (\($0.reason))" }.joined(separator: "; ")
                       + (j.unreadable.count > 5 ? "; …" : ""))
        }
        if j.repeatedTraces > 0 {
            out.append("  \(group(j.repeatedTraces)) full trace\(j.repeatedTraces == 1 ? " had" : "s had") the content of an earlier one (the same calls and searches): counted, not analysed again")
        }
        if j.failed > 0 { out.append(style.red("  \(group(j.failed)) rank\(j.failed == 1 ? "" : "s") did not reach main")) }
        if j.histogram.count > 1 && (j.startup?.count ?? 0) >= 8 {
            let most = j.histogram.map(\.count).max() ?? 1
            for b in j.histogram {
                let bar = String(repeating: "#", count: most == 0 ? 0 : Int((Double(b.count) / Double(most) * 40).rounded(.up)))
                out.append("  " + pad(seconds(b.lower), 9) + " – " + pad(seconds(b.upper), 9) + " " + pad(group(b.count), 6) + " " + bar)
            }
        }
        if j.ranks > 1 {
            let slow = slowest(j)
            if !slow.isEmpty { out.append("  slowest: " + slow.joined(separator: ", ")) }
        }
        if j.nodes > 1 || j.byHost.contains(where: { $0.ranks > 1 }) {
            var t = TextTable(header: ["host", "ranks", "median", "max", "first start", "later ranks"], rightAligned: [1, 2, 3])
            for h in j.byHost.prefix(options.perRank ? .max : max(options.top, 1)) {
                let first = h.firstSeconds.map { "\(seconds($0))" + (h.firstRank.map { " (rank \($0)\(h.firstTraced ? ", traced" : ""))" } ?? "") } ?? "-"
                t.rows.append([h.host, group(h.ranks), h.median.map(seconds) ?? "-", h.max.map(seconds) ?? "-", first,
                               h.laterMedian.map { "median \(seconds($0))" } ?? "-"])
            }
            out += t.render(style: style)
            if !options.perRank && j.byHost.count > options.top { out.append("  … \(j.byHost.count - options.top) more hosts (--per-rank lists all)") }
        }
        if j.outliers.isEmpty {
            if j.ranks > 1 { out.append("  every rank did what the others did (environment, libraries, searches)") }
        } else {
            out.append(style.bold("  Ranks that differ from the others") + " (\(j.outliers.count))")
            for o in j.outliers.prefix(options.perRank ? .max : max(options.top, 1)) {
                out.append("    \(rankName(o.rank, o.file)) on \(o.host): \(o.reason)")
            }
            if !options.perRank && j.outliers.count > options.top { out.append("    … \(j.outliers.count - options.top) more (--per-rank lists all)") }
        }
        if options.perRank {
            var t = TextTable(header: ["rank", "host", "exec → main", "trace", "exit", "names", "failed lookups"], rightAligned: [0, 2, 5, 6])
            for r in j.perRank {
                t.rows.append([r.rank.map(String.init) ?? r.file, r.host, r.seconds.map(seconds) ?? "not reached", r.full ? "full" : "summary",
                               r.summary.exit, group(r.summary.names), group(r.summary.failedCandidates)])
            }
            out += t.render(style: style)
        }
        return out
    }

    static func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }

    static func json(_ j: JobReport, options: ReportOptions) -> JSON {
        func stats(_ s: JobReport.Stats?) -> JSON {
            guard let s else { return .null }
            return .object([("ranks", .int(Int64(s.count))), ("min", .double(s.min)), ("median", .double(s.median)),
                            ("p95", .double(s.p95)), ("max", .double(s.max))])
        }
        func opt(_ v: Double?) -> JSON { v.map { .double($0) } ?? .null }
        func rank(_ r: Int?) -> JSON { r.map { .int(Int64($0)) } ?? .null }
        var fields: [(String, JSON)] = [
            ("ranks", .int(Int64(j.ranks))), ("nodes", .int(Int64(j.nodes))),
            ("fullTraces", .int(Int64(j.fullTraces))), ("summaryTraces", .int(Int64(j.summaryTraces))),
            ("launcher", j.launcher.map { .string($0) } ?? .null),
            ("jobIds", .array(j.jobids.map { .string($0) })),
            ("startup", stats(j.startup)), ("startupOf", .string(j.startupOf)),
            ("startupTraced", stats(j.startupTraced)),
            ("waitedForSlowest", opt(j.waitedForSlowest)),
            ("failed", .int(Int64(j.failed))),
            ("repeatedTraces", .int(Int64(j.repeatedTraces))),
            ("duplicateRanks", .array(j.duplicateRanks.map { .int(Int64($0)) })),
            ("tracesWithoutJob", .int(Int64(j.tracesWithoutJob))),
            ("unreadable", .array(j.unreadable.map { .object([("file", .string($0.file)), ("reason", .string($0.reason))]) })),
            ("serverOperations", j.serverOperations.map { .int(Int64($0)) } ?? .null),
            ("busiestSecond", j.busiestSecond.map { .object([("start", .double($0.start)), ("operations", .double($0.operations))]) } ?? .null),
            ("histogram", .array(j.histogram.map { .object([("from", .double($0.lower)), ("to", .double($0.upper)), ("ranks", .int(Int64($0.count)))]) })),
            ("slowest", .array(j.slowest.map { .object([("rank", rank($0.rank)), ("host", .string($0.host)), ("seconds", .double($0.seconds)), ("fullTrace", .bool($0.full))]) })),
            ("byHost", .array(j.byHost.map { h in .object([("host", .string(h.host)), ("ranks", .int(Int64(h.ranks))), ("median", opt(h.median)),
                                                          ("max", opt(h.max)), ("firstRank", rank(h.firstRank)), ("firstSeconds", opt(h.firstSeconds)),
                                                          ("firstTraced", .bool(h.firstTraced)), ("laterMedian", opt(h.laterMedian))]) })),
            ("outliers", .array(j.outliers.map { .object([("rank", rank($0.rank)), ("host", .string($0.host)), ("file", .string($0.file)), ("reason", .string($0.reason))]) })),
        ]
        if options.perRank {
            fields.append(("perRank", .array(j.perRank.map { r in
                .object([("rank", rank(r.rank)), ("host", .string(r.host)), ("file", .string(r.file)), ("program", .string(r.program)), ("fullTrace", .bool(r.full)),
                         ("seconds", opt(r.seconds)), ("exit", .string(r.summary.exit)), ("names", .int(Int64(r.summary.names))),
                         ("candidates", .int(Int64(r.summary.candidates))), ("failedLookups", .int(Int64(r.summary.failedCandidates))),
                         ("objects", .int(Int64(r.summary.objects))), ("missing", .array(r.summary.missing.map { .string($0) }))])
            })))
        }
        return .object(fields)
    }

    /// Two SVG bar charts: ranks by start-up time, and each host's median and max.
    static func html(_ j: JobReport, esc: (String) -> String) -> String {
        let title = (j.jobids.isEmpty ? "The job" : "Job " + j.jobids.joined(separator: ", ")) + (j.launcher.map { " (\($0))" } ?? "")
        var h = "<h2>\(esc(title))</h2>\n<p>\(group(j.ranks)) rank\(j.ranks == 1 ? "" : "s") on \(group(j.nodes)) node\(j.nodes == 1 ? "" : "s") — \(group(j.fullTraces)) full, \(group(j.summaryTraces)) summary trace\(j.summaryTraces == 1 ? "" : "s")"
        if let s = j.startup {
            h += "; start-up over \(j.startupPhrase): min \(seconds(s.min)), median \(seconds(s.median)), p95 \(seconds(s.p95)), max \(seconds(s.max))"
            if let w = j.waitedForSlowest, s.count > 1 { h += "; the job waited \(seconds(w)) for its slowest rank past the median one" }
        }
        h += ".</p>\n"
        if !j.slowest.isEmpty {
            h += "<p>Slowest: " + slowest(j).map(esc).joined(separator: ", ") + "</p>\n"
        }
        if let ops = j.serverOperations, ops > 0 {
            h += "<p>Server operations of the job's start-ups: \(group(ops))" + (j.busiestSecond.map { "; the busiest second \(group(Int($0.operations.rounded())))" } ?? "") + "</p>\n"
        }
        if !j.histogram.isEmpty {
            let most = max(1, j.histogram.map(\.count).max() ?? 1)
            let w = 600, bh = 160, bw = w / j.histogram.count
            h += "<svg class=\"chart job-histogram\" width=\"\(w)\" height=\"\(bh + 40)\" role=\"img\" aria-label=\"ranks by start-up time\">\n"
            for (i, b) in j.histogram.enumerated() {
                let height = Int(Double(b.count) / Double(most) * Double(bh))
                h += "<rect x=\"\(i * bw + 2)\" y=\"\(bh - height)\" width=\"\(bw - 4)\" height=\"\(height)\" fill=\"#4a7ab5\"><title>\(esc(seconds(b.lower))) – \(esc(seconds(b.upper))): \(b.count) ranks</title></rect>\n"
                h += "<text x=\"\(i * bw + bw / 2)\" y=\"\(bh + 14)\" font-size=\"10\" text-anchor=\"middle\">\(b.count)</text>\n"
            }
            h += "<text x=\"0\" y=\"\(bh + 32)\" font-size=\"11\">\(esc(seconds(j.histogram.first!.lower)))</text>"
            h += "<text x=\"\(w)\" y=\"\(bh + 32)\" font-size=\"11\" text-anchor=\"end\">\(esc(seconds(j.histogram.last!.upper)))</text>\n</svg>\n"
        }
        let hosts = j.byHost.filter { $0.max != nil }
        if let top = hosts.compactMap(\.max).max(), top > 0 {
            let rowH = 18, w = 600
            h += "<svg class=\"chart job-hosts\" width=\"\(w + 200)\" height=\"\(hosts.count * rowH + 10)\" role=\"img\" aria-label=\"start-up by host\">\n"
            for (i, row) in hosts.enumerated() {
                let y = i * rowH
                let mx = Int(row.max! / top * Double(w)), md = Int((row.median ?? 0) / top * Double(w))
                h += "<text x=\"0\" y=\"\(y + 13)\" font-size=\"11\">\(esc(row.host))</text>"
                h += "<rect x=\"160\" y=\"\(y + 3)\" width=\"\(mx)\" height=\"12\" fill=\"#c9d7ea\"><title>max \(esc(seconds(row.max!)))</title></rect>"
                h += "<rect x=\"160\" y=\"\(y + 3)\" width=\"\(md)\" height=\"12\" fill=\"#4a7ab5\"><title>median \(esc(seconds(row.median ?? 0)))</title></rect>\n"
            }
            h += "</svg>\n"
        }
        if j.byHost.contains(where: { $0.firstSeconds != nil }) {
            h += "<table><tr><th>host</th><th class=n>ranks</th><th class=n>median</th><th class=n>max</th><th>first start</th><th>later ranks</th></tr>"
            for row in j.byHost.prefix(50) {
                let first = row.firstSeconds.map { seconds($0) + (row.firstRank.map { " (rank \($0)\(row.firstTraced ? ", traced" : ""))" } ?? "") } ?? "-"
                h += "<tr><td>\(esc(row.host))</td><td class=n>\(row.ranks)</td><td class=n>\(row.median.map(seconds) ?? "-")</td><td class=n>\(row.max.map(seconds) ?? "-")</td><td>\(esc(first))</td><td>\(row.laterMedian.map { "median " + seconds($0) } ?? "-")</td></tr>"
            }
            h += "</table>\n"
        }
        if !j.outliers.isEmpty {
            h += "<h3>Ranks that differ from the others</h3>\n<ul>\n"
            for o in j.outliers { h += "<li>\(esc(rankName(o.rank, o.file))) on \(esc(o.host)): \(esc(o.reason))</li>\n" }
            h += "</ul>\n"
        }
        return h
    }
}
