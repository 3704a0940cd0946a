//! TCache box: the per-thread heap and the hot path.
//!
//! A heap keeps, per size class, a current page to pop from and a list of
//! partially used pages (seed 004: heap -> page -> block). The hot path is
//! `alloc` and `freeLocal`: a pop or a push on the current page's free list,
//! no atomics, no environment. Everything else happens at event boundaries:
//!   refill  — the current page ran dry: carve, collect remote frees, take a
//!             partial page, or a fresh span;
//!   retire  — a page's last block came back: its span returns to the
//!             segment (the current page is kept, so a hot class does not
//!             thrash);
//!   purge   — too many free pages stay resident: madvise them away;
//!   exit    — the thread ends: hand everything back and orphan the heap,
//!             which the next new thread adopts whole.
const std = @import("std");
const builtin = @import("builtin");
const os = @import("os.zig");
const page_box = @import("page.zig");
const policy = @import("policy.zig");
const remote = @import("remote.zig");
const segment_box = @import("segment.zig");
const sizeclass = @import("sizeclass.zig");
const stats = @import("stats.zig");
const Page = page_box.Page;
const Block = page_box.Block;
const Segment = segment_box.Segment;
const Class = sizeclass.Class;

/// The page every class starts with: never has a free block, so the first
/// pop falls into refill without a null check on the hot path.
var empty_page: Page = .{};

const ClassQueue = struct {
    current: *Page = &empty_page,
    /// Pages with free blocks other than `current` (doubly linked), oldest
    /// first: a page that waited longest has gathered the most frees, so a
    /// refill from it lasts longest.
    partial: ?*Page = null,
    partial_tail: ?*Page = null,
};

const State = enum(u8) {
    /// Owned by a live thread.
    active,
    /// Its thread exited; waiting to be adopted by a new thread.
    orphan,
    /// Owned by a thread that a fork left behind in the parent; never
    /// touched again in this process.
    dead,
};

pub const Heap = struct {
    classes: [sizeclass.class_count]ClassQueue = @splat(.{}),
    counters: stats.Counters = .{},
    outbox: remote.Outbox = .{},
    /// Segments this heap owns (those with free pages kept near the front).
    segments: ?*Segment = null,
    /// Free pages in this heap's segments not yet purged.
    dirty_pages: usize = 0,
    /// Earliest time (os.nowMs) of the next delayed purge scan.
    next_purge_ms: u32 = 0,
    state: State = .active,
    /// Every heap ever made (stats, fork).
    registry_next: ?*Heap = null,
    orphan_next: ?*Heap = null,
    orphan_prev: ?*Heap = null,
    /// Written by other threads: its own cache lines.
    inbox: remote.Inbox align(std.atomic.cache_line) = .{},

    // -----------------------------------------------------------------
    // Hot path.

    /// Pops a block of `class`; refills when the current page is dry. Null
    /// (errno ENOMEM) only when the system refuses memory.
    pub inline fn alloc(heap: *Heap, class: Class) ?*anyopaque {
        const page = heap.classes[class].current;
        const block = page.free orelse return heap.refill(class);
        page.free = block.next;
        page.used += 1;
        block.cookie = 0;
        heap.counters.class_allocs[class].add(1);
        return block;
    }

    /// Gives back a block of a page this heap owns.
    pub inline fn freeLocal(heap: *Heap, page: *Page, block: *Block) void {
        heap.counters.class_frees[page.class].add(1);
        heap.giveBack(page, block);
    }

    /// Puts a block back on its page (local free or collect).
    inline fn giveBack(heap: *Heap, page: *Page, block: *Block) void {
        std.debug.assert(page.heap == @as(*anyopaque, heap) and page.used > 0);
        page.pushFree(block);
        page.used -= 1;
        if (page.used == 0 or page.full) heap.pageGainedFree(page);
    }

    /// Gives back a block of a page another heap owns: batched in the
    /// outbox until flushed.
    pub inline fn freeRemote(heap: *Heap, page: *Page, block: *Block) void {
        block.cookie = page_box.cookieOf(block);
        heap.outbox.push(&ownerOf(page).inbox, page.class, block, policy.remote_batch_blocks[page.class], &heap.counters);
        heap.counters.class_frees[page.class].add(1);
        heap.counters.remote_free_count.add(1);
    }

    // -----------------------------------------------------------------
    // Refill boundary.

    noinline fn refill(heap: *Heap, class: Class) ?*anyopaque {
        heap.counters.refill_count.add(1);
        const queue = &heap.classes[class];
        const current_page = queue.current;
        if (current_page != &empty_page) {
            if (current_page.carve()) return heap.alloc(class);
            if (heap.inbox.hasPending(class)) {
                heap.collect(class);
                if (current_page.free != null) return heap.alloc(class);
            }
            current_page.full = true;
            queue.current = &empty_page;
        } else if (heap.inbox.hasPending(class)) {
            heap.collect(class);
        }
        if (queue.partial) |page| {
            heap.unlinkPartial(page);
            std.debug.assert(page.free != null);
            queue.current = page;
            return heap.alloc(class);
        }
        const page = heap.freshSpan(class) orelse {
            os.setErrno(.NOMEM);
            return null;
        };
        queue.current = page;
        std.debug.assert(page.carve());
        return heap.alloc(class);
    }

    /// Takes back the remote frees queued for `class` (collect boundary).
    fn collect(heap: *Heap, class: Class) void {
        if (heap.inbox.collect(class, heap) > 0) heap.counters.collect_count.add(1);
    }

    /// Called by `remote.Inbox.collect` for each block handed back.
    pub fn takeBack(heap: *Heap, block: *Block) void {
        const addr = @intFromPtr(block);
        heap.giveBack(Segment.of(addr).spanOf(addr), block);
    }

    /// A page got blocks back: a full page becomes partial, an empty one
    /// retires (unless it is its class's current page).
    noinline fn pageGainedFree(heap: *Heap, page: *Page) void {
        const queue = &heap.classes[page.class];
        if (page == queue.current) return;
        if (page.used == 0) {
            if (page.in_partial) heap.unlinkPartial(page);
            page.full = false;
            heap.retire(page);
            return;
        }
        if (page.full) {
            page.full = false;
            heap.linkPartial(page);
        }
    }

    fn linkPartial(heap: *Heap, page: *Page) void {
        std.debug.assert(!page.in_partial and page.free != null);
        const queue = &heap.classes[page.class];
        page.next = null;
        page.prev = queue.partial_tail;
        if (queue.partial_tail) |tail| tail.next = page else queue.partial = page;
        queue.partial_tail = page;
        page.in_partial = true;
    }

    fn unlinkPartial(heap: *Heap, page: *Page) void {
        std.debug.assert(page.in_partial);
        const queue = &heap.classes[page.class];
        if (page.prev) |prev| prev.next = page.next else queue.partial = page.next;
        if (page.next) |next| next.prev = page.prev else queue.partial_tail = page.prev;
        page.next = null;
        page.prev = null;
        page.in_partial = false;
    }

    // -----------------------------------------------------------------
    // Spans and segments.

    fn freshSpan(heap: *Heap, class: Class) ?*Page {
        const pages = sizeclass.span_pages[class];
        if (heap.spanFromSegments(class, pages)) |page| return page;
        // Blocks other threads handed back may free whole spans.
        heap.collectAll();
        if (heap.spanFromSegments(class, pages)) |page| return page;
        reclaimOneOrphan();
        const segment = segment_box.acquire(heap) orelse return null;
        heap.linkSegmentFront(segment);
        return segment.takeSpan(pages, heap, class).?;
    }

    /// First fit over the heap's segments; those that got pages back are
    /// kept near the front, so the scan is short unless memory is full.
    fn spanFromSegments(heap: *Heap, class: Class, pages: usize) ?*Page {
        var cursor = heap.segments;
        while (cursor) |segment| : (cursor = segment.next) {
            if (segment.takeSpan(pages, heap, class)) |page| {
                heap.dirty_pages -|= pages;
                return page;
            }
        }
        return null;
    }

    fn retire(heap: *Heap, page: *Page) void {
        const segment = Segment.of(page.start);
        std.debug.assert(segment.heap == @as(*anyopaque, heap));
        const now_ms = os.nowMs();
        heap.dirty_pages += page.span_pages;
        segment.releaseSpan(page, now_ms);
        if (segment.isEmpty() and (heap.segments != segment or segment.next != null or policy.snapshot.segment_cache == 0)) {
            // Keep a heap's last segment: a thread that frees everything and
            // allocates again should not pay a map and fault each time.
            _ = heap.releaseSegment(segment);
        } else if (heap.segments != segment) {
            heap.unlinkSegment(segment);
            heap.linkSegmentFront(segment);
        }
        if (heap.dirty_pages > policy.snapshot.purge_pages) heap.purgeAged(now_ms);
    }

    /// Purges the pages that stayed free for the policy's delay; pages
    /// reused sooner never pay a purge and a fault. Scans at most twice per
    /// delay.
    fn purgeAged(heap: *Heap, now_ms: u32) void {
        const delay_ms = policy.snapshot.purge_delay_ms;
        if (delay_ms > 0 and @as(i32, @bitCast(now_ms -% heap.next_purge_ms)) < 0) return;
        heap.next_purge_ms = now_ms +% @max(1, delay_ms / 2);
        var cursor = heap.segments;
        while (cursor) |segment| : (cursor = segment.next) {
            heap.dirty_pages -|= segment.purgeFree(now_ms, delay_ms);
        }
    }

    /// Returns the bytes the release gave back to the OS.
    fn releaseSegment(heap: *Heap, segment: *Segment) usize {
        heap.dirty_pages -|= segment.dirtyPages();
        heap.unlinkSegment(segment);
        return segment_box.release(segment);
    }

    fn linkSegmentFront(heap: *Heap, segment: *Segment) void {
        segment.prev = null;
        segment.next = heap.segments;
        if (heap.segments) |head| head.prev = segment;
        heap.segments = segment;
    }

    fn unlinkSegment(heap: *Heap, segment: *Segment) void {
        if (segment.prev) |prev| prev.next = segment.next else heap.segments = segment.next;
        if (segment.next) |next| next.prev = segment.prev;
        segment.next = null;
        segment.prev = null;
    }

    /// Returns every free page's memory to the OS. Returns the bytes.
    fn purge(heap: *Heap) usize {
        var pages: usize = 0;
        var cursor = heap.segments;
        while (cursor) |segment| : (cursor = segment.next) pages += segment.purgeFree(0, 0);
        heap.dirty_pages = 0;
        return pages * segment_box.page_size_bytes;
    }

    fn collectAll(heap: *Heap) void {
        for (0..sizeclass.class_count) |class| {
            if (heap.inbox.hasPending(@intCast(class))) heap.collect(@intCast(class));
        }
    }

    /// Hands back what it holds for others: pending remote frees, frees
    /// waiting in the inbox, and empty pages (current ones too), under the
    /// usual purge threshold. `force` also purges every free page and
    /// releases every empty segment. Returns the bytes given back to the OS.
    fn drain(heap: *Heap, force: bool) usize {
        heap.outbox.flushAll(&heap.counters);
        heap.collectAll();
        for (&heap.classes) |*queue| {
            const current_page = queue.current;
            if (current_page == &empty_page) continue;
            queue.current = &empty_page;
            if (current_page.used == 0) {
                heap.retire(current_page);
            } else if (current_page.free != null) {
                heap.linkPartial(current_page);
            } else {
                current_page.full = true;
            }
        }
        if (!force) {
            // An orphan may wait long for adoption: never leave it holding
            // more resident free memory than a live heap may.
            return if (heap.dirty_pages > policy.snapshot.purge_pages) heap.purge() else 0;
        }
        var bytes = heap.purge();
        var cursor = heap.segments;
        while (cursor) |segment| {
            cursor = segment.next;
            if (segment.isEmpty()) bytes += heap.releaseSegment(segment);
        }
        return bytes;
    }
};

// ---------------------------------------------------------------------------
// Thread state. The heap pointer is the only thread-local: on x86-64 it is
// reached with one initial-exec access (%fs-relative, no __tls_get_addr);
// Zig has no per-variable TLS model, so the access is written in asm.

const initial_exec_tls = builtin.cpu.arch == .x86_64 and !builtin.is_test;

// The slot is defined in asm so that it can be hidden and accessed with an
// initial-exec relocation; elsewhere (other targets, unit tests) a plain
// threadlocal serves.
comptime {
    if (initial_exec_tls) asm (
        \\.section .tbss,"awT",@nobits
        \\.p2align 3
        \\.globl hakozuna_tls_heap
        \\.hidden hakozuna_tls_heap
        \\.type hakozuna_tls_heap, @object
        \\.size hakozuna_tls_heap, 8
        \\hakozuna_tls_heap:
        \\.zero 8
        \\.text
    );
}
threadlocal var tls_heap: ?*Heap = null;

inline fn tlsSlot() *?*Heap {
    if (initial_exec_tls) {
        return asm ("movq %%fs:0, %[slot]\n\taddq hakozuna_tls_heap@gottpoff(%%rip), %[slot]"
            : [slot] "=r" (-> *?*Heap),
        );
    }
    return &tls_heap;
}

/// The calling thread's heap, or null before its first allocation (and
/// after its exit handler ran).
pub inline fn current() ?*Heap {
    return tlsSlot().*;
}

/// The calling thread's heap, made on first use. Null when out of memory.
pub inline fn currentOrCreate() ?*Heap {
    return current() orelse acquire();
}

// ---------------------------------------------------------------------------
// The heap registry: creation, orphaning at thread exit, adoption.

var registry_lock: os.Lock = .{};
var registry: ?*Heap = null;
var orphans_head: ?*Heap = null;
var orphans_tail: ?*Heap = null;
var initialized = std.atomic.Value(bool).init(false);
var exit_key: std.c.pthread_key_t = undefined;
/// False when no pthread key could be had: heaps then stay with their
/// (exited) threads instead of being reused.
var exit_key_valid = false;

/// One-time process setup; idempotent, safe to race.
pub fn initProcess() void {
    if (initialized.load(.acquire)) return;
    registry_lock.lock();
    defer registry_lock.unlock();
    if (initialized.load(.monotonic)) return;
    policy.load();
    page_box.cookie_key = os.processRandom() | 1;
    // Never allocates; the key's destructor returns a thread's heap.
    exit_key_valid = std.c.pthread_key_create(&exit_key, threadExit) == .SUCCESS;
    if (!exit_key_valid) {
        os.writeStderr("hakozuna: pthread_key_create failed; heaps of exited threads will not be reused\n");
    }
    initialized.store(true, .release);
}

noinline fn acquire() ?*Heap {
    initProcess();
    registry_lock.lock();
    const heap = popOrphanLocked() orelse fresh: {
        const bytes = std.mem.alignForward(usize, @sizeOf(Heap), os.page_size_bytes);
        const memory = os.map(bytes) orelse {
            registry_lock.unlock();
            return null;
        };
        const heap: *Heap = @ptrCast(memory);
        heap.* = .{};
        heap.registry_next = registry;
        registry = heap;
        break :fresh heap;
    };
    heap.state = .active;
    registry_lock.unlock();
    // Set the slot first: pthread_setspecific may itself allocate.
    tlsSlot().* = heap;
    if (exit_key_valid) _ = std.c.pthread_setspecific(exit_key, heap);
    return heap;
}

fn threadExit(value: *anyopaque) callconv(.c) void {
    const heap: *Heap = @ptrCast(@alignCast(value));
    std.debug.assert(heap.state == .active);
    // Not forced: up to the purge threshold of free pages stay resident for
    // the next thread, which adopts the most recently orphaned heap, so
    // thread churn costs no purge-and-fault cycle per thread.
    _ = heap.drain(false);
    tlsSlot().* = null;
    registry_lock.lock();
    heap.state = .orphan;
    pushOrphanLocked(heap);
    registry_lock.unlock();
}

/// Orphans form a deque: new ones go to the head, where adoption takes
/// them (warm memory); reclaim takes the oldest from the tail.
fn pushOrphanLocked(heap: *Heap) void {
    heap.orphan_prev = null;
    heap.orphan_next = orphans_head;
    if (orphans_head) |head| head.orphan_prev = heap else orphans_tail = heap;
    orphans_head = heap;
}

fn popOrphanLocked() ?*Heap {
    const heap = orphans_head orelse return null;
    unlinkOrphanLocked(heap);
    return heap;
}

fn popOldestOrphanLocked() ?*Heap {
    const heap = orphans_tail orelse return null;
    unlinkOrphanLocked(heap);
    return heap;
}

fn unlinkOrphanLocked(heap: *Heap) void {
    if (heap.orphan_prev) |prev| prev.orphan_next = heap.orphan_next else orphans_head = heap.orphan_next;
    if (heap.orphan_next) |next| next.orphan_prev = heap.orphan_prev else orphans_tail = heap.orphan_prev;
    heap.orphan_next = null;
    heap.orphan_prev = null;
}

/// Lets a live thread give back what the oldest orphan heap holds (frees
/// that arrived after its thread exited, resident free pages, empty
/// segments); it then goes back as the newest, so calls go round robin.
fn reclaimOneOrphan() void {
    registry_lock.lock();
    const orphan = popOldestOrphanLocked();
    registry_lock.unlock();
    const heap = orphan orelse return;
    _ = heap.drain(true);
    registry_lock.lock();
    pushOrphanLocked(heap);
    registry_lock.unlock();
}

/// hz_collect: the calling thread's heap and every orphan give back all
/// they can; cached empty segments are unmapped. Returns the bytes.
pub fn collectEverything() usize {
    var bytes: usize = 0;
    if (current()) |heap| bytes += heap.drain(true);
    registry_lock.lock();
    var orphans = orphans_head;
    orphans_head = null;
    orphans_tail = null;
    registry_lock.unlock();
    // Detached from the deque, the list is ours; pushing back reverses it,
    // which keeps nothing warmer than the rest after a full collect.
    var kept: ?*Heap = null;
    while (orphans) |heap| {
        orphans = heap.orphan_next;
        bytes += heap.drain(true);
        heap.orphan_next = kept;
        kept = heap;
    }
    registry_lock.lock();
    while (kept) |heap| {
        kept = heap.orphan_next;
        pushOrphanLocked(heap);
    }
    registry_lock.unlock();
    return bytes + segment_box.trimCache();
}

/// The heap that owns a live page.
inline fn ownerOf(page: *const Page) *Heap {
    return @ptrCast(@alignCast(page.heap.?));
}

/// A free from a thread that has no heap (its exit handler already ran):
/// hand the block straight to the owner.
pub fn freeWithoutHeap(page: *Page, block: *Block) void {
    block.cookie = page_box.cookieOf(block);
    remote.publish(&ownerOf(page).inbox, page.class, block, block);
    stats.global.free_count.add(1);
    stats.global.free_bytes.add(page.block_size);
    stats.global.remote_free_count.add(1);
}

/// Sums every heap's counters.
pub fn totals() stats.Totals {
    var sums: stats.Totals = .{};
    registry_lock.lock();
    defer registry_lock.unlock();
    var cursor = registry;
    while (cursor) |heap| : (cursor = heap.registry_next) {
        heap.counters.mergeInto(&sums);
        sums.heap_count += 1;
        if (heap.state == .active) sums.thread_count += 1;
    }
    return sums;
}

// fork: every global lock is held across fork() so the child inherits none
// held by a thread that does not exist there.

pub fn lockForFork() void {
    registry_lock.lock();
}

pub fn unlockAfterFork() void {
    registry_lock.unlock();
}

pub fn resetAfterFork() void {
    registry_lock.resetAfterFork();
    // Other threads' heaps may be mid-update; the child never touches them.
    const mine = current();
    var cursor = registry;
    while (cursor) |heap| : (cursor = heap.registry_next) {
        if (heap.state == .active and heap != mine) heap.state = .dead;
    }
}

test "alloc and free through a heap, pages retire and segments return" {
    initProcess();
    const heap = currentOrCreate() orelse return error.OutOfMemory;
    var blocks: [5000]*anyopaque = undefined;
    const class = sizeclass.classOf(100);
    for (&blocks) |*slot| slot.* = heap.alloc(class) orelse return error.OutOfMemory;
    for (blocks) |p| {
        const addr = @intFromPtr(p);
        try std.testing.expect(segment_box.contains(addr));
        const page = Segment.of(addr).spanOf(addr);
        heap.freeLocal(page, page.blockAt(addr).?);
    }
    _ = heap.drain(true);
    try std.testing.expect(heap.segments == null);
}

test "remote frees come back through collect" {
    initProcess();
    const heap = currentOrCreate() orelse return error.OutOfMemory;
    const class = sizeclass.classOf(64);
    var blocks: [1000]*anyopaque = undefined;
    for (&blocks) |*slot| slot.* = heap.alloc(class) orelse return error.OutOfMemory;
    const Freer = struct {
        fn run(list: []*anyopaque) void {
            const own = currentOrCreate().?;
            for (list) |p| {
                const addr = @intFromPtr(p);
                const page = Segment.of(addr).spanOf(addr);
                own.freeRemote(page, page.blockAt(addr).?);
            }
            own.outbox.flushAll(&own.counters);
        }
    };
    const thread = try std.Thread.spawn(.{}, Freer.run, .{blocks[0..]});
    thread.join();
    try std.testing.expect(heap.inbox.hasPending(class));
    heap.collectAll();
    const addr = @intFromPtr(blocks[0]);
    try std.testing.expectEqual(@as(u32, 0), Segment.of(addr).spanOf(addr).used);
    _ = heap.drain(true);
}
