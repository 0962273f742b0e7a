# shellcheck shell=bash
# The host half of the tests that cut a guest's power (tests/crash.sh,
# tests/apply-crash.sh): boot the guest on disk files that survive a reset,
# and judge how each boot ended. Source it after setting
#   TOP           the project directory
#   DIR           the test's build directory, holding the disk files
#   DISKS         the disk files in DIR, in /dev/vda, vdb, ... order
#   GUEST_SCRIPT  what each boot runs (a script under tests/guest/)
#   BOOT_TIMEOUT  seconds a boot may take

# boot N ARGS...: guest boot N running GUEST_SCRIPT ARGS; sets $status.
# vm.sh's own messages (status, splat lines) go to DIR/vm-N.log, the boot's
# output to DIR/out-N/.
boot() {
	local n=$1 d
	local disk_args=()
	shift
	for d in "${DISKS[@]}"; do
		disk_args+=(--disk "$DIR/$d")
	done
	DMREPL_KO=$TOP/dm-repl.ko tests/guest/vm.sh --quiet --timeout "$BOOT_TIMEOUT" \
		"${disk_args[@]}" --out "$DIR/out-$n" -- bash "$GUEST_SCRIPT" "$@" \
		>"$DIR/vm-$n.log" 2>&1
	status=$?
}

# boot_trouble N EXPECTED: why boot N did not end as EXPECTED ("reset" or
# "exit 0"), or nothing if it did.
boot_trouble() {
	local n=$1 expected=$2 out=$DIR/out-$1
	if ((status == 123)); then
		echo "kernel splat in boot $n:"
		grep 'vm.sh:   ' "$DIR/vm-$n.log" | head -20
	elif ((status == 124)); then
		echo "boot $n timed out after ${BOOT_TIMEOUT}s"
	elif [[ $expected == reset ]]; then
		if ((status == 125)) && [[ -s $out/reset && ! -e $out/rc ]]; then
			return
		fi
		echo "boot $n did not reset when expected (vm.sh status $status):"
		tail -15 "$out/output.log" 2>/dev/null
	elif ((status != 0)); then
		echo "boot $n ended with status $status instead of 0:"
		tail -15 "$out/output.log" 2>/dev/null
	fi
}
