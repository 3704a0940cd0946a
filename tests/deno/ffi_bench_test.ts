/**
 * bench/ffi_bench.ts has its lines: for each group, every allocator raw
 * through Deno.dlopen, hakozuna through the typed API, and (in the batch
 * groups) hakozuna's batches; a missing allocator is a skipped line that says
 * why. Run with FFI_BENCH_N=3: this checks the lines, not the timings.
 */
import assert from "node:assert/strict";
import { expectExit, ROOT, run } from "./helpers.ts";

Deno.test("deno bench bench/ffi_bench.ts has typed, batch and raw lines per allocator", async () => {
  const output = await run(
    Deno.execPath(),
    ["bench", "-A", "--no-check", "bench/ffi_bench.ts"],
    {
      cwd: ROOT,
      env: {
        FFI_BENCH_N: "3",
        NO_COLOR: "1",
        GLIBC_TUNABLES: "glibc.rtld.optional_static_tls=65536",
      },
    },
  );
  const { stdout } = expectExit(output, 0);
  assert.match(
    stdout,
    /every iteration is 1000 blocks/,
    "says how it measures",
  );
  const groups = stdout.split(/^group /m).slice(1);
  const named = (group: string) => groups.find((g) => g.startsWith(group));
  const raw = ["libc", "mimalloc", "jemalloc", "tcmalloc", "hakozuna"];
  for (const size of [64, 4096]) {
    for (const kind of ["pairs", "batch"]) {
      const group = named(`${kind} ${size} B`);
      assert.ok(group, `group ${kind} ${size} B`);
      const lines = [
        ...raw.map((name) => `${name} raw`),
        "hakozuna typed",
        ...(kind === "batch" ? ["hakozuna raw batch", "hakozuna batch"] : []),
      ];
      for (const line of lines) {
        // A line either ran (a row of the table) or was skipped with a reason.
        const ran = new RegExp(`^\\| ${line} +\\|`, "m").test(group);
        const skipped = stdout.includes(`${line} (skipped: `);
        assert.ok(ran || skipped, `${kind} ${size} B: no line "${line}"`);
      }
      assert.match(group, /^\| hakozuna typed +\|/m, "the package always runs");
      assert.match(group, /^\| libc raw +\|/m, "libc always runs");
    }
  }
});
