/*
 * A library whose constructor allocates before hakozuna's own constructor
 * has run (LD_PRELOAD="libhakozuna.so libearly.so" initialises libearly
 * first), and whose destructor frees those blocks at exit: the process's
 * first malloc must already follow the policy lane, so that in the
 * hardened lane those blocks carry their canaries and their free is not
 * taken for a double free.
 *   LD_PRELOAD="libhakozuna.so libearly.so" HZ_POLICY=lane true
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static void *first, *aligned, *zeroed, *grown;

__attribute__((constructor)) static void allocate_early(void) {
  first = malloc(opaque(24));
  aligned = memalign(64, opaque(100));
  zeroed = calloc(opaque(10), 10);
  grown = realloc(NULL, opaque(40000));
  if (!first || !aligned || !zeroed || !grown) {
    fprintf(stderr, "FAIL: an allocation in a constructor returned null\n");
    _exit(1);
  }
  memset(first, 1, 24);
  memset(aligned, 2, 100);
  memset(grown, 3, 40000);
}

__attribute__((destructor)) static void free_late(void) {
  free(grown);
  free(zeroed);
  free(aligned);
  free(first);
}
