/*
 * The other names of free under preload: C23's free_sized and
 * free_aligned_sized (glibc defines them from 2.43) and cfree (glibc keeps it
 * as cfree@GLIBC_2.2.5 for programs linked before 2.26). A program that calls
 * them must not hand hakozuna's blocks to glibc's: the library exports each,
 * and each frees the block as free does, small, medium, large and aligned
 * blocks alike, and does nothing for NULL.
 * In the hardened lane a size other than the one malloc, calloc, realloc or
 * aligned_alloc was asked for aborts with a message naming the block; in the
 * others the block is freed as free would. free_sized and free_aligned_sized
 * are called through dlsym (glibc 2.36's <stdlib.h> does not declare them),
 * cfree through a versioned reference.
 *   freesized     (run under LD_PRELOAD=libhakozuna.so)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdbool.h>

#include "hakozuna.h"
#include "util.h"

static void (*free_sized_fn)(void *, size_t);
static void (*free_aligned_sized_fn)(void *, size_t, size_t);
/* A reference to glibc's cfree as a program linked before glibc 2.26 makes
 * it: to the versioned symbol, which hakozuna's unversioned one satisfies. */
#if defined(__x86_64__)
#define GLIBC_FIRST_VERSION "GLIBC_2.2.5"
#elif defined(__aarch64__)
#define GLIBC_FIRST_VERSION "GLIBC_2.17"
#endif
void cfree_as_linked_before_2_26(void *);
__asm__(".symver cfree_as_linked_before_2_26, cfree@" GLIBC_FIRST_VERSION);
static int (*free_checked)(void *);

/* Keeps the compiler from seeing through a malloc/free pair. */
static void *volatile sink;

/* The library `fn` is defined in, as the dynamic linker resolved it. */
static const char *library_of(void *fn) {
  Dl_info info;
  if (!dladdr(fn, &info) || !info.dli_fname) return "(unknown)";
  return info.dli_fname;
}

/* `fn`, the definition `name` resolved to, must be hakozuna's. */
static void check_ours(const char *name, void *fn) {
  if (!fn) fail("%s is not exported (is libhakozuna preloaded?)", name);
  if (!strstr(library_of(fn), "hakozuna")) fail("%s resolves to %s, not to hakozuna", name, library_of(fn));
}

static void *lookup(const char *name) {
  void *fn = dlsym(RTLD_DEFAULT, name);
  check_ours(name, fn);
  return fn;
}

/* `p` was freed: the checked free finds nothing live there (a span block
 * reads as freed, a large block as unknown once unmapped or cached). */
static void check_freed(const char *what, void *p) {
  int status = free_checked(p);
  if (status == HZ_OK) fail("%s: the block was still live after it was freed", what);
}

/* Sized frees whose size is wrong, each run in a child (hardened: must
 * abort). The size passes through opaque() so nothing is folded. */
static void sized_free_of_other_size(void) {
  sink = malloc(opaque(100));
  free_sized_fn(sink, opaque(99));
}
static void sized_free_of_calloc_other_size(void) {
  sink = calloc(opaque(10), opaque(10));
  free_sized_fn(sink, opaque(10));
}
static void aligned_sized_free_of_other_size(void) {
  sink = aligned_alloc(opaque(64), opaque(256));
  free_aligned_sized_fn(sink, 64, opaque(512));
}

static void check_mismatch(const char *name, void (*body)(void), bool hardened) {
  char err[1024];
  const char *message = "hakozuna: free_sized(): size mismatch";
  int st = run_in_child(body, err, sizeof err);
  if (hardened) {
    if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && strstr(err, message) && strstr(err, " 0x")))
      fail("%s: not SIGABRT with \"%s 0x...\" (status 0x%x, stderr \"%.200s\")", name, message, st, err);
  } else if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
    fail("%s: outside the hardened lane it must free the block (status 0x%x, stderr \"%.200s\")", name, st, err);
  }
}

int main(void) {
  free_sized_fn = (void (*)(void *, size_t))lookup("free_sized");
  free_aligned_sized_fn = (void (*)(void *, size_t, size_t))lookup("free_aligned_sized");
  free_checked = (int (*)(void *))lookup("hz_free_checked");
  const char *(*policy)(void) = (const char *(*)(void))lookup("hz_policy_name");
  bool hardened = strcmp(policy(), "hardened") == 0;

  /* Each size range: a small and a medium span block, a large block. */
  const size_t sizes[] = {1, 48, 4000, 100 * KiB, 3 * MiB};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    void *p = malloc(opaque(sizes[i]));
    if (!p) fail("malloc(%zu) failed", sizes[i]);
    memset(p, 0x5A, sizes[i]);
    free_sized_fn(p, sizes[i]);
    check_freed("free_sized of a malloc block", p);
  }
  void *p = calloc(opaque(12), opaque(100));
  free_sized_fn(p, 1200);
  check_freed("free_sized of a calloc block", p);
  p = realloc(malloc(opaque(10)), opaque(300));
  free_sized_fn(p, 300);
  check_freed("free_sized of a realloc block", p);
  p = aligned_alloc(opaque(4096), opaque(8192));
  if ((uintptr_t)p % 4096 != 0) fail("aligned_alloc(4096, 8192) returned %p", p);
  free_aligned_sized_fn(p, 4096, 8192);
  check_freed("free_aligned_sized", p);
  check_ours("cfree@" GLIBC_FIRST_VERSION " (a program linked before glibc 2.26)", (void *)cfree_as_linked_before_2_26);
  p = malloc(opaque(64));
  cfree_as_linked_before_2_26(p);
  check_freed("cfree", p);
  cfree_as_linked_before_2_26(NULL);
  free_sized_fn(NULL, 0);
  free_aligned_sized_fn(NULL, 64, 0);

  check_mismatch("free_sized of another size", sized_free_of_other_size, hardened);
  check_mismatch("free_sized of a calloc block with one factor", sized_free_of_calloc_other_size, hardened);
  check_mismatch("free_aligned_sized of another size", aligned_sized_free_of_other_size, hardened);

  printf("ok\n");
  return 0;
}
