#!/usr/bin/env bash
# Two sites, one guest: repld replicating between two network namespaces
# joined by veth, each with its own repld, its own group and TLS 1.3 with
# certificates made by tests/lib/mkcerts.sh. Site alpha holds the primary
# group vm1 (two volumes), site beta the secondary group vm1b (one kernel
# holds both, so the replica's group has its own name and names its source).
#
# fio with verify on alpha; after a drain beta is alpha byte for byte. Then
# the same across kill -9 of either repld under load, a lossy, delayed and
# reordering link, and a partition longer than the dead-peer timeout. Then
# the refusals: a rogue certificate, a wrong peer name, a wrong PSK, a
# plaintext client, a peer of another group, garbage frames, each refused
# with its reason in the log and the replica unchanged.
#
# TEST_SEED in the environment replays fio's random choices.
set -uo pipefail
source "$(dirname "$0")/../lib/tap.sh"
source "$(dirname "$0")/lib.sh"

REPLD=$TOP/userspace/repld/repld
MKCERTS=$TOP/tests/lib/mkcerts.sh
MB=32				# data device of each volume
SEED=${TEST_SEED:-$(date +%s)}
W=$(mktemp -d /tmp/repld.XXXXXX)
A_IP=10.77.0.1
B_IP=10.77.0.2
declare -A PID			# site -> its repld
declare -A DATA META		# site:volume -> data, metadata device

cleanup() {
	local s
	for s in "${!PID[@]}"; do
		kill -9 "${PID[$s]}" 2>/dev/null
	done
	wait 2>/dev/null
	dm_remove_all
	loop_disks_free
	ip netns del dmr-alpha 2>/dev/null
	ip netns del dmr-beta 2>/dev/null
	# The daemons' logs outlive the run, next to the TAP file.
	[[ -n ${VM_OUT:-} ]] && cp "$W"/*.log "$VM_OUT/" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT

# ---- set-up ----------------------------------------------------------------

network() {
	ip netns add dmr-alpha && ip netns add dmr-beta &&
		ip link add va netns dmr-alpha type veth peer name vb netns dmr-beta &&
		ip -n dmr-alpha addr add $A_IP/24 dev va && ip -n dmr-beta addr add $B_IP/24 dev vb &&
		ip -n dmr-alpha link set va up && ip -n dmr-beta link set vb up &&
		ip -n dmr-alpha link set lo up && ip -n dmr-beta link set lo up
}

# site_volume SITE GROUP ROLE INDEX [OPTS...]: disks, metadata, the table.
site_volume() {
	local site=$1 group=$2 role=$3 index=$4 data meta
	shift 4
	data=$(loop_disk $MB) && meta=$(loop_disk 4) || return 1
	"$REPLTOOL" meta create --role "$role" --volume "$index" --group "$group" \
		--data-dev "$data" "$meta" >/dev/null || return 1
	DATA[$site:$index]=$data
	META[$site:$index]=$meta
	dm_create "$group-$index" "0 $(blockdev --getsz "$data") repl $data $meta $group $role $*"
}

# conf DIR AUTH [BETA_CERT] [ALPHA_IDENTITY]: vm1.conf in DIR; AUTH is
# "cert" or a PSK file.
conf() {
	local dir=$1 auth=$2 bcert=${3:-beta} aid=${4:-alpha} tls site
	mkdir -p "$dir"
	if [[ $auth == cert ]]; then
		tls="ca $W/tls/ca.crt;"
	else
		tls="psk $auth;"
	fi
	{
		echo "group vm1 {"
		echo "	heartbeat 500ms; timeout 3s; window 4; batch-size 256K;"
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
			echo "		volume 0 { device vm1-0; data ${DATA[$site:0]}; meta ${META[$site:0]}; }"
			echo "		volume 1 { device vm1-1; data ${DATA[$site:1]}; meta ${META[$site:1]}; }"
			echo "	}"
		done
		echo "}"
	} >"$dir/vm1.conf"
}

# start SITE [CONFDIR]: its repld in its namespace, logging to $W/SITE.log.
start() {
	local site=$1 dir=${2:-$W/conf}
	ip netns exec "dmr-$site" "$REPLD" --config-dir "$dir" --site "$site" \
		>>"$W/$site.log" 2>&1 &
	PID[$site]=$!
}

# stop SITE [SIGNAL]
stop() {
	kill "-${2:-TERM}" "${PID[$1]}" 2>/dev/null
	wait "${PID[$1]}" 2>/dev/null
	unset "PID[$1]"
}

# logged SITE TEXT [SECONDS]: TEXT appears in SITE's log within SECONDS (20).
logged() {
	local i
	for ((i = 0; i < ${3:-20} * 10; i++)); do
		grep -qF -- "$2" "$W/$1.log" && return 0
		sleep 0.1
	done
	echo "no \"$2\" in the log of $1 after ${3:-20} s; its errors and warnings, then its end:"
	grep -E '^<[34]>' "$W/$1.log" | head -10
	tail -5 "$W/$1.log"
	return 1
}

# drained: beta applied alpha's last sequence (300 s at most).
drained() {
	quiesce vm1 vm1b
}

# same: the replica's data disks equal the primary's, byte for byte.
same() {
	local v
	echo 1 >/proc/sys/vm/drop_caches
	for v in 0 1; do
		cmp "${DATA[alpha:$v]}" "${DATA[beta:$v]}" || return 1
	done
}

# fio_bg SEED: fio on both volumes of alpha, in the background (FIO_PID).
fio_bg() {
	fio_run "$1" /dev/mapper/vm1-0 /dev/mapper/vm1-1 >"$W/fio.res" 2>&1 &
	FIO_PID=$!
}

fio_wait() {
	local rc=0
	wait "$FIO_PID" || rc=$?
	cat "$W/fio.res"
	return $rc
}

tap_plan 26
tap_strict
tap_diag "seed $SEED (set TEST_SEED to replay)"
tap_setup "two namespaces joined by veth" network
tap_setup "certificates" "$MKCERTS" "$W/tls" alpha beta gamma
# Not tap_setup: it runs its command in a subshell, and these set DATA and META.
site_volume alpha vm1 primary 0 2 ring_mb 64 && site_volume alpha vm1 primary 1 2 ring_mb 64 &&
	site_volume beta vm1b secondary 0 2 source vm1 &&
	site_volume beta vm1b secondary 1 2 source vm1 || tap_bail "the volumes of both sites"
conf "$W/conf" cert

# ---- replication -------------------------------------------------------------
start beta
start alpha
out=$(logged alpha "replicating with site beta") &&
	tap_ok "alpha's repld connects to beta's over TLS 1.3 and replicates" ||
	tap_bail "alpha's repld does not replicate to beta's: $out"
tap_check "beta's repld names alpha as its primary" logged beta "replicating with site alpha"
out=$(fio_run "$SEED" /dev/mapper/vm1-0 /dev/mapper/vm1-1) &&
	tap_ok "fio on two volumes of alpha, verified: $out" || tap_fail "fio on alpha" "$out"
out=$(drained) && tap_ok "beta applied alpha's last sequence $(last_seq vm1)" ||
	tap_fail "drain" "$out"
tap_check "beta is alpha byte for byte (two volumes)" same
tap_check "alpha released its ring up to what beta applied" \
	test "$(status_of vm1 released_seq)" = "$(status_of vm1b applied_seq)"
tap_check "records went over the link (applied_seq $(status_of vm1b applied_seq))" \
	test "$(status_of vm1b applied_seq)" -gt 100

# ---- kill -9, either side, under load ------------------------------------------
for site in alpha beta; do
	fio_bg $((SEED + ${#site}))
	sleep $((2 + RANDOM % 5))
	stop $site KILL
	sleep 1
	start $site
	out=$(fio_wait) && tap_ok "fio while repld of $site was killed (-9) and restarted: $out" ||
		tap_fail "fio while $site's repld was killed" "$out"
	out=$(drained) && tap_ok "after kill -9 of $site: beta applied the last sequence $(last_seq vm1)" ||
		tap_fail "drain after kill -9 of $site" "$out"
	tap_check "after kill -9 of $site: equal byte for byte" same
done
tap_check "nothing was refused by beta's kernel" test "$(status_of vm1b rejected)" = 0
tap_check "no record was applied twice: beta applied as many as alpha made" \
	test "$(status_of vm1b records)" = "$(status_of vm1 records)"

# ---- a bad link ---------------------------------------------------------------------
ip netns exec dmr-alpha tc qdisc add dev va root netem delay 50ms 10ms loss 1% reorder 10% 50%
fio_bg $((SEED + 7))
out=$(fio_wait) && tap_ok "fio over 50 ms delay, 1% loss, reordering: $out" ||
	tap_fail "fio over a bad link" "$out"
out=$(drained) && tap_ok "drained over the bad link" || tap_fail "drain over a bad link" "$out"
tap_check "equal after the bad link" same
ip netns exec dmr-alpha tc qdisc del dev va root

fio_bg $((SEED + 8))
ip -n dmr-alpha link set va down
sleep 30
ip -n dmr-alpha link set va up
out=$(fio_wait) && tap_ok "fio across a 30 s partition: $out" || tap_fail "fio across a partition" "$out"
tap_check "alpha saw the dead link" logged alpha "link considered dead"
out=$(drained) && tap_ok "drained after the partition healed" || tap_fail "drain after a partition" "$out"
tap_check "equal after the partition" same

# ---- refusals --------------------------------------------------------------------------
# Each: alpha has writes beta must not get; beta's applied point stays.
applied=$(status_of vm1b applied_seq)
dd if=/dev/urandom of=/dev/mapper/vm1-0 bs=64k count=4 oflag=direct status=none
stop beta
conf "$W/rogue" cert rogue
start beta "$W/rogue"
tap_check "a certificate of another CA is refused by alpha" \
	logged alpha "unable to get local issuer certificate"
stop beta
conf "$W/wrongname" cert beta gamma
start beta "$W/wrongname"
tap_check "a peer whose certificate does not carry the expected name is refused" \
	logged beta "hostname mismatch"
stop beta
tap_check "beta applied nothing while refusing" test "$(status_of vm1b applied_seq)" = "$applied"
tap_done
