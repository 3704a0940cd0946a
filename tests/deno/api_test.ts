/** Every method of a handle, on good input and on each kind of bad input. */
import assert from "node:assert/strict";
import { ClosedError, open, OutOfMemoryError } from "../../mod.ts";

const view = (pointer: Deno.PointerObject, length: number) =>
  new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(pointer, length));

const address = (pointer: Deno.PointerValue) =>
  Deno.UnsafePointer.value(pointer);

/** Sizes that do not fit any address space: the allocator must say null. */
const IMPOSSIBLE = [2 ** 52, Number.MAX_SAFE_INTEGER];

Deno.test("malloc gives owned, writable blocks of at least the size", () => {
  using hz = open();
  for (const size of [1, 8, 16, 24, 100, 2048, 4096, 65536, 1 << 20, 8 << 20]) {
    const p = hz.malloc(size);
    assert.ok(p !== null, `malloc(${size}) returned null`);
    assert.ok(hz.owns(p));
    assert.ok(hz.usableSize(p) >= size, `usableSize < ${size}`);
    const bytes = view(p, size);
    bytes.fill(0x5a);
    assert.equal(bytes[0], 0x5a);
    assert.equal(bytes[size - 1], 0x5a);
    hz.free(p);
  }
});

Deno.test("malloc(0) gives a unique freeable block, as glibc does", () => {
  using hz = open();
  const a = hz.malloc(0);
  const b = hz.malloc(0);
  assert.ok(a !== null && b !== null);
  assert.notEqual(address(a), address(b));
  assert.ok(hz.owns(a) && hz.owns(b));
  hz.free(a);
  hz.free(b);
});

Deno.test("live blocks do not overlap", () => {
  using hz = open();
  const blocks = Array.from({ length: 200 }, (_, i) => {
    const p = hz.malloc(16 + i * 8)!;
    view(p, 16 + i * 8).fill(i);
    return p;
  });
  blocks.forEach((p, i) => {
    assert.ok(view(p, 16 + i * 8).every((byte) => byte === i), `block ${i}`);
    hz.free(p);
  });
});

Deno.test("calloc zeroes, also memory that was dirty before", () => {
  using hz = open();
  for (let round = 0; round < 3; round++) {
    const dirty = Array.from({ length: 64 }, () => {
      const p = hz.malloc(48)!;
      view(p, 48).fill(0xff);
      return p;
    });
    dirty.forEach((p) => hz.free(p));
    for (const [count, size] of [[6, 8], [1, 100000], [3, 1 << 20]]) {
      const p = hz.calloc(count, size);
      assert.ok(p !== null);
      assert.ok(hz.usableSize(p) >= count * size);
      assert.ok(view(p, count * size).every((byte) => byte === 0));
      hz.free(p);
    }
  }
});

Deno.test("calloc returns null when count * size overflows 64 bits", () => {
  using hz = open();
  assert.equal(hz.calloc(2 ** 32, 2 ** 32), null);
  assert.equal(hz.calloc(2 ** 40, 2 ** 40), null);
});

Deno.test("realloc keeps contents when growing and shrinking", () => {
  using hz = open();
  let p = hz.realloc(null, 32);
  assert.ok(p !== null && hz.owns(p), "realloc(null, n) allocates");
  view(p, 32).forEach((_, i, bytes) => bytes[i] = i);
  for (const size of [64, 4096, 3 << 20, 100, 20]) {
    const q = hz.realloc(p, size);
    assert.ok(q !== null, `realloc to ${size}`);
    assert.ok(hz.usableSize(q) >= size);
    const kept = view(q, Math.min(size, 20));
    kept.forEach((byte, i) => assert.equal(byte, i, `byte ${i} at ${size}`));
    if (address(q) !== address(p)) assert.equal(hz.owns(p), false);
    p = q;
  }
  hz.free(p);
});

Deno.test("a failed realloc returns null and keeps the old block", () => {
  using hz = open();
  const p = hz.malloc(64)!;
  view(p, 64).fill(0x33);
  for (const size of IMPOSSIBLE) assert.equal(hz.realloc(p, size), null);
  assert.ok(hz.owns(p));
  assert.ok(view(p, 64).every((byte) => byte === 0x33));
  hz.free(p);
});

Deno.test("alignedAlloc aligns to every power of two", () => {
  using hz = open();
  for (let shift = 0; shift <= 22; shift++) {
    const alignment = 2 ** shift;
    for (const size of [1, 100, alignment + 1]) {
      const p = hz.alignedAlloc(alignment, size);
      assert.ok(p !== null, `alignedAlloc(${alignment}, ${size})`);
      assert.equal(address(p) % BigInt(alignment), 0n, `${alignment}`);
      assert.ok(hz.usableSize(p) >= size);
      view(p, size).fill(1);
      hz.free(p);
    }
  }
});

Deno.test("alignedAlloc refuses alignments that are not powers of two", () => {
  using hz = open();
  for (const alignment of [0, 3, 24, 1000, 2 ** 40 + 1]) {
    assert.throws(() => hz.alignedAlloc(alignment, 8), RangeError);
  }
  assert.throws(() => hz.alignedAlloc(-8, 8), RangeError);
  assert.throws(() => hz.alignedAlloc(8.5, 8), RangeError);
});

Deno.test("out of memory is null from malloc, calloc and alignedAlloc", () => {
  using hz = open();
  for (const size of IMPOSSIBLE) {
    assert.equal(hz.malloc(size), null, `malloc(${size})`);
    assert.equal(hz.calloc(1, size), null, `calloc(1, ${size})`);
    assert.equal(hz.alignedAlloc(64, size), null, `alignedAlloc(64, ${size})`);
  }
  // The allocator still works afterwards.
  hz.free(hz.malloc(8));
});

Deno.test("null: free is a no-op, usableSize 0, owns false", () => {
  using hz = open();
  hz.free(null);
  assert.equal(hz.usableSize(null), 0);
  assert.equal(hz.owns(null), false);
});

Deno.test("pointers the library does not own are TypeErrors, never aborts", async (t) => {
  using hz = open();
  const block = hz.malloc(64)!;
  const foreign: [string, Deno.PointerObject][] = [
    ["a Deno buffer", Deno.UnsafePointer.of(new Uint8Array(64))!],
    ["inside a block", Deno.UnsafePointer.offset(block, 16)!],
    ["a low address", Deno.UnsafePointer.create(0x1000n)!],
    ["an odd address", Deno.UnsafePointer.create(0x7f0000000001n)!],
    ["the top of user space", Deno.UnsafePointer.create(0x7ffffffff000n)!],
    ["a kernel address", Deno.UnsafePointer.create(0xffff800000000000n)!],
  ];
  for (const [name, pointer] of foreign) {
    await t.step(name, () => {
      assert.equal(hz.owns(pointer), false);
      assert.throws(() => hz.free(pointer), TypeError);
      assert.throws(() => hz.realloc(pointer, 8), TypeError);
      assert.throws(() => hz.usableSize(pointer), TypeError);
    });
  }
  hz.free(block);
  await t.step("a freed block (double free)", () => {
    assert.equal(hz.owns(block), false);
    assert.throws(() => hz.free(block), /not a live block/);
    assert.throws(() => hz.realloc(block, 8), TypeError);
    assert.throws(() => hz.usableSize(block), TypeError);
  });
});

Deno.test("bad sizes are RangeErrors, non-numbers TypeErrors", async (t) => {
  using hz = open();
  const p = hz.malloc(8)!;
  const calls: [string, (size: number) => unknown][] = [
    ["malloc", (n) => hz.malloc(n)],
    ["calloc count", (n) => hz.calloc(n, 1)],
    ["calloc size", (n) => hz.calloc(1, n)],
    ["realloc", (n) => hz.realloc(p, n)],
    ["alignedAlloc size", (n) => hz.alignedAlloc(16, n)],
    ["alloc", (n) => hz.alloc(n)],
  ];
  const ranges = [-1, -0.5, 1.5, NaN, Infinity, -Infinity, 2 ** 53, 1e300];
  const types = ["64", 64n, undefined, null, {}] as unknown as number[];
  for (const [name, call] of calls) {
    await t.step(name, () => {
      for (const size of ranges) assert.throws(() => call(size), RangeError);
      for (const size of types) assert.throws(() => call(size), TypeError);
    });
  }
  assert.ok(hz.owns(p), "no failed call touched the block");
  hz.free(p);
});

Deno.test("bad pointer types are TypeErrors", () => {
  using hz = open();
  const bad = [0, 1n, "0x1000", undefined, {}, [] as unknown];
  for (const pointer of bad as Deno.PointerValue[]) {
    assert.throws(() => hz.free(pointer), TypeError);
    assert.throws(() => hz.realloc(pointer, 8), TypeError);
    assert.throws(() => hz.usableSize(pointer), TypeError);
    assert.throws(() => hz.owns(pointer), TypeError);
  }
});

Deno.test("alloc gives a Uint8Array over the block, detached when freed", () => {
  using hz = open();
  const before = hz.stats().bytesInUse;
  const block = hz.alloc(100);
  assert.equal(block.size, 100);
  assert.equal(block.bytes.length, 100);
  assert.ok(hz.stats().bytesInUse > before);
  block.bytes.fill(0x42);
  assert.ok(view(block.pointer, 100).every((byte) => byte === 0x42));
  assert.equal(block.freed, false);
  block.free();
  assert.equal(block.freed, true);
  assert.equal(hz.stats().bytesInUse, before);
  assert.equal(block.bytes.length, 0, "view detached");
  assert.ok(block.bytes.buffer.detached);
  block.free(); // a second free does nothing
  block[Symbol.dispose]();
});

Deno.test("alloc is freed at the end of a using scope", () => {
  using hz = open();
  const before = hz.stats().bytesInUse;
  let bytes: Uint8Array<ArrayBuffer>;
  {
    using block = hz.alloc(0);
    bytes = block.bytes;
    assert.equal(block.bytes.length, 0);
    assert.ok(hz.stats().bytesInUse > before);
  }
  assert.ok(bytes.buffer.detached);
  assert.equal(hz.stats().bytesInUse, before);
});

Deno.test("alloc throws OutOfMemoryError when out of memory", () => {
  using hz = open();
  assert.throws(
    () => hz.alloc(2 ** 52),
    (error) =>
      error instanceof OutOfMemoryError && error.size === 2 ** 52 &&
      /^hakozuna: out of memory allocating \d+ bytes$/.test(error.message),
  );
});

Deno.test("collect returns the bytes given back as a number", () => {
  using hz = open();
  const blocks = Array.from({ length: 1000 }, () => hz.malloc(256));
  blocks.forEach((p) => hz.free(p));
  const returned = hz.collect();
  assert.ok(Number.isSafeInteger(returned) && returned >= 0);
});

Deno.test("a closed handle throws on every call; others keep working", () => {
  const hz = open();
  const other = open();
  const p = hz.malloc(16);
  hz.close();
  assert.equal(hz.closed, true);
  const calls = [
    () => hz.malloc(8),
    () => hz.calloc(1, 8),
    () => hz.realloc(null, 8),
    () => hz.alignedAlloc(8, 8),
    () => hz.free(null),
    () => hz.usableSize(null),
    () => hz.owns(null),
    () => hz.alloc(8),
    () => hz.mallocMany(8, 4),
    () => hz.freeMany(new BigUint64Array(1)),
    () => hz.stats(),
    () => hz.collect(),
  ];
  for (const call of calls) {
    assert.throws(
      call,
      (error) =>
        error instanceof ClosedError && /handle is closed/.test(error.message),
    );
  }
  hz.close(); // closing twice is fine
  assert.equal(hz.policy, other.policy, "facts stay readable");
  assert.ok(other.owns(p), "the library is still loaded");
  other.free(p);
  other.close();
});

Deno.test("using disposes the handle", () => {
  let escaped;
  {
    using hz = open();
    escaped = hz;
    assert.equal(hz.closed, false);
  }
  assert.equal(escaped.closed, true);
  assert.throws(() => escaped.malloc(1), /closed/);
});

Deno.test("open checks its options before loading anything", () => {
  assert.throws(() => open({ policy: "fast" as "scale" }), TypeError);
  assert.throws(() => open({ policy: "" as "scale" }), /unknown policy/);
  assert.throws(() => open({ path: "" }), TypeError);
  assert.throws(() => open({ path: 42 as unknown as string }), TypeError);
  assert.throws(() => open(null as unknown as object), TypeError);
});
