#!/usr/bin/env bash
# Online resize: a replicated volume grows (repltool resize), never shrinks.
#
# 1. The kernel's rules, on a standalone primary: a reload with a larger
#    length is taken, and the resume grows the bitmap and the superblock,
#    the new regions dirty; a smaller length is refused; a metadata device
#    too small for the grown bitmap is refused, the old table going on; a
#    grow whose metadata cannot be written fails the resume, the volume
#    keeping its size, and the next resume grows it.
# 2. Two sites in this guest (as rejoin.sh), one volume of 16 MiB: alpha
#    (vm1) the primary, beta (vm1b) its replica, writes going on. beta's
#    data device grows to 24 MiB and `repltool resize` grows its volume,
#    then alpha's, under load, its new space holding random bytes. Writes
#    into the new space, then both are equal byte for byte (sha256 of the
#    whole devices): the resync sent the new space. A data device
#    smaller than its metadata says is refused by resize (exit 1).
set -uo pipefail
source "$(dirname "$0")/../lib/tap.sh"
source "$(dirname "$0")/lib.sh"

MB=16
GROW_MB=24
W=$(mktemp -d /tmp/resize.XXXXXX)
A_IP=10.77.5.1			# each site in its namespace (sites_network)
B_IP=10.77.5.2
SITES_VOLUMES=0
declare -A DATA META		# site:volume -> data, metadata device

trap 'stop_load; sites_netns_cleanup' EXIT
sites_network || tap_bail "two network namespaces joined by veth"

# grow DEV MB: its loop file grows to MB MiB, and the device with it.
grow() {
	truncate -s "$2M" "$(losetup -n -O BACK-FILE "$1")" && losetup -c "$1"
}

# The load: 4 KiB writes at random places of the first MB MiB of vm1-0.
start_load() {
	(
		while :; do
			dd if=/dev/urandom of=/dev/mapper/vm1-0 bs=4k count=1 oflag=direct \
				status=none seek=$((RANDOM % (MB * 256))) || exit 1
		done
	) &
	LOAD=$!
}

stop_load() {
	[[ -n ${LOAD:-} ]] && kill "$LOAD" 2>/dev/null && wait "$LOAD" 2>/dev/null
	LOAD=
}

# refused TEXT CMD...: CMD fails and the table's error in the kernel log has TEXT.
refused() {
	local text=$1
	dmesg -C
	shift
	! "$@" 2>/dev/null && last_table_error | grep -qF "$text"
}

# sb_field META FIELD: a field of META's superblock.
sb_field() {
	"$REPLTOOL" meta show "$1" | awk -v k="$2" '$1 == k { print $2; exit }'
}

tap_strict

# ---- 1. the kernel's rules --------------------------------------------------------
data=$(loop_disk 8) && meta=$(loop_disk 1) || tap_bail "standalone disks"
meta_create "$meta" solo "$data" && grow "$data" 12 ||
	tap_bail "standalone metadata, then the data device grows"
tap_check "a table larger than its metadata is refused at first load" \
	refused "made for a smaller data device" \
	dm_create solo "0 $((12 * 2048)) repl $data $meta solo primary"
dm_create solo "0 $((8 * 2048)) repl $data $meta solo primary" || tap_bail "standalone table"
tap_check "a volume runs at its metadata's size on a larger device, clean" \
	test "$(status_of solo dirty_regions)" = 0
tap_check "a reload with a smaller length is refused" \
	refused "shrinking a replicated volume is not supported" \
	dmsetup reload solo --table "0 $((4 * 2048)) repl $data $meta solo primary"
tap_check "a reload with a larger length is taken" \
	dmsetup reload solo --table "0 $((12 * 2048)) repl $data $meta solo primary"
tap_check "the superblock keeps its size until the resume" \
	test "$(sb_field "$meta" data_sectors)" = $((8 * 2048))
tap_check "suspend and resume grow the volume" bash -c \
	"dmsetup suspend solo && dmsetup resume solo"
tap_check "the device has its new size" test "$(blockdev --getsz /dev/mapper/solo)" = $((12 * 2048))
tap_check "the superblock says the new size" test "$(sb_field "$meta" data_sectors)" = $((12 * 2048))
# 64 KiB regions: 8 MiB was 128 of them, the 4 MiB more are 64 more.
tap_check "a primary's new regions are dirty (64), and status says why" \
	test "$(status_of solo dirty_regions)/$(status_of solo behind_reasons)" = 64/grown
tap_check "the resume said so in the kernel log" bash -c \
	"dmesg | grep -q 'solo: volume 0 grew from 16384 to 24576 sectors'"
dmsetup remove solo
tap_check "metadata check finds the grown metadata intact" "$REPLTOOL" meta check "$meta"
tap_check "the grown volume loads again, its new regions still dirty" bash -c \
	"$(declare -f dm_create status_of); REPLTOOL=$REPLTOOL
	 dm_create solo '0 $((12 * 2048)) repl $data $meta solo primary' &&
	 test \"\$(status_of solo dirty_regions)\" = 64"
dmsetup remove solo

# A grow whose metadata cannot be written: the metadata device, a dm-linear,
# turns into dm-error between the reload and the resume.
msz=$(blockdev --getsz "$meta")
dm_create solometa "0 $msz linear $meta 0" && meta_create /dev/mapper/solometa solo "$data" &&
	dm_create solo "0 $((12 * 2048)) repl $data /dev/mapper/solometa solo primary" &&
	grow "$data" 16 || tap_bail "a volume over a dm-linear metadata device"
dmsetup reload solo --table "0 $((16 * 2048)) repl $data /dev/mapper/solometa solo primary" &&
	dmsetup suspend solo && dmsetup reload solometa --table "0 $msz error" &&
	dmsetup resume solometa || tap_bail "the grown table, the metadata device failing"
tap_check "a grow whose metadata cannot be written fails the resume" \
	fails_with "cannot write its grown metadata" dmsetup resume solo
tap_check "the volume kept its size and its clean bitmap" bash -c \
	"$(declare -f status_of); REPLTOOL=$REPLTOOL
	 test \"\$(status_of solo sectors)\" = $((12 * 2048)) &&
	 test \"\$(status_of solo dirty_regions)\" = 0"
dmsetup reload solometa --table "0 $msz linear $meta 0" && dmsetup resume solometa ||
	tap_bail "the metadata device back"
tap_check "the next resume grows it" dmsetup resume solo
tap_check "to its new size, the new regions dirty (64)" bash -c \
	"$(declare -f status_of); REPLTOOL=$REPLTOOL
	 test \"\$(status_of solo sectors)\" = $((16 * 2048)) &&
	 test \"\$(status_of solo dirty_regions)\" = 64"
dmsetup remove solo && dmsetup remove solometa || tap_bail "remove the volume"
tap_check "its superblock says the new size" test "$(sb_field "$meta" data_sectors)" = $((16 * 2048))

# A metadata device of exactly one bitmap block: 4 KiB regions, 32256 of them.
small=$(mktemp /tmp/loopdisk.XXXXXX) && truncate -s $((4096 * 18)) "$small" &&
	meta=$(losetup -f --show "$small") || tap_bail "the small metadata device"
grow "$data" 126 && "$REPLTOOL" meta create --force --group solo --region-kb 4 \
	--data-dev "$data" "$meta" >/dev/null || tap_bail "metadata of one bitmap block"
dm_create solo "0 $((126 * 2048)) repl $data $meta solo primary" || tap_bail "its table"
grow "$data" 127 || tap_bail "grow past one bitmap block"
tap_check "a metadata device too small for the grown bitmap is refused" \
	fails_with "needs a metadata device of 152 sectors, it has 144" \
	dmsetup reload solo --table "0 $((127 * 2048)) repl $data $meta solo primary"
tap_check "the old table goes on" bash -c \
	"dd if=/dev/zero of=/dev/mapper/solo bs=4k count=1 oflag=direct status=none &&
	 test \$(blockdev --getsz /dev/mapper/solo) = $((126 * 2048))"
dmsetup remove solo
tap_check "no object is left behind" test "$(live_objects)" = "0 0 0"

# ---- 2. two sites, under load ---------------------------------------------------------
for s in alpha beta; do
	DATA[$s:0]=$(loop_disk $MB) && META[$s:0]=$(loop_disk 4) || tap_bail "the disks of $s"
done
# beta's metadata device through a dm-linear, to make it refuse writes later.
bmeta=${META[beta:0]} bmsz=$(blockdev --getsz "${META[beta:0]}")
dm_create bmeta "0 $bmsz linear $bmeta 0" && META[beta:0]=/dev/mapper/bmeta ||
	tap_bail "beta's metadata device"
openssl rand -hex 32 >"$W/psk" && chmod 600 "$W/psk" && sites_conf "$W/conf" "$W/psk" ||
	tap_bail "the resource file"
tap_setup "create-md and up on alpha (primary) and beta (secondary)" bash -c \
	"$(declare -f tool); REPLTOOL=$REPLTOOL W=$W; tool alpha create-md --role primary &&
	 tool beta create-md --role secondary && tool alpha up && tool beta up"
out=$("$REPLTOOL" resize 2>&1) && rc=0 || rc=$?
tap_check "resize without a group is a usage error (exit $rc)" test $rc -eq 2
out=$(tool alpha resize 2>&1) && rc=0 || rc=$?
tap_check "nothing grew: resize says so and exits 0 ($out)" \
	test $rc -eq 0 -a -n "$(grep 'nothing to do' <<<"$out")"
site_start beta
site_start alpha
start_load
out=$(pair_synced vm1 vm1b) && tap_ok "replicating under load" || tap_fail "the first sync" "$out"

grow "${DATA[beta:0]}" $GROW_MB || tap_bail "grow beta's data device"
out=$(tool beta resize 2>&1) && tap_ok "beta (the replica) grows first: $out" ||
	tap_fail "resize on beta" "$out"
tap_check "beta's device has its new size" \
	test "$(blockdev --getsz /dev/mapper/vm1b-0)" = $((GROW_MB * 2048))
# alpha's new extents hold old bytes, beta's zeros: the resync must copy them.
f=$(losetup -n -O BACK-FILE "${DATA[alpha:0]}")
dd if=/dev/urandom of="$f" bs=1M seek=$MB count=$((GROW_MB - MB)) conv=notrunc \
	status=none && losetup -c "${DATA[alpha:0]}" || tap_bail "grow alpha's data device"
resynced_before=$(status_of vm1 resynced_regions)
out=$(tool alpha resize 2>&1) && tap_ok "alpha (the primary) grows under load: $out" ||
	tap_fail "resize on alpha" "$out"
tap_check "alpha's device has its new size" \
	test "$(blockdev --getsz /dev/mapper/vm1-0)" = $((GROW_MB * 2048))
tap_check "the load kept writing" kill -0 "$LOAD"
dd if=/dev/urandom of=/dev/mapper/vm1-0 bs=64k count=16 seek=$((MB * 16 + 8)) \
	oflag=direct status=none || tap_bail "writes into the new space"
sleep 2
stop_load
out=$(pair_synced vm1 vm1b) && tap_ok "beta consistent and caught up after the resize" ||
	tap_fail "the sync after the resize" "$out"
echo 1 >/proc/sys/vm/drop_caches
a=$(sha256sum <"${DATA[alpha:0]}") && b=$(sha256sum <"${DATA[beta:0]}")
tap_check "equal byte for byte, the new space too (sha256 ${a:0:16})" test "$a" = "$b"
resynced=$(($(status_of vm1 resynced_regions) - resynced_before))
# 64 KiB regions: the new 8 MiB are 128.
tap_check "alpha resynced its new regions ($resynced)" test "$resynced" -ge 128
tap_check "alpha's metadata says the new size" \
	test "$(sb_field "${META[alpha:0]}" data_sectors)" = $((GROW_MB * 2048))
tap_check "beta's kernel refused no batch" test "$(status_of vm1b rejected)" = 0
out=$(tool alpha resize 2>&1) && rc=0 || rc=$?
tap_check "a second resize has nothing to do (exit $rc)" test $rc -eq 0

site_stop alpha KILL
site_stop beta KILL
# A grow whose metadata write fails at the resume (beta's metadata device
# refuses writes, dm-flakey): repltool puts the old table back and resumes,
# so that no VM waits on a suspended device.
grow "${DATA[beta:0]}" $((GROW_MB + 4)) && modprobe dm-flakey &&
	dmsetup suspend bmeta && dmsetup reload bmeta --table "0 $bmsz flakey $bmeta 0 0 1 1 error_writes" &&
	dmsetup resume bmeta || tap_bail "beta's metadata device refusing writes"
out=$(tool beta resize 2>&1) && rc=0 || rc=$?
tap_check "a grow whose metadata cannot be written fails (exit $rc): the old table runs on" \
	test $rc -eq 1 -a -n "$(grep 'runs on with its old table' <<<"$out")"
tap_diag "$out"
tap_check "beta's volume is active, not suspended, at its old size" bash -c \
	"dmsetup info vm1b-0 | grep -q 'State: *ACTIVE' &&
	 test \$(blockdev --getsz /dev/mapper/vm1b-0) = $((GROW_MB * 2048))"
dmsetup suspend bmeta && dmsetup reload bmeta --table "0 $bmsz linear $bmeta 0" &&
	dmsetup resume bmeta || tap_bail "beta's metadata device back"
out=$(tool beta resize 2>&1) && tap_ok "once it takes writes again, resize grows it: $out" ||
	tap_fail "resize after the failure" "$out"
tap_check "to its new size" test "$(blockdev --getsz /dev/mapper/vm1b-0)" = $(((GROW_MB + 4) * 2048))
tool beta down >/dev/null || tap_bail "beta down"
grow "${DATA[beta:0]}" 20 || tap_bail "shrink beta's data device"
out=$(tool beta resize 2>&1) && rc=0 || rc=$?
tap_check "a data device smaller than its metadata says is refused (exit $rc)" \
	test $rc -eq 1 -a -n "$(grep 'shrinking a replicated volume is not supported' <<<"$out")"
tap_done
