//! Heap box: a thread's heap and the hot path.
//!
//! A heap keeps, per size class, a current span to pop from and a list of
//! partially used spans (heap -> span -> block). The hot path is `alloc`
//! and `freeLocal`: a pop or a push on the current span's free list (for
//! the medium classes up to 32 KiB, first on the stack of blocks the heap
//! freed last, `LastFreed`), no atomics, no environment. Everything else
//! happens at event boundaries:
//!   refill  — the current span ran dry: collect remote frees (handed out
//!             as they are, a chain of more than 1 MiB given back to its
//!             spans), a free block of a slightly larger class (blocks of a
//!             page and more), carve, take a partial span, borrow another
//!             heap's queued frees, or a fresh span (backing off first when
//!             the heap's segments are full and more threads run than CPUs);
//!   retire  — a span's last block came back: it returns to its segment
//!             (the current span is kept, so a hot class does not thrash);
//!   purge   — too many free slices stay resident: madvise them away;
//!   drain   — the heap's thread ends, or hz_collect: hand everything back.
//! Which thread owns which heap is thread.zig's business.
const std = @import("std");
const build_options = @import("build_options");
const large = @import("large.zig");
const layout = @import("layout.zig");
const list = @import("list.zig");
const os = @import("os.zig");
const policy = @import("policy.zig");
const remote = @import("remote.zig");
const segment_box = @import("segment.zig");
const sizeclass = @import("sizeclass.zig");
const span_box = @import("span.zig");
const stats = @import("stats.zig");
const Span = span_box.Span;
const Block = span_box.Block;
const Segment = segment_box.Segment;
const Class = sizeclass.Class;

/// The span every class starts with: never has a free block, so the first
/// pop falls into refill without a null check on the hot path.
var empty_span: Span = .{};

const PartialSpans = list.List(Span, "partial_link");

/// Freed blocks a hardened heap holds back from reuse.
pub const quarantine_slots = 64;
pub const recent_slots = 8;

/// What an empty slot of `Heap.recent` points at: a block that reads as
/// freed and unwritten, so malloc's check needs no test for an empty slot.
/// Never written: only malloc reads it, and `quarantineBlock` never passes
/// it on.
var unwritten: Block = .{ .link = 0, .cookie = 0 };
const Segments = list.List(Segment, "link");

/// The blocks a hardened heap freed last, in order, the oldest at `next`
/// (hardened malloc checks them all for writes, a use right after a free;
/// `unwritten` where none).
pub const Recent = struct {
    blocks: [recent_slots]*Block = @splat(&unwritten),
    next: u32 = 0,
};

/// Blocks of the medium classes of malloc's table (2–32 KiB) that the
/// heap's own frees kept back for the class's next mallocs, newest first
/// (`Heap.last_freed`), as a thread cache hands out the block its thread
/// freed last: a block freed into a span other than the class's current
/// one would otherwise wait on that span's list until the span is current
/// again, its lines long gone from the cache (bench/LEDGER.md, "the
/// medium blocks a heap freed last"). A kept block stays counted in its
/// span's `used`; it is marked free (its cookie, so a second free of it
/// aborts) and linked to nothing, and both words are checked when malloc
/// takes it (a write after the free aborts as a corrupted free list does). Small classes
/// keep none: a stack on their path cost more than the warmer block saved.
/// A heap keeps at most `depth` blocks per class (3 MiB when every stack is
/// full), given back at its collect boundary (to their spans, or to their
/// owners for blocks of other heaps that a remote free kept:
/// `foreign_depth`).
pub const LastFreed = struct {
    pub const first_class: usize = sizeclass.small_class_count;
    pub const class_count: usize = @as(usize, sizeclass.fineClassOf(sizeclass.fine_max_bytes)) + 1 - first_class;
    /// Blocks kept per class: with 8, `mixed-main-t1` gained half as much;
    /// with 1, the stack ran empty or full so often that it lost
    /// (bench/LEDGER.md).
    pub const depth = 16;
    /// A remote free keeps the block (another heap's) while the stack holds
    /// fewer than this, and while the heap is not `Flags.crowded`: the
    /// thread that frees a block another thread passed it reuses it in its
    /// own cache, where the block's line already is, instead of sending it
    /// back to its owner (a second crossing) — as a thread cache does. A
    /// full stack of such blocks kept its owner's spans from emptying: the
    /// 2-thread R=90 main lane peaked 22% higher with 16, 10% with 8, at
    /// the same speed (bench/LEDGER.md).
    pub const foreign_depth = 8;

    /// Per class, the kept blocks, oldest first, up to `counts` (what lies
    /// beyond is stale; optional so that the default is zero,
    /// `Heap.initFresh`).
    blocks: [class_count][depth]?*Block = @splat(@splat(null)),
    counts: [class_count]u8 = @splat(0),
    /// The block malloc of these classes handed out last from a stack or
    /// from the current span's list (a refill notes nothing): when the
    /// heap frees it while it is still noted here, it becomes `newest`.
    handed_out: ?*Block = null,
    /// A kept block, of class `newest_class`, newer than any on that
    /// class's stack and counted with it: the block of a malloc the heap
    /// freed again right away (a buffer taken and dropped in a loop). It
    /// lies at a fixed address: on the stack, the block would go through a
    /// slot at an address free finds late (the span, then its class, then
    /// the count), and each malloc waited for the free's whole lookup
    /// before it could read the slot (`malloc_pair` of 4 KiB: 10.9 ns,
    /// against 4.6 for 64 B). Any other kept block first pushes it on its
    /// stack, so the order stays newest first.
    newest: ?*Block = null,
    newest_class: Class = 0,

    /// The index of `class`'s stack, or a number past `class_count` for a
    /// class that keeps none.
    inline fn slotOf(class: Class) usize {
        return @as(usize, class) -% first_class;
    }
};

/// A chain of remote frees larger than this, taken at refill, goes back to
/// its spans (walked: one cache miss per block, one after another) instead
/// of becoming the class's stash: a burst of frees from other threads (a
/// free-all) then leaves spans that retire and give their memory back, not
/// a stash that holds it until mallocs of its class use it all up (8 KiB
/// blocks: 27.6 MiB resident after a 25 MiB free-all and one malloc, 7.4
/// MiB walked; bench/LEDGER.md). Chains in steady churn stay below it.
const stash_max_bytes = 1 << 20;

/// Which free blocks a medium class takes from the classes above it before
/// it carves fresh pages (`Heap.takeLarger`). Each class keeps its own
/// spans, so a footprint held the high-water mark of every class's live
/// blocks; a class at its peak now takes the blocks its neighbours freed
/// below theirs, as a coalescing allocator serves any size from any free
/// range (peak RSS of the 16–32768 B lanes about 0.8×: bench/LEDGER.md).
/// Only classes of a page and more: a carve of a smaller class links every
/// block that ends in its page, and taking one block at a time instead
/// cost the small-block lanes 10%.
pub const Larger = struct {
    pub const first_class: Class = sizeclass.classOf(layout.page_size_bytes);
    /// Classes step by a quarter above 2 KiB: a block two classes up is at
    /// most one and a half times the class's own.
    pub const classes = 2;
};

/// Where a heap is; written by thread.zig under its registry lock, read
/// without it by a flush that asks whether the owner's thread exited.
pub const State = enum(u8) {
    /// Owned by a live thread.
    active,
    /// Its thread exited and it kept each class's current span; on
    /// thread.zig's warm orphan list, waiting to be adopted.
    warm_orphan,
    /// Its thread exited and it gave back all it could; on the cold orphan
    /// list.
    cold_orphan,
    /// A cold orphan past the newest few, which a new thread may adopt
    /// soon: drained again as it aged, and from then on collected for at
    /// the first flush that reaches it (thread.zig). On the cold orphan
    /// list.
    aged_orphan,
    /// Its thread exited; off both lists while one thread drains it or
    /// collects for it, so no other adopts or drains it meanwhile.
    claimed,
    /// Owned by a thread that a fork left behind in the parent; never
    /// touched again in this process.
    dead,
};

/// Called before a heap maps a fresh segment, so that memory other heaps
/// hold idle can be handed back first. Set by thread.zig at process start
/// (the heap registry lives above this box).
pub var before_fresh_segment: *const fn () void = noop;

fn noop() void {}

/// Refills between two readings of the clock into `Heap.refill_ms`.
const stamp_refills = 32;

/// Another heap whose inbox holds blocks of the class, for `borrow` when
/// the inbox the asking heap last flushed the class to holds none; null
/// when none is found. Set by thread.zig at process start, like
/// `before_fresh_segment`.
pub var find_lender: *const fn (*Heap, Class) ?*Heap = noLender;

fn noLender(_: *Heap, _: Class) ?*Heap {
    return null;
}

/// Called when a heap needs a span and its segments have no room for one
/// (it is about to take memory back from elsewhere or map a fresh
/// segment), again after each of its `yields` that gave nothing back:
/// yields the CPU while more threads run than the process has CPUs, and
/// says whether it did; false after a bounded number of calls. Set by
/// thread.zig at process start, like `find_lender`.
pub var back_off: *const fn (*Heap, u32) bool = noBackOff;

fn noBackOff(_: *Heap, _: u32) bool {
    return false;
}

/// Whether more heaps ran lately than the process has CPUs (`Flags.crowded`).
/// Set once at process start by thread.zig.
pub var is_crowded: *const fn (*Heap) bool = notCrowded;

fn notCrowded(_: *Heap) bool {
    return false;
}

/// Hardened lane: the block a heap's malloc handed out last, and what it
/// wrote past the request, so that the next malloc can compare them
/// without looking the block up (hardened.zig). `block` is null when none,
/// and when the segment that held it was released (so it is never read
/// from unmapped memory).
pub const LastAllocated = struct {
    block: ?*Block = null,
    size: usize = 0,
    block_size: usize = 0,
    /// The tail word written.
    tail: usize = 0,
    canary: u8 = 0,
};

/// Fields a heap drained whole holds at their zero value once its counters
/// moved to the registry (`Heap.purgeIdlePages`): null, empty, 0 (`lender`
/// is read only beside a `borrowed` chain). The pages they alone fill
/// (`idle_pages`) can go back to the kernel; adding another field there
/// fails the check below.
const idle_fields = [_][]const u8{ "empty", "stash", "borrowed", "lender", "counters", "last_freed", "outbox" };

/// The whole pages of a Heap (each starts a page: thread.zig maps it) that
/// hold `idle_fields` only, as byte offsets.
const idle_pages: struct { start: usize, end: usize } = blk: {
    const page = layout.page_size_bytes;
    var low: usize = @sizeOf(Heap);
    var high: usize = 0;
    for (idle_fields) |name| {
        low = @min(low, @offsetOf(Heap, name));
        high = @max(high, @offsetOf(Heap, name) + @sizeOf(@FieldType(Heap, name)));
    }
    const start = std.mem.alignForward(usize, low, page);
    const end = std.mem.alignBackward(usize, high, page);
    // Two today (8 of a heap's 16 KiB): Zig orders the fields itself, and a
    // field added elsewhere can split the idle ones (see `Flags`).
    if (end < start + 2 * page) @compileError("the idle fields of Heap fill fewer than two whole pages");
    for (std.meta.fields(Heap)) |field| {
        const idle = for (idle_fields) |name| {
            if (std.mem.eql(u8, name, field.name)) break true;
        } else false;
        const offset = @offsetOf(Heap, field.name);
        if (!idle and offset < end and offset + @sizeOf(field.type) > start) @compileError("Heap." ++ field.name ++ " lies in the idle pages");
    }
    break :blk .{ .start = start, .end = end };
};

// The fields every thread writes, whatever it does (those declared before
// `counters`, and `counters`: see Heap), lie in the heap's first two pages.
comptime {
    if (@offsetOf(Heap, "counters") + @sizeOf(stats.Counters) > 2 * layout.page_size_bytes) {
        @compileError("the fields every thread writes spill past the heap's first two pages");
    }
    for (std.meta.fields(Heap)) |field| {
        if (std.mem.eql(u8, field.name, "counters")) break;
        if (@offsetOf(Heap, field.name) > @offsetOf(Heap, "counters")) @compileError("Heap." ++ field.name ++ " lies past the counters");
    }
}

/// What a heap is beside its state, in one byte: a field more moves
/// Heap's fields (one once took a page from `idle_pages`, 12 MiB over
/// tests/c/livethreads' 3,000); the two checks above now fail the build
/// when one costs a page of either kind.
pub const Flags = packed struct(u8) {
    /// The hardened lane (hardened.zig): the heap carves zeroed blocks in
    /// a random order and delays the reuse of freed blocks.
    hardened: bool = false,
    /// Set by thread.zig when a thread adopted the heap after another's
    /// exit (`exitKeepSlices`).
    adopted: bool = false,
    /// More heaps ran lately than the process has CPUs (thread.zig's
    /// `is_crowded`), refreshed when the heap stamps `refill_ms`: then a
    /// remote free of a medium block goes to its owner instead of this
    /// heap's `last_freed`, where it would wander from thread to thread
    /// while its span waits for it.
    crowded: bool = false,
    _: u5 = 0,
};

pub const Heap = struct {
    // Fields are declared in three groups: what a thread writes whatever
    // it does (up to `partial`), the fields a heap drained whole holds at
    // zero (`idle_fields`, from `counters` on), then the hardened lane's.
    // Zig lays out the fields of one alignment in the order declared,
    // largest alignment first (the inbox), so the small fields of the first
    // group are aligned to 8 to stay in it; it sorts them by alignment with
    // an insertion sort up to 24 fields (std.sort.pdq's `max_insertion`)
    // and an unstable one past that, so a field more folds two into a
    // struct (`Recent`). With `Heap.initFresh`, a thread
    // that frees nothing to other threads touches the first two of the
    // heap's four pages (checked after `idle_pages` above).

    /// Per class, the span malloc pops from (`&empty_span` when none).
    current: [sizeclass.class_count]*Span = @splat(&empty_span),
    /// Segments this heap owns (those with free slices kept near the front).
    segments: Segments = .{},
    /// Free slices in this heap's segments not yet purged.
    dirty_slices: usize = 0,
    /// Earliest time (os.nowMs) of the next delayed purge scan.
    next_purge_ms: u32 align(8) = 0,
    flags: Flags align(8) = .{},
    /// xorshift state (never 0) for carve order and quarantine eviction.
    random: u64 = 1,
    /// Freed blocks waiting before they are reused (hardened only): the
    /// `recent_slots` freed last in order (`Recent`), then each in a random
    /// slot of `quarantine` until a later one evicts it. Here, not with the
    /// hardened fields below: its default is not zero.
    recent: Recent = .{},
    // Written by thread.zig, under its registry lock.
    state: State align(8) = .active,
    /// Every heap ever made (stats, fork).
    registry_next: ?*Heap = null,
    orphan_link: list.Link(Heap) = .{},
    /// Flushes that reached this heap while its thread had exited
    /// (thread.zig's `afterFlush`, from any thread; reset when the
    /// heap becomes an orphan).
    orphan_flushes: std.atomic.Value(u32) align(8) = .init(0),
    /// When this heap's thread last refilled (os.nowMs, at most once per
    /// `stamp_refills` refills), for thread.zig's lender search, which
    /// counts the heaps whose thread ran lately.
    refill_ms: u32 align(8) = 0,
    /// `refill_count` at which a slow refill stamps `refill_ms` again.
    next_stamp_refill: u64 = 0,
    /// Per class, spans with free blocks other than `current`, oldest
    /// first: a span that waited longest has gathered the most frees, so a
    /// refill from it lasts longest.
    partial: [sizeclass.class_count]PartialSpans = @splat(.{}),
    counters: stats.Counters = .{},
    /// The medium blocks this heap's own frees kept back (`LastFreed`).
    /// Written by malloc and free like `counters`, and zero in a heap
    /// drained whole: beside them, so that it lies in the heap's first two
    /// pages and its idle ones (`idle_fields`).
    last_freed: LastFreed = .{},
    /// Per class, one span whose blocks all came back, kept on the partial
    /// list instead of retired (when the policy keeps free slices resident
    /// at all): a class whose spans fill and empty in turn reuses it as it
    /// is, its blocks carved and linked, instead of retiring it and carving
    /// a fresh span block by block.
    empty: [sizeclass.class_count]?*Span = @splat(null),
    /// Per class, blocks other threads handed back (a chain taken from the
    /// inbox whole), handed out again as they are: a block that comes back
    /// is still counted in its span's `used`, so reusing it needs no span
    /// update, and its first touch is the one malloc's caller makes anyway.
    /// Each address is checked (`checkRemote`) when it is popped.
    stash: [sizeclass.class_count]?*Block = @splat(null),
    /// Per class, a chain taken from another heap's inbox, `lender[class]`,
    /// when this heap would otherwise take a fresh span, handed out as it
    /// is (`borrow`); `lender[class]` is set whenever the chain is not null.
    borrowed: [sizeclass.class_count]?*Block = @splat(null),
    lender: [sizeclass.class_count]*Heap = undefined,
    outbox: remote.Outbox = .{},
    quarantine: [quarantine_slots]?*Block = @splat(null),
    /// The block hardened malloc handed out last: the next malloc checks its
    /// canaries (a write past a block right after its malloc, before any
    /// free).
    last_allocated: LastAllocated = .{},
    /// Written by other threads: its own cache lines.
    inbox: remote.Inbox align(std.atomic.cache_line) = .{},

    /// Makes `heap`, whose four pages are fresh zero pages (thread.zig maps
    /// each heap), equal to `.{ .flags = flags, .random = random }` by
    /// writing only the fields whose default is not zero. A whole-struct
    /// store would fault in every page; this way a thread that frees
    /// nothing to other threads touches the first two.
    pub fn initFresh(heap: *Heap, flags: Flags, random: u64) void {
        heap.current = @splat(&empty_span);
        heap.recent.blocks = @splat(&unwritten);
        heap.flags = flags;
        heap.random = random;
    }

    // -----------------------------------------------------------------
    // Hot path.

    /// Pops a block of `class`; refills when the current span is dry. Null
    /// (errno ENOMEM) only when the system refuses memory.
    pub inline fn alloc(heap: *Heap, class: Class) ?*anyopaque {
        return heap.allocOr(class, refill);
    }

    /// `alloc` that returns `dry(heap, class)` when the current span is
    /// dry: `refill`, or an entry point's own slow path (C++'s `new`, whose
    /// slow path also runs the program's new_handler: shim.zig).
    pub inline fn allocOr(heap: *Heap, class: Class, comptime dry: anytype) ?*anyopaque {
        return heap.popCurrent(class, false, dry);
    }

    /// The `dry` of `allocOr` for a caller whose own slow path takes every
    /// request the thread cache does not serve at once (calloc, whose hit
    /// path zeroes only what it pops), the span's last block included.
    pub fn giveUp(_: *Heap, _: Class) ?*anyopaque {
        return null;
    }

    /// `allocOr`; with `note` (a class with a `last_freed` stack), the
    /// block is noted as `LastFreed.handed_out` when it comes from the
    /// current span's list.
    inline fn popCurrent(heap: *Heap, class: Class, comptime note: bool, comptime dry: anytype) ?*anyopaque {
        const span = heap.current[class];
        const block = span.free orelse return dry(heap, class);
        const delta = span_box.linkDelta(block);
        if (!span.linkFits(delta)) {
            // Laid out after the hit path, which then takes no branch.
            @branchHint(.unlikely);
            // A caller that gives up on a dry span gives up here too: its
            // own slow path pops this block again.
            if (comptime dry == giveUp) return null;
            return heap.takeLast(class);
        }
        if (note) heap.last_freed.handed_out = block;
        return heap.take(class, span, block, @ptrFromInt(delta ^ @intFromPtr(block)));
    }

    /// Hands out `block`, the head of `span`'s free list, whose successor
    /// is `next`.
    inline fn take(heap: *Heap, class: Class, span: *Span, block: *Block, next: ?*Block) *anyopaque {
        span.free = next;
        span.used += 1;
        block.cookie = 0;
        heap.counters.class_allocs[class].add(1);
        return block;
    }

    /// `alloc` of a class that keeps blocks back (malloc of 2–32 KiB): the
    /// newest block of its `last_freed` stack, if any, else the current
    /// span's.
    pub inline fn allocMedium(heap: *Heap, class: Class) ?*anyopaque {
        return heap.allocMediumOr(class, refill);
    }

    /// `allocMedium` that returns `dry(heap, class)` when the current span
    /// is dry, as `allocOr`.
    pub inline fn allocMediumOr(heap: *Heap, class: Class, comptime dry: anytype) ?*anyopaque {
        const slot = LastFreed.slotOf(class);
        std.debug.assert(slot < LastFreed.class_count);
        return heap.popLastFreed(class, slot) orelse heap.popCurrent(class, true, dry);
    }

    /// Hands out the newest block `class` keeps on `last_freed` (the
    /// heap's newest kept block if it is of `class`, else the top of the
    /// class's stack at `slot`), after checking that nothing overwrote its
    /// link or cookie since its free; null when the class keeps none.
    inline fn popLastFreed(heap: *Heap, class: Class, slot: usize) ?*anyopaque {
        const block = kept: {
            if (heap.last_freed.newest) |newest| {
                if (heap.last_freed.newest_class == class) {
                    heap.last_freed.newest = null;
                    break :kept newest;
                }
            }
            const count = heap.last_freed.counts[slot];
            if (count == 0) return null;
            heap.last_freed.counts[slot] = count - 1;
            break :kept heap.last_freed.blocks[slot][count - 1] orelse unreachable;
        };
        heap.last_freed.handed_out = block;
        if (block.link != span_box.encodeLink(block, null) or block.cookie != span_box.cookieOf(block)) {
            @branchHint(.unlikely);
            span_box.corruptedFreeList(@intFromPtr(block));
        }
        block.cookie = 0;
        heap.counters.class_allocs[class].add(1);
        return block;
    }

    /// `alloc` when the head's link failed the quick check: the span's last
    /// free block, or a corrupted list (abort). Out of line, and taking
    /// only what is still in argument registers, so the hot path keeps no
    /// stack frame.
    noinline fn takeLast(heap: *Heap, class: Class) *anyopaque {
        const span = heap.current[class];
        const block = span.free.?;
        return heap.take(class, span, block, span_box.endOfList(block));
    }

    /// Gives back a block of a span this heap owns; `cookie` is
    /// `span_box.cookieOf(block)`, which the caller computed to check it,
    /// and `class` is `span.class` (free's hit path reads it from the
    /// segment, `Segment.classOf`, so that the count below does not wait
    /// for the span record: bench/LEDGER.md).
    pub inline fn freeLocal(heap: *Heap, span: *Span, block: *Block, cookie: usize, class: Class) void {
        std.debug.assert(class == span.class);
        heap.counters.class_frees[class].add(1);
        if (class >= LastFreed.first_class) {
            // Laid out after the small classes' hit path, which then takes
            // no branch.
            @branchHint(.unlikely);
            if (heap.last_freed.newest != null) return heap.freeSettling(span, block, cookie);
            if (heap.keepOwn(class, block, cookie)) return;
        }
        heap.giveBack(span, block, cookie);
    }

    /// `freeLocal` of a medium block while `LastFreed.newest` holds one:
    /// out of line, so the hot path saves no registers for the push.
    noinline fn freeSettling(heap: *Heap, span: *Span, block: *Block, cookie: usize) void {
        heap.settleNewest();
        if (heap.keepOwn(span.class, block, cookie)) return;
        heap.giveBack(span, block, cookie);
    }

    /// Keeps a block of the heap's own, of a class with a `last_freed`
    /// stack, while `LastFreed.newest` is empty: as `newest` when malloc
    /// handed it out last, else on its class's stack. With `newest` a class
    /// keeps at most `LastFreed.depth` blocks, as with its stack alone.
    inline fn keepOwn(heap: *Heap, class: Class, block: *Block, cookie: usize) bool {
        const at = heap.markKept(class, block, cookie, LastFreed.depth) orelse return false;
        if (block == heap.last_freed.handed_out) {
            heap.last_freed.newest = block;
            heap.last_freed.newest_class = class;
        } else {
            heap.pushKept(at.slot, at.count, block);
        }
        return true;
    }

    /// Pushes `LastFreed.newest` on its class's stack, which has room: it
    /// had when the block came, and every push since would have settled
    /// the block first (own and remote frees alike), so the stack can only
    /// have shrunk.
    noinline fn settleNewest(heap: *Heap) void {
        const kept = heap.last_freed.newest.?;
        heap.last_freed.newest = null;
        const slot = LastFreed.slotOf(heap.last_freed.newest_class);
        heap.pushKept(slot, heap.last_freed.counts[slot], kept);
    }

    /// Where a block marked kept goes on its class's stack.
    const KeptAt = struct { slot: usize, count: u8 };

    /// Marks `block`, of a medium class, kept (its link names no block,
    /// its cookie says free) when its class keeps blocks and the class's
    /// stack holds fewer than `limit`: where it goes on that stack, else
    /// null.
    inline fn markKept(heap: *Heap, class: Class, block: *Block, cookie: usize, limit: u8) ?KeptAt {
        const slot = LastFreed.slotOf(class);
        if (slot >= LastFreed.class_count) return null;
        std.debug.assert(heap.last_freed.newest == null);
        const count = heap.last_freed.counts[slot];
        if (count >= limit) return null;
        block.link = span_box.encodeLink(block, null);
        block.cookie = cookie;
        return .{ .slot = slot, .count = count };
    }

    /// Pushes `block`, marked kept (its link and cookie written), on the
    /// stack at `slot`, which holds `count` (fewer than `LastFreed.depth`).
    inline fn pushKept(heap: *Heap, slot: usize, count: u8, block: *Block) void {
        std.debug.assert(count < LastFreed.depth and count == heap.last_freed.counts[slot]);
        heap.last_freed.blocks[slot][count] = block;
        heap.last_freed.counts[slot] = count + 1;
    }

    /// Gives every block of `last_freed` back to its span, or to its owner
    /// (collect boundary: a drain, `hz_collect`, or a heap whose segments
    /// are full).
    fn returnLastFreed(heap: *Heap) void {
        for (&heap.last_freed.blocks, &heap.last_freed.counts) |*blocks, *count| {
            for (blocks[0..count.*]) |kept| heap.release(kept.?);
            count.* = 0;
        }
        if (heap.last_freed.newest) |kept| heap.release(kept);
        heap.last_freed.newest = null;
        heap.last_freed.handed_out = null;
    }

    /// Puts a block back on its span (local free or collect).
    inline fn giveBack(heap: *Heap, span: *Span, block: *Block, cookie: usize) void {
        std.debug.assert(span.heap == @as(*anyopaque, heap));
        std.debug.assert(span.usedBlocks() > 0);
        // Tested before the push, so that the common case is a compare and
        // a decrement in memory: 1 (the span empties) or negative (it
        // carries full_bit) takes the edge, which pushes and decrements
        // itself.
        if (@as(i32, @bitCast(span.used)) <= 1) return heap.spanGainedFree(span, block, cookie);
        span.pushFree(block, cookie);
        span.used -= 1;
    }

    /// Gives back a block of a span another heap owns: batched in the
    /// outbox until flushed.
    pub inline fn freeRemote(heap: *Heap, span: *Span, block: *Block) void {
        // Counted first, so that a flush in `handOver` is a tail call.
        heap.counters.class_frees[span.class].add(1);
        heap.counters.remote_free_count.add(1);
        if (span.class >= LastFreed.first_class and !heap.flags.crowded) return heap.keepForeign(span, block);
        heap.handOver(span, block);
    }

    /// `freeRemote` of a medium block: kept on the heap's own stack while
    /// it has room (`LastFreed.foreign_depth`), else handed over. Out of
    /// line, so that a small block's remote free saves no registers for the
    /// call it may make.
    noinline fn keepForeign(heap: *Heap, span: *Span, block: *Block) void {
        const class = span.class;
        if (heap.last_freed.newest != null) heap.settleNewest();
        if (heap.markKept(class, block, span_box.cookieOf(block), LastFreed.foreign_depth)) |at| {
            return heap.pushKept(at.slot, at.count, block);
        }
        heap.handOver(span, block);
    }

    /// Marks a block of another heap's span free and puts it in the outbox.
    inline fn handOver(heap: *Heap, span: *Span, block: *Block) void {
        block.cookie = span_box.cookieOf(block);
        heap.outbox.push(&ownerOf(span).inbox, span.class, block, policy.remote_batch_blocks[span.class], &heap.counters);
    }

    // -----------------------------------------------------------------
    // Refill boundary.

    /// Gives the class a current span with a free block and pops it. Null
    /// (errno ENOMEM) only when the system refuses memory.
    pub noinline fn refill(heap: *Heap, class: Class) ?*anyopaque {
        // A heap that refills takes back what others free for it, now or
        // from its stash (thread.zig sweeps heaps that do not).
        heap.inbox.answer();
        // Where threads free each other's blocks, most refills are a stash
        // pop: kept free of the registers the rest saves (a tail call each).
        if (heap.stash[class]) |block| return heap.popStash(class, block);
        return heap.refillSpans(class);
    }

    /// `refill` when the class's stash is empty.
    noinline fn refillSpans(heap: *Heap, class: Class) ?*anyopaque {
        heap.counters.refill_count.add(1);
        heap.check();
        // Most refills: the current span is carved whole, no remote frees
        // wait for the class, and a partial span does. Kept short (one
        // register saved); everything else is `refillSlow`.
        const current_span = heap.current[class];
        if (!current_span.canCarve() and !heap.inbox.hasPending(class)) {
            if (heap.partial[class].head) |span| {
                if (current_span != &empty_span) current_span.setFull(true);
                return heap.allocFromPartial(class, span);
            }
            // A heap living on a borrowed chain (no span of the class, no
            // partial one, nothing in its inbox) takes its next block here,
            // as `refillSlow` would after the same tests: where threads
            // pass blocks on to their successors, one malloc in fourteen
            // (the external suite's larson: bench/LEDGER.md).
            if (current_span == &empty_span) {
                if (heap.borrowed[class]) |chain| {
                    heap.stampRunning();
                    return heap.popBorrowed(class, chain);
                }
            }
        }
        return heap.refillSlow(class);
    }

    /// `refill` when the class's current span can still carve, remote frees
    /// wait for the class, or no partial span is left.
    noinline fn refillSlow(heap: *Heap, class: Class) ?*anyopaque {
        heap.stampRunning();
        heap.retireSwept();
        // Not in the hardened lane, whose shuffled, delayed reuse stays the
        // only order in which freed blocks come back.
        if (!heap.flags.hardened) {
            if (heap.inbox.take(class)) |chain| {
                heap.counters.collect_count.add(1);
                // A saturated count may stand for any length: walked.
                const bytes = @as(usize, chain.blocks) * sizeclass.block_size_bytes[class];
                if (chain.blocks < remote.max_chain_blocks and bytes <= stash_max_bytes) {
                    return heap.popStash(class, chain.head);
                }
                _ = remote.giveBackChain(chain.head, class, heap);
                return heap.alloc(class);
            }
        }
        if (heap.takeLarger(class)) |block| return block;
        const current_span = heap.current[class];
        if (current_span != &empty_span) {
            if (current_span.carve(heap.shuffle())) return heap.alloc(class);
            if (heap.inbox.hasPending(class)) {
                heap.collect(class);
                if (current_span.free != null) return heap.alloc(class);
            }
            current_span.setFull(true);
            heap.current[class] = &empty_span;
        }
        if (heap.takeHandedBack(class)) |block| return block;
        const span = heap.spanFromSegments(class, sizeclass.span_slices[class]) orelse span: {
            // The heap's segments are full. With more threads running than
            // CPUs, the threads holding this heap's blocks may be off the
            // CPU: let them run before taking more memory (docs/DESIGN.md,
            // "Remote frees", back-off). A heap without a segment has no
            // block out.
            if (heap.segments.head != null) {
                if (heap.backOff(class)) |block| return block;
            }
            break :span heap.spanFromFullSegments(class);
        } orelse {
            os.setErrno(.NOMEM);
            return null;
        };
        heap.current[class] = span;
        const carved = span.carve(heap.shuffle());
        std.debug.assert(carved);
        return heap.alloc(class);
    }

    /// A free block of one of the `Larger.classes` classes above `class`
    /// (its `last_freed` stack first, then its current span), when `class`
    /// holds blocks of a page or more and has no free block of its own (no
    /// remote frees waiting, no partial span) that would otherwise carve
    /// fresh pages; null otherwise.
    inline fn takeLarger(heap: *Heap, class: Class) ?*anyopaque {
        if (class < Larger.first_class or class >= sizeclass.first_aligned_class) return null;
        if (heap.flags.hardened or heap.inbox.hasPending(class) or heap.partial[class].head != null) return null;
        const last = @min(@as(usize, class) + Larger.classes, sizeclass.first_aligned_class - 1);
        for (@as(usize, class) + 1..last + 1) |index| {
            const larger: Class = @intCast(index);
            const slot = LastFreed.slotOf(larger);
            if (slot < LastFreed.class_count) {
                if (heap.popLastFreed(larger, slot)) |block| return block;
            }
            if (heap.current[larger].free != null) return heap.alloc(larger);
        }
        return null;
    }

    /// Stamps `refill_ms`, at most once per `stamp_refills` refills: a
    /// clock read costs about 30 instructions, as much as a refill's fast
    /// path (callgrind: bench/LEDGER.md).
    inline fn stampRunning(heap: *Heap) void {
        const refills = heap.counters.refill_count.read();
        if (refills < heap.next_stamp_refill) return;
        heap.next_stamp_refill = refills + stamp_refills;
        @atomicStore(u32, &heap.refill_ms, os.nowMs(), .monotonic);
        heap.flags.crowded = is_crowded(heap);
    }

    /// Makes `span`, the head of `class`'s partial list, the class's
    /// current span and pops from it.
    inline fn allocFromPartial(heap: *Heap, class: Class, span: *Span) ?*anyopaque {
        heap.unlinkPartial(span);
        std.debug.assert(span.free != null);
        heap.current[class] = span;
        return heap.alloc(class);
    }

    /// Hands out the head of `class`'s stash (`block`, not yet checked).
    fn popStash(heap: *Heap, class: Class, block: *Block) *anyopaque {
        return heap.popChain(&heap.stash[class], block, heap, class);
    }

    /// Hands out `head`, the first block of a chain of `owner`'s freed
    /// blocks of `class`, checked here before its link is read, and leaves
    /// the rest of the chain in `rest`.
    inline fn popChain(heap: *Heap, rest: *?*Block, head: *Block, owner: *Heap, class: Class) *anyopaque {
        const found = owner.checkRemote(@intFromPtr(head), class);
        rest.* = @ptrFromInt(span_box.decodeLink(found.block));
        found.block.cookie = 0;
        heap.counters.class_allocs[class].add(1);
        return found.block;
    }

    /// A block of `class` from another heap's inbox, instead of a fresh
    /// span: the heap this thread last handed `class`'s frees to, or
    /// another one (`find_lender`), may be asleep (more threads than
    /// cores), its inbox holding blocks nobody can use until it wakes. The
    /// chain is taken whole (the swap its owner's collect makes) and its
    /// blocks handed out as they are, still counted in their spans' `used`;
    /// when freed they go back to their owner as any remote free. Each
    /// address is checked when it is popped. Inline (through
    /// `takeHandedBack`, in refill and back-off): a call cost the 2-thread
    /// R=90 main lane about 1% more instructions (bench/LEDGER.md,
    /// back-off).
    inline fn borrow(heap: *Heap, class: Class) ?*anyopaque {
        const chain = heap.borrowed[class] orelse heap.takeToBorrow(class) orelse return null;
        return heap.popBorrowed(class, chain);
    }

    /// Hands out the head of `class`'s borrowed chain (`chain`, not yet
    /// checked against its lender's spans), as `popStash` does the stash's.
    inline fn popBorrowed(heap: *Heap, class: Class, chain: *Block) *anyopaque {
        return heap.popChain(&heap.borrowed[class], chain, heap.lender[class], class);
    }

    /// The chain of `class` queued in the inbox this heap last flushed the
    /// class to, else in another heap's; sets `lender[class]` to its owner.
    /// Only a heap that hands blocks of the class to other owners borrows:
    /// one that only allocates them (a producer whose consumers free them)
    /// would take what another producer's own refill is about to collect,
    /// and that one would take a fresh span instead (xmalloc-test:
    /// bench/LEDGER.md).
    ///
    /// The recipient's queue only while this heap keeps fewer free slices
    /// not yet purged than the class's span takes: borrowed blocks stay
    /// their owner's, so every later free of them is remote and queued
    /// there again, for this heap to borrow again. A heap that frees what
    /// it allocates, borrowing whenever its span ran dry, ended with every
    /// malloc of the class a borrowed pop and every free of it remote
    /// (sh8bench, 4 to 8 times as long: bench/LEDGER.md); with free slices
    /// of its own it takes its span there.
    fn takeToBorrow(heap: *Heap, class: Class) ?*Block {
        const inbox = heap.outbox.recipient[class] orelse return null;
        if (heap.dirty_slices < sizeclass.span_slices[class]) {
            if (inbox.take(class)) |chain| {
                heap.lender[class] = @alignCast(@fieldParentPtr("inbox", inbox));
                return chain.head;
            }
        }
        const lender = find_lender(heap, class) orelse return null;
        const chain = lender.inbox.take(class) orelse return null;
        heap.lender[class] = lender;
        return chain.head;
    }

    /// Hands every borrowed block back to its owner as a remote free (drain).
    fn returnBorrowed(heap: *Heap) void {
        const Return = struct {
            lender: *Heap,
            borrower: *Heap,
            pub fn checkRemote(r: @This(), addr: usize, class: Class) span_box.SpanBlock {
                return r.lender.checkRemote(addr, class);
            }
            pub fn takeBack(r: @This(), found: span_box.SpanBlock) void {
                r.borrower.handOver(found.span, found.block);
            }
        };
        for (&heap.borrowed, 0..) |*chain, class| {
            const head = chain.* orelse continue;
            chain.* = null;
            _ = remote.giveBackChain(head, @intCast(class), Return{ .lender = heap.lender[class], .borrower = heap });
        }
    }

    /// Takes back the remote frees queued for `class` (collect boundary),
    /// stashed ones first.
    fn collect(heap: *Heap, class: Class) void {
        var count: u32 = 0;
        if (heap.stash[class]) |chain| {
            heap.stash[class] = null;
            count += remote.giveBackChain(chain, class, heap);
        }
        count += heap.inbox.collect(class, heap);
        if (count > 0) heap.counters.collect_count.add(1);
        heap.check();
    }

    /// The random state carve shuffles with, in the hardened lane.
    fn shuffle(heap: *Heap) ?*u64 {
        return if (heap.flags.hardened) &heap.random else null;
    }

    // -----------------------------------------------------------------
    // Quarantine (hardened lane): a freed block waits in a random slot
    // until a later free evicts it, so a freed block is not handed out
    // again at once (a use after free then hits a block nobody owns, and a
    // second free of it is still caught).

    /// Puts `block` (freed, checked and zeroed by the caller) in quarantine
    /// and returns the block it evicts, which the caller checks and gives
    /// back with `release`. A block stays among the recent ones for the
    /// next `recent_slots` frees, so it is never evicted while malloc
    /// still checks it there.
    pub fn quarantineBlock(heap: *Heap, block: *Block) ?*Block {
        std.debug.assert(heap.flags.hardened);
        const oldest = &heap.recent.blocks[heap.recent.next % recent_slots];
        const aged = oldest.*;
        oldest.* = block;
        heap.recent.next +%= 1;
        if (aged == &unwritten) return null;
        const slot = &heap.quarantine[span_box.nextRandom(&heap.random) % quarantine_slots];
        const evicted = slot.*;
        slot.* = aged;
        return evicted;
    }

    /// Gives every quarantined block back (thread exit, hz_collect).
    fn releaseQuarantine(heap: *Heap) void {
        for (&heap.recent.blocks) |*slot| {
            if (slot.* != &unwritten) heap.release(slot.*);
            slot.* = &unwritten;
        }
        for (&heap.quarantine) |*slot| {
            const block = slot.* orelse continue;
            slot.* = null;
            heap.release(block);
        }
    }

    /// A freed block this heap held back (out of quarantine, or kept on
    /// `last_freed`) goes back to its span, locally or through the owner's
    /// inbox.
    pub fn release(heap: *Heap, block: *Block) void {
        const addr = @intFromPtr(block);
        const span = Segment.of(addr).spanOf(addr);
        if (span.heap == @as(*anyopaque, heap)) {
            heap.giveBack(span, block, span_box.cookieOf(block));
        } else {
            heap.handOver(span, block);
        }
    }

    /// Called by `remote.Inbox.collect` for each address in a chain of
    /// `class`, before its link is read: the block and its span, if it is a
    /// freed block of a span of this heap and class, else an abort (the
    /// chain was overwritten after the free).
    pub inline fn checkRemote(heap: *Heap, addr: usize, class: Class) span_box.SpanBlock {
        if (!segment_box.contains(addr)) span_box.corruptedFreeList(addr);
        const span = Segment.of(addr).spanOf(addr);
        if (span.heap != @as(*anyopaque, heap)) span_box.corruptedFreeList(addr);
        if (span.class != class) span_box.corruptedFreeList(addr);
        const block = span.blockAt(addr) orelse span_box.corruptedFreeList(addr);
        if (!Span.isFree(block)) span_box.corruptedFreeList(addr);
        return .{ .span = span, .block = block };
    }

    /// Called by `remote.Inbox.collect` for each block handed back, after
    /// `checkRemote` and after its link was read. In the hardened lane a
    /// block another thread freed is still marked allocated (only a
    /// segment's owner writes its bitmap: segment.zig): the mark goes now.
    pub fn takeBack(heap: *Heap, found: span_box.SpanBlock) void {
        const addr = @intFromPtr(found.block);
        if (heap.flags.hardened and !Segment.of(addr).clearAllocated(addr)) os.fatalPointer("free(): double free detected", addr);
        heap.giveBack(found.span, found.block, span_box.cookieOf(found.block));
    }

    /// `giveBack` of a block to a span that was full or empties with it:
    /// the push, then a full span becomes partial, an empty one retires
    /// (unless it is its class's current span).
    noinline fn spanGainedFree(heap: *Heap, span: *Span, block: *Block, cookie: usize) void {
        span.pushFree(block, cookie);
        span.used -%= 1;
        if (span == heap.current[span.class]) return;
        const was_full = span.isFull();
        span.setFull(false);
        if (span.used == 0) {
            if (heap.empty[span.class] == null and policy.snapshot.purge_slices > 0) {
                if (!span.in_partial) heap.linkPartial(span);
                heap.empty[span.class] = span;
                return;
            }
            if (span.in_partial) heap.unlinkPartial(span);
            heap.retire(span, .resident);
            return;
        }
        if (was_full) heap.linkPartial(span);
    }

    // -----------------------------------------------------------------
    // Sweep: another thread, for a heap whose thread stopped collecting.

    /// Called by a thread whose flush reached this heap after tens of MiB
    /// since its inbox was last drawn on (thread.zig's `afterFlush`):
    /// takes each queue of the inbox; the spans whose every block it holds
    /// are purged and left on `inbox.swept`, and the other blocks are
    /// queued again. Such a span is the owner's to retire, but nothing of
    /// the owner touches its memory meanwhile: it is carved whole, so
    /// nothing is left to carve; no block is on its free list or live, so
    /// no malloc pops one and no free pushes one. The owner's next collect
    /// retires it (`retireSwept`). Blocks freed by other threads to a
    /// thread that went idle (a pool's worker blocked after a burst) then
    /// go back to the kernel without that thread running (tests/c/giveback
    /// `idle`). Not in the hardened lane, whose spans keep more state.
    pub fn sweep(heap: *Heap) void {
        if (heap.flags.hardened) return;
        var swept: Swept = .{};
        for (0..sizeclass.class_count) |index| {
            const class: Class = @intCast(index);
            if (!heap.inbox.hasPending(class)) continue;
            const chain = heap.inbox.takeUnanswered(class) orelse continue;
            heap.sweepChain(class, chain.head, &swept);
        }
        swept.finish(heap);
    }

    /// The spans a sweep found whole, until it purges them and leaves them
    /// to the owner: never the other way round, or the owner could retire
    /// a span and carve its slices anew before the purge.
    const Swept = struct {
        spans: [sweep_spans]*Span = undefined,
        count: usize = 0,

        fn add(swept: *Swept, heap: *Heap, span: *Span) void {
            if (swept.count == sweep_spans) swept.finish(heap);
            swept.spans[swept.count] = span;
            swept.count += 1;
        }

        /// Purges the spans, those that touch in one call (each call in a
        /// process with threads on other CPUs interrupts them to flush
        /// their TLBs), then leaves them on the owner's `inbox.swept`.
        fn finish(swept: *Swept, heap: *Heap) void {
            const spans = swept.spans[0..swept.count];
            // Span records lie in address order within a segment.
            std.mem.sortUnstable(*Span, spans, {}, struct {
                fn less(_: void, a: *Span, b: *Span) bool {
                    return @intFromPtr(a) < @intFromPtr(b);
                }
            }.less);
            var first: usize = 0;
            while (first < spans.len) {
                var end = first + 1;
                while (end < spans.len and sliceEnd(spans[end - 1]) == sliceStart(spans[end])) end += 1;
                const bytes = sliceEnd(spans[end - 1]) - sliceStart(spans[first]);
                os.purge(@ptrFromInt(sliceStart(spans[first])), bytes);
                stats.global.purged(bytes);
                first = end;
            }
            for (spans) |span| heap.inbox.pushSwept(span);
            swept.count = 0;
        }

        fn sliceStart(span: *const Span) usize {
            const segment = Segment.of(span.start);
            return segment.sliceStart(segment.sliceIndex(span));
        }

        fn sliceEnd(span: *const Span) usize {
            return sliceStart(span) + @as(usize, span.span_slices) * layout.slice_size_bytes;
        }
    };

    /// Spans that one `sweepChain` counts blocks of; blocks of any further
    /// span are queued again as they are.
    const sweep_spans = 64;

    /// A sweep's count of one chain's blocks per span, taken as
    /// `remote.giveBackChain` walks the chain (each address checked as a
    /// collect checks it), and the chain's last block.
    const Tally = struct {
        heap: *Heap,
        entries: [sweep_spans]Entry = undefined,
        spans: usize = 0,
        last: usize = 0,
        tail: ?*Block = null,

        const Entry = struct { span: *Span, blocks: u32 };

        pub fn checkRemote(tally: *Tally, addr: usize, class: Class) span_box.SpanBlock {
            return tally.heap.checkRemote(addr, class);
        }

        pub fn takeBack(tally: *Tally, found: span_box.SpanBlock) void {
            tally.tail = found.block;
            // A chain holds runs of one span's blocks: the last span is
            // tested first.
            if (tally.spans == 0 or tally.entries[tally.last].span != found.span) {
                tally.last = for (tally.entries[0..tally.spans], 0..) |entry, index| {
                    if (entry.span == found.span) break index;
                } else index: {
                    if (tally.spans == sweep_spans) return;
                    tally.entries[tally.spans] = .{ .span = found.span, .blocks = 0 };
                    tally.spans += 1;
                    break :index tally.spans - 1;
                };
            }
            tally.entries[tally.last].blocks += 1;
        }
    };

    /// `sweep` of the chain `head` of `class`: the blocks counted per span
    /// (`Tally`), and the chain queued again without the blocks of the
    /// spans found whole, which go to `swept`.
    fn sweepChain(heap: *Heap, class: Class, head: *Block, swept: *Swept) void {
        var tally: Tally = .{ .heap = heap };
        const blocks = remote.giveBackChain(head, class, &tally);
        const tail = tally.tail.?;
        const tallies = tally.entries[0..tally.spans];
        var whole: usize = 0;
        for (tallies) |entry| {
            // Every block the span can hold, each counted once: all carved.
            if (entry.blocks < entry.span.reserved) continue;
            std.debug.assert(entry.blocks == entry.span.reserved);
            tallies[whole] = entry;
            whole += 1;
        }
        if (whole == 0) return remote.publish(&heap.inbox, class, head, tail, blocks);
        var kept_head: ?*Block = null;
        var kept_tail: ?*Block = null;
        var kept_blocks: u32 = 0;
        var next: usize = @intFromPtr(head);
        while (next != 0) {
            const block: *Block = @ptrFromInt(next);
            next = span_box.decodeLink(block);
            const span = Segment.of(@intFromPtr(block)).spanOf(@intFromPtr(block));
            const whole_span = for (tallies[0..whole]) |entry| {
                if (entry.span == span) break true;
            } else false;
            if (whole_span) continue;
            if (kept_tail) |kept| kept.link = span_box.encodeLink(kept, block) else kept_head = block;
            kept_tail = block;
            kept_blocks += 1;
        }
        if (kept_head) |kept| remote.publish(&heap.inbox, class, kept, kept_tail.?, kept_blocks);
        for (tallies[0..whole]) |entry| swept.add(heap, entry.span);
    }

    /// Retires the spans another thread swept (`sweep`): their blocks all
    /// came back, their memory is purged already.
    fn retireSwept(heap: *Heap) void {
        var cursor = heap.inbox.takeSwept();
        while (cursor) |span| {
            cursor = span.swept_next;
            std.debug.assert(span.usedBlocks() == span.reserved);
            std.debug.assert(span.free == null and !span.in_partial);
            if (heap.current[span.class] == span) heap.current[span.class] = &empty_span;
            span.used = 0;
            heap.retire(span, .purged);
        }
    }

    /// Retires the empty spans kept per class (drain, or before mapping a
    /// segment: their slices may serve another class). Returns how many.
    fn retireKeptEmpty(heap: *Heap) usize {
        var count: usize = 0;
        for (&heap.empty) |*kept| {
            const span = kept.* orelse continue;
            heap.unlinkPartial(span);
            heap.retire(span, .resident);
            count += 1;
        }
        return count;
    }

    fn linkPartial(heap: *Heap, span: *Span) void {
        std.debug.assert(!span.in_partial);
        std.debug.assert(span.free != null);
        heap.partial[span.class].pushBack(span);
        span.in_partial = true;
    }

    fn unlinkPartial(heap: *Heap, span: *Span) void {
        std.debug.assert(span.in_partial);
        heap.partial[span.class].remove(span);
        span.in_partial = false;
        if (heap.empty[span.class] == span) heap.empty[span.class] = null;
    }

    // -----------------------------------------------------------------
    // Spans and segments.

    /// A span for `class` when the heap's segments have no room for one:
    /// from slices that blocks other threads handed back free, or the kept
    /// empty spans, else from a fresh segment (null when the system refuses
    /// memory).
    fn spanFromFullSegments(heap: *Heap, class: Class) ?*Span {
        const slices = sizeclass.span_slices[class];
        heap.collectAll();
        if (heap.spanFromSegments(class, slices)) |span| return span;
        if (heap.retireKeptEmpty() > 0) {
            if (heap.spanFromSegments(class, slices)) |span| return span;
        }
        before_fresh_segment();
        const segment = segment_box.acquire(heap) orelse return null;
        heap.segments.pushFront(segment);
        const span = segment.takeSpan(slices, heap, class).?;
        // A cached segment may come back resident (segment.zig's `release`).
        heap.dirty_slices += segment.dirtySlices();
        return span;
    }

    /// Yields (`back_off`) while more threads run than CPUs, each time
    /// taking a block of `class` that the threads which ran meanwhile
    /// handed back, collected or borrowed; null when none came back. Out
    /// of line: refill's other paths should not pay for its loop.
    noinline fn backOff(heap: *Heap, class: Class) ?*anyopaque {
        var yields: u32 = 0;
        while (back_off(heap, yields)) : (yields += 1) {
            if (heap.takeHandedBack(class)) |block| return block;
        }
        return null;
    }

    /// A block of `class` from what came back while the class had none:
    /// the inbox's remote frees, collected onto their spans, then a
    /// partial span, else (not in the hardened lane) a chain borrowed from
    /// another heap. Null when nothing came back.
    inline fn takeHandedBack(heap: *Heap, class: Class) ?*anyopaque {
        if (heap.inbox.hasPending(class)) heap.collect(class);
        if (heap.partial[class].head) |span| return heap.allocFromPartial(class, span);
        if (heap.flags.hardened) return null;
        return heap.borrow(class);
    }

    /// First fit over the heap's segments; those that got slices back are
    /// kept near the front, so the scan is short unless memory is full.
    fn spanFromSegments(heap: *Heap, class: Class, slices: usize) ?*Span {
        var cursor = heap.segments.head;
        while (cursor) |segment| : (cursor = Segments.next(segment)) {
            if (segment.takeSpan(slices, heap, class)) |span| {
                heap.dirty_slices -|= slices;
                return span;
            }
        }
        return null;
    }

    /// Gives an empty span's slices back to its segment (`memory`: whether
    /// they may still be resident, and so count toward `dirty_slices`).
    fn retire(heap: *Heap, span: *Span, memory: Segment.Memory) void {
        // A swept span's blocks lie on no list: its memory is purged.
        if (memory == .resident) span.check();
        const segment = Segment.of(span.start);
        std.debug.assert(segment.heap == @as(*anyopaque, heap));
        const now_ms = os.nowMs();
        if (memory == .resident) heap.dirty_slices += span.span_slices;
        segment.releaseSpan(span, now_ms, memory);
        if (segment.isEmpty() and (heap.segments.head != segment or Segments.next(segment) != null or policy.snapshot.segment_cache == 0)) {
            // Keep a heap's last segment: a thread that frees everything and
            // allocates again should not pay a map and fault each time.
            _ = heap.releaseSegment(segment);
        } else if (heap.segments.head != segment) {
            heap.segments.remove(segment);
            heap.segments.pushFront(segment);
        }
        if (heap.dirty_slices > policy.snapshot.purge_slices) heap.purgeAged(now_ms);
    }

    /// Purges the slices that stayed free for the policy's delay; slices
    /// reused sooner never pay a purge and a fault. Scans at most twice per
    /// delay.
    fn purgeAged(heap: *Heap, now_ms: u32) void {
        const delay_ms = policy.snapshot.purge_delay_ms;
        if (delay_ms > 0 and @as(i32, @bitCast(now_ms -% heap.next_purge_ms)) < 0) return;
        heap.next_purge_ms = now_ms +% @max(1, delay_ms / 2);
        var cursor = heap.segments.head;
        while (cursor) |segment| : (cursor = Segments.next(segment)) {
            heap.dirty_slices -|= segment.purgeFree(now_ms, delay_ms);
        }
        // Freed large mappings and cached segments past the same delay go
        // too: otherwise they wait for a large block's malloc or free, or
        // for a segment's release.
        _ = large.trimExpired();
        _ = segment_box.purgeCached(now_ms, delay_ms);
    }

    /// Returns the bytes the release gave back to the OS.
    fn releaseSegment(heap: *Heap, segment: *Segment) usize {
        if (heap.last_allocated.block) |block| {
            if (Segment.of(@intFromPtr(block)) == segment) heap.last_allocated = .{};
        }
        heap.dirty_slices -|= segment.dirtySlices();
        heap.segments.remove(segment);
        return segment_box.release(segment);
    }

    /// Returns free slices' memory to the OS until at most `keep_slices`
    /// stay resident, whole segments at a time, from the one that got
    /// slices back least recently (the segment list's tail). Returns the
    /// bytes.
    fn purge(heap: *Heap, keep_slices: usize) usize {
        // Counted afresh: `dirty_slices` is a trigger, which may run low.
        var resident_slices = heap.residentFreeSlices();
        var purged_slices: usize = 0;
        var cursor = heap.segments.tail;
        while (cursor) |segment| : (cursor = Segments.previous(segment)) {
            if (resident_slices <= keep_slices) break;
            const purged = segment.purgeFree(0, 0);
            resident_slices -= purged;
            purged_slices += purged;
        }
        heap.dirty_slices = resident_slices;
        return purged_slices * layout.slice_size_bytes;
    }

    /// Free slices resident in the heap's segments, counted from their
    /// masks.
    fn residentFreeSlices(heap: *const Heap) usize {
        var slices: usize = 0;
        var cursor = heap.segments.head;
        while (cursor) |segment| : (cursor = Segments.next(segment)) slices += segment.dirtySlices();
        return slices;
    }

    pub fn collectAll(heap: *Heap) void {
        heap.returnLastFreed();
        heap.retireSwept();
        for (0..sizeclass.class_count) |class| {
            if (heap.stash[class] != null or heap.inbox.hasPending(@intCast(class))) heap.collect(@intCast(class));
        }
    }

    /// Hands back what it holds for others: pending remote frees and frees
    /// waiting in the inbox. At thread exit (`force` false) the heap then
    /// keeps each class's current span and gives back the rest: its kept
    /// empty spans retire, and free slices are purged down to
    /// `exitKeepSlices`. The thread that adopts it finds each class where
    /// the last one left it, carved, and the slices its predecessor freed
    /// last still resident, so thread churn neither faults nor spreads a
    /// class over pages that other classes wrote before, and an orphan
    /// that waits long holds only those spans and slices (`compact` keeps
    /// none). `force` gives up every span that can go, purges every free
    /// slice and releases every empty segment. Returns the bytes given
    /// back to the OS.
    pub fn drain(heap: *Heap, force: bool) usize {
        heap.releaseQuarantine();
        heap.returnBorrowed();
        heap.returnLastFreed();
        heap.outbox.flushAll(&heap.counters);
        heap.collectAll();
        if (force or policy.snapshot.purge_slices == 0) heap.giveUpSpans() else _ = heap.retireKeptEmpty();
        var bytes = heap.purge(if (force) 0 else heap.exitKeepSlices());
        if (!force) return bytes;
        var cursor = heap.segments.head;
        while (cursor) |segment| {
            cursor = Segments.next(segment);
            if (segment.isEmpty()) bytes += heap.releaseSegment(segment);
        }
        return bytes;
    }

    /// Free slices a heap drained at its thread's exit keeps resident for
    /// the thread that adopts it. A heap that a thread adopted before lives
    /// in a churn of threads: it keeps four times the `purge_slices` a live
    /// heap keeps whatever their age (16 MiB in `balanced`), so a thread
    /// that starts after one that grew past `purge_slices` finds its pages
    /// in memory instead of faulting them in again. What a thread frees as
    /// it ends is younger than the purge delay, which a live heap would
    /// keep, but an orphan runs no event that ages it, so the bound is
    /// fixed: the warm orphans thread.zig keeps (two) then hold at most
    /// half the give-back bound of tests/c/giveback. A heap never adopted
    /// (a program's first threads, a lone worker) keeps `purge_slices`:
    /// what the process touches after its exit would stack on more
    /// (bench/LEDGER.md).
    pub fn exitKeepSlices(heap: *const Heap) usize {
        return if (heap.flags.adopted) adopted_keep_factor * policy.snapshot.purge_slices else policy.snapshot.purge_slices;
    }

    /// `exitKeepSlices` of an adopted heap, in `purge_slices`.
    pub const adopted_keep_factor = 4;

    /// For a heap whose thread exited (its drain ran): takes back what
    /// flushes queued since, which no thread of its own would collect,
    /// and purges free slices down to `keep_slices` (`exitKeepSlices`
    /// for a warm orphan, else the `purge_slices` a live heap keeps).
    /// Blocks freed after their owner's thread exited then leave no more
    /// memory behind than that; what stays is resident for the thread that
    /// adopts the heap. Returns the bytes given back.
    pub fn collectExited(heap: *Heap, keep_slices: usize) usize {
        heap.collectAll();
        if (heap.dirty_slices <= keep_slices) return 0;
        return heap.purge(keep_slices);
    }

    /// Gives back the pages of the heap that hold only `idle_fields`, of a
    /// heap drained whole (`drain(true)`) whose counters the caller moved
    /// elsewhere, while no thread uses it: 8 of a heap's 16 KiB, which the
    /// registry keeps for good (thread.zig). They read as zero next, which
    /// is each of those fields' value in a fresh heap.
    pub fn purgeIdlePages(heap: *Heap) void {
        std.debug.assert(heap.isIdle());
        const base: [*]u8 = @ptrCast(heap);
        os.purge(@alignCast(base + idle_pages.start), idle_pages.end - idle_pages.start);
        // Its refill count starts again from 0, and so must the count at
        // which `stampRunning` stamps next, or the heap would look idle to
        // thread.zig's running-heap scan for as many refills as it had.
        heap.next_stamp_refill = 0;
    }

    /// Whether every field of `idle_fields` holds its zero value (no kept
    /// empty span, stash, borrowed chain, kept block or batch, all counters
    /// 0).
    fn isIdle(heap: *const Heap) bool {
        for (heap.empty, heap.stash, heap.borrowed) |kept, stashed, borrowed| {
            if (kept != null or stashed != null or borrowed != null) return false;
        }
        if (heap.outbox.occupied.count() != 0) return false;
        for (heap.last_freed.counts) |count| {
            if (count != 0) return false;
        }
        if (heap.last_freed.newest != null) return false;
        const zero: stats.Counters = .{};
        return std.mem.eql(u8, std.mem.asBytes(&heap.counters), std.mem.asBytes(&zero));
    }

    /// Current spans become partial (or full), empty ones retire, and so do
    /// the kept empty spans.
    fn giveUpSpans(heap: *Heap) void {
        for (&heap.current) |*current| {
            const current_span = current.*;
            if (current_span == &empty_span) continue;
            current.* = &empty_span;
            if (current_span.used == 0) {
                heap.retire(current_span, .resident);
            } else if (current_span.free != null) {
                heap.linkPartial(current_span);
            } else {
                current_span.setFull(true);
            }
        }
        _ = heap.retireKeptEmpty();
    }

    /// True when the heap owns no segment (everything was given back).
    pub fn isBare(heap: *const Heap) bool {
        return heap.segments.isEmpty();
    }

    /// Asserts that `block`, kept by `last_freed`, is a freed block of a
    /// span of `class`.
    fn checkKept(block: *Block, class: usize) void {
        const addr = @intFromPtr(block);
        const span = Segment.of(addr).spanOf(addr);
        std.debug.assert(span.class == class);
        std.debug.assert(span.blockAt(addr) == block);
        std.debug.assert(Span.isFree(block));
    }

    /// Asserts the heap's invariants (safety builds only): each class's
    /// current and partial spans belong to this heap and class, partial
    /// spans have free blocks, every span's own invariant holds, and each
    /// block `last_freed` keeps is a freed block of a span of its class.
    pub fn check(heap: *const Heap) void {
        if (!build_options.safety) return;
        for (&heap.last_freed.blocks, heap.last_freed.counts, LastFreed.first_class..) |*blocks, count, class| {
            std.debug.assert(count <= LastFreed.depth);
            for (blocks[0..count]) |kept| checkKept(kept.?, class);
        }
        if (heap.last_freed.newest) |block| {
            const class = heap.last_freed.newest_class;
            // It counts with its class's stack.
            std.debug.assert(heap.last_freed.counts[LastFreed.slotOf(class)] < LastFreed.depth);
            checkKept(block, class);
        }
        for (heap.current, &heap.partial, 0..) |current, *partial, class| {
            if (current != &empty_span) {
                std.debug.assert(current.heap == @as(*const anyopaque, heap));
                std.debug.assert(current.class == class);
                std.debug.assert(!current.in_partial);
                std.debug.assert(!current.isFull());
                current.check();
            }
            var cursor = partial.head;
            while (cursor) |span| : (cursor = PartialSpans.next(span)) {
                std.debug.assert(span.heap == @as(*const anyopaque, heap));
                std.debug.assert(span.class == class);
                std.debug.assert(span.in_partial);
                std.debug.assert(span.free != null);
                std.debug.assert(!span.isFull());
                span.check();
            }
        }
    }
};

/// The heap that owns a live span.
pub inline fn ownerOf(span: *const Span) *Heap {
    return @ptrCast(@alignCast(span.heap.?));
}

/// A free from a thread that can have no heap (its exit handler already
/// ran, or no memory for one): hand the block straight to the owner.
pub fn freeWithoutHeap(span: *Span, block: *Block) void {
    block.cookie = span_box.cookieOf(block);
    remote.publish(&ownerOf(span).inbox, span.class, block, block, 1);
    stats.global.free_count.add(1);
    stats.global.free_bytes.add(span.block_size);
    stats.global.remote_free_count.add(1);
}

/// Fills `blocks` with blocks of `class` from `heap`.
fn allocAll(heap: *Heap, class: Class, blocks: []*anyopaque) !void {
    for (blocks) |*slot| slot.* = heap.alloc(class) orelse return error.OutOfMemory;
}

/// The span that holds `p`.
fn spanOfBlock(p: *anyopaque) *Span {
    const addr = @intFromPtr(p);
    return Segment.of(addr).spanOf(addr);
}

/// The class of the span that holds `p`.
fn spanClassOf(p: *anyopaque) Class {
    return spanOfBlock(p).class;
}

/// Frees a block of `heap`'s on `heap`'s own thread. For tests
/// (thread.zig's too).
pub fn freeOwn(heap: *Heap, p: *anyopaque) void {
    const addr = @intFromPtr(p);
    const span = Segment.of(addr).spanOf(addr);
    const block = span.blockAt(addr).?;
    heap.freeLocal(span, block, span_box.cookieOf(block), span.class);
}

test "a fresh heap set up over zero pages equals the default heap" {
    const zeroed = try std.testing.allocator.create(Heap);
    defer std.testing.allocator.destroy(zeroed);
    @memset(std.mem.asBytes(zeroed), 0);
    zeroed.initFresh(.{ .hardened = true }, 7);
    var expected: Heap = .{ .flags = .{ .hardened = true }, .random = 7 };
    // The one field without a default: read only beside a borrowed chain.
    expected.lender = zeroed.lender;
    inline for (std.meta.fields(Heap)) |field| {
        if (!std.meta.eql(@field(expected, field.name), @field(zeroed.*, field.name))) {
            std.debug.print("Heap.{s} differs from its default\n", .{field.name});
            return error.TestUnexpectedResult;
        }
    }
}

test "alloc and free through a heap, spans retire and segments return" {
    span_box.initKeys(.{ 0x1234, 0x5678 });
    var heap: Heap = .{};
    var blocks: [5000]*anyopaque = undefined;
    const class = sizeclass.classOf(100);
    try allocAll(&heap, class, &blocks);
    for (blocks) |p| {
        try std.testing.expect(segment_box.contains(@intFromPtr(p)));
        freeOwn(&heap, p);
    }
    heap.check();
    _ = heap.drain(true);
    try std.testing.expect(heap.isBare());
}

test "at thread exit a heap keeps each class's current span and purges free slices down to exitKeepSlices" {
    span_box.initKeys(.{ 0x1234, 0x5678 });
    const saved = policy.snapshot;
    defer policy.snapshot = saved;
    for ([_]u32{ 1024, 2, 1024, 2 }, [_]bool{ false, false, true, true }) |keep_slices, adopted| {
        policy.snapshot.purge_slices = keep_slices;
        var heap: Heap = .{ .flags = .{ .adopted = adopted } };
        var blocks: [20000]*anyopaque = undefined;
        const class = sizeclass.classOf(100);
        try allocAll(&heap, class, &blocks);
        for (blocks) |p| freeOwn(&heap, p);
        const current = heap.current[class];
        try std.testing.expect(current != &empty_span);
        const freed_slices = heap.residentFreeSlices();
        try std.testing.expect(freed_slices > 2);

        _ = heap.drain(false);
        try std.testing.expect(heap.current[class] == current);
        try std.testing.expect(heap.empty[class] == null);
        // What the heap freed stays resident for the next thread, up to
        // `exitKeepSlices`, more for a heap in a churn of threads (the
        // drain retires the kept empty span too).
        try std.testing.expectEqual(@as(usize, if (adopted) Heap.adopted_keep_factor * keep_slices else keep_slices), heap.exitKeepSlices());
        if (freed_slices <= heap.exitKeepSlices()) {
            try std.testing.expect(heap.residentFreeSlices() >= freed_slices);
        }
        try std.testing.expect(heap.residentFreeSlices() <= heap.exitKeepSlices());
        try std.testing.expectEqual(heap.residentFreeSlices(), heap.dirty_slices);
        heap.check();
        // The next thread's first malloc of the class comes from that span.
        const again = heap.alloc(class) orelse return error.OutOfMemory;
        try std.testing.expect(spanOfBlock(again) == current);
        freeOwn(&heap, again);
        _ = heap.drain(true);
        try std.testing.expect(heap.isBare());
    }
}

/// Frees another heap's `blocks` through `freer` (remote frees), flushed to
/// their owner before it returns. For tests (thread.zig's too).
pub fn freeRemotely(freer: *Heap, blocks: []const *anyopaque) void {
    freeRemoteEach(freer, blocks);
    freer.returnLastFreed();
    freer.outbox.flushAll(&freer.counters);
}

/// `freeRemote` of each of another heap's `blocks` through `freer`, as a
/// program's free would, without the flush. For tests.
fn freeRemoteEach(freer: *Heap, blocks: []const *anyopaque) void {
    for (blocks) |p| {
        const addr = @intFromPtr(p);
        const span = Segment.of(addr).spanOf(addr);
        freer.freeRemote(span, span.blockAt(addr).?);
    }
}

/// Frees `blocks` from a thread with a heap of its own (remote frees),
/// flushed to their owner before it returns.
fn freeOnAnotherThread(blocks: []const *anyopaque) !void {
    const Freer = struct {
        fn run(blocks_to_free: []const *anyopaque) void {
            var own: Heap = .{};
            freeRemotely(&own, blocks_to_free);
        }
    };
    const thread = try std.Thread.spawn(.{}, Freer.run, .{blocks});
    thread.join();
}

test "remote frees come back through collect" {
    span_box.initKeys(.{ 0x1234, 0x5678 });
    var heap: Heap = .{};
    const class = sizeclass.classOf(64);
    var blocks: [1000]*anyopaque = undefined;
    try allocAll(&heap, class, &blocks);
    try freeOnAnotherThread(&blocks);
    try std.testing.expect(heap.inbox.hasPending(class));
    heap.collectAll();
    try std.testing.expectEqual(@as(u32, 0), spanOfBlock(blocks[0]).used);
    heap.check();
    _ = heap.drain(true);
}

test "a sweep purges the spans whose every block waits in the inbox, and the owner retires them" {
    span_box.initKeys(.{ 0x1234, 0x5678 });
    var heap: Heap = .{};
    const class = sizeclass.classOf(1024);
    const first = heap.alloc(class) orelse return error.OutOfMemory;
    const per_span: usize = spanOfBlock(first).reserved;
    // Three spans handed out whole, then the current one half: every block
    // of the three comes back through the inbox, half of the fourth's.
    const blocks = try std.testing.allocator.alloc(*anyopaque, 3 * per_span + per_span / 2);
    defer std.testing.allocator.free(blocks);
    blocks[0] = first;
    try allocAll(&heap, class, blocks[1..]);
    for (blocks) |p| @memset(@as([*]u8, @ptrCast(p))[0..1024], 0xA5);
    try freeOnAnotherThread(blocks);
    heap.sweep();
    var swept: usize = 0;
    var cursor = heap.inbox.swept.load(.monotonic);
    while (cursor) |span| : (cursor = span.swept_next) {
        try std.testing.expect(span != heap.current[class]);
        swept += 1;
    }
    try std.testing.expectEqual(@as(usize, 3), swept);
    // Purged: the first span's blocks read zero; the current span's blocks
    // wait in the inbox again, untouched past their link and cookie.
    try std.testing.expectEqual(@as(u8, 0), @as([*]const u8, @ptrCast(blocks[0]))[512]);
    try std.testing.expectEqual(@as(u8, 0xA5), @as([*]const u8, @ptrCast(blocks[blocks.len - 1]))[512]);
    try std.testing.expect(heap.inbox.hasPending(class));
    heap.collectAll();
    try std.testing.expect(heap.inbox.swept.load(.monotonic) == null);
    try std.testing.expectEqual(@as(u32, 0), heap.current[class].used);
    // The swept slices are free and not counted as resident.
    try std.testing.expectEqual(heap.residentFreeSlices(), heap.dirty_slices);
    heap.check();
    _ = heap.drain(true);
    try std.testing.expect(heap.isBare());
}

test "a swept span that is still its class's current one retires at the owner's next refill" {
    span_box.initKeys(.{ 0x1234, 0x5678 });
    var heap: Heap = .{};
    const class = sizeclass.classOf(2048);
    const first = heap.alloc(class) orelse return error.OutOfMemory;
    const span = spanOfBlock(first);
    const blocks = try std.testing.allocator.alloc(*anyopaque, span.reserved);
    defer std.testing.allocator.free(blocks);
    blocks[0] = first;
    try allocAll(&heap, class, blocks[1..]);
    try std.testing.expect(heap.current[class] == span and span.free == null and !span.canCarve());
    try freeOnAnotherThread(blocks);
    heap.sweep();
    try std.testing.expect(heap.inbox.swept.load(.monotonic) == span);
    // The owner's malloc finds the span dry, refills, and retires it.
    const again = heap.alloc(class) orelse return error.OutOfMemory;
    try std.testing.expect(heap.inbox.swept.load(.monotonic) == null);
    try std.testing.expect(heap.current[class] != span or span.used == 1);
    heap.check();
    freeOwn(&heap, again);
    _ = heap.drain(true);
    try std.testing.expect(heap.isBare());
}

test "a class hands remote frees out again from its stash, small or medium" {
    span_box.initKeys(.{ 0x1234, 0x5678 });
    for ([_]usize{ 64, 8192 }) |size| {
        var heap: Heap = .{};
        const class = sizeclass.classOf(size);
        var blocks: [100]*anyopaque = undefined;
        try allocAll(&heap, class, &blocks);
        try freeOnAnotherThread(&blocks);
        const span = spanOfBlock(blocks[0]);
        const used_before = span.used;
        // The refill takes the whole inbox chain and pops its head; no
        // span's count moves, since the block goes straight back out.
        const again = heap.refill(class) orelse return error.OutOfMemory;
        try std.testing.expect(std.mem.indexOfScalar(*anyopaque, &blocks, again) != null);
        try std.testing.expect(heap.stash[class] != null);
        try std.testing.expect(!heap.inbox.hasPending(class));
        try std.testing.expectEqual(used_before, span.used);
        freeOwn(&heap, again);
        // Drain gives the stashed blocks back to their spans: nothing is left.
        _ = heap.drain(true);
        try std.testing.expect(heap.stash[class] == null);
        try std.testing.expect(heap.isBare());
    }
}

test "a chain of remote frees past the stash's bound goes back to its spans" {
    span_box.initKeys(.{ 0x1234, 0x5678 });
    var heap: Heap = .{};
    const class = sizeclass.classOf(8192);
    var blocks: [200]*anyopaque = undefined;
    try std.testing.expect(blocks.len * sizeclass.block_size_bytes[class] > stash_max_bytes);
    try allocAll(&heap, class, &blocks);
    try freeOnAnotherThread(&blocks);
    const again = heap.refill(class) orelse return error.OutOfMemory;
    try std.testing.expect(std.mem.indexOfScalar(*anyopaque, &blocks, again) != null);
    try std.testing.expect(heap.stash[class] == null);
    try std.testing.expect(!heap.inbox.hasPending(class));
    // Every other block is back on its span: the one handed out is the
    // only one its span counts.
    const span = spanOfBlock(again);
    try std.testing.expectEqual(@as(u32, 1), span.usedBlocks());
    heap.check();
    freeOwn(&heap, again);
    _ = heap.drain(true);
    try std.testing.expect(heap.isBare());
}

test "a medium class hands out the blocks its heap freed last, newest first" {
    span_box.initKeys(.{ 0x1234, 0x5678 });
    var heap: Heap = .{};
    const class = sizeclass.classOf(4096);
    try std.testing.expect(LastFreed.slotOf(class) < LastFreed.class_count);
    try std.testing.expect(LastFreed.slotOf(sizeclass.classOf(2048)) >= LastFreed.class_count);
    try std.testing.expect(LastFreed.slotOf(sizeclass.classOf(32 * 1024 + 1)) >= LastFreed.class_count);
    // Spread over several spans, so that most frees land outside the
    // current one.
    var blocks: [LastFreed.depth + 40]*anyopaque = undefined;
    try allocAll(&heap, class, &blocks);
    for (blocks) |block| freeOwn(&heap, block);
    // The first `depth` freed come back, newest first, still counted in
    // their spans; the others went back to their spans.
    for (0..LastFreed.depth) |i| {
        const again = heap.allocMedium(class) orelse return error.OutOfMemory;
        try std.testing.expectEqual(blocks[LastFreed.depth - 1 - i], again);
    }
    try std.testing.expectEqual(@as(u8, 0), heap.last_freed.counts[LastFreed.slotOf(class)]);
    try std.testing.expectEqual(@as(?*Block, null), heap.last_freed.newest);
    // Freed again, the first (the block malloc handed out last) becomes
    // `LastFreed.newest` and goes on the stack under the next.
    for (blocks[0..LastFreed.depth]) |block| freeOwn(&heap, block);
    try std.testing.expectEqual(@as(u8, LastFreed.depth), heap.last_freed.counts[LastFreed.slotOf(class)]);
    try std.testing.expectEqual(@as(?*Block, null), heap.last_freed.newest);
    heap.check();
    // Drain gives the kept blocks back to their spans: nothing is left.
    _ = heap.drain(true);
    try std.testing.expectEqual(@as(u8, 0), heap.last_freed.counts[LastFreed.slotOf(class)]);
    try std.testing.expect(heap.isBare());
}

test "a medium block freed right after its malloc is kept at a fixed place, not on the stack" {
    span_box.initKeys(.{ 0x1234, 0x5678 });
    var heap: Heap = .{};
    const class = sizeclass.classOf(4096);
    const slot = LastFreed.slotOf(class);
    // The first block comes from a refill, which notes nothing: its free
    // puts it on the stack, whose pop notes it.
    const block = heap.allocMedium(class) orelse return error.OutOfMemory;
    freeOwn(&heap, block);
    try std.testing.expectEqual(@as(u8, 1), heap.last_freed.counts[slot]);
    try std.testing.expectEqual(block, heap.allocMedium(class) orelse return error.OutOfMemory);
    // From then on, a loop of malloc and free goes through `newest`.
    for (0..4) |_| {
        freeOwn(&heap, block);
        try std.testing.expectEqual(@as(?*Block, @ptrCast(@alignCast(block))), heap.last_freed.newest);
        try std.testing.expectEqual(@as(u8, 0), heap.last_freed.counts[slot]);
        try std.testing.expectEqual(block, heap.allocMedium(class) orelse return error.OutOfMemory);
        try std.testing.expectEqual(@as(?*Block, null), heap.last_freed.newest);
    }
    // Another kept block pushes it on its stack first: each class still
    // gets its newest block first.
    const other = heap.allocMedium(class + 1) orelse return error.OutOfMemory;
    freeOwn(&heap, block);
    try std.testing.expectEqual(@as(?*Block, @ptrCast(@alignCast(block))), heap.last_freed.newest);
    freeOwn(&heap, other);
    try std.testing.expectEqual(@as(?*Block, null), heap.last_freed.newest);
    try std.testing.expectEqual(@as(u8, 1), heap.last_freed.counts[slot]);
    heap.check();
    try std.testing.expectEqual(other, heap.allocMedium(class + 1) orelse return error.OutOfMemory);
    try std.testing.expectEqual(block, heap.allocMedium(class) orelse return error.OutOfMemory);
    for ([_]*anyopaque{ block, other }) |kept| freeOwn(&heap, kept);
    _ = heap.drain(true);
    try std.testing.expectEqual(@as(?*Block, null), heap.last_freed.newest);
    try std.testing.expect(heap.isBare());
}

test "a medium class with no free block takes one from a class just above" {
    span_box.initKeys(.{ 0x1234, 0x5678 });
    var heap: Heap = .{};
    const class = Larger.first_class;
    const top = class + Larger.classes;
    // Two classes up: its block waits on that class's stack.
    const spare = heap.allocMedium(top) orelse return error.OutOfMemory;
    freeOwn(&heap, spare);
    const taken = heap.allocMedium(class) orelse return error.OutOfMemory;
    try std.testing.expectEqual(spare, taken);
    try std.testing.expectEqual(@as(u8, 0), heap.last_freed.counts[LastFreed.slotOf(top)]);
    // It stays a block of its span's class.
    freeOwn(&heap, taken);
    try std.testing.expectEqual(@as(?*Block, @ptrCast(@alignCast(taken))), heap.last_freed.newest);
    try std.testing.expectEqual(top, heap.last_freed.newest_class);
    // Three classes up is too far: `class` carves a block of its own.
    const top_again = heap.allocMedium(top) orelse return error.OutOfMemory;
    const far = heap.allocMedium(top + 1) orelse return error.OutOfMemory;
    freeOwn(&heap, far);
    const own = heap.allocMedium(class) orelse return error.OutOfMemory;
    try std.testing.expect(own != far);
    try std.testing.expectEqual(class, spanClassOf(own));
    // A class below a page takes nothing from the page class above it.
    const page_block = heap.allocMedium(class) orelse return error.OutOfMemory;
    freeOwn(&heap, page_block);
    const below = heap.allocMedium(class - 1) orelse return error.OutOfMemory;
    try std.testing.expect(below != page_block);
    // Above 32 KiB no class keeps a stack: the block comes from the larger
    // class's current span.
    const big = sizeclass.classOf(40 * 1024);
    const neighbours = [_]*anyopaque{
        heap.alloc(big + 1) orelse return error.OutOfMemory,
        heap.alloc(big + 1) orelse return error.OutOfMemory,
    };
    freeOwn(&heap, neighbours[0]);
    try std.testing.expectEqual(neighbours[0], heap.alloc(big) orelse return error.OutOfMemory);
    heap.check();
    for ([_]*anyopaque{ top_again, own, below, neighbours[0], neighbours[1] }) |block| freeOwn(&heap, block);
    _ = heap.drain(true);
    try std.testing.expect(heap.isBare());
}

test "a remote free keeps a few medium blocks for its own heap unless crowded" {
    span_box.initKeys(.{ 0x1234, 0x5678 });
    var owner: Heap = .{};
    var freer: Heap = .{};
    const class = sizeclass.classOf(4096);
    var blocks: [LastFreed.foreign_depth + 2]*anyopaque = undefined;
    try allocAll(&owner, class, &blocks);
    freeRemoteEach(&freer, &blocks);
    // The first `foreign_depth` stay with the freer, the rest go to the
    // owner's batch.
    try std.testing.expectEqual(@as(u8, LastFreed.foreign_depth), freer.last_freed.counts[LastFreed.slotOf(class)]);
    freer.check();
    const again = freer.allocMedium(class) orelse return error.OutOfMemory;
    try std.testing.expectEqual(blocks[LastFreed.foreign_depth - 1], again);
    // Crowded, a remote free hands the block over.
    freer.flags.crowded = true;
    freeRemoteEach(&freer, &.{again});
    try std.testing.expectEqual(@as(u8, LastFreed.foreign_depth - 1), freer.last_freed.counts[LastFreed.slotOf(class)]);
    // Drain hands what it kept to the owner, which collects every block.
    _ = freer.drain(true);
    try std.testing.expectEqual(@as(u8, 0), freer.last_freed.counts[LastFreed.slotOf(class)]);
    try std.testing.expect(owner.inbox.hasPending(class));
    _ = owner.drain(true);
    try std.testing.expect(owner.isBare());
    try std.testing.expect(freer.isBare());
}

test "a heap out of spans borrows the blocks it handed to another heap" {
    span_box.initKeys(.{ 0x1234, 0x5678 });
    var owner: Heap = .{};
    var borrower: Heap = .{};
    const class = sizeclass.classOf(8192);
    var blocks: [16]*anyopaque = undefined;
    try allocAll(&owner, class, &blocks);
    freeRemotely(&borrower, &blocks);
    try std.testing.expect(owner.inbox.hasPending(class));
    // With no span of its own, the borrower's malloc takes them from the
    // owner's inbox instead of a fresh span: no segment of its own.
    var again: [8]*anyopaque = undefined;
    try allocAll(&borrower, class, &again);
    for (again) |p| try std.testing.expect(std.mem.indexOfScalar(*anyopaque, &blocks, p) != null);
    try std.testing.expect(!owner.inbox.hasPending(class));
    try std.testing.expect(borrower.borrowed[class] != null);
    try std.testing.expect(borrower.isBare());
    // Freed, borrowed blocks go back to their owner as any remote free, and
    // drain hands back those not used.
    freeRemotely(&borrower, &again);
    _ = borrower.drain(true);
    try std.testing.expect(borrower.borrowed[class] == null);
    try std.testing.expect(borrower.isBare());
    // All sixteen are the owner's again (one still out would keep its
    // segment).
    owner.collectAll();
    owner.check();
    _ = owner.drain(true);
    try std.testing.expect(owner.isBare());
}

test "a heap with free slices of its own takes its span there instead of borrowing from the heap it hands blocks to" {
    span_box.initKeys(.{ 0x1234, 0x5678 });
    // The borrower frees what it allocated of a larger class: three spans of
    // four blocks, the first two emptied; the first is kept for the class,
    // the second retires, its slices free and not yet purged.
    var borrower: Heap = .{};
    const roomy = sizeclass.classOf(64 * 1024);
    var own: [12]*anyopaque = undefined;
    try allocAll(&borrower, roomy, &own);
    for (own[0..8]) |p| freeOwn(&borrower, p);
    // It hands blocks of a smaller class to their owner.
    var owner: Heap = .{};
    const class = sizeclass.classOf(8192);
    var blocks: [16]*anyopaque = undefined;
    try allocAll(&owner, class, &blocks);
    freeRemotely(&borrower, &blocks);
    try std.testing.expect(borrower.dirty_slices >= sizeclass.span_slices[class]);
    // Its malloc of that class then takes a span from its free slices: the
    // owner's queue stays for the owner.
    var mine: [1]*anyopaque = undefined;
    try allocAll(&borrower, class, &mine);
    try std.testing.expect(std.mem.indexOfScalar(*anyopaque, &blocks, mine[0]) == null);
    try std.testing.expect(borrower.borrowed[class] == null);
    try std.testing.expect(owner.inbox.hasPending(class));
    freeOwn(&borrower, mine[0]);
    for (own[8..]) |p| freeOwn(&borrower, p);
    _ = borrower.drain(true);
    try std.testing.expect(borrower.isBare());
    owner.collectAll();
    _ = owner.drain(true);
    try std.testing.expect(owner.isBare());
}

test "only a heap that hands blocks of a class to other heaps borrows that class from a lender" {
    span_box.initKeys(.{ 0x1234, 0x5678 });
    var owner: Heap = .{};
    var freer: Heap = .{};
    var borrower: Heap = .{};
    var third: Heap = .{};
    const class = sizeclass.classOf(8192);
    var blocks: [16]*anyopaque = undefined;
    try allocAll(&owner, class, &blocks);
    freeRemotely(&freer, &blocks);
    const Lender = struct {
        var heap: *Heap = undefined;
        fn find(_: *Heap, _: Class) ?*Heap {
            return heap;
        }
    };
    Lender.heap = &owner;
    const saved = find_lender;
    defer find_lender = saved;
    find_lender = Lender.find;
    // It never handed a block of the class to anyone: a producer.
    try std.testing.expect(borrower.takeToBorrow(class) == null);
    try std.testing.expect(owner.inbox.hasPending(class));
    // Once it hands one to a third heap (which collected it), the lender's
    // blocks are its to borrow.
    var handed: [1]*anyopaque = undefined;
    try allocAll(&third, class, &handed);
    freeRemotely(&borrower, &handed);
    third.collectAll();
    borrower.borrowed[class] = borrower.takeToBorrow(class) orelse return error.TestUnexpectedResult;
    try std.testing.expectEqual(&owner, borrower.lender[class]);
    try std.testing.expect(!owner.inbox.hasPending(class));
    // Drain hands them back; every heap gives back all it mapped.
    _ = borrower.drain(true);
    for ([_]*Heap{ &owner, &third }) |heap| {
        heap.collectAll();
        _ = heap.drain(true);
        try std.testing.expect(heap.isBare());
    }
}

test "a heap whose segments have no room backs off, then takes the blocks handed back meanwhile" {
    span_box.initKeys(.{ 0x1234, 0x5678 });
    const class = sizeclass.classOf(8192);
    const per_segment = (layout.slices_per_segment - 1) / sizeclass.span_slices[class] * (sizeclass.span_slices[class] * layout.slice_size_bytes / sizeclass.block_size_bytes[class]);
    const BackOff = struct {
        var freer: Heap = .{};
        var handed_back: []const *anyopaque = &.{};
        var calls: u32 = 0;
        // Another thread ran meanwhile and freed some of the heap's blocks;
        // two yields at most.
        fn run(_: *Heap, yields: u32) bool {
            if (yields == 2) return false;
            calls += 1;
            freeRemotely(&freer, handed_back);
            handed_back = &.{};
            return true;
        }
    };
    const saved = back_off;
    defer back_off = saved;
    back_off = BackOff.run;
    var heap: Heap = .{};
    const blocks = try std.testing.allocator.alloc(*anyopaque, per_segment);
    defer std.testing.allocator.free(blocks);
    try allocAll(&heap, class, blocks);
    try std.testing.expectEqual(@as(u32, 0), BackOff.calls);
    try std.testing.expect(heap.segments.head != null and Segments.next(heap.segments.head.?) == null);
    // The one segment is full: the next malloc backs off and takes a block
    // handed back instead of mapping a second segment.
    BackOff.handed_back = blocks[0..4];
    var taken: [4]*anyopaque = undefined;
    try allocAll(&heap, class, &taken);
    try std.testing.expectEqual(@as(u32, 1), BackOff.calls);
    for (taken) |p| try std.testing.expect(std.mem.indexOfScalar(*anyopaque, blocks[0..4], p) != null);
    try std.testing.expect(Segments.next(heap.segments.head.?) == null);
    // Once nothing comes back, the heap grows.
    const grown = heap.alloc(class) orelse return error.OutOfMemory;
    try std.testing.expectEqual(@as(u32, 3), BackOff.calls);
    try std.testing.expect(Segments.next(heap.segments.head.?) != null);
    freeOwn(&heap, grown);
    for (taken) |p| freeOwn(&heap, p);
    for (blocks[4..]) |p| freeOwn(&heap, p);
    _ = heap.drain(true);
    try std.testing.expect(heap.isBare());
}
