/* stdout and stderr as bytes: every byte value, NUL included, interleaved. */
#include <stdio.h>
int main(void) {
    for (int i = 0; i < 256; i++) putchar(i);
    fflush(stdout);
    for (int i = 255; i >= 0; i--) fputc(i, stderr);
    static const char tail[] = "\nafter\0NUL \xff\xfe\xc3\x28\n";
    fwrite(tail, 1, sizeof tail - 1, stdout);
    fwrite(tail, 1, sizeof tail - 1, stderr);
    return 0;
}
