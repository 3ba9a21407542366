import Foundation
import TestSupport
import Testing

/// Field values a well-formed trace can carry that once trapped a reader:
/// every command reads them and either reports or refuses with one line,
/// never a trap.
@Suite("crafted traces")
struct CraftedTraceTests {
    /// A trace file from records written by hand (docs/trace-format.md).
    struct Builder {
        var payload: [UInt8] = []
        mutating func u(_ v: UInt64) { var v = v; while v >= 0x80 { payload.append(UInt8(v & 0x7f) | 0x80); v >>= 7 }; payload.append(UInt8(v)) }
        mutating func s(_ v: Int64) { u(UInt64(bitPattern: (v << 1) ^ (v >> 63))) }
        mutating func string(_ text: String) { payload.append(0x01); u(UInt64(text.utf8.count)); payload += Array(text.utf8) }
        func file() -> Data {
            var d = Data("LPTRACE\n".utf8)
            for v in [UInt32(3), 0] { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
            d.append(contentsOf: Array("LPCK".utf8))
            withUnsafeBytes(of: UInt32(payload.count).littleEndian) { d.append(contentsOf: $0) }
            d.append(contentsOf: payload)
            return d
        }
    }

    /// One process, started and ended: the smallest complete trace.
    func minimalTrace(in dir: String) throws -> String {
        var b = Builder()
        b.payload.append(0x30); b.u(5); b.s(0); b.u(1); b.payload.append(0); b.s(1_000)
        b.payload.append(0x7f); b.s(2_000)
        let trace = dir + "/t.lpt"
        try b.file().write(to: URL(fileURLWithPath: trace))
        return trace
    }

    func statusOK(_ r: Run, _ what: String) {
        // 0 (reported) or 1 (refused, one line); never a signal (128+N) or a stack dump.
        #expect(r.status == 0 || (r.status == 1 && r.stderrText.split(separator: "\n").count == 1), "\(what): \(r.status) \(r.stderrText)")
    }

    @Test("a huge tid−pid, a result of INT64_MIN, main before the start: reported or refused, never a trap")
    func extremes() throws {
        let dir = try scratch("crafted")
        var b = Builder()
        b.string("/bin/app")            // id 1
        b.string("/lib")                // id 2
        b.string("libx.so")             // id 3
        b.string("/bin")                // id 4
        b.string("app")                 // id 5
        // PROCESS pid 5, start at 1,000,000.
        b.payload.append(0x30); b.u(5); b.s(0); b.u(1); b.payload.append(0); b.s(1_000_000)
        // EXEC of /bin/app.
        b.payload.append(0x31); b.u(5); b.s(0); b.u(4); b.u(5); b.u(0); b.s(10)
        // SYSCALL openat /lib/libx.so, result INT64_MIN.
        b.payload.append(0x10); b.u(5); b.s(0); b.payload.append(2); b.u(0); b.u(2); b.u(3); b.u(0); b.s(Int64.min); b.s(10); b.u(5)
        // AUDIT preinit (main) earlier than the process start: time delta negative.
        b.payload.append(0x20); b.u(5); b.payload.append(5); b.u(0); b.s(0); b.u(0); b.u(0); b.u(0); b.s(-900_000)
        let good = dir + "/extremes.lpt"
        var full = b
        full.payload.append(0x7f); full.s(2_000_000)
        try full.file().write(to: URL(fileURLWithPath: good))
        // The same with a tid−pid that overflows 64 bits (an EXIT record).
        var bad = b
        bad.payload.append(0x32); bad.u(5); bad.s(Int64.max); bad.s(0); bad.s(10)
        bad.payload.append(0x7f); bad.s(2_000_000)
        let overflow = dir + "/tid.lpt"
        try bad.file().write(to: URL(fileURLWithPath: overflow))

        for trace in [good, overflow] {
            for args in [["report", trace], ["report", "--calls", trace], ["report", "--format", "html", trace],
                         ["report", "--format", "json", trace], ["report", "--format", "perfetto", trace],
                         ["diff", trace, trace]] {
                statusOK(try run([loadprobe] + args), args.joined(separator: " "))
            }
        }
        let refused = try run([loadprobe, "report", overflow])
        #expect(refused.status == 1 && refused.stderrText.contains("out of range"), "\(refused.stderrText)")
        let calls = try run([loadprobe, "report", "--calls", good])
        #expect(calls.status == 0 && calls.stdoutText.contains("/lib/libx.so"), "\(calls.stdoutText)")
    }

    @Test("out-of-range model options: one line naming the option, status 64")
    func options() throws {
        let dir = try scratch("crafted-options")
        let trace = try minimalTrace(in: dir)
        for (args, names) in [(["--procs", "9223372036854775807"], "--procs"), (["--extra-data", "inf"], "--extra-data"),
                              (["--extra-data", "1e300"], "--extra-data"), (["--server-ops", "inf"], "--server-ops"),
                              (["--server-ops", "nan"], "--server-ops"), (["--compute", "nan"], "--compute"),
                              (["--latency", "all=nan"], "nan"), (["--latency", "all=1e300s"], "1e300s"),
                              (["--open-overhead", "nan"], "nan")] {
            let r = try run([loadprobe, "report", trace] + args)
            #expect(r.status == 64 && r.stderrText.contains(names) && r.stderrText.split(separator: "\n").count == 1,
                    "\(args): \(r.status) \(r.stderrText)")
        }
        let ok = try run([loadprobe, "report", trace, "--procs", "512", "--nodes", "4", "--latency", "all=1ms"])
        #expect(ok.status == 0, "\(ok.stderrText)")
    }

    @Test("a FIFO or /dev/zero given as a trace or an environment file: one line, status 1, no wait", .timeLimit(.minutes(1)))
    func notRegularFiles() throws {
        let dir = try scratch("crafted-fifo")
        let fifo = dir + "/trace.lpt"
        #expect(mkfifo(fifo, 0o600) == 0)
        for path in [fifo, "/dev/zero"] {
            for args in [["report", path], ["diff", path, path], ["explain", "--env-from", path, "/bin/true"]] {
                let r = try run([loadprobe] + args)
                #expect(r.status == 1 && r.stderrText.split(separator: "\n").count == 1 && r.stderrText.contains(path),
                        "\(args): \(r.status) \(r.stderrText)")
            }
        }
    }

    @Test("report -o and diff -o: a planted symlink is not followed, a FIFO is not opened; a regular file is replaced", .timeLimit(.minutes(1)))
    func outputFiles() throws {
        let dir = try scratch("crafted-output")
        let trace = try minimalTrace(in: dir)
        let victim = dir + "/victim"
        try write("keep me\n", to: victim)
        try FileManager.default.createSymbolicLink(atPath: dir + "/out", withDestinationPath: victim)
        #expect(mkfifo(dir + "/fifo", 0o600) == 0)
        for args in [["report", trace, "-o", dir + "/out"], ["diff", trace, trace, "-o", dir + "/out"],
                     ["report", trace, "-o", dir + "/fifo"]] {
            let r = try run([loadprobe] + args)
            #expect(r.status == 1 && r.stderrText.split(separator: "\n").count == 1, "\(args): \(r.status) \(r.stderrText)")
        }
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "keep me\n")
        try write(String(repeating: "old ", count: 10_000), to: dir + "/report.txt")
        let ok = try run([loadprobe, "report", trace, "-o", dir + "/report.txt"])
        #expect(ok.status == 0, "\(ok.stderrText)")
        #expect(!(try String(contentsOfFile: dir + "/report.txt", encoding: .utf8)).contains("old old"))
    }
}
