// SPDX-License-Identifier: GPL-2.0
/*
 * Role changes of a group: "role primary|secondary [force]", a message to
 * any of its volumes, changes the whole group.
 *
 * Demotion (primary to secondary) is refused while a volume is open (its
 * writer would see its writes fail) and while the ring holds records the
 * consumer has not released (the replica lacks them); "force" marks those
 * records' regions dirty first. The demoted group applies what comes next
 * from applied_seq = its last sequence, so that after a planned failover
 * (everything released, that is applied on the peer) the promoted peer's
 * records continue the same sequence.
 *
 * Promotion (secondary to primary) is refused while a resync is under way
 * (the data is inconsistent) unless forced; the ring goes on from
 * applied_seq + 1 and a new generation identifier begins, the old one going
 * to the history.
 *
 * Either way the superblocks say the new role before the message returns,
 * and the volumes' disks become read-only (secondary) or writable.
 *
 * "source <group>" names the primary group whose records a secondary
 * applies (after a failover, the peer's group).
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

static bool volume_open(const struct repl_volume *v)
{
	return atomic_read(&dm_disk(v->md)->part0->bd_openers);
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
	if (g->apply.inconsistent && !force) {
		DMWARN("%s: cannot become primary: a resync is under way and the data is inconsistent; \"role primary force\" promotes it anyway",
		       g->name);
		return -EBUSY;
	}
	return 0;
}

/* Caller holds g->lock and g->apply.lock. */
static void demote(struct repl_group *g)
{
	struct repl_apply *a = &g->apply;
	struct repl_ring *ring = &g->ring;
	unsigned long flags;
	unsigned int i;
	u64 last;

	for (i = 0; i < DM_REPL_MAX_VOLUMES; i++) {
		if (!g->volumes[i])
			continue;
		repl_ring_mark_unreleased(ring, g->volumes[i]);
		g->volumes[i]->joined = true;
	}
	last = repl_ring_last_seq(ring);
	repl_ring_restart(ring, last + 1, ring->epoch);

	spin_lock_irqsave(&a->stat_lock, flags);
	a->applied_seq = last;
	a->applied_epoch = 0;
	a->next_epoch = ring->epoch;
	a->nr_joined = g->nr_volumes;
	a->inconsistent = false;
	strscpy(a->source, g->name, sizeof(a->source));
	a->source_tag = g->ring.group_tag;
	spin_unlock_irqrestore(&a->stat_lock, flags);
}

/* A new generation for every volume; the current one goes to the history. */
static void new_generation(struct repl_volume *v)
{
	struct dm_repl_meta_sb *sb = v->sb;

	memmove(&sb->gen_history[1], &sb->gen_history[0],
		sizeof(sb->gen_history) - sizeof(sb->gen_history[0]));
	sb->gen_history[0] = sb->gen_current;
	do {
		v->gen_current = get_random_u64();
	} while (!v->gen_current);
	sb->gen_current = cpu_to_le64(v->gen_current);
}

/* Caller holds g->lock and g->apply.lock. */
static void promote(struct repl_group *g)
{
	struct repl_apply *a = &g->apply;
	u64 epoch = a->next_epoch ?: a->applied_epoch + 1;
	unsigned int i;

	repl_ring_restart(&g->ring, max(a->applied_seq + 1, g->ring.next_seq),
			  max(epoch, g->ring.epoch));
	for (i = 0; i < DM_REPL_MAX_VOLUMES; i++)
		if (g->volumes[i])
			new_generation(g->volumes[i]);
}

static int persist_role(struct repl_group *g, unsigned int role)
{
	struct repl_volume *v;
	unsigned int i;
	int r = 0;

	for (i = 0; i < DM_REPL_MAX_VOLUMES; i++) {
		v = g->volumes[i];
		if (!v)
			continue;
		v->sb->role = cpu_to_le32(role);
		v->sb->applied_seq = cpu_to_le64(g->apply.applied_seq);
		/*
		 * The dirty bits first (a forced demotion just set some): a
		 * secondary that crashes takes its bitmap from the disk.
		 */
		r = repl_meta_save_bitmap(v) ?:
		    repl_meta_write_sb(v->meta_bdev, v) ?: r;
		set_disk_ro(dm_disk(v->md), role == DM_REPL_ROLE_SECONDARY);
	}
	if (r)
		DMERR("%s: cannot write the new role to every superblock (%d)",
		      g->name, r);
	return r;
}

/* Caller holds g->apply.lock and repl_groups_lock. */
static int change_role(struct repl_group *g, unsigned int role, bool force)
{
	int r;

	mutex_lock(&g->lock);
	if (role == DM_REPL_ROLE_SECONDARY)
		r = may_demote(g, force);
	else
		r = may_promote(g, force);
	if (r)
		goto out;
	if (role == DM_REPL_ROLE_SECONDARY)
		demote(g);
	else
		promote(g);
	WRITE_ONCE(g->role, role);
	r = persist_role(g, role);
	DMINFO("%s: role %s%s", g->name,
	       role == DM_REPL_ROLE_PRIMARY ? "primary" : "secondary",
	       force ? " (forced)" : "");
out:
	mutex_unlock(&g->lock);
	return r;
}

int repl_role_message(struct repl_group *g, unsigned int argc, char **argv)
{
	unsigned int role;
	bool force;
	int r;

	if (parse_role_message(argc, argv, &role, &force)) {
		DMWARN("%s: usage: role primary|secondary [force]", g->name);
		return -EINVAL;
	}
	/* No batch runs, no volume comes or goes, meanwhile. */
	mutex_lock(&g->apply.lock);
	mutex_lock(&repl_groups_lock);
	r = role == g->role ? 0 : change_role(g, role, force);
	mutex_unlock(&repl_groups_lock);
	mutex_unlock(&g->apply.lock);
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
