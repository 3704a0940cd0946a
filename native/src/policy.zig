//! Policy box: the knobs, read once from the environment into a snapshot
//! at start. The hot path never reads the environment; knobs act only at
//! event boundaries (flush, refill, retire, purge).
//!
//!   HZ_POLICY=balanced|scale|compact   the lane (default balanced)
//!   HZ_REMOTE_BATCH=N                   blocks per remote batch (1..4096)
//!   HZ_PURGE_PAGES=N                    free 64 KiB pages a heap keeps resident
//!   HZ_PURGE_DELAY_MS=N                 how long a free page stays before purge
//!   HZ_SEGMENT_CACHE=N                  empty 4 MiB segments kept for reuse
//!   HZ_LARGE_CACHE_MB=N                 freed large blocks kept for reuse (MiB)
//!   HZ_STATS=1                          one line of counters on stderr at exit
//!
//! An unknown or malformed value gets a one-line warning and the default.
const std = @import("std");
const os = @import("os.zig");
const sizeclass = @import("sizeclass.zig");

pub const Lane = enum { balanced, scale, compact };

pub const Policy = struct {
    lane: Lane,
    /// Remote frees a thread gathers for one page before handing them over.
    remote_batch: u32,
    /// Free pages a heap keeps resident whatever their age.
    purge_pages: u32,
    /// Above `purge_pages`, a page free for this long is purged (0: at once).
    purge_delay_ms: u32,
    /// Empty segments kept mapped (purged) for reuse instead of unmapped.
    segment_cache: u32,
    /// Bytes of freed large blocks kept mapped, for the purge delay, for reuse.
    large_cache_bytes: usize,
    stats_at_exit: bool,

    pub fn ofLane(lane: Lane) Policy {
        return switch (lane) {
            .balanced => .{ .lane = lane, .remote_batch = 32, .purge_pages = 64, .purge_delay_ms = 100, .segment_cache = 8, .large_cache_bytes = 64 << 20, .stats_at_exit = false },
            .scale => .{ .lane = lane, .remote_batch = 128, .purge_pages = 512, .purge_delay_ms = 1000, .segment_cache = 64, .large_cache_bytes = 512 << 20, .stats_at_exit = false },
            .compact => .{ .lane = lane, .remote_batch = 8, .purge_pages = 0, .purge_delay_ms = 0, .segment_cache = 0, .large_cache_bytes = 0, .stats_at_exit = false },
        };
    }
};

pub var snapshot: Policy = .ofLane(.balanced);

/// A remote batch also stops at this many bytes, so a thread never sits on
/// megabytes of another heap's large blocks.
pub const remote_batch_max_bytes: usize = 64 * 1024;

/// Blocks per remote batch for each class: `remote_batch`, capped by
/// `remote_batch_max_bytes` (at least one).
pub var remote_batch_blocks: [sizeclass.class_count]u32 = batchLimits(Policy.ofLane(.balanced));

fn batchLimits(policy: Policy) [sizeclass.class_count]u32 {
    var limits: [sizeclass.class_count]u32 = undefined;
    for (&limits, sizeclass.block_size_bytes) |*limit, size| {
        limit.* = @intCast(std.math.clamp(remote_batch_max_bytes / size, 1, policy.remote_batch));
    }
    return limits;
}

/// Reads the environment into `snapshot`. Called once, at initialisation,
/// before any heap exists.
pub fn load() void {
    snapshot = parse(getenv);
    remote_batch_blocks = batchLimits(snapshot);
}

fn getenv(name: [*:0]const u8) ?[]const u8 {
    const value = std.c.getenv(name) orelse return null;
    return std.mem.span(value);
}

/// Builds a policy from an environment lookup (a parameter so tests can
/// feed their own).
pub fn parse(comptime lookup: fn ([*:0]const u8) ?[]const u8) Policy {
    var lane: Lane = .balanced;
    if (lookup("HZ_POLICY")) |name| {
        if (std.meta.stringToEnum(Lane, name)) |named| {
            lane = named;
        } else if (name.len > 0) {
            warn("HZ_POLICY", name, "balanced (lanes: balanced, scale, compact)");
        }
    }
    var result = Policy.ofLane(lane);
    knob(lookup, "HZ_REMOTE_BATCH", &result.remote_batch, 1, 4096);
    knob(lookup, "HZ_PURGE_PAGES", &result.purge_pages, 0, 1 << 20);
    knob(lookup, "HZ_PURGE_DELAY_MS", &result.purge_delay_ms, 0, 3_600_000);
    knob(lookup, "HZ_SEGMENT_CACHE", &result.segment_cache, 0, 1 << 16);
    var large_cache_mb: u32 = @intCast(result.large_cache_bytes >> 20);
    knob(lookup, "HZ_LARGE_CACHE_MB", &large_cache_mb, 0, 1 << 20);
    result.large_cache_bytes = @as(usize, large_cache_mb) << 20;
    if (lookup("HZ_STATS")) |value| result.stats_at_exit = value.len > 0 and !std.mem.eql(u8, value, "0");
    return result;
}

fn knob(comptime lookup: fn ([*:0]const u8) ?[]const u8, comptime name: [:0]const u8, target: *u32, min: u32, max: u32) void {
    const text = lookup(name) orelse return;
    const value = std.fmt.parseInt(u32, text, 10) catch {
        warn(name, text, "the lane's default");
        return;
    };
    if (value < min or value > max) {
        warn(name, text, "the lane's default (out of range)");
        return;
    }
    target.* = value;
}

fn warn(comptime name: []const u8, value: []const u8, comptime fallback: []const u8) void {
    var buffer: [256]u8 = undefined;
    const shown = value[0..@min(value.len, 64)];
    const line = std.fmt.bufPrint(&buffer, "hakozuna: invalid " ++ name ++ "=\"{s}\", using " ++ fallback ++ "\n", .{shown}) catch return;
    os.writeStderr(line);
}

pub fn laneName() [*:0]const u8 {
    return switch (snapshot.lane) {
        inline else => |lane| @tagName(lane),
    };
}

fn testEnv(comptime pairs: []const [2][]const u8) fn ([*:0]const u8) ?[]const u8 {
    return struct {
        fn lookup(name: [*:0]const u8) ?[]const u8 {
            inline for (pairs) |pair| {
                if (std.mem.eql(u8, std.mem.span(name), pair[0])) return pair[1];
            }
            return null;
        }
    }.lookup;
}

test "lanes and knobs parse" {
    try std.testing.expectEqual(Lane.balanced, parse(testEnv(&.{})).lane);
    try std.testing.expectEqual(Lane.scale, parse(testEnv(&.{.{ "HZ_POLICY", "scale" }})).lane);
    const compact = parse(testEnv(&.{ .{ "HZ_POLICY", "compact" }, .{ "HZ_REMOTE_BATCH", "5" }, .{ "HZ_STATS", "1" } }));
    try std.testing.expectEqual(Lane.compact, compact.lane);
    try std.testing.expectEqual(@as(u32, 5), compact.remote_batch);
    try std.testing.expect(compact.stats_at_exit);
}

test "remote batches are capped in bytes" {
    const limits = batchLimits(Policy.ofLane(.balanced));
    try std.testing.expectEqual(@as(u32, 32), limits[0]);
    try std.testing.expectEqual(@as(u32, 1), limits[sizeclass.class_count - 1]);
    for (limits, sizeclass.block_size_bytes) |limit, size| {
        try std.testing.expect(limit == 1 or limit * size <= remote_batch_max_bytes);
    }
}

test "bad values fall back to defaults" {
    const bad = parse(testEnv(&.{ .{ "HZ_POLICY", "turbo" }, .{ "HZ_REMOTE_BATCH", "0" }, .{ "HZ_PURGE_PAGES", "x" } }));
    try std.testing.expectEqual(Lane.balanced, bad.lane);
    try std.testing.expectEqual(Policy.ofLane(.balanced).remote_batch, bad.remote_batch);
    try std.testing.expectEqual(Policy.ofLane(.balanced).purge_pages, bad.purge_pages);
}
