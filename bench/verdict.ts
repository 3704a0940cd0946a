/**
 * The A/B verdict: the seeds' GO/NO-GO rule, applied only where the
 * measurements can carry it.
 *
 * On a shared machine the run-to-run spread of one allocator is often far
 * wider than the 1% the rule turns on (an A/A run of one library against
 * itself here showed medians 20% apart).  So each workload's change is
 * estimated from the rounds' paired runs — A and B ran next to each other in
 * every round, under the same load — as the median of the per-round ratios
 * B/A, with a distribution-free confidence interval for that median.  A loss
 * or gain counts only when its interval excludes zero; where the interval is
 * too wide to decide, the verdict says so instead of guessing.
 */
import type { Change } from "./stats.ts";
import { VERDICT_GUARDED, VERDICT_MAIN } from "./workloads.ts";

export type Verdict = "GO" | "NO-GO" | "NEUTRAL" | "INCONCLUSIVE";

const THRESHOLD = 0.01;

export function pct(d: number): string {
  return `${d >= 0 ? "+" : ""}${(d * 100).toFixed(1)}%`;
}

export function interval(c: Change): string {
  return `[${pct(c.lo)}, ${pct(c.hi)}]`;
}

/** A loss: the median change is below −1% and the interval lies below 0. */
function isLoss(c: Change): boolean {
  return c.delta < -THRESHOLD && c.hi < 0;
}

function isGain(c: Change): boolean {
  return c.delta > THRESHOLD && c.lo > 0;
}

/**
 * The seeds' rule on B against A, per workload change (null when a side
 * failed):
 * - NO-GO: main R=50, a size-distribution workload or cache-thrash loses
 *   more than 1% (or fails);
 * - GO: none of those can have lost more than 1% (their intervals stay
 *   above −1%) and some workload gains more than 1%;
 * - NEUTRAL: every interval lies within ±1%: nothing moved;
 * - INCONCLUSIVE: no loss shown, but the noise is too wide to show that
 *   those hold or that anything gains: more rounds or a quieter machine
 *   are needed.
 * `warnings` lists losses on the other workloads: the seeds' rule lets them
 * pass, DESIGN.md §3 does not (unless B is a policy lane users choose).
 */
export function verdict(
  changes: Map<string, Change | null>,
): { verdict: Verdict; reasons: string[]; warnings: string[] } {
  const guarded = [VERDICT_MAIN, ...VERDICT_GUARDED];
  const lossesOf = (names: string[]) =>
    names.filter((n) => changes.has(n)).flatMap((n) => {
      const c = changes.get(n);
      if (c == null) return [`${n} failed`];
      return isLoss(c) ? [`${n} ${pct(c.delta)} ${interval(c)}`] : [];
    });
  const losses = lossesOf(guarded);
  const main = changes.get(VERDICT_MAIN);
  if (main === undefined) losses.push(`${VERDICT_MAIN} was not measured`);
  const other = lossesOf(
    [...changes.keys()].filter((n) => !guarded.includes(n)),
  );
  const warnings = other.length
    ? [`losses elsewhere: ${other.join(", ")}`]
    : [];
  if (losses.length || !main) {
    return {
      verdict: "NO-GO",
      reasons: [`loss beyond 1%: ${losses.join(", ")}`],
      warnings,
    };
  }
  const mainText = `${VERDICT_MAIN} ${pct(main.delta)} ${interval(main)}`;
  const unsure = guarded.filter((n) => {
    const c = changes.get(n);
    return c != null && c.lo < -THRESHOLD;
  }).map((n) => `${n} ${interval(changes.get(n)!)}`);
  if (unsure.length) {
    return {
      verdict: "INCONCLUSIVE",
      reasons: [
        `no loss shown, but the noise is too wide to rule out one beyond 1%: ${
          unsure.join(", ")
        }; ` +
        "run more rounds (--rounds N) when the machine is quieter",
      ],
      warnings,
    };
  }
  const gains = [...changes].filter(([, c]) => c != null && isGain(c))
    .map(([n, c]) => `${n} ${pct(c!.delta)} ${interval(c!)}`);
  if (gains.length) {
    return {
      verdict: "GO",
      reasons: [
        `${mainText} (no loss beyond 1%)`,
        `gains: ${gains.join(", ")}`,
      ],
      warnings,
    };
  }
  const still = [...changes.values()].every((c) =>
    c != null && c.lo >= -THRESHOLD && c.hi <= THRESHOLD
  );
  if (still) {
    return {
      verdict: "NEUTRAL",
      reasons: [`${mainText}; no workload moves by more than 1%`],
      warnings,
    };
  }
  return {
    verdict: "INCONCLUSIVE",
    reasons: [
      `${mainText} holds, but no gain stands out from the noise; run more rounds to tell`,
    ],
    warnings,
  };
}
