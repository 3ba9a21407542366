/* Killed by its own SIGTERM (default disposition). */
#include <signal.h>
#include <stdio.h>
int main(void) {
    printf("before raise\n");
    fflush(stdout);
    raise(SIGTERM);
    printf("not reached\n");
    return 0;
}
