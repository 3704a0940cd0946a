/* Helpers shared by the C and C++ tests: opaque values, byte patterns,
 * failing, children. */
#ifndef HZ_TEST_UTIL_H
#define HZ_TEST_UTIL_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)

/* Hides a value from the optimiser, so calls with constant arguments (say
 * malloc(SIZE_MAX)) are really made and not folded or warned about. */
static inline size_t opaque(size_t x) {
  __asm__ volatile("" : "+r"(x));
  return x;
}
static inline void *opaque_ptr(void *p) {
  __asm__ volatile("" : "+r"(p));
  return p;
}

/* Word w of the pattern keyed by key: different keys and positions give
 * different words, so a block that overlaps another, or is copied short,
 * or is copied from the wrong place, shows up in check_pattern. */
static inline uint64_t pattern_word(uint64_t key, size_t w) {
  uint64_t x = (key + 1) * 0xD6E8FEB86659FD93ull ^ (w * 0x9E3779B97F4A7C15ull);
  return x ^ (x >> 29);
}

static inline void fill_pattern(void *p, size_t n, uint64_t key) {
  unsigned char *b = (unsigned char *)p;
  size_t w = 0;
  for (; w * 8 + 8 <= n; w++) {
    uint64_t v = pattern_word(key, w);
    memcpy(b + w * 8, &v, 8);
  }
  if (w * 8 < n) {
    uint64_t v = pattern_word(key, w);
    memcpy(b + w * 8, &v, n - w * 8);
  }
}

/* Offset of the first byte of p[0..n) that is not the pattern of key, or n. */
static inline size_t check_pattern(const void *p, size_t n, uint64_t key) {
  const unsigned char *b = (const unsigned char *)p;
  size_t w = 0;
  for (; w * 8 + 8 <= n; w++) {
    uint64_t v = pattern_word(key, w), got;
    memcpy(&got, b + w * 8, 8);
    if (got != v) break;
  }
  for (size_t i = w * 8; i < n; i++) {
    uint64_t v = pattern_word(key, i / 8);
    if (b[i] != ((const unsigned char *)&v)[i % 8]) return i;
  }
  return n;
}

/* Prints "FAIL: <reason>" on stderr and exits 1: the runner shows that line. */
__attribute__((format(printf, 1, 2), noreturn)) static inline void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fflush(stdout);
  fputs("FAIL: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

/* n scaled by $TEST_SCALE_PERCENT (1..100, default 100), at least 1: the
 * aarch64 run under qemu (tests/cross/aarch64.sh) shortens the long loops.
 * Both runs of a differential test must use the same value. */
static inline size_t test_scaled(size_t n) {
  const char *e = getenv("TEST_SCALE_PERCENT");
  long pct = e ? strtol(e, NULL, 10) : 100;
  if (pct < 1 || pct > 100) pct = 100;
  size_t m = n * (size_t)pct / 100;
  return m ? m : 1;
}

/* Resident set size in bytes, from /proc/self/statm. */
static inline size_t rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long size = 0, resident = 0;
  if (!f || fscanf(f, "%lu %lu", &size, &resident) != 2) fail("cannot read /proc/self/statm");
  fclose(f);
  return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* RSS in bytes once it is at most limit_kib, or after 1 s of polling
 * (anything the allocator does late gets its chance); at once when
 * limit_kib is negative (no limit). */
static inline size_t rss_settled(long limit_kib) {
  const struct timespec pause = {0, 10 * 1000 * 1000};
  size_t rss = rss_bytes();
  for (int i = 0; limit_kib >= 0 && rss / KiB > (size_t)limit_kib && i < 100; i++) {
    nanosleep(&pause, NULL);
    rss = rss_bytes();
  }
  return rss;
}


/* Runs body() in a child process with its stderr captured into err (cap
 * bytes, newlines turned into spaces, so a message reads as one line) and
 * without a core file; a hang is cut by alarm after 60 s. Returns the
 * child's wait status. */
static inline int run_in_child(void (*body)(void), char *err, size_t cap) {
  int fds[2];
  if (pipe(fds)) fail("pipe failed");
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) fail("fork failed");
  if (pid == 0) {
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core); /* an expected abort leaves no core file */
    dup2(fds[1], 2);
    close(fds[0]);
    close(fds[1]);
    alarm(60);
    body();
    exit(0);
  }
  close(fds[1]);
  size_t len = 0;
  ssize_t r;
  while (len < cap - 1 && (r = read(fds[0], err + len, cap - 1 - len)) > 0) len += (size_t)r;
  err[len] = 0;
  close(fds[0]);
  int st;
  waitpid(pid, &st, 0);
  for (char *c = err; *c; c++)
    if (*c == '\n') *c = ' ';
  return st;
}

#endif
