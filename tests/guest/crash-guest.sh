#!/usr/bin/env bash
# One boot of the crash test (tests/crash.sh starts it through vm.sh, with
# four virtio disks that survive a guest reset):
#   /dev/vda  the volume's data device (64 MiB)
#   /dev/vdb  its metadata device: 1 MiB extents, at most 4 of them hot,
#             2 AL slots in odd rounds, 16 in even ones
#   /dev/vdc  the completed-write log (tests/guest/crashwriter.c)
#   /dev/vdd  the released-record log of the consumer (crashwriter consume)
#
# usage: crash-guest.sh ROUND SEED
#        crash-guest.sh --check-only ROUND
#
# Each round has a mode, from its number:
#   consumer  (rounds not a multiple of 4) ring_mb 16 and a consumer that
#             writes every WRITE record it reads to /dev/vdd (durably) and
#             only then releases it, so that extents go cold and the small
#             hot set is evicted all the time;
#   overflow  (every 4th round) ring_mb 2 and no consumer: nothing is ever
#             released, the ring fills at once and the writes overflow
#             into the dirty bitmap.
# With 2 AL slots a crash leaves at most the extents of the last two
# transactions dirty, so an extent a transaction missed is seen at once;
# 16 is the default, where the ring is reused less often.
#
# 1. ROUND > 1 (the previous boot ended in a reset): load the volume and
#    check that every write the log says had completed in round ROUND - 1
#    is accounted for (crashwriter check): its regions are dirty, or, in
#    consumer mode, its records are on /dev/vdd (they were released only
#    once they were there); and the same against the metadata as the crash
#    left it (copied before the load): the extents the current AL
#    transactions name and the on-disk bitmap, which recovery must all have
#    marked dirty. And the group goes on above every sequence the crashed
#    stream could use (its persisted bound). A forgotten write ends the boot
#    here, with the disks as the crash left them.
# 2. Unless --check-only: fresh metadata and empty logs, the volume, the
#    consumer (consumer mode), crashwriter writing, and after a delay drawn
#    from SEED (0.5 to 3 s) a reset with sysrq-b: no sync, no unmount, a
#    power cut for the guest.
#
# Results for the host, in VM_OUT (written directly, not through the
# console, so that the reset cannot lose them):
#   check  crashwriter check's output for round ROUND - 1, between a line
#          "mode=M" naming that round's mode and "check_rc=N", its status
#   reset  "round=R seed=S mode=M al_slots=A delay_ms=D", written just
#          before the reset
set -uo pipefail
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)

check_only=0
if [[ ${1:-} == --check-only ]]; then
	check_only=1
	shift
fi
ROUND=${1:?usage: crash-guest.sh ROUND SEED | --check-only ROUND}
SEED=${2:-0}
OUT=${VM_OUT:?crash-guest.sh runs in the guest (tests/crash.sh)}

DATA=/dev/vda
META=/dev/vdb
LOG=/dev/vdc
RELDEV=/dev/vdd
GROUP=crash
VOLUME=0
NAME=crashvol
WRITER=$HERE/crashwriter

die() {
	echo "crash-guest: $*" >&2
	exit 2
}

# config R: round R's mode, AL slots and table, in $mode, $al_slots and
# $table (no subshells: every fork is slow under TCG).
config() {
	local ring_mb=16

	mode=consumer
	al_slots=16
	if (($1 % 4 == 0)); then
		mode=overflow
		ring_mb=2
	fi
	if (($1 % 2)); then
		al_slots=2
	fi
	table="0 $SECTORS repl $DATA $META $GROUP primary 2 ring_mb $ring_mb"
}

# zero DEV: DEV all zero, durably.
zero() {
	dd if=/dev/zero of="$1" bs=64k count=$(($(blockdev --getsize64 "$1") / 65536)) \
		oflag=direct conv=fsync status=none || die "cannot zero $1"
}

for d in $DATA $META $LOG $RELDEV; do
	[[ -b $d ]] || die "no $d: start with vm.sh --disk data --disk meta --disk log --disk rel"
done
[[ -x $WRITER ]] || die "no $WRITER: make -C tests/guest"
SECTORS=$(blockdev --getsz $DATA)

# 1. The check of the previous round: the released records count only
# where a consumer released them.
if ((ROUND > 1)); then
	config $((ROUND - 1))
	rel=()
	[[ $mode == consumer ]] && rel=("$RELDEV")
	# What the metadata holds before the load changes it (the AL and
	# bitmap blocks: well within 1 MiB).
	dd if=$META of=/tmp/meta-before bs=64k count=16 iflag=direct status=none ||
		die "cannot copy $META"
	dm_create $NAME "$table" || die "cannot load the volume after the reset"
	dmsetup status $NAME
	result=$("$WRITER" check -m /tmp/meta-before $GROUP $LOG $((ROUND - 1)) "${rel[@]}" 2>&1)
	rc=$?
	# The crashed stream's sequences are never used again: the new one
	# starts at the bound persisted before the crash (Documentation/dm-repl.md).
	next=$("$REPLTOOL" status $GROUP | awk '$1 == "next_seq" { print $2 }')
	if ((rc == 0 && next <= 4294967296)); then
		result+=$'\n'"after the crash the next sequence is ${next}: not above the persisted bound"
		rc=1
	fi
	printf 'mode=%s\n%s\ncheck_rc=%s\n' "$mode" "$result" "$rc" | tee "$OUT/check"
	dmsetup remove $NAME || die "cannot remove the volume"
	((rc == 0)) || exit "$rc"
fi
((check_only)) && exit 0

# 2. A fresh start, then writes until the reset. 64 extents of 1 MiB, at
# most 4 hot: nearly every write needs an AL transaction and an eviction.
config "$ROUND"
"$REPLTOOL" meta create --force --group $GROUP --volume $VOLUME \
	--extent-kb 1024 --hot-extents 4 --al-slots "$al_slots" \
	--data-dev $DATA $META >/dev/null ||
	die "repltool meta create failed"
zero $LOG
zero $RELDEV
dm_create $NAME "$table" || die "cannot create the volume"

consumer=
if [[ $mode == consumer ]]; then
	for ((i = 0; i < 50; i++)); do
		[[ -c /dev/dm-repl/$GROUP ]] && break
		sleep 0.1
	done
	"$WRITER" consume $GROUP $RELDEV "$ROUND" &
	consumer=$!
fi

RANDOM=$SEED
delay_ms=$((500 + RANDOM % 2501))
"$WRITER" write /dev/mapper/$NAME $LOG "$ROUND" "$SEED" &
writer=$!
sleep "$((delay_ms / 1000)).$(printf %03d $((delay_ms % 1000)))"
kill -0 $writer 2>/dev/null || die "crashwriter died before the reset"
if [[ -n $consumer ]]; then
	kill -0 "$consumer" 2>/dev/null || die "the consumer died before the reset"
fi
dmsetup status $NAME
echo "round=$ROUND seed=$SEED mode=$mode al_slots=$al_slots delay_ms=$delay_ms" >"$OUT/reset"
echo b >/proc/sysrq-trigger
sleep 10
die "sysrq-b did not reset the guest"
