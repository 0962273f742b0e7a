// SPDX-License-Identifier: GPL-2.0
/*
 * Resync of a primary's dirty regions: DM_REPL_IOC_RESYNC puts one region
 * in the ring as RESYNC records carrying its data, read from the data device.
 *
 * The order that keeps this right while the VM goes on writing into the
 * region (Documentation/dm-repl.md, "Resync"):
 *  1. the region's bit moves from the dirty bitmap to the syncing one (set
 *     there first, so that a bitmap save never sees it in neither);
 *  2. a RESYNC record is reserved: it takes sequence S;
 *  3. every write with a record before S completes (no BUSY slot before
 *     it), and so does every write that went to the bitmap before step 1
 *     (the overflowing counters, their phase flipped after step 2);
 *  4. the region is read, copied into the record, and the record committed.
 * The replica applies in sequence order: a write before S was on the disk
 * when the region was read, so the record holds it; a write after S comes
 * after the record in the stream; a write that overflows after step 1 sets
 * the dirty bit again. The syncing bit goes when the consumer has released
 * S, that is, when the replica made the record durable, and the data device
 * was flushed after that (resync_save_work()); if that flush fails, the
 * region is dirty again first.
 */
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/highmem.h>
#include <linux/vmalloc.h>

#include "repl.h"

static void resync_save_work(struct work_struct *work);

/* The longest a volume's resync is held (resync_hold()). */
#define REPL_RESYNC_HOLD_MAX	(300 * HZ)

void repl_resync_init(struct repl_group *g)
{
	/* DM_REPL_IOC_GROUP_INFO's departed_volumes is one word of it. */
	BUILD_BUG_ON(DM_REPL_MAX_VOLUMES > BITS_PER_LONG);
	mutex_init(&g->resync.lock);
	mutex_init(&g->resync.flush_lock);
	spin_lock_init(&g->resync.entries_lock);
	spin_lock_init(&g->resync.phase_lock);
	init_waitqueue_head(&g->resync.overflow_wait);
	INIT_WORK(&g->resync.save_work, resync_save_work);
}

/*
 * A write goes to the bitmap: counted in flight before its bits are set, so
 * that a resync that clears them after can wait for its data to land. The
 * phase is read and the write counted at once, under phase_lock: a resync
 * that flips the phase after it waits for the write.
 */
void repl_resync_overflow_start(struct repl_group *g, struct repl_io *io)
{
	struct repl_resync *rs = &g->resync;
	unsigned long flags;

	spin_lock_irqsave(&rs->phase_lock, flags);
	io->overflow_phase = 1 + rs->phase;
	atomic_inc(&rs->overflowing[rs->phase]);
	/* Its bits are set after the unlock, so after the count is seen. */
	spin_unlock_irqrestore(&rs->phase_lock, flags);
}

/* At the write's completion (any context). */
void repl_resync_overflow_end(struct repl_group *g, struct repl_io *io)
{
	if (!io->overflow_phase)
		return;
	if (atomic_dec_and_test(&g->resync.overflowing[io->overflow_phase - 1]))
		wake_up_all(&g->resync.overflow_wait);
	io->overflow_phase = 0;
}

/*
 * Every write that went to the bitmap before now has completed. First those
 * of the other phase, which a wait that was interrupted may have left.
 */
static int wait_overflowing(struct repl_resync *rs)
{
	unsigned int old;
	int r;

	r = wait_event_killable(rs->overflow_wait,
				!atomic_read(&rs->overflowing[!rs->phase]));
	if (r)
		return r;
	spin_lock_irq(&rs->phase_lock);
	old = rs->phase;
	rs->phase = !old;
	spin_unlock_irq(&rs->phase_lock);
	return wait_event_killable(rs->overflow_wait,
				   !atomic_read(&rs->overflowing[old]));
}

static struct repl_resync_entry *entry(struct repl_resync *rs, unsigned int i)
{
	return &rs->unreleased[(rs->head + i) % REPL_RESYNC_UNRELEASED];
}

/* Caller holds entries_lock. Is the region in an entry from the i-th on? */
static bool still_syncing(struct repl_resync *rs, unsigned int i,
			  const struct repl_resync_entry *e)
{
	for (; i < rs->nr; i++)
		if (entry(rs, i)->vol == e->vol && entry(rs, i)->region == e->region)
			return true;
	return false;
}

/* Regions released and not yet taken out by save_work (status). */
u64 repl_resync_releasing(struct repl_group *g)
{
	struct repl_resync *rs = &g->resync;
	u64 released = READ_ONCE(g->ring.ctl->released_seq);
	unsigned long flags;
	unsigned int i;

	spin_lock_irqsave(&rs->entries_lock, flags);
	for (i = 0; i < rs->nr && entry(rs, i)->seq <= released; i++)
		;
	spin_unlock_irqrestore(&rs->entries_lock, flags);
	return i;
}

/* Caller holds entries_lock. Has the head entry's record been released? */
static bool head_released(struct repl_resync *rs, u64 released)
{
	return rs->nr && entry(rs, 0)->seq <= released;
}

/*
 * The consumer released records: save_work takes the regions it completed
 * out of the resync. Nothing else here, so a release waits for no I/O.
 */
void repl_resync_released(struct repl_group *g)
{
	struct repl_resync *rs = &g->resync;
	u64 released = READ_ONCE(g->ring.ctl->released_seq);
	unsigned long flags;
	bool any;

	spin_lock_irqsave(&rs->entries_lock, flags);
	any = head_released(rs, released);
	spin_unlock_irqrestore(&rs->entries_lock, flags);
	/* Not on repl_wq: the work waits for locks whose holders may wait for repl_wq's. */
	if (any)
		queue_work(system_unbound_wq, &rs->save_work);
}

/* What save_work's flush did, by volume index (bit N: index N). */
struct resync_flushed {
	unsigned long vols;		/* flushed, or tried */
	unsigned long failed;		/* of those, failed */
	unsigned long held;		/* of those, newly held (resync_hold()) */
};

/*
 * Caller holds rs->flush_lock: no volume goes (its removal takes it).
 * Flush the data devices of the volumes whose entries are
 * released: the replica has those regions as the resync read them, perhaps
 * from a device's volatile cache, and their bits may go clean on disk only
 * once the data is durable here too. An entry a resync closes after this
 * look may be released by @released too: its volume may not be in @f.
 */
static void flush_released(struct repl_group *g, u64 released, struct resync_flushed *f)
{
	struct repl_resync *rs = &g->resync;
	unsigned long flags;
	unsigned int i;
	int r;

	*f = (struct resync_flushed) { 0 };
	spin_lock_irqsave(&rs->entries_lock, flags);
	for (i = 0; i < rs->nr && entry(rs, i)->seq <= released; i++)
		__set_bit(entry(rs, i)->vol->index, &f->vols);
	spin_unlock_irqrestore(&rs->entries_lock, flags);
	for_each_set_bit(i, &f->vols, DM_REPL_MAX_VOLUMES) {
		r = blkdev_issue_flush(g->volumes[i]->data_bdev);
		if (r) {
			DMWARN_LIMIT("%s: volume %u: cannot flush its data device (%d): its resynced regions are dirty again",
				     g->name, i, r);
			__set_bit(i, &f->failed);
		}
	}
}

/* Caller holds entries_lock. The entry's region is dirty again. */
static void entry_mark_dirty(const struct repl_resync_entry *e, u32 why)
{
	repl_volume_mark_dirty(e->vol, (sector_t)e->region << e->vol->region_shift,
			       SECTOR_SIZE, why);
}

/* Caller holds entries_lock. Is @u's block in the first @n of @todo? */
static bool block_listed(const struct repl_unsaved_block *todo, unsigned int n,
			 const struct repl_unsaved_block *u)
{
	while (n--)
		if (todo[n].volume == u->volume && todo[n].block == u->block)
			return true;
	return false;
}

/*
 * Caller holds entries_lock. List @e's bitmap block in @todo (@n of them),
 * once; false if it is not there and @todo is full.
 */
static bool list_block(struct repl_resync *rs, const struct repl_resync_entry *e,
		       struct repl_unsaved_block *todo, unsigned int *n)
{
	struct repl_unsaved_block u = {
		.volume = e->vol->index,
		.block = e->region / DM_REPL_BM_BLOCK_BITS,
	};

	if (block_listed(todo, *n, &u))
		return true;
	if (*n == REPL_RESYNC_UNSAVED)
		return false;
	todo[(*n)++] = u;
	atomic64_inc(&rs->unsaved_blocks);
	return true;
}

/* Is @v's resync held (DM_REPL_IOC_GROUP_INFO's resync_held_volumes)? */
bool repl_resync_held(const struct repl_volume *v)
{
	return READ_ONCE(v->flush_failures) &&
	       time_before64(get_jiffies_64(), READ_ONCE(v->resync_hold_until));
}

/* The length of the hold after @failures failures in a row: 1 s, doubling. */
static u64 hold_length(unsigned int failures)
{
	return min_t(u64, (u64)HZ << (min(failures, 10U) - 1), REPL_RESYNC_HOLD_MAX);
}

/*
 * Caller holds rs->lock and entries_lock. @v's data device failed to flush
 * what its resync read, and its regions are dirty again. Sent again at
 * once, they would fail again, and the link would carry them for as long
 * as the device fails: its resync waits, twice as long at each failure in
 * a row. Records sent before a hold that come back during it fail again
 * and lengthen nothing. True if the hold is new.
 */
static bool resync_hold(struct repl_volume *v)
{
	if (repl_resync_held(v))
		return false;
	if (v->flush_failures < UINT_MAX)
		WRITE_ONCE(v->flush_failures, v->flush_failures + 1);
	WRITE_ONCE(v->resync_hold_until,
		   get_jiffies_64() + hold_length(v->flush_failures));
	return true;
}

/* Caller holds rs->lock (the volumes stay): the kernel log names the new holds. */
static void log_holds(struct repl_group *g, unsigned long held)
{
	unsigned int i;

	for_each_set_bit(i, &held, DM_REPL_MAX_VOLUMES)
		DMWARN_LIMIT("%s: volume %u: %u flushes of its data device failed in a row: its resync waits %llu s",
			     g->name, i, g->volumes[i]->flush_failures,
			     hold_length(g->volumes[i]->flush_failures) / HZ);
}

/*
 * Caller holds rs->lock and entries_lock. Forget the entries released (up
 * to @released). A region whose volume's data device flushed leaves
 * syncing, its bitmap block listed in @todo; one whose volume's flush
 * failed is dirty again, before it leaves syncing (as entry_drop()), for a
 * later resync to send again, and its volume's resync is held (@f->held:
 * the new holds). A region resynced again since stays syncing until its
 * last record is released too. Stops when @todo is full, or at an entry
 * whose volume was not flushed (closed after the flush looked): true if so.
 */
static bool take_released(struct repl_resync *rs, u64 released, struct resync_flushed *f,
			  struct repl_unsaved_block *todo, unsigned int *n)
{
	while (head_released(rs, released)) {
		struct repl_resync_entry *e = entry(rs, 0);
		bool cleared = !still_syncing(rs, 1, e);

		if (!test_bit(e->vol->index, &f->vols))
			return true;
		if (test_bit(e->vol->index, &f->failed)) {
			if (resync_hold(e->vol))
				__set_bit(e->vol->index, &f->held);
			entry_mark_dirty(e, DM_REPL_BEHIND_RESYNC_FAILED);
			/* See repl_dirty_word(): the dirty bit is seen before this. */
			smp_mb__before_atomic();
		} else {
			WRITE_ONCE(e->vol->flush_failures, 0);
			if (cleared && !list_block(rs, e, todo, n))
				return true;
		}
		if (cleared)
			clear_bit(e->region, e->vol->syncing);
		rs->head = (rs->head + 1) % REPL_RESYNC_UNRELEASED;
		rs->nr--;
		atomic64_dec(&rs->regions);
	}
	return false;
}

/*
 * Caller holds g->lock (the volume stays, the role too). A volume gone or
 * stepped down saved its whole bitmap then; the index may name a volume
 * that came since, whose block is as well saved.
 */
static void save_block(struct repl_group *g, const struct repl_unsaved_block *u)
{
	struct repl_volume *v = g->volumes[u->volume];
	unsigned long first = (unsigned long)u->block * DM_REPL_BM_BLOCK_BITS;

	if (!v || g->role != DM_REPL_ROLE_PRIMARY || first >= v->nr_regions)
		return;
	/* On failure the disk keeps them dirty: resynced again after a crash. */
	if (repl_al_save_regions(v, first, first))
		DMWARN_LIMIT("%s: volume %u: cannot save bitmap block %u of regions resynced",
			     g->name, v->index, u->block);
	else
		atomic64_inc(&g->resync.saved_blocks);
}

/*
 * The regions whose records the consumer released leave the resync: their
 * data devices flushed, then their syncing bits cleared, then their bitmap
 * blocks written (only those, one at a time): a primary that loses power
 * mid-resync resumes it where the replica is, not at its start. Until the
 * flush every bitmap save writes them dirty; a volume whose flush fails
 * has its regions dirty again, and holds back no other volume's.
 */
static void resync_save_work(struct work_struct *work)
{
	struct repl_resync *rs = container_of(work, struct repl_resync, save_work);
	struct repl_group *g = container_of(rs, struct repl_group, resync);
	struct repl_unsaved_block todo[REPL_RESYNC_UNSAVED];
	struct resync_flushed flushed;
	unsigned int i, n, drops;
	unsigned long flags;
	bool more;
	u64 released;

	do {
		n = 0;
		/*
		 * Nor rs->lock nor g->lock: a resync (repld's loop) and their
		 * other holders (GROUP_INFO, resume) need not wait for a flush.
		 * An entry up to @released was there before it, so a volume
		 * that went meanwhile took its entries, and one that came
		 * since has none.
		 */
		mutex_lock(&rs->flush_lock);
		drops = READ_ONCE(rs->drops);
		/* Pairs with repl_resync_renumbered(): the count, then the point. */
		smp_rmb();
		released = READ_ONCE(g->ring.ctl->released_seq);
		flush_released(g, released, &flushed);
		mutex_unlock(&rs->flush_lock);
		mutex_lock(&rs->lock);
		spin_lock_irqsave(&rs->entries_lock, flags);
		/*
		 * A role change meanwhile dropped the entries, or numbers on
		 * lower: @released may say nothing of the entries now. Again,
		 * then.
		 */
		more = rs->drops != drops ||
		       take_released(rs, released, &flushed, todo, &n);
		spin_unlock_irqrestore(&rs->entries_lock, flags);
		log_holds(g, flushed.held);
		mutex_unlock(&rs->lock);
		for (i = 0; i < n; i++) {
			mutex_lock(&g->lock);
			save_block(g, &todo[i]);
			mutex_unlock(&g->lock);
			atomic64_dec(&rs->unsaved_blocks);
		}
	} while (more);
}

/*
 * The group steps down and its ring is dropped (caller holds rs->lock, so
 * no resync runs, and g->lock; and it flushed every data device). The
 * entries' sequences are the dropped ring's, which the next stream may not
 * continue (a promotion goes on from what the copy applied, maybe lower):
 * kept, they would never be released and the resync would stay full. They
 * all go: a region whose record was released (up to @released) is on the
 * replica and durable here; any other is dirty again.
 */
void repl_resync_drop(struct repl_group *g, u64 released)
{
	struct repl_resync *rs = &g->resync;
	struct repl_resync_entry *e;
	unsigned long flags;
	unsigned int i;

	spin_lock_irqsave(&rs->entries_lock, flags);
	for (i = 0; i < rs->nr; i++) {
		e = entry(rs, i);
		if (e->seq > released)
			entry_mark_dirty(e, DM_REPL_BEHIND_UNRELEASED);
	}
	/* See repl_dirty_word(): the dirty bits are seen before these go. */
	smp_mb__before_atomic();
	for (i = 0; i < rs->nr; i++)
		clear_bit(entry(rs, i)->region, entry(rs, i)->vol->syncing);
	atomic64_sub(rs->nr, &rs->regions);
	rs->nr = 0;
	spin_unlock_irqrestore(&rs->entries_lock, flags);
}

/*
 * The ring numbers on anew (a role change; caller holds rs->lock, after
 * the ring's new release point is written): a save_work that read the
 * release point before takes nothing out by it.
 */
void repl_resync_renumbered(struct repl_group *g)
{
	/* The new release point is seen before the count. */
	smp_wmb();
	WRITE_ONCE(g->resync.drops, g->resync.drops + 1);
}

/* The group goes: no save is left running (it takes g->lock). */
void repl_resync_stop(struct repl_group *g)
{
	cancel_work_sync(&g->resync.save_work);
}

/*
 * A region being resynced, until its release: in the entries before its
 * syncing bit is set, with no sequence yet (U64_MAX: no release reaches
 * it), so that the release of an earlier resync of the same region never
 * clears the bit under it. Caller holds rs->lock, so it is the only one
 * adding, and it saw room (releases only make more).
 */
static void entry_open(struct repl_resync *rs, struct repl_volume *v,
		       unsigned long region)
{
	unsigned long flags;

	spin_lock_irqsave(&rs->entries_lock, flags);
	*entry(rs, rs->nr++) = (struct repl_resync_entry) {
		.seq = U64_MAX, .vol = v, .region = region,
	};
	atomic64_inc(&rs->regions);
	spin_unlock_irqrestore(&rs->entries_lock, flags);
}

/* Its records are in the ring: the last one's release ends it. */
static void entry_close(struct repl_resync *rs, u64 seq)
{
	unsigned long flags;

	spin_lock_irqsave(&rs->entries_lock, flags);
	entry(rs, rs->nr - 1)->seq = seq;
	spin_unlock_irqrestore(&rs->entries_lock, flags);
}

/*
 * It failed (its region is dirty again): the entry goes, and the syncing
 * bit too unless an earlier resync of the region is still unreleased.
 */
static void entry_drop(struct repl_resync *rs)
{
	struct repl_resync_entry e;
	unsigned long flags;

	spin_lock_irqsave(&rs->entries_lock, flags);
	e = *entry(rs, --rs->nr);
	atomic64_dec(&rs->regions);
	/* See repl_dirty_word(): the dirty bit is seen before this. */
	smp_mb__before_atomic();
	if (!still_syncing(rs, 0, &e))
		clear_bit(e.region, e.vol->syncing);
	spin_unlock_irqrestore(&rs->entries_lock, flags);
}

static bool entries_full(struct repl_resync *rs)
{
	unsigned long flags;
	bool full;

	spin_lock_irqsave(&rs->entries_lock, flags);
	full = rs->nr == REPL_RESYNC_UNRELEASED;
	spin_unlock_irqrestore(&rs->entries_lock, flags);
	return full;
}

/*
 * A volume goes away (caller holds rs->lock): its entries go, its syncing
 * bits stay in the bitmap it saved, dirty for the next load; and while it
 * left anything dirty, no resync of the group may end.
 */
void repl_resync_forget(struct repl_volume *v)
{
	struct repl_resync *rs = &v->group->resync;
	unsigned int i, kept = 0;
	unsigned long flags;

	spin_lock_irqsave(&rs->entries_lock, flags);
	for (i = 0; i < rs->nr; i++)
		if (entry(rs, i)->vol != v)
			*entry(rs, kept++) = *entry(rs, i);
	atomic64_sub(rs->nr - kept, &rs->regions);
	rs->nr = kept;
	spin_unlock_irqrestore(&rs->entries_lock, flags);
	if (atomic64_read(&v->dirty) ||
	    find_first_bit(v->syncing, v->nr_regions) < v->nr_regions)
		set_bit(v->index, rs->departed);
}

/* A volume comes (back): its bitmap, loaded, says what it lacks. */
void repl_resync_joined(struct repl_volume *v)
{
	clear_bit(v->index, v->group->resync.departed);
}

/* Caller holds g->lock. */
static bool group_dirty(struct repl_group *g)
{
	unsigned int i;

	if (!bitmap_empty(g->resync.departed, DM_REPL_MAX_VOLUMES))
		return true;
	for (i = 0; i < DM_REPL_MAX_VOLUMES; i++)
		if (g->volumes[i] && atomic64_read(&g->volumes[i]->dirty))
			return true;
	return false;
}

/* Read @nbytes at @sector of @v's data device into @buf (vmalloc()ed). */
int repl_read_data(struct repl_volume *v, sector_t sector, void *buf,
		   u32 nbytes)
{
	unsigned int nr_pages = DIV_ROUND_UP(nbytes, PAGE_SIZE);
	struct bio *bio;
	u32 done;
	int r;

	bio = bio_alloc_bioset(v->data_bdev, nr_pages, REQ_OP_READ | REQ_SYNC,
			       GFP_NOIO, &repl_bio_set);
	bio->bi_iter.bi_sector = sector;
	for (done = 0; done < nbytes; done += PAGE_SIZE)
		__bio_add_page(bio, vmalloc_to_page(buf + done),
			       min_t(u32, PAGE_SIZE, nbytes - done), 0);
	r = submit_bio_wait(bio);
	bio_put(bio);
	invalidate_kernel_vmap_range(buf, nbytes);
	return r;
}

struct resync_chunk {
	struct repl_volume *vol;
	sector_t sector;
	u32 nbytes;
	void *buf;
	u64 seq;		/* out */
};

/*
 * Steps 2 to 4 for one record. Caller holds rs->lock (no role change, no
 * volume change): see resync_read().
 */
static int resync_chunk(struct repl_group *g, struct resync_chunk *c)
{
	struct repl_rec_req req = {
		.type = DM_REPL_REC_RESYNC,
		.volume = c->vol->index,
		.sector = c->sector,
		.nbytes = c->nbytes,
		.payload_len = c->nbytes,
	};
	int r;

	if (repl_ring_reserve(&g->ring, &req, 1))
		return -ENOSPC;
	r = repl_ring_wait_before(&g->ring, req.pos);
	if (!r)
		r = wait_overflowing(&g->resync);
	if (!r)
		r = repl_read_data(c->vol, c->sector, c->buf, c->nbytes);
	if (r) {
		repl_ring_commit(&g->ring, req.pos, true);
		repl_group_notify_now(g);
		return r;
	}
	memcpy(req.rec + 1, c->buf, c->nbytes);
	c->seq = le64_to_cpu(req.rec->seq);
	repl_ring_commit(&g->ring, req.pos, false);
	repl_group_notify_now(g);
	return 0;
}

/* Up to the end of the volume, in records of at most a payload's size. */
static int resync_region_chunks(struct repl_group *g, struct repl_volume *v,
				unsigned long region, struct dm_repl_resync_req *req)
{
	sector_t sector = (sector_t)region << v->region_shift;
	sector_t end = min_t(sector_t, v->sectors,
			     sector + (1ULL << v->region_shift));
	struct resync_chunk c = { .vol = v };
	/* A quarter of the ring at most: a small ring still takes it. */
	u32 max_bytes = min_t(u64, DM_REPL_REC_PAYLOAD_MAX, g->ring.size / 4);
	int r = 0;

	c.buf = vmalloc(DM_REPL_REC_PAYLOAD_MAX);
	if (!c.buf)
		return -ENOMEM;
	while (sector < end) {
		c.sector = sector;
		c.nbytes = min_t(u64, end - sector,
				 max_bytes >> SECTOR_SHIFT) << SECTOR_SHIFT;
		sector += c.nbytes >> SECTOR_SHIFT;
		r = resync_chunk(g, &c);
		if (r)
			break;
		req->records++;
		req->seq = c.seq;
	}
	vfree(c.buf);
	return r;
}

/* Caller holds g->lock: the volumes the group has (bit N: index N). */
static u64 group_volumes(struct repl_group *g)
{
	u64 vols = 0;
	unsigned int i;

	for (i = 0; i < DM_REPL_MAX_VOLUMES; i++)
		if (g->volumes[i])
			vols |= BIT_ULL(i);
	return vols;
}

/*
 * The end of a resync, a RESYNC record of its own with no data but the
 * group's volumes, reserved after every region's read: whatever a read saw
 * was written by a write reserved before it, so at this record the replica
 * has a state the primary had. It ends the resync only if, once every
 * record before it is complete (a write reserved during the last read may
 * still fail, and a failed write is dirty), no region is dirty (full
 * barrier, then the counts: a write that overflowed before it, and whose
 * GAP may precede it, is seen) and the group has the volumes the record
 * names; otherwise it goes VOID. True if it ended the resync. Caller holds
 * rs->lock, not g->lock: the wait is for writes, which may hang.
 */
static bool resync_end(struct repl_group *g, struct repl_volume *v)
{
	struct dm_repl_resync_end *end;
	struct repl_rec_req req = {
		.type = DM_REPL_REC_RESYNC,
		.flags = DM_REPL_RECF_RESYNC_END,
		.volume = v->index,
		.payload_len = sizeof(*end),
	};
	bool ended;
	u64 vols;

	mutex_lock(&g->lock);
	ended = !group_dirty(g) && !repl_ring_reserve(&g->ring, &req, 1);
	vols = group_volumes(g);
	mutex_unlock(&g->lock);
	if (!ended)
		return false;
	end = (void *)(req.rec + 1);
	end->volumes = cpu_to_le64(vols);
	ended = !repl_ring_wait_before(&g->ring, req.pos);
	/* Pairs with the fully ordered bit set of repl_volume_mark_dirty(). */
	smp_mb();
	mutex_lock(&g->lock);
	ended = ended && !group_dirty(g) && group_volumes(g) == vols;
	mutex_unlock(&g->lock);
	repl_ring_commit(&g->ring, req.pos, !ended);
	repl_group_notify_now(g);
	return ended;
}

/* The group is whole again in the ring: it is no longer behind. */
static void maybe_uptodate(struct repl_group *g, u64 gaps_before)
{
	/* Its reasons go with it, or come back with it (repl_group_behind()). */
	u32 why = atomic_xchg(&g->behind_why, 0);

	clear_bit(REPL_BEHIND, &g->flags);
	/*
	 * Pairs with smp_mb__before_atomic() in repl_volume_mark_dirty(): a
	 * BEHIND cleared here had its dirty count seen below.
	 */
	smp_mb__after_atomic();
	/* Unless a write overflowed meanwhile (its GAP may follow the end). */
	if (group_dirty(g) || repl_ring_gaps_noted(&g->ring) != gaps_before)
		repl_group_behind(g, why);
}

/* Caller holds g->lock and rs->lock: the volume @req names, if it may be resynced. */
static struct repl_volume *resync_volume(struct repl_group *g,
					 const struct dm_repl_resync_req *req)
{
	struct repl_volume *v = g->volumes[req->volume];

	if (g->role != DM_REPL_ROLE_PRIMARY)
		return ERR_PTR(-EPERM);
	if (!v)
		return ERR_PTR(-ENOENT);
	if (req->region >= v->nr_regions)
		return ERR_PTR(-EINVAL);
	return v;
}

/*
 * Step 1: an entry, syncing, then out of the dirty bitmap. 1 when the
 * region goes on to be read, 0 when it is clean (and not RESYNCF_ANY), or
 * -errno. Caller holds g->lock and rs->lock.
 */
static int resync_start(struct repl_group *g, struct repl_volume *v,
			struct dm_repl_resync_req *req)
{
	struct repl_resync *rs = &g->resync;

	/* Its records must fit in the ring beside the stream's. */
	if ((u64)SECTOR_SIZE << v->region_shift > g->ring.size / 2)
		return -EFBIG;
	if (repl_resync_held(v))
		return -EAGAIN;
	if (entries_full(rs))
		return -EBUSY;
	if (!test_bit(req->region, v->bitmap) && !(req->flags & DM_REPL_RESYNCF_ANY))
		return 0;
	entry_open(rs, v, req->region);
	set_bit(req->region, v->syncing);
	if (test_and_clear_bit(req->region, v->bitmap))
		atomic64_dec(&v->dirty);
	req->flags = 0;
	return 1;
}

/*
 * Steps 2 to 4, then the end. Caller holds rs->lock, not g->lock: they wait
 * for writes in flight and read the data device, either of which may hang
 * (a path lost), and g->lock's other holders must not wait for that: the
 * group's status, and a table load into it, which holds the lock of every
 * group. rs->lock keeps the volume, its bitmaps and the group's role (a
 * removal, a resize and a role change take it).
 */
static int resync_read(struct repl_group *g, struct repl_volume *v,
		       struct dm_repl_resync_req *req, u64 gaps)
{
	struct repl_resync *rs = &g->resync;
	int r = resync_region_chunks(g, v, req->region, req);

	if (r) {
		/* Dirty again before it stops syncing. */
		repl_volume_mark_dirty(v, (sector_t)req->region << v->region_shift,
				       SECTOR_SIZE, DM_REPL_BEHIND_RESYNC_FAILED);
		entry_drop(rs);
		return r;
	}
	entry_close(rs, req->seq);
	atomic64_inc(&rs->sent);
	if (resync_end(g, v)) {
		req->flags |= DM_REPL_RESYNCF_END;
		mutex_lock(&g->lock);
		maybe_uptodate(g, gaps);
		mutex_unlock(&g->lock);
	}
	return 0;
}

int repl_resync_region(struct repl_group *g, struct dm_repl_resync_req *req)
{
	bool verify = req->flags & DM_REPL_RESYNCF_VERIFY;
	struct repl_volume *v;
	u64 gaps;
	int r;

	if (req->abi_version != DM_REPL_ABI_VERSION)
		return -EPROTO;
	if (req->volume >= DM_REPL_MAX_VOLUMES ||
	    (req->flags & ~(DM_REPL_RESYNCF_ANY | DM_REPL_RESYNCF_VERIFY)) ||
	    req->records || req->seq ||
	    req->reserved[0] || req->reserved[1])
		return -EINVAL;
	mutex_lock(&g->resync.lock);
	mutex_lock(&g->lock);
	gaps = repl_ring_gaps_noted(&g->ring);
	v = resync_volume(g, req);
	r = PTR_ERR_OR_ZERO(v);
	if (!r && !verify)
		r = resync_start(g, v, req);
	mutex_unlock(&g->lock);
	if (!r && verify)
		r = repl_verify_region(g, v, req->region, req);
	else if (r > 0)
		r = resync_read(g, v, req, gaps);
	mutex_unlock(&g->resync.lock);
	return r;
}
