// The A/B verdict and the paired-change statistics it rests on.
import { deepStrictEqual as eq, ok } from "node:assert";
import { type Change, pairedChange } from "./stats.ts";
import { verdict } from "./verdict.ts";

/** A change known precisely (interval ±0.2% around it). */
const at = (d: number): Change => ({
  delta: d,
  lo: d - 0.002,
  hi: d + 0.002,
  confidence: 0.95,
});
const v = (o: Record<string, Change | null>) =>
  verdict(new Map(Object.entries(o)));

Deno.test("a loss beyond 1% on main r50, dist or cache-thrash is NO-GO", () => {
  eq(
    v({ "mixed-main-r50": at(-0.02), "mixed-main-r90": at(0.2) }).verdict,
    "NO-GO",
  );
  eq(
    v({ "mixed-main-r50": at(0), "dist-app": at(-0.02), "larson": at(0.1) })
      .verdict,
    "NO-GO",
  );
  eq(
    v({ "mixed-main-r50": at(0), "dist-uniform": at(-0.02) }).verdict,
    "NO-GO",
  );
  eq(
    v({
      "mixed-main-r50": at(0),
      "cache-thrash": at(-0.05),
      "xmalloc": at(0.3),
    }).verdict,
    "NO-GO",
  );
});

Deno.test("a failed or unmeasured main r50 is NO-GO", () => {
  eq(v({ "mixed-main-r50": null, "larson": at(0.1) }).verdict, "NO-GO");
  eq(v({ "larson": at(0.1) }).verdict, "NO-GO");
});

Deno.test("main r50 within 1% and another gain is GO; other losses only warn", () => {
  eq(
    v({ "mixed-main-r50": at(-0.007), "mixed-main-r90": at(0.03) }).verdict,
    "GO",
  );
  const r = v({
    "mixed-main-r50": at(0.004),
    "mixed-main-r0": at(0.02),
    "realloc": at(-0.2),
  });
  eq(r.verdict, "GO");
  ok(r.warnings[0].startsWith("losses elsewhere: realloc -20.0%"));
});

Deno.test("nothing beyond 1% either way is NEUTRAL", () => {
  eq(
    v({
      "mixed-main-r50": at(0.005),
      "dist-app": at(-0.007),
      "larson": at(0.007),
    }).verdict,
    "NEUTRAL",
  );
});

Deno.test("noise wider than the threshold is INCONCLUSIVE, not a loss or a gain", () => {
  const wide = (d: number): Change => ({
    delta: d,
    lo: d - 0.2,
    hi: d + 0.2,
    confidence: 0.95,
  });
  eq(
    v({
      "mixed-main-r50": wide(-0.09),
      "dist-app": wide(-0.2),
      "xmalloc": wide(0.1),
    }).verdict,
    "INCONCLUSIVE",
  );
  eq(
    v({ "mixed-main-r50": at(0), "larson": wide(0.1) }).verdict,
    "INCONCLUSIVE",
  );
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
  // Few rounds: the whole min–max range of the ratios.
  const few = pairedChange([10, 10, 10], [9, 10, 12]);
  ok(
    Math.abs(few.lo - -0.1) < 1e-12 && Math.abs(few.hi - 0.2) < 1e-12 &&
      few.delta === 0,
  );
});
