#!/usr/bin/env bash
# make bench: three parts, each its own ratios (absolute numbers under TCG
# mean little; ratios within one run do); Documentation/benchmarks.md
# records them.
#
#   shipper     repld's primary pipeline on the host (tools/bench-shipper)
#   guest       repl against dm-linear on the same devices, in one guest run:
#               build/bench/results.txt
#   two-guests  two guests over a capped link: repl + repld against DRBD 8.4
#               and dm-linear, the lag, the catch-up, the compression ratio,
#               a resync's rate and the stream's lag meanwhile
#               (tests/bench/two-guests.sh): build/bench/two-guests.txt
#   resync      two sites in one guest over a capped veth link: a resync's
#               rate against the link left by a stream, the stream's lag
#               meanwhile, seeding's bytes sent and hashing rate
#               (tests/bench/resync.sh): build/bench/resync.txt
#
# BENCH_PARTS (default "shipper guest two-guests resync") runs only some of
# them. BENCH_BASELINE=REV adds to the guest part the target "base": repl as
# commit REV builds it, swapped in round by round in the same boot, for an
# A/B of a change (BENCH_TARGETS default then "linear base repl").
# BENCH_JOB, a pattern, runs only the guest part's jobs whose JOB@DEVICE
# name matches it (randwrite-4k-qd32@ram0, say): more rounds of one figure
# in the same time.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=build/bench
mkdir -p "$out"
parts=" ${BENCH_PARTS:-shipper guest two-guests resync} "
for p in $parts; do
	case $p in
	shipper | guest | two-guests | resync) ;;
	*) echo "bench: BENCH_PARTS: no part \"$p\" (shipper, guest, two-guests, resync)" >&2 && exit 2 ;;
	esac
done

bench_shipper() {
	# Shipper pipeline on the host (tools/bench-shipper, issue 15): a smoke run
	# that builds the tool and checks that 256 MiB per case arrive verified.
	# Its figures are not a measurement (one round, the guest build beside
	# it); BENCH_SHIPPER=full runs the recorded benchmark instead (3 rounds of
	# 2 GiB per case, a few minutes). Documentation/benchmarks.md, "Shipper
	# pipeline (repld on one host)".
	make -s -C tools/bench-shipper
	if [[ ${BENCH_SHIPPER:-quick} == full ]]; then
		{ uptime; tools/bench-shipper/bench-shipper; uptime; } 2>&1 | tee "$out/shipper.txt"
	else
		tools/bench-shipper/bench-shipper --quick --no-baseline >"$out/shipper.txt" 2>&1 || {
			cat "$out/shipper.txt" >&2
			echo "bench: tools/bench-shipper --quick failed" >&2
			exit 1
		}
		echo "bench: shipper pipeline smoke run verified (build/bench/shipper.txt)"
	fi
}

# build_baseline REV: the module and repltool of commit REV, built from
# its own tree in build/bench/baseline-src, copied to build/bench/baseline
# (tests/bench/guest-bench.sh, target "base").
build_baseline() {
	local src=$out/baseline-src
	git rev-parse --verify -q "$1^{commit}" >/dev/null ||
		{ echo "bench: BENCH_BASELINE: $1 is not a commit" >&2 && exit 2; }
	rm -rf "$src" "$out/baseline"
	mkdir -p "$src" "$out/baseline"
	git archive "$1" | tar -x -C "$src"
	make -s -C "$src" module userspace
	cp "$src/dm-repl.ko" "$src/userspace/repltool/repltool" "$out/baseline/"
	echo "bench: baseline $(git rev-parse --short "$1") built"
}

bench_guest() {
	if [[ -n ${BENCH_BASELINE:-} ]]; then
		build_baseline "$BENCH_BASELINE"
		export BENCH_TARGETS=${BENCH_TARGETS:-linear base repl}
	fi
	# The virtio data disk: a sparse host file, filled by the guest first.
	rm -f "$out/vda.img"
	truncate -s 1G "$out/vda.img"
	VM_ENV="BENCH_ROUNDS BENCH_RUNTIME BENCH_TARGETS BENCH_PROFILE BENCH_JOB" \
		DMREPL_KO=$PWD/dm-repl.ko tests/guest/vm.sh --quiet --mem 4096 --timeout 3600 \
		--disk "$out/vda.img" --out "$out/guest" -- bash tests/bench/guest-bench.sh
	rm -f "$out/vda.img"
	# Result lines: job target round iops MB/s.
	awk 'NF == 5 && $2 ~ /^(linear|repl|repl-al-small|base)$/' "$out/guest/output.log" >"$out/raw.txt"
	grep -E '^# (repl status|repl wake-ups|perf)' "$out/guest/output.log" || true
	{
		# One line per job and repl target: its IOPS and MB/s against
		# dm-linear's in the same run (the ratio of the sums), and the lowest
		# and highest ratio of a single round, which show the run's noise.
		printf '%-23s %-13s %12s %12s %12s %12s %8s %11s\n' job target \
			linear-iops iops linear-MB/s MB/s ratio rounds
		awk '{ iops[$1, $2] += $4; mbs[$1, $2] += $5; jobs[$1] = 1; t[$2] = 1
		       round[$1, $2, $3] = $4; rounds[$3] = 1 }
		     END {
			for (j in jobs) for (x in t) {
				if (x == "linear") continue
				r = iops[j, "linear"] ? iops[j, x] / iops[j, "linear"] : 0
				lo = hi = ""
				for (n in rounds) {
					l = round[j, "linear", n]
					if (!l) continue
					q = round[j, x, n] / l
					if (lo == "" || q < lo) lo = q
					if (hi == "" || q > hi) hi = q
				}
				printf "%-23s %-13s %12d %12d %12.1f %12.1f %8.2f %5.2f-%.2f\n",
					j, x, iops[j, "linear"], iops[j, x],
					mbs[j, "linear"], mbs[j, x], r, lo, hi
			}
		     }' "$out/raw.txt" | sort
		echo "(sums over $(awk '{print $3}' "$out/raw.txt" | sort -u | wc -l) rounds; kernel $(tests/guest/vm.sh --print-kver), $(date -u +%F))"
	} | tee "$out/results.txt"
}

[[ $parts != *" shipper "* ]] || bench_shipper
[[ $parts != *" guest "* ]] || bench_guest
# The two-guest part's guard: it fails when a guest failed, a replica
# differs from its primary or a kernel log has a splat.
[[ $parts != *" two-guests "* ]] || tests/bench/two-guests.sh
# The same for the resync part's guest.
[[ $parts != *" resync "* ]] || tests/bench/resync.sh
