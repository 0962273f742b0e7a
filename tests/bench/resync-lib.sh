# shellcheck shell=bash
# The resync under a stream, measured the same way by both resync
# benchmarks: tests/bench/resync-guest.sh (two sites in one guest, network
# namespaces joined by veth) and tests/bench/two-guests-guest.sh (two
# guests over a virtio link). Source it after tests/guest/lib.sh; the
# caller's W is a work folder, REPLTOOL the tool.

RS_FIO_PID="" RS_SAMPLER_PID=""

# resync_cleanup: the stream's fio and the sampler of a run cut short (for
# the caller's exit trap: its own clean-up waits for every job).
resync_cleanup() {
	[[ -n $RS_FIO_PID ]] && kill "$RS_FIO_PID" 2>/dev/null
	[[ -n $RS_SAMPLER_PID ]] && kill "$RS_SAMPLER_PID" 2>/dev/null
	return 0
}

# mbs BYTES SECONDS: MB/s (10^6 bytes).
mbs() {
	awk -v b="$1" -v s="$2" 'BEGIN { printf "%.2f", (s > 0 ? b / s / 1e6 : 0) }'
}

# percentile P: the P-th percentile of the numbers on stdin (nearest rank).
percentile() {
	sort -g | awk -v p="$1" '{ v[NR] = $1 } END { i = int(NR * p / 100 + 0.999); if (i < 1) i = 1; print NR ? v[i] : "-" }'
}

# cpu_ticks: the clock ticks this machine's CPUs were busy so far (all of
# them together).
cpu_ticks() {
	awk '{ all = 0; for (i = 2; i <= NF; i++) all += $i; print all - $5 - $6; exit }' /proc/stat
}

# The sampler: one `repltool status --interval 200ms` for the whole run
# and one awk that turns each report into a line of W/samples.raw (a
# process or two each 0.2 s, or bash parsing every line, would cost more
# CPU than the run can spare under TCG): the time, repld's lag_seconds,
# link state and resync budget, then the kernel's state, dirty regions,
# resynced regions, overflows and next_seq of the group, repld's
# acked_seq, and why the controller holds the resync back (resync_throttled,
# spaces as _); "-" for what it lacks. rs_next_sample reads them as they come.
#
# rs_sampler_start SOCK GROUP
rs_sampler_start() {
	: >"$W/samples.raw"
	exec 4<"$W/samples.raw"
	"$REPLTOOL" status --socket "$1" --interval 200ms "$2" 2>/dev/null > >(awk '
		function f(k) { return (k in v) && v[k] != "" ? v[k] : "-" }
		function emit() {
			print t, f("link:lag_seconds"), f("link:link"), f("link:resync_budget_bytes_per_s"),
				f("kernel:state"), f("kernel:dirty_regions"), f("kernel:resynced_regions"),
				f("kernel:overflows"), f("kernel:next_seq"), f("link:acked_seq"),
				f("link:resync_throttled")
			fflush()
		}
		$1 == "time" { if (t != "") emit(); t = $2; s = "kernel"; split("", v); next }
		NF == 1 && $1 == "link" { s = "link"; next }
		# Why the controller holds the resync back: one field, _ for spaces.
		s == "link" && $1 == "resync_throttled" {
			$1 = ""; sub(/^ +/, ""); gsub(/ /, "_"); v["link:resync_throttled"] = $0; next
		}
		NF && !((s ":" $1) in v) { v[s ":" $1] = $2 }' >>"$W/samples.raw") &
	RS_SAMPLER_PID=$!
}

rs_sampler_stop() {
	kill "$RS_SAMPLER_PID"
	wait "$RS_SAMPLER_PID" 2>/dev/null || true
	RS_SAMPLER_PID=""
	exec 4<&-
}

# rs_next_sample: the next line of the samples into $sample; false if none yet.
sample_partial=""
rs_next_sample() {
	local line=""
	if ! IFS= read -r line <&4; then
		sample_partial+=$line	# a line not yet ended: the rest comes later
		return 1
	fi
	sample=$sample_partial$line
	sample_partial=""
}

# rs_stream_start DEV RATE: fio's 4 KiB random writes at RATE bytes/s, in
# the background until rs_stream_stop.
rs_stream_start() {
	fio --name=stream --filename="$1" --direct=1 --ioengine=libaio \
		--iodepth=1 --rw=randwrite --bs=4k --rate="$2" --time_based --runtime=3600 \
		--refill_buffers --randrepeat=0 --output-format=terse --terse-version=3 \
		--output="$W/stream.out" &
	RS_FIO_PID=$!
}

# rs_stream_stop: fio stopped; RS[stream_got] the bytes/s it wrote (not
# in a subshell: only this shell can wait for fio).
rs_stream_stop() {
	kill -INT "$RS_FIO_PID"
	# (fio exits 1 when stopped by a signal: its figures tell whether it ran)
	wait "$RS_FIO_PID"
	RS_FIO_PID=""
	# terse v3: field 48 is the write bandwidth in KiB/s
	RS[stream_got]=$(awk -F';' 'NF > 49 { printf "%d", $48 * 1024 }' "$W/stream.out")
}

# resync_under_stream GROUP SOCK DEV STREAM TIMEOUT SAMPLES START...
#
# GROUP is behind on this primary (dirty regions in its bitmap) and no
# repld ships it yet; its replica's repld listens. START... starts the
# primary's repld, whose control socket is SOCK. From the first sample with
# the link connected on, fio writes a stream of STREAM bytes/s to DEV (the
# stream's records do not wait for the connection; its lag is what the
# resync may cost it). The run ends when GROUP is uptodate with no dirty
# region. SAMPLES gets a line each 0.2 s, its time in seconds from START:
# repld's lag_seconds, link state and resync budget, the kernel's state,
# dirty regions, resynced regions, overflows and next_seq, repld's
# acked_seq.
#
# Fills the associative array RS: dirty (regions at the start), resynced,
# overflows, region (bytes), t_conn (the connection, s from START), t_end
# (uptodate), secs (t_end - t_conn), stream_asked and stream_got (bytes/s),
# lag_n, lag_every (the samples of the stream's lag, from the time every
# record older than the stream was acknowledged to uptodate, and their
# spacing in fact), lag_p50, lag_p99, lag_max (s), t_stream, t_lag,
# busy_s (CPU-seconds of this machine from START to uptodate), budget_p50.
# False, with a word on stderr, when GROUP is not uptodate within TIMEOUT
# seconds or the stream gave no figures. Call it as a command of its own
# or with ||, never in a subshell (fio and the sampler are its jobs).
declare -A RS
resync_under_stream() {
	local group=$1 sock=$2 dev=$3 stream=$4 timeout=$5 samples=$6
	local t0 end t lstate kstate kdirty kseq b0 b1 res0 ov0 seq_stream
	shift 6
	RS=()
	RS[dirty]=$(status_of "$group" dirty_regions)
	RS[region]=$(($(status_of "$group" region_sectors) * 512))
	RS[stream_asked]=$stream
	res0=$(status_of "$group" resynced_regions) ov0=$(status_of "$group" overflows)
	t0=$EPOCHREALTIME
	b0=$(cpu_ticks)
	"$@" || return 1
	end=$((SECONDS + timeout))
	rs_sampler_start "$sock" "$group"
	while ((SECONDS < end)); do
		if ! rs_next_sample; then
			sleep 0.1
			continue
		fi
		read -r t _ lstate _ kstate kdirty _ _ kseq _ <<<"$sample"
		if [[ -z $RS_FIO_PID && $lstate == connected ]]; then
			rs_stream_start "$dev" "$stream"
			echo "$t $kseq" >"$W/stream.mark"
		fi
		[[ -n $RS_FIO_PID && $kstate == uptodate && $kdirty == 0 ]] && break
	done
	b1=$(cpu_ticks)
	rs_sampler_stop
	awk -v t0="$t0" '{ $1 = sprintf("%.2f", $1 - t0); print }' "$W/samples.raw" >"$samples"
	RS[busy_s]=$(awk -v b="$((b1 - b0))" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", b / hz }')
	# The connection: the first sample with the link connected; the end: uptodate.
	read -r 'RS[t_conn]' 'RS[t_end]' < <(awk '!c && $3 == "connected" { c = $1 }
		c && $5 == "uptodate" && $6 == 0 { print c, $1; exit }' "$samples")
	if [[ -z ${RS[t_end]:-} ]]; then
		echo "$group not uptodate after $timeout s: $(tail -1 "$samples")" >&2
		return 1
	fi
	RS[resynced]=$(($(status_of "$group" resynced_regions) - res0))
	RS[overflows]=$(($(status_of "$group" overflows) - ov0))
	rs_stream_stop
	if [[ -z ${RS[stream_got]} ]]; then
		echo "no figures from the stream's fio: $(tail -3 "$W/stream.out")" >&2
		return 1
	fi
	RS[secs]=$(awk -v a="${RS[t_conn]}" -v b="${RS[t_end]}" 'BEGIN { printf "%.2f", b - a }')
	read -r 'RS[t_stream]' seq_stream < <(awk -v t0="$t0" '{ printf "%.2f %s\n", $1 - t0, $2 }' \
		"$W/stream.mark")
	rs_lag "$samples" "$seq_stream" || return 1
	RS[budget_p50]=$(awk -v a="${RS[t_conn]}" -v b="${RS[t_end]}" \
		'$1 >= a && $1 <= b && $4 != "-" { print $4 }' "$samples" | percentile 50)
}

# rs_lag SAMPLES SEQ: RS's lag_* and t_lag from the samples once every
# record before SEQ (the stream's first) was acknowledged (the ring's
# backlog from the time with no repld), to uptodate.
rs_lag() {
	awk -v s="$2" -v b="${RS[t_end]}" '$10 != "-" && $10 >= s - 1 && $1 <= b && $2 != "-" { print $1, $2 }' \
		"$1" >"$W/lags"
	RS[lag_n]=$(wc -l <"$W/lags")
	if ((RS[lag_n] == 0)); then
		echo "no sample of the stream's lag" >&2
		return 1
	fi
	RS[t_lag]=$(head -1 "$W/lags" | cut -d' ' -f1)
	RS[lag_every]=$(awk '{ if (n++ == 0) f = $1; l = $1 } END { printf "%.2f", (n > 1 ? (l - f) / (n - 1) : 0) }' "$W/lags")
	cut -d' ' -f2 "$W/lags" >"$W/lag-values"
	RS[lag_p50]=$(percentile 50 <"$W/lag-values")
	RS[lag_p99]=$(percentile 99 <"$W/lag-values")
	RS[lag_max]=$(percentile 100 <"$W/lag-values")
}

# resync_report LINK DIRTY_MB RING_MB VOL_MB STREAM_PCT: the report of
# resync_under_stream's run, lines of text; LINK is the link's rate in
# bytes/s, the rest what the caller set up (the MiB written with no repld,
# the ring, the volume, the stream's share of the link).
resync_report() {
	local link=$1 rbytes=$((RS[resynced] * RS[region]))
	echo "resync: $2 MiB of random data written with no repld into a $3 MiB ring:" \
		"${RS[dirty]} regions of $((RS[region] >> 10)) KiB dirty on a $4 MiB volume; then repld's" \
		"defaults (resync-lag-target 1s, no resync-rate), zstd, TLS"
	echo "stream: fio 4 KiB random writes at $5% of the link (${RS[stream_asked]} bytes/s asked):" \
		"$(mbs "${RS[stream_got]}" 1) MB/s"
	echo "resync: ${RS[resynced]} regions ($(mbs "$rbytes" 1) MB) resynced in ${RS[secs]} s, from" \
		"the link's connection (${RS[t_conn]} s after repld's start) to uptodate:" \
		"$(mbs "$rbytes" "${RS[secs]}") MB/s"
	awk -v r="$rbytes" -v s="${RS[secs]}" -v l="$link" -v m="${RS[stream_got]}" 'BEGIN {
		printf "resync / (link - stream): %.2f (goal >= 0.8); resync / link: %.2f\n",
			r / s / (l - m), r / s / l }'
	echo "stream lag during the resync (${RS[lag_n]} samples of repld's lag_seconds, every 0.2 s" \
		"asked, ${RS[lag_every]} s in fact): p50 ${RS[lag_p50]} s, p99 ${RS[lag_p99]} s, max" \
		"${RS[lag_max]} s (goal p99 < 2 s); the stream started ${RS[t_stream]} s after repld, its" \
		"records alone from ${RS[t_lag]} s (once the backlog of the time with no repld was acknowledged)"
	awk -v b="${RS[busy_s]}" -v a="${RS[t_end]}" -v n="$(nproc)" 'BEGIN {
		printf "CPUs during the resync (from repld'"'"'s start, %d of them): %.2f CPU-s busy in %.2f s, %.0f%% of them\n",
			n, b, a, 100 * b / a / n }'
	echo "repld's resync budget (resync_budget_bytes_per_s) over the samples: p50 ${RS[budget_p50]} bytes/s"
	echo "writes that overflowed the ring during the resync: ${RS[overflows]}"
}
