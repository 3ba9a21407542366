/* The CPUs the program may run on, before main (constructor), in main and in a
 * thread: sched_getaffinity and /proc/self/status Cpus_allowed_list. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
static char early[512];
static void observe(char *out, size_t cap) {
    cpu_set_t s;
    CPU_ZERO(&s);
    int r = sched_getaffinity(0, sizeof s, &s);
    int n = snprintf(out, cap, "sched_getaffinity %d, cpus", r);
    for (int c = 0; c < CPU_SETSIZE; c++) if (CPU_ISSET(c, &s)) n += snprintf(out + n, cap - n, " %d", c);
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "Cpus_allowed_list:", 18)) n += snprintf(out + n, cap - n, "; status %s", line + 18);
    if (f) fclose(f);
}
__attribute__((constructor)) static void before_main(void) { observe(early, sizeof early); }
static void *in_thread(void *out) { observe(out, 512); return 0; }
int main(void) {
    char now[512], thread[512];
    observe(now, sizeof now);
    pthread_t t;
    pthread_create(&t, 0, in_thread, thread);
    pthread_join(t, 0);
    printf("constructor: %smain: %sthread: %s", early, now, thread);
    return 0;
}
