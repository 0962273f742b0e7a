#!/usr/bin/env bash
# The primary reset test (issue 16): a primary replicating over the link
# loses power under load; after the reboot only the activity log's extents
# (and what its on-disk bitmap had dirty) are resynced, and then the replica
# equals the primary.
#
# Four raw disk files in build/al-reset/ (alpha's data and metadata, beta's
# data and metadata) are the guest's /dev/vda..vdd in every boot: they keep
# what the guest saw complete across a guest reset. Each round is a guest
# boot of tests/guest/al-reset-guest.sh that makes a fresh pair (alpha's
# metadata with 1 MiB extents, 4 hot, 4 AL slots), starts both replds,
# writes with fio on alpha while beta applies, and resets the guest with
# sysrq-b after a delay drawn from the round's seed. The next boot checks
# the round: recovery marked exactly the regions of the extents the AL
# named and the on-disk bitmap's (alpha's metadata is copied before the
# load and decoded by tests/guest/crashwriter ondisk), a small part of the
# volume; the resync sent exactly those (the kernel's resynced_regions),
# and the regions the replica asked for (a resync cut short: alpha's repld
# logs them);
# beta was not consistent until the resync ended (a reloaded primary
# starts a stream with GAP after a crash: outdated, then inconsistent at
# the first RESYNC record, consistent at its end; Documentation/dm-repl.md,
# "Streams"), consistent after; the two data disks have the same sha256.
# Then it starts the next round, or, after the last, only checks.
#
# After those rounds, mid-resync rounds (issue 16: a resync interrupted by
# a crash resumes where it was): alpha, with a 2 MiB ring and no repld
# running, takes 12 MiB of writes and is behind with most of them dirty;
# both replds start (resync-rate 512K), and once the kernel resynced
# half of the dirty regions, alpha's repld stopped, the guest resets with
# no write since. The next boot makes the same five checks, and a sixth:
# the resync resumed: the on-disk bitmap holds exactly the regions the
# reset left dirty or resynced and not released (a release has the kernel
# save the bitmap blocks of the regions it took out of the resync), the load marks at most those and
# the regions of the AL's extents, fewer than at the resync's start.
#
# usage: tests/al-reset.sh     (TAP on stdout, five tests per round, six
#                              per mid-resync round)
# Environment: AL_RESET_ROUNDS (default 2), AL_RESET_MID_RESYNC (mid-resync
# rounds, default 1; with AL_RESET_ROUNDS=0 only those), AL_RESET_SEED
# (the first round's seed; round i uses AL_RESET_SEED + i - 1; default
# random).
#
# A round fails on a check above, a kernel splat (vm.sh status 123), a
# guest that did not reset when expected, or a check that did not run. The
# run stops at the first failure and leaves the disks and every boot's
# output (out-N/: console.log, output.log, check, reset, the replds' logs)
# in build/al-reset/.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
TOP=$PWD
source tests/lib/tap.sh

ROUNDS=${AL_RESET_ROUNDS:-2}
MID=${AL_RESET_MID_RESYNC:-1}
SEED=${AL_RESET_SEED:-$((($(od -An -N4 -tu4 /dev/urandom) % 1000000) + 1))}
DIR=$TOP/build/al-reset
BOOT_TIMEOUT=300

if ! [[ $ROUNDS =~ ^[0-9]+$ && $MID =~ ^[0-9]+$ ]] || ((10#$ROUNDS + 10#$MID == 0)); then
	echo "AL_RESET_ROUNDS, AL_RESET_MID_RESYNC: numbers, not both 0" >&2
	exit 2
fi
TOTAL=$((ROUNDS + MID))
PLAN=$((ROUNDS * 5 + MID * 6))
[[ $SEED =~ ^[0-9]+$ ]] || { echo "AL_RESET_SEED: not a number" >&2; exit 2; }

if [[ ! -f dm-repl.ko ]]; then
	make -s module 2>&1 | sed 's/^/# /'
fi
make -s userspace 2>&1 | sed 's/^/# /'
make -s -C tests/guest crashwriter 2>&1 | sed 's/^/# /'
if [[ ! -f dm-repl.ko || ! -x tests/guest/crashwriter || ! -x userspace/repld/repld ]]; then
	echo "Bail out! cannot build dm-repl.ko, repld, repltool or tests/guest/crashwriter"
	exit 1
fi

rm -rf "$DIR"
mkdir -p "$DIR"
truncate -s 64M "$DIR/adata" "$DIR/bdata"
truncate -s 8M "$DIR/ameta" "$DIR/bmeta"

DISKS=(adata ameta bdata bmeta)
GUEST_SCRIPT=tests/guest/al-reset-guest.sh
source tests/lib/reset.sh

# field NAME FILE: NAME=VALUE from FILE's first line (check or reset).
field() {
	head -1 "$2" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$1=//p"
}

# kind N: the guest's argument for round N (the mid-resync rounds come last).
kind() {
	(($1 > ROUNDS)) && echo --mid-resync
}

tap_plan $PLAN
tap_diag "seeds $SEED to $((SEED + TOTAL - 1)) (AL_RESET_SEED=$SEED repeats this run)"
start=$SECONDS
sum_dirty=0 sum_regions=0
# shellcheck disable=SC2046 # kind: one word or none
boot 1 1 "$SEED" $(kind 1)
for ((round = 1; round <= TOTAL; round++)); do
	seed=$((SEED + round - 1))
	reset=$DIR/out-$round/reset
	why=$(boot_trouble "$round" reset)
	if ((round <= ROUNDS)); then
		name="round $round (seed $seed): alpha replicates to beta over the link under load and loses power"
		if [[ -z $why ]] && (($(field beta_applied "$reset") == 0)); then
			why="beta applied nothing before the reset: $(cat "$reset")"
		fi
	else
		name="round $round (seed $seed): alpha resyncs to beta over the link and loses power mid-resync"
		dirty_start=$(field dirty_start "$reset")
		resynced_reset=$(field resynced "$reset")
		if [[ -z $why ]] && ! ((resynced_reset > 0 && resynced_reset < dirty_start)); then
			why="the reset was not mid-resync: $(cat "$reset")"
		fi
	fi
	if [[ -n $why ]]; then
		tap_fail "$name" "$why"
		break
	fi
	tap_ok "$name"
	if ((round <= ROUNDS)); then
		tap_diag "reset after $(field delay_ms "$reset") ms: $(cut -d' ' -f4- "$reset")"
	else
		tap_diag "reset with $resynced_reset of $dirty_start dirty regions resynced:" \
			"$(cut -d' ' -f3- "$reset")"
	fi

	n=$((round + 1))
	if ((round < TOTAL)); then
		# shellcheck disable=SC2046
		boot "$n" "$n" "$((seed + 1))" $(kind "$n")
	else
		boot "$n" --check-only "$n"
	fi
	check=$DIR/out-$n/check
	dirty=$(field dirty_regions "$check")
	union=$(field union "$check")
	regions=$(field regions "$check")
	resynced=$(field resynced "$check")
	if ((status == 123)) || [[ -z $resynced ]]; then
		why="no check result for round $round from boot $n (vm.sh status $status):
$(boot_trouble "$n" "exit 0")
$(tail -15 "$DIR/out-$n/output.log" 2>/dev/null)"
		tap_fail "round $round: the check after the reset" "$why"
		break
	fi
	tap_diag "$(sed -n 2p "$check")"
	ok=1

	name="round $round: at the load alpha's dirty regions are exactly the AL's extents plus its on-disk bitmap ($dirty of $regions regions)"
	if [[ $(field ondisk_rc "$check") == 0 && $dirty == "$union" &&
		$(field state "$check") == behind && $(field resynced_before "$check") == 0 ]] &&
		((dirty > 0 && dirty * 4 <= regions)); then
		tap_ok "$name"
	else
		tap_fail "$name" "$(cat "$check")"
		ok=0
	fi
	tap_diag "AL: $(field al_extents "$check") extents, $(field al_regions "$check") regions (last transaction $(field al_seq "$check"), $(field al_torn "$check") torn); on-disk bitmap: $(field bm_dirty "$check") dirty; union $union; dirty at the load $dirty (unrecovered $(field unrecovered "$check"), extra $(field extra "$check")) of $regions regions"

	asked=$(field asked "$check")
	name="round $round: the resync sent exactly those regions and those the replica asked for ($resynced resynced for $dirty dirty, $asked asked)"
	if [[ $(field synced "$check") == yes && -n $asked ]] &&
		((resynced >= dirty && resynced <= dirty + asked)); then
		tap_ok "$name"
	else
		tap_fail "$name" "$(cat "$check")"
		ok=0
	fi
	tap_diag "alpha uptodate and beta consistent and caught up $(field resync_s "$check") s after the replds started"

	if ((round > ROUNDS)); then
		left=$(($(field dirty "$reset") + $(field unreleased "$reset")))
		al=$(field al_regions "$check")
		bm=$(field bm_dirty "$check")
		name="round $round: the resync resumed: $dirty regions dirty at the load, of $dirty_start at its start"
		if ((bm == left && dirty <= left + al && dirty < dirty_start)); then
			tap_ok "$name"
		else
			tap_fail "$name" "the on-disk bitmap is not the $left regions dirty or unreleased at the reset, or the load found more than those and the AL's $al regions"
			ok=0
		fi
		tap_diag "at the reset $resynced_reset regions resynced, $left dirty or unreleased;" \
			"on disk $bm dirty; at the load $dirty dirty with the AL's extents ($al regions);" \
			"resynced in this boot: $resynced"
	fi

	seen=$(field beta_seen "$check")
	name="round $round: beta is not consistent from the reset to the end of the resync, consistent after"
	if [[ ,$(field beta_before "$check"),$seen, =~ ,(outdated|inconsistent), &&
		$(field beta_after "$check") == consistent ]]; then
		tap_ok "$name"
	else
		tap_fail "$name" "$(head -1 "$check")"
		ok=0
	fi
	tap_diag "beta at the load: $(field beta_before "$check"); then, polled: $seen"

	sum_a=$(field sum_a "$check")
	name="round $round: the replica equals the primary byte for byte (sha256 $sum_a)"
	why=""
	if ((round == TOTAL)); then
		why=$(boot_trouble "$n" "exit 0")
	fi
	if [[ -z $why && -n $sum_a && $sum_a == "$(field sum_b "$check")" ]]; then
		tap_ok "$name"
	else
		tap_fail "$name" "${why:-$(head -1 "$check")}"
		ok=0
	fi
	((ok)) || break
	sum_dirty=$((sum_dirty + dirty))
	sum_regions=$((sum_regions + regions))
done
# After a failure the remaining tests did not run.
for ((i = TAP_N + 1; i <= PLAN; i++)); do
	tap_skip "test $i" "the run stopped at the first failure; disks kept in $DIR"
done
if ((sum_regions)); then
	tap_diag "$sum_dirty of $sum_regions regions resynced over the rounds ($((100 * sum_dirty / sum_regions))%) instead of all"
fi
tap_diag "$((SECONDS - start)) s of guest boots"
tap_done
