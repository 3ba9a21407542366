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
    lp_u64 image_id;            /* id of the image this process currently writes as */
    lp_u64 dirlen;
    lp_u64 argv0len;
    char dir[LP_PATH_MAX];      /* LOADPROBE_AUDIT_DIR (made absolute at la_version) */
    char argv0[LP_PATH_MAX];    /* copy of argv[0] (a program may overwrite its argv area) */
    char path[LP_PATH_MAX + 64];/* scratch for the segment file name */
    struct lp_ient *table;      /* string interning table (anonymous, wipe-on-fork), or 0 */
    struct lp_idinfo *ids[2];   /* directories, names: in the same mapping after the table */
    char *arena;                /* and then the arena */
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

/* String interning (see writer.c): open addressing, linear probing. An entry belongs to
 * the current segment only when its `gen` equals lp_state.gen, so starting a segment
 * empties the table without touching it; a forked child finds it zeroed. */
#define LP_TABLE_SLOTS 32768u                   /* power of two */
#define LP_TABLE_MAX_FILL (LP_TABLE_SLOTS / 4 * 3)
#define LP_INTERN_MAX_LEN 16383u                /* longer strings are always written in full */
struct lp_ient {
    lp_u32 gen;   /* lp_state.gen of the segment the entry belongs to */
    lp_u32 hash;  /* upper bits of the 64-bit hash (role included) */
    lp_u32 off;   /* offset of a copy of the string's bytes in the arena */
    lp_u32 meta;  /* id << 16 | role << 15 | len (len <= LP_INTERN_MAX_LEN) */
};
/* Per id of the current segment (ids below lp_state.ndirs / nnames are valid), for the
 * prediction that skips hashing: ld.so tries the same name in one directory after the
 * other, and the directories of a search path in the same order every time. */
#define LP_PREDICT_IDS 32768u
struct lp_idinfo {
    lp_u32 off;   /* offset of a copy of the string's bytes in the arena; ~0: none */
    lp_u32 len;
    lp_u32 succ;  /* 1 + the id that followed this one last time (same role), 0: none */
};
/* Copies of the interned strings, packed (comparing against them, rather than against
 * their definitions scattered through the segment file, stays in cache and TLB). */
#define LP_ARENA_BYTES (4u << 20)
/* One anonymous mapping: the table, the id arrays of directories and names, the arena. */
#define LP_INTERN_BYTES (LP_TABLE_SLOTS * sizeof(struct lp_ient) + \
                         2 * LP_PREDICT_IDS * sizeof(struct lp_idinfo) + LP_ARENA_BYTES)

struct lp_state {
    struct lp_seg *cur;   /* current segment, 0 = not set up in this process (atomic) */
    int pid;              /* cached getpid() */
    lp_u32 seq;           /* per-process record counter (under the lock) */
    int lock;             /* serialises every record, segment creation, page population */
    lp_u32 next_n;        /* next file number n to try */
    lp_u32 nsegs;
    lp_u32 forked;
    /* encoder state of the current segment (under the lock) */
    lp_u32 gen;           /* interning generation: one per segment, from 1 */
    lp_u32 ndirs;         /* directory ids handed out in the current segment */
    lp_u32 nnames;        /* name ids handed out in the current segment */
    lp_u32 fill;          /* table entries of this generation */
    lp_u32 last[2];       /* 1 + the directory / name id of the previous reference, 0: none */
    lp_u32 arena_used;    /* bytes of the arena holding this segment's strings */
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
static inline lp_u64 lp_now(void)
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

/* vdso.c: address of `name` (with version `version`, if the vDSO is versioned) in the
 * vDSO image at `base`, or 0. */
LP_HIDDEN void *lp_vdso_sym(const void *base, const char *name, const char *version);

/* writer.c */
LP_HIDDEN int lp_writer_start(void);     /* at la_version: 0 ok, -1 = stay inert */
LP_HIDDEN void lp_emit(unsigned kind, unsigned flag, int lmid, const char *name);

#endif
