/* The user's own audit module (LD_AUDIT): accepts the interface and does nothing. */
unsigned int la_version(unsigned int version) { return version; }
