/*
 * The record writer: segment files a-<pid>-<n>.lpa mapped MAP_SHARED, compact
 * variable-length records (loadprobe_wire.h), paths front- and back-coded against the
 * previous record's path, fork detection through a MADV_WIPEONFORK page.
 *
 * Hot path (lp_emit): one load of the current segment descriptor, the writer lock (an
 * exchange; ld.so already serialises its audit calls, so it is uncontended in practice),
 * the vDSO clock, one pass over the path that compares it with the previous record's
 * path and copies it over that copy, a few byte stores and a release store of
 * header.used. ld.so tries one name in directory after directory, so consecutive
 * candidates share their start and their end: a record carries only the bytes between
 * (a few). Nothing is looked up, so the hot path touches a handful of cache lines.
 * System calls happen only when a segment is set up, when the next chunk of the segment
 * is populated (MADV_POPULATE_WRITE, 16 KiB .. 2 MiB) and when a segment is full.
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

/* Makes sure pages up to `end` of segment d are backed. Called with the lock held. */
static int populate_to(struct lp_seg *d, lp_u64 end)
{
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
        d->populated = have;
    }
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
    h->used = 0;
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
    h->first_seq = S->seq;
    h->time_base_ns = S->last_t;
    __atomic_thread_fence(__ATOMIC_RELEASE);
    for (int i = 0; i < 8; i++) ((volatile char *)h->magic)[i] = LP_AUDIT_MAGIC[i];

    struct lp_seg *d = &S->segs[S->nsegs++];
    d->base = base;
    d->end = end;
    d->populated = populated;
    d->mapped = size;
    d->segment = segno;
    /* a fresh encoder state: paths and time deltas count per segment */
    S->prevlen = 0;
    return d;

fail_map:
    lp_munmap(base, size);
fail_file:
    lp_close((int)fd);
    lp_sc3(LP_NR_unlinkat, LP_AT_FDCWD, lp_cfg.path, 0);
    return 0;
}

static inline lp_u64 path_length(unsigned kind, const char *s);
static void put_record(struct lp_seg *d, unsigned kind, unsigned flag, int lmid, lp_u64 t,
                       const char *name, lp_u64 len);

/* First segment of an image (fresh image at la_version, or a forked child):
 * makes it and writes the LP_REC_IMAGE record, then publishes it. Lock held. */
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
    S->last_t = lp_cfg.image_start_ns;

    struct lp_seg *d = new_segment(0, ppid, parent_image_id);
    if (!d) return 0;
    put_record(d, LP_REC_IMAGE, 0, 0, lp_now(), lp_cfg.argv0, path_length(LP_REC_IMAGE, lp_cfg.argv0));
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
    if (lock_state() < 0) return -1;
    struct lp_seg *d = start_image(0, 0);
    unlock_state();
    if (!d) {
        go_inert();
        return -1;
    }
    return 0;
}

/* Segment d is full: move to the next one. Lock held. */
static __attribute__((noinline)) struct lp_seg *next_segment(struct lp_seg *d)
{
    struct lp_audit_header *h = (struct lp_audit_header *)d->base;
    struct lp_seg *cur = new_segment(d->segment + 1, lp_getppid(), h->parent_image_id);
    if (cur)
        __atomic_store_n(&LP_S.cur, cur, __ATOMIC_RELEASE);
    else
        go_inert();
    return cur;
}

/* ---- the encoder (lock held) ---- */

static inline char *put_var(char *p, lp_u64 v)
{
    while (v >= 0x80) {
        *p++ = (char)(v | 0x80);
        v >>= 7;
    }
    *p++ = (char)v;
    return p;
}

typedef lp_u64 __attribute__((aligned(1), may_alias)) lp_u64_unaligned;
typedef lp_u64 __attribute__((may_alias)) lp_u64_alias;

/* Upper bound of a record's size with a path of `len` bytes. */
#define LP_RECORD_BOUND(len) (48u + (len))

/* The length of a record's path (IMAGE, OBJSEARCH, OBJOPEN, OBJCLOSE: a missing name
 * counts as ""; ~0 for the kinds without one), measured before the lock is taken. */
static inline lp_u64 path_length(unsigned kind, const char *s)
{
    if (kind == LP_REC_ACTIVITY || kind == LP_REC_PREINIT) return ~0ull;
    if (!s) return 0;
    /* A word at a time: aligned 8-byte loads never cross into another page. */
    const lp_u64 low7 = 0x7f7f7f7f7f7f7f7full;
    const char *q = s;
    for (; (lp_uptr)q & 7; q++)
        if (!*q) return (lp_u64)(q - s);
    for (;; q += 8) {
        lp_u64 w = *(const lp_u64_alias *)q;
        lp_u64 z = ~(((w & low7) + low7) | w | low7); /* high bit set exactly at NUL bytes */
        if (z) {
            lp_u64 len = (lp_u64)(q - s) + (lp_u64)__builtin_ctzll(z) / 8;
            return len > LP_PATH_MAX * 4 ? LP_PATH_MAX * 4 : len;
        }
    }
}

/* Writes the path s[0..len) at p, coded against the previous path of the segment (kept
 * in lp_cfg.prev), and makes it the previous path. Returns the new end. */
static inline char *put_path(char *p, const char *s, lp_u64 len)
{
    struct lp_state *S = &LP_S;
    char *prev = lp_cfg.prev;
    lp_u64 plen = S->prevlen;
    lp_u64 m = len < plen ? len : plen;
    /* bytes shared at the start */
    lp_u64 keep = 0;
    while (keep + 8 <= m) {
        lp_u64 x = *(const lp_u64_unaligned *)(s + keep) ^ *(const lp_u64_unaligned *)(prev + keep);
        if (x) {
            keep += (lp_u64)__builtin_ctzll(x) / 8;
            goto kept;
        }
        keep += 8;
    }
    while (keep < m && s[keep] == prev[keep]) keep++;
kept:;
    /* bytes shared at the end, not overlapping those */
    lp_u64 room = m - keep, tail = 0;
    while (tail + 8 <= room) {
        lp_u64 x = *(const lp_u64_unaligned *)(s + len - tail - 8) ^
                   *(const lp_u64_unaligned *)(prev + plen - tail - 8);
        if (x) {
            tail += (lp_u64)__builtin_clzll(x) / 8;
            goto tailed;
        }
        tail += 8;
    }
    while (tail < room && s[len - tail - 1] == prev[plen - tail - 1]) tail++;
tailed:;
    lp_u64 mid = len - keep - tail;
    p = put_var(p, keep);
    p = put_var(p, tail);
    p = put_var(p, mid);
    /* the new bytes, into the record and over the previous path */
    lp_u64 i = 0;
    for (; i + 8 <= mid; i += 8)
        *(lp_u64_unaligned *)(p + i) = *(const lp_u64_unaligned *)(s + keep + i);
    for (; i < mid; i++) p[i] = s[keep + i];
    p += mid;
    lp_u64 n = len - keep; /* prev[0..keep) is already the same */
    for (i = 0; i + 8 <= n; i += 8)
        *(lp_u64_unaligned *)(prev + keep + i) = *(const lp_u64_unaligned *)(s + keep + i);
    for (; i < n; i++) prev[keep + i] = s[keep + i];
    S->prevlen = len;
    return p;
}

/* Appends one record to segment d (space and pages checked by the caller); len is
 * path_length(kind, name). */
static void put_record(struct lp_seg *d, unsigned kind, unsigned flag, int lmid, lp_u64 t,
                       const char *name, lp_u64 len)
{
    struct lp_state *S = &LP_S;
    struct lp_audit_header *h = (struct lp_audit_header *)d->base;
    char *start = d->base + LP_AUDIT_HEADER_SIZE + h->used;
    char *p = start;
    if (flag < LP_AUDIT_FLAG_ESCAPE) {
        *p++ = (char)(kind | flag << 4);
    } else {
        *p++ = (char)(kind | LP_AUDIT_FLAG_ESCAPE << 4);
        p = put_var(p, flag);
    }
    if (LP_UNLIKELY(t < S->last_t)) t = S->last_t;
    p = put_var(p, t - S->last_t);
    S->last_t = t;
    if (kind == LP_REC_OBJOPEN) p = put_var(p, (lp_u64)(((long long)lmid << 1) ^ ((long long)lmid >> 63)));
    if (len != ~0ull) p = put_path(p, name ? name : "", len);
    S->seq++;
    __atomic_store_n(&h->used, h->used + (lp_u64)(p - start), __ATOMIC_RELEASE);
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

/* kind: enum lp_audit_kind; name: a path for IMAGE/OBJSEARCH/OBJOPEN/OBJCLOSE (0 is
 * written as ""), 0 for the others. */
void lp_emit(unsigned kind, unsigned flag, int lmid, const char *name)
{
    struct lp_seg *d = __atomic_load_n(&LP_S.cur, __ATOMIC_ACQUIRE);
    if (LP_UNLIKELY(!d)) {
        d = setup_slow();
        if (!d) return;
    }
    lp_u64 len = path_length(kind, name);
    if (LP_UNLIKELY(lock_state() < 0)) {
        lp_fetch_add32(&((struct lp_audit_header *)d->base)->dropped, 1);
        return;
    }
    d = LP_S.cur; /* may have moved on (or gone inert) while we waited */
    if (LP_UNLIKELY(!d)) goto out;
    lp_u64 t = lp_now();
    lp_u64 need = LP_AUDIT_HEADER_SIZE + ((struct lp_audit_header *)d->base)->used +
                  LP_RECORD_BOUND(len == ~0ull ? 0 : len);
    if (LP_UNLIKELY(need > d->end)) {
        d = next_segment(d);
        if (!d) goto out;
        need = LP_AUDIT_HEADER_SIZE + LP_RECORD_BOUND(len == ~0ull ? 0 : len);
        if (need > d->end) goto out;
    }
    if (LP_UNLIKELY(need > d->populated) && populate_to(d, need) < 0) goto out;
    put_record(d, kind, flag, lmid, t, name, len);
out:
    unlock_state();
}
