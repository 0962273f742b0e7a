#!/bin/bash
# Stage 2 of the test guest: runs inside the host's (read-only) userland
# after tests/guest/init.sh switch_root'ed into it.
#
#   guest-run.sh OUTDIR
#
# OUTDIR/env.sh (written by vm.sh on the host) defines VM_REPO, VM_OUT,
# VM_KVER, the exported environment for the command (GUEST=1, KVER, DMREPL_*,
# TEST_*, VM_NET_ADDR with vm.sh --net, ...) and the VM_CMD array.  Results go back to the host through
# OUTDIR, which is a read-write 9p mount:
#   OUTDIR/output.log  the command's stdout+stderr (also on the console)
#   OUTDIR/dmesg.log   the whole kernel log, at every level, after the command
#   OUTDIR/rc          the command's exit status (written last)

out=${1:?usage: guest-run.sh OUTDIR}
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# As PID 1, only supervise: a PID 1 that exits panics the kernel, so the
# real work runs in a child (free to use set -e) and PID 1 powers the VM off
# whatever happens to it.  A child that fails early leaves no rc file, which
# the host reports.
if (($$ == 1)); then
	bash "$0" "$@"
	sync
	echo o >/proc/sysrq-trigger
	# sysrq-o is asynchronous: wait for it rather than exit.
	while :; do sleep 1; done
fi

set -euo pipefail
export HOME=/root LANG=C.UTF-8 TERM=dumb
umask 022

fail() {
	echo "vm-guest: FATAL: $*" >&2
	dmesg >"$out/dmesg.log" 2>&1 || true
	exit 1
}

# No udev in the guest: let libdevmapper (dmsetup) create and remove the
# /dev/mapper nodes itself.  env.sh may override it (VM_ENV=DM_DISABLE_UDEV).
export DM_DISABLE_UDEV=1

# shellcheck source=/dev/null
source "$out/env.sh" || fail "cannot read $out/env.sh"

ip link set lo up 2>/dev/null || true

# Modules every test wants.  virtio_blk is loaded here because nothing
# (no udev) would load it when --disk devices are present.
for m in dm-mod libcrc32c virtio_blk; do
	modprobe "$m" || fail "modprobe $m"
done

# vm.sh --net: the NIC of the link to another guest.  Without udev nothing
# loads its driver; the interface is the one virtio_net drives.
if [[ -n "${VM_NET_ADDR:-}" ]]; then
	modprobe virtio_net || fail "modprobe virtio_net"
	for d in /sys/class/net/*; do
		if [[ $(readlink "$d/device/driver") == */virtio_net ]]; then
			export VM_NET_IF=${d##*/}
			break
		fi
	done
	[[ -n "${VM_NET_IF:-}" ]] || fail "no interface of virtio_net"
	ip addr add "$VM_NET_ADDR" dev "$VM_NET_IF" || fail "ip addr add $VM_NET_ADDR"
	ip link set "$VM_NET_IF" up || fail "ip link set $VM_NET_IF up"
	echo "vm-guest: $VM_NET_IF is $VM_NET_ADDR"
fi

if [[ -n "${DMREPL_KO:-}" ]]; then
	# vm.sh copied the module into OUT so that any host path works.
	insmod "$out/dm-repl.ko" || fail "insmod $DMREPL_KO"
	echo "vm-guest: loaded $DMREPL_KO"
fi

cd "$VM_REPO" || fail "cd $VM_REPO"

# One argument is a shell command line; several are an argv.
if ((${#VM_CMD[@]} == 1)); then
	VM_CMD=(bash -c "${VM_CMD[0]}")
fi

echo "vm-guest: running: ${VM_CMD[*]}"
# Not a pipeline into tee: a daemon left running by the command would keep
# the pipe open and the pipeline would never end.  Give tee a moment to
# drain instead.
exec {log_fd}> >(tee "$out/output.log")
tee_pid=$!
rc=0
"${VM_CMD[@]}" </dev/null >&"$log_fd" 2>&1 {log_fd}>&- || rc=$?
exec {log_fd}>&-
for _ in $(seq 50); do
	kill -0 "$tee_pid" 2>/dev/null || break
	sleep 0.1
done
echo "vm-guest: command exited with status $rc"

dmesg >"$out/dmesg.log" 2>&1 || true
# Write-then-rename so that the host never reads a half-written rc.
echo "$rc" >"$out/rc.tmp"
mv "$out/rc.tmp" "$out/rc"
