import TraceFormat

/// A `record --what-if` trace: which fix was tried, from which trace, and
/// how many of the program's library searches the audit library answered
/// from it (audit-lib/README.md, "What-if").
///
/// Counted in the program's first image (the root process's image of the
/// recorded program; forked children and other programs are not answered):
/// a search is answered when ld.so was asked for one of the paths the map
/// answers with (the audit library records the answer, as the fixed program
/// would ask for it), and ran normally when it was asked for a bare name.
public struct WhatIfSummary: Sendable, Equatable {
    /// "SCENARIO from TRACE", as the recording wrote it.
    public var description: String
    /// Entries the audit library was given.
    public var entries: Int?
    public var answered: Int
    public var ranNormally: Int
    /// The image the searches were counted in ("" when none was audited).
    public var image: String

    /// nil for a trace that is not a what-if recording.
    public init?(_ analysis: TraceAnalysis) {
        let trace = analysis.trace
        guard let description = trace.meta(.whatIf) else { return nil }
        self.description = description
        entries = trace.meta(.whatIfEntries).flatMap { Int($0) }
        let root = WhatIfSummary.answeredProcess(analysis)
        image = root?.image ?? ""
        let paths = Set(trace.metaAll(.whatIfPath))
        answered = 0
        ranNormally = 0
        for s in root?.searches ?? [] {
            if !s.isAbsolute { ranNormally += 1 } else if paths.contains(s.name) { answered += 1 }
        }
    }

    /// The process whose image the map answered: the recorded program's
    /// (the root's), else the first audited one.
    static func answeredProcess(_ analysis: TraceAnalysis) -> ProcessAnalysis? {
        let audited = analysis.processes.filter(\.audited)
        return audited.first { $0.image == analysis.trace.meta(.program) } ?? audited.first
    }

    /// The scenario's name (the description's first word).
    public var scenario: String { String(description.prefix { $0 != " " }) }

    /// The line the report starts with.
    public var text: String {
        "what-if: \(description) — \(count(answered, "search", "searches")) answered from the earlier trace, "
            + "\(count(ranNormally, "search", "searches")) it did not cover ran normally"
    }

    /// What the run could not measure of the fix: a view's links are not
    /// there, so each library is opened where its link points (docs/fix.md).
    public var caveat: String? {
        guard scenario == "view" else { return nil }
        return "the view's links are not made by a what-if: each library was opened where its link would point, so the links' own "
            + "lookups (a lookup and a readlink each, on the view's file system) are not in this run; the report's view scenario "
            + "prices them, and the fixed program pays them"
    }

    /// What the report's fixes mean for such a trace.
    public static let fixesNote = "the fixes below are priced from the program's files, which a what-if leaves as they are; compare the what-if with the earlier trace: loadprobe diff EARLIER THIS"

    public var json: JSON {
        .object([
            ("scenario", .string(scenario)),
            ("description", .string(description)),
            ("entries", entries.map { .int(Int64($0)) } ?? .null),
            ("answered", .int(Int64(answered))),
            ("ranNormally", .int(Int64(ranNormally))),
            ("image", .string(image)),
            ("caveat", caveat.map { .string($0) } ?? .null),
        ])
    }

    private func count(_ n: Int, _ one: String, _ many: String) -> String { "\(n) \(n == 1 ? one : many)" }
}
