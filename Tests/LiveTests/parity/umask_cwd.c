/* The umask and working directory inherited from the parent (the directory's
 * name has a non-UTF-8 byte). */
#include <stdio.h>
#include <unistd.h>
#include <sys/stat.h>
int main(void) {
    mode_t m = umask(0);
    printf("umask %03o\ncwd ", (unsigned)m);
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd)) { printf("getcwd failed\n"); return 1; }
    for (const unsigned char *p = (const unsigned char *)cwd; *p; p++) printf("%02x", *p);
    printf("\n");
    struct stat a, b;
    printf("same as \".\": %d\n", stat(".", &a) == 0 && stat(cwd, &b) == 0 && a.st_ino == b.st_ino);
    return 0;
}
