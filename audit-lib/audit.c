#include "../Sources/CAudit/include/loadprobe_wire.h"
__attribute__((visibility("default"))) unsigned int la_version(unsigned int v) { return v; }
__asm__(".section .swift1_autolink_entries,\"e\"\n.asciz \"-Xlinker\"\n.asciz \"--as-needed\"\n.previous\n");
void swift_addNewDSOImage(const void *image) { (void)image; }
int _swift_backtrace_isThunkFunction(const char *n) { (void)n; return 0; }
