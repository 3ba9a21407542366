import LoaderModel
/// `loadprobe calibrate`'s output: a table for a terminal, or one JSON line
/// (format loadprobe-calibrate/1).
extension Calibration {
    public func json(profile: FileSystemProfile) -> String {
        func series(_ s: Series) -> JSON {
            func seconds(_ v: Double) -> JSON { s.samples.isEmpty ? .null : .double(v) }
            return .object([("calls", .int(Int64(s.samples.count))), ("medianSeconds", seconds(s.median)),
                            ("p10Seconds", seconds(s.p10)), ("p90Seconds", seconds(s.p90))])
        }
        let flags = reportFlags(for: profile)
        return JSON.object([
            ("format", .string("loadprobe-calibrate/1")), ("directory", .string(directory)),
            ("filesystem", filesystem.map(JSON.string) ?? .null), ("concurrency", .int(Int64(concurrency))),
            ("probeDirectories", .int(Int64(probeDirectories))),
            ("miss", series(miss)), ("missAlone", series(missAlone)), ("hit", series(hit)),
            ("open", series(opens)), ("load", series(loads)), ("readlink", series(readlink)),
            ("profile", .string(profile.name)), ("latency", .string(flags[1])),
            ("openOverheadSeconds", openOverhead(for: profile).map(JSON.double) ?? .null),
            ("flags", .array(flags.map(JSON.string))),
        ]).serialized(pretty: false)
    }

    public func text(profile: FileSystemProfile) -> String {
        func us(_ s: Series) -> [String] {
            s.samples.isEmpty ? ["—", "—", "—"] : [s.median, s.p10, s.p90].map { String(Int(($0 * 1e6).rounded())) }
        }
        var t = TextTable(header: ["call", "calls", "median µs", "p10 µs", "p90 µs"], rightAligned: [1, 2, 3, 4])
        let rows = [("lookup of a missing name", miss), ("first lookup of an entry", hit), ("first readlink", readlink),
                    ("first open of a file", opens), ("first load (open, read, fstat, close)", loads),
                    ("lookup of a missing name, between loads", missAlone)]
        for (label, s) in rows {
            t.rows.append([label, String(s.samples.count)] + us(s))
        }
        let why = profile.roundTrip == 0 ? ""
            : concurrency > 1 ? "  (measured under load: the whole time per operation)"
            : "  (the profile adds its own \(Int(profile.roundTrip * 1e6)) µs round trip)"
        let lines = ["\(directory) (\(filesystem ?? "file system unknown")), \(concurrency) at once"
                        + (concurrency > 1 ? " in \(probeDirectories) directories:" : ":")]
            + t.render(style: TextStyle(color: false))
            + ["predict with: --fs \(profile.name) \(reportFlags(for: profile).joined(separator: " "))" + why]
        return lines.joined(separator: "\n") + "\n"
    }
}
