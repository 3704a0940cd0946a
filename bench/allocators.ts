/**
 * Finds the allocators to compare: hakozuna (found as the Deno package finds
 * it, ffi/resolve.ts), glibc (no preload), the Debian builds of mimalloc,
 * jemalloc and tcmalloc, and any `name=path` the user adds; says which are
 * missing and how to get them; pins their libraries for the length of a run.
 */
import { existsSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { sha256 } from "../ffi/cache.ts";
import { resolveLibrary } from "../ffi/resolve.ts";
import { packageOf } from "./machine.ts";
import type { Allocator, LibraryInfo } from "./model.ts";
import { BUILD_DIR } from "./workloads.ts";

export type { Allocator };

/** An allocator asked for but not found. */
export interface Missing {
  name: string;
  why: string;
  fix: string;
}

/** An allocator given on the command line as `name=path`. */
export interface Extra {
  name: string;
  path: string;
}

/** Peer allocators: Debian package and the soname it installs. */
const PEERS = [
  { name: "mimalloc", soname: "libmimalloc.so.2", pkg: "libmimalloc2.0" },
  { name: "jemalloc", soname: "libjemalloc.so.2", pkg: "libjemalloc2" },
  {
    name: "tcmalloc",
    soname: "libtcmalloc_minimal.so.4",
    pkg: "libtcmalloc-minimal4",
  },
] as const;

/** Every allocator name the runner knows, in report order. */
export const ALLOCATOR_NAMES: readonly string[] = [
  "hakozuna",
  "glibc",
  ...PEERS.map((p) => p.name),
];

/** Library directories to search when `ldconfig -p` does not list a soname. */
function libraryDirs(): string[] {
  const triplet = `${Deno.build.arch}-linux-gnu`;
  return [
    `/usr/lib/${triplet}`,
    `/lib/${triplet}`,
    "/usr/local/lib",
    "/usr/lib64",
    "/usr/lib",
    "/lib64",
    "/lib",
  ];
}

/** soname -> path, from the dynamic linker's cache (empty if ldconfig is absent). */
async function ldconfigCache(): Promise<Map<string, string>> {
  const cache = new Map<string, string>();
  for (const ldconfig of ["ldconfig", "/sbin/ldconfig", "/usr/sbin/ldconfig"]) {
    try {
      const out = await new Deno.Command(ldconfig, {
        args: ["-p"],
        stdout: "piped",
        stderr: "null",
      }).output();
      if (!out.success) continue;
      // Lines look like: "\tlibjemalloc.so.2 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
      for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
        const m = line.match(/^\s*(\S+) \(([^)]*)\) => (\S+)$/);
        // Prefer the entry for this machine's word size (x86-64 over i386 etc.).
        if (m && (!cache.has(m[1]) || m[2].includes("64"))) {
          cache.set(m[1], m[3]);
        }
      }
      return cache;
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  return cache;
}

function findPeer(soname: string, cache: Map<string, string>): string | null {
  const cached = cache.get(soname);
  if (cached && existsSync(cached)) return cached;
  for (const dir of libraryDirs()) {
    const path = join(dir, soname);
    if (existsSync(path)) return path;
  }
  return null;
}

/**
 * The hakozuna library: the explicit option, else what the Deno package
 * would load ($HAKOZUNA_LIB, the checkout's build, the download cache).
 */
export function hakozunaLibrary(explicit?: string): Allocator | Missing {
  const fix =
    "run `make` to build it, or pass --hakozuna PATH (HAKOZUNA_LIB=PATH for make bench)";
  let path: string;
  try {
    path = resolve(resolveLibrary({ path: explicit }).path);
  } catch (e) {
    return { name: "hakozuna", why: (e as Error).message, fix };
  }
  return existsSync(path)
    ? { name: "hakozuna", lib: path }
    : { name: "hakozuna", why: `${path} does not exist`, fix };
}

/**
 * The path of the hakozuna library as `hakozunaLibrary` finds it (or the
 * path it would have), for callers that only need a path (ffi_bench.ts).
 */
export function hakozunaPath(explicit?: string): string {
  const hz = hakozunaLibrary(explicit);
  if ("lib" in hz && hz.lib) return hz.lib;
  return resolve(explicit ?? Deno.env.get("HAKOZUNA_LIB") ?? "libhakozuna.so");
}

/** Every allocator found (known names, then the extras) and every one missing. */
export async function findAllocators(
  opts: { hakozuna?: string; extra?: Extra[] } = {},
): Promise<{ found: Allocator[]; missing: Missing[] }> {
  const found: Allocator[] = [];
  const missing: Missing[] = [];
  const hz = hakozunaLibrary(opts.hakozuna);
  if ("lib" in hz) found.push(hz);
  else missing.push(hz);
  found.push({ name: "glibc", lib: null });
  const cache = await ldconfigCache();
  for (const peer of PEERS) {
    const path = findPeer(peer.soname, cache);
    if (path) found.push({ name: peer.name, lib: path });
    else {
      missing.push({
        name: peer.name,
        why: `${peer.soname} not found (ldconfig -p, ${
          libraryDirs().join(", ")
        })`,
        fix: `make peers (or as root: apt-get install -y ${peer.pkg})`,
      });
    }
  }
  for (const e of opts.extra ?? []) {
    const path = resolve(e.path);
    if (existsSync(path)) found.push({ name: e.name, lib: path });
    else {
      missing.push({
        name: e.name,
        why: `${path} does not exist`,
        fix: `give ${e.name}=PATH with the path of its shared library`,
      });
    }
  }
  return { found, missing };
}

/**
 * Resolves an A/B side: an allocator name ("glibc", "mimalloc", "hakozuna"…)
 * or a path to a shared library.
 */
export async function resolveSide(
  spec: string,
  opts: { hakozuna?: string },
): Promise<Allocator> {
  if (ALLOCATOR_NAMES.includes(spec)) {
    const { found, missing } = await findAllocators(opts);
    const hit = found.find((a) => a.name === spec);
    if (hit) return hit;
    const m = missing.find((a) => a.name === spec)!;
    throw new Error(`${spec} is missing: ${m.why}; ${m.fix}`);
  }
  const path = resolve(spec);
  if (!existsSync(path)) {
    throw new Error(`${spec}: no such allocator or library file`);
  }
  return { name: spec, lib: path };
}

/** How an allocator runs a program: "HZ_POLICY=x LD_PRELOAD=path". */
export function describe(a: Allocator): string {
  const env = Object.entries(a.env ?? {}).map(([k, v]) => `${k}=${v} `).join(
    "",
  );
  return `${env}${
    a.lib ? `LD_PRELOAD=${a.lib}` : "(no preload: glibc malloc)"
  }`;
}

/** Allocators whose libraries are copied for the run, and what they were. */
export interface Pinned {
  /** The allocators, each `lib` the current copy (`repin` moves it). */
  pinned: Allocator[];
  /** The private directory holding the copies (removed on dispose). */
  dir: string;
  libraries: Record<string, LibraryInfo | null>;
  /**
   * Writes each library to a fresh file, points its allocator at it and
   * removes the copy before. The runner calls it before every round after
   * the first: the pages the kernel gives one file's code stay the same for
   * as long as the file lives, and on this project's host that placement
   * alone moved an external benchmark's speed by 5% (bench/LEDGER.md): a
   * bias every round of a run would otherwise share, where no interval can
   * see it.
   */
  repin(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Copies each allocator's library into a private directory for the length of
 * a run and records its SHA-256 and package.  Development snapshots get
 * replaced while a benchmark runs; without the copy one result could mix two
 * builds.
 */
export async function pinLibraries(allocs: Allocator[]): Promise<Pinned> {
  // Under build/ rather than /tmp, which may be mounted noexec.
  await Deno.mkdir(BUILD_DIR, { recursive: true });
  const dir = await Deno.makeTempDir({ dir: BUILD_DIR, prefix: "pinned-" });
  const pinned: Allocator[] = [];
  const contents: (Uint8Array | null)[] = [];
  const libraries: Record<string, LibraryInfo | null> = {};
  let copies = 0;
  const copy = async (i: number) => {
    const bytes = contents[i]!;
    const path = join(dir, `${i}-${copies}-${basename(allocs[i].lib!)}`);
    await Deno.writeFile(path, bytes, { mode: 0o755 });
    const before = pinned[i].lib;
    pinned[i].lib = path;
    // The first copy replaces the original path, which stays.
    if (copies > 0) await Deno.remove(before!);
  };
  for (const [i, a] of allocs.entries()) {
    pinned.push({ ...a });
    if (!a.lib) {
      contents.push(null);
      libraries[a.name] = null;
      continue;
    }
    const bytes = await Deno.readFile(a.lib);
    contents.push(bytes);
    libraries[a.name] = {
      path: a.lib,
      sha256: sha256(bytes),
      ...(await packageOf(a.lib) ?? {}),
    };
    await copy(i);
  }
  return {
    pinned,
    dir,
    libraries,
    async repin() {
      copies++;
      for (const i of contents.keys()) if (contents[i]) await copy(i);
    },
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}
