/*
 * Shared helpers for the hakozuna benchmark workloads.
 *
 * Every workload touches the memory it gets: hz_fill() writes a tag into the
 * first and last 8 bytes of a block and one word per 4 KiB page in between,
 * and hz_check() reads the same words back before the block is freed.  So no
 * allocator wins by handing out pages that are never faulted in, and a block
 * that two owners share (an allocator bug) aborts the run instead of quietly
 * producing a figure.
 */
#ifndef HZ_BENCH_H
#define HZ_BENCH_H

#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HZ_PAGE 4096u
#define HZ_CACHE_LINE 64
#define HZ_ALIGNED __attribute__((aligned(HZ_CACHE_LINE)))

static inline double hz_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* 64-bit LCG (Knuth's MMIX constants); the high bits are the random value,
 * the low bits of an LCG are poor. */
static inline uint32_t hz_rand(uint64_t *state) {
  *state = *state * 6364136223846793005ull + 1442695040888963407ull;
  return (uint32_t)(*state >> 33);
}

static inline uint64_t hz_tag(const void *p, size_t n) {
  return ((uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull) ^ (uint64_t)n;
}

/* Tag words: offset 0, every page boundary, and the last 8 bytes, never
 * overlapping one another.  n >= 8. */
static inline void hz_fill(void *p, size_t n) {
  uint64_t t = hz_tag(p, n);
  unsigned char *b = p;
  for (size_t off = 0; off + 16 <= n; off += HZ_PAGE) memcpy(b + off, &t, 8);
  memcpy(b + n - 8, &t, 8);
}

/* The offset of the first of hz_fill's page-boundary words of a block of n
 * bytes, below `limit`, that does not read `tag`; SIZE_MAX when all do. */
static inline size_t hz_page_word_differs(const void *p, size_t n, size_t limit, uint64_t tag) {
  const unsigned char *b = p;
  for (size_t off = 0; off + 16 <= n && off + 8 <= limit; off += HZ_PAGE) {
    uint64_t got;
    memcpy(&got, b + off, 8);
    if (got != tag) return off;
  }
  return SIZE_MAX;
}

static inline void hz_check(const void *p, size_t n) {
  uint64_t t = hz_tag(p, n), got;
  if (hz_page_word_differs(p, n, n, t) != SIZE_MAX) goto bad;
  memcpy(&got, (const unsigned char *)p + n - 8, 8);
  if (got == t) return;
bad:
  fprintf(stderr, "bench: block %p of %zu bytes was overwritten while live\n", p, n);
  abort();
}

static inline void *hz_xmalloc(size_t n) {
  void *p = malloc(n);
  if (!p) {
    fprintf(stderr, "bench: malloc(%zu) failed: %s\n", n, strerror(errno));
    exit(1);
  }
  return p;
}

/* Parses argv[i] as an unsigned integer in [lo, hi] or exits with the usage. */
static inline uint64_t hz_arg(char **argv, int i, uint64_t lo, uint64_t hi, const char *usage) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(argv[i], &end, 10);
  if (errno || end == argv[i] || *end || argv[i][0] == '-' || v < lo || v > hi) {
    fprintf(stderr, "%s: argument %d (%s) must be an integer in [%llu, %llu]\nusage: %s %s\n",
            argv[0], i, argv[i], (unsigned long long)lo, (unsigned long long)hi, argv[0], usage);
    exit(2);
  }
  return v;
}

static inline void hz_usage_if(int bad, char **argv, const char *usage) {
  if (bad) {
    fprintf(stderr, "usage: %s %s\n", argv[0], usage);
    exit(2);
  }
}

/* Starts n threads running fn(&args[i]) and joins them; returns the seconds
 * from the first pthread_create to the last join. */
static inline double hz_run_threads(int n, void *(*fn)(void *), void *args, size_t arg_size) {
  pthread_t *tid = hz_xmalloc(sizeof(pthread_t) * (size_t)n);
  double t0 = hz_now();
  for (int i = 0; i < n; i++) {
    int rc = pthread_create(&tid[i], NULL, fn, (char *)args + (size_t)i * arg_size);
    if (rc) {
      fprintf(stderr, "bench: pthread_create: %s\n", strerror(rc));
      exit(1);
    }
  }
  for (int i = 0; i < n; i++) pthread_join(tid[i], NULL);
  double t = hz_now() - t0;
  free(tid);
  return t;
}

/* The false-sharing programs' inner loop: writes each byte reps times through a volatile pointer (so the stores are
 * really issued), then checks the final values. */
static inline void hz_hammer(unsigned char *p, uint64_t size, uint64_t reps) {
  volatile unsigned char *v = p;
  for (uint64_t r = 0; r < reps; r++)
    for (uint64_t k = 0; k < size; k++) v[k] = (unsigned char)(r + k);
  for (uint64_t k = 0; k < size; k++)
    if (v[k] != (unsigned char)(reps - 1 + k)) {
      fprintf(stderr, "bench: block %p changed under us\n", (void *)p);
      abort();
    }
}

/* One thread of a false-sharing program: its gift (a block the main thread allocated, or NULL) hammered and freed
 * first, then iters lifetimes of a size-byte block, each hammered reps times. */
struct hz_sharing_worker {
  unsigned char *gift;
  uint64_t iters, reps, size;
} HZ_ALIGNED;

static inline void *hz_sharing_worker_main(void *arg) {
  struct hz_sharing_worker *w = arg;
  if (w->gift) {
    hz_hammer(w->gift, w->size, 1);
    free(w->gift);
  }
  for (uint64_t i = 0; i < w->iters; i++) {
    unsigned char *p = hz_xmalloc(w->size);
    hz_hammer(p, w->size, w->reps);
    free(p);
  }
  return NULL;
}

/* main of the false-sharing programs (cache_thrash, cache_scratch), `THREADS ITERS REPS SIZE`: with gifts, the main
 * thread first allocates one block per thread, back to back, and hands block i to thread i. Prints name's line. */
static inline int hz_sharing_main(int argc, char **argv, const char *name, int gifts) {
  static const char *usage = "THREADS ITERS REPS SIZE";
  hz_usage_if(argc != 5, argv, usage);
  int threads = (int)hz_arg(argv, 1, 1, 1024, usage);
  uint64_t iters = hz_arg(argv, 2, 1, UINT64_MAX / 1024, usage);
  uint64_t reps = hz_arg(argv, 3, 1, 1u << 30, usage);
  uint64_t size = hz_arg(argv, 4, 1, 1u << 20, usage);
  struct hz_sharing_worker *w = aligned_alloc(HZ_CACHE_LINE, sizeof *w * (size_t)threads);
  if (!w) return 1;
  for (int i = 0; i < threads; i++)
    w[i] = (struct hz_sharing_worker){
        .gift = gifts ? hz_xmalloc(size) : NULL, .iters = iters, .reps = reps, .size = size};
  double t = hz_run_threads(threads, hz_sharing_worker_main, w, sizeof *w);
  uint64_t ops = (uint64_t)threads * iters;
  printf("%s: threads=%d ops=%llu time=%.6f ops/s=%.0f\n", name, threads, (unsigned long long)ops, t,
         (double)ops / t);
  free(w);
  return 0;
}

#endif
