//! Policy box: the knobs, read once from the environment into a snapshot
//! when the process starts (thread.zig). The hot path never reads the
//! environment; knobs act only at event boundaries (flush, refill, retire,
//! purge). `knobs` is the one table of numeric knobs: parsing, warnings,
//! the lanes' values and the README's table (checked by a test) all come
//! from it.
//!
//! An unknown or malformed value gets a one-line warning and the default.
const std = @import("std");
const os = @import("os.zig");
const sizeclass = @import("sizeclass.zig");

/// `hardened` is `balanced`'s knobs with every detection on (span.zig and
/// heap.zig route its blocks off the hot path; large.zig adds guard pages).
pub const Lane = enum { balanced, scale, compact, hardened };

/// Where HZ_STATS sends the counters at exit.
pub const StatsOutput = enum {
    /// HZ_STATS unset, empty or 0.
    off,
    /// HZ_STATS=1: one line on the stderr the process started with.
    line,
    /// HZ_STATS=verbose: the line, then a table per size class.
    verbose,
    /// HZ_STATS=/dir/prefix: the line into `<prefix>.<pid>`, one file per process.
    file,
};

pub const Policy = struct {
    lane: Lane,
    /// Remote frees a thread gathers per size class before handing them over.
    remote_batch: u32,
    /// Free slices a heap keeps resident whatever their age (four times as
    /// many at the exit of a thread whose heap was adopted:
    /// heap.zig's `exitKeepSlices`).
    purge_slices: u32,
    /// Above `purge_slices`, a slice free for this long is purged (0: at once).
    purge_delay_ms: u32,
    /// Empty segments kept mapped (purged) for reuse instead of unmapped.
    segment_cache: u32,
    /// MiB of freed large mappings kept, for the purge delay, for reuse.
    large_cache_mb: u32,
    /// 1: malloc(0) returns a pointer that faults on any access (empty.zig);
    /// 0: a 16-byte block, as glibc's.
    empty_faults: u32,
    stats_output: StatsOutput = .off,

    pub fn ofLane(lane: Lane) Policy {
        var policy: Policy = .{
            .lane = lane,
            .remote_batch = undefined,
            .purge_slices = undefined,
            .purge_delay_ms = undefined,
            .segment_cache = undefined,
            .large_cache_mb = undefined,
            .empty_faults = undefined,
        };
        inline for (knobs) |knob| @field(policy, knob.field) = knob.default.get(lane);
        return policy;
    }

    pub fn hardened(policy: *const Policy) bool {
        return policy.lane == .hardened;
    }

    pub fn largeCacheBytes(policy: *const Policy) usize {
        return @as(usize, policy.large_cache_mb) << 20;
    }
};

/// A numeric knob: its environment variable, the `Policy` field it sets,
/// the values it accepts and its value in each lane.
pub const Knob = struct {
    env: [:0]const u8,
    field: []const u8,
    min: u32,
    max: u32,
    default: std.EnumArray(Lane, u32),
    /// One line for the README's table.
    meaning: []const u8,
};

pub const knobs = [_]Knob{
    .{
        .env = "HZ_REMOTE_BATCH",
        .field = "remote_batch",
        .min = 1,
        .max = 4096,
        .default = .init(.{ .balanced = 32, .scale = 128, .compact = 8, .hardened = 32 }),
        .meaning = "blocks a thread gathers per size class before handing frees to their owner (also capped at 4 KiB)",
    },
    .{
        .env = "HZ_PURGE_SLICES",
        .field = "purge_slices",
        .min = 0,
        .max = 1 << 20,
        .default = .init(.{ .balanced = 64, .scale = 512, .compact = 0, .hardened = 64 }),
        .meaning = "free 64 KiB slices a heap keeps resident whatever their age (four times as many when a thread whose heap was adopted exits)",
    },
    .{
        .env = "HZ_PURGE_DELAY_MS",
        .field = "purge_delay_ms",
        .min = 0,
        .max = 3_600_000,
        .default = .init(.{ .balanced = 100, .scale = 1000, .compact = 0, .hardened = 100 }),
        .meaning = "above that, a slice free this long is returned to the OS",
    },
    .{
        .env = "HZ_SEGMENT_CACHE",
        .field = "segment_cache",
        .min = 0,
        .max = 1 << 16,
        .default = .init(.{ .balanced = 8, .scale = 64, .compact = 0, .hardened = 8 }),
        .meaning = "empty 4 MiB segments kept for reuse, purged (all but four times purge_slices of their slices, which wait for the purge delay)",
    },
    .{
        .env = "HZ_LARGE_CACHE_MB",
        .field = "large_cache_mb",
        .min = 0,
        .max = 1 << 20,
        .default = .init(.{ .balanced = 64, .scale = 128, .compact = 0, .hardened = 16 }),
        .meaning = "MiB of freed large blocks (> 256 KiB) kept mapped for reuse, or half the bytes of the live large blocks when that is more (half the MiB while none is live), each at most for the purge delay (`hardened`: the MiB its quarantined large blocks keep zeroed and resident, so that a request of about the same length after the quarantine takes one back)",
    },
    .{
        .env = "HZ_EMPTY_FAULTS",
        .field = "empty_faults",
        .min = 0,
        .max = 1,
        .default = .init(.{ .balanced = 1, .scale = 1, .compact = 1, .hardened = 1 }),
        .meaning = "1: `malloc(0)` returns a unique pointer that faults on any read or write; 0: a 16-byte block (a program that writes to it runs)",
    },
};

pub var snapshot: Policy = .ofLane(.balanced);

/// HZ_STATS=/dir/prefix: the prefix, NUL-terminated (empty otherwise).
pub var stats_prefix_buffer: [256]u8 = @splat(0);

pub fn statsPrefix() []const u8 {
    return std.mem.sliceTo(&stats_prefix_buffer, 0);
}

/// A remote batch also stops at this many bytes: blocks of 4 KiB and more
/// go to their owner one at a time, 2 KiB ones in pairs, while in
/// `balanced` blocks of 128 bytes and less still gather all 32 of
/// `remote_batch`. What a batch holds
/// waits, unusable by anyone, until it is flushed; for medium blocks that
/// wait cost more peak memory than the saved compare-and-swaps were worth
/// (bench/LEDGER.md, "remote batches stop at 4 KiB").
pub const remote_batch_max_bytes: usize = 4 * 1024;

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

/// Reads the environment into `snapshot`. Called once, at process start,
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
            warn("HZ_POLICY", name, "balanced (lanes: " ++ comptime laneList() ++ ")");
        }
    }
    var result = Policy.ofLane(lane);
    inline for (knobs) |knob| {
        if (lookup(knob.env)) |text| {
            if (parseKnob(knob.env, knob.min, knob.max, text)) |value| @field(result, knob.field) = value;
        }
    }
    if (lookup("HZ_STATS")) |value| result.stats_output = parseStats(value);
    return result;
}

/// The value of the knob named `env` that `text` gives, if it lies in
/// `min..max`. Not generic over the knob: one copy serves the whole table
/// (inlined per knob, the parsing and its warnings were half the start's
/// code), and only these fields of it reach the library.
fn parseKnob(env: []const u8, min: u32, max: u32, text: []const u8) ?u32 {
    const value = std.fmt.parseInt(u32, text, 10) catch {
        warn(env, text, "the lane's default");
        return null;
    };
    if (value < min or value > max) {
        var buffer: [64]u8 = undefined;
        const fallback = std.fmt.bufPrint(&buffer, "the lane's default (range {d}..{d})", .{ min, max }) catch unreachable;
        warn(env, text, fallback);
        return null;
    }
    return value;
}

fn parseStats(value: []const u8) StatsOutput {
    if (value.len == 0 or std.mem.eql(u8, value, "0")) return .off;
    if (std.mem.eql(u8, value, "1")) return .line;
    if (std.mem.eql(u8, value, "verbose")) return .verbose;
    if (std.mem.indexOfScalar(u8, value, '/') != null) {
        // Room for ".<pid>" and the NUL.
        if (value.len + 12 > stats_prefix_buffer.len) {
            warn("HZ_STATS", value, "stderr (path too long)");
            return .line;
        }
        @memcpy(stats_prefix_buffer[0..value.len], value);
        stats_prefix_buffer[value.len] = 0;
        return .file;
    }
    warn("HZ_STATS", value, "1 (values: 0, 1, verbose, /dir/prefix)");
    return .line;
}

fn laneList() []const u8 {
    comptime {
        var text: []const u8 = "";
        for (std.meta.fieldNames(Lane), 0..) |name, i| text = text ++ (if (i > 0) ", " else "") ++ name;
        return text;
    }
}

fn warn(name: []const u8, value: []const u8, fallback: []const u8) void {
    var buffer: [320]u8 = undefined;
    const shown = value[0..@min(value.len, 64)];
    // Every process of a tree reads the environment and warns; the line
    // says which one.
    const line = std.fmt.bufPrint(&buffer, "hakozuna: pid={d} program={s}: invalid {s}=\"{s}\", using {s}\n", .{ os.pid(), os.programName(), name, shown, fallback }) catch return;
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
    try std.testing.expectEqual(StatsOutput.line, compact.stats_output);
    try std.testing.expectEqual(StatsOutput.verbose, parse(testEnv(&.{.{ "HZ_STATS", "verbose" }})).stats_output);
    try std.testing.expectEqual(StatsOutput.off, parse(testEnv(&.{.{ "HZ_STATS", "0" }})).stats_output);
    try std.testing.expectEqual(StatsOutput.file, parse(testEnv(&.{.{ "HZ_STATS", "/tmp/hz" }})).stats_output);
    try std.testing.expectEqualStrings("/tmp/hz", statsPrefix());
}

test "remote batches are capped in bytes" {
    const limits = batchLimits(Policy.ofLane(.balanced));
    try std.testing.expectEqual(@as(u32, 32), limits[0]);
    try std.testing.expectEqual(@as(u32, 1), limits[sizeclass.class_count - 1]);
    try std.testing.expectEqual(@as(u32, 32), limits[sizeclass.classOf(128)]);
    try std.testing.expectEqual(@as(u32, 2), limits[sizeclass.classOf(2048)]);
    try std.testing.expectEqual(@as(u32, 1), limits[sizeclass.classOf(4096)]);
    for (limits, sizeclass.block_size_bytes) |limit, size| {
        try std.testing.expect(limit == 1 or limit * size <= remote_batch_max_bytes);
    }
}

test "bad values fall back to defaults" {
    const bad = parse(testEnv(&.{ .{ "HZ_POLICY", "turbo" }, .{ "HZ_REMOTE_BATCH", "0" }, .{ "HZ_PURGE_SLICES", "x" } }));
    try std.testing.expectEqual(Lane.balanced, bad.lane);
    try std.testing.expectEqual(Policy.ofLane(.balanced).remote_batch, bad.remote_batch);
    try std.testing.expectEqual(Policy.ofLane(.balanced).purge_slices, bad.purge_slices);
}

test "every knob's lane defaults lie in its range" {
    inline for (knobs) |knob| {
        for (std.enums.values(Lane)) |lane| {
            try std.testing.expect(knob.default.get(lane) >= knob.min);
            try std.testing.expect(knob.default.get(lane) <= knob.max);
        }
    }
}

/// The README's row for a knob, as the table under "Policy and knobs" has
/// it (cells trimmed: the formatter pads them).
fn readmeCells(comptime knob: Knob) [7][]const u8 {
    return .{
        "`" ++ knob.env ++ "`",
        knob.meaning,
        std.fmt.comptimePrint("{d}–{d}", .{ knob.min, knob.max }),
        std.fmt.comptimePrint("{d}", .{knob.default.get(.balanced)}),
        std.fmt.comptimePrint("{d}", .{knob.default.get(.scale)}),
        std.fmt.comptimePrint("{d}", .{knob.default.get(.compact)}),
        std.fmt.comptimePrint("{d}", .{knob.default.get(.hardened)}),
    };
}

test "the README's knob table is this table" {
    const readme = @import("build_options").readme_md;
    var rows_checked: usize = 0;
    var lines = std.mem.tokenizeScalar(u8, readme, '\n');
    while (lines.next()) |line| {
        if (!std.mem.startsWith(u8, line, "| `HZ_")) continue;
        var cells: [8][]const u8 = undefined;
        var count: usize = 0;
        var split = std.mem.splitScalar(u8, std.mem.trim(u8, line, "| "), '|');
        while (split.next()) |cell| : (count += 1) cells[count] = std.mem.trim(u8, cell, " ");
        inline for (knobs) |knob| {
            const expected = comptime readmeCells(knob);
            if (std.mem.eql(u8, cells[0], expected[0])) {
                try std.testing.expectEqual(expected.len, count);
                for (expected, cells[0..count]) |want, have| try std.testing.expectEqualStrings(want, have);
                rows_checked += 1;
            }
        }
    }
    try std.testing.expectEqual(knobs.len, rows_checked);
}
