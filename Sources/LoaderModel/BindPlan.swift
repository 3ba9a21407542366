import TraceFormat

/// Spack's `shared_linking: bind`: every DT_NEEDED entry that resolves to a
/// library found through an RPATH/RUNPATH becomes that absolute path — the
/// entries that search found, and those that matched such a library already
/// loaded (a name that is not the library's soname would otherwise be searched
/// again once the first request is a path); names found through ld.so.cache or
/// the default directories (system libraries) stay, and so do the search
/// paths. The scenario (`WorldTransform.bind`) and `record --what-if bind` both
/// come from this plan.
public struct BindPlan: Sendable {
    /// (the object whose DT_NEEDED it is, as the load names it; the name; the path), in load order.
    public var rewrites: [(object: String, name: String, path: String)]

    public init(load: LoadResult) {
        var out: [(object: String, name: String, path: String)] = []
        var seen = Set<String>()
        var dlopenGroups = Set<Int>()
        // How each library was found when it was mapped.
        var foundThrough: [String: LookupOrigin] = [:]
        for o in load.objects where o.loadedNewObject { if let p = o.path, let origin = o.origin { foundThrough[p] = foundThrough[p] ?? origin } }
        for o in load.objects {
            // The name a dlopen asks for (its group's first lookup) is in no DT_NEEDED.
            if o.group > 0 && dlopenGroups.insert(o.group).inserted { continue }
            guard o.failure == nil, let path = o.path, !o.needed.contains("/") else { continue }
            let via = o.origin == .loaded ? foundThrough[path] : o.origin
            guard via == .rpath || via == .runpath, seen.insert(o.neededBy + "\u{0}" + o.needed).inserted else { continue }
            out.append((o.neededBy, o.needed, path))
        }
        rewrites = out
    }
}
