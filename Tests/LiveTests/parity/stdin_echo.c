/* stdin reaches the program unchanged: echoes it and counts the bytes. */
#include <stdio.h>
#include <unistd.h>
int main(void) {
    char b[4096];
    ssize_t n;
    long total = 0;
    while ((n = read(0, b, sizeof b)) > 0) { fwrite(b, 1, (size_t)n, stdout); total += n; }
    printf("\nread %ld bytes, last read %zd\n", total, n);
    return 0;
}
