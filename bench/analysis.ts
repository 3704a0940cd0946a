/**
 * The comparisons every report is made of, with one convention: a ratio is
 * subject ÷ baseline — hakozuna ÷ each peer in the suite, B ÷ A in an A/B —
 * taken as the median of the per-round paired ratios (stats.ts), for
 * throughput (above 1: the subject is faster) and for peak RSS (above 1:
 * the subject uses more memory).
 */
import type { Results, WorkloadResult } from "./model.ts";
import { type Change, geomean, pairedChange } from "./stats.ts";

/** The subject against one baseline on one workload; null where a side failed. */
export interface Comparison {
  workload: string;
  subject: string;
  baseline: string;
  throughput: Change | null;
  rss: Change | null;
}

/**
 * Paired change of `subject` against `baseline` on one workload, with
 * intervals at `confidence` (a report's `Results.confidence`).
 */
export function compareOn(
  w: WorkloadResult,
  subject: string,
  baseline: string,
  confidence = 0.95,
): Comparison {
  const s = w.results[subject], b = w.results[baseline];
  const ok = s && b && !s.error && !b.error &&
    s.runs.length === b.runs.length && s.runs.length > 0;
  return {
    workload: w.name,
    subject,
    baseline,
    throughput: ok
      ? pairedChange(
        b.runs.map((r) => r.value),
        s.runs.map((r) => r.value),
        confidence,
      )
      : null,
    rss: ok
      ? pairedChange(
        b.runs.map((r) => r.peakRssKiB),
        s.runs.map((r) => r.peakRssKiB),
        confidence,
      )
      : null,
  };
}

/** Which side of 1 an interval lies on, in words. */
export type Reading = "higher" | "lower" | "within noise";

/** "higher" when the whole interval is above 1, "lower" below, else noise. */
export function reading(c: Change): Reading {
  if (c.lo > 0) return "higher";
  if (c.hi < 0) return "lower";
  return "within noise";
}

/** The conclusion on throughput, as both `make bench` and `deno bench` state it. */
export function speedWord(c: Change | null, subject: string): string {
  if (!c) return "failed";
  const r = reading(c);
  return r === "higher"
    ? `${subject} faster`
    : r === "lower"
    ? `${subject} slower`
    : "within noise";
}

/** One line per baseline: geometric means over the workloads both ran. */
export interface Summary {
  baseline: string;
  workloads: number;
  throughput: number;
  rss: number;
  faster: number;
  slower: number;
  noise: number;
  failed: number;
}

/**
 * The comparisons `cs` (each with a throughput) by their throughput's
 * reading, and the geometric mean of that throughput.
 */
function tally(cs: Comparison[]) {
  const by = (r: Reading) => cs.filter((c) => reading(c.throughput!) === r);
  return {
    throughput: geomean(cs.map((c) => 1 + c.throughput!.delta)),
    faster: by("higher"),
    noise: by("within noise"),
    slower: by("lower"),
  };
}

/** The subject against each baseline over every workload. */
export function summaries(
  res: Results,
  subject: string,
  baselines: string[],
): Summary[] {
  return baselines.map((baseline) => {
    const cs = res.workloads.map((w) =>
      compareOn(w, subject, baseline, res.confidence)
    );
    const good = cs.filter((c) => c.throughput && c.rss);
    const t = tally(good);
    return {
      baseline,
      workloads: good.length,
      throughput: t.throughput,
      rss: geomean(good.map((c) => 1 + c.rss!.delta)),
      faster: t.faster.length,
      slower: t.slower.length,
      noise: t.noise.length,
      failed: cs.length - good.length,
    };
  });
}

/**
 * The subject against, on each workload, the baseline it compares worst
 * with there (the fastest of them on that workload): the headline of a
 * suite run, "ahead of every peer on every workload".
 */
export interface FastestSummary {
  /** Workloads where every side ran. */
  workloads: number;
  /** Geometric mean of the subject ÷ that baseline. */
  throughput: number;
  faster: number;
  noise: number;
  /** The workloads where the subject was slower, each against its baseline. */
  slower: Comparison[];
  /** Workloads left out because a side failed. */
  failed: number;
}

/** `FastestSummary` of the subject against `baselines`. */
export function againstFastest(
  res: Results,
  subject: string,
  baselines: string[],
): FastestSummary {
  const worst = res.workloads.map((w) => {
    const cs = baselines.map((b) => compareOn(w, subject, b, res.confidence));
    if (!cs.length || cs.some((c) => !c.throughput)) return null;
    return cs.reduce((a, c) =>
      c.throughput!.delta < a.throughput!.delta ? c : a
    );
  });
  const good = worst.filter((c): c is Comparison => c !== null);
  const t = tally(good);
  return {
    workloads: good.length,
    throughput: t.throughput,
    faster: t.faster.length,
    noise: t.noise.length,
    slower: t.slower,
    failed: worst.length - good.length,
  };
}

/** The lowest coverage among the report's intervals (they share the rounds). */
export function lowestConfidence(
  res: Results,
  subject: string,
  baselines: string[],
): number {
  const cs = res.workloads.flatMap((w) =>
    baselines.map((b) => compareOn(w, subject, b, res.confidence).throughput)
  ).filter((c): c is Change => c != null);
  return cs.length ? Math.min(...cs.map((c) => c.confidence)) : 0;
}
