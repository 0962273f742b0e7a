// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * repltool meta: the metadata device, as drbdmeta knows DRBD's. This file
 * has the subcommand table, device access and "create"; show and check are
 * in meta_read.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>

#include "meta.h"
#include "repltool.h"

#define BLOCK DM_REPL_META_BLOCK_SIZE
/* Bitmap blocks written per write(2) by create. */
#define CREATE_CHUNK_BLOCKS 256

static int meta_create(int argc, char **argv);
static void usage_meta_create(FILE *f);

static const struct cmd meta_cmds[] = {
	{ "create", "write fresh metadata (superblock, empty AL and bitmap)",
	  meta_create, usage_meta_create },
	{ "show", "print the superblock, the layout and what the AL and bitmap hold",
	  meta_show, usage_meta_show },
	{ "check", "verify every checksum and bound; report each problem",
	  meta_check, usage_meta_check },
};

#define NR_META_CMDS (sizeof(meta_cmds) / sizeof(meta_cmds[0]))

void usage_meta(FILE *f)
{
	size_t i;

	fprintf(f, "Usage: repltool meta COMMAND [OPTIONS] META_DEV\n\n"
		   "The metadata device of a repl volume (a block device or a regular file).\n"
		   "Commands (any unambiguous prefix will do):\n");
	for (i = 0; i < NR_META_CMDS; i++)
		fprintf(f, "  %-8s %s\n", meta_cmds[i].name, meta_cmds[i].summary);
	fprintf(f, "\n'repltool meta COMMAND --help' describes one command.\n");
}

int cmd_meta(int argc, char **argv)
{
	const struct cmd *c;

	if (argc < 2)
		return usage_err("meta", "missing command: create, show or check");
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage_meta(stdout);
		return EXIT_OK;
	}
	if (argv[1][0] == '-')
		return usage_err("meta", "unknown option \"%s\"", argv[1]);
	c = cmd_find(meta_cmds, NR_META_CMDS, "meta", argv[1]);
	if (!c)
		return EXIT_USAGE;
	return c->run(argc - 1, argv + 1);
}

/* ---- the device ------------------------------------------------------- */

static int dev_size(struct meta_dev *d)
{
	struct stat st;
	__u64 bytes;

	if (fstat(d->fd, &st))
		return -errno;
	if (!d->blk) {
		d->bytes = (__u64)st.st_size;
		return 0;
	}
	if (ioctl(d->fd, BLKGETSIZE64, &bytes))
		return -errno;
	d->bytes = bytes;
	return 0;
}

int meta_dev_open(struct meta_dev *d, const char *path, bool write)
{
	int flags = (write ? O_RDWR : O_RDONLY) | O_CLOEXEC;
	struct stat st;
	int ret;

	d->path = path;
	d->fd = -1;
	if (stat(path, &st)) {
		err_msg("%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode)) {
		err_msg("%s: not a block device or a regular file", path);
		return -1;
	}
	d->blk = S_ISBLK(st.st_mode);
	if (d->blk)
		flags |= O_DIRECT | (write ? O_EXCL : 0);
	d->fd = open(path, flags);
	if (d->fd < 0) {
		err_msg("%s: %s%s", path, strerror(errno), errno == EBUSY ?
			" (in use: mounted, or held by a device-mapper table?)" : "");
		return -1;
	}
	ret = dev_size(d);
	if (ret) {
		err_msg("%s: size: %s", path, strerror(-ret));
		meta_dev_close(d);
		return -1;
	}
	return 0;
}

void meta_dev_close(struct meta_dev *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
}

int meta_dev_read(struct meta_dev *d, void *buf, size_t len, __u64 off)
{
	unsigned char *p = buf;

	while (len) {
		ssize_t n = pread(d->fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENODATA;
		p += n;
		off += (__u64)n;
		len -= (size_t)n;
	}
	return 0;
}

int meta_dev_write(struct meta_dev *d, const void *buf, size_t len, __u64 off)
{
	const unsigned char *p = buf;

	while (len) {
		ssize_t n = pwrite(d->fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		off += (__u64)n;
		len -= (size_t)n;
	}
	return 0;
}

void *meta_buf(size_t len)
{
	void *p;

	if (posix_memalign(&p, BLOCK, len)) {
		err_msg("buffer of %zu bytes: %s", len, strerror(ENOMEM));
		return NULL;
	}
	memset(p, 0, len);
	return p;
}

/* ---- create: options ---------------------------------------------------- */

static void usage_meta_create(FILE *f)
{
	fprintf(f,
"Usage: repltool meta create [--force] [--initial-sync|--seeded] --group NAME\n"
"                            [--role primary|secondary]\n"
"                            [--volume N] [--region-kb N] [--extent-kb N] [--al-slots N]\n"
"                            [--hot-extents N] --data-sectors N|--data-dev PATH\n"
"                            META_DEV\n"
"\n"
"Write fresh metadata for a volume: a superblock with a new volume UUID and\n"
"current generation, an empty activity log and a clean bitmap; then fsync.\n"
"META_DEV must exist. Refused, unless --force, when it already holds dm-repl\n"
"metadata or when its first 4 KiB are not all zero (a filesystem, a partition\n"
"table?). Refused always when it is too small; the message says how large it\n"
"must be. A block device is opened exclusively (not while in use).\n"
"\n"
"      --group NAME       replication group (1-31 of [A-Za-z0-9_.+-])\n"
"      --role ROLE        primary (default) or secondary\n"
"      --volume N         volume index in the group's records, 0-63 (default 0);\n"
"                         each volume of a group needs its own\n"
"      --region-kb N      dirty bitmap granularity, a power of two from 4 to\n"
"                         1048576 (default 64, as the target's region_kb)\n"
"      --extent-kb N      hot extent of the activity log, a power of two from the\n"
"                         region size to 1048576 (default 4096 or the region size)\n"
"      --al-slots N       transactions in the activity log ring, 2-1024 (default 16)\n"
"      --hot-extents N    most extents hot at once, 1-1008 (default 512)\n"
"      --data-sectors N   size of the data device in 512-byte sectors\n"
"      --data-dev PATH    take the size from the data device (or file)\n"
"      --force            overwrite whatever META_DEV holds\n"
"      --initial-sync     the pair starts with a full sync: a primary's regions\n"
"                         are all dirty (resynced; zeros cost a header each), a\n"
"                         secondary is inconsistent until the resync ends\n"
"      --seeded           secondary only: its data device holds a copy of the\n"
"                         primary's made by other means (dd, a backup); it is\n"
"                         inconsistent, every region dirty, until verify passes\n"
"                         found each region equal (or resent it)\n"
"  -h, --help             show this text\n");
}

enum {
	OPT_FORCE = 256, OPT_GROUP, OPT_ROLE, OPT_VOLUME, OPT_REGION, OPT_EXTENT, OPT_SLOTS,
	OPT_HOT, OPT_SECTORS, OPT_DATA_DEV, OPT_INITIAL_SYNC, OPT_SEEDED,
};

static const struct option create_lopts[] = {
	{ "force", no_argument, NULL, OPT_FORCE },
	{ "initial-sync", no_argument, NULL, OPT_INITIAL_SYNC },
	{ "seeded", no_argument, NULL, OPT_SEEDED },
	{ "group", required_argument, NULL, OPT_GROUP },
	{ "role", required_argument, NULL, OPT_ROLE },
	{ "volume", required_argument, NULL, OPT_VOLUME },
	{ "region-kb", required_argument, NULL, OPT_REGION },
	{ "extent-kb", required_argument, NULL, OPT_EXTENT },
	{ "al-slots", required_argument, NULL, OPT_SLOTS },
	{ "hot-extents", required_argument, NULL, OPT_HOT },
	{ "data-sectors", required_argument, NULL, OPT_SECTORS },
	{ "data-dev", required_argument, NULL, OPT_DATA_DEV },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* "--name" of a long option, for messages. */
static const char *opt_name(int c)
{
	const struct option *o;

	for (o = create_lopts; o->name; o++)
		if (o->val == c)
			return o->name;
	return "?";
}

/* A numeric option's target, or NULL for the others. */
static __u64 *num_opt(struct create_opts *o, int c)
{
	switch (c) {
	case OPT_REGION: return &o->region_kb;
	case OPT_EXTENT: return &o->extent_kb;
	case OPT_SLOTS: return &o->al_slots;
	case OPT_HOT: return &o->hot_extents;
	case OPT_SECTORS: return &o->data_sectors;
	}
	return NULL;
}

/* --volume: 0 to DM_REPL_MAX_VOLUMES - 1. */
static int parse_volume(struct create_opts *o, const char *arg)
{
	__u64 v = 0;

	if (strcmp(arg, "0") && (parse_positive(arg, &v) || v >= DM_REPL_MAX_VOLUMES))
		return usage_err("meta create", "--volume wants a volume index from 0 to %u, "
				 "not \"%s\"", DM_REPL_MAX_VOLUMES - 1, arg);
	o->volume = (unsigned int)v;
	return 0;
}

/* One option. Returns 0, -1 for --help, or EXIT_USAGE (reported). */
static int create_opt(struct create_opts *o, int c, char **argv)
{
	__u64 *num = num_opt(o, c);

	if (num) {
		if (parse_positive(optarg, num))
			return usage_err("meta create", "--%s wants a positive number, not \"%s\"",
					 opt_name(c), optarg);
		return 0;
	}
	switch (c) {
	case OPT_FORCE: o->force = true; return 0;
	case OPT_INITIAL_SYNC: o->initial_sync = true; return 0;
	case OPT_SEEDED: o->seeded = true; return 0;
	case OPT_GROUP: o->group = optarg; return 0;
	case OPT_DATA_DEV: o->data_dev = optarg; return 0;
	case OPT_VOLUME:
		return parse_volume(o, optarg);
	case OPT_ROLE:
		o->role = dmrepl_meta_role_parse(optarg);
		if (!o->role)
			return usage_err("meta create", "--role is primary or secondary, not \"%s\"",
					 optarg);
		return 0;
	case 'h':
		usage_meta_create(stdout);
		return -1;
	case ':':
		return usage_err("meta create", "option \"%s\" needs an argument",
				 argv[optind - 1]);
	}
	if (optopt)
		return usage_err("meta create", "unknown option \"-%c\"", optopt);
	return usage_err("meta create", "unknown option \"%s\"", argv[optind - 1]);
}

int meta_create_seeded_check(const char *cmd, bool seeded, bool initial_sync,
			     unsigned int role)
{
	if (seeded && initial_sync)
		return usage_err(cmd, "--seeded and --initial-sync exclude each other: a seeded "
				 "replica holds a copy, an initial sync sends everything");
	if (seeded && role != DM_REPL_META_ROLE_SECONDARY)
		return usage_err(cmd, "--seeded is for --role secondary only: a primary's data is "
				 "not a seed");
	return 0;
}

void meta_create_opts_init(struct create_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->role = DM_REPL_META_ROLE_PRIMARY;
	o->region_kb = DMREPL_META_REGION_SECTORS_DEFAULT / 2;
	o->al_slots = DMREPL_META_AL_SLOTS_DEFAULT;
	o->hot_extents = DMREPL_META_HOT_EXTENTS_DEFAULT;
}

static int create_parse(int argc, char **argv, struct create_opts *o)
{
	int c, ret;

	meta_create_opts_init(o);
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":h", create_lopts, NULL)) != -1) {
		ret = create_opt(o, c, argv);
		if (ret)
			return ret;
	}
	if (optind != argc - 1)
		return usage_err("meta create", optind == argc ? "missing META_DEV" :
				 "only one META_DEV, please");
	o->meta = argv[optind];
	if (!o->group)
		return usage_err("meta create", "--group is required");
	if (!o->data_sectors == !o->data_dev)
		return usage_err("meta create", "give one of --data-sectors and --data-dev");
	return meta_create_seeded_check("meta create", o->seeded, o->initial_sync, o->role);
}

/* ---- create: geometry ------------------------------------------------- */

/* Kilobytes to sectors; 0 (refused by the library) when it does not fit. */
static __u32 kb_to_sectors(__u64 kb)
{
	return kb <= UINT32_MAX / 2 ? (__u32)(kb * 2) : 0;
}

static __u32 clamp32(__u64 v)
{
	return v <= UINT32_MAX ? (__u32)v : 0;
}

static int data_size(const char *path, __u64 *sectors)
{
	struct meta_dev d;

	if (meta_dev_open(&d, path, false))
		return -1;
	meta_dev_close(&d);
	*sectors = d.bytes / 512;
	if (!*sectors) {
		err_msg("%s: the data device is empty", path);
		return -1;
	}
	return 0;
}

static int create_geom(const struct create_opts *o, struct dmrepl_meta_geom *g)
{
	g->data_sectors = o->data_sectors;
	if (o->data_dev && data_size(o->data_dev, &g->data_sectors))
		return EXIT_RUNTIME;
	g->region_sectors = kb_to_sectors(o->region_kb);
	if (o->extent_kb)
		g->extent_sectors = kb_to_sectors(o->extent_kb);
	else if (g->region_sectors > DMREPL_META_EXTENT_SECTORS_DEFAULT)
		g->extent_sectors = g->region_sectors;
	else
		g->extent_sectors = DMREPL_META_EXTENT_SECTORS_DEFAULT;
	g->al_slots = clamp32(o->al_slots);
	g->hot_extents = clamp32(o->hot_extents);
	return 0;
}

/* ---- create: what the device holds now -------------------------------- */

static bool zero_block(const unsigned char *p)
{
	size_t i;

	for (i = 0; i < BLOCK; i++)
		if (p[i])
			return false;
	return true;
}

/* Say what block 0 holds that --force would overwrite. */
static void refuse_existing(const char *path, const void *block0)
{
	char uuid[DMREPL_META_UUID_STR_LEN];
	struct dmrepl_meta_sb old;
	const char *why;
	int ret;

	ret = dmrepl_meta_sb_decode(block0, &old, &why);
	if (ret == -EMEDIUMTYPE) {
		err_msg("%s: its first 4 KiB are not all zero (a filesystem, a partition "
			"table, other data?); use --force to overwrite", path);
		return;
	}
	if (ret) {
		err_msg("%s: holds dm-repl metadata (%s); use --force to overwrite it",
			path, why);
		return;
	}
	dmrepl_meta_uuid_str(old.uuid, uuid);
	err_msg("%s: holds dm-repl metadata of group \"%.*s\", volume %s; use --force "
		"to overwrite it", path, DM_REPL_GROUP_NAME_MAX, old.group, uuid);
}

/* Size, then contents. Returns 0 when create may write, else -1 (reported). */
static int create_allowed(struct meta_dev *d, const struct dmrepl_meta_layout *l,
			  bool force, unsigned char *block0, bool *was_zero)
{
	__u64 need = l->end * 512;
	int ret;

	if (d->bytes < need) {
		err_msg("%s: too small: the metadata needs %llu bytes (%llu KiB), the "
			"device has %llu bytes", d->path, (unsigned long long)need,
			(unsigned long long)(need / 1024), (unsigned long long)d->bytes);
		return -1;
	}
	ret = meta_dev_read(d, block0, BLOCK, 0);
	if (ret) {
		err_msg("%s: read of the first 4 KiB: %s", d->path, strerror(-ret));
		return -1;
	}
	*was_zero = zero_block(block0);
	if (*was_zero || force)
		return 0;
	refuse_existing(d->path, block0);
	return -1;
}

/* ---- create: writing ---------------------------------------------------- */

static int sync_dev(struct meta_dev *d)
{
	return fsync(d->fd) ? -errno : 0;
}

static int write_al(struct meta_dev *d, const struct dmrepl_meta_layout *l, void *buf)
{
	__u64 off = l->al_offset * 512, left = l->al_sectors * 512;
	size_t chunk = (size_t)CREATE_CHUNK_BLOCKS * BLOCK;
	int ret;

	memset(buf, 0, chunk);
	while (left) {
		size_t n = left < chunk ? (size_t)left : chunk;

		ret = meta_dev_write(d, buf, n, off);
		if (ret)
			return ret;
		off += n;
		left -= n;
	}
	return 0;
}

/* Clean, or every region dirty (the primary of an initial sync). */
static int write_bitmap(struct meta_dev *d, const struct dmrepl_meta_sb *sb,
			const struct dmrepl_meta_layout *l, bool dirty, unsigned char *buf)
{
	__u64 index = 0;
	int ret;

	while (index < l->bm_blocks) {
		__u64 n = l->bm_blocks - index, i;

		if (n > CREATE_CHUNK_BLOCKS)
			n = CREATE_CHUNK_BLOCKS;
		for (i = 0; i < n; i++) {
			void *block = buf + i * BLOCK;

			if (dirty)
				dmrepl_meta_bm_encode_dirty(block, sb, index + i);
			else
				dmrepl_meta_bm_encode(block, sb, index + i, NULL);
		}
		ret = meta_dev_write(d, buf, (size_t)n * BLOCK,
				     (l->bm_offset * 512) + index * BLOCK);
		if (ret)
			return ret;
		index += n;
	}
	return 0;
}

/*
 * Old superblock out first (so that a failure leaves no metadata that
 * claims the new AL and bitmap), then AL and bitmap, then the superblock.
 */
static int write_all(struct meta_dev *d, const struct dmrepl_meta_sb *sb,
		     const struct dmrepl_meta_layout *l, bool was_zero, bool dirty,
		     unsigned char *buf)
{
	int ret = 0;

	if (!was_zero) {
		memset(buf, 0, BLOCK);
		ret = meta_dev_write(d, buf, BLOCK, 0);
		if (!ret)
			ret = sync_dev(d);
	}
	if (!ret)
		ret = write_al(d, l, buf);
	if (!ret)
		ret = write_bitmap(d, sb, l, dirty, buf);
	if (!ret)
		ret = sync_dev(d);
	if (ret)
		return ret;
	dmrepl_meta_sb_encode(sb, buf);
	ret = meta_dev_write(d, buf, BLOCK, 0);
	return ret ? ret : sync_dev(d);
}

static void created(const struct meta_dev *d, const struct dmrepl_meta_sb *sb,
		    const struct dmrepl_meta_layout *l)
{
	char uuid[DMREPL_META_UUID_STR_LEN];

	dmrepl_meta_uuid_str(sb->uuid, uuid);
	printf("%s: dm-repl metadata version %u created: group %s, %s, volume index %u, uuid %s\n"
	       "  %llu regions of %u sectors, %llu AL slots, %llu bitmap blocks, %llu bytes used\n",
	       d->path, sb->version, sb->group, dmrepl_meta_role_name(sb->role),
	       sb->volume, uuid,
	       (unsigned long long)l->nr_regions, sb->region_sectors,
	       (unsigned long long)sb->al_slots, (unsigned long long)l->bm_blocks,
	       (unsigned long long)(l->end * 512));
}

static int create_write(const struct create_opts *o, const struct dmrepl_meta_sb *sb,
			const struct dmrepl_meta_layout *l)
{
	unsigned char *buf = meta_buf((size_t)CREATE_CHUNK_BLOCKS * BLOCK);
	struct meta_dev d;
	bool was_zero;
	int ret = EXIT_RUNTIME;

	if (!buf)
		return EXIT_RUNTIME;
	if (meta_dev_open(&d, o->meta, true))
		goto out;
	if (create_allowed(&d, l, o->force, buf, &was_zero))
		goto close;
	/*
	 * An initial sync: the primary's data is nowhere else yet. A seed:
	 * no region of the replica is known to be the primary's yet.
	 */
	ret = write_all(&d, sb, l, was_zero,
			(o->initial_sync && sb->role == DM_REPL_META_ROLE_PRIMARY) ||
			o->seeded, buf);
	if (ret) {
		err_msg("%s: write: %s", d.path, strerror(-ret));
		ret = EXIT_RUNTIME;
		goto close;
	}
	created(&d, sb, l);
	ret = EXIT_OK;
close:
	meta_dev_close(&d);
out:
	free(buf);
	return ret;
}

int meta_create_run(const char *cmd, const struct create_opts *o)
{
	struct dmrepl_meta_layout l;
	struct dmrepl_meta_geom g;
	struct dmrepl_meta_sb sb;
	const char *why;
	int ret;

	ret = create_geom(o, &g);
	if (ret)
		return ret;
	ret = dmrepl_meta_sb_init(&sb, o->group, o->role, &g, (__u64)time(NULL), &why);
	if (ret == -EINVAL)
		return usage_err(cmd, "%s", why);
	if (ret) {
		err_msg("random volume UUID: getrandom: %s", strerror(-ret));
		return EXIT_RUNTIME;
	}
	sb.volume = o->volume;
	/* ... and the replica's nowhere yet: not a consistent image. */
	if (o->initial_sync && sb.role == DM_REPL_META_ROLE_SECONDARY)
		sb.flags |= DM_REPL_META_F_INCONSISTENT;
	if (o->seeded)
		sb.flags |= DM_REPL_META_F_INCONSISTENT | DM_REPL_META_F_SEEDED;
	dmrepl_meta_layout(&g, &l, &why);
	return create_write(o, &sb, &l);
}

static int meta_create(int argc, char **argv)
{
	struct create_opts o;
	int ret;

	ret = create_parse(argc, argv, &o);
	if (ret)
		return ret < 0 ? EXIT_OK : ret;
	return meta_create_run("meta create", &o);
}
