/*
 * Under preload, prints the hakozuna version the program's malloc comes from,
 * or fails: the aarch64 run checks that the library really is the malloc
 * (ld.so only warns when a preload cannot be loaded).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  const char *(*version)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "hz_version");
  int (*owns)(const void *) = (int (*)(const void *))dlsym(RTLD_DEFAULT, "hz_owns");
  if (!version || !owns) {
    fprintf(stderr, "FAIL: hz_version or hz_owns not found: no hakozuna preloaded\n");
    return 1;
  }
  void *p = malloc(100);
  if (!p || !owns(p)) {
    fprintf(stderr, "FAIL: malloc(100) is not a hakozuna block\n");
    return 1;
  }
  free(p);
  printf("hakozuna %s\n", version());
  return 0;
}
