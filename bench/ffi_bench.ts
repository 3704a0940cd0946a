/**
 * `deno bench`: the cost of one allocation across Deno's FFI — malloc+free
 * through the hakozuna Deno package (mod.ts) against libc's malloc/free
 * opened directly with Deno.dlopen, so users see what a call across FFI
 * costs compared with the allocator work itself.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { hakozunaPath } from "./allocators.ts";
import { requireBenchPermissions } from "./permissions.ts";

requireBenchPermissions();

/** The part of mod.ts's API this bench uses. */
interface HakozunaHandle {
  malloc(size: number): Deno.PointerObject | null;
  free(ptr: Deno.PointerObject | null): void;
  close(): void;
}
interface HakozunaModule {
  open(
    options?: { path?: string; policy?: "balanced" | "scale" | "compact" },
  ): HakozunaHandle;
}

/** Opens hakozuna through the package, or says why it cannot. */
async function openHakozuna(): Promise<HakozunaHandle | string> {
  const mod = new URL("../mod.ts", import.meta.url);
  // Imported by a computed URL so that this file type-checks and runs
  // (skipping the hakozuna benches) in a checkout without the package.
  if (!existsSync(fileURLToPath(mod))) return "mod.ts is not in this checkout";
  const lib = hakozunaPath();
  if (!existsSync(lib)) {
    return `${lib} does not exist (run make, or set HAKOZUNA_LIB)`;
  }
  const { open } = (await import(mod.href)) as HakozunaModule;
  return open({ path: lib });
}

const libc = Deno.dlopen("libc.so.6", {
  malloc: { parameters: ["usize"], result: "pointer" },
  free: { parameters: ["pointer"], result: "void" },
});
const hz = await openHakozuna();
if (typeof hz === "string") {
  console.error(`bench: skipping the hakozuna FFI benches: ${hz}`);
} else globalThis.addEventListener("unload", () => hz.close());

for (const size of [64, 4096]) {
  const group = `ffi malloc+free ${size} B`;
  const bytes = BigInt(size); // usize parameters take a bigint
  Deno.bench({
    name: `libc via Deno.dlopen ${size} B`,
    group,
    baseline: true,
    fn() {
      libc.symbols.free(libc.symbols.malloc(bytes));
    },
  });
  Deno.bench({
    name: `hakozuna via mod.ts ${size} B${
      typeof hz === "string" ? ` (skipped: ${hz})` : ""
    }`,
    group,
    ignore: typeof hz === "string",
    fn() {
      const h = hz as HakozunaHandle;
      h.free(h.malloc(size));
    },
  });
}
