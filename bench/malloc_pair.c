/*
 * malloc_pair ITERS SIZE
 *
 * The hot path alone: ITERS times malloc(SIZE), one byte written, free, on
 * one thread.  malloc and free are called through volatile function
 * pointers so the compiler can neither drop the pair nor inline a builtin.
 * ops = ITERS pairs.
 */
#include "bench.h"

static const char *usage = "ITERS SIZE";

static void *(*volatile do_malloc)(size_t) = malloc;
static void (*volatile do_free)(void *) = free;

int main(int argc, char **argv) {
  hz_usage_if(argc != 3, argv, usage);
  uint64_t iters = hz_arg(argv, 1, 1, UINT64_MAX / 2, usage);
  uint64_t size = hz_arg(argv, 2, 1, 1u << 20, usage);
  /* A first block, so the allocator's per-thread setup is not timed. */
  do_free(do_malloc(size));
  double t0 = hz_now();
  for (uint64_t i = 0; i < iters; i++) {
    unsigned char *p = do_malloc(size);
    if (!p) {
      fprintf(stderr, "malloc_pair: malloc(%llu) failed\n", (unsigned long long)size);
      return 1;
    }
    *(volatile unsigned char *)p = (unsigned char)i;
    do_free(p);
  }
  double t = hz_now() - t0;
  printf("malloc_pair: size=%llu ops=%llu time=%.6f ops/s=%.0f ns/op=%.2f\n", (unsigned long long)size,
         (unsigned long long)iters, t, (double)iters / t, t * 1e9 / (double)iters);
  return 0;
}
