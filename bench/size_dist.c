/*
 * size_dist DIST THREADS ITERS WS
 *
 * Each thread keeps WS live blocks and ITERS times replaces a random one:
 * frees it and allocates a new block whose size is drawn from DIST.
 *   app      application-like: most blocks small, a long thin tail of big
 *            ones (weights below: 55% <= 64 B, 97% <= 4 KiB, 0.1% > 64 KiB)
 *   uniform  every size in 16..8192 equally likely
 * Threads do not share blocks.  ops = THREADS*ITERS replacements.
 */
#include "bench.h"

static const char *usage = "app|uniform THREADS ITERS WS";

/* Application-like distribution: per-mille weight of each size band. */
static const struct band {
  uint32_t permille, min, max;
} app_bands[] = {
    {300, 16, 32},     {250, 33, 64},       {180, 65, 128},       {120, 129, 256},
    {70, 257, 512},    {40, 513, 1024},     {25, 1025, 4096},     {10, 4097, 16384},
    {4, 16385, 65536}, {1, 65537, 262144},
};

struct worker {
  int app;
  uint64_t iters, ws, seed;
} HZ_ALIGNED;

static size_t draw_size(int app, uint64_t *rng) {
  uint32_t r = hz_rand(rng);
  if (!app) return 16 + r % (8192 - 16 + 1);
  uint32_t pick = r % 1000, acc = 0;
  for (size_t i = 0;; i++) {
    acc += app_bands[i].permille;
    if (pick < acc) return app_bands[i].min + hz_rand(rng) % (app_bands[i].max - app_bands[i].min + 1);
  }
}

static void *worker_main(void *arg) {
  struct worker *w = arg;
  void **p = hz_xmalloc(sizeof(void *) * w->ws);
  size_t *n = hz_xmalloc(sizeof(size_t) * w->ws);
  uint64_t rng = w->seed;
  for (uint64_t i = 0; i < w->ws; i++) {
    n[i] = draw_size(w->app, &rng);
    p[i] = hz_xmalloc(n[i]);
    hz_fill(p[i], n[i]);
  }
  for (uint64_t i = 0; i < w->iters; i++) {
    uint64_t s = hz_rand(&rng) % w->ws;
    hz_check(p[s], n[s]);
    free(p[s]);
    n[s] = draw_size(w->app, &rng);
    p[s] = hz_xmalloc(n[s]);
    hz_fill(p[s], n[s]);
  }
  for (uint64_t i = 0; i < w->ws; i++) {
    hz_check(p[i], n[i]);
    free(p[i]);
  }
  free(p);
  free(n);
  return NULL;
}

int main(int argc, char **argv) {
  hz_usage_if(argc != 5 || (strcmp(argv[1], "app") && strcmp(argv[1], "uniform")), argv, usage);
  int app = !strcmp(argv[1], "app");
  int threads = (int)hz_arg(argv, 2, 1, 1024, usage);
  uint64_t iters = hz_arg(argv, 3, 1, UINT64_MAX / 1024, usage);
  uint64_t ws = hz_arg(argv, 4, 1, 1u << 30, usage);
  struct worker *w = aligned_alloc(HZ_CACHE_LINE, sizeof *w * (size_t)threads);
  if (!w) return 1;
  for (int i = 0; i < threads; i++)
    w[i] = (struct worker){.app = app, .iters = iters, .ws = ws, .seed = 0x5eedu + (uint64_t)i * 977u};
  double t = hz_run_threads(threads, worker_main, w, sizeof *w);
  uint64_t ops = (uint64_t)threads * iters;
  printf("size_dist: dist=%s threads=%d ops=%llu time=%.6f ops/s=%.0f\n", argv[1], threads,
         (unsigned long long)ops, t, (double)ops / t);
  free(w);
  return 0;
}
