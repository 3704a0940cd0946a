/*
 * larson THREADS GENERATIONS OPS BLOCKS MIN MAX
 *
 * A server-like workload after Larson & Krishnan: THREADS workers run at a
 * time, each owning BLOCKS live blocks of MIN..MAX bytes.  A worker replaces
 * OPS random blocks (frees one, allocates a new one), then starts its
 * successor, hands it the blocks and exits; the successor first joins it, so
 * it frees memory whose allocating thread is gone.  Each of the THREADS lanes
 * runs GENERATIONS workers in turn, like a server replacing worker threads
 * over time.  The initial blocks are allocated by the main thread, outside
 * the timed region.  ops = THREADS*GENERATIONS*OPS replacements.
 */
#include "bench.h"

static const char *usage = "THREADS GENERATIONS OPS BLOCKS MIN MAX";

struct lane {
  void **p;
  size_t *n;
  uint64_t generation, generations, ops, blocks, min, max, rng;
  pthread_t predecessor; /* valid from the second generation on */
} HZ_ALIGNED;

/* The last worker of each lane reports here; main waits for all of them. */
static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static int lanes_left;

static void *worker_main(void *arg) {
  struct lane *l = arg;
  if (l->generation > 0) pthread_join(l->predecessor, NULL);
  uint64_t span = l->max - l->min + 1;
  for (uint64_t i = 0; i < l->ops; i++) {
    uint64_t s = hz_rand(&l->rng) % l->blocks;
    hz_check(l->p[s], l->n[s]);
    free(l->p[s]);
    l->n[s] = l->min + hz_rand(&l->rng) % span;
    l->p[s] = hz_xmalloc(l->n[s]);
    hz_fill(l->p[s], l->n[s]);
  }
  l->predecessor = pthread_self();
  if (++l->generation < l->generations) {
    pthread_t next;
    int rc = pthread_create(&next, NULL, worker_main, l);
    if (rc) {
      fprintf(stderr, "larson: pthread_create: %s\n", strerror(rc));
      exit(1);
    }
    return NULL;
  }
  pthread_mutex_lock(&done_lock);
  if (--lanes_left == 0) pthread_cond_signal(&done_cond);
  pthread_mutex_unlock(&done_lock);
  return NULL;
}

int main(int argc, char **argv) {
  hz_usage_if(argc != 7, argv, usage);
  int threads = (int)hz_arg(argv, 1, 1, 1024, usage);
  uint64_t generations = hz_arg(argv, 2, 1, 1u << 20, usage);
  uint64_t ops = hz_arg(argv, 3, 1, UINT64_MAX / (1u << 30), usage);
  uint64_t blocks = hz_arg(argv, 4, 1, 1u << 30, usage);
  uint64_t min = hz_arg(argv, 5, 8, 1ull << 40, usage);
  uint64_t max = hz_arg(argv, 6, min, 1ull << 40, usage);

  struct lane *lanes = aligned_alloc(HZ_CACHE_LINE, sizeof *lanes * (size_t)threads);
  if (!lanes) return 1;
  for (int i = 0; i < threads; i++) {
    struct lane *l = &lanes[i];
    *l = (struct lane){.p = hz_xmalloc(sizeof(void *) * blocks), .n = hz_xmalloc(sizeof(size_t) * blocks),
                       .generations = generations, .ops = ops, .blocks = blocks, .min = min, .max = max,
                       .rng = 0x1a450u + (uint64_t)i * 977u};
    for (uint64_t b = 0; b < blocks; b++) {
      l->n[b] = min + hz_rand(&l->rng) % (max - min + 1);
      l->p[b] = hz_xmalloc(l->n[b]);
      hz_fill(l->p[b], l->n[b]);
    }
  }

  lanes_left = threads;
  double t0 = hz_now();
  for (int i = 0; i < threads; i++) {
    pthread_t tid;
    int rc = pthread_create(&tid, NULL, worker_main, &lanes[i]);
    if (rc) {
      fprintf(stderr, "larson: pthread_create: %s\n", strerror(rc));
      return 1;
    }
  }
  pthread_mutex_lock(&done_lock);
  while (lanes_left > 0) pthread_cond_wait(&done_cond, &done_lock);
  pthread_mutex_unlock(&done_lock);
  for (int i = 0; i < threads; i++) pthread_join(lanes[i].predecessor, NULL);
  double t = hz_now() - t0;

  for (int i = 0; i < threads; i++) {
    for (uint64_t b = 0; b < blocks; b++) {
      hz_check(lanes[i].p[b], lanes[i].n[b]);
      free(lanes[i].p[b]);
    }
    free(lanes[i].p);
    free(lanes[i].n);
  }
  uint64_t total = (uint64_t)threads * generations * ops;
  printf("larson: threads=%d generations=%llu ops=%llu time=%.6f ops/s=%.0f\n", threads,
         (unsigned long long)generations, (unsigned long long)total, t, (double)total / t);
  free(lanes);
  return 0;
}
