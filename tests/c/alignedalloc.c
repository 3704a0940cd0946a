/*
 * aligned_alloc follows the running glibc: from 2.38 on, an alignment that
 * is not a power of two (0 included) gives NULL with EINVAL (C17); before,
 * aligned_alloc is memalign, which rounds such an alignment up. Power-of-two
 * alignments give an aligned block either way.
 *   LD_PRELOAD=libhakozuna.so alignedalloc
 * Built with -DPRETEND_GLIBC='"2.39"' -rdynamic, the program exports its own
 * gnu_get_libc_version, which the preloaded library then finds first: the
 * 2.38 rule is checked on a machine whose glibc is older.
 */
#include <errno.h>
#include <gnu/libc-version.h>
#include <stdint.h>

#include "util.h"

#ifdef PRETEND_GLIBC
const char *gnu_get_libc_version(void) { return PRETEND_GLIBC; }
#endif

int main(void) {
  int major = 0, minor = 0;
  if (sscanf(gnu_get_libc_version(), "%d.%d", &major, &minor) != 2) fail("unreadable glibc version");
  int strict = major > 2 || (major == 2 && minor >= 38);
  static const size_t odd[] = {0, 3, 24, 48, 100, 4097};
  for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
    errno = 0;
    void *p = aligned_alloc(opaque(odd[i]), 64);
    size_t pow2 = 16;
    while (pow2 < odd[i]) pow2 <<= 1;
    if (strict && (p || errno != EINVAL))
      fail("glibc %d.%d: aligned_alloc(%zu, 64) should be NULL with EINVAL", major, minor, odd[i]);
    if (!strict && (!p || (uintptr_t)p % pow2))
      fail("glibc %d.%d: aligned_alloc(%zu, 64) should be a block aligned to %zu", major, minor, odd[i], pow2);
    free(p);
  }
  for (size_t a = 1; a <= 4096; a <<= 1) {
    void *p = aligned_alloc(opaque(a), 100);
    if (!p || (uintptr_t)p % a) fail("aligned_alloc(%zu, 100) is not an aligned block", a);
    free(p);
  }
  printf("glibc %d.%d: aligned_alloc %s\n", major, minor, strict ? "refuses odd alignments" : "is memalign");
  return 0;
}
