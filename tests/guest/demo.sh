#!/usr/bin/env bash
# The main job, in a guest (make demo): two hosts, each a network namespace
# with its own address, joined by a virtual link with 20 ms of delay. Each
# has its disks, the same resource file and its own repld; the kernel (one
# for both, so the replica's group has a name of its own) holds both sites'
# devices. Certificates are made with openssl; the devices come up with
# repltool; repld replicates over TLS 1.3; a workload runs on A; status on
# both; a planned failover to B; B's writes flow back to A; the data are
# compared byte for byte. Then an unplanned failover: B is lost with writes
# A never got, A is promoted, and B comes back as A's replica (repltool
# rejoin): only its own regions are resent; compared again.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

W=$(mktemp -d /tmp/demo.XXXXXX)
MB=256

step() { printf '\n=== %s\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
# on SITE CMD...: run CMD on host SITE (in its network namespace).
on() {
	local site=$1
	shift
	printf '%s$ %s\n' "$site" "$*"
	ip netns exec "$site" "$@"
}

cleanup() {
	local f
	for f in "$W"/*.pid; do
		[[ -e $f ]] && kill "$(cat "$f")" 2>/dev/null
	done
	wait 2>/dev/null || true
	dm_remove_all
	loop_disks_free
	ip netns del alpha 2>/dev/null || true
	ip netns del beta 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT

# repld_on SITE: the daemon of host SITE, in the background.
repld_on() {
	echo "$1\$ repld --config-dir $W/etc --site $1 &"
	ip netns exec "$1" "$REPLD" --config-dir "$W/etc" --site "$1" \
		--socket "$W/$1.sock" 2>"$W/$1.log" &
	echo $! >"$W/$1.pid"
}

same() {
	echo 1 >/proc/sys/vm/drop_caches
	show cmp "${DISK[alpha0]}" "${DISK[beta0]}"
	show cmp "${DISK[alpha1]}" "${DISK[beta1]}"
	echo "identical"
}

step "Two hosts: namespaces alpha (10.0.0.1) and beta (10.0.0.2), a link with 20 ms delay"
ip netns add alpha
ip netns add beta
ip link add eth0 netns alpha type veth peer name eth0 netns beta
ip -n alpha addr add 10.0.0.1/24 dev eth0
ip -n beta addr add 10.0.0.2/24 dev eth0
for s in alpha beta; do
	ip -n $s link set eth0 up
	ip -n $s link set lo up
done
on alpha tc qdisc add dev eth0 root netem delay 20ms
on alpha ip -brief addr show eth0
on beta ip -brief addr show eth0

step "Disks on each host: two volumes, each with data and metadata"
declare -A DISK
for s in alpha beta; do
	for v in 0 1; do
		DISK[$s$v]=$(loop_disk $MB)
		DISK[${s}m$v]=$(loop_disk 16)
	done
	echo "$s: data ${DISK[${s}0]} ${DISK[${s}1]}, metadata ${DISK[${s}m0]} ${DISK[${s}m1]}"
done

step "Certificates: a CA, and a key and certificate for each host (openssl)"
"$TOP/tests/lib/mkcerts.sh" "$W/etc/tls" alpha beta
show openssl x509 -in "$W/etc/tls/beta.crt" -noout -subject -ext subjectAltName

step "The resource file, the same on both hosts"
{
	echo "group vm1 {"
	echo "	compression zstd 3;"
	echo "	ring-size 256M;"
	echo "	tls { ca $W/etc/tls/ca.crt; }"
	for s in alpha beta; do
		ip=10.0.0.1 group=vm1
		[[ $s == beta ]] && ip=10.0.0.2 group=vm1-dr
		echo "	site $s {"
		echo "		host $s; address $ip:7790; group $group;"
		echo "		certificate $W/etc/tls/$s.crt; key $W/etc/tls/$s.key;"
		for v in 0 1; do
			echo "		volume $v { device $group-$v; data ${DISK[$s$v]}; meta ${DISK[${s}m$v]}; }"
		done
		echo "	}"
	done
	echo "}"
} >"$W/etc/vm1.conf"
cat "$W/etc/vm1.conf"
echo "(one kernel holds both sites here, so beta's group has its own name: group vm1-dr)"
show "$REPLTOOL" config check --dir "$W/etc" --site alpha

step "Metadata and devices: A primary, B secondary, a new pair (repltool create-md --initial-sync, up)"
show "$REPLTOOL" create-md --config-dir "$W/etc" --site alpha --role primary --initial-sync vm1
show "$REPLTOOL" create-md --config-dir "$W/etc" --site beta --role secondary --initial-sync vm1
show "$REPLTOOL" up --config-dir "$W/etc" --site alpha vm1
show "$REPLTOOL" up --config-dir "$W/etc" --site beta vm1
show dmsetup table

step "repld on both hosts"
repld_on beta
repld_on alpha
sleep 2
cat "$W/alpha.log"

step "The initial sync: A resyncs every region while the workload below starts (zeros go as headers)"
show "$REPLTOOL" status --socket "$W/alpha.sock" vm1

step "A workload on A: a tar archive of this source tree on volume 0, random writes on volume 1"
echo "(no mkfs here: its write-zeroes fail on loop devices over tmpfs, and a failed"
echo " write is a gap the replica must be told of: it would be outdated, as it should)"
echo "$ tar -cf - Documentation uapi kernel/*.[ch] userspace/*/*.[ch] | dd of=/dev/mapper/vm1-0 oflag=direct"
(cd "$TOP" && tar -cf - Documentation uapi kernel/*.[ch] userspace/*/*.[ch]) |
	dd of=/dev/mapper/vm1-0 bs=1M iflag=fullblock oflag=direct status=none
echo "$ fio --rw=randwrite --bsrange=4k-256k --iodepth=16 --io_size=32M --fsync=32 /dev/mapper/vm1-1"
fio --name=demo --filename=/dev/mapper/vm1-1 --direct=1 --ioengine=libaio \
	--rw=randwrite --bsrange=4k-256k --iodepth=16 --size=${MB}M --io_size=32M \
	--fsync=32 --randseed=1 --output-format=terse --terse-version=3 >/dev/null
state_reaches vm1 state uptodate 900
quiesce vm1 vm1-dr
grep 'resync of group' "$W/alpha.log"

step "Status on A (primary) and on B (replica)"
show "$REPLTOOL" status --socket "$W/alpha.sock"
show "$REPLTOOL" status --socket "$W/beta.sock"

step "The replica equals the primary, byte for byte"
same

step "Planned failover to B: demote A once drained, promote B (repld follows both)"
show "$REPLTOOL" secondary --config-dir "$W/etc" --site alpha --wait 60 vm1
show "$REPLTOOL" primary --config-dir "$W/etc" --site beta vm1
show dmsetup status

step "The VM runs on B now; its writes flow back to A"
show dd if=/dev/urandom of=/dev/mapper/vm1-dr-0 bs=64k count=64 seek=100 oflag=direct status=none
show dd if=/dev/urandom of=/dev/mapper/vm1-dr-1 bs=64k count=64 seek=900 oflag=direct status=none
quiesce vm1-dr vm1
show "$REPLTOOL" status --socket "$W/beta.sock" vm1-dr
same

step "Unplanned failover: host B is lost, with writes that never left it"
on beta kill -9 "$(cat "$W/beta.pid")"
rm -f "$W/beta.pid"
show dd if=/dev/urandom of=/dev/mapper/vm1-dr-0 bs=4k count=1 seek=3000 oflag=direct status=none
show dd if=/dev/urandom of=/dev/mapper/vm1-dr-1 bs=4k count=1 seek=5000 oflag=direct status=none
show "$REPLTOOL" down --config-dir "$W/etc" --site beta vm1

step "A is promoted without B; the VM runs on A again"
show "$REPLTOOL" primary --config-dir "$W/etc" --site alpha vm1
show dd if=/dev/urandom of=/dev/mapper/vm1-0 bs=64k count=16 seek=40 oflag=direct status=none

step "B is back: it holds writes A lacks, so it rejoins as A's replica, giving them up"
show "$REPLTOOL" up --config-dir "$W/etc" --site beta vm1
show "$REPLTOOL" rejoin --discard-my-data --config-dir "$W/etc" --site beta vm1
repld_on beta
state_reaches vm1-dr consistency consistent 300
quiesce vm1 vm1-dr
show "$REPLTOOL" status --socket "$W/alpha.sock" vm1
grep -E 'asks for|regions of our own' "$W/alpha.log" "$W/beta.log"
same

step "The daemons' logs"
cat "$W/alpha.log" "$W/beta.log"
