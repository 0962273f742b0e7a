#!/usr/bin/env bash
# The whole test suite (what `make check` runs after building):
#   1. host unit tests (libdmrepl, under ASan/UBSan)
#   2. dkms: the module source builds through dkms for the guest kernel;
#      style: checkpatch.pl finds nothing in the kernel code
#   3. guest tests: one qemu run of Debian's kernel with dm-repl.ko loaded
#      runs every scenario and kselftest program of tests/guest/
# Each suite leaves its TAP output in build/results/; tests/lib/summary.sh
# prints the totals ("N passed, N failed, N skipped") and sets the status.
set -uo pipefail
cd "$(dirname "$0")/.."
TOP=$PWD
RESULTS=$TOP/build/results
rm -rf "$RESULTS"
mkdir -p "$RESULTS"

# run_suite NAME CMD...: run CMD, keep its output and exit status.
run_suite() {
	local name=$1
	shift
	echo "== $name"
	"$@" >"$RESULTS/$name.tap" 2>&1
	echo $? >"$RESULTS/$name.tap.rc"
	grep -E '^(not )?ok ' "$RESULTS/$name.tap" | sed 's/^/   /'
}

run_suite unit make -s -C tests/unit run
run_suite dkms tests/dkms-build.sh
run_suite crash tests/crash.sh
run_suite apply-crash tests/apply-crash.sh
run_suite style tests/checkpatch.sh

make -s -C tests/guest || echo "tests/guest: build failed" >&2
GUEST_OUT=$TOP/build/guest/out
echo "== guest (Debian $(tests/guest/vm.sh --print-kver) under qemu)"
DMREPL_KO=$TOP/dm-repl.ko tests/guest/vm.sh --quiet --timeout 2700 --out "$GUEST_OUT" \
	-- bash tests/guest/run.sh "$RESULTS"
rc=$?
# The guest's own verdict on its console: no BUG, WARNING, Oops, lockdep.
{
	echo "1..1"
	if ((rc == 123)); then
		echo "not ok 1 - guest console free of kernel errors"
		grep -E 'BUG:|WARNING:|Oops|KASAN|general protection|circular locking|blocked for more|Kernel panic|UBSAN' \
			"$GUEST_OUT/console.log" "$GUEST_OUT/dmesg.log" | head -20 | sed 's/^/# /'
	elif ((rc >= 124)); then
		echo "not ok 1 - guest run completed (vm.sh status $rc)"
		tail -20 "$GUEST_OUT/console.log" | sed 's/^/# /'
	else
		echo "ok 1 - guest console free of kernel errors"
	fi
} >"$RESULTS/guest-console.tap"
for f in "$RESULTS"/guest-*.tap; do
	echo "== $(basename "$f" .tap)"
	grep -E '^(not )?ok ' "$f" | sed 's/^/   /'
done

echo
tests/lib/summary.sh "$RESULTS"
