#!/bin/sh
# Installs the Debian packages tests/programs/run.sh needs, when missing
# (CI starts from a bare Debian 12 and runs as root).
set -eu
updated=
apt_install() {
  [ -n "$updated" ] || { apt-get update -q; updated=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}
[ -x /usr/bin/python3 ] || apt_install python3
# The regression test modules ship in libpython3.X-testsuite, X as installed.
if ! /usr/bin/python3 -c 'import test.test_dict' 2>/dev/null; then
  apt_install "libpython$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')-testsuite"
fi
missing=
for p in sqlite3:sqlite3 xz:xz-utils git:git perl:perl-base gzip:gzip cc:gcc c++:g++; do
  command -v "${p%%:*}" >/dev/null 2>&1 || missing="$missing ${p#*:}"
done
# shellcheck disable=SC2086
[ -z "$missing" ] || apt_install $missing
