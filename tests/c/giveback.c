/*
 * Give-back after a free-all: 4 threads each allocate 150 MiB of small
 * blocks (16 B .. 1 KiB, every byte written); once all have, each frees the
 * blocks of the next thread (every block freed by a thread that does not
 * own it), and then, in the default mode, exits. The main thread then polls
 * RSS (/proc/self/statm) for up to 1 s, without calling hz_collect or
 * anything else of the allocator: it must fall to less than 64 MiB above
 * the RSS before the threads started.
 *   giveback          threads exit after their frees (run by tests/c/run.sh)
 *   giveback idle     threads stay alive, blocked, while main polls (run
 *                     by tests/c/run.sh)
 *   giveback orphaned threads exit right after allocating; main frees every
 *                     block (their owners' threads are gone) and polls
 *                     (run by tests/c/run.sh)
 *   giveback large    as the default, with blocks of 256 KiB to 4 MiB
 *                     (run by tests/c/run.sh)
 *   giveback idle-medium
 *                     as idle, with blocks of 16 KiB to 256 KiB, each a
 *                     flush of its own (run by tests/c/run.sh)
 * Pointer arrays are mmap'ed, so only the blocks themselves are the
 * allocator's. Prints the RSS at start, at its peak and at the end of the
 * poll, and how long the fall took.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

#include "util.h"

enum { THREADS = 4 };
#define PER_THREAD (150 * MiB)
#define SLACK (64 * MiB)
#define MAX_BLOCKS (PER_THREAD / 16)

static struct worker {
  pthread_t th;
  int index;
  unsigned char **blocks;
  size_t count;
} workers[THREADS];
static pthread_barrier_t allocated, freed, polled;
static enum { EXITED, IDLE, ORPHANED, LARGE, IDLE_MEDIUM, MODES } mode;
static const char *const mode_args[MODES] = {"", "idle", "orphaned", "large", "idle-medium"};
static const char *const mode_names[MODES] = {"threads exited", "threads idle", "threads exited before the frees",
                                              "large blocks, threads exited", "blocks of 16-256 KiB, threads idle"};

/* The threads stay alive while main polls. */
static int threads_idle(void) { return mode == IDLE || mode == IDLE_MEDIUM; }

/* The size of a thread's next block, from its random state s. */
static size_t block_size(uint64_t s) {
  if (mode == LARGE) return 256 * KiB + (size_t)(s % (4 * MiB - 256 * KiB));
  if (mode == IDLE_MEDIUM) return 16 * KiB + (size_t)(s % (240 * KiB));
  return 16 + (size_t)(s % 1009);
}

static void check_and_free(struct worker *w) {
  for (size_t i = 0; i < w->count; i++) {
    if (w->blocks[i][0] != (unsigned char)(w->index + 1)) fail("block %zu of thread %d was overwritten", i, w->index);
    free(w->blocks[i]);
  }
}

static void *worker_main(void *arg) {
  struct worker *w = arg;
  uint64_t s = 0x9E3779B97F4A7C15ull * (uint64_t)(w->index + 1);
  size_t total = 0;
  while (total < PER_THREAD) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    size_t n = block_size(s);
    unsigned char *p = malloc(n);
    if (!p) fail("malloc(%zu) returned NULL after %zu bytes", n, total);
    memset(p, w->index + 1, n);
    w->blocks[w->count++] = p;
    total += n;
  }
  pthread_barrier_wait(&allocated);
  if (mode == ORPHANED) return NULL;
  check_and_free(&workers[(w->index + 1) % THREADS]);
  pthread_barrier_wait(&freed);
  if (threads_idle()) pthread_barrier_wait(&polled);
  return NULL;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  for (int m = 1; argc > 1 && m < MODES; m++)
    if (strcmp(argv[1], mode_args[m]) == 0) mode = m;
  if (argc > 1 && mode == EXITED) fail("unknown mode %s (idle, orphaned, large, idle-medium)", argv[1]);
  size_t array_bytes = MAX_BLOCKS * sizeof(unsigned char *);
  for (int t = 0; t < THREADS; t++) {
    workers[t].index = t;
    workers[t].blocks = mmap(NULL, array_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (workers[t].blocks == MAP_FAILED) fail("mmap of a pointer array failed");
  }
  pthread_barrier_init(&allocated, NULL, THREADS);
  pthread_barrier_init(&freed, NULL, THREADS + 1);
  pthread_barrier_init(&polled, NULL, THREADS + 1);
  size_t start = rss_bytes();
  for (int t = 0; t < THREADS; t++)
    if (pthread_create(&workers[t].th, NULL, worker_main, &workers[t])) fail("pthread_create failed");
  if (mode == ORPHANED) {
    for (int t = 0; t < THREADS; t++) pthread_join(workers[t].th, NULL);
    for (int t = 0; t < THREADS; t++) check_and_free(&workers[t]);
  } else {
    pthread_barrier_wait(&freed);
    if (!threads_idle())
      for (int t = 0; t < THREADS; t++) pthread_join(workers[t].th, NULL);
  }
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  size_t peak = (size_t)usage.ru_maxrss * KiB;
  for (int t = 0; t < THREADS; t++) munmap(workers[t].blocks, array_bytes);
  double t0 = now();
  size_t rss = rss_settled((long)((start + SLACK) / KiB) - 1);
  double waited = now() - t0;
  printf("giveback (%s): RSS at start %zu KiB, at the peak %zu KiB, after %.3f s %zu KiB (limit %zu KiB)\n",
         mode_names[mode], start / KiB, peak / KiB, waited, rss / KiB,
         (start + SLACK) / KiB);
  if (threads_idle()) {
    pthread_barrier_wait(&polled);
    for (int t = 0; t < THREADS; t++) pthread_join(workers[t].th, NULL);
  }
  if (rss >= start + SLACK)
    fail("RSS is %zu KiB 1 s after %zu MiB of blocks were freed by other threads, %zu KiB above the start (limit %zu KiB)",
         rss / KiB, (size_t)(THREADS * PER_THREAD / MiB), (rss - start) / KiB, SLACK / KiB);
  return 0;
}
