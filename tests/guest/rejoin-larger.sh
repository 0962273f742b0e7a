#!/usr/bin/env bash
# A rejoining replica larger than its new primary, with writes of its own
# past the primary's end: no resync from the primary can cover those
# regions, so the replica would stay inconsistent for good. Its repld
# refuses the session instead, saying what to do (grow the primary's
# volume); once the primary is grown, the rejoin completes and the two are
# equal byte for byte.
#
# Two sites in this guest, each with its own repld (PSK, each in its own
# network namespace, joined by veth: lib.sh), one volume: alpha's 16 MiB,
# beta's 20 MiB (a replica may be larger: the order of an online resize).
set -uo pipefail
source "$(dirname "$0")/../lib/tap.sh"
source "$(dirname "$0")/lib.sh"

W=$(mktemp -d /tmp/rejoin-larger.XXXXXX)
A_IP=10.77.4.1			# each site in its namespace (sites_network)
B_IP=10.77.4.2
declare -A DATA META
# shellcheck disable=SC2034 # lib.sh's sites_conf reads it
SITES_VOLUMES=0

trap sites_netns_cleanup EXIT
sites_network || tap_bail "two network namespaces joined by veth"

# write_mb DEV MIB: 64 KiB of random bytes at MiB MIB of DEV.
write_mb() {
	dd if=/dev/urandom of="$1" bs=64k count=1 seek=$(($2 * 16)) oflag=direct status=none
}

tap_strict
DATA[alpha:0]=$(loop_disk 16) && DATA[beta:0]=$(loop_disk 20) &&
	META[alpha:0]=$(loop_disk 4) && META[beta:0]=$(loop_disk 4) || tap_bail "the disks"
openssl rand -hex 32 >"$W/psk" && chmod 600 "$W/psk" && sites_conf "$W/conf" "$W/psk" ||
	tap_bail "the resource file"
tap_setup "alpha (16 MiB) a primary, beta (20 MiB) its replica, both up" bash -c \
	"$(declare -f tool); REPLTOOL=$REPLTOOL W=$W; tool alpha create-md --role primary &&
	 tool beta create-md --role secondary && tool alpha up && tool beta up"
write_mb /dev/mapper/vm1-0 3 || tap_bail "alpha's first write"
site_start beta
site_start alpha
out=$(pair_synced vm1 vm1b) && tap_ok "replicating: beta consistent and caught up" ||
	tap_fail "the first sync" "$out"
site_stop alpha KILL
site_stop beta KILL

# beta becomes the primary and writes past alpha's end, then is lost;
# alpha is promoted and written.
out=$(tool alpha secondary 2>&1) && out=$(tool beta primary 2>&1) &&
	tap_ok "beta made the primary (alpha its replica, not connected)" ||
	tap_fail "the failover to beta" "$out"
write_mb /dev/mapper/vm1b-0 18 || tap_bail "beta's write past alpha's end"
write_mb /dev/mapper/vm1b-0 5 || tap_bail "beta's write within alpha's size"
tool beta down >/dev/null || tap_bail "beta down"
out=$(tool alpha primary 2>&1) && tap_ok "alpha promoted while beta is down" ||
	tap_fail "alpha primary" "$out"
write_mb /dev/mapper/vm1-0 7 || tap_bail "alpha's write"

# beta returns as alpha's replica, its own writes kept as dirty regions.
tool beta up >/dev/null || tap_bail "beta up"
out=$(tool beta secondary --force 2>&1) && out=$(tool beta rejoin --discard-my-data 2>&1) &&
	tap_ok "beta rejoins as alpha's replica" || tap_fail "beta's rejoin" "$out"
site_start beta
site_start alpha
out=$(log_has "$W/beta.log" "reaches past the primary's end" 90) &&
	tap_ok "beta's repld refuses: a region written on beta lies past alpha's end" ||
	tap_fail "the refusal" "$out"
tap_diag "$(grep -m1 "reaches past" "$W/beta.log")"
out=$(log_has "$W/alpha.log" "reaches past the primary's end" 30) &&
	tap_ok "alpha's log names the reason too" || tap_fail "alpha's log" "$out"
tap_check "beta stays inconsistent, not silently consistent" \
	test "$(status_of vm1b consistency)" = inconsistent
tap_check "beta took nothing of alpha's before refusing: no generation yet" \
	test "$(status_of vm1b generation)" = 0000000000000000

# The way out the message gives: grow alpha's volume to beta's size.
site_stop alpha KILL
f=$(losetup -n -O BACK-FILE "${DATA[alpha:0]}") && truncate -s 20M "$f" &&
	losetup -c "${DATA[alpha:0]}" || tap_bail "grow alpha's data device"
out=$(tool alpha resize 2>&1) && tap_ok "alpha grown to 20 MiB: $out" ||
	tap_fail "resize on alpha" "$out"
site_start alpha
out=$(pair_synced vm1 vm1b) && tap_ok "beta is alpha's consistent replica once alpha is grown" ||
	tap_fail "the rejoin after the resize" "$out"
echo 1 >/proc/sys/vm/drop_caches
tap_check "equal byte for byte" cmp "${DATA[alpha:0]}" "${DATA[beta:0]}"
tap_done
