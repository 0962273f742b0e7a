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
	struct batch_opts batch;
	const char *input;		/* NULL: stdin */
	const char *target;		/* group name or path, as given */
};

struct apply {
	struct apply_opts opts;
	const char *in_name;		/* for messages */
	int in;				/* the record stream */
	struct secondary dev;
	struct dmrepl_stream stream;
	struct dm_repl_rec *rec;	/* DMREPL_REC_MAX_LEN bytes */
	struct dmrepl_batch batch;
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
BATCH_OPTS_HELP
"  -i, --input FILE   read FILE instead of stdin\n"
"  -h, --help         show this text\n"
"\n"
"Exit status: 0 at the end of the stream, 1 for a bad record, a refused or\n"
"short batch or any other runtime error, 2 for a usage error.\n");
}

/* ---- options ------------------------------------------------------------- */

static int parse_opts(int argc, char **argv, struct apply_opts *o)
{
	static const struct option lopts[] = {
		BATCH_LONG_OPTS,
		{ "input", required_argument, NULL, 'i' },
		{ NULL, 0, NULL, 0 },
	};
	int c, ret;

	o->input = NULL;
	batch_opts_init(&o->batch);
	while ((c = getopt_long(argc, argv, ":i:h", lopts, NULL)) != -1) {
		if (c == 'i') {
			o->input = optarg;
			continue;
		}
		ret = batch_opt("apply", c, &o->batch, usage_apply, argv);
		if (ret)
			return ret;
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

static int setup(struct apply *a)
{
	int ret;

	a->in = a->dev.info_fd = a->dev.dev_fd = -1;
	a->rec = malloc(DMREPL_REC_MAX_LEN);
	ret = a->rec ? dmrepl_batch_init(&a->batch, a->opts.batch.batch_kb * 1024) : -ENOMEM;
	if (ret) {
		err_msg("apply: record buffers: %s", strerror(-ret));
		return -1;
	}
	if (open_input(a) || open_secondary("apply", a->opts.target, &a->dev))
		return -1;
	dmrepl_stream_init(&a->stream, a->in);
	return 0;
}

static void teardown(struct apply *a)
{
	if (a->in > STDIN_FILENO)
		close(a->in);
	close_secondary(&a->dev);
	dmrepl_batch_free(&a->batch);
	free(a->rec);
}

/* ---- errors ------------------------------------------------------------- */

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
	int ret = dmrepl_batch_flush(&a->batch, a->dev.dev_fd);

	if (ret)
		report_refused("apply", &a->dev, &a->batch, ret);
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
		ret = dmrepl_batch_add(&a->batch, a->rec, a->dev.dev_fd);
		if (ret) {
			report_refused("apply", &a->dev, &a->batch, ret);
			return EXIT_RUNTIME;
		}
	}
	if (ret < 0 || send_all(a))
		return EXIT_RUNTIME;
	return EXIT_OK;
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
	ret = finish_batches(&a.dev, &a.batch, a.opts.batch.stats, 0, ret);
	teardown(&a);
	return ret;
}
