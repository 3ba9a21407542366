import TraceFormat

/// What a trace shows, without what differs between the ranks of one program
/// that did the same: times, pids and thread ids. Two traces with one identity
/// have the same calls and searches (paths compared as text) with the same
/// results in the same order, the same processes, objects, remote mounts and
/// loader rules, so the report analyses the first and counts the others
/// (`ReportBuilder.addRepeat`). loadprobe's own calls (into its scratch
/// directory, whose name differs per run) are left out. 128 bits from two
/// independent 64-bit lanes.
public struct TraceIdentity: Hashable, Sendable {
    var a: UInt64 = 0xcbf2_9ce4_8422_2325
    var b: UInt64 = 0x6a09_e667_f3bc_c909

    /// The calls, the audit records and the other events are each hashed in
    /// their own order: the audit library's records reach the file in batches,
    /// so where they fall among the calls depends on timing. The objects are
    /// taken as a set (the order the loader's world was read in may vary).
    public init(_ t: Trace) {
        var calls = TraceIdentity(lane: 1), audits = TraceIdentity(lane: 2), others = TraceIdentity(lane: 3)
        // Each process by its order of appearance, not its pid: which process
        // made a call or a search is part of the content.
        var ordinal: [Int32: UInt64] = [:]
        func number(_ pid: Int32) -> UInt64 {
            if let n = ordinal[pid] { return n }
            let n = UInt64(ordinal.count)
            ordinal[pid] = n
            return n
        }
        for e in t.events {
            let process = number(e.pid)
            switch e {
            case .syscall: calls.add(process); calls.add(e, t)
            case .audit: audits.add(process); audits.add(e, t)
            case .process(let p): others.add(process); others.add(number(p.parent)); others.add(e, t)
            default: others.add(process); others.add(e, t)
            }
        }
        var objects: [UInt64] = []
        for o in t.objects {
            var one = TraceIdentity(lane: 4)
            one.add(o, t)
            objects.append(one.a ^ one.b.rotated(by: 17))
        }
        for (k, v) in t.meta where Self.sameForSameContent(k) { add(k); add(v) }
        // Of the mount table, what the report's model uses: the remote mounts, and
        // the local ones inside them, under which the trace has a path (mount
        // ids differ from node to node, and a mount the run never touched
        // changes nothing in its report).
        let table = MountTable(mountinfo: t.meta(.mountinfo) ?? "")
        let remote = table.remoteMounts
        let touched = t.strings.filter { $0.hasPrefix("/") }
        let used = table.mounts.filter { m in
            (MountTable.isRemote(type: m.fsType) || remote.contains { MountTable.isUnder(m.mountPoint, $0.mountPoint) })
                && touched.contains { MountTable.isUnder($0, m.mountPoint) }
        }
        for m in used.map({ $0.mountPoint + "\u{0}" + $0.fsType }).sorted() { add(m) }
        for part in [calls, audits, others] { add(part.a); add(part.b) }
        add(UInt64(objects.count))
        for h in objects.sorted() { add(h) }
    }

    private init(lane: UInt64) {
        add(lane)
    }

    mutating func add(_ o: ObjectFacts, _ t: Trace) {
        add(o.path, t)
        add(o.device); add(o.inode); add(o.size); add(o.contentHash)
        let header: UInt64 = UInt64(o.elfClass) | UInt64(o.byteOrder) << 8 | UInt64(o.osABI) << 16 | UInt64(o.abiVersion) << 24
        add(header)
        let kind: UInt64 = UInt64(o.type) | UInt64(o.machine) << 16 | (o.isDynamic ? 1 << 32 : 0)
        add(kind)
        for id in [o.interpreter, o.soname, o.rpath, o.runpath] { add(id.map { t.string($0) } ?? "\u{0}none") }
        add(o.flags); add(o.flags1)
        add(UInt64(o.needed.count))
        for n in o.needed { add(t.string(n)) }
    }

    /// Metadata that says what the run did and where (not which rank, pid, host or when).
    static func sameForSameContent(_ key: String) -> Bool {
        key == MetaKey.mode.rawValue || key == MetaKey.program.rawValue
            || key == MetaKey.libc.rawValue || key == MetaKey.machine.rawValue || key == MetaKey.env.rawValue
            || key.hasPrefix("loader.")
    }

    mutating func add(_ w: UInt64) {
        a = (a ^ w) &* 0x0000_0100_0000_01b3
        b = (b ^ w) &* 0x9E37_79B9_7F4A_7C15
        b ^= b >> 29
    }

    mutating func add(_ s: String) {
        var s = s
        s.withUTF8 { bytes in
            var i = 0
            while i + 8 <= bytes.count {
                add(UnsafeRawPointer(bytes.baseAddress! + i).loadUnaligned(as: UInt64.self))
                i += 8
            }
            var tail: UInt64 = 0
            for j in i..<bytes.count { tail |= UInt64(bytes[j]) << (8 * UInt64(j - i)) }
            add(tail ^ UInt64(bytes.count) << 56)
        }
    }

    mutating func add(_ p: PathRef, _ t: Trace) {
        // A name without a directory is not the same as one under "/".
        if p.dir == 0 { add(UInt64.max - 1) }
        add(t.string(p.dir))
        add(Self.withoutInode(t.string(p.base)))
    }

    /// "pipe:[1400613]", "socket:[…]": a descriptor's name as /proc shows it;
    /// its inode differs in every run (stdout is a new pipe for each rank).
    static func withoutInode(_ s: String) -> String {
        let u = s.utf8
        guard u.last == UInt8(ascii: "]"), let open = u.firstIndex(of: UInt8(ascii: "[")), open > u.startIndex,
              u[u.index(before: open)] == UInt8(ascii: ":"),
              u[u.index(after: open)..<u.index(before: u.endIndex)].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return s }
        return String(s[..<open]) + "[]"
    }

    mutating func add(_ e: TraceEvent, _ t: Trace) {
        switch e {
        case .syscall(let s):
            if s.own { return }
            add(1 | UInt64(s.call.rawValue) << 8 | (s.completed ? 1 << 16 : 0) | (s.tid == s.pid ? 1 << 18 : 0))
            add(s.path, t)
            if let r = s.resolved { add(r, t) } else { add(UInt64.max) }
            add(s.dirfd.map { UInt64(UInt32(bitPattern: $0)) } ?? .max)
            add(s.flags)
            add(UInt64(bitPattern: s.result))
        case .audit(let x):
            add(2 | UInt64(x.kind.rawValue) << 8 | UInt64(x.flag) << 16 | UInt64(UInt32(bitPattern: x.lmid)) << 32)
            add(x.name, t)
        case .process(let p):
            add(3 | UInt64(p.how.rawValue) << 8)
        case .exec(let x):
            add(4 | UInt64(x.argv.count) << 8)
            add(x.path, t)
            for s in x.argv { add(t.string(s)) }
        case .exit(let x):
            add(5 | (x.tid == x.pid ? 1 << 8 : 0))
            add(UInt64(UInt32(bitPattern: x.status)))
        case .note(let n):
            add(6)
            add(t.string(n.text))
        case .caller(let c):
            add(7)
            add(c.object, t)
            add(c.offset)
        }
    }
}

extension UInt64 {
    fileprivate func rotated(by n: UInt64) -> UInt64 { (self << n) | (self >> (64 - n)) }
}
