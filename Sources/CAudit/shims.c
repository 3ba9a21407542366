#ifndef _GNU_SOURCE
#error "CAudit needs _GNU_SOURCE (set in Package.swift's cSettings)"
#endif
#include "CAudit.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <fcntl.h>
#include <gnu/libc-version.h>
#include <link.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/xattr.h>
#include <sys/user.h>
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__)
const uint32_t lp_native_audit_arch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
const uint32_t lp_native_audit_arch = AUDIT_ARCH_AARCH64;
#else
#error "loadprobe supports x86_64 and aarch64"
#endif

/* Traced system calls of this architecture. aarch64 has only the *at forms. */
static const struct { long nr; int call; } lp_calls[] = {
#ifdef SYS_open
    { SYS_open, LP_CALL_OPEN },
#endif
#ifdef SYS_creat
    { SYS_creat, LP_CALL_CREAT },
#endif
#ifdef SYS_stat
    { SYS_stat, LP_CALL_STAT },
#endif
#ifdef SYS_lstat
    { SYS_lstat, LP_CALL_LSTAT },
#endif
#ifdef SYS_access
    { SYS_access, LP_CALL_ACCESS },
#endif
#ifdef SYS_readlink
    { SYS_readlink, LP_CALL_READLINK },
#endif
    { SYS_openat, LP_CALL_OPENAT },
    { 437 /* openat2 */, LP_CALL_OPENAT2 },
    { SYS_newfstatat, LP_CALL_NEWFSTATAT },
    { SYS_statx, LP_CALL_STATX },
    { SYS_faccessat, LP_CALL_FACCESSAT },
    { 439 /* faccessat2 */, LP_CALL_FACCESSAT2 },
    { SYS_readlinkat, LP_CALL_READLINKAT },
    { SYS_execve, LP_CALL_EXECVE },
    { SYS_execveat, LP_CALL_EXECVEAT },
};
#define LP_NCALLS ((int)(sizeof lp_calls / sizeof lp_calls[0]))

/* Calls that change how a process sees the file system or what it may see:
 * the tracer stops answering lookups for such a process (see lp_probe_path). */
static const long lp_view_calls[] = {
    SYS_unshare, SYS_setns, SYS_chroot, SYS_pivot_root, SYS_setuid, SYS_setgid, SYS_setreuid, SYS_setregid,
    SYS_setresuid, SYS_setresgid, SYS_setgroups, SYS_setfsuid, SYS_setfsgid, SYS_capset,
};
#define LP_NVIEW ((int)(sizeof lp_view_calls / sizeof lp_view_calls[0]))

int lp_call_for_nr(uint64_t nr) {
    for (int i = 0; i < LP_NVIEW; i++)
        if ((uint64_t)lp_view_calls[i] == nr) return LP_CALL_VIEW_CHANGE;
    if (nr == (uint64_t)SYS_close) return LP_CALL_PREINIT_SIGNAL;
    if (nr == (uint64_t)SYS_prctl) return LP_CALL_PRCTL_SECURITY;
    if (nr == (uint64_t)SYS_seccomp) return LP_CALL_SECCOMP;
    if (nr == (uint64_t)SYS_ptrace) return LP_CALL_PTRACE;
    if (nr == (uint64_t)SYS_sched_getaffinity) return LP_CALL_SCHED_GETAFFINITY;
    if (nr == (uint64_t)SYS_sched_setaffinity) return LP_CALL_SCHED_SETAFFINITY;
    for (int i = 0; i < LP_NCALLS; i++)
        if ((uint64_t)lp_calls[i].nr == nr) return lp_calls[i].call;
    return 0;
}

long lp_ptrace(int request, pid_t pid, uintptr_t addr, uintptr_t data) {
    return ptrace((enum __ptrace_request)request, pid, (void *)addr, (void *)data);
}

int lp_get_syscall_info(pid_t pid, struct lp_syscall_info *out) {
    struct __ptrace_syscall_info info;
    memset(&info, 0, sizeof info);
    long n = ptrace(PTRACE_GET_SYSCALL_INFO, pid, (void *)sizeof info, &info);
    if (n <= 0) return -1;
    memset(out, 0, sizeof *out);
    out->op = info.op;
    out->arch = info.arch;
    out->ip = info.instruction_pointer;
    out->sp = info.stack_pointer;
    switch (info.op) {
    case PTRACE_SYSCALL_INFO_ENTRY:
        out->nr = info.entry.nr;
        memcpy(out->args, info.entry.args, sizeof out->args);
        break;
    case PTRACE_SYSCALL_INFO_SECCOMP:
        out->nr = info.seccomp.nr;
        memcpy(out->args, info.seccomp.args, sizeof out->args);
        out->ret_data = info.seccomp.ret_data;
        break;
    case PTRACE_SYSCALL_INFO_EXIT:
        out->rval = info.exit.rval;
        out->is_error = info.exit.is_error;
        break;
    default:
        break;
    }
    return 0;
}

long lp_read_memory(pid_t pid, uintptr_t addr, void *out, size_t n) {
    struct iovec local = { out, n }, remote = { (void *)addr, n };
    ssize_t r = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    return r < 0 ? -1 : (long)r;
}

long lp_write_memory(pid_t pid, uintptr_t addr, const void *in, size_t n) {
    struct iovec local = { (void *)in, n }, remote = { (void *)addr, n };
    ssize_t r = process_vm_writev(pid, &local, 1, &remote, 1, 0);
    return r < 0 ? -1 : (long)r;
}

int lp_current_cpu(void) { return sched_getcpu(); }

void lp_fill_mask(const int *cpus, int n, unsigned char *mask, size_t bytes) {
    memset(mask, 0, bytes);
    for (int i = 0; i < n; i++)
        if (cpus[i] >= 0 && (size_t)cpus[i] / 8 < bytes) mask[cpus[i] / 8] |= (unsigned char)(1u << (cpus[i] % 8));
}

long lp_read_string(pid_t pid, uintptr_t addr, char *out, size_t cap) {
    return lp_read_string_word(pid, addr, out, cap, 0, NULL, NULL);
}

long lp_read_string_word(pid_t pid, uintptr_t addr, char *out, size_t cap,
                         uintptr_t word_addr, uint64_t *word, int *word_ok) {
    if (word_ok) *word_ok = 0;
    if (cap == 0) return -1;
    size_t got = 0;
    const size_t page = 4096;
    while (got + 1 < cap) {
        uintptr_t at = addr + got;
        size_t chunk = page - (at % page);
        if (chunk > cap - 1 - got) chunk = cap - 1 - got;
        ssize_t r;
        if (got == 0 && word_addr != 0) {
            /* The word first: a partial read stops at the first iovec that fails. */
            struct iovec local[2] = { { word, 8 }, { out, chunk } };
            struct iovec remote[2] = { { (void *)word_addr, 8 }, { (void *)at, chunk } };
            r = process_vm_readv(pid, local, 2, remote, 2, 0);
            if (r >= 8) { *word_ok = 1; r -= 8; }
            else { /* the word is unreadable (-1 EFAULT, or a short read): read the string alone */
                struct iovec l1 = { out, chunk }, r1 = { (void *)at, chunk };
                r = process_vm_readv(pid, &l1, 1, &r1, 1, 0);
            }
        } else {
            struct iovec local = { out + got, chunk }, remote = { (void *)at, chunk };
            r = process_vm_readv(pid, &local, 1, &remote, 1, 0);
        }
        if (r <= 0) { out[got] = 0; return got ? (long)got : -1; }
        void *nul = memchr(out + got, 0, (size_t)r);
        if (nul) return (long)((char *)nul - out);
        got += (size_t)r;
    }
    out[got] = 0;
    return (long)got;
}

#if defined(__x86_64__)
#include <sys/user.h>
const int lp_can_skip_syscall = 1;
int lp_skip_syscall(pid_t pid, int64_t retval) {
    if (ptrace(PTRACE_POKEUSER, pid, (void *)offsetof(struct user_regs_struct, orig_rax), (void *)(long)-1) != 0) return -1;
    return ptrace(PTRACE_POKEUSER, pid, (void *)offsetof(struct user_regs_struct, rax), (void *)(long)retval) == 0 ? 0 : -1;
}
#else
const int lp_can_skip_syscall = 0;
int lp_skip_syscall(pid_t pid, int64_t retval) { (void)pid; (void)retval; return -1; }
#endif

int lp_probe_path(const char *path, int nofollow) {
    struct stat st;
    return fstatat(AT_FDCWD, path, &st, nofollow ? AT_SYMLINK_NOFOLLOW : 0) == 0 ? 0 : errno;
}

int lp_wifexited(int s) { return WIFEXITED(s); }
int lp_wexitstatus(int s) { return WEXITSTATUS(s); }
int lp_wifsignaled(int s) { return WIFSIGNALED(s); }
int lp_wtermsig(int s) { return WTERMSIG(s); }
int lp_wifstopped(int s) { return WIFSTOPPED(s); }
int lp_wstopsig(int s) { return WSTOPSIG(s); }

pid_t lp_wait_all(int *status) {
    pid_t p;
    do { p = waitpid(-1, status, __WALL); } while (p < 0 && errno == EINTR);
    return p;
}

/* What loadprobe was started with: the program gets the same. Captured before
 * Swift's runtime or our own handlers can change anything. */
static sigset_t lp_initial_mask;
static int lp_initial_ignored[65];
__attribute__((constructor)) static void lp_capture_initial_signals(void) {
    sigprocmask(SIG_SETMASK, NULL, &lp_initial_mask);
    for (int s = 1; s < 65; s++) {
        struct sigaction sa;
        if (s == SIGKILL || s == SIGSTOP) continue;
        if (sigaction(s, NULL, &sa) == 0) lp_initial_ignored[s] = (sa.sa_handler == SIG_IGN);
    }
}

/* The seccomp filter: RET_TRACE for the traced calls and for the audit
 * library's close(LP_PREINIT_MAGIC_FD); everything else, and every call of a
 * foreign ABI (x32, i386), is allowed without a stop. */
static int lp_install_filter(int affinity) {
    struct sock_filter prog[8 + 2 * LP_NCALLS + LP_NVIEW + 24];
    int n = 0;
    const int ntraced = LP_NCALLS;
    /* [0] load arch; [1] if not native, allow. Jumps are patched below. */
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    int arch_check = n;
    prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, lp_native_audit_arch, 0, 0);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
#if defined(__x86_64__)
    int x32_check = n; /* x32 calls have bit 30 set */
    prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 0);
#endif
    int first_cmp = n;
    for (int i = 0; i < ntraced; i++)
        prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)lp_calls[i].nr, 0, 0);
    int ncmp = ntraced;
    for (int i = 0; i < LP_NVIEW; i++)
        prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)lp_view_calls[i], 0, 0);
    ncmp += LP_NVIEW;
    if (affinity) {
        prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)SYS_sched_getaffinity, 0, 0);
        prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)SYS_sched_setaffinity, 0, 0);
        ncmp += 2;
    }
    /* seccomp and ptrace: the program's own sandbox and tracing (see PtraceSession) */
    prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)SYS_seccomp, 0, 0);
    prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)SYS_ptrace, 0, 0);
    ncmp += 2;
    /* prctl: traced only for PR_{GET,SET}_SECCOMP and PR_{GET,SET}_NO_NEW_PRIVS */
    int prctl_cmp = n;
    prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)SYS_prctl, 0, 0);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]));
    int prctl_args = n;
    prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PR_GET_SECCOMP, 0, 0);
    prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PR_SET_SECCOMP, 0, 0);
    prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PR_SET_NO_NEW_PRIVS, 0, 0);
    prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PR_GET_NO_NEW_PRIVS, 0, 0);
    int prctl_other = n;
    prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JA, 0, 0, 0);
    int close_cmp = n; /* close: traced only for the magic fd (low 32 bits of arg 0) */
    prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)SYS_close, 0, 0);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]));
    int magic_cmp = n;
    prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)LP_PREINIT_MAGIC_FD, 0, 0);
    int allow = n;
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    int trace = n;
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE | LP_FILTER_DATA);

    /* BPF jumps go forward only: patch the offsets now that targets are known. */
    prog[arch_check].jt = 0;
    prog[arch_check].jf = (uint8_t)(allow - arch_check - 1);
#if defined(__x86_64__)
    prog[x32_check].jt = (uint8_t)(allow - x32_check - 1);
    prog[x32_check].jf = 0;
#endif
    for (int i = first_cmp; i < first_cmp + ncmp; i++) {
        prog[i].jt = (uint8_t)(trace - i - 1);
        prog[i].jf = 0;
    }
    prog[prctl_cmp].jt = 0;
    prog[prctl_cmp].jf = (uint8_t)(close_cmp - prctl_cmp - 1);
    for (int i = prctl_args; i < prctl_args + 4; i++) {
        prog[i].jt = (uint8_t)(trace - i - 1);
        prog[i].jf = 0;
    }
    prog[prctl_other].k = (uint32_t)(allow - prctl_other - 1);
    prog[close_cmp].jt = 0;
    prog[close_cmp].jf = (uint8_t)(allow - close_cmp - 1);
    prog[magic_cmp].jt = (uint8_t)(trace - magic_cmp - 1);
    prog[magic_cmp].jf = (uint8_t)(allow - magic_cmp - 1);

    struct sock_fprog fprog = { .len = (unsigned short)n, .filter = prog };
    /* no_new_privs only where the kernel requires it for the filter (without
     * CAP_SYS_ADMIN): as root the program keeps set-user-ID and file
     * capabilities of what it runs, as untraced. */
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) == 0) return 0;
    if (errno != EACCES) return -1;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog);
}

#if defined(__x86_64__)
int lp_emulate_strict_mode(pid_t tid, uint64_t sp) {
    /* What strict mode allows (kernel/seccomp.c, mode1_syscalls). */
    struct sock_filter prog[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 6),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_read, 5, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_write, 4, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_exit, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_rt_sigreturn, 2, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE | LP_STRICT_DATA),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE | LP_STRICT_DATA),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    /* The filter and its sock_fprog go on the task's stack, below the red
     * zone: the kernel copies them during the call. */
    uint64_t at = (sp - 128 - sizeof prog - 64) & ~(uint64_t)15;
    struct sock_fprog fprog = { .len = (unsigned short)(sizeof prog / sizeof prog[0]),
                                .filter = (struct sock_filter *)(uintptr_t)(at + 32) };
    struct user_fprog_image { uint64_t len; uint64_t filter; } image = { fprog.len, (uint64_t)(uintptr_t)fprog.filter };
    if (lp_write_memory(tid, at, &image, sizeof image) != (long)sizeof image) return -1;
    if (lp_write_memory(tid, at + 32, prog, sizeof prog) != (long)sizeof prog) return -1;
    struct user_regs_struct regs;
    if (ptrace(PTRACE_GETREGS, tid, NULL, &regs) != 0) return -1;
    regs.orig_rax = SYS_seccomp;
    regs.rdi = SECCOMP_SET_MODE_FILTER;
    regs.rsi = 0;
    regs.rdx = at;
    return ptrace(PTRACE_SETREGS, tid, NULL, &regs) == 0 ? 0 : -1;
}
#else
int lp_emulate_strict_mode(pid_t tid, uint64_t sp) { (void)tid; (void)sp; return -1; }
#endif

static int lp_status_field(pid_t tid, const char *field, char *out, size_t cap) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)tid);
    FILE *f = fopen(path, "re");
    if (!f) return -1;
    char line[256];
    size_t n = strlen(field);
    int found = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ' || *v == '\t') v++;
            snprintf(out, cap, "%s", v);
            found = 0;
            break;
        }
    }
    fclose(f);
    return found;
}

_Static_assert(LP_O_TMPFILE == O_TMPFILE, "O_TMPFILE");
_Static_assert(LP_O_PATH == O_PATH, "O_PATH");
/* The wire's la_objsearch and la_activity flags are <link.h>'s (TraceFormat's
 * AuditSearchFlag and AuditActivity are checked against these by a test). */
_Static_assert(LP_LA_SER_ORIG == LA_SER_ORIG && LP_LA_SER_LIBPATH == LA_SER_LIBPATH &&
               LP_LA_SER_RUNPATH == LA_SER_RUNPATH && LP_LA_SER_CONFIG == LA_SER_CONFIG &&
               LP_LA_SER_DEFAULT == LA_SER_DEFAULT && LP_LA_SER_SECURE == LA_SER_SECURE, "LA_SER_*");
_Static_assert(LA_ACT_CONSISTENT == 0 && LA_ACT_ADD == 1 && LA_ACT_DELETE == 2, "LA_ACT_*");

/* Only async-signal-safe calls after the fork: no malloc (opendir), no stdio. */
static void lp_remove_tree_raw(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        char buf[4096];
        /* Read to the end, removing; again from the start while a pass removed
         * something (entries may move as others go). */
        for (int removed = 1, passes = 0; removed && passes < 16; passes++) {
            removed = 0;
            lseek(fd, 0, SEEK_SET);
            for (;;) {
                long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
                if (n <= 0) break;
                for (long off = 0; off < n;) {
                    struct { uint64_t ino; int64_t off; unsigned short reclen; unsigned char type; char name[]; } *d = (void *)(buf + off);
                    if (!(d->name[0] == '.' && (d->name[1] == 0 || (d->name[1] == '.' && d->name[2] == 0))))
                        if (unlinkat(fd, d->name, 0) == 0) removed = 1;
                    off += d->reclen;
                }
            }
        }
        close(fd);
    }
    rmdir(dir);
}

int lp_remove_at_exit(const char *dir) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return errno;
    pid_t child = fork();
    if (child < 0) { int e = errno; close(p[0]); close(p[1]); return e; }
    if (child == 0) {
        if (fork() != 0) _exit(0);
        /* The grandchild: out of the terminal's process group and deaf to its
         * signals, holding nothing of loadprobe's but the pipe's read end. */
        setsid();
        prctl(PR_SET_NAME, "loadprobe-clean", 0, 0, 0);
        for (int s = 1; s < 32; s++) if (s != SIGKILL && s != SIGSTOP) signal(s, SIG_IGN);
        int keep = p[0];
        if (keep > 0) syscall(SYS_close_range, 0u, (unsigned)keep - 1, 0u);
        syscall(SYS_close_range, (unsigned)keep + 1, ~0u, 0u);
        char c;
        while (read(keep, &c, 1) != 0) { if (errno != EINTR) break; }
        lp_remove_tree_raw(dir);
        _exit(0);
    }
    close(p[0]);
    int st;
    while (waitpid(child, &st, 0) < 0 && errno == EINTR) {}
    return 0; /* p[1] stays open until loadprobe ends */
}

void lp_close_from(int fd) {
    if (syscall(SYS_close_range, (unsigned)fd, ~0u, 0u) == 0) return;
    for (int i = fd; i < 65536; i++) close(i);
}

int lp_tgkill(pid_t pid, pid_t tid, int sig) { return (int)syscall(SYS_tgkill, pid, tid, sig); }

int lp_task_has_sys_admin(pid_t tid) {
    char v[64];
    if (lp_status_field(tid, "CapEff", v, sizeof v) != 0) return -1;
    unsigned long long caps = strtoull(v, NULL, 16);
    return (caps >> 21) & 1; /* CAP_SYS_ADMIN */
}

int lp_task_no_new_privs(pid_t tid) {
    char v[64];
    if (lp_status_field(tid, "NoNewPrivs", v, sizeof v) != 0) return -1;
    return v[0] == '1';
}

int lp_file_has_capabilities(const char *path) {
    return getxattr(path, "security.capability", NULL, 0) > 0;
}

/* What the child does between fork/clone and exec; returns the errno of the step that
 * failed (the caller reports it through the pipe and exits). Only async-signal-safe calls. */
static int lp_child_exec(const char *path, char *const argv[], char *const envp[],
                         const struct lp_spawn_options *opts) {
    for (int s = 1; s < 65; s++) {
        if (s == SIGKILL || s == SIGSTOP) continue;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = lp_initial_ignored[s] ? SIG_IGN : SIG_DFL;
        sigaction(s, &sa, NULL);
    }
    if (opts->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(opts->cpu, &set);
        sched_setaffinity(0, sizeof set, &set);
    }
    if (opts->install_filter && lp_install_filter(opts->cpu >= 0) != 0) return errno ? errno : EINVAL;
    sigprocmask(SIG_SETMASK, &lp_initial_mask, NULL);
    if (opts->stop_before_exec) raise(SIGSTOP);
    execve(path, argv, envp);
    return errno;
}

struct lp_child_args {
    const char *path;
    char *const *argv;
    char *const *envp;
    const struct lp_spawn_options *opts;
    int pipe_w;
};

/* Runs lp_child_exec; when it returns, exec failed: its errno goes to the pipe. */
static int lp_child_run(struct lp_child_args *a) {
    int err = lp_child_exec(a->path, a->argv, a->envp, a->opts);
    ssize_t w;
    do { w = write(a->pipe_w, &err, sizeof err); } while (w < 0 && errno == EINTR);
    _exit(127);
}

static int lp_vfork_child(void *p) { return lp_child_run(p); }

pid_t lp_spawn(const char *path, char *const argv[], char *const envp[],
               const struct lp_spawn_options *opts, int *result_fd) {
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0) return -1;
    pid_t pid;
    if (!opts->stop_before_exec) {
        /* Nothing needs the child stopped: share our memory until it has exec'd
         * (CLONE_VM | CLONE_VFORK, as posix_spawn does). fork would copy our page
         * tables and the exec would then tear that copy down again, all before the
         * program runs (with the stop before exec, the program started ~0.9 ms
         * later). All signals stay blocked until the child has reset their
         * dispositions, so no handler of ours runs on its stack. */
        enum { STACK = 64 * 1024 };
        void *stack = mmap(NULL, STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (stack == MAP_FAILED) { close(pipefd[0]); close(pipefd[1]); return -1; }
        struct lp_child_args a = { path, argv, envp, opts, pipefd[1] };
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pid = clone(lp_vfork_child, (char *)stack + STACK, CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
        int e = errno;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        munmap(stack, STACK);
        errno = e;
    } else {
        pid = fork();
        if (pid == 0) {
            close(pipefd[0]);
            struct lp_child_args a = { path, argv, envp, opts, pipefd[1] };
            lp_child_run(&a);
        }
    }
    if (pid < 0) {
        int e = errno;
        close(pipefd[0]);
        close(pipefd[1]);
        errno = e;
        return -1;
    }
    close(pipefd[1]);
    *result_fd = pipefd[0];
    return pid;
}

int lp_spawn_exec_result(int fd) {
    int err = 0;
    ssize_t r;
    do { r = read(fd, &err, sizeof err); } while (r < 0 && errno == EINTR);
    close(fd);
    return r == (ssize_t)sizeof err ? err : 0;
}

int lp_pin_self(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set) == 0 ? 0 : errno;
}

int lp_allowed_cpus(int *cpus, int cap) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
    int n = 0;
    for (int c = 0; c < CPU_SETSIZE && n < cap; c++)
        if (CPU_ISSET(c, &set)) cpus[n++] = c;
    return n;
}

int lp_set_affinity(pid_t tid, const int *cpus, int n) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int i = 0; i < n; i++) CPU_SET(cpus[i], &set);
    return sched_setaffinity(tid, sizeof set, &set) == 0 ? 0 : errno;
}

static volatile sig_atomic_t lp_forward_pid;
static void lp_forward_handler(int sig, siginfo_t *info, void *ctx) {
    (void)ctx;
    /* A terminal's signal reaches the whole foreground process group, the
     * program included: forward only what was sent to loadprobe alone. */
    if (info && info->si_code == SI_KERNEL) return;
    pid_t p = (pid_t)lp_forward_pid;
    if (p > 0) kill(p, sig);
}

void lp_forward_signals_to(pid_t pid) {
    static const int sigs[] = { SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGALRM };
    lp_forward_pid = pid;
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        if (pid > 0) {
            sa.sa_sigaction = lp_forward_handler;
            sa.sa_flags = SA_SIGINFO | SA_RESTART;
        } else {
            sa.sa_handler = lp_initial_ignored[sigs[i]] ? SIG_IGN : SIG_DFL;
        }
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[i], &sa, NULL);
    }
}


uint64_t lp_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void lp_wait_child_event(int pid, int *pidfd, int timeout_ms) {
    if (*pidfd == -1) {
        long fd = syscall(SYS_pidfd_open, pid, 0);
        *pidfd = fd >= 0 ? (int)fd : -2;
        if (fd >= 0) (void)fcntl((int)fd, F_SETFD, FD_CLOEXEC);
    }
    if (*pidfd >= 0) {
        /* readable when the process has exited */
        struct pollfd p = { .fd = *pidfd, .events = POLLIN };
        (void)poll(&p, 1, timeout_ms);
    } else {
        usleep((useconds_t)timeout_ms * 1000);
    }
}

void lp_pidfd_close(int *pidfd) {
    if (*pidfd >= 0) close(*pidfd);
    *pidfd = -1;
}

const char *lp_libc_version(void) { return gnu_get_libc_version(); }

int lp_is_tmpfs(const char *path) {
    struct statfs fs;
    return statfs(path, &fs) == 0 && fs.f_type == TMPFS_MAGIC;
}
