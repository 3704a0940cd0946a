/**
 * The handle `open()` returns: the hz_* API with checked arguments.
 *
 * @module
 */
import type { Library } from "./library.ts";
import type { Policy } from "./policy.ts";
import { decodeStats, type Stats, STATS_SIZE } from "./stats.ts";
import { checkAlignment, checkPointer, checkSize, hex } from "./validate.ts";

/**
 * A block from {@linkcode Hakozuna.alloc}, freed when disposed.
 *
 * @example
 * ```ts
 * import { open } from "@hakozuna/hakozuna";
 * using hz = open();
 * {
 *   using block = hz.alloc(16);
 *   block.bytes.fill(0xff);
 * } // freed here
 * ```
 */
export interface Block extends Disposable {
  /** Start of the block. */
  readonly pointer: Deno.PointerObject;
  /** Bytes asked for, the length of {@linkcode Block.bytes}. */
  readonly size: number;
  /**
   * The block's memory. Freeing the block detaches it (length 0), so it can
   * never read or write freed memory.
   */
  readonly bytes: Uint8Array<ArrayBuffer>;
  /** Whether the block was freed through {@linkcode Block.free} or disposal. */
  readonly freed: boolean;
  /**
   * Frees the block; freeing it again does nothing. Like
   * {@linkcode Hakozuna.free}, it throws once the handle that allocated the
   * block is closed, or if the pointer was already freed another way.
   */
  free(): void;
}

/**
 * An open hakozuna library: the allocator's C API with JavaScript checks in
 * front. Sizes are numbers (integers from 0 to `Number.MAX_SAFE_INTEGER`);
 * other numbers throw `RangeError`, other types `TypeError`. Pointers the
 * library does not own throw `TypeError` before any native call, and every
 * method throws `Error` once the handle is closed.
 *
 * @example
 * ```ts
 * import { open } from "@hakozuna/hakozuna";
 * using hz = open();
 * const p = hz.malloc(64);
 * console.log(hz.usableSize(p) >= 64); // true
 * hz.free(p);
 * ```
 */
export interface Hakozuna extends Disposable {
  /** Path of the library file this handle uses. */
  readonly path: string;
  /** Version of the loaded library (`hz_version()`), e.g. `"0.1.0"`. */
  readonly version: string;
  /** Policy lane the library is running (`hz_policy_name()`). */
  readonly policy: Policy;
  /** Whether {@linkcode Hakozuna.close} was called. */
  readonly closed: boolean;
  /**
   * Allocates `size` bytes (uninitialised); `null` when out of memory.
   *
   * @example
   * ```ts
   * import { open } from "@hakozuna/hakozuna";
   * using hz = open();
   * const p = hz.malloc(100);
   * hz.free(p);
   * ```
   */
  malloc(size: number): Deno.PointerObject | null;
  /**
   * Allocates `count * size` zeroed bytes; `null` when out of memory or when
   * the product overflows.
   *
   * @example
   * ```ts
   * import { open } from "@hakozuna/hakozuna";
   * using hz = open();
   * const p = hz.calloc(10, 8); // 80 zero bytes
   * hz.free(p);
   * ```
   */
  calloc(count: number, size: number): Deno.PointerObject | null;
  /**
   * Resizes a block, moving it if needed; `realloc(null, size)` is `malloc`.
   * On failure it returns `null` and the old block stays valid. A size of 0
   * behaves as the C library's `realloc(p, 0)` (glibc frees the block and
   * returns `null`).
   *
   * @example
   * ```ts
   * import { open } from "@hakozuna/hakozuna";
   * using hz = open();
   * let p = hz.malloc(16);
   * p = hz.realloc(p, 4096) ?? p;
   * hz.free(p);
   * ```
   */
  realloc(
    pointer: Deno.PointerValue,
    size: number,
  ): Deno.PointerObject | null;
  /**
   * Allocates `size` bytes at an address that is a multiple of `alignment`
   * (a power of two, else `RangeError`); `null` when out of memory.
   *
   * @example
   * ```ts
   * import { open } from "@hakozuna/hakozuna";
   * using hz = open();
   * const p = hz.alignedAlloc(4096, 100);
   * console.log(Deno.UnsafePointer.value(p) % 4096n); // 0n
   * hz.free(p);
   * ```
   */
  alignedAlloc(alignment: number, size: number): Deno.PointerObject | null;
  /**
   * Frees a block; `free(null)` does nothing. A pointer the library does not
   * own (never allocated by it, or already freed) throws `TypeError`.
   *
   * @example
   * ```ts
   * import { open } from "@hakozuna/hakozuna";
   * using hz = open();
   * hz.free(hz.malloc(8));
   * hz.free(null);
   * ```
   */
  free(pointer: Deno.PointerValue): void;
  /**
   * Usable bytes of a live block (at least what was asked for); 0 for `null`.
   *
   * @example
   * ```ts
   * import { open } from "@hakozuna/hakozuna";
   * using hz = open();
   * const p = hz.malloc(10);
   * console.log(hz.usableSize(p)); // 16 or more
   * hz.free(p);
   * ```
   */
  usableSize(pointer: Deno.PointerValue): number;
  /**
   * Whether `pointer` is the start of a live block of this library. Never
   * throws for a foreign pointer; that is what it is for.
   *
   * @example
   * ```ts
   * import { open } from "@hakozuna/hakozuna";
   * using hz = open();
   * const p = hz.malloc(8);
   * console.log(hz.owns(p)); // true
   * hz.free(p);
   * console.log(hz.owns(p)); // false
   * ```
   */
  owns(pointer: Deno.PointerValue): boolean;
  /**
   * Allocates `size` bytes as a {@linkcode Block} with a `Uint8Array` view,
   * freed when disposed. Throws `Error` when out of memory.
   *
   * @example
   * ```ts
   * import { open } from "@hakozuna/hakozuna";
   * using hz = open();
   * using block = hz.alloc(1024);
   * block.bytes.set([1, 2, 3]);
   * ```
   */
  alloc(size: number): Block;
  /**
   * A frozen snapshot of the allocator's counters, all threads merged.
   *
   * @example
   * ```ts
   * import { open } from "@hakozuna/hakozuna";
   * using hz = open();
   * console.log(hz.stats().allocCount);
   * ```
   */
  stats(): Stats;
  /**
   * Hands this thread's pending remote frees to their owners, takes back
   * frees other threads handed over, and returns empty memory to the OS.
   * Returns the bytes returned to the OS.
   *
   * @example
   * ```ts
   * import { open } from "@hakozuna/hakozuna";
   * using hz = open();
   * console.log(`${hz.collect()} bytes returned`);
   * ```
   */
  collect(): number;
  /**
   * Ends this handle; later calls throw. The library stays loaded (an
   * allocator cannot be unloaded while its blocks and threads live), so other
   * handles and blocks already allocated stay valid. Closing twice is fine.
   *
   * @example
   * ```ts
   * import { open } from "@hakozuna/hakozuna";
   * const hz = open();
   * hz.close();
   * console.log(hz.closed); // true
   * ```
   */
  close(): void;
}

/** Creates a handle over a loaded library. */
export function createHandle(library: Library): Hakozuna {
  return new Handle(library);
}

class Handle implements Hakozuna {
  readonly path: string;
  readonly version: string;
  readonly policy: Policy;
  #native: Library["symbols"] | undefined;
  // One buffer for hz_stats: stats() copies the values out before returning.
  readonly #statsBuffer = new Uint8Array(STATS_SIZE);

  constructor(library: Library) {
    this.path = library.path;
    this.version = library.version;
    this.policy = library.policy;
    this.#native = library.symbols;
  }

  get closed(): boolean {
    return this.#native === undefined;
  }

  malloc(size: number): Deno.PointerObject | null {
    const native = this.#open();
    return native.hz_malloc(BigInt(checkSize("size", size)));
  }

  calloc(count: number, size: number): Deno.PointerObject | null {
    const native = this.#open();
    return native.hz_calloc(
      BigInt(checkSize("count", count)),
      BigInt(checkSize("size", size)),
    );
  }

  realloc(
    pointer: Deno.PointerValue,
    size: number,
  ): Deno.PointerObject | null {
    const native = this.#open();
    const bytes = BigInt(checkSize("size", size));
    return native.hz_realloc(this.#owned("realloc", pointer), bytes);
  }

  alignedAlloc(alignment: number, size: number): Deno.PointerObject | null {
    const native = this.#open();
    return native.hz_aligned_alloc(
      BigInt(checkAlignment(alignment)),
      BigInt(checkSize("size", size)),
    );
  }

  free(pointer: Deno.PointerValue): void {
    this.#open().hz_free(this.#owned("free", pointer));
  }

  usableSize(pointer: Deno.PointerValue): number {
    const native = this.#open();
    return Number(native.hz_usable_size(this.#owned("usableSize", pointer)));
  }

  owns(pointer: Deno.PointerValue): boolean {
    const native = this.#open();
    checkPointer("pointer", pointer);
    return pointer !== null && native.hz_owns(pointer) !== 0;
  }

  alloc(size: number): Block {
    const pointer = this.malloc(size); // checks size and the handle
    if (pointer === null) {
      throw new Error(`hakozuna: out of memory allocating ${size} bytes`);
    }
    return new OwnedBlock(this, pointer, size);
  }

  stats(): Stats {
    const native = this.#open();
    const written = Number(
      native.hz_stats(this.#statsBuffer, BigInt(STATS_SIZE)),
    );
    return decodeStats(this.#statsBuffer, written, this.version);
  }

  collect(): number {
    return Number(this.#open().hz_collect());
  }

  close(): void {
    this.#native = undefined;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #open(): Library["symbols"] {
    if (this.#native === undefined) {
      throw new Error(`hakozuna: handle is closed (library ${this.path})`);
    }
    return this.#native;
  }

  /**
   * Checks that `pointer` is null or a live block of this library: the
   * native free/realloc/usable_size abort the process on anything else, as
   * glibc does, so that must never reach them from here.
   */
  #owned(method: string, pointer: Deno.PointerValue): Deno.PointerValue {
    checkPointer("pointer", pointer);
    if (pointer !== null && this.#open().hz_owns(pointer) === 0) {
      throw new TypeError(
        `hakozuna: ${method}(${hex(pointer)}): not a live block of this ` +
          `library (never allocated by it, or already freed)`,
      );
    }
    return pointer;
  }
}

class OwnedBlock implements Block {
  readonly pointer: Deno.PointerObject;
  readonly size: number;
  readonly bytes: Uint8Array<ArrayBuffer>;
  readonly #handle: Hakozuna;
  #freed = false;

  constructor(handle: Hakozuna, pointer: Deno.PointerObject, size: number) {
    this.#handle = handle;
    this.pointer = pointer;
    this.size = size;
    this.bytes = new Uint8Array(
      Deno.UnsafePointerView.getArrayBuffer(pointer, size),
    );
  }

  get freed(): boolean {
    return this.#freed;
  }

  free(): void {
    if (this.#freed) return;
    this.#handle.free(this.pointer);
    // Detach the view so no later access can touch freed memory.
    this.bytes.buffer.transfer(0);
    this.#freed = true;
  }

  [Symbol.dispose](): void {
    this.free();
  }
}
