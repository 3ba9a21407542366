/* What the program knows of its own file: /proc/self/exe, argv[0], AT_EXECFN. */
#include <stdio.h>
#include <unistd.h>
#include <sys/auxv.h>
int main(int argc, char **argv) {
    (void)argc;
    char t[4096];
    ssize_t n = readlink("/proc/self/exe", t, sizeof t - 1);
    t[n > 0 ? n : 0] = 0;
    printf("/proc/self/exe %s\nargv[0] %s\nAT_EXECFN %s\n", t, argv[0], (const char *)getauxval(AT_EXECFN));
    return 0;
}
