/**
 * hakozuna for Deno: the hakozuna memory allocator (a native library written
 * in Zig) opened with `Deno.dlopen`, behind a typed and checked API.
 *
 * ```ts
 * import { open } from "@hakozuna/hakozuna";
 *
 * using hz = open();
 * const p = hz.malloc(64);
 * console.log(hz.usableSize(p), hz.owns(p)); // 64 true (or more than 64)
 * hz.free(p);
 *
 * using block = hz.alloc(1024); // freed at the end of the scope
 * block.bytes.fill(7);
 * console.log(hz.policy, hz.stats().allocCount);
 * ```
 *
 * Run with `--allow-ffi --allow-env --allow-read`.
 *
 * @module
 */
export { open, type OpenOptions } from "./ffi/open.ts";
export type { Block, Hakozuna } from "./ffi/handle.ts";
export { POLICIES, type Policy } from "./ffi/policy.ts";
export type { Stats } from "./ffi/stats.ts";
export { LibraryNotFoundError } from "./ffi/resolve.ts";
