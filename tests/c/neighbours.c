/*
 * Two threads free neighbouring blocks at the same moment.
 *
 * In each round the main thread allocates BLOCKS blocks of 100 bytes, fills
 * each with a pattern, and pairs blocks that lie right next to each other
 * in memory. The other thread takes one block of each pair (the lower in
 * even rounds, the upper in odd ones); from a common start both check
 * their blocks and free them in the same order, so the two frees of a pair
 * overlap. In the hardened lane the main thread's free checks the block
 * below and the block above it, which the other thread is freeing
 * meanwhile: a check that took such a free for an underflow aborted a
 * correct program (bench/LEDGER.md, 2026-12-05). Any abort, NULL or
 * damaged byte fails the test; in the other lanes it checks frees of
 * neighbours from two threads.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

#include "util.h"

enum { BLOCKS = 128, SIZE = 100 };
static size_t ROUNDS; /* 120000, scaled by TEST_SCALE_PERCENT (util.h) */

static unsigned char *theirs[BLOCKS / 2];
static int pairs;
/* 2r + 1: round r's blocks are ready; 2r + 2: the other thread freed its own. */
static atomic_long phase;

/* Waits for phase to reach want: a short spin (so that both threads start
 * together), then yields, so a loaded machine still makes progress. */
static void wait_for(long want) {
  for (int spins = 0; atomic_load_explicit(&phase, memory_order_acquire) < want; spins++)
    if (spins > 1000) sched_yield();
}

static void check_block(const unsigned char *p, uint64_t key) {
  size_t bad = check_pattern(p, SIZE, key);
  if (bad != SIZE) fail("block %p changed at byte %zu before its free", (const void *)p, bad);
}

static void *free_theirs(void *arg) {
  (void)arg;
  for (size_t r = 0; r < ROUNDS; r++) {
    wait_for(2 * (long)r + 1);
    for (int i = 0; i < pairs; i++) {
      check_block(theirs[i], (uint64_t)theirs[i]);
      free(theirs[i]);
    }
    atomic_store_explicit(&phase, 2 * (long)r + 2, memory_order_release);
  }
  return NULL;
}

static int by_address(const void *a, const void *b) {
  uintptr_t x = (uintptr_t) * (unsigned char *const *)a, y = (uintptr_t) * (unsigned char *const *)b;
  return x < y ? -1 : x > y;
}

int main(void) {
  ROUNDS = test_scaled(120000);
  pthread_t other;
  if (pthread_create(&other, NULL, free_theirs, NULL)) fail("pthread_create failed");
  unsigned char *b[BLOCKS], *mine[BLOCKS / 2];
  size_t paired_rounds = 0;
  for (size_t r = 0; r < ROUNDS; r++) {
    for (int i = 0; i < BLOCKS; i++) {
      b[i] = malloc(opaque(SIZE));
      if (!b[i]) fail("malloc(%d) returned NULL", SIZE);
      fill_pattern(b[i], SIZE, (uint64_t)b[i]);
    }
    /* Neighbours lie one block apart: the smallest gap between two blocks. */
    qsort(b, BLOCKS, sizeof b[0], by_address);
    uintptr_t step = UINTPTR_MAX;
    for (int i = 1; i < BLOCKS; i++)
      if ((uintptr_t)(b[i] - b[i - 1]) < step) step = (uintptr_t)(b[i] - b[i - 1]);
    int n = 0;
    for (int i = 1; i < BLOCKS; i++) {
      if (b[i - 1] && (uintptr_t)(b[i] - b[i - 1]) == step) {
        theirs[n] = r % 2 ? b[i] : b[i - 1];
        mine[n] = r % 2 ? b[i - 1] : b[i];
        b[i - 1] = b[i] = NULL;
        n++;
      }
    }
    pairs = n;
    if (n > 0) paired_rounds++;
    atomic_store_explicit(&phase, 2 * (long)r + 1, memory_order_release);
    for (int i = 0; i < n; i++) {
      check_block(mine[i], (uint64_t)mine[i]);
      free(mine[i]);
    }
    wait_for(2 * (long)r + 2);
    for (int i = 0; i < BLOCKS; i++) {
      if (!b[i]) continue;
      check_block(b[i], (uint64_t)b[i]);
      free(b[i]);
    }
  }
  pthread_join(other, NULL);
  /* The test means nothing if the allocator never placed two blocks side by side. */
  if (paired_rounds < ROUNDS / 2) fail("neighbouring blocks in only %zu of %zu rounds", paired_rounds, ROUNDS);
  printf("%zu rounds, neighbours freed together in %zu\n", ROUNDS, paired_rounds);
  return 0;
}
