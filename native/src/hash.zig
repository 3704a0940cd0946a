//! Hash box: Fibonacci hashing, the one hash the boxes use to spread
//! addresses (slots of the large-block registry, span colors, hardened
//! canaries). A multiply by 2^64 divided by the golden ratio carries every
//! bit of the key into the top bits of the product; the hash is those bits.
const std = @import("std");

const golden_ratio_64: u64 = 0x9E37_79B9_7F4A_7C15;

/// The top `bits` bits (1..63) of `key` times 2^64 / golden ratio.
pub inline fn topBits(key: u64, bits: u6) u64 {
    std.debug.assert(bits >= 1);
    return (key *% golden_ratio_64) >> @intCast(@as(u7, 64) - bits);
}

test "consecutive keys spread over every value of the top bits" {
    var seen = std.StaticBitSet(64).initEmpty();
    for (0..256) |key| seen.set(@intCast(topBits(key, 6)));
    try std.testing.expectEqual(@as(usize, 64), seen.count());
    try std.testing.expect(topBits(std.math.maxInt(u64), 63) < 1 << 63);
}
