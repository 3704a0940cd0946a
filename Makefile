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

test: test-native test-c test-programs test-deno

test-native: $(ZIG)
	cd native && $(ZIG) build test

# C tests (tests/c/run.sh says what each checks), built with the system cc and
# run under LD_PRELOAD=$(LIB); `make test-c LIB=/path/libhakozuna.so` tests another build.
TEST_CFLAGS := -O2 -Wall -Wextra -Werror -pthread -fno-builtin -Inative/include
TEST_SANITIZE := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all
C_TESTS := contract xthread churn forkstress badfree

build/c/%: tests/c/%.c tests/c/util.h native/include/hakozuna.h
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $<

build/c/contract-asan: tests/c/contract.c tests/c/util.h
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) $(TEST_SANITIZE) -o $@ $<

test-c: $(LIB)
	@command -v $(CC) >/dev/null 2>&1 || { apt-get update && apt-get install -y gcc libc6-dev; }
	$(MAKE) --no-print-directory $(addprefix build/c/,$(C_TESTS) contract-asan)
	@# api links the library itself: relinked every run, so it uses this $(LIB)
	$(CC) $(TEST_CFLAGS) -o build/c/api tests/c/api.c -L$(dir $(LIB)) -lhakozuna -Wl,-rpath,$(abspath $(dir $(LIB)))
	tests/c/run.sh $(LIB) build/c

# Real programs (python3's own tests, sqlite3, xz, gzip, sort, git, perl), each
# run plain and under LD_PRELOAD=$(LIB); outputs must be identical.
test-programs: $(LIB)
	tests/programs/install-deps.sh
	tests/programs/run.sh $(LIB)

install: $(LIB)
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 0755 $(LIB) $(DESTDIR)$(PREFIX)/lib/libhakozuna.so
	install -m 0644 native/include/hakozuna.h $(DESTDIR)$(PREFIX)/include/hakozuna.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(shell sed -n 's/.*"\(.*\)".*/\1/p' native/version.txt 2>/dev/null || echo 0.1.0)|g' \
		native/hakozuna.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/hakozuna.pc

clean:
	rm -rf native/zig-out native/.zig-cache build
