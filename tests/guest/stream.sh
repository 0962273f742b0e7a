#!/usr/bin/env bash
# The stream rules (Documentation/dm-repl.md, "Streams"): a replica never
# silently diverges. A primary loaded again goes on above every sequence it
# used, in a new stream; when records may have been lost (not released at
# removal, a crash, an overflow), the stream says so and the replica turns
# "outdated", shows its last consistent sequence, and refuses a plain
# promotion. Also: no batch lands after a promotion, an interrupted suspend
# does not hang the apply path, and superblocks with one bad field (and a
# valid crc) are refused, each with its reason.
set -uo pipefail
source "$(dirname "$0")/../lib/tap.sh"
source "$(dirname "$0")/lib.sh"

SBPATCH=$TOP/tests/guest/sbpatch

# Primary g1 on ram0 (meta ram1), its replica g2 on ram2 (meta ram3).
ram_disks 4 64
S=$(blockdev --getsz /dev/ram0)

# field DEV N: field N of the device's dmsetup status ("0 S repl" are 1-3).
field() { dmsetup status "$1" | awk -v n="$2" '{ print $n }'; }
# Primary: 7 state, 8 last seq, 9 released, 11 dirty/regions, 12 overflows,
# 21 stream. Secondary: 7 consistency, 8 applied seq, 15 applied stream,
# 16 last consistent seq.
pseq() { field p1 8; }
pstream() { field p1 21; }
sstate() { field s1 7; }
write_at() { dd if=/dev/urandom of=/dev/mapper/p1 bs=4k count="$1" seek="$2" oflag=direct status=none; }
replicate() { "$REPLTOOL" replicate --once g1 g2; }
# The two data disks hold the same bytes. They are read under the targets,
# so their own page cache may be stale: dropped first.
same_disks() { echo 1 >/proc/sys/vm/drop_caches && cmp /dev/ram0 /dev/ram2; }
export -f same_disks
# fresh_pair [PRIMARY_OPTS]: new metadata, zeroed disks, both tables.
fresh_pair() {
	dm_remove_all
	dd if=/dev/zero of=/dev/ram0 bs=1M count=64 status=none
	dd if=/dev/zero of=/dev/ram2 bs=1M count=64 status=none
	pair_tables "${1:-}"
}
reload_primary() {
	dmsetup remove p1 && dm_create p1 "0 $S repl /dev/ram0 /dev/ram1 g1 primary"
}
# A replica that is past a gap: outdated, its last consistent state shown,
# a plain promotion refused with the reason.
check_outdated() {
	local what=$1 consistent=$2
	tap_check "$what: the replica says outdated" test "$(sstate)" = outdated
	tap_check "$what: its last consistent sequence is $consistent" \
		test "$(field s1 16)" = "$consistent"
	tap_check "$what: repltool status shows it" bash -c \
		"'$REPLTOOL' status g2 | grep -Eq '^ +consistency +outdated' &&
		 '$REPLTOOL' status g2 | grep -Eq '^ +consistent_seq +$consistent\$'"
	tap_check "$what: a plain promotion is refused" \
		fails_with "replica is outdated past a gap" role s1 primary
}

tap_plan 56
tap_strict

# 1. A clean reload with every record released: one more stream, no gap.
fresh_pair
write_at 150 0
replicate >/dev/null
seq1=$(pseq) stream1=$(pstream)
tap_check "a stream begins with its STREAM record: 150 writes are seq 151" test "$seq1" = 151
reload_primary
write_at 400 1000
replicate >/dev/null
tap_check "clean reload: the new stream differs" test "$(pstream)" != "$stream1"
tap_check "clean reload: sequences go on, none reused" test "$(pseq)" = $((seq1 + 1 + 400))
tap_check "clean reload: the replica applied the new stream" \
	test "$(field s1 15)" = "$(pstream)" -a "$(field s1 8)" = "$(pseq)"
tap_check "clean reload: the replica stays consistent" test "$(sstate)" = consistent
tap_check "clean reload: the disks are identical" same_disks

# 1b. A planned failover right after a clean reload, before any write: the
# demoted side has applied the stream before (the new one never began), so
# the promoted peer's stream follows it.
reload_primary
role p1 secondary && dmsetup message p1 0 source g2 && role s1 primary
dd if=/dev/urandom of=/dev/mapper/s1 bs=4k count=20 seek=500 oflag=direct status=none
"$REPLTOOL" replicate --once g2 g1 >/dev/null
tap_check "failover before any write: replication back is taken, consistent, identical" \
	bash -c "same_disks && test \"\$(dmsetup status p1 | awk '{print \$7}')\" = consistent"

# 2. A stream the replica cannot place: a primary with new metadata names no
# stream the replica applied. Refused, nothing applied.
fresh_pair
write_at 10 0
replicate >/dev/null
applied=$(field s1 8)
dmsetup remove p1
meta_create /dev/ram1 g1 /dev/ram0
dm_create p1 "0 $S repl /dev/ram0 /dev/ram1 g1 primary"
write_at 10 0
out=$(replicate 2>&1) || true
tap_check "an unrelated stream is refused (EILSEQ, its reason named)" bash -c \
	"grep -q 'does not follow the applied one' <<<'$out' && grep -q 'Invalid or incomplete multibyte\|Illegal byte sequence' <<<'$out'"
tap_check "  ... and nothing of it was applied" test "$(field s1 8)" = "$applied"
tap_check "  ... the kernel log says why" bash -c \
	"dmesg | grep 'device-mapper: repl: ' | tail -1 | grep -q 'does not follow the applied one'"

# 3. Records not released when the primary was removed: lost, so a gap.
fresh_pair
write_at 150 0
replicate >/dev/null
write_at 50 2000
reload_primary
tap_check "unreleased at removal: their regions are dirty" test "$(field p1 11 | cut -d/ -f1)" -gt 0
write_at 400 3000
replicate >/dev/null
check_outdated "unreleased at removal" 151
tap_check "unreleased at removal: the replica still took the new stream" \
	test "$(field s1 8)" = "$(pseq)"

# 4. A crash: the metadata as a running primary leaves it (not clean).
fresh_pair
write_at 150 0
replicate >/dev/null
write_at 50 2000
seq_before=$(pseq)
dd if=/dev/ram1 of=/tmp/meta-running bs=1M status=none
dmsetup remove p1
dd if=/tmp/meta-running of=/dev/ram1 bs=1M status=none
dm_create p1 "0 $S repl /dev/ram0 /dev/ram1 g1 primary"
write_at 400 3000
tap_check "after a crash: the new stream starts above the persisted bound" \
	test "$(pseq)" -gt $((seq_before + 4294967296 - 1))
tap_check "after a crash: the activity log made regions dirty" \
	test "$(field p1 11 | cut -d/ -f1)" -gt 0
replicate >/dev/null
check_outdated "after a crash" 151
tap_check "after a crash: a forced promotion still works" role s1 primary force

# 5. An overflow with no consumer, then a drain.
fresh_pair "2 ring_mb 2"
dd if=/dev/urandom of=/dev/mapper/p1 bs=64k count=128 oflag=direct status=none
tap_check "overflow: writes went to the bitmap" test "$(field p1 12)" -gt 0
replicate >/dev/null
check_outdated "overflow" "$(field s1 16)"
tap_check "overflow: it was consistent before the gap" test "$(field s1 16)" -ge 1
tap_check "overflow: the primary is behind" test "$(field p1 7)" = behind

# 6. A batch that waited while a promotion came is refused, not applied.
fresh_pair
write_at 10 0
"$REPLTOOL" dump --raw g1 >/tmp/batch
dmsetup suspend s1
"$REPLTOOL" apply g2 </tmp/batch >/tmp/apply.out 2>&1 &
apid=$!
tap_check "promotion race: the batch waits for the resume" \
	stack_reaches "$apid" repl_apply_write 800
dmsetup message s1 0 role primary
dmsetup resume s1
rc=0
wait "$apid" || rc=$?
tap_check "promotion race: the batch is refused" test "$rc" -ne 0
tap_check "promotion race: with its reason" grep -q "group is not secondary" /tmp/apply.out
tap_check "promotion race: nothing reached the promoted disk" \
	cmp -n $((10 * 4096)) /dev/ram2 /dev/zero

# 7. An interrupted suspend: dm calls presuspend_undo, not resume; batches
# must still go through.
fresh_pair
dmsetup remove s1
dm_create dly "0 $S delay /dev/ram2 0 10000 /dev/ram2 0 0"
"$REPLTOOL" meta create --force --role secondary --group g2 \
	--data-dev /dev/mapper/dly /dev/ram3 >/dev/null
dm_create s1 "0 $S repl /dev/mapper/dly /dev/ram3 g2 secondary 2 source g1"
# A read held 10 s below s1: the suspend waits for it, and is killed there.
# The suspend starts only once the read is in flight in s1; a suspend that
# came first would simply finish, and the read would wait for the resume.
dd if=/dev/mapper/s1 of=/dev/null bs=4k count=1 iflag=direct status=none &
ddpid=$!
tap_check "interrupted suspend: the read is in flight" \
	stack_reaches "$ddpid" submit_bio_wait 200
dmsetup suspend s1 &
spid=$!
tap_check "interrupted suspend: the suspend waits for the read in flight" \
	stack_reaches "$spid" "dm_wait_for_|__dm_suspend" 400
kill -KILL "$spid" 2>/dev/null || true
wait "$spid" || true
tap_check "interrupted suspend: it failed and the device is live" \
	bash -c "dmsetup info s1 | grep -q '^State: *ACTIVE'"
wait
write_at 5 0
tap_check "interrupted suspend: a batch still applies" \
	bash -c "'$REPLTOOL' dump --raw g1 | timeout 60 '$REPLTOOL' apply g2"
dm_remove_all

# 9. Roles under load: while fio writes (with verify) and replicate ships,
# role changes are tried again and again (each suspends the volume): all
# refused, no write lost; then a planned failover and fio the other way.
fio_run() {
	fio --name=roles --filename="/dev/mapper/$1" --direct=1 --ioengine=libaio \
		--rw=randwrite --bsrange=4k-128k --iodepth=8 --size=48M --io_size=24M \
		--verify=crc32c --verify_fatal=1 --verify_state_save=0 --fsync=16 --randseed="$2" \
		--output=/tmp/fio-roles.out >/dev/null 2>&1
}
fresh_pair
"$REPLTOOL" replicate g1 g2 >/tmp/replicate-roles.out 2>&1 &
rpid=$!
fio_run p1 7 &
fpid=$!
# fio has the volume open once its first records are in the ring.
for _ in $(seq 600); do
	(($(pseq) > 1)) && break
	sleep 0.1
done
# Held open here too, as a VM holds its disk, whatever fio's phase.
exec 4</dev/mapper/p1
tries=0 refused=0
while kill -0 "$fpid" 2>/dev/null; do
	tries=$((tries + 1))
	role p1 secondary 2>/dev/null || refused=$((refused + 1))
	sleep 0.2
done
exec 4<&-
frc=0
wait "$fpid" || frc=$?
tap_check "roles under fio: fio verified every write (role changes tried $tries times)" \
	test "$frc" = 0
tap_check "roles under fio: every role change was refused (the volume is open)" \
	test "$tries" -gt 0 -a "$refused" = "$tries"
for _ in $(seq 300); do
	[[ "$(field s1 8)" == "$(pseq)" ]] && break
	sleep 0.1
done
kill -TERM "$rpid"
wait "$rpid"
tap_check "roles under fio: the replica equals the primary, consistent" \
	bash -c "same_disks && test \"\$(dmsetup status s1 | awk '{print \$7}')\" = consistent"
role p1 secondary && dmsetup message p1 0 source g2 && role s1 primary
tap_check "roles under fio: then a planned failover" test "$(field s1 4)" = primary
frc=0
fio_run s1 8 || frc=$?
"$REPLTOOL" replicate --once g2 g1 >/dev/null
tap_check "roles under fio: fio on the promoted side, shipped back: identical, consistent" \
	bash -c "test $frc = 0 && same_disks && test \"\$(dmsetup status p1 | awk '{print \$7}')\" = consistent"
dm_remove_all

# 8. Superblocks intact but wrong in one field: each refused with its reason.
refuse_field() {
	local field=$1 value=$2 reason=$3
	meta_create /dev/ram1 g1 /dev/ram0
	"$SBPATCH" /dev/ram1 "$field" "$value" &&
		! dm_create bad "0 $S repl /dev/ram0 /dev/ram1 g1 primary" 2>/dev/null &&
		[[ "$(last_table_error)" == "$reason" ]]
}
t() {
	tap_check "superblock $1=$2 is refused: $3" refuse_field "$@"
}
t al_slots 0 "Metadata AL slot count is not from 2 to 1024"
t al_slots 5000 "Metadata AL slot count is not from 2 to 1024"
t al_slot_bytes 512 "Metadata AL slot size is not 4096 bytes"
t extent_sectors 0 "Metadata hot extent size is not a power of two from the region size to 1 GiB"
t extent_sectors 24 "Metadata hot extent size is not a power of two from the region size to 1 GiB"
t extent_sectors 4 "Metadata hot extent size is not a power of two from the region size to 1 GiB"
t hot_extents 0 "Metadata hot extent count is not from 1 to 1008"
t hot_extents 1009 "Metadata hot extent count is not from 1 to 1008"
t reserved 1 "Metadata superblock has reserved bytes that are not zero"
t uuid 0 "Metadata volume UUID is all zero"
t seq_next 0x4000000000000000 "Metadata sequence or epoch is out of range (2^62 and above)"
t next_epoch 0xffffffffffffffff "Metadata sequence or epoch is out of range (2^62 and above)"
tap_check "no object leaked by the refusals" test "$(live_objects)" = "0 0 0"

dm_remove_all
tap_done
