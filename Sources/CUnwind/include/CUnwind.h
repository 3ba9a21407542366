/*
 * CUnwind: finds which object made a loader call, by unwinding the stopped
 * thread with libunwind-ptrace. Used at most once per dlopen (see
 * PtraceSession's caller tracking); every symbol carries the lp_ prefix.
 */
#ifndef CUNWIND_H
#define CUNWIND_H

#include <stdint.h>
#include <sys/types.h>

struct lp_frame_found {
    /* The first frame outside the skipped ranges: its instruction pointer (a
     * return address), and the stack slot that return address was read from
     * (0 when unknown). When the stack ends inside the ranges: the outermost
     * frame reached. */
    uint64_t ip;
    uint64_t slot;
    /* Frames stepped over (0: the stopped frame itself). */
    int depth;
};

/* One unwinder per process image: libunwind's caches (register-state cache
 * per instruction address) stay valid until the image changes. */
struct lp_unwinder;
struct lp_unwinder *lp_unwinder_new(pid_t pid);
void lp_unwinder_free(struct lp_unwinder *u);

/* Unwinds the stopped thread `tid` of process `pid` (the unwinder's) from its
 * current frame, skipping the frames in ld.so's mappings (the file
 * `loader_path`) and libc's (libc.so.*, libdl.so.*), taken from
 * /proc/PID/maps. Returns 1 when a frame outside them was found, 0 when the
 * stack ended inside them (out: the outermost frame), -1 when unwinding failed
 * or exceeded max_frames. When a caller is found, its object's path is copied
 * to `object` (NUL-terminated) and `*offset` is the caller's address as an
 * offset in that file. */
int lp_find_caller(struct lp_unwinder *u, pid_t tid, pid_t pid, const char *loader_path, int max_frames,
                   struct lp_frame_found *out, char *object, size_t object_cap, uint64_t *offset);

/* The file mapped at `addr` in process `pid` (/proc/PID/maps), and the span
 * [*lo, *hi) of all its mappings. 0, or -1 when no file is mapped there (or
 * its path does not fit in `cap`). */
int lp_object_span(pid_t pid, uint64_t addr, char *path, size_t cap, uint64_t *lo, uint64_t *hi);

#endif
