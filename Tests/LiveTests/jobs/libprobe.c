int probe_value(void) { return 42; }
