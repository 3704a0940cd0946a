/*
 * Cross-thread test: every block is freed (or realloc'ed, then freed) by a
 * thread other than the one that allocated it.
 *
 * THREADS threads each allocate PER_THREAD blocks of 16 B .. 256 KiB (one in
 * 256 of 1 .. 4 MiB), fill each with a pattern keyed by (thread, index) and
 * push it into the bounded queue of another thread. A thread pops blocks from
 * its own queue, checks every byte, and frees it, or reallocs it to another
 * size (checking the kept prefix), or parks it in a small local stash to be
 * freed later, so foreign blocks also live a while. Any byte that differs,
 * a NULL, or a count that does not add up fails the test.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

#include "util.h"

enum { THREADS = 4, QCAP = 64, STASH = 32 };
static size_t PER_THREAD; /* 6000, scaled by TEST_SCALE_PERCENT (util.h) */

struct item {
  unsigned char *p;
  size_t n;
  uint64_t key; /* thread << 32 | index; re-keyed after a realloc */
};

struct queue {
  pthread_mutex_t mu;
  struct item buf[QCAP];
  int head, count;
};

static struct queue queues[THREADS];
static atomic_int producers_done;
static atomic_long consumed, reallocs;

static int push(int t, struct item it) {
  struct queue *q = &queues[t];
  pthread_mutex_lock(&q->mu);
  int ok = q->count < QCAP;
  if (ok) q->buf[(q->head + q->count++) % QCAP] = it;
  pthread_mutex_unlock(&q->mu);
  return ok;
}

static int pop(int t, struct item *it) {
  struct queue *q = &queues[t];
  pthread_mutex_lock(&q->mu);
  int ok = q->count > 0;
  if (ok) {
    *it = q->buf[q->head];
    q->head = (q->head + 1) % QCAP;
    q->count--;
  }
  pthread_mutex_unlock(&q->mu);
  return ok;
}

static uint64_t xorshift(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static size_t pick_size(uint64_t *rng) {
  uint64_t r = xorshift(rng);
  if (r % 256 == 0) return MiB + (size_t)(xorshift(rng) % (3 * MiB));
  return 16 + (size_t)(xorshift(rng) % ((size_t)16 << ((r >> 8) % 15)));
}

static void verify(int t, const struct item *it, const char *what) {
  size_t bad = check_pattern(it->p, it->n, it->key);
  if (bad != it->n)
    fail("thread %d: %s block of %zu bytes from thread %llu index %llu: byte %zu differs", t, what,
         it->n, (unsigned long long)(it->key >> 32), (unsigned long long)(it->key & 0xffffffff),
         bad);
}

struct consumer {
  int t;
  uint64_t rng;
  struct item stash[STASH];
};

/* Takes one block from this thread's queue and disposes of it. */
static int consume_one(struct consumer *c) {
  struct item it;
  if (!pop(c->t, &it)) return 0;
  verify(c->t, &it, "received");
  uint64_t r = xorshift(&c->rng);
  if (r % 4 == 0) {
    /* realloc a block another thread owns: the prefix must move with it */
    size_t n = pick_size(&c->rng);
    unsigned char *q = realloc(it.p, n);
    if (!q) fail("thread %d: realloc(%zu -> %zu) returned NULL", c->t, it.n, n);
    size_t keep = it.n < n ? it.n : n;
    struct item kept = {q, keep, it.key};
    verify(c->t, &kept, "realloc'ed");
    it.p = q;
    it.n = n;
    it.key = r | 1;
    fill_pattern(q, n, it.key);
    atomic_fetch_add(&reallocs, 1);
  }
  int slot = (int)((r >> 8) % STASH);
  if ((r >> 16) % 2 && !c->stash[slot].p) {
    c->stash[slot] = it;
  } else {
    verify(c->t, &it, "to be freed");
    free(it.p);
  }
  atomic_fetch_add(&consumed, 1);
  return 1;
}

static void *worker(void *arg) {
  struct consumer c = {.t = (int)(intptr_t)arg, .rng = 0x9E3779B97F4A7C15ull * (uint64_t)((intptr_t)arg + 1)};
  for (uint64_t i = 0; i < PER_THREAD; i++) {
    size_t n = pick_size(&c.rng);
    uint64_t r = xorshift(&c.rng);
    unsigned char *p;
    switch (r % 8) {
    case 0: p = calloc(1, n); break;
    case 1: p = memalign((size_t)32 << (r >> 8) % 8, n); break;
    default: p = malloc(n); break;
    }
    if (!p) fail("thread %d: allocation of %zu bytes returned NULL", c.t, n);
    if (r % 8 == 0)
      for (size_t k = 0; k < n; k++)
        if (p[k]) fail("thread %d: calloc(1, %zu) byte %zu is not zero", c.t, n, k);
    struct item it = {p, n, (uint64_t)c.t << 32 | i};
    fill_pattern(p, n, it.key);
    int to = (c.t + 1 + (int)((r >> 16) % (THREADS - 1))) % THREADS;
    while (!push(to, it))
      if (!consume_one(&c)) sched_yield();
    consume_one(&c);
  }
  atomic_fetch_add(&producers_done, 1);
  /* Drain until every producer is done and the queue is empty; done is read
   * before the pop, so an empty pop after it means no block can still come. */
  for (;;) {
    int done = atomic_load(&producers_done) == THREADS;
    if (consume_one(&c)) continue;
    if (done) break;
    sched_yield();
  }
  for (int s = 0; s < STASH; s++)
    if (c.stash[s].p) {
      verify(c.t, &c.stash[s], "stashed");
      free(c.stash[s].p);
    }
  return NULL;
}

int main(void) {
  pthread_t th[THREADS];
  PER_THREAD = test_scaled(6000);
  for (int t = 0; t < THREADS; t++) pthread_mutex_init(&queues[t].mu, NULL);
  for (int t = 0; t < THREADS; t++)
    if (pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t)) fail("pthread_create failed");
  for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
  long want = (long)THREADS * PER_THREAD;
  if (atomic_load(&consumed) != want)
    fail("%ld blocks consumed, %ld produced", atomic_load(&consumed), want);
  printf("%ld blocks passed between %d threads, %ld realloc'ed by a foreign thread, all bytes checked\n",
         want, THREADS, atomic_load(&reallocs));
  return 0;
}
