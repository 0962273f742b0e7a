#!/usr/bin/env bash
# The whole test suite (what `make check` runs after building):
#   0. build: the unit and guest test programs build (the compiler's
#      message is the failure's diagnostic), and tests/manifest names every
#      test program source
#   1. host unit tests (libdmrepl, under ASan/UBSan), one TAP file each
#   2. dkms: the module source builds through dkms for the guest kernel;
#      crash, apply-crash and al-reset power-cut tests; two-guests: two
#      hosts, each its own guest and kernel, joined by a virtio link;
#      style: checkpatch.pl finds nothing in the kernel code
#   3. guest tests: one qemu run of Debian's kernel with dm-repl.ko loaded
#      runs the "guest" suites of tests/manifest (tests/guest/run.sh); a
#      second, short one with more memory runs the "bigmem" suites
# Each suite leaves its TAP output in build/results/; tests/lib/summary.sh
# checks them against tests/manifest, prints the totals ("N passed,
# N failed, N skipped") and sets the status.
#
# RUN_ONLY="STAGE..." (build unit host guest bigmem) runs only those stages
# into the results that are there already (RESULTS, default build/results),
# replacing only their own result files; the summary still checks the whole
# manifest. Without it, every stage runs into an emptied RESULTS.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
TOP=$PWD
RESULTS=${RESULTS:-$TOP/build/results}
# shellcheck source=tests/lib/manifest.sh
source tests/lib/manifest.sh
if [[ -z "${RUN_ONLY:-}" ]]; then
	rm -rf "$RESULTS"
fi
RUN_ONLY=${RUN_ONLY:-build unit host guest bigmem}
mkdir -p "$RESULTS"

# stage NAME: whether stage NAME runs.
stage() { [[ " $RUN_ONLY " == *" $1 "* ]]; }

# forget SUITE...: remove the result files of SUITEs before they run again.
forget() {
	local s
	for s in "$@"; do
		rm -f "$RESULTS/$s.tap" "$RESULTS/$s.tap.rc"
	done
}

# Memory of the second guest: the 4 GiB ring needs more than 8 GiB.
BIGMEM_MB=${BIGMEM_MB:-10240}

# run_suite NAME CMD...: run CMD, keep its output and exit status.
run_suite() {
	local name=$1
	shift
	echo "== $name"
	"$@" >"$RESULTS/$name.tap" 2>&1
	echo $? >"$RESULTS/$name.tap.rc"
	grep -E '^(not )?ok |^Bail out!' "$RESULTS/$name.tap" | sed 's/^/   /'
}

# build_check N WHAT CMD...: TAP line N, ok when CMD succeeds; its output
# (the compiler's messages) as diagnostics, and on stderr, when it fails.
build_check() {
	local n=$1 what=$2 out
	shift 2
	if out=$("$@" 2>&1); then
		echo "ok $n - $what"
	else
		echo "not ok $n - $what"
		printf '%s\n' "$out" | tail -40 | sed 's/^/# /'
		printf '%s\n' "$out" | tail -40 | sed "s|^|$what: |" >&2
	fi
}

# Every test program source is a suite of the manifest (or it would be
# built and never run).
manifest_covers_sources() {
	local f name missing=0
	for f in tests/unit/test_*.c; do
		name=$(basename "$f" .c)
		manifest_entries unit | grep -qx "$name" ||
			{ echo "$f: no 'unit $name' line in $MANIFEST" && missing=1; }
	done
	for f in tests/guest/*_test.c; do
		name=$(basename "$f" .c)
		{ manifest_entries guest && manifest_entries bigmem; } | awk '{ print $1 }' |
			grep -qx "$name" ||
			{ echo "$f: no 'guest $name' (or 'bigmem $name') line in $MANIFEST" && missing=1; }
	done
	return $missing
}

# make install into a scratch DESTDIR: every file it must install is there.
installs_everything() {
	local d f r=0
	d=$(mktemp -d) || return 1
	make -s install DESTDIR="$d" PREFIX=/usr || r=1
	for f in usr/sbin/repltool usr/sbin/repld usr/share/man/man8/repltool.8 \
		usr/share/man/man8/repld.8 usr/share/man/man5/dm-repl.conf.5 \
		usr/lib/systemd/system/repld.service etc/dm-repl; do
		[[ -e $d/$f ]] || { echo "make install: no $f"; r=1; }
	done
	grep -q "^ExecStart=/usr/sbin/repld" "$d/usr/lib/systemd/system/repld.service" ||
		{ echo "repld.service: no ExecStart of /usr/sbin/repld"; r=1; }
	rm -rf "$d"
	return $r
}

if stage build; then
echo "== build"
forget build
{
	echo "1..4"
	# No program of an earlier build may stand in for one that fails now
	# (the objects stay: relinking is cheap).
	while read -r t _; do
		rm -f "tests/unit/$t"
	done < <(manifest_entries unit)
	build_check 1 "tests/unit builds" make -s -C tests/unit all
	rm -f tests/guest/*_test
	build_check 2 "tests/guest builds" make -s -C tests/guest
	build_check 3 "tests/manifest names every test program" manifest_covers_sources
	build_check 4 "make install puts the binaries, man pages and unit in place" \
		installs_everything
} >"$RESULTS/build.tap"
grep -E '^(not )?ok ' "$RESULTS/build.tap" | sed 's/^/   /'
fi

# A program that did not build leaves no results: summary.sh counts it.
if stage unit; then
	while read -r t _; do
		forget "$(manifest_result unit "$t")"
		[[ -x tests/unit/$t ]] || continue
		# shellcheck disable=SC2016 # $1 is the inner shell's
		run_suite "$(manifest_result unit "$t")" bash -c 'cd tests/unit && exec "./$1"' - "$t"
	done < <(manifest_entries unit)
fi
if stage host; then
	run_suite dkms tests/dkms-build.sh
	run_suite crash tests/crash.sh
	run_suite apply-crash tests/apply-crash.sh
	run_suite al-reset tests/al-reset.sh
	run_suite two-guests tests/two-guests.sh
	run_suite style tests/checkpatch.sh
	run_suite fuzz tests/fuzz/run.sh
fi

# guest_verdict SUITE VM_STATUS OUT DONE_FILE: the host's verdict on a guest
# run: its kernel log is clean, and its run.sh finished, said so (DONE_FILE,
# written last, holds run.sh's exit status) and vm.sh returned that status.
guest_verdict() {
	local suite=$1 rc=$2 out=$3 done_file=$4 st=""
	[[ -r $done_file ]] && st=$(tr -dc '0-9' <"$done_file")
	{
		echo "1..2"
		if ((rc == 123)); then
			echo "not ok 1 - guest console free of kernel errors"
			grep -E 'BUG:|WARNING:|Oops|KASAN|general protection|circular locking|blocked for more|Kernel panic|UBSAN' \
				"$out/console.log" "$out/dmesg.log" | head -20 | sed 's/^/# /'
		else
			echo "ok 1 - guest console free of kernel errors"
		fi
		if [[ -n $st ]] && ((rc == st || rc == 123)); then
			echo "ok 2 - guest run.sh finished and wrote its completion marker (status $st)"
		else
			echo "not ok 2 - guest run.sh finished and wrote its completion marker"
			if [[ -z $st ]]; then
				echo "# no completion marker $(basename "$done_file"): run.sh ended early or did not run (vm.sh status $rc)"
			else
				echo "# run.sh said $st, vm.sh status $rc"
			fi
			tail -20 "$out/output.log" "$out/console.log" 2>/dev/null | sed 's/^/# /'
		fi
	} >"$RESULTS/$suite.tap"
}

# A MANIFEST of the environment (see tests/lib/manifest.sh) goes to the guest.
[[ -v MANIFEST && " ${VM_ENV:-} " != *" MANIFEST "* ]] && export VM_ENV="${VM_ENV:-} MANIFEST"

# guest_run SECTION CONSOLE_SUITE OUT VM_OPTIONS...: one guest boot that runs
# tests/guest/run.sh for SECTION, and the host's verdict on it.
guest_run() {
	local section=$1 suite=$2 out=$3 done_file t
	shift 3
	done_file=$RESULTS/$suite
	done_file=${done_file%-console}-run.done
	while read -r t _; do
		forget "$(manifest_result "$section" "$t")"
	done < <(manifest_entries "$section")
	forget "$suite"
	rm -f "$done_file"
	DMREPL_KO=$TOP/dm-repl.ko tests/guest/vm.sh --quiet --out "$out" "$@" \
		-- bash tests/guest/run.sh "$RESULTS" "$section"
	guest_verdict "$suite" $? "$out" "$done_file"
}

if stage guest; then
	echo "== guest (Debian $(tests/guest/vm.sh --print-kver) under qemu)"
	guest_run guest guest-console "$TOP/build/guest/out" --timeout 2700
fi
if stage bigmem; then
	echo "== guest with ${BIGMEM_MB} MB (the bigmem suites)"
	guest_run bigmem guest-bigmem-console "$TOP/build/guest/out-bigmem" \
		--mem "$BIGMEM_MB" --timeout 900
fi

for f in "$RESULTS"/guest-*.tap; do
	echo "== $(basename "$f" .tap)"
	grep -E '^(not )?ok |^Bail out!' "$f" | sed 's/^/   /'
done

echo
tests/lib/summary.sh "$RESULTS"
