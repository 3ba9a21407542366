/* Three levels of processes; each waits for its children and reports their ends. */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/wait.h>
static void report(const char *who, int st) {
    if (WIFEXITED(st)) printf("%s exited %d\n", who, WEXITSTATUS(st));
    else printf("%s signaled %d\n", who, WTERMSIG(st));
    fflush(stdout);
}
int main(void) {
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        pid_t grandchild = fork();
        if (grandchild == 0) _exit(7);
        pid_t killed = fork();
        if (killed == 0) { raise(SIGTERM); _exit(1); }
        int st;
        waitpid(grandchild, &st, 0); report("level 3 (exit)", st);
        waitpid(killed, &st, 0); report("level 3 (SIGTERM)", st);
        _exit(20 + WEXITSTATUS(st));
    }
    int st;
    waitpid(child, &st, 0);
    report("level 2", st);
    return 3;
}
