// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * repltool verify: a VERIFY record for every region of a primary group, the
 * replica compares; with --replica (a secondary group on this host) the
 * results are read back, printed, and with --fix the regions that differ
 * are resent. Between two hosts: --results on the replica's host lists
 * them, --resend on the primary's host resends them.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdint.h>
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

/* --resend V:R (a region of the primary) or V@S (the sector it starts at). */
struct resend_item {
	__u64 volume, where;
	bool by_sector;
};

struct verify_opts {
	unsigned int fill_pct;
	__u64 timeout, since;
	bool fix, results;
	const char *target, *replica, *socket;
	struct resend_item resend[DM_REPL_VERIFY_LIST];
	unsigned int nr_resend;
};

/*
 * The pass, and what the replica said about it. The replica lists only its
 * last DM_REPL_VERIFY_LIST mismatches: with --replica the pass keeps fewer
 * than that many records not yet applied, and reads the list as it goes.
 */
struct verify_run {
	const struct verify_opts *o;
	struct dmrepl_verify v;
	int rfd;				/* the replica's device, or -1 */
	struct dm_repl_verify_info before, seen;	/* at the start, read last */
	__u64 list_seq;				/* newest mismatch of the list read */
	__u64 lost;				/* mismatches gone from the list unread */
	__u64 (*differ)[2];			/* volume, region */
	unsigned int nr_differ, cap_differ;
};

void usage_verify(FILE *f)
{
	fprintf(f,
"Usage: repltool verify [--replica GROUP|PATH [--fix]] [--fill PCT]\n"
"                       [--timeout SECS] GROUP|PATH\n"
"       repltool verify --results [--since SEQ] [--fix [--socket PATH]] GROUP|PATH\n"
"       repltool verify --resend V@S|V:R[,...] GROUP|PATH\n"
"\n"
"Compare the primary group GROUP with its replica while replication runs:\n"
"put a VERIFY record for every region of every volume in GROUP's ring (the\n"
"SHA-256 of the region as the primary has it at that point of the stream),\n"
"for whoever ships the ring (repld, repltool replicate) to send; the\n"
"replica hashes its own copy when it reaches the record and compares. A\n"
"region written during its read is tried again (up to %d times), then\n"
"counted as not compared. Nothing changes on either side, but on a seeded\n"
"replica (create-md --seeded) a region found equal counts as verified.\n"
"\n"
"      --replica G    the secondary group G on this host (repltool replicate):\n"
"                     follow it as it applies the records, print the regions\n"
"                     that differ, as 'mismatch volume V region R seq S'\n"
"      --fix          with --replica: resend the regions that differ (RESYNC\n"
"                     records, as repltool resync) and wait until applied\n"
"      --fill PCT     put records in only while the ring is at most PCT%%\n"
"                     full (1-100, default %d)\n"
"      --timeout SECS wait at most SECS for the replica (default %d)\n"
"  -h, --help         show this text\n"
"\n"
"Without --replica the results are on the replica's host: its kernel log,\n"
"'repltool status' there (verify_* counters), and\n"
"\n"
"      --results      GROUP is the secondary: list the regions that differed\n"
"                     (its last %d), each as 'mismatch volume V sector S seq Q'\n"
"                     (S: where the primary's region starts)\n"
"      --since SEQ    only those of VERIFY records from sequence SEQ on (the\n"
"                     first sequence the pass printed)\n"
"      --fix          with --results: have this host's repld ask the primary\n"
"                     to resend the regions listed, over its session\n"
"  -S, --socket PATH  repld's control socket (default " DMREPL_REPLD_SOCKET ")\n"
"      --resend V@S,...  GROUP is the primary: resend the regions of volume\n"
"                     index V that start at sector S (as --results prints\n"
"                     them; V:R names region R) as RESYNC records, as --fix\n"
"\n"
"Exit status: 0 when every region was compared and none differs (or all\n"
"were fixed), 3 when some differ, 4 when none differs but not every region\n"
"was compared (nothing reached the replica, regions given up), 1 for a\n"
"runtime error, 2 for a usage error. --results: 3 when some are listed (0\n"
"with --fix once repld took them), 4 when none was compared or no VERIFY\n"
"record from SEQ on reached the replica.\n",
		DMREPL_VERIFY_TRIES, FILL_PCT_DEFAULT, TIMEOUT_DEFAULT, DM_REPL_VERIFY_LIST);
}

/* "V:R" or "V@S", comma-separated, into o->resend. */
static int parse_resend(struct verify_opts *o, const char *list)
{
	unsigned long long vol, where;
	const char *p = list;
	char *end;
	bool by_sector;

	for (;;) {
		if (o->nr_resend == DM_REPL_VERIFY_LIST || *p < '0' || *p > '9')
			return -EINVAL;
		errno = 0;
		vol = strtoull(p, &end, 10);
		by_sector = *end == '@';
		if (errno || (*end != ':' && !by_sector) || vol >= DM_REPL_MAX_VOLUMES ||
		    end[1] < '0' || end[1] > '9')
			return -EINVAL;
		where = strtoull(end + 1, &end, 10);
		if (errno || (*end && *end != ','))
			return -EINVAL;
		o->resend[o->nr_resend] = (struct resend_item) {
			.volume = vol, .where = where, .by_sector = by_sector,
		};
		o->nr_resend++;
		if (!*end)
			return 0;
		p = end + 1;
	}
}

static int parse_opts(int argc, char **argv, struct verify_opts *o)
{
	enum { OPT_FILL = 256, OPT_FIX, OPT_REPLICA, OPT_TIMEOUT, OPT_RESULTS, OPT_SINCE,
	       OPT_RESEND };
	static const struct option lopts[] = {
		{ "fill", required_argument, NULL, OPT_FILL },
		{ "fix", no_argument, NULL, OPT_FIX },
		{ "replica", required_argument, NULL, OPT_REPLICA },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "results", no_argument, NULL, OPT_RESULTS },
		{ "since", required_argument, NULL, OPT_SINCE },
		{ "resend", required_argument, NULL, OPT_RESEND },
		{ "socket", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	__u64 n;
	int c;

	memset(o, 0, sizeof(*o));
	optind = 1;
	o->fill_pct = FILL_PCT_DEFAULT;
	o->timeout = TIMEOUT_DEFAULT;
	while ((c = getopt_long(argc, argv, ":S:h", lopts, NULL)) != -1) {
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
		case OPT_RESULTS:
			o->results = true;
			break;
		case OPT_SINCE:
			if (parse_positive(optarg, &o->since))
				return usage_err("verify", "--since %s: not a sequence", optarg);
			break;
		case OPT_RESEND:
			if (parse_resend(o, optarg))
				return usage_err("verify", "--resend %s: not a list of VOLUME@SECTOR "
						 "or VOLUME:REGION (at most %d)", optarg,
						 DM_REPL_VERIFY_LIST);
			break;
		case 'S':
			o->socket = optarg;
			break;
		case 'h':
			usage_verify(stdout);
			return -1;
		default:
			return getopt_error("verify", c, argv);
		}
	}
	if (o->fix && !o->replica && !o->results)
		return usage_err("verify", "--fix needs --replica or --results (the results come "
				 "from there)");
	if ((o->results || o->nr_resend) && o->replica)
		return usage_err("verify", "--results and --resend go without --replica");
	if (o->nr_resend && o->fix)
		return usage_err("verify", "--resend resends already: no --fix");
	if (o->socket && !(o->results && o->fix))
		return usage_err("verify", "--socket goes with --results --fix");
	if (o->results && o->nr_resend)
		return usage_err("verify", "--results (on the replica) or --resend (on the "
				 "primary), not both");
	if (o->since && !o->results)
		return usage_err("verify", "--since goes with --results");
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

static void print_mismatch(const struct dm_repl_verify_mismatch *m, long long region)
{
	printf("mismatch volume %u region %lld seq %llu\n", m->volume, region,
	       (unsigned long long)m->seq);
}

/* One more region that differs: 0 or -ENOMEM. */
static int add_differ(struct verify_run *vr, unsigned int volume, __u64 region)
{
	__u64 (*d)[2];
	unsigned int cap;

	if (vr->nr_differ == vr->cap_differ) {
		cap = vr->cap_differ ? 2 * vr->cap_differ : DM_REPL_VERIFY_LIST;
		d = realloc(vr->differ, cap * sizeof(*d));
		if (!d)
			return -ENOMEM;
		vr->differ = d;
		vr->cap_differ = cap;
	}
	vr->differ[vr->nr_differ][0] = volume;
	vr->differ[vr->nr_differ][1] = region;
	vr->nr_differ++;
	return 0;
}

/*
 * What the replica's VERIFY records found since it was read last: the
 * mismatches new in its list, those of this pass as regions of the primary.
 * The list keeps the last DM_REPL_VERIFY_LIST: more new mismatches than
 * new entries were lost (counted, never guessed).
 */
static int take_info(struct verify_run *vr)
{
	struct dm_repl_verify_info vi;
	unsigned int i, fresh = 0;
	long long region;
	int ret;

	ret = dmrepl_verify_info(vr->rfd, &vi);
	if (ret)
		return ret;
	for (i = 0; i < vi.nr && i < DM_REPL_VERIFY_LIST; i++) {
		const struct dm_repl_verify_mismatch *m = &vi.list[i];

		if (m->seq <= vr->list_seq)
			continue;
		fresh++;
		if (m->seq < vr->v.first_seq || m->seq > vr->v.last_seq)
			continue;
		region = dmrepl_verify_region_of(&vr->v.info, m->volume, m->sector);
		if (region < 0)
			continue;
		ret = add_differ(vr, m->volume, (__u64)region);
		if (ret)
			return ret;
		print_mismatch(m, region);
	}
	if (vi.mismatches - vr->seen.mismatches > fresh)
		vr->lost += vi.mismatches - vr->seen.mismatches - fresh;
	if (vi.nr && vi.nr <= DM_REPL_VERIFY_LIST && vi.list[vi.nr - 1].seq > vr->list_seq)
		vr->list_seq = vi.list[vi.nr - 1].seq;
	vr->seen = vi;
	return 0;
}

/* Records of the pass put in the ring that the replica has not applied. */
static __u64 outstanding(const struct verify_run *vr)
{
	__u64 put = vr->v.regions + vr->v.raced;
	__u64 done = vr->seen.compared + vr->seen.raced -
		     (vr->before.compared + vr->before.raced);

	return put > done ? put - done : 0;
}

/*
 * With --replica: wait until a step more leaves fewer records unapplied than
 * the replica lists, so that no mismatch of the pass leaves its list before
 * it is read. -ETIMEDOUT when it applies none for --timeout.
 */
static int keep_up(struct verify_run *vr)
{
	time_t deadline = time(NULL) + (time_t)vr->o->timeout;
	__u64 left, was = UINT64_MAX;
	int ret;

	for (;;) {
		ret = take_info(vr);
		if (ret)
			return ret;
		left = outstanding(vr);
		if (left + REGIONS_A_STEP <= DM_REPL_VERIFY_LIST)
			return 0;
		if (left < was)
			deadline = time(NULL) + (time_t)vr->o->timeout;
		was = left;
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
		if (vr->rfd >= 0) {
			ret = keep_up(vr);
			if (ret)
				return ret;
		}
		ret = dmrepl_verify_step(&vr->v, REGIONS_A_STEP, vr->o->fill_pct);
		if (ret < 0)
			return ret;
		if (!ret && !vr->v.done)
			pause_idle();
	}
	return 0;
}

/*
 * Resend one region: its RESYNC records' last sequence, or -errno. It waits
 * for room in the ring, and while the volume's resync is held (EAGAIN: its
 * data device failed to flush; at most 300 s), saying so once.
 */
static long long resend(const struct verify_run *vr, unsigned int volume, __u64 region)
{
	struct dm_repl_resync_req req;
	bool told = false;

	for (;;) {
		req = (struct dm_repl_resync_req) {
			.abi_version = DM_REPL_ABI_VERSION,
			.volume = volume,
			.region = region,
			.flags = DM_REPL_RESYNCF_ANY,
		};
		if (!ioctl(vr->v.fd, DM_REPL_IOC_RESYNC, &req))
			return (long long)req.seq;
		if (errno == EAGAIN && !told) {
			fprintf(stderr, "verify: volume %u: its resync is held (its data device "
				"failed to flush): waiting\n", volume);
			told = true;
		} else if (errno != ENOSPC && errno != EBUSY && errno != EAGAIN) {
			return -errno;
		}
		if (stop_requested)
			return -EINTR;
		pause_idle();
	}
}

/* Resend @n regions (volume, region): 0 or -errno; *last their last sequence. */
static int resend_all(const struct verify_run *vr, const __u64 (*list)[2], unsigned int n,
		      __u64 *last)
{
	long long seq;
	unsigned int i;

	for (i = 0; i < n; i++) {
		seq = resend(vr, (unsigned int)list[i][0], list[i][1]);
		if (seq < 0)
			return (int)seq;
		*last = (__u64)seq;
	}
	return 0;
}

static int fix(struct verify_run *vr, const char *path)
{
	__u64 bytes_before, bytes_after, last = 0;
	int ret;

	ret = wait_applied(vr, vr->v.last_seq, &bytes_before);
	if (!ret)
		ret = resend_all(vr, (const __u64 (*)[2])vr->differ, vr->nr_differ, &last);
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

/* Regions of the pass the replica did not compare: given up, or not reached. */
static __u64 not_compared(const struct verify_run *vr, __u64 compared)
{
	return vr->v.not_compared + (vr->v.regions > compared ? vr->v.regions - compared : 0);
}

static int results(struct verify_run *vr, const char *path)
{
	__u64 mismatches, compared, missed;
	int ret;

	ret = wait_applied(vr, vr->v.last_seq, NULL);
	if (!ret)
		ret = take_info(vr);
	if (ret) {
		err_msg("verify: %s: waiting for the replica %s: %s", path, vr->o->replica,
			strerror(-ret));
		return EXIT_RUNTIME;
	}
	mismatches = vr->seen.mismatches - vr->before.mismatches;
	compared = vr->seen.compared - vr->before.compared;
	missed = not_compared(vr, compared);
	printf("verify %s: %llu regions (%llu bytes) compared on %s, %llu not compared, "
	       "%llu mismatches\n",
	       vr->v.info.name, (unsigned long long)compared,
	       (unsigned long long)(vr->seen.bytes - vr->before.bytes), vr->o->replica,
	       (unsigned long long)(vr->seen.raced - vr->before.raced),
	       (unsigned long long)mismatches);
	if (vr->lost)
		printf("verify %s: %llu mismatches not listed: more than %d came between two "
		       "reads of %s's list (another verify at the same time?)\n",
		       vr->v.info.name, (unsigned long long)vr->lost, DM_REPL_VERIFY_LIST,
		       vr->o->replica);
	if (vr->nr_differ && vr->o->fix) {
		ret = fix(vr, path);
		if (ret)
			return ret;
	}
	if (vr->lost || (vr->nr_differ && !vr->o->fix))
		return EXIT_DIFFER;
	if (!compared) {
		printf("verify %s: nothing compared on %s: not verified\n", vr->v.info.name,
		       vr->o->replica);
		return EXIT_INCOMPLETE;
	}
	if (missed) {
		printf("verify %s: %llu of %llu regions not compared: not verified in full\n",
		       vr->v.info.name, (unsigned long long)missed,
		       (unsigned long long)(vr->v.regions + vr->v.not_compared));
		return EXIT_INCOMPLETE;
	}
	return EXIT_OK;
}

static int run(struct verify_run *vr, int fd, const char *path)
{
	int ret;

	ret = dmrepl_verify_init(&vr->v, fd);
	if (!ret && vr->rfd >= 0)
		ret = dmrepl_verify_info(vr->rfd, &vr->before);
	if (!ret && vr->rfd >= 0) {
		vr->seen = vr->before;
		if (vr->before.nr && vr->before.nr <= DM_REPL_VERIFY_LIST)
			vr->list_seq = vr->before.list[vr->before.nr - 1].seq;
	}
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
	if (vr->rfd >= 0)
		return results(vr, path);
	if (!vr->v.regions || vr->v.not_compared) {
		printf("verify %s: %llu regions given up, %llu put in the ring: not every region "
		       "will be compared\n", vr->v.info.name,
		       (unsigned long long)vr->v.not_compared, (unsigned long long)vr->v.regions);
		return EXIT_INCOMPLETE;
	}
	return EXIT_OK;
}

/* --results on the replica's host: what its VERIFY records found. */
static int list_results(const struct verify_opts *o, int fd, const char *path,
			const struct dm_repl_group_info *info)
{
	/* "resend GROUP V@S,...": every listed range fits (see repld's ctl.c). */
	char ask[32 + DM_REPL_GROUP_NAME_MAX + DM_REPL_VERIFY_LIST * 24];
	struct dm_repl_verify_info vi;
	unsigned int i, listed = 0;
	size_t ask_len;
	int ret;

	ask_len = (size_t)snprintf(ask, sizeof(ask), "resend %s ", info->name);
	if (info->role != DM_REPL_ROLE_SECONDARY) {
		err_msg("verify: %s: --results: not a secondary group", path);
		return EXIT_RUNTIME;
	}
	ret = dmrepl_verify_info(fd, &vi);
	if (ret) {
		err_msg("verify: %s: DM_REPL_IOC_VERIFY_INFO: %s", path, strerror(-ret));
		return EXIT_RUNTIME;
	}
	/*
	 * By the sector the range starts at, which is the primary's region's:
	 * this replica's regions may be of another size.
	 */
	for (i = 0; i < vi.nr && i < DM_REPL_VERIFY_LIST; i++) {
		if (vi.list[i].seq < o->since)
			continue;
		printf("mismatch volume %u sector %llu seq %llu\n", vi.list[i].volume,
		       (unsigned long long)vi.list[i].sector,
		       (unsigned long long)vi.list[i].seq);
		ask_len += (size_t)snprintf(ask + ask_len, sizeof(ask) - ask_len, "%s%u@%llu",
					    listed ? "," : "", vi.list[i].volume,
					    (unsigned long long)vi.list[i].sector);
		listed++;
	}
	printf("verify %s: %llu regions (%llu bytes) compared, %llu not compared, "
	       "%llu mismatches since loaded, %u listed; last VERIFY seq %llu\n",
	       info->name, (unsigned long long)vi.compared, (unsigned long long)vi.bytes,
	       (unsigned long long)vi.raced, (unsigned long long)vi.mismatches, listed,
	       (unsigned long long)vi.last_seq);
	if (vi.nr == DM_REPL_VERIFY_LIST && vi.mismatches > vi.nr && vi.list[0].seq > o->since)
		printf("verify %s: the list holds the last %d mismatches only: those before seq "
		       "%llu are not listed\n", info->name, DM_REPL_VERIFY_LIST,
		       (unsigned long long)vi.list[0].seq);
	if (listed && o->fix)
		return repld_request(o->socket ? o->socket : DMREPL_REPLD_SOCKET, "verify", ask);
	if (listed)
		return EXIT_DIFFER;
	if (!vi.compared || vi.last_seq < o->since) {
		printf("verify %s: no VERIFY record%s compared here: not verified\n", info->name,
		       o->since ? " from that sequence on" : "");
		return EXIT_INCOMPLETE;
	}
	return EXIT_OK;
}

/* The item as a region of the primary's volume: 0, or -1 (reported). */
static int resend_region(const struct dm_repl_group_info *info, const char *path,
			 const struct resend_item *it, __u64 *region)
{
	const struct dm_repl_volume_info *vi = NULL;
	unsigned int i;

	for (i = 0; i < info->nr_volumes && i < DM_REPL_MAX_VOLUMES; i++)
		if (info->volumes[i].index == it->volume)
			vi = &info->volumes[i];
	if (!vi || !vi->region_sectors) {
		err_msg("verify: %s: --resend: no volume %llu", path,
			(unsigned long long)it->volume);
		return -1;
	}
	*region = it->by_sector ? it->where / vi->region_sectors : it->where;
	if (it->by_sector && (it->where % vi->region_sectors || it->where >= vi->sectors)) {
		err_msg("verify: %s: --resend %llu@%llu: not where a region of volume %llu "
			"starts (regions of %u sectors, %llu sectors): not from this primary's "
			"VERIFY records", path, (unsigned long long)it->volume,
			(unsigned long long)it->where, (unsigned long long)it->volume,
			vi->region_sectors, (unsigned long long)vi->sectors);
		return -1;
	}
	if (*region >= vi->nr_regions) {
		err_msg("verify: %s: --resend %llu:%llu: volume %llu has %llu regions", path,
			(unsigned long long)it->volume, (unsigned long long)it->where,
			(unsigned long long)it->volume, (unsigned long long)vi->nr_regions);
		return -1;
	}
	return 0;
}

/* --resend on the primary's host: the regions --results listed. */
static int resend_listed(struct verify_run *vr, int fd, const char *path,
			 const struct dm_repl_group_info *info)
{
	__u64 list[DM_REPL_VERIFY_LIST][2], last = 0;
	unsigned int i;
	int ret;

	vr->v.fd = fd;
	if (info->role != DM_REPL_ROLE_PRIMARY) {
		err_msg("verify: %s: not a primary group", path);
		return EXIT_RUNTIME;
	}
	for (i = 0; i < vr->o->nr_resend; i++) {
		list[i][0] = vr->o->resend[i].volume;
		if (resend_region(info, path, &vr->o->resend[i], &list[i][1]))
			return EXIT_RUNTIME;
	}
	ret = resend_all(vr, (const __u64 (*)[2])list, vr->o->nr_resend, &last);
	if (ret) {
		err_msg("verify: %s: --resend: %s", path, strerror(-ret));
		return EXIT_RUNTIME;
	}
	printf("resend %s: %u regions put in the ring, last seq %llu\n", info->name,
	       vr->o->nr_resend, (unsigned long long)last);
	return EXIT_OK;
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
	else if (o.results)
		ret = list_results(&o, fd, path, &info);
	else if (o.nr_resend)
		ret = resend_listed(vr, fd, path, &info);
	else
		ret = run(vr, fd, path);
	if (vr->rfd >= 0)
		close(vr->rfd);
	if (fd >= 0)
		close(fd);
	free(vr->differ);
	free(vr);
	return ret;
}
