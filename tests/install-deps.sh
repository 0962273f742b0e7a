#!/usr/bin/env bash
# Install every Debian package that building and testing dm-repl needs.
#
# Idempotent and fast when nothing is missing: it asks dpkg first and only
# runs apt-get (update + install) when at least one package is absent.
#
# Usage: tests/install-deps.sh [--check]
#   --check   only report missing packages; exit 1 if any are missing.
#
# Notes on the list:
#  * clang and libclang-rt-14-dev: libFuzzer (tests/fuzz); iproute2: ip netns
#    and tc netem for the two sites of tests/guest/repld.sh, tc tbf for the
#    capped link of tests/bench/two-guests.sh.
#  * drbd-utils: the comparison of `make bench` (tests/bench/two-guests.sh).
#    Debian's kernel has drbd.ko 8.4; drbd-utils 9.x drives it through its
#    drbdadm-84 compatibility.
#  * lvm2 and thin-provisioning-tools (thin_check, which activating a thin
#    pool runs): the thin LVs of tests/guest/snapshot.sh, which runs the
#    admin guide's snapshot-hook and runbook as written.
#  * linux-image-amd64 / linux-headers-amd64 are meta packages: they pull the
#    current 6.1.0-NN kernel, its modules and its kbuild tree.  The guest
#    harness (tests/guest/vm.sh) boots the newest installed one.
#  * --no-install-recommends is safe for qemu-system-x86: seabios and
#    ipxe-qemu (firmware it needs even with -kernel) are hard Depends.  What
#    is dropped (qemu-utils, qemu-system-gui, ovmf, qemu-block-extra) is not
#    used: disk images are plain raw files made with truncate.
#  * dkms hard-depends on gcc, make, dpkg-dev, patch and kmod; its Recommends
#    (fakeroot, sudo, linux-headers-*) are not needed as root, and the
#    headers are in the list anyway.
set -euo pipefail

# The one place where the package list lives.
PACKAGES=(
	build-essential
	linux-image-amd64
	linux-headers-amd64
	qemu-system-x86
	busybox-static
	fio
	dkms
	linux-source-6.1
	dmsetup
	kmod
	cpio
	e2fsprogs
	util-linux
	xz-utils
	libext2fs-dev
	comerr-dev
	libzstd-dev
	bc
	linux-perf
	libssl-dev
	openssl
	libdevmapper-dev
	clang
	libclang-rt-14-dev
	iproute2
	drbd-utils
	lvm2
	thin-provisioning-tools
)

check_only=0
case "${1:-}" in
--check) check_only=1 ;;
"") ;;
*)
	echo "usage: $0 [--check]" >&2
	exit 2
	;;
esac

# Print the packages of PACKAGES that dpkg does not report as installed.
missing_packages() {
	local pkg status
	for pkg in "${PACKAGES[@]}"; do
		status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
		if [[ "$status" != installed ]]; then
			echo "$pkg"
		fi
	done
}

mapfile -t missing < <(missing_packages)
if ((${#missing[@]} == 0)); then
	exit 0
fi

echo "install-deps: missing packages: ${missing[*]}" >&2
if ((check_only)); then
	exit 1
fi

if ((EUID != 0)); then
	echo "install-deps: must run as root to install packages" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
# Install the whole list, not only the missing ones: apt keeps what is
# already there and this also upgrades the kernel meta packages together.
apt-get install -y --no-install-recommends "${PACKAGES[@]}"

mapfile -t missing < <(missing_packages)
if ((${#missing[@]} != 0)); then
	echo "install-deps: still missing after apt-get: ${missing[*]}" >&2
	exit 1
fi
echo "install-deps: all packages installed" >&2
