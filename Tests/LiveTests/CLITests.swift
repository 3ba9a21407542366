import Foundation
import TestSupport
import Testing
import TraceFormat

/// Bad invocations and bad files: one clear line on stderr, a non-zero status.
@Suite("command line")
struct CLITests {
    func oneLine(_ r: Run, contains: String, status: Int32, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == status, "status \(r.status): \(r.stderrText)", sourceLocation: sourceLocation)
        let lines = r.stderrText.split(separator: "\n")
        #expect(lines.count == 1, "one line, got: \(r.stderrText)", sourceLocation: sourceLocation)
        #expect(r.stderrText.contains(contains), "\(r.stderrText)", sourceLocation: sourceLocation)
        #expect(!r.stderrText.contains("Fatal error"), sourceLocation: sourceLocation)
    }

    @Test func noCommand() throws { oneLine(try run([loadprobe]), contains: "no command given", status: 64) }
    @Test func exclusiveModes() throws {
        oneLine(try run([loadprobe, "--no-ptrace", "--no-audit", "--", "/bin/true"]), contains: "mutually exclusive", status: 64)
    }
    @Test func unknownOption() throws { oneLine(try run([loadprobe, "--bogus"]), contains: "unknown option '--bogus'", status: 64) }

    @Test("a command that is not found exits 127, like a shell")
    func notFound() throws {
        let dir = try scratch("cli")
        oneLine(try run([loadprobe, "-o", dir + "/t.lpt", "--", "no-such-command-xyz"]), contains: "command not found", status: 127)
        oneLine(try run([loadprobe, "-o", dir + "/t.lpt", "--", dir + "/missing"]), contains: "No such file", status: 127)
    }

    @Test("a file that cannot be executed exits 126, like a shell")
    func notExecutable() throws {
        let dir = try scratch("cli")
        try write("data", to: dir + "/data")
        oneLine(try run([loadprobe, "-o", dir + "/t.lpt", "--", dir + "/data"]), contains: "Permission denied", status: 126)
        oneLine(try run([loadprobe, "-o", dir + "/t.lpt", "--", dir]), contains: "Is a directory", status: 126)
        var junk: [UInt8] = [0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]
        junk += (0..<200).map { _ in UInt8.random(in: 0...255) }
        FileManager.default.createFile(atPath: dir + "/junk", contents: Data(junk), attributes: [.posixPermissions: 0o755])
        for mode in [[], ["--no-ptrace"], ["--no-audit"]] {
            oneLine(try run([loadprobe, "-q", "-o", dir + "/t.lpt"] + mode + ["--", dir + "/junk"]), contains: "Exec format error", status: 126)
        }
    }

    @Test("an executable text file without #! runs under /bin/sh, as execvp does")
    func plainScript() throws {
        let dir = try scratch("cli")
        FileManager.default.createFile(atPath: dir + "/s", contents: Data("echo from sh $1\nexit 6\n".utf8),
                                       attributes: [.posixPermissions: 0o755])
        let r = try run([loadprobe, "-q", "-o", dir + "/t.lpt", "--", dir + "/s", "arg"])
        #expect(r.status == 6)
        #expect(r.stdoutText == "from sh arg\n")
    }

    @Test("the trace is never written through a symlink; missing directories are made; %p %r %j %h %% expand")
    func outputPattern() throws {
        let dir = try scratch("cli")
        try FileManager.default.createSymbolicLink(atPath: dir + "/link.lpt", withDestinationPath: dir + "/target")
        oneLine(try run([loadprobe, "-q", "-o", dir + "/link.lpt", "--", "/bin/true"]), contains: "symbolic link", status: 1)
        #expect(!FileManager.default.fileExists(atPath: dir + "/target"))

        var env = baseEnvironment()
        env["SLURM_JOB_ID"] = "4242"
        env["PMI_RANK"] = "7"
        let r = try run([loadprobe, "-q", "-o", dir + "/job-%j/r%r-%%-%h.lpt", "--", "/bin/true"], env: env)
        #expect(r.status == 0, "\(r.stderrText)")
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? ""
        let expected = dir + "/job-4242/r7-%-\(host).lpt"
        let made = (try? FileManager.default.contentsOfDirectory(atPath: dir + "/job-4242")) ?? []
        #expect(FileManager.default.fileExists(atPath: expected), "\(made)")
        let t = try TraceReader.read(file: expected)
        #expect(t.meta("jobid") == "4242" && t.meta("rank") == "7")
        #expect(t.meta("mountinfo")?.contains(" / ") == true)
        #expect(t.meta("libc")?.hasPrefix("glibc ") == true)
        #expect(t.meta("cwd") != nil && t.meta("host") != nil)

        // Recording to the same name again replaces the trace with a new file
        // (a hard link to the old one keeps the old trace, whole).
        try FileManager.default.linkItem(atPath: expected, toPath: dir + "/old.lpt")
        let old = try Data(contentsOf: URL(fileURLWithPath: dir + "/old.lpt"))
        let again = try run([loadprobe, "-q", "-o", expected, "--", "/bin/false"], env: env)
        #expect(again.status == 1, "\(again.stderrText)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/old.lpt")) == old)
        #expect(try TraceReader.read(file: dir + "/old.lpt").meta("program") == "/bin/true")
        #expect(try TraceReader.read(file: expected).meta("program") == "/bin/false")
    }

    @Test("report: missing, not a trace, a directory, truncated — one line each, status 1")
    func badTraces() throws {
        let dir = try scratch("cli")
        oneLine(try run([loadprobe, "report", dir + "/missing.lpt"]), contains: "No such file", status: 1)
        try write("hello", to: dir + "/text")
        oneLine(try run([loadprobe, "report", dir + "/text"]), contains: "not a loadprobe trace", status: 1)
        oneLine(try run([loadprobe, "report", dir]), contains: "no trace files", status: 1) // a directory is a job's traces

        let trace = dir + "/t.lpt"
        let f = try Fixtures.get()
        #expect(try run([loadprobe, "-q", "-o", trace, "--", f.path("rpath3")]).status == 3)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: trace))
        try bytes.prefix(bytes.count - 7).write(to: URL(fileURLWithPath: dir + "/cut.lpt"))
        oneLine(try run([loadprobe, "report", dir + "/cut.lpt"]), contains: "truncated at byte", status: 1)
        let partial = try run([loadprobe, "report", "--partial", "--format", "json", dir + "/cut.lpt"])
        #expect(partial.status == 0)
        #expect(partial.stdoutText.contains("\"complete\": false"))
    }

    @Test("a program that cannot start (a library is missing) gets the loader's failure explained")
    func cannotStart() throws {
        let f = try Fixtures.get()
        let dir = try scratch("cli")
        let r = try run([loadprobe, "-o", dir + "/t.lpt", "--", f.path("plain")], env: baseEnvironment())
        #expect(r.status == 127)
        #expect(r.stderrText.contains("error while loading shared libraries"), "ld.so's own message reaches stderr")
        #expect(r.stderrText.contains("cannot start"), "\(r.stderrText)")
        #expect(r.stderrText.contains("liba.so"))
        #expect(try TraceReader.read(file: dir + "/t.lpt").complete)
    }

    @Test("loadprobe exits with the program's status, and is killed by the signal that killed it (no core file of its own)")
    func exitStatus() throws {
        let dir = try scratch("cli")
        let exited = try run([loadprobe, "-q", "-o", dir + "/a.lpt", "--", "/bin/sh", "-c", "exit 42"])
        #expect(exited.status == 42 && exited.signal == nil)
        for (sig, name) in [(SIGTERM, "TERM"), (SIGSEGV, "SEGV")] {
            for mode in [[], ["--no-ptrace"]] {
                let trace = dir + "/\(name)\(mode.count).lpt"
                let killed = try run(unblocked([loadprobe, "-q", "-o", trace] + mode + ["--", "/bin/sh", "-c", "kill -\(name) $$"]), cwd: dir)
                #expect(killed.signal == sig, "\(mode) \(name): \(killed.status) \(killed.stderrText)")
                #expect(try TraceReader.read(file: trace).complete)
            }
        }
        #expect(!FileManager.default.fileExists(atPath: dir + "/core"))
    }

    @Test("SIGTERM sent to loadprobe reaches the program; the trace is complete")
    func forwardedSignal() throws {
        let dir = try scratch("cli")
        let p = Process()
        let argv = unblocked([loadprobe, "-q", "-o", dir + "/t.lpt", "--", "/bin/sleep", "30"])
        p.executableURL = URL(fileURLWithPath: argv[0])
        p.arguments = Array(argv.dropFirst())
        try p.run()
        // python3 execs loadprobe in place (same pid); the trace exists once the program is started.
        for _ in 0..<300 where !FileManager.default.fileExists(atPath: dir + "/t.lpt") { usleep(100_000) }
        usleep(300_000)
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        #expect(p.terminationReason == .uncaughtSignal && p.terminationStatus == 15)
        let t = try TraceReader.read(file: dir + "/t.lpt")
        #expect(t.complete)
        #expect(t.events.contains { if case .exit(let e) = $0 { e.signal == 15 } else { false } })
    }
}

/// The test runner's threads block some signals and children inherit the mask;
/// a user's shell blocks none. Starts argv with an empty signal mask.
func unblocked(_ argv: [String]) -> [String] {
    ["/usr/bin/python3", "-c", "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execv(sys.argv[1], sys.argv[1:])"] + argv
}

/// The job options' edges (a reviewer's findings): what a rank may not be asked.
@Suite("job options")
struct JobOptionTests {
    @Test("--full-ranks with --no-audit is refused: a summary rank records through the audit library")
    func fullRanksWithoutAudit() throws {
        let r = try run([loadprobe, "--full-ranks", "0", "--no-audit", "-o", NSTemporaryDirectory() + "x.lpt", "--", "/bin/true"],
                        env: ["PATH": "/usr/bin:/bin", "SLURM_PROCID": "1", "SLURM_NTASKS": "2"])
        #expect(r.status == 64 && r.stderrText.contains("--no-audit"), "\(r.status) \(r.stderrText)")
    }

    @Test("options given through the SPANK plugin's variables cannot choose another subcommand or the command")
    func spankOptionsStayRecordOptions() throws {
        let dir = try scratch("spank-options")
        var env = ["PATH": "/usr/bin:/bin", "LOADPROBE_SPANK_PROGRAM": "/bin/echo", "LOADPROBE_SPANK_OPTIONS": "report"]
        let asReport = try run([loadprobe, "hello"], env: env, cwd: dir)
        #expect(asReport.status != 0 && !asReport.stdoutText.contains("hello"), "'report' as an option: \(asReport.stdoutText) \(asReport.stderrText)")
        env["LOADPROBE_SPANK_OPTIONS"] = "-q -o \(dir)/t.lpt"
        let fine = try run([loadprobe, "hello"], env: env, cwd: dir)
        #expect(fine.status == 0 && fine.stdoutText == "hello\n", "\(fine.stdoutText) \(fine.stderrText)")
        #expect(FileManager.default.fileExists(atPath: dir + "/t.lpt"))
    }
}

@Suite("terminal")
struct TerminalTests {
    @Test("Ctrl-C on a terminal stops the program as it would untraced: killed by SIGINT, and a complete trace")
    func controlC() throws {
        let dir = try scratch("tty")
        let trace = dir + "/t.lpt"
        // A pseudo-terminal whose foreground process group is loadprobe and the program.
        let script = """
        import os, pty, signal, sys, time
        trace = sys.argv[1]
        pid, fd = pty.fork()
        if pid == 0:
            # As from a login shell: nothing blocked or ignored (the test runner blocks some).
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
            for s in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM):
                signal.signal(s, signal.SIG_DFL)
            os.execv(sys.argv[2], sys.argv[2:])
        deadline = time.time() + 30
        while not os.path.exists(trace) and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        os.write(fd, b"\\x03")
        out = b""
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
        """
        let r = try run(["/usr/bin/python3", "-c", script, trace, loadprobe, "-o", trace, "--", "/bin/sleep", "30"])
        // os.waitstatus_to_exitcode: -N for killed by signal N, as /bin/sleep untraced gives.
        #expect(r.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines) == "-2", "\(r.stdoutText) \(r.stderrText)")
        let t = try TraceReader.read(file: trace)
        #expect(t.complete)
        #expect(t.events.contains { if case .exit(let e) = $0 { e.signal == 2 } else { false } })
    }
}
