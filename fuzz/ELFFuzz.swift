// The ELF fuzzer: ELF32/ELF64 images built field by field (either byte order),
// with extreme values, fed to the ELF reader, the loaders' header checks, the
// glibc and musl loader simulations over a small world of generated files,
// explain's whole path (hazards, text and JSON), and the symbol readers.
import Foundation
import LoaderModel
import Report
#if canImport(Glibc)
import Glibc
#endif

/// One generated image and what it was meant to say (for building a world around it).
struct ELFImage {
    var bytes: [UInt8]
    var soname: String?
    var needed: [String]
}

/// Writes an ELF file's structures one field at a time. `wild` (percent) is the
/// chance of an extreme value in place of the right one, per field.
struct ELFBuilder {
    var r: Random
    var wild: Int
    var is64: Bool
    var big: Bool
    var b: [UInt8] = []

    mutating func maybe(_ v: UInt64) -> UInt64 { r.below(100) < wild ? r.extreme() : v }

    /// Stores `v` in `size` bytes at `at` in the file's byte order (clipped to the file).
    mutating func put(_ v: UInt64, at: Int, size: Int) {
        guard at >= 0, size > 0, at <= b.count - size else { return }
        for i in 0..<size {
            let shift = UInt64(8 * (big ? size - 1 - i : i))
            b[at + i] = UInt8(truncatingIfNeeded: v >> shift)
        }
    }
    /// A field that is 8 bytes in ELF64 and 4 in ELF32.
    mutating func word(_ v: UInt64, at: Int) { put(v, at: at, size: is64 ? 8 : 4) }
    /// A field, with the chance of an extreme value.
    mutating func field(_ v: UInt64, at: Int, size: Int) { put(maybe(v), at: at, size: size) }
    mutating func fieldWord(_ v: UInt64, at: Int) { word(maybe(v), at: at) }

    mutating func place(_ bytes: [UInt8], at: Int) {
        for (i, c) in bytes.enumerated() where at + i >= 0 && at + i < b.count { b[at + i] = c }
    }
}

enum ELFFuzz {
    static let needNames = ["libc.so.6", "libm.so.6", "libgen1.so", "libgen2.so.3", "libgen3.so", "/abs/libz.so", "libdl.so.2",
                            "ld-linux-x86-64.so.2", "libc.musl-x86_64.so.1", "", "lib$LIB.so", "../up.so", "libgen1.so"]
    static let searchPaths = ["$ORIGIN/../lib:/opt/lib", "/opt/lib", "$ORIGIN", "${ORIGIN}/lib", "$LIB/p:$PLATFORM", "", ":", "::/opt/lib::",
                              "/lib/x86_64-linux-gnu", "$ORIGIN/$LIB/$PLATFORM/x", "/nfs/a:/nfs/b:/nfs/c:/nfs/d", "$", "$ORIGINX", "/opt/lib/"]
    static let interpreters = ["/lib64/ld-linux-x86-64.so.2", "/lib/ld-musl-x86_64.so.1", "/usr/musl/lib/ld-musl-x86_64.so.1", "", "/x",
                               "ld-musl-", "/lib/ld-musl-aarch64.so.1", "relative/ld.so"]

    /// An image: header, program headers, interpreter, dynamic section, string
    /// tables, symbols, version sections, section headers.
    static func generate(_ r: inout Random, type: UInt64, soname: String?, needed: [String]) -> ELFImage {
        var e = ELFBuilder(r: r, wild: r.pick([0, 0, 2, 5, 15, 40]), is64: r.chance(85), big: r.chance(8))
        defer { r = e.r }
        let is64 = e.is64
        let size = 0x1400 + (e.r.chance(80) ? e.r.below(0x2000) : e.r.below(0x20000))
        e.b = [UInt8](repeating: 0, count: size)
        let ehsize = is64 ? 64 : 52, phentsize = is64 ? 56 : 32, shentsize = is64 ? 64 : 40
        let base: UInt64 = e.r.chance(50) ? 0 : 0x40_0000
        // Where things go (offsets in the file).
        let interpAt = 0x200, dynamicAt = 0x300, dynstrAt = 0x600, dynsymAt = 0x900, versymAt = 0xa40, verneedAt = 0xa80
        let verdefAt = 0xb40, symtabAt = 0xc00, strtabAt = 0xd80, shstrtabAt = 0xe40, shoff = 0x1000

        // e_ident.
        e.place([0x7f, 0x45, 0x4c, 0x46], at: 0)
        e.b[4] = UInt8(truncatingIfNeeded: e.maybe(is64 ? 2 : 1))
        e.b[5] = UInt8(truncatingIfNeeded: e.maybe(e.big ? 2 : 1))
        e.b[6] = UInt8(truncatingIfNeeded: e.maybe(1))
        e.b[7] = UInt8(truncatingIfNeeded: e.maybe(e.r.chance(90) ? 0 : 3))
        e.b[8] = UInt8(truncatingIfNeeded: e.maybe(0))
        if e.r.below(100) < e.wild { e.b[9 + e.r.below(7)] = UInt8(truncatingIfNeeded: e.r.next()) }
        e.field(type, at: 16, size: 2)
        e.field(e.r.chance(90) ? (is64 ? 62 : 3) : UInt64(e.r.pick([3, 40, 183, 243, 0, 0xffff])), at: 18, size: 2)
        e.field(1, at: 20, size: 4)
        e.fieldWord(base + 0x1000, at: 24)
        // Program headers: the table's place and count, PN_XNUM at times.
        var phnum = 1 + e.r.below(7)
        if e.r.chance(3) { phnum = 0 }
        // An offset far out of the file stays so in the header; the table is written where it fits.
        let phoffField = e.maybe(UInt64(ehsize))
        let phoff = Int(min(phoffField, UInt64(size)))
        let pnXnum = e.r.chance(5)
        e.word(phoffField, at: is64 ? 32 : 28)
        // Section headers: sometimes none, sometimes e_shnum 0 with the count in section 0.
        let nSections = 12
        let shnumZero = e.r.chance(5)
        let withSections = e.r.chance(85)
        e.fieldWord(withSections ? UInt64(shoff) : 0, at: is64 ? 40 : 32)
        e.field(0, at: is64 ? 48 : 36, size: 4)
        e.field(UInt64(ehsize), at: is64 ? 52 : 40, size: 2)
        e.field(UInt64(phentsize), at: is64 ? 54 : 42, size: 2)
        e.field(pnXnum ? 0xffff : UInt64(phnum), at: is64 ? 56 : 44, size: 2)
        e.field(UInt64(shentsize), at: is64 ? 58 : 46, size: 2)
        e.field(withSections ? (shnumZero ? 0 : UInt64(nSections)) : 0, at: is64 ? 60 : 48, size: 2)
        e.field(e.r.chance(5) ? 0xffff : 11, at: is64 ? 62 : 50, size: 2)   // e_shstrndx (SHN_XINDEX: in section 0's sh_link)

        // The dynamic string table: needed names, soname, search paths.
        var dynstr: [UInt8] = [0]
        func add(_ s: String, into t: inout [UInt8], terminate: Bool = true) -> UInt64 {
            let at = UInt64(t.count); t += Array(s.utf8); if terminate { t.append(0) }; return at
        }
        let neededOffsets = needed.map { add($0, into: &dynstr) }
        let sonameOffset = soname.map { add($0, into: &dynstr) }
        let rpathOffset = add(e.r.pick(searchPaths), into: &dynstr)
        let runpathOffset = add(e.r.pick(searchPaths), into: &dynstr)
        let versionNames = ["GLIBC_2.2.5", "GLIBC_2.34", "GEN_1.0", "", "GLIBC_99.99"].map { add($0, into: &dynstr) }
        let symbolNames = ["main", "gen_f", "malloc", "", "x"].map { add($0, into: &dynstr) }
        if e.r.chance(5) { _ = add("unterminated", into: &dynstr, terminate: false) }
        if e.r.chance(5) { dynstr[dynstr.count - 1] = 0x41 }   // the table's last NUL gone
        e.place(Array(dynstr.prefix(0x300)), at: dynstrAt)
        let dynstrSize = UInt64(min(dynstr.count, 0x300))

        // Program headers.
        for i in 0..<min(max(phnum, 1), 16) {
            let o = phoff + i * phentsize
            guard o >= 0 && o < size else { break }
            let kinds: [UInt64] = [6, 3, 1, 2, 7, 0x6474e551, 1]   // PHDR, INTERP, LOAD, DYNAMIC, TLS, GNU_STACK, LOAD
            var t = i < kinds.count ? kinds[i] : UInt64(e.r.below(8))
            if e.r.chance(10) { t = e.r.pick([1, 2, 3, 7]) }
            var (off, filesz): (UInt64, UInt64) = (0, UInt64(size))
            switch t {
            case 6: (off, filesz) = (UInt64(phoff), UInt64(phnum * phentsize))
            case 3: (off, filesz) = (UInt64(interpAt), 0x40)
            case 2: (off, filesz) = (UInt64(dynamicAt), 0x300)
            case 7: (off, filesz) = (UInt64(symtabAt), 0x10)
            case 1 where i == 6: (off, filesz) = (0x1000, 0x400)   // a second LOAD, overlapping the first
            default: break
            }
            let vaddr = base &+ off
            e.field(t, at: o, size: 4)
            if is64 {
                e.field(5, at: o + 4, size: 4)
                e.fieldWord(off, at: o + 8); e.fieldWord(vaddr, at: o + 16); e.fieldWord(vaddr, at: o + 24)
                e.fieldWord(filesz, at: o + 32); e.fieldWord(filesz, at: o + 40); e.fieldWord(0x1000, at: o + 48)
            } else {
                e.fieldWord(off, at: o + 4); e.fieldWord(vaddr, at: o + 8); e.fieldWord(vaddr, at: o + 12)
                e.fieldWord(filesz, at: o + 16); e.fieldWord(filesz, at: o + 20); e.field(5, at: o + 24, size: 4); e.fieldWord(0x1000, at: o + 28)
            }
        }
        // PT_INTERP's string (sometimes without its NUL, sometimes long).
        var interp = Array(e.r.pick(interpreters).utf8)
        if e.r.chance(5) { interp = [UInt8](repeating: 0x61, count: 0x40) }
        e.place(interp, at: interpAt)

        // The dynamic section.
        var tags: [(UInt64, UInt64)] = neededOffsets.map { (1, $0) }
        if let s = sonameOffset { tags.append((14, s)) }
        if e.r.chance(40) { tags.append((15, rpathOffset)) }
        if e.r.chance(40) { tags.append((29, runpathOffset)) }
        tags.append((5, base + UInt64(dynstrAt)))           // DT_STRTAB (an address)
        tags.append((10, dynstrSize))                        // DT_STRSZ
        tags.append((6, base + UInt64(dynsymAt)))            // DT_SYMTAB
        tags.append((30, e.r.pick([0, 0x8, 0x2, e.r.extreme()])))            // DT_FLAGS
        tags.append((0x6fff_fffb, e.r.pick([0, 0x1, 0x800, 0x800_0000, e.r.extreme()])))  // DT_FLAGS_1
        if e.r.chance(10) { tags.append((0x7fff_fffd, neededOffsets.first ?? 0)) }        // DT_AUXILIARY
        if e.r.chance(10) { tags.append((0x7fff_ffff, rpathOffset)) }                     // DT_FILTER
        if e.r.chance(20) { tags.append((0x6fff_fffe, base + UInt64(verneedAt))); tags.append((0x6fff_ffff, 1)) }
        for _ in 0..<(e.r.chance(90) ? 0 : e.r.below(8)) { tags.insert((e.r.pick([1, 5, 10, 14, 15, 29]), e.r.extreme()), at: e.r.below(tags.count + 1)) }
        if e.r.chance(90) { tags.append((0, 0)) }           // DT_NULL (sometimes missing)
        let dynEntry = is64 ? 16 : 8
        for (i, (tag, value)) in tags.enumerated() where (i + 1) * dynEntry <= 0x300 {
            let o = dynamicAt + i * dynEntry
            e.fieldWord(tag, at: o)
            e.fieldWord(value, at: o + dynEntry / 2)
        }
        // At times a second, huge dynamic section at the end of the file (what
        // PT_DYNAMIC then names): thousands of DT_NEEDED, a search path of
        // thousands of directories, in a string table of its own.
        var bigDynamic: (offset: Int, size: Int)?
        if e.r.chance(4) {
            var strings: [UInt8] = [0]
            let names = (0..<(1 + e.r.below(40))).map { add("libbig\($0).so", into: &strings) } + needed.prefix(3).map { add($0, into: &strings) }
            let path = add((0..<(1 + e.r.below(3000))).map { "/big/d\($0 % 97)" }.joined(separator: ":"), into: &strings)
            let count = e.r.pick([100, 1000, 5000])
            let stringsAt = e.b.count
            e.b += strings
            let at = e.b.count
            e.b += [UInt8](repeating: 0, count: (count + 6) * dynEntry)
            var list: [(UInt64, UInt64)] = (0..<count).map { _ in (1, e.r.pick(names)) }
            list += [(e.r.bool() ? 15 : 29, path), (5, base + UInt64(stringsAt)), (10, UInt64(strings.count)), (0, 0)]
            for (i, (tag, value)) in list.enumerated() {
                e.fieldWord(tag, at: at + i * dynEntry)
                e.fieldWord(value, at: at + i * dynEntry + dynEntry / 2)
            }
            bigDynamic = (at, list.count * dynEntry)
        }

        // Dynamic symbols and their versions; a symbol table with code ranges.
        let symEntry = is64 ? 24 : 16
        let nSyms = 1 + e.r.below(6)
        func symbol(_ at: Int, name: UInt64, info: UInt64, shndx: UInt64, value: UInt64, size: UInt64) {
            if is64 {
                e.field(name, at: at, size: 4); e.field(info, at: at + 4, size: 1); e.field(0, at: at + 5, size: 1)
                e.field(shndx, at: at + 6, size: 2); e.fieldWord(value, at: at + 8); e.fieldWord(size, at: at + 16)
            } else {
                e.field(name, at: at, size: 4); e.fieldWord(value, at: at + 4); e.fieldWord(size, at: at + 8)
                e.field(info, at: at + 12, size: 1); e.field(0, at: at + 13, size: 1); e.field(shndx, at: at + 14, size: 2)
            }
        }
        for i in 1..<nSyms {
            symbol(dynsymAt + i * symEntry, name: e.r.pick(symbolNames), info: UInt64(e.r.pick([0x12, 0x22, 0x11, 0xa2, 0x16, 0x10])),
                   shndx: e.r.chance(30) ? 0 : 12, value: base + 0x1000 + UInt64(i * 0x10), size: 0x10)
            e.field(UInt64(e.r.pick([0, 1, 2, 3, 0x8002])), at: versymAt + i * 2, size: 2)
        }
        for i in 1..<(1 + e.r.below(8)) {
            // .symtab: functions whose start + size can be anything (addresses past 2^64).
            let value = e.r.chance(70) ? base + 0x1000 + UInt64(i * 0x40) : e.r.extreme()
            symbol(symtabAt + i * symEntry, name: UInt64(1 + e.r.below(12)), info: 0x12, shndx: 12,
                   value: value, size: e.r.chance(70) ? 0x40 : e.r.extreme())
        }
        e.place(Array("\0fn_a\0fn_b\0".utf8), at: strtabAt)
        // .gnu.version_r: one file, its versions (chains that loop or run off at times).
        e.field(1, at: verneedAt, size: 2); e.field(UInt64(1 + e.r.below(3)), at: verneedAt + 2, size: 2)
        e.field(neededOffsets.first ?? 0, at: verneedAt + 4, size: 4); e.field(16, at: verneedAt + 8, size: 4)
        e.field(e.r.chance(80) ? 0 : UInt64(e.r.pick([16, 0xffff_fff0, 0x7fff_ffff])), at: verneedAt + 12, size: 4)
        for k in 0..<3 {
            let o = verneedAt + 16 + k * 16
            e.field(0, at: o, size: 4); e.field(e.r.chance(20) ? 2 : 0, at: o + 4, size: 2); e.field(UInt64(2 + k), at: o + 6, size: 2)
            e.field(e.r.pick(versionNames), at: o + 8, size: 4); e.field(k < 2 ? 16 : 0, at: o + 12, size: 4)
        }
        // .gnu.version_d: the base entry and a version.
        for k in 0..<2 {
            let o = verdefAt + k * 28
            e.field(1, at: o, size: 2); e.field(k == 0 ? 1 : 0, at: o + 2, size: 2); e.field(UInt64(1 + k), at: o + 4, size: 2)
            e.field(1, at: o + 6, size: 2); e.field(0, at: o + 8, size: 4); e.field(20, at: o + 12, size: 4)
            e.field(k == 0 ? 28 : 0, at: o + 16, size: 4)
            e.field(k == 0 ? (sonameOffset ?? 0) : versionNames[2], at: o + 20, size: 4); e.field(0, at: o + 24, size: 4)
        }

        // Section headers: [0] null (PN_XNUM / e_shnum 0 / SHN_XINDEX values), then the sections.
        var shstr: [UInt8] = [0]
        let names = ["", ".interp", ".dynamic", ".dynstr", ".dynsym", ".gnu.version", ".gnu.version_r", ".gnu.version_d",
                     ".symtab", ".strtab", ".text", ".shstrtab"].map { add($0, into: &shstr) }
        e.place(shstr, at: shstrtabAt)
        // (type, offset, size, link, info, entsize)
        let sections: [(UInt64, Int, Int, UInt64, UInt64, UInt64)] = [
            (0, 0, shnumZero ? nSections : 0, 11, pnXnum ? UInt64(phnum) : 0, 0),
            (1, interpAt, 0x40, 0, 0, 0),                                     // .interp
            (6, dynamicAt, 0x300, 3, 0, UInt64(dynEntry)),                    // .dynamic → .dynstr
            (3, dynstrAt, Int(dynstrSize), 0, 0, 0),                          // .dynstr
            (11, dynsymAt, nSyms * symEntry, 3, 1, UInt64(symEntry)),         // .dynsym
            (0x6fff_ffff, versymAt, nSyms * 2, 4, 0, 2),                      // .gnu.version
            (0x6fff_fffe, verneedAt, 64, 3, 1, 0),                            // .gnu.version_r
            (0x6fff_fffd, verdefAt, 56, 3, 2, 0),                             // .gnu.version_d
            (2, symtabAt, 9 * symEntry, 9, 1, UInt64(symEntry)),              // .symtab → .strtab
            (3, strtabAt, 12, 0, 0, 0),                                       // .strtab
            (e.r.chance(50) ? 1 : 8, 0x1000, 0x400, 0, 0, 0),                 // .text (or NOBITS)
            (3, shstrtabAt, shstr.count, 0, 0, 0),                            // .shstrtab
        ]
        if withSections {
            for (i, s) in sections.enumerated() {
                let o = shoff + i * shentsize
                e.field(i == 0 ? 0 : names[i], at: o, size: 4)
                e.field(s.0, at: o + 4, size: 4)
                if is64 {
                    e.fieldWord(i == 10 ? 6 : 2, at: o + 8); e.fieldWord(i == 0 ? 0 : base + UInt64(s.1), at: o + 16)
                    e.fieldWord(UInt64(s.1), at: o + 24); e.fieldWord(UInt64(s.2), at: o + 32)
                    e.field(s.3, at: o + 40, size: 4); e.field(s.4, at: o + 44, size: 4)
                    e.fieldWord(8, at: o + 48); e.fieldWord(s.5, at: o + 56)
                } else {
                    e.fieldWord(2, at: o + 8); e.fieldWord(i == 0 ? 0 : base + UInt64(s.1), at: o + 12)
                    e.fieldWord(UInt64(s.1), at: o + 16); e.fieldWord(UInt64(s.2), at: o + 20)
                    e.field(s.3, at: o + 24, size: 4); e.field(s.4, at: o + 28, size: 4)
                    e.fieldWord(4, at: o + 32); e.fieldWord(s.5, at: o + 36)
                }
            }
        }
        if let big = bigDynamic {
            // PT_DYNAMIC (header 3) and the first PT_LOAD (header 2) now cover the big section.
            for (i, off, len) in [(3, big.offset, big.size), (2, 0, e.b.count)] where i < phnum {
                let o = phoff + i * phentsize
                if is64 { e.word(UInt64(off), at: o + 8); e.word(base + UInt64(off), at: o + 16); e.word(UInt64(len), at: o + 32); e.word(UInt64(len), at: o + 40) }
                else { e.word(UInt64(off), at: o + 4); e.word(base + UInt64(off), at: o + 8); e.word(UInt64(len), at: o + 16); e.word(UInt64(len), at: o + 20) }
            }
        }
        // Cut short at times (inside a table, or the header itself).
        if e.r.chance(12) { e.b.removeSubrange(e.r.below(e.b.count)...) }
        return ELFImage(bytes: e.b, soname: soname, needed: needed)
    }

    static func one(seed: UInt64, scratch: String, stats: inout Stats) throws {
        var r = Random(state: seed)
        let programNeeds = (0..<r.below(6)).map { _ in r.pick(needNames) }
        let program = generate(&r, type: UInt64(r.pick([2, 3, 3])), soname: r.chance(20) ? "prog.so" : nil, needed: programNeeds)
        // Libraries for the world: the names the program needs (at times every
        // name, so that their own needs load too), built the same way.
        var libraries: [(name: String, image: ELFImage)] = []
        let names = r.chance(30) ? needNames + (0..<40).map { "libbig\($0).so" } : programNeeds
        for name in Set(names).sorted() where !name.isEmpty && r.chance(80) {
            let needs = (0..<r.below(4)).map { _ in r.pick(needNames) }
            libraries.append((name, generate(&r, type: 3, soname: r.chance(80) ? name : r.pick(needNames), needed: needs)))
        }
        try readInMemory(program.bytes, &r, stats: &stats)
        for l in libraries.prefix(2) { try readInMemory(l.image.bytes, &r, stats: &stats) }
        simulateInWorld(program: program, libraries: libraries, &r, stats: &stats)
        if r.chance(25) { try readFromFiles(program.bytes, libraries: libraries, scratch: scratch, &r, stats: &stats) }
    }

    /// The reader and the header checks on the bytes.
    static func readInMemory(_ bytes: [UInt8], _ r: inout Random, stats: inout Stats) throws {
        do {
            let elf = try ELFFile(bytes: bytes, path: "/app/bin/prog")
            _ = (elf.needed, elf.soname, elf.rpath, elf.runpath, elf.interpreter, elf.providedVersions, elf.noDefaultLib)
            stats.add("ELF read")
        } catch {
            _ = error.description
            stats.add("ELF refused")
        }
        _ = try? DynamicSymbols(bytes: bytes)
        let header = Array(bytes.prefix(r.chance(90) ? 64 : r.below(70)))
        for c in [ELFFile.FileClass.elf64, .elf32] {
            for m in [Machine.x86_64, .i386, .aarch64] { _ = LoaderHeaderCheck.glibc(header: header, fileClass: c, machine: m) }
        }
        _ = LoaderHeaderCheck.musl(header: header)
    }

    /// A small world around the program (its libraries in the directories its
    /// search paths name, symlinks, directories) and both loaders run on it,
    /// through explain's whole path.
    static func simulateInWorld(program: ELFImage, libraries: [(name: String, image: ELFImage)], _ r: inout Random, stats: inout Stats) {
        // The program's path as explain is given it, and where the world keeps it.
        let (programPath, cwd, stored) = r.pick([("/app/bin/prog", "/app", "/app/bin/prog"), ("/prog", "/", "/prog"),
                                                 ("prog", "/app/bin", "/app/bin/prog"), ("bin/prog", "/app", "/app/bin/prog"),
                                                 ("/app/lib/../bin/prog", "/", "/app/lib/../bin/prog"), ("/app/bin/prog", "rel", "/app/bin/prog")])
        guard let elf = try? ELFFile(bytes: program.bytes, path: programPath) else { return }
        var world = LoaderWorld(workingDirectory: cwd)
        var inode: UInt64 = 10
        func file(_ e: ELFFile?) -> LoaderWorld.File {
            inode += 1
            return LoaderWorld.File(id: FileID(device: 1, inode: r.chance(5) ? 11 : inode), size: UInt64(r.below(1 << 20)), elf: e)
        }
        world.addFile(stored, file(elf))
        let dirs = ["/app/lib", "/opt/lib", "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib",
                    "/app/lib/glibc-hwcaps/x86-64-v3", "/nfs/a", "/usr/local/lib", "/lib64"]
        for (name, image) in libraries {
            let dir = r.pick(dirs)
            let path = name.hasPrefix("/") ? name : dir + "/" + name
            let libELF = try? ELFFile(bytes: image.bytes, path: path)
            world.addFile(path, file(r.chance(90) ? libELF : nil))
            if r.chance(20) { world.addSymlink(r.pick(dirs) + "/" + name, target: path) }
        }
        if r.chance(10) { world.addSymlink("/app/lib/loop.so", target: "/app/lib/loop.so") }
        if r.chance(10) { world.addSymlink("/lib/libc.so.6", target: "libc-2.36.so") }
        for d in dirs where r.chance(30) { world.setDirectory(d, exists: r.chance(70)) }
        world.addFile("/lib64/ld-linux-x86-64.so.2", file(nil))
        if r.chance(30) { world.addFile("/lib/ld-musl-x86_64.so.1", file(nil)) }
        let env = LoaderEnvironment(ldLibraryPath: r.chance(50) ? nil : r.pick(["/app/lib", "/opt/lib:/nfs/a", "", ":", "$ORIGIN/../lib", "/"]),
                                    ldPreload: r.chance(90) ? nil : r.pick(["libgen1.so", "/app/lib/libgen1.so", ""]),
                                    secure: r.chance(5), workingDirectory: world.workingDirectory)
        let version = r.pick([GlibcVersion(2, 31), GlibcVersion(2, 33), GlibcVersion(2, 36), GlibcVersion(2, 37), GlibcVersion(2, 39)])
        var profile = GlibcProfile.debianX86_64(version: version, hwcaps: r.pick([["x86-64-v3", "x86-64-v2"], [], ["x86-64-v4"]]),
                                                legacyHwcapNames: r.pick([["x86_64"], [], ["x86_64", "avx512_1"]]),
                                                platform: r.chance(80) ? "x86_64" : nil)
        if r.chance(10) { profile.systemDirectories = r.pick([[], ["/"], ["/lib/", "/usr/lib/"]]) }
        if r.chance(10) { profile.libToken = r.pick(["", "lib64", "../.."]) }
        var entries: [LDSOCache.Entry] = []
        for (name, _) in libraries where r.chance(40) {
            entries.append(LDSOCache.Entry(flags: r.chance(90) ? 0x303 : Int32(truncatingIfNeeded: r.extreme()), name: name,
                                           path: r.pick(dirs) + "/" + name, hwcap: r.chance(90) ? 0 : r.extreme()))
        }
        let cache: LDSOCache? = r.chance(70) ? LDSOCache(format: r.pick([.new, .old, .oldWithNew]), entries: entries,
                                                        hwcapsNames: r.chance(80) ? [] : ["x86-64-v3", ""]) : nil
        var options = ExplainOptions(environment: env, glibcProfile: profile, glibcVersion: r.chance(10) ? GlibcVersion(2, 30) : nil,
                                     cache: cache, fileSystem: world, findHazards: r.chance(80))
        options.findHazards = options.findHazards || r.chance(50)
        do {
            let e = try Explainer.explain(programPath, options: options)
            _ = ExplanationText.render(e, verbose: r.chance(50), allHazards: r.chance(50))
            _ = ExplanationJSON.render(e, includeCandidates: r.chance(50))
            stats.add("explained (world)")
        } catch {
            _ = error.description
            stats.add("explain refused")
        }
        // Each loader directly, on the same world (also for a program explain would refuse).
        let glibc = GlibcLoaderSimulation(profile: profile, environment: env, cache: cache, fileSystem: world)
        let dlopens = (0..<r.below(3)).map { _ in DlopenRequest(name: r.pick(needNames), caller: r.chance(50) ? programPath : nil) }
        let load = glibc.run(program: elf, dlopens: dlopens)
        for i in 0..<min(load.loaded.count + 1, 4) {
            let plan = glibc.searchPlan(forDependenciesOf: i, in: load)
            _ = glibc.locate(r.pick(needNames), plan: plan)
        }
        _ = HazardAnalysis(load: load, loader: .glibc(glibc)).hazards()
        let musl = MuslLoaderSimulation(profile: .forInterpreter(r.pick(interpreters)), environment: env, fileSystem: world)
        let muslLoad = musl.run(program: elf)
        _ = musl.locate(r.pick(needNames), plan: musl.searchPlan(forDependenciesOf: 0, in: muslLoad))
        _ = HazardAnalysis(load: muslLoad, loader: .musl(musl)).hazards()
        stats.add("simulated")
    }

    /// The same bytes as files on this host: the file reader, the symbol
    /// readers (dlopen callers' names), and explain with this machine's loader.
    static func readFromFiles(_ bytes: [UInt8], libraries: [(name: String, image: ELFImage)], scratch: String,
                              _ r: inout Random, stats: inout Stats) throws {
        let path = scratch + "/prog"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o755)
        for (name, image) in libraries where !name.contains("/") {
            try Data(image.bytes).write(to: URL(fileURLWithPath: scratch + "/" + name))
        }
        _ = try? ELFFile(contentsOf: path)
        _ = try? DynamicSymbols(contentsOf: path)
        var symbols = CodeSymbols.Cache()
        for _ in 0..<3 { _ = symbols.function(in: path, returnOffset: r.chance(70) ? UInt64(0x1000 + r.below(0x400)) : r.extreme()) }
        let env = LoaderEnvironment(ldLibraryPath: r.chance(70) ? scratch : nil, ldPreload: nil)
        if let e = try? Explainer.explain(path, options: ExplainOptions(environment: env)) {
            _ = ExplanationText.render(e, verbose: r.chance(50), allHazards: r.chance(50))
            _ = ExplanationJSON.render(e, includeCandidates: r.chance(50))
            stats.add("explained (host)")
        }
        if r.chance(20) { _ = Explainer.startupDiagnosis(for: path, environment: env) }
    }
}
