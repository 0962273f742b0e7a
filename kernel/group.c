// SPDX-License-Identifier: GPL-2.0
/*
 * Groups and their volumes.
 *
 * A group is the unit of consistency: one ring, one sequence space. It is
 * created by the first table that names it and goes away with the last; the
 * character device (and any process holding it open) keeps a reference, so
 * the ring stays valid for a consumer that still has it mapped.
 */
#include <linux/bitmap.h>
#include <linux/crc32c.h>
#include <linux/ctype.h>
#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/timer.h>

#include "repl.h"

/* Guards repl_groups and the creation and death of groups. */
DEFINE_MUTEX(repl_groups_lock);
static LIST_HEAD(repl_groups);

atomic_t repl_live_groups = ATOMIC_INIT(0);
atomic_t repl_live_volumes = ATOMIC_INIT(0);

bool repl_group_name_valid(const char *name)
{
	size_t len = strnlen(name, DM_REPL_GROUP_NAME_MAX);
	size_t i;

	if (!len || len >= DM_REPL_GROUP_NAME_MAX || name[0] == '.')
		return false;
	for (i = 0; i < len; i++)
		if (!isalnum(name[i]) && !strchr("_.+-", name[i]))
			return false;
	return true;
}

/* The group_tag of a group's records (see uapi/linux/dm-repl.h). */
u32 repl_group_tag(const char *name)
{
	return crc32c(~0U, name, strlen(name));
}

static struct repl_group *group_find(const char *name)
{
	struct repl_group *g;

	list_for_each_entry(g, &repl_groups, list)
		if (!strcmp(g->name, name))
			return g;
	return NULL;
}

/*
 * Wake poll()ers, once per batch. The bit is cleared by poll() before it
 * looks at the commit count, so a commit that poll() did not see always
 * finds it clear and wakes it. While it is set (the consumer has not polled
 * since the last wake-up), a plain read sees so and the commit leaves the
 * shared cache line alone.
 */
static void group_wake(struct repl_group *g)
{
	if (test_bit(REPL_WAKE_PENDING, &g->flags))
		return;
	if (!test_and_set_bit(REPL_WAKE_PENDING, &g->flags)) {
		WRITE_ONCE(g->woken_commits, atomic64_read(&g->commits));
		atomic64_inc(&g->cnt.wakeups);
		wake_up(&g->poll_wait);
	}
}

static void group_wake_timer(struct timer_list *t)
{
	struct repl_group *g = from_timer(g, t, wake_timer);

	/*
	 * Pairs with atomic64_add_return() in repl_group_notify(): either that
	 * commit sees this timer no longer pending and arms it again, or this
	 * read sees the commit. The timer core's unlock before calling us
	 * orders nothing against a later load.
	 */
	smp_mb();
	if (atomic64_read(&g->commits) != READ_ONCE(g->woken_commits))
		group_wake(g);
}

/*
 * Records were committed. Waking the consumer for each one would cost the
 * writer a cross-CPU wake-up per write and the consumer a poll() and a
 * release per record, so wake-ups are coalesced: at once when
 * REPL_WAKE_RECORDS records wait or a quarter of the ring is in use, else
 * by a timer at the next tick. A poll() always sees every committed record;
 * only the wake-up of a sleeping consumer waits, for a tick at most.
 */
void repl_group_notify(struct repl_group *g, unsigned int nr)
{
	struct repl_ring *ring = &g->ring;
	u64 commits, used;

	commits = atomic64_add_return(nr, &g->commits);
	/* Pairs with test_and_clear_bit() in repl_poll(): commits, then bit. */
	smp_mb__after_atomic();
	if (test_bit(REPL_WAKE_PENDING, &g->flags))
		return;
	used = READ_ONCE(ring->ctl->producer_pos) -
	       READ_ONCE(ring->ctl->released_pos);
	if (commits - READ_ONCE(g->woken_commits) >= REPL_WAKE_RECORDS ||
	    used >= ring->size / 4)
		group_wake(g);
	else if (!timer_pending(&g->wake_timer))
		mod_timer(&g->wake_timer, jiffies + 1);
}

/* Something a consumer should see at once: a marker, an applied batch. */
void repl_group_notify_now(struct repl_group *g)
{
	atomic64_inc(&g->commits);
	/* Pairs with test_and_clear_bit() in repl_poll(): commits, then bit. */
	smp_mb__after_atomic();
	group_wake(g);
}

static struct repl_group *group_create(const struct repl_volume_args *args,
				       char **error)
{
	struct repl_group *g;
	int r;

	g = kzalloc(sizeof(*g), GFP_KERNEL);
	if (!g) {
		*error = "Cannot allocate group";
		return ERR_PTR(-ENOMEM);
	}
	kref_init(&g->kref);
	strscpy(g->name, args->group, sizeof(g->name));
	g->role = args->role;
	mutex_init(&g->lock);
	init_waitqueue_head(&g->poll_wait);
	init_waitqueue_head(&g->room_wait);
	init_llist_head(&g->copy_list);
	INIT_WORK(&g->copy_work, repl_copier_work);
	timer_setup(&g->wake_timer, group_wake_timer, 0);

	repl_apply_init(g, args->source);
	repl_resync_init(g);
	repl_verify_init(g);

	/*
	 * A secondary has its ring too: a promotion must not fail for want of
	 * memory in the middle of a disaster.
	 */
	r = repl_ring_init(&g->ring, args->ring_mb);
	if (r) {
		*error = "Cannot allocate ring of ring_mb";
		goto bad_ring;
	}
	g->ring.group_tag = repl_group_tag(g->name);
	if (args->role == DM_REPL_ROLE_PRIMARY)
		repl_ring_from_sb(&g->ring, args->meta->sb);
	r = repl_chardev_register(g);
	if (r) {
		*error = "Cannot register the group's character device";
		goto bad_chardev;
	}
	list_add(&g->list, &repl_groups);
	atomic_inc(&repl_live_groups);
	return g;

bad_chardev:
	repl_ring_free(&g->ring);
bad_ring:
	kfree(g);
	return ERR_PTR(r);
}

static void group_release(struct kref *kref)
{
	struct repl_group *g = container_of(kref, struct repl_group, kref);

	repl_resync_stop(g);
	repl_ring_free(&g->ring);
	mutex_destroy(&g->ring.release_lock);
	mutex_destroy(&g->apply.lock);
	mutex_destroy(&g->resync.lock);
	mutex_destroy(&g->resync.flush_lock);
	mutex_destroy(&g->lock);
	kfree(g);
	atomic_dec(&repl_live_groups);
}

void repl_group_put(struct repl_group *g)
{
	kref_put(&g->kref, group_release);
}

/*
 * Drop a volume's reference. When the group has no volume left it dies now
 * (its name is free again, its device node goes) even if a consumer still
 * holds the device open; that consumer sees POLLHUP.
 */
static void group_leave(struct repl_group *g)
{
	bool last;

	lockdep_assert_held(&repl_groups_lock);
	mutex_lock(&g->lock);
	last = !g->nr_volumes;
	if (last)
		g->dead = true;
	mutex_unlock(&g->lock);

	if (last) {
		/* Its bios are all done; the copier may still be returning. */
		flush_work(&g->copy_work);
		/* Nothing commits any more: no new arming after this. */
		del_timer_sync(&g->wake_timer);
		list_del(&g->list);
		repl_chardev_unregister(g);
		wake_up_all(&g->poll_wait);
		wake_up_all(&g->room_wait);
	}
	repl_group_put(g);
}

/* Find or create the group a table names, with a reference for the volume. */
static struct repl_group *group_join(const struct repl_volume_args *args,
				     char **error)
{
	struct repl_group *g = group_find(args->group);

	if (!g)
		return group_create(args, error);
	if (args->role != g->role) {
		*error = "Group has volumes of the other role";
		return ERR_PTR(-EINVAL);
	}
	if (args->ring_mb_given && ((u64)args->ring_mb << 20) != g->ring.size) {
		*error = "ring_mb differs from the group's ring";
		return ERR_PTR(-EINVAL);
	}
	if (args->role == DM_REPL_ROLE_SECONDARY &&
	    strcmp(args->source, g->apply.source)) {
		*error = "source differs from the group's source";
		return ERR_PTR(-EINVAL);
	}
	kref_get(&g->kref);
	return g;
}

/* Caller holds g->lock. */
static struct repl_volume *volume_find(struct repl_group *g,
				       struct mapped_device *md,
				       const struct repl_volume_args *args,
				       char **error)
{
	unsigned int i;

	for (i = 0; i < DM_REPL_MAX_VOLUMES; i++) {
		struct repl_volume *v = g->volumes[i];

		if (!v)
			continue;
		if (v->md == md)
			return v;
		if (v->data_dev == args->data_dev) {
			*error = "Data device is used by another volume of the group";
			return ERR_PTR(-EBUSY);
		}
		if (!memcmp(v->uuid, args->meta->uuid, sizeof(v->uuid))) {
			*error = "Metadata is used by another volume of the group";
			return ERR_PTR(-EBUSY);
		}
		if (v->index == args->meta->index) {
			*error = "Volume index is used by another volume of the group";
			return ERR_PTR(-EBUSY);
		}
	}
	return NULL;
}

/*
 * The index the metadata gives, unless an unreleased record of a removed
 * volume still names it: a consumer must never confuse the two.
 * Caller holds g->lock.
 */
static int volume_check_index(struct repl_group *g, unsigned int index,
			      char **error)
{
	u64 released = READ_ONCE(g->ring.ctl->released_seq);

	if (g->index_last_seq[index] > released) {
		*error = "Volume index still names unreleased records of a removed volume";
		return -EBUSY;
	}
	return 0;
}

/* Caller holds g->lock, and the group has no volume yet. */
static void group_gen_from_sb(struct repl_group *g,
			      const struct dm_repl_meta_sb *sb)
{
	unsigned int i;

	g->gen_current = le64_to_cpu(sb->gen_current);
	for (i = 0; i < DM_REPL_META_GEN_HISTORY; i++)
		g->gen_history[i] = le64_to_cpu(sb->gen_history[i]);
}

static struct repl_volume *volume_create(struct repl_group *g,
					 struct dm_target *ti,
					 const struct repl_volume_args *args,
					 char **error)
{
	unsigned int index = args->meta->index;
	struct repl_volume *v;
	int r;

	if (args->meta->data_sectors != ti->len) {
		*error = "Metadata was made for a smaller data device (a running volume grows with repltool resize)";
		return ERR_PTR(-EINVAL);
	}
	r = volume_check_index(g, index, error);
	if (r)
		return ERR_PTR(r);
	v = kzalloc(sizeof(*v), GFP_KERNEL);
	if (!v) {
		*error = "Cannot allocate volume";
		return ERR_PTR(-ENOMEM);
	}
	v->group = g;
	v->md = dm_table_get_md(ti->table);
	v->data_dev = args->data_dev;
	v->data_bdev = args->data_bdev;
	v->meta_bdev = args->meta_bdev;
	memcpy(v->uuid, args->meta->uuid, sizeof(v->uuid));
	v->index = index;
	v->sectors = ti->len;
	v->region_shift = ilog2(args->region_kb) + 1;	/* KiB to sectors */
	v->nr_regions = DIV_ROUND_UP_SECTOR_T(ti->len, 1 << v->region_shift);
	v->bitmap = kvcalloc(BITS_TO_LONGS(v->nr_regions), sizeof(long),
			     GFP_KERNEL);
	v->syncing = kvcalloc(BITS_TO_LONGS(v->nr_regions), sizeof(long),
			      GFP_KERNEL);
	v->sb = kmemdup(args->meta->sb, DM_REPL_META_BLOCK_SIZE, GFP_KERNEL);
	if (!v->bitmap || !v->syncing || !v->sb || repl_al_create(v)) {
		*error = "Cannot allocate dirty bitmap";
		r = -ENOMEM;
		goto bad;
	}
	/*
	 * The group's generations are its first volume's; a volume that joins
	 * with others adopts them in the superblock written below.
	 */
	if (!g->nr_volumes)
		group_gen_from_sb(g, args->meta->sb);
	/* A primary's superblock names the running stream before any write. */
	if (g->role == DM_REPL_ROLE_PRIMARY)
		repl_ring_to_sb(&g->ring, v->sb);
	r = repl_meta_open(args->meta_bdev, v, error);
	if (r)
		goto bad;
	/*
	 * Its dirty regions (a crash, an overflow, an initial sync) are not
	 * on the replica: the stream says so before its next record, even if
	 * the stream it follows ended cleanly.
	 */
	if (g->role == DM_REPL_ROLE_PRIMARY && atomic64_read(&v->dirty))
		repl_ring_note_missing(&g->ring);
	g->volumes[index] = v;
	repl_resync_joined(v);
	g->nr_volumes++;
	atomic_inc(&repl_live_volumes);
	return v;

bad:
	repl_al_destroy(v);
	kfree(v->sb);
	kvfree(v->syncing);
	kvfree(v->bitmap);
	kfree(v);
	return ERR_PTR(r);
}

/*
 * A reload may make the volume larger (repl_volume_grow() does it at
 * resume) if its metadata device holds the larger bitmap; smaller, the
 * superblock's check refused it already.
 */
static int volume_check_grow(struct repl_volume *v, struct dm_target *ti,
			     const struct repl_volume_args *args,
			     char **error)
{
	sector_t have = bdev_nr_sectors(args->meta_bdev);
	u64 need = repl_meta_sectors_for(v->sb, ti->len);

	if (ti->len == v->sectors)
		return 0;
	if (!need) {
		*error = "Volume would have more hot extents than 32-bit extent numbers hold";
		return -EINVAL;
	}
	if (need > have) {
		DMERR("%s: volume %u: growing to %llu sectors needs a metadata device of %llu sectors, it has %llu",
		      v->group->name, v->index, (u64)ti->len, need, (u64)have);
		*error = "Metadata device is too small for the grown volume's bitmap";
		return -ENOSPC;
	}
	return 0;
}

static int volume_check_reload(struct repl_volume *v, struct dm_target *ti,
			       const struct repl_volume_args *args,
			       char **error)
{
	if (v->sectors > ti->len)
		*error = "Shrinking a replicated volume is not supported";
	else if (v->data_dev != args->data_dev)
		*error = "Data device cannot change in a reload";
	else if (v->meta_bdev != args->meta_bdev)
		*error = "Metadata device cannot change in a reload";
	else if (memcmp(v->uuid, args->meta->uuid, sizeof(v->uuid)))
		*error = "Metadata cannot change to another volume's in a reload";
	else if (v->region_shift != ilog2(args->region_kb) + 1)
		*error = "region_kb cannot change in a reload";
	else
		return volume_check_grow(v, ti, args, error);
	return -EINVAL;
}

/* Caller holds repl_groups_lock. */
static struct repl_volume *volume_attach(struct repl_group *g,
					 struct dm_target *ti,
					 const struct repl_volume_args *args,
					 char **error)
{
	struct repl_volume *v;
	int r;

	mutex_lock(&g->lock);
	v = volume_find(g, dm_table_get_md(ti->table), args, error);
	if (!v) {
		v = volume_create(g, ti, args, error);
	} else if (!IS_ERR(v)) {
		r = volume_check_reload(v, ti, args, error);
		if (r)
			v = ERR_PTR(r);
	}
	if (!IS_ERR(v))
		v->users++;
	mutex_unlock(&g->lock);
	return v;
}

/*
 * The volume of a new target: the same mapped device reloading its table
 * shares the volume (and dirty bitmap) it had; a new device gets the lowest
 * free index in its group, which is created if this is its first volume.
 */
struct repl_volume *repl_volume_get(struct dm_target *ti,
				    const struct repl_volume_args *args,
				    char **error)
{
	struct repl_group *g;
	struct repl_volume *v;

	mutex_lock(&repl_groups_lock);
	g = group_join(args, error);
	if (IS_ERR(g)) {
		v = ERR_CAST(g);
		goto out;
	}
	v = volume_attach(g, ti, args, error);
	if (IS_ERR(v))
		group_leave(g);
out:
	mutex_unlock(&repl_groups_lock);
	return v;
}

/*
 * The last target of a volume leaves: its writes still in the ring go to
 * its bitmap, which the metadata device keeps until the volume comes back.
 */
static void volume_save(struct repl_volume *v, struct block_device *meta_bdev,
			bool last)
{
	struct repl_group *g = v->group;
	struct repl_ring *ring = &g->ring;

	repl_al_destroy(v);	/* its worker is idle from here */
	repl_ring_mark_unreleased(ring, v);
	/*
	 * The stream ends with the group's last volume: only its superblock
	 * may say exactly where. A volume that leaves earlier keeps the bound.
	 */
	if (g->role == DM_REPL_ROLE_PRIMARY) {
		repl_ring_to_sb(ring, v->sb);
		/* A gap not in the ring yet: the bound stays, so the next says it. */
		if (last && !repl_ring_gap_owed(ring))
			v->sb->seq_next =
				cpu_to_le64(repl_ring_last_seq(ring) + 1);
	}
	repl_meta_close(meta_bdev, v, READ_ONCE(ring->ctl->released_seq));
}

/*
 * A primary's last target of @v: its removal flushes the data device
 * (repl_meta_close()) under repl_groups_lock.
 */
static bool removal_flushes(struct repl_volume *v)
{
	struct repl_group *g = v->group;
	bool flushes;

	mutex_lock(&g->lock);
	flushes = v->users == 1 && g->role == DM_REPL_ROLE_PRIMARY;
	mutex_unlock(&g->lock);
	return flushes;
}

void repl_volume_put(struct repl_volume *v, struct block_device *meta_bdev)
{
	struct repl_group *g = v->group;
	bool gone;

	/*
	 * Not while a batch is applied to it, nor while a resync reads it;
	 * and g outlives the unlock.
	 */
	kref_get(&g->kref);
	mutex_lock(&g->resync.flush_lock);
	/* First with no other lock held, as a demotion does (role.c). */
	if (removal_flushes(v))
		blkdev_issue_flush(v->data_bdev);
	mutex_lock(&g->resync.lock);
	mutex_lock(&g->apply.lock);
	mutex_lock(&repl_groups_lock);
	mutex_lock(&g->lock);
	gone = !--v->users;
	if (gone) {
		g->volumes[v->index] = NULL;
		g->index_last_seq[v->index] = repl_ring_last_seq(&g->ring);
		g->nr_volumes--;
	}
	mutex_unlock(&g->lock);
	if (gone) {
		volume_save(v, meta_bdev, !g->nr_volumes);
		repl_resync_forget(v);
		kfree(v->sb);
		kvfree(v->syncing);
		kvfree(v->bitmap);
		kfree(v);
		atomic_dec(&repl_live_volumes);
	}
	group_leave(g);
	mutex_unlock(&repl_groups_lock);
	mutex_unlock(&g->apply.lock);
	mutex_unlock(&g->resync.lock);
	mutex_unlock(&g->resync.flush_lock);
	repl_group_put(g);
}

/* Swap in @bitmap and @syncing, of @regions. Caller holds g->lock. */
static void volume_swap_bitmaps(struct repl_volume *v, unsigned long **bitmap,
				unsigned long **syncing, unsigned long regions)
{
	struct repl_resync *rs = &v->group->resync;
	unsigned long *old_bitmap = v->bitmap, *old_syncing = v->syncing;
	unsigned long copy = min(regions, v->nr_regions);
	unsigned long flags;

	bitmap_copy(*bitmap, v->bitmap, copy);
	v->bitmap = *bitmap;
	/* A release clears syncing bits under entries_lock only. */
	spin_lock_irqsave(&rs->entries_lock, flags);
	bitmap_copy(*syncing, v->syncing, copy);
	v->syncing = *syncing;
	v->nr_regions = regions;
	spin_unlock_irqrestore(&rs->entries_lock, flags);
	*bitmap = old_bitmap;
	*syncing = old_syncing;
}

/*
 * The table being resumed is larger than its volume (volume_check_grow()
 * let it load): the volume grows to it. Its old table is suspended, so no
 * bio of the volume is in flight; the locks keep a resync, a batch and
 * GET_BITMAP away from the bitmap. On a primary the new regions are
 * dirty: whatever the new space holds goes to the replica by the resync.
 * On a secondary, nothing: its primary sends it. Persisted before the
 * table goes live; on failure the volume keeps its size.
 */
int repl_volume_grow(struct repl_target *rt, sector_t sectors)
{
	struct repl_volume *v = rt->vol;
	struct repl_group *g = v->group;
	sector_t old_sectors = v->sectors;
	unsigned long old_regions = v->nr_regions;
	unsigned long first = old_sectors >> v->region_shift;
	unsigned long regions = DIV_ROUND_UP_SECTOR_T(sectors,
						      1 << v->region_shift);
	u64 added = 0;
	int r;

	mutex_lock(&g->resync.lock);
	mutex_lock(&g->apply.lock);
	mutex_lock(&g->lock);
	volume_swap_bitmaps(v, &rt->grow_bitmap, &rt->grow_syncing, regions);
	v->sectors = sectors;
	if (g->role == DM_REPL_ROLE_PRIMARY) {
		added = regions - first;
		if (first < old_regions && test_bit(first, v->bitmap))
			added--;
		bitmap_set(v->bitmap, first, regions - first);
		atomic64_add(added, &v->dirty);
		/* The count before the state, as repl_volume_mark_dirty(). */
		repl_group_behind(g, DM_REPL_BEHIND_GROWN);
	}
	r = repl_meta_grow(v, old_sectors);
	if (r) {
		DMERR("%s: volume %u: cannot write its grown metadata (%d): it keeps %llu sectors",
		      g->name, v->index, r, (u64)old_sectors);
		v->sectors = old_sectors;
		volume_swap_bitmaps(v, &rt->grow_bitmap, &rt->grow_syncing,
				    old_regions);
		/* Whole words came back: none past the last region counts. */
		if (old_regions % BITS_PER_LONG)
			v->bitmap[old_regions / BITS_PER_LONG] &=
				BITMAP_LAST_WORD_MASK(old_regions);
		atomic64_set(&v->dirty, bitmap_weight(v->bitmap, old_regions));
	} else {
		DMINFO("%s: volume %u grew from %llu to %llu sectors%s",
		       g->name, v->index, (u64)old_sectors, (u64)sectors,
		       added ? ": its new regions are dirty" : "");
	}
	mutex_unlock(&g->lock);
	mutex_unlock(&g->apply.lock);
	mutex_unlock(&g->resync.lock);
	if (!r) {
		kvfree(rt->grow_bitmap);
		kvfree(rt->grow_syncing);
		rt->grow_bitmap = NULL;
		rt->grow_syncing = NULL;
	}
	return r;
}

/*
 * A target of the volume resumes (or stops being live). Under g->lock, as
 * role changes check that none is: a resume waits for a role change in
 * progress, and its bios are mapped under the new role.
 */
void repl_volume_set_active(struct repl_target *rt, bool active)
{
	struct repl_group *g = rt->vol->group;

	mutex_lock(&g->lock);
	if (rt->active != active) {
		rt->active = active;
		if (active)
			atomic_inc(&rt->vol->active);
		else
			atomic_dec(&rt->vol->active);
	}
	mutex_unlock(&g->lock);
}

/*
 * The group is behind, for @why (DM_REPL_BEHIND_*): the reason before the
 * state, so that whoever sees the state sees a reason (resync.c
 * maybe_uptodate() takes them back together).
 */
void repl_group_behind(struct repl_group *g, u32 why)
{
	atomic_or(why, &g->behind_why);
	/* The reason and the caller's dirty counts before the state. */
	smp_mb__before_atomic();
	set_bit(REPL_BEHIND, &g->flags);
}

/* Mark every region that [sector, sector + nbytes) touches. Atomic context. */
void repl_volume_mark_dirty(struct repl_volume *v, sector_t sector,
			    u32 nbytes, u32 why)
{
	sector_t last = sector + max_t(u32, nbytes >> SECTOR_SHIFT, 1) - 1;
	unsigned long r, end;

	end = min_t(unsigned long, last >> v->region_shift, v->nr_regions - 1);
	for (r = sector >> v->region_shift; r <= end; r++)
		if (!test_and_set_bit(r, v->bitmap))
			atomic64_inc(&v->dirty);
	/* The count before the state: a resync that clears BEHIND sees it. */
	repl_group_behind(v->group, why);
}

/* Room was freed in the ring: let writers waiting under overflow block go. */
void repl_group_released(struct repl_group *g)
{
	wake_up_all(&g->room_wait);
	repl_resync_released(g);
	repl_group_extend_lease(g);
	if (READ_ONCE(g->role) == DM_REPL_ROLE_PRIMARY &&
	    repl_ring_emit_gap(&g->ring))
		repl_group_notify_now(g);
}

/*
 * Raise the bound of the stream's sequences in every superblock before the
 * ring may use it (see REPL_SEQ_LEASE). Process context.
 */
void repl_group_extend_lease(struct repl_group *g)
{
	struct repl_volume *v;
	unsigned int i;
	u64 limit;
	int r = 0;

	if (!repl_ring_lease_low(&g->ring, &limit))
		return;
	mutex_lock(&g->lock);
	if (g->role != DM_REPL_ROLE_PRIMARY ||
	    !repl_ring_lease_low(&g->ring, &limit))
		goto out;
	for (i = 0; i < DM_REPL_MAX_VOLUMES; i++) {
		v = g->volumes[i];
		if (!v)
			continue;
		v->sb->seq_next = cpu_to_le64(limit);
		r = repl_meta_write_sb(v->meta_bdev, v) ?: r;
	}
	if (!r)
		repl_ring_set_limit(&g->ring, limit);
	else
		DMERR_LIMIT("%s: cannot raise the sequence bound in every superblock (%d)",
		      g->name, r);
out:
	mutex_unlock(&g->lock);
}

/*
 * A new current generation (0: none); the current one, unless none, goes
 * to the history, whose oldest drops out. Caller holds g->apply.lock and
 * g->lock, and writes the superblocks.
 */
void repl_group_push_gen(struct repl_group *g, u64 gen)
{
	if (g->gen_current) {
		memmove(&g->gen_history[1], &g->gen_history[0],
			sizeof(g->gen_history) - sizeof(g->gen_history[0]));
		g->gen_history[0] = g->gen_current;
	}
	WRITE_ONCE(g->gen_current, gen);
}
