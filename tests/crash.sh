#!/usr/bin/env bash
# The crash test (issue 3): no write that completed is forgotten when the
# primary's host loses power.
#
# Four raw disk files in build/crash/ (data 64 MiB; meta, log and rel 8 MiB)
# are the guest's /dev/vda, vdb, vdc and vdd in every boot; they keep what
# the guest saw complete across a guest reset. Each round is one guest boot
# of tests/guest/crash-guest.sh: it checks the round before (after the
# reset, every write the log says had completed must have its regions dirty
# or its records among those the consumer released), then starts afresh,
# writes with crashwriter, and resets the guest with sysrq-b after a delay
# drawn from the round's seed. A last boot only checks. Rounds run in
# "consumer" mode (a consumer releases records, so the activity log's small
# hot set is evicted all the time), every 4th in "overflow" mode (a 2 MiB
# ring, no consumer: the writes overflow into the bitmap); odd rounds have
# 2 AL slots, even ones 16; crash-guest.sh says more.
#
# usage: tests/crash.sh     (TAP on stdout, one test per round)
# Environment: CRASH_ROUNDS (default 20), CRASH_SEED (the first round's
# seed; round i uses CRASH_SEED + i - 1; default random).
#
# A round fails on a forgotten write, a kernel splat (vm.sh status 123), a
# guest that did not reset when expected, or a check that did not run. The
# run stops at the first failure and leaves the disks and every boot's
# output (out-N/: console.log, output.log) in build/crash/ as they were.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
TOP=$PWD
source tests/lib/tap.sh

ROUNDS=${CRASH_ROUNDS:-20}
SEED=${CRASH_SEED:-$((($(od -An -N4 -tu4 /dev/urandom) % 1000000) + 1))}
DIR=$TOP/build/crash
BOOT_TIMEOUT=180

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "CRASH_ROUNDS: not a positive number" >&2; exit 2; }
[[ $SEED =~ ^[0-9]+$ ]] || { echo "CRASH_SEED: not a number" >&2; exit 2; }

# What the guest runs: the module and the guest programs.
if [[ ! -f dm-repl.ko ]]; then
	make -s module 2>&1 | sed 's/^/# /'
fi
make -s -C tests/guest crashwriter 2>&1 | sed 's/^/# /'
if [[ ! -f dm-repl.ko || ! -x tests/guest/crashwriter ]]; then
	echo "Bail out! cannot build dm-repl.ko or tests/guest/crashwriter"
	exit 1
fi

rm -rf "$DIR"
mkdir -p "$DIR"
truncate -s 64M "$DIR/data"
truncate -s 8M "$DIR/meta"
truncate -s 8M "$DIR/log"
truncate -s 8M "$DIR/rel"

DISKS=(data meta log rel)
GUEST_SCRIPT=tests/guest/crash-guest.sh
source tests/lib/reset.sh

# field NAME FILE: the value of NAME=VALUE in FILE's crashcheck line.
field() {
	grep -m1 '^crashcheck: round=' "$2" 2>/dev/null | tr ' ' '\n' |
		sed -n "s/^$1=//p"
}

tap_plan "$ROUNDS"
tap_diag "seeds $SEED to $((SEED + ROUNDS - 1)) (CRASH_SEED=$SEED repeats this run)"
start=$SECONDS
declare -A total	# per mode: rounds passed, and sums of their counts
# Boot N writes round N (it also checks round N - 1, below); boot N + 1
# checks it. $status is always the last boot's.
boot 1 1 "$SEED"
for ((round = 1; round <= ROUNDS; round++)); do
	seed=$((SEED + round - 1))
	# As crash-guest.sh chooses them.
	if ((round % 4 == 0)); then mode=overflow; else mode=consumer; fi
	if ((round % 2)); then al_slots=2; else al_slots=16; fi
	name="round $round (seed $seed, $mode, $al_slots AL slots): no completed write is forgotten after the reset"

	why=$(boot_trouble "$round" reset)
	if [[ -n $why ]]; then
		tap_fail "$name" "$why"
		break
	fi
	delay=$(sed -n 's/.*delay_ms=\([0-9]*\).*/\1/p' "$DIR/out-$round/reset")

	# The next boot checks it (and writes for the next round, if any).
	n=$((round + 1))
	if ((round < ROUNDS)); then
		boot "$n" "$n" "$((seed + 1))"
	else
		boot "$n" --check-only "$n"
	fi
	check=$DIR/out-$n/check
	completed=$(field completed "$check")
	forgotten=$(field forgotten "$check")
	summary="round $round ($mode, $al_slots AL slots): $completed writes completed before the reset at ${delay} ms: $(field by_dirty "$check") in dirty regions, $(field by_released "$check") in released records ($(field released "$check") released), $(field by_al "$check") only in the AL's $(field al_extents "$check") extents, forgotten = $forgotten; $(field dirty "$check")/$(field regions "$check") regions dirty"
	if [[ -z $forgotten ]]; then
		why="no check result for round $round from boot $n (vm.sh status $status):
$(tail -15 "$DIR/out-$n/output.log" 2>/dev/null)"
	elif ((forgotten != 0)); then
		why="$summary
$(grep 'forgotten:' "$check" | head -20)"
	elif [[ $(sed -n 's/^check_rc=//p' "$check") != 0 ]]; then
		why="$summary: the check failed:
$(cat "$check")"
	elif ((completed == 0)); then
		why="$summary: no write completed, the round proves nothing"
	elif [[ $mode == consumer ]] && (($(field released "$check") == 0)); then
		why="$summary: the consumer released nothing, no extent could go cold"
	elif ((round == ROUNDS)); then
		why=$(boot_trouble "$n" "exit 0")
	else
		why=""
	fi
	if [[ -n $why ]]; then
		tap_fail "$name" "$why"
		break
	fi
	tap_ok "$name"
	tap_diag "$summary"
	total[$mode]=$((${total[$mode]:-0} + 1))
	for f in completed by_dirty by_released by_al dirty regions; do
		total[$mode.$f]=$((${total[$mode.$f]:-0} + $(field $f "$check")))
	done
done
# After a failure the remaining rounds did not run.
for ((round++; round <= ROUNDS; round++)); do
	tap_skip "round $round" "the run stopped at the first failure; disks kept in $DIR"
done
for mode in consumer overflow; do
	((${total[$mode]:-0})) || continue
	tap_diag "$mode: ${total[$mode]} rounds, ${total[$mode.completed]} writes completed, ${total[$mode.by_dirty]} in dirty regions, ${total[$mode.by_released]} in released records, ${total[$mode.by_al]} only in the AL's extents, none forgotten; $((100 * total[$mode.dirty] / total[$mode.regions]))% of the regions dirty after the resets"
done
tap_diag "$((SECONDS - start)) s of guest boots"
tap_done
