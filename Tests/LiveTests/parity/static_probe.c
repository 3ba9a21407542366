/* Linked statically: argv and the environment as it gets them, then exit 9. */
#include <stdio.h>
extern char **environ;
static void hex(const char *tag, const char *s) {
    printf("%s ", tag);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) printf("%02x", *p);
    printf("\n");
}
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) hex("arg", argv[i]);
    for (char **e = environ; *e; e++) hex("env", *e);
    return 9;
}
