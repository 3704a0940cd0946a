//! Stats box: cheap counters, merged on demand.
//!
//! Each heap owns a `Counters` that only its thread writes (plain stores,
//! monotonic so a reader on another thread sees whole values); rare events
//! (mapping, segments, large blocks, frees by threads without a heap) count
//! into `global` with atomic adds. `Snapshot` is `struct hz_stats` of
//! native/include/hakozuna.h, field for field.
const std = @import("std");
const sizeclass = @import("sizeclass.zig");

pub const version: u32 = 1;

/// Layout fixed by hakozuna.h; new fields only ever go at the end.
pub const Snapshot = extern struct {
    version: u32 = version,
    size: u32 = @sizeOf(Snapshot),
    alloc_count: u64 = 0,
    free_count: u64 = 0,
    remote_free_count: u64 = 0,
    bytes_in_use: u64 = 0,
    bytes_mapped: u64 = 0,
    bytes_mapped_peak: u64 = 0,
    bytes_purged: u64 = 0,
    segment_count: u64 = 0,
    large_count: u64 = 0,
    large_bytes: u64 = 0,
    heap_count: u64 = 0,
    thread_count: u64 = 0,
    flush_count: u64 = 0,
    collect_count: u64 = 0,
    refill_count: u64 = 0,
};

/// A counter one thread writes and any thread may read.
pub const Counter = struct {
    value: u64 = 0,

    pub inline fn add(counter: *Counter, amount: u64) void {
        @atomicStore(u64, &counter.value, counter.value +% amount, .monotonic);
    }

    pub inline fn read(counter: *const Counter) u64 {
        return @atomicLoad(u64, &counter.value, .monotonic);
    }
};

/// Per-heap counters (written by the heap's owner thread only). Blocks are
/// counted per size class, one update per operation; bytes follow from the
/// class sizes when merged.
pub const Counters = struct {
    class_allocs: [sizeclass.class_count]Counter = @splat(.{}),
    class_frees: [sizeclass.class_count]Counter = @splat(.{}),
    remote_free_count: Counter = .{},
    flush_count: Counter = .{},
    collect_count: Counter = .{},
    refill_count: Counter = .{},

    pub fn mergeInto(counters: *const Counters, totals: *Totals) void {
        for (counters.class_allocs, counters.class_frees, sizeclass.block_size_bytes) |allocs, frees, size| {
            const alloc_count = allocs.read();
            const free_count = frees.read();
            totals.alloc_count += alloc_count;
            totals.alloc_bytes += alloc_count * size;
            totals.free_count += free_count;
            totals.free_bytes += free_count * size;
        }
        totals.remote_free_count += counters.remote_free_count.read();
        totals.flush_count += counters.flush_count.read();
        totals.collect_count += counters.collect_count.read();
        totals.refill_count += counters.refill_count.read();
    }
};

/// Sums of every heap's counters, then folded into a Snapshot.
pub const Totals = struct {
    alloc_count: u64 = 0,
    alloc_bytes: u64 = 0,
    free_count: u64 = 0,
    free_bytes: u64 = 0,
    remote_free_count: u64 = 0,
    flush_count: u64 = 0,
    collect_count: u64 = 0,
    refill_count: u64 = 0,
    heap_count: u64 = 0,
    thread_count: u64 = 0,
};

const Atomic = std.atomic.Value(u64);

/// A process-wide counter updated with atomic read-modify-write.
pub const Shared = struct {
    value: Atomic = .init(0),

    pub inline fn add(shared: *Shared, amount: u64) void {
        _ = shared.value.fetchAdd(amount, .monotonic);
    }
    pub inline fn sub(shared: *Shared, amount: u64) void {
        _ = shared.value.fetchSub(amount, .monotonic);
    }
    pub inline fn read(shared: *const Shared) u64 {
        return shared.value.load(.monotonic);
    }
};

pub const Global = struct {
    bytes_mapped: Shared = .{},
    bytes_mapped_peak: Shared = .{},
    bytes_purged: Shared = .{},
    segments: Shared = .{},
    large_count: Shared = .{},
    large_bytes: Shared = .{},
    /// Large blocks (and frees by threads that have no heap) count here.
    alloc_count: Shared = .{},
    alloc_bytes: Shared = .{},
    free_count: Shared = .{},
    free_bytes: Shared = .{},
    remote_free_count: Shared = .{},

    pub fn mapped(global_: *Global, bytes: usize) void {
        const now = global_.bytes_mapped.value.fetchAdd(bytes, .monotonic) + bytes;
        _ = global_.bytes_mapped_peak.value.fetchMax(now, .monotonic);
    }
    pub fn unmapped(global_: *Global, bytes: usize) void {
        global_.bytes_mapped.sub(bytes);
        global_.bytes_purged.add(bytes);
    }
    pub fn purged(global_: *Global, bytes: usize) void {
        global_.bytes_purged.add(bytes);
    }
};

pub var global: Global = .{};

/// Folds heap totals and the global counters into the public snapshot.
pub fn build(totals: Totals) Snapshot {
    const alloc_bytes = totals.alloc_bytes + global.alloc_bytes.read();
    const free_bytes = totals.free_bytes + global.free_bytes.read();
    return .{
        .alloc_count = totals.alloc_count + global.alloc_count.read(),
        .free_count = totals.free_count + global.free_count.read(),
        .remote_free_count = totals.remote_free_count + global.remote_free_count.read(),
        // Counters of different threads are read at slightly different
        // moments; never report a negative amount.
        .bytes_in_use = alloc_bytes -| free_bytes,
        .bytes_mapped = global.bytes_mapped.read(),
        .bytes_mapped_peak = global.bytes_mapped_peak.read(),
        .bytes_purged = global.bytes_purged.read(),
        .segment_count = global.segments.read(),
        .large_count = global.large_count.read(),
        .large_bytes = global.large_bytes.read(),
        .heap_count = totals.heap_count,
        .thread_count = totals.thread_count,
        .flush_count = totals.flush_count,
        .collect_count = totals.collect_count,
        .refill_count = totals.refill_count,
    };
}

/// Copies at most `out_size` bytes of `snapshot` to `out`; returns the bytes
/// written (0 when the buffer cannot even hold the version and size).
pub fn copyOut(snapshot: *const Snapshot, out: ?*anyopaque, out_size: usize) usize {
    const destination = out orelse return 0;
    if (out_size < 8) return 0;
    const count = @min(out_size, @sizeOf(Snapshot));
    var copy = snapshot.*;
    copy.size = @intCast(count);
    const bytes: [*]const u8 = @ptrCast(&copy);
    @memcpy(@as([*]u8, @ptrCast(destination))[0..count], bytes[0..count]);
    return count;
}

/// The one line HZ_STATS=1 prints at exit.
pub fn formatLine(buffer: []u8, snapshot: *const Snapshot, lane: []const u8) []const u8 {
    return std.fmt.bufPrint(buffer, "hakozuna: stats policy={s} allocs={d} frees={d} remote_frees={d} " ++
        "in_use_bytes={d} mapped_bytes={d} peak_mapped_bytes={d} purged_bytes={d} segments={d} " ++
        "large_blocks={d} large_bytes={d} heaps={d} threads={d} flushes={d} collects={d} refills={d}\n", .{
        lane,                       snapshot.alloc_count,  snapshot.free_count,
        snapshot.remote_free_count, snapshot.bytes_in_use, snapshot.bytes_mapped,
        snapshot.bytes_mapped_peak, snapshot.bytes_purged, snapshot.segment_count,
        snapshot.large_count,       snapshot.large_bytes,  snapshot.heap_count,
        snapshot.thread_count,      snapshot.flush_count,  snapshot.collect_count,
        snapshot.refill_count,
    }) catch buffer[0..0];
}

test "snapshot layout matches hakozuna.h" {
    try std.testing.expectEqual(@as(usize, 8 + 15 * 8), @sizeOf(Snapshot));
    try std.testing.expectEqual(@as(usize, 8), @offsetOf(Snapshot, "alloc_count"));
    try std.testing.expectEqual(@as(usize, 120), @offsetOf(Snapshot, "refill_count"));
}

test "copyOut honours short buffers" {
    const snapshot: Snapshot = .{ .alloc_count = 5 };
    var small: [16]u8 = undefined;
    try std.testing.expectEqual(@as(usize, 16), copyOut(&snapshot, &small, small.len));
    try std.testing.expectEqual(@as(u32, 16), std.mem.readInt(u32, small[4..8], .little));
    try std.testing.expectEqual(@as(usize, 0), copyOut(&snapshot, &small, 4));
    try std.testing.expectEqual(@as(usize, 0), copyOut(&snapshot, null, 64));
}

test "bytes in use never goes negative" {
    const snapshot = build(.{ .alloc_bytes = 10, .free_bytes = 20 });
    try std.testing.expectEqual(@as(u64, 0), snapshot.bytes_in_use);
}
