// The A/B verdict rule of the seeds, on hand-made changes (B/A − 1).
import { deepStrictEqual as eq } from "node:assert";
import { verdict } from "./compare.ts";

const v = (o: Record<string, number | null>) =>
  verdict(new Map(Object.entries(o))).verdict;
const warnings = (o: Record<string, number | null>) =>
  verdict(new Map(Object.entries(o))).warnings;

Deno.test("a loss beyond 1% on main r50, dist or cache-thrash is NO-GO", () => {
  eq(v({ "mixed-main-r50": -0.011, "mixed-main-r90": 0.2 }), "NO-GO");
  eq(v({ "mixed-main-r50": 0, "dist-app": -0.02, "larson": 0.1 }), "NO-GO");
  eq(v({ "mixed-main-r50": 0, "dist-uniform": -0.02 }), "NO-GO");
  eq(
    v({ "mixed-main-r50": 0, "cache-thrash": -0.05, "xmalloc": 0.3 }),
    "NO-GO",
  );
});

Deno.test("a failed or unmeasured main r50 is NO-GO", () => {
  eq(v({ "mixed-main-r50": null, "larson": 0.1 }), "NO-GO");
  eq(v({ "larson": 0.1 }), "NO-GO");
});

Deno.test("main r50 within 1% and another gain is GO; losses elsewhere do not block", () => {
  eq(v({ "mixed-main-r50": -0.009, "mixed-main-r90": 0.03 }), "GO");
  eq(
    v({ "mixed-main-r50": 0.004, "mixed-main-r0": 0.02, "realloc": -0.2 }),
    "GO",
  );
  eq(warnings({ "mixed-main-r50": 0, "realloc": -0.2, "larson": 0.1 }), [
    "losses elsewhere: realloc -20.0%",
  ]);
});

Deno.test("nothing beyond 1% either way is NEUTRAL", () => {
  eq(
    v({ "mixed-main-r50": 0.005, "dist-app": -0.01, "larson": 0.01 }),
    "NEUTRAL",
  );
});
