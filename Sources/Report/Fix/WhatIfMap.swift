import LoaderModel
import TraceFormat

/// What `record --what-if` gives the audit library: for each library search
/// the fixed program would not make, the path the fix gives it. The audit
/// library answers la_objsearch's first call of such a search (LA_SER_ORIG)
/// with that path, so ld.so opens it at once, as the fixed program would
/// (docs/fix.md). Made from the same baseline and plan as the prediction and
/// `loadprobe fix`.
public struct WhatIfMap: Sendable {
    public enum Scenario: String, Sendable, CaseIterable {
        case shrinkwrap, bind, view
    }

    public struct Entry: Sendable, Hashable {
        /// The object asking, as ld.so names it (l_name: "" for the program);
        /// nil: any object.
        public var requester: String?
        public var name: String
        public var path: String
    }

    public var scenario: Scenario
    public var entries: [Entry]
    /// The programs (by file name) whose start-up is answered: the recorded
    /// image's, and the command's.
    public var programNames: [String]
    /// Why the scenario cannot be tried (its simulated world does not start).
    public var problem: String?

    /// `input` (the baseline's simulation input) and `viewDirectory` are what
    /// the view needs: its world is simulated to see which searches it changes.
    public init(scenario: Scenario, baseline: LoadResult, input: SimulationInput? = nil, viewDirectory: String? = nil,
                liftDlopen: Bool = false, programNames: [String]) {
        self.scenario = scenario
        self.programNames = programNames
        var problem: String? = nil
        let program = baseline.program.path
        var out: [Entry] = []
        var seen = Set<Entry>()
        // ld.so opens a path found through a relative RPATH entry relative to the working directory;
        // the audit library answers with absolute paths only.
        let wd = baseline.environment.workingDirectory
        func absolute(_ found: String) -> String { found.hasPrefix("/") ? found : LoaderPath.join(wd, found) }
        func add(_ requester: String?, _ name: String, _ found: String) {
            let path = absolute(found)
            // An object answered with an absolute path is named by it when it asks in turn.
            let asker = requester.map { $0.isEmpty || $0.hasPrefix("/") ? $0 : LoaderPath.join(wd, $0) }
            let e = Entry(requester: asker, name: name, path: path)
            if seen.insert(e).inserted { out.append(e) }
        }
        func requester(_ neededBy: String) -> String { neededBy == program ? "" : neededBy }
        switch scenario {
        case .shrinkwrap:
            // Every library the fixed program lists: its first request, from any object, goes straight to the file.
            let plan = ShrinkwrapPlan(load: baseline, liftDlopen: liftDlopen)
            // ld.so itself is always there: a request for it matches by name, never reaches the audit library.
            let closure = Set(plan.closurePaths).subtracting(baseline.loaded.filter { $0.role == .interpreter }.map(\.path))
            var named = Set<String>()
            for o in baseline.objects where o.failure == nil && !o.needed.contains("/") {
                // The plan's paths are absolute; the load's are as ld.so opened them (relative RPATH entries).
                guard let path = o.path, closure.contains(absolute(path)), o.neededBy != LoadResult.preloadRequester,
                      named.insert(o.needed).inserted else { continue }
                add(nil, o.needed, path)
            }
        case .bind:
            for r in BindPlan(load: baseline).rewrites { add(requester(r.object), r.name, r.path) }
        case .view:
            // The view world simulated: every search that goes through the view directory (the program's own,
            // and with an RPATH-only program its libraries', which inherit it) is answered with the file it ends at.
            guard let input else { break }
            let dir = viewDirectory ?? WorldTransform.defaultViewDirectory(input: input, baseline: baseline)
            let transformed = WorldTransform.view(directory: dir).apply(to: input, baseline: baseline)
            guard let result = transformed.run() else { break }
            if let failure = result.failure {
                problem = "the program would not start with the view (\(failure.message))"
                break
            }
            let prefix = LoaderWorld.trimmedPath(dir) + "/"
            // An object loaded through the view is named by its link there; under the what-if it is the
            // link's target that loads, and that is the name its own requests come with.
            func target(_ path: String) -> String { path.hasPrefix(prefix) ? transformed.world.symlinks[path] ?? path : path }
            for o in result.objects where o.failure == nil && !o.needed.contains("/") {
                guard let path = o.path, o.attempts.contains(where: { $0.path.hasPrefix(prefix) }) else { continue }
                add(o.neededBy == program ? "" : target(o.neededBy), o.needed, target(path))
            }
        }
        entries = out
        self.problem = problem
    }

    /// The file the audit library reads (audit-lib/README.md, "what-if"):
    /// "LPWHATIF1\0", the program names each ending in NUL, an empty name,
    /// then per entry requester, name and path each ending in NUL ("*" as
    /// the requester: any object).
    public func encoded() -> [UInt8] {
        var bytes = Array("LPWHATIF1".utf8) + [0]
        for n in programNames where !n.isEmpty { bytes += Array(n.utf8) + [0] }
        bytes.append(0)
        for e in entries {
            bytes += Array((e.requester ?? "*").utf8) + [0]
            bytes += Array(e.name.utf8) + [0]
            bytes += Array(e.path.utf8) + [0]
        }
        return bytes
    }
}
