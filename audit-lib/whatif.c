/*
 * `loadprobe record --what-if`: answers library searches from a map file the way the
 * fixed program would make them (README.md, "What-if").
 *
 * The map ($LOADPROBE_WHATIF) is read once, at la_version, into anonymous memory of
 * our own (never mapped from the file: a file cut short under us cannot raise SIGBUS),
 * checked from end to end, and indexed by name in a hash table in a second anonymous
 * mapping. Anything unexpected — no file, too large, a bad magic, a string without its
 * NUL, too many entries, a name with a '/', a relative path — leaves what-if off for the
 * whole process: the program then searches as it always does. The memory is never
 * freed, so the paths handed to ld.so stay valid for the life of the process image.
 *
 * An entry's steps are the system calls the fixed program's own search makes before
 * it finds the file (a view directory's glibc-hwcaps probes, a miss there and the
 * ld.so.cache read for a library the view does not hold): made here, on the same
 * paths, so that the what-if pays for them on the real file system as the fix would.
 */
#include "lp.h"

int lp_whatif_on;
int lp_whatif_cache_read;

struct lp_whatif_entry {
    const char *requester; /* "*": any object; "": the main program; else an l_name */
    const char *name;
    const char *path;
    const char *steps;     /* the first step; an empty string ends them */
    lp_u32 next;           /* next entry in the bucket's chain, + 1 (0: none) */
    lp_u32 hash;
};

static struct lp_whatif_entry *entries;
static lp_u32 *buckets;    /* first entry of each chain, + 1 (0: empty) */
static lp_u32 bucket_mask;

static lp_u32 name_hash(const char *s)
{
    lp_u32 h = 2166136261u; /* FNV-1a */
    while (*s) h = (h ^ (unsigned char)*s++) * 16777619u;
    return h;
}

/* The NUL-terminated string at *p, which must end before `end`; advances *p past
 * its NUL. 0 when there is no NUL before `end`. */
static const char *take_string(const char **p, const char *end)
{
    const char *s = *p;
    for (const char *q = s; q < end; q++) {
        if (*q == 0) {
            *p = q + 1;
            return s;
        }
    }
    return 0;
}

static int has_slash(const char *s)
{
    for (; *s; s++)
        if (*s == '/') return 1;
    return 0;
}

static void *anonymous(lp_u64 bytes)
{
    long m = lp_mmap(0, bytes, LP_PROT_READ | LP_PROT_WRITE, LP_MAP_PRIVATE | LP_MAP_ANONYMOUS, -1, 0);
    return m < 0 && m > -4096 ? 0 : (void *)m;
}

/* The whole file in memory of our own, NUL-terminated; 0 on any failure. A FIFO
 * (O_NONBLOCK: the open does not wait for a writer) has no end to seek to. */
static char *read_map(const char *file, lp_u64 *size)
{
    long fd = lp_openat(file, LP_O_RDONLY | LP_O_NONBLOCK | LP_O_NOCTTY | LP_O_CLOEXEC, 0);
    if (fd < 0) return 0;
    char *buf = 0;
    long n = lp_lseek((int)fd, 0, LP_SEEK_END);
    if (n > 0 && (lp_u64)n <= LP_WHATIF_MAX_BYTES) buf = anonymous((lp_u64)n + 1);
    lp_u64 got = 0;
    while (buf && got < (lp_u64)n) {
        long r = lp_pread((int)fd, buf + got, (lp_u64)n - got, got);
        if (r <= 0) break;
        got += (lp_u64)r;
    }
    lp_close((int)fd);
    if (!buf) return 0;
    if (got != (lp_u64)n) { /* the file changed under us */
        lp_munmap(buf, (lp_u64)n + 1);
        return 0;
    }
    buf[n] = 0;
    *size = (lp_u64)n;
    return buf;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* A step: its operation, the la_objsearch flag in two lowercase hex digits, then its
 * path: "o" open a candidate (recorded with the flag), "s" stat a directory (the path
 * may be empty: ld.so cuts "/name" to "" for a candidate in "/"), "c" read ld.so.cache,
 * "h" record the answer as the candidate found (no path). 1 when well formed. */
static int step_ok(const char *s)
{
    if (!s[0] || hex_digit(s[1]) < 0 || hex_digit(s[2]) < 0) return 0;
    const char *path = s + 3;
    switch (s[0]) {
    case 'o': case 'c': return path[0] != 0;
    case 's': return 1;
    case 'h': return path[0] == 0;
    default: return 0;
    }
}

/* Checks the program names (this program must be one of them) and every entry;
 * returns the number of entries and where they start, or -1. */
static long check_map(const char *buf, lp_u64 size, const char **first)
{
    const char *end = buf + size, *p = buf;
    const char *magic = take_string(&p, end);
    if (!magic || !lp_streq(magic, LP_WHATIF_MAGIC)) return -1;
    int named = 0;
    for (lp_u32 i = 0;; i++) {
        const char *program = take_string(&p, end);
        if (!program || i > LP_WHATIF_MAX_NAMES) return -1;
        if (!program[0]) break;
        if (lp_cfg.execname[0] && lp_streq(program, lp_cfg.execname)) named = 1;
    }
    if (!named) return -1;
    *first = p;
    long count = 0;
    while (p < end) {
        const char *requester = take_string(&p, end), *name = take_string(&p, end), *path = take_string(&p, end);
        if (!requester || !name || !path || !name[0] || has_slash(name) || path[0] != '/') return -1;
        for (;;) {
            const char *step = take_string(&p, end);
            if (!step) return -1;
            if (!step[0]) break;
            if (!step_ok(step)) return -1;
        }
        if (++count > (long)LP_WHATIF_MAX_ENTRIES) return -1;
    }
    return count;
}

/* Reads and indexes the map named by LOADPROBE_WHATIF. At la_version, single-threaded. */
int lp_whatif_load(void)
{
    if (!lp_cfg.whatif[0]) return -1;
    lp_u64 size = 0;
    char *buf = read_map(lp_cfg.whatif, &size);
    if (!buf) return -1;
    const char *p = 0;
    long count = check_map(buf, size, &p);
    lp_u32 nb = 16;
    while (count > 0 && nb < 2 * (lp_u64)count) nb <<= 1;
    lp_u64 bytes = (lp_u64)(count > 0 ? count : 0) * sizeof(struct lp_whatif_entry) + nb * sizeof(lp_u32);
    char *table = count > 0 ? anonymous(bytes) : 0;
    if (!table) {
        lp_munmap(buf, size + 1);
        return -1;
    }
    buckets = (lp_u32 *)table;
    entries = (struct lp_whatif_entry *)(table + nb * sizeof(lp_u32));
    bucket_mask = nb - 1;
    const char *end = buf + size;
    for (lp_u32 i = 0; i < (lp_u32)count; i++) {
        struct lp_whatif_entry *e = &entries[i];
        e->requester = take_string(&p, end);
        e->name = take_string(&p, end);
        e->path = take_string(&p, end);
        e->steps = p;
        while (*take_string(&p, end)) {}
        e->hash = name_hash(e->name);
    }
    /* Linked from the last entry to the first, each at the front of its chain: a chain
     * lists its entries in the map's order, and many entries of one name cost no walk. */
    for (lp_u32 i = (lp_u32)count; i-- > 0;) {
        lp_u32 *head = &buckets[entries[i].hash & bucket_mask];
        entries[i].next = *head;
        *head = i + 1;
    }
    lp_whatif_on = 1;
    return 0;
}

/* The entry for `name` asked for by the object whose l_name is `requester` (0: not
 * known), or 0 to search as usual. An entry for that very object wins over one for
 * any object ("*"); otherwise the map's first. */
const struct lp_whatif_entry *lp_whatif_find(const char *name, const char *requester)
{
    if (!lp_whatif_on || !name || !name[0] || has_slash(name)) return 0;
    lp_u32 h = name_hash(name);
    const struct lp_whatif_entry *any = 0;
    for (lp_u32 i = buckets[h & bucket_mask]; i; i = entries[i - 1].next) {
        const struct lp_whatif_entry *e = &entries[i - 1];
        if (e->hash != h || !lp_streq(e->name, name)) continue;
        if (requester && lp_streq(e->requester, requester)) return e;
        if (!any && e->requester[0] == '*' && !e->requester[1]) any = e;
    }
    return any;
}

const char *lp_whatif_path(const struct lp_whatif_entry *e) { return e->path; }

/* The calls ld.so makes for each step (glibc 2.36, elf/dl-load.c): open_verify's
 * openat(O_RDONLY|O_CLOEXEC) of a candidate, and its read of the header when it opens
 * (a file the fixed program skips: wrong class or machine); open_path's stat of a
 * directory after a miss; _dl_sysdep_read_whole_file's openat and fstat of the cache
 * (its mmap left out: no file-system call), once per load (audit.c resets the flag at
 * LA_ACT_CONSISTENT: ld.so unmaps the cache when a load is done). */
void lp_whatif_replay(const struct lp_whatif_entry *e)
{
    char header[832];
    for (const char *s = e->steps; *s; s += lp_strlen(s) + 1) {
        unsigned flag = (unsigned)(hex_digit(s[1]) * 16 + hex_digit(s[2]));
        const char *path = s + 3;
        switch (s[0]) {
        case 'o': {
            lp_emit(LP_REC_OBJSEARCH, flag, 0, path);
            long fd = lp_openat(path, LP_O_RDONLY | LP_O_CLOEXEC, 0);
            if (fd >= 0) {
                lp_read((int)fd, header, sizeof header);
                lp_close((int)fd);
            }
            break;
        }
        case 's':
            lp_fstatat(LP_AT_FDCWD, path, 0);
            break;
        case 'c': {
            if (lp_whatif_cache_read) break;
            lp_whatif_cache_read = 1;
            long fd = lp_openat(path, LP_O_RDONLY | LP_O_CLOEXEC, 0);
            if (fd >= 0) {
                lp_fstatat((int)fd, "", LP_AT_EMPTY_PATH);
                lp_close((int)fd);
            }
            break;
        }
        case 'h':
            lp_emit(LP_REC_OBJSEARCH, flag, 0, e->path);
            break;
        }
    }
}
