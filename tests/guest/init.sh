#!/bin/busybox sh
# shellcheck shell=dash
# Stage 1 of the test guest: the /init of the busybox initramfs that
# tests/guest/vm.sh builds.  It runs as PID 1 under busybox sh (not bash).
#
# It loads the virtio/9p modules shipped in the initramfs, mounts the host's
# root read-only (9p tag "hostroot") on /newroot, puts tmpfs where the guest
# must write, mounts the project directory (tag "repo") and the output
# directory (tag "out") read-write at their host paths, and then
# switch_root's into the host userland to run stage 2
# (tests/guest/guest-run.sh) as the new PID 1.
#
# switch_root (not a chroot in a child) matters: the kernel runs its
# usermode helpers (request_module -> /sbin/modprobe) with PID 1's root, so
# automatic module loading (e.g. crc32c for libcrc32c) only finds the host's
# /lib/modules after PID 1 itself moved into /newroot.

/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin /proc /sys /dev /newroot /out
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys

# Any failure here leaves no rc file; the host reports that as a failure.
fail() {
	echo "vm-init: FATAL: $*"
	poweroff -f
	sleep 5
	echo o >/proc/sysrq-trigger
}

# /lib/modules/order lists the .ko files in load order (computed on the
# host with modprobe --show-depends).
while read -r ko; do
	[ -n "$ko" ] || continue
	insmod "/lib/modules/$ko" || fail "insmod $ko"
done </lib/modules/order

# The host root is read-only and does not change during a run, so the guest
# may cache it (cache=loose: ~40% faster boot+smoke than no caching).  The
# project and out mounts stay uncached so host and guest always agree.
opts=trans=virtio,version=9p2000.L,msize=262144
mount -t 9p -o "$opts,ro,cache=loose" hostroot /newroot || fail "mount hostroot"
mount -t 9p -o "$opts,rw" out /out || fail "mount out"

# vm.conf is written by vm.sh; it sets VM_REPO, VM_OUT and VM_KVER.
[ -r /out/vm.conf ] || fail "no /out/vm.conf"
# shellcheck source=/dev/null
. /out/vm.conf

# The host's /proc, /sys and /dev are visible through the 9p export: hide
# them behind the guest's own.
mount --move /dev /newroot/dev || fail "move /dev"
mount --move /proc /newroot/proc || fail "move /proc"
mount --move /sys /newroot/sys || fail "move /sys"
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /newroot/dev/pts
mount -t tmpfs -o mode=1777 tmpfs /newroot/dev/shm
# udev would make these; bash process substitution needs /dev/fd.
ln -sf /proc/self/fd /newroot/dev/fd
ln -sf /proc/self/fd/0 /newroot/dev/stdin
ln -sf /proc/self/fd/1 /newroot/dev/stdout
ln -sf /proc/self/fd/2 /newroot/dev/stderr

# Writable scratch space; everything else of the host root stays read-only.
for d in /tmp /var/tmp /run /mnt /root; do
	mode=755
	case "$d" in /tmp | /var/tmp) mode=1777 ;; esac
	mount -t tmpfs -o "mode=$mode" tmpfs "/newroot$d" || fail "tmpfs on $d"
done
mkdir -p /newroot/run/lock /newroot/run/shm

# Mounted after the tmpfs so that a project under /tmp (a CI clone) or
# /root is not hidden by them; mkdir -p is a no-op when the path already
# exists in the read-only host view.
mkdir -p "/newroot$VM_REPO" || fail "mkdir $VM_REPO"
mount -t 9p -o "$opts,rw" repo "/newroot$VM_REPO" || fail "mount repo at $VM_REPO"
mkdir -p "/newroot$VM_OUT" || fail "mkdir $VM_OUT"
mount --move /out "/newroot$VM_OUT" || fail "move out to $VM_OUT"

# shellcheck disable=SC2093 # only reached if switch_root fails
exec switch_root /newroot /bin/bash "$VM_REPO/tests/guest/guest-run.sh" "$VM_OUT"
fail "switch_root failed"
