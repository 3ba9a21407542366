/* The open descriptors: what 0-2 are, and every other one with its target. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/stat.h>
static int numeric(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }
int main(void) {
    int fds[1024], n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    while ((e = readdir(d)) && n < 1024)
        if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d)) fds[n++] = atoi(e->d_name);
    closedir(d);
    qsort(fds, n, sizeof fds[0], numeric);
    for (int i = 0; i < n; i++) {
        struct stat st;
        fstat(fds[i], &st);
        int fl = fcntl(fds[i], F_GETFD);
        printf("fd %d: %s%s", fds[i], S_ISREG(st.st_mode) ? "file" : S_ISCHR(st.st_mode) ? "char device" : S_ISFIFO(st.st_mode) ? "pipe" : "other",
               fl & FD_CLOEXEC ? " cloexec" : "");
        if (fds[i] > 2) {
            char p[64], t[4096];
            snprintf(p, sizeof p, "/proc/self/fd/%d", fds[i]);
            ssize_t k = readlink(p, t, sizeof t - 1);
            t[k > 0 ? k : 0] = 0;
            printf(" -> %s", t);
        }
        printf("\n");
    }
    return 0;
}
