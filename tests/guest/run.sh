#!/usr/bin/env bash
# Runs in the guest (tests/run-all.sh starts it through vm.sh): the guest
# suites of one SECTION of tests/manifest ("guest" by default, or "bigmem"),
# in the manifest's order, each one's TAP output into RESULTS/<suite>.tap and
# its exit status into RESULTS/<suite>.tap.rc (the suite names of
# tests/manifest).
#
# usage: run.sh RESULTS_DIR [SECTION]
#
# Last of all it writes RESULTS/<prefix>run.done ("guest-run.done" or
# "guest-bigmem-run.done") with its own exit status: 0 when every suite
# exited 0, else 1. tests/run-all.sh fails the guest run without it.
set -uo pipefail
RESULTS=${1:?usage: run.sh RESULTS_DIR [SECTION]}
SECTION=${2:-guest}
cd "$(dirname "$0")" || exit 2
# shellcheck source=tests/lib/manifest.sh
source ../lib/manifest.sh

case $SECTION in
guest) done_file=$RESULTS/guest-run.done ;;
bigmem) done_file=$RESULTS/guest-bigmem-run.done ;;
*) echo "run.sh: unknown section $SECTION" >&2 && exit 2 ;;
esac
rm -f "$done_file"

mapfile -t entries < <(manifest_entries "$SECTION")
if ((${#entries[@]} == 0)); then
	echo "run.sh: no $SECTION suite in $MANIFEST" >&2
	exit 1
fi

status=0
for entry in "${entries[@]}"; do
	read -r -a argv <<<"$entry"
	t=${argv[0]}
	name=$(manifest_result "$SECTION" "$t")
	echo "guest: running ${argv[*]}"
	if [[ $t == *.sh ]]; then
		timeout 900 bash "${argv[@]}" >"$RESULTS/$name.tap" 2>&1
	elif [[ -x $t ]]; then
		timeout 900 "./$t" "${argv[@]:1}" >"$RESULTS/$name.tap" 2>&1
	else
		echo "Bail out! tests/guest/$t is not built (make -C tests/guest)" >"$RESULTS/$name.tap"
		false
	fi
	rc=$?
	echo $rc >"$RESULTS/$name.tap.rc"
	((rc == 0)) || status=1
	# Whatever a suite left behind would skew the next one.
	dmsetup remove_all --force >/dev/null 2>&1
done

# The completion marker, written last: the host trusts no guest run without it.
echo "$status" >"$done_file.tmp" && mv "$done_file.tmp" "$done_file"
exit "$status"
