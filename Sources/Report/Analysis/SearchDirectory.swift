import LoaderModel
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

    /// The same names as bytes, for `split`.
    static let legacyBytes: [[UInt8]] = legacyNames.map { Array($0.utf8) }
    static let hwcapsBytes = Array("glibc-hwcaps".utf8)

    /// (directory, subdirectory) of the directory part of a candidate path.
    /// Works on the bytes: split once per directory part of every trace read.
    static func split(_ dirPart: String) -> (directory: String, subdirectory: String) {
        var path = dirPart
        return path.withUTF8 { u -> (String, String) in
            // Component k spans starts[k] ..< (next start - 1), the last one to the end
            // (components as split(separator: "/", omittingEmptySubsequences: false) gives them).
            var starts: [Int] = [0]
            for i in 0..<u.count where u[i] == UInt8(ascii: "/") { starts.append(i + 1) }
            let count = starts.count
            func comp(_ k: Int) -> UnsafeBufferPointer<UInt8> {
                let end = k + 1 < count ? starts[k + 1] - 1 : u.count
                return UnsafeBufferPointer(rebasing: u[starts[k]..<end])
            }
            var keep = count
            if count >= 3, comp(count - 2).elementsEqual(hwcapsBytes) {
                keep = count - 2
            } else {
                while keep > 2, legacyBytes.contains(where: { $0.elementsEqual(comp(keep - 1)) }) { keep -= 1 }
            }
            if keep == count { return (dirPart, "") }
            let dir = String(decoding: UnsafeBufferPointer(rebasing: u[0..<(starts[keep] - 1)]), as: UTF8.self)
            let sub = String(decoding: UnsafeBufferPointer(rebasing: u[starts[keep]...]), as: UTF8.self)
            return (dir.isEmpty ? "/" : dir, sub)
        }
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
