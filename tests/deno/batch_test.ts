/**
 * The batch path (mallocMany, freeMany) and the promise of one FFI call per
 * operation, counted on a handle whose symbols are wrapped.
 */
import assert from "node:assert/strict";
import {
  ArgumentError,
  open,
  OutOfMemoryError,
  PointerError,
  SizeError,
} from "../../mod.ts";
import { createHandle } from "../../ffi/handle.ts";
import { SYMBOLS } from "../../ffi/symbols.ts";

const pointerOf = (address: bigint) => Deno.UnsafePointer.create(address)!;

Deno.test("mallocMany gives distinct live blocks of every size range", () => {
  using hz = open();
  for (const size of [0, 16, 48, 2048, 100_000, 300_000]) {
    const count = size > 256 * 1024 ? 4 : 500;
    const addresses = hz.mallocMany(size, count);
    assert.ok(addresses instanceof BigUint64Array);
    assert.equal(addresses.length, count, `${count} blocks of ${size}`);
    assert.equal(new Set(addresses).size, count, "all distinct");
    for (const address of addresses) {
      assert.equal(address % 16n, 0n);
      const pointer = pointerOf(address);
      assert.ok(hz.owns(pointer));
      assert.ok(hz.usableSize(pointer) >= size);
    }
    hz.freeMany(addresses);
    assert.ok(addresses.every((address) => !hz.owns(pointerOf(address))));
  }
});

Deno.test("mallocMany fills a given array, or a subarray of it", () => {
  using hz = open();
  const batch = new BigUint64Array(64);
  assert.equal(hz.mallocMany(32, batch), batch, "filled in place");
  assert.ok(batch.every((address) => address !== 0n));
  hz.freeMany(batch);
  const whole = new BigUint64Array(16);
  const tail = whole.subarray(8);
  hz.mallocMany(24, tail);
  assert.ok(whole.subarray(0, 8).every((address) => address === 0n));
  assert.ok(tail.every((address) => hz.owns(pointerOf(address))));
  hz.freeMany(whole); // zeros are skipped
  assert.ok(tail.every((address) => !hz.owns(pointerOf(address))));
  assert.equal(hz.mallocMany(8, 0).length, 0);
  hz.freeMany(new BigUint64Array(0));
});

Deno.test("mallocMany returns what it got when memory runs out", () => {
  using hz = open();
  assert.equal(hz.mallocMany(2 ** 52, 3).length, 0);
  const batch = new BigUint64Array(3);
  assert.equal(hz.mallocMany(2 ** 52, batch).length, 0);
  // A count no array can hold: the array itself cannot be made.
  assert.throws(
    () => hz.mallocMany(8, Number.MAX_SAFE_INTEGER),
    (error) =>
      error instanceof OutOfMemoryError &&
      /^hakozuna: out of memory for an array of \d+ addresses$/.test(
        error.message,
      ),
  );
});

Deno.test("freeMany stops at the first bad address, naming its index", () => {
  using hz = open();
  const addresses = hz.mallocMany(64, 10);
  const kept = addresses[6];
  addresses[6] = addresses[2]; // freed earlier in the same call
  assert.throws(
    () => hz.freeMany(addresses),
    (error) =>
      error instanceof PointerError && error.index === 6 &&
      error.reason === "foreign" &&
      error.message.startsWith("hakozuna: freeMany(0x"),
  );
  for (let i = 0; i < 10; i++) {
    const live = hz.owns(pointerOf(addresses[i]));
    assert.equal(live, i > 6, `entry ${i} ${live ? "live" : "freed"}`);
  }
  hz.freeMany(addresses.subarray(7));
  hz.free(pointerOf(kept));
  const foreign = new BigUint64Array([
    Deno.UnsafePointer.value(Deno.UnsafePointer.of(new Uint8Array(16))),
  ]);
  assert.throws(
    () => hz.freeMany(foreign),
    (error) => error instanceof PointerError && error.index === 0,
  );
});

Deno.test("batch arguments are checked", () => {
  using hz = open();
  const notArrays = [[1n], new BigInt64Array(1), new Float64Array(1), null, 1n];
  for (const value of notArrays) {
    assert.throws(
      () => hz.freeMany(value as unknown as BigUint64Array),
      (error) =>
        error instanceof ArgumentError &&
        error.message.startsWith("hakozuna: freeMany(addresses) must be"),
    );
  }
  assert.throws(() => hz.mallocMany(-1, 4), SizeError);
  assert.throws(() => hz.mallocMany(8, 1.5), SizeError);
  assert.throws(() => hz.mallocMany(8, -1), SizeError);
  assert.throws(
    () => hz.mallocMany("8" as unknown as number, 4),
    ArgumentError,
  );
  assert.throws(
    () => hz.mallocMany(8, "4" as unknown as number),
    ArgumentError,
  );
  assert.throws(
    () => hz.mallocMany(8, [0n] as unknown as BigUint64Array),
    (error) =>
      error instanceof ArgumentError &&
      error.message ===
        "hakozuna: mallocMany(into) must be a count or a BigUint64Array, " +
          "got an array",
  );
});

/** A handle whose every native call is counted by name. */
function countingHandle() {
  using hz = open();
  const library = Deno.dlopen(hz.path, SYMBOLS);
  const calls: Record<string, number> = {};
  const symbols = Object.fromEntries(
    Object.entries(library.symbols).map(([name, fn]) => [
      name,
      (...args: unknown[]) => {
        calls[name] = (calls[name] ?? 0) + 1;
        return (fn as (...args: unknown[]) => unknown)(...args);
      },
    ]),
  ) as unknown as typeof library.symbols;
  const handle = createHandle({
    path: hz.path,
    version: hz.version,
    policy: hz.policy,
    symbols,
  });
  const take = () => {
    const taken = { ...calls };
    for (const name in calls) delete calls[name];
    return taken;
  };
  return { handle, take };
}

Deno.test("one FFI call per operation: malloc, free, mallocMany, freeMany", () => {
  const { handle, take } = countingHandle();
  const p = handle.malloc(64);
  assert.deepEqual(take(), { hz_malloc: 1 });
  handle.free(p);
  assert.deepEqual(take(), { hz_free_checked: 1 }, "no hz_owns before it");
  const batch = handle.mallocMany(32, 1000);
  assert.deepEqual(take(), { hz_malloc_many: 1 });
  handle.freeMany(batch);
  assert.deepEqual(take(), { hz_free_many: 1 });
  const q = handle.calloc(2, 8);
  handle.usableSize(q);
  assert.deepEqual(take(), { hz_calloc: 1, hz_usable_size_checked: 1 });
  handle.free(q);
  take();
  handle.close();
});
