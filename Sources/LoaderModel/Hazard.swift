/// Something fragile in a program's set-up: it works today (or fails) for a reason
/// that a change elsewhere can break. Each has a one-line explanation and the
/// objects involved (paths).
public struct Hazard: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// An object whose own search would fail; it works only because another
        /// object loaded the soname first (the paper's dbwrap_tool, section III-A).
        case latentMissing = "latent-missing"
        /// RPATH not used: the object has RUNPATH too, or a RUNPATH object's
        /// dependency misses its loaders' RPATH (the ROCm case, section V-B).
        case rpathIgnored = "rpath-ignored"
        /// LD_LIBRARY_PATH supplies a different file than the object's own paths would.
        case ldLibraryPathOverride = "ld-library-path-override"
        /// One name in several search directories with different contents.
        case shadowedSoname = "shadowed-soname"
        /// Two directories each holding different copies of the same two libraries:
        /// no order of a search path takes one from each (the paper's Figure 4).
        case unsatisfiableOrder = "unsatisfiable-order"
        /// Two loaded objects define the same strong symbols; load order picks the winner.
        case symbolConflict = "symbol-conflict"
        case missingLibrary = "missing-library"
        case missingInterpreter = "missing-interpreter"
        /// A required symbol version the providing library does not define.
        case symbolVersion = "symbol-version"
        /// Rewriting DT_NEEDED to absolute paths (Shrinkwrap) would change behaviour.
        case shrinkwrapUnsafe = "shrinkwrap-unsafe"
    }

    public var kind: Kind
    public var message: String
    public var objects: [String]
    /// Worth knowing, not fragile (a shadowed soname only a default directory
    /// holds, behind an explicit RPATH/RUNPATH hit).
    public var isNote: Bool

    public init(kind: Kind, message: String, objects: [String], isNote: Bool = false) {
        self.kind = kind
        self.message = message
        self.objects = objects
        self.isNote = isNote
    }
}

extension Hazard.Kind {
    /// Worst first: what stops the start-up, then what changes which file loads, then the rest.
    public var rank: Int {
        switch self {
        case .missingInterpreter: 0
        case .missingLibrary: 1
        case .symbolVersion: 2
        case .ldLibraryPathOverride: 3
        case .rpathIgnored: 4
        case .latentMissing: 5
        case .unsatisfiableOrder: 6
        case .symbolConflict: 7
        case .shadowedSoname: 8
        case .shrinkwrapUnsafe: 9
        }
    }
}

extension Array where Element == Hazard {
    /// The hazards (or notes) grouped by kind, worst kind first, each group in finding order.
    public func groupedByKind() -> [(kind: Hazard.Kind, items: [Hazard])] {
        var groups: [Hazard.Kind: [Hazard]] = [:]
        for h in self { groups[h.kind, default: []].append(h) }
        return groups.sorted { $0.key.rank < $1.key.rank }.map { ($0.key, $0.value) }
    }
}
