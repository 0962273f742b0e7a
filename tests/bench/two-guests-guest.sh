#!/usr/bin/env bash
# One host of the two-guest benchmarks (tests/bench/two-guests.sh): it runs
# in its own guest, with its own kernel, and reaches the other guest over a
# virtio link. alpha is the primary and measures; beta is the replica and
# reports its state.
#
# usage: two-guests-guest.sh alpha|beta DIR
#
# DIR is shared by both guests: DIR/etc the resource files (etc/tp for the
# throughput group, etc/lg for the lag group), the certificates and the
# hosts' addresses (etc/hosts), DIR/sync where the guests meet
# (tests/guest/lib.sh's tell and heard), DIR/sums the sha256 of the
# replicated disks for the host. DRBD's resource file is made in each guest.
# The disks, the same on both hosts:
#   vda  data of group tp (the throughput runs)      vdb  its metadata
#   vdc  DRBD's backing device (internal metadata); dm-linear runs on it too
#   vdd  data of group lg (lag, burst, image)        vde  its metadata
#   vdf  data of group rs (the resync)                vdg  its metadata
#   vdh  (alpha only) an ext4 image with a file tree on it, made by the host
#
# Results are lines "result WHAT ..." on stdout, read by the host; the rest
# is commentary ("# ...").
#
# Environment (from the host): TEST_PHASES (throughput, lag, resync: which
# run, after the link's), TEST_RUNTIME (seconds of each throughput run),
# TEST_RATE (the link's cap, tc's syntax), TEST_TBF (tbf's other
# parameters), TEST_DELAY (netem's one-way delay on each end, none by
# default), TEST_LAG_S (the lag run), TEST_BURST_MB, TEST_LINK_S (each
# raw link measurement), TEST_TARGETS, TEST_DIRTY_MB and TEST_STREAM_PCT
# (the resync: the MiB written with no repld, the stream's share of the
# link).
set -euo pipefail
source "$(dirname "$0")/../guest/lib.sh"
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/resync-lib.sh"

usage="usage: two-guests-guest.sh alpha|beta DIR"
SITE=${1:?$usage}
DIR=${2:?$usage}
case $SITE in
alpha) PEER=beta ROLE=primary ;;
beta) PEER=alpha ROLE=secondary ;;
*) echo "$usage" >&2 && exit 2 ;;
esac
SYNC=$DIR/sync
PROBE=$TOP/tools/bench-two-guests/probe
# shellcheck disable=SC2034 # fio_terse's
RUNTIME=${TEST_RUNTIME:-10}
RATE=${TEST_RATE:-8mbit}
LAG_S=${TEST_LAG_S:-30}
BURST_MB=${TEST_BURST_MB:-32}
LINK_S=${TEST_LINK_S:-5}
TBF=${TEST_TBF:-burst 64kb latency 100ms}
read -r -a TARGETS <<<"${TEST_TARGETS-linear repl drbd-A drbd-pa}"
PHASES=" ${TEST_PHASES:-throughput lag resync} "
DIRTY_MB=${TEST_DIRTY_MB:-32}
STREAM_PCT=${TEST_STREAM_PCT:-25}
RS_RING_MB=4
W=$(mktemp -d /tmp/bench2.XXXXXX)
PEER_ADDR=$(awk -v p="$PEER" '$1 == p { print $2 }' "$DIR/etc/hosts")
VOL_MB=$(($(blockdev --getsize64 /dev/vda) >> 20))
DRBD_CONF=$W/drbd.conf
SINK_PORT=7795

cleanup() {
	local rc=$?
	((rc == 0)) || tell failed "exit $rc at line ${BASH_LINENO[0]}"
	resync_cleanup
	repld_kill
	drbdadm -c "$DRBD_CONF" down r0 >/dev/null 2>&1 || true
	wait 2>/dev/null
	dm_remove_all
	[[ -n ${VM_OUT:-} ]] && cp "$W"/repld*.log "$VM_OUT/" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT

at() {
	echo "# $SECONDS s: $*"
}

now() {
	date +%s.%N
}

# since T0: the seconds from T0 (a now) to now.
since() {
	awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'
}

# cpu_mark, cpu_busy: how busy this guest's CPUs were since the mark, and
# the CPU seconds repld used meanwhile.
cpu_mark() {
	{ head -1 /proc/stat && echo "repld $(repld_ticks)"; } >"$W/cpu.mark"
}

cpu_busy() {
	{ cat "$W/cpu.mark" && head -1 /proc/stat && echo "repld $(repld_ticks)"; } | awk -v hz="$(getconf CLK_TCK)" '
		$1 == "cpu" { n++; idle[n] = $5 + $6; all[n] = 0; for (i = 2; i <= NF; i++) all[n] += $i }
		$1 == "repld" { r[++m] = $2 }
		END {
			d = all[2] - all[1]
			printf "CPUs %.0f%% busy", d ? 100 * (1 - (idle[2] - idle[1]) / d) : 0
			if (r[1] != "" && r[2] != "" && r[2] >= r[1])
				printf ", repld %.1f CPU-s", (r[2] - r[1]) / hz
			printf "\n"
		}'
}

# repld_ticks: the user and system clock ticks of the running repld, if any.
repld_ticks() {
	local pid
	pid=$(cat "$W/repld.pid" 2>/dev/null) || return 0
	awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || true
}

# result WHAT...: a line for the host, kept in W/results too.
result() {
	echo "result $*" | tee -a "$W/results"
}

# wait_for NAME [SECONDS]: heard, its value dropped, its failure said.
wait_for() {
	local out
	out=$(heard "$@") || { echo "$out" >&2 && return 1; }
}

# ---- the link ------------------------------------------------------------------

# link_rate NAME: alpha sends to beta's sink for LINK_S seconds; alpha
# prints "result link NAME BYTES SECONDS" (the seconds until the sink had
# read it all).
link_rate() {
	local out
	if [[ $SITE == beta ]]; then
		"$PROBE" sink "$SINK_PORT" >"$W/sink.out" &
		log_has "$W/sink.out" listening 20 >/dev/null
		tell "sink-$1"
		wait $!
		echo "# beta's sink: $(tail -1 "$W/sink.out")"
	else
		wait_for "sink-$1"
		out=$("$PROBE" send "$PEER_ADDR" "$SINK_PORT" "$LINK_S")
		result link "$1" "$(awk '{ print $2, $4 }' <<<"$out")"
	fi
}

# ---- repl ------------------------------------------------------------------------

# repl_up GROUP: its metadata (fresh: both disks hold the same data), the
# volume up, and repld (beta's first, as an admin would start it) until
# the two replicate.
repl_up() {
	ETC=$DIR/etc/$1
	SOCK=$W/repld-$1.sock
	"$REPLTOOL" create-md --config-dir "$ETC" --role "$ROLE" "$1" >/dev/null
	"$REPLTOOL" up --config-dir "$ETC" "$1" >/dev/null
	if [[ $SITE == beta ]]; then
		repld_start
		log_has "$W/repld.log" "listening on" 60 >/dev/null
		tell "listening-$1"
	else
		wait_for "listening-$1"
		repld_start
	fi
	log_has "$W/repld.log" "replicating with site $PEER" 180 >&2
}

# repl_down GROUP: once both are done with it.
repl_down() {
	tell "done-$1"
	wait_for "done-$1"
	repld_stop
	"$REPLTOOL" down --config-dir "$ETC" "$1" >/dev/null
	mv "$W/repld.log" "$W/repld-$1.log"
}

link_of() {
	link_fact "$SOCK" "$1" "$2"
}

# caught_up GROUP SECONDS: wait until alpha's kernel says uptodate (no dirty
# region left) and repld has every record acknowledged; print the seconds.
caught_up() {
	local t0 end
	t0=$(now)
	end=$((SECONDS + $2))
	while ((SECONDS < end)); do
		if [[ $(status_of "$1" state) == uptodate ]] && shipped "$SOCK" "$1" 1 >/dev/null; then
			since "$t0"
			return 0
		fi
		sleep 0.2
	done
	echo "not caught up after $2 s: state $(status_of "$1" state), link $(link_of "$1" state)," \
		"lag_records $(link_of "$1" lag_records)" >&2
	return 1
}

# replica_watch GROUP UNTIL: beta notes its replica's consistency every
# 0.2 s until alpha told UNTIL; prints the states seen, in order (a state
# again after another, again).
replica_watch() {
	local c last=""
	while [[ ! -e $SYNC/$PEER.$2 ]]; do
		[[ -e $SYNC/$PEER.failed ]] && return 1
		c=$(status_of "$1" consistency)
		[[ $c == "$last" ]] || { echo "$c" && last=$c; }
		sleep 0.2
	done | paste -sd, -
}

# repl_run JOB ARGS...: one job on the tp group, its state at the end, then
# the time until the replica caught up (alpha); the replica's states
# meanwhile, and at the end (beta).
repl_run() {
	local name=$1 out t raw0 wire0
	shift
	if [[ $SITE == alpha ]]; then
		tell "start-$name"
		raw0=$(link_of tp raw_bytes) wire0=$(link_of tp wire_bytes)
		at "repl $name"
		cpu_mark
		out=$(fio_terse "$name" /dev/mapper/tp-0 "$@" --size="${VOL_MB}M" \
			--refill_buffers --randrepeat=0)
		echo "# $(cpu_busy)"
		result tput repl "$name" "$out"
		result state repl "$name" primary "$(status_of tp state)" \
			overflows "$(status_of tp overflows)" link "$(link_of tp state)"
		"$REPLTOOL" status tp | sed 's/^/# /'
		t=$(caught_up tp 600)
		result catchup repl "$name" "$t" raw $(($(link_of tp raw_bytes) - raw0)) \
			wire $(($(link_of tp wire_bytes) - wire0))
		tell "caught-$name" "$(last_seq tp)"
	else
		wait_for "start-$name"
		result replica repl "$name" "$(replica_watch tp "caught-$name")"
		t=$(heard "caught-$name") || { echo "$t" >&2 && exit 1; }
		applied_reaches tp "$t" 120
		result replica-after repl "$name" "$(status_of tp consistency)"
	fi
}

# ---- the lag group: lag at half the link, a burst, an ext4 image ----------------

# lg_bytes KEY: raw_bytes or wire_bytes of lg's link, as repld counts.
lg_bytes() {
	link_of lg "$1"
}

# The end of a phase of GROUP whose data disk is DEV. Beta's first half,
# replica_caught_up GROUP: once alpha says it is finished, its last
# sequence applied and the replica's state for the host. Then on each
# side phase_end GROUP DEV: the sums of DEV for the host, the group down;
# alpha's primary_end GROUP DEV says it is finished, and its last sequence.
replica_caught_up() {
	local last
	wait_for "$1-finished" 1200
	last=$(heard "$1-last") || { echo "$last" >&2 && exit 1; }
	applied_reaches "$1" "$last" 120
	result replica-after "$1" "$(status_of "$1" consistency)"
}

phase_end() {
	sums_put "$DIR/sums/$SITE.$1" "$2"
	repl_down "$1"
}

primary_end() {
	tell "$1-finished"
	tell "$1-last" "$(last_seq "$1")"
	phase_end "$1" "$2"
}

lag_and_catchup() {
	local half t0 t1 raw0 wire0 o0 d perf_pid fio_pid
	repl_up lg
	if [[ $SITE == beta ]]; then
		replica_caught_up lg
		# The replica's copy of the image is a sound file system.
		result replica-fsck lg "$(e2fsck -fn /dev/vdd >"$W/fsck.out" 2>&1 && echo clean ||
			echo "errors (exit $?)")"
		sed 's/^/# /' "$W/fsck.out"
		phase_end lg /dev/vdd
		return
	fi
	# Half of the capped link's measured rate, in bytes a second.
	half=$(awk '$1 == "result" && $2 == "link" && $3 == "capped" { printf "%d", $4 / $5 / 2 }' \
		"$W/results")
	at "lag at $half bytes/s"
	# The probe looks for LAG_S seconds once fio writes (fio takes seconds
	# to start under TCG), then until all it saw captured is released.
	t0=$(last_seq lg)
	fio --name=lag --filename=/dev/mapper/lg-0 --direct=1 --ioengine=libaio --iodepth=1 \
		--rw=randwrite --bs=4k --size="$BURST_MB"M --time_based --runtime=$((LAG_S + 5)) \
		--rate="$half" --refill_buffers --randrepeat=0 --output="$W/fio-lag.out" &
	fio_pid=$!
	while [[ $(last_seq lg) == "$t0" ]]; do
		sleep 0.05
	done
	cpu_mark
	if [[ -n ${TEST_PROFILE:-} ]]; then
		perf record -q -F 999 -e cpu-clock -g -p "$(cat "$W/repld.pid")" -o "$W/perf.data" \
			-- sleep "$LAG_S" 2>/dev/null &
		perf_pid=$!
	fi
	"$PROBE" lag --samples "$VM_OUT/lag-samples.txt" lg "$LAG_S" >"$W/lag.out"
	echo "# during the lag run: $(cpu_busy)"
	if [[ -n ${TEST_PROFILE:-} ]]; then
		wait "$perf_pid" || true
		perf report -i "$W/perf.data" --stdio --no-children --sort sym 2>/dev/null |
			grep '%' | head -30 | sed 's/^/# perf /'
	fi
	wait "$fio_pid"
	result lag load "$half" "$(cut -d' ' -f2- "$W/lag.out")"
	echo "# repld's own figure after the run: lag_seconds $(link_of lg lag_seconds)"

	at "burst of $BURST_MB MiB"
	raw0=$(lg_bytes raw_bytes) wire0=$(lg_bytes wire_bytes) o0=$(status_of lg overflows)
	t0=$(now)
	fio --name=burst --filename=/dev/mapper/lg-0 --direct=1 --ioengine=libaio --iodepth=4 \
		--rw=write --bs=1M --size="$BURST_MB"M --refill_buffers --randrepeat=0 \
		--output="$W/fio-burst.out"
	t1=$(since "$t0")
	d=$("$PROBE" drain --drain 600 lg)
	caught_up lg 600 >/dev/null
	result burst overflows $(($(status_of lg overflows) - o0)) bytes $((BURST_MB << 20)) write_s "$t1" drain_s "$(awk '{ print $2 }' <<<"$d")" \
		raw $(($(lg_bytes raw_bytes) - raw0)) wire $(($(lg_bytes wire_bytes) - wire0))

	# A realistic image: ext4 with a tree of the guest's root on it, made
	# on the host (mkfs.ext4 -d), on vdh. Written at once, as the burst.
	at "the ext4 image"
	raw0=$(lg_bytes raw_bytes) wire0=$(lg_bytes wire_bytes) o0=$(status_of lg overflows)
	t0=$(now)
	dd if=/dev/vdh of=/dev/mapper/lg-0 bs=1M iflag=direct oflag=direct status=none
	t1=$(since "$t0")
	d=$("$PROBE" drain --drain 600 lg)
	caught_up lg 600 >/dev/null
	result image overflows $(($(status_of lg overflows) - o0)) bytes "$(blockdev --getsize64 /dev/vdh)" write_s "$t1" \
		drain_s "$(awk '{ print $2 }' <<<"$d")" \
		raw $(($(lg_bytes raw_bytes) - raw0)) wire $(($(lg_bytes wire_bytes) - wire0))
	primary_end lg /dev/vdd
}

# ---- the resync group: a resync while a stream writes ---------------------------

# resync_phase: alpha's rs falls behind with DIRTY_MB of random data
# written while no repld runs (its ring is RS_RING_MB); then its repld
# resyncs it to beta while fio writes a stream at STREAM_PCT % of the
# capped link (tests/bench/resync-lib.sh measures it). Alpha's report
# lines are "result resync-report TEXT"; the 0.2 s samples go to
# VM_OUT/resync-samples.txt.
resync_phase() {
	local link out
	ETC=$DIR/etc/rs
	SOCK=$W/repld-rs.sock
	"$REPLTOOL" create-md --config-dir "$ETC" --role "$ROLE" rs >/dev/null
	"$REPLTOOL" up --config-dir "$ETC" rs >/dev/null
	if [[ $SITE == beta ]]; then
		repld_start
		log_has "$W/repld.log" "listening on" 60 >/dev/null
		tell listening-rs
		replica_caught_up rs
		phase_end rs /dev/vdf
		return
	fi
	at "rs behind: $DIRTY_MB MiB with no repld"
	dd if=/dev/urandom of=/dev/mapper/rs-0 bs=1M count="$DIRTY_MB" oflag=direct status=none
	[[ $(status_of rs state) == behind ]] || { echo "rs is $(status_of rs state), not behind" >&2 && exit 1; }
	link=$(awk '$1 == "result" && $2 == "link" && $3 == "capped" { printf "%d", $4 / $5 }' "$W/results")
	wait_for listening-rs
	at "resync of $(status_of rs dirty_regions) dirty regions"
	resync_under_stream rs "$SOCK" /dev/mapper/rs-0 $((link * STREAM_PCT / 100)) 900 \
		"${VM_OUT:-$W}/resync-samples.txt" repld_start || exit 1
	out=$(shipped "$SOCK" rs 120) || { echo "after the resync: $out" >&2 && exit 1; }
	resync_report "$link" "$DIRTY_MB" "$RS_RING_MB" "$(($(blockdev --getsize64 /dev/vdf) >> 20))" \
		"$STREAM_PCT" | while IFS= read -r out; do result resync-report "$out"; done
	primary_end rs /dev/vdf
}

# ---- DRBD 8.4, protocol A ----------------------------------------------------

# drbd_conf VARIANT: the resource r0 on vdc, internal metadata; drbd-pa
# adds pull-ahead: past congestion-fill bytes in flight the primary goes
# Ahead (writes only to its bitmap) and resyncs once the link has room.
drbd_conf() {
	local s
	cat <<-EOF
	global { usage-count no; }
	resource r0 {
		net {
			protocol A;
	EOF
	[[ $1 == drbd-pa ]] && printf '\t\ton-congestion pull-ahead;\n\t\tcongestion-fill 1M;\n'
	echo "	}"
	for s in alpha beta; do
		cat <<-EOF
		on $s {
			device /dev/drbd0 minor 0;
			disk /dev/vdc;
			address $(awk -v p="$s" '$1 == p { print $2 }' "$DIR/etc/hosts"):7789;
			meta-disk internal;
		}
		EOF
	done
	echo "}"
}

drbd() {
	drbdadm -c "$DRBD_CONF" "$@"
}

# drbd_wait WHAT STATE SECONDS: until `drbdadm WHAT r0` says STATE.
drbd_wait() {
	local end=$((SECONDS + $3))
	while ((SECONDS < end)); do
		[[ $(drbd "$1" r0 2>/dev/null) == "$2" ]] && return 0
		sleep 0.2
	done
	echo "drbd $1 is $(drbd "$1" r0 2>&1) after $3 s, not $2" >&2
	return 1
}

# drbd_run VARIANT JOB: fresh metadata on both sides, connected, the bitmap
# cleared (both disks hold the same data: no initial sync), alpha primary,
# the job, the state at its end, both down.
drbd_run() {
	local v=$1 name=$2 out
	shift 2
	drbd_conf "$v" >"$DRBD_CONF"
	{ yes yes || true; } | drbd create-md --force r0 >/dev/null 2>&1
	drbd up r0
	tell "drbd-up-$v-$name"
	wait_for "drbd-up-$v-$name"
	drbd_wait cstate Connected 60
	if [[ $SITE == alpha ]]; then
		drbd new-current-uuid --clear-bitmap r0
		drbd_wait dstate UpToDate/UpToDate 60
		drbd primary r0
		at "$v $name"
		cpu_mark
		out=$(fio_terse "$name" /dev/drbd0 "$@" --size="${VOL_MB}M" --refill_buffers --randrepeat=0)
		echo "# $(cpu_busy)"
		result tput "$v" "$name" "$out"
		result state "$v" "$name" cstate "$(drbd cstate r0)" dstate "$(drbd dstate r0)" \
			oos_kib "$(sed -n 's/.*oos:\([0-9]*\).*/\1/p' /proc/drbd)"
		grep -A3 '^ 0:' /proc/drbd | sed 's/^/# /'
		tell "drbd-ran-$v-$name"
	else
		wait_for "drbd-ran-$v-$name" 600
		result replica "$v" "$name" cstate "$(drbd cstate r0)" dstate "$(drbd dstate r0)"
	fi
	tell "drbd-done-$v-$name"
	wait_for "drbd-done-$v-$name"
	drbd down r0
}

# linear_run JOB ARGS...: dm-linear over DRBD's backing device (alpha).
linear_run() {
	local name=$1 out
	shift
	[[ $SITE == alpha ]] || return 0
	dm_create bench "0 $(blockdev --getsz /dev/vdc) linear /dev/vdc 0"
	at "linear $name"
	cpu_mark
	out=$(fio_terse "$name" /dev/mapper/bench "$@" --size="${VOL_MB}M" \
		--refill_buffers --randrepeat=0)
	echo "# $(cpu_busy)"
	result tput linear "$name" "$out"
	dmsetup remove bench
}

# throughput: each job on each target, one after the other, so that the
# figures compared are taken minutes apart at most. The tp group stays up
# throughout (repld idle while the others run: heartbeats only).
throughput() {
	local job name args target repl=0
	[[ " ${TARGETS[*]} " == *" repl "* ]] && repl=1
	((repl)) && repl_up tp
	for job in "${BENCH_JOBS[@]}"; do
		read -r name args <<<"$job"
		for target in "${TARGETS[@]}"; do
			# shellcheck disable=SC2086 # args are fio's words
			case $target in
			linear) linear_run "$name" $args ;;
			repl) repl_run "$name" $args ;;
			drbd-*) drbd_run "$target" "$name" $args ;;
			*) echo "unknown target $target" >&2 && exit 2 ;;
			esac
		done
	done
	if ((repl)); then
		sums_put "$DIR/sums/$SITE.tp" /dev/vda
		repl_down tp
	fi
}

# ---- the run --------------------------------------------------------------------

hostname "$SITE"
mkdir -p /run/lock /var/lib/drbd
mount -t tmpfs tmpfs /var/lib/drbd
modprobe sch_tbf
modprobe drbd
echo "# $SITE: $ROLE, $VM_NET_IF $VM_NET_ADDR, $(nproc) CPUs, volumes of $VOL_MB MiB," \
	"drbd $(sed -n 's/^version: \([^ ]*\).*/\1/p' /proc/drbd), $(drbdadm --version 2>/dev/null |
	sed -n 's/^DRBDADM_VERSION=//p' | head -1) userland"
at "link"
link_rate raw
# The cap on both ends (beta's carries only the acks); with TEST_DELAY,
# netem's delay first on each end (a round trip of twice it), tbf under it.
# shellcheck disable=SC2086 # TBF is a list of tc's words
if [[ -n ${TEST_DELAY:-} ]]; then
	modprobe sch_netem
	tc qdisc replace dev "$VM_NET_IF" root handle 1: netem delay "$TEST_DELAY" limit 100000
	tc qdisc add dev "$VM_NET_IF" parent 1:1 handle 10: tbf rate "$RATE" $TBF
else
	tc qdisc replace dev "$VM_NET_IF" root tbf rate "$RATE" $TBF
fi
tell capped
wait_for capped
link_rate capped
result link-cap "$RATE" "$TBF"
[[ -z ${TEST_DELAY:-} ]] || result link-delay "$TEST_DELAY"
tc -s qdisc show dev "$VM_NET_IF" | sed 's/^/# /'
[[ $PHASES != *" throughput "* ]] || throughput
[[ $PHASES != *" lag "* ]] || lag_and_catchup
[[ $PHASES != *" resync "* ]] || resync_phase
tc -s qdisc show dev "$VM_NET_IF" | sed 's/^/# /'
# The raw link again, at the end: what the host's load left of it.
tc qdisc del dev "$VM_NET_IF" root
tell uncapped
wait_for uncapped
link_rate raw-end
at "done"
tell finished
wait_for finished
