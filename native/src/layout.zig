//! Layout box: the geometry every other box is built on. Constants only.
//!
//!   OS page  4 KiB   the unit the kernel maps and purges
//!   slice   64 KiB   the unit a segment hands out; a span is 1..63 slices
//!   segment  4 MiB   mapped aligned to its size: pointer -> segment is a mask
const std = @import("std");

/// The smallest unit the kernel maps; every mapping length is a multiple.
pub const page_size_bytes: usize = 4096;

pub const slice_shift = 16;
pub const slice_size_bytes: usize = 1 << slice_shift;

pub const segment_shift = 22;
pub const segment_size_bytes: usize = 1 << segment_shift;
pub const slices_per_segment: usize = segment_size_bytes / slice_size_bytes;

/// What a span's color counts in (span.zig), and the alignment a colored
/// span still keeps.
pub const cache_line_bytes: usize = 64;

/// Every block is aligned to this (glibc's malloc alignment on 64-bit).
pub const min_alignment_bytes: usize = 16;

comptime {
    std.debug.assert(slice_size_bytes % page_size_bytes == 0);
    // Segment masks (free, dirty) are one u64: one bit per slice.
    std.debug.assert(slices_per_segment == 64);
}
