/** stats(): shape, and counters that follow allocations in one and many threads. */
import assert from "node:assert/strict";
import { open, type Stats } from "../../mod.ts";
import { COUNTERS } from "../../ffi/stats.ts";
import type { Reply, Request } from "./fixtures/worker.ts";
import { expectExit, fixture, runDeno } from "./helpers.ts";

Deno.test("stats is a frozen snapshot of numbers plus the version", () => {
  using hz = open();
  const s = hz.stats();
  assert.ok(Object.isFrozen(s));
  assert.equal(s.version, hz.version);
  assert.equal(s.statsVersion, 1);
  for (const name of COUNTERS) {
    assert.ok(Number.isSafeInteger(s[name]) && s[name] >= 0, name);
  }
  assert.deepEqual(
    Object.keys(s).sort(),
    ["version", "statsVersion", ...COUNTERS].sort(),
  );
  assert.ok(s.bytesMappedPeak >= s.bytesMapped);
  assert.ok(s.heapCount >= s.threadCount);
  assert.ok(s.allocCount >= s.freeCount);
});

Deno.test("stats count this thread's allocations exactly", () => {
  using hz = open();
  const before = hz.stats();
  const blocks = Array.from({ length: 100 }, (_, i) => hz.malloc(16 + i)!);
  const used = blocks.reduce((sum, p) => sum + hz.usableSize(p), 0);
  const during = hz.stats();
  assert.equal(during.allocCount - before.allocCount, 100);
  assert.equal(during.freeCount, before.freeCount);
  assert.equal(during.bytesInUse - before.bytesInUse, used);
  assert.ok(during.bytesMapped > 0);
  blocks.forEach((p) => hz.free(p));
  const after = hz.stats();
  assert.equal(after.freeCount - before.freeCount, 100);
  assert.equal(after.bytesInUse, before.bytesInUse);
  assert.notEqual(before, after, "each call is a new snapshot");
});

Deno.test("a large block is counted while it lives", () => {
  using hz = open();
  // Empties the cache of freed large mappings, which earlier tests of this
  // process may have filled: the block below must be a fresh mapping.
  hz.collect();
  const before = hz.stats();
  const p = hz.malloc(64 << 20)!;
  const during = hz.stats();
  assert.equal(during.largeCount - before.largeCount, 1);
  assert.ok(during.largeBytes - before.largeBytes >= 64 << 20);
  assert.ok(during.bytesMapped - before.bytesMapped >= 64 << 20);
  assert.ok(during.bytesMappedPeak >= during.bytesMapped);
  hz.free(p);
  const after = hz.stats();
  assert.equal(after.largeCount, before.largeCount);
  assert.equal(after.largeBytes, before.largeBytes);
});

/** A Worker of fixtures/worker.ts with a promise per request. */
class AllocWorker {
  readonly #worker = new Worker(
    new URL("./fixtures/worker.ts", import.meta.url),
    { type: "module" },
  );
  request(request: Request): Promise<Reply> {
    return new Promise((resolve, reject) => {
      this.#worker.onmessage = ({ data }: MessageEvent<Reply>) =>
        data.error ? reject(new Error(data.error)) : resolve(data);
      this.#worker.onerror = (event) => {
        event.preventDefault();
        reject(new Error(event.message));
      };
      this.#worker.postMessage(request);
    });
  }
  [Symbol.dispose]() {
    this.#worker.terminate();
  }
}

const pointers = (addresses: bigint[]) =>
  addresses.map((address) => Deno.UnsafePointer.create(address));

Deno.test("stats merge threads; cross-thread frees count as remote", async () => {
  using hz = open();
  using worker = new AllocWorker();
  const delta = (a: Stats, b: Stats, name: (typeof COUNTERS)[number]) =>
    b[name] - a[name];

  const start = hz.stats();
  const mine = Array.from({ length: 100 }, () => hz.malloc(64)!);

  // The worker allocates 150 and frees 50 of them itself.
  const theirs = (await worker.request({ op: "alloc", count: 150, size: 128 }))
    .addresses;
  const local = await worker.request({
    op: "free",
    addresses: theirs.slice(100),
  });
  assert.equal(delta(start, local.stats, "allocCount"), 250);
  assert.equal(delta(start, local.stats, "freeCount"), 50);
  assert.equal(delta(start, local.stats, "remoteFreeCount"), 0);
  assert.ok(local.stats.threadCount >= 2, "two live threads hold heaps");
  assert.ok(local.stats.heapCount >= local.stats.threadCount);
  assert.deepEqual(hz.stats(), local.stats, "same counters seen from main");

  // The worker frees main's blocks: 100 remote frees.
  const mainAddresses = mine.map((p) => Deno.UnsafePointer.value(p));
  const remote = await worker.request({ op: "free", addresses: mainAddresses });
  assert.equal(delta(local.stats, remote.stats, "freeCount"), 100);
  assert.equal(delta(local.stats, remote.stats, "remoteFreeCount"), 100);
  mine.forEach((p) => assert.equal(hz.owns(p), false));

  // Main frees the worker's other 100 while the worker lives: remote too.
  const rest = pointers(theirs.slice(0, 100));
  rest.forEach((p) => assert.ok(hz.owns(p), "main sees the worker's blocks"));
  rest.forEach((p) => hz.free(p));
  const back = hz.stats();
  assert.equal(delta(remote.stats, back, "freeCount"), 100);
  assert.equal(delta(remote.stats, back, "remoteFreeCount"), 100);

  // Once both owners collected, nothing of this test is in use.
  hz.collect();
  const end = (await worker.request({ op: "collect" })).stats;
  assert.equal(delta(start, end, "allocCount"), 250);
  assert.equal(delta(start, end, "freeCount"), 250);
  assert.equal(end.bytesInUse, start.bytesInUse);
  assert.ok(end.flushCount >= start.flushCount);
  assert.ok(end.collectCount >= start.collectCount);
});

Deno.test("workers allocating at once are all counted", async () => {
  using hz = open();
  const workers = Array.from({ length: 4 }, () => new AllocWorker());
  try {
    const own = hz.malloc(8); // main holds a heap too
    // Blocks earlier tests freed to a heap not their thread's may still wait
    // in its inbox, and a worker about to take a fresh span borrows them:
    // its frees of those would be remote. Collected first, none waits.
    hz.collect();
    const start = hz.stats();
    const replies = await Promise.all(
      workers.map((w, i) =>
        w.request({ op: "alloc", count: 500, size: 16 * (i + 1) })
      ),
    );
    assert.equal(hz.stats().allocCount - start.allocCount, 2000);
    assert.ok(hz.stats().threadCount >= 5);
    await Promise.all(
      workers.map((w, i) =>
        w.request({ op: "free", addresses: replies[i].addresses })
      ),
    );
    const end = hz.stats();
    assert.equal(end.freeCount - start.freeCount, 2000);
    assert.equal(end.remoteFreeCount, start.remoteFreeCount, "all local");
    hz.free(own);
  } finally {
    workers.forEach((w) => w[Symbol.dispose]());
  }
});

Deno.test("blocks of Workers that ended can be freed; the library stays", async () => {
  const output = await runDeno(
    ["--allow-ffi", "--allow-env", "--allow-read"],
    fixture("worker_exit.ts"),
  );
  const seen = JSON.parse(expectExit(output, 0).stdout);
  assert.deepEqual(seen, { rounds: 3, owned: 300, freed: 300 });
});
