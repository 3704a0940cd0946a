/*
 * cache_scratch THREADS ITERS REPS SIZE
 *
 * Passive false sharing, after the Hoard suite's cache-scratch: the main
 * thread allocates THREADS blocks of SIZE bytes back to back (so they tend to
 * share cache lines) and hands block i to thread i, which frees it and then,
 * like cache_thrash, ITERS times allocates a SIZE-byte block, writes every
 * byte REPS times, reads it back and frees it.  An allocator that gives the
 * freed neighbour back to the thread that freed it keeps threads writing into
 * one shared line.  ops = THREADS*ITERS block lifetimes.
 */
#include "bench.h"

int main(int argc, char **argv) { return hz_sharing_main(argc, argv, "cache_scratch", 1); }
