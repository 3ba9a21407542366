import CLibElf

#if canImport(Glibc)
import Glibc
#endif

/// The dynamic symbol table of one object, with symbol versions: what it defines
/// for others and what it needs from them. The symbol-conflict hazard compares
/// these across the loaded objects.
public struct DynamicSymbols: Sendable, Hashable {
    public enum Binding: Sendable, Hashable { case global, weak, unique }

    public struct Symbol: Sendable, Hashable {
        public var name: String
        /// The version node name (GLIBC_2.2.5), nil for unversioned symbols.
        public var version: String?
        public var binding: Binding
        public init(name: String, version: String?, binding: Binding) {
            self.name = name
            self.version = version
            self.binding = binding
        }
    }

    /// Defined, exported functions and objects (hidden versions excluded: nothing binds to them by default).
    public var definitions: [Symbol]
    /// Undefined symbols this object needs another object to provide.
    public var references: [Symbol]

    public init(definitions: [Symbol], references: [Symbol]) {
        self.definitions = definitions
        self.references = references
    }

    public init(contentsOf path: String) throws(ELFReadError) {
        let fd = try ELFFileDescriptor.open(path)
        defer { close(fd.raw) }
        try ELFFile.checkIdentity(fd: fd, path: path)
        guard libelfReady, let elf = elf_begin(fd.raw, ELF_C_READ_MMAP, nil) else {
            throw ELFFile.beginError(path: path, size: fd.size)
        }
        defer { elf_end(elf) }
        self = DynamicSymbols.read(elf: elf)
    }

    public init(bytes: [UInt8]) throws(ELFReadError) {
        if let problem = ELFFile.identityProblem(prefix: bytes) {
            throw ELFReadError(path: "<memory>", reason: problem)
        }
        var image = bytes
        let result: DynamicSymbols? = image.withUnsafeMutableBytes { raw in
            guard libelfReady, let base = raw.baseAddress?.assumingMemoryBound(to: CChar.self),
                  let elf = elf_memory(base, raw.count) else { return nil }
            defer { elf_end(elf) }
            return DynamicSymbols.read(elf: elf)
        }
        guard let result else { throw ELFFile.beginError(path: "<memory>", size: bytes.count) }
        self = result
    }

    static let maxSymbols = 2_000_000

    static func read(elf: OpaquePointer) -> DynamicSymbols {
        let tables = SymbolTables.scan(elf)
        guard let dynsym = tables.dynsym else { return DynamicSymbols(definitions: [], references: []) }
        var definitions: [Symbol] = []
        var references: [Symbol] = []
        for index in 1..<max(1, dynsym.count) {
            var sym = GElf_Sym()
            guard gelf_getsym(dynsym.data, Int32(clamping: index), &sym) != nil else { break }
            let type = sym.st_info & 0xf
            guard let binding = binding(sym.st_info >> 4) else { continue }
            // STT_NOTYPE(0), OBJECT(1), FUNC(2), TLS(6), GNU_IFUNC(10)
            guard [0, 1, 2, 6, 10].contains(type), sym.st_name != 0,
                  let name = ELFFile.sectionString(elf, dynsym.strings, sym.st_name) else { continue }
            let (version, hidden) = tables.version(ofSymbol: index)
            let symbol = Symbol(name: name, version: version, binding: binding)
            if sym.st_shndx == 0 {
                references.append(symbol)
            } else if !hidden && type != 0 {
                definitions.append(symbol)
            }
        }
        return DynamicSymbols(definitions: definitions, references: references)
    }

    /// STB_GLOBAL, STB_WEAK and STB_GNU_UNIQUE; nil for any other binding.
    static func binding(_ raw: UInt8) -> Binding? {
        switch raw {
        case 1: .global
        case 2: .weak
        case 10: .unique
        default: nil
        }
    }

    /// The sections the symbols are read from: .dynsym (its data, the index of
    /// its string table and its entry count), .gnu.version, and the version
    /// names by index, from .gnu.version_d and .gnu.version_r.
    struct SymbolTables {
        var dynsym: (data: UnsafeMutablePointer<Elf_Data>, strings: Int, count: Int)?
        var versym: UnsafeMutablePointer<Elf_Data>?
        var versionNames: [UInt16: String] = [:]

        static func scan(_ elf: OpaquePointer) -> SymbolTables {
            var tables = SymbolTables()
            ELFFile.forEachSection(elf) { section, shdr in
                guard shdr.sh_type != ELFConstant.shtNobits, let data = elf_getdata(section, nil) else { return }
                switch shdr.sh_type {
                case ELFConstant.shtDynsym:
                    let entry = gelf_fsize(elf, ELF_T_SYM, 1, UInt32(EV_CURRENT))
                    if entry > 0 {
                        tables.dynsym = (data, Int(shdr.sh_link), min(data.pointee.d_size / entry, DynamicSymbols.maxSymbols))
                    }
                case ELFConstant.shtGNUVersym:
                    tables.versym = data
                case ELFConstant.shtGNUVerdef:
                    tables.readDefinitionNames(elf, data, strings: Int(shdr.sh_link))
                case ELFConstant.shtGNUVerneed:
                    tables.readNeedNames(elf, data, strings: Int(shdr.sh_link))
                default: break
                }
            }
            return tables
        }

        /// .gnu.version_d: the name of each version this object defines, except the base one (its own name).
        mutating func readDefinitionNames(_ elf: OpaquePointer, _ data: UnsafeMutablePointer<Elf_Data>, strings: Int) {
            var offset = 0
            for _ in 0..<ELFConstant.maxVersionEntries {
                var def = GElf_Verdef()
                guard offset < data.pointee.d_size, gelf_getverdef(data, Int32(clamping: offset), &def) != nil else { break }
                var aux = GElf_Verdaux()
                let auxOffset = offset + Int(def.vd_aux)
                if auxOffset < data.pointee.d_size, gelf_getverdaux(data, Int32(clamping: auxOffset), &aux) != nil,
                   def.vd_flags & ELFConstant.verFlagBase == 0,
                   let name = ELFFile.sectionString(elf, strings, aux.vda_name) {
                    versionNames[def.vd_ndx] = name
                }
                if def.vd_next == 0 { break }
                offset += Int(def.vd_next)
            }
        }

        /// .gnu.version_r: the name of each version this object needs from another.
        mutating func readNeedNames(_ elf: OpaquePointer, _ data: UnsafeMutablePointer<Elf_Data>, strings: Int) {
            var offset = 0
            var steps = 0
            while steps < ELFConstant.maxVersionEntries {
                var need = GElf_Verneed()
                guard offset < data.pointee.d_size, gelf_getverneed(data, Int32(clamping: offset), &need) != nil else { break }
                var auxOffset = offset + Int(need.vn_aux)
                for _ in 0..<Int(need.vn_cnt) {
                    steps += 1
                    var aux = GElf_Vernaux()
                    guard steps < ELFConstant.maxVersionEntries, auxOffset < data.pointee.d_size,
                          gelf_getvernaux(data, Int32(clamping: auxOffset), &aux) != nil else { break }
                    if let name = ELFFile.sectionString(elf, strings, aux.vna_name) {
                        versionNames[aux.vna_other] = name
                    }
                    if aux.vna_next == 0 { break }
                    auxOffset += Int(aux.vna_next)
                }
                steps += 1
                if need.vn_next == 0 { break }
                offset += Int(need.vn_next)
            }
        }

        /// The version of the dynamic symbol at `index` (none for index 0 or 1,
        /// local and global), and whether it is hidden.
        func version(ofSymbol index: Int) -> (name: String?, hidden: Bool) {
            var version: String?
            var hidden = false
            if let versym {
                var vs = GElf_Versym()
                if gelf_getversym(versym, Int32(clamping: index), &vs) != nil {
                    hidden = vs & 0x8000 != 0
                    let ndx = vs & 0x7fff
                    if ndx > 1 { version = versionNames[ndx] }
                }
            }
            return (version, hidden)
        }
    }
}
