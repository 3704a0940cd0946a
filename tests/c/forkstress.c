/*
 * fork() while other threads allocate. HAMMERS threads malloc, realloc and
 * free blocks of every size range without pause; meanwhile the main thread
 * forks FORKS children, a few at a time. Each child allocates, reallocs and
 * frees a lot (checking contents), starts a thread that does the same, and
 * exits 0. A lock the allocator left held across fork deadlocks the child:
 * the child's alarm turns that into SIGALRM, and the parent fails the test
 * on any child status other than exit 0.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/wait.h>

#include "util.h"

enum { HAMMERS = 3, FORKS = 200, AT_ONCE = 4, CHILD_TIMEOUT_S = 60, TOTAL_TIMEOUT_S = 300 };

static atomic_int stop;

static uint64_t xorshift(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* Random allocation traffic over 64 slots, sizes 1 B .. 128 KiB and one in
 * 256 up to 4 MiB, every block
 * checked before it is freed or moved. Returns on its own after ops steps,
 * or when stop is set (ops < 0). */
static void churn(uint64_t seed, long ops, const char *who) {
  enum { SLOTS = 64 };
  struct { unsigned char *p; size_t n; uint64_t key; } s[SLOTS] = {{0}};
  uint64_t rng = seed | 1;
  for (long i = 0; ops < 0 ? !atomic_load_explicit(&stop, memory_order_relaxed) : i < ops; i++) {
    uint64_t r = xorshift(&rng);
    int k = (int)(r % SLOTS);
    int bits = (r >> 24) % 256 ? (int)((r >> 8) % 16) : 21;
    size_t n = 1 + (size_t)(xorshift(&rng) % ((size_t)2 << bits));
    if (s[k].p && check_pattern(s[k].p, s[k].n, s[k].key) != s[k].n)
      fail("%s: block of %zu bytes damaged", who, s[k].n);
    unsigned char *p;
    if ((r >> 40) % 3 == 0) {
      p = realloc(s[k].p, n);
      size_t keep = s[k].n < n ? s[k].n : n;
      if (p && check_pattern(p, keep, s[k].key) != keep) fail("%s: realloc lost contents", who);
    } else {
      free(s[k].p);
      p = malloc(n);
    }
    if (!p) fail("%s: allocation of %zu bytes returned NULL", who, n);
    s[k].p = p;
    s[k].n = n;
    s[k].key = r;
    fill_pattern(p, n, r);
  }
  for (int k = 0; k < SLOTS; k++) free(s[k].p);
}

static void *hammer(void *arg) {
  churn((uint64_t)(intptr_t)arg * 0x9E3779B97F4A7C15ull, -1, "hammer thread");
  return NULL;
}

static void *child_thread(void *arg) {
  churn((uint64_t)(intptr_t)arg, 300, "thread in forked child");
  return NULL;
}

static void child(int i) {
  alarm(CHILD_TIMEOUT_S);
  pthread_t t;
  if (pthread_create(&t, NULL, child_thread, (void *)(intptr_t)(i + 7))) fail("child: pthread_create failed");
  churn((uint64_t)i * 31 + 5, 600, "forked child");
  pthread_join(t, NULL);
  exit(0);
}

static void wait_child(pid_t pid) {
  int st;
  if (waitpid(pid, &st, 0) != pid) fail("waitpid failed");
  if (WIFSIGNALED(st))
    fail("forked child %d killed by signal %d (%s)%s", pid, WTERMSIG(st), strsignal(WTERMSIG(st)),
         WTERMSIG(st) == SIGALRM ? ": deadlock after fork?" : "");
  if (WEXITSTATUS(st) != 0) fail("forked child %d exited with status %d", pid, WEXITSTATUS(st));
}

int main(void) {
  /* A deadlock in the parent itself (a hammer thread stuck) ends the test too. */
  alarm(TOTAL_TIMEOUT_S);
  pthread_t th[HAMMERS];
  for (int t = 0; t < HAMMERS; t++)
    if (pthread_create(&th[t], NULL, hammer, (void *)(intptr_t)(t + 1))) fail("pthread_create failed");
  pid_t running[AT_ONCE] = {0};
  for (int i = 0; i < FORKS; i++) {
    int slot = i % AT_ONCE;
    if (running[slot]) wait_child(running[slot]);
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) fail("fork failed");
    if (pid == 0) child(i);
    running[slot] = pid;
  }
  for (int s = 0; s < AT_ONCE; s++)
    if (running[s]) wait_child(running[s]);
  atomic_store(&stop, 1);
  for (int t = 0; t < HAMMERS; t++) pthread_join(th[t], NULL);
  printf("%d children forked while %d threads allocated; all exited 0\n", FORKS, HAMMERS);
  return 0;
}
