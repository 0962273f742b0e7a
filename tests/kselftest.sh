#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# kselftest.sh [DESTDIR]: put the kernel's kselftest harness headers
# (kselftest_harness.h, kselftest.h) into DESTDIR (default build/kselftest),
# taken from Debian's linux-source-6.1 tarball. They are build inputs, not
# project files: never commit them.
set -eu

dest=${1:-build/kselftest}
tarball=${KSELFTEST_TARBALL:-/usr/src/linux-source-6.1.tar.xz}
top=linux-source-6.1
dir=tools/testing/selftests

if [ -f "$dest/kselftest_harness.h" ] && [ -f "$dest/kselftest.h" ]; then
	exit 0
fi
if [ ! -r "$tarball" ]; then
	echo "kselftest.sh: $tarball: not readable (apt-get install linux-source-6.1)" >&2
	exit 1
fi

mkdir -p "$dest"
tmp=$(mktemp -d "$dest/.extract.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
tar -xJf "$tarball" -C "$tmp" \
	"$top/$dir/kselftest_harness.h" "$top/$dir/kselftest.h"
# Rename into place only once both are there, so a half run leaves nothing.
mv "$tmp/$top/$dir/kselftest.h" "$dest/kselftest.h"
mv "$tmp/$top/$dir/kselftest_harness.h" "$dest/kselftest_harness.h"
