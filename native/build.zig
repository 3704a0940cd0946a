//! Builds libhakozuna.so (the preloadable malloc replacement and the hz_* API)
//! and runs the boxes' unit tests.
//!
//!   zig build                      -> zig-out/lib/libhakozuna.so
//!   zig build -Dsafety=true        -> the same with every invariant checked
//!   zig build test                 -> every box's unit tests
//!   zig build -Dtarget=aarch64-linux-gnu --prefix DIR   cross build (make dist)
const std = @import("std");
const manifest = @import("build.zig.zon");

pub fn build(b: *std.Build) void {
    // Baseline CPU by default: the library is preloaded into programs on
    // other machines, and `native` here would emit AVX-512 (SIGILL elsewhere,
    // and under valgrind). `-Dcpu=native` opts in.
    const target = b.standardTargetOptions(.{ .default_target = .{ .cpu_model = .baseline } });
    // Safety: assertions kept (ReleaseSafe) and the span and heap
    // invariants checked at refill, retire and collect. `make test` runs
    // the C tests once against this build.
    const safety = b.option(bool, "safety", "Check every invariant (ReleaseSafe, Span.check, Heap.check)") orelse false;
    // An allocator is only useful optimised: release is the default here.
    const optimize = b.option(std.builtin.OptimizeMode, "optimize", "Optimization mode (default ReleaseFast, ReleaseSafe with -Dsafety)") orelse
        @as(std.builtin.OptimizeMode, if (safety) .ReleaseSafe else .ReleaseFast);

    // Release artifacts (make dist) are stripped: debug info holds absolute
    // paths (checkout, Zig cache), and without it the same sources give the
    // same bytes from any directory. A local build keeps it for debuggers.
    const strip = b.option(bool, "strip", "Omit debug info (default false)") orelse false;

    const options = b.addOptions();
    options.addOption([]const u8, "version", manifest.version);
    options.addOption(bool, "safety", safety);

    const lib_module = b.createModule(.{
        .root_source_file = b.path("src/shim.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
        .pic = true,
        // The allocator must not unwind through foreign frames nor keep a frame
        // pointer it never needs; it is called from every corner of a process.
        .omit_frame_pointer = optimize != .Debug,
        .error_tracing = false,
        .strip = strip,
    });
    lib_module.addOptions("build_options", options);

    const lib = b.addLibrary(.{
        .linkage = .dynamic,
        .name = "hakozuna",
        .root_module = lib_module,
        // The initial-exec TLS access (tcache.zig) is asm that only LLVM's
        // assembler takes; the self-hosted backend would be used for Debug.
        .use_llvm = true,
    });
    // A build id computed from the contents: identical builds get identical ids.
    lib.build_id = .sha1;
    b.installArtifact(lib);

    const test_module = b.createModule(.{
        .root_source_file = b.path("src/shim.zig"),
        .target = target,
        .optimize = b.option(std.builtin.OptimizeMode, "test-optimize", "Optimize mode of the unit tests") orelse .Debug,
        .link_libc = true,
    });
    // The unit tests check invariants, and compare the code with the
    // public header and the README (one source of truth for stats and knobs).
    const test_options = b.addOptions();
    test_options.addOption([]const u8, "version", manifest.version);
    test_options.addOption(bool, "safety", true);
    test_options.addOption([]const u8, "src_dir", b.pathFromRoot("src"));
    test_options.addOption([]const u8, "hakozuna_h", readRepoFile(b, "include/hakozuna.h"));
    test_options.addOption([]const u8, "readme_md", readRepoFile(b, "../README.md"));
    test_module.addOptions("build_options", test_options);
    const unit_tests = b.addTest(.{ .root_module = test_module });
    const run_tests = b.addRunArtifact(unit_tests);
    const test_step = b.step("test", "Run the boxes' unit tests");
    test_step.dependOn(&run_tests.step);
}

fn readRepoFile(b: *std.Build, sub_path: []const u8) []const u8 {
    return b.build_root.handle.readFileAlloc(b.allocator, sub_path, 1 << 20) catch |err|
        std.debug.panic("cannot read {s}: {s}", .{ sub_path, @errorName(err) });
}
