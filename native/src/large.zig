//! Large box: blocks above the medium classes (or aligned beyond a segment
//! page), each mapped on its own and recorded in a registry.
//!
//! The registry is an open-addressing table keyed by the block's address,
//! under one lock. It makes "is this a large block of ours?" exact, so a
//! foreign pointer that happens to fall near one is still rejected; large
//! allocations cost a syscall anyway, so the lock is not the bottleneck.
//!
//! Freed mappings are kept in a cache of up to `cache_slots` mappings and
//! `cacheLimitBytes()` bytes (`idleCacheBytes()` while no large block is
//! live), each for at most the purge delay (the oldest go first when it is
//! full), so a program that allocates and frees big buffers of varying
//! size pays no map, unmap and refault each time.
//! A block is the pages its request needs (one that realloc grows, its
//! length class: `Request`), and the cache serves it from resident pages:
//! the shortest cached mapping that is long enough (best fit), whole when
//! it is not much longer, else its head, the rest staying cached however
//! short, so that it joins its neighbour again when that is freed.
//! Adjacent cached mappings join into one entry, so the pieces a program
//! frees next to each other serve a later, longer request; such an entry
//! may span two kernel mappings, which mremap refuses to resize: a joined
//! entry grows by mapping the missing pages right after or before it, else
//! by moving its pages onto the head of a fresh mapping (a move, not a
//! resize), and a block taken from one that realloc must grow is copied
//! when mremap refuses it.
//!
//! In the `hardened` lane each block is the pages it needs followed by a
//! PROT_NONE guard page, so a linear overflow past its last page faults;
//! the guard stays with it through `resize`. Its freed mappings are never
//! cached: zeroed and made inaccessible, they wait out `quarantine_slots`
//! later frees, so a use after free faults and no new block takes a
//! dangling pointer's place; then they are unmapped, or (zeroed in place,
//! a length the program frees again and again) wait in a pool for a
//! request of about their length.
const std = @import("std");
const hash = @import("hash.zig");
const layout = @import("layout.zig");
const os = @import("os.zig");
const policy = @import("policy.zig");
const sizeclass = @import("sizeclass.zig");
const stats = @import("stats.zig");

const page_size_bytes = layout.page_size_bytes;

/// A large block: its address and usable length, at the start of its
/// mapping, which may end with a guard page (hardened lane: its length is
/// the request's pages, so an overflow past them faults).
const Block = struct {
    /// Aligned so that a registry slot is 32 bytes (`Entry`).
    addr: usize align(32),
    /// Usable bytes, a page multiple.
    len_bytes: usize,
    guarded: bool,

    /// Bytes mapped for it: the usable length and the guard page.
    fn mapBytes(block: Block) usize {
        return block.len_bytes + if (block.guarded) page_size_bytes else 0;
    }

    fn unmap(block: Block) void {
        unmapCounted(@ptrFromInt(block.addr), block.mapBytes());
    }
};

/// A registry slot is a `Block` (32 bytes: a page of the table holds a
/// power of two of them); `addr` 0 = empty. Linear probing, and a removal
/// shifts the entries after it back, so there are no tombstones: the table
/// is only remapped to grow, never to clean up after frees.
const Entry = Block;
const initial_capacity = page_size_bytes / @sizeOf(Entry);
comptime {
    std.debug.assert(@sizeOf(Entry) == 32);
    std.debug.assert(std.math.isPowerOfTwo(initial_capacity));
}

var lock: os.Lock = .{};
var table: []Entry = &.{};
var live: usize = 0;

fn slotIndex(addr: usize, capacity: usize) usize {
    std.debug.assert(std.math.isPowerOfTwo(capacity) and capacity > 1);
    // Addresses are page aligned: the page number is the key.
    return hash.topBits(addr >> 12, std.math.log2_int(usize, capacity));
}

fn findLocked(addr: usize) ?*Entry {
    if (table.len == 0) return null;
    var index = slotIndex(addr, table.len);
    var probes: usize = 0;
    while (probes < table.len) : (probes += 1) {
        const entry = &table[index];
        if (entry.addr == addr) return entry;
        if (entry.addr == 0) return null;
        index = (index + 1) & (table.len - 1);
    }
    return null;
}

/// Grows the table so one more entry fits at no more than half load.
/// False when the new table cannot be mapped.
fn reserveLocked() bool {
    if ((live + 1) * 2 <= table.len) return true;
    const capacity = @max(initial_capacity, table.len * 2);
    const memory = mapCounted(capacity * @sizeOf(Entry)) orelse return false;
    const fresh: []Entry = @as([*]Entry, @ptrCast(memory))[0..capacity];
    for (table) |entry| {
        if (entry.addr == 0) continue;
        var index = slotIndex(entry.addr, capacity);
        while (fresh[index].addr != 0) index = (index + 1) & (capacity - 1);
        fresh[index] = entry;
    }
    if (table.len > 0) unmapCounted(@ptrCast(@alignCast(table.ptr)), table.len * @sizeOf(Entry));
    table = fresh;
    return true;
}

fn insertLocked(block: Block) void {
    std.debug.assert(block.addr != 0 and (live + 1) * 2 <= table.len);
    var index = slotIndex(block.addr, table.len);
    while (table[index].addr != 0) index = (index + 1) & (table.len - 1);
    table[index] = block;
    live += 1;
}

/// Empties `entry`'s slot, moving back each later entry of the probe run
/// whose home slot does not lie between the hole and itself, so every
/// entry stays reachable from its home without tombstones.
fn removeLocked(entry: *Entry) void {
    const mask = table.len - 1;
    var hole = (@intFromPtr(entry) - @intFromPtr(table.ptr)) / @sizeOf(Entry);
    var index = (hole + 1) & mask;
    while (table[index].addr != 0) : (index = (index + 1) & mask) {
        const home = slotIndex(table[index].addr, table.len);
        // Moving is allowed when the hole lies cyclically in [home, index).
        if (((index -% home) & mask) >= ((index -% hole) & mask)) {
            table[hole] = table[index];
            hole = index;
        }
    }
    table[hole].addr = 0;
    live -= 1;
}

// ---------------------------------------------------------------------------
// Lengths.

/// Length classes per doubling for a block that grows (`classLength`):
/// rounded up by less than 1/`classes_per_doubling` of its length, so that
/// a buffer realloc grows step by step is not moved at every step.
const classes_per_doubling = 4;
/// A shrinking `resize` keeps the block when what it leaves over is at
/// most this many quarters of the new length, a `growing` request takes a
/// cached mapping that much longer whole, and the hardened lane's pool
/// serves a request from a retired mapping that much longer: the memory
/// each may waste is bounded.
const reuse_slack_quarters = 3;
/// Any other request takes a cached mapping whole when it is at most this
/// many quarters longer, and only its head when longer: the rest of a
/// longer one serves the next request, where inside the block it served
/// none (large-churn faulted 7 pages a replacement with 3, 6 with 2). Cut
/// to the page every time, the rests of a program that replaces buffers
/// of 5–25 MiB a millisecond apart waited past the purge delay and were
/// unmapped: twice the faults (bench/LEDGER.md).
const fit_slack_quarters = 2;

/// The usable length mapped for a request of `size_bytes`: whole pages
/// (a block cut from a cached mapping leaves the rest for others: no
/// rounding up serves a later request better; bench/LEDGER.md); null when
/// no mapping can be that big.
fn lengthFor(size_bytes: usize) ?usize {
    // Room for the rounding and a guard page without overflow.
    if (size_bytes > std.math.maxInt(isize)) return null;
    return pageLength(size_bytes);
}

/// `len` (whole pages) rounded up to its length class when a mapping of
/// that class fits in the cache (`cache_limit_bytes`): the length a block
/// that grows gets (`resize`, `Request.growing`).
fn classLength(len: usize, cache_limit_bytes: usize) usize {
    if (len <= page_size_bytes * classes_per_doubling) return len;
    const step = @as(usize, 1) << (std.math.log2_int(usize, len - 1) - std.math.log2_int(usize, classes_per_doubling));
    const class_len = std.mem.alignForward(usize, len, step);
    return if (class_len <= cache_limit_bytes) class_len else len;
}

/// Whole pages for `size_bytes` (at most `maxInt(isize)`).
fn pageLength(size_bytes: usize) usize {
    return std.mem.alignForward(usize, @max(size_bytes, 1), page_size_bytes);
}

/// Whether a mapping of `have` usable bytes may serve a request of `len`
/// as it is (`reuse_slack_quarters`).
fn reusable(have: usize, len: usize) bool {
    return withinSlack(have, len, reuse_slack_quarters);
}

/// Whether `have` usable bytes hold `len` with at most `slack_quarters`
/// quarters of `len` to spare.
fn withinSlack(have: usize, len: usize, slack_quarters: usize) bool {
    return have >= len and have - len <= (len / 4) * slack_quarters;
}

// ---------------------------------------------------------------------------
// The cache of freed mappings (under `lock`). Never a guarded one: the
// hardened lane quarantines its freed mappings instead (`quarantineLocked`).

const cache_slots = 128;

/// Bytes the cache may hold: the lane's `large_cache_mb`, or half the
/// bytes of the live large blocks when that is more (page aligned), so a
/// program that keeps hundreds of MiB in large blocks of varying size
/// reuses resident pages instead of faulting in fresh ones at every
/// replacement, for at most half as much again (bench/LEDGER.md). A lane
/// without a cache keeps none.
fn cacheLimitBytes() usize {
    const lane_bytes = policy.snapshot.largeCacheBytes();
    if (lane_bytes == 0) return 0;
    const live_bytes: usize = @intCast(stats.global.large_bytes.read());
    return @max(lane_bytes, std.mem.alignBackward(usize, live_bytes / 2, page_size_bytes));
}

/// What the cache may hold while no large block is live (under the lock):
/// half the lane's bytes. A program that freed all its big buffers and
/// went idle reaches no boundary where the purge delay could expire them,
/// so this much stays resident for good (the lane's whole 64 MiB was the
/// give-back bound of bench/LEDGER.md); one buffer used over and over, or
/// a batch of up to this many bytes, still finds its mappings.
fn idleCacheBytes() usize {
    return std.mem.alignBackward(usize, policy.snapshot.largeCacheBytes() / 2, page_size_bytes);
}

const Cached = struct {
    block: Block = .{ .addr = 0, .len_bytes = 0, .guarded = false },
    freed_ms: u32 = 0,
    /// Order of the frees: the smallest is the oldest entry.
    sequence: u64 = 0,
    /// It may span two kernel mappings (it joined a neighbour, or mremap
    /// refused it once): never grown with mremap, which would refuse it.
    joined: bool = false,
};
/// The cached mappings are `cache[0..cache_count]`, in no order: every
/// search reads only those (a large malloc or free makes a few).
var cache: [cache_slots]Cached = @splat(.{});
var cache_bytes: usize = 0;
var cache_count: usize = 0;
var frees_cached: u64 = 0;

/// Mappings taken out of the cache (and a freed block the cache refused),
/// to unmap once the lock is released.
///
/// Declared `undefined` with `count` set to 0: a default-initialised one
/// was zeroed whole (4.6 KiB) on every large malloc and free.
const Evicted = struct {
    blocks: [cache_slots + pool_slots + 1]Block,
    count: usize,

    fn add(evicted: *Evicted, block: Block) void {
        evicted.blocks[evicted.count] = block;
        evicted.count += 1;
    }

    fn unmapAll(evicted: *const Evicted) void {
        for (evicted.blocks[0..evicted.count]) |block| block.unmap();
    }
};

/// The cached mappings (under the lock).
fn cachedLocked() []Cached {
    return cache[0..cache_count];
}

/// Takes `slot`'s entry out of the cache; the last entry takes its place.
fn dropLocked(slot: *Cached) Cached {
    const entry = slot.*;
    const last = &cache[cache_count - 1];
    slot.* = last.*;
    last.* = .{};
    cache_bytes -= entry.block.len_bytes;
    @atomicStore(usize, &cache_count, cache_count - 1, .monotonic);
    return entry;
}

/// Takes `slot`'s mapping out of the cache, split after `len` usable
/// bytes: the head is the caller's; the rest stays cached with the entry's
/// free time, however short: alone it may serve no request, but it joins
/// the head again when that is freed while both are cached, and the pages
/// stay whole instead of holes that fresh mappings fault in again.
fn takeHeadLocked(slot: *Cached, len: usize, evicted: *Evicted) Block {
    const entry = dropLocked(slot);
    std.debug.assert(!entry.block.guarded and len <= entry.block.len_bytes);
    const rest: Block = .{ .addr = entry.block.addr + len, .len_bytes = entry.block.len_bytes - len, .guarded = false };
    if (rest.len_bytes > 0) cacheLocked(rest, entry.freed_ms, entry.joined, evicted);
    return .{ .addr = entry.block.addr, .len_bytes = len, .guarded = false };
}

/// Moves cache entries older than the purge delay (all of them when
/// `everything`) to `evicted`.
fn expireLocked(now_ms: u32, everything: bool, evicted: *Evicted) void {
    var index: usize = 0;
    while (index < cache_count) {
        const slot = &cache[index];
        if (!everything and now_ms -% slot.freed_ms < policy.snapshot.purge_delay_ms) {
            index += 1;
        } else {
            // The last entry moves here: this index is read again.
            evicted.add(dropLocked(slot).block);
        }
    }
}

/// What the cache gives a request: a mapping to use as it is, or a shorter
/// one to grow (`growBlock`).
const Taken = union(enum) { ready: Block, grow: Cached };

/// The best fit for `len` usable bytes at `alignment_bytes`: the shortest
/// cached mapping that holds them, the most recently freed of equals,
/// whole when it is at most `fit_slack_quarters` longer (a `growing`
/// request: `reuse_slack_quarters`), else its head, the rest staying cached
/// (`takeHeadLocked`): its pages are resident, where a fresh mapping would
/// fault each one in.
/// Failing that (page alignment: mremap may move it), the longest shorter
/// mapping, to grow: growing keeps its pages resident too.
fn takeCachedLocked(len: usize, alignment_bytes: usize, request: Request, evicted: *Evicted) ?Taken {
    var fit: ?*Cached = null;
    var shorter: ?*Cached = null;
    for (cachedLocked()) |*slot| {
        const block = slot.block;
        if (block.addr % alignment_bytes != 0) continue;
        if (block.len_bytes < len) {
            if (shorter == null or block.len_bytes > shorter.?.block.len_bytes) shorter = slot;
            continue;
        }
        if (fit) |b| {
            if (block.len_bytes > b.block.len_bytes) continue;
            if (block.len_bytes == b.block.len_bytes and slot.sequence < b.sequence) continue;
        }
        fit = slot;
    }
    if (fit) |slot| {
        const slack_quarters: usize = if (request == .growing) reuse_slack_quarters else fit_slack_quarters;
        if (withinSlack(slot.block.len_bytes, len, slack_quarters)) return .{ .ready = dropLocked(slot).block };
        return .{ .ready = takeHeadLocked(slot, len, evicted) };
    }
    if (alignment_bytes > page_size_bytes) return null;
    return .{ .grow = dropLocked(shorter orelse return null) };
}

/// Whether a cached mapping has `len` usable bytes or more.
fn cachedAtLeastLocked(len: usize) bool {
    for (cachedLocked()) |slot| {
        if (slot.block.len_bytes >= len) return true;
    }
    return false;
}

/// At least `need_bytes` of the cached mapping that starts at
/// `addr`, taken out of the cache: the bytes taken (all of it when what
/// would be left is too short to cache), or null when none starts there.
fn takeFollowingLocked(addr: usize, need_bytes: usize, evicted: *Evicted) ?usize {
    for (cachedLocked()) |*slot| {
        if (slot.block.addr != addr or slot.block.len_bytes < need_bytes) continue;
        const whole = slot.block.len_bytes - need_bytes < min_block_bytes;
        return takeHeadLocked(slot, if (whole) slot.block.len_bytes else need_bytes, evicted).len_bytes;
    }
    return null;
}

/// `old` (taken from the cache for a new block, so its contents do not
/// matter) grown to `len` usable bytes, or null (`old` untouched) when the
/// system refuses. mremap keeps its pages, moving them if it must; where
/// mremap refuses (a joined entry spans two kernel mappings), the missing
/// pages are mapped right after it or right before it, else its pages are
/// moved onto the head of a fresh mapping: its resident pages still serve
/// instead of a fresh mapping faulted in whole.
fn growBlock(old: Cached, len: usize) ?Block {
    const grown = (if (old.joined) null else remapBlock(old.block, len)) orelse
        extendBlock(old.block, len) orelse moveOnto(old, len) orelse return null;
    stats.global.mapped(grown.mapBytes() - old.block.mapBytes());
    return grown;
}

/// Set when the kernel refused to move a joined entry: it moves no range
/// that spans two mappings, so no joined entry is offered to it again.
var joined_moves_refused: bool = false;

/// A fresh mapping of `len` usable bytes with `old`'s pages moved onto its
/// head, so that only the rest faults in (a move costs about what ten
/// faults do here: bench/LEDGER.md); null (`old` untouched, nothing left
/// mapped) when the system refuses. Linux moves a range that spans several
/// mappings when it need not resize it (this project's hosts, 6.18, do);
/// a kernel that refuses one is not asked again.
fn moveOnto(old: Cached, len: usize) ?Block {
    if (old.joined and @atomicLoad(bool, &joined_moves_refused, .monotonic)) return null;
    const memory = os.map(len) orelse return null;
    if (os.move(old.block.addr, old.block.len_bytes, @intFromPtr(memory))) {
        return .{ .addr = @intFromPtr(memory), .len_bytes = len, .guarded = false };
    }
    if (old.joined) @atomicStore(bool, &joined_moves_refused, true, .monotonic);
    // A refusal may leave the head unmapped; munmap takes the range whole.
    os.unmap(memory, len);
    return null;
}

/// `old` with the pages up to `len` usable bytes mapped next to it, after
/// or before; null when both neighbouring ranges are taken.
fn extendBlock(old: Block, len: usize) ?Block {
    std.debug.assert(!old.guarded and len > old.len_bytes);
    const extra_bytes = len - old.len_bytes;
    if (os.mapAt(old.addr + old.len_bytes, extra_bytes)) return .{ .addr = old.addr, .len_bytes = len, .guarded = false };
    if (old.addr > extra_bytes and os.mapAt(old.addr - extra_bytes, extra_bytes)) {
        return .{ .addr = old.addr - extra_bytes, .len_bytes = len, .guarded = false };
    }
    return null;
}

/// No request but an aligned one (rare) is a large block below this: every
/// other smaller request is a span block. A piece left shorter serves none
/// on its own, so realloc's growth into a cached mapping takes it whole,
/// an eviction trims the oldest entry only when this much of it stays, and
/// a shrink that would leave less keeps it with the block.
const min_block_bytes = sizeclass.medium_max_bytes + 1;

/// Keeps a freed block, making room by evicting the oldest entries into
/// `evicted`; one bigger than the whole cache goes to `evicted` itself.
/// A block joins the cached mappings right before and after it
/// (fresh mappings are placed next to each other), so a later request
/// longer than either can take resident pages instead of mapping fresh
/// ones; the joined entry keeps the older free time, so no page stays
/// cached past the purge delay.
fn cacheLocked(freed: Block, freed_ms: u32, freed_joined: bool, evicted: *Evicted) void {
    std.debug.assert(!freed.guarded);
    const limit = if (live == 0) idleCacheBytes() else cacheLimitBytes();
    if (freed.len_bytes > limit) {
        makeRoomLocked(0, false, limit, evicted);
        return evicted.add(freed);
    }
    var block = freed;
    var oldest_ms = freed_ms;
    var joined = freed_joined;
    var index: usize = 0;
    while (index < cache_count) {
        const slot = &cache[index];
        const other = slot.block;
        const adjacent = other.addr + other.len_bytes == block.addr or block.addr + block.len_bytes == other.addr;
        if (!adjacent or block.len_bytes + other.len_bytes > limit) {
            index += 1;
            continue;
        }
        if (freed_ms -% slot.freed_ms > freed_ms -% oldest_ms) oldest_ms = slot.freed_ms;
        joined = true;
        // The last entry moves here: this index is read again.
        _ = dropLocked(slot);
        block = .{ .addr = @min(block.addr, other.addr), .len_bytes = block.len_bytes + other.len_bytes, .guarded = false };
    }
    makeRoomLocked(block.len_bytes, true, limit, evicted);
    frees_cached += 1;
    cache[cache_count] = .{ .block = block, .freed_ms = oldest_ms, .sequence = frees_cached, .joined = joined };
    cache_bytes += block.len_bytes;
    @atomicStore(usize, &cache_count, cache_count + 1, .monotonic);
}

/// Evicts the oldest entries into `evicted` until `bytes` more fit within
/// `limit` (and, when `slot_needed`, a slot is free).
fn makeRoomLocked(bytes: usize, slot_needed: bool, limit: usize, evicted: *Evicted) void {
    while (cache_bytes + bytes > limit or (slot_needed and cache_count == cache_slots)) {
        var oldest: ?*Cached = null;
        for (cachedLocked()) |*slot| {
            if (oldest == null or slot.sequence < oldest.?.sequence) oldest = slot;
        }
        const slot = oldest.?;
        const excess = cache_bytes + bytes -| limit;
        if (cache_count < cache_slots and slot.block.len_bytes >= excess + min_block_bytes) {
            // Only what does not fit goes: the oldest may be a long joined
            // run, and unmapping all of it would empty the cache.
            slot.block.len_bytes -= excess;
            cache_bytes -= excess;
            evicted.add(.{ .addr = slot.block.addr + slot.block.len_bytes, .len_bytes = excess, .guarded = false });
            return;
        }
        evicted.add(dropLocked(slot).block);
    }
}

/// Unmaps every cached mapping. Returns the bytes.
pub fn trimCache() usize {
    return trim(true);
}

/// Unmaps the cached mappings older than the purge delay. Returns the
/// bytes. Entries otherwise expire only when a large block is allocated or
/// freed; a purge boundary of another box can call this so a program that
/// stops using large blocks does not keep the cache resident. Two atomic
/// loads when the cache and the hardened pool are empty.
pub fn trimExpired() usize {
    if (@atomicLoad(usize, &cache_count, .monotonic) == 0 and @atomicLoad(usize, &pool_count, .monotonic) == 0) return 0;
    return trim(false);
}

fn trim(everything: bool) usize {
    var evicted: Evicted = undefined;
    evicted.count = 0;
    const now_ms = os.nowMs();
    lock.lock();
    expireLocked(now_ms, everything, &evicted);
    expirePoolLocked(now_ms, everything, &evicted);
    if (everything) purgeQuarantineLocked();
    lock.unlock();
    evicted.unmapAll();
    var bytes: usize = 0;
    for (evicted.blocks[0..evicted.count]) |block| bytes += block.mapBytes();
    return bytes;
}

/// The mappings of this box, counted as mapped (os.zig counts nothing).
fn mapCounted(len_bytes: usize) ?[*]align(page_size_bytes) u8 {
    const memory = os.map(len_bytes) orelse return null;
    stats.global.mapped(len_bytes);
    return memory;
}

fn unmapCounted(ptr: [*]align(page_size_bytes) u8, len_bytes: usize) void {
    os.unmap(ptr, len_bytes);
    stats.global.unmapped(len_bytes);
}

/// Maps a fresh block of `len` usable bytes, with its guard page when
/// `guarded`. Null when the system refuses.
fn mapBlock(len: usize, alignment_bytes: usize, guarded: bool) ?Block {
    const block: Block = .{ .addr = 0, .len_bytes = len, .guarded = guarded };
    const map_len = block.mapBytes();
    const memory = (if (alignment_bytes <= page_size_bytes)
        os.map(map_len)
    else
        os.mapAligned(map_len, alignment_bytes)) orelse return null;
    if (guarded and !os.protectNone(@alignCast(memory + len), page_size_bytes)) {
        os.unmap(memory, map_len);
        return null;
    }
    stats.global.mapped(map_len);
    return .{ .addr = @intFromPtr(memory), .len_bytes = len, .guarded = guarded };
}

/// What a large block is asked for: `exact`, its pages (malloc and the
/// rest); `growing`, the new block of one that realloc copies because it
/// could not grow in place, given room for its next growth: its length
/// class, and a cached mapping within the slack whole (a realloc to a
/// random size moved a fifth more often without: bench/LEDGER.md).
pub const Request = enum { exact, growing };

/// A large block: one mapping of its own.
pub const Mapping = struct {
    ptr: *anyopaque,
    /// Fresh from the kernel, so already zero (a cached mapping is not).
    zeroed: bool,
};

/// A mapping of at least `size_bytes`, aligned to `alignment_bytes` (a
/// power of two). Null when the system refuses the memory.
pub fn alloc(size_bytes: usize, alignment_bytes: usize, request: Request) ?Mapping {
    // Hardened: the request's pages, never from the cache (its freed
    // mappings are quarantined, then pooled), so the guard page follows the
    // last page the request needs.
    const guarded = policy.snapshot.hardened();
    const pages_len = lengthFor(size_bytes) orelse return null;
    const len = if (request == .growing and !guarded) classLength(pages_len, cacheLimitBytes()) else pages_len;
    var evicted: Evicted = undefined;
    evicted.count = 0;
    defer evicted.unmapAll();
    const now_ms = os.nowMs();
    lock.lock();
    if (!reserveLocked()) {
        lock.unlock();
        return null;
    }
    expireLocked(now_ms, false, &evicted);
    expirePoolLocked(now_ms, false, &evicted);
    const pooled = if (guarded) takePooledLocked(len, alignment_bytes) else null;
    var shorter: ?Cached = null;
    if (!guarded) if (takeCachedLocked(len, alignment_bytes, request, &evicted)) |taken| switch (taken) {
        .ready => |block| {
            insertLocked(block);
            lock.unlock();
            counted(block.len_bytes);
            return .{ .ptr = @ptrFromInt(block.addr), .zeroed = false };
        },
        .grow => |old| shorter = old,
    };
    lock.unlock();
    const grown = if (shorter) |old| growBlock(old, len) else null;
    if (grown == null) if (shorter) |old| {
        // Refused (its pages span two mappings, its neighbours are
        // taken, and the kernel would not move it): cached again as it
        // was, never again given to mremap to resize.
        lock.lock();
        cacheLocked(old.block, old.freed_ms, true, &evicted);
        lock.unlock();
    };
    const reused = if (pooled) |retired| takeBackPooled(retired, len) else null;
    const block = reused orelse grown orelse mapBlock(len, alignment_bytes, guarded) orelse return null;
    lock.lock();
    if (!reserveLocked()) {
        lock.unlock();
        block.unmap();
        return null;
    }
    insertLocked(block);
    lock.unlock();
    counted(block.len_bytes);
    return .{ .ptr = @ptrFromInt(block.addr), .zeroed = grown == null };
}

fn counted(len: usize) void {
    stats.global.large_count.add(1);
    stats.global.large_bytes.add(len);
    stats.global.alloc_count.add(1);
    stats.global.alloc_bytes.add(len);
}

/// Usable bytes of the large block at `addr`, or null if it is not one.
pub fn usableSize(addr: usize) ?usize {
    lock.lock();
    defer lock.unlock();
    const entry = findLocked(addr) orelse return null;
    return entry.*.len_bytes;
}

/// Frees the large block at `addr`. False (nothing done) if it is not one.
pub fn free(addr: usize) bool {
    var evicted: Evicted = undefined;
    evicted.count = 0;
    defer evicted.unmapAll();
    const now_ms = os.nowMs();
    lock.lock();
    const entry = findLocked(addr) orelse {
        lock.unlock();
        return false;
    };
    const block = entry.*;
    removeLocked(entry);
    if (block.guarded) {
        const may_keep = retired_resident_bytes + block.len_bytes <= policy.snapshot.largeCacheBytes() and
            retiredLikeLocked(block.len_bytes);
        if (may_keep) retired_resident_bytes += block.len_bytes;
        lock.unlock();
        const resident = retireGuarded(block, may_keep);
        lock.lock();
        if (may_keep and !resident) retired_resident_bytes -= block.len_bytes;
        expirePoolLocked(now_ms, false, &evicted);
        quarantineLocked(.{ .block = block, .resident = resident }, now_ms, &evicted);
    } else {
        expireLocked(now_ms, false, &evicted);
        cacheLocked(block, now_ms, false, &evicted);
    }
    lock.unlock();
    stats.global.large_count.sub(1);
    stats.global.large_bytes.sub(block.len_bytes);
    stats.global.free_count.add(1);
    stats.global.free_bytes.add(block.len_bytes);
    return true;
}

// ---------------------------------------------------------------------------
// Hardened lane: freed (guarded) mappings wait in the quarantine, zero and
// inaccessible, so a read or write after free faults and a new large block
// lands elsewhere instead of where a dangling pointer still points. Those
// that leave it resident wait in the pool, still inaccessible, where a
// later request of about their length takes one back instead of mapping
// fresh pages and faulting each in (a program that frees and allocates
// buffers of about one size over and over, which `retiredLikeLocked`
// looks for). What the two keep resident is bounded by the lane's
// `large_cache_mb`; the pool's entries go after the purge delay.

/// A mapping in the quarantine or the pool: its usable pages are zero and
/// inaccessible; `resident` when they were zeroed in place (counted in
/// `retired_resident_bytes`), not purged.
const Retired = struct {
    block: Block,
    resident: bool,
    /// When it entered the pool (os.nowMs).
    pooled_ms: u32 = 0,
};

const quarantine_slots = 16;
var quarantine: [quarantine_slots]?Retired = @splat(null);
var quarantine_next: usize = 0;
const pool_slots = 16;
var pool: [pool_slots]?Retired = @splat(null);
var pool_count: usize = 0;
var retired_resident_bytes: usize = 0;

/// Zeroes a freed guarded block and makes it inaccessible; the caller
/// removed it from the registry, so no other thread reaches it meanwhile
/// and no lock is held for the system calls. With `may_keep` (room in the
/// resident bound), a block whose pages are all in memory is zeroed with
/// stores and stays resident; any other is purged. Returns whether it stayed.
fn retireGuarded(block: Block, may_keep: bool) bool {
    std.debug.assert(block.guarded);
    const memory: [*]align(page_size_bytes) u8 = @ptrFromInt(block.addr);
    const resident = may_keep and os.allResident(memory, block.len_bytes);
    if (resident) {
        @memset(memory[0..block.len_bytes], 0);
    } else {
        os.purge(memory, block.len_bytes);
        stats.global.purged(block.len_bytes);
    }
    // Best effort: a range the kernel will not protect is still zero.
    _ = os.protectNone(memory, block.len_bytes);
    return resident;
}

/// Whether the quarantine or the pool holds a block that a request of
/// `len` usable bytes could reuse, or one that could serve a request of
/// `len` (`reusable` either way): a program that frees a block of about
/// this length again is likely to ask for one again. A length seen once
/// is purged as before, so a lone big buffer stays no longer resident.
fn retiredLikeLocked(len: usize) bool {
    // Read in place: `quarantine ++ pool` would copy both arrays first.
    for ([_][]const ?Retired{ &quarantine, &pool }) |entries| {
        for (entries) |entry| {
            const other = (entry orelse continue).block.len_bytes;
            if (reusable(other, len) or reusable(len, other)) return true;
        }
    }
    return false;
}

/// Purges the quarantined blocks kept resident (`trimCache`): they stay
/// quarantined, zero and inaccessible.
fn purgeQuarantineLocked() void {
    for (&quarantine) |*slot| {
        const entry = if (slot.*) |*retired| retired else continue;
        if (!entry.resident) continue;
        os.purge(@ptrFromInt(entry.block.addr), entry.block.len_bytes);
        stats.global.purged(entry.block.len_bytes);
        retired_resident_bytes -= entry.block.len_bytes;
        entry.resident = false;
    }
}

/// Puts a retired block in the quarantine; the one it pushes out moves to
/// the pool when resident, else to `evicted`.
fn quarantineLocked(retired: Retired, now_ms: u32, evicted: *Evicted) void {
    if (quarantine[quarantine_next]) |oldest| poolLocked(oldest, now_ms, evicted);
    quarantine[quarantine_next] = retired;
    quarantine_next = (quarantine_next + 1) % quarantine_slots;
}

/// Keeps a resident retired block in the pool, pushing out the oldest
/// entry when the pool is full; any other goes to `evicted`.
fn poolLocked(retired: Retired, now_ms: u32, evicted: *Evicted) void {
    if (!retired.resident) return evicted.add(retired.block);
    var free_slot: ?*?Retired = null;
    var oldest: ?*?Retired = null;
    for (&pool) |*slot| {
        const entry = slot.* orelse {
            free_slot = slot;
            break;
        };
        if (oldest == null or now_ms -% entry.pooled_ms > now_ms -% oldest.?.*.?.pooled_ms) oldest = slot;
    }
    const slot = free_slot orelse slot: {
        dropPooledLocked(oldest.?, evicted);
        break :slot oldest.?;
    };
    slot.* = .{ .block = retired.block, .resident = true, .pooled_ms = now_ms };
    @atomicStore(usize, &pool_count, pool_count + 1, .monotonic);
}

/// Takes `slot`'s entry out of the pool, into `evicted`.
fn dropPooledLocked(slot: *?Retired, evicted: *Evicted) void {
    evicted.add(unpoolLocked(slot));
}

/// Takes `slot`'s entry out of the pool.
fn unpoolLocked(slot: *?Retired) Block {
    const entry = slot.*.?;
    slot.* = null;
    retired_resident_bytes -= entry.block.len_bytes;
    @atomicStore(usize, &pool_count, pool_count - 1, .monotonic);
    return entry.block;
}

/// Moves pool entries older than the purge delay (all of them when
/// `everything`) to `evicted`.
fn expirePoolLocked(now_ms: u32, everything: bool, evicted: *Evicted) void {
    if (pool_count == 0) return;
    for (&pool) |*slot| {
        const entry = slot.* orelse continue;
        if (!everything and now_ms -% entry.pooled_ms < policy.snapshot.purge_delay_ms) continue;
        dropPooledLocked(slot, evicted);
    }
}

/// The shortest pooled mapping that may serve `len` usable bytes at
/// `alignment_bytes` (`reusable`), taken out of the pool, still
/// inaccessible: `takeBackPooled` makes its head the block.
fn takePooledLocked(len: usize, alignment_bytes: usize) ?Block {
    if (pool_count == 0) return null;
    var best: ?*?Retired = null;
    for (&pool) |*slot| {
        const entry = slot.* orelse continue;
        if (!reusable(entry.block.len_bytes, len) or entry.block.addr % alignment_bytes != 0) continue;
        if (best) |b| if (b.*.?.block.len_bytes <= entry.block.len_bytes) continue;
        best = slot;
    }
    return unpoolLocked(best orelse return null);
}

/// A block of `len` usable bytes made from `pooled` (at least that long):
/// its head made accessible again, the page after it (still inaccessible)
/// its guard, the rest unmapped. Null, with `pooled` unmapped, when the
/// system refuses.
fn takeBackPooled(pooled: Block, len: usize) ?Block {
    std.debug.assert(pooled.guarded and pooled.len_bytes >= len);
    const memory: [*]align(page_size_bytes) u8 = @ptrFromInt(pooled.addr);
    if (!os.protectReadWrite(memory, len)) {
        pooled.unmap();
        return null;
    }
    if (pooled.len_bytes > len) unmapCounted(@alignCast(memory + len + page_size_bytes), pooled.len_bytes - len);
    return .{ .addr = pooled.addr, .len_bytes = len, .guarded = true };
}

pub const Resized = union(enum) {
    /// The block now lives here (maybe moved), with its contents.
    moved: *anyopaque,
    /// Not done, the block untouched: the caller copies it into a new
    /// block. Either the system refused (out of memory, or the block's
    /// pages span two mappings), or the cache holds resident pages for the
    /// new size, which a copy fills faster than mremap faults in the pages
    /// the block would grow by.
    copy,
    /// `addr` is not a large block.
    not_large,
};

/// Resizes a large block in place or by moving its pages (mremap), or
/// answers `copy`. A block that still fits with bounded slack (as a cache
/// reuse would) is kept as it is; a guarded one only when its pages are
/// just enough. An unguarded block shrinks by leaving its tail in the
/// cache, and grows in place into a cached mapping right after it, else
/// by a copy into a cached mapping: resident pages each time, where mremap
/// would give the tail back to the kernel and fault in every page it grows
/// by.
pub fn resize(addr: usize, size_bytes: usize) Resized {
    const len = lengthFor(size_bytes) orelse return .copy;
    const cache_limit_bytes = cacheLimitBytes();
    var evicted: Evicted = undefined;
    evicted.count = 0;
    defer evicted.unmapAll();
    const now_ms = os.nowMs();
    lock.lock();
    defer lock.unlock();
    const entry = findLocked(addr) orelse return .not_large;
    const old = entry.*;
    // A block that must grow takes its length class, so that a buffer
    // grown step by step moves less often; one that shrinks keeps its
    // pages while what it leaves over stays within the slack.
    const new_len = if (old.guarded or len <= old.len_bytes) len else classLength(len, cache_limit_bytes);
    const fits = if (old.guarded) new_len == old.len_bytes else reusable(old.len_bytes, new_len);
    if (fits) return .{ .moved = @ptrFromInt(addr) };
    if (!old.guarded) {
        if (new_len < old.len_bytes and old.len_bytes - new_len >= min_block_bytes) {
            const tail: Block = .{ .addr = old.addr + new_len, .len_bytes = old.len_bytes - new_len, .guarded = false };
            entry.len_bytes = new_len;
            cacheLocked(tail, now_ms, false, &evicted);
            stats.global.large_bytes.sub(tail.len_bytes);
            stats.global.free_bytes.add(tail.len_bytes);
            return .{ .moved = @ptrFromInt(addr) };
        }
        if (new_len > old.len_bytes) {
            if (takeFollowingLocked(old.addr + old.len_bytes, new_len - old.len_bytes, &evicted)) |extra_bytes| {
                entry.len_bytes = old.len_bytes + extra_bytes;
                stats.global.large_bytes.add(extra_bytes);
                stats.global.alloc_bytes.add(extra_bytes);
                return .{ .moved = @ptrFromInt(addr) };
            }
            if (cachedAtLeastLocked(new_len)) return .copy;
        }
    }
    // Reserve first so a moved block can always be recorded.
    if (!reserveLocked()) return .copy;
    const entry_now = findLocked(addr).?;
    const new = remapBlock(old, new_len) orelse return .copy;
    removeLocked(entry_now);
    insertLocked(new);
    if (new.mapBytes() > old.mapBytes()) {
        stats.global.mapped(new.mapBytes() - old.mapBytes());
    } else {
        stats.global.unmapped(old.mapBytes() - new.mapBytes());
    }
    if (new.len_bytes > old.len_bytes) {
        stats.global.large_bytes.add(new.len_bytes - old.len_bytes);
        stats.global.alloc_bytes.add(new.len_bytes - old.len_bytes);
    } else {
        stats.global.large_bytes.sub(old.len_bytes - new.len_bytes);
        stats.global.free_bytes.add(old.len_bytes - new.len_bytes);
    }
    return .{ .moved = @ptrFromInt(new.addr) };
}

/// `old` with `len` usable bytes, its contents kept (moved by the kernel if
/// it must grow elsewhere). Null, with `old` untouched, when the system
/// refuses.
fn remapBlock(old: Block, len: usize) ?Block {
    const base: [*]align(page_size_bytes) u8 = @ptrFromInt(old.addr);
    if (!old.guarded) {
        const memory = os.remap(base, old.len_bytes, len) orelse return null;
        return .{ .addr = @intFromPtr(memory), .len_bytes = len, .guarded = false };
    }
    if (len < old.len_bytes) {
        // In place: the new guard where the block now ends, the rest (the
        // old guard with it) unmapped.
        if (!os.protectNone(@alignCast(base + len), page_size_bytes)) return null;
        os.unmap(@alignCast(base + len + page_size_bytes), old.len_bytes - len);
        return .{ .addr = old.addr, .len_bytes = len, .guarded = true };
    }
    // The guard occupies the pages the block would grow into, so mremap
    // moves the usable pages, taking one more for the new guard; the old
    // guard stays behind and is unmapped.
    const map_len = std.math.add(usize, len, page_size_bytes) catch return null;
    const memory = os.remap(base, old.len_bytes, map_len) orelse return null;
    if (memory != base) os.unmap(@alignCast(base + old.len_bytes), page_size_bytes);
    if (!os.protectNone(@alignCast(memory + len), page_size_bytes)) {
        // Keep the block without a guard rather than fail a done move.
        return .{ .addr = @intFromPtr(memory), .len_bytes = map_len, .guarded = false };
    }
    return .{ .addr = @intFromPtr(memory), .len_bytes = len, .guarded = true };
}

pub fn lockForFork() void {
    lock.lock();
}
pub fn unlockAfterFork() void {
    lock.unlock();
}
pub fn resetAfterFork() void {
    lock.resetAfterFork();
}

test "large blocks are registered, resized and freed" {
    const p = (alloc(1 << 20, 16, .exact) orelse return error.OutOfMemory).ptr;
    const addr = @intFromPtr(p);
    try std.testing.expectEqual(@as(?usize, 1 << 20), usableSize(addr));
    try std.testing.expectEqual(@as(?usize, null), usableSize(addr + 4096));
    @as([*]u8, @ptrCast(p))[12345] = 9;
    const grown = try resizedTo(addr, 8 << 20);
    try std.testing.expectEqual(@as(u8, 9), @as([*]u8, @ptrFromInt(grown))[12345]);
    try std.testing.expect(free(grown));
    try std.testing.expect(!free(grown));
}

test "the registry finds every live entry after removals in any order" {
    lock.lock();
    defer lock.unlock();
    const live_before = live;
    // Keys above the user address space: never a real block.
    const first: usize = 1 << 47;
    const count = 1500;
    var present: [count]bool = @splat(false);
    var rng = std.Random.DefaultPrng.init(12345);
    for (0..count) |i| {
        try std.testing.expect(reserveLocked());
        insertLocked(.{ .addr = first + i * page_size_bytes, .len_bytes = page_size_bytes, .guarded = false });
        present[i] = true;
        // Interleave removals, so probe runs wrap and shift.
        if (rng.random().boolean()) {
            const victim = rng.random().uintLessThan(usize, i + 1);
            if (present[victim]) {
                removeLocked(findLocked(first + victim * page_size_bytes).?);
                present[victim] = false;
            }
        }
    }
    for (present, 0..) |here, i| {
        const found = findLocked(first + i * page_size_bytes);
        try std.testing.expectEqual(here, found != null);
        if (here) try std.testing.expectEqual(first + i * page_size_bytes, found.?.addr);
    }
    for (present, 0..) |here, i| {
        if (here) removeLocked(findLocked(first + i * page_size_bytes).?);
    }
    try std.testing.expectEqual(live_before, live);
    for (0..count) |i| try std.testing.expectEqual(@as(?*Entry, null), findLocked(first + i * page_size_bytes));
}

test "aligned large blocks and a full registry" {
    var blocks: [300]usize = undefined;
    for (&blocks, 0..) |*slot, i| {
        const alignment: usize = if (i % 3 == 0) 1 << 20 else 16;
        const p = (alloc(300 * 1024, alignment, .exact) orelse return error.OutOfMemory).ptr;
        try std.testing.expect(@intFromPtr(p) % alignment == 0);
        slot.* = @intFromPtr(p);
    }
    for (blocks) |addr| try std.testing.expect(usableSize(addr) != null);
    for (blocks) |addr| try std.testing.expect(free(addr));
    try std.testing.expectEqual(@as(usize, 0), live);
    _ = trimCache();
}

/// Runs the cache tests with `lane`'s policy and a long purge delay (a
/// loaded machine must not expire entries mid-test), an empty cache before
/// and after.
const TestPolicy = struct {
    saved: policy.Policy,

    fn begin(lane: policy.Lane, large_cache_mb: u32) TestPolicy {
        const saved = policy.snapshot;
        _ = trimCache();
        policy.snapshot = .ofLane(lane);
        policy.snapshot.large_cache_mb = large_cache_mb;
        policy.snapshot.purge_delay_ms = 3_600_000;
        return .{ .saved = saved };
    }

    fn end(test_policy: TestPolicy) void {
        _ = trimCache();
        policy.snapshot = test_policy.saved;
    }
};

/// Where `resize` moved (or kept) the block at `addr`.
fn resizedTo(addr: usize, size_bytes: usize) !usize {
    return switch (resize(addr, size_bytes)) {
        .moved => |p| @intFromPtr(p),
        else => error.TestUnexpectedResult,
    };
}

fn allocOrFail(size_bytes: usize) !Mapping {
    return alloc(size_bytes, 16, .exact) orelse error.OutOfMemory;
}

test "a block is its whole pages; one that grows is rounded to four classes per doubling when they can be cached" {
    const limit: usize = 64 << 20;
    try std.testing.expectEqual(@as(?usize, (1 << 20) + page_size_bytes), lengthFor((1 << 20) + 1));
    try std.testing.expectEqual(@as(?usize, 600 << 10), lengthFor(600 << 10));
    try std.testing.expectEqual(@as(?usize, null), lengthFor(std.math.maxInt(usize)));
    try std.testing.expectEqual(@as(usize, 1 << 20), classLength(1 << 20, limit));
    try std.testing.expectEqual(@as(usize, 1280 << 10), classLength((1 << 20) + page_size_bytes, limit));
    try std.testing.expectEqual(@as(usize, 640 << 10), classLength(600 << 10, limit));
    try std.testing.expectEqual(@as(usize, 3584 << 10), classLength((3 << 20) + page_size_bytes, limit));
    try std.testing.expectEqual(@as(usize, 3 * page_size_bytes), classLength(3 * page_size_bytes, limit));
    // Too big for the cache (or no cache, the compact lane): whole pages only.
    try std.testing.expectEqual(@as(usize, (1 << 20) + page_size_bytes), classLength((1 << 20) + page_size_bytes, 1 << 20));
    try std.testing.expectEqual(@as(usize, (1 << 20) + page_size_bytes), classLength((1 << 20) + page_size_bytes, 0));
    var size: usize = 256 << 10;
    while (size < 64 << 20) : (size += 12345) {
        const len = classLength(lengthFor(size).?, limit);
        try std.testing.expect(len >= size and len - size < size / classes_per_doubling + page_size_bytes);
    }
}

test "a freed mapping serves later requests from its head, best fit, its rest cached however short, not zeroed" {
    const test_policy = TestPolicy.begin(.balanced, 64);
    defer test_policy.end();
    const first_len: usize = (1 << 20) + page_size_bytes;
    const first = try allocOrFail((1 << 20) + 1);
    try std.testing.expect(first.zeroed);
    try std.testing.expectEqual(@as(?usize, first_len), usableSize(@intFromPtr(first.ptr)));
    @as([*]u8, @ptrCast(first.ptr))[0] = 7;
    @as([*]u8, @ptrCast(first.ptr))[first_len - 1] = 1;
    try std.testing.expect(free(@intFromPtr(first.ptr)));
    try std.testing.expect(!free(@intFromPtr(first.ptr)));
    try std.testing.expectEqual(@as(?usize, null), usableSize(@intFromPtr(first.ptr)));
    // The same length: the cached mapping, contents as they were.
    const again = try allocOrFail(first_len);
    try std.testing.expectEqual(first.ptr, again.ptr);
    try std.testing.expect(!again.zeroed);
    try std.testing.expectEqual(@as(u8, 7), @as([*]u8, @ptrCast(again.ptr))[0]);
    try std.testing.expect(free(@intFromPtr(again.ptr)));
    // Much shorter: its head, no longer than asked; the rest stays cached
    // for the next. (A request that leaves at most half its length over
    // takes the mapping whole: the next test.)
    const head = try allocOrFail(600 << 10);
    try std.testing.expectEqual(first.ptr, head.ptr);
    try std.testing.expect(!head.zeroed);
    try std.testing.expectEqual(@as(?usize, 600 << 10), usableSize(@intFromPtr(head.ptr)));
    const rest_len = first_len - (600 << 10);
    const tail = try allocOrFail(rest_len);
    try std.testing.expectEqual(@intFromPtr(first.ptr) + (600 << 10), @intFromPtr(tail.ptr));
    try std.testing.expect(!tail.zeroed);
    try std.testing.expectEqual(@as(u8, 1), @as([*]u8, @ptrCast(tail.ptr))[rest_len - 1]);
    // Nothing cached is left for 1 MiB: a fresh mapping.
    const fresh = try allocOrFail(1 << 20);
    try std.testing.expect(fresh.zeroed);
    // Best fit: of the tail and the 1 MiB mapping, a 200 KiB request takes
    // the tail's head (the tail is more than half as long again). (The live
    // head keeps the fresh mapping, placed below it, from joining the tail.)
    try std.testing.expect(free(@intFromPtr(tail.ptr)));
    try std.testing.expect(free(@intFromPtr(fresh.ptr)));
    const fit = try allocOrFail(200 << 10);
    try std.testing.expectEqual(tail.ptr, fit.ptr);
    try std.testing.expectEqual(@as(?usize, 200 << 10), usableSize(@intFromPtr(fit.ptr)));
    // Its rest, too short for any large block, stays cached and joins it
    // again: the tail's whole length is one resident mapping once more.
    try std.testing.expect(free(@intFromPtr(fit.ptr)));
    const whole = try allocOrFail(rest_len);
    try std.testing.expectEqual(tail.ptr, whole.ptr);
    try std.testing.expect(!whole.zeroed);
    try std.testing.expect(free(@intFromPtr(whole.ptr)));
    try std.testing.expect(free(@intFromPtr(head.ptr)));
    try std.testing.expect(trimCache() >= first_len + (1 << 20));
    try std.testing.expectEqual(@as(usize, 0), cache_count);
}

test "the cache keeps the most recent mappings within its bytes and slots" {
    const test_policy = TestPolicy.begin(.balanced, 4);
    defer test_policy.end();
    // Live throughout: with none live, the cache holds half as much.
    const keeper = try allocOrFail(1 << 20);
    defer _ = free(@intFromPtr(keeper.ptr));
    var blocks: [6]usize = undefined;
    for (&blocks) |*addr| addr.* = @intFromPtr((try allocOrFail(1 << 20)).ptr);
    for (blocks) |addr| {
        try std.testing.expect(free(addr));
        try std.testing.expect(cache_bytes <= 4 << 20);
    }
    // Full, with the last freed kept (joined or not, as the kernel placed
    // them): over the limit, only what does not fit was unmapped.
    try std.testing.expectEqual(@as(usize, 4 << 20), cache_bytes);
    try std.testing.expect(cachedAt(blocks[5]));
    // A mapping bigger than the whole cache is not kept (its allocation
    // grew the longest cached mapping that never joined another, if any).
    const huge = try allocOrFail(5 << 20);
    try std.testing.expectEqual(@as(?usize, (5 << 20)), usableSize(@intFromPtr(huge.ptr)));
    const left_bytes = cache_bytes;
    try std.testing.expect(free(@intFromPtr(huge.ptr)));
    try std.testing.expectEqual(left_bytes, cache_bytes);

    // Slots: freed mappings kept apart by live ones cannot join.
    policy.snapshot.large_cache_mb = 1024;
    var many: [2 * (cache_slots + 8)]usize = undefined;
    for (&many) |*addr| addr.* = @intFromPtr((try allocOrFail(300 << 10)).ptr);
    for (many, 0..) |addr, i| {
        if (i % 2 == 0) try std.testing.expect(free(addr));
    }
    try std.testing.expectEqual(@as(usize, cache_slots), cache_count);
    var total: usize = 0;
    for (cachedLocked()) |slot| total += slot.block.len_bytes;
    try std.testing.expectEqual(total, cache_bytes);
    for (many, 0..) |addr, i| {
        if (i % 2 == 1) try std.testing.expect(free(addr));
    }
}

test "the cache holds up to half the live large bytes when that is more than the lane's, half the lane's when none is live" {
    const test_policy = TestPolicy.begin(.balanced, 1);
    defer test_policy.end();
    // No other test leaves a large block live.
    try std.testing.expectEqual(@as(u64, 0), stats.global.large_bytes.read());
    var blocks: [8]usize = undefined;
    for (&blocks) |*addr| addr.* = @intFromPtr((try allocOrFail(1 << 20)).ptr);
    // A block's bytes leave the live count after it is cached: 8, 7 and 6
    // MiB live allow 4, 3.5 and 3 MiB.
    for (blocks[0..3]) |addr| try std.testing.expect(free(addr));
    try std.testing.expectEqual(@as(usize, 3 << 20), cache_bytes);
    // As the live blocks go, so does the cache, down to the lane's 1 MiB,
    // and to half that once none is live.
    for (blocks[3..], 0..) |addr, freed| {
        try std.testing.expect(free(addr));
        try std.testing.expect(cache_bytes <= @max(1 << 20, (5 - freed) << 19));
    }
    try std.testing.expectEqual(@as(usize, 1 << 19), cache_bytes);

    // Live blocks of an odd number of pages in all: the bound stays page
    // aligned (an unaligned one would unmap unaligned tails, which munmap
    // refuses).
    var odd: [3]usize = undefined;
    for (&odd) |*addr| addr.* = @intFromPtr((try allocOrFail((1 << 20) + page_size_bytes)).ptr);
    try std.testing.expectEqual(@as(u64, 3 * ((1 << 20) + page_size_bytes)), stats.global.large_bytes.read());
    try std.testing.expect(cacheLimitBytes() > 1 << 20);
    try std.testing.expectEqual(@as(usize, 0), cacheLimitBytes() % page_size_bytes);
    for (odd) |addr| try std.testing.expect(free(addr));
}

/// Whether a cached mapping holds the page at `addr`.
fn cachedAt(addr: usize) bool {
    for (cachedLocked()) |slot| {
        if (slot.block.addr <= addr and addr < slot.block.addr + slot.block.len_bytes) return true;
    }
    return false;
}

test "adjacent freed mappings join, and serve a request longer than each" {
    const test_policy = TestPolicy.begin(.balanced, 64);
    defer test_policy.end();
    // Head and tail of one mapping are adjacent whatever the kernel does.
    const whole = try allocOrFail(2 << 20);
    try std.testing.expect(free(@intFromPtr(whole.ptr)));
    const head = try allocOrFail(1 << 20);
    const tail = try allocOrFail(1 << 20);
    try std.testing.expectEqual(@intFromPtr(whole.ptr), @intFromPtr(head.ptr));
    try std.testing.expectEqual(@intFromPtr(whole.ptr) + (1 << 20), @intFromPtr(tail.ptr));
    try std.testing.expect(free(@intFromPtr(tail.ptr)));
    try std.testing.expect(free(@intFromPtr(head.ptr)));
    try std.testing.expectEqual(@as(usize, 1), cache_count);
    try std.testing.expectEqual(@as(usize, 2 << 20), cache_bytes);
    // A joined entry may span two kernel mappings, which mremap refuses to
    // resize: a longer request maps the missing pages next to it, or, when
    // both neighbouring ranges are taken, moves its pages onto the head of
    // a fresh mapping. Either way its pages serve, their contents kept.
    @as(*u8, @ptrCast(whole.ptr)).* = 0x5a;
    const longer = try allocOrFail(4 << 20);
    const longer_addr = @intFromPtr(longer.ptr);
    try std.testing.expect(!longer.zeroed);
    try std.testing.expectEqual(@as(usize, 0), cache_count);
    const extended = longer_addr <= @intFromPtr(whole.ptr) and @intFromPtr(whole.ptr) + (2 << 20) <= longer_addr + (4 << 20);
    const kept_at = if (extended) @intFromPtr(whole.ptr) else longer_addr;
    try std.testing.expectEqual(@as(u8, 0x5a), @as(*u8, @ptrFromInt(kept_at)).*);
    try std.testing.expect(free(longer_addr));
}

test "a joined cached mapping whose neighbours are taken moves onto a fresh mapping" {
    const test_policy = TestPolicy.begin(.balanced, 64);
    defer test_policy.end();
    // Three MiB of our own: the middle one cached as a joined entry, the
    // ranges right before and after it taken.
    const memory = os.map(3 << 20) orelse return error.OutOfMemory;
    defer {
        os.unmap(memory, 1 << 20);
        os.unmap(@alignCast(memory + (2 << 20)), 1 << 20);
    }
    const middle: Block = .{ .addr = @intFromPtr(memory) + (1 << 20), .len_bytes = 1 << 20, .guarded = false };
    memory[1 << 20] = 0x5a;
    stats.global.mapped(middle.len_bytes);
    var evicted: Evicted = undefined;
    evicted.count = 0;
    lock.lock();
    cacheLocked(middle, os.nowMs(), true, &evicted);
    lock.unlock();
    try std.testing.expectEqual(@as(usize, 0), evicted.count);
    // Neither mremap nor the ranges next to it can grow it: its resident
    // page moves to the head of a fresh mapping, the rest of which faults in.
    const grown = try allocOrFail(2 << 20);
    const bytes: [*]u8 = @ptrCast(grown.ptr);
    try std.testing.expect(!grown.zeroed);
    try std.testing.expectEqual(@as(usize, 0), cache_count);
    try std.testing.expectEqual(@as(u8, 0x5a), bytes[0]);
    try std.testing.expect(@intFromPtr(bytes) != middle.addr);
    bytes[(2 << 20) - 1] = 1;
    try std.testing.expect(free(@intFromPtr(bytes)));
}

test "a cached mapping grows into the free range right after or before it" {
    // Four MiB of our own, so that every range the test needs taken is.
    const memory = os.map(4 << 20) orelse return error.OutOfMemory;
    const addr = @intFromPtr(memory);
    // Free range right after a 2 MiB block.
    os.unmap(@alignCast(memory + (2 << 20)), 1 << 20);
    const after = extendBlock(.{ .addr = addr, .len_bytes = 2 << 20, .guarded = false }, 3 << 20).?;
    try std.testing.expectEqual(addr, after.addr);
    try std.testing.expectEqual(@as(usize, 3 << 20), after.len_bytes);
    memory[(3 << 20) - 1] = 1;
    // Free range right before the 2 MiB block at addr + 1 MiB, the range
    // after it (the last MiB) taken.
    os.unmap(memory, 1 << 20);
    const before = extendBlock(.{ .addr = addr + (1 << 20), .len_bytes = 2 << 20, .guarded = false }, 3 << 20).?;
    try std.testing.expectEqual(addr, before.addr);
    memory[0] = 1;
    // Both ranges taken: nothing is mapped.
    try std.testing.expectEqual(@as(?Block, null), extendBlock(.{ .addr = addr + (1 << 20), .len_bytes = 1 << 20, .guarded = false }, 2 << 20));
    os.unmap(memory, 4 << 20);
}

test "a block that grows is given room: resize rounds it to its class, a growing request takes a fit within the wider slack whole" {
    const test_policy = TestPolicy.begin(.balanced, 64);
    defer test_policy.end();
    // A block of whole pages shrinks in place within the slack, and grows
    // to its length class (1 MiB + a page: 1280 KiB) when nothing is in
    // the way.
    const block = try allocOrFail(1000 << 10);
    const addr = @intFromPtr(block.ptr);
    try std.testing.expectEqual(@as(?usize, 1000 << 10), usableSize(addr));
    try std.testing.expectEqual(addr, try resizedTo(addr, 990 << 10));
    try std.testing.expectEqual(@as(?usize, 1000 << 10), usableSize(addr));
    const grown = try resizedTo(addr, (1 << 20) + 1);
    try std.testing.expectEqual(@as(?usize, 1280 << 10), usableSize(grown));
    try std.testing.expect(free(grown));
    // A 1600 KiB mapping cached: an exact request of 1 MiB and a page takes
    // its head, a growing one (its class 1280 KiB) all of it, and so does an
    // exact one of 1100 KiB (at most half its length over).
    _ = trimCache();
    const cached = try allocOrFail(1600 << 10);
    try std.testing.expect(free(@intFromPtr(cached.ptr)));
    const exact = try allocOrFail((1 << 20) + 1);
    try std.testing.expectEqual(cached.ptr, exact.ptr);
    try std.testing.expectEqual(@as(?usize, (1 << 20) + page_size_bytes), usableSize(@intFromPtr(exact.ptr)));
    try std.testing.expect(free(@intFromPtr(exact.ptr)));
    const roomy = alloc((1 << 20) + 1, 16, .growing) orelse return error.OutOfMemory;
    try std.testing.expectEqual(cached.ptr, roomy.ptr);
    try std.testing.expectEqual(@as(?usize, 1600 << 10), usableSize(@intFromPtr(roomy.ptr)));
    try std.testing.expect(free(@intFromPtr(roomy.ptr)));
    const close = try allocOrFail(1100 << 10);
    try std.testing.expectEqual(cached.ptr, close.ptr);
    try std.testing.expectEqual(@as(?usize, 1600 << 10), usableSize(@intFromPtr(close.ptr)));
    try std.testing.expect(free(@intFromPtr(close.ptr)));
    _ = trimCache();
}

test "resize leaves a shrunk block's tail cached, grows into a cached neighbour, else copies into resident pages" {
    const test_policy = TestPolicy.begin(.balanced, 64);
    defer test_policy.end();
    const block = try allocOrFail(2 << 20);
    const addr = @intFromPtr(block.ptr);
    const bytes: [*]u8 = @ptrCast(block.ptr);
    bytes[0] = 0x5a;
    bytes[(2 << 20) - 1] = 0xa5;
    // Shrunk beyond the slack: the tail goes to the cache, resident.
    const shrunk = try resizedTo(addr, 1 << 20);
    try std.testing.expectEqual(addr, shrunk);
    try std.testing.expectEqual(@as(?usize, 1 << 20), usableSize(addr));
    try std.testing.expectEqual(@as(usize, 1), cache_count);
    try std.testing.expect(cachedAt(addr + (1 << 20)));
    // Grown again: in place, into that tail, contents and all.
    const grown = try resizedTo(addr, 2 << 20);
    try std.testing.expectEqual(addr, grown);
    try std.testing.expectEqual(@as(?usize, 2 << 20), usableSize(addr));
    try std.testing.expectEqual(@as(usize, 0), cache_count);
    try std.testing.expectEqual(@as(u8, 0xa5), bytes[(2 << 20) - 1]);
    // Nothing follows it, but a longer mapping is cached: copy into it.
    const other = try allocOrFail(4 << 20);
    try std.testing.expect(free(@intFromPtr(other.ptr)));
    try std.testing.expect(resize(addr, 3 << 20) == .copy);
    try std.testing.expectEqual(@as(?usize, 2 << 20), usableSize(addr));
    try std.testing.expectEqual(@as(u8, 0x5a), bytes[0]);
    try std.testing.expect(free(addr));
}

test "a request longer than every cached mapping grows the longest one" {
    const test_policy = TestPolicy.begin(.balanced, 64);
    defer test_policy.end();
    const small = try allocOrFail(1 << 20);
    const bytes: [*]u8 = @ptrCast(small.ptr);
    bytes[0] = 0x5a;
    try std.testing.expect(free(@intFromPtr(small.ptr)));
    try std.testing.expectEqual(@as(usize, 1), cache_count);
    // Its pages move with it (mremap): the contents show it was reused.
    const big = try allocOrFail(3 << 20);
    try std.testing.expectEqual(@as(usize, 0), cache_count);
    try std.testing.expect(!big.zeroed);
    try std.testing.expectEqual(@as(u8, 0x5a), @as([*]u8, @ptrCast(big.ptr))[0]);
    try std.testing.expectEqual(@as(?usize, 3 << 20), usableSize(@intFromPtr(big.ptr)));
    @as([*]u8, @ptrCast(big.ptr))[(3 << 20) - 1] = 1;
    try std.testing.expect(free(@intFromPtr(big.ptr)));
}

test "cached mappings expire after the purge delay; compact keeps none" {
    var test_policy = TestPolicy.begin(.balanced, 64);
    defer test_policy.end();
    const block = try allocOrFail(1 << 20);
    try std.testing.expect(free(@intFromPtr(block.ptr)));
    try std.testing.expectEqual(@as(usize, 1), cache_count);
    try std.testing.expectEqual(@as(usize, 0), trimExpired());
    try std.testing.expectEqual(@as(usize, 1), cache_count);
    policy.snapshot.purge_delay_ms = 0;
    try std.testing.expectEqual(@as(usize, 1 << 20), trimExpired());
    try std.testing.expectEqual(@as(usize, 0), cache_count);
    try std.testing.expectEqual(@as(usize, 0), trimExpired());
    try std.testing.expect(free(@intFromPtr((try allocOrFail(1 << 20)).ptr)));
    try std.testing.expectEqual(@as(usize, 1), cache_count);
    const other = try allocOrFail(300 << 10);
    try std.testing.expect(other.zeroed);
    try std.testing.expectEqual(@as(usize, 0), cache_count);
    try std.testing.expect(free(@intFromPtr(other.ptr)));

    policy.snapshot = .ofLane(.compact);
    const compact = try allocOrFail((1 << 20) + 1);
    try std.testing.expectEqual(@as(?usize, (1 << 20) + page_size_bytes), usableSize(@intFromPtr(compact.ptr)));
    try std.testing.expect(free(@intFromPtr(compact.ptr)));
    try std.testing.expectEqual(@as(usize, 0), cache_count);
}

/// Whether the kernel can read the page at `addr` (a write from it to a
/// pipe fails with EFAULT on a guard page; nothing faults).
fn readable(addr: usize) bool {
    var fds: [2]i32 = undefined;
    std.debug.assert(std.os.linux.pipe(&fds) == 0);
    defer for (fds) |fd| os.close(fd);
    const rc = std.os.linux.write(fds[1], @ptrFromInt(addr), 1);
    return std.os.linux.E.init(rc) == .SUCCESS;
}

test "hardened: a block that leaves the quarantine resident serves a later request, zeroed, with its guard" {
    const test_policy = TestPolicy.begin(.hardened, 64);
    defer test_policy.end();
    const len: usize = 300 << 10;
    // What earlier tests left in the quarantine and the pool goes first.
    for (0..quarantine_slots) |_| {
        const other = try allocOrFail(4 * len);
        try std.testing.expect(free(@intFromPtr(other.ptr)));
    }
    _ = trimCache();
    // The first block of a length is purged; the next one of about that
    // length stays resident.
    const first = try allocOrFail(len);
    const kept = try allocOrFail(len);
    const kept_addr = @intFromPtr(kept.ptr);
    @memset(@as([*]u8, @ptrCast(first.ptr))[0..len], 0x5A);
    @memset(@as([*]u8, @ptrCast(kept.ptr))[0..len], 0xA5);
    try std.testing.expect(free(@intFromPtr(first.ptr)));
    try std.testing.expect(free(kept_addr));
    try std.testing.expect(!readable(kept_addr));
    // Sixteen frees of longer blocks whose pages were never all touched
    // push both out of the quarantine: the kept one into the pool.
    for (0..quarantine_slots) |_| {
        const other = try allocOrFail(4 * len);
        try std.testing.expect(free(@intFromPtr(other.ptr)));
    }
    try std.testing.expectEqual(@as(usize, 1), pool_count);
    try std.testing.expect(!readable(kept_addr));
    // A shorter request takes its head: zeroed, its guard right after it.
    const short = len - 4 * page_size_bytes;
    const again = try allocOrFail(short);
    try std.testing.expectEqual(kept_addr, @intFromPtr(again.ptr));
    try std.testing.expect(again.zeroed);
    try std.testing.expectEqual(@as(?usize, short), usableSize(kept_addr));
    for (@as([*]const u8, @ptrCast(again.ptr))[0..short]) |byte| try std.testing.expectEqual(@as(u8, 0), byte);
    try std.testing.expect(!readable(kept_addr + short));
    try std.testing.expectEqual(@as(usize, 0), pool_count);
    try std.testing.expect(free(kept_addr));

    // Without room in the bound, a freed block is purged and never pooled.
    policy.snapshot.large_cache_mb = 0;
    const purged = try allocOrFail(len);
    @memset(@as([*]u8, @ptrCast(purged.ptr))[0..len], 1);
    try std.testing.expect(free(@intFromPtr(purged.ptr)));
    for (0..quarantine_slots) |_| {
        const other = try allocOrFail(4 * len);
        try std.testing.expect(free(@intFromPtr(other.ptr)));
    }
    try std.testing.expectEqual(@as(usize, 0), pool_count);
    try std.testing.expectEqual(@as(usize, 0), retired_resident_bytes);

    // trimCache (hz_collect) purges what the quarantine keeps resident.
    policy.snapshot.large_cache_mb = 64;
    const a = try allocOrFail(len);
    const b = try allocOrFail(len);
    @memset(@as([*]u8, @ptrCast(a.ptr))[0..len], 1);
    @memset(@as([*]u8, @ptrCast(b.ptr))[0..len], 1);
    try std.testing.expect(free(@intFromPtr(a.ptr)));
    try std.testing.expect(free(@intFromPtr(b.ptr)));
    try std.testing.expectEqual(len, retired_resident_bytes);
    _ = trimCache();
    try std.testing.expectEqual(@as(usize, 0), retired_resident_bytes);
    try std.testing.expect(!readable(@intFromPtr(b.ptr)));
}

test "hardened: a guard page follows every large block, freed blocks fault, resize keeps the guard" {
    const test_policy = TestPolicy.begin(.hardened, 64);
    defer test_policy.end();
    const first = try allocOrFail(300 << 10);
    const addr = @intFromPtr(first.ptr);
    const len = usableSize(addr).?;
    try std.testing.expectEqual(@as(usize, 300 << 10), len);
    try std.testing.expect(first.zeroed);
    @as([*]u8, @ptrCast(first.ptr))[len - 1] = 1;
    try std.testing.expect(readable(addr + len - page_size_bytes));
    try std.testing.expect(!readable(addr + len));
    // Freed: quarantined, not cached; a use after free faults, and the
    // next block lands elsewhere, zeroed.
    try std.testing.expect(free(addr));
    try std.testing.expectEqual(@as(usize, 0), cache_count);
    try std.testing.expect(!readable(addr));
    const again = try allocOrFail(300 << 10);
    try std.testing.expect(again.ptr != first.ptr);
    try std.testing.expect(again.zeroed);

    // Grow (moves past the guard), then shrink in place: guard at the end each time.
    const again_addr = @intFromPtr(again.ptr);
    @as([*]u8, @ptrCast(again.ptr))[len - 1] = 1;
    const grown = try resizedTo(again_addr, 3 << 20);
    const grown_len = usableSize(grown).?;
    try std.testing.expect(grown_len >= 3 << 20);
    try std.testing.expectEqual(@as(u8, 1), @as([*]u8, @ptrFromInt(grown))[len - 1]);
    @as([*]u8, @ptrFromInt(grown))[grown_len - 1] = 2;
    try std.testing.expect(!readable(grown + grown_len));
    const shrunk = try resizedTo(grown, 1 << 20);
    try std.testing.expectEqual(grown, shrunk);
    try std.testing.expectEqual(@as(?usize, 1 << 20), usableSize(shrunk));
    try std.testing.expect(readable(shrunk + (1 << 20) - page_size_bytes));
    try std.testing.expect(!readable(shrunk + (1 << 20)));
    try std.testing.expectEqual(@as(u8, 1), @as([*]u8, @ptrFromInt(shrunk))[len - 1]);
    try std.testing.expect(free(shrunk));

    // A request that is not a page multiple gets its pages, the guard
    // right after them.
    const odd = try allocOrFail((1 << 20) + 1);
    const odd_addr = @intFromPtr(odd.ptr);
    try std.testing.expectEqual(@as(?usize, (1 << 20) + page_size_bytes), usableSize(odd_addr));
    @as([*]u8, @ptrCast(odd.ptr))[(1 << 20) + page_size_bytes - 1] = 3;
    try std.testing.expect(!readable(odd_addr + (1 << 20) + page_size_bytes));
    try std.testing.expect(free(odd_addr));
    // The quarantine unmaps its oldest mapping when full.
    for (0..quarantine_slots) |_| {
        const block = try allocOrFail(300 << 10);
        try std.testing.expect(free(@intFromPtr(block.ptr)));
    }
    try std.testing.expect(!readable(odd_addr));
    try std.testing.expectEqual(@as(usize, 0), cache_count);

    // A balanced lane never gets a guard.
    policy.snapshot.lane = .balanced;
    const plain = try allocOrFail(1 << 20);
    try std.testing.expect(plain.zeroed);
    try std.testing.expect(readable(@intFromPtr(plain.ptr) + (1 << 20) - page_size_bytes));
    try std.testing.expect(free(@intFromPtr(plain.ptr)));
}
