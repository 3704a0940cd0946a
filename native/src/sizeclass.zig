//! Size classes: which block size and span a request gets.
//!
//! Small classes step by 16 bytes up to `exact_max_bytes` (512), where most
//! blocks of most programs lie, so those waste at most 15 bytes; then eight
//! per doubling up to 2 KiB, wasting at most 12.5%. Medium classes step four
//! times per doubling up to `medium_max_bytes`, wasting at most 25%.
//! Anything larger is a large block (large.zig), mapped on its own.
//!
//! 48 small classes instead of 128 keep a random mix of sizes on fewer
//! spans: each class's free-list head and span metadata are touched more
//! often, so they stay in the cache, and fewer spans sit partly used
//! (bench/LEDGER.md, 2026-12-03).
const std = @import("std");
const layout = @import("layout.zig");

pub const min_alignment_bytes = layout.min_alignment_bytes;
pub const small_max_bytes: usize = 2048;
pub const medium_max_bytes: usize = 256 * 1024;

/// Up to here every multiple of 16 bytes is a class.
const exact_max_bytes: usize = 512;
/// Small classes per doubling above `exact_max_bytes`.
const small_steps_per_doubling: usize = 8;

pub const small_class_count: usize = exact_max_bytes / min_alignment_bytes +
    small_steps_per_doubling * (std.math.log2_int(usize, small_max_bytes) - std.math.log2_int(usize, exact_max_bytes));
/// Four classes per doubling from 2 KiB (exclusive) to 256 KiB (inclusive).
pub const medium_class_count: usize = 4 * (std.math.log2_int(usize, medium_max_bytes) - std.math.log2_int(usize, small_max_bytes));
/// The medium classes again, for aligned allocations: the same block sizes
/// in spans that are never colored (span.zig), so every block of one whose
/// size is a multiple of the alignment is aligned. The others' spans start
/// their blocks at a color, which keeps only cache-line alignment.
pub const first_aligned_class: usize = small_class_count + medium_class_count;
pub const class_count: usize = first_aligned_class + medium_class_count;

/// Whether a class's spans start their blocks at a color (span.zig): the
/// medium classes, not their aligned twins. Small blocks are many to a page.
pub fn isColored(class: Class) bool {
    return class >= small_class_count and class < first_aligned_class;
}

pub const Class = u8;

comptime {
    std.debug.assert(class_count <= std.math.maxInt(Class));
    // Every step above the exact classes stays a multiple of the alignment.
    std.debug.assert(exact_max_bytes / small_steps_per_doubling >= min_alignment_bytes);
}

/// Bytes of each block of a class.
pub const block_size_bytes: [class_count]u32 = blk: {
    var sizes: [class_count]u32 = undefined;
    const exact = exact_max_bytes / min_alignment_bytes;
    for (0..exact) |c| sizes[c] = (c + 1) * min_alignment_bytes;
    for (0..small_class_count - exact) |m| sizes[exact + m] = steppedSize(exact_max_bytes, small_steps_per_doubling, m);
    for (0..medium_class_count) |m| sizes[small_class_count + m] = steppedSize(small_max_bytes, 4, m);
    for (0..medium_class_count) |m| sizes[first_aligned_class + m] = sizes[small_class_count + m];
    break :blk sizes;
};

/// The `m`th size above `base_bytes` when each doubling has `steps` classes.
fn steppedSize(base_bytes: usize, steps: usize, m: usize) u32 {
    const base = base_bytes << @intCast(m / steps);
    return @intCast(base + (m % steps + 1) * (base / steps));
}

/// The smallest class whose blocks hold `size_bytes` (a search: for tables).
fn smallestClassHolding(size_bytes: usize) Class {
    for (block_size_bytes, 0..) |block_size, class| {
        if (block_size >= size_bytes) return @intCast(class);
    }
    unreachable;
}

/// Class boundaries up to `limit_bytes` all fall on multiples of
/// 2^`step_shift`: entry i holds the class of every size in
/// (i * 2^step_shift, (i + 1) * 2^step_shift].
fn classTable(comptime step_shift: u6, comptime limit_bytes: usize) [limit_bytes >> step_shift]Class {
    @setEvalBranchQuota(200_000);
    var table: [limit_bytes >> step_shift]Class = undefined;
    for (&table, 0..) |*class, step| class.* = smallestClassHolding((step + 1) << step_shift);
    return table;
}

/// Slices in a span of each class: 8 blocks' worth, at least one slice and
/// at most `medium_span_max_bytes`. Small classes get one slice; a rarely
/// used large class then pins at most 256 KiB as its current span instead
/// of megabytes.
pub const medium_span_max_bytes: usize = 256 * 1024;
pub const span_slices: [class_count]u8 = blk: {
    var slices: [class_count]u8 = undefined;
    for (0..class_count) |c| {
        const size: usize = block_size_bytes[c];
        // At least one block, whatever the cap.
        const bytes = @max(size, std.math.clamp(size * 8, layout.slice_size_bytes, medium_span_max_bytes));
        slices[c] = @intCast(std.math.divCeil(usize, bytes, layout.slice_size_bytes) catch unreachable);
    }
    break :blk slices;
};

/// Class for a request of `size_bytes` (0 allowed). Only for sizes up to
/// `medium_max_bytes`.
pub inline fn classOf(size_bytes: usize) Class {
    std.debug.assert(size_bytes <= medium_max_bytes);
    if (size_bytes <= fine_max_bytes) return fineClassOf(@max(size_bytes, 1));
    return coarseClassOf(size_bytes);
}

/// Sizes up to here find their class in `fine_classes`, one entry per 16
/// bytes (2 KiB of table): malloc's hot path covers them with one range
/// test, so a program that mixes small and medium sizes at random does not
/// mispredict a branch between the two.
pub const fine_max_bytes: usize = 32 * 1024;
const fine_classes = classTable(std.math.log2_int(usize, min_alignment_bytes), fine_max_bytes);

/// `classOf` for 1..`fine_max_bytes`: a shift and one load.
pub inline fn fineClassOf(size_bytes: usize) Class {
    std.debug.assert(size_bytes >= 1);
    std.debug.assert(size_bytes <= fine_max_bytes);
    return fine_classes[(size_bytes - 1) / min_alignment_bytes];
}

/// Every medium class boundary is a multiple of 512 bytes.
const medium_step_shift = 9;
/// Entries from `fine_max_bytes` on, one per 512 bytes.
const coarse_classes = classTable(medium_step_shift, medium_max_bytes)[fine_max_bytes >> medium_step_shift ..].*;

/// `classOf` for fine_max_bytes < size_bytes <= medium_max_bytes: one load.
pub inline fn coarseClassOf(size_bytes: usize) Class {
    std.debug.assert(size_bytes > fine_max_bytes and size_bytes <= medium_max_bytes);
    return coarse_classes[((size_bytes - 1) >> medium_step_shift) - (fine_max_bytes >> medium_step_shift)];
}

/// Smallest class that holds `size_bytes` and whose block size is a multiple
/// of `alignment_bytes` (a power of two no larger than a slice), so every
/// block of that class is aligned: spans start slice-aligned, and a colored
/// span only a cache line in (beyond that, the uncolored twin). Null when
/// no class fits; the caller then uses a large block.
pub fn alignedClassOf(size_bytes: usize, alignment_bytes: usize) ?Class {
    std.debug.assert(std.math.isPowerOfTwo(alignment_bytes));
    if (alignment_bytes > layout.slice_size_bytes) return null;
    const wanted = @max(size_bytes, alignment_bytes);
    if (wanted > medium_max_bytes) return null;
    var class = classOf(wanted);
    while (class < first_aligned_class) : (class += 1) {
        if (block_size_bytes[class] & (alignment_bytes - 1) != 0) continue;
        if (isColored(class) and alignment_bytes > layout.cache_line_bytes) return @intCast(class + medium_class_count);
        return class;
    }
    return null;
}

test "class sizes are ordered, aligned and cover the range" {
    var previous: u32 = 0;
    for (block_size_bytes[0..first_aligned_class]) |size| {
        try std.testing.expect(size > previous);
        try std.testing.expect(size % min_alignment_bytes == 0);
        if (size > small_max_bytes) try std.testing.expect(size % (1 << medium_step_shift) == 0);
        previous = size;
    }
    try std.testing.expectEqual(@as(u32, medium_max_bytes), block_size_bytes[class_count - 1]);
    try std.testing.expectEqualSlices(u32, block_size_bytes[small_class_count..first_aligned_class], block_size_bytes[first_aligned_class..]);
}

test "a size rounded up to a power-of-two alignment up to a cache line gets a class whose blocks are a multiple of it" {
    // alloc.cachedAligned relies on it: with spans starting at slice
    // boundaries and colors of whole cache lines (span.zig), every block of
    // such a class is aligned.
    var alignment: usize = 1;
    while (alignment <= layout.cache_line_bytes) : (alignment *= 2) {
        var rounded = alignment;
        while (rounded <= fine_max_bytes) : (rounded += alignment) {
            try std.testing.expect(block_size_bytes[fineClassOf(rounded)] % alignment == 0);
        }
    }
}

test "classOf picks the smallest class that fits" {
    var size: usize = 0;
    while (size <= medium_max_bytes) : (size += if (size < 8192) 1 else 97) {
        const class = classOf(size);
        try std.testing.expect(block_size_bytes[class] >= size);
        if (class > 0) try std.testing.expect(block_size_bytes[class - 1] < size);
    }
    try std.testing.expectEqual(@as(Class, 0), classOf(0));
    try std.testing.expectEqual(@as(Class, 0), classOf(16));
    try std.testing.expectEqual(@as(Class, 1), classOf(17));
    try std.testing.expectEqual(@as(Class, first_aligned_class - 1), classOf(medium_max_bytes));
    for (1..fine_max_bytes + 1) |fine| try std.testing.expectEqual(classOf(fine), fineClassOf(fine));
}

test "alignedClassOf gives aligned blocks" {
    var alignment: usize = 16;
    while (alignment <= layout.slice_size_bytes) : (alignment *= 2) {
        for ([_]usize{ 0, 1, 100, 2048, 3000, 70000, 200000 }) |size| {
            if (alignedClassOf(size, alignment)) |class| {
                try std.testing.expect(block_size_bytes[class] >= size);
                try std.testing.expect(block_size_bytes[class] % alignment == 0);
            }
        }
    }
    try std.testing.expect(alignedClassOf(10, 2 * layout.slice_size_bytes) == null);
    // Beyond a cache line, a medium block comes from an uncolored twin.
    try std.testing.expect(!isColored(alignedClassOf(5000, 4096).?));
    try std.testing.expect(alignedClassOf(5000, 4096).? >= first_aligned_class);
    try std.testing.expect(isColored(alignedClassOf(5000, 64).?));
}

test "spans hold their minimum block count within a segment" {
    for (0..class_count) |c| {
        const span_bytes = @as(usize, span_slices[c]) * layout.slice_size_bytes;
        try std.testing.expect(span_bytes / block_size_bytes[c] >= 1);
        try std.testing.expect(span_slices[c] < layout.slices_per_segment);
    }
}
