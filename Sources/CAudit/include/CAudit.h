#ifndef CAUDIT_H
#define CAUDIT_H
#include "loadprobe_wire.h"
int lp_placeholder(void);
#endif
