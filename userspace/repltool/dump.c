// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * repltool dump: follow a group's ring as blkparse follows blktrace.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dmrepl.h"
#include "out.h"
#include "repltool.h"

struct dump_opts {
	bool follow, release, stats, raw, json;
	__u64 count;			/* 0: no limit */
	const char *target;		/* group name or path, as given */
};

struct type_stats {
	__u64 records;
	__u64 bytes;			/* record bytes (len) in the ring */
	__u64 volume_bytes;		/* nbytes: volume bytes covered */
};

struct dump_stats {
	__u64 records, bytes;
	struct type_stats type[DM_REPL_REC_TYPE_MAX + 1];
	bool any;
	__u64 first_seq, last_seq;
	__u64 epochs, first_epoch, last_epoch;
};

struct dump {
	struct dump_opts opts;
	struct dmrepl_ring *ring;
	const char *path;		/* the device, for messages */
	struct out out;			/* records (text or JSON) */
	struct dump_stats st;
	bool unreleased;		/* records seen since the last release */
	__u64 batch_last_seq;
	struct dm_repl_rec *sealed;	/* --raw: a record copied out and sealed */
};

void usage_dump(FILE *f)
{
	fprintf(f,
"Usage: repltool dump [-f|--follow] [--release] [--stats] [--raw] [-n|--count N]\n"
"                     [-j|--json] GROUP|PATH\n"
"\n"
"Print the change records committed in a group's ring, in sequence order, one\n"
"line each: SEQ EPOCH VOLUME TYPE SECTOR+SECTORS FLAGS PAYLOAD_BYTES, with TYPE\n"
"one of W(rite) D(iscard) Z(write zeroes) F(lush) M(arker) R(esync); a MARKER\n"
"shows its label instead of SECTOR+SECTORS. A write that failed (a DISCARDED\n"
"slot) shows as its record with flag VOID and no payload, here and in --raw.\n"
"GROUP means /dev/dm-repl/GROUP.\n"
"\n"
"  -f, --follow     wait for new records until interrupted (SIGINT, SIGTERM),\n"
"                   N records were seen, or the group goes away\n"
"      --release    free each batch of records in the ring once written out\n"
"      --stats      no per-record lines; a summary at the end (records and\n"
"                   bytes per type, discarded slots, sequences, epochs)\n"
"      --raw        write the records byte-exact to stdout (not a terminal);\n"
"                   --stats then goes to stderr\n"
"  -n, --count N    stop after N records (VOID ones not counted)\n"
"  -j, --json       one JSON object per line instead of text\n"
"  -h, --help       show this text\n");
}

static int parse_opts(int argc, char **argv, struct dump_opts *o)
{
	enum { OPT_RELEASE = 256, OPT_STATS, OPT_RAW };
	static const struct option lopts[] = {
		{ "follow", no_argument, NULL, 'f' },
		{ "release", no_argument, NULL, OPT_RELEASE },
		{ "stats", no_argument, NULL, OPT_STATS },
		{ "raw", no_argument, NULL, OPT_RAW },
		{ "count", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":fn:jh", lopts, NULL)) != -1) {
		switch (c) {
		case 'f': o->follow = true; break;
		case OPT_RELEASE: o->release = true; break;
		case OPT_STATS: o->stats = true; break;
		case OPT_RAW: o->raw = true; break;
		case 'j': o->json = true; break;
		case 'n':
			if (parse_positive(optarg, &o->count))
				return usage_err("dump", "--count wants a positive number, not \"%s\"",
						 optarg);
			break;
		case 'h':
			usage_dump(stdout);
			return -1;
		case ':':
			return usage_err("dump", "option \"%s\" needs an argument",
					 argv[optind - 1]);
		default:
			if (optopt)
				return usage_err("dump", "unknown option \"-%c\"", optopt);
			return usage_err("dump", "unknown option \"%s\"", argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return usage_err("dump", optind == argc ? "missing GROUP or PATH" :
				 "only one GROUP or PATH, please");
	o->target = argv[optind];
	if (o->raw && o->json)
		return usage_err("dump", "--raw and --json exclude each other");
	if (o->raw && isatty(STDOUT_FILENO))
		return usage_err("dump", "refusing to write raw records to a terminal; redirect stdout");
	return 0;
}

/* ---- per-record output ------------------------------------------- */

static void print_flags(struct out *o, unsigned int flags)
{
	static const struct { unsigned int bit; const char *text, *json; } names[] = {
		{ DM_REPL_RECF_FUA, "FUA", "FUA" },
		{ DM_REPL_RECF_RESYNC_END, "END", "RESYNC_END" },
		{ DM_REPL_RECF_VOID, "VOID", "VOID" },
		{ DM_REPL_RECF_GAP, "GAP", "GAP" },
		{ DM_REPL_RECF_ZERO, "ZERO", "ZERO" },
	};
	const char *sep = " ";
	size_t i;

	out_open_array(o, "flags");
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(flags & names[i].bit))
			continue;
		out_str(o, OUT_JSON, NULL, NULL, names[i].json);
		out_text(o, "%s%s", sep, names[i].text);
		sep = ",";
	}
	out_close_array(o);
	if (!flags)
		out_text(o, " -");
}

/*
 * The extent (sector+sectors), the label of a MARKER, "-" for a FLUSH and
 * for a VOID MARKER (its label is gone with its payload).
 */
static void print_extent(struct out *o, const struct dm_repl_rec *r)
{
	char label[DM_REPL_MARKER_LABEL_MAX + 1];
	__u32 plen = dmrepl_rec_payload_len(r);

	switch (dmrepl_rec_type(r)) {
	case DM_REPL_REC_FLUSH:
		out_text(o, " -");
		return;
	case DM_REPL_REC_MARKER:
		if (dmrepl_rec_flags(r) & DM_REPL_RECF_VOID) {
			out_text(o, " -");
			return;
		}
		/* dmrepl_rec_check() bounded plen to DM_REPL_MARKER_LABEL_MAX. */
		memcpy(label, dmrepl_rec_payload(r), plen);
		label[plen] = '\0';
		out_str(o, OUT_ANY, "label", " \"%s\"", label);
		return;
	}
	out_u64(o, OUT_ANY, "sector", " %llu", dmrepl_rec_sector(r));
	out_u64(o, OUT_ANY, "sectors", "+%llu", dmrepl_rec_nbytes(r) / 512);
}

static void print_record(struct out *o, const struct dm_repl_rec *r)
{
	unsigned int type = dmrepl_rec_type(r);
	char letter[2] = { dmrepl_rec_type_letter(type), '\0' };

	out_open_object(o, NULL);
	out_u64(o, OUT_ANY, "seq", "%10llu", dmrepl_rec_seq(r));
	out_u64(o, OUT_ANY, "epoch", " %6llu", dmrepl_rec_epoch(r));
	out_u64(o, OUT_ANY, "volume", " %3llu", dmrepl_rec_volume(r));
	out_str(o, OUT_TEXT, NULL, " %s", letter);
	out_str(o, OUT_JSON, "type", NULL, dmrepl_rec_type_name(type));
	print_extent(o, r);
	print_flags(o, dmrepl_rec_flags(r));
	out_u64(o, OUT_ANY, "payload_len", " %llu", dmrepl_rec_payload_len(r));
	out_u64(o, OUT_JSON, "time_ns", NULL, dmrepl_rec_time_ns(r));
	out_close_object(o);
	out_newline(o);
}

/* ---- summary -------------------------------------------------------- */

static void count_record(struct dump_stats *st, const struct dm_repl_rec *r)
{
	struct type_stats *t = &st->type[dmrepl_rec_type(r)];
	__u64 epoch = dmrepl_rec_epoch(r);

	st->records++;
	st->bytes += dmrepl_rec_len(r);
	t->records++;
	t->bytes += dmrepl_rec_len(r);
	t->volume_bytes += dmrepl_rec_nbytes(r);
	if (!st->any) {
		st->any = true;
		st->first_seq = dmrepl_rec_seq(r);
		st->first_epoch = epoch;
		st->epochs = 1;
	} else if (epoch != st->last_epoch) {
		st->epochs++;
	}
	st->last_seq = dmrepl_rec_seq(r);
	st->last_epoch = epoch;
}

/* A number, or null (JSON) / the text none when no record was seen. */
static void out_u64_or_none(struct out *o, const char *key, const char *fmt,
			    const char *none, bool have, __u64 v)
{
	if (have)
		out_u64(o, OUT_ANY, key, fmt, v);
	else
		out_null(o, OUT_ANY, key, none);
}

static void print_type_stats(struct out *o, const struct dump_stats *st)
{
	unsigned int type;

	out_open_object(o, "types");
	for (type = 1; type <= DM_REPL_REC_TYPE_MAX; type++) {
		const struct type_stats *t = &st->type[type];

		out_open_object(o, dmrepl_rec_type_name(type));
		out_str(o, OUT_TEXT, NULL, "  %-13s", dmrepl_rec_type_name(type));
		out_u64(o, OUT_ANY, "records", " records %llu", t->records);
		out_u64(o, OUT_ANY, "bytes", " bytes %llu", t->bytes);
		out_u64(o, OUT_ANY, "volume_bytes", " volume_bytes %llu\n",
			t->volume_bytes);
		out_close_object(o);
	}
	out_close_object(o);
}

static void print_stats(struct out *o, const struct dump *d)
{
	const struct dump_stats *st = &d->st;

	out_open_object(o, NULL);
	out_str(o, OUT_ANY, "device", "%s:", d->path);
	out_u64(o, OUT_ANY, "records", " records %llu", st->records);
	out_u64(o, OUT_ANY, "bytes", " bytes %llu", st->bytes);
	out_u64(o, OUT_ANY, "discarded", " discarded_slots %llu\n",
		dmrepl_ring_discarded(d->ring));
	print_type_stats(o, st);
	out_u64_or_none(o, "first_seq", "  seq %llu", "  seq -", st->any,
			st->first_seq);
	out_u64_or_none(o, "last_seq", "..%llu", "..-", st->any, st->last_seq);
	out_u64(o, OUT_ANY, "epochs", " epochs %llu", st->epochs);
	out_u64_or_none(o, "first_epoch", " (%llu", " (-", st->any, st->first_epoch);
	out_u64_or_none(o, "last_epoch", "..%llu)", "..-)", st->any, st->last_epoch);
	out_close_object(o);
	out_newline(o);
}

/* ---- the loop ----------------------------------------------------- */

static int write_all(int fd, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int write_raw(const struct dm_repl_rec *r)
{
	int ret = write_all(STDOUT_FILENO, r, dmrepl_rec_len(r));

	if (ret) {
		err_msg("write of raw records to stdout: %s", strerror(-ret));
		return -1;
	}
	return 0;
}

/*
 * Write out the record of a slot. A DISCARDED slot (a failed write) goes
 * out as its VOID record, sealed, in its sequence's place: counted as a
 * discarded slot, not as a record, but released with the batch. Raw
 * records leave the ring sealed (see <linux/dm-repl.h>).
 */
static int emit(struct dump *d, const struct dm_repl_rec *r, bool discarded)
{
	struct dm_repl_rec void_rec;

	if (d->opts.raw) {
		r = dmrepl_rec_copy_out(d->sealed, r, discarded);
	} else if (discarded) {
		dmrepl_rec_make_void(r, &void_rec);
		r = &void_rec;
	}
	if (!discarded)
		count_record(&d->st, r);
	d->unreleased = true;
	d->batch_last_seq = dmrepl_rec_seq(r);
	if (d->opts.raw)
		return write_raw(r);
	if (!d->opts.stats)
		print_record(&d->out, r);
	return 0;
}

static bool count_reached(const struct dump *d)
{
	return d->opts.count && d->st.records >= d->opts.count;
}

/* Print what is committed now. Returns 0 or -1 (reported). */
static int drain(struct dump *d)
{
	const struct dm_repl_rec *r;
	bool discarded;
	int ret;

	while (!count_reached(d) && !stop_requested) {
		ret = next_slot(d->ring, d->path, &r, &discarded);
		if (ret <= 0)
			return ret;
		if (emit(d, r, discarded))
			return -1;
	}
	return 0;
}

/* Make the batch reach stdout, then free it in the ring if asked. */
static int end_batch(struct dump *d, bool gone)
{
	if (fflush(stdout) || ferror(stdout)) {
		err_msg("write to stdout: %s", strerror(errno));
		return -1;
	}
	if (!d->opts.release || !d->unreleased)
		return 0;
	if (release_ring(d->ring, d->path, d->batch_last_seq, gone))
		return -1;
	d->unreleased = false;
	return 0;
}

static int dump_step(void *arg, bool gone)
{
	struct dump *d = arg;

	return drain(d) || end_batch(d, gone) ? -1 : 0;
}

static bool dump_done(void *arg)
{
	const struct dump *d = arg;

	return !d->opts.follow || count_reached(d);
}

int cmd_dump(int argc, char **argv)
{
	char path[PATH_MAX];
	struct dump d = { 0 };
	int ret;

	ret = parse_opts(argc, argv, &d.opts);
	if (ret)
		return ret < 0 ? EXIT_OK : ret;
	if (d.opts.raw) {
		d.sealed = malloc(DMREPL_REC_MAX_LEN);
		if (!d.sealed) {
			err_msg("record buffer: %s", strerror(ENOMEM));
			return EXIT_RUNTIME;
		}
	}
	d.path = path;
	if (open_ring(d.opts.target, &d.ring, path, sizeof(path))) {
		free(d.sealed);
		return EXIT_RUNTIME;
	}
	out_init(&d.out, stdout, d.opts.json);
	catch_stop_signals();

	ret = follow_ring(d.ring, d.path, dump_step, dump_done, &d);
	if (d.opts.stats) {
		struct out so;

		out_init(&so, d.opts.raw ? stderr : stdout, d.opts.json);
		print_stats(&so, &d);
		if (fflush(so.f) && ret == EXIT_OK) {
			err_msg("write of the summary: %s", strerror(errno));
			ret = EXIT_RUNTIME;
		}
	}
	dmrepl_ring_close(d.ring);
	free(d.sealed);
	return ret;
}
