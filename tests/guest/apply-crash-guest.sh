#!/usr/bin/env bash
# One boot of the apply power-cut test (tests/apply-crash.sh starts it
# through vm.sh, with five virtio disks that survive a guest reset):
#   /dev/vda  the primary's data device       /dev/vdb  its metadata
#   /dev/vdc  the dm-log-writes log of vda
#   /dev/vdd  the secondary's data device     /dev/vde  its metadata
# and STREAM, a file in the host's build directory.
#
# usage: apply-crash-guest.sh prepare SEED STREAM
#        apply-crash-guest.sh round ROUND SEED STREAM
#        apply-crash-guest.sh final ROUND STREAM
#
# prepare  the primary (repl over log-writes over vda), the workload
#          (logwrites_check write, one write in flight, fsync per epoch),
#          every record into STREAM (repltool dump --raw), the primary and
#          log-writes removed (the log is complete), fresh secondary metadata.
#          Then what "round 1 SEED" does.
# round    (ROUND > 1) load the secondary after the reset and check the
#          replica against the log (logwrites_check check, the least flush
#          mark being the number of FLUSH records at or below applied_seq in
#          STREAM) into VM_OUT/check; then apply STREAM from where the
#          secondary is (from applied_seq - 16 on: the module skips what is
#          applied), and after a
#          delay drawn from SEED reset the guest with sysrq-b: no sync, a
#          power cut in the middle of the apply.
# final    check as a round does, then apply the rest of STREAM and check
#          that the replica is the primary's last state (VM_OUT/final).
#
# Results for the host in VM_OUT, written directly, not through the
# console: check, reset ("round=R seed=S delay_ms=D batch_kb=K
# applied_before=A"), final.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/guest/lib.sh
source "$HERE/lib.sh"
OUT=${VM_OUT:?apply-crash-guest.sh runs in the guest (tests/apply-crash.sh)}
CHECK=$HERE/logwrites_check

PDATA=/dev/vda
PMETA=/dev/vdb
LOG=/dev/vdc
SDATA=/dev/vdd
SMETA=/dev/vde
GP=acp
GS=acs

die() {
	echo "apply-crash-guest: $*" >&2
	exit 2
}

for d in $PDATA $PMETA $LOG $SDATA $SMETA; do
	[[ -b $d ]] || die "no $d: start with vm.sh and five --disk (tests/apply-crash.sh)"
done
[[ -x $CHECK ]] || die "no $CHECK: make -C tests/guest"
SECTORS=$(blockdev --getsz $SDATA)

load_secondary() {
	dm_create acsec "0 $SECTORS repl $SDATA $SMETA $GS secondary 2 source $GP"
}

# check STREAM FILE: classify the replica; its output into FILE.
check() {
	local f applied min rc
	read -r -a f < <(dmsetup status acsec)
	applied=${f[7]}
	min=$("$CHECK" stream-mark "$1" "$applied" | sed -n 's/^flushes=\([0-9]*\) .*/\1/p')
	{
		echo "status: ${f[*]}"
		echo "applied_seq=$applied min_mark=$min"
		"$CHECK" check -B 4096 -m "$min" $LOG /dev/mapper/acsec
	} >"$2" 2>&1
	rc=$?
	cat "$2"
	return $rc
}

cmd=${1:?usage: apply-crash-guest.sh prepare|round|final ...}
shift
case $cmd in
prepare)
	SEED=${1:?} STREAM=${2:?}
	modprobe dm-log-writes || die "no dm-log-writes"
	dd if=/dev/zero of=$LOG bs=1M count=1 oflag=direct status=none
	dm_create aclog "0 $SECTORS log-writes $PDATA $LOG" || die "log-writes"
	meta_create $PMETA $GP /dev/mapper/aclog || die "primary metadata"
	dm_create acprim "0 $SECTORS repl /dev/mapper/aclog $PMETA $GP primary 2 ring_mb 64" ||
		die "primary"
	"$CHECK" write -s "$SEED" -M 16 -w 12 -z 16 -F /dev/mapper/acprim || die "writer"
	dmsetup status acprim
	"$REPLTOOL" dump --raw $GP >"$STREAM" || die "dump"
	sync "$STREAM"
	{ dmsetup remove acprim && dmsetup remove aclog; } || die "cannot remove the primary"
	"$CHECK" info $LOG
	"$CHECK" stream-mark "$STREAM" 0
	"$REPLTOOL" meta create --force --role secondary --group $GS \
		--data-dev $SDATA $SMETA >/dev/null || die "secondary metadata"
	load_secondary || die "cannot load the secondary"
	ROUND=1
	;;
round)
	ROUND=${1:?} SEED=${2:?} STREAM=${3:?}
	load_secondary || die "cannot load the secondary after the reset"
	check "$STREAM" "$OUT/check" || exit 1
	;;
final)
	ROUND=${1:?} STREAM=${2:?}
	load_secondary || die "cannot load the secondary after the reset"
	check "$STREAM" "$OUT/check" || exit 1
	"$REPLTOOL" apply --stats -i "$STREAM" $GS || die "the last apply failed"
	check "$STREAM" "$OUT/final"
	echo "cmp: $(cmp $PDATA /dev/mapper/acsec 2>&1 && echo equal)" | tee -a "$OUT/final"
	dmsetup remove acsec
	exit 0
	;;
*)
	die "unknown command $cmd"
	;;
esac

# Apply the stream from where the secondary is, and cut the power.
RANDOM=$SEED
kb=$((16 << (RANDOM % 3)))
delay_ms=$((300 + RANDOM % 2200))
read -r -a f < <(dmsetup status acsec)
# Resume as a shipper does, from the records above applied_seq, but resend
# the last 16 applied ones: the module must skip them.
from=$("$CHECK" stream-mark "$STREAM" $((f[7] > 16 ? f[7] - 16 : 0)) | sed -n 's/.* offset=//p')
tail -c +$((from + 1)) "$STREAM" | "$REPLTOOL" apply --batch-kb $kb $GS &
apply=$!
sleep "$((delay_ms / 1000)).$(printf %03d $((delay_ms % 1000)))"
kill -0 $apply 2>/dev/null && running=1 || running=0
echo "round=$ROUND seed=$SEED delay_ms=$delay_ms batch_kb=$kb applied_before=${f[7]} apply_running=$running" >"$OUT/reset"
echo b >/proc/sysrq-trigger
sleep 10
die "sysrq-b did not reset the guest"
