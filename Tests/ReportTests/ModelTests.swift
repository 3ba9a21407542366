import Testing
@testable import Report
@testable import LoaderModel
import TraceFormat

@Suite("model pieces on fixture data")
struct ModelTests {
    @Test("mountinfo: longest mount point wins; network and FUSE types are remote; escapes decoded")
    func mountTable() {
        let info = """
        22 27 0:21 / /proc rw,relatime - proc proc rw
        27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
        40 27 0:50 / /nfs/apps rw,relatime shared:5 - nfs4 server:/apps rw,vers=4.2
        41 40 0:51 / /nfs/apps/local\\040dir rw - tmpfs tmpfs rw
        42 27 0:52 / /scratch rw - fuse.latfs latfs ro
        """
        let m = MountTable(mountinfo: info)
        #expect(m.mount(for: "/nfs/apps/lib/libx.so")?.fsType == "nfs4")
        #expect(m.mount(for: "/nfs/apps/local dir/x")?.fsType == "tmpfs")
        #expect(m.mount(for: "/nfs/applications")?.fsType == "ext4")
        #expect(m.remoteMounts.map(\.mountPoint).sorted() == ["/nfs/apps", "/scratch"])
    }

    @Test("durations and --latency")
    func latency() throws {
        #expect(FileSystemProfile.parseDuration("250us") == 250e-6)
        #expect(FileSystemProfile.parseDuration("1ms") == 1e-3)
        #expect(FileSystemProfile.parseDuration("2s") == 2)
        #expect(FileSystemProfile.parseDuration("fast") == nil)
        var p = FileSystemProfile.named("nfs")!
        try p.apply(latencies: "lookup=1ms,getattr=500us")
        #expect(p.latency[ServerOperation.lookup.rawValue] == 1e-3)
        #expect(p.latency[ServerOperation.lookupMiss.rawValue] == 1e-3)
        #expect(p.latency[ServerOperation.getattr.rawValue] == 500e-6)
        #expect(throws: ProfileError.self) { try p.apply(latencies: "lookup") }
        #expect(throws: ProfileError.self) { try p.apply(latencies: "bogus=1ms") }
    }

    @Test("candidate paths split into search directory and capability subdirectory")
    func searchDirectory() {
        #expect(SearchDirectory.split("/opt/a/lib/glibc-hwcaps/x86-64-v3") == ("/opt/a/lib", "glibc-hwcaps/x86-64-v3"))
        #expect(SearchDirectory.split("/opt/a/lib/tls/x86_64/x86_64") == ("/opt/a/lib", "tls/x86_64/x86_64"))
        #expect(SearchDirectory.split("/opt/a/lib") == ("/opt/a/lib", ""))
    }

    func walker(_ profile: FileSystemProfile, setup: (inout PathTree) -> Void) -> PathWalker {
        var t = PathTree()
        t.addRemoteRoot("/nfs")
        setup(&t)
        t.settleInference()
        return PathWalker(tree: t, profile: profile)
    }

    @Test("a walk: one lookup per component below the mount, a miss ends it, symlinks cost a readlink and their target")
    func walk() {
        var prof = FileSystemProfile.named("fuse")!
        prof.openRevalidates = false
        var w = walker(prof) { t in
            let (d, n) = t.file("/nfs/a/b/lib.so")
            t.markFile(d, n, exists: true)
            t.markMissing(t.directory("/nfs/a/b/tls"))
            let v = t.directory("/nfs/view")
            t.setSymlink(v, t.name("lib.so"), target: "../a/b/lib.so")
        }
        func call(_ path: String, _ kind: ModelCall.Kind, failed: Bool) -> OperationCounts {
            let (d, n) = w.tree.file(path)
            return w.price(ModelCall(kind: kind, call: .openat, dir: d, name: n, failed: failed, purpose: .other)).ops
        }
        let hit = call("/nfs/a/b/lib.so", .open, failed: false)
        #expect(hit[.lookup] == 3 && hit[.lookupMiss] == 0 && hit[.open] == 1)
        let miss = call("/nfs/a/b/other.so", .open, failed: true)
        #expect(miss[.lookup] == 2 && miss[.lookupMiss] == 1 && miss[.open] == 0)
        let early = call("/nfs/a/b/tls/x86_64/lib.so", .open, failed: true)
        #expect(early[.lookup] == 2 && early[.lookupMiss] == 1, "the walk ends at the missing tls")
        let link = call("/nfs/view/lib.so", .open, failed: false)
        #expect(link[.readlink] == 1 && link[.lookup] == 2 + 3 && link[.open] == 1, "view, lib.so, then a, b, lib.so (.. is free)")
        let local = call("/usr/lib/libc.so.6", .open, failed: false)
        #expect(local.total == 0)
    }

    @Test("the open overhead is paid once per remote file opened, not by misses, stats or local opens")
    func openOverhead() {
        var prof = FileSystemProfile.named("fuse")!
        prof.openOverhead = 70e-6
        var w = walker(prof) { t in
            let (d, n) = t.file("/nfs/a/lib.so")
            t.markFile(d, n, exists: true)
        }
        func local(_ path: String, _ kind: ModelCall.Kind, failed: Bool) -> Double {
            let (d, n) = w.tree.file(path)
            return w.price(ModelCall(kind: kind, call: .openat, dir: d, name: n, failed: failed, purpose: .other)).localSeconds
        }
        let base = prof.localHitSeconds
        #expect(abs(local("/nfs/a/lib.so", .open, failed: false) - (base + 70e-6)) < 1e-12)
        #expect(abs(local("/nfs/a/lib.so", .exec, failed: false) - (base + 70e-6)) < 1e-12)
        #expect(abs(local("/nfs/a/lib.so", .stat, failed: false) - base) < 1e-12)
        #expect(abs(local("/nfs/a/gone.so", .open, failed: true) - prof.localMissSeconds) < 1e-12)
        #expect(abs(local("/usr/lib/libc.so.6", .open, failed: false) - base) < 1e-12)
    }

    @Test("client caches: positive entries and negative entries are served once")
    func caches() {
        var prof = FileSystemProfile.named("nfs")!
        prof.negativeCacheSeconds = 30
        var w = walker(prof) { t in
            let (d, n) = t.file("/nfs/a/lib.so")
            t.markFile(d, n, exists: true)
        }
        let (d, n) = w.tree.file("/nfs/a/missing.so")
        let first = w.price(ModelCall(kind: .open, call: .openat, dir: d, name: n, failed: true, purpose: .other)).ops
        let second = w.price(ModelCall(kind: .open, call: .openat, dir: d, name: n, failed: true, purpose: .other)).ops
        #expect(first[.lookup] == 1 && first[.lookupMiss] == 1)
        #expect(second.total == 0)
    }

    @Test("job shape: nodes cannot exceed processes; per node rounds up")
    func jobShape() {
        #expect(JobShape(processes: 512, nodes: 4).perNode == 128)
        #expect(JobShape(processes: 3, nodes: 8).nodes == 3)
    }
}
