#!/usr/bin/env bash
# Run every fuzzer of tests/fuzz (fuzz_NAME.c, built by its Makefile) for a
# bounded time over its seed corpus corpus/NAME/, and print TAP: one test
# per fuzzer, passing when it ran the whole time without a crash, with its
# execs and execs/s as a diagnostic.
#
# usage: tests/fuzz/run.sh [SECONDS]      (default 20 per fuzzer)
#
# The seed corpora are only read. What a run finds goes to build/fuzz/NAME/:
# new/ (inputs that found new coverage), crash-* and the like (a failing
# input, to be fixed and then added to corpus/NAME/), log. Longer runs:
# Documentation/testing.md.
set -uo pipefail
# shellcheck source=tests/lib/tap.sh
source "$(dirname "$0")/../lib/tap.sh"
cd "$(dirname "$0")" || exit 2
secs=${1:-20}
work=$(cd ../.. && pwd)/build/fuzz

shopt -s nullglob
sources=(fuzz_*.c)
tap_plan "${#sources[@]}"

if ! out=$(make -s 2>&1); then
	for src in "${sources[@]}"; do
		tap_fail "${src%.c} builds" "$out"
	done
	tap_done
fi

# stat NAME LOG: the value of libFuzzer's final "stat::NAME:" line.
stat() {
	awk -v k="stat::$1:" '$1 == k { print $2 }' "$2"
}

for src in "${sources[@]}"; do
	prog=${src%.c}
	name=${prog#fuzz_}
	dir=$work/$name
	mkdir -p "$dir/new"
	seeds=()
	[[ -d corpus/$name ]] && seeds=("corpus/$name")
	"./$prog" -max_total_time="$secs" -print_final_stats=1 \
		-artifact_prefix="$dir/" "$dir/new" "${seeds[@]}" >"$dir/log" 2>&1
	rc=$?
	if ((rc == 0)); then
		tap_ok "$name: ${secs} s without a crash"
		tap_diag "$name: $(stat number_of_executed_units "$dir/log") execs," \
			"$(stat average_exec_per_sec "$dir/log") execs/s"
	else
		tap_fail "$name: ${secs} s without a crash" \
			"$(grep -E '^==[0-9]+==ERROR|SUMMARY|runtime error|Test unit written|Done' "$dir/log" | head -10)"
	fi
done
tap_done
