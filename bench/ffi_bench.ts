/**
 * `deno bench`: what an allocation costs across Deno's FFI, with the
 * package's overhead and the allocators' own speed on separate lines.
 *
 * Raw lines call an allocator's `malloc`/`free` (hakozuna's `hz_malloc`,
 * `hz_free`) opened directly with `Deno.dlopen`: libc (the baseline),
 * mimalloc, jemalloc, tcmalloc (Debian packages, `make peers`) and hakozuna.
 * The typed line is the package (`mod.ts`: `hz.malloc`, `hz.free` with its
 * checks), the batch line its `mallocMany`/`freeMany` (one FFI call per 1000
 * blocks). Typed against hakozuna raw is the package's overhead; raw against
 * raw is allocator against allocator, FFI cost included in both.
 *
 * Every iteration does 1000 blocks, so the time per iteration in µs reads as
 * ns per block, and Deno.bench's own per-iteration cost is spread over them:
 * - "pairs": 1000 times malloc then free of the same block (the allocator's
 *   hottest path);
 * - "batch": 1000 blocks allocated, then the 1000 freed.
 *
 * Each line has its own function literal: closures of one literal share
 * V8's type feedback, and a call site that has seen two different FFI
 * functions loses Deno's fast call (about 20 ns a pair becomes 200).
 *
 * FFI_BENCH_N=<n> runs each line n times only (tests/deno/ffi_bench_test.ts
 * checks the lines that way, not the timings).
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { findAllocators, hakozunaPath } from "./allocators.ts";
import { requireBenchPermissions } from "./permissions.ts";

requireBenchPermissions();

/** Blocks per iteration. */
const BLOCKS = 1000;
const SIZES = [64, 4096];
/** Iterations per line when set (a smoke run); else Deno.bench decides. */
const ITERATIONS = Number(Deno.env.get("FFI_BENCH_N")) || undefined;

/** The part of mod.ts's API this bench uses. */
interface HakozunaHandle {
  malloc(size: number): Deno.PointerObject | null;
  free(ptr: Deno.PointerValue): void;
  mallocMany(size: number, into: BigUint64Array): BigUint64Array;
  freeMany(addresses: BigUint64Array): void;
  close(): void;
}
interface HakozunaModule {
  open(options?: { path?: string }): HakozunaHandle;
}

/** Opens hakozuna through the package, or says why it cannot. */
async function openTyped(lib: string): Promise<HakozunaHandle | string> {
  const mod = new URL("../mod.ts", import.meta.url);
  // Imported by a computed URL so that this file type-checks and runs
  // (skipping the typed lines) in a checkout without the package.
  if (!existsSync(fileURLToPath(mod))) return "mod.ts is not in this checkout";
  if (!existsSync(lib)) {
    return `${lib} does not exist (run make, or set HAKOZUNA_LIB)`;
  }
  const { open } = (await import(mod.href)) as HakozunaModule;
  return open({ path: lib });
}

const RAW = {
  malloc: { parameters: ["usize"], result: "pointer" },
  free: { parameters: ["pointer"], result: "void" },
} as const;
type Raw = Deno.DynamicLibrary<typeof RAW>["symbols"];

/**
 * Deno dlcloses the libraries it opened when it shuts down, while threads of
 * its own may still be exiting; mimalloc leaves a thread-exit destructor
 * (a pthread key) pointing into itself, so such a thread then jumps into
 * unmapped code (seen: SIGSEGV in __nptl_deallocate_tsd, about one run in
 * four). Every allocator opened here is pinned with RTLD_NODELETE through
 * libc's own dlopen, as hakozuna pins itself.
 */
const dl = Deno.dlopen("libc.so.6", {
  dlopen: { parameters: ["buffer", "i32"], result: "pointer" },
});
const RTLD_NOW = 0x2, RTLD_NOLOAD = 0x4, RTLD_NODELETE = 0x1000;

function pin(path: string): void {
  const name = new TextEncoder().encode(`${path}\0`);
  dl.symbols.dlopen(name, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

/** An allocator's malloc and free through Deno.dlopen, or why not. */
function openRaw(path: string): Raw | string {
  try {
    const symbols = Deno.dlopen(path, RAW).symbols;
    pin(path);
    return symbols;
  } catch (error) {
    const message = (error as Error).message
      .replaceAll("Could not open library: ", "");
    return /static TLS/.test(message)
      ? `${message}; run with GLIBC_TUNABLES=glibc.rtld.optional_static_tls=` +
        `65536 for this line`
      : message;
  }
}

const HZ_RAW = {
  hz_malloc: { parameters: ["usize"], result: "pointer" },
  hz_free: { parameters: ["pointer"], result: "void" },
  hz_free_checked: { parameters: ["pointer"], result: "i32" },
  hz_malloc_many: { parameters: ["usize", "buffer", "usize"], result: "usize" },
  hz_free_many: { parameters: ["buffer", "usize"], result: "usize" },
} as const;
type HzRaw = Deno.DynamicLibrary<typeof HZ_RAW>["symbols"];

function openHzRaw(path: string): HzRaw | string {
  if (!existsSync(path)) {
    return `${path} does not exist (run make, or set HAKOZUNA_LIB)`;
  }
  try {
    return Deno.dlopen(path, HZ_RAW).symbols;
  } catch (error) {
    return (error as Error).message;
  }
}

const { found, missing } = await findAllocators();
const peerPath = (name: string) => found.find((a) => a.name === name)?.lib;
const peer = (name: string): Raw | string => {
  const path = peerPath(name);
  if (path) return openRaw(path);
  const why = missing.find((m) => m.name === name);
  return why ? `${why.why}; ${why.fix}` : `${name} not found`;
};

const hzPath = hakozunaPath();
const libc = openRaw("libc.so.6");
const mimalloc = peer("mimalloc");
const jemalloc = peer("jemalloc");
const tcmalloc = peer("tcmalloc");
const hzRaw = openHzRaw(hzPath);
const hz = await openTyped(hzPath);
if (typeof hz !== "string") {
  globalThis.addEventListener("unload", () => hz.close());
}

console.log(
  `ffi_bench: every iteration is ${BLOCKS} blocks (malloc+free pairs, or ` +
    `${BLOCKS} allocated then freed), so µs per iteration is ns per block. ` +
    `"raw": the allocator's malloc/free through Deno.dlopen; "typed": ` +
    `hakozuna's package (mod.ts) with its checks; "batch": mallocMany/` +
    `freeMany, one FFI call each per ${BLOCKS} blocks.`,
);

/** Lines skipped, each said once (deno bench does not list ignored benches). */
const said = new Set<string>();

/** Registers one line, or an ignored one that says why it cannot run. */
function line<T>(
  name: string,
  group: string,
  target: T | string,
  make: (target: T) => () => void,
  baseline = false,
): void {
  const skipped = typeof target === "string";
  if (skipped && !said.has(name)) {
    said.add(name);
    console.log(`ffi_bench: ${name} (skipped: ${target})`);
  }
  Deno.bench({
    name: skipped ? `${name} (skipped: ${target})` : name,
    group,
    baseline,
    ignore: skipped,
    fn: skipped ? () => {} : make(target),
    ...(ITERATIONS ? { n: ITERATIONS, warmup: 1 } : {}),
  });
}

for (const size of SIZES) {
  const group = `pairs ${size} B`;
  const bytes = BigInt(size); // usize parameters take a bigint
  line("libc raw", group, libc, ({ malloc, free }) => () => {
    for (let i = 0; i < BLOCKS; i++) free(malloc(bytes));
  }, true);
  line("mimalloc raw", group, mimalloc, ({ malloc, free }) => () => {
    for (let i = 0; i < BLOCKS; i++) free(malloc(bytes));
  });
  line("jemalloc raw", group, jemalloc, ({ malloc, free }) => () => {
    for (let i = 0; i < BLOCKS; i++) free(malloc(bytes));
  });
  line("tcmalloc raw", group, tcmalloc, ({ malloc, free }) => () => {
    for (let i = 0; i < BLOCKS; i++) free(malloc(bytes));
  });
  line("hakozuna raw", group, hzRaw, ({ hz_malloc, hz_free }) => () => {
    for (let i = 0; i < BLOCKS; i++) hz_free(hz_malloc(bytes));
  });
  line(
    "hakozuna raw checked free",
    group,
    hzRaw,
    ({ hz_malloc, hz_free_checked }) => () => {
      for (let i = 0; i < BLOCKS; i++) hz_free_checked(hz_malloc(bytes));
    },
  );
  line("hakozuna typed", group, hz, (h) => () => {
    for (let i = 0; i < BLOCKS; i++) h.free(h.malloc(size));
  });
}

for (const size of SIZES) {
  const group = `batch ${size} B`;
  const bytes = BigInt(size);
  const pointers: Deno.PointerValue[] = new Array(BLOCKS).fill(null);
  const addresses = new BigUint64Array(BLOCKS);
  line("libc raw", group, libc, ({ malloc, free }) => () => {
    for (let i = 0; i < BLOCKS; i++) pointers[i] = malloc(bytes);
    for (let i = 0; i < BLOCKS; i++) free(pointers[i]);
  }, true);
  line("mimalloc raw", group, mimalloc, ({ malloc, free }) => () => {
    for (let i = 0; i < BLOCKS; i++) pointers[i] = malloc(bytes);
    for (let i = 0; i < BLOCKS; i++) free(pointers[i]);
  });
  line("jemalloc raw", group, jemalloc, ({ malloc, free }) => () => {
    for (let i = 0; i < BLOCKS; i++) pointers[i] = malloc(bytes);
    for (let i = 0; i < BLOCKS; i++) free(pointers[i]);
  });
  line("tcmalloc raw", group, tcmalloc, ({ malloc, free }) => () => {
    for (let i = 0; i < BLOCKS; i++) pointers[i] = malloc(bytes);
    for (let i = 0; i < BLOCKS; i++) free(pointers[i]);
  });
  line("hakozuna raw", group, hzRaw, ({ hz_malloc, hz_free }) => () => {
    for (let i = 0; i < BLOCKS; i++) pointers[i] = hz_malloc(bytes);
    for (let i = 0; i < BLOCKS; i++) hz_free(pointers[i]);
  });
  line("hakozuna typed", group, hz, (h) => () => {
    for (let i = 0; i < BLOCKS; i++) pointers[i] = h.malloc(size);
    for (let i = 0; i < BLOCKS; i++) h.free(pointers[i]);
  });
  line(
    "hakozuna raw batch",
    group,
    hzRaw,
    ({ hz_malloc_many, hz_free_many }) => () => {
      hz_malloc_many(bytes, addresses, BigInt(BLOCKS));
      hz_free_many(addresses, BigInt(BLOCKS));
    },
  );
  line("hakozuna batch", group, hz, (h) => () => {
    h.freeMany(h.mallocMany(size, addresses));
  });
}
