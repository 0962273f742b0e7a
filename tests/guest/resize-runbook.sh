#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The resize runbook (Documentation/admin-guide.md, "Growing a volume") run
# as written, with LVM on both sites, while a writer (fio) keeps writing on
# A: on B (the replica) first `lvextend -L +8M` of its data LV vm1-disk0 and
# `repltool resize vm1`, whose line is checked; then the same on A; then A
# `behind` until A is `uptodate` and B `consistent`. Checked then: both
# volumes have the new size and are equal byte for byte, the new space too.
#
# Two sites in this guest, each with its own repld (PSK, each in its own
# network namespace, joined by veth: lib.sh), one volume whose data and
# metadata are linear LVs of a VG on a loop device (LVM set up by lib.sh's
# lvm_conf). One LVM, one kernel hold both sites, so beta's names differ from
# the runbook's, which are those of a host of its own: its VG is vg1 (two VGs
# vg0 would clash, and so would their LVs' device-mapper names), its group in
# this kernel vm1b, its device vm1b-0 (sites_conf). Each VG's free space held
# random bytes (an LV written, then removed) before the lvextend takes it: the
# new extents hold different bytes on A and B, and B must end with A's.
set -uo pipefail
# shellcheck source=../lib/tap.sh
source "$(dirname "$0")/../lib/tap.sh"
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

MB=16
GROW_MB=8
W=$(mktemp -d /tmp/resize-runbook.XXXXXX)
A_IP=10.77.6.1			# each site in its namespace (sites_network)
B_IP=10.77.6.2
declare -A DATA META VG=([alpha]=vg0 [beta]=vg1)
# shellcheck disable=SC2034 # lib.sh's sites_conf reads it
SITES_VOLUMES=0

trap 'stop_writer; sites_netns_cleanup' EXIT
sites_network || tap_bail "two network namespaces joined by veth"

# site_lvs SITE: its VG on a loop disk, the LVs vm1-disk0 ($MB MiB) and
# vm1-meta0, and random bytes in the rest.
site_lvs() {
	local vg=${VG[$1]} pv
	pv=$(loop_disk $((MB + GROW_MB + 16))) && pvcreate -qq "$pv" && vgcreate -qq "$vg" "$pv" &&
		lvcreate -qq -L "${MB}M" -n vm1-disk0 "$vg" && lvcreate -qq -L 4M -n vm1-meta0 "$vg" &&
		lvcreate -qq -l 100%FREE -n old "$vg" || return 1
	dd if=/dev/urandom of="/dev/$vg/old" bs=1M oflag=direct status=none \
		count=$(($(blockdev --getsize64 "/dev/$vg/old") >> 20)) &&
		lvremove -qq -f "$vg/old" || return 1
	DATA[$1:0]=/dev/$vg/vm1-disk0
	META[$1:0]=/dev/$vg/vm1-meta0
}

# The writer: 4 KiB random writes, 50 a second, into alpha's first $MB MiB.
start_writer() {
	fio --name=writer --filename=/dev/mapper/vm1-0 --rw=randwrite --bs=4k --direct=1 \
		--size="${MB}M" --time_based --runtime=600 --rate_iops=50 \
		--output="$W/writer.out" >/dev/null 2>&1 &
	WRITER=$!
}

stop_writer() {
	[[ -n ${WRITER:-} ]] && kill "$WRITER" 2>/dev/null && wait "$WRITER" 2>/dev/null
	WRITER=
}

# grew DEV: the line `repltool resize vm1` prints for DEV.
grew() {
	echo "$1: grew from $((MB * 2048)) to $(((MB + GROW_MB) * 2048)) sectors"
}

tap_strict
lvm_conf && site_lvs alpha && site_lvs beta || tap_bail "the VGs and LVs"
openssl rand -hex 32 >"$W/psk" && chmod 600 "$W/psk" && sites_conf "$W/conf" "$W/psk" ||
	tap_bail "the resource file"
tap_setup "create-md and up on alpha (primary) and beta (secondary)" bash -c \
	"$(declare -f tool); REPLTOOL=$REPLTOOL W=$W; tool alpha create-md --role primary &&
	 tool beta create-md --role secondary && tool alpha up && tool beta up"
site_start beta
site_start alpha
start_writer
out=$(state_reaches vm1 state uptodate 120) && out=$(state_reaches vm1b consistency consistent 60) &&
	tap_ok "replicating, the writer writing" || tap_fail "the first sync" "$out"

# ---- 1. on B (the replica) first ----------------------------------------------------
out=$(lvextend -L +${GROW_MB}M vg1/vm1-disk0 2>&1) && tap_ok "B: lvextend -L +${GROW_MB}M vg1/vm1-disk0" ||
	tap_fail "lvextend on B" "$out"
out=$(tool beta resize 2>&1)
tap_check "B: repltool resize vm1 says \"$out\"" test "$out" = "$(grew vm1b-0)"
tap_check "B: nothing marked dirty, B still consistent" \
	test "$(status_of vm1b consistency)" = consistent

# ---- 2. then on A (the primary) -----------------------------------------------------
out=$(lvextend -L +${GROW_MB}M vg0/vm1-disk0 2>&1) && tap_ok "A: lvextend -L +${GROW_MB}M vg0/vm1-disk0" ||
	tap_fail "lvextend on A" "$out"
out=$(tool alpha resize 2>&1)
tap_check "A: repltool resize vm1 says \"$out\"" test "$out" = "$(grew vm1-0)"
tap_check "A is behind (its new space dirty)" test "$(status_of vm1 state)" = behind
dd if=/dev/urandom of=/dev/mapper/vm1-0 bs=64k count=16 seek=$(((MB + 2) * 16)) \
	oflag=direct status=none || tap_bail "writes into the new space"
out=$(state_reaches vm1 state uptodate 120) && out=$(state_reaches vm1b consistency consistent 60) &&
	tap_ok "A uptodate and B consistent, the writer still writing" || tap_fail "the resync" "$out"
tap_check "the writer wrote throughout" kill -0 "$WRITER"
stop_writer
out=$(quiesce vm1 vm1b 60) && tap_ok "B caught up with the writer's last writes" ||
	tap_fail "B caught up" "$out"

# ---- the result -----------------------------------------------------------------------
tap_check "both volumes and both LVs are $((MB + GROW_MB)) MiB" test \
	"$(blockdev --getsz /dev/mapper/vm1-0 /dev/mapper/vm1b-0 "${DATA[alpha:0]}" "${DATA[beta:0]}" | sort -u)" \
	= $(((MB + GROW_MB) * 2048))
a=$(data_sum "${DATA[alpha:0]}") && b=$(data_sum "${DATA[beta:0]}")
tap_check "equal byte for byte, the new space too (sha256 ${a:0:16})" test "$a" = "$b"
tap_done
