//! A doubly-linked intrusive list: the node type carries a `Link` field,
//! so linking never allocates. Used for a heap's partial spans per class,
//! a heap's segments and the orphan heaps. Not thread-safe: each list has
//! one writer (its owner, or whoever holds its lock).
const std = @import("std");

/// The two links a listed node carries. Extern so it can sit in extern
/// structs (span metadata has a fixed layout).
pub fn Link(comptime T: type) type {
    return extern struct {
        next: ?*T = null,
        prev: ?*T = null,
    };
}

/// A list of `T` linked through `T.<field>` (a `Link(T)`), oldest at the
/// head when filled with `pushBack`.
pub fn List(comptime T: type, comptime field: []const u8) type {
    return struct {
        const Self = @This();

        head: ?*T = null,
        tail: ?*T = null,

        inline fn link(node: *T) *Link(T) {
            return &@field(node, field);
        }

        pub inline fn isEmpty(list: *const Self) bool {
            return list.head == null;
        }

        pub inline fn next(node: *T) ?*T {
            return link(node).next;
        }

        pub inline fn previous(node: *T) ?*T {
            return link(node).prev;
        }

        pub fn pushFront(list: *Self, node: *T) void {
            std.debug.assert(link(node).next == null);
            std.debug.assert(link(node).prev == null);
            link(node).next = list.head;
            if (list.head) |head| link(head).prev = node else list.tail = node;
            list.head = node;
        }

        pub fn pushBack(list: *Self, node: *T) void {
            std.debug.assert(link(node).next == null);
            std.debug.assert(link(node).prev == null);
            link(node).prev = list.tail;
            if (list.tail) |tail| link(tail).next = node else list.head = node;
            list.tail = node;
        }

        /// Unlinks `node`, which must be on this list.
        pub fn remove(list: *Self, node: *T) void {
            const node_link = link(node);
            if (node_link.prev) |prev| link(prev).next = node_link.next else list.head = node_link.next;
            if (node_link.next) |after| link(after).prev = node_link.prev else list.tail = node_link.prev;
            node_link.* = .{};
        }

        pub fn popFront(list: *Self) ?*T {
            const node = list.head orelse return null;
            list.remove(node);
            return node;
        }

        pub fn popBack(list: *Self) ?*T {
            const node = list.tail orelse return null;
            list.remove(node);
            return node;
        }
    };
}

const TestNode = struct {
    value: u32,
    link: Link(TestNode) = .{},
};

test "push, remove and pop keep both ends consistent" {
    const TestList = List(TestNode, "link");
    var nodes: [4]TestNode = .{ .{ .value = 0 }, .{ .value = 1 }, .{ .value = 2 }, .{ .value = 3 } };
    var list: TestList = .{};
    try std.testing.expect(list.isEmpty());
    list.pushBack(&nodes[1]);
    list.pushBack(&nodes[2]);
    list.pushFront(&nodes[0]);
    list.pushBack(&nodes[3]);
    var expected: u32 = 0;
    var cursor = list.head;
    while (cursor) |node| : (cursor = TestList.next(node)) {
        try std.testing.expectEqual(expected, node.value);
        expected += 1;
    }
    try std.testing.expectEqual(@as(u32, 4), expected);
    list.remove(&nodes[2]);
    try std.testing.expectEqual(&nodes[3], TestList.next(&nodes[1]).?);
    try std.testing.expectEqual(&nodes[3], list.popBack().?);
    try std.testing.expectEqual(&nodes[0], list.popFront().?);
    try std.testing.expectEqual(&nodes[1], list.popFront().?);
    try std.testing.expect(list.isEmpty());
    try std.testing.expect(list.tail == null);
    try std.testing.expect(list.popBack() == null);
    // A removed node can be linked again.
    list.pushFront(&nodes[2]);
    try std.testing.expectEqual(&nodes[2], list.tail.?);
}
