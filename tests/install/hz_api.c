/* Built against an installed hakozuna through pkg-config: the header, the
 * library and the .pc file must agree. Exits non-zero on any mismatch. */
#include <hakozuna.h>
#include <stdio.h>
#include <string.h>

int main(void) {
  struct hz_stats before, after;
  if (hz_stats(&before, sizeof before) != sizeof before || before.version != HZ_STATS_VERSION) {
    fprintf(stderr, "FAIL install: hz_stats version or size mismatch\n");
    return 1;
  }
  void *p = hz_malloc(100);
  if (p == NULL || !hz_owns(p) || hz_usable_size(p) < 100) {
    fprintf(stderr, "FAIL install: hz_malloc block not owned or too small\n");
    return 1;
  }
  memset(p, 0xab, hz_usable_size(p));
  hz_stats(&after, sizeof after);
  if (after.alloc_count < before.alloc_count + 1) {
    fprintf(stderr, "FAIL install: alloc_count did not grow\n");
    return 1;
  }
  hz_free(p);
  printf("hakozuna %s (%s) installed and linked\n", hz_version(), hz_policy_name());
  return 0;
}
