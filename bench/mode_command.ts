/**
 * Command mode (`compare -- prog args`): any program under glibc and every
 * other allocator found, in interleaved rounds; wall time, CPU time and peak
 * RSS of each ÷ glibc's, a verdict line per allocator, and whether its exit
 * status and stdout match glibc's.  A program no preload can reach (static,
 * set-user-ID, or a script whose interpreter is) is refused before anything
 * runs; one that drops the preload on its own is caught by preload_probe.so
 * in the warm-up, before anything is measured.
 */
import { basename, join } from "node:path";
import { sha256 } from "../ffi/cache.ts";
import { reading } from "./analysis.ts";
import { checkPreloadable, type Measured, runMeasured } from "./exec.ts";
import { changeText, mib, statisticsWording } from "./format.ts";
import { LoadMonitor, probeMachine } from "./machine.ts";
import { loadWasLow, type Results, summarize } from "./model.ts";
import type { Options } from "./options.ts";
import { destination, writeFiles } from "./output.ts";
import { machineLines } from "./render_markdown.ts";
import { loadLine, mdTable, table } from "./render_terminal.ts";
import { interleave, methodText, prepare } from "./runner.ts";
import { chooseAllocators } from "./select.ts";
import { BUILD_DIR } from "./workloads.ts";
import type { Allocator } from "./model.ts";

const PROBE = join(BUILD_DIR, "preload_probe.so");

/**
 * `alloc` with preload_probe.so preloaded first, reporting into `file`:
 * the probe defines no allocator function, so the allocator's malloc is
 * still the one the program calls.
 */
function withProbe(alloc: Allocator, file: string): Allocator {
  return {
    ...alloc,
    lib: alloc.lib ? `${PROBE}:${alloc.lib}` : PROBE,
    env: { ...alloc.env, HZ_PRELOAD_PROBE: file },
  };
}
import { type Change, median, pairedChange } from "./stats.ts";

/** "less" / "more" / "within noise" for a time or memory ratio. */
function lessMore(c: Change, less: string, more: string): string {
  const r = reading(c);
  return r === "lower" ? less : r === "higher" ? more : "within noise";
}

export async function commandMode(o: Options): Promise<number> {
  const [cmd, ...args] = o.command;
  checkPreloadable(cmd);
  const load = new LoadMonitor();
  const { found } = await chooseAllocators(o, "glibc");
  const rounds = o.rounds ?? (o.quick ? 3 : 5);
  const method = methodText(rounds, o.warmup, false);
  await using libs = await prepare(found);
  console.error(
    `compare: ${o.command.join(" ")} under ${
      found.map((a) => a.name).join(", ")
    }; ${method}`,
  );
  const runs = new Map<string, { m: Measured; hash: string }[]>();
  // The warm-up runs (or, without warm-up, one run first) carry the probe.
  const probeFile = (a: Allocator) => join(libs.dir, `probe-${a.name}`);
  const probed = new Set<string>();
  const checkProbe = async (alloc: Allocator) => {
    if (probed.has(alloc.name)) return;
    probed.add(alloc.name);
    const text = await Deno.readTextFile(probeFile(alloc)).catch(() => "");
    if (!text.trim()) {
      throw new Error(
        `the preload did not take: under ${alloc.name}, ${cmd} never loaded ` +
          `LD_PRELOAD (build/bench/preload_probe.so wrote nothing), so every allocator ` +
          `would measure the same malloc. Does it clear LD_PRELOAD, or run a static or ` +
          `set-user-ID program? Nothing was measured.`,
      );
    }
  };
  if (o.warmup === 0) {
    for (const alloc of libs.pinned) {
      await runMeasured(withProbe(alloc, probeFile(alloc)), cmd, args);
    }
  }
  await interleave(
    libs,
    [o.command],
    () => cmd,
    rounds,
    o.warmup,
    async (_, alloc, measured) => {
      if (measured) await checkProbe(alloc);
      const run = () =>
        runMeasured(
          measured ? alloc : withProbe(alloc, probeFile(alloc)),
          cmd,
          args,
        );
      // One thread as far as the runner knows: no placement probe.
      const m = measured ? await load.measure(1, run) : await run();
      if (m.status === "exit:127" && /rusage_exec: cannot run/.test(m.stderr)) {
        throw new Error(m.stderr.trim());
      }
      if (measured) {
        const list = runs.get(alloc.name) ?? [];
        list.push({ m, hash: sha256(m.stdout) });
        runs.set(alloc.name, list);
      }
      return true;
    },
  );
  const probe = await probeMachine();
  const res: Results = {
    mode: "command",
    machine: {
      ...probe,
      load: load.finish(probe.cores),
      method,
      rounds,
      warmup: o.warmup,
      scale: "full",
      subject: "each allocator",
      baselines: ["glibc"],
      libraries: libs.libraries,
    },
    allocators: found.map((a) => a.name),
    workloads: [{
      name: basename(cmd),
      args: o.command,
      unit: "1/s",
      results: Object.fromEntries(found.map((a) => [
        a.name,
        summarize((runs.get(a.name) ?? []).map(({ m }) => ({
          value: 1 / m.wallS,
          wallS: m.wallS,
          cpuS: m.userS + m.sysS,
          peakRssKiB: m.peakRssKiB,
        }))),
      ])),
    }],
  };

  const glibc = runs.get("glibc")!;
  const glibcStatus = glibc[0].m.status;
  const deterministic = glibc.every((r) => r.hash === glibc[0].hash);
  const pick = (name: string, f: (m: Measured) => number) =>
    runs.get(name)!.map((r) => f(r.m));
  const wall = (m: Measured) => m.wallS,
    cpu = (m: Measured) => m.userS + m.sysS;
  const rss = (m: Measured) => m.peakRssKiB;
  let mismatch = false;
  const rows = [[
    "allocator",
    "wall s",
    "wall ÷ glibc",
    "CPU s",
    "CPU ÷ glibc",
    "peak RSS MiB",
    "RSS ÷ glibc",
    "exit",
    "stdout vs glibc",
  ]];
  const verdicts: string[] = [];
  let lowest = 1;
  for (const alloc of found) {
    const rs = runs.get(alloc.name)!;
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
    const vs = (f: (m: Measured) => number) =>
      pairedChange(pick("glibc", f), pick(alloc.name, f));
    const w = vs(wall), c = vs(cpu), r = vs(rss);
    lowest = Math.min(lowest, w.confidence);
    const isRef = alloc.name === "glibc";
    rows.push([
      alloc.name,
      median(pick(alloc.name, wall)).toFixed(3),
      isRef ? "–" : changeText(w),
      median(pick(alloc.name, cpu)).toFixed(3),
      isRef ? "–" : changeText(c),
      mib(median(pick(alloc.name, rss))),
      isRef ? "–" : changeText(r),
      sameStatus
        ? statuses[0]
        : `${statuses.join(",")} (glibc: ${glibcStatus})`,
      stdout,
    ]);
    if (!isRef) {
      verdicts.push(
        `${alloc.name} vs glibc: wall ${changeText(w)} (${
          lessMore(w, "faster", "slower")
        }), ` +
          `CPU ${changeText(c)} (${lessMore(c, "less", "more")}), ` +
          `peak RSS ${changeText(r)} (${
            lessMore(r, "less memory", "more memory")
          })`,
      );
    }
  }
  const notes = [
    `Ratios are allocator ÷ glibc (below 1×: less time or memory than glibc).`,
    statisticsWording(lowest),
    ...(rounds < 2
      ? [
        "With one round, a program whose output varies from run to run cannot be told apart from a mismatch.",
      ]
      : []),
    ...(mismatch
      ? [
        "Some allocator's exit status or stdout differed from glibc's (see above).",
      ]
      : []),
  ];
  const dest = destination({
    mode: "command",
    quick: o.quick,
    quiet: true,
    out: o.out,
  });
  const md = [
    `# Command comparison: \`${o.command.join(" ")}\``,
    ``,
    ...machineLines(res.machine),
    ``,
    mdTable(rows),
    ``,
    ...verdicts.map((v) => `- ${v}`),
    ``,
    ...notes,
    ``,
  ].join("\n");
  const paths = await writeFiles(dest, [
    [".json", JSON.stringify(res, null, 2) + "\n"],
    [".md", md],
  ]);
  console.log(
    [
      table(rows),
      ``,
      ...verdicts.map((v) => `verdict: ${v}`),
      ``,
      ...notes,
      ...(loadWasLow(res.machine.load)
        ? []
        : [`Load: ${loadLine(res.machine)}`]),
      `wrote ${paths.join(", ")}`,
    ].join("\n"),
  );
  return mismatch ? 1 : 0;
}
