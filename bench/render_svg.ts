/**
 * The SVG chart: two panels side by side, throughput and peak RSS, each a
 * set of horizontal bars of subject ÷ baseline per workload on a log2 axis
 * centred on 1× (so 2× and ½× are bars of equal length), with a whisker for
 * the interval and the value written in a column of its own at the right of
 * the panel, where it can overlap nothing.
 */
import { compareOn, type Comparison } from "./analysis.ts";
import { ratioText } from "./format.ts";
import type { Results } from "./model.ts";
import type { Change } from "./stats.ts";
import type { View } from "./render_markdown.ts";

const COLORS: Record<string, string> = {
  hakozuna: "#7b3fa0",
  glibc: "#8c8c8c",
  mimalloc: "#1f77b4",
  jemalloc: "#2ca02c",
  tcmalloc: "#d62728",
  A: "#1f77b4",
};
const FALLBACK_COLORS = ["#ff7f0e", "#17becf", "#bcbd22", "#e377c2"];

function esc(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(
    ">",
    "&gt;",
  );
}

interface Panel {
  title: string;
  /** What a bar right of 1× means. */
  right: string;
  pick: (c: Comparison) => Change | null;
  x0: number;
  x1: number;
}

export function toSvg(res: Results, v: View): string {
  const { subject, baselines } = v;
  const color = (b: string, i: number) =>
    COLORS[b] ?? FALLBACK_COLORS[i % FALLBACK_COLORS.length];
  const comps = res.workloads.map((w) =>
    baselines.map((b) => compareOn(w, subject, b, res.confidence))
  );
  const labelW = 170, valueW = 58, panelW = 400, gapW = 30;
  const W = labelW + 2 * (panelW + valueW) + gapW + 20;
  const panels: Panel[] = [
    {
      title: `Throughput: ${subject} ÷ baseline`,
      right: `right of 1×: ${subject} faster`,
      pick: (c) => c.throughput,
      x0: labelW + 10,
      x1: labelW + 10 + panelW,
    },
    {
      title: `Peak RSS: ${subject} ÷ baseline`,
      right: `right of 1×: ${subject} uses more memory`,
      pick: (c) => c.rss,
      x0: labelW + 10 + panelW + valueW + gapW,
      x1: labelW + 10 + 2 * panelW + valueW + gapW,
    },
  ];
  const sides = res.machine.sides;
  const header = [
    `${res.machine.cpu}, ${res.machine.cores} cores, ${
      res.machine.date.slice(0, 10)
    }, commit ${res.machine.commit ?? "unknown"} · ${res.machine.method}`,
    ...(sides ? [`A = ${sides.A}`, `B = ${sides.B}`] : []),
  ];
  const bar = 10, gap = 12;
  const groupH = baselines.length * bar + gap;
  const top = 84 + header.length * 16 + 44;
  const H = top + res.workloads.length * groupH + 44;
  const o: string[] = [];
  o.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ` +
      `font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${
      W / 2
    }" y="24" text-anchor="middle" font-size="16" font-weight="bold">${
      esc(
        `${v.title}: ${subject} ÷ ${
          baselines.length === 1 ? baselines[0] : "each allocator"
        }`,
      )
    } (medians of paired ratios, log scale)</text>`,
  );
  header.forEach((line, i) =>
    o.push(
      `<text x="${W / 2}" y="${44 + 16 * i}" text-anchor="middle" fill="#444">${
        esc(line)
      }</text>`,
    )
  );
  // Legend: one entry per baseline, saying what the bar divides.
  const ly = 44 + header.length * 16 + 6;
  let lx = labelW + 10;
  baselines.forEach((b, i) => {
    const label = `${subject} ÷ ${b}`;
    o.push(
      `<rect x="${lx}" y="${ly}" width="12" height="12" fill="${
        color(b, i)
      }"/>`,
      `<text x="${lx + 17}" y="${ly + 10}">${esc(label)}</text>`,
    );
    lx += 30 + label.length * 7;
  });
  for (const p of panels) {
    const values = comps.flat().map(p.pick).filter((c): c is Change =>
      c != null
    );
    const maxLog = Math.min(
      4,
      Math.max(
        1,
        ...values.map((c) => Math.ceil(Math.abs(Math.log2(1 + c.delta)))),
      ),
    );
    const x = (r: number) => {
      const l = Math.max(
        -maxLog,
        Math.min(maxLog, Math.log2(Math.max(r, 1e-9))),
      );
      return p.x0 + ((l + maxLog) / (2 * maxLog)) * (p.x1 - p.x0);
    };
    const mid = (p.x0 + p.x1) / 2;
    o.push(
      `<text x="${mid}" y="${
        top - 40
      }" text-anchor="middle" font-weight="bold">${esc(p.title)}</text>`,
      `<text x="${mid}" y="${
        top - 26
      }" text-anchor="middle" fill="#444" font-size="11">${
        esc(p.right)
      }</text>`,
    );
    for (let l = -maxLog; l <= maxLog; l++) {
      const gx = x(2 ** l);
      o.push(
        `<line x1="${gx}" y1="${top - 10}" x2="${gx}" y2="${H - 36}" stroke="${
          l === 0 ? "#000" : "#ddd"
        }"/>`,
        `<text x="${gx}" y="${
          top - 12
        }" text-anchor="middle" fill="#444" font-size="10">${
          l < 0 ? `1/${2 ** -l}` : 2 ** l
        }×</text>`,
      );
    }
    comps.forEach((row, wi) => {
      const gy = top + wi * groupH;
      row.forEach((c, i) => {
        const y = gy + i * bar;
        const ch = p.pick(c);
        if (!ch) {
          o.push(
            `<text x="${p.x1 + 4}" y="${y + bar - 2}" font-size="9" fill="${
              color(c.baseline, i)
            }">failed</text>`,
          );
          return;
        }
        const r = 1 + ch.delta;
        const a = Math.min(x(1), x(r)), b = Math.max(x(1), x(r));
        o.push(
          `<rect x="${a}" y="${y}" width="${Math.max(1, b - a)}" height="${
            bar - 2
          }" fill="${color(c.baseline, i)}"><title>${
            esc(`${c.workload}, ${subject} ÷ ${c.baseline}: ${ratioText(r)}`)
          }</title></rect>`,
        );
        const wl = x(1 + ch.lo), wh = x(1 + ch.hi), my = y + (bar - 2) / 2;
        o.push(
          `<path d="M${wl} ${my}H${wh}M${wl} ${my - 3}v6M${wh} ${
            my - 3
          }v6" stroke="#222" stroke-width="1" fill="none"/>`,
          `<text x="${p.x1 + valueW - 4}" y="${
            y + bar - 2
          }" font-size="9" text-anchor="end" fill="${color(c.baseline, i)}">${
            ratioText(r, v.digits)
          }</text>`,
        );
      });
    });
  }
  res.workloads.forEach((w, wi) => {
    const gy = top + wi * groupH;
    if (wi % 2) {
      o.push(
        `<rect x="0" y="${
          gy - gap / 2
        }" width="${W}" height="${groupH}" fill="#000" fill-opacity="0.04"/>`,
      );
    }
    o.push(
      `<text x="${labelW}" y="${
        gy + (baselines.length * bar) / 2 + 2
      }" text-anchor="end">${esc(w.name)}</text>`,
    );
  });
  o.push(
    `<text x="${labelW + 10}" y="${H - 14}" fill="#444" font-size="11">` +
      esc(
        `Whiskers: confidence interval of the median of the per-round ratios (see ${v.stem}.md). ` +
          `Ratios beyond the axis are drawn at its edge; the value column gives them exactly.`,
      ) + `</text>`,
    `</svg>`,
  );
  return o.join("\n") + "\n";
}
