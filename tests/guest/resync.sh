#!/usr/bin/env bash
# Resync (Documentation/dm-repl.md, "Resync"): a primary that overflowed,
# or was reloaded with records unreleased, puts its dirty regions in the
# ring (repltool resync) while the VM goes on writing into them; the replica
# turns consistent at the last RESYNC record and holds the primary's bytes.
# An interrupted resync goes on where it was. Bad requests are refused. A
# data device that cannot flush holds its resync back a while.
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
	pair_tables "2 ring_mb 2"
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
	tap_check "$what: the primary is up to date, no region dirty, no reason left" \
		test "$(status_of g1 state)/$(dirty)/$(status_of g1 behind_reasons)" = uptodate/0/-
	tap_check "$what: the replica is consistent" test "$(status_of g2 consistency)" = consistent
	tap_check "$what: identical byte for byte" identical
}

# 1. An overflow, then a resync while fio writes into the same regions.
pair || tap_bail "the pair's tables"
overflow 24
d0=$(dirty)
tap_check "overflow: the primary is behind ($(status_of g1 behind_reasons)) with $d0 dirty regions" \
	test "$(status_of g1 state)/$(status_of g1 behind_reasons)" = behind/overflow -a "$d0" -gt 0
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
# Released, they leave the kernel's list in its work item (a flush first).
for ((i = 0; i < 50; i++)); do
	[[ $(status_of g1 resync_regions) == 0 ]] && break
	sleep 0.1
done
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

# ---- what an adversarial review found (each failed before its fix) ----------
RIO=$TOP/tests/guest/resyncio
D=/dev/dm-repl/g1
modprobe dm-delay
zero() { dd if=/dev/zero of="$1" bs=1M count=$MB status=none; }

# two_volume_pair: g1 (p1 on ram0, p2 on a loop disk) replicated to g2 (s1
# on ram2, s2 on a loop disk), all zeros, fresh metadata; T0 and T1 are the
# primary volumes' tables (to load them again).
two_volume_pair() {
	dm_remove_all
	zero /dev/ram0 && zero /dev/ram2
	d1=$(loop_disk $MB) && m1=$(loop_disk 4) && d2=$(loop_disk $MB) && m2=$(loop_disk 4) ||
		tap_bail "loop disks"
	meta_create /dev/ram1 g1 /dev/ram0
	"$REPLTOOL" meta create --force --group g1 --volume 1 --data-dev "$d1" "$m1" >/dev/null
	"$REPLTOOL" meta create --force --role secondary --group g2 --data-dev /dev/ram2 \
		/dev/ram3 >/dev/null
	"$REPLTOOL" meta create --force --role secondary --group g2 --volume 1 --data-dev "$d2" \
		"$m2" >/dev/null
	T0="0 $S repl /dev/ram0 /dev/ram1 g1 primary 2 ring_mb 2"
	T1="0 $(blockdev --getsz "$d1") repl $d1 $m1 g1 primary 2 ring_mb 2"
	dm_create p1 "$T0" && dm_create p2 "$T1" &&
		dm_create s1 "0 $S repl /dev/ram2 /dev/ram3 g2 secondary 2 source g1" &&
		dm_create s2 "0 $(blockdev --getsz "$d2") repl $d2 $m2 g2 secondary 2 source g1" ||
		tap_bail "two volumes"
}
# delayed_pair TABLE_OF_D0 [META_OPTS...]: d0 (dm-delay) over ram0 as g1's
# data, ram2 as g2's (both zeroed); no replicate running.
delayed_pair() {
	local table=$1
	shift
	zero /dev/ram0 && zero /dev/ram2
	printf '%s\n' "$table" | dmsetup create d0 && dmsetup mknodes d0 &&
		"$REPLTOOL" meta create --force --group g1 "$@" --data-dev /dev/mapper/d0 \
			/dev/ram1 >/dev/null &&
		"$REPLTOOL" meta create --force --role secondary --group g2 \
			--data-dev /dev/ram2 /dev/ram3 >/dev/null &&
		dm_create p1 "0 $S repl /dev/mapper/d0 /dev/ram1 g1 primary 2 ring_mb 2" &&
		dm_create s1 "0 $S repl /dev/ram2 /dev/ram3 g2 secondary 2 source g1"
}
# in_stack PID TEXT: PID's kernel stack names TEXT (within 30 s).
in_stack() {
	local end=$((SECONDS + 30))
	while ((SECONDS < end)); do
		grep -q "$2" "/proc/$1/stack" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
# region_same N: 64 KiB region N of ram0 and ram2 hold the same bytes.
region_same() {
	echo 1 >/proc/sys/vm/drop_caches
	cmp <(dd if=/dev/ram0 bs=64k skip="$1" count=1 status=none) \
		<(dd if=/dev/ram2 bs=64k skip="$1" count=1 status=none)
}
# drain_resync: ship, resync and drain g1 to g2.
drain_resync() {
	"$REPLTOOL" replicate g1 g2 >/dev/null 2>&1 &
	local rep=$! r=0
	"$REPLTOOL" resync g1 >/dev/null && quiesce g1 g2 120 >/dev/null || r=1
	kill -TERM "$rep"
	wait "$rep"
	return $r
}

# 5. A resync killed while it waited for a write in flight to the bitmap:
# the next one still waits for that write (the phases of the count).
dm_remove_all
delayed_pair "0 $S delay /dev/ram0 0 0 /dev/ram0 0 0" || tap_bail "the delayed pair"
overflow 3
dmsetup suspend d0 && dmsetup load d0 --table "0 $S delay /dev/ram0 0 0 /dev/ram0 0 10000" &&
	dmsetup resume d0 || tap_bail "slow writes on d0"
dd if=/dev/urandom of=/dev/mapper/p1 bs=64k seek=640 count=1 oflag=direct status=none &
w=$!
for _ in $(seq 100); do "$RIO" $D dirty 0 640 && break; sleep 0.1; done
"$REPLTOOL" replicate --once g1 g2 >/dev/null
"$RIO" $D resync 0 1000 any >/dev/null 2>&1 &
a=$!
in_stack $a resync || tap_fail "a resync waits for the write in flight" "not in its stack"
kill -KILL $a
wait $a 2>/dev/null
tap_check "killed resync: the next resync of the region goes" "$RIO" $D resync 0 640
wait $w
dmsetup suspend d0 && dmsetup load d0 --table "0 $S delay /dev/ram0 0 0 /dev/ram0 0 0" &&
	dmsetup resume d0 || tap_bail "fast writes on d0"
tap_check "killed resync: drained and resynced" drain_resync
tap_check "killed resync: the region written in flight is the same on both" region_same 640
tap_check "killed resync: identical byte for byte, consistent" bash -c \
	"echo 1 >/proc/sys/vm/drop_caches && cmp /dev/ram0 /dev/ram2 &&
	 test \"\$('$REPLTOOL' status g2 | awk '\$1 == \"consistency\" { print \$2 }')\" = consistent"

# 6. A region resynced twice, its first record released, then a crash: it is
# still dirty (its second record was not released).
dm_remove_all
zero /dev/ram0
"$REPLTOOL" meta create --force --group g1 --extent-kb 1024 --hot-extents 1 \
	--data-dev /dev/ram0 /dev/ram1 >/dev/null
dm_create p1 "0 $S repl /dev/ram0 /dev/ram1 g1 primary 2 ring_mb 2" || tap_bail "p1"
w64k() { dd if=/dev/urandom of=/dev/mapper/p1 bs=64k seek="$1" count=1 oflag=direct status=none; }
w64k 640				# its extent hot, its record unreleased
s1=$("$RIO" $D resync 0 320 any | awk '{ print $4 }')
w64k 320				# the one hot extent is busy: dirty on disk too
"$RIO" $D resync 0 320 >/dev/null	# the region again
w64k 640
"$RIO" $D release "$s1"
w64k 800				# saves the bitmap block again
dd if=/dev/ram1 of=/dev/ram3 bs=1M status=none	# a power cut: the disks as they are
dd if=/dev/ram0 of=/dev/ram2 bs=1M status=none
dmsetup remove p1
dm_create p1 "0 $S repl /dev/ram2 /dev/ram3 g1 primary 2 ring_mb 2" || tap_bail "p1 after the cut"
tap_check "resynced twice, the first released, a crash: the region is still dirty" \
	"$RIO" $D dirty 0 320

# 7. The end of a resync is a record of its own after the last read: a
# replica that applied the last region's record is not yet consistent, and
# at the end it holds every write the read may have seen and those before.
X=$((31 * 2048 + 1024))		# the second half of 1 MiB region 31 reads slowly
dm_remove_all
delayed_pair "0 $X delay /dev/ram0 0 0 /dev/ram0 0 0
$X $((S - X)) delay /dev/ram0 $X 8000 /dev/ram0 $X 0" --region-kb 1024 --extent-kb 1024 ||
	tap_bail "the pair with slow reads"
overflow 3
dd if=/dev/urandom of=/dev/mapper/p1 bs=64k seek=$((31 * 16)) count=1 oflag=direct status=none
"$REPLTOOL" replicate --once g1 g2 >/dev/null
for ((x = 0; x < MB; x++)); do
	((x != 31)) && "$RIO" $D dirty 0 $x && "$RIO" $D resync 0 $x >/dev/null &&
		"$REPLTOOL" replicate --once g1 g2 >/dev/null
done
rel=$(status_of g1 released_seq)
dd if=/dev/urandom of="$W/wa" bs=4k count=1 status=none
dd if=/dev/urandom of="$W/wb" bs=4k count=1 status=none
"$RIO" $D resync 0 31 >"$W/r31" &
a=$!
in_stack $a submit_bio_wait || tap_fail "the read of region 31 is under way" "not in its stack"
dd if="$W/wa" of=/dev/mapper/p1 bs=4k seek=$((31 * 256)) count=1 oflag=direct status=none
dd if="$W/wb" of=/dev/mapper/p1 bs=4k seek=$((31 * 256 + 192)) count=1 oflag=direct status=none
wait $a
s=$(awk '{ print $4 }' "$W/r31")
"$REPLTOOL" dump --raw -n $((s - rel)) g1 | "$REPLTOOL" apply g2 >/dev/null
tap_check "applied up to the last region's record: not yet consistent, a resync under way" \
	test "$(status_of g2 consistency)/$("$REPLTOOL" status g2 |
		sed -n 's/^ *inconsistent_reason *//p')" = "inconsistent/a resync from the primary, consistent at its end"
"$REPLTOOL" replicate --once g1 g2 >/dev/null
tap_check "at the end: consistent" test "$(status_of g2 consistency)" = consistent
echo 1 >/proc/sys/vm/drop_caches
tap_check "at the end: it has the write the read saw and the one before it" bash -c \
	"cmp '$W/wb' <(dd if=/dev/ram2 bs=4k skip=$((31 * 256 + 192)) count=1 status=none) &&
	 cmp '$W/wa' <(dd if=/dev/ram2 bs=4k skip=$((31 * 256)) count=1 status=none)"

# 8. A volume that left the group dirty: no resync ends until it is back.
two_volume_pair
dd if=/dev/urandom of=/dev/mapper/p2 bs=64k count=64 oflag=direct status=none
"$REPLTOOL" replicate --once g1 g2 >/dev/null
dmsetup remove p2
tap_check "a volume left dirty: the group says so" test "$(status_of g1 departed_volumes)" = 2
"$REPLTOOL" replicate g1 g2 >/dev/null 2>&1 &
rep=$!
timeout 10 "$REPLTOOL" resync g1 >/dev/null
tap_check "a volume left dirty: the resync does not end without it" \
	test "$(status_of g1 state)/$(status_of g2 consistency)" = behind/outdated
dm_create p2 "$T1" || tap_bail "p2 back"
"$REPLTOOL" resync g1 >/dev/null
out=$(quiesce g1 g2 120) || tap_fail "drained with the volume back" "$out"
tap_check "back: the resync ends, consistent" test "$(status_of g2 consistency)" = consistent
tap_check "back: the volume is identical byte for byte" bash -c \
	"echo 1 >/proc/sys/vm/drop_caches && cmp '$d1' '$d2'"
kill -TERM "$rep"
wait "$rep"

# ---- what a second review found ---------------------------------------------
# 9. The release of a region's first resync while a second one reads it, then
# a crash: the region is still dirty (the second's record was not released).
dm_remove_all
loop_disks_free
zero /dev/ram0
echo "0 $S delay /dev/ram0 0 3000 /dev/ram0 0 0" | dmsetup create d0 && dmsetup mknodes d0 ||
	tap_bail "d0 with slow reads"
"$REPLTOOL" meta create --force --group g1 --extent-kb 1024 --hot-extents 1 \
	--data-dev /dev/mapper/d0 /dev/ram1 >/dev/null &&
	dm_create p1 "0 $S repl /dev/mapper/d0 /dev/ram1 g1 primary 2 ring_mb 2" || tap_bail "p1"
w64k 640
s1=$("$RIO" $D resync 0 320 any | awk '{ print $4 }')
w64k 320
"$RIO" $D resync 0 320 >/dev/null &
a=$!
in_stack $a submit_bio_wait || tap_fail "the second resync reads" "not in its stack"
"$RIO" $D release "$s1"
wait $a
w64k 640
w64k 800
dd if=/dev/ram1 of=/dev/ram3 bs=1M status=none
dd if=/dev/ram0 of=/dev/ram2 bs=1M status=none
dmsetup remove p1
dm_create p1 "0 $S repl /dev/ram2 /dev/ram3 g1 primary 2 ring_mb 2" || tap_bail "p1 after the cut"
tap_check "released during a second resync, a crash: the region is still dirty" \
	"$RIO" $D dirty 0 320

# 10. A write reserved during the last read fails after it: no end.
dm_remove_all
zero /dev/ram0 && zero /dev/ram2
X=65552
dmsetup create err --table "0 $S error" || tap_bail "err"
delayed_pair "0 $X delay /dev/ram0 0 3000 /dev/ram0 0 0
$X $((S - X)) delay /dev/ram0 $X 0 /dev/mapper/err $X 4000" || tap_bail "the pair B"
"$RIO" $D resync 0 0 any >/dev/null &
a=$!
in_stack $a submit_bio_wait || tap_fail "the resync reads" "not in its stack"
dd if=/dev/urandom of=/dev/mapper/p1 bs=8k seek=$(((X - 8) * 512)) count=1 \
	oflag=direct,seek_bytes status=none 2>/dev/null &
w=$!
wait $a
wait $w
tap_check "a write that failed after the last read: the primary is behind" \
	test "$(status_of g1 state)" = behind
"$REPLTOOL" replicate --once g1 g2 >/dev/null 2>&1
"$REPLTOOL" replicate --once g1 g2 >/dev/null 2>&1
tap_check "a write that failed after the last read: the replica is not consistent" \
	test "$(status_of g2 consistency)" != consistent

# 11. The group reloaded without a volume that left dirty: an end of a
# resync of what is there does not make the replica consistent.
two_volume_pair
dd if=/dev/urandom of=/dev/mapper/p2 bs=64k count=64 oflag=direct status=none
"$REPLTOOL" replicate --once g1 g2 >/dev/null
dmsetup remove p2
dmsetup remove p1
dm_create p1 "$T0" || tap_bail "p1 alone"
overflow 4
"$REPLTOOL" replicate g1 g2 >/dev/null 2>&1 &
rep=$!
timeout 60 "$REPLTOOL" resync g1 >/dev/null 2>&1
quiesce g1 g2 60 >/dev/null
tap_check "reloaded without a volume that left dirty: the replica is not consistent" \
	test "$(status_of g2 consistency)" != consistent
dm_create p2 "$T1" || tap_bail "p2 back"
"$REPLTOOL" resync g1 >/dev/null
out=$(quiesce g1 g2 120) || tap_fail "drained with the volume back" "$out"
tap_check "with it back: consistent, and the volume identical" bash -c \
	"test \"\$('$REPLTOOL' status g2 | awk '\$1 == \"consistency\" { print \$2 }')\" = consistent &&
	 echo 1 >/proc/sys/vm/drop_caches && cmp '$d1' '$d2'"
kill -TERM "$rep"
wait "$rep"
dm_remove_all
loop_disks_free

# 12. A data device whose flushes keep failing (dm-flakey, error_writes,
# over a loop device: a device with no write cache, as brd, completes an
# empty flush before any driver sees it): its resynced regions go dirty
# again, and its resync is held, twice as long at each failure, rather than
# sent again and again; once the device flushes, the resync ends.
modprobe dm-flakey || tap_bail "dm-flakey"
L=$(loop_disk $MB) || tap_bail "a loop disk"
flakey() { dmsetup suspend d0 && dmsetup load d0 --table "0 $S flakey $L 0 $1" &&
	dmsetup resume d0; }
zero /dev/ram2
dmsetup create d0 --table "0 $S flakey $L 0 3600 0" && dmsetup mknodes d0 &&
	"$REPLTOOL" meta create --force --group g1 --data-dev /dev/mapper/d0 /dev/ram1 >/dev/null &&
	"$REPLTOOL" meta create --force --role secondary --group g2 \
		--data-dev /dev/ram2 /dev/ram3 >/dev/null &&
	dm_create p1 "0 $S repl /dev/mapper/d0 /dev/ram1 g1 primary 2 ring_mb 2" &&
	dm_create s1 "0 $S repl /dev/ram2 /dev/ram3 g2 secondary 2 source g1" ||
	tap_bail "the pair over dm-flakey"
overflow 3
d0=$(dirty)
"$REPLTOOL" replicate g1 g2 >/dev/null 2>&1 &
rep=$!
flakey "0 1 1 error_writes" || tap_bail "d0 fails its flushes"
timeout 120 "$REPLTOOL" resync g1 >"$W/resync12.out" 2>&1 &
res=$!
# Holds of 1, 2 and 4 s: in 6 s at most three rounds of its regions (four
# for a slow start); sent again at once, many more.
sleep 6
sent=$(status_of g1 resynced_regions)
tap_check "flushes failing: in 6 s its $d0 dirty regions went at most 4 times ($sent)" \
	test "$sent" -gt 0 -a "$sent" -le $((4 * d0))
held() { for _ in $(seq 100); do [[ $(status_of g1 resync_held_volumes) == 1 ]] && return 0
	sleep 0.1; done; return 1; }
tap_check "flushes failing: the volume's resync is held" held
tap_check "flushes failing: behind, the resync failed, its regions dirty" bash -c \
	"[[ \$('$REPLTOOL' status g1 | awk '\$1 == \"behind_reasons\" { print \$2 }') == *resync-failed* ]]"
flakey "3600 0" || tap_bail "d0 flushes again"
wait "$res"
rc=$?
tap_check "the device flushes again: the resync ends (exit $rc)" test "$rc" = 0
out=$(quiesce g1 g2 120) || tap_fail "flushes failing, then back: drained" "$out"
tap_check "flushes failing, then back: up to date, no region dirty, no reason, none held" \
	test "$(status_of g1 state)/$(dirty)/$(status_of g1 behind_reasons)/$(status_of g1 \
		resync_held_volumes)" = uptodate/0/-/0
tap_check "flushes failing, then back: consistent, identical byte for byte" bash -c \
	"test \"\$('$REPLTOOL' status g2 | awk '\$1 == \"consistency\" { print \$2 }')\" = consistent &&
	 echo 1 >/proc/sys/vm/drop_caches && cmp '$L' /dev/ram2"
kill -TERM "$rep"
wait "$rep"
dm_remove_all
loop_disks_free
tap_done
