/*
 * Many threads alive at once: THREADS (default 3000) threads each allocate
 * 16 blocks (16 B .. 4 KiB) and one more for their neighbour, wait until
 * all have, free the neighbour's block and their own, wait again, and
 * exit together. So most heaps get one block back after their thread has
 * exited. Prints the RSS once all threads are joined:
 *   livethreads bare       the same threads, allocating nothing: what the
 *                          threads themselves leave (stacks glibc caches)
 *   livethreads            prints "rss_kib N"
 *   livethreads LIMIT_KIB  the same, but first polls RSS for up to 1 s and
 *                          fails unless it is at most LIMIT_KIB
 * tests/c/run.sh runs `bare` without preload and the test under preload
 * with LIMIT_KIB = bare + 10 KiB per thread + 4 MiB: the heaps stay
 * registered for good, but the threads' blocks and segments must not.
 * (glibc's own figure is no bound here: its thread arenas keep what the
 * threads freed, about 100 MiB.)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>

#include "util.h"

enum { BLOCKS = 16 };

static long threads;
static int bare;
static pthread_barrier_t allocated, freed;
static unsigned char **neighbour;

static void *thread_main(void *arg) {
  long index = (long)(intptr_t)arg;
  if (bare) {
    pthread_barrier_wait(&allocated);
    pthread_barrier_wait(&freed);
    return NULL;
  }
  uint64_t s = 0x9E3779B97F4A7C15ull ^ (uint64_t)index * 0xBF58476D1CE4E5B9ull;
  unsigned char *b[BLOCKS];
  for (int i = 0; i < BLOCKS; i++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    size_t n = 16 + (size_t)(s % (4 * KiB));
    b[i] = malloc(n);
    if (!b[i]) fail("malloc(%zu) returned NULL in thread %ld", n, index);
    memset(b[i], i, n);
  }
  neighbour[index] = malloc(64);
  if (!neighbour[index]) fail("malloc(64) returned NULL in thread %ld", index);
  memset(neighbour[index], (int)(index & 0xff), 64);
  pthread_barrier_wait(&allocated);
  long next = (index + 1) % threads;
  if (neighbour[next][63] != (unsigned char)(next & 0xff)) fail("the block of thread %ld was overwritten", next);
  free(neighbour[next]);
  for (int i = 0; i < BLOCKS; i++) free(b[i]);
  pthread_barrier_wait(&freed);
  return NULL;
}

int main(int argc, char **argv) {
  threads = getenv("THREADS") ? atol(getenv("THREADS")) : 3000;
  bare = argc > 1 && strcmp(argv[1], "bare") == 0;
  long limit_kib = argc > 1 && !bare ? atol(argv[1]) : -1;
  if (threads < 2) fail("THREADS must be at least 2");
  neighbour = calloc((size_t)threads, sizeof *neighbour);
  pthread_t *th = calloc((size_t)threads, sizeof *th);
  if (!neighbour || !th) fail("calloc failed");
  size_t rss_start = rss_bytes();
  if (pthread_barrier_init(&allocated, NULL, (unsigned)threads) || pthread_barrier_init(&freed, NULL, (unsigned)threads))
    fail("pthread_barrier_init failed");
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 64 * KiB);
  for (long t = 0; t < threads; t++)
    if (pthread_create(&th[t], &attr, thread_main, (void *)(intptr_t)t)) fail("pthread_create failed after %ld threads", t);
  for (long t = 0; t < threads; t++) pthread_join(th[t], NULL);
  size_t rss = rss_settled(limit_kib);
  printf("%ld threads alive at once: RSS at start %zu KiB, at end %zu KiB\n", threads, rss_start / KiB, rss / KiB);
  printf("rss_kib %zu\n", rss / KiB);
  if (limit_kib >= 0 && rss / KiB > (size_t)limit_kib)
    fail("RSS after %ld threads that ended together is %zu KiB, above the limit %ld KiB", threads, rss / KiB,
         limit_kib);
  free(th);
  free(neighbour);
  return 0;
}
