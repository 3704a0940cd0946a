//! Segment box: 4 MiB segments mapped aligned to their size, so a pointer
//! finds its segment with one mask, and a bitmap over the address space that
//! says in one load whether an address lies in a hakozuna segment.
//!
//! Page 0 of a segment holds the header: the per-page metadata array
//! (page.zig, seed 001's per-page meta) and the span bitmaps. It is never
//! handed out. Spans of 1..16 pages are taken first-fit from `free_mask`.
const std = @import("std");
const builtin = @import("builtin");
const os = @import("os.zig");
const page_box = @import("page.zig");
const policy = @import("policy.zig");
const stats = @import("stats.zig");
const Page = page_box.Page;

pub const segment_shift = 22;
pub const segment_size_bytes: usize = 1 << segment_shift;
pub const page_shift = 16;
pub const page_size_bytes: usize = 1 << page_shift;
pub const pages_per_segment: usize = segment_size_bytes / page_size_bytes;

comptime {
    std.debug.assert(pages_per_segment == 64); // the masks below are u64
    std.debug.assert(@sizeOf(Segment) <= page_size_bytes);
}

pub const Segment = struct {
    /// Metadata of each page; entry 0 (the header page) is never assigned.
    pages: [pages_per_segment]Page,
    /// Owner heap (tcache.zig), opaque here. Stable for the segment's life:
    /// a heap outlives its thread and is adopted whole.
    heap: ?*anyopaque,
    /// Bit i set: page i belongs to no span.
    free_mask: u64,
    /// Bit i set: page i is free and may hold resident memory (not purged).
    dirty_mask: u64,
    /// The owner heap's segment list.
    next: ?*Segment,
    prev: ?*Segment,

    const all_pages_free: u64 = ~@as(u64, 1);

    pub inline fn of(addr: usize) *Segment {
        return @ptrFromInt(addr & ~(segment_size_bytes - 1));
    }

    /// The metadata of the span that contains `addr` (which lies in this
    /// segment).
    pub inline fn spanOf(segment: *Segment, addr: usize) *Page {
        const index = (addr >> page_shift) & (pages_per_segment - 1);
        const page = &segment.pages[index];
        return &segment.pages[index - page.head_offset];
    }

    pub inline fn pageIndex(segment: *const Segment, page: *const Page) usize {
        return (@intFromPtr(page) - @intFromPtr(&segment.pages[0])) / @sizeOf(Page);
    }

    pub inline fn pageStart(segment: *const Segment, index: usize) usize {
        return @intFromPtr(segment) + index * page_size_bytes;
    }

    pub fn isEmpty(segment: *const Segment) bool {
        return segment.free_mask == all_pages_free;
    }

    /// Takes a run of `count` free pages, first fit. Null when no run fits.
    pub fn takeSpan(segment: *Segment, count: usize, heap: *anyopaque, class: u8) ?*Page {
        std.debug.assert(count >= 1 and count < pages_per_segment);
        // Bit i of `runs` survives when pages i..i+count-1 are all free.
        var runs = segment.free_mask;
        var shift: usize = 1;
        while (shift < count) : (shift += 1) runs &= segment.free_mask >> @intCast(shift);
        if (runs == 0) return null;
        const first: usize = @ctz(runs);
        std.debug.assert(first >= 1 and first + count <= pages_per_segment);
        const span_mask = runMask(first, count);
        segment.free_mask &= ~span_mask;
        segment.dirty_mask &= ~span_mask;
        for (first..first + count) |index| segment.pages[index].head_offset = @intCast(index - first);
        const page = &segment.pages[first];
        page.span_pages = @intCast(count);
        page.assign(heap, class, segment.pageStart(first), count * page_size_bytes);
        return page;
    }

    /// Gives a span's pages back to the segment; they stay resident (dirty)
    /// until purged.
    pub fn releaseSpan(segment: *Segment, page: *Page, now_ms: u32) void {
        page.reset();
        const first = segment.pageIndex(page);
        const count: usize = page.span_pages;
        std.debug.assert(first >= 1 and count >= 1 and first + count <= pages_per_segment);
        const span_mask = runMask(first, count);
        std.debug.assert(segment.free_mask & span_mask == 0);
        for (first..first + count) |index| {
            segment.pages[index].head_offset = 0;
            segment.pages[index].free_since_ms = now_ms;
        }
        segment.free_mask |= span_mask;
        segment.dirty_mask |= span_mask;
    }

    /// Returns to the OS the memory of free pages that have been free for at
    /// least `min_age_ms` (0: all of them). Returns the pages purged.
    pub fn purgeFree(segment: *Segment, now_ms: u32, min_age_ms: u32) usize {
        var candidates = segment.dirty_mask & segment.free_mask;
        if (min_age_ms > 0) {
            var old_enough: u64 = 0;
            var scan = candidates;
            while (scan != 0) : (scan &= scan - 1) {
                const index: u6 = @intCast(@ctz(scan));
                if (now_ms -% segment.pages[index].free_since_ms >= min_age_ms) old_enough |= @as(u64, 1) << index;
            }
            candidates = old_enough;
        }
        var purged: usize = 0;
        var runs = candidates;
        while (runs != 0) {
            const first: usize = @ctz(runs);
            const count: usize = @ctz(~(runs >> @intCast(first)));
            const run_mask = runMask(first, count);
            os.purge(@ptrFromInt(segment.pageStart(first)), count * page_size_bytes);
            runs &= ~run_mask;
            purged += count;
        }
        segment.dirty_mask &= ~candidates;
        return purged;
    }

    /// Bits first..first+count-1. Page 0 is never free, so a run has at
    /// most 63 pages and the shift never overflows.
    fn runMask(first: usize, count: usize) u64 {
        std.debug.assert(first >= 1 and count >= 1 and first + count <= pages_per_segment);
        return ((@as(u64, 1) << @intCast(count)) - 1) << @intCast(first);
    }

    pub fn dirtyPages(segment: *const Segment) usize {
        return @popCount(segment.dirty_mask & segment.free_mask);
    }
};

// ---------------------------------------------------------------------------
// The segment map: one bit per 4 MiB of a 48-bit address space (8 MiB of
// zero pages, touched only where segments live), static so that `contains`
// is one load with no initialisation check.

const address_bits = 48;
const map_word_count = (1 << (address_bits - segment_shift)) / 64;
var segment_map: [map_word_count]std.atomic.Value(u64) = @splat(.init(0));

/// True when `addr` lies in a live hakozuna segment.
pub inline fn contains(addr: usize) bool {
    const chunk = addr >> segment_shift;
    if (chunk >= map_word_count * 64) return false;
    const word = segment_map[chunk / 64].load(.monotonic);
    return (word >> @intCast(chunk % 64)) & 1 != 0;
}

fn mapMark(segment: *Segment, live: bool) void {
    const chunk = @intFromPtr(segment) >> segment_shift;
    std.debug.assert(chunk < map_word_count * 64);
    const bit = @as(u64, 1) << @intCast(chunk % 64);
    if (live) {
        _ = segment_map[chunk / 64].fetchOr(bit, .release);
    } else {
        _ = segment_map[chunk / 64].fetchAnd(~bit, .release);
    }
}

// ---------------------------------------------------------------------------
// Segment lifetime and the global cache of empty segments.

var cache_lock: os.Lock = .{};
var cache_head: ?*Segment = null;
var cache_count: usize = 0;

/// A segment owned by `heap`, every page free. Null when out of memory.
pub fn acquire(heap: *anyopaque) ?*Segment {
    const segment = popCached() orelse fresh: {
        const memory = os.mapAligned(segment_size_bytes, segment_size_bytes) orelse return null;
        const segment: *Segment = @ptrCast(memory);
        // Fresh mappings are zero: every Page starts in its default state.
        segment.* = .{
            .pages = @splat(.{}),
            .heap = null,
            .free_mask = Segment.all_pages_free,
            .dirty_mask = 0,
            .next = null,
            .prev = null,
        };
        mapMark(segment, true);
        stats.global.segments.add(1);
        break :fresh segment;
    };
    std.debug.assert(segment.isEmpty());
    segment.heap = heap;
    segment.next = null;
    segment.prev = null;
    return segment;
}

/// Hands an empty segment back: kept in the cache (purged) up to the policy's
/// limit, unmapped beyond it. Returns the bytes given back to the OS.
pub fn release(segment: *Segment) usize {
    std.debug.assert(segment.isEmpty());
    segment.heap = null;
    cache_lock.lock();
    if (cache_count < policy.snapshot.segment_cache) {
        const purged_pages = segment.purgeFree(0, 0);
        segment.next = cache_head;
        cache_head = segment;
        cache_count += 1;
        cache_lock.unlock();
        return purged_pages * page_size_bytes;
    }
    cache_lock.unlock();
    unmapSegment(segment);
    return segment_size_bytes;
}

fn unmapSegment(segment: *Segment) void {
    mapMark(segment, false);
    stats.global.segments.sub(1);
    os.unmap(@ptrCast(@alignCast(segment)), segment_size_bytes);
}

fn popCached() ?*Segment {
    cache_lock.lock();
    defer cache_lock.unlock();
    const segment = cache_head orelse return null;
    cache_head = segment.next;
    cache_count -= 1;
    return segment;
}

/// Unmaps every cached segment. Returns the bytes unmapped.
pub fn trimCache() usize {
    cache_lock.lock();
    var list = cache_head;
    cache_head = null;
    cache_count = 0;
    cache_lock.unlock();
    var bytes: usize = 0;
    while (list) |segment| {
        list = segment.next;
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

test "segments are aligned, mapped in the segment map, and spans fit" {
    var heap_token: u8 = 0;
    const segment = acquire(&heap_token) orelse return error.OutOfMemory;
    try std.testing.expect(@intFromPtr(segment) % segment_size_bytes == 0);
    try std.testing.expect(contains(@intFromPtr(segment) + 12345));
    try std.testing.expect(!contains(0x1000));

    const a = segment.takeSpan(1, &heap_token, 0).?;
    const b = segment.takeSpan(16, &heap_token, 150).?;
    try std.testing.expectEqual(@as(usize, 1), segment.pageIndex(a));
    try std.testing.expectEqual(@as(usize, 2), segment.pageIndex(b));
    try std.testing.expect(segment.spanOf(segment.pageStart(10) + 77) == b);
    try std.testing.expect(segment.spanOf(segment.pageStart(1)) == a);
    try std.testing.expect(segment.takeSpan(63, &heap_token, 0) == null);

    segment.releaseSpan(a, 1000);
    segment.releaseSpan(b, 1050);
    try std.testing.expect(segment.isEmpty());
    try std.testing.expectEqual(@as(usize, 1), segment.purgeFree(1100, 100));
    try std.testing.expectEqual(@as(usize, 16), segment.purgeFree(1100, 0));
    try std.testing.expectEqual(@as(usize, 0), segment.dirtyPages());
    _ = release(segment);
    _ = trimCache();
    try std.testing.expect(!contains(@intFromPtr(segment)));
}
