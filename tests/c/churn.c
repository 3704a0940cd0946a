/*
 * Thread churn: 4000 short-lived threads in waves of 16. Each allocates,
 * reallocs and frees a few hundred blocks and leaves KEEP blocks for the main
 * thread to check and free after the join; one in four also allocates from
 * a pthread key destructor of its own, which may run after the allocator's
 * own thread-exit hook (the allocator must set itself up again, not crash).
 *
 * Memory of exited threads must be reused: RSS after all waves may exceed
 * RSS after the warm-up waves by at most RSS_SLACK. When the library exports
 * hz_stats, its counters must agree: only the main thread still owns a heap,
 * heaps of exited threads were reused rather than created anew, and
 * bytes_mapped did not grow with the number of threads.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>

#include "hakozuna.h"
#include "util.h"

enum { WAVE = 16, WAVES = 250, WARMUP_WAVES = 10, BLOCKS = 300, KEEP = 4 };
#define RSS_SLACK (64 * MiB)
#define MAPPED_SLACK (256 * MiB)

/* Blocks a thread leaves behind, KEEP + 1 slots per thread of a wave (the
 * last one for the key destructor), checked and freed by main. */
static struct left {
  unsigned char *p;
  size_t n;
  uint64_t key;
} left[WAVE][KEEP + 1];
static pthread_key_t late_key;

static uint64_t xorshift(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* Runs at thread exit, possibly after the allocator's own destructor. */
static void late_destructor(void *arg) {
  int slot = (int)(intptr_t)arg - 1;
  void *tmp[8];
  for (int i = 0; i < 8; i++) tmp[i] = malloc(64 << i);
  for (int i = 0; i < 8; i++) free(tmp[i]);
  struct left *l = &left[slot][KEEP];
  l->n = 777;
  l->key = 0xdead0000u + (uint64_t)slot;
  l->p = malloc(l->n);
  if (!l->p) fail("malloc in a thread-exit destructor returned NULL");
  fill_pattern(l->p, l->n, l->key);
}

static void *thread_main(void *arg) {
  int slot = (int)((intptr_t)arg % WAVE);
  uint64_t rng = 0x9E3779B97F4A7C15ull ^ (uint64_t)(intptr_t)arg * 0xBF58476D1CE4E5B9ull;
  unsigned char *b[BLOCKS];
  size_t n[BLOCKS];
  for (int i = 0; i < BLOCKS; i++) {
    uint64_t r = xorshift(&rng);
    n[i] = 1 + (size_t)(r % ((size_t)16 << (r >> 32) % 13)); /* up to 64 KiB */
    if (i == 0) n[i] = 300 * KiB;
    if (i == 1 && (intptr_t)arg % 8 == 0) n[i] = 2 * MiB;
    b[i] = malloc(n[i]);
    if (!b[i]) fail("malloc(%zu) returned NULL in a short-lived thread", n[i]);
    memset(b[i], i, n[i] < 256 ? n[i] : 256);
  }
  for (int i = 0; i < BLOCKS; i += 3) {
    unsigned char *q = realloc(b[i], n[i] * 2);
    if (!q) fail("realloc(%zu) returned NULL in a short-lived thread", n[i] * 2);
    for (size_t k = 0; k < (n[i] < 256 ? n[i] : 256); k++)
      if (q[k] != (unsigned char)i) fail("realloc in a short-lived thread lost byte %zu", k);
    b[i] = q;
  }
  for (int i = KEEP; i < BLOCKS; i++) free(b[i]);
  for (int k = 0; k < KEEP; k++) {
    left[slot][k] = (struct left){b[k], n[k], (uint64_t)(intptr_t)arg << 8 | (uint64_t)k};
    fill_pattern(b[k], n[k], left[slot][k].key);
  }
  if ((intptr_t)arg % 4 == 0) pthread_setspecific(late_key, (void *)(intptr_t)(slot + 1));
  return NULL;
}

typedef size_t (*stats_fn)(struct hz_stats *, size_t);

static void print_stats(stats_fn stats, const char *when, struct hz_stats *s) {
  if (!stats) return;
  memset(s, 0, sizeof *s);
  stats(s, sizeof *s);
  printf("hz_stats %s: bytes_mapped %llu (peak %llu), thread_count %llu, heap_count %llu\n", when,
         (unsigned long long)s->bytes_mapped, (unsigned long long)s->bytes_mapped_peak,
         (unsigned long long)s->thread_count, (unsigned long long)s->heap_count);
}

int main(void) {
  stats_fn stats = (stats_fn)dlsym(RTLD_DEFAULT, "hz_stats");
  struct hz_stats s0, s1;
  size_t rss0 = 0;
  if (pthread_key_create(&late_key, late_destructor)) fail("pthread_key_create failed");
  for (int w = 0; w < WAVES; w++) {
    pthread_t th[WAVE];
    memset(left, 0, sizeof left);
    for (int t = 0; t < WAVE; t++)
      if (pthread_create(&th[t], NULL, thread_main, (void *)(intptr_t)(w * WAVE + t)))
        fail("pthread_create failed in wave %d", w);
    for (int t = 0; t < WAVE; t++) pthread_join(th[t], NULL);
    /* Blocks of exited threads stay valid until freed, by another thread. */
    for (int t = 0; t < WAVE; t++)
      for (int k = 0; k <= KEEP; k++) {
        struct left *l = &left[t][k];
        if (!l->p) continue;
        size_t bad = check_pattern(l->p, l->n, l->key);
        if (bad != l->n) fail("block left by an exited thread (wave %d, slot %d): byte %zu of %zu differs", w, t, bad, l->n);
        free(l->p);
      }
    if (w == WARMUP_WAVES - 1) {
      rss0 = rss_bytes();
      print_stats(stats, "after warm-up", &s0);
    }
  }
  size_t rss1 = rss_bytes();
  print_stats(stats, "at end", &s1);
  printf("%d threads: RSS after warm-up %zu KiB, at end %zu KiB\n", WAVES * WAVE, rss0 / KiB,
         rss1 / KiB);
  if (rss1 > rss0 + RSS_SLACK)
    fail("RSS grew by %zu KiB over %d threads (allowed %zu KiB): memory of exited threads is not reused",
         (rss1 - rss0) / KiB, WAVES * WAVE, RSS_SLACK / KiB);
  if (stats) {
    if (s1.thread_count > 1)
      fail("hz_stats thread_count is %llu with only the main thread alive",
           (unsigned long long)s1.thread_count);
    if (s1.heap_count > WAVES * WAVE / 4)
      fail("hz_stats heap_count is %llu after %d threads, at most %d alive at once: heaps are not reused",
           (unsigned long long)s1.heap_count, WAVES * WAVE, WAVE + 1);
    /* bytes_mapped swings with how many threads happen to overlap (about 10
     * MiB per heap), so the bound is on the warm-up's peak and loose: it
     * catches a leak of 64 KiB or more per exited thread. */
    if (s1.bytes_mapped > s0.bytes_mapped_peak + MAPPED_SLACK)
      fail("hz_stats bytes_mapped is %llu after the churn, peak after warm-up was %llu",
           (unsigned long long)s1.bytes_mapped, (unsigned long long)s0.bytes_mapped_peak);
  }
  return 0;
}
