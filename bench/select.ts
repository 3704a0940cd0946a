/**
 * What a run measures: the allocators asked for and found, and the
 * workloads `--only` selects.  Shared by the modes.
 */
import { UsageError } from "../ffi/args.ts";
import { type Allocator, findAllocators, type Missing } from "./allocators.ts";
import type { Options } from "./options.ts";
import { type Workload, workloads } from "./workloads.ts";

/** The allocators of a run; `always` is kept whatever --allocators says. */
export async function chooseAllocators(
  o: Options,
  always?: string,
): Promise<{ found: Allocator[]; missing: Missing[] }> {
  let { found, missing } = await findAllocators({
    hakozuna: o.hakozuna,
    extra: o.extra,
  });
  if (o.allocators) {
    const keep = new Set([
      ...o.allocators,
      ...o.extra.map((e) => e.name),
      ...(always ? [always] : []),
    ]);
    found = found.filter((a) => keep.has(a.name));
    missing = missing.filter((m) => keep.has(m.name));
  }
  for (const m of missing) {
    console.error(
      `compare: ${m.name} is missing (${m.why}); to add it: ${m.fix}`,
    );
  }
  return { found, missing };
}

/** The workloads of the run (`--only`), at the run's scale. */
export function selectWorkloads(o: Options): Workload[] {
  const list = workloads(o.quick ? "quick" : "full").filter((w) =>
    !o.only || o.only.test(w.name)
  );
  if (!list.length) {
    throw new UsageError(`--only ${o.only} matches no workload`);
  }
  return list;
}
