//! Stats box: cheap counters, merged on demand.
//!
//! `Snapshot` is the one list of what hakozuna counts: `struct hz_stats` of
//! native/include/hakozuna.h field for field (a test compares them, and
//! tests/deno compares the TypeScript `Stats`). Everything else is derived
//! from it by name: a heap's `Counters` and the process-wide `global`
//! counters add into the Snapshot field of the same name, and the exit line
//! prints every field as `name=value`.
//!
//! Each heap owns a `Counters` that only its thread writes (plain stores,
//! monotonic so a reader on another thread sees whole values); rare events
//! (mapping, segments, large blocks, frees by threads without a heap) count
//! into `global` with atomic adds.
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

    /// Unordered: a reader sees whole values, and the compiler may make the
    /// add one instruction (`incq` on x86-64), which the hot path needs.
    pub inline fn add(counter: *Counter, amount: u64) void {
        @atomicStore(u64, &counter.value, @atomicLoad(u64, &counter.value, .unordered) +% amount, .unordered);
    }

    pub inline fn read(counter: *const Counter) u64 {
        return @atomicLoad(u64, &counter.value, .monotonic);
    }
};

/// Per-heap counters (written by the heap's owner thread only). Blocks are
/// counted per size class; bytes follow from the class sizes when merged.
/// Every other field adds into the Snapshot field of its name.
pub const Counters = struct {
    class_allocs: [sizeclass.class_count]Counter = @splat(.{}),
    class_frees: [sizeclass.class_count]Counter = @splat(.{}),
    remote_free_count: Counter = .{},
    flush_count: Counter = .{},
    collect_count: Counter = .{},
    refill_count: Counter = .{},

    /// Adds `other`'s counts into these (the registry keeps a heap's counts
    /// so when it gives back the page that held them: thread.zig).
    pub fn absorb(counters: *Counters, other: *const Counters) void {
        for (&counters.class_allocs, &counters.class_frees, other.class_allocs, other.class_frees) |*allocs, *frees, more_allocs, more_frees| {
            allocs.add(more_allocs.read());
            frees.add(more_frees.read());
        }
        inline for (@typeInfo(Counters).@"struct".fields) |field| {
            if (comptime field.type == Counter) @field(counters, field.name).add(@field(other, field.name).read());
        }
    }

    pub fn addTo(counters: *const Counters, sums: *Sums) void {
        for (counters.class_allocs, counters.class_frees, sizeclass.block_size_bytes) |allocs, frees, size| {
            sums.snapshot.alloc_count += allocs.read();
            sums.alloc_bytes += allocs.read() * size;
            sums.snapshot.free_count += frees.read();
            sums.free_bytes += frees.read() * size;
        }
        inline for (@typeInfo(Counters).@"struct".fields) |field| {
            if (comptime @hasField(Snapshot, field.name)) {
                @field(sums.snapshot, field.name) += @field(counters, field.name).read();
            }
        }
    }
};

/// What the heaps and `global` add up to; `finish` makes the Snapshot.
pub const Sums = struct {
    snapshot: Snapshot = .{},
    alloc_bytes: u64 = 0,
    free_bytes: u64 = 0,

    pub fn finish(sums: *Sums) Snapshot {
        inline for (@typeInfo(Global).@"struct".fields) |field| {
            const value = @field(global, field.name).read();
            if (comptime @hasField(Snapshot, field.name)) {
                @field(sums.snapshot, field.name) += value;
            } else {
                @field(sums, field.name) += value;
            }
        }
        // Counters of different threads are read at slightly different
        // moments; never report a negative amount.
        sums.snapshot.bytes_in_use = sums.alloc_bytes -| sums.free_bytes;
        return sums.snapshot;
    }
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

/// Process-wide counters; each field adds into the Snapshot field of its
/// name, or into `Sums` (the byte totals behind `bytes_in_use`).
pub const Global = struct {
    bytes_mapped: Shared = .{},
    bytes_mapped_peak: Shared = .{},
    bytes_purged: Shared = .{},
    segment_count: Shared = .{},
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

/// glibc's `struct mallinfo2` (malloc.h), for programs that ask glibc's
/// way: segments are the "arena", large blocks the "mmapped regions".
/// Counts of free chunks, fastbins and `keepcost` have no counterpart here
/// and stay 0.
pub const Mallinfo2 = extern struct {
    /// Bytes mapped other than large blocks (segments, heaps, registry).
    arena: usize = 0,
    ordblks: usize = 0,
    smblks: usize = 0,
    /// Live large blocks and the bytes they map.
    hblks: usize = 0,
    hblkhd: usize = 0,
    usmblks: usize = 0,
    fsmblks: usize = 0,
    /// Bytes of live blocks outside large blocks, and the rest of `arena`.
    uordblks: usize = 0,
    fordblks: usize = 0,
    keepcost: usize = 0,
};

pub fn mallinfo2(snapshot: *const Snapshot) Mallinfo2 {
    const arena = snapshot.bytes_mapped -| snapshot.large_bytes;
    const in_use = snapshot.bytes_in_use -| snapshot.large_bytes;
    return .{
        .arena = arena,
        .hblks = snapshot.large_count,
        .hblkhd = snapshot.large_bytes,
        .uordblks = in_use,
        .fordblks = arena -| in_use,
    };
}

/// glibc's older `struct mallinfo`: the same fields as `int`, which glibc
/// fills by truncating its `mallinfo2` values; so do we.
pub const Mallinfo = extern struct {
    arena: c_int,
    ordblks: c_int,
    smblks: c_int,
    hblks: c_int,
    hblkhd: c_int,
    usmblks: c_int,
    fsmblks: c_int,
    uordblks: c_int,
    fordblks: c_int,
    keepcost: c_int,
};

pub fn mallinfo(snapshot: *const Snapshot) Mallinfo {
    const wide = mallinfo2(snapshot);
    var narrow: Mallinfo = undefined;
    inline for (@typeInfo(Mallinfo).@"struct".fields) |field| {
        @field(narrow, field.name) = @bitCast(@as(u32, @truncate(@field(wide, field.name))));
    }
    return narrow;
}

/// Who the exit line speaks for.
pub const Process = struct {
    pid: i32,
    program: []const u8,
    lane: []const u8,
};

/// The one line HZ_STATS prints at exit: the process, then every Snapshot
/// field after `version` and `size` as `name=value`.
pub fn formatLine(buffer: []u8, snapshot: *const Snapshot, process: Process) []const u8 {
    var writer = std.Io.Writer.fixed(buffer);
    writeLine(&writer, snapshot, process) catch return buffer[0..0];
    return writer.buffered();
}

fn writeLine(writer: *std.Io.Writer, snapshot: *const Snapshot, process: Process) std.Io.Writer.Error!void {
    try writer.print("hakozuna: stats pid={d} program={s} policy={s}", .{ process.pid, process.program, process.lane });
    // The counters gathered first, then printed by one loop: a print per
    // field, unrolled, made this cold path 8.5 KiB of resident text.
    const counters = @typeInfo(Snapshot).@"struct".fields[2..];
    const names = comptime names: {
        var list: [counters.len][]const u8 = undefined;
        for (counters, &list) |field, *name| {
            std.debug.assert(field.type == u64);
            name.* = field.name;
        }
        break :names list;
    };
    var values: [counters.len]u64 = undefined;
    inline for (counters, &values) |field, *value| value.* = @field(snapshot, field.name);
    for (names, values) |name, value| try writer.print(" {s}={d}", .{ name, value });
    try writer.writeByte('\n');
}

/// Blocks of one size class, as `HZ_STATS=verbose` lists them.
pub const ClassRow = struct {
    class: sizeclass.Class,
    allocs: u64,
    frees: u64,
};

/// Adds one heap's per-class block counts into `rows`.
pub fn classRows(rows: *[sizeclass.class_count]ClassRow, counters: *const Counters) void {
    for (rows, 0..) |*row, class| {
        row.allocs += counters.class_allocs[class].read();
        row.frees += counters.class_frees[class].read();
        row.class = @intCast(class);
    }
}

/// The `HZ_STATS=verbose` table: one line per size class that was used.
pub fn formatClassTable(buffer: []u8, rows: []const ClassRow) []const u8 {
    var writer = std.Io.Writer.fixed(buffer);
    writeClassTable(&writer, rows) catch return writer.buffered();
    return writer.buffered();
}

fn writeClassTable(writer: *std.Io.Writer, rows: []const ClassRow) std.Io.Writer.Error!void {
    try writer.print("hakozuna: class block_bytes allocs frees live_blocks\n", .{});
    for (rows) |row| {
        if (row.allocs == 0) continue;
        try writer.print("hakozuna: {d: >5} {d: >11} {d: >12} {d: >12} {d: >11}\n", .{
            row.class, sizeclass.block_size_bytes[row.class], row.allocs, row.frees, row.allocs -| row.frees,
        });
    }
}

test "snapshot layout matches hakozuna.h" {
    const header = @import("build_options").hakozuna_h;
    const open = std.mem.indexOf(u8, header, "struct hz_stats {").?;
    const close = std.mem.indexOfPos(u8, header, open, "};").?;
    var lines = std.mem.tokenizeScalar(u8, header[open..close], '\n');
    _ = lines.next(); // "struct hz_stats {"
    var offset: usize = 0;
    inline for (@typeInfo(Snapshot).@"struct".fields) |field| {
        const line = std.mem.trim(u8, lines.next().?, " ");
        const c_type = if (field.type == u32) "uint32_t " else "uint64_t ";
        try std.testing.expect(std.mem.startsWith(u8, line, c_type));
        const name = std.mem.trim(u8, line[c_type.len..std.mem.indexOfScalar(u8, line, ';').?], " ");
        try std.testing.expectEqualStrings(field.name, name);
        try std.testing.expectEqual(offset, @offsetOf(Snapshot, field.name));
        offset += @sizeOf(field.type);
    }
    try std.testing.expect(lines.next() == null);
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
    var sums: Sums = .{ .alloc_bytes = 10, .free_bytes = 20 + global.free_bytes.read() };
    try std.testing.expectEqual(@as(u64, 0), sums.finish().bytes_in_use);
}

test "the exit line names the process and every field" {
    var buffer: [1024]u8 = undefined;
    const line = formatLine(&buffer, &.{ .alloc_count = 7, .refill_count = 3 }, .{ .pid = 42, .program = "prog", .lane = "balanced" });
    try std.testing.expect(std.mem.startsWith(u8, line, "hakozuna: stats pid=42 program=prog policy=balanced alloc_count=7 "));
    try std.testing.expect(std.mem.endsWith(u8, line, " refill_count=3\n"));
}

test "mallinfo2 splits mapped bytes into the arena and large blocks" {
    const snapshot: Snapshot = .{ .bytes_mapped = 10 << 20, .large_bytes = 4 << 20, .large_count = 2, .bytes_in_use = 5 << 20 };
    const info = mallinfo2(&snapshot);
    try std.testing.expectEqual(@as(usize, 6 << 20), info.arena);
    try std.testing.expectEqual(@as(usize, 2), info.hblks);
    try std.testing.expectEqual(@as(usize, 1 << 20), info.uordblks);
    try std.testing.expectEqual(@as(usize, 5 << 20), info.fordblks);
    const huge: Snapshot = .{ .bytes_mapped = (5 << 32) + 7 };
    try std.testing.expectEqual(@as(c_int, 7), mallinfo(&huge).arena);
}
