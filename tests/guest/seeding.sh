#!/usr/bin/env bash
# Seeding a replica over repld (admin-guide.md, "Seeding a replica from
# media or a backup"), as the runbook says it.
#
# Two sites in this guest, each with its own repld (PSK, each in its own
# network namespace, joined by veth: lib.sh), one volume of 16 MiB. alpha's
# volume holds random bytes; beta's is a copy of it made by other means (dd
# here), with one sector changed in a few regions, as a copy made while the VM
# ran would differ. alpha's metadata is a primary's, beta's `create-md
# --seeded`: every region not yet shown equal.
#
# Checked: a seed of another region size is refused at connect, with the
# reason; beta is inconsistent and seeded and refuses promotion; its repld
# asks for no region (a seeded replica that did would get the whole disk)
# while alpha's writes stream to it; `repltool verify --replica vm1b --fix`
# through the replds finds exactly the changed regions and resends them;
# then beta is consistent, no longer seeded, and equal to alpha byte for
# byte, and only the changed regions were resynced.
#
# Then the two-host form of verify --fix: a region of beta's disk changed
# under dm; alpha's pass (`verify vm1`, no --replica); on beta `verify
# --results --since SEQ --fix` lists it and has beta's repld ask alpha's
# for it (refused, with the reason, while beta is disconnected); alpha
# resends that region and no other; equal again.
#
# Then a fix that outlives a lost link: region 50 changed on beta; alpha's
# pass; alpha's repld stopped (SIGSTOP) before beta's fix, so nothing is
# resent, then killed. beta's repld marked the region all the same: beta
# is inconsistent with one dirty region and refuses promotion while
# disconnected; alpha's repld started again, beta asks for its dirty region
# at the connect, alpha resends it, and the two are equal.
set -uo pipefail
source "$(dirname "$0")/../lib/tap.sh"
source "$(dirname "$0")/lib.sh"

MB=16
CHANGED=6			# regions of beta's copy with a sector changed
W=$(mktemp -d /tmp/seeding.XXXXXX)
A_IP=10.77.7.1			# each site in its namespace (sites_network)
B_IP=10.77.7.2
declare -A DATA META
# shellcheck disable=SC2034 # lib.sh's sites_conf reads it
SITES_VOLUMES=0

trap sites_netns_cleanup EXIT
sites_network || tap_bail "two network namespaces joined by veth"

sum_of() {
	sha256sum <"$1" | cut -d' ' -f1
}

# link_is STATE: beta's link (its repld's word) is STATE within 60 s (alpha
# dials again after its back-off: 30 s at most).
link_is() {
	local i
	for ((i = 0; i < 600; i++)); do
		[[ $(link_fact "$W/beta.sock" vm1 link) == "$1" ]] && return 0
		sleep 0.1
	done
	return 1
}

# seeded_line: beta's status line about the seeding, or nothing.
seeded_line() {
	"$REPLTOOL" status vm1b | grep '^seeded'
}

tap_strict
DATA[alpha:0]=$(loop_disk $MB) && DATA[beta:0]=$(loop_disk $MB) &&
	META[alpha:0]=$(loop_disk 4) && META[beta:0]=$(loop_disk 4) || tap_bail "the disks"
dd if=/dev/urandom of="${DATA[alpha:0]}" bs=1M count=$MB oflag=direct status=none &&
	dd if="${DATA[alpha:0]}" of="${DATA[beta:0]}" bs=1M iflag=direct oflag=direct status=none ||
	tap_bail "alpha's data and beta's copy"
# One sector changed in regions 3, 19, 35, ... (64 KiB regions).
for ((i = 0; i < CHANGED; i++)); do
	dd if=/dev/urandom of="${DATA[beta:0]}" bs=512 count=1 seek=$(((3 + 16 * i) * 128 + 5)) \
		oflag=direct conv=notrunc status=none || tap_bail "a change in beta's copy"
done
openssl rand -hex 32 >"$W/psk" && chmod 600 "$W/psk" && sites_conf "$W/conf" "$W/psk" ||
	tap_bail "the resource file"
tap_setup "alpha made a primary and up" bash -c \
	"$(declare -f tool); REPLTOOL=$REPLTOOL W=$W; tool alpha create-md --role primary &&
	 tool alpha up"

# A seed with regions of another size would never be verified whole: the
# replds refuse it, naming why.
tap_setup "beta seeded with 128 KiB regions, up" bash -c \
	"'$REPLTOOL' meta create --force --seeded --role secondary --group vm1b \
	   --region-kb 128 --data-dev '${DATA[beta:0]}' '${META[beta:0]}' >/dev/null &&
	 $(declare -f tool); REPLTOOL=$REPLTOOL W=$W; tool beta up"
site_start beta
site_start alpha
out=$(log_has "$W/beta.log" "seeded replica's region size differs from the primary's") &&
	tap_ok "a seed of another region size is refused, with the reason" ||
	tap_fail "the refusal of the region size" "$out"
site_stop alpha KILL
site_stop beta KILL
mv "$W/alpha.log" "$W/alpha-refused.log" && mv "$W/beta.log" "$W/beta-refused.log"
tap_setup "beta made a seeded replica again, in alpha's region size, and up" bash -c \
	"$(declare -f tool); REPLTOOL=$REPLTOOL W=$W; tool beta down &&
	 tool beta create-md --role secondary --seeded --force && tool beta up"

tap_check "beta is inconsistent" test "$(status_of vm1b consistency)" = inconsistent
tap_check "beta's status says seeded, every region left ($(seeded_line))" \
	grep -q "not yet verified: $((MB * 16)) regions left" <<<"$(seeded_line)"
out=$(tool beta primary 2>&1) && rc=0 || rc=$?
tap_check "beta refuses promotion without --force (exit $rc)" test "$rc" -ne 0
tap_diag "$out"

site_start beta
site_start alpha
dd if=/dev/urandom of=/dev/mapper/vm1-0 bs=64k count=8 seek=100 oflag=direct status=none ||
	tap_bail "alpha's writes"
out=$(quiesce vm1 vm1b 120) && tap_ok "alpha's writes stream to beta" || tap_fail "the stream" "$out"
out=$(log_has "$W/beta.log" "seeded replica: no region asked from the primary") &&
	tap_ok "beta's repld asks for no region" || tap_fail "beta's log" "$out"
tap_check "alpha was asked for nothing and resynced nothing" bash -c \
	"! grep -q 'the replica asks for' '$W/alpha.log' &&
	 test \"\$(REPLTOOL=$REPLTOOL; $(declare -f status_of); status_of vm1 resynced_regions)\" = 0"
tap_check "beta is still inconsistent and seeded" \
	test "$(status_of vm1b consistency)" = inconsistent -a -n "$(seeded_line)"

out=$("$REPLTOOL" verify --replica vm1b --fix vm1 2>&1) && rc=0 || rc=$?
tap_diag "$out"
tap_check "verify --fix through the replds exits 0" test "$rc" = 0
out=$(state_reaches vm1 state uptodate 120) && out=$(quiesce vm1 vm1b 120) &&
	out=$(state_reaches vm1b consistency consistent 60) &&
	tap_ok "beta is consistent once the pass and its resends are applied" ||
	tap_fail "the end of the seeding" "$out"
tap_check "beta's status no longer says seeded" test -z "$(seeded_line)"
resynced=$(status_of vm1 resynced_regions)
tap_check "only the $CHANGED changed regions were resynced ($resynced)" test "$resynced" = "$CHANGED"
echo 1 >/proc/sys/vm/drop_caches
tap_check "beta equals alpha byte for byte" \
	test "$(sum_of "${DATA[alpha:0]}")" = "$(sum_of "${DATA[beta:0]}")"

# ---- verify --fix across the two sites -------------------------------------------
# One sector of region 40 (64 KiB regions) changed on beta's disk, under dm.
dd if=/dev/urandom of="${DATA[beta:0]}" bs=512 count=1 seek=$((40 * 128 + 9)) \
	oflag=direct conv=notrunc status=none || tap_bail "the change on beta's disk"
out=$("$REPLTOOL" verify vm1 2>&1) && rc=0 || rc=$?
tap_diag "$out"
since=$(sed -n 's/.* seq \([0-9]*\) to .*/\1/p' <<<"$out")
tap_check "alpha's pass is in its ring (exit $rc, from seq ${since:-?})" test "$rc" = 0 -a -n "$since"
out=$(quiesce vm1 vm1b 120) && tap_ok "beta applied the pass" || tap_fail "the pass" "$out"
out=$("$REPLTOOL" verify --results --since "$since" vm1b 2>&1) && rc=0 || rc=$?
tap_diag "$out"
tap_check "beta lists the one region changed under dm, and no other (exit $rc)" \
	test "$rc" = 3 -a "$(grep -c '^mismatch volume 0 sector 5120 ' <<<"$out")" = 1 \
	-a "$(grep -c '^mismatch' <<<"$out")" = 1
"$REPLTOOL" disconnect --socket "$W/beta.sock" vm1 >/dev/null || tap_bail "beta disconnect"
link_is disconnected || tap_bail "beta's session did not end"
out=$("$REPLTOOL" verify --results --since "$since" --fix --socket "$W/beta.sock" vm1b 2>&1) &&
	rc=0 || rc=$?
tap_check "--fix while beta is disconnected is refused, with the reason (exit $rc)" \
	test "$rc" = 1 -a "$(grep -c 'not connected to its primary' <<<"$out")" = 1
"$REPLTOOL" connect --socket "$W/beta.sock" vm1 >/dev/null || tap_bail "beta connect"
tap_check "beta is connected again" link_is connected
before=$(status_of vm1 resynced_regions)
out=$("$REPLTOOL" verify --results --since "$since" --fix --socket "$W/beta.sock" vm1b 2>&1) &&
	tap_ok "beta's repld takes the fix: $(tail -n 1 <<<"$out")" || tap_fail "--results --fix" "$out"
out=$(log_has "$W/beta.log" "asked the primary to resend 1 regions verify found differing" 60) &&
	tap_ok "beta's repld asked alpha's for that region" || tap_fail "beta's log" "$out"
out=$(state_reaches vm1 resynced_regions $((before + 1)) 120) &&
	tap_ok "alpha resent the region" || tap_fail "the resend" "$out"
out=$(state_reaches vm1 state uptodate 120) && out=$(quiesce vm1 vm1b 120) &&
	out=$(state_reaches vm1b consistency consistent 60) &&
	tap_ok "beta is consistent once the region is applied" || tap_fail "after the fix" "$out"
tap_check "alpha resent exactly one region" \
	test "$(status_of vm1 resynced_regions)" = $((before + 1))
echo 1 >/proc/sys/vm/drop_caches
tap_check "beta equals alpha byte for byte again" \
	test "$(sum_of "${DATA[alpha:0]}")" = "$(sum_of "${DATA[beta:0]}")"

# ---- a verify fix outlives a lost link ----------------------------------------------
dd if=/dev/urandom of="${DATA[beta:0]}" bs=512 count=1 seek=$((50 * 128 + 3)) \
	oflag=direct conv=notrunc status=none || tap_bail "the second change on beta's disk"
out=$("$REPLTOOL" verify vm1 2>&1) || tap_bail "alpha's second pass: $out"
since=$(sed -n 's/.* seq \([0-9]*\) to .*/\1/p' <<<"$out")
out=$(quiesce vm1 vm1b 120) || tap_bail "beta did not apply the second pass: $out"
before=$(status_of vm1 resynced_regions)
kill -STOP "$(cat "$W/alpha.pid")" || tap_bail "SIGSTOP of alpha's repld"
marks=$(grep -c "(1 marked" "$W/beta.log")
out=$("$REPLTOOL" verify --results --since "$since" --fix --socket "$W/beta.sock" vm1b 2>&1) &&
	rc=0 || rc=$?
tap_check "beta's repld takes the fix while alpha's is stopped (exit $rc)" test "$rc" = 0
for ((i = 0; i < 300; i++)); do
	(($(grep -c "(1 marked" "$W/beta.log") > marks)) && break
	sleep 0.1
done
tap_check "beta's repld marked the region before asking for it" \
	test "$(grep -c "(1 marked" "$W/beta.log")" -gt "$marks"
site_stop alpha KILL
link_is connecting || tap_bail "beta's session did not end"
tap_check "beta is inconsistent while disconnected, the fix not applied" \
	test "$(status_of vm1b consistency)" = inconsistent
tap_check "beta's bitmap holds the marked region" test "$(status_of vm1b dirty_regions)" = 1
out=$(tool beta primary 2>&1) && rc=0 || rc=$?
tap_diag "$out"
tap_check "beta refuses promotion without --force meanwhile (exit $rc)" \
	test "$rc" -ne 0 -a "$(grep -c 'data is inconsistent' <<<"$out")" -ge 1
site_start alpha
out=$(log_has "$W/beta.log" "1 regions of our own writes asked from the primary" 90) &&
	tap_ok "at the connect, beta asks alpha for the marked region" || tap_fail "the ask" "$out"
out=$(state_reaches vm1 resynced_regions $((before + 1)) 120) && out=$(pair_synced vm1 vm1b) &&
	tap_ok "alpha resent it; beta is consistent again" || tap_fail "after the reconnect" "$out"
tap_check "beta's bitmap is clean" test "$(status_of vm1b dirty_regions)" = 0
echo 1 >/proc/sys/vm/drop_caches
tap_check "beta equals alpha byte for byte after the lost link" \
	test "$(sum_of "${DATA[alpha:0]}")" = "$(sum_of "${DATA[beta:0]}")"
tap_done
