/*
 * loadprobe rtld-audit library (LD_AUDIT): constructor and la_* hooks.
 * Freestanding: no libc, no DT_NEEDED; see README.md.
 */
#include "lp.h"

/* The public head of glibc's struct link_map (<link.h>); the rest is private. */
struct lp_link_map {
    lp_uptr l_addr;
    char *l_name;
    void *l_ld;
    struct lp_link_map *l_next, *l_prev;
};

/* Whether the CPU has RDTSCP (CPUID 0x80000001, EDX bit 27) and says its TSC runs at a
 * constant rate in every power state (CPUID 0x80000007, EDX bit 8: Linux's constant_tsc
 * + nonstop_tsc). */
static int lp_invariant_tsc(void)
{
#if defined(__x86_64__)
    unsigned a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000000u), "c"(0u));
    if (a < 0x80000007u) return 0;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000001u), "c"(0u));
    if (!(d >> 27 & 1)) return 0;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000007u), "c"(0u));
    return (int)(d >> 8 & 1);
#else
    return 0;
#endif
}

/* lp_now's slow path: reads the clock between two TSC reads; when those are close and on
 * one CPU (nothing preempted or moved us in between), makes (their midpoint, the clock)
 * the anchor and, once the first such pair on this CPU is LP_TSC_MIN_SPAN ticks back,
 * measures the TSC's rate from it. A pair that took too long is not used: the next call
 * reads the clock again. */
#if defined(__x86_64__)
#define LP_TSC_PAIR_MAX (1ull << 12)
lp_u64 lp_now_anchor(void)
{
    lp_u64 ns = 0;
    for (int tries = 0; tries < 3; tries++) {
        unsigned int c1, c2;
        lp_u64 t1 = lp_rdtscp(&c1);
        ns = lp_clock_ns();
        lp_u64 t2 = lp_rdtscp(&c2);
        if (ns == 0) return 0;
        if (c1 != c2 || t2 - t1 >= LP_TSC_PAIR_MAX) continue;
        lp_u64 t = t1 + (t2 - t1) / 2;
        if (lp_cfg.tsc_base == 0 || c1 != lp_cfg.tsc_cpu || t <= lp_cfg.tsc_base || ns <= lp_cfg.ns_base) {
            lp_cfg.tsc_base = t;
            lp_cfg.ns_base = ns;
            lp_cfg.tsc_mult = 0;
            lp_cfg.tsc_cpu = c1;
        } else if (t - lp_cfg.tsc_base >= LP_TSC_MIN_SPAN) {
            lp_u64 dt = t - lp_cfg.tsc_base, dn = ns - lp_cfg.ns_base;
            while (dn >= (1ull << 31)) { dn >>= 1; dt >>= 1; } /* dn << 32 must fit */
            lp_u64 mult = dt ? (dn << 32) / dt : 0;
            /* above 2^33 (a TSC under 0.5 GHz) d * mult could overflow: keep the clock */
            lp_cfg.tsc_mult = mult < (1ull << 33) ? mult : 0;
        }
        lp_cfg.tsc_anchor = t;
        lp_cfg.ns_anchor = ns;
        break;
    }
    return ns;
}
#endif

/* Copies what `record --what-if` needs (the map's path, the path the kernel
 * executed, AT_EXECFN) before the program can overwrite its environment. Memory only. */
static void lp_note_whatif(const char *whatif, const char *execfn)
{
    if (!whatif || !whatif[0] || !execfn) return;
    lp_u64 n = lp_strlen(whatif);
    if (n >= sizeof lp_cfg.whatif) return;
    lp_u64 b = lp_strlen(execfn);
    if (b == 0 || b >= sizeof lp_cfg.execname) return;
    for (lp_u64 i = 0; i <= b; i++) lp_cfg.execname[i] = execfn[i];
    for (lp_u64 i = 0; i <= n; i++) lp_cfg.whatif[i] = whatif[i];
}

/* glibc calls an audit module's constructors from dlmopen with (argc, argv, environ),
 * before la_version. No system calls here: everything is read from memory. */
__attribute__((constructor)) static void lp_constructor(int argc, char **argv, char **envp)
{
    if (!envp) return;
    const char *dir = 0, *whatif = 0;
    char **e = envp;
    for (; *e; e++) {
        const char *v;
        if ((v = lp_after_prefix(*e, LP_ENV_AUDIT_DIR "=")) != 0)
            dir = v;
        else if ((v = lp_after_prefix(*e, LP_ENV_PTRACE "=")) != 0)
            lp_cfg.ptrace = v[0] == '1' && v[1] == 0;
        else if ((v = lp_after_prefix(*e, LP_ENV_WHATIF "=")) != 0)
            whatif = v;
    }
    /* The auxiliary vector follows the environment's terminating NULL. */
    const void *vdso = 0;
    const char *execfn = 0;
    lp_cfg.pagesize = 4096;
    for (lp_uptr *av = (lp_uptr *)(e + 1); av[0] != LP_AT_NULL; av += 2) {
        if (av[0] == LP_AT_SYSINFO_EHDR) vdso = (const void *)av[1];
        else if (av[0] == LP_AT_PAGESZ) lp_cfg.pagesize = av[1];
        else if (av[0] == LP_AT_EXECFN) execfn = (const char *)av[1];
    }
    lp_note_whatif(whatif, execfn);
#if defined(__x86_64__)
    lp_cfg.clock = (lp_clock_fn)lp_vdso_sym(vdso, "__vdso_clock_gettime", "LINUX_2.6");
#else
    lp_cfg.clock = (lp_clock_fn)lp_vdso_sym(vdso, "__kernel_clock_gettime", "LINUX_2.6.39");
#endif
    if (lp_cfg.clock) {
        struct lp_timespec ts;
        if (lp_cfg.clock(LP_CLOCK_MONOTONIC, &ts) != 0) lp_cfg.clock = 0;
    }
    lp_cfg.clock_source = lp_cfg.clock ? LP_CLOCK_VDSO : LP_CLOCK_SYSCALL;
    if (lp_cfg.clock && lp_invariant_tsc()) {
        lp_cfg.tsc = 1;
        lp_cfg.clock_source = LP_CLOCK_TSC;
    }
    lp_cfg.image_start_ns = lp_now();

    if (argc > 0 && argv && argv[0]) {
        lp_u64 n = lp_strlen(argv[0]);
        if (n >= LP_PATH_MAX) n = LP_PATH_MAX - 1;
        for (lp_u64 i = 0; i < n; i++) lp_cfg.argv0[i] = argv[0][i];
        lp_cfg.argv0[n] = 0;
        lp_cfg.argv0len = n;
    }
    if (!dir || !dir[0]) return; /* inert: la_version will return 0 */
    lp_u64 n = lp_strlen(dir);
    if (n >= LP_PATH_MAX / 2) return; /* leave room for a cwd prefix and the file name */
    for (lp_u64 i = 0; i <= n; i++) lp_cfg.dir[i] = dir[i];
    lp_cfg.dirlen = n;
    lp_cfg.active = 1;
}

LP_EXPORT unsigned int la_version(unsigned int version)
{
    /* The map first: answering does not depend on recording. */
    int answering = lp_whatif_load() == 0;
    if (!lp_cfg.active) return answering ? version : 0;
    lp_cfg.la_version = version;
    if (lp_writer_start() != 0) {
        lp_cfg.inert = 1;
        if (!lp_cfg.ptrace && !answering) return 0; /* ld.so then unloads us, silently */
    }
    /* Under a loadprobe tracer we stay loaded even when recording failed, so that
     * the end of the start-up load is still signalled to it; the hooks then record nothing. */
    return version;
}

LP_EXPORT char *la_objsearch(const char *name, lp_uptr *cookie, unsigned int flag)
{
    /* record --what-if: a bare name the fixed program would not search for is
     * answered with its path, and recorded as that path (the fixed program asks
     * for it); ld.so then opens it at once and keeps the bare name as one of the
     * object's names (elf/dl-load.c: origname), so later requests match it. When
     * the fixed program still searches for the name (a view), its failed lookups
     * are made first, recorded as its candidates. */
    if (LP_UNLIKELY(lp_whatif_on)) {
        if (flag == LP_LA_SER_ORIG) {
            const struct lp_whatif_entry *e = lp_whatif_find(name, cookie ? (const char *)*cookie : 0);
            if (e) {
                const char *path = lp_whatif_path(e);
                lp_emit(LP_REC_OBJSEARCH, flag, 0, path);
                lp_whatif_replay(e);
                return (char *)path;
            }
        } else if (flag & (LP_LA_SER_CONFIG | LP_LA_SER_DEFAULT)) {
            lp_whatif_cache_read = 1; /* ld.so looked in its cache before this candidate */
        }
    }
    lp_emit(LP_REC_OBJSEARCH, flag, 0, name);
    return (char *)name;
}

LP_EXPORT unsigned int la_objopen(struct lp_link_map *map, long lmid, lp_uptr *cookie)
{
    const char *name = map ? map->l_name : 0;
    *cookie = (lp_uptr)name; /* la_objclose names the object from it */
    lp_emit(LP_REC_OBJOPEN, 0, (int)lmid, name);
    return 0; /* no symbol-binding audit: keeps PLT calls direct */
}

/* Whether the tracer has been told the start-up load is over (once per image). */
static int lp_load_signalled;

/* Tells a loadprobe tracer (the seccomp filter stops on this call; untraced it
 * is a harmless EBADF) that the start-up load is over: the tracer gives the
 * program its own CPU mask back, before any constructor runs and can read it
 * in /proc/self/status. */
static void lp_signal_tracer(void)
{
    if (!lp_cfg.ptrace || lp_load_signalled) return;
    lp_load_signalled = 1;
    lp_close(LP_PREINIT_MAGIC_FD);
}

LP_EXPORT void la_activity(lp_uptr *cookie, unsigned int flag)
{
    (void)cookie;
    lp_emit(LP_REC_ACTIVITY, flag, 0, 0);
    if (flag == 0 /* LA_ACT_CONSISTENT: the start-up load is done */) lp_signal_tracer();
    /* ld.so unmaps its cache when a load is done (_dl_unload_cache): the next load reads it again. */
    if (flag == 0) lp_whatif_cache_read = 0;
}

LP_EXPORT void la_preinit(lp_uptr *cookie)
{
    (void)cookie;
    lp_emit(LP_REC_PREINIT, 0, 0, 0);
    lp_signal_tracer(); /* when no consistent activity came first */
}

LP_EXPORT unsigned int la_objclose(lp_uptr *cookie)
{
    lp_emit(LP_REC_OBJCLOSE, 0, 0, (const char *)*cookie);
    return 0;
}

/* Build glue for the SwiftPM dynamic-library product (keep): the autolink entry turns
 * the toolchain's implicit -lswiftCore into an --as-needed no-op, and swiftrt.o's
 * references are satisfied locally, so the .so gets no DT_NEEDED. */
__asm__(".section .swift1_autolink_entries,\"e\"\n.asciz \"-Xlinker\"\n.asciz \"--as-needed\"\n.previous\n");
void swift_addNewDSOImage(const void *image) { (void)image; }
int _swift_backtrace_isThunkFunction(const char *n) { (void)n; return 0; }
