#!/bin/sh
# The release path, from the checkout root (make test-release):
# - make dist is reproducible: a copy of the tree at another, longer path,
#   with its own Zig cache, builds dist/ with the same SHA-256 as this one;
# - make release VERSION=<this version> there writes checksums that the
#   publish check (`deno task publish --dry-run`) accepts, and the check
#   refuses empty checksums, another version's, and hashes dist/ does not have;
# - make release refuses a dirty tree and a malformed version, and a new
#   version lands in native/build.zig.zon, deno.json, ffi/version.ts, the
#   library's hz_version() and ffi/checksums.ts;
# - the committed ffi/checksums.ts is accepted exactly when it matches dist/.
# Needs DENO and TOOLS (make passes them). Prints PASS/FAIL lines.
set -u
root=$(pwd)
DENO=${DENO:?} TOOLS=${TOOLS:?}
tmp=$(mktemp -d /tmp/hakozuna-release-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
copy=$tmp/another/checkout/at/a/longer/path/hakozuna
logs=$root/build/release
mkdir -p "$copy" "$logs"
passed=0
failed=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }
version=$(sed -n 's/^ *"version": "\(.*\)",/\1/p' deno.json | head -n1)
unset MAKEFLAGS MFLAGS
mk() { make --no-print-directory TOOLS="$TOOLS" "$@"; }

# The tree as it is (tracked and new files, not ignored ones), committed in
# the copy so that make release sees a clean tree.
git ls-files --cached --others --exclude-standard | while IFS= read -r f; do
  [ -e "$f" ] && printf '%s\n' "$f"
done | tar -cf - -T - | tar -xf - -C "$copy"
(cd "$copy" && git init -q && git add -A &&
  git -c user.name=test -c user.email=test@localhost commit -qm copy) ||
  { echo "FAIL setup: cannot commit the copy"; exit 1; }

# 1. make release VERSION=<this version>, in the copy with a fresh Zig cache.
if (cd "$copy" && ZIG_GLOBAL_CACHE_DIR=$tmp/zig-cache mk release VERSION="$version") \
  >"$logs/release.log" 2>&1; then
  pass "make release VERSION=$version in $copy"
else
  fail "make release" "$(tail -n 3 "$logs/release.log")"
fi
for f in dist/*.so; do
  a=$(sha256sum <"$f" | cut -d' ' -f1)
  b=$(sha256sum <"$copy/$f" 2>/dev/null | cut -d' ' -f1)
  if [ "$a" = "$b" ]; then pass "reproducible $f: $a in both checkouts"
  else fail "reproducible $f" "$a here, ${b:-nothing} in $copy"; fi
done

# 2. The publish check in the copy, as `deno task publish --dry-run` runs it.
publish() { (cd "$copy" && "$DENO" task publish --dry-run --allow-dirty) >"$logs/publish.log" 2>&1; }
if publish; then pass "publish check and dry run accept make release's checksums"
else fail "publish check after make release" "$(grep -v '^ *file://' "$logs/publish.log" | tail -n 4)"; fi

# 3. It refuses what would make every download fail.
good=$(cat "$copy/ffi/checksums.ts")
refuses() { # name pattern
  if publish; then fail "$1" "the publish check accepted it"
  elif grep -q "$2" "$logs/publish.log"; then pass "$1"
  else fail "$1" "refused without saying '$2': $(tail -n 2 "$logs/publish.log")"; fi
}
git -C "$copy" show HEAD:ffi/checksums.ts >"$copy/ffi/checksums.ts.committed"
sed -e 's/^export const CHECKSUMS_VERSION.*/export const CHECKSUMS_VERSION: string = "";/' \
  -e '/^export const CHECKSUMS:/,$d' "$copy/ffi/checksums.ts.committed" >"$copy/ffi/checksums.ts"
echo 'export const CHECKSUMS: Readonly<Record<string, string>> = {};' >>"$copy/ffi/checksums.ts"
refuses "publish check refuses empty checksums" "has no SHA-256 for libhakozuna-linux-x86_64.so"
printf '%s\n' "$good" | sed "s/^export const CHECKSUMS_VERSION.*/export const CHECKSUMS_VERSION: string = \"0.0.0-other\";/" >"$copy/ffi/checksums.ts"
refuses "publish check refuses another version's checksums" 'records version "0.0.0-other"'
printf '%s\n' "$good" | sed "s/\"[0-9a-f]\{64\}\"/\"$(printf '0%.0s' $(seq 64))\"/" >"$copy/ffi/checksums.ts"
refuses "publish check refuses hashes dist/ does not have" "is not the recorded 0000"
rm "$copy/ffi/checksums.ts.committed"
printf '%s\n' "$good" >"$copy/ffi/checksums.ts"

# 4. make release refuses a dirty tree and a malformed version, before
# building anything. (The release above changes ffi/checksums.ts unless the
# committed one was already this build's.)
(cd "$copy" && git -c user.name=test -c user.email=test@localhost commit -qam "release $version" >/dev/null)
echo "not committed" >"$copy/new-file.txt"
if (cd "$copy" && mk release VERSION=9.9.9) >"$logs/dirty.log" 2>&1; then
  fail "make release refuses a dirty tree" "it ran"
elif grep -q "uncommitted changes" "$logs/dirty.log"; then pass "make release refuses a dirty tree"
else fail "make release refuses a dirty tree" "$(tail -n 2 "$logs/dirty.log")"; fi
rm "$copy/new-file.txt"
if (cd "$copy" && mk release VERSION=1.2) >"$logs/badversion.log" 2>&1; then
  fail "make release refuses VERSION=1.2" "it ran"
elif grep -q "VERSION must be x.y.z" "$logs/badversion.log"; then pass "make release refuses VERSION=1.2"
else fail "make release refuses VERSION=1.2" "$(tail -n 2 "$logs/badversion.log")"; fi

# 5. A new version reaches every place that holds it.
if (cd "$copy" && ZIG_GLOBAL_CACHE_DIR=$tmp/zig-cache mk release VERSION=9.9.9) >"$logs/release-new.log" 2>&1 &&
  grep -q '\.version = "9\.9\.9",' "$copy/native/build.zig.zon" &&
  grep -q '"version": "9\.9\.9",' "$copy/deno.json" &&
  grep -q 'VERSION = "9\.9\.9";' "$copy/ffi/version.ts" &&
  grep -q 'CHECKSUMS_VERSION.* = "9\.9\.9";' "$copy/ffi/checksums.ts" &&
  grep -q "$(sha256sum <"$copy/dist/libhakozuna-linux-aarch64.so" | cut -d' ' -f1)" "$copy/ffi/checksums.ts" &&
  strings "$copy/dist/libhakozuna-linux-x86_64.so" | grep -qx '9\.9\.9'; then
  pass "make release VERSION=9.9.9 sets build.zig.zon, deno.json, version.ts, hz_version(), checksums"
else
  fail "make release VERSION=9.9.9" "$(tail -n 3 "$logs/release-new.log")"
fi

# 6. The committed checksums: accepted exactly when they are dist/'s.
match=yes
for f in dist/*.so; do
  grep -q "$(sha256sum <"$f" | cut -d' ' -f1)" ffi/checksums.ts || match=no
done
if "$DENO" run --allow-read tools/checksums.ts check --dist >"$logs/committed.log" 2>&1; then verdict=yes; else verdict=no; fi
if [ "$match" = "$verdict" ]; then
  if [ "$match" = yes ]; then pass "committed ffi/checksums.ts match this dist/ and are accepted"
  else pass "committed ffi/checksums.ts do not match this dist/ and are refused (make release VERSION=$version regenerates them)"; fi
else
  fail "committed checksums" "hashes match: $match, publish check accepts: $verdict ($(tail -n 2 "$logs/committed.log"))"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
