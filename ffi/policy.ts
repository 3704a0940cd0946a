/**
 * Policy lanes the native library knows (`hz_policy_name()` in
 * native/include/hakozuna.h returns one of them).
 *
 * @module
 */

/**
 * The names of the allocator's policy lanes, in the order the header lists
 * them. `balanced` is the library's default.
 *
 * @example Check a name before passing it on
 * ```ts
 * import { POLICIES } from "@hakozuna/hakozuna";
 * console.log(POLICIES.includes("scale")); // true
 * ```
 */
export const POLICIES = ["balanced", "scale", "compact", "hardened"] as const;

/**
 * A policy lane: `"balanced"`, `"scale"`, `"compact"` or `"hardened"`.
 *
 * @example
 * ```ts
 * import type { Policy } from "@hakozuna/hakozuna";
 * const lane: Policy = "compact";
 * ```
 */
export type Policy = typeof POLICIES[number];

/** The environment variable the library reads its lane from, once, at load. */
export const POLICY_ENV = "HZ_POLICY";

/** Whether `name` is one of {@linkcode POLICIES}. */
export function isPolicy(name: unknown): name is Policy {
  return (POLICIES as readonly unknown[]).includes(name);
}
