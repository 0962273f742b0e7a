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

# lvm_conf: LVM's configuration for this guest, in $W/lvm, exported to
# every lvm command that follows and to the daemons started after (a
# snapshot-hook's lvm commands: repld passes its environment on): /etc/lvm
# is the host's, read-only, so its locking and backup directories go to
# tmpfs; no udev; only loop devices are scanned for PVs.
lvm_conf() {
	export LVM_SYSTEM_DIR=$W/lvm LVM_SUPPRESS_FD_WARNINGS=1
	mkdir -p "$W/lvm/lock" "$W/lvm/backup" "$W/lvm/archive" && cat >"$W/lvm/lvm.conf" <<EOF
devices { global_filter = [ "a|^/dev/loop[0-9]+\$|", "r|.*|" ] }
global { locking_dir = "$W/lvm/lock" }
activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }
backup { backup_dir = "$W/lvm/backup" archive_dir = "$W/lvm/archive" }
EOF
}

# lvm_nodes_free: after dm_remove_all, the VGs' folders in /dev gone (LVM
# made them, with no udev; a VG of the same name in a later test would find
# its folder taken).
lvm_nodes_free() {
	local vg
	for vg in $(vgs --noheadings -o vg_name 2>/dev/null); do
		rm -rf "/dev/${vg:?}"
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

# pair_tables [PRIMARY_OPTS [SECONDARY_META_OPTS]]: fresh metadata and the
# tables of a pair over four RAM disks, their data as it is: p1, group g1
# primary on ram0 (meta ram1), and its replica s1, group g2 on ram2 (meta
# ram3); SECONDARY_META_OPTS go to the replica's "meta create" (--seeded).
pair_tables() {
	local sectors
	sectors=$(blockdev --getsz /dev/ram0)
	meta_create /dev/ram1 g1 /dev/ram0
	"$REPLTOOL" meta create --force --role secondary ${2:-} --group g2 \
		--data-dev /dev/ram2 /dev/ram3 >/dev/null
	dm_create p1 "0 $sectors repl /dev/ram0 /dev/ram1 g1 primary ${1:-}" &&
		dm_create s1 "0 $sectors repl /dev/ram2 /dev/ram3 g2 secondary 2 source g1"
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

# state_reaches GROUP KEY VALUE [SECONDS]: wait (up to SECONDS, 300 by
# default) until `repltool status GROUP` says KEY VALUE.
state_reaches() {
	local got end=$((SECONDS + ${4:-300}))
	while ((SECONDS < end)); do
		got=$(status_of "$1" "$2")
		[[ $got == "$3" ]] && return 0
		sleep 0.5
	done
	echo "$2 of $1 is ${got:-?} after ${4:-300} s, not $3"
	return 1
}

# applied_reaches GROUP SEQ [SECONDS]: wait (up to SECONDS, 300 by default)
# until the secondary GROUP has applied sequence SEQ (or past it), a
# primary's last sequence that another host told (quiesce, when both are
# in this kernel).
applied_reaches() {
	local got end=$((SECONDS + ${3:-300}))
	while ((SECONDS < end)); do
		got=$(status_of "$1" applied_seq)
		[[ $got =~ ^[0-9]+$ ]] && ((got >= $2)) && return 0
		sleep 0.1
	done
	echo "applied_seq of $1 is $got after ${3:-300} s, not $2 yet"
	return 1
}

# sites_cleanup: the end of a test of two sites in this guest: the daemons
# whose pids are in W/*.pid killed, every device, LVM's folders in /dev
# (after lvm_conf) and every loop disk gone, the daemons' logs (W/*.log)
# kept next to the TAP file, W removed.
sites_cleanup() {
	local f
	for f in "$W"/*.pid; do
		[[ -e $f ]] && kill -9 "$(cat "$f")" 2>/dev/null
	done
	wait 2>/dev/null
	dm_remove_all
	[[ -n ${LVM_SYSTEM_DIR:-} ]] && lvm_nodes_free
	loop_disks_free
	[[ -n ${VM_OUT:-} ]] && cp "$W"/*.log "$VM_OUT/" 2>/dev/null
	rm -rf "$W"
}

# flushes DEV: the flushes block device DEV completed (its /sys/block stat).
flushes() {
	awk '{ print $16 }' "/sys/block/${1#/dev/}/stat"
}

# log_has FILE TEXT [SECONDS]: TEXT appears in FILE (a daemon's log) within
# SECONDS (20 by default); otherwise say so, with the log's errors and
# warnings, then its end.
log_has() {
	local i
	for ((i = 0; i < ${3:-20} * 10; i++)); do
		grep -qF -- "$2" "$1" && return 0
		sleep 0.1
	done
	echo "no \"$2\" in $1 after ${3:-20} s; its errors and warnings, then its end:"
	grep -E '^<[34]>' "$1" | tail -10
	tail -5 "$1"
	return 1
}

# pair_synced PRIMARY REPLICA: the primary up to date, the replica
# consistent and caught up (quiesce).
pair_synced() {
	state_reaches "$1" state uptodate && state_reaches "$2" consistency consistent 120 &&
		quiesce "$1" "$2" 120
}

# stack_reaches PID PATTERN [TRIES]: PID's kernel stack shows PATTERN
# (grep -E) within TRIES looks 25 ms apart (200): it waits there.
stack_reaches() {
	local i
	for ((i = 0; i < ${3:-200}; i++)); do
		grep -Eq -- "$2" "/proc/$1/stack" 2>/dev/null && return 0
		sleep 0.025
	done
	return 1
}

# link_fact SOCKET GROUP KEY: KEY of GROUP's link, as the repld of SOCKET
# tells it (the link section of `repltool status`).
link_fact() {
	"$REPLTOOL" status --socket "$1" "$2" 2>/dev/null |
		awk -v k="$3" '$0 == "link" { link = 1; next } link && $1 == k { print $2; exit }'
}

# shipped SOCKET GROUP [SECONDS]: wait (up to SECONDS, 300 by default)
# until the repld of SOCKET has shipped every record of the primary GROUP
# and its peer acknowledged them: its link connected, lag_records 0, and
# acked_seq this kernel's last sequence of GROUP.
shipped() {
	local want acked lag link end=$((SECONDS + ${3:-300}))
	while ((SECONDS < end)); do
		want=$(last_seq "$2")
		acked=$(link_fact "$1" "$2" acked_seq)
		lag=$(link_fact "$1" "$2" lag_records)
		link=$(link_fact "$1" "$2" link)
		[[ $link == connected && $lag == 0 && $acked == "$want" ]] && return 0
		sleep 0.2
	done
	echo "after ${3:-300} s the link of $2 is ${link:-?}, lag_records ${lag:-?}," \
		"acked_seq ${acked:-?}; the last sequence is $want"
	return 1
}

# data_sum DEV: the sha256 of DEV's whole content, read with O_DIRECT (no
# page cache: what the disk holds).
data_sum() {
	dd if="$1" bs=1M iflag=direct status=none | sha256sum | cut -d' ' -f1
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

# ---- two hosts, each its own guest (tests/two-guests.sh, tests/bench/two-guests.sh)
#
# The caller sets SITE (this host), PEER (the other), SYNC (a folder both
# guests see read-write) and, for the daemon, ETC (its resource files), SOCK
# (its control socket) and W (a private work folder: repld.log, repld.pid).
REPLD=$TOP/userspace/repld/repld

# tell NAME [VALUE]: let the peer know (the file SYNC/SITE.NAME, made whole
# by a rename).
tell() {
	echo "${2:-}" >"$SYNC/$SITE.$1.tmp" && mv -f "$SYNC/$SITE.$1.tmp" "$SYNC/$SITE.$1"
}

# heard NAME [SECONDS]: wait (up to SECONDS, 300 by default) until the peer
# told NAME; print its value. Fails at once when the peer failed (it, or the
# host when its guest ended, told "failed").
heard() {
	local f=$SYNC/$PEER.$1 end=$((SECONDS + ${2:-300}))
	while ((SECONDS < end)); do
		if [[ -e $f ]]; then
			cat "$f"
			return 0
		fi
		if [[ -e $SYNC/$PEER.failed ]]; then
			echo "$PEER failed ($(cat "$SYNC/$PEER.failed")) before it told \"$1\""
			return 1
		fi
		sleep 0.2
	done
	echo "$PEER did not tell \"$1\" within ${2:-300} s"
	return 1
}

# sums_put FILE DEV...: the sha256 of each DEV (read past the page cache)
# into FILE, one "DEV SUM" a line, made whole by a rename.
sums_put() {
	local f=$1 d
	shift
	echo 1 >/proc/sys/vm/drop_caches
	for d in "$@"; do
		echo "$d $(data_sum "$d")"
	done >"$f.tmp" && mv -f "$f.tmp" "$f"
}

# repld_start: the daemon, as on a host of its own (it finds its site by
# the host name), its log appended to W/repld.log.
repld_start() {
	"$REPLD" --config-dir "$ETC" --socket "$SOCK" >>"$W/repld.log" 2>&1 &
	echo $! >"$W/repld.pid"
}

# repld_stop: SIGTERM, and its exit status (not in a subshell: only the
# shell that started it can wait for it).
repld_stop() {
	local pid
	pid=$(cat "$W/repld.pid") && rm -f "$W/repld.pid" && kill -TERM "$pid" && wait "$pid"
}

# repld_kill: a daemon still running goes, whatever its state (clean-up).
repld_kill() {
	if [[ -s $W/repld.pid ]]; then
		kill -9 "$(cat "$W/repld.pid")" 2>/dev/null
		rm -f "$W/repld.pid"
	fi
	return 0
}

# ---- two sites in one guest (repld.sh, resync-link.sh, rejoin.sh, ...) -----------
#
# Two network namespaces, dmr-alpha ($A_IP) and dmr-beta ($B_IP), joined by
# veth (va, vb); each site's repld runs in its own. The caller sets W (a
# work folder: the daemons' logs, pids, sockets, certificates in W/tls), MB
# (each data disk's size), A_IP and B_IP, and declares the associative
# arrays DATA and META (SITE:VOLUME -> device).

sites_network() {
	# A suite killed before its clean-up may have left them.
	ip netns del dmr-alpha 2>/dev/null
	ip netns del dmr-beta 2>/dev/null
	ip netns add dmr-alpha && ip netns add dmr-beta &&
		ip link add va netns dmr-alpha type veth peer name vb netns dmr-beta &&
		ip -n dmr-alpha addr add "$A_IP/24" dev va && ip -n dmr-beta addr add "$B_IP/24" dev vb &&
		ip -n dmr-alpha link set va up && ip -n dmr-beta link set vb up &&
		ip -n dmr-alpha link set lo up && ip -n dmr-beta link set lo up
}

# sites_netns_cleanup: sites_cleanup, and the namespaces gone. For trap EXIT.
sites_netns_cleanup() {
	ip netns del dmr-alpha 2>/dev/null
	ip netns del dmr-beta 2>/dev/null
	sites_cleanup
}

# site_volume SITE GROUP ROLE INDEX [OPTS...]: disks, metadata, the table.
site_volume() {
	local site=$1 group=$2 role=$3 index=$4 data meta
	shift 4
	data=$(loop_disk "$MB") && meta=$(loop_disk 4) || return 1
	"$REPLTOOL" meta create --role "$role" --volume "$index" --group "$group" \
		--data-dev "$data" "$meta" >/dev/null || return 1
	DATA[$site:$index]=$data
	META[$site:$index]=$meta
	dm_create "$group-$index" "0 $(blockdev --getsz "$data") repl $data $meta $group $role $*"
}

# sites_same: beta's data disks equal alpha's (DATA[SITE:0] and
# DATA[SITE:1]), byte for byte.
sites_same() {
	local v
	echo 1 >/proc/sys/vm/drop_caches
	for v in 0 1; do
		cmp "${DATA[alpha:$v]}" "${DATA[beta:$v]}" || return 1
	done
}

# sites_conf DIR AUTH [BETA_CERT] [ALPHA_IDENTITY]: vm1.conf in DIR, alpha's
# group vm1 replicated to beta's vm1b; AUTH is "cert" or a PSK file. Its
# volumes are SITES_VOLUMES ("0 1" by default), each site's device N named
# after its group (vm1-N, vm1b-N: one kernel holds both); SITES_KEYS are
# more keys of the group.
sites_conf() {
	local dir=$1 auth=$2 bcert=${3:-beta} aid=${4:-alpha} tls site v
	mkdir -p "$dir"
	if [[ $auth == cert ]]; then
		tls="ca $W/tls/ca.crt;"
	else
		tls="psk $auth;"
	fi
	{
		echo "group vm1 {"
		echo "	heartbeat 500ms; timeout 3s; window 4; batch-size 256K; ${SITES_KEYS:-}"
		echo "	tls { $tls }"
		for site in alpha beta; do
			echo "	site $site {"
			if [[ $site == alpha ]]; then
				echo "		host alpha; address $A_IP:7790; group vm1;"
				[[ $auth == cert ]] && echo "		certificate $W/tls/alpha.crt; key $W/tls/alpha.key; identity $aid;"
			else
				echo "		host beta; address $B_IP:7790; group vm1b;"
				[[ $auth == cert ]] && echo "		certificate $W/tls/$bcert.crt; key $W/tls/$bcert.key;"
			fi
			for v in ${SITES_VOLUMES:-0 1}; do
				echo "		volume $v { device vm1$([[ $site == beta ]] && echo b)-$v;" \
					"data ${DATA[$site:$v]}; meta ${META[$site:$v]}; }"
			done
			echo "	}"
		done
		echo "}"
	} >"$dir/vm1.conf"
}

# site_start SITE [CONFDIR [NAME]]: a repld for SITE in its namespace, NAME
# (default SITE) for its files: it logs to $W/NAME.log, its pid goes to
# $W/NAME.pid (a file: a restart may come from a subshell), its exit status
# to $W/NAME.rc, its control socket is $W/NAME.sock. CONFDIR is $W/conf by
# default. (The subshell's stderr: the shell's notice of a killed job.)
site_start() {
	local site=$1 dir=${2:-$W/conf} name=${3:-$1}
	rm -f "$W/$name.pid" "$W/$name.rc"
	(
		ip netns exec "dmr-$site" bash -c 'echo $$ >"$0" && exec "$@"' "$W/$name.pid" \
			"$REPLD" --config-dir "$dir" --site "$site" --socket "$W/$name.sock" \
			>>"$W/$name.log" 2>&1
		echo $? >"$W/$name.rc"
	) 2>/dev/null &
	while [[ ! -s $W/$name.pid ]]; do
		sleep 0.05
	done
}

# site_listening SITE: SITE's repld takes connections on port 7790 (within 20 s).
site_listening() {
	local end=$((SECONDS + 20))
	while ((SECONDS < end)); do
		ip netns exec "dmr-$1" ss -Hltn "sport = :7790" | grep -q . && return 0
		sleep 0.1
	done
	return 1
}

# site_stop NAME [SIGNAL]: and wait until it is gone.
site_stop() {
	local pid
	pid=$(cat "$W/$1.pid") || return 1
	kill "-${2:-TERM}" "$pid" 2>/dev/null
	while kill -0 "$pid" 2>/dev/null; do
		sleep 0.1
	done
	rm -f "$W/$1.pid"
}

# site_logged NAME TEXT [SECONDS]: TEXT appears in NAME's log within SECONDS
# (45: a primary refused several times in a row dials again after up to
# 30 s, repld's longest back-off).
site_logged() {
	log_has "$W/$1.log" "$2" "${3:-45}"
}

# The sites' resource file in $W/conf:
# tool SITE VERB [ARGS...]: repltool VERB for SITE of vm1.
tool() {
	local site=$1 verb=$2
	shift 2
	"$REPLTOOL" "$verb" --config-dir "$W/conf" --site "$site" "$@" vm1
}
