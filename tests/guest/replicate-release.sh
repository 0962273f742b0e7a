#!/usr/bin/env bash
# repltool replicate releases only what the secondary has applied: a
# primary g1 and its replica g2 on RAM disks; the ring drained once
# (--once), then followed under a write load and killed (SIGKILL) at a
# random moment: the primary's released_seq never passes the replica's
# applied_seq, and a restarted replicate continues (skipping what was
# applied but not released) until the two disks are identical. A batch
# the replica refuses (a source of another group) exits 1 and releases
# nothing of it.
set -uo pipefail
source "$(dirname "$0")/../lib/tap.sh"
source "$(dirname "$0")/lib.sh"

W=$(mktemp -d /tmp/replicate-release.XXXXXX)
REPL_PID=""			# the replicate that follows
LOAD_PID=""			# the write load

cleanup() {
	[[ -n $LOAD_PID ]] && touch "$W/stop"
	[[ -n $REPL_PID ]] && kill -KILL "$REPL_PID" 2>/dev/null
	wait 2>/dev/null
	dm_remove_all
	rm -rf "$W"
}
trap cleanup EXIT

ram_disks 4 64
S=$(blockdev --getsz /dev/ram0)

# status_of GROUP KEY: a "key value" line of `repltool status GROUP`.
status_of() {
	"$REPLTOOL" status "$1" | awk -v k="$2" '$1 == k { print $2; exit }'
}
last_seq() { echo $(($(status_of g1 next_seq) - 1)); }

# quiesce: wait (up to 120 s) until g2 has applied g1's last sequence.
quiesce() {
	local want i
	want=$(last_seq)
	for ((i = 0; i < 1200; i++)); do
		[[ $(status_of g2 applied_seq) == "$want" ]] && return 0
		sleep 0.1
	done
	echo "applied_seq of g2 is $(status_of g2 applied_seq), the last sequence of g1 is $want"
	return 1
}

# same A B: the two devices hold the same bytes (read past the page cache).
same() {
	cmp <(dd if="$1" bs=1M iflag=direct status=none) \
		<(dd if="$2" bs=1M iflag=direct status=none)
}

# write_random COUNT SEEK: COUNT random 4 KiB blocks at block SEEK of g1's volume.
write_random() {
	dd if=/dev/urandom of=/dev/mapper/p1 bs=4k count="$1" seek="$2" \
		oflag=direct conv=fsync status=none
}

# load_start, load_stop: writes with flushes all over the volume, in the
# background; load_stop returns once the last of them is done.
load_start() {
	rm -f "$W/stop"
	while [[ ! -e $W/stop ]]; do
		write_random $((RANDOM % 32 + 1)) $((RANDOM % (S / 8 - 32)))
	done &
	LOAD_PID=$!
}
load_stop() {
	touch "$W/stop"
	wait "$LOAD_PID"
	LOAD_PID=""
}

# Every release a replicate makes is checked as it happens, before it
# happens, by tests/guest/releasecheck.so (LD_PRELOAD): the sequence
# released must be at most g2's applied_seq. checked_replicate LOG ARGS...
# execs `repltool replicate ARGS...` so, one line per release into LOG: run
# it in the background (&), where its pid is the replicate's own.
CHECK_SO=$(cd "$(dirname "$0")" && pwd)/releasecheck.so
checked_replicate() {
	local log=$1
	shift
	LD_PRELOAD=$CHECK_SO RELEASECHECK_TARGET=/dev/dm-repl/g2 RELEASECHECK_LOG=$log \
		exec "$REPLTOOL" replicate "$@"
}

# releases_checked LOG: LOG has releases, each at most applied_seq then.
releases_checked() {
	local n bad
	n=$(grep -c '^release ' "$1")
	bad=$(grep -v ' ok$' "$1" | head -5)
	if [[ -n $bad ]]; then
		echo "$bad"
		return 1
	fi
	((n > 0)) || { echo "no release was made" && return 1; }
	echo "$n releases, each at most applied_seq"
}

# wait_releases LOG N: until LOG has N releases (at most 120 s).
wait_releases() {
	local i n
	for ((i = 0; i < 1200; i++)); do
		n=$(grep -c '^release ' "$1" 2>/dev/null)
		((${n:-0} >= $2)) && return 0
		sleep 0.1
	done
}

# released_le_applied: released_seq (g1) is at most applied_seq (g2) now
# (read with no replicate running: neither moves).
released_le_applied() {
	local rel app
	rel=$(status_of g1 released_seq)
	app=$(status_of g2 applied_seq)
	((rel <= app)) || { echo "released_seq $rel > applied_seq $app" && return 1; }
}

tap_plan 21
tap_strict
meta_create /dev/ram1 g1 /dev/ram0
"$REPLTOOL" meta create --force --role secondary --group g2 --data-dev /dev/ram2 /dev/ram3 >/dev/null
dm_create p1 "0 $S repl /dev/ram0 /dev/ram1 g1 primary 2 ring_mb 64"
dm_create s1 "0 $S repl /dev/ram2 /dev/ram3 g2 secondary 2 source g1"

# ---- once ----
write_random 256 0
write_random 256 4096
tap_check "replicate --once ships the ring and exits 0" \
	"$REPLTOOL" replicate --once --stats g1 g2
tap_check "the replica is identical" same /dev/ram0 /dev/ram2
tap_check "everything is applied and released" \
	test "$(status_of g2 applied_seq):$(status_of g1 released_seq)" = "$(last_seq):$(last_seq)"

# ---- applied, not released: a replicate killed between write(2) and release ----
write_random 32 2048
"$REPLTOOL" dump --raw g1 | "$REPLTOOL" apply g2
n=$(($(last_seq) - $(status_of g1 released_seq)))
skipped=$(status_of g2 skipped)
"$REPLTOOL" replicate --once --stats g1 g2 >"$W/skip.out" 2>&1
tap_check "records already applied are released without being sent ($n)" \
	grep -q "records 0 batches 0 bytes 0 skipped $n applied_seq $(last_seq)\$" "$W/skip.out"
tap_check "the replica saw none of them again" \
	test "$(status_of g2 skipped):$(status_of g1 released_seq)" = "$skipped:$(last_seq)"

# ---- killed while it follows a write load ----
before=$(status_of g2 applied_seq)
load_start
[[ -x $CHECK_SO ]] || tap_bail "no $CHECK_SO: make -C tests/guest"
checked_replicate "$W/rel1.log" g1 g2 2>"$W/repl1.err" &
REPL_PID=$!
# It runs until it has released some records (a state, not a duration),
# then a random while more.
wait_releases "$W/rel1.log" 3
sleep 0.$((RANDOM % 10))
kill -KILL "$REPL_PID"
wait "$REPL_PID" 2>/dev/null || true	# 137: the kill
REPL_PID=""
tap_check "under load, no release passed applied_seq ($(grep -c '^release ' "$W/rel1.log" 2>/dev/null) checked)" \
	releases_checked "$W/rel1.log"
tap_check "it applied records before it was killed" \
	test "$(status_of g2 applied_seq)" -gt "$before"
tap_check "after SIGKILL released_seq is still at most applied_seq" released_le_applied
tap_diag "overflows $(status_of g1 overflows); killed at released_seq $(status_of g1 released_seq), applied_seq $(status_of g2 applied_seq), last_seq $(last_seq)"

checked_replicate "$W/rel2.log" --stats g1 g2 >"$W/repl2.out" 2>"$W/repl2.err" &
REPL_PID=$!
wait_releases "$W/rel2.log" 3
load_stop
tap_check "the restarted replicate catches up" quiesce
tap_check "restarted under load, no release passed applied_seq ($(grep -c '^release ' "$W/rel2.log" 2>/dev/null) checked)" \
	releases_checked "$W/rel2.log"
kill -TERM "$REPL_PID"
rc=0
wait "$REPL_PID" || rc=$?
REPL_PID=""
tap_check "SIGTERM ends it with status 0" test "$rc" = 0 -a ! -s "$W/repl2.err"
tap_diag "$(cat "$W/repl2.out" "$W/repl2.err")"
tap_check "the replica is identical after the kill and the restart" same /dev/ram0 /dev/ram2
tap_check "everything is released" test "$(status_of g1 released_seq)" = "$(last_seq)"

# ---- a refused batch ----
dmsetup message s1 0 source g3
write_random 64 8192
released=$(status_of g1 released_seq)
applied=$(status_of g2 applied_seq)
rc=0
"$REPLTOOL" replicate --once g1 g2 2>"$W/refused.err" || rc=$?
tap_check "a batch of another group's records is refused with status 1" test "$rc" = 1
tap_check "the reason is named as apply names it" \
	grep -q "repltool: replicate: g2: batch refused at seq $((released + 1)): record of another group (group_tag)" "$W/refused.err"
tap_diag "$(cat "$W/refused.err")"
tap_check "nothing of it is released or applied" \
	test "$(status_of g1 released_seq):$(status_of g2 applied_seq)" = "$released:$applied"
dmsetup message s1 0 source g1
tap_check "with the right source the same records go through" \
	"$REPLTOOL" replicate --once g1 g2
tap_check "and are released" test "$(status_of g1 released_seq)" = "$(last_seq)"
tap_check "and the replica is identical" same /dev/ram0 /dev/ram2

# The control: the check sees a release of records never applied (dump
# --release frees them at once).
write_random 16 12288
LD_PRELOAD=$CHECK_SO RELEASECHECK_TARGET=/dev/dm-repl/g2 RELEASECHECK_LOG=$W/control.log \
	"$REPLTOOL" dump --raw --release g1 >/dev/null
tap_check "the release check catches a release past applied_seq (control)" \
	grep -q ' VIOLATION$' "$W/control.log"

dmsetup remove p1
dmsetup remove s1
tap_check "nothing is left" test "$(live_objects)" = "0 0 0"
rmmod brd
tap_done
