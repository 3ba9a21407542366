/* setsid and a double fork: the daemon writes argv[1] after 0.3 s and lives 3 s
 * more; the program itself returns at once. */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
int main(int argc, char **argv) {
    if (argc < 2) return 2;
    fflush(stdout);
    pid_t first = fork();
    if (first == 0) {
        setsid();
        if (fork() == 0) {
            syscall(SYS_close_range, 0u, ~0u, 0u);
            usleep(300000);
            int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (write(fd, "daemon wrote\n", 13) != 13) _exit(1);
            close(fd);
            sleep(3);
            _exit(0);
        }
        _exit(0);
    }
    int st;
    waitpid(first, &st, 0);
    printf("first child exited %d; returning\n", WEXITSTATUS(st));
    return 0;
}
