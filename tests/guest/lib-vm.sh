# shellcheck shell=bash
# Helpers for tests/guest/vm.sh (host side).  Sourced, not executed.
#
#   vm_find_kver             print the kernel to boot (env KVER wins)
#   vm_build_initramfs KVER  print the path of a cached busybox initramfs
#   vm_scan_kernel_log F...  print kernel splat lines found in the logs
#   vm_net_mac ADDR/LEN      the MAC address of the guest with that address
#   vm_net_publish, vm_net_wait_listener, vm_net_connected
#                            the two ends of a link between two guests
#
# Needs: VM_REPO (project top directory) set by the caller.

# Lines that mean the kernel is unhappy.  Extended regexps, one per entry.
VM_SPLAT_PATTERNS=(
	'BUG:'
	'WARNING:'
	'Oops'
	'KASAN'
	'general protection'
	'possible circular locking'
	'INFO: task .* blocked'
	'Kernel panic'
	'UBSAN'
	'list_add corruption'
	'list_del corruption'
	'kernel BUG'
)

# The 9p transport, virtio PCI and their dependencies: what stage 1 needs to
# reach the host's root.  Everything else is modprobe'd from the host's
# /lib/modules after switch_root.
VM_INITRAMFS_MODULES=(9p 9pnet_virtio virtio_pci)

vm_die() {
	echo "vm.sh: error: $*" >&2
	exit 125
}

# The newest installed kernel that has both an image and its modules.
vm_find_kver() {
	if [[ -n "${KVER:-}" ]]; then
		[[ -r "/boot/vmlinuz-$KVER" ]] || vm_die "KVER=$KVER: no /boot/vmlinuz-$KVER"
		[[ -d "/lib/modules/$KVER/kernel" ]] || vm_die "KVER=$KVER: no /lib/modules/$KVER"
		echo "$KVER"
		return
	fi
	local img k found=()
	for img in /boot/vmlinuz-*; do
		[[ -e "$img" ]] || continue
		k=${img#/boot/vmlinuz-}
		[[ -d "/lib/modules/$k/kernel" ]] && found+=("$k")
	done
	((${#found[@]})) || vm_die "no kernel with both /boot/vmlinuz-K and /lib/modules/K (run tests/install-deps.sh)"
	printf '%s\n' "${found[@]}" | sort -V | tail -n 1
}

# Copy one module into DIR as a plain .ko (busybox insmod cannot
# decompress), print its file name.
vm__copy_module() {
	local src=$1 dir=$2 name
	name=$(basename "$src")
	case "$src" in
	*.ko) cp "$src" "$dir/$name" ;;
	*.ko.xz) name=${name%.xz} && xz -dc "$src" >"$dir/$name" ;;
	*.ko.zst) name=${name%.zst} && zstd -qdc "$src" >"$dir/$name" ;;
	*.ko.gz) name=${name%.gz} && gzip -dc "$src" >"$dir/$name" ;;
	*) vm_die "unknown module format: $src" ;;
	esac
	echo "$name"
}

# Build (or reuse) build/guest/initramfs-KVER.cpio and print its path.
# The cache key covers the scripts that end up in or shape the image, the
# busybox binary and the module files, so a new NN or an edit rebuilds it.
vm_build_initramfs() {
	local kver=$1
	local dir="$VM_REPO/build/guest"
	local img="$dir/initramfs-$kver.cpio"
	local busybox=/bin/busybox
	local modpaths key stage ko

	[[ -x "$busybox" ]] || vm_die "no $busybox (apt-get install busybox-static)"
	# A dynamically linked busybox would not run in the initramfs.
	if [[ "$(LC_ALL=C ldd "$busybox" 2>&1 || true)" != *"not a dynamic executable"* ]]; then
		vm_die "$busybox is not static (apt-get install busybox-static)"
	fi

	# modprobe prints "insmod PATH" in load order; a module shared by two
	# chains appears twice, keep the first.
	modpaths=$(modprobe -S "$kver" --show-depends -a "${VM_INITRAMFS_MODULES[@]}" |
		awk '$1 == "insmod" && !seen[$2]++ { print $2 }') ||
		vm_die "modprobe --show-depends failed for $kver"
	[[ -n "$modpaths" ]] || vm_die "no 9p/virtio modules found for $kver"

	# shellcheck disable=SC2086 # modpaths: one path per line, no spaces
	key=$({
		echo "$kver"
		sha256sum "$VM_REPO/tests/guest/vm.sh" "$VM_REPO/tests/guest/lib-vm.sh" \
			"$VM_REPO/tests/guest/init.sh" "$busybox" $modpaths
	} | sha256sum | cut -d' ' -f1)

	if [[ -s "$img" && -r "$img.key" && "$(cat "$img.key")" == "$key" ]]; then
		echo "$img"
		return
	fi

	mkdir -p "$dir"
	stage=$(mktemp -d "$dir/initramfs.XXXXXX")
	mkdir -p "$stage/bin" "$stage/lib/modules"
	cp "$busybox" "$stage/bin/busybox"
	install -m 755 "$VM_REPO/tests/guest/init.sh" "$stage/init"
	for ko in $modpaths; do
		vm__copy_module "$ko" "$stage/lib/modules" >>"$stage/lib/modules/order"
	done
	# Uncompressed newc cpio: the kernel unpacks it directly; the image is
	# ~3 MB, so compressing would only cost time.
	(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) >"$stage.cpio"
	rm -rf "$stage"
	# Rename last so that a concurrent vm.sh never sees a partial image.
	echo "$key" >"$stage.key"
	mv -f "$stage.cpio" "$img"
	mv -f "$stage.key" "$img.key"
	echo "vm.sh: built $img" >&2
	echo "$img"
}

# Print the lines of the given kernel logs that match a splat pattern, each
# once.  For the serial console only kernel lines count (they start with a
# "[  seconds]" timestamp: printk.time=1), so that a test printing the word
# "BUG:" in its own output does not fail the run.
vm_scan_kernel_log() {
	local re f
	re=$(
		IFS='|'
		echo "${VM_SPLAT_PATTERNS[*]}"
	)
	for f in "$@"; do
		[[ -r "$f" ]] || continue
		tr -d '\r' <"$f" | grep -E '^\[ *[0-9]+\.[0-9]+\]' | grep -E -- "$re" || true
	done | awk '!seen[$0]++'
}

# --- a link between two guests (vm.sh --net) --------------------------------

# vm_net_mac ADDR/LEN: a locally administered MAC address made of the IPv4
# address (52:54 is qemu's prefix), so that two guests never share one.
vm_net_mac() {
	local a b c d len
	IFS=./ read -r a b c d len <<<"$1"
	[[ $1 =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+/[0-9]+$ ]] || return 1
	((a < 256 && b < 256 && c < 256 && d < 256 && len <= 32)) || return 1
	printf '52:54:%02x:%02x:%02x:%02x\n' "$a" "$b" "$c" "$d"
}

# vm_net_listening PID: the port that process PID listens on at 127.0.0.1,
# if any.
vm_net_listening() {
	ss -Hltnp 'src 127.0.0.1' 2>/dev/null |
		awk -v p="pid=$1," 'index($0, p) { n = split($4, a, ":"); print a[n]; exit }'
}

# vm_net_publish PIDFILE FILE RCFILE: wait until the qemu of PIDFILE
# listens, then write "PORT PID" into FILE (whole: a rename).  Fails when
# qemu ended first (RCFILE exists) or did not listen within 60 s.
vm_net_publish() {
	local pidfile=$1 file=$2 rcfile=$3 pid port i
	for ((i = 0; i < 600; i++)); do
		[[ -e $rcfile ]] && return 1
		if [[ -s $pidfile ]]; then
			pid=$(cat "$pidfile")
			port=$(vm_net_listening "$pid")
			if [[ -n $port ]]; then
				echo "$port $pid" >"$file.tmp" && mv -f "$file.tmp" "$file"
				return
			fi
		fi
		sleep 0.1
	done
	return 1
}

# vm_net_wait_listener FILE SECONDS: wait (up to SECONDS) until FILE names
# a qemu that listens on its port, and print the port.  A FILE left by an
# earlier run names a process that is gone or a port it no longer listens
# on (qemu accepts one connection, then closes its listening socket): it is
# waited past.
vm_net_wait_listener() {
	local file=$1 end=$((SECONDS + $2)) port pid
	while ((SECONDS < end)); do
		if [[ -s $file ]] && read -r port pid <"$file" &&
			[[ -n $pid && $(vm_net_listening "$pid") == "$port" ]]; then
			echo "$port"
			return
		fi
		sleep 0.2
	done
	return 1
}

# vm_net_connected PIDFILE PORT RCFILE: wait until the qemu of PIDFILE has
# a connection to 127.0.0.1:PORT.  Fails when qemu ended first or did not
# connect within 60 s.
vm_net_connected() {
	local pidfile=$1 port=$2 rcfile=$3 pid i
	for ((i = 0; i < 600; i++)); do
		[[ -e $rcfile ]] && return 1
		if [[ -s $pidfile ]]; then
			pid=$(cat "$pidfile")
			ss -Htnp state established "dst 127.0.0.1:$port" 2>/dev/null |
				grep -qF "pid=$pid," && return
		fi
		sleep 0.1
	done
	return 1
}
