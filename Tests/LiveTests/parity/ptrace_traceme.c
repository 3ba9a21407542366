/* PTRACE_TRACEME, as a program that wants its parent to debug it. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
int main(void) {
    errno = 0;
    long r = ptrace(PTRACE_TRACEME, 0, 0, 0);
    printf("PTRACE_TRACEME %ld, errno %d (%s)\n", r, errno, errno ? strerror(errno) : "none");
    return 0;
}
