/* Runs argv[1..] as its child and prints how the child ended. */
#include <stdio.h>
#include <unistd.h>
#include <sys/wait.h>
int main(int argc, char **argv) {
    if (argc < 2) return 2;
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) { execv(argv[1], argv + 1); perror("execv"); _exit(127); }
    int st;
    waitpid(p, &st, 0);
    if (WIFEXITED(st)) printf("child exited %d\n", WEXITSTATUS(st));
    else printf("child signaled %d\n", WTERMSIG(st));
    return 0;
}
