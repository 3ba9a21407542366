/* The exit status the parent sees: argv[1]. */
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    printf("exiting with %s\n", argc > 1 ? argv[1] : "?");
    return argc > 1 ? atoi(argv[1]) : 99;
}
