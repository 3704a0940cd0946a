#!/bin/sh
# Real programs nobody here wrote, run twice: once as they are (glibc malloc)
# and once with LIB preloaded. Their outputs must be identical.
#   tests/programs/run.sh LIB
# Prints "PASS name" or "FAIL name: reason" per program, then
# "N passed, M failed"; exits 1 if any failed. Outputs and logs stay in
# build/programs/<name>/{glibc,hakozuna}/.
set -u
here=$(cd "$(dirname "$0")" && pwd)
lib=$(readlink -f "$1")
out=build/programs
rm -rf "$out"
mkdir -p "$out"
out=$(cd "$out" && pwd)
passed=0
failed=0
limit="timeout -k 10 900"

pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

# The program under test; everything else (checksums, comparisons) runs plain.
hz() {
  if [ -n "$preload" ]; then LD_PRELOAD=$preload $limit "$@"; else $limit "$@"; fi
}

# Python runs a selection of its own regression tests (Debian's
# libpython3.x-testsuite) with PYTHONMALLOC=malloc, so every object goes
# through malloc instead of pymalloc's arenas. Modules that need no network
# and finish in about a minute on two cores.
PY_TESTS="test_dict test_list test_set test_tuple test_unicode test_string test_format
  test_bytes test_memoryview test_array test_struct test_json test_re test_csv test_difflib
  test_collections test_deque test_heapq test_sort test_itertools test_functools test_copy
  test_pprint test_pickle test_zlib test_hashlib test_decimal test_fractions test_statistics
  test_random test_math test_long test_float test_enum test_dataclasses test_typing test_ast
  test_compile test_tokenize test_codecs test_xml_etree test_gc test_weakref test_mmap
  test_threading test_subprocess test_os test_shutil test_tempfile"

# Outcome of every test case ("passed test.test_dict....") and regrtest's status.
python_outcomes() { # modules...
  hz env PYTHONMALLOC=malloc /usr/bin/python3 -m test -j2 --junit-xml "$PWD/junit.xml" "$@" >>regrtest.log 2>&1
  echo "regrtest exit status $?"
  [ -f junit.xml ] && /usr/bin/python3 "$here/junit_outcomes.py" junit.xml
  rm -f junit.xml
}

prog_python() {
  # shellcheck disable=SC2086
  python_outcomes $PY_TESTS
}

prog_sqlite() {
  hz sqlite3 workload.db <"$here/sqlite-workload.sql"
  echo "sqlite3 exit status $?"
}

# xz (two threads, small blocks so both work) and gzip round trips.
prog_compress() {
  hz xz -T2 -3 --block-size=1MiB -c "$out/input.txt" >input.xz
  echo "xz exit status $?"
  sha256sum <input.xz
  hz xz -T2 -d -c input.xz | sha256sum
  hz gzip -9 -c "$out/input.txt" >input.gz
  echo "gzip exit status $?"
  sha256sum <input.gz
  hz gzip -d -c input.gz | sha256sum
}

# sort with a small buffer and two threads: temporary files and merges.
prog_sort() {
  LC_ALL=C hz sort --parallel=2 -S 1M -T . "$out/input.txt" | sha256sum
  LC_ALL=C hz sort --parallel=2 -S 4M -T . -t ' ' -k2,2 -k1,1r -s "$out/input.txt" | sha256sum
}

# git: commits with fixed identities and dates, a full repack, fsck, log,
# diff, archive.
prog_git() {
  export GIT_CONFIG_NOSYSTEM=1 HOME=$PWD GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.com \
    GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.com
  hz git init -q -b main repo && cd repo || return
  for c in 1 2 3 4 5 6; do
    split -n l/40 --numeric-suffixes=1 "$out/input.txt" "part$c-"
    sed -i "s/ka/k$c/g" part$c-0[1-9]
    export GIT_AUTHOR_DATE="2026-01-0$c 12:00:00 +0000" GIT_COMMITTER_DATE="2026-01-0$c 12:00:00 +0000"
    hz git add -A && hz git commit -q -m "commit $c"
    echo "commit $c exit status $?"
    rm -f part$((c - 1))-* 2>/dev/null
  done
  hz git repack -q -a -d -f --threads=2 --window=20
  echo "repack exit status $?"
  hz git fsck --full --strict 2>&1
  echo "fsck exit status $?"
  hz git log --stat --format='%H %s'
  hz git diff --stat HEAD~3 HEAD
  hz git archive --format=tar HEAD | sha256sum
  hz git count-objects -v | grep -E '^(count|in-pack|packs|garbage)'
}

# The C and C++ compilers (cc1 and cc1plus, heavy users of malloc and of
# their own obstacks) building this repository's C workloads and tests and
# its C++ test at -O2; the objects must be the same bytes. The sources are
# named by one absolute path in both runs, which the objects record.
prog_cc() {
  src=$(cd "$here/../.." && pwd)
  for c in "$src"/bench/*.c "$src"/tests/c/*.c; do
    rm -f obj.o
    hz cc -O2 -std=gnu11 -pthread -fno-builtin -I"$src/native/include" -c "$c" -o obj.o || echo "cc $c exit status $?"
    sha256sum <obj.o
  done
  rm -f obj.o
  hz c++ -O2 -std=c++17 -pthread -c "$src/tests/c/cxxnew.cc" -o obj.o || echo "c++ exit status $?"
  sha256sum <obj.o
}

prog_perl() {
  hz perl "$here/perl-workload.pl" "$out/input.txt"
  echo "perl exit status $?"
}

# Runs prog_NAME once plain and once preloaded, each in a fresh directory,
# and compares what they printed on stdout.
compare() { # name
  for mode in glibc hakozuna; do
    d=$out/$1/$mode
    mkdir -p "$d"
    if [ $mode = hakozuna ]; then preload=$lib; else preload=; fi
    (cd "$d" && "prog_$1") >"$d/stdout" 2>"$d/stderr"
  done
  diff -u "$out/$1/glibc/stdout" "$out/$1/hakozuna/stdout" >"$out/$1/diff"
}

run() { # name
  compare "$1"
  if [ ! -s "$out/$1/diff" ]; then
    pass "$1"
    return
  fi
  if [ "$1" = python ]; then
    # A timing-sensitive test case can fail once on a loaded machine: rerun
    # the modules whose outcomes differ, in both modes, before judging.
    mods=$(grep '^[-+][a-z]* test\.' "$out/python/diff" | cut -d' ' -f2 | cut -d. -f2 | sort -u | tr '\n' ' ')
    if [ -n "$mods" ]; then
      PY_TESTS=$mods
      mv "$out/python" "$out/python-first"
      compare python
      [ -s "$out/python/diff" ] || { pass "python (after a rerun of $mods)"; return; }
    fi
  fi
  fail "$1" "output differs under preload ($(grep -c '^[-+][^-+]' "$out/$1/diff") lines), first: $(grep -m1 '^+[^+]' "$out/$1/diff" | cut -c1-160) (diff: $out/$1/diff)"
  sed -n '1,30s/^/    /p' "$out/$1/diff"
}

if [ ! -f "$lib" ]; then
  echo "FAIL setup: no library at $1"
  echo "0 passed, 1 failed"
  exit 1
fi

# The wrapper really loads the library (ld.so only warns about a bad path).
preload=$lib
if ! hz cat /proc/self/maps | grep -qF "$lib"; then
  echo "FAIL setup: $lib does not show in /proc/self/maps under LD_PRELOAD"
  echo "0 passed, 1 failed"
  exit 1
fi

perl "$here/gen-input.pl" 150000 >"$out/input.txt"
for p in python sqlite compress sort git perl cc; do run $p; done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
