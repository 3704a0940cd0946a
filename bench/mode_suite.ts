/**
 * Suite mode (`make bench`): every workload under every allocator, reported
 * as hakozuna ÷ each peer, for throughput and peak RSS.
 */
import { LoadMonitor, probeMachine } from "./machine.ts";
import { loadWasLow, type Machine, type Results } from "./model.ts";
import type { Options } from "./options.ts";
import { destination, writeFiles } from "./output.ts";
import { toMarkdown, type View } from "./render_markdown.ts";
import { toSvg } from "./render_svg.ts";
import { loadLine, ratioRows, summaryLines, table } from "./render_terminal.ts";
import {
  expectedSeconds,
  fmtTime,
  measureWorkloads,
  methodText,
  prepare,
} from "./runner.ts";
import { chooseAllocators, selectWorkloads } from "./select.ts";
import { statisticsWording } from "./format.ts";
import { lowestConfidence } from "./analysis.ts";

export async function suiteMode(o: Options): Promise<number> {
  const load = new LoadMonitor();
  const warning = load.startWarning(navigator.hardwareConcurrency);
  if (warning) console.error(warning);
  const list = selectWorkloads(o);
  const { found, missing } = await chooseAllocators(o);
  if (!found.length) throw new Error("no allocator to measure");
  const subject = found.some((a) => a.name === "hakozuna")
    ? "hakozuna"
    : found[0].name;
  const baselines = found.map((a) => a.name).filter((a) => a !== subject);
  const rounds = o.rounds ?? (o.quick ? 3 : 5);
  const method = methodText(rounds, o.warmup, o.quick);
  console.error(
    `compare: ${list.length} workloads × ${found.length} allocators (${
      found.map((a) => a.name).join(", ")
    }), ${method}; expected duration about ${
      fmtTime(expectedSeconds(list, found.length, rounds, o.warmup))
    } on an idle 2-core machine`,
  );
  await using libs = await prepare(found);
  const probe = await probeMachine();
  const workloads = await measureWorkloads(
    libs,
    list,
    rounds,
    o.warmup,
    load,
  );
  const machine: Machine = {
    ...probe,
    load: load.finish(probe.cores),
    method,
    rounds,
    warmup: o.warmup,
    scale: o.quick ? "quick" : "full",
    subject,
    baselines,
    libraries: libs.libraries,
    missing: Object.fromEntries(missing.map((m) => [m.name, m.why])),
  };
  const res: Results = {
    mode: "suite",
    machine,
    allocators: found.map((a) => a.name),
    workloads,
  };
  const dest = destination({
    mode: "suite",
    quick: o.quick,
    partial: o.only !== undefined || o.allocators !== undefined ||
      o.extra.length > 0 || missing.length > 0,
    quiet: loadWasLow(machine.load),
    out: o.out,
  });
  const view: View = {
    subject,
    baselines,
    digits: 2,
    stem: dest.stem,
    title: "Allocator comparison",
    notes: [
      ...(subject !== "hakozuna"
        ? [`hakozuna was not measured, so ratios are to ${subject}.`]
        : []),
      ...missing.map((m) => `Missing: ${m.name} (${m.why}; ${m.fix}).`),
    ],
  };
  const paths = await writeFiles(dest, [
    [".json", JSON.stringify(res, null, 2) + "\n"],
    [".md", toMarkdown(res, view)],
    [".svg", toSvg(res, view)],
  ]);
  console.log(
    [
      `Ratios are ${subject} ÷ each allocator (throughput above 1×: ${subject} faster; ` +
      `peak RSS above 1×: ${subject} uses more memory).`,
      ``,
      ...summaryLines(res, subject),
      ``,
      `Throughput`,
      table(ratioRows(res, subject, baselines, 2, "throughput")),
      ``,
      `Peak RSS`,
      table(ratioRows(res, subject, baselines, 2, "rss")),
      ``,
      statisticsWording(lowestConfidence(res, subject, baselines)),
      `Load: ${loadLine(machine)}`,
      ``,
      `wrote ${paths.join(", ")} (${
        dest.tracked ? "tracked" : "not tracked"
      }: ${dest.why})`,
    ].join("\n"),
  );
  const failed = res.workloads.flatMap((w) =>
    Object.entries(w.results).filter(([, r]) => r.error).map(([a, r]) =>
      `${w.name} under ${a}: ${r.error}`
    )
  );
  for (const f of failed) console.error(`compare: FAILED ${f}`);
  return failed.length ? 1 : 0;
}
