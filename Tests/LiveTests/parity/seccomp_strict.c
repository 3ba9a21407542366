/* SECCOMP_MODE_STRICT, then a call strict mode forbids: the kernel kills the
 * process with SIGKILL. */
#include <stdio.h>
#include <unistd.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
int main(void) {
    printf("before strict mode\n");
    fflush(stdout);
    long r = prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT, 0, 0, 0);
    if (r == 0) write(1, "strict mode on\n", 15);
    else write(1, "prctl failed\n", 13);
    syscall(SYS_getpid);
    write(1, "survived getpid\n", 16);
    syscall(SYS_exit, 0);
    return 0;
}
