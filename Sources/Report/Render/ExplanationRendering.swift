import LoaderModel
#if canImport(Glibc)
import Glibc
#endif

/// `loadprobe explain` as text: a dependency tree like libtree's, each object with
/// how it was found, then the predicted system calls and the hazards.
public enum ExplanationText {
    public static func render(_ explanation: Explanation, verbose: Bool = false, allHazards: Bool = false) -> String {
        let load = explanation.load
        var out = "\(load.program.path)  (\(load.flavor)"
        if load.program.isDynamic { out += ", interpreter \(load.interpreter)" }
        out += ")\n"
        for note in explanation.notes { out += "  note: \(note)\n" }

        var children: [String: [ResolvedObject]] = [:]
        for object in load.objects { children[object.neededBy, default: []].append(object) }
        func line(_ object: ResolvedObject) -> String {
            var text = object.needed
            if let path = object.path, path != object.needed { text += " => \(path)" }
            if object.path == nil { text += " => not found" }
            var how: [String] = []
            if let origin = object.origin {
                switch origin {
                case .rpath, .runpath: how.append("\(origin.rawValue) of \(object.originObject ?? "?")")
                case .cache: how.append("ld.so.cache")
                case .defaultPath: how.append(load.flavor == .musl ? "system path" : "default path")
                default: how.append(origin.rawValue)
                }
            }
            if object.origin != .loaded {
                how.append("\(object.tries) tr\(object.tries == 1 ? "y" : "ies")")
                let cost = object.cost
                how.append("\(cost.openat) openat, \(cost.stat) stat")
            }
            if let failure = object.failure { how.append(failure) }
            return text + "  [" + how.joined(separator: ", ") + "]"
        }
        func candidates(_ object: ResolvedObject, prefix: String) -> String {
            guard verbose || object.path == nil else { return "" }
            var text = ""
            for attempt in object.attempts {
                text += prefix + "    · \(attempt.path): \(ExplanationJSON.outcomeName(attempt.outcome))"
                if attempt.cost.total > 0 { text += " (\(attempt.cost.openat) openat, \(attempt.cost.stat) stat)" }
                text += "\n"
            }
            return text
        }
        func walk(_ parent: String, prefix: String) {
            let list = children[parent] ?? []
            for (i, object) in list.enumerated() {
                let last = i == list.count - 1
                out += prefix + (last ? "└─ " : "├─ ") + line(object) + "\n"
                let childPrefix = prefix + (last ? "   " : "│  ")
                out += candidates(object, prefix: childPrefix)
                if object.loadedNewObject, let path = object.path { walk(path, prefix: childPrefix) }
            }
        }
        if let preloads = children["LD_PRELOAD"], !preloads.isEmpty {
            out += "LD_PRELOAD:\n"
            walk("LD_PRELOAD", prefix: "")
        }
        walk(load.program.path, prefix: "")

        let p = load.predicted
        out += "\npredicted start-up: \(p.openat) openat, \(p.stat) stat"
        out += " (\(p.statPath) directory stat, \(p.fstat) fstat)"
        if load.total != p { out += "; the full search past the failure: \(load.total.openat) openat, \(load.total.stat) stat" }
        out += "\n"
        if let profile = load.glibcProfile {
            out += "search subdirectories: \(profile.capabilitySubdirectories.map { $0.isEmpty ? "." : $0 }.joined(separator: " "))\n"
        }
        if let failure = explanation.failure { out += "start-up fails: \(failure.message)\n" }
        let hazards = explanation.hazards.filter { !$0.isNote }, notes = explanation.hazards.filter(\.isNote)
        if hazards.isEmpty {
            out += "hazards: none found\n"
        } else {
            out += section("hazards", hazards, shown: allHazards ? .max : 3)
        }
        if !notes.isEmpty { out += section("notes", notes, shown: allHazards ? .max : 1) }
        return out
    }

    /// "hazards (N): kind ×n, …", then each kind's first few, worst kind first.
    static func section(_ title: String, _ items: [Hazard], shown: Int) -> String {
        let groups = items.groupedByKind()
        var out = "\(title) (\(items.count)): " + groups.map { "\($0.kind.rawValue) ×\($0.items.count)" }.joined(separator: ", ") + "\n"
        for g in groups {
            for h in g.items.prefix(shown) { out += "  \(g.kind.rawValue): \(h.message)\n" }
            if g.items.count > shown { out += "  \(g.kind.rawValue): … and \(g.items.count - shown) more (--all-hazards lists them)\n" }
        }
        return out
    }
}

/// `loadprobe explain --json`: format "loadprobe-explain/1", documented in docs/explain.md.
public enum ExplanationJSON {
    public static let format = "loadprobe-explain/1"

    public static func render(_ explanation: Explanation, includeCandidates: Bool = false) -> String {
        document(explanation, includeCandidates: includeCandidates).serialized()
    }

    public static func document(_ explanation: Explanation, includeCandidates: Bool = false) -> JSON {
        let load = explanation.load
        func string(_ s: String?) -> JSON { s.map { .string($0) } ?? .null }
        func counts(_ c: SyscallCounts) -> JSON {
            .object([("openat", .int(Int64(c.openat))), ("stat", .int(Int64(c.stat))),
                     ("statPath", .int(Int64(c.statPath))), ("fstat", .int(Int64(c.fstat)))])
        }
        var loader: [(String, JSON)] = []
        switch load.flavor {
        case .glibc(let version):
            loader.append(("flavor", .string("glibc")))
            loader.append(("version", .string(version.description)))
        case .musl:
            loader.append(("flavor", .string("musl")))
            loader.append(("version", .null))
        }
        loader.append(("interpreter", .string(load.interpreter)))
        if let profile = load.glibcProfile {
            loader.append(("subdirectories", .array(profile.capabilitySubdirectories.map { .string($0) })))
            loader.append(("platform", string(profile.platform)))
            loader.append(("lib", .string(profile.libToken)))
            loader.append(("defaultDirectories", .array(profile.systemDirectories.map { .string($0) })))
        }
        let objects: [JSON] = load.objects.map { object in
            var fields: [(String, JSON)] = [
                ("needed", .string(object.needed)),
                ("neededBy", .string(object.neededBy)),
                ("path", string(object.path)),
                ("origin", string(object.origin?.rawValue)),
                ("originObject", string(object.originObject)),
                ("tries", .int(Int64(object.tries))),
                ("depth", .int(Int64(object.depth))),
                ("soname", string(object.soname)),
                ("newlyLoaded", .bool(object.loadedNewObject)),
                ("openat", .int(Int64(object.cost.openat))),
                ("stat", .int(Int64(object.cost.stat))),
                ("failure", string(object.failure)),
            ]
            if includeCandidates || object.path == nil {
                fields.append(("candidates", .array(object.attempts.map(candidate))))
            }
            return .object(fields)
        }
        var startup: [(String, JSON)] = [("fails", .bool(explanation.failure != nil))]
        if let failure = explanation.failure {
            startup.append(("kind", .string(failure.kind.rawValue)))
            startup.append(("object", .string(failure.object)))
            startup.append(("message", .string(failure.message)))
        }
        return .object([
            ("format", .string(format)),
            ("program", .string(load.program.path)),
            ("loader", .object(loader)),
            ("environment", .object([("LD_LIBRARY_PATH", string(load.environment.ldLibraryPath)),
                                     ("LD_PRELOAD", string(load.environment.ldPreload))])),
            ("objects", .array(objects)),
            ("predicted", counts(load.predicted)),
            ("total", counts(load.total)),
            ("startup", .object(startup)),
            ("hazards", .array(explanation.hazards.sorted { $0.kind.rank < $1.kind.rank }.map { hazard in
                .object([("kind", .string(hazard.kind.rawValue)), ("severity", .string(hazard.isNote ? "note" : "hazard")),
                         ("message", .string(hazard.message)), ("objects", .array(hazard.objects.map { .string($0) }))])
            })),
            ("hazardCounts", .object(explanation.hazards.groupedByKind().map { g in
                (g.kind.rawValue, .object([("hazards", .int(Int64(g.items.filter { !$0.isNote }.count))),
                                           ("notes", .int(Int64(g.items.filter(\.isNote).count)))]))
            })),
            ("notes", .array(explanation.notes.map { .string($0) })),
        ])
    }

    static func candidate(_ attempt: SearchAttempt) -> JSON {
        var fields: [(String, JSON)] = [
            ("path", .string(attempt.path)),
            ("origin", .string(attempt.origin.rawValue)),
            ("originObject", attempt.originObject.map { .string($0) } ?? .null),
            ("result", .string(outcomeName(attempt.outcome))),
        ]
        switch attempt.outcome {
        case .missing(let e): fields.append(("errno", .string(errnoName(e))))
        case .rejected(let reason): fields.append(("reason", .string(reason)))
        case .sameFileAsLoaded(let path): fields.append(("loadedAs", .string(path)))
        default: break
        }
        fields.append(("openat", .int(Int64(attempt.cost.openat))))
        fields.append(("stat", .int(Int64(attempt.cost.stat))))
        return .object(fields)
    }

    public static func outcomeName(_ outcome: SearchAttempt.Outcome) -> String {
        switch outcome {
        case .found: "found"
        case .sameFileAsLoaded: "same-file-as-loaded"
        case .missing(let e): "missing (\(errnoName(e)))"
        case .wrongClass: "wrong-class"
        case .wrongMachine: "wrong-machine"
        case .rejected(let reason): "rejected (\(reason))"
        case .skippedMissingDirectory: "skipped-missing-directory"
        case .readCache: "read-cache"
        case .notInCache: "not-in-cache"
        case .cacheEntryIgnoredByNodeflib: "cache-entry-ignored-nodeflib"
        case .readPathFile(let found): found ? "read-path-file" : "no-path-file"
        }
    }

    static func errnoName(_ e: Int32) -> String {
        switch e {
        case ENOENT: "ENOENT"
        case ENOTDIR: "ENOTDIR"
        case EACCES: "EACCES"
        case ELOOP: "ELOOP"
        case ENAMETOOLONG: "ENAMETOOLONG"
        case EISDIR: "EISDIR"
        default: "errno \(e)"
        }
    }
}
