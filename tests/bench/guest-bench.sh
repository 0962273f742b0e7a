#!/usr/bin/env bash
# Runs in the guest (tests/bench/run.sh): the same fio jobs on dm-linear and
# on repl over the same RAM disk, with `repltool dump -f --release` draining
# the ring as a daemon would. Prints one line per job and the ratios.
set -euo pipefail
source "$(dirname "$0")/../guest/lib.sh"

RUNTIME=${BENCH_RUNTIME:-10}
ROUNDS=${BENCH_ROUNDS:-3}

ram_disks 2 1024
S=$(blockdev --getsz /dev/ram0)
# brd allocates a page at its first write: fill the disk once so that no
# run pays for that.
dd if=/dev/zero of=/dev/ram0 bs=1M oflag=direct status=none || true

# fio_job NAME DEV ARGS...: prints "iops MB/s" of the write side (terse v3:
# field 48 is write bandwidth in KiB/s, 49 write IOPS).
fio_job() {
	local name=$1 dev=$2
	shift 2
	fio --name="$name" --filename="$dev" --direct=1 --ioengine=libaio \
		--time_based --runtime="$RUNTIME" --ramp_time=2 --size=1G \
		--output-format=terse --terse-version=3 "$@" |
		awk -F';' '{ printf "%d %.1f\n", $49, $48 / 1024 }'
}

JOBS=("randwrite-4k-qd32 --rw=randwrite --bs=4k --iodepth=32"
      "write-1m-qd4 --rw=write --bs=1M --iodepth=4")

# Targets: dm-linear; repl with the default activity log (512 hot extents
# of 4 MiB: the 1 GiB working set fits); repl-al-small, an AL of 16 hot
# extents of 1 MiB that the random writes keep evicting (its cost).
TARGETS=(${BENCH_TARGETS:-linear repl repl-al-small})

repl_setup() {
	"$REPLTOOL" meta create --force --group bench "$@" --data-dev /dev/ram0 /dev/ram1 >/dev/null
	dm_create bench "0 $S repl /dev/ram0 /dev/ram1 bench primary 2 ring_mb 256"
	"$REPLTOOL" dump --follow --release --stats bench >/tmp/consumer.txt 2>&1 &
	CONSUMER=$!
}

setup() {
	case $1 in
	linear) dm_create bench "0 $S linear /dev/ram0 0" ;;
	repl) repl_setup ;;
	repl-al-small) repl_setup --extent-kb 1024 --hot-extents 16 ;;
	esac
}

teardown() {
	if [[ $1 == repl* ]]; then
		echo "# repl status: $(dmsetup status bench)"
		kill -INT "$CONSUMER"
		wait "$CONSUMER" || true
	fi
	dmsetup remove bench
}

for job in "${JOBS[@]}"; do
	read -r name args <<<"$job"
	for ((round = 1; round <= ROUNDS; round++)); do
		for target in "${TARGETS[@]}"; do
			setup $target
			# shellcheck disable=SC2086
			echo "$name $target $round $(fio_job "$name" /dev/mapper/bench $args)"
			teardown $target
		done
	done
done
rmmod brd
