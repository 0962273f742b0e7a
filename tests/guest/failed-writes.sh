#!/usr/bin/env bash
# A write that fails on the data device: its record is DISCARDED in the ring,
# the range it may have touched is dirty, the writer sees the error, and the
# writes around it are captured as usual.
set -uo pipefail
source "$(dirname "$0")/../lib/tap.sh"
source "$(dirname "$0")/lib.sh"

tap_plan 7
tap_strict
ram_disks 2 16
S=$(blockdev --getsz /dev/ram0)
HALF=$((S / 2))
# The data device: its first half works, its second half fails every I/O.
dm_create halfbad "0 $HALF linear /dev/ram0 0
$HALF $HALF error"
meta_create /dev/ram1 gfw /dev/mapper/halfbad
dm_create fw "0 $S repl /dev/mapper/halfbad /dev/ram1 gfw primary 4 ring_mb 2 region_kb 64"

dd if=/dev/urandom of=/dev/mapper/fw bs=64k count=1 oflag=direct status=none
tap_check "a write to the failing half fails for the writer" \
	bash -c "! dd if=/dev/urandom of=/dev/mapper/fw bs=64k count=1 seek=$((HALF / 128)) oflag=direct status=none 2>/dev/null"
dd if=/dev/urandom of=/dev/mapper/fw bs=64k count=1 seek=1 oflag=direct status=none

stats=$("$REPLTOOL" dump --stats gfw)
tap_diag "$stats"
tap_check "the failed write's record is discarded" grep -q "discarded_slots 1$" <<<"$stats"
tap_check "the good writes are captured" grep -Eq "WRITE +records 2 bytes" <<<"$stats"
# Outside the ring the failed write is a VOID record in its place: seq 3 of
# 4 (seq 1 is the stream's STREAM record).
tap_check "dump shows it as VOID between the good ones" \
	bash -c "\"$REPLTOOL\" dump gfw | awk '{ print \$1, (\$0 ~ /VOID/) }' | tr '\n' ' ' | grep -qx '1 0 2 0 3 1 4 0 '"
# status: start len repl primary group vol state seq released used/size dirty/regions overflows waits timeouts discarded, generation
read -r _ _ _ _ _ _ state _ _ _ dirty _ _ _ discarded _ <<<"$(dmsetup status fw)"
tap_check "the failed range is dirty" test "$dirty" = "1/$((S / 128))"
tap_check "status counts the discarded record" test "$discarded" = 1
tap_check "the group is behind" test "$state" = behind
dmsetup remove fw
dmsetup remove halfbad
rmmod brd
tap_done
