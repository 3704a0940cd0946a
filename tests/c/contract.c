/*
 * Differential contract test of the malloc family.
 *
 * Runs one fixed script of calls and prints a transcript whose lines depend
 * only on what glibc 2.36 defines: NULL or not, errno where glibc sets it,
 * return codes, whether contents survived, whether a block is aligned as
 * promised, has usable size >= the request and is writable to its usable
 * end. Raw addresses and exact usable sizes legitimately differ between
 * allocators and never appear. The runner prints the transcript once without
 * preload (glibc) and once under LD_PRELOAD, and fails on any difference.
 *
 * errno is set to a sentinel before each call and printed only where glibc
 * defines it: after a failed allocation (ENOMEM/EINVAL) and after free()
 * (glibc >= 2.33 preserves it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define SENTINEL 4242 /* no errno value has this number */

static size_t page;

static const char *errname(int e) {
  static char buf[32];
  switch (e) {
  case ENOMEM: return "ENOMEM";
  case EINVAL: return "EINVAL";
  case SENTINEL: return "unchanged";
  default: snprintf(buf, sizeof buf, "errno%d", e); return buf;
  }
}

/* Sizes with a name print by name, so the transcript reads well. */
static const char *sz(size_t n) {
  static char bufs[8][32];
  static int next;
  char *b = bufs[next++ % 8];
  if (n == SIZE_MAX) return "SIZE_MAX";
  if (n == SIZE_MAX / 2 + 1) return "SIZE_MAX/2+1";
  if (n == SIZE_MAX / 2 + 2) return "SIZE_MAX/2+2";
  if (n == (size_t)PTRDIFF_MAX) return "PTRDIFF_MAX";
  if (n == (size_t)1 << 47) return "2^47";
  snprintf(b, 32, "%zu", n);
  return b;
}

/* Alignment a block from memalign(a) must have in glibc 2.36: at least 16,
 * and a non-power-of-two alignment is rounded up to the next power of two.
 * Above SIZE_MAX/2+1 there is none (glibc fails the call with EINVAL). */
static size_t effective_align(size_t a) {
  if (a > SIZE_MAX / 2 + 1) return 1;
  size_t e = 16;
  while (e < a) e <<= 1;
  return e;
}

/*
 * Checks a block returned for a request of n bytes promising alignment
 * align: aligned, usable size >= n, and writable and readable back over its
 * whole usable size (or, for blocks over 256 MiB, a byte in a few pages, so
 * the test stays cheap). Returns "ok" or the problems found.
 */
static const char *props(void *p, size_t n, size_t align) {
  static char buf[128];
  buf[0] = 0;
  if ((uintptr_t)p % align) strcat(buf, " misaligned");
  size_t u = malloc_usable_size(p);
  if (u < n) strcat(buf, " usable<size");
  if (u <= 256 * MiB) {
    fill_pattern(p, u, u ^ n);
    if (check_pattern(p, u, u ^ n) != u) strcat(buf, " not-writable");
  } else {
    unsigned char *b = p;
    for (size_t off = 0; off < n; off += 64 * MiB) b[off] = (unsigned char)(off >> 20);
    b[n - 1] = 0x5a;
    for (size_t off = 0; off < n; off += 64 * MiB)
      if (b[off] != (unsigned char)(off >> 20)) strcat(buf, " not-writable");
    if (b[n - 1] != 0x5a) strcat(buf, " not-writable");
  }
  return buf[0] ? buf + 1 : "ok";
}

/* One transcript line for an allocation call, then frees the block. */
static void report(const char *call, void *p, int err, size_t n, size_t align) {
  if (p) {
    printf("%s -> block %s\n", call, props(p, n, align));
    free(p);
  } else {
    printf("%s -> NULL errno=%s\n", call, errname(err));
  }
}

/* Makes one allocation call with errno set to the sentinel and reports it;
 * n and align are what the returned block must satisfy. */
#define CALL(expr, n, align, ...)                                                                  \
  do {                                                                                             \
    char call_[96];                                                                                \
    snprintf(call_, sizeof call_, __VA_ARGS__);                                                    \
    errno = SENTINEL;                                                                              \
    void *p_ = (expr);                                                                             \
    int e_ = errno;                                                                                \
    report(call_, p_, e_, (n), (align));                                                           \
  } while (0)

static const size_t huge[] = {SIZE_MAX, SIZE_MAX - 4095, SIZE_MAX / 2 + 1, (size_t)PTRDIFF_MAX,
                              (size_t)1 << 47};

static void test_malloc(void) {
  /* Every size up to a few pages one by one, then strides to 8 MiB: each
   * must be 16-aligned with usable >= size and writable. */
  size_t bad = 0;
  const char *why = NULL;
  for (size_t n = 0; n <= 8 * MiB && !why; n += n < 4200 ? 1 : n < 300000 ? 997 : 123457) {
    void *p = malloc(opaque(n));
    if (!p) why = "NULL";
    else {
      const char *r = props(p, n, 16);
      if (strcmp(r, "ok")) why = r;
      free(p);
    }
    bad = n;
  }
  if (why) printf("malloc each size 0..8MiB -> first bad size %zu: %s\n", bad, why);
  else printf("malloc each size 0..8MiB -> all ok\n");

  /* Blocks of boundary sizes all live at once, each with its own pattern:
   * an overlap between two of them breaks one's pattern. */
  static const size_t sizes[] = {
      0,      1,      8,      15,     16,      17,      24,      32,      48,      63,     64,
      65,     100,    127,    128,    129,     255,     256,     257,     511,     512,    513,
      1000,   1023,   1024,   1025,   2047,    2048,    2049,    3000,    4095,    4096,   4097,
      8191,   8192,   8193,   16384,  32769,   65536,   100000,  131072,  200000,  262144, 262145,
      500000, MiB - 1, MiB,   MiB + 1, 2 * MiB, 4 * MiB + 17, 16 * MiB, 64 * MiB + 3};
  enum { NS = sizeof sizes / sizeof sizes[0] };
  void *live[NS];
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < NS; i++) {
      errno = SENTINEL;
      live[i] = malloc(opaque(sizes[i]));
      if (!live[i]) printf("malloc(%zu) live -> NULL errno=%s\n", sizes[i], errname(errno));
      else fill_pattern(live[i], sizes[i], (uint64_t)i * 131 + round);
    }
    int overlaps = 0;
    for (int i = 0; i < NS; i++)
      if (live[i] && check_pattern(live[i], sizes[i], (uint64_t)i * 131 + round) != sizes[i]) overlaps++;
    printf("malloc %d boundary sizes live together, round %d -> %d blocks corrupted\n", NS, round,
           overlaps);
    for (int i = 0; i < NS; i++) {
      int j = (i * 17) % NS; /* free in a scrambled order */
      if (live[j]) printf("malloc(%zu) -> block %s\n", sizes[j], props(live[j], sizes[j], 16));
      errno = SENTINEL;
      free(live[j]);
      if (errno != SENTINEL) printf("free(block of %zu) -> errno=%s\n", sizes[j], errname(errno));
    }
  }

  /* malloc(0): a unique, freeable, aligned block each time. */
  enum { NZ = 100 };
  void *z[NZ];
  int nulls = 0, dups = 0, misaligned = 0;
  for (int i = 0; i < NZ; i++) {
    z[i] = malloc(opaque(0));
    if (!z[i]) nulls++;
    else if ((uintptr_t)z[i] % 16) misaligned++;
    for (int j = 0; j < i; j++)
      if (z[i] && z[j] == z[i]) dups++;
  }
  for (int i = 0; i < NZ; i++) free(z[i]);
  printf("malloc(0) x%d -> %d NULL, %d duplicates, %d misaligned\n", NZ, nulls, dups, misaligned);

  errno = SENTINEL;
  free(opaque_ptr(NULL));
  printf("free(NULL) -> errno=%s\n", errname(errno));
  printf("malloc_usable_size(NULL) -> %zu\n", malloc_usable_size(opaque_ptr(NULL)));

  for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
    CALL(malloc(opaque(huge[i])), 0, 16, "malloc(%s)", sz(huge[i]));
  }

  /* A block larger than 2^32 must work where the machine can back it; only
   * a few pages are touched. Skipped (identically in both runs) on small
   * machines, where glibc's answer would depend on the overcommit check. */
  long avail_kib = 0;
  FILE *mi = fopen("/proc/meminfo", "r");
  char line[128];
  while (mi && fgets(line, sizeof line, mi))
    if (sscanf(line, "MemAvailable: %ld kB", &avail_kib) == 1) break;
  if (mi) fclose(mi);
  if ((size_t)avail_kib * KiB < 8 * GiB) {
    printf("malloc(3GiB), calloc(3, 1GiB), realloc 1GiB->1.5GiB -> skipped, under 8 GiB available\n");
  } else {
    CALL(malloc(opaque(3 * GiB)), 3 * GiB, 16, "malloc(3GiB)");
    errno = SENTINEL;
    unsigned char *c = calloc(opaque(3), GiB);
    if (!c) printf("calloc(3, 1GiB) -> NULL errno=%s\n", errname(errno));
    else {
      int nonzero = 0;
      for (size_t off = 0; off < 3 * GiB; off += 64 * MiB + 4096) nonzero += c[off] != 0;
      nonzero += c[3 * GiB - 1] != 0;
      printf("calloc(3, 1GiB) -> block, %d sampled bytes nonzero\n", nonzero);
      free(c);
    }
    unsigned char *r = malloc(opaque(GiB));
    if (r) {
      for (size_t off = 0; off < GiB; off += 16 * MiB) r[off] = (unsigned char)(off >> 24);
      unsigned char *r2 = realloc(r, GiB + GiB / 2);
      if (!r2) {
        printf("realloc 1GiB->1.5GiB -> NULL\n");
        free(r);
      } else {
        int lost = 0;
        for (size_t off = 0; off < GiB; off += 16 * MiB) lost += r2[off] != (unsigned char)(off >> 24);
        r2[GiB + GiB / 2 - 1] = 1;
        printf("realloc 1GiB->1.5GiB -> block, %d sampled bytes lost\n", lost);
        free(r2);
      }
    } else {
      printf("malloc(1GiB) -> NULL\n");
    }
  }

  /* free() keeps errno (glibc >= 2.33), on every path a block can take. */
  static const size_t fsizes[] = {16, 5000, 300000, 8 * MiB, 100 * MiB};
  for (size_t i = 0; i < sizeof fsizes / sizeof fsizes[0]; i++) {
    void *p = malloc(opaque(fsizes[i]));
    memset(p, 1, fsizes[i]);
    errno = SENTINEL;
    free(p);
    printf("free(block of %zu) -> errno=%s\n", fsizes[i], errname(errno));
  }
}

static void test_calloc(void) {
  static const size_t pairs[][2] = {{0, 0}, {0, 5}, {5, 0}, {1, 1}, {3, 7}, {100, 10}, {1, 2048},
                                    {2049, 1}, {7, 9999}, {1000, 1000}, {1, 5 * MiB + 3}};
  for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
    size_t n = pairs[i][0], m = pairs[i][1];
    errno = SENTINEL;
    unsigned char *p = calloc(opaque(n), opaque(m));
    if (!p) {
      printf("calloc(%zu, %zu) -> NULL errno=%s\n", n, m, errname(errno));
      continue;
    }
    size_t nonzero = 0;
    for (size_t k = 0; k < n * m; k++) nonzero += p[k] != 0;
    printf("calloc(%zu, %zu) -> %zu nonzero bytes, block %s\n", n, m, nonzero, props(p, n * m, 16));
    free(p);
  }

  /* Dirty memory handed back must come out of calloc zeroed: fill blocks
   * with 0xA5, free them, calloc the same sizes (likely the same memory). */
  static const size_t dsizes[] = {16, 24, 100, 512, 2048, 2064, 4000, 40000, 131072, 300000, 3 * MiB};
  enum { ND = sizeof dsizes / sizeof dsizes[0], COPIES = 32 };
  size_t dirty = 0;
  for (int round = 0; round < 4; round++) {
    void *blocks[ND * COPIES];
    for (int i = 0; i < ND * COPIES; i++) {
      size_t n = dsizes[i % ND];
      blocks[i] = malloc(n);
      if (!blocks[i]) fail("malloc(%zu) returned NULL", n);
      memset(blocks[i], 0xA5, malloc_usable_size(blocks[i]));
    }
    for (int i = 0; i < ND * COPIES; i++) free(blocks[i]);
    for (int i = 0; i < ND * COPIES; i++) {
      size_t n = dsizes[i % ND];
      unsigned char *p = blocks[i] = calloc(1, n);
      if (!p) fail("calloc(1, %zu) returned NULL", n);
      for (size_t k = 0; k < n; k++) dirty += p[k] != 0;
      memset(p, 0x5A, n);
    }
    for (int i = 0; i < ND * COPIES; i++) free(blocks[i]);
  }
  printf("calloc after free of dirty blocks, 4 rounds x %d blocks -> %zu nonzero bytes\n",
         ND * COPIES, dirty);

  static const size_t over[][2] = {{SIZE_MAX / 2 + 1, 2}, {(size_t)1 << 32, (size_t)1 << 32},
                                   {SIZE_MAX, SIZE_MAX},  {1, SIZE_MAX},
                                   {SIZE_MAX, 1},         {(size_t)PTRDIFF_MAX / 2 + 1, 2},
                                   {(size_t)1 << 46, 2}};
  for (size_t i = 0; i < sizeof over / sizeof over[0]; i++) {
    CALL(calloc(opaque(over[i][0]), opaque(over[i][1])), 0, 16, "calloc(%s, %s)", sz(over[i][0]),
         sz(over[i][1]));
  }
}

static void test_realloc(void) {
  CALL(realloc(NULL, opaque(0)), 0, 16, "realloc(NULL, 0)");
  CALL(realloc(NULL, opaque(100)), 100, 16, "realloc(NULL, 100)");
  /* glibc 2.36 frees the block and returns NULL; errno is not defined. */
  static const size_t zsizes[] = {1, 100, 5000, 300000, 8 * MiB};
  for (size_t i = 0; i < sizeof zsizes / sizeof zsizes[0]; i++) {
    void *p = malloc(zsizes[i]);
    void *q = realloc(p, opaque(0));
    printf("realloc(block of %zu, 0) -> %s\n", zsizes[i], q ? "block" : "NULL");
    free(q);
  }

  /* Grow through every size range and shrink back: the common prefix must
   * survive each step. */
  static const size_t steps[] = {1,      8,       16,      24,      100,      1000,    2047,
                                 2048,   2049,    4096,    20000,   65536,    100000,  300000,
                                 MiB,    3 * MiB + 5, 12 * MiB, 40 * MiB, 12 * MiB, 3 * MiB,
                                 300000, 100000,  20000,   2049,    2048,     2047,    100,
                                 16,     1,       40 * MiB, 1,      300000,   300001,  300000,
                                 299999, 2048,    2048,    2049,    2047};
  unsigned char *p = NULL;
  size_t old = 0;
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    size_t n = steps[i];
    unsigned char *q = realloc(p, opaque(n));
    if (!q) {
      printf("realloc %zu -> %zu -> NULL\n", old, n);
      break;
    }
    size_t keep = old < n ? old : n;
    size_t bad = check_pattern(q, keep, i);
    const char *pr = props(q, n, 16); /* overwrites the block */
    fill_pattern(q, n, i + 1);
    if (bad == keep) printf("realloc %zu -> %zu -> contents kept, block %s\n", old, n, pr);
    else printf("realloc %zu -> %zu -> byte %zu of %zu lost, block %s\n", old, n, bad, keep, pr);
    p = q;
    old = n;
  }
  free(p);

  /* A failed realloc leaves the old block as it was. */
  static const size_t osizes[] = {100, 5000, 300000, 8 * MiB};
  for (size_t i = 0; i < sizeof osizes / sizeof osizes[0]; i++)
    for (size_t h = 0; h < sizeof huge / sizeof huge[0]; h++) {
      size_t n = osizes[i];
      unsigned char *b = malloc(n);
      fill_pattern(b, n, 77);
      errno = SENTINEL;
      void *q = realloc(b, opaque(huge[h]));
      int e = errno;
      if (q) {
        printf("realloc(block of %zu, %s) -> block\n", n, sz(huge[h]));
        free(q);
        continue;
      }
      printf("realloc(block of %zu, %s) -> NULL errno=%s, old block %s\n", n, sz(huge[h]),
             errname(e), check_pattern(b, n, 77) == n ? "intact" : "damaged");
      free(b);
    }

  /* reallocarray: realloc with an overflow check on count * size. */
  CALL(reallocarray(NULL, opaque(10), opaque(10)), 100, 16, "reallocarray(NULL, 10, 10)");
  unsigned char *a = reallocarray(NULL, 10, 10);
  fill_pattern(a, 100, 5);
  unsigned char *a2 = reallocarray(a, opaque(30), opaque(1000));
  printf("reallocarray(block of 100, 30, 1000) -> %s\n",
         !a2 ? "NULL" : check_pattern(a2, 100, 5) == 100 ? "contents kept" : "contents lost");
  if (a2) a = a2;
  fill_pattern(a, 30000, 6);
  static const size_t aover[][2] = {{SIZE_MAX / 2 + 1, 2}, {(size_t)1 << 32, (size_t)1 << 32},
                                    {SIZE_MAX, SIZE_MAX},  {SIZE_MAX, 1},
                                    {(size_t)PTRDIFF_MAX, 1}};
  for (size_t i = 0; i < sizeof aover / sizeof aover[0]; i++) {
    errno = SENTINEL;
    void *q = reallocarray(a, opaque(aover[i][0]), opaque(aover[i][1]));
    int e = errno;
    if (q) {
      printf("reallocarray(block, %s, %s) -> block\n", sz(aover[i][0]), sz(aover[i][1]));
      a = q;
      continue;
    }
    printf("reallocarray(block, %s, %s) -> NULL errno=%s, old block %s\n", sz(aover[i][0]),
           sz(aover[i][1]), errname(e), check_pattern(a, 30000, 6) == 30000 ? "intact" : "damaged");
  }
  void *q = reallocarray(a, opaque(0), opaque(10));
  printf("reallocarray(block, 0, 10) -> %s\n", q ? "block" : "NULL");
  free(q);
}

/* ASan's own allocator fails a CHECK (and dies) on an alignment of 2^63,
 * which glibc answers with ENOMEM; the sanitizer build, which only proves
 * this program sound, leaves that alignment out. */
static int skip_alignment(size_t a) {
#ifdef __SANITIZE_ADDRESS__
  return a == SIZE_MAX / 2 + 1;
#else
  (void)a;
  return 0;
#endif
}

static const size_t asizes[] = {0, 1, 100, 5000, 300000, MiB + 1};
enum { NASIZES = sizeof asizes / sizeof asizes[0] };

static void test_posix_memalign(void) {
  /* Invalid alignments: EINVAL, *memptr untouched. A valid but enormous
   * alignment fails like an enormous size. */
  static const size_t bad[] = {0, 1, 2, 4, 3, 12, 24, 40, 100, 4097, SIZE_MAX,
                               SIZE_MAX / 2 + 1, SIZE_MAX / 2 + 2};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (skip_alignment(bad[i])) continue;
    void *sentinel = (void *)(uintptr_t)0x1234, *p = sentinel;
    errno = SENTINEL;
    int rc = posix_memalign(&p, opaque(bad[i]), opaque(16));
    if (rc == 0) {
      printf("posix_memalign(%s, 16) -> 0, block %s\n", sz(bad[i]),
             props(p, 16, effective_align(bad[i])));
      free(p);
    } else {
      printf("posix_memalign(%s, 16) -> %s, *memptr %s\n", sz(bad[i]), errname(rc),
             p == sentinel ? "untouched" : "written");
    }
  }
  for (size_t a = sizeof(void *); a <= 2 * MiB; a <<= 1)
    for (int i = 0; i < NASIZES; i++) {
      void *p = NULL;
      int rc = posix_memalign(&p, opaque(a), opaque(asizes[i]));
      if (rc) printf("posix_memalign(%zu, %zu) -> %s\n", a, asizes[i], errname(rc));
      else {
        printf("posix_memalign(%zu, %zu) -> 0, block %s\n", a, asizes[i],
               props(p, asizes[i], effective_align(a)));
        free(p);
      }
    }
  for (size_t h = 0; h < sizeof huge / sizeof huge[0]; h++) {
    void *sentinel = (void *)(uintptr_t)0x1234, *p = sentinel;
    int rc = posix_memalign(&p, opaque(64), opaque(huge[h]));
    printf("posix_memalign(64, %s) -> %s, *memptr %s\n", sz(huge[h]), rc ? errname(rc) : "0",
           p == sentinel ? "untouched" : "written");
    if (!rc) free(p);
  }
}

/* memalign and aligned_alloc (the same function in glibc 2.36; from 2.38 on,
 * aligned_alloc refuses an alignment that is not a power of two). */
static void test_memalign(const char *name, void *(*fn)(size_t, size_t)) {
  static const size_t aligns[] = {0,     1,         2,      3,        4,       8,       12,
                                  16,    24,        32,     48,       64,      100,     128,
                                  256,   1000,      4096,   5000,     65536,   100000,  MiB,
                                  2 * MiB, 3 * MiB, SIZE_MAX / 2 + 1, SIZE_MAX / 2 + 2, SIZE_MAX};
  for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++)
    for (int j = 0; j < NASIZES && !skip_alignment(aligns[i]); j++) {
      CALL(fn(opaque(aligns[i]), opaque(asizes[j])), asizes[j], effective_align(aligns[i]),
           "%s(%s, %zu)", name, sz(aligns[i]), asizes[j]);
    }
  for (size_t h = 0; h < sizeof huge / sizeof huge[0]; h++) {
    CALL(fn(opaque(64), opaque(huge[h])), 0, 64, "%s(64, %s)", name, sz(huge[h]));
  }
  /* Aligned blocks grow and shrink through realloc like any other. */
  for (size_t a = 32; a <= 2 * MiB; a <<= 3) {
    unsigned char *p = fn(a, 1000);
    if (!p) {
      printf("%s(%zu, 1000) -> NULL\n", name, a);
      continue;
    }
    fill_pattern(p, 1000, a);
    unsigned char *q = realloc(p, 3 * MiB);
    int kept = q && check_pattern(q, 1000, a) == 1000;
    unsigned char *r = q ? realloc(q, 10) : NULL;
    kept = kept && r && check_pattern(r, 10, a) == 10;
    printf("%s(%zu, 1000) then realloc to 3MiB and 10 -> contents %s\n", name, a,
           kept ? "kept" : "lost");
    free(r ? r : q ? q : p);
  }
}

static void test_valloc(void) {
  static const size_t sizes[] = {0, 1, 100, 4095, 4096, 4097, 100000, MiB + 3};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    CALL(valloc(opaque(sizes[i])), sizes[i], page, "valloc(%zu)", sizes[i]);
    /* pvalloc rounds the size up to whole pages */
    CALL(pvalloc(opaque(sizes[i])), (sizes[i] + page - 1) / page * page, page, "pvalloc(%zu)",
         sizes[i]);
  }
  for (size_t h = 0; h < sizeof huge / sizeof huge[0]; h++) {
    CALL(valloc(opaque(huge[h])), 0, page, "valloc(%s)", sz(huge[h]));
    CALL(pvalloc(opaque(huge[h])), 0, page, "pvalloc(%s)", sz(huge[h]));
  }
}

/* Deterministic xorshift: the script must be the same in both runs. */
static uint64_t rng = 0x243F6A8885A308D3ull;
static uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* A random mix of every call over 1000 slots; each block carries the
 * pattern of the step that wrote it, checked before every realloc and
 * free. Sizes are log-uniform from 0 to 256 KiB, one in 64 up to 4 MiB. */
static void test_random_mix(void) {
  enum { SLOTS = 1000 };
  const size_t OPS = test_scaled(100000);
  static struct { unsigned char *p; size_t n; uint64_t key; } s[SLOTS];
  size_t damaged = 0, nulls = 0;
  uint64_t sum = 0;
  for (uint64_t op = 0; op < OPS; op++) {
    uint64_t r = next_rand();
    int i = (int)(r % SLOTS);
    int bits = (r >> 40) % 64 ? (int)((r >> 16) % 18) : 21;
    size_t n = (size_t)(next_rand() % ((size_t)2 << bits));
    if (s[i].p) {
      if (check_pattern(s[i].p, s[i].n, s[i].key) != s[i].n) damaged++;
      sum += s[i].n ? s[i].p[s[i].n - 1] : 0;
    }
    unsigned char *q;
    switch ((r >> 8) % 6) {
    case 0: q = realloc(s[i].p, n); break;
    case 1: free(s[i].p); q = malloc(n); break;
    case 2:
      free(s[i].p);
      q = calloc(1, n);
      for (size_t k = 0; q && k < n; k++) damaged += q[k] != 0;
      break;
    case 3: free(s[i].p); q = memalign((size_t)16 << ((r >> 32) % 10), n); break;
    case 4: free(s[i].p); q = aligned_alloc((size_t)64 << ((r >> 32) % 8), n); break;
    default: free(s[i].p); q = NULL; n = 0; break;
    }
    if (!q && n) nulls++;
    if (q && (r >> 8) % 6 == 0) {
      size_t keep = s[i].n < n ? s[i].n : n;
      if (check_pattern(q, keep, s[i].key) != keep) damaged++;
    }
    s[i].p = q;
    s[i].n = q ? n : 0;
    s[i].key = op;
    if (q) fill_pattern(q, n, op);
  }
  for (int i = 0; i < SLOTS; i++) {
    if (s[i].p && check_pattern(s[i].p, s[i].n, s[i].key) != s[i].n) damaged++;
    free(s[i].p);
  }
  printf("random mix of %zu calls -> %zu NULL, %zu damaged, checksum %llu\n", OPS, nulls, damaged,
         (unsigned long long)sum);
}

/* Bytes in use as glibc's mallinfo2 reports them: from the arenas and from
 * mmapped regions. */
static size_t in_use_bytes(void) {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

/* glibc's introspection and trimming calls, on what both allocators
 * promise: mallinfo2 follows live bytes, mallinfo is mallinfo2 in ints,
 * malloc_stats writes to stderr, malloc_trim hands freed memory back. */
static void test_introspection(void) {
  enum { N = 100000, SIZE = 1000 };
  unsigned char **b = malloc(N * sizeof *b);
  size_t before = in_use_bytes();
  for (int i = 0; i < N; i++) {
    b[i] = malloc(SIZE);
    memset(b[i], 1, SIZE);
  }
  unsigned char *big = malloc(4 * MiB);
  memset(big, 1, 4 * MiB);
  size_t during = in_use_bytes();
  printf("mallinfo2: in use grew by at least the %d blocks and the 4 MiB one: %s\n", N,
         during >= before + (size_t)N * SIZE + 4 * MiB ? "yes" : "no");
  struct mallinfo2 wide = mallinfo2();
  /* Deprecated in glibc for its int fields; programs still call it. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  struct mallinfo narrow = mallinfo();
#pragma GCC diagnostic pop
  printf("mallinfo: mallinfo2's values as int: %s\n",
         (size_t)narrow.uordblks == (wide.uordblks & 0xffffffffu) &&
                 (size_t)narrow.hblkhd == (wide.hblkhd & 0xffffffffu) &&
                 (size_t)narrow.arena == (wide.arena & 0xffffffffu)
             ? "yes"
             : "no");
  size_t peak = rss_bytes();
  for (int i = 0; i < N; i++) free(b[i]);
  free(big);
  free(b);
  printf("mallinfo2: in use back below the blocks freed: %s\n",
         in_use_bytes() < during - (size_t)N * SIZE ? "yes" : "no");
  int trimmed = malloc_trim(0);
  size_t after = rss_bytes();
  printf("malloc_trim(0) returns 0 or 1: %s\n", trimmed == 0 || trimmed == 1 ? "yes" : "no");
  printf("malloc_trim(0): RSS fell by at least half of what was freed: %s\n",
         after + (size_t)N * SIZE / 2 <= peak ? "yes" : "no");
  fflush(stdout);
  FILE *capture = tmpfile();
  int saved = dup(2);
  dup2(fileno(capture), 2);
  malloc_stats();
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  off_t written = lseek(fileno(capture), 0, SEEK_END);
  printf("malloc_stats writes to stderr: %s\n", written > 0 ? "yes" : "no");
  fclose(capture);
}

int main(void) {
  page = (size_t)sysconf(_SC_PAGESIZE);
  setvbuf(stdout, NULL, _IOLBF, 0);
  test_malloc();
  test_calloc();
  test_realloc();
  test_posix_memalign();
  test_memalign("memalign", memalign);
  test_memalign("aligned_alloc", aligned_alloc);
  test_valloc();
  test_random_mix();
  test_introspection();
  printf("end of transcript\n");
  return 0;
}
