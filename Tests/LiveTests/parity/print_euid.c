/* Installed set-user-ID nobody: prints the ids it runs with. */
#include <stdio.h>
#include <unistd.h>
#include <sys/auxv.h>
int main(void) {
    printf("uid %d euid %d AT_SECURE %lu\n", getuid(), geteuid(), getauxval(AT_SECURE));
    return 0;
}
