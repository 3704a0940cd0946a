/*
 * rusage_exec [--preload LIB] PROGRAM [ARGS...]
 *
 * Runs PROGRAM (searched in PATH) with its stdin, stdout and stderr, waits
 * for it with wait4 and then prints one line on stderr:
 *   rusage_exec: status=exit:N|signal:NAME wall_s=S user_s=S sys_s=S maxrss_kib=K
 * wall_s runs from just before fork to wait4's return; maxrss_kib is the
 * child's peak resident set size as the kernel reports it.  The benchmark
 * runner needs this because Deno's subprocess API reports no rusage.
 *
 * With --preload, LD_PRELOAD=LIB is set in the child only, so this helper
 * itself always runs on the system allocator.  Exits with the child's exit
 * status, or 128+signal.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double seconds(struct timeval tv) { return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6; }

int main(int argc, char **argv) {
  int first = 1;
  const char *preload = NULL;
  if (argc > 2 && !strcmp(argv[1], "--preload")) {
    preload = argv[2];
    first = 3;
  }
  if (first >= argc) {
    fprintf(stderr, "usage: %s [--preload LIB] PROGRAM [ARGS...]\n", argv[0]);
    return 2;
  }

  double t0 = now();
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "rusage_exec: fork: %s\n", strerror(errno));
    return 1;
  }
  if (pid == 0) {
    if (preload && setenv("LD_PRELOAD", preload, 1)) _exit(127);
    execvp(argv[first], argv + first);
    fprintf(stderr, "rusage_exec: cannot run %s: %s\n", argv[first], strerror(errno));
    _exit(127);
  }

  int status;
  struct rusage ru;
  while (wait4(pid, &status, 0, &ru) < 0)
    if (errno != EINTR) {
      fprintf(stderr, "rusage_exec: wait4: %s\n", strerror(errno));
      return 1;
    }
  double wall = now() - t0;

  char what[64];
  int code;
  if (WIFEXITED(status)) {
    code = WEXITSTATUS(status);
    snprintf(what, sizeof what, "exit:%d", code);
  } else {
    code = 128 + WTERMSIG(status);
    const char *name = sigabbrev_np(WTERMSIG(status));
    snprintf(what, sizeof what, "signal:%s", name ? name : "?");
  }
  fprintf(stderr, "rusage_exec: status=%s wall_s=%.6f user_s=%.6f sys_s=%.6f maxrss_kib=%ld\n", what, wall,
          seconds(ru.ru_utime), seconds(ru.ru_stime), ru.ru_maxrss);
  return code;
}
