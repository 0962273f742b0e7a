#!/usr/bin/env bash
# Table lines: every valid form loads and its TABLE status recreates it;
# every malformed one fails with its own error and leaves nothing behind.
set -uo pipefail
source "$(dirname "$0")/../lib/tap.sh"
source "$(dirname "$0")/lib.sh"

ram_disks 3 64
S=$(blockdev --getsz /dev/ram0)
D=/dev/ram0
M=/dev/ram1
LEN=$S		# the length expect_err's tables give
meta_create $M g1 $D

# expect_ok NAME OPTS EXPECTED_TABLE_TAIL
expect_ok() {
	local name=$1 opts=$2 want=$3 got
	if ! dm_create r0 "0 $S repl $D $M g1 primary $opts" 2>/dev/null; then
		tap_fail "valid: $name" "refused: $(last_table_error)"
		return
	fi
	got=$(dmsetup table r0 | cut -d' ' -f4-)
	if [[ ! -c /dev/dm-repl/g1 ]]; then
		tap_fail "valid: $name" "no /dev/dm-repl/g1"
	elif [[ "$got" != "$want" ]]; then
		tap_fail "valid: $name" "table is '$got', want '$want'"
	else
		tap_ok "valid: $name"
	fi
	dmsetup remove r0
}

# expect_err NAME TABLE_ARGS ERROR [LIVE]: the table fails with exactly ERROR
# and leaves nothing behind: no device, the live objects still LIVE (default
# "0 0 0", and then no group node either).
expect_err() {
	local name=$1 args=$2 want=$3 live=${4:-0 0 0} got
	dmesg -C
	if dm_create bad "0 $LEN repl $args" 2>/dev/null; then
		tap_fail "rejects $name" "table was accepted"
		dmsetup remove bad
		return
	fi
	got=$(last_table_error)
	if [[ "$got" != "$want" ]]; then
		tap_fail "rejects $name" "error '$got', want '$want'"
	elif dmsetup info bad >/dev/null 2>&1 || [[ "$(live_objects)" != "$live" ]] ||
	     { [[ "$live" == "0 0 0" ]] && [[ -e /dev/dm-repl/g1 ]]; }; then
		tap_fail "rejects $name" "left something behind: $(live_objects)"
	else
		tap_ok "rejects $name: $want"
	fi
}

tap_plan 49
DEF="ring_mb 64 region_kb 64 overflow bitmap block_ms 100"
# dm shows devices as major:minor in tables.
majmin() { echo $((0x$(stat -c %t "$1"))):$((0x$(stat -c %T "$1"))); }
DD=$(majmin $D)
MM=$(majmin $M)
expect_ok "no options" "" "$DD $MM g1 primary 8 $DEF"
expect_ok "ring_mb" "2 ring_mb 4" "$DD $MM g1 primary 8 ring_mb 4 region_kb 64 overflow bitmap block_ms 100"
expect_ok "all options" "8 ring_mb 8 region_kb 64 overflow block block_ms 50" \
	"$DD $MM g1 primary 8 ring_mb 8 region_kb 64 overflow block block_ms 50"
expect_ok "options in any order, any case" "4 OVERFLOW BITMAP Region_KB 64" \
	"$DD $MM g1 primary 8 ring_mb 64 region_kb 64 overflow bitmap block_ms 100"
expect_ok "zero optional arguments" "0" "$DD $MM g1 primary 8 $DEF"
if dm_create r0 "0 $S repl $DD $M g1 primary" 2>/dev/null; then
	tap_ok "valid: data device as major:minor"
	dmsetup remove r0
else
	tap_fail "valid: data device as major:minor" "$(last_table_error)"
fi

expect_err "too few arguments" "$D $M g1" "Need <data_dev> <meta_dev> <group> <role>"
expect_err "an unknown role" "$D $M g1 tertiary" "Role must be primary or secondary"
expect_err "a bad group name" "$D $M bad/name primary" \
	"Group name must be 1-31 of [A-Za-z0-9_.+-], not starting with a dot"
expect_err "a hidden group name" "$D $M .g1 primary" \
	"Group name must be 1-31 of [A-Za-z0-9_.+-], not starting with a dot"
expect_err "a long group name" "$D $M $(printf 'g%.0s' {1..32}) primary" \
	"Group name must be 1-31 of [A-Za-z0-9_.+-], not starting with a dot"
expect_err "a missing data device" "/dev/nonexistent $M g1 primary" "Data device lookup failed"
expect_err "a missing metadata device" "$D /dev/nonexistent g1 primary" "Metadata device lookup failed"
expect_err "the same device twice" "$D $D g1 primary" "Data and metadata devices must differ"
expect_err "an extra argument" "$D $M g1 primary extra" "Invalid number of optional arguments"
expect_err "too many optional arguments" "$D $M g1 primary 10 a b c d e f g h i j" \
	"Invalid number of optional arguments"
expect_err "a count larger than the arguments" "$D $M g1 primary 2 ring_mb" "Invalid number of optional arguments"
expect_err "arguments beyond the count" "$D $M g1 primary 2 ring_mb 4 overflow" \
	"Optional arguments do not match their count"
expect_err "an unknown option" "$D $M g1 primary 2 colour 4" "Unrecognised optional argument"
expect_err "an option given twice" "$D $M g1 primary 4 ring_mb 4 ring_mb 4" "Optional argument given twice"
expect_err "ring_mb 0" "$D $M g1 primary 2 ring_mb 0" "ring_mb must be a power of two from 2 to 16384"
expect_err "ring_mb not a power of two" "$D $M g1 primary 2 ring_mb 6" \
	"ring_mb must be a power of two from 2 to 16384"
expect_err "ring_mb not a number" "$D $M g1 primary 2 ring_mb 4x" \
	"ring_mb must be a power of two from 2 to 16384"
expect_err "a huge ring_mb" "$D $M g1 primary 2 ring_mb 1048576" \
	"ring_mb must be a power of two from 2 to 16384"
expect_err "ring_mb beyond half the memory" "$D $M g1 primary 2 ring_mb 16384" \
	"ring_mb exceeds half of the system's memory"
expect_err "region_kb not a power of two" "$D $M g1 primary 2 region_kb 96" \
	"region_kb must be a power of two from 4 to 1048576"
expect_err "region_kb too small" "$D $M g1 primary 2 region_kb 2" \
	"region_kb must be a power of two from 4 to 1048576"
expect_err "an unknown overflow policy" "$D $M g1 primary 2 overflow drop" "overflow must be bitmap or block"
expect_err "block_ms 0" "$D $M g1 primary 2 block_ms 0" "block_ms must be from 1 to 60000"
expect_err "source on a primary" "$D $M g1 primary 2 source g0" "source applies to role secondary only"

# The metadata must be intact, known and made for this volume.
expect_err "metadata that was never created" "$D /dev/ram2 g1 primary" \
	"Metadata device has no dm-repl superblock (run repltool meta create)"
expect_err "metadata of another group" "$D $M g2 primary" "Metadata belongs to another group"
expect_err "a region size other than the metadata's" "$D $M g1 primary 2 region_kb 128" \
	"region_kb differs from the metadata's"
LEN=$((S / 2))
expect_err "a table shorter than its metadata's data size" "$D $M g1 primary" \
	"Data device is smaller than its metadata says: shrinking a replicated volume is not supported"
LEN=$S
# poke OFFSET BYTES: overwrite bytes of the superblock on /dev/ram2.
poke() { printf "$2" | dd of=/dev/ram2 bs=1 seek="$1" conv=notrunc status=none; }
meta_create /dev/ram2 g1 $D
poke 100 '\xff'
expect_err "a superblock with a flipped byte" "$D /dev/ram2 g1 primary" \
	"Metadata superblock checksum mismatch (repltool meta check)"
meta_create /dev/ram2 g1 $D
poke 4 '\x02'
expect_err "a future metadata version" "$D /dev/ram2 g1 primary" \
	"Metadata format version is newer than this module's"
"$REPLTOOL" meta create --force --role secondary --group g1 --data-dev $D /dev/ram2 >/dev/null
expect_err "metadata of a secondary" "$D /dev/ram2 g1 primary" "Metadata role is not primary"
expect_err "overflow on a secondary" "$D /dev/ram2 g1 secondary 2 overflow block" \
	"overflow and block_ms apply to role primary only"
expect_err "a secondary table on primary metadata" "$D $M g1 secondary" "Metadata role is not secondary"
# A metadata device cut short: only its superblock is left.
dd if=$M of=/tmp/sb-only.img bs=4k count=1 status=none
modprobe loop
SMALL=$(losetup -f --show /tmp/sb-only.img)
expect_err "a metadata device smaller than its layout" "$D $SMALL g1 primary" \
	"Metadata device is smaller than its layout"
losetup -d "$SMALL"

# Rules that involve another volume of the group.
dm_create r0 "0 $S repl $D $M g1 primary 2 ring_mb 4"
expect_err "a second ring size for one group" "/dev/ram2 $M g1 primary 2 ring_mb 8" \
	"ring_mb differs from the group's ring" "1 1 0"
meta_create /dev/ram2 g1 $D
expect_err "a data device used twice in a group" "$D /dev/ram2 g1 primary" \
	"Data device is used by another volume of the group" "1 1 0"
expect_err "metadata used twice in a group" "/dev/ram2 $M g1 primary" \
	"Metadata is used by another volume of the group" "1 1 0"
# The volume index is the superblock's: two volumes of a group need two.
D2=$(loop_disk 64)
M2=$(loop_disk 4)
meta_create $M2 g1 $D2
expect_err "a volume index used twice in a group" "$D2 $M2 g1 primary 2 ring_mb 4" \
	"Volume index is used by another volume of the group" "1 1 0"
meta_create $M2 g1 $D2 1
if dm_create r1 "0 $S repl $D2 $M2 g1 primary 2 ring_mb 4" 2>/dev/null; then
	tap_check "a second volume with its own index joins the group" \
		test "$(live_objects)" = "1 2 0"
	dmsetup remove r1
else
	tap_fail "a second volume with its own index joins the group" "$(last_table_error)"
fi
loop_disks_free
# A reload keeps the volume; a smaller one is refused (resize.sh grows one).
dmsetup reload r0 --table "0 $S repl $D $M g1 primary 2 ring_mb 4" && dmsetup resume r0
tap_check "a reload keeps the group and volume" test "$(live_objects)" = "1 1 0"
# expect_reload_err NAME TABLE ERROR: reloading r0 with TABLE fails with ERROR.
expect_reload_err() {
	dmesg -C
	if dmsetup reload r0 --table "$2" 2>/dev/null; then
		tap_fail "rejects $1" "accepted"
		dmsetup clear r0
	else
		tap_check "rejects $1" test "$(last_table_error)" = "$3"
	fi
}
expect_reload_err "a smaller size in a reload" "0 $((S / 2)) repl $D $M g1 primary" \
	"Data device is smaller than its metadata says: shrinking a replicated volume is not supported"
expect_reload_err "a data device change in a reload" "0 $S repl /dev/ram2 $M g1 primary 2 ring_mb 4" \
	"Data device cannot change in a reload"
dmsetup remove r0
tap_check "nothing is left after the last volume" test "$(live_objects)" = "0 0 0" -a ! -e /dev/dm-repl/g1
rmmod brd
tap_done
