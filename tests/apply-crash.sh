#!/usr/bin/env bash
# The apply power-cut test: the replica is at a flush boundary (or inside
# the next epoch) whenever the secondary's host loses power in the middle
# of the apply, and the apply resumes from applied_seq after the reboot.
#
# Five raw disk files in build/apply-crash/ are the guest's /dev/vda..vde
# in every boot (the primary's data, metadata and dm-log-writes log, the
# secondary's data and metadata; writes the guest saw complete survive a
# reset), and build/apply-crash/stream holds the primary's records. Boot 1
# (tests/guest/apply-crash-guest.sh prepare) runs the workload on the
# primary, stacked over dm-log-writes, keeps the record stream and the
# complete log, creates the secondary and starts round 1. A round applies
# the stream from where the secondary is (repltool apply, small batches)
# and resets the guest with sysrq-b after a delay drawn from the round's
# seed; the next boot loads the secondary and checks the replica with
# tests/guest/logwrites_check against the log: exact at a flush mark, or a
# flush mark plus some writes of the next epoch, never below the mark that
# applied_seq promises. The last boot checks, applies the rest and checks
# that the replica is the primary's last state.
#
# usage: tests/apply-crash.sh     (TAP on stdout, one test per round + 2)
# Environment: APPLY_CRASH_ROUNDS (default 4), APPLY_CRASH_SEED (the first
# round's seed; round i uses APPLY_CRASH_SEED + i - 1; default random).
#
# The run stops at the first failure and leaves the disks and every boot's
# output (out-N/: console.log, output.log, check, reset) in
# build/apply-crash/.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
TOP=$PWD
source tests/lib/tap.sh

ROUNDS=${APPLY_CRASH_ROUNDS:-4}
SEED=${APPLY_CRASH_SEED:-$((($(od -An -N4 -tu4 /dev/urandom) % 1000000) + 1))}
DIR=$TOP/build/apply-crash
BOOT_TIMEOUT=240

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "APPLY_CRASH_ROUNDS: not a positive number" >&2; exit 2; }
[[ $SEED =~ ^[0-9]+$ ]] || { echo "APPLY_CRASH_SEED: not a number" >&2; exit 2; }

if [[ ! -f dm-repl.ko ]]; then
	make -s module 2>&1 | sed 's/^/# /'
fi
make -s userspace 2>&1 | sed 's/^/# /'
make -s -C tests/guest logwrites_check 2>&1 | sed 's/^/# /'
if [[ ! -f dm-repl.ko || ! -x tests/guest/logwrites_check || ! -x userspace/repltool/repltool ]]; then
	echo "Bail out! cannot build dm-repl.ko, repltool or tests/guest/logwrites_check"
	exit 1
fi

rm -rf "$DIR"
mkdir -p "$DIR"
truncate -s 32M "$DIR/pdata" "$DIR/sdata"
truncate -s 8M "$DIR/pmeta" "$DIR/smeta"
truncate -s 48M "$DIR/log"
STREAM=$DIR/stream

DISKS=(pdata pmeta log sdata smeta)
GUEST_SCRIPT=tests/guest/apply-crash-guest.sh
source tests/lib/reset.sh

# field NAME FILE: NAME=VALUE from FILE's first lwcheck line.
field() {
	grep -m1 '^lwcheck: ' "$2" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$1=//p"
}

exact=0 partial=0 violations=0
tap_plan $((ROUNDS + 2))
tap_diag "seeds $SEED to $((SEED + ROUNDS - 1)) (APPLY_CRASH_SEED=$SEED repeats this run)"
start=$SECONDS
boot 1 prepare "$SEED" "$STREAM"
why=$(boot_trouble 1 reset)
if [[ -z $why && -s $STREAM ]]; then
	tap_ok "boot 1: workload on the primary over dm-log-writes, stream kept, round 1 started"
	tap_diag "$(grep -E '^(writer|log|flushes)' "$DIR/out-1/output.log")"
else
	tap_fail "boot 1: workload on the primary over dm-log-writes, stream kept, round 1 started" \
		"${why:-no stream}"
	ROUNDS=0
fi

for ((round = 1; round <= ROUNDS; round++)); do
	seed=$((SEED + round - 1))
	name="round $round (seed $seed): after the power cut the replica is at a flush mark or inside the next epoch, at or past applied_seq"
	if ((round > 1)); then
		why=$(boot_trouble "$round" reset)
		if [[ -n $why ]]; then
			tap_fail "$name" "$why"
			break
		fi
	fi
	reset=$(cat "$DIR/out-$round/reset")
	n=$((round + 1))
	if ((round < ROUNDS)); then
		boot "$n" round "$n" "$((seed + 1))" "$STREAM"
	else
		boot "$n" final "$n" "$STREAM"
	fi
	check=$DIR/out-$n/check
	result=$(field result "$check")
	summary="round $round: reset with $reset; after it: $(sed -n 2p "$check" 2>/dev/null), $(grep -m1 '^lwcheck: ' "$check" | sed 's/^lwcheck: //')"
	case $result in
	exact) exact=$((exact + 1)) ;;
	partial) partial=$((partial + 1)) ;;
	violation) violations=$((violations + 1)) ;;
	esac
	if [[ -z $result ]]; then
		why="no check result for round $round from boot $n (vm.sh status $status):
$(boot_trouble "$n" x)
$(tail -15 "$DIR/out-$n/output.log" 2>/dev/null)"
	elif [[ $result == violation ]]; then
		why="$summary
$(cat "$check")"
	else
		why=""
	fi
	if [[ -n $why ]]; then
		tap_fail "$name" "$why"
		break
	fi
	tap_ok "$name"
	tap_diag "$summary"
done
for ((round++; round <= ROUNDS; round++)); do
	tap_skip "round $round" "the run stopped at the first failure; disks kept in $DIR"
done

# The last boot applied the rest: the replica is the primary's last state.
final=$DIR/out-$((ROUNDS + 1))/final
name="after the last power cut the apply resumes to the end and the replica equals the primary"
why=$(boot_trouble $((ROUNDS + 1)) "exit 0")
if ((ROUNDS == 0)); then
	tap_skip "$name" "boot 1 failed"
elif [[ -z $why ]] && grep -q '^cmp: equal' "$final" && [[ $(field result "$final") == exact ]] &&
	[[ $(field mark "$final") == "$(grep -m1 '^lwcheck-summary:' "$final" | tr ' ' '\n' | sed -n 's/^marks=//p')" ]]; then
	tap_ok "$name"
	tap_diag "$(grep -m1 '^lwcheck: ' "$final")"
else
	tap_fail "$name" "${why:-$(cat "$final" 2>/dev/null)}"
fi
tap_diag "interruption points: $ROUNDS power cuts, exact=$exact partial=$partial violations=$violations"
tap_diag "$((SECONDS - start)) s of guest boots"
tap_done
