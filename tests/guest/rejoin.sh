#!/usr/bin/env bash
# Generations at connect, unplanned failover and return, split brain.
#
# Two sites in this guest, each with its own repld (PSK, each in its own
# network namespace, joined by veth: lib.sh), one group of two volumes of 16
# MiB in 64 KiB regions: alpha (kernel group vm1) the primary, beta (vm1b) its
# replica. Rings of 2 MiB; alpha's activity log has extents of 1 MiB, at most
# 4 hot a volume, and 4 transactions, so that what a crash leaves dirty is not
# the whole disk.
#
# 1. Unplanned failover, as the runbook has it (Documentation/admin-guide.md):
#    alpha's repld is killed, alpha writes regions that stay in its ring,
#    then alpha crashes: its metadata as the crash leaves it on disk (a copy
#    taken while it is live, put back after the devices are gone). beta is
#    promoted and written: one region alpha wrote unshipped until beta's
#    ring overflows (those writes stay in its stream), then regions alpha
#    had dirty and regions it had not, all in beta's bitmap (the runbook's
#    "if B's ring overflowed"). alpha comes up (its activity log recovers
#    the unshipped writes: the kernel says it was not shut down cleanly),
#    `repltool rejoin --discard-my-data` makes it beta's replica, its repld
#    starts: beta resyncs exactly the union of the regions alpha had dirty
#    at its load (its AL's extents and its bitmap, which hold every region
#    it wrote unshipped) and the regions beta wrote; then both are equal
#    (byte for byte).
# 2. Planned failover back to alpha (the runbook's step 5; the generations
#    chain through the rejoin), then a split brain: the link cut, beta
#    promoted, both write. Both refuse at connect and say so in their
#    status; rejoin on beta resolves it; equal after.
# 3. The runbook's last case: the old primary demoted with --force before
#    its repld runs. alpha's repld killed, alpha writes 5 regions that stay
#    in its ring, beta promoted and written (in its ring, streamed), alpha
#    demoted with --force: exactly those 5 regions are dirty; its connection
#    is refused (it holds writes of its own); rejoin makes it beta's
#    replica, beta resends exactly those 5 regions, equal after.
#
# TEST_SEED in the environment replays the places of the writes.
set -uo pipefail
source "$(dirname "$0")/../lib/tap.sh"
source "$(dirname "$0")/lib.sh"

MB=16
REGION_KB=64
SEED=${TEST_SEED:-$(date +%s)}
W=$(mktemp -d /tmp/rejoin.XXXXXX)
WRITER=$(dirname "$0")/crashwriter
RIO=$(dirname "$0")/resyncio
A_IP=10.77.3.1			# each site in its namespace (sites_network)
B_IP=10.77.3.2
# shellcheck disable=SC2034 # sites_conf reads it
SITES_KEYS="ring-size 2M;"
declare -A DATA META		# site:volume -> data, metadata device
declare -A WROTE		# volume:MiB -> 1: a MiB some write of the test touched

trap sites_netns_cleanup EXIT
sites_network || tap_bail "two network namespaces joined by veth"

disks() {
	local s v
	for s in alpha beta; do
		for v in 0 1; do
			DATA[$s:$v]=$(loop_disk $MB) && META[$s:$v]=$(loop_disk 4) || return 1
		done
	done
}

# sites_md: alpha's metadata, a primary's, with a small activity log;
# beta's by create-md; both up.
# shellcheck disable=SC2317 # called by tap_setup
sites_md() {
	local v
	for v in 0 1; do
		"$REPLTOOL" meta create --force --role primary --group vm1 --volume "$v" \
			--extent-kb 1024 --hot-extents 4 --al-slots 4 \
			--data-dev "${DATA[alpha:$v]}" \
			"${META[alpha:$v]}" >/dev/null || return 1
	done
	tool beta create-md --role secondary && tool alpha up && tool beta up
}

# scribble DEV N SHIFT: N writes of 4 KiB, each in its own MiB of DEV, at
# places the seed and SHIFT pick.
scribble() {
	local i mib
	for ((i = 0; i < $2; i++)); do
		mib=$(((SEED + $3 + i * 7) % MB))
		WROTE[${1##*-}:$mib]=1
		dd if=/dev/urandom of="$1" bs=4k count=1 oflag=direct status=none \
			seek=$((mib * 256 + i)) || return 1
	done
}

# fresh VOLUME: REGION is set to a region of VOLUME in a MiB that no write
# of the test touched yet, on either site, at places the seed picks; that
# MiB is taken. (Not in a subshell: it sets WROTE.)
fresh() {
	local i mib
	for ((i = 0; i < MB; i++)); do
		mib=$(((SEED + 5 + i * 3) % MB))
		[[ -n ${WROTE[$1:$mib]:-} ]] && continue
		WROTE[$1:$mib]=1
		REGION=$((mib * 1024 / REGION_KB + (SEED + i) % (1024 / REGION_KB)))
		return 0
	done
	return 1
}

# put DEV REGION...: a region of random data at each REGION of DEV.
put() {
	local dev=$1 r
	shift
	for r; do
		dd if=/dev/urandom of="$dev" bs=${REGION_KB}k count=1 oflag=direct \
			status=none seek="$r" || return 1
	done
}

# dirty_total GROUP: dirty regions of all its volumes.
dirty_total() {
	"$REPLTOOL" status "$1" | awk '$1 == "dirty_regions" { n += $2 } END { print n + 0 }'
}

# logged_since FILE LINE TEXT [SECONDS]: TEXT in FILE past its first LINE
# lines within SECONDS (20 by default).
logged_since() {
	local end=$((SECONDS + ${4:-20}))
	until tail -n +$(($2 + 1)) "$1" | grep -qF -- "$3"; do
		((SECONDS < end)) || { echo "no \"$3\" in $1 past line $2 after ${4:-20} s"; return 1; }
		sleep 0.1
	done
}

# klog_since LINE TEXT: TEXT in the kernel log past its first LINE lines.
# shellcheck disable=SC2317 # called by tap_check
klog_since() {
	dmesg | tail -n +$(($1 + 1)) | grep -F -- "$2"
}

# al_field DEV hot|fallbacks: the activity log's hot extents (N/MAX) or
# writes it could not take, from a primary's dmsetup status.
al_field() {
	local f
	read -r -a f < <(dmsetup status "$1")
	case $2 in
	hot) echo "${f[16]}" ;;
	fallbacks) echo "${f[19]}" ;;
	esac
}

# in_set SET KEY...: every KEY is in the associative array named SET.
# shellcheck disable=SC2317 # called by tap_check
in_set() {
	local -n set=$1
	local k
	shift
	for k; do
		[[ -n ${set[$k]:-} ]] || { echo "$k is not in $1"; return 1; }
	done
}

tap_plan 65
tap_strict
tap_diag "seed $SEED (set TEST_SEED to replay)"
[[ -x $WRITER ]] || tap_bail "no $WRITER: make -C tests/guest"
disks || tap_bail "the disks of both sites"
openssl rand -hex 32 >"$W/psk" && chmod 600 "$W/psk" && sites_conf "$W/conf" "$W/psk" ||
	tap_bail "the resource file"
tap_setup "metadata of alpha (primary) and beta (secondary), both up" sites_md
tap_check "a new replica has no generation (it takes its primary's)" \
	test "$(status_of vm1b generation)" = 0000000000000000
scribble /dev/mapper/vm1-0 8 0 && scribble /dev/mapper/vm1-1 8 3 || tap_bail "first writes"
site_start beta
site_start alpha
out=$(pair_synced vm1 vm1b) && tap_ok "replicating: beta consistent and caught up" ||
	tap_fail "the first sync" "$out"
tap_check "beta took alpha's generation" \
	test "$(status_of vm1b generation)" = "$(status_of vm1 generation)"
gen1=$(status_of vm1 generation)

# ---- 1. unplanned failover: alpha crashes, and returns as beta's replica ----------
declare -A UNSHIPPED BWROTE ADIRTY UNION	# volume:region -> 1
fresh 0 && put /dev/mapper/vm1-0 "$REGION" && fresh 1 && put /dev/mapper/vm1-1 "$REGION" ||
	tap_bail "alpha's writes"
out=$(shipped "$W/alpha.sock" vm1 60) && tap_ok "alpha shipped its writes to beta" ||
	tap_fail "alpha shipping" "$out"
site_stop alpha KILL
for v in 0 0 0 1 1; do
	fresh $v && put /dev/mapper/vm1-$v "$REGION" || tap_bail "alpha's unshipped writes"
	UNSHIPPED[$v:$REGION]=1
done
tap_check "alpha's writes since its repld died are only in its ring (${#UNSHIPPED[@]} regions)" \
	test "$(status_of vm1b applied_seq)" -lt "$(last_seq vm1)" -a \
	"$(status_of vm1 ring_used)" -gt 0
# The crash: alpha's metadata as the disk holds it now, put back once its
# devices are gone (their removal would have saved the ring's regions).
for v in 0 1; do
	dd if="${META[alpha:$v]}" of="$W/crash-$v" bs=1M iflag=direct status=none ||
		tap_bail "a copy of alpha's metadata"
done
dmsetup remove vm1-0 && dmsetup remove vm1-1 || tap_bail "alpha's devices gone"
for v in 0 1; do
	dd if="$W/crash-$v" of="${META[alpha:$v]}" bs=1M oflag=direct conv=fsync status=none ||
		tap_bail "alpha's metadata put back"
done
tap_diag "alpha crashed with ${!UNSHIPPED[*]} (volume:region) never shipped"

out=$(tool beta primary 2>&1) && tap_ok "beta promoted while alpha is down" ||
	tap_fail "beta primary" "$out"
gen2=$(status_of vm1b generation)
tap_check "beta's promotion began a new generation" test "$gen2" != "$gen1"
# beta's ring fills with writes of a region alpha wrote unshipped (r0);
# then every write of beta goes to its bitmap.
r0=$(printf '%s\n' "${!UNSHIPPED[@]}" | sort -n | awk -F: '$1 == 0 { print $2; exit }')
overflows=$(status_of vm1b overflows)
for ((i = 0; i < 64; i++)); do
	(($(status_of vm1b overflows) > overflows)) && break
	put /dev/mapper/vm1b-0 "$r0" || tap_bail "beta's writes"
done
BWROTE[0:$r0]=1
tap_check "beta's ring overflowed after $i writes of region $r0 of volume 0" \
	test "$(status_of vm1b state)" = behind
overflows=$(status_of vm1b overflows)
# Regions alpha wrote unshipped, in an extent of alpha's last writes, and
# never written by alpha.
u1=$(printf '%s\n' "${!UNSHIPPED[@]}" | sort -n | awk -F: '$1 == 1 { print $2; exit }')
u0=$(printf '%s\n' "${!UNSHIPPED[@]}" | sort -n | awk -F: '$1 == 0 { print $2 }' | tail -1)
per=$((1024 / REGION_KB))	# regions a MiB
near=$((u0 / per * per + (u0 + 1) % per))
fresh 0 && o0a=$REGION && fresh 0 && o0b=$REGION && fresh 1 && o1=$REGION ||
	tap_bail "regions for beta"
put /dev/mapper/vm1b-0 "$o0a" "$o0b" "$near" && put /dev/mapper/vm1b-1 "$u1" "$o1" ||
	tap_bail "beta's writes"
for k in 0:$o0a 0:$o0b 0:$near 1:$u1 1:$o1; do
	BWROTE[$k]=1
done
tap_check "each of beta's 5 writes since went to its bitmap" \
	test "$(($(status_of vm1b overflows) - overflows))" -eq 5
tap_check "beta's dirty regions are the ${#BWROTE[@]} regions it wrote" \
	test "$(dirty_total vm1b)" -eq ${#BWROTE[@]}
tap_diag "beta wrote ${!BWROTE[*]} (volume:region)"

# alpha is back: up, its activity log recovers what it never shipped.
klog=$(dmesg | wc -l)
tool alpha up >/dev/null || tap_bail "alpha up"
for v in 0 1; do
	tap_check "alpha's kernel says volume $v was not shut down cleanly" \
		klog_since "$klog" "repl: vm1: volume $v was not shut down cleanly:"
done
for v in 0 1; do
	out=$("$WRITER" ondisk -g vm1 -l "$W/crash-$v" 2>&1) && rc=0 || rc=$?
	tap_diag "volume $v: $(head -1 <<<"$out")"
	tap_check "alpha's volume $v: dirty at the load exactly its AL's extents and bitmap" \
		test "$rc" -eq 0
	while read -r word r; do
		[[ $word == dirty ]] && ADIRTY[$v:$r]=1
	done <<<"$out"
done
own=$(dirty_total vm1)
tap_check "alpha's status counts those ${#ADIRTY[@]} dirty regions ($own)" \
	test "$own" -eq ${#ADIRTY[@]}
tap_check "the regions alpha wrote unshipped are dirty" in_set ADIRTY "${!UNSHIPPED[@]}"
tap_check "not the whole disk" test ${#ADIRTY[@]} -lt $((2 * MB * 1024 / REGION_KB))
for k in "${!ADIRTY[@]}" "${!BWROTE[@]}"; do
	UNION[$k]=1
done
both=$((${#ADIRTY[@]} + ${#BWROTE[@]} - ${#UNION[@]}))
tap_diag "alpha dirty ${#ADIRTY[@]}, beta wrote ${#BWROTE[@]}, both $both, union ${#UNION[@]}"
tap_check "some of beta's regions are alpha's dirty ones, some are not" \
	test $both -gt 0 -a $both -lt ${#BWROTE[@]}

# alpha's VM writes again before the admin makes it a replica: into regions
# already dirty, one in each extent of volume 1 its AL named at the crash.
# Its ring numbers them past the crash's lease bound, far above what beta's
# stream numbers when alpha is promoted back (phase 2): that promotion must
# not leave its hot extents waiting for their release.
mapfile -t stale < <(printf '%s\n' "${!ADIRTY[@]}" |
	awk -F: -v per=$((1024 / REGION_KB)) '$1 == 1 && !seen[int($2 / per)]++ { print $2 }' |
	head -4)
for r in "${stale[@]}"; do
	dd if=/dev/urandom of=/dev/mapper/vm1-1 bs=4k count=1 oflag=direct status=none \
		seek=$((r * REGION_KB / 4)) || tap_bail "alpha's writes after its return"
done
tap_check "alpha's ${#stale[@]} writes after its return, in its ring, are in its AL" \
	test "$(status_of vm1 ring_used)" -gt 0 -a "$(al_field vm1-1 hot)" = "${#stale[@]}/4"
# And a resync of one of its dirty regions begins, in that numbering too.
out=$("$RIO" /dev/dm-repl/vm1 resync 1 "${stale[0]}" 2>&1) || tap_bail "alpha's resync: $out"
tap_check "alpha resyncs region ${stale[0]} of volume 1 (unreleased)" \
	test "$(status_of vm1 resync_regions)" = 1
out=$(tool alpha rejoin 2>&1) && rc=0 || rc=$?
tap_check "rejoin without --discard-my-data is a usage error (exit $rc)" test "$rc" -eq 2
resynced_before=$(status_of vm1b resynced_regions)
blog=$(wc -l <"$W/beta.log")
out=$(tool alpha rejoin --discard-my-data 2>&1) && tap_ok "alpha rejoins: $out" ||
	tap_fail "rejoin" "$out"
tap_check "alpha is inconsistent until the resync ends" \
	test "$(status_of vm1 consistency)" = inconsistent
tap_check "alpha has no generation until it connects" \
	test "$(status_of vm1 generation)" = 0000000000000000
tap_check "alpha says it rejoins" test -n "$(status_of vm1 rejoining)"
tap_check "alpha keeps its dirty regions, to be resent" test "$(dirty_total vm1)" -eq "$own"
site_start alpha
out=$(pair_synced vm1b vm1) && tap_ok "alpha is beta's consistent replica again" ||
	tap_fail "the rejoin" "$out"
tap_check "beta uptodate, alpha consistent" test "$(status_of vm1b state)" = uptodate -a \
	"$(status_of vm1 consistency)" = consistent
tap_check "equal byte for byte on both sites" sites_same
resynced=$(($(status_of vm1b resynced_regions) - resynced_before))
asked=$(tail -n +$((blog + 1)) "$W/beta.log" |
	grep -o 'the replica asks for [0-9]* regions' | awk '{ n += $5 } END { print n + 0 }')
out=$(logged_since "$W/beta.log" "$blog" "regions sent, the last ends it") &&
	sent=$(tail -n +$((blog + 1)) "$W/beta.log" |
		grep -o 'resync of group vm1b: [0-9]* regions sent' | tail -1 | awk '{ print $5 }')
tap_diag "beta: alpha asked for $asked regions, beta resynced $resynced (kernel), sent ${sent:-?} (repld)"
tap_check "alpha asked for its ${#ADIRTY[@]} dirty regions" test "$asked" -eq ${#ADIRTY[@]}
tap_check "beta resynced exactly the union of ${#UNION[@]} regions, not the disk" \
	test "$resynced" -eq ${#UNION[@]}
tap_check "beta's repld says the same" test "${sent:-0}" -eq ${#UNION[@]}
tap_check "alpha has no dirty region left" test "$(dirty_total vm1)" -eq 0
tap_check "alpha took beta's generation" test "$(status_of vm1 generation)" = "$gen2"
tap_check "nothing diverged any more" test "$(link_fact "$W/beta.sock" vm1 diverged)" = -

# ---- 2. planned failover back, then split brain -----------------------------------
f0=$(flushes "${DATA[beta:0]}") && f1=$(flushes "${DATA[beta:1]}") || tap_bail "beta's flush counts"
out=$(tool beta secondary --wait 60 2>&1) && out=$(tool alpha primary 2>&1) &&
	tap_ok "planned failover back to alpha" || tap_fail "failover back" "$out"
tap_check "beta's demotion flushed both its data devices (a secondary recovers no AL)" \
	test "$(flushes "${DATA[beta:0]}")" -gt "$f0" -a "$(flushes "${DATA[beta:1]}")" -gt "$f1"
fallbacks=$(al_field vm1-1 fallbacks)
scribble /dev/mapper/vm1-1 4 30 || tap_bail "alpha's writes"
out=$(pair_synced vm1 vm1b) && tap_ok "beta applies alpha's new generation's stream" ||
	tap_fail "after the failover back" "$out
$(grep -F 'refusing peer' "$W/beta.log" | tail -1)"
tap_check "alpha's writes found room in its AL: none marked dirty (al-full)" \
	test "$(al_field vm1-1 fallbacks)" = "$fallbacks" -a "$(status_of vm1 state)" = uptodate
tap_check "no resync of alpha's from before its rejoin waits for a release" \
	test "$(status_of vm1 resync_regions)" = 0
tap_check "equal after the failover back" sites_same

site_stop alpha KILL
site_stop beta KILL
out=$(tool beta primary 2>&1) && tap_ok "the link is cut and beta is promoted too" ||
	tap_fail "beta primary" "$out"
scribble /dev/mapper/vm1-0 4 40 && scribble /dev/mapper/vm1b-0 4 50 ||
	tap_bail "writes on both sides"
site_start alpha
site_start beta
out=$(log_has "$W/alpha.log" "split brain" 90) && out=$(log_has "$W/beta.log" "split brain" 90) &&
	tap_ok "both sites refuse at connect: split brain" || tap_fail "split brain" "$out"
tap_check "alpha's status says split brain" bash -c \
	"$(declare -f link_fact); REPLTOOL=$REPLTOOL; link_fact $W/alpha.sock vm1 diverged | grep -q split"
tap_check "beta's status says split brain" bash -c \
	"$(declare -f link_fact); REPLTOOL=$REPLTOOL; link_fact $W/beta.sock vm1 diverged | grep -q split"
tap_check "nothing was applied across the split" test "$(status_of vm1 role)" = primary
out=$(tool beta rejoin --discard-my-data 2>&1) &&
	tap_ok "beta gives up its writes: $out" || tap_fail "rejoin on beta" "$out"
out=$(pair_synced vm1 vm1b) && tap_ok "beta is alpha's consistent replica again" ||
	tap_fail "after the split brain" "$out"
tap_check "equal byte for byte after the split brain" sites_same
tap_check "beta's kernel refused no batch" test "$(status_of vm1b rejected)" = 0

# ---- 3. the old primary demoted with --force before its repld runs ----------------
out=$(state_reaches vm1 ring_used 0 60) && tap_ok "alpha's ring all released" ||
	tap_fail "alpha's ring" "$out"
site_stop alpha KILL
scribble /dev/mapper/vm1-0 3 60 && scribble /dev/mapper/vm1-1 2 61 ||
	tap_bail "alpha's last writes"
gen3=$(status_of vm1 generation)
out=$(tool beta primary 2>&1) && tap_ok "beta promoted while alpha's repld is down" ||
	tap_fail "beta primary" "$out"
gen4=$(status_of vm1b generation)
tap_check "beta's promotion began a new generation" test "$gen4" != "$gen3"
overflows=$(status_of vm1b overflows)
scribble /dev/mapper/vm1b-0 3 11 && scribble /dev/mapper/vm1b-1 3 20 ||
	tap_bail "beta's writes"
out=$(tool alpha secondary --force 2>&1) && rc=0 || rc=$?
own=$(dirty_total vm1)
tap_check "alpha demoted with --force: its 5 unshipped writes are its dirty regions ($own)" \
	test "$rc" -eq 0 -a "$own" -eq 5
resynced_before=$(status_of vm1b resynced_regions)
blog=$(wc -l <"$W/beta.log")
site_start alpha
out=$(logged_since "$W/beta.log" "$blog" "holds writes of its own" 90) &&
	tap_ok "beta refuses alpha: it holds writes of its own" ||
	tap_fail "the refusal of a replica with writes of its own" "$out"
tap_check "alpha's status says why it is not replicating" \
	test "$(link_fact "$W/alpha.sock" vm1 diverged)" != -
site_stop alpha KILL
out=$(tool alpha rejoin --discard-my-data 2>&1) && tap_ok "alpha rejoins: $out" ||
	tap_fail "rejoin" "$out"
tap_check "alpha keeps its own writes as dirty regions, to be resent" \
	test "$(dirty_total vm1)" -eq "$own"
site_start alpha
out=$(pair_synced vm1b vm1) && tap_ok "alpha is beta's consistent replica again" ||
	tap_fail "the rejoin" "$out"
tap_check "equal byte for byte" sites_same
resynced=$(($(status_of vm1b resynced_regions) - resynced_before))
tap_diag "beta resent $resynced regions for alpha's $own; its own writes came in its stream"
tap_check "beta resent exactly alpha's 5 regions" test "$resynced" -eq 5
tap_check "beta's writes went in its ring, none to its bitmap" \
	test "$(status_of vm1b overflows)" = "$overflows"
tap_check "alpha took beta's generation" test "$(status_of vm1 generation)" = "$gen4"
tap_check "nothing diverged any more" test "$(link_fact "$W/beta.sock" vm1 diverged)" = -
tap_check "alpha's kernel refused no batch" test "$(status_of vm1 rejected)" = 0
tap_done
