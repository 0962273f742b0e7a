// SPDX-License-Identifier: GPL-2.0
/*
 * dm-repl: the "repl" device-mapper target.
 *
 * Table line:
 *   <data_dev> <meta_dev> <group> primary|secondary [<#opt_args> <opt_args>...]
 * Optional arguments:
 *   ring_mb <n>                  ring size of the group, a power of two
 *   region_kb <n>                must match the metadata's region size
 *   overflow bitmap|block        primary: what a write does when the ring
 *                                is full
 *   block_ms <n>                 primary, overflow block: longest wait
 *   source <group>               secondary: the primary group whose records
 *                                it applies (default: its own name)
 *
 * See Documentation/dm-repl.md for the status line and the messages.
 */
#include <linux/bio.h>
#include <linux/ctype.h>
#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/module.h>

#include "repl.h"

struct repl_opts {
	unsigned int ring_mb;
	unsigned int region_kb;
	unsigned int block_ms;
	bool overflow_block;
	bool ring_mb_given;
	bool primary_only;	/* overflow or block_ms given */
	const char *source;
};

static int parse_pow2(struct dm_arg_set *as, const struct dm_arg *range,
		      unsigned int *value, char **error)
{
	int r = dm_read_arg(range, as, value, error);

	if (r)
		return r;
	if (!is_power_of_2(*value)) {
		*error = range->error;
		return -EINVAL;
	}
	return 0;
}

static int parse_ring_mb(struct dm_arg_set *as, struct repl_opts *o,
			 char **error)
{
	static const struct dm_arg range = {
		REPL_RING_MB_MIN, REPL_RING_MB_MAX,
		"ring_mb must be a power of two from 2 to 16384"
	};
	int r = parse_pow2(as, &range, &o->ring_mb, error);

	if (r)
		return r;
	if (((u64)o->ring_mb << (20 - PAGE_SHIFT)) > totalram_pages() / 2) {
		*error = "ring_mb exceeds half of the system's memory";
		return -EINVAL;
	}
	o->ring_mb_given = true;
	return 0;
}

static int parse_overflow(struct dm_arg_set *as, struct repl_opts *o,
			  char **error)
{
	const char *policy = dm_shift_arg(as);

	if (!policy) {
		*error = "overflow needs bitmap or block";
		return -EINVAL;
	}
	if (!strcasecmp(policy, "bitmap"))
		o->overflow_block = false;
	else if (!strcasecmp(policy, "block"))
		o->overflow_block = true;
	else {
		*error = "overflow must be bitmap or block";
		return -EINVAL;
	}
	return 0;
}

static int parse_one_opt(struct dm_arg_set *as, const char *name,
			 struct repl_opts *o, char **error)
{
	static const struct dm_arg region_range = {
		REPL_REGION_KB_MIN, REPL_REGION_KB_MAX,
		"region_kb must be a power of two from 4 to 1048576"
	};
	static const struct dm_arg block_range = {
		1, REPL_BLOCK_MS_MAX, "block_ms must be from 1 to 60000"
	};

	if (!strcasecmp(name, "ring_mb"))
		return parse_ring_mb(as, o, error);
	if (!strcasecmp(name, "region_kb"))
		return parse_pow2(as, &region_range, &o->region_kb, error);
	if (!strcasecmp(name, "overflow")) {
		o->primary_only = true;
		return parse_overflow(as, o, error);
	}
	if (!strcasecmp(name, "block_ms")) {
		o->primary_only = true;
		return dm_read_arg(&block_range, as, &o->block_ms, error);
	}
	if (!strcasecmp(name, "source")) {
		o->source = dm_shift_arg(as);
		if (!o->source || !repl_group_name_valid(o->source)) {
			*error = "source must be a group name";
			return -EINVAL;
		}
		return 0;
	}
	*error = "Unrecognised optional argument";
	return -EINVAL;
}

static int parse_opts(struct dm_arg_set *as, struct repl_opts *o,
		      char **error)
{
	static const struct dm_arg count = {
		0, 8, "Invalid number of optional arguments"
	};
	unsigned int argc, seen = 0;
	static const char * const names[] = { "ring_mb", "region_kb",
					      "overflow", "block_ms", "source" };
	const char *name;
	unsigned int i;
	int r;

	o->ring_mb = REPL_RING_MB_DEFAULT;
	o->region_kb = 0;	/* the metadata's */
	o->block_ms = REPL_BLOCK_MS_DEFAULT;
	if (!as->argc)
		return 0;
	r = dm_read_arg_group(&count, as, &argc, error);
	if (r)
		return r;
	if (argc != as->argc) {
		*error = "Optional arguments do not match their count";
		return -EINVAL;
	}
	while (as->argc) {
		name = dm_shift_arg(as);
		for (i = 0; i < ARRAY_SIZE(names); i++) {
			if (strcasecmp(name, names[i]))
				continue;
			if (seen & BIT(i)) {
				*error = "Optional argument given twice";
				return -EINVAL;
			}
			seen |= BIT(i);
		}
		r = parse_one_opt(as, name, o, error);
		if (r)
			return r;
	}
	return 0;
}

static int parse_role(const char *role, unsigned int *out, char **error)
{
	if (!strcasecmp(role, "primary"))
		*out = DM_REPL_ROLE_PRIMARY;
	else if (!strcasecmp(role, "secondary"))
		*out = DM_REPL_ROLE_SECONDARY;
	else {
		*error = "Role must be primary or secondary";
		return -EINVAL;
	}
	return 0;
}

/* Options that one role only takes. */
static int check_role_opts(unsigned int role, const struct repl_opts *o,
			   char **error)
{
	if (role == DM_REPL_ROLE_SECONDARY && o->primary_only) {
		*error = "overflow and block_ms apply to role primary only";
		return -EINVAL;
	}
	if (role == DM_REPL_ROLE_PRIMARY && o->source) {
		*error = "source applies to role secondary only";
		return -EINVAL;
	}
	return 0;
}

/* The group's role: a message can change it under a live table. */
static bool is_secondary(const struct repl_target *rt)
{
	return READ_ONCE(rt->vol->group->role) == DM_REPL_ROLE_SECONDARY;
}

static void repl_dtr(struct dm_target *ti)
{
	struct repl_target *rt = ti->private;

	repl_apply_resume(rt);	/* no longer counted as suspended */
	repl_volume_set_active(rt, false);
	repl_volume_put(rt->vol, rt->meta_dev->bdev);
	kvfree(rt->grow_syncing);
	kvfree(rt->grow_bitmap);
	dm_put_device(ti, rt->meta_dev);
	dm_put_device(ti, rt->data_dev);
	kfree(rt);
}

/* A table larger than its volume: the bitmaps it grows to, now. */
static int alloc_grow(struct dm_target *ti, struct repl_target *rt)
{
	struct repl_volume *v = rt->vol;
	unsigned long longs;

	if (ti->len == v->sectors)
		return 0;
	longs = BITS_TO_LONGS(DIV_ROUND_UP_SECTOR_T(ti->len,
						    1 << v->region_shift));
	rt->grow_bitmap = kvcalloc(longs, sizeof(long), GFP_KERNEL);
	rt->grow_syncing = kvcalloc(longs, sizeof(long), GFP_KERNEL);
	if (!rt->grow_bitmap || !rt->grow_syncing) {
		ti->error = "Cannot allocate the grown volume's bitmap";
		return -ENOMEM;
	}
	return 0;
}

static int repl_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	struct dm_arg_set as = { .argc = argc, .argv = argv };
	struct repl_volume_args vargs;
	struct repl_meta_args margs;
	struct repl_meta meta;
	struct repl_target *rt;
	unsigned int role;
	struct repl_opts o;
	int r;

	if (argc < 4) {
		ti->error = "Need <data_dev> <meta_dev> <group> <role>";
		return -EINVAL;
	}
	/* A volume is one device: one repl target covers it whole. */
	if (ti->begin) {
		ti->error = "A repl target must be its table's only target (it starts at sector 0)";
		return -EINVAL;
	}
	if (!repl_group_name_valid(argv[2])) {
		ti->error = "Group name must be 1-31 of [A-Za-z0-9_.+-], not starting with a dot";
		return -EINVAL;
	}
	r = parse_role(argv[3], &role, &ti->error);
	if (r)
		return r;
	dm_consume_args(&as, 4);
	r = parse_opts(&as, &o, &ti->error);
	if (r)
		return r;
	r = check_role_opts(role, &o, &ti->error);
	if (r)
		return r;

	rt = kzalloc(sizeof(*rt), GFP_KERNEL);
	if (!rt) {
		ti->error = "Cannot allocate target context";
		return -ENOMEM;
	}
	rt->ring_mb = o.ring_mb;
	rt->block_ms = o.block_ms;
	rt->table_role = role;
	strscpy(rt->source, o.source ?: argv[2], sizeof(rt->source));
	rt->overflow_block = o.overflow_block;

	r = dm_get_device(ti, argv[0], dm_table_get_mode(ti->table),
			  &rt->data_dev);
	if (r) {
		ti->error = "Data device lookup failed";
		goto bad_data;
	}
	r = dm_get_device(ti, argv[1], FMODE_READ | FMODE_WRITE,
			  &rt->meta_dev);
	if (r) {
		ti->error = "Metadata device lookup failed";
		goto bad_meta;
	}
	if (rt->meta_dev->bdev == rt->data_dev->bdev) {
		ti->error = "Data and metadata devices must differ";
		r = -EINVAL;
		goto bad_vol;
	}
	margs = (struct repl_meta_args) {
		.group = argv[2],
		.role = role,
		.data_sectors = ti->len,
		.meta_sectors = bdev_nr_sectors(rt->meta_dev->bdev),
		.region_kb = o.region_kb,
	};
	r = repl_meta_load(rt->meta_dev->bdev, &margs, &meta, &ti->error);
	if (r)
		goto bad_vol;
	rt->region_kb = meta.region_kb;

	vargs = (struct repl_volume_args) {
		.group = argv[2],
		.role = role,
		.source = role == DM_REPL_ROLE_SECONDARY ?
			  o.source ?: argv[2] : NULL,
		.ring_mb = o.ring_mb,
		.ring_mb_given = o.ring_mb_given,
		.region_kb = meta.region_kb,
		.data_dev = rt->data_dev->bdev->bd_dev,
		.data_bdev = rt->data_dev->bdev,
		.meta = &meta,
		.meta_bdev = rt->meta_dev->bdev,
	};
	rt->vol = repl_volume_get(ti, &vargs, &ti->error);
	kfree(meta.sb);
	if (IS_ERR(rt->vol)) {
		r = PTR_ERR(rt->vol);
		goto bad_vol;
	}
	rt->ring_mb = rt->vol->group->ring.size >> 20;
	r = alloc_grow(ti, rt);
	if (r)
		goto bad_grow;
	if (role == DM_REPL_ROLE_SECONDARY)
		repl_apply_join(rt->vol->group, rt->vol);

	r = dm_set_target_max_io_len(ti, DM_REPL_REC_PAYLOAD_MAX >> SECTOR_SHIFT);
	if (r)
		goto bad_grow;
	ti->num_flush_bios = 1;
	ti->num_discard_bios = 1;
	ti->num_write_zeroes_bios = 1;
	/* Flushes must reach us even over a device without a write cache. */
	ti->flush_supported = true;
	ti->per_io_data_size = sizeof(struct repl_io);
	/* The AL worker submits the writes it held with dm_submit_bio_remap(). */
	ti->accounts_remapped_io = true;
	ti->private = rt;
	/* Not resumed yet: no batch writes under an inactive table. */
	repl_apply_suspend(rt);
	return 0;

bad_grow:
	kvfree(rt->grow_syncing);
	kvfree(rt->grow_bitmap);
	repl_volume_put(rt->vol, rt->meta_dev->bdev);
bad_vol:
	dm_put_device(ti, rt->meta_dev);
bad_meta:
	dm_put_device(ti, rt->data_dev);
bad_data:
	kfree(rt);
	return r;
}

static int repl_map(struct dm_target *ti, struct bio *bio)
{
	struct repl_target *rt = ti->private;
	struct repl_io *io = dm_per_bio_data(bio, sizeof(struct repl_io));
	sector_t sector = dm_target_offset(ti, bio->bi_iter.bi_sector);

	io->nr = 0;
	io->nbytes = 0;
	io->seq = 0;
	io->deferred = false;
	io->overflow_phase = 0;
	/*
	 * Read-only as a secondary (see repl_resume()), and as a primary
	 * whose promotion is not in every superblock: a crash would load it
	 * as a secondary, which recovers no activity log.
	 */
	if (is_secondary(rt) || READ_ONCE(rt->vol->group->role_unsaved)) {
		if (bio_op(bio) != REQ_OP_READ && bio_sectors(bio))
			return DM_MAPIO_KILL;
	} else if (op_is_write(bio_op(bio)) || (bio->bi_opf & REQ_PREFLUSH)) {
		repl_capture(rt, bio, sector, io);
	}
	bio_set_dev(bio, rt->data_dev->bdev);
	bio->bi_iter.bi_sector = sector;
	/* A write into an extent the activity log does not name yet waits. */
	if (io->nbytes && !repl_al_admit(rt->vol, bio, io))
		return DM_MAPIO_SUBMITTED;
	return DM_MAPIO_REMAPPED;
}

static int repl_end_io(struct dm_target *ti, struct bio *bio,
		       blk_status_t *error)
{
	struct repl_target *rt = ti->private;
	struct repl_io *io = dm_per_bio_data(bio, sizeof(struct repl_io));

	if (!is_secondary(rt) &&
	    (op_is_write(bio_op(bio)) || (bio->bi_opf & REQ_PREFLUSH)))
		return repl_capture_end(rt, io, error);
	return DM_ENDIO_DONE;
}

static void emit_info(struct repl_target *rt, char *result,
		      unsigned int maxlen, unsigned int *sz_out)
{
	struct repl_volume *v = rt->vol;
	struct repl_group *g = v->group;
	struct repl_ring *ring = &g->ring;
	unsigned int sz = *sz_out;
	u64 prod, rel, rel_seq, seq;
	struct repl_al_stats al;
	unsigned long flags;

	spin_lock_irqsave(&ring->lock, flags);
	prod = ring->ctl->producer_pos;
	rel = ring->ctl->released_pos;
	rel_seq = ring->ctl->released_seq;
	seq = ring->next_seq - 1;
	spin_unlock_irqrestore(&ring->lock, flags);

	repl_al_stats(v, &al);
	DMEMIT("primary %s %u %s %llu %llu %llu/%llu %lld/%lu %lld %lld %lld %lld %016llx %u/%u %llu %llu %llu %016llx",
	       g->name, v->index,
	       test_bit(REPL_BEHIND, &g->flags) ? "behind" : "uptodate",
	       seq, rel_seq, prod - rel, ring->size,
	       atomic64_read(&v->dirty), v->nr_regions,
	       atomic64_read(&g->cnt.overflows),
	       atomic64_read(&g->cnt.block_waits),
	       atomic64_read(&g->cnt.block_timeouts),
	       atomic64_read(&g->cnt.discarded), READ_ONCE(g->gen_current),
	       al.hot, al.max_hot, al.txns, al.evictions, al.fallbacks,
	       READ_ONCE(ring->stream));
	*sz_out = sz;
}

static void emit_secondary_info(struct repl_target *rt, char *result,
				unsigned int maxlen, unsigned int *sz_out)
{
	struct repl_volume *v = rt->vol;
	struct repl_apply *a = &v->group->apply;
	unsigned int sz = *sz_out;
	unsigned long flags;

	spin_lock_irqsave(&a->stat_lock, flags);
	DMEMIT("secondary %s %u %s %llu %llu %llu %llu %llu %llu %016llx %016llx %llu",
	       v->group->name, v->index,
	       a->inconsistent ? "inconsistent" :
	       a->outdated ? "outdated" : "consistent",
	       a->applied_seq, a->applied_epoch, a->batches, a->records,
	       a->skipped, a->rejected, READ_ONCE(v->group->gen_current),
	       a->applied_stream,
	       a->outdated ? a->consistent_seq : a->applied_seq);
	spin_unlock_irqrestore(&a->stat_lock, flags);
	*sz_out = sz;
}

static void emit_table(struct repl_target *rt, char *result,
		       unsigned int maxlen, unsigned int *sz_out)
{
	unsigned int sz = *sz_out;

	DMEMIT("%s %s %s ", rt->data_dev->name, rt->meta_dev->name,
	       rt->vol->group->name);
	if (rt->table_role == DM_REPL_ROLE_SECONDARY)
		DMEMIT("secondary 6 ring_mb %u region_kb %u source %s",
		       rt->ring_mb, rt->region_kb, rt->source);
	else
		DMEMIT("primary 8 ring_mb %u region_kb %u overflow %s block_ms %u",
		       rt->ring_mb, rt->region_kb,
		       rt->overflow_block ? "block" : "bitmap", rt->block_ms);
	*sz_out = sz;
}

static void repl_status(struct dm_target *ti, status_type_t type,
			unsigned int status_flags, char *result,
			unsigned int maxlen)
{
	struct repl_target *rt = ti->private;
	unsigned int sz = 0;

	switch (type) {
	case STATUSTYPE_INFO:
		if (is_secondary(rt))
			emit_secondary_info(rt, result, maxlen, &sz);
		else
			emit_info(rt, result, maxlen, &sz);
		break;
	case STATUSTYPE_TABLE:
		emit_table(rt, result, maxlen, &sz);
		break;
	case STATUSTYPE_IMA:
		DMEMIT_TARGET_NAME_VERSION(ti->type);
		DMEMIT(",data_device=%s,meta_device=%s,group=%s,role=%s;",
		       rt->data_dev->name, rt->meta_dev->name,
		       rt->vol->group->name,
		       is_secondary(rt) ? "secondary" : "primary");
		break;
	}
}

static bool marker_label_valid(const char *label)
{
	size_t len = strlen(label);
	size_t i;

	if (!len || len > DM_REPL_MARKER_LABEL_MAX)
		return false;
	for (i = 0; i < len; i++)
		if (!isalnum(label[i]) && !strchr("_.:+-@", label[i]))
			return false;
	return true;
}

/*
 * "marker <label>": insert a named consistency point into the stream.
 * "role primary|secondary [force]": change the group's role;
 * "source <group>": what a secondary applies; "rejoin": a secondary takes
 * the next stream given (kernel/role.c).
 */
static int repl_message(struct dm_target *ti, unsigned int argc, char **argv,
			char *result, unsigned int maxlen)
{
	struct repl_target *rt = ti->private;
	int r;

	if (argc == 2 && !strcasecmp(argv[0], "marker")) {
		if (is_secondary(rt)) {
			DMWARN("%s: markers are inserted on the primary",
			       rt->vol->group->name);
			return -EPERM;
		}
		if (!marker_label_valid(argv[1])) {
			DMWARN("%s: marker label must be 1-%u of [A-Za-z0-9_.:+-@]",
			       rt->vol->group->name, DM_REPL_MARKER_LABEL_MAX);
			return -EINVAL;
		}
		r = repl_capture_marker(rt, argv[1]);
		if (r)
			DMWARN("%s: no room in the ring for marker %s",
			       rt->vol->group->name, argv[1]);
		return r;
	}
	if (argc && !strcasecmp(argv[0], "role"))
		return repl_role_message(rt->vol->group, argc, argv);
	if (argc && !strcasecmp(argv[0], "source"))
		return repl_source_message(rt->vol->group, argc, argv);
	if (argc && !strcasecmp(argv[0], "rejoin"))
		return repl_rejoin_message(rt->vol->group, argc, argv);
	DMWARN("%s: unrecognised message (expected: marker <label>, role primary|secondary [force], source <group>, rejoin)",
	       rt->vol->group->name);
	return -EINVAL;
}

static void repl_presuspend(struct dm_target *ti)
{
	repl_apply_suspend(ti->private);
}

/*
 * A table that has other targets after this one cannot go live. A table
 * larger than its volume grows it here: the old table is suspended.
 */
static int repl_preresume(struct dm_target *ti)
{
	struct repl_target *rt = ti->private;

	if (dm_table_get_size(ti->table) != ti->len) {
		DMERR("%s: a repl target must be its table's only target",
		      rt->vol->group->name);
		return -EINVAL;
	}
	if (ti->len > rt->vol->sectors)
		return repl_volume_grow(rt, ti->len);
	return 0;
}

/* A suspend that was interrupted: dm calls this, not resume. */
static void repl_presuspend_undo(struct dm_target *ti)
{
	repl_apply_resume(ti->private);
}

/* Every bio of the target has completed: a role change may come. */
static void repl_postsuspend(struct dm_target *ti)
{
	repl_volume_set_active(ti->private, false);
}

/*
 * A secondary's device is read-only to everyone above: dm core set its
 * disk's read-only flag from the table's mode just before this runs.
 */
static void repl_resume(struct dm_target *ti)
{
	struct repl_target *rt = ti->private;

	if (is_secondary(rt))
		set_disk_ro(dm_disk(dm_table_get_md(ti->table)), true);
	repl_volume_set_active(rt, true);
	repl_apply_resume(rt);
}

static int repl_iterate_devices(struct dm_target *ti,
				iterate_devices_callout_fn fn, void *data)
{
	struct repl_target *rt = ti->private;

	return fn(ti, rt->data_dev, 0, ti->len, data);
}

/*
 * Bios of one record's payload at most, and as large as that: with
 * max_io_len set, dm core splits every bio at the device's max_sectors, so
 * the limit stacked from the data device (255 sectors for brd, the block
 * layer's default) would cut a 1 MiB write into nine bios and nine records.
 * The data device gets them whole, as through dm-linear, which does not
 * split at all: a bio-based device splits what it must itself, and blk-mq
 * does so for request-based ones.
 */
static void repl_io_hints(struct dm_target *ti, struct queue_limits *limits)
{
	unsigned int max = DM_REPL_REC_PAYLOAD_MAX >> SECTOR_SHIFT;

	limits->max_hw_sectors = max;
	limits->max_sectors = max;
}

static struct target_type repl_target = {
	.name		 = "repl",
	.version	 = {0, 1, 0},
	.module		 = THIS_MODULE,
	.ctr		 = repl_ctr,
	.dtr		 = repl_dtr,
	.map		 = repl_map,
	.end_io		 = repl_end_io,
	.status		 = repl_status,
	.message	 = repl_message,
	.presuspend	 = repl_presuspend,
	.presuspend_undo = repl_presuspend_undo,
	.preresume	 = repl_preresume,
	.postsuspend	 = repl_postsuspend,
	.resume		 = repl_resume,
	.iterate_devices = repl_iterate_devices,
	.io_hints	 = repl_io_hints,
};

/* Live objects, for the tests' leak checks: "groups volumes files". */
static int live_objects_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%d %d %d\n", atomic_read(&repl_live_groups),
			  atomic_read(&repl_live_volumes),
			  atomic_read(&repl_live_files));
}

static const struct kernel_param_ops live_objects_ops = {
	.get = live_objects_get,
};
module_param_cb(live_objects, &live_objects_ops, NULL, 0444);
MODULE_PARM_DESC(live_objects, "Live groups, volumes and open files");

struct workqueue_struct *repl_wq;

struct bio_set repl_bio_set;

static int __init dm_repl_init(void)
{
	int r;

	/*
	 * The copier and the activity log's worker are in the write path:
	 * they must make progress under memory pressure.
	 */
	repl_wq = alloc_workqueue("dm-repl", WQ_MEM_RECLAIM | WQ_HIGHPRI, 0);
	if (!repl_wq)
		return -ENOMEM;
	r = bioset_init(&repl_bio_set, BIO_POOL_SIZE, 0, BIOSET_NEED_BVECS);
	if (r)
		goto bad_bioset;
	r = dm_register_target(&repl_target);
	if (r < 0) {
		DMERR("register failed %d", r);
		goto bad_register;
	}
	return 0;

bad_register:
	bioset_exit(&repl_bio_set);
bad_bioset:
	destroy_workqueue(repl_wq);
	return r;
}

static void __exit dm_repl_exit(void)
{
	dm_unregister_target(&repl_target);
	bioset_exit(&repl_bio_set);
	destroy_workqueue(repl_wq);
}

module_init(dm_repl_init);
module_exit(dm_repl_exit);

MODULE_DESCRIPTION(DM_NAME " asynchronous replication target");
MODULE_LICENSE("GPL");
