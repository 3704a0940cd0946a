/*
 * cache_scratch THREADS ITERS REPS SIZE
 *
 * Passive false sharing, after the Hoard suite's cache-scratch: the main
 * thread allocates THREADS blocks of SIZE bytes back to back (so they tend to
 * share cache lines) and hands block i to thread i, which frees it and then,
 * like cache_thrash, ITERS times allocates a SIZE-byte block, writes every
 * byte REPS times, reads it back and frees it.  An allocator that gives the
 * freed neighbour back to the thread that freed it keeps threads writing into
 * one shared line.  ops = THREADS*ITERS block lifetimes.
 */
#include "bench.h"

static const char *usage = "THREADS ITERS REPS SIZE";

struct worker {
  unsigned char *gift;
  uint64_t iters, reps, size;
} HZ_ALIGNED;

static void *worker_main(void *arg) {
  struct worker *w = arg;
  hz_hammer(w->gift, w->size, 1);
  free(w->gift);
  for (uint64_t i = 0; i < w->iters; i++) {
    unsigned char *p = hz_xmalloc(w->size);
    hz_hammer(p, w->size, w->reps);
    free(p);
  }
  return NULL;
}

int main(int argc, char **argv) {
  hz_usage_if(argc != 5, argv, usage);
  int threads = (int)hz_arg(argv, 1, 1, 1024, usage);
  uint64_t iters = hz_arg(argv, 2, 1, UINT64_MAX / 1024, usage);
  uint64_t reps = hz_arg(argv, 3, 1, 1u << 30, usage);
  uint64_t size = hz_arg(argv, 4, 1, 1u << 20, usage);
  struct worker *w = aligned_alloc(HZ_CACHE_LINE, sizeof *w * (size_t)threads);
  if (!w) return 1;
  for (int i = 0; i < threads; i++)
    w[i] = (struct worker){.gift = hz_xmalloc(size), .iters = iters, .reps = reps, .size = size};
  double t = hz_run_threads(threads, worker_main, w, sizeof *w);
  uint64_t ops = (uint64_t)threads * iters;
  printf("cache_scratch: threads=%d ops=%llu time=%.6f ops/s=%.0f\n", threads, (unsigned long long)ops, t,
         (double)ops / t);
  free(w);
  return 0;
}
