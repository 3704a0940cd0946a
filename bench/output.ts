/**
 * Where reports go. Only a full suite run on a quiet machine, with no `--out`,
 * replaces the tracked `bench/results/latest.*`; a QUICK run, a run of some
 * workloads or allocators only, a run under load, an A/B or a command
 * comparison writes to the ignored scratch folder `bench/results/scratch/`
 * instead, and says why.
 */
import { join } from "node:path";
import { ROOT } from "./workloads.ts";

/** The tracked results folder. */
export const RESULTS_DIR: string = join(ROOT, "bench", "results");
/** The ignored folder for everything else (listed in .gitignore). */
export const SCRATCH_DIR: string = join(RESULTS_DIR, "scratch");

/** What decides where a report goes. */
export interface RunKind {
  mode: "suite" | "ab" | "command";
  quick: boolean;
  /**
   * Some workloads or allocators only (`--only`, `--allocators`, or a peer
   * that is not installed), or allocators beyond the standard ones.
   */
  partial?: boolean;
  /** The load stayed at or below half the cores all along. */
  quiet: boolean;
  /** `--out DIR`, when given. */
  out?: string;
}

/** A folder, a file stem, and why it was chosen. */
export interface Destination {
  dir: string;
  stem: string;
  tracked: boolean;
  why: string;
}

const STEMS = { suite: "latest", ab: "ab-latest", command: "command-latest" };

/** Where the reports of a run go. */
export function destination(k: RunKind): Destination {
  const stem = STEMS[k.mode];
  if (k.out !== undefined) {
    return { dir: k.out, stem, tracked: false, why: "--out" };
  }
  if (k.mode !== "suite") {
    return {
      dir: SCRATCH_DIR,
      stem,
      tracked: false,
      why: `${k.mode === "ab" ? "an A/B" : "a command"} run is never tracked`,
    };
  }
  if (k.quick) {
    return {
      dir: SCRATCH_DIR,
      stem,
      tracked: false,
      why: "a QUICK run is not a result to keep",
    };
  }
  if (k.partial) {
    return {
      dir: SCRATCH_DIR,
      stem,
      tracked: false,
      why: "a run of some workloads or allocators is not the full report",
    };
  }
  if (!k.quiet) {
    return {
      dir: SCRATCH_DIR,
      stem,
      tracked: false,
      why:
        "the load average went above half the cores: figures too noisy to keep",
    };
  }
  return {
    dir: RESULTS_DIR,
    stem,
    tracked: true,
    why: "full run, quiet machine",
  };
}

/** Writes `<dir>/<stem><ext>` for each [ext, text]; returns their paths. */
export async function writeFiles(
  d: Destination,
  files: [string, string][],
): Promise<string[]> {
  await Deno.mkdir(d.dir, { recursive: true });
  const paths: string[] = [];
  for (const [ext, text] of files) {
    // Write then rename, so an interrupted run never leaves half a report.
    const path = join(d.dir, `${d.stem}${ext}`), tmp = `${path}.tmp`;
    await Deno.writeTextFile(tmp, text);
    await Deno.rename(tmp, path);
    paths.push(path);
  }
  return paths;
}
