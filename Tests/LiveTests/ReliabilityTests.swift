import Foundation
import TestSupport
import Testing
import TraceFormat

/// What loadprobe writes and leaves behind, and what the program may do to
/// itself (sandboxes, privileges, tracing, daemons), checked against the same
/// program untraced. Each case failed before its fix.
@Suite("reliability: files, sandboxes, privileges, daemons")
struct ReliabilityTests {
    static let modes: [[String]] = [[], ["--no-ptrace"]]

    func compile(_ name: String, _ source: String, in dir: String, flags: [String] = []) throws -> String {
        try write(source, to: dir + "/\(name).c")
        try gcc(["-O1", "-o", dir + "/" + name, dir + "/\(name).c"] + flags)
        return dir + "/" + name
    }

    // MARK: files loadprobe writes

    @Test("record -o: a FIFO or a device is refused at once; a directory link is followed only when root or the user owns it")
    func outputFiles() throws {
        let dir = try scratch("rel-out")
        #expect(mkfifo(dir + "/fifo", 0o644) == 0)
        let started = Date()
        var r = try run([loadprobe, "-q", "-o", dir + "/fifo", "--", "/bin/true"])
        #expect(r.status == 1 && r.stderrText.contains("it is a FIFO, not a regular file"), "\(r.stderrText)")
        #expect(Date().timeIntervalSince(started) < 10, "the open of a FIFO must not block")
        r = try run([loadprobe, "-q", "-o", "/dev/null", "--", "/bin/true"])
        #expect(r.status == 1 && r.stderrText.contains("character device"), "\(r.stderrText)")

        try FileManager.default.createDirectory(atPath: dir + "/real", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir + "/mine", withDestinationPath: dir + "/real")
        r = try run([loadprobe, "-q", "-o", dir + "/mine/t.lpt", "--", "/bin/true"])
        #expect(r.status == 0, "\(r.stderrText)")
        #expect(FileManager.default.fileExists(atPath: dir + "/real/t.lpt"))

        // A link another user planted in a shared (sticky) directory.
        let shared = dir + "/shared"
        try FileManager.default.createDirectory(atPath: shared, withIntermediateDirectories: true)
        chmod(shared, 0o1777)
        try FileManager.default.createSymbolicLink(atPath: shared + "/planted", withDestinationPath: dir + "/real")
        #expect(lchown(shared + "/planted", 65534, 65534) == 0)
        r = try run([loadprobe, "-q", "-o", shared + "/planted/x.lpt", "--", "/bin/true"])
        #expect(r.status == 1 && r.stderrText.contains("symbolic link owned by user 65534, not followed"), "\(r.stderrText)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/real/x.lpt"))
    }

    @Test("a full disk stops the recording, not the program: its status and output, one line naming the trace, a readable trace")
    func fullDisk() throws {
        let dir = try scratch("rel-full")
        let mnt = dir + "/small"
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        let m = try run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", mnt])
        guard m.status == 0 else { throw TestFailure("cannot mount a small tmpfs for the full-disk case (needs root): \(m.stderrText)") }
        defer { _ = try? run(["umount", mnt]) }
        // Fill it but for a few pages: the header fits, the first chunk does not.
        _ = try run(["dd", "if=/dev/zero", "of=" + mnt + "/fill", "bs=4096", "count=44"])
        let prog = try compile("many", """
            #include <stdio.h>
            #include <sys/stat.h>
            int main(void) { struct stat st; char p[64];
              for (int i = 0; i < 30000; i++) { snprintf(p, sizeof p, "/nonexistent-lp/%d", i); stat(p, &st); }
              puts("done"); return 3; }
            """, in: dir)
        let r = try run([loadprobe, "-q", "-o", mnt + "/t.lpt", "--", prog])
        #expect(r.status == 3, "the program's own status: \(r.status) \(r.stderrText)")
        #expect(r.stdoutText == "done\n")
        #expect(r.stderrText.contains("writing the trace \(mnt)/t.lpt failed after"), "\(r.stderrText)")
        #expect(r.stderrText.contains("No space left on device"))
        #expect(r.stderrText.split(separator: "\n").count == 1, "\(r.stderrText)")
        // What reached the file is whole chunks: read with --partial, no damage.
        let p = try run([loadprobe, "report", "--partial", mnt + "/t.lpt"])
        #expect(p.status == 0, "\(p.stderrText)")
        #expect(p.stdoutText.contains("incomplete"), "\(p.stdoutText)")
    }

    @Test("kill -9 of loadprobe leaves no directory of its own behind")
    func killNineCleansUp() throws {
        let before = Set((try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? []).filter { $0.hasPrefix("loadprobe-") }
        let dir = try scratch("rel-kill")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: loadprobe)
        p.arguments = ["-q", "-o", dir + "/t.lpt", "--", "/bin/sleep", "5"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        var ours: Set<String> = []
        for _ in 0..<100 where ours.isEmpty {
            usleep(20_000)
            ours = Set((try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? []).filter { $0.hasPrefix("loadprobe-") }.subtracting(before)
        }
        #expect(!ours.isEmpty, "the audit directory is in /dev/shm while the program runs")
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        var left = ours
        for _ in 0..<100 where !left.isEmpty {
            usleep(20_000)
            left = left.filter { FileManager.default.fileExists(atPath: "/dev/shm/" + $0) }
        }
        #expect(left.isEmpty, "left behind: \(left)")
    }

    @Test("a search directory of / (LD_LIBRARY_PATH=/) is reported in every format, not a trap (found by loadprobe-fuzz)")
    func rootSearchDirectory() throws {
        let dir = try scratch("rel-root")
        var env = ProcessInfo.processInfo.environment
        env["LD_LIBRARY_PATH"] = "/"
        let r = try run([loadprobe, "-q", "-o", dir + "/t.lpt", "--", "/bin/true"], env: env)
        #expect(r.status == 0, "\(r.stderrText)")
        for format in ["text", "json", "html", "perfetto"] {
            let rep = try run([loadprobe, "report", "--format", format, dir + "/t.lpt"])
            #expect(rep.status == 0 && rep.signal == nil, "\(format): \(rep.status) \(rep.stderrText.prefix(300))")
        }
        #expect(try run([loadprobe, "report", "--calls", "--scenario", "view", dir + "/t.lpt"]).status == 0)
    }

    // MARK: processes

    @Test("loadprobe returns when the first process ends; a double-forked daemon runs on, its file calls working")
    func daemon() throws {
        let dir = try scratch("rel-daemon")
        let prog = try compile("daemon", """
            #include <fcntl.h>
            #include <stdio.h>
            #include <sys/syscall.h>
            #include <sys/wait.h>
            #include <unistd.h>
            int main(int argc, char **argv) {
              if (fork() == 0) {
                setsid();
                if (fork() == 0) {
                  /* every descriptor: the test's pipes must not wait for it */
                  syscall(SYS_close_range, 0u, ~0u, 0u);
                  sleep(5);
                  int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
                  if (access("/etc/passwd", R_OK) == 0) write(fd, "daemon ok\\n", 10);
                  close(fd);
                  _exit(0);
                }
                _exit(0);
              }
              wait(NULL);
              puts("parent done");
              return 7;
            }
            """, in: dir)
        for mode in Self.modes {
            let out = dir + "/daemon-out\(mode.count)"
            let r = try run([loadprobe, "-q", "-o", dir + "/t\(mode.count).lpt"] + mode + ["--", prog, out])
            #expect(r.status == 7 && r.stdoutText == "parent done\n", "\(mode): \(r.status) \(r.stderrText)")
            // The daemon writes its file 5 s after it starts: loadprobe returned before, not after waiting for it
            // (what it did, not how long it took: a loaded machine is slow, not wrong).
            #expect(!FileManager.default.fileExists(atPath: out), "\(mode): loadprobe waited for the daemon (its file is there)")
            let trace = try TraceReader.read(file: dir + "/t\(mode.count).lpt")
            #expect(trace.events.count > 0)
            var waited = 0
            while !FileManager.default.fileExists(atPath: out) || (try? String(contentsOfFile: out, encoding: .utf8)) != "daemon ok\n" {
                usleep(100_000)
                waited += 1
                if waited > 120 { break }
            }
            #expect((try? String(contentsOfFile: out, encoding: .utf8)) == "daemon ok\n", "\(mode): the daemon's calls failed after loadprobe returned")
        }
    }

    // MARK: the program's own sandbox and tracing

    static let sandboxProgram = """
        #include <errno.h>
        #include <stddef.h>
        #include <stdio.h>
        #include <string.h>
        #include <unistd.h>
        #include <linux/filter.h>
        #include <linux/seccomp.h>
        #include <sys/prctl.h>
        #include <sys/ptrace.h>
        #include <sys/syscall.h>
        int main(int argc, char **argv) {
          printf("seccomp=%d nnp=%d\\n", prctl(PR_GET_SECCOMP, 0, 0, 0, 0), prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
          fflush(stdout);
          if (!strcmp(argv[1], "strict")) {
            int r = prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT);
            char m[64]; int n = snprintf(m, sizeof m, "strict=%d\\n", r); write(1, m, n);
            syscall(SYS_getppid);           /* strict mode: killed with SIGKILL here */
            write(1, "survived\\n", 9);
            syscall(SYS_exit, 0);
          }
          if (!strcmp(argv[1], "trace")) {  /* its own RET_TRACE filter: ENOSYS with no tracer */
            prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            struct sock_filter f[] = {
              BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
              BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
              BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE | 7),
              BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW) };
            struct sock_fprog p = { 4, f };
            int r = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &p);
            errno = 0;
            long g = syscall(SYS_getppid);
            printf("install=%d getppid=%ld errno=%d seccomp=%d nnp=%d\\n", r, g > 0 ? 1 : g, errno,
                   prctl(PR_GET_SECCOMP, 0, 0, 0, 0), prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
          }
          if (!strcmp(argv[1], "nonnp")) {  /* a filter without no_new_privs: EACCES unless CAP_SYS_ADMIN */
            struct sock_filter f[] = { BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW) };
            struct sock_fprog p = { 1, f };
            int r = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &p);
            printf("install=%d errno=%d\\n", r, r ? errno : 0);
          }
          if (!strcmp(argv[1], "ptrace")) {
            errno = 0;
            long r = ptrace(PTRACE_TRACEME, 0, 0, 0);
            printf("traceme=%ld errno=%d\\n", r, errno);
          }
          return 0;
        }
        """

    /// Runs `argv` untraced and under loadprobe (both modes), as root and as
    /// nobody; returns the traced runs after checking status, signal and stdout.
    func sameAsUntraced(_ argv: [String], dir: String, asNobody: Bool) throws -> [Run] {
        let user = asNobody ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] : []
        let plain = try run(user + argv)
        var traced: [Run] = []
        for mode in Self.modes {
            let r = try run(user + [loadprobe, "-q", "-o", dir + "/t-\(UUID().uuidString).lpt"] + mode + ["--"] + argv)
            #expect(r.status == plain.status, "\(argv) \(mode) nobody=\(asNobody): \(r.status) vs \(plain.status); \(r.stderrText)")
            #expect(r.signal == plain.signal, "\(argv) \(mode) nobody=\(asNobody)")
            #expect(r.stdoutText == plain.stdoutText, "\(argv) \(mode) nobody=\(asNobody): \(r.stdoutText) vs \(plain.stdoutText)")
            traced.append(r)
        }
        return traced
    }

    @Test("the program's own seccomp: strict mode kills, its RET_TRACE gets ENOSYS, no filter without no_new_privs, as untraced")
    func ownSeccomp() throws {
        let dir = try scratch("rel-seccomp")
        chmod(dir, 0o755)
        let prog = try compile("sandbox", Self.sandboxProgram, in: dir)
        for nobody in [false, true] {
            let dirForUser = nobody ? "/tmp" : dir
            for what in ["strict", "trace", "nonnp"] {
                _ = try sameAsUntraced([prog, what], dir: dirForUser, asNobody: nobody)
            }
        }
        // The cases themselves: strict mode kills with SIGKILL, RET_TRACE gives ENOSYS.
        let strict = try run([prog, "strict"])
        #expect(strict.signal == SIGKILL && !strict.stdoutText.contains("survived"))
        #expect(try run([prog, "trace"]).stdoutText.contains("getppid=-1 errno=38"))
    }

    @Test("a program's own ptrace gets EPERM under the tracer, with a note pointing at --no-ptrace; with --no-ptrace it works")
    func ownPtrace() throws {
        let dir = try scratch("rel-ptrace")
        let prog = try compile("sandbox", Self.sandboxProgram, in: dir)
        let r = try run([loadprobe, "-q", "-o", dir + "/t.lpt", "--", prog, "ptrace"])
        #expect(r.stdoutText.contains("traceme=-1 errno=1"))
        #expect(r.stderrText.contains("PTRACE_TRACEME") && r.stderrText.contains("--no-ptrace"), "\(r.stderrText)")
        let trace = try TraceReader.read(file: dir + "/t.lpt")
        #expect(trace.events.contains { if case .note(let n) = $0 { return trace.string(n.text).contains("PTRACE_TRACEME") }; return false })
        let a = try run([loadprobe, "-q", "--no-ptrace", "-o", dir + "/t2.lpt", "--", prog, "ptrace"])
        #expect(a.stdoutText.contains("traceme=0 errno=0"), "\(a.stdoutText)")
    }

    @Test("set-user-ID programs run by the program: as root they keep their privileges; without CAP_SYS_ADMIN a note says they lost them")
    func nestedSetuid() throws {
        let dir = "/tmp/lp-test-setuid-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        chmod(dir, 0o755)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let source = "#include <stdio.h>\n#include <unistd.h>\nint main(void) { printf(\"euid=%d\\n\", (int)geteuid()); return 0; }\n"
        let toNobody = try compile("to-nobody", source, in: dir)
        #expect(chown(toNobody, 65534, 65534) == 0 && chmod(toNobody, 0o4755) == 0)
        let toRoot = try compile("to-root", source, in: dir)
        #expect(chmod(toRoot, 0o4755) == 0)
        // Root runs a program that drops to nobody: untraced and traced alike.
        _ = try sameAsUntraced(["/bin/sh", "-c", toNobody], dir: dir, asNobody: false)
        #expect(try run([toNobody]).stdoutText == "euid=65534\n")
        // nobody runs a set-user-ID root program: under the tracer it cannot
        // get root (no_new_privs); said on stderr and in the trace.
        let user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        #expect(try run(user + [toRoot]).stdoutText == "euid=0\n")
        let r = try run(user + [loadprobe, "-q", "-o", "/tmp/lp-setuid-\(getpid()).lpt", "--", "/bin/sh", "-c", toRoot])
        defer { unlink("/tmp/lp-setuid-\(getpid()).lpt") }
        #expect(r.stdoutText == "euid=65534\n")
        #expect(r.stderrText.contains("\(toRoot) is set-user-ID or set-group-ID: it ran without those privileges"), "\(r.stderrText)")
    }

    @Test("a library with initial-exec TLS that does not fit untraced does not fit traced, and one that fits, fits")
    func staticTLS() throws {
        let dir = try scratch("rel-tls")
        try write("__attribute__((tls_model(\"initial-exec\"))) __thread char big[SIZE];\nint touch(void) { big[0] = 1; return big[0]; }\n",
                  to: dir + "/tls.c")
        let main = try compile("main", """
            #include <dlfcn.h>
            #include <stdio.h>
            int main(int argc, char **argv) {
              void *h = dlopen(argv[1], RTLD_NOW);
              puts(h ? "loaded" : "failed");
              return h ? 0 : 1;
            }
            """, in: dir)
        // The largest size that loads untraced, found by bisection, then one byte more.
        func loads(_ size: Int) throws -> Bool {
            let lib = dir + "/lib\(size).so"
            if !FileManager.default.fileExists(atPath: lib) {
                try gcc(["-shared", "-fPIC", "-DSIZE=\(size)", "-o", lib, dir + "/tls.c"])
            }
            return try run([main, lib]).status == 0
        }
        var lo = 64, hi = 8192
        #expect(try loads(lo) && !(try loads(hi)))
        while hi - lo > 1 { let m = (lo + hi) / 2; if try loads(m) { lo = m } else { hi = m } }
        _ = try loads(1800)
        for size in [lo, hi, 1800] {
            _ = try sameAsUntraced([main, dir + "/lib\(size).so"], dir: dir, asNobody: false)
        }
    }
}
