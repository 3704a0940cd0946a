//! The exported C ABI: the malloc family (for LD_PRELOAD) and the hz_* API
//! (for direct linking and dlopen, where an exported `malloc` called
//! through the PLT would bind to libc's). Each export is a thin wrapper
//! over alloc.zig; the library's setup and teardown hooks live here too.
const std = @import("std");
const builtin = @import("builtin");
const build_options = @import("build_options");
const alloc = @import("alloc.zig");
const empty = @import("empty.zig");
const large = @import("large.zig");
const os = @import("os.zig");
const policy = @import("policy.zig");
const segment = @import("segment.zig");
const sizeclass = @import("sizeclass.zig");
const stats = @import("stats.zig");
const thread = @import("thread.zig");

/// A panic inside the allocator must not allocate or unwind: one line, abort.
pub const panic = std.debug.FullPanic(fatalPanic);

fn fatalPanic(message: []const u8, first_trace_address: ?usize) noreturn {
    _ = first_trace_address;
    os.writeStderr("hakozuna: internal error: ");
    os.writeStderr(message);
    os.writeStderr("\n");
    std.c.abort();
}

const version: [:0]const u8 = std.fmt.comptimePrint("{s}", .{build_options.version});

// The unit-test binary links libc's malloc; only the library exports ours.
comptime {
    if (!builtin.is_test) _ = Exports;
}

/// Where the entry points that hold the hot path start: at a cache line,
/// so that its few instructions lie in the same lines and decoder windows
/// whatever else the library holds. Placed where the linker put them, an
/// unrelated change once moved malloc 48 bytes and the single-thread
/// small-block lane by 2% (bench/LEDGER.md).
const hot_entry_alignment = 64;

const Exports = struct {
    // Each entry point is one function exported under every name it
    // answers to: the malloc family (glibc 2.36's contract), glibc's own
    // __libc_* entry points (code that calls them directly must get our
    // blocks too, or its pointers would reach our free), and hz_* of
    // hakozuna.h.
    fn malloc(size: usize) align(hot_entry_alignment) callconv(.c) ?*anyopaque {
        return alloc.malloc(size);
    }
    fn free(ptr: ?*anyopaque) align(hot_entry_alignment) callconv(.c) void {
        alloc.free(ptr);
    }
    /// C23's sized free: `free`, telling the hardened lane the size asked
    /// for, which must match (glibc defines it from 2.43: without ours, a
    /// program built against it would hand our blocks to glibc's free).
    fn freeSized(ptr: ?*anyopaque, size: usize) callconv(.c) void {
        alloc.freeAs(ptr, .malloc, size);
    }
    /// C23's free of an aligned_alloc block: `freeSized`; the address
    /// alone finds the block, so the alignment is not needed.
    fn freeAlignedSized(ptr: ?*anyopaque, alignment: usize, size: usize) callconv(.c) void {
        _ = alignment;
        freeSized(ptr, size);
    }
    fn calloc(count: usize, size: usize) callconv(.c) ?*anyopaque {
        return alloc.calloc(count, size);
    }
    fn realloc(ptr: ?*anyopaque, size: usize) callconv(.c) ?*anyopaque {
        return alloc.realloc(ptr, size);
    }
    fn reallocarray(ptr: ?*anyopaque, count: usize, size: usize) callconv(.c) ?*anyopaque {
        return alloc.reallocarray(ptr, count, size);
    }
    fn posixMemalign(out: *?*anyopaque, alignment: usize, size: usize) callconv(.c) c_int {
        return alloc.posixMemalign(out, alignment, size);
    }
    fn memalign(alignment: usize, size: usize) callconv(.c) ?*anyopaque {
        return alloc.memalign(alignment, size);
    }
    fn alignedAlloc(alignment: usize, size: usize) callconv(.c) ?*anyopaque {
        return alloc.alignedAlloc(alignment, size);
    }
    fn alignedAllocAsGlibc(alignment: usize, size: usize) callconv(.c) ?*anyopaque {
        return alloc.alignedAllocAsGlibc(alignment, size);
    }
    fn valloc(size: usize) callconv(.c) ?*anyopaque {
        return alloc.valloc(size);
    }
    fn pvalloc(size: usize) callconv(.c) ?*anyopaque {
        return alloc.pvalloc(size);
    }
    fn usableSize(ptr: ?*const anyopaque) callconv(.c) usize {
        return alloc.usableSize(ptr);
    }
    fn owns(ptr: ?*const anyopaque) callconv(.c) c_int {
        return @intFromBool(alloc.owns(ptr));
    }
    fn freeChecked(ptr: ?*anyopaque) callconv(.c) c_int {
        return @intFromEnum(alloc.freeChecked(ptr));
    }
    fn usableSizeChecked(ptr: ?*const anyopaque) callconv(.c) usize {
        return alloc.usableSizeChecked(ptr);
    }
    fn mallocMany(size: usize, out: [*]?*anyopaque, count: usize) callconv(.c) usize {
        return alloc.mallocMany(size, out, count);
    }
    fn freeMany(ptrs: [*]const ?*anyopaque, count: usize) callconv(.c) usize {
        return alloc.freeMany(ptrs, count);
    }
    fn statsInto(out: ?*anyopaque, out_size: usize) callconv(.c) usize {
        const snapshot = thread.snapshot();
        return stats.copyOut(&snapshot, out, out_size);
    }
    fn collect() callconv(.c) usize {
        return thread.collectEverything() + large.trimCache();
    }
    /// glibc's malloc_trim: `pad` has no meaning here (nothing is kept at
    /// a heap top); 1 when memory went back to the system.
    fn mallocTrim(pad: usize) callconv(.c) c_int {
        _ = pad;
        return @intFromBool(collect() > 0);
    }
    fn mallinfo2() callconv(.c) stats.Mallinfo2 {
        const snapshot = thread.snapshot();
        return stats.mallinfo2(&snapshot);
    }
    fn mallinfo() callconv(.c) stats.Mallinfo {
        const snapshot = thread.snapshot();
        return stats.mallinfo(&snapshot);
    }
    /// glibc's malloc_stats: the HZ_STATS line, on stderr.
    fn mallocStats() callconv(.c) void {
        var buffer: [1024]u8 = undefined;
        os.writeAll(2, statsLine(&buffer));
    }
    fn policyName() callconv(.c) [*:0]const u8 {
        thread.start();
        return policy.laneName();
    }
    fn versionString() callconv(.c) [*:0]const u8 {
        return version.ptr;
    }

    comptime {
        exportAs(&malloc, &.{ "malloc", "__libc_malloc", "hz_malloc" });
        // cfree: glibc keeps it for programs linked before 2.26 (as
        // cfree@GLIBC_2.2.5, which an unversioned definition satisfies).
        exportAs(&free, &.{ "free", "__libc_free", "hz_free", "cfree" });
        exportAs(&freeSized, &.{"free_sized"});
        exportAs(&freeAlignedSized, &.{"free_aligned_sized"});
        exportAs(&calloc, &.{ "calloc", "__libc_calloc", "hz_calloc" });
        exportAs(&realloc, &.{ "realloc", "__libc_realloc", "hz_realloc" });
        exportAs(&reallocarray, &.{"reallocarray"});
        exportAs(&posixMemalign, &.{"posix_memalign"});
        exportAs(&memalign, &.{ "memalign", "__libc_memalign" });
        exportAs(&alignedAllocAsGlibc, &.{"aligned_alloc"});
        exportAs(&alignedAlloc, &.{"hz_aligned_alloc"});
        exportAs(&valloc, &.{ "valloc", "__libc_valloc" });
        exportAs(&pvalloc, &.{ "pvalloc", "__libc_pvalloc" });
        exportAs(&usableSize, &.{ "malloc_usable_size", "hz_usable_size" });
        exportAs(&owns, &.{"hz_owns"});
        exportAs(&freeChecked, &.{"hz_free_checked"});
        exportAs(&usableSizeChecked, &.{"hz_usable_size_checked"});
        exportAs(&mallocMany, &.{"hz_malloc_many"});
        exportAs(&freeMany, &.{"hz_free_many"});
        exportAs(&statsInto, &.{"hz_stats"});
        exportAs(&collect, &.{"hz_collect"});
        exportAs(&mallocTrim, &.{"malloc_trim"});
        exportAs(&mallinfo2, &.{"mallinfo2"});
        exportAs(&mallinfo, &.{ "mallinfo", "__libc_mallinfo" });
        exportAs(&mallocStats, &.{"malloc_stats"});
        exportAs(&policyName, &.{"hz_policy_name"});
        exportAs(&versionString, &.{"hz_version"});
    }

    fn exportAs(function: anytype, comptime names: []const []const u8) void {
        for (names) |name| @export(function, .{ .name = name });
    }

    comptime {
        for (Cxx.new_names, .{ Cxx.New, Cxx.NewNothrow, Cxx.NewAligned, Cxx.NewAlignedNothrow }) |names, Shape| {
            for (names, Cxx.forms) |name, origin| @export(&Shape(name, origin).call, .{ .name = name });
        }
        for (Cxx.delete_names, Cxx.forms) |names, origin| {
            exportAs(&Cxx.Delete(origin).unsized, &names.unsized);
            exportAs(&Cxx.Delete(origin).sized, &names.sized);
        }
    }

    // --- setup and teardown ---
    const Hook = *const fn () callconv(.c) void;
    const init_entry: Hook linksection(".init_array") = &constructor;
    const fini_entry: Hook linksection(".fini_array") = &destructor;
    comptime {
        @export(&init_entry, .{ .name = "hakozuna_init_entry", .visibility = .hidden });
        @export(&fini_entry, .{ .name = "hakozuna_fini_entry", .visibility = .hidden });
    }
};

/// C++'s operator new and delete under their Itanium ABI names, so that a
/// C++ program that preloads this library reaches malloc in one call
/// instead of through the C++ runtime's wrapper and the PLT. When no
/// memory can be had, the runtime's own definition (the next one after
/// ours, found by name) takes over with the same arguments: it runs the
/// program's new_handler and throws std::bad_alloc (or returns null for
/// the nothrow forms), which this library cannot do itself.
const Cxx = struct {
    /// `new` and `new[]` of each shape: (size), (size, nothrow),
    /// (size, alignment), (size, alignment, nothrow).
    const new_names = [_][2][:0]const u8{
        .{ "_Znwm", "_Znam" },
        .{ "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t" },
        .{ "_ZnwmSt11align_val_t", "_ZnamSt11align_val_t" },
        .{ "_ZnwmSt11align_val_tRKSt9nothrow_t", "_ZnamSt11align_val_tRKSt9nothrow_t" },
    };
    /// The two forms, in the order of each pair above and below.
    const forms = [2]alloc.Origin{ .new, .new_array };
    /// `delete` and `delete[]`: the forms without a size (plain, nothrow,
    /// aligned, aligned nothrow) and those with one (plain, aligned). A
    /// form's arguments past the pointer and the size are not needed: one
    /// function serves every name that starts alike.
    const delete_names = [2]struct { unsized: [4][]const u8, sized: [2][]const u8 }{
        .{
            .unsized = .{ "_ZdlPv", "_ZdlPvRKSt9nothrow_t", "_ZdlPvSt11align_val_t", "_ZdlPvSt11align_val_tRKSt9nothrow_t" },
            .sized = .{ "_ZdlPvm", "_ZdlPvmSt11align_val_t" },
        },
        .{
            .unsized = .{ "_ZdaPv", "_ZdaPvRKSt9nothrow_t", "_ZdaPvSt11align_val_t", "_ZdaPvSt11align_val_tRKSt9nothrow_t" },
            .sized = .{ "_ZdaPvm", "_ZdaPvmSt11align_val_t" },
        },
    };
    /// `free`, telling the hardened lane which delete it is, so that a
    /// mismatch with the block's new aborts there.
    fn Delete(comptime origin: alloc.Origin) type {
        return struct {
            fn unsized(ptr: ?*anyopaque) align(hot_entry_alignment) callconv(.c) void {
                alloc.freeAs(ptr, origin, alloc.Release.no_size);
            }
            fn sized(ptr: ?*anyopaque, size: usize) align(hot_entry_alignment) callconv(.c) void {
                alloc.freeAs(ptr, origin, size);
            }
        };
    }
    /// `std::nothrow_t const&`, never read.
    const Nothrow = *const anyopaque;

    /// glibc's RTLD_NEXT: the definitions after this library's.
    const rtld_next: *anyopaque = @ptrFromInt(std.math.maxInt(usize));

    /// The C++ runtime's definition of `name`, of type `Fn`; none only in a
    /// process without a C++ runtime, where nothing calls operator new.
    fn runtime(comptime Fn: type, comptime name: [:0]const u8) *const Fn {
        const symbol = std.c.dlsym(rtld_next, name) orelse {
            os.writeStderr("hakozuna: operator new: out of memory, and no C++ runtime to report it\n");
            std.c.abort();
        };
        return @ptrCast(@alignCast(symbol));
    }

    fn New(comptime name: [:0]const u8, comptime origin: alloc.Origin) type {
        return struct {
            /// Malloc's hit path; the rest out of line (`alloc.NewPath`),
            /// so that the hit path keeps no register for the runtime's
            /// call.
            fn call(size: usize) align(hot_entry_alignment) callconv(.c) ?*anyopaque {
                return alloc.cached(size, alloc.NewPath(origin, fail));
            }
            fn fail(size: usize) ?*anyopaque {
                return runtime(@TypeOf(call), name)(size);
            }
        };
    }
    // The other shapes: the hit path of malloc or of the aligned family,
    // then, out of line, the whole request and the runtime's call.
    fn NewNothrow(comptime name: [:0]const u8, comptime origin: alloc.Origin) type {
        return struct {
            fn call(size: usize, nothrow: Nothrow) callconv(.c) ?*anyopaque {
                return alloc.cachedOrNull(size) orelse other(size, nothrow);
            }
            noinline fn other(size: usize, nothrow: Nothrow) ?*anyopaque {
                return alloc.mallocAs(alloc.newBytes(size), origin) orelse runtime(@TypeOf(call), name)(size, nothrow);
            }
        };
    }
    fn NewAligned(comptime name: [:0]const u8, comptime origin: alloc.Origin) type {
        return struct {
            fn call(size: usize, alignment: usize) callconv(.c) ?*anyopaque {
                return alloc.cachedAligned(alignment, size) orelse other(size, alignment);
            }
            noinline fn other(size: usize, alignment: usize) ?*anyopaque {
                return alloc.memalignOther(alignment, alloc.newBytes(size), origin) orelse runtime(@TypeOf(call), name)(size, alignment);
            }
        };
    }
    fn NewAlignedNothrow(comptime name: [:0]const u8, comptime origin: alloc.Origin) type {
        return struct {
            fn call(size: usize, alignment: usize, nothrow: Nothrow) callconv(.c) ?*anyopaque {
                return alloc.cachedAligned(alignment, size) orelse other(size, alignment, nothrow);
            }
            noinline fn other(size: usize, alignment: usize, nothrow: Nothrow) ?*anyopaque {
                return alloc.memalignOther(alignment, alloc.newBytes(size), origin) orelse runtime(@TypeOf(call), name)(size, alignment, nothrow);
            }
        };
    }
};

const DlInfo = extern struct {
    fname: ?[*:0]const u8,
    fbase: ?*anyopaque,
    sname: ?[*:0]const u8,
    saddr: ?*anyopaque,
};
extern "c" fn dladdr(address: *const anyopaque, info: *DlInfo) c_int;

/// Runs when the library is loaded (preload or dlopen). Malloc may already
/// have been called before this: initialisation is lazy and idempotent.
fn constructor() callconv(.c) void {
    thread.start();
    // Programs often close stderr before they exit (coreutils do), or
    // reopen fd 2 on a file: the exit line goes to the stderr of the start.
    switch (policy.snapshot.stats_output) {
        .line, .verbose => stats_fd = os.duplicateStderr() orelse 2,
        .off, .file => {},
    }
    if (std.c.pthread_atfork(forkPrepare, forkParent, forkChild) != 0) {
        os.writeStderr("hakozuna: pthread_atfork failed; fork() of a threaded program may deadlock\n");
    }
    pinLibrary();
}

/// Blocks, thread-exit destructors and fork handlers all point into this
/// library: it must never be unloaded (dlclose), so pin it.
fn pinLibrary() void {
    var info: DlInfo = undefined;
    if (dladdr(@ptrCast(&constructor), &info) == 0) return;
    const path = info.fname orelse return;
    _ = std.c.dlopen(path, .{ .NOW = true, .NOLOAD = true, .NODELETE = true });
}

/// Where HZ_STATS=1 and HZ_STATS=verbose write at exit.
var stats_fd: i32 = 2;

/// The stats line of this process, now.
fn statsLine(buffer: []u8) []const u8 {
    thread.start();
    const snapshot = thread.snapshot();
    return stats.formatLine(buffer, &snapshot, .{
        .pid = os.pid(),
        .program = os.programName(),
        .lane = std.mem.span(policy.laneName()),
    });
}

/// HZ_STATS at exit: the line (and for verbose the class table) on the
/// stderr of the start, or into `<prefix>.<pid>` (a forked child exits
/// with its own pid, so each process of a tree writes its own file).
fn destructor() callconv(.c) void {
    const output = policy.snapshot.stats_output;
    if (output == .off) return;
    const pid = os.pid();
    var buffer: [1024]u8 = undefined;
    const line = statsLine(&buffer);
    if (output == .file) {
        var path_buffer: [policy.stats_prefix_buffer.len]u8 = undefined;
        const path = std.fmt.bufPrintZ(&path_buffer, "{s}.{d}", .{ policy.statsPrefix(), pid }) catch return;
        const fd = os.createFile(path) orelse {
            os.writeStderr("hakozuna: HZ_STATS: cannot create the stats file\n");
            return;
        };
        os.writeAll(fd, line);
        os.close(fd);
        return;
    }
    os.writeAll(stats_fd, line);
    if (output == .verbose) {
        var rows: [sizeclass.class_count]stats.ClassRow = undefined;
        thread.classRows(&rows);
        var table_buffer: [sizeclass.class_count * 72 + 128]u8 = undefined;
        os.writeAll(stats_fd, stats.formatClassTable(&table_buffer, &rows));
    }
}

// Lock order: heap registry, segment cache, large registry, empty slots.
fn forkPrepare() callconv(.c) void {
    thread.lockForFork();
    segment.lockForFork();
    large.lockForFork();
    empty.forkLock().lock();
}

fn forkParent() callconv(.c) void {
    empty.forkLock().unlock();
    large.unlockAfterFork();
    segment.unlockAfterFork();
    thread.unlockAfterFork();
}

fn forkChild() callconv(.c) void {
    empty.forkLock().resetAfterFork();
    large.resetAfterFork();
    segment.resetAfterFork();
    thread.resetAfterFork();
}

test {
    // Every box's unit tests, in layer order, and the layering check itself.
    _ = @import("layout.zig");
    _ = @import("hash.zig");
    _ = @import("list.zig");
    _ = @import("os.zig");
    _ = @import("sizeclass.zig");
    _ = @import("policy.zig");
    _ = @import("stats.zig");
    _ = @import("span.zig");
    _ = @import("segment.zig");
    _ = @import("remote.zig");
    _ = @import("large.zig");
    _ = @import("empty.zig");
    _ = @import("heap.zig");
    _ = @import("thread.zig");
    _ = @import("hardened.zig");
    _ = @import("alloc.zig");
    _ = @import("layering_test.zig");
}
