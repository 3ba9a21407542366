/*
 * loadprobe audit wire format, version 3.
 *
 * Shared by audit-lib/ (the writer, freestanding C) and the Swift tracer (the
 * reader, through the CAudit module). One file per process image and segment,
 * named  $LOADPROBE_AUDIT_DIR/a-<pid>-<n>.lpa , created by the audit library
 * and mapped MAP_SHARED: records survive a SIGKILL of the program because the
 * pages belong to the file, not to the process.
 *
 * Layout: struct lp_audit_header at offset 0, records from LP_AUDIT_HEADER_SIZE.
 * Records are variable-length byte strings (below), written one at a time under
 * the writer's lock; `used` is stored (release) after each record is complete.
 * A reader takes the bytes [header_size, header_size + used): everything there is
 * complete. Documented in docs/trace-format.md and audit-lib/README.md.
 *
 * Record encoding (varint = unsigned LEB128; zigzag(x) = (x << 1) ^ (x >> 63)):
 *
 *   u8      kind | code << 4     kind: enum lp_audit_kind (1..6)
 *                                code: the record's flag if < 15, else 15 and
 *   [varint flag]                      the flag follows
 *   varint  dt                   ns since the previous record of this segment
 *                                (the first: since header.time_base_ns)
 *   [varint zigzag(lmid)]        OBJOPEN only
 *   [path]                       IMAGE, OBJSEARCH, OBJOPEN, OBJCLOSE, coded against the
 *                                previous path of this segment ("" at its start):
 *
 *   path =  varint keep            bytes shared with the start of the previous path
 *           varint tail            bytes shared with its end (after those keep bytes)
 *           varint n, n bytes      the bytes in between
 *   the path is prev[0, keep) + the n bytes + prev[len(prev) - tail, len(prev)),
 *   keep + tail <= len(prev); it becomes the previous path of the next record.
 *
 *   pid  = header.pid; seq = header.first_seq + index of the record in the segment.
 *
 * Only fixed-width types: this header is also compiled with -ffreestanding.
 */
#ifndef LOADPROBE_WIRE_H
#define LOADPROBE_WIRE_H

#ifdef __cplusplus
extern "C" {
#endif

#define LP_AUDIT_MAGIC "LPAUDIT1"
#define LP_AUDIT_VERSION 3u
#define LP_AUDIT_HEADER_SIZE 128u
/* Size each segment file is truncated to (sparse: only written pages count). */
#define LP_AUDIT_SEGMENT_BYTES (64ull * 1024 * 1024)

/* Environment variables read by the audit library. */
#define LP_ENV_AUDIT_DIR "LOADPROBE_AUDIT_DIR"
/* "1" when a loadprobe tracer is attached: la_preinit then signals it with
 * close(LP_PREINIT_MAGIC_FD), a call the seccomp filter stops on. */
#define LP_ENV_PTRACE "LOADPROBE_PTRACE"
#define LP_PREINIT_MAGIC_FD (-4242)
/* `loadprobe record --what-if`: the path of a map file (audit-lib/README.md,
 * "What-if") from which the library answers library searches the way the
 * fixed program would make them. Unset or empty: searches run as ld.so makes them. */
#define LP_ENV_WHATIF "LOADPROBE_WHATIF"
/* The map file starts with these 9 bytes and a NUL. Version 2: each entry ends
 * with the steps of the fixed program's search (its failed lookups, replayed). */
#define LP_WHATIF_MAGIC "LPWHATIF2"
/* Entries and program names a map may hold; a larger map is not used at all. */
#define LP_WHATIF_MAX_ENTRIES (1u << 16)
#define LP_WHATIF_MAX_NAMES 64u
#define LP_WHATIF_MAX_BYTES (64u << 20)
/* The longest program path the map may name (the audit library's AT_EXECFN copy). */
#define LP_PATH_MAX_WHATIF 4096u

enum lp_audit_kind {
    LP_REC_NONE = 0,
    LP_REC_IMAGE = 1,      /* flag: 0; name: argv[0] of the image (first record of a segment 0) */
    LP_REC_OBJSEARCH = 2,  /* flag: la_objsearch flag (LA_SER_*); name: the candidate */
    LP_REC_OBJOPEN = 3,    /* flag: 0; lmid: namespace; name: l_name ("" for the main program) */
    LP_REC_ACTIVITY = 4,   /* flag: LA_ACT_CONSISTENT/ADD/DELETE */
    LP_REC_PREINIT = 5,    /* main is about to run */
    LP_REC_OBJCLOSE = 6,   /* name: l_name of the object being unloaded */
};

/* Values of la_objsearch's flag, as in <link.h>; repeated so readers need no glibc headers. */
enum lp_la_ser {
    LP_LA_SER_ORIG = 0x01,
    LP_LA_SER_LIBPATH = 0x02,
    LP_LA_SER_RUNPATH = 0x04,
    LP_LA_SER_CONFIG = 0x08,
    LP_LA_SER_DEFAULT = 0x40,
    LP_LA_SER_SECURE = 0x80,
};

/* Clock the times were read with. */
enum lp_clock_source {
    LP_CLOCK_VDSO = 1,     /* vDSO clock_gettime(CLOCK_MONOTONIC) */
    LP_CLOCK_SYSCALL = 2,  /* raw clock_gettime system call (vDSO not found) */
    LP_CLOCK_TSC = 3,      /* the vDSO clock at least every ~1.5 ms, the invariant TSC
                              (x86-64) between: still CLOCK_MONOTONIC nanoseconds */
};

/* Record flag codes up to this value are stored in the kind byte. */
#define LP_AUDIT_FLAG_ESCAPE 15u

struct lp_audit_header {
    char magic[8];               /* LP_AUDIT_MAGIC, no NUL */
    unsigned int version;        /* LP_AUDIT_VERSION */
    unsigned int header_size;    /* LP_AUDIT_HEADER_SIZE */
    unsigned long long used;     /* bytes of complete records after the header (release store) */
    unsigned long long capacity; /* record bytes this segment can hold */
    int pid;                     /* process that owns this segment (and every record in it) */
    int ppid;                    /* its parent when the segment was made */
    unsigned int segment;        /* 0 for the first segment of an image, then 1, 2, ... */
    unsigned int clock_source;   /* enum lp_clock_source */
    unsigned long long image_start_ns; /* CLOCK_MONOTONIC when the image's audit library started */
    unsigned long long image_id; /* unique per image: start time ns ^ pid, the same in all its segments */
    unsigned int forked;         /* 1 if this image's segment was made by a forked child */
    unsigned int la_version;     /* the version ld.so offered to la_version */
    unsigned long long parent_image_id; /* forked == 1: image_id of the parent image whose
                                           loaded objects the child inherited; else 0 */
    unsigned int first_seq;      /* seq of this segment's first record */
    unsigned int dropped;        /* records given up (writer lock not obtained; atomic) */
    unsigned long long time_base_ns; /* CLOCK_MONOTONIC the first record's dt counts from */
    unsigned char pad[32];
};

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
_Static_assert(sizeof(struct lp_audit_header) == LP_AUDIT_HEADER_SIZE, "lp_audit_header size");
#endif

#ifdef __cplusplus
}
#endif
#endif
