/**
 * The package's error classes. Every error this package throws for bad input
 * or a failed step is one of these (or {@linkcode LibraryNotFoundError} of
 * resolve.ts), with a message that starts with `hakozuna: ` and says what was
 * wrong and, where there is one, the fix; the error Deno raised, if any, is
 * kept as `cause` instead of being repeated in the message.
 *
 * Argument errors extend the built-in class JavaScript uses for them
 * (`TypeError`, `RangeError`), so `instanceof TypeError` keeps working.
 *
 * @module
 */

/**
 * Why a pointer was refused; the `reason` of a {@linkcode PointerError}.
 *
 * @example
 * ```ts
 * import { open, PointerError, type PointerProblem } from "@hakozuna/hakozuna";
 * using hz = open();
 * const p = hz.malloc(16);
 * hz.free(p);
 * let reason: PointerProblem | undefined;
 * try {
 *   hz.free(p);
 * } catch (error) {
 *   if (error instanceof PointerError) reason = error.reason;
 * }
 * console.log(reason); // "freed"
 * ```
 */
export type PointerProblem =
  /** Not a `Deno.PointerObject` or `null` (a number, a string, `{}`). */
  | "type"
  /** Not the start of a live block of this library: never allocated by it,
   * inside a block, or freed already where the call cannot tell (a large
   * block, `usableSize`, `realloc`, `freeMany`). */
  | "foreign"
  /** A block of this library that `free` found free already (a double free). */
  | "freed"
  /** The memory of a {@linkcode Block}, which only `block.free()` frees. */
  | "block";

/**
 * A pointer argument the library cannot take: of the wrong type, not a live
 * block of this library, or the memory of a `Block`. Nothing was done.
 *
 * @example
 * ```ts
 * import { open, PointerError } from "@hakozuna/hakozuna";
 * using hz = open();
 * try {
 *   hz.free(Deno.UnsafePointer.of(new Uint8Array(8)));
 * } catch (error) {
 *   if (error instanceof PointerError) console.log(error.reason); // "foreign"
 * }
 * ```
 */
export class PointerError extends TypeError {
  /** What is wrong with the pointer. */
  readonly reason: PointerProblem;
  /**
   * For `freeMany`: the index of the refused address. Every address before
   * it was freed, it and every address after it were not.
   */
  readonly index?: number;
  /** Builds the error; `index` is given by batch calls. */
  constructor(
    message: string,
    reason: PointerProblem,
    options?: ErrorOptions & { index?: number },
  ) {
    super(message, options);
    this.name = "PointerError";
    this.reason = reason;
    if (options?.index !== undefined) this.index = options.index;
  }
}

/**
 * An argument or option of the wrong type, or an option value the package
 * does not know (an unknown policy, a relative URL).
 *
 * @example
 * ```ts
 * import { ArgumentError, open } from "@hakozuna/hakozuna";
 * using hz = open();
 * try {
 *   hz.malloc("64" as unknown as number);
 * } catch (error) {
 *   console.log(error instanceof ArgumentError, error instanceof TypeError); // true true
 * }
 * ```
 */
export class ArgumentError extends TypeError {
  /** Builds the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ArgumentError";
  }
}

/**
 * A size, count or alignment outside what the API takes: negative,
 * fractional, not finite, above `Number.MAX_SAFE_INTEGER`, or an alignment
 * that is not a power of two. A size that is valid but cannot be allocated
 * is not a `SizeError`: `malloc` returns `null`, `alloc` throws
 * {@linkcode OutOfMemoryError}.
 *
 * @example
 * ```ts
 * import { open, SizeError } from "@hakozuna/hakozuna";
 * using hz = open();
 * try {
 *   hz.malloc(-1);
 * } catch (error) {
 *   console.log(error instanceof SizeError, error instanceof RangeError); // true true
 * }
 * ```
 */
export class SizeError extends RangeError {
  /** Builds the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SizeError";
  }
}

/**
 * The system gave no memory for a call that cannot answer `null`: `alloc`,
 * `block.resize`, `mallocMany` of a new array. The allocator and every live
 * block are as before.
 *
 * @example
 * ```ts
 * import { open, OutOfMemoryError } from "@hakozuna/hakozuna";
 * using hz = open();
 * try {
 *   hz.alloc(2 ** 50);
 * } catch (error) {
 *   if (error instanceof OutOfMemoryError) console.log(error.size); // 1125899906842624
 * }
 * ```
 */
export class OutOfMemoryError extends Error {
  /** Bytes asked for. */
  readonly size: number;
  /** Builds the error. */
  constructor(message: string, size: number, options?: ErrorOptions) {
    super(message, options);
    this.name = "OutOfMemoryError";
    this.size = size;
  }
}

/**
 * A library file that was found but could not be used: not a shared
 * library, built for another machine, or older than this package (a symbol
 * it needs is missing). A file that does not exist is a
 * {@linkcode LibraryNotFoundError} instead.
 *
 * @example
 * ```ts
 * import { LibraryLoadError, open } from "@hakozuna/hakozuna";
 * try {
 *   open({ path: "/etc/passwd" });
 * } catch (error) {
 *   if (error instanceof LibraryLoadError) console.log(error.path); // /etc/passwd
 * }
 * ```
 */
export class LibraryLoadError extends Error {
  /** The file that failed to load. */
  readonly path: string;
  /** Builds the error. */
  constructor(message: string, path: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "LibraryLoadError";
    this.path = path;
  }
}

/**
 * A Deno permission the package needs and was not granted; the message names
 * the flag to add. Scoped `--allow-ffi=<path>` is one: Deno lets code read
 * memory through a pointer (block views, the library's version string) only
 * with unscoped `--allow-ffi`.
 *
 * @example
 * ```ts
 * import { open, PermissionError } from "@hakozuna/hakozuna";
 * try {
 *   open().close();
 * } catch (error) {
 *   if (error instanceof PermissionError) console.log(error.flag); // e.g. "--allow-ffi"
 * }
 * ```
 */
export class PermissionError extends Error {
  /** The flag that grants what was missing, e.g. `"--allow-ffi"`. */
  readonly flag: string;
  /** Builds the error. */
  constructor(message: string, flag: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "PermissionError";
    this.flag = flag;
  }
}

/**
 * A `Block` operation that cannot be done safely: using a freed block, or
 * freeing or resizing one whose buffer was moved away (`transfer()`,
 * `structuredClone`, `postMessage`), which would leave the moved buffer
 * reaching freed memory. Nothing was done.
 *
 * @example
 * ```ts
 * import { BlockError, open } from "@hakozuna/hakozuna";
 * using hz = open();
 * const block = hz.alloc(8);
 * block.free();
 * try {
 *   block.view(Float64Array);
 * } catch (error) {
 *   console.log(error instanceof BlockError); // true
 * }
 * ```
 */
export class BlockError extends Error {
  /** Builds the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "BlockError";
  }
}

/**
 * A call on a handle after its `close()` (or the end of its `using` scope).
 *
 * @example
 * ```ts
 * import { ClosedError, open } from "@hakozuna/hakozuna";
 * const hz = open();
 * hz.close();
 * try {
 *   hz.malloc(8);
 * } catch (error) {
 *   console.log(error instanceof ClosedError); // true
 * }
 * ```
 */
export class ClosedError extends Error {
  /** Builds the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ClosedError";
  }
}

/**
 * `open({ policy })` asked for a lane other than the one the library already
 * runs in this process: the library reads its policy once, when it loads.
 *
 * @example
 * ```ts
 * import { open, PolicyError } from "@hakozuna/hakozuna";
 * using hz = open();
 * const other = hz.policy === "scale" ? "compact" : "scale";
 * try {
 *   open({ policy: other });
 * } catch (error) {
 *   if (error instanceof PolicyError) console.log(error.loaded === hz.policy); // true
 * }
 * ```
 */
export class PolicyError extends Error {
  /** The lane the library runs. */
  readonly loaded: string;
  /** Builds the error. */
  constructor(message: string, loaded: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "PolicyError";
    this.loaded = loaded;
  }
}
