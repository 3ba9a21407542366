/*
 * CAudit: the few system-call shims Swift cannot call directly (variadic
 * ptrace, fork→seccomp→exec in one async-signal-safe function, seccomp filter
 * install, signal forwarding), plus the audit wire format shared with audit-lib/.
 * Every symbol carries the lp_ prefix.
 */
#ifndef CAUDIT_H
#define CAUDIT_H

#include <stdint.h>
#include <fcntl.h>
#include <sys/ptrace.h>
#include <stddef.h>
#include <sys/types.h>
#include "loadprobe_wire.h"

/* The traced calls, numbered independently of the architecture. */
enum lp_call {
    LP_CALL_OPEN = 1, LP_CALL_OPENAT, LP_CALL_OPENAT2, LP_CALL_CREAT,
    LP_CALL_STAT, LP_CALL_LSTAT, LP_CALL_NEWFSTATAT, LP_CALL_STATX,
    LP_CALL_ACCESS, LP_CALL_FACCESSAT, LP_CALL_FACCESSAT2,
    LP_CALL_READLINK, LP_CALL_READLINKAT, LP_CALL_EXECVE, LP_CALL_EXECVEAT,
    LP_CALL_PREINIT_SIGNAL, /* close(LP_PREINIT_MAGIC_FD) from the audit library */
    LP_CALL_SCHED_GETAFFINITY, /* traced only while programs start on the tracer's CPU */
    LP_CALL_SCHED_SETAFFINITY,
    LP_CALL_VIEW_CHANGE, /* unshare, setns, chroot, pivot_root, set*id, setgroups, capset */
    LP_CALL_PRCTL_SECURITY, /* prctl PR_{GET,SET}_{SECCOMP,NO_NEW_PRIVS}: the program's own sandbox */
    LP_CALL_SECCOMP,
    LP_CALL_PTRACE, /* the program tracing: it fails under loadprobe's tracer */
    LP_CALL_COUNT
};

/* Architecture syscall number → enum lp_call (0 when not traced). */
int lp_call_for_nr(uint64_t nr);
/* The native audit architecture (AUDIT_ARCH_*) of this build. */
extern const uint32_t lp_native_audit_arch;

/* ptrace without varargs. */
long lp_ptrace(int request, pid_t pid, uintptr_t addr, uintptr_t data);

/* PTRACE_GET_SYSCALL_INFO, flattened. op: 0 none, 1 entry, 2 exit, 3 seccomp. */
struct lp_syscall_info {
    uint8_t op;
    uint32_t arch;
    uint64_t nr;
    uint64_t args[6];
    int64_t rval;
    uint8_t is_error;
    uint32_t ret_data; /* at a seccomp stop: the SECCOMP_RET_DATA of the filter that stopped it */
    uint64_t ip; /* the task's instruction and stack pointers (any stop) */
    uint64_t sp;
};
int lp_get_syscall_info(pid_t pid, struct lp_syscall_info *out);
/* The SECCOMP_RET_DATA of loadprobe's own filter, and of the filter that
 * emulates SECCOMP_MODE_STRICT for a program that asked for it. Any other
 * value at a seccomp stop comes from a filter the program installed. */
#define LP_FILTER_DATA 0x4c50u
#define LP_STRICT_DATA 0x4c53u
/* At the seccomp stop of a request for SECCOMP_MODE_STRICT (at stack pointer
 * sp): the call becomes seccomp(SECCOMP_SET_MODE_FILTER) of a filter that
 * allows what strict mode allows (read, write, exit, rt_sigreturn) and stops
 * with LP_STRICT_DATA on anything else. 0, or -1 when not possible here. */
int lp_emulate_strict_mode(pid_t tid, uint64_t sp);
/* prctl and seccomp operations the tracer tells apart (sys/prctl.h, linux/seccomp.h). */
enum {
    LP_PR_GET_SECCOMP = 21, LP_PR_SET_SECCOMP = 22, LP_PR_SET_NO_NEW_PRIVS = 38, LP_PR_GET_NO_NEW_PRIVS = 39,
    LP_SECCOMP_MODE_STRICT = 1, LP_SECCOMP_MODE_FILTER = 2,
    LP_SECCOMP_SET_MODE_STRICT = 0, LP_SECCOMP_SET_MODE_FILTER = 1,
};
/* ptrace requests, options, events and syscall-info kinds the tracer uses,
 * from <sys/ptrace.h> (Swift imports that header's enum inconsistently). */
enum {
    LP_PTRACE_CONT = PTRACE_CONT, LP_PTRACE_SYSCALL = PTRACE_SYSCALL,
    LP_PTRACE_GETEVENTMSG = PTRACE_GETEVENTMSG, LP_PTRACE_SEIZE = PTRACE_SEIZE, LP_PTRACE_LISTEN = PTRACE_LISTEN,
    LP_PTRACE_O_TRACESYSGOOD = PTRACE_O_TRACESYSGOOD, LP_PTRACE_O_TRACEFORK = PTRACE_O_TRACEFORK,
    LP_PTRACE_O_TRACEVFORK = PTRACE_O_TRACEVFORK, LP_PTRACE_O_TRACECLONE = PTRACE_O_TRACECLONE,
    LP_PTRACE_O_TRACEEXEC = PTRACE_O_TRACEEXEC, LP_PTRACE_O_TRACESECCOMP = PTRACE_O_TRACESECCOMP,
    LP_PTRACE_O_EXITKILL = PTRACE_O_EXITKILL,
    LP_PTRACE_EVENT_FORK = PTRACE_EVENT_FORK, LP_PTRACE_EVENT_VFORK = PTRACE_EVENT_VFORK,
    LP_PTRACE_EVENT_CLONE = PTRACE_EVENT_CLONE, LP_PTRACE_EVENT_EXEC = PTRACE_EVENT_EXEC,
    LP_PTRACE_EVENT_SECCOMP = PTRACE_EVENT_SECCOMP, LP_PTRACE_EVENT_STOP = PTRACE_EVENT_STOP,
    LP_PTRACE_SYSCALL_INFO_ENTRY = PTRACE_SYSCALL_INFO_ENTRY, LP_PTRACE_SYSCALL_INFO_EXIT = PTRACE_SYSCALL_INFO_EXIT,
    LP_PTRACE_SYSCALL_INFO_SECCOMP = PTRACE_SYSCALL_INFO_SECCOMP,
    LP_AT_FDCWD = AT_FDCWD, LP_AT_SYMLINK_NOFOLLOW = AT_SYMLINK_NOFOLLOW,
    /* GNU extensions: spelled out here (Swift does not see _GNU_SOURCE),
     * checked against the headers in shims.c. */
    LP_O_TMPFILE = 020000000 | 0200000,
};
/* open's O_PATH (not exported to Swift by Glibc). */
enum { LP_O_PATH = 010000000 };
/* Starts a process of its own (not a child: nothing waits for it) that
 * removes the files of dir and dir itself once loadprobe has ended in any
 * way, SIGKILL included: it waits for the end of a pipe whose write end
 * loadprobe holds (close-on-exec). Returns 0, or an errno. */
int lp_remove_at_exit(const char *dir);
/* Closes every descriptor from fd on. */
void lp_close_from(int fd);
/* Sends sig to one task. */
int lp_tgkill(pid_t pid, pid_t tid, int sig);
/* Whether the task has CAP_SYS_ADMIN in its effective set (-1: unknown). */
int lp_task_has_sys_admin(pid_t tid);
/* The NoNewPrivs flag of a task (/proc/TID/status), or -1. */
int lp_task_no_new_privs(pid_t tid);
/* Whether the file has file capabilities (security.capability). */
int lp_file_has_capabilities(const char *path);

/* Reads a NUL-terminated string of at most cap-1 bytes from another process,
 * page by page (process_vm_readv fails as a whole at an unmapped page).
 * Returns its length, or -1. out is always NUL-terminated when cap > 0. */
long lp_read_string(pid_t pid, uintptr_t addr, char *out, size_t cap);
/* lp_read_string that also reads the 8-byte word at word_addr in the same
 * system call (when word_addr != 0): *word_ok is 1 when it was read. */
long lp_read_string_word(pid_t pid, uintptr_t addr, char *out, size_t cap,
                         uintptr_t word_addr, uint64_t *word, int *word_ok);
/* Reads n bytes; returns bytes read or -1. */
long lp_read_memory(pid_t pid, uintptr_t addr, void *out, size_t n);
/* Writes n bytes into another process; returns bytes written or -1. */
long lp_write_memory(pid_t pid, uintptr_t addr, const void *in, size_t n);
/* The CPU the caller runs on, or -1. */
int lp_current_cpu(void);
/* Fills a cpu_set_t-layout mask (bytes, little-endian bit order) with the given CPUs. */
void lp_fill_mask(const int *cpus, int n, unsigned char *mask, size_t bytes);

/* At a seccomp stop: skip the call and make it return `retval` (x86_64:
 * orig_rax = -1, rax = retval). Returns 0, or -1 where not supported. */
int lp_skip_syscall(pid_t pid, int64_t retval);
/* 1 when lp_skip_syscall works on this architecture. */
extern const int lp_can_skip_syscall;
/* fstatat(AT_FDCWD, path, …, nofollow ? AT_SYMLINK_NOFOLLOW : 0): 0 or errno. */
int lp_probe_path(const char *path, int nofollow);

/* Wait-status macros as functions. */
int lp_wifexited(int s); int lp_wexitstatus(int s);
int lp_wifsignaled(int s); int lp_wtermsig(int s);
int lp_wifstopped(int s); int lp_wstopsig(int s);
/* waitpid(-1, &status, __WALL), retrying EINTR. Returns pid or -1 (errno kept). */
pid_t lp_wait_all(int *status);

/* Spawning. */
struct lp_spawn_options {
    int install_filter;   /* seccomp RET_TRACE filter for the traced calls */
    int stop_before_exec; /* raise SIGSTOP before execve so the parent can PTRACE_SEIZE */
    int cpu;              /* ≥0: pin the child to this CPU before exec; the filter then
                             also stops sched_getaffinity/sched_setaffinity so the
                             program can be shown its own mask */
};
/* Starts path with argv and envp; in the child: signal dispositions and mask as
 * loadprobe found them, [pin], [no_new_privs + seccomp filter], [SIGSTOP], execve.
 * With stop_before_exec the child is forked and stops itself so the caller can
 * PTRACE_SEIZE it; without, it shares loadprobe's memory until its exec
 * (CLONE_VM | CLONE_VFORK) and lp_spawn returns once it has exec'd or failed.
 * Returns the child's pid (-1 and errno when it cannot be made) and in *result_fd
 * a pipe: lp_spawn_exec_result(fd) tells whether exec happened (after the seize
 * and SIGCONT when stopped). */
pid_t lp_spawn(const char *path, char *const argv[], char *const envp[],
               const struct lp_spawn_options *opts, int *result_fd);
/* Reads the exec outcome from the pipe lp_spawn gave: 0 when exec happened, else errno. Closes fd. */
int lp_spawn_exec_result(int fd);

/* Pin the calling thread to one CPU; returns 0 or errno. */
int lp_pin_self(int cpu);
/* The CPUs the calling thread may run on: fills cpus (up to cap), returns the count. */
int lp_allowed_cpus(int *cpus, int cap);
/* Set the affinity mask of tid to the given CPU list; returns 0 or errno. */
int lp_set_affinity(pid_t tid, const int *cpus, int n);

/* Signals: while tracing, SIGINT/SIGQUIT from the terminal reach the program
 * directly (same process group); a signal sent to loadprobe itself by kill()
 * (SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2) is forwarded to the
 * program. lp_forward_signals_to(pid) installs the handlers; 0 to stop. */
void lp_forward_signals_to(pid_t pid);
/* The last signal forwarded (0 if none). */

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t lp_monotonic_ns(void);

/* Waits up to timeout_ms for child pid to change state (exit, stop, or a
 * signal to loadprobe), through a pidfd when the kernel has them (5.3+),
 * else by sleeping. *pidfd caches the descriptor: start with -1 and close it
 * with lp_pidfd_close when done. */
void lp_wait_child_event(int pid, int *pidfd, int timeout_ms);
void lp_pidfd_close(int *pidfd);
/* 1 when path is on tmpfs. */
int lp_is_tmpfs(const char *path);
/* The running glibc's version string ("2.36"), or "" on another libc. */
const char *lp_libc_version(void);

#endif
