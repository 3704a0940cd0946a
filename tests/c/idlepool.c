/*
 * A pool whose threads go idle while others free their blocks, and wake up
 * while that goes on.
 *
 * In each round one thread, the round's owner, allocates BLOCKS blocks of
 * 16 B .. 1 KiB, each filled with a pattern keyed by (round, index), and
 * sleeps; the other threads check and free them all, each its share. Their
 * flushes reach the owner's heap far more often than a heap that collects
 * lets them, so they sweep it: they purge the spans whose every block waits
 * in its inbox (docs/DESIGN.md, "Remote frees", sweep). After 0 to 18 ms,
 * different in each round, the owner wakes and, while the frees go on,
 * allocates, checks and frees blocks of the same sizes, so its
 * refills retire swept spans while other threads sweep. Every byte is
 * checked before its free; any damage, a NULL, or a crash or an assertion
 * of the safety build fails the test.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "util.h"

enum { THREADS = 4, ROUNDS = THREADS, CHURN = 64 };
static size_t BLOCKS; /* 200000, scaled by TEST_SCALE_PERCENT (util.h) */

struct block {
  unsigned char *p;
  size_t n;
};

static struct block *blocks;
static pthread_barrier_t allocated, freed;
static atomic_size_t owner_checks;

static size_t size_of(uint64_t key) { return 16 + (size_t)(pattern_word(key, 99) % 1009); }

static void check_and_free(const struct block *b, uint64_t key) {
  size_t bad = check_pattern(b->p, b->n, key);
  if (bad != b->n) fail("byte %zu of a %zu-byte block (key %llx) was changed", bad, b->n, (unsigned long long)key);
  free(b->p);
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

/* The owner, awake while its blocks are freed: blocks of the same sizes,
 * allocated, checked and freed by itself, CHURN at a time. */
static void churn(int round) {
  struct block live[CHURN];
  for (size_t i = 0; i < BLOCKS / 4; i++) {
    uint64_t key = ((uint64_t)round << 40) | (1ull << 39) | i;
    struct block *b = &live[i % CHURN];
    if (i >= CHURN) check_and_free(b, key - CHURN);
    b->n = size_of(key);
    b->p = malloc(b->n);
    if (!b->p) fail("malloc(%zu) returned NULL", b->n);
    fill_pattern(b->p, b->n, key);
    atomic_fetch_add(&owner_checks, 1);
  }
  size_t first = BLOCKS / 4 > CHURN ? BLOCKS / 4 - CHURN : 0;
  for (size_t i = first; i < BLOCKS / 4; i++) check_and_free(&live[i % CHURN], ((uint64_t)round << 40) | (1ull << 39) | i);
}

static void *worker(void *arg) {
  int self = (int)(intptr_t)arg;
  for (int round = 0; round < ROUNDS; round++) {
    int owner = round % THREADS;
    if (self == owner) {
      for (size_t i = 0; i < BLOCKS; i++) {
        uint64_t key = ((uint64_t)round << 40) | i;
        blocks[i].n = size_of(key);
        blocks[i].p = malloc(blocks[i].n);
        if (!blocks[i].p) fail("malloc(%zu) returned NULL", blocks[i].n);
        fill_pattern(blocks[i].p, blocks[i].n, key);
      }
    }
    pthread_barrier_wait(&allocated);
    if (self == owner) {
      sleep_ms(round * 6);
      churn(round);
    } else {
      /* The non-owners split the blocks between them. */
      int share = (self - owner + THREADS) % THREADS - 1;
      for (size_t i = (size_t)share; i < BLOCKS; i += THREADS - 1) check_and_free(&blocks[i], ((uint64_t)round << 40) | i);
    }
    pthread_barrier_wait(&freed);
  }
  return NULL;
}

int main(void) {
  BLOCKS = test_scaled(200000);
  blocks = calloc(BLOCKS, sizeof *blocks);
  if (!blocks) fail("calloc of the block table failed");
  pthread_barrier_init(&allocated, NULL, THREADS);
  pthread_barrier_init(&freed, NULL, THREADS);
  pthread_t th[THREADS];
  for (int t = 0; t < THREADS; t++)
    if (pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t)) fail("pthread_create failed");
  for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
  free(blocks);
  printf("idlepool: %d rounds of %zu blocks freed by other threads, %zu checked by their waking owners\n", ROUNDS, BLOCKS,
         atomic_load(&owner_checks));
  return 0;
}
