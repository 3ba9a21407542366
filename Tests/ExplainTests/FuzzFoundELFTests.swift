import Foundation
import Testing
@testable import Report
@testable import LoaderModel

/// A little-endian x86-64 ELF64 file written field by field (as `loadprobe-fuzz
/// elf` builds them), for values no linker writes.
struct CraftedELF {
    var type: UInt16 = 3
    var interpreter: String?
    var needed: [String] = []
    var rpath: String?
    var runpath: String?
    var soname: String?
    /// PT_LOAD segments (file offset, virtual address, size); nil: the whole file at address 0.
    var loads: [(offset: UInt64, vaddr: UInt64, size: UInt64)]?
    /// .symtab functions (name, address, size), with .strtab and section headers.
    var functions: [(name: String, value: UInt64, size: UInt64)] = []

    func bytes() -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 64)
        func put(_ v: UInt64, _ at: Int, _ size: Int) { for i in 0..<size { b[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) } }
        func align() { while b.count % 8 != 0 { b.append(0) } }
        // Strings first: the dynamic string table.
        var dynstr: [UInt8] = [0]
        func string(_ s: String) -> UInt64 { let at = UInt64(dynstr.count); dynstr += Array(s.utf8) + [0]; return at }
        var dynamic: [(UInt64, UInt64)] = []
        var offsets: [String: UInt64] = [:]
        for n in needed {
            if offsets[n] == nil { offsets[n] = string(n) }
            dynamic.append((1, offsets[n]!))
        }
        if let soname { dynamic.append((14, string(soname))) }
        if let rpath { dynamic.append((15, string(rpath))) }
        if let runpath { dynamic.append((29, string(runpath))) }
        let phnum = (loads?.count ?? 1) + 1 + (interpreter == nil ? 0 : 1)
        let phoff = 64
        b += [UInt8](repeating: 0, count: phnum * 56)
        var interpAt = 0
        if let interpreter { interpAt = b.count; b += Array(interpreter.utf8) + [0]; align() }
        let dynstrAt = b.count
        b += dynstr
        align()
        dynamic += [(5, UInt64(dynstrAt)), (10, UInt64(dynstr.count)), (0, 0)]
        let dynamicAt = b.count
        for (tag, value) in dynamic { b += [UInt8](repeating: 0, count: 16); put(tag, b.count - 16, 8); put(value, b.count - 8, 8) }
        // .strtab, .symtab and the section headers: [0] null, [1] .strtab, [2] .symtab.
        var shoff = 0
        if !functions.isEmpty {
            var strtab: [UInt8] = [0]
            var symbols = [UInt8](repeating: 0, count: 24)   // symbol 0
            for f in functions {
                var s = [UInt8](repeating: 0, count: 24)
                let name = UInt32(strtab.count)
                strtab += Array(f.name.utf8) + [0]
                for i in 0..<4 { s[i] = UInt8(truncatingIfNeeded: name >> (8 * UInt32(i))) }
                s[4] = 0x12   // STB_GLOBAL, STT_FUNC
                s[6] = 1      // st_shndx: any section but SHN_UNDEF
                for i in 0..<8 { s[8 + i] = UInt8(truncatingIfNeeded: f.value >> (8 * UInt64(i))); s[16 + i] = UInt8(truncatingIfNeeded: f.size >> (8 * UInt64(i))) }
                symbols += s
            }
            let strtabAt = b.count
            b += strtab
            align()
            let symtabAt = b.count
            b += symbols
            align()
            shoff = b.count
            b += [UInt8](repeating: 0, count: 3 * 64)
            // .strtab: SHT_STRTAB
            put(3, shoff + 64 + 4, 4); put(UInt64(strtabAt), shoff + 64 + 24, 8); put(UInt64(strtab.count), shoff + 64 + 32, 8); put(1, shoff + 64 + 48, 8)
            // .symtab: SHT_SYMTAB, sh_link = 1, sh_info = 1, entsize 24
            put(2, shoff + 128 + 4, 4); put(UInt64(symtabAt), shoff + 128 + 24, 8); put(UInt64(symbols.count), shoff + 128 + 32, 8)
            put(1, shoff + 128 + 40, 4); put(1, shoff + 128 + 44, 4); put(8, shoff + 128 + 48, 8); put(24, shoff + 128 + 56, 8)
        }
        b += [UInt8](repeating: 0, count: 64)
        // The header.
        b[0] = 0x7f; b[1] = 0x45; b[2] = 0x4c; b[3] = 0x46; b[4] = 2; b[5] = 1; b[6] = 1
        put(UInt64(type), 16, 2); put(62, 18, 2); put(1, 20, 4); put(UInt64(phoff), 32, 8); put(UInt64(shoff), 40, 8)
        put(64, 52, 2); put(56, 54, 2); put(UInt64(phnum), 56, 2); put(64, 58, 2); put(shoff == 0 ? 0 : 3, 60, 2)
        // Program headers: the PT_LOADs, PT_DYNAMIC, PT_INTERP.
        var ph = phoff
        for l in loads ?? [(0, 0, UInt64(b.count))] {
            put(1, ph, 4); put(5, ph + 4, 4); put(l.offset, ph + 8, 8); put(l.vaddr, ph + 16, 8); put(l.vaddr, ph + 24, 8)
            put(l.size, ph + 32, 8); put(l.size, ph + 40, 8); put(0x1000, ph + 48, 8)
            ph += 56
        }
        put(2, ph, 4); put(6, ph + 4, 4); put(UInt64(dynamicAt), ph + 8, 8); put(UInt64(dynamicAt), ph + 16, 8)
        put(UInt64(dynamic.count * 16), ph + 32, 8); put(UInt64(dynamic.count * 16), ph + 40, 8); put(8, ph + 48, 8)
        ph += 56
        if let interpreter {
            put(3, ph, 4); put(4, ph + 4, 4); put(UInt64(interpAt), ph + 8, 8); put(UInt64(interpAt), ph + 16, 8)
            put(UInt64(interpreter.utf8.count + 1), ph + 32, 8); put(UInt64(interpreter.utf8.count + 1), ph + 40, 8); put(1, ph + 48, 8)
        }
        return b
    }

    func write(to path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(bytes()).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o755)
    }
}

/// The ELF files `loadprobe-fuzz elf` (docs/fuzzing.md) found that trapped a
/// reader or made explain run without end, made again by hand.
@Suite("ELF files the fuzzers found")
struct FuzzFoundELFTests {
    func scratchDirectory(_ name: String) throws -> String {
        let dir = NSTemporaryDirectory() + "lp-elf-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test("a dlopen caller's symbols and segments whose address plus size passes 2^64: no function, no trap")
    func codeSymbolsPastTwoTo64() throws {
        let dir = try scratchDirectory("symbols")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A function that would end past 2^64, beside an ordinary one.
        var sane = CraftedELF()
        sane.functions = [("ordinary", 0x100, 0x40), ("wraps", UInt64.max - 0x10, 0x100)]
        try sane.write(to: dir + "/sane.so")
        var cache = CodeSymbols.Cache()
        #expect(cache.function(in: dir + "/sane.so", returnOffset: 0x111) == "ordinary")
        #expect(cache.function(in: dir + "/sane.so", returnOffset: UInt64.max) == nil)
        // A segment whose offset plus size passes 2^64, one whose address does.
        var segments = CraftedELF()
        segments.functions = [("f", 0x10, 0x10)]
        segments.loads = [(UInt64.max - 0x100, 0, 0x200), (0, UInt64.max - 0x10, 0x1000)]
        try segments.write(to: dir + "/segments.so")
        for offset: UInt64 in [UInt64.max, UInt64.max - 0x80, 0x100, 0x20, 1] {
            #expect(cache.function(in: dir + "/segments.so", returnOffset: offset) == nil)
        }
    }

    @Test("a DT_NEEDED name listed 500 times, missing, behind a RUNPATH of 40 directories: searched once (glibc and musl)",
          arguments: ["/lib64/ld-linux-x86-64.so.2", "/lib/ld-musl-x86_64.so.1"])
    func repeatedMissingName(interpreter: String) throws {
        let dir = try scratchDirectory("repeated")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var prog = CraftedELF()
        prog.interpreter = interpreter
        prog.runpath = (0..<40).map { "\(dir)/none\($0)" }.joined(separator: ":")
        prog.needed = [String](repeating: "libnothere.so", count: 500)
        try prog.write(to: dir + "/prog")
        let e = try explain(dir + "/prog", directory: dir)
        let missing = e.load.objects.filter { $0.needed == "libnothere.so" }
        #expect(missing.count == 500 && missing.allSatisfy { $0.path == nil })
        // The first occurrence is searched; the other 499 fail the same way without a search.
        #expect(missing.first.map { $0.attempts.count >= 40 } == true)
        #expect(missing.dropFirst().allSatisfy { $0.attempts.isEmpty })
        #expect(e.failure?.kind == .missingLibrary)
        let text = ExplanationText.render(e)
        #expect(text.utf8.count < 1_000_000, "\(text.utf8.count) bytes")
    }

    @Test("a library naming a dependency 20,000 times, which its own 300-directory RUNPATH cannot find: latent-missing searches once",
          .timeLimit(.minutes(1)))
    func repeatedLatentMissing() throws {
        let dir = try scratchDirectory("latent")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var prog = CraftedELF()
        prog.type = 2
        prog.interpreter = "/lib64/ld-linux-x86-64.so.2"
        prog.rpath = dir + "/lib"
        prog.needed = ["liba.so", "libb.so"]
        try prog.write(to: dir + "/prog")
        var a = CraftedELF()
        a.soname = "liba.so"
        a.runpath = (0..<300).map { "\(dir)/none\($0)" }.joined(separator: ":")
        a.needed = [String](repeating: "libb.so", count: 20_000)
        try a.write(to: dir + "/lib/liba.so")
        var b = CraftedELF()
        b.soname = "libb.so"
        try b.write(to: dir + "/lib/libb.so")
        let started = Date()
        let e = try explain(dir + "/prog", directory: dir)
        #expect(e.hazards(.latentMissing).count == 1)
        #expect(Date().timeIntervalSince(started) < 20)
    }

    @Test("an RPATH of 30,000 distinct directories: its duplicate test is not quadratic", .timeLimit(.minutes(1)))
    func longPathList() throws {
        let dir = try scratchDirectory("pathlist")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var prog = CraftedELF()
        prog.type = 2
        prog.interpreter = "/lib64/ld-linux-x86-64.so.2"
        prog.rpath = (0..<30_000).map { "/d\($0)" }.joined(separator: ":") + ":" + String(repeating: "/", count: 20_000) + "x" + String(repeating: "/", count: 20_000)
        try prog.write(to: dir + "/prog")
        let started = Date()
        let profile = GlibcProfile.debianX86_64(version: GlibcVersion(2, 36))
        let dirs = GlibcPaths.decompose(prog.rpath!, separators: ":", origin: dir, profile: profile)
        #expect(dirs.count == 30_001 && dirs.last == String(repeating: "/", count: 20_000) + "x/")
        _ = try explain(dir + "/prog", directory: dir)
        #expect(Date().timeIntervalSince(started) < 20)
    }
}
