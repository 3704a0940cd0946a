/**
 * The machine probe: CPU, kernel, glibc, the toolchain, this checkout's
 * commit, the libraries measured (path, SHA-256, Debian package and
 * version), the load average before, during and after a run, and where the
 * host placed the two CPUs around each multi-threaded run.
 */
import { cpus } from "node:os";
import { join } from "node:path";
import process from "node:process";
import type { Measured } from "./exec.ts";
import type { Load, Machine, Placement, Run } from "./model.ts";
import { BUILD_DIR, ROOT } from "./workloads.ts";

async function output(cmd: string, args: string[]): Promise<string | null> {
  try {
    const out = await new Deno.Command(cmd, {
      args,
      stdout: "piped",
      stderr: "null",
    }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : null;
  } catch {
    return null;
  }
}

/** 1, 5 and 15 minute load averages, two decimals. */
export function loadavg(): number[] {
  return Deno.loadavg().map((x) => Math.round(x * 100) / 100);
}

/**
 * CPU seconds every core together has spent busy since boot (/proc/stat,
 * in USER_HZ = 100 ticks a second); null where it cannot be read.
 */
export function busySeconds(): number | null {
  try {
    const fields = Deno.readTextFileSync("/proc/stat").split("\n")[0]
      .trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal
    const [user, nice, system, , , irq, softirq, steal] = fields;
    return (user + nice + system + irq + softirq + (steal ?? 0)) / 100;
  } catch {
    return null;
  }
}

/** This process's own CPU seconds so far. */
function ownSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/** A measured run with, where it was probed, the placement around it (`Run.placementNs`). */
export type PlacedRun = Measured & Pick<Run, "placementNs">;

/**
 * Samples the load average around and during a run, and measures the other
 * work beside it: around each measured run, the CPU the whole machine spent
 * minus what the run and this process spent. The load average alone cannot
 * tell: the workloads' own threads raise it (a lane of 8 threads on 2 cores
 * puts it above 4 on an idle machine).
 */
export class LoadMonitor {
  readonly before: number[] = loadavg();
  readonly during: number[] = [];
  #last = -Infinity;
  #runStart: { at: number; busy: number | null; own: number } | null = null;
  #otherCpuS = 0;
  #measuredWallS = 0;
  #placement: PlacementProbe;
  /** `readProbe` reads the two-CPU round trip (a test passes its own). */
  constructor(readProbe: () => Promise<number | null> = readPlacement) {
    this.#placement = new PlacementProbe(readProbe);
  }
  /**
   * Runs one measured run, `run`, and accounts for it (`#sample`, `#ran`). A
   * run of `threads` > 1 is bracketed by the two-CPU probe: while the probe
   * reads far (`isFar`) the run waits for it to read near (at most
   * `PLACEMENT_WAIT_MS`), and a run after which it reads far is run again,
   * up to `PLACEMENT_ATTEMPTS` times in all; the run kept carries the two
   * readings around it. Far means the host had placed the two CPUs apart,
   * which slows any workload that passes memory between threads 2–2.5
   * times whatever the allocator (bench/LEDGER.md, "where the host places
   * the two CPUs").
   */
  async measure(
    threads: number,
    run: () => Promise<Measured>,
  ): Promise<PlacedRun> {
    const probe = () => threads > 1 ? this.#placement.probe() : null;
    for (let attempt = 1;; attempt++) {
      let before = await probe();
      // A far placement lasts seconds: wait it out, probing, before running.
      for (
        const start = performance.now();
        this.#placement.isFar(before) &&
        performance.now() - start < PLACEMENT_WAIT_MS;
      ) {
        await new Promise((done) => setTimeout(done, 50));
        before = await probe();
      }
      this.#sample();
      const m = await run();
      this.#ran(m.userS + m.sysS);
      const after = await probe();
      const far = this.#placement.isFar(before) ||
        this.#placement.isFar(after);
      if (!m.ok || !far || attempt === PLACEMENT_ATTEMPTS) {
        return before === null || after === null
          ? m
          : { ...m, placementNs: [before, after] };
      }
      this.#placement.repeatedRuns++;
    }
  }
  /** Records the 1-minute load, at most every 5 seconds; call before a measured run. */
  #sample(): void {
    const now = performance.now();
    this.#runStart = { at: now, busy: busySeconds(), own: ownSeconds() };
    if (now - this.#last < 5000) return;
    this.#last = now;
    this.during.push(loadavg()[0]);
  }
  /** Call after the measured run that `#sample` preceded, with the CPU seconds it used. */
  #ran(cpuS: number): void {
    const start = this.#runStart;
    this.#runStart = null;
    const busy = busySeconds();
    if (!start || start.busy === null || busy === null) return;
    const wallS = (performance.now() - start.at) / 1000;
    const own = ownSeconds() - start.own;
    this.#otherCpuS += Math.max(0, busy - start.busy - cpuS - own);
    this.#measuredWallS += wallS;
  }
  /** A warning line when the load is already above half the cores at the start. */
  startWarning(cores: number): string | null {
    const now = this.before[0] ?? 0;
    return now > cores / 2
      ? `compare: WARNING: load average ${now} is above half the ${cores} cores before ` +
        "the run: other work is running, the figures will be noisy and the report will " +
        "go to the scratch folder"
      : null;
  }
  /** The load record, taking the after sample now. */
  finish(cores: number): Load {
    return {
      before: this.before,
      during: this.during,
      after: loadavg(),
      limit: cores / 2,
      otherCores: this.#measuredWallS > 0
        ? Math.round(this.#otherCpuS / this.#measuredWallS * 100) / 100
        : null,
      otherLimit: cores / 4,
      ...(this.#placement.record() ?? {}),
    };
  }
}

/** A run is repeated at most this many times in all (`LoadMonitor.measure`). */
export const PLACEMENT_ATTEMPTS = 3;
/** How long a run waits for the CPUs to come back together before it starts anyway. */
const PLACEMENT_WAIT_MS = 10_000;
/** A probe this many times the fastest round trip seen reads far. */
export const FAR_FACTOR = 2.5;

/** Whether a probe of `ns` reads far against the fastest round trip seen. */
export function isFar(ns: number | null, fastestNs: number): boolean {
  return ns !== null && ns > fastestNs * FAR_FACTOR;
}

/** One run of bench/placement.c: the round trip in nanoseconds, or null. */
async function readPlacement(): Promise<number | null> {
  const out = await new Deno.Command(join(BUILD_DIR, "placement"), {
    stdout: "piped",
    stderr: "null",
  }).output().catch(() => null);
  if (!out?.success) return null;
  const text = new TextDecoder().decode(out.stdout);
  const ns = Number(/round_trip_ns=(\d+)/.exec(text)?.[1]);
  return Number.isFinite(ns) ? ns : null;
}

/** The two-CPU round-trip probe and what it has read. */
class PlacementProbe {
  #fastestNs = Infinity;
  #usable = true;
  repeatedRuns = 0;
  constructor(private read: () => Promise<number | null>) {}
  /** One probe's round trip; null (from then on) where it cannot run. */
  async probe(): Promise<number | null> {
    if (!this.#usable) return null;
    const ns = await this.read();
    if (ns === null) {
      this.#usable = false;
      return null;
    }
    this.#fastestNs = Math.min(this.#fastestNs, ns);
    return ns;
  }
  isFar(ns: number | null): boolean {
    return isFar(ns, this.#fastestNs);
  }
  record(): { placement: Placement } | null {
    return Number.isFinite(this.#fastestNs)
      ? {
        placement: {
          fastestNs: this.#fastestNs,
          farFactor: FAR_FACTOR,
          repeatedRuns: this.repeatedRuns,
        },
      }
      : null;
  }
}

/** The Debian package owning `path` and its version, if dpkg knows it. */
export async function packageOf(
  path: string,
): Promise<{ package: string; version: string } | null> {
  let real = path;
  try {
    real = await Deno.realPath(path);
  } catch { /* keep the path as given */ }
  for (const p of new Set([path, real])) {
    const owner = await output("dpkg-query", ["-S", p]);
    const pkg = owner?.split("\n")[0].split(":")[0];
    if (!pkg) continue;
    const version = await output("dpkg-query", [
      "-W",
      "-f=${Version}",
      pkg,
    ]);
    if (version) return { package: pkg, version };
  }
  return null;
}

/**
 * The commit of this checkout, `+dirty` when what a run measures has local
 * changes: the library (native/) or the workloads and harness (bench/, but
 * for its results and ledger).
 */
async function commit(): Promise<string | null> {
  const head = await output("git", [
    "-C",
    ROOT,
    "rev-parse",
    "--short=12",
    "HEAD",
  ]);
  if (!head) return null;
  const dirty = await output("git", [
    "-C",
    ROOT,
    "status",
    "--porcelain",
    "--",
    "native",
    "bench",
    ":(exclude)bench/results",
    ":(exclude)bench/LEDGER.md",
  ]);
  return dirty ? `${head}+dirty` : head;
}

/** `zig version`: $ZIG (make passes it), else the pinned toolchain, else PATH. */
async function zigVersion(): Promise<string | null> {
  const candidates: string[] = [];
  const env = Deno.env.get("ZIG");
  if (env) candidates.push(env);
  try {
    const pinned = (await Deno.readTextFile(join(ROOT, "toolchain.env")))
      .match(/^ZIG_VERSION\s*:?=\s*(\S+)/m)?.[1];
    if (pinned) {
      candidates.push(join(ROOT, ".tools", `zig-${pinned}`, "ziglang", "zig"));
    }
  } catch { /* no toolchain.env: not a checkout */ }
  candidates.push("zig");
  for (const zig of candidates) {
    const v = await output(zig, ["version"]);
    if (v) return v;
  }
  return null;
}

/** What the figures are measured on (the load is filled in at the end). */
export async function probeMachine(): Promise<
  Pick<
    Machine,
    "cpu" | "cores" | "kernel" | "glibc" | "deno" | "zig" | "commit" | "date"
  >
> {
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
    glibc: (await output("getconf", ["GNU_LIBC_VERSION"]))?.replace(
      /^glibc /,
      "",
    ) ?? "unknown",
    deno: Deno.version.deno,
    zig: await zigVersion(),
    commit: await commit(),
    date: new Date().toISOString(),
  };
}
