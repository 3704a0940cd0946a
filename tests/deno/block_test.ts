/**
 * Blocks are safe by construction: no free of their pointer through any
 * handle is accepted, their views (all of one buffer) are detached when they
 * are freed or moved, and they grow with resize.
 */
import assert from "node:assert/strict";
import {
  ArgumentError,
  BlockError,
  open,
  OutOfMemoryError,
  PointerError,
  SizeError,
} from "../../mod.ts";

const address = (pointer: Deno.PointerValue) =>
  Deno.UnsafePointer.value(pointer);

const isBlockRefusal = (call: string) => (error: unknown) =>
  error instanceof PointerError && error.reason === "block" &&
  error.message.startsWith(`hakozuna: ${call}(0x`) &&
  error.message.includes("only block.free() frees it");

Deno.test("freeing a Block's pointer is refused by every handle; the block lives on", () => {
  using hz = open();
  using other = open();
  const b = hz.alloc(64);
  b.bytes.fill(0x11);
  for (const handle of [hz, other]) {
    assert.throws(() => handle.free(b.pointer), isBlockRefusal("free"));
    assert.throws(
      () => handle.realloc(b.pointer, 128),
      isBlockRefusal("realloc"),
    );
    assert.throws(
      () => handle.usableSize(b.pointer),
      isBlockRefusal("usableSize"),
    );
    assert.throws(
      () => handle.freeMany(new BigUint64Array([address(b.pointer)])),
      (error) =>
        isBlockRefusal("freeMany")(error) &&
        (error as PointerError).index === 0,
    );
    assert.equal(handle.owns(b.pointer), false, "not a pointer free takes");
  }
  // Free a block's address behind its back: the memory was never freed, so a new block
  // cannot be placed on it, and writes through b stay in b.
  const c = hz.alloc(64);
  assert.notEqual(address(c.pointer), address(b.pointer));
  c.bytes.fill(1);
  b.bytes.fill(0xab);
  assert.ok(c.bytes.every((byte) => byte === 1), "c untouched by b");
  assert.equal(b.freed, false);
  c.free();
  b.free();
});

Deno.test("a Block given where a pointer goes is refused as a Block", () => {
  using hz = open();
  using b = hz.alloc(8);
  const asPointer = b as unknown as Deno.PointerObject;
  for (const call of [() => hz.free(asPointer), () => hz.owns(asPointer)]) {
    assert.throws(
      call,
      (error) =>
        error instanceof PointerError && error.reason === "block" &&
        /given a Block; only block.free\(\) frees it/.test(error.message),
    );
  }
  assert.equal(b.freed, false);
});

Deno.test("the same pointer rebuilt from its address is refused too", () => {
  using hz = open();
  using b = hz.alloc(32);
  const forged = Deno.UnsafePointer.create(address(b.pointer))!;
  assert.throws(() => hz.free(forged), isBlockRefusal("free"));
  assert.equal(b.bytes.length, 32);
});

Deno.test("typed views share the block's memory and are 16-byte aligned", () => {
  using hz = open();
  using block = hz.alloc(100);
  assert.equal(address(block.pointer) % 16n, 0n);
  const f64 = block.view(Float64Array);
  const i32 = block.view(Int32Array);
  const u64 = block.view(BigUint64Array);
  assert.equal(f64.length, 12);
  assert.equal(i32.length, 25);
  assert.equal(u64.length, 12);
  assert.equal(block.dataView.byteLength, 100);
  assert.equal(block.dataView, block.dataView, "one DataView per mapping");
  f64[1] = 1.5;
  assert.equal(block.dataView.getFloat64(8, true), 1.5);
  block.dataView.setUint32(16, 0xdeadbeef, true);
  assert.equal(i32[4], 0xdeadbeef | 0);
  u64[3] = 2n ** 63n;
  assert.equal(block.bytes[31], 0x80);
  assert.equal(block.view(Uint8Array).length, 100);
  class Samples extends Float32Array {}
  assert.ok(block.view(Samples) instanceof Samples);
});

Deno.test("freeing a block detaches every view of it", () => {
  using hz = open();
  const block = hz.alloc(64);
  const views = [
    block.bytes,
    block.view(Float64Array),
    block.view(Int16Array),
    block.dataView,
    new Uint32Array(block.bytes.buffer), // made by the user from the buffer
  ];
  block.free();
  for (const view of views) {
    assert.ok(view.buffer.detached);
    if (view instanceof DataView) {
      assert.throws(() => view.getUint8(0), TypeError); // Deno's own
    } else {
      assert.equal(view.length, 0);
      assert.equal(view[0], undefined);
    }
  }
  assert.equal(block.freed, true);
  assert.throws(() => block.view(Float64Array), BlockError);
  assert.throws(() => block.dataView, BlockError);
  assert.throws(() => block.resize(8), BlockError);
  block.free(); // again: nothing
  assert.match(
    Deno.inspect(block),
    /^Block \{ size: 64, pointer: 0x[0-9a-f]+, freed \}$/,
  );
});

Deno.test("resize keeps contents, moves the pointer if needed, detaches old views", () => {
  using hz = open();
  using block = hz.alloc(8);
  block.bytes.set([1, 2, 3, 4, 5, 6, 7, 8]);
  let old = block.view(Float64Array);
  for (const size of [64, 4096, 300_000, 5 << 20, 16, 8]) {
    block.resize(size);
    assert.equal(block.size, size);
    assert.equal(block.bytes.length, size);
    assert.equal(old.length, 0, "the view taken before is detached");
    assert.ok(old.buffer.detached);
    assert.deepEqual([...block.bytes.subarray(0, 8)], [1, 2, 3, 4, 5, 6, 7, 8]);
    block.bytes.fill(9, 8);
    // The pointer is always the block's memory: native reads agree.
    const native = new Deno.UnsafePointerView(block.pointer);
    assert.equal(native.getUint8(7), 8);
    old = block.view(Float64Array);
  }
});

Deno.test("a resize with no memory throws OutOfMemoryError and keeps the block", () => {
  using hz = open();
  using block = hz.alloc(32);
  block.bytes.fill(7);
  const view = block.view(Uint32Array);
  const pointer = address(block.pointer);
  assert.throws(() => block.resize(2 ** 52), OutOfMemoryError);
  assert.equal(block.size, 32);
  assert.equal(address(block.pointer), pointer);
  assert.equal(view.length, 8, "views still attached");
  assert.ok(block.bytes.every((byte) => byte === 7));
  assert.throws(() => block.resize(-1), SizeError);
  assert.throws(() => block.resize("8" as unknown as number), ArgumentError);
});

Deno.test("view refuses what is not a typed array constructor", () => {
  using hz = open();
  using block = hz.alloc(16);
  for (const type of [ArrayBuffer, DataView, Array, Object, null, 8]) {
    assert.throws(
      () => block.view(type as unknown as Float64ArrayConstructor),
      (error) =>
        error instanceof ArgumentError &&
        error.message.startsWith("hakozuna: block.view(type) must be"),
    );
  }
});

Deno.test("a block whose buffer was moved away is never freed or moved", () => {
  using hz = open();
  const block = hz.alloc(64);
  block.bytes.fill(5);
  const moved = block.bytes.buffer.transfer(); // aliases the block's memory
  const inUse = hz.stats().bytesInUse;
  assert.throws(() => block.resize(128), BlockError);
  assert.throws(
    () => block.free(),
    (error) => error instanceof BlockError && /moved away/.test(error.message),
  );
  assert.equal(block.freed, true);
  assert.equal(hz.stats().bytesInUse, inUse, "the memory is kept");
  assert.ok(new Uint8Array(moved).every((byte) => byte === 5));
  block.free(); // nothing more
});

Deno.test("a block outlives the handle that allocated it, and frees after", () => {
  const hz = open();
  const before = hz.stats().bytesInUse;
  const block = hz.alloc(256);
  hz.close();
  block.bytes.fill(3);
  block.resize(512);
  block.free();
  using other = open();
  assert.equal(other.stats().bytesInUse, before);
});

Deno.test("block memory freed behind the block's back: free says so, no abort", () => {
  using hz = open();
  const block = hz.alloc(48);
  // Deliberate misuse: the start of the allocation, 16 bytes before.
  const base = Deno.UnsafePointer.offset(block.pointer, -16)!;
  hz.free(base);
  assert.throws(() => block.free(), BlockError);
  assert.equal(block.freed, true);
});

Deno.test("a Worker freeing a Block's address is refused too", async () => {
  using hz = open();
  using block = hz.alloc(40);
  block.bytes.fill(6);
  const worker = new Worker(
    new URL("./fixtures/worker.ts", import.meta.url),
    { type: "module" },
  );
  try {
    const reply = await new Promise<{ error?: string }>((resolve, reject) => {
      worker.onmessage = ({ data }) => resolve(data);
      worker.onerror = (event) => {
        event.preventDefault();
        reject(new Error(event.message));
      };
      worker.postMessage({ op: "free", addresses: [address(block.pointer)] });
    });
    // Its own module instance, so it cannot tell a Block: "not a live block".
    assert.match(reply.error ?? "", /^PointerError: hakozuna: free\(0x/);
  } finally {
    worker.terminate();
  }
  assert.ok(block.bytes.every((byte) => byte === 6));
  block.resize(80); // still the block's own memory, still live
  assert.equal(block.bytes[39], 6);
});
