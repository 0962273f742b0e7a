#!/usr/bin/env bash
# Guest smoke test: proves the VM harness end to end.  Run it in the guest:
#
#   tests/guest/vm.sh -- bash tests/guest/smoke.sh
#
# Checks the booted kernel, the dm core, and a dm-linear device over a brd
# RAM disk carrying O_DIRECT data.  Prints TAP; set-up and tear-down steps
# are not tests: their failure aborts the suite (Bail out!).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/lib/tap.sh
source "$here/../lib/tap.sh"

if [[ "${GUEST:-}" != 1 ]]; then
	echo "smoke.sh must run in the guest: tests/guest/vm.sh -- bash tests/guest/smoke.sh" >&2
	exit 2
fi

dev=smoke_linear
work=$(mktemp -d)

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	dmsetup remove "$dev" 2>/dev/null || true
	rmmod brd 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

tap_plan 4

if [[ "$(uname -r)" == "${KVER:-}" ]]; then
	tap_ok "uname -r is KVER ($KVER)"
else
	tap_fail "uname -r is KVER" "uname -r=$(uname -r) KVER=${KVER:-unset}"
fi

tap_check "dmsetup targets lists linear" bash -c 'dmsetup targets | grep -qw linear'

# 64 MiB RAM disk (rd_size is in KiB).
tap_setup "modprobe brd" modprobe brd rd_nr=1 rd_size=65536

sectors=$(blockdev --getsz /dev/ram0 2>/dev/null || echo 0)
if dmsetup create "$dev" --table "0 $sectors linear /dev/ram0 0" && dmsetup mknodes "$dev" &&
	[[ -b /dev/mapper/$dev ]]; then
	tap_ok "dm-linear over brd ($sectors sectors)"
else
	tap_fail "dm-linear over brd" "dmsetup create/mknodes failed or no block node"
fi

# 4 MiB of random data at a 1 MiB offset, written and read back with O_DIRECT.
head -c $((4 << 20)) /dev/urandom >"$work/in"
if dd if="$work/in" of="/dev/mapper/$dev" bs=1M seek=1 oflag=direct conv=fsync status=none &&
	dd if="/dev/mapper/$dev" of="$work/back" bs=1M skip=1 count=4 iflag=direct status=none &&
	cmp -s "$work/in" "$work/back"; then
	tap_ok "O_DIRECT data reads back identical"
else
	tap_fail "O_DIRECT data reads back identical" "dd or cmp failed"
fi

# Tear-down: not tests, but a failure ends the suite as failed.
tap_setup "dmsetup remove" dmsetup remove "$dev"
tap_setup "rmmod brd" rmmod brd

tap_done
