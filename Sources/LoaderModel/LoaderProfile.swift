#if canImport(Glibc)
import Glibc
#endif

/// A glibc release, "2.36". The version decides which search rules apply.
public struct GlibcVersion: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var major: Int
    public var minor: Int

    public init(_ major: Int, _ minor: Int) {
        self.major = major
        self.minor = minor
    }

    /// Parses "2.36", "2.36.1" or "2.36-9+deb12u4"; nil for anything else.
    public init?(string: String) {
        let numeric = string.prefix { $0.isNumber || $0 == "." }
        let parts = numeric.split(separator: ".").compactMap { Int($0) }
        guard parts.count >= 2 else { return nil }
        self.init(parts[0], parts[1])
    }

    public static func < (a: GlibcVersion, b: GlibcVersion) -> Bool {
        (a.major, a.minor) < (b.major, b.minor)
    }

    public var description: String { "\(major).\(minor)" }

    /// glibc-hwcaps subdirectories (glibc-hwcaps/x86-64-v3/ …) arrived in 2.33.
    public var searchesGlibcHwcaps: Bool { self >= GlibcVersion(2, 33) }
    /// The legacy tls/, platform and hwcap-bit subdirectories were removed in 2.37.
    public var searchesLegacyHwcaps: Bool { self < GlibcVersion(2, 37) }
    /// ld.so.cache entries with glibc-hwcaps extension data are used from 2.33.
    public var usesCacheHwcaps: Bool { self >= GlibcVersion(2, 33) }
}

/// The facts about one machine's glibc loader that decide where it looks: the
/// version, the CPU-dependent subdirectories, the values of $LIB and $PLATFORM,
/// the default directories and the cache file.
public struct GlibcProfile: Sendable, Hashable {
    public var version: GlibcVersion
    /// Active glibc-hwcaps subdirectory names, most preferred first ("x86-64-v3", "x86-64-v2").
    public var hwcapsSubdirectories: [String]
    /// Names of the legacy hwcap bits that are set and important, in bit order
    /// ("x86_64", then "avx512_1" when AVX-512 is usable on Intel).
    public var legacyHwcapNames: [String]
    /// The platform string: AT_PLATFORM ("x86_64"), or "haswell"/"xeon_phi" as glibc's
    /// x86 start-up code overrides it on Intel CPUs.
    public var platform: String?
    /// $LIB, e.g. "lib/x86_64-linux-gnu" on Debian, "lib64" on Fedora.
    public var libToken: String
    /// The default directories, each ending in "/", in search order.
    public var systemDirectories: [String]
    public var cachePath: String
    /// The interpreter this profile describes; ld.so also answers to its soname.
    public var interpreterPath: String
    public var interpreterSoname: String
    /// The ELF identity ld.so accepts.
    public var machine: Machine
    public var fileClass: ELFFile.FileClass

    public init(version: GlibcVersion, hwcapsSubdirectories: [String], legacyHwcapNames: [String],
                platform: String?, libToken: String, systemDirectories: [String],
                cachePath: String = "/etc/ld.so.cache",
                interpreterPath: String = "/lib64/ld-linux-x86-64.so.2",
                interpreterSoname: String = "ld-linux-x86-64.so.2",
                machine: Machine = .x86_64, fileClass: ELFFile.FileClass = .elf64) {
        self.version = version
        self.hwcapsSubdirectories = hwcapsSubdirectories
        self.legacyHwcapNames = legacyHwcapNames
        self.platform = platform
        self.libToken = libToken
        self.systemDirectories = systemDirectories
        self.cachePath = cachePath
        self.interpreterPath = interpreterPath
        self.interpreterSoname = interpreterSoname
        self.machine = machine
        self.fileClass = fileClass
    }

    /// The most glibc-hwcaps subdirectories, legacy hwcap names and default
    /// directories a profile taken from elsewhere (a trace's metadata) may
    /// have: every search directory is tried with every subdirectory. glibc on
    /// x86-64 has at most 3 and 2 (`CPUDescription`); other architectures a few more.
    public static let maxHwcapsSubdirectories = 8
    public static let maxLegacyHwcapNames = 4
    /// Default directories: 4 on Debian, 2 on Fedora (compiled into ld.so).
    public static let maxSystemDirectories = 16

    /// The subdirectories tried inside every search directory, in order, each
    /// ending in "/" except the last, which is the directory itself ("").
    ///
    /// glibc 2.33–2.36 build this in `_dl_important_hwcaps`: first the active
    /// glibc-hwcaps names, then the power set of {hwcap names…, platform, "tls"},
    /// largest subsets first; that is why "tls/x86_64/" appears twice on x86-64
    /// (platform "x86_64" and hwcap bit "x86_64" are different entries).
    public var capabilitySubdirectories: [String] {
        var result: [String] = []
        if version.searchesGlibcHwcaps {
            result += hwcapsSubdirectories.map { "glibc-hwcaps/\($0)/" }
        }
        guard version.searchesLegacyHwcaps else { return result + [""] }
        // (The power set of at most 16 parts: a profile made up with more names
        // than any glibc has must not overflow 1 << count.)
        var parts = Array(legacyHwcapNames.prefix(14))
        if let platform { parts.append(platform) }
        parts.append("tls")
        let count = parts.count
        let total = 1 << count
        // Entry k holds part n when bit n of (total-1-k) is set; the string lists the
        // parts from the last ("tls") to the first, as glibc lays them out.
        for k in 0..<total {
            let mask = total - 1 - k
            var string = ""
            for n in stride(from: count - 1, through: 0, by: -1) where mask & (1 << n) != 0 {
                string += parts[n] + "/"
            }
            result.append(string)
        }
        return result
    }

    /// confstr(_CS_GNU_LIBC_VERSION) answers "glibc 2.36" for the C library this process runs on.
    static func hostGlibcVersion() -> GlibcVersion? {
        var buffer = [CChar](repeating: 0, count: 64)
        let n = confstr(Int32(_CS_GNU_LIBC_VERSION), &buffer, buffer.count)
        guard n > 0 else { return nil }
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return GlibcVersion(string: String(text.split(separator: " ").last ?? ""))
    }

    /// Debian/Ubuntu x86-64 defaults for a given version and CPU.
    public static func debianX86_64(version: GlibcVersion, hwcaps: [String] = ["x86-64-v3", "x86-64-v2"],
                                    legacyHwcapNames: [String] = ["x86_64"], platform: String? = "x86_64") -> GlibcProfile {
        GlibcProfile(version: version, hwcapsSubdirectories: hwcaps, legacyHwcapNames: legacyHwcapNames,
                     platform: platform, libToken: "lib/x86_64-linux-gnu",
                     systemDirectories: ["/lib/x86_64-linux-gnu/", "/usr/lib/x86_64-linux-gnu/", "/lib/", "/usr/lib/"])
    }

    /// The profile of the machine this runs on: glibc's version from the C library
    /// this process uses, the CPU features from /proc/cpuinfo (as glibc's
    /// cpu_features would see them), AT_PLATFORM from the auxiliary vector, and the
    /// directory layout from the file system.
    public static func host(fileSystem: any LoaderFileSystem = HostFileSystem()) -> GlibcProfile {
        let version = hostGlibcVersion() ?? GlibcVersion(2, 36)
        let cpu = CPUDescription.host()
        let multiarch = fileSystem.stat("/lib/x86_64-linux-gnu") == .directory
            || fileSystem.stat("/usr/lib/x86_64-linux-gnu") == .directory
        var profile = debianX86_64(version: version, hwcaps: cpu.activeHwcapsSubdirectories,
                                   legacyHwcapNames: cpu.legacyHwcapNames, platform: cpu.platform)
        if !multiarch {
            profile.libToken = "lib64"
            profile.systemDirectories = ["/lib64/", "/usr/lib64/"]
        }
        return profile
    }
}

/// The CPU facts glibc's x86 start-up code derives its search subdirectories from.
public struct CPUDescription: Sendable, Hashable {
    public var vendor: String
    public var flags: Set<String>
    /// AT_PLATFORM from the kernel.
    public var auxvPlatform: String?

    public init(vendor: String, flags: Set<String>, auxvPlatform: String?) {
        self.vendor = vendor
        self.flags = flags
        self.auxvPlatform = auxvPlatform
    }

    public static func host() -> CPUDescription {
        var vendor = ""
        var flags = Set<String>()
        if let text = HostFileSystem().readText("/proc/cpuinfo") {
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: ":", maxSplits: 1)
                guard parts.count == 2 else { continue }
                let key = parts[0].trimmingCharacters(in: " \t")
                if key == "vendor_id", vendor.isEmpty { vendor = parts[1].trimmingCharacters(in: " \t") }
                if key == "flags", flags.isEmpty { flags = Set(parts[1].split(separator: " ").map(String.init)) }
            }
        }
        // AT_PLATFORM (15) points into this process's own stack: read /proc/self/auxv.
        var platform: String?
        if let auxv = HostFileSystem().readBytes("/proc/self/auxv") {
            let words = stride(from: 0, to: auxv.count - 7, by: 8).map { offset in
                (0..<8).reduce(UInt64(0)) { $0 | UInt64(auxv[offset + $1]) << (8 * UInt64($1)) }
            }
            for pair in stride(from: 0, to: words.count - 1, by: 2) where words[pair] == 15 {
                if let pointer = UnsafePointer<CChar>(bitPattern: UInt(words[pair + 1])) {
                    platform = String(cString: pointer)
                }
            }
        }
        return CPUDescription(vendor: vendor, flags: flags, auxvPlatform: platform)
    }

    private func has(_ names: String...) -> Bool { names.allSatisfy { flags.contains($0) } }

    /// glibc's get_isa_level: x86-64-v2, -v3, -v4, each requiring the one below.
    /// /proc/cpuinfo names: pni = SSE3, abm = LZCNT; the kernel hides AVX flags
    /// when it does not enable the AVX state, which is what "usable" means to glibc.
    public var isaLevel: Int {
        guard has("cx16", "lahf_lm", "popcnt", "pni", "ssse3", "sse4_1", "sse4_2") else { return 1 }
        guard has("avx", "avx2", "f16c", "fma", "abm", "movbe") else { return 2 }
        guard has("avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl") else { return 3 }
        return 4
    }

    public var activeHwcapsSubdirectories: [String] {
        let all = ["x86-64-v4", "x86-64-v3", "x86-64-v2"]
        return Array(all.suffix(max(0, isaLevel - 1)))
    }

    private var isIntel: Bool { vendor == "GenuineIntel" }

    /// HWCAP_X86_64 always; HWCAP_X86_AVX512_1 on Intel with AVX-512 (not Xeon Phi).
    public var legacyHwcapNames: [String] {
        if isIntel, has("avx512cd"), !has("avx512er"), has("avx512bw", "avx512dq", "avx512vl") {
            return ["x86_64", "avx512_1"]
        }
        return ["x86_64"]
    }

    /// glibc 2.26+ replaces AT_PLATFORM on Intel: "xeon_phi" with AVX512ER/PF,
    /// "haswell" with AVX2, BMI1, BMI2, LZCNT, MOVBE and POPCNT.
    public var platform: String? {
        if isIntel {
            if has("avx512cd", "avx512er", "avx512pf") { return "xeon_phi" }
            if has("avx2", "bmi1", "bmi2", "abm", "movbe", "popcnt") { return "haswell" }
        }
        return auxvPlatform
    }
}

/// musl's loader: its own path decides where /etc/ld-musl-ARCH.path is looked for.
public struct MuslProfile: Sendable, Hashable {
    public var interpreterPath: String
    public var architecture: String
    public var defaultPath: String

    public init(interpreterPath: String, architecture: String = "x86_64",
                defaultPath: String = "/lib:/usr/local/lib:/usr/lib") {
        self.interpreterPath = interpreterPath
        self.architecture = architecture
        self.defaultPath = defaultPath
    }

    /// "%.*s/etc/ld-musl-ARCH.path", the prefix being the loader's path up to
    /// its second-to-last slash ("/usr/musl/lib/ld-musl…" → "/usr/musl").
    public var pathFile: String {
        var prefix = ""
        if interpreterPath.hasPrefix("/") {
            let slashes = interpreterPath.indices.filter { interpreterPath[$0] == "/" }
            if slashes.count >= 2 { prefix = String(interpreterPath[..<slashes[slashes.count - 2]]) }
        }
        return "\(prefix)/etc/ld-musl-\(architecture).path"
    }

    public static func isMuslInterpreter(_ path: String) -> Bool {
        path.split(separator: "/").last.map { $0.hasPrefix("ld-musl-") } ?? false
    }

    /// "ld-musl-x86_64.so.1" → "x86_64".
    public static func forInterpreter(_ path: String) -> MuslProfile {
        let base = path.split(separator: "/").last.map(String.init) ?? path
        var arch = "x86_64"
        if base.hasPrefix("ld-musl-") {
            let rest = base.dropFirst(8)
            arch = String(rest.prefix { $0 != "." })
        }
        return MuslProfile(interpreterPath: path, architecture: arch)
    }
}

extension StringProtocol {
    func trimmingCharacters(in set: String) -> String {
        var slice = Substring(self)
        while let c = slice.first, set.contains(c) { slice.removeFirst() }
        while let c = slice.last, set.contains(c) { slice.removeLast() }
        return String(slice)
    }
}
