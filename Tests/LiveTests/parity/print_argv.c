/* argv as the program gets it: one hex line per entry. */
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
    printf("argc %d\n", argc);
    for (int i = 1; i < argc; i++) {
        printf("arg %d len %zu ", i, strlen(argv[i]));
        for (const unsigned char *p = (const unsigned char *)argv[i]; *p; p++) printf("%02x", *p);
        printf("\n");
    }
    printf("argv[argc] %s\n", argv[argc] ? "set" : "NULL");
    return 0;
}
