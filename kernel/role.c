// SPDX-License-Identifier: GPL-2.0
/*
 * Role changes of a group: "role primary|secondary [force]", a message to
 * any of its volumes, changes the whole group.
 *
 * Demotion (primary to secondary) is refused while a volume is open (its
 * writer would see its writes fail) and while the ring holds records the
 * consumer has not released (the replica lacks them); "force" marks those
 * records' regions dirty first. The data devices are flushed before the
 * superblocks say secondary. The demoted group applies what comes next
 * from applied_seq = its last sequence, so that after a planned failover
 * (everything released, that is applied on the peer) the promoted peer's
 * records continue the same sequence.
 *
 * Promotion (secondary to primary) is refused while a resync is under way
 * (the data is inconsistent) unless forced; the ring goes on from
 * applied_seq + 1 and the group draws a new generation identifier, the old
 * one (unless none) going to the history.
 *
 * Either way every volume of the group must be suspended (no bio mapped
 * under one role completes under the other), the superblocks say the new
 * role before the message returns, and the volumes' disks become
 * read-only (secondary) or writable.
 *
 * "source <group>" names the primary group whose records a secondary
 * applies (after a failover, the peer's group).
 *
 * "rejoin" makes a secondary take the next stream it is given, whatever it
 * is (a primary that was demoted by force, or whose peer was promoted past
 * it, has a stream of its own the new primary's does not follow). It needs
 * no suspension: no bio is mapped differently (the volumes stay read-only)
 * and batches are held off by apply.lock. DM_REPL_IOC_ADOPT_GEN sets the
 * generations a secondary takes from its primary.
 */
#include <linux/blkdev.h>
#include <linux/random.h>

#include "repl.h"

static int parse_role_message(unsigned int argc, char **argv,
			      unsigned int *role, bool *force)
{
	if (argc < 2 || argc > 3)
		return -EINVAL;
	if (!strcasecmp(argv[1], "primary"))
		*role = DM_REPL_ROLE_PRIMARY;
	else if (!strcasecmp(argv[1], "secondary"))
		*role = DM_REPL_ROLE_SECONDARY;
	else
		return -EINVAL;
	*force = argc == 3;
	return argc == 3 && strcasecmp(argv[2], "force") ? -EINVAL : 0;
}

static const char *role_name(unsigned int role)
{
	return role == DM_REPL_ROLE_PRIMARY ? "primary" : "secondary";
}

static bool volume_open(const struct repl_volume *v)
{
	return atomic_read(&dm_disk(v->md)->part0->bd_openers);
}

/*
 * No bio may be mapped under one role and completed under the other: every
 * volume's device is suspended (its bios all completed) for the change.
 * Caller holds g->lock.
 */
static int all_suspended(struct repl_group *g, const char *to)
{
	unsigned int i;

	for (i = 0; i < DM_REPL_MAX_VOLUMES; i++) {
		if (g->volumes[i] && atomic_read(&g->volumes[i]->active)) {
			DMWARN("%s: cannot become %s: volume %u is not suspended (dmsetup suspend every volume of the group first)",
			       g->name, to, i);
			return -EBUSY;
		}
	}
	return 0;
}

/* Caller holds g->lock. */
static int may_demote(struct repl_group *g, bool force)
{
	u64 unreleased = repl_ring_last_seq(&g->ring) -
			 READ_ONCE(g->ring.ctl->released_seq);
	unsigned int i;

	for (i = 0; i < DM_REPL_MAX_VOLUMES; i++) {
		if (g->volumes[i] && volume_open(g->volumes[i])) {
			DMWARN("%s: cannot become secondary: volume %u is open",
			       g->name, i);
			return -EBUSY;
		}
	}
	if (unreleased && !force) {
		DMWARN("%s: cannot become secondary: %llu records not released (the replica lacks them); \"role secondary force\" marks them dirty",
		       g->name, unreleased);
		return -EBUSY;
	}
	return 0;
}

static int may_promote(struct repl_group *g, bool force)
{
	struct repl_apply *a = &g->apply;

	if (force)
		return 0;
	if (a->inconsistent && a->seeded) {
		DMWARN("%s: cannot become primary: seeded and not yet verified equal to the primary, the data is inconsistent; \"role primary force\" promotes it anyway",
		       g->name);
		return -EBUSY;
	}
	if (a->inconsistent) {
		DMWARN("%s: cannot become primary: a resync is under way and the data is inconsistent; \"role primary force\" promotes it anyway",
		       g->name);
		return -EBUSY;
	}
	if (a->outdated) {
		DMWARN("%s: cannot become primary: the replica is outdated past a gap in the stream at seq %llu (last consistent at seq %llu) and needs a resync; \"role primary force\" promotes it anyway",
		       g->name, a->applied_seq, a->consistent_seq);
		return -EBUSY;
	}
	return 0;
}

/*
 * A secondary's load recovers no activity log: what the primary wrote must
 * be durable on its data devices before its superblocks say secondary, or
 * a power loss could take writes the replica has (released) while this
 * copy claims their sequence. Caller holds g->lock.
 */
static int flush_data_devices(struct repl_group *g)
{
	unsigned int i;
	int r;

	for (i = 0; i < DM_REPL_MAX_VOLUMES; i++) {
		if (!g->volumes[i])
			continue;
		r = blkdev_issue_flush(g->volumes[i]->data_bdev);
		if (r) {
			DMERR("%s: cannot become secondary: volume %u: cannot flush its data device (%d)",
			      g->name, i, r);
			return r;
		}
	}
	return 0;
}

/*
 * The demotion's flush before its locks. change_role() flushes under
 * repl_groups_lock, which every group's table loads and removals take: a
 * data device that hangs there (multipath queueing with no path left)
 * would hold them all back. This flush comes first, with only the group's
 * flush_lock held (no volume goes meanwhile): a device that hangs then
 * holds back this group alone, and the flush under the locks finds only
 * what came since. Its errors are that flush's to report.
 */
static void flush_data_devices_early(struct repl_group *g)
{
	struct block_device *bdevs[DM_REPL_MAX_VOLUMES];
	unsigned int i, n = 0;

	mutex_lock(&g->resync.flush_lock);
	mutex_lock(&g->lock);
	for (i = 0; i < DM_REPL_MAX_VOLUMES; i++)
		if (g->volumes[i])
			bdevs[n++] = g->volumes[i]->data_bdev;
	mutex_unlock(&g->lock);
	while (n--)
		blkdev_issue_flush(bdevs[n]);
	mutex_unlock(&g->resync.flush_lock);
}

/*
 * The copy takes another stream, whose numbering may be lower: what it
 * listed of the old one goes (the mismatches a verify found, which a pass
 * of the new one would take for its own; the markers applied, recovery
 * points of data it no longer holds). Caller holds a->stat_lock.
 */
static void forget_old_stream(struct repl_apply *a)
{
	repl_verify_forget(&a->verify);
	a->nr_markers = 0;
}

/*
 * Caller holds g->resync.lock (no resync runs), g->apply.lock and g->lock,
 * and flushed the data devices.
 */
static void demote(struct repl_group *g)
{
	struct repl_apply *a = &g->apply;
	struct repl_ring *ring = &g->ring;
	unsigned long flags;
	unsigned int i;
	u64 last, stream;
	bool gap_owed;

	for (i = 0; i < DM_REPL_MAX_VOLUMES; i++) {
		if (!g->volumes[i])
			continue;
		repl_ring_mark_unreleased(ring, g->volumes[i]);
		g->volumes[i]->joined = true;
	}
	repl_resync_drop(g, READ_ONCE(ring->ctl->released_seq));
	last = repl_ring_last_seq(ring);
	stream = repl_ring_applied_stream(ring, &gap_owed);
	repl_ring_restart(ring, last + 1, ring->epoch);

	spin_lock_irqsave(&a->stat_lock, flags);
	a->applied_seq = last;
	a->applied_stream = stream;
	a->applied_time_ns = 0;
	a->applied_epoch = 0;
	a->next_epoch = ring->epoch;
	a->nr_joined = g->nr_volumes;
	a->inconsistent = false;
	a->seeded = false;
	a->rejoin = false;
	a->run.valid = false;
	forget_old_stream(a);
	/*
	 * Writes only in the bitmap (an overflow, a forced demotion) are not
	 * on the peer: this copy is not one of the peer's states.
	 */
	a->outdated = test_bit(REPL_BEHIND, &g->flags) || gap_owed;
	a->consistent_seq = 0;
	a->consistent_time_ns = 0;
	strscpy(a->source, g->name, sizeof(a->source));
	a->source_tag = g->ring.group_tag;
	spin_unlock_irqrestore(&a->stat_lock, flags);
}

/* Caller holds g->resync.lock (no resync runs), g->apply.lock and g->lock. */
static void promote(struct repl_group *g)
{
	struct repl_apply *a = &g->apply;
	u64 epoch = a->next_epoch ?: a->applied_epoch + 1;
	u64 prev[DM_REPL_STREAM_HISTORY] = { a->applied_stream };
	unsigned int i;
	u64 gen;

	/*
	 * The new stream goes on from what this copy applied, whatever its
	 * ring numbered before (a crash's lease bound, an older stream of its
	 * own: its old primary would refuse a jump). A forced promotion of a
	 * copy that is not whole says so.
	 */
	repl_ring_new_stream(&g->ring, a->applied_seq + 1,
			     max(epoch, g->ring.epoch), prev,
			     a->inconsistent || a->outdated);
	/*
	 * Nothing may wait for a release of the old numbering: a removed
	 * volume's last record, an extent's last write (all released, or
	 * marked dirty, when the ring was dropped).
	 */
	memset(g->index_last_seq, 0, sizeof(g->index_last_seq));
	for (i = 0; i < DM_REPL_MAX_VOLUMES; i++)
		if (g->volumes[i])
			repl_al_forget_seqs(g->volumes[i]);
	/* One new generation for the group, written with the new role. */
	do {
		gen = get_random_u64();
	} while (!gen);
	repl_group_push_gen(g, gen);
}

static int persist_role(struct repl_group *g, unsigned int role)
{
	struct repl_apply_point point;
	struct repl_volume *v;
	unsigned int i;
	int r = 0;

	repl_apply_point(&g->apply, &point);
	if (role == DM_REPL_ROLE_PRIMARY)
		point = (struct repl_apply_point) {
			.applied_seq = g->apply.applied_seq,
		};
	for (i = 0; i < DM_REPL_MAX_VOLUMES; i++) {
		v = g->volumes[i];
		if (!v)
			continue;
		v->sb->role = cpu_to_le32(role);
		repl_apply_to_sb(&point, v->sb);
		if (role == DM_REPL_ROLE_PRIMARY) {
			v->sb->released_seq =
				cpu_to_le64(READ_ONCE(g->ring.ctl->released_seq));
			repl_ring_to_sb(&g->ring, v->sb);
		}
		/*
		 * The dirty bits first (a forced demotion just set some): a
		 * secondary that crashes takes its bitmap from the disk.
		 */
		r = repl_meta_save_bitmap(v) ?:
		    repl_meta_write_sb(v->meta_bdev, v) ?: r;
		set_disk_ro(dm_disk(v->md), role == DM_REPL_ROLE_SECONDARY);
	}
	WRITE_ONCE(g->role_unsaved, r != 0);
	if (r)
		DMERR("%s: cannot write the new role to every superblock (%d); the message, repeated with every volume suspended, writes them again",
		      g->name, r);
	return r;
}

/* Caller holds g->lock. What a role change checks before it flushes. */
static int may_change_role(struct repl_group *g, unsigned int role, bool force)
{
	if (role == DM_REPL_ROLE_PRIMARY)
		return all_suspended(g, "primary") ?: may_promote(g, force);
	return all_suspended(g, "secondary") ?: may_demote(g, force);
}

/*
 * The group has the role already, but a superblock may say the old one: a
 * reboot must not bring the old role back. Suspended as for a role change:
 * the bitmap's save is not ordered with a live primary's activity log
 * (repl_al_save_regions()). Other superblock writes (a batch, a removal)
 * may have saved the role meanwhile; the flag stays until this writes them
 * all. Caller holds the locks change_role() is called with.
 */
static int resave_role(struct repl_group *g)
{
	int r = 0;

	mutex_lock(&g->lock);
	if (g->role_unsaved) {
		r = all_suspended(g, role_name(g->role)) ?:
		    persist_role(g, g->role);
		if (!r)
			DMINFO("%s: role %s written again", g->name,
			       role_name(g->role));
	}
	mutex_unlock(&g->lock);
	return r;
}

/* Caller holds g->resync.lock, g->apply.lock and repl_groups_lock. */
static int change_role(struct repl_group *g, unsigned int role, bool force)
{
	int r;

	mutex_lock(&g->lock);
	r = may_change_role(g, role, force);
	if (!r && role == DM_REPL_ROLE_SECONDARY)
		r = flush_data_devices(g);
	if (r)
		goto out;
	if (role == DM_REPL_ROLE_SECONDARY)
		demote(g);
	else
		promote(g);
	repl_resync_renumbered(g);
	WRITE_ONCE(g->role_unsaved, true);
	/* Unsaved before it shows: a message seeing the role waits for this. */
	smp_store_release(&g->role, role);
	DMINFO("%s: role %s%s", g->name, role_name(role),
	       force ? " (forced)" : "");
	r = persist_role(g, role);
out:
	mutex_unlock(&g->lock);
	return r;
}

int repl_role_message(struct repl_group *g, unsigned int argc, char **argv)
{
	unsigned int role;
	bool force, changing, retry;
	int r = 0;

	if (parse_role_message(argc, argv, &role, &force)) {
		DMWARN("%s: usage: role primary|secondary [force]", g->name);
		return -EINVAL;
	}
again:
	/*
	 * Already so and saved: no lock, so no wait behind a resync's read
	 * that hangs. Unsaved, it takes them: the save may be under way.
	 */
	changing = smp_load_acquire(&g->role) != role;
	if (!changing) {
		if (!READ_ONCE(g->role_unsaved))
			return 0;
	} else if (role == DM_REPL_ROLE_SECONDARY) {
		/* Refused now: at once, not after a flush (which may hang). */
		mutex_lock(&g->lock);
		r = may_change_role(g, role, force);
		mutex_unlock(&g->lock);
		if (r)
			return r;
		flush_data_devices_early(g);
	}
	/* No resync nor batch runs, no volume comes or goes, meanwhile. */
	mutex_lock(&g->resync.lock);
	mutex_lock(&g->apply.lock);
	mutex_lock(&repl_groups_lock);
	/* Changed meanwhile by another message: checked early, as above. */
	retry = role != g->role && !changing;
	if (!retry)
		r = role == g->role ? resave_role(g) :
		    change_role(g, role, force);
	mutex_unlock(&repl_groups_lock);
	mutex_unlock(&g->apply.lock);
	mutex_unlock(&g->resync.lock);
	if (retry)
		goto again;
	return r;
}

int repl_source_message(struct repl_group *g, unsigned int argc, char **argv)
{
	struct repl_apply *a = &g->apply;
	unsigned long flags;
	int r = 0;

	if (argc != 2 || !repl_group_name_valid(argv[1])) {
		DMWARN("%s: usage: source <group>", g->name);
		return -EINVAL;
	}
	mutex_lock(&a->lock);
	if (g->role != DM_REPL_ROLE_SECONDARY) {
		DMWARN("%s: source applies to role secondary only", g->name);
		r = -EPERM;
	} else {
		spin_lock_irqsave(&a->stat_lock, flags);
		strscpy(a->source, argv[1], sizeof(a->source));
		a->source_tag = repl_group_tag(a->source);
		spin_unlock_irqrestore(&a->stat_lock, flags);
	}
	mutex_unlock(&a->lock);
	return r;
}

/* Caller holds g->apply.lock and g->lock. */
static int write_all_sb(struct repl_group *g, const char *what)
{
	unsigned int i;
	int r = 0;

	for (i = 0; i < DM_REPL_MAX_VOLUMES; i++) {
		if (g->volumes[i] &&
		    repl_meta_write_sb(g->volumes[i]->meta_bdev, g->volumes[i])) {
			DMERR("%s: volume %u: cannot write %s to its superblock",
			      g->name, i, what);
			r = -EIO;
		}
	}
	return r;
}

/*
 * The first record of the next batch is taken at any stream and sequence;
 * until a resync ends, the data mixes this site's own writes with the
 * primary's (the dirty bitmap, kept, names the former), and no earlier
 * consistent state of the old stream holds. Caller holds g->apply.lock and
 * g->lock.
 */
static int begin_rejoin(struct repl_group *g)
{
	struct repl_apply *a = &g->apply;
	struct repl_apply_point point;
	unsigned long flags;
	unsigned int i;

	spin_lock_irqsave(&a->stat_lock, flags);
	a->rejoin = true;
	a->run.valid = false;
	forget_old_stream(a);
	a->inconsistent = true;
	a->seeded = false;
	a->outdated = false;
	a->consistent_seq = 0;
	a->consistent_time_ns = 0;
	a->applied_stream = 0;
	spin_unlock_irqrestore(&a->stat_lock, flags);
	repl_group_push_gen(g, 0);
	repl_apply_point(a, &point);
	/*
	 * A volume still joining keeps its own (lower) apply point: it is
	 * what the group resumes from when it joins.
	 */
	for (i = 0; i < DM_REPL_MAX_VOLUMES; i++)
		if (g->volumes[i] && g->volumes[i]->joined)
			repl_apply_to_sb(&point, g->volumes[i]->sb);
	DMINFO("%s: rejoin: the next stream given is taken", g->name);
	return write_all_sb(g, "the rejoin");
}

int repl_rejoin_message(struct repl_group *g, unsigned int argc, char **argv)
{
	int r;

	if (argc != 1) {
		DMWARN("%s: usage: rejoin", g->name);
		return -EINVAL;
	}
	mutex_lock(&g->apply.lock);
	mutex_lock(&g->lock);
	if (g->role != DM_REPL_ROLE_SECONDARY) {
		DMWARN("%s: cannot rejoin: not a secondary", g->name);
		r = -EPERM;
	} else {
		r = begin_rejoin(g);
	}
	mutex_unlock(&g->lock);
	mutex_unlock(&g->apply.lock);
	return r;
}

/* DM_REPL_IOC_ADOPT_GEN, its fields checked. */
int repl_adopt_gen(struct repl_group *g, const struct dm_repl_gen *gen)
{
	unsigned int i;
	int r;

	BUILD_BUG_ON(ARRAY_SIZE(gen->gen_history) != DM_REPL_META_GEN_HISTORY);
	mutex_lock(&g->apply.lock);
	mutex_lock(&g->lock);
	if (g->role != DM_REPL_ROLE_SECONDARY) {
		r = -EPERM;
		goto out;
	}
	WRITE_ONCE(g->gen_current, gen->gen_current);
	for (i = 0; i < DM_REPL_META_GEN_HISTORY; i++)
		g->gen_history[i] = gen->gen_history[i];
	r = write_all_sb(g, "the adopted generations");
out:
	mutex_unlock(&g->lock);
	mutex_unlock(&g->apply.lock);
	return r;
}

/*
 * Marked and inconsistent, on disk in that order: a crash between the two
 * leaves a replica that connects as clean with writes of its own, which
 * its primary refuses, never one that says inconsistent with nothing to
 * resend, which the next RESYNC_END would end while the range still
 * differs. In memory both hold at once, even if a write fails: the next
 * bitmap save and the next batch's superblocks carry them. Caller holds
 * g->apply.lock and g->lock.
 */
static int mark_range(struct repl_group *g, struct repl_volume *v,
		      const struct dm_repl_mark_req *req)
{
	struct repl_apply *a = &g->apply;
	struct repl_apply_point point;
	unsigned long flags, region;
	unsigned long first = req->sector >> v->region_shift;
	unsigned long last = (req->sector + req->nr_sectors - 1) >> v->region_shift;
	unsigned int i;
	int r;

	for (region = first; region <= last; region++) {
		if (!test_and_set_bit(region, v->bitmap))
			atomic64_inc(&v->dirty);
		if (!(region % 4096))
			cond_resched();
	}
	repl_group_behind(g, DM_REPL_BEHIND_MARKED);
	/* Whatever reaches the disk, this replica differs there: it says so. */
	spin_lock_irqsave(&a->stat_lock, flags);
	a->inconsistent = true;
	spin_unlock_irqrestore(&a->stat_lock, flags);
	r = repl_meta_save_regions(v, first, last);
	if (r) {
		DMERR("%s: volume %u: cannot save the marked regions: %d",
		      g->name, v->index, r);
		return r;
	}
	repl_apply_point(a, &point);
	for (i = 0; i < DM_REPL_MAX_VOLUMES; i++)
		if (g->volumes[i] && g->volumes[i]->joined)
			repl_apply_to_sb(&point, g->volumes[i]->sb);
	DMINFO("%s: volume %u: sectors %llu+%llu marked to be resent by the primary: inconsistent",
	       g->name, v->index, (unsigned long long)req->sector,
	       (unsigned long long)req->nr_sectors);
	return write_all_sb(g, "the mark");
}

/* DM_REPL_IOC_MARK, its fixed fields checked. */
int repl_mark(struct repl_group *g, const struct dm_repl_mark_req *req)
{
	struct repl_volume *v;
	int r;

	mutex_lock(&g->apply.lock);
	mutex_lock(&g->lock);
	v = req->volume < DM_REPL_MAX_VOLUMES ? g->volumes[req->volume] : NULL;
	if (g->role != DM_REPL_ROLE_SECONDARY)
		r = -EPERM;
	else if (!v)
		r = -ENOENT;
	else if (!v->joined)
		r = -EBUSY;
	else if (!req->nr_sectors || req->sector >= v->sectors ||
		 req->nr_sectors > v->sectors - req->sector)
		r = -EINVAL;
	else
		r = mark_range(g, v, req);
	mutex_unlock(&g->lock);
	mutex_unlock(&g->apply.lock);
	return r;
}
