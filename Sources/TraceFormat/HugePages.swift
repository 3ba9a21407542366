#if canImport(Glibc)
import Glibc
#endif

/// Asks the kernel to back an array's reserved storage with transparent huge
/// pages (when the system allows it on request: `madvise` mode). A report fills
/// arrays of hundreds of megabytes once (a 900-library trace has ~840,000
/// events); with 4 KiB pages, first touching them costs ~60,000 page faults,
/// a quarter of the report's time. Only whole 2 MiB pages inside the storage
/// are advised; nothing else changes.
public func adviseHugePages<T>(_ array: inout [T]) {
    #if os(Linux)
    let bytes = array.capacity * MemoryLayout<T>.stride
    guard bytes >= 4 << 20 else { return }
    array.withUnsafeMutableBufferPointer { buf in
        guard let base = buf.baseAddress else { return }
        let huge = 2 << 20
        let start = (Int(bitPattern: base) + huge - 1) & ~(huge - 1)
        let end = (Int(bitPattern: base) + bytes) & ~(huge - 1)
        guard end > start, let p = UnsafeMutableRawPointer(bitPattern: start) else { return }
        _ = madvise(p, end - start, MADV_HUGEPAGE)
    }
    #endif
}
