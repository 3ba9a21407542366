import SystemLayer
import LoaderModel
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Measures a mounted file system's per-operation latency from a client, the
/// input the cost model's `--latency` wants: run it on a compute node against
/// the tree the program would live in, then predict with the figures it gives.
///
/// Only reads, and only what defeats the client's caches: each probe looks up
/// a name never used before (`fstatat(dirfd, fresh name)`: exactly one LOOKUP
/// that misses, on NFS, Lustre, FUSE alike: the directory is held open, so no
/// other component is walked), and each existing entry below the directory is
/// looked up, loaded or read once at most (a second time could be served from
/// the client's cache). A load is what ld.so does with a library's file: open,
/// read the ELF header, fstat, close; what it takes beyond the operations the
/// profile prices for it is the profile's open overhead.
public struct Calibration: Sendable {
    public struct Series: Sendable, Equatable {
        public var kind: String
        /// One sample per call, seconds.
        public var samples: [Double]
        public var median: Double { Calibration.quantile(samples, 0.5) }
        public var p10: Double { Calibration.quantile(samples, 0.1) }
        public var p90: Double { Calibration.quantile(samples, 0.9) }
    }

    public var directory: String
    public var filesystem: String?
    public var concurrency: Int
    /// Directories the concurrent probes were spread over.
    public var probeDirectories: Int = 1
    /// Lookups of fresh missing names (one server operation each).
    public var miss: Series
    /// First lookups of existing entries (a LOOKUP; a GETATTR as well where attributes are not returned with it).
    public var hit: Series
    /// First opens of existing regular files (the open call of each load).
    public var opens: Series
    /// First loads of existing regular files: open, read of the first 832
    /// bytes (ld.so's ELF header read), fstat, close.
    public var loads: Series
    /// First readlinks of existing symbolic links.
    public var readlink: Series
    /// Fresh-name lookups one at a time, one just before each load in the
    /// load's directory: the time per operation the loads are measured against
    /// (taken in the same moments, so a file system that drifts does not bias it).
    public var missAlone: Series
    /// The loaded files' sizes (the READs the model prices for each depend on it).
    public var loadSizes: [Int] = []
    /// Bytes ld.so reads from a library before mapping it.
    static let headerBytes = 832

    /// What ld.so does with a library after its header read (elf/dl-map-segments.h,
    /// dl-reloc.c), on an ELF file: each PT_LOAD mapped from the file, and the
    /// pages relocation and symbol lookup touch read in — every page of the
    /// segments that are not executable (headers, .dynsym, .dynstr, the hash
    /// table, relocations, .data.rel.ro, .got, .data) and the first page of the
    /// executable one. A file system that drops cached pages at open (FUSE
    /// without keep_cache, some NFS mount options) serves those reads again.
    /// Other files: nothing more.
    static func mapAsLoader(fd: Int32, header: ArraySlice<UInt8>, size: Int) {
        let h = Array(header)
        guard h.count >= 64, h[0] == 0x7f, h[1] == 0x45, h[2] == 0x4c, h[3] == 0x46, h[4] == 2, h[5] == 1 else { return }
        func u16(_ o: Int) -> Int { Int(h[o]) | Int(h[o + 1]) << 8 }
        func u64(_ o: Int) -> Int { (0..<8).reduce(0) { $0 | Int(h[o + $1]) << (8 * $1) } }
        let phoff = u64(32), phentsize = u16(54), phnum = u16(56)
        guard phentsize == 56, phnum > 0, phoff >= 64, phoff + phnum * 56 <= h.count else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        for i in 0..<phnum {
            let o = phoff + i * 56
            guard u32(h, o) == 1 else { continue }  // PT_LOAD
            let flags = u32(h, o + 4), offset = u64(o + 8), filesz = u64(o + 32)
            guard filesz > 0, offset >= 0, offset < size else { continue }
            let start = offset - offset % page
            let length = min(size, offset + filesz) - start
            guard length > 0, let map = mmap(nil, length, PROT_READ, MAP_PRIVATE, fd, off_t(start)), map != MAP_FAILED else { continue }
            let bytes = map.assumingMemoryBound(to: UInt8.self)
            var sum: UInt8 = 0
            let touched = flags & 1 != 0 ? min(length, page) : length  // PF_X: the first page only
            for at in stride(from: 0, to: touched, by: page) { sum &+= bytes[at] }
            withExtendedLifetime(sum) {}
            munmap(map, length)
        }
    }

    static func u32(_ h: [UInt8], _ o: Int) -> Int { Int(h[o]) | Int(h[o + 1]) << 8 | Int(h[o + 2]) << 16 | Int(h[o + 3]) << 24 }
    /// Loads at most (each costs several operations).
    static let maxLoads = 200

    static func quantile(_ xs: [Double], _ q: Double) -> Double {
        guard !xs.isEmpty else { return .nan }
        let s = xs.sorted()
        return s[min(s.count - 1, Int((Double(s.count - 1) * q).rounded()))]
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Probes `directory` with `count` fresh-name lookups split over
    /// `concurrency` threads running at once (the job's processes per node,
    /// to see the server and the node under that load), and up to `count`
    /// existing entries. Concurrent threads probe different directories when
    /// there are several (`others`, else `directory`'s own subdirectories):
    /// lookups in one directory can be serialised by the client (FUSE without
    /// parallel directory operations, a directory's lock), which a job's
    /// processes, each at its own place in a search path, do not meet.
    public static func measure(directory: String, others: [String] = [], count: Int,
                               concurrency: Int) throws(Failure) -> Calibration {
        let dirfd = Glibc.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dirfd >= 0 else {
            throw Failure(description: "\(directory): \(Sys.describe(errno))")
        }
        defer { close(dirfd) }
        var probeDirs: [Int32] = [dirfd]
        defer { for fd in probeDirs.dropFirst() { close(fd) } }
        var candidates = others
        if candidates.isEmpty && concurrency > 1 { candidates = subdirectories(of: directory, limit: concurrency - 1) }
        for d in candidates where probeDirs.count < max(1, concurrency) {
            let fd = Glibc.open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else { throw Failure(description: "\(d): \(Sys.describe(errno))") }
            probeDirs.append(fd)
        }
        let threads = max(1, concurrency)
        let tag = "\(getpid())-\(monotonicNs() % 1_000_000_007)"
        let miss = try probeMissing(probeDirs, threads: threads, perThread: max(1, count / threads), tag: tag)
        let e = probeExisting([directory] + others, count: count, tag: tag)
        return Calibration(
            directory: directory, filesystem: fileSystemType(of: directory),
            concurrency: threads, probeDirectories: probeDirs.count,
            miss: Series(kind: "miss", samples: miss), hit: Series(kind: "hit", samples: e.hit),
            opens: Series(kind: "open", samples: e.opened), loads: Series(kind: "load", samples: e.loads),
            readlink: Series(kind: "readlink", samples: e.links), missAlone: Series(kind: "miss", samples: e.alone),
            loadSizes: e.loadSizes)
    }

    /// Fresh missing names, looked up by all threads at once, each in its probe directory.
    static func probeMissing(_ probeDirs: [Int32], threads: Int, perThread: Int, tag: String) throws(Failure) -> [Double] {
        let results = UnsafeMutablePointer<[Double]>.allocate(capacity: threads)
        results.initialize(repeating: [], count: threads)
        defer { results.deinitialize(count: threads); results.deallocate() }
        final class Job: @unchecked Sendable {
            let dirfd: Int32, index: Int, n: Int, tag: String
            let out: UnsafeMutablePointer<[Double]>
            init(dirfd: Int32, index: Int, n: Int, tag: String, out: UnsafeMutablePointer<[Double]>) {
                self.dirfd = dirfd; self.index = index; self.n = n; self.tag = tag; self.out = out
            }
            func run() {
                var samples: [Double] = []
                samples.reserveCapacity(n)
                var st = stat()
                for i in 0..<n {
                    let name = ".loadprobe-calibrate-\(tag)-\(index)-\(i)"
                    let t0 = monotonicNs()
                    _ = fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW)
                    samples.append(Double(monotonicNs() - t0) * 1e-9)
                }
                out.pointee = samples
            }
        }
        var tids: [pthread_t] = []
        for i in 0..<threads {
            let job = Unmanaged.passRetained(Job(dirfd: probeDirs[i % probeDirs.count], index: i, n: perThread, tag: tag,
                                                 out: results + i))
            var tid = pthread_t()
            let rc = pthread_create(&tid, nil, { arg in
                let j = Unmanaged<Job>.fromOpaque(arg!).takeRetainedValue()
                j.run()
                return nil
            }, job.toOpaque())
            if rc != 0 { job.release(); throw Failure(description: "cannot start a probing thread: \(Sys.describe(rc))") }
            tids.append(tid)
        }
        for t in tids { pthread_join(t, nil) }
        return (0..<threads).flatMap { results[$0] }
    }

    /// What probing the existing entries measured.
    struct ExistingSamples {
        var hit: [Double] = [], opened: [Double] = [], loads: [Double] = [], links: [Double] = [], alone: [Double] = []
        var loadSizes: [Int] = []
    }

        // Existing entries, each once, one thread, breadth first below the
        // directories: directories (and other entries) looked up, regular files
        // loaded, symbolic links read. Only names from readdir, so no entry was
        // looked up before its probe.
    static func probeExisting(_ roots: [String], count: Int, tag: String) -> ExistingSamples {
        var e = ExistingSamples()
        var queue = roots
        var probed = 0
        var st = stat()
        var buf = [UInt8](repeating: 0, count: 4096)
        while !queue.isEmpty && probed < count {
            let dir = queue.removeFirst()
            let dfd = Glibc.open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard dfd >= 0 else { continue }
            defer { close(dfd) }
            for (name, type) in directoryEntries(dir) where probed < count {
                probed += 1
                var t0 = monotonicNs()
                switch Int32(type) {
                case Int32(DT_REG) where e.loads.count < maxLoads:
                    let fresh = ".loadprobe-calibrate-\(tag)-load-\(e.loads.count)"
                    let m0 = monotonicNs()
                    _ = fstatat(dfd, fresh, &st, AT_SYMLINK_NOFOLLOW)
                    let missed = monotonicNs() - m0
                    t0 = monotonicNs()
                    let fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
                    guard fd >= 0 else { continue }
                    let t1 = monotonicNs()
                    let got = read(fd, &buf, headerBytes)
                    _ = fstat(fd, &st)
                    Calibration.mapAsLoader(fd: fd, header: buf.prefix(max(0, got)), size: Int(st.st_size))
                    close(fd)
                    e.opened.append(Double(t1 - t0) * 1e-9)
                    e.loads.append(Double(monotonicNs() - t0) * 1e-9)
                    e.loadSizes.append(Int(st.st_size))
                    e.alone.append(Double(missed) * 1e-9)
                case Int32(DT_LNK):
                    if readlinkat(dfd, name, &buf, buf.count) >= 0 { e.links.append(Double(monotonicNs() - t0) * 1e-9) }
                default:
                    t0 = monotonicNs()
                    guard fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
                    e.hit.append(Double(monotonicNs() - t0) * 1e-9)
                    if (st.st_mode & S_IFMT) == S_IFDIR { queue.append(LoaderPath.join(dir, name)) }
                }
            }
        }
        return e
    }

    /// What a load took beyond what `profile` prices for it, seconds: its
    /// operations (a LOOKUP, the OPEN, a READ, and the GETATTRs the profile
    /// sends on open and fstat) at the latency of the lookups made between the
    /// loads, and the local cost of a successful call. Nil when no file was loaded.
    public func openOverhead(for profile: FileSystemProfile) -> Double? {
        guard !loads.samples.isEmpty else { return nil }
        let perOperation = missAlone.median
        // The READs the model prices for a file of the median loaded size (one per readBytes).
        let sizes = loadSizes.sorted()
        let size = sizes.isEmpty ? 0 : sizes[sizes.count / 2]
        let reads = max(1, (size + profile.readBytes - 1) / profile.readBytes)
        let operations = 2 + reads + (profile.openRevalidates ? 1 : 0) + (profile.fstatReachesServer ? 1 : 0)
        return max(0, loads.median - Double(operations) * perOperation - profile.localHitSeconds)
    }

    /// The report flags that reproduce the measured time per operation with
    /// `profile`. Measured one at a time, the profile's own round trip is left
    /// out of `--latency` (the profile adds it, and for FUSE counts it as CPU
    /// that the job's processes share). Measured with several probes at once,
    /// the median already holds what concurrency costs (server queueing, the
    /// node's CPUs), so it is the whole per-operation time and the profile's
    /// round trip is set to 0, not to count that share twice.
    public func reportFlags(for profile: FileSystemProfile) -> [String] {
        func us(_ s: Double) -> String {
            let v = max(0, s) * 1e6
            return v >= 100 ? "\(Int(v.rounded()))us" : "\(Double(Int(v * 10)) / 10)us"
        }
        let overhead = openOverhead(for: profile).map { ["--open-overhead", us($0)] } ?? []
        if concurrency > 1 && profile.roundTrip > 0 {
            return ["--latency", "all=\(us(miss.median))", "--round-trip", "0"] + overhead
        }
        return ["--latency", "all=\(us(miss.median - profile.roundTrip))"] + overhead
    }
}

/// Up to `limit` subdirectories of `path`, in name order.
func subdirectories(of path: String, limit: Int) -> [String] {
    directoryEntries(path).filter { $0.type == UInt8(DT_DIR) }.prefix(limit).map { LoaderPath.join(path, $0.name) }
}

/// The entries of `path` but `.` and `..` (names starting with a dot left out),
/// with readdir's type, in name order.
func directoryEntries(_ path: String) -> [(name: String, type: UInt8)] {
    (Sys.listDirectory(path) ?? []).filter { !$0.name.hasPrefix(".") }.map { ($0.name, $0.type) }.sorted { $0.name < $1.name }
}

/// The type of the file system `path` lives on, from this process's mount table.
func fileSystemType(of path: String) -> String? {
    let host = HostFileSystem()
    guard let resolved = host.realPath(path), let mountinfo = host.readText("/proc/self/mountinfo") else { return nil }
    return MountTable(mountinfo: mountinfo).mount(for: resolved)?.fsType
}

@inline(__always) func monotonicNs() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
