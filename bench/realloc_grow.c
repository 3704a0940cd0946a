/*
 * realloc_grow THREADS ITERS WS MAXSTR MAXBUF
 *
 * Growing objects, as string builders and dynamic arrays make them.  Each
 * thread keeps WS objects; every iteration picks one at random and grows it
 * with realloc:
 *   even slots are strings: append 1..32 bytes; past MAXSTR bytes the string
 *     is freed and starts again at 16 bytes;
 *   odd slots are buffers: double the size (starting at 64 bytes); past
 *     MAXBUF bytes the buffer is freed and starts again.
 * After each realloc the word at offset 0 and the last word of the old size
 * are checked (realloc must keep the contents), then the new part is written:
 * one word per 4 KiB page and its last word.  ops = THREADS*ITERS iterations
 * (each a realloc, or a free and a fresh malloc when the object outgrew its
 * limit).
 */
#include "bench.h"

static const char *usage = "THREADS ITERS WS MAXSTR MAXBUF";

struct worker {
  uint64_t iters, ws, maxstr, maxbuf, seed;
} HZ_ALIGNED;

struct object {
  unsigned char *p;
  size_t n;
  uint64_t stamp; /* the word this object's contents carry */
};

static void stamp_range(unsigned char *p, size_t from, size_t to, uint64_t v) {
  for (size_t off = from; off + 16 <= to; off += HZ_PAGE) memcpy(p + off, &v, 8);
  memcpy(p + to - 8, &v, 8);
}

static void expect(const unsigned char *p, size_t off, uint64_t v) {
  uint64_t got;
  memcpy(&got, p + off, 8);
  if (got != v) {
    fprintf(stderr, "realloc_grow: contents at %p+%zu lost across realloc\n", (const void *)p, off);
    abort();
  }
}

static void start(struct object *o, size_t n, uint64_t stamp) {
  o->n = n;
  o->stamp = stamp;
  o->p = hz_xmalloc(n);
  stamp_range(o->p, 0, n, stamp);
}

static void *worker_main(void *arg) {
  struct worker *w = arg;
  struct object *obj = hz_xmalloc(sizeof *obj * w->ws);
  uint64_t rng = w->seed;
  for (uint64_t s = 0; s < w->ws; s++) start(&obj[s], s % 2 ? 64 : 16, rng + s);
  for (uint64_t i = 0; i < w->iters; i++) {
    uint32_t r = hz_rand(&rng);
    uint64_t s = r % w->ws;
    struct object *o = &obj[s];
    size_t old = o->n;
    size_t n = s % 2 ? old * 2 : old + 1 + (r >> 16) % 32;
    if (n > (s % 2 ? w->maxbuf : w->maxstr)) {
      expect(o->p, 0, o->stamp);
      free(o->p);
      start(o, s % 2 ? 64 : 16, o->stamp + 1);
      continue;
    }
    unsigned char *p = realloc(o->p, n);
    if (!p) {
      fprintf(stderr, "realloc_grow: realloc(%zu) failed\n", n);
      exit(1);
    }
    expect(p, 0, o->stamp);
    expect(p, old - 8, o->stamp);
    stamp_range(p, old, n, o->stamp);
    o->p = p;
    o->n = n;
  }
  for (uint64_t s = 0; s < w->ws; s++) free(obj[s].p);
  free(obj);
  return NULL;
}

int main(int argc, char **argv) {
  hz_usage_if(argc != 6, argv, usage);
  int threads = (int)hz_arg(argv, 1, 1, 1024, usage);
  uint64_t iters = hz_arg(argv, 2, 1, UINT64_MAX / 1024, usage);
  uint64_t ws = hz_arg(argv, 3, 2, 1u << 30, usage);
  uint64_t maxstr = hz_arg(argv, 4, 64, 1ull << 40, usage);
  uint64_t maxbuf = hz_arg(argv, 5, 128, 1ull << 40, usage);
  struct worker *w = aligned_alloc(HZ_CACHE_LINE, sizeof *w * (size_t)threads);
  if (!w) return 1;
  for (int i = 0; i < threads; i++)
    w[i] = (struct worker){.iters = iters, .ws = ws, .maxstr = maxstr, .maxbuf = maxbuf,
                           .seed = 0x9e11u + (uint64_t)i * 977u};
  double t = hz_run_threads(threads, worker_main, w, sizeof *w);
  uint64_t ops = (uint64_t)threads * iters;
  printf("realloc_grow: threads=%d ops=%llu time=%.6f ops/s=%.0f\n", threads, (unsigned long long)ops, t,
         (double)ops / t);
  free(w);
  return 0;
}
