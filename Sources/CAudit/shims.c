int lp_placeholder(void) { return 0; }
