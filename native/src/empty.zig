//! Empty box: what malloc(0) returns. glibc's contract asks for a unique
//! pointer that free accepts; nothing may be read or written through it.
//! Each live zero-byte block is its own 16-byte slot of one reserved region
//! that no access may touch, so a program that reads or writes what it
//! asked zero bytes for faults at once, and the block costs no memory.
//!
//! Slots are found in a bitmap of live slots (mapped at first use, touched
//! as far as slots are used), under one lock: malloc(0) is rare and never
//! on the hot path. When every slot is live, malloc(0) takes a 16-byte
//! block instead (alloc.zig).
const std = @import("std");
const layout = @import("layout.zig");
const os = @import("os.zig");
const stats = @import("stats.zig");

pub const slot_bytes: usize = layout.min_alignment_bytes;
/// 4M slots.
const region_bytes: usize = 64 << 20;
const slot_count = region_bytes / slot_bytes;
const word_count = slot_count / 64;

var lock: os.Lock = .{};
/// Start of the region; 0 until the first malloc(0) reserves it.
var base = std.atomic.Value(usize).init(0);
/// Bit i set: slot i is live. `word_count` words.
var live: [*]u64 = undefined;
/// No word below this has a clear bit.
var first_free_word: usize = 0;
/// Reserving failed: every malloc(0) takes a block instead.
var unavailable = false;

/// A fresh zero-byte block, or null when no slot can be had.
pub fn alloc() ?*anyopaque {
    lock.lock();
    defer lock.unlock();
    if (base.load(.monotonic) == 0 and !reserveLocked()) return null;
    var word = first_free_word;
    while (word < word_count and live[word] == std.math.maxInt(u64)) word += 1;
    first_free_word = word;
    if (word == word_count) return null;
    const bit: u6 = @intCast(@ctz(~live[word]));
    live[word] |= @as(u64, 1) << bit;
    stats.global.alloc_count.add(1);
    return @ptrFromInt(base.raw + (word * 64 + bit) * slot_bytes);
}

fn reserveLocked() bool {
    if (unavailable) return false;
    const region = os.reserve(region_bytes);
    const bitmap_bytes = word_count * @sizeOf(u64);
    const bitmap = os.map(bitmap_bytes);
    if (region == null or bitmap == null) {
        if (region) |memory| os.unmap(memory, region_bytes);
        if (bitmap) |memory| os.unmap(memory, bitmap_bytes);
        unavailable = true;
        return false;
    }
    stats.global.mapped(bitmap_bytes);
    live = @ptrCast(bitmap.?);
    base.store(@intFromPtr(region.?), .release);
    return true;
}

/// True when `addr` lies in the region (a live slot or not).
pub inline fn contains(addr: usize) bool {
    const start = base.load(.acquire);
    return start != 0 and addr -% start < region_bytes;
}

pub const Found = enum { live, freed, invalid };

/// What `addr` (in the region) is: a live slot, a slot not live, or not a
/// slot's start.
pub fn classify(addr: usize) Found {
    const slot = slotAt(addr) orelse return .invalid;
    lock.lock();
    defer lock.unlock();
    return if (live[slot / 64] & bitOf(slot) != 0) .live else .freed;
}

/// Frees the slot at `addr` (in the region); what it was. Only `.live`
/// frees anything.
pub fn free(addr: usize) Found {
    const slot = slotAt(addr) orelse return .invalid;
    lock.lock();
    defer lock.unlock();
    const word = &live[slot / 64];
    if (word.* & bitOf(slot) == 0) return .freed;
    word.* &= ~bitOf(slot);
    first_free_word = @min(first_free_word, slot / 64);
    stats.global.free_count.add(1);
    return .live;
}

/// The slot that starts at `addr` (in the region), or null.
fn slotAt(addr: usize) ?usize {
    std.debug.assert(contains(addr));
    const offset = addr - base.raw;
    if (offset % slot_bytes != 0) return null;
    return offset / slot_bytes;
}

fn bitOf(slot: usize) u64 {
    return @as(u64, 1) << @intCast(slot % 64);
}

/// The lock shim.zig holds across fork (after the large registry's).
pub fn forkLock() *os.Lock {
    return &lock;
}

test "zero-byte blocks are unique, freeable once, and outside any mapping we write" {
    const a = @intFromPtr(alloc() orelse return error.OutOfMemory);
    const b = @intFromPtr(alloc() orelse return error.OutOfMemory);
    try std.testing.expect(a != b);
    try std.testing.expect(a % slot_bytes == 0 and b % slot_bytes == 0);
    try std.testing.expect(contains(a) and contains(b));
    try std.testing.expectEqual(Found.live, classify(a));
    try std.testing.expectEqual(Found.invalid, classify(a + 8));
    try std.testing.expectEqual(Found.live, free(a));
    try std.testing.expectEqual(Found.freed, free(a));
    try std.testing.expectEqual(Found.freed, classify(a));
    // The freed slot is the first one taken again.
    try std.testing.expectEqual(a, @intFromPtr(alloc() orelse return error.OutOfMemory));
    _ = free(a);
    _ = free(b);
}
