/* Eight threads each open files (some there, some missing) while the others do;
 * joined, then each thread's counts are printed in order. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
struct work { int index, opened, missing, other; long bytes; };
static void *worker(void *arg) {
    struct work *w = arg;
    char path[64];
    for (int i = 0; i < 40; i++) {
        int fd = open(i % 2 ? "/etc/passwd" : "/proc/self/stat", O_RDONLY);
        if (fd >= 0) { char b[16]; ssize_t n = read(fd, b, sizeof b); w->bytes += n > 0; w->opened++; close(fd); }
        snprintf(path, sizeof path, "/nonexistent-lp-parity/thread-%d/%d", w->index, i);
        if (open(path, O_RDONLY) < 0) { if (errno == ENOENT) w->missing++; else w->other++; }
        if (access("/etc/hostname", F_OK) != 0 && errno != ENOENT) w->other++;
    }
    return 0;
}
int main(void) {
    pthread_t t[8];
    struct work w[8] = { 0 };
    for (int i = 0; i < 8; i++) { w[i].index = i; pthread_create(&t[i], 0, worker, &w[i]); }
    for (int i = 0; i < 8; i++) pthread_join(t[i], 0);
    for (int i = 0; i < 8; i++)
        printf("thread %d: opened %d, read %ld, missing %d, other errors %d\n", i, w[i].opened, w[i].bytes, w[i].missing, w[i].other);
    return 0;
}
