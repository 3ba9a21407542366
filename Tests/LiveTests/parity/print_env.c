/* The environment as the program gets it: "env HEX" per entry, in order. */
#include <stdio.h>
extern char **environ;
int main(void) {
    int n = 0;
    for (char **e = environ; *e; e++, n++) {
        printf("env ");
        for (const unsigned char *p = (const unsigned char *)*e; *p; p++) printf("%02x", *p);
        printf("\n");
    }
    return 0;
}
