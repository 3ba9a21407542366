#if canImport(Glibc)
import Glibc
#endif

/// What the loader's world needs to know about one file on the host: its
/// identity, size, a hash of its bytes and, for an ELF object, the facts the
/// loaders read. The recorder takes these of every file a run opened or mapped
/// (docs/trace-format.md, OBJECT records); the scenarios rebuild the world from them.
public struct FileFacts: Sendable, Equatable {
    public var id: FileID
    public var size: UInt64
    public var contentHash: UInt64
    /// nil: not an ELF file (or one the reader refused).
    public var elf: ELFFile?

    public init(id: FileID, size: UInt64, contentHash: UInt64, elf: ELFFile?) {
        self.id = id; self.size = size; self.contentHash = contentHash; self.elf = elf
    }

    /// Reads `path` (following symlinks, as the program's open did). nil when it
    /// is not a regular file that can be read, or is not an ELF file and
    /// `elfOnly` is set (the only kind the loader's world uses).
    public static func read(_ path: String, elfOnly: Bool = true) -> FileFacts? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { return nil }
        var magic = [UInt8](repeating: 0, count: 4)
        let n = magic.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 4, 0) }
        let isELF = n == 4 && magic == [0x7f, 0x45, 0x4c, 0x46]
        if elfOnly && !isELF { return nil }
        let size = UInt64(st.st_size)
        guard let hash = ContentHash.of(fd: fd, size: size) else { return nil }
        let elf = isELF ? try? ELFFile(contentsOf: path) : nil
        if elfOnly && elf == nil { return nil }
        return FileFacts(id: FileID(device: UInt64(st.st_dev), inode: UInt64(st.st_ino)), size: size,
                         contentHash: hash, elf: elf)
    }
}

/// A 64-bit hash of a file's bytes: 8-byte little-endian words (the tail
/// zero-padded), each mixed as `h = rotl(h ^ w * K1, 31) * K2`, then the length
/// and a final avalanche. Not cryptographic: it tells whether two runs mapped
/// the same bytes, the question `diff` and `fix --check` ask.
public enum ContentHash {
    static let k1: UInt64 = 0x9e37_79b9_7f4a_7c15
    static let k2: UInt64 = 0xc2b2_ae3d_27d4_eb4f

    public static func of(bytes: UnsafeRawBufferPointer) -> UInt64 {
        var h: UInt64 = 0x2545_f491_4f6c_dd1d
        let words = bytes.count / 8
        for i in 0..<words {
            let w = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))
            h = (h ^ (w &* k1)).rotateLeft(31) &* k2
        }
        var tail: UInt64 = 0
        for i in stride(from: bytes.count - 1, through: words * 8, by: -1) { tail = tail << 8 | UInt64(bytes[i]) }
        if bytes.count % 8 != 0 { h = (h ^ (tail &* k1)).rotateLeft(31) &* k2 }
        h ^= UInt64(bytes.count)
        h ^= h >> 33; h = h &* 0xff51_afd7_ed55_8ccd
        h ^= h >> 33; h = h &* 0xc4ce_b9fe_1a85_ec53
        return h ^ (h >> 33)
    }

    /// The hash of an open regular file of `size` bytes (mapped, not read).
    public static func of(fd: Int32, size: UInt64) -> UInt64? {
        if size == 0 { return of(bytes: UnsafeRawBufferPointer(start: nil, count: 0)) }
        guard size <= UInt64(Int.max), let map = mmap(nil, Int(size), PROT_READ, MAP_PRIVATE, fd, 0),
              map != MAP_FAILED else { return nil }
        defer { munmap(map, Int(size)) }
        return of(bytes: UnsafeRawBufferPointer(start: map, count: Int(size)))
    }
}

extension UInt64 {
    @inline(__always) func rotateLeft(_ n: UInt64) -> UInt64 { self << n | self >> (64 - n) }
}
