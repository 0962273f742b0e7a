#!/usr/bin/env bash
# Online verify and seeding by hashes (Documentation/dm-repl.md, "Verify"):
# repltool verify puts a VERIFY record (a region's SHA-256) in the ring for
# every region, the replica compares at the same point of the stream. An
# equal pair has no mismatch, also while fio writes; a region corrupted
# behind the replica's back is found and --fix resends it; a replica seeded
# from a copy with 1% of its regions changed (metadata --seeded) gets
# exactly those regions, and is inconsistent and seeded until the pass is
# done.
set -uo pipefail
source "$(dirname "$0")/../lib/tap.sh"
source "$(dirname "$0")/lib.sh"

# Primary g1 on ram0 (meta ram1), its replica g2 on ram2 (meta ram3).
MB=64
REGION_KB=64
REGIONS=$((MB * 1024 / REGION_KB))
PASSES=${VERIFY_PASSES:-5}
ram_disks 4 $MB
W=$(mktemp -d /tmp/verify.XXXXXX)
RIO=$TOP/tests/guest/resyncio
rep=

tables() { pair_tables "2 ring_mb 16"; }
replicate_start() {
	"$REPLTOOL" replicate g1 g2 >>"$W/replicate.out" 2>&1 &
	rep=$!
}
replicate_stop() {
	[[ -n $rep ]] && kill -TERM "$rep" && wait "$rep"
	rep=
}
identical() { echo 1 >/proc/sys/vm/drop_caches && cmp /dev/ram0 /dev/ram2; }
# verify OUT [OPTS...]: repltool verify of g1 against g2; its exit status.
verify() {
	local out=$1
	shift
	"$REPLTOOL" verify --replica g2 "$@" g1 >"$out" 2>&1
}
# field OUT WORD: the number before WORD on the "compared" line of OUT.
field() { awk -v w="$2" '/compared on/ { for (i = 2; i <= NF; i++) if ($i ~ "^" w) print $(i - 1) }' "$1"; }
mismatches() { grep '^mismatch volume' "$1" | awk '{ print $3 ":" $5 }' | sort; }

# 1. An equal pair: every region compared, none differs.
tables || tap_bail "the pair's tables"
replicate_start
dd if=/dev/urandom of=/dev/mapper/p1 bs=1M count=$MB oflag=direct status=none
# The ring took part of it; the rest went to the bitmap: resync it.
"$REPLTOOL" resync g1 >/dev/null || tap_bail "the resync after the first fill"
out=$(quiesce g1 g2 120) || tap_bail "the first fill: $out"
t0=$(date +%s%N)
verify "$W/equal.out"
rc=$?
t1=$(date +%s%N)
# Figures, no assertion: a pass end to end (the primary hashes, ships, the
# replica hashes), and openssl's SHA-256 on one core of this guest.
ossl=$(openssl speed -seconds 1 -bytes 1048576 -evp sha256 2>/dev/null |
	awk '/^sha256/ { print $2 }')
tap_diag "a pass over $MB MiB took $(((t1 - t0) / 1000000)) ms:" \
	"$((MB * 1000000000 / (t1 - t0 + 1))) MiB/s compared; openssl sha256: ${ossl:-?} (kB/s, 1 MiB blocks)"
tap_check "equal pair: exit 0 (exit $rc)" test $rc = 0
tap_check "equal pair: $REGIONS regions compared, 0 mismatches" \
	test "$(field "$W/equal.out" regions)/$(field "$W/equal.out" mismatches)" = "$REGIONS/0"
tap_check "equal pair: $((MB << 20)) bytes hashed on the replica" \
	test "$(field "$W/equal.out" 'bytes\)' | tr -d '(')" = $((MB << 20))
tap_check "equal pair: the replica stays consistent" \
	test "$(status_of g2 consistency)" = consistent

# 2. While fio writes the primary: no false mismatch in $PASSES passes. Its
# writes go to the first 4 MiB (64 regions), densely, so that some land in
# a region while its VERIFY is being read (RACED, then tried again).
fio --name=w --filename=/dev/mapper/p1 --direct=1 --rw=randwrite --bsrange=4k-16k \
	--ioengine=libaio --iodepth=8 --size=4m --time_based --runtime=3600 \
	--rate=8m --randseed=11 >"$W/fio.out" 2>&1 &
fio=$!
false_pos=0 raced=0 compared=0
for ((p = 1; p <= PASSES; p++)); do
	verify "$W/fio$p.out"
	rc=$?
	n=$(field "$W/fio$p.out" mismatches)
	((rc == 0 && n == 0)) || false_pos=$((false_pos + ${n:-1}))
	raced=$((raced + $(awk '/put in the ring/ { print $(NF - 5) }' "$W/fio$p.out")))
	compared=$((compared + $(field "$W/fio$p.out" regions)))
done
kill "$fio"
wait "$fio"
tap_diag "under fio: $compared regions compared, $raced records raced, in $PASSES passes"
tap_check "under fio: 0 mismatches in $PASSES passes ($false_pos)" test "$false_pos" = 0
tap_check "under fio: regions were compared" test "$compared" -gt $((PASSES * REGIONS / 2))
# Under a slow guest the ring may have overflowed: that is resync's business.
"$REPLTOOL" resync g1 >/dev/null || tap_fail "under fio: the resync after it"
out=$(quiesce g1 g2 120) || tap_fail "under fio: drained" "$out"
tap_check "under fio: identical byte for byte after" identical

# 3. A region corrupted on the replica's disk behind dm: found, fixed.
R=$((RANDOM % REGIONS))
dd if=/dev/urandom of=/dev/ram2 bs=4k count=1 seek=$((R * REGION_KB / 4 + 3)) \
	oflag=direct conv=notrunc status=none
verify "$W/corrupt.out"
rc=$?
tap_check "corrupt region $R: exit 3 (exit $rc)" test $rc = 3
tap_check "corrupt region $R: reported, alone" test "$(mismatches "$W/corrupt.out")" = "0:$R"
tap_check "corrupt region $R: the kernel log names it" \
	bash -c "dmesg | grep -q 'g2: verify: volume 0 sectors $((R * REGION_KB * 2))+$((REGION_KB * 2)) differ'"
tap_check "corrupt region $R: the replica's status counts it" \
	test "$(status_of g2 verify_mismatches)" -ge 1
verify "$W/fix.out" --fix
rc=$?
tap_check "--fix: exit 0 (exit $rc)" test $rc = 0
tap_check "--fix: one region resent, $((REGION_KB << 10)) bytes applied" \
	grep -q "fix g1: 1 regions resent, $((REGION_KB << 10)) bytes applied" "$W/fix.out"
tap_check "--fix: identical byte for byte" identical
tap_check "--fix: the replica is consistent" test "$(status_of g2 consistency)" = consistent
verify "$W/after-fix.out"
tap_check "--fix: the next pass finds nothing" test "$(field "$W/after-fix.out" mismatches)" = 0

# 3c. More regions differ than the replica lists (DM_REPL_VERIFY_LIST, 128):
# the pass reads the list as the replica goes, --fix resends every one.
MANY=200
MANYR=$(shuf -i 0-$((REGIONS - 1)) -n $MANY | sort -n)
for r in $MANYR; do
	dd if=/dev/urandom of=/dev/ram2 bs=512 count=1 seek=$((r * REGION_KB * 2 + RANDOM % (REGION_KB * 2))) \
		oflag=direct conv=notrunc status=none
done
verify "$W/many.out" --fix
rc=$?
tap_check "$MANY regions differ: --fix exits 0 (exit $rc)" test $rc = 0
tap_check "$MANY regions differ: every one reported" \
	test "$(mismatches "$W/many.out")" = "$(for r in $MANYR; do echo "0:$r"; done | sort)"
tap_check "$MANY regions differ: none left unlisted" bash -c "! grep -q 'not listed' '$W/many.out'"
tap_check "$MANY regions differ: $MANY resent" grep -q "fix g1: $MANY regions resent" "$W/many.out"
tap_check "$MANY regions differ: identical byte for byte after --fix" identical

# 3b. The same between two hosts, by hand: verify on the primary's host,
# --results on the replica's (the sector the primary's region starts at),
# --resend on the primary's.
R=$(((R + 1 + RANDOM % (REGIONS - 1)) % REGIONS))
S=$((R * REGION_KB * 2))
dd if=/dev/urandom of=/dev/ram2 bs=4k count=1 seek=$((R * REGION_KB / 4)) \
	oflag=direct conv=notrunc status=none
"$REPLTOOL" verify g1 >"$W/remote.out" 2>&1
first=$(awk '/put in the ring/ { print $12 }' "$W/remote.out")
out=$(quiesce g1 g2 120) || tap_fail "by hand: drained" "$out"
"$REPLTOOL" verify --results --since "$first" g2 >"$W/results.out" 2>&1
rc=$?
tap_check "by hand: --results on the replica exits 3 (exit $rc)" test $rc = 3
tap_check "by hand: --results lists sector $S (region $R) alone" \
	test "$(mismatches "$W/results.out")" = "0:$S"
"$REPLTOOL" verify --resend "0@$S" g1 >"$W/resend.out" 2>&1
tap_check "by hand: --resend 0@$S on the primary" grep -q "resend g1: 1 regions put in the ring" "$W/resend.out"
out=$(quiesce g1 g2 120) || tap_fail "by hand: drained after the resend" "$out"
tap_check "by hand: identical byte for byte" identical
tap_check "by hand: the replica is consistent" test "$(status_of g2 consistency)" = consistent
tap_check "a bad --resend list is a usage error" bash -c \
	"'$REPLTOOL' verify --resend 0:1,x g1 2>/dev/null; test \$? = 2"
tap_check "a --resend sector where no region starts is refused (exit 1)" bash -c \
	"'$REPLTOOL' verify --resend 0@$((S + 8)) g1 2>&1 | grep -q 'not where a region of volume 0 starts'"
last=$(status_of g2 applied_seq)
tap_check "--results with no VERIFY record from SEQ on: not verified, exit 4" bash -c \
	"'$REPLTOOL' verify --results --since $((last + 1000)) g2 >/dev/null; test \$? = 4"

# 4. Seeding: the replica from a copy of the primary's disk with 1% of its
# regions changed, its metadata made --seeded: inconsistent and seeded, not
# promotable without force, until verify --fix has compared every region;
# only the changed regions are reported and sent, equal and consistent after.
replicate_stop
dm_remove_all
dd if=/dev/urandom of=/dev/ram0 bs=1M count=$MB status=none
dd if=/dev/ram0 of=/dev/ram2 bs=1M status=none
CHANGED=$(shuf -i 0-$((REGIONS - 1)) -n $((REGIONS / 100)) | sort -n)
for r in $CHANGED; do
	dd if=/dev/urandom of=/dev/ram2 bs=512 count=1 seek=$((r * REGION_KB * 2 + RANDOM % (REGION_KB * 2))) \
		conv=notrunc status=none
done
want=$(for r in $CHANGED; do echo "0:$r"; done | sort)
n=$(wc -w <<<"$CHANGED")
k0=$(dmesg | wc -l)
pair_tables "2 ring_mb 16" --seeded || tap_bail "the seeded pair's tables"
replicate_start
# A write of the primary, replicated, in a region the seed has not changed.
for ((wr = 0; wr < REGIONS; wr++)); do grep -qx "$wr" <<<"$CHANGED" || break; done
dd if=/dev/urandom of=/dev/mapper/p1 bs=4k count=4 seek=$((wr * REGION_KB / 4)) \
	oflag=direct conv=notrunc status=none
out=$(quiesce g1 g2 120) || tap_fail "seeding: drained" "$out"
tap_check "seeding: the replica is inconsistent before a pass" \
	test "$(status_of g2 consistency)" = inconsistent
tap_check "seeding: status says seeded, $REGIONS regions left" bash -c \
	"'$REPLTOOL' status g2 | grep -q '^seeded *not yet verified: $REGIONS regions left\$'"
tap_check "seeding: the primary's status does not say seeded" bash -c \
	"! '$REPLTOOL' status g1 | grep -q '^seeded'"
dmsetup suspend s1
tap_check "seeding: a promotion without force is refused" bash -c \
	"! dmsetup message s1 0 role primary 2>/dev/null"
tap_check "seeding: the kernel log says why" \
	bash -c "dmesg | tail -n +$((k0 + 1)) | grep -q 'g2: cannot become primary: seeded and not yet verified'"
dmsetup resume s1
tap_check "seeding: still a secondary" test "$(status_of g2 role)" = secondary
passes=0
rc=1
while ((rc != 0 && passes < 5)); do
	verify "$W/seed$passes.out" --fix
	rc=$?
	passes=$((passes + 1))
done
cp "$W/seed0.out" "$W/seed.out"
tap_check "seeding: --fix exits 0 (exit $rc after $passes passes)" test $rc = 0
tap_check "seeding: the replica is consistent after" test "$(status_of g2 consistency)" = consistent
tap_check "seeding: status does not say seeded after" bash -c \
	"! '$REPLTOOL' status g2 | grep -q '^seeded'"
tap_check "seeding: the kernel log says verified" \
	bash -c "dmesg | tail -n +$((k0 + 1)) | grep -q 'g2: seeded replica: every region verified equal to the primary or resent: consistent'"
tap_check "seeding: no mismatch called corruption" \
	bash -c "! dmesg | tail -n +$((k0 + 1)) | grep -q 'g2: verify: .*corruption'"
tap_check "seeding: exactly the $n changed regions reported" test "$(mismatches "$W/seed.out")" = "$want"
tap_check "seeding: $((MB << 20)) bytes compared" \
	test "$(field "$W/seed.out" 'bytes\)' | tr -d '(')" = $((MB << 20))
sent=$(awk '/^fix g1/ { print $6 }' "$W/seed.out")
tap_diag "seeding: $((MB << 20)) bytes compared, $sent bytes sent for $n regions of $((REGION_KB << 10))"
tap_check "seeding: bytes sent $sent = $n changed regions x region size" \
	test "$sent" = $((n * (REGION_KB << 10)))
tap_check "seeding: identical byte for byte" identical
tap_check "seeding: SHA-256 equal" test "$(sha256sum </dev/ram0)" = "$(sha256sum </dev/ram2)"

# 5. Hostile requests and misuse.
D=/dev/dm-repl/g1
tap_check "a verify of a region past the end is refused (EINVAL)" \
	bash -c "'$RIO' $D resync 0 $REGIONS verify 2>&1 | grep -q 'Invalid argument'"
tap_check "an unknown flag is refused (EINVAL)" \
	bash -c "'$RIO' $D resync 0 0 $((1 << 5)) 2>&1 | grep -q 'Invalid argument'"
tap_check "the out-flag RACED as input is refused (EINVAL)" \
	bash -c "'$RIO' $D resync 0 0 $((4 | 8)) 2>&1 | grep -q 'Invalid argument'"
tap_check "a verify on a volume index with no volume is refused (ENOENT)" \
	bash -c "'$RIO' $D resync 7 0 verify 2>&1 | grep -q 'No such file'"
tap_check "a verify on a secondary is refused (EPERM)" \
	bash -c "'$RIO' /dev/dm-repl/g2 resync 0 0 verify 2>&1 | grep -q 'not permitted'"
tap_check "repltool verify of a secondary: not a primary group" bash -c \
	"out=\$('$REPLTOOL' verify g2 2>&1); test \$? = 1 && grep -q 'not a primary group' <<<\"\$out\""
tap_check "--fix without --replica is a usage error" bash -c \
	"'$REPLTOOL' verify --fix g1 2>/dev/null; test \$? = 2"
tap_check "a verify leaves the bitmaps alone" test "$(status_of g1 dirty_regions)" = 0
replicate_stop
dm_remove_all

# 6. A write into a region while the primary reads it for its VERIFY: the
# record is RACED, and the replica counts it not compared, not a mismatch,
# though its copy of the region differs. Made certain by a primary data
# device whose reads take 5 s (dm-delay): the write comes 1 s into the read.
modprobe dm-delay || tap_bail "modprobe dm-delay"
sectors=$(blockdev --getsz /dev/ram0)
dm_create slow "0 $sectors delay /dev/ram0 0 5000 /dev/ram0 0 0" || tap_bail "the delay device"
meta_create /dev/ram1 g1 /dev/mapper/slow
"$REPLTOOL" meta create --force --role secondary --group g2 --data-dev /dev/ram2 /dev/ram3 >/dev/null
dm_create p1 "0 $sectors repl /dev/mapper/slow /dev/ram1 g1 primary 2 ring_mb 16" &&
	dm_create s1 "0 $sectors repl /dev/ram2 /dev/ram3 g2 secondary 2 source g1" ||
	tap_bail "the tables over the delay device"
replicate_start
R=$((RANDOM % REGIONS))
dd if=/dev/urandom of=/dev/ram2 bs=4k count=1 seek=$((R * REGION_KB / 4)) \
	oflag=direct conv=notrunc status=none
nc0=$(status_of g2 verify_not_compared)
mm0=$(status_of g2 verify_mismatches)
"$RIO" /dev/dm-repl/g1 resync 0 $R verify >"$W/raced.out" 2>&1 &
rio=$!
sleep 1
dd if=/dev/urandom of=/dev/mapper/p1 bs=4k count=1 seek=$((R * REGION_KB / 4 + 1)) \
	oflag=direct conv=notrunc status=none
wait "$rio"
tap_check "raced: the VERIFY of region $R says RACED" grep -q 'raced 1' "$W/raced.out"
out=$(quiesce g1 g2 120) || tap_fail "raced: drained" "$out"
tap_check "raced: counted not compared on the replica" \
	test "$(status_of g2 verify_not_compared)" = $((nc0 + 1))
tap_check "raced: not counted a mismatch" test "$(status_of g2 verify_mismatches)" = "$mm0"
# The control: the same region with no write meanwhile is compared, and differs.
"$RIO" /dev/dm-repl/g1 resync 0 $R verify >"$W/calm.out" 2>&1
tap_check "raced: with no write, the VERIFY is not RACED" grep -q 'raced 0' "$W/calm.out"
out=$(quiesce g1 g2 120) || tap_fail "raced: drained after the control" "$out"
tap_check "raced: with no write, the region is compared and differs" \
	test "$(status_of g2 verify_mismatches)" = $((mm0 + 1))
replicate_stop
dm_remove_all
rm -rf "$W"
tap_done
