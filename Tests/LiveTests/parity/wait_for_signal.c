/* Says "ready", then waits for a signal from its parent: with argv[1] "catch" it
 * handles SIGINT and exits 7, otherwise the default action ends it. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
static void caught(int s) {
    char msg[] = "caught signal 0\n";
    msg[14] = (char)('0' + s % 10);
    write(1, msg, sizeof msg - 1);
    _exit(7);
}
int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "catch")) signal(SIGINT, caught);
    printf("ready\n");
    fflush(stdout);
    for (int i = 0; i < 100; i++) usleep(100000);
    printf("no signal in 10 s\n");
    return 0;
}
