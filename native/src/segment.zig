//! Segment box: 4 MiB segments mapped aligned to their size, so a pointer
//! finds its segment with one mask, and a bitmap over the address space that
//! says in one load whether an address lies in a hakozuna segment.
//!
//! Slice 0 of a segment holds the header: the per-slice span metadata
//! (span.zig) and the slice bitmaps. It is never handed out. Spans of
//! 1..63 slices are taken from `free_mask`: one slice first fit from the
//! bottom, a longer run from the top.
const std = @import("std");
const layout = @import("layout.zig");
const list = @import("list.zig");
const os = @import("os.zig");
const policy = @import("policy.zig");
const span_box = @import("span.zig");
const stats = @import("stats.zig");
const Span = span_box.Span;

const segment_shift = layout.segment_shift;
const segment_size_bytes = layout.segment_size_bytes;
const slice_shift = layout.slice_shift;
const slice_size_bytes = layout.slice_size_bytes;
const slices_per_segment = layout.slices_per_segment;

// Slice 0: the `Segment` header, then (hardened lane) the allocated
// bitmap, then a guard page, so no user block borders the metadata.
const allocated_offset: usize = 16 * 1024;
const allocated_words: usize = segment_size_bytes / layout.min_alignment_bytes / 64;
const header_guard_offset: usize = slice_size_bytes - layout.page_size_bytes;

comptime {
    std.debug.assert(@sizeOf(Segment) <= allocated_offset);
    std.debug.assert(allocated_offset + allocated_words * 8 <= header_guard_offset);
}

/// Extern, so that the fields lie in this order: what every segment writes
/// when it is made (`initFresh`) shares the first page with the metadata
/// of the lowest slices, which spans of one slice take first.
pub const Segment = extern struct {
    /// Owner heap (heap.zig), opaque here. Stable for the segment's life:
    /// a heap outlives its thread and is adopted whole.
    heap: ?*anyopaque,
    /// Bit i set: slice i belongs to no span.
    free_mask: u64,
    /// Bit i set: slice i is free and may hold resident memory (not purged).
    dirty_mask: u64,
    /// Link in the owner heap's segment list.
    link: list.Link(Segment),
    /// The class of the span each slice belongs to (stale for free slices
    /// and the header, which no lookup that reads it accepts): free's
    /// per-class count reads it at an address computed from the pointer
    /// alone, where the span's own `class` waits for `span_of`'s load
    /// (bench/LEDGER.md).
    class_of: [slices_per_segment]u8,
    /// The span each slice belongs to, `&no_span` for free slices and the
    /// header: pointer -> span is a shift, a mask and one load.
    span_of: [slices_per_segment]*Span,
    /// Span metadata of each slice; entry 0 (the header slice) is never
    /// assigned.
    slices: [slices_per_segment]Span,

    const all_slices_free: u64 = ~@as(u64, 1);

    /// Sets up the header of a freshly mapped segment (zero pages) by
    /// writing only the fields that are not zero: the span metadata of the
    /// slices (8 KiB) is zero until a span takes them, so a heap that uses
    /// a few small classes touches only the header's first page.
    fn initFresh(segment: *Segment) void {
        segment.free_mask = all_slices_free;
        segment.span_of = @splat(&no_span);
    }

    pub inline fn of(addr: usize) *Segment {
        return @ptrFromInt(addr & ~(segment_size_bytes - 1));
    }

    /// The segment of a chunk that `liveChunk` returned.
    pub inline fn ofChunk(chunk: usize) *Segment {
        return @ptrFromInt(chunk << segment_shift);
    }

    /// The metadata of the span that contains `addr` (which lies in this
    /// segment).
    pub inline fn spanOf(segment: *Segment, addr: usize) *Span {
        return segment.span_of[(addr >> slice_shift) & (slices_per_segment - 1)];
    }

    /// The class of the span that contains `addr` (which lies in a span
    /// of this segment): `spanOf(addr).class`, without waiting for it.
    pub inline fn classOf(segment: *const Segment, addr: usize) u8 {
        // Through a pointer: indexing the array field itself made the
        // compiler copy the array.
        const classes: *const [slices_per_segment]u8 = &segment.class_of;
        return classes[(addr >> slice_shift) & (slices_per_segment - 1)];
    }

    pub inline fn sliceIndex(segment: *const Segment, span: *const Span) usize {
        return (@intFromPtr(span) - @intFromPtr(&segment.slices[0])) / @sizeOf(Span);
    }

    pub inline fn sliceStart(segment: *const Segment, index: usize) usize {
        return @intFromPtr(segment) + index * slice_size_bytes;
    }

    pub fn isEmpty(segment: *const Segment) bool {
        return segment.free_mask == all_slices_free;
    }

    /// Takes a run of `count` free slices (one: the lowest; more: the
    /// highest run that fits). Null when no run fits.
    pub fn takeSpan(segment: *Segment, count: usize, heap: *anyopaque, class: u8) ?*Span {
        std.debug.assert(count >= 1);
        std.debug.assert(count < slices_per_segment);
        // Bit i of `runs` survives when slices i..i+count-1 are all free.
        var runs = segment.free_mask;
        var shift: usize = 1;
        while (shift < count) : (shift += 1) runs &= segment.free_mask >> @intCast(shift);
        if (runs == 0) return null;
        // Single slices from the bottom, runs from the top: small spans
        // then do not split the runs that multi-slice spans leave free.
        const first: usize = if (count == 1) @ctz(runs) else 63 - @clz(runs);
        const span_mask = runMask(first, count);
        segment.free_mask &= ~span_mask;
        segment.dirty_mask &= ~span_mask;
        const span = &segment.slices[first];
        for (segment.span_of[first..][0..count]) |*slot| slot.* = span;
        @memset(segment.class_of[first..][0..count], class);
        span.span_slices = @intCast(count);
        span.assign(heap, class, segment.sliceStart(first), count * slice_size_bytes);
        return span;
    }

    /// Whether a released span's memory may still be resident.
    pub const Memory = enum { resident, purged };

    /// Gives a span's slices back to the segment; resident ones stay so
    /// (dirty) until purged.
    pub fn releaseSpan(segment: *Segment, span: *Span, now_ms: u32, memory: Memory) void {
        span.reset();
        const first = segment.sliceIndex(span);
        const count: usize = span.span_slices;
        const span_mask = runMask(first, count);
        std.debug.assert(segment.free_mask & span_mask == 0);
        for (first..first + count) |index| {
            segment.span_of[index] = &no_span;
            segment.slices[index].free_since_ms = now_ms;
        }
        segment.free_mask |= span_mask;
        if (memory == .resident) segment.dirty_mask |= span_mask;
    }

    /// Returns to the OS the memory of free slices that have been free for
    /// at least `min_age_ms` (0: all of them). Returns the slices purged.
    pub fn purgeFree(segment: *Segment, now_ms: u32, min_age_ms: u32) usize {
        var candidates = segment.dirty_mask & segment.free_mask;
        if (min_age_ms > 0) {
            var old_enough: u64 = 0;
            var scan = candidates;
            while (scan != 0) : (scan &= scan - 1) {
                const index: u6 = @intCast(@ctz(scan));
                if (now_ms -% segment.slices[index].free_since_ms >= min_age_ms) old_enough |= @as(u64, 1) << index;
            }
            candidates = old_enough;
        }
        var purged: usize = 0;
        var runs = candidates;
        while (runs != 0) {
            const first: usize = @ctz(runs);
            const count: usize = @ctz(~(runs >> @intCast(first)));
            const run_mask = runMask(first, count);
            os.purge(@ptrFromInt(segment.sliceStart(first)), count * slice_size_bytes);
            stats.global.purged(count * slice_size_bytes);
            runs &= ~run_mask;
            purged += count;
        }
        segment.dirty_mask &= ~candidates;
        return purged;
    }

    /// Bits first..first+count-1. Slice 0 is never free, so a run has at
    /// most 63 slices and the shift never overflows.
    fn runMask(first: usize, count: usize) u64 {
        std.debug.assert(first >= 1);
        std.debug.assert(count >= 1);
        std.debug.assert(first + count <= slices_per_segment);
        return ((@as(u64, 1) << @intCast(count)) - 1) << @intCast(first);
    }

    /// Hardened lane: one bit per 16-byte granule, set from the malloc that
    /// hands out the block that starts there until the block is back on its
    /// span (a free by the span's owner, or the owner's collect of a block
    /// another thread freed: hardened.zig). Only the heap that owns the
    /// segment writes its words, so a write is a load and a store, no
    /// locked instruction; any thread may read them. The words lie in slice
    /// 0 after the header and are untouched (zero pages) in the other lanes.
    fn allocatedWord(segment: *Segment, addr: usize) struct { word: *std.atomic.Value(u64), bit: u64 } {
        const granule = (addr & (segment_size_bytes - 1)) / layout.min_alignment_bytes;
        const words: [*]std.atomic.Value(u64) = @ptrFromInt(@intFromPtr(segment) + allocated_offset);
        return .{ .word = &words[granule / 64], .bit = @as(u64, 1) << @intCast(granule % 64) };
    }

    /// Marks the block at `addr` allocated; false if it already was. The
    /// segment's owner only.
    pub fn markAllocated(segment: *Segment, addr: usize) bool {
        const at = segment.allocatedWord(addr);
        const word = at.word.load(.monotonic);
        if (word & at.bit != 0) return false;
        at.word.store(word | at.bit, .release);
        return true;
    }

    /// Marks the block at `addr` back on its span; false if it was not
    /// allocated. The segment's owner only; release: a thread that reads
    /// the bit clear reads what the owner wrote into the block before.
    pub fn clearAllocated(segment: *Segment, addr: usize) bool {
        const at = segment.allocatedWord(addr);
        const word = at.word.load(.monotonic);
        if (word & at.bit == 0) return false;
        at.word.store(word & ~at.bit, .release);
        return true;
    }

    pub fn isAllocated(segment: *Segment, addr: usize) bool {
        const at = segment.allocatedWord(addr);
        return at.word.load(.acquire) & at.bit != 0;
    }

    pub fn dirtySlices(segment: *const Segment) usize {
        return @popCount(segment.dirty_mask & segment.free_mask);
    }
};

/// The span of every slice that belongs to no span: it has no carved
/// block, so every pointer into it fails validation.
var no_span: Span = .{};

// ---------------------------------------------------------------------------
// The segment map: one byte per 4 MiB of the 47-bit user address space
// (32 MiB of zero pages, touched only where segments live), static so that
// `contains` is a shift, a compare and one load with no initialisation
// check. Segments come from mmap without an address hint, so they lie
// below 2^47.

pub const address_bits = 47;
const map_len = 1 << (address_bits - segment_shift);
var segment_map: [map_len]u8 = @splat(0);

/// True when `addr` lies in a live hakozuna segment (never for 0).
pub inline fn contains(addr: usize) bool {
    if (addr >> segment_shift >= map_len) return false;
    return liveChunk(addr) != null;
}

/// free's lookup: the map index of `addr`'s 4 MiB chunk when that chunk
/// holds a live segment (`Segment.ofChunk`), else null. The chunk is taken
/// modulo the map (one mask, no bounds check), so an address above 2^47
/// names the segment of its low bits: the caller must not touch `addr`
/// before it has checked that `addr` is a block of that segment
/// (`Span.blockAt` refuses it, as it lies at least 2^47 - 4 MiB from any
/// span's start).
pub inline fn liveChunk(addr: usize) ?usize {
    const chunk = (addr >> segment_shift) & (map_len - 1);
    if (@atomicLoad(u8, &segment_map[chunk], .monotonic) == 0) return null;
    return chunk;
}

fn mapMark(segment: *Segment, live: bool) void {
    const chunk = @intFromPtr(segment) >> segment_shift;
    // A kernel that hands out addresses above 2^47 unasked would break the
    // map's premise: fail loudly rather than lose track of a segment.
    if (chunk >= map_len) os.fatalPointer("internal error: segment above the 47-bit address space", @intFromPtr(segment));
    @atomicStore(u8, &segment_map[chunk], @intFromBool(live), .release);
}

// ---------------------------------------------------------------------------
// Segment lifetime and the global cache of empty segments.

var cache_lock: os.Lock = .{};
var cache_head: ?*Segment = null;
var cache_count: usize = 0;
/// Free slices of the cached segments still resident: `release` leaves a
/// segment's slices as they are while these stay within
/// `cache_resident_factor` times the policy's `purge_slices`, so that a
/// heap whose segments empty and fill in turn (a producer whose consumers
/// free a segment's worth at a time) takes them back without faulting them
/// in, and purges them past that. Written under `cache_lock`.
var cache_resident_slices: usize = 0;

/// The bound on `cache_resident_slices`, in `purge_slices`.
pub const cache_resident_factor = 4;

/// A segment owned by `heap`, every slice free. Null when out of memory.
pub fn acquire(heap: *anyopaque) ?*Segment {
    const segment = popCached() orelse fresh: {
        const memory = os.mapAligned(segment_size_bytes, segment_size_bytes) orelse return null;
        stats.global.mapped(segment_size_bytes);
        const segment: *Segment = @ptrCast(memory);
        segment.initFresh();
        if (policy.snapshot.hardened()) {
            // Best effort: without the guard the lane still works.
            _ = os.protectNone(@ptrFromInt(@intFromPtr(segment) + header_guard_offset), layout.page_size_bytes);
        }
        mapMark(segment, true);
        stats.global.segment_count.add(1);
        break :fresh segment;
    };
    std.debug.assert(segment.isEmpty());
    segment.heap = heap;
    segment.link = .{};
    return segment;
}

/// Hands an empty segment back: kept in the cache up to the policy's
/// limit (purged, unless `cache_resident_slices` has room for its resident
/// slices), unmapped beyond it. Returns the bytes given back to the OS.
pub fn release(segment: *Segment) usize {
    std.debug.assert(segment.isEmpty());
    segment.heap = null;
    cache_lock.lock();
    if (cache_count < policy.snapshot.segment_cache) {
        const resident_slices = segment.dirtySlices();
        var purged_slices: usize = 0;
        if (cache_resident_slices + resident_slices <= cache_resident_factor * policy.snapshot.purge_slices) {
            @atomicStore(usize, &cache_resident_slices, cache_resident_slices + resident_slices, .monotonic);
        } else {
            purged_slices = segment.purgeFree(0, 0);
        }
        segment.link.next = cache_head;
        cache_head = segment;
        cache_count += 1;
        cache_lock.unlock();
        return purged_slices * slice_size_bytes;
    }
    cache_lock.unlock();
    unmapSegment(segment);
    return segment_size_bytes;
}

fn unmapSegment(segment: *Segment) void {
    mapMark(segment, false);
    stats.global.segment_count.sub(1);
    os.unmap(@ptrCast(@alignCast(segment)), segment_size_bytes);
    stats.global.unmapped(segment_size_bytes);
}

fn popCached() ?*Segment {
    cache_lock.lock();
    defer cache_lock.unlock();
    const segment = cache_head orelse return null;
    cache_head = segment.link.next;
    cache_count -= 1;
    @atomicStore(usize, &cache_resident_slices, cache_resident_slices - segment.dirtySlices(), .monotonic);
    return segment;
}

/// Purges the cached segments' slices free for at least `min_age_ms` (the
/// purge delay: heap.zig's purge boundary calls this, as it does the large
/// cache's trim). Returns the bytes. One atomic load when none is resident.
pub fn purgeCached(now_ms: u32, min_age_ms: u32) usize {
    if (@atomicLoad(usize, &cache_resident_slices, .monotonic) == 0) return 0;
    cache_lock.lock();
    defer cache_lock.unlock();
    var purged_slices: usize = 0;
    var cursor = cache_head;
    while (cursor) |segment| : (cursor = segment.link.next) purged_slices += segment.purgeFree(now_ms, min_age_ms);
    @atomicStore(usize, &cache_resident_slices, cache_resident_slices - purged_slices, .monotonic);
    return purged_slices * slice_size_bytes;
}

/// Unmaps every cached segment. Returns the bytes unmapped.
pub fn trimCache() usize {
    cache_lock.lock();
    var cached = cache_head;
    cache_head = null;
    cache_count = 0;
    @atomicStore(usize, &cache_resident_slices, 0, .monotonic);
    cache_lock.unlock();
    var bytes: usize = 0;
    while (cached) |segment| {
        cached = segment.link.next;
        unmapSegment(segment);
        bytes += segment_size_bytes;
    }
    return bytes;
}

pub fn lockForFork() void {
    cache_lock.lock();
}
pub fn unlockAfterFork() void {
    cache_lock.unlock();
}
pub fn resetAfterFork() void {
    cache_lock.resetAfterFork();
}

test "a fresh segment header set up over zero pages equals its default" {
    const zeroed = try std.testing.allocator.create(Segment);
    defer std.testing.allocator.destroy(zeroed);
    @memset(std.mem.asBytes(zeroed), 0);
    zeroed.initFresh();
    const expected: Segment = .{
        .slices = @splat(.{}),
        .heap = null,
        .free_mask = Segment.all_slices_free,
        .dirty_mask = 0,
        .link = .{},
        .class_of = @splat(0),
        .span_of = @splat(&no_span),
    };
    try std.testing.expect(std.meta.eql(expected, zeroed.*));
}

test "segments are aligned, mapped in the segment map, and spans fit" {
    var heap_token: u8 = 0;
    const segment = acquire(&heap_token) orelse return error.OutOfMemory;
    try std.testing.expect(@intFromPtr(segment) % segment_size_bytes == 0);
    try std.testing.expect(contains(@intFromPtr(segment) + 12345));
    try std.testing.expect(!contains(0x1000));

    const a = segment.takeSpan(1, &heap_token, 0).?;
    const b = segment.takeSpan(16, &heap_token, @import("sizeclass.zig").class_count - 1).?;
    // One slice from the bottom, a run from the top (slices 48..63).
    try std.testing.expectEqual(@as(usize, 1), segment.sliceIndex(a));
    try std.testing.expectEqual(@as(usize, 48), segment.sliceIndex(b));
    try std.testing.expect(segment.spanOf(segment.sliceStart(50) + 77) == b);
    try std.testing.expect(segment.takeSpan(1, &heap_token, 0).? == &segment.slices[2]);
    segment.releaseSpan(&segment.slices[2], 1050, .resident);
    try std.testing.expect(segment.spanOf(segment.sliceStart(1)) == a);
    try std.testing.expect(segment.takeSpan(63, &heap_token, 0) == null);

    segment.releaseSpan(a, 1000, .resident);
    segment.releaseSpan(b, 1050, .resident);
    try std.testing.expect(segment.isEmpty());
    try std.testing.expectEqual(@as(usize, 1), segment.purgeFree(1100, 100));
    try std.testing.expectEqual(@as(usize, 17), segment.purgeFree(1100, 0));
    try std.testing.expectEqual(@as(usize, 0), segment.dirtySlices());
    _ = release(segment);
    _ = trimCache();
    try std.testing.expect(!contains(@intFromPtr(segment)));
}

test "the segment cache keeps released segments resident within its bound, purges past it and by age" {
    const saved = policy.snapshot;
    defer policy.snapshot = saved;
    policy.snapshot.segment_cache = 4;
    policy.snapshot.purge_slices = 10;
    _ = trimCache();
    defer _ = trimCache();
    var heap_token: u8 = 0;
    var segments: [2]*Segment = undefined;
    for (&segments) |*slot| {
        const segment = acquire(&heap_token) orelse return error.OutOfMemory;
        segment.releaseSpan(segment.takeSpan(30, &heap_token, 0).?, 1000, .resident);
        slot.* = segment;
    }
    // 30 resident slices fit the bound (4 * 10); 60 would not.
    try std.testing.expectEqual(@as(usize, 0), release(segments[0]));
    try std.testing.expectEqual(30 * slice_size_bytes, release(segments[1]));
    try std.testing.expectEqual(@as(usize, 30), cache_resident_slices);
    // Taken back, newest first: the resident one leaves the count with its slices.
    try std.testing.expect(acquire(&heap_token).? == segments[1]);
    try std.testing.expect(acquire(&heap_token).? == segments[0]);
    try std.testing.expectEqual(@as(usize, 30), segments[0].dirtySlices());
    try std.testing.expectEqual(@as(usize, 0), cache_resident_slices);
    // Released again: purged once free for the delay, not before.
    for (segments) |segment| _ = release(segment);
    try std.testing.expectEqual(@as(usize, 0), purgeCached(1050, 100));
    try std.testing.expectEqual(30 * slice_size_bytes, purgeCached(1100, 100));
    try std.testing.expectEqual(@as(usize, 0), cache_resident_slices);
}
