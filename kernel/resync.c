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
 * S, that is, when the replica made the record durable.
 */
#include <linux/bio.h>
#include <linux/highmem.h>
#include <linux/vmalloc.h>

#include "repl.h"

void repl_resync_init(struct repl_group *g)
{
	mutex_init(&g->resync.lock);
	init_waitqueue_head(&g->resync.overflow_wait);
}

/*
 * A write goes to the bitmap: counted in flight before its bits are set, so
 * that a resync that clears them after can wait for its data to land.
 */
void repl_resync_overflow_start(struct repl_group *g, struct repl_io *io)
{
	unsigned int phase = READ_ONCE(g->resync.phase);

	atomic_inc(&g->resync.overflowing[phase]);
	/* The count is seen before the bits (set_bit() orders nothing). */
	smp_mb__after_atomic();
	io->overflow_phase = 1 + phase;
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

/* Every write that went to the bitmap before now has completed. */
static int wait_overflowing(struct repl_resync *rs)
{
	unsigned int old = rs->phase;

	WRITE_ONCE(rs->phase, !old);
	/* Pairs with smp_mb__after_atomic() in repl_resync_overflow_start(). */
	smp_mb();
	return wait_event_killable(rs->overflow_wait,
				   !atomic_read(&rs->overflowing[old]));
}

/* Caller holds rs->lock. Forget the regions the consumer released. */
static void pop_released(struct repl_group *g)
{
	struct repl_resync *rs = &g->resync;
	u64 released = READ_ONCE(g->ring.ctl->released_seq);

	while (rs->nr && rs->unreleased[rs->head].seq <= released) {
		struct repl_resync_entry *e = &rs->unreleased[rs->head];

		clear_bit(e->region, e->vol->syncing);
		rs->head = (rs->head + 1) % REPL_RESYNC_UNRELEASED;
		rs->nr--;
		atomic64_dec(&rs->regions);
	}
}

/* Records were released: never waits for a resync in progress. */
void repl_resync_released(struct repl_group *g)
{
	if (!mutex_trylock(&g->resync.lock))
		return;
	pop_released(g);
	mutex_unlock(&g->resync.lock);
}

/*
 * A volume goes away (caller holds rs->lock): its entries go, its syncing
 * bits stay in the bitmap it saves, dirty for the next load.
 */
void repl_resync_forget(struct repl_volume *v)
{
	struct repl_resync *rs = &v->group->resync;
	unsigned int i, kept = 0;

	for (i = 0; i < rs->nr; i++) {
		struct repl_resync_entry *e =
			&rs->unreleased[(rs->head + i) % REPL_RESYNC_UNRELEASED];

		if (e->vol != v)
			rs->unreleased[(rs->head + kept++) % REPL_RESYNC_UNRELEASED] = *e;
	}
	atomic64_sub(rs->nr - kept, &rs->regions);
	rs->nr = kept;
}

/* Caller holds g->lock. */
static bool group_dirty(struct repl_group *g)
{
	unsigned int i;

	for (i = 0; i < DM_REPL_MAX_VOLUMES; i++)
		if (g->volumes[i] && atomic64_read(&g->volumes[i]->dirty))
			return true;
	return false;
}

/* Read @nbytes at @sector of @v's data device into @buf (vmalloc()ed). */
static int read_data(struct repl_volume *v, sector_t sector, void *buf,
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
	bool last;		/* of the region: may end the resync */
	void *buf;
	u64 seq;		/* out */
	bool end;		/* out: RESYNC_END */
};

/*
 * Steps 2 to 4 for one record. Caller holds g->lock (no role change, no
 * volume change) and rs->lock.
 */
static int resync_chunk(struct repl_group *g, struct resync_chunk *c)
{
	struct repl_rec_req req = {
		.type = DM_REPL_REC_RESYNC,
		.flags = c->last ? DM_REPL_RECF_RESYNC_END : 0,
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
		r = read_data(c->vol, c->sector, c->buf, c->nbytes);
	if (r) {
		repl_ring_commit(&g->ring, req.pos, true);
		repl_group_notify_now(g);
		return r;
	}
	memcpy(req.rec + 1, c->buf, c->nbytes);
	/*
	 * The end only if no region was dirty once the record was reserved: a
	 * write that overflowed before that, and whose GAP may precede the
	 * record, had its bit seen here (full barrier, then the count).
	 */
	smp_mb();
	c->end = c->last && !group_dirty(g);
	if (!c->end)
		req.rec->flags &= ~cpu_to_le16(DM_REPL_RECF_RESYNC_END);
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
		c.last = sector == end;
		r = resync_chunk(g, &c);
		if (r)
			break;
		req->records++;
		req->seq = c.seq;
		if (c.end)
			req->flags |= DM_REPL_RESYNCF_END;
	}
	vfree(c.buf);
	return r;
}

/* The group is whole again in the ring: it is no longer behind. */
static void maybe_uptodate(struct repl_group *g, u64 gaps_before)
{
	clear_bit(REPL_BEHIND, &g->flags);
	/*
	 * Pairs with smp_mb__before_atomic() in repl_volume_mark_dirty(): a
	 * BEHIND cleared here had its dirty count seen below.
	 */
	smp_mb__after_atomic();
	/* Unless a write overflowed meanwhile (its GAP may follow the end). */
	if (group_dirty(g) || repl_ring_gaps_noted(&g->ring) != gaps_before)
		set_bit(REPL_BEHIND, &g->flags);
}

/* Caller holds g->lock and rs->lock. */
static int resync_locked(struct repl_group *g, struct dm_repl_resync_req *req)
{
	struct repl_resync *rs = &g->resync;
	struct repl_volume *v = g->volumes[req->volume];
	u64 gaps = repl_ring_gaps_noted(&g->ring);
	struct repl_resync_entry *e;
	int r;

	if (g->role != DM_REPL_ROLE_PRIMARY)
		return -EPERM;
	if (!v)
		return -ENOENT;
	if (req->region >= v->nr_regions)
		return -EINVAL;
	pop_released(g);
	if (rs->nr == REPL_RESYNC_UNRELEASED)
		return -EBUSY;
	if (!test_bit(req->region, v->bitmap) && !(req->flags & DM_REPL_RESYNCF_ANY))
		return 0;
	/* Step 1: syncing first, then out of the dirty bitmap. */
	set_bit(req->region, v->syncing);
	if (test_and_clear_bit(req->region, v->bitmap))
		atomic64_dec(&v->dirty);
	req->flags = 0;
	r = resync_region_chunks(g, v, req->region, req);
	if (r) {
		/* Dirty again before it stops syncing. */
		repl_volume_mark_dirty(v, (sector_t)req->region << v->region_shift,
				       SECTOR_SIZE);
		clear_bit(req->region, v->syncing);
		return r;
	}
	e = &rs->unreleased[(rs->head + rs->nr++) % REPL_RESYNC_UNRELEASED];
	*e = (struct repl_resync_entry) {
		.seq = req->seq, .vol = v, .region = req->region,
	};
	atomic64_inc(&rs->regions);
	if (req->flags & DM_REPL_RESYNCF_END)
		maybe_uptodate(g, gaps);
	return 0;
}

int repl_resync_region(struct repl_group *g, struct dm_repl_resync_req *req)
{
	int r;

	if (req->abi_version != DM_REPL_ABI_VERSION)
		return -EPROTO;
	if (req->volume >= DM_REPL_MAX_VOLUMES ||
	    (req->flags & ~DM_REPL_RESYNCF_ANY) || req->records || req->seq ||
	    req->reserved[0] || req->reserved[1])
		return -EINVAL;
	mutex_lock(&g->resync.lock);
	mutex_lock(&g->lock);
	r = resync_locked(g, req);
	mutex_unlock(&g->lock);
	mutex_unlock(&g->resync.lock);
	return r;
}
