/**
 * `struct hz_stats` (native/include/hakozuna.h) decoded into a frozen object.
 *
 * @module
 */

/**
 * A snapshot of the allocator's counters, merged from every thread, as
 * returned by `stats()`. Counts are cumulative since the library was loaded;
 * fields marked "now" are current levels. Values are exact up to 2**53.
 *
 * @example
 * ```ts
 * import { open, type Stats } from "@hakozuna/hakozuna";
 * using hz = open();
 * const s: Stats = hz.stats();
 * console.log(`${s.bytesInUse} bytes in ${s.allocCount - s.freeCount} blocks`);
 * ```
 */
export interface Stats {
  /** Version of the library that produced the snapshot, e.g. `"0.1.0"`. */
  readonly version: string;
  /** `HZ_STATS_VERSION` of the library that filled the struct. */
  readonly statsVersion: number;
  /** Blocks handed out, all sizes. */
  readonly allocCount: number;
  /** Blocks given back, all sizes, local and remote. */
  readonly freeCount: number;
  /** Frees of blocks owned by another thread's heap. */
  readonly remoteFreeCount: number;
  /** Usable bytes of live blocks (now). */
  readonly bytesInUse: number;
  /** Bytes mapped from the OS: segments, large blocks, metadata (now). */
  readonly bytesMapped: number;
  /** Highest `bytesMapped` seen. */
  readonly bytesMappedPeak: number;
  /** Bytes handed back to the OS with madvise or munmap. */
  readonly bytesPurged: number;
  /** Live segments (now). */
  readonly segmentCount: number;
  /** Live large blocks, mapped one each (now). */
  readonly largeCount: number;
  /** Bytes mapped by live large blocks (now). */
  readonly largeBytes: number;
  /** Thread heaps ever created; exited threads' heaps are reused. */
  readonly heapCount: number;
  /** Heaps owned by a live thread (now). */
  readonly threadCount: number;
  /** Remote-free batches handed to owners. */
  readonly flushCount: number;
  /** Remote-free batches taken back by owners. */
  readonly collectCount: number;
  /** Malloc slow paths: a size class's current page ran dry. */
  readonly refillCount: number;
}

/**
 * The struct's uint64_t counters in declaration order; they follow the two
 * uint32_t fields `version` and `size`, so counter i is at offset 8 + 8 * i.
 */
export const COUNTERS = [
  "allocCount",
  "freeCount",
  "remoteFreeCount",
  "bytesInUse",
  "bytesMapped",
  "bytesMappedPeak",
  "bytesPurged",
  "segmentCount",
  "largeCount",
  "largeBytes",
  "heapCount",
  "threadCount",
  "flushCount",
  "collectCount",
  "refillCount",
] as const satisfies readonly (keyof Stats)[];

/** sizeof(struct hz_stats) for HZ_STATS_VERSION 1, what we ask the library to fill. */
export const STATS_SIZE = 8 + 8 * COUNTERS.length;

/**
 * Decodes what `hz_stats` wrote into `buffer`. A library that filled fewer
 * bytes than {@linkcode STATS_SIZE} predates a field this package reports, so
 * it is refused rather than reported as zeros.
 */
export function decodeStats(
  buffer: Uint8Array<ArrayBuffer>,
  written: number,
  version: string,
): Stats {
  if (written < STATS_SIZE) {
    throw new Error(
      `hakozuna: hz_stats filled ${written} of ${STATS_SIZE} bytes; ` +
        `library ${version} is older than this package's struct hz_stats`,
    );
  }
  const view = new DataView(buffer.buffer, buffer.byteOffset, written);
  const stats: Record<string, number | string> = {
    version,
    statsVersion: view.getUint32(0, true),
  };
  COUNTERS.forEach((name, i) => {
    stats[name] = Number(view.getBigUint64(8 + 8 * i, true));
  });
  return Object.freeze(stats) as unknown as Stats;
}
