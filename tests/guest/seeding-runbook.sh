#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The seeding runbook (Documentation/admin-guide.md, "Seeding a replica from
# media or a backup") run as written, its three-command form over two
# replds: what an admin types on A and on B, nothing of the tests' own.
#
# Two sites in this guest, each with its own repld (PSK, each in its own
# network namespace, joined by veth: lib.sh), one volume of 32 MiB in 512
# regions of 64 KiB. alpha's volume holds random bytes; beta's is a copy of it
# made by other means (dd), with one sector changed in 1% of its regions,
# picked at random. Step 1 as written: `create-md vm1 --role primary` on
# alpha, `create-md vm1 --role secondary --seeded` on beta, `up` and repld on
# both. Step 2, each pass: `verify vm1` on alpha (FIRST taken from the line it
# prints), `verify --results --since FIRST vm1` on beta once beta's
# applied_seq is LAST, `verify --resend` on alpha with the V@S of every line
# listed; passes until none is listed and beta's status says consistent (step
# 3). alpha writes while the first pass runs: writes in flight are no
# difference.
#
# Checked: each command's exit status and the output the runbook quotes;
# the regions listed are exactly the changed ones; only they were resent
# (alpha's resynced_regions, the bytes beta applied for the resend, the
# bytes alpha's repld shipped); beta is consistent, no longer seeded (its
# status, the kernel log) and equal to alpha byte for byte (sha256).
#
# One kernel holds both sites: beta's group is vm1b in this kernel (on a
# host of its own it is vm1, the resource's name, as in the runbook).
#
# TEST_SEED in the environment replays the choice of the changed regions.
set -uo pipefail
# shellcheck source=../lib/tap.sh
source "$(dirname "$0")/../lib/tap.sh"
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

MB=32
REGION_KB=64
REGIONS=$((MB * 1024 / REGION_KB))
CHANGED=$((REGIONS / 100))		# 1% of the regions
PASSES=4				# the most the runbook should need here
SEED=${TEST_SEED:-$(date +%s)}
W=$(mktemp -d /tmp/seeding-runbook.XXXXXX)
A_IP=10.77.8.1			# each site in its namespace (sites_network)
B_IP=10.77.8.2
B=vm1b					# beta's group in this kernel
declare -A DATA META
# shellcheck disable=SC2034 # lib.sh's sites_conf reads it
SITES_VOLUMES=0

trap sites_netns_cleanup EXIT
sites_network || tap_bail "two network namespaces joined by veth"

# on SITE CMD [ARGS...]: repltool CMD [ARGS...] as the admin of SITE types
# it, told where that site's resource file is.
on() {
	local site=$1 cmd=$2
	shift 2
	"$REPLTOOL" "$cmd" "$@" --config-dir "$W/conf" --site "$site"
}

# changed REGION: REGION is one of the seed's changed regions.
changed() {
	grep -qx "$1" <<<"$CHANGED_LIST"
}

# writer: 4 KiB writes of alpha, each in a region the seed did not change,
# until $W/writer.stop; their number goes to $W/writer.n.
writer() {
	local n=0 r
	while [[ ! -e $W/writer.stop ]]; do
		r=$((RANDOM % REGIONS))
		changed "$r" && continue
		dd if=/dev/urandom of=/dev/mapper/vm1-0 bs=4k count=1 oflag=direct conv=notrunc \
			status=none seek=$((r * REGION_KB / 4 + RANDOM % (REGION_KB / 4))) || return 1
		n=$((n + 1))
	done
	echo "$n" >"$W/writer.n"
}

# seeded_left: the regions beta's status says are left to verify, or nothing.
seeded_left() {
	"$REPLTOOL" status "$B" | sed -n 's/^seeded .*not yet verified: \([0-9]*\) regions left$/\1/p'
}

# connected: beta's link (its repld's word) is connected within 60 s.
connected() {
	local i
	for ((i = 0; i < 600; i++)); do
		[[ $(link_fact "$W/beta.sock" vm1 link) == connected ]] && return 0
		sleep 0.1
	done
	echo "beta's link is $(link_fact "$W/beta.sock" vm1 link) after 60 s"
	return 1
}

# link_raw: the bytes alpha's repld shipped to beta so far (its status).
link_raw() {
	link_fact "$W/alpha.sock" vm1 raw_bytes
}

tap_strict
klog=$(dmesg | wc -l)	# the kernel log of this test: past the earlier tests' in this guest
tap_diag "seed $SEED (set TEST_SEED to replay)"
RANDOM=$SEED
DATA[alpha:0]=$(loop_disk $MB) && DATA[beta:0]=$(loop_disk $MB) &&
	META[alpha:0]=$(loop_disk 4) && META[beta:0]=$(loop_disk 4) || tap_bail "the disks"
dd if=/dev/urandom of="${DATA[alpha:0]}" bs=1M count=$MB oflag=direct status=none &&
	dd if="${DATA[alpha:0]}" of="${DATA[beta:0]}" bs=1M iflag=direct oflag=direct status=none ||
	tap_bail "alpha's data and beta's copy"
declare -A PICKED		# region -> 1: the regions the seed changes
for ((i = 0; i < CHANGED; i++)); do
	r=$((RANDOM % REGIONS))
	[[ -n ${PICKED[$r]:-} ]] && i=$((i - 1)) || PICKED[$r]=1
done
CHANGED_LIST=$(printf '%s\n' "${!PICKED[@]}" | sort -n)
for r in $CHANGED_LIST; do
	dd if=/dev/urandom of="${DATA[beta:0]}" bs=512 count=1 conv=notrunc oflag=direct \
		seek=$((r * REGION_KB * 2 + RANDOM % (REGION_KB * 2))) status=none ||
		tap_bail "a change in beta's copy"
done
tap_diag "regions changed in beta's copy: ${CHANGED_LIST//$'\n'/ }"
openssl rand -hex 32 >"$W/psk" && chmod 600 "$W/psk" && sites_conf "$W/conf" "$W/psk" ||
	tap_bail "the resource file"

# ---- 1. metadata on both sites ----------------------------------------------------
out=$(on alpha create-md vm1 --role primary 2>&1) && rc=0 || rc=$?
tap_check "A\$ repltool create-md vm1 --role primary (exit $rc)" test "$rc" = 0
tap_diag "$out"
out=$(on beta create-md vm1 --role secondary --seeded 2>&1) && rc=0 || rc=$?
tap_check "B\$ repltool create-md vm1 --role secondary --seeded (exit $rc)" test "$rc" = 0
tap_diag "$out"
tap_setup "A\$ repltool up vm1" on alpha up vm1
tap_setup "B\$ repltool up vm1" on beta up vm1
site_start beta
site_start alpha
tap_check "B is inconsistent" test "$(status_of $B consistency)" = inconsistent
tap_check "B's status says seeded, every region left ($(seeded_left))" \
	test "$(seeded_left)" = $REGIONS
out=$(on beta primary vm1 2>&1) && rc=0 || rc=$?
tap_diag "$out"
tap_check "B refuses promotion without --force (exit $rc)" test "$rc" -ne 0
out=$(connected) && tap_ok "the replds connect" || tap_bail "the replds: $out"

# ---- 2 and 3. passes until none is listed and B is consistent --------------------
declare -A LISTED		# V@S -> 1: every region a pass listed
passes=0
resent=0
raw0=$(link_raw)
while ((passes < PASSES)); do
	passes=$((passes + 1))
	if ((passes == 1)); then
		rm -f "$W/writer.stop" && writer &
		wpid=$!
	fi
	out=$("$REPLTOOL" verify vm1 2>&1) && rc=0 || rc=$?
	tap_diag "A\$ repltool verify vm1: $out"
	if ((passes == 1)); then
		touch "$W/writer.stop" && wait "$wpid" || tap_bail "alpha's writes during the pass"
		tap_diag "alpha wrote $(cat "$W/writer.n") times 4 KiB during the pass"
	fi
	first=$(sed -n 's/.* seq \([0-9]*\) to \([0-9]*\).*/\1/p' <<<"$out")
	last=$(sed -n 's/.* seq \([0-9]*\) to \([0-9]*\).*/\2/p' <<<"$out")
	tap_check "pass $passes: A's verify exits 0, prints \"seq $first to $last\"" \
		test "$rc" = 0 -a -n "$first" -a -n "$last"
	out=$(applied_reaches "$B" "$last" 120) || tap_bail "pass $passes: B did not apply the pass: $out"
	out=$("$REPLTOOL" verify --results --since "$first" $B 2>&1) && rc=0 || rc=$?
	tap_diag "B\$ repltool verify --results --since $first vm1: $out"
	tap_check "pass $passes: B's --results says \"last VERIFY seq $last\"" \
		grep -q "; last VERIFY seq $last\$" <<<"$out"
	list=$(sed -n 's/^mismatch volume \([0-9]*\) sector \([0-9]*\) seq [0-9]*$/\1@\2/p' <<<"$out" |
		paste -sd,)
	n=$(grep -c '^mismatch' <<<"$out" || true)
	if [[ -z $list ]]; then
		tap_check "pass $passes: --results lists none, exit 0 (exit $rc)" test "$rc" = 0
		state=$(status_of $B consistency)
		tap_diag "pass $passes: B is $state, seeded regions left: $(seeded_left)"
		[[ $state == consistent ]] && break
		continue
	fi
	tap_check "pass $passes: --results lists $n as \"mismatch volume V sector S ...\", exit 3" \
		test "$rc" = 3 -a "$(wc -w <<<"${list//,/ }")" = "$n"
	for vs in ${list//,/ }; do
		LISTED[$vs]=1
	done
	if ((passes == 1)); then
		# Every other region was found equal, or not compared (written
		# during its read): those are left for the next pass.
		missed=$(sed -n 's/.* compared, \([0-9]*\) not compared, .*/\1/p' <<<"$out")
		tap_check "B's status: $n listed + ${missed:-?} not compared regions left" \
			test "$(seeded_left)" = $((n + missed))
	fi
	bytes0=$(status_of $B bytes)
	out=$("$REPLTOOL" verify --resend "$list" vm1 2>&1) && rc=0 || rc=$?
	tap_diag "A\$ repltool verify --resend $list vm1: $out"
	[[ $rc == 0 && $out == "resend vm1: $n regions put in the ring, last seq "* ]] &&
		tap_ok "pass $passes: A's --resend exits 0, the $n regions in the ring" ||
		tap_fail "pass $passes: A's --resend (exit $rc)" "$out"
	resent=$((resent + n))
	out=$(applied_reaches "$B" "${out##* }" 120) || tap_bail "pass $passes: B did not apply the resend: $out"
	applied=$(($(status_of $B bytes) - bytes0))
	tap_check "pass $passes: B applied $applied bytes for the $n regions resent" \
		test "$applied" = $((n * REGION_KB * 1024))
done
raw=$(($(link_raw) - raw0))

# ---- what was done -------------------------------------------------------------------
want=$(for r in $CHANGED_LIST; do echo "0@$((r * REGION_KB * 2))"; done | sort)
got=$(printf '%s\n' "${!LISTED[@]}" | sort)
tap_check "the passes listed exactly the $CHANGED changed regions, no other" \
	test "$got" = "$want"
tap_check "B's status says consistent after $passes passes" \
	test "$(status_of $B consistency)" = consistent
tap_check "B's status no longer says seeded" test -z "$(seeded_left)"
tap_check "the kernel log says B's seeding ended" bash -c "dmesg | tail -n +$((klog + 1)) | grep -q \
	'$B: seeded replica: every region verified equal to the primary or resent: consistent'"
tap_check "no mismatch of the seed logged as corruption" bash -c \
	"! dmesg | tail -n +$((klog + 1)) | grep -q '$B: verify: .*corruption'"
tap_check "A resynced exactly the $CHANGED changed regions ($(status_of vm1 resynced_regions))" \
	test "$(status_of vm1 resynced_regions)" = "$CHANGED" -a "$resent" = "$CHANGED"
# The link carried the resent regions, alpha's writes, and for each VERIFY
# record a hash and headers (under 256 bytes), never the disk.
wrote=$(($(cat "$W/writer.n") * 4096))
sent=$((CHANGED * REGION_KB * 1024))
tap_diag "alpha's repld shipped $raw bytes for $passes passes: $sent resent," \
	"$wrote of alpha's writes, the rest hashes and headers ($((MB << 20)) bytes of disk)"
tap_check "the link carried the differences and the hashes, not the disk" \
	test "$raw" -gt $sent -a $((raw - sent - wrote)) -lt $((passes * REGIONS * 256))
out=$(pair_synced vm1 $B) || tap_bail "the pair did not come to rest: $out"
echo 1 >/proc/sys/vm/drop_caches
a=$(data_sum "${DATA[alpha:0]}") && b=$(data_sum "${DATA[beta:0]}") ||
	tap_bail "the sha256 of the disks"
tap_check "B equals A byte for byte (sha256 ${a:0:16}...)" test "$a" = "$b"
tap_diag "$SECONDS s"
tap_done
