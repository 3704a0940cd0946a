/**
 * The hz_* C API of native/include/hakozuna.h as a `Deno.dlopen` interface.
 *
 * Only hz_* symbols are bound: the library also exports `malloc` and friends
 * for LD_PRELOAD, but a dlopen'ed library's `malloc` is not the one its own
 * code reaches through the PLT, so it is never called from here.
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
  hz_stats: { parameters: ["buffer", "usize"], result: "usize" },
  hz_collect: { parameters: [], result: "usize" },
  hz_policy_name: { parameters: [], result: "pointer" },
  hz_version: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The bound functions of one loaded library. */
export type Native = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
