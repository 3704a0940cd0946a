/**
 * The handle `open()` returns: the hz_* API with checked arguments, one FFI
 * call per operation on the hot paths, and {@linkcode Block}s that can never
 * touch freed memory.
 *
 * @module
 */
import {
  ArgumentError,
  BlockError,
  ClosedError,
  OutOfMemoryError,
  PointerError,
} from "./errors.ts";
import type { Library } from "./library.ts";
import type { Policy } from "./policy.ts";
import { decodeStats, type Stats, STATS_SIZE } from "./stats.ts";
import { type Native, STATUS } from "./symbols.ts";
import {
  checkAlignment,
  checkPointer,
  checkSize,
  describe,
  hex,
  pointerTypeError,
} from "./validate.ts";

/**
 * The typed arrays a {@linkcode Block} can be viewed as: the constructors
 * `Uint8Array`, `Int32Array`, `Float64Array`, `BigUint64Array`, ...
 *
 * @example
 * ```ts
 * import { type Block, open, type TypedArrayConstructor } from "@hakozuna/hakozuna";
 * function sum(block: Block, type: TypedArrayConstructor<Float64Array<ArrayBuffer>>) {
 *   return block.view(type).reduce((total, x) => total + x, 0);
 * }
 * using hz = open();
 * using block = hz.alloc(64);
 * block.view(Float64Array).fill(0.25);
 * console.log(sum(block, Float64Array)); // 2
 * ```
 */
export type TypedArrayConstructor<T extends ArrayBufferView<ArrayBuffer>> = {
  new (buffer: ArrayBuffer, byteOffset: number, length: number): T;
  readonly BYTES_PER_ELEMENT: number;
};

/**
 * A block from {@linkcode Hakozuna.alloc}, freed when disposed. Its memory
 * is reached only through views (`bytes`, `view(Type)`, `dataView`) over one
 * `ArrayBuffer` that the block detaches when it is freed or moved by
 * `resize`, so no view can read or write memory the block no longer owns.
 *
 * A block takes 16 bytes more than its size: `pointer` lies past a header
 * at the start of the allocation. Only `block.free()` (or disposal) frees a
 * block: its `pointer` is refused
 * by `free`, `realloc`, `usableSize` and `freeMany` of every handle (with a
 * {@linkcode PointerError} whose `reason` is `"block"`), and by the C
 * library's checked calls too, since it is not the start of an allocation.
 *
 * @example
 * ```ts
 * import { open } from "@hakozuna/hakozuna";
 * using hz = open();
 * {
 *   using block = hz.alloc(16);
 *   block.bytes.fill(0xff);
 *   block.view(Float64Array)[1] = Math.PI;
 *   block.resize(4096); // older views are now empty; take new ones
 *   console.log(block.view(Float64Array)[1]); // 3.141592653589793
 * } // freed here
 * ```
 */
export interface Block extends Disposable {
  /**
   * Start of the block's `size` bytes, to hand to native code that reads or
   * writes them. It changes when `resize` moves the block. It is not a
   * pointer `free` accepts: only {@linkcode Block.free} frees a block.
   */
  readonly pointer: Deno.PointerObject;
  /** Bytes the block holds: what was asked for, or the last `resize`. */
  readonly size: number;
  /**
   * The block's memory as bytes. Freeing or moving the block detaches it
   * (length 0), so it can never read or write memory the block left.
   */
  readonly bytes: Uint8Array<ArrayBuffer>;
  /**
   * The block's memory as a `DataView` (little-endian access with
   * `getFloat64(offset, true)` and the like), detached as `bytes` is.
   * Throws {@linkcode BlockError} once the block is freed.
   */
  readonly dataView: DataView<ArrayBuffer>;
  /** Whether the block was freed through {@linkcode Block.free} or disposal. */
  readonly freed: boolean;
  /**
   * The block's memory as a typed array of `type` (`Float64Array`,
   * `Int32Array`, `BigUint64Array`, ...): `floor(size / BYTES_PER_ELEMENT)`
   * elements from the start, which is 16-byte aligned. Detached, like
   * `bytes`, when the block is freed or moved. Throws {@linkcode BlockError}
   * once the block is freed, {@linkcode ArgumentError} if `type` is not a
   * typed array constructor.
   *
   * @example
   * ```ts
   * import { open } from "@hakozuna/hakozuna";
   * using hz = open();
   * using block = hz.alloc(8 * 100);
   * const samples = block.view(Float64Array); // 100 doubles
   * samples.fill(0.5);
   * ```
   */
  view<T extends ArrayBufferView<ArrayBuffer>>(
    type: TypedArrayConstructor<T>,
  ): T;
  /**
   * Grows or shrinks the block to `size` bytes, keeping its contents up to
   * the smaller size (the C `realloc`). Every view taken before is detached,
   * also when the block stays in place; take new ones. When there is no
   * memory it throws {@linkcode OutOfMemoryError} and the block and its
   * views are as before.
   *
   * @example
   * ```ts
   * import { open } from "@hakozuna/hakozuna";
   * using hz = open();
   * using block = hz.alloc(4);
   * block.bytes.set([1, 2, 3, 4]);
   * block.resize(1 << 20);
   * console.log(block.bytes.subarray(0, 4)); // Uint8Array(4) [ 1, 2, 3, 4 ]
   * ```
   */
  resize(size: number): void;
  /**
   * Frees the block and detaches every view of it; freeing it again does
   * nothing. It works after the handle that allocated it is closed (the
   * library stays loaded). If the block's buffer was moved away
   * (`bytes.buffer.transfer()`, `structuredClone` or `postMessage` with
   * transfer), the moved buffer still reaches the memory and cannot be
   * detached: the memory is then kept, never reused, and this throws
   * {@linkcode BlockError}.
   *
   * @example
   * ```ts
   * import { open } from "@hakozuna/hakozuna";
   * using hz = open();
   * const block = hz.alloc(64);
   * const bytes = block.bytes;
   * block.free();
   * console.log(bytes.length, block.freed); // 0 true
   * ```
   */
  free(): void;
}

/**
 * An open hakozuna library: the allocator's C API with JavaScript checks in
 * front, each operation one FFI call. Sizes are numbers (integers from 0 to
 * `Number.MAX_SAFE_INTEGER`): other numbers throw {@linkcode SizeError}, other
 * types {@linkcode ArgumentError}. A pointer that is not a live block of the
 * library throws {@linkcode PointerError} and nothing is done, and every
 * method throws {@linkcode ClosedError} once the handle is closed.
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
   * returns `null`). A pointer that is not a live block throws
   * {@linkcode PointerError}.
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
   * (a power of two, else {@linkcode SizeError}); `null` when out of memory.
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
   * Frees a block; `free(null)` does nothing. A pointer that is not a live
   * block of the library (never allocated by it, inside a block, already
   * freed, or a {@linkcode Block}'s memory) throws {@linkcode PointerError},
   * whose `reason` says which, and nothing is freed. One FFI call.
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
   * Anything else throws {@linkcode PointerError}.
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
   * Whether `pointer` is the start of a live block of this library, one that
   * `free` takes. Never throws for a foreign pointer; that is what it is for.
   * A {@linkcode Block}'s pointer is not one.
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
   * Allocates many blocks of `size` bytes in one FFI call, for hot code.
   * `into` is a count (a new `BigUint64Array` of that length is filled) or an
   * array to fill. Returns the addresses: all of them, or, when memory ran
   * out, the ones allocated (a shorter `subarray`). Free them with
   * {@linkcode Hakozuna.freeMany} (or one by one with `free`, after
   * `Deno.UnsafePointer.create(address)`).
   *
   * @example
   * ```ts
   * import { open } from "@hakozuna/hakozuna";
   * using hz = open();
   * const addresses = hz.mallocMany(64, 1000);
   * const first = Deno.UnsafePointer.create(addresses[0])!;
   * new Deno.UnsafePointerView(first).getUint8(0); // the block's first byte
   * hz.freeMany(addresses);
   * ```
   */
  mallocMany(size: number, into: number | BigUint64Array): BigUint64Array;
  /**
   * Frees every address of `addresses` (0 is skipped, like `free(null)`) in
   * one FFI call. It stops at the first address that is not a live block,
   * throwing {@linkcode PointerError} with that address's `index`: the
   * addresses before it were freed, it and those after it were not.
   *
   * @example
   * ```ts
   * import { open } from "@hakozuna/hakozuna";
   * using hz = open();
   * const batch = new BigUint64Array(256);
   * for (let round = 0; round < 10; round++) {
   *   hz.freeMany(hz.mallocMany(48, batch));
   * }
   * ```
   */
  freeMany(addresses: BigUint64Array): void;
  /**
   * Allocates `size` bytes as a {@linkcode Block} with typed views, freed
   * when disposed. Throws {@linkcode OutOfMemoryError} when out of memory.
   *
   * @example
   * ```ts
   * import { open } from "@hakozuna/hakozuna";
   * using hz = open();
   * using block = hz.alloc(1024);
   * block.bytes.set([1, 2, 3]);
   * block.dataView.setUint32(4, 0xdeadbeef, true);
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
   * Ends this handle; later calls throw {@linkcode ClosedError}. The library
   * stays loaded (an allocator cannot be unloaded while its blocks and
   * threads live), so other handles, blocks already allocated and their
   * `free()` keep working. Closing twice is fine.
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

/**
 * Bytes in front of a Block's memory: a tag that lets error messages say
 * "this is a Block's memory", and the reason `block.pointer` is not the start
 * of an allocation, which is what makes every free of it refused.
 */
const BLOCK_HEADER = 16;
/** Random, so user data cannot pass for a Block header by accident. */
const BLOCK_TAG = crypto.getRandomValues(new BigUint64Array(1))[0];

/**
 * Whether `pointer` is the memory of a live Block: 16 bytes after the start
 * of a live block of ours whose first word is the tag. Only on error paths.
 */
function isBlockMemory(native: Native, pointer: Deno.PointerObject): boolean {
  const address = Deno.UnsafePointer.value(pointer);
  if (address < BigInt(BLOCK_HEADER)) return false;
  const base = Deno.UnsafePointer.create(address - BigInt(BLOCK_HEADER));
  // A live block of ours holds at least 16 bytes: reading 8 is safe.
  if (base === null || native.hz_owns(base) === 0) return false;
  return new Deno.UnsafePointerView(base).getBigUint64(0) === BLOCK_TAG;
}

/**
 * The error for a pointer that is not a live block; `status` is what
 * hz_free_checked said, when the call was a free.
 */
function refused(
  native: Native,
  call: string,
  pointer: Deno.PointerObject,
  status?: number,
  index?: number,
): PointerError {
  const options = index === undefined ? undefined : { index };
  const what = `hakozuna: ${call}(${hex(pointer)})`;
  if (status === STATUS.freed) {
    return new PointerError(
      `${what}: not a live block of this library: it was freed already ` +
        `(double free)`,
      "freed",
      options,
    );
  }
  if (isBlockMemory(native, pointer)) {
    return new PointerError(
      `${what}: this is the memory of a Block; only block.free() frees it`,
      "block",
      options,
    );
  }
  return new PointerError(
    `${what}: not a live block of this library (never allocated by it, ` +
      `inside a block, or already freed)`,
    "foreign",
    options,
  );
}

/**
 * The error for an object Deno refused as a pointer (`error`, kept as the
 * cause). A Block itself gets the Block message: what was meant is clear.
 */
function notAPointer(call: string, value: unknown, error: unknown): Error {
  if (value instanceof OwnedBlock) {
    return new PointerError(
      `hakozuna: ${call}(pointer) was given a Block; only block.free() ` +
        `frees it`,
      "block",
      { cause: error },
    );
  }
  return pointerTypeError(`${call}(pointer)`, value, error);
}

class Handle implements Hakozuna {
  readonly path: string;
  readonly version: string;
  readonly policy: Policy;
  #closed = false;
  readonly #native: Native;
  // The hot calls, taken out of the symbol table once.
  readonly #malloc: Native["hz_malloc"];
  readonly #freeChecked: Native["hz_free_checked"];
  readonly #mallocMany: Native["hz_malloc_many"];
  readonly #freeMany: Native["hz_free_many"];
  // One buffer for hz_stats: stats() copies the values out before returning.
  readonly #statsBuffer = new Uint8Array(STATS_SIZE);

  constructor(library: Library) {
    this.path = library.path;
    this.version = library.version;
    this.policy = library.policy;
    const native = library.symbols;
    this.#native = native;
    this.#malloc = native.hz_malloc;
    this.#freeChecked = native.hz_free_checked;
    this.#mallocMany = native.hz_malloc_many;
    this.#freeMany = native.hz_free_many;
  }

  get closed(): boolean {
    return this.#closed;
  }

  // The hot paths (malloc, free, the batches) test the common case inline
  // and leave the rest to validate.ts. `usize` arguments are bigints, which
  // keeps Deno's fast call; `BigInt(size >>> 0)` of a size below 4 GiB is
  // a 32-bit integer V8 widens in a register, where `BigInt(size)` of any
  // number allocates a BigInt (about 10 ns a call, measured).

  malloc(size: number): Deno.PointerObject | null {
    if (this.#closed) throw this.#closedError();
    if (typeof size === "number") {
      const small = size >>> 0;
      if (small === size) return this.#malloc(BigInt(small));
    }
    return this.#malloc(BigInt(checkSize("malloc(size)", size)));
  }

  free(pointer: Deno.PointerValue): void {
    if (this.#closed) throw this.#closedError();
    if (typeof pointer !== "object") {
      throw pointerTypeError("free(pointer)", pointer);
    }
    let status;
    try {
      status = this.#freeChecked(pointer);
    } catch (error) {
      throw notAPointer("free", pointer, error);
    }
    if (status !== STATUS.ok) {
      throw refused(this.#native, "free", pointer!, status);
    }
  }

  mallocMany(size: number, into: number | BigUint64Array): BigUint64Array {
    if (this.#closed) throw this.#closedError();
    const bytes = typeof size === "number" && (size >>> 0) === size
      ? BigInt(size >>> 0)
      : BigInt(checkSize("mallocMany(size)", size));
    let out: BigUint64Array;
    if (into instanceof BigUint64Array) {
      out = into;
    } else if (typeof into === "number") {
      out = newAddressArray(checkSize("mallocMany(count)", into), size);
    } else {
      throw new ArgumentError(
        `hakozuna: mallocMany(into) must be a count or a BigUint64Array, ` +
          `got ${describe(into)}`,
      );
    }
    const length = out.length;
    const allocated = Number(this.#mallocMany(bytes, out, BigInt(length)));
    return allocated === length ? out : out.subarray(0, allocated);
  }

  freeMany(addresses: BigUint64Array): void {
    if (this.#closed) throw this.#closedError();
    if (!(addresses instanceof BigUint64Array)) {
      throw new ArgumentError(
        `hakozuna: freeMany(addresses) must be a BigUint64Array, got ` +
          describe(addresses),
      );
    }
    const length = addresses.length;
    const freed = Number(this.#freeMany(addresses, BigInt(length)));
    if (freed !== length) {
      const pointer = Deno.UnsafePointer.create(addresses[freed])!;
      throw refused(this.#native, "freeMany", pointer, undefined, freed);
    }
  }

  calloc(count: number, size: number): Deno.PointerObject | null {
    this.#open();
    return this.#native.hz_calloc(
      BigInt(checkSize("calloc(count)", count)),
      BigInt(checkSize("calloc(size)", size)),
    );
  }

  realloc(
    pointer: Deno.PointerValue,
    size: number,
  ): Deno.PointerObject | null {
    this.#open();
    const bytes = BigInt(checkSize("realloc(size)", size));
    // hz_realloc aborts on a pointer that is not a live block, as glibc does.
    if (pointer !== null && !this.#live("realloc", pointer)) {
      throw refused(this.#native, "realloc", pointer!);
    }
    return this.#native.hz_realloc(pointer, bytes);
  }

  alignedAlloc(alignment: number, size: number): Deno.PointerObject | null {
    this.#open();
    return this.#native.hz_aligned_alloc(
      BigInt(checkAlignment("alignedAlloc(alignment)", alignment)),
      BigInt(checkSize("alignedAlloc(size)", size)),
    );
  }

  usableSize(pointer: Deno.PointerValue): number {
    this.#open();
    checkPointer("usableSize(pointer)", pointer);
    if (pointer === null) return 0;
    let usable;
    try {
      usable = this.#native.hz_usable_size_checked(pointer);
    } catch (error) {
      throw notAPointer("usableSize", pointer, error);
    }
    if (usable === 0n) throw refused(this.#native, "usableSize", pointer);
    return Number(usable);
  }

  owns(pointer: Deno.PointerValue): boolean {
    this.#open();
    return this.#live("owns", pointer);
  }

  alloc(size: number): Block {
    this.#open();
    checkSize("alloc(size)", size);
    const base = this.#malloc(BigInt(size) + BigInt(BLOCK_HEADER));
    if (base === null) {
      throw new OutOfMemoryError(
        `hakozuna: out of memory allocating ${size} bytes`,
        size,
      );
    }
    return new OwnedBlock(this.#native, base, size);
  }

  stats(): Stats {
    this.#open();
    const written = Number(
      this.#native.hz_stats(this.#statsBuffer, BigInt(STATS_SIZE)),
    );
    return decodeStats(this.#statsBuffer, written, this.version);
  }

  collect(): number {
    this.#open();
    return Number(this.#native.hz_collect());
  }

  close(): void {
    this.#closed = true;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #open(): void {
    if (this.#closed) throw this.#closedError();
  }

  #closedError(): ClosedError {
    return new ClosedError(
      `hakozuna: handle is closed (library ${this.path}); open() another`,
    );
  }

  /** hz_owns, with the pointer's type checked. */
  #live(call: string, pointer: Deno.PointerValue): boolean {
    checkPointer(`${call}(pointer)`, pointer);
    try {
      return this.#native.hz_owns(pointer) !== 0;
    } catch (error) {
      throw notAPointer(call, pointer, error);
    }
  }
}

/** A new array for `count` addresses; a count too large for memory is OOM. */
function newAddressArray(count: number, size: number): BigUint64Array {
  try {
    return new BigUint64Array(count);
  } catch (error) {
    throw new OutOfMemoryError(
      `hakozuna: out of memory for an array of ${count} addresses`,
      size,
      { cause: error },
    );
  }
}

/**
 * The prototype every typed array inherits (%TypedArray%.prototype), which
 * tells typed array constructors (and their subclasses) from any other
 * function.
 */
const TYPED_ARRAY_PROTOTYPE = Object.getPrototypeOf(Uint8Array.prototype);

class OwnedBlock implements Block {
  readonly #native: Native;
  /** Start of the allocation: the header, then the block's memory. */
  #base: Deno.PointerObject;
  #pointer!: Deno.PointerObject;
  #size!: number;
  #buffer!: ArrayBuffer;
  #bytes!: Uint8Array<ArrayBuffer>;
  #dataView: DataView<ArrayBuffer> | undefined;
  #freed = false;

  constructor(native: Native, base: Deno.PointerObject, size: number) {
    this.#native = native;
    this.#base = base;
    new BigUint64Array(Deno.UnsafePointerView.getArrayBuffer(base, 8))[0] =
      BLOCK_TAG;
    try {
      this.#map(size);
    } catch (error) {
      native.hz_free_checked(base);
      throw new OutOfMemoryError(
        `hakozuna: cannot view ${size} bytes as an ArrayBuffer`,
        size,
        { cause: error },
      );
    }
  }

  /** Views the memory after the header as a fresh buffer of `size` bytes. */
  #map(size: number): void {
    const pointer = Deno.UnsafePointer.offset(this.#base, BLOCK_HEADER)!;
    this.#buffer = Deno.UnsafePointerView.getArrayBuffer(pointer, size);
    this.#pointer = pointer;
    this.#size = size;
    this.#bytes = new Uint8Array(this.#buffer);
    this.#dataView = undefined;
  }

  get pointer(): Deno.PointerObject {
    return this.#pointer;
  }

  get size(): number {
    return this.#size;
  }

  get bytes(): Uint8Array<ArrayBuffer> {
    return this.#bytes;
  }

  get dataView(): DataView<ArrayBuffer> {
    this.#live("dataView");
    return this.#dataView ??= new DataView(this.#buffer);
  }

  get freed(): boolean {
    return this.#freed;
  }

  view<T extends ArrayBufferView<ArrayBuffer>>(
    type: TypedArrayConstructor<T>,
  ): T {
    this.#live("view");
    if (
      typeof type !== "function" ||
      !Object.prototype.isPrototypeOf.call(
        TYPED_ARRAY_PROTOTYPE,
        type.prototype,
      )
    ) {
      throw new ArgumentError(
        `hakozuna: block.view(type) must be a typed array constructor such ` +
          `as Float64Array, got ${describe(type)}`,
      );
    }
    return new type(
      this.#buffer,
      0,
      Math.floor(this.#size / type.BYTES_PER_ELEMENT),
    );
  }

  resize(size: number): void {
    checkSize("block.resize(size)", size);
    this.#live("resize");
    this.#movable("resize");
    const base = this.#native.hz_realloc(
      this.#base,
      BigInt(size) + BigInt(BLOCK_HEADER),
    );
    if (base === null) {
      throw new OutOfMemoryError(
        `hakozuna: out of memory resizing a block to ${size} bytes`,
        size,
      );
    }
    // Detach first: views of the old buffer must not outlive the move.
    this.#buffer.transfer(0);
    this.#base = base;
    this.#map(size);
  }

  free(): void {
    if (this.#freed) return;
    this.#movable("free");
    this.#buffer.transfer(0);
    this.#freed = true;
    const status = this.#native.hz_free_checked(this.#base);
    if (status !== STATUS.ok) {
      throw new BlockError(
        `hakozuna: block.free(): the block's memory (${hex(this.#base)}) ` +
          `was already freed by another call`,
      );
    }
  }

  [Symbol.dispose](): void {
    this.free();
  }

  /** What console.log and Deno.inspect show. */
  [Symbol.for("Deno.customInspect")](): string {
    const state = this.#freed ? ", freed" : "";
    return `Block { size: ${this.#size}, pointer: ${
      hex(this.#pointer)
    }${state} }`;
  }

  #live(call: string): void {
    if (this.#freed) {
      throw new BlockError(`hakozuna: block.${call}: the block is freed`);
    }
  }

  /**
   * The memory may be freed or moved only while this block's buffer is the
   * only way JavaScript reaches it: a buffer moved away with transfer() or
   * structuredClone cannot be detached from here, so the memory is kept.
   */
  #movable(call: string): void {
    if (!this.#buffer.detached) return;
    this.#freed = call === "free";
    throw new BlockError(
      `hakozuna: block.${call}(): the block's buffer was moved away ` +
        `(transfer(), structuredClone or postMessage), and the moved buffer ` +
        `cannot be detached, so the memory is kept allocated and not ` +
        `${call === "free" ? "freed" : "moved"}`,
    );
  }
}
