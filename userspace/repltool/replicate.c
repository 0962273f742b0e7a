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
	struct dmrepl_ship ship;
	int send_err;			/* of the last batch written */
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

/* The sink: one write(2) of the batch to the secondary, applied when it returns. */
static int write_to_secondary(void *arg, const void *buf, const struct dmrepl_batch *b)
{
	struct replicate *r = arg;

	r->send_err = dmrepl_batch_write(r->dev.dev_fd, buf, b->batch_len,
					 &r->ship.batch.written);
	if (!r->send_err)
		dmrepl_ship_acked(&r->ship, b->last_seq);
	return r->send_err;
}

static int check_start(struct replicate *r)
{
	int ret = dmrepl_ship_start(&r->ship, r->dev.before.applied_stream,
				    r->dev.before.applied_seq);

	if (ret == -ESTALE)
		err_msg("replicate: %s: applied sequence %llu is past the last sequence of %s "
			"(%llu): a replica of another group?", r->opts.target,
			(unsigned long long)r->dev.before.applied_seq, r->opts.source,
			(unsigned long long)r->ship.start_next_seq - 1);
	else if (ret == -ERANGE)
		err_msg("replicate: %s: the records after its applied sequence %llu left %s's ring "
			"(released up to %llu): a resync is needed", r->opts.target,
			(unsigned long long)r->dev.before.applied_seq, r->opts.source,
			(unsigned long long)r->ship.start_released_seq);
	else if (ret)
		err_msg("%s: DM_REPL_IOC_GROUP_INFO: %s", r->path, strerror(-ret));
	return ret ? -1 : 0;
}

static int setup(struct replicate *r)
{
	int ret;

	r->dev.info_fd = r->dev.dev_fd = -1;
	if (open_ring(r->opts.source, &r->ring, r->path, sizeof(r->path)))
		return -1;
	ret = dmrepl_ship_init(&r->ship, r->ring, r->opts.batch.batch_kb * 1024);
	if (ret) {
		err_msg("replicate: record buffers: %s", strerror(-ret));
		return -1;
	}
	r->ship.batch.send = write_to_secondary;
	r->ship.batch.send_arg = r;
	if (open_secondary("replicate", r->opts.target, &r->dev) || check_start(r))
		return -1;
	catch_stop_signals();
	return 0;
}

static void teardown(struct replicate *r)
{
	close_secondary(&r->dev);
	dmrepl_ship_free(&r->ship);
	if (r->ring)
		dmrepl_ring_close(r->ring);
}

/* ---- the loop --------------------------------------------------------------- */

/* Release what the secondary has applied (or had): 0 or -1 (reported). */
static int release_done(struct replicate *r, bool gone)
{
	int ret = dmrepl_ship_release(&r->ship);

	if (!ret || (gone && ret == -ENODEV))
		return 0;
	err_msg("%s: release up to sequence %llu: %s", r->path,
		(unsigned long long)r->ship.acked_seq, strerror(-ret));
	return -1;
}

/* Batches stop at a stop request: one at a time, released as they land. */
static int pump(struct replicate *r, bool gone)
{
	int ret;

	do {
		r->send_err = 0;
		ret = dmrepl_ship_pump(&r->ship, 1);
		if (ret && ret == r->send_err) {
			report_refused("replicate", &r->dev, &r->ship.batch, ret);
			release_done(r, false);
			return -1;
		}
		if (ret) {
			release_done(r, false);
			err_msg("%s: corrupt ring at position %llu: %s", r->path,
				(unsigned long long)dmrepl_ring_pos(r->ring),
				dmrepl_ring_why(r->ring));
			return -1;
		}
		if (release_done(r, gone))
			return -1;
	} while (r->ship.batch.len && !stop_requested);
	return 0;
}

/*
 * Ship what is committed, then what is buffered. A release can put a record
 * in the ring (the GAP the kernel owed after an overflow): after the last
 * release, look once more, so that a drained replica knows of every gap.
 */
static int replicate_step(void *arg, bool gone)
{
	struct replicate *r = arg;
	__u64 pos;

	do {
		pos = dmrepl_ring_pos(r->ring);
		if (pump(r, gone))
			return -1;
	} while (pos != dmrepl_ring_pos(r->ring) && !stop_requested);
	return 0;
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
	ret = finish_batches(&r.dev, &r.ship.batch, r.opts.batch.stats, r.ship.skipped, ret);
	teardown(&r);
	return ret;
}
