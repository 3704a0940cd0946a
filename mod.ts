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
 * block.view(Float64Array)[0] = 1.5;
 * console.log(hz.policy, hz.stats().allocCount);
 *
 * const addresses = hz.mallocMany(32, 100); // one FFI call for 100 blocks
 * hz.freeMany(addresses);
 * ```
 *
 * Errors are the package's own classes (`PointerError`, `SizeError`,
 * `ArgumentError`, `OutOfMemoryError`, `LibraryNotFoundError`, ...), each
 * with a message that starts with `hakozuna: `.
 *
 * Run with `--allow-ffi --allow-env --allow-read`. From a checkout, `open()`
 * loads the library `make` built; from JSR, `await openAsync()` downloads the
 * release library once (also `--allow-net --allow-write`) and `open()` then
 * finds it in the cache.
 *
 * @module
 */
export {
  open,
  openAsync,
  type OpenAsyncOptions,
  type OpenOptions,
} from "./ffi/open.ts";
export type { CacheMode } from "./ffi/cache.ts";
export type { Block, Hakozuna, TypedArrayConstructor } from "./ffi/handle.ts";
export {
  ArgumentError,
  BlockError,
  ClosedError,
  LibraryLoadError,
  OutOfMemoryError,
  PermissionError,
  PointerError,
  type PointerProblem,
  PolicyError,
  SizeError,
} from "./ffi/errors.ts";
export { POLICIES, type Policy } from "./ffi/policy.ts";
export type { Stats } from "./ffi/stats.ts";
export { LibraryNotFoundError } from "./ffi/resolve.ts";
