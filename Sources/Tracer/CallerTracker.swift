import CAudit
import CUnwind
import TraceFormat
#if canImport(Glibc)
import Glibc
#endif

/// Which object called dlopen. At a traced call made by ld.so (its
/// instruction pointer lies in the loader's mapping) the tracer unwinds the
/// stopped thread with libunwind-ptrace up to the first frame outside ld.so and
/// libc (glibc 2.34+: dlopen lives in libc.so.6 and calls into ld.so) and
/// records that frame's object and offset: a CALLER event, written just before
/// the call.
///
/// Once per dlopen, not per call: the caller's return address and the stack
/// slot it sits in are kept as the thread's key. A later loader call of the
/// thread is in the same dlopen while the slot (still inside the live stack)
/// holds the same return address and the thread made no call from outside the
/// loader in between: one 8-byte read, no unwind. A dlopen from another call
/// site, or after the caller returned, changes the slot; a constructor that
/// makes a file call before its own dlopen marks the thread as having been
/// outside. Before main the key is seeded without unwinding: the loader's
/// entry calls into the start-up code first thing, so the word below the
/// initial stack pointer holds a return address into ld.so for as long as the
/// start-up load runs; constructors run after it returned, so their dlopens
/// are unwound.
/// libunwind-ptrace's state for one process, freed with its last owner.
final class Unwinder {
    let handle: OpaquePointer
    init?(pid: Int32) {
        guard let h = lp_unwinder_new(pid) else { return nil }
        handle = h
    }
    deinit { lp_unwinder_free(handle) }
}

struct CallerTracker {
    /// Per program image: where the loader is, and the unwinder's caches.
    struct Image {
        /// The instruction and stack pointer at exec (0: not known).
        var entry: UInt64 = 0
        var stack: UInt64 = 0
        var mapped = false
        /// ld.so's mappings, [lo, hi); empty when the image has no loader.
        var loaderLo: UInt64 = 0
        var loaderHi: UInt64 = 0
        var loaderPath = ""
        var seeded = false
        var unwinder: Unwinder?

        init() {}
        init(entry: UInt64, stack: UInt64) { self.entry = entry; self.stack = stack }

        func isLoader(_ ip: UInt64) -> Bool { ip >= loaderLo && ip < loaderHi }

        /// The same image in a forked child (own unwinder; the start-up is over).
        func forked() -> Image {
            var c = self
            c.unwinder = nil
            c.seeded = true
            return c
        }


        /// Finds ld.so: the object mapped at the image's entry point, unless that
        /// is the program itself (a static program has no loader calls).
        mutating func map(pid: Int32) {
            mapped = true
            guard entry != 0 else { return }
            var buffer = [CChar](repeating: 0, count: Proc.pathBufferSize)
            var lo: UInt64 = 0, hi: UInt64 = 0
            guard lp_object_span(pid, entry, &buffer, buffer.count, &lo, &hi) == 0 else { return }
            let path = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if let exe = Proc.readLink("/proc/\(pid)/exe"), exe == path { return }
            loaderPath = path
            loaderLo = lo
            loaderHi = hi
        }
    }

    /// Per thread: the caller of the dlopen in progress, as a stack slot and the
    /// return address found in it.
    struct ThreadKey {
        var slot: UInt64 = 0
        var value: UInt64 = 0
        /// The thread made a call from outside the loader since the key was set
        /// (true until a key is set).
        var outside = true
        /// The last caller written for the thread (return address; 0: none).
        var written: UInt64 = 0
        var writtenSlot: UInt64 = 0
    }

    private var objectBuffer = [UInt8](repeating: 0, count: Proc.pathBufferSize)
    private(set) var unwinds = 0
    private(set) var unwindNs: UInt64 = 0
    static let maxFrames: Int32 = 256

    /// `keyWord`: the word in the key's slot, when the tracer read it with the call's path.
    mutating func loaderCall(tid: Int32, pid: Int32, sp: UInt64, image: inout Image, key: inout ThreadKey,
                             keyWord: UInt64?, writer: TraceWriter, now: UInt64) -> CallerEvent? {
        if !key.outside {
            if key.slot == 0 { return nil } // no slot known: one unwind per run of loader calls
            if sp < key.slot, (keyWord ?? Self.word(tid, key.slot)) == key.value { return nil }
        }
        if !image.seeded {
            image.seeded = true
            if tid == pid, image.stack > 8 {
                let slot = image.stack - 8
                if sp < slot, let v = Self.word(tid, slot), image.isLoader(v) {
                    key.slot = slot
                    key.value = v
                    key.outside = false
                    return nil
                }
            }
        }
        let t0 = lp_monotonic_ns()
        defer { unwinds += 1; unwindNs += lp_monotonic_ns() - t0 }
        if image.unwinder == nil { image.unwinder = Unwinder(pid: pid) }
        var found = lp_frame_found()
        var offset: UInt64 = 0
        let rc = objectBuffer.withUnsafeMutableBufferPointer { buf in
            lp_find_caller(image.unwinder?.handle, tid, pid, image.loaderPath, Self.maxFrames, &found, buf.baseAddress, buf.count, &offset)
        }
        key.outside = false
        key.slot = found.slot
        key.value = found.ip
        if rc == 1 {
            if key.written == found.ip && key.writtenSlot == found.slot { return nil }
            key.written = found.ip
            key.writtenSlot = found.slot
            let object = objectBuffer.withUnsafeBufferPointer { b in
                let n = b.firstIndex(of: 0) ?? b.count
                return writer.internPath(bytes: UnsafeRawBufferPointer(start: b.baseAddress, count: n))
            }
            return CallerEvent(pid: pid, tid: tid, object: object, offset: offset, depth: UInt32(found.depth), timeNs: now)
        }
        // The stack ended inside ld.so and libc (the start-up load), or could
        // not be unwound: no caller. Say so when the thread had one.
        if key.written != 0 {
            key.written = 0
            key.writtenSlot = 0
            return CallerEvent(pid: pid, tid: tid, object: .none, offset: 0, depth: UInt32(found.depth), timeNs: now)
        }
        return nil
    }

    static func word(_ tid: Int32, _ addr: UInt64) -> UInt64? {
        var v: UInt64 = 0
        let n = withUnsafeMutableBytes(of: &v) { lp_read_memory(tid, UInt(addr), $0.baseAddress, 8) }
        return n == 8 ? v : nil
    }
}
