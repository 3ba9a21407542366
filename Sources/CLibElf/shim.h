#include <libelf.h>
#include <gelf.h>
#include <sys/xattr.h>
