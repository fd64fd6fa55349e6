/*
 * LD_PRELOAD shim for wrk (bench/compare's "new connection per request" runs):
 * every TLS connection is a full handshake.
 *
 * wrk closes a connection with SSL_shutdown + SSL_clear and reconnects with the
 * same SSL object; SSL_clear keeps the session, so the next SSL_connect offers
 * it and any server with a session cache or tickets resumes (an abbreviated
 * handshake, no certificate signature). This wraps SSL_clear to drop the
 * session as well, and counts, at wrk's exit, how the finished handshakes went
 * (full or resumed, TLS version) so bench/compare can check that none resumed.
 *
 * Built by bench/compare with `cc -shared -fPIC -O2 -o X.so bench/tls_no_resume.c -ldl`;
 * no OpenSSL headers needed (libssl is already in wrk's process).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>

typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;
int SSL_is_init_finished(const SSL *s);
int SSL_session_reused(const SSL *s);
int SSL_version(const SSL *s);
int SSL_set_session(SSL *s, SSL_SESSION *session);

static unsigned long full, resumed, tls12, tls13, other;

int SSL_clear(SSL *s) {
  static int (*real)(SSL *);
  if (!real) real = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_clear");
  if (SSL_is_init_finished(s)) {
    if (SSL_session_reused(s)) __atomic_add_fetch(&resumed, 1, __ATOMIC_RELAXED);
    else __atomic_add_fetch(&full, 1, __ATOMIC_RELAXED);
    switch (SSL_version(s)) {
      case 0x0303: __atomic_add_fetch(&tls12, 1, __ATOMIC_RELAXED); break;
      case 0x0304: __atomic_add_fetch(&tls13, 1, __ATOMIC_RELAXED); break;
      default: __atomic_add_fetch(&other, 1, __ATOMIC_RELAXED);
    }
  }
  int r = real(s);
  SSL_set_session(s, NULL);
  return r;
}

__attribute__((destructor)) static void report(void) {
  fprintf(stderr, "tls_no_resume: %lu full %lu resumed tls1.2 %lu tls1.3 %lu other %lu\n",
          full, resumed, tls12, tls13, other);
}
