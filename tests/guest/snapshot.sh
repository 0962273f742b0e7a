#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# A consistent copy survives a resync: the replica's snapshot-hook.
#
# Two sites in this guest, each with its own repld (PSK, each in its own
# network namespace, joined by veth: lib.sh), one volume of 16 MiB with a 2
# MiB ring. beta's volume is an LVM thin LV, vg0/vm1-disk0 in a pool of a VG
# on a loop device, and beta's snapshot-hook is the admin guide's, verbatim
# (taken from Documentation/admin-guide.md, so that the two cannot drift): a
# wrapper logs each call and runs it, and before a take records the sha256 of
# the volume (what the snapshot must hold). LVM runs with a configuration of
# its own (the guest's /etc/lvm is the host's, read-only; no udev).
#
# alpha's repld stops; 8 MiB of writes overflow alpha's ring (behind).
# When it comes back, the GAP and the resync would end beta's consistency:
# beta's repld runs the hook first. Checked: the hook ran while beta was
# still consistent (so the snapshot holds a consistent state), the status
# says "taken" during the resync, and the hook drops it once beta is
# consistent again.
# A second resync whose drop fails leaves its snapshot; the third resync
# must replace it, not keep it. Then the disaster: alpha's link dies for
# good in the middle of that third resync. beta follows the runbook "The
# primary is lost mid-resync" as written: repld stopped, `repltool down`,
# `lvconvert --merge vg0/vm1-disk0-presync`, `repltool create-md
# --role primary --initial-sync --force`, `repltool up`. beta then holds
# exactly the data it had when the snapshot was taken, before that resync.
# That state must be one alpha's disk had at a flush: alpha's data device
# is a dm-log-writes device, whose log records every write alpha's disk
# made durable, in order, with a mark at each flush. Before the third
# resync a writer (logwrites_check write: epochs of O_DIRECT writes, each
# ended by fsync) streams to beta, then alpha's repld stops while it goes
# on, and its ring overflows: beta stopped somewhere in that workload. The
# oracle (logwrites_check check) replays the log and finds beta's promoted
# data equal to the state at one of those flush marks, past the ones
# before the writer started, or inside the epoch after it (what a
# consistent replica holds when its stream stopped mid-epoch, as alpha's
# own disk after a power cut there: dm-repl.md, "consistent"). Last, alpha comes back as beta's replica
# (`repltool rejoin`) and ends equal to it: beta's promotion gave it fresh
# metadata with every region dirty, since alpha holds writes past the
# snapshot (records beta had applied and acknowledged) that no bitmap names.
set -uo pipefail
# shellcheck source=../lib/tap.sh
source "$(dirname "$0")/../lib/tap.sh"
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

MB=16
W=$(mktemp -d /tmp/snapshot.XXXXXX)
LWCHECK=$(cd "$(dirname "$0")" && pwd)/logwrites_check
A_IP=10.77.9.1			# each site in its namespace (sites_network)
B_IP=10.77.9.2
declare -A DATA META
SITES_VOLUMES=0
SITES_KEYS="ring-size 2M; resync-rate 256K;"

trap sites_netns_cleanup EXIT
sites_network || tap_bail "two network namespaces joined by veth"

VG=vg0				# the admin guide's example: vg0/vm1-disk0
LV=vm1-disk0
DOC=$(dirname "$0")/../../Documentation/admin-guide.md

# thin_lv MB: the thin LV VG/LV of MB MiB, in a pool with room for a snapshot.
thin_lv() {
	local pv
	modprobe dm-thin-pool && pv=$(loop_disk $((2 * $1 + 16))) &&
		pvcreate -qq "$pv" && vgcreate -qq "$VG" "$pv" &&
		lvcreate -qq -L $((2 * $1))M -T "$VG/pool" &&
		lvcreate -qq -V "$1M" -T "$VG/pool" -n "$LV" && echo "/dev/$VG/$LV"
}

# doc_hook: the first code block of the admin guide's section "Keeping a
# consistent copy through a resync", the snapshot-hook.
doc_hook() {
	awk '/^## Keeping a consistent copy through a resync$/ { s = 1 }
	     s && /^```$/ { if (b) exit; b = 1; next }
	     b' "$DOC"
}

# The hook is a wrapper: it logs each call; "take" also records the
# replica's consistency and its volume's sha256 (read as sum_of does) as
# it found them, what the snapshot must hold since repld applies nothing
# while its hook runs, then runs the guide's hook; "drop" fails while
# W/fail-drop exists, otherwise it is the guide's hook's.
write_hook() {
	doc_hook >"$W/doc-hook" && [[ $(head -1 "$W/doc-hook") == '#!/bin/sh' ]] &&
		chmod 755 "$W/doc-hook" || return 1
	cat >"$W/hook" <<EOF
#!/bin/bash
echo "\$1 \$2 \$3 \$4" >>"$W/hook.log"
case \$1 in
take)
	$REPLTOOL status vm1b | awk '\$1 == "consistency" { print \$2 }' >"$W/snap.state"
	dd if="\$4" bs=1M iflag=direct status=none | sha256sum | cut -d' ' -f1 >"$W/snap.sum"
	exec "$W/doc-hook" "\$@" ;;
drop)
	[[ -e $W/fail-drop ]] && exit 1
	exec "$W/doc-hook" "\$@" ;;
*)
	exit 2 ;;
esac
EOF
	chmod 755 "$W/hook"
}

# sum_of DEV: its sha256, read past the page cache (an LV's cache misses
# the writes made through the repl device above it while that holds it open).
sum_of() {
	dd if="$1" bs=1M iflag=direct status=none | sha256sum | cut -d' ' -f1
}

# log_writes_volume MB: alpha's data device, a dm-log-writes device over a
# disk of MB MiB (all zeros: the log's base), logging into one of its own.
log_writes_volume() {
	local data log
	modprobe dm-log-writes && data=$(loop_disk "$1") && log=$(loop_disk 160) &&
		dm_create snap-lw "0 $(($1 * 2048)) log-writes $data $log" &&
		echo "$log" >"$W/lw.log" && echo /dev/mapper/snap-lw
}

# flush_marks: the flush marks alpha's log holds so far (a mark written
# first, so that the log's super counts every entry).
flush_marks() {
	dmsetup message snap-lw 0 mark "m$SECONDS" &&
		"$LWCHECK" info "$(cat "$W/lw.log")" | sed -n 's/.*flushes=\([0-9]*\).*/\1/p'
}

# overflow N: N MiB of writes on alpha, then a flush, no repld shipping:
# alpha is behind.
overflow() {
	dd if=/dev/urandom of=/dev/mapper/vm1-0 bs=1M count="$1" oflag=direct conv=fsync \
		status=none && state_reaches vm1 state behind 10
}

# applied_moves SEQ: beta applied past SEQ (60 s at most).
applied_moves() {
	local i
	for ((i = 0; i < 600; i++)); do
		(($(status_of vm1b applied_seq) > $1)) && return 0
		sleep 0.1
	done
	echo "beta's applied_seq is still $(status_of vm1b applied_seq) after 60 s"
	return 1
}

# resyncing: alpha's repld says its state is resyncing (60 s at most).
resyncing() {
	local i
	for ((i = 0; i < 600; i++)); do
		[[ $(link_fact "$W/alpha.sock" vm1 state) == resyncing ]] && return 0
		sleep 0.1
	done
	echo "alpha's link state is $(link_fact "$W/alpha.sock" vm1 state) after 60 s"
	return 1
}

# not_consistent: beta is past the gap, outdated or inconsistent (60 s at most).
not_consistent() {
	local i c
	for ((i = 0; i < 600; i++)); do
		c=$(status_of vm1b consistency)
		[[ $c == outdated || $c == inconsistent ]] && return 0
		sleep 0.1
	done
	echo "beta is $c after 60 s"
	return 1
}

# snap_fact: beta's snapshot line in its repld's status.
snap_fact() {
	link_fact "$W/beta.sock" vm1 snapshot
}

# snap_is WHAT: beta's status says the snapshot is WHAT (30 s at most: the
# hook may still run when alpha says it resyncs, or when its log says it
# started).
snap_is() {
	local i
	for ((i = 0; i < 300; i++)); do
		[[ $(snap_fact) == "$1" ]] && return 0
		sleep 0.1
	done
	echo "beta's snapshot is $(snap_fact) after 30 s, not $1"
	return 1
}

tap_strict
lvm_conf && DATA[alpha:0]=$(log_writes_volume $MB) && META[alpha:0]=$(loop_disk 4) && META[beta:0]=$(loop_disk 4) &&
	DATA[beta:0]=$(thin_lv $MB) || tap_bail "the disks, beta's an LVM thin LV"
openssl rand -hex 32 >"$W/psk" && chmod 600 "$W/psk" && sites_conf "$W/conf" "$W/psk" &&
	write_hook && sed -i "s|host beta;|host beta; snapshot-hook $W/hook;|" "$W/conf/vm1.conf" ||
	tap_bail "the resource file and the hook"
tap_setup "both sites made and up" bash -c \
	"$(declare -f tool); REPLTOOL=$REPLTOOL W=$W; tool alpha create-md --role primary &&
	 tool beta create-md --role secondary && tool alpha up && tool beta up"
tap_check "config check accepts the hook" \
	"$REPLTOOL" config check --dir "$W/conf" --site beta
dd if=/dev/urandom of=/dev/mapper/vm1-0 bs=64k count=16 oflag=direct conv=fsync status=none
site_start beta
site_start alpha
out=$(quiesce vm1 vm1b 120) && tap_ok "replicating" || tap_fail "the first writes" "$out"
tap_check "no snapshot while nothing ends the consistency" test ! -e "$W/hook.log"

# ---- a gap and a resync: the copy is kept, then dropped ---------------------------
site_stop alpha KILL
out=$(overflow 8) && tap_ok "alpha overflows its ring: behind" || tap_fail "overflow" "$out"
site_start alpha
out=$(resyncing) && tap_ok "alpha resyncs" ||
	tap_fail "the resync" "$out"
out=$(snap_is taken) && tap_ok "beta's status says the snapshot is taken during the resync" ||
	tap_fail "the snapshot's status" "$out"
tap_check "the hook took it first, with the group and the data device" \
	grep -qx "take vm1 vm1b ${DATA[beta:0]}" "$W/hook.log"
tap_check "the hook ran while beta was still consistent" \
	test "$(cat "$W/snap.state" 2>/dev/null)" = consistent
out=$(state_reaches vm1 state uptodate 300) && out=$(state_reaches vm1b consistency consistent 60) &&
	tap_ok "the resync ends, beta consistent" || tap_fail "the end of the resync" "$out"
out=$(log_has "$W/hook.log" "drop vm1 vm1b" 20) && tap_ok "the hook dropped the snapshot" ||
	tap_fail "drop" "$out"
out=$(snap_is none) && tap_ok "the status says none once the hook returned" ||
	tap_fail "the status after the drop" "$out"
tap_check "the snapshot LV is gone" bash -c "! lvs $VG/$LV-presync >/dev/null 2>&1"
tap_check "equal after the resync" test "$(sum_of /dev/mapper/vm1-0)" = "$(sum_of /dev/mapper/vm1b-0)"

# ---- a drop that fails: the next resync takes a new snapshot ------------------------
touch "$W/fail-drop"
site_stop alpha KILL
overflow 4 >/dev/null || tap_bail "the second overflow"
site_start alpha
out=$(state_reaches vm1 state uptodate 300) && out=$(state_reaches vm1b consistency consistent 60) &&
	tap_ok "a second resync ends" || tap_fail "the second resync" "$out"
out=$(log_has "$W/beta.log" "snapshot-hook $W/hook drop: exit status 1" 30) &&
	tap_ok "the hook's drop failed, and beta's log says so" || tap_fail "the failed drop" "$out"
out=$(snap_is drop) && tap_ok "beta's status says the drop failed" ||
	tap_fail "the status after the failed drop" "$out"
first_sum=$(cat "$W/snap.sum")

# ---- the primary lost in the middle of a resync -------------------------------------
# A workload of flush epochs streams to beta; alpha's repld stops while it
# goes on, until the ring overflows.
min_mark=$(flush_marks) || tap_bail "alpha's write log"
applied=$(status_of vm1b applied_seq)
# (At most 48 MiB, so that the log of 160 MiB never fills.)
"$LWCHECK" write -s 3 -M 48 /dev/mapper/vm1-0 >"$W/writer.out" 2>&1 &
writer=$!
out=$(applied_moves "$applied") && tap_ok "beta applies the writer's epochs" ||
	tap_fail "the stream of the writer" "$out"
site_stop alpha KILL
out=$(state_reaches vm1 state behind 120) && tap_ok "the writer goes on; alpha's ring overflows" ||
	tap_fail "the third overflow" "$out"
kill -TERM "$writer" 2>/dev/null || true	# unless it reached its 48 MiB
wait "$writer"
tap_check "the writer stopped after an epoch's flush" grep -q '^writer: epochs=' "$W/writer.out"
tap_diag "$(cat "$W/writer.out"); beta applied up to $(status_of vm1b applied_seq)"
site_start alpha
out=$(not_consistent) && tap_ok "beta is past the gap: not consistent" || tap_fail "the second resync" "$out"
site_stop alpha KILL
tap_diag "alpha is lost: beta is $(status_of vm1b consistency), its snapshot $(snap_fact)"
# The runbook, step by step: repld stopped, the volumes down; the snapshot
# merged back into its volume; fresh metadata of a primary of a new
# generation with every region dirty (alpha holds writes past the snapshot
# that no bitmap names), then up.
site_stop beta KILL
tool beta down >/dev/null || tap_bail "beta down"
out=$(lvconvert --merge "$VG/$LV-presync" 2>&1) && tap_ok "lvconvert --merge $VG/$LV-presync" ||
	tap_fail "the merge" "$out"
tap_check "merged at once: the snapshot LV is gone, the volume holds its data at the take" \
	test "$(lvs --noheadings -o lv_name "$VG" 2>&1 | grep -c presync)" = 0 \
	-a "$(sum_of "${DATA[beta:0]}")" = "$(cat "$W/snap.sum")"
out=$(tool beta create-md --role primary --initial-sync --force 2>&1) && out=$(tool beta up 2>&1) &&
	tap_ok "beta promoted from its snapshot" || tap_fail "promotion" "$out"
tap_check "beta is a primary with every region dirty" \
	test "$(status_of vm1b role)" = primary -a "$(status_of vm1b dirty_regions)" = $((MB * 16))
tap_check "the third resync took a new snapshot in place of the one the failed drop left" \
	test "$(grep -c '^take ' "$W/hook.log")" = 3 -a "$(cat "$W/snap.sum")" != "$first_sum"
tap_check "the snapshot was taken while beta was consistent" \
	test "$(cat "$W/snap.state" 2>/dev/null)" = consistent
tap_check "beta holds exactly its data at the snapshot, its state before the resync" \
	test "$(sum_of /dev/mapper/vm1b-0)" = "$(cat "$W/snap.sum")"
flush_marks >/dev/null || tap_bail "the end of alpha's write log"
verdict=$("$LWCHECK" check -m "$((min_mark + 1))" "$(cat "$W/lw.log")" /dev/mapper/vm1b-0 2>&1;
	echo "exit status $?")
tap_diag "$verdict"
tap_check "the oracle: beta's data is alpha's disk at one of the writer's flush marks (after mark $min_mark), or inside the epoch after it" \
	grep -qE 'lwcheck: .*result=(exact|partial)' <<<"$verdict" && ! grep -q 'log-writes: Ran out' <(dmesg)

# ---- alpha returns as beta's replica (the unplanned failover's runbook) ------------
out=$(tool alpha rejoin --discard-my-data 2>&1) && tap_ok "alpha rejoins" || tap_fail "rejoin" "$out"
site_start alpha
site_start beta
out=$(state_reaches vm1b state uptodate 300) && out=$(state_reaches vm1 consistency consistent 120) &&
	tap_ok "beta resyncs every region to alpha: beta up to date, alpha consistent" ||
	tap_fail "the return" "$out"
tap_check "alpha holds beta's data, byte for byte, with the writes past the snapshot gone" \
	test "$(sum_of /dev/mapper/vm1-0)" = "$(sum_of /dev/mapper/vm1b-0)"
tap_done
