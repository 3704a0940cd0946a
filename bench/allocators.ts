/**
 * Finds the allocators to compare: hakozuna, glibc (no preload) and the
 * Debian builds of mimalloc, jemalloc and tcmalloc, and says which are
 * missing and how to get them.
 */
import { existsSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { sha256 } from "./exec.ts";
import { BUILD_DIR, ROOT } from "./workloads.ts";

export interface Allocator {
  name: string;
  /** Library to LD_PRELOAD; null runs the program on glibc's malloc. */
  lib: string | null;
  /** Extra environment for the program (e.g. HZ_POLICY). */
  env?: Record<string, string>;
}

export interface Missing {
  name: string;
  why: string;
  fix: string;
}

/** The repository's own build of hakozuna. */
export const HAKOZUNA_BUILD: string = join(
  ROOT,
  "native",
  "zig-out",
  "lib",
  "libhakozuna.so",
);

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
export const ALLOCATOR_NAMES = [
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
 * Path of the hakozuna library: the explicit option, else $HAKOZUNA_LIB,
 * else the repository's build.
 */
export function hakozunaPath(explicit?: string): string {
  return resolve(explicit ?? Deno.env.get("HAKOZUNA_LIB") ?? HAKOZUNA_BUILD);
}

export async function findAllocators(
  opts: { hakozuna?: string } = {},
): Promise<{
  found: Allocator[];
  missing: Missing[];
}> {
  const found: Allocator[] = [];
  const missing: Missing[] = [];
  const hz = hakozunaPath(opts.hakozuna);
  if (existsSync(hz)) found.push({ name: "hakozuna", lib: hz });
  else {
    missing.push({
      name: "hakozuna",
      why: `${hz} does not exist`,
      fix:
        "run `make` to build it, or pass --hakozuna PATH (HAKOZUNA_LIB=PATH for make bench)",
    });
  }
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

export function describe(a: Allocator): string {
  const env = Object.entries(a.env ?? {}).map(([k, v]) => `${k}=${v} `).join(
    "",
  );
  return `${env}${
    a.lib ? `LD_PRELOAD=${a.lib}` : "(no preload: glibc malloc)"
  }`;
}

/** Where a pinned library came from. */
export interface LibraryOrigin {
  path: string;
  sha256: string;
}

/**
 * Copies each allocator's library into a private directory for the length of
 * a run and records its SHA-256.  Development snapshots get replaced while a
 * benchmark runs; without the copy one result could mix two builds.
 */
export async function pinLibraries(allocs: Allocator[]): Promise<{
  pinned: Allocator[];
  origins: Record<string, LibraryOrigin | null>;
  [Symbol.asyncDispose](): Promise<void>;
}> {
  // Under build/ rather than /tmp, which may be mounted noexec.
  await Deno.mkdir(BUILD_DIR, { recursive: true });
  const dir = await Deno.makeTempDir({ dir: BUILD_DIR, prefix: "pinned-" });
  const pinned: Allocator[] = [];
  const origins: Record<string, LibraryOrigin | null> = {};
  for (const [i, a] of allocs.entries()) {
    if (!a.lib) {
      pinned.push(a);
      origins[a.name] = null;
      continue;
    }
    const bytes = await Deno.readFile(a.lib);
    const copy = join(dir, `${i}-${basename(a.lib)}`);
    await Deno.writeFile(copy, bytes, { mode: 0o755 });
    pinned.push({ ...a, lib: copy });
    origins[a.name] = { path: a.lib, sha256: await sha256(bytes) };
  }
  return {
    pinned,
    origins,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}
