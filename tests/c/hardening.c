/*
 * Heap misuse that must never make malloc hand out a pointer the program
 * (an attacker) chose (hakozuna only).
 *
 * Each case runs in a child whose stderr is captured. The child does the
 * misuse, then calls malloc and checks every pointer it gets: not the
 * address it planted, 16-byte aligned, a live block of ours (hz_owns) and
 * not one it already holds. A pointer that fails is printed as "BAD: ..."
 * and the child exits 3.
 *   - use-after-free: the address of a static buffer written into the
 *     first word of a freed 48-byte block, then malloc(48) four times;
 *   - junk: a freed 48-byte block filled with 0x41, then malloc(48);
 *   - use-after-free-4096, junk-4096: the same with 4096-byte blocks (a
 *     medium class: the block a heap freed last of it is kept back for
 *     the class's next malloc, off its span's list);
 *   - overflow-N (N = 1, 4, 8, 9, 16): N bytes of 0x41 written past a
 *     48-byte block whose neighbour is free, then malloc(48) four times,
 *     and the overflowed block freed.
 * Each is followed by 1000 more malloc(48), checked the same way.
 * Expected outcome: the child is killed by SIGABRT after
 * "hakozuna: malloc(): corrupted free list 0x" (free-list links are encoded
 * and checked when popped). For use-after-free and overflow-N a child that
 * gets only sound pointers and exits 0 also passes (the damage was never
 * used); junk must abort. A SIGSEGV, a silent abort or a bad pointer fails.
 *
 * With HZ_TEST_HARDENED=1 (run it with HZ_POLICY=hardened) every case must
 * abort with a "hakozuna: " message, and these run too:
 *   - double-free-after-reuse: free(p), malloc of the same size until p
 *     comes back (or 10000 tries), free(p) again;
 *   - large-overflow: bytes written one by one past the end of a block of
 *     1 MiB + 100 bytes must fault (SIGSEGV: a guard page) within 8 KiB;
 *   - large-use-after-free: a byte written into a freed block of 300 KiB
 *     must fault (SIGSEGV);
 *   - overflow-before-free: 8 bytes written past a live 100-byte block,
 *     then malloc(100), must abort with a message before the block is
 *     ever freed;
 *   - underflow-into-free, underflow-into-live: one byte written before a
 *     block whose lower neighbour is free or live, then the block freed;
 *     underflow-32: the same 32 bytes before, the neighbour free;
 *   - overflow-into-free: one byte written 20 bytes into the free block
 *     above a 100-byte block, past its canaries and tail, then the block
 *     freed;
 *   - overflow-past-canaries: one byte written 32 bytes past a 4096-byte
 *     request, in its block's room but past its canaries, then freed;
 *   - underflow-first-block: one byte written before the first block of a
 *     span (a 4096-byte request at the start of its slice), then freed;
 *   - zeros-below-before-malloc: 8 zero bytes written right below a live
 *     100-byte block (what a memcpy to p - 8 does), over its neighbour's
 *     tail whether that one is live or free, then malloc(100), must abort
 *     before the block is ever freed; zeros-below-first-block: the same
 *     below the first block of a span of 4096-byte requests;
 *   - remote-double-free, remote-double-free-16: a block main allocated
 *     (100 bytes, and 1 byte: a 16-byte block) freed twice by another
 *     thread, the second time before main ever takes it back;
 *     remote-then-owner-double-free: freed by another thread, then by
 *     main; racing-double-free: two threads free one live block at the
 *     same moment. Each must abort with "hakozuna: free(): double free
 *     detected 0x" (a free claims a block by its tail; the bit stays set
 *     until the owner collects a block another thread freed).
 * Without it they print SKIP.
 *
 * In every lane, malloc(0) returns a pointer no access may touch:
 *   - zero-size-read, zero-size-write: one byte read or written through it
 *     must fault (SIGSEGV);
 *   - zero-size-double-free: freeing it twice must abort with
 *     "hakozuna: free(): double free detected".
 * With HZ_EMPTY_FAULTS=0 malloc(0) is a 16-byte block: the read and the
 * write (16 bytes) must run, exit 0.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "util.h"

#define FREE_LIST_MESSAGE "hakozuna: malloc(): corrupted free list 0x"

static int (*owns)(const void *);
static int hardened;
static int failures;
/* What use-after-free plants: if malloc ever returns it, the program has
 * been handed memory of the attacker's choice. */
static _Alignas(64) unsigned char target[256];

/* Held blocks, so a pointer handed out twice is caught. */
static void *held[2048];
static int held_count;

static void hold(void *p) {
  if (held_count < (int)(sizeof held / sizeof held[0])) held[held_count++] = p;
}

/* Checks a pointer malloc(48) returned in a child; exits 3 if it is bad. */
static void check_pointer(void *p, const char *when) {
  const char *bad = NULL;
  uintptr_t a = (uintptr_t)p;
  if (!p) bad = "NULL";
  else if (a >= (uintptr_t)target && a < (uintptr_t)target + sizeof target) bad = "the planted address (a static buffer)";
  else if (a % 16) bad = "not 16-byte aligned";
  else if (owns && owns(p) != 1) bad = "not a live block of hakozuna (hz_owns says 0)";
  for (int i = 0; !bad && i < held_count; i++)
    if (held[i] == p) bad = "a block the program already holds";
  if (bad) {
    fprintf(stderr, "BAD: %s returned %p: %s\n", when, p, bad);
    exit(3);
  }
  hold(p);
}

/* malloc(size) count times, then 1000 times more (an allocator that
 * randomises or delays reuse reaches the damaged block later). */
static void mallocs_of(size_t size, int count) {
  for (int i = 0; i < count + 1000; i++) {
    void *p = malloc(size);
    check_pointer(p, i < count ? "malloc after the misuse" : "malloc in the traffic after the misuse");
    memset(p, 0x5a, size);
  }
}
static void mallocs(int count) { mallocs_of(48, count); }

static void use_after_free_of(size_t size) {
  void *warm[32];
  for (int i = 0; i < 32; i++) hold(warm[i] = malloc(size));
  unsigned char *a = malloc(size), *b = malloc(size);
  memset(a, 1, size);
  memset(b, 2, size);
  free(a);
  free(b);
  /* The write after free: b's first word (the link of LIFO free lists). */
  uintptr_t planted = (uintptr_t)target;
  memcpy(opaque_ptr(b), &planted, sizeof planted);
  mallocs_of(size, 4);
}
static void use_after_free(void) { use_after_free_of(48); }
/* 4 KiB: a medium class, whose blocks the heap's own frees keep back for
 * the next malloc of the class. */
static void use_after_free_4096(void) { use_after_free_of(4096); }

static void junk_of(size_t size) {
  void *warm[32];
  for (int i = 0; i < 32; i++) hold(warm[i] = malloc(size));
  unsigned char *p = malloc(size);
  free(p);
  memset(opaque_ptr(p), 0x41, size);
  mallocs_of(size, 4);
}
static void junk(void) { junk_of(48); }
static void junk_4096(void) { junk_of(4096); }

/* Writes n bytes past a 48-byte block whose neighbour (the block right
 * after it, when the layout has one) is free; frees that neighbour last. */
static void overflow(size_t n) {
  enum { COUNT = 64 };
  unsigned char *b[COUNT];
  for (int i = 0; i < COUNT; i++) {
    b[i] = malloc(48);
    memset(b[i], 3, 48);
  }
  int victim = COUNT / 2, neighbour = -1;
  for (int i = 0; i < COUNT && neighbour < 0; i++)
    for (int j = 0; j < COUNT; j++)
      if (b[j] == b[i] + 48) {
        victim = i;
        neighbour = j;
        break;
      }
  for (int i = 0; i < COUNT; i++)
    if (i != victim && i != neighbour) free(b[i]);
  if (neighbour >= 0) free(b[neighbour]);
  hold(b[victim]);
  memset((unsigned char *)opaque_ptr(b[victim]) + 48, 0x41, n);
  mallocs(4);
  free(b[victim]); /* gives a check at free its chance */
}
static void overflow_1(void) { overflow(1); }
static void overflow_4(void) { overflow(4); }
static void overflow_8(void) { overflow(8); }
static void overflow_9(void) { overflow(9); }
static void overflow_16(void) { overflow(16); }

static void double_free_after_reuse(void) {
  unsigned char *p = malloc(48);
  memset(p, 1, 48);
  free(p);
  void *q = NULL;
  for (int i = 0; i < 10000 && q != p; i++) q = malloc(48);
  memset(q, 2, 48);
  free(opaque_ptr(p)); /* p is q now (or still free): either way a bug */
  mallocs(4);
}

/* Requests that are not a page multiple, so the guard must sit right
 * after the last page of the request, not after some larger length. */
static void large_overflow(void) {
  size_t n = (1 << 20) + 100;
  unsigned char *p = malloc(n);
  memset(p, 1, n);
  volatile unsigned char *end = (unsigned char *)opaque_ptr(p) + n;
  for (size_t i = 0; i < 8192; i++) end[i] = 0x41;
  free(p);
}

static void large_use_after_free(void) {
  volatile unsigned char *p = malloc(opaque(300 << 10));
  p[0] = 1;
  free((void *)p);
  p[100] = 0x41;
}

static void overflow_before_free(void) {
  unsigned char *p = malloc(opaque(100));
  memset(p, 1, 108);
  hold(malloc(opaque(100)));
}

/* Two adjacent blocks of one span: the closest pair among 64 blocks of
 * 100 bytes (a 112-byte class), every requested byte written. */
struct pair {
  unsigned char *lo, *hi;
};
static struct pair adjacent_blocks(void) {
  enum { N = 64 };
  unsigned char *b[N];
  for (int i = 0; i < N; i++) {
    b[i] = malloc(opaque(100));
    memset(b[i], 1, 100);
  }
  int lo = 0, hi = 0;
  uintptr_t gap = UINTPTR_MAX;
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++)
      if (b[i] > b[j] && (uintptr_t)(b[i] - b[j]) < gap) gap = (uintptr_t)(b[i] - b[j]), hi = i, lo = j;
  if (gap != 112) fail("no two adjacent 100-byte blocks (112 bytes apart) among %d: closest %zu apart", N, (size_t)gap);
  return (struct pair){b[lo], b[hi]};
}

/* One byte written `distance` bytes before a block whose lower neighbour
 * is freed first or still live: its tail changes either way, and the
 * block's free must say so. */
static void underflow(int keep_neighbour, int distance) {
  struct pair p = adjacent_blocks();
  if (!keep_neighbour) free(p.lo);
  p.hi[-distance] ^= 0x41;
  free(p.hi);
}

static void underflow_into_free(void) { underflow(0, 1); }
static void underflow_into_live(void) { underflow(1, 1); }
static void underflow_32(void) { underflow(0, 32); }

/* One byte written into the free block right above a block, 20 bytes into
 * it: past the lower block's canaries and tail, which stay intact. Its
 * free must look at the neighbour. */
static void overflow_into_free(void) {
  struct pair p = adjacent_blocks();
  free(p.hi);
  p.lo[(p.hi - p.lo) + 20] ^= 0x41;
  free(p.lo);
}

/* A 4096-byte request leaves room in its block past the canaries; one
 * byte written 32 past the request lands there. */
static void overflow_past_canaries(void) {
  unsigned char *p = malloc(opaque(4096));
  memset(p, 1, 4096);
  ((unsigned char *)opaque_ptr(p))[4096 + 32] ^= 0x41;
  free(p);
}

/* The first block of a span of 4096-byte requests (one 64 KiB slice of
 * 5 KiB blocks: the only block less than 5 KiB from its slice's start),
 * and one byte written before it. */
static void underflow_first_block(void) {
  for (int i = 0; i < 64; i++) {
    unsigned char *p = malloc(opaque(4096));
    if ((uintptr_t)p % (64 * 1024) < 5 * 1024) {
      ((unsigned char *)opaque_ptr(p))[-1] ^= 0x41;
      free(p);
      return;
    }
  }
  fail("no first block of a span among 64 blocks of 4096 bytes");
}

/* Zeros over the 8 bytes right below a block the program just got, then
 * its next malloc: a live neighbour's tail decodes to no size, a free
 * one's and a span's guard words hold values that are never zero. The
 * block is never freed, so only malloc can see it. `first_block` picks a
 * 4096-byte request at the start of its span, else a 100-byte one that is
 * not (below a span's first small block lies no guard). */
static void zeros_below(int first_block) {
  size_t n = first_block ? 4096 : 100;
  for (int i = 0; i < 64; i++) {
    unsigned char *p = malloc(opaque(n));
    memset(p, 1, n);
    uintptr_t offset = (uintptr_t)p % (64 * 1024);
    if (first_block ? offset < 5 * 1024 : offset != 0) {
      memset(opaque_ptr(p - 8), 0, 8);
      hold(malloc(opaque(n)));
      return;
    }
  }
  fail("no %s block among 64 blocks of %zu bytes", first_block ? "first" : "other than a span's first", n);
}

static void zeros_below_before_malloc(void) { zeros_below(0); }
static void zeros_below_first_block(void) { zeros_below(1); }

/* realloc within the block's class keeps the block: its canaries must
 * follow the new size, shrunk or grown. */
static void overflow_after_realloc(size_t from, size_t to) {
  unsigned char *p = malloc(opaque(from));
  memset(p, 1, from);
  p = realloc(p, opaque(to));
  memset(p, 2, to + 1);
  free(p);
}

static void overflow_after_shrink(void) { overflow_after_realloc(100, 90); }
static void overflow_after_grow(void) { overflow_after_realloc(90, 100); }

static void zero_size_read(void) {
  volatile unsigned char *p = malloc(opaque(0));
  if (p[0] == 0x5a) puts("");
  free((void *)p);
}

static void zero_size_write(void) {
  volatile unsigned char *p = malloc(opaque(0));
  for (int i = 0; i < 16; i++) p[i] = 0x41;
  free((void *)p);
}

static void zero_size_double_free(void) {
  void *p = malloc(opaque(0));
  free(p);
  free(opaque_ptr(p));
}

/* Blocks freed by a thread other than the one that allocated them. */
static void on_thread(void *(*body)(void *), void *p) {
  pthread_t t;
  if (pthread_create(&t, NULL, body, p) != 0) fail("pthread_create");
  pthread_join(t, NULL);
}

static void *free_twice_main(void *p) {
  free(p);
  free(opaque_ptr(p));
  return NULL;
}

static void remote_double_free_of(size_t size) {
  void *p = malloc(opaque(size));
  memset(p, 1, size);
  on_thread(free_twice_main, p);
  mallocs(4);
}

static void remote_double_free(void) { remote_double_free_of(100); }
static void remote_double_free_16(void) { remote_double_free_of(1); }

static void *free_main(void *p) {
  free(p);
  return NULL;
}

static void remote_then_owner_double_free(void) {
  void *p = malloc(opaque(100));
  memset(p, 1, 100);
  on_thread(free_main, p);
  free(opaque_ptr(p));
  mallocs(4);
}

static pthread_barrier_t racing_start;

static void *free_at_start(void *p) {
  pthread_barrier_wait(&racing_start);
  free(p);
  return NULL;
}

/* Two threads free one live block, released together: whichever free
 * lands second (or loses the race for the block's tail, when the two
 * overlap) must abort. */
static void racing_double_free(void) {
  void *p = malloc(opaque(100));
  memset(p, 1, 100);
  pthread_barrier_init(&racing_start, NULL, 2);
  pthread_t t;
  if (pthread_create(&t, NULL, free_at_start, p) != 0) fail("pthread_create");
  free_at_start(p);
  pthread_join(t, NULL);
  pthread_barrier_destroy(&racing_start);
}

/* How a case may end: MUST_ABORT needs SIGABRT with the free-list message;
 * ABORT_OR_SOUND also accepts exit 0 (every pointer checked sound). In the
 * hardened run every case needs SIGABRT and a "hakozuna: " message, except
 * HARDENED_FAULT cases, which need SIGSEGV, and HARDENED_DOUBLE_FREE ones,
 * which need DOUBLE_FREE_MESSAGE. In every lane, FAULT needs
 * SIGSEGV and DOUBLE_FREE needs SIGABRT with DOUBLE_FREE_MESSAGE; both are
 * SOUND (exit 0) when malloc(0) is a block (HZ_EMPTY_FAULTS=0). */
enum expect { MUST_ABORT, ABORT_OR_SOUND, HARDENED_ONLY, HARDENED_FAULT, HARDENED_DOUBLE_FREE, FAULT, DOUBLE_FREE };
#define DOUBLE_FREE_MESSAGE "hakozuna: free(): double free detected 0x"
static int empty_blocks; /* HZ_EMPTY_FAULTS=0 */

static void run_case(const char *name, enum expect expect, void (*body)(void)) {
  if ((expect == HARDENED_ONLY || expect == HARDENED_FAULT || expect == HARDENED_DOUBLE_FREE) && !hardened) {
    printf("SKIP: %s (hardened lane only: HZ_TEST_HARDENED=1 HZ_POLICY=hardened)\n", name);
    return;
  }
  char err[4096];
  int st = run_in_child(body, err, sizeof err);
  int aborted = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
  char why[200];
  why[0] = 0;
  if (expect == FAULT && empty_blocks) {
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) snprintf(why, sizeof why, "malloc(0) is not a writable block under HZ_EMPTY_FAULTS=0 (status 0x%x)", st);
  } else if (expect == FAULT) {
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGSEGV) snprintf(why, sizeof why, "no fault (status 0x%x): the access went through", st);
  } else if (expect == DOUBLE_FREE || expect == HARDENED_DOUBLE_FREE) {
    if (!aborted || !strstr(err, DOUBLE_FREE_MESSAGE)) snprintf(why, sizeof why, "not SIGABRT with \"" DOUBLE_FREE_MESSAGE "\" (status 0x%x)", st);
  } else if (expect == HARDENED_FAULT) {
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGSEGV) snprintf(why, sizeof why, "no fault (status 0x%x): the access went through", st);
  } else if (WIFEXITED(st) && WEXITSTATUS(st) == 3) snprintf(why, sizeof why, "malloc handed out a bad pointer");
  else if (WIFSIGNALED(st) && !aborted) snprintf(why, sizeof why, "child was killed by signal %d (%s), not SIGABRT", WTERMSIG(st), strsignal(WTERMSIG(st)));
  else if (WIFEXITED(st) && WEXITSTATUS(st) != 0) snprintf(why, sizeof why, "child exited with status %d", WEXITSTATUS(st));
  else if (hardened || expect == HARDENED_ONLY) {
    if (!aborted) snprintf(why, sizeof why, "the misuse went unnoticed: child exited 0");
    else if (!strstr(err, "hakozuna: ")) snprintf(why, sizeof why, "SIGABRT without a \"hakozuna: \" message");
  } else if (aborted && !strstr(err, FREE_LIST_MESSAGE)) {
    snprintf(why, sizeof why, "SIGABRT without \"" FREE_LIST_MESSAGE "\"");
  } else if (!aborted && expect == MUST_ABORT) {
    snprintf(why, sizeof why, "the corrupted free list went unnoticed: child exited 0");
  }
  if (why[0]) {
    failures++;
    fprintf(stderr, "FAIL: %s: %s; its stderr: \"%.200s\"\n", name, why, err);
  } else {
    printf("ok: %s (%s)\n", name,
           WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV ? "faulted" : aborted ? "aborted" : "only sound pointers");
  }
}

int main(void) {
  owns = (int (*)(const void *))dlsym(RTLD_DEFAULT, "hz_owns");
  if (!owns) fail("hz_owns is not exported (is libhakozuna preloaded?)");
  const char *h = getenv("HZ_TEST_HARDENED");
  hardened = h && strcmp(h, "1") == 0;
  if (hardened) {
    const char *(*policy)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "hz_policy_name");
    if (!policy || strcmp(policy(), "hardened") != 0)
      fail("HZ_TEST_HARDENED=1 needs the hardened lane (HZ_POLICY=hardened); the lane is %s",
           policy ? policy() : "unknown");
  }
  run_case("use-after-free", ABORT_OR_SOUND, use_after_free);
  run_case("junk", MUST_ABORT, junk);
  run_case("use-after-free-4096", ABORT_OR_SOUND, use_after_free_4096);
  run_case("junk-4096", MUST_ABORT, junk_4096);
  run_case("overflow-1", ABORT_OR_SOUND, overflow_1);
  run_case("overflow-4", ABORT_OR_SOUND, overflow_4);
  run_case("overflow-8", ABORT_OR_SOUND, overflow_8);
  run_case("overflow-9", ABORT_OR_SOUND, overflow_9);
  run_case("overflow-16", ABORT_OR_SOUND, overflow_16);
  run_case("double-free-after-reuse", HARDENED_ONLY, double_free_after_reuse);
  run_case("large-overflow", HARDENED_FAULT, large_overflow);
  run_case("large-use-after-free", HARDENED_FAULT, large_use_after_free);
  run_case("overflow-before-free", HARDENED_ONLY, overflow_before_free);
  run_case("underflow-into-free", HARDENED_ONLY, underflow_into_free);
  run_case("underflow-into-live", HARDENED_ONLY, underflow_into_live);
  run_case("underflow-32", HARDENED_ONLY, underflow_32);
  run_case("overflow-into-free", HARDENED_ONLY, overflow_into_free);
  run_case("overflow-past-canaries", HARDENED_ONLY, overflow_past_canaries);
  run_case("underflow-first-block", HARDENED_ONLY, underflow_first_block);
  run_case("zeros-below-before-malloc", HARDENED_ONLY, zeros_below_before_malloc);
  run_case("zeros-below-first-block", HARDENED_ONLY, zeros_below_first_block);
  run_case("overflow-after-shrink", HARDENED_ONLY, overflow_after_shrink);
  run_case("overflow-after-grow", HARDENED_ONLY, overflow_after_grow);
  run_case("remote-double-free", HARDENED_DOUBLE_FREE, remote_double_free);
  run_case("remote-double-free-16", HARDENED_DOUBLE_FREE, remote_double_free_16);
  run_case("remote-then-owner-double-free", HARDENED_DOUBLE_FREE, remote_then_owner_double_free);
  run_case("racing-double-free", HARDENED_DOUBLE_FREE, racing_double_free);
  const char *e = getenv("HZ_EMPTY_FAULTS");
  empty_blocks = e && strcmp(e, "0") == 0;
  run_case("zero-size-read", FAULT, zero_size_read);
  run_case("zero-size-write", FAULT, zero_size_write);
  run_case("zero-size-double-free", DOUBLE_FREE, zero_size_double_free);
  if (failures) fail("%d case(s) failed", failures);
  return 0;
}
