#!/usr/bin/env bash
# A resync over the link that yields to the stream and survives its
# interruptions. Two sites in one guest (tests/guest/lib.sh: two network
# namespaces joined by veth, a repld in each, TLS 1.3 with a PSK): alpha's group vm1
# (one volume, a 2 MiB ring) falls behind while no repld runs (12 MiB of
# writes, most of them only in the dirty bitmap); then repld resyncs it to
# beta's vm1b under a rate limit (resync-rate 256K) while fio writes into
# the volume and verifies what it wrote. Mid-resync: kill -9 of alpha's repld, of beta's, and a
# partition past the dead-peer timeout. Each time the resync resumes where
# it was: the regions the kernel put in the ring over the whole resync
# (resynced_regions, a count of the kernel's that outlives the daemons) stay
# under 1.3 times the regions that were dirty. At the end the replica is
# consistent and equal to the primary.
set -uo pipefail
source "$(dirname "$0")/../lib/tap.sh"
source "$(dirname "$0")/lib.sh"

MB=16
W=$(mktemp -d /tmp/resync-link.XXXXXX)
# shellcheck disable=SC2034 # lib.sh's sites_* read them
A_IP=10.77.1.1
B_IP=10.77.1.2
RATE=$((256 << 10))
declare -A DATA META
SITES_VOLUMES=0
SITES_KEYS="resync-rate 256K; resync-lag-target 1s;"

trap sites_netns_cleanup EXIT

# resynced_at_least N: the kernel put N regions of vm1 in the ring (60 s).
resynced_at_least() {
	local n end=$((SECONDS + 60))
	while ((SECONDS < end)); do
		n=$(status_of vm1 resynced_regions)
		((n >= $1)) && return 0
		sleep 0.1
	done
	echo "resynced_regions is $n after 60 s, not $1 yet"
	return 1
}

# goes_on: the resync puts a sixteenth of the dirty regions more in the
# ring than at the interruption ($at), or all of them.
goes_on() {
	local want=$((at + dirty / 16))
	resynced_at_least $((want < dirty ? want : dirty))
}

# uptodate: no region dirty, none in the ring unreleased, state uptodate (120 s).
uptodate() {
	local end=$((SECONDS + 120))
	while ((SECONDS < end)); do
		[[ $(status_of vm1 state)/$(status_of vm1 dirty_regions) == uptodate/0 ]] && return 0
		sleep 0.2
	done
	echo "vm1 is $(status_of vm1 state) with $(status_of vm1 dirty_regions) regions dirty" \
		"after 120 s; the end of alpha's log:"
	tail -n 5 "$W/alpha.log"
	return 1
}

# stream: fio on alpha until W/stop-stream exists, into the regions the
# resync reads: rounds of 16 random writes of 4 to 16 KiB at 32 KiB/s
# (small enough that no kill or partition below overflows the ring), each
# round read back and checked (crc32c) before the next.
stream() {
	local round=0
	while [[ ! -e $W/stop-stream ]]; do
		round=$((round + 1))
		fio --name=stream --filename=/dev/mapper/vm1-0 --direct=1 --ioengine=libaio \
			--iodepth=2 --rw=randwrite --bsrange=4k-16k --number_ios=16 --rate=32k \
			--randseed=$round --verify=crc32c --verify_fatal=1 \
			>"$W/fio.out" 2>&1 || return 1
	done
	echo "$round" >"$W/fio.rounds"
}

tap_strict
tap_setup "two namespaces joined by veth" sites_network
# A pre-shared key (repld.sh covers certificates): no key pairs to make.
tap_setup "a pre-shared key" bash -c "openssl rand -hex 32 >'$W/psk' && chmod 600 '$W/psk'"
site_volume alpha vm1 primary 0 2 ring_mb 2 && site_volume beta vm1b secondary 0 2 source vm1 ||
	tap_bail "the volumes of both sites"
sites_conf "$W/conf" "$W/psk"

tap_diag "set-up: $SECONDS s"
# ---- behind ------------------------------------------------------------------------
dd if=/dev/urandom of=/dev/mapper/vm1-0 bs=1M count=12 oflag=direct status=none
dirty=$(status_of vm1 dirty_regions)
overflows=$(status_of vm1 overflows)
tap_check "12 MiB into a 2 MiB ring with no repld: vm1 is behind with $dirty regions dirty" \
	test "$(status_of vm1 state)" = behind -a "$dirty" -ge 128
tap_check "no region was resynced yet" test "$(status_of vm1 resynced_regions)" = 0

# ---- the resync, under a rate limit, while a stream writes, interrupted -------------------
stream &
streamer=$!
site_start beta
site_start alpha
out=$(resynced_at_least $((dirty / 16))) && tap_ok "repld resyncs vm1" ||
	tap_bail "the resync does not start: $out"

# mid_resync WHAT: $at, the regions resynced when WHAT came, is not all of them.
mid_resync() {
	tap_check "$1 at $at of $dirty regions, mid-resync" test "$at" -lt "$dirty"
}

# killed SITE: kill -9 of SITE's repld mid-resync, a new one a second later;
# the resync goes on.
killed() {
	site_stop "$1" KILL
	at=$(status_of vm1 resynced_regions)
	mid_resync "kill -9 of $1's repld"
	sleep 1
	site_start "$1"
	out=$(goes_on) && tap_ok "after kill -9 of $1's repld the resync goes on" ||
		tap_fail "the resync after kill -9 of $1's repld" "$out"
}

killed alpha

# The controller's own view, while it resyncs.
facts=$("$REPLTOOL" status --socket "$W/alpha.sock" vm1)
tap_diag "alpha's status:" "$(grep -E '^ +resync_' <<<"$facts")"
limit=$(awk '$1 == "resync_rate_limit" { print $2 }' <<<"$facts")
waits=$(awk '$1 == "resync_rate_waits" { print $2 }' <<<"$facts")
tap_check "repld's status shows the rate limit, $RATE bytes/s" test "$limit" = "$RATE"
tap_check "the controller held regions back at the rate limit ($waits times)" test "$waits" -gt 0

killed beta

ip netns exec dmr-alpha tc qdisc add dev va root netem loss 100%
ip netns exec dmr-beta tc qdisc add dev vb root netem loss 100%
at=$(status_of vm1 resynced_regions)
mid_resync "a partition"
out=$(site_logged alpha "link considered dead") && tap_ok "alpha finds the link dead" ||
	tap_fail "a partition mid-resync" "$out"
ip netns exec dmr-alpha tc qdisc del dev va root
ip netns exec dmr-beta tc qdisc del dev vb root
out=$(goes_on) && tap_ok "after the partition the resync goes on" ||
	tap_fail "the resync after the partition" "$out"

tap_diag "$SECONDS s"
# ---- the end ------------------------------------------------------------------------------
out=$(uptodate) && tap_ok "the resync ends: vm1 is up to date, no region dirty" ||
	tap_fail "the end of the resync" "$out"
touch "$W/stop-stream"
wait $streamer && tap_ok "fio wrote and verified through it all ($(cat "$W/fio.rounds") rounds)" ||
	tap_fail "the stream of writes" "$(tail -20 "$W/fio.out")"
tap_diag "$SECONDS s"
out=$(quiesce vm1 vm1b 120) && tap_ok "beta applied alpha's last sequence $(last_seq vm1)" ||
	tap_fail "drain" "$out"
total=$(status_of vm1 resynced_regions)
tap_diag "regions dirty $dirty, resynced $total; the sessions' counts in alpha's log:"
tap_diag "$(grep -o 'resync of group vm1: [0-9]* regions.*' "$W/alpha.log")"
tap_check "no write overflowed the ring during the resync" \
	test "$(status_of vm1 overflows)" = "$overflows"
tap_check "resumed, not restarted: $total regions resynced for $dirty dirty (< 1.3x)" \
	test $((total * 10)) -lt $((dirty * 13))
tap_check "every dirty region was resynced" test "$total" -ge "$dirty"
tap_check "the replica is consistent" test "$(status_of vm1b consistency)" = consistent
echo 1 >/proc/sys/vm/drop_caches
sum_a=$(data_sum "${DATA[alpha:0]}") sum_b=$(data_sum "${DATA[beta:0]}")
tap_check "the replica's sha256 is the primary's ($sum_a)" test "$sum_a" = "$sum_b"
tap_diag "$SECONDS s"
tap_done
