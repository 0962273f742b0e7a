#!/usr/bin/env bash
# The replica is always at a flush boundary: interrupt the apply at random
# points by killing the feeder, and check each point against what the
# primary's disk saw. Runs in the guest (tests/guest/run.sh, or alone:
#   DMREPL_KO=$PWD/dm-repl.ko tests/guest/vm.sh --quiet --out build/guest/ac \
#       -- bash tests/guest/apply-crash.sh
# ). Prints TAP.
#
# The stacks (brd RAM disks, metadata on loop devices):
#
#   primary   acp:  repl (group acp)  ->  log-writes  ->  /dev/ram0
#                                               log   ->  /dev/ram1
#   secondary acs:  repl (group acs, secondary, source acp)  ->  /dev/ram2
#
# dm-log-writes is the oracle: it logs every write the primary's disk saw
# and a FLUSH entry for every flush, in the order the disk made them durable.
# The feeder is "repltool dump --raw -f acp | repltool apply acs". A point:
# SIGKILL the apply at a random moment, stop the dump, read applied_seq and
# applied_epoch (dmsetup status), release the primary's ring up to
# applied_seq, keep the replica's state, start the feeder again. The feeder
# resumes by itself: dump starts at the oldest record not released, which is
# at most applied_seq + 1, and the module skips records at or below
# applied_seq. Releasing only what the secondary applied (never what dump
# merely wrote into the pipe, as "dump --release" would) is what makes the
# restart correct: records that were in the pipe or in a batch the kill cut
# short are still in the ring.
#
# Half the time the apply gets small batches (16 to 256 KiB), cut inside
# epochs; the module applies a batch to its end once started, so a kill
# lands between batches.
#
# 1. Raw: tests/guest/logwrites_check write, one writer, one write in
#    flight, epochs of 1-5 O_DIRECT writes (some overlapping, some FUA)
#    each ended by fsync, so that the primary's epochs and the log's flush
#    marks are the same, while the points are taken. Each point keeps a
#    hash of every 4 KiB block of the replica (logwrites_check hash), with
#    the least flush mark it must have reached: applied_epoch - 1 (every
#    epoch before the one of applied_seq is applied and flushed). At the end
#    the log is complete (log-writes removed) and logwrites_check check
#    classifies every point: exact (the primary's state at a flush mark),
#    partial (a flush mark plus some writes of the next epoch, what the
#    primary's disk may hold after a power cut) or violation. Violations
#    must be 0; a replica with one block of random data must be one.
# 2. ext4: mkfs.ext4 on the primary, untar a source tree (/usr/include/linux),
#    delete half of it, sync, unmount, with the feeder stopped; then the
#    backlog is applied in steps of a random number of records, each killed
#    after a random delay. At each point a copy of the replica is mounted
#    (the journal replayed) and unmounted, and e2fsck -fn must find nothing.
#    These points are classified too.
#
# Environment: TEST_APPLY_SEED (random by default, printed; repeats the
# random choices, not the timing), TEST_APPLY_POINTS (raw points, default
# 55; 0 skips the raw part), TEST_APPLY_EXT4_POINTS (default 12; 0 skips the
# ext4 part), TEST_APPLY_KEEP=1 keeps the work directory.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/lib/tap.sh
source "$HERE/../lib/tap.sh"
# shellcheck source=tests/guest/lib.sh
source "$HERE/lib.sh"

if [[ "${GUEST:-}" != 1 ]]; then
	echo "apply-crash.sh runs in the guest: tests/guest/vm.sh -- bash tests/guest/apply-crash.sh" >&2
	exit 2
fi

# Programs run from tmpfs: an exec from the project's uncached 9p mount
# costs a noticeable fraction of a second under TCG, and a point runs a few.
BIN=$(mktemp -d /tmp/apply-crash-bin.XXXXXX)
cp "$HERE/logwrites_check" "$REPLTOOL" "$BIN/" 2>/dev/null
CHECK=$BIN/logwrites_check
REPLTOOL=$BIN/repltool
SEED=${TEST_APPLY_SEED:-$(($(od -An -N4 -tu4 /dev/urandom) % 1000000 + 1))}
POINTS=${TEST_APPLY_POINTS:-55}
EXT4_POINTS=${TEST_APPLY_EXT4_POINTS:-12}
GP=acp		# the groups
GS=acs
W=$(mktemp -d /tmp/apply-crash.XXXXXX)
FEED_DUMP=
FEED_APPLY=
WRITER=
WORKLOAD=

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	local p
	for p in $FEED_APPLY $FEED_DUMP $WRITER $WORKLOAD; do
		kill -KILL "$p" 2>/dev/null
	done
	wait 2>/dev/null
	umount /mnt/acp /mnt/acs-copy 2>/dev/null
	dm_remove_all
	loop_disks_free
	rmmod brd 2>/dev/null
	if [[ ${TEST_APPLY_KEEP:-0} == 1 ]]; then
		echo "# kept $W" >&2
	else
		rm -rf "$W"
	fi
	rm -rf "$BIN"
}
trap cleanup EXIT

# status_field DEV N: field N of "dmsetup status DEV" (1-based: field 4 is
# the role; primary: 8 last sequence, 9 released; secondary: 8 applied_seq,
# 9 applied_epoch).
status_field() {
	dmsetup status "$1" | awk -v n="$2" '{print $n}'
}

# start_feeder: dump the primary's ring into the secondary, in the
# background. Half the time with small batches (16 to 256 KiB): repltool
# apply then cuts batches inside epochs, where they are full, and a kill
# between two batches leaves the replica inside an epoch. (The module
# applies a batch to its end once it started: a kill lands between
# batches.)
# Options for the dump replace its default -f.
start_feeder() {
	kb=$((RANDOM % 2 ? 4096 : 16 << (RANDOM % 5)))
	[[ -p $W/fifo ]] || mkfifo "$W/fifo"
	"$REPLTOOL" dump --raw "${@:--f}" $GP >"$W/fifo" 2>>"$W/dump.err" &
	FEED_DUMP=$!
	"$REPLTOOL" apply --batch-kb $kb $GS <"$W/fifo" >>"$W/apply.out" 2>>"$W/apply.err" &
	FEED_APPLY=$!
}

# stop_feeder: SIGKILL the apply (the interruption), then stop the dump.
# Returns non-zero, with the reason in $why, when the apply had already
# ended by itself (a refused batch, or any other error).
stop_feeder() {
	local rc=0
	why=""
	if ! kill -KILL "$FEED_APPLY" 2>/dev/null; then
		wait "$FEED_APPLY"
		rc=$?
		why="repltool apply ended by itself with status $rc: $(tail -3 "$W/apply.err")"
	fi
	{ wait "$FEED_APPLY"; } 2>/dev/null
	kill -TERM "$FEED_DUMP" 2>/dev/null
	{ wait "$FEED_DUMP"; } 2>/dev/null
	FEED_APPLY=
	FEED_DUMP=
	[[ -z $why ]]
}

# read_applied: applied_seq and applied_epoch of the secondary, into
# $applied and $epoch, and $min, the least flush mark the replica must have
# reached (every epoch before applied_epoch is applied and flushed).
read_applied() {
	local f
	read -r -a f < <(dmsetup status acsec)
	applied=${f[7]}
	epoch=${f[8]}
	min=$((epoch > 1 ? epoch - 1 : 0))
}

# release_applied: free the primary's ring up to the secondary's applied_seq
# ($applied). "dump --release -n N" releases the N oldest records once it
# has written them out (no record is VOID here: no write fails).
released=0
release_applied() {
	local n=$((applied - released))
	((n > 0)) || return 0
	"$REPLTOOL" dump --raw --release -n "$n" $GP >/dev/null || return 1
	released=$applied
}

# sleep_ms MS
sleep_ms() {
	sleep "$(($1 / 1000)).$(printf %03d $(($1 % 1000)))"
}

# catch_up TIMEOUT_S: with the feeder running, wait until the secondary has
# applied everything the primary captured.
catch_up() {
	local last i
	last=$(status_field acprim 8)
	for ((i = 0; i < $1 * 10; i++)); do
		(($(status_field acsec 8) >= last)) && return 0
		kill -0 "$FEED_APPLY" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# make_stack RING_MB: aclog (log-writes over /dev/ram0, log /dev/ram1),
# acprim (group acp over aclog), acsec (group acs over /dev/ram2).
make_stack() {
	local sectors m1 m2
	sectors=$(blockdev --getsz /dev/ram0)
	m1=$(loop_disk 8) && m2=$(loop_disk 8) || return 1
	dm_create aclog "0 $sectors log-writes /dev/ram0 /dev/ram1" || return 1
	meta_create "$m1" $GP /dev/mapper/aclog || return 1
	dm_create acprim "0 $sectors repl /dev/mapper/aclog $m1 $GP primary 2 ring_mb $1" ||
		return 1
	"$REPLTOOL" meta create --force --role secondary --group $GS \
		--data-dev /dev/ram2 "$m2" >/dev/null || return 1
	dm_create acsec "0 $sectors repl /dev/ram2 $m2 $GS secondary 2 source $GP"
}

tap_plan 13
tap_diag "seed $SEED (TEST_APPLY_SEED=$SEED repeats the random choices)"
RANDOM=$SEED
modprobe dm-log-writes || { tap_diag "no dm-log-writes module"; exit 1; }
[[ -x $CHECK ]] || { tap_diag "no $CHECK: make -C tests/guest"; exit 1; }

# ---------------------------------------------------------------------------
# 1. Raw writes, kill the feeder at random points.
# ---------------------------------------------------------------------------
if ((POINTS == 0)); then
	for t in setup points caught-up no-overflow marks classified final control; do
		tap_skip "raw: $t" "TEST_APPLY_POINTS=0"
	done
fi
((POINTS == 0)) || {
start=$SECONDS
ram_disks 3 64
setup_ok=1
make_stack 64 || setup_ok=0
if ((setup_ok)); then
	tap_ok "raw: primary repl over log-writes and a secondary, created"
else
	tap_fail "raw: primary repl over log-writes and a secondary, created" "$(dmesg | tail -5)"
	exit 1
fi

"$CHECK" write -s "$SEED" -M 40 -w 5 -z 32 -F -p 150 /dev/mapper/acprim >"$W/writer.out" 2>&1 &
WRITER=$!

mkdir -p "$W/raw"
feeder_errors=""
points_log=""
for ((i = 1; i <= POINTS; i++)); do
	start_feeder
	# Mostly short runs, so that the kill often lands inside a batch.
	# repltool apply takes a while to start under TCG; then the kill
	# lands anywhere in the stream.
	delay=$((100 + RANDOM % (RANDOM % 4 == 0 ? 2000 : 700)))
	sleep_ms $delay
	if ! stop_feeder; then
		feeder_errors+="point $i: $why"$'\n'
		break
	fi
	read_applied
	points_log+="point $i: batch-kb $kb, killed after $delay ms at applied_seq $applied (epoch $epoch)"$'\n'
	"$CHECK" hash -B 4096 -m "$min" -l "raw-$i:seq=$applied:epoch=$epoch" \
		/dev/mapper/acsec "$W/raw/$(printf %03d "$i").h" ||
		feeder_errors+="point $i: hash failed"$'\n'
	release_applied || feeder_errors+="point $i: release to $applied failed"$'\n'
done
points=$((i - 1))
if kill -0 $WRITER 2>/dev/null; then
	kill -TERM $WRITER
fi
wait $WRITER
writer_rc=$?
WRITER=
writer=$(cat "$W/writer.out")
if [[ -z $feeder_errors && $writer_rc == 0 ]]; then
	tap_ok "raw: $points points, the feeder killed at each one (never ended by itself)"
else
	tap_fail "raw: $points points, the feeder killed at each one (never ended by itself)" \
		"$feeder_errors writer status $writer_rc: $writer"
fi
tap_diag "$writer"
tap_diag "${points_log%$'\n'}"

# The last point: everything applied.
start_feeder
if catch_up 120; then
	stop_feeder
	read_applied
	"$CHECK" hash -B 4096 -m "$((epoch - 1))" -l "raw-final:seq=$applied:epoch=$epoch" \
		/dev/mapper/acsec "$W/raw/final.h"
	if cmp -s /dev/mapper/acprim /dev/mapper/acsec; then
		tap_ok "raw: once caught up (seq $applied), the replica equals the primary"
	else
		tap_fail "raw: once caught up (seq $applied), the replica equals the primary" \
			"$(cmp /dev/mapper/acprim /dev/mapper/acsec 2>&1 | head -3)"
	fi
else
	stop_feeder
	tap_fail "raw: once caught up, the replica equals the primary" \
		"not caught up in 120 s: primary at $(status_field acprim 8), secondary at $(status_field acsec 8)
$(tail -5 "$W/apply.err")"
fi
pstatus=$(dmsetup status acprim)
last_epoch=$(status_field acsec 9)
tap_diag "primary: $pstatus"
tap_diag "secondary: $(dmsetup status acsec)"
read -r _ _ _ _ _ _ pstate _ _ _ _ overflows _ <<<"$pstatus"
if [[ $pstate == uptodate && $overflows == 0 ]]; then
	tap_ok "raw: the primary never overflowed its ring (every write has a record)"
else
	tap_fail "raw: the primary never overflowed its ring (every write has a record)" "$pstatus"
fi

# A negative control: the caught-up replica with one 4 KiB block of random
# data must be a violation.
dd if=/dev/mapper/acsec of="$W/bad" bs=1M iflag=direct status=none
dd if=/dev/urandom of="$W/bad" bs=4096 seek=$((RANDOM % 16384)) count=1 conv=notrunc status=none
"$CHECK" hash -B 4096 -l raw-corrupted "$W/bad" "$W/bad.h"
rm -f "$W/bad"

# Complete the log: removing log-writes logs what is left and its end mark.
dmsetup remove acprim && dmsetup remove aclog
info=$("$CHECK" info /dev/ram1)
tap_diag "$info"
flushes=$(sed -n 's/.* flushes=\([0-9]*\).*/\1/p' <<<"$info")
# The last record is the writer's last fsync: a FLUSH closing epoch
# last_epoch, the first epoch being 1. The module's own flushes come on
# top: two at the removal (before its metadata says clean, after every
# write: one before the lock of every group, one under it), and one before
# each AL transaction that dropped an extent (evictions, the status's 19th
# field; none with this AL so far).
evictions=$(awk '{ print $19 }' <<<"$pstatus")
if ((flushes >= last_epoch + 2 && flushes <= last_epoch + 2 + evictions)); then
	tap_ok "raw: the log's flush marks are the primary's FLUSH records and the module's ($flushes: $last_epoch, the removal's two, of $evictions evictions)"
else
	tap_fail "raw: the log's flush marks are the primary's FLUSH records and the module's" \
		"log: $flushes flushes; epoch of the last record applied: $last_epoch; AL evictions: $evictions"
fi

result=$("$CHECK" check -B 4096 /dev/ram1 "$W"/raw/*.h)
rc=$?
summary=$(grep '^lwcheck-summary:' <<<"$result")
raw_exact=$(sed -n 's/.* exact=\([0-9]*\).*/\1/p' <<<"$summary")
raw_partial=$(sed -n 's/.* partial=\([0-9]*\).*/\1/p' <<<"$summary")
raw_bad=$(sed -n 's/.* violations=\([0-9]*\).*/\1/p' <<<"$summary")
name="raw: $((points + 1)) interruption points, each at a flush mark or inside the next epoch"
if ((rc == 0)) && [[ -n $summary ]]; then
	tap_ok "$name"
else
	tap_fail "$name" "$(grep -v 'result=exact\|result=partial' <<<"$result" | head -20)"
fi
tap_diag "$(grep '^lwcheck:' <<<"$result" | sed 's/^lwcheck: //')"
tap_diag "raw points: $((points + 1)) tried, exact=$raw_exact partial=$raw_partial violations=$raw_bad"
tap_diag "$summary"
if grep -q 'label=raw-final:.* result=exact mark=\([0-9]*\) ' <<<"$result" &&
	grep 'label=raw-final:' <<<"$result" | grep -q " mark=$flushes "; then
	tap_ok "raw: the caught-up replica is exactly the last flush mark ($flushes)"
else
	tap_fail "raw: the caught-up replica is exactly the last flush mark ($flushes)" \
		"$(grep 'label=raw-final:' <<<"$result")"
fi
bad=$("$CHECK" check -q -B 4096 /dev/ram1 "$W/bad.h")
if (($? == 1)) && grep -q 'result=violation' <<<"$bad"; then
	tap_ok "raw: the checker finds a violation in the replica with one block of random data"
else
	tap_fail "raw: the checker finds a violation in the replica with one block of random data" "$bad"
fi
tap_diag "raw phase: $((SECONDS - start)) s"
dm_remove_all
loop_disks_free
}

# ---------------------------------------------------------------------------
# 2. ext4: a real workload, kill the feeder at random points, fsck copies.
# ---------------------------------------------------------------------------
if ((EXT4_POINTS == 0)); then
	for t in setup workload fsck caught-up classified; do
		tap_skip "ext4: $t" "TEST_APPLY_EXT4_POINTS=0"
	done
	tap_done
fi
start=$SECONDS
tar -C / -cf "$W/src.tar" usr/include/linux 2>/dev/null
ram_disks 3 64
setup_ok=1
make_stack 64 || setup_ok=0
released=0
if ((setup_ok)); then
	tap_ok "ext4: primary repl over log-writes and a secondary, created"
else
	tap_fail "ext4: primary repl over log-writes and a secondary, created" "$(dmesg | tail -5)"
	exit 1
fi

# The workload, first, with the feeder stopped: the ring (64 MiB) keeps its
# records. A background sync every 0.3 s, as an application calling fsync
# would, gives more flush marks than the journal's commits alone. The
# primary's last sequence once mkfs is done goes to $W/mkfs.seq: a replica
# at or past it has a file system.
mkdir -p /mnt/acp /mnt/acs-copy "$W/ext4"
(
	set -e
	mkfs.ext4 -q -F -b 4096 -E nodiscard,lazy_itable_init=0,lazy_journal_init=0 \
		/dev/mapper/acprim
	status_field acprim 8 >"$W/mkfs.seq"
	mount -t ext4 /dev/mapper/acprim /mnt/acp
	(while [[ -d /mnt/acp/lost+found ]]; do sync -f /mnt/acp; sleep 0.3; done) &
	syncer=$!
	tar -C /mnt/acp -xf "$W/src.tar"
	sync
	# Delete half: every other file.
	find /mnt/acp -type f | sort | awk 'NR % 2' | xargs rm -f
	sync
	kill $syncer
	wait $syncer || true
	umount /mnt/acp
) >"$W/workload.out" 2>&1
workload_rc=$?
if ((workload_rc == 0)); then
	tap_ok "ext4: mkfs, untar, delete half, sync, umount on the primary"
else
	tap_fail "ext4: mkfs, untar, delete half, sync, umount on the primary" \
		"$(tail -10 "$W/workload.out")"
fi
last=$(status_field acprim 8)
mkfs_seq=$(cat "$W/mkfs.seq" 2>/dev/null || echo 0)
tap_diag "ext4: workload done after $((SECONDS - start)) s: $last records, mkfs done at $mkfs_seq"

# The points: the backlog is applied in steps; each step feeds a random
# number of the next records (dump -n, no -f: at its end the apply ends by
# itself) with a random batch size, and is killed after a random delay, if
# it is still running. A point is where the secondary is then.
fsck_errors=""
points_log=""
nofs=0
checked=0
for ((i = 1; i <= EXT4_POINTS; i++)); do
	left=$((last - released))
	n=$((1 + RANDOM % (2 * left / (EXT4_POINTS - i + 1) + 1)))
	start_feeder -n $n
	delay=$((100 + RANDOM % 1500))
	sleep_ms $delay
	kill -KILL $FEED_APPLY 2>/dev/null
	# (braces: no "Killed" job message from bash)
	{ wait $FEED_APPLY; } 2>/dev/null
	rc=$?
	{ wait $FEED_DUMP; } 2>/dev/null
	FEED_APPLY=
	FEED_DUMP=
	if ((rc != 0 && rc != 137)); then
		fsck_errors+="point $i: repltool apply ended with status $rc: $(tail -3 "$W/apply.err")"$'\n'
		break
	fi
	read_applied
	points_log+="point $i: $n records fed in batches of $kb KiB, $( ((rc == 137)) && echo "killed after $delay ms" || echo "fed whole"), applied_seq $applied (epoch $epoch)"$'\n'
	dd if=/dev/mapper/acsec of="$W/copy" bs=1M iflag=direct status=none
	"$CHECK" hash -B 4096 -m "$min" -l "ext4-$i:seq=$applied:epoch=$epoch" \
		"$W/copy" "$W/ext4/$(printf %03d "$i").h"
	release_applied
	# Before all of mkfs is applied, the replica is half a file system,
	# as the primary's disk was at that time: nothing to check.
	if ((applied < mkfs_seq)); then
		nofs=$((nofs + 1))
		rm -f "$W/copy"
		continue
	fi
	if ! dumpe2fs -h "$W/copy" >/dev/null 2>&1; then
		fsck_errors+="point $i (seq $applied, mkfs done at $mkfs_seq): no ext4 superblock"$'\n'
		rm -f "$W/copy"
		continue
	fi
	if ! out=$(mount -t ext4 -o loop "$W/copy" /mnt/acs-copy 2>&1); then
		fsck_errors+="point $i (seq $applied): mount failed: $out"$'\n'
	else
		umount /mnt/acs-copy
		if ! out=$(e2fsck -fn "$W/copy" 2>&1); then
			fsck_errors+="point $i (seq $applied): e2fsck -fn: $(tail -8 <<<"$out")"$'\n'
		fi
	fi
	checked=$((checked + 1))
	rm -f "$W/copy"
done
ext4_points=$((i - 1))
name="ext4: $ext4_points points, each copy of the replica mounts (journal replayed) and e2fsck -fn finds nothing"
if [[ -z $fsck_errors ]]; then
	tap_ok "$name"
else
	tap_fail "$name" "$fsck_errors"
fi
tap_diag "${points_log%$'\n'}"
tap_diag "ext4 points: $ext4_points tried, $checked with a file system checked clean, $nofs before all of mkfs was applied"

start_feeder
pstatus=$(dmsetup status acprim)
read -r _ _ _ _ _ _ pstate _ _ _ _ overflows _ <<<"$pstatus"
if catch_up 180 && stop_feeder && cmp -s /dev/mapper/acprim /dev/mapper/acsec &&
	[[ $pstate == uptodate && $overflows == 0 ]]; then
	tap_ok "ext4: no overflow, and once caught up the replica equals the primary"
else
	stop_feeder 2>/dev/null
	tap_fail "ext4: no overflow, and once caught up the replica equals the primary" \
		"primary at $(status_field acprim 8), secondary at $(status_field acsec 8)
$(dmsetup status acprim)
$(tail -5 "$W/apply.err")"
fi
pstatus=$(dmsetup status acprim)
tap_diag "primary: $pstatus"
dmsetup remove acprim && dmsetup remove aclog
tap_diag "$("$CHECK" info /dev/ram1)"
result=$("$CHECK" check -B 4096 /dev/ram1 "$W"/ext4/*.h)
rc=$?
summary=$(grep '^lwcheck-summary:' <<<"$result")
name="ext4: every point at a flush mark or inside the next epoch"
if ((rc == 0)) && [[ -n $summary ]]; then
	tap_ok "$name"
else
	tap_fail "$name" "$(grep -v 'result=exact\|result=partial' <<<"$result" | head -20)"
fi
tap_diag "$(grep '^lwcheck:' <<<"$result" | sed 's/^lwcheck: //')"
tap_diag "ext4 points: $ext4_points tried, exact=$(sed -n 's/.* exact=\([0-9]*\).*/\1/p' <<<"$summary") partial=$(sed -n 's/.* partial=\([0-9]*\).*/\1/p' <<<"$summary") violations=$(sed -n 's/.* violations=\([0-9]*\).*/\1/p' <<<"$summary")"
tap_diag "$summary"
tap_diag "ext4 phase: $((SECONDS - start)) s"
tap_done
