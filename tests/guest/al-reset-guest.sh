#!/usr/bin/env bash
# One boot of the primary reset test (tests/al-reset.sh starts it through
# vm.sh, with four virtio disks that survive a guest reset):
#   /dev/vda  alpha's data (64 MiB)   /dev/vdb  alpha's metadata: 1 MiB
#             extents, at most 4 hot, 4 AL slots
#   /dev/vdc  beta's data (64 MiB)    /dev/vdd  beta's metadata
# Two sites in this guest (tests/guest/lib.sh: network namespaces joined by
# veth, a repld in each, TLS with a PSK): alpha's group vm1, the primary,
# replicates over the link to beta's vm1b.
#
# usage: al-reset-guest.sh ROUND SEED [--mid-resync]
#        al-reset-guest.sh --check-only ROUND
#
# 1. ROUND > 1 (the previous boot ended in a reset): copy alpha's metadata
#    as the reset left it, load both sites, and before any repld runs read
#    alpha's dirty regions and decode the copy (crashwriter ondisk: the AL's
#    extents, the on-disk bitmap, and whether recovery marked exactly their
#    union). Then both replds: the resync, with beta's consistency polled
#    all along, until alpha is uptodate with no region dirty and beta
#    consistent and caught up; resynced_regions; the sha256 of both data
#    disks. Everything goes to VM_OUT/check for the host to judge.
# 2. Unless --check-only: fresh metadata for both sites (the data disks are
#    equal: zero in round 1, checked equal before), both replds, and fio
#    writing on alpha while beta applies: 4 to 64 KiB random writes at 2
#    MB/s in a 1 MiB zone that moves to a new place (drawn from SEED) after
#    0.4 s of writing, so that extents go hot, are released and go cold;
#    after a delay drawn from SEED (2 to 5 s from fio's first writes) a
#    reset with sysrq-b.
# 3. --mid-resync instead of 2: a 2 MiB ring; with no repld running, 12 MiB
#    of random data at a place drawn from SEED, most of it only in the
#    dirty bitmap (alpha behind); then both replds resync it under
#    resync-rate 512K, and once the kernel put half of the dirty regions
#    in the ring (resynced_regions), alpha's repld is stopped (SIGSTOP, so
#    that its counters hold), the kernel has taken the regions released
#    out of the resync and written their bitmap blocks (the counters the
#    same twice, resync_regions_released and resync_blocks_unsaved 0), and
#    a reset with sysrq-b; no
#    write since the 12 MiB. The next boot's step 1 is the same: it finds
#    what the reset left of the resync.
#
# Results for the host, in VM_OUT (written directly, not through the
# console, so that the reset cannot lose them):
#   check  one line "alreset: round=R KEY=VALUE..." (alpha's state and
#          dirty_regions at the load, crashwriter ondisk's fields,
#          resynced_regions at the end, the regions the replica asked
#          for (alpha's repld logs them), beta's consistency at the load, as
#          polled during the resync and at the end, both sums), then
#          alpha's recovery line of the kernel log and its repld's
#          account of the resync
#   reset  "round=R seed=S delay_ms=D KEY=VALUE..." (alpha's and beta's
#          status), just before the reset; with --mid-resync "round=R
#          seed=S dirty_start=D resynced=N dirty=N unreleased=N ...":
#          alpha's dirty regions when its repld started, and the kernel's
#          resynced_regions, dirty_regions and resync_regions (resynced,
#          not released yet) at the reset
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/guest/lib.sh
source "$HERE/lib.sh"

check_only=0
if [[ ${1:-} == --check-only ]]; then
	check_only=1
	shift
fi
ROUND=${1:?usage: al-reset-guest.sh ROUND SEED [--mid-resync] | --check-only ROUND}
SEED=${2:-0}
mid_resync=0
[[ ${3:-} == --mid-resync ]] && mid_resync=1
# A ring that the mid-resync round's writes overflow, one that the load's never do.
RING_MB=$((mid_resync ? 2 : 32))
OUT=${VM_OUT:?al-reset-guest.sh runs in the guest (tests/al-reset.sh)}
WRITER=$HERE/crashwriter

# lib.sh's sites_*: alpha's volume 0 is vm1-0, beta's vm1b-0.
W=$(mktemp -d /tmp/al-reset.XXXXXX)
# shellcheck disable=SC2034 # lib.sh's sites_* read them
A_IP=10.77.2.1
# shellcheck disable=SC2034
B_IP=10.77.2.2
# shellcheck disable=SC2034
SITES_VOLUMES=0
# The resync paced so that it lasts a few seconds: beta's states are seen.
# shellcheck disable=SC2034
SITES_KEYS="resync-rate 1M;"
declare -A DATA=([alpha:0]=/dev/vda [beta:0]=/dev/vdc)
declare -A META=([alpha:0]=/dev/vdb [beta:0]=/dev/vdd)

die() {
	echo "al-reset-guest: $*" >&2
	exit 2
}

for d in /dev/vda /dev/vdb /dev/vdc /dev/vdd; do
	[[ -b $d ]] || die "no $d: start with four vm.sh --disk (tests/al-reset.sh)"
done
[[ -x $WRITER ]] || die "no $WRITER: make -C tests/guest"
SECTORS=$(blockdev --getsz /dev/vda)

load() {
	dm_create vm1-0 "0 $SECTORS repl /dev/vda /dev/vdb vm1 primary 2 ring_mb $RING_MB" &&
		dm_create vm1b-0 "0 $SECTORS repl /dev/vdc /dev/vdd vm1b secondary 2 source vm1"
}

# sites_up: the namespaces, a fresh key, the resource file, beta's repld.
sites_up() {
	sites_network && openssl rand -hex 32 >"$W/psk" && chmod 600 "$W/psk" || return 1
	sites_conf "$W/conf" "$W/psk"
	site_start beta
}

# sites_down: both replds stopped, the volumes and namespaces gone.
sites_down() {
	site_stop alpha && site_stop beta &&
		dmsetup remove vm1-0 && dmsetup remove vm1b-0 &&
		ip netns del dmr-alpha && ip netns del dmr-beta
}

# 1. The previous round: what recovery marked, what the resync sent.
if ((ROUND > 1)); then
	# What the metadata holds before the load changes it (the AL and
	# bitmap blocks: well within 1 MiB).
	dd if=/dev/vdb of=/tmp/ameta-before bs=64k count=16 iflag=direct status=none ||
		die "cannot copy alpha's metadata"
	load || die "cannot load the sites after the reset"
	recovery=$(dmesg | grep 'vm1: volume 0 was not shut down cleanly' | tail -1)
	state=$(status_of vm1 state)
	dirty=$(status_of vm1 dirty_regions)
	resynced_before=$(status_of vm1 resynced_regions)
	beta_before=$(status_of vm1b consistency)
	decoded=$("$WRITER" ondisk -g vm1 /tmp/ameta-before 2>&1)
	ondisk_rc=$?
	ondisk=$(grep '^ondisk: ' <<<"$decoded")

	sites_up || die "cannot start the sites"
	# beta's consistency from before alpha's repld runs until the end.
	(
		while [[ ! -e $W/stop-poll ]]; do
			status_of vm1b consistency
			sleep 0.1
		done | uniq >"$W/beta-states"
	) &
	poller=$!
	start=$SECONDS
	site_start alpha
	synced=no
	why=$(state_reaches vm1 state uptodate 150 && state_reaches vm1 dirty_regions 0 30 &&
		state_reaches vm1b consistency consistent 60 && quiesce vm1 vm1b 60) && synced=yes
	resync_s=$((SECONDS - start))
	touch "$W/stop-poll"
	wait $poller
	resynced=$(status_of vm1 resynced_regions)
	# Regions the replica asked for at the connection (a resync cut short).
	asked=$(grep -o 'the replica asks for [0-9]* regions' "$W/alpha.log" |
		awk '{ n += $5 } END { print n + 0 }')
	beta_after=$(status_of vm1b consistency)
	echo 1 >/proc/sys/vm/drop_caches
	sum_a=$(data_sum /dev/vda)
	sum_b=$(data_sum /dev/vdc)
	{
		echo "alreset: round=$((ROUND - 1)) state=$state dirty_regions=$dirty" \
			"resynced_before=$resynced_before ${ondisk#ondisk: } ondisk_rc=$ondisk_rc" \
			"resynced=$resynced asked=$asked synced=$synced resync_s=$resync_s" \
			"beta_before=$beta_before beta_after=$beta_after" \
			"beta_seen=$(paste -sd, "$W/beta-states") sum_a=$sum_a sum_b=$sum_b"
		echo "kernel: $recovery"
		grep -v '^ondisk: ' <<<"$decoded"
		[[ $synced == yes ]] || echo "not synced: $why"
		grep -o 'resync of group vm1: .*' "$W/alpha.log"
	} | tee "$OUT/check"
	sites_down || die "cannot stop the sites"
	cp "$W"/*.log "$OUT/" 2>/dev/null
	rm -f "$W"/*.log
	[[ $synced == yes && $sum_a == "$sum_b" ]] || exit 1
fi
((check_only)) && exit 0

# 2. and 3.: a fresh pair over the same data.
"$REPLTOOL" meta create --force --group vm1 --volume 0 --extent-kb 1024 \
	--hot-extents 4 --al-slots 4 --data-dev /dev/vda /dev/vdb >/dev/null ||
	die "alpha's metadata"
"$REPLTOOL" meta create --force --role secondary --group vm1b --volume 0 \
	--data-dev /dev/vdc /dev/vdd >/dev/null || die "beta's metadata"
load || die "cannot load the sites"

# power_cut: sysrq-b, once VM_OUT/reset is written.
power_cut() {
	echo b >/proc/sysrq-trigger
	sleep 10
	die "sysrq-b did not reset the guest"
}

RANDOM=$SEED
# 3. Alpha behind, then a power cut in the middle of its resync.
if ((mid_resync)); then
	dd if=/dev/urandom of=/dev/mapper/vm1-0 bs=1M count=12 seek=$((RANDOM % 53)) \
		oflag=direct status=none || die "cannot write on alpha"
	dirty_start=$(status_of vm1 dirty_regions)
	if [[ $(status_of vm1 state) != behind ]] || ((dirty_start < 96)); then
		die "12 MiB into a 2 MiB ring left alpha $(status_of vm1 state) with $dirty_start regions dirty"
	fi
	# shellcheck disable=SC2034 # sites_up reads it
	SITES_KEYS="resync-rate 512K;"
	sites_up || die "cannot start the sites"
	site_start alpha
	end=$((SECONDS + 120))
	while (($(status_of vm1 resynced_regions) * 2 < dirty_start)); do
		((SECONDS < end)) || die "half of $dirty_start regions not resynced after 120 s:" \
			"$(status_of vm1 resynced_regions)"
		sleep 0.1
	done
	# Alpha's repld stopped (its ioctls done): the counters stay as read.
	pid=$(cat "$W/alpha.pid")
	kill -STOP "$pid"
	until awk '$3 != "T" { running = 1 } END { exit running }' /proc/"$pid"/task/*/stat; do
		sleep 0.05
	done
	# The regions released leave the resync in a kernel work item (a
	# flush, then their bitmap blocks): the reset comes once it is idle,
	# nothing left to write and the counters the same twice.
	end=$((SECONDS + 30)) facts="" last=""
	until [[ -n $facts && $facts == "$last" ]] && [[ $facts == *untaken=0\ unsaved=0 ]]; do
		((SECONDS < end)) || die "the kernel's resync saves not done after 30 s: $facts"
		last=$facts
		sleep 0.2
		facts=$("$REPLTOOL" status vm1 | awk '$1 == "resynced_regions" { r = $2 }
			$1 == "dirty_regions" { d = $2 } $1 == "resync_regions" { u = $2 }
			$1 == "resync_regions_released" { t = $2 } $1 == "resync_blocks_unsaved" { s = $2 }
			END { print "resynced=" r " dirty=" d " unreleased=" u " untaken=" t " unsaved=" s }')
	done
	echo "round=$ROUND seed=$SEED dirty_start=$dirty_start $facts" \
		"beta=$(status_of vm1b consistency)" >"$OUT/reset"
	power_cut
fi

# 2. Replicating, and writes until the reset.
sites_up || die "cannot start the sites"
site_start alpha
out=$(shipped "$W/alpha.sock" vm1 60) || die "alpha does not replicate to beta: $out"

delay_ms=$((2000 + RANDOM % 3001))
regions=$((SECTORS / 128))	# of 64 KiB, the default: zones start on one
{
	cat <<-EOF
	[global]
	filename=/dev/mapper/vm1-0
	thread
	direct=1
	ioengine=libaio
	iodepth=4
	rw=randwrite
	bsrange=4k-64k
	size=1m
	rate=2m
	fsync=32
	time_based
	runtime=400ms
	randseed=$SEED
	EOF
	# 30 zones: more than the delay lets fio reach.
	for ((i = 0; i < 30; i++)); do
		printf '[zone%d]\nstonewall\noffset=%dk\n' "$i" \
			$(((RANDOM % (regions - 16)) * 64))
	done
} >"$W/job.fio"
fio --output="$W/fio.out" "$W/job.fio" >/dev/null 2>&1 &
writer=$!
# fio takes seconds to start under TCG: the delay counts from its first writes.
first=$(last_seq vm1)
while (($(last_seq vm1) < first + 16)); do
	kill -0 $writer 2>/dev/null || die "fio ended before it wrote: $(tail -5 "$W/fio.out")"
	sleep 0.2
done
sleep "$((delay_ms / 1000)).$(printf %03d $((delay_ms % 1000)))"
kill -0 $writer 2>/dev/null || die "fio ended before the reset: $(tail -5 "$W/fio.out")"
# Replicating under load: what alpha wrote (its status fields: seq,
# overflows, the AL's transactions, evictions and fallbacks), what beta
# applied: read first, so that it is at most what alpha wrote.
read -r -a b < <(dmsetup status vm1b-0)
read -r -a f < <(dmsetup status vm1-0)
echo "round=$ROUND seed=$SEED delay_ms=$delay_ms alpha_seq=${f[7]} overflows=${f[11]}" \
	"al_txns=${f[17]} al_evictions=${f[18]} al_fallbacks=${f[19]} beta_applied=${b[7]}" \
	>"$OUT/reset"
power_cut
