#!/usr/bin/env bash
# Runs in the guest (tests/run-all.sh starts it through vm.sh): every guest
# suite in turn, each one's TAP output into RESULTS/guest-<name>.tap and its
# exit status into RESULTS/guest-<name>.tap.rc. The module unload test runs
# last: it unloads dm-repl.
set -uo pipefail
RESULTS=${1:?usage: run.sh RESULTS_DIR}
cd "$(dirname "$0")"

suites=(smoke.sh table.sh failed-writes.sh metadata.sh failover.sh stream.sh replicate.sh replicate-release.sh apply-crash.sh)
for t in *_test; do
	[[ -x $t ]] && suites+=("$t")
done
suites+=(unload.sh)

for t in "${suites[@]}"; do
	name=guest-${t%.sh}
	echo "guest: running $t"
	if [[ $t == *.sh ]]; then
		timeout 900 bash "$t" >"$RESULTS/$name.tap" 2>&1
	else
		timeout 900 "./$t" >"$RESULTS/$name.tap" 2>&1
	fi
	echo $? >"$RESULTS/$name.tap.rc"
	# Whatever a suite left behind would skew the next one.
	dmsetup remove_all --force >/dev/null 2>&1
done
exit 0
