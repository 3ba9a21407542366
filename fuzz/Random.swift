// The random source of both fuzzers: every input follows from its seed.
import TestSupport

typealias Random = SplitMix64

extension SplitMix64 {
    mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
    mutating func pick<T>(_ a: [T]) -> T { a[below(a.count)] }
    mutating func bool() -> Bool { next() & 1 == 1 }

    static let edges64: [UInt64] = [0, 1, 2, 7, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff,
                                    0x1_0000_0000, 0x7fff_ffff_ffff_ffff, 0x8000_0000_0000_0000, .max, .max - 1]
    /// A value near an edge of some integer type, or small, or anything.
    mutating func extreme() -> UInt64 {
        switch below(4) {
        case 0: return pick(Self.edges64)
        case 1: return pick(Self.edges64) &+ UInt64(below(3)) &- 1
        case 2: return UInt64(below(1000))
        default: return next()
        }
    }
    mutating func i32() -> Int32 { Int32(truncatingIfNeeded: extreme()) }
    mutating func i64() -> Int64 { Int64(bitPattern: extreme()) }
    mutating func u32() -> UInt32 { UInt32(truncatingIfNeeded: extreme()) }
    mutating func u16() -> UInt16 { UInt16(truncatingIfNeeded: extreme()) }
    /// 0 ..< n, small values much more likely (sizes and counts).
    mutating func skewed(_ n: Int) -> Int { below(1 + below(max(1, n))) }
}

/// Byte strings that are not valid UTF-8, or odd in other ways, for names and paths.
enum OddBytes {
    static let fragments: [[UInt8]] = [
        [0xff], [0xfe, 0xff], [0xc3], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82],
        [0x80, 0x80], [0x00], [0x0a], [0x1b, 0x5b, 0x33, 0x31, 0x6d], Array("\"<>&'".utf8), Array("\\u0000".utf8),
        Array("%s%n".utf8), Array("\u{202e}".utf8), Array("\u{1F600}".utf8), Array(" ".utf8), Array("..".utf8),
        Array("$ORIGIN".utf8), Array("${ORIGIN}".utf8), Array("$LIB".utf8), Array("$PLATFORM".utf8), Array(":".utf8),
    ]
}
