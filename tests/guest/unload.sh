#!/usr/bin/env bash
# Module lifecycle: dm-repl cannot be unloaded while a volume or an open
# group device uses it, and unloads cleanly once nothing does.
set -uo pipefail
source "$(dirname "$0")/../lib/tap.sh"
source "$(dirname "$0")/lib.sh"

tap_plan 5
ram_disks 2 16
S=$(blockdev --getsz /dev/ram0)
meta_create /dev/ram1 gu /dev/ram0
dm_create u0 "0 $S repl /dev/ram0 /dev/ram1 gu primary 2 ring_mb 2"
tap_check "rmmod refuses while a volume exists" bash -c '! rmmod dm_repl 2>/dev/null'
exec 3</dev/dm-repl/gu
dmsetup remove u0
tap_check "the open group device keeps the group" test "$(live_objects)" = "1 0 1"
tap_check "rmmod refuses while the group device is open" bash -c '! rmmod dm_repl 2>/dev/null'
exec 3<&-
tap_check "rmmod succeeds once nothing uses the module" rmmod dm_repl
tap_check "the target type is gone" bash -c '! dmsetup targets | grep -q "^repl "'
rmmod brd
tap_done
