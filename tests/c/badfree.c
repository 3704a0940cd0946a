/*
 * Invalid frees (hakozuna only; glibc words its messages differently).
 *
 * Each bad call runs in a child whose stderr is captured:
 *   - free() of a pointer hakozuna never handed out (stack, static array,
 *     an mmap'ed page, glibc's own heap, the inside of a live block) must
 *     kill the child with SIGABRT after "hakozuna: free(): invalid pointer 0x";
 *   - realloc() of such a pointer must abort with "hakozuna: " and
 *     "invalid pointer";
 *   - a double free (small, medium, large block; freed twice by one thread,
 *     or once by another thread and again by the owner) must not end in a
 *     silent exit 0: the child must die abnormally after a "hakozuna:" line.
 * In the parent, hz_owns (looked up with dlsym) must say 0 for foreign and
 * interior pointers and 1 for every live block.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "util.h"

/* A block from glibc's own malloc, bypassing the preloaded one: looked up in
 * libc.so.6's scope (its __libc_malloc may be interposed by the preload too). */
static void *glibc_block(size_t n) {
  void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
  void *(*glibc_malloc)(size_t) = libc ? (void *(*)(size_t))dlsym(libc, "malloc") : NULL;
  if (!glibc_malloc) fail("cannot find glibc's malloc: %s", dlerror());
  return glibc_malloc(n);
}

static int failures;
static char static_array[256];

static void report_fail(const char *name, const char *why, const char *err) {
  failures++;
  fprintf(stderr, "FAIL: %s: %s; its stderr: \"%.200s\"\n", name, why, err);
}

static void *free_in_thread(void *p) {
  free(p);
  return NULL;
}

/* Allocation traffic of the same size class, after a bad call, so an
 * allocator that only notices the damage later gets the chance to. */
static void traffic(size_t n) {
  void *b[64];
  for (int r = 0; r < 4; r++) {
    for (int i = 0; i < 64; i++) b[i] = malloc(n);
    for (int i = 0; i < 64; i++) free(b[i]);
  }
}

enum kind { INVALID_FREE, INVALID_REALLOC, DOUBLE_FREE };

static void run_case(const char *name, enum kind kind, void (*body)(void)) {
  char err[4096];
  int st = run_in_child(body, err, sizeof err);
  char why[160];
  why[0] = 0;
  switch (kind) {
  case INVALID_FREE:
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGABRT) snprintf(why, sizeof why, "child was not killed by SIGABRT (status 0x%x)", st);
    else if (!strstr(err, "hakozuna: free(): invalid pointer 0x")) snprintf(why, sizeof why, "no \"hakozuna: free(): invalid pointer 0x\" on stderr");
    break;
  case INVALID_REALLOC:
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGABRT) snprintf(why, sizeof why, "child was not killed by SIGABRT (status 0x%x)", st);
    else if (!strstr(err, "hakozuna: ") || !strstr(err, "invalid pointer")) snprintf(why, sizeof why, "no \"hakozuna: ... invalid pointer\" on stderr");
    break;
  case DOUBLE_FREE:
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) snprintf(why, sizeof why, "double free went unnoticed: child exited 0");
    else if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM) snprintf(why, sizeof why, "child hung after the double free");
    else if (!strstr(err, "hakozuna:")) snprintf(why, sizeof why, "child died (status 0x%x) without a \"hakozuna:\" message", st);
    break;
  }
  if (why[0]) report_fail(name, why, err);
  else printf("ok: %s\n", name);
}

static void free_stack(void) {
  char buf[64];
  memset(buf, 1, sizeof buf);
  free(opaque_ptr(buf + 16));
}
static void free_static(void) { free(opaque_ptr(static_array + 32)); }
static void free_mmap(void) {
  void *m = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  free(opaque_ptr((char *)m + 4096));
}
static void free_libc_heap(void) { free(opaque_ptr(glibc_block(64))); }
static void free_interior_misaligned(void) { free((char *)opaque_ptr(malloc(100)) + 8); }
/* A live block's address with a bit above the 47-bit user address space
 * set: free finds its segment from the low bits only, and must still refuse. */
static void free_above_user_space(void) {
  void *p = malloc(64);
  free(opaque_ptr((void *)((uintptr_t)p | (1ull << 47))));
}

static void free_interior_small(void) { free((char *)opaque_ptr(malloc(1000)) + 64); }
static void free_interior_medium(void) { free((char *)opaque_ptr(malloc(100000)) + 4096); }
static void free_interior_large(void) { free((char *)opaque_ptr(malloc(4 << 20)) + 8192); }
static void realloc_stack(void) {
  char buf[64];
  memset(buf, 1, sizeof buf);
  free(realloc(opaque_ptr(buf + 16), 100));
}
static void realloc_interior(void) { free(realloc((char *)opaque_ptr(malloc(1000)) + 64, 2000)); }

static void double_free(size_t n) {
  void *p = malloc(n);
  memset(p, 1, n);
  free(p);
  free(opaque_ptr(p));
  traffic(n);
}
static void double_free_small(void) { double_free(32); }
static void double_free_medium(void) { double_free(100000); }
static void double_free_large(void) { double_free(8 << 20); }
static void double_free_remote(void) {
  void *p = malloc(48);
  pthread_t t;
  pthread_create(&t, NULL, free_in_thread, p);
  pthread_join(t, NULL);
  free(opaque_ptr(p));
  traffic(48);
}

static void check_owns(void) {
  int (*owns)(const void *) = (int (*)(const void *))dlsym(RTLD_DEFAULT, "hz_owns");
  if (!owns) {
    failures++;
    fprintf(stderr, "FAIL: hz_owns is not exported (is libhakozuna preloaded?)\n");
    return;
  }
  char stack[64];
  unsigned char *small = malloc(1000), *large = malloc(4 << 20);
  void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  const struct { const char *what; const void *p; } foreign[] = {
      {"NULL", NULL},
      {"a stack address", stack},
      {"a static array", static_array},
      {"an mmap'ed page", m},
      {"a block of glibc's heap", glibc_block(64)},
      {"the inside of a 1000-byte block (+8)", small + 8},
      {"the inside of a 1000-byte block (+64)", small + 64},
      {"the inside of a 4 MiB block (+8192)", large + 8192},
  };
  for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++) {
    int r = owns(foreign[i].p);
    if (r != 0) {
      failures++;
      fprintf(stderr, "FAIL: hz_owns(%s) = %d, want 0\n", foreign[i].what, r);
    }
  }
  static const size_t sizes[] = {0, 1, 16, 100, 1000, 2048, 5000, 100000, 300000, 4 << 20, 64 << 20};
  static const char *const how[] = {"malloc", "calloc", "memalign(4096)", "aligned_alloc(65536)"};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    void *blocks[4] = {malloc(sizes[i]), calloc(1, sizes[i]), memalign(4096, sizes[i]),
                       aligned_alloc(65536, sizes[i])};
    for (int k = 0; k < 4; k++) {
      int r = owns(blocks[k]);
      if (r != 1) {
        failures++;
        fprintf(stderr, "FAIL: hz_owns(live %s block of %zu bytes) = %d, want 1\n",
                how[k], sizes[i], r);
      }
      free(blocks[k]);
    }
  }
  free(small);
  free(large);
  printf("ok: hz_owns checked\n");
}

int main(void) {
  run_case("free(stack address)", INVALID_FREE, free_stack);
  run_case("free(static array)", INVALID_FREE, free_static);
  run_case("free(mmap'ed page)", INVALID_FREE, free_mmap);
  run_case("free(glibc heap block)", INVALID_FREE, free_libc_heap);
  run_case("free(malloc(100) + 8)", INVALID_FREE, free_interior_misaligned);
  run_case("free(malloc(1000) + 64)", INVALID_FREE, free_interior_small);
  run_case("free(malloc(64) | 1 << 47)", INVALID_FREE, free_above_user_space);
  run_case("free(malloc(100000) + 4096)", INVALID_FREE, free_interior_medium);
  run_case("free(malloc(4MiB) + 8192)", INVALID_FREE, free_interior_large);
  run_case("realloc(stack address)", INVALID_REALLOC, realloc_stack);
  run_case("realloc(malloc(1000) + 64)", INVALID_REALLOC, realloc_interior);
  run_case("double free of 32 bytes", DOUBLE_FREE, double_free_small);
  run_case("double free of 100000 bytes", DOUBLE_FREE, double_free_medium);
  run_case("double free of 8 MiB", DOUBLE_FREE, double_free_large);
  run_case("double free of 48 bytes, first by another thread", DOUBLE_FREE, double_free_remote);
  check_owns();
  return failures ? 1 : 0;
}
