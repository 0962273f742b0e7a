# shellcheck shell=bash
# Minimal TAP producer for shell scenario tests.  Source it:
#
#   source "$(dirname "$0")/../lib/tap.sh"
#   tap_plan 3
#   tap_check "device exists" test -b /dev/mapper/x
#   tap_ok "something that was checked by hand"
#   tap_fail "name" "why it failed"
#   tap_skip "name" "why it was skipped"
#   tap_setup "what" CMD [ARGS...]   # a set-up step: not a test
#   tap_strict          # any failing step outside a test ends the suite
#   tap_done            # exits 1 if any test failed, else 0
#
# Output is TAP 13 (ok N - name / not ok N - name / ok N - name # SKIP why),
# which tests/lib/summary.sh counts.  Diagnostics go to stdout as "# ..."
# lines so that they stay next to the result they explain.

TAP_N=0
TAP_FAILED=0
TAP_PLANNED=""

tap_plan() {
	TAP_PLANNED=$1
	echo "TAP version 13"
	echo "1..$1"
}

# tap_diag TEXT...: print TEXT (possibly multi-line) as TAP comments.
tap_diag() {
	printf '%s\n' "$*" | sed 's/^/# /'
}

tap_ok() {
	TAP_N=$((TAP_N + 1))
	echo "ok $TAP_N - $1"
}

tap_fail() {
	TAP_N=$((TAP_N + 1))
	TAP_FAILED=$((TAP_FAILED + 1))
	echo "not ok $TAP_N - $1"
	if [[ -n "${2:-}" ]]; then
		tap_diag "$2"
	fi
}

tap_skip() {
	TAP_N=$((TAP_N + 1))
	echo "ok $TAP_N - $1 # SKIP ${2:-}"
}

# tap_check NAME CMD [ARGS...]: ok when CMD exits 0; on failure its output
# (stdout+stderr) is shown as diagnostics.
tap_check() {
	local name=$1 output rc=0
	shift
	output=$("$@" 2>&1) || rc=$?
	if ((rc == 0)); then
		tap_ok "$name"
	else
		tap_fail "$name" "command failed (exit $rc): $*${output:+
$output}"
	fi
}

# tap_setup WHAT CMD [ARGS...]: a set-up or tear-down step, not a test: not
# counted when CMD succeeds; when it fails, "Bail out!" with its output, and
# the suite ends with status 1 (tests/lib/summary.sh counts it as a failure).
tap_setup() {
	local what=$1 output rc=0
	shift
	output=$("$@" 2>&1) || rc=$?
	((rc == 0)) && return 0
	tap_bail "$what (exit $rc): $*${output:+
$output}"
}

# tap_bail WHY: abort the suite: "Bail out! WHY" (first line; the rest as
# diagnostics), exit status 1.
tap_bail() {
	echo "Bail out! ${1%%$'\n'*}"
	[[ "$1" == *$'\n'* ]] && tap_diag "${1#*$'\n'}"
	exit 1
}

# tap_strict: from here on, a command that fails outside a test and outside
# a condition (a set-up or workload step: a dd, a dmsetup create, a fio run)
# ends the suite with "Bail out!" naming it: a failed step is a failure,
# never a diagnostic. (An ERR trap: commands in tap_check, if, while, && and
# || lists, and inside functions are not caught.)
tap_strict() {
	# shellcheck disable=SC2154 # set by the trap
	trap 'tap_bail "a step failed (exit $?, line $LINENO): $BASH_COMMAND"' ERR
}

# tap_done: close the run; exit status 1 if anything failed or the plan was
# not met.
tap_done() {
	if [[ -z "$TAP_PLANNED" ]]; then
		echo "1..$TAP_N"
	elif ((TAP_N != TAP_PLANNED)); then
		tap_diag "planned $TAP_PLANNED tests but ran $TAP_N"
		exit 1
	fi
	((TAP_FAILED == 0)) || exit 1
	exit 0
}
