#!/usr/bin/env bash
# The kernel code follows the kernel's coding style: checkpatch.pl, taken
# from Debian's linux-source-6.1 tarball (kept in build/, never committed),
# finds nothing in kernel/ and uapi/.
set -uo pipefail
source "$(dirname "$0")/lib/tap.sh"
cd "$(dirname "$0")/.."

dest=build/checkpatch
top=linux-source-6.1
files=(scripts/checkpatch.pl scripts/spelling.txt scripts/const_structs.checkpatch)
if [[ ! -f $dest/$top/scripts/checkpatch.pl ]]; then
	mkdir -p "$dest"
	tar -xJf /usr/src/linux-source-6.1.tar.xz -C "$dest" "${files[@]/#/$top/}"
fi

tap_plan 1
tap_check "checkpatch.pl finds nothing in kernel/ and uapi/" \
	perl "$dest/$top/scripts/checkpatch.pl" --no-tree --terse --quiet \
	--file kernel/*.c kernel/*.h uapi/linux/dm-repl.h
tap_done
