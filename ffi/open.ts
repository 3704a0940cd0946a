/**
 * `open()`: options checked, library resolved and loaded, handle returned.
 *
 * @module
 */
import { createHandle, type Hakozuna } from "./handle.ts";
import { loadLibrary } from "./library.ts";
import { isPolicy, POLICIES, type Policy } from "./policy.ts";
import { resolveLibrary } from "./resolve.ts";

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
   * `native/zig-out/lib/libhakozuna.so` (built by `make`).
   */
  readonly path?: string;
  /**
   * Policy lane to load the library with (sets `HZ_POLICY` for the load).
   * Default: the process's `HZ_POLICY`, else the library's default. The
   * library reads its policy once per process, so if it is already loaded
   * with another lane, `open` throws `Error` instead of ignoring the request.
   */
  readonly policy?: Policy;
}

/**
 * Loads the hakozuna library (once per process) and returns a handle to it.
 *
 * Throws `TypeError` for a bad option (an unknown policy is refused before
 * anything is loaded), and `Error` when no library is found (the message
 * lists every place tried and how to build one), when it fails to load, or
 * when it is already loaded with another policy.
 *
 * Permissions: `--allow-ffi`; `--allow-env` to read `HAKOZUNA_LIB` and
 * `HZ_POLICY` (and to set `HZ_POLICY` for the `policy` option);
 * `--allow-read` to find the checkout build.
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

function checkOptions(options: unknown): OpenOptions {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("hakozuna: open() options must be an object");
  }
  const { path, policy } = options as Record<string, unknown>;
  if (path !== undefined && (typeof path !== "string" || path === "")) {
    throw new TypeError("hakozuna: open({ path }) must be a non-empty string");
  }
  if (policy !== undefined && !isPolicy(policy)) {
    throw new TypeError(
      `hakozuna: unknown policy ${JSON.stringify(policy)}; ` +
        `expected one of ${POLICIES.join(", ")}`,
    );
  }
  return { path, policy };
}
