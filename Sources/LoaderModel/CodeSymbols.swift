import CLibElf

#if canImport(Glibc)
import Glibc
#endif

/// Names the function that contains a code address of an object: the symbol
/// table (.symtab, else .dynsym) of the file, read where the report runs.
/// Used for dlopen callers (CALLER events carry an object and a file offset).
package enum CodeSymbols {
    struct Function { var start: UInt64; var end: UInt64; var name: String }

    struct Table {
        /// PT_LOAD segments: file offset range → virtual address.
        var loads: [(offset: UInt64, size: UInt64, vaddr: UInt64)] = []
        var functions: [Function] = []

        /// The function whose [start, start+size) holds the address the file offset maps to.
        /// (Offsets, sizes and addresses come from the file: their sums may pass 2^64.)
        func function(atFileOffset off: UInt64) -> String? {
            guard let seg = loads.first(where: { off >= $0.offset && off - $0.offset < $0.size }) else { return nil }
            let (addr, overflow) = (off - seg.offset).addingReportingOverflow(seg.vaddr)
            guard !overflow else { return nil }
            return functions.first { addr >= $0.start && addr < $0.end }?.name
        }
    }

    package struct Cache {
        var tables: [String: Table?] = [:]
        package init() {}

        /// The function containing the call that returns to `returnOffset`
        /// (the byte before a return address is in the call instruction).
        package mutating func function(in path: String, returnOffset: UInt64) -> String? {
            guard returnOffset > 0 else { return nil }
            if tables[path] == nil { tables[path] = .some(CodeSymbols.read(path)) }
            return tables[path]!?.function(atFileOffset: returnOffset - 1)
        }
    }

    static func read(_ path: String) -> Table? {
        guard let fd = try? ELFFileDescriptor.open(path) else { return nil }
        defer { close(fd.raw) }
        guard libelfReady, let elf = elf_begin(fd.raw, ELF_C_READ_MMAP, nil) else { return nil }
        defer { elf_end(elf) }
        var table = Table()
        var count = 0
        guard elf_getphdrnum(elf, &count) == 0 else { return nil }
        for i in 0..<min(count, 4096) {
            var ph = GElf_Phdr()
            guard gelf_getphdr(elf, Int32(i), &ph) != nil, ph.p_type == 1 /* PT_LOAD */ else { continue }
            table.loads.append((ph.p_offset, ph.p_filesz, ph.p_vaddr))
        }
        // .symtab has the local functions too; .dynsym only the exported ones.
        var tables: [(UnsafeMutablePointer<Elf_Data>, Int, Int, Bool)] = []
        ELFFile.forEachSection(elf) { section, shdr in
            guard shdr.sh_type == 2 || shdr.sh_type == ELFConstant.shtDynsym, let data = elf_getdata(section, nil) else { return }
            let entry = gelf_fsize(elf, ELF_T_SYM, 1, UInt32(EV_CURRENT))
            guard entry > 0 else { return }
            tables.append((data, Int(shdr.sh_link), min(data.pointee.d_size / entry, 4_000_000), shdr.sh_type == 2))
        }
        guard let (data, strings, n, _) = tables.first(where: { $0.3 }) ?? tables.first else { return table }
        for i in 0..<n {
            var sym = GElf_Sym()
            guard gelf_getsym(data, Int32(i), &sym) != nil else { continue }
            let type = sym.st_info & 0xf
            // A function that would end past 2^64 is not one.
            let (end, overflow) = sym.st_value.addingReportingOverflow(sym.st_size)
            guard type == 2 /* STT_FUNC */ || type == 10 /* STT_GNU_IFUNC */, sym.st_shndx != 0, sym.st_size > 0, !overflow,
                  let name = elf_strptr(elf, strings, Int(sym.st_name)) else { continue }
            table.functions.append(Function(start: sym.st_value, end: end, name: String(cString: name)))
        }
        return table
    }
}
