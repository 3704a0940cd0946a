/*
 * xmalloc PAIRS ITERS MIN MAX BATCH
 *
 * Producer/consumer, after xmalloc-test: PAIRS producer threads each allocate
 * ITERS blocks of MIN..MAX bytes (rounded up to whole batches) and pass them,
 * BATCH at a time in a malloc'ed batch array, through a bounded queue to
 * their consumer thread, which checks and frees every block and the array.
 * Every free is a free of another thread's memory.  A side that finds the
 * queue full or empty yields the CPU rather than spinning, so the workload
 * stays fair on machines with fewer cores than threads.
 * ops = PAIRS*ITERS blocks (each allocated once and freed once).
 */
#include "bench.h"

#include <sched.h>
#include <stdatomic.h>

static const char *usage = "PAIRS ITERS MIN MAX BATCH";

#define QUEUE_DEPTH 64

struct batch {
  size_t count;
  struct {
    void *p;
    size_t n;
  } item[];
};

/* One producer/consumer pair: a single-producer/single-consumer queue of
 * batches; head is written by the consumer only, tail by the producer only. */
struct pair {
  HZ_ALIGNED _Atomic size_t head;
  HZ_ALIGNED _Atomic size_t tail;
  HZ_ALIGNED struct batch *queue[QUEUE_DEPTH];
  uint64_t batches, batch, min, max, rng;
};

static void *producer(void *arg) {
  struct pair *q = arg;
  uint64_t span = q->max - q->min + 1;
  for (uint64_t i = 0; i < q->batches; i++) {
    struct batch *b = hz_xmalloc(sizeof *b + sizeof b->item[0] * q->batch);
    b->count = q->batch;
    for (size_t k = 0; k < b->count; k++) {
      b->item[k].n = q->min + hz_rand(&q->rng) % span;
      b->item[k].p = hz_xmalloc(b->item[k].n);
      hz_fill(b->item[k].p, b->item[k].n);
    }
    size_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
    while (tail - atomic_load_explicit(&q->head, memory_order_acquire) == QUEUE_DEPTH) sched_yield();
    q->queue[tail % QUEUE_DEPTH] = b;
    atomic_store_explicit(&q->tail, tail + 1, memory_order_release);
  }
  return NULL;
}

static void *consumer(void *arg) {
  struct pair *q = arg;
  for (uint64_t i = 0; i < q->batches; i++) {
    size_t head = atomic_load_explicit(&q->head, memory_order_relaxed);
    while (atomic_load_explicit(&q->tail, memory_order_acquire) == head) sched_yield();
    struct batch *b = q->queue[head % QUEUE_DEPTH];
    atomic_store_explicit(&q->head, head + 1, memory_order_release);
    for (size_t k = 0; k < b->count; k++) {
      hz_check(b->item[k].p, b->item[k].n);
      free(b->item[k].p);
    }
    free(b);
  }
  return NULL;
}

/* Thread 2i produces for pair i, thread 2i+1 consumes it. */
struct role {
  struct pair *q;
  int consume;
};

static void *pair_thread(void *arg) {
  struct role *r = arg;
  return r->consume ? consumer(r->q) : producer(r->q);
}

int main(int argc, char **argv) {
  hz_usage_if(argc != 6, argv, usage);
  int pairs = (int)hz_arg(argv, 1, 1, 512, usage);
  uint64_t iters = hz_arg(argv, 2, 1, UINT64_MAX / 1024, usage);
  uint64_t min = hz_arg(argv, 3, 8, 1ull << 40, usage);
  uint64_t max = hz_arg(argv, 4, min, 1ull << 40, usage);
  uint64_t batch = hz_arg(argv, 5, 1, 1u << 20, usage);

  struct pair *q = aligned_alloc(HZ_CACHE_LINE, sizeof *q * (size_t)pairs);
  struct role *role = hz_xmalloc(sizeof *role * 2 * (size_t)pairs);
  if (!q) return 1;
  uint64_t batches = (iters + batch - 1) / batch;
  for (int i = 0; i < pairs; i++) {
    atomic_init(&q[i].head, 0);
    atomic_init(&q[i].tail, 0);
    q[i].batches = batches;
    q[i].batch = batch;
    q[i].min = min;
    q[i].max = max;
    q[i].rng = 0xa110cu + (uint64_t)i * 977u;
    role[2 * i] = (struct role){.q = &q[i], .consume = 0};
    role[2 * i + 1] = (struct role){.q = &q[i], .consume = 1};
  }
  double t = hz_run_threads(2 * pairs, pair_thread, role, sizeof *role);
  uint64_t ops = (uint64_t)pairs * batches * batch;
  printf("xmalloc: pairs=%d ops=%llu time=%.6f ops/s=%.0f\n", pairs, (unsigned long long)ops, t,
         (double)ops / t);
  free(role);
  free(q);
  return 0;
}
