/* Killed by its own SIGKILL. */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
int main(void) {
    printf("before kill\n");
    fflush(stdout);
    kill(getpid(), SIGKILL);
    printf("not reached\n");
    return 0;
}
