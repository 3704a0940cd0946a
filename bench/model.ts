/**
 * The results model of the benchmark harness: what one run of `compare`
 * measured and on what, as it is written to `<stem>.json` and read by the
 * renderers. Types and the summary of runs only; no I/O.
 */
import { median } from "./stats.ts";

/** An allocator to measure: a library to preload, or glibc's own malloc. */
export interface Allocator {
  name: string;
  /** Library to LD_PRELOAD; null runs the program on glibc's malloc. */
  lib: string | null;
  /** Extra environment for the program (e.g. HZ_POLICY). */
  env?: Record<string, string>;
}

/** One measured run of one workload under one allocator. */
export interface Run {
  /** The workload's own figure (its `ops/s=`); for a command, 1 / wall s. */
  value: number;
  wallS: number;
  /** User + system CPU time: less disturbed than wall time by other load. */
  cpuS: number;
  peakRssKiB: number;
  /**
   * The two-CPU probe's round trip just before and just after the run, in
   * ns (workloads of two or more threads, where the probe could run): what
   * the host's placement of the CPUs was around this run, beside the
   * fastest one in `Machine.load.placement`.
   */
  placementNs?: [number, number];
}

/** The runs of one workload under one allocator, and their summary. */
export interface AllocatorResult {
  /** Median, min and max of the runs' values; null when the workload failed. */
  median: number | null;
  min: number | null;
  max: number | null;
  /** One per measured round, in round order (paired with the other allocators' runs). */
  runs: Run[];
  /** Median of the runs' peak RSS. */
  peakRssKiB: number | null;
  /** Why the workload failed under this allocator (its runs stop there). */
  error?: string;
}

/** One workload under every allocator. */
export interface WorkloadResult {
  name: string;
  /** Program and arguments, identical for every allocator. */
  args: string[];
  unit: string;
  results: Record<string, AllocatorResult>;
}

/** A library a run used: where it was, its hash, and its package if any. */
export interface LibraryInfo {
  path: string;
  sha256: string;
  /** Debian package and version owning the file (`dpkg-query -S`), if any. */
  package?: string;
  version?: string;
}

/** Load averages (1, 5, 15 minutes) before, during and after a run. */
export interface Load {
  before: number[];
  /** 1-minute load average sampled before each measured run. */
  during: number[];
  after: number[];
  /** Above this 1-minute load before the run the figures are not trusted (half the cores). */
  limit: number;
  /**
   * Cores' worth of CPU that other work used during the measured runs (the
   * machine's busy time minus the runs' and the runner's own), or null
   * where /proc/stat could not be read.
   */
  otherCores?: number | null;
  /** Above this much other work the figures are not trusted (a quarter of the cores). */
  otherLimit?: number;
  /**
   * Where the host placed the two CPUs the multi-threaded runs used: the
   * fastest round trip between them that the probe (bench/placement.c)
   * read, and how many runs were repeated because a probe around them read
   * more than `farFactor` times that. Absent where the probe could not run
   * (fewer than two CPUs) or nothing multi-threaded was measured.
   */
  placement?: Placement;
}

/** See `Load.placement`. */
export interface Placement {
  fastestNs: number;
  farFactor: number;
  repeatedRuns: number;
}

/** What the figures were measured on and how. */
export interface Machine {
  cpu: string;
  cores: number;
  kernel: string;
  glibc: string;
  deno: string;
  /** `zig version` of the toolchain that built hakozuna, when found. */
  zig: string | null;
  /** `git describe`-like commit of this checkout (`+dirty` with local changes). */
  commit: string | null;
  date: string;
  load: Load;
  /** One line saying how the figures were taken. */
  method: string;
  rounds: number;
  warmup: number;
  scale: "full" | "quick";
  /**
   * What the ratios compare (analysis.ts): subject ÷ each baseline. Suite:
   * hakozuna ÷ each peer; A/B: B ÷ A; command: each allocator ÷ glibc.
   */
  subject: string;
  baselines: string[];
  libraries: Record<string, LibraryInfo | null>;
  /** Allocators that were asked for but not found, with why. */
  missing?: Record<string, string>;
  /** A/B only: what A and B are. */
  sides?: { A: string; B: string };
}

/** Everything one run of the harness measured. */
export interface Results {
  mode: "suite" | "ab" | "command";
  machine: Machine;
  allocators: string[];
  workloads: WorkloadResult[];
  /**
   * The level each interval of the report aims at: 0.95 when absent; an A/B
   * run sets it so that all of its intervals hold together at 95%
   * (`familyConfidence`), since its verdict rests on all of them at once.
   */
  confidence?: number;
}

/** Summary of an allocator's runs of one workload. */
export function summarize(runs: Run[], error?: string): AllocatorResult {
  if (error !== undefined || runs.length === 0) {
    return {
      median: null,
      min: null,
      max: null,
      runs,
      peakRssKiB: null,
      error: error ?? "no runs",
    };
  }
  const values = runs.map((r) => r.value);
  return {
    median: median(values),
    min: Math.min(...values),
    max: Math.max(...values),
    runs,
    peakRssKiB: median(runs.map((r) => r.peakRssKiB)),
  };
}

/** Half the min–max range of the runs relative to their median (0.1 = ±10%). */
export function spreadOf(r: AllocatorResult): number | null {
  return r.median ? (r.max! - r.min!) / r.median / 2 : null;
}

/** Whether the load stayed at or below the limit before, during and after. */
export function loadWasLow(load: Load): boolean {
  // With the other work measured, the load average during and after the run
  // is the workloads' own: only the load before the run and the other work
  // decide. Without it (an older report), the load average all along.
  if (load.otherCores !== undefined && load.otherCores !== null) {
    return (load.before[0] ?? 0) <= load.limit &&
      load.otherCores <= (load.otherLimit ?? load.limit);
  }
  return maxLoad(load) <= load.limit;
}

/** The highest 1-minute load average seen around and during the run. */
export function maxLoad(load: Load): number {
  return Math.max(load.before[0] ?? 0, load.after[0] ?? 0, ...load.during);
}
