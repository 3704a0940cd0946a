/*
 * hakozuna — a multi-threaded memory allocator.
 *
 * Two ways to use it:
 *   - LD_PRELOAD=libhakozuna.so ./prog   replaces malloc, free and the whole
 *     malloc family (malloc free calloc realloc reallocarray posix_memalign
 *     aligned_alloc memalign valloc pvalloc malloc_usable_size, glibc's old
 *     cfree, and C23's free_sized free_aligned_sized) with glibc's contract,
 *     and answers glibc's malloc_trim, mallinfo2, mallinfo and malloc_stats
 *     with its own memory.
 *   - link with -lhakozuna (pkg-config hakozuna) and call the hz_* API below,
 *     which never goes through the PLT-bound `malloc` symbol, so it also works
 *     from a library opened with dlopen.
 *
 * Every hz_* allocation function has the contract of its C counterpart:
 * NULL with errno ENOMEM on failure or size overflow, EINVAL for a bad
 * alignment, and a failed hz_realloc leaves the old block intact.
 */
#ifndef HAKOZUNA_H
#define HAKOZUNA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Version of struct hz_stats; bumped when fields are added (only ever at the end). */
#define HZ_STATS_VERSION 1

/* A snapshot of the allocator's counters, merged from every thread.
 * Counts are cumulative since the library was loaded unless said otherwise. */
struct hz_stats {
  uint32_t version;            /* HZ_STATS_VERSION of the library that filled it */
  uint32_t size;               /* bytes of this struct the library filled */
  uint64_t alloc_count;        /* blocks handed out, all sizes */
  uint64_t free_count;         /* blocks given back, all sizes, local and remote */
  uint64_t remote_free_count;  /* frees of blocks owned by another thread's heap */
  uint64_t bytes_in_use;       /* usable bytes of live blocks (now) */
  uint64_t bytes_mapped;       /* bytes mapped from the OS: segments, large blocks, metadata (now) */
  uint64_t bytes_mapped_peak;  /* highest bytes_mapped seen */
  uint64_t bytes_purged;       /* bytes handed back to the OS with madvise or munmap */
  uint64_t segment_count;      /* live segments (now) */
  uint64_t large_count;        /* live large blocks, mapped one each (now) */
  uint64_t large_bytes;        /* bytes mapped by live large blocks (now) */
  uint64_t heap_count;         /* thread heaps ever created; exited threads' heaps are reused */
  uint64_t thread_count;       /* heaps owned by a live thread (now) */
  uint64_t flush_count;        /* remote-free batches handed to owners */
  uint64_t collect_count;      /* remote-free batches taken back by owners */
  uint64_t refill_count;       /* malloc slow paths: a size class's current page ran dry */
};

void *hz_malloc(size_t size);
void hz_free(void *ptr);
void *hz_calloc(size_t count, size_t size);
void *hz_realloc(void *ptr, size_t size);
/* Any power-of-two alignment, else NULL with EINVAL (C17, whatever the C
 * library's aligned_alloc does); a size that is not a multiple of it is allowed. */
void *hz_aligned_alloc(size_t alignment, size_t size);
/* Usable bytes of a live block (>= the size asked for); 0 for NULL. */
size_t hz_usable_size(const void *ptr);
/* 1 if ptr is the start of a block hakozuna handed out and that is not known
 * to be freed, else 0. Never aborts, whatever the pointer. */
int hz_owns(const void *ptr);

/* Checked calls: they never abort, whatever the pointer, and do nothing with
 * one that is not a live block. A freed large block (> 256 KiB) is
 * unmapped or cached, so it reads as HZ_INVALID rather than HZ_FREED. */
#define HZ_OK 0      /* freed (or ptr was NULL) */
#define HZ_INVALID 1 /* not the start of a block hakozuna handed out */
#define HZ_FREED 2   /* a block that is free already */
/* hz_free that returns HZ_OK, HZ_INVALID or HZ_FREED instead of aborting. */
int hz_free_checked(void *ptr);
/* Usable bytes of a live block; 0 for NULL or any other pointer. */
size_t hz_usable_size_checked(const void *ptr);
/* Batches: one call for many blocks.
 * hz_malloc_many fills out[0..count) with blocks of size bytes and returns
 * how many it allocated: count, or fewer when memory ran out (errno ENOMEM;
 * out[0..returned) are valid blocks, the rest is not written).
 * hz_free_many frees ptrs[0..count) as hz_free_checked does (a NULL entry
 * is skipped) and stops at the first entry that is not a live block:
 * returns the index of that entry, or count when all were freed. */
size_t hz_malloc_many(size_t size, void **out, size_t count);
size_t hz_free_many(void *const *ptrs, size_t count);
/* Fills at most out_size bytes of *out; returns the bytes written
 * (0 when out is NULL or out_size < 8). */
size_t hz_stats(struct hz_stats *out, size_t out_size);
/* Flushes this thread's pending remote frees, takes back frees other threads
 * handed over, and returns empty memory to the OS. Returns the bytes returned. */
size_t hz_collect(void);
/* Name of the active policy lane: "balanced", "scale", "compact" or "hardened". */
const char *hz_policy_name(void);
/* Library version, e.g. "0.1.0". */
const char *hz_version(void);

#ifdef __cplusplus
}
#endif

#endif /* HAKOZUNA_H */
