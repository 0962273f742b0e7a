#!/usr/bin/env bash
# Resync (Documentation/dm-repl.md, "Resync"): a primary that overflowed,
# or was reloaded with records unreleased, puts its dirty regions in the
# ring (repltool resync) while the VM goes on writing into them; the replica
# turns consistent at the last RESYNC record and holds the primary's bytes.
# An interrupted resync goes on where it was. Bad requests are refused.
set -uo pipefail
source "$(dirname "$0")/../lib/tap.sh"
source "$(dirname "$0")/lib.sh"

# Primary g1 on ram0 (meta ram1), its replica g2 on ram2 (meta ram3).
MB=64
ram_disks 4 $MB
S=$(blockdev --getsz /dev/ram0)
W=$(mktemp -d /tmp/resync.XXXXXX)

pair() {
	dm_remove_all
	dd if=/dev/zero of=/dev/ram0 bs=1M count=$MB status=none
	dd if=/dev/zero of=/dev/ram2 bs=1M count=$MB status=none
	meta_create /dev/ram1 g1 /dev/ram0
	"$REPLTOOL" meta create --force --role secondary --group g2 \
		--data-dev /dev/ram2 /dev/ram3 >/dev/null
	dm_create p1 "0 $S repl /dev/ram0 /dev/ram1 g1 primary 2 ring_mb 2" &&
		dm_create s1 "0 $S repl /dev/ram2 /dev/ram3 g2 secondary 2 source g1"
}
dirty() { status_of g1 dirty_regions; }
identical() { echo 1 >/proc/sys/vm/drop_caches && cmp /dev/ram0 /dev/ram2; }
# overflow MiB: random writes with nobody shipping: most go to the bitmap.
overflow() {
	dd if=/dev/urandom of=/dev/mapper/p1 bs=64k count=$(($1 * 16)) oflag=direct status=none
}
# whole: the pair drained, up to date, consistent, byte for byte.
whole() {
	local what=$1 out
	out=$(quiesce g1 g2 120) || { tap_fail "$what: drained" "$out"; return; }
	tap_check "$what: the primary is up to date, no region dirty" \
		test "$(status_of g1 state)/$(dirty)" = uptodate/0
	tap_check "$what: the replica is consistent" test "$(status_of g2 consistency)" = consistent
	tap_check "$what: identical byte for byte" identical
}

# 1. An overflow, then a resync while fio writes into the same regions.
pair || tap_bail "the pair's tables"
overflow 24
d0=$(dirty)
tap_check "overflow: the primary is behind with $d0 dirty regions" \
	test "$(status_of g1 state)" = behind -a "$d0" -gt 0
"$REPLTOOL" replicate --once g1 g2 >/dev/null
tap_check "overflow: the replica is outdated past the gap" \
	test "$(status_of g2 consistency)" = outdated
"$REPLTOOL" replicate g1 g2 >"$W/replicate.out" 2>&1 &
rep=$!
fio_out=$W/fio.out
fio --name=w --filename=/dev/mapper/p1 --direct=1 --rw=randwrite --bsrange=4k-128k \
	--ioengine=libaio --iodepth=4 --size=${MB}m --time_based --runtime=8 \
	--rate=2m --verify=crc32c --verify_fatal=1 --randseed=7 >"$fio_out" 2>&1 &
fio=$!
"$REPLTOOL" resync --progress g1 >"$W/resync1.out" 2>&1
rc=$?
tap_check "resync under load exits 0 (exit $rc)" test "$rc" = 0
wait "$fio"
tap_check "fio wrote and verified meanwhile" test $? = 0
# Writes after the resync may have overflowed again: once more, idle.
"$REPLTOOL" resync g1 >>"$W/resync1.out" 2>&1
tap_check "resync says up to date" grep -q "up to date" "$W/resync1.out"
whole "resync under load"
tap_check "every resynced region was released" test "$(status_of g1 resync_regions)" = 0

# 2. Interrupted, it goes on where it was: the regions done stay done.
kill -STOP "$rep"
overflow 24
d1=$(dirty)
kill -CONT "$rep"
"$REPLTOOL" resync g1 >"$W/resync2.out" 2>&1 &
res=$!
end=$((SECONDS + 120))
while (($(dirty) > d1 - 20 && SECONDS < end)); do sleep 0.1; done
kill -TERM "$res"
wait "$res"
tap_check "a resync stopped by SIGTERM exits 0" test $? = 0
d2=$(dirty)
tap_check "stopped: $((d1 - d2)) of $d1 regions left the bitmap, $d2 are still there" \
	test "$d2" -lt "$d1" -a "$d2" -gt 0
tap_check "stopped: the group is still behind" test "$(status_of g1 state)" = behind
"$REPLTOOL" resync g1 >"$W/resync3.out" 2>&1
n3=$(awk '/put in the ring/ { print $3 }' "$W/resync3.out")
tap_check "resumed: it put only the $n3 regions left in the ring" test "$n3" -le "$d2"
whole "resumed"

# 3. Reloaded with records unreleased: their regions are dirty, a resync
# makes the replica whole again.
kill -STOP "$rep"
dd if=/dev/urandom of=/dev/mapper/p1 bs=4k count=100 oflag=direct status=none
dmsetup remove p1
dm_create p1 "0 $S repl /dev/ram0 /dev/ram1 g1 primary 2 ring_mb 2" || tap_bail "reload"
kill -TERM "$rep"
kill -CONT "$rep"
wait "$rep"
tap_check "reloaded with records unreleased: behind" test "$(status_of g1 state)" = behind
"$REPLTOOL" replicate g1 g2 >"$W/replicate2.out" 2>&1 &
rep=$!
"$REPLTOOL" resync g1 >/dev/null 2>&1
whole "after the reload"

# 4. Refusals.
tap_check "resync of a secondary is refused, with the reason" bash -c \
	"out=\$('$REPLTOOL' resync g2 2>&1); test \$? = 1 && grep -q 'not a primary group' <<<\"\$out\""
tap_check "a bad --fill is a usage error" bash -c \
	"'$REPLTOOL' resync --fill 101 g1; test \$? = 2"
kill -TERM "$rep"
wait "$rep"
dm_remove_all
tap_done
