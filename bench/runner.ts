/**
 * The interleaved runner every mode shares: warm-up rounds, then measured
 * rounds in which every allocator runs each item once, in an order rotated
 * every round and item, so drift in the machine's load spreads over all
 * allocators instead of hitting one; progress on stderr. Each measured run
 * goes through `LoadMonitor.measure` (machine.ts), which samples the load
 * around it.
 */
import { type Allocator, pinLibraries, type Pinned } from "./allocators.ts";
import {
  ensurePrograms,
  parseOpsPerSec,
  runMeasured,
  verifyMalloc,
} from "./exec.ts";
import type { LoadMonitor, PlacedRun } from "./machine.ts";
import {
  type AllocatorResult,
  type Run,
  summarize,
  type WorkloadResult,
} from "./model.ts";
import { programPath, type Workload } from "./workloads.ts";

/**
 * Progress on stderr: rewritten in place on a terminal; in a log (make bench
 * in CI) a line every 10 seconds, so the log stays readable.
 */
class Progress {
  #tty = Deno.stderr.isTerminal();
  #start = performance.now();
  #lastLine = -Infinity;
  #enc = new TextEncoder();
  constructor(private total: number) {}
  show(done: number, what: string) {
    const now = performance.now();
    if (!this.#tty && now - this.#lastLine < 10_000 && done < this.total) {
      return;
    }
    this.#lastLine = now;
    const el = (now - this.#start) / 1000;
    const left = done > 0 ? (el / done) * (this.total - done) : NaN;
    const line = `[${done}/${this.total} runs, ${fmtTime(el)} elapsed` +
      `${Number.isFinite(left) ? `, ~${fmtTime(left)} left` : ""}] ${what}`;
    Deno.stderr.writeSync(
      this.#enc.encode(this.#tty ? `\r\x1b[K${line}` : `${line}\n`),
    );
  }
  end() {
    if (this.#tty) Deno.stderr.writeSync(this.#enc.encode("\r\x1b[K"));
  }
}

/** 75 -> "1m15s". */
export function fmtTime(s: number): string {
  return s < 60
    ? `${s.toFixed(0)}s`
    : `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}s`;
}

/** How the rounds are run, in one line for the reports. */
export function methodText(
  rounds: number,
  warmup: number,
  quick: boolean,
): string {
  const n = (k: number, what: string) => `${k} ${what}${k === 1 ? "" : "s"}`;
  return `${n(rounds, "round")} after ${
    n(warmup, "warm-up round")
  }, allocators in rotating order, medians${quick ? ", QUICK sizes" : ""}`;
}

/**
 * Runs warmup+rounds rounds; in each, every allocator runs every item once,
 * the allocator order rotated by round and item, and each round after the
 * first on fresh copies of the libraries (`Pinned.repin`).  `run` gets
 * `measured` false during the warm-up; it returns false to drop an
 * allocator from an item (after a failure).
 */
export async function interleave<T>(
  libs: Pinned,
  items: T[],
  label: (item: T) => string,
  rounds: number,
  warmup: number,
  run: (item: T, alloc: Allocator, measured: boolean) => Promise<boolean>,
): Promise<void> {
  const allocs = libs.pinned;
  const dropped = new Set<string>();
  const total = (warmup + rounds) * items.length * allocs.length;
  const progress = new Progress(total);
  let done = 0;
  for (let round = 0; round < warmup + rounds; round++) {
    if (round > 0) await libs.repin();
    const roundName = round < warmup
      ? `warm-up ${round + 1}/${warmup}`
      : `round ${round - warmup + 1}/${rounds}`;
    for (const [ii, item] of items.entries()) {
      const shift = (round + ii) % allocs.length;
      for (const alloc of [...allocs.slice(shift), ...allocs.slice(0, shift)]) {
        const key = `${ii}\0${alloc.name}`;
        progress.show(done, `${roundName} · ${label(item)} · ${alloc.name}`);
        if (!dropped.has(key) && !(await run(item, alloc, round >= warmup))) {
          dropped.add(key);
        }
        done++;
      }
    }
  }
  progress.show(done, "done");
  progress.end();
}

/**
 * Builds the programs, pins the allocators' libraries for the run and checks
 * that each one really replaces malloc.
 */
export async function prepare(allocs: Allocator[]): Promise<Pinned> {
  await ensurePrograms();
  const libs = await pinLibraries(allocs);
  try {
    await verifyMalloc(libs.pinned);
  } catch (e) {
    await libs[Symbol.asyncDispose]();
    throw e;
  }
  return libs;
}

/** The expected length of a run of `list`, from each workload's typical seconds. */
export function expectedSeconds(
  list: Workload[],
  allocators: number,
  rounds: number,
  warmup: number,
): number {
  // Process start, the helper and Deno's bookkeeping: about 30 ms a run;
  // the two-CPU probes around a multi-threaded run 40 ms more.
  const perRound = list.reduce(
    (s, w) => s + w.typicalS + 0.03 + (w.threads > 1 ? 0.04 : 0),
    0,
  );
  return perRound * allocators * (rounds + warmup);
}

/** Runs the workloads interleaved; returns per-workload results keyed by allocator name. */
export async function measureWorkloads(
  libs: Pinned,
  list: Workload[],
  rounds: number,
  warmup: number,
  load: LoadMonitor | null,
): Promise<WorkloadResult[]> {
  const runs = new Map<string, Run[]>();
  const errors = new Map<string, string>();
  const key = (w: Workload, a: Allocator) => `${w.name}\0${a.name}`;
  const allocs = libs.pinned;
  await interleave(
    libs,
    list,
    (w) => w.name,
    rounds,
    warmup,
    async (w, alloc, measured) => {
      const run = () => runMeasured(alloc, programPath(w), w.args);
      const m: PlacedRun = measured && load
        ? await load.measure(w.threads, run)
        : await run();
      const value = m.ok ? parseOpsPerSec(m.stdout) : null;
      if (value === null) {
        const why = m.ok
          ? "printed no ops/s= figure"
          : `ended with ${m.status}`;
        const tail = m.stderr.trim().split("\n").slice(-3).join(" / ");
        errors.set(key(w, alloc), `${why}${tail ? `: ${tail}` : ""}`);
        console.error(
          `\ncompare: ${w.name} under ${alloc.name} ${why}\n${m.stderr.trim()}`,
        );
        return false;
      }
      if (measured) {
        const list = runs.get(key(w, alloc)) ?? [];
        list.push({
          value,
          wallS: m.wallS,
          cpuS: m.userS + m.sysS,
          peakRssKiB: m.peakRssKiB,
          ...(m.placementNs ? { placementNs: m.placementNs } : {}),
        });
        runs.set(key(w, alloc), list);
      }
      return true;
    },
  );
  return list.map((w) => ({
    name: w.name,
    args: [w.program, ...w.args],
    unit: w.unit,
    results: Object.fromEntries(
      allocs.map((a): [string, AllocatorResult] => [
        a.name,
        summarize(runs.get(key(w, a)) ?? [], errors.get(key(w, a))),
      ]),
    ),
  }));
}
