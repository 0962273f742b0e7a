#!/usr/bin/env bash
# Runs in the guest (tests/bench/resync.sh): a resync and a seeding over
# repld, between two sites in this guest (tests/guest/lib.sh: the network
# namespaces dmr-alpha and dmr-beta joined by veth, a repld in each, TLS 1.3
# with a PSK), the link capped by tc tbf on both ends.
#
#   link     probe send|sink (tools/bench-two-guests) alpha to beta, for
#            TEST_LINK_S seconds, uncapped, then capped: the capped figure
#            is the link rate of every ratio
#   resync   alpha's vm1 (one volume, a small ring) falls behind with
#            TEST_DIRTY_MB of random data written while no repld runs; then
#            repld resyncs it to beta's vm1b while fio writes a stream at
#            TEST_STREAM_PCT % of the link rate, from the link's connection
#            on. Every 0.2 s (one `repltool status --interval 200ms`),
#            repld's lag_seconds (the stream's lag) and the kernel's counts. The
#            resync rate is the bytes of the regions the kernel resynced
#            over the time from the link's connection to uptodate.
#   seeding  a verify pass of the equal pair (the hashing rate), then 1 % of
#            the replica's regions changed behind its back (one sector in
#            each) and `repltool verify --replica vm1b --fix`: the bytes
#            compared, differing and sent (the fix's, and the link's raw
#            bytes, which carry the hashes too); openssl speed's SHA-256 on
#            one of this guest's cores beside it.
#
# It fails when the replica's sha256 differs from the primary's after the
# resync or after the seeding, or when a step does not end. Its report is
# the "report" lines on stdout; the 0.2 s samples go to VM_OUT/resync-samples.txt
# (seconds, repld's lag_seconds, link state and resync budget in bytes/s,
# the kernel's state, dirty regions, resynced regions, overflows and
# next_seq, repld's acked_seq).
set -uo pipefail
source "$(dirname "$0")/../guest/lib.sh"
source "$(dirname "$0")/resync-lib.sh"

RATE=${TEST_RESYNC_RATE:-8mbit}
TBF=${TEST_RESYNC_TBF:-burst 64kb latency 100ms}
MB=${TEST_RESYNC_VOL_MB:-64}
DIRTY_MB=${TEST_DIRTY_MB:-32}
STREAM_PCT=${TEST_STREAM_PCT:-25}
LINK_S=${TEST_LINK_S:-8}
RING_MB=4
PROBE=$TOP/tools/bench-two-guests/probe
SINK_PORT=7795
W=$(mktemp -d /tmp/resync-bench.XXXXXX)
SAMPLES=${VM_OUT:-$W}/resync-samples.txt
# shellcheck disable=SC2034 # lib.sh's sites_* read them
A_IP=10.77.1.1 B_IP=10.77.1.2 SITES_VOLUMES=0
# shellcheck disable=SC2034 # META: site_volume's and sites_conf's
declare -A DATA META

# The stream's fio and the sampler first: sites_cleanup waits for every job.
cleanup() {
	resync_cleanup
	sites_netns_cleanup
}
trap cleanup EXIT

die() {
	echo "resync bench: $*" >&2
	exit 1
}

at() {
	echo "# $SECONDS s: $*"
}

report() {
	echo "report $*"
}

now() {
	date +%s.%N
}

# link_rate: probe send alpha to beta for LINK_S seconds; "BYTES SECONDS"
# (the seconds until beta's sink read it all).
link_rate() {
	local sink
	ip netns exec dmr-beta "$PROBE" sink "$SINK_PORT" >"$W/sink.out" &
	sink=$!
	log_has "$W/sink.out" listening 20 >&2 || return 1
	ip netns exec dmr-alpha "$PROBE" send "$B_IP" "$SINK_PORT" "$LINK_S" >"$W/send.out" &&
		wait "$sink" || return 1
	awk '{ print $2, $4 }' "$W/send.out"
}

# sums_equal WHAT: the replica's data, read past any cache, is the primary's.
sums_equal() {
	local a b
	echo 1 >/proc/sys/vm/drop_caches
	a=$(data_sum "${DATA[alpha:0]}") b=$(data_sum "${DATA[beta:0]}")
	[[ $a == "$b" ]] || die "$1: the replica's sha256 $b is not the primary's $a"
	echo "# $1: the replica's sha256 is the primary's ($a)"
}

# ---- the sites and the link --------------------------------------------------------
modprobe sch_tbf
sites_network || die "the two namespaces"
openssl rand -hex 32 >"$W/psk" && chmod 600 "$W/psk"
site_volume alpha vm1 primary 0 2 ring_mb "$RING_MB" >/dev/null || die "alpha's volume"
site_volume beta vm1b secondary 0 2 source vm1 >/dev/null || die "beta's volume"
sites_conf "$W/conf" "$W/psk"
# A guest under TCG on a busy host may be silent longer than 3 s.
sed -i 's/timeout 3s;/timeout 20s;/' "$W/conf/vm1.conf"
grep -q 'timeout 20s;' "$W/conf/vm1.conf" || die "no timeout of 3 s in sites_conf's file to lengthen"
region=$(($(status_of vm1 region_sectors) * 512))
regions=$(status_of vm1 nr_regions)
echo "# $(nproc) CPUs, volumes of $MB MiB ($regions regions of $region bytes), ring $RING_MB MiB"

at "link"
read -r raw_b raw_s < <(link_rate) || die "the uncapped link's rate"
# shellcheck disable=SC2086 # TBF is a list of tc's words
ip netns exec dmr-alpha tc qdisc add dev va root tbf rate "$RATE" $TBF || die "tc tbf on va"
# shellcheck disable=SC2086
ip netns exec dmr-beta tc qdisc add dev vb root tbf rate "$RATE" $TBF || die "tc tbf on vb"
read -r cap_b cap_s < <(link_rate) || die "the capped link's rate"
link=$(awk -v b="$cap_b" -v s="$cap_s" 'BEGIN { printf "%d", b / s }')
report "link: veth between two network namespaces, tbf rate $RATE $TBF on both ends;" \
	"uncapped $(mbs "$raw_b" "$raw_s") MB/s, capped $(mbs "$cap_b" "$cap_s") MB/s (the link rate)"

# ---- the resync while a stream writes ------------------------------------------------
at "behind: $DIRTY_MB MiB with no repld"
dd if=/dev/urandom of=/dev/mapper/vm1-0 bs=1M count="$DIRTY_MB" oflag=direct status=none ||
	die "the writes that put vm1 behind"
[[ $(status_of vm1 state) == behind ]] || die "vm1 is $(status_of vm1 state), not behind"
site_start beta
site_listening beta || die "beta's repld does not listen"
stream=$((link * STREAM_PCT / 100))
at "resync of $(status_of vm1 dirty_regions) dirty regions, the stream at $stream bytes/s once connected"
resync_under_stream vm1 "$W/alpha.sock" /dev/mapper/vm1-0 "$stream" "${TEST_RESYNC_TIMEOUT:-600}" \
	"$SAMPLES" site_start alpha || die "the resync"
out=$(shipped "$W/alpha.sock" vm1 120) || die "after the resync: $out"
out=$(quiesce vm1 vm1b 120) || die "after the resync: $out"
sums_equal "after the resync"
resync_report "$link" "$DIRTY_MB" "$RING_MB" "$MB" "$STREAM_PCT" | sed 's/^/report /'
report "the replica's sha256 equals the primary's after the resync"

# ---- seeding ----------------------------------------------------------------------------
# verify_pass OUT [OPTS...]: repltool verify of vm1 against vm1b, repld
# shipping its records; prints "SECONDS CPU-SECONDS EXIT".
verify_pass() {
	local out=$1 t rc b0 b1
	shift
	b0=$(cpu_ticks)
	t=$(now)
	"$REPLTOOL" verify --replica vm1b "$@" vm1 >"$out" 2>&1
	rc=$?
	b1=$(cpu_ticks)
	awk -v a="$t" -v b="$(now)" -v c="$((b1 - b0))" -v hz="$(getconf CLK_TCK)" -v rc="$rc" \
		'BEGIN { printf "%.2f %.2f %d\n", b - a, c / hz, rc }'
}

# compared OUT: the bytes compared on the replica ("(N bytes) compared on").
compared() {
	sed -n 's/.*regions (\([0-9]*\) bytes) compared on.*/\1/p' "$1"
}

at "seeding"
read -r vs vcpu rc < <(verify_pass "$W/equal.out")
[[ $rc == 0 ]] || die "a verify of the equal pair exits $rc: $(cat "$W/equal.out")"
hashed=$(compared "$W/equal.out")
[[ $hashed == $((regions * region)) ]] || die "the equal pair: $hashed bytes compared: $(cat "$W/equal.out")"
ossl=$(openssl speed -seconds 3 -bytes 65536 -evp sha256 2>/dev/null |
	awk '/^sha256/ { sub(/k$/, "", $2); printf "%.1f", $2 * 1000 / 1e6 }')

n=$((regions / 100))
changed=$(shuf -i 0-$((regions - 1)) -n "$n" | sort -n)
for r in $changed; do
	dd if=/dev/urandom of="${DATA[beta:0]}" bs=512 count=1 oflag=direct conv=notrunc status=none \
		seek=$((r * region / 512 + RANDOM % (region / 512))) || die "a change on the replica"
done
raw0=$(link_fact "$W/alpha.sock" vm1 raw_bytes) wire0=$(link_fact "$W/alpha.sock" vm1 wire_bytes)
read -r fs _ rc < <(verify_pass "$W/seed.out" --fix)
[[ $rc == 0 ]] || die "verify --fix exits $rc: $(cat "$W/seed.out")"
out=$(shipped "$W/alpha.sock" vm1 120) || die "after the seeding: $out"
raw=$(($(link_fact "$W/alpha.sock" vm1 raw_bytes) - raw0))
wire=$(($(link_fact "$W/alpha.sock" vm1 wire_bytes) - wire0))
found=$(grep -c '^mismatch volume' "$W/seed.out")
resent=$(sed -n 's/^fix vm1: \([0-9]*\) regions resent, .*/\1/p' "$W/seed.out")
sent=$(sed -n 's/^fix vm1: [0-9]* regions resent, \([0-9]*\) bytes applied.*/\1/p' "$W/seed.out")
[[ $found == "$n" ]] || die "seeding: $found regions found differing, $n changed: $(cat "$W/seed.out")"
out=$(quiesce vm1 vm1b 120) || die "after the seeding: $out"
sums_equal "after the seeding"
differ=$((n * region))
report "seeding: $n of $regions regions ($(awk -v a="$n" -v b="$regions" 'BEGIN { printf "%.1f", 100 * a / b }')%) changed on the replica, 512 bytes in each:" \
	"$(compared "$W/seed.out") bytes compared, $differ bytes differing (regions), $resent regions" \
	"resent by --fix, $sent bytes of data applied (a region of zeros goes with none): $(awk -v a="$sent" -v b="$differ" 'BEGIN { printf "%.2f", a / b }')x (goal 1.0x);" \
	"the link carried $raw raw bytes ($wire on the wire, with the hashes):" \
	"$(awk -v a="$raw" -v b="$differ" 'BEGIN { printf "%.2f", a / b }')x the differing bytes"
report "hashing: a verify pass of the equal pair, $hashed bytes hashed on each side (primary and" \
	"replica, both in this guest of $(nproc) CPUs), took $vs s: $(mbs "$hashed" "$vs") MB/s end to end," \
	"with the CPUs busy $vcpu CPU-s: $(mbs $((hashed * 2)) "$vcpu") MB/s hashed per busy CPU-s" \
	"(an upper bound: repld, TLS and the copies are in it); the --fix pass took $fs s"
report "openssl speed -evp sha256 -bytes 65536 -seconds 3, one core of this guest: ${ossl:-?} MB/s;" \
	"the pass end to end: $(awk -v a="$(mbs "$hashed" "$vs")" -v b="${ossl:-0}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')x of it"
at "done"
