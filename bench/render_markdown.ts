/**
 * The Markdown report: what it ran on, the summary per baseline, the
 * throughput and peak-RSS ratio tables, then every figure.
 */
import { lowestConfidence } from "./analysis.ts";
import { mib, si, spreadText, statisticsWording } from "./format.ts";
import type { Machine, Results } from "./model.ts";
import { judgedIntervals, median } from "./stats.ts";
import {
  loadLine,
  mdTable,
  ratioRows,
  summaryLines,
} from "./render_terminal.ts";

/** What the report compares: the subject against each baseline. */
export interface View {
  subject: string;
  baselines: string[];
  /** Decimals of the ratios (3 for an A/B, where 1% matters). */
  digits: number;
  /** The stem of the sibling files (`latest`, `ab-latest`…). */
  stem: string;
  title: string;
  /** Lines shown right under the machine (A and B, the verdict, missing peers). */
  notes: string[];
}

/** The lines describing the machine, toolchain, load and libraries. */
export function machineLines(m: Machine): string[] {
  const L = [
    `- Machine: ${m.cpu}, ${m.cores} cores, ${m.kernel}, glibc ${m.glibc}`,
    `- Built from commit ${m.commit ?? "unknown"}; Zig ${
      m.zig ?? "unknown"
    }, Deno ${m.deno}`,
    `- Date: ${m.date}; ${m.method}`,
    `- Load: ${loadLine(m)}`,
    `- Libraries:`,
  ];
  for (const [name, lib] of Object.entries(m.libraries)) {
    L.push(
      lib
        ? `  - ${name}: \`${lib.path}\`${
          lib.package ? ` (${lib.package} ${lib.version})` : ""
        }, sha256 \`${lib.sha256.slice(0, 16)}…\``
        : `  - ${name}: no preload (glibc's malloc)`,
    );
  }
  return L;
}

function cell(s: string): string {
  return s.replaceAll("|", "\\|").split("\n")[0];
}

export function toMarkdown(res: Results, v: View): string {
  const { subject, baselines, digits } = v;
  const L: string[] = [`# ${v.title}`, ``, ...machineLines(res.machine)];
  for (const n of v.notes) L.push(`- ${n}`);
  L.push(
    `- Ratios are ${subject} ÷ ${
      baselines.length === 1 ? baselines[0] : "each other allocator"
    }: for throughput above 1× means ${subject} is faster, ` +
      `for peak RSS above 1× means ${subject} uses more memory.`,
  );
  if (baselines.length > 1) {
    L.push(``, `## Summary`, ``);
    for (const line of summaryLines(res, subject)) L.push(`- ${line}`);
  }
  const against = baselines.length === 1 ? baselines[0] : "each allocator";
  L.push(
    ``,
    `## Throughput: ${subject} ÷ ${against}`,
    ``,
    mdTable(ratioRows(res, subject, baselines, digits, "throughput")),
    ``,
    `## Peak RSS: ${subject} ÷ ${against}`,
    ``,
    mdTable(ratioRows(res, subject, baselines, digits, "rss")),
  );
  L.push(``, `## Every figure`, ``);
  L.push(
    `| workload | allocator | median ops/s | min | max | spread | runs | peak RSS MiB | median wall s | median CPU s |`,
    `|---|---|---:|---:|---:|---:|---:|---:|---:|---:|`,
  );
  for (const w of res.workloads) {
    for (const a of res.allocators) {
      const r = w.results[a];
      if (!r) continue;
      if (r.error) {
        L.push(
          `| ${w.name} | ${a} | failed: ${
            cell(r.error)
          } | | | | ${r.runs.length} | | | |`,
        );
        continue;
      }
      L.push(
        `| ${w.name} | ${a} | ${si(r.median!)} | ${si(r.min!)} | ${
          si(r.max!)
        } | ${spreadText(r)} | ${r.runs.length} | ${mib(r.peakRssKiB!)} | ${
          median(r.runs.map((x) => x.wallS)).toFixed(3)
        } | ${median(r.runs.map((x) => x.cpuS)).toFixed(3)} |`,
      );
    }
  }
  L.push(
    ``,
    statisticsWording(
      lowestConfidence(res, subject, baselines),
      res.confidence === undefined ? undefined : {
        intervals: judgedIntervals(res.workloads.length, baselines.length),
      },
    ),
    ``,
    `Arguments of each workload are in ${v.stem}.json (\`workloads[].args\`), identical for every allocator; ` +
      `the chart is ${v.stem}.svg.`,
  );
  return L.join("\n") + "\n";
}
