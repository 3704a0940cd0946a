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
import { isPolicy, type Policy, POLICY_ENV } from "./policy.ts";
import type { ResolvedLibrary } from "./resolve.ts";
import { type Native, SYMBOLS } from "./symbols.ts";

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
  const library = loaded.get(resolved.path) ??
    dlopen(resolved, policy);
  loaded.set(resolved.path, library);
  if (policy !== undefined && library.policy !== policy) {
    throw new Error(
      `hakozuna: cannot open with policy "${policy}": ${library.path} is ` +
        `already loaded in this process with policy "${library.policy}", and ` +
        `the policy is read once per process, at load. Open without a ` +
        `policy to share it, or start a new process with ` +
        `${POLICY_ENV}=${policy}.`,
    );
  }
  return library;
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
      throw new Error(
        `hakozuna: cannot load ${resolved.path} (from ${resolved.source}): ` +
          (error instanceof Error ? error.message : String(error)),
        { cause: error },
      );
    }
    const name = cString(symbols.hz_policy_name());
    if (!isPolicy(name)) {
      throw new Error(
        `hakozuna: ${resolved.path} reports policy "${name}", which this ` +
          `package does not know; is it a different version?`,
      );
    }
    return {
      path: resolved.path,
      symbols,
      version: cString(symbols.hz_version()),
      policy: name,
    };
  } finally {
    restore?.();
  }
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
    throw new Error(
      `hakozuna: open({ policy }) sets ${POLICY_ENV} before loading the ` +
        `library; grant --allow-env=${POLICY_ENV}`,
      { cause: error },
    );
  }
}

function cString(pointer: Deno.PointerValue): string {
  if (pointer === null) throw new Error("hakozuna: library returned NULL");
  return Deno.UnsafePointerView.getCString(pointer);
}
