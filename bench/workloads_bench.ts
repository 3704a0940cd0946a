/**
 * `deno bench`: the workloads of `make bench` (workloads.ts), measured as
 * `make bench` measures them, so the two reach the same conclusions.
 *
 * One bench per workload. Its function runs that workload under every
 * allocator found, in interleaved rounds after a warm-up round, with the
 * allocators in an order rotated every round (runner.ts), and reads each
 * run's own `ops/s=` figure, not the process's wall time. It prints, per
 * allocator, the median ops/s and spread, and hakozuna ÷ each peer as the
 * median of the per-round ratios with its confidence interval and the
 * conclusion (faster, slower or within noise), worded as in the reports.
 *
 * Deno calls a bench function more than once whatever its `n`; the
 * comparison runs on the first call only, the others return at once. So
 * Deno's own time column says nothing about any allocator: the figures are
 * the ones printed.
 *
 * `HZ_BENCH_ROUNDS=N` sets the rounds (default 3); `HZ_BENCH_QUICK=1` uses
 * the QUICK sizes of `make bench QUICK=1`.
 */
import { changeText, si, spreadText, statisticsWording } from "./format.ts";
import { compareOn, speedWord } from "./analysis.ts";
import { requireBenchPermissions } from "./permissions.ts";
import { chooseAllocators } from "./select.ts";
import { fmtTime, measureWorkloads, methodText, prepare } from "./runner.ts";
import { table } from "./render_terminal.ts";
import { type Options, parseOptions } from "./options.ts";
import { workloads } from "./workloads.ts";

requireBenchPermissions();
const rounds = Number(Deno.env.get("HZ_BENCH_ROUNDS") ?? "3");
if (!Number.isInteger(rounds) || rounds < 1) {
  throw new Error(`HZ_BENCH_ROUNDS must be an integer >= 1, got ${rounds}`);
}
const quick = Deno.env.get("HZ_BENCH_QUICK") === "1";
const options: Options = parseOptions(quick ? ["--quick"] : []);
const { found } = await chooseAllocators(options);
const libs = await prepare(found);
globalThis.addEventListener("unload", () => {
  Deno.removeSync(libs.dir, { recursive: true });
});
const subject = found.some((a) => a.name === "hakozuna")
  ? "hakozuna"
  : found[0].name;
const list = workloads(quick ? "quick" : "full");
const method = methodText(rounds, 1, quick);
const estimate = list.reduce((s, w) => s + w.typicalS + 0.03, 0) *
  found.length *
  (rounds + 1);
console.log(
  `workloads_bench: ${list.length} workloads × ${found.length} allocators, ${method}; ` +
    `about ${fmtTime(estimate)} in all.\n` +
    `Measured: each run's own ops/s figure (not process wall time), allocators in rotating ` +
    `order across rounds, as make bench does; Deno's own time column is not a speed.`,
);

const done = new Set<string>();
for (const w of list) {
  Deno.bench({
    name: `${w.name} (figures printed above; Deno's time is not a speed)`,
    n: 1,
    warmup: 0,
    async fn() {
      if (done.has(w.name)) return;
      done.add(w.name);
      const [res] = await measureWorkloads(libs, [w], rounds, 1, null);
      const rows = [[
        "allocator",
        "median ops/s",
        "spread",
        `${subject} ÷ it`,
        "conclusion",
      ]];
      let confidence = 1;
      for (const a of found) {
        const r = res.results[a.name];
        const c = a.name === subject
          ? null
          : compareOn(res, subject, a.name).throughput;
        if (c) confidence = Math.min(confidence, c.confidence);
        rows.push([
          a.name,
          r.median == null ? `failed: ${r.error}` : si(r.median),
          spreadText(r),
          a.name === subject ? "–" : c ? changeText(c) : "–",
          a.name === subject ? "" : speedWord(c, subject),
        ]);
      }
      console.log(`\n${w.name} (${w.description})\n${table(rows)}`);
      if (w === list[list.length - 1] || w === list[0]) {
        console.log(statisticsWording(confidence));
      }
    },
  });
}
