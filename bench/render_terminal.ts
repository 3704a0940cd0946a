/**
 * Plain-text tables for the terminal, and the summary lines that the
 * terminal and the Markdown report share.
 */
import {
  againstFastest,
  compareOn,
  type FastestSummary,
  summaries,
  type Summary,
} from "./analysis.ts";
import {
  changeRatio,
  changeText,
  mib,
  ratioText,
  si,
  spreadText,
} from "./format.ts";
import {
  type AllocatorResult,
  loadWasLow,
  type Machine,
  maxLoad,
  type Results,
  spreadOf,
} from "./model.ts";

/** Columns padded to their widest cell; the first left-aligned, the rest right. */
export function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) =>
    Math.max(...rows.map((r) => (r[i] ?? "").length))
  );
  return rows.map((r) =>
    r.map((c, i) => i ? c.padStart(widths[i]) : c.padEnd(widths[i])).join("  ")
      .trimEnd()
  ).join("\n");
}

/** "vs glibc: throughput 1.85×, peak RSS 1.40× (geomean of 30 workloads; …)". */
export function summaryLine(subject: string, s: Summary): string {
  if (!s.workloads) {
    return `${subject} vs ${s.baseline}: no workload to compare`;
  }
  return `${subject} vs ${s.baseline}: throughput ${
    ratioText(s.throughput)
  }, peak RSS ${ratioText(s.rss)} ` +
    `(geometric means over ${s.workloads} workloads of ${subject} ÷ ${s.baseline}; ` +
    `${subject} faster on ${s.faster}, slower on ${s.slower}, within noise on ${s.noise}` +
    `${s.failed ? `, ${s.failed} failed` : ""})`;
}

/** The summary lines of a suite run. */
export function summaryLines(res: Results, subject: string): string[] {
  const baselines = res.allocators.filter((a) => a !== subject);
  const lines = summaries(res, subject, baselines).map((s) =>
    summaryLine(subject, s)
  );
  if (baselines.length > 1) {
    lines.push(fastestLine(subject, againstFastest(res, subject, baselines)));
  }
  return lines;
}

/** "vs the fastest other allocator on each workload: throughput 1.08× (…)". */
export function fastestLine(subject: string, s: FastestSummary): string {
  const head = `${subject} vs the fastest other allocator on each workload`;
  if (!s.workloads) return `${head}: no workload to compare`;
  const slower = s.slower.map((c) =>
    `${c.workload} ${changeRatio(c.throughput!)} of ${c.baseline}`
  );
  return `${head}: throughput ${ratioText(s.throughput)} ` +
    `(geometric mean over ${s.workloads} workloads of ${subject} ÷ the ` +
    `allocator it compares worst with there; ${subject} faster on ${s.faster}, ` +
    `within noise on ${s.noise}, slower on ${s.slower.length}` +
    `${slower.length ? `: ${slower.join(", ")}` : ""}` +
    `${s.failed ? `; ${s.failed} not compared, a side failed` : ""})`;
}

/** The load sentence, with the warning when it was above half the cores. */
export function loadLine(m: Machine): string {
  const l = m.load;
  const during = l.during.length
    ? `${Math.min(...l.during)}–${Math.max(...l.during)}`
    : "–";
  const other = l.otherCores === undefined || l.otherCores === null
    ? ""
    : `; other work beside the runs ${l.otherCores} cores (limit ${l.otherLimit})`;
  const p = l.placement;
  const placement = p
    ? `; the two CPUs' fastest round trip ${p.fastestNs} ns, runs repeated ` +
      `because the host had placed them apart (a probe around the run over ` +
      `${p.farFactor}× that): ${p.repeatedRuns}`
    : "";
  const text = `load average (1 min) before ${
    l.before[0]
  }, during ${during}, after ${
    l.after[0]
  } on ${m.cores} cores${other}${placement}`;
  if (loadWasLow(l)) return text;
  return l.otherCores === undefined || l.otherCores === null
    ? `${text} — WARNING: above ${l.limit} (half the cores, peak ${
      maxLoad(l)
    }): other work ran beside the benchmark and the figures are noisy`
    : `${text} — WARNING: the machine was not quiet (load above ${l.limit} ` +
      `before the run, or other work above ${l.otherLimit} cores during it): the figures are noisy`;
}

/**
 * The rows of the throughput (or peak RSS) table of a run, header first:
 * the subject's own figure, the worst spread of any allocator, then
 * subject ÷ each baseline with its interval.  The terminal and the
 * Markdown report show the same rows.
 */
export function ratioRows(
  res: Results,
  subject: string,
  baselines: string[],
  digits: number,
  what: "throughput" | "rss",
): string[][] {
  const one = baselines.length === 1 ? baselines : [];
  const figure = (r: AllocatorResult | undefined) =>
    r?.median == null
      ? "failed"
      : what === "rss"
      ? mib(r.peakRssKiB!)
      : `${si(r.median)} ${spreadText(r)}`;
  const rows = [[
    "workload",
    // With one baseline (an A/B), its own figure too.
    ...(what === "rss"
      ? [`${subject} peak RSS MiB`, ...one.map((b) => `${b} peak RSS MiB`)]
      : [`${subject} ops/s`, ...one.map((b) => `${b} ops/s`), "worst spread"]),
    ...baselines.map((b) => `${subject} ÷ ${b}`),
  ]];
  for (const w of res.workloads) {
    const s = w.results[subject];
    const spreads = Object.values(w.results).map(spreadOf).filter((x) =>
      x != null
    ) as number[];
    const worst = spreads.length
      ? `±${(Math.max(...spreads) * 100).toFixed(1)}%`
      : "–";
    rows.push([
      w.name,
      figure(s),
      ...one.map((b) => figure(w.results[b])),
      ...(what === "rss" ? [] : [worst]),
      ...baselines.map((b) => {
        if (w.results[b]?.error) return `${b} failed`;
        const c = compareOn(w, subject, b, res.confidence)[what];
        return c ? changeText(c, digits) : "–";
      }),
    ]);
  }
  return rows;
}

/** The same rows as a Markdown table (first column left, the others right). */
export function mdTable(rows: string[][]): string {
  const esc = (c: string) => c.replaceAll("|", "\\|").split("\n")[0];
  return [
    `| ${rows[0].map(esc).join(" | ")} |`,
    `|---|${rows[0].slice(1).map(() => "---:").join("|")}|`,
    ...rows.slice(1).map((r) => `| ${r.map(esc).join(" | ")} |`),
  ].join("\n");
}
