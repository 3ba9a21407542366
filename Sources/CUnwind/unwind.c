/*
 * Remote unwinding with libunwind-ptrace, with two accessors replaced:
 * memory is read a page at a time with process_vm_readv (libunwind's own
 * reader makes one PTRACE_PEEKDATA per word) and the registers are read once
 * with PTRACE_GETREGS. Everything else (unwind tables found through
 * /proc/PID/maps and the ELF files) is libunwind-ptrace's.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "CUnwind.h"

#include <libunwind-ptrace.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>

#define LP_PAGE 4096u
#define LP_CACHED_PAGES 16

/* An address range [lo, hi) of the tracee. */
struct lp_range { uint64_t lo, hi; };

struct lp_unwinder {
    unw_addr_space_t as;
    /* ld.so's and libc's mappings, from the image's first unwind (they do not move). */
    struct lp_range skip[64];
    int nskip;
    int have_libc;
    pid_t pid;
    int maps_fd; /* /proc/PID/maps for PROCMAP_QUERY, -1 when not open */
    int no_query; /* the kernel has no PROCMAP_QUERY (before Linux 6.11) */
};

/* The unwind in progress (the tracer unwinds one thread at a time). */
static struct {
    pid_t tid;
    void *upt;
    int have_regs;
    struct user_regs_struct regs;
    uint64_t page_addr[LP_CACHED_PAGES];
    unsigned char page[LP_CACHED_PAGES][LP_PAGE];
    int used, next;
} cur;

static int read_word(unw_word_t addr, unw_word_t *val) {
    uint64_t base = addr & ~(uint64_t)(LP_PAGE - 1);
    size_t in = (size_t)(addr - base);
    if (in + sizeof *val > LP_PAGE) { /* straddles two pages */
        struct iovec l = { val, sizeof *val }, r = { (void *)(uintptr_t)addr, sizeof *val };
        return process_vm_readv(cur.tid, &l, 1, &r, 1, 0) == (ssize_t)sizeof *val ? 0 : -1;
    }
    for (int i = 0; i < cur.used; i++)
        if (cur.page_addr[i] == base) { memcpy(val, cur.page[i] + in, sizeof *val); return 0; }
    int slot = cur.used < LP_CACHED_PAGES ? cur.used++ : (cur.next++ % LP_CACHED_PAGES);
    struct iovec l = { cur.page[slot], LP_PAGE }, r = { (void *)(uintptr_t)base, LP_PAGE };
    if (process_vm_readv(cur.tid, &l, 1, &r, 1, 0) != (ssize_t)LP_PAGE) {
        cur.page_addr[slot] = UINT64_MAX;
        struct iovec l1 = { val, sizeof *val }, r1 = { (void *)(uintptr_t)addr, sizeof *val };
        return process_vm_readv(cur.tid, &l1, 1, &r1, 1, 0) == (ssize_t)sizeof *val ? 0 : -1;
    }
    cur.page_addr[slot] = base;
    memcpy(val, cur.page[slot] + in, sizeof *val);
    return 0;
}

static int access_mem(unw_addr_space_t as, unw_word_t addr, unw_word_t *val, int write, void *arg) {
    if (write) return _UPT_access_mem(as, addr, val, write, cur.upt);
    (void)arg;
    return read_word(addr, val) == 0 ? 0 : -UNW_EINVAL;
}

#if defined(__x86_64__)
static int access_reg(unw_addr_space_t as, unw_regnum_t reg, unw_word_t *val, int write, void *arg) {
    if (write) return _UPT_access_reg(as, reg, val, write, cur.upt);
    (void)arg;
    if (!cur.have_regs) {
        if (ptrace(PTRACE_GETREGS, cur.tid, 0, &cur.regs) != 0) return -UNW_EBADREG;
        cur.have_regs = 1;
    }
    const struct user_regs_struct *r = &cur.regs;
    switch (reg) {
    case UNW_X86_64_RAX: *val = r->rax; break;
    case UNW_X86_64_RDX: *val = r->rdx; break;
    case UNW_X86_64_RCX: *val = r->rcx; break;
    case UNW_X86_64_RBX: *val = r->rbx; break;
    case UNW_X86_64_RSI: *val = r->rsi; break;
    case UNW_X86_64_RDI: *val = r->rdi; break;
    case UNW_X86_64_RBP: *val = r->rbp; break;
    case UNW_X86_64_RSP: *val = r->rsp; break;
    case UNW_X86_64_R8: *val = r->r8; break;
    case UNW_X86_64_R9: *val = r->r9; break;
    case UNW_X86_64_R10: *val = r->r10; break;
    case UNW_X86_64_R11: *val = r->r11; break;
    case UNW_X86_64_R12: *val = r->r12; break;
    case UNW_X86_64_R13: *val = r->r13; break;
    case UNW_X86_64_R14: *val = r->r14; break;
    case UNW_X86_64_R15: *val = r->r15; break;
    case UNW_X86_64_RIP: *val = r->rip; break;
    default: return _UPT_access_reg(as, reg, val, write, cur.upt);
    }
    return 0;
}
#endif

struct lp_unwinder *lp_unwinder_new(pid_t pid) {
    unw_accessors_t acc = _UPT_accessors;
    acc.access_mem = access_mem;
#if defined(__x86_64__)
    acc.access_reg = access_reg;
#endif
    unw_addr_space_t as = unw_create_addr_space(&acc, 0);
    if (!as) return NULL;
    unw_set_caching_policy(as, UNW_CACHE_GLOBAL);
    struct lp_unwinder *u = calloc(1, sizeof *u);
    if (!u) { unw_destroy_addr_space(as); return NULL; }
    u->as = as;
    u->pid = pid;
    u->maps_fd = -1;
    return u;
}

void lp_unwinder_free(struct lp_unwinder *u) {
    if (!u) return;
    unw_destroy_addr_space(u->as);
    if (u->maps_fd >= 0) close(u->maps_fd);
    free(u);
}

static int outside(uint64_t ip, const struct lp_range *skip, int nskip) {
    for (int i = 0; i < nskip; i++)
        if (ip >= skip[i].lo && ip < skip[i].hi) return 0;
    return 1;
}

/* Unwinds the stopped thread `tid` from its current frame, skipping frames
 * whose instruction pointer lies in one of `skip`. Returns 1 when a frame
 * outside them was found, 0 when the stack ended inside them (out: the
 * outermost frame), -1 when unwinding failed or exceeded max_frames. */
static int unwind_caller(struct lp_unwinder *u, pid_t tid, const struct lp_range *skip, int nskip,
                         int max_frames, struct lp_frame_found *out) {
    memset(out, 0, sizeof *out);
    if (!u) return -1;
    cur.tid = tid;
    cur.have_regs = 0;
    cur.used = 0;
    cur.next = 0;
    cur.upt = _UPT_create(tid);
    if (!cur.upt) return -1;
    int rc = -1;
    unw_cursor_t c;
    if (unw_init_remote(&c, u->as, cur.upt) != 0) goto done;
    for (int depth = 0; depth <= max_frames; depth++) {
        unw_word_t ip = 0, sp = 0;
        if (unw_get_reg(&c, UNW_REG_IP, &ip) != 0) break;
        unw_get_reg(&c, UNW_REG_SP, &sp);
        out->ip = ip;
        out->depth = depth;
        /* A return address sits just below the caller's stack pointer (x86_64:
         * the call pushed it; the callee's CFA is the caller's SP). */
        out->slot = 0;
#if defined(__x86_64__)
        if (depth > 0) {
            unw_word_t w = 0;
            if (read_word(sp - 8, &w) == 0 && w == ip) out->slot = sp - 8;
        }
#endif
        if (depth > 0 && outside(ip, skip, nskip)) { rc = 1; break; }
        int step = unw_step(&c);
        if (step == 0) { rc = 0; break; }
        if (step < 0) break;
    }
done:
    _UPT_destroy(cur.upt);
    cur.upt = NULL;
    return rc;
}

/* /proc/PID/maps, read whole into a reused buffer. */
static char *maps_buf;
static size_t maps_cap;

static long read_maps(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t len = 0;
    for (;;) {
        if (maps_cap - len < 65536) {
            size_t cap = maps_cap ? maps_cap * 2 : 1 << 18;
            char *b = realloc(maps_buf, cap);
            if (!b) { close(fd); return -1; }
            maps_buf = b;
            maps_cap = cap;
        }
        ssize_t n = read(fd, maps_buf + len, maps_cap - len - 1);
        if (n < 0) { close(fd); return -1; }
        if (n == 0) break;
        len += (size_t)n;
    }
    close(fd);
    maps_buf[len] = 0;
    return (long)len;
}

/* One line: "lo-hi perms offset dev inode   path". Returns the path (or NULL) and
 * sets *end to the line's end. */
static const char *parse_line(const char *p, uint64_t *lo, uint64_t *hi, uint64_t *off, const char **end) {
    char *q;
    *lo = strtoull(p, &q, 16);
    if (*q != '-') { *end = strchr(p, '\n'); return NULL; }
    *hi = strtoull(q + 1, &q, 16);
    while (*q == ' ') q++;
    while (*q && *q != ' ' && *q != '\n') q++; /* perms */
    *off = strtoull(q, &q, 16);
    for (int field = 0; field < 2; field++) { /* dev, inode */
        while (*q == ' ') q++;
        while (*q && *q != ' ' && *q != '\n') q++;
    }
    while (*q == ' ') q++;
    const char *nl = strchr(q, '\n');
    *end = nl;
    return *q == '/' ? q : NULL;
}

int lp_object_span(pid_t pid, uint64_t addr, char *path, size_t cap, uint64_t *lo, uint64_t *hi) {
    if (read_maps(pid) < 0) return -1;
    size_t flen = 0;
    int found = 0;
    for (const char *p = maps_buf; p && *p;) {
        uint64_t l, h, o;
        const char *end;
        const char *name = parse_line(p, &l, &h, &o, &end);
        if (name && addr >= l && addr < h) {
            flen = (size_t)((end ? end : name + strlen(name)) - name);
            if (flen + 1 > cap) return -1;
            memcpy(path, name, flen);
            path[flen] = 0;
            found = 1;
            break;
        }
        p = end ? end + 1 : NULL;
    }
    if (!found) return -1;
    *lo = UINT64_MAX;
    *hi = 0;
    for (const char *p = maps_buf; p && *p;) {
        uint64_t l, h, o;
        const char *end;
        const char *name = parse_line(p, &l, &h, &o, &end);
        size_t n = name ? (size_t)((end ? end : name + strlen(name)) - name) : 0;
        if (name && n == flen && memcmp(name, path, n) == 0) {
            if (l < *lo) *lo = l;
            if (h > *hi) *hi = h;
        }
        p = end ? end + 1 : NULL;
    }
    return 0;
}

static int is_libc(const char *path, size_t n) {
    const char *base = path;
    for (size_t i = 0; i < n; i++) if (path[i] == '/') base = path + i + 1;
    size_t b = n - (size_t)(base - path);
    return (b >= 7 && memcmp(base, "libc.so", 7) == 0) || (b >= 8 && memcmp(base, "libdl.so", 8) == 0)
        || (b >= 7 && memcmp(base, "libc-2.", 7) == 0) || (b >= 8 && memcmp(base, "libdl-2.", 8) == 0);
}

/* PROCMAP_QUERY (Linux 6.11, <linux/fs.h>): the mapping covering one address,
 * without formatting the whole of /proc/PID/maps. */
struct lp_procmap_query {
    uint64_t size, query_flags, query_addr, vma_start, vma_end, vma_flags, vma_page_size, vma_offset, inode;
    uint32_t dev_major, dev_minor, vma_name_size, build_id_size;
    uint64_t vma_name_addr, build_id_addr;
};
#define LP_PROCMAP_QUERY _IOWR('f', 17, struct lp_procmap_query)
#include <sys/ioctl.h>
#include <errno.h>

static int query_vma(struct lp_unwinder *u, uint64_t addr, char *name, size_t cap, uint64_t *lo, uint64_t *off) {
    if (u->no_query) return -1;
    if (u->maps_fd < 0) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/maps", (int)u->pid);
        u->maps_fd = open(path, O_RDONLY | O_CLOEXEC);
        if (u->maps_fd < 0) { u->no_query = 1; return -1; }
    }
    struct lp_procmap_query q;
    memset(&q, 0, sizeof q);
    q.size = sizeof q;
    q.query_addr = addr;
    q.vma_name_size = (uint32_t)cap;
    q.vma_name_addr = (uint64_t)(uintptr_t)name;
    if (ioctl(u->maps_fd, LP_PROCMAP_QUERY, &q) != 0) {
        if (errno == ENOTTY || errno == EINVAL) u->no_query = 1;
        return -1;
    }
    if (q.vma_name_size == 0 && cap) name[0] = 0;
    *lo = q.vma_start;
    *off = q.vma_offset;
    return 0;
}

int lp_find_caller(struct lp_unwinder *u, pid_t tid, pid_t pid, const char *loader_path, int max_frames,
                   struct lp_frame_found *out, char *object, size_t object_cap, uint64_t *offset) {
    memset(out, 0, sizeof *out);
    if (object_cap) object[0] = 0;
    *offset = 0;
    if (!u) return -1;
    int have_maps = 0;
    if (!u->have_libc) {
        /* ld.so's and libc's mappings, once per image (again until libc is mapped). */
        if (read_maps(pid) < 0) return -1;
        have_maps = 1;
        size_t loader_len = strlen(loader_path);
        u->nskip = 0;
        for (const char *p = maps_buf, *end; p && *p; p = end ? end + 1 : NULL) {
            uint64_t lo, hi, off;
            const char *path = parse_line(p, &lo, &hi, &off, &end);
            if (!path) continue;
            size_t n = end ? (size_t)(end - path) : strlen(path);
            int libc = is_libc(path, n);
            if ((n == loader_len && memcmp(path, loader_path, n) == 0) || libc) {
                if (libc) u->have_libc = 1;
                if (u->nskip > 0 && u->skip[u->nskip - 1].hi == lo) u->skip[u->nskip - 1].hi = hi;
                else if (u->nskip < 64) u->skip[u->nskip++] = (struct lp_range){ lo, hi };
            }
        }
    }
    int rc = unwind_caller(u, tid, u->skip, u->nskip, max_frames, out);
    if (rc != 1) return rc;
    uint64_t lo = 0, off = 0;
    if (object_cap > 1 && query_vma(u, out->ip, object, object_cap, &lo, &off) == 0) {
        if (object[0] != '/') object[0] = 0; /* anonymous or [special]: no file */
        *offset = out->ip - lo + off;
        return 1;
    }
    if (!have_maps && read_maps(pid) < 0) return 1;
    for (const char *p = maps_buf, *end; p && *p; p = end ? end + 1 : NULL) {
        uint64_t hi;
        const char *path = parse_line(p, &lo, &hi, &off, &end);
        if (out->ip < lo || out->ip >= hi) continue;
        size_t n = path ? (end ? (size_t)(end - path) : strlen(path)) : 0;
        if (n >= object_cap) n = object_cap ? object_cap - 1 : 0;
        if (object_cap) { memcpy(object, path ? path : "", n); object[n] = 0; }
        *offset = out->ip - lo + off;
        return 1;
    }
    return 1;
}

/* libunwind-x86_64.a's unw_resume refers to the local-unwinding setcontext, which
 * libunwind.a defines next to its own copy of libgcc's _Unwind_* API (a static link
 * cannot take both). loadprobe only unwinds other processes and never resumes a
 * cursor: nothing calls this. */
int _Ux86_64_setcontext(const void *ucp);
int _Ux86_64_setcontext(const void *ucp) { (void)ucp; abort(); }
