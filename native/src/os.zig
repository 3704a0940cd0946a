//! OS box: every system call the allocator makes goes through here.
//!
//! Raw syscalls, never libc wrappers: libc's may allocate, set errno on the
//! success path, or take locks that a preloaded malloc must not depend on.
//! Failures are values (null / false), never aborts: out of memory is an
//! ordinary outcome for malloc. This box counts nothing: the boxes that map
//! memory count it (stats.zig).
const std = @import("std");
const linux = std.os.linux;
const layout = @import("layout.zig");

const page_size_bytes = layout.page_size_bytes;

fn failed(rc: usize) bool {
    return linux.E.init(rc) != .SUCCESS;
}

/// Maps `len_bytes` of zeroed, private, read-write memory.
/// Accounted like glibc's mappings (no MAP_NORESERVE), so a request the
/// system cannot back fails here with ENOMEM instead of at first touch.
pub fn map(len_bytes: usize) ?[*]align(page_size_bytes) u8 {
    std.debug.assert(len_bytes > 0 and len_bytes % page_size_bytes == 0);
    const rc = linux.mmap(
        null,
        len_bytes,
        linux.PROT.READ | linux.PROT.WRITE,
        .{ .TYPE = .PRIVATE, .ANONYMOUS = true },
        -1,
        0,
    );
    if (failed(rc)) return null;
    return @ptrFromInt(rc);
}

/// Maps `len_bytes` of memory as `map` does, at exactly `addr`; false when
/// any page of that range is already mapped (MAP_FIXED_NOREPLACE: nothing
/// that exists is replaced) or the system refuses.
pub fn mapAt(addr: usize, len_bytes: usize) bool {
    std.debug.assert(addr % page_size_bytes == 0 and len_bytes > 0 and len_bytes % page_size_bytes == 0);
    const rc = linux.mmap(
        @ptrFromInt(addr),
        len_bytes,
        linux.PROT.READ | linux.PROT.WRITE,
        .{ .TYPE = .PRIVATE, .ANONYMOUS = true, .FIXED_NOREPLACE = true },
        -1,
        0,
    );
    if (failed(rc)) return false;
    // A kernel older than 4.17 ignores the flag and may map elsewhere.
    if (rc != addr) {
        _ = linux.munmap(@ptrFromInt(rc), len_bytes);
        return false;
    }
    return true;
}

/// Maps `len_bytes` aligned to `alignment_bytes` (a power of two above the page
/// size) by over-mapping and trimming both ends; only `len_bytes` stay mapped.
pub fn mapAligned(len_bytes: usize, alignment_bytes: usize) ?[*]align(page_size_bytes) u8 {
    std.debug.assert(std.math.isPowerOfTwo(alignment_bytes));
    std.debug.assert(alignment_bytes > page_size_bytes);
    std.debug.assert(len_bytes % page_size_bytes == 0);
    const over_bytes = std.math.add(usize, len_bytes, alignment_bytes - page_size_bytes) catch return null;
    const base = map(over_bytes) orelse return null;
    const base_addr = @intFromPtr(base);
    const start_addr = std.mem.alignForward(usize, base_addr, alignment_bytes);
    const head_bytes = start_addr - base_addr;
    const tail_bytes = over_bytes - head_bytes - len_bytes;
    if (head_bytes > 0) _ = linux.munmap(base, head_bytes);
    if (tail_bytes > 0) _ = linux.munmap(@ptrFromInt(start_addr + len_bytes), tail_bytes);
    return @ptrFromInt(start_addr);
}

/// Unmaps what `map` gave. The kernel only fails this for bad arguments,
/// which would be an allocator bug.
pub fn unmap(ptr: [*]align(page_size_bytes) u8, len_bytes: usize) void {
    std.debug.assert(len_bytes % page_size_bytes == 0);
    const rc = linux.munmap(ptr, len_bytes);
    std.debug.assert(!failed(rc));
}

/// Resizes a mapping, moving it if needed. Returns the new address or null
/// (the old mapping is then untouched).
pub fn remap(ptr: [*]align(page_size_bytes) u8, old_len_bytes: usize, new_len_bytes: usize) ?[*]align(page_size_bytes) u8 {
    std.debug.assert(old_len_bytes % page_size_bytes == 0);
    std.debug.assert(new_len_bytes % page_size_bytes == 0);
    const rc = linux.mremap(ptr, old_len_bytes, new_len_bytes, .{ .MAYMOVE = true }, null);
    if (failed(rc)) return null;
    return @ptrFromInt(rc);
}

/// Moves the `len_bytes` of pages at `from` to `to` (mremap with
/// MREMAP_FIXED and no resize): what was mapped at `to` goes, `from` is
/// left unmapped, and the pages keep their contents without faulting in
/// again. False when the system refuses: `from` is then untouched, but `to`
/// may have been unmapped (a kernel that does not move a range spanning two
/// mappings refuses it only after unmapping the destination).
pub fn move(from: usize, len_bytes: usize, to: usize) bool {
    std.debug.assert(from % page_size_bytes == 0 and to % page_size_bytes == 0);
    std.debug.assert(len_bytes > 0 and len_bytes % page_size_bytes == 0);
    const rc = linux.mremap(@ptrFromInt(from), len_bytes, len_bytes, .{ .MAYMOVE = true, .FIXED = true }, @ptrFromInt(to));
    return !failed(rc);
}

/// Reserves `len_bytes` of address space that no access may touch: no
/// memory behind it, nothing accounted (MAP_NORESERVE), every access faults.
pub fn reserve(len_bytes: usize) ?[*]align(page_size_bytes) u8 {
    std.debug.assert(len_bytes > 0 and len_bytes % page_size_bytes == 0);
    const rc = linux.mmap(
        null,
        len_bytes,
        linux.PROT.NONE,
        .{ .TYPE = .PRIVATE, .ANONYMOUS = true, .NORESERVE = true },
        -1,
        0,
    );
    if (failed(rc)) return null;
    return @ptrFromInt(rc);
}

/// Makes a range inaccessible (a guard page): any access faults.
pub fn protectNone(ptr: [*]align(page_size_bytes) u8, len_bytes: usize) bool {
    std.debug.assert(len_bytes % page_size_bytes == 0);
    return !failed(linux.mprotect(ptr, len_bytes, linux.PROT.NONE));
}

/// Makes a range readable and writable again (after `protectNone`).
pub fn protectReadWrite(ptr: [*]align(page_size_bytes) u8, len_bytes: usize) bool {
    std.debug.assert(len_bytes % page_size_bytes == 0);
    return !failed(linux.mprotect(ptr, len_bytes, linux.PROT.READ | linux.PROT.WRITE));
}

/// Whether every page of a range is in memory (mincore), so that zeroing
/// it with stores touches no page the kernel would have to supply.
pub fn allResident(ptr: [*]align(page_size_bytes) u8, len_bytes: usize) bool {
    std.debug.assert(len_bytes % page_size_bytes == 0);
    const chunk_pages = 1024;
    var pages: [chunk_pages]u8 = undefined;
    var offset: usize = 0;
    while (offset < len_bytes) {
        const count = @min(chunk_pages, (len_bytes - offset) / page_size_bytes);
        if (failed(linux.mincore(ptr + offset, count * page_size_bytes, &pages))) return false;
        for (pages[0..count]) |page| if (page & 1 == 0) return false;
        offset += count * page_size_bytes;
    }
    return true;
}

/// Gives the physical pages behind a range back to the kernel; the range stays
/// mapped and reads as zero on next touch.
pub fn purge(ptr: [*]u8, len_bytes: usize) void {
    std.debug.assert(@intFromPtr(ptr) % page_size_bytes == 0);
    std.debug.assert(len_bytes % page_size_bytes == 0);
    _ = linux.madvise(@alignCast(ptr), len_bytes, linux.MADV.DONTNEED);
}

/// Monotonic milliseconds (coarse clock, a vDSO read; wraps every 49
/// days: compare with wrapping subtraction). Not through libc's
/// clock_gettime: its code lies in a part of libc that a program may never
/// run otherwise, and the kernel maps 64 KiB of a file's cached pages around
/// each page it faults in, all counted in the program's RSS
/// (bench/LEDGER.md, "libc pages").
pub fn nowMs() u32 {
    if (@atomicLoad(?[*]std.elf.Auxv, &linux.elf_aux_maybe, .acquire) == null) findVdso();
    var now: linux.timespec = undefined;
    if (failed(linux.clock_gettime(.MONOTONIC_COARSE, &now))) return 0;
    const ms = @as(u64, @intCast(now.sec)) * 1000 + @as(u64, @intCast(now.nsec)) / std.time.ns_per_ms;
    return @truncate(ms);
}

/// std's clock_gettime finds the vDSO through `linux.elf_aux_maybe`,
/// which only Zig's own start-up code sets (libc starts this process): it
/// gets the one entry it reads, before its first call, which would
/// otherwise settle on the system call for good. Threads that get here at
/// once store the same value.
fn findVdso() void {
    @atomicStore(u64, &vdso_auxv[0].a_un.a_val, std.c.getauxval(std.elf.AT_SYSINFO_EHDR), .monotonic);
    @atomicStore(?[*]std.elf.Auxv, &linux.elf_aux_maybe, &vdso_auxv, .release);
}
var vdso_auxv: [2]std.elf.Auxv = .{
    .{ .a_type = std.elf.AT_SYSINFO_EHDR, .a_un = .{ .a_val = 0 } },
    .{ .a_type = std.elf.AT_NULL, .a_un = .{ .a_val = 0 } },
};

/// Gives the CPU to another runnable thread, if any.
pub fn yield() void {
    _ = linux.sched_yield();
}

/// CPUs this process may run on (its affinity mask); 1 when the system
/// will not say, so that nothing assumes spare CPUs.
pub fn cpuCount() u32 {
    var set: linux.cpu_set_t = undefined;
    if (failed(linux.sched_getaffinity(0, @sizeOf(linux.cpu_set_t), &set))) return 1;
    return @max(1, linux.CPU_COUNT(set));
}

/// This process's id (a forked child has its own).
pub fn pid() i32 {
    return linux.getpid();
}

extern var program_invocation_short_name: ?[*:0]const u8;

/// The running program's name as libc has it (argv[0] without its
/// directory), at most 64 bytes of it (it goes into fixed-size lines), or
/// "?" while libc has none (it holds "" until its start-up sets it).
pub fn programName() []const u8 {
    const name = std.mem.span(program_invocation_short_name orelse return "?");
    if (name.len == 0) return "?";
    return name[0..@min(name.len, 64)];
}

/// Writes all of `bytes` to stderr, retrying short writes; never allocates.
pub fn writeStderr(bytes: []const u8) void {
    writeAll(2, bytes);
}

/// Writes all of `bytes` to `fd`, retrying short writes; never allocates.
pub fn writeAll(fd: i32, bytes: []const u8) void {
    var rest = bytes;
    while (rest.len > 0) {
        const rc = linux.write(fd, rest.ptr, rest.len);
        if (failed(rc)) {
            if (linux.E.init(rc) == .INTR) continue;
            return;
        }
        rest = rest[rc..];
    }
}

/// Creates (or truncates) the file at `path` for writing, close-on-exec.
/// Null when it cannot.
pub fn createFile(path: [*:0]const u8) ?i32 {
    const rc = linux.open(path, .{ .ACCMODE = .WRONLY, .CREAT = true, .TRUNC = true, .CLOEXEC = true }, 0o644);
    if (failed(rc)) return null;
    return @intCast(rc);
}

pub fn close(fd: i32) void {
    _ = linux.close(fd);
}

/// A private duplicate of stderr (close-on-exec, numbered from 100 so it
/// takes none of the low numbers programs expect), or null.
pub fn duplicateStderr() ?i32 {
    const dupfd_cloexec = 1030; // F_DUPFD_CLOEXEC
    const rc = linux.fcntl(2, dupfd_cloexec, 100);
    if (failed(rc)) return null;
    return @intCast(rc);
}

/// Prints one line `hakozuna: <what> 0x<addr>` and aborts, as glibc does on a
/// corrupted or foreign pointer. One function for every message, out of
/// line: formatted per message and inlined at each check, the abort paths
/// took a twelfth of the library's text, which is resident in every
/// process (bench/LEDGER.md).
pub noinline fn fatalPointer(what: []const u8, addr: usize) noreturn {
    var buffer: [160]u8 = undefined;
    const shown = what[0..@min(what.len, 120)];
    const line = std.fmt.bufPrint(&buffer, "hakozuna: {s} 0x{x}\n", .{ shown, addr }) catch unreachable;
    writeStderr(line);
    std.c.abort();
}

/// Sets the calling thread's errno (libc's, so C callers see it).
pub fn setErrno(value: std.c.E) void {
    std.c._errno().* = @intFromEnum(value);
}

/// True when the C library running is glibc `major.minor` or later.
/// gnu_get_libc_version is looked up weakly, so under another C library
/// (or a static glibc that lacks it) the answer is false; it returns a
/// constant string and allocates nothing.
pub fn glibcAtLeast(major: u32, minor: u32) bool {
    const get = @extern(?*const fn () callconv(.c) [*:0]const u8, .{
        .name = "gnu_get_libc_version",
        .linkage = .weak,
    }) orelse return false;
    return versionAtLeast(std.mem.span(get()), major, minor);
}

/// "2.38", "2.38.9000" or "3.0" against `major.minor`; false when the text
/// does not start with two dot-separated numbers.
fn versionAtLeast(text: []const u8, major: u32, minor: u32) bool {
    var parts = std.mem.tokenizeScalar(u8, text, '.');
    const have_major = std.fmt.parseUnsigned(u32, parts.next() orelse return false, 10) catch return false;
    const have_minor = std.fmt.parseUnsigned(u32, parts.next() orelse return false, 10) catch return false;
    return have_major > major or (have_major == major and have_minor >= minor);
}

/// A futex-backed mutex for the cold paths (segment cache, large-block
/// registry, heap registry). No allocation, no libc, fork-safe by re-init.
pub const Lock = struct {
    /// 0 unlocked, 1 locked, 2 locked with waiters.
    state: std.atomic.Value(u32) = .init(0),

    pub fn lock(self: *Lock) void {
        if (self.state.cmpxchgWeak(0, 1, .acquire, .monotonic) == null) return;
        self.lockSlow();
    }

    fn lockSlow(self: *Lock) void {
        var spins: u32 = 0;
        while (spins < 64) : (spins += 1) {
            if (self.state.load(.monotonic) == 0 and
                self.state.cmpxchgWeak(0, 1, .acquire, .monotonic) == null) return;
            std.atomic.spinLoopHint();
        }
        while (self.state.swap(2, .acquire) != 0) {
            _ = linux.futex_4arg(&self.state.raw, .{ .cmd = .WAIT, .private = true }, 2, null);
        }
    }

    pub fn unlock(self: *Lock) void {
        if (self.state.swap(0, .release) == 2) {
            _ = linux.futex_3arg(&self.state.raw, .{ .cmd = .WAKE, .private = true }, 1);
        }
    }

    /// In a fork child only one thread exists; whatever the parent's other
    /// threads held is released.
    pub fn resetAfterFork(self: *Lock) void {
        self.state.store(0, .monotonic);
    }
};

/// 16 random bytes from the kernel (getrandom, never blocking). Where the
/// call is refused, the bytes every process is handed at exec (AT_RANDOM),
/// scrambled so they differ from the stack canary libc derives from them.
pub fn processRandom() [2]u64 {
    var words: [2]u64 = undefined;
    const grnd_nonblock = 1; // GRND_NONBLOCK
    const rc = linux.getrandom(@ptrCast(&words), @sizeOf(@TypeOf(words)), grnd_nonblock);
    if (!failed(rc) and rc == @sizeOf(@TypeOf(words))) return words;
    const at_random = std.c.getauxval(std.elf.AT_RANDOM);
    const seed: [2]u64 = if (at_random != 0)
        @as(*align(1) const [2]u64, @ptrFromInt(at_random)).*
    else
        .{ @intCast(pid()), @intFromPtr(&words) };
    return .{ scramble(seed[0] ^ 0x9e3779b97f4a7c15), scramble(seed[1] ^ 0xbf58476d1ce4e5b9) };
}

/// A 64-bit mixing function (splitmix64's finaliser).
fn scramble(value: u64) u64 {
    var x = value;
    x = (x ^ (x >> 30)) *% 0xbf58476d1ce4e5b9;
    x = (x ^ (x >> 27)) *% 0x94d049bb133111eb;
    return x ^ (x >> 31);
}

test "map, purge and unmap round trip" {
    const len = 4 * page_size_bytes;
    const ptr = map(len) orelse return error.OutOfMemory;
    ptr[0] = 1;
    ptr[len - 1] = 2;
    purge(ptr, len);
    try std.testing.expectEqual(@as(u8, 0), ptr[0]);
    unmap(ptr, len);
}

test "versionAtLeast reads glibc's version text" {
    try std.testing.expect(versionAtLeast("2.38", 2, 38));
    try std.testing.expect(versionAtLeast("2.40.9000", 2, 38));
    try std.testing.expect(versionAtLeast("3.0", 2, 38));
    try std.testing.expect(!versionAtLeast("2.36", 2, 38));
    try std.testing.expect(!versionAtLeast("1.99", 2, 38));
    try std.testing.expect(!versionAtLeast("2", 2, 38));
    try std.testing.expect(!versionAtLeast("", 2, 38));
    try std.testing.expect(!versionAtLeast("2.x", 2, 38));
}

test "mapAligned returns aligned memory" {
    const alignment = 4 << 20;
    const ptr = mapAligned(alignment, alignment) orelse return error.OutOfMemory;
    try std.testing.expect(@intFromPtr(ptr) % alignment == 0);
    ptr[alignment - 1] = 7;
    unmap(ptr, alignment);
}

test "remap grows and keeps contents" {
    const ptr = map(page_size_bytes) orelse return error.OutOfMemory;
    ptr[100] = 42;
    const grown = remap(ptr, page_size_bytes, 64 * page_size_bytes) orelse return error.OutOfMemory;
    try std.testing.expectEqual(@as(u8, 42), grown[100]);
    unmap(grown, 64 * page_size_bytes);
}

test "protectNone makes a guard page" {
    const ptr = map(2 * page_size_bytes) orelse return error.OutOfMemory;
    try std.testing.expect(protectNone(@alignCast(ptr + page_size_bytes), page_size_bytes));
    ptr[page_size_bytes - 1] = 1;
    // The kernel cannot read the guard page either: a write from it fails.
    var fds: [2]i32 = undefined;
    try std.testing.expectEqual(@as(usize, 0), linux.pipe(&fds));
    defer for (fds) |fd| close(fd);
    try std.testing.expectEqual(linux.E.FAULT, linux.E.init(linux.write(fds[1], ptr + page_size_bytes, 1)));
    try std.testing.expect(!failed(linux.write(fds[1], ptr + page_size_bytes - 1, 1)));
    unmap(ptr, 2 * page_size_bytes);
}

test "lock excludes" {
    var lock: Lock = .{};
    lock.lock();
    try std.testing.expect(lock.state.load(.monotonic) != 0);
    lock.unlock();
    try std.testing.expectEqual(@as(u32, 0), lock.state.load(.monotonic));
}

test "the clock is read through std's vDSO lookup, handed libc's vDSO" {
    const before = nowMs();
    // Set by the first read: without it std would settle on the system
    // call (and libc's clock_gettime would have served instead).
    try std.testing.expect(@atomicLoad(?[*]std.elf.Auxv, &linux.elf_aux_maybe, .acquire) != null);
    try std.testing.expectEqual(std.c.getauxval(std.elf.AT_SYSINFO_EHDR), linux.getauxval(std.elf.AT_SYSINFO_EHDR));
    try std.testing.expect(nowMs() -% before < 60_000);
}
