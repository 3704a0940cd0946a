#!/bin/sh
# Runs the C tests (built by `make test-c` into BIN) against the library LIB.
#   tests/c/run.sh LIB BIN
# Prints "PASS name" or "FAIL name: reason" per test, then "N passed, M failed";
# exits 1 if any failed. Each test's full output is kept in BIN/logs/NAME.log.
set -u
lib=$(readlink -f "$1")
bin=$2
logs=$bin/logs
mkdir -p "$logs"
passed=0
failed=0
# A hung test fails instead of blocking the run.
limit="timeout -k 10 600"

pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

# Reason for a failed run: the first "FAIL: " line of its log, else how it ended.
reason() { # name status
  r=$(grep -m1 '^FAIL: ' "$logs/$1.log" | cut -c7-300)
  if [ -n "$r" ]; then echo "$r"
  elif [ "$2" -eq 124 ] || [ "$2" -eq 137 ]; then echo "timed out (log: $logs/$1.log)"
  elif [ "$2" -gt 128 ]; then echo "killed by signal $(($2 - 128)) (log: $logs/$1.log)"
  else echo "exit status $2 (log: $logs/$1.log)"
  fi
}

# check NAME COMMAND...: passes when COMMAND exits 0.
check() {
  name=$1
  shift
  "$@" >"$logs/$name.log" 2>&1
  st=$?
  if [ $st -eq 0 ]; then pass "$name"; else fail "$name" "$(reason "$name" $st)"; fi
}

if [ ! -f "$lib" ]; then
  echo "FAIL setup: no library at $1"
  echo "0 passed, 1 failed"
  exit 1
fi

# The library really is loaded under LD_PRELOAD (ld.so only warns otherwise).
if LD_PRELOAD="$lib" cat /proc/self/maps 2>"$logs/preload.log" | grep -qF "$lib"; then
  pass preload-loads
else
  fail preload-loads "$lib does not show in /proc/self/maps under LD_PRELOAD ($(head -c 200 "$logs/preload.log"))"
fi

# The contract test itself is sound: built with ASan and UBSan, without
# preload (a sanitizer brings its own allocator), it runs clean.
check contract-sanitized env ASAN_OPTIONS=allocator_may_return_null=1 $limit "$bin/contract-asan"

# Differential contract test: the transcript under hakozuna, in every policy
# lane, must equal glibc's.
$limit "$bin/contract" >"$logs/contract.glibc.txt" 2>"$logs/contract.glibc.err"
st=$?
if [ $st -ne 0 ]; then
  fail contract "the glibc run itself failed with status $st ($logs/contract.glibc.err)"
else
  for lane in balanced scale compact hardened; do
    name=contract-$lane
    HZ_POLICY=$lane LD_PRELOAD="$lib" $limit "$bin/contract" >"$logs/$name.txt" 2>"$logs/$name.err"
    st=$?
    diff -u "$logs/contract.glibc.txt" "$logs/$name.txt" >"$logs/$name.diff"
    if [ $st -ne 0 ]; then
      fail "$name" "exit status $st after $(wc -l <"$logs/$name.txt") transcript lines; last: $(tail -n1 "$logs/$name.txt") (stderr: $(head -c 200 "$logs/$name.err"))"
    elif [ -s "$logs/$name.diff" ]; then
      fail "$name" "transcript differs from glibc's: $(grep -c '^+[^+]' "$logs/$name.diff") lines, first: $(grep -m1 '^+[^+]' "$logs/$name.diff" | cut -c2-200) (diff: $logs/$name.diff)"
      sed -n '1,40s/^/    /p' "$logs/$name.diff"
    else
      pass "$name"
    fi
  done
fi

# The threaded tests run in every policy lane too: lanes change the paths
# that remote frees, thread exit and purging take.
for t in xthread churn forkstress idlepool neighbours; do
  for lane in balanced scale compact hardened; do
    check "$t-$lane" env HZ_POLICY=$lane LD_PRELOAD="$lib" $limit "$bin/$t"
  done
done
for lane in balanced hardened; do
  check "badfree-$lane" env HZ_POLICY=$lane LD_PRELOAD="$lib" $limit "$bin/badfree"
done

# aligned_alloc follows the running glibc (2.38 and later refuse an alignment
# that is not a power of two); the second binary says its glibc is 2.39.
check aligned-alloc env LD_PRELOAD="$lib" $limit "$bin/alignedalloc"
check aligned-alloc-glibc239 env LD_PRELOAD="$lib" $limit "$bin/alignedalloc-glibc239"

# A library's constructor allocates before hakozuna's constructor ran, and its
# destructor frees at exit: the first malloc already follows the lane.
for lane in balanced hardened; do
  check "early-$lane" env HZ_POLICY=$lane LD_PRELOAD="$lib $bin/libearly.so" $limit true
done

# C++'s operator new and delete are hakozuna's, in every form; out of memory
# still reaches the program's new_handler and std::bad_alloc.
for lane in balanced hardened; do
  check "cxxnew-$lane" env HZ_POLICY=$lane LD_PRELOAD="$lib" $limit "$bin/cxxnew"
done

# C23's free_sized and free_aligned_sized are hakozuna's and free as free
# does; in the hardened lane a size other than the one asked for aborts.
for lane in balanced hardened; do
  check "freesized-$lane" env HZ_POLICY=$lane LD_PRELOAD="$lib" $limit "$bin/freesized"
done

# Heap misuse (use after free, junk, small overflows) never makes malloc
# hand out a chosen, misaligned or foreign pointer, in every lane; in the
# hardened lane (HZ_TEST_HARDENED=1) every misuse aborts, a double free
# after reuse too, and writing past a large block faults.
for lane in balanced scale compact; do
  check "hardening-$lane" env -u HZ_TEST_HARDENED HZ_POLICY=$lane LD_PRELOAD="$lib" $limit "$bin/hardening"
done
check hardening-hardened env HZ_POLICY=hardened HZ_TEST_HARDENED=1 LD_PRELOAD="$lib" $limit "$bin/hardening"
# malloc(0) as a 16-byte block: reading and writing it must run.
check hardening-empty-blocks env -u HZ_TEST_HARDENED HZ_EMPTY_FAULTS=0 LD_PRELOAD="$lib" $limit "$bin/hardening"

# Give-back: 600 MiB of small blocks freed by other threads; RSS falls back
# to within 64 MiB of the start within 1 s, without hz_collect.
check giveback env HZ_POLICY=balanced LD_PRELOAD="$lib" $limit "$bin/giveback"
# The same when the threads exit before any block is freed: the frees come
# back to heaps whose threads are gone (glibc 2.36, mimalloc 2.0.9 and
# tcmalloc 2.10 keep all 600 MiB there).
check giveback-orphaned env HZ_POLICY=balanced LD_PRELOAD="$lib" $limit "$bin/giveback" orphaned
# The same with large blocks (256 KiB to 4 MiB): freed mappings are cached
# for reuse, at most half the lane's cache once no large block is live.
check giveback-large env HZ_POLICY=balanced LD_PRELOAD="$lib" $limit "$bin/giveback" large
# The same with the threads still alive (idle) while RSS is polled: the
# threads that free sweep the idle owners' inboxes (glibc 2.36 keeps 620 MiB).
check giveback-idle env HZ_POLICY=balanced LD_PRELOAD="$lib" $limit "$bin/giveback" idle
# The same with medium blocks (16 to 256 KiB), which go to their owner one
# at a time.
check giveback-idle-medium env HZ_POLICY=balanced LD_PRELOAD="$lib" $limit "$bin/giveback" idle-medium

# 20000 short-lived threads: RSS at the end at most glibc's (the same
# program without preload) + 2 MiB. An exited thread's heap keeps each
# class's current span for the thread that adopts it, and the free slices
# a live heap keeps; it purges the rest.
glibc_kib=$($limit "$bin/manythreads" 2>"$logs/manythreads.glibc.log" | sed -n 's/^rss_kib //p')
check manythreads env HZ_POLICY=balanced LD_PRELOAD="$lib" $limit "$bin/manythreads" $((${glibc_kib:-0} + 2048))

# 3000 threads alive at once, each freeing its neighbour's block as they
# end: RSS at the end at most what the same threads leave when they
# allocate nothing (`bare`, without preload) + 10 KiB per thread (8 of it
# the two pages of each heap that the registry keeps) + 4 MiB. Measured
# 2026-12-05: 72 MiB above bare before aged orphans gave back what reached
# them after their thread exited and idle heaps their per-class pages, 26
# MiB after.
bare_kib=$($limit "$bin/livethreads" bare 2>"$logs/livethreads.bare.log" | sed -n 's/^rss_kib //p')
check livethreads env HZ_POLICY=balanced LD_PRELOAD="$lib" $limit "$bin/livethreads" $((${bare_kib:-0} + 3000 * 10 + 4096))

check api env -u HZ_POLICY -u HZ_STATS -u LD_PRELOAD $limit "$bin/api"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
