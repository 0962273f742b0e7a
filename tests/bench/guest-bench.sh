#!/usr/bin/env bash
# Runs in the guest (tests/bench/run.sh): the same fio jobs on dm-linear and
# on repl over the same data device, with `repltool dump -f --release`
# draining the ring as a daemon would. The data devices: a RAM disk (the
# capture path's cost laid bare) and, if tests/bench/run.sh attached one, a
# virtio disk backed by a host file (what a VM's volume is). The metadata is
# on a second RAM disk. Prints one line per job, target and round.
set -euo pipefail
source "$(dirname "$0")/../guest/lib.sh"
source "$(dirname "$0")/lib.sh"

# shellcheck disable=SC2034 # fio_terse's
RUNTIME=${BENCH_RUNTIME:-10}
ROUNDS=${BENCH_ROUNDS:-5}

ram_disks 2 1024
# brd allocates a page at its first write, and the host file behind a
# virtio disk its blocks: fill each once so that no run pays for that.
DEVICES=(/dev/ram0)
[[ -b /dev/vda ]] && DEVICES+=(/dev/vda)
for d in "${DEVICES[@]}"; do
	dd if=/dev/zero of="$d" bs=1M count=1024 oflag=direct status=none || true
done

# BENCH_PROFILE=1: each run under `perf record` (cpu-clock, every CPU), its
# busiest tasks and symbols on stderr as "# perf" lines. Slower: compare
# profiles with each other, not their figures with a plain run's.
FIO_PREFIX=()
# shellcheck disable=SC2034 # fio_terse's
[[ -n ${BENCH_PROFILE:-} ]] &&
	FIO_PREFIX=(perf record -q -F 999 -e cpu-clock -a -o /tmp/perf.data --)

perf_top() {
	[[ -n ${BENCH_PROFILE:-} ]] || return 0
	{
		perf report -i /tmp/perf.data --stdio --sort cpu,comm 2>/dev/null |
			grep '%' | head -8
		perf report -i /tmp/perf.data --stdio --sort sym 2>/dev/null |
			grep '%' | grep -v native_safe_halt | head -30
	} | sed 's/^/# perf /' >&2
}

# fio_job NAME DEV ARGS...: one of BENCH_JOBS over the first GiB, then its
# profile.
fio_job() {
	fio_terse "$@" --size=1G
	perf_top
}

# Targets: dm-linear; repl with the default activity log (512 hot extents
# of 4 MiB: the 1 GiB working set fits); repl-al-small, an AL of 16 hot
# extents of 1 MiB that the random writes keep evicting (its cost).
read -r -a TARGETS <<<"${BENCH_TARGETS:-linear repl repl-al-small}"

# base: repl as another commit built it (BENCH_BASELINE, tests/bench/run.sh
# built it into build/bench/baseline): its module is loaded in place of
# this one for the round, its repltool drives it, so both builds are
# measured in the same boot, round by round, against the same dm-linear.
BASELINE=$TOP/build/bench/baseline
swap_module() {
	rmmod dm_repl
	insmod "$1"
}

repl_setup() {
	"$TOOL" meta create --force --group bench "$@" --data-dev "$DATA" /dev/ram1 >/dev/null
	dm_create bench "0 $S repl $DATA /dev/ram1 bench primary 2 ring_mb 256"
	"$TOOL" dump --follow --release --stats bench >/tmp/consumer.txt 2>&1 &
	CONSUMER=$!
}

setup() {
	TOOL=$REPLTOOL
	case $1 in
	linear) dm_create bench "0 $S linear $DATA 0" ;;
	repl) repl_setup ;;
	repl-al-small) repl_setup --extent-kb 1024 --hot-extents 16 ;;
	base)
		swap_module "$BASELINE/dm-repl.ko"
		TOOL=$BASELINE/repltool
		repl_setup
		;;
	esac
}

teardown() {
	if [[ $1 == repl* || $1 == base ]]; then
		echo "# repl status: $(dmsetup status bench)"
		echo "# repl wake-ups: $("$TOOL" status bench |
			awk '/^(next_seq|wakeups) / { v[$1] = $2 }
			     END { print v["wakeups"], "for", v["next_seq"] - 1, "records" }')"
		kill -INT "$CONSUMER"
		wait "$CONSUMER" || true
	fi
	dmsetup remove bench
	[[ $1 != base ]] || swap_module "$TOP/dm-repl.ko"
}

for DATA in "${DEVICES[@]}"; do
	S=$(blockdev --getsz "$DATA")
	for job in "${BENCH_JOBS[@]}"; do
		read -r name args <<<"$job"
		name=$name@${DATA#/dev/}
		# shellcheck disable=SC2053 # BENCH_JOB is a pattern
		[[ $name == ${BENCH_JOB:-*} ]] || continue
		for ((round = 1; round <= ROUNDS; round++)); do
			for target in "${TARGETS[@]}"; do
				setup "$target"
				# shellcheck disable=SC2086
				echo "$name $target $round $(fio_job "$name" /dev/mapper/bench $args)"
				teardown "$target"
			done
		done
	done
done
rmmod brd
