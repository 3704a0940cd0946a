/**
 * Loading the native library, once per file and process.
 *
 * A loaded allocator is never unloaded: blocks it handed out, its thread-exit
 * destructors and other handles all outlive any one handle, so a handle's
 * `close()` only ends that handle. Loading the same file again returns the
 * same instance, which is also what the dynamic linker does.
 *
 * @module
 */
import { LibraryLoadError, PermissionError, PolicyError } from "./errors.ts";
import { isPolicy, type Policy, POLICY_ENV } from "./policy.ts";
import {
  LIBRARY_ENV,
  LIBRARY_FILE,
  LibraryNotFoundError,
  type ResolvedLibrary,
} from "./resolve.ts";
import { type Native, SYMBOLS } from "./symbols.ts";
import { VERSION } from "./version.ts";

/** A loaded library and the facts read from it once. */
export interface Library {
  readonly path: string;
  readonly symbols: Native;
  readonly version: string;
  readonly policy: Policy;
}

// Keyed by the path as resolved; the dynamic linker deduplicates further
// (two spellings of one file are one library).
const loaded = new Map<string, Library>();

/**
 * Loads `resolved` (or returns it if loaded) and checks that it runs the
 * `policy` asked for. The library reads HZ_POLICY once per process, when it
 * loads, so a policy can only be chosen by the first load; a later request
 * for a different one is an error, not a silent mismatch.
 */
export function loadLibrary(
  resolved: ResolvedLibrary,
  policy: Policy | undefined,
): Library {
  requireFfi(resolved.path);
  const library = loaded.get(resolved.path) ??
    dlopen(resolved, policy);
  loaded.set(resolved.path, library);
  if (policy !== undefined && library.policy !== policy) {
    throw new PolicyError(
      `hakozuna: cannot open with policy "${policy}": ${library.path} is ` +
        `already loaded in this process with policy "${library.policy}", and ` +
        `the policy is read once per process, at load. Open without a ` +
        `policy to share it, or start a new process with ` +
        `${POLICY_ENV}=${policy}.`,
      library.policy,
    );
  }
  return library;
}

/**
 * The package needs unscoped `--allow-ffi`: Deno lets code read memory through
 * a pointer (the library's version string, block views) only with it, and a
 * scoped grant would fail later, deep inside Deno, with its own message.
 */
function requireFfi(path: string): void {
  if (Deno.permissions.querySync({ name: "ffi" }).state === "granted") return;
  const scoped =
    Deno.permissions.querySync({ name: "ffi", path }).state === "granted";
  throw new PermissionError(
    scoped
      ? `hakozuna: scoped --allow-ffi=<path> is not enough: Deno reads ` +
        `memory through pointers (block views, the library's version) only ` +
        `with unscoped --allow-ffi; run with --allow-ffi`
      : `hakozuna: loading ${path} needs --allow-ffi`,
    "--allow-ffi",
  );
}

function dlopen(
  resolved: ResolvedLibrary,
  policy: Policy | undefined,
): Library {
  // HZ_POLICY is set only around the load: the library reads it then (and
  // hz_policy_name() below settles it), while leaving it set would silently
  // change the policy of every child process started later.
  const restore = policy === undefined ? undefined : setPolicyEnv(policy);
  try {
    let symbols: Native;
    try {
      symbols = Deno.dlopen(resolved.path, SYMBOLS).symbols;
    } catch (error) {
      throw loadError(resolved, error);
    }
    const name = cString(symbols.hz_policy_name(), resolved.path);
    if (!isPolicy(name)) {
      throw new LibraryLoadError(
        `hakozuna: ${resolved.path} reports policy "${name}", which this ` +
          `package does not know; is it a different version?`,
        resolved.path,
      );
    }
    return {
      path: resolved.path,
      symbols,
      version: cString(symbols.hz_version(), resolved.path),
      policy: name,
    };
  } finally {
    restore?.();
  }
}

/**
 * The package error for a failed `Deno.dlopen`, with Deno's message once
 * (Deno itself repeats "Could not open library: ") and the fix.
 */
function loadError(resolved: ResolvedLibrary, error: unknown): Error {
  const { path, source } = resolved;
  const options = { cause: error };
  if (error instanceof Deno.errors.NotCapable) {
    return new PermissionError(
      `hakozuna: loading ${path} needs --allow-ffi`,
      "--allow-ffi",
      options,
    );
  }
  const message = String((error as Error)?.message ?? error)
    .replaceAll("Could not open library: ", "");
  const from = source === LIBRARY_ENV ? `$${LIBRARY_ENV}` : source;
  if (/No such file or directory/.test(message)) {
    return new LibraryNotFoundError(
      `no library at ${path}`,
      [`${from} ${path}: no such file`],
      [
        source === LIBRARY_ENV
          ? `set ${LIBRARY_ENV} to a built ${LIBRARY_FILE}`
          : `give the path of a built ${LIBRARY_FILE}`,
        "run `make` in a checkout to build one",
      ],
    );
  }
  const symbol = message.match(/Failed to register symbol (\w+)/)?.[1];
  if (symbol !== undefined) {
    return new LibraryLoadError(
      `hakozuna: ${path} (from ${from}) has no ${symbol}: it is not a ` +
        `hakozuna library, or one older than this package (${VERSION}); ` +
        `rebuild it with \`make\``,
      path,
      options,
    );
  }
  return new LibraryLoadError(
    `hakozuna: cannot load ${path} (from ${from}): ${message}`,
    path,
    options,
  );
}

/** Sets HZ_POLICY and returns how to put the previous value back. */
function setPolicyEnv(policy: Policy): () => void {
  try {
    const previous = Deno.env.get(POLICY_ENV);
    Deno.env.set(POLICY_ENV, policy);
    return () => {
      if (previous === undefined) Deno.env.delete(POLICY_ENV);
      else Deno.env.set(POLICY_ENV, previous);
    };
  } catch (error) {
    if (!(error instanceof Deno.errors.NotCapable)) throw error;
    throw new PermissionError(
      `hakozuna: open({ policy }) sets ${POLICY_ENV} before loading the ` +
        `library; grant --allow-env=${POLICY_ENV}`,
      `--allow-env=${POLICY_ENV}`,
      { cause: error },
    );
  }
}

function cString(pointer: Deno.PointerValue, path: string): string {
  if (pointer === null) {
    throw new LibraryLoadError(`hakozuna: ${path} returned NULL`, path);
  }
  return Deno.UnsafePointerView.getCString(pointer);
}
