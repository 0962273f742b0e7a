#!/usr/bin/env bash
# Local replication end to end, the procedure of
# Documentation/replication-local.md command for command: a primary group
# fed by fio (random sizes, verify, discards, fsyncs, O_DIRECT), its records
# piped by `repltool dump --raw -f --release` into `repltool apply` on a
# secondary group; once the secondary has applied the primary's last
# sequence the two are byte for byte the same. With one volume per group,
# with two, and by media: a seed copy made with dd, record files carried
# and applied with `repltool apply -i`, one of them twice.
#
# TEST_SEED in the environment replays fio's random choices.
set -uo pipefail
source "$(dirname "$0")/../lib/tap.sh"
source "$(dirname "$0")/lib.sh"

# Job control: a background pipeline gets its own process group, whose id
# is the pid of its first command (the dump), so that the dump alone can be
# stopped and the apply left to drain the pipe.
set -m

MB=64				# data device of each volume
S=$((MB * 2048))
SEED=${TEST_SEED:-$(date +%s)}
W=$(mktemp -d /tmp/replicate.XXXXXX)
FEED_PID=""			# the dump of the running feeder
APPLY_PID=""			# its apply

cleanup() {
	if [[ -n $FEED_PID ]]; then
		kill -TERM "$FEED_PID" 2>/dev/null
		wait 2>/dev/null
	fi
	dm_remove_all
	loop_disks_free
	rm -rf "$W"
}
trap cleanup EXIT

# feed_start PRIMARY SECONDARY: the pipe, in the background.
feed_start() {
	"$REPLTOOL" dump --raw -f --release "$1" 2>"$W/dump.err" |
		"$REPLTOOL" apply --stats "$2" >"$W/apply.out" 2>"$W/apply.err" &
	APPLY_PID=$!
	FEED_PID=$(jobs -p %1)
}

# feed_stop: stop the dump; the apply drains the pipe and ends with status 0.
# Runs in this shell (not in $(...)): it waits for this shell's children.
feed_stop() {
	local rc=0 drc=0
	kill -TERM "$FEED_PID" 2>/dev/null
	wait "$FEED_PID" || drc=$?
	wait "$APPLY_PID" || rc=$?
	FEED_PID=""
	if ((rc != 0 || (drc != 0 && drc != 143))); then
		echo "dump exited $drc, apply exited $rc"
		cat "$W/dump.err" "$W/apply.err"
		return 1
	fi
	return 0
}

# volume NAME GROUP ROLE INDEX [SOURCE]: loop disks, metadata and the dm
# device over them, as in Documentation/replication-local.md.
volume() {
	local name=$1 group=$2 role=$3 index=$4 src=${5:-} data meta opts
	data=$(loop_disk $MB)
	meta=$(loop_disk 4)
	"$REPLTOOL" meta create --role "$role" --volume "$index" --group "$group" \
		--data-dev "$data" "$meta" >/dev/null || return 1
	if [[ $role == primary ]]; then
		opts="2 ring_mb 128"
	else
		opts="2 source $src"
	fi
	dm_create "$name" "0 $(blockdev --getsz "$data") repl $data $meta $group $role $opts"
}

# counters SECONDARY: what the apply path took, for the TAP log.
counters() {
	"$REPLTOOL" status "$1" | awk '
		/^apply/ { a = 1 }
		a && $1 ~ /^(applied_seq|applied_epoch|batches|records|skipped|bytes|flushes|rejected)$/ { printf "%s %s ", $1, $2 }
		END { print "" }'
}

tap_plan 32
tap_strict
tap_diag "seed $SEED (set TEST_SEED to replay)"

# ---------------------------------------------------------------------------
# One volume per group: vm0 to vm0r.
tap_setup "primary volume" volume vm0-disk0 vm0 primary 0
tap_setup "secondary volume" volume vm0r-disk0 vm0r secondary 0 vm0
tap_check "one volume: primary and secondary loaded" \
	test -c /dev/dm-repl/vm0 -a -c /dev/dm-repl/vm0r
tap_check "the secondary says it is one" \
	bash -c "dmsetup status vm0r-disk0 | grep -q ' repl secondary vm0r 0 consistent 0 '"

feed_start vm0 vm0r
out=$(fio_run "$SEED" /dev/mapper/vm0-disk0) && tap_ok "fio on the primary, verified: $out" ||
	tap_fail "fio on the primary" "$out"
dmsetup message vm0-disk0 0 marker before-compare
out=$(quiesce vm0 vm0r) && tap_ok "the secondary applied the primary's last sequence $(last_seq vm0)" ||
	tap_fail "quiesce" "$out"
tap_check "no write overflowed the primary's ring" \
	test "$(status_of vm0 overflows)" = 0
tap_check "the replica is the primary, byte for byte" \
	cmp /dev/mapper/vm0-disk0 /dev/mapper/vm0r-disk0
tap_check "the marker is listed as applied" \
	bash -c "'$REPLTOOL' status vm0r | grep -q 'before-compare'"
tap_diag "replicated: $(counters vm0r)"
rec=$(status_of vm0r applied_seq)
tap_check "records were replicated (applied_seq $rec)" test "$rec" -gt 100
feed_stop >"$W/stop.out" && tap_ok "the feeder stops cleanly" ||
	tap_fail "the feeder stops cleanly" "$(cat "$W/stop.out")"
tap_diag "apply: $(cat "$W/apply.out" "$W/apply.err")"
tap_check "the secondary refused nothing" test "$(status_of vm0r rejected)" = 0
tap_check "the replica's volume stays read-only" \
	bash -c "! dd if=/dev/zero of=/dev/mapper/vm0r-disk0 bs=4k count=1 oflag=direct status=none 2>/dev/null"
dmsetup remove vm0-disk0
dmsetup remove vm0r-disk0
loop_disks_free
tap_check "nothing is left of the first pair" test "$(live_objects)" = "0 0 0"

# ---------------------------------------------------------------------------
# Two volumes per group: vm1 (volumes 0 and 1) to vm1r, the example of
# Documentation/replication-local.md.
tap_setup "primary volume 0" volume vm1-disk0 vm1 primary 0
tap_setup "primary volume 1" volume vm1-disk1 vm1 primary 1
tap_setup "secondary volume 0" volume vm1r-disk0 vm1r secondary 0 vm1
tap_setup "secondary volume 1" volume vm1r-disk1 vm1r secondary 1 vm1
tap_check "two volumes: both groups have two" \
	test "$(dmsetup status | grep -c ' repl ')" = 4
feed_start vm1 vm1r
out=$(fio_run "$((SEED + 1))" /dev/mapper/vm1-disk0 /dev/mapper/vm1-disk1) &&
	tap_ok "fio on both primary volumes, verified: $out" || tap_fail "fio on both primary volumes" "$out"
out=$(quiesce vm1 vm1r) && tap_ok "the secondary applied the primary's last sequence $(last_seq vm1)" ||
	tap_fail "quiesce (two volumes)" "$out"
tap_check "volume 0 is replicated byte for byte" cmp /dev/mapper/vm1-disk0 /dev/mapper/vm1r-disk0
tap_check "volume 1 is replicated byte for byte" cmp /dev/mapper/vm1-disk1 /dev/mapper/vm1r-disk1
tap_diag "replicated: $(counters vm1r)"
rec=$(status_of vm1r applied_seq)
tap_check "records were replicated (two volumes, applied_seq $rec)" test "$rec" -gt 100
feed_stop >"$W/stop.out" && tap_ok "the feeder stops cleanly (two volumes)" ||
	tap_fail "the feeder stops cleanly (two volumes)" "$(cat "$W/stop.out")"
tap_diag "apply: $(cat "$W/apply.out" "$W/apply.err")"
dmsetup remove vm1-disk0
dmsetup remove vm1-disk1
dmsetup remove vm1r-disk0
dmsetup remove vm1r-disk1
loop_disks_free
tap_check "nothing is left of the second pair" test "$(live_objects)" = "0 0 0"

# ---------------------------------------------------------------------------
# By media. The primary's disk already holds data: seeded to the replica
# with dd (the volume not loaded, so not written), then the changes go as
# record files, applied in order; the first one applied again is skipped.
# Both "hosts" are this guest: the replica's group has its own name and
# names its source.
# Set-up steps, not tests: a failure ends the suite (Bail out!).
D=$(loop_disk $MB) && M=$(loop_disk 4) && RD=$(loop_disk $MB) && RM=$(loop_disk 4) ||
	tap_bail "by media: loop disks"
tap_setup "by media: random data on the primary's disk" \
	dd if=/dev/urandom of="$D" bs=1M count=$MB oflag=direct status=none
tap_setup "by media: the seed copy" dd if="$D" of="$W/vm3-seed.img" bs=1M iflag=direct status=none
tap_setup "by media: the seed copy onto the replica's disk" \
	dd if="$W/vm3-seed.img" of="$RD" bs=1M oflag=direct conv=fsync status=none
tap_setup "by media: primary metadata" \
	"$REPLTOOL" meta create --role primary --group vm3 --data-dev "$D" "$M"
tap_setup "by media: primary volume" \
	dm_create vm3-disk0 "0 $(blockdev --getsz "$D") repl $D $M vm3 primary 2 ring_mb 128"
tap_setup "by media: secondary metadata" \
	"$REPLTOOL" meta create --role secondary --group vm3r --data-dev "$RD" "$RM"
tap_setup "by media: secondary volume" \
	dm_create vm3r-disk0 "0 $(blockdev --getsz "$RD") repl $RD $RM vm3r secondary 2 source vm3"
tap_check "seeded: the replica starts as the primary" cmp /dev/mapper/vm3-disk0 /dev/mapper/vm3r-disk0

# A failed workload is a failed test, and a file of no records proves
# nothing: the seeded replica already equals the primary.
out=$(fio_run "$((SEED + 2))" /dev/mapper/vm3-disk0) &&
	tap_ok "fio on the primary for the first file, verified: $out" ||
	tap_fail "fio on the primary for the first file" "$out"
tap_setup "by media: dump the first file" \
	bash -c "'$REPLTOOL' dump --raw --release vm3 >'$W/vm3-0001.rec'"
n1=$(last_seq vm3)		# the first file holds sequences 1..n1
out=$(fio_run "$((SEED + 3))" /dev/mapper/vm3-disk0) &&
	tap_ok "fio on the primary for the second file, verified: $out" ||
	tap_fail "fio on the primary for the second file" "$out"
tap_setup "by media: dump the second file" \
	bash -c "'$REPLTOOL' dump --raw --release vm3 >'$W/vm3-0002.rec'"
tap_check "the first file holds records (sequences 1 to $n1)" test "$n1" -gt 100
tap_check "the second file holds records (sequences $((n1 + 1)) to $(last_seq vm3))" \
	test "$(last_seq vm3)" -gt "$((n1 + 100))"
tap_diag "record files: $(stat -c '%n %s bytes' "$W"/vm3-*.rec | tr '\n' ' ')"
tap_check "the first file applies" "$REPLTOOL" apply -i "$W/vm3-0001.rec" vm3r
tap_check "the second file applies" "$REPLTOOL" apply -i "$W/vm3-0002.rec" vm3r
tap_check "the replica's applied_seq is the primary's last sequence" \
	test "$(status_of vm3r applied_seq)" = "$(last_seq vm3)"
tap_check "the replica is the primary, byte for byte, also by checksum" \
	test "$(sha256sum </dev/mapper/vm3-disk0)" = "$(sha256sum </dev/mapper/vm3r-disk0)"
skipped=$(status_of vm3r skipped)
tap_check "the first file applied again is harmless" "$REPLTOOL" apply -i "$W/vm3-0001.rec" vm3r
tap_check "its $n1 records were all skipped" \
	test "$(status_of vm3r skipped)" = "$((skipped + n1))"
tap_diag "by media: $(counters vm3r)"
dmsetup remove vm3-disk0
dmsetup remove vm3r-disk0
loop_disks_free
tap_check "nothing is left" test "$(live_objects)" = "0 0 0"
tap_done
