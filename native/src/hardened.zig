//! Hardened box: what the `hardened` lane (HZ_POLICY=hardened) adds to a
//! span block's life, off the hot path (thread.zig leaves the hot path's
//! heap slot null in this lane, so every malloc and free comes here
//! through alloc.zig's out-of-line paths):
//!
//!   malloc — the block is taken one class up, so that its last 8 bytes
//!            (the tail) hold the requested size and how it was asked for
//!            (malloc, C++ new or new[]), and at least one canary byte
//!            follows the request; a block whose bytes past the
//!            first 16 are not all zero, or whose tail lost its mark
//!            (below), was written after its free: abort. The segment's
//!            allocated bitmap marks it. The block the heap handed out
//!            before must still have its canaries, and what lies below it
//!            must be intact (a write past it or before it, before any
//!            free, aborts here).
//!   free   — the bitmap must say allocated and the tail must not read
//!            as freed (a second free aborts, even after the block was
//!            handed out again while it waits in quarantine, and of two
//!            threads freeing it at once one aborts: a free claims the
//!            block by its tail); the tail and every canary byte must
//!            be intact, and so must the zero room past the canaries and
//!            the neighbours where the block meets them (an overflow or
//!            an underflow aborts, naming the block); a C++ delete must
//!            match the new that made the block (form and size); the
//!            block is zeroed, its tail marked, and it waits in the
//!            heap's quarantine before it can be reused.
//!
//! A block that is not live keeps a mark in its tail that depends on its
//! address and the process's secret (`span_box.guardWordOf`), so a write
//! of any bytes, zeros included, over the tail of a free neighbour shows.
//! Spans of this lane are carved zeroed and in a random order (heap.zig),
//! segments keep a guard page between their metadata and the first span
//! (segment.zig), and large blocks get a guard page and, freed, are
//! quarantined out of reach (large.zig).
const std = @import("std");
const hash = @import("hash.zig");
const heap_box = @import("heap.zig");
const os = @import("os.zig");
const segment_box = @import("segment.zig");
const sizeclass = @import("sizeclass.zig");
const span_box = @import("span.zig");
const thread = @import("thread.zig");
const Span = span_box.Span;
const Block = span_box.Block;
const Segment = segment_box.Segment;

/// The tail word and the one canary byte every block keeps past the request.
pub const overhead_bytes: usize = @sizeOf(usize) + 1;

/// Bytes a block of the hot path's free list uses (link and cookie): the
/// only ones a freed, zeroed block may hold when it is taken again.
const link_bytes: usize = @sizeOf(Block);

/// The largest block whose whole body is checked for writes after free at
/// malloc; larger blocks are checked over their first this many bytes (a
/// use after free most often writes a pointer or a header there).
const checked_bytes: usize = 256;

/// How a block was asked for. A C++ `delete` must release a block of
/// `new`, `delete[]` one of `new[]`; a block of malloc (or of a program's
/// own operator new built on it) takes any release.
pub const Origin = enum(u2) { malloc, new, new_array, _ };

/// What a release asks for: `free` (the default), `free_sized`, or a C++
/// delete and its form; for the sized forms, the size the program passes
/// (what it asked malloc or `new` for; `unsized` for the others). One
/// word, so that passing it down to the out-of-line free costs one
/// register.
pub const Release = packed struct(u64) {
    size: u62 = unsized,
    origin: Origin = .malloc,

    pub const unsized = std.math.maxInt(u62);

    /// A sized delete's size; one that no block can have reads as a
    /// mismatch, not as unsized.
    pub fn sized(origin: Origin, size: usize) Release {
        return .{ .origin = origin, .size = std.math.cast(u62, size) orelse unsized - 1 };
    }

    /// The size an entry point without one (free, unsized delete) passes
    /// to `of`. A sized delete of this many bytes reads as unsized: no
    /// block can be that large.
    pub const no_size: usize = std.math.maxInt(usize);

    /// The release of an entry point of `origin` that passes `size`, or
    /// `no_size`. Free's hit path carries the two in registers and only its
    /// exits out of line build the word: built up front, the sized
    /// delete's hit path kept it in a spilled register.
    pub fn of(origin: Origin, size: usize) Release {
        if (size == no_size) return .{ .origin = origin };
        return sized(origin, size);
    }
};

/// The tail holds the requested size in its low bits and the origin in
/// the top two, the whole xor the block's secret.
const origin_shift: u6 = 62;
const size_mask: usize = (@as(usize, 1) << origin_shift) - 1;

/// A block's tail word (`span_box.tailOf`, which a hardened carve marks).
const tailOf = span_box.tailOf;

/// Per block, different in every block and every process: the tail is
/// stored xor this, the canary bytes are derived from it.
fn secretOf(block: usize) usize {
    return std.math.rotl(usize, span_box.cookieOf(@ptrFromInt(block)), 29);
}

/// The canary byte of a block: one of 0x80-0xFE, chosen by its secret.
/// The range leaves out what overflows most often write, so that those
/// are always caught: ASCII text and its NUL terminator (a string copied
/// one byte too long), and 0xFF (memset to -1). Any other byte value is
/// caught unless it matches the secret's choice, 1 time in 127.
fn canaryByte(block: usize) u8 {
    const choices: u8 = 0xFF - 0x80;
    // Every bit of the secret counts: its low bits alone change only every
    // 32 GiB of address.
    const mixed: u8 = @intCast(hash.topBits(secretOf(block), 8));
    // Scaled, not taken modulo: a multiply instead of a division.
    return 0x80 + @as(u8, @intCast((@as(u16, mixed) * choices) >> 8));
}

/// The class for a hardened request of `size` bytes (null: a large block),
/// aligned to `alignment` (16 for plain malloc).
pub fn classFor(size: usize, alignment: usize) ?sizeclass.Class {
    if (size > sizeclass.medium_max_bytes - overhead_bytes) return null;
    // Every class is 16-byte aligned: plain malloc needs no search.
    if (alignment <= sizeclass.min_alignment_bytes) return sizeclass.classOf(size + overhead_bytes);
    return sizeclass.alignedClassOf(size + overhead_bytes, alignment);
}

/// Aborts unless the zeroed block at `addr` still reads zero from byte
/// `from` on (up to `checked_bytes`, short of its tail) and its tail still
/// holds its mark.
fn checkUnwritten(addr: usize, block_size: usize, from: usize) void {
    const to = @min(block_size - @sizeOf(usize), checked_bytes);
    if (!allZero(addr + from, to -| from) or !freeTailIntact(addr, block_size)) os.fatalPointer("malloc(): write after free", addr);
}

/// Whether the `len` bytes at `addr` are all zero: in 16-byte unaligned
/// loads that may overlap, without a branch per byte; up to 64 bytes (what
/// free checks) without a loop.
fn allZero(addr: usize, len: usize) bool {
    const bytes: [*]const u8 = @ptrFromInt(addr);
    if (len < 16) {
        if (len < 8) {
            for (bytes[0..len]) |byte| if (byte != 0) return false;
            return true;
        }
        return std.mem.readInt(u64, bytes[0..8], .little) | std.mem.readInt(u64, bytes[len - 8 ..][0..8], .little) == 0;
    }
    const Chunk = @Vector(2, u64);
    const chunkAt = struct {
        fn load(at: [*]const u8) Chunk {
            return @as(*align(1) const Chunk, @ptrCast(at)).*;
        }
    }.load;
    const last = len - 16;
    var any = chunkAt(bytes) | chunkAt(bytes + @min(16, last)) | chunkAt(bytes + @min(32, last)) | chunkAt(bytes + last);
    var offset: usize = 48;
    while (offset < last) : (offset += 16) any |= chunkAt(bytes + offset);
    return @reduce(.Or, any) == 0;
}

/// How far past a block, either way, free looks for bytes that no one may
/// write: the room past the block's canaries, and a free neighbour's
/// bytes next to the block. An overflow or underflow of up to this many
/// bytes that skips the canaries (one byte written 32 past the end) or
/// reaches past the block into a free one is caught at the next free of
/// either block.
const guard_bytes: usize = 64;

/// Canary bytes after the request: up to this many, whatever room the
/// class leaves. An overflow writes on from the end of the request, so the
/// first bytes past it catch one of any length; the tail catches one that
/// reaches the end of the block.
const max_canary_bytes: usize = 16;

/// A block's canary bytes: from the end of the request, at most
/// `max_canary_bytes`, never into the tail. At least one (`overhead_bytes`).
fn canariesOf(block: usize, size: usize, block_size: usize) []u8 {
    const body: [*]u8 = @ptrFromInt(block);
    const room = block_size - @sizeOf(usize) - size;
    std.debug.assert(room >= 1);
    return body[size..][0..@min(room, max_canary_bytes)];
}

fn canaryPattern(value: u8) u64 {
    return @as(u64, value) * (std.math.maxInt(u64) / 255);
}

/// The bits of the 8-byte word that ends with the canaries that are
/// canary bytes (fewer than 8 of them: the top ones). That word lies in
/// the block: canaries end at the tail, 8 bytes before the end of a block
/// of at least 16.
fn shortMask(len: usize) u64 {
    std.debug.assert(len >= 1 and len < 8);
    return ~@as(u64, 0) << @intCast(64 - 8 * len);
}

/// Writes the canaries with whole words: two overlapping ones, or the word
/// that ends with them, its other bytes (the request's last) kept.
fn fillCanaries(canaries: []u8, value: u8) void {
    const pattern = canaryPattern(value);
    const len = canaries.len;
    if (len >= 8) {
        std.mem.writeInt(u64, canaries[0..8], pattern, .little);
        std.mem.writeInt(u64, canaries[len - 8 ..][0..8], pattern, .little);
        return;
    }
    const word: *align(1) u64 = @ptrCast(canaries.ptr + len - 8);
    word.* = (word.* & ~shortMask(len)) | (pattern & shortMask(len));
}

/// Whether the canaries all read `value`: no loop over single bytes, whose
/// count varies from block to block (branches on it mispredict).
fn canariesIntact(canaries: []const u8, value: u8) bool {
    const pattern = canaryPattern(value);
    const len = canaries.len;
    if (len >= 8) {
        return std.mem.readInt(u64, canaries[0..8], .little) == pattern and
            std.mem.readInt(u64, canaries[len - 8 ..][0..8], .little) == pattern;
    }
    const word: *align(1) const u64 = @ptrCast(canaries.ptr + len - 8);
    return (word.* ^ pattern) & shortMask(len) == 0;
}

/// A block of `class` for a request of `size` bytes, or null (errno ENOMEM).
pub fn malloc(size: usize, class: sizeclass.Class, origin: Origin) ?*anyopaque {
    const heap = thread.currentOrCreateHardened() orelse {
        os.setErrno(.NOMEM);
        return null;
    };
    // A use right after a free writes into one of the last blocks freed,
    // still in quarantine: their first words must still be zero.
    var written: usize = 0;
    for (heap.recent.blocks) |block| written |= block.link | block.cookie;
    if (written != 0) findWrittenRecent(heap);
    // A write past the block allocated last shows in its canary bytes.
    if (heap.last_allocated.block != null) checkLastAllocated(heap);
    const ptr = heap.alloc(class) orelse return null;
    const addr = @intFromPtr(ptr);
    const block_size: usize = sizeclass.block_size_bytes[class];
    const body: [*]u8 = @ptrCast(ptr);
    checkUnwritten(addr, block_size, link_bytes);
    @memset(body[0..link_bytes], 0);
    // Canary and tail first, then the bit: a free of the next block checks
    // this one's tail as soon as the bit says it is live (checkNeighbours).
    const canary = canaryByte(addr);
    fillCanaries(canariesOf(addr, size, block_size), canary);
    const tail = writeTail(addr, block_size, .{ .size = size, .origin = origin });
    if (!Segment.of(addr).markAllocated(addr)) span_box.corruptedFreeList(addr);
    heap.last_allocated = .{ .block = @ptrCast(@alignCast(ptr)), .size = size, .block_size = block_size, .tail = tail, .canary = canary };
    return ptr;
}

/// The check of the block this heap allocated last: its tail and canaries
/// as malloc wrote them, read without a lookup (its segment is still
/// mapped: `Heap.last_allocated`), then what lies below it. Anything else
/// (the block was freed or reused since, or damaged) takes `checkLive`,
/// which tells them apart.
fn checkLastAllocated(heap: *heap_box.Heap) void {
    const last = heap.last_allocated;
    const addr = @intFromPtr(last.block.?);
    if (@atomicLoad(usize, tailOf(addr, last.block_size), .monotonic) == last.tail and
        canariesIntact(canariesOf(addr, last.size, last.block_size), last.canary))
    {
        // Live and in one of this heap's spans: a write before it shows
        // in the word below it, as one past it in its canaries.
        return checkWordBelow(Segment.of(addr).spanOf(addr), addr);
    }
    checkLive(heap, addr, "malloc(): buffer overflow detected");
}

/// Aborts naming the recent block whose first words were written (the
/// oldest, should the program have put the words back meanwhile).
fn findWrittenRecent(heap: *const heap_box.Heap) noreturn {
    for (heap.recent.blocks) |block| {
        if (block.link != 0 or block.cookie != 0) os.fatalPointer("malloc(): write after free", @intFromPtr(block));
    }
    os.fatalPointer("malloc(): write after free", @intFromPtr(heap.recent.blocks[heap.recent.next % heap_box.recent_slots]));
}

/// What a live block's tail says.
pub const Tail = struct { size: usize, origin: Origin };

/// Writes `tail` into the block at `addr`; returns the word written.
fn writeTail(addr: usize, block_size: usize, tail: Tail) usize {
    const word = (tail.size | @as(usize, @intFromEnum(tail.origin)) << origin_shift) ^ secretOf(addr);
    tailOf(addr, block_size).* = word;
    return word;
}

/// A live block's tail, or null when it or one of the block's canary
/// bytes was overwritten.
fn intactTail(span: *const Span, block: *const Block) ?Tail {
    const addr = @intFromPtr(block);
    return tailFrom(span, addr, tailOf(addr, span.block_size).*);
}

/// `intactTail` of the block at `addr` whose tail word read `stored`.
fn tailFrom(span: *const Span, addr: usize, stored: usize) ?Tail {
    const block_size: usize = span.block_size;
    const word = stored ^ secretOf(addr);
    const size = word & size_mask;
    if (size > block_size - overhead_bytes) return null;
    if (!canariesIntact(canariesOf(addr, size, block_size), canaryByte(addr))) return null;
    // Damage that leaves the size plausible but sets both origin bits
    // reads as a fourth origin, which no delete matches.
    return .{ .size = size, .origin = @enumFromInt(@as(u2, @intCast(word >> origin_shift))) };
}

/// The requested size of a live block, or null when its tail or one of
/// its canary bytes was overwritten.
pub fn intactSize(span: *const Span, block: *const Block) ?usize {
    const tail = intactTail(span, block) orelse return null;
    return tail.size;
}

/// The usable size of a live block (what was asked for): `intactSize`, or
/// an abort that names the block. Whether the block is live is the
/// caller's check (alloc.zig's classify reads the bitmap in this lane).
pub fn usableSize(span: *const Span, block: *const Block, comptime operation: []const u8) usize {
    return checkedTail(span, block, operation).size;
}

/// A live block's tail, or an abort that names the block.
pub fn checkedTail(span: *const Span, block: *const Block, comptime operation: []const u8) Tail {
    return intactTail(span, block) orelse os.fatalPointer(operation ++ ": buffer overflow detected", @intFromPtr(block));
}

/// Aborts naming the block when a C++ delete does not match the new that
/// made it: the other form (delete of a new[] block, delete[] of a new
/// one), or a size other than the one asked for (`new(0)` asked for 1);
/// or when free_sized names another size than malloc's block was asked
/// for (a block of new takes it, as it takes free).
noinline fn checkRelease(addr: usize, tail: Tail, release: Release) void {
    if (release.origin == .malloc) {
        if (tail.origin == .malloc and release.size != tail.size) os.fatalPointer("free_sized(): size mismatch", addr);
        return;
    }
    if (tail.origin == .malloc) return;
    if (tail.origin != release.origin) switch (release.origin) {
        .new => os.fatalPointer("operator delete: block of new[]", addr),
        .new_array => os.fatalPointer("operator delete[]: block of new", addr),
        .malloc, _ => unreachable,
    };
    if (release.size == Release.unsized) return;
    if (@max(release.size, 1) != tail.size) switch (release.origin) {
        .new => os.fatalPointer("operator delete: size mismatch", addr),
        .new_array => os.fatalPointer("operator delete[]: size mismatch", addr),
        .malloc, _ => unreachable,
    };
}

/// realloc of a live block (`old` its intact tail) to
/// `size` in place: true when done, false when the block must move (it
/// does not fit, it would waste more than half, or the span is another
/// thread's). The bytes the request gives up are zeroed, as a free would,
/// and the canaries and the tail follow the new size. Only the span's
/// owner may: only it checks a neighbour's canaries (`checkNeighbours`), so
/// no one reads them half rewritten.
pub fn resizeInPlace(span: *const Span, block: *Block, old: Tail, size: usize) bool {
    const block_size: usize = span.block_size;
    if (size > block_size - overhead_bytes or size * 2 < block_size) return false;
    const heap = thread.currentHardened() orelse return false;
    if (span.heap != @as(*anyopaque, heap)) return false;
    const addr = @intFromPtr(block);
    const body: [*]u8 = @ptrCast(block);
    @memset(canariesOf(addr, old.size, block_size), 0);
    if (size < old.size) @memset(body[size..old.size], 0);
    fillCanaries(canariesOf(addr, size, block_size), canaryByte(addr));
    _ = writeTail(addr, block_size, .{ .size = size, .origin = old.origin });
    return true;
}

/// What a block that is not live keeps in its tail (`span_box.guardWordOf`:
/// a carve writes it, `free` claims the block by writing it and leaves it,
/// but for a block of `link_bytes`): a value no live tail holds
/// (it decodes to no size), which no overflow writes by chance (it depends
/// on the block's secret) and no zero write leaves in place.
fn freeingMark(block: usize) usize {
    return span_box.guardWordOf(block);
}

/// Frees a span block (already found to be a block of `span` that is not
/// on a free list): checks, zeroes, quarantines. A free claims the block
/// by turning its tail from the live word into its mark in one
/// compare-and-swap (of two racing frees, exactly one succeeds), then
/// zeroes it. Only the span's owner clears the block's bit (segment.zig):
/// at once for its own free, after the zeroing, so that a block whose bit
/// reads clear is zero past its link and cookie (`checkFree`); at its
/// collect for a block another thread freed, which meanwhile reads as
/// being freed (`freedUncollected`). The mark stays until malloc hands the
/// block out (but for a block of `link_bytes`, below).
pub fn free(span: *Span, block: *Block, release: Release) void {
    const addr = @intFromPtr(block);
    const segment = Segment.of(addr);
    const tail_at = tailOf(addr, span.block_size);
    const stored = @atomicLoad(usize, tail_at, .monotonic);
    if (!segment.isAllocated(addr) or freedUncollected(span, addr, stored)) os.fatalPointer("free(): double free detected", addr);
    const tail = tailFrom(span, addr, stored) orelse os.fatalPointer("free(): buffer overflow detected", addr);
    if (release != Release{}) checkRelease(addr, tail, release);
    checkRoom(span, addr, tail.size);
    const maybe_heap = thread.heapForFree();
    const own_span = maybe_heap != null and span.heap == @as(*anyopaque, maybe_heap.?);
    if (own_span) checkNeighbours(span, addr);
    // Acquire and release: the zeroing's stores stay after the claim, so a
    // check that reads zeroed canaries then reads the mark (`checkLiveAt`).
    if (@cmpxchgStrong(usize, tail_at, stored, freeingMark(addr), .acq_rel, .monotonic) != null) {
        os.fatalPointer("free(): double free detected", addr);
    }
    // Zeroed while the bit still says live (with the tail marked, checks
    // skip it), so that a block whose bit reads clear is zero past its
    // link and cookie (`checkFree`).
    @memset(@as([*]u8, @ptrCast(block))[0 .. span.block_size - @sizeOf(usize)], 0);
    if (own_span and !segment.clearAllocated(addr)) os.fatalPointer("free(): double free detected", addr);
    // A block of `link_bytes` has no tail of its own: its mark lies where
    // a free list keeps the cookie, which a freed block holds at zero until
    // it leaves quarantine. It goes from marked to zero in one store after
    // the zeroing (and, in the owner's free, after the bit is clear);
    // `freedUncollected` reads either as freed.
    if (span.block_size <= link_bytes) @atomicStore(usize, tail_at, 0, .release);
    const heap = maybe_heap orelse {
        // No heap can be had (out of memory, or the thread is past its
        // exit handler): no quarantine, straight back to the owner.
        heap_box.freeWithoutHeap(span, block);
        return;
    };
    heap.counters.class_frees[span.class].add(1);
    if (!own_span) heap.counters.remote_free_count.add(1);
    // Its canaries were just checked: the next malloc need not.
    if (heap.last_allocated.block == block) heap.last_allocated = .{};
    const evicted = heap.quarantineBlock(block) orelse return;
    // Out of quarantine: a write since its free into the words `release`
    // overwrites shows now. One past them shows when malloc takes the
    // block again (`checkUnwritten`); reading the rest of a block that
    // left the cache long ago here cost more than the rest of free.
    if (evicted.link | evicted.cookie != 0) os.fatalPointer("malloc(): write after free", @intFromPtr(evicted));
    heap.release(evicted);
}

/// Aborts naming the block at `addr` (live, of `size` requested bytes)
/// when the room between its canaries and its tail, which malloc left
/// zero, was written (its first `guard_bytes`).
fn checkRoom(span: *const Span, addr: usize, size: usize) void {
    const from = size + canariesOf(addr, size, span.block_size).len;
    const to = @min(span.block_size - @sizeOf(usize), from + guard_bytes);
    if (!allZero(addr + from, to -| from)) os.fatalPointer("free(): buffer overflow detected", addr);
}

/// An underflow of the block at `addr` lands in its lower neighbour, or
/// in the gap before a span's first block (`checkBelow`); an overflow past
/// its canaries and tail lands in its upper neighbour, which must read as
/// a free block (`checkFree`) where the block meets it when it is free.
/// Only the span's owner may check: only it hands the span's blocks out,
/// so while it reads, a neighbour can be freed (see `free` for the order)
/// but not freed and handed out again, which on another thread would read
/// as damage with the bit set.
fn checkNeighbours(span: *const Span, addr: usize) void {
    checkBelow(span, addr, "free(): buffer underflow detected");
    const block_size: usize = span.block_size;
    // A block past the carved ones may hold what an earlier span left.
    const upper = addr + block_size;
    if (upper < span.start + @as(usize, span.capacity.load(.monotonic)) * block_size and !Segment.of(addr).isAllocated(upper)) {
        checkFree(upper, link_bytes, @max(link_bytes, @min(block_size - @sizeOf(usize), link_bytes + guard_bytes)), addr, "free(): buffer overflow detected");
    }
}

/// Aborts naming `addr` (a block of `span`, owned by the caller's heap)
/// when what lies right below it was written: a live lower neighbour's
/// tail and canaries must be intact; a free one's tail must be its mark
/// and its last `guard_bytes` must read as a free block's (`checkFree`);
/// the guard gap before a span's first block (`span_box.guard_gap_bytes`)
/// must hold its words.
fn checkBelow(span: *const Span, addr: usize, comptime message: []const u8) void {
    const block_size: usize = span.block_size;
    if (addr == span.start) {
        if (!span_box.guardGapIntact(addr)) os.fatalPointer(message, addr);
        return;
    }
    const lower = addr - block_size;
    if (Segment.of(addr).isAllocated(lower)) return checkLiveAt(lower, addr, message);
    // The bytes of the lower block next to this one: its tail, and before
    // it up to `guard_bytes` of its body.
    if (!freeTailIntact(lower, block_size)) os.fatalPointer(message, addr);
    const to = block_size - @sizeOf(usize);
    checkFree(lower, @max(link_bytes, to -| guard_bytes), to, addr, message);
}

/// `checkBelow` at malloc, for the block allocated last, kept short (it
/// runs at every malloc): only the word right below the block, where an
/// underflow lands first, must be intact: a free lower neighbour's tail
/// mark, a live one's tail decoding to a size its block can hold, or the
/// guard gap before a span's first block. Blocks of `link_bytes` have no
/// tail below them to check.
fn checkWordBelow(span: *const Span, addr: usize) void {
    const block_size: usize = span.block_size;
    const message = "malloc(): buffer underflow detected";
    if (addr == span.start) {
        if (!span_box.guardGapIntact(addr)) os.fatalPointer(message, addr);
        return;
    }
    if (block_size <= link_bytes) return;
    const lower = addr - block_size;
    const tail = tailOf(lower, block_size);
    const word = @atomicLoad(usize, tail, .monotonic);
    if (word == freeingMark(lower)) return;
    if (Segment.of(addr).isAllocated(lower)) {
        // Read before the bit: a live tail, or one a free is replacing
        // with its mark, which decodes to no size and was read as such.
        if ((word ^ secretOf(lower)) & size_mask > block_size - overhead_bytes) os.fatalPointer(message, addr);
        return;
    }
    // Free: its tail was marked before its bit was cleared, so it reads
    // marked now unless it was written.
    if (@atomicLoad(usize, tail, .acquire) != freeingMark(lower)) os.fatalPointer(message, addr);
}

/// Whether the block at `block` (not live) still has its tail mark
/// (`freeingMark`); a block of `link_bytes` has no tail of its own.
fn freeTailIntact(block: usize, block_size: usize) bool {
    if (block_size <= link_bytes) return true;
    return @atomicLoad(usize, tailOf(block, block_size), .monotonic) == freeingMark(block);
}

/// What a free block's link may decode to: the end of a list (0), or a
/// block of some segment (a remote chain's next block may lie in another
/// span, even another heap's).
fn validLink(next: usize) bool {
    return next == 0 or (next % sizeclass.min_alignment_bytes == 0 and segment_box.contains(next));
}

/// Aborts naming `addr` unless the free block at `block` reads as every
/// free block of this lane does: its link and cookie zero (zeroed, or in
/// quarantine) or as a free list or a remote chain wrote them, and its
/// bytes `from` to `to` zero (a free block is zeroed before its bit is
/// cleared, and carved zeroed). Writes by other threads that hand it on
/// change its link and cookie only from zero to such values.
fn checkFree(block: usize, from: usize, to: usize, addr: usize, comptime message: []const u8) void {
    const free_block: *const Block = @ptrFromInt(block);
    const link_ok = free_block.link == 0 or validLink(span_box.decodeLink(free_block));
    const cookie_ok = free_block.cookie == 0 or Span.isFree(free_block);
    if (!link_ok or !cookie_ok or !allZero(block + from, to -| from)) os.fatalPointer(message, addr);
}

/// Aborts naming `addr` when `block` is live and its tail or a canary byte
/// is damaged. Another thread may be freeing it: its free claims the tail
/// (the mark) first, then zeroes the block (and a block of `link_bytes`
/// then its tail, the cookie word), and the bit stays set until the owner
/// collects it (`free`); so damage counts only while the bit is set and
/// the tail does not read as freed (`freedUncollected`): damaged canaries
/// are confirmed by reading the tail again, then the bit. Read the other
/// way round, a free that ended between the two reads looked like a live
/// block with its tail overwritten (a correct program aborted, 3 times in
/// 95 runs of a two-thread benchmark beside a busy CPU: bench/LEDGER.md).
fn checkLiveAt(block: usize, addr: usize, comptime message: []const u8) void {
    const segment = Segment.of(block);
    if (!segment.isAllocated(block)) return;
    const span = segment.spanOf(block);
    const tail = tailOf(block, span.block_size);
    if (freedUncollected(span, block, @atomicLoad(usize, tail, .monotonic))) return;
    if (intactTail(span, @ptrFromInt(block)) != null) return;
    if (!freedUncollected(span, block, @atomicLoad(usize, tail, .acquire)) and segment.isAllocated(block)) os.fatalPointer(message, addr);
}

/// Whether the tail word `word` of `span`'s block at `block`, whose bit
/// reads set, says the block was freed (claimed, being zeroed, or waiting
/// for its owner to collect it): its mark, or for a block of `link_bytes`
/// (whose tail is the cookie word) the zero its free leaves there or the
/// cookie a remote list writes. No live tail holds any of these.
fn freedUncollected(span: *const Span, block: usize, word: usize) bool {
    if (word == freeingMark(block)) return true;
    return span.block_size <= link_bytes and (word == 0 or word == span_box.cookieOf(@ptrFromInt(block)));
}

/// `checkLiveAt` for a block `heap` handed out earlier, which may have
/// been freed since, its span retired or its segment released: unless the
/// address still lies in a span of `heap` (so that, as for
/// `checkNeighbours`, only this thread can hand it out again), it is skipped.
/// (Only this heap's thread releases this heap's segments.)
fn checkLive(heap: *const heap_box.Heap, block: usize, comptime message: []const u8) void {
    if (!segment_box.contains(block)) return;
    if (Segment.of(block).spanOf(block).heap != @as(*const anyopaque, heap)) return;
    checkLiveAt(block, block, message);
}

/// Whether a span block is live (the bitmap, not the cookie: a
/// quarantined block is zeroed), not freed and waiting for its owner.
pub fn isLive(span: *const Span, block: *const Block) bool {
    const addr = @intFromPtr(block);
    if (!Segment.of(addr).isAllocated(addr)) return false;
    return !freedUncollected(span, addr, @atomicLoad(usize, tailOf(addr, span.block_size), .monotonic));
}

test "canaries of every length are written and checked, and any damaged byte is found" {
    var block: [48]u8 align(16) = undefined;
    const value: u8 = 0xA5;
    for (0..block.len - @sizeOf(usize)) |size| {
        @memset(&block, 0x11);
        const canaries = canariesOf(@intFromPtr(&block), size, block.len);
        try std.testing.expectEqual(@min(block.len - 8 - size, max_canary_bytes), canaries.len);
        fillCanaries(canaries, value);
        // The request's bytes and the tail are untouched.
        for (block[0..size]) |byte| try std.testing.expectEqual(@as(u8, 0x11), byte);
        for (block[block.len - 8 ..]) |byte| try std.testing.expectEqual(@as(u8, 0x11), byte);
        try std.testing.expect(canariesIntact(canaries, value));
        for (canaries) |*byte| {
            byte.* = 0x41;
            try std.testing.expect(!canariesIntact(canaries, value));
            byte.* = value;
        }
    }
}

test "canary bytes are never ASCII, NUL or 0xFF, and vary between blocks" {
    var seen = std.StaticBitSet(256).initEmpty();
    var block: usize = 0x7000_0000_0000;
    while (block < 0x7000_0000_0000 + 4096 * 16) : (block += 16) {
        const byte = canaryByte(block);
        try std.testing.expect(byte >= 0x80 and byte != 0xFF);
        seen.set(byte);
    }
    try std.testing.expect(seen.count() > 64);
}

test "allZero finds a non-zero byte at any place in any length" {
    var bytes: [300]u8 align(16) = @splat(0);
    // Unaligned starts too: free checks from the end of a request.
    for ([_]usize{ 0, 1, 7, 8, 15 }) |start| {
        for (0..bytes.len - start) |len| {
            const addr = @intFromPtr(&bytes) + start;
            try std.testing.expect(allZero(addr, len));
            for (0..len) |at| {
                bytes[start + at] = 0x80;
                try std.testing.expect(!allZero(addr, len));
                bytes[start + at] = 0;
            }
            // Bytes just outside the range do not count.
            if (start > 0) bytes[start - 1] = 1;
            if (start + len < bytes.len) bytes[start + len] = 1;
            try std.testing.expect(allZero(addr, len));
            if (start > 0) bytes[start - 1] = 0;
            if (start + len < bytes.len) bytes[start + len] = 0;
        }
    }
}
