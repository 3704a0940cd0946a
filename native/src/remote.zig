//! Remote box: frees of blocks that another heap owns.
//!
//! Remote state crosses exactly two boundaries:
//!   flush   — the freeing thread hands a batch of one page's blocks to the
//!             owner: one CAS onto the page's `remote_head`; the thread whose
//!             CAS made that list non-empty also queues the page in the
//!             owner's inbox for the page's class.
//!   collect — the owner takes back what was handed over, one class at a
//!             time, visiting only pages queued for that class (seed 002 P0).
//! Until a flush, a freeing thread keeps its remote frees in its outbox, a
//! few slots of per-page batches (direct-mapped by page address).
const std = @import("std");
const page_box = @import("page.zig");
const sizeclass = @import("sizeclass.zig");
const stats = @import("stats.zig");
const Page = page_box.Page;
const Block = page_box.Block;

/// Per-class queues of pages with pending remote frees; one per heap.
pub const Inbox = struct {
    queues: [sizeclass.class_count]std.atomic.Value(?*Page) = @splat(.init(null)),

    /// Queues `page`; called by the one thread whose flush made the page's
    /// remote list non-empty, so a page is queued at most once at a time.
    fn notify(inbox: *Inbox, page: *Page) void {
        const queue = &inbox.queues[page.class];
        var head = queue.load(.monotonic);
        while (true) {
            page.remote_next = head;
            head = queue.cmpxchgWeak(head, page, .release, .monotonic) orelse return;
        }
    }

    pub inline fn hasPending(inbox: *const Inbox, class: sizeclass.Class) bool {
        return inbox.queues[class].load(.monotonic) != null;
    }

    /// Takes back every remote free queued for `class`. For each page,
    /// splices the blocks onto its free list and calls
    /// `owner.collected(page, block_count)`. Returns the blocks taken.
    pub fn collect(inbox: *Inbox, class: sizeclass.Class, owner: anytype) u32 {
        var next_page = inbox.queues[class].swap(null, .acquire);
        var total: u32 = 0;
        while (next_page) |page| {
            std.debug.assert(page.class == class);
            // Read the link before emptying the page's list: once it is empty
            // a flusher may queue the page again and overwrite the link.
            next_page = page.remote_next;
            var chain = page.remote_head.swap(null, .acq_rel);
            var count: u32 = 0;
            while (chain) |block| {
                chain = block.next;
                page.pushFree(block);
                count += 1;
            }
            total += count;
            if (count > 0) owner.collected(page, count);
        }
        return total;
    }
};

/// Hands the chain `head..tail` (linked through `next`) to `page`'s owner.
pub fn publish(page: *Page, inbox: *Inbox, head: *Block, tail: *Block) void {
    var old = page.remote_head.load(.monotonic);
    while (true) {
        tail.next = old;
        old = page.remote_head.cmpxchgWeak(old, head, .release, .monotonic) orelse break;
    }
    if (old == null) inbox.notify(page);
}

const slot_count = 32;

const Slot = struct {
    page: ?*Page = null,
    inbox: ?*Inbox = null,
    head: ?*Block = null,
    tail: ?*Block = null,
    count: u32 = 0,
};

/// A thread's remote frees not yet handed over.
pub const Outbox = struct {
    slots: [slot_count]Slot = @splat(.{}),

    inline fn slotOf(outbox: *Outbox, page: *const Page) *Slot {
        const addr = @intFromPtr(page);
        return &outbox.slots[((addr >> 7) ^ (addr >> 22)) % slot_count];
    }

    /// Adds a freed block of `page` (owned by the heap whose inbox is
    /// `inbox`); flushes when the batch reaches `batch_limit` or the slot is
    /// needed for another page.
    pub inline fn push(outbox: *Outbox, page: *Page, inbox: *Inbox, block: *Block, batch_limit: u32, counters: *stats.Counters) void {
        const slot = outbox.slotOf(page);
        if (slot.page != page) {
            if (slot.page != null) flushSlot(slot, counters);
            slot.page = page;
            slot.inbox = inbox;
            slot.tail = block;
            slot.head = null;
        }
        block.next = slot.head;
        slot.head = block;
        slot.count += 1;
        if (slot.count >= batch_limit) flushSlot(slot, counters);
    }

    /// Hands every pending batch over.
    pub fn flushAll(outbox: *Outbox, counters: *stats.Counters) void {
        for (&outbox.slots) |*slot| {
            if (slot.page != null) flushSlot(slot, counters);
        }
    }

    fn flushSlot(slot: *Slot, counters: *stats.Counters) void {
        std.debug.assert(slot.count > 0);
        publish(slot.page.?, slot.inbox.?, slot.head.?, slot.tail.?);
        counters.flush_count.add(1);
        slot.* = .{};
    }
};

const TestOwner = struct {
    pages: u32 = 0,
    blocks: u32 = 0,
    fn collected(owner: *TestOwner, page: *Page, count: u32) void {
        _ = page;
        owner.pages += 1;
        owner.blocks += count;
    }
};

test "flush and collect move blocks to the owner's page" {
    var blocks: [40]Block align(16) = undefined;
    var page: Page = .{};
    var heap_token: u8 = 0;
    page.assign(&heap_token, 0, @intFromPtr(&blocks), @sizeOf(@TypeOf(blocks)));
    var inbox: Inbox = .{};
    var outbox: Outbox = .{};
    var counters: stats.Counters = .{};
    for (&blocks) |*block| outbox.push(&page, &inbox, block, 16, &counters);
    try std.testing.expect(inbox.hasPending(0));
    try std.testing.expectEqual(@as(u64, 2), counters.flush_count.read());
    var owner: TestOwner = .{};
    try std.testing.expectEqual(@as(u32, 32), inbox.collect(0, &owner));
    try std.testing.expect(!inbox.hasPending(0));
    outbox.flushAll(&counters);
    try std.testing.expectEqual(@as(u32, 8), inbox.collect(0, &owner));
    try std.testing.expectEqual(@as(u32, 40), owner.blocks);
    var listed: usize = 0;
    var cursor = page.free;
    while (cursor) |block| : (cursor = block.next) {
        try std.testing.expect(Page.isFree(block));
        listed += 1;
    }
    try std.testing.expectEqual(@as(usize, 40), listed);
}

test "concurrent flushes lose no block" {
    const per_thread = 2000;
    const threads = 4;
    const Worker = struct {
        fn run(page: *Page, inbox: *Inbox, memory: []Block) void {
            var outbox: Outbox = .{};
            var counters: stats.Counters = .{};
            for (memory) |*block| outbox.push(page, inbox, block, 7, &counters);
            outbox.flushAll(&counters);
        }
    };
    const memory = try std.testing.allocator.alignedAlloc(Block, .@"16", per_thread * threads);
    defer std.testing.allocator.free(memory);
    var page: Page = .{};
    var heap_token: u8 = 0;
    page.assign(&heap_token, 0, @intFromPtr(memory.ptr), memory.len * @sizeOf(Block));
    var inbox: Inbox = .{};
    var owner: TestOwner = .{};
    var handles: [threads]std.Thread = undefined;
    for (&handles, 0..) |*handle, t| {
        handle.* = try std.Thread.spawn(.{}, Worker.run, .{ &page, &inbox, memory[t * per_thread ..][0..per_thread] });
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
