/*
 * malloc_owner: prints the path of the shared object whose malloc this
 * process calls.  The runner runs it under each allocator before measuring:
 * ld.so only warns when it cannot preload a library, and a library that does
 * not export malloc leaves glibc's in place; either would quietly measure the
 * wrong allocator.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  Dl_info info;
  void *sym = dlsym(RTLD_DEFAULT, "malloc");
  if (!sym || !dladdr(sym, &info) || !info.dli_fname) {
    fprintf(stderr, "malloc_owner: cannot find the object that defines malloc\n");
    return 1;
  }
  free(malloc(16)); /* and it must work */
  puts(info.dli_fname);
  return 0;
}
