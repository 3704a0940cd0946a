/*
 * placement [ROUND_TRIPS]
 *
 * How far apart the first two CPUs this process may use are right now: two
 * threads, pinned one to each, pass one cache line back and forth
 * ROUND_TRIPS times (default 1000000, stopping after 20 ms) and the program
 * prints round_trip_ns=N, the mean round trip: a window long enough to see
 * a virtual CPU that the host keeps stopping, as well as one far away.  The
 * runner probes before and after each measured run of a multi-threaded
 * workload (bench/machine.ts): on a virtual machine the host may place the
 * two virtual CPUs far apart for a while, and every workload that passes
 * memory between threads then runs 2-2.5 times slower whatever the
 * allocator (bench/LEDGER.md, "where the host places the two CPUs").
 * Exits 2 with a message when fewer than two CPUs are available.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <sched.h>
#include <stdatomic.h>

static const char *usage = "[ROUND_TRIPS]";

/* The line the two threads pass: odd values are the main thread's serves,
 * even ones the partner's returns, -1 tells the partner to stop. */
static HZ_ALIGNED _Atomic long ball;

static void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static int cpus[2];

static void *partner(void *arg) {
  (void)arg;
  pin(cpus[1]);
  for (long expect = 1;; expect += 2) {
    long seen;
    while ((seen = atomic_load_explicit(&ball, memory_order_acquire)) != expect)
      if (seen < 0) return NULL;
    atomic_store_explicit(&ball, expect + 1, memory_order_release);
  }
}

int main(int argc, char **argv) {
  hz_usage_if(argc > 2, argv, usage);
  uint64_t round_trips = argc == 2 ? hz_arg(argv, 1, 1, 1u << 30, usage) : 1000000;
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) {
    perror("placement: sched_getaffinity");
    return 2;
  }
  int found = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE && found < 2; cpu++)
    if (CPU_ISSET(cpu, &allowed)) cpus[found++] = cpu;
  if (found < 2) {
    fprintf(stderr, "placement: fewer than two CPUs available\n");
    return 2;
  }
  pin(cpus[0]);
  pthread_t thread;
  if (pthread_create(&thread, NULL, partner, NULL) != 0) {
    fprintf(stderr, "placement: pthread_create failed\n");
    return 2;
  }
  long serve = 1;
  double start = hz_now();
  uint64_t done = 0;
  while (done < round_trips) {
    atomic_store_explicit(&ball, serve, memory_order_release);
    while (atomic_load_explicit(&ball, memory_order_acquire) != serve + 1) {
    }
    serve += 2;
    done++;
    if (done % 16 == 0 && hz_now() - start > 0.02) break;
  }
  double elapsed = hz_now() - start;
  atomic_store_explicit(&ball, -1, memory_order_release);
  pthread_join(thread, NULL);
  printf("round_trip_ns=%.0f\n", elapsed / (double)done * 1e9);
  return 0;
}
