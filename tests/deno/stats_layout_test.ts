/**
 * `struct hz_stats` is listed once, in native/src/stats.zig (a Zig unit test
 * compares it with native/include/hakozuna.h). This test holds the
 * TypeScript side to the same header: the counters of `ffi/stats.ts`, in
 * order, are the header's fields after `version` and `size`.
 */
import assert from "node:assert/strict";
import { COUNTERS, STATS_SIZE } from "../../ffi/stats.ts";

const header = new URL("../../native/include/hakozuna.h", import.meta.url);

/** The fields of `struct hz_stats` as [C type, name], in order. */
function headerFields(text: string): [string, string][] {
  const body = text.slice(
    text.indexOf("struct hz_stats {"),
    text.indexOf("};", text.indexOf("struct hz_stats {")),
  );
  return [...body.matchAll(/^\s*(uint32_t|uint64_t)\s+(\w+);/gm)].map((
    m,
  ) => [m[1], m[2]]);
}

function camelCase(name: string): string {
  return name.replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

Deno.test("the TypeScript counters are the header's fields, in order", async () => {
  const fields = headerFields(await Deno.readTextFile(header));
  assert.deepEqual(fields.slice(0, 2), [["uint32_t", "version"], [
    "uint32_t",
    "size",
  ]]);
  const counters = fields.slice(2);
  for (const [type] of counters) assert.deepEqual(type, "uint64_t");
  assert.deepEqual([...COUNTERS], counters.map(([, name]) => camelCase(name)));
  assert.deepEqual(STATS_SIZE, 8 + 8 * counters.length);
});
