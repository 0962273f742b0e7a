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

# status_of GROUP KEY: a "key value" line of `repltool status GROUP`.
status_of() {
	"$REPLTOOL" status "$1" | awk -v k="$2" '$1 == k { print $2; exit }'
}

# last_seq GROUP: the primary's last sequence (next_seq - 1).
last_seq() {
	echo $(($(status_of "$1" next_seq) - 1))
}

# quiesce PRIMARY SECONDARY [SECONDS]: wait (up to SECONDS, 300 by default)
# until the secondary has applied the primary's last sequence. The last
# sequence is read again each time: a release may add a record (the GAP
# owed after an overflow).
quiesce() {
	local want got end=$((SECONDS + ${3:-300}))
	while ((SECONDS < end)); do
		want=$(last_seq "$1")
		got=$(status_of "$2" applied_seq)
		[[ $got == "$want" ]] && return 0
		sleep 0.1
	done
	echo "applied_seq of $2 is $got after ${3:-300} s, the last sequence of $1 is $want"
	return 1
}

# fio_run SEED DEV...: random writes of random sizes with crc32c verify and
# fsyncs, then discards, then more writes, all O_DIRECT, on every DEV of
# $MB MiB; the job and its output go to $W. Prints what completed.
fio_run() {
	local seed=$1 dev n=0
	shift
	{
		cat <<-EOF
		[global]
		direct=1
		randseed=$seed
		verify_fatal=1
		verify_state_save=0
		EOF
		for dev in "$@"; do
			n=$((n + 1))
			cat <<-EOF
			[write$n]
			filename=$dev
			new_group
			rw=randwrite
			ioengine=libaio
			iodepth=8
			bsrange=4k-256k
			size=$((MB * 3 / 4))m
			fsync=16
			verify=crc32c
			EOF
		done
		n=0
		for dev in "$@"; do
			n=$((n + 1))
			cat <<-EOF
			[trim$n]
			filename=$dev
			stonewall
			rw=randtrim
			ioengine=psync
			bsrange=64k-1m
			offset=$((MB / 8))m
			size=$((MB / 4))m
			number_ios=24
			EOF
		done
		n=0
		for dev in "$@"; do
			n=$((n + 1))
			cat <<-EOF
			[rewrite$n]
			filename=$dev
			stonewall
			rw=randwrite
			ioengine=libaio
			iodepth=4
			bsrange=512-64k
			offset=$((MB / 16))m
			size=$((MB / 2))m
			number_ios=400
			fsync=8
			verify=crc32c
			EOF
		done
	} >"$W/job.fio"
	fio --output="$W/fio.out" "$W/job.fio" >/dev/null 2>&1 || {
		echo "fio failed:"
		tail -20 "$W/fio.out"
		return 1
	}
	# trims and writes that completed
	awk '/issued rwts:/ { split($3, a, "[=,]"); w += a[3]; t += a[4] } END { print w " writes, " t " trims" }' \
		"$W/fio.out"
}
