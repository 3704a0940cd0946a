/*
 * preload_probe.so: when the loader preloads it, appends this process's pid
 * and a newline to the file named by $HZ_PRELOAD_PROBE.  `compare -- cmd`
 * preloads it beside each allocator in the warm-up round: if the file stays
 * empty, the program never read LD_PRELOAD (static, set-user-ID), and every
 * allocator would measure the same malloc.  It only sees processes that
 * loaded it: a child started with LD_PRELOAD removed goes unnoticed.  It
 * defines no allocator function.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((constructor)) static void hz_preload_probe(void) {
  const char *file = getenv("HZ_PRELOAD_PROBE");
  if (!file || !*file) return;
  int fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  char line[32];
  int n = snprintf(line, sizeof line, "%ld\n", (long)getpid());
  if (n > 0 && write(fd, line, (size_t)n) < 0) {
    /* a probe that cannot write reads as "the preload did not take" */
  }
  close(fd);
}
