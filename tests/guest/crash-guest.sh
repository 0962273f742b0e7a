#!/usr/bin/env bash
# One boot of the crash test (tests/crash.sh starts it through vm.sh, with
# three virtio disks that survive a guest reset):
#   /dev/vda  the volume's data device
#   /dev/vdb  its metadata device
#   /dev/vdc  the completed-write log (tests/guest/crashwriter.c)
#
# usage: crash-guest.sh ROUND SEED
#        crash-guest.sh --check-only ROUND
#
# 1. ROUND > 1 (the previous boot ended in a reset): load the volume and
#    check that every write the log says had completed in round ROUND - 1
#    has its regions dirty (crashwriter check). A forgotten write ends the
#    boot here, with the disks as the crash left them.
# 2. Unless --check-only: fresh metadata and an empty log, the volume,
#    crashwriter writing, and after a delay drawn from SEED (0.5 to 3 s) a
#    reset with sysrq-b: no sync, no unmount, a power cut for the guest.
#
# Results for the host, in VM_OUT (written directly, not through the
# console, so that the reset cannot lose them):
#   check  crashwriter check's output for round ROUND - 1
#   reset  "round=R seed=S delay_ms=D", written just before the reset
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
GROUP=crash
NAME=crashvol
WRITER=$HERE/crashwriter

die() {
	echo "crash-guest: $*" >&2
	exit 2
}

for d in $DATA $META $LOG; do
	[[ -b $d ]] || die "no $d: start with vm.sh --disk data --disk meta --disk log"
done
[[ -x $WRITER ]] || die "no $WRITER: make -C tests/guest"
SECTORS=$(blockdev --getsz $DATA)
TABLE="0 $SECTORS repl $DATA $META $GROUP primary 2 ring_mb 16"

# 1. The check of the previous round.
if ((ROUND > 1)); then
	dm_create $NAME "$TABLE" || die "cannot load the volume after the reset"
	dmsetup status $NAME
	result=$("$WRITER" check $GROUP $LOG $((ROUND - 1)) 2>&1)
	rc=$?
	printf '%s\n' "$result" | tee "$OUT/check"
	dmsetup remove $NAME || die "cannot remove the volume"
	((rc == 0)) || exit "$rc"
fi
((check_only)) && exit 0

# 2. A fresh start, then writes until the reset.
meta_create $META $GROUP $DATA || die "repltool meta create failed"
dd if=/dev/zero of=$LOG bs=64k count=$(($(blockdev --getsize64 $LOG) / 65536)) \
	oflag=direct conv=fsync status=none || die "cannot zero $LOG"
dm_create $NAME "$TABLE" || die "cannot create the volume"

RANDOM=$SEED
delay_ms=$((500 + RANDOM % 2501))
"$WRITER" write /dev/mapper/$NAME $LOG "$ROUND" "$SEED" &
writer=$!
sleep "$((delay_ms / 1000)).$(printf %03d $((delay_ms % 1000)))"
kill -0 $writer 2>/dev/null || die "crashwriter died before the reset"
echo "round=$ROUND seed=$SEED delay_ms=$delay_ms" >"$OUT/reset"
echo b >/proc/sysrq-trigger
sleep 10
die "sysrq-b did not reset the guest"
