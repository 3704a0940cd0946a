/**
 * The benchmark workloads: the one list that both the runner (`compare.ts`)
 * and the `deno bench` files use, so they always measure the same thing.
 *
 * Each workload is one of the C programs in this directory (built into
 * `build/bench/` by `make bench-programs`) with fixed arguments; every
 * allocator runs it with identical arguments.  Every program prints its own
 * throughput as `ops/s=X`, so higher is better for all of them.
 *
 * Sizes suit a 2-core machine: two threads (one producer/consumer pair for
 * xmalloc) and iteration counts that take a few tenths of a second under the
 * slower allocators, so `make bench` stays under 10 minutes.
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
  description: string;
}

/** `quick` divides every iteration count by 4 (QUICK=1, `deno bench`). */
export type Scale = "full" | "quick";

const THREADS = "2";

/**
 * The mixed-workload lanes of the seeds: size range, and iterations per
 * thread at R = 0, 50, 90 (remote frees make a run several times slower, so
 * R=0 gets more iterations to run long enough to measure).
 */
const LANES = [
  {
    lane: "guard",
    min: 16,
    max: 2048,
    iters: [6_000_000, 1_000_000, 1_000_000],
  },
  { lane: "main", min: 16, max: 32768, iters: [2_400_000, 400_000, 400_000] },
  {
    lane: "cross128",
    min: 16,
    max: 131072,
    iters: [800_000, 200_000, 200_000],
  },
] as const;
const REMOTE_PCTS = [0, 50, 90] as const;

/** Name of the workload the A/B verdict hinges on (seeds: main lane, R=50). */
export const VERDICT_MAIN = "mixed-main-r50";
/** Workloads where a loss of more than 1% is NO-GO (besides VERDICT_MAIN). */
export const VERDICT_GUARDED = ["dist-app", "dist-uniform", "cache-thrash"];

export function workloads(scale: Scale = "full"): Workload[] {
  const n = (full: number) =>
    String(scale === "quick" ? Math.max(1, Math.round(full / 4)) : full);
  const list: Workload[] = [];
  for (const { lane, min, max, iters } of LANES) {
    for (const [ri, r] of REMOTE_PCTS.entries()) {
      list.push({
        name: `mixed-${lane}-r${r}`,
        program: "random_mixed_mt_remote",
        args: [
          THREADS,
          n(iters[ri]),
          "400",
          String(min),
          String(max),
          String(r),
          "65536",
        ],
        unit: "ops/s",
        description:
          `seeds' random_mixed_mt_remote, ${min}-${max} B, ${r}% of frees remote`,
      });
    }
  }
  list.push(
    {
      name: "dist-app",
      program: "size_dist",
      args: ["app", THREADS, n(4_000_000), "2000"],
      unit: "ops/s",
      description:
        "application-like size distribution (mostly small, thin tail to 256 KiB)",
    },
    {
      name: "dist-uniform",
      program: "size_dist",
      args: ["uniform", THREADS, n(2_000_000), "2000"],
      unit: "ops/s",
      description: "uniform sizes 16-8192 B",
    },
    {
      name: "cache-thrash",
      program: "cache_thrash",
      args: [THREADS, n(1_000_000), "50", "8"],
      unit: "ops/s",
      description: "Hoard cache-thrash: active false sharing of 8-byte blocks",
    },
    {
      name: "cache-scratch",
      program: "cache_scratch",
      args: [THREADS, n(1_000_000), "50", "8"],
      unit: "ops/s",
      description:
        "Hoard cache-scratch: passive false sharing after a remote free",
    },
    {
      name: "larson",
      program: "larson",
      args: [THREADS, "40", n(160_000), "1000", "16", "1024"],
      unit: "ops/s",
      description:
        "larson server: random replacement, worker threads replaced 40 times",
    },
    {
      name: "xmalloc",
      program: "xmalloc",
      args: ["1", n(6_000_000), "16", "1024", "100"],
      unit: "ops/s",
      description:
        "xmalloc producer/consumer: every block freed by another thread",
    },
    {
      name: "realloc",
      program: "realloc_grow",
      args: [THREADS, n(300_000), "64", "4096", "262144"],
      unit: "ops/s",
      description:
        "realloc growth: strings by 1-32 B to 4 KiB, buffers doubling to 256 KiB",
    },
  );
  return list;
}

/** Absolute path of a workload's program. */
export function programPath(w: Workload): string {
  return join(BUILD_DIR, w.program);
}
