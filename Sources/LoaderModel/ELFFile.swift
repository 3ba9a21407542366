/// What the dynamic loader needs to know about one ELF file: its identity (class,
/// byte order, machine, type), its program interpreter, and its dynamic section
/// (DT_NEEDED, DT_RPATH, DT_RUNPATH, DT_SONAME, DT_FLAGS_1) plus the symbol
/// versions it requires (.gnu.version_r) and provides (.gnu.version_d).
///
/// Read it with ``ELFFile/init(contentsOf:)`` (libelf, through CLibElf).
public struct ELFFile: Sendable, Hashable {
    public enum FileClass: String, Sendable, Hashable {
        case elf32 = "ELF32"
        case elf64 = "ELF64"
    }

    public enum ByteOrder: String, Sendable, Hashable {
        case littleEndian = "LSB"
        case bigEndian = "MSB"
    }

    public enum ObjectType: Sendable, Hashable {
        case relocatable, executable, sharedObject, core
        case other(UInt16)

        /// e_type.
        public init(rawValue: UInt16) {
            switch rawValue {
            case 1: self = .relocatable
            case 2: self = .executable
            case 3: self = .sharedObject
            case 4: self = .core
            default: self = .other(rawValue)
            }
        }

        public var rawValue: UInt16 {
            switch self {
            case .relocatable: 1
            case .executable: 2
            case .sharedObject: 3
            case .core: 4
            case .other(let v): v
            }
        }
    }

    /// The file as named by the caller (not resolved through symlinks).
    public var path: String
    public var fileClass: FileClass
    public var byteOrder: ByteOrder
    public var machine: Machine
    public var osABI: UInt8
    public var abiVersion: UInt8
    public var type: ObjectType
    /// PT_INTERP, without its terminating NUL.
    public var interpreter: String?
    /// True when the file has a PT_DYNAMIC segment: the loader processes it.
    public var isDynamic: Bool
    /// DT_NEEDED entries in file order (the loader's order).
    public var needed: [String]
    public var rpath: String?
    public var runpath: String?
    public var soname: String?
    /// DT_FLAGS and DT_FLAGS_1 (0 when absent).
    public var flags: UInt64
    public var flags1: UInt64
    /// DT_AUXILIARY and DT_FILTER names; glibc loads them too, explain reports them only.
    public var filters: [String]
    public var versionNeeds: [VersionNeed]
    public var versionDefinitions: [VersionDefinition]

    public init(path: String, fileClass: FileClass, byteOrder: ByteOrder, machine: Machine,
                osABI: UInt8 = 0, abiVersion: UInt8 = 0, type: ObjectType, interpreter: String? = nil,
                isDynamic: Bool = false, needed: [String] = [], rpath: String? = nil,
                runpath: String? = nil, soname: String? = nil, flags: UInt64 = 0, flags1: UInt64 = 0,
                filters: [String] = [], versionNeeds: [VersionNeed] = [],
                versionDefinitions: [VersionDefinition] = []) {
        self.path = path
        self.fileClass = fileClass
        self.byteOrder = byteOrder
        self.machine = machine
        self.osABI = osABI
        self.abiVersion = abiVersion
        self.type = type
        self.interpreter = interpreter
        self.isDynamic = isDynamic
        self.needed = needed
        self.rpath = rpath
        self.runpath = runpath
        self.soname = soname
        self.flags = flags
        self.flags1 = flags1
        self.filters = filters
        self.versionNeeds = versionNeeds
        self.versionDefinitions = versionDefinitions
    }

    /// DF_1_NODEFLIB: ld.so.cache entries in the system directories and the
    /// default directories are not used for this object's dependencies.
    public var noDefaultLib: Bool { flags1 & DynamicFlags1.noDefaultLib != 0 }

    /// The versions this object defines, without the base (file-name) entry.
    public var providedVersions: [String] {
        versionDefinitions.filter { !$0.isBase }.map(\.name)
    }
}

/// `e_machine`, with names for the machines a report is likely to meet.
public struct Machine: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let i386 = Machine(rawValue: 3)
    public static let powerPC = Machine(rawValue: 20)
    public static let powerPC64 = Machine(rawValue: 21)
    public static let s390 = Machine(rawValue: 22)
    public static let arm = Machine(rawValue: 40)
    public static let x86_64 = Machine(rawValue: 62)
    public static let aarch64 = Machine(rawValue: 183)
    public static let riscv = Machine(rawValue: 243)
    public static let loongArch = Machine(rawValue: 258)

    public var description: String {
        switch self {
        case .i386: "i386"
        case .powerPC: "ppc"
        case .powerPC64: "ppc64"
        case .s390: "s390"
        case .arm: "arm"
        case .x86_64: "x86-64"
        case .aarch64: "aarch64"
        case .riscv: "riscv"
        case .loongArch: "loongarch"
        default: "machine \(rawValue)"
        }
    }
}

/// One Verneed entry: the versions required from the object named `file`.
public struct VersionNeed: Sendable, Hashable {
    public var file: String
    public var versions: [VersionRequirement]
    public init(file: String, versions: [VersionRequirement]) {
        self.file = file
        self.versions = versions
    }
}

public struct VersionRequirement: Sendable, Hashable {
    public var name: String
    /// VER_FLG_WEAK: a missing weak version is a warning for glibc, not an error.
    public var isWeak: Bool
    public init(name: String, isWeak: Bool = false) {
        self.name = name
        self.isWeak = isWeak
    }
}

public struct VersionDefinition: Sendable, Hashable {
    public var name: String
    /// VER_FLG_BASE: the entry naming the file itself, not a version.
    public var isBase: Bool
    public var index: UInt16
    public init(name: String, isBase: Bool = false, index: UInt16 = 0) {
        self.name = name
        self.isBase = isBase
        self.index = index
    }
}

/// DT_FLAGS_1 bits the loader simulation cares about (elf.h names in comments).
public enum DynamicFlags1 {
    public static let now: UInt64 = 0x1            // DF_1_NOW
    public static let noDefaultLib: UInt64 = 0x800 // DF_1_NODEFLIB
    public static let pie: UInt64 = 0x0800_0000    // DF_1_PIE
}
