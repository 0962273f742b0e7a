#!/usr/bin/env bash
# Two hosts, two kernels: two guests, each its own qemu with Debian's kernel
# and dm-repl.ko, joined by a virtio NIC on each end of a qemu socket netdev
# (vm.sh --net: alpha listens on a port the kernel picks, beta connects).
# Each guest runs tests/guest/two-guests-guest.sh for its site: its own
# disks (raw files here, its /dev/vda..vdd), the same resource file
# (group vm1 in both kernels), repltool create-md and up, its own repld over
# TLS 1.3 with certificates of tests/lib/mkcerts.sh. fio with verify on
# alpha; drained (repld's lag 0, beta applied alpha's last sequence); a
# planned failover (secondary --wait on alpha, primary on beta); fio on
# beta, drained back to alpha. The guests meet through files in
# build/two-guests/sync, which both see read-write.
#
# Here, on the host: each guest's results (its TAP, relayed, each line
# named by its site); each guest's kernel log free of BUG, WARNING, Oops,
# KASAN, lockdep and hung-task reports; each guest ran to its end; at both
# checkpoints the sha256 of beta's data disks, taken in beta, equal
# alpha's, taken in alpha, and checkpoint 2 differs from 1; and once both
# guests are off, the data disk files of the two equal byte for byte.
#
# usage: tests/two-guests.sh     (TAP on stdout)
# Environment: TWO_GUESTS_SEED (fio's seed, default random),
# TWO_GUESTS_MB (each data volume, default 16).
#
# Everything stays in build/two-guests/: out-alpha/ and out-beta/ (each
# guest's console.log, output.log, dmesg.log, repld.log), vm-SITE.log
# (vm.sh's own messages), the disks, etc/, sync/ and sums/.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
TOP=$PWD
VM_REPO=$TOP
source tests/lib/tap.sh
source tests/guest/lib-vm.sh
source tests/lib/two-guests.sh

SEED=${TWO_GUESTS_SEED:-$((($(od -An -N4 -tu4 /dev/urandom) % 1000000) + 1))}
MB=${TWO_GUESTS_MB:-16}
DIR=$TOP/build/two-guests
TG_DIR=$DIR
# Guards against a hang, never the condition of a step: both guests
# together take 1 to 2 minutes.
TG_TIMEOUT=600
SITES=(alpha beta)
TG_ADDR=([alpha]=10.99.0.1 [beta]=10.99.0.2)
TG_NET=([alpha]=listen [beta]=connect)

[[ $MB =~ ^[1-9][0-9]*$ ]] || { echo "TWO_GUESTS_MB: not a positive number" >&2; exit 2; }
[[ $SEED =~ ^[0-9]+$ ]] || { echo "TWO_GUESTS_SEED: not a number" >&2; exit 2; }

if [[ ! -f dm-repl.ko ]]; then
	make -s module 2>&1 | sed 's/^/# /'
fi
make -s userspace 2>&1 | sed 's/^/# /'
if [[ ! -f dm-repl.ko || ! -x userspace/repld/repld || ! -x userspace/repltool/repltool ]]; then
	echo "Bail out! cannot build dm-repl.ko, repld or repltool"
	exit 1
fi

rm -rf "$DIR"
mkdir -p "$DIR/etc" "$DIR/sync" "$DIR/sums"

# The same resource file on both hosts. Each guest has its disks in the
# same order: data of volume 0 and 1, then their metadata.
resource() {
	local s
	echo "group vm1 {"
	echo "	compression zstd 3;"
	echo "	ring-size 64M;"
	# A guest under TCG may be silent longer than the 5 s default.
	echo "	timeout 20s;"
	echo "	tls { ca $DIR/etc/tls/ca.crt; }"
	for s in "${SITES[@]}"; do
		echo "	site $s {"
		echo "		host $s; address ${TG_ADDR[$s]}:7790;"
		echo "		certificate $DIR/etc/tls/$s.crt; key $DIR/etc/tls/$s.key;"
		echo "		volume 0 { data /dev/vda; meta /dev/vdc; }"
		echo "		volume 1 { data /dev/vdb; meta /dev/vdd; }"
		echo "	}"
	done
	echo "}"
}

# guest SITE: its vm.sh in the background, with its four disks.
guest() {
	local s=$1 d disks=()
	for d in data0 data1 meta0 meta1; do
		disks+=(--disk "$DIR/$s-$d")
	done
	# discard=unmap: a trim frees the blocks, so a replica that misses one
	# differs from its primary.
	VM_DISK_DISCARD=unmap TEST_SEED=$SEED tg_start "$s" --smp 1 --mem 1024 "${disks[@]}" \
		-- bash tests/guest/two-guests-guest.sh "$s" "$DIR"
}

# relay SITE: the guest's TAP lines as results of this run, named by SITE;
# its diagnostics as they are.
relay() {
	local s=$1 line text
	while IFS= read -r line; do
		case $line in
		"ok "*" # SKIP"*) text=${line#ok * - } && tap_skip "$s: ${text%% # SKIP*}" "${text#* # SKIP }" ;;
		"ok "*) tap_ok "$s: ${line#ok * - }" ;;
		"not ok "*) tap_fail "$s: ${line#not ok * - }" ;;
		"Bail out!"*) tap_fail "$s: the scenario bailed out: ${line#Bail out! }" ;;
		"#"*) echo "$line" ;;
		esac
	done <"$DIR/out-$s/output.log"
}

# same_sums N: the sums of checkpoint N, taken in each guest, agree.
# shellcheck disable=SC2317 # called by tap_check
same_sums() {
	local s
	for s in "${SITES[@]}"; do
		[[ -s $DIR/sums/$s.$1 ]] || { echo "no sums of $s at checkpoint $1" && return 1; }
	done
	diff "$DIR/sums/alpha.$1" "$DIR/sums/beta.$1"
}

tap_diag "seed $SEED (TWO_GUESTS_SEED repeats its fio jobs), two volumes of $MB MiB a site"
for s in "${SITES[@]}"; do
	truncate -s "${MB}M" "$DIR/$s-data0" "$DIR/$s-data1"
	truncate -s 8M "$DIR/$s-meta0" "$DIR/$s-meta1"
done
tap_setup "certificates" tests/lib/mkcerts.sh "$DIR/etc/tls" "${SITES[@]}"
resource >"$DIR/etc/vm1.conf"

# Whatever ends this script takes down the guests still running (vm.sh
# stops its qemu on SIGTERM).
trap tg_stop EXIT
trap 'exit 130' INT TERM

start=$SECONDS
# alpha first: beta's vm.sh waits for it to listen.
guest alpha
guest beta
tg_wait || { echo "Bail out! wait for the guests failed" && exit 1; }
wall=$((SECONDS - start))

for s in "${SITES[@]}"; do
	relay "$s"
done
for s in "${SITES[@]}"; do
	splats=$(tg_scan "$s")
	if [[ -z $splats && ${TG_STATUS[$s]} != 123 ]]; then
		tap_ok "$s's kernel log is free of BUG, WARNING, Oops, KASAN, lockdep and hung tasks"
	else
		tap_fail "$s's kernel log is free of BUG, WARNING, Oops, KASAN, lockdep and hung tasks" \
			"$(printf '%s\n' "$splats" | head -20)"
	fi
	if ((TG_STATUS[$s] == 0)); then
		tap_ok "$s's guest ran its scenario to its end"
	else
		tap_fail "$s's guest ran its scenario to its end" "vm.sh status ${TG_STATUS[$s]}:
$(cat "$DIR/vm-$s.log")
$(tail -15 "$DIR/out-$s/output.log" 2>/dev/null)"
	fi
done
tap_check "checkpoint 1 (alpha primary): beta's data disks have the sha256 of alpha's" same_sums 1
tap_check "checkpoint 2 (after the failover, beta primary): alpha's have the sha256 of beta's" \
	same_sums 2
tap_check "beta's writes changed the data between the checkpoints" \
	bash -c "! cmp -s '$DIR/sums/alpha.1' '$DIR/sums/alpha.2'"
tap_check "with both guests off, their data disk files are equal byte for byte" \
	bash -c "cmp '$DIR/alpha-data0' '$DIR/beta-data0' && cmp '$DIR/alpha-data1' '$DIR/beta-data1'"
tap_diag "$wall s for both guests, side by side"
tap_done
