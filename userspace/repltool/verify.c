// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * repltool verify: a VERIFY record for every region of a primary group, the
 * replica compares; with --replica (a secondary group on this host) the
 * results are read back, printed, and with --fix the regions that differ
 * are resent.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "dmrepl.h"
#include "repltool.h"

#define FILL_PCT_DEFAULT 50
#define REGIONS_A_STEP 16
#define TIMEOUT_DEFAULT 600
#define IDLE_NS (10 * 1000 * 1000L)

struct verify_opts {
	unsigned int fill_pct;
	__u64 timeout;
	bool fix;
	const char *target, *replica;
};

/* The pass, and what the replica said about it. */
struct verify_run {
	const struct verify_opts *o;
	struct dmrepl_verify v;
	int rfd;				/* the replica's device, or -1 */
	struct dm_repl_verify_info before, after;
	__u64 differ[DM_REPL_VERIFY_LIST][2];	/* volume, region */
	unsigned int nr_differ;
};

void usage_verify(FILE *f)
{
	fprintf(f,
"Usage: repltool verify [--replica GROUP|PATH [--fix]] [--fill PCT]\n"
"                       [--timeout SECS] GROUP|PATH\n"
"\n"
"Compare the primary group GROUP with its replica while replication runs:\n"
"put a VERIFY record for every region of every volume in GROUP's ring (the\n"
"SHA-256 of the region as the primary has it at that point of the stream),\n"
"for whoever ships the ring (repld, repltool replicate) to send; the\n"
"replica hashes its own copy when it reaches the record and compares. A\n"
"region written during its read is tried again (up to %d times), then\n"
"counted as not compared. Nothing changes on either side.\n"
"\n"
"      --replica G    the secondary group G on this host (repltool replicate):\n"
"                     wait until it has applied the records, then print the\n"
"                     regions that differ, as 'mismatch volume V region R'\n"
"      --fix          with --replica: resend the regions that differ (RESYNC\n"
"                     records, as repltool resync) and wait until applied\n"
"      --fill PCT     put records in only while the ring is at most PCT%%\n"
"                     full (1-100, default %d)\n"
"      --timeout SECS wait at most SECS for the replica (default %d)\n"
"  -h, --help         show this text\n"
"\n"
"Without --replica the results are on the replica's host: its kernel log\n"
"and 'repltool status' there (verify: compared, mismatches).\n"
"\n"
"Exit status: 0 when no region differs (or all were fixed), 3 when some\n"
"differ, 1 for a runtime error, 2 for a usage error.\n",
		DMREPL_VERIFY_TRIES, FILL_PCT_DEFAULT, TIMEOUT_DEFAULT);
}

static int parse_opts(int argc, char **argv, struct verify_opts *o)
{
	enum { OPT_FILL = 256, OPT_FIX, OPT_REPLICA, OPT_TIMEOUT };
	static const struct option lopts[] = {
		{ "fill", required_argument, NULL, OPT_FILL },
		{ "fix", no_argument, NULL, OPT_FIX },
		{ "replica", required_argument, NULL, OPT_REPLICA },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	__u64 n;
	int c;

	*o = (struct verify_opts) { .fill_pct = FILL_PCT_DEFAULT, .timeout = TIMEOUT_DEFAULT };
	while ((c = getopt_long(argc, argv, ":h", lopts, NULL)) != -1) {
		switch (c) {
		case OPT_FILL:
			if (parse_positive(optarg, &n) || n > 100)
				return usage_err("verify", "--fill %s: not a percentage from 1 to 100",
						 optarg);
			o->fill_pct = (unsigned int)n;
			break;
		case OPT_FIX:
			o->fix = true;
			break;
		case OPT_REPLICA:
			o->replica = optarg;
			break;
		case OPT_TIMEOUT:
			if (parse_positive(optarg, &o->timeout))
				return usage_err("verify", "--timeout %s: not a number of seconds",
						 optarg);
			break;
		case 'h':
			usage_verify(stdout);
			return -1;
		default:
			return getopt_error("verify", c, argv);
		}
	}
	if (o->fix && !o->replica)
		return usage_err("verify", "--fix needs --replica (the results come from there)");
	if (argc - optind != 1)
		return usage_err("verify", argc == optind ? "wants GROUP" : "only one GROUP, please");
	o->target = argv[optind];
	return 0;
}

static void pause_idle(void)
{
	struct timespec idle = { 0, IDLE_NS };

	nanosleep(&idle, NULL);
}

/* Wait until the replica applied @seq: 0, -ETIMEDOUT, -EINTR or -errno. */
static int wait_applied(const struct verify_run *vr, __u64 seq, __u64 *bytes)
{
	time_t deadline = time(NULL) + (time_t)vr->o->timeout;
	struct dm_repl_apply_info ai;
	int ret;

	for (;;) {
		ret = dmrepl_apply_info(vr->rfd, &ai);
		if (ret)
			return ret;
		if (ai.applied_seq >= seq) {
			if (bytes)
				*bytes = ai.bytes;
			return 0;
		}
		if (stop_requested)
			return -EINTR;
		if (time(NULL) > deadline)
			return -ETIMEDOUT;
		pause_idle();
	}
}

static int put_records(struct verify_run *vr)
{
	int ret;

	while (!vr->v.done) {
		if (stop_requested)
			return -EINTR;
		ret = dmrepl_verify_step(&vr->v, REGIONS_A_STEP, vr->o->fill_pct);
		if (ret < 0)
			return ret;
		if (!ret && !vr->v.done)
			pause_idle();
	}
	return 0;
}

/* The mismatches of this pass, as regions of the primary. */
static void collect(struct verify_run *vr)
{
	const struct dm_repl_verify_info *a = &vr->after;
	unsigned int i;
	long long region;

	for (i = 0; i < a->nr && i < DM_REPL_VERIFY_LIST; i++) {
		const struct dm_repl_verify_mismatch *m = &a->list[i];

		if (m->seq < vr->v.first_seq || m->seq > vr->v.last_seq)
			continue;
		region = dmrepl_verify_region_of(&vr->v, m->volume, m->sector);
		if (region < 0)
			continue;
		vr->differ[vr->nr_differ][0] = m->volume;
		vr->differ[vr->nr_differ][1] = (__u64)region;
		vr->nr_differ++;
		printf("mismatch volume %u region %lld\n", m->volume, region);
	}
}

/* Resend one region: its RESYNC records' last sequence, or -errno. */
static long long resend(const struct verify_run *vr, unsigned int volume, __u64 region)
{
	struct dm_repl_resync_req req;

	for (;;) {
		req = (struct dm_repl_resync_req) {
			.abi_version = DM_REPL_ABI_VERSION,
			.volume = volume,
			.region = region,
			.flags = DM_REPL_RESYNCF_ANY,
		};
		if (!ioctl(vr->v.fd, DM_REPL_IOC_RESYNC, &req))
			return (long long)req.seq;
		if (errno != ENOSPC && errno != EBUSY)
			return -errno;
		if (stop_requested)
			return -EINTR;
		pause_idle();
	}
}

static int fix(struct verify_run *vr, const char *path)
{
	__u64 bytes_before, bytes_after, last = 0;
	long long seq;
	unsigned int i;
	int ret;

	ret = wait_applied(vr, vr->v.last_seq, &bytes_before);
	for (i = 0; !ret && i < vr->nr_differ; i++) {
		seq = resend(vr, (unsigned int)vr->differ[i][0], vr->differ[i][1]);
		if (seq < 0)
			ret = (int)seq;
		else
			last = (__u64)seq;
	}
	if (!ret)
		ret = wait_applied(vr, last, &bytes_after);
	if (ret) {
		err_msg("verify: %s: --fix: %s", path, strerror(-ret));
		return EXIT_RUNTIME;
	}
	printf("fix %s: %u regions resent, %llu bytes applied on the replica\n",
	       vr->v.info.name, vr->nr_differ,
	       (unsigned long long)(bytes_after - bytes_before));
	return EXIT_OK;
}

static int results(struct verify_run *vr, const char *path)
{
	__u64 mismatches, compared;
	int ret;

	ret = wait_applied(vr, vr->v.last_seq, NULL);
	if (!ret)
		ret = dmrepl_verify_info(vr->rfd, &vr->after);
	if (ret) {
		err_msg("verify: %s: waiting for the replica %s: %s", path, vr->o->replica,
			strerror(-ret));
		return EXIT_RUNTIME;
	}
	collect(vr);
	mismatches = vr->after.mismatches - vr->before.mismatches;
	compared = vr->after.compared - vr->before.compared;
	printf("verify %s: %llu regions (%llu bytes) compared on %s, %llu not compared, "
	       "%llu mismatches\n",
	       vr->v.info.name, (unsigned long long)compared,
	       (unsigned long long)(vr->after.bytes - vr->before.bytes), vr->o->replica,
	       (unsigned long long)(vr->after.raced - vr->before.raced),
	       (unsigned long long)mismatches);
	if (mismatches > vr->nr_differ)
		printf("verify %s: %llu mismatches not listed (more than %d)\n",
		       vr->v.info.name, (unsigned long long)(mismatches - vr->nr_differ),
		       DM_REPL_VERIFY_LIST);
	if (!mismatches)
		return EXIT_OK;
	if (!vr->o->fix || mismatches > vr->nr_differ)
		return EXIT_DIFFER;
	ret = fix(vr, path);
	return ret;
}

static int run(struct verify_run *vr, int fd, const char *path)
{
	int ret;

	ret = dmrepl_verify_init(&vr->v, fd);
	if (!ret && vr->rfd >= 0)
		ret = dmrepl_verify_info(vr->rfd, &vr->before);
	catch_stop_signals();
	if (!ret)
		ret = put_records(vr);
	if (ret == -EPERM) {
		err_msg("verify: %s: not a primary group", path);
		return EXIT_RUNTIME;
	}
	if (ret) {
		err_msg("verify: %s: %s", path, strerror(-ret));
		return EXIT_RUNTIME;
	}
	printf("verify %s: %llu regions (%llu bytes) put in the ring, seq %llu to %llu, "
	       "%llu raced, %llu regions given up\n",
	       vr->v.info.name, (unsigned long long)vr->v.regions,
	       (unsigned long long)vr->v.bytes, (unsigned long long)vr->v.first_seq,
	       (unsigned long long)vr->v.last_seq, (unsigned long long)vr->v.raced,
	       (unsigned long long)vr->v.not_compared);
	fflush(stdout);
	return vr->rfd < 0 ? EXIT_OK : results(vr, path);
}

int cmd_verify(int argc, char **argv)
{
	struct dm_repl_group_info info;
	struct verify_opts o;
	struct verify_run *vr;
	char path[PATH_MAX], rpath[PATH_MAX];
	int fd, ret;

	ret = parse_opts(argc, argv, &o);
	if (ret)
		return ret < 0 ? EXIT_OK : ret;
	vr = calloc(1, sizeof(*vr));
	if (!vr) {
		err_msg("verify: %s", strerror(ENOMEM));
		return EXIT_RUNTIME;
	}
	vr->o = &o;
	vr->rfd = -1;
	fd = open_group(o.target, O_RDONLY, &info, path, sizeof(path));
	if (fd >= 0 && o.replica) {
		vr->rfd = open_group(o.replica, O_RDONLY, &info, rpath, sizeof(rpath));
		if (vr->rfd >= 0 && info.role != DM_REPL_ROLE_SECONDARY) {
			err_msg("verify: %s: not a secondary group", rpath);
			close(vr->rfd);
			vr->rfd = -1;
		}
	}
	if (fd < 0 || (o.replica && vr->rfd < 0))
		ret = EXIT_RUNTIME;
	else
		ret = run(vr, fd, path);
	if (vr->rfd >= 0)
		close(vr->rfd);
	if (fd >= 0)
		close(fd);
	free(vr);
	return ret;
}
