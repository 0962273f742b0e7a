#!/usr/bin/env bash
# The dirty bitmap lives on the metadata device: what was dirty, and the
# writes still unreleased in the ring, are dirty again after the volume is
# removed and loaded again; a metadata device that was not shut down cleanly
# comes back with the extents its activity log names dirty (every region if
# the log cannot be trusted). repltool meta check agrees with what
# the kernel wrote. An extent dropped from the activity log is dropped only
# after a flush of the data device (the replica may have its writes from
# that device's volatile cache), and so is the whole log at a removal; a
# flush that fails fails the write that would have dropped it. A role
# change whose superblock cannot be written fails, and so does the same
# message until the superblock takes it.
set -uo pipefail
source "$(dirname "$0")/../lib/tap.sh"
source "$(dirname "$0")/lib.sh"

ram_disks 4 64
S=$(blockdev --getsz /dev/ram0)
D=/dev/ram0
M=/dev/ram1
REGIONS=$((S / 128))	# 64 KiB regions

# field NAME: a field of `repltool meta show` on $M.
field() { "$REPLTOOL" meta show "$M" | awk -v f="$1" '$1 == f { print $2 }'; }
# dirty: this volume's dirty regions from dmsetup status.
dirty() { dmsetup status mv | awk '{ split($11, d, "/"); print d[1] }'; }
load() { dm_create mv "0 $S repl $D $M gm primary 2 ring_mb $1"; }

tap_plan 35
tap_strict
meta_create $M gm $D
load 64
tap_check "a loaded volume's metadata is not clean" test "$(field flags)" = "-"
dd if=/dev/urandom of=/dev/mapper/mv bs=64k count=4 oflag=direct status=none
"$REPLTOOL" dump --release gm >/dev/null
dmsetup remove mv
tap_check "after a clean removal the metadata is clean" test "$(field flags)" = CLEAN
tap_check "and repltool meta check finds no problem" "$REPLTOOL" meta check "$M"
tap_check "released writes leave nothing dirty" test "$(field bm_dirty)" = 0

# Writes still in the ring when the volume goes are dirty when it comes back.
load 64
dd if=/dev/urandom of=/dev/mapper/mv bs=64k count=8 seek=16 oflag=direct status=none
dmsetup remove mv
tap_check "unreleased writes are saved as dirty regions" test "$(field bm_dirty)" = 8
load 64
tap_check "and are dirty again after the load" test "$(dirty)" = 8
tap_check "the group is behind" bash -c "dmsetup status mv | grep -q ' behind '"
dmsetup remove mv

# Overflow: a burst far larger than a 2 MiB ring; every region it touched
# stays dirty across the removal.
meta_create $M gm $D
load 2
dd if=/dev/urandom of=/dev/mapper/mv bs=1M count=16 seek=8 oflag=direct status=none
before=$(dirty)
dmsetup remove mv
tap_check "overflow leaves dirty regions ($before of 256)" test "$before" -gt 0
# Saved: the overflowed regions and those of the writes still in the ring,
# i.e. all 256 that the burst wrote.
tap_check "the metadata keeps them and the unreleased ones" test "$(field bm_dirty)" = 256
tap_check "repltool meta check accepts the kernel's bitmap" "$REPLTOOL" meta check "$M"

# An unclean shutdown: a copy of a live volume's metadata, as a crash would
# leave it. Only the extents the activity log names come back dirty (4 MiB
# extents: 64 regions each), and none if nothing was written since the load.
meta_create $M gm $D
load 64
dd if=$M of=/dev/ram2 bs=1M iflag=direct oflag=direct status=none
dd if=/dev/urandom of=/dev/mapper/mv bs=4k count=4 seek=100 oflag=direct status=none
dd if=/dev/urandom of=/dev/mapper/mv bs=4k count=4 seek=5000 oflag=direct status=none
crashed=/dev/ram3
dd if=$M of=$crashed bs=1M iflag=direct oflag=direct status=none
dmsetup remove mv
M=/dev/ram2
load 64
tap_check "a crash with no write since the load leaves nothing dirty" test "$(dirty)" = 0
dmsetup remove mv
M=$crashed
load 64
tap_check "after a crash the two logged extents are dirty (128 regions)" test "$(dirty)" = 128
tap_check "and the group says why it is behind" \
	test "$(status_of gm behind_reasons)" = loaded-dirty,crash
dmsetup remove mv
# Two damaged AL slots: the log cannot be trusted, so every region is dirty.
meta_create /dev/ram1 gm $D
M=/dev/ram1
load 64
dd if=/dev/urandom of=/dev/mapper/mv bs=4k count=4 seek=100 oflag=direct status=none
dd if=$M of=$crashed bs=1M iflag=direct oflag=direct status=none
dmsetup remove mv
printf 'XXXX' | dd of=$crashed bs=1 seek=$((8 * 512 + 4096 + 100)) conv=notrunc status=none
printf 'XXXX' | dd of=$crashed bs=1 seek=$((8 * 512 + 3 * 4096 + 100)) conv=notrunc status=none
M=$crashed
load 64
tap_check "an activity log that cannot be trusted makes every region dirty" test "$(dirty)" = "$REGIONS"
dmsetup remove mv

# On loop devices, which count the flushes they complete (brd has no cache):
# four 1 MiB extents hot and released, then writes into four others drop
# them, and the data device sees a flush.
D=$(loop_disk 64)
M=$(loop_disk 8)
"$REPLTOOL" meta create --force --group gm --volume 0 --extent-kb 1024 \
	--hot-extents 4 --data-dev "$D" "$M" >/dev/null
load 64
for e in 0 1 2 3; do
	dd if=/dev/urandom of=/dev/mapper/mv bs=4k count=1 seek=$((e * 256)) oflag=direct status=none
done
"$REPLTOOL" dump --release gm >/dev/null
before=$(flushes $D)
for e in 4 5 6 7; do
	dd if=/dev/urandom of=/dev/mapper/mv bs=4k count=1 seek=$((e * 256)) oflag=direct status=none
done
evictions=$(dmsetup status mv | awk '{ print $19 }')
tap_check "writes into four new extents drop the released ones ($evictions evictions)" \
	test "$evictions" -ge 4
tap_check "after a flush of the data device ($before flushes before, $(flushes $D) after)" \
	test "$(flushes $D)" -gt "$before"
# A clean removal drops the AL's extents too: after a flush.
before=$(flushes $D)
dmsetup remove mv
tap_check "a removal flushes the data device before its metadata says clean" \
	test "$(flushes $D)" -gt "$before"

# An extent to drop, and a data device that cannot flush (fl: its second
# half dm-flakey, failing writes and every flush fl gets): the write whose
# transaction would drop the extent fails (EIO) rather than go with the
# extent unflushed; once the device flushes again, the write goes.
modprobe dm-flakey || tap_bail "dm-flakey"
L=$(loop_disk 64)
M=$(loop_disk 8)
H=$((S / 2))
fl_load() { dmsetup load fl --table "0 $H linear $L 0
$H $H $1"; }
dmsetup create fl --notable && fl_load "linear $L $H" && dmsetup resume fl && dmsetup mknodes fl ||
	tap_bail "fl"
D=/dev/mapper/fl
"$REPLTOOL" meta create --force --group gm --volume 0 --extent-kb 1024 \
	--hot-extents 1 --data-dev "$D" "$M" >/dev/null
load 64
w_extent() { dd if=/dev/urandom of=/dev/mapper/mv bs=4k count=1 seek=$(($1 * 256)) \
	oflag=direct status=none 2>/dev/null; }
w_extent 0 || tap_bail "a write into extent 0"
"$REPLTOOL" dump --release gm >/dev/null
dmsetup suspend fl && fl_load "flakey $L $H 0 1 1 error_writes" && dmsetup resume fl ||
	tap_bail "fl's flushes failing"
tap_check "a transaction to drop an extent whose device cannot flush: the write fails" \
	bash -c "! dd if=/dev/zero of=/dev/mapper/mv bs=4k count=1 seek=256 oflag=direct status=none"
dmsetup suspend fl && fl_load "linear $L $H" && dmsetup resume fl || tap_bail "fl back"
tap_check "the device flushes again: the write goes" w_extent 1
dmsetup remove mv && dmsetup remove fl

# The metadata device a dm-linear (mm) that turns into dm-error: the group
# has the new role in memory, but a reboot would find the old one, so the
# message fails until every superblock says the new role; rewriting them
# wants the volumes suspended, as a role change does.
ML=$(loop_disk 8)
mm_load() { dmsetup suspend mm && dmsetup load mm --table "0 $(blockdev --getsz "$ML") $1" &&
	dmsetup resume mm; }
role_now() { dmsetup status mv | awk '{ print $4 }'; }
write_mv() { dd if=/dev/urandom of=/dev/mapper/mv bs=4k count=1 oflag=direct status=none 2>/dev/null; }
write_refused() { ! write_mv; }
role_written_once_it_can() {
	dmsetup suspend mv && mm_load error || tap_bail "mm failing"
	tap_check "a change to $1 whose superblock cannot be written fails" \
		fails_with "cannot write the new role" dmsetup message mv 0 role "$1"
	tap_check "the group has the new role in memory" test "$(role_now)" = "$1"
	tap_check "and the same message fails while it still cannot" \
		fails_with "cannot write the new role" dmsetup message mv 0 role "$1"
	mm_load "linear $ML 0" && dmsetup resume mv || tap_bail "mm back"
	[[ $1 == primary ]] && tap_check "a write while the promotion is not saved fails" \
		write_refused
	tap_check "the device writes again, but the volume is not suspended: refused" \
		fails_with "volume 0 is not suspended" dmsetup message mv 0 role "$1"
	dmsetup suspend mv || tap_bail "suspend mv"
	tap_check "suspended, the same message succeeds" dmsetup message mv 0 role "$1"
	tap_check "and the superblock says $1" test "$(field role)" = "$1"
	dmsetup resume mv || tap_bail "resume mv"
}
dm_create mm "0 $(blockdev --getsz "$ML") linear $ML 0" || tap_bail "mm"
M=/dev/mapper/mm
D=$(loop_disk 64)
meta_create $M gm "$D"
load 64
role_written_once_it_can secondary
role_written_once_it_can primary
tap_check "once saved, the message returns at once, the volume resumed" \
	dmsetup message mv 0 role primary
tap_check "and a write goes" write_mv
dmsetup remove mv && dmsetup remove mm
loop_disks_free
tap_check "nothing is left" test "$(live_objects)" = "0 0 0"
rmmod brd
tap_done
