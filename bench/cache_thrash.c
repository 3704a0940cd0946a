/*
 * cache_thrash THREADS ITERS REPS SIZE
 *
 * Active false sharing, after the Hoard suite's cache-thrash: each thread
 * ITERS times allocates a SIZE-byte block, writes every byte of it REPS times,
 * reads it back and frees it.  An allocator that hands neighbouring bytes of
 * one cache line to different threads makes the writes ping-pong the line
 * between cores.  ops = THREADS*ITERS block lifetimes.
 */
#include "bench.h"

static const char *usage = "THREADS ITERS REPS SIZE";

struct worker {
  uint64_t iters, reps, size;
} HZ_ALIGNED;

static void *worker_main(void *arg) {
  struct worker *w = arg;
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
  for (int i = 0; i < threads; i++) w[i] = (struct worker){.iters = iters, .reps = reps, .size = size};
  double t = hz_run_threads(threads, worker_main, w, sizeof *w);
  uint64_t ops = (uint64_t)threads * iters;
  printf("cache_thrash: threads=%d ops=%llu time=%.6f ops/s=%.0f\n", threads, (unsigned long long)ops, t,
         (double)ops / t);
  free(w);
  return 0;
}
