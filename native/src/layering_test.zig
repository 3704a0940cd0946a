//! The layer order of the boxes, and a test that holds the code to it: a
//! file imports only files below it in `order` (and std, builtin and the
//! build options). README.md's "How it works" states the same order.
const std = @import("std");

/// Bottom first.
pub const order = [_][]const u8{
    "layout.zig",
    "hash.zig",
    "list.zig",
    "os.zig",
    "sizeclass.zig",
    "policy.zig",
    "stats.zig",
    "span.zig",
    "segment.zig",
    "remote.zig",
    "large.zig",
    "empty.zig",
    "heap.zig",
    "thread.zig",
    "hardened.zig",
    "alloc.zig",
    "shim.zig",
};

/// The project files `source` imports (`@import("x.zig")` outside tests).
fn importsOf(source: []const u8, out: *[32][]const u8) [][]const u8 {
    var count: usize = 0;
    var rest = source;
    // Tests may import anything; only the code above the first test counts.
    if (std.mem.indexOf(u8, rest, "\ntest ")) |first_test| rest = rest[0..first_test];
    const needle = "@import(\"";
    while (std.mem.indexOf(u8, rest, needle)) |at| {
        rest = rest[at + needle.len ..];
        const end = std.mem.indexOfScalar(u8, rest, '"').?;
        const name = rest[0..end];
        if (std.mem.endsWith(u8, name, ".zig")) {
            out[count] = name;
            count += 1;
        }
    }
    return out[0..count];
}

fn rank(name: []const u8) ?usize {
    for (order, 0..) |file, index| {
        if (std.mem.eql(u8, file, name)) return index;
    }
    return null;
}

test "every file imports only files below it" {
    inline for (order, 0..) |file, index| {
        const source = @embedFile(file);
        var buffer: [32][]const u8 = undefined;
        for (importsOf(source, &buffer)) |imported| {
            const below = rank(imported) orelse {
                std.debug.print("{s} imports {s}, which is not in the layer order\n", .{ file, imported });
                return error.UnknownBox;
            };
            if (below >= index) {
                std.debug.print("{s} imports {s}, which is not below it\n", .{ file, imported });
                return error.LayerViolation;
            }
        }
    }
}

test "every source file has a place in the order" {
    var dir = try std.fs.openDirAbsolute(@import("build_options").src_dir, .{ .iterate = true });
    defer dir.close();
    var iterator = dir.iterate();
    while (try iterator.next()) |entry| {
        if (!std.mem.endsWith(u8, entry.name, ".zig")) continue;
        if (std.mem.eql(u8, entry.name, "layering_test.zig")) continue;
        if (rank(entry.name) == null) {
            std.debug.print("src/{s} is not in layering_test.zig's order\n", .{entry.name});
            return error.UnknownBox;
        }
    }
}

test "the import scan finds imports and ignores test-only ones" {
    var buffer: [32][]const u8 = undefined;
    const found = importsOf("const a = @import(\"std\");\nconst b = @import(\"os.zig\");\ntest \"x\" {\n    _ = @import(\"shim.zig\");\n}\n", &buffer);
    try std.testing.expectEqual(@as(usize, 1), found.len);
    try std.testing.expectEqualStrings("os.zig", found[0]);
}
