/* The program's own filter answers getpid with SECCOMP_RET_TRACE: with no tracer
 * of its own the call fails with ENOSYS. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/syscall.h>
int main(void) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getpid, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE | 7),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { sizeof f / sizeof f[0], f };
    long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
    printf("install %ld (%s)\n", r, r ? strerror(errno) : "ok");
    errno = 0;
    long pid = syscall(SYS_getpid);
    int e = errno;
    printf("getpid %s, errno %d (%s)\n", pid > 0 ? "a pid" : pid == 0 ? "0" : "-1", e, e ? strerror(e) : "none");
    return 0;
}
