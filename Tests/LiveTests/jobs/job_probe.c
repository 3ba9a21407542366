/* A task of a test job: prints what it was started with, and needs a
 * library found through its RPATH (so its start-up has library searches). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;
int probe_value(void);

int main(int argc, char **argv) {
    const char *rank = getenv("SLURM_PROCID");
    const char *job = getenv("SLURM_JOB_ID");
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    int spank_left = 0;
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "LOADPROBE_SPANK_", 16) == 0) spank_left++;
    printf("rank=%s job=%s host=%s value=%d spank_variables=%d argc=%d", rank ? rank : "-", job ? job : "-", host,
           probe_value(), spank_left, argc);
    for (int i = 0; i < argc; i++) printf(" [%s]", argv[i]);
    printf("\n");
    return 0;
}
