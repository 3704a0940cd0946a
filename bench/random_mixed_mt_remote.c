/*
 * random_mixed_mt_remote THREADS ITERS WS MIN MAX REMOTE_PCT RING
 *
 * The reference mixed workload.  Each thread owns WS slots and an LCG
 * seeded 0x12345678 + thread*977.  Every iteration it first drains its
 * incoming ring, freeing what it finds, then picks slot r % WS:
 *   - a full slot is freed; with probability REMOTE_PCT% the block is handed
 *     to the next thread (i -> i+1 mod T) through a single-producer/
 *     single-consumer ring of RING entries instead, and when that ring is full
 *     the block is freed locally and counted as a fallback;
 *   - an empty slot gets malloc(MIN + r % (MAX-MIN+1)).
 * A thread that has done its ITERS keeps draining its incoming ring until
 * every thread has done its own, then frees what is left: so the ring of a
 * thread that finished first never fills up and turns its neighbour's remote
 * frees into local ones, and every block is freed inside the timed region.
 * (Without this, a run's figure depended on which thread finished first.)
 * A waiting thread with nothing to drain yields the CPU, or, where threads
 * outnumber the CPUs, sleeps between looks (nap), leaving the CPU to the
 * threads still working.  Timed from the first thread's start to the last
 * join, ops = THREADS*ITERS.
 */
#include "bench.h"

#include <sched.h>
#include <stdatomic.h>

static const char *usage = "THREADS ITERS WS MIN MAX REMOTE_PCT RING";

struct block {
  void *p;
  size_t n;
};

/* head is written only by the consumer, tail only by the producer; each on
 * its own cache line so the two sides do not false-share. */
struct ring {
  HZ_ALIGNED _Atomic size_t head;
  HZ_ALIGNED _Atomic size_t tail;
  HZ_ALIGNED struct block *buf;
  size_t cap;
};

struct worker {
  int id, threads;
  int oversubscribed; /* more threads than CPUs this process may use */
  uint64_t iters, ws, min, max, remote_pct;
  struct ring *rings; /* rings[i] is thread i's incoming ring */
  _Atomic int *running; /* threads still doing their ITERS */
  uint64_t frees, remote, fallback;
} HZ_ALIGNED;

static int ring_push(struct ring *r, struct block b) {
  size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
  size_t head = atomic_load_explicit(&r->head, memory_order_acquire);
  if (tail - head == r->cap) return 0;
  r->buf[tail % r->cap] = b;
  atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
  return 1;
}

/* Frees every block in the ring; returns how many. */
static size_t ring_drain(struct ring *r) {
  size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
  size_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
  if (head == tail) return 0;
  for (size_t i = head; i != tail; i++) {
    struct block b = r->buf[i % r->cap];
    hz_check(b.p, b.n);
    free(b.p);
  }
  atomic_store_explicit(&r->head, tail, memory_order_release);
  return tail - head;
}

/* 100 us: far less than a producer needs to fill a ring.  Where threads
 * outnumber the CPUs, sched_yield let the waiting threads take turns with
 * the working ones, up to 44,000 context switches a run, as many as the
 * threads' finish times were apart; with a CPU per thread it returns at once
 * and drains without delay, which a nap would hold back (bench/LEDGER.md). */
static void nap(void) {
  struct timespec ts = {0, 100000};
  nanosleep(&ts, NULL);
}

static void *worker_main(void *arg) {
  struct worker *w = arg;
  struct block *slot = calloc(w->ws, sizeof *slot);
  if (!slot) {
    fprintf(stderr, "random_mixed_mt_remote: out of memory for slots\n");
    exit(1);
  }
  struct ring *in = &w->rings[w->id];
  struct ring *out = &w->rings[(w->id + 1) % w->threads];
  uint64_t rng = 0x12345678u + (uint64_t)w->id * 977u;
  uint64_t span = w->max - w->min + 1;
  for (uint64_t i = 0; i < w->iters; i++) {
    ring_drain(in);
    uint32_t r = hz_rand(&rng);
    struct block *s = &slot[r % w->ws];
    if (s->p) {
      hz_check(s->p, s->n);
      w->frees++;
      /* The remote decision uses the next draw so it is independent of the slot. */
      if (hz_rand(&rng) % 100 < w->remote_pct) {
        if (ring_push(out, *s))
          w->remote++;
        else {
          w->fallback++;
          free(s->p);
        }
      } else {
        free(s->p);
      }
      s->p = NULL;
    } else {
      s->n = w->min + r % span;
      s->p = hz_xmalloc(s->n);
      hz_fill(s->p, s->n);
    }
  }
  /* Done: keep serving the thread that feeds this ring until all are done
   * (no one pushes after that), then take what is left. */
  atomic_fetch_sub_explicit(w->running, 1, memory_order_acq_rel);
  while (atomic_load_explicit(w->running, memory_order_acquire) > 0) {
    if (ring_drain(in)) continue;
    if (w->oversubscribed)
      nap();
    else
      sched_yield();
  }
  ring_drain(in);
  for (uint64_t i = 0; i < w->ws; i++)
    if (slot[i].p) {
      hz_check(slot[i].p, slot[i].n);
      free(slot[i].p);
    }
  free(slot);
  return NULL;
}

int main(int argc, char **argv) {
  hz_usage_if(argc != 8, argv, usage);
  int threads = (int)hz_arg(argv, 1, 1, 1024, usage);
  uint64_t iters = hz_arg(argv, 2, 1, UINT64_MAX / 1024, usage);
  uint64_t ws = hz_arg(argv, 3, 1, 1u << 30, usage);
  uint64_t min = hz_arg(argv, 4, 8, 1ull << 40, usage);
  uint64_t max = hz_arg(argv, 5, min, 1ull << 40, usage);
  uint64_t remote_pct = hz_arg(argv, 6, 0, 100, usage);
  uint64_t ring = hz_arg(argv, 7, 1, 1u << 30, usage);

  struct ring *rings = aligned_alloc(HZ_CACHE_LINE, sizeof(struct ring) * (size_t)threads);
  struct worker *ws_ = aligned_alloc(HZ_CACHE_LINE, sizeof(struct worker) * (size_t)threads);
  if (!rings || !ws_) {
    fprintf(stderr, "random_mixed_mt_remote: out of memory\n");
    return 1;
  }
  cpu_set_t allowed;
  int cpus = sched_getaffinity(0, sizeof allowed, &allowed) == 0 ? CPU_COUNT(&allowed) : 1;
  _Atomic int running;
  atomic_init(&running, threads);
  for (int i = 0; i < threads; i++) {
    atomic_init(&rings[i].head, 0);
    atomic_init(&rings[i].tail, 0);
    rings[i].cap = ring;
    rings[i].buf = hz_xmalloc(sizeof(struct block) * ring);
    ws_[i] = (struct worker){.id = i, .threads = threads, .iters = iters, .ws = ws, .min = min,
                             .max = max, .remote_pct = remote_pct, .rings = rings, .running = &running,
                             .oversubscribed = threads > cpus};
  }
  double t = hz_run_threads(threads, worker_main, ws_, sizeof *ws_);

  uint64_t frees = 0, remote = 0, fallback = 0;
  for (int i = 0; i < threads; i++) {
    free(rings[i].buf);
    frees += ws_[i].frees;
    remote += ws_[i].remote;
    fallback += ws_[i].fallback;
  }
  uint64_t ops = (uint64_t)threads * iters;
  uint64_t attempts = remote + fallback;
  printf("random_mixed_mt_remote: threads=%d ops=%llu time=%.6f ops/s=%.0f\n", threads,
         (unsigned long long)ops, t, (double)ops / t);
  printf("random_mixed_mt_remote: remote_share=%.2f%% fallback_rate=%.2f%% (frees=%llu remote=%llu fallback=%llu)\n",
         frees ? 100.0 * (double)remote / (double)frees : 0.0,
         attempts ? 100.0 * (double)fallback / (double)attempts : 0.0, (unsigned long long)frees,
         (unsigned long long)remote, (unsigned long long)fallback);
  free(rings);
  free(ws_);
  return 0;
}
