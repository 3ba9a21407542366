/*
 * loadprobe's SPANK plugin: `srun --loadprobe[=OPTIONS] PROGRAM` records each
 * task's start-up with loadprobe (docs/jobs.md).
 *
 * plugstack.conf:
 *   optional /path/loadprobe_spank.so loadprobe=/path/loadprobe [RECORD OPTIONS...]
 * The words after loadprobe=PATH are the site's default record options (for
 * example -o /scratch/%u/lp-%j/%r.lpt --full-ranks 0,first-per-node); the
 * user's OPTIONS (one string, split at blanks) come after them, so a user's
 * option overrides the site's.
 *
 * How: in slurm_spank_task_init, which runs in the task's own process just
 * before slurmstepd execs the program, the plugin puts loadprobe's path in
 * place of the program's in that process's copy of the argument vector and
 * leaves the program's path and the options in two variables. slurmstepd
 * then runs its remaining steps (task prolog, TMPDIR, limits) and execs
 * loadprobe with the program's arguments; loadprobe takes the two variables
 * out of the environment and records `PROGRAM ARGS...` as if run as
 * `loadprobe OPTIONS -- PROGRAM ARGS...`, executing PROGRAM as slurmstepd
 * would: the path it would build (task_program), no shell-like PATH search,
 * and its exit status (the errno) when the exec fails. The batch script and the extern
 * step are left alone: under sbatch, the job's steps (srun inside the script)
 * inherit --loadprobe.
 */
#include <limits.h>
#include <stdint.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <slurm/slurm.h>
#include <slurm/spank.h>

SPANK_PLUGIN(loadprobe, 1);

/* The variables loadprobe reads (and removes) when the plugin started it. */
#define LP_ENV_PROGRAM "LOADPROBE_SPANK_PROGRAM"
#define LP_ENV_OPTIONS "LOADPROBE_SPANK_OPTIONS"

static int enabled;
static char user_options[4096];

static int lp_option(int val, const char *optarg, int remote) {
    (void)val; (void)remote;
    enabled = 1;
    user_options[0] = 0;
    if (optarg) {
        if (strlen(optarg) >= sizeof user_options) {
            slurm_error("loadprobe: --loadprobe options are longer than %zu bytes", sizeof user_options - 1);
            return -1;
        }
        snprintf(user_options, sizeof user_options, "%s", optarg);
    }
    return 0;
}

struct spank_option spank_options[] = {
    { "loadprobe", "[OPTIONS]",
      "Record each task's start-up with loadprobe; OPTIONS are record options "
      "(e.g. \"-o lp-%j/%r.lpt --full-ranks 0,first-per-node\")", 2, 0, lp_option },
    SPANK_OPTIONS_TABLE_END
};

int slurm_spank_init(spank_t sp, int ac, char **av) {
    (void)ac; (void)av;
    /* Registered here too, so that sbatch and salloc accept the option. */
    if (spank_context() == S_CTX_ALLOCATOR) return spank_option_register(sp, &spank_options[0]) == ESPANK_SUCCESS ? 0 : -1;
    return 0;
}

/* The site's loadprobe path and default options from plugstack.conf. */
static int site_config(int ac, char **av, const char **binary, char *options, size_t cap) {
    size_t used = 0;
    *binary = NULL;
    options[0] = 0;
    for (int i = 0; i < ac; i++) {
        if (strncmp(av[i], "loadprobe=", 10) == 0) { *binary = av[i] + 10; continue; }
        size_t n = strlen(av[i]);
        if (used + n + 2 > cap) { slurm_error("loadprobe: the site options in plugstack.conf are too long"); return -1; }
        if (used) options[used++] = ' ';
        memcpy(options + used, av[i], n + 1);
        used += n;
    }
    if (!*binary || (*binary)[0] != '/') {
        slurm_error("loadprobe: plugstack.conf must name loadprobe as loadprobe=/absolute/path");
        return -1;
    }
    return 0;
}

/* The path slurmstepd would exec for the task's first argument (and give it as
 * argv[0]): absolute as it is; starting with '.', under the working directory;
 * else the first PATH entry (the job's) holding a file of that name that is
 * not a directory; else the name as it is (execve then finds it in the
 * working directory). */
static int task_program(spank_t sp, const char *name, char *out, size_t cap) {
    if (name[0] == '/') return snprintf(out, cap, "%s", name) < (int)cap ? 0 : -1;
    if (name[0] == '.') {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd)) return -1;
        return snprintf(out, cap, "%s/%s", cwd, name) < (int)cap ? 0 : -1;
    }
    /* The job's PATH, however long (a buffer that grows until it fits, up to 1 MiB). */
    char *path = NULL;
    spank_err_t got = ESPANK_NOSPACE;
    for (size_t size = 8192; got == ESPANK_NOSPACE && size <= (1u << 20); size *= 2) {
        char *bigger = realloc(path, size);
        if (!bigger) break;
        path = bigger;
        got = spank_getenv(sp, "PATH", path, (int)size);
    }
    int found = 0;
    if (path && got == ESPANK_SUCCESS) {
        char *save = NULL;
        for (char *dir = strtok_r(path, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
            struct stat st;
            if (snprintf(out, cap, "%s/%s", dir, name) >= (int)cap) continue;
            if (stat(out, &st) == 0 && !S_ISDIR(st.st_mode)) found = 1;
        }
    }
    free(path);
    if (found) return 0;
    return snprintf(out, cap, "%s", name) < (int)cap ? 0 : -1;
}

int slurm_spank_task_init(spank_t sp, int ac, char **av) {
    if (!enabled || !spank_remote(sp)) return 0;
    uint32_t step = 0;
    if (spank_get_item(sp, S_JOB_STEPID, &step) != ESPANK_SUCCESS) return 0;
    if (step == SLURM_BATCH_SCRIPT || step == SLURM_EXTERN_CONT) return 0;

    const char *binary;
    char options[8192];
    if (site_config(ac, av, &binary, options, sizeof options) < 0) return -1;
    if (access(binary, X_OK) != 0) {
        slurm_error("loadprobe: %s is not an executable (plugstack.conf's loadprobe=)", binary);
        return -1;
    }
    if (user_options[0]) {
        size_t used = strlen(options);
        if (used + strlen(user_options) + 2 > sizeof options) { slurm_error("loadprobe: options too long"); return -1; }
        if (used) options[used++] = ' ';
        strcpy(options + used, user_options);
    }

    int argc = 0;
    char **argv = NULL;
    if (spank_get_item(sp, S_JOB_ARGV, &argc, &argv) != ESPANK_SUCCESS || argc < 1 || !argv || !argv[0]) {
        slurm_error("loadprobe: the task has no command");
        return -1;
    }
    char program[PATH_MAX + 256];
    if (task_program(sp, argv[0], program, sizeof program) < 0) {
        slurm_error("loadprobe: the task's program path is too long");
        return -1;
    }
    if (spank_setenv(sp, LP_ENV_PROGRAM, program, 1) != ESPANK_SUCCESS
        || spank_setenv(sp, LP_ENV_OPTIONS, options, 1) != ESPANK_SUCCESS) {
        slurm_error("loadprobe: could not set the task's environment");
        return -1;
    }
    /* This process's own copy (slurmstepd forked it for this task): the exec
     * that follows runs loadprobe, with the program's arguments after it. */
    char *path = strdup(binary);
    if (!path) return -1;
    argv[0] = path;
    return 0;
}
