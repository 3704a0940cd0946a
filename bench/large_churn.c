/*
 * large_churn ITERS SLOTS [MIN_KIB MAX_KIB]
 *
 * Large blocks of varying size in steady state: one thread keeps SLOTS live
 * blocks; every iteration frees the block in a random slot and allocates a
 * new one of a random size, uniform in [MIN_KIB, MAX_KIB] KiB (default 256
 * KiB to 4 MiB, all above the allocator's 256 KiB medium classes), then
 * tags it (bench.h: one word per 4 KiB page).  One op = one free + one
 * malloc.  Count system calls per op with
 *   strace -f -c -e trace=mmap,munmap,mremap,madvise,mprotect ./large_churn ...
 * (the startup's few calls are included; divide by ITERS).
 */
#include "bench.h"

static const char *usage = "ITERS SLOTS [MIN_KIB MAX_KIB]";

int main(int argc, char **argv) {
  hz_usage_if(argc != 3 && argc != 5, argv, usage);
  uint64_t iters = hz_arg(argv, 1, 1, UINT64_MAX / 2, usage);
  uint64_t slots = hz_arg(argv, 2, 1, 1u << 20, usage);
  uint64_t min_kib = argc == 5 ? hz_arg(argv, 3, 1, 1u << 30, usage) : 256;
  uint64_t max_kib = argc == 5 ? hz_arg(argv, 4, min_kib, 1u << 30, usage) : 4096;
  size_t lo = (size_t)min_kib << 10, span = ((size_t)(max_kib - min_kib) << 10) + 1;
  unsigned char **p = hz_xmalloc(sizeof *p * slots);
  size_t *n = hz_xmalloc(sizeof *n * slots);
  uint64_t rng = 0x1a59e;
  for (uint64_t s = 0; s < slots; s++) {
    n[s] = lo + ((size_t)hz_rand(&rng) << 10 | hz_rand(&rng) % 1024) % span;
    p[s] = hz_xmalloc(n[s]);
    hz_fill(p[s], n[s]);
  }
  double t0 = hz_now();
  for (uint64_t i = 0; i < iters; i++) {
    uint64_t s = hz_rand(&rng) % slots;
    hz_check(p[s], n[s]);
    free(p[s]);
    n[s] = lo + ((size_t)hz_rand(&rng) << 10 | hz_rand(&rng) % 1024) % span;
    p[s] = hz_xmalloc(n[s]);
    hz_fill(p[s], n[s]);
  }
  double t = hz_now() - t0;
  for (uint64_t s = 0; s < slots; s++) {
    hz_check(p[s], n[s]);
    free(p[s]);
  }
  printf("large_churn: slots=%llu sizes=%llu-%llu KiB ops=%llu time=%.6f ops/s=%.0f\n",
         (unsigned long long)slots, (unsigned long long)min_kib, (unsigned long long)max_kib,
         (unsigned long long)iters, t, (double)iters / t);
  free(p);
  free(n);
  return 0;
}
