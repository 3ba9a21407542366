/*
 * Remote unwinding with libunwind-ptrace, with two accessors replaced:
 * memory is read a page at a time with process_vm_readv (libunwind's own
 * reader makes one PTRACE_PEEKDATA per word) and the registers are read once
 * with PTRACE_GETREGS. Everything else (unwind tables found through
 * /proc/PID/maps and the ELF files) is libunwind-ptrace's.
 */
#define _GNU_SOURCE
#include "CUnwind.h"

#include <libunwind-ptrace.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>

#define LP_PAGE 4096u
#define LP_CACHED_PAGES 16

struct lp_unwinder {
    unw_addr_space_t as;
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

long lp_unwind_reads;

static int read_word(unw_word_t addr, unw_word_t *val) {
    uint64_t base = addr & ~(uint64_t)(LP_PAGE - 1);
    size_t in = (size_t)(addr - base);
    if (in + sizeof *val > LP_PAGE) { /* straddles two pages */
        struct iovec l = { val, sizeof *val }, r = { (void *)(uintptr_t)addr, sizeof *val };
        lp_unwind_reads++;
        return process_vm_readv(cur.tid, &l, 1, &r, 1, 0) == (ssize_t)sizeof *val ? 0 : -1;
    }
    for (int i = 0; i < cur.used; i++)
        if (cur.page_addr[i] == base) { memcpy(val, cur.page[i] + in, sizeof *val); return 0; }
    int slot = cur.used < LP_CACHED_PAGES ? cur.used++ : (cur.next++ % LP_CACHED_PAGES);
    struct iovec l = { cur.page[slot], LP_PAGE }, r = { (void *)(uintptr_t)base, LP_PAGE };
    lp_unwind_reads++;
    if (process_vm_readv(cur.tid, &l, 1, &r, 1, 0) != (ssize_t)LP_PAGE) {
        cur.page_addr[slot] = UINT64_MAX;
        struct iovec l1 = { val, sizeof *val }, r1 = { (void *)(uintptr_t)addr, sizeof *val };
        lp_unwind_reads++;
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
        lp_unwind_reads++;
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

struct lp_unwinder *lp_unwinder_new(void) {
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
    return u;
}

void lp_unwinder_free(struct lp_unwinder *u) {
    if (!u) return;
    unw_destroy_addr_space(u->as);
    free(u);
}

static int outside(uint64_t ip, const struct lp_range *skip, int nskip) {
    for (int i = 0; i < nskip; i++)
        if (ip >= skip[i].lo && ip < skip[i].hi) return 0;
    return 1;
}

int lp_unwind_caller(struct lp_unwinder *u, pid_t tid, const struct lp_range *skip, int nskip,
                     int max_frames, struct lp_frame_found *out) {
    memset(out, 0, sizeof *out);
    if (!u) return -1;
    lp_unwind_reads = 0;
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
