// The harness's rules that need no measurement: where reports go (scratch or
// tracked), the option parser, the refusal of programs no preload reaches,
// the reports rendered from a fixed result, and the copies of the libraries
// each round runs on.
import { deepStrictEqual as eq, ok, throws } from "node:assert";
import { join } from "node:path";
import { UsageError } from "../ffi/args.ts";
import { pinLibraries } from "./allocators.ts";
import { compare } from "./compare.ts";
import { checkPreloadable, elfLinkage, type Measured } from "./exec.ts";
import { isFar, LoadMonitor } from "./machine.ts";
import type { Results, Run } from "./model.ts";
import { loadWasLow, summarize } from "./model.ts";
import { parseOptions } from "./options.ts";
import { destination, RESULTS_DIR, SCRATCH_DIR } from "./output.ts";
import { toMarkdown } from "./render_markdown.ts";
import { toSvg } from "./render_svg.ts";
import { loadLine, summaryLines } from "./render_terminal.ts";
import { interleave } from "./runner.ts";
import { ROOT } from "./workloads.ts";

Deno.test("only a full suite run on a quiet machine writes the tracked latest.*", () => {
  const tracked = destination({ mode: "suite", quick: false, quiet: true });
  eq([tracked.dir, tracked.stem, tracked.tracked], [
    RESULTS_DIR,
    "latest",
    true,
  ]);
  for (
    const k of [
      { mode: "suite", quick: true, quiet: true },
      { mode: "suite", quick: false, quiet: false },
      { mode: "suite", quick: true, quiet: false },
      { mode: "suite", quick: false, partial: true, quiet: true },
      { mode: "ab", quick: false, quiet: true },
      { mode: "command", quick: false, quiet: true },
    ] as const
  ) {
    const d = destination(k);
    eq([d.dir, d.tracked], [SCRATCH_DIR, false], JSON.stringify(k));
  }
  const out = destination({
    mode: "suite",
    quick: true,
    quiet: false,
    out: "/tmp/x",
  });
  eq([out.dir, out.tracked], ["/tmp/x", false]);
});

Deno.test("the scratch folder is ignored by git and the tracked one is not", async () => {
  const ignored = async (path: string) =>
    (await new Deno.Command("git", {
      args: ["-C", ROOT, "check-ignore", "-q", path],
    }).output()).code === 0;
  ok(await ignored(join(SCRATCH_DIR, "latest.md")));
  ok(!(await ignored(join(RESULTS_DIR, "latest.md"))));
});

Deno.test("options: name=path allocators, --out, --only, values with =", () => {
  const o = parseOptions([
    "--allocators",
    "hakozuna,glibc,snmalloc=/opt/libsnmalloc.so",
    "--out=/tmp/r",
    "--rounds",
    "7",
    "--only",
    "larson|dist",
  ]);
  eq(o.allocators, ["hakozuna", "glibc"]);
  eq(o.extra, [{ name: "snmalloc", path: "/opt/libsnmalloc.so" }]);
  eq([o.out, o.rounds, o.only?.source], ["/tmp/r", 7, "larson|dist"]);
  eq(parseOptions(["--quick", "--", "sort", "-n"]).command, ["sort", "-n"]);
  eq(parseOptions(["sort", "--rounds", "3"]).command, [
    "sort",
    "--rounds",
    "3",
  ]);
  throws(() => parseOptions(["--allocators", "snmalloc"]), UsageError);
  throws(() => parseOptions(["--rounds", "0"]), UsageError);
  throws(() => parseOptions(["--rounds"]), /--rounds needs a value/);
  throws(() => parseOptions(["--frobnicate"]), /unknown option --frobnicate/);
});

/** A minimal ELF64 header with `phnum` program headers of the given types. */
function elf(types: number[]): Uint8Array {
  const b = new Uint8Array(64 + 56 * types.length);
  const v = new DataView(b.buffer);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1]);
  v.setBigUint64(0x20, 64n, true);
  v.setUint16(0x36, 56, true);
  v.setUint16(0x38, types.length, true);
  types.forEach((t, i) => v.setUint32(64 + 56 * i, t, true));
  return b;
}

Deno.test("elfLinkage: PT_INTERP means dynamic, none static", () => {
  eq(elfLinkage(elf([6, 3, 1])), "dynamic");
  eq(elfLinkage(elf([1, 1, 2])), "static");
  eq(elfLinkage(new TextEncoder().encode("#!/bin/sh\n".padEnd(80))), "not-elf");
});

Deno.test("a static program is refused before anything runs, exit status 2", async () => {
  // Debian's ldconfig is statically linked; skip where it is not.
  const ldconfig = ["/sbin/ldconfig", "/usr/sbin/ldconfig"].find((p) => {
    try {
      return elfLinkage(Deno.readFileSync(p)) === "static";
    } catch {
      return false;
    }
  });
  if (ldconfig) {
    throws(() => checkPreloadable(ldconfig), /statically linked/);
    eq(await compare(["--rounds", "1", "--", ldconfig, "-p"]), 2);
  }
  // A script is judged by its interpreter; sh is dynamic.
  checkPreloadable("sh");
  throws(() => checkPreloadable("no-such-command-here"), /command not found/);
});

/** Three rounds where hakozuna is 2× glibc's speed and uses 1.5× its memory. */
function fixture(): Results {
  const runs = (value: number, rss: number): Run[] =>
    [1, 1.01, 0.99].map((f) => ({
      value: value * f,
      wallS: 1,
      cpuS: 1,
      peakRssKiB: rss * f,
    }));
  const probe = {
    cpu: "Test CPU",
    cores: 2,
    kernel: "linux test",
    glibc: "2.36",
    deno: "2",
    zig: "0.15.2",
    commit: "abc",
    date: "2026-01-01T00:00:00Z",
  };
  return {
    mode: "suite",
    machine: {
      ...probe,
      load: { before: [0.1], during: [0.2], after: [0.1], limit: 1 },
      method: "3 rounds",
      rounds: 3,
      warmup: 1,
      scale: "full",
      subject: "hakozuna",
      baselines: ["glibc"],
      libraries: {
        hakozuna: { path: "/x/libhakozuna.so", sha256: "ab".repeat(32) },
        glibc: null,
      },
    },
    allocators: ["hakozuna", "glibc"],
    workloads: ["a", "b"].map((name) => ({
      name,
      args: [name],
      unit: "ops/s",
      results: {
        hakozuna: summarize(runs(200, 1536)),
        glibc: summarize(runs(100, 1024)),
      },
    })),
  };
}

Deno.test("reports: one summary line per peer, both charts, one wording", () => {
  const res = fixture();
  const lines = summaryLines(res, "hakozuna");
  eq(lines.length, 1);
  ok(
    lines[0].startsWith("hakozuna vs glibc: throughput 2.00×, peak RSS 1.50×"),
    lines[0],
  );
  const view = {
    subject: "hakozuna",
    baselines: ["glibc"],
    digits: 2,
    stem: "latest",
    title: "Allocator comparison",
    notes: [],
  };
  const md = toMarkdown(res, view);
  ok(md.includes("## Peak RSS: hakozuna ÷ glibc"));
  ok(md.includes("75.0% confidence interval"));
  ok(
    md.includes(
      "| a | 200.0 ±1.0% | 100.0 ±1.0% | ±1.0% | 2.00× [2.00×, 2.00×] |",
    ),
    md,
  );
  const svg = toSvg(res, view);
  ok(svg.includes("Throughput: hakozuna ÷ baseline"));
  ok(svg.includes("Peak RSS: hakozuna ÷ baseline"));
  ok(svg.includes("hakozuna ÷ glibc"));
});

Deno.test("reports: with several peers, one line against the fastest on each workload", () => {
  const res = fixture();
  const runs = (value: number): Run[] =>
    [1, 1.01, 0.99].map((f) => ({
      value: value * f,
      wallS: 1,
      cpuS: 1,
      peakRssKiB: 1024,
    }));
  res.allocators = ["hakozuna", "glibc", "tcmalloc"];
  // a: tcmalloc is fastest, hakozuna 0.80× of it; b: hakozuna 4/3× the
  // faster peer (tcmalloc again), 2× glibc.
  res.workloads[0].results.tcmalloc = summarize(runs(250));
  res.workloads[1].results.tcmalloc = summarize(runs(150));
  const lines = summaryLines(res, "hakozuna");
  eq(lines.length, 3);
  ok(
    lines[2].startsWith(
      "hakozuna vs the fastest other allocator on each workload: throughput 1.03× " +
        "(geometric mean over 2 workloads",
    ),
    lines[2],
  );
  ok(
    lines[2].includes(
      "faster on 1, within noise on 0, slower on 1: a 0.80× of tcmalloc)",
    ),
    lines[2],
  );
  // A workload where a peer failed is left out, and said so.
  res.workloads[1].results.tcmalloc = {
    ...res.workloads[1].results.tcmalloc,
    error: "crashed",
  };
  const partial = summaryLines(res, "hakozuna")[2];
  ok(
    partial.includes("over 1 workloads") &&
      partial.includes("1 not compared, a side failed"),
    partial,
  );
});

Deno.test("quiet means a low load before the run and little other work during it", () => {
  const base = {
    before: [0.3],
    during: [4.2],
    after: [3.9],
    limit: 1,
    otherLimit: 0.5,
  };
  // The workloads' own threads raise the load average: not other work.
  ok(loadWasLow({ ...base, otherCores: 0.1 }));
  ok(!loadWasLow({ ...base, otherCores: 0.8 }));
  ok(!loadWasLow({ ...base, before: [1.6], otherCores: 0.1 }));
  // An older report without the measure: the load average all along.
  ok(!loadWasLow({ before: [0.3], during: [4.2], after: [3.9], limit: 1 }));
  ok(loadWasLow({ before: [0.3], during: [0.6], after: [0.4], limit: 1 }));
});

Deno.test("a run is repeated while a probe around it reads the CPUs placed apart", async () => {
  ok(!isFar(140, 60));
  ok(isFar(400, 60));
  ok(!isFar(null, 60));
  // Before and after each attempt: far after the first run, near around the
  // second; a workload of one thread is never probed.
  const readings = [60, 400, 61, 62];
  const load = new LoadMonitor(() => Promise.resolve(readings.shift() ?? null));
  const ran: number[] = [];
  const run = (): Promise<Measured> => {
    ran.push(ran.length);
    return Promise.resolve({
      status: "exit:0",
      ok: true,
      wallS: 0.1,
      userS: 0.1,
      sysS: 0,
      peakRssKiB: 1024,
      stdout: new Uint8Array(),
      stderr: "",
    });
  };
  const kept = await load.measure(2, run);
  eq(ran.length, 2);
  eq(kept.placementNs, [61, 62]);
  const single = await load.measure(1, run);
  eq(ran.length, 3);
  eq(single.placementNs, undefined);
  eq(readings.length, 0);
  const record = load.finish(2);
  eq(record.placement, { fastestNs: 60, farFactor: 2.5, repeatedRuns: 1 });
  const line = loadLine({ ...fixture().machine, load: record });
  ok(line.includes("fastest round trip 60 ns, runs repeated"), line);
  ok(line.includes("over 2.5× that): 1"), line);
});

Deno.test("each round runs on fresh copies of the libraries, the same bytes", async () => {
  const original = await Deno.makeTempFile({ suffix: ".so" });
  const bytes = new TextEncoder().encode("not a real library");
  await Deno.writeFile(original, bytes);
  const seen: string[] = [];
  {
    await using libs = await pinLibraries([
      { name: "glibc", lib: null },
      { name: "x", lib: original },
    ]);
    await interleave(libs, ["w"], (w) => w, 2, 1, async (_, alloc) => {
      if (alloc.lib) {
        eq(await Deno.readFile(alloc.lib), bytes);
        seen.push(alloc.lib);
      }
      return true;
    });
    // One copy per round (the warm-up's included), the earlier ones removed.
    eq(new Set(seen).size, 3);
    ok(seen.every((path) => path.startsWith(libs.dir) && path !== original));
    for (const old of seen.slice(0, -1)) {
      throws(() => Deno.statSync(old), Deno.errors.NotFound);
    }
    eq(libs.pinned[1].lib, seen[2]);
    eq(libs.libraries.x?.path, original);
    eq(libs.pinned[0].lib, null);
  }
  throws(() => Deno.statSync(seen[2]), Deno.errors.NotFound);
  eq(await Deno.readFile(original), bytes);
  await Deno.remove(original);
});
