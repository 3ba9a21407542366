/* The program's place among processes: group leader, session leader, and
 * whether it shares its parent's group and session. */
#include <stdio.h>
#include <unistd.h>
int main(void) {
    pid_t me = getpid(), parent = getppid();
    printf("group leader %d\n", getpgrp() == me);
    printf("session leader %d\n", getsid(0) == me);
    printf("parent's group %d\n", getpgid(parent) == getpgrp());
    printf("parent's session %d\n", getsid(parent) == getsid(0));
    printf("stdin a tty %d\n", isatty(0));
    return 0;
}
