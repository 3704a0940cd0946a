/*
 * cache_thrash THREADS ITERS REPS SIZE
 *
 * Active false sharing, after the Hoard suite's cache-thrash: each thread
 * ITERS times allocates a SIZE-byte block, writes every byte of it REPS times,
 * reads it back and frees it.  An allocator that hands neighbouring bytes of
 * one cache line to different threads makes the writes ping-pong the line
 * between cores.  ops = THREADS*ITERS block lifetimes.
 */
#include "bench.h"

int main(int argc, char **argv) { return hz_sharing_main(argc, argv, "cache_thrash", 0); }
