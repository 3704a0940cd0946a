/*
 * The hz_* API, linked directly against libhakozuna (no preload):
 * allocation calls and their error contract, hz_usable_size, hz_owns,
 * hz_stats (version, size handling, counters moving as documented),
 * hz_collect giving memory back, hz_version, hz_policy_name under HZ_POLICY
 * (in child processes), the HZ_STATS=1 exit line of a preloaded program, and
 * the checked calls (hz_free_checked, hz_usable_size_checked, hz_malloc_many,
 * hz_free_many), which must never abort.
 *
 * Usage: api             run every check
 *        api policy      print hz_policy_name() (used by the checks)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/wait.h>

#include "hakozuna.h"
#include "util.h"

static int failures;

/* Records a failed check without stopping, so one run lists every failure. */
#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      failures++;                                                                                  \
      fprintf(stderr, "FAIL: " __VA_ARGS__);                                                       \
      fputc('\n', stderr);                                                                         \
    }                                                                                              \
  } while (0)

static struct hz_stats stats(void) {
  struct hz_stats s;
  memset(&s, 0, sizeof s);
  hz_stats(&s, sizeof s);
  return s;
}

static void check_alloc(void) {
  static const size_t sizes[] = {0, 1, 15, 16, 17, 100, 1000, 2048, 2049, 5000, 65536, 100000,
                                 300000, MiB + 1, 16 * MiB};
  enum { N = sizeof sizes / sizeof sizes[0] };
  void *p[N];
  for (int i = 0; i < N; i++) {
    p[i] = hz_malloc(sizes[i]);
    CHECK(p[i], "hz_malloc(%zu) returned NULL", sizes[i]);
    if (!p[i]) continue;
    CHECK((uintptr_t)p[i] % 16 == 0, "hz_malloc(%zu) is not 16-aligned", sizes[i]);
    size_t u = hz_usable_size(p[i]);
    CHECK(u >= sizes[i], "hz_usable_size(hz_malloc(%zu)) = %zu", sizes[i], u);
    fill_pattern(p[i], u, (uint64_t)i);
    CHECK(hz_owns(p[i]) == 1, "hz_owns(hz_malloc(%zu)) is not 1", sizes[i]);
  }
  for (int i = 0; i < N; i++)
    if (p[i]) {
      size_t u = hz_usable_size(p[i]);
      CHECK(check_pattern(p[i], u, (uint64_t)i) == u, "hz_malloc(%zu) block was overwritten", sizes[i]);
      hz_free(p[i]);
    }
  void *z1 = hz_malloc(0), *z2 = hz_malloc(0);
  CHECK(z1 && z2 && z1 != z2, "hz_malloc(0) twice did not give two distinct blocks");
  hz_free(z1);
  hz_free(z2);
  hz_free(NULL);
  CHECK(hz_usable_size(NULL) == 0, "hz_usable_size(NULL) is not 0");
  CHECK(hz_owns(NULL) == 0, "hz_owns(NULL) is not 0");

  errno = 0;
  CHECK(!hz_malloc(opaque(SIZE_MAX)) && errno == ENOMEM, "hz_malloc(SIZE_MAX): want NULL, ENOMEM");
  errno = 0;
  CHECK(!hz_calloc(opaque(SIZE_MAX / 2 + 1), 2) && errno == ENOMEM,
        "hz_calloc(SIZE_MAX/2+1, 2): want NULL, ENOMEM");
  errno = 0;
  CHECK(!hz_calloc(opaque((size_t)1 << 32), (size_t)1 << 32) && errno == ENOMEM,
        "hz_calloc(2^32, 2^32): want NULL, ENOMEM");

  /* hz_calloc zeroes memory that was dirty when freed. */
  size_t dirty = 0;
  for (size_t n = 16; n <= 4 * MiB; n = n * 3 + 8) {
    void *b[16];
    for (int i = 0; i < 16; i++) {
      b[i] = hz_malloc(n);
      if (b[i]) memset(b[i], 0xA5, hz_usable_size(b[i]));
    }
    for (int i = 0; i < 16; i++) hz_free(b[i]);
    for (int i = 0; i < 16; i++) {
      unsigned char *c = hz_calloc(1, n);
      CHECK(c, "hz_calloc(1, %zu) returned NULL", n);
      for (size_t k = 0; c && k < n; k++) dirty += c[k] != 0;
      b[i] = c;
    }
    for (int i = 0; i < 16; i++) hz_free(b[i]);
  }
  CHECK(dirty == 0, "hz_calloc returned %zu nonzero bytes in reused memory", dirty);

  /* hz_realloc keeps contents through every size range; a failed one keeps the block. */
  unsigned char *r = hz_realloc(NULL, 10);
  CHECK(r, "hz_realloc(NULL, 10) returned NULL");
  size_t old = 10;
  fill_pattern(r, old, 1);
  static const size_t steps[] = {100, 2048, 2049, 70000, 300000, 5 * MiB, 40 * MiB, 300000, 1000, 17, 3 * MiB};
  for (size_t i = 0; r && i < sizeof steps / sizeof steps[0]; i++) {
    unsigned char *q = hz_realloc(r, steps[i]);
    CHECK(q, "hz_realloc(%zu -> %zu) returned NULL", old, steps[i]);
    if (!q) break;
    size_t keep = old < steps[i] ? old : steps[i];
    CHECK(check_pattern(q, keep, i + 1) == keep, "hz_realloc(%zu -> %zu) lost contents", old, steps[i]);
    fill_pattern(q, steps[i], i + 2);
    r = q;
    old = steps[i];
  }
  errno = 0;
  CHECK(r && !hz_realloc(r, opaque(SIZE_MAX)) && errno == ENOMEM,
        "hz_realloc(block, SIZE_MAX): want NULL, ENOMEM");
  CHECK(r && check_pattern(r, old, sizeof steps / sizeof steps[0] + 1) == old,
        "a failed hz_realloc damaged the old block");
  hz_free(r);

  /* hz_aligned_alloc: any power of two, sizes not a multiple of it allowed. */
  for (size_t a = 1; a <= 2 * MiB; a <<= 1)
    for (size_t n = 1; n <= MiB; n = n * 7 + 3) {
      void *q = hz_aligned_alloc(a, n);
      CHECK(q && (uintptr_t)q % a == 0 && hz_usable_size(q) >= n,
            "hz_aligned_alloc(%zu, %zu): want an aligned block of usable size >= size", a, n);
      if (q) memset(q, 1, n);
      CHECK(!q || hz_owns(q) == 1, "hz_owns(hz_aligned_alloc(%zu, %zu)) is not 1", a, n);
      hz_free(q);
    }
  /* A non-power-of-two alignment (0 included): NULL with EINVAL (C17),
   * whatever the C library's own aligned_alloc does. */
  static const size_t odd_align[] = {0, 3, 24, 48, 100, 4097};
  for (size_t i = 0; i < sizeof odd_align / sizeof odd_align[0]; i++) {
    errno = 0;
    void *q = hz_aligned_alloc(opaque(odd_align[i]), 64);
    CHECK(!q && errno == EINVAL, "hz_aligned_alloc(%zu, 64): want NULL, EINVAL", odd_align[i]);
    hz_free(q);
  }
  errno = 0;
  CHECK(!hz_aligned_alloc(64, opaque(SIZE_MAX)) && errno == ENOMEM,
        "hz_aligned_alloc(64, SIZE_MAX): want NULL, ENOMEM");
}

static void *free_many_remote(void *arg) {
  void **blocks = arg;
  return (void *)hz_free_many(blocks, 64);
}

/* The checked calls return a status for every pointer: no abort. */
static void check_checked(void) {
  static const size_t sizes[] = {0, 48, 2048, 100000, 300000, 4 * MiB};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    char *p = hz_malloc(n);
    CHECK(p && hz_usable_size_checked(p) == hz_usable_size(p), "hz_usable_size_checked(hz_malloc(%zu))", n);
    CHECK(hz_free_checked(p + 8) == HZ_INVALID, "hz_free_checked(interior of %zu-byte block) is not HZ_INVALID", n);
    CHECK(hz_usable_size_checked(p + 8) == 0, "hz_usable_size_checked(interior of %zu-byte block) is not 0", n);
    CHECK(hz_owns(p) == 1, "a refused hz_free_checked(interior) freed the %zu-byte block", n);
    CHECK(hz_free_checked(p) == HZ_OK, "hz_free_checked(hz_malloc(%zu)) is not HZ_OK", n);
    int again = hz_free_checked(opaque_ptr(p));
    CHECK(again == (n <= 256 * KiB ? HZ_FREED : HZ_INVALID), "second hz_free_checked of a %zu-byte block gave %d",
          n, again);
    CHECK(hz_usable_size_checked(p) == 0, "hz_usable_size_checked(freed %zu-byte block) is not 0", n);
  }
  int local = 0;
  CHECK(hz_free_checked(NULL) == HZ_OK, "hz_free_checked(NULL) is not HZ_OK");
  CHECK(hz_free_checked(&local) == HZ_INVALID, "hz_free_checked(stack address) is not HZ_INVALID");
  CHECK(hz_usable_size_checked(NULL) == 0 && hz_usable_size_checked(&local) == 0,
        "hz_usable_size_checked(NULL or stack address) is not 0");
  static _Alignas(64) char global[64];
  CHECK(hz_free_checked(global) == HZ_INVALID, "hz_free_checked(static array) is not HZ_INVALID");

  /* Batches: every block distinct, aligned, usable; hz_free_many stops at
   * the first bad entry and skips NULL. */
  enum { N = 1000 };
  void **b = hz_malloc(N * sizeof *b);
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i], count = n > 256 * KiB ? 8 : N;
    CHECK(hz_malloc_many(n, b, count) == count, "hz_malloc_many(%zu, b, %zu) fell short", n, count);
    for (size_t k = 0; k < count; k++) {
      CHECK(b[k] && (uintptr_t)b[k] % 16 == 0 && hz_usable_size_checked(b[k]) >= n,
            "hz_malloc_many(%zu): entry %zu is not a live 16-aligned block", n, k);
      if (b[k]) memset(b[k], (int)k, n < 64 ? n : 64);
    }
    for (size_t k = 1; k < count; k++) CHECK(b[k] != b[k - 1], "hz_malloc_many(%zu): entry %zu repeats", n, k);
    void *kept = b[count / 2];
    b[count / 2] = b[count / 2 - 1];
    b[1] = NULL;
    size_t freed = hz_free_many(b, count);
    CHECK(freed == count / 2, "hz_free_many with a repeat at %zu returned %zu", count / 2, freed);
    CHECK(hz_free_many(b + count / 2 + 1, count - count / 2 - 1) == count - count / 2 - 1,
          "hz_free_many of the rest fell short");
    CHECK(hz_free_checked(kept) == HZ_OK, "the block hz_free_many stopped before is not live");
  }
  CHECK(hz_malloc_many(100, b, 0) == 0 && hz_free_many(b, 0) == 0, "hz_*_many with count 0");
  errno = 0;
  CHECK(hz_malloc_many(opaque(SIZE_MAX), b, 4) == 0 && errno == ENOMEM, "hz_malloc_many(SIZE_MAX): want 0, ENOMEM");

  /* Blocks of this thread freed in a batch by another. */
  CHECK(hz_malloc_many(64, b, 64) == 64, "hz_malloc_many(64, b, 64) fell short");
  pthread_t t;
  void *result = NULL;
  if (pthread_create(&t, NULL, free_many_remote, b)) fail("pthread_create failed");
  pthread_join(t, &result);
  CHECK((size_t)result == 64, "hz_free_many in another thread returned %zu", (size_t)result);
  hz_collect();
  CHECK(hz_owns(b[0]) == 0, "a block freed by another thread's hz_free_many is still live");
  hz_free(b);
}

static void check_stats_struct(void) {
  unsigned char buf[sizeof(struct hz_stats) + 64];
  CHECK(hz_stats(NULL, sizeof buf) == 0, "hz_stats(NULL, n) is not 0");
  memset(buf, 0xEE, sizeof buf);
  CHECK(hz_stats((struct hz_stats *)buf, 7) == 0 && buf[0] == 0xEE, "hz_stats(out, 7) wrote or returned nonzero");
  /* Only out_size bytes are written. */
  memset(buf, 0xEE, sizeof buf);
  size_t got = hz_stats((struct hz_stats *)buf, 8);
  struct hz_stats s;
  memcpy(&s, buf, 8);
  CHECK(got == 8 && s.version == HZ_STATS_VERSION && s.size == 8 && buf[8] == 0xEE,
        "hz_stats(out, 8): returned %zu, version %u, size %u, byte 8 %s", got, s.version, s.size,
        buf[8] == 0xEE ? "untouched" : "written");
  memset(buf, 0xEE, sizeof buf);
  got = hz_stats((struct hz_stats *)buf, sizeof buf);
  memcpy(&s, buf, sizeof s);
  CHECK(got == sizeof s && s.size == sizeof s && s.version == HZ_STATS_VERSION &&
            buf[sizeof s] == 0xEE && buf[sizeof buf - 1] == 0xEE,
        "hz_stats(out, %zu): returned %zu, size %u, version %u, bytes past the struct %s", sizeof buf,
        got, s.size, s.version, buf[sizeof s] == 0xEE ? "untouched" : "written");
  CHECK(s.segment_count >= 1 && s.bytes_mapped >= s.bytes_in_use && s.bytes_mapped_peak >= s.bytes_mapped &&
            s.heap_count >= 1 && s.thread_count >= 1,
        "hz_stats inconsistent: segments %llu, mapped %llu, peak %llu, in use %llu, heaps %llu, threads %llu",
        (unsigned long long)s.segment_count, (unsigned long long)s.bytes_mapped,
        (unsigned long long)s.bytes_mapped_peak, (unsigned long long)s.bytes_in_use,
        (unsigned long long)s.heap_count, (unsigned long long)s.thread_count);
}

static void check_counters(void) {
  enum { N = 100 };
  void *p[N];
  struct hz_stats s0 = stats();
  size_t usable = 0;
  for (int i = 0; i < N; i++) p[i] = hz_malloc(1000);
  struct hz_stats s1 = stats();
  for (int i = 0; i < N; i++) usable += hz_usable_size(p[i]);
  for (int i = 0; i < N; i++) hz_free(p[i]);
  struct hz_stats s2 = stats();
  CHECK(s1.alloc_count - s0.alloc_count == N, "alloc_count grew by %llu over %d hz_malloc calls",
        (unsigned long long)(s1.alloc_count - s0.alloc_count), N);
  CHECK(s1.bytes_in_use - s0.bytes_in_use == usable,
        "bytes_in_use grew by %llu over %d blocks of %zu usable bytes in all",
        (unsigned long long)(s1.bytes_in_use - s0.bytes_in_use), N, usable);
  CHECK(s2.free_count - s1.free_count == N, "free_count grew by %llu over %d hz_free calls",
        (unsigned long long)(s2.free_count - s1.free_count), N);
  CHECK(s2.bytes_in_use == s0.bytes_in_use, "bytes_in_use is %llu after freeing, was %llu before",
        (unsigned long long)s2.bytes_in_use, (unsigned long long)s0.bytes_in_use);

  /* A fresh size class runs its page dry: refills happen. */
  enum { M = 20000 };
  void **q = hz_malloc(M * sizeof *q);
  s0 = stats();
  for (int i = 0; i < M; i++) q[i] = hz_malloc(48);
  s1 = stats();
  for (int i = 0; i < M; i++) hz_free(q[i]);
  hz_free(q);
  CHECK(s1.refill_count > s0.refill_count, "refill_count did not grow over %d allocations of 48 bytes", M);

  /* A large block shows in large_count/large_bytes/bytes_mapped, and after
   * hz_free + hz_collect its memory is handed back. */
  s0 = stats();
  void *big = hz_malloc(64 * MiB);
  s1 = stats();
  hz_free(big);
  size_t returned = hz_collect();
  s2 = stats();
  CHECK(s1.large_count == s0.large_count + 1 && s1.large_bytes >= s0.large_bytes + 64 * MiB,
        "a live 64 MiB block: large_count %llu -> %llu, large_bytes %llu -> %llu",
        (unsigned long long)s0.large_count, (unsigned long long)s1.large_count,
        (unsigned long long)s0.large_bytes, (unsigned long long)s1.large_bytes);
  CHECK(s1.bytes_mapped >= s0.bytes_mapped + 64 * MiB && s1.bytes_mapped_peak >= s1.bytes_mapped,
        "a live 64 MiB block: bytes_mapped %llu -> %llu, peak %llu", (unsigned long long)s0.bytes_mapped,
        (unsigned long long)s1.bytes_mapped, (unsigned long long)s1.bytes_mapped_peak);
  CHECK(s2.large_count == s0.large_count && s2.bytes_mapped <= s0.bytes_mapped &&
            s2.bytes_purged >= s1.bytes_purged + 64 * MiB,
        "64 MiB block freed and hz_collect: large_count %llu (was %llu), bytes_mapped %llu (was %llu), bytes_purged grew by %llu",
        (unsigned long long)s2.large_count, (unsigned long long)s0.large_count,
        (unsigned long long)s2.bytes_mapped, (unsigned long long)s0.bytes_mapped,
        (unsigned long long)(s2.bytes_purged - s1.bytes_purged));
  CHECK(returned <= s2.bytes_purged - s1.bytes_purged, "hz_collect returned %zu, more than bytes_purged grew (%llu)",
        returned, (unsigned long long)(s2.bytes_purged - s1.bytes_purged));
}

enum { REMOTE = 50 };
static void *remote_blocks[REMOTE];
static struct hz_stats in_thread;

static void *free_remote(void *arg) {
  (void)arg;
  void *mine = hz_malloc(100); /* this thread now has a heap of its own */
  in_thread = stats();
  hz_free(mine);
  for (int i = 0; i < REMOTE; i++) hz_free(remote_blocks[i]);
  return NULL;
}

static void check_remote(void) {
  for (int i = 0; i < REMOTE; i++) remote_blocks[i] = hz_malloc(64);
  struct hz_stats s0 = stats();
  pthread_t t;
  if (pthread_create(&t, NULL, free_remote, NULL)) fail("pthread_create failed");
  pthread_join(t, NULL);
  struct hz_stats s1 = stats();
  hz_collect();
  struct hz_stats s2 = stats();
  CHECK(in_thread.thread_count >= 2 && in_thread.heap_count >= 2,
        "with a second thread allocating: thread_count %llu, heap_count %llu",
        (unsigned long long)in_thread.thread_count, (unsigned long long)in_thread.heap_count);
  CHECK(s1.remote_free_count - s0.remote_free_count >= REMOTE,
        "remote_free_count grew by %llu when another thread freed %d blocks",
        (unsigned long long)(s1.remote_free_count - s0.remote_free_count), REMOTE);
  CHECK(s1.free_count - s0.free_count >= REMOTE, "free_count grew by %llu when another thread freed %d blocks",
        (unsigned long long)(s1.free_count - s0.free_count), REMOTE);
  CHECK(s1.flush_count > s0.flush_count, "flush_count did not grow after a thread freed %d foreign blocks and exited", REMOTE);
  CHECK(s2.collect_count > s0.collect_count, "collect_count did not grow after the owner's hz_collect");
  CHECK(s2.bytes_in_use + REMOTE * 64 <= s0.bytes_in_use + 64 * KiB,
        "bytes_in_use %llu after %d remote frees of 64 bytes and hz_collect, was %llu",
        (unsigned long long)s2.bytes_in_use, REMOTE, (unsigned long long)s0.bytes_in_use);
  CHECK(s2.thread_count == s0.thread_count, "thread_count %llu after the thread exited, was %llu",
        (unsigned long long)s2.thread_count, (unsigned long long)s0.thread_count);
}

/* Freed memory goes back to the OS on hz_collect: RSS falls. */
static void check_collect(void) {
  enum { N = 200000 };
  void **b = hz_malloc(N * sizeof *b);
  for (int i = 0; i < N; i++) {
    b[i] = hz_malloc(1000);
    memset(b[i], 1, 1000);
  }
  size_t peak = rss_bytes();
  for (int i = 0; i < N; i++) hz_free(b[i]);
  hz_free(b);
  hz_collect();
  size_t after = rss_bytes();
  CHECK(after + (size_t)N * 1000 / 2 <= peak,
        "RSS %zu KiB with %d blocks of 1000 bytes live, %zu KiB after freeing them and hz_collect",
        peak / KiB, N, after / KiB);
}

/* Runs argv with env changes, returns its stdout and stderr (NUL-terminated). */
static void run(char *const argv[], const char *set[][2], int nset, const char *unset[], int nunset,
                char *out, char *err, size_t cap) {
  int po[2], pe[2];
  if (pipe(po) || pipe(pe)) fail("pipe failed");
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) fail("fork failed");
  if (pid == 0) {
    for (int i = 0; i < nunset; i++) unsetenv(unset[i]);
    for (int i = 0; i < nset; i++) setenv(set[i][0], set[i][1], 1);
    dup2(po[1], 1);
    dup2(pe[1], 2);
    close(po[0]), close(po[1]), close(pe[0]), close(pe[1]);
    execv(argv[0], argv);
    _exit(127);
  }
  close(po[1]);
  close(pe[1]);
  /* Small outputs: stdout first, then stderr, cannot fill a pipe and block. */
  size_t n = 0;
  ssize_t r;
  while (n < cap - 1 && (r = read(po[0], out + n, cap - 1 - n)) > 0) n += (size_t)r;
  out[n] = 0;
  n = 0;
  while (n < cap - 1 && (r = read(pe[0], err + n, cap - 1 - n)) > 0) n += (size_t)r;
  err[n] = 0;
  close(po[0]);
  close(pe[0]);
  int st;
  waitpid(pid, &st, 0);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s %s exited with status 0x%x", argv[0],
        argv[1] ? argv[1] : "", st);
}

static int one_line(const char *s) { return s[0] && s[0] != '\n' && strchr(s, '\n') == s + strlen(s) - 1; }

static void check_policy(void) {
  char out[4096], err[4096];
  char *self[] = {"/proc/self/exe", "policy", NULL};
  const char *unset[] = {"HZ_POLICY", "HZ_STATS", "LD_PRELOAD"};
  run(self, NULL, 0, unset, 3, out, err, sizeof out);
  CHECK(!strcmp(out, "balanced\n") && !err[0], "without HZ_POLICY: policy \"%s\", stderr \"%s\"", out, err);
  static const char *const lanes[] = {"balanced", "scale", "compact", "hardened"};
  for (int i = 0; i < 4; i++) {
    const char *set[][2] = {{"HZ_POLICY", lanes[i]}};
    run(self, set, 1, unset + 1, 2, out, err, sizeof out);
    CHECK(!strncmp(out, lanes[i], strlen(lanes[i])) && out[strlen(lanes[i])] == '\n' && !err[0],
          "HZ_POLICY=%s: policy \"%s\", stderr \"%s\"", lanes[i], out, err);
  }
  const char *bogus[][2] = {{"HZ_POLICY", "bogus"}};
  run(self, bogus, 1, unset + 1, 2, out, err, sizeof out);
  CHECK(!strcmp(out, "balanced\n") && one_line(err),
        "HZ_POLICY=bogus: want policy \"balanced\" and one warning line on stderr, got \"%s\" and \"%s\"", out, err);
  /* The warning names its process: each process of a tree warns once. */
  int pid = 0, end = 0;
  sscanf(err, "hakozuna: pid=%d program=exe: invalid HZ_POLICY=\"bogus\", using balanced (lanes: %*[^)])%n", &pid, &end);
  CHECK(pid > 0 && end > 0 && !strcmp(err + end, "\n"),
        "HZ_POLICY=bogus: want \"hakozuna: pid=N program=exe: invalid HZ_POLICY=\\\"bogus\\\", using balanced (lanes: ...)\", got \"%s\"", err);
}

/* HZ_STATS=1: a preloaded program prints one line at exit on stderr, and
 * nothing without it. The program is perl: it exits through exit() and
 * leaves stderr open (coreutils close stderr at exit, dash calls _exit). */
static void check_stats_line(void) {
  Dl_info info;
  if (!dladdr((void *)hz_malloc, &info) || !info.dli_fname) fail("dladdr(hz_malloc) failed");
  char out[4096], err[4096];
  char *perl[] = {"/usr/bin/perl", "-e", "print qq(hello\\n)", NULL};
  const char *with[][2] = {{"LD_PRELOAD", info.dli_fname}, {"HZ_STATS", "1"}};
  const char *unset[] = {"HZ_STATS", "HZ_POLICY"};
  run(perl, with, 2, unset + 1, 1, out, err, sizeof out);
  CHECK(!strcmp(out, "hello\n") && one_line(err),
        "HZ_STATS=1 perl under preload: want one line on stderr, got stdout \"%s\", stderr \"%s\"", out, err);
  run(perl, with, 1, unset, 2, out, err, sizeof out);
  CHECK(!strcmp(out, "hello\n") && !err[0],
        "perl under preload without HZ_STATS: want nothing on stderr, got \"%s\"", err);
  char *self[] = {"/proc/self/exe", "policy", NULL};
  run(self, with + 1, 1, unset + 1, 1, out, err, sizeof out);
  CHECK(one_line(err), "HZ_STATS=1 with the library linked: want one line on stderr, got \"%s\"", err);

  /* The line names the process: pid, program, policy, then every field.
   * Run by its own name, so that the program name is this test's. */
  static char exe[4096];
  ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (len <= 0) fail("readlink(/proc/self/exe) failed");
  exe[len] = 0;
  self[0] = exe;
  run(self, with + 1, 1, unset + 1, 1, out, err, sizeof out);
  char want[64];
  snprintf(want, sizeof want, "program=api policy=balanced alloc_count=");
  CHECK(!strncmp(err, "hakozuna: stats pid=", 20) && strstr(err, want) && strstr(err, " refill_count="),
        "HZ_STATS=1 line: want \"hakozuna: stats pid=N %s...\", got \"%s\"", want, err);

  /* verbose: the line, then a table with a header and one row per class used. */
  const char *verbose[][2] = {{"HZ_STATS", "verbose"}};
  run(self, verbose, 1, unset + 1, 1, out, err, sizeof out);
  CHECK(!strncmp(err, "hakozuna: stats pid=", 20) && strstr(err, "hakozuna: class block_bytes allocs frees live_blocks\n") &&
            strchr(err, '\n') != strrchr(err, '\n'),
        "HZ_STATS=verbose: want the line and a class table, got \"%s\"", err);

  /* /dir/prefix: nothing on stderr, the line in prefix.<pid>. */
  char dir[] = "/tmp/hz-stats-XXXXXX";
  if (!mkdtemp(dir)) fail("mkdtemp failed");
  char prefix[64], path[512];
  snprintf(prefix, sizeof prefix, "%s/run", dir);
  const char *to_file[][2] = {{"HZ_STATS", prefix}};
  run(self, to_file, 1, unset + 1, 1, out, err, sizeof out);
  CHECK(!err[0], "HZ_STATS=%s: want nothing on stderr, got \"%s\"", prefix, err);
  DIR *d = opendir(dir);
  int files = 0;
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (strncmp(e->d_name, "run.", 4)) continue;
    files++;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    FILE *f = fopen(path, "r");
    char line[4096] = "";
    if (f && fgets(line, sizeof line, f)) {
      char pid_part[32];
      snprintf(pid_part, sizeof pid_part, "pid=%s ", e->d_name + 4);
      CHECK(strstr(line, pid_part) && strstr(line, "program=api"), "%s holds \"%s\", not its process's line", path, line);
    }
    if (f) fclose(f);
    unlink(path);
  }
  if (d) closedir(d);
  rmdir(dir);
  CHECK(files == 1, "HZ_STATS=%s: want one file %s.<pid>, found %d", prefix, prefix, files);
}

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "policy")) {
    printf("%s\n", hz_policy_name());
    return 0;
  }
  const char *v = hz_version();
  unsigned a, b, c;
  CHECK(v && sscanf(v, "%u.%u.%u", &a, &b, &c) == 3, "hz_version() is \"%s\", not x.y.z", v ? v : "(null)");
  check_alloc();
  check_checked();
  check_stats_struct();
  check_counters();
  check_remote();
  check_collect();
  check_policy();
  check_stats_line();
  if (!failures) printf("hz_* API: all checks passed (version %s)\n", v);
  return failures ? 1 : 0;
}
