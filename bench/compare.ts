/**
 * The allocator comparison runner (`make bench`, `deno task compare`).
 *
 *   compare [--quick] [--rounds N] ...         every workload under every allocator
 *   compare --a SPEC --b SPEC ...              A/B: GO / NO-GO verdict of the seeds
 *   compare [options] -- COMMAND [ARGS...]     any program under every allocator
 *
 * Every mode runs interleaved rounds after a warm-up: in each round every
 * allocator runs each item once, in an order rotated every time, so drift in
 * the machine's load spreads over all allocators instead of hitting one.
 * Figures are medians over the rounds (for A/B, medians of the rounds'
 * paired ratios, see verdict.ts).  `compare()` is also what the Deno
 * package's CLI (`hakozuna compare`) calls.
 */
import { join } from "node:path";
import {
  type Allocator,
  ALLOCATOR_NAMES,
  describe,
  findAllocators,
  hakozunaPath,
  type Missing,
  pinLibraries,
  resolveSide,
} from "./allocators.ts";
import {
  ensurePrograms,
  type Measured,
  parseOpsPerSec,
  runMeasured,
  sha256,
  verifyMalloc,
} from "./exec.ts";
import {
  type AllocatorResult,
  loadavg,
  machineInfo,
  mib,
  ratioText,
  type Results,
  type Run,
  si,
  spread,
  summarize,
  toMarkdown,
  writeReports,
} from "./report.ts";
import { type Change, median, pairedChange } from "./stats.ts";
import { interval, pct, verdict } from "./verdict.ts";
import { programPath, ROOT, type Workload, workloads } from "./workloads.ts";

const USAGE = `usage:
  deno task compare [options]                   every workload under every allocator
  deno task compare --a SPEC --b SPEC [options] A/B comparison with a GO/NO-GO verdict
  deno task compare [options] -- COMMAND [ARGS…] your own program under every allocator

options:
  --quick            shorter workloads and fewer rounds (make bench QUICK=1)
  --rounds N         measured rounds after the warm-up (default: 5; A/B 20; command 5; --quick 3)
  --warmup N         unmeasured warm-up rounds first (default 1)
  --hakozuna PATH    hakozuna library to use (default: $HAKOZUNA_LIB, else native/zig-out/lib/libhakozuna.so)
  --allocators LIST  comma-separated subset of ${ALLOCATOR_NAMES.join(",")}
  --only REGEX       only the workloads whose name matches
  --out DIR          where reports go (default bench/results)
  --a SPEC, --b SPEC A/B sides: an allocator name or a .so path (default hakozuna)
  --a-policy P, --b-policy P
                     run that side with HZ_POLICY=P (e.g. compare two hakozuna policies)

Exit status: 0 done; 1 a run failed, an A/B verdict is NO-GO, or a command's exit
status or stdout differed from glibc's; 2 usage error; 3 an A/B verdict is
INCONCLUSIVE (too noisy to decide).`;

interface Options {
  quick: boolean;
  rounds?: number;
  warmup: number;
  hakozuna?: string;
  allocators?: string[];
  only?: RegExp;
  out: string;
  a?: string;
  b?: string;
  aPolicy?: string;
  bPolicy?: string;
  command: string[];
  help: boolean;
}

class UsageError extends Error {}

function parseOptions(args: string[]): Options {
  const o: Options = {
    quick: false,
    warmup: 1,
    out: join(ROOT, "bench", "results"),
    command: [],
    help: false,
  };
  const count = (flag: string, v: string, min: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) {
      throw new UsageError(`${flag} wants an integer >= ${min}, got "${v}"`);
    }
    return n;
  };
  for (let i = 0; i < args.length; i++) {
    let arg = args[i];
    if (arg === "--") {
      o.command = args.slice(i + 1);
      break;
    }
    if (!arg.startsWith("-")) { // `compare prog args` without `--`
      o.command = args.slice(i);
      break;
    }
    let value: string | undefined;
    const eq = arg.indexOf("=");
    if (arg.startsWith("--") && eq > 0) {
      [arg, value] = [arg.slice(0, eq), arg.slice(eq + 1)];
    }
    const next = () => {
      if (value !== undefined) return value;
      if (i + 1 >= args.length) throw new UsageError(`${arg} needs a value`);
      return args[++i];
    };
    switch (arg) {
      case "--quick":
        o.quick = true;
        break;
      case "--rounds":
        o.rounds = count(arg, next(), 1);
        break;
      case "--warmup":
        o.warmup = count(arg, next(), 0);
        break;
      case "--hakozuna":
        o.hakozuna = next();
        break;
      case "--allocators": {
        o.allocators = next().split(",").map((s) => s.trim()).filter(Boolean);
        const bad = o.allocators.filter((a) => !ALLOCATOR_NAMES.includes(a));
        if (bad.length) {
          throw new UsageError(
            `unknown allocator ${bad.join(", ")} (known: ${
              ALLOCATOR_NAMES.join(", ")
            })`,
          );
        }
        break;
      }
      case "--only": {
        const re = next();
        try {
          o.only = new RegExp(re);
        } catch {
          throw new UsageError(`--only: bad regular expression ${re}`);
        }
        break;
      }
      case "--out":
        o.out = next();
        break;
      case "--a":
        o.a = next();
        break;
      case "--b":
        o.b = next();
        break;
      case "--a-policy":
        o.aPolicy = next();
        break;
      case "--b-policy":
        o.bPolicy = next();
        break;
      case "-h":
      case "--help":
        o.help = true;
        break;
      default:
        throw new UsageError(`unknown option ${arg}`);
    }
  }
  return o;
}

// ---- the interleaved loop ---------------------------------------------------

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

function fmtTime(s: number): string {
  return s < 60
    ? `${s.toFixed(0)}s`
    : `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}s`;
}

/**
 * Runs warmup+rounds rounds; in each, every allocator runs every item once,
 * the allocator order rotated by round and item.  `run` gets `measured`
 * false during the warm-up; it returns false to drop an allocator from an
 * item (after a failure).
 */
async function interleave<T>(
  allocs: Allocator[],
  items: T[],
  label: (item: T) => string,
  rounds: number,
  warmup: number,
  run: (item: T, alloc: Allocator, measured: boolean) => Promise<boolean>,
): Promise<void> {
  const dropped = new Set<string>();
  const total = (warmup + rounds) * items.length * allocs.length;
  const progress = new Progress(total);
  let done = 0;
  for (let round = 0; round < warmup + rounds; round++) {
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
async function prepare(allocs: Allocator[]) {
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

// ---- workload suite (full comparison and A/B) --------------------------------

/** Runs the workloads interleaved; returns per-workload results keyed by allocator name. */
async function measureWorkloads(
  allocs: Allocator[],
  list: Workload[],
  rounds: number,
  warmup: number,
): Promise<Results["workloads"]> {
  const runs = new Map<string, Run[]>();
  const errors = new Map<string, string>();
  const key = (w: Workload, a: Allocator) => `${w.name}\0${a.name}`;
  await interleave(
    allocs,
    list,
    (w) => w.name,
    rounds,
    warmup,
    async (w, alloc, measured) => {
      const m = await runMeasured(alloc, programPath(w), w.args);
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
      allocs.map((
        a,
      ): [string, AllocatorResult] => [
        a.name,
        summarize(runs.get(key(w, a)) ?? [], errors.get(key(w, a))),
      ]),
    ),
  }));
}

function selectWorkloads(o: Options): Workload[] {
  const list = workloads(o.quick ? "quick" : "full").filter((w) =>
    !o.only || o.only.test(w.name)
  );
  if (!list.length) {
    throw new UsageError(`--only ${o.only} matches no workload`);
  }
  return list;
}

function methodText(rounds: number, warmup: number, quick: boolean): string {
  const n = (k: number, what: string) => `${k} ${what}${k === 1 ? "" : "s"}`;
  return `${n(rounds, "round")} after ${
    n(warmup, "warm-up round")
  }, rotating order, medians${quick ? ", QUICK sizes" : ""}`;
}

async function suiteMode(o: Options): Promise<number> {
  const list = selectWorkloads(o);
  let { found, missing } = await findAllocators({ hakozuna: o.hakozuna });
  if (o.allocators) {
    found = found.filter((a) => o.allocators!.includes(a.name));
    missing = missing.filter((m) => o.allocators!.includes(m.name));
  }
  reportMissing(missing);
  if (!found.length) throw new Error("no allocator to measure");
  const reference = found.some((a) => a.name === "hakozuna")
    ? "hakozuna"
    : found[0].name;
  const rounds = o.rounds ?? (o.quick ? 3 : 5);
  await using libs = await prepare(found);
  const machine = await machineInfo();
  console.error(
    `compare: ${list.length} workloads × ${found.length} allocators (${
      found.map((a) => a.name).join(", ")
    }), ` +
      `${methodText(rounds, o.warmup, o.quick)}`,
  );
  const results: Results = {
    machine: {
      ...machine,
      method: methodText(rounds, o.warmup, o.quick),
      rounds,
      warmup: o.warmup,
      scale: o.quick ? "quick" : "full",
      reference,
      libraries: libs.origins,
      missing: Object.fromEntries(missing.map((m) => [m.name, m.why])),
    },
    allocators: found.map((a) => a.name),
    workloads: await measureWorkloads(libs.pinned, list, rounds, o.warmup),
  };
  results.machine.loadavgEnd = loadavg();
  const notes = [
    ...(reference !== "hakozuna"
      ? [`hakozuna was not measured, so ratios are to ${reference}.`]
      : []),
    ...missing.map((m) => `Missing: ${m.name} (${m.why}; ${m.fix}).`),
  ];
  const paths = await writeReports(results, reference, notes, o.out, "latest");
  const md = toMarkdown(results, reference, notes);
  console.log(md.slice(0, md.indexOf("## Every figure")).trimEnd());
  console.log(`\nwrote ${paths.join(", ")}`);
  reportMissing(missing);
  const failed = results.workloads.flatMap((w) =>
    Object.entries(w.results).filter(([, r]) => r.error).map(([a, r]) =>
      `${w.name} under ${a}: ${r.error}`
    )
  );
  for (const f of failed) console.error(`compare: FAILED ${f}`);
  return failed.length ? 1 : 0;
}

function reportMissing(missing: Missing[]) {
  for (const m of missing) {
    console.error(
      `compare: ${m.name} is missing (${m.why}); to add it: ${m.fix}`,
    );
  }
}

// ---- A/B ------------------------------------------------------------------------

async function abMode(o: Options): Promise<number> {
  const side = async (
    name: "A" | "B",
    spec: string | undefined,
    policy: string | undefined,
  ): Promise<Allocator> => {
    const base = await resolveSide(spec ?? hakozunaPath(o.hakozuna), {
      hakozuna: o.hakozuna,
    });
    return {
      name,
      lib: base.lib,
      env: policy ? { HZ_POLICY: policy } : undefined,
    };
  };
  const a = await side("A", o.a, o.aPolicy),
    b = await side("B", o.b, o.bPolicy);
  const list = selectWorkloads(o);
  const rounds = o.rounds ?? (o.quick ? 3 : 20);
  await using libs = await prepare([a, b]);
  console.error(`compare: A = ${describe(a)}\ncompare: B = ${describe(b)}`);
  console.error(
    `compare: ${list.length} workloads, ${
      methodText(rounds, o.warmup, o.quick)
    }, A B / B A alternating`,
  );
  const machine = await machineInfo();
  const results: Results = {
    machine: {
      ...machine,
      method: methodText(rounds, o.warmup, o.quick),
      rounds,
      warmup: o.warmup,
      scale: o.quick ? "quick" : "full",
      reference: "A",
      sides: { A: describe(a), B: describe(b) },
      libraries: libs.origins,
    },
    allocators: ["A", "B"],
    workloads: await measureWorkloads(libs.pinned, list, rounds, o.warmup),
  };
  results.machine.loadavgEnd = loadavg();
  const changes = new Map<string, Change | null>();
  const rows = [[
    "workload",
    "A median",
    "B median",
    "B/A",
    `interval`,
    "A spread",
    "B spread",
  ]];
  for (const w of results.workloads) {
    const ra = w.results.A, rb = w.results.B;
    // Runs of a side that never failed are one per round, in round order:
    // ra.runs[i] and rb.runs[i] ran next to each other.
    const c = ra.error || rb.error
      ? null
      : pairedChange(ra.runs.map((r) => r.value), rb.runs.map((r) => r.value));
    changes.set(w.name, c);
    rows.push([
      w.name,
      ra.median != null ? si(ra.median) : "failed",
      rb.median != null ? si(rb.median) : "failed",
      c ? pct(c.delta) : "–",
      c ? interval(c) : "–",
      spread(ra),
      spread(rb),
    ]);
  }
  const v = verdict(changes);
  const widths = rows[0].map((_, i) =>
    Math.max(...rows.map((r) => r[i].length))
  );
  const table = rows.map((r) =>
    r.map((c, i) => (i ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(
      "  ",
    )
  ).join("\n");
  const confidence = [...changes.values()].find((c) => c)?.confidence ?? 0;
  const summary = `verdict: ${v.verdict} — ${v.reasons.join("; ")}` +
    v.warnings.map((w) =>
      `\nwarning: ${w} (DESIGN.md §3: NO-GO unless B is a policy lane)`
    ).join("");
  console.log(
    `A = ${describe(a)}\nB = ${describe(b)}\n\n${table}\n\n${summary}`,
  );
  console.log(
    `B/A is the median of the rounds' paired ratios; interval: its ${
      Math.round(confidence * 100)
    }% confidence interval; spread: half the min–max range of a side's runs.`,
  );
  const notes = [`A = ${describe(a)}`, `B = ${describe(b)}`, summary];
  const paths = await writeReports(results, "A", notes, o.out, "ab-latest");
  console.log(`wrote ${paths.join(", ")}`);
  if (v.verdict === "NO-GO") return 1;
  return v.verdict === "INCONCLUSIVE" ? 3 : 0;
}

// ---- any command ----------------------------------------------------------------

async function commandMode(o: Options): Promise<number> {
  let { found, missing } = await findAllocators({ hakozuna: o.hakozuna });
  if (o.allocators) {
    found = found.filter((a) =>
      o.allocators!.includes(a.name) || a.name === "glibc"
    );
    missing = missing.filter((m) => o.allocators!.includes(m.name));
  }
  reportMissing(missing);
  const rounds = o.rounds ?? (o.quick ? 3 : 5);
  await using libs = await prepare(found);
  const [cmd, ...args] = o.command;
  console.error(
    `compare: ${o.command.join(" ")} under ${
      found.map((a) => a.name).join(", ")
    }; ` +
      methodText(rounds, o.warmup, false),
  );
  const runs = new Map<string, { m: Measured; hash: string }[]>();
  await interleave(
    libs.pinned,
    [o.command],
    () => cmd,
    rounds,
    o.warmup,
    async (_, alloc, measured) => {
      const m = await runMeasured(alloc, cmd, args);
      if (
        m.status === "exit:127" && /rusage_exec: cannot run/.test(m.stderr)
      ) throw new Error(m.stderr.trim());
      if (measured) {
        const list = runs.get(alloc.name) ?? [];
        list.push({ m, hash: await sha256(m.stdout) });
        runs.set(alloc.name, list);
      }
      return true;
    },
  );

  const glibc = runs.get("glibc")!;
  const glibcWall = median(glibc.map((r) => r.m.wallS));
  const glibcStatus = glibc[0].m.status;
  const deterministic = glibc.every((r) => r.hash === glibc[0].hash);
  let mismatch = false;
  const rows = [[
    "allocator",
    "wall s (median)",
    "min–max",
    "vs glibc",
    "peak RSS MiB",
    "exit",
    "stdout vs glibc",
  ]];
  for (const alloc of found) {
    const rs = runs.get(alloc.name)!;
    const walls = rs.map((r) => r.m.wallS);
    const statuses = [...new Set(rs.map((r) => r.m.status))];
    const sameStatus = statuses.length === 1 && statuses[0] === glibcStatus;
    let stdout: string;
    if (alloc.name === "glibc") {
      stdout = deterministic ? "(reference)" : "varies between glibc runs";
    } else if (!deterministic) {
      stdout = "not compared (glibc's own runs differ)";
    } else {
      const same = rs.filter((r) => r.hash === glibc[0].hash).length;
      stdout = same === rs.length
        ? "same"
        : `DIFFERS in ${rs.length - same}/${rs.length} runs`;
      if (same !== rs.length) mismatch = true;
    }
    if (!sameStatus) mismatch = true;
    rows.push([
      alloc.name,
      median(walls).toFixed(3),
      `${Math.min(...walls).toFixed(3)}–${Math.max(...walls).toFixed(3)}`,
      ratioText(median(walls) / glibcWall),
      mib(median(rs.map((r) => r.m.peakRssKiB))),
      sameStatus
        ? statuses[0]
        : `${statuses.join(",")} (glibc: ${glibcStatus})`,
      stdout,
    ]);
  }
  const widths = rows[0].map((_, i) =>
    Math.max(...rows.map((r) => r[i].length))
  );
  console.log(
    rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd())
      .join("\n"),
  );
  console.log(
    `\n${methodText(rounds, o.warmup, false)}; "vs glibc" is the ratio of ` +
      "median wall times (below 1 = faster than glibc).",
  );
  if (rounds < 2) {
    console.log(
      "With one round, a program whose output varies from run to run cannot be told apart from a mismatch.",
    );
  }
  if (mismatch) {
    console.log(
      "Some allocator's exit status or stdout differed from glibc's (see above).",
    );
  }
  return mismatch ? 1 : 0;
}

// ---- entry ------------------------------------------------------------------------

/** Runs the comparison with the task's arguments; returns the exit status. */
export async function compare(args: string[]): Promise<number> {
  let o: Options;
  try {
    o = parseOptions(args);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`compare: ${e.message}\n\n${USAGE}`);
    return 2;
  }
  if (o.help) {
    console.log(USAGE);
    return 0;
  }
  try {
    if (o.command.length) return await commandMode(o);
    if (o.a || o.b || o.aPolicy || o.bPolicy) return await abMode(o);
    return await suiteMode(o);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`compare: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    console.error(`compare: ${e instanceof Error ? e.message : e}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await compare(Deno.args));
