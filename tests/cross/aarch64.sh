#!/bin/sh
# Runs the aarch64 release artifact, not only inspects it: the C contract test
# and the cross-thread test (tests/c/), cross-compiled for aarch64, run under
# qemu-user with the library preloaded, in the `balanced` and `hardened` lanes.
#   tests/cross/aarch64.sh LIB BIN
# Installs qemu-user, gcc-aarch64-linux-gnu and libc6-dev-arm64-cross when
# missing (as root). Under emulation the long loops run at TEST_SCALE_PERCENT
# (default 10) of their native length. Prints "PASS name" or "FAIL name:
# reason" per test, then "N passed, M failed"; logs are kept in BIN/logs.
set -u
lib=$(readlink -f "$1")
bin=$2
logs=$bin/logs
sysroot=/usr/aarch64-linux-gnu
CC_AARCH64=${CC_AARCH64:-aarch64-linux-gnu-gcc}
TEST_SCALE_PERCENT=${TEST_SCALE_PERCENT:-10}
export TEST_SCALE_PERCENT
here=$(dirname "$0")
limit="timeout -k 10 600"
passed=0
failed=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

if ! command -v qemu-aarch64 >/dev/null || ! command -v "$CC_AARCH64" >/dev/null ||
  [ ! -e "$sysroot/lib/ld-linux-aarch64.so.1" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "FAIL setup: needs qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross (apt-get install, as root)"
    exit 1
  fi
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    qemu-user gcc-aarch64-linux-gnu libc6-arm64-cross libc6-dev-arm64-cross; } >/dev/null ||
    { echo "FAIL setup: apt-get install failed"; exit 1; }
fi
if [ ! -f "$lib" ]; then
  echo "FAIL setup: no library at $1"
  exit 1
fi
mkdir -p "$logs"

# The tests as tests/c builds them, for aarch64 (its glibc is Debian's 2.36).
for t in contract xthread; do
  $CC_AARCH64 -O2 -Wall -Wextra -Werror -pthread -fno-builtin -Inative/include \
    -o "$bin/$t" "tests/c/$t.c" || { echo "FAIL setup: cannot build $t"; exit 1; }
done
$CC_AARCH64 -O2 -Wall -Wextra -Werror -o "$bin/probe" "$here/probe.c" ||
  { echo "FAIL setup: cannot build probe"; exit 1; }

# qemu's -E sets a variable for the emulated program only: LD_PRELOAD in
# qemu's own environment would be applied to the x86_64 qemu binary.
emu() { $limit qemu-aarch64 -L "$sysroot" "$@"; }

if emu -E LD_PRELOAD="$lib" "$bin/probe" >"$logs/probe.log" 2>&1; then
  pass "aarch64-preload ($(cat "$logs/probe.log"))"
else
  fail aarch64-preload "$(head -c 300 "$logs/probe.log")"
fi

# The contract transcript under hakozuna must equal glibc's, both emulated.
emu "$bin/contract" >"$logs/contract.glibc.txt" 2>"$logs/contract.glibc.err" ||
  { echo "FAIL setup: the glibc run of contract failed ($logs/contract.glibc.err)"; exit 1; }

# In `balanced` and in `hardened`, whose free orders its stores with an
# exchange on every CPU but x86 (native/src/hardened.zig, `markFreeing`).
for lane in balanced hardened; do
  name=aarch64-contract; [ "$lane" = balanced ] || name=$name-$lane
  emu -E LD_PRELOAD="$lib" -E HZ_POLICY=$lane "$bin/contract" >"$logs/contract.$lane.txt" 2>"$logs/contract.$lane.err"
  st=$?
  diff -u "$logs/contract.glibc.txt" "$logs/contract.$lane.txt" >"$logs/contract.$lane.diff"
  if [ $st -ne 0 ]; then
    fail $name "exit status $st after $(wc -l <"$logs/contract.$lane.txt") lines (stderr: $(head -c 200 "$logs/contract.$lane.err"))"
  elif [ -s "$logs/contract.$lane.diff" ]; then
    fail $name "transcript differs from glibc's: first: $(grep -m1 '^+[^+]' "$logs/contract.$lane.diff" | cut -c2-200) ($logs/contract.$lane.diff)"
  else
    pass "$name ($(wc -l <"$logs/contract.$lane.txt") transcript lines, $(grep -m1 '^random mix' "$logs/contract.$lane.txt" | cut -d' ' -f4) random calls)"
  fi

  name=aarch64-xthread; [ "$lane" = balanced ] || name=$name-$lane
  if emu -E LD_PRELOAD="$lib" -E HZ_POLICY=$lane "$bin/xthread" >"$logs/xthread.$lane.log" 2>&1; then
    pass "$name ($(head -n1 "$logs/xthread.$lane.log"))"
  else
    fail $name "$(grep -m1 '^FAIL: ' "$logs/xthread.$lane.log" | cut -c7-300)"
  fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
