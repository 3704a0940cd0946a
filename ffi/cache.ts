/**
 * The download cache: where release artifacts are kept, checking a cached
 * file, and downloading one with its SHA-256 verified before it is written,
 * within a time limit, with progress on stderr when it takes over a second.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { readEnv } from "./env.ts";

/**
 * How the download cache is used: `"use"` takes a cached file and downloads
 * on a miss, `"only"` never downloads, `"reload"` always downloads (replacing
 * the file).
 *
 * @example
 * ```ts
 * import { type CacheMode, openAsync } from "@hakozuna/hakozuna";
 * const cache: CacheMode = Deno.env.get("CI") ? "only" : "use";
 * using hz = await openAsync({ cache });
 * ```
 */
export type CacheMode = "use" | "only" | "reload";

/** Every {@linkcode CacheMode}, for checking options. */
export const CACHE_MODES: readonly CacheMode[] = ["use", "only", "reload"];

/** One release artifact: where it comes from, where it is kept, its hash. */
export interface Artifact {
  readonly url: URL;
  readonly file: string;
  readonly sha256: string;
}

/** The variable naming the cache's root directory (versions below it). */
export const CACHE_DIR_ENV = "HAKOZUNA_CACHE_DIR";

/** How long a download may take, in milliseconds, unless told otherwise. */
export const DEFAULT_TIMEOUT_MS = 60_000;

/** After this long a download reports its progress on stderr. */
const PROGRESS_AFTER_MS = 1000;

/** The outcome of a step: a value, or why there is none and what would fix it. */
export type Outcome<T> = { readonly value: T } | {
  readonly reason: string;
  readonly fix?: string;
};

/**
 * The cache directory of `version`: `$HAKOZUNA_CACHE_DIR/<version>`, else
 * `$DENO_DIR/hakozuna/<version>`, else `$XDG_CACHE_HOME/hakozuna/<version>`,
 * else `$HOME/.cache/hakozuna/<version>`. A variable whose read permission is
 * refused counts as unset.
 */
export function cacheDirectory(version: string): Outcome<string> {
  const refused: string[] = [];
  const candidates: [string, string[]][] = [
    [CACHE_DIR_ENV, []],
    ["DENO_DIR", ["hakozuna"]],
    ["XDG_CACHE_HOME", ["hakozuna"]],
    ["HOME", [".cache", "hakozuna"]],
  ];
  for (const [name, under] of candidates) {
    const env = readEnv(name);
    if (env.value !== undefined) {
      return { value: join(env.value, ...under, version) };
    }
    if (env.refused) refused.push(name);
  }
  const names = candidates.map(([name]) => name);
  return {
    reason: `cache: no directory (${names.join(", ")} unset` +
      (refused.length ? ` or not readable: ${refused.join(", ")})` : ")"),
    fix: refused.length
      ? `grant --allow-env=${refused.join(",")}`
      : `set ${CACHE_DIR_ENV} or HOME`,
  };
}

/** Lowercase hex SHA-256 of `bytes`. */
export function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * The cached file of `artifact` if it is there and has the recorded hash;
 * `reload` is the fix suggested for a damaged file.
 */
export function readCached(
  artifact: Artifact,
  reload = `download it again with openAsync({ cache: "reload" })`,
): Outcome<string> {
  const { file } = artifact;
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(file);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return { reason: `cache ${file}: not downloaded` };
    }
    if (error instanceof Deno.errors.NotCapable) {
      return {
        reason: `cache ${file}: not readable without --allow-read`,
        fix: "grant --allow-read",
      };
    }
    throw error;
  }
  const actual = sha256(bytes);
  if (actual !== artifact.sha256) {
    return {
      reason: `cache ${file}: SHA-256 ${actual} is not the recorded ` +
        `${artifact.sha256} (damaged, or from another build)`,
      fix: reload,
    };
  }
  return { value: file };
}

// Downloads in progress in this isolate, by destination: a second open while
// one is under way waits for it instead of fetching the file again.
const inflight = new Map<string, Promise<string>>();

/** Options of {@linkcode download}. */
export interface DownloadOptions {
  /** Milliseconds the whole download may take; default 60 000. */
  readonly timeout?: number;
  /** Where progress lines go; default stderr. */
  readonly progress?: (line: string) => void;
}

/**
 * Downloads `artifact`, verifies its SHA-256 and only then stores it, through
 * a temporary file renamed into place, so that no process ever sees a partial
 * or unverified file. A download that takes over a second reports its
 * progress once a second on stderr. Resolves to the cached file; rejects with
 * why not (the caller names the URL).
 */
export function download(
  artifact: Artifact,
  options: DownloadOptions = {},
): Promise<string> {
  let pending = inflight.get(artifact.file);
  if (!pending) {
    pending = fetchAndStore(artifact, options).finally(() =>
      inflight.delete(artifact.file)
    );
    inflight.set(artifact.file, pending);
  }
  return pending;
}

async function fetchAndStore(
  { url, file, sha256: expected }: Artifact,
  { timeout = DEFAULT_TIMEOUT_MS, progress = writeStderr }: DownloadOptions,
) {
  const controller = new AbortController();
  const started = Date.now();
  let received = 0;
  let total: number | undefined;
  let reported = false;
  const report = (done: boolean) => {
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    const size = total ? `${mib(received)} of ${mib(total)}` : mib(received);
    progress(
      done
        ? `hakozuna: downloaded ${url} (${mib(received)} in ${seconds} s)`
        : `hakozuna: downloading ${url}: ${size} after ${seconds} s`,
    );
    reported = true;
  };
  const timer = setTimeout(() => controller.abort(), timeout);
  let ticker: ReturnType<typeof setInterval> | undefined;
  const first = setTimeout(() => {
    report(false);
    ticker = setInterval(() => report(false), PROGRESS_AFTER_MS);
  }, PROGRESS_AFTER_MS);
  let bytes: Uint8Array;
  try {
    const response = await fetch(url, { signal: controller.signal });
    if (!response.ok) {
      await response.body?.cancel();
      throw new Error(`HTTP ${response.status} ${response.statusText}`);
    }
    const length = Number(response.headers.get("content-length"));
    if (length > 0) total = length;
    const chunks: Uint8Array[] = [];
    for await (const chunk of response.body ?? []) {
      chunks.push(chunk);
      received += chunk.length;
    }
    bytes = new Uint8Array(received);
    let offset = 0;
    for (const chunk of chunks) {
      bytes.set(chunk, offset);
      offset += chunk.length;
    }
  } catch (error) {
    if (controller.signal.aborted) {
      throw new Error(
        `timed out after ${timeout / 1000} s (${mib(received)} received)`,
        { cause: error },
      );
    }
    throw new Error(explain(error), { cause: error });
  } finally {
    clearTimeout(timer);
    clearTimeout(first);
    clearInterval(ticker);
  }
  if (reported) report(true);
  const actual = sha256(bytes);
  if (actual !== expected) {
    throw new Error(
      `SHA-256 ${actual} is not the recorded ${expected}; ` +
        `refused, nothing cached`,
    );
  }
  await writeAtomically(file, bytes);
  return file;
}

async function writeAtomically(file: string, bytes: Uint8Array) {
  await Deno.mkdir(dirname(file), { recursive: true });
  const temporary = `${file}.${Deno.pid}.${crypto.randomUUID()}.tmp`;
  try {
    using out = await Deno.open(temporary, {
      write: true,
      createNew: true,
      mode: 0o755,
    });
    for (let written = 0; written < bytes.length;) {
      written += await out.write(bytes.subarray(written));
    }
    // On disk before it is visible under its final name.
    await out.sync();
    await Deno.rename(temporary, file);
  } catch (error) {
    // The temporary file may not exist (open failed); the first error is
    // the one to report either way.
    await Deno.remove(temporary).catch(() => {});
    throw error;
  }
}

/** `bytes` in MiB, one decimal. */
function mib(bytes: number): string {
  return `${(bytes / (1 << 20)).toFixed(1)} MiB`;
}

function writeStderr(line: string) {
  console.error(line);
}

/** An error's message followed by its causes' ("fetch failed" says little). */
function explain(error: unknown): string {
  const messages: string[] = [];
  for (let e = error; e !== undefined; e = (e as Error).cause) {
    messages.push(e instanceof Error ? e.message : String(e));
    if (!(e instanceof Error)) break;
  }
  return messages.join(": ");
}
