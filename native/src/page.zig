//! Page box: one span of pages carved into blocks of one size class.
//!
//! A `Page` is the metadata of a span; it lives in its segment's header
//! (segment.zig) at the index of the span's first page. Only the owner heap
//! writes it (other threads' frees reach the page through the owner's
//! inbox, remote.zig); other threads only read its geometry to validate a
//! pointer. Blocks are carved lazily, a few OS pages at a time, so an
//! allocation never makes untouched memory resident.
const std = @import("std");
const sizeclass = @import("sizeclass.zig");

/// A free block: the first word links the list, the second holds the
/// double-free cookie while the block is free.
pub const Block = extern struct {
    next: ?*Block,
    cookie: usize,
};

/// Process-wide secret mixed into free-block cookies, so user data cannot
/// look like a freed block by accident.
pub var cookie_key: usize = 0;

pub inline fn cookieOf(block: *const Block) usize {
    return cookie_key ^ @intFromPtr(block);
}

/// Bytes carved at a time when a page's free list runs dry.
const carve_bytes: usize = 16 * 1024;

/// Laid out by hand (extern) so that everything `malloc` and `free` read
/// sits in the first cache line, and aligned to 128 bytes so the metadata of
/// page i is at a shift, not a multiply, from the array start.
pub const Page = extern struct {
    // Hot: read by every malloc and free of this page.
    free: ?*Block align(128) = null,
    start: usize = 0,
    /// floor(2^reciprocal_shift / block_size) + 1: turns the block-index
    /// division into a multiply, exact for offsets within a span.
    reciprocal: u64 = 0,
    /// Owning heap (tcache.zig), opaque here; null while the span is free.
    heap: ?*anyopaque = null,
    /// Blocks handed out and not yet given back to this page: in use, or in
    /// flight in some thread's remote list.
    used: u32 = 0,
    /// Blocks carved so far; blocks at or above this index were never handed
    /// out. Written by the owner, read by any thread validating a pointer.
    capacity: std.atomic.Value(u32) = .init(0),
    block_size: u32 = 0,
    class: sizeclass.Class = 0,
    /// Index of this page minus the span's first page index; 0 on the first.
    head_offset: u8 = 0,
    /// Taken off the class queue because no block was free.
    full: bool = false,
    /// In the owner's partial list for its class.
    in_partial: bool = false,

    // Cold: refill, retire and purge.
    /// Blocks the span can hold.
    reserved: u32 = 0,
    /// Pages in this span (on the span's first page only).
    span_pages: u8 = 0,
    /// When this page became free (os.nowMs), for delayed purging.
    free_since_ms: u32 = 0,
    // Class queue links (owner only).
    next: ?*Page = null,
    prev: ?*Page = null,

    pub const reciprocal_shift = 40;

    comptime {
        std.debug.assert(@sizeOf(Page) == 128);
        std.debug.assert(@offsetOf(Page, "in_partial") < 64);
    }

    /// Prepares a free span for blocks of `class`. The span's memory may hold
    /// stale data from an earlier use; carving overwrites what it needs.
    pub fn assign(page: *Page, heap: *anyopaque, class: sizeclass.Class, start: usize, span_bytes: usize) void {
        std.debug.assert(page.capacity.load(.monotonic) == 0 and page.used == 0);
        const block_size = sizeclass.block_size_bytes[class];
        page.free = null;
        page.block_size = block_size;
        page.reserved = @intCast(span_bytes / block_size);
        page.reciprocal = (@as(u64, 1) << reciprocal_shift) / block_size + 1;
        page.start = start;
        page.class = class;
        page.in_partial = false;
        page.full = false;
        page.next = null;
        page.prev = null;
        page.heap = heap;
        std.debug.assert(page.reserved >= 1);
    }

    /// Returns the span to its free state; every block must be back.
    pub fn reset(page: *Page) void {
        std.debug.assert(page.used == 0);
        std.debug.assert(!page.in_partial);
        page.free = null;
        page.heap = null;
        page.capacity.store(0, .release);
        page.full = false;
    }

    /// Links up to `carve_bytes` of never-used blocks onto the free list.
    /// Returns false when the span is fully carved.
    pub fn carve(page: *Page) bool {
        std.debug.assert(page.free == null);
        const capacity = page.capacity.load(.monotonic);
        if (capacity >= page.reserved) return false;
        const count = @min(page.reserved - capacity, @max(1, carve_bytes / page.block_size));
        const first = page.start + @as(usize, capacity) * page.block_size;
        var index: u32 = 0;
        while (index + 1 < count) : (index += 1) {
            const block: *Block = @ptrFromInt(first + @as(usize, index) * page.block_size);
            block.next = @ptrFromInt(first + @as(usize, index + 1) * page.block_size);
        }
        const last: *Block = @ptrFromInt(first + @as(usize, count - 1) * page.block_size);
        last.next = null;
        page.free = @ptrFromInt(first);
        // Release: a thread that validates a pointer into the new blocks must
        // see the page's geometry written before it.
        page.capacity.store(capacity + count, .release);
        return true;
    }

    /// The block that starts at `addr`, or null when `addr` is not the start
    /// of a block ever handed out from this span. Safe on any page of any
    /// live segment, including free spans (capacity 0).
    pub inline fn blockAt(page: *const Page, addr: usize) ?*Block {
        const capacity = page.capacity.load(.acquire);
        const offset = addr -% page.start;
        const index = (@as(u64, offset) *% page.reciprocal) >> reciprocal_shift;
        if (index >= capacity or index * page.block_size != offset) return null;
        return @ptrFromInt(addr);
    }

    pub inline fn isFree(block: *const Block) bool {
        return block.cookie == cookieOf(block);
    }

    /// Owner-side push of a block coming back (local free or collect).
    pub inline fn pushFree(page: *Page, block: *Block) void {
        block.next = page.free;
        block.cookie = cookieOf(block);
        page.free = block;
    }

    pub inline fn usableBytes(page: *const Page) usize {
        return page.block_size;
    }
};

test "carve links every block once and stops at the span end" {
    const span_bytes = 64 * 1024;
    const memory = try std.testing.allocator.alignedAlloc(u8, .fromByteUnits(4096), span_bytes);
    defer std.testing.allocator.free(memory);
    var page: Page = .{};
    var heap_token: u8 = 0;
    const class = sizeclass.classOf(3000);
    page.assign(&heap_token, class, @intFromPtr(memory.ptr), span_bytes);
    var total: usize = 0;
    while (page.free != null or page.carve()) {
        const block = page.free.?;
        page.free = block.next;
        try std.testing.expect(page.blockAt(@intFromPtr(block)) == block);
        total += 1;
    }
    try std.testing.expectEqual(@as(usize, span_bytes / sizeclass.block_size_bytes[class]), total);
}

test "blockAt rejects interior, tail and uncarved pointers" {
    const span_bytes = 64 * 1024;
    const memory = try std.testing.allocator.alignedAlloc(u8, .fromByteUnits(4096), span_bytes);
    defer std.testing.allocator.free(memory);
    var page: Page = .{};
    var heap_token: u8 = 0;
    const class = sizeclass.classOf(48);
    page.assign(&heap_token, class, @intFromPtr(memory.ptr), span_bytes);
    const base = @intFromPtr(memory.ptr);
    try std.testing.expect(page.blockAt(base) == null); // nothing carved yet
    try std.testing.expect(page.carve());
    try std.testing.expect(page.blockAt(base) != null);
    try std.testing.expect(page.blockAt(base + 48) != null);
    try std.testing.expect(page.blockAt(base + 16) == null);
    try std.testing.expect(page.blockAt(base + 47) == null);
    try std.testing.expect(page.blockAt(base - 48) == null);
    try std.testing.expect(page.blockAt(base + span_bytes) == null);
}

test "reciprocal division is exact for every offset of the largest spans" {
    for (0..sizeclass.class_count) |c| {
        const size: u64 = sizeclass.block_size_bytes[c];
        const reciprocal = (@as(u64, 1) << Page.reciprocal_shift) / size + 1;
        const span_bytes: u64 = @as(u64, sizeclass.span_pages[c]) * 64 * 1024;
        var offset: u64 = 0;
        while (offset < span_bytes) : (offset += 16) {
            try std.testing.expectEqual(offset / size, (offset * reciprocal) >> Page.reciprocal_shift);
        }
    }
}
