#!/usr/bin/env bash
# The main job, in a guest (make demo): a primary volume captures a VM-like
# workload, repltool replicate ships its records to a secondary volume in the
# same guest (the network daemon's place), releasing only what the replica
# applied; the replica ends identical; then a planned failover turns the
# replication around.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

step() { printf '\n=== %s\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

# applied GROUP: the secondary's applied sequence.
applied() { "$REPLTOOL" status "$1" | awk '$1 == "applied_seq" { print $2 }'; }
# last_seq DEV: the last sequence a primary's volume reserved.
last_seq() { dmsetup status "$1" | awk '{ print $8 }'; }
# wait_applied DEV GROUP: until GROUP has applied everything DEV's group captured.
wait_applied() {
	local want i
	want=$(last_seq "$1")
	for ((i = 0; i < 300; i++)); do
		[[ $(applied "$2") == "$want" ]] && return 0
		sleep 0.1
	done
	echo "demo: $2 did not reach sequence $want" >&2
	return 1
}

step "Four disks: data and metadata for the primary site and for the replica site"
DATA=$(loop_disk 256)
META=$(loop_disk 16)
RDATA=$(loop_disk 256)
RMETA=$(loop_disk 16)
SECTORS=$(blockdev --getsz "$DATA")
echo "primary: data $DATA meta $META; replica: data $RDATA meta $RMETA"

step "Metadata for both volumes (superblock, activity log, dirty bitmap), as drbdadm create-md"
show "$REPLTOOL" meta create --group vm1 --data-dev "$DATA" "$META"
show "$REPLTOOL" meta create --group vm1-dr --role secondary --data-dev "$RDATA" "$RMETA"

step "The primary volume (group vm1) and the replica (group vm1-dr, applying vm1's records)"
show dmsetup create vm1-disk0 --table "0 $SECTORS repl $DATA $META vm1 primary 2 ring_mb 64"
show dmsetup create vm1-dr-disk0 --table "0 $SECTORS repl $RDATA $RMETA vm1-dr secondary 2 source vm1"
dmsetup mknodes
show ls -l /dev/dm-repl/
show blockdev --getro /dev/mapper/vm1-dr-disk0

step "The shipper: the primary's records, applied on the replica, then released"
echo "$ repltool replicate --stats vm1 vm1-dr &"
"$REPLTOOL" replicate --stats vm1 vm1-dr &
SHIPPER=$!

step "A workload on the primary: random writes with fsyncs, a named marker, a discard"
echo "$ fio --rw=randwrite --bsrange=4k-256k --iodepth=16 --io_size=32M --fsync=32 ..."
fio --name=demo --filename=/dev/mapper/vm1-disk0 --direct=1 --ioengine=libaio \
	--rw=randwrite --bsrange=4k-256k --iodepth=16 --size=256M --io_size=32M \
	--fsync=32 --randseed=1 --output-format=terse --terse-version=3 >/dev/null
show dmsetup message vm1-disk0 0 marker before-upgrade
show blkdiscard -o 0 -l 1M /dev/mapper/vm1-disk0
wait_applied vm1-disk0 vm1-dr

step "Status: role group volume state seq released ring_used/size dirty/regions ..."
show dmsetup status
show "$REPLTOOL" status vm1-dr

step "The replica equals the primary, byte for byte"
show cmp "$DATA" "$RDATA"
echo "identical"

step "Planned failover: stop the VM and the shipper, demote the primary, promote the replica"
echo "(a role changes only while every volume of its group is suspended)"
echo "$ kill -TERM <the shipper>"
kill -TERM "$SHIPPER"
wait "$SHIPPER"
show dmsetup suspend vm1-disk0
show dmsetup message vm1-disk0 0 role secondary
show dmsetup message vm1-disk0 0 source vm1-dr
show dmsetup resume vm1-disk0
show dmsetup suspend vm1-dr-disk0
show dmsetup message vm1-dr-disk0 0 role primary
show dmsetup resume vm1-dr-disk0
show dmsetup status

step "The VM runs at the replica site now; its writes flow back"
show dd if=/dev/urandom of=/dev/mapper/vm1-dr-disk0 bs=64k count=64 seek=100 oflag=direct status=none
show "$REPLTOOL" replicate --once --stats vm1-dr vm1
show cmp "$DATA" "$RDATA"
echo "identical"

step "Clean up"
dmsetup remove vm1-disk0
dmsetup remove vm1-dr-disk0
loop_disks_free
echo "live objects (groups volumes files): $(live_objects)"
