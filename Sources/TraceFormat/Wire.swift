/// The loadprobe trace encoding, version 1 (docs/trace-format.md).
///
/// A file is an 16-byte header (`LPTRACE\n`, u32 version, u32 zero) followed by
/// chunks (`LPCK`, u32 payload length, payload). A payload is a run of records:
/// one kind byte, then LEB128 varints (signed ones zigzag-encoded). Strings are
/// interned: a STRING record gives the next id (from 1); paths are a directory
/// id and a base-name id. Times are deltas from the previous time field written.
public enum TraceWire {
    public static let magic: [UInt8] = Array("LPTRACE\n".utf8)
    public static let chunkMagic: [UInt8] = Array("LPCK".utf8)
    /// The version this loadprobe writes. Version 2 added the CALLER record,
    /// version 3 the OBJECT record (the loader's world); older files (which
    /// have none) are read as well.
    public static let version: UInt32 = 3
    public static let oldestReadable: UInt32 = 1
    public static let headerSize = 16
    public static let chunkHeaderSize = 8

    enum Kind: UInt8 {
        case string = 0x01
        case meta = 0x02
        case syscall = 0x10
        case audit = 0x20
        case process = 0x30
        case exec = 0x31
        case exit = 0x32
        case note = 0x40
        case caller = 0x41
        case object = 0x50
        case end = 0x7F
    }

    // Bits of the syscall record's flags varint.
    static let sysOwn: UInt64 = 1
    static let sysIncomplete: UInt64 = 2
    static let sysHasResolved: UInt64 = 4
    static let sysHasDirfd: UInt64 = 8
    static let sysAnswered: UInt64 = 16

    // Bits of the object record's flags varint.
    static let objDynamic: UInt64 = 1
    static let objInterpreter: UInt64 = 2
    static let objSoname: UInt64 = 4
    static let objRpath: UInt64 = 8
    static let objRunpath: UInt64 = 16
}

@inline(__always) func zigzag(_ v: Int64) -> UInt64 { UInt64(bitPattern: (v << 1) ^ (v >> 63)) }
@inline(__always) func unzigzag(_ v: UInt64) -> Int64 { Int64(bitPattern: v >> 1) ^ -Int64(bitPattern: v & 1) }
