/*
 * Many short-lived threads: THREADS (default 20000) threads, 4 at a time,
 * each allocating and freeing a little (64 blocks of 16 B .. 4 KiB, half of
 * them freed in reverse order), then exiting. The 4 of a wave all hold
 * their blocks at once (a barrier) and exit together, as they would on a
 * machine with a core each, whatever this machine's core count. Prints the
 * RSS at the end:
 *   manythreads            prints "rss_kib N" once all threads are joined
 *   manythreads LIMIT_KIB  the same, but first polls RSS for up to 1 s and
 *                          fails unless it is at most LIMIT_KIB
 * tests/c/run.sh runs it without preload (glibc's figure) and under
 * preload with LIMIT_KIB = glibc's + 2048: the memory of exited threads must
 * not stay behind.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>

#include "util.h"

enum { WAVE = 4, BLOCKS = 64 };

static pthread_barrier_t wave_barrier;

static void *thread_main(void *arg) {
  uint64_t s = 0x9E3779B97F4A7C15ull ^ (uint64_t)(intptr_t)arg * 0xBF58476D1CE4E5B9ull;
  unsigned char *b[BLOCKS];
  for (int i = 0; i < BLOCKS; i++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    size_t n = 16 + (size_t)(s % (4 * KiB));
    b[i] = malloc(n);
    if (!b[i]) fail("malloc(%zu) returned NULL in a short-lived thread", n);
    memset(b[i], i, n);
  }
  pthread_barrier_wait(&wave_barrier);
  for (int i = 0; i < BLOCKS; i += 2) free(b[i]);
  for (int i = BLOCKS - 1; i > 0; i -= 2) free(b[i]);
  return NULL;
}

int main(int argc, char **argv) {
  long threads = getenv("THREADS") ? atol(getenv("THREADS")) : 20000;
  long limit_kib = argc > 1 ? atol(argv[1]) : -1;
  size_t rss_start = rss_bytes();
  if (pthread_barrier_init(&wave_barrier, NULL, WAVE)) fail("pthread_barrier_init failed");
  for (long w = 0; w < threads; w += WAVE) {
    pthread_t th[WAVE];
    for (int t = 0; t < WAVE; t++)
      if (pthread_create(&th[t], NULL, thread_main, (void *)(intptr_t)(w + t)))
        fail("pthread_create failed after %ld threads", w + t);
    for (int t = 0; t < WAVE; t++) pthread_join(th[t], NULL);
  }
  size_t rss = rss_settled(limit_kib);
  printf("%ld threads: RSS at start %zu KiB, at end %zu KiB\n", threads, rss_start / KiB, rss / KiB);
  printf("rss_kib %zu\n", rss / KiB);
  if (limit_kib >= 0 && rss / KiB > (size_t)limit_kib)
    fail("RSS after %ld short-lived threads is %zu KiB, above the limit %ld KiB (glibc's + 2 MiB)", threads,
         rss / KiB, limit_kib);
  return 0;
}
