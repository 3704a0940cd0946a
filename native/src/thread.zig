//! Thread box: which heap each thread uses, and process start.
//!
//!   start   — once per process, lazily on the first call that needs it
//!             (the first malloc may come before any constructor): the
//!             policy snapshot, the free-block cookie key and the pthread
//!             key whose destructor runs at thread exit;
//!   acquire — a thread's first allocation adopts the most recently
//!             orphaned heap (a warm one first), or makes a new one;
//!   exit    — the thread ends: its heap hands back what it can and becomes
//!             an orphan, adopted whole by the next new thread;
//!   fork    — the registry lock is held across fork().
const std = @import("std");
const builtin = @import("builtin");
const heap_box = @import("heap.zig");
const layout = @import("layout.zig");
const list = @import("list.zig");
const os = @import("os.zig");
const policy = @import("policy.zig");
const remote = @import("remote.zig");
const segment_box = @import("segment.zig");
const sizeclass = @import("sizeclass.zig");
const span_box = @import("span.zig");
const stats = @import("stats.zig");
const Heap = heap_box.Heap;
const State = heap_box.State;

// ---------------------------------------------------------------------------
// The heap pointers are the only thread-locals: they are reached with an
// initial-exec access (thread pointer plus a GOT-held offset, no
// __tls_get_addr) on x86-64 and aarch64; Zig has no per-variable TLS
// model, so the slots and the access are written in asm. A thread of the
// hardened lane keeps its heap in the second slot and leaves the first
// null, so malloc's and free's hot paths never match and every call takes
// the out-of-line paths, where hardened.zig does its checks. A third
// slot says the thread's exit handler ran.

const TlsAccess = enum { initial_exec_x86_64, initial_exec_aarch64, plain };
const tls_access: TlsAccess = if (builtin.is_test) .plain else switch (builtin.cpu.arch) {
    .x86_64 => .initial_exec_x86_64,
    .aarch64 => .initial_exec_aarch64,
    else => .plain,
};

// The slots are defined in asm so that they can be hidden and accessed
// with initial-exec relocations; elsewhere (other targets, unit tests) a
// plain threadlocal serves.
comptime {
    if (tls_access != .plain) asm (
        \\.section .tbss,"awT",@nobits
        \\.p2align 3
        \\.globl hakozuna_tls_heap
        \\.hidden hakozuna_tls_heap
        \\.type hakozuna_tls_heap, @object
        \\.size hakozuna_tls_heap, 8
        \\hakozuna_tls_heap:
        \\.zero 8
        \\.globl hakozuna_tls_hardened_heap
        \\.hidden hakozuna_tls_hardened_heap
        \\.type hakozuna_tls_hardened_heap, @object
        \\.size hakozuna_tls_hardened_heap, 8
        \\hakozuna_tls_hardened_heap:
        \\.zero 8
        \\.globl hakozuna_tls_exited
        \\.hidden hakozuna_tls_exited
        \\.type hakozuna_tls_exited, @object
        \\.size hakozuna_tls_exited, 8
        \\hakozuna_tls_exited:
        \\.zero 8
        \\.text
    );
}
threadlocal var tls_heap: ?*Heap = null;
threadlocal var tls_hardened_heap: ?*Heap = null;
threadlocal var tls_exited: bool = false;

/// The address of the calling thread's slot `symbol` (one of the three
/// above, holding a `T`); not for `.plain`, where the threadlocals serve.
inline fn slotAddress(comptime T: type, comptime symbol: []const u8) *T {
    switch (tls_access) {
        .initial_exec_x86_64 => return asm ("movq %%fs:0, %[slot]\n\taddq " ++ symbol ++ "@gottpoff(%%rip), %[slot]"
            : [slot] "=r" (-> *T),
        ),
        .initial_exec_aarch64 => {
            var offset: usize = undefined;
            return asm ("mrs %[slot], tpidr_el0\n\t" ++
                    "adrp %[offset], :gottprel:" ++ symbol ++ "\n\t" ++
                    "ldr %[offset], [%[offset], #:gottprel_lo12:" ++ symbol ++ "]\n\t" ++
                    "add %[slot], %[slot], %[offset]"
                : [slot] "=&r" (-> *T),
                  [offset] "=&r" (offset),
            );
        },
        .plain => comptime unreachable,
    }
}

/// The slot's address, for writes.
inline fn tlsSlot() *?*Heap {
    if (tls_access == .plain) return &tls_heap;
    return slotAddress(?*Heap, "hakozuna_tls_heap");
}

/// The hardened lane's slot.
inline fn tlsHardenedSlot() *?*Heap {
    if (tls_access == .plain) return &tls_hardened_heap;
    return slotAddress(?*Heap, "hakozuna_tls_hardened_heap");
}

/// Set once the thread's exit handler made its heap an orphan.
inline fn exitedSlot() *bool {
    if (tls_access == .plain) return &tls_exited;
    return slotAddress(bool, "hakozuna_tls_exited");
}

/// The slot this process's lane keeps a thread's heap in.
fn laneSlot() *?*Heap {
    return if (policy.snapshot.hardened()) tlsHardenedSlot() else tlsSlot();
}

/// The calling thread's heap, or null before its first allocation (and
/// after its exit handler ran).
pub inline fn current() ?*Heap {
    if (tls_access == .initial_exec_x86_64) {
        // One load of the offset, one %fs-relative load of the slot.
        return asm ("movq hakozuna_tls_heap@gottpoff(%%rip), %[heap]\n\tmovq %%fs:(%[heap]), %[heap]"
            : [heap] "=r" (-> ?*Heap),
        );
    }
    return tlsSlot().*;
}

/// The calling thread's heap, made on first use. Null when out of memory.
pub inline fn currentOrCreate() ?*Heap {
    return current() orelse acquire();
}

/// The calling thread's heap in the hardened lane, made on first use.
pub fn currentOrCreateHardened() ?*Heap {
    return currentHardened() orelse acquire();
}

/// The calling thread's heap in the hardened lane, or null before its
/// first allocation there.
pub fn currentHardened() ?*Heap {
    std.debug.assert(policy.snapshot.hardened());
    return tlsHardenedSlot().*;
}

/// The heap a free by the calling thread goes through: its own, or one made
/// now for a thread that frees before it ever allocated (a consumer of
/// blocks other threads made, which would otherwise hand each block to its
/// owner alone). Null once the thread's exit handler ran: pthread runs a
/// key's destructor for a few rounds only, so a heap made after that would
/// never become an orphan. Null too when out of memory.
pub fn heapForFree() ?*Heap {
    if (exitedSlot().*) return null;
    return laneSlot().* orelse acquire();
}

/// The calling thread's heap, whichever lane, or null.
fn currentAnyLane() ?*Heap {
    return tlsSlot().* orelse tlsHardenedSlot().*;
}

// ---------------------------------------------------------------------------
// Process start.

var started = std.atomic.Value(bool).init(false);
var exit_key: std.c.pthread_key_t = undefined;
/// False when no pthread key could be had: heaps then stay with their
/// (exited) threads instead of being reused.
var exit_key_valid = false;

/// The one place the process is set up; idempotent, safe to race. Every
/// entry point that may run first calls it (directly or through acquire).
pub inline fn start() void {
    if (started.load(.acquire)) return;
    startOnce();
}

noinline fn startOnce() void {
    registry_lock.lock();
    defer registry_lock.unlock();
    if (started.load(.monotonic)) return;
    policy.load();
    span_box.initKeys(os.processRandom());
    heap_box.before_fresh_segment = reclaimOneOrphan;
    heap_box.find_lender = findLender;
    heap_box.back_off = backOff;
    heap_box.is_crowded = isCrowded;
    cpu_count = os.cpuCount();
    remote.after_flush = afterFlush;
    // Never allocates; the key's destructor returns a thread's heap.
    exit_key_valid = std.c.pthread_key_create(&exit_key, threadExit) == .SUCCESS;
    if (!exit_key_valid) {
        os.writeStderr("hakozuna: pthread_key_create failed; heaps of exited threads will not be reused\n");
    }
    started.store(true, .release);
}

// ---------------------------------------------------------------------------
// The heap registry: creation, orphaning at thread exit, adoption.

const Orphans = list.List(Heap, "orphan_link");

var registry_lock: os.Lock = .{};
var registry: ?*Heap = null;
/// Heaps whose thread exited, new ones at the head, where adoption takes
/// them; reclaim takes the oldest from the tail. A warm orphan kept each
/// class's current span, resident and carved, for the thread that adopts
/// it; a cold one gave back everything it could.
var warm_orphans: Orphans = .{};
var cold_orphans: Orphans = .{};
/// Warm orphans waiting, and places reserved by exiting threads. Without a
/// bound, a burst of threads exiting together on a many-core machine leaves
/// one heap's pages per thread behind (about 0.5 MiB each in
/// tests/c/manythreads); churn needs only a few warm heaps to adopt.
var warm_count: u32 = 0;
const warm_orphans_max = 2;
/// CPUs the process may use, read once at start (`findLender`, `backOff`).
var cpu_count: u32 = 1;

/// The list an orphan of `state` waits on.
fn orphanList(state: State) *Orphans {
    return switch (state) {
        .warm_orphan => &warm_orphans,
        .cold_orphan, .aged_orphan => &cold_orphans,
        .active, .claimed, .dead => unreachable,
    };
}

/// Under the registry lock: `heap` becomes an orphan of `state`, at `end`
/// of its list, so its state always names the list it is on.
fn listOrphan(heap: *Heap, state: State, end: End) void {
    setState(heap, state);
    switch (end) {
        .newest => orphanList(state).pushFront(heap),
        .oldest => orphanList(state).pushBack(heap),
    }
}

fn countOrphans(orphans: *const Orphans) u32 {
    var count: u32 = 0;
    var cursor = orphans.head;
    while (cursor) |heap| : (cursor = Orphans.next(heap)) count += 1;
    return count;
}

/// An end of an orphan list: the newest at its head, the oldest at its
/// tail.
const End = enum { newest, oldest };

/// Takes the newest or the oldest warm orphan, keeping `warm_count`.
/// Under the registry lock.
fn takeWarm(comptime end: End) ?*Heap {
    const heap = (if (end == .newest) warm_orphans.popFront() else warm_orphans.popBack()) orelse return null;
    warm_count -= 1;
    return heap;
}

/// Takes the newest orphan, a warm one first. Under the registry lock.
fn adoptOrphan() ?*Heap {
    return takeWarm(.newest) orelse cold_orphans.popFront();
}

noinline fn acquire() ?*Heap {
    start();
    registry_lock.lock();
    const adopted = adoptOrphan();
    const heap = adopted orelse fresh: {
        const bytes = std.mem.alignForward(usize, @sizeOf(Heap), layout.page_size_bytes);
        const memory = os.map(bytes) orelse {
            registry_lock.unlock();
            return null;
        };
        stats.global.mapped(bytes);
        const heap: *Heap = @ptrCast(memory);
        const hardened = policy.snapshot.hardened();
        // Never 0 (xorshift's fixed point).
        heap.initFresh(.{ .hardened = hardened }, if (hardened) os.processRandom()[0] | 1 else 1);
        heap.registry_next = registry;
        // Release: `scanRunning` walks the registry without the lock.
        @atomicStore(?*Heap, &registry, heap, .release);
        break :fresh heap;
    };
    // Not running yet, whatever its last thread did.
    countNotRunning(heap);
    if (adopted != null) heap.flags.adopted = true;
    setState(heap, .active);
    registry_lock.unlock();
    // Set the slot first: pthread_setspecific may itself allocate.
    laneSlot().* = heap;
    if (exit_key_valid) _ = std.c.pthread_setspecific(exit_key, heap);
    return heap;
}

fn threadExit(value: *anyopaque) callconv(.c) void {
    const heap: *Heap = @ptrCast(@alignCast(value));
    std.debug.assert(heap.state == .active);
    registry_lock.lock();
    const warm = warm_count < warm_orphans_max;
    if (warm) warm_count += 1;
    registry_lock.unlock();
    // Its drain runs while the heap is still active, and the thread that
    // replaces this one may be running already.
    countNotRunning(heap);
    // Warm, not forced: each class's current span stays, resident and
    // carved, for the next thread, which adopts a warm orphan first, so
    // thread churn costs no purge-and-fault cycle per thread.
    _ = heap.drain(!warm);
    laneSlot().* = null;
    exitedSlot().* = true;
    if (!warm) giveBackIdle(heap);
    registry_lock.lock();
    heap.orphan_flushes.store(0, .monotonic);
    listOrphan(heap, if (warm) .warm_orphan else .cold_orphan, .newest);
    const aged = if (warm) null else claimAgedOrphan();
    registry_lock.unlock();
    if (aged) |orphan| releaseAged(orphan);
}

/// Counters of the heaps whose idle pages went back to the kernel since
/// they last counted (`giveBackIdle`). Under the registry lock.
var retired_counters: stats.Counters = .{};

/// For a heap drained whole that no other thread uses (claimed, or at its
/// thread's exit): its counters move to `retired_counters`, and the pages
/// of its per-class state go back to the kernel (`Heap.purgeIdlePages`).
/// The registry keeps every heap for good, 16 KiB each: 3,000 threads
/// alive at once left 48 MiB of heaps behind (bench/LEDGER.md).
fn giveBackIdle(heap: *Heap) void {
    registry_lock.lock();
    retired_counters.absorb(&heap.counters);
    heap.counters = .{};
    registry_lock.unlock();
    heap.purgeIdlePages();
}

/// Cold orphans a new thread may still adopt soon: the newest this many
/// keep what flushes bring them after their thread exited, for their
/// adopter, until the 64th flush (`afterFlush`). Giving it all back
/// at once cost the external suite's 8-thread stress program 4% more
/// faults and 4–6% more time (bench/LEDGER.md).
const spared_cold_orphans = 16;

/// Under the registry lock, as a cold orphan joins: claims the cold one it
/// pushed past the newest `spared_cold_orphans` (each passes there once
/// unless adopted first), or null.
fn claimAgedOrphan() ?*Heap {
    var cursor = cold_orphans.head;
    for (0..spared_cold_orphans) |_| cursor = Orphans.next(cursor orelse return null);
    const heap = cursor orelse return null;
    if (heap.state != .cold_orphan) return null;
    cold_orphans.remove(heap);
    setState(heap, .claimed);
    return heap;
}

/// A cold orphan that aged past the newest takes back what flushes brought
/// it since its thread exited (often a block its thread left with
/// another, its only one) and gives back everything, as at exit; flushes
/// that reach it later are collected at the first. So a program whose
/// threads ended together keeps no segment per thread: 3,000 threads
/// alive at once, each freeing its neighbour's block as it ends, kept
/// 1,464 segments mapped (bench/LEDGER.md). It waits as the oldest
/// orphan, so that the one behind it is the next to age. Its flush count
/// starts again, so that the next flush is its first as an aged orphan.
fn releaseAged(heap: *Heap) void {
    heap.orphan_flushes.store(0, .monotonic);
    drainClaimed(heap, .aged_orphan, .oldest);
}

/// Drains a heap no thread uses whole and gives back its idle pages.
/// Returns the bytes the drain gave back.
fn drainWhole(heap: *Heap) usize {
    const bytes = heap.drain(true);
    giveBackIdle(heap);
    return bytes;
}

/// Drains a claimed orphan whole and lists it as `state` at `end`.
fn drainClaimed(heap: *Heap, state: State, end: End) void {
    _ = drainWhole(heap);
    registry_lock.lock();
    listOrphan(heap, state, end);
    registry_lock.unlock();
}

/// Under the registry lock; atomic because a flush reads it without
/// (`afterFlush`).
fn setState(heap: *Heap, state: State) void {
    @atomicStore(State, &heap.state, state, .monotonic);
}

/// Flushes an orphan takes before a flushing thread collects for it. Its
/// adopter would reuse what waits there, so a heap that thread churn
/// adopts soon is left alone; one that keeps receiving frees after its
/// thread exited (a pool whose threads ended, their blocks freed by
/// others) has at most this many batches waiting at any time.
const orphan_flushes_per_collect = 64;

/// A live heap to whose inbox this many MiB were flushed since it was last
/// drawn on (a take, or a refill of the owner's) has stopped taking blocks
/// back: the flushing thread sweeps it (heap.zig's `sweep`). A count of
/// work, not of time: the 8-thread lanes of `make bench`, whose threads
/// wait their turns for two CPUs, stay below 64 MiB; the idle pool of
/// tests/c/giveback reaches 150 (bench/LEDGER.md). It is also what an idle
/// heap may keep of what others free for it.
const sweep_unanswered_mib = 64;

/// log2 of a MiB: a flushing thread notes each MiB it flushes.
const mib_shift = 20;

/// Past `sweep_unanswered_mib`, the heap is swept again at every this many
/// MiB flushed to it until it is drawn on: what the last sweep left (the
/// blocks of spans not yet whole) is walked again each time, and what came
/// after it stays resident, about this much.
const mib_per_sweep = 4;

/// Called after every flush (remote.zig) with the flushing outbox's bytes
/// flushed before and after it. When the owner's thread has exited, nobody
/// would take the batches back, and the spans they free would stay resident
/// for good: every `orphan_flushes_per_collect`th flush, the flushing thread
/// collects for the orphan, which it claims for that time; at the first
/// already for an aged one, which then gives back everything again. A warm
/// orphan keeps its reserved place. A live owner that stopped taking blocks
/// back is swept.
fn afterFlush(inbox: *remote.Inbox, before_bytes: u64, after_bytes: u64) void {
    const heap: *Heap = @alignCast(@fieldParentPtr("inbox", inbox));
    const due: u32 = switch (@atomicLoad(State, &heap.state, .monotonic)) {
        .warm_orphan, .cold_orphan => orphan_flushes_per_collect - 1,
        .aged_orphan => 0,
        // Each MiB a thread flushes is noted in the inbox it went to.
        .active => {
            const mib: u32 = @intCast((after_bytes >> mib_shift) - (before_bytes >> mib_shift));
            return if (mib != 0) noteMiB(heap, mib);
        },
        .claimed, .dead => return,
    };
    if (heap.orphan_flushes.fetchAdd(1, .monotonic) % orphan_flushes_per_collect != due) return;
    collectForOrphan(heap);
}

noinline fn noteMiB(heap: *Heap, mib: u32) void {
    // A flush carries at most 4 KiB or one medium block: one MiB at most.
    std.debug.assert(mib == 1);
    const unanswered = heap.inbox.noteMiB(mib);
    if (unanswered < sweep_unanswered_mib) return;
    // Once per `mib_per_sweep`: when this note crossed a multiple.
    if (unanswered / mib_per_sweep != (unanswered - mib) / mib_per_sweep) heap.sweep();
}

noinline fn collectForOrphan(heap: *Heap) void {
    registry_lock.lock();
    const state = heap.state;
    switch (state) {
        .warm_orphan, .cold_orphan, .aged_orphan => orphanList(state).remove(heap),
        // Adopted or claimed since the flush looked.
        .active, .claimed, .dead => return registry_lock.unlock(),
    }
    setState(heap, .claimed);
    registry_lock.unlock();
    if (state == .aged_orphan) return drainClaimed(heap, state, .oldest);
    _ = heap.collectExited(orphanKeepSlices(heap, state));
    registry_lock.lock();
    listOrphan(heap, state, .newest);
    registry_lock.unlock();
}

/// Free slices an orphan of `state` keeps resident for its adopter when a
/// flushing thread collects for it: a warm one what its exit kept, a cold
/// one (beyond the few warm ones) what a live heap keeps.
fn orphanKeepSlices(heap: *const Heap, state: State) usize {
    return if (state == .warm_orphan) heap.exitKeepSlices() else policy.snapshot.purge_slices;
}

/// Heaps `scanRunning` looks at, at most, per call: it runs only when a
/// heap is about to take a fresh span (to borrow, or to back off), and
/// every look is a few loads of another heap's header.
const running_scan_heaps = 16;

/// A heap whose thread refilled (heap.zig's `refill_ms`) less than this
/// long ago counts as running in `scanRunning`: a few scheduler time
/// slices, and 8 ticks of the coarse clock (4 ms here).
const running_window_ms = 32;

/// `scanRunning` counts `heap` as running only once its thread has
/// refilled again.
fn countNotRunning(heap: *Heap) void {
    @atomicStore(u32, &heap.refill_ms, os.nowMs() -% running_window_ms, .monotonic);
}

/// What `scanRunning` finds among the `running_scan_heaps` heaps that
/// follow a heap in the registry, wrapping to its head (so that heaps do
/// not all look at the same ones): how many ran in the last
/// `running_window_ms`, the scanning heap's own thread included, and the
/// first of those whose inbox holds blocks of the class asked for.
const Running = struct { heaps: u32, lender: ?*Heap };

/// Only an `.active` heap whose thread refilled within the window counts
/// (and lends): one blocked for long would lend blocks that go round as
/// remote frees for good (larson's main thread, waiting for its workers,
/// lent its warm-up blocks and larson lost 13%: bench/LEDGER.md); a warm
/// orphan, kept for the next thread, never lends.
/// Without the lock: heaps are never unmapped, and join at the head.
fn scanRunning(heap: *Heap, class: ?sizeclass.Class) Running {
    const now_ms = os.nowMs();
    var found: Running = .{ .heaps = 1, .lender = null };
    var cursor = heap.registry_next;
    for (0..running_scan_heaps) |_| {
        // `heap` itself is in the registry: the head is never null here.
        const other = cursor orelse @atomicLoad(?*Heap, &registry, .acquire).?;
        if (other == heap) break;
        cursor = other.registry_next;
        switch (@atomicLoad(State, &other.state, .monotonic)) {
            .active => {},
            // Kept for an adopter, drained or collected by another thread
            // now, or left by fork.
            .warm_orphan, .cold_orphan, .aged_orphan, .claimed, .dead => continue,
        }
        const idle_ms = now_ms -% @atomicLoad(u32, &other.refill_ms, .monotonic);
        if (idle_ms >= running_window_ms) continue;
        found.heaps += 1;
        if (found.lender == null and class != null and other.inbox.hasPending(class.?)) found.lender = other;
    }
    return found;
}

/// For heap.zig's `borrow`: another heap whose inbox holds blocks of
/// `class` (`scanRunning`), only while more heaps ran lately than the
/// process has CPUs: then owners take turns on the CPUs, and blocks freed
/// for one off the CPU wait while the threads that freed them fault fresh
/// spans. With a CPU per thread, borrowing costs more than it saves:
/// borrowed blocks stay their owner's, so every later free of them is a
/// remote one.
fn findLender(heap: *Heap, class: sizeclass.Class) ?*Heap {
    const running = scanRunning(heap, class);
    return if (running.heaps > cpu_count) running.lender else null;
}

/// For heap.zig's `is_crowded`: more heaps ran lately than the process
/// has CPUs (`scanRunning`).
fn isCrowded(heap: *Heap) bool {
    return scanRunning(heap, null).heaps > cpu_count;
}

/// For heap.zig's `back_off`, when a heap's segments have no room for a
/// span it needs: yields the CPU, so that the threads holding this heap's
/// blocks (in flight to them, or freed and not yet handed over) may run
/// and hand them back, instead of this heap faulting in fresh memory while
/// its own blocks wait. Again while the heaps that ran lately number more
/// than `yields` + 1 times the CPUs: each yield lets about one more turn of
/// the other threads run, so a heap waits about as long as it takes each
/// of them to run once (3 yields for 8 threads on 2 CPUs, none where
/// threads fit the CPUs). Yielding once gained the 8-thread lanes less
/// (bench/LEDGER.md).
fn backOff(heap: *Heap, yields: u32) bool {
    if (scanRunning(heap, null).heaps <= cpu_count *| (yields + 1)) return false;
    os.yield();
    return true;
}

/// Lets a live thread give back what the oldest orphan heap holds (frees
/// that arrived after its thread exited, resident free slices, empty
/// segments) before it maps a fresh segment, the oldest warm one first;
/// the orphan then goes back as the newest cold one, so calls go round
/// robin.
fn reclaimOneOrphan() void {
    registry_lock.lock();
    const heap = takeWarm(.oldest) orelse cold_orphans.popBack() orelse return registry_lock.unlock();
    setState(heap, .claimed);
    registry_lock.unlock();
    drainClaimed(heap, .cold_orphan, .newest);
}

/// hz_collect: the calling thread's heap and every orphan give back all
/// they can; cached empty segments are unmapped. Returns the bytes.
pub fn collectEverything() usize {
    var bytes: usize = 0;
    if (currentAnyLane()) |heap| bytes += heap.drain(true);
    registry_lock.lock();
    var detached = [_]Orphans{ warm_orphans, cold_orphans };
    warm_orphans = .{};
    cold_orphans = .{};
    // Places reserved by threads still exiting stay counted.
    warm_count -= countOrphans(&detached[0]);
    for (&detached) |*orphans| {
        var cursor = orphans.head;
        while (cursor) |heap| : (cursor = Orphans.next(heap)) setState(heap, .claimed);
    }
    registry_lock.unlock();
    // Detached from the registry, the lists are ours; their order is kept,
    // the once warm heaps (the newer ones) in front.
    for (&detached) |*orphans| {
        var cursor = orphans.head;
        while (cursor) |heap| : (cursor = Orphans.next(heap)) bytes += drainWhole(heap);
    }
    registry_lock.lock();
    for ([_]*Orphans{ &detached[1], &detached[0] }) |orphans| {
        while (orphans.popBack()) |heap| listOrphan(heap, .cold_orphan, .newest);
    }
    registry_lock.unlock();
    return bytes + segment_box.trimCache();
}

/// Sums every heap's counters and the global ones into a snapshot.
pub fn snapshot() stats.Snapshot {
    var sums: stats.Sums = .{};
    registry_lock.lock();
    var cursor = registry;
    while (cursor) |heap| : (cursor = heap.registry_next) {
        heap.counters.addTo(&sums);
        sums.snapshot.heap_count += 1;
        if (heap.state == .active) sums.snapshot.thread_count += 1;
    }
    retired_counters.addTo(&sums);
    registry_lock.unlock();
    return sums.finish();
}

/// Per-class block counts summed over every heap (HZ_STATS=verbose).
pub fn classRows(rows: *[sizeclass.class_count]stats.ClassRow) void {
    rows.* = @splat(.{ .class = 0, .allocs = 0, .frees = 0 });
    registry_lock.lock();
    defer registry_lock.unlock();
    var cursor = registry;
    while (cursor) |heap| : (cursor = heap.registry_next) stats.classRows(rows, &heap.counters);
    stats.classRows(rows, &retired_counters);
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
    // A thread that was exiting reserved a warm place it never takes here.
    warm_count = countOrphans(&warm_orphans);
    // Other threads' heaps may be mid-update; the child never touches them.
    const mine = currentAnyLane();
    var cursor = registry;
    while (cursor) |heap| : (cursor = heap.registry_next) {
        if (heap.state == .active and heap != mine) heap.state = .dead;
    }
}

test "a thread's heap is made once and adopted after the thread exits" {
    start();
    const Worker = struct {
        fn run(out: *?*Heap) void {
            out.* = currentOrCreate();
        }
    };
    var first: ?*Heap = null;
    const thread = try std.Thread.spawn(.{}, Worker.run, .{&first});
    thread.join();
    try std.testing.expect(first != null);
    try std.testing.expect(first.?.state != .active);
    var second: ?*Heap = null;
    const again = try std.Thread.spawn(.{}, Worker.run, .{&second});
    again.join();
    try std.testing.expectEqual(first, second);
    try std.testing.expect(snapshot().heap_count >= 1);
}

/// Takes an orphan off its list, as reclaim does, for a test to drain.
fn claimForTest(heap: *Heap) !void {
    registry_lock.lock();
    defer registry_lock.unlock();
    const state = heap.state;
    try std.testing.expect(state == .warm_orphan or state == .cold_orphan);
    orphanList(state).remove(heap);
    if (state == .warm_orphan) warm_count -= 1;
    setState(heap, .claimed);
}

test "a heap that gives back its idle pages keeps its counts in the registry and serves again" {
    start();
    const class = sizeclass.classOf(64);
    const Worker = struct {
        fn run(out: *?*Heap) void {
            const heap = currentOrCreate() orelse return;
            for (0..100) |_| {
                heap_box.freeOwn(heap, heap.alloc(class) orelse return);
            }
            out.* = heap;
        }
    };
    var orphan: ?*Heap = null;
    const thread = try std.Thread.spawn(.{}, Worker.run, .{&orphan});
    thread.join();
    const heap = orphan orelse return error.OutOfMemory;
    const before = snapshot();
    // Claimed as reclaim does, then drained and its idle pages given back.
    try claimForTest(heap);
    drainClaimed(heap, .cold_orphan, .newest);
    const after = snapshot();
    try std.testing.expectEqual(before.alloc_count, after.alloc_count);
    try std.testing.expectEqual(before.free_count, after.free_count);
    try std.testing.expectEqual(@as(u64, 0), heap.counters.class_allocs[class].read());
    // The next thread adopts it (the newest cold orphan, unless a warm one
    // waits) and allocates from it as from a fresh heap.
    var adopted: ?*Heap = null;
    const again = try std.Thread.spawn(.{}, Worker.run, .{&adopted});
    again.join();
    try std.testing.expect(adopted != null);
    try std.testing.expectEqual(before.alloc_count + 100, snapshot().alloc_count);
}

test "threads that exit together leave at most warm_orphans_max heaps warm" {
    start();
    const threads = warm_orphans_max + 4;
    const Worker = struct {
        fn run(out: *?*Heap, ready: *std.atomic.Value(u32)) void {
            const heap = currentOrCreate() orelse return;
            out.* = heap;
            heap_box.freeOwn(heap, heap.alloc(sizeclass.classOf(64)) orelse return);
            // Each holds its heap until all have one, so none adopts another's.
            _ = ready.fetchAdd(1, .monotonic);
            while (ready.load(.monotonic) < threads) std.Thread.yield() catch {};
        }
    };
    var heaps: [threads]?*Heap = @splat(null);
    var ready: std.atomic.Value(u32) = .init(0);
    var handles: [threads]std.Thread = undefined;
    for (&handles, &heaps) |*handle, *heap| handle.* = try std.Thread.spawn(.{}, Worker.run, .{ heap, &ready });
    for (handles) |handle| handle.join();
    // A cold orphan gave back its only span, and with it its segment.
    var bare: usize = 0;
    for (heaps) |heap| {
        try std.testing.expect(heap.?.state != .active);
        if (heap.?.isBare()) bare += 1;
    }
    try std.testing.expect(bare >= threads - warm_orphans_max);
    try std.testing.expect(warm_count <= warm_orphans_max);
}

test "a heap about to take a fresh span borrows from a heap it never handed blocks to" {
    start();
    // A class no other test here uses: this thread's heap holds no span of it.
    const class = sizeclass.classOf(20 * 1024);
    const own = currentOrCreate().?;
    const Owner = struct {
        fn run(out: *?*Heap, blocks: []*anyopaque, ready: *std.Thread.ResetEvent, done: *std.Thread.ResetEvent) void {
            const heap = currentOrCreate() orelse return ready.set();
            for (blocks) |*slot| slot.* = heap.alloc(class) orelse return ready.set();
            out.* = heap;
            ready.set();
            // Alive (an active heap) while the main thread borrows.
            done.wait();
        }
    };
    var blocks: [8]*anyopaque = undefined;
    var owner: ?*Heap = null;
    var ready: std.Thread.ResetEvent = .{};
    var done: std.Thread.ResetEvent = .{};
    const thread = try std.Thread.spawn(.{}, Owner.run, .{ &owner, &blocks, &ready, &done });
    defer thread.join();
    defer done.set();
    ready.wait();
    const lender = owner orelse return error.OutOfMemory;
    // Another heap (not in the registry) frees them to their owner.
    var freer: Heap = .{};
    heap_box.freeRemotely(&freer, &blocks);
    try std.testing.expect(lender.inbox.hasPending(class));
    // This heap hands a block of the class to a third one (not in the
    // registry either), which collects it: the inbox this heap last
    // flushed the class to is empty.
    var third: Heap = .{};
    const handed = [1]*anyopaque{third.alloc(class) orelse return error.OutOfMemory};
    heap_box.freeRemotely(own, &handed);
    third.collectAll();
    try std.testing.expect(own.outbox.recipient[class] == &third.inbox);
    // Lending is for more threads running than CPUs: with a CPU each, none
    // lends; with none to spare, the owner does.
    const cpus = cpu_count;
    defer cpu_count = cpus;
    cpu_count = std.math.maxInt(u32);
    try std.testing.expect(findLender(own, class) == null);
    // Two threads on one CPU: the owner counts as running while it
    // refilled within the window, and this thread always does.
    cpu_count = 1;
    @atomicStore(u32, &lender.refill_ms, os.nowMs() -% 2 * running_window_ms, .monotonic);
    try std.testing.expect(findLender(own, class) == null);
    @atomicStore(u32, &lender.refill_ms, os.nowMs(), .monotonic);
    try std.testing.expectEqual(lender, findLender(own, class).?);
    cpu_count = 0;
    // This heap never handed blocks to the lender, yet takes them.
    var again: [8]*anyopaque = undefined;
    for (&again) |*slot| slot.* = own.alloc(class) orelse return error.OutOfMemory;
    for (again) |p| try std.testing.expect(std.mem.indexOfScalar(*anyopaque, &blocks, p) != null);
    try std.testing.expect(!lender.inbox.hasPending(class));
    try std.testing.expectEqual(lender, own.lender[class]);
    // They go back to their owner as remote frees.
    heap_box.freeRemotely(own, &again);
    try std.testing.expect(lender.inbox.hasPending(class));
}

test "a heap backs off only while more heaps ran lately than the process has CPUs" {
    start();
    const own = currentOrCreate().?;
    const cpus = cpu_count;
    defer cpu_count = cpus;
    cpu_count = std.math.maxInt(u32);
    try std.testing.expect(!backOff(own, 0));
    // The asking heap's own thread always counts as running.
    cpu_count = 0;
    try std.testing.expect(backOff(own, 0));
    try std.testing.expect(backOff(own, 5));
    // Again only while the running heaps outnumber the CPUs `yields` + 1
    // times over: a bounded wait.
    cpu_count = 1;
    var yields: u32 = 0;
    while (backOff(own, yields)) yields += 1;
    try std.testing.expect(yields <= running_scan_heaps);
}

test "an orphan that aged past the newest cold ones gives its segment back at the first flush" {
    start();
    const threads = warm_orphans_max + spared_cold_orphans + 2;
    const class = sizeclass.classOf(64);
    const Worker = struct {
        fn run(out: *?*Heap, left: *?*span_box.Block, ready: *std.atomic.Value(u32)) void {
            const heap = currentOrCreate() orelse return;
            left.* = @ptrCast(@alignCast(heap.alloc(class) orelse return));
            out.* = heap;
            // Each holds its heap until all have one, so none adopts another's.
            _ = ready.fetchAdd(1, .monotonic);
            while (ready.load(.monotonic) < threads) std.Thread.yield() catch {};
        }
    };
    const own = currentOrCreate().?;
    var heaps: [threads]?*Heap = @splat(null);
    var left: [threads]?*span_box.Block = @splat(null);
    var ready: std.atomic.Value(u32) = .init(0);
    var handles: [threads]std.Thread = undefined;
    for (&handles, &heaps, &left) |*handle, *heap, *block| handle.* = try std.Thread.spawn(.{}, Worker.run, .{ heap, block, &ready });
    for (handles) |handle| handle.join();
    // Each orphan's block comes back in one flush, after it aged.
    for (left) |maybe_block| {
        const block = maybe_block orelse return error.OutOfMemory;
        const addr = @intFromPtr(block);
        own.freeRemote(segment_box.Segment.of(addr).spanOf(addr), block);
        own.outbox.flushAll(&own.counters);
    }
    var aged: usize = 0;
    for (heaps) |heap| {
        if (heap.?.state != .aged_orphan) continue;
        aged += 1;
        try std.testing.expect(!heap.?.inbox.hasPending(class));
        try std.testing.expect(heap.?.isBare());
    }
    // At least this many of them were pushed past the newest cold ones.
    try std.testing.expect(aged >= threads - warm_orphans_max - spared_cold_orphans);
}

test "an orphan that took flushes while young collects at its first flush once aged" {
    start();
    const class = sizeclass.classOf(64);
    const Worker = struct {
        fn run(out: *?*Heap, blocks: *[2]*span_box.Block) void {
            const heap = currentOrCreate() orelse return;
            for (blocks) |*block| block.* = @ptrCast(@alignCast(heap.alloc(class) orelse return));
            out.* = heap;
        }
    };
    const own = currentOrCreate().?;
    var orphan: ?*Heap = null;
    var blocks: [2]*span_box.Block = undefined;
    const thread = try std.Thread.spawn(.{}, Worker.run, .{ &orphan, &blocks });
    thread.join();
    const heap = orphan orelse return error.OutOfMemory;
    const freeAndFlush = struct {
        fn call(by: *Heap, block: *span_box.Block) void {
            const addr = @intFromPtr(block);
            by.freeRemote(segment_box.Segment.of(addr).spanOf(addr), block);
            by.outbox.flushAll(&by.counters);
        }
    }.call;
    // A flush while it is young: it waits (no 64th yet).
    freeAndFlush(own, blocks[0]);
    try std.testing.expect(heap.inbox.hasPending(class));
    // It ages (as another thread's exit would make it), then one flush.
    try claimForTest(heap);
    releaseAged(heap);
    try std.testing.expect(!heap.inbox.hasPending(class));
    freeAndFlush(own, blocks[1]);
    try std.testing.expect(!heap.inbox.hasPending(class));
    try std.testing.expect(heap.isBare());
}

test "blocks freed after their owner's thread exited are collected for it" {
    start();
    const class = sizeclass.classOf(64);
    // More than even a warm orphan keeps resident, so the collect must
    // purge; in whole collects' worth of full batches, so none is left
    // waiting.
    const per_collect = policy.remote_batch_blocks[class] * orphan_flushes_per_collect;
    const count = std.mem.alignForward(usize, (Heap.adopted_keep_factor * policy.snapshot.purge_slices + 8) * layout.slice_size_bytes / 64, per_collect);
    const blocks = try std.testing.allocator.alloc(*span_box.Block, count);
    defer std.testing.allocator.free(blocks);
    // This thread's heap first, so it does not adopt the worker's below.
    const own = currentOrCreate().?;
    const Worker = struct {
        fn run(out: *?*Heap, memory: []*span_box.Block) void {
            const heap = currentOrCreate() orelse return;
            for (memory) |*block| block.* = @ptrCast(@alignCast(heap.alloc(class) orelse return));
            out.* = heap;
        }
    };
    var orphan: ?*Heap = null;
    const thread = try std.Thread.spawn(.{}, Worker.run, .{ &orphan, blocks });
    thread.join();
    const heap = orphan orelse return error.OutOfMemory;
    try std.testing.expect(heap.state != .active);
    for (blocks) |block| {
        const addr = @intFromPtr(block);
        own.freeRemote(segment_box.Segment.of(addr).spanOf(addr), block);
    }
    own.outbox.flushAll(&own.counters);
    // Nothing waits for a thread that will never come, and what the frees
    // emptied is purged down to what an orphan of its kind keeps.
    try std.testing.expect(!heap.inbox.hasPending(class));
    try std.testing.expect(heap.dirty_slices <= orphanKeepSlices(heap, heap.state));
}
