/**
 * The A/B verdict on speed and memory, applied only where the measurements
 * can carry it.
 *
 * On a shared machine the run-to-run spread of one allocator is often far
 * wider than the 1% the rule turns on (an A/A run of one library against
 * itself here showed medians 20% apart).  So each workload's change is
 * estimated from the rounds' paired runs — A and B ran next to each other in
 * every round, under the same load — as the median of the per-round ratios
 * B/A, with a distribution-free confidence interval for that median
 * (stats.ts), for throughput and for peak RSS alike.  A loss or gain counts
 * only when its interval excludes 1; where the interval is too wide to
 * decide, the verdict says so instead of guessing.
 */
import { changeText } from "./format.ts";
import type { Change } from "./stats.ts";
import { VERDICT_GUARDED, VERDICT_MAIN } from "./workloads.ts";

export type Verdict = "GO" | "NO-GO" | "NEUTRAL" | "INCONCLUSIVE";

/** The threshold of every rule: a change of more than 1%. */
export const THRESHOLD = 0.01;

/** B against A on one workload: paired changes, null when a side failed. */
export interface WorkloadChange {
  throughput: Change | null;
  rss: Change | null;
}

/** A verdict and the lines that explain it. */
export interface VerdictResult {
  verdict: Verdict;
  reasons: string[];
  warnings: string[];
  /** Guarded workloads this run did not measure (an `--only` run). */
  unmeasured: string[];
}

const grew = (c: Change) => c.delta > THRESHOLD && c.lo > 0;
const shrank = (c: Change) => c.delta < -THRESHOLD && c.hi < 0;
const text = (n: string, c: Change) => `${n} ${changeText(c, 3)}`;

/**
 * The rule on B against A (docs/DESIGN.md, "How a change is judged"), per
 * workload:
 * - NO-GO: any workload loses more than 1% of throughput (or fails); or any
 *   workload's peak RSS grows by more than 1% without a throughput gain on
 *   that workload.  For a policy lane users choose (`policyLane`), only the
 *   main lane at R=50, the size-distribution workloads and cache-thrash
 *   count for throughput; losses elsewhere are warnings.
 * - GO: none of those can have happened (the intervals rule them out) and
 *   some workload gains more than 1% of throughput or loses more than 1% of
 *   peak RSS.
 * - NEUTRAL: every interval, throughput and RSS, lies within ±1%.
 * - INCONCLUSIVE: nothing bad shown, but the intervals are too wide to rule
 *   it out, or to show a gain: more rounds or a quieter machine are needed.
 * Only measured workloads are judged: one of the four core workloads that
 * an `--only` run left out is listed in `unmeasured`, never counted as a
 * loss.
 */
export function verdict(
  changes: Map<string, WorkloadChange>,
  opts: { policyLane?: boolean } = {},
): VerdictResult {
  const core = [VERDICT_MAIN, ...VERDICT_GUARDED];
  const guarded = opts.policyLane
    ? core
    : [...new Set([...core, ...changes.keys()])];
  const unmeasured = core.filter((n) => !changes.has(n));
  const entries = [...changes];
  const bad: string[] = [];
  const unsure: string[] = [];
  const gains: string[] = [];
  const warnings: string[] = [];
  for (const [n, { throughput: t, rss }] of entries) {
    const isGuarded = guarded.includes(n);
    if (!t || !rss) {
      if (isGuarded) bad.push(`${n} failed`);
      else warnings.push(`${n} failed`);
      continue;
    }
    const speedGain = t.delta > THRESHOLD && t.lo > 0;
    if (isGuarded) {
      if (shrank(t)) bad.push(`throughput ${text(n, t)}`);
      else if (t.lo < -THRESHOLD) unsure.push(`throughput ${text(n, t)}`);
    } else if (shrank(t)) {
      warnings.push(`throughput loss elsewhere: ${text(n, t)}`);
    }
    if (grew(rss) && !speedGain) bad.push(`peak RSS ${text(n, rss)}`);
    else if (rss.hi > THRESHOLD && !speedGain && !grew(rss)) {
      unsure.push(`peak RSS ${text(n, rss)}`);
    }
    if (speedGain) gains.push(`throughput ${text(n, t)}`);
    if (shrank(rss) && !shrank(t)) gains.push(`peak RSS ${text(n, rss)}`);
  }
  if (unmeasured.length) {
    warnings.push(
      `partial run: ${unmeasured.join(", ")} not measured, so not judged; ` +
        "a decision needs the full set",
    );
  }
  const result = (verdict: Verdict, reasons: string[]): VerdictResult => ({
    verdict,
    reasons,
    warnings,
    unmeasured,
  });
  if (bad.length) {
    return result("NO-GO", [`beyond 1%: ${bad.join(", ")}`]);
  }
  if (unsure.length) {
    return result("INCONCLUSIVE", [
      `no loss shown, but the noise is too wide to rule out one beyond 1%: ${
        unsure.join(", ")
      }; run more rounds (--rounds N) when the machine is quieter`,
    ]);
  }
  if (gains.length) return result("GO", [`gains: ${gains.join(", ")}`]);
  const still = (c: Change) => c.lo >= -THRESHOLD && c.hi <= THRESHOLD;
  if (
    entries.every(([, c]) =>
      c.throughput && c.rss && still(c.throughput) && still(c.rss)
    )
  ) {
    return result("NEUTRAL", [
      "no workload moves by more than 1%, in throughput or peak RSS",
    ]);
  }
  return result("INCONCLUSIVE", [
    "no loss shown, but no gain stands out from the noise; run more rounds to tell",
  ]);
}
