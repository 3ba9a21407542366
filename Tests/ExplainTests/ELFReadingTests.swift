import Foundation
import Testing
@testable import Report
@testable import LoaderModel

@Suite("ELF reading (libelf)")
struct ELFReadingTests {
    @Test("dynamic section, interpreter and versions of a compiled fixture")
    func fixtureFields() throws {
        let f = try Fixture("elf-fields")
        defer { f.remove() }
        try f.write("lib.map", "LIB_1.0 { global: lib_f; local: *; };\n")
        try f.write("src/lib.c", "int lib_f(void) { return 1; }\n")
        try f.mkdir("lib")
        try f.compile(["-shared", "-fPIC", "-o", "lib/liblib.so.1", "src/lib.c", "-Wl,-soname,liblib.so.1",
                       "-Wl,--version-script=lib.map", "-Wl,--disable-new-dtags,-rpath,/opt/a:$ORIGIN/b"])
        try f.program("prog", calls: ["lib"], linkFlags: [f.path("lib/liblib.so.1"), "-Wl,-z,nodefaultlib",
                                                          "-Wl,--enable-new-dtags,-rpath,/x:/y"])
        let program = try ELFFile(contentsOf: f.path("prog"))
        #expect(program.fileClass == .elf64)
        #expect(program.machine == .x86_64)
        #expect(program.interpreter == "/lib64/ld-linux-x86-64.so.2")
        #expect(program.needed == ["liblib.so.1", "libc.so.6"])
        #expect(program.runpath == "/x:/y")
        #expect(program.rpath == nil)
        #expect(program.noDefaultLib)
        #expect(program.versionNeeds.contains { $0.file == "liblib.so.1" && $0.versions.map(\.name) == ["LIB_1.0"] })
        #expect(program.versionNeeds.contains { $0.file == "libc.so.6" })

        let library = try ELFFile(contentsOf: f.path("lib/liblib.so.1"))
        #expect(library.type == .sharedObject)
        #expect(library.soname == "liblib.so.1")
        #expect(library.rpath == "/opt/a:$ORIGIN/b")
        #expect(library.interpreter == nil)
        #expect(library.providedVersions == ["LIB_1.0"])
        #expect(library.versionDefinitions.first?.isBase == true)

        let symbols = try DynamicSymbols(contentsOf: f.path("lib/liblib.so.1"))
        #expect(symbols.definitions.contains { $0.name == "lib_f" && $0.version == "LIB_1.0" && $0.binding == .global })
        let programSymbols = try DynamicSymbols(contentsOf: f.path("prog"))
        #expect(programSymbols.references.contains { $0.name == "lib_f" && $0.version == "LIB_1.0" })
    }

    @Test("the same bytes read from memory and from the file agree")
    func memoryAndFileAgree() throws {
        for path in ["/bin/ls", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"] {
            guard FileManager.default.fileExists(atPath: path) else { continue }
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            var fromFile = try ELFFile(contentsOf: path)
            fromFile.path = "<memory>"
            #expect(try ELFFile(bytes: bytes) == fromFile)
        }
    }

    @Test("glibc's header verdicts: accept, other class, other machine, refuse")
    func headerVerdicts() throws {
        let libc = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "/lib/x86_64-linux-gnu/libc.so.6")).prefix(64))
        #expect(LoaderHeaderCheck.glibc(header: libc) == .accepted)
        var other = libc
        other[4] = 1
        #expect(LoaderHeaderCheck.glibc(header: other) == .wrongClass)
        var machine = libc
        machine[18] = 183
        #expect(LoaderHeaderCheck.glibc(header: machine) == .wrongMachine)
        #expect(LoaderHeaderCheck.glibc(header: Array("INPUT(-lc)\n".utf8) + [UInt8](repeating: 0x20, count: 60))
                == .rejected(reason: "invalid ELF header"))
        #expect(LoaderHeaderCheck.glibc(header: Array(libc.prefix(40))) == .rejected(reason: "file too short"))
        var relocatable = libc
        relocatable[16] = 1
        #expect(LoaderHeaderCheck.glibc(header: relocatable) == .rejected(reason: "only ET_DYN and ET_EXEC can be loaded"))
    }

    @Test("bad input errors name what is wrong")
    func errors() throws {
        func reason(_ bytes: [UInt8]) -> ELFReadError.Reason? {
            do { _ = try ELFFile(bytes: bytes); return nil } catch { return error.reason }
        }
        #expect(reason([]) == .empty)
        #expect(reason(Array("#!/usr/bin/python3\n".utf8)) == .notELF(detail: "a script for /usr/bin/python3"))
        #expect(reason([0x7f, 0x45, 0x4c]) == .truncated(detail: "ELF identification"))
        let ls = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "/bin/ls")))
        if case .truncated = reason(Array(ls.prefix(500))) {} else { Issue.record("500 bytes of /bin/ls: \(String(describing: reason(Array(ls.prefix(500)))))") }
        var badClass = ls
        badClass[4] = 7
        #expect(reason(badClass) == .malformed(detail: "invalid ELF class 7"))
    }
}

@Suite("ld.so.cache")
struct LDSOCacheTests {
    @Test("every entry of /etc/ld.so.cache matches ldconfig -p")
    func matchesLdconfig() throws {
        let cache = try #require(LDSOCache.load())
        #expect(cache.format == .new)
        let listed = try shell(["/sbin/ldconfig", "-p"], environment: cleanEnvironment)
        try #require(listed.status == 0)
        var expected: [String] = []
        for line in listed.stdout.split(separator: "\n").dropFirst() {
            let parts = line.trimmingCharacters(in: .whitespaces).components(separatedBy: " => ")
            guard parts.count == 2 else { continue }
            expected.append(String(parts[0].prefix { $0 != " " }) + " " + parts[1])
        }
        let ours = cache.entries.map { "\($0.name) \($0.path)" }
        #expect(ours == expected)
        #expect(cache.generator?.contains("2.") == true)
    }

    @Test("lookups agree with where glibc opens libraries")
    func lookups() throws {
        let cache = try #require(LDSOCache.load())
        let profile = GlibcProfile.host()
        #expect(cache.lookup("libc.so.6", profile: profile)?.path == "/lib/x86_64-linux-gnu/libc.so.6")
        #expect(cache.lookup("libdoesnotexist.so.9", profile: profile) == nil)
    }

    @Test("a cache ldconfig writes with glibc-hwcaps entries: parsed as ldconfig -p lists it, the CPU's best level wins")
    func ldconfigHwcaps() throws {
        let f = try Fixture("ldconfig")
        defer { f.remove() }
        let profile = GlibcProfile.host()
        let levels = profile.hwcapsSubdirectories
        try #require(!levels.isEmpty)
        try f.library("hw", in: "lib", value: 0, soname: "libhw.so.1")
        for (i, level) in levels.enumerated() { try f.library("hw", in: "lib/glibc-hwcaps/\(level)", value: i + 1, soname: "libhw.so.1") }
        // x86-64-v4 entries exist in the cache even on CPUs without it; they must be passed over.
        let extra = levels.contains("x86-64-v4") ? [] : ["x86-64-v4"]
        for level in extra { try f.library("hw", in: "lib/glibc-hwcaps/\(level)", value: 9, soname: "libhw.so.1") }
        for dir in ["lib"] + (levels + extra).map({ "lib/glibc-hwcaps/\($0)" }) {
            try FileManager.default.moveItem(atPath: f.path("\(dir)/libhw.so"), toPath: f.path("\(dir)/libhw.so.1"))
        }
        try f.write("ld.so.conf", f.path("lib") + "\n")
        let made = try shell(["/sbin/ldconfig", "-X", "-C", f.path("ld.so.cache"), "-f", f.path("ld.so.conf")], environment: cleanEnvironment)
        try #require(made.status == 0, "\(made.stderr)")
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: f.path("ld.so.cache"))))
        let cache = try LDSOCache(bytes: bytes)
        #expect(Set(cache.hwcapsNames).isSuperset(of: Set(levels)))
        let listed = try shell(["/sbin/ldconfig", "-p", "-C", f.path("ld.so.cache")], environment: cleanEnvironment)
        let listedPaths = listed.stdout.split(separator: "\n").filter { $0.contains(" => ") }.compactMap { $0.components(separatedBy: " => ").last }
        #expect(cache.entries.map(\.path) == listedPaths.map { String($0) })
        let hit = cache.lookup("libhw.so.1", profile: profile)
        let preferred = profile.hwcapsSubdirectories.contains("x86-64-v4") ? "x86-64-v4" : levels[0]
        #expect(hit?.path == f.path("lib/glibc-hwcaps/\(preferred)/libhw.so.1"))
        var old = profile
        old.version = GlibcVersion(2, 32)
        #expect(cache.lookup("libhw.so.1", profile: old)?.path == f.path("lib/libhw.so.1"))
    }

    @Test("_dl_cache_libcmp orders digits numerically and after letters")
    func comparison() {
        #expect(LDSOCache.compare("libfoo.so.10", "libfoo.so.9") > 0)
        #expect(LDSOCache.compare("libfoo.so.9", "libfoo.so.9") == 0)
        #expect(LDSOCache.compare("libfoo1.so", "libfoo.so") > 0)
        #expect(LDSOCache.compare("liba.so", "libb.so") < 0)
    }

    @Test("a synthetic cache: hwcaps entries win when the CPU supports them, old format parses")
    func synthetic() throws {
        // Entries: x86-64-v3 hwcaps libz, plain libz.
        var strings: [UInt8] = []
        func add(_ s: String) -> UInt32 { let at = UInt32(48 + 2 * 24 + strings.count); strings += Array(s.utf8) + [0]; return at }
        let name = add("libz.so.1")
        let hwPath = add("/usr/lib/glibc-hwcaps/x86-64-v3/libz.so.1")
        let path = add("/usr/lib/libz.so.1")
        let v3 = add("x86-64-v3")
        var header = Array("glibc-ld.so.cache1.1".utf8)
        func u32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        func u64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }
        let stringEnd = 48 + 2 * 24 + strings.count
        let extensionOffset = (stringEnd + 3) & ~3
        header += u32(2) + u32(UInt32(strings.count)) + [2, 0, 0, 0] + u32(UInt32(extensionOffset)) + u32(0) + u32(0) + u32(0)
        var file = header
        file += u32(0x303) + u32(name) + u32(hwPath) + u32(0) + u64((1 << 62) | 0)
        file += u32(0x303) + u32(name) + u32(path) + u32(0) + u64(0)
        file += strings
        while file.count < extensionOffset { file.append(0) }
        let sectionData = extensionOffset + 8 + 16
        file += u32(0xEAA4_2174) + u32(1) + u32(1) + u32(0) + u32(UInt32(sectionData)) + u32(4)
        file += u32(v3)
        let cache = try LDSOCache(bytes: file)
        #expect(cache.hwcapsNames == ["x86-64-v3"])
        let v3Machine = GlibcProfile.debianX86_64(version: GlibcVersion(2, 36), hwcaps: ["x86-64-v3", "x86-64-v2"])
        let v2Machine = GlibcProfile.debianX86_64(version: GlibcVersion(2, 36), hwcaps: ["x86-64-v2"])
        let oldGlibc = GlibcProfile.debianX86_64(version: GlibcVersion(2, 31), hwcaps: ["x86-64-v3", "x86-64-v2"])
        #expect(cache.lookup("libz.so.1", profile: v3Machine)?.path == "/usr/lib/glibc-hwcaps/x86-64-v3/libz.so.1")
        #expect(cache.lookup("libz.so.1", profile: v2Machine)?.path == "/usr/lib/libz.so.1")
        #expect(cache.lookup("libz.so.1", profile: oldGlibc)?.path == "/usr/lib/libz.so.1")
        #expect(throws: LDSOCache.ParseError.unknownMagic) { try LDSOCache(bytes: Array("nonsense".utf8)) }
        #expect(throws: (any Error).self) { try LDSOCache(bytes: Array(file.prefix(60))) }
    }
}

@Suite("loader profile")
struct LoaderProfileTests {
    /// ld.so --help lists the subdirectories it searches; the profile derived from
    /// /proc/cpuinfo must give the same lists.
    @Test("the host profile's subdirectories equal those ld.so --help reports")
    func matchesLdSoHelp() throws {
        let help = try shell(["/lib64/ld-linux-x86-64.so.2", "--help"], environment: cleanEnvironment)
        var hwcaps: [String] = []
        var legacy: [String] = []
        var section = ""
        for line in help.stdout.split(separator: "\n") {
            if line.hasPrefix("Subdirectories of glibc-hwcaps") { section = "hwcaps"; continue }
            if line.hasPrefix("Legacy HWCAP") { section = "legacy"; continue }
            guard line.hasPrefix("  ") else { section = ""; continue }
            let text = line.trimmingCharacters(in: .whitespaces)
            let searched = text.contains("searched")
            let name = String(text.prefix { $0 != " " })
            if section == "hwcaps" && searched { hwcaps.append(name) }
            if section == "legacy" && searched { legacy.append(name + (text.contains("AT_PLATFORM") ? " (platform)" : "")) }
        }
        let profile = GlibcProfile.host()
        #expect(profile.hwcapsSubdirectories == hwcaps)
        #expect(legacy.contains("\(profile.platform ?? "?") (platform)"))
        #expect(legacy.contains("tls"))
        for name in profile.legacyHwcapNames { #expect(legacy.contains(name)) }
        #expect(profile.version == GlibcVersion(string: help.stdout.components(separatedBy: "ld.so (").last ?? "")
                ?? profile.version)
    }

    @Test("subdirectory order: glibc-hwcaps first, then the legacy power set, largest subsets first")
    func subdirectoryOrder() {
        let amd = GlibcProfile.debianX86_64(version: GlibcVersion(2, 36))
        #expect(amd.capabilitySubdirectories == [
            "glibc-hwcaps/x86-64-v3/", "glibc-hwcaps/x86-64-v2/",
            "tls/x86_64/x86_64/", "tls/x86_64/", "tls/x86_64/", "tls/",
            "x86_64/x86_64/", "x86_64/", "x86_64/", "",
        ])
        let newer = GlibcProfile.debianX86_64(version: GlibcVersion(2, 37))
        #expect(newer.capabilitySubdirectories == ["glibc-hwcaps/x86-64-v3/", "glibc-hwcaps/x86-64-v2/", ""])
        let older = GlibcProfile.debianX86_64(version: GlibcVersion(2, 31))
        #expect(older.capabilitySubdirectories.first == "tls/x86_64/x86_64/")
        #expect(older.capabilitySubdirectories.count == 8)
        let intel = CPUDescription(vendor: "GenuineIntel", flags: ["avx2", "bmi1", "bmi2", "abm", "movbe", "popcnt"],
                                   auxvPlatform: "x86_64")
        #expect(intel.platform == "haswell")
    }
}
