import Foundation
import TestSupport
import Testing

/// The traced program is the untraced program. Each case runs one small C
/// program (Tests/LiveTests/parity/) three ways, each from the same launcher
/// (parity/launcher.c), which passes argv, environment and stdin as raw bytes,
/// sets up the child's process state, and reports what a parent sees:
///
/// - untraced: `launcher(PROG ARGS)`
/// - full: `launcher(loadprobe -q -o T -- PROG ARGS)` (ptrace + audit)
/// - audit: `launcher(loadprobe -q --no-ptrace -o T -- PROG ARGS)`
///
/// and compares, with the untraced run, the exit status or killing signal and
/// core flag, the program's stdout bytes (what it prints of itself) and its
/// stderr bytes. The only difference allowed is loadprobe's four environment
/// entries (docs/observable.md, "Added"). Cases that fail because of a tracer
/// bug keep asserting the untraced behaviour; a case that cannot run here fails
/// and says why.
@Suite("parity: traced as untraced", .serialized, .timeLimit(.minutes(1)))
struct ParityTests {
    enum Mode: String, CaseIterable, Sendable {
        case untraced, full, audit
        var label: String {
            switch self {
            case .untraced: "untraced"
            case .full: "ptrace+audit"
            case .audit: "--no-ptrace"
            }
        }
    }

    /// The environment entries loadprobe adds; everything else is compared byte for byte.
    static let added: Set<String> = ["LD_AUDIT", "LOADPROBE_AUDIT_DIR", "LOADPROBE_PTRACE", "GLIBC_TUNABLES"]

    static let environment: [[UInt8]] = ["PATH=/usr/bin:/bin", "HOME=/root", "LANG=C", "TZ=UTC"].map(bytes)

    /// A case where loadprobe differs from untraced by design (docs/observable.md):
    /// everything else the same, and what differs is exactly what the docs say.
    func expectDocumentedDifference(_ name: String, _ c: Case, modes: [Mode], status: String? = nil,
                                    stdout: ((String) -> Bool)? = nil, stderrContains: String? = nil,
                                    sourceLocation: SourceLocation = #_sourceLocation) throws -> [Mode: Seen] {
        let seen = try runThreeWays(name, c)
        let plain = seen[.untraced]!
        for mode in [Mode.full, .audit] {
            let traced = seen[mode]!
            let at = "\(name) [\(mode.label)]"
            let differs = modes.contains(mode)
            #expect(traced.status == (differs ? status ?? plain.status : plain.status), "\(at): the parent saw '\(traced.status)'",
                    sourceLocation: sourceLocation)
            if differs, let stdout {
                #expect(stdout(traced.stdoutText), "\(at): stdout \(traced.stdoutText)", sourceLocation: sourceLocation)
            } else {
                #expect(Self.withoutAdded(traced.stdout) == Self.withoutAdded(plain.stdout), "\(at): stdout \(traced.stdoutText)",
                        sourceLocation: sourceLocation)
            }
            if differs, let note = stderrContains {
                #expect(String(decoding: traced.stderr, as: UTF8.self).contains(note), "\(at): no note '\(note)'", sourceLocation: sourceLocation)
            } else {
                #expect(traced.stderr == plain.stderr, "\(at): stderr differs", sourceLocation: sourceLocation)
            }
        }
        return seen
    }

    /// One way of running a program. "@RUN@" in argv, cwd and setup lines becomes
    /// the directory of the run (one per case and mode).
    struct Case {
        var argv: [[UInt8]]
        var env: [[UInt8]] = ParityTests.environment
        var stdin: [UInt8]? = nil
        var cwd: [UInt8]? = nil
        /// Further launcher spec lines (parity/launcher.c).
        var setup: [String] = []
    }

    /// What the parent saw of one run, and what the program wrote.
    struct Seen {
        /// "exited N" or "signaled N core C", as the launcher prints it.
        var status: String
        var elapsedMs: Int
        var stdout: [UInt8]
        var stderr: [UInt8]
        var traceBytes: Int?
        var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    }

    // MARK: running a case three ways

    func runThreeWays(_ name: String, _ c: Case) throws -> [Mode: Seen] {
        let p = try ParityPrograms.shared.get()
        var seen: [Mode: Seen] = [:]
        for mode in Mode.allCases {
            let dir = p.dir + "/runs/" + name.map { $0.isLetter || $0.isNumber ? String($0) : "-" }.joined() + "/" + mode.rawValue
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let trace = dir + "/trace.lpt"
            unlink(trace)
            let fill = { (b: [UInt8]) in Self.replacing(b, Self.bytes("@RUN@"), with: Self.bytes(dir)) }
            let loadprobeArgv: [String]
            switch mode {
            case .untraced: loadprobeArgv = []
            case .full: loadprobeArgv = [loadprobe, "-q", "-o", trace, "--"]
            case .audit: loadprobeArgv = [loadprobe, "-q", "--no-ptrace", "-o", trace, "--"]
            }
            var spec = (loadprobeArgv.map(Self.bytes) + c.argv.map(fill)).map { "a " + Self.hex($0) }
            spec += c.env.map { "e " + Self.hex($0) }
            if let i = c.stdin { spec.append("i " + Self.hex(i)) }
            if let cwd = c.cwd { spec.append("cwd " + Self.hex(fill(cwd))) }
            spec += ["o \(dir)/stdout", "r \(dir)/stderr"] + c.setup.map { $0.replacingOccurrences(of: "@RUN@", with: dir) }
            try write(spec.joined(separator: "\n") + "\n", to: dir + "/spec")
            let r = try run([p.launcher, dir + "/spec"])
            let lines = r.stdoutText.split(separator: "\n").map(String.init)
            guard r.status == 0, r.stderr.isEmpty, lines.count == 2, lines[1].hasPrefix("elapsed_ms ") else {
                throw TestFailure("\(name) [\(mode.label)]: the launcher failed (\(r.status)): \(r.stdoutText) \(r.stderrText)")
            }
            let size = (try? FileManager.default.attributesOfItem(atPath: trace)[.size] as? Int) ?? nil
            seen[mode] = Seen(status: lines[0], elapsedMs: Int(lines[1].dropFirst(11)) ?? -1,
                              stdout: Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/stdout"))),
                              stderr: Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/stderr"))),
                              traceBytes: mode == .untraced ? nil : size)
        }
        return seen
    }

    /// Runs the case three ways and expects each traced run to look, to the
    /// parent and to the program, as the untraced run.
    @discardableResult
    func expectParity(_ name: String, _ c: Case, sourceLocation: SourceLocation = #_sourceLocation) throws -> [Mode: Seen] {
        let seen = try runThreeWays(name, c)
        let plain = seen[.untraced]!
        for mode in [Mode.full, .audit] {
            let traced = seen[mode]!
            let at = "\(name) [\(mode.label)]"
            #expect(traced.status == plain.status, "\(at): the parent saw '\(traced.status)', untraced '\(plain.status)'",
                    sourceLocation: sourceLocation)
            // Compared as Bool: the message shows the first differing line, not two byte arrays.
            let tracedOut = Self.withoutAdded(traced.stdout), plainOut = Self.withoutAdded(plain.stdout)
            let sameOut = tracedOut == plainOut, sameErr = traced.stderr == plain.stderr
            #expect(sameOut, "\(at): stdout differs: \(Self.difference(tracedOut, plainOut))", sourceLocation: sourceLocation)
            #expect(sameErr, "\(at): stderr differs: \(Self.difference(traced.stderr, plain.stderr))", sourceLocation: sourceLocation)
            #expect((traced.traceBytes ?? 0) > 0, "\(at): loadprobe wrote no trace", sourceLocation: sourceLocation)
        }
        return seen
    }

    func program(_ name: String, bytes args: [[UInt8]]) throws -> [[UInt8]] {
        [Self.bytes(try ParityPrograms.shared.get().path(name))] + args
    }

    func program(_ name: String, _ args: String...) throws -> [[UInt8]] {
        [Self.bytes(try ParityPrograms.shared.get().path(name))] + args.map(Self.bytes)
    }

    // MARK: output, input, exit

    @Test("stdout and stderr bytes: every byte value, NUL included")
    func outputBytes() throws {
        let seen = try expectParity("output bytes", Case(argv: program("output_bytes")))
        #expect(seen[.untraced]!.stdout.prefix(256) == ArraySlice((0...255).map { UInt8($0) }))
    }

    @Test("stdin reaches the program: 64 KiB of every byte value")
    func stdinPassthrough() throws {
        let input = (0..<65536).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let seen = try expectParity("stdin", Case(argv: program("stdin_echo"), stdin: input))
        #expect(seen[.untraced]!.stdout.prefix(input.count) == ArraySlice(input))
    }

    @Test("exit status", arguments: [0, 1, 42, 255])
    func exitStatus(_ n: Int) throws {
        let seen = try expectParity("exit \(n)", Case(argv: program("exit_with", String(n))))
        #expect(seen[.untraced]!.status == "exited \(n)")
    }

    @Test("killed by a signal (no core file: RLIMIT_CORE 0)", arguments: ["die_segv 11", "die_abort 6", "die_sigkill 9", "die_sigterm 15"])
    func killed(_ c: String) throws {
        let parts = c.split(separator: " ").map(String.init)
        let seen = try expectParity(parts[0], Case(argv: program(parts[0])))
        #expect(seen[.untraced]!.status == "signaled \(parts[1]) core 0")
    }

    /// docs/observable.md: loadprobe re-raises the signal without a core file of
    /// its own, so the parent sees the signal without the core flag; the
    /// program's own core file is written as untraced.
    @Test("killed by SIGSEGV with core dumps allowed: the program dumps core; the parent sees the signal, not the core flag")
    func coreDumped() throws {
        let pattern = (try? String(contentsOfFile: "/proc/sys/kernel/core_pattern", encoding: .utf8)) ?? "?"
        let seen = try expectDocumentedDifference("core dump", Case(argv: program("die_segv"), cwd: Self.bytes("@RUN@"), setup: ["rlimit 4 inf inf"]),
                                                  modes: [.full, .audit], status: "signaled 11 core 0")
        #expect(seen[.untraced]!.status == "signaled 11 core 1",
                "untraced, no core was dumped (core_pattern \(pattern.trimmingCharacters(in: .whitespacesAndNewlines))): \(seen[.untraced]!.status)")
        let runs = try ParityPrograms.shared.get().dir + "/runs/core-dump"
        for mode in Mode.allCases {
            for file in (try? FileManager.default.contentsOfDirectory(atPath: runs + "/" + mode.rawValue)) ?? [] where file.hasPrefix("core") {
                try? FileManager.default.removeItem(atPath: runs + "/" + mode.rawValue + "/" + file)
            }
        }
    }

    @Test("a signal from the parent, default action: SIGTERM ends the program")
    func parentSendsTerm() throws {
        let seen = try expectParity("parent SIGTERM", Case(argv: program("wait_for_signal"), setup: ["signal 15"]))
        #expect(seen[.untraced]!.status == "signaled 15 core 0")
    }

    @Test("a signal from the parent, caught: SIGINT runs the program's handler")
    func parentSendsInt() throws {
        let seen = try expectParity("parent SIGINT", Case(argv: program("wait_for_signal", "catch"), setup: ["signal 2"]))
        #expect(seen[.untraced]!.status == "exited 7")
    }

    // MARK: argv and environment

    @Test("argv as bytes: non-UTF-8, empty entries, a 128 KiB entry, loadprobe's own options")
    func arguments() throws {
        let long = [UInt8](repeating: UInt8(ascii: "x"), count: 131_071)  // MAX_ARG_STRLEN less its NUL
        let argv = try program("print_argv", bytes: [Self.bytes("caf") + [0xe9] + Self.bytes(".txt"), [], [0xff, 0xfe, 0x80], [],
                                                       long, Self.bytes("--"), Self.bytes("-q"), Self.bytes("--no-ptrace"), Self.bytes("-o"), Self.bytes(" ")])
        let seen = try expectParity("argv", Case(argv: argv))
        #expect(seen[.untraced]!.stdoutText.hasPrefix("argc 11\n"))
    }

    @Test("the environment as bytes and in order: non-UTF-8, duplicates, entries without '=', 50 entries")
    func environmentEntries() throws {
        var env = Self.environment
        env += [Self.bytes("NAME=caf") + [0xe9], [0xff, 0x3d, 0xfe], Self.bytes("DUP=first"), Self.bytes("NO_EQUALS_SIGN"),
                Self.bytes("DUP=second"), [], Self.bytes("=starts with ="), Self.bytes("DUP=third")]
        env += (0..<50).map { Self.bytes("V\((37 * $0) % 50)=entry \($0)") }
        let seen = try expectParity("environment", Case(argv: program("print_env"), env: env))
        #expect(Self.withoutAdded(seen[.untraced]!.stdout).split(separator: UInt8(ascii: "\n")).count == env.count)
    }

    @Test("the user's own LD_AUDIT and GLIBC_TUNABLES values lead loadprobe's")
    func ownLoaderVariables() throws {
        let p = try ParityPrograms.shared.get()
        let audit = Self.bytes(p.path("libaudit_noop.so")), tunables = Self.bytes("glibc.malloc.arena_max=2")
        let env = Self.environment + [Self.bytes("LD_AUDIT=") + audit, Self.bytes("GLIBC_TUNABLES=") + tunables, Self.bytes("AFTER=1")]
        let seen = try expectParity("own LD_AUDIT and GLIBC_TUNABLES", Case(argv: program("print_env"), env: env))
        for mode in [Mode.full, .audit] {
            for (name, own) in [("LD_AUDIT", audit), ("GLIBC_TUNABLES", tunables)] {
                let values = Self.environmentValues(seen[mode]!.stdout, name)
                #expect(values.count == 1 && values[0].starts(with: own + [UInt8(ascii: ":")]),
                        "\(mode.label): \(name) is \(values.map { Self.escaped($0) }), not the user's value followed by ':'")
            }
        }
        for (name, own) in [("LD_AUDIT", audit), ("GLIBC_TUNABLES", tunables)] {
            #expect(Self.environmentValues(seen[.untraced]!.stdout, name) == [own])
        }
    }

    @Test("a file whose name has a non-UTF-8 byte, named in argv, opens")
    func nonUTF8FileName() throws {
        let p = try ParityPrograms.shared.get()
        let seen = try expectParity("non-UTF-8 file name", Case(argv: program("open_named", bytes: [p.nonUTF8File])))
        #expect(seen[.untraced]!.stdoutText.contains("read 29: contents of a non-UTF-8 name"), "\(seen[.untraced]!.stdoutText)")
    }

    // MARK: what the process is

    @Test("CPU affinity: sched_getaffinity and Cpus_allowed_list before main, in main, in a thread")
    func affinity() throws { try expectParity("affinity", Case(argv: program("affinity"))) }

    @Test("ids and capabilities (getuid, geteuid, getgid, getegid, CapEff)")
    func ids() throws { try expectParity("ids", Case(argv: program("ids"))) }

    @Test("a set-user-ID program (owned by nobody) run directly: euid 65534")
    func setuidDirect() throws {
        let seen = try expectParity("set-user-ID, direct", Case(argv: program("print_euid_nobody")))
        #expect(seen[.untraced]!.stdoutText == "uid 0 euid 65534 AT_SECURE 1\n", "untraced: \(seen[.untraced]!.stdoutText)")
    }

    @Test("a set-user-ID program (owned by nobody) run by the program: euid 65534")
    func setuidNested() throws {
        let p = try ParityPrograms.shared.get()
        let seen = try expectParity("set-user-ID, nested", Case(argv: program("run_child", p.path("print_euid_nobody"))))
        #expect(seen[.untraced]!.stdoutText == "uid 0 euid 65534 AT_SECURE 1\nchild exited 0\n", "untraced: \(seen[.untraced]!.stdoutText)")
    }

    @Test("PR_GET_SECCOMP, PR_GET_NO_NEW_PRIVS and /proc NoNewPrivs")
    func seccompState() throws {
        let seen = try expectParity("seccomp state", Case(argv: program("seccomp_state")))
        #expect(seen[.untraced]!.stdoutText == "PR_GET_SECCOMP 0\nPR_GET_NO_NEW_PRIVS 0\nNoNewPrivs:\t0\n")
    }

    /// When the parent makes the command a process group or session leader, the
    /// leader is loadprobe and the program its descendant in that group and
    /// session (docs/observable.md): terminal signals and job control still reach it.
    @Test("process group and session", arguments: ["inherited", "own group", "own session"])
    func processGroup(_ how: String) throws {
        let setup = ["inherited": [], "own group": ["pgrp"], "own session": ["setsid"]][how]!
        let c = Case(argv: try program("process_group"), setup: setup)
        let seen = how == "inherited" ? try expectParity("process group, \(how)", c)
            : try expectDocumentedDifference("process group, \(how)", c, modes: [.full, .audit],
                                             stdout: { $0.hasPrefix("group leader 0\n") })
        #expect(seen[.untraced]!.stdoutText.hasPrefix("group leader \(how == "inherited" ? 0 : 1)\n"))
    }

    @Test("/proc/self/exe, argv[0] and AT_EXECFN, by path")
    func selfExeByPath() throws { try expectParity("self exe, path", Case(argv: program("self_exe"))) }

    @Test("/proc/self/exe, argv[0] and AT_EXECFN, by name looked up in PATH")
    func selfExeByName() throws {
        let p = try ParityPrograms.shared.get()
        let env = [Self.bytes("PATH=\(p.dir):/usr/bin:/bin")] + Self.environment.dropFirst()
        let seen = try expectParity("self exe, PATH", Case(argv: [Self.bytes("self_exe")], env: env))
        #expect(seen[.untraced]!.stdoutText.contains("argv[0] self_exe\n"))
    }

    // MARK: processes and threads

    @Test("eight threads opening files, joined")
    func threads() throws {
        let seen = try expectParity("threads", Case(argv: program("threads_open")))
        #expect(seen[.untraced]!.stdoutText.contains("thread 7: opened 40, read 40, missing 40, other errors 0"))
    }

    @Test("vfork, then exec in the child")
    func vforkExec() throws {
        let seen = try expectParity("vfork", Case(argv: program("vfork_exec")))
        #expect(seen[.untraced]!.stdoutText == "parent before vfork\nchild after vfork\nchild exited 3\n")
    }

    @Test("exec from a thread that is not the leader")
    func execFromThread() throws {
        let seen = try expectParity("exec from a thread", Case(argv: program("exec_from_thread")))
        #expect(seen[.untraced]!.stdoutText == "before exec\nafter exec: same pid 1, threads 1\n")
        #expect(seen[.untraced]!.status == "exited 4")
    }

    @Test("a tree of three levels of processes and their statuses")
    func forkTree() throws {
        let seen = try expectParity("fork tree", Case(argv: program("fork_tree")))
        #expect(seen[.untraced]!.stdoutText == "level 3 (exit) exited 7\nlevel 3 (SIGTERM) signaled 15\nlevel 2 exited 20\n")
    }

    @Test("a setsid double-forked daemon: the parent gets control back at once; the daemon writes its file")
    func daemon() throws {
        let seen = try expectParity("daemon", Case(argv: program("daemon", "@RUN@/daemon-output")))
        let p = try ParityPrograms.shared.get()
        for mode in Mode.allCases {
            // The daemon writes after 0.3 s and lives 3 s more: a parent that waits for it waits 3.3 s.
            #expect(seen[mode]!.elapsedMs < 1000, "\(mode.label): the parent got control back after \(seen[mode]!.elapsedMs) ms")
            let file = p.dir + "/runs/daemon/\(mode.rawValue)/daemon-output"
            var waited = 0
            while (try? String(contentsOfFile: file, encoding: .utf8)) != "daemon wrote\n" && waited < 30 { usleep(100_000); waited += 1 }
            #expect((try? String(contentsOfFile: file, encoding: .utf8)) == "daemon wrote\n", "\(mode.label): the daemon did not write its file")
        }
    }

    // MARK: the program's own seccomp, ptrace and TLS

    @Test("seccomp strict mode, then a forbidden call: killed by SIGKILL")
    func seccompStrict() throws {
        let seen = try expectParity("seccomp strict", Case(argv: program("seccomp_strict")))
        #expect(seen[.untraced]!.status == "signaled 9 core 0")
        #expect(seen[.untraced]!.stdoutText == "before strict mode\nstrict mode on\n")
    }

    @Test("the program's own SECCOMP_RET_TRACE filter for getpid, no tracer of its own: ENOSYS")
    func seccompRetTrace() throws {
        let seen = try expectParity("seccomp RET_TRACE", Case(argv: program("seccomp_ret_trace")))
        #expect(seen[.untraced]!.stdoutText == "install 0 (ok)\ngetpid -1, errno 38 (Function not implemented)\n")
    }

    /// Under the tracer a process has its tracer already: EPERM, and a note
    /// pointing at --no-ptrace (docs/observable.md); with --no-ptrace, as untraced.
    @Test("PTRACE_TRACEME by the program")
    func ptraceTraceMe() throws {
        let seen = try expectDocumentedDifference("PTRACE_TRACEME", Case(argv: program("ptrace_traceme")), modes: [.full],
                                                  stdout: { $0.hasPrefix("PTRACE_TRACEME -1, errno 1") }, stderrContains: "--no-ptrace")
        #expect(seen[.untraced]!.stdoutText == "PTRACE_TRACEME 0, errno 0 (none)\n")
    }

    @Test("dlopen of a library with 1800 bytes of initial-exec TLS fails as untraced")
    func staticTLS() throws {
        let p = try ParityPrograms.shared.get()
        let seen = try expectParity("static TLS", Case(argv: program("dlopen_tls", p.path("libtls_big.so"))))
        #expect(seen[.untraced]!.stdoutText.contains("cannot allocate memory in static TLS block"),
                "this glibc loads the library untraced: \(seen[.untraced]!.stdoutText)")
    }

    // MARK: what the parent hands down

    @Test("signal dispositions and mask: SIGINT and SIGPIPE ignored, SIGUSR1 and SIGUSR2 blocked")
    func signalState() throws {
        let seen = try expectParity("signals", Case(argv: program("signal_state"), setup: ["ign 2", "ign 13", "blk 10", "blk 12"]))
        #expect(seen[.untraced]!.stdoutText.hasPrefix("ignored: 2 13\nhandled:\nblocked: 10 12\npending:\n"))
    }

    @Test("umask and a working directory with a non-UTF-8 name")
    func umaskAndCwd() throws {
        let p = try ParityPrograms.shared.get()
        let seen = try expectParity("umask and cwd", Case(argv: program("umask_cwd"), cwd: p.nonUTF8Dir, setup: ["umask 027"]))
        #expect(seen[.untraced]!.stdoutText == "umask 027\ncwd \(Self.hex(p.nonUTF8Dir))\nsame as \".\": 1\n")
    }

    @Test("resource limits: NOFILE 777, CORE 4096, STACK 16 MiB")
    func resourceLimits() throws {
        let seen = try expectParity("rlimits", Case(argv: program("rlimits"),
                                                    setup: ["rlimit 7 777 4096", "rlimit 4 4096 inf", "rlimit 3 16777216 inf"]))
        #expect(seen[.untraced]!.stdoutText.contains("NOFILE 777/4096\n"))
    }

    @Test("inherited descriptors: fd 5 kept, fd 7 close-on-exec gone, none of loadprobe's")
    func descriptors() throws {
        let p = try ParityPrograms.shared.get()
        let seen = try expectParity("descriptors", Case(argv: program("list_fds"), setup: ["fd5 \(p.path("fd5-target"))", "cloexec7 \(p.path("fd7-target"))"]))
        #expect(seen[.untraced]!.stdoutText == "fd 0: char device\nfd 1: file\nfd 2: file\nfd 5: file -> \(p.path("fd5-target"))\n")
    }

    // MARK: programs that are not dynamically linked ELF files

    @Test("a #! script")
    func hashbangScript() throws {
        let seen = try expectParity("#! script", Case(argv: program("hashbang", "first arg", "second")))
        #expect(seen[.untraced]!.status == "exited 4")
    }

    @Test("an executable text file without #! (run by /bin/sh)")
    func textWithoutHashbang() throws {
        let seen = try expectParity("text without #!", Case(argv: program("no_hashbang", "one")))
        #expect(seen[.untraced]!.status == "exited 6")
        #expect(seen[.untraced]!.stdoutText == "plain text file, 1 arguments, first [one]\n")
    }

    @Test("a statically linked program: argv, environment, exit status")
    func staticProgram() throws {
        let env = Self.environment + [Self.bytes("ODD=") + [0xe9], Self.bytes("NO_EQUALS")]
        let seen = try expectParity("static", Case(argv: program("static_probe", bytes: [Self.bytes("caf") + [0xe9], []]), env: env))
        #expect(seen[.untraced]!.status == "exited 9")
    }

    // MARK: bytes

    static func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    static func hex(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }

    static func unhex<S: StringProtocol>(_ s: S) -> [UInt8] {
        let chars = Array(s.utf8)
        return stride(from: 0, to: chars.count - 1, by: 2).compactMap { UInt8(String(decoding: chars[$0...$0 + 1], as: UTF8.self), radix: 16) }
    }

    static func replacing(_ b: [UInt8], _ pattern: [UInt8], with r: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [], i = 0
        while i < b.count {
            if i + pattern.count <= b.count, Array(b[i..<i + pattern.count]) == pattern { out += r; i += pattern.count } else { out.append(b[i]); i += 1 }
        }
        return out
    }

    /// The program's output with the "env HEX" lines of loadprobe's own entries left out.
    static func withoutAdded(_ out: [UInt8]) -> [UInt8] {
        let lines = out.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        let kept = lines.filter { line in
            guard line.starts(with: bytes("env ")) else { return true }
            let entry = unhex(String(decoding: line.dropFirst(4), as: UTF8.self))
            return !added.contains(String(decoding: entry.prefix { $0 != UInt8(ascii: "=") }, as: UTF8.self))
        }
        return Array(kept.joined(separator: [UInt8(ascii: "\n")]))
    }

    /// The values of the environment entries named NAME in a print_env output.
    static func environmentValues(_ out: [UInt8], _ name: String) -> [[UInt8]] {
        out.split(separator: UInt8(ascii: "\n")).compactMap { line in
            guard line.starts(with: bytes("env ")) else { return nil }
            let entry = unhex(String(decoding: line.dropFirst(4), as: UTF8.self))
            return entry.starts(with: bytes(name + "=")) ? Array(entry.dropFirst(name.utf8.count + 1)) : nil
        }
    }

    static func escaped<C: Collection>(_ b: C) -> String where C.Element == UInt8 {
        b.map { $0 >= 0x20 && $0 < 0x7f && $0 != UInt8(ascii: "\\") ? String(UnicodeScalar($0)) : String(format: "\\x%02x", $0) }.joined()
    }

    /// The first line where traced and untraced output part, both sides shown.
    static func difference(_ traced: [UInt8], _ plain: [UInt8]) -> String {
        let a = traced.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        let b = plain.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        var i = 0
        while i < min(a.count, b.count) && a[i] == b[i] { i += 1 }
        func line(_ l: [ArraySlice<UInt8>]) -> String { i < l.count ? "«" + escaped(l[i].prefix(400)) + "»" : "(no line)" }
        return "\(traced.count) bytes traced, \(plain.count) untraced; line \(i + 1): traced \(line(a)), untraced \(line(b))"
    }
}

/// The launcher and the case programs (Tests/LiveTests/parity/), compiled once.
struct ParityPrograms: Sendable {
    let dir: String
    func path(_ name: String) -> String { dir + "/" + name }
    var launcher: String { path("launcher") }
    var nonUTF8File: [UInt8] { ParityTests.bytes(dir + "/caf") + [0xe9] + ParityTests.bytes(".txt") }
    var nonUTF8Dir: [UInt8] { ParityTests.bytes(dir + "/dir-caf") + [0xe9] }

    static let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("parity").path
    static let shared = buildOnce { try ParityPrograms.build() }

    static func build() throws -> ParityPrograms {
        guard geteuid() == 0 else {
            throw TestFailure("the parity suite runs as root: its set-user-ID cases need a program owned by nobody, run by root")
        }
        let p = ParityPrograms(dir: try scratch("parity"))
        chmod(p.dir, 0o755)
        let files = try FileManager.default.contentsOfDirectory(atPath: sources).sorted()
        for file in files where file.hasSuffix(".c") {
            let name = String(file.dropLast(2)), source = sources + "/" + file
            if name.hasPrefix("lib") {
                try gcc(["-shared", "-fPIC", "-O1", "-Wall", "-o", p.path(name + ".so"), source])
            } else {
                try gcc((name == "static_probe" ? ["-static"] : []) + ["-O1", "-Wall", "-pthread", "-o", p.path(name), source])
            }
        }
        // Set-user-ID nobody: chown clears the bit, so chmod after it.
        try FileManager.default.copyItem(atPath: p.path("print_euid"), toPath: p.path("print_euid_nobody"))
        guard chown(p.path("print_euid_nobody"), 65534, 65534) == 0, chmod(p.path("print_euid_nobody"), 0o4755) == 0 else {
            throw TestFailure("cannot make print_euid_nobody set-user-ID nobody: errno \(errno)")
        }
        for (source, name) in [("hashbang.sh", "hashbang"), ("no_hashbang.txt", "no_hashbang")] {
            try FileManager.default.copyItem(atPath: sources + "/" + source, toPath: p.path(name))
            chmod(p.path(name), 0o755)
        }
        let fd = open(p.nonUTF8File.map { CChar(bitPattern: $0) } + [0], O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0, mkdir(p.nonUTF8Dir.map { CChar(bitPattern: $0) } + [0], 0o755) == 0 else {
            throw TestFailure("cannot make the files with non-UTF-8 names in \(p.dir): errno \(errno)")
        }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        try handle.write(contentsOf: Data("contents of a non-UTF-8 name\n".utf8))
        try handle.close()
        try write("descriptor 5\n", to: p.path("fd5-target"))
        try write("descriptor 7\n", to: p.path("fd7-target"))
        return p
    }
}
