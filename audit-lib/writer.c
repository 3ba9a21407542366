/*
 * The record writer: segment files a-<pid>-<n>.lpa mapped MAP_SHARED, lock-free
 * reservation of record space, fork detection through a MADV_WIPEONFORK page.
 *
 * Hot path (lp_emit): one load of the current segment descriptor, the vDSO clock,
 * two atomic fetch-adds (seq, header.reserved), the stores of the record body and a
 * release store of `kind`. System calls happen only when a segment is set up, when
 * the next chunk of the segment is populated (MADV_POPULATE_WRITE, every 64 KiB..1 MiB)
 * and when a segment is full.
 */
#include "lp.h"

struct lp_config lp_cfg;
union lp_state_page lp_state_page __attribute__((aligned(LP_STATE_ALIGN)));

#if defined(__x86_64__)
#define LP_NR_unlinkat 263
#else
#define LP_NR_unlinkat 35
#endif

#define LP_FIRST_CHUNK (16u * 1024)
#define LP_MAX_CHUNK (2048u * 1024)
#ifndef LP_SMALL_REGION /* -D for experiments */
#define LP_SMALL_REGION (2048ull * 1024)
#endif
/* Capacity used when the kernel lacks MADV_POPULATE_WRITE (< 5.14): that many bytes are
 * fallocate'd up front so that a full disk can never turn a page fault into SIGBUS. */
#define LP_FALLOCATE_BYTES (8ull * 1024 * 1024)
#define LP_MAX_FILE_N 100000u
#define LP_LOCK_SPINS 200000

enum { POP_MADVISE = 0, POP_NONE = 1 };
static int populate_mode; /* POP_NONE once MADV_POPULATE_WRITE proved unavailable */

/* ---- small helpers ---- */

static char *put_str(char *p, const char *s)
{
    while (*s) *p++ = *s++;
    return p;
}

static char *put_uint(char *p, lp_u64 v)
{
    char tmp[24];
    int n = 0;
    do tmp[n++] = (char)('0' + v % 10), v /= 10; while (v);
    while (n) *p++ = tmp[--n];
    return p;
}

static int lock_state(void)
{
    for (int i = 0; i < LP_LOCK_SPINS; i++) {
        if (!lp_swap_acquire(&LP_S.lock, 1)) return 0;
        if (i > 16) lp_sched_yield();
    }
    return -1; /* give up on this record rather than hang the program */
}

static void unlock_state(void) { __atomic_store_n(&LP_S.lock, 0, __ATOMIC_RELEASE); }

/* Stops all recording in this process (and in children forked from now on). */
static void go_inert(void)
{
    lp_cfg.inert = 1;
    __atomic_store_n(&LP_S.cur, (struct lp_seg *)0, __ATOMIC_RELEASE);
}

static inline lp_u32 record_size(lp_u64 name_len)
{
    return (lp_u32)((sizeof(struct lp_audit_record) + name_len + 1 + 7) & ~7ull);
}

/* Writes one record into reserved space [start, start + size) of segment d. */
static inline void put_record(struct lp_seg *d, lp_u64 start, lp_u32 size, unsigned kind,
                              unsigned flag, int lmid, lp_u64 t, lp_u32 seq,
                              const char *name, lp_u64 len)
{
    struct lp_audit_record *r = (struct lp_audit_record *)(d->base + start);
    r->flag = (lp_u16)flag;
    r->size = size;
    r->time_ns = t;
    r->pid = LP_S.pid;
    r->lmid = lmid;
    r->name_len = (lp_u32)len;
    r->seq = seq;
    char *dst = (char *)(r + 1);
    for (lp_u64 i = 0; i < len; i++) dst[i] = name[i];
    dst[len] = 0; /* the padding after it is still zero: the file is new */
    __atomic_store_n(&r->kind, (lp_u16)kind, __ATOMIC_RELEASE);
}

/* Makes sure pages up to `end` of segment d are backed. Called with the lock free. */
static int populate_to(struct lp_seg *d, lp_u64 end)
{
    if (lock_state() < 0) return -1;
    int rc = 0;
    lp_u64 have = d->populated;
    while (have < end) {
        lp_u64 chunk = have < LP_FIRST_CHUNK ? LP_FIRST_CHUNK : have;
        if (chunk > LP_MAX_CHUNK) chunk = LP_MAX_CHUNK;
        lp_u64 want = have + chunk;
        if (want > d->mapped) want = d->mapped;
        if (want <= have) { rc = -1; break; }
        if (lp_madvise(d->base + have, want - have, LP_MADV_POPULATE_WRITE) != 0) {
            rc = -1;
            break;
        }
        have = want;
        __atomic_store_n(&d->populated, have, __ATOMIC_RELEASE);
    }
    unlock_state();
    if (rc < 0) go_inert();
    return rc;
}

/* Creates segment file number S.next_n.. for this process, maps it, writes its header.
 * Caller holds the lock (or is single-threaded). Returns the descriptor or 0. */
static struct lp_seg *new_segment(lp_u32 segno, int ppid, lp_u64 parent_image_id)
{
    struct lp_state *S = &LP_S;
    if (S->nsegs >= LP_MAX_SEGS) return 0;

    /* A file larger than RLIMIT_FSIZE would get us SIGXFSZ from ftruncate. */
    lp_u64 size = LP_AUDIT_SEGMENT_BYTES;
    struct lp_rlimit rl;
    if (lp_prlimit64(0, LP_RLIMIT_FSIZE, 0, &rl) == 0 && rl.cur != LP_RLIM_INFINITY &&
        rl.cur < size)
        size = rl.cur & ~(lp_u64)(lp_cfg.pagesize - 1);
    if (size < LP_FIRST_CHUNK) return 0;

    char *p = lp_cfg.path;
    p = put_str(p, lp_cfg.dir);
    p = put_str(p, "/a-");
    p = put_uint(p, (lp_u64)(unsigned)S->pid);
    *p++ = '-';
    char *num = p;
    long fd = -1;
    lp_u32 n = S->next_n;
    for (; n < LP_MAX_FILE_N; n++) {
        p = put_uint(num, n);
        p = put_str(p, ".lpa");
        *p = 0;
        fd = lp_openat(lp_cfg.path, LP_O_CREAT | LP_O_EXCL | LP_O_RDWR | LP_O_CLOEXEC, 0600);
        if (fd != -LP_EEXIST) break;
    }
    if (fd < 0) return 0;
    S->next_n = n + 1;

    char *base = 0;
    lp_u64 end = size, populated = 0;
    if (lp_ftruncate((int)fd, size) != 0) goto fail_file;
    long m = lp_mmap(0, size, LP_PROT_READ | LP_PROT_WRITE, LP_MAP_SHARED, (int)fd, 0);
    if (m < 0 && m > -4096) goto fail_file;
    base = (char *)m;
    /* Page-cache policy, measured on ext4 (Linux 6.18):
     * - the first LP_SMALL_REGION bytes: MADV_RANDOM, no read-ahead. Else the first write
     *   fault into a hole of the sparse file zero-fills a whole read-ahead window
     *   (~3.5 ms per fault) and that much of the file gets written back.
     * - beyond it (only processes with many records get there): MADV_HUGEPAGE, so the page
     *   cache uses large folios: populating costs ~2 us per 4 KiB instead of ~8 us.
     * Both are hints: errors (e.g. no THP in this kernel) are ignored. */
    if (size > LP_SMALL_REGION) {
        lp_madvise(base, LP_SMALL_REGION, LP_MADV_RANDOM);
        lp_madvise(base + LP_SMALL_REGION, size - LP_SMALL_REGION, LP_MADV_HUGEPAGE);
    } else {
        lp_madvise(base, size, LP_MADV_RANDOM);
    }

    if (populate_mode == POP_MADVISE) {
        long r = lp_madvise(base, LP_FIRST_CHUNK, LP_MADV_POPULATE_WRITE);
        if (r == 0) {
            populated = LP_FIRST_CHUNK;
        } else if (r == -LP_EINVAL) {
            populate_mode = POP_NONE; /* kernel < 5.14 */
        } else {
            goto fail_map; /* ENOSPC, EDQUOT, EIO, ...: pages cannot be backed */
        }
    }
    if (populate_mode == POP_NONE) {
        lp_u64 want = size < LP_FALLOCATE_BYTES ? size : LP_FALLOCATE_BYTES;
        long r = lp_fallocate((int)fd, 0, 0, want);
        if (r == 0) {
            end = populated = want;
        } else if (r == -LP_EOPNOTSUPP) {
            end = populated = size; /* the file system cannot reserve: trust it */
        } else {
            goto fail_map;
        }
    }
    lp_close((int)fd);

    struct lp_audit_header *h = (struct lp_audit_header *)base;
    h->version = LP_AUDIT_VERSION;
    h->header_size = LP_AUDIT_HEADER_SIZE;
    h->reserved = 0;
    h->capacity = end - LP_AUDIT_HEADER_SIZE;
    h->pid = S->pid;
    h->ppid = ppid;
    h->segment = segno;
    h->clock_source = lp_cfg.clock_source;
    h->image_start_ns = lp_cfg.image_start_ns;
    h->image_id = lp_cfg.image_id;
    h->forked = S->forked;
    h->la_version = lp_cfg.la_version;
    h->parent_image_id = parent_image_id;
    __atomic_thread_fence(__ATOMIC_RELEASE);
    for (int i = 0; i < 8; i++) ((volatile char *)h->magic)[i] = LP_AUDIT_MAGIC[i];

    struct lp_seg *d = &S->segs[S->nsegs++];
    d->base = base;
    d->end = end;
    d->populated = populated;
    d->mapped = size;
    d->segment = segno;
    return d;

fail_map:
    lp_munmap(base, size);
fail_file:
    lp_close((int)fd);
    lp_sc3(LP_NR_unlinkat, LP_AT_FDCWD, lp_cfg.path, 0);
    return 0;
}

/* First segment of an image (fresh image at la_version, or a forked child):
 * makes it and writes the LP_REC_IMAGE record, then publishes it. */
static struct lp_seg *start_image(int forked, lp_u64 parent_image_id)
{
    struct lp_state *S = &LP_S;
    S->pid = lp_getpid();
    S->forked = (lp_u32)forked;
    S->next_n = 0;
    S->nsegs = 0;
    S->seq = 0;
    int ppid = lp_getppid();
    if (forked) lp_cfg.image_start_ns = lp_now();
    lp_cfg.image_id = lp_cfg.image_start_ns ^ (lp_u64)(unsigned)S->pid;

    struct lp_seg *d = new_segment(0, ppid, parent_image_id);
    if (!d) return 0;
    lp_u32 size = record_size(lp_cfg.argv0len);
    lp_u64 off = lp_fetch_add64(&((struct lp_audit_header *)d->base)->reserved, size);
    put_record(d, LP_AUDIT_HEADER_SIZE + off, size, LP_REC_IMAGE, 0, 0, lp_now(),
               lp_fetch_add32(&S->seq, 1), lp_cfg.argv0,
               lp_cfg.argv0len);
    __atomic_store_n(&S->cur, d, __ATOMIC_RELEASE);
    return d;
}

/* Called at la_version, single-threaded, after the constructor found a directory. */
int lp_writer_start(void)
{
    unsigned long ps = lp_cfg.pagesize;
    if (ps == 0 || ps > LP_STATE_ALIGN || (ps & (ps - 1))) return -1;
    /* Our .bss page beyond the file image is a private anonymous mapping made by ld.so;
     * if that assumption fails, map a fresh anonymous page over it. */
    if (lp_madvise(&lp_state_page, ps, LP_MADV_WIPEONFORK) != 0) {
        long m = lp_mmap(&lp_state_page, ps, LP_PROT_READ | LP_PROT_WRITE,
                         LP_MAP_PRIVATE | LP_MAP_ANONYMOUS | LP_MAP_FIXED, -1, 0);
        if (m != (long)&lp_state_page) return -1;
        if (lp_madvise(&lp_state_page, ps, LP_MADV_WIPEONFORK) != 0) return -1;
    }
    if (lp_cfg.dir[0] != '/') {
        char cwd[LP_PATH_MAX];
        long n = lp_getcwd(cwd, sizeof cwd);
        if (n <= 1 || (lp_u64)n + lp_cfg.dirlen + 1 > LP_PATH_MAX) return -1;
        lp_u64 cl = (lp_u64)n - 1; /* without the NUL */
        for (lp_u64 i = lp_cfg.dirlen + 1; i-- > 0;) lp_cfg.dir[cl + 1 + i] = lp_cfg.dir[i];
        for (lp_u64 i = 0; i < cl; i++) lp_cfg.dir[i] = cwd[i];
        lp_cfg.dir[cl] = '/';
        lp_cfg.dirlen += cl + 1;
    }
    if (!start_image(0, 0)) {
        go_inert();
        return -1;
    }
    return 0;
}

/* Slow path of lp_emit when this process has no current segment: either recording is
 * off, or this is a child forked since (the wipe-on-fork page came back zeroed). */
static __attribute__((noinline)) struct lp_seg *setup_slow(void)
{
    if (!lp_cfg.active || lp_cfg.inert) return 0;
    if (lock_state() < 0) return 0;
    struct lp_seg *d = __atomic_load_n(&LP_S.cur, __ATOMIC_ACQUIRE);
    if (!d && !lp_cfg.inert) {
        d = start_image(1, lp_cfg.image_id);
        if (!d) lp_cfg.inert = 1;
    }
    unlock_state();
    return d;
}

/* Segment d is full: move to the next one (once, whichever thread gets there first). */
static __attribute__((noinline)) struct lp_seg *next_segment(struct lp_seg *d)
{
    if (lock_state() < 0) return 0;
    struct lp_seg *cur = __atomic_load_n(&LP_S.cur, __ATOMIC_ACQUIRE);
    if (cur == d) {
        struct lp_audit_header *h = (struct lp_audit_header *)d->base;
        cur = new_segment(d->segment + 1, lp_getppid(), h->parent_image_id);
        if (cur)
            __atomic_store_n(&LP_S.cur, cur, __ATOMIC_RELEASE);
        else
            go_inert();
    }
    unlock_state();
    return cur;
}

void lp_emit(unsigned kind, unsigned flag, int lmid, const char *name)
{
    struct lp_seg *d = __atomic_load_n(&LP_S.cur, __ATOMIC_ACQUIRE);
    if (LP_UNLIKELY(!d)) {
        d = setup_slow();
        if (!d) return;
    }
    lp_u64 t = lp_now();
    lp_u64 len = name ? lp_strlen(name) : 0;
    if (!name) name = "";
    if (LP_UNLIKELY(len > LP_PATH_MAX * 4)) len = LP_PATH_MAX * 4;
    lp_u32 size = record_size(len);
    lp_u32 seq = lp_fetch_add32(&LP_S.seq, 1);
    lp_u64 start, end;
    for (int tries = 0;; tries++) {
        lp_u64 off = lp_fetch_add64(&((struct lp_audit_header *)d->base)->reserved, size);
        start = LP_AUDIT_HEADER_SIZE + off;
        end = start + size;
        if (LP_LIKELY(end <= d->end)) break;
        if (tries >= 2) return;
        d = next_segment(d);
        if (!d) return;
    }
    if (LP_UNLIKELY(end > __atomic_load_n(&d->populated, __ATOMIC_ACQUIRE))) {
        if (populate_to(d, end) < 0) return;
    }
    put_record(d, start, size, kind, flag, lmid, t, seq, name, len);
}
