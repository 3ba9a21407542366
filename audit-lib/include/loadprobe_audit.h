/*
 * libloadprobe-audit.so: the rtld-audit hooks it exports (see rtld-audit(7)).
 * Nothing links against this library: ld.so loads it through LD_AUDIT. The
 * header documents its interface, and gives SwiftPM the public headers
 * directory a C target needs. Records: Sources/CAudit/include/loadprobe_wire.h.
 */
#ifndef LOADPROBE_AUDIT_H
#define LOADPROBE_AUDIT_H

/* la_version: the version ld.so offers (its LAV_CURRENT), or 0 when
 * LOADPROBE_AUDIT_DIR is unset (the library is then unloaded, inert). */
unsigned int la_version(unsigned int version);

/* Every other hook records one LP_REC_* record and changes nothing:
 * la_objsearch returns the name it was given, la_objopen asks for no
 * symbol-binding callbacks. */

#endif
