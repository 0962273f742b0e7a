# shellcheck shell=bash
# Two hosts, each its own guest, joined by a virtio link (host side): what
# tests/two-guests.sh and tests/bench/two-guests.sh share. Source it after
# tests/guest/lib-vm.sh.
#
# The caller sets TOP (the repository), TG_DIR (the run's folder: the
# link's port file, sync/ where the guests meet, and per site out-SITE/
# and vm-SITE.log), TG_TIMEOUT (vm.sh's guard against a hang), and for
# each site TG_ADDR[SITE] (its address on the link) and TG_NET[SITE]
# (listen or connect: start the listening site first).
#
#   tg_start SITE [VM.SH OPTIONS...] -- CMD...
#                  its vm.sh in the background (dm-repl.ko loaded, the link
#                  up), running CMD in the guest; the caller's environment
#                  reaches vm.sh (TEST_*, VM_ENV, VM_DISK_*)
#   tg_wait        until every guest started has ended: TG_STATUS[SITE] is
#                  its vm.sh's exit status; one that failed tells its peer
#                  (sync/SITE.failed), which would otherwise wait for it
#   tg_stop        take down the guests still running (for a trap on EXIT)
#   tg_scan SITE   its kernel log's splat lines, if any

declare -A TG_PID=() TG_STATUS=() TG_ADDR=() TG_NET=()

tg_start() {
	local s=$1 opts=()
	shift
	while (($#)) && [[ $1 != -- ]]; do
		opts+=("$1")
		shift
	done
	shift
	DMREPL_KO=$TOP/dm-repl.ko "$TOP/tests/guest/vm.sh" --quiet --timeout "$TG_TIMEOUT" \
		--net "${TG_NET[$s]}:$TG_DIR/link.port" --net-addr "${TG_ADDR[$s]}/24" \
		"${opts[@]}" --out "$TG_DIR/out-$s" -- "$@" >"$TG_DIR/vm-$s.log" 2>&1 &
	TG_PID[$s]=$!
}

tg_wait() {
	local s rc done_pid running
	while ((${#TG_STATUS[@]} < ${#TG_PID[@]})); do
		running=()
		for s in "${!TG_PID[@]}"; do
			[[ -v TG_STATUS[$s] ]] || running+=("${TG_PID[$s]}")
		done
		done_pid=""
		wait -n -p done_pid "${running[@]}"
		rc=$?
		[[ -n $done_pid ]] || { echo "tg_wait: wait for the guests failed (status $rc)" >&2 && return 1; }
		for s in "${!TG_PID[@]}"; do
			[[ ${TG_PID[$s]} == "$done_pid" ]] || continue
			TG_STATUS[$s]=$rc
			if ((rc != 0)) && [[ ! -e $TG_DIR/sync/$s.failed ]]; then
				echo "its guest ended, vm.sh status $rc" >"$TG_DIR/sync/$s.failed"
			fi
		done
	done
}

# A guest that ended was reaped: its pid is not ours any more.
# shellcheck disable=SC2317 # called from a trap
tg_stop() {
	local s
	for s in "${!TG_PID[@]}"; do
		[[ -v TG_STATUS[$s] ]] || kill "${TG_PID[$s]}" 2>/dev/null
	done
}

tg_scan() {
	vm_scan_kernel_log "$TG_DIR/out-$1/dmesg.log" "$TG_DIR/out-$1/console.log"
}
