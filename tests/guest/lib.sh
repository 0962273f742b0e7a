# shellcheck shell=bash
# Helpers for the guest scenario tests (lvm2 test/shell style): source it
# after tests/lib/tap.sh. Runs inside the guest, as root, with dm-repl.ko
# loaded by tests/guest/vm.sh.

# Where the repository is (the guest sees it at the same path).
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
REPLTOOL=$TOP/userspace/repltool/repltool

# ram_disks N MB: N brd RAM disks of MB MiB each (/dev/ram0...). brd does not
# do discard or write-zeroes: use loop_disk for those.
ram_disks() {
	rmmod brd 2>/dev/null || true
	modprobe brd rd_nr="$1" rd_size=$(($2 * 1024))
}

# loop_disk MB: prints a new loop device over a tmpfs file (discard-capable).
loop_disk() {
	local f
	modprobe loop
	f=$(mktemp /tmp/loopdisk.XXXXXX)
	truncate -s "$1M" "$f"
	losetup -f --show "$f"
}

loop_disks_free() {
	local d f
	for d in $(losetup -n -O NAME); do
		f=$(losetup -n -O BACK-FILE "$d")
		losetup -d "$d"
		case $f in /tmp/loopdisk.*) rm -f "$f" ;; esac
	done
}

# meta_create META GROUP DATA [VOLUME]: fresh dm-repl metadata on META for
# the volume of GROUP over DATA with volume index VOLUME (default 0; each
# volume of a group needs its own), whatever META held before.
meta_create() {
	"$REPLTOOL" meta create --force --group "$2" --volume "${4:-0}" \
		--data-dev "$3" "$1" >/dev/null
}

# dm_create NAME TABLE: create a device and its /dev/mapper node (no udev).
dm_create() {
	dmsetup create "$1" --table "$2" && dmsetup mknodes "$1"
}

dm_remove_all() {
	dmsetup remove_all --force >/dev/null 2>&1 || true
}

# The module's count of live objects: "groups volumes files".
live_objects() {
	cat /sys/module/dm_repl/parameters/live_objects
}

# The last line dm-repl's constructor put in the kernel log.
last_table_error() {
	dmesg | grep -E 'device-mapper: table: .*repl: ' | tail -1 |
		sed -E 's/.*repl: //; s/ \(-E[A-Z]+\)$//'
}

# role DEV ROLE [force]: the role message, with the device suspended for it.
role() {
	local dev=$1 r=0
	shift
	dmsetup suspend "$dev" || return 1
	dmsetup message "$dev" 0 role "$@" || r=1
	dmsetup resume "$dev" || r=1
	return $r
}

# fails_with TEXT CMD...: CMD fails and the kernel log's last repl line has TEXT.
fails_with() {
	local text=$1
	shift
	! "$@" 2>/dev/null && dmesg | grep 'device-mapper: repl: ' | tail -1 | grep -qF "$text"
}
