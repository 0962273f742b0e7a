# shellcheck shell=bash
# Reading tests/manifest (see its header). Source it.
#
#   manifest_entries SECTION   the lines of SECTION, without the section
#                              word: "NAME [ARGS...]", in file order
#   manifest_result SECTION NAME  the result file's suite name
#   manifest_suites            every suite name a run must produce

MANIFEST=${MANIFEST:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/manifest}

manifest_entries() {
	awk -v s="$1" '!/^[ \t]*(#|$)/ && $1 == s { sub(/^[ \t]*[^ \t]+[ \t]+/, ""); print }' \
		"$MANIFEST"
}

manifest_result() {
	local base=${2%.sh}
	case $1 in
	unit) echo "unit-$base" ;;
	host) echo "$base" ;;
	guest) echo "guest-$base" ;;
	bigmem) echo "guest-bigmem-$base" ;;
	*) return 1 ;;
	esac
}

manifest_suites() {
	local section name
	# shellcheck disable=SC2034 # the arguments are not part of the name
	while read -r section name _; do
		[[ -z $section || $section == \#* ]] && continue
		manifest_result "$section" "$name" ||
			{ echo "$MANIFEST: unknown section '$section'" >&2 && return 1; }
	done <"$MANIFEST"
}
