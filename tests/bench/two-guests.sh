#!/usr/bin/env bash
# The two-host benchmarks (part of `make bench`, never of `make check`): two
# guests, each its own qemu and kernel, joined by a virtio link that tc's
# tbf caps in each guest so that the link is the bottleneck. Each guest runs
# tests/bench/two-guests-guest.sh; alpha is the primary and measures, beta
# is the replica. In one run:
#
#   link         the raw link's rate, then the capped link's (TCP, probe)
#   throughput   the same fio jobs as tests/bench/run.sh (tests/bench/lib.sh)
#                on dm-linear, on repl + repld (then the time to catch up
#                and the replica's states), on DRBD 8.4 protocol A, and on
#                DRBD protocol A with on-congestion pull-ahead
#   lag          capture to durable on the replica, record by record, while
#                fio writes at half the capped link's measured rate
#   burst        BURST_MB of random data written at once, then the time
#                until the replica applied it, against bytes / link rate
#   image        the same with a realistic image: ext4 with a tree of the
#                host's /usr on it (mkfs.ext4 -d, made here), written whole
#                onto a repl volume; raw and wire bytes (the compression
#                ratio), the catch-up; the replica's copy checked by e2fsck
#   resync       a volume behind (BENCH2_DIRTY_MB of random data written
#                with no repld, a 4 MiB ring), resynced while fio writes a
#                stream at BENCH2_STREAM_PCT % of the capped link: the
#                resync's rate against the link left by the stream, the
#                stream's lag meanwhile (tests/bench/resync-lib.sh, as the
#                one-guest resync part measures them)
#
# Here, on the host: the results of both guests as a table with the
# ratios against the issue's goals (build/bench/two-guests.txt); the
# sha256 of each replicated disk, taken in each guest, equal; both kernel
# logs free of splats.
#
# usage: tests/bench/two-guests.sh
# Environment: BENCH2_PHASES (which of "throughput lag resync" run, all by
# default; the link's always), BENCH_RUNTIME (seconds of each throughput run, 10),
# BENCH2_RATE (the cap, tc's syntax, 8mbit), BENCH2_VOL_MB (the
# throughput volumes, 32), BENCH2_LAG_S (30), BENCH2_BURST_MB (32),
# BENCH2_TREE (folders copied, "/usr/share/perl /usr/lib/python3"),
# BENCH2_TARGETS ("linear repl drbd-A drbd-pa"), BENCH2_SMP (alpha's vCPUs, 2),
# BENCH2_TBF (tbf's other parameters, "burst 64kb latency 100ms"),
# BENCH2_DELAY (netem's delay on each guest's egress, under the cap: a
# round trip of twice it; none by default), BENCH2_RS_MB (the resync's
# volume, 64), BENCH2_DIRTY_MB (32),
# BENCH2_STREAM_PCT (25),
# BENCH2_PROFILE=1 (repld under perf record during the lag run: its top
# symbols in alpha's output.log as "# perf" lines).
#
# Everything stays in build/bench/two-guests/: out-SITE/ (each guest's
# console, output.log with its "result" lines, dmesg, repld logs,
# lag-samples.txt, resync-samples.txt), vm-SITE.log, the disks, etc/, sync/, sums/.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
TOP=$PWD
VM_REPO=$TOP
source tests/guest/lib-vm.sh
source tests/lib/two-guests.sh

DIR=$TOP/build/bench/two-guests
TG_DIR=$DIR
TG_TIMEOUT=1800			# a guard against a hang: a run takes 6 to 10 minutes
TG_ADDR=([alpha]=10.99.0.1 [beta]=10.99.0.2)
TG_NET=([alpha]=listen [beta]=connect)
VOL_MB=${BENCH2_VOL_MB:-32}
LG_MB=128			# the lag group's volume: the burst, then ext4 and the tree
RS_MB=${BENCH2_RS_MB:-64}
export TEST_PHASES=${BENCH2_PHASES:-throughput lag resync}
export TEST_DIRTY_MB=${BENCH2_DIRTY_MB:-32}
export TEST_STREAM_PCT=${BENCH2_STREAM_PCT:-25}
export TEST_RUNTIME=${BENCH_RUNTIME:-10}
export TEST_RATE=${BENCH2_RATE:-8mbit}
export TEST_LAG_S=${BENCH2_LAG_S:-30}
export TEST_BURST_MB=${BENCH2_BURST_MB:-32}
TREE=${BENCH2_TREE:-/usr/share/perl /usr/lib/python3}
export TEST_TARGETS=${BENCH2_TARGETS-linear repl drbd-A drbd-pa}
export TEST_LINK_S=5
export TEST_TBF=${BENCH2_TBF:-burst 64kb latency 100ms}
export TEST_DELAY=${BENCH2_DELAY:-}
export TEST_PROFILE=${BENCH2_PROFILE:-}
RESULTS=$TOP/build/bench/two-guests.txt

die() {
	echo "two-guests bench: $*" >&2
	exit 1
}

source tests/bench/lib.sh
bench_built || die "not built"
command -v drbdadm >/dev/null || die "no drbdadm (tests/install-deps.sh installs drbd-utils)"
for p in $TEST_PHASES; do
	[[ " throughput lag resync " == *" $p "* ]] || die "BENCH2_PHASES: no phase \"$p\" (throughput, lag, resync)"
done
((TEST_DIRTY_MB < RS_MB)) || die "BENCH2_DIRTY_MB must be below BENCH2_RS_MB"

rm -rf "$DIR"
mkdir -p "$DIR/etc/tp" "$DIR/etc/lg" "$DIR/etc/rs" "$DIR/sync" "$DIR/sums"

# resource GROUP DATA META PORT RING: the group's file, the same on both hosts.
resource() {
	local s
	echo "group $1 {"
	echo "	compression zstd 3;"
	echo "	ring-size $5;"
	# A guest under TCG may be silent longer than the 5 s default.
	echo "	timeout 20s;"
	echo "	tls { ca $DIR/etc/tls/ca.crt; }"
	for s in alpha beta; do
		echo "	site $s {"
		echo "		host $s; address ${TG_ADDR[$s]}:$4;"
		echo "		certificate $DIR/etc/tls/$s.crt; key $DIR/etc/tls/$s.key;"
		echo "		volume 0 { data $2; meta $3; }"
		echo "	}"
	done
	echo "}"
}

tests/lib/mkcerts.sh "$DIR/etc/tls" alpha beta || die "certificates"
# tp's ring is small, so that its runs reach the state the issue is about
# within seconds: the ring full, writes past it in the bitmap (the group
# behind), repld resyncing. lg's holds the burst and the image whole: their
# catch-up is the ring's, not a resync's. rs's is smaller than what is
# written with no repld: the resync's.
resource tp /dev/vda /dev/vdb 7790 16M >"$DIR/etc/tp/tp.conf"
resource lg /dev/vdd /dev/vde 7792 128M >"$DIR/etc/lg/lg.conf"
resource rs /dev/vdf /dev/vdg 7794 4M >"$DIR/etc/rs/rs.conf"
for s in alpha beta; do
	echo "$s ${TG_ADDR[$s]}"
done >"$DIR/etc/hosts"

# The image: the tree in a file system a little larger than it.
mkdir -p "$DIR/tree"
for d in $TREE; do
	[[ -d $d ]] && tar -C / -cf - "${d#/}" | tar -C "$DIR/tree" -xf -
done
tree_kb=$(du -sk "$DIR/tree" | cut -f1)
tree_files=$(find "$DIR/tree" -type f | wc -l)
img_mb=$((tree_kb * 12 / 10 / 1024 + 8))
((img_mb < LG_MB)) || die "BENCH2_TREE: $((tree_kb / 1024)) MiB, more than the $LG_MB MiB volume holds"
mkfs.ext4 -q -F -d "$DIR/tree" -E nodiscard -L bench2 "$DIR/image" "${img_mb}M" >/dev/null ||
	die "mkfs.ext4 -d"
rm -rf "$DIR/tree"

# The data disks are written whole here, zeros on both hosts: the same
# content on both (each group starts in sync, as DRBD's --clear-bitmap
# says), and no run pays for the host file's first allocation.
for s in alpha beta; do
	dd if=/dev/zero of="$DIR/$s-vda" bs=1M count="$VOL_MB" status=none
	dd if=/dev/zero of="$DIR/$s-vdc" bs=1M count=$((VOL_MB + 4)) status=none
	dd if=/dev/zero of="$DIR/$s-vdd" bs=1M count="$LG_MB" status=none
	dd if=/dev/zero of="$DIR/$s-vdf" bs=1M count="$RS_MB" status=none
	truncate -s 8M "$DIR/$s-vdb" "$DIR/$s-vde" "$DIR/$s-vdg"
done

disks() {
	local d
	for d in vda vdb vdc vdd vde vdf vdg; do
		echo --disk
		echo "$DIR/$1-$d"
	done
}

trap tg_stop EXIT
trap 'exit 130' INT TERM
echo "# host before: $(uptime)" >"$DIR/host.txt"
start=$SECONDS
mapfile -t da < <(disks alpha)
mapfile -t db < <(disks beta)
tg_start alpha --smp "${BENCH2_SMP:-2}" --mem 1536 "${da[@]}" --disk "$DIR/image" \
	-- bash tests/bench/two-guests-guest.sh alpha "$DIR"
tg_start beta --smp 1 --mem 1024 "${db[@]}" \
	-- bash tests/bench/two-guests-guest.sh beta "$DIR"
tg_wait || die "wait for the guests failed"
wall=$((SECONDS - start))
echo "# host after: $(uptime)" >>"$DIR/host.txt"

failed=0
for s in alpha beta; do
	splats=$(tg_scan "$s")
	if [[ -n $splats ]]; then
		echo "two-guests bench: $s's kernel log:" >&2
		printf '%s\n' "$splats" | head -20 >&2
		failed=1
	fi
	if ((TG_STATUS[$s] != 0)); then
		echo "two-guests bench: $s's guest failed, vm.sh status ${TG_STATUS[$s]}:" >&2
		cat "$DIR/vm-$s.log" >&2
		tail -15 "$DIR/out-$s/output.log" >&2
		failed=1
	fi
done
groups=()
[[ " $TEST_PHASES " != *" lag "* ]] || groups+=(lg)
[[ " $TEST_PHASES " != *" resync "* ]] || groups+=(rs)
[[ " $TEST_PHASES " != *" throughput "* || " $TEST_TARGETS " != *" repl "* ]] || groups+=(tp)
for g in "${groups[@]}"; do
	if ! cmp -s "$DIR/sums/alpha.$g" "$DIR/sums/beta.$g" || [[ ! -s $DIR/sums/alpha.$g ]]; then
		echo "two-guests bench: group $g: the replica's disk differs from the primary's" >&2
		failed=1
	fi
done

# ---- the report ------------------------------------------------------------------
{
	grep -h '^result ' "$DIR/out-alpha/output.log" | sed 's/^result /alpha /'
	grep -h '^result ' "$DIR/out-beta/output.log" | sed 's/^result /beta /'
} >"$DIR/results.raw"

awk -v tree="$TREE" -v tree_kb="$tree_kb" -v files="$tree_files" '
function mb(x) { return x / 1e6 }
$2 == "link" { bytes[$3] = $4; secs[$3] = $5 }
$2 == "replica-fsck" { fsck = $4 }
$2 == "link-cap" { cap = $3; for (i = 4; i <= NF; i++) cap = cap " " $i }
$2 == "link-delay" { delay = $3 }
$2 == "tput" { iops[$3, $4] = $5; mbs[$3, $4] = $6; jobs[$4] = 1; t[$3] = 1 }
$2 == "state" || $2 == "replica" || $2 == "replica-after" || $2 == "catchup" {
	states[++nstates] = $1 ": " substr($0, index($0, $2))
}
$2 == "lag" { lag = $0 }
$2 == "burst" { for (i = 3; i < NF; i += 2) burst[$i] = $(i + 1) }
$2 == "image" { for (i = 3; i < NF; i += 2) im[$i] = $(i + 1) }
$2 == "resync-report" { line = $0; sub(/^[^ ]+ [^ ]+ /, "", line); rs[++nrs] = line }
END {
	rate = secs["capped"] ? bytes["capped"] / secs["capped"] : 0
	printf "link: raw %.1f MB/s at the start, %.1f at the end; capped by tbf (%s): %.2f MB/s, the link rate below\n",
		secs["raw"] ? mb(bytes["raw"] / secs["raw"]) : 0,
		secs["raw-end"] ? mb(bytes["raw-end"] / secs["raw-end"]) : 0, cap, mb(rate)
	if (delay != "")
		printf "netem delay %s on each end (a round trip of twice it), under the cap\n", delay
	if (length(jobs))
		printf "\n%-19s %-9s %10s %10s\n", "job", "target", "IOPS", "MB/s"
	n = split("linear repl drbd-A drbd-pa", order, " ")
	for (j in jobs) for (k = 1; k <= n; k++) if ((order[k], j) in iops)
		printf "%-19s %-9s %10d %10.1f\n", j, order[k], iops[order[k], j], mbs[order[k], j]
	j4 = "randwrite-4k-qd32"; j1 = "write-1m-qd4"
	if (length(jobs))
		printf "\n"
	if (iops["drbd-A", j4])
		printf "repl / DRBD-A, 4 KiB random:       %6.2f (goal >= 10)\n", iops["repl", j4] / iops["drbd-A", j4]
	if (iops["drbd-pa", j1])
		printf "repl / DRBD pull-ahead, 1 MiB seq:  %6.2f (goal >= 1.5)\n", iops["repl", j1] / iops["drbd-pa", j1]
	if (iops["drbd-A", j1])
		printf "repl / DRBD-A, 1 MiB seq:           %6.2f\n", iops["repl", j1] / iops["drbd-A", j1]
	if (iops["drbd-pa", j4])
		printf "repl / DRBD pull-ahead, 4 KiB:      %6.2f\n", iops["repl", j4] / iops["drbd-pa", j4]
	if (iops["linear", j4])
		printf "repl / dm-linear, 4 KiB, 1 MiB:     %6.2f %6.2f\n", iops["repl", j4] / iops["linear", j4],
			iops["linear", j1] ? iops["repl", j1] / iops["linear", j1] : 0
	printf "\nstates at the end of each run (and after the catch-up):\n"
	for (i = 1; i <= nstates; i++) printf "  %s\n", states[i]
	if (lag != "") {
		split(lag, f, " ")
		printf "\nlag, capture to durable on the replica, at %.2f MB/s (%.0f%% of the link): %s\n",
			mb(f[4]), rate ? 100 * f[4] / rate : 0, substr(lag, index(lag, "records"))
		for (i = 1; i <= length(f); i++) if (f[i] == "p99") p99 = f[i + 1]
		printf "lag p99 %.3f s (goal < 1 s)\n", p99
	}
	if (burst["bytes"] && rate) {
		ideal = burst["bytes"] / rate
		printf "\nburst of %.1f MB: written in %.2f s, applied %.2f s later; bytes / link rate = %.2f s\n",
			mb(burst["bytes"]), burst["write_s"], burst["drain_s"], ideal
		printf "catch-up from the end of the burst: %.2f x bytes / link rate; from its start %.2f x (goal <= 1.2); wire/raw %.3f\n",
			burst["drain_s"] / ideal, (burst["write_s"] + burst["drain_s"]) / ideal,
			burst["raw"] ? burst["wire"] / burst["raw"] : 0
		if (burst["overflows"])
			printf "  (NOT a ring catch-up: %d writes overflowed into the bitmap)\n", burst["overflows"]
	}
	if (im["raw"] && rate) {
		ideal = im["bytes"] / rate
		printf "\next4 image of %.1f MB with %s (%.1f MB in %d files), written in %.2f s, applied %.2f s later\n",
			mb(im["bytes"]), tree, tree_kb * 1024 / 1e6, files, im["write_s"], im["drain_s"]
		printf "raw %.1f MB, wire %.1f MB: compression %.2f; bytes / link rate = %.1f s\n",
			mb(im["raw"]), mb(im["wire"]), im["raw"] / im["wire"], ideal
		printf "catch-up from the end of the write: %.2f x bytes / link rate; from its start %.2f x\n",
			im["drain_s"] / ideal, (im["write_s"] + im["drain_s"]) / ideal
		printf "the replica'"'"'s copy: e2fsck -fn %s\n", fsck
		if (im["overflows"])
			printf "  (NOT a ring catch-up: %d writes overflowed into the bitmap)\n", im["overflows"]
	}
	if (nrs) {
		printf "\nresync over the capped link, the link rate as above:\n"
		for (i = 1; i <= nrs; i++) printf "  %s\n", rs[i]
	}
}' "$DIR/results.raw" >"$RESULTS.tmp"
{
	cat "$RESULTS.tmp"
	echo
	cat "$DIR/host.txt"
	echo "(kernel $(tests/guest/vm.sh --print-kver), $(date -u +%F), commit $(git log -1 --format=%h 2>/dev/null)," \
		"${wall} s for both guests; sha256 of the replicas: $( ((failed)) && echo "see errors" || echo equal))"
} | tee "$RESULTS"
rm -f "$RESULTS.tmp"
exit $failed
