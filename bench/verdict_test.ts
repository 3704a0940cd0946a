// The A/B verdict on speed and memory, and the paired-change statistics it rests on.
import { deepStrictEqual as eq, ok } from "node:assert";
import { type Change, familyConfidence, pairedChange } from "./stats.ts";
import { verdict, type WorkloadChange } from "./verdict.ts";

/** A change known precisely (interval ±0.2% around it). */
const at = (d: number): Change => ({
  delta: d,
  lo: d - 0.002,
  hi: d + 0.002,
  confidence: 0.95,
});
/** A change whose interval is ±20% wide: it cannot decide anything. */
const wide = (d: number): Change => ({
  delta: d,
  lo: d - 0.2,
  hi: d + 0.2,
  confidence: 0.95,
});
/** Throughput change t; peak RSS unchanged unless given. */
const w = (t: Change | null, rss: Change | null = at(0)): WorkloadChange => ({
  throughput: t,
  rss: t ? rss : null,
});
const v = (o: Record<string, WorkloadChange>) =>
  verdict(new Map(Object.entries(o)));
/** The four guarded workloads with no change, plus `more`. */
const full = (more: Record<string, WorkloadChange> = {}) => ({
  "mixed-main-r50": w(at(0)),
  "dist-app": w(at(0)),
  "dist-uniform": w(at(0)),
  "cache-thrash": w(at(0)),
  ...more,
});

Deno.test("a throughput loss beyond 1% on main r50, dist or cache-thrash is NO-GO", () => {
  eq(v(full({ "mixed-main-r50": w(at(-0.02)) })).verdict, "NO-GO");
  eq(
    v(full({ "dist-app": w(at(-0.02)), larson: w(at(0.1)) })).verdict,
    "NO-GO",
  );
  eq(v(full({ "dist-uniform": w(at(-0.02)) })).verdict, "NO-GO");
  eq(
    v(full({ "cache-thrash": w(at(-0.05)), xmalloc: w(at(0.3)) })).verdict,
    "NO-GO",
  );
});

Deno.test("a failed guarded workload is NO-GO", () => {
  eq(
    v(full({ "mixed-main-r50": w(null), larson: w(at(0.1)) })).verdict,
    "NO-GO",
  );
});

Deno.test("peak RSS growth beyond 1% without a throughput gain there is NO-GO", () => {
  const r = v(full({ larson: w(at(0), at(0.05)) }));
  eq(r.verdict, "NO-GO");
  ok(r.reasons[0].includes("peak RSS larson 1.050×"), r.reasons[0]);
  // On a guarded workload too.
  eq(v(full({ "dist-app": w(at(0.005), at(0.02)) })).verdict, "NO-GO");
  // A throughput gain on the same workload pays for it.
  eq(v(full({ larson: w(at(0.1), at(0.05)) })).verdict, "GO");
  // A gain elsewhere does not.
  eq(
    v(full({ larson: w(at(0), at(0.05)), xmalloc: w(at(0.2)) })).verdict,
    "NO-GO",
  );
});

Deno.test("peak RSS shrinking beyond 1% with no throughput loss is a GO", () => {
  const r = v(full({ "mixed-main-r90": w(at(0.004), at(-0.3)) }));
  eq(r.verdict, "GO");
  ok(r.reasons[0].includes("peak RSS mixed-main-r90 0.700×"), r.reasons[0]);
});

Deno.test("a throughput loss beyond 1% on any other workload is NO-GO too", () => {
  const r = v(full({ "mixed-main-r0": w(at(0.02)), realloc: w(at(-0.2)) }));
  eq(r.verdict, "NO-GO");
  ok(r.reasons[0].includes("throughput realloc 0.800×"), r.reasons[0]);
});

Deno.test("main r50 within 1% and another gain is GO; for a policy lane other losses only warn", () => {
  eq(
    v(full({ "mixed-main-r50": w(at(-0.007)), "mixed-main-r90": w(at(0.03)) }))
      .verdict,
    "GO",
  );
  const r = verdict(
    new Map(
      Object.entries(
        full({ "mixed-main-r0": w(at(0.02)), realloc: w(at(-0.2)) }),
      ),
    ),
    { policyLane: true },
  );
  eq(r.verdict, "GO");
  ok(
    r.warnings[0].startsWith("throughput loss elsewhere: realloc 0.800×"),
    r.warnings[0],
  );
});

Deno.test("nothing beyond 1% either way, in speed or memory, is NEUTRAL", () => {
  eq(
    v(full({ larson: w(at(0.007), at(-0.005)), "dist-app": w(at(-0.007)) }))
      .verdict,
    "NEUTRAL",
  );
});

Deno.test("noise wider than the threshold is INCONCLUSIVE, not a loss or a gain", () => {
  eq(
    v(full({
      "mixed-main-r50": w(wide(-0.09)),
      "dist-app": w(wide(-0.2)),
      xmalloc: w(wide(0.1)),
    })).verdict,
    "INCONCLUSIVE",
  );
  eq(v(full({ larson: w(wide(0.1)) })).verdict, "INCONCLUSIVE");
  // Peak RSS that may have grown by more than 1%.
  eq(v(full({ larson: w(at(0), wide(0)) })).verdict, "INCONCLUSIVE");
});

Deno.test("an --only run judges only what it measured, never NO-GO for the rest", () => {
  // Both measured intervals cross 1: nothing shown either way.
  const r = v({ larson: w(wide(0.02)), "dist-app": w(wide(-0.01)) });
  ok(r.verdict !== "NO-GO", r.reasons.join("; "));
  eq(r.unmeasured, ["mixed-main-r50", "dist-uniform", "cache-thrash"]);
  ok(r.warnings.some((x) => x.startsWith("partial run: mixed-main-r50")));
  // A gain on what it measured is still reported, with the partial warning.
  const g = v({ larson: w(at(0.1)) });
  eq(g.verdict, "GO");
  ok(g.warnings.some((x) => x.includes("a decision needs the full set")));
  // A loss it did measure still counts.
  eq(v({ "dist-app": w(at(-0.05)) }).verdict, "NO-GO");
});

Deno.test("pairedChange: median of per-round ratios and an order-statistic interval", () => {
  const a = Array(20).fill(100);
  const b = [
    90,
    95,
    96,
    97,
    98,
    99,
    100,
    100,
    101,
    101,
    102,
    102,
    103,
    103,
    104,
    104,
    105,
    106,
    108,
    120,
  ];
  const c = pairedChange(a, b);
  ok(Math.abs(c.delta - 0.015) < 1e-12); // median of 1.01 and 1.02
  // n = 20: [r(6), r(15)], 95.9% coverage
  ok(Math.abs(c.lo - -0.01) < 1e-12 && Math.abs(c.hi - 0.04) < 1e-12);
  ok(Math.abs(c.confidence - 0.9586) < 1e-3);
  // Twenty intervals judged together: each at 99.75% or more, [r(3), r(18)].
  const wide = pairedChange(a, b, familyConfidence(20));
  ok(Math.abs(wide.lo - -0.04) < 1e-12 && Math.abs(wide.hi - 0.06) < 1e-12);
  ok(wide.confidence >= 0.9975);
  // Few rounds: the whole min–max range of the ratios.
  const few = pairedChange([10, 10, 10], [9, 10, 12]);
  ok(
    Math.abs(few.lo - -0.1) < 1e-12 && Math.abs(few.hi - 0.2) < 1e-12 &&
      few.delta === 0,
  );
});
