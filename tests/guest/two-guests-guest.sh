#!/usr/bin/env bash
# One host of tests/two-guests.sh: it runs in its own guest, with its own
# kernel, and reaches the other guest over a virtio NIC (vm.sh --net).
#
# usage: two-guests-guest.sh alpha|beta DIR
#
# DIR is shared by both guests (read-write, at the same path): DIR/etc holds
# the resource file vm1.conf and the certificates, the same for both hosts;
# each guest tells the other how far it got with files in DIR/sync
# (SITE.NAME, holding a value), and leaves the sha256 of its data disks at
# each checkpoint in DIR/sums/SITE.N for the host to compare. The host gives
# each guest its disks in this order: /dev/vda and vdb the data of volumes 0
# and 1, vdc and vdd their metadata.
#
# alpha starts as primary, beta as secondary; both groups are "vm1", each in
# its own kernel. fio with verify writes on alpha; once alpha's repld says
# all is shipped and acknowledged, alpha gives its last sequence to beta,
# which waits until it applied it; both take their sums (checkpoint 1).
# Then a planned failover: alpha steps down once drained (repltool secondary
# --wait), beta takes over (repltool primary) and writes with fio; once
# beta's repld has shipped it all, alpha waits until it applied beta's last
# sequence; both take their sums (checkpoint 2).
#
# TEST_SEED (set by the host) seeds both guests' fio jobs.
set -uo pipefail
source "$(dirname "$0")/../lib/tap.sh"
source "$(dirname "$0")/lib.sh"

usage="usage: two-guests-guest.sh alpha|beta DIR"
SITE=${1:?$usage}
DIR=${2:?$usage}
case $SITE in
alpha) PEER=beta ROLE=primary ;;
beta) PEER=alpha ROLE=secondary ;;
*) echo "$usage" >&2 && exit 2 ;;
esac
ETC=$DIR/etc
# shellcheck disable=SC2034 # tell's and heard's (lib.sh)
SYNC=$DIR/sync
SEED=${TEST_SEED:-1}
DATA=(/dev/vda /dev/vdb)
W=$(mktemp -d /tmp/two-guests.XXXXXX)
SOCK=$W/repld.sock
MB=$(($(blockdev --getsize64 "${DATA[0]}") >> 20))

# sums N: the sums of the data disks at checkpoint N, for the host.
sums() {
	sums_put "$DIR/sums/$SITE.$1" "${DATA[@]}"
}

cleanup() {
	local rc=$?
	((rc == 0)) || tell failed "exit $rc"
	repld_kill
	wait 2>/dev/null
	dm_remove_all
	# The daemon's log outlives the run, next to the console.
	[[ -n ${VM_OUT:-} ]] && cp "$W/repld.log" "$VM_OUT/" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT

fio_here() {
	fio_run "$1" /dev/mapper/vm1-0 /dev/mapper/vm1-1
}

# at WHAT: a diagnostic with the seconds since the guest's script started.
at() {
	tap_diag "$SECONDS s: $*"
}

tap_strict
tap_diag "$SITE: $ROLE, ${VM_NET_IF:-?} ${VM_NET_ADDR:-?}, two volumes of $MB MiB, seed $SEED," \
	"discards up to $(cat /sys/block/vda/queue/discard_max_bytes) bytes"
hostname "$SITE"
tap_check "$SITE finds its site in the resource file by its host name" \
	"$REPLTOOL" config check --dir "$ETC"
# A new pair: the replica gets the primary's data by an initial sync, which
# runs while fio writes on alpha.
tap_setup "metadata of $SITE's volumes, for an initial sync" \
	"$REPLTOOL" create-md --config-dir "$ETC" --role "$ROLE" --initial-sync vm1
tap_setup "$SITE's volumes up" "$REPLTOOL" up --config-dir "$ETC" vm1
if [[ $SITE == alpha ]]; then
	tap_check "alpha is behind before the initial sync" test "$(status_of vm1 state)" = behind
else
	tap_check "beta is inconsistent before the initial sync" \
		test "$(status_of vm1 consistency)" = inconsistent
fi
# beta's daemon first, as an admin would start the replica's: alpha's
# then connects at once instead of backing off while beta boots.
if [[ $SITE == beta ]]; then
	repld_start
	tap_setup "beta's repld listens" log_has "$W/repld.log" "listening on" 60
	tell listening
else
	out=$(heard listening) || tap_bail "$out"
	repld_start
fi
at "repld started"
tap_check "$SITE's repld replicates with $PEER's over TLS 1.3 across the virtio link" \
	log_has "$W/repld.log" "replicating with site $PEER" 180

# ---- checkpoint 1: alpha primary ---------------------------------------------
if [[ $SITE == alpha ]]; then
	at "fio"
	out=$(fio_here "$SEED") && tap_ok "fio on alpha's two volumes, verified: $out" ||
		tap_fail "fio on alpha" "$out"
	out=$(state_reaches vm1 state uptodate) &&
		tap_ok "alpha's initial sync ended (state uptodate)" || tap_fail "the initial sync" "$out"
	out=$(shipped "$SOCK" vm1) &&
		tap_ok "alpha's repld: every record shipped and acknowledged (lag 0, acked_seq $(last_seq vm1))" ||
		tap_fail "alpha's records shipped" "$out"
	at "shipped"
	tell drained1 "$(last_seq vm1)"
	sums 1
else
	seq=$(heard drained1) || tap_bail "$seq"
	at "alpha drained"
	out=$(applied_reaches vm1 "$seq") && tap_ok "beta applied alpha's last sequence $seq" ||
		tap_fail "beta applies alpha's last sequence" "$out"
	tap_check "more than 100 records came over the link" test "$(status_of vm1 applied_seq)" -gt 100
	tap_check "beta's replica is consistent" test "$(status_of vm1 consistency)" = consistent
	sums 1
	tell synced1
fi

# ---- planned failover ------------------------------------------------------------
if [[ $SITE == alpha ]]; then
	out=$(heard synced1) || tap_bail "$out"
	tap_check "alpha steps down once drained (repltool secondary --wait)" \
		"$REPLTOOL" secondary --config-dir "$ETC" --wait 120 vm1
	at "secondary"
	tell secondary
else
	out=$(heard secondary) || tap_bail "$out"
	tap_check "beta takes over (repltool primary)" "$REPLTOOL" primary --config-dir "$ETC" vm1
fi

# ---- checkpoint 2: beta primary, its writes back to alpha ----------------------------
if [[ $SITE == beta ]]; then
	at "fio"
	out=$(MB=$((MB / 2)) fio_here $((SEED + 1))) &&
		tap_ok "fio on beta's two volumes, verified: $out" || tap_fail "fio on beta" "$out"
	out=$(shipped "$SOCK" vm1) &&
		tap_ok "beta's repld: every record shipped back and acknowledged (lag 0, acked_seq $(last_seq vm1))" ||
		tap_fail "beta's records shipped" "$out"
	at "shipped"
	tell drained2 "$(last_seq vm1)"
	sums 2
else
	seq=$(heard drained2) || tap_bail "$seq"
	at "beta drained"
	out=$(applied_reaches vm1 "$seq") && tap_ok "alpha applied beta's last sequence $seq" ||
		tap_fail "alpha applies beta's last sequence" "$out"
	tap_check "alpha's replica is consistent" test "$(status_of vm1 consistency)" = consistent
	sums 2
fi

# ---- the end: neither stops its daemon while the other still checks -------------------
at "done"
tell finished
out=$(heard finished) || tap_bail "$out"
if repld_stop; then
	tap_ok "$SITE's repld exits 0 on SIGTERM"
else
	tap_fail "$SITE's repld exits 0 on SIGTERM" "exit $?; the end of its log:
$(tail -5 "$W/repld.log")"
fi
tap_check "repltool down removes $SITE's volumes" "$REPLTOOL" down --config-dir "$ETC" vm1
tap_done
