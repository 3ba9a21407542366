import LoaderModel
import TraceFormat

/// One candidate path ld.so tried for a name (one la_objsearch call after the
/// bare name), and what the tries cost.
public struct SearchCandidate: Sendable {
    public enum Outcome: String, Sendable {
        /// Opened and loaded (or matched an object already loaded).
        case hit
        /// The open failed.
        case miss
        /// Opened, then rejected (wrong ELF class or machine): the search went on.
        case skipped
        /// No open was seen (the process ended, or the audit record had no call).
        case untried
    }
    /// The directory part of the candidate path (search directory plus subdirectory).
    public var directoryPart: String
    /// The name tried (the file name of the candidate path).
    public var name: String
    /// The trace's string id of `directoryPart`: a cheap key for grouping.
    public var directoryPartId: UInt32
    /// The search directory it came from (the RPATH/RUNPATH/… entry), without the
    /// hwcaps or legacy subdirectory.
    public var directory: String
    /// A number per distinct `directory` within the trace, for cheap comparisons.
    public var directoryId: Int32
    /// "glibc-hwcaps/x86-64-v3", "tls/x86_64", … or "" for the directory itself.
    public var subdirectory: String
    /// nil for a flag that names no origin (a crafted trace).
    public var origin: LookupOrigin?
    public var outcome: Outcome
    /// Calls made for it (its open, the directory stat after a miss, the hit's fstat).
    public var calls: Int
    public var failedCalls: Int

    /// The report's name for the origin ("unknown" when the flag named none).
    public var originLabel: String { LookupOrigin.label(origin) }

    public var path: String { (directoryPart == "/" ? "" : directoryPart) + "/" + name }
}

/// One name ld.so looked for (la_objsearch with LA_SER_ORIG) and everything it tried.
public struct LibrarySearch: Sendable {
    public var name: String
    public var phase: Phase
    public var timeNs: UInt64
    public var candidates: [SearchCandidate] = []
    /// The path that served the name, when the search found one.
    public var found: String?
    public var foundOrigin: LookupOrigin?
    /// The directory of the hit (search directory, without subdirectory).
    public var foundDirectory: String?
    /// The report's name for where the name was found ("" when it was not).
    public var foundOriginLabel: String { found == nil ? "" : LookupOrigin.label(foundOrigin) }
    /// The first use of ld.so.cache (its open and read) happened inside this search.
    public var readCache = false
    /// Calls attributed to this search (candidates, directory stats, cache reads).
    public var calls = 0
    public var failedCalls = 0

    /// Candidate paths tried, the hit included (the unit of "tries before the hit").
    public var attempts: Int {
        var n = 0
        for i in candidates.indices where candidates[i].outcome != .untried { n += 1 }
        return n
    }
    /// Distinct search directories the search went through (LD_LIBRARY_PATH,
    /// RPATH/RUNPATH and default directories; ld.so.cache is not one).
    public var directoriesSearched: Int {
        // directoryId numbers the directories of one process from 0: a bitmap is enough.
        var seen: [UInt64] = []
        var count = 0
        for i in candidates.indices where candidates[i].origin != .cache {
            let d = Int(candidates[i].directoryId)
            let w = d >> 6
            if w >= seen.count { seen += [UInt64](repeating: 0, count: w + 1 - seen.count) }
            let bit: UInt64 = 1 << UInt64(d & 63)
            if seen[w] & bit == 0 { seen[w] |= bit; count += 1 }
        }
        return count
    }
    public var isAbsolute: Bool { name.contains("/") }
}
