#!/bin/sh
# make release VERSION=x.y.z (see the Makefile): on a clean tree, writes the
# version into native/build.zig.zon (the library's hz_version()), deno.json
# and ffi/version.ts, builds dist/ and writes ffi/checksums.ts from it, then
# runs the publish check. Nothing is committed: the last lines say what to do.
set -eu
version=$1
DENO=${DENO:-deno}
MAKE=${MAKE:-make}
die() { echo "make release: $*" >&2; exit 1; }

echo "$version" | grep -Eq '^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$' ||
  die "VERSION must be x.y.z (or x.y.z-suffix), got '$version'"
git rev-parse --is-inside-work-tree >/dev/null 2>&1 || die "not a git checkout"
dirty=$(git status --porcelain)
[ -z "$dirty" ] || die "the tree has uncommitted changes; commit or stash them first:
$dirty"

sed -i "s/^\(\s*\.version = \)\"[^\"]*\",/\1\"$version\",/" native/build.zig.zon
sed -i "0,/^\(\s*\"version\": \)\"[^\"]*\",/s//\1\"$version\",/" deno.json
sed -i "s/^export const VERSION = \"[^\"]*\";/export const VERSION = \"$version\";/" ffi/version.ts
for f in native/build.zig.zon deno.json ffi/version.ts; do
  grep -qF "\"$version\"" "$f" || die "could not set the version in $f"
done

"$MAKE" --no-print-directory dist
"$DENO" run --allow-read --allow-write=ffi/checksums.ts tools/checksums.ts write
"$DENO" run --allow-read tools/checksums.ts check --dist

cat <<NEXT
make release: $version is ready in the tree:
$(sha256sum dist/*.so | sed 's/^/  /')
Next:
  git commit -am "Release $version" && git tag v$version && git push origin HEAD v$version
The release workflow (.github/workflows/release.yml) rebuilds dist/, compares
it with ffi/checksums.ts, uploads the two files to the release v$version and
publishes the package to JSR.
NEXT
