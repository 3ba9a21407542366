import LoaderModel
/// A set of 64-bit keys (a directory node and a name id packed together) with
/// open addressing and a cheap hash that keeps neighbouring directories near: the walker asks it several times
/// per priced call, where `Set<UInt64>`'s seeded SipHash costs more than the rest.
struct U64Set: Sendable {
    private static let empty = UInt64.max
    private var slots: [UInt64]
    private var mask: Int
    private var hasEmptyKey = false
    private(set) var count = 0

    init(capacity: Int = 16) {
        var n = 16
        while n < capacity * 2 { n <<= 1 }
        slots = [UInt64](repeating: U64Set.empty, count: n)
        mask = n - 1
    }

    @inline(__always) private static func hash(_ k: UInt64) -> Int {
        // The name (low half) mixed (MurmurHash3's 64-bit finaliser), plus the
        // directory node (high half) as it is: the calls of one search try one
        // name in directories made one after the other (node numbers close
        // together), so their slots are close together too and share cache
        // lines; the table is far bigger than the caches.
        var h = k & 0xffff_ffff
        h ^= h >> 33
        h = h &* 0xff51_afd7_ed55_8ccd
        h ^= h >> 33
        h = h &* 0xc4ce_b9fe_1a85_ec53
        h ^= h >> 33
        return Int(truncatingIfNeeded: h &+ (k >> 32))
    }

    @inline(__always) func contains(_ k: UInt64) -> Bool {
        if k == U64Set.empty { return hasEmptyKey }
        var i = U64Set.hash(k) & mask
        while true {
            let s = slots[i]
            if s == k { return true }
            if s == U64Set.empty { return false }
            i = (i + 1) & mask
        }
    }

    /// Inserts `k`; true when it was not there.
    @discardableResult
    mutating func insert(_ k: UInt64) -> Bool {
        if k == U64Set.empty {
            if hasEmptyKey { return false }
            hasEmptyKey = true; count += 1
            return true
        }
        var i = U64Set.hash(k) & mask
        while true {
            let s = slots[i]
            if s == k { return false }
            if s == U64Set.empty { break }
            i = (i + 1) & mask
        }
        slots[i] = k
        count += 1
        if count * 2 > slots.count { grow() }
        return true
    }

    mutating func removeAll() {
        guard count > 0 else { return }
        for i in slots.indices { slots[i] = U64Set.empty }
        hasEmptyKey = false
        count = 0
    }

    private mutating func grow() {
        let old = slots
        slots = [UInt64](repeating: U64Set.empty, count: old.count * 2)
        mask = slots.count - 1
        for k in old where k != U64Set.empty {
            var i = U64Set.hash(k) & mask
            while slots[i] != U64Set.empty { i = (i + 1) & mask }
            slots[i] = k
        }
    }
}
