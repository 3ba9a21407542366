import Foundation
import TestSupport

/// Tiny C programs and libraries compiled once per test run.
struct Fixtures: Sendable {
    let dir: String
    var d1: String { dir + "/d1" }
    var d2: String { dir + "/d2" }
    var d3: String { dir + "/d3" }

    static let shared = buildOnce { try Fixtures.build() }

    static func get() throws -> Fixtures { try shared.get() }

    func path(_ name: String) -> String { dir + "/" + name }

    static func build() throws -> Fixtures {
        let f = Fixtures(dir: try scratch("fixtures"))
        for d in [f.d1, f.d2, f.d3] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        try write("int liba_value(void) { return 40; }\n", to: f.dir + "/src/a.c")
        try write("int libb_value(void) { return 2; }\n", to: f.dir + "/src/b.c")
        try gcc(["-shared", "-fPIC", "-Wl,-soname,liba.so", "-o", f.d2 + "/liba.so", f.dir + "/src/a.c"])
        try gcc(["-shared", "-fPIC", "-Wl,-soname,libb.so", "-o", f.d3 + "/libb.so", f.dir + "/src/b.c"])

        let mainAB = """
        #include <stdio.h>
        int liba_value(void); int libb_value(void);
        int main(int argc, char **argv) {
            printf("value %d args %d\\n", liba_value() + libb_value(), argc);
            fprintf(stderr, "to stderr\\n");
            return 3;
        }
        """
        try write(mainAB, to: f.dir + "/src/main_ab.c")
        let link = ["-L" + f.d2, "-L" + f.d3, "-la", "-lb"]
        let rpath = "\(f.d1):\(f.d2):\(f.d3)"
        try gcc([f.dir + "/src/main_ab.c", "-o", f.path("rpath3")] + link + ["-Wl,--disable-new-dtags,-rpath," + rpath])
        try gcc([f.dir + "/src/main_ab.c", "-o", f.path("runpath3")] + link + ["-Wl,--enable-new-dtags,-rpath," + rpath])
        try gcc([f.dir + "/src/main_ab.c", "-o", f.path("plain")] + link)
        // Shrinkwrapped: absolute DT_NEEDED, as patchelf writes it (it moves the
        // program headers and the interpreter string to the end of the file).
        try FileManager.default.copyItem(atPath: f.path("rpath3"), toPath: f.path("shrinkwrapped"))
        for lib in [f.d2 + "/liba.so", f.d3 + "/libb.so"] {
            let r = try run(["patchelf", "--replace-needed", (lib as NSString).lastPathComponent, lib, f.path("shrinkwrapped")])
            if r.status != 0 { throw TestFailure("patchelf: \(r.stderrText)") }
        }

        let dl = """
        #include <dlfcn.h>
        #include <stdio.h>
        int main(void) {
            void *h = dlopen("liba.so", RTLD_NOW);
            if (!h) { fprintf(stderr, "dlopen: %s\\n", dlerror()); return 1; }
            int (*f)(void) = (int (*)(void))dlsym(h, "liba_value");
            printf("dlopen value %d\\n", f());
            dlclose(h);
            return 0;
        }
        """
        try write(dl, to: f.dir + "/src/dl.c")
        try gcc([f.dir + "/src/dl.c", "-o", f.path("dlopen"), "-Wl,--disable-new-dtags,-rpath,\(f.d1):\(f.d2)"])

        let forkExec = """
        #include <stdio.h>
        #include <sys/wait.h>
        #include <unistd.h>
        int main(int argc, char **argv) {
            fflush(stdout);
            pid_t p = fork();
            if (p == 0) { execl(argv[1], argv[1], "child", (char *)0); _exit(99); }
            int st = 0;
            waitpid(p, &st, 0);
            printf("child status %d\\n", WEXITSTATUS(st));
            return 5;
        }
        """
        try write(forkExec, to: f.dir + "/src/forkexec.c")
        try gcc([f.dir + "/src/forkexec.c", "-o", f.path("forkexec")])

        let threadExec = """
        #include <pthread.h>
        #include <stdio.h>
        #include <unistd.h>
        #include <fcntl.h>
        static const char *target;
        static void *worker(void *arg) {
            (void)arg;
            access("/nonexistent/from-thread", F_OK);
            execl(target, target, "from-thread", (char *)0);
            return 0;
        }
        int main(int argc, char **argv) {
            target = argv[1];
            access("/nonexistent/from-main", F_OK);
            pthread_t t;
            pthread_create(&t, 0, worker, 0);
            for (;;) pause();
        }
        """
        try write(threadExec, to: f.dir + "/src/threadexec.c")
        try gcc([f.dir + "/src/threadexec.c", "-o", f.path("threadexec"), "-pthread"])

        let killed = """
        #include <fcntl.h>
        #include <signal.h>
        #include <stdio.h>
        #include <unistd.h>
        int main(void) {
            printf("before kill\\n");
            fflush(stdout);
            for (int i = 0; i < 5; i++) access("/nonexistent/before-kill", F_OK);
            open("/etc/hostname", O_RDONLY);
            raise(SIGKILL);
            return 0;
        }
        """
        try write(killed, to: f.dir + "/src/killed.c")
        try gcc([f.dir + "/src/killed.c", "-o", f.path("killed")])
        let affinity = """
        #define _GNU_SOURCE
        #include <sched.h>
        #include <stdio.h>
        #include <unistd.h>
        static int before;
        __attribute__((constructor)) static void early(void) {
            cpu_set_t s; sched_getaffinity(0, sizeof s, &s); before = CPU_COUNT(&s);
        }
        int main(void) {
            cpu_set_t s; sched_getaffinity(0, sizeof s, &s);
            printf("cpus before main %d, in main %d\\n", before, CPU_COUNT(&s));
            return 0;
        }
        """
        // A program with its own view of the files: a private mount namespace
        // with a tmpfs over an (elsewhere empty) directory.
        let ownView = """
        #define _GNU_SOURCE
        #include <fcntl.h>
        #include <sched.h>
        #include <stdio.h>
        #include <sys/mount.h>
        #include <sys/stat.h>
        #include <unistd.h>
        int main(int argc, char **argv) {
            if (unshare(CLONE_NEWNS) != 0) { perror("unshare"); return 2; }
            if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) { perror("mount private"); return 2; }
            if (mount("tmpfs", argv[1], "tmpfs", 0, NULL) != 0) { perror("mount tmpfs"); return 2; }
            char p[4096];
            snprintf(p, sizeof p, "%s/only-here", argv[1]);
            close(open(p, O_CREAT | O_WRONLY, 0644));
            struct stat st;
            printf("only-here: stat %d, access %d\\n", stat(p, &st), access(p, F_OK));
            snprintf(p, sizeof p, "%s/missing", argv[1]);
            printf("missing: access %d\\n", access(p, F_OK));
            return 0;
        }
        """
        try write(ownView, to: f.dir + "/src/ownview.c")
        try gcc([f.dir + "/src/ownview.c", "-o", f.path("ownview")])
        try write(affinity, to: f.dir + "/src/affinity.c")
        try gcc([f.dir + "/src/affinity.c", "-o", f.path("affinity")])
        return f
    }
}
