/**
 * The benchmark workloads: the one list that both the runner (`compare.ts`)
 * and the `deno bench` files use, so they always measure the same thing.
 *
 * Each workload is one of the C programs in this directory (built into
 * `build/bench/` by `make bench-programs`) with fixed arguments; every
 * allocator runs it with identical arguments.  Every program prints its own
 * throughput as `ops/s=X`, so higher is better for all of them.
 *
 * Sizes suit a 2-core machine: the counts were set for runs of about
 * 0.3-0.5 s; hakozuna now runs them in 0.04-0.14 s on an idle machine (its
 * median wall times in bench/results/latest.json).  Longer counts (up to
 * three times, the large-block lanes 10-15 times) measured the 8-thread and
 * large-block lanes much faster under every allocator (thread starts, first
 * touches of fresh memory and cache warm-up weigh less), the others within
 * 0-14%, but did not narrow the spreads, and took 38 minutes instead of 20
 * at 20 rounds.  What sets the spreads: on the 2-thread remote lanes the
 * host's placement of the two CPUs, on the 8-thread remote lanes how many
 * blocks the rings hold (bench/LEDGER.md, 2026-12-06).  The runner prints
 * its estimate, from `typicalS`, when it starts.
 */
import { fileURLToPath } from "node:url";
import { join } from "node:path";

/** Repository root (this file lives in `<root>/bench/`). */
export const ROOT: string = fileURLToPath(new URL("..", import.meta.url));
/** Where the Makefile puts the workload programs and the rusage helper. */
export const BUILD_DIR: string = join(ROOT, "build", "bench");

export interface Workload {
  /** Stable name, used in reports, JSON and `--only`. */
  name: string;
  /** Program in BUILD_DIR. */
  program: string;
  args: string[];
  /** What the program's `ops/s=` figure counts; higher is better. */
  unit: "ops/s";
  /**
   * Threads the program runs at once: a workload of two or more passes
   * memory between CPUs, so the runner checks where the CPUs were placed
   * around each of its runs (`LoadMonitor.measure`).
   */
  threads: number;
  description: string;
  /**
   * Typical seconds of one run, averaged over the five allocators on an idle
   * 2-core machine: only for the runner's estimate of how long it will take.
   */
  typicalS: number;
}

/** `quick` divides every iteration count by 4 (QUICK=1, `deno bench`). */
export type Scale = "full" | "quick";

const THREADS = 2;

/**
 * The mixed-workload lanes (random_mixed_mt_remote): size range, and
 * iterations per thread at R = 0, 50, 90 for 2 and 8 threads, and at 1
 * thread (where every free is local, so no R), sized as the header says.
 * 8 threads on a 2-core machine is the oversubscribed case.
 */
const LANES = [
  {
    lane: "guard",
    min: 16,
    max: 2048,
    t1: 6_000_000,
    t2: [6_000_000, 2_000_000, 1_600_000],
    t8: [1_500_000, 400_000, 350_000],
  },
  {
    lane: "main",
    min: 16,
    max: 32768,
    t1: 3_000_000,
    t2: [3_200_000, 1_200_000, 1_000_000],
    t8: [500_000, 150_000, 100_000],
  },
  {
    lane: "cross128",
    min: 16,
    max: 131072,
    t1: 1_000_000,
    t2: [1_500_000, 700_000, 500_000],
    t8: [160_000, 60_000, 40_000],
  },
] as const;
const REMOTE_PCTS = [0, 50, 90] as const;

/** Name of the workload the A/B verdict hinges on: the main lane, 2 threads, R=50. */
export const VERDICT_MAIN = "mixed-main-r50";
/** Workloads where a loss of more than 1% is NO-GO (besides VERDICT_MAIN). */
export const VERDICT_GUARDED = ["dist-app", "dist-uniform", "cache-thrash"];

export function workloads(scale: Scale = "full"): Workload[] {
  const n = (full: number) =>
    String(scale === "quick" ? Math.max(1, Math.round(full / 4)) : full);
  const t = scale === "quick" ? 0.25 : 1;
  const list: Workload[] = [];
  const mixed = (
    name: string,
    threads: number,
    iters: number,
    min: number,
    max: number,
    r: number,
  ): Workload => ({
    name,
    program: "random_mixed_mt_remote",
    args: [
      String(threads),
      n(iters),
      "400",
      String(min),
      String(max),
      String(r),
      "65536",
    ],
    unit: "ops/s",
    threads,
    description: `random_mixed_mt_remote, ${threads} thread${
      threads > 1 ? "s" : ""
    }, ${min}-${max} B, ${r}% of frees remote`,
    typicalS: (threads === 1 ? 0.3 : 0.5) * t,
  });
  const pair = (bytes: number, path: string): Workload => ({
    name: `pair-${bytes}`,
    program: "malloc_pair",
    args: [n(30_000_000), String(bytes)],
    unit: "ops/s",
    threads: 1,
    description:
      `${path}: malloc(${bytes}), one byte written, free, on one thread (ops = pairs)`,
    typicalS: 0.3 * t,
  });
  for (const { lane, min, max, t1 } of LANES) {
    list.push(mixed(`mixed-${lane}-t1`, 1, t1, min, max, 0));
  }
  for (const { lane, min, max, t2 } of LANES) {
    for (const [ri, r] of REMOTE_PCTS.entries()) {
      list.push(mixed(`mixed-${lane}-r${r}`, 2, t2[ri], min, max, r));
    }
  }
  for (const { lane, min, max, t8 } of LANES) {
    for (const [ri, r] of REMOTE_PCTS.entries()) {
      list.push(mixed(`mixed-${lane}-r${r}-t8`, 8, t8[ri], min, max, r));
    }
  }
  list.push(
    {
      name: "dist-app",
      program: "size_dist",
      args: ["app", String(THREADS), n(4_000_000), "2000"],
      unit: "ops/s",
      threads: THREADS,
      description:
        "application-like size distribution (mostly small, thin tail to 256 KiB)",
      typicalS: 0.35 * t,
    },
    {
      name: "dist-uniform",
      program: "size_dist",
      args: ["uniform", String(THREADS), n(2_000_000), "2000"],
      unit: "ops/s",
      threads: THREADS,
      description: "uniform sizes 16-8192 B",
      typicalS: 0.35 * t,
    },
    {
      name: "cache-thrash",
      program: "cache_thrash",
      args: [String(THREADS), n(1_000_000), "50", "8"],
      unit: "ops/s",
      threads: THREADS,
      description: "Hoard cache-thrash: active false sharing of 8-byte blocks",
      typicalS: 0.3 * t,
    },
    {
      name: "cache-scratch",
      program: "cache_scratch",
      args: [String(THREADS), n(1_000_000), "50", "8"],
      unit: "ops/s",
      threads: THREADS,
      description:
        "Hoard cache-scratch: passive false sharing after a remote free",
      typicalS: 0.3 * t,
    },
    {
      name: "larson",
      program: "larson",
      args: [String(THREADS), "40", n(160_000), "1000", "16", "1024"],
      unit: "ops/s",
      threads: THREADS,
      description:
        "larson server: random replacement, worker threads replaced 40 times",
      typicalS: 0.4 * t,
    },
    {
      name: "xmalloc",
      program: "xmalloc",
      args: ["1", n(3_000_000), "16", "1024", "100"],
      unit: "ops/s",
      threads: 2,
      description:
        "xmalloc producer/consumer: every block freed by another thread",
      typicalS: 0.6 * t,
    },
    {
      name: "realloc",
      program: "realloc_grow",
      args: [String(THREADS), n(300_000), "64", "4096", "262144"],
      unit: "ops/s",
      threads: THREADS,
      description:
        "realloc growth: strings by 1-32 B to 4 KiB, buffers doubling to 256 KiB",
      typicalS: 0.4 * t,
    },
    pair(64, "hot path"),
    pair(4096, "medium hot path"),
    {
      name: "large-churn",
      program: "large_churn",
      args: [n(1_000), "16", "262144", "4194304"],
      unit: "ops/s",
      threads: 1,
      description:
        "large blocks of random size 256 KiB-4 MiB, 16 live, replaced at random (also prints faults/op)",
      typicalS: 0.3 * t,
    },
    {
      name: "large-realloc",
      program: "large_churn",
      args: [n(1_000), "16", "262144", "4194304", "50"],
      unit: "ops/s",
      threads: 1,
      description:
        "as large-churn, half of the replacements a realloc of the block to its new size",
      typicalS: 0.3 * t,
    },
  );
  return list;
}

/** Absolute path of a workload's program. */
export function programPath(w: Workload): string {
  return join(BUILD_DIR, w.program);
}
