/*
 * large_churn ITERS WS MIN MAX [REALLOC_PCT]
 *
 * Large blocks of varying size: one thread keeps WS live blocks of MIN..MAX
 * bytes (sizes drawn uniformly, so no two requests need match) and ITERS
 * times replaces a random one: checks and frees it, allocates a new size and
 * touches one word per page.  With REALLOC_PCT (default 0), that share of
 * the replacements resizes the block with realloc instead (to a new size
 * drawn the same way), as growing buffers and arrays do; the kept part is
 * checked and the block's words rewritten.  ops = ITERS replacements.
 *
 * Also prints the page faults per op (getrusage, both kinds): an allocator
 * that unmaps and maps again on every replacement faults in every page of
 * every new block, one that reuses its mappings does not.  System calls are
 * not counted here: that needs strace or perf, too heavy for a timed run.
 */
#include "bench.h"

#include <sys/resource.h>

static const char *usage = "ITERS WS MIN MAX [REALLOC_PCT]";

static long faults(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt + ru.ru_majflt;
}

/* After a realloc from old_n to new_n bytes: the old block's tag words at
 * page boundaries that lie in the kept part must have moved with it. */
static void check_kept(const unsigned char *q, size_t old_n, size_t new_n, uint64_t tag) {
  size_t off = hz_page_word_differs(q, old_n, old_n < new_n ? old_n : new_n, tag);
  if (off == SIZE_MAX) return;
  fprintf(stderr, "bench: realloc to %zu bytes lost the word at %zu of %zu\n", new_n, off, old_n);
  abort();
}

int main(int argc, char **argv) {
  hz_usage_if(argc != 5 && argc != 6, argv, usage);
  uint64_t iters = hz_arg(argv, 1, 1, UINT64_MAX / 2, usage);
  uint64_t ws = hz_arg(argv, 2, 1, 1u << 20, usage);
  uint64_t min = hz_arg(argv, 3, 16, 1ull << 36, usage);
  uint64_t max = hz_arg(argv, 4, min, 1ull << 36, usage);
  uint64_t realloc_pct = argc == 6 ? hz_arg(argv, 5, 0, 100, usage) : 0;
  void **p = hz_xmalloc(sizeof(void *) * ws);
  size_t *n = hz_xmalloc(sizeof(size_t) * ws);
  uint64_t rng = 0x1a26eu, span = max - min + 1;
  for (uint64_t i = 0; i < ws; i++) {
    n[i] = min + hz_rand(&rng) % span;
    p[i] = hz_xmalloc(n[i]);
    hz_fill(p[i], n[i]);
  }
  long f0 = faults();
  double t0 = hz_now();
  for (uint64_t i = 0; i < iters; i++) {
    uint64_t s = hz_rand(&rng) % ws;
    int resize = hz_rand(&rng) % 100 < realloc_pct;
    hz_check(p[s], n[s]);
    /* Two draws: the LCG's 31 bits do not cover sizes above 2 GiB alone. */
    size_t next = min + (((uint64_t)hz_rand(&rng) << 31) ^ hz_rand(&rng)) % span;
    if (resize) {
      uint64_t tag = hz_tag(p[s], n[s]);
      void *q = realloc(p[s], next);
      if (!q) {
        fprintf(stderr, "bench: realloc(%zu) failed\n", next);
        exit(1);
      }
      check_kept(q, n[s], next, tag);
      p[s] = q;
    } else {
      free(p[s]);
      p[s] = hz_xmalloc(next);
    }
    n[s] = next;
    hz_fill(p[s], n[s]);
  }
  double t = hz_now() - t0;
  long f = faults() - f0;
  for (uint64_t i = 0; i < ws; i++) {
    hz_check(p[i], n[i]);
    free(p[i]);
  }
  free(p);
  free(n);
  printf("large_churn: ops=%llu time=%.6f ops/s=%.0f faults/op=%.2f\n", (unsigned long long)iters, t,
         (double)iters / t, (double)f / (double)iters);
  return 0;
}
