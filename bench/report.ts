/**
 * Results of a comparison run and the three reports made from them:
 * `latest.json` (the schema of issue #5), `latest.md` (tables) and
 * `latest.svg` (a bar chart of the ratios to the reference allocator).
 */
import { cpus } from "node:os";
import { join } from "node:path";
import { type Change, median, pairedChange } from "./stats.ts";

/** One measured run of one workload under one allocator. */
export interface Run {
  /** The workload's own figure (its `ops/s=`). */
  value: number;
  wallS: number;
  /** User + system CPU time: less disturbed than wall time by other load. */
  cpuS: number;
  peakRssKiB: number;
}

export interface AllocatorResult {
  /** Median, min and max of the runs' values; null when the workload failed. */
  median: number | null;
  min: number | null;
  max: number | null;
  runs: Run[];
  /** Median of the runs' peak RSS. */
  peakRssKiB: number | null;
  /** Why the workload failed under this allocator (its runs stop there). */
  error?: string;
}

export interface WorkloadResult {
  name: string;
  /** Program and arguments, identical for every allocator. */
  args: string[];
  unit: string;
  results: Record<string, AllocatorResult>;
}

export interface Results {
  machine: Record<string, unknown>;
  allocators: string[];
  workloads: WorkloadResult[];
}

/** Summary of an allocator's runs of one workload. */
export function summarize(runs: Run[], error?: string): AllocatorResult {
  if (error !== undefined || runs.length === 0) {
    return {
      median: null,
      min: null,
      max: null,
      runs,
      peakRssKiB: null,
      error: error ?? "no runs",
    };
  }
  const values = runs.map((r) => r.value);
  return {
    median: median(values),
    min: Math.min(...values),
    max: Math.max(...values),
    runs,
    peakRssKiB: median(runs.map((r) => r.peakRssKiB)),
  };
}

async function firstLine(cmd: string, args: string[]): Promise<string | null> {
  try {
    const out = await new Deno.Command(cmd, {
      args,
      stdout: "piped",
      stderr: "null",
    }).output();
    return out.success
      ? new TextDecoder().decode(out.stdout).split("\n")[0].trim()
      : null;
  } catch {
    return null;
  }
}

/**
 * 1, 5 and 15 minute load averages: other work on the machine (at the start
 * and end of a run) is what makes figures noisy.
 */
export function loadavg(): number[] {
  return Deno.loadavg().map((x) => Math.round(x * 100) / 100);
}

/** What the figures were measured on, for the JSON's `machine`. */
export async function machineInfo(): Promise<Record<string, unknown>> {
  let cpu = cpus()[0]?.model ?? "unknown";
  try {
    const m = (await Deno.readTextFile("/proc/cpuinfo")).match(
      /^model name\s*:\s*(.+)$/m,
    );
    if (m) cpu = m[1].trim();
  } catch { /* not Linux: keep node's answer */ }
  return {
    cpu,
    cores: navigator.hardwareConcurrency,
    kernel: `${Deno.build.os} ${Deno.osRelease()}`,
    glibc: (await firstLine("getconf", ["GNU_LIBC_VERSION"]))?.replace(
      /^glibc /,
      "",
    ) ?? "unknown",
    date: new Date().toISOString(),
    loadavg: loadavg(),
    deno: Deno.version.deno,
  };
}

// ---- formatting -----------------------------------------------------------

/** 12345678 -> "12.35M". */
export function si(x: number): string {
  if (x >= 1e9) return `${(x / 1e9).toFixed(2)}G`;
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)}M`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(1)}k`;
  return x.toFixed(1);
}

export function mib(kib: number): string {
  return (kib / 1024).toFixed(1);
}

/** "±12%": half the min–max range of an allocator's runs, relative to the median. */
export function spread(r: AllocatorResult): string {
  return r.median ? `±${((r.max! - r.min!) / r.median * 50).toFixed(1)}%` : "–";
}

export function ratioText(r: number): string {
  return `${r >= 10 ? r.toFixed(1) : r.toFixed(2)}×`;
}

/** value / reference value, or null when either is missing. */
function ratio(
  w: WorkloadResult,
  alloc: string,
  ref: string,
  pick: (r: AllocatorResult) => number | null,
) {
  const a = w.results[alloc], b = w.results[ref];
  const x = a && pick(a), y = b && pick(b);
  return x != null && y != null && y > 0 ? x / y : null;
}

/**
 * The change of `alloc` against the reference from the rounds' paired runs
 * (see verdict.ts); null for the reference itself or when runs are missing.
 */
function pairedVsReference(
  w: WorkloadResult,
  alloc: string,
  ref: string,
): Change | null {
  const a = w.results[alloc], b = w.results[ref];
  if (
    alloc === ref || !a || !b || a.error || b.error ||
    a.runs.length !== b.runs.length
  ) return null;
  return pairedChange(b.runs.map((x) => x.value), a.runs.map((x) => x.value));
}

/** Markdown report: a ratio matrix, then every figure. */
export function toMarkdown(
  res: Results,
  reference: string,
  notes: string[],
): string {
  const m = res.machine;
  const others = res.allocators.filter((a) => a !== reference);
  const L: string[] = [];
  L.push(`# Allocator comparison`, ``);
  L.push(
    `- Machine: ${m.cpu}, ${m.cores} cores, ${m.kernel}, glibc ${m.glibc}; load average at start ${m.loadavg}, at end ${m.loadavgEnd}`,
  );
  L.push(`- Date: ${m.date}; ${m.method}`);
  L.push(
    `- Ratios are allocator / ${reference}: for throughput above 1 means faster than ${reference}, ` +
      `for peak RSS above 1 means more memory than ${reference}.`,
  );
  for (const n of notes) L.push(`- ${n}`);
  L.push(
    ``,
    `## Throughput ratio to ${reference}`,
    ``,
    `The ${reference} column is its median ops/s ± half the min–max range of its runs: ` +
      `ratios closer to 1 than that spread are within this run's noise.`,
    ``,
  );
  L.push(`| workload | ${reference} | ${others.join(" | ")} |`);
  L.push(`|---|---:|${others.map(() => "---:").join("|")}|`);
  for (const w of res.workloads) {
    const ref = w.results[reference];
    const cells = others.map((a) => {
      if (w.results[a]?.error) return "failed";
      const r = ratio(w, a, reference, (x) => x.median);
      return r == null ? "–" : ratioText(r);
    });
    L.push(
      `| ${w.name} | ${
        ref?.median != null ? `${si(ref.median)} ${spread(ref)}` : "failed"
      } | ${cells.join(" | ")} |`,
    );
  }
  L.push(``, `## Every figure`, ``);
  L.push(
    `| workload | allocator | median ops/s | min | max | runs | ratio | paired interval | peak RSS MiB | RSS ratio |`,
  );
  L.push(`|---|---|---:|---:|---:|---:|---:|---:|---:|---:|`);
  for (const w of res.workloads) {
    for (const a of res.allocators) {
      const r = w.results[a];
      if (!r) continue;
      if (r.error) {
        L.push(
          `| ${w.name} | ${a} | failed: ${
            r.error.split("\n")[0].replaceAll("|", "\\|")
          } | | | ${r.runs.length} | | | | |`,
        );
        continue;
      }
      const tr = ratio(w, a, reference, (x) => x.median);
      const rr = ratio(w, a, reference, (x) => x.peakRssKiB);
      const paired = pairedVsReference(w, a, reference);
      const interval = paired
        ? `${(paired.lo + 1).toFixed(2)}–${ratioText(paired.hi + 1)}`
        : "–";
      L.push(
        `| ${w.name} | ${a} | ${si(r.median!)} | ${si(r.min!)} | ${
          si(r.max!)
        } | ${r.runs.length} | ` +
          `${tr == null ? "–" : ratioText(tr)} | ${interval} | ${
            mib(r.peakRssKiB!)
          } | ${rr == null ? "–" : ratioText(rr)} |`,
      );
    }
  }
  L.push(
    ``,
    `Paired interval: the range of the per-round ratios to ${reference} that holds their median with ` +
      `about 95% confidence from 9 rounds on (with fewer rounds, their whole range); the runs of one round ` +
      `ran next to each other, under the same load.`,
    ``,
    `Arguments of each workload are in latest.json (\`workloads[].args\`), identical for every allocator.`,
  );
  return L.join("\n") + "\n";
}

// ---- SVG chart ------------------------------------------------------------

const COLORS: Record<string, string> = {
  hakozuna: "#7b3fa0",
  glibc: "#8c8c8c",
  mimalloc: "#1f77b4",
  jemalloc: "#2ca02c",
  tcmalloc: "#d62728",
};
const FALLBACK_COLORS = ["#ff7f0e", "#17becf", "#bcbd22", "#e377c2"];

function esc(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(
    ">",
    "&gt;",
  );
}

/**
 * Horizontal bars of each allocator's throughput ratio to the reference, one
 * group per workload, on a log2 axis centred on 1 so "2× faster" and "2×
 * slower" are bars of equal length on either side.
 */
export function toSvg(res: Results, reference: string): string {
  const others = res.allocators.filter((a) => a !== reference);
  const color = (a: string, i: number) =>
    COLORS[a] ?? FALLBACK_COLORS[i % FALLBACK_COLORS.length];
  const ratios = res.workloads.map((w) =>
    others.map((a) => ratio(w, a, reference, (x) => x.median))
  );
  const maxLog = Math.min(
    4,
    Math.max(
      1,
      ...ratios.flat().filter((r): r is number => r != null).map((r) =>
        Math.ceil(Math.abs(Math.log2(r)))
      ),
    ),
  );
  const W = 960,
    labelW = 170,
    left = labelW + 20,
    right = W - 70,
    top = 112,
    bar = 11,
    gap = 12;
  const groupH = others.length * bar + gap;
  const H = top + res.workloads.length * groupH + 40;
  const x = (r: number) => {
    const l = Math.max(-maxLog, Math.min(maxLog, Math.log2(r)));
    return left + ((l + maxLog) / (2 * maxLog)) * (right - left);
  };
  const o: string[] = [];
  o.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ` +
      `font-family="sans-serif" font-size="12">`,
  );
  o.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  o.push(
    `<text x="${
      W / 2
    }" y="22" text-anchor="middle" font-size="16" font-weight="bold">` +
      `Throughput relative to ${
        esc(reference)
      } (median ops/s, log scale)</text>`,
  );
  const subtitle = [
    `bars right of 1× are faster than ${reference}, left of it slower`,
    `${res.machine.cpu}, ${res.machine.cores} cores, ${
      String(res.machine.date).slice(0, 10)
    } · ${res.machine.method}`,
  ];
  subtitle.forEach((line, i) =>
    o.push(
      `<text x="${W / 2}" y="${40 + 16 * i}" text-anchor="middle" fill="#444">${
        esc(line)
      }</text>`,
    )
  );
  others.forEach((a, i) => {
    const lx = left + i * 130;
    o.push(
      `<rect x="${lx}" y="68" width="12" height="12" fill="${color(a, i)}"/>`,
    );
    o.push(`<text x="${lx + 17}" y="78">${esc(a)}</text>`);
  });
  for (let l = -maxLog; l <= maxLog; l++) {
    const r = 2 ** l, gx = x(r);
    o.push(
      `<line x1="${gx}" y1="${top - 10}" x2="${gx}" y2="${H - 30}" stroke="${
        l === 0 ? "#000" : "#ddd"
      }"/>`,
    );
    o.push(
      `<text x="${gx}" y="${top - 14}" text-anchor="middle" fill="#444">${
        l < 0 ? `1/${2 ** -l}` : r
      }×</text>`,
    );
  }
  res.workloads.forEach((w, wi) => {
    const gy = top + wi * groupH;
    if (wi % 2) {
      o.push(
        `<rect x="0" y="${
          gy - gap / 2
        }" width="${W}" height="${groupH}" fill="#000" fill-opacity="0.03"/>`,
      );
    }
    o.push(
      `<text x="${labelW}" y="${
        gy + (others.length * bar) / 2 + 4
      }" text-anchor="end">${esc(w.name)}</text>`,
    );
    others.forEach((a, i) => {
      const y = gy + i * bar, r = ratios[wi][i];
      if (r == null) {
        const why = w.results[a]?.error
          ? "failed"
          : w.results[reference]?.error
          ? `${reference} failed`
          : "no data";
        o.push(
          `<text x="${x(1) + 4}" y="${y + bar - 2}" font-size="10" fill="${
            color(a, i)
          }">${a}: ${esc(why)}</text>`,
        );
        return;
      }
      const x0 = Math.min(x(1), x(r)), x1 = Math.max(x(1), x(r));
      // Whisker: the paired-ratio interval, so noise is visible where the
      // bars are read.
      const p = pairedVsReference(w, a, reference);
      const wl = p ? x(p.lo + 1) : x0, wh = p ? x(p.hi + 1) : x1;
      o.push(
        `<rect x="${x0}" y="${y}" width="${Math.max(1, x1 - x0)}" height="${
          bar - 2
        }" fill="${color(a, i)}">` +
          `<title>${esc(`${w.name} ${a}: ${ratioText(r)}`)}</title></rect>`,
      );
      if (p) {
        const my = y + (bar - 2) / 2;
        o.push(
          `<path d="M${wl} ${my}H${wh}M${wl} ${my - 3}v6M${wh} ${
            my - 3
          }v6" stroke="#222" stroke-width="1" fill="none"/>`,
        );
      }
      const tx = r >= 1 ? Math.max(x1, wh) + 3 : Math.min(x0, wl) - 3;
      o.push(
        `<text x="${tx}" y="${y + bar - 2}" font-size="10" text-anchor="${
          r >= 1 ? "start" : "end"
        }">` +
          `${ratioText(r)}</text>`,
      );
    });
  });
  o.push(
    `<text x="${left}" y="${H - 10}" fill="#444">` +
      esc(
        `Ratios beyond ${
          2 ** maxLog
        }× are drawn at the edge. Whiskers: interval of the rounds' paired ratios (latest.md).`,
      ) +
      `</text>`,
  );
  o.push(`</svg>`);
  return o.join("\n") + "\n";
}

/** Writes <dir>/<stem>.json, .md and .svg; returns their paths. */
export async function writeReports(
  res: Results,
  reference: string,
  notes: string[],
  dir: string,
  stem: string,
): Promise<string[]> {
  await Deno.mkdir(dir, { recursive: true });
  const files: [string, string][] = [
    [`${stem}.json`, JSON.stringify(res, null, 2) + "\n"],
    [`${stem}.md`, toMarkdown(res, reference, notes)],
    [`${stem}.svg`, toSvg(res, reference)],
  ];
  const paths: string[] = [];
  for (const [name, text] of files) {
    // Write then rename, so an interrupted run never leaves half a report.
    const path = join(dir, name), tmp = `${path}.tmp`;
    await Deno.writeTextFile(tmp, text);
    await Deno.rename(tmp, path);
    paths.push(path);
  }
  return paths;
}
