// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * repltool's verbs over a resource file, /etc/dm-repl/GROUP.conf, as
 * drbdadm's over /etc/drbd.d: create-md, up, down, primary, secondary, rejoin
 * and resize act on the volumes of this host's site. Tables go through libdevmapper (dm.c),
 * metadata through "meta create" (meta.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "dm.h"
#include "meta.h"
#include "repltool.h"
#include "resource.h"

#define TARGET "repl"
/* How often secondary --wait looks at the group. */
#define DRAIN_POLL_MS 100

/* ---- what the verbs know ------------------------------------------------ */

int res_sites(struct res *r, const char *site_name, char *err, size_t errlen)
{
	unsigned int i;

	r->local = dmrepl_conf_local_site(&r->conf, site_name, err, errlen);
	if (!r->local)
		return -1;
	r->peer = dmrepl_conf_peer_site(&r->conf, r->local);
	r->kgroup = r->local->group ? r->local->group : r->conf.name;
	r->peer_kgroup = r->peer->group ? r->peer->group : r->conf.name;
	memset(r->vols, 0, sizeof(r->vols));
	for (i = 0; i < r->local->nvolumes; i++)
		r->vols[i].conf = &r->local->volumes[i];
	return 0;
}

static int fit(int n, size_t len)
{
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int res_params(const struct res *r, const struct res_vol *v, unsigned int role,
	       char *buf, size_t len)
{
	const struct dmrepl_conf_volume *c = v->conf;

	if (role == DM_REPL_META_ROLE_SECONDARY)
		return fit(snprintf(buf, len, "%s %s %s secondary 4 ring_mb %u source %s",
				    c->data, c->meta, r->kgroup, r->conf.ring_mb,
				    r->peer_kgroup), len);
	return fit(snprintf(buf, len, "%s %s %s primary 2 ring_mb %u", c->data, c->meta,
			    r->kgroup, r->conf.ring_mb), len);
}

int res_live_params(const struct res *r, const struct res_vol *v, unsigned int role,
		    char *buf, size_t len)
{
	int n = snprintf(buf, len, "%u:%u %u:%u %s ", major(v->data), minor(v->data),
			 major(v->meta), minor(v->meta), r->kgroup);

	if (fit(n, len))
		return -ENAMETOOLONG;
	if (role == DM_REPL_META_ROLE_SECONDARY)
		return fit(snprintf(buf + n, len - (size_t)n,
				    "secondary 6 ring_mb %u region_kb %u source %s",
				    r->conf.ring_mb, v->region_kb, r->peer_kgroup),
			   len - (size_t)n);
	return fit(snprintf(buf + n, len - (size_t)n,
			    "primary 8 ring_mb %u region_kb %u overflow bitmap block_ms 100",
			    r->conf.ring_mb, v->region_kb), len - (size_t)n);
}

const char *res_role_refusal(unsigned int role, int err)
{
	if (err == EBUSY && role == DM_REPL_META_ROLE_SECONDARY)
		return "a volume is open, or records are not yet released to the peer: "
		       "wait for the drain (--wait) or use --force";
	if (err == EBUSY)
		return "a resync is under way or a seed is not yet verified whole (the "
		       "data is inconsistent), or the replica is outdated past a gap in the "
		       "stream: use --force to promote it anyway";
	if (err == EPERM)
		return "the group is not secondary, so it takes no source";
	if (err == EINVAL)
		return "the module took no such message";
	return "see the kernel log";
}

/* ---- options ------------------------------------------------------------ */

struct verb_opts {
	const char *dir, *site, *group;
	unsigned int role;		/* create-md --role */
	bool force;
	bool initial_sync;		/* create-md --initial-sync */
	bool seeded;			/* create-md --seeded */
	bool discard;			/* rejoin --discard-my-data */
	__u64 wait_s;			/* secondary --wait */
};

enum {
	OPT_DIR = 256, OPT_SITE, OPT_ROLE, OPT_FORCE, OPT_WAIT, OPT_INITIAL_SYNC, OPT_DISCARD,
	OPT_SEEDED,
};

#define COMMON_LONG_OPTS \
	{ "config-dir", required_argument, NULL, OPT_DIR }, \
	{ "site", required_argument, NULL, OPT_SITE }, \
	{ "help", no_argument, NULL, 'h' }

#define COMMON_OPTS_HELP \
"      --config-dir DIR  where GROUP.conf is (default " DMREPL_CONF_DIR ")\n" \
"      --site NAME       act as site NAME of the file (default: the site whose\n" \
"                        host is this host)\n" \
"  -h, --help            show this text\n"

static bool group_name_ok(const char *s)
{
	char name[DM_REPL_GROUP_NAME_MAX] = { 0 };

	if (strlen(s) >= sizeof(name))
		return false;
	memcpy(name, s, strlen(s));
	return dmrepl_group_name_ok(name);
}

/*
 * The options of verb cmd (lopts: the ones it takes) and its GROUP. Returns
 * 0, -1 after --help, or EXIT_USAGE (reported).
 */
static int parse_opts(const char *cmd, int argc, char **argv, const struct option *lopts,
		      void (*usage)(FILE *), struct verb_opts *o)
{
	int c;

	memset(o, 0, sizeof(*o));
	o->dir = DMREPL_CONF_DIR;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":h", lopts, NULL)) != -1) {
		switch (c) {
		case OPT_DIR: o->dir = optarg; break;
		case OPT_SITE: o->site = optarg; break;
		case OPT_FORCE: o->force = true; break;
		case OPT_INITIAL_SYNC: o->initial_sync = true; break;
		case OPT_SEEDED: o->seeded = true; break;
		case OPT_DISCARD: o->discard = true; break;
		case OPT_ROLE:
			o->role = dmrepl_meta_role_parse(optarg);
			if (!o->role)
				return usage_err(cmd, "--role is primary or secondary, not \"%s\"",
						 optarg);
			break;
		case OPT_WAIT:
			if (parse_positive(optarg, &o->wait_s) || o->wait_s > 86400)
				return usage_err(cmd, "--wait wants seconds from 1 to 86400, "
						 "not \"%s\"", optarg);
			break;
		case 'h':
			usage(stdout);
			return -1;
		default:
			return getopt_error(cmd, c, argv);
		}
	}
	if (optind != argc - 1)
		return usage_err(cmd, "%s GROUP", optind == argc ? "missing" : "only one");
	o->group = argv[optind];
	if (!group_name_ok(o->group))
		return usage_err(cmd, "bad group name \"%s\": 1-31 of [A-Za-z0-9_.+-], not "
				 "starting with a dot", o->group);
	return 0;
}

/* ---- loading ------------------------------------------------------------ */

/* DIR/GROUP.conf and the local site. 0 or -1 (reported); res_free() after 0. */
static int res_load(struct res *r, const struct verb_opts *o)
{
	char path[PATH_MAX], err[512];

	memset(r, 0, sizeof(*r));
	if ((size_t)snprintf(path, sizeof(path), "%s/%s.conf", o->dir, o->group) >=
	    sizeof(path)) {
		err_msg("%s: %s", o->dir, strerror(ENAMETOOLONG));
		return -1;
	}
	if (dmrepl_conf_load(path, &r->conf, err, sizeof(err))) {
		err_msg("%s", err);
		return -1;
	}
	if (res_sites(r, o->site, err, sizeof(err))) {
		err_msg("%s", err);
		dmrepl_conf_free(&r->conf);
		return -1;
	}
	return 0;
}

static void res_free(struct res *r)
{
	dmrepl_conf_free(&r->conf);
}

#define NVOLS(r) ((r)->local->nvolumes)

/* A block device: its number and size. 0 or -1 (reported). */
static int block_dev(const struct res *r, const struct dmrepl_conf_volume *c,
		     const char *what, const char *path, dev_t *dev, __u64 *bytes)
{
	struct meta_dev d;
	struct stat st;

	if (stat(path, &st)) {
		err_msg("%s: volume %u: %s %s: %s", r->conf.name, c->index, what, path,
			strerror(errno));
		return -1;
	}
	if (!S_ISBLK(st.st_mode)) {
		err_msg("%s: volume %u: %s %s: not a block device", r->conf.name, c->index,
			what, path);
		return -1;
	}
	if (meta_dev_open(&d, path, false))
		return -1;
	meta_dev_close(&d);
	*dev = st.st_rdev;
	*bytes = d.bytes;
	return 0;
}

/* The volume's metadata superblock. 0 or -1 (reported). */
static int read_sb(const struct res *r, const struct dmrepl_conf_volume *c,
		   struct dmrepl_meta_sb *sb)
{
	void *block = meta_buf(DM_REPL_META_BLOCK_SIZE);
	struct meta_dev d;
	const char *why;
	int ret = -1;

	if (!block)
		return -1;
	if (meta_dev_open(&d, c->meta, false))
		goto out;
	ret = meta_dev_read(&d, block, DM_REPL_META_BLOCK_SIZE, 0);
	meta_dev_close(&d);
	if (ret) {
		err_msg("%s: read of the superblock: %s", c->meta, strerror(-ret));
		ret = -1;
		goto out;
	}
	ret = dmrepl_meta_sb_decode(block, sb, &why);
	if (ret == -EMEDIUMTYPE)
		err_msg("%s: volume %u: %s holds no dm-repl metadata (repltool create-md %s "
			"--role ROLE)", r->conf.name, c->index, c->meta, r->conf.name);
	else if (ret)
		err_msg("%s: volume %u: %s: %s (repltool meta check)", r->conf.name, c->index,
			c->meta, why);
	ret = ret ? -1 : 0;
out:
	free(block);
	return ret;
}

/* Fill in v from its devices and metadata, checking them. 0 or -1 (reported). */
static int vol_read(const struct res *r, struct res_vol *v)
{
	const struct dmrepl_conf_volume *c = v->conf;
	struct dmrepl_meta_sb sb;
	__u64 bytes, meta_bytes;

	if (block_dev(r, c, "data", c->data, &v->data, &bytes) ||
	    block_dev(r, c, "meta", c->meta, &v->meta, &meta_bytes) || read_sb(r, c, &sb))
		return -1;
	v->dev_sectors = bytes / 512;
	v->sectors = sb.data_sectors;
	v->meta_bytes = meta_bytes;
	v->bm_offset = sb.bm_offset;
	if (strncmp(sb.group, r->kgroup, sizeof(sb.group))) {
		err_msg("%s: volume %u: %s holds metadata of group \"%.*s\", not of \"%s\" "
			"(repltool create-md)", r->conf.name, c->index, c->meta,
			(int)sizeof(sb.group), sb.group, r->kgroup);
		return -1;
	}
	if (sb.volume != c->index) {
		err_msg("%s: volume %u: %s holds the metadata of volume %u (repltool create-md)",
			r->conf.name, c->index, c->meta, sb.volume);
		return -1;
	}
	/* Larger: it grew, and runs at the metadata's size until resize. */
	if (sb.data_sectors > v->dev_sectors) {
		err_msg("%s: volume %u: %s was made for %llu sectors of data, %s has %llu: "
			"shrinking a replicated volume is not supported", r->conf.name,
			c->index, c->meta, (unsigned long long)sb.data_sectors, c->data,
			(unsigned long long)v->dev_sectors);
		return -1;
	}
	if (!dmrepl_meta_role_name(sb.role)) {
		err_msg("%s: volume %u: %s: unknown role %u", r->conf.name, c->index, c->meta,
			sb.role);
		return -1;
	}
	v->role = sb.role;
	v->region_kb = sb.region_sectors / 2;
	return 0;
}

/* Every local volume, all of one role. 0 or -1 (reported). */
static int vols_read(struct res *r)
{
	unsigned int i;

	for (i = 0; i < NVOLS(r); i++) {
		if (vol_read(r, &r->vols[i]))
			return -1;
		if (r->vols[i].role != r->vols[0].role) {
			err_msg("%s: volume %u is %s in its metadata, volume %u %s (a role "
				"change that failed half-way: while the group is loaded, suspend "
				"its volumes, send \"dmsetup message %s 0 role ROLE\" with "
				"the role dmsetup status shows first, for a secondary also "
				"\"source PEER-GROUP\", reload each table with that role and "
				"resume; dm-repl.md, \"Messages\")", r->conf.name,
				r->vols[i].conf->index, dmrepl_meta_role_name(r->vols[i].role),
				r->vols[0].conf->index, dmrepl_meta_role_name(r->vols[0].role),
				r->vols[0].conf->device);
			return -1;
		}
	}
	return 0;
}

/*
 * The opening of the verbs on a group's live volumes: the options, the
 * resource file, each volume's metadata. True with @r loaded (for
 * res_free()); false with the exit status in @exit_status (EXIT_OK after
 * --help), @r then holding nothing.
 */
static bool verb_open(const char *cmd, int argc, char **argv, const struct option *lopts,
		      void (*usage)(FILE *), struct verb_opts *o, struct res *r,
		      int *exit_status)
{
	int ret = parse_opts(cmd, argc, argv, lopts, usage, o);

	*exit_status = ret < 0 ? EXIT_OK : ret;
	if (ret)
		return false;
	*exit_status = EXIT_RUNTIME;
	if (res_load(r, o))
		return false;
	if (vols_read(r)) {
		res_free(r);
		return false;
	}
	return true;
}
/* dmdev_info(), reported. 0 or -1. */
static int info(const char *name, struct dmdev_info *i)
{
	int ret = dmdev_info(name, i);

	if (ret)
		err_msg("%s: device-mapper info: %s", name, strerror(-ret));
	return ret ? -1 : 0;
}

/* ---- create-md ------------------------------------------------------------ */

void usage_create_md(FILE *f)
{
	fprintf(f,
"Usage: repltool create-md --role primary|secondary [--initial-sync|--seeded]\n"
"                          [--force]\n"
"                          [--config-dir DIR] [--site NAME] GROUP\n"
"\n"
"Write fresh metadata (as 'repltool meta create') on the meta device of\n"
"each volume of the local site of GROUP.conf, for the volume's index, the\n"
"site's kernel group name and the size of its data device. The\n"
"administrator says which site starts as primary. Refused, unless --force,\n"
"for a meta device that already holds dm-repl metadata or other data.\n"
"\n"
"      --role ROLE       primary or secondary (required)\n"
"      --force           overwrite whatever the meta devices hold\n"
"      --initial-sync    a new pair whose replica holds nothing yet: give it on\n"
"                        both sites. The primary's regions are all dirty, and\n"
"                        repld resyncs them (regions of zeros travel as a\n"
"                        header); the replica is inconsistent until it ends\n"
"      --seeded          secondary only: its data devices hold a copy of the\n"
"                        primary's made by other means (dd, a backup). It is\n"
"                        inconsistent, every region dirty, until verify passes\n"
"                        (repltool verify) found each region equal or resent it\n"
COMMON_OPTS_HELP);
}

int cmd_create_md(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "role", required_argument, NULL, OPT_ROLE },
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "initial-sync", no_argument, NULL, OPT_INITIAL_SYNC },
		{ "seeded", no_argument, NULL, OPT_SEEDED },
		COMMON_LONG_OPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct create_opts co;
	struct verb_opts o;
	unsigned int i;
	struct res r;
	int ret;

	ret = parse_opts("create-md", argc, argv, lopts, usage_create_md, &o);
	if (ret)
		return ret < 0 ? EXIT_OK : ret;
	if (!o.role)
		return usage_err("create-md", "--role is required: primary or secondary");
	ret = meta_create_seeded_check("create-md", o.seeded, o.initial_sync, o.role);
	if (ret)
		return ret;
	if (res_load(&r, &o))
		return EXIT_RUNTIME;
	for (i = 0, ret = EXIT_OK; i < NVOLS(&r) && ret == EXIT_OK; i++) {
		meta_create_opts_init(&co);
		co.force = o.force;
		co.initial_sync = o.initial_sync;
		co.seeded = o.seeded;
		co.group = r.kgroup;
		co.role = o.role;
		co.volume = r.vols[i].conf->index;
		co.data_dev = r.vols[i].conf->data;
		co.meta = r.vols[i].conf->meta;
		ret = meta_create_run("create-md", &co);
	}
	res_free(&r);
	return ret;
}

/* ---- up ----------------------------------------------------------------- */

void usage_up(FILE *f)
{
	fprintf(f,
"Usage: repltool up [--config-dir DIR] [--site NAME] GROUP\n"
"\n"
"Load the table of each volume of the local site of GROUP.conf:\n"
"  0 SECTORS repl DATA META KGROUP ROLE 2 ring_mb N\n"
"with ROLE from the volume's metadata, and for a secondary\n"
"  ... secondary 4 ring_mb N source PEER_KGROUP\n"
"then make /dev/mapper/DEVICE. A volume already up with that table is left\n"
"as it is; one up with another table is an error. All or nothing: when a\n"
"volume fails, the ones this run created are removed again.\n"
"\n"
COMMON_OPTS_HELP);
}

/* Remove the first n volumes of r, created by up. */
static void undo_up(const struct res *r, const bool *created, unsigned int n)
{
	const char *name;
	int ret;

	while (n--) {
		if (!created[n])
			continue;
		name = r->vols[n].conf->device;
		ret = dmdev_remove(name);
		if (ret)
			err_msg("%s: removing it again: %s", name, strerror(-ret));
		else
			fprintf(stderr, "repltool: %s: removed again\n", name);
	}
}

/* A volume that is up: the same table (0) or another (-1, reported). */
static int up_already(const struct res *r, const struct res_vol *v)
{
	char want[2 * PATH_MAX], live[2 * PATH_MAX], type[32];
	const char *name = v->conf->device;
	__u64 sectors;
	int ret;

	ret = dmdev_table(name, &sectors, type, sizeof(type), live, sizeof(live));
	if (ret) {
		err_msg("%s: is up, but its table cannot be read: %s", name, strerror(-ret));
		return -1;
	}
	ret = res_live_params(r, v, v->role, want, sizeof(want));
	if (ret || strcmp(type, TARGET) || sectors != v->sectors || strcmp(live, want)) {
		err_msg("%s: is up with another table: \"0 %llu %s %s\", not \"0 %llu %s %s\" "
			"(repltool down %s first?)", name, (unsigned long long)sectors, type,
			live, (unsigned long long)v->sectors, TARGET, want, r->conf.name);
		return -1;
	}
	printf("%s: up already\n", name);
	return 0;
}

static int up_volume(const struct res *r, const struct res_vol *v, bool *created)
{
	const char *name = v->conf->device;
	char params[2 * PATH_MAX];
	struct dmdev_info i;
	int ret;

	*created = false;
	if (info(name, &i))
		return -1;
	if (i.exists)
		return up_already(r, v);
	ret = res_params(r, v, v->role, params, sizeof(params));
	if (ret) {
		err_msg("%s: table: %s", name, strerror(-ret));
		return -1;
	}
	ret = dmdev_create(name, v->sectors, TARGET, params);
	if (ret == -ENOENT || ret == -EEXIST) {
		*created = true;
		err_msg("%s: created, but /dev/mapper/%s is %s", name, name,
			ret == -ENOENT ? "missing" : "left over");
		return -1;
	}
	if (ret) {
		err_msg("%s: the kernel refused the table \"0 %llu %s %s\": %s (the kernel "
			"log says why)", name, (unsigned long long)v->sectors, TARGET, params,
			strerror(-ret));
		return -1;
	}
	*created = true;
	printf("%s: up, %s\n", name, dmrepl_meta_role_name(v->role));
	if (v->dev_sectors > v->sectors)
		printf("%s: its data device grew to %llu sectors, it runs at its metadata's "
		       "%llu until repltool resize %s\n", name,
		       (unsigned long long)v->dev_sectors, (unsigned long long)v->sectors,
		       r->conf.name);
	return 0;
}

int cmd_up(int argc, char **argv)
{
	static const struct option lopts[] = { COMMON_LONG_OPTS, { NULL, 0, NULL, 0 } };
	bool created[DM_REPL_MAX_VOLUMES] = { false };
	struct verb_opts o;
	unsigned int i;
	struct res r;
	int ret;

	if (!verb_open("up", argc, argv, lopts, usage_up, &o, &r, &ret))
		return ret;
	ret = EXIT_OK;
	for (i = 0; i < NVOLS(&r) && ret == EXIT_OK; i++)
		if (up_volume(&r, &r.vols[i], &created[i])) {
			undo_up(&r, created, i + 1);
			ret = EXIT_RUNTIME;
		}
	res_free(&r);
	return ret;
}

/* ---- down --------------------------------------------------------------- */

void usage_down(FILE *f)
{
	fprintf(f,
"Usage: repltool down [--config-dir DIR] [--site NAME] GROUP\n"
"\n"
"Remove the device-mapper devices of the local site's volumes of\n"
"GROUP.conf. Refused, before any is removed, while one is open (a VM, a\n"
"mount, a process holds it). Volumes that are not up are skipped.\n"
"\n"
COMMON_OPTS_HELP);
}

int cmd_down(int argc, char **argv)
{
	static const struct option lopts[] = { COMMON_LONG_OPTS, { NULL, 0, NULL, 0 } };
	struct dmdev_info st[DM_REPL_MAX_VOLUMES];
	int ret = EXIT_OK, err;
	struct verb_opts o;
	const char *name;
	unsigned int i;
	struct res r;

	err = parse_opts("down", argc, argv, lopts, usage_down, &o);
	if (err)
		return err < 0 ? EXIT_OK : err;
	if (res_load(&r, &o))
		return EXIT_RUNTIME;
	for (i = 0; i < NVOLS(&r) && ret == EXIT_OK; i++) {
		name = r.vols[i].conf->device;
		if (info(name, &st[i]))
			ret = EXIT_RUNTIME;
		else if (st[i].exists && st[i].open_count) {
			err_msg("%s: %s: it is open (%d opener%s); close it first", name,
				strerror(EBUSY), st[i].open_count, st[i].open_count > 1 ? "s" : "");
			ret = EXIT_RUNTIME;
		}
	}
	for (i = NVOLS(&r); i-- && ret == EXIT_OK;) {
		name = r.vols[i].conf->device;
		if (!st[i].exists) {
			printf("%s: not up\n", name);
			continue;
		}
		err = dmdev_remove(name);
		if (err) {
			err_msg("%s: remove: %s", name, strerror(-err));
			ret = EXIT_RUNTIME;
		} else {
			printf("%s: removed\n", name);
		}
	}
	res_free(&r);
	return ret;
}

/* ---- primary, secondary --------------------------------------------------- */

void usage_primary(FILE *f)
{
	fprintf(f,
"Usage: repltool primary [--force] [--config-dir DIR] [--site NAME] GROUP\n"
"\n"
"Promote the local site's volumes of GROUP.conf, which must be up: suspend\n"
"every one, send \"role primary\", reload each with its primary table, resume\n"
"them all (also after a failure). The kernel refuses while a resync is under\n"
"way or past a gap in the stream, unless --force.\n"
"\n"
"      --force           promote an inconsistent or outdated replica\n"
COMMON_OPTS_HELP);
}

void usage_secondary(FILE *f)
{
	fprintf(f,
"Usage: repltool secondary [--force] [--wait SECONDS] [--config-dir DIR]\n"
"                          [--site NAME] GROUP\n"
"\n"
"Demote the local site's volumes of GROUP.conf, which must be up and\n"
"closed: suspend every one, send \"role secondary\" and \"source\" the peer\n"
"site's kernel group, reload each with its secondary table, resume them all\n"
"(also after a failure). The kernel refuses while records are not yet\n"
"released to the peer, unless --force (their regions become dirty).\n"
"\n"
"      --wait SECONDS    first wait up to SECONDS for every record to be\n"
"                        released (the shipper's drain)\n"
"      --force           demote even with records not released\n"
COMMON_OPTS_HELP);
}

/* Wait until the group's ring is drained, up to wait_s seconds. 0 or -1. */
static int wait_drain(const struct res *r, __u64 wait_s)
{
	struct dm_repl_group_info gi;
	char path[PATH_MAX], msg[DMREPL_ERRMSG_LEN];
	struct timespec start, now;
	int fd, ret = 0;

	fd = open_group(r->kgroup, O_RDONLY, &gi, path, sizeof(path));
	if (fd < 0)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &start);
	while (gi.role == DM_REPL_ROLE_PRIMARY && gi.released_seq + 1 < gi.next_seq) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((__u64)(now.tv_sec - start.tv_sec) >= wait_s) {
			err_msg("%s: %llu records not released to the peer after %llu s (is "
				"repld connected?)", r->kgroup,
				(unsigned long long)(gi.next_seq - 1 - gi.released_seq),
				(unsigned long long)wait_s);
			ret = -1;
			break;
		}
		nanosleep(&(struct timespec){ .tv_nsec = DRAIN_POLL_MS * 1000000L }, NULL);
		ret = dmrepl_group_info(fd, &gi, msg, sizeof(msg));
		if (ret) {
			err_msg("%s: %s", path, msg);
			ret = -1;
			break;
		}
	}
	close(fd);
	return ret;
}

/* Send "role ROLE [force]", and for a secondary "source PEER". 0 or -1. */
static int send_role(const struct res *r, unsigned int role, bool force)
{
	const char *name = r->vols[0].conf->device;
	char msg[64 + DM_REPL_GROUP_NAME_MAX];
	int ret;

	snprintf(msg, sizeof(msg), "role %s%s", dmrepl_meta_role_name(role),
		 force ? " force" : "");
	ret = dmdev_message(name, msg);
	if (ret) {
		err_msg("%s: %s refused: %s: %s (the kernel log says more)", name, msg,
			strerror(-ret), res_role_refusal(role, -ret));
		return -1;
	}
	if (role != DM_REPL_META_ROLE_SECONDARY)
		return 0;
	snprintf(msg, sizeof(msg), "source %s", r->peer_kgroup);
	ret = dmdev_message(name, msg);
	if (ret) {
		err_msg("%s: %s refused: %s: %s", name, msg, strerror(-ret),
			res_role_refusal(role, -ret));
		return -1;
	}
	return 0;
}

/* The new role's table for every volume, to be swapped in by the resume. */
static int reload_all(const struct res *r, unsigned int role)
{
	char params[2 * PATH_MAX];
	const char *name;
	unsigned int i;
	int ret, bad = 0;

	for (i = 0; i < NVOLS(r); i++) {
		name = r->vols[i].conf->device;
		ret = res_params(r, &r->vols[i], role, params, sizeof(params));
		if (!ret)
			ret = dmdev_reload(name, r->vols[i].sectors, TARGET, params);
		if (ret) {
			err_msg("%s: reload with \"0 %llu %s %s\": %s (the role changed; the "
				"old table stays)", name, (unsigned long long)r->vols[i].sectors,
				TARGET, params, strerror(-ret));
			bad = -1;
		}
	}
	return bad;
}

/* Suspend every volume, change the role, resume all. 0 or -1 (reported). */
static int change_role(const struct res *r, unsigned int role, bool force)
{
	unsigned int i, suspended;
	int ret = 0, err;

	for (suspended = 0; suspended < NVOLS(r); suspended++) {
		err = dmdev_suspend(r->vols[suspended].conf->device);
		if (err) {
			err_msg("%s: suspend: %s", r->vols[suspended].conf->device,
				strerror(-err));
			ret = -1;
			break;
		}
	}
	if (!ret)
		ret = send_role(r, role, force);
	if (!ret)
		ret = reload_all(r, role);
	for (i = 0; i < suspended; i++) {
		err = dmdev_resume(r->vols[i].conf->device);
		if (err) {
			err_msg("%s: resume: %s", r->vols[i].conf->device, strerror(-err));
			ret = -1;
		}
	}
	return ret;
}

/* Every volume up; for a demotion, none open. 0 or -1 (reported). */
static int role_check_devices(const struct res *r, unsigned int role)
{
	struct dmdev_info i;
	const char *name;
	unsigned int n;

	for (n = 0; n < NVOLS(r); n++) {
		name = r->vols[n].conf->device;
		if (info(name, &i))
			return -1;
		if (!i.exists) {
			err_msg("%s: not up (repltool up %s)", name, r->conf.name);
			return -1;
		}
		if (role == DM_REPL_META_ROLE_SECONDARY && i.open_count) {
			err_msg("%s: %s: it is open (%d opener%s): stop the VM or unmount it "
				"first", name, strerror(EBUSY), i.open_count,
				i.open_count > 1 ? "s" : "");
			return -1;
		}
	}
	return 0;
}

static int role_verb(const char *cmd, unsigned int role, int argc, char **argv,
		     const struct option *lopts, void (*usage)(FILE *))
{
	struct verb_opts o;
	struct res r;
	int ret;

	if (!verb_open(cmd, argc, argv, lopts, usage, &o, &r, &ret))
		return ret;
	ret = EXIT_RUNTIME;
	if (role_check_devices(&r, role))
		goto out;
	if (r.vols[0].role == role) {
		printf("%s: %s already\n", r.conf.name, cmd);
		ret = EXIT_OK;
		goto out;
	}
	if (o.wait_s && wait_drain(&r, o.wait_s))
		goto out;
	if (change_role(&r, role, o.force))
		goto out;
	if (role == DM_REPL_META_ROLE_SECONDARY)
		printf("%s: secondary, source %s\n", r.conf.name, r.peer_kgroup);
	else
		printf("%s: primary\n", r.conf.name);
	ret = EXIT_OK;
out:
	res_free(&r);
	return ret;
}

int cmd_primary(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "force", no_argument, NULL, OPT_FORCE },
		COMMON_LONG_OPTS,
		{ NULL, 0, NULL, 0 },
	};

	return role_verb("primary", DM_REPL_META_ROLE_PRIMARY, argc, argv, lopts,
			 usage_primary);
}

int cmd_secondary(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "wait", required_argument, NULL, OPT_WAIT },
		COMMON_LONG_OPTS,
		{ NULL, 0, NULL, 0 },
	};

	return role_verb("secondary", DM_REPL_META_ROLE_SECONDARY, argc, argv, lopts,
			 usage_secondary);
}

void usage_rejoin(FILE *f)
{
	fprintf(f,
"Usage: repltool rejoin --discard-my-data [--config-dir DIR] [--site NAME] GROUP\n"
"\n"
"Make the local site the replica of its peer again after the data diverged:\n"
"after an unplanned failover (this site was the primary, the peer was\n"
"promoted without it), or to resolve a split brain (this site is the one\n"
"whose writes are given up). The volumes must be up and closed. A primary is\n"
"demoted first (with force: its writes the peer lacks become dirty regions).\n"
"Then \"rejoin\" makes the kernel take the next stream the peer sends, whatever\n"
"it is, and forget its generation. At the next connection repld sends this\n"
"site's dirty regions to the peer, which resends its data for them: this\n"
"site's writes the peer never had are overwritten. Until that resync ends,\n"
"the site is inconsistent. Nothing else of the disk is copied.\n"
"\n"
"      --discard-my-data  required: this site's writes the peer lacks are lost\n"
COMMON_OPTS_HELP);
}

/*
 * Send "rejoin" to the group. No suspension: no bio is mapped differently
 * (a secondary's volumes are read-only either way), and the kernel lets a
 * batch being applied finish first. 0 or -1 (reported).
 */
static int send_rejoin(const struct res *r)
{
	const char *name = r->vols[0].conf->device;
	int err = dmdev_message(name, "rejoin");

	if (!err)
		return 0;
	err_msg("%s: rejoin refused: %s (the kernel log says more)", name, strerror(-err));
	return -1;
}

int cmd_rejoin(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "discard-my-data", no_argument, NULL, OPT_DISCARD },
		COMMON_LONG_OPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct verb_opts o;
	struct res r;
	int ret;

	if (!verb_open("rejoin", argc, argv, lopts, usage_rejoin, &o, &r, &ret))
		return ret;
	if (!o.discard) {
		res_free(&r);
		return usage_err("rejoin", "this site's writes its peer lacks will be overwritten: "
				 "say so with --discard-my-data");
	}
	ret = EXIT_RUNTIME;
	if (role_check_devices(&r, DM_REPL_META_ROLE_SECONDARY))
		goto out;
	if (r.vols[0].role == DM_REPL_META_ROLE_PRIMARY &&
	    change_role(&r, DM_REPL_META_ROLE_SECONDARY, true))
		goto out;
	if (send_rejoin(&r))
		goto out;
	printf("%s: rejoins site %s as its replica; its own dirty regions are resent by the "
	       "peer, inconsistent until then\n", r.conf.name, r.peer->name);
	ret = EXIT_OK;
out:
	res_free(&r);
	return ret;
}

/* ---- resize ------------------------------------------------------------- */

void usage_resize(FILE *f)
{
	fprintf(f,
"Usage: repltool resize [--config-dir DIR] [--site NAME] GROUP\n"
"\n"
"Grow each volume of the local site of GROUP.conf whose data device grew\n"
"(lvextend) to the device's new size: reload its live table with the new\n"
"length, suspend, resume. The kernel grows the metadata's bitmap and\n"
"superblock; on a primary the new space is dirty and repld resyncs it.\n"
"Grow the replica site first: a primary larger than its replica is refused\n"
"by the replica. The volumes must be up. A data device smaller than its\n"
"metadata says is refused: shrinking is not supported.\n"
"\n"
COMMON_OPTS_HELP);
}

/*
 * Whether the metadata device holds the bitmap of dev_sectors: the kernel
 * says so too, but only in its log. 0 or -1 (reported).
 */
static int resize_check_meta(const struct res *r, const struct res_vol *v)
{
	__u64 region = (__u64)v->region_kb * 2;
	__u64 regions = (v->dev_sectors + region - 1) / region;
	__u64 need = 512 * (v->bm_offset + 8 * ((regions + DM_REPL_BM_BLOCK_BITS - 1) /
						DM_REPL_BM_BLOCK_BITS));

	if (need <= v->meta_bytes)
		return 0;
	err_msg("%s: volume %u: %s holds %llu bytes, the bitmap of %llu sectors of data needs "
		"%llu: grow the meta device first", r->conf.name, v->conf->index,
		v->conf->meta, (unsigned long long)v->meta_bytes,
		(unsigned long long)v->dev_sectors, (unsigned long long)need);
	return -1;
}

/* Reload a live volume with dev_sectors, suspend, resume. 0 or -1 (reported). */
/*
 * A resume that failed (the grow's metadata write, in preresume) leaves the
 * device suspended with the grown table live: the VM's I/O waits. Back to
 * the old length, resumed; or, if even that fails, what to do by hand.
 */
static void resize_undo(const char *name, const struct res_vol *v, const char *params, int err)
{
	int ret = dmdev_reload(name, v->sectors, TARGET, params);

	if (!ret)
		ret = dmdev_resume(name);
	if (!ret) {
		err_msg("%s: resume: %s (the kernel log says why); it runs on with its old "
			"table of %llu sectors", name, strerror(-err),
			(unsigned long long)v->sectors);
		return;
	}
	err_msg("%s: resume: %s, and back to the old table: %s (the kernel log says why). "
		"It is SUSPENDED: once the cause is fixed, `dmsetup resume %s` grows it; or "
		"`dmsetup reload %s --table \"0 %llu %s %s\"` and `dmsetup resume %s`", name,
		strerror(-err), strerror(-ret), name, name, (unsigned long long)v->sectors,
		TARGET, params, name);
}

static int resize_volume(const struct res *r, const struct res_vol *v)
{
	char params[2 * PATH_MAX], type[32];
	const char *name = v->conf->device;
	struct dmdev_info i;
	__u64 live;
	int ret, err;

	if (info(name, &i))
		return -1;
	if (!i.exists) {
		err_msg("%s: not up (repltool up %s)", name, r->conf.name);
		return -1;
	}
	ret = dmdev_table(name, &live, type, sizeof(type), params, sizeof(params));
	if (ret) {
		err_msg("%s: its table cannot be read: %s", name, strerror(-ret));
		return -1;
	}
	if (strcmp(type, TARGET) || live != v->sectors) {
		err_msg("%s: is up with \"0 %llu %s\", not a %s table of its metadata's %llu "
			"sectors", name, (unsigned long long)live, type, TARGET,
			(unsigned long long)v->sectors);
		return -1;
	}
	if (resize_check_meta(r, v))
		return -1;
	ret = dmdev_reload(name, v->dev_sectors, TARGET, params);
	if (ret) {
		err_msg("%s: the kernel refused the table of %llu sectors: %s (the kernel log "
			"says why; the old table stays)", name,
			(unsigned long long)v->dev_sectors, strerror(-ret));
		return -1;
	}
	ret = dmdev_suspend(name);
	err = dmdev_resume(name);
	if (ret) {
		err_msg("%s: suspend: %s (the kernel log says why)", name, strerror(-ret));
		return -1;
	}
	if (err) {
		resize_undo(name, v, params, err);
		return -1;
	}
	printf("%s: grew from %llu to %llu sectors\n", name, (unsigned long long)v->sectors,
	       (unsigned long long)v->dev_sectors);
	return 0;
}

int cmd_resize(int argc, char **argv)
{
	static const struct option lopts[] = { COMMON_LONG_OPTS, { NULL, 0, NULL, 0 } };
	unsigned int i, grown = 0;
	struct verb_opts o;
	struct res r;
	int ret;

	if (!verb_open("resize", argc, argv, lopts, usage_resize, &o, &r, &ret))
		return ret;
	ret = EXIT_OK;
	for (i = 0; i < NVOLS(&r) && ret == EXIT_OK; i++) {
		if (r.vols[i].dev_sectors == r.vols[i].sectors)
			continue;
		if (resize_volume(&r, &r.vols[i]))
			ret = EXIT_RUNTIME;
		else
			grown++;
	}
	if (ret == EXIT_OK && !grown)
		printf("%s: no data device grew: nothing to do\n", r.conf.name);
	res_free(&r);
	return ret;
}
