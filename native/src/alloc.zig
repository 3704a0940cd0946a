//! The allocator's entry points with glibc's contract (2.36): what malloc,
//! free, calloc, realloc and the aligned family do for every input. Sizes up
//! to `sizeclass.medium_max_bytes` go to the thread's heap (heap.zig,
//! thread.zig), larger ones to large.zig. The C symbols themselves are in
//! shim.zig.
const std = @import("std");
const empty = @import("empty.zig");
const hardened = @import("hardened.zig");
const heap_box = @import("heap.zig");
const large = @import("large.zig");
const layout = @import("layout.zig");
const os = @import("os.zig");
const policy = @import("policy.zig");
const segment_box = @import("segment.zig");
const sizeclass = @import("sizeclass.zig");
const span_box = @import("span.zig");
const thread = @import("thread.zig");
const Span = span_box.Span;
const Block = span_box.Block;
const Segment = segment_box.Segment;
const Heap = heap_box.Heap;
const page_size_bytes = layout.page_size_bytes;
pub const Origin = hardened.Origin;
pub const Release = hardened.Release;

/// glibc refuses any request above PTRDIFF_MAX before trying.
const max_request_bytes: usize = std.math.maxInt(isize);

fn outOfMemory() ?*anyopaque {
    os.setErrno(.NOMEM);
    return null;
}

/// The hot path covers sizes 1..32 KiB (`sizeclass.fine_max_bytes`), whose
/// class is a shift and one table load: the small ones (up to
/// `sizeclass.small_max_bytes`) pop their class's current span, the medium
/// ones first take the newest block the heap kept back (`Heap.allocMedium`).
/// 0, larger sizes and a thread's first call take `mallocOther`.
pub inline fn malloc(size: usize) ?*anyopaque {
    return mallocAs(size, .malloc);
}

/// `malloc` for a request of `origin` (C++ new and new[] pass theirs, which
/// only the hardened lane keeps).
pub inline fn mallocAs(size: usize, comptime origin: Origin) ?*anyopaque {
    return cached(size, struct {
        const dry = Heap.refill;
        inline fn miss(bytes: usize) ?*anyopaque {
            return mallocOther(bytes, origin);
        }
    });
}

/// The hot path of an entry point that allocates `size` bytes: a block of
/// the thread's heap for 1 to `sizeclass.fine_max_bytes`; a dry current
/// span returns `Path.dry(heap, class)` and every other case
/// `Path.miss(size)`.
pub inline fn cached(size: usize, comptime Path: type) ?*anyopaque {
    if (size -% 1 < sizeclass.small_max_bytes) {
        if (thread.current()) |heap| return heap.allocOr(sizeclass.fineClassOf(size), Path.dry);
    } else if (size -% 1 < sizeclass.fine_max_bytes) {
        if (thread.current()) |heap| return heap.allocMediumOr(sizeclass.fineClassOf(size), Path.dry);
    }
    return Path.miss(size);
}

/// `cached` that returns null for a dry span (its last block included)
/// and every other case, for an entry point whose slow path then takes the
/// request whole (calloc, C++'s nothrow new, the aligned family).
pub inline fn cachedOrNull(size: usize) ?*anyopaque {
    return cached(size, struct {
        const dry = Heap.giveUp;
        inline fn miss(_: usize) ?*anyopaque {
            return null;
        }
    });
}

/// C++'s `new(0)` asks malloc for 1 byte, as the runtime's own does, so
/// that every `new` returns an ordinary block.
pub inline fn newBytes(size: usize) usize {
    return @max(size, 1);
}

/// The `Path` of `cached` for C++'s `new` of `origin`, which does not fail
/// with ENOMEM but calls `fail(size)` (the runtime's own definition, which
/// runs the program's new_handler and throws: shim.zig). Both exits are out
/// of line and neither repeats the hit path.
pub fn NewPath(comptime origin: Origin, comptime fail: fn (usize) ?*anyopaque) type {
    return struct {
        noinline fn dry(heap: *Heap, class: sizeclass.Class) ?*anyopaque {
            // The runtime asks again for the class's block size, which
            // the span would have handed out.
            return heap.refill(class) orelse fail(sizeclass.block_size_bytes[class]);
        }
        noinline fn miss(size: usize) ?*anyopaque {
            return mallocOther(newBytes(size), origin) orelse fail(size);
        }
    };
}

/// Sizes the hot path does not cover: those above 32 KiB up to
/// `sizeclass.medium_max_bytes` served here, the rest by
/// `mallocWithoutSlot`. Out of line so the hot path saves no registers for
/// it. Every malloc of the hardened lane comes here (its threads' hot-path
/// slot stays null).
noinline fn mallocOther(size: usize, comptime origin: Origin) ?*anyopaque {
    if (size -% (sizeclass.fine_max_bytes + 1) < sizeclass.medium_max_bytes - sizeclass.fine_max_bytes) {
        // A null slot: the thread's first call, or the hardened lane.
        if (thread.current()) |heap| return heap.alloc(sizeclass.coarseClassOf(size));
    }
    return mallocWithoutSlot(size, origin);
}

/// 0, a large block, or a thread without a hot-path slot. Out of line so
/// malloc of the medium sizes above saves no registers for it.
noinline fn mallocWithoutSlot(size: usize, comptime origin: Origin) ?*anyopaque {
    // The process's first malloc comes here: the policy decides the path.
    thread.start();
    if (size == 0 and policy.snapshot.empty_faults == 1) {
        if (empty.alloc()) |ptr| return ptr;
    }
    if (policy.snapshot.hardened()) return mallocHardened(size, sizeclass.min_alignment_bytes, origin);
    if (size > sizeclass.medium_max_bytes) return mallocLarge(size, sizeclass.min_alignment_bytes);
    const heap = thread.currentOrCreate() orelse return outOfMemory();
    return heap.alloc(sizeclass.classOf(size));
}

fn mallocHardened(size: usize, alignment: usize, origin: Origin) ?*anyopaque {
    const class = hardened.classFor(size, alignment) orelse return mallocLarge(size, alignment);
    return hardened.malloc(size, class, origin);
}

noinline fn mallocLarge(size: usize, alignment: usize) ?*anyopaque {
    const mapping = largeMapping(size, alignment, .exact) orelse return null;
    return mapping.ptr;
}

/// A large block, or null with errno ENOMEM.
fn largeMapping(size: usize, alignment: usize, request: large.Request) ?large.Mapping {
    if (size > max_request_bytes) {
        os.setErrno(.NOMEM);
        return null;
    }
    thread.start();
    return large.alloc(size, alignment, request) orelse {
        os.setErrno(.NOMEM);
        return null;
    };
}

const SpanBlock = span_box.SpanBlock;

/// Where a pointer given to free/realloc/usable_size lives.
const Owner = union(enum) {
    span: SpanBlock,
    /// A large block: its usable bytes.
    large: usize,
    /// A zero-byte block (empty.zig).
    empty,
};

/// What a pointer is, found without aborting. A freed large block is
/// unmapped or cached, not registered: it reads as `invalid`.
const Classified = union(enum) {
    span: SpanBlock,
    /// A large block: its usable bytes, read under the large box's lock
    /// once, so that its callers need not look it up again.
    large: usize,
    empty,
    /// Not the start of a block we handed out (foreign, interior, never carved).
    invalid,
    /// A span block that is on a free list: freed already.
    freed,
};

/// Status codes of the checked C API (hakozuna.h: HZ_OK, HZ_INVALID, HZ_FREED).
pub const Status = enum(c_int) { ok = 0, invalid = 1, freed = 2 };

/// Classifies `addr` (non-zero). Never aborts.
fn classify(addr: usize) Classified {
    if (segment_box.contains(addr)) {
        const span = Segment.of(addr).spanOf(addr);
        const block = span.blockAt(addr) orelse return .invalid;
        if (Span.isFree(block)) return .freed;
        // Quarantined blocks are zeroed: the bitmap says what is live.
        if (policy.snapshot.hardened() and !hardened.isLive(span, block)) return .freed;
        return .{ .span = .{ .span = span, .block = block } };
    }
    if (empty.contains(addr)) return switch (empty.classify(addr)) {
        .live => .empty,
        .freed => .freed,
        .invalid => .invalid,
    };
    return .{ .large = large.usableSize(addr) orelse return .invalid };
}

/// Classifies `addr` (non-zero), or aborts when it is not a live block,
/// with glibc's kind of message. `operation` names the caller, e.g. "free()".
fn ownerOrDie(addr: usize, comptime operation: []const u8) Owner {
    return switch (classify(addr)) {
        .span => |span| .{ .span = span },
        .large => |usable| .{ .large = usable },
        .empty => .empty,
        .invalid => os.fatalPointer(operation ++ ": invalid pointer", addr),
        .freed => os.fatalPointer(operation ++ ": double free detected", addr),
    };
}

/// A live block of a segment outside the hardened lane, found by free's
/// lookups (the segment map, the span, `blockAt`, the cookie); null for
/// anything else, NULL included, which the caller classifies in full. The
/// hit path of realloc and `malloc_usable_size`.
inline fn liveSpanBlock(addr: usize) ?SpanBlock {
    const chunk = segment_box.liveChunk(addr) orelse return null;
    const span = Segment.ofChunk(chunk).spanOf(addr);
    // Nothing reads `addr` before blockAt has accepted it.
    const block = span.blockAt(addr) orelse return null;
    if (Span.isFree(block) or policy.snapshot.hardened()) return null;
    return .{ .span = span, .block = block };
}

/// The hot path: a block of one of our segments that its own heap frees.
/// Every failed check leaves through a tail call, so the hit path keeps no
/// stack frame.
pub inline fn free(ptr: ?*anyopaque) void {
    freeAs(ptr, .malloc, Release.no_size);
}

/// `free` for a release of `origin` with the size the program passed, or
/// `Release.no_size` (C++'s delete and delete[] and C23's `free_sized`
/// pass theirs, which only the hardened lane checks, off the hot path).
pub inline fn freeAs(ptr: ?*anyopaque, origin: Origin, size: usize) void {
    const addr = @intFromPtr(ptr);
    const chunk = segment_box.liveChunk(addr) orelse return freeOutsideSegments(addr);
    const segment = Segment.ofChunk(chunk);
    const span = segment.spanOf(addr);
    // Nothing reads `addr` before blockAt has accepted it.
    const block = span.blockAt(addr) orelse return freeRejected(addr, origin, size);
    const cookie = span_box.cookieOf(block);
    if (block.cookie == cookie) {
        // Laid out after the hit path, which then takes no branch.
        @branchHint(.unlikely);
        return freeRejected(addr, origin, size);
    }
    freeSpan(.{ .span = span, .block = block }, cookie, origin, size, segment.classOf(addr));
}

/// NULL, a large block, or a pointer that is not ours.
noinline fn freeOutsideSegments(addr: usize) void {
    if (addr == 0) return;
    if (empty.contains(addr)) return switch (empty.free(addr)) {
        .live => {},
        .freed => os.fatalPointer("free(): double free detected", addr),
        .invalid => os.fatalPointer("free(): invalid pointer", addr),
    };
    if (!large.free(addr)) os.fatalPointer("free(): invalid pointer", addr);
}

/// A pointer into a segment that free refused: checked again, it aborts
/// with the reason (or, if a racing carve made it valid since, is freed).
noinline fn freeRejected(addr: usize, origin: Origin, size: usize) void {
    switch (ownerOrDie(addr, "free()")) {
        .span => |found| freeFound(found, origin, size),
        // In a segment's chunk (modulo 2^47): never a large or empty block.
        .large, .empty => unreachable,
    }
}

/// `freeSpan` for the callers off free's hit path, which found the block
/// through its span and take its cookie and class from there.
inline fn freeFound(found: SpanBlock, origin: Origin, size: usize) void {
    freeSpan(found, span_box.cookieOf(found.block), origin, size, found.span.class);
}

/// Frees a live span block; `cookie` is `span_box.cookieOf(found.block)`
/// and `class` its span's class.
inline fn freeSpan(found: SpanBlock, cookie: usize, origin: Origin, size: usize, class: sizeclass.Class) void {
    const heap = thread.current();
    if (found.span.heap == @as(?*anyopaque, heap)) {
        @branchHint(.likely);
        heap.?.freeLocal(found.span, found.block, cookie, class);
    } else {
        freeOther(heap, found.span, found.block, origin, size);
    }
}

/// free that never aborts: `.ok` when freed (or NULL), else what the pointer
/// is, and nothing is done.
pub fn freeChecked(ptr: ?*anyopaque) Status {
    const addr = @intFromPtr(ptr);
    if (addr == 0) return .ok;
    switch (classify(addr)) {
        .span => |found| freeFound(found, .malloc, Release.no_size),
        .large => if (!large.free(addr)) return .invalid,
        .empty => if (empty.free(addr) != .live) return .freed,
        .invalid => return .invalid,
        .freed => return .freed,
    }
    return .ok;
}

/// Fills `out[0..count]` with blocks of `size` bytes, stopping at the first
/// failure (errno ENOMEM). Returns how many were allocated.
pub fn mallocMany(size: usize, out: [*]?*anyopaque, count: usize) usize {
    thread.start();
    if (size <= sizeclass.medium_max_bytes and count > 0 and !policy.snapshot.hardened()) {
        const heap = thread.currentOrCreate() orelse {
            _ = outOfMemory();
            return 0;
        };
        const class = sizeclass.classOf(size);
        for (0..count) |index| {
            out[index] = heap.alloc(class) orelse return index;
        }
        return count;
    }
    for (0..count) |index| {
        out[index] = malloc(size) orelse return index;
    }
    return count;
}

/// freeChecked over `ptrs[0..count]`, stopping at the first pointer that is
/// not a live block (or NULL). Returns how many were freed.
pub fn freeMany(ptrs: [*]const ?*anyopaque, count: usize) usize {
    for (0..count) |index| {
        if (freeChecked(ptrs[index]) != .ok) return index;
    }
    return count;
}

/// A block another heap owns. Out of line so the local path saves no
/// registers for it.
noinline fn freeOther(heap: ?*Heap, span: *Span, block: *Block, origin: Origin, size: usize) void {
    if (heap) |own| return own.freeRemote(span, block);
    freeWithoutSlot(span, block, .of(origin, size));
}

/// A free by a thread whose hot-path slot is null: the hardened lane (every
/// free), or a thread that never allocated. Out of line so a remote free
/// saves no registers for it.
noinline fn freeWithoutSlot(span: *Span, block: *Block, release: Release) void {
    if (policy.snapshot.hardened()) return hardened.free(span, block, release);
    const own = thread.heapForFree() orelse return heap_box.freeWithoutHeap(span, block);
    // The heap just taken may be an adopted orphan that owns the span.
    if (span.heap == @as(*anyopaque, own)) {
        own.freeLocal(span, block, span_box.cookieOf(block), span.class);
    } else {
        own.freeRemote(span, block);
    }
}

pub fn calloc(count: usize, size: usize) ?*anyopaque {
    // The product's high half is 0 unless it overflows (as a tuple from
    // @mulWithOverflow, the flag went through the stack).
    const product = @as(u128, count) * size;
    const total: usize = @truncate(product);
    if (product >> 64 == 0 and total -% 1 < sizeclass.small_max_bytes) {
        if (cachedOrNull(total)) |ptr| {
            @memset(@as([*]u8, @ptrCast(ptr))[0..total], 0);
            return ptr;
        }
    }
    return callocOther(count, size);
}

/// What calloc's hit path leaves, out of line so that the hit path keeps
/// no stack frame: an overflowing product, a medium or large size, a dry
/// span or its last block, a thread without a heap.
noinline fn callocOther(count: usize, size: usize) ?*anyopaque {
    const total = std.math.mul(usize, count, size) catch return outOfMemory();
    if (total <= sizeclass.medium_max_bytes) {
        const ptr = malloc(total) orelse return null;
        @memset(@as([*]u8, @ptrCast(ptr))[0..total], 0);
        return ptr;
    }
    const mapping = largeMapping(total, sizeclass.min_alignment_bytes, .exact) orelse return null;
    // A fresh mapping is zero already; only a reused one needs clearing.
    if (!mapping.zeroed) @memset(@as([*]u8, @ptrCast(mapping.ptr))[0..total], 0);
    return mapping.ptr;
}

/// NULL is malloc's hit path (a program's allocator may call realloc
/// alone: Lua's does). Then a live block of a segment, outside the
/// hardened lane, asked for a size from 1 to `max_request_bytes`; the
/// rest, and every pointer that is not such a block, take `reallocOther`.
pub inline fn realloc(ptr: ?*anyopaque, size: usize) ?*anyopaque {
    const addr = @intFromPtr(ptr);
    if (addr == 0) return malloc(size);
    if (liveSpanBlock(addr)) |found| {
        if (size -% 1 < max_request_bytes) return reallocSpan(found, size);
    }
    return reallocOther(ptr.?, size);
}

/// realloc of a live span block outside the hardened lane, to a size from
/// 1 to `max_request_bytes`: in place, or moved out of line (`reallocMove`),
/// so that realloc's hit path keeps no stack frame.
inline fn reallocSpan(found: SpanBlock, size: usize) ?*anyopaque {
    const usable: usize = found.span.usableBytes();
    // Fits, and not so much smaller that keeping it wastes half.
    if (size <= usable and size * 2 >= usable) return found.block;
    return reallocMove(found.span, found.block, size);
}

/// `reallocSpan` of a block that moves: malloc, copy, and free of the old
/// block through `freeFound`, which needs no second lookup.
noinline fn reallocMove(span: *Span, block: *Block, size: usize) ?*anyopaque {
    const fresh = malloc(size) orelse return null;
    const bytes = @min(span.usableBytes(), size);
    @memcpy(@as([*]u8, @ptrCast(fresh))[0..bytes], @as([*]const u8, @ptrCast(block))[0..bytes]);
    freeFound(.{ .span = span, .block = block }, .malloc, Release.no_size);
    return fresh;
}

/// What realloc's hit path leaves: size 0 (frees), a size past
/// `max_request_bytes`, a large or empty block, the hardened lane, or a
/// pointer that is not a live block (which aborts).
noinline fn reallocOther(ptr: *anyopaque, size: usize) ?*anyopaque {
    const addr = @intFromPtr(ptr);
    if (size == 0) {
        // glibc 2.36 (REALLOC_ZERO_BYTES_FREES): free and return NULL.
        free(ptr);
        return null;
    }
    // A bad pointer aborts even when the size alone would fail.
    const owner = ownerOrDie(addr, "realloc()");
    if (size > max_request_bytes) return outOfMemory();
    switch (owner) {
        .span => |found| {
            if (policy.snapshot.hardened()) {
                const old = hardened.checkedTail(found.span, found.block, "realloc()");
                if (hardened.resizeInPlace(found.span, found.block, old, size)) return ptr;
                return move(ptr, old.size, size);
            }
            return reallocSpan(found, size);
        },
        .large => |usable| {
            if (size <= sizeclass.medium_max_bytes) return move(ptr, usable, size);
            return switch (large.resize(addr, size)) {
                .moved => |moved| moved,
                // Not done: the block is as it was, its length too.
                .copy => moveLarge(ptr, usable, size),
                .not_large => unreachable,
            };
        },
        .empty => return move(ptr, 0, size),
    }
}

/// realloc by copy: a new block, the old contents, the old block freed. On
/// failure the old block is untouched.
fn move(ptr: *anyopaque, old_usable: usize, size: usize) ?*anyopaque {
    return moveInto(malloc(size) orelse return null, ptr, old_usable, size);
}

/// `move` of a large block that could not grow in place to a large `size`:
/// its new block has room to grow into (`large.Request.growing`).
fn moveLarge(ptr: *anyopaque, old_usable: usize, size: usize) ?*anyopaque {
    const mapping = largeMapping(size, sizeclass.min_alignment_bytes, .growing) orelse return null;
    return moveInto(mapping.ptr, ptr, old_usable, size);
}

/// The old block's contents (up to `size`) copied into `fresh`, the old
/// block freed.
fn moveInto(fresh: *anyopaque, ptr: *anyopaque, old_usable: usize, size: usize) *anyopaque {
    const bytes = @min(old_usable, size);
    @memcpy(@as([*]u8, @ptrCast(fresh))[0..bytes], @as([*]const u8, @ptrCast(ptr))[0..bytes]);
    free(ptr);
    return fresh;
}

pub fn reallocarray(ptr: ?*anyopaque, count: usize, size: usize) ?*anyopaque {
    const total = std.math.mul(usize, count, size) catch return outOfMemory();
    return realloc(ptr, total);
}

/// The hit path of an aligned request (memalign and its family, C++'s
/// aligned new): for a power-of-two alignment up to a cache line and a
/// size of 1 to `sizeclass.fine_max_bytes`, the thread cache's block for
/// the size rounded up to the alignment, which is a block of a class whose
/// size is a multiple of the alignment and so aligned to it (a test in
/// sizeclass.zig says which classes; the debug builds assert the result).
/// Null for every other request and for a dry span: the caller's own slow
/// path takes those.
pub inline fn cachedAligned(alignment: usize, size: usize) ?*anyopaque {
    if (size -% 1 < sizeclass.fine_max_bytes and alignment -% 1 < layout.cache_line_bytes and
        (power_of_two_less_one >> @intCast(alignment - 1)) & 1 != 0)
    {
        const ptr = cachedOrNull((size + alignment - 1) & ~(alignment - 1));
        std.debug.assert(@intFromPtr(ptr) & (alignment - 1) == 0);
        return ptr;
    }
    return null;
}

/// Bit `n` set for each `n` one less than a power of two up to a cache
/// line: a shift and a test where `isPowerOfTwo` becomes a population
/// count, which the baseline x86-64 target spells out in 20 instructions.
const power_of_two_less_one: u64 = blk: {
    var mask: u64 = 0;
    var power: usize = 1;
    while (power <= layout.cache_line_bytes) : (power *= 2) mask |= @as(u64, 1) << (power - 1);
    break :blk mask;
};

/// memalign as glibc 2.36 has it (aligned_alloc is the same function there):
/// alignments up to 16 are plain malloc; a non-power-of-two alignment is
/// rounded up to the next power of two; above SIZE_MAX/2+1 is EINVAL.
pub inline fn memalign(alignment: usize, size: usize) ?*anyopaque {
    return cachedAligned(alignment, size) orelse memalignOther(alignment, size, .malloc);
}

/// What `memalign`'s hit path leaves, out of line so that the hit path
/// keeps no stack frame, for a request of `origin` (C++'s aligned new and
/// new[] call it with theirs after the same hit path).
pub noinline fn memalignOther(alignment: usize, size: usize, comptime origin: Origin) ?*anyopaque {
    if (alignment <= sizeclass.min_alignment_bytes) return mallocAs(size, origin);
    if (alignment > std.math.maxInt(usize) / 2 + 1) return badAlignment();
    const power = std.math.ceilPowerOfTwo(usize, alignment) catch unreachable;
    return alignedBlock(power, size, origin);
}

/// A block aligned to `alignment` (a power of two above 16).
fn alignedBlock(alignment: usize, size: usize, origin: Origin) ?*anyopaque {
    std.debug.assert(std.math.isPowerOfTwo(alignment));
    // Checked in two steps: `max_request_bytes - alignment` would wrap for
    // alignments above it (posix_memalign accepts up to SIZE_MAX/2+1).
    if (alignment > max_request_bytes) return outOfMemory();
    if (size > max_request_bytes - alignment) return outOfMemory();
    thread.start();
    if (policy.snapshot.hardened()) return mallocHardened(size, alignment, origin);
    if (sizeclass.alignedClassOf(size, alignment)) |class| {
        const heap = thread.currentOrCreate() orelse return outOfMemory();
        return heap.alloc(class);
    }
    return mallocLarge(size, alignment);
}

/// hz_aligned_alloc: C17's aligned_alloc, where an alignment that is not a
/// power of two (0 included) is EINVAL.
pub inline fn alignedAlloc(alignment: usize, size: usize) ?*anyopaque {
    return cachedAligned(alignment, size) orelse alignedAllocOther(alignment, size);
}

noinline fn alignedAllocOther(alignment: usize, size: usize) ?*anyopaque {
    if (!isAlignment(alignment)) return badAlignment();
    return memalignOther(alignment, size, .malloc);
}

/// aligned_alloc as the running glibc has it: from 2.38 on, C17's rule
/// (`alignedAlloc`); before, memalign. The version is asked only for an
/// alignment that is not a power of two.
pub inline fn alignedAllocAsGlibc(alignment: usize, size: usize) ?*anyopaque {
    return cachedAligned(alignment, size) orelse alignedAllocAsGlibcOther(alignment, size);
}

noinline fn alignedAllocAsGlibcOther(alignment: usize, size: usize) ?*anyopaque {
    if (!isAlignment(alignment) and os.glibcAtLeast(2, 38)) return badAlignment();
    return memalignOther(alignment, size, .malloc);
}

/// A power of two (std's test asserts a nonzero argument, hence the first).
fn isAlignment(alignment: usize) bool {
    return alignment != 0 and std.math.isPowerOfTwo(alignment);
}

fn badAlignment() ?*anyopaque {
    os.setErrno(.INVAL);
    return null;
}

/// posix_memalign's checks: the alignment must be a power-of-two multiple of
/// sizeof(void *). Returns the error code; `out` is written only on success.
pub inline fn posixMemalign(out: *?*anyopaque, alignment: usize, size: usize) c_int {
    if (alignment >= @sizeOf(usize)) {
        if (cachedAligned(alignment, size)) |ptr| {
            out.* = ptr;
            return 0;
        }
    }
    return posixMemalignOther(out, alignment, size);
}

noinline fn posixMemalignOther(out: *?*anyopaque, alignment: usize, size: usize) c_int {
    const word = @sizeOf(usize);
    if (alignment == 0 or alignment % word != 0 or !std.math.isPowerOfTwo(alignment / word)) {
        return @intFromEnum(std.c.E.INVAL);
    }
    const saved_errno = std.c._errno().*;
    const ptr = memalignOther(alignment, size, .malloc) orelse {
        std.c._errno().* = saved_errno;
        return @intFromEnum(std.c.E.NOMEM);
    };
    out.* = ptr;
    return 0;
}

pub fn valloc(size: usize) ?*anyopaque {
    return memalignOther(page_size_bytes, size, .malloc);
}

pub fn pvalloc(size: usize) ?*anyopaque {
    const rounded = std.math.add(usize, size, page_size_bytes - 1) catch return outOfMemory();
    return memalignOther(page_size_bytes, rounded & ~(page_size_bytes - 1), .malloc);
}

/// Usable bytes of a live block; 0 for NULL. Aborts on a foreign pointer.
/// Programs that keep their own account of memory (redis) call it beside
/// every malloc and free, so its hit path is `liveSpanBlock`.
pub fn usableSize(ptr: ?*const anyopaque) usize {
    const addr = @intFromPtr(ptr);
    if (liveSpanBlock(addr)) |found| return found.span.usableBytes();
    return usableSizeOther(addr);
}

/// NULL, a large or empty block, the hardened lane, or a pointer that is
/// not a live block (which aborts).
noinline fn usableSizeOther(addr: usize) usize {
    if (addr == 0) return 0;
    return switch (ownerOrDie(addr, "malloc_usable_size()")) {
        .span => |found| if (policy.snapshot.hardened())
            hardened.usableSize(found.span, found.block, "malloc_usable_size()")
        else
            found.span.usableBytes(),
        .large => |usable| usable,
        .empty => 0,
    };
}

/// Usable bytes of a live block; 0 for NULL or anything else. Never aborts.
pub fn usableSizeChecked(ptr: ?*const anyopaque) usize {
    const addr = @intFromPtr(ptr);
    if (addr == 0) return 0;
    return switch (classify(addr)) {
        .span => |found| if (policy.snapshot.hardened())
            hardened.intactSize(found.span, found.block) orelse 0
        else
            found.span.usableBytes(),
        .large => |usable| usable,
        .empty => 0,
        .invalid, .freed => 0,
    };
}

/// True when `ptr` is a block we handed out that is not known to be free.
/// Never aborts.
pub fn owns(ptr: ?*const anyopaque) bool {
    const addr = @intFromPtr(ptr);
    if (addr == 0) return false;
    return switch (classify(addr)) {
        .span, .large, .empty => true,
        .invalid, .freed => false,
    };
}

test "malloc family basics" {
    const p = malloc(100) orelse return error.OutOfMemory;
    try std.testing.expect(@intFromPtr(p) % 16 == 0);
    try std.testing.expect(usableSize(p) >= 100);
    try std.testing.expect(owns(p));
    const q = realloc(p, 5000) orelse return error.OutOfMemory;
    try std.testing.expect(usableSize(q) >= 5000);
    free(q);
    try std.testing.expect(!owns(q));

    const z: [*]u8 = @ptrCast(calloc(10, 1000) orelse return error.OutOfMemory);
    for (z[0..10000]) |byte| try std.testing.expectEqual(@as(u8, 0), byte);
    free(z);

    try std.testing.expect(calloc(std.math.maxInt(usize), 2) == null);
    try std.testing.expect(malloc(std.math.maxInt(usize)) == null);
    try std.testing.expect(realloc(malloc(10), 0) == null);
}

test "malloc(0) is a unique block that frees, reallocates and reports no usable bytes" {
    const a = malloc(0) orelse return error.OutOfMemory;
    const b = malloc(0) orelse return error.OutOfMemory;
    try std.testing.expect(a != b);
    try std.testing.expect(owns(a));
    try std.testing.expectEqual(@as(usize, 0), usableSize(a));
    free(a);
    try std.testing.expect(!owns(a));
    try std.testing.expectEqual(Status.freed, freeChecked(a));
    const grown: [*]u8 = @ptrCast(realloc(b, 100) orelse return error.OutOfMemory);
    grown[99] = 1;
    try std.testing.expect(!owns(b));
    free(grown);
}

test "aligned family" {
    var alignment: usize = 32;
    while (alignment <= 4 << 20) : (alignment *= 2) {
        const p = memalign(alignment, 100) orelse return error.OutOfMemory;
        try std.testing.expect(@intFromPtr(p) % alignment == 0);
        free(p);
    }
    var out: ?*anyopaque = null;
    try std.testing.expectEqual(@as(c_int, @intFromEnum(std.c.E.INVAL)), posixMemalign(&out, 24, 10));
    try std.testing.expect(out == null);
    try std.testing.expectEqual(@as(c_int, 0), posixMemalign(&out, 64, 10));
    try std.testing.expect(@intFromPtr(out) % 64 == 0);
    free(out);
    const odd = memalign(48, 10) orelse return error.OutOfMemory;
    try std.testing.expect(@intFromPtr(odd) % 64 == 0);
    free(odd);
}

test "aligned requests up to a cache line take the thread cache's blocks, aligned, whichever class serves them" {
    const sizes = [_]usize{ 1, 8, 15, 16, 17, 33, 48, 100, 500, 512, 513, 1000, 2000, 2048, 2049, 3000, 4096, 5000, 6000, 8192, 12000, 20000, 32704, 32768 };
    var blocks: [64]?*anyopaque = @splat(null);
    var alignment: usize = 8;
    while (alignment <= layout.cache_line_bytes) : (alignment *= 2) {
        for (sizes) |size| {
            // Twice over: the second round takes what the first freed
            // (kept blocks, the span's list) and, for a medium class with
            // none left, blocks of the classes above it.
            for (0..2) |_| {
                for (&blocks, 0..) |*slot, index| {
                    slot.* = switch (index % 3) {
                        0 => memalign(alignment, size),
                        1 => alignedAlloc(alignment, size),
                        else => posix: {
                            var out: ?*anyopaque = null;
                            try std.testing.expectEqual(@as(c_int, 0), posixMemalign(&out, alignment, size));
                            break :posix out;
                        },
                    };
                    const block = slot.* orelse return error.OutOfMemory;
                    try std.testing.expect(@intFromPtr(block) % alignment == 0);
                    try std.testing.expect(usableSize(block) >= size);
                    @memset(@as([*]u8, @ptrCast(block))[0..size], 0xa5);
                }
                for (blocks, 0..) |block, index| {
                    if (index % 2 == 0) free(block);
                }
                for (blocks, 0..) |block, index| {
                    if (index % 2 == 1) free(block);
                }
            }
            // A class above with free blocks, the requested one with none.
            const above = malloc(size * 3 / 2 + alignment) orelse return error.OutOfMemory;
            free(above);
            const block = memalign(alignment, size) orelse return error.OutOfMemory;
            try std.testing.expect(@intFromPtr(block) % alignment == 0);
            free(block);
        }
    }
}

test "large realloc grows and shrinks in place or by mremap" {
    const p: [*]u8 = @ptrCast(malloc(1 << 20) orelse return error.OutOfMemory);
    p[0] = 1;
    p[(1 << 20) - 1] = 2;
    const q: [*]u8 = @ptrCast(realloc(p, 16 << 20) orelse return error.OutOfMemory);
    try std.testing.expectEqual(@as(u8, 1), q[0]);
    try std.testing.expectEqual(@as(u8, 2), q[(1 << 20) - 1]);
    const r: [*]u8 = @ptrCast(realloc(q, 1000) orelse return error.OutOfMemory);
    try std.testing.expectEqual(@as(u8, 1), r[0]);
    free(r);
}

test "checked free, usable size and batches never abort" {
    const p = malloc(100) orelse return error.OutOfMemory;
    try std.testing.expect(usableSizeChecked(p) >= 100);
    const interior: *anyopaque = @ptrFromInt(@intFromPtr(p) + 16);
    try std.testing.expectEqual(Status.invalid, freeChecked(interior));
    try std.testing.expectEqual(@as(usize, 0), usableSizeChecked(interior));
    try std.testing.expectEqual(Status.ok, freeChecked(p));
    try std.testing.expectEqual(Status.freed, freeChecked(p));
    try std.testing.expectEqual(@as(usize, 0), usableSizeChecked(p));
    try std.testing.expectEqual(Status.ok, freeChecked(null));
    var local: usize = 0;
    try std.testing.expectEqual(Status.invalid, freeChecked(@ptrCast(&local)));

    const big = malloc(1 << 20) orelse return error.OutOfMemory;
    try std.testing.expect(usableSizeChecked(big) >= 1 << 20);
    try std.testing.expectEqual(Status.ok, freeChecked(big));
    try std.testing.expectEqual(Status.invalid, freeChecked(big));

    for ([_]usize{ 0, 48, 5000, 300 * 1024 }) |size| {
        var blocks: [40]?*anyopaque = undefined;
        try std.testing.expectEqual(@as(usize, 40), mallocMany(size, &blocks, 40));
        for (blocks) |block| try std.testing.expect(usableSizeChecked(block) >= size);
        const kept = blocks[30];
        blocks[30] = blocks[29]; // a pointer twice: the second is refused
        try std.testing.expectEqual(@as(usize, 30), freeMany(&blocks, 40));
        try std.testing.expectEqual(@as(usize, 9), freeMany(blocks[31..].ptr, 9));
        free(kept);
    }
}

test "a thread that only frees gets a heap and hands its frees over in batches" {
    const count = 256;
    var blocks: [count]*anyopaque = undefined;
    for (&blocks) |*slot| slot.* = malloc(64) orelse return error.OutOfMemory;
    const Freer = struct {
        fn run(to_free: []*anyopaque) void {
            for (to_free) |p| free(p);
        }
    };
    const before = thread.snapshot();
    const freer = try std.Thread.spawn(.{}, Freer.run, .{&blocks});
    freer.join();
    const after = thread.snapshot();
    try std.testing.expectEqual(@as(u64, count), after.remote_free_count - before.remote_free_count);
    // One hand-over per block would be `count` flushes (or none counted,
    // as for a thread past its exit handler); batches of the lane's size
    // (32 blocks in `balanced`) need 8.
    const flushes = after.flush_count - before.flush_count;
    try std.testing.expect(flushes >= 1 and flushes <= count / 8);
}
