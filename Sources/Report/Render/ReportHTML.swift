import LoaderModel
/// One self-contained HTML file: no external scripts, styles, fonts or images,
/// so it opens offline. Charts are inline SVG: wasted lookups per directory,
/// a timeline per process (phases, load groups, searches), and the scenarios
/// side by side. A few lines of inline script only record that the charts were
/// laid out (`data-charts-rendered` on <body>), for automated checks.
public enum ReportHTML {
    public static func render(_ r: Report) -> String {
        var h = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>loadprobe report — \(esc(r.summaries.map(\.file).joined(separator: ", ")))</title>
        <style>
        body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1100px;color:#1d2330;padding:0 16px}
        h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde;padding-bottom:4px}
        table{border-collapse:collapse;font-size:13px;margin:6px 0}td,th{padding:3px 10px;border-bottom:1px solid #eef;text-align:left}
        td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#667}.head li{margin:3px 0}
        svg text{font:11px system-ui,sans-serif;fill:#1d2330}.chart{margin:8px 0 4px;overflow:visible}
        code{font:12px ui-monospace,monospace;background:#f3f4f8;padding:1px 4px;border-radius:3px}
        .legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px;vertical-align:middle}
        </style></head><body>
        <h1>Where the start-up went</h1>
        <p class="muted">\(esc(r.summaries.map { "\($0.file) — \($0.events) events, \($0.mode)" }.joined(separator: "; ")))</p>

        """
        if let j = r.job, j.ranks > 1 || r.fullTraces == 0 { h += JobRender.html(j, esc: esc) }
        if let wi = r.whatIf {
            h += "<p><b>\(esc(wi.text))</b><br>" + (wi.caveat.map { "<span class=muted>\(esc($0))</span><br>" } ?? "")
                + "<span class=muted>\(esc(WhatIfSummary.fixesNote))</span></p>\n"
        }
        let w = r.waste
        h += "<p>\(group(w.totalCalls)) file calls, <b>\(group(w.totalFailed)) found nothing</b> (\(percent(w.totalCalls == 0 ? 0 : Double(w.totalFailed) / Double(w.totalCalls)))).</p>\n"
        let heads = w.headlines()
        if !heads.isEmpty { h += "<ul class=\"head\">" + heads.map { "<li>\(esc($0))</li>" }.joined() + "</ul>\n" }

        h += "<h2>Wasted lookups per directory</h2>\n" + directoryChart(w) + "\n"
        h += "<h2>Timeline per process</h2>\n" + timelines(r) + "\n"
        h += "<h2>Scenarios side by side</h2>\n" + scenarioChart(r) + "\n" + scenarioTable(r) + "\n"
        if let u = r.scenariosUnavailable {
            h += "<p class=muted>Not predicted: \(esc(u.scenarios.map(\.rawValue).joined(separator: ", "))) — \(esc(u.reason))</p>\n"
        }

        h += "<h2>Calls by purpose</h2>\n<table><tr><th>purpose</th><th class=n>calls</th><th class=n>failed</th><th class=n>share</th></tr>"
        for b in w.byPurpose {
            h += "<tr><td>\(esc(ReportText.purposeText(b.name)))</td><td class=n>\(group(b.calls))</td><td class=n>\(group(b.failed))</td><td class=n>\(percent(b.share))</td></tr>"
        }
        h += "</table>\n"
        h += "<h2>Tries before the hit, by library</h2>\n<table><tr><th>library</th><th class=n>tries</th><th class=n>failed</th><th class=n>directories</th><th>found in</th></tr>"
        for l in w.byLibrary.prefix(r.options.rows(2)) {
            h += "<tr><td><code>\(esc(l.name))</code></td><td class=n>\(group(l.attempts))</td><td class=n>\(group(l.failed))</td><td class=n>\(group(l.directoriesSearched))</td><td>\(esc(l.foundIn.isEmpty ? "not found" : "\(l.foundIn) (\(l.foundOrigin))"))</td></tr>"
        }
        h += "</table>\n"
        h += "<h2>Inputs of the model</h2>\n<table>"
        if let first = r.scenarios.first {
            for (k, v) in first.assumptions.lines.suffix(4) { h += "<tr><th>\(esc(k))</th><td>\(esc(v))</td></tr>" }
        }
        h += "<tr><th>modeled file system</th><td>\(esc(r.remoteRoots.isEmpty ? "none (no remote mount in the trace)" : r.remoteRoots.map { "\($0.path) (\($0.why))" }.joined(separator: ", ")))</td></tr>"
        for s in r.scenarios {
            let lines = s.assumptions.lines.dropLast(4)
            h += "<tr><th>\(esc(s.scenario.rawValue))</th><td>\(esc(s.scenario.summary))" + lines.map { "<br><span class=muted>\(esc($0.0)):</span> \(esc($0.1))" }.joined()
                + "<br><span class=muted>seconds:</span> compute \(seconds(s.computeSeconds)) + local \(seconds(s.localSeconds)) + file system \(seconds(s.fileSystemSeconds)) = \(seconds(s.predictedSeconds))</td></tr>"
        }
        h += "</table>\n"
        h += """
        <p class="muted">loadprobe report — docs/report-format.md, docs/cost-model.md</p>
        <script>
        (function(){var n=0;document.querySelectorAll('svg.chart').forEach(function(s){var b=s.getBBox();if(b.width>0&&b.height>0&&s.querySelectorAll('rect').length>0)n++;});document.body.setAttribute('data-charts-rendered',String(n));})();
        </script>
        </body></html>
        """
        return h
    }

    static func directoryChart(_ w: WasteRanking) -> String {
        let rows = Array(w.byDirectory.prefix(20))
        guard let maxV = rows.first?.failed, maxV > 0 else { return "<p class=muted>No failed lookups.</p>" }
        let labelW = 360.0, barW = 600.0, rowH = 18.0
        let height = Double(rows.count) * rowH + 24
        var s = "<svg class=\"chart\" id=\"chart-directories\" width=\"\(Int(labelW + barW + 120))\" height=\"\(Int(height))\" role=\"img\" aria-label=\"failed lookups per directory\">"
        for (i, d) in rows.enumerated() {
            let y = Double(i) * rowH + 4
            let full = Double(d.failed) / Double(maxV) * barW
            let hw = Double(d.hwcapsFailed) / Double(maxV) * barW
            s += "<text x=\"\(Int(labelW - 6))\" y=\"\(f(y + 12))\" text-anchor=\"end\">\(esc(shorten(d.directory, 58)))</text>"
            s += "<rect class=\"bar\" x=\"\(Int(labelW))\" y=\"\(f(y))\" width=\"\(f(max(full, 1)))\" height=\"\(f(rowH - 4))\" fill=\"#d9534f\"><title>\(esc(d.directory)): \(d.failed) failed (\(d.hwcapsFailed) in hwcaps subdirectories), \(percent(d.share)) of all calls</title></rect>"
            if hw > 0 { s += "<rect x=\"\(Int(labelW))\" y=\"\(f(y))\" width=\"\(f(hw))\" height=\"\(f(rowH - 4))\" fill=\"#f0ad4e\"/>" }
            s += "<text x=\"\(f(labelW + max(full, 1) + 6))\" y=\"\(f(y + 12))\">\(group(d.failed)) · \(percent(d.share))</text>"
        }
        s += "</svg>"
        s += "<div class=\"legend muted\"><span style=\"background:#d9534f\"></span>failed calls<span style=\"background:#f0ad4e\"></span>of which in glibc-hwcaps / legacy subdirectories"
        if w.byDirectory.count > rows.count { s += " · \(w.byDirectory.count - rows.count) more directories" }
        s += "</div>"
        return s
    }

    static func timelines(_ r: Report) -> String {
        var s = ""
        var shown = 0
        do {
            for p in r.timelineProcesses {
                shown += 1
                if shown > 12 { s += "<p class=muted>… more processes left out.</p>"; return s }
                let start = p.startNs, end = p.endNs > p.startNs ? p.endNs : p.startNs &+ 1
                let width = 960.0
                func x(_ t: UInt64) -> Double { Double(t > start ? t - start : 0) / Double(end &- start) * width }
                s += "<p><b>\(esc(p.label))</b> <span class=muted>\(esc(p.image)) — \(seconds(Double(end &- start) / 1e9)) recorded (traced, slower than untraced)</span></p>"
                s += "<svg class=\"chart\" width=\"\(Int(width + 20))\" height=\"74\" role=\"img\" aria-label=\"timeline\">"
                if let m = p.mainNs {
                    s += "<rect x=\"0\" y=\"4\" width=\"\(f(max(x(m), 1)))\" height=\"14\" fill=\"#5b8def\"><title>start-up: exec → main, \(seconds(Double(m > start ? m - start : 0) / 1e9))</title></rect>"
                    s += "<rect x=\"\(f(x(m)))\" y=\"4\" width=\"\(f(max(width - x(m), 1)))\" height=\"14\" fill=\"#9bc59d\"><title>main</title></rect>"
                } else {
                    s += "<rect x=\"0\" y=\"4\" width=\"\(f(width))\" height=\"14\" fill=\"#9aa3b5\"><title>main not reached</title></rect>"
                }
                for g in p.groups {
                    s += "<rect x=\"\(f(x(g.startNs)))\" y=\"22\" width=\"\(f(max(x(g.endNs) - x(g.startNs), 1)))\" height=\"14\" fill=\"#8e7cc3\"><title>\(esc(g.phase.name)): \(g.names.count) names, \(seconds(Double(g.endNs > g.startNs ? g.endNs - g.startNs : 0) / 1e9))\(g.caller.map { ", called from " + esc($0.label) } ?? "")</title></rect>"
                }
                // Searches, coloured by the share of their calls that failed; merged when under a pixel.
                var lastX = -1.0
                for srch in p.searches {
                    let sx = x(srch.timeNs)
                    if sx - lastX < 1 { continue }
                    lastX = sx
                    let frac = srch.calls == 0 ? 0 : Double(srch.failedCalls) / Double(srch.calls)
                    let red = Int(80 + 175 * frac), green = Int(170 - 120 * frac)
                    s += "<rect x=\"\(f(sx))\" y=\"40\" width=\"1.5\" height=\"14\" fill=\"rgb(\(red),\(green),80)\"><title>\(esc(srch.name)): \(srch.attempts) tries, \(srch.failedCalls) failed calls\(srch.found.map { ", found \($0)" } ?? "")</title></rect>"
                }
                s += "<text x=\"0\" y=\"68\">0</text><text x=\"\(f(width))\" y=\"68\" text-anchor=\"end\">\(esc(seconds(Double(end > start ? end - start : 0) / 1e9)))</text></svg>"
            }
        }
        s += "<div class=\"legend muted\"><span style=\"background:#5b8def\"></span>exec → main<span style=\"background:#9bc59d\"></span>main<span style=\"background:#8e7cc3\"></span>load groups<span style=\"background:rgb(255,50,80)\"></span>searches (red: mostly failed calls)</div>"
        return s
    }

    static func scenarioChart(_ r: Report) -> String {
        guard let maxT = r.scenarios.map(\.jobSeconds).max(), maxT > 0 else { return "<p class=muted>No scenarios.</p>" }
        let labelW = 130.0, barW = 640.0, rowH = 26.0
        var s = "<svg class=\"chart\" id=\"chart-scenarios\" width=\"\(Int(labelW + barW + 200))\" height=\"\(Int(Double(r.scenarios.count) * rowH + 8))\" role=\"img\" aria-label=\"predicted time per scenario\">"
        for (i, sc) in r.scenarios.enumerated() {
            let y = Double(i) * rowH + 4
            let wv = max(sc.jobSeconds / maxT * barW, 1)
            let color = sc.scenario == .recorded ? "#d9534f" : "#5cb85c"
            s += "<text x=\"\(Int(labelW - 6))\" y=\"\(f(y + 14))\" text-anchor=\"end\">\(esc(sc.scenario.rawValue))</text>"
            s += "<rect class=\"bar\" x=\"\(Int(labelW))\" y=\"\(f(y))\" width=\"\(f(wv))\" height=\"\(f(rowH - 8))\" fill=\"\(color)\"><title>\(esc(sc.scenario.rawValue)): \(seconds(sc.jobSeconds)) for the job, \(group(sc.operations.total)) server operations per process</title></rect>"
            s += "<text x=\"\(f(labelW + wv + 6))\" y=\"\(f(y + 14))\">\(esc(seconds(sc.jobSeconds))) · \(String(rounding: sc.speedup, places: 1))×</text>"
        }
        s += "</svg>"
        return s
    }

    static func scenarioTable(_ r: Report) -> String {
        var s = "<table><tr><th>scenario</th><th class=n>calls</th><th class=n>server ops</th><th class=n>lookups</th><th class=n>misses</th><th class=n>per process</th><th class=n>job</th><th class=n>speed-up</th></tr>"
        for x in r.scenarios {
            s += "<tr><td>\(esc(x.scenario.rawValue))</td><td class=n>\(group(x.calls))</td><td class=n>\(group(x.operations.total))</td><td class=n>\(group(x.operations[.lookup]))</td><td class=n>\(group(x.operations[.lookupMiss]))</td><td class=n>\(seconds(x.predictedSeconds))</td><td class=n>\(seconds(x.jobSeconds))</td><td class=n>\(String(rounding: x.speedup, places: 1))×</td></tr>"
        }
        s += "</table><p class=muted>\(esc(r.options.profile.name)): \(esc(r.options.profile.summary)); \(r.options.job.processes) process(es) on \(r.options.job.nodes) node(s).</p>"
        return s
    }

    static func f(_ v: Double) -> String { String(rounding: v, places: 1) }

    static func shorten(_ s: String, _ n: Int) -> String {
        s.count <= n ? s : "…" + String(s.suffix(n - 1))
    }

    static func esc(_ s: String) -> String {
        var o = ""
        o.reserveCapacity(s.utf8.count)
        for ch in s.unicodeScalars {
            switch ch {
            case "&": o += "&amp;"
            case "<": o += "&lt;"
            case ">": o += "&gt;"
            case "\"": o += "&quot;"
            case "'": o += "&#39;"
            default: o.unicodeScalars.append(ch)
            }
        }
        return o
    }
}
