/* Every resource limit, soft and hard. */
#include <stdio.h>
#include <sys/resource.h>
static const char *names[] = { "CPU", "FSIZE", "DATA", "STACK", "CORE", "RSS", "NPROC", "NOFILE",
                               "MEMLOCK", "AS", "LOCKS", "SIGPENDING", "MSGQUEUE", "NICE", "RTPRIO", "RTTIME" };
static void show(rlim_t v) { if (v == RLIM_INFINITY) printf("inf"); else printf("%llu", (unsigned long long)v); }
int main(void) {
    for (int r = 0; r < RLIM_NLIMITS; r++) {
        struct rlimit l;
        getrlimit(r, &l);
        printf("%s ", names[r]); show(l.rlim_cur); printf("/"); show(l.rlim_max); printf("\n");
    }
    return 0;
}
