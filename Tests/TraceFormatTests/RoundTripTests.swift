import Foundation
import Testing
@testable import TraceFormat

/// Writes a trace with one event of every kind through the real writer, into a
/// temporary file, and returns its bytes.
func sampleTrace(chunkBytes: Int = 1 << 20, finish: Bool = true, withCaller: Bool = true) throws -> (bytes: [UInt8], events: [TraceEvent], writer: String) {
    let path = NSTemporaryDirectory() + "lp-format-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).lpt"
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    #expect(fd >= 0)
    let w = try TraceWriter(fd: fd, chunkBytes: chunkBytes)
    try w.meta("argv", "./app")
    try w.meta("env", "LD_LIBRARY_PATH=/a:/b")
    let lib = w.internPath("/opt/pkgs/dep1/lib/glibc-hwcaps/x86-64-v3/libdep1.so")
    let rel = w.internPath("relative.so")
    let empty = w.internPath("")
    var events: [TraceEvent] = []
    events.append(.process(ProcessEvent(pid: 100, tid: 100, parent: 1, how: .root, timeNs: 1_000)))
    events.append(.syscall(SyscallEvent(pid: 100, tid: 100, call: .openat, dirfd: -100, path: lib, resolved: nil,
                                        flags: 0o2000000, result: -2, completed: true, own: false, entryNs: 2_000, exitNs: 2_500)))
    events.append(.syscall(SyscallEvent(pid: 100, tid: 101, call: .newfstatat, dirfd: 3, path: empty, resolved: lib,
                                        flags: 0x1000, result: 0, completed: true, own: true, entryNs: 3_000, exitNs: 3_100)))
    events.append(.syscall(SyscallEvent(pid: 100, tid: 100, call: .access, dirfd: nil, path: rel, resolved: rel,
                                        flags: 4, result: 0, completed: false, own: false, entryNs: 2_900, exitNs: 2_900)))
    events.append(.audit(AuditEvent(pid: 100, kind: .objsearch, flag: 0x04, lmid: 0, name: lib, seq: 7, timeNs: 1_500)))
    events.append(.audit(AuditEvent(pid: 100, kind: .activity, flag: 1, lmid: -1, name: .none, seq: 8, timeNs: 900)))
    events.append(.exec(ExecEvent(pid: 100, formerTid: 101, path: lib, argv: [w.intern("a"), w.intern("b c")], timeNs: 4_000)))
    events.append(.exit(ExitEvent(pid: 100, tid: 100, status: 9, timeNs: 5_000)))
    events.append(.note(NoteEvent(pid: 100, text: w.intern("audit was not possible"))))
    if withCaller { events.append(.caller(CallerEvent(pid: 100, tid: 101, object: w.internPath("/opt/app/libplugin.so"), offset: 0x1234,
                                      depth: 3, timeNs: 5_500))) }
    for e in events { try w.write(e) }
    if finish { try w.finish(endNs: 6_000) } else { try w.flush(); w.close() }
    let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    unlink(path)
    return (bytes, events, path)
}

@Suite("trace format")
struct RoundTripTests {
    @Test("every event kind survives a write and a read unchanged")
    func roundTrip() throws {
        let (bytes, events, _) = try sampleTrace(chunkBytes: 64) // many small chunks
        let t = try TraceReader.decode(bytes, file: "t.lpt")
        #expect(t.complete)
        #expect(t.endNs == 6_000)
        #expect(t.events == events)
        #expect(t.meta("argv") == "./app")
        #expect(t.metaAll("env") == ["LD_LIBRARY_PATH=/a:/b"])
        guard case .syscall(let s) = t.events[1] else { Issue.record("not a syscall"); return }
        #expect(t.path(s.path) == "/opt/pkgs/dep1/lib/glibc-hwcaps/x86-64-v3/libdep1.so")
        #expect(s.errno == 2 && s.failed)
        guard case .syscall(let r) = t.events[3] else { Issue.record("not a syscall"); return }
        #expect(t.path(r.path) == "relative.so")
        #expect(!r.completed && !r.failed)
        guard case .exit(let x) = t.events[7] else { Issue.record("not an exit"); return }
        #expect(x.signal == 9 && x.exitCode == nil)
        guard case .note(let n) = t.events[8] else { Issue.record("not a note"); return }
        #expect(t.string(n.text) == "audit was not possible")
        guard case .caller(let c) = t.events[9] else { Issue.record("not a caller"); return }
        #expect(t.path(c.object) == "/opt/app/libplugin.so" && c.offset == 0x1234 && c.tid == 101)
    }

    @Test("version 1 traces are still read; a CALLER record in one is refused")
    func versionOne() throws {
        #expect(TraceWire.version == 3)
        let (bytes0, events, _) = try sampleTrace()
        var bytes = bytes0
        // The sample's last event is the CALLER record: without it, the file is a valid version 1 trace.
        var v1 = try sampleTrace(withCaller: false).bytes
        v1[8] = 1
        let t = try TraceReader.decode(v1, file: "v1.lpt")
        #expect(t.version == 1)
        #expect(t.events == Array(events.dropLast()))
        bytes[8] = 1
        do {
            _ = try TraceReader.decode(bytes, file: "x")
            Issue.record("a CALLER record was accepted in a version 1 trace")
        } catch {
            guard case .corrupt(_, let what) = error.reason else { Issue.record("\(error)"); return }
            #expect(what.contains("CALLER"))
        }
    }

    @Test("OBJECT records (version 3) survive a write and a read; a version 2 trace with one is refused")
    func objectRecords() throws {
        let path = NSTemporaryDirectory() + "lp-format-obj-\(getpid()).lpt"
        defer { unlink(path) }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let w = try TraceWriter(fd: fd)
        let lib = w.internPath("/opt/pkgs/dep1/lib/libdep1.so.1")
        let ok = ObjectFacts(path: lib, device: 0xfd01, inode: 123_456_789, size: 40_960, contentHash: 0xdead_beef_0bad_cafe,
                             elfClass: 2, byteOrder: 1, osABI: 3, abiVersion: 0, type: 3, machine: 62, isDynamic: true,
                             interpreter: nil, soname: w.intern("libdep1.so.1"), rpath: nil, runpath: w.intern("$ORIGIN/../x:/y"),
                             needed: [w.intern("libc.so.6"), w.intern("libx.so.7.0")], flags: 8, flags1: 0x800)
        var bare = ok
        bare.path = w.internPath("/bin/app")
        bare.soname = nil; bare.runpath = nil; bare.rpath = w.intern(""); bare.interpreter = w.intern("/lib64/ld-linux-x86-64.so.2")
        bare.needed = []; bare.type = 2
        try w.write(ok)
        try w.write(bare)
        try w.finish(endNs: 1)
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        let t = try TraceReader.decode(bytes, file: "o.lpt")
        #expect(t.objects == [ok, bare])
        #expect(t.string(t.objects[1].rpath!) == "")
        #expect(t.objects[0].needed.map { t.string($0) } == ["libc.so.6", "libx.so.7.0"])
        bytes[8] = 2
        do {
            _ = try TraceReader.decode(bytes, file: "v2.lpt")
            Issue.record("an OBJECT record was accepted in a version 2 trace")
        } catch {
            guard case .corrupt(_, let what) = error.reason else { Issue.record("\(error)"); return }
            #expect(what.contains("OBJECT"))
        }
    }

    @Test("interning: the same string gets the same id, a path splits at its last slash")
    func interning() throws {
        var i = ByteInterner()
        var ids: [UInt32] = []
        for s in ["a", "b", "a", "", "/x/y", "b"] + (0..<5000).map({ "lib\($0).so" }) {
            var s = s
            ids.append(s.withUTF8 { i.intern(UnsafeRawBufferPointer($0)).id })
        }
        #expect(ids[0] == ids[2] && ids[1] == ids[5] && ids[0] != ids[1])
        #expect(Set(ids).count == 5004)
        #expect(i.count == 5004)
    }

    @Test("a trace cut in the middle of a chunk is refused, or read as far as it goes with allowPartial")
    func truncated() throws {
        let (bytes, events, _) = try sampleTrace(chunkBytes: 64)
        let cut = Array(bytes[0..<(bytes.count - 5)])
        #expect(throws: TraceReadError.self) { try TraceReader.decode(cut, file: "t.lpt") }
        do {
            _ = try TraceReader.decode(cut, file: "t.lpt")
        } catch {
            #expect(error.description.hasPrefix("t.lpt: truncated at byte"))
        }
        let partial = try TraceReader.decode(cut, file: "t.lpt", allowPartial: true)
        #expect(!partial.complete)
        #expect(partial.events.count < events.count + 1)
        #expect(Array(partial.events) == Array(events.prefix(partial.events.count)))
    }

    @Test("a trace without its end record is reported as incomplete")
    func incomplete() throws {
        let (bytes, events, _) = try sampleTrace(finish: false)
        do {
            _ = try TraceReader.decode(bytes, file: "t.lpt")
            Issue.record("an incomplete trace was accepted")
        } catch {
            #expect(error.reason == .incomplete(recovered: events.count))
        }
        #expect(try TraceReader.decode(bytes, file: "t.lpt", allowPartial: true).events == events)
    }

    @Test("not a trace, another version: one clear error")
    func foreign() throws {
        #expect(throws: TraceReadError(file: "x", reason: .notATrace)) { try TraceReader.decode(Array("hello".utf8), file: "x") }
        var (bytes, _, _) = try sampleTrace()
        bytes[8] = 9
        #expect(throws: TraceReadError(file: "x", reason: .unsupportedVersion(9))) { try TraceReader.decode(bytes, file: "x") }
    }

    @Test("corrupted bytes never crash the reader: each mutation decodes or fails with a message")
    func mutations() throws {
        let (bytes, _, _) = try sampleTrace(chunkBytes: 128)
        var rng = SystemRandomNumberGenerator()
        var failures = 0
        for _ in 0..<3000 {
            var b = bytes
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let at = Int.random(in: TraceWire.headerSize..<b.count, using: &rng)
                b[at] = UInt8.random(in: 0...255, using: &rng)
            }
            do { _ = try TraceReader.decode(b, file: "m.lpt") } catch {
                failures += 1
                #expect(error.description.hasPrefix("m.lpt: "))
                #expect(!error.description.contains("\n"))
            }
        }
        #expect(failures > 0)
    }
}
