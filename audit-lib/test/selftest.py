#!/usr/bin/env python3
"""Self-test of the loadprobe audit library (LD_AUDIT). Run through audit-lib/selftest.sh.

usage: selftest.py path/to/libloadprobe-audit.so

Compiles tiny fixture programs and libraries in a temporary directory, runs them with and
without the audit library and checks the records against glibc's own LD_DEBUG=libs trace.
Exits 0 when everything passes, 1 otherwise (each failure says why).
"""
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lpa  # noqa: E402

CC = os.environ.get("CC", "cc")
FAILURES = []
INFO = []
T = None  # temp dir


def fail(test, msg):
    FAILURES.append("%s: %s" % (test, msg))
    print("  FAIL %s: %s" % (test, msg), flush=True)


def check(test, cond, msg):
    if not cond:
        fail(test, msg)
    return cond


SKIPS = []


def skip(test, why):
    """A test that cannot run here: said as skipped, never as ok; on CI (CI set) a failure."""
    if os.environ.get("CI"):
        fail(test, "cannot run on CI: " + why)
    else:
        SKIPS.append(test)
        print("  skipped: " + why, flush=True)


def info(msg):
    INFO.append(msg)
    print("  info: " + msg, flush=True)


def sh(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError("command failed (%d): %s\n%s%s" % (r.returncode, " ".join(cmd), r.stdout, r.stderr))
    return r


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def clean_env():
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("LD_") or k.startswith("LOADPROBE_"):
            del env[k]
    return env


def run(argv, audit=None, audit_dir=None, extra_env=None, preexec=None, timeout=60, cwd=None):
    env = clean_env()
    if audit is not None:
        env["LD_AUDIT"] = audit
    if audit_dir is not None:
        env["LOADPROBE_AUDIT_DIR"] = audit_dir
    env.update(extra_env or {})
    return subprocess.run(argv, env=env, capture_output=True, timeout=timeout, preexec_fn=preexec, cwd=cwd)


def fresh_dir(name):
    d = os.path.join(T, "out-" + name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


# ---------------------------------------------------------------- fixtures

LIB_A = "int fa(void) { return 1; }\n"
LIB_B = "int fa(void);\nint fb(void) { return fa() + 1; }\n"
LIB_DL = "int fdl(void) { return 40; }\n"
MAIN_AB = r"""
#include <stdio.h>
int fa(void); int fb(void);
int main(void) { printf("fa+fb=%d\n", fa() + fb()); fprintf(stderr, "to stderr\n"); return 5; }
"""
DLOPENER = r"""
#include <dlfcn.h>
#include <stdio.h>
int fa(void);
int main(void) {
    printf("fa=%d\n", fa()); fflush(stdout);
    void *h = dlopen("libfxdl.so", RTLD_NOW);
    if (!h) { printf("dlopen failed: %s\n", dlerror()); return 1; }
    int (*f)(void) = (int (*)(void))dlsym(h, "fdl");
    printf("fdl=%d\n", f()); fflush(stdout);
    dlclose(h);
    return 0;
}
"""
KILLER = r"""
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
int fa(void); int fb(void);
int main(void) { printf("before kill %d\n", fa() + fb()); fflush(stdout); kill(getpid(), SIGKILL); return 0; }
"""
FORKER = r"""
#include <dlfcn.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
extern char **environ;
int fa(void);
/* argv[1]: program the children exec; argv[2]: program this process finally execs */
int main(int argc, char **argv) {
    if (argc < 3) return 2;
    printf("fa=%d\n", fa()); fflush(stdout);
    int st;
    pid_t c = fork();
    if (c == 0) {
        void *h = dlopen("libfxdl.so", RTLD_NOW);  /* audit events in the forked child */
        if (!h) _exit(90);
        char *av[] = { argv[1], NULL };
        execv(argv[1], av);
        _exit(91);
    }
    printf("pid:fork %d %d\n", (int)getpid(), (int)c); fflush(stdout);
    waitpid(c, &st, 0);
    printf("fork child exit %d\n", WEXITSTATUS(st)); fflush(stdout);
    pid_t v = vfork();
    if (v == 0) {
        char *av[] = { argv[1], NULL };
        execv(argv[1], av);
        _exit(92);
    }
    printf("pid:vfork %d\n", (int)v); fflush(stdout);
    waitpid(v, &st, 0);
    printf("vfork child exit %d\n", WEXITSTATUS(st)); fflush(stdout);
    pid_t s;
    char *av[] = { argv[1], NULL };
    if (posix_spawn(&s, argv[1], NULL, NULL, av, environ) != 0) return 3;
    printf("pid:spawn %d\n", (int)s); fflush(stdout);
    waitpid(s, &st, 0);
    printf("spawn child exit %d\n", WEXITSTATUS(st)); fflush(stdout);
    char *av2[] = { argv[2], NULL };
    execv(argv[2], av2);
    return 93;
}
"""
# Drives the library directly (dlopen'ed, not as an audit module) from many threads, to
# stress the lock-free writer, segment roll-over and fork from a multi-threaded process.
STRESS = r"""
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
static char *(*objsearch)(const char *, uintptr_t *, unsigned);
static int per_thread;
static void *worker(void *arg) {
    int t = (int)(intptr_t)arg;
    char name[128];
    uintptr_t cookie = 0;
    for (int i = 0; i < per_thread; i++) {
        int n = snprintf(name, sizeof name, "t%d-%d-", t, i);
        memset(name + n, 'x', i % 53);
        name[n + i % 53] = 0;
        objsearch(name, &cookie, 4);
    }
    return 0;
}
int main(int argc, char **argv) {
    if (argc < 4) return 2;
    int nthreads = atoi(argv[2]);
    per_thread = atoi(argv[3]);
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 3; }
    unsigned (*version)(unsigned) = (unsigned (*)(unsigned))dlsym(h, "la_version");
    objsearch = (char *(*)(const char *, uintptr_t *, unsigned))dlsym(h, "la_objsearch");
    if (!version || !objsearch) return 4;
    if (version(2) != 2) { printf("inert\n"); return 0; }
    pthread_t th[64];
    for (int t = 0; t < nthreads; t++) pthread_create(&th[t], 0, worker, (void *)(intptr_t)t);
    pid_t kids[4];
    for (int k = 0; k < 4; k++) {
        usleep(2000);
        kids[k] = fork();
        if (kids[k] == 0) {
            uintptr_t cookie = 0;
            char name[64];
            for (int i = 0; i < 100; i++) { snprintf(name, sizeof name, "child%d-%d", k, i); objsearch(name, &cookie, 2); }
            _exit(0);
        }
        printf("child %d\n", (int)kids[k]);
    }
    for (int t = 0; t < nthreads; t++) pthread_join(th[t], 0);
    for (int k = 0; k < 4; k++) { int st; waitpid(kids[k], &st, 0); if (!WIFEXITED(st) || WEXITSTATUS(st)) return 5; }
    printf("done %d\n", nthreads * per_thread);
    return 0;
}
"""
# brackets each la_objsearch call with CLOCK_MONOTONIC reads, with pauses of every
# length between calls (so the library's clock both interpolates and re-reads).
CLOCKED = r"""
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static uint64_t now(void) { struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts); return ts.tv_sec * 1000000000ull + ts.tv_nsec; }
int main(int argc, char **argv) {
    if (argc < 3) return 2;
    int n = atoi(argv[2]);
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 3; }
    unsigned (*version)(unsigned) = (unsigned (*)(unsigned))dlsym(h, "la_version");
    char *(*objsearch)(const char *, uintptr_t *, unsigned) = (char *(*)(const char *, uintptr_t *, unsigned))dlsym(h, "la_objsearch");
    if (!version || !objsearch || version(2) != 2) return 4;
    uintptr_t cookie = 0;
    char name[64];
    for (int i = 0; i < n; i++) {
        uint64_t pause = (uint64_t)(i % 97) * (i % 5 == 0 ? 40000 : 300); /* 0 .. 3.8 ms */
        for (uint64_t t = now(); now() - t < pause;) {}
        snprintf(name, sizeof name, "/clock/dir%d/lib%d.so", i % 13, i);
        uint64_t a = now();
        objsearch(name, &cookie, 4);
        uint64_t b = now();
        printf("%llu %llu\n", (unsigned long long)a, (unsigned long long)b);
    }
    return 0;
}
"""
DLOPEN_MISSING = r"""
#include <dlfcn.h>
#include <stdio.h>
int main(void) { void *h = dlopen("libloadprobe-no-such-lib.so", RTLD_NOW); printf("%s\\n", h ? "found" : "missing"); return 0; }
"""
OTHER_AUDIT = r"""
#define _GNU_SOURCE
#include <link.h>
#include <stdint.h>
unsigned int la_version(unsigned int v) { return v; }
char *la_objsearch(const char *name, uintptr_t *cookie, unsigned int flag) { (void)cookie; (void)flag; return (char *)name; }
unsigned int la_objopen(struct link_map *m, Lmid_t l, uintptr_t *c) { (void)m; (void)l; (void)c; return 0; }
void la_activity(uintptr_t *c, unsigned int f) { (void)c; (void)f; }
"""


WHATIF_MAIN = r"""
#include <stdio.h>
#include <stdlib.h>
int fa(void); int fb(void);
int main(void) { printf("fa+fb=%d\n", fa() + fb()); fflush(stdout); return system("/bin/true") == 0 ? 7 : 1; }
"""


def build_fixtures():
    for d in ("d1", "d2", "d3"):
        os.makedirs(os.path.join(T, d), exist_ok=True)
    d1, d2, d3 = (os.path.join(T, d) for d in ("d1", "d2", "d3"))
    src = os.path.join(T, "src")
    os.makedirs(src)
    rpath = "-Wl,--disable-new-dtags,-rpath,%s:%s:%s" % (d1, d2, d3)
    runpath = "-Wl,--enable-new-dtags,-rpath,%s:%s:%s" % (d1, d2, d3)
    sh([CC, "-shared", "-fPIC", "-o", d2 + "/liba.so", write(src + "/a.c", LIB_A)])
    sh([CC, "-shared", "-fPIC", "-o", d3 + "/libb.so", write(src + "/b.c", LIB_B), "-L" + d2, "-la",
        "-Wl,--disable-new-dtags,-rpath," + d2])
    sh([CC, "-shared", "-fPIC", "-o", d3 + "/libfxdl.so", write(src + "/dl.c", LIB_DL)])
    libs = ["-L" + d2, "-L" + d3, "-Wl,--no-as-needed", "-la", "-lb"]
    sh([CC, "-o", T + "/m_rpath", write(src + "/m.c", MAIN_AB)] + libs + [rpath])
    sh([CC, "-o", T + "/m_runpath", src + "/m.c"] + libs + [runpath])
    sh([CC, "-o", T + "/dlopener", write(src + "/dlopener.c", DLOPENER)] + libs + [runpath])
    sh([CC, "-o", T + "/killer", write(src + "/killer.c", KILLER)] + libs + [rpath])
    sh([CC, "-o", T + "/forker", write(src + "/forker.c", FORKER)] + libs + [rpath])
    sh([CC, "-o", T + "/m_plain", src + "/m.c"] + libs)
    sh([CC, "-o", T + "/dlopen_missing", write(src + "/missing.c", DLOPEN_MISSING)])
    sh([CC, "-O1", "-pthread", "-o", T + "/stress", write(src + "/stress.c", STRESS), "-ldl"])
    sh([CC, "-shared", "-fPIC", "-o", T + "/libotheraudit.so", write(src + "/other.c", OTHER_AUDIT)])
    sh([CC, "-O1", "-o", T + "/clocked", write(src + "/clocked.c", CLOCKED), "-ldl"])
    sh([CC, "-o", T + "/wi_prog", write(src + "/wi.c", WHATIF_MAIN)] + libs + [runpath])
    # libm (found through ld.so.cache) searched before liba: ld.so reads its cache first.
    sh([CC, "-o", T + "/wi_cache", src + "/m.c", "-Wl,--no-as-needed", "-lm", "-L" + d2, "-L" + d3, "-la", "-lb", runpath])


# ---------------------------------------------------------------- helpers

TRYING = re.compile(r"^\s*(\d+):\s+trying file=(.*)$")
FIND = re.compile(r"^\s*(\d+):\s+find library=(\S+) \[")
SEARCH = re.compile(r"^\s*(\d+):\s+search (path|cache)=(.*)$")


def ld_debug(argv, audit=None, audit_dir=None, env=None):
    """(trying-file candidates as (origin flag, path), find-library names) from LD_DEBUG=libs."""
    e = dict(env or {})
    if "LD_DEBUG=libs" not in argv:
        e["LD_DEBUG"] = "libs"
    r = run(argv, audit=audit, audit_dir=audit_dir, extra_env=e)
    trying, finds, origin = [], [], 0
    for line in r.stderr.decode(errors="replace").splitlines():
        m = SEARCH.match(line)
        if m:
            what = m.group(3)
            if m.group(2) == "cache":
                origin = 0x08
            elif what.endswith("(LD_LIBRARY_PATH)"):
                origin = 0x02
            elif "(RPATH from file" in what or "(RUNPATH from file" in what:
                origin = 0x04
            elif what.endswith("(system search path)"):
                origin = 0x40
            else:
                origin = -1
            continue
        m = TRYING.match(line)
        if m:
            trying.append((origin, m.group(2)))
            continue
        m = FIND.match(line)
        if m:
            finds.append(m.group(2))
    return trying, finds


def segments_of(d):
    return list(lpa.read_dir(d).values())


def validate_dir(test, d, single_threaded=True):
    """Structural checks on every segment in d; returns {pid: [segments]}."""
    segs = segments_of(d)
    by_pid = {}
    now = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    for s in segs:
        name = os.path.basename(s.path)
        for p in s.problems:
            fail(test, "%s: %s" % (name, p))
        m = re.match(r"a-(\d+)-(\d+)\.lpa$", name)
        check(test, m and int(m.group(1)) == s.pid, "%s: file name does not match header pid %d" % (name, s.pid))
        check(test, s.file_size in (lpa.SEGMENT_BYTES, lpa.HEADER_SIZE + s.capacity),
              "%s: file size %d, capacity %d" % (name, s.file_size, s.capacity))
        check(test, s.clock_source in (1, 2, 3), "%s: clock_source %d" % (name, s.clock_source))
        check(test, s.la_version >= 1, "%s: la_version %d" % (name, s.la_version))
        check(test, s.records, "%s: no records" % name)
        if s.segment == 0 and s.records:
            check(test, s.records[0]["kind"] == lpa.IMAGE, "%s: first record is %s, not IMAGE" % (name, s.records[0]["kind_name"]))
        for r in s.records:
            if r["pid"] != s.pid:
                fail(test, "%s: record seq %d has pid %d (segment of pid %d)" % (name, r["seq"], r["pid"], s.pid))
                break
        for r in s.records:
            if not (s.image_start_ns <= r["time_ns"] <= now):
                fail(test, "%s: record seq %d time %d outside [%d, %d]" % (name, r["seq"], r["time_ns"], s.image_start_ns, now))
                break
        if single_threaded:
            seqs = [r["seq"] for r in s.records]
            times = [r["time_ns"] for r in s.records]
            check(test, seqs == sorted(seqs) and len(set(seqs)) == len(seqs), "%s: seq not increasing" % name)
            check(test, times == sorted(times), "%s: time not monotonic" % name)
            if s.segment == 0:
                check(test, seqs[:1] == [0], "%s: seq does not start at 0" % name)
        used = sum(r["size"] for r in s.records)
        check(test, used == s.used, "%s: records use %d bytes, header says %d" % (name, used, s.used))
        check(test, not s.cut, "%s: bytes past `used` (an unfinished record)" % name)
        check(test, s.dropped == 0, "%s: %d records dropped" % (name, s.dropped))
        if single_threaded:
            check(test, len(s.records) <= 1 or s.new_bytes < s.path_bytes,
                  "%s: %d path bytes written for %d (no sharing with the previous path?)"
                  % (name, s.new_bytes, s.path_bytes))
        by_pid.setdefault(s.pid, []).append(s)
    for p in by_pid:
        by_pid[p].sort(key=lambda s: (s.image_start_ns, s.segment))
    return by_pid


def candidates(seg_list):
    """(flag, path) of every OBJSEARCH candidate (not LA_SER_ORIG), in order."""
    return [(r["flag"], r["name"]) for s in seg_list for r in s.records if r["kind"] == lpa.OBJSEARCH and r["flag"] != 0x01]


def origs(seg_list):
    return [r["name"] for s in seg_list for r in s.records if r["kind"] == lpa.OBJSEARCH and r["flag"] == 0x01]


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return "at %d: %r vs %r" % (i, x, y)
    return "lengths %d vs %d" % (len(a), len(b))


def same_run_result(test, plain, traced, compare_stderr=True, filt=None):
    f = filt or (lambda b: b)
    check(test, plain.returncode == traced.returncode,
          "exit status %d untraced vs %d with LD_AUDIT" % (plain.returncode, traced.returncode))
    check(test, f(plain.stdout) == f(traced.stdout), "stdout differs: %r vs %r" % (plain.stdout, traced.stdout))
    if compare_stderr:
        check(test, f(plain.stderr) == f(traced.stderr), "stderr differs: %r vs %r" % (plain.stderr, traced.stderr))


# ---------------------------------------------------------------- tests

def test_elf(so):
    t = "elf"
    r = sh(["readelf", "-dW", so])
    needed = [l for l in r.stdout.splitlines() if "(NEEDED)" in l]
    check(t, not needed, "the audit library has DT_NEEDED entries: %s" % needed)
    syms = sh(["readelf", "--dyn-syms", "-W", so]).stdout
    for s in ("la_version", "la_objsearch", "la_objopen", "la_activity", "la_preinit", "la_objclose"):
        check(t, re.search(r"FUNC\s+GLOBAL\s+DEFAULT\s+\d+\s+%s$" % s, syms, re.M), "%s not exported" % s)
    for s in ("la_symbind64", "la_pltenter", "la_x86_64_gnu_pltenter", "la_aarch64_gnu_pltenter"):
        check(t, not re.search(r"\s%s$" % s, syms, re.M), "%s exported: would slow every PLT call" % s)
    und = [l for l in syms.splitlines() if re.search(r"\sUND\s+\S+$", l)]
    check(t, not und, "undefined dynamic symbols: %s" % und)


def test_search_order(so, argv, kind, env=None, expect_flags=()):
    t = "search-order-" + kind
    d = fresh_dir(t)
    plain = run(argv, extra_env=env)
    traced = run(argv, audit=so, audit_dir=d, extra_env=env)
    same_run_result(t, plain, traced)
    by_pid = validate_dir(t, d)
    if not check(t, len(by_pid) == 1, "expected one process, got %s" % sorted(by_pid)):
        return
    segs = list(by_pid.values())[0]
    got = candidates(segs)
    trying, finds = ld_debug(argv, env=env)
    check(t, got == trying, "OBJSEARCH (flag, candidate) differ from LD_DEBUG=libs (origin, trying file) (%s)\n    audit: %s\n    ld.so: %s"
          % (first_diff(got, trying), got, trying))
    check(t, origs(segs) == finds, "ORIG names %s differ from LD_DEBUG find library %s" % (origs(segs), finds))
    # The same run with both: LD_AUDIT must not change what ld.so tries.
    d2 = fresh_dir(t + "-both")
    trying2, _ = ld_debug(argv, audit=so, audit_dir=d2, env=env)
    got2 = candidates(segs_all(d2))
    check(t, trying2 == trying, "LD_DEBUG trying lines change under LD_AUDIT (%s)" % first_diff(trying2, trying))
    check(t, got2 == trying2, "candidates differ in the combined LD_DEBUG+LD_AUDIT run (%s)" % first_diff(got2, trying2))
    hw = [(f, n) for f, n in got if "glibc-hwcaps" in n]
    check(t, hw, "no glibc-hwcaps candidates recorded")
    flagname = lambda f: "|".join(v for k, v in lpa.LA_SER.items() if f & k) or hex(f)
    seen = sorted({flagname(f) for f, _ in got})
    for f in expect_flags:
        check(t, flagname(f) in seen, "no candidate with flag %s (seen %s)" % (flagname(f), seen))
    info("%s: %d candidates match LD_DEBUG=libs one for one, origin for origin; hwcaps candidates: %d, flag(s) %s; "
         "candidate flags seen: %s" % (kind, len(got), len(hw), sorted({flagname(f) for f, _ in hw}), seen))
    sizes = [r["size"] for s in segs for r in s.records]
    info("%s: %d records, %d bytes, %.1f bytes/record (OBJSEARCH candidates: %.1f); path bytes: %d written "
         "for %d"
         % (kind, len(sizes), sum(sizes), sum(sizes) / len(sizes),
            sum(r["size"] for s in segs for r in s.records if r["kind"] == lpa.OBJSEARCH and r["flag"] != 1)
            / max(1, len(got)), sum(s.new_bytes for s in segs), sum(s.path_bytes for s in segs)))
    return segs


def test_link_time(so, prog, kind):
    t = "search-order-" + kind
    segs = test_search_order(so, [prog], kind, expect_flags=(0x04, 0x08))
    if not segs:
        return
    kinds = [r["kind_name"] for r in segs[0].records]
    check(t, "PREINIT" in kinds, "no PREINIT record")
    opens = [r["name"] for r in segs[0].records if r["kind"] == lpa.OBJOPEN]
    check(t, os.path.join(T, "d2", "liba.so") in opens and os.path.join(T, "d3", "libb.so") in opens,
          "OBJOPEN names %s" % opens)
    check(t, opens[:2] == ["", "/lib64/ld-linux-x86-64.so.2"] or not opens[1].startswith("/lib64"),
          "first OBJOPENs are not main program and ld.so: %s" % opens[:3])
    closes = [r["name"] for r in segs[0].records if r["kind"] == lpa.OBJCLOSE]
    check(t, sorted(closes) == sorted(n for n in opens if n != "linux-vdso.so.1") or sorted(closes) == sorted(opens),
          "OBJCLOSE names %s do not match OBJOPEN %s" % (closes, opens))


def segs_all(d):
    return sorted(segments_of(d), key=lambda s: (s.pid, s.image_start_ns, s.segment))


def test_dlopen(so):
    t = "dlopen"
    d = fresh_dir(t)
    prog = os.path.join(T, "dlopener")
    plain = run([prog])
    traced = run([prog], audit=so, audit_dir=d)
    same_run_result(t, plain, traced)
    by_pid = validate_dir(t, d)
    if not check(t, len(by_pid) == 1, "expected one process"):
        return
    recs = [r for s in list(by_pid.values())[0] for r in s.records]
    kinds = [(r["kind"], r["flag"], r["name"]) for r in recs]
    pre = [i for i, k in enumerate(kinds) if k[0] == lpa.PREINIT]
    if not check(t, pre, "no PREINIT"):
        return
    after = kinds[pre[0] + 1:]
    libpath = os.path.join(T, "d3", "libfxdl.so")
    # glibc 2.36 order for dlopen: OBJSEARCH ORIG soname, candidates..., ACTIVITY ADD (only
    # once a new object is mapped), OBJOPEN, ACTIVITY CONSISTENT.
    try:
        o = after.index((lpa.OBJSEARCH, 1, "libfxdl.so"))
        a = after.index((lpa.ACTIVITY, 1, ""), o)
        op = after.index((lpa.OBJOPEN, 0, libpath), a)
        c = after.index((lpa.ACTIVITY, 0, ""), op)
        ok = o < a < op < c
    except ValueError:
        ok = False
    check(t, ok, "no ORIG libfxdl.so / ACTIVITY ADD / OBJOPEN / ACTIVITY CONSISTENT group after PREINIT: %s" % after)
    # and for dlclose: OBJCLOSE, ACTIVITY DELETE, ACTIVITY CONSISTENT (at exit: DELETE first).
    try:
        cl = after.index((lpa.OBJCLOSE, 0, libpath))
        dd = after.index((lpa.ACTIVITY, 2, ""), cl)
        c2 = after.index((lpa.ACTIVITY, 0, ""), dd)
        ok = cl < dd < c2
    except ValueError:
        ok = False
    check(t, ok, "no OBJCLOSE libfxdl.so / ACTIVITY DELETE / ACTIVITY CONSISTENT group for dlclose: %s" % after)
    info("dlopen group: %s" % " ".join(
        "%s%s" % (lpa.KIND_NAMES[k], "(%s)" % (lpa.LA_ACT[f] if k == lpa.ACTIVITY else lpa.LA_SER.get(f, f))
                   if k in (lpa.ACTIVITY, lpa.OBJSEARCH) else "") for k, f, n in after))
    trying, _ = ld_debug([prog])
    got = [(r["flag"], r["name"]) for r in recs if r["kind"] == lpa.OBJSEARCH and r["flag"] != 1]
    check(t, got == trying, "candidates differ from LD_DEBUG (%s)" % first_diff(got, trying))


def test_kill(so):
    t = "sigkill"
    d = fresh_dir(t)
    prog = os.path.join(T, "killer")
    plain = run([prog])
    traced = run([prog], audit=so, audit_dir=d)
    same_run_result(t, plain, traced)
    check(t, traced.returncode == -signal.SIGKILL, "exit status %d, expected killed by SIGKILL" % traced.returncode)
    by_pid = validate_dir(t, d)
    if check(t, len(by_pid) == 1, "expected one process's records"):
        kinds = [r["kind_name"] for s in list(by_pid.values())[0] for r in s.records]
        check(t, "PREINIT" in kinds and kinds.count("OBJSEARCH") > 10, "records incomplete after SIGKILL: %s" % kinds)
        check(t, "OBJCLOSE" not in kinds, "OBJCLOSE after SIGKILL?")


def test_fork_exec(so):
    t = "fork-exec"
    d = fresh_dir(t)
    prog = os.path.join(T, "forker")
    child = os.path.join(T, "m_rpath")
    last = shutil.which("true") or "/bin/true"
    argv = [prog, child, last]
    plain = run(argv)
    traced = run(argv, audit=so, audit_dir=d)
    nopid = lambda b: b"\n".join(l for l in b.split(b"\n") if not l.startswith(b"pid:"))
    same_run_result(t, plain, traced, filt=nopid)
    out = traced.stdout.decode()
    m = re.search(r"pid:fork (\d+) (\d+)", out)
    mv = re.search(r"pid:vfork (\d+)", out)
    ms = re.search(r"pid:spawn (\d+)", out)
    if not check(t, m and mv and ms, "pids not printed: %r" % out):
        return
    parent, forked, vforked, spawned = int(m.group(1)), int(m.group(2)), int(mv.group(1)), int(ms.group(1))
    by_pid = validate_dir(t, d)
    check(t, set(by_pid) == {parent, forked, vforked, spawned},
          "segments for pids %s, expected %s" % (sorted(by_pid), sorted({parent, forked, vforked, spawned})))
    P = by_pid.get(parent, [])
    check(t, len(P) == 2 and [s.forked for s in P] == [0, 0], "parent: expected 2 images (forker, then exec of true)")
    if len(P) == 2:
        check(t, P[0].records[0]["name"] == prog and P[1].records[0]["name"] == last,
              "parent image names %r, %r" % (P[0].records[0]["name"], P[1].records[0]["name"]))
        check(t, P[0].image_id != P[1].image_id, "exec'd image reuses image_id")
        check(t, os.path.basename(P[1].path) == "a-%d-1.lpa" % parent, "exec'd image file %s" % P[1].path)
    C = by_pid.get(forked, [])
    if check(t, len(C) == 2, "fork child: expected 2 images (forked child, then exec), got %d" % len(C)):
        fc, ex = C
        check(t, fc.forked == 1 and fc.ppid == parent, "forked segment: forked=%d ppid=%d" % (fc.forked, fc.ppid))
        check(t, P and fc.parent_image_id == P[0].image_id, "forked segment parent_image_id %#x != parent image %#x"
              % (fc.parent_image_id, P[0].image_id if P else 0))
        check(t, fc.records[0]["name"] == prog, "forked IMAGE name %r" % fc.records[0]["name"])
        names = [(r["kind"], r["flag"], r["name"]) for r in fc.records]
        check(t, (lpa.OBJSEARCH, 1, "libfxdl.so") in names and (lpa.OBJOPEN, 0, os.path.join(T, "d3", "libfxdl.so")) in names,
              "forked child's dlopen not recorded: %s" % names)
        check(t, ex.forked == 0 and ex.records[0]["name"] == child, "child's exec'd image: forked=%d name=%r" % (ex.forked, ex.records[0]["name"]))
    for pid in (vforked, spawned):
        S = by_pid.get(pid, [])
        check(t, len(S) == 1 and S and S[0].records[0]["name"] == child and S[0].forked == 0,
              "vfork/spawn child %d: %s" % (pid, [(s.path, s.forked) for s in S]))
    # the parent's segment has only the parent's records, and no events after fork from children
    for s in P:
        check(t, all(r["pid"] == parent for r in s.records), "child records in the parent's segment")


def test_stress(so):
    t = "threads+rollover"
    d = fresh_dir(t)
    nthreads, per = 8, 40000
    limit = 512 * 1024

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    r = run([os.path.join(T, "stress"), so, str(nthreads), str(per)], audit_dir=d, preexec=small_files, timeout=300)
    if not check(t, r.returncode == 0, "stress exited %d: %r %r" % (r.returncode, r.stdout, r.stderr)):
        return
    kids = [int(x) for x in re.findall(r"child (\d+)", r.stdout.decode())]
    by_pid = validate_dir(t, d, single_threaded=False)
    parent = [p for p in by_pid if p not in kids]
    if not check(t, len(parent) == 1, "pids %s, children %s" % (sorted(by_pid), kids)):
        return
    segs = by_pid[parent[0]]
    check(t, [s.segment for s in segs] == list(range(len(segs))), "segment numbers %s" % [s.segment for s in segs])
    check(t, len({s.image_id for s in segs}) == 1, "image_id differs between segments")
    check(t, len(segs) > 3, "expected several segments with RLIMIT_FSIZE=%d, got %d" % (limit, len(segs)))
    check(t, all(s.capacity == limit - lpa.HEADER_SIZE for s in segs), "capacity not adapted to RLIMIT_FSIZE")
    recs = [r for s in segs for r in s.records]
    seqs = sorted(r["seq"] for r in recs)
    total = nthreads * per + 1
    check(t, seqs == list(range(total)), "parent seqs: %d records, expected 0..%d without gaps or duplicates" % (len(seqs), total - 1))
    names = set()
    for r in recs[1:]:
        m = re.match(r"t(\d+)-(\d+)-(x*)$", r["name"])
        if not m or len(m.group(3)) != int(m.group(2)) % 53 or r["flag"] != 4:
            fail(t, "corrupt record: %r" % r)
            break
        names.add((int(m.group(1)), int(m.group(2))))
    check(t, len(names) == nthreads * per, "distinct records %d, expected %d" % (len(names), nthreads * per))
    for k in kids:
        ks = by_pid.get(k, [])
        if check(t, len(ks) == 1 and ks[0].forked == 1, "fork child %d: %d segments" % (k, len(ks))):
            kr = ks[0].records
            check(t, kr[0]["kind"] == lpa.IMAGE and [r["seq"] for r in kr] == list(range(101)),
                  "fork child %d: %d records" % (k, len(kr)))
            check(t, all(r["name"].startswith("child") for r in kr[1:]), "fork child has parent records")
    info("stress: %d threads x %d records, %d segments of %d bytes, %d fork children: all records intact"
         % (nthreads, per, len(segs), limit, len(kids)))


def test_clock(so):
    """Each record's time lies between the caller's clock reads around the call."""
    t = "clock"
    d = fresh_dir(t)
    n = 1500
    r = run([os.path.join(T, "clocked"), so, str(n)], audit_dir=d, timeout=120)
    if not check(t, r.returncode == 0, "clocked exited %d: %r" % (r.returncode, r.stderr)):
        return
    brackets = [tuple(map(int, l.split())) for l in r.stdout.decode().splitlines()]
    segs = [s for ss in validate_dir(t, d).values() for s in ss]
    recs = [x for s in segs for x in s.records if x["kind"] == lpa.OBJSEARCH]
    if not check(t, len(recs) == n == len(brackets), "%d records, %d brackets, %d calls" % (len(recs), len(brackets), n)):
        return
    # The library's time comes from the TSC between clock reads (clock_source 3): allow
    # it 2 us either side of the caller's reads; a wrong rate would be off by far more.
    slack = 2000
    worst = 0
    for x, (a, b) in zip(recs, brackets):
        off = a - x["time_ns"] if x["time_ns"] < a else x["time_ns"] - b if x["time_ns"] > b else 0
        worst = max(worst, off)
    check(t, worst <= slack, "a record's time is %d ns outside the call's bracket" % worst)
    info("clock: clock_source %d, %d calls, worst distance from the call's bracket %d ns"
         % (segs[0].clock_source, n, worst))


def test_inert(so):
    t = "inert"
    prog = os.path.join(T, "m_rpath")
    plain = run([prog])
    cwd = fresh_dir("inert-cwd")
    for label, dirval in (("unset", None), ("empty", ""), ("missing", os.path.join(T, "no", "such", "dir"))):
        r = run([prog], audit=so, audit_dir=dirval, cwd=cwd)
        same_run_result(t + "-" + label, plain, r)
        check(t, os.listdir(cwd) == [], "%s: files created: %s" % (label, os.listdir(cwd)))
    # a read-only directory (as root, permissions do not stop us: use a file instead of a dir)
    notdir = write(os.path.join(T, "not-a-dir"), "x")
    r = run([prog], audit=so, audit_dir=notdir)
    same_run_result(t + "-notdir", plain, r)
    # a relative directory is resolved against the working directory
    rel = fresh_dir("relative")
    r = run([prog], audit=so, audit_dir="out-relative", cwd=T)
    same_run_result(t + "-relative", plain, r)
    check(t, len(os.listdir(rel)) == 1, "relative LOADPROBE_AUDIT_DIR: files %s" % os.listdir(rel))
    # tiny RLIMIT_FSIZE: no SIGXFSZ, program unaffected
    def tiny():
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    r = run([prog], audit=so, audit_dir=fresh_dir("tinyfsize"), preexec=tiny)
    same_run_result(t + "-rlimit-fsize", plain, r)


def test_coexist(so):
    t = "coexist"
    prog = os.path.join(T, "m_rpath")
    other = os.path.join(T, "libotheraudit.so")
    plain = run([prog])
    d0 = fresh_dir("solo")
    run([prog], audit=so, audit_dir=d0)
    solo = candidates(segs_all(d0))
    for order in ("first", "second"):
        d = fresh_dir("coexist-" + order)
        chain = so + ":" + other if order == "first" else other + ":" + so
        r = run([prog], audit=chain, audit_dir=d)
        same_run_result(t + "-" + order, plain, r)
        validate_dir(t + "-" + order, d)
        got = candidates(segs_all(d))
        check(t, got == solo, "ours %s in LD_AUDIT: candidates differ from solo run (%s)" % (order, first_diff(got, solo)))


def strace_calls(argv, env_extra, first_process_only=False):
    """System calls (name and arguments) of one run, through strace -f (of its first process only, if asked)."""
    out = os.path.join(T, "strace.out")
    env = clean_env()
    env.update(env_extra)
    subprocess.run(["strace", "-f", "-qq", "-o", out] + argv, env=env, capture_output=True, timeout=60)
    calls, first = [], None
    with open(out) as f:
        for line in f:
            m = re.match(r"^(\d+)\s+", line)
            first = first or (m and m.group(1))
            if first_process_only and m and m.group(1) != first:
                continue
            calls.append(line.strip()[m.end() if m else 0:])
    return calls


def test_strace(so):
    t = "strace"
    if not shutil.which("strace"):
        info("strace not installed: syscall list not checked")
        return
    prog = os.path.join(T, "m_rpath")
    d = fresh_dir(t)
    base = strace_calls([prog], {})
    calls = strace_calls([prog], {"LD_AUDIT": so, "LOADPROBE_AUDIT_DIR": d, "LOADPROBE_PTRACE": "1"})
    def counts(cs):
        out = {}
        for c in cs:
            m = re.match(r"(\w+)\(", c)
            if m:
                out[m.group(1)] = out.get(m.group(1), 0) + 1
        return out
    cb, ca = counts(base), counts(calls)
    delta = {k: ca.get(k, 0) - cb.get(k, 0) for k in set(ca) | set(cb) if ca.get(k, 0) != cb.get(k, 0)}
    ours = [c for c in calls if so in c or d in c or re.match(r"(getpid|getppid|ftruncate|madvise)\(", c) or "RLIMIT_FSIZE" in c
            or "close(-4242)" in c]
    info("system calls added with LD_AUDIT (strace -f, m_rpath, LOADPROBE_PTRACE=1), per name: %s"
         % ", ".join("%s %+d" % kv for kv in sorted(delta.items())))
    info("the library's own calls and the loading of it:\n      " + "\n      ".join(ours))
    allowed = {"openat", "read", "newfstatat", "fstat", "mmap", "mprotect", "close", "madvise", "getpid", "getppid",
               "prlimit64", "ftruncate"}
    check(t, all(v > 0 for v in delta.values()), "fewer calls of some kind with LD_AUDIT: %s" % delta)
    check(t, set(delta) <= allowed, "unexpected system calls: %s" % sorted(set(delta) - allowed))
    extra = calls
    check(t, any("close(-4242)" in c and "EBADF" in c for c in calls), "no close(-4242) = EBADF with LOADPROBE_PTRACE=1")
    check(t, ca.get("write", 0) == cb.get("write", 0) and ca.get("writev", 0) == cb.get("writev", 0),
          "write calls differ: the library must not write to the program's fds")
    check(t, "clock_gettime" not in delta, "clock_gettime system calls: vDSO clock not used")
    pre = [c for c in calls if "close(-4242)" in c]
    check(t, len(pre) == 1, "close(-4242) %d times" % len(pre))
    # recording impossible (no such directory) but a tracer is attached: main is still signalled
    missing = os.path.join(T, "no-such-dir")
    calls = strace_calls([prog], {"LD_AUDIT": so, "LOADPROBE_AUDIT_DIR": missing, "LOADPROBE_PTRACE": "1"})
    check(t, sum("close(-4242)" in c for c in calls) == 1, "LOADPROBE_PTRACE=1, unusable directory: no close(-4242)")
    check(t, sum(missing in c for c in calls) == 1, "unusable directory tried more than once: %s" % [c for c in calls if missing in c])
    plain = run([prog])
    r = run([prog], audit=so, audit_dir=missing, extra_env={"LOADPROBE_PTRACE": "1"})
    same_run_result(t + "-ptrace-inert", plain, r)


FREESTANDING = ["-nostdlib", "-ffreestanding", "-fno-builtin", "-fno-stack-protector", "-fvisibility=hidden",
                "-fPIC", "-O2", "-Wall", "-Wextra"]  # as in Package.swift


def test_enospc(so):
    """Optional (needs mount): a full file system makes the library inert, never SIGBUS."""
    t = "enospc"
    mnt = os.path.join(T, "small-fs")
    os.makedirs(mnt)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", mnt], capture_output=True).returncode != 0:
        skip(t, "cannot mount a small tmpfs (needs root)")
        return
    try:
        r = run([os.path.join(T, "stress"), so, "1", "20000"], audit_dir=mnt)
        check(t, r.returncode == 0 and b"done 20000" in r.stdout, "stress on a full file system: %d %r %r"
              % (r.returncode, r.stdout, r.stderr))
        by_pid = validate_dir(t, mnt, single_threaded=False)
        recs = [x for segs in by_pid.values() for s in segs for x in s.records]
        check(t, 100 < len(recs) < 20000, "records on a 192 KiB file system: %d" % len(recs))
        before = sorted(os.listdir(mnt))
        prog = os.path.join(T, "m_rpath")
        plain = run([prog])
        r = run([prog], audit=so, audit_dir=mnt)
        same_run_result(t, plain, r)
        check(t, sorted(os.listdir(mnt)) == before, "a file that could not be backed was left: %s"
              % sorted(set(os.listdir(mnt)) - set(before)))
        info("full file system: %d records kept, then inert; later processes unaffected" % len(recs))
    finally:
        subprocess.run(["umount", mnt], capture_output=True)


def test_aarch64():
    """Optional: builds the library for aarch64 with the cross compiler and runs the RPATH
    fixture under qemu-user (no vDSO there: exercises the syscall clock)."""
    t = "aarch64"
    gcc, qemu, sysroot = shutil.which("aarch64-linux-gnu-gcc"), shutil.which("qemu-aarch64"), "/usr/aarch64-linux-gnu"
    if not (gcc and qemu and os.path.isdir(sysroot)):
        skip(t, "needs aarch64-linux-gnu-gcc, qemu-aarch64 (Debian: gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)")
        return
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    a = os.path.join(T, "a64")
    for d in ("d1", "d2", "d3"):
        os.makedirs(os.path.join(a, d), exist_ok=True)
    so = os.path.join(a, "libloadprobe-audit.so")
    srcs = sorted(os.path.join(here, f) for f in os.listdir(here) if f.endswith(".c"))
    sh([gcc] + FREESTANDING + ["-shared", "-Wl,--no-undefined", "-o", so] + srcs)
    needed = [l for l in sh(["readelf", "-dW", so]).stdout.splitlines() if "(NEEDED)" in l]
    check(t, not needed, "aarch64 build has DT_NEEDED: %s" % needed)
    src = os.path.join(T, "src")
    d1, d2, d3 = (os.path.join(a, d) for d in ("d1", "d2", "d3"))
    sh([gcc, "-shared", "-fPIC", "-o", d2 + "/liba.so", src + "/a.c"])
    sh([gcc, "-shared", "-fPIC", "-o", d3 + "/libb.so", src + "/b.c", "-L" + d2, "-la"])
    prog = os.path.join(a, "m_rpath")
    sh([gcc, "-o", prog, src + "/m.c", "-L" + d2, "-L" + d3, "-Wl,--no-as-needed", "-la", "-lb",
        "-Wl,--disable-new-dtags,-rpath,%s:%s:%s" % (d1, d2, d3)])
    # qemu-user itself is a dynamically linked x86_64 program: the variables must reach
    # only the guest, through -E.
    q = lambda *env: [qemu] + [x for e in env for x in ("-E", e)] + ["-L", sysroot, prog]
    plain = run(q())
    d = fresh_dir(t)
    traced = run(q("LD_AUDIT=" + so, "LOADPROBE_AUDIT_DIR=" + d))
    same_run_result(t, plain, traced)
    segs = segs_all(d)
    if not check(t, len(segs) == 1, "expected one segment, got %d" % len(segs)):
        return
    for p in segs[0].problems:
        fail(t, p)
    got = candidates(segs)
    trying, _ = ld_debug(q("LD_DEBUG=libs"))
    check(t, got == trying, "aarch64 candidates differ from LD_DEBUG (%s)" % first_diff(got, trying))
    kinds = [r["kind_name"] for r in segs[0].records]
    check(t, kinds[0] == "IMAGE" and "PREINIT" in kinds, "aarch64 records: %s" % kinds)
    info("aarch64 (qemu-user): la_version %d, clock_source %d, %d candidates match LD_DEBUG=libs"
         % (segs[0].la_version, segs[0].clock_source, len(got)))
    # what-if: the map read with aarch64's system calls, AT_EXECFN as qemu gives it
    mapfile = os.path.join(a, "whatif.map")
    with open(mapfile, "wb") as f:
        f.write(whatif_map([prog], [("*", "liba.so", d2 + "/liba.so", ["o04" + a + "/no-view/liba.so", "s00" + a + "/no-view", "h04"]),
                                    ("*", "libb.so", d3 + "/libb.so")]))
    d = fresh_dir(t + "-whatif")
    answered = run(q("LD_AUDIT=" + so, "LOADPROBE_AUDIT_DIR=" + d, "LOADPROBE_WHATIF=" + mapfile))
    same_run_result(t, plain, answered)
    found = origs(segs_all(d))
    check(t, found[:2] == [d2 + "/liba.so", d3 + "/libb.so"], "aarch64 what-if searches: %s" % found)
    check(t, (4, a + "/no-view/liba.so") in searches(segs_all(d)[0].records) if segs_all(d) else False,
          "aarch64 what-if: the replayed candidate is not recorded")


# ---------------------------------------------------------------- what-if

def whatif_map(names, entries):
    """The map file's bytes (audit-lib/README.md, "What-if"); an entry is (requester, name, path[, steps])."""
    b = b"LPWHATIF2\0" + b"".join(n.encode() + b"\0" for n in names) + b"\0"
    for e in entries:
        r, n, p = e[:3]
        steps = e[3] if len(e) > 3 else []
        b += r.encode() + b"\0" + n.encode() + b"\0" + p.encode() + b"\0" + b"".join(x.encode() + b"\0" for x in steps) + b"\0"
    return b


def images(d, test):
    """[(IMAGE name, records)] of every image recorded in d, in start order."""
    by_pid = validate_dir(test, d)
    segs = sorted((s for ss in by_pid.values() for s in ss), key=lambda s: (s.image_start_ns, s.segment))
    return [(s.records[0]["name"], s.records) for s in segs if s.segment == 0 and s.records]


def searches(records):
    return [(r["flag"], r["name"]) for r in records if r["kind"] == lpa.OBJSEARCH]


def opens(records):
    return [r["name"] for r in records if r["kind"] == lpa.OBJOPEN]


def test_whatif(so):
    t = "what-if"
    prog = os.path.join(T, "wi_prog")
    plain = run([prog])
    d = fresh_dir(t + "-base")
    base = run([prog], audit=so, audit_dir=d)
    same_run_result(t, plain, base)
    imgs = images(d, t)
    if not check(t, len(imgs) == 3 and imgs[0][0] == prog, "baseline images: %s" % [i[0] for i in imgs]):
        return
    base_main, base_child = imgs[0][1], imgs[1][1]
    libc = [p for p in opens(base_main) if os.path.basename(p) == "libc.so.6"]
    if not check(t, libc, "no libc.so.6 among %s" % opens(base_main)):
        return
    liba, libb = os.path.join(T, "d2", "liba.so"), os.path.join(T, "d3", "libb.so")
    # libb.so only for the main program (""), a decoy for an object that asks for nothing.
    # The program as executed (AT_EXECFN); a program of the same file name elsewhere is not answered.
    good = whatif_map(["/elsewhere/wi_prog", prog], [("/no/such/requester", "liba.so", "/no/such/liba.so"),
                                             ("*", "liba.so", liba), ("", "libb.so", libb), ("*", "libc.so.6", libc[0])])
    mapfile = write(os.path.join(T, "whatif.map"), "")
    with open(mapfile, "wb") as f:
        f.write(good)
    d = fresh_dir(t)
    got = run([prog], audit=so, audit_dir=d, extra_env={"LOADPROBE_WHATIF": mapfile})
    same_run_result(t, plain, got)
    imgs = images(d, t)
    if not check(t, len(imgs) == 3, "what-if images: %s" % [i[0] for i in imgs]):
        return
    main, child = imgs[0][1], imgs[1][1]
    check(t, searches(main) == [(1, liba), (1, libb), (1, libc[0])],
          "the program's searches are not the answers: %s" % searches(main))
    check(t, opens(main) == opens(base_main), "objects %s, baseline %s" % (opens(main), opens(base_main)))
    check(t, searches(child) == searches(base_child) and (1, "libc.so.6") in searches(child),
          "the child (%s) was answered: %s" % (imgs[1][0], searches(child)))
    # Answering without recording: LD_DEBUG shows no candidate for the answered names.
    trying, finds = ld_debug([prog], audit=so, env={"LOADPROBE_WHATIF": mapfile})
    check(t, not [p for _, p in trying if os.path.basename(p) in ("liba.so", "libb.so")] and "liba.so" not in finds,
          "without LOADPROBE_AUDIT_DIR the names were still searched: %s" % trying[:5])
    info("what-if: %d searches recorded without the map, %d with it; the child's kept" % (len(searches(base_main)), len(searches(main))))
    test_whatif_crafted(so, prog, plain, searches(base_main), good)
    # The same file name in another directory (a child "tool" of a program "tool") is not this program.
    other = os.path.join(T, "wi-other")
    os.makedirs(other, exist_ok=True)
    twin = os.path.join(other, "wi_prog")
    shutil.copy(prog, twin)
    d = fresh_dir(t + "-twin")
    run([twin], audit=so, audit_dir=d, extra_env={"LOADPROBE_WHATIF": mapfile})
    twin_main = images(d, t)[0][1]
    check(t, searches(twin_main)[:1] == [(1, "liba.so")], "a program of the same name elsewhere was answered: %s" % searches(twin_main)[:3])


def test_whatif_replay(so):
    """An entry's steps: the fixed program's failed lookups, made before the answer, as ld.so makes them (strace)."""
    t = "what-if replayed lookups"
    prog = os.path.join(T, "wi_prog")
    plain = run([prog])
    base = strace_calls([prog], {"LD_AUDIT": so}, first_process_only=True)
    libc = [re.search(r'"([^"]*libc\.so\.6)"', c).group(1) for c in base if 'libc.so.6"' in c and c.startswith("openat(") and "= 3" in c]
    if not check(t, libc, "no libc.so.6 opened in %s" % base[:20]):
        return
    liba = os.path.join(T, "d2", "liba.so")
    view = os.path.join(T, "wi-view")  # not there: the view a fix would make
    hw = view + "/glibc-hwcaps/x86-64-v3"
    mapfile = os.path.join(T, "replay.map")
    with open(mapfile, "wb") as f:
        f.write(whatif_map([prog], [
            ("*", "liba.so", liba, ["o04" + hw + "/liba.so", "s00" + hw, "o04" + view + "/liba.so", "h04"]),
            # The cache step twice: ld.so reads its cache once per image, so does the replay.
            ("*", "libc.so.6", libc[0], ["o04" + view + "/libc.so.6", "c00/etc/ld.so.cache", "c00/etc/ld.so.cache", "h08"])]))
    d = fresh_dir(t)
    env = {"LD_AUDIT": so, "LOADPROBE_AUDIT_DIR": d, "LOADPROBE_WHATIF": mapfile}
    got = run([prog], audit=so, audit_dir=d, extra_env={"LOADPROBE_WHATIF": mapfile})
    same_run_result(t, plain, got)
    main = images(d, t)[0][1]
    want = [(1, liba), (4, hw + "/liba.so"), (4, view + "/liba.so"), (4, liba)]
    check(t, searches(main)[:4] == want, "liba.so's records: %s, want %s" % (searches(main)[:4], want))
    check(t, (8, libc[0]) in searches(main) and (4, view + "/libc.so.6") in searches(main), "libc.so.6's records: %s" % searches(main))
    calls = strace_calls([prog], env, first_process_only=True)
    # The replayed calls read exactly as ld.so's own: its miss of d1/liba.so in the baseline, its cache read.
    miss = [c for c in base if c.startswith('openat(AT_FDCWD, "%s/liba.so"' % os.path.join(T, "d1"))]
    if not check(t, miss, "no miss of d1/liba.so in the baseline"):
        return
    same_as_ldso = lambda path: miss[0].replace(os.path.join(T, "d1") + "/liba.so", path)
    i = calls.index(same_as_ldso(hw + "/liba.so")) if same_as_ldso(hw + "/liba.so") in calls else -1
    if check(t, i >= 0, "no %s in %s" % (same_as_ldso(hw + "/liba.so"), calls)):
        check(t, calls[i + 1].startswith('newfstatat(AT_FDCWD, "%s", ' % hw) and calls[i + 1].endswith("ENOENT (No such file or directory)"),
              "after the hwcaps miss: %s" % calls[i + 1])
        check(t, calls[i + 2] == same_as_ldso(view + "/liba.so"), "then: %s" % calls[i + 2])
        check(t, calls[i + 3].startswith('openat(AT_FDCWD, "%s", O_RDONLY|O_CLOEXEC) = 3' % liba), "then the answer: %s" % calls[i + 3])
    cache = [c for c in calls if '"/etc/ld.so.cache"' in c]
    base_cache = [c for c in base if '"/etc/ld.so.cache"' in c]
    check(t, len(cache) == 1 and [re.sub(r"= \d+", "", c) for c in cache] == [re.sub(r"= \d+", "", c) for c in base_cache[:1]],
          "ld.so.cache opened %s, ld.so opens it as %s" % (cache, base_cache))
    j = calls.index(cache[0]) if cache else 0
    check(t, cache and calls[j - 1] == same_as_ldso(view + "/libc.so.6") and re.match(r'newfstatat\(\d+, "", .*AT_EMPTY_PATH\) = 0', calls[j + 1]),
          "around the cache read: %s" % calls[j - 1:j + 3])
    info("what-if replay: %d calls with the map, %d without" % (len(calls), len(base)))
    # An open step that opens (a file the fixed program skips): ld.so reads its header and closes it.
    skipped = os.path.join(T, "src", "a.c")
    with open(mapfile, "wb") as f:
        f.write(whatif_map([prog], [("*", "liba.so", liba, ["o04" + skipped, "h04"])]))
    calls = strace_calls([prog], env, first_process_only=True)
    k = next((i for i, c in enumerate(calls) if c.startswith('openat(AT_FDCWD, "%s", O_RDONLY|O_CLOEXEC) = ' % skipped)), -1)
    if check(t, k >= 0, "the open step's file was not opened: %s" % calls):
        fd = calls[k].rsplit("= ", 1)[1]
        check(t, re.match(r"read\(%s, .*, 832\) = " % fd, calls[k + 1]) and re.match(r"close\(%s\)\s+= 0$" % fd, calls[k + 2]),
              "after an open step that opens: %s (ld.so: read 832 bytes, close)" % calls[k + 1:k + 3])
    # ld.so has read its cache (libm, before liba): the cache step is not made again.
    cprog = os.path.join(T, "wi_cache")
    with open(mapfile, "wb") as f:
        f.write(whatif_map([cprog], [("*", "liba.so", liba, ["c00/etc/ld.so.cache", "h04"])]))
    calls = strace_calls([cprog], env, first_process_only=True)
    reads = [c for c in calls if '"/etc/ld.so.cache"' in c]
    check(t, len(reads) == 1, "ld.so.cache opened %d times after ld.so read it itself: %s" % (len(reads), reads))
    check(t, any(c.startswith('openat(AT_FDCWD, "%s", ' % liba) and "= 3" in c for c in calls), "liba.so not answered in wi_cache")


def test_whatif_crafted(so, prog, plain, expected, good):
    """Maps that must leave what-if off: the program searches as it always does."""
    t = "what-if crafted maps"
    entry = good[good.index(b"\0\0") + 2:]
    many = b"LPWHATIF2\0" + prog.encode() + b"\0\0" + b"*\0libz.so\0/z\0\0" * (65536 + 1)
    stepped = lambda step: whatif_map([prog], [("*", "liba.so", os.path.join(T, "d2", "liba.so"), [step, "h04"])])
    maps = {
        "empty": b"", "magic only": b"LPWHATIF2", "bad magic": good.replace(b"LPWHATIF2", b"LPWHATIF1", 1),
        "no program names end": b"LPWHATIF2\0wi_prog", "cut in an entry": good[:-3],
        "steps not ended": good[:-1], "unknown step": stepped("x04/tmp/x"), "step flag not hex": stepped("o4g/tmp/x"),
        "open step without a path": stepped("o04"), "answer step with a path": stepped("h04/tmp/x"),
        "cut after the name": good[:len(good) - len(good.split(b"\0")[-2]) - 1],
        "not this program": good.replace(b"wi_prog\0", b"wi_prof\0"),
        "relative path": good.replace(os.path.join(T, "d2").encode() + b"/", b"d2/", 1),
        "name with a slash": good.replace(b"\0liba.so\0" + os.path.join(T, "d2").encode(), b"\0x/liba.so\0" + os.path.join(T, "d2").encode(), 1),
        "too many entries": many, "too many names": b"LPWHATIF2\0" + b"n\0" * 100 + prog.encode() + b"\0\0" + entry,
        "garbage": bytes((i * 131 + 7) % 256 for i in range(5000)),
        "zeros": b"\0" * 4096,
    }
    for name, data in maps.items():
        f = os.path.join(T, "crafted.map")
        with open(f, "wb") as out:
            out.write(data)
        check_crafted(t, so, prog, plain, expected, name, f)
    os.mkfifo(os.path.join(T, "crafted.fifo"))
    for name, f in (("missing file", os.path.join(T, "no-such.map")), ("directory", T),
                    ("FIFO", os.path.join(T, "crafted.fifo")), ("/dev/zero", "/dev/zero")):
        check_crafted(t, so, prog, plain, expected, name, f)


def check_crafted(t, so, prog, plain, expected, name, f):
    d = fresh_dir("crafted")
    try:
        got = run([prog], audit=so, audit_dir=d, extra_env={"LOADPROBE_WHATIF": f}, timeout=20)
    except subprocess.TimeoutExpired:
        fail(t, "%s: the program hung" % name)
        return
    check(t, got.returncode == plain.returncode and got.stdout == plain.stdout,
          "%s: the program ran differently (status %d, %r)" % (name, got.returncode, got.stdout))
    imgs = images(d, t)
    check(t, imgs and searches(imgs[0][1]) == expected, "%s: the searches changed" % name)


def main():
    global T
    if len(sys.argv) != 2:
        print("usage: selftest.py path/to/libloadprobe-audit.so", file=sys.stderr)
        return 2
    so = os.path.abspath(sys.argv[1])
    if not os.path.isfile(so):
        print("selftest: %s: no such file" % so, file=sys.stderr)
        return 2
    T = tempfile.mkdtemp(prefix="lp-audit-selftest-")
    print("selftest: %s (work dir %s)" % (so, T), flush=True)
    try:
        build_fixtures()
    except RuntimeError as e:
        print("selftest: cannot build fixtures: %s" % e, file=sys.stderr)
        return 1
    tests = [
        ("elf", lambda: test_elf(so)),
        ("search-order RPATH", lambda: test_link_time(so, os.path.join(T, "m_rpath"), "RPATH")),
        ("search-order RUNPATH", lambda: test_link_time(so, os.path.join(T, "m_runpath"), "RUNPATH")),
        ("search-order LD_LIBRARY_PATH", lambda: test_search_order(
            so, [os.path.join(T, "m_plain")], "LD_LIBRARY_PATH", expect_flags=(0x02,),
            env={"LD_LIBRARY_PATH": ":".join(os.path.join(T, d) for d in ("d1", "d2", "d3"))})),
        ("search-order default dirs (failed dlopen)", lambda: test_search_order(
            so, [os.path.join(T, "dlopen_missing")], "DEFAULT", expect_flags=(0x40,))),
        ("dlopen", lambda: test_dlopen(so)),
        ("sigkill", lambda: test_kill(so)),
        ("fork/vfork/spawn/exec", lambda: test_fork_exec(so)),
        ("threads, roll-over, fork from threads", lambda: test_stress(so)),
        ("clock", lambda: test_clock(so)),
        ("inert and edge cases", lambda: test_inert(so)),
        ("two audit libraries", lambda: test_coexist(so)),
        ("system calls", lambda: test_strace(so)),
        ("full file system", lambda: test_enospc(so)),
        ("what-if maps", lambda: test_whatif(so)),
        ("what-if replayed lookups", lambda: test_whatif_replay(so)),
        ("aarch64 under qemu-user", test_aarch64),
    ]
    for name, fn in tests:
        before, skipped = len(FAILURES), len(SKIPS)
        print("test: %s" % name, flush=True)
        try:
            fn()
        except Exception as e:  # a crash of the test is a failure, not a pass
            fail(name, "exception: %r" % e)
        if len(FAILURES) != before:
            print("  FAILED", flush=True)
        elif len(SKIPS) == skipped:
            print("  ok", flush=True)
    if FAILURES:
        print("\nselftest: %d failure(s); work dir kept: %s" % (len(FAILURES), T))
        for f in FAILURES:
            print("  " + f)
        return 1
    if not os.environ.get("LP_SELFTEST_KEEP"):
        shutil.rmtree(T, ignore_errors=True)
    print("\nselftest: all passed" + (" (%d skipped: %s)" % (len(SKIPS), ", ".join(SKIPS)) if SKIPS else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
