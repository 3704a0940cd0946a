/**
 * Runs a program under one allocator and measures it through
 * `build/bench/rusage_exec`, which reports wall time, CPU time and the
 * child's peak RSS from wait4 (Deno's subprocess API gives no rusage); and
 * checks beforehand that a preload can take effect at all.
 */
import { existsSync, realpathSync } from "node:fs";
import { delimiter, join } from "node:path";
import { UsageError } from "../ffi/args.ts";
import type { Allocator } from "./model.ts";
import { BUILD_DIR, ROOT } from "./workloads.ts";

const HELPER = join(BUILD_DIR, "rusage_exec");

export interface Measured {
  /** "exit:N" or "signal:NAME", as rusage_exec reports it. */
  status: string;
  ok: boolean;
  wallS: number;
  userS: number;
  sysS: number;
  peakRssKiB: number;
  stdout: Uint8Array;
  /** The program's own stderr (the helper's report line removed). */
  stderr: string;
}

/**
 * Builds the workload programs and the helper with make (a no-op when they
 * are up to date), so a runner started without make never uses stale ones.
 */
export async function ensurePrograms(): Promise<void> {
  if (!existsSync(join(ROOT, "Makefile"))) {
    if (existsSync(HELPER)) return;
    throw new Error(
      `${HELPER} is missing and there is no Makefile to build it`,
    );
  }
  const out = await new Deno.Command("make", {
    args: ["-s", "-C", ROOT, "bench-programs"],
    stdout: "piped",
    stderr: "piped",
  }).output().catch((e) => {
    throw new Error(
      `cannot run make to build the benchmark programs: ${e.message}`,
    );
  });
  if (!out.success) {
    const dec = new TextDecoder();
    throw new Error(
      `make bench-programs failed:\n${dec.decode(out.stdout)}${
        dec.decode(out.stderr)
      }`,
    );
  }
}

/** The environment a measured program gets: ours, minus any inherited LD_PRELOAD. */
function childEnv(
  extra: Record<string, string> | undefined,
): Record<string, string> {
  const env = Deno.env.toObject();
  delete env.LD_PRELOAD;
  return { ...env, ...extra };
}

const REPORT =
  /rusage_exec: status=(\S+) wall_s=(\S+) user_s=(\S+) sys_s=(\S+) maxrss_kib=(\d+)\n?$/;

export async function runMeasured(
  alloc: Allocator,
  program: string,
  args: string[],
): Promise<Measured> {
  const out = await new Deno.Command(HELPER, {
    args: [...(alloc.lib ? ["--preload", alloc.lib] : []), program, ...args],
    env: childEnv(alloc.env),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  const m = stderr.match(REPORT);
  if (!m) {
    throw new Error(
      `rusage_exec gave no report for ${program} under ${alloc.name}:\n${stderr}`,
    );
  }
  return {
    status: m[1],
    ok: m[1] === "exit:0",
    wallS: Number(m[2]),
    userS: Number(m[3]),
    sysS: Number(m[4]),
    peakRssKiB: Number(m[5]),
    stdout: out.stdout,
    stderr: stderr.slice(0, m.index),
  };
}

/**
 * Checks that each allocator's malloc is the one its programs will call, by
 * running `malloc_owner` under it.  ld.so only warns when a preload fails,
 * and a library without malloc leaves glibc's in place: either way the run
 * would measure glibc under another name.
 */
export async function verifyMalloc(allocs: Allocator[]): Promise<void> {
  for (const a of allocs) {
    const m = await runMeasured(a, join(BUILD_DIR, "malloc_owner"), []);
    const owner = new TextDecoder().decode(m.stdout).trim();
    if (!m.ok) {
      throw new Error(
        `${a.name}: the malloc probe ended with ${m.status}:\n${m.stderr}`,
      );
    }
    const right = a.lib
      ? existsSync(owner) && realpathSync(owner) === realpathSync(a.lib)
      : /\/libc\.so/.test(owner);
    if (!right) {
      throw new Error(
        `${a.name}: programs would call the malloc of ${owner}, not of ${
          a.lib ?? "glibc"
        }`,
      );
    }
  }
}

/** The workload's own figure: the `ops/s=X` it printed. */
export function parseOpsPerSec(stdout: Uint8Array): number | null {
  const m = new TextDecoder().decode(stdout).match(/ops\/s=([0-9.eE+]+)/);
  return m ? Number(m[1]) : null;
}

/** The file `command` runs: as given when it has a slash, else found in PATH. */
export function whichCommand(command: string): string | null {
  const isFile = (p: string) => {
    try {
      return Deno.statSync(p).isFile;
    } catch {
      return false;
    }
  };
  if (command.includes("/")) return isFile(command) ? command : null;
  for (const dir of (Deno.env.get("PATH") ?? "").split(delimiter)) {
    if (dir && isFile(join(dir, command))) return join(dir, command);
  }
  return null;
}

/** How an ELF file is linked, from its header and program headers. */
export type Linkage = "dynamic" | "static" | "not-elf";

/**
 * Whether an ELF executable asks for the dynamic loader (a PT_INTERP
 * program header): without one, nothing reads LD_PRELOAD and the program
 * keeps its own malloc whatever the runner preloads.
 */
export function elfLinkage(bytes: Uint8Array): Linkage {
  if (
    bytes.length < 64 || bytes[0] !== 0x7f || bytes[1] !== 0x45 ||
    bytes[2] !== 0x4c || bytes[3] !== 0x46
  ) return "not-elf";
  const is64 = bytes[4] === 2, little = bytes[5] === 1;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u16 = (o: number) => v.getUint16(o, little);
  const u32 = (o: number) => v.getUint32(o, little);
  const phoff = is64 ? Number(v.getBigUint64(0x20, little)) : u32(0x1c);
  const phentsize = u16(is64 ? 0x36 : 0x2a);
  const phnum = u16(is64 ? 0x38 : 0x2c);
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (at + 4 > bytes.length) break;
    if (u32(at) === 3) return "dynamic"; // PT_INTERP
  }
  return "static";
}

/**
 * Refuses (UsageError) a command whose malloc no preload can replace: a
 * statically linked executable, a set-user-ID one (the loader ignores
 * LD_PRELOAD there), or a script whose interpreter is one of those.
 */
export function checkPreloadable(command: string, depth = 0): void {
  const path = whichCommand(command);
  if (!path) {
    throw new UsageError(`command not found: ${command}`);
  }
  const info = Deno.statSync(path);
  if (info.mode !== null && (info.mode & 0o4000)) {
    throw new UsageError(
      `${path} is set-user-ID: the loader ignores LD_PRELOAD for it, so every ` +
        `allocator would measure the program's own malloc. Nothing was run.`,
    );
  }
  const head = new Uint8Array(4096);
  const file = Deno.openSync(path);
  const n = file.readSync(head) ?? 0;
  file.close();
  const bytes = head.subarray(0, n);
  if (bytes[0] === 0x23 && bytes[1] === 0x21 && depth < 4) { // "#!"
    const line = new TextDecoder().decode(bytes).split("\n")[0].slice(2).trim();
    const [interp, arg] = line.split(/\s+/);
    if (!interp) return;
    // `#!/usr/bin/env prog`: the interpreter that matters is prog.
    if (/\/env$/.test(interp) && arg && !arg.startsWith("-")) {
      return checkPreloadable(arg, depth + 1);
    }
    return checkPreloadable(interp, depth + 1);
  }
  if (elfLinkage(bytes) === "static") {
    throw new UsageError(
      `${path} is statically linked: LD_PRELOAD cannot replace its malloc, so every ` +
        `allocator would measure the same built-in one. Nothing was run.`,
    );
  }
}
