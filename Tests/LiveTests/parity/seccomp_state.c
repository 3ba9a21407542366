/* What the program can ask about seccomp and no_new_privs. */
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
int main(void) {
    printf("PR_GET_SECCOMP %d\nPR_GET_NO_NEW_PRIVS %d\n", prctl(PR_GET_SECCOMP, 0, 0, 0, 0), prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (fgets(line, sizeof line, f)) if (!strncmp(line, "NoNewPrivs:", 11)) fputs(line, stdout);
    fclose(f);
    return 0;
}
