/* Signal dispositions and mask inherited from the parent, as the program sees
 * them (sigaction, sigprocmask) and as the kernel shows them (/proc/self/status). */
#include <signal.h>
#include <stdio.h>
#include <string.h>
int main(void) {
    printf("ignored:");
    for (int s = 1; s < 32; s++) { struct sigaction a; if (sigaction(s, 0, &a) == 0 && a.sa_handler == SIG_IGN) printf(" %d", s); }
    printf("\nhandled:");
    for (int s = 1; s < 32; s++) {
        struct sigaction a;
        if (sigaction(s, 0, &a) == 0 && a.sa_handler != SIG_IGN && a.sa_handler != SIG_DFL) printf(" %d", s);
    }
    sigset_t set;
    sigprocmask(SIG_BLOCK, 0, &set);
    printf("\nblocked:");
    for (int s = 1; s < 65; s++) if (sigismember(&set, s) == 1) printf(" %d", s);
    sigpending(&set);
    printf("\npending:");
    for (int s = 1; s < 65; s++) if (sigismember(&set, s) == 1) printf(" %d", s);
    printf("\n");
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "SigPnd:", 7) || !strncmp(line, "ShdPnd:", 7) || !strncmp(line, "SigBlk:", 7) ||
            !strncmp(line, "SigIgn:", 7) || !strncmp(line, "SigCgt:", 7)) fputs(line, stdout);
    fclose(f);
    return 0;
}
