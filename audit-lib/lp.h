/*
 * Internal declarations of the loadprobe audit library (see README.md).
 */
#ifndef LP_H
#define LP_H

#include "lp_sys.h"
#include "../Sources/CAudit/include/loadprobe_wire.h"

/* ---- configuration and per-image data: ordinary memory (inherited by fork) ---- */

#define LP_PATH_MAX 4096

typedef int (*lp_clock_fn)(int clk, struct lp_timespec *ts);

struct lp_config {
    int active;                 /* constructor found LOADPROBE_AUDIT_DIR, non-empty */
    int inert;                  /* a failure happened: record nothing more */
    int ptrace;                 /* LOADPROBE_PTRACE == "1" */
    unsigned int la_version;    /* what ld.so offered */
    lp_clock_fn clock;          /* vDSO clock_gettime, or 0: raw system call */
    unsigned int clock_source;  /* enum lp_clock_source */
    unsigned long pagesize;     /* AT_PAGESZ */
    lp_u64 image_start_ns;      /* CLOCK_MONOTONIC at the constructor */
    int tsc;                    /* time from the TSC between clock reads (see lp_now) */
    lp_u64 tsc_base, ns_base;   /* the first (TSC, clock) pair: the rate counts from it */
    lp_u64 tsc_anchor, ns_anchor; /* the latest pair */
    lp_u64 tsc_mult;            /* ns per TSC tick << 32; 0: not known yet */
    unsigned int tsc_cpu;       /* the CPU (TSC_AUX) those pairs were read on */
    lp_u64 image_id;            /* id of the image this process currently writes as */
    lp_u64 dirlen;
    lp_u64 argv0len;
    char dir[LP_PATH_MAX];      /* LOADPROBE_AUDIT_DIR (made absolute at la_version) */
    char argv0[LP_PATH_MAX];    /* copy of argv[0] (a program may overwrite its argv area) */
    char whatif[LP_PATH_MAX];   /* LOADPROBE_WHATIF: the map file ("" = none) */
    char execname[LP_PATH_MAX]; /* AT_EXECFN, the path execve was given ("" = unknown or too long) */
    char path[LP_PATH_MAX + 64];/* scratch for the segment file name */
    char prev[LP_PATH_MAX * 4]; /* the previous record's path (LP_S.prevlen bytes; under the
                                   lock): the next one is coded against it */
};

extern struct lp_config lp_cfg LP_HIDDEN;

/* ---- per-process state: one page marked MADV_WIPEONFORK ----
 * A forked child finds it zeroed (cur == 0) and sets itself up again. It lives at a
 * page-aligned, page-sized array in our own .bss, so the hot path reaches `cur` with a
 * single PC-relative load. */

#define LP_MAX_SEGS 64

struct lp_seg {
    char *base;        /* the mapping; struct lp_audit_header at offset 0 */
    lp_u64 end;        /* header_size + capacity: no record may end past this */
    lp_u64 populated;  /* bytes from base whose pages are known to be backed */
    lp_u64 mapped;     /* length of the mapping */
    lp_u32 segment;
    lp_u32 unused;
};

struct lp_state {
    struct lp_seg *cur;   /* current segment, 0 = not set up in this process (atomic) */
    int pid;              /* cached getpid() */
    lp_u32 seq;           /* per-process record counter (under the lock) */
    int lock;             /* serialises every record, segment creation, page population */
    lp_u32 next_n;        /* next file number n to try */
    lp_u32 nsegs;
    lp_u32 forked;
    /* encoder state of the current segment (under the lock) */
    lp_u64 prevlen;       /* length of the previous path (lp_cfg.prev), 0 at a segment's start */
    lp_u64 last_t;        /* time of the previous record (the segment's time base at first) */
    struct lp_seg segs[LP_MAX_SEGS];
};

#if defined(__aarch64__)
#define LP_STATE_ALIGN 65536 /* largest aarch64 page size */
#else
#define LP_STATE_ALIGN 4096
#endif

_Static_assert(sizeof(struct lp_state) <= 4096, "lp_state must fit the smallest page");

union lp_state_page {
    struct lp_state s;
    char bytes[LP_STATE_ALIGN];
};
extern union lp_state_page lp_state_page LP_HIDDEN;
#define LP_S (lp_state_page.s)

/* ---- clock ---- */
static inline lp_u64 lp_clock_ns(void)
{
    struct lp_timespec ts;
    long r;
    if (LP_LIKELY(lp_cfg.clock != 0))
        r = lp_cfg.clock(LP_CLOCK_MONOTONIC, &ts);
    else
        r = lp_clock_gettime_syscall(LP_CLOCK_MONOTONIC, &ts);
    if (LP_UNLIKELY(r != 0)) return 0;
    return (lp_u64)ts.tv_sec * 1000000000ull + (lp_u64)ts.tv_nsec;
}

/* CLOCK_MONOTONIC, in ns. On x86-64 with an invariant TSC, between clock reads at most
 * LP_TSC_SPAN ticks (~1.5 ms) apart the time is the last read plus the ticks since,
 * at the rate measured from the first read: a TSC read and a multiply instead of the
 * vDSO's ordered TSC read, sequence lock and conversion (about a third of the library's
 * time per record before). RDTSCP also names the CPU: on another CPU than the anchor's
 * (whose TSC might be offset) the clock is read again and the rate measured afresh.
 * Called with the writer lock held, or single-threaded. */
#define LP_TSC_SPAN (1ull << 22)
#define LP_TSC_MIN_SPAN (1ull << 20)
#if defined(__x86_64__)
LP_HIDDEN lp_u64 lp_now_anchor(void);
static inline lp_u64 lp_rdtscp(unsigned int *cpu)
{
    unsigned lo, hi, aux;
    __asm__ volatile("rdtscp" : "=a"(lo), "=d"(hi), "=c"(aux));
    *cpu = aux;
    return (lp_u64)hi << 32 | lo;
}
#endif
static inline lp_u64 lp_now(void)
{
#if defined(__x86_64__)
    if (LP_LIKELY(lp_cfg.tsc)) {
        unsigned int cpu;
        lp_u64 tsc = lp_rdtscp(&cpu);
        lp_u64 d = tsc - lp_cfg.tsc_anchor; /* a TSC behind the anchor wraps: slow path */
        if (LP_LIKELY(d < LP_TSC_SPAN && lp_cfg.tsc_mult != 0 && cpu == lp_cfg.tsc_cpu))
            return lp_cfg.ns_anchor + ((d * lp_cfg.tsc_mult) >> 32);
        return lp_now_anchor();
    }
#endif
    return lp_clock_ns();
}

/* vdso.c: address of `name` (with version `version`, if the vDSO is versioned) in the
 * vDSO image at `base`, or 0. */
LP_HIDDEN void *lp_vdso_sym(const void *base, const char *name, const char *version);

/* whatif.c: `record --what-if` (README.md, "What-if") */
extern int lp_whatif_on LP_HIDDEN; /* a map is loaded and names this program */
LP_HIDDEN int lp_whatif_load(void); /* at la_version: 0 = answering from now on */
extern int lp_whatif_cache_read LP_HIDDEN; /* ld.so.cache read (by ld.so or a replay) */
struct lp_whatif_entry;
/* The entry answering `name` asked for by `requester` (an l_name; 0: not known), or 0. */
LP_HIDDEN const struct lp_whatif_entry *lp_whatif_find(const char *name, const char *requester);
LP_HIDDEN const char *lp_whatif_path(const struct lp_whatif_entry *e);
/* Makes the fixed program's failed lookups for the entry (its steps), recording
 * the candidates as ld.so would; then ld.so opens the answer. */
LP_HIDDEN void lp_whatif_replay(const struct lp_whatif_entry *e);

/* writer.c */
LP_HIDDEN int lp_writer_start(void);     /* at la_version: 0 ok, -1 = stay inert */
LP_HIDDEN void lp_emit(unsigned kind, unsigned flag, int lmid, const char *name);

#endif
