#!/usr/bin/env bash
# Generations at connect, unplanned failover and return, split brain.
#
# Two sites in this guest, each with its own repld (PSK, on 127.0.0.1 and
# 127.0.0.2), one group of two volumes of 16 MiB: alpha (kernel group vm1)
# the primary, beta (vm1b) its replica.
#
# 1. Unplanned failover: alpha's link dies, alpha writes a few regions that
#    never leave its ring, alpha goes down. beta is promoted and written.
#    alpha comes back; demoted with --force, its connection is refused: it
#    holds writes of its own. `repltool rejoin --discard-my-data` makes it
#    beta's replica: beta resends exactly alpha's dirty regions, its own
#    writes come in its stream, and the two are equal byte for byte.
# 2. Planned failover back to alpha (the generations chain through the
#    rejoin), then a split brain: the link cut, beta promoted, both write.
#    Both refuse at connect and say so in their status; rejoin on beta
#    resolves it; equal after.
#
# TEST_SEED in the environment replays the places of the writes.
set -uo pipefail
source "$(dirname "$0")/../lib/tap.sh"
source "$(dirname "$0")/lib.sh"

MB=16
SEED=${TEST_SEED:-$(date +%s)}
W=$(mktemp -d /tmp/rejoin.XXXXXX)
A_IP=127.0.0.1			# both sites in this namespace (sites_conf)
B_IP=127.0.0.2
declare -A DATA META		# site:volume -> data, metadata device

trap sites_cleanup EXIT

disks() {
	local s v
	for s in alpha beta; do
		for v in 0 1; do
			DATA[$s:$v]=$(loop_disk $MB) && META[$s:$v]=$(loop_disk 4) || return 1
		done
	done
}

# scribble DEV N SHIFT: N writes of 4 KiB, each in its own MiB of DEV, at
# places the seed and SHIFT pick.
scribble() {
	local i
	for ((i = 0; i < $2; i++)); do
		dd if=/dev/urandom of="$1" bs=4k count=1 oflag=direct status=none \
			seek=$((((SEED + $3 + i * 7) % MB) * 256 + i)) || return 1
	done
}

# dirty_total GROUP: dirty regions of all its volumes.
dirty_total() {
	"$REPLTOOL" status "$1" | awk '$1 == "dirty_regions" { n += $2 } END { print n + 0 }'
}

tap_strict
tap_diag "seed $SEED (set TEST_SEED to replay)"
disks || tap_bail "the disks of both sites"
openssl rand -hex 32 >"$W/psk" && chmod 600 "$W/psk" && sites_conf "$W/conf" "$W/psk" ||
	tap_bail "the resource file"
tap_setup "create-md on alpha (primary) and beta (secondary)" bash -c \
	"$(declare -f tool); REPLTOOL=$REPLTOOL W=$W; tool alpha create-md --role primary &&
	 tool beta create-md --role secondary && tool alpha up && tool beta up"
tap_check "a new replica has no generation (it takes its primary's)" \
	test "$(status_of vm1b generation)" = 0000000000000000
scribble /dev/mapper/vm1-0 8 0 && scribble /dev/mapper/vm1-1 8 3 || tap_bail "first writes"
start beta
start alpha
out=$(pair_synced vm1 vm1b) && tap_ok "replicating: beta consistent and caught up" ||
	tap_fail "the first sync" "$out"
tap_check "beta took alpha's generation" \
	test "$(status_of vm1b generation)" = "$(status_of vm1 generation)"
gen1=$(status_of vm1 generation)

# ---- 1. unplanned failover and return ---------------------------------------------
stop alpha
scribble /dev/mapper/vm1-0 5 11 || tap_bail "alpha's last writes"
tool alpha down >/dev/null || tap_bail "alpha down"
tap_diag "alpha went down with 5 writes of its own that beta never got"
out=$(tool beta primary 2>&1) && tap_ok "beta promoted while alpha is down" ||
	tap_fail "beta primary" "$out"
gen2=$(status_of vm1b generation)
tap_check "beta's promotion began a new generation" test "$gen2" != "$gen1"
scribble /dev/mapper/vm1b-0 3 11 && scribble /dev/mapper/vm1b-1 3 20 ||
	tap_bail "beta's writes"

tool alpha up >/dev/null || tap_bail "alpha up"
out=$(tool alpha secondary --force 2>&1) && rc=0 || rc=$?
own=$(dirty_total vm1)
tap_check "alpha demoted with --force keeps its own writes as dirty regions ($own)" \
	test $rc -eq 0 -a "$own" -ge 5
resynced_before=$(status_of vm1b resynced_regions)
start alpha
out=$(log_has "$W/beta.log" "holds writes of its own" 90) &&
	tap_ok "beta refuses alpha: it holds writes of its own" ||
	tap_fail "the refusal of a replica with writes of its own" "$out"
tap_check "alpha's status says why it is not replicating" \
	test "$(link_fact "$W/alpha.sock" vm1 diverged)" != -
out=$(tool alpha rejoin 2>&1) && rc=0 || rc=$?
tap_check "rejoin without --discard-my-data is a usage error (exit $rc)" test $rc -eq 2
stop alpha
out=$(tool alpha rejoin --discard-my-data 2>&1) && tap_ok "alpha rejoins: $out" ||
	tap_fail "rejoin" "$out"
tap_check "alpha is inconsistent until the resync ends" \
	test "$(status_of vm1 consistency)" = inconsistent
tap_check "alpha has no generation until it connects" \
	test "$(status_of vm1 generation)" = 0000000000000000
tap_check "alpha says it rejoins" test -n "$(status_of vm1 rejoining)"
tap_check "alpha keeps its own writes as dirty regions, to be resent" \
	test "$(dirty_total vm1)" -eq "$own"
start alpha
out=$(pair_synced vm1b vm1) && tap_ok "alpha is beta's consistent replica again" ||
	tap_fail "the rejoin" "$out"
tap_check "equal byte for byte" sites_same
resynced=$(($(status_of vm1b resynced_regions) - resynced_before))
tap_diag "beta resent $resynced regions for alpha's $own; its own writes came in its stream"
tap_check "beta resent exactly alpha's dirty regions, not the disk" test "$resynced" -eq "$own"
tap_check "alpha has no dirty region left" test "$(dirty_total vm1)" -eq 0
tap_check "alpha took beta's generation" test "$(status_of vm1 generation)" = "$gen2"
tap_check "nothing diverged any more" test "$(link_fact "$W/beta.sock" vm1 diverged)" = -

# ---- 2. planned failover back, then split brain -----------------------------------
out=$(tool beta secondary --wait 60 2>&1) && out=$(tool alpha primary 2>&1) &&
	tap_ok "planned failover back to alpha" || tap_fail "failover back" "$out"
scribble /dev/mapper/vm1-1 4 30 || tap_bail "alpha's writes"
out=$(pair_synced vm1 vm1b) && tap_ok "beta applies alpha's new generation's stream" ||
	tap_fail "after the failover back" "$out"
tap_check "equal after the failover back" sites_same

stop alpha
stop beta
out=$(tool beta primary 2>&1) && tap_ok "the link is cut and beta is promoted too" ||
	tap_fail "beta primary" "$out"
scribble /dev/mapper/vm1-0 4 40 && scribble /dev/mapper/vm1b-0 4 50 ||
	tap_bail "writes on both sides"
start alpha
start beta
out=$(log_has "$W/alpha.log" "split brain" 90) && out=$(log_has "$W/beta.log" "split brain" 90) &&
	tap_ok "both sites refuse at connect: split brain" || tap_fail "split brain" "$out"
tap_check "alpha's status says split brain" bash -c \
	"$(declare -f link_fact); REPLTOOL=$REPLTOOL; link_fact $W/alpha.sock vm1 diverged | grep -q split"
tap_check "beta's status says split brain" bash -c \
	"$(declare -f link_fact); REPLTOOL=$REPLTOOL; link_fact $W/beta.sock vm1 diverged | grep -q split"
tap_check "nothing was applied across the split" test "$(status_of vm1 role)" = primary
out=$(tool beta rejoin --discard-my-data 2>&1) &&
	tap_ok "beta gives up its writes: $out" || tap_fail "rejoin on beta" "$out"
out=$(pair_synced vm1 vm1b) && tap_ok "beta is alpha's consistent replica again" ||
	tap_fail "after the split brain" "$out"
tap_check "equal byte for byte after the split brain" sites_same
tap_check "beta's kernel refused no batch" test "$(status_of vm1b rejected)" = 0
tap_done
