/* launcher SPEC: runs one command as a parent that records what it sees.
 *
 * Foundation's Process cannot pass non-UTF-8 argv or environment bytes, and it
 * sets up the child its own way; this launcher gives every run, traced or not,
 * the same start. Each spec line is one instruction (HEX = bytes, hex-encoded):
 *   a HEX              an argv entry; the first is also the program, looked up
 *                      in the spec's PATH as a shell does (execvpe)
 *   e HEX              an environment entry, in order
 *   i HEX              stdin bytes (default: /dev/null)
 *   o PATH / r PATH    files that receive the child's stdout / stderr
 *   cwd HEX            the child's working directory
 *   ign N / blk N      signal N ignored / blocked in the child
 *   fd5 PATH           descriptor 5 open on PATH, inherited
 *   cloexec7 PATH      descriptor 7 open on PATH with O_CLOEXEC
 *   umask OCTAL
 *   rlimit R SOFT HARD ("inf" for RLIM_INFINITY); RLIMIT_CORE is 0 unless set
 *   pgrp / setsid      the child in its own process group / session
 *   signal N           once the child's stdout holds "ready\n", send it signal N
 * Prints "exited N" or "signaled N core C", then "elapsed_ms N" (fork to wait);
 * a run still going after 30 s is killed with SIGKILL and said to have timed out.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define MAX_ENTRIES 4096

struct spec {
    char *argv[MAX_ENTRIES], *envp[MAX_ENTRIES];
    int argc, envc;
    char *input; size_t input_len; int has_input;
    char *out, *err, *cwd, *fd5, *cloexec7;
    int ignored[64], nignored, blocked[64], nblocked;
    int umask_value;                      /* -1: inherited */
    int rlimit_res[16]; rlim_t rlimit_soft[16], rlimit_hard[16]; int nrlimits;
    int own_pgrp, own_session, signal_when_ready;
};

static void die(const char *what) { fprintf(stderr, "launcher: %s: %s\n", what, strerror(errno)); exit(100); }

static char *unhex(const char *h, size_t *len) {
    size_t n = strlen(h) / 2;
    char *out = malloc(n + 1);
    for (size_t i = 0; i < n; i++) { unsigned v; sscanf(h + 2 * i, "%2x", &v); out[i] = (char)v; }
    out[n] = 0;
    if (len) *len = n;
    return out;
}

static rlim_t limit(const char *s) { return strcmp(s, "inf") ? (rlim_t)strtoull(s, 0, 10) : RLIM_INFINITY; }

static void parse(const char *path, struct spec *s) {
    FILE *f = fopen(path, "r");
    if (!f) die(path);
    char *line = 0; size_t cap = 0; ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] == '\n') line[n - 1] = 0;
        char *arg = strchr(line, ' ');
        arg = arg ? arg + 1 : line + strlen(line);
        if (!strncmp(line, "a ", 2)) s->argv[s->argc++] = unhex(arg, 0);
        else if (!strncmp(line, "e ", 2)) s->envp[s->envc++] = unhex(arg, 0);
        else if (!strncmp(line, "i ", 2)) { s->input = unhex(arg, &s->input_len); s->has_input = 1; }
        else if (!strncmp(line, "o ", 2)) s->out = strdup(arg);
        else if (!strncmp(line, "r ", 2)) s->err = strdup(arg);
        else if (!strncmp(line, "cwd ", 4)) s->cwd = unhex(arg, 0);
        else if (!strncmp(line, "ign ", 4)) s->ignored[s->nignored++] = atoi(arg);
        else if (!strncmp(line, "blk ", 4)) s->blocked[s->nblocked++] = atoi(arg);
        else if (!strncmp(line, "fd5 ", 4)) s->fd5 = strdup(arg);
        else if (!strncmp(line, "cloexec7 ", 9)) s->cloexec7 = strdup(arg);
        else if (!strncmp(line, "umask ", 6)) s->umask_value = (int)strtol(arg, 0, 8);
        else if (!strncmp(line, "rlimit ", 7)) {
            char soft[32], hard[32];
            if (sscanf(arg, "%d %31s %31s", &s->rlimit_res[s->nrlimits], soft, hard) != 3) { fprintf(stderr, "launcher: bad %s\n", line); exit(100); }
            s->rlimit_soft[s->nrlimits] = limit(soft); s->rlimit_hard[s->nrlimits] = limit(hard); s->nrlimits++;
        }
        else if (!strcmp(line, "pgrp")) s->own_pgrp = 1;
        else if (!strcmp(line, "setsid")) s->own_session = 1;
        else if (!strncmp(line, "signal ", 7)) s->signal_when_ready = atoi(arg);
        else if (line[0]) { fprintf(stderr, "launcher: unknown spec line %.40s\n", line); exit(100); }
    }
    fclose(f);
    if (!s->argc || !s->out || !s->err) { fprintf(stderr, "launcher: the spec needs a, o and r lines\n"); exit(100); }
}

static void move_fd(int fd, int to) { if (fd < 0) die("open"); if (fd != to) { dup2(fd, to); close(fd); } }

/* Everything the child gets from its parent, set explicitly: a clean start that
 * does not depend on how the test runner was started. */
static void child(struct spec *s) {
    struct sigaction dfl = { .sa_handler = SIG_DFL };
    for (int sg = 1; sg < 65; sg++) sigaction(sg, &dfl, 0);   /* 32, 33 (glibc's own) and KILL/STOP fail: fine */
    sigset_t none; sigemptyset(&none); sigprocmask(SIG_SETMASK, &none, 0);
    if (s->has_input) {
        char t[] = "/tmp/lp-parity-stdin-XXXXXX";
        int fd = mkstemp(t);
        unlink(t);
        if (write(fd, s->input, s->input_len) != (ssize_t)s->input_len) die("stdin");
        lseek(fd, 0, SEEK_SET);
        move_fd(fd, 0);
    } else move_fd(open("/dev/null", O_RDONLY), 0);
    move_fd(open(s->out, O_WRONLY | O_CREAT | O_TRUNC, 0644), 1);
    move_fd(open(s->err, O_WRONLY | O_CREAT | O_TRUNC, 0644), 2);
    syscall(SYS_close_range, 3u, ~0u, 0u);
    if (s->fd5) move_fd(open(s->fd5, O_RDONLY), 5);
    if (s->cloexec7) { int fd = open(s->cloexec7, O_RDONLY); if (fd < 0) die("cloexec7"); dup3(fd, 7, O_CLOEXEC); close(fd); }
    if (s->cwd && chdir(s->cwd) != 0) die("chdir");
    if (s->umask_value >= 0) umask((mode_t)s->umask_value);
    struct rlimit core; getrlimit(RLIMIT_CORE, &core); core.rlim_cur = 0; setrlimit(RLIMIT_CORE, &core);
    for (int i = 0; i < s->nrlimits; i++) {
        struct rlimit r = { s->rlimit_soft[i], s->rlimit_hard[i] };
        if (setrlimit(s->rlimit_res[i], &r) != 0) die("setrlimit");
    }
    if (s->own_pgrp && setpgid(0, 0) != 0) die("setpgid");
    if (s->own_session && setsid() < 0) die("setsid");
    struct sigaction ign = { .sa_handler = SIG_IGN };
    for (int i = 0; i < s->nignored; i++) sigaction(s->ignored[i], &ign, 0);
    sigset_t set; sigemptyset(&set);
    for (int i = 0; i < s->nblocked; i++) sigaddset(&set, s->blocked[i]);
    sigprocmask(SIG_BLOCK, &set, 0);
    /* execvpe searches the caller's PATH: make it the spec's (glibc's default when unset). */
    unsetenv("PATH");
    for (int i = 0; i < s->envc; i++) if (!strncmp(s->envp[i], "PATH=", 5)) { setenv("PATH", s->envp[i] + 5, 1); break; }
    s->argv[s->argc] = 0; s->envp[s->envc] = 0;
    execvpe(s->argv[0], s->argv, s->envp);
    fprintf(stderr, "launcher: exec %s: %s\n", s->argv[0], strerror(errno));
    _exit(127);
}

/* A run that hangs is killed after 30 s and reported as such, so that no case
 * can hang the test run. */
static volatile sig_atomic_t timed_out;
static pid_t running;
static void on_alarm(int sig) { (void)sig; timed_out = 1; kill(running, SIGKILL); }

static long now_ms(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000L + t.tv_nsec / 1000000L; }

static int ready(const char *path) {
    char b[64] = { 0 };
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    ssize_t n = read(fd, b, sizeof b - 1);
    close(fd);
    return n > 0 && strstr(b, "ready\n") != 0;
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: launcher SPEC\n"); return 100; }
    static struct spec s = { .umask_value = -1 };
    parse(argv[1], &s);
    fflush(stdout);
    long start = now_ms();
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) child(&s);
    running = pid;
    struct sigaction alarm_action = { .sa_handler = on_alarm };
    sigaction(SIGALRM, &alarm_action, 0);
    alarm(30);
    int status = 0, reaped = 0;
    if (s.signal_when_ready) {
        /* Wait for the program to say it is ready (10 s at most), then signal the child. */
        long deadline = now_ms() + 10000;
        while (!ready(s.out) && now_ms() < deadline && !(reaped = waitpid(pid, &status, WNOHANG) == pid)) usleep(10000);
        if (!reaped) kill(pid, s.signal_when_ready);
    }
    while (!reaped && waitpid(pid, &status, 0) < 0) if (errno != EINTR) die("waitpid");
    long elapsed = now_ms() - start;
    if (timed_out) printf("timed out after 30 s, killed: ");
    if (WIFEXITED(status)) printf("exited %d\n", WEXITSTATUS(status));
    else if (WIFSIGNALED(status)) printf("signaled %d core %d\n", WTERMSIG(status), WCOREDUMP(status) ? 1 : 0);
    else printf("status 0x%x\n", status);
    printf("elapsed_ms %ld\n", elapsed);
    return 0;
}
