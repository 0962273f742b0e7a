// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * repltool resync: put a primary group's dirty regions in its ring, whoever
 * ships it (repld, repltool replicate), until the group is up to date.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dmrepl.h"
#include "repltool.h"

#define FILL_PCT_DEFAULT 50
#define REGIONS_A_STEP 8
#define IDLE_NS (50 * 1000 * 1000L)

struct resync_opts {
	unsigned int fill_pct;
	bool progress;
	const char *target;
};

void usage_resync(FILE *f)
{
	fprintf(f,
"Usage: repltool resync [--fill PCT] [--progress] GROUP|PATH\n"
"\n"
"Bring the primary group GROUP up to date after an overflow or a crash: put\n"
"each region its dirty bitmaps name in its ring as RESYNC records holding\n"
"the region's data, for whoever ships the ring (repld, or repltool replicate)\n"
"to send. A region leaves the bitmap only once the replica has applied its\n"
"records; the VM may go on writing meanwhile. The replica is inconsistent\n"
"from the first RESYNC record until the last, which makes it consistent.\n"
"Returns once the group is up to date (state uptodate), or at SIGINT or\n"
"SIGTERM (the regions in the ring still go; the rest stay dirty).\n"
"\n"
"      --fill PCT     put regions in only while the ring is at most PCT%%\n"
"                     full (1-100, default %d), so the stream keeps its lag\n"
"      --progress     a line a second: regions left, rate, time left\n"
"  -h, --help         show this text\n"
"\n"
"Exit status: 0 when up to date or stopped by a signal, 1 for a runtime\n"
"error (not a primary, an ioctl failed), 2 for a usage error.\n",
		FILL_PCT_DEFAULT);
}

static int parse_opts(int argc, char **argv, struct resync_opts *o)
{
	enum { OPT_FILL = 256, OPT_PROGRESS };
	static const struct option lopts[] = {
		{ "fill", required_argument, NULL, OPT_FILL },
		{ "progress", no_argument, NULL, OPT_PROGRESS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	__u64 v;
	int c;

	o->fill_pct = FILL_PCT_DEFAULT;
	o->progress = false;
	while ((c = getopt_long(argc, argv, ":h", lopts, NULL)) != -1) {
		switch (c) {
		case OPT_FILL:
			if (parse_positive(optarg, &v) || v > 100)
				return usage_err("resync", "--fill %s: not a percentage from 1 to 100",
						 optarg);
			o->fill_pct = (unsigned int)v;
			break;
		case OPT_PROGRESS:
			o->progress = true;
			break;
		case 'h':
			usage_resync(stdout);
			return -1;
		default:
			return getopt_error("resync", c, argv);
		}
	}
	if (argc - optind != 1)
		return usage_err("resync", argc == optind ? "wants GROUP" : "only one GROUP, please");
	o->target = argv[optind];
	return 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void progress(const struct dmrepl_resync *r, double start)
{
	double secs = now_s() - start;
	double rate = secs > 0 ? (double)r->regions / secs : 0;
	__u64 left = dmrepl_resync_left(&r->info);

	printf("resync %s: %llu regions left, %llu sent (%.1f MiB), %.1f regions/s",
	       r->info.name, (unsigned long long)left, (unsigned long long)r->regions,
	       (double)r->bytes / (1 << 20), rate);
	if (rate > 0)
		printf(", about %.0f s left", (double)left / rate);
	if (r->info.departed_volumes)
		printf("; waiting for volumes that left dirty (mask %#llx)",
		       (unsigned long long)r->info.departed_volumes);
	if (r->info.resync_held_volumes)
		printf("; held: volumes whose data device failed to flush (mask %#llx)",
		       (unsigned long long)r->info.resync_held_volumes);
	putchar('\n');
	fflush(stdout);
}

static int run(const struct resync_opts *o, int fd, const char *path)
{
	struct timespec idle = { 0, IDLE_NS };
	double start = now_s(), shown = start;
	struct dmrepl_resync r;
	int ret = 0;

	dmrepl_resync_init(&r, fd);
	catch_stop_signals();
	while (!stop_requested) {
		ret = dmrepl_resync_step(&r, REGIONS_A_STEP, o->fill_pct);
		if (ret < 0)
			break;
		if (r.info.state != DM_REPL_STATE_BEHIND)
			break;
		if (o->progress && now_s() - shown >= 1) {
			progress(&r, start);
			shown = now_s();
		}
		if (!ret)
			nanosleep(&idle, NULL);
	}
	if (ret == -EPERM)
		err_msg("resync: %s: not a primary group", path);
	else if (ret == -EFBIG)
		err_msg("resync: %s: a region is larger than half the ring: give the table "
			"a ring_mb of at least four times region_kb / 1024", path);
	else if (ret == -ENODEV)
		err_msg("resync: %s: behind, but the group has no volume", path);
	else if (ret < 0)
		err_msg("resync: %s: %s", path, strerror(-ret));
	else
		printf("resync %s: %llu regions (%.1f MiB) put in the ring in %.1f s; %s\n",
		       r.info.name, (unsigned long long)r.regions, (double)r.bytes / (1 << 20),
		       now_s() - start, r.info.state == DM_REPL_STATE_BEHIND ? "stopped, behind" :
		       "up to date");
	dmrepl_resync_free(&r);
	return ret < 0 ? EXIT_RUNTIME : EXIT_OK;
}

int cmd_resync(int argc, char **argv)
{
	struct dm_repl_group_info info;
	struct resync_opts o = { 0 };
	char path[PATH_MAX];
	int fd, ret;

	ret = parse_opts(argc, argv, &o);
	if (ret)
		return ret < 0 ? EXIT_OK : ret;
	fd = open_group(o.target, O_RDONLY, &info, path, sizeof(path));
	if (fd < 0)
		return EXIT_RUNTIME;
	ret = run(&o, fd, path);
	close(fd);
	return ret;
}
