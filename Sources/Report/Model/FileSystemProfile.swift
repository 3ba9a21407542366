import LoaderModel
/// How a file system prices what it serves, and what its clients cache. Every
/// named profile's numbers and their sources are in docs/cost-model.md.
public struct FileSystemProfile: Sendable, Equatable {
    public var name: String
    /// Seconds for one operation of each kind, one request at a time, the round
    /// trip included (`--latency` sets these).
    public var latency: [Double]
    /// Per-request overhead added to every operation: the transport round trip
    /// that `--latency` does not include (FUSE's kernel↔daemon switch, measured).
    public var roundTrip: Double
    /// The round trip is CPU work on the client node (FUSE: the daemon runs
    /// there), so it competes with the node's other processes for cores.
    public var roundTripIsCPU = false
    /// Client caching of names that exist (dentries and attributes), seconds; 0: off.
    public var positiveCacheSeconds: Double
    /// Client caching of names that do not exist (NFS lookupcache=all); 0: off.
    public var negativeCacheSeconds: Double
    /// Metadata operations the server completes per second, all clients together; nil: unlimited.
    public var serverOpsPerSecond: Double?
    /// Bytes per second the server delivers, all clients together; nil: unlimited.
    public var serverBytesPerSecond: Double?
    /// An open makes the client revalidate the file's attributes (NFS close-to-open: a GETATTR).
    public var openRevalidates: Bool
    /// The fstat after an open goes to the server (FUSE with attribute timeout 0).
    public var fstatReachesServer: Bool
    /// Bytes per READ request (FUSE max_read 128 KiB; NFS rsize): a loaded object of N bytes costs ⌈N/this⌉ reads.
    public var readBytes: Int
    /// Reads per object opened when its size is unknown.
    public var readsPerObjectDefault: Int
    /// Client time per file opened and read beyond the operations priced for it,
    /// seconds (CPU work on the node): e.g. the CLOSE RPC of an NFSv4 close, a
    /// FUSE FLUSH, an open path slower than the lookups. `calibrate` measures it.
    public var openOverhead: Double
    /// Local (non-modeled) call costs, seconds: a failed and a successful lookup call.
    public var localMissSeconds: Double
    public var localHitSeconds: Double
    public var summary: String

    public func latency(_ op: ServerOperation) -> Double { latency[op.rawValue] + roundTrip }

    public init(name: String, lookup: Double, miss: Double? = nil, getattr: Double? = nil, access: Double? = nil,
                open: Double? = nil, readlink: Double? = nil, read: Double? = nil, roundTrip: Double = 0, roundTripIsCPU: Bool = false,
                positiveCacheSeconds: Double = 0, negativeCacheSeconds: Double = 0, serverOpsPerSecond: Double? = nil,
                openRevalidates: Bool = false, fstatReachesServer: Bool = false, readBytes: Int = 131072,
                readsPerObjectDefault: Int = 1, openOverhead: Double = 0, summary: String) {
        self.name = name
        var l = [Double](repeating: lookup, count: ServerOperation.allCases.count)
        l[ServerOperation.lookupMiss.rawValue] = miss ?? lookup
        l[ServerOperation.getattr.rawValue] = getattr ?? lookup
        l[ServerOperation.access.rawValue] = access ?? lookup
        l[ServerOperation.open.rawValue] = open ?? lookup
        l[ServerOperation.readlink.rawValue] = readlink ?? lookup
        l[ServerOperation.read.rawValue] = read ?? lookup
        latency = l
        self.roundTrip = roundTrip
        self.roundTripIsCPU = roundTripIsCPU
        self.positiveCacheSeconds = positiveCacheSeconds
        self.negativeCacheSeconds = negativeCacheSeconds
        self.serverOpsPerSecond = serverOpsPerSecond
        self.serverBytesPerSecond = nil
        self.openRevalidates = openRevalidates
        self.fstatReachesServer = fstatReachesServer
        self.readBytes = readBytes
        self.readsPerObjectDefault = readsPerObjectDefault
        self.openOverhead = openOverhead
        // Measured untraced on local disk (ext4, warm): a 300-library start-up's
        // 51,383 calls (50,746 failed) cost 0.21 s beyond its compute.
        self.localMissSeconds = 4e-6
        self.localHitSeconds = 8e-6
        self.summary = summary
    }

    /// The named profiles (docs/cost-model.md gives each number's source).
    public static let named: [FileSystemProfile] = [
        FileSystemProfile(
            name: "local", lookup: 0, roundTrip: 0, positiveCacheSeconds: 3600, negativeCacheSeconds: 3600,
            summary: "local disk with a warm dentry cache: remote paths priced as local calls"),
        FileSystemProfile(
            name: "nfs", lookup: 200e-6, read: 300e-6, positiveCacheSeconds: 30, negativeCacheSeconds: 30,
            serverOpsPerSecond: 100_000, openRevalidates: true, readBytes: 1 << 20,
            summary: "NFSv3/v4 on a 10 GbE LAN, Linux client defaults (lookupcache=all, acdirmin=30 s), 200 µs per metadata RPC"),
        FileSystemProfile(
            name: "nfs-noneg", lookup: 200e-6, read: 300e-6, positiveCacheSeconds: 30, negativeCacheSeconds: 0,
            serverOpsPerSecond: 100_000, openRevalidates: true, readBytes: 1 << 20,
            summary: "as nfs, mounted lookupcache=positive (no negative caching, as on LLNL systems in the paper)"),
        FileSystemProfile(
            name: "nfs-loaded", lookup: 1e-3, read: 1.5e-3, positiveCacheSeconds: 30, negativeCacheSeconds: 0,
            serverOpsPerSecond: 50_000, openRevalidates: true, readBytes: 1 << 20,
            summary: "a busy NFS server: 1 ms per metadata RPC, no negative caching"),
        FileSystemProfile(
            name: "lustre", lookup: 300e-6, read: 400e-6, positiveCacheSeconds: 3600, negativeCacheSeconds: 0,
            serverOpsPerSecond: 50_000, openRevalidates: true, readBytes: 1 << 20,
            summary: "Lustre: one MDS round trip (~300 µs) per uncached lookup or open; LDLM locks keep positive entries"),
        FileSystemProfile(
            name: "gpfs", lookup: 150e-6, read: 300e-6, positiveCacheSeconds: 3600, negativeCacheSeconds: 0,
            serverOpsPerSecond: 100_000, readBytes: 1 << 20,
            summary: "IBM Storage Scale (GPFS): token-cached metadata, ~150 µs per uncached lookup"),
        FileSystemProfile(
            name: "fuse", lookup: 0, roundTrip: 23e-6, roundTripIsCPU: true, openRevalidates: true, fstatReachesServer: true,
            summary: "a FUSE file system with entry/attribute timeouts 0 (bench latfs): every lookup reaches the daemon; --latency adds its delay"),
    ]

    public static func named(_ name: String) -> FileSystemProfile? { named.first { $0.name == name.lowercased() } }

    /// Applies `--latency kind=DURATION,…` ("all=" sets every kind).
    public mutating func apply(latencies spec: String) throws(ProfileError) {
        for item in spec.split(separator: ",") {
            let kv = item.split(separator: "=", maxSplits: 1)
            guard kv.count == 2 else { throw ProfileError("'\(item)' is not KIND=DURATION (e.g. lookup=1ms)") }
            let key = kv[0].trimmed(" ")
            guard let secs = FileSystemProfile.parseDuration(String(kv[1])) else {
                throw ProfileError("'\(kv[1])' is not a duration of at most an hour (e.g. 250us, 1ms, 0.002s)")
            }
            if key == "all" || key == "*" {
                for i in latency.indices { latency[i] = secs }
            } else if let op = ServerOperation.parse(key) {
                latency[op.rawValue] = secs
                if op == .lookup && !spec.contains("miss") { latency[ServerOperation.lookupMiss.rawValue] = secs }
            } else {
                throw ProfileError("unknown operation '\(key)' in --latency (lookup, miss, getattr, access, open, readlink, read, all)")
            }
        }
    }

    /// "250us", "1ms", "0.5s", "100µs", "2e-4" (seconds).
    public static func parseDuration(_ s: String) -> Double? {
        let t = s.trimmed(" ").lowercased()
        let units: [(String, Double)] = [("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1)]
        // At most an hour per operation: a model of a file system, not of any number.
        for (u, k) in units where t.hasSuffix(u) {
            guard let v = Double(t.dropLast(u.count)), v >= 0, v.isFinite, v * k <= 3600 else { return nil }
            return v * k
        }
        guard let v = Double(t), v >= 0, v.isFinite, v <= 3600 else { return nil }
        return v
    }
}

public struct ProfileError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ d: String) { description = d }
}

extension Substring {
    func trimmed(_ set: String) -> String {
        var s = self
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}

extension String {
    func trimmed(_ set: String) -> String { Substring(self).trimmed(set) }
}
