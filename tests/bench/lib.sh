# shellcheck shell=bash
# What the benchmarks share: for the guest scripts (tests/bench/guest-bench.sh,
# tests/bench/two-guests-guest.sh) the fio jobs, so that every target of
# every benchmark runs the same ones (source it after tests/guest/lib.sh);
# for the host scripts that start guests (tests/bench/two-guests.sh,
# tests/bench/resync.sh) bench_built.

# bench_built: in the project's top directory, the programs the guests run
# are built: tools/bench-two-guests here, the rest by make. False, with a
# word on stderr, if not.
bench_built() {
	if ! make -s -C tools/bench-two-guests; then
		echo "cannot build tools/bench-two-guests" >&2
		return 1
	fi
	[[ -f dm-repl.ko && -x userspace/repld/repld && -x userspace/repltool/repltool ]] && return
	echo "build dm-repl.ko, repld and repltool first (make)" >&2
	return 1
}

# NAME and fio arguments: 4 KiB random writes at queue depth 32, 1 MiB
# sequential writes at queue depth 4.
# shellcheck disable=SC2034 # for the scripts that source this one
BENCH_JOBS=("randwrite-4k-qd32 --rw=randwrite --bs=4k --iodepth=32"
	"write-1m-qd4 --rw=write --bs=1M --iodepth=4")

FIO_PREFIX=()

# fio_terse NAME DEV ARGS...: one fio job on DEV with libaio and O_DIRECT,
# time-based (RUNTIME seconds after a 2 s ramp); prints "iops MB/s" of the
# write side (terse v3: field 48 is write bandwidth in KiB/s, 49 write
# IOPS). FIO_PREFIX (an array, e.g. perf record) runs before fio.
fio_terse() {
	local name=$1 dev=$2
	shift 2
	"${FIO_PREFIX[@]}" fio --name="$name" --filename="$dev" --direct=1 \
		--ioengine=libaio --time_based --runtime="$RUNTIME" \
		--ramp_time=2 --output-format=terse --terse-version=3 "$@" |
		awk -F';' 'NF > 49 { printf "%d %.1f\n", $49, $48 / 1024 }'
}
