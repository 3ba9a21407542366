/* Opens the file argv[1] names (non-UTF-8 bytes included) and prints what it holds. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
int main(int argc, char **argv) {
    if (argc < 2) return 2;
    struct stat st = { 0 };
    printf("stat %d, size %lld\n", stat(argv[1], &st), (long long)st.st_size);
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) { printf("open failed: %s\n", strerror(errno)); return 1; }
    char b[256];
    ssize_t n = read(fd, b, sizeof b);
    printf("read %zd: ", n);
    fwrite(b, 1, n > 0 ? (size_t)n : 0, stdout);
    printf("\n");
    return 0;
}
