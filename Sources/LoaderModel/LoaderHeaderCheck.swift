import CLibElf

/// What ld.so's `open_verify` decides from the first bytes of a candidate file:
/// accept it, skip it and search on (other ELF class or machine), or stop the
/// whole start-up with an error (glibc's words in `reason`).
public enum LoaderHeaderVerdict: Sendable, Hashable {
    case accepted
    case wrongClass
    case wrongMachine
    case rejected(reason: String)
}

public enum LoaderHeaderCheck {
    /// glibc's checks, for a loader of `fileClass`/`machine` (x86-64: ELFCLASS64,
    /// little-endian, EM_X86_64, 56-byte program headers).
    public static func glibc(header: [UInt8], fileClass: ELFFile.FileClass = .elf64,
                             machine: Machine = .x86_64) -> LoaderHeaderVerdict {
        let headerSize = fileClass == .elf64 ? 64 : 52
        if header.count < headerSize { return .rejected(reason: "file too short") }
        if Array(header.prefix(4)) != [0x7f, 0x45, 0x4c, 0x46] { return .rejected(reason: "invalid ELF header") }
        let expectedClass: UInt8 = fileClass == .elf64 ? 2 : 1
        if header[4] != expectedClass { return .wrongClass }
        if header[5] != 1 { return .rejected(reason: "ELF file data encoding not little-endian") }
        if header[6] != 1 { return .rejected(reason: "ELF file version ident does not match current one") }
        // Linux accepts ELFOSABI_SYSV, and ELFOSABI_GNU for objects using GNU extensions.
        let osabi = header[7], abiVersion = header[8]
        if osabi != 0 && osabi != 3 { return .rejected(reason: "ELF file OS ABI invalid") }
        if (osabi == 0 && abiVersion != 0) || (osabi == 3 && abiVersion > 4) {
            return .rejected(reason: "ELF file ABI version invalid")
        }
        if header[9..<16].contains(where: { $0 != 0 }) { return .rejected(reason: "nonzero padding in e_ident") }
        guard let ehdr = decodeHeader(header, fileClass: fileClass) else { return .rejected(reason: "file too short") }
        if ehdr.version != 1 { return .rejected(reason: "ELF file version does not match current one") }
        if ehdr.machine != machine.rawValue { return .wrongMachine }
        if ehdr.type != 2 && ehdr.type != 3 { return .rejected(reason: "only ET_DYN and ET_EXEC can be loaded") }
        let phentsize = fileClass == .elf64 ? 56 : 32
        if Int(ehdr.phentsize) != phentsize { return .rejected(reason: "ELF file's phentsize not the expected size") }
        return .accepted
    }

    /// musl's map_library: it reads the header as its own class and checks only
    /// the type and program header size; anything else fails the load with ENOEXEC.
    public static func musl(header: [UInt8]) -> LoaderHeaderVerdict {
        guard header.count >= 64, Array(header.prefix(4)) == [0x7f, 0x45, 0x4c, 0x46], header[4] == 2, header[5] == 1,
              let ehdr = decodeHeader(header, fileClass: .elf64) else {
            return .rejected(reason: "Exec format error")
        }
        if ehdr.type != 2 && ehdr.type != 3 { return .rejected(reason: "Exec format error") }
        if ehdr.phentsize != 56 { return .rejected(reason: "Exec format error") }
        if ehdr.machine != Machine.x86_64.rawValue { return .rejected(reason: "Exec format error") }
        return .accepted
    }

    struct Fields { var type: UInt16; var machine: UInt16; var version: UInt32; var phentsize: UInt16 }

    /// libelf translates the file's header bytes into host order (elf32/64_xlatetom).
    static func decodeHeader(_ header: [UInt8], fileClass: ELFFile.FileClass) -> Fields? {
        guard libelfReady else { return nil }
        var source = header
        return source.withUnsafeMutableBytes { raw -> Fields? in
            var src = Elf_Data()
            src.d_buf = raw.baseAddress
            src.d_type = ELF_T_EHDR
            src.d_version = UInt32(EV_CURRENT)
            let encoding = UInt32(header[5])
            if fileClass == .elf64 {
                return translate(&src, raw.count, Elf64_Ehdr(), encoding, elf64_xlatetom) {
                    Fields(type: $0.e_type, machine: $0.e_machine, version: $0.e_version, phentsize: $0.e_phentsize)
                }
            } else {
                return translate(&src, raw.count, Elf32_Ehdr(), encoding, elf32_xlatetom) {
                    Fields(type: $0.e_type, machine: $0.e_machine, version: $0.e_version, phentsize: $0.e_phentsize)
                }
            }
        }
    }

    /// One class's header through its libelf translator into `H`, then the fields.
    private static func translate<H>(_ src: inout Elf_Data, _ available: Int, _ empty: H, _ encoding: UInt32,
                                     _ xlate: (UnsafeMutablePointer<Elf_Data>?, UnsafePointer<Elf_Data>?, UInt32) -> UnsafeMutablePointer<Elf_Data>?,
                                     _ fields: (H) -> Fields) -> Fields? {
        guard available >= MemoryLayout<H>.size else { return nil }
        src.d_size = MemoryLayout<H>.size
        var header = empty
        return withUnsafeMutableBytes(of: &header) { out -> Fields? in
            var dst = Elf_Data()
            dst.d_buf = out.baseAddress
            dst.d_size = out.count
            dst.d_version = UInt32(EV_CURRENT)
            guard xlate(&dst, &src, encoding) != nil else { return nil }
            return fields(out.load(as: H.self))
        }
    }
}
