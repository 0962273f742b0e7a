#!/usr/bin/env bash
# Boot Debian's kernel under qemu (TCG) and run one command in the guest.
#
# usage: tests/guest/vm.sh [options] -- COMMAND [ARGS...]
#        tests/guest/vm.sh --print-kver
#
# options:
#   --mem MB         guest memory (default 2048)
#   --smp N          guest CPUs (default 2)
#   --timeout SEC    wall-clock limit for the whole VM run (default 900)
#   --disk FILE      add FILE as a raw virtio disk (/dev/vda, vdb, ... in
#                    the order given); repeatable
#   --out DIR        results directory (default build/guest/out), emptied
#                    first
#   --qemu-arg ARG   extra qemu argument, e.g. for -netdev/-device; repeatable
#   --net listen:FILE | connect:FILE
#                    a virtio NIC on a qemu socket netdev on 127.0.0.1: the
#                    link between two guests, one started with listen, the
#                    other with connect.  listen: qemu listens on a port the
#                    kernel picks, and vm.sh writes "PORT PID" into FILE
#                    once it listens.  connect: vm.sh waits for FILE and for
#                    that qemu to listen (up to --timeout), then connects,
#                    and fails unless the connection is made.
#   --net-addr ADDR/LEN
#                    the guest's address on that NIC (e.g. 10.99.0.1/24);
#                    the MAC address is derived from it
#   --quiet          do not copy the serial console to the terminal
#   --print-kver     print the kernel version that would be booted and exit
#
# COMMAND runs in the guest as root, with bash, in the project directory.
# One argument is a shell command line (bash -c); several are an argv.
#
# The guest sees the host's whole filesystem read-only, with tmpfs on /tmp,
# /var/tmp, /run, /mnt, /root and /dev/shm, and the project directory and
# OUT read-write at their host paths.  Its environment has GUEST=1,
# KVER, VM_OUT=OUT, plus every DMREPL_* and TEST_* variable of the host and
# the variables named in VM_ENV (space separated).
#
# Environment (host):
#   KVER           kernel to boot (default: newest with /boot/vmlinuz-K and
#                  /lib/modules/K)
#   DMREPL_KO      path of a built dm-repl.ko: insmod'ed in the guest after
#                  dm-mod and libcrc32c; must match KVER
#   VM_DISK_CACHE  qemu cache mode for --disk (default writeback)
#   VM_DISK_DISCARD  qemu discard mode for --disk: unmap frees what the
#                  guest discards (reads as zeroes then); default qemu's
#                  ignore (discards succeed and change nothing)
#   VM_ENV         extra variable names to pass to the guest
#
# With --net, stage 2 loads virtio_net and sets the NIC up with ADDR
# before the command runs; the command sees its name in VM_NET_IF and the
# address in VM_NET_ADDR.  Two guests run at once when each has its own
# --out and its own disks.
#
# Results in OUT: console.log (serial console), output.log (command
# stdout+stderr), dmesg.log (full kernel log after the command), rc.
#
# Exit status: the command's, unless the harness failed:
#   123  kernel splat (BUG/WARNING/Oops/...) in the logs; lines are printed
#   124  timeout
#   125  no result (guest crashed or harness error)
set -euo pipefail

VM_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
# shellcheck source=tests/guest/lib-vm.sh
source "$VM_REPO/tests/guest/lib-vm.sh"

usage() {
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
	exit 125
}

mem=2048
smp=2
timeout=900
out="$VM_REPO/build/guest/out"
quiet=0
net=""
net_addr=""
disks=()
qemu_extra=()

while (($#)); do
	case "$1" in
	--mem) mem=${2:?--mem needs a value} && shift 2 ;;
	--smp) smp=${2:?--smp needs a value} && shift 2 ;;
	--timeout) timeout=${2:?--timeout needs a value} && shift 2 ;;
	--disk) disks+=("${2:?--disk needs a file}") && shift 2 ;;
	--out) out=${2:?--out needs a directory} && shift 2 ;;
	--qemu-arg) qemu_extra+=("${2:?--qemu-arg needs a value}") && shift 2 ;;
	--net) net=${2:?--net needs listen:FILE or connect:FILE} && shift 2 ;;
	--net-addr) net_addr=${2:?--net-addr needs ADDR/LEN} && shift 2 ;;
	--quiet) quiet=1 && shift ;;
	--print-kver) vm_find_kver && exit 0 ;;
	-h | --help) usage ;;
	--) shift && break ;;
	*) echo "vm.sh: unknown option: $1" >&2 && usage ;;
	esac
done
(($#)) || usage
for n in "$mem" "$smp" "$timeout"; do
	[[ "$n" =~ ^[1-9][0-9]*$ ]] || vm_die "not a positive number: $n"
done
case $net in
"") [[ -z $net_addr ]] || vm_die "--net-addr needs --net" ;;
listen:?* | connect:?*) [[ -n $net_addr ]] || vm_die "--net needs --net-addr" ;;
*) vm_die "--net $net: not listen:FILE or connect:FILE" ;;
esac
if [[ -n $net_addr ]]; then
	mac=$(vm_net_mac "$net_addr") || vm_die "--net-addr $net_addr: not an IPv4 ADDR/LEN"
fi

kver=$(vm_find_kver)
command -v qemu-system-x86_64 >/dev/null || vm_die "no qemu-system-x86_64 (run tests/install-deps.sh)"
initramfs=$(vm_build_initramfs "$kver")

# --- results directory -----------------------------------------------------
# It is emptied, so refuse a non-empty directory that vm.sh did not create.
mkdir -p "$out"
out=$(cd "$out" && pwd -P)
if [[ -n "$(ls -A "$out")" && ! -e "$out/.vm-out" ]]; then
	vm_die "--out $out is not empty and was not made by vm.sh; refusing to empty it"
fi
find "$out" -mindepth 1 -delete
touch "$out/.vm-out"

# Single-quote a string for busybox sh (stage 1 cannot read bash's %q).
sq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

{
	echo "VM_REPO=$(sq "$VM_REPO")"
	echo "VM_OUT=$(sq "$out")"
	echo "VM_KVER=$(sq "$kver")"
} >"$out/vm.conf"

# Stage 2 (bash) sources env.sh: the command and its environment.
{
	printf 'VM_REPO=%q\nVM_OUT=%q\nVM_KVER=%q\n' "$VM_REPO" "$out" "$kver"
	printf 'export GUEST=1 KVER=%q VM_OUT=%q\n' "$kver" "$out"
	[[ -z $net_addr ]] || printf 'export VM_NET_ADDR=%q\n' "$net_addr"
	read -r -a extra_names <<<"${VM_ENV:-}"
	for name in $(compgen -e | grep -E '^(DMREPL|TEST)_' || true) "${extra_names[@]}"; do
		[[ -v "$name" ]] && printf 'export %s=%q\n' "$name" "${!name}"
	done
	printf 'VM_CMD=('
	printf ' %q' "$@"
	printf ' )\n'
} >"$out/env.sh"

if [[ -n "${DMREPL_KO:-}" ]]; then
	[[ -f "$DMREPL_KO" ]] || vm_die "DMREPL_KO=$DMREPL_KO: no such file (build the module first)"
	magic=$(modinfo -F vermagic "$DMREPL_KO" 2>/dev/null) || vm_die "DMREPL_KO=$DMREPL_KO: not a kernel module"
	[[ "${magic%% *}" == "$kver" ]] ||
		vm_die "DMREPL_KO=$DMREPL_KO was built for ${magic%% *}, the guest runs $kver"
	# A copy in OUT is visible in the guest whatever the original path was
	# (a module under the host's /tmp would be hidden by the guest's tmpfs).
	cp "$DMREPL_KO" "$out/dm-repl.ko"
fi

# --- qemu ------------------------------------------------------------------
# Disks: cache=writeback keeps guest flushes meaningful (they become
# fdatasync on the host) and works on any host filesystem (cache=none needs
# O_DIRECT, which tmpfs lacks).  Every write the guest saw complete is in the
# host page cache, so it survives killing qemu or resetting the guest.
disk_args=()
for d in "${disks[@]}"; do
	[[ -f "$d" || -b "$d" ]] || vm_die "--disk $d: no such file"
	# qemu option syntax: a literal comma is written twice.
	disk_args+=(-drive "file=${d//,/,,},if=virtio,format=raw,cache=${VM_DISK_CACHE:-writeback},aio=threads${VM_DISK_DISCARD:+,discard=$VM_DISK_DISCARD}")
done

# The link to another guest: qemu's socket netdev carries the Ethernet
# frames over one TCP connection on the host's loopback.  The listening side
# binds port 0, so two runs never race for a port; the connecting side gets
# the port from the listener's vm.sh.  qemu connects once and does not retry,
# and a connection refused leaves it running with a dead link, so connect
# only once that qemu listens.
net_args=()
port_file=${net#*:}
case $net in
listen:*)
	rm -f "$port_file"
	net_args=(-netdev "socket,id=n0,listen=127.0.0.1:0")
	;;
connect:*)
	port=$(vm_net_wait_listener "$port_file" "$timeout") ||
		vm_die "--net $net: no guest listening after ${timeout}s"
	net_args=(-netdev "socket,id=n0,connect=127.0.0.1:$port")
	;;
esac
[[ -z $net ]] || net_args+=(-device "virtio-net-pci,netdev=n0,mac=$mac")

virtfs=security_model=none,multidevs=remap
# shellcheck disable=SC2054 # the commas belong to qemu option values
qemu=(
	qemu-system-x86_64 -accel tcg,thread=multi -cpu max -m "$mem" -smp "$smp"
	-kernel "/boot/vmlinuz-$kver" -initrd "$initramfs"
	# loglevel=5 puts WARN()s (KERN_WARNING) on the console, which "quiet"
	# would hide; oops=panic ends the run at the first oops instead of
	# letting the test hang until the timeout.
	-append "console=ttyS0 loglevel=5 printk.time=1 panic=-1 oops=panic edd=off"
	-nographic -no-reboot -nic none
	-virtfs "local,path=/,mount_tag=hostroot,$virtfs,readonly=on"
	-virtfs "local,path=$VM_REPO,mount_tag=repo,$virtfs"
	-virtfs "local,path=$out,mount_tag=out,$virtfs"
	"${disk_args[@]}" "${net_args[@]}" "${qemu_extra[@]}"
)

console="$out/console.log"
pidfile="$out/qemu.pid"

# If vm.sh is interrupted, take qemu down with it rather than leave it
# running until the timeout.
# shellcheck disable=SC2317 # called from the trap
stop_qemu() {
	if [[ -s "$pidfile" ]]; then
		kill "$(cat "$pidfile")" 2>/dev/null || true
	fi
}
trap 'stop_qemu; echo "vm.sh: interrupted" >&2; exit 130' INT TERM

start=$SECONDS
# stdin from /dev/null: qemu must not put the terminal into raw mode, and the
# guest has no use for input.  Serial output has CRLF line ends and SeaBIOS
# sends terminal resets (ESC c, ESC [2J): drop them so that neither the log
# nor the terminal is mangled.
# The pipeline runs in the background so that the trap above can fire while
# we wait for it (bash defers traps until a foreground job ends).
{
	qemu_rc=0
	timeout -k 10 "$timeout" "${qemu[@]}" -pidfile "$pidfile" </dev/null 2>&1 || qemu_rc=$?
	echo "$qemu_rc" >"$out/qemu.rc"
} | sed -u -e 's/\r//g' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1bc//g' | if ((quiet)); then cat >"$console"; else tee "$console"; fi &
pipeline=$!
net_error=""
case $net in
listen:*)
	vm_net_publish "$pidfile" "$port_file" "$out/qemu.rc" ||
		net_error="qemu did not listen on 127.0.0.1 for the link (see $console)"
	;;
connect:*)
	vm_net_connected "$pidfile" "$port" "$out/qemu.rc" ||
		net_error="qemu did not connect to 127.0.0.1:$port for the link (see $console)"
	;;
esac
# A guest without its link would only wait for its peer until the timeout.
[[ -z $net_error ]] || stop_qemu
wait $pipeline || true
trap - INT TERM
qemu_rc=$(cat "$out/qemu.rc" 2>/dev/null || echo 125)
elapsed=$((SECONDS - start))

# --- verdict ---------------------------------------------------------------
status=0
if [[ -n $net_error ]]; then
	echo "vm.sh: --net $net: $net_error" >&2
	status=125
elif ((qemu_rc == 124 || qemu_rc == 137)); then
	echo "vm.sh: TIMEOUT: guest killed after ${timeout}s: $*" >&2
	status=124
elif ((qemu_rc != 0)); then
	echo "vm.sh: qemu exited with status $qemu_rc (see $console)" >&2
	status=125
fi

splats=$(vm_scan_kernel_log "$out/dmesg.log" "$console")
if [[ -n "$splats" ]]; then
	echo "vm.sh: KERNEL SPLAT in the guest (see $console):" >&2
	printf '%s\n' "$splats" | sed 's/^/vm.sh:   /' >&2
	((status)) || status=123
fi

if ((status == 0)); then
	rc=$(cat "$out/rc" 2>/dev/null || true)
	if [[ ! "$rc" =~ ^[0-9]+$ ]]; then
		echo "vm.sh: no exit status from the guest (crash or early failure, see $console)" >&2
		status=125
	else
		status=$rc
	fi
fi

echo "vm.sh: kernel $kver, ${elapsed}s wall, exit status $status" >&2
exit "$status"
