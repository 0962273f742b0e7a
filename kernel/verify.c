// SPDX-License-Identifier: GPL-2.0
/*
 * Online verify: DM_REPL_IOC_RESYNC with DM_REPL_RESYNCF_VERIFY puts one
 * VERIFY record for a region of a primary's volume in the ring, carrying the
 * SHA-256 of the region as the data device holds it at the record's
 * sequence S; a secondary, at that record, hashes its own copy and compares
 * (Documentation/dm-repl.md, "Verify").
 *
 * The order on the primary, under the resync lock (so no resync runs):
 *  1. the region's window opens: from now on every write captured into it
 *     counts a hit (repl_verify_note_write(), after the write's reservation);
 *  2. the VERIFY record is reserved: it takes sequence S;
 *  3. every write with a record before S completes;
 *  4. the region is read and hashed; the window closes; the record is
 *     RACED if it saw a hit or if the region is dirty, then committed.
 * A write before S is on the disk at the read and in the stream before S:
 * both sides have it. A write that the read may have seen but that is not
 * before S was submitted before the read completed, so after its
 * reservation, which comes after S's and so sees the window open (the ring
 * lock orders them): it counted a hit, under the window's lock, before it
 * was submitted, so the hit is seen when the window closes. A write that
 * went only to the bitmap left the region dirty. So a record that is not
 * RACED holds exactly the writes before S: no false mismatch.
 */
#include <crypto/sha2.h>
#include <linux/vmalloc.h>

#include "repl.h"

/* The read of a region goes in pieces of this size. */
#define VERIFY_CHUNK	(1U << 20)

void repl_verify_init(struct repl_group *g)
{
	BUILD_BUG_ON(sizeof(struct dm_repl_verify_hash) !=
		     DM_REPL_VERIFY_HASH_SIZE);
	BUILD_BUG_ON(sizeof(struct dm_repl_verify_mismatch) != 24);
	BUILD_BUG_ON((u64)DM_REPL_META_REGION_SECTORS_MAX * SECTOR_SIZE >
		     DM_REPL_VERIFY_NBYTES_MAX);
	spin_lock_init(&g->verify.lock);
}

/*
 * The replica takes another stream (forget_old_stream()): the list and the
 * last sequence go, the counts go on. Caller holds apply.stat_lock.
 */
void repl_verify_forget(struct repl_verify_stats *s)
{
	s->head = 0;
	s->nr = 0;
	s->last_seq = 0;
}

/*
 * A write captured on @v (any context), after its reservation in the ring
 * (or its attempt) and before it is submitted. Callers test verify.open
 * first: the common case costs one load.
 */
void repl_verify_note_write(struct repl_group *g, struct repl_volume *v,
			    sector_t sector, u32 nbytes)
{
	struct repl_verify_window *w = &g->verify;
	sector_t end = sector + (nbytes >> SECTOR_SHIFT);
	unsigned long flags;

	spin_lock_irqsave(&w->lock, flags);
	if (w->open && w->vol == v && sector < w->end && w->start < end)
		w->hits++;
	spin_unlock_irqrestore(&w->lock, flags);
}

static void window_open(struct repl_verify_window *w, struct repl_volume *v,
			sector_t start, sector_t end)
{
	spin_lock_irq(&w->lock);
	w->vol = v;
	w->start = start;
	w->end = end;
	w->hits = 0;
	WRITE_ONCE(w->open, true);
	spin_unlock_irq(&w->lock);
}

/* Closed: did a write into the range come while it was open? */
static bool window_close(struct repl_verify_window *w)
{
	unsigned int hits;

	spin_lock_irq(&w->lock);
	hits = w->hits;
	WRITE_ONCE(w->open, false);
	w->vol = NULL;
	spin_unlock_irq(&w->lock);
	return hits;
}

/*
 * SHA-256 of @nbytes at @sector of @v's data device, read a chunk at a
 * time: a region of up to 1 GiB is read with the caller's mutexes held (the
 * primary's resync lock, a secondary's apply lock), never a
 * spinlock. -EINTR between two chunks when the caller is killed or, if
 * @stop is given, when it is not zero (a secondary being suspended).
 */
int repl_verify_hash(struct repl_volume *v, sector_t sector, u32 nbytes,
		     u8 *hash, const atomic_t *stop)
{
	struct sha256_state sha;
	u32 n, chunk = min(nbytes, VERIFY_CHUNK);
	void *buf = vmalloc(chunk);
	int r = 0;

	if (!buf)
		return -ENOMEM;
	sha256_init(&sha);
	for (; nbytes; nbytes -= n, sector += n >> SECTOR_SHIFT) {
		n = min(nbytes, chunk);
		if (fatal_signal_pending(current) || (stop && atomic_read(stop))) {
			r = -EINTR;
			break;
		}
		r = repl_read_data(v, sector, buf, n);
		if (r)
			break;
		sha256_update(&sha, buf, n);
		cond_resched();
	}
	sha256_final(&sha, hash);
	vfree(buf);
	return r;
}

/*
 * Steps 1 to 4 for @region of @v. Caller holds the resync lock (not
 * g->lock: see resync_read()) and checked the role and the region.
 */
int repl_verify_region(struct repl_group *g, struct repl_volume *v,
		       unsigned long region, struct dm_repl_resync_req *req)
{
	sector_t start = (sector_t)region << v->region_shift;
	sector_t end = min_t(sector_t, v->sectors,
			     start + (1ULL << v->region_shift));
	struct repl_rec_req rr = {
		.type = DM_REPL_REC_VERIFY,
		.volume = v->index,
		.sector = start,
		.nbytes = (end - start) << SECTOR_SHIFT,
		.payload_len = sizeof(struct dm_repl_verify_hash),
	};
	struct dm_repl_verify_hash *hash;
	bool raced;
	int r;

	window_open(&g->verify, v, start, end);
	if (repl_ring_reserve(&g->ring, &rr, 1)) {
		window_close(&g->verify);
		return -ENOSPC;
	}
	hash = (void *)(rr.rec + 1);
	r = repl_ring_wait_before(&g->ring, rr.pos);
	if (!r)
		r = repl_verify_hash(v, start, rr.nbytes, hash->sha256, NULL);
	raced = window_close(&g->verify);
	/* A write that went to the bitmap set the bit before it was submitted. */
	smp_mb();
	raced = raced || test_bit(region, v->bitmap);
	if (!r && raced)
		rr.rec->flags |= cpu_to_le16(DM_REPL_RECF_RACED);
	req->records = 1;
	req->seq = le64_to_cpu(rr.rec->seq);
	req->flags = raced ? DM_REPL_RESYNCF_RACED : 0;
	repl_ring_commit(&g->ring, rr.pos, r != 0);
	repl_group_notify_now(g);
	if (r) {
		req->records = 0;
		req->seq = 0;
	}
	return r;
}

/* A secondary's counters and list, for DM_REPL_IOC_VERIFY_INFO. */
void repl_verify_info(struct repl_group *g, struct dm_repl_verify_info *info)
{
	struct repl_apply *a = &g->apply;
	const struct repl_verify_stats *s = &a->verify;
	unsigned long flags;
	unsigned int i;

	spin_lock_irqsave(&a->stat_lock, flags);
	info->compared = s->compared;
	info->bytes = s->bytes;
	info->raced = s->raced;
	info->mismatches = s->mismatches;
	info->last_seq = s->last_seq;
	info->nr = s->nr;
	for (i = 0; i < s->nr; i++)
		info->list[i] = s->list[(s->head + i) % DM_REPL_VERIFY_LIST];
	spin_unlock_irqrestore(&a->stat_lock, flags);
}
