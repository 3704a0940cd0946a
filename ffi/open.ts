/**
 * `open()` and `openAsync()`: options checked, library resolved and loaded,
 * handle returned.
 *
 * @module
 */
import { CACHE_MODES, type CacheMode } from "./cache.ts";
import { createHandle, type Hakozuna } from "./handle.ts";
import { loadLibrary } from "./library.ts";
import { isPolicy, POLICIES, type Policy } from "./policy.ts";
import { resolveLibrary, resolveLibraryAsync } from "./resolve.ts";

/**
 * Options of {@linkcode open}.
 *
 * @example
 * ```ts
 * import { open, type OpenOptions } from "@hakozuna/hakozuna";
 * const options: OpenOptions = { policy: "compact" };
 * using hz = open(options);
 * ```
 */
export interface OpenOptions {
  /**
   * The library file to load. Default: `$HAKOZUNA_LIB`, else the checkout's
   * `native/zig-out/lib/libhakozuna.so` (built by `make`), else the release
   * library in the download cache.
   */
  readonly path?: string;
  /**
   * Policy lane to load the library with (sets `HZ_POLICY` for the load).
   * Default: the process's `HZ_POLICY`, else the library's default. The
   * library reads its policy once per process, so if it is already loaded
   * with another lane, opening throws `Error` instead of ignoring the request.
   */
  readonly policy?: Policy;
}

/**
 * Options of {@linkcode openAsync}: those of {@linkcode open}, plus how the
 * release library is downloaded when no local one is found.
 *
 * @example
 * ```ts
 * import { openAsync, type OpenAsyncOptions } from "@hakozuna/hakozuna";
 * const options: OpenAsyncOptions = { cache: "only" };
 * using hz = await openAsync(options);
 * ```
 */
export interface OpenAsyncOptions extends OpenOptions {
  /**
   * Directory URL the release artifacts are downloaded from (the file name,
   * e.g. `libhakozuna-linux-x86_64.so`, is appended). Default:
   * `$HAKOZUNA_DOWNLOAD_URL`, else this version's GitHub release.
   */
  readonly url?: string | URL;
  /**
   * `"use"` (default): a cached download if there is one, else download;
   * `"only"`: never download; `"reload"`: download again.
   */
  readonly cache?: CacheMode;
  /** Milliseconds the download may take in all; default 60 000 (60 s). */
  readonly timeout?: number;
}

/**
 * Loads the hakozuna library (once per process) and returns a handle to it.
 * It looks for the library in the `path` option, `$HAKOZUNA_LIB`, the
 * checkout's build output, and the download cache, but never downloads:
 * {@linkcode openAsync} does.
 *
 * Throws `TypeError` for a bad option (an unknown policy is refused before
 * anything is loaded), and `Error` when no library is found (the message
 * lists every place tried and how to get one), when it fails to load, or
 * when it is already loaded with another policy.
 *
 * Permissions: `--allow-ffi`; `--allow-env` to read `HAKOZUNA_LIB`,
 * `HZ_POLICY` and the cache location (and to set `HZ_POLICY` for the
 * `policy` option); `--allow-read` to find the checkout build or the cache.
 *
 * @example
 * ```ts
 * import { open } from "@hakozuna/hakozuna";
 * using hz = open({ policy: "balanced" });
 * using block = hz.alloc(32);
 * block.bytes.fill(1);
 * console.log(hz.policy, hz.stats().bytesInUse);
 * ```
 */
export function open(options: OpenOptions = {}): Hakozuna {
  const { path, policy } = checkOptions(options);
  return createHandle(loadLibrary(resolveLibrary({ path }), policy));
}

/**
 * Like {@linkcode open}, and when no local library is found, downloads this
 * version's release library for the platform (Linux x86_64 or aarch64) into
 * the cache (`$HAKOZUNA_CACHE_DIR/<version>/`, else
 * `$DENO_DIR/hakozuna/<version>/`, `$XDG_CACHE_HOME/hakozuna/<version>/` or
 * `~/.cache/hakozuna/<version>/`), verifying its SHA-256 against the one
 * recorded in the package before it is written. Later `open()` calls find it
 * there. A download that takes over a second reports its progress on stderr.
 *
 * Permissions: those of `open()`, plus `--allow-net` and `--allow-write`
 * for the download.
 *
 * @example
 * ```ts
 * import { openAsync } from "@hakozuna/hakozuna";
 * using hz = await openAsync();
 * console.log(hz.path);
 * ```
 */
export async function openAsync(
  options: OpenAsyncOptions = {},
): Promise<Hakozuna> {
  const { path, policy, url, cache, timeout } = checkOptions(options);
  const resolved = await resolveLibraryAsync({ path, url, cache, timeout });
  return createHandle(loadLibrary(resolved, policy));
}

function checkOptions(options: unknown): OpenAsyncOptions {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("hakozuna: open() options must be an object");
  }
  const { path, policy, url, cache, timeout } = options as Record<
    string,
    unknown
  >;
  if (path !== undefined && (typeof path !== "string" || path === "")) {
    throw new TypeError("hakozuna: open({ path }) must be a non-empty string");
  }
  if (policy !== undefined && !isPolicy(policy)) {
    throw new TypeError(
      `hakozuna: unknown policy ${JSON.stringify(policy)}; ` +
        `expected one of ${POLICIES.join(", ")}`,
    );
  }
  if (url !== undefined && !isHttpUrl(url)) {
    throw new TypeError(
      `hakozuna: open({ url }) must be an http or https URL, got ${
        String(url)
      }`,
    );
  }
  if (cache !== undefined && !(CACHE_MODES as unknown[]).includes(cache)) {
    throw new TypeError(
      `hakozuna: unknown cache mode ${JSON.stringify(cache)}; ` +
        `expected one of ${CACHE_MODES.join(", ")}`,
    );
  }
  if (
    timeout !== undefined &&
    (typeof timeout !== "number" || !(timeout > 0) || timeout === Infinity)
  ) {
    throw new TypeError(
      `hakozuna: open({ timeout }) must be a positive number of ` +
        `milliseconds, got ${String(timeout)}`,
    );
  }
  return { path, policy, url, cache, timeout } as OpenAsyncOptions;
}

function isHttpUrl(url: unknown): url is string | URL {
  if (typeof url !== "string" && !(url instanceof URL)) return false;
  const parsed = URL.parse(url);
  return parsed?.protocol === "http:" || parsed?.protocol === "https:";
}
