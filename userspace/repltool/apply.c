// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * repltool apply: feed a sealed record stream ("repltool dump --raw") to a
 * secondary group's device, in write(2) batches cut at epoch boundaries.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dmrepl.h"
#include "repltool.h"

/* Input silent this long: what is buffered goes out as a batch. */
#define PAUSE_MS 100

struct apply_opts {
	__u64 batch_kb;
	bool stats;
	const char *input;		/* NULL: stdin */
	const char *target;		/* group name or path, as given */
};

struct apply {
	struct apply_opts opts;
	const char *in_name;		/* for messages */
	int in;				/* the record stream */
	int info_fd, dev_fd;		/* the group's device: ioctls, batches */
	char path[PATH_MAX];
	struct dmrepl_stream stream;
	struct dm_repl_rec *rec;	/* DMREPL_REC_MAX_LEN bytes */
	struct dmrepl_batch batch;
	struct dm_repl_apply_info before;
};

void usage_apply(FILE *f)
{
	fprintf(f,
"Usage: repltool apply [--batch-kb N] [--stats] [-i|--input FILE] GROUP|PATH\n"
"\n"
"Read sealed records (the stream 'repltool dump --raw' writes) from stdin or\n"
"FILE, check each one, and write them to the secondary group's device in\n"
"batches of at most N KiB. When the next record does not fit, a batch ends\n"
"after the last FLUSH record it holds (an epoch boundary), else where it is\n"
"full; a batch also goes out whenever the input pauses for 100 ms, and at\n"
"its end. The module applies each batch whole or refuses it; the refusal's\n"
"reason and sequence are printed. GROUP means /dev/dm-repl/GROUP; a primary\n"
"group is refused.\n"
"\n"
"      --batch-kb N   batch size in KiB, 1-32768 (default 4096); a record\n"
"                     larger than that goes in a batch of its own\n"
"      --stats        at the end, print records, batches, bytes, records\n"
"                     skipped (already applied) and the applied sequence\n"
"  -i, --input FILE   read FILE instead of stdin\n"
"  -h, --help         show this text\n"
"\n"
"Exit status: 0 at the end of the stream, 1 for a bad record, a refused or\n"
"short batch or any other runtime error, 2 for a usage error.\n");
}

/* ---- options ------------------------------------------------------------- */

static int parse_batch_kb(struct apply_opts *o, const char *arg)
{
	if (parse_positive(arg, &o->batch_kb) ||
	    o->batch_kb > DM_REPL_APPLY_BATCH_MAX / 1024)
		return usage_err("apply", "--batch-kb wants a number from 1 to %u, not \"%s\"",
				 DM_REPL_APPLY_BATCH_MAX / 1024, arg);
	return 0;
}

static int parse_opts(int argc, char **argv, struct apply_opts *o)
{
	enum { OPT_BATCH = 256, OPT_STATS };
	static const struct option lopts[] = {
		{ "batch-kb", required_argument, NULL, OPT_BATCH },
		{ "stats", no_argument, NULL, OPT_STATS },
		{ "input", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, ret;

	memset(o, 0, sizeof(*o));
	o->batch_kb = DMREPL_APPLY_BATCH_DEFAULT / 1024;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":i:h", lopts, NULL)) != -1) {
		switch (c) {
		case OPT_BATCH:
			ret = parse_batch_kb(o, optarg);
			if (ret)
				return ret;
			break;
		case OPT_STATS: o->stats = true; break;
		case 'i': o->input = optarg; break;
		case 'h':
			usage_apply(stdout);
			return -1;
		default:
			return getopt_error("apply", c, argv);
		}
	}
	if (optind != argc - 1)
		return usage_err("apply", optind == argc ? "missing GROUP or PATH" :
				 "only one GROUP or PATH, please");
	o->target = argv[optind];
	if (!o->input && isatty(STDIN_FILENO))
		return usage_err("apply", "refusing to read raw records from a terminal; "
				 "redirect stdin or use --input");
	return 0;
}

/* ---- setting up ------------------------------------------------------------ */

static int open_input(struct apply *a)
{
	a->in_name = a->opts.input ? a->opts.input : "<stdin>";
	if (!a->opts.input) {
		a->in = STDIN_FILENO;
		return 0;
	}
	a->in = open(a->opts.input, O_RDONLY | O_CLOEXEC);
	if (a->in >= 0)
		return 0;
	err_msg("%s: %s", a->opts.input, strerror(errno));
	return -1;
}

/* The device for ioctls (checked to be a secondary) and for batches. */
static int open_device(struct apply *a)
{
	struct dm_repl_group_info info;
	char buf[32];
	int ret;

	a->info_fd = open_group(a->opts.target, O_RDONLY, &info, a->path, sizeof(a->path));
	if (a->info_fd < 0)
		return -1;
	if (info.role != DM_REPL_ROLE_SECONDARY) {
		err_msg("apply: %s: group \"%.*s\" is %s; apply writes to a secondary "
			"group only", a->path, DM_REPL_GROUP_NAME_MAX, info.name,
			role_name(info.role, buf, sizeof(buf)));
		return -1;
	}
	ret = dmrepl_apply_info(a->info_fd, &a->before);
	if (ret) {
		err_msg("%s: DM_REPL_IOC_APPLY_INFO: %s", a->path, strerror(-ret));
		return -1;
	}
	a->dev_fd = open(a->path, O_WRONLY | O_CLOEXEC);
	if (a->dev_fd >= 0)
		return 0;
	err_msg("%s: open for writing: %s", a->path, strerror(errno));
	return -1;
}

static int setup(struct apply *a)
{
	int ret;

	a->in = a->info_fd = a->dev_fd = -1;
	a->rec = malloc(DMREPL_REC_MAX_LEN);
	ret = a->rec ? dmrepl_batch_init(&a->batch, a->opts.batch_kb * 1024) : -ENOMEM;
	if (ret) {
		err_msg("apply: record buffers: %s", strerror(-ret));
		return -1;
	}
	if (open_input(a) || open_device(a))
		return -1;
	dmrepl_stream_init(&a->stream, a->in);
	return 0;
}

static void teardown(struct apply *a)
{
	if (a->in > STDIN_FILENO)
		close(a->in);
	if (a->info_fd >= 0)
		close(a->info_fd);
	if (a->dev_fd >= 0)
		close(a->dev_fd);
	dmrepl_batch_free(&a->batch);
	free(a->rec);
}

/* ---- refusals ------------------------------------------------------------- */

/* Why the module refused the batch, from its apply info. */
static void refused(struct apply *a, int err)
{
	const struct dmrepl_batch *b = &a->batch;
	struct dm_repl_apply_info ai;
	const char *reason;

	if (err == -EIO && b->written >= 0) {
		err_msg("apply: %s: short write of the batch of seq %llu..%llu: %ld of %zu "
			"bytes", a->opts.target, (unsigned long long)b->first_seq,
			(unsigned long long)b->last_seq, b->written, b->batch_len);
		return;
	}
	if (dmrepl_apply_info(a->info_fd, &ai) || ai.last_error != err) {
		err_msg("apply: %s: batch of seq %llu..%llu refused: %s", a->opts.target,
			(unsigned long long)b->first_seq, (unsigned long long)b->last_seq,
			strerror(-err));
		return;
	}
	reason = dmrepl_apply_reason_name(ai.last_reason);
	if (reason)
		err_msg("apply: %s: batch refused at seq %llu: %s (%s)", a->opts.target,
			(unsigned long long)ai.last_error_seq, reason, strerror(-err));
	else
		err_msg("apply: %s: batch refused at seq %llu: reason %u (%s)",
			a->opts.target, (unsigned long long)ai.last_error_seq,
			ai.last_reason, strerror(-err));
}

/* The stream holds something other than a good record at its offset. */
static void bad_input(struct apply *a, int err, const char *why)
{
	unsigned long long off = a->stream.offset;

	if (!why) {
		err_msg("apply: %s: read: %s", a->in_name, strerror(-err));
		return;
	}
	/* The sequence is only worth naming when the header holds together. */
	if (!dmrepl_rec_check_header(a->rec, DMREPL_REC_MAX_LEN, NULL))
		err_msg("apply: %s: bad record at stream offset %llu (seq %llu): %s",
			a->in_name, off, (unsigned long long)dmrepl_rec_seq(a->rec), why);
	else
		err_msg("apply: %s: bad record at stream offset %llu: %s", a->in_name,
			off, why);
}

/* ---- the loop --------------------------------------------------------------- */

/* No byte of input within PAUSE_MS (end of file counts as input). */
static bool input_pauses(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int n;

	do
		n = poll(&p, 1, PAUSE_MS);
	while (n < 0 && errno == EINTR);
	return n == 0;
}

/* Send what is buffered. 0, or -1 (reported). */
static int send_all(struct apply *a)
{
	int ret = dmrepl_batch_flush(&a->batch, a->dev_fd);

	if (ret)
		refused(a, ret);
	return ret ? -1 : 0;
}

/* Next record into a->rec: 1, 0 at the end, -1 (reported, after the good ones went out). */
static int next_record(struct apply *a)
{
	const char *why;
	int ret;

	if (a->batch.len && input_pauses(a->in) && send_all(a))
		return -1;
	memset(a->rec, 0, DM_REPL_REC_HDR_SIZE);
	ret = dmrepl_stream_read(&a->stream, a->rec, DMREPL_REC_MAX_LEN, &why);
	if (ret >= 0)
		return ret;
	send_all(a);
	bad_input(a, ret, why);
	return -1;
}

static int apply_loop(struct apply *a)
{
	int ret;

	while ((ret = next_record(a)) == 1) {
		ret = dmrepl_batch_add(&a->batch, a->rec, a->dev_fd);
		if (ret) {
			refused(a, ret);
			return EXIT_RUNTIME;
		}
	}
	if (ret < 0 || send_all(a))
		return EXIT_RUNTIME;
	return EXIT_OK;
}

static void print_stats(struct apply *a)
{
	const struct dmrepl_batch *b = &a->batch;
	struct dm_repl_apply_info after;
	int ret = dmrepl_apply_info(a->info_fd, &after);

	if (ret) {
		err_msg("%s: DM_REPL_IOC_APPLY_INFO: %s", a->path, strerror(-ret));
		return;
	}
	printf("%s: records %llu batches %llu bytes %llu skipped %llu applied_seq %llu\n",
	       a->path, (unsigned long long)b->records, (unsigned long long)b->batches,
	       (unsigned long long)b->bytes,
	       (unsigned long long)(after.skipped - a->before.skipped),
	       (unsigned long long)after.applied_seq);
}

int cmd_apply(int argc, char **argv)
{
	struct apply a = { 0 };
	int ret;

	ret = parse_opts(argc, argv, &a.opts);
	if (ret)
		return ret < 0 ? EXIT_OK : ret;
	ret = EXIT_RUNTIME;
	if (!setup(&a))
		ret = apply_loop(&a);
	if (a.opts.stats && a.info_fd >= 0 && a.dev_fd >= 0)
		print_stats(&a);
	if (fflush(stdout) && ret == EXIT_OK) {
		err_msg("write of the summary: %s", strerror(errno));
		ret = EXIT_RUNTIME;
	}
	teardown(&a);
	return ret;
}
