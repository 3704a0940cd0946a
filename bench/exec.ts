/**
 * Runs a program under one allocator and measures it through
 * `build/bench/rusage_exec`, which reports wall time and the child's peak
 * RSS from wait4 (Deno's subprocess API gives no rusage).
 */
import { existsSync, realpathSync } from "node:fs";
import { join } from "node:path";
import type { Allocator } from "./allocators.ts";
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

/** Hex SHA-256 of some bytes (library identity, stdout comparison). */
export async function sha256(bytes: Uint8Array): Promise<string> {
  const h = new Uint8Array(
    await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>),
  );
  return Array.from(h, (x) => x.toString(16).padStart(2, "0")).join("");
}
