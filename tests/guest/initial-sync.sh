#!/usr/bin/env bash
# Initial sync of a new pair over repld, with regions of zeros skipped.
#
# Two sites in this guest, each with its own repld (PSK, each in its own
# network namespace, joined by veth: lib.sh), one group of two volumes of 64
# MiB. The primary's volumes hold data in a few places and zeros elsewhere, as
# a new thin or sparse disk does. Volume 0's replica is a dm-thin volume
# (nothing allocated), volume 1's a disk full of random bytes (a reused disk).
# Both sites make their metadata with `create-md --initial-sync`: every region
# of the primary is dirty, the replica inconsistent. repld resyncs the
# regions; a region of zeros goes as a record header (ZERO), which the replica
# zeroes where it is not zero already.
#
# Checked: the replica is inconsistent and refuses promotion until the
# sync ends; then it is consistent and equal to the primary byte for byte;
# the link carried a small fraction of the volumes' size; the thin replica
# allocated no more than the data; writes after the sync replicate.
#
# TEST_SEED in the environment replays the places of the data.
set -uo pipefail
source "$(dirname "$0")/../lib/tap.sh"
source "$(dirname "$0")/lib.sh"

MB=64
DATA_CHUNKS=4			# of 256 KiB on each primary volume
SEED=${TEST_SEED:-$(date +%s)}
W=$(mktemp -d /tmp/initsync.XXXXXX)
A_IP=10.77.10.1			# each site in its namespace (sites_network)
B_IP=10.77.10.2
declare -A DATA META		# site:volume -> data, metadata device

trap sites_netns_cleanup EXIT
sites_network || tap_bail "two network namespaces joined by veth"

# ---- set-up ----------------------------------------------------------------

# scatter DEV N [SHIFT]: N chunks of 256 KiB of random bytes at places the
# seed picks (SHIFT 128 picks places none of SHIFT 0's for N < 128).
scatter() {
	local i
	for ((i = 0; i < $2; i++)); do
		dd if=/dev/urandom of="$1" bs=256k count=1 \
			seek=$(((SEED + i * 61 + ${3:-0}) % (MB * 4))) conv=notrunc status=none ||
			return 1
	done
}

# thin_volume MB: prints a new dm-thin volume of MB MiB in a pool of its own
# (64 KiB blocks, as the regions), of which nothing is allocated.
thin_volume() {
	local tmeta tdata
	modprobe dm-thin-pool && tmeta=$(loop_disk 8) && tdata=$(loop_disk $(($1 + 8))) &&
		dm_create initsync-pool "0 $(blockdev --getsz "$tdata") thin-pool $tmeta $tdata 128 0" &&
		dmsetup message initsync-pool 0 "create_thin 0" &&
		dm_create initsync-thin "0 $(($1 * 2048)) thin /dev/mapper/initsync-pool 0" &&
		echo /dev/mapper/initsync-thin
}

# thin_mapped: sectors the thin volume has allocated.
thin_mapped() {
	dmsetup status initsync-thin | awk '{ print $4 }'
}

disks() {
	local v
	for v in 0 1; do
		DATA[alpha:$v]=$(loop_disk $MB) && scatter "${DATA[alpha:$v]}" $DATA_CHUNKS &&
			META[alpha:$v]=$(loop_disk 4) && META[beta:$v]=$(loop_disk 4) || return 1
	done
	# The thin replica has old data where the primary has zeros: a device
	# without write-zeroes, where only what reads as zeros is left alone.
	DATA[beta:0]=$(thin_volume $MB) && scatter "${DATA[beta:0]}" $DATA_CHUNKS 128 &&
		DATA[beta:1]=$(loop_disk $MB) &&
		dd if=/dev/urandom of="${DATA[beta:1]}" bs=1M count=$MB status=none
}

# synced: alpha is up to date and beta consistent (300 s at most).
synced() {
	state_reaches vm1 state uptodate && state_reaches vm1b consistency consistent 60 &&
		return 0
	echo "the end of alpha's log:"
	tail -n 5 "$W/alpha.log"
	return 1
}


tap_strict
tap_diag "seed $SEED (set TEST_SEED to replay)"
# Not tap_setup: it runs its command in a subshell, and these set DATA and META.
disks || tap_bail "the disks of both sites"
openssl rand -hex 32 >"$W/psk" && chmod 600 "$W/psk" && sites_conf "$W/conf" "$W/psk" ||
	tap_bail "the resource file"
tap_setup "create-md --initial-sync on alpha (primary)" tool alpha create-md --role primary --initial-sync
tap_setup "create-md --initial-sync on beta (secondary)" tool beta create-md --role secondary --initial-sync
tap_setup "both sites up" bash -c "$(declare -f tool); REPLTOOL=$REPLTOOL W=$W; tool alpha up && tool beta up"

# ---- before the sync --------------------------------------------------------------
tap_check "alpha is behind: every region is dirty" test "$(status_of vm1 state)" = behind
tap_check "beta is inconsistent before the sync" test "$(status_of vm1b consistency)" = inconsistent
out=$(tool beta primary 2>&1) && rc=0 || rc=$?
tap_check "an inconsistent replica is not promoted without --force (exit $rc): $out" \
	test $rc -ne 0 -a "$(status_of vm1b role)" = secondary

# ---- the sync ---------------------------------------------------------------------
site_start beta
site_start alpha
out=$(synced) && tap_ok "the initial sync ends: alpha up to date, beta consistent" ||
	tap_fail "the initial sync" "$out"
tap_check "beta is alpha byte for byte (the thin replica and the reused disk)" sites_same
# Before compression (which would shrink zeros too): what was batched.
raw=$(link_fact "$W/alpha.sock" vm1 raw_bytes)
tap_diag "the link carried ${raw:-?} bytes in batches, $(link_fact "$W/alpha.sock" vm1 wire_bytes)" \
	"on the wire, for $((2 * MB)) MiB of volumes ($((2 * DATA_CHUNKS / 4)) MiB of data)"
tap_check "the batches held less than a tenth of the volumes (zeros went as headers)" \
	test "${raw:-0}" -gt 0 -a "${raw:-0}" -lt $((2 * MB * 1024 * 1024 / 10))
mapped=$(thin_mapped)
tap_diag "the thin replica allocated $mapped sectors of $((MB * 2048))" \
	"(the data and the old data: $((2 * DATA_CHUNKS * 512)))"
tap_check "the thin replica allocated no more than the data and its old data" \
	test "$mapped" -le $((2 * DATA_CHUNKS * 512))
zeros=$(grep -o '[0-9]* bytes of zeros went as record headers' "$W/alpha.log" | tail -1 | cut -d' ' -f1)
tap_check "alpha's log tells of ${zeros:-no} bytes of zeros sent as headers (most of the volumes)" \
	test "${zeros:-0}" -gt $((MB * 1024 * 1024))

# ---- after it: the stream ---------------------------------------------------------
dd if=/dev/urandom of=/dev/mapper/vm1-0 bs=64k count=16 seek=100 oflag=direct status=none &&
	dd if=/dev/urandom of=/dev/mapper/vm1-1 bs=4k count=16 seek=7 oflag=direct status=none
out=$(quiesce vm1 vm1b 120) && tap_ok "writes after the sync are applied by beta" ||
	tap_fail "the stream after the sync" "$out"
tap_check "equal after writes that followed the sync" sites_same
tap_check "beta stays consistent" test "$(status_of vm1b consistency)" = consistent
tap_check "nothing was refused by beta's kernel" test "$(status_of vm1b rejected)" = 0

kill "$(cat "$W/alpha.pid")" "$(cat "$W/beta.pid")"
wait
rm -f "$W"/*.pid
tap_check "repltool down on both sites" bash -c \
	"$(declare -f tool); REPLTOOL=$REPLTOOL W=$W; tool alpha down && tool beta down"

# ---- a primary made for an initial sync, a replica that was not -----------------
# Its first stream says its regions are missing (GAP), though no stream
# before it ended badly: the replica is never consistent before the sync.
tool alpha create-md --role primary --initial-sync --force >/dev/null &&
	tool beta create-md --role secondary --force >/dev/null &&
	tool alpha up && tool beta up || tap_bail "the second pair"
dd if=/dev/urandom of=/dev/mapper/vm1-0 bs=4k count=4 oflag=direct status=none
"$REPLTOOL" replicate --once vm1 vm1b >/dev/null || tap_bail "replicate --once"
tap_check "the replica took the primary's first stream" \
	test "$(status_of vm1b applied_seq)" = "$(last_seq vm1)"
tap_check "... and is outdated: the stream said the primary's regions are missing" \
	test "$(status_of vm1b consistency)" = outdated
tap_check "... and refuses promotion" bash -c \
	"$(declare -f tool); REPLTOOL=$REPLTOOL W=$W; ! tool beta primary 2>/dev/null"
tap_done
