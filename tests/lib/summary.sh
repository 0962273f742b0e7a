#!/usr/bin/env bash
# Summarise the TAP output of all test suites of a run.
#
# usage: tests/lib/summary.sh RESULTS_DIR
#
# RESULTS_DIR holds one file per suite with that suite's output (any name;
# the file name, minus a .log/.tap suffix, is the suite name).  An optional
# companion file SUITE_FILE.rc holds the suite's exit status.
#
# Suites print TAP: kselftest-harness binaries and shell scenario tests
# (tests/lib/tap.sh) alike.  Only top-level result lines count (subtests are
# indented):
#   ok N - name                pass (also "# XFAIL", and "not ok ... # TODO")
#   ok N - name # SKIP why     skip
#   not ok N - name            fail
# A suite fails as a whole (one extra failure) when it printed no result
# line at all, printed fewer results than its "1..N" plan, said "Bail out!",
# or has a non-zero .rc while reporting no failure of its own: a crashed
# suite must not pass silently.
#
# Prints one line per suite, the failing tests, then exactly
#   N passed, N failed, N skipped
# and exits 1 if anything failed, 2 on usage errors.
set -euo pipefail

if (($# != 1)) || [[ ! -d "$1" ]]; then
	echo "usage: $0 RESULTS_DIR" >&2
	exit 2
fi
dir=$1

total_pass=0
total_fail=0
total_skip=0
nsuites=0

shopt -s nullglob
for f in "$dir"/*; do
	[[ -f "$f" && "$f" != *.rc ]] || continue
	nsuites=$((nsuites + 1))
	suite=$(basename "$f")
	suite=${suite%.log}
	suite=${suite%.tap}

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
		/^1\.\.[0-9]+/ { plan = substr($1, 4) + 0; has_plan = 1; next }
		/^Bail out!/ { bail = $0; next }
		/^ok( |$)/ {
			n++
			d = directive($0)
			if (d == "SKIP") skip++; else pass++
			next
		}
		/^not ok( |$)/ {
			n++
			d = directive($0)
			if (d == "TODO") pass++
			else { fail++; problems[++np] = $0 }
			next
		}
		END {
			if (n == 0) { fail++; problems[++np] = "no TAP result line (crashed or did not run)" }
			else if (has_plan && n < plan) { fail++; problems[++np] = sprintf("only %d of %d planned results", n, plan) }
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

if ((nsuites == 0)); then
	echo "no suite results in $dir" >&2
	total_fail=1
fi

echo "$total_pass passed, $total_fail failed, $total_skip skipped"
((total_fail == 0))
