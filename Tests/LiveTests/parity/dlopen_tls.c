/* dlopen a library with 1800 bytes of initial-exec TLS; prints dlerror. */
#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char **argv) {
    if (argc < 2) return 2;
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) { printf("dlopen failed: %s\n", dlerror()); return 1; }
    int (*touch)(void) = (int (*)(void))dlsym(h, "touch_big");
    printf("dlopen loaded, touch_big %d\n", touch());
    return 0;
}
