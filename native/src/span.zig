//! Span box: a run of slices carved into blocks of one size class.
//!
//! A `Span` is the metadata of a span; it lives in its segment's header
//! (segment.zig) at the index of the span's first slice. Only the owner
//! heap writes the free list and counts (other threads' frees reach the
//! span through the owner's inbox, remote.zig); other threads only read its
//! geometry to validate a pointer. Blocks are carved lazily, a few OS pages
//! at a time, so an allocation never makes untouched memory resident.
const std = @import("std");
const hash = @import("hash.zig");
const build_options = @import("build_options");
const layout = @import("layout.zig");
const list = @import("list.zig");
const os = @import("os.zig");
const policy = @import("policy.zig");
const sizeclass = @import("sizeclass.zig");

/// A free block: the first word links the list (encoded, `encodeLink`),
/// the second holds the cookie that marks it free.
///
/// A use after free or an overflow writes into these words. Encoding the
/// link with a secret and the block's own address means a written value
/// decodes to an address the writer cannot choose; the encoding also
/// rotates by 32 bits, so an overflow that reaches only the first bytes of
/// the link (its low bits) changes the decoded address's high bits and
/// throws it far out of the span. Every pop checks that the decoded link
/// is 16-byte aligned and lies in the span's own aligned region (its slice,
/// or for a span of several slices the smallest aligned power of two that
/// holds it; `nextFree`), so malloc never hands out memory that a write
/// chose: it aborts with `hakozuna: malloc(): corrupted free list
/// 0x<block>`.
pub const Block = extern struct {
    link: usize,
    cookie: usize,
};

/// A block and the span it belongs to: what a lookup by address finds.
pub const SpanBlock = struct { span: *Span, block: *Block };

/// Process-wide secrets, set once at process start: one mixed into
/// free-block cookies (so user data cannot look like a freed block), one
/// into free-list links.
var cookie_key: usize = 0;
var link_key: usize = 0;

/// Draws both keys from the process's start-up randomness.
pub fn initKeys(random: [2]u64) void {
    // Odd: never 0, so no block address can cancel it to a zero cookie.
    cookie_key = random[0] | 1;
    link_key = random[1];
}

pub inline fn cookieOf(block: *const Block) usize {
    return cookie_key ^ @intFromPtr(block);
}

/// The stored form of "`block` is followed by `next`" (null: end of list).
pub inline fn encodeLink(block: *const Block, next: ?*const Block) usize {
    return std.math.rotl(usize, @intFromPtr(next) ^ @intFromPtr(block), 32) ^ link_key;
}

/// The address `block`'s link names (0: end of list). Unchecked: callers
/// validate it before using it as a block.
pub inline fn decodeLink(block: *const Block) usize {
    return linkDelta(block) ^ @intFromPtr(block);
}

/// The decoded link xor the block's own address: the bits in which the
/// next block's address differs from this one's (the block's own address
/// for the end of the list).
pub inline fn linkDelta(block: *const Block) usize {
    return std.math.rotr(usize, block.link ^ link_key, 32);
}

/// A link that `Span.linkFits` refused: null when it ends the list, else
/// an abort. Inline: the abort never returns, so a caller (malloc's
/// `takeLast`, out of line) saves no registers around it.
pub inline fn endOfList(block: *const Block) ?*Block {
    if (linkDelta(block) == @intFromPtr(block)) return null;
    corruptedFreeList(@intFromPtr(block));
}

/// block_size's odd factor `odd`: its inverse modulo 2^64 (Newton's
/// iteration doubles the correct low bits each step, from 3 bits).
fn oddInverse(odd: u64) u64 {
    std.debug.assert(odd & 1 == 1);
    var inverse: u64 = odd;
    for (0..5) |_| inverse *%= 2 -% odd *% inverse;
    std.debug.assert(odd *% inverse == 1);
    return inverse;
}

/// `Span.link_mask` for a span of `span_bytes` at `start`: the bits above
/// the smallest aligned power of two that holds the span, and the low 4.
fn linkMask(start: usize, span_bytes: usize) u64 {
    const differing_bits: u7 = 64 - @as(u7, @clz(start ^ (start + span_bytes - 1)));
    const region: u64 = if (differing_bits == 64) 0 else ~@as(u64, 0) << @intCast(differing_bits);
    return region | (layout.min_alignment_bytes - 1);
}

const cache_line_bytes = layout.cache_line_bytes;
const max_colors = layout.page_size_bytes / cache_line_bytes;

/// Where the first block of a span that starts at `start` begins, in bytes
/// from `start`: its color, a number of cache lines that differs from span
/// to span. Medium blocks are laid out alike in every span of their class,
/// and a size that is a multiple of the page (4, 8, 20, 28 KiB …) puts
/// every block at the same page offset: without colors, the first lines of
/// all of them, and what a program keeps at a fixed offset in them, compete
/// for the same few cache sets (bench/LEDGER.md). Only colored classes
/// (`sizeclass.isColored`) get one.
///
/// The color comes from the bytes whole blocks leave over, so the span
/// holds as many blocks. A color that pushes the last block into one more
/// page costs that page once the span is carved to the end: a span of one
/// slice (16 pages) takes only colors that fit in its last page.
fn colorBytes(start: usize, span_bytes: usize, block_size: usize) usize {
    const spare_bytes = span_bytes % block_size;
    const used_bytes = span_bytes - spare_bytes;
    const room_bytes = if (span_bytes > layout.slice_size_bytes)
        spare_bytes
    else
        (layout.page_size_bytes - used_bytes % layout.page_size_bytes) % layout.page_size_bytes;
    const colors = @min(max_colors, room_bytes / cache_line_bytes + 1);
    // Spans start at slice boundaries: the slice number is the key.
    return hash.topBits(start >> layout.slice_shift, 6) % colors * cache_line_bytes;
}

/// Hardened lane: guard words (`guardWordOf`) before the first block of a
/// span whose blocks start past its first slice's start (a colored span),
/// which hardened.zig checks: an underflow of the span's first block lands
/// in them instead of in whatever lies before the span. A colored span
/// takes them on top of its color when the bytes whole blocks leave over
/// allow, so they cost no block.
pub const guard_gap_bytes: usize = cache_line_bytes;

/// Hardened lane: what a word that no program may write holds, the last
/// word of a block that is not live (carved and never handed out, or
/// freed; blocks longer than `Block`) and each word of a guard gap: a
/// value that depends on an address (the block's for a tail, the word's
/// own in a gap) and the process's secret, never zero, so that an
/// underflow of the block above, even one that writes zeros, changes it
/// (hardened.zig checks it at free and at the next malloc).
pub inline fn guardWordOf(addr: usize) usize {
    return ~std.math.rotl(usize, cookieOf(@ptrFromInt(addr)), 29) | 1;
}

/// The last word of a block (hardened.zig's tail): blocks and their sizes
/// are multiples of 16, so it is aligned.
pub inline fn tailOf(block: usize, block_size: usize) *usize {
    return @ptrFromInt(block + block_size - @sizeOf(usize));
}

/// The guard gap that ends at `first_block`, as words.
fn guardGap(first_block: usize) *[guard_gap_bytes / @sizeOf(usize)]usize {
    return @ptrFromInt(first_block - guard_gap_bytes);
}

/// What word `index` of the guard gap before `first_block` holds.
fn guardGapWord(first_block: usize, index: usize) usize {
    return guardWordOf(first_block - guard_gap_bytes + index * @sizeOf(usize));
}

/// Whether the guard gap before `first_block`, a span's first block, still
/// holds its words; true when the span has none. Spans start at slice
/// boundaries: what precedes the first block in its slice is its gap.
pub fn guardGapIntact(first_block: usize) bool {
    if (first_block % layout.slice_size_bytes < guard_gap_bytes) return true;
    var differ: usize = 0;
    for (guardGap(first_block), 0..) |word, index| differ |= word ^ guardGapWord(first_block, index);
    return differ == 0;
}

/// A free list whose link was overwritten: one line and abort.
pub noinline fn corruptedFreeList(block_addr: usize) noreturn {
    os.fatalPointer("malloc(): corrupted free list", block_addr);
}

/// When a span's free list runs dry, a carve links the never-used blocks
/// that end in the OS page where the next one starts (at least that one):
/// a class's span is resident up to the page its blocks reached, not a
/// carve ahead of it. Each class holds a partly used page or more, so what
/// a carve adds beyond the blocks in use is most of the small-block lanes'
/// margin over glibc's peak (bench/LEDGER.md). The hardened lane's carves
/// are bigger, for a random order over more blocks: as many bytes as were
/// carved before (a page at first), up to `shuffled_carve_bytes`.
const shuffled_carve_bytes: usize = 16 * 1024;
const max_shuffled_blocks = shuffled_carve_bytes / layout.min_alignment_bytes;

/// xorshift64*: the hardened lane's cheap randomness (carve order,
/// quarantine eviction). `state` must not be 0.
pub fn nextRandom(state: *u64) u64 {
    var x = state.*;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    state.* = x;
    return x *% 0x2545f4914f6cdd1d;
}

/// Laid out by hand (extern) in two cache lines: the first holds what any
/// thread reads to validate a pointer (free's checks, remote frees
/// included) and is written only when the span is assigned or carved; the
/// second holds what the owner writes on every malloc and free. A thread
/// that frees another heap's block then reads a line the owner is not
/// writing, so the two cores do not pass it back and forth. Aligned to 128
/// bytes so the metadata of slice i is at a shift, not a multiply, from the
/// array start.
///
/// Invariant (checked by `check`): used + (blocks on `free`) +
/// (reserved - capacity) == reserved.
pub const Span = extern struct {
    // Line 0, read by every thread; set when the span is assigned
    // (`assign`) unless said otherwise.
    start: usize align(128) = 0,
    /// The inverse of block_size's odd factor modulo 2^64 (`blockAt`).
    inverse: u64 = 0,
    /// Owning heap (heap.zig), opaque here; null while the span is free.
    heap: ?*anyopaque = null,
    /// Blocks carved so far; blocks at or above this index were never
    /// handed out. Written by the owner when it carves.
    capacity: std.atomic.Value(u32) = .init(0),
    block_size: u32 = 0,
    class: sizeclass.Class = 0,
    /// log2 of block_size's power-of-two factor (`blockAt`).
    rotate: u8 = 0,
    // Segment box.
    /// Slices in this span (on the span's first slice only).
    span_slices: u8 = 0,
    /// Blocks the span can hold.
    reserved: u32 = 0,
    /// When this slice became free (os.nowMs), for delayed purging.
    free_since_ms: u32 = 0,
    /// Link in the owner's stack of swept spans (remote.zig's
    /// `Inbox.swept`), written by the thread that swept the span.
    swept_next: ?*Span = null,

    // Line 1, the owner heap's, on every malloc and free of this span.
    free: ?*Block align(64) = null,
    /// Set bits: where a link's decoded address may not differ from its
    /// block's (`nextFree`): the low 4 (16-byte alignment) and every bit
    /// above the span's aligned region. Set by `assign`.
    link_mask: u64 = 0,
    /// Blocks handed out and not yet given back to this span (in use, or
    /// in flight in some thread's remote list), plus `full_bit` while the
    /// span is off its class's queues for lack of free blocks. One
    /// compare then tells free both "empties now" and "was full": the
    /// value is 1 or negative as an i32.
    used: u32 = 0,
    // Which of the owner's queues holds the span.
    /// In the owner's partial list for its class.
    in_partial: bool = false,
    /// Link in the owner's partial list for this class.
    partial_link: list.Link(Span) = .{},

    pub const full_bit: u32 = 1 << 31;

    comptime {
        std.debug.assert(@sizeOf(Span) == 128);
        std.debug.assert(@offsetOf(Span, "swept_next") < 64);
        std.debug.assert(@offsetOf(Span, "free") == 64);
    }

    /// Prepares a free span for blocks of `class`. The span's memory may hold
    /// stale data from an earlier use; carving overwrites what it needs.
    pub fn assign(span: *Span, heap: *anyopaque, class: sizeclass.Class, start: usize, span_bytes: usize) void {
        std.debug.assert(span.capacity.load(.monotonic) == 0);
        std.debug.assert(span.used == 0);
        const block_size = sizeclass.block_size_bytes[class];
        span.free = null;
        span.block_size = block_size;
        const colored = sizeclass.isColored(class);
        var color = if (colored) colorBytes(start, span_bytes, block_size) else 0;
        if (colored and policy.snapshot.hardened()) {
            if ((span_bytes - color) % block_size >= guard_gap_bytes) color += guard_gap_bytes;
            if (color >= guard_gap_bytes) {
                const first_block = start + color;
                for (guardGap(first_block), 0..) |*word, index| word.* = guardGapWord(first_block, index);
            }
        }
        span.reserved = @intCast((span_bytes - color) / block_size);
        span.rotate = @ctz(block_size);
        span.inverse = oddInverse(block_size >> @intCast(span.rotate));
        span.link_mask = linkMask(start, span_bytes);
        span.start = start + color;
        span.class = class;
        span.in_partial = false;
        span.partial_link = .{};
        span.heap = heap;
        std.debug.assert(span.reserved >= 1);
    }

    /// Returns the span to its free state; every block must be back.
    pub fn reset(span: *Span) void {
        std.debug.assert(span.used == 0);
        std.debug.assert(!span.in_partial);
        span.free = null;
        span.heap = null;
        span.capacity.store(0, .release);
    }

    /// Blocks handed out and not back yet (`used` without `full_bit`).
    pub inline fn usedBlocks(span: *const Span) u32 {
        return span.used & ~full_bit;
    }

    pub inline fn isFull(span: *const Span) bool {
        return span.used & full_bit != 0;
    }

    pub inline fn setFull(span: *Span, full: bool) void {
        span.used = if (full) span.used | full_bit else span.usedBlocks();
    }

    /// Whether blocks are left that were never carved.
    pub inline fn canCarve(span: *const Span) bool {
        return span.capacity.load(.monotonic) < span.reserved;
    }

    /// Links never-used blocks onto the free list (see `shuffled_carve_bytes`).
    /// Returns false when the span is fully carved. `shuffle` (the hardened
    /// lane's random state, else null) zeroes the new blocks (the memory
    /// may be a reused span's) and links them in a random order.
    pub fn carve(span: *Span, shuffle: ?*u64) bool {
        std.debug.assert(span.free == null);
        if (!span.canCarve()) return false;
        const capacity = span.capacity.load(.monotonic);
        const first = span.start + @as(usize, capacity) * span.block_size;
        const end = if (shuffle != null)
            first + std.math.clamp(@as(usize, capacity) * span.block_size, layout.page_size_bytes, shuffled_carve_bytes)
        else
            std.mem.alignForward(usize, first + 1, layout.page_size_bytes);
        const count = @min(span.reserved - capacity, @max(1, (end - first) / span.block_size));
        // Block `index` of the list is block `order[index]` of the carve when
        // shuffled, block `index` otherwise (no order to build).
        var order: [max_shuffled_blocks]u16 = undefined;
        if (shuffle) |state| {
            @memset(@as([*]u8, @ptrFromInt(first))[0 .. count * span.block_size], 0);
            for (order[0..count], 0..) |*slot, index| slot.* = @intCast(index);
            var index = count;
            while (index > 1) : (index -= 1) {
                const other = nextRandom(state) % index;
                std.mem.swap(u16, &order[index - 1], &order[other]);
            }
        }
        const shuffled = shuffle != null;
        for (0..count) |index| {
            const position: usize = if (shuffled) order[index] else index;
            const block: *Block = @ptrFromInt(first + position * span.block_size);
            const next: ?*Block = if (index + 1 == count) null else next: {
                const next_position: usize = if (shuffled) order[index + 1] else index + 1;
                break :next @ptrFromInt(first + next_position * span.block_size);
            };
            block.link = encodeLink(block, next);
            block.cookie = cookieOf(block);
            if (shuffled and span.block_size > @sizeOf(Block)) tailOf(@intFromPtr(block), span.block_size).* = guardWordOf(@intFromPtr(block));
        }
        const head_position: usize = if (shuffled) order[0] else 0;
        span.free = @ptrFromInt(first + head_position * span.block_size);
        // Release: a thread that validates a pointer into the new blocks must
        // see the span's geometry written before it.
        span.capacity.store(capacity + count, .release);
        return true;
    }

    /// The block that starts at `addr` (not 0), or null when `addr` is not
    /// the start of a block ever handed out from this span. Safe on any
    /// slice entry of any live segment, including free spans (capacity 0).
    ///
    /// One multiply tests divisibility and finds the index at once: with
    /// block_size = m * 2^rotate (m odd) and inverse = m^-1 mod 2^64, an
    /// offset that is a multiple q of block_size maps to exactly q. Any
    /// other offset maps above every possible capacity: if its low `rotate`
    /// bits are not zero they rotate to the top; if they are, multiplying
    /// by the inverse is a bijection that sends the multiples of m below
    /// 2^(64 - rotate) onto the smallest values, so a non-multiple lands
    /// above 2^(64 - rotate) / m.
    pub inline fn blockAt(span: *const Span, addr: usize) ?*Block {
        std.debug.assert(addr != 0);
        const capacity = span.capacity.load(.acquire);
        const index = std.math.rotr(u64, (addr -% span.start) *% span.inverse, span.rotate);
        if (index >= capacity) return null;
        const block: *Block = @ptrFromInt(addr);
        return block;
    }

    pub inline fn isFree(block: *const Block) bool {
        return block.cookie == cookieOf(block);
    }

    /// The block after `block` (popped from this span's free list), or null
    /// at the end of the list; a corrupted link aborts.
    pub inline fn nextFree(span: *const Span, block: *const Block) ?*Block {
        const delta = linkDelta(block);
        if (!span.linkFits(delta)) return endOfList(block);
        return @ptrFromInt(delta ^ @intFromPtr(block));
    }

    /// Whether a link whose `linkDelta` is `delta` names a 16-byte aligned
    /// address in this span's aligned region: one test of the bits in
    /// which the two addresses differ. False as well at the end of the list
    /// (whose bits all differ), which `endOfList` tells apart from a
    /// corrupted link off the hot path.
    pub inline fn linkFits(span: *const Span, delta: usize) bool {
        return delta & span.link_mask == 0;
    }

    /// Owner-side push of a block coming back (local free or collect);
    /// `cookie` is `cookieOf(block)`.
    pub inline fn pushFree(span: *Span, block: *Block, cookie: usize) void {
        block.link = encodeLink(block, span.free);
        block.cookie = cookie;
        span.free = block;
    }

    pub inline fn usableBytes(span: *const Span) usize {
        return span.block_size;
    }

    /// Asserts the span's invariant (safety builds only; a no-op
    /// otherwise): every free block is a carved block of this span, and
    /// used + free + never carved == reserved.
    pub fn check(span: *const Span) void {
        if (!build_options.safety) return;
        const capacity = span.capacity.load(.monotonic);
        std.debug.assert(capacity <= span.reserved);
        std.debug.assert(span.usedBlocks() <= capacity);
        var free_count: u32 = 0;
        var cursor = span.free;
        while (cursor) |block| : (cursor = span.nextFree(block)) {
            std.debug.assert(span.blockAt(@intFromPtr(block)) == block);
            std.debug.assert(isFree(block));
            free_count += 1;
            std.debug.assert(free_count <= capacity);
        }
        std.debug.assert(span.usedBlocks() + free_count == capacity);
    }
};

fn testSpan(memory: []align(layout.page_size_bytes) u8, class: sizeclass.Class) Span {
    var span: Span = .{};
    var heap_token: u8 = 0;
    span.assign(&heap_token, class, @intFromPtr(memory.ptr), memory.len);
    return span;
}

test "carve links every block once and stops at the span end" {
    const span_bytes = layout.slice_size_bytes;
    const memory = try std.testing.allocator.alignedAlloc(u8, .fromByteUnits(layout.page_size_bytes), span_bytes);
    defer std.testing.allocator.free(memory);
    const class = sizeclass.classOf(3000);
    var span = testSpan(memory, class);
    var total: usize = 0;
    while (span.free != null or span.carve(null)) {
        const block = span.free.?;
        span.free = span.nextFree(block);
        span.used += 1;
        try std.testing.expect(span.blockAt(@intFromPtr(block)) == block);
        span.check();
        total += 1;
    }
    try std.testing.expectEqual(@as(usize, span_bytes / sizeclass.block_size_bytes[class]), total);
}

test "a shuffled carve zeroes and links every block once, in another order, each tail marked" {
    const span_bytes = layout.slice_size_bytes;
    const memory = try std.testing.allocator.alignedAlloc(u8, .fromByteUnits(layout.page_size_bytes), span_bytes);
    defer std.testing.allocator.free(memory);
    @memset(memory, 0xee);
    var span = testSpan(memory, sizeclass.classOf(64));
    var state: u64 = 0x12345;
    try std.testing.expect(span.carve(&state));
    var seen: usize = 0;
    var in_order = true;
    var previous: usize = 0;
    while (span.free) |block| {
        const addr = @intFromPtr(block);
        if (addr < previous) in_order = false;
        previous = addr;
        for (memory[addr - @intFromPtr(memory.ptr) + 16 ..][0..40]) |byte| try std.testing.expectEqual(@as(u8, 0), byte);
        const tail = tailOf(addr, 64).*;
        try std.testing.expectEqual(guardWordOf(addr), tail);
        try std.testing.expect(tail != 0);
        span.free = span.nextFree(block);
        span.used += 1;
        seen += 1;
    }
    // A first carve links one page of blocks.
    try std.testing.expectEqual(@as(usize, layout.page_size_bytes / 64), seen);
    try std.testing.expect(!in_order);
    span.check();
}

test "each carve links the blocks that end in the page where it starts, or one" {
    const span_bytes = layout.slice_size_bytes;
    const memory = try std.testing.allocator.alignedAlloc(u8, .fromByteUnits(layout.page_size_bytes), span_bytes);
    defer std.testing.allocator.free(memory);
    var span = testSpan(memory, sizeclass.classOf(48));
    var carved: [5]u32 = undefined;
    for (&carved) |*capacity| {
        try std.testing.expect(span.carve(null));
        span.free = null; // as if every block went out
        capacity.* = span.capacity.load(.monotonic);
    }
    // Blocks of 48 bytes: 85 end in the first page (at 4080); the 86th
    // straddles into the second, whose blocks then end at 8160; and so on.
    try std.testing.expectEqualSlices(u32, &.{ 85, 86, 170, 171, 256 }, &carved);
}

test "a shuffled carve links as many bytes as were carved before, from a page up to 16 KiB" {
    const span_bytes = layout.slice_size_bytes;
    const memory = try std.testing.allocator.alignedAlloc(u8, .fromByteUnits(layout.page_size_bytes), span_bytes);
    defer std.testing.allocator.free(memory);
    var span = testSpan(memory, sizeclass.classOf(64));
    var state: u64 = 7;
    var carved: [6]u32 = undefined;
    for (&carved) |*capacity| {
        try std.testing.expect(span.carve(&state));
        span.free = null; // as if every block went out
        capacity.* = span.capacity.load(.monotonic);
    }
    // Blocks of 64 bytes: 4, 4, 8, 16, 16, 16 KiB.
    try std.testing.expectEqualSlices(u32, &.{ 64, 128, 256, 512, 768, 1024 }, &carved);
}

test "blockAt rejects interior, tail and uncarved pointers" {
    const span_bytes = layout.slice_size_bytes;
    const memory = try std.testing.allocator.alignedAlloc(u8, .fromByteUnits(layout.page_size_bytes), span_bytes);
    defer std.testing.allocator.free(memory);
    var span = testSpan(memory, sizeclass.classOf(48));
    const base = @intFromPtr(memory.ptr);
    try std.testing.expect(span.blockAt(base) == null); // nothing carved yet
    try std.testing.expect(span.carve(null));
    try std.testing.expect(span.blockAt(base) != null);
    try std.testing.expect(span.blockAt(base + 48) != null);
    try std.testing.expect(span.blockAt(base + 16) == null);
    try std.testing.expect(span.blockAt(base + 47) == null);
    try std.testing.expect(span.blockAt(base - 48) == null);
    try std.testing.expect(span.blockAt(base + span_bytes) == null);
}

test "blockAt finds exactly the block starts of every class" {
    const slice_start = layout.segment_size_bytes + 7 * layout.slice_size_bytes;
    for (0..sizeclass.class_count) |c| {
        const size: u64 = sizeclass.block_size_bytes[c];
        const span_bytes: u64 = @as(u64, sizeclass.span_slices[c]) * layout.slice_size_bytes;
        var span: Span = .{};
        var heap_token: u8 = 0;
        span.assign(&heap_token, @intCast(c), slice_start, span_bytes);
        // A color costs no block, and stays within the first page.
        try std.testing.expectEqual(span_bytes / size, span.reserved);
        try std.testing.expect((span.start - slice_start) % cache_line_bytes == 0);
        try std.testing.expect(span.start - slice_start < layout.page_size_bytes);
        span.capacity.store(span.reserved, .monotonic);
        var offset: u64 = 0;
        while (offset < span_bytes + size) : (offset += 16) {
            const addr = slice_start + offset;
            const index = (addr -% span.start) / size;
            const is_block = addr >= span.start and (addr - span.start) % size == 0 and index < span.reserved;
            try std.testing.expectEqual(is_block, span.blockAt(addr) != null);
        }
        try std.testing.expect(span.blockAt(span.start + 8) == null);
        try std.testing.expect(span.blockAt(span.start - size) == null);
    }
}

test "medium spans of one class start at different cache lines" {
    const class = sizeclass.classOf(20 * 1024);
    const span_bytes = @as(usize, sizeclass.span_slices[class]) * layout.slice_size_bytes;
    var seen = std.StaticBitSet(max_colors).initEmpty();
    for (1..64) |slice| {
        var span: Span = .{};
        var heap_token: u8 = 0;
        const start = layout.segment_size_bytes + slice * layout.slice_size_bytes;
        span.assign(&heap_token, class, start, span_bytes);
        seen.set((span.start - start) / cache_line_bytes);
    }
    try std.testing.expect(seen.count() >= 32);
    // Small blocks are not colored.
    var small: Span = .{};
    var heap_token: u8 = 0;
    small.assign(&heap_token, sizeclass.classOf(48), 3 * layout.slice_size_bytes, layout.slice_size_bytes);
    try std.testing.expectEqual(@as(usize, 3 * layout.slice_size_bytes), small.start);
}

test "a link may point anywhere in the span's region, never outside it" {
    const start = 5 * layout.slice_size_bytes;
    try std.testing.expectEqual(~@as(u64, 0xffff) | 15, linkMask(start, layout.slice_size_bytes));
    // Slices 5..7 lie in the aligned 256 KiB at slice 4.
    try std.testing.expectEqual(~@as(u64, 0x3ffff) | 15, linkMask(start, 3 * layout.slice_size_bytes));
}
