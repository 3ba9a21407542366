/* vfork, then exec in the child; the parent reports the child's status. */
#include <stdio.h>
#include <unistd.h>
#include <sys/wait.h>
int main(void) {
    printf("parent before vfork\n");
    fflush(stdout);
    pid_t p = vfork();
    if (p == 0) { execl("/bin/sh", "sh", "-c", "echo child after vfork; exit 3", (char *)0); _exit(127); }
    int st;
    waitpid(p, &st, 0);
    printf("child exited %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    return 0;
}
