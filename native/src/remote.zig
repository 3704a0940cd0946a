//! Remote box: frees of blocks that another heap owns.
//!
//! Remote state crosses exactly two boundaries:
//!   flush   — the freeing thread hands a batch of blocks of one size class
//!             to their owner: one CAS pushes the chain onto the owner's
//!             inbox queue for that class;
//!   collect — the owner takes back everything queued for one class (one
//!             swap), so a refill of class c touches only class c's blocks
//!             (docs/DESIGN.md, "Remote frees"), and hands the blocks out
//!             again as they are (heap.zig's stash), or, in the hardened
//!             lane and at drain, gives each back to its span; a heap
//!             about to take a fresh span may collect, instead, the queue it
//!             last flushed the class to (heap.zig's `borrow`); for a heap
//!             whose thread exited, a thread whose flush reached it
//!             collects (`after_flush`); for a heap whose thread stopped
//!             collecting, a thread whose flush reached it sweeps: it purges
//!             the spans whose every block waits in the inbox and leaves
//!             them on `Inbox.swept`, which the owner's next collect retires
//!             (heap.zig's `sweep`).
//! Until a flush, a freeing thread keeps its remote frees in its outbox: one
//! batch per size class, for one owner at a time (a free for another owner
//! flushes the batch first). A hashed table of (owner, class) batches
//! collided so often that batches averaged two blocks.
const std = @import("std");
const segment_box = @import("segment.zig");
const sizeclass = @import("sizeclass.zig");
const span_box = @import("span.zig");
const stats = @import("stats.zig");
const Block = span_box.Block;
const Span = span_box.Span;
const Class = sizeclass.Class;

/// Called after each flush with the inbox it went to and the flushing
/// outbox's running count of bytes flushed (to any inbox), before and after
/// the flush: two words in registers, so that the flush ends in a tail
/// call. Set once at process start by thread.zig, which knows whether the
/// inbox's owner still has a thread to collect it.
pub var after_flush: *const fn (inbox: *Inbox, before_bytes: u64, after_bytes: u64) void = ignoreFlush;

fn ignoreFlush(_: *Inbox, _: u64, _: u64) void {}

/// A chain taken from an inbox queue, its addresses not yet checked.
pub const Chain = struct {
    head: *Block,
    /// How many blocks it holds (`max_chain_blocks` when at least that many).
    blocks: u32,
};

/// An inbox queue is one word: its chain's first block in the bits below
/// `count_shift` (every block lies in a segment, below 2^47), the chain's
/// block count above them, so that one compare-and-swap keeps both and the
/// owner learns a chain's length without walking it.
const count_shift = 48;
pub const max_chain_blocks: u32 = std.math.maxInt(u16);

comptime {
    std.debug.assert(segment_box.address_bits <= count_shift);
}

fn chainOf(word: usize) ?Chain {
    if (word == 0) return null;
    return .{
        .head = @ptrFromInt(word & ((@as(usize, 1) << count_shift) - 1)),
        .blocks = @intCast(word >> count_shift),
    };
}

/// Per-class queues of blocks other threads handed back; one per heap.
pub const Inbox = struct {
    /// Per class, a chain as `chainOf` reads it (0 when empty).
    queues: [sizeclass.class_count]std.atomic.Value(usize) = @splat(.init(0)),
    /// Spans another thread swept (their every block was queued here, their
    /// memory is purged), linked through `Span.swept_next`: still the
    /// owner's, with every block counted in `used`, until its collect
    /// retires them.
    swept: std.atomic.Value(?*Span) = .init(null),
    /// About how many MiB of blocks were flushed to this inbox since it was
    /// last drawn on (`answer`: a take, by the owner or a borrower, or a
    /// refill of the owner's): a flushing thread adds one at every MiB it
    /// flushes (`noteMiB`), since an atomic add at every flush, on a line
    /// every flushing thread writes, would cost more than the rest of the
    /// flush.
    unanswered_mib: std.atomic.Value(u32) = .init(0),

    pub inline fn hasPending(inbox: *const Inbox, class: Class) bool {
        return inbox.queues[class].load(.monotonic) != 0;
    }

    /// Takes back every block queued for `class`: each address of the
    /// chain goes through `owner.checkRemote(addr, class)` (which aborts on
    /// an address that is not a freed block of the owner's, so a link
    /// overwritten after the free is caught) before its link is read, then
    /// `owner.takeBack(found)`. Returns the blocks taken.
    pub fn collect(inbox: *Inbox, class: Class, owner: anytype) u32 {
        const chain = inbox.take(class) orelse return 0;
        return giveBackChain(chain.head, class, owner);
    }

    /// Takes every block queued for `class`, as a chain whose addresses are
    /// not yet checked: the caller checks each with `checkRemote` before it
    /// reads the block's link.
    pub inline fn take(inbox: *Inbox, class: Class) ?Chain {
        inbox.answer();
        return inbox.takeUnanswered(class);
    }

    /// `take` that leaves `unanswered_mib` as it is: a sweep's, which
    /// queues again what it does not purge.
    pub inline fn takeUnanswered(inbox: *Inbox, class: Class) ?Chain {
        return chainOf(inbox.queues[class].swap(0, .acquire));
    }

    /// The inbox is drawn on: `unanswered_mib` starts again. Written only
    /// when not zero, so the line stays shared.
    pub inline fn answer(inbox: *Inbox) void {
        if (inbox.unanswered_mib.load(.monotonic) != 0) inbox.unanswered_mib.store(0, .monotonic);
    }

    /// Adds `mib` to `unanswered_mib`; returns the sum.
    pub fn noteMiB(inbox: *Inbox, mib: u32) u32 {
        return inbox.unanswered_mib.fetchAdd(mib, .monotonic) +% mib;
    }

    /// Leaves a swept span for the owner.
    pub fn pushSwept(inbox: *Inbox, span: *Span) void {
        var old = inbox.swept.load(.monotonic);
        while (true) {
            span.swept_next = old;
            old = inbox.swept.cmpxchgWeak(old, span, .release, .monotonic) orelse return;
        }
    }

    /// Takes every swept span (owner side), linked through `swept_next`.
    pub inline fn takeSwept(inbox: *Inbox) ?*Span {
        if (inbox.swept.load(.monotonic) == null) return null;
        return inbox.swept.swap(null, .acquire);
    }
};

/// Gives every block of the chain at `head` back through `owner` (as
/// `Inbox.collect` does). Returns the blocks.
pub fn giveBackChain(head: ?*Block, class: Class, owner: anytype) u32 {
    var next: usize = @intFromPtr(head);
    var count: u32 = 0;
    while (next != 0) {
        const found = owner.checkRemote(next, class);
        next = span_box.decodeLink(found.block);
        owner.takeBack(found);
        count += 1;
    }
    return count;
}

/// Hands the chain `head..tail` of `blocks` blocks (linked through `next`,
/// all of `class`) to the heap whose inbox is `inbox`.
pub fn publish(inbox: *Inbox, class: Class, head: *Block, tail: *Block, blocks: u32) void {
    std.debug.assert(blocks > 0);
    const queue = &inbox.queues[class];
    var old = queue.load(.monotonic);
    while (true) {
        const queued = chainOf(old);
        tail.link = span_box.encodeLink(tail, if (queued) |chain| chain.head else null);
        const count = @min(blocks +| (if (queued) |chain| chain.blocks else 0), max_chain_blocks);
        const word = @intFromPtr(head) | @as(usize, count) << count_shift;
        old = queue.cmpxchgWeak(old, word, .release, .monotonic) orelse return;
    }
}

const Slot = struct {
    inbox: ?*Inbox = null,
    count: u32 = 0,
    head: ?*Block = null,
    tail: ?*Block = null,
};

const ClassSet = std.StaticBitSet(sizeclass.class_count);

/// A thread's remote frees not yet handed over.
pub const Outbox = struct {
    slots: [sizeclass.class_count]Slot = @splat(.{}),
    /// Classes whose slot holds a batch.
    occupied: ClassSet = .initEmpty(),
    /// Per class, the inbox the last batch went to: where the heap looks
    /// for blocks to borrow before it takes a fresh span.
    recipient: [sizeclass.class_count]?*Inbox = @splat(null),
    /// Bytes of blocks flushed so far, to any inbox (`after_flush`).
    flushed_bytes: u64 = 0,

    /// Adds a freed block of `class` owned by the heap of `inbox`; flushes
    /// when the batch reaches `batch_limit`, or first when the slot holds
    /// another owner's batch.
    pub inline fn push(outbox: *Outbox, inbox: *Inbox, class: Class, block: *Block, batch_limit: u32, counters: *stats.Counters) void {
        const slot = &outbox.slots[class];
        if (slot.inbox != inbox) return outbox.pushFirst(inbox, class, block, batch_limit, counters);
        block.link = span_box.encodeLink(block, slot.head);
        slot.head = block;
        slot.count += 1;
        if (slot.count >= batch_limit) outbox.flushSlot(class, counters);
    }

    /// `push` of a batch's first block (the slot is empty or holds another
    /// owner's batch, which is flushed first). Out of line, like
    /// `flushSlot`, so the push of every other block saves no registers;
    /// an empty slot, the common case, takes no call but tail calls.
    noinline fn pushFirst(outbox: *Outbox, inbox: *Inbox, class: Class, block: *Block, batch_limit: u32, counters: *stats.Counters) void {
        const slot = &outbox.slots[class];
        if (slot.inbox != null) return outbox.pushReplacing(inbox, class, block, batch_limit, counters);
        block.link = span_box.encodeLink(block, null);
        slot.* = .{ .inbox = inbox, .count = 1, .head = block, .tail = block };
        outbox.occupied.set(class);
        if (batch_limit <= 1) outbox.flushSlot(class, counters);
    }

    /// `pushFirst` into a slot that holds another owner's batch.
    noinline fn pushReplacing(outbox: *Outbox, inbox: *Inbox, class: Class, block: *Block, batch_limit: u32, counters: *stats.Counters) void {
        outbox.flushSlot(class, counters);
        outbox.pushFirst(inbox, class, block, batch_limit, counters);
    }

    /// Hands every pending batch over.
    pub fn flushAll(outbox: *Outbox, counters: *stats.Counters) void {
        while (outbox.occupied.findFirstSet()) |class| outbox.flushSlot(@intCast(class), counters);
    }

    /// Out of line (once per batch), so a push saves no registers for it.
    noinline fn flushSlot(outbox: *Outbox, class: Class, counters: *stats.Counters) void {
        const slot = &outbox.slots[class];
        std.debug.assert(slot.count > 0 and outbox.occupied.isSet(class));
        const inbox = slot.inbox.?;
        const before_bytes = outbox.flushed_bytes;
        const after_bytes = before_bytes + @as(u64, slot.count) * sizeclass.block_size_bytes[class];
        outbox.flushed_bytes = after_bytes;
        publish(inbox, class, slot.head.?, slot.tail.?, slot.count);
        outbox.recipient[class] = inbox;
        counters.flush_count.add(1);
        slot.* = .{};
        outbox.occupied.unset(class);
        return after_flush(inbox, before_bytes, after_bytes);
    }
};

var test_span: span_box.Span = .{};

const TestOwner = struct {
    blocks: u32 = 0,
    fn checkRemote(owner: *TestOwner, addr: usize, class: Class) span_box.SpanBlock {
        _ = owner;
        _ = class;
        return .{ .span = &test_span, .block = @ptrFromInt(addr) };
    }
    fn takeBack(owner: *TestOwner, found: span_box.SpanBlock) void {
        _ = found;
        owner.blocks += 1;
    }
};

test "flush and collect move blocks to the owner" {
    var blocks: [40]Block align(16) = undefined;
    var inbox: Inbox = .{};
    var outbox: Outbox = .{};
    var counters: stats.Counters = .{};
    for (&blocks) |*block| outbox.push(&inbox, 3, block, 16, &counters);
    try std.testing.expect(inbox.hasPending(3));
    try std.testing.expect(!inbox.hasPending(4));
    try std.testing.expectEqual(@as(u64, 2), counters.flush_count.read());
    var owner: TestOwner = .{};
    try std.testing.expectEqual(@as(u32, 32), inbox.collect(3, &owner));
    try std.testing.expect(!inbox.hasPending(3));
    outbox.flushAll(&counters);
    try std.testing.expectEqual(@as(usize, 0), outbox.occupied.count());
    try std.testing.expectEqual(@as(u32, 8), inbox.collect(3, &owner));
    try std.testing.expectEqual(@as(u32, 40), owner.blocks);
}

test "a queue counts the blocks of its chain" {
    var blocks: [3]Block align(16) = undefined;
    var inbox: Inbox = .{};
    publish(&inbox, 5, &blocks[0], &blocks[0], 16);
    publish(&inbox, 5, &blocks[1], &blocks[1], 16);
    const chain = inbox.take(5).?;
    try std.testing.expectEqual(&blocks[1], chain.head);
    try std.testing.expectEqual(@as(u32, 32), chain.blocks);
    try std.testing.expect(inbox.take(5) == null);
    // The count saturates; the chain stays whole.
    publish(&inbox, 5, &blocks[0], &blocks[0], max_chain_blocks);
    publish(&inbox, 5, &blocks[2], &blocks[2], 5);
    const full = inbox.take(5).?;
    try std.testing.expectEqual(max_chain_blocks, full.blocks);
    try std.testing.expectEqual(&blocks[2], full.head);
    try std.testing.expectEqual(@intFromPtr(&blocks[0]), span_box.decodeLink(&blocks[2]));
}

test "batches of different classes and owners stay apart" {
    var blocks: [6]Block align(16) = undefined;
    var first: Inbox = .{};
    var second: Inbox = .{};
    var outbox: Outbox = .{};
    var counters: stats.Counters = .{};
    for (&blocks, 0..) |*block, i| {
        outbox.push(if (i % 2 == 0) &first else &second, @intCast(i % 3), block, 100, &counters);
    }
    outbox.flushAll(&counters);
    var owner: TestOwner = .{};
    var total: u32 = 0;
    for (0..3) |class| total += first.collect(@intCast(class), &owner) + second.collect(@intCast(class), &owner);
    try std.testing.expectEqual(@as(u32, 6), total);
}

test "concurrent flushes lose no block" {
    const per_thread = 2000;
    const threads = 4;
    const Worker = struct {
        fn run(inbox: *Inbox, memory: []Block) void {
            var outbox: Outbox = .{};
            var counters: stats.Counters = .{};
            for (memory) |*block| outbox.push(inbox, 0, block, 7, &counters);
            outbox.flushAll(&counters);
        }
    };
    const memory = try std.testing.allocator.alignedAlloc(Block, .@"16", per_thread * threads);
    defer std.testing.allocator.free(memory);
    var inbox: Inbox = .{};
    var owner: TestOwner = .{};
    var handles: [threads]std.Thread = undefined;
    for (&handles, 0..) |*handle, t| {
        handle.* = try std.Thread.spawn(.{}, Worker.run, .{ &inbox, memory[t * per_thread ..][0..per_thread] });
    }
    var taken: u32 = 0;
    while (taken < per_thread * threads) {
        taken += inbox.collect(0, &owner);
        // Joining early would hide interleavings; poll until all arrive.
        if (taken < per_thread * threads) std.Thread.yield() catch {};
    }
    for (handles) |handle| handle.join();
    try std.testing.expectEqual(@as(u32, per_thread * threads), taken);
}
