# hakozuna — build, test and benchmark entry points.
#   make          installs the pinned toolchain (toolchain.env) and builds the library
#   make test     runs every test (installs what it needs)
#   make bench    runs the main allocator comparison
include toolchain.env

TOOLS ?= $(CURDIR)/.tools
ZIG := $(TOOLS)/zig-$(ZIG_VERSION)/ziglang/zig
DENO := $(TOOLS)/deno-$(DENO_VERSION)/bin/deno
PIP := python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-compile
export DENO_NO_UPDATE_CHECK := 1

LIB := native/zig-out/lib/libhakozuna.so
NATIVE_SRC := native/build.zig $(wildcard native/src/*.zig) native/include/hakozuna.h
OPTIMIZE ?= ReleaseFast
PREFIX ?= /usr/local

.PHONY: all tools zig deno test test-native test-c test-programs test-deno bench install clean

all: $(LIB)

tools: $(ZIG) $(DENO)
zig: $(ZIG)
deno: $(DENO)

$(ZIG): toolchain.env
	rm -rf $(TOOLS)/zig-$(ZIG_VERSION)
	$(PIP) --target $(TOOLS)/zig-$(ZIG_VERSION) ziglang==$(ZIG_VERSION)
	@test -x $@ || { echo "make: ziglang $(ZIG_VERSION) installed no $@" >&2; exit 1; }
	@touch $@

$(DENO): toolchain.env
	rm -rf $(TOOLS)/deno-$(DENO_VERSION)
	$(PIP) --target $(TOOLS)/deno-$(DENO_VERSION) deno==$(DENO_VERSION)
	@test -x $@ || { echo "make: deno $(DENO_VERSION) installed no $@" >&2; exit 1; }
	@touch $@

$(LIB): $(ZIG) $(NATIVE_SRC)
	cd native && $(ZIG) build -Doptimize=$(OPTIMIZE)

# --- benchmarks (bench/) ---------------------------------------------------
.PHONY: bench-programs peers

# C workloads and their helpers (rusage_exec, malloc_owner), built into build/bench/ with identical
# flags for every allocator (the allocator is swapped at run time by LD_PRELOAD).
BENCH_CC ?= cc
BENCH_CFLAGS := -O2 -pthread -std=gnu11 -Wall -Wextra
BENCH_PROGRAMS := random_mixed_mt_remote size_dist cache_thrash cache_scratch larson xmalloc realloc_grow \
	rusage_exec malloc_owner
BENCH_BIN := $(addprefix build/bench/,$(BENCH_PROGRAMS))
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

bench-programs: $(BENCH_BIN)

bench: $(DENO) $(BENCH_BIN) $(if $(HAKOZUNA_LIB),,$(LIB))
	$(DENO) run -A bench/compare.ts $(BENCH_FLAGS)

# Installs the peer allocators from Debian (needs root); skips when present.
peers:
	@missing=; for p in $(PEER_PACKAGES); do \
		dpkg-query -W -f='$${db:Status-Status}' $$p 2>/dev/null | grep -qx installed || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "peers: $(PEER_PACKAGES) already installed"; \
	elif [ "$$(id -u)" != 0 ]; then echo "peers: installing$$missing needs root (sudo make peers)" >&2; exit 1; \
	else apt-get update && apt-get install -y $$missing; fi

test: test-native test-c test-programs test-deno

test-native: $(ZIG)
	cd native && $(ZIG) build test

install: $(LIB)
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 0755 $(LIB) $(DESTDIR)$(PREFIX)/lib/libhakozuna.so
	install -m 0644 native/include/hakozuna.h $(DESTDIR)$(PREFIX)/include/hakozuna.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(shell sed -n 's/.*"\(.*\)".*/\1/p' native/version.txt 2>/dev/null || echo 0.1.0)|g' \
		native/hakozuna.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/hakozuna.pc

clean:
	rm -rf native/zig-out native/.zig-cache build
