import Foundation
import TestSupport
import Testing

/// The traced program is the untraced program: each case runs a small C
/// program untraced, under loadprobe (ptrace + audit) and under loadprobe
/// --no-ptrace, from a launcher that passes argv, environment and stdin as raw
/// bytes and reports what a parent sees (exit status, or killing signal and
/// core flag). The program prints what it sees of itself; stdout and stderr
/// must be the same bytes in all three runs. docs/observable.md lists what a
/// program can still tell apart, and the cases that check it.
@Suite("parity: traced as untraced")
struct ParityTests {
    /// The environment entries loadprobe adds (docs/observable.md).
    static let added = ["LD_AUDIT", "LOADPROBE_AUDIT_DIR", "LOADPROBE_PTRACE", "GLIBC_TUNABLES"]

    static let launcherSource = #"""
        #define _GNU_SOURCE
        #include <signal.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        #include <fcntl.h>
        #include <unistd.h>
        #include <sys/resource.h>
        #include <sys/syscall.h>
        #include <sys/stat.h>
        #include <sys/wait.h>
        /* launcher SPEC: lines "a HEX" (argv), "e HEX" (environment), "i HEX"
         * (stdin), "ign N", "blk N", "fd5", "umask OCTAL", "nofile N". */
        static char *unhex(const char *h, size_t *len) {
            size_t n = strlen(h) / 2; char *out = malloc(n + 1);
            for (size_t i = 0; i < n; i++) { unsigned v; sscanf(h + 2 * i, "%2x", &v); out[i] = (char)v; }
            out[n] = 0; if (len) *len = n; return out;
        }
        int main(int argc, char **argv) {
            FILE *f = fopen(argv[1], "r"); if (!f) return 100;
            char *av[4096], *ev[4096]; int na = 0, ne = 0; char line[1 << 20];
            char *in = 0; size_t inlen = 0; int ign[64], ni = 0, blk[64], nb = 0, fd5 = 0, um = -1; long nofile = -1;
            while (fgets(line, sizeof line, f)) {
                line[strcspn(line, "\n")] = 0;
                if (!strncmp(line, "a ", 2)) av[na++] = unhex(line + 2, 0);
                else if (!strncmp(line, "e ", 2)) ev[ne++] = unhex(line + 2, 0);
                else if (!strncmp(line, "i ", 2)) in = unhex(line + 2, &inlen);
                else if (!strncmp(line, "ign ", 4)) ign[ni++] = atoi(line + 4);
                else if (!strncmp(line, "blk ", 4)) blk[nb++] = atoi(line + 4);
                else if (!strcmp(line, "fd5")) fd5 = 1;
                else if (!strncmp(line, "umask ", 6)) um = (int)strtol(line + 6, 0, 8);
                else if (!strncmp(line, "nofile ", 7)) nofile = atol(line + 7);
            }
            av[na] = 0; ev[ne] = 0;
            fflush(stdout);
            fclose(f);
            pid_t p = fork();
            if (p == 0) {
                /* A clean start: default dispositions, nothing blocked, no descriptor but 0-2. */
                for (int sg = 1; sg < 65; sg++) if (sg != SIGKILL && sg != SIGSTOP) signal(sg, SIG_DFL);
                sigset_t none; sigemptyset(&none); sigprocmask(SIG_SETMASK, &none, 0);
                syscall(SYS_close_range, 3u, ~0u, 0u);
                if (in) {
                    char t[] = "/tmp/lp-parity-stdin-XXXXXX"; int fd = mkstemp(t); unlink(t);
                    write(fd, in, inlen); lseek(fd, 0, SEEK_SET); dup2(fd, 0); close(fd);
                }
                for (int i = 0; i < ni; i++) signal(ign[i], SIG_IGN);
                sigset_t s; sigemptyset(&s); for (int i = 0; i < nb; i++) sigaddset(&s, blk[i]); sigprocmask(SIG_BLOCK, &s, 0);
                if (fd5) { int fd = open("/dev/null", O_RDONLY); dup2(fd, 5); close(fd); }
                if (um >= 0) umask((mode_t)um);
                if (nofile >= 0) { struct rlimit r; getrlimit(RLIMIT_NOFILE, &r); r.rlim_cur = (rlim_t)nofile; setrlimit(RLIMIT_NOFILE, &r); }
                /* As a shell runs it: a text file without #! goes to /bin/sh (execvpe). */
                execvpe(av[0], av, ev);
                _exit(127);
            }
            int st; waitpid(p, &st, 0);
            if (WIFEXITED(st)) printf("\n#status exit %d\n", WEXITSTATUS(st));
            else printf("\n#status signal %d core %d\n", WTERMSIG(st), WCOREDUMP(st) ? 1 : 0);
            return 0;
        }
        """#

    static let observeSource = #"""
        #define _GNU_SOURCE
        #include <dlfcn.h>
        #include <errno.h>
        #include <fcntl.h>
        #include <pthread.h>
        #include <sched.h>
        #include <signal.h>
        #include <stddef.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        #include <dirent.h>
        #include <unistd.h>
        #include <linux/filter.h>
        #include <linux/seccomp.h>
        #include <sys/prctl.h>
        #include <sys/ptrace.h>
        #include <sys/resource.h>
        #include <sys/stat.h>
        #include <sys/syscall.h>
        #include <sys/wait.h>
        extern char **environ;
        static void hex(const char *tag, const char *s) { printf("%s:", tag); for (; *s; s++) printf("%02x", (unsigned char)*s); printf("\n"); }
        static void status_lines(const char *keys) {
            FILE *f = fopen("/proc/self/status", "r"); char l[512];
            while (fgets(l, sizeof l, f)) { char k[64]; sscanf(l, "%63[^:]", k); if (strstr(keys, k)) fputs(l, stdout); }
            fclose(f);
        }
        static void *opener(void *a) { long n = 0; for (int i = 0; i < 20; i++) { int fd = open("/etc/passwd", O_RDONLY); char c; n += read(fd, &c, 1); close(fd); } return (void *)n; }
        static void *execer(void *a) { execl("/bin/echo", "echo", "from-thread", (char *)0); return 0; }
        int main(int argc, char **argv) {
            const char *m = argc > 1 ? argv[1] : "";
            if (!strcmp(m, "out")) { fwrite("a\0b\xff\n", 1, 5, stdout); fwrite("err\0\xfe\n", 1, 6, stderr); return 0; }
            if (!strcmp(m, "stdin")) { char b[4096]; ssize_t n; while ((n = read(0, b, sizeof b)) > 0) fwrite(b, 1, n, stdout); return 0; }
            if (!strcmp(m, "exit")) return atoi(argv[2]);
            if (!strcmp(m, "segv")) { fflush(stdout); *(volatile int *)0 = 1; }
            if (!strcmp(m, "abort")) abort();
            if (!strcmp(m, "kill9")) raise(SIGKILL);
            if (!strcmp(m, "term")) raise(SIGTERM);
            if (!strcmp(m, "args")) { for (int i = 0; i < argc; i++) hex("arg", argv[i]); return 0; }
            if (!strcmp(m, "env")) { for (char **e = environ; *e; e++) hex("env", *e); return 0; }
            if (!strcmp(m, "openarg")) { int fd = open(argv[2], O_RDONLY); printf("open=%s errno=%d\n", fd >= 0 ? "ok" : "failed", fd >= 0 ? 0 : errno); return 0; }
            if (!strcmp(m, "affinity")) {
                cpu_set_t s; sched_getaffinity(0, sizeof s, &s); printf("cpus=%d\n", CPU_COUNT(&s));
                status_lines("Cpus_allowed_list"); return 0;
            }
            if (!strcmp(m, "ids")) { printf("uid=%d euid=%d gid=%d egid=%d\n", getuid(), geteuid(), getgid(), getegid()); status_lines("CapInh CapPrm CapEff CapBnd CapAmb Groups"); return 0; }
            if (!strcmp(m, "threads")) {
                pthread_t t[8]; long sum = 0; void *r;
                for (int i = 0; i < 8; i++) pthread_create(&t[i], 0, opener, 0);
                for (int i = 0; i < 8; i++) { pthread_join(t[i], &r); sum += (long)r; }
                printf("read=%ld\n", sum); return 0;
            }
            if (!strcmp(m, "vfork")) { fflush(stdout); pid_t p = vfork(); if (p == 0) { execl("/bin/echo", "echo", "vforked", (char *)0); _exit(9); } int st; waitpid(p, &st, 0); printf("child=%d\n", WEXITSTATUS(st)); return 0; }
            if (!strcmp(m, "execthread")) { fflush(stdout); pthread_t t; pthread_create(&t, 0, execer, 0); pthread_join(t, 0); return 1; }
            if (!strcmp(m, "forktree")) {
                fflush(stdout);
                pid_t c = fork();
                if (c == 0) { pid_t g = fork(); if (g == 0) _exit(3); int st; waitpid(g, &st, 0); _exit(5 + WEXITSTATUS(st)); }
                int st; waitpid(c, &st, 0); printf("tree=%d\n", WEXITSTATUS(st)); return 0;
            }
            if (!strcmp(m, "daemon")) {
                fflush(stdout);
                if (fork() == 0) { setsid(); if (fork() == 0) { syscall(SYS_close_range, 0u, ~0u, 0u); usleep(300000); int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644); write(fd, "d\n", 2); _exit(0); } _exit(0); }
                wait(0); printf("parent\n"); return 0;
            }
            if (!strcmp(m, "strict")) {
                printf("before\n"); fflush(stdout);
                prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT); write(1, "in strict\n", 10); syscall(SYS_getppid); write(1, "survived\n", 9); syscall(SYS_exit, 0);
            }
            if (!strcmp(m, "rettrace")) {
                prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                struct sock_filter f[] = { BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
                    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE | 3),
                    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW) };
                struct sock_fprog p = { 4, f };
                int r = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &p);
                errno = 0; long g = syscall(SYS_getppid);
                printf("install=%d getppid=%ld errno=%d\n", r, g > 0 ? 1 : g, errno); return 0;
            }
            if (!strcmp(m, "seccompget")) { printf("seccomp=%d nnp=%d\n", prctl(PR_GET_SECCOMP, 0, 0, 0, 0), prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)); return 0; }
            if (!strcmp(m, "tls")) { void *h = dlopen(argv[2], RTLD_NOW); printf("%s\n", h ? "loaded" : "failed"); return h ? 0 : 1; }
            if (!strcmp(m, "ptrace")) { errno = 0; long r = ptrace(PTRACE_TRACEME, 0, 0, 0); printf("traceme=%ld errno=%d\n", r, errno); return 0; }
            if (!strcmp(m, "sigs")) {
                for (int s = 1; s < 32; s++) { struct sigaction a; sigaction(s, 0, &a); if (a.sa_handler == SIG_IGN) printf("ignored %d\n", s); }
                sigset_t set; sigprocmask(SIG_BLOCK, 0, &set); for (int s = 1; s < 32; s++) if (sigismember(&set, s)) printf("blocked %d\n", s);
                return 0;
            }
            if (!strcmp(m, "umask")) { mode_t u = umask(0); char c[4096]; printf("umask=%o cwd=%s\n", u, getcwd(c, sizeof c)); return 0; }
            if (!strcmp(m, "rlimits")) { struct rlimit a, b; getrlimit(RLIMIT_NOFILE, &a); getrlimit(RLIMIT_CORE, &b);
                printf("nofile=%lld/%lld core=%lld/%lld\n", (long long)a.rlim_cur, (long long)a.rlim_max, (long long)b.rlim_cur, (long long)b.rlim_max); return 0; }
            if (!strcmp(m, "fds")) {
                DIR *d = opendir("/proc/self/fd"); struct dirent *e; int self = dirfd(d);
                while ((e = readdir(d))) { int fd = atoi(e->d_name); if (e->d_name[0] == '.' || fd == self || fd < 3) continue;
                    char p[64], t[4096]; snprintf(p, sizeof p, "/proc/self/fd/%d", fd); ssize_t n = readlink(p, t, sizeof t - 1); t[n > 0 ? n : 0] = 0;
                    printf("fd %d -> %s\n", fd, t); }
                closedir(d); return 0;
            }
            if (!strcmp(m, "pgrp")) { printf("leader=%d session=%d tty=%d\n", getpgrp() == getpid(), getsid(0) == getpid(), isatty(0)); return 0; }
            if (!strcmp(m, "exe")) { char t[4096]; ssize_t n = readlink("/proc/self/exe", t, sizeof t - 1); t[n > 0 ? n : 0] = 0; printf("exe=%s argv0=%s\n", t, argv[0]); return 0; }
            if (!strcmp(m, "euid")) { printf("euid=%d\n", geteuid()); return 0; }
            fprintf(stderr, "unknown mode %s\n", m); return 99;
        }
        """#

    /// The compiled programs, made once.
    struct Fixtures: Sendable {
        let dir: String
        var launcher: String { dir + "/launcher" }
        var observe: String { dir + "/observe" }
        var observeStatic: String { dir + "/observe-static" }
        var setuidNobody: String { dir + "/euid-nobody" }
        var tlsTooBig: String { dir + "/libtls-big.so" }

        static let shared = buildOnce { () throws -> Fixtures in
            // Under /tmp with 0755 directories: the set-user-ID case runs as nobody.
            let dir = "/tmp/lp-parity-\(getpid())"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            chmod(dir, 0o755)
            try write(launcherSource, to: dir + "/launcher.c")
            try write(observeSource, to: dir + "/observe.c")
            try gcc(["-O1", "-o", dir + "/launcher", dir + "/launcher.c"])
            try gcc(["-O1", "-pthread", "-o", dir + "/observe", dir + "/observe.c", "-ldl"])
            try gcc(["-O1", "-static", "-pthread", "-o", dir + "/observe-static", dir + "/observe.c"])
            try gcc(["-O1", "-o", dir + "/euid-nobody", dir + "/observe.c", "-pthread", "-ldl"])
            guard chown(dir + "/euid-nobody", 65534, 65534) == 0, chmod(dir + "/euid-nobody", 0o4755) == 0 else {
                throw TestFailure("cannot make the set-user-ID fixture (the parity suite runs as root)")
            }
            try write("__attribute__((tls_model(\"initial-exec\"))) __thread char big[1800];\nint touch(void) { big[0] = 1; return big[0]; }\n",
                      to: dir + "/tls.c")
            try gcc(["-shared", "-fPIC", "-o", dir + "/libtls-big.so", dir + "/tls.c"])
            try write("#!/bin/sh\necho \"script $# $1\" $((1 + 2))\nexit 4\n", to: dir + "/script.sh")
            chmod(dir + "/script.sh", 0o755)
            try write("echo plain text file; exit 6\n", to: dir + "/plain")
            chmod(dir + "/plain", 0o755)
            return Fixtures(dir: dir)
        }
    }

    /// One way of running a case.
    struct Spec {
        var argv: [[UInt8]]
        var env: [[UInt8]] = ParityTests.baseEnvironment
        var stdin: [UInt8]? = nil
        var extra: [String] = []
    }

    static let baseEnvironment: [[UInt8]] = ["PATH=/usr/bin:/bin", "HOME=/root", "LANG=C", "TZ=UTC"].map { Array($0.utf8) }

    enum Mode: String, CaseIterable { case untraced, full, audit }

    func launch(_ spec: Spec, mode: Mode, f: Fixtures, user: [String] = []) throws -> Run {
        let trace = "/tmp/lp-parity-\(getpid())/t-\(UUID().uuidString).lpt"
        defer { unlink(trace) }
        let prefix: [[UInt8]]
        switch mode {
        case .untraced: prefix = []
        case .full: prefix = [loadprobe, "-q", "-o", trace, "--"].map { Array($0.utf8) }
        case .audit: prefix = [loadprobe, "-q", "--no-ptrace", "-o", trace, "--"].map { Array($0.utf8) }
        }
        func hex(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }
        var lines = (prefix + spec.argv).map { "a " + hex($0) } + spec.env.map { "e " + hex($0) }
        if let i = spec.stdin { lines.append("i " + hex(i)) }
        lines += spec.extra
        let file = "/tmp/lp-parity-\(getpid())/spec-\(UUID().uuidString)"
        try write(lines.joined(separator: "\n") + "\n", to: file)
        chmod(file, 0o644)
        defer { unlink(file) }
        return try run(user + [f.launcher, file])
    }

    /// stdout with the entries loadprobe adds to the environment left out (hex-printed "env:" lines).
    static func withoutAdded(_ out: Data) -> String {
        String(decoding: out, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).filter { line in
            guard line.hasPrefix("env:") else { return true }
            let bytes = stride(from: 4, to: line.count, by: 2).compactMap { i -> UInt8? in
                let s = line.index(line.startIndex, offsetBy: i)
                return UInt8(line[s..<line.index(s, offsetBy: 2)], radix: 16)
            }
            let name = String(decoding: bytes.prefix { $0 != UInt8(ascii: "=") }, as: UTF8.self)
            return !ParityTests.added.contains(name)
        }.joined(separator: "\n")
    }

    /// Runs the case three ways; stdout (env lines of loadprobe's own
    /// variables left out) and stderr must match the untraced run.
    @discardableResult
    func same(_ spec: Spec, _ what: String, stderrMay: [Mode: String] = [:], user: [String] = [],
              sourceLocation: SourceLocation = #_sourceLocation) throws -> [Mode: Run] {
        let f = try Fixtures.shared.get()
        var runs: [Mode: Run] = [:]
        for mode in Mode.allCases { runs[mode] = try launch(spec, mode: mode, f: f, user: user) }
        let plain = runs[.untraced]!
        #expect(plain.stdoutText.contains("#status"), "\(what): the launcher did not report: \(plain.stderrText)", sourceLocation: sourceLocation)
        for mode in [Mode.full, .audit] {
            let r = runs[mode]!
            #expect(Self.withoutAdded(r.stdout) == Self.withoutAdded(plain.stdout),
                    "\(what) [\(mode)]: stdout\n  traced:   \(r.stdoutText)\n  untraced: \(plain.stdoutText)", sourceLocation: sourceLocation)
            if let note = stderrMay[mode] {
                #expect(r.stderrText.contains(note), "\(what) [\(mode)]: expected note '\(note)' in \(r.stderrText)", sourceLocation: sourceLocation)
            } else {
                #expect(r.stderr == plain.stderr, "\(what) [\(mode)]: stderr\n  traced:   \(r.stderrText)\n  untraced: \(plain.stderrText)",
                        sourceLocation: sourceLocation)
            }
        }
        return runs
    }

    func observe(_ args: String...) throws -> [[UInt8]] {
        [Array(try Fixtures.shared.get().observe.utf8)] + args.map { Array($0.utf8) }
    }

    // MARK: the cases

    @Test("stdout and stderr bytes, NUL and non-UTF-8 included") func output() throws { try same(Spec(argv: observe("out")), "out") }

    @Test("stdin reaches the program") func stdin() throws {
        try same(Spec(argv: observe("stdin"), stdin: Array("line one\n\u{0}\u{ff}binary\n".utf8) + [0xfe, 0x00]), "stdin")
    }

    @Test("exit statuses", arguments: [0, 1, 42, 255])
    func exitStatus(_ n: Int) throws { try same(Spec(argv: observe("exit", String(n))), "exit \(n)") }

    @Test("killing signals as the parent sees them", arguments: ["segv", "abort", "kill9", "term"])
    func killed(_ how: String) throws {
        let runs = try same(Spec(argv: observe(how)), how)
        #expect(runs[.untraced]!.stdoutText.contains("#status signal"), "\(how): \(runs[.untraced]!.stdoutText)")
    }

    @Test("arguments as bytes: non-UTF-8, empty, 100 KB") func arguments() throws {
        var argv = try observe("args")
        argv += [Array("caf".utf8) + [0xe9] + Array(".txt".utf8), [], [0xff, 0xfe], Array(String(repeating: "x", count: 100_000).utf8), Array("--".utf8)]
        try same(Spec(argv: argv), "args")
    }

    @Test("the environment as bytes and in order: non-UTF-8, duplicates, an entry without '=', 50 entries")
    func environment() throws {
        var env = Self.baseEnvironment
        env += [Array("B=caf".utf8) + [0xe9], Array("A=1".utf8), Array("NOEQUALS".utf8), Array("A=2".utf8), []]
        env += (0..<50).map { Array("V\(49 - $0)=value \($0)".utf8) }
        try same(Spec(argv: try observe("env"), env: env), "env")
    }

    @Test("the user's own LD_AUDIT and GLIBC_TUNABLES stay first in their entries")
    func ownLoaderVariables() throws {
        let env = Self.baseEnvironment + [Array("GLIBC_TUNABLES=glibc.malloc.check=0".utf8), Array("LD_AUDIT=".utf8)]
        let runs = try same(Spec(argv: try observe("env"), env: env), "env with user entries")
        for mode in [Mode.full, .audit] {
            let text = runs[mode]!.stdoutText
            let tunables = "GLIBC_TUNABLES=glibc.malloc.check=0:".utf8.map { String(format: "%02x", $0) }.joined()
            #expect(text.contains("env:" + tunables), "\(mode): \(text)")
        }
    }

    @Test("a file named with non-UTF-8 bytes, given in argv, opens") func nonUTF8File() throws {
        let f = try Fixtures.shared.get()
        let name = Array((f.dir + "/caf").utf8) + [0xe9] + Array(".txt".utf8)
        let fd = open(name.map { CChar(bitPattern: $0) } + [0], O_WRONLY | O_CREAT, 0o644)
        #expect(fd >= 0)
        close(fd)
        let runs = try same(Spec(argv: try observe("openarg") + [name]), "open non-UTF-8")
        #expect(runs[.untraced]!.stdoutText.contains("open=ok"))
    }

    @Test("CPU affinity at main, and in /proc") func affinity() throws { try same(Spec(argv: observe("affinity")), "affinity") }
    @Test("ids and capabilities") func ids() throws { try same(Spec(argv: observe("ids")), "ids") }

    @Test("a set-user-ID program run by the program (root runs one that drops to nobody)") func nestedSetuid() throws {
        let f = try Fixtures.shared.get()
        let runs = try same(Spec(argv: ["/bin/sh", "-c", f.setuidNobody + " euid"].map { Array($0.utf8) }), "setuid")
        #expect(runs[.untraced]!.stdoutText.contains("euid=65534"))
    }

    @Test("threads") func threads() throws { try same(Spec(argv: observe("threads")), "threads") }
    @Test("vfork and exec") func vfork() throws { try same(Spec(argv: observe("vfork")), "vfork") }
    @Test("exec from a thread that is not the leader") func execFromThread() throws { try same(Spec(argv: observe("execthread")), "exec from a thread") }
    @Test("a tree of three processes and their statuses") func forkTree() throws { try same(Spec(argv: observe("forktree")), "fork tree") }

    @Test("a double-forked daemon; its file appears") func daemon() throws {
        let f = try Fixtures.shared.get()
        for mode in Mode.allCases {
            let out = f.dir + "/daemon-\(mode)"
            let r = try launch(Spec(argv: try observe("daemon", out)), mode: mode, f: f)
            #expect(r.stdoutText.contains("parent\n") && r.stdoutText.contains("#status exit 0"), "\(mode): \(r.stdoutText) \(r.stderrText)")
            var tries = 0
            while (try? String(contentsOfFile: out, encoding: .utf8)) != "d\n" && tries < 50 { usleep(100_000); tries += 1 }
            #expect((try? String(contentsOfFile: out, encoding: .utf8)) == "d\n", "\(mode): the daemon did not finish its work")
        }
    }

    @Test("seccomp strict mode: a forbidden call kills with SIGKILL") func strict() throws {
        let runs = try same(Spec(argv: observe("strict")), "strict")
        #expect(runs[.untraced]!.stdoutText.contains("#status signal 9"))
    }

    @Test("the program's own SECCOMP_RET_TRACE filter: ENOSYS with no tracer of its own") func ownRetTrace() throws {
        let runs = try same(Spec(argv: observe("rettrace")), "rettrace")
        #expect(runs[.untraced]!.stdoutText.contains("errno=38"))
    }

    @Test("PR_GET_SECCOMP and PR_GET_NO_NEW_PRIVS") func seccompState() throws { try same(Spec(argv: observe("seccompget")), "seccomp state") }

    @Test("a library with 1,800 bytes of initial-exec TLS fails to dlopen as untraced") func staticTLS() throws {
        let f = try Fixtures.shared.get()
        let runs = try same(Spec(argv: try observe("tls", f.tlsTooBig)), "static TLS")
        #expect(runs[.untraced]!.stdoutText.contains("failed"), "this glibc loads it untraced: \(runs[.untraced]!.stdoutText)")
    }

    @Test("ptrace by the program: as untraced with --no-ptrace; EPERM and a note under the tracer") func ownPtrace() throws {
        let f = try Fixtures.shared.get()
        let spec = Spec(argv: try observe("ptrace"))
        let plain = try launch(spec, mode: .untraced, f: f)
        let audit = try launch(spec, mode: .audit, f: f)
        #expect(audit.stdout == plain.stdout && audit.stderr == plain.stderr)
        let full = try launch(spec, mode: .full, f: f)
        #expect(full.stdoutText.contains("traceme=-1 errno=1") && full.stderrText.contains("--no-ptrace"), "\(full.stdoutText) \(full.stderrText)")
    }

    @Test("ignored and blocked signals are inherited") func signals() throws {
        try same(Spec(argv: observe("sigs"), extra: ["ign 2", "ign 13", "blk 10", "blk 12"]), "signals")
    }
    @Test("umask and working directory") func umask() throws { try same(Spec(argv: observe("umask"), extra: ["umask 027"]), "umask") }
    @Test("resource limits") func rlimits() throws { try same(Spec(argv: observe("rlimits"), extra: ["nofile 777"]), "rlimits") }
    @Test("inherited descriptors, and none of loadprobe's") func descriptors() throws { try same(Spec(argv: observe("fds"), extra: ["fd5"]), "fds") }
    @Test("process group and session") func processGroup() throws { try same(Spec(argv: observe("pgrp")), "pgrp") }
    @Test("/proc/self/exe and argv[0]") func exe() throws { try same(Spec(argv: observe("exe")), "exe") }

    @Test("a #! script and a text file without #!") func scripts() throws {
        let f = try Fixtures.shared.get()
        try same(Spec(argv: [f.dir + "/script.sh", "arg"].map { Array($0.utf8) }), "script")
        try same(Spec(argv: [f.dir + "/plain"].map { Array($0.utf8) }), "plain text")
    }

    @Test("a statically linked program") func staticProgram() throws {
        let f = try Fixtures.shared.get()
        try same(Spec(argv: [f.observeStatic, "args", "x"].map { Array($0.utf8) }), "static args")
        try same(Spec(argv: [f.observeStatic, "exit", "9"].map { Array($0.utf8) }), "static exit")
    }
}
