import Foundation
import TestSupport
import Testing
import TraceFormat

/// Each case: a program compiled during the test, run untraced, under
/// `strace -f`, and under loadprobe. loadprobe must count the same calls per
/// system call name and result as strace, and the program must behave the same.
struct ParityCase: CustomTestStringConvertible, Sendable {
    let name: String
    let argv: @Sendable (Fixtures) -> [String]
    var env: @Sendable (Fixtures) -> [String: String] = { _ in [:] }
    var testDescription: String { name }
}

let parityCases: [ParityCase] = [
    ParityCase(name: "3-directory RPATH", argv: { [$0.path("rpath3"), "x"] }),
    ParityCase(name: "RUNPATH", argv: { [$0.path("runpath3")] }),
    ParityCase(name: "shrinkwrapped by patchelf", argv: { [$0.path("shrinkwrapped")] }),
    ParityCase(name: "LD_LIBRARY_PATH", argv: { [$0.path("plain")] },
               env: { ["LD_LIBRARY_PATH": "\($0.d1):\($0.d2):\($0.d3)"] }),
    ParityCase(name: "dlopen by soname", argv: { [$0.path("dlopen")] }),
    ParityCase(name: "fork and exec", argv: { [$0.path("forkexec"), $0.path("rpath3")] }),
    ParityCase(name: "exec from a thread", argv: { [$0.path("threadexec"), $0.path("rpath3")] }),
    ParityCase(name: "killed by SIGKILL", argv: { [$0.path("killed")] }),
    // Programs start on the tracer's CPU: they must still see their own mask, in constructors and in main.
    ParityCase(name: "affinity mask seen by the program", argv: { [$0.path("affinity")] }),
    ParityCase(name: "shell script", argv: { _ in ["/bin/sh", "-c", "ls /nonexistent-dir 2>/dev/null; cat /etc/hostname >/dev/null; exit 4"] }),
]

func baseEnvironment() -> [String: String] {
    var env = ProcessInfo.processInfo.environment
    for k in env.keys where k.hasPrefix("LD_") || k.hasPrefix("LOADPROBE_") { env.removeValue(forKey: k) }
    return env
}

@Suite("strace parity", .serialized)
struct StraceParityTests {
    @Test("calls per name and result equal strace -f; behaviour unchanged", arguments: parityCases)
    func parity(_ c: ParityCase) throws {
        let f = try Fixtures.get()
        let argv = c.argv(f)
        var env = baseEnvironment()
        for (k, v) in c.env(f) { env[k] = v }

        let untraced = try run(argv, env: env)
        let (truth, straced) = try straceCounts(argv, env: env)
        #expect(straced.status == untraced.status)

        let trace = try scratch("parity") + "/t.lpt"
        let traced = try run([loadprobe, "-q", "-o", trace, "--"] + argv, env: env)
        #expect(traced.status == untraced.status, "exit status")
        #expect(traced.stdout == untraced.stdout, "stdout")
        #expect(traced.stderr == untraced.stderr, "stderr: \(traced.stderrText)")

        let counts = try reportCounts(trace)
        #expect(counts == truth, "loadprobe \(counts) vs strace \(truth)")
        #expect(!truth.counts.isEmpty)
    }

    @Test("missing paths are answered by the tracer at the first stop; --no-answer-misses lets every call run")
    func answeredMisses() throws {
        let f = try Fixtures.get()
        let dir = try scratch("answer")
        let env = baseEnvironment()
        let untraced = try run([f.path("rpath3")], env: env)
        let (truth, _) = try straceCounts([f.path("rpath3")], env: env)
        for (flag, answered) in [([String](), true), (["--no-answer-misses"], false)] {
            let trace = dir + "/t\(answered).lpt"
            let r = try run([loadprobe, "-q", "-o", trace] + flag + ["--", f.path("rpath3")], env: env)
            #expect(r == untraced)
            #expect(try reportCounts(trace) == truth)
            let t = try TraceReader.read(file: trace)
            let n = t.events.filter { if case .syscall(let s) = $0 { s.answered } else { false } }.count
            #expect(answered ? n > 10 : n == 0, "answered calls: \(n)")
            #expect(t.meta("answeredCalls") == String(n))
        }
    }

    @Test("a program in its own mount namespace sees its own files: no lookup of it is answered from loadprobe's view",
          .enabled(if: Needs.root, "mount namespaces need root"))
    func ownMountNamespace() throws {
        let f = try Fixtures.get()
        let mountPoint = try scratch("ownview")
        let untraced = try run([f.path("ownview"), mountPoint], env: baseEnvironment())
        #expect(untraced.stdoutText == "only-here: stat 0, access 0\nmissing: access -1\n", "\(untraced.stderrText)")
        let trace = try scratch("ownview") + "/t.lpt"
        let traced = try run([loadprobe, "-q", "-o", trace, "--", f.path("ownview"), mountPoint], env: baseEnvironment())
        #expect(traced == untraced)
    }

    @Test("a patchelf'd program is recognised as dynamic: audit stays on")
    func patchelfProgram() throws {
        let f = try Fixtures.get()
        let trace = try scratch("patchelf") + "/t.lpt"
        let r = try run([loadprobe, "-o", trace, "--", f.path("shrinkwrapped")], env: baseEnvironment())
        #expect(r.status == 3)
        #expect(!r.stderrText.contains("audit was not possible"), "\(r.stderrText)")
        #expect(try TraceReader.read(file: trace).meta("mode") == "ptrace+audit")
    }

    @Test("a static program is recorded through ptrace, with a note that audit was not possible")
    func staticProgram() throws {
        let f = try Fixtures.get()
        let exe = f.path("static")
        if !FileManager.default.fileExists(atPath: exe) {
            try gcc(["-static", f.dir + "/src/killed.c", "-o", exe + ".tmp"])
            try FileManager.default.moveItem(atPath: exe + ".tmp", toPath: exe)
        }
        try checkPtraceOnly(exe, expectNote: "statically linked")
    }

    @Test("a musl program is recorded through ptrace, with a note that audit was not possible",
          .enabled(if: Needs.file("/usr/bin/musl-gcc"), "musl-gcc is not installed (apt-get install musl-tools)"))
    func muslProgram() throws {
        let f = try Fixtures.get()
        let exe = f.path("musl")
        if !FileManager.default.fileExists(atPath: exe) {
            let r = try run(["musl-gcc", f.dir + "/src/main_ab.c", "-o", exe, "-L" + f.d2, "-L" + f.d3, "-la", "-lb",
                             "-Wl,-rpath,\(f.d1):\(f.d2):\(f.d3)"])
            if r.status != 0 { throw TestFailure("musl-gcc: \(r.stderrText)") }
        }
        try checkPtraceOnly(exe, expectNote: "musl")
    }

    @Test("a set-user-ID program is traced without audit, with the seccomp filter (as root no no_new_privs is needed), and says so",
          .enabled(if: Needs.root, "not root: loadprobe refuses set-user-ID programs (checked by the message test)"))
    func setuidProgram() throws {
        let f = try Fixtures.get()
        let exe = f.path("suid")
        if !FileManager.default.fileExists(atPath: exe) {
            try FileManager.default.copyItem(atPath: f.path("rpath3"), toPath: exe)
            chmod(exe, 0o4755)
        }
        try checkPtraceOnly(exe, expectNote: "set-user-ID")
        let trace = try scratch("suid") + "/t.lpt"
        let r = try run([loadprobe, "-o", trace, "--", exe], env: baseEnvironment())
        #expect(!r.stderrText.contains("without a seccomp filter"), "\(r.stderrText)")
    }

    func checkPtraceOnly(_ exe: String, expectNote: String) throws {
        let env = baseEnvironment()
        let untraced = try run([exe], env: env)
        let (truth, _) = try straceCounts([exe], env: env)
        let trace = try scratch("ptraceonly") + "/t.lpt"
        let traced = try run([loadprobe, "-o", trace, "--", exe], env: env)
        #expect(traced.status == untraced.status)
        #expect(traced.stdout == untraced.stdout)
        #expect(traced.stderrText.contains("audit was not possible"), "stderr: \(traced.stderrText)")
        #expect(traced.stderrText.contains(expectNote))
        #expect(try reportCounts(trace) == truth)
        let t = try TraceReader.read(file: trace)
        #expect(t.meta("mode") == "ptrace")
        #expect(t.events.contains { if case .note = $0 { true } else { false } })
    }
}
