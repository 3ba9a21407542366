/* 1800 bytes of initial-exec TLS: more than glibc's static TLS surplus leaves for dlopen. */
__attribute__((tls_model("initial-exec"))) __thread char big[1800];
int touch_big(void) { big[0] = 1; return big[0]; }
