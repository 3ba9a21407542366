/* Killed by SIGSEGV (a write through a null pointer). */
#include <stdio.h>
int main(void) {
    printf("before the fault\n");
    fflush(stdout);
    *(volatile int *)0 = 1;
    printf("not reached\n");
    return 0;
}
