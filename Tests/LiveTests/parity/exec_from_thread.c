/* A thread that is not the leader execs the program again: the new image takes
 * the leader's pid and is alone in the thread group. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static char pid_text[32];
static void *exec_again(void *arg) {
    (void)arg;
    execl("/proc/self/exe", "exec_from_thread", "after", pid_text, (char *)0);
    perror("execl");
    return 0;
}
int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "after")) {
        char line[128];
        int threads = -1;
        FILE *f = fopen("/proc/self/status", "r");
        while (fgets(line, sizeof line, f)) if (!strncmp(line, "Threads:", 8)) threads = atoi(line + 8);
        fclose(f);
        printf("after exec: same pid %d, threads %d\n", getpid() == atoi(argv[2]), threads);
        return 4;
    }
    printf("before exec\n");
    fflush(stdout);
    snprintf(pid_text, sizeof pid_text, "%d", getpid());
    pthread_t t;
    pthread_create(&t, 0, exec_again, 0);
    pthread_join(t, 0);
    return 1;
}
