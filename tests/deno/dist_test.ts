/**
 * The release artifacts `make dist` cross-builds (make test-deno builds them
 * first): each is a shared object for its machine exporting the whole API.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { SYMBOLS } from "../../ffi/symbols.ts";
import { SUPPORTED } from "../../ffi/platform.ts";
import { expectExit, ROOT, run } from "./helpers.ts";

// The malloc family hakozuna.h promises to replace under LD_PRELOAD.
const MALLOC_FAMILY = [
  "malloc",
  "free",
  "free_sized",
  "free_aligned_sized",
  "cfree",
  "calloc",
  "realloc",
  "reallocarray",
  "posix_memalign",
  "aligned_alloc",
  "memalign",
  "valloc",
  "pvalloc",
  "malloc_usable_size",
  "malloc_trim",
  "mallinfo2",
  "mallinfo",
  "__libc_mallinfo",
  "malloc_stats",
];

const MACHINE: Record<string, string> = {
  x86_64: "Advanced Micro Devices X86-64",
  aarch64: "AArch64",
};

for (const platform of SUPPORTED) {
  const arch = platform.split("-")[1];
  const file = join(ROOT, "dist", `libhakozuna-${platform}.so`);

  Deno.test(`dist/libhakozuna-${platform}.so exports the full API`, async () => {
    try {
      Deno.statSync(file);
    } catch {
      assert.fail(`${file} is missing: run \`make dist\``);
    }
    const header = expectExit(await run("readelf", ["-h", "-W", file]), 0);
    assert.match(header.stdout, /Type:\s+DYN \(Shared object file\)/);
    assert.match(header.stdout, new RegExp(`Machine:\\s+${MACHINE[arch]}\\n`));

    const symbols = expectExit(
      await run("readelf", ["--dyn-syms", "-W", file]),
      0,
    );
    // Num: Value Size Type Bind Vis Ndx Name; defined means Ndx is not UND.
    const exported = new Set(
      symbols.stdout.split("\n")
        .map((line) => line.trim().split(/\s+/))
        .filter((f) => f[3] === "FUNC" && f[4] === "GLOBAL" && f[6] !== "UND")
        .map((f) => f[7]),
    );
    const missing = [...MALLOC_FAMILY, ...Object.keys(SYMBOLS)]
      .filter((name) => !exported.has(name));
    assert.deepEqual(missing, [], "symbols not exported");
  });
}
