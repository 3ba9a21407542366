import Report
import TraceFormat
import Tracer
#if canImport(Glibc)
import Glibc
#endif

/// `record --what-if SCENARIO --from TRACE [--lift-dlopen]`: the map the audit
/// library answers the program's searches from, made before anything runs
/// from the start-up recorded in TRACE (the same baseline and plan as the
/// report's prediction and `loadprobe fix`).
enum WhatIfSetup {
    /// Why the what-if cannot be made: one line, and loadprobe's exit status.
    struct Refusal: Error {
        var line: String
        var status: Int32
    }

    /// Checks the options' combination (usage errors: status 64).
    static func checkOptions(_ how: RecordInvocation) throws(Refusal) {
        guard let scenario = how.whatIf else {
            if how.whatIfFrom != nil || how.liftDlopen {
                throw Refusal(line: "loadprobe: --from and --lift-dlopen go with --what-if SCENARIO (see 'loadprobe --help')", status: 64)
            }
            return
        }
        guard let s = WhatIfMap.Scenario(rawValue: scenario) else {
            let names = WhatIfMap.Scenario.allCases.map(\.rawValue).joined(separator: ", ")
            throw Refusal(line: "loadprobe: --what-if takes one of \(names), not '\(scenario)' (see 'loadprobe --help')", status: 64)
        }
        if how.whatIfFrom == nil {
            throw Refusal(line: "loadprobe: --what-if needs --from TRACE, a trace of the unchanged program (see 'loadprobe --help')", status: 64)
        }
        if how.liftDlopen && s != .shrinkwrap {
            throw Refusal(line: "loadprobe: --lift-dlopen goes with --what-if shrinkwrap only (see 'loadprobe --help')", status: 64)
        }
        if how.mode == .ptraceOnly {
            throw Refusal(line: "loadprobe: --what-if answers the program's searches through the audit library, which --no-audit turns off; use one or the other (see 'loadprobe --help')", status: 64)
        }
    }

    /// The request for the recorder: the baseline of the command's program in
    /// the trace, the map, and the metadata saying what was tried.
    static func request(_ how: RecordInvocation) throws(Refusal) -> WhatIfRequest? {
        guard let name = how.whatIf, let scenario = WhatIfMap.Scenario(rawValue: name), let trace = how.whatIfFrom else { return nil }
        let program = try resolveProgram(how)
        let baseline: FixBaseline
        do throws(FixError) {
            baseline = try FixBaseline.fromTrace(trace, program: program)
        } catch {
            let text = error.description
            throw Refusal(line: text.hasPrefix("loadprobe: ") ? text : "loadprobe: " + text, status: 1)
        }
        let names = unique([basename(baseline.load.program.path), basename(how.command.first ?? "")])
        let map = WhatIfMap(scenario: scenario, baseline: baseline.load, input: baseline.input, liftDlopen: how.liftDlopen, programNames: names)
        let paths = unique(map.entries.map(\.path))
        // A library the earlier run loaded and that is gone: the program would not start, fixed or not.
        if let gone = paths.first(where: { access($0, F_OK) != 0 }) {
            throw Refusal(line: "loadprobe: \(gone), which the run recorded in \(trace) loaded, is not there any more: record the program again", status: 1)
        }
        let description = "\(scenario.rawValue) from \(trace)" + (how.liftDlopen ? " (lifted dlopens)" : "")
        return WhatIfRequest(map: map.encoded(), description: description, entries: map.entries.count, paths: paths)
    }

    /// The program the recorder will execute, found as it finds it (a PATH
    /// search, or the path as given for the SPANK plugin; a text file without
    /// "#!" runs under /bin/sh).
    static func resolveProgram(_ how: RecordInvocation) throws(Refusal) -> String {
        let nameBytes = RecordInvocation.launchedCommand?.first ?? Array((how.command.first ?? "").utf8)
        var bytes = nameBytes
        if !RecordInvocation.executeAsGiven {
            do throws(LaunchError) {
                bytes = try CommandLookup.resolve(bytes: nameBytes, path: getenv("PATH").map { Array(UnsafeRawBufferPointer(start: $0, count: strlen($0))) })
            } catch {
                throw Refusal(line: error.description, status: error.exitStatus)
            }
        }
        if ProgramKind.inspect(bytes: bytes).isPlainText { return "/bin/sh" }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func basename(_ path: String) -> String {
        path.split(separator: "/", omittingEmptySubsequences: true).last.map(String.init) ?? ""
    }

    static func unique(_ list: [String]) -> [String] {
        var seen = Set<String>()
        return list.filter { !$0.isEmpty && seen.insert($0).inserted }
    }
}
