/*
 * loadprobe audit wire format, version 1.
 *
 * Shared by audit-lib/ (the writer, freestanding C) and the Swift tracer (the
 * reader, through the CAudit module). One file per process image and segment,
 * named  $LOADPROBE_AUDIT_DIR/a-<pid>-<n>.lpa , created by the audit library
 * and mapped MAP_SHARED: records survive a SIGKILL of the program because the
 * pages belong to the file, not to the process.
 *
 * Layout: struct lp_audit_header at offset 0, records from LP_AUDIT_HEADER_SIZE.
 * A record is written body first; its `kind` is stored last with release
 * ordering. A reader walks records until it finds kind == 0, a size that is
 * zero or runs past `reserved`, or the end of the file: everything before is
 * complete. Documented in docs/trace-format.md.
 *
 * Only fixed-width types: this header is also compiled with -ffreestanding.
 */
#ifndef LOADPROBE_WIRE_H
#define LOADPROBE_WIRE_H

#ifdef __cplusplus
extern "C" {
#endif

#define LP_AUDIT_MAGIC "LPAUDIT1"
#define LP_AUDIT_VERSION 1u
#define LP_AUDIT_HEADER_SIZE 128u
/* Size each segment file is truncated to (sparse: only written pages count). */
#define LP_AUDIT_SEGMENT_BYTES (64ull * 1024 * 1024)

/* Environment variables read by the audit library. */
#define LP_ENV_AUDIT_DIR "LOADPROBE_AUDIT_DIR"
/* "1" when a loadprobe tracer is attached: la_preinit then signals it with
 * close(LP_PREINIT_MAGIC_FD), a call the seccomp filter stops on. */
#define LP_ENV_PTRACE "LOADPROBE_PTRACE"
#define LP_PREINIT_MAGIC_FD (-4242)

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
};

struct lp_audit_header {
    char magic[8];               /* LP_AUDIT_MAGIC, no NUL */
    unsigned int version;        /* LP_AUDIT_VERSION */
    unsigned int header_size;    /* LP_AUDIT_HEADER_SIZE */
    unsigned long long reserved; /* bytes handed out to records after the header (atomic) */
    unsigned long long capacity; /* record bytes this segment can hold */
    int pid;                     /* process that owns this segment */
    int ppid;                    /* its parent when the segment was made */
    unsigned int segment;        /* 0 for the first segment of an image, then 1, 2, ... */
    unsigned int clock_source;   /* enum lp_clock_source */
    unsigned long long image_start_ns; /* CLOCK_MONOTONIC when the image's audit library started */
    unsigned long long image_id; /* unique per image: start time ns ^ pid, the same in all its segments */
    unsigned int forked;         /* 1 if this image's segment was made by a forked child */
    unsigned int la_version;     /* the version ld.so offered to la_version */
    /* Added in the former padding (still version 1: old writers left it zero). */
    unsigned long long parent_image_id; /* forked == 1: image_id of the parent image whose
                                           loaded objects the child inherited; else 0 */
    unsigned char pad[48];
};

struct lp_audit_record {
    unsigned short kind;         /* enum lp_audit_kind; stored last */
    unsigned short flag;
    unsigned int size;           /* whole record, header + name + NUL + padding, multiple of 8 */
    unsigned long long time_ns;  /* CLOCK_MONOTONIC */
    int pid;
    int lmid;                    /* link-map namespace (la_objopen), else 0 */
    unsigned int name_len;       /* bytes of name, without the NUL */
    unsigned int seq;            /* per-process record counter, from 0 */
    /* char name[name_len + 1] follows, then zero padding to a multiple of 8 */
};

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
_Static_assert(sizeof(struct lp_audit_header) == LP_AUDIT_HEADER_SIZE, "lp_audit_header size");
_Static_assert(sizeof(struct lp_audit_record) == 32, "lp_audit_record size");
#endif

#ifdef __cplusplus
}
#endif
#endif
