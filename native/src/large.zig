//! Large box: blocks above the medium classes (or aligned beyond a segment
//! page), each mapped on its own and recorded in a registry.
//!
//! The registry is an open-addressing table keyed by the block's address,
//! under one lock. It makes "is this a large block of ours?" exact, so a
//! foreign pointer that happens to fall near one is still rejected; large
//! allocations cost a syscall anyway, so the lock is not the bottleneck.
//!
//! Freed mappings are kept in a small cache (policy `large_cache_bytes`) for
//! the purge delay, so a program that allocates and frees the same big
//! buffer over and over pays no map, unmap and refault each time.
const std = @import("std");
const layout = @import("layout.zig");
const os = @import("os.zig");
const policy = @import("policy.zig");
const stats = @import("stats.zig");

const page_size_bytes = layout.page_size_bytes;

const Entry = struct {
    /// Block address (page aligned); 0 = empty slot, `tombstone` = deleted.
    addr: usize,
    len_bytes: usize,
};
const tombstone: usize = 1;
const initial_capacity = page_size_bytes / @sizeOf(Entry);

var lock: os.Lock = .{};
var table: []Entry = &.{};
/// Live entries plus tombstones: the load that decides when to grow.
var occupied: usize = 0;
var live: usize = 0;

fn slotIndex(addr: usize, capacity: usize) usize {
    // Addresses are page aligned: mix the high bits down.
    const h = (addr >> 12) *% 0x9e3779b97f4a7c15;
    return @intCast((h >> 32) & (capacity - 1));
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

/// Grows (or rebuilds, dropping tombstones) the table so one more entry fits
/// at no more than half load. False when the new table cannot be mapped.
fn reserveLocked() bool {
    if ((occupied + 1) * 2 <= table.len) return true;
    const capacity = if ((live + 1) * 4 <= table.len) table.len else @max(initial_capacity, table.len * 2);
    const memory = mapCounted(capacity * @sizeOf(Entry)) orelse return false;
    const fresh: []Entry = @as([*]Entry, @ptrCast(memory))[0..capacity];
    for (table) |entry| {
        if (entry.addr <= tombstone) continue;
        var index = slotIndex(entry.addr, capacity);
        while (fresh[index].addr != 0) index = (index + 1) & (capacity - 1);
        fresh[index] = entry;
    }
    if (table.len > 0) unmapCounted(@ptrCast(@alignCast(table.ptr)), table.len * @sizeOf(Entry));
    table = fresh;
    occupied = live;
    return true;
}

fn insertLocked(addr: usize, len_bytes: usize) void {
    std.debug.assert(addr > tombstone and (occupied + 1) * 2 <= table.len);
    var index = slotIndex(addr, table.len);
    while (table[index].addr > tombstone) index = (index + 1) & (table.len - 1);
    if (table[index].addr == 0) occupied += 1;
    table[index] = .{ .addr = addr, .len_bytes = len_bytes };
    live += 1;
}

fn removeLocked(entry: *Entry) void {
    entry.addr = tombstone;
    live -= 1;
}

fn lengthFor(size_bytes: usize) ?usize {
    if (size_bytes > std.math.maxInt(isize)) return null;
    return std.mem.alignForward(usize, @max(size_bytes, 1), page_size_bytes);
}

// ---------------------------------------------------------------------------
// The cache of freed mappings (under `lock`).

const cache_slots = 16;
const Cached = struct { addr: usize = 0, len_bytes: usize = 0, freed_ms: u32 = 0 };
var cache: [cache_slots]Cached = @splat(.{});
var cache_bytes: usize = 0;

/// Mappings taken out of the cache, to unmap once the lock is released.
const Evicted = struct {
    entries: [cache_slots + 1]Cached = undefined,
    count: usize = 0,

    fn add(evicted: *Evicted, entry: Cached) void {
        evicted.entries[evicted.count] = entry;
        evicted.count += 1;
    }

    fn unmapAll(evicted: *const Evicted) void {
        for (evicted.entries[0..evicted.count]) |entry| unmapCounted(@ptrFromInt(entry.addr), entry.len_bytes);
    }
};

/// Moves cache entries older than the purge delay (all of them when
/// `everything`) to `evicted`.
fn expireLocked(now_ms: u32, everything: bool, evicted: *Evicted) void {
    for (&cache) |*slot| {
        if (slot.addr == 0) continue;
        if (!everything and now_ms -% slot.freed_ms < policy.snapshot.purge_delay_ms) continue;
        evicted.add(slot.*);
        cache_bytes -= slot.len_bytes;
        slot.* = .{};
    }
}

/// A cached mapping of `len` to `len + len/4` bytes (the closest), removed
/// from the cache.
fn takeCachedLocked(len: usize) ?Cached {
    var best: ?*Cached = null;
    for (&cache) |*slot| {
        if (slot.addr == 0 or slot.len_bytes < len or slot.len_bytes > len + len / 4) continue;
        if (best == null or slot.len_bytes < best.?.len_bytes) best = slot;
    }
    const slot = best orelse return null;
    const entry = slot.*;
    slot.* = .{};
    cache_bytes -= entry.len_bytes;
    return entry;
}

/// Keeps a freed mapping if the cache has room; false when it must be
/// unmapped.
fn cacheLocked(addr: usize, len: usize, now_ms: u32) bool {
    if (cache_bytes + len > policy.snapshot.largeCacheBytes()) return false;
    for (&cache) |*slot| {
        if (slot.addr != 0) continue;
        slot.* = .{ .addr = addr, .len_bytes = len, .freed_ms = now_ms };
        cache_bytes += len;
        return true;
    }
    return false;
}

/// Unmaps every cached mapping. Returns the bytes.
pub fn trimCache() usize {
    var evicted: Evicted = .{};
    lock.lock();
    expireLocked(0, true, &evicted);
    lock.unlock();
    evicted.unmapAll();
    var bytes: usize = 0;
    for (evicted.entries[0..evicted.count]) |entry| bytes += entry.len_bytes;
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

/// A large block: one mapping of its own.
pub const Mapping = struct {
    ptr: *anyopaque,
    /// Fresh from the kernel, so already zero (a cached mapping is not).
    zeroed: bool,
};

/// A mapping of at least `size_bytes`, aligned to `alignment_bytes` (a
/// power of two). Null when the system refuses the memory.
pub fn alloc(size_bytes: usize, alignment_bytes: usize) ?Mapping {
    const len = lengthFor(size_bytes) orelse return null;
    var evicted: Evicted = .{};
    defer evicted.unmapAll();
    lock.lock();
    if (!reserveLocked()) {
        lock.unlock();
        return null;
    }
    expireLocked(os.nowMs(), false, &evicted);
    if (alignment_bytes <= page_size_bytes) {
        if (takeCachedLocked(len)) |entry| {
            insertLocked(entry.addr, entry.len_bytes);
            lock.unlock();
            counted(entry.len_bytes);
            return .{ .ptr = @ptrFromInt(entry.addr), .zeroed = false };
        }
    }
    lock.unlock();
    const memory = if (alignment_bytes <= page_size_bytes)
        os.map(len) orelse return null
    else
        os.mapAligned(len, alignment_bytes) orelse return null;
    stats.global.mapped(len);
    lock.lock();
    if (!reserveLocked()) {
        lock.unlock();
        unmapCounted(memory, len);
        return null;
    }
    insertLocked(@intFromPtr(memory), len);
    lock.unlock();
    counted(len);
    return .{ .ptr = memory, .zeroed = true };
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
    return entry.len_bytes;
}

/// Frees the large block at `addr`. False (nothing done) if it is not one.
pub fn free(addr: usize) bool {
    var evicted: Evicted = .{};
    defer evicted.unmapAll();
    const now_ms = os.nowMs();
    lock.lock();
    const entry = findLocked(addr) orelse {
        lock.unlock();
        return false;
    };
    const len = entry.len_bytes;
    removeLocked(entry);
    expireLocked(now_ms, false, &evicted);
    if (!cacheLocked(addr, len, now_ms)) evicted.add(.{ .addr = addr, .len_bytes = len });
    lock.unlock();
    stats.global.large_count.sub(1);
    stats.global.large_bytes.sub(len);
    stats.global.free_count.add(1);
    stats.global.free_bytes.add(len);
    return true;
}

pub const Resized = union(enum) {
    /// The block now lives here (maybe moved), with its contents.
    moved: *anyopaque,
    /// The system refused; the block is untouched.
    out_of_memory,
    /// `addr` is not a large block.
    not_large,
};

/// Resizes a large block in place or by moving its pages (mremap): no copy.
pub fn resize(addr: usize, size_bytes: usize) Resized {
    const new_len = lengthFor(size_bytes) orelse return .out_of_memory;
    lock.lock();
    defer lock.unlock();
    const entry = findLocked(addr) orelse return .not_large;
    const old_len = entry.len_bytes;
    if (new_len == old_len) return .{ .moved = @ptrFromInt(addr) };
    // Reserve first so a moved block can always be recorded.
    if (!reserveLocked()) return .out_of_memory;
    const entry_now = findLocked(addr).?;
    const memory = os.remap(@ptrFromInt(addr), old_len, new_len) orelse return .out_of_memory;
    removeLocked(entry_now);
    insertLocked(@intFromPtr(memory), new_len);
    if (new_len > old_len) {
        stats.global.mapped(new_len - old_len);
        stats.global.large_bytes.add(new_len - old_len);
        stats.global.alloc_bytes.add(new_len - old_len);
    } else {
        stats.global.unmapped(old_len - new_len);
        stats.global.large_bytes.sub(old_len - new_len);
        stats.global.free_bytes.add(old_len - new_len);
    }
    return .{ .moved = memory };
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
    const p = (alloc(1 << 20, 16) orelse return error.OutOfMemory).ptr;
    const addr = @intFromPtr(p);
    try std.testing.expectEqual(@as(?usize, 1 << 20), usableSize(addr));
    try std.testing.expectEqual(@as(?usize, null), usableSize(addr + 4096));
    @as([*]u8, @ptrCast(p))[12345] = 9;
    const grown = switch (resize(addr, 8 << 20)) {
        .moved => |q| q,
        else => return error.TestUnexpectedResult,
    };
    try std.testing.expectEqual(@as(u8, 9), @as([*]u8, @ptrCast(grown))[12345]);
    try std.testing.expect(free(@intFromPtr(grown)));
    try std.testing.expect(!free(@intFromPtr(grown)));
}

test "aligned large blocks and a full registry" {
    var blocks: [300]usize = undefined;
    for (&blocks, 0..) |*slot, i| {
        const alignment: usize = if (i % 3 == 0) 1 << 20 else 16;
        const p = (alloc(300 * 1024, alignment) orelse return error.OutOfMemory).ptr;
        try std.testing.expect(@intFromPtr(p) % alignment == 0);
        slot.* = @intFromPtr(p);
    }
    for (blocks) |addr| try std.testing.expect(usableSize(addr) != null);
    for (blocks) |addr| try std.testing.expect(free(addr));
    try std.testing.expectEqual(@as(usize, 0), live);
    _ = trimCache();
}

test "a freed mapping is reused from the cache, not zeroed, and only by a close size" {
    _ = trimCache();
    const first = alloc(1 << 20, 16) orelse return error.OutOfMemory;
    try std.testing.expect(first.zeroed);
    @as([*]u8, @ptrCast(first.ptr))[0] = 7;
    try std.testing.expect(free(@intFromPtr(first.ptr)));
    try std.testing.expect(!free(@intFromPtr(first.ptr)));
    const far = alloc(600 * 1024, 16) orelse return error.OutOfMemory;
    try std.testing.expect(far.zeroed);
    const again = alloc(1 << 20, 16) orelse return error.OutOfMemory;
    try std.testing.expectEqual(first.ptr, again.ptr);
    try std.testing.expect(!again.zeroed);
    try std.testing.expect(free(@intFromPtr(again.ptr)));
    try std.testing.expect(free(@intFromPtr(far.ptr)));
    try std.testing.expect(trimCache() >= (1 << 20) + 600 * 1024);
}
