import TraceFormat

/// Spack's `shared_linking: bind`: every DT_NEEDED entry that an object's
/// RPATH/RUNPATH resolved becomes the absolute path it resolved to; names
/// found through ld.so.cache or the default directories (system libraries)
/// stay, and so do the search paths. The scenario (`WorldTransform.bind`) and
/// `record --what-if bind` both come from this plan.
public struct BindPlan: Sendable {
    /// (the object whose DT_NEEDED it is, as the load names it; the name; the path), in load order.
    public var rewrites: [(object: String, name: String, path: String)]

    public init(load: LoadResult) {
        var out: [(object: String, name: String, path: String)] = []
        var seen = Set<String>()
        var dlopenGroups = Set<Int>()
        for o in load.objects {
            // The name a dlopen asks for (its group's first lookup) is in no DT_NEEDED.
            if o.group > 0 && dlopenGroups.insert(o.group).inserted { continue }
            guard o.failure == nil, o.origin == .rpath || o.origin == .runpath, let path = o.path,
                  !o.needed.contains("/"), seen.insert(o.neededBy + "\u{0}" + o.needed).inserted else { continue }
            out.append((o.neededBy, o.needed, path))
        }
        rewrites = out
    }
}
