#!/usr/bin/env bash
# Summarise the TAP output of all test suites of a run.
#
# usage: tests/lib/summary.sh [-m MANIFEST] RESULTS_DIR
#
# RESULTS_DIR holds one file per suite with that suite's output (the file
# name, minus a .log/.tap suffix, is the suite name).  An optional companion
# file SUITE_FILE.rc holds the suite's exit status (*.rc and *.done files are
# not suites).
#
# MANIFEST (default tests/manifest, -m none for no manifest) names every
# suite the run must produce (tests/lib/manifest.sh): each one that left no
# file is one failure, and so is each file that the manifest does not name
# (a stale program or an unknown suite must not stand in); such a file's
# results are not counted.
#
# Suites print TAP: kselftest-harness binaries and shell scenario tests
# (tests/lib/tap.sh) alike.  Only top-level result lines count (subtests are
# indented):
#   ok N - name                pass (also "# XFAIL", and "not ok ... # TODO")
#   ok N - name # SKIP why     skip
#   not ok N - name            fail
# A suite fails as a whole (one extra failure) when it printed no result
# line at all, printed another number of results than a "1..N" plan says
# (every plan of the file is checked: a plan opens a run of results that
# ends at the next plan or the end, or closes the results before it when it
# comes after them), said "Bail out!",
# or has a non-zero .rc while reporting no failure of its own: a crashed
# suite must not pass silently.
#
# Prints one line per suite, the failing tests, then exactly
#   N passed, N failed, N skipped
# and exits 1 if anything failed, 2 on usage errors.
set -euo pipefail

manifest=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/manifest
if [[ "${1:-}" == -m ]]; then
	manifest=${2:-}
	shift 2 || true
fi
if (($# != 1)) || [[ ! -d "$1" ]] || [[ -z "$manifest" ]]; then
	echo "usage: $0 [-m MANIFEST|none] RESULTS_DIR" >&2
	exit 2
fi
dir=$1

declare -A expected=() seen=()
if [[ "$manifest" != none ]]; then
	[[ -r "$manifest" ]] || { echo "$0: cannot read manifest $manifest" >&2 && exit 2; }
	# shellcheck source=tests/lib/manifest.sh
	source "$(dirname "${BASH_SOURCE[0]}")/manifest.sh"
	MANIFEST=$manifest
	suites=$(manifest_suites) || exit 2
	for s in $suites; do
		expected[$s]=1
	done
fi

total_pass=0
total_fail=0
total_skip=0
nsuites=0

shopt -s nullglob
for f in "$dir"/*; do
	[[ -f "$f" && "$f" != *.rc && "$f" != *.done ]] || continue
	nsuites=$((nsuites + 1))
	suite=$(basename "$f")
	suite=${suite%.log}
	suite=${suite%.tap}
	seen[$suite]=1
	if [[ "$manifest" != none && -z "${expected[$suite]:-}" ]]; then
		printf '%-4s %-40s %4d passed, %d failed, %d skipped\n' FAIL "$suite" 0 1 0
		echo "       not in $manifest: a stale program or an unknown suite; its results do not count"
		total_fail=$((total_fail + 1))
		continue
	fi

	rc=""
	[[ -r "$f.rc" ]] && rc=$(tr -dc '0-9' <"$f.rc")

	# One awk pass per suite: prints "pass fail skip" on the first line, then
	# a line per problem.
	result=$(tr -d '\r' <"$f" | awk -v rc="$rc" '
		function directive(line) {
			# The text after an unescaped " # " is a TAP directive.
			if (match(line, / # *(SKIP|skip|Skip|TODO|todo|XFAIL|xfail)/))
				return toupper(substr(line, RSTART + RLENGTH - 4, 4))
			return ""
		}
		function check_plan(p, got) {
			if (got != p) { fail++; problems[++np] = sprintf("%d results where a plan said 1..%d", got, p) }
		}
		/^1\.\.[0-9]+/ {
			p = substr($1, 4) + 0
			if (open) check_plan(plan, seg)		# the plan before this one
			else if (seg > 0) { check_plan(p, seg); seg = 0; next }	# a trailing plan
			plan = p; open = 1; seg = 0
			next
		}
		/^Bail out!/ { bail = $0; next }
		/^ok( |$)/ {
			n++; seg++
			d = directive($0)
			if (d == "SKIP") skip++; else pass++
			next
		}
		/^not ok( |$)/ {
			n++; seg++
			d = directive($0)
			if (d == "TODO") pass++
			else { fail++; problems[++np] = $0 }
			next
		}
		END {
			if (n == 0) { fail++; problems[++np] = "no TAP result line (crashed or did not run)" }
			else if (open) check_plan(plan, seg)
			if (bail != "") { fail++; problems[++np] = bail }
			if (rc != "" && rc != 0 && fail == 0) { fail++; problems[++np] = "exit status " rc }
			printf "%d %d %d\n", pass, fail, skip
			for (i = 1; i <= np; i++) print problems[i]
		}')

	read -r pass fail skip <<<"$(head -n 1 <<<"$result")"
	verdict=PASS
	((fail == 0)) || verdict=FAIL
	printf '%-4s %-40s %4d passed, %d failed, %d skipped\n' "$verdict" "$suite" "$pass" "$fail" "$skip"
	tail -n +2 <<<"$result" | sed 's/^/       /'

	total_pass=$((total_pass + pass))
	total_fail=$((total_fail + fail))
	total_skip=$((total_skip + skip))
done

for s in ${suites:-}; do
	[[ -n "${seen[$s]:-}" ]] && continue
	printf '%-4s %-40s %4d passed, %d failed, %d skipped\n' FAIL "$s" 0 1 0
	echo "       expected by $manifest, but it left no results (did not build or did not run)"
	total_fail=$((total_fail + 1))
done

if ((nsuites == 0)); then
	echo "no suite results in $dir" >&2
	total_fail=1
fi

echo "$total_pass passed, $total_fail failed, $total_skip skipped"
((total_fail == 0))
