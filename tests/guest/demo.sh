#!/usr/bin/env bash
# The main job, in a guest (make demo): a repl volume captures a VM-like
# workload into its ring, and repltool shows what it captured.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

step() { printf '\n=== %s\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

step "Two disks: data and metadata (loop devices over tmpfs files)"
DATA=$(loop_disk 256)
META=$(loop_disk 16)
SECTORS=$(blockdev --getsz "$DATA")
echo "data $DATA ($SECTORS sectors), meta $META"

step "Metadata for the volume (superblock, activity log, dirty bitmap), as drbdadm create-md"
show "$REPLTOOL" meta create --group vm1 --data-dev "$DATA" "$META"
show "$REPLTOOL" meta show "$META"

step "A repl volume in group vm1, role primary, a 64 MiB ring"
show dmsetup create vm1-disk0 --table "0 $SECTORS repl $DATA $META vm1 primary 2 ring_mb 64"
dmsetup mknodes vm1-disk0
show ls -l /dev/dm-repl/
show dmsetup table vm1-disk0

step "A workload: 4 KiB random writes, then a flush, then a named marker"
echo "$ fio --rw=randwrite --bs=4k --iodepth=16 --io_size=4M --end_fsync=1 ..."
fio --name=demo --filename=/dev/mapper/vm1-disk0 --direct=1 --ioengine=libaio \
	--rw=randwrite --bs=4k --iodepth=16 --size=16M --io_size=4M --randseed=1 \
	--end_fsync=1 --output-format=terse --terse-version=3 >/dev/null
show dmsetup message vm1-disk0 0 marker before-upgrade
show blkdiscard -o 0 -l 1M /dev/mapper/vm1-disk0

step "The first records, as blkparse would show them: seq epoch vol type sector+len flags bytes"
"$REPLTOOL" dump vm1 >/tmp/records.txt
head -5 /tmp/records.txt
echo "..."
tail -5 /tmp/records.txt

step "What the ring holds"
show "$REPLTOOL" dump --stats vm1

step "Status: role group volume state seq released ring_used/size dirty/regions overflows ..."
show dmsetup status vm1-disk0

step "The same, one fact per line, from the group's device"
show "$REPLTOOL" status vm1

step "The consumer releases what it shipped: ring space comes back"
echo "$ repltool dump --release vm1 >/dev/null"
"$REPLTOOL" dump --release vm1 >/dev/null
show dmsetup status vm1-disk0

step "A ring too small for the burst: writes never stall, overflow goes to the dirty bitmap"
DATA2=$(loop_disk 256)
META2=$(loop_disk 16)
"$REPLTOOL" meta create --group vm2 --data-dev "$DATA2" "$META2" >/dev/null
show dmsetup create vm2-disk0 --table "0 $SECTORS repl $DATA2 $META2 vm2 primary 2 ring_mb 2"
dmsetup mknodes vm2-disk0
show dd if=/dev/urandom of=/dev/mapper/vm2-disk0 bs=1M count=16 oflag=direct status=none
show dmsetup status vm2-disk0

step "Clean up"
dmsetup remove vm1-disk0
dmsetup remove vm2-disk0
loop_disks_free
echo "live objects (groups volumes files): $(live_objects)"
