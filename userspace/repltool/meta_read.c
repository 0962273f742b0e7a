// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * repltool meta show and check: one scan of a metadata device (superblock,
 * activity log, bitmap) that counts what it finds and reports each problem
 * through the same printer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "meta.h"
#include "out.h"
#include "repltool.h"

#define BLOCK DM_REPL_META_BLOCK_SIZE
#define BLOCK_SECTORS DM_REPL_META_BLOCK_SECTORS
/* Bitmap blocks read per read(2). */
#define SCAN_CHUNK_BLOCKS 64

struct scan {
	struct meta_dev dev;
	struct dmrepl_meta_sb sb;
	struct dmrepl_meta_layout lay;
	bool sb_usable;			/* layout trustworthy: AL and bitmap scanned */
	struct out *o;			/* check: problems go here; show: NULL */
	unsigned int problems;
	unsigned int sb_problems;	/* of those, in the superblock and device size */

	__u64 al_max_seq;
	__u32 al_current, al_torn, al_bad;
	__u64 al_hot;			/* distinct extents of current transactions */
	__u64 bm_dirty;			/* dirty regions in good blocks */
	__u64 bm_bad;			/* blocks that failed their checks */
};

/* ---- problems ---------------------------------------------------------- */

/* One problem: "DEV: AREA at byte OFF: WHY[NOTE]" or a JSON object. */
static void problem(struct scan *s, const char *area, __u64 off, const char *why,
		    const char *note)
{
	char text[256];

	s->problems++;
	if (!s->o)
		return;
	snprintf(text, sizeof(text), "%s%s", why, note ? note : "");
	out_open_object(s->o, NULL);
	out_str(s->o, OUT_TEXT, NULL, "%s: ", s->dev.path);
	out_str(s->o, OUT_ANY, "area", "%s", area);
	out_u64(s->o, OUT_ANY, "offset", " at byte %llu", off);
	out_str(s->o, OUT_ANY, "problem", ": %s\n", text);
	out_close_object(s->o);
}

/* "AL slot 3", "bitmap block 0", "superblock field role" */
static void problem_at(struct scan *s, const char *what, __u64 index, __u64 off,
		       const char *why, const char *note)
{
	char area[64];

	snprintf(area, sizeof(area), "%s %llu", what, (unsigned long long)index);
	problem(s, area, off, why, note);
}

/* ---- superblock --------------------------------------------------------- */

/* Magic and version: without them nothing else can be read. */
static int sb_unreadable(struct scan *s, int ret, const char *why)
{
	char text[160];

	if (ret == -EPROTO && s->sb.version) {
		snprintf(text, sizeof(text), "format version %u is newer than version %u, "
			 "the newest this repltool reads", s->sb.version, DM_REPL_META_VERSION);
		why = text;
	}
	problem(s, "superblock", 0, why, NULL);
	return 1;
}

static void sb_fields(struct scan *s)
{
	const char *why, *field;
	unsigned int next = 0;
	char area[64];

	while (dmrepl_meta_sb_check(&s->sb, &next, &why, &field)) {
		snprintf(area, sizeof(area), "superblock field %s", field);
		problem(s, area, dmrepl_meta_sb_field_offset(field), why, NULL);
		s->sb_usable = false;
	}
}

/*
 * Read and judge block 0. Returns 0 when the rest can be located, 1 when it
 * cannot (reported), -errno of a read.
 */
static int scan_sb(struct scan *s, unsigned char *block)
{
	const char *why;
	__u64 need;
	int ret;

	if (s->dev.bytes < BLOCK) {
		problem(s, "device", 0, "smaller than the 4 KiB superblock", NULL);
		return 1;
	}
	ret = meta_dev_read(&s->dev, block, BLOCK, 0);
	if (ret)
		return ret;
	ret = dmrepl_meta_sb_decode(block, &s->sb, &why);
	if (ret == -EMEDIUMTYPE || ret == -EPROTO)
		return sb_unreadable(s, ret, why);
	if (ret)
		problem(s, "superblock", 0, why, NULL);
	s->sb_usable = true;
	sb_fields(s);
	if (!s->sb_usable)
		return 1;
	dmrepl_meta_sb_layout(&s->sb, &s->lay);
	if (dmrepl_meta_sb_fits(&s->sb, s->dev.bytes, &need, &why)) {
		char text[160];

		snprintf(text, sizeof(text), "%s: the layout needs %llu bytes, the device has %llu",
			 why, (unsigned long long)need, (unsigned long long)s->dev.bytes);
		problem(s, "device", s->dev.bytes, text, NULL);
	}
	return 0;
}

/* How many of count 4 KiB blocks from sector start lie inside the device. */
static __u64 blocks_inside(const struct scan *s, __u64 start, __u64 count)
{
	__u64 dev_sectors = s->dev.bytes / 512;

	if (start >= dev_sectors)
		return 0;
	if ((dev_sectors - start) / BLOCK_SECTORS < count)
		return (dev_sectors - start) / BLOCK_SECTORS;
	return count;
}

/* ---- activity log -------------------------------------------------------- */

struct al_slot_state {
	int decoded;
	__u64 seq;
	const char *why;
};

static int cmp_u32(const void *a, const void *b)
{
	__u32 x = *(const __u32 *)a, y = *(const __u32 *)b;

	return (x > y) - (x < y);
}

static __u64 distinct(__u32 *v, __u64 n)
{
	__u64 i, d = 0;

	qsort(v, n, sizeof(*v), cmp_u32);
	for (i = 0; i < n; i++)
		if (!i || v[i] != v[i - 1])
			d++;
	return d;
}

/* Decode every slot present; note the highest valid seq. */
static void al_decode_all(struct scan *s, const unsigned char *area, __u32 n,
			  struct al_slot_state *st, struct dmrepl_meta_al_txn *t)
{
	__u32 i;

	for (i = 0; i < n; i++) {
		st[i].decoded = dmrepl_meta_al_decode(area + (size_t)i * BLOCK, &s->sb, i,
						      t, &st[i].why);
		st[i].seq = t->seq;
		if (st[i].decoded == 1 && t->seq > s->al_max_seq)
			s->al_max_seq = t->seq;
	}
}

static void al_report(struct scan *s, __u32 i, enum dmrepl_meta_al_verdict v,
		      const struct al_slot_state *st)
{
	__u64 off = s->lay.al_offset * 512 + (__u64)i * BLOCK;

	if (v == DMREPL_AL_TORN) {
		s->al_torn++;
		problem_at(s, "AL slot", i, off, st->why,
			   " (torn: the next transaction, being written when the device stopped?)");
	} else if (v == DMREPL_AL_BAD) {
		s->al_bad++;
		problem_at(s, "AL slot", i, off, st->why, NULL);
	}
}

/* Judge each slot; gather the extents of the current ones into ext. */
static __u64 al_judge_all(struct scan *s, const unsigned char *area, __u32 n,
			  struct al_slot_state *st, struct dmrepl_meta_al_txn *t, __u32 *ext)
{
	enum dmrepl_meta_al_verdict v;
	__u64 nr = 0;
	__u32 i;

	for (i = 0; i < n; i++) {
		v = dmrepl_meta_al_judge(&s->sb, i, st[i].decoded, st[i].seq,
					 s->al_max_seq, &st[i].why);
		al_report(s, i, v, &st[i]);
		if (v != DMREPL_AL_CURRENT)
			continue;
		s->al_current++;
		dmrepl_meta_al_decode(area + (size_t)i * BLOCK, &s->sb, i, t, &st[i].why);
		memcpy(ext + nr, t->extents, t->nr_extents * sizeof(*ext));
		nr += t->nr_extents;
	}
	return nr;
}

static int scan_al(struct scan *s)
{
	__u32 n = (__u32)blocks_inside(s, s->lay.al_offset, s->sb.al_slots);
	struct dmrepl_meta_al_txn *t = malloc(sizeof(*t));
	struct al_slot_state *st = calloc(n ? n : 1, sizeof(*st));
	__u32 *ext = malloc(((size_t)n + 1) * DM_REPL_AL_SLOT_EXTENTS * sizeof(*ext));
	unsigned char *area = meta_buf(((size_t)n + 1) * BLOCK);
	int ret = -ENOMEM;

	if (t && st && ext && area)
		ret = meta_dev_read(&s->dev, area, (size_t)n * BLOCK, s->lay.al_offset * 512);
	if (!ret) {
		al_decode_all(s, area, n, st, t);
		s->al_hot = distinct(ext, al_judge_all(s, area, n, st, t, ext));
	}
	free(area);
	free(ext);
	free(st);
	free(t);
	return ret;
}

/* ---- bitmap ------------------------------------------------------------- */

static void bm_block(struct scan *s, const unsigned char *block, __u64 index)
{
	const char *why;
	__u64 dirty;

	if (!dmrepl_meta_bm_decode(block, &s->sb, index, &dirty, &why)) {
		s->bm_dirty += dirty;
		return;
	}
	s->bm_bad++;
	problem_at(s, "bitmap block", index, s->lay.bm_offset * 512 + index * BLOCK, why, NULL);
}

static int scan_bitmap(struct scan *s)
{
	__u64 n = blocks_inside(s, s->lay.bm_offset, s->lay.bm_blocks), index = 0, i;
	unsigned char *buf = meta_buf((size_t)SCAN_CHUNK_BLOCKS * BLOCK);
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	while (!ret && index < n) {
		__u64 chunk = n - index < SCAN_CHUNK_BLOCKS ? n - index : SCAN_CHUNK_BLOCKS;

		ret = meta_dev_read(&s->dev, buf, (size_t)chunk * BLOCK,
				    s->lay.bm_offset * 512 + index * BLOCK);
		for (i = 0; !ret && i < chunk; i++)
			bm_block(s, buf + i * BLOCK, index + i);
		index += chunk;
	}
	free(buf);
	return ret;
}

/* Superblock, then AL and bitmap if it locates them. 0 or -errno of I/O. */
static int scan(struct scan *s)
{
	unsigned char *block = meta_buf(BLOCK);
	int ret;

	if (!block)
		return -ENOMEM;
	ret = scan_sb(s, block);
	free(block);
	s->sb_problems = s->problems;
	if (ret)
		return ret < 0 ? ret : 0;
	ret = scan_al(s);
	return ret ? ret : scan_bitmap(s);
}

static int io_error(const struct scan *s, int ret)
{
	err_msg("%s: read: %s", s->dev.path, strerror(-ret));
	return EXIT_RUNTIME;
}

/* ---- show ------------------------------------------------------------------ */

void usage_meta_show(FILE *f)
{
	fprintf(f,
"Usage: repltool meta show [-j|--json] META_DEV\n"
"\n"
"Print every field of the superblock, the layout, and what the activity log\n"
"and the bitmap hold: one \"key value\" line each, or one JSON object with the\n"
"same keys. Refused when the superblock is not valid ('repltool meta check'\n"
"says why).\n"
"\n"
"  -j, --json   one JSON object instead of text\n"
"  -h, --help   show this text\n");
}

static void kv_hex(struct out *o, const char *key, __u64 v)
{
	char hex[24];

	snprintf(hex, sizeof(hex), "0x%016llx", (unsigned long long)v);
	out_kv_str(o, key, hex);
}

static void kv_hex32(struct out *o, const char *key, __u32 v)
{
	char hex[16];

	snprintf(hex, sizeof(hex), "0x%08x", v);
	out_kv_str(o, key, hex);
}

/* "CLEAN INCONSISTENT", "-" for none; a JSON array of the same names. */
static void show_flags(struct out *o, __u32 flags)
{
	static const struct { __u32 bit; const char *name; } names[] = {
		{ DM_REPL_META_F_CLEAN, "CLEAN" },
		{ DM_REPL_META_F_INCONSISTENT, "INCONSISTENT" },
		{ DM_REPL_META_F_OUTDATED, "OUTDATED" },
		{ DM_REPL_META_F_REJOIN, "REJOIN" },
		{ DM_REPL_META_F_SEEDED, "SEEDED" },
	};
	const char *sep = "";
	size_t i;

	out_text(o, "%-16s", "flags");
	out_open_array(o, "flags");
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(flags & names[i].bit))
			continue;
		out_str(o, OUT_ANY, NULL, sep[0] ? " %s" : "%s", names[i].name);
		sep = " ";
	}
	out_close_array(o);
	out_text(o, "%s\n", sep[0] ? "" : "-");
}

static void show_identity(struct out *o, const struct scan *s)
{
	const struct dmrepl_meta_sb *sb = &s->sb;
	char uuid[DMREPL_META_UUID_STR_LEN];
	char group[DM_REPL_GROUP_NAME_MAX + 1] = { 0 };

	memcpy(group, sb->group, DM_REPL_GROUP_NAME_MAX);
	dmrepl_meta_uuid_str(sb->uuid, uuid);
	out_kv_str(o, "device", s->dev.path);
	out_kv_u64(o, "device_bytes", s->dev.bytes);
	kv_hex32(o, "magic", DM_REPL_META_SB_MAGIC);
	out_kv_u64(o, "version", sb->version);
	kv_hex32(o, "crc", sb->crc);
	show_flags(o, sb->flags);
	out_kv_str(o, "uuid", uuid);
	out_kv_str(o, "group", group);
	out_kv_str(o, "role", dmrepl_meta_role_name(sb->role));
	out_kv_u64(o, "volume", sb->volume);
}

/* "KEY 0x... 0x..." in text, an array of those strings in JSON. */
static void kv_hex_array(struct out *o, const char *key, const __u64 *v, unsigned int n)
{
	char hex[24];
	unsigned int i;

	out_text(o, "%-16s", key);
	out_open_array(o, key);
	for (i = 0; i < n; i++) {
		snprintf(hex, sizeof(hex), "0x%016llx", (unsigned long long)v[i]);
		out_str(o, OUT_ANY, NULL, i ? " %s" : "%s", hex);
	}
	out_close_array(o);
	out_text(o, "\n");
}

static void show_state(struct out *o, const struct dmrepl_meta_sb *sb)
{
	char when[32] = "-";
	time_t t = (time_t)sb->ctime;
	struct tm tm;

	kv_hex(o, "gen_current", sb->gen_current);
	kv_hex(o, "gen_bitmap", sb->gen_bitmap);
	kv_hex_array(o, "gen_history", sb->gen_history, DM_REPL_META_GEN_HISTORY);
	out_kv_u64(o, "released_seq", sb->released_seq);
	out_kv_u64(o, "applied_seq", sb->applied_seq);
	kv_hex(o, "stream", sb->stream);
	kv_hex_array(o, "stream_history", sb->stream_history, DM_REPL_STREAM_HISTORY - 1);
	out_kv_u64(o, "seq_next", sb->seq_next);
	out_kv_u64(o, "next_epoch", sb->next_epoch);
	out_kv_u64(o, "consistent_seq", sb->consistent_seq);
	out_kv_u64(o, "consistent_time_ns", sb->consistent_time_ns);
	if (gmtime_r(&t, &tm))
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	out_text(o, "%-16s", "ctime");
	out_u64(o, OUT_ANY, "ctime", "%llu", sb->ctime);
	out_text(o, " (%s)\n", when);
}

static void show_layout(struct out *o, const struct scan *s)
{
	const struct dmrepl_meta_sb *sb = &s->sb;

	out_kv_u64(o, "data_sectors", sb->data_sectors);
	out_kv_u64(o, "region_sectors", sb->region_sectors);
	out_kv_u64(o, "nr_regions", s->lay.nr_regions);
	out_kv_u64(o, "extent_sectors", sb->extent_sectors);
	out_kv_u64(o, "nr_extents", s->lay.nr_extents);
	out_kv_u64(o, "hot_extents", sb->hot_extents);
	out_kv_u64(o, "al_offset", sb->al_offset);
	out_kv_u64(o, "al_slots", sb->al_slots);
	out_kv_u64(o, "al_slot_bytes", sb->al_slot_bytes);
	out_kv_u64(o, "bm_offset", sb->bm_offset);
	out_kv_u64(o, "bm_sectors", sb->bm_sectors);
	out_kv_u64(o, "meta_sectors", s->lay.end);
}

static void show_contents(struct out *o, const struct scan *s)
{
	out_kv_u64(o, "al_in_use", s->al_current);
	out_kv_u64(o, "al_last_seq", s->al_max_seq);
	out_kv_u64(o, "al_torn", s->al_torn);
	out_kv_u64(o, "al_bad", s->al_bad);
	out_kv_u64(o, "al_hot_extents", s->al_hot);
	out_kv_u64(o, "bm_blocks", s->lay.bm_blocks);
	out_kv_u64(o, "bm_bad_blocks", s->bm_bad);
	out_kv_u64(o, "bm_dirty", s->bm_dirty);
}

int meta_show(int argc, char **argv)
{
	struct scan s = { 0 };
	const char *path;
	struct out o;
	bool json;
	int ret;

	ret = parse_json_opts(argc, argv, "meta show", usage_meta_show, "META_DEV", &json,
			      &path);
	if (ret)
		return ret < 0 ? EXIT_OK : ret;
	if (meta_dev_open(&s.dev, path, false))
		return EXIT_RUNTIME;
	ret = scan(&s);
	meta_dev_close(&s.dev);
	if (ret)
		return io_error(&s, ret);
	if (!s.sb_usable || s.sb_problems) {
		err_msg("%s: no valid dm-repl metadata; 'repltool meta check %s' says why",
			path, path);
		return EXIT_RUNTIME;
	}
	out_init(&o, stdout, json);
	out_open_object(&o, NULL);
	show_identity(&o, &s);
	show_state(&o, &s.sb);
	show_layout(&o, &s);
	show_contents(&o, &s);
	out_close_object(&o);
	if (json)
		out_newline(&o);
	return EXIT_OK;
}

/* ---- check ----------------------------------------------------------------- */

void usage_meta_check(FILE *f)
{
	fprintf(f,
"Usage: repltool meta check [-j|--json] META_DEV\n"
"\n"
"Verify the metadata: magic, version, checksum and every field rule of the\n"
"superblock, that the device holds the whole layout, each activity log slot\n"
"(checksum, rules, its place in the ring) and each bitmap block (checksum,\n"
"rules, no bit past the last region). One line per problem:\n"
"  META_DEV: AREA at byte OFFSET: PROBLEM\n"
"then a summary line. Exit status 0: no problem, 1: problems (or the device\n"
"cannot be read), 2: usage error.\n"
"\n"
"  -j, --json   one JSON object: device, problems[] (area, offset, problem),\n"
"               problems_found\n"
"  -h, --help   show this text\n");
}

static void check_summary(struct out *o, const struct scan *s)
{
	out_str(o, OUT_TEXT, NULL, "%s: ", s->dev.path);
	out_u64(o, OUT_JSON, "problems_found", NULL, s->problems);
	if (s->problems) {
		out_text(o, "%u problem%s found\n", s->problems, s->problems == 1 ? "" : "s");
		return;
	}
	out_text(o, "no problems: superblock, %u AL slots (%u in use), %llu bitmap blocks "
		 "(%llu dirty regions)\n", s->sb.al_slots, s->al_current,
		 (unsigned long long)s->lay.bm_blocks, (unsigned long long)s->bm_dirty);
}

int meta_check(int argc, char **argv)
{
	struct scan s = { 0 };
	const char *path;
	struct out o;
	bool json;
	int ret;

	ret = parse_json_opts(argc, argv, "meta check", usage_meta_check, "META_DEV", &json,
			      &path);
	if (ret)
		return ret < 0 ? EXIT_OK : ret;
	if (meta_dev_open(&s.dev, path, false))
		return EXIT_RUNTIME;
	out_init(&o, stdout, json);
	s.o = &o;
	out_open_object(&o, NULL);
	out_str(&o, OUT_JSON, "device", NULL, path);
	out_open_array(&o, "problems");
	ret = scan(&s);
	meta_dev_close(&s.dev);
	if (ret)
		return io_error(&s, ret);
	out_close_array(&o);
	check_summary(&o, &s);
	out_close_object(&o);
	if (json)
		out_newline(&o);
	return s.problems ? EXIT_RUNTIME : EXIT_OK;
}
