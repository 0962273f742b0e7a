// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * repltool replicate: ship a primary group's ring to a secondary group on
 * the same host, releasing records in the ring only once the secondary
 * has applied them (its write(2) returned).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "dmrepl.h"
#include "repltool.h"

struct replicate_opts {
	struct batch_opts batch;
	bool once;
	const char *source, *target;	/* group names or paths, as given */
};

struct replicate {
	struct replicate_opts opts;
	struct dmrepl_ring *ring;	/* the primary's */
	char path[PATH_MAX];		/* its device */
	struct secondary dev;
	struct dmrepl_batch batch;
	struct dm_repl_rec *rec;	/* a record copied out, sealed */
	__u64 applied_seq;		/* the secondary's, at the start */
	__u64 applied_stream;		/* of applied_seq; 0: none yet */
	__u64 skipped;			/* records at or below it: not sent */
	__u64 done_seq;			/* applied or skipped: may be released */
	__u64 released_seq;		/* released by this run */
};

void usage_replicate(FILE *f)
{
	fprintf(f,
"Usage: repltool replicate [--batch-kb N] [--once] [--stats] SOURCE_GROUP|PATH\n"
"                          TARGET_GROUP|PATH\n"
"\n"
"Ship the records of the primary group SOURCE to the secondary group TARGET:\n"
"read SOURCE's ring, seal each record, write them to TARGET's device in\n"
"batches of at most N KiB cut at epoch boundaries, as 'repltool apply' does,\n"
"and release them in SOURCE's ring only once TARGET has applied them (its\n"
"write(2) returned). Records TARGET has applied already (of its applied\n"
"stream, at or below its applied sequence at the start) are released\n"
"without being sent. Follows\n"
"the ring until SIGINT or SIGTERM (the current batch is finished) or until\n"
"SOURCE goes away. GROUP means /dev/dm-repl/GROUP.\n"
"\n"
BATCH_OPTS_HELP
"      --once         stop when the ring is drained\n"
"  -h, --help         show this text\n"
"\n"
"Exit status: 0 when stopped (drained, a signal, SOURCE gone), 1 for a\n"
"refused or short batch or any other runtime error, 2 for a usage error.\n");
}

static int parse_opts(int argc, char **argv, struct replicate_opts *o)
{
	enum { OPT_ONCE = OPT_OWN };
	static const struct option lopts[] = {
		BATCH_LONG_OPTS,
		{ "once", no_argument, NULL, OPT_ONCE },
		{ NULL, 0, NULL, 0 },
	};
	int c, ret;

	o->once = false;
	batch_opts_init(&o->batch);
	while ((c = getopt_long(argc, argv, ":h", lopts, NULL)) != -1) {
		if (c == OPT_ONCE) {
			o->once = true;
			continue;
		}
		ret = batch_opt("replicate", c, &o->batch, usage_replicate, argv);
		if (ret)
			return ret;
	}
	if (argc - optind != 2)
		return usage_err("replicate", argc - optind < 2 ?
				 "wants SOURCE_GROUP and TARGET_GROUP" :
				 "only SOURCE_GROUP and TARGET_GROUP, please");
	o->source = argv[optind];
	o->target = argv[optind + 1];
	return 0;
}

/* ---- setting up ------------------------------------------------------------ */

/*
 * The secondary applied a sequence of this stream that the primary never
 * reserved: it is not this primary's replica, and its skipping would drop
 * the ring unsent. (A secondary at another stream is placed by the kernel
 * from the ring's STREAM record, or refuses it.)
 */
static int check_start(struct replicate *r)
{
	struct dm_repl_group_info info;
	int ret = dmrepl_ring_info(r->ring, &info);

	if (ret) {
		err_msg("%s: DM_REPL_IOC_GROUP_INFO: %s", r->path, strerror(-ret));
		return -1;
	}
	r->applied_seq = r->dev.before.applied_seq;
	r->applied_stream = r->dev.before.applied_stream;
	if (r->applied_stream != info.stream && r->applied_stream)
		return 0;
	if (r->applied_seq < info.next_seq)
		return 0;
	err_msg("replicate: %s: applied sequence %llu is past the last sequence of %s "
		"(%llu): a replica of another group?", r->opts.target,
		(unsigned long long)r->applied_seq, r->opts.source,
		(unsigned long long)info.next_seq - 1);
	return -1;
}

static int setup(struct replicate *r)
{
	int ret;

	r->dev.info_fd = r->dev.dev_fd = -1;
	r->rec = malloc(DMREPL_REC_MAX_LEN);
	ret = r->rec ? dmrepl_batch_init(&r->batch, r->opts.batch.batch_kb * 1024) : -ENOMEM;
	if (ret) {
		err_msg("replicate: record buffers: %s", strerror(-ret));
		return -1;
	}
	if (open_ring(r->opts.source, &r->ring, r->path, sizeof(r->path)) ||
	    open_secondary("replicate", r->opts.target, &r->dev) || check_start(r))
		return -1;
	catch_stop_signals();
	return 0;
}

static void teardown(struct replicate *r)
{
	close_secondary(&r->dev);
	if (r->ring)
		dmrepl_ring_close(r->ring);
	dmrepl_batch_free(&r->batch);
	free(r->rec);
}

/* ---- the loop --------------------------------------------------------------- */

/* Release what the secondary has applied (or had): 0 or -1 (reported). */
static int release_done(struct replicate *r, bool gone)
{
	if (r->batch.written_seq > r->done_seq)
		r->done_seq = r->batch.written_seq;
	if (r->done_seq <= r->released_seq)
		return 0;
	if (release_ring(r->ring, r->path, r->done_seq, gone))
		return -1;
	r->released_seq = r->done_seq;
	return 0;
}

/* A batch was not written: say why, release the ones before it. Returns -1. */
static int refused(struct replicate *r, int err)
{
	report_refused("replicate", &r->dev, &r->batch, err);
	release_done(r, false);
	return -1;
}

/* One slot: skipped, or sealed into the batch (which may write batches). */
static int ship(struct replicate *r, const struct dm_repl_rec *slot, bool discarded)
{
	__u64 seq = dmrepl_rec_seq(slot);
	int ret;

	/* Applied is (stream, sequence): never a sequence alone. */
	if (seq <= r->applied_seq &&
	    (!r->applied_stream || dmrepl_rec_stream(slot) == r->applied_stream)) {
		r->skipped++;
		r->done_seq = seq;
		return 0;
	}
	dmrepl_rec_copy_out(r->rec, slot, discarded);
	ret = dmrepl_batch_add(&r->batch, r->rec, r->dev.dev_fd);
	if (ret)
		return refused(r, ret);
	return release_done(r, false);
}

/*
 * Ship what is committed, then what is buffered: no more records are ready
 * (or a stop was asked for, or the ring is corrupt past them).
 */
static int replicate_step(void *arg, bool gone)
{
	struct replicate *r = arg;
	const struct dm_repl_rec *slot;
	bool discarded;
	int ret = 0, err;

	/*
	 * A release can put a record in the ring (the GAP the kernel owed
	 * after an overflow): after the last release, look once more, so that
	 * a drained replica knows of every gap.
	 */
	do {
		while (!stop_requested) {
			ret = next_slot(r->ring, r->path, &slot, &discarded);
			if (ret <= 0)
				break;
			if (ship(r, slot, discarded))
				return -1;
		}
		err = dmrepl_batch_flush(&r->batch, r->dev.dev_fd);
		if (err)
			return refused(r, err);
		if (release_done(r, gone) || ret < 0)
			return -1;
		ret = stop_requested ? 0 : next_slot(r->ring, r->path, &slot, &discarded);
		if (ret > 0 && ship(r, slot, discarded))
			return -1;
	} while (ret > 0);
	return ret < 0 ? -1 : 0;
}

static bool replicate_done(void *arg)
{
	const struct replicate *r = arg;

	return r->opts.once;
}

int cmd_replicate(int argc, char **argv)
{
	struct replicate r = { 0 };
	int ret;

	ret = parse_opts(argc, argv, &r.opts);
	if (ret)
		return ret < 0 ? EXIT_OK : ret;
	ret = setup(&r) ? EXIT_RUNTIME :
	      follow_ring(r.ring, r.path, replicate_step, replicate_done, &r);
	ret = finish_batches(&r.dev, &r.batch, r.opts.batch.stats, r.skipped, ret);
	teardown(&r);
	return ret;
}
