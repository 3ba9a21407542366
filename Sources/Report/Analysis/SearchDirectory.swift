/// Splits a candidate path ld.so tried into the search directory it came from,
/// the capability subdirectory and the name.
///
/// glibc ≥ 2.33 tries `glibc-hwcaps/<level>/` first in every search directory;
/// glibc < 2.37 (Debian 12 has 2.36) then tries the legacy subdirectories built
/// from the platform and hardware-capability names (`tls/x86_64/x86_64/`,
/// `tls/x86_64/`, `tls/`, `x86_64/x86_64/`, `x86_64/`), some of them twice.
enum SearchDirectory {
    /// Names that make up glibc's legacy subdirectories (dl-hwcaps, dl-procinfo)
    /// on the architectures a trace is likely to come from.
    static let legacyNames: Set<Substring> = [
        "tls", "x86_64", "haswell", "xeon_phi", "avx512_1", "i386", "i486", "i586", "i686", "sse2",
        "aarch64", "ppc64le", "power8", "power9", "power10", "s390x", "z13", "z14", "z15", "z16",
        "z10", "z196", "zEC12", "atomics", "asimd",
    ]

    /// (directory, subdirectory) of the directory part of a candidate path.
    static func split(_ dirPart: String) -> (directory: String, subdirectory: String) {
        var parts = dirPart.split(separator: "/", omittingEmptySubsequences: false)
        var sub: [Substring] = []
        if parts.count >= 3, parts[parts.count - 2] == "glibc-hwcaps" {
            sub = [parts[parts.count - 2], parts[parts.count - 1]]
            parts.removeLast(2)
        } else {
            while parts.count > 2, let last = parts.last, legacyNames.contains(last) {
                sub.insert(last, at: 0)
                parts.removeLast()
            }
        }
        if sub.isEmpty { return (dirPart, "") }
        let dir = parts.joined(separator: "/")
        return (dir.isEmpty ? "/" : dir, sub.joined(separator: "/"))
    }

    static func dirname(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }

    static func basename(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }
}
