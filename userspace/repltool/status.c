// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * repltool status: a group's role, state and counters, its volumes, and for
 * a secondary where applying stands, one fact per line (or one JSON object).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dmrepl.h"
#include "out.h"
#include "repltool.h"

void usage_status(FILE *f)
{
	fprintf(f,
"Usage: repltool status [-j|--json] [--socket PATH] [--interval TIME [--count N]]\n"
"                       [GROUP|PATH]\n"
"\n"
"Show a replication group as the module sees it: role, state, sequences and\n"
"counters of the group; each volume (index, data device, size, dirty regions);\n"
"for a secondary, the apply path (applied sequence and epoch, batches,\n"
"records, skipped, bytes, flushes, refused batches and the last refusal,\n"
"consistent or not, the markers applied last). One \"key value\" line per\n"
"fact. GROUP means /dev/dm-repl/GROUP.\n"
"\n"
"When repld runs on this host, the group's link follows: its site and the\n"
"peer's, the connection, sessions, batches, records, bytes before and after\n"
"compression and their ratio, the rate, and for a primary the lag in records,\n"
"bytes and seconds. Without GROUP, every group repld serves is shown.\n"
"\n"
"  -j, --json           one JSON object a group instead of text\n"
"  -S, --socket PATH    repld's control socket (default " DMREPL_REPLD_SOCKET ")\n"
"  -i, --interval TIME  show it again every TIME (100ms to 3600s, like 500ms or\n"
"                       2s), each time after a line \"time SECONDS\" (since the\n"
"                       epoch, to the millisecond; text only), until killed\n"
"  -c, --count N        with --interval: stop after N (1 to 1000000)\n"
"  -h, --help           show this text\n");
}

/* ---- the group -------------------------------------------------------------- */

static const char *state_name(__u32 state)
{
	switch (state) {
	case DM_REPL_STATE_UPTODATE:
		return "uptodate";
	case DM_REPL_STATE_BEHIND:
		return "behind";
	}
	return "unknown";
}

#define GI(field) { #field, offsetof(struct dm_repl_group_info, field) }
#define AI(field) { #field, offsetof(struct dm_repl_apply_info, field) }
#define VI(field) { "verify_" #field, offsetof(struct dm_repl_verify_info, field) }

/* __u64 fields shown as they are, in this order. */
struct u64_field {
	const char *key;
	size_t off;
};

static const struct u64_field group_fields[] = {
	GI(next_seq), GI(epoch), GI(released_seq), GI(data_size), GI(records),
	GI(record_bytes), GI(discarded), GI(overflows), GI(block_waits),
	GI(block_timeouts), GI(wakeups), GI(resync_regions), GI(departed_volumes),
	GI(resynced_regions), GI(resync_blocks_unsaved), GI(resync_blocks_saved),
	GI(resync_regions_released), GI(resync_held_volumes),
};

/* Streams are identifiers: shown in hex, as dmsetup status does. */
static void out_kv_stream(struct out *o, const char *key, __u64 stream)
{
	char hex[17];

	snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)stream);
	out_kv_str(o, key, hex);
}

static const struct u64_field apply_fields[] = {
	AI(applied_seq), AI(applied_epoch), AI(batches), AI(records), AI(skipped),
	AI(bytes), AI(flushes), AI(rejected),
};

/* What VERIFY records found (repltool verify); not_compared is "raced". */
static const struct u64_field verify_fields[] = {
	VI(compared), VI(bytes), { "verify_not_compared", offsetof(struct dm_repl_verify_info, raced) },
	VI(mismatches),
};

static void show_u64_fields(struct out *o, const void *info, const struct u64_field *f,
			    size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		out_kv_u64(o, f[i].key, *(const __u64 *)((const char *)info + f[i].off));
}

static void show_group(struct out *o, const char *path, const struct dm_repl_group_info *gi)
{
	char name[DM_REPL_GROUP_NAME_MAX + 1] = { 0 }, buf[32], why[160];

	memcpy(name, gi->name, DM_REPL_GROUP_NAME_MAX);
	out_kv_str(o, "group", name);
	out_kv_str(o, "device", path);
	out_kv_str(o, "role", role_name(gi->role, buf, sizeof(buf)));
	/* 0: none yet (a fresh replica, or one that rejoins its primary). */
	out_kv_stream(o, "generation", gi->gen_current);
	if (gi->flags & DM_REPL_GROUPF_REJOIN)
		out_kv_str(o, "rejoining", "takes the next stream its primary sends");
	if (gi->flags & DM_REPL_GROUPF_SEEDED) {
		char left[64];
		__u64 n = 0;
		__u32 i;

		/* A seeded replica's dirty bits: regions no verify found equal yet. */
		for (i = 0; i < gi->nr_volumes && i < DM_REPL_MAX_VOLUMES; i++)
			n += gi->volumes[i].dirty_regions;
		snprintf(left, sizeof(left), "not yet verified: %llu regions left",
			 (unsigned long long)n);
		out_kv_str(o, "seeded", left);
	}
	/* A secondary's ring waits, unused, for a promotion. */
	if (gi->role == DM_REPL_ROLE_SECONDARY)
		return;
	out_kv_str(o, "state", state_name(gi->state));
	out_kv_str(o, "behind_reasons",
		   dmrepl_behind_reasons(gi->behind_reasons, why, sizeof(why)));
	out_kv_stream(o, "stream", gi->stream);
	show_u64_fields(o, gi, group_fields, sizeof(group_fields) / sizeof(group_fields[0]));
	out_kv_u64(o, "ring_used", gi->producer_pos - gi->released_pos);
}

static void show_volume(struct out *o, const struct dm_repl_volume_info *v)
{
	char dev[32];

	snprintf(dev, sizeof(dev), "%u:%u", v->dev_major, v->dev_minor);
	out_open_object(o, NULL);
	out_text(o, "volume %u\n", v->index);
	out_u64(o, OUT_JSON, "index", NULL, v->index);
	o->kv_indent = 2;
	out_kv_str(o, "data_dev", dev);
	out_kv_u64(o, "sectors", v->sectors);
	out_kv_u64(o, "dirty_regions", v->dirty_regions);
	out_kv_u64(o, "nr_regions", v->nr_regions);
	out_kv_u64(o, "region_sectors", v->region_sectors);
	o->kv_indent = 0;
	out_close_object(o);
}

static void show_volumes(struct out *o, const struct dm_repl_group_info *gi)
{
	__u32 i, n = gi->nr_volumes;

	if (n > DM_REPL_MAX_VOLUMES)
		n = DM_REPL_MAX_VOLUMES;
	out_kv_key(o, "volumes");
	out_u64(o, OUT_TEXT, NULL, "%llu\n", n);
	out_open_array(o, "volumes");
	for (i = 0; i < n; i++)
		show_volume(o, &gi->volumes[i]);
	out_close_array(o);
}

/* ---- the apply path of a secondary ------------------------------------------- */

static void show_last_error(struct out *o, const struct dm_repl_apply_info *ai)
{
	const char *reason = dmrepl_apply_reason_name(ai->last_reason);
	char text[160];

	out_open_object(o, "last_error");
	out_kv_key(o, "last_error");
	if (!ai->last_error) {
		out_text(o, "none\n");
		out_u64(o, OUT_JSON, "errno", NULL, 0);
		out_close_object(o);
		return;
	}
	snprintf(text, sizeof(text), "%s at seq %llu (%s)", reason ? reason : "unknown reason",
		 (unsigned long long)ai->last_error_seq, strerror(-ai->last_error));
	out_text(o, "%s\n", text);
	out_u64(o, OUT_JSON, "errno", NULL, (unsigned long long)-ai->last_error);
	out_str(o, OUT_JSON, "error", NULL, strerror(-ai->last_error));
	out_u64(o, OUT_JSON, "reason", NULL, ai->last_reason);
	out_str(o, OUT_JSON, "reason_name", NULL, reason ? reason : "unknown reason");
	out_u64(o, OUT_JSON, "seq", NULL, ai->last_error_seq);
	out_close_object(o);
}

static void show_markers(struct out *o, const struct dm_repl_apply_info *ai)
{
	char label[sizeof(ai->markers[0].label) + 1];
	__u32 i, n = ai->nr_markers;

	if (n > DM_REPL_APPLY_MARKERS)
		n = DM_REPL_APPLY_MARKERS;
	out_open_array(o, "markers");
	for (i = 0; i < n; i++) {
		const struct dm_repl_applied_marker *m = &ai->markers[i];

		memcpy(label, m->label, sizeof(m->label));
		label[sizeof(m->label)] = '\0';
		out_open_object(o, NULL);
		out_kv_key(o, "marker");
		out_u64(o, OUT_ANY, "seq", "seq %llu", m->seq);
		out_u64(o, OUT_ANY, "epoch", " epoch %llu", m->epoch);
		out_str(o, OUT_ANY, "label", " \"%s\"\n", label);
		out_close_object(o);
	}
	out_close_array(o);
}

static const char *consistency_name(const struct dm_repl_apply_info *ai)
{
	if (ai->flags & DM_REPL_APPLYF_INCONSISTENT)
		return "inconsistent";
	if (ai->flags & DM_REPL_APPLYF_OUTDATED)
		return "outdated";
	return "consistent";
}

/*
 * Past a gap the replica is no state the primary had: what it last was,
 * and when the primary wrote that, is what an admin weighs before forcing
 * a promotion.
 */
static void show_consistent_point(struct out *o, const struct dm_repl_apply_info *ai)
{
	char when[64] = "unknown";
	time_t secs = (time_t)(ai->consistent_time_ns / 1000000000ULL);
	struct tm tm;

	if (!(ai->flags & DM_REPL_APPLYF_OUTDATED))
		return;
	out_kv_u64(o, "consistent_seq", ai->consistent_seq);
	if (ai->consistent_time_ns && gmtime_r(&secs, &tm))
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	out_kv_str(o, "consistent_time", when);
}

/*
 * Why a replica is inconsistent, from what the group shows: a rejoin or a
 * seed (each shown on its own line too), regions marked in its bitmap,
 * which it waits for its primary to resend; else a resync its primary
 * began, which ends consistent.
 */
static void show_inconsistent_reason(struct out *o, const struct dm_repl_group_info *gi,
				     const struct dm_repl_apply_info *ai)
{
	char why[96];
	__u64 marked = 0;
	__u32 i;

	if (!(ai->flags & DM_REPL_APPLYF_INCONSISTENT))
		return;
	for (i = 0; i < gi->nr_volumes && i < DM_REPL_MAX_VOLUMES; i++)
		marked += gi->volumes[i].dirty_regions;
	if (gi->flags & DM_REPL_GROUPF_REJOIN)
		snprintf(why, sizeof(why), "rejoining its primary");
	else if (gi->flags & DM_REPL_GROUPF_SEEDED)
		snprintf(why, sizeof(why), "seeded, not yet verified");
	else if (marked)
		snprintf(why, sizeof(why), "%llu regions marked, waiting for the primary to resend them",
			 (unsigned long long)marked);
	else
		snprintf(why, sizeof(why), "a resync from the primary, consistent at its end");
	out_kv_str(o, "inconsistent_reason", why);
}

/* vi: NULL when the module has no DM_REPL_IOC_VERIFY_INFO. */
static void show_apply(struct out *o, const struct dm_repl_group_info *gi,
		       const struct dm_repl_apply_info *ai, const struct dm_repl_verify_info *vi)
{
	out_open_object(o, "apply");
	out_text(o, "apply\n");
	o->kv_indent = 2;
	out_kv_str(o, "consistency", consistency_name(ai));
	show_inconsistent_reason(o, gi, ai);
	show_consistent_point(o, ai);
	out_kv_stream(o, "applied_stream", ai->applied_stream);
	show_u64_fields(o, ai, apply_fields, sizeof(apply_fields) / sizeof(apply_fields[0]));
	if (vi)
		show_u64_fields(o, vi, verify_fields,
				sizeof(verify_fields) / sizeof(verify_fields[0]));
	show_last_error(o, ai);
	show_markers(o, ai);
	o->kv_indent = 0;
	out_close_object(o);
}

/* ---- the command ---------------------------------------------------------------- */

static int show(const char *path, int fd, const struct dm_repl_group_info *gi, bool json,
		const char *link)
{
	struct dm_repl_apply_info ai;
	struct dm_repl_verify_info vi;
	bool have_vi = false;
	struct out o;
	int ret = 0;

	if (gi->role == DM_REPL_ROLE_SECONDARY) {
		ret = dmrepl_apply_info(fd, &ai);
		if (ret) {
			err_msg("%s: DM_REPL_IOC_APPLY_INFO: %s", path, strerror(-ret));
			return EXIT_RUNTIME;
		}
		have_vi = !dmrepl_verify_info(fd, &vi);
	}
	out_init(&o, stdout, json);
	o.kv_width = 18;
	out_open_object(&o, NULL);
	show_group(&o, path, gi);
	show_volumes(&o, gi);
	if (gi->role == DM_REPL_ROLE_SECONDARY)
		show_apply(&o, gi, &ai, have_vi ? &vi : NULL);
	if (link)
		show_link_facts(&o, link);
	out_close_object(&o);
	if (json)
		out_newline(&o);
	if (fflush(stdout)) {
		err_msg("write to stdout: %s", strerror(errno));
		return EXIT_RUNTIME;
	}
	return EXIT_OK;
}

struct status_opts {
	bool json;
	const char *socket;
	const char *target;	/* NULL: every group repld serves */
	unsigned long long interval_ms;	/* 0: once */
	__u64 count;		/* with interval_ms: 0 for no end */
};

static int parse_interval(const char *arg, struct status_opts *o)
{
	if (!dmrepl_parse_ms(arg, &o->interval_ms) || o->interval_ms < 100 ||
	    o->interval_ms > 3600000)
		return usage_err("status", "--interval wants a time from 100ms to 3600s "
				 "(like 500ms or 2s), not \"%s\"", arg);
	return 0;
}

static int parse_status_opts(int argc, char **argv, struct status_opts *o)
{
	static const struct option lopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "socket", required_argument, NULL, 'S' },
		{ "interval", required_argument, NULL, 'i' },
		{ "count", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	o->socket = DMREPL_REPLD_SOCKET;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":jS:i:c:h", lopts, NULL)) != -1) {
		if (c == 'j') {
			o->json = true;
		} else if (c == 'S') {
			o->socket = optarg;
		} else if (c == 'i') {
			if (parse_interval(optarg, o))
				return EXIT_USAGE;
		} else if (c == 'c') {
			if (parse_positive(optarg, &o->count) || o->count > 1000000)
				return usage_err("status", "--count wants a number from 1 to "
						 "1000000, not \"%s\"", optarg);
		} else if (c == 'h') {
			usage_status(stdout);
			return -1;
		} else {
			return getopt_error("status", c, argv);
		}
	}
	if (argc - optind > 1)
		return usage_err("status", "only one GROUP or PATH");
	if (o->count && !o->interval_ms)
		return usage_err("status", "--count goes with --interval");
	o->target = optind < argc ? argv[optind] : NULL;
	return 0;
}

/* One group: the kernel's facts, then the link's if repld told them. */
static int status_of(const char *target, bool json, const char *link)
{
	struct dm_repl_group_info gi;
	char path[PATH_MAX];
	int fd, ret;

	fd = open_group(target, O_RDONLY, &gi, path, sizeof(path));
	if (fd < 0)
		return EXIT_RUNTIME;
	ret = show(path, fd, &gi, json, link);
	close(fd);
	return ret;
}

/* The block of repld's status about target (a resource or kernel group name). */
static const char *link_of(char *body, const char *target)
{
	char *pos = body, *name, *facts, buf[64];
	const char *kgroup;

	while ((facts = repld_next_block(&pos, &name))) {
		kgroup = repld_fact(facts, "kernel_group", buf, sizeof(buf));
		if (!strcmp(name, target) || (kgroup && !strcmp(kgroup, target)))
			return facts;
	}
	return NULL;
}

/* Every group repld serves; 1 if one could not be shown. */
static int status_all(const struct status_opts *o, char *body)
{
	char *pos = body, *name, *facts, kgroup[64];
	int ret = EXIT_OK;

	while ((facts = repld_next_block(&pos, &name))) {
		if (!repld_fact(facts, "kernel_group", kgroup, sizeof(kgroup)) ||
		    status_of(kgroup, o->json, facts))
			ret = EXIT_RUNTIME;
		if (!o->json && *pos)
			putchar('\n');
	}
	return ret;
}

/* One report: the kernel's facts and repld's, of one group or of all. */
static int status_once(const struct status_opts *o)
{
	char *reply = NULL, *body = NULL;
	int ret;

	ret = repld_status(o->socket, "status", &reply, &body);
	if (ret == -EPROTO)
		return EXIT_RUNTIME;
	if (o->target) {
		ret = status_of(o->target, o->json, ret ? NULL : link_of(body, o->target));
	} else if (ret) {
		err_msg("status: no GROUP given, and repld does not answer at %s: %s", o->socket,
			strerror(-ret));
		ret = EXIT_RUNTIME;
	} else {
		ret = status_all(o, body);
	}
	free(reply);
	return ret;
}

/*
 * --interval: a report every interval_ms on the monotonic clock (one that
 * took longer than that is followed by the next at once), each flushed,
 * so that a reader at the other end of a pipe gets each as it comes. One
 * process for the whole series: a sampler pays for no new process each
 * time. EXIT_RUNTIME at the end if a report failed.
 */
static int status_every(const struct status_opts *o)
{
	struct timespec next, now;
	int ret = EXIT_OK;
	__u64 n;

	clock_gettime(CLOCK_MONOTONIC, &next);
	for (n = 0; !o->count || n < o->count; n++) {
		if (n) {
			next.tv_nsec += (long)(o->interval_ms % 1000) * 1000000L;
			next.tv_sec += (time_t)(o->interval_ms / 1000) + next.tv_nsec / 1000000000L;
			next.tv_nsec %= 1000000000L;
			while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
				;
			if (!o->json)
				putchar('\n');
		}
		if (!o->json) {
			clock_gettime(CLOCK_REALTIME, &now);
			printf("time %lld.%03ld\n", (long long)now.tv_sec, now.tv_nsec / 1000000L);
		}
		if (status_once(o) != EXIT_OK)
			ret = EXIT_RUNTIME;
		if (fflush(stdout) == EOF)
			return EXIT_RUNTIME;	/* the reader went */
	}
	return ret;
}

int cmd_status(int argc, char **argv)
{
	struct status_opts o = { 0 };
	int ret;

	ret = parse_status_opts(argc, argv, &o);
	if (ret)
		return ret < 0 ? EXIT_OK : ret;
	return o.interval_ms ? status_every(&o) : status_once(&o);
}
