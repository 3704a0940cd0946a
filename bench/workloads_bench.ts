/**
 * `deno bench`: every workload of workloads.ts under every allocator found,
 * one group per workload with hakozuna (or glibc, when hakozuna is not built)
 * as the baseline.  Each iteration launches the workload program once, at
 * QUICK sizes, so Deno's figure is the wall time of one run (lower is
 * better); `make bench` is the interleaved, median-based comparison.
 */
import { findAllocators } from "./allocators.ts";
import {
  ensurePrograms,
  parseOpsPerSec,
  runMeasured,
  verifyMalloc,
} from "./exec.ts";
import { requireBenchPermissions } from "./permissions.ts";
import { programPath, workloads } from "./workloads.ts";

requireBenchPermissions();
await ensurePrograms();
const { found, missing } = await findAllocators();
await verifyMalloc(found);
const baseline = found.some((a) => a.name === "hakozuna")
  ? "hakozuna"
  : "glibc";
for (const m of missing) {
  console.error(`bench: ${m.name} is missing (${m.why}); to add it: ${m.fix}`);
}

for (const w of workloads("quick")) {
  for (const alloc of found) {
    Deno.bench({
      name: `${w.name} ${alloc.name}`,
      group: w.name,
      baseline: alloc.name === baseline,
      // Few iterations: each is a whole process run of a few tenths of a second.
      warmup: 1,
      n: 3,
      async fn() {
        const m = await runMeasured(alloc, programPath(w), w.args);
        if (!m.ok || parseOpsPerSec(m.stdout) === null) {
          throw new Error(
            `${w.name} under ${alloc.name} ended with ${m.status}:\n${m.stderr}`,
          );
        }
      },
    });
  }
  for (const m of missing) {
    Deno.bench({
      name: `${w.name} ${m.name} (missing)`,
      group: w.name,
      ignore: true,
      fn() {},
    });
  }
}
