import LoaderModel
import TraceFormat

extension TraceSummary {
    /// The loadprobe-report/1 document (docs/report-format.md).
    public func json() -> JSON {
        func calls(_ d: [FileCall: CallCount]) -> JSON {
            .object(FileCall.allCases.compactMap { c in
                d[c].map { (c.name, JSON.object([("calls", .int(Int64($0.calls))), ("failed", .int(Int64($0.failed)))])) }
            })
        }
        func origins(_ d: SearchFlagCounts) -> JSON {
            .object(d.entries().map { ($0.name, JSON.int(Int64($0.count))) })
        }
        let procs: [JSON] = processes.map { p in
            var fields: [(String, JSON)] = [
                ("pid", .int(Int64(p.pid))),
                ("parent", .int(Int64(p.parent))),
                ("start", .string(String(describing: p.how))),
                ("images", .array(p.images.map { .string($0) })),
                ("argv", .array(p.argv.map { .string($0) })),
                ("threads", .int(Int64(p.threads))),
                ("exitStatus", p.exitStatus.map { .int(Int64($0)) } ?? .null),
                ("signal", p.signal.map { .int(Int64($0)) } ?? .null),
                ("audited", .bool(p.audited)),
                ("reachedMain", .bool(p.reachedMain)),
                ("execToMainSeconds", p.execToMainNs.map { .double(Double($0) / 1e9) } ?? .null),
                ("syscalls", calls(p.syscalls)),
                ("searches", .object([("attempts", .int(Int64(p.searchAttempts))), ("byOrigin", origins(p.searchesByFlag))])),
                ("objects", .int(Int64(p.objects))),
            ]
            if !p.notes.isEmpty { fields.append(("notes", .array(p.notes.map { .string($0) }))) }
            return .object(fields)
        }
        return .object([
            ("format", .string("loadprobe-report/1")),
            ("trace", .string(file)),
            ("mode", .string(mode)),
            ("complete", .bool(complete)),
            ("processes", .array(procs)),
            ("totals", .object([
                ("syscalls", calls(syscalls)),
                ("searches", .object([("attempts", .int(Int64(searchAttempts))), ("byOrigin", origins(searchesByFlag))])),
                ("objects", .int(Int64(objects))),
                ("ownCallsLeftOut", .int(Int64(ownCalls))),
            ])),
        ])
    }

    /// The few lines printed after a recording.
    public func text() -> String {
        var lines: [String] = []
        let execs = processes.reduce(0) { $0 + max(0, $1.images.count - 1) }
        lines.append("  processes: \(processes.count)" + (execs > 0 ? " (\(execs) exec\(execs == 1 ? "" : "s") after the first image)" : ""))
        var kinds = FileCall.allCases.compactMap { c -> String? in
            guard let v = syscalls[c] else { return nil }
            return "\(c.name) \(Self.group(v.calls))" + (v.failed > 0 ? " (\(Self.group(v.failed)) failed)" : "")
        }
        if recordingMode == .auditOnly {
            lines.append("  file calls: not recorded (audit only: --no-ptrace)")
        } else {
            if kinds.isEmpty { kinds = ["none recorded"] }
            lines.append("  file calls: \(Self.group(totalCalls)), \(Self.group(totalFailed)) failed — " + kinds.joined(separator: ", "))
        }
        if processes.contains(where: \.audited) {
            let libs = searchesByFlag.namesAsked
            let by = searchesByFlag.entries().dropFirst().compactMap { e -> String? in
                e.count > 0 ? "\(e.name) \(Self.group(e.count))" : nil
            }
            lines.append("  library searches: \(Self.group(libs)) names, \(Self.group(searchAttempts)) candidate paths tried"
                         + (by.isEmpty ? "" : " — " + by.joined(separator: ", ")) + "; \(Self.group(objects)) objects loaded")
        } else {
            lines.append("  library searches: not recorded (no audit)")
        }
        for p in processes where p.execToMainNs != nil {
            lines.append("  exec → main: \(Self.seconds(p.execToMainNs!)) (pid \(p.pid), \(p.images.last ?? "?"))")
            if lines.count > 8 { break }
        }
        if ownCalls > 0 {
            lines.append("  left out: \(ownCalls) calls made by loadprobe's audit library (its own open/fstat and record files)")
        }
        var seen = Set<String>()
        for p in processes { for n in p.notes where seen.insert(n).inserted { lines.append("  note: \(n)") } }
        return lines.joined(separator: "\n")
    }

    static func group(_ n: Int) -> String {
        let s = String(n)
        var out = ""
        for (i, c) in s.reversed().enumerated() {
            if i > 0 && i % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return String(out.reversed())
    }

    static func seconds(_ ns: UInt64) -> String {
        let s = Double(ns) / 1e9
        if s >= 1 { return String(format3(s)) + " s" }
        return String(format3(s * 1000)) + " ms"
    }

    static func format3(_ v: Double) -> String {
        let scaled = (v * 1000).rounded() / 1000
        var s = String(scaled)
        if let dot = s.firstIndex(of: ".") {
            let decimals = s.distance(from: dot, to: s.endIndex) - 1
            if decimals < 3 { s += String(repeating: "0", count: 3 - decimals) }
        }
        return s
    }
}
