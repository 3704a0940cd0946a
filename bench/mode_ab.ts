/**
 * A/B mode (`deno task compare --a X --b Y`): two libraries, or two policies
 * of one, on every workload; B ÷ A for throughput and peak RSS, and the
 * GO / NO-GO verdict of verdict.ts.
 */
import {
  type Allocator,
  describe,
  hakozunaLibrary,
  resolveSide,
} from "./allocators.ts";
import { compareOn, lowestConfidence } from "./analysis.ts";
import { statisticsWording } from "./format.ts";
import { LoadMonitor, probeMachine } from "./machine.ts";
import { loadWasLow, type Results } from "./model.ts";
import type { Options } from "./options.ts";
import { destination, writeFiles } from "./output.ts";
import { toMarkdown } from "./render_markdown.ts";
import { toSvg } from "./render_svg.ts";
import { loadLine, ratioRows, table } from "./render_terminal.ts";
import { measureWorkloads, methodText, prepare } from "./runner.ts";
import { selectWorkloads } from "./select.ts";
import { familyConfidence, judgedIntervals } from "./stats.ts";
import { verdict, type WorkloadChange } from "./verdict.ts";

async function side(
  name: "A" | "B",
  spec: string | undefined,
  policy: string | undefined,
  hakozuna: string | undefined,
): Promise<Allocator> {
  let lib: string | null;
  if (spec === undefined) {
    const hz = hakozunaLibrary(hakozuna);
    if (!("lib" in hz)) {
      throw new Error(`hakozuna is missing: ${hz.why}; ${hz.fix}`);
    }
    lib = hz.lib;
  } else {
    lib = (await resolveSide(spec, { hakozuna })).lib;
  }
  return { name, lib, env: policy ? { HZ_POLICY: policy } : undefined };
}

export async function abMode(o: Options): Promise<number> {
  const load = new LoadMonitor();
  const warning = load.startWarning(navigator.hardwareConcurrency);
  if (warning) console.error(warning);
  const a = await side("A", o.a, o.aPolicy, o.hakozuna);
  const b = await side("B", o.b, o.bPolicy, o.hakozuna);
  const list = selectWorkloads(o);
  const rounds = o.rounds ?? (o.quick ? 3 : 20);
  const method = `${
    methodText(rounds, o.warmup, o.quick)
  }, A and B alternating`;
  const sides = { A: describe(a), B: describe(b) };
  console.log(`A = ${sides.A}\nB = ${sides.B}`);
  console.error(`compare: ${list.length} workloads, ${method}`);
  await using libs = await prepare([a, b]);
  const probe = await probeMachine();
  const workloads = await measureWorkloads(
    libs,
    list,
    rounds,
    o.warmup,
    load,
  );
  const res: Results = {
    mode: "ab",
    machine: {
      ...probe,
      load: load.finish(probe.cores),
      method,
      rounds,
      warmup: o.warmup,
      scale: o.quick ? "quick" : "full",
      subject: "B",
      baselines: ["A"],
      sides,
      libraries: libs.libraries,
    },
    allocators: ["A", "B"],
    workloads,
    confidence: familyConfidence(judgedIntervals(workloads.length)),
  };
  const changes = new Map<string, WorkloadChange>(
    res.workloads.map((w) => {
      const c = compareOn(w, "B", "A", res.confidence);
      return [w.name, { throughput: c.throughput, rss: c.rss }];
    }),
  );
  // A policy lane users choose: one library, B run with a policy of its own.
  const policyLane = o.bPolicy !== undefined && a.lib === b.lib;
  const v = verdict(changes, { policyLane });
  const verdictLines = [
    `verdict: ${v.verdict} — ${v.reasons.join("; ")}${
      policyLane
        ? " (B is a policy lane: throughput losses outside mixed-main-r50, dist-* and cache-thrash only warn)"
        : ""
    }`,
    ...v.warnings.map((w) => `warning: ${w}`),
  ];
  if (!loadWasLow(res.machine.load)) {
    verdictLines.push(
      `warning: ${
        loadLine(res.machine)
      }; do not record a decision from this run`,
    );
  }
  const wording = statisticsWording(lowestConfidence(res, "B", ["A"]), {
    intervals: judgedIntervals(res.workloads.length),
  });
  console.log(
    [
      ``,
      `Throughput (B ÷ A above 1×: B faster)`,
      table(ratioRows(res, "B", ["A"], 3, "throughput")),
      ``,
      `Peak RSS (B ÷ A above 1×: B uses more memory)`,
      table(ratioRows(res, "B", ["A"], 3, "rss")),
      ``,
      ...verdictLines,
      wording,
    ].join("\n"),
  );
  const dest = destination({
    mode: "ab",
    quick: o.quick,
    quiet: true,
    out: o.out,
  });
  const view = {
    subject: "B",
    baselines: ["A"],
    digits: 3,
    stem: dest.stem,
    title: "A/B comparison",
    notes: [`A = ${sides.A}`, `B = ${sides.B}`, ...verdictLines],
  };
  const paths = await writeFiles(dest, [
    [".json", JSON.stringify({ ...res, verdict: v }, null, 2) + "\n"],
    [".md", toMarkdown(res, view)],
    [".svg", toSvg(res, view)],
  ]);
  console.log(`wrote ${paths.join(", ")}`);
  if (v.verdict === "NO-GO") return 1;
  return v.verdict === "INCONCLUSIVE" ? 3 : 0;
}
