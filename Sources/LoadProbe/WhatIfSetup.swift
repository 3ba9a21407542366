import Report
import LoaderModel
import CAudit
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
            if how.whatIfFrom != nil || how.liftDlopen || how.viewDir != nil {
                throw Refusal(line: "loadprobe: --from, --lift-dlopen and --view-dir go with --what-if SCENARIO (see 'loadprobe --help')", status: 64)
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
        if let dir = how.viewDir, s != .view || dir.isEmpty {
            throw Refusal(line: "loadprobe: --view-dir goes with --what-if view only, and names a directory (see 'loadprobe --help')", status: 64)
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
        try checkEnvironment(baseline, trace: trace)
        // The map answers for the program as recorded: a rebuilt one would be answered with the old one's libraries.
        if let elf = try? HostFileSystem().readELF(program), baseline.programChanged(elf) {
            throw Refusal(line: "loadprobe: \(program) has changed since \(trace) was recorded (its DT_NEEDED or search path differ): record it again", status: 1)
        }
        if let kind = FixKind(rawValue: scenario.rawValue) {
            for r in FixSafety.refusals(kind, program: program, baseline: baseline, liftDlopen: how.liftDlopen) {
                printError("loadprobe: note: `fix \(kind.rawValue)` would refuse: \(r); the what-if goes on")
            }
        }
        // The program as the kernel will be given it (AT_EXECFN), and as recorded: another program of the
        // same file name (a child) is not answered.
        let names = unique([program, baseline.load.program.path, realPath(program), realPath(baseline.load.program.path)])
        // The view's place as `fix view --view-dir` makes it: absolute, from this directory.
        let viewDirectory = how.viewDir.map { Fixer.absolute($0) }
        if let dir = viewDirectory { try checkViewDirectory(dir) }
        let map = WhatIfMap(scenario: scenario, baseline: baseline.load, input: baseline.input, viewDirectory: viewDirectory,
                            liftDlopen: how.liftDlopen, programNames: names)
        if let problem = map.problem {
            throw Refusal(line: "loadprobe: --what-if \(scenario.rawValue): \(problem)", status: 1)
        }
        let bytes = map.encoded()
        if map.entries.count > Int(LP_WHATIF_MAX_ENTRIES) || bytes.count > Int(LP_WHATIF_MAX_BYTES) || names.count > Int(LP_WHATIF_MAX_NAMES)
            || names.contains(where: { $0.utf8.count >= Int(LP_PATH_MAX_WHATIF) }) {
            throw Refusal(line: "loadprobe: --what-if \(scenario.rawValue): the map (\(map.entries.count) entries, \(bytes.count) bytes) is "
                          + "beyond what the audit library reads (\(LP_WHATIF_MAX_ENTRIES) entries, \(LP_WHATIF_MAX_BYTES) bytes)", status: 1)
        }
        let paths = unique(map.entries.map(\.path))
        // A library the earlier run loaded and that is gone: the program would not start, fixed or not.
        if let gone = paths.first(where: { access($0, F_OK) != 0 }) {
            throw Refusal(line: "loadprobe: \(gone), which the run recorded in \(trace) loaded, is not there any more: record the program again", status: 1)
        }
        let description = "\(scenario.rawValue) from \(trace)" + (how.liftDlopen ? " (lifted dlopens)" : "")
            + (scenario == .view ? " (view directory \(map.viewDirectory ?? "?"))" : "")
        return WhatIfRequest(map: bytes, description: description, entries: map.entries.count, paths: paths,
                             scenario: scenario.rawValue, liftDlopen: how.liftDlopen, viewDirectory: map.viewDirectory)
    }

    /// Where `fix view --view-dir` could make the view: a new directory in an
    /// existing one, an empty directory, or a view loadprobe made (which the
    /// what-if leaves as it is).
    static func checkViewDirectory(_ dir: String) throws(Refusal) {
        func refuse(_ why: String) -> Refusal { Refusal(line: "loadprobe: --view-dir \(dir): \(why)", status: 1) }
        if dir == "/" { throw refuse("the view needs a directory of its own") }
        let state: FixFiles.DirectoryState
        do throws(FixError) { state = try FixFiles.directoryState(dir) } catch { throw refuse(error.description) }
        switch state {
        case .none:
            var st = stat()
            let parent = LoaderPath.directory(dir)
            guard stat(parent, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else {
                throw refuse("\(parent) is not a directory: 'fix view' could not make the view there")
            }
        case .notDirectory:
            throw refuse("exists and is not a directory (a symlink is not followed): give where 'fix view' would make the view (a new or empty directory, or a view it made)")
        case .other:
            throw refuse("not empty, and not a view made by 'loadprobe fix view': 'fix view' would not make the view there")
        case .empty, .view:
            break
        }
    }

    /// The program the recorder will execute, found as it finds it (a PATH
    /// search, or the path as given for the SPANK plugin; a text file without
    /// "#!" runs under /bin/sh).
    static func resolveProgram(_ how: RecordInvocation) throws(Refusal) -> String {
        let bytes = try commandPath(how)
        if ProgramKind.inspect(bytes: bytes).isPlainText { return "/bin/sh" }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The command's file: the PATH search the recorder makes, or the path as given for the SPANK plugin.
    static func commandPath(_ how: RecordInvocation) throws(Refusal) -> [UInt8] {
        let nameBytes = RecordInvocation.launchedCommand?.first ?? Array((how.command.first ?? "").utf8)
        guard !RecordInvocation.executeAsGiven else { return nameBytes }
        do throws(LaunchError) {
            return try CommandLookup.resolve(bytes: nameBytes, path: getenv("PATH").map { Array(UnsafeRawBufferPointer(start: $0, count: strlen($0))) })
        } catch {
            throw Refusal(line: error.description, status: error.exitStatus)
        }
    }

    /// A trace file named without a pattern must not be the program being
    /// recorded, nor the trace a what-if answers from.
    static func checkOutput(_ how: RecordInvocation) throws(Refusal) {
        let out = how.output
        guard !out.contains("%") else { return }
        var a = stat(), b = stat()
        guard stat(out, &a) == 0 else { return }
        func same(_ other: String) -> Bool { stat(other, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino }
        if let from = how.whatIfFrom, same(from) {
            throw Refusal(line: "loadprobe: -o \(out) is the trace given with --from: the what-if would replace it", status: 64)
        }
        if !RecordInvocation.executeAsGiven, let program = try? commandPath(how), same(String(decoding: program, as: UTF8.self)) {
            throw Refusal(line: "loadprobe: -o \(out) is the program to record: the trace would replace it", status: 64)
        }
    }

    /// A what-if answers from the trace's resolution: in another LD_LIBRARY_PATH
    /// or LD_PRELOAD the unchanged program would load other files, and the
    /// comparison would not hold.
    static func checkEnvironment(_ baseline: FixBaseline, trace: String) throws(Refusal) {
        let now = LoaderEnvironment.current()
        for (name, then, here) in [("LD_LIBRARY_PATH", baseline.environment.ldLibraryPath, now.ldLibraryPath),
                                   ("LD_PRELOAD", baseline.environment.ldPreload, now.ldPreload)] where (then ?? "") != (here ?? "") {
            throw Refusal(line: "loadprobe: \(trace) was recorded with \(name)=\(then ?? "(unset)"), this run has \(name)=\(here ?? "(unset)"): "
                          + "a what-if answers from the recorded resolution; run it in the same environment", status: 1)
        }
    }

    static func realPath(_ path: String) -> String { HostFileSystem().realPath(path) ?? path }

    static func basename(_ path: String) -> String {
        path.split(separator: "/", omittingEmptySubsequences: true).last.map(String.init) ?? ""
    }

    static func unique(_ list: [String]) -> [String] {
        var seen = Set<String>()
        return list.filter { !$0.isEmpty && seen.insert($0).inserted }
    }
}
