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

MKCERTS=$TOP/tests/lib/mkcerts.sh
MB=16				# data device of each volume (TLS and zstd are slow under TCG)
SEED=${TEST_SEED:-$(date +%s)}
W=$(mktemp -d /tmp/repld.XXXXXX)
A_IP=10.77.0.1
B_IP=10.77.0.2
declare -A DATA META		# site:volume -> data, metadata device

trap sites_netns_cleanup EXIT

# ---- set-up (tests/guest/lib.sh: sites_network, site_volume, sites_conf,
# site_start, site_stop, site_logged) -------------------------------------------

# drained [SECONDS]: beta applied alpha's last sequence (120 s at most).
drained() {
	quiesce vm1 vm1b "${1:-120}" && return 0
	echo "the end of the daemons' logs:"
	tail -n 8 "$W/alpha.log" "$W/beta.log"
	return 1
}


fio_alpha() {
	fio_run "$1" /dev/mapper/vm1-0 /dev/mapper/vm1-1
}

tap_strict
tap_diag "seed $SEED (set TEST_SEED to replay)"
tap_setup "two namespaces joined by veth" sites_network
tap_setup "certificates" "$MKCERTS" "$W/tls" alpha beta gamma
# Not tap_setup: it runs its command in a subshell, and these set DATA and META.
# The ring holds every write of a section, so that an outage of a few
# seconds (a killed daemon, the partition) never overflows it: equality is
# then the claim to check. A ring that does overflow is vm2's, below.
site_volume alpha vm1 primary 0 2 ring_mb 256 && site_volume alpha vm1 primary 1 2 ring_mb 256 &&
	site_volume beta vm1b secondary 0 2 source vm1 &&
	site_volume beta vm1b secondary 1 2 source vm1 || tap_bail "the volumes of both sites"
sites_conf "$W/conf" cert
# vm2: one volume, a 2 MiB ring, its own port, served by the same daemons.
site_volume alpha2 vm2 primary 0 2 ring_mb 2 && site_volume beta2 vm2b secondary 0 2 source vm2 ||
	tap_bail "the volumes of vm2"
sed -e 's/^group vm1 {/group vm2 {/' -e 's/group vm1;/group vm2;/' -e 's/group vm1b;/group vm2b;/' \
	-e 's/:7790;/:7791;/' -e 's/device vm1-/device vm2-/' -e 's/device vm1b-/device vm2b-/' -e '/volume 1 {/d' \
	-e "s|${DATA[alpha:0]};|${DATA[alpha2:0]};|" -e "s|${META[alpha:0]};|${META[alpha2:0]};|" \
	-e "s|${DATA[beta:0]};|${DATA[beta2:0]};|" -e "s|${META[beta:0]};|${META[beta2:0]};|" \
	"$W/conf/vm1.conf" >"$W/conf/vm2.conf"

# ---- replication -------------------------------------------------------------
site_start beta
site_start alpha
out=$(site_logged alpha "replicating with site beta") &&
	tap_ok "alpha's repld connects to beta's over TLS 1.3 and replicates" ||
	tap_bail "alpha's repld does not replicate to beta's: $out"
tap_check "beta's repld names alpha as its primary" site_logged beta "replicating with site alpha"
out=$(fio_run "$SEED" /dev/mapper/vm1-0 /dev/mapper/vm1-1) &&
	tap_ok "fio on two volumes of alpha, verified: $out" || tap_fail "fio on alpha" "$out"
out=$(drained) && tap_ok "beta applied alpha's last sequence $(last_seq vm1)" ||
	tap_fail "drain" "$out"
tap_check "beta is alpha byte for byte (two volumes)" sites_same
tap_check "alpha released its ring up to what beta applied" \
	test "$(status_of vm1 released_seq)" = "$(status_of vm1b applied_seq)"
tap_check "records went over the link (applied_seq $(status_of vm1b applied_seq))" \
	test "$(status_of vm1b applied_seq)" -gt 100

# ---- kill -9, either side, under load ------------------------------------------
for site in alpha beta; do
	(sleep $((2 + RANDOM % 5)) && site_stop $site KILL && sleep 1 && site_start $site) &
	killer=$!
	out=$(fio_alpha $((SEED + ${#site}))) && tap_ok "fio while repld of $site was killed (-9) and restarted: $out" ||
		tap_fail "fio while $site's repld was killed" "$out"
	wait $killer || tap_bail "the kill and restart of $site's repld failed"
	out=$(drained) && tap_ok "after kill -9 of $site: beta applied the last sequence $(last_seq vm1)" ||
		tap_fail "drain after kill -9 of $site" "$out"
	tap_diag "vm1: overflows $(status_of vm1 overflows), state $(status_of vm1 state);" \
		"vm1b: $(status_of vm1b consistency)"
	tap_check "after kill -9 of $site: no write overflowed the ring" \
		test "$(status_of vm1 overflows)" = 0
	tap_check "after kill -9 of $site: equal byte for byte" sites_same
done
tap_check "nothing was refused by beta's kernel" test "$(status_of vm1b rejected)" = 0
tap_check "no record was applied twice: beta applied as many as alpha made" \
	test "$(status_of vm1b records)" = "$(status_of vm1 records)"

# ---- a bad link ---------------------------------------------------------------------
ip netns exec dmr-alpha tc qdisc add dev va root netem delay 50ms 10ms loss 1% reorder 10% 50%
# TCP over 1% loss and 50 ms moves some 200 KB/s: a smaller workload (MB=4).
out=$(MB=4 fio_alpha $((SEED + 7))) && tap_ok "fio over 50 ms delay, 1% loss, reordering: $out" ||
	tap_fail "fio over a bad link" "$out"
out=$(drained 300) && tap_ok "drained over the bad link" || tap_fail "drain over a bad link" "$out"
tap_check "equal after the bad link" sites_same
ip netns exec dmr-alpha tc qdisc del dev va root

(ip -n dmr-alpha link set va down && sleep 30 && ip -n dmr-alpha link set va up) &
partition=$!
out=$(fio_alpha $((SEED + 8))) && tap_ok "fio across a 30 s partition: $out" || tap_fail "fio across a partition" "$out"
wait $partition || tap_bail "the partition of alpha failed"
tap_check "alpha saw the dead link" site_logged alpha "link considered dead"
out=$(drained) && tap_ok "drained after the partition healed" || tap_fail "drain after a partition" "$out"
tap_check "equal after the partition" sites_same

# ---- a link down longer than the ring holds -------------------------------------------
# vm2's link is cut by the admin; 8 MiB of writes overflow its 2 MiB ring.
tap_check "repltool disconnect cuts vm2's link" \
	"$REPLTOOL" disconnect --socket "$W/alpha.sock" vm2
dd if=/dev/urandom of=/dev/mapper/vm2-0 bs=64k count=128 oflag=direct status=none
tap_check "the primary says behind: writes only in its bitmap" \
	test "$(status_of vm2 state)" = behind
# repld looks at a disconnected group's kernel facts once a second.
tap_check "repld's status says behind too" bash -c \
	"for i in \$(seq 100); do '$REPLTOOL' status --socket '$W/alpha.sock' vm2 |
	 grep -Eq '^  state +behind$' && exit 0; sleep 0.1; done; exit 1"
# Once connected, repld ships what the ring kept, then resyncs the dirty
# regions over the same link: the replica is outdated past the gap, then
# inconsistent, and consistent only at the resync's last record.
"$REPLTOOL" connect --socket "$W/alpha.sock" vm2
tap_check "once connected, alpha's repld resyncs vm2 (its log)" site_logged alpha "resync of group vm2"
# uptodate GROUP: the primary is up to date with no region dirty (within 120 s).
uptodate() {
	local end=$((SECONDS + 120))
	while ((SECONDS < end)); do
		[[ $(status_of "$1" state)/$(status_of "$1" dirty_regions) == uptodate/0 ]] && return 0
		sleep 0.1
	done
	return 1
}
tap_check "the resync ends: the primary is up to date, no region dirty" uptodate vm2
out=$(quiesce vm2 vm2b 120) && tap_ok "the replica takes what the ring kept and the resync" ||
	tap_fail "vm2 drains after connect" "$out"
tap_check "repld's status says uptodate" bash -c \
	"for i in \$(seq 100); do '$REPLTOOL' status --socket '$W/alpha.sock' vm2 |
	 grep -Eq '^  state +uptodate$' && exit 0; sleep 0.1; done; exit 1"
tap_check "the replica is consistent again" test "$(status_of vm2b consistency)" = consistent
tap_check "vm2 is equal byte for byte after the resync" bash -c \
	"echo 1 >/proc/sys/vm/drop_caches && cmp '${DATA[alpha2:0]}' '${DATA[beta2:0]}'"

# ---- refusals --------------------------------------------------------------------------
# Alpha has writes beta must not get while each refusal runs: beta's
# applied point and data stay as they are.
replica_sum() {
	echo 1 >/proc/sys/vm/drop_caches
	cat "${DATA[beta:0]}" "${DATA[beta:1]}" | md5sum
}
site_stop beta
applied=$(status_of vm1b applied_seq)
before=$(replica_sum)
dd if=/dev/urandom of=/dev/mapper/vm1-0 bs=64k count=4 oflag=direct status=none

sites_conf "$W/rogue" cert rogue
site_start beta "$W/rogue"
tap_check "a certificate of another CA is refused (alpha's log says why)" \
	site_logged alpha "unable to get local issuer certificate"
site_stop beta
sites_conf "$W/wrongname" cert beta gamma
site_start beta "$W/wrongname"
tap_check "a peer whose certificate lacks the expected name is refused (beta's log)" \
	site_logged beta "hostname mismatch"
site_stop beta

site_stop alpha
openssl rand -hex 32 >"$W/psk-a" && openssl rand -hex 32 >"$W/psk-b" && chmod 600 "$W"/psk-?
sites_conf "$W/psk-alpha" "$W/psk-a"
sites_conf "$W/psk-beta" "$W/psk-b"
site_start alpha "$W/psk-alpha"
site_start beta "$W/psk-beta"
tap_check "a wrong pre-shared key is refused (beta's log)" site_logged beta "pre-shared key differs"
site_stop alpha
site_stop beta

site_start beta
site_listening beta || tap_bail "beta's repld does not listen"
ip netns exec dmr-alpha bash -c "exec 3<>/dev/tcp/$B_IP/7790 && printf 'HELLO\r\n' >&3 && sleep 1"
tap_check "a plaintext client is refused (beta's log)" site_logged beta "wrong version number"

printf 'these bytes are not a frame of the protocol' >"$W/garbage"
ip netns exec dmr-alpha timeout 10 openssl s_client -connect $B_IP:7790 -tls1_3 -quiet \
	-cert "$W/tls/alpha.crt" -key "$W/tls/alpha.key" -CAfile "$W/tls/ca.crt" \
	-verify_hostname beta <"$W/garbage" >/dev/null 2>&1 || true
tap_check "garbage frames over an authenticated connection end it (beta's log)" \
	site_logged beta "bad frame from"

# A peer of another group: alpha serving a group vm9 whose site beta is
# beta's vm1 address.
site_volume alpha9 vm9 primary 0 2 ring_mb 2 || tap_bail "the volume of vm9"
mkdir -p "$W/conf9"
sed -e 's/^group vm1 {/group vm9 {/' -e 's/group vm1;/group vm9;/' -e 's/device vm1-/device vm9-/' \
	-e "s|${DATA[alpha:0]}|${DATA[alpha9:0]}|" -e "s|${META[alpha:0]}|${META[alpha9:0]}|" \
	-e '/volume 1 {/d' "$W/conf/vm1.conf" >"$W/conf9/vm9.conf"
site_start alpha "$W/conf9" alpha9
tap_check "a peer of another group is refused at the HELLO (beta's log)" \
	site_logged beta "wrong group"
site_stop alpha9
site_stop beta

tap_check "beta applied nothing while refusing" test "$(status_of vm1b applied_seq)" = "$applied"
tap_check "beta's data did not change while refusing" test "$(replica_sum)" = "$before"

# ---- back to normal, and the admin's view --------------------------------------------
site_start beta
site_start alpha
out=$(drained) && tap_ok "after the refusals the pair resumes and drains" ||
	tap_fail "drain after the refusals" "$out"
tap_check "equal after the refusals" sites_same
st=$("$REPLTOOL" status --socket "$W/alpha.sock" 2>&1)
grep -Eq '^  link +connected' <<<"$st" && grep -Eq '^  lag_records +0$' <<<"$st" &&
	tap_ok "repltool status shows alpha's groups and their links: connected, lag 0" ||
	tap_fail "repltool status of alpha's groups" "$st"
st=$("$REPLTOOL" status --socket "$W/alpha.sock" --interval 200ms --count 3 vm1 2>&1)
times=$(awk '$1 == "time" { print $2 }' <<<"$st")
tap_check "repltool status --interval 200ms --count 3: 3 reports, each after its time" \
	awk -v n="$(grep -Ec '^  link +connected' <<<"$st")" \
	'{ t[NR] = $1 } END { exit !(NR == 3 && n == 3 && t[1] < t[2] && t[2] < t[3]) }' <<<"$times"
tap_check "repltool status --json shows beta's link" bash -c \
	"'$REPLTOOL' status --json --socket '$W/beta.sock' | grep -q '\"link\":{\"kernel_group\":\"vm1b\"'"
tap_check "repltool disconnect ends the session; alpha's status says so" bash -c \
	"'$REPLTOOL' disconnect --socket '$W/alpha.sock' vm1 &&
	 for i in \$(seq 50); do '$REPLTOOL' status --socket '$W/alpha.sock' vm1 |
	 grep -Eq '^  link +disconnected' && exit 0; sleep 0.2; done; exit 1"
dd if=/dev/urandom of=/dev/mapper/vm1-1 bs=64k count=4 oflag=direct status=none
tap_check "repltool connect resumes it, and the pair drains" bash -c \
	"'$REPLTOOL' connect --socket '$W/alpha.sock' vm1"
out=$(drained) && tap_ok "drained after connect" || tap_fail "drain after connect" "$out"
tap_check "equal at the end" sites_same
# Memory is bounded by configuration: many reconnects do not grow it.
# Anonymous memory: the ring's mapping is the kernel's, counted in VmRSS.
rss() { awk '/^RssAnon/ { print $2 }' "/proc/$(cat "$W/alpha.pid")/status"; }
sessions() {
	"$REPLTOOL" status --socket "$W/alpha.sock" vm1 | awk '$1 == "sessions" { print $2 }'
}
# link_is STATE: alpha's vm1 link reaches STATE within 20 s.
link_is() {
	local end=$((SECONDS + 20))
	while ((SECONDS < end)); do
		"$REPLTOOL" status --socket "$W/alpha.sock" vm1 | grep -Eq "^  link +$1$" && return 0
		sleep 0.1
	done
	return 1
}
# reconnect N: N sessions ended and started again.
reconnect() {
	local i
	for ((i = 0; i < $1; i++)); do
		"$REPLTOOL" disconnect --socket "$W/alpha.sock" vm1 >/dev/null && link_is disconnected &&
			"$REPLTOOL" connect --socket "$W/alpha.sock" vm1 >/dev/null && link_is connected ||
			tap_bail "disconnect and connect, round $i"
	done
}
reconnect 3	# allocator and TLS caches reach their size first
rss0=$(rss) s0=$(sessions)
reconnect 10
rss1=$(rss) s1=$(sessions)
tap_check "$((s1 - s0)) more sessions: alpha's repld grew by $((rss1 - rss0)) KiB (of $rss0), under 2 MiB" \
	test $((s1 - s0)) -eq 10 -a $((rss1 - rss0)) -lt 2048
site_stop alpha
for ((i = 0; i < 50; i++)); do
	[[ -s $W/alpha.rc ]] && break
	sleep 0.1
done
tap_check "a repld stopped by SIGTERM exits 0 (exit $(cat "$W/alpha.rc"))" test "$(cat "$W/alpha.rc")" = 0
tap_done
