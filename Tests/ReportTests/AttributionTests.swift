import Foundation
import Testing
import TestSupport
@testable import Report
@testable import TraceFormat

/// The attribution (TraceAnalysis) fed event sequences written by hand, in the
/// order the recorder writes them: ld.so's audit records and the system calls
/// they explain. Each case pins what a reader of the report is told: phases,
/// load groups, searches and what each call was for.
@Suite("attribution of hand-built event sequences")
struct AttributionTests {
    /// Writes events through the real writer and reads them back as a trace.
    final class Sequence {
        let path = NSTemporaryDirectory() + "lp-attr-\(getpid())-\(UUID().uuidString).lpt"
        let writer: TraceWriter
        var t: UInt64 = 1_000_000
        init() throws {
            let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            writer = try TraceWriter(fd: fd)
            try writer.meta(.mode, RecordingMode.full.rawValue)
        }
        func tick() -> UInt64 { t += 1_000; return t }
        func process(_ pid: Int32, parent: Int32 = 1, how: ProcessStart = .root, tid: Int32? = nil) throws {
            try writer.write(ProcessEvent(pid: pid, tid: tid ?? pid, parent: parent, how: how, timeNs: tick()))
        }
        func exec(_ pid: Int32, _ image: String) throws {
            let p = writer.internPath(image)
            try writer.write(SyscallEvent(pid: pid, tid: pid, call: .execve, dirfd: nil, path: p, resolved: nil, flags: 0,
                                          result: 0, completed: true, own: false, entryNs: tick(), exitNs: tick()))
            try writer.write(ExecEvent(pid: pid, formerTid: pid, path: p, argv: [writer.intern(image)], timeNs: tick()))
            try audit(pid, .image, 0, image)
        }
        func audit(_ pid: Int32, _ kind: AuditKind, _ flag: UInt16, _ name: String = "") throws {
            try writer.write(AuditEvent(pid: pid, kind: kind, flag: flag, lmid: 0, name: writer.internPath(name), seq: 0, timeNs: tick()))
        }
        func open(_ pid: Int32, _ file: String, errno: Int64 = 0) throws {
            try writer.write(SyscallEvent(pid: pid, tid: pid, call: .openat, dirfd: -100, path: writer.internPath(file), resolved: nil,
                                          flags: 0o2000000, result: errno == 0 ? 3 : -errno, completed: true, own: false,
                                          entryNs: tick(), exitNs: tick()))
        }
        /// One library found on the second of two RUNPATH candidates, as ld.so reports and makes it.
        func load(_ pid: Int32, _ name: String, miss: String, hit: String) throws {
            try audit(pid, .objsearch, 0x01, name)
            try audit(pid, .objsearch, 0x04, miss + "/" + name)
            try open(pid, miss + "/" + name, errno: 2)
            try audit(pid, .objsearch, 0x04, hit + "/" + name)
            try open(pid, hit + "/" + name)
            try audit(pid, .objopen, 0, hit + "/" + name)
        }
        func exit(_ pid: Int32, status: Int32) throws {
            try writer.write(ExitEvent(pid: pid, tid: pid, status: status, timeNs: tick()))
        }
        func analysis() throws -> TraceAnalysis {
            try writer.finish(endNs: tick())
            defer { unlink(path) }
            return TraceAnalysis(trace: try TraceReader.read(file: path), file: path)
        }
    }

    func process(_ a: TraceAnalysis, _ pid: Int32) throws -> ProcessAnalysis {
        try #require(a.processes.first { $0.pid == pid }, "no process \(pid) in \(a.processes.map(\.pid))")
    }

    /// A process, its exec, and one library found on the second RUNPATH candidate.
    func startup(_ s: Sequence, pid: Int32) throws {
        try s.process(pid)
        try s.exec(pid, "/app/bin/app")
        try s.load(pid, "liba.so", miss: "/d1", hit: "/d2")
    }

    /// The start-up, main, then a dlopen of one library.
    func startupThenDlopen(_ s: Sequence, pid: Int32) throws {
        try startup(s, pid: pid)
        try s.audit(pid, .activity, 0) // consistent: the start-up load is done
        try s.audit(pid, .preinit, 0)
        try s.audit(pid, .objsearch, 0x01, "libplug.so")
        try s.audit(pid, .activity, 1) // add
        try s.audit(pid, .objsearch, 0x04, "/d2/libplug.so")
        try s.open(pid, "/d2/libplug.so")
        try s.audit(pid, .objopen, 0, "/d2/libplug.so")
        try s.audit(pid, .activity, 0)
    }

    @Test("a start-up and a dlopen: two groups, the searches in their phases, each call's purpose")
    func dlopenGroup() throws {
        let s = try Sequence()
        try startupThenDlopen(s, pid: 10)
        try s.exit(10, status: 0)
        let p = try process(try s.analysis(), 10)
        #expect(p.mainNs != nil)
        #expect(p.groups.map(\.phase) == [.startup, .dlopen(1)], "\(p.groups.map(\.phase))")
        #expect(p.groups.last?.names == ["libplug.so"])
        let liba = try #require(p.searches.first { $0.name == "liba.so" })
        #expect(liba.phase == .startup && liba.found == "/d2/liba.so" && liba.foundOrigin == .rpathOrRunpath)
        #expect(liba.candidates.map(\.outcome) == [.miss, .hit], "\(liba.candidates.map(\.outcome))")
        let plug = try #require(p.searches.first { $0.name == "libplug.so" })
        #expect(plug.phase == .dlopen(1) && plug.found == "/d2/libplug.so")
        let miss = try #require(p.calls.first { $0.event.failed })
        #expect(miss.purpose == .searchCandidate && miss.phase == .startup)
        #expect(p.calls.filter { $0.phase == .dlopen(1) }.count == 1)
        #expect(p.objects.map(\.path) == ["/d2/liba.so", "/d2/libplug.so"])
    }

    @Test("a dlopen that finds nothing: its own group, a search without a hit, every candidate failed")
    func failedDlopen() throws {
        let s = try Sequence()
        try startupThenDlopen(s, pid: 11)
        try s.audit(11, .objsearch, 0x01, "libmissing.so")
        for d in ["/d1", "/d2", "/usr/lib"] {
            try s.audit(11, .objsearch, d == "/usr/lib" ? 0x40 : 0x04, d + "/libmissing.so")
            try s.open(11, d + "/libmissing.so", errno: 2)
        }
        try s.exit(11, status: 0)
        let p = try process(try s.analysis(), 11)
        #expect(p.groups.map(\.phase) == [.startup, .dlopen(1), .dlopen(2)], "\(p.groups.map(\.phase))")
        let missing = try #require(p.searches.first { $0.name == "libmissing.so" })
        #expect(missing.found == nil && missing.phase == .dlopen(2))
        #expect(missing.candidates.allSatisfy { $0.outcome == .miss })
        #expect(missing.candidates.last?.origin == .defaultPath)
        #expect(p.calls.filter { $0.phase == .dlopen(2) && $0.failed }.count == 3)
    }

    @Test("a constructor's dlopen (after the start-up load, before main) is a group of its own, then the start-up resumes")
    func constructorDlopen() throws {
        let s = try Sequence()
        try startup(s, pid: 12)
        try s.audit(12, .activity, 0)          // start-up load done
        try s.audit(12, .objsearch, 0x01, "libctor.so")
        try s.audit(12, .activity, 1)
        try s.audit(12, .objsearch, 0x04, "/d2/libctor.so")
        try s.open(12, "/d2/libctor.so")
        try s.audit(12, .objopen, 0, "/d2/libctor.so")
        try s.audit(12, .activity, 0)
        try s.open(12, "/etc/app.conf", errno: 2) // the constructor goes on
        try s.audit(12, .preinit, 0)
        try s.exit(12, status: 0)
        let p = try process(try s.analysis(), 12)
        #expect(p.groups.map(\.phase) == [.startup, .dlopen(1)], "\(p.groups.map(\.phase))")
        #expect(p.searches.first { $0.name == "libctor.so" }?.phase == .dlopen(1))
        // The constructor's own failed open, outside any search.
        let conf = try #require(p.calls.first { $0.failed && $0.search < 0 })
        #expect(conf.phase == .startup, "\(conf.phase)")
        let mainNs = try #require(p.mainNs)
        #expect(p.groups.allSatisfy { $0.startNs <= mainNs })
    }

    @Test("exec: the new image is analysed apart, with its own start-up")
    func execChain() throws {
        let s = try Sequence()
        try startupThenDlopen(s, pid: 13)
        try s.exec(13, "/usr/bin/next")
        try s.load(13, "libn.so", miss: "/n1", hit: "/n2")
        try s.audit(13, .activity, 0)
        try s.audit(13, .preinit, 0)
        try s.exit(13, status: 0)
        let a = try s.analysis()
        let images = a.processes.filter { $0.pid == 13 }
        #expect(images.count == 2, "\(images.map(\.image))")
        #expect(images.map(\.image) == ["/app/bin/app", "/usr/bin/next"])
        #expect(images.last?.searches.map(\.name) == ["libn.so"])
        #expect(images.last?.groups.map(\.phase) == [.startup])
        #expect(images.map(\.imageIndex) == [0, 1])
    }

    @Test("fork without exec: the child is marked, its calls are its own")
    func forkWithoutExec() throws {
        let s = try Sequence()
        try startupThenDlopen(s, pid: 14)
        try s.process(15, parent: 14, how: .fork)
        try s.open(15, "/tmp/child-file", errno: 2)
        try s.exit(15, status: 0)
        try s.exit(14, status: 0)
        let a = try s.analysis()
        let child = try process(a, 15)
        #expect(child.forkedWithoutExec && child.parent == 14)
        #expect(child.calls.count == 1 && child.calls[0].phase == .main, "\(child.calls.map(\.phase))")
        #expect(try process(a, 14).calls.allSatisfy { $0.event.pid == 14 })
    }

    @Test("a process killed before main: its signal, no main, its start-up calls kept")
    func killedBeforeMain() throws {
        let s = try Sequence()
        try startup(s, pid: 16)
        try s.exit(16, status: 9) // killed by SIGKILL
        let p = try process(try s.analysis(), 16)
        #expect(p.signal == 9 && p.mainNs == nil, "signal \(String(describing: p.signal))")
        #expect(p.searches.first?.found == "/d2/liba.so")
        #expect(p.calls.contains { $0.failed && $0.purpose == .searchCandidate })
    }

    @Test("the summary made in the attribution's pass equals the summary made on its own")
    func summaryInTheSamePass() throws {
        let s = try Sequence()
        try startupThenDlopen(s, pid: 17)
        try s.process(18, parent: 17, how: .fork)
        try s.open(18, "/tmp/child-file", errno: 2)
        try s.exit(18, status: 3 << 8) // exit(3)
        try s.exit(17, status: 0)
        let a = try s.analysis()
        let alone = TraceSummary(trace: a.trace, file: a.file)
        #expect(a.summary.json().serialized() == alone.json().serialized())
        let child = try #require(a.summary.processes.first { $0.pid == 18 })
        #expect(child.parent == 17 && child.how == .fork && child.exitStatus == 3 && child.exitNs != nil)
        // liba.so (two RUNPATH candidates) and libplug.so (one).
        #expect(a.summary.searchesByFlag.namesAsked == 2 && a.summary.searchesByFlag.byOrigin == [.rpathOrRunpath: 3])
        // The attribution took the child's parent and exit from the same pass.
        let p = try process(a, 18)
        #expect(p.forkedWithoutExec && p.parent == 17 && p.exitStatus == 3)
    }

    @Test("a job rank's dlopen time saturates where a crafted trace's groups add up past 2^64 (found by loadprobe-fuzz)")
    func dlopenTimeSaturates() throws {
        let s = try Sequence()
        // Two processes, each with a dlopen that lasts more than 2^63 ns (each
        // process's clock is its own stream: the second starts back at 1 ms).
        for (pid, name) in [(Int32(19), "libp1.so"), (20, "libp2.so")] {
            s.t = 1_000_000
            try startup(s, pid: pid)
            try s.audit(pid, .activity, 0)
            try s.audit(pid, .preinit, 0)
            try s.audit(pid, .objsearch, 0x01, name)
            try s.audit(pid, .activity, 1)
            s.t += 1 << 63
            try s.audit(pid, .activity, 0)
        }
        let a = try s.analysis()
        let rank = RankSummary(analysis: a)
        #expect(rank.dlopens == 2 && rank.dlopenNs == UInt64.max)
        #expect(rank.missing == ["libp1.so", "libp2.so"], "\(rank.missing)")
    }
}
