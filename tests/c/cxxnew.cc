/*
 * C++'s operator new and delete under preload: every form is hakozuna's own
 * (one call to malloc, not through the C++ runtime's wrapper) and returns
 * hakozuna's blocks, aligned as asked; when no memory can be had, the C++
 * runtime still runs the program's new_handler and throws std::bad_alloc,
 * and the nothrow forms return null. In the hardened lane a delete that
 * does not match the block's new (delete of a new[] block, delete[] of a
 * new one, a sized delete of another size) aborts with a message naming the
 * block; in the others it frees the block as free would.
 *   cxxnew        (run under LD_PRELOAD=libhakozuna.so)
 */
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <new>

#include "util.h"

#define CHECK(cond, ...)                    \
  do {                                      \
    if (!(cond)) {                          \
      fprintf(stderr, "FAIL: " __VA_ARGS__); \
      fprintf(stderr, "\n");                \
      exit(1);                              \
    }                                       \
  } while (0)

static int (*owns)(const void *);

/* Keeps the compiler from folding a new/delete pair away. */
static void *volatile sink;


/* The library `fn` is defined in, as the dynamic linker resolved it. */
static const char *library_of(void *fn) {
  Dl_info info;
  if (!dladdr(fn, &info) || !info.dli_fname) return "(unknown)";
  return info.dli_fname;
}

static void check_ours(const char *form, void *p, size_t alignment) {
  CHECK(p != NULL, "%s returned null", form);
  CHECK(owns(p) == 1, "%s returned %p, which is not a hakozuna block", form, p);
  CHECK((uintptr_t)p % alignment == 0, "%s returned %p, not aligned to %zu", form, p, alignment);
  memset(p, 0x5A, 1);
}

struct alignas(256) Wide {
  char bytes[300];
};

static int handler_calls;
static void handler(void) {
  handler_calls++;
  std::set_new_handler(nullptr);
}

/* Mismatched deletes, each run in a child (hardened: must abort). The
 * block passes through `sink` so the compiler does not see the mismatch. */
static void delete_of_array(void) {
  sink = ::operator new[](opaque(40));
  ::operator delete(sink);
}
static void array_delete_of_scalar(void) {
  sink = ::operator new(opaque(40));
  ::operator delete[](sink);
}
static void sized_delete_of_other_size(void) {
  sink = ::operator new(opaque(40));
  ::operator delete(sink, opaque(48));
}
static void sized_array_delete_of_other_size(void) {
  sink = ::operator new[](opaque(4096));
  ::operator delete[](sink, opaque(1));
}

/* Small news until the address space runs out, in a child: the exit the
 * hit path takes when its span is dry must still reach the new_handler and
 * then std::bad_alloc, as the exits for other sizes do. Exits 0 when it did. */
static void small_news_past_the_address_space(void) {
  unsigned long pages = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  CHECK(f && fscanf(f, "%lu", &pages) == 1, "cannot read /proc/self/statm");
  fclose(f);
  /* Room for a few of the library's segments beyond what is mapped now. */
  rlim_t cap = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + 32 * MiB;
  struct rlimit as = {cap, cap};
  CHECK(setrlimit(RLIMIT_AS, &as) == 0, "setrlimit(RLIMIT_AS) failed");
  handler_calls = 0;
  std::set_new_handler(handler);
  size_t news = 0;
  try {
    for (;; news++) sink = new char[opaque(64)];
  } catch (const std::bad_alloc &) {
    CHECK(handler_calls == 1, "after %zu small news the new_handler ran %d times, not once", news, handler_calls);
    CHECK(news > 1000, "bad_alloc after only %zu small news", news);
    return;
  }
}

static void check_mismatch(const char *name, void (*body)(void), bool hardened, const char *message) {
  char err[1024];
  int st = run_in_child(body, err, sizeof err);
  if (hardened) {
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && strstr(err, message) && strstr(err, " 0x"),
          "%s: not SIGABRT with \"%s 0x...\" (status 0x%x, stderr \"%.200s\")", name, message, st, err);
  } else {
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: outside the hardened lane it must free the block (status 0x%x, stderr \"%.200s\")",
          name, st, err);
  }
}

int main(void) {
  owns = (int (*)(const void *))dlsym(RTLD_DEFAULT, "hz_owns");
  CHECK(owns != NULL, "hz_owns is not exported (is libhakozuna preloaded?)");

  /* The program's operator new and delete are the library's. */
  void *(*plain_new)(size_t) = &::operator new;
  void (*plain_delete)(void *) noexcept = &::operator delete;
  CHECK(strstr(library_of((void *)plain_new), "hakozuna") != NULL,
        "operator new resolves to %s, not to hakozuna", library_of((void *)plain_new));
  CHECK(strstr(library_of((void *)plain_delete), "hakozuna") != NULL,
        "operator delete resolves to %s, not to hakozuna", library_of((void *)plain_delete));

  static const size_t sizes[] = {0, 1, 24, 100, 5000, 300000};
  static const size_t alignments[] = {32, 256, 4096};
  for (size_t size : sizes) {
    void *p = ::operator new(opaque(size));
    check_ours("operator new", p, 16);
    ::operator delete(p, size);
    p = ::operator new[](opaque(size));
    check_ours("operator new[]", p, 16);
    ::operator delete[](p);
    p = ::operator new(opaque(size), std::nothrow);
    check_ours("operator new(nothrow)", p, 16);
    ::operator delete(p, std::nothrow);
    p = ::operator new[](opaque(size), std::nothrow);
    check_ours("operator new[](nothrow)", p, 16);
    ::operator delete[](p, std::nothrow);
    for (size_t alignment : alignments) {
      std::align_val_t al{alignment};
      p = ::operator new(opaque(size), al);
      check_ours("operator new(align)", p, alignment);
      ::operator delete(p, size, al);
      p = ::operator new[](opaque(size), al);
      check_ours("operator new[](align)", p, alignment);
      ::operator delete[](p, al);
      p = ::operator new(opaque(size), al, std::nothrow);
      check_ours("operator new(align, nothrow)", p, alignment);
      ::operator delete(p, al, std::nothrow);
      p = ::operator new[](opaque(size), al, std::nothrow);
      check_ours("operator new[](align, nothrow)", p, alignment);
      ::operator delete[](p, size, al);
    }
  }

  /* new-expressions, over-aligned types included. */
  Wide *w = new Wide;
  check_ours("new Wide", w, alignof(Wide));
  sink = w;
  delete w;
  Wide *ws = new Wide[3];
  check_ours("new Wide[3]", ws, alignof(Wide));
  sink = ws;
  delete[] ws;

  /* Out of memory: the nothrow forms return null... */
  size_t huge = opaque(SIZE_MAX / 2);
  CHECK(::operator new(huge, std::nothrow) == NULL, "operator new(nothrow) of SIZE_MAX/2 did not return null");
  CHECK(::operator new[](huge, std::align_val_t{64}, std::nothrow) == NULL,
        "operator new[](align, nothrow) of SIZE_MAX/2 did not return null");
  /* ...and the others run the new_handler, then throw std::bad_alloc. */
  std::set_new_handler(handler);
  bool thrown = false;
  try {
    sink = ::operator new(huge);
  } catch (const std::bad_alloc &) {
    thrown = true;
  }
  CHECK(thrown, "operator new of SIZE_MAX/2 did not throw std::bad_alloc");
  CHECK(handler_calls == 1, "the new_handler ran %d times, not once", handler_calls);
  thrown = false;
  try {
    sink = ::operator new[](huge, std::align_val_t{64});
  } catch (const std::bad_alloc &) {
    thrown = true;
  }
  CHECK(thrown, "operator new[](align) of SIZE_MAX/2 did not throw std::bad_alloc");

  char err[1024];
  int st = run_in_child(small_news_past_the_address_space, err, sizeof err);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "small news past the address space: status 0x%x, stderr \"%.300s\"", st, err);

  /* Mismatched deletes. */
  const char *(*policy)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "hz_policy_name");
  CHECK(policy != NULL, "hz_policy_name is not exported");
  bool hardened = strcmp(policy(), "hardened") == 0;
  check_mismatch("delete of a new[] block", delete_of_array, hardened, "hakozuna: operator delete: block of new[]");
  check_mismatch("delete[] of a new block", array_delete_of_scalar, hardened, "hakozuna: operator delete[]: block of new");
  check_mismatch("sized delete of another size", sized_delete_of_other_size, hardened,
                 "hakozuna: operator delete: size mismatch");
  check_mismatch("sized delete[] of another size", sized_array_delete_of_other_size, hardened,
                 "hakozuna: operator delete[]: size mismatch");

  printf("ok\n");
  return 0;
}
