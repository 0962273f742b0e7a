#!/usr/bin/env bash
# Role changes: planned failover and back. A role changes only while every
# volume of the group is suspended. A primary is demoted only when
# no volume is open and every record has been released (unless forced,
# which marks the unreleased ones dirty); the peer is promoted with a new
# generation, its sequences continue where the old primary's stopped, and
# replication in reverse leaves the two disks identical.
set -uo pipefail
source "$(dirname "$0")/../lib/tap.sh"
source "$(dirname "$0")/lib.sh"

ram_disks 4 64
S=$(blockdev --getsz /dev/ram0)

# ship_and_compare FROM TO: everything FROM's ring holds, applied on TO and
# released; then the two data disks (ram0 and ram2) must be identical.
ship_and_compare() {
	"$REPLTOOL" dump --raw --release "$1" | "$REPLTOOL" apply "$2" &&
		cmp /dev/ram0 /dev/ram2
}
# status_field DEV N: field N of the device's dmsetup status.
status_field() { dmsetup status "$1" | awk -v n="$2" '{ print $n }'; }
meta_field() { "$REPLTOOL" meta show "$1" | awk -v f="$2" '$1 == f { print $2 }'; }
write_random() { dd if=/dev/urandom of="/dev/mapper/$1" bs=4k count="$2" seek="$3" oflag=direct status=none; }

tap_plan 24
tap_strict
meta_create /dev/ram1 g1 /dev/ram0
"$REPLTOOL" meta create --force --role secondary --group g2 --data-dev /dev/ram2 /dev/ram3 >/dev/null
dm_create p1 "0 $S repl /dev/ram0 /dev/ram1 g1 primary"
dm_create s1 "0 $S repl /dev/ram2 /dev/ram3 g2 secondary 2 source g1"
write_random p1 200 0

tap_check "a role change is refused while a volume is not suspended" \
	fails_with "volume 0 is not suspended" dmsetup message p1 0 role secondary
tap_check "demotion is refused while records are unreleased (200 writes and the STREAM record)" \
	fails_with "201 records not released" role p1 secondary
cat /dev/mapper/s1 >/dev/null	# the replica's old data in the page cache
tap_check "shipping them leaves the replica identical" ship_and_compare g1 g2
tap_check "a buffered reader of the replica's device sees the new data" \
	cmp /dev/mapper/p1 /dev/mapper/s1
exec 3</dev/mapper/p1
tap_check "demotion is refused while a volume is open" \
	fails_with "volume 0 is open" role p1 secondary
exec 3<&-
tap_check "an unknown role is refused" \
	fails_with "usage: role primary|secondary [force]" dmsetup message p1 0 role tertiary
tap_check "source on a primary is refused" \
	fails_with "source applies to role secondary only" dmsetup message p1 0 source g2

gen_before=$(meta_field /dev/ram3 gen_current)
tap_check "a drained, closed primary is demoted" role p1 secondary
tap_check "its device is read-only" test "$(blockdev --getro /dev/mapper/p1)" = 1
tap_check "writes to it fail" bash -c "! dd if=/dev/zero of=/dev/mapper/p1 bs=4k count=1 oflag=direct status=none 2>/dev/null"
tap_check "its superblock says secondary" test "$(meta_field /dev/ram1 role)" = secondary
tap_check "it applies from its own last sequence" test "$(status_field p1 8)" = 201
tap_check "it takes the peer's group as source" dmsetup message p1 0 source g2
tap_check "the peer is promoted" role s1 primary
tap_check "the promoted device is writable" test "$(blockdev --getro /dev/mapper/s1)" = 0
tap_check "promotion starts a new generation, the old one in the history" \
	bash -c "[ '$(meta_field /dev/ram3 gen_current)' != '$gen_before' ] && \"$REPLTOOL\" meta show /dev/ram3 | grep -q '^gen_history *$gen_before'"

write_random s1 100 500
dmsetup message s1 0 marker reversed
tap_check "replication in reverse leaves the two disks identical" ship_and_compare g2 g1
tap_check "its sequence continues the old one's (STREAM 202, writes, marker 303)" \
	test "$(status_field p1 8)" = 303
tap_check "the old primary stayed consistent across the failover" \
	test "$(status_field p1 7)" = consistent

# The role is on disk: a table with the old role is refused.
dmsetup remove p1
tap_check "a table with the old role is refused" \
	bash -c "! dmsetup create p1 --table '0 $S repl /dev/ram0 /dev/ram1 g1 primary' 2>/dev/null"
dm_create p1 "0 $S repl /dev/ram0 /dev/ram1 g1 secondary 2 source g2"
tap_check "with the new role it resumes at its applied sequence" test "$(status_field p1 8)" = 303

# Forced demotion: unreleased records become dirty regions.
write_random s1 16 1024
role s1 secondary force
tap_check "a forced demotion marks the unreleased writes dirty" \
	bash -c "\"$REPLTOOL\" status g2 | grep -q 'dirty_regions *1\$'"
tap_check "and they are on the metadata device at once (a crash keeps them)" \
	test "$(meta_field /dev/ram3 bm_dirty)" = 1

dmsetup remove p1
dmsetup remove s1
tap_check "nothing is left" test "$(live_objects)" = "0 0 0"
rmmod brd
tap_done
