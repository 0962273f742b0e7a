#!/usr/bin/env bash
# The resync and seeding benchmarks (the `resync` part of `make bench`):
# one guest, two sites in it (two network namespaces joined by veth, a
# repld in each), the link capped by tc tbf; tests/bench/resync-guest.sh
# says what it measures. Here, on the host: the guest run, its "report"
# lines into build/bench/resync.txt with the kernel, the date, the commit
# and the command. It fails when the guest failed (a replica that differs
# from its primary, a step that did not end) or its kernel log has a splat.
#
# usage: tests/bench/resync.sh
# Environment: BENCH_RESYNC_RATE (the cap, tc's syntax, 8mbit),
# BENCH_RESYNC_TBF (tbf's other parameters, "burst 64kb latency 100ms"),
# BENCH_RESYNC_VOL_MB (the volume, 64), BENCH_RESYNC_DIRTY_MB (written
# while no repld runs, 32), BENCH_RESYNC_STREAM_PCT (the stream's share of
# the link, 25), BENCH_RESYNC_SMP (the guest's vCPUs, 2).
#
# The guest's output (with its "#" lines), console and kernel log, both
# daemons' logs and the samples taken during the resync
# (resync-samples.txt) stay in build/bench/resync/.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
OUT=build/bench/resync
RESULTS=build/bench/resync.txt
export TEST_RESYNC_RATE=${BENCH_RESYNC_RATE:-8mbit}
export TEST_RESYNC_TBF=${BENCH_RESYNC_TBF:-burst 64kb latency 100ms}
export TEST_RESYNC_VOL_MB=${BENCH_RESYNC_VOL_MB:-64}
export TEST_DIRTY_MB=${BENCH_RESYNC_DIRTY_MB:-32}
export TEST_STREAM_PCT=${BENCH_RESYNC_STREAM_PCT:-25}

die() {
	echo "resync bench: $*" >&2
	exit 1
}

source tests/bench/lib.sh
bench_built || die "not built"
((TEST_DIRTY_MB < TEST_RESYNC_VOL_MB)) || die "BENCH_RESYNC_DIRTY_MB must be below BENCH_RESYNC_VOL_MB"

mkdir -p build/bench
start=$SECONDS
DMREPL_KO=$PWD/dm-repl.ko tests/guest/vm.sh --quiet --smp "${BENCH_RESYNC_SMP:-2}" --mem 2048 \
	--timeout 1800 --out "$OUT" -- bash tests/bench/resync-guest.sh
rc=$?
wall=$((SECONDS - start))
if ((rc != 0)); then
	echo "resync bench: the guest failed (vm.sh status $rc); the end of its output:" >&2
	tail -20 "$OUT/output.log" >&2
	exit 1
fi
{
	sed -n 's/^report //p' "$OUT/output.log"
	echo "(kernel $(tests/guest/vm.sh --print-kver), $(date -u +%F), commit" \
		"$(git log -1 --format=%h 2>/dev/null), ${wall} s for the guest;" \
		"BENCH_RESYNC_RATE=$TEST_RESYNC_RATE BENCH_RESYNC_VOL_MB=$TEST_RESYNC_VOL_MB" \
		"BENCH_RESYNC_DIRTY_MB=$TEST_DIRTY_MB BENCH_RESYNC_STREAM_PCT=$TEST_STREAM_PCT)"
} | tee "$RESULTS"
