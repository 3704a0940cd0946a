/**
 * The hz_* C API of native/include/hakozuna.h as a `Deno.dlopen` interface.
 *
 * Only hz_* symbols are bound: the library also exports `malloc` and friends
 * for LD_PRELOAD, but a dlopen'ed library's `malloc` is not the one its own
 * code reaches through the PLT, so it is never called from here.
 *
 * Every symbol takes and returns only numbers, bigints, pointers and buffers,
 * so V8 calls each one with Deno's fast FFI path. `usize` parameters are given
 * bigints: a number there takes Deno's slow path, ten times slower.
 *
 * @module
 */

/** Symbol table passed to `Deno.dlopen`; `size_t` is `usize`. */
export const SYMBOLS = {
  hz_malloc: { parameters: ["usize"], result: "pointer" },
  hz_free: { parameters: ["pointer"], result: "void" },
  hz_calloc: { parameters: ["usize", "usize"], result: "pointer" },
  hz_realloc: { parameters: ["pointer", "usize"], result: "pointer" },
  hz_aligned_alloc: { parameters: ["usize", "usize"], result: "pointer" },
  hz_usable_size: { parameters: ["pointer"], result: "usize" },
  hz_owns: { parameters: ["pointer"], result: "i32" },
  // HZ_OK 0, HZ_INVALID 1, HZ_FREED 2: see STATUS.
  hz_free_checked: { parameters: ["pointer"], result: "i32" },
  hz_usable_size_checked: { parameters: ["pointer"], result: "usize" },
  hz_malloc_many: { parameters: ["usize", "buffer", "usize"], result: "usize" },
  hz_free_many: { parameters: ["buffer", "usize"], result: "usize" },
  hz_stats: { parameters: ["buffer", "usize"], result: "usize" },
  hz_collect: { parameters: [], result: "usize" },
  hz_policy_name: { parameters: [], result: "pointer" },
  hz_version: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The status codes of `hz_free_checked` (hakozuna.h's HZ_OK, HZ_INVALID, HZ_FREED). */
export const STATUS = { ok: 0, invalid: 1, freed: 2 } as const;

/** The bound functions of one loaded library. */
export type Native = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
