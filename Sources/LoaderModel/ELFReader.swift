import CLibElf

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// libelf must be told which ELF version the caller speaks before any other call;
/// a Swift global is initialised once, thread-safely, on first use.
let libelfReady: Bool = elf_version(UInt32(EV_CURRENT)) != UInt32(EV_NONE)

// elf.h values, spelled out so that their Swift import type does not matter.
enum ELFConstant {
    static let ptLoad: UInt32 = 1
    static let ptDynamic: UInt32 = 2
    static let ptInterp: UInt32 = 3
    static let dtNull: Int64 = 0
    static let dtNeeded: Int64 = 1
    static let dtStrtab: Int64 = 5
    static let dtStrsz: Int64 = 10
    static let dtSoname: Int64 = 14
    static let dtRpath: Int64 = 15
    static let dtRunpath: Int64 = 29
    static let dtFlags: Int64 = 30
    static let dtFlags1: Int64 = 0x6fff_fffb
    static let dtAuxiliary: Int64 = 0x7fff_fffd
    static let dtFilter: Int64 = 0x7fff_ffff
    static let shtDynamic: UInt32 = 6
    static let shtDynsym: UInt32 = 11
    static let shtGNUVerdef: UInt32 = 0x6fff_fffd
    static let shtGNUVerneed: UInt32 = 0x6fff_fffe
    static let shtGNUVersym: UInt32 = 0x6fff_ffff
    static let shtNobits: UInt32 = 8
    static let verFlagBase: UInt16 = 0x1
    static let verFlagWeak: UInt16 = 0x2
    /// Upper bound on version entries walked: the chains are offsets inside the
    /// section, and a crafted file can make them long; real files have < 100.
    static let maxVersionEntries = 100_000
}

extension ELFFile {
    /// Reads `path` the way the loader would see it: identity from the ELF header,
    /// PT_INTERP and PT_DYNAMIC from the program headers (as ld.so does), versions
    /// from .gnu.version_r / .gnu.version_d.
    public init(contentsOf path: String) throws(ELFReadError) {
        let fd = try ELFFileDescriptor.open(path)
        defer { close(fd.raw) }
        guard libelfReady else { throw ELFReadError(path: path, reason: .malformed(detail: "libelf unusable")) }
        try ELFFile.checkIdentity(fd: fd, path: path)
        guard let elf = elf_begin(fd.raw, ELF_C_READ_MMAP, nil) else {
            throw ELFFile.beginError(path: path, size: fd.size)
        }
        defer { elf_end(elf) }
        self = try ELFFile.parse(elf: elf, size: fd.size, path: path)
    }

    /// Parses an in-memory image (the fuzz target and tests use this).
    public init(bytes: [UInt8], path: String = "<memory>") throws(ELFReadError) {
        guard libelfReady else { throw ELFReadError(path: path, reason: .malformed(detail: "libelf unusable")) }
        if bytes.isEmpty { throw ELFReadError(path: path, reason: .empty) }
        if let problem = ELFFile.identityProblem(prefix: bytes) {
            throw ELFReadError(path: path, reason: problem)
        }
        var image = bytes
        let result: Result<ELFFile, ELFReadError> = image.withUnsafeMutableBytes { raw in
            guard let base = raw.baseAddress?.assumingMemoryBound(to: CChar.self),
                  let elf = elf_memory(base, raw.count) else {
                return .failure(ELFFile.beginError(path: path, size: raw.count))
            }
            defer { elf_end(elf) }
            do throws(ELFReadError) {
                return .success(try ELFFile.parse(elf: elf, size: raw.count, path: path))
            } catch {
                return .failure(error)
            }
        }
        self = try result.get()
    }

    static func checkIdentity(fd: ELFFileDescriptor, path: String) throws(ELFReadError) {
        var prefix = [UInt8](repeating: 0, count: 64)
        let n = prefix.withUnsafeMutableBytes { pread(fd.raw, $0.baseAddress, 64, 0) }
        if n < 0 { throw ELFReadError(path: path, reason: .ioError(errno: errno)) }
        if let problem = identityProblem(prefix: Array(prefix.prefix(n))) {
            throw ELFReadError(path: path, reason: problem)
        }
    }

    /// The checks before libelf sees the file, so that the message says what the
    /// file is rather than what libelf could not do.
    static func identityProblem(prefix: [UInt8]) -> ELFReadError.Reason? {
        if prefix.isEmpty { return .empty }
        let magic: [UInt8] = [0x7f, 0x45, 0x4c, 0x46]
        if prefix.count < 4 || Array(prefix.prefix(4)) != magic {
            if prefix.starts(with: magic.prefix(prefix.count)) && prefix.count < 4 {
                return .truncated(detail: "ELF identification")
            }
            if prefix.starts(with: [0x23, 0x21]) {
                let line = prefix.dropFirst(2).prefix { $0 != 0x0a && $0 != 0 }
                let interp = String(decoding: line, as: UTF8.self).trimmingSpaces()
                return .notELF(detail: interp.isEmpty ? "a script" : "a script for \(interp)")
            }
            if prefix.starts(with: Array("!<arch>".utf8)) { return .notELF(detail: "an ar archive") }
            let printable = prefix.allSatisfy { $0 == 9 || $0 == 10 || $0 == 13 || (0x20..<0x7f).contains($0) || $0 >= 0x80 }
            return .notELF(detail: printable ? "text" : "no ELF magic number")
        }
        if prefix.count < 16 { return .truncated(detail: "ELF identification is \(prefix.count) bytes, needs 16") }
        guard prefix[4] == 1 || prefix[4] == 2 else { return .malformed(detail: "invalid ELF class \(prefix[4])") }
        guard prefix[5] == 1 || prefix[5] == 2 else { return .malformed(detail: "invalid data encoding \(prefix[5])") }
        let headerSize = prefix[4] == 1 ? 52 : 64
        if prefix.count < headerSize {
            return .truncated(detail: "ELF header is \(prefix.count) bytes, needs \(headerSize)")
        }
        return nil
    }

    static func beginError(path: String, size: Int) -> ELFReadError {
        let message = String(cString: elf_errmsg(elf_errno()))
        // libelf refuses a file whose section or program header table lies past the end.
        if message.contains("offset") || message.contains("size") || message.contains("invalid") {
            return ELFReadError(path: path, reason: .truncated(detail: "headers point past the end of the \(size)-byte file (libelf: \(message))"))
        }
        return ELFReadError(path: path, reason: .malformed(detail: "libelf: \(message)"))
    }

    // MARK: - Parsing an open libelf handle

    static func parse(elf: OpaquePointer, size: Int, path: String) throws(ELFReadError) -> ELFFile {
        func fail(_ reason: ELFReadError.Reason) -> ELFReadError { ELFReadError(path: path, reason: reason) }
        guard elf_kind(elf) == ELF_K_ELF else { throw fail(.notELF(detail: "no ELF magic number")) }
        var identSize = 0
        guard let identPointer = elf_getident(elf, &identSize), identSize >= 16 else {
            throw fail(.truncated(detail: "ELF identification"))
        }
        let ident = UnsafeRawPointer(identPointer).assumingMemoryBound(to: UInt8.self)
        let fileClass: ELFFile.FileClass
        switch ident[4] {
        case 1: fileClass = .elf32
        case 2: fileClass = .elf64
        default: throw fail(.malformed(detail: "invalid ELF class \(ident[4])"))
        }
        let byteOrder: ELFFile.ByteOrder
        switch ident[5] {
        case 1: byteOrder = .littleEndian
        case 2: byteOrder = .bigEndian
        default: throw fail(.malformed(detail: "invalid data encoding \(ident[5])"))
        }
        var ehdr = GElf_Ehdr()
        guard gelf_getehdr(elf, &ehdr) != nil else { throw fail(.truncated(detail: "ELF header")) }

        var file = ELFFile(path: path, fileClass: fileClass, byteOrder: byteOrder,
                           machine: Machine(rawValue: ehdr.e_machine), osABI: ident[7], abiVersion: ident[8],
                           type: objectType(ehdr.e_type))

        var phnum = 0
        guard elf_getphdrnum(elf, &phnum) == 0 else {
            throw fail(.malformed(detail: "program header count (libelf: \(String(cString: elf_errmsg(-1))))"))
        }
        // The header's own count (libelf reports none when the table is cut off).
        let declared = max(phnum, ehdr.e_phnum == 0xffff ? 0 : Int(ehdr.e_phnum))
        if declared > 0 {
            let end = UInt64(ehdr.e_phoff).addingReportingOverflow(UInt64(declared) &* UInt64(ehdr.e_phentsize))
            if end.overflow || end.partialValue > UInt64(size) {
                throw fail(.truncated(detail: "program headers end past the \(size)-byte file"))
            }
        }
        var loads: [GElf_Phdr] = []
        var dynamic: GElf_Phdr?
        var interp: GElf_Phdr?
        for index in 0..<phnum {
            var ph = GElf_Phdr()
            guard gelf_getphdr(elf, Int32(index), &ph) != nil else {
                throw fail(.truncated(detail: "program header \(index)"))
            }
            switch ph.p_type {
            case ELFConstant.ptLoad: loads.append(ph)
            case ELFConstant.ptDynamic: if dynamic == nil { dynamic = ph }
            case ELFConstant.ptInterp: if interp == nil { interp = ph }
            default: break
            }
        }

        if let interp {
            guard let bytes = rawChunk(elf, offset: interp.p_offset, size: interp.p_filesz, fileSize: size) else {
                throw fail(.truncated(detail: "PT_INTERP lies past the end of the \(size)-byte file"))
            }
            file.interpreter = String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }

        if let dynamic {
            file.isDynamic = true
            try readDynamic(elf: elf, segment: dynamic, loads: loads, size: size, into: &file, fail: fail)
        }
        readVersions(elf: elf, into: &file)
        return file
    }

    static func objectType(_ raw: UInt16) -> ELFFile.ObjectType { ELFFile.ObjectType(rawValue: raw) }

    /// Bytes of the file at [offset, offset+size), or nil when that range is not inside it.
    static func rawChunk(_ elf: OpaquePointer, offset: UInt64, size: UInt64, fileSize: Int) -> [UInt8]? {
        let end = offset.addingReportingOverflow(size)
        guard !end.overflow, end.partialValue <= UInt64(fileSize), size < UInt64(Int.max) else { return nil }
        if size == 0 { return [] }
        guard let data = elf_getdata_rawchunk(elf, Int64(offset), Int(size), ELF_T_BYTE),
              let buffer = data.pointee.d_buf else { return nil }
        return Array(UnsafeRawBufferPointer(start: buffer, count: data.pointee.d_size))
    }

    /// File offset of virtual address `address`, through the PT_LOAD segments (as
    /// the loader maps them); nil when no segment's file image covers it.
    static func fileOffset(of address: UInt64, in loads: [GElf_Phdr]) -> UInt64? {
        for load in loads where address >= load.p_vaddr {
            let delta = address - load.p_vaddr
            if delta < load.p_filesz {
                let offset = load.p_offset.addingReportingOverflow(delta)
                return offset.overflow ? nil : offset.partialValue
            }
        }
        return nil
    }

    static func readDynamic(elf: OpaquePointer, segment: GElf_Phdr, loads: [GElf_Phdr], size: Int,
                            into file: inout ELFFile,
                            fail: (ELFReadError.Reason) -> ELFReadError) throws(ELFReadError) {
        let end = segment.p_offset.addingReportingOverflow(segment.p_filesz)
        guard !end.overflow, end.partialValue <= UInt64(size) else {
            throw fail(.truncated(detail: "PT_DYNAMIC lies past the end of the \(size)-byte file"))
        }
        let entrySize = gelf_fsize(elf, ELF_T_DYN, 1, UInt32(EV_CURRENT))
        guard entrySize > 0, segment.p_filesz >= UInt64(entrySize) else {
            throw fail(.malformed(detail: "empty PT_DYNAMIC"))
        }
        guard let data = elf_getdata_rawchunk(elf, Int64(segment.p_offset), Int(segment.p_filesz), ELF_T_DYN) else {
            throw fail(.malformed(detail: "unreadable PT_DYNAMIC (libelf: \(String(cString: elf_errmsg(-1))))"))
        }
        let count = Int(segment.p_filesz) / entrySize
        var entries: [(tag: Int64, value: UInt64)] = []
        var strtabAddress: UInt64?
        var strtabSize: UInt64?
        for index in 0..<count {
            var dyn = GElf_Dyn()
            guard gelf_getdyn(data, Int32(clamping: index), &dyn) != nil else { break }
            let tag = dyn.d_tag
            if tag == ELFConstant.dtNull { break }
            let value = dyn.d_un.d_val
            switch tag {
            case ELFConstant.dtStrtab: strtabAddress = value
            case ELFConstant.dtStrsz: strtabSize = value
            case ELFConstant.dtFlags: file.flags = value
            case ELFConstant.dtFlags1: file.flags1 = value
            default: entries.append((tag, value))
            }
        }
        let stringTags: Set<Int64> = [ELFConstant.dtNeeded, ELFConstant.dtSoname, ELFConstant.dtRpath,
                                      ELFConstant.dtRunpath, ELFConstant.dtAuxiliary, ELFConstant.dtFilter]
        guard entries.contains(where: { stringTags.contains($0.tag) }) else { return }

        var strtab: [UInt8]?
        if let strtabAddress, let offset = fileOffset(of: strtabAddress, in: loads) {
            let available = UInt64(size) > offset ? UInt64(size) - offset : 0
            strtab = rawChunk(elf, offset: offset, size: min(strtabSize ?? available, available), fileSize: size)
        }
        if strtab == nil { strtab = dynamicStringSection(elf: elf) }
        guard let strtab else {
            throw fail(.malformed(detail: "dynamic string table (DT_STRTAB) is not inside the file"))
        }
        func string(_ offset: UInt64) throws(ELFReadError) -> String {
            guard offset < UInt64(strtab.count) else {
                throw fail(.malformed(detail: "dynamic string offset \(offset) past the \(strtab.count)-byte string table"))
            }
            let start = Int(offset)
            let tail = strtab[start...]
            guard let nul = tail.firstIndex(of: 0) else {
                throw fail(.truncated(detail: "dynamic string at offset \(offset) has no terminator"))
            }
            return String(decoding: strtab[start..<nul], as: UTF8.self)
        }
        for (tag, value) in entries {
            switch tag {
            case ELFConstant.dtNeeded: file.needed.append(try string(value))
            case ELFConstant.dtSoname: file.soname = try string(value)
            case ELFConstant.dtRpath: file.rpath = try string(value)
            case ELFConstant.dtRunpath: file.runpath = try string(value)
            case ELFConstant.dtAuxiliary, ELFConstant.dtFilter: file.filters.append(try string(value))
            default: break
            }
        }
    }

    /// The string table named by the SHT_DYNAMIC section's sh_link, for files whose
    /// DT_STRTAB address no PT_LOAD covers (rare; some prelinked or odd objects).
    static func dynamicStringSection(elf: OpaquePointer) -> [UInt8]? {
        var scn = elf_nextscn(elf, nil)
        while let section = scn {
            var shdr = GElf_Shdr()
            if gelf_getshdr(section, &shdr) != nil, shdr.sh_type == ELFConstant.shtDynamic,
               let strings = elf_getscn(elf, Int(shdr.sh_link)),
               let data = elf_getdata(strings, nil), let buffer = data.pointee.d_buf {
                return Array(UnsafeRawBufferPointer(start: buffer, count: data.pointee.d_size))
            }
            scn = elf_nextscn(elf, section)
        }
        return nil
    }

    /// Calls `body` with each section and its header, at most 65,536 sections
    /// (a damaged file's section chain can be long).
    static func forEachSection(_ elf: OpaquePointer, _ body: (OpaquePointer, GElf_Shdr) -> Void) {
        var scn = elf_nextscn(elf, nil)
        var visited = 0
        while let section = scn, visited < 65_536 {
            visited += 1
            var shdr = GElf_Shdr()
            if gelf_getshdr(section, &shdr) != nil { body(section, shdr) }
            scn = elf_nextscn(elf, section)
        }
    }

    /// .gnu.version_r and .gnu.version_d. A damaged version section is not fatal:
    /// the loader would report it only when it checks versions, so explain does too.
    static func readVersions(elf: OpaquePointer, into file: inout ELFFile) {
        forEachSection(elf) { section, shdr in
            switch shdr.sh_type {
            case ELFConstant.shtGNUVerneed:
                if let data = elf_getdata(section, nil) {
                    file.versionNeeds = versionNeeds(elf: elf, data: data, strings: Int(shdr.sh_link))
                }
            case ELFConstant.shtGNUVerdef:
                if let data = elf_getdata(section, nil) {
                    file.versionDefinitions = versionDefinitions(elf: elf, data: data, strings: Int(shdr.sh_link))
                }
            default: break
            }
        }
    }

    static func sectionString(_ elf: OpaquePointer, _ section: Int, _ offset: UInt32) -> String? {
        guard let pointer = elf_strptr(elf, section, Int(offset)) else { return nil }
        return String(cString: pointer)
    }

    static func versionNeeds(elf: OpaquePointer, data: UnsafeMutablePointer<Elf_Data>, strings: Int) -> [VersionNeed] {
        var result: [VersionNeed] = []
        var offset = 0
        var steps = 0
        while steps < ELFConstant.maxVersionEntries {
            var need = GElf_Verneed()
            guard offset >= 0, offset < data.pointee.d_size,
                  gelf_getverneed(data, Int32(clamping: offset), &need) != nil else { break }
            steps += 1
            var versions: [VersionRequirement] = []
            var auxOffset = offset + Int(need.vn_aux)
            for _ in 0..<Int(need.vn_cnt) {
                var aux = GElf_Vernaux()
                guard auxOffset < data.pointee.d_size, steps < ELFConstant.maxVersionEntries,
                      gelf_getvernaux(data, Int32(clamping: auxOffset), &aux) != nil else { break }
                steps += 1
                if let name = sectionString(elf, strings, aux.vna_name) {
                    versions.append(VersionRequirement(name: name, isWeak: aux.vna_flags & ELFConstant.verFlagWeak != 0))
                }
                if aux.vna_next == 0 { break }
                auxOffset += Int(aux.vna_next)
            }
            if let fileName = sectionString(elf, strings, need.vn_file) {
                result.append(VersionNeed(file: fileName, versions: versions))
            }
            if need.vn_next == 0 { break }
            offset += Int(need.vn_next)
        }
        return result
    }

    static func versionDefinitions(elf: OpaquePointer, data: UnsafeMutablePointer<Elf_Data>, strings: Int) -> [VersionDefinition] {
        var result: [VersionDefinition] = []
        var offset = 0
        var steps = 0
        while steps < ELFConstant.maxVersionEntries {
            var def = GElf_Verdef()
            guard offset >= 0, offset < data.pointee.d_size,
                  gelf_getverdef(data, Int32(clamping: offset), &def) != nil else { break }
            steps += 1
            var aux = GElf_Verdaux()
            let auxOffset = offset + Int(def.vd_aux)
            if def.vd_cnt > 0, auxOffset < data.pointee.d_size,
               gelf_getverdaux(data, Int32(clamping: auxOffset), &aux) != nil,
               let name = sectionString(elf, strings, aux.vda_name) {
                result.append(VersionDefinition(name: name, isBase: def.vd_flags & ELFConstant.verFlagBase != 0,
                                                index: def.vd_ndx))
            }
            if def.vd_next == 0 { break }
            offset += Int(def.vd_next)
        }
        return result
    }
}

/// An open, regular file: the one place where a path becomes a descriptor, so
/// that every refusal (missing, directory, unreadable) gets a clear reason.
struct ELFFileDescriptor {
    var raw: Int32
    var size: Int

    static func open(_ path: String) throws(ELFReadError) -> ELFFileDescriptor {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK) // a FIFO must not block explain
        if fd < 0 {
            let error = errno
            switch error {
            case ENOENT, ENOTDIR: throw ELFReadError(path: path, reason: .notFound)
            case EACCES, EPERM: throw ELFReadError(path: path, reason: .permissionDenied)
            case EISDIR: throw ELFReadError(path: path, reason: .isDirectory)
            default: throw ELFReadError(path: path, reason: .ioError(errno: error))
            }
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let error = errno
            close(fd)
            throw ELFReadError(path: path, reason: .ioError(errno: error))
        }
        let kind = st.st_mode & S_IFMT
        if kind == S_IFDIR { close(fd); throw ELFReadError(path: path, reason: .isDirectory) }
        if kind != S_IFREG { close(fd); throw ELFReadError(path: path, reason: .notRegularFile) }
        if st.st_size == 0 { close(fd); throw ELFReadError(path: path, reason: .empty) }
        return ELFFileDescriptor(raw: fd, size: Int(st.st_size))
    }
}

extension String {
    func trimmingSpaces() -> String {
        var scalars = Substring(self)
        while let first = scalars.first, first == " " || first == "\t" || first == "\r" { scalars.removeFirst() }
        while let last = scalars.last, last == " " || last == "\t" || last == "\r" { scalars.removeLast() }
        return String(scalars)
    }
}
