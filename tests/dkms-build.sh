#!/usr/bin/env bash
# dkms accepts dkms.conf and builds dm-repl.ko for the installed kernel, in
# private dkms and source trees (nothing is installed on the host).
set -uo pipefail
source "$(dirname "$0")/lib/tap.sh"
cd "$(dirname "$0")/.."

ver=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' dkms.conf)
kver=${KVER:-$(tests/guest/vm.sh --print-kver)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src/dm-repl-$ver" "$work/tree"
cp -r Kbuild dkms.conf kernel uapi "$work/src/dm-repl-$ver/"
dk=(dkms --dkmstree "$work/tree" --sourcetree "$work/src")

tap_plan 3
tap_check "dkms add accepts dkms.conf" "${dk[@]}" add -m dm-repl -v "$ver"
tap_check "dkms build succeeds for $kver" "${dk[@]}" build -m dm-repl -v "$ver" -k "$kver"
tap_check "dkms built dm-repl.ko for $kver" \
	test -f "$work/tree/dm-repl/$ver/$kver/$(uname -m)/module/dm-repl.ko"
tap_done
