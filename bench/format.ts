/**
 * How figures are written, the same in the terminal, Markdown and SVG: one
 * ratio notation (`0.93×`, subject ÷ baseline), one interval notation and
 * one sentence saying what the interval is.
 */
import type { AllocatorResult } from "./model.ts";
import { spreadOf } from "./model.ts";
import type { Change } from "./stats.ts";

/** 12345678 -> "12.35M". */
export function si(x: number): string {
  if (x >= 1e9) return `${(x / 1e9).toFixed(2)}G`;
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)}M`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(1)}k`;
  return x.toFixed(1);
}

/** KiB -> MiB with one decimal. */
export function mib(kib: number): string {
  return (kib / 1024).toFixed(1);
}

/** A ratio: "0.93×" (`digits` decimals below 10, one above). */
export function ratioText(r: number, digits = 2): string {
  return `${r >= 10 ? r.toFixed(1) : r.toFixed(digits)}×`;
}

/** A paired change as a ratio: its median, "0.93×". */
export function changeRatio(c: Change, digits = 2): string {
  return ratioText(1 + c.delta, digits);
}

/** Its confidence interval as ratios: "[0.90×, 0.97×]". */
export function intervalText(c: Change, digits = 2): string {
  return `[${ratioText(1 + c.lo, digits)}, ${ratioText(1 + c.hi, digits)}]`;
}

/** "0.93× [0.90×, 0.97×]". */
export function changeText(c: Change, digits = 2): string {
  return `${changeRatio(c, digits)} ${intervalText(c, digits)}`;
}

/** "±12.3%": half the min–max range of an allocator's runs, relative to the median. */
export function spreadText(r: AllocatorResult): string {
  const s = spreadOf(r);
  return s == null ? "–" : `±${(s * 100).toFixed(1)}%`;
}

/** The coverage of an interval as a percentage: "95.9%". */
export function confidenceText(confidence: number): string {
  return `${(Math.floor(confidence * 1000) / 10).toFixed(1)}%`;
}

/**
 * The one sentence every report uses for its ratios and intervals, given
 * the lowest coverage among its intervals (it depends on the rounds only)
 * and, for a report whose intervals are judged together (an A/B), how many
 * they are.
 */
export function statisticsWording(
  confidence: number,
  family?: { intervals: number },
): string {
  const level = family
    ? `each at this level so that all ${family.intervals} intervals of the run hold together at 95% (Bonferroni); ` +
      `the min–max range of the ratios when there are too few rounds for it`
    : `at least 95% from 9 rounds on, the min–max range of the ratios below that`;
  return `Each ratio is the median of the per-round ratios (the runs of one round ran ` +
    `next to each other, under the same load); [low, high] is its ${
      confidenceText(confidence)
    } confidence interval (distribution-free, from the order statistics of those ratios; ` +
    `${level}). ` +
    `Spread: half the min–max range of one allocator's runs, relative to their median.`;
}
