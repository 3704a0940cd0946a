/**
 * The statistics of the reports and the A/B verdict: medians, and the
 * change of one allocator against another from paired runs.
 */

/** Median of a non-empty list. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** B's change against A (B/A − 1) and its confidence interval. */
export interface Change {
  delta: number;
  lo: number;
  hi: number;
  /** Confidence of [lo, hi] (at least the level asked for, given enough rounds). */
  confidence: number;
}

/**
 * The level each of `intervals` intervals needs so that all of them hold
 * together with probability `family` (Bonferroni). An A/B run judges two
 * intervals per workload at once; at 95% each, one of 60 would exclude 1×
 * by chance about every other run, and a change that cannot touch memory
 * would be refused for a peak RSS that merely wandered.
 */
export function familyConfidence(intervals: number, family = 0.95): number {
  return 1 - (1 - family) / Math.max(1, intervals);
}

/**
 * How many intervals a report judges together: a throughput and a peak-RSS
 * interval per workload and baseline.
 */
export function judgedIntervals(workloads: number, baselines = 1): number {
  return 2 * workloads * baselines;
}

/**
 * Median of the paired ratios b[i]/a[i] − 1, with the order-statistic
 * interval for a median: [r(k), r(n−k+1)] for the largest k with
 * P(Binomial(n, 1/2) < k) ≤ (1 − confidence)/2 (k ≥ 1, so with few rounds
 * it is the whole min–max range of the ratios).
 */
export function pairedChange(
  a: number[],
  b: number[],
  confidence = 0.95,
): Change {
  if (a.length !== b.length || a.length === 0) {
    throw new Error(
      `pairedChange: ${a.length} A runs against ${b.length} B runs`,
    );
  }
  const r = a.map((x, i) => b[i] / x).sort((p, q) => p - q);
  const n = r.length;
  // below[j] = P(Binomial(n, 1/2) < j)
  const below = [0];
  let pmf = 0.5 ** n;
  for (let j = 0; j < n; j++) {
    below.push(below[j] + pmf);
    pmf = (pmf * (n - j)) / (j + 1);
  }
  let k = 1;
  const tail = (1 - confidence) / 2;
  while (k + 1 <= (n + 1) / 2 && below[k + 1] <= tail) k++;
  return {
    delta: median(r) - 1,
    lo: r[k - 1] - 1,
    hi: r[n - k] - 1,
    confidence: 1 - 2 * below[k],
  };
}

/** Geometric mean of positive numbers (NaN for an empty list). */
export function geomean(xs: number[]): number {
  if (!xs.length) return NaN;
  return Math.exp(xs.reduce((s, x) => s + Math.log(x), 0) / xs.length);
}
