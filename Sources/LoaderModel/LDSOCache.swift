/// /etc/ld.so.cache as ldconfig writes it and glibc's ld.so reads it: the
/// "glibc-ld.so.cache1.1" format (alone, as glibc ≥ 2.32 writes it, or appended to
/// the old "ld.so-1.7.0" table), with the extension directory naming the
/// glibc-hwcaps subdirectories of hwcaps entries.
public struct LDSOCache: Sendable, Hashable {
    public struct Entry: Sendable, Hashable {
        /// FLAG_ELF_LIBC6 | FLAG_X8664_LIB64 = 0x303 for x86-64 libraries.
        public var flags: Int32
        public var name: String
        public var path: String
        /// 0 for plain entries; bit 62 marks a glibc-hwcaps entry whose low 32 bits
        /// index ``LDSOCache/hwcapsNames``; bits 32–41 hold a required ISA level.
        public var hwcap: UInt64

        public init(flags: Int32, name: String, path: String, hwcap: UInt64 = 0) {
            self.flags = flags
            self.name = name
            self.path = path
            self.hwcap = hwcap
        }

        public var isHwcapsEntry: Bool {
            ((hwcap >> 32) & ~UInt64(LDSOCache.isaLevelMask)) == (LDSOCache.hwcapExtension >> 32)
        }
    }

    public enum Format: String, Sendable, Hashable {
        case new = "glibc-ld.so.cache1.1"
        case oldWithNew = "ld.so-1.7.0 + glibc-ld.so.cache1.1"
        case old = "ld.so-1.7.0"
    }

    public enum ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        case unknownMagic
        case truncated(String)
        case wrongEndianness
        public var description: String {
            switch self {
            case .unknownMagic: "not an ld.so.cache file (unknown magic)"
            case .truncated(let what): "truncated ld.so.cache (\(what))"
            case .wrongEndianness: "ld.so.cache written for the other byte order"
            }
        }
    }

    public var format: Format
    /// In file order, which is ldconfig's sort order (_dl_cache_libcmp, descending).
    public var entries: [Entry]
    /// The glibc-hwcaps subdirectory names of the extension section, by index.
    public var hwcapsNames: [String]
    /// The glibc version string that wrote the file, from the generator extension.
    public var generator: String?

    static let newMagic = Array("glibc-ld.so.cache1.1".utf8)
    static let oldMagic = Array("ld.so-1.7.0".utf8)
    static let hwcapExtension: UInt64 = 1 << 62
    static let isaLevelMask: UInt32 = (1 << 10) - 1
    static let extensionMagic: UInt32 = 0xEAA4_2174 // (uint32_t) -358342284
    static let newHeaderSize = 48
    static let newEntrySize = 24
    static let oldEntrySize = 12

    public init(format: Format, entries: [Entry], hwcapsNames: [String] = [], generator: String? = nil) {
        self.format = format
        self.entries = entries
        self.hwcapsNames = hwcapsNames
        self.generator = generator
    }

    public static func load(path: String = "/etc/ld.so.cache",
                            fileSystem: any LoaderFileSystem = HostFileSystem()) -> LDSOCache? {
        guard let bytes = fileSystem.readBytes(path) else { return nil }
        return try? LDSOCache(bytes: bytes)
    }

    public init(bytes: [UInt8]) throws(ParseError) {
        let reader = ByteReader(bytes: bytes)
        if bytes.starts(with: LDSOCache.newMagic) {
            self = try LDSOCache.parseNew(reader, base: 0, format: .new)
            return
        }
        guard bytes.starts(with: LDSOCache.oldMagic) else { throw .unknownMagic }
        // struct cache_file: magic[11], pad to 12, nlibs, then 12-byte entries.
        guard let nlibs = reader.u32(12) else { throw .truncated("old header") }
        let tableEnd = 16 + Int(nlibs) * LDSOCache.oldEntrySize
        guard tableEnd <= bytes.count else { throw .truncated("old entries") }
        let newOffset = (tableEnd + 7) & ~7
        if newOffset + LDSOCache.newHeaderSize <= bytes.count,
           Array(bytes[newOffset..<newOffset + LDSOCache.newMagic.count]) == LDSOCache.newMagic {
            self = try LDSOCache.parseNew(reader, base: newOffset, format: .oldWithNew)
            return
        }
        var entries: [Entry] = []
        for i in 0..<Int(nlibs) {
            let at = 16 + i * LDSOCache.oldEntrySize
            guard let flags = reader.u32(at), let key = reader.u32(at + 4), let value = reader.u32(at + 8),
                  let name = reader.cString(tableEnd + Int(key)), let path = reader.cString(tableEnd + Int(value)) else { continue }
            entries.append(Entry(flags: Int32(bitPattern: flags), name: name, path: path))
        }
        self.init(format: .old, entries: entries)
    }

    static func parseNew(_ reader: ByteReader, base: Int, format: Format) throws(ParseError) -> LDSOCache {
        guard let nlibs = reader.u32(base + 20), let flags = reader.u8(base + 28),
              let extensionOffset = reader.u32(base + 32) else { throw .truncated("header") }
        // cache_file_new_matches_endian: 0 = unknown, else (flags & 3) must be 2 (little).
        if flags != 0 && flags & 3 != 2 { throw .wrongEndianness }
        let available = (reader.bytes.count - base - newHeaderSize) / newEntrySize
        guard Int(nlibs) <= available else { throw .truncated("\(nlibs) entries announced, room for \(available)") }
        var entries: [Entry] = []
        entries.reserveCapacity(Int(nlibs))
        for i in 0..<Int(nlibs) {
            let at = base + newHeaderSize + i * newEntrySize
            guard let flags = reader.u32(at), let key = reader.u32(at + 4), let value = reader.u32(at + 8),
                  let hwcap = reader.u64(at + 16),
                  let name = reader.cString(base + Int(key)), let path = reader.cString(base + Int(value)) else { continue }
            entries.append(Entry(flags: Int32(bitPattern: flags), name: name, path: path, hwcap: hwcap))
        }
        var hwcapsNames: [String] = []
        var generator: String?
        // The extension directory and the hwcaps string indices count from the file start.
        let ext = Int(extensionOffset)
        if ext != 0, ext % 4 == 0, reader.u32(ext) == extensionMagic, let count = reader.u32(ext + 4) {
            for i in 0..<min(Int(count), 64) {
                let at = ext + 8 + i * 16
                guard let tag = reader.u32(at), let offset = reader.u32(at + 8), let size = reader.u32(at + 12),
                      Int(offset) + Int(size) <= reader.bytes.count else { break }
                switch tag {
                case 0:
                    generator = String(decoding: reader.bytes[Int(offset)..<Int(offset) + Int(size)].prefix { $0 != 0 }, as: UTF8.self)
                case 1 where size % 4 == 0 && offset % 4 == 0:
                    for j in 0..<Int(size / 4) {
                        if let index = reader.u32(Int(offset) + 4 * j), let name = reader.cString(Int(index)) {
                            hwcapsNames.append(name)
                        } else {
                            hwcapsNames.append("")
                        }
                    }
                default: break
                }
            }
        }
        return LDSOCache(format: format, entries: entries, hwcapsNames: hwcapsNames, generator: generator)
    }

    /// What `_dl_load_cache_lookup(name)` returns for this profile: among the
    /// entries for `name`, the best usable glibc-hwcaps entry, else the first plain
    /// entry whose flags match the loader's (0x303 on x86-64).
    public func lookup(_ name: String, profile: GlibcProfile) -> Entry? {
        let matches = entries.indices.filter { LDSOCache.compare(name, entries[$0].name) == 0 }
        guard !matches.isEmpty else { return nil }
        let defaultFlags: Int32 = profile.fileClass == .elf64 && profile.machine == .x86_64 ? 0x303 : 0x3
        let hwcapBitNames = ["sse2", "x86_64", "avx512_1"]
        var supported: UInt64 = 0
        for (bit, name) in hwcapBitNames.enumerated() where profile.legacyHwcapNames.contains(name) {
            supported |= 1 << UInt64(bit)
        }
        let platformMask: UInt64 = 0xF << 48
        var platformBit = UInt64.max
        if let platform = profile.platform, let i = ["i586", "i686", "haswell", "xeon_phi"].firstIndex(of: platform) {
            platformBit = 1 << UInt64(48 + i)
        }
        let exclude = ~(supported | platformMask | (1 << 63))
        let isaLevel = profile.hwcapsSubdirectories.count + 1 // baseline = 1, v2 = 2 …
        var best: Entry?
        var bestPriority = UInt32.max
        for index in matches {
            let entry = entries[index]
            guard entry.flags == defaultFlags else { continue }
            var named = false
            if format != .old {
                named = entry.isHwcapsEntry && profile.version.usesCacheHwcaps
                if named {
                    // dl_cache_hwcap_isa_level_compatible: bits 32–41 hold a level index.
                    let level = Int((entry.hwcap >> 32) & UInt64(LDSOCache.isaLevelMask))
                    if level + 1 > isaLevel { continue }
                }
                if !named && best != nil { break }
                if !named && entry.hwcap & exclude != 0 { continue }
                let platformBits = entry.hwcap & platformMask
                if !named && platformBits != 0 && platformBits != platformBit { continue }
                if named {
                    let priority = hwcapsPriority(index: UInt32(truncatingIfNeeded: entry.hwcap), profile: profile)
                    if priority == 0 { continue }
                    if best == nil || priority < bestPriority { bestPriority = priority } else { continue }
                }
            }
            best = entry
            if !named { break }
        }
        return best
    }

    /// 0 = not usable; otherwise 1 for the most preferred active subdirectory.
    func hwcapsPriority(index: UInt32, profile: GlibcProfile) -> UInt32 {
        guard Int(index) < hwcapsNames.count,
              let position = profile.hwcapsSubdirectories.firstIndex(of: hwcapsNames[Int(index)]) else { return 0 }
        return UInt32(position + 1)
    }

    /// _dl_cache_libcmp: runs of digits compare as numbers, and a digit sorts after
    /// any non-digit.
    public static func compare(_ a: String, _ b: String) -> Int {
        let p1 = Array(a.utf8), p2 = Array(b.utf8)
        var i = 0, j = 0
        func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
        while i < p1.count {
            let c1 = p1[i]
            let c2: UInt8 = j < p2.count ? p2[j] : 0
            if isDigit(c1) {
                guard isDigit(c2) else { return 1 }
                var v1 = 0, v2 = 0
                while i < p1.count, isDigit(p1[i]) { v1 = v1 &* 10 &+ Int(p1[i] - 0x30); i += 1 }
                while j < p2.count, isDigit(p2[j]) { v2 = v2 &* 10 &+ Int(p2[j] - 0x30); j += 1 }
                if v1 != v2 { return v1 - v2 }
            } else if isDigit(c2) {
                return -1
            } else if c1 != c2 {
                return Int(c1) - Int(c2)
            } else {
                i += 1
                j += 1
            }
        }
        let c2: UInt8 = j < p2.count ? p2[j] : 0
        return 0 - Int(c2)
    }
}

/// Little-endian reads with bounds checks; nil past the end.
struct ByteReader {
    var bytes: [UInt8]

    func u8(_ at: Int) -> UInt8? { at >= 0 && at < bytes.count ? bytes[at] : nil }

    func u32(_ at: Int) -> UInt32? {
        guard at >= 0, at + 4 <= bytes.count else { return nil }
        return (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[at + $1]) << (8 * UInt32($1)) }
    }

    func u64(_ at: Int) -> UInt64? {
        guard at >= 0, at + 8 <= bytes.count else { return nil }
        return (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[at + $1]) << (8 * UInt64($1)) }
    }

    func cString(_ at: Int) -> String? {
        guard at >= 0, at < bytes.count else { return nil }
        guard let end = bytes[at...].firstIndex(of: 0) else { return nil }
        return String(decoding: bytes[at..<end], as: UTF8.self)
    }
}
