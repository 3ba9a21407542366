/*
 * Raw Linux system calls and the few kernel ABI constants the audit library
 * needs. Freestanding: no libc, no system headers. x86_64 and aarch64.
 *
 * Every call returns the kernel's raw result: >= 0 on success, -errno on error.
 */
#ifndef LP_SYS_H
#define LP_SYS_H

#if !defined(__x86_64__) && !defined(__aarch64__)
#error "loadprobe audit library: only x86_64 and aarch64 are supported"
#endif

typedef unsigned long lp_uptr;
typedef unsigned long long lp_u64;
typedef unsigned int lp_u32;
typedef unsigned short lp_u16;

#define LP_HIDDEN __attribute__((visibility("hidden")))
#define LP_EXPORT __attribute__((visibility("default")))
#define LP_LIKELY(x) __builtin_expect(!!(x), 1)
#define LP_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* ---- system call numbers ---- */
#if defined(__x86_64__)
#define LP_NR_read 0
#define LP_NR_close 3
#define LP_NR_lseek 8
#define LP_NR_pread64 17
#define LP_NR_mmap 9
#define LP_NR_munmap 11
#define LP_NR_sched_yield 24
#define LP_NR_madvise 28
#define LP_NR_getpid 39
#define LP_NR_ftruncate 77
#define LP_NR_getcwd 79
#define LP_NR_getppid 110
#define LP_NR_clock_gettime 228
#define LP_NR_openat 257
#define LP_NR_newfstatat 262
#define LP_NR_fallocate 285
#define LP_NR_prlimit64 302
#else /* aarch64: the generic table */
#define LP_NR_getcwd 17
#define LP_NR_ftruncate 46
#define LP_NR_fallocate 47
#define LP_NR_openat 56
#define LP_NR_newfstatat 79 /* fstatat */
#define LP_NR_close 57
#define LP_NR_lseek 62
#define LP_NR_read 63
#define LP_NR_pread64 67
#define LP_NR_clock_gettime 113
#define LP_NR_sched_yield 124
#define LP_NR_getpid 172
#define LP_NR_getppid 173
#define LP_NR_munmap 215
#define LP_NR_mmap 222
#define LP_NR_madvise 233
#define LP_NR_prlimit64 261
#endif

/* ---- constants (identical on x86_64 and aarch64) ---- */
#define LP_AT_FDCWD (-100)
#define LP_AT_EMPTY_PATH 0x1000
#define LP_O_RDONLY 0
#define LP_O_RDWR 02
#define LP_O_NOCTTY 0400
#define LP_O_NONBLOCK 04000
#define LP_SEEK_END 2
#define LP_O_CREAT 0100
#define LP_O_EXCL 0200
#define LP_O_CLOEXEC 02000000
#define LP_PROT_READ 1
#define LP_PROT_WRITE 2
#define LP_MAP_SHARED 0x01
#define LP_MAP_PRIVATE 0x02
#define LP_MAP_FIXED 0x10
#define LP_MAP_ANONYMOUS 0x20
#define LP_MADV_RANDOM 1
#define LP_MADV_HUGEPAGE 14
#define LP_MADV_WIPEONFORK 18   /* Linux 4.14 */
#define LP_MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#define LP_EINTR 4
#define LP_EEXIST 17
#define LP_EINVAL 22
#define LP_ENOSYS 38
#define LP_EOPNOTSUPP 95
#define LP_RLIMIT_FSIZE 1
#define LP_RLIM_INFINITY (~0ull)
#define LP_CLOCK_MONOTONIC 1
#define LP_AT_NULL 0
#define LP_AT_PAGESZ 6
#define LP_AT_EXECFN 31
#define LP_AT_SYSINFO_EHDR 33

struct lp_timespec { long tv_sec; long tv_nsec; };
struct lp_rlimit { lp_u64 cur; lp_u64 max; };

/* ---- the system call instruction ---- */
#if defined(__x86_64__)
static inline long lp_sc6(long n, long a, long b, long c, long d, long e, long f)
{
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}
#else
static inline long lp_sc6(long n, long a, long b, long c, long d, long e, long f)
{
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ volatile("svc #0"
                     : "+r"(x0)
                     : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                     : "memory");
    return x0;
}
#endif

#define lp_sc0(n) lp_sc6((n), 0, 0, 0, 0, 0, 0)
#define lp_sc1(n, a) lp_sc6((n), (long)(a), 0, 0, 0, 0, 0)
#define lp_sc2(n, a, b) lp_sc6((n), (long)(a), (long)(b), 0, 0, 0, 0)
#define lp_sc3(n, a, b, c) lp_sc6((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define lp_sc4(n, a, b, c, d) lp_sc6((n), (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)

static inline long lp_openat(const char *path, int flags, int mode)
{
    long r;
    do r = lp_sc4(LP_NR_openat, LP_AT_FDCWD, path, flags, mode); while (r == -LP_EINTR);
    return r;
}
/* stat(2) as glibc makes it (newfstatat; fstat is newfstatat(fd, "", AT_EMPTY_PATH)).
 * The buffer is larger than struct stat on x86_64 (144 bytes) and aarch64 (128). */
static inline long lp_fstatat(int dirfd, const char *path, int flags)
{
    unsigned long long st[32];
    return lp_sc4(LP_NR_newfstatat, dirfd, path, st, flags);
}
static inline long lp_close(int fd) { return lp_sc1(LP_NR_close, fd); }
static inline long lp_lseek(int fd, long off, int whence) { return lp_sc3(LP_NR_lseek, fd, off, whence); }
static inline long lp_read(int fd, void *buf, lp_u64 n)
{
    long r;
    do r = lp_sc3(LP_NR_read, fd, buf, n); while (r == -LP_EINTR);
    return r;
}
static inline long lp_pread(int fd, void *buf, lp_u64 n, lp_u64 off)
{
    long r;
    do r = lp_sc4(LP_NR_pread64, fd, buf, n, off); while (r == -LP_EINTR);
    return r;
}
static inline long lp_ftruncate(int fd, lp_u64 len)
{
    long r;
    do r = lp_sc2(LP_NR_ftruncate, fd, len); while (r == -LP_EINTR);
    return r;
}
static inline long lp_fallocate(int fd, int mode, lp_u64 off, lp_u64 len)
{
    long r;
    do r = lp_sc4(LP_NR_fallocate, fd, mode, off, len); while (r == -LP_EINTR);
    return r;
}
static inline long lp_mmap(void *addr, lp_u64 len, int prot, int flags, int fd, lp_u64 off)
{
    return lp_sc6(LP_NR_mmap, (long)addr, (long)len, prot, flags, fd, (long)off);
}
static inline long lp_munmap(void *addr, lp_u64 len) { return lp_sc2(LP_NR_munmap, addr, len); }
static inline long lp_madvise(void *addr, lp_u64 len, int advice)
{
    long r;
    do r = lp_sc3(LP_NR_madvise, addr, len, advice); while (r == -LP_EINTR);
    return r;
}
static inline int lp_getpid(void) { return (int)lp_sc0(LP_NR_getpid); }
static inline int lp_getppid(void) { return (int)lp_sc0(LP_NR_getppid); }
static inline long lp_sched_yield(void) { return lp_sc0(LP_NR_sched_yield); }
static inline long lp_getcwd(char *buf, lp_u64 size) { return lp_sc2(LP_NR_getcwd, buf, size); }
static inline long lp_prlimit64(int pid, int res, const struct lp_rlimit *nw, struct lp_rlimit *old)
{
    return lp_sc4(LP_NR_prlimit64, pid, res, nw, old);
}
static inline long lp_clock_gettime_syscall(int clk, struct lp_timespec *ts)
{
    return lp_sc2(LP_NR_clock_gettime, clk, ts);
}

/* ---- atomic read-modify-write ----
 * Plain __atomic loads and stores are fine freestanding, but on aarch64 GCC (and clang
 * with -moutline-atomics) turns read-modify-write builtins into calls to libgcc helpers
 * such as __aarch64_ldadd8_relax, which a library with no DT_NEEDED cannot have. So the
 * three RMW operations we need are written out: LL/SC loops, valid on every ARMv8.0. */
#if defined(__x86_64__)
static inline lp_u64 lp_fetch_add64(lp_u64 *p, lp_u64 v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
static inline lp_u32 lp_fetch_add32(lp_u32 *p, lp_u32 v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
static inline int lp_swap_acquire(int *p, int v) { return __atomic_exchange_n(p, v, __ATOMIC_ACQUIRE); }
#else
static inline lp_u64 lp_fetch_add64(lp_u64 *p, lp_u64 v)
{
    lp_u64 old, nw;
    unsigned fail;
    __asm__ volatile("1: ldxr %0, %3\n"
                     "   add %1, %0, %4\n"
                     "   stxr %w2, %1, %3\n"
                     "   cbnz %w2, 1b"
                     : "=&r"(old), "=&r"(nw), "=&r"(fail), "+Q"(*p)
                     : "r"(v)
                     : "memory");
    return old;
}
static inline lp_u32 lp_fetch_add32(lp_u32 *p, lp_u32 v)
{
    lp_u32 old, nw;
    unsigned fail;
    __asm__ volatile("1: ldxr %w0, %3\n"
                     "   add %w1, %w0, %w4\n"
                     "   stxr %w2, %w1, %3\n"
                     "   cbnz %w2, 1b"
                     : "=&r"(old), "=&r"(nw), "=&r"(fail), "+Q"(*p)
                     : "r"(v)
                     : "memory");
    return old;
}
static inline int lp_swap_acquire(int *p, int v)
{
    int old;
    unsigned fail;
    __asm__ volatile("1: ldaxr %w0, %2\n"
                     "   stxr %w1, %w3, %2\n"
                     "   cbnz %w1, 1b"
                     : "=&r"(old), "=&r"(fail), "+Q"(*p)
                     : "r"(v)
                     : "memory");
    return old;
}
#endif

/* ---- tiny string helpers (no libc) ---- */
static inline lp_u64 lp_strlen(const char *s)
{
    const char *p = s;
    while (*p) p++;
    return (lp_u64)(p - s);
}

/* Compares the NUL-terminated `s` with `prefix`; returns the rest of `s` after the
 * prefix, or 0 when `s` does not start with it. */
static inline const char *lp_after_prefix(const char *s, const char *prefix)
{
    while (*prefix) {
        if (*s != *prefix) return 0;
        s++, prefix++;
    }
    return s;
}

static inline int lp_streq(const char *a, const char *b)
{
    while (*a && *a == *b) a++, b++;
    return *a == *b;
}

#endif
