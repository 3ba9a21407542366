/// Interns byte strings without making Swift Strings: the tracer and the audit
/// drain see hundreds of thousands of paths per process, most of them
/// repeating a few thousand directories and base names.
struct ByteInterner {
    private var arena: [UInt8] = []
    private var starts: [Int] = []
    private var lengths: [Int32] = []
    private var hashes: [UInt64] = []
    /// Open addressing: entry index + 1, or 0 for an empty slot.
    private var slots: [Int32] = Array(repeating: 0, count: 1024)

    var count: Int { starts.count }

    /// The bytes of an id `intern` returned.
    func bytes(_ id: UInt32) -> ArraySlice<UInt8> {
        let e = Int(id) - 1
        guard e >= 0 && e < starts.count else { return [] }
        return arena[starts[e]..<(starts[e] + Int(lengths[e]))]
    }

    /// Returns the id (from 1) and whether the string was new.
    mutating func intern(_ bytes: UnsafeRawBufferPointer) -> (id: UInt32, isNew: Bool) {
        let h = Self.hash(bytes)
        var mask = slots.count - 1
        var i = Int(truncatingIfNeeded: h) & mask
        while true {
            let s = slots[i]
            if s == 0 { break }
            let e = Int(s) - 1
            if hashes[e] == h && Int(lengths[e]) == bytes.count && equal(e, bytes) {
                return (UInt32(s), false)
            }
            i = (i + 1) & mask
        }
        let e = starts.count
        starts.append(arena.count)
        lengths.append(Int32(bytes.count))
        hashes.append(h)
        arena.append(contentsOf: bytes)
        if (e + 1) * 2 > slots.count {
            grow()
            mask = slots.count - 1
            i = Int(truncatingIfNeeded: h) & mask
            while slots[i] != 0 { i = (i + 1) & mask }
        }
        slots[i] = Int32(e + 1)
        return (UInt32(e + 1), true)
    }

    private func equal(_ e: Int, _ bytes: UnsafeRawBufferPointer) -> Bool {
        guard !bytes.isEmpty else { return true }
        return arena.withUnsafeBytes { a in
            memcmpBytes(a.baseAddress! + starts[e], bytes.baseAddress!, bytes.count)
        }
    }

    private mutating func grow() {
        var bigger = [Int32](repeating: 0, count: slots.count * 2)
        let mask = bigger.count - 1
        for e in 0..<starts.count {
            var i = Int(truncatingIfNeeded: hashes[e]) & mask
            while bigger[i] != 0 { i = (i + 1) & mask }
            bigger[i] = Int32(e + 1)
        }
        slots = bigger
    }

    @inline(__always) static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        // FNV-1a, 8 bytes at a time where possible, then a final avalanche.
        var h: UInt64 = 0xcbf29ce484222325
        var i = 0
        let n = bytes.count
        while i + 8 <= n {
            h = (h ^ bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0x100000001b3
            i += 8
        }
        while i < n {
            h = (h ^ UInt64(bytes[i])) &* 0x100000001b3
            i += 1
        }
        h ^= h >> 33
        h = h &* 0xff51afd7ed558ccd
        h ^= h >> 33
        return h
    }
}

@inline(__always) func memcmpBytes(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ n: Int) -> Bool {
    var i = 0
    while i + 8 <= n {
        if a.loadUnaligned(fromByteOffset: i, as: UInt64.self) != b.loadUnaligned(fromByteOffset: i, as: UInt64.self) { return false }
        i += 8
    }
    while i < n {
        if a.load(fromByteOffset: i, as: UInt8.self) != b.load(fromByteOffset: i, as: UInt8.self) { return false }
        i += 1
    }
    return true
}
