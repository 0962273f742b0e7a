// SPDX-License-Identifier: GPL-2.0
/*
 * The ring of change records of one group.
 *
 * Producer side as in kernel/bpf/ringbuf.c: space and a sequence number are
 * reserved under a short spinlock, the payload is copied outside it, and the
 * record is committed at bio completion by clearing the slot's BUSY bit with a
 * release store. The consumer (userspace, read-only mapping) stops at the
 * first BUSY slot. Space is given back only by repl_ring_release(), which
 * refuses to pass a record that is still BUSY.
 */
#include <linux/delay.h>
#include <linux/mm.h>
#include <linux/random.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/timekeeping.h>
#include <linux/vmalloc.h>

#include "repl.h"

static inline struct dm_repl_slot *ring_slot(struct repl_ring *ring, u64 pos)
{
	return ring->data + (pos & (ring->size - 1));
}

u32 repl_rec_size(u32 payload_len)
{
	return ALIGN(DM_REPL_REC_HDR_SIZE + payload_len, DM_REPL_REC_ALIGN);
}

static u64 slot_span(u32 rec_len)
{
	return sizeof(struct dm_repl_slot) + rec_len;
}

int repl_ring_init(struct repl_ring *ring, unsigned int ring_mb)
{
	unsigned int nr_data = ring_mb << (20 - PAGE_SHIFT);
	struct page **map;
	unsigned int i, j;

	BUILD_BUG_ON(sizeof(struct dm_repl_rec) != DM_REPL_REC_HDR_SIZE);
	BUILD_BUG_ON(sizeof(struct dm_repl_ring_ctl) > PAGE_SIZE);
	BUILD_BUG_ON(sizeof(struct dm_repl_slot) % DM_REPL_REC_ALIGN);

	spin_lock_init(&ring->lock);
	mutex_init(&ring->release_lock);
	ring->next_seq = 1;
	ring->epoch = 1;
	ring->seq_limit = U64_MAX;
	ring->size = (u64)ring_mb << 20;
	ring->nr_pages = 1 + nr_data;
	ring->pages = kvcalloc(ring->nr_pages, sizeof(*ring->pages), GFP_KERNEL);
	if (!ring->pages)
		return -ENOMEM;

	for (i = 0; i < ring->nr_pages; i++) {
		ring->pages[i] = alloc_page(GFP_KERNEL | __GFP_ZERO |
					    __GFP_NOWARN | __GFP_RETRY_MAYFAIL);
		if (!ring->pages[i])
			goto bad_pages;
	}

	/* Control page, data pages, data pages again. */
	map = kvcalloc(1 + 2 * nr_data, sizeof(*map), GFP_KERNEL);
	if (!map)
		goto bad_pages;
	map[0] = ring->pages[0];
	for (j = 0; j < nr_data; j++) {
		map[1 + j] = ring->pages[1 + j];
		map[1 + nr_data + j] = ring->pages[1 + j];
	}
	ring->ctl = vmap(map, 1 + 2 * nr_data, VM_MAP | VM_USERMAP,
			 PAGE_KERNEL);
	kvfree(map);
	if (!ring->ctl)
		goto bad_pages;
	ring->data = (void *)ring->ctl + PAGE_SIZE;

	ring->ctl->magic = DM_REPL_CTL_MAGIC;
	ring->ctl->abi_version = DM_REPL_ABI_VERSION;
	ring->ctl->ctl_size = PAGE_SIZE;
	ring->ctl->slot_size = sizeof(struct dm_repl_slot);
	ring->ctl->data_size = ring->size;
	return 0;

bad_pages:
	while (i--)
		__free_page(ring->pages[i]);
	kvfree(ring->pages);
	ring->pages = NULL;
	return -ENOMEM;
}

void repl_ring_free(struct repl_ring *ring)
{
	unsigned int i;

	if (!ring->pages)
		return;
	vunmap(ring->ctl);
	for (i = 0; i < ring->nr_pages; i++)
		__free_page(ring->pages[i]);
	kvfree(ring->pages);
	ring->pages = NULL;
}

/* The last sequence number reserved, 0 if none. */
u64 repl_ring_last_seq(struct repl_ring *ring)
{
	unsigned long flags;
	u64 seq;

	spin_lock_irqsave(&ring->lock, flags);
	seq = ring->next_seq - 1;
	spin_unlock_irqrestore(&ring->lock, flags);
	return seq;
}

/* Caller holds ring->lock. */
static bool ring_fits(struct repl_ring *ring, u64 bytes)
{
	u64 used = ring->ctl->producer_pos - ring->ctl->released_pos;

	return bytes <= ring->size - used;
}

bool repl_ring_has_room(struct repl_ring *ring, u64 bytes)
{
	unsigned long flags;
	bool room;

	spin_lock_irqsave(&ring->lock, flags);
	room = ring_fits(ring, bytes);
	spin_unlock_irqrestore(&ring->lock, flags);
	return room;
}

static void rec_fill(struct dm_repl_rec *rec, const struct repl_rec_req *req,
		     u64 seq, u64 epoch, u32 group_tag, u64 stream)
{
	memset(rec, 0, sizeof(*rec));
	rec->magic = cpu_to_le32(DM_REPL_REC_MAGIC);
	rec->type = cpu_to_le16(req->type);
	rec->flags = cpu_to_le16(req->flags);
	rec->len = cpu_to_le32(repl_rec_size(req->payload_len));
	rec->payload_len = cpu_to_le32(req->payload_len);
	rec->seq = cpu_to_le64(seq);
	rec->epoch = cpu_to_le64(epoch);
	rec->sector = cpu_to_le64(req->sector);
	rec->nbytes = cpu_to_le32(req->nbytes);
	rec->volume = cpu_to_le16(req->volume);
	rec->version = cpu_to_le16(DM_REPL_REC_VERSION);
	rec->time_ns = cpu_to_le64(ktime_get_coarse_real_ns());
	rec->group_tag = cpu_to_le32(group_tag);
	rec->stream = cpu_to_le64(stream);
}

/*
 * The records the ring owes its consumer before the next one: the STREAM
 * record of a stream that has none in the ring yet, and a GAP record after
 * an overflow. Caller holds ring->lock.
 */
static unsigned int ring_prefix(struct repl_ring *ring,
				struct repl_rec_req *pre)
{
	unsigned int nr = 0;

	if (ring->stream_pending)
		pre[nr++] = (struct repl_rec_req) {
			.type = DM_REPL_REC_STREAM,
			.flags = ring->stream_gap ? DM_REPL_RECF_GAP : 0,
			.payload_len = sizeof(struct dm_repl_stream_link),
		};
	if (ring->gap_pending)
		pre[nr++] = (struct repl_rec_req) { .type = DM_REPL_REC_GAP };
	return nr;
}

/* A prefix record is whole at once: fill and commit it. */
static void prefix_fill(struct repl_ring *ring, struct repl_rec_req *req,
			u64 seq, u64 epoch, u64 stream, const u64 *history)
{
	struct dm_repl_stream_link *link = (void *)(req->rec + 1);
	unsigned int i;

	rec_fill(req->rec, req, seq, epoch, ring->group_tag, stream);
	if (req->type == DM_REPL_REC_STREAM)
		for (i = 0; i < DM_REPL_STREAM_HISTORY; i++)
			link->prev[i] = cpu_to_le64(history[i]);
	repl_ring_commit(ring, req->pos, false);
}

/*
 * Reserve all of @reqs or none (-ENOSPC). Each gets a slot marked BUSY, a
 * sequence number and an epoch; a FLUSH record closes its epoch. The
 * headers are filled here (crc 0: the consumer seals a record when it copies
 * it out); the caller copies the payloads and commits at completion.
 */
int repl_ring_reserve(struct repl_ring *ring, struct repl_rec_req *reqs,
		      unsigned int nr)
{
	struct repl_rec_req pre[REPL_MAX_PREFIX_RECS];
	struct repl_rec_req *all[REPL_MAX_PREFIX_RECS + REPL_MAX_RECS_PER_BIO];
	u64 seq[ARRAY_SIZE(all)], epoch[ARRAY_SIZE(all)];
	u64 history[DM_REPL_STREAM_HISTORY];
	struct dm_repl_slot *slot;
	unsigned int i, n, npre;
	unsigned long flags;
	u64 total = 0, pos, stream;

	spin_lock_irqsave(&ring->lock, flags);
	npre = ring_prefix(ring, pre);
	for (n = 0; n < npre; n++)
		all[n] = &pre[n];
	for (i = 0; i < nr; i++)
		all[n++] = &reqs[i];
	for (i = 0; i < n; i++)
		total += slot_span(repl_rec_size(all[i]->payload_len));
	if (!ring_fits(ring, total) || ring->next_seq + n >= ring->seq_limit) {
		spin_unlock_irqrestore(&ring->lock, flags);
		return -ENOSPC;
	}
	pos = ring->ctl->producer_pos;
	for (i = 0; i < n; i++) {
		u32 len = repl_rec_size(all[i]->payload_len);

		slot = ring_slot(ring, pos);
		slot->len_flags = len | DM_REPL_SLOT_BUSY;
		slot->reserved = 0;
		all[i]->pos = pos;
		all[i]->rec = (struct dm_repl_rec *)(slot + 1);
		seq[i] = ring->next_seq++;
		epoch[i] = ring->epoch;
		if (all[i]->type == DM_REPL_REC_FLUSH)
			ring->epoch++;
		pos += slot_span(len);
	}
	stream = ring->stream;
	if (npre) {
		memcpy(history, ring->history, sizeof(history));
		ring->stream_pending = false;
		ring->gap_pending = false;
	}
	/*
	 * Pairs with the consumer's acquire load of producer_pos: the BUSY
	 * slot headers above are visible before the position that covers them.
	 */
	smp_store_release(&ring->ctl->producer_pos, pos);
	spin_unlock_irqrestore(&ring->lock, flags);

	for (i = 0; i < npre; i++)
		prefix_fill(ring, &pre[i], seq[i], epoch[i], stream, history);
	for (; i < n; i++)
		rec_fill(all[i]->rec, all[i], seq[i], epoch[i],
			 ring->group_tag, stream);
	return 0;
}

/*
 * Put a pending GAP record (and the STREAM record before it, if that is
 * pending too) in the ring now, if it has room: the consumer must learn of
 * the gap even if no write comes after the overflow. True if it did.
 */
bool repl_ring_emit_gap(struct repl_ring *ring)
{
	unsigned long flags;
	bool pending;

	spin_lock_irqsave(&ring->lock, flags);
	pending = ring->gap_pending;
	spin_unlock_irqrestore(&ring->lock, flags);
	return pending && !repl_ring_reserve(ring, NULL, 0);
}

/*
 * The stream a demoted group has applied, and whether a gap is owed to
 * whoever follows it: a stream that has not put its STREAM record out yet
 * is the one before it, with that record's GAP.
 */
u64 repl_ring_applied_stream(struct repl_ring *ring, bool *gap)
{
	unsigned long flags;
	u64 stream;

	spin_lock_irqsave(&ring->lock, flags);
	stream = ring->stream_pending ? ring->history[0] : ring->stream;
	*gap = ring->gap_pending || (ring->stream_pending && ring->stream_gap);
	spin_unlock_irqrestore(&ring->lock, flags);
	return stream;
}

/* A GAP (or a STREAM record with GAP) the ring still owes its consumer. */
bool repl_ring_gap_owed(struct repl_ring *ring)
{
	bool gap;

	repl_ring_applied_stream(ring, &gap);
	return gap;
}

/*
 * A write went only to the bitmap: the next record the ring takes is
 * preceded by a GAP record. Noted under the lock that orders reservations,
 * so every record reserved after this write gave up comes after the GAP.
 */
void repl_ring_note_overflow(struct repl_ring *ring)
{
	unsigned long flags;

	spin_lock_irqsave(&ring->lock, flags);
	ring->gap_pending = true;
	ring->gaps_noted++;
	spin_unlock_irqrestore(&ring->lock, flags);
}

/*
 * A volume joins with writes the replica may lack (its dirty bitmap): the
 * stream says so, on its STREAM record if that has not gone out yet, else
 * with a GAP record before the next one.
 */
void repl_ring_note_missing(struct repl_ring *ring)
{
	unsigned long flags;

	spin_lock_irqsave(&ring->lock, flags);
	if (ring->stream_pending)
		ring->stream_gap = true;
	else
		ring->gap_pending = true;
	ring->gaps_noted++;
	spin_unlock_irqrestore(&ring->lock, flags);
}

u64 repl_ring_gaps_noted(struct repl_ring *ring)
{
	unsigned long flags;
	u64 gaps;

	spin_lock_irqsave(&ring->lock, flags);
	gaps = ring->gaps_noted;
	spin_unlock_irqrestore(&ring->lock, flags);
	return gaps;
}

void repl_ring_commit(struct repl_ring *ring, u64 pos, bool failed)
{
	struct dm_repl_slot *slot = ring_slot(ring, pos);
	u32 len_flags = slot->len_flags & DM_REPL_SLOT_LEN_MASK;

	if (failed)
		len_flags |= DM_REPL_SLOT_DISCARDED;
	/*
	 * Pairs with the consumer's acquire load of len_flags (and the acquire
	 * in repl_ring_release()): the record is complete once BUSY is clear.
	 */
	smp_store_release(&slot->len_flags, len_flags);
}

/*
 * Wait until no record before position @end is BUSY: the writes they belong
 * to have completed. The caller holds a reservation at @end, which release
 * never passes, so the walk stays on live slots. -EINTR on a fatal signal.
 */
int repl_ring_wait_before(struct repl_ring *ring, u64 end)
{
	u64 pos = 0;

	for (;;) {
		mutex_lock(&ring->release_lock);
		pos = max(pos, ring->ctl->released_pos);
		while (pos < end) {
			/* Pairs with the release store in repl_ring_commit(). */
			u32 len_flags = smp_load_acquire(&ring_slot(ring, pos)->len_flags);

			if (len_flags & DM_REPL_SLOT_BUSY)
				break;
			pos += slot_span(len_flags & DM_REPL_SLOT_LEN_MASK);
			cond_resched();
		}
		mutex_unlock(&ring->release_lock);
		if (pos >= end)
			return 0;
		if (fatal_signal_pending(current))
			return -EINTR;
		usleep_range(100, 200);
	}
}

/*
 * Free every record with a sequence up to @seq. Sequences are contiguous in
 * position order, so the walk knows each slot's sequence without reading
 * its header. All or nothing: a BUSY record on the way, or a sequence that
 * was never reserved, is -EINVAL and frees nothing.
 */
int repl_ring_release(struct repl_ring *ring, u64 seq)
{
	u64 pos, next_seq, cur;
	unsigned long flags;
	int ret = 0;

	mutex_lock(&ring->release_lock);
	spin_lock_irqsave(&ring->lock, flags);
	next_seq = ring->next_seq;
	spin_unlock_irqrestore(&ring->lock, flags);

	cur = ring->ctl->released_seq;
	pos = ring->ctl->released_pos;
	if (seq <= cur)
		goto out;
	if (seq >= next_seq) {
		ret = -EINVAL;
		goto out;
	}
	while (cur < seq) {
		struct dm_repl_slot *slot = ring_slot(ring, pos);
		/* Pairs with the release store in repl_ring_commit(). */
		u32 len_flags = smp_load_acquire(&slot->len_flags);

		if (len_flags & DM_REPL_SLOT_BUSY) {
			ret = -EINVAL;
			goto out;
		}
		pos += slot_span(len_flags & DM_REPL_SLOT_LEN_MASK);
		cur++;
		/* A large ring holds millions of records. */
		if (!(cur % 4096))
			cond_resched();
	}

	spin_lock_irqsave(&ring->lock, flags);
	WRITE_ONCE(ring->ctl->released_pos, pos);
	WRITE_ONCE(ring->ctl->released_seq, cur);
	spin_unlock_irqrestore(&ring->lock, flags);
out:
	mutex_unlock(&ring->release_lock);
	return ret;
}

/*
 * Mark dirty the ranges of @v's committed records not yet released (not those
 * in flight, nor those DISCARDED, whose ranges are dirty already).
 * Serialised with release, so none is freed meanwhile.
 */
void repl_ring_mark_unreleased(struct repl_ring *ring, struct repl_volume *v)
{
	u64 pos, prod;

	mutex_lock(&ring->release_lock);
	pos = ring->ctl->released_pos;
	/* Pairs with the release store of producer_pos in repl_ring_reserve(). */
	prod = smp_load_acquire(&ring->ctl->producer_pos);
	while (pos < prod) {
		struct dm_repl_slot *slot = ring_slot(ring, pos);
		/* Pairs with the release store in repl_ring_commit(). */
		u32 len_flags = smp_load_acquire(&slot->len_flags);
		const struct dm_repl_rec *rec = (const void *)(slot + 1);

		if (!(len_flags & (DM_REPL_SLOT_BUSY | DM_REPL_SLOT_DISCARDED)) &&
		    le16_to_cpu(rec->volume) == v->index && rec->nbytes)
			repl_volume_mark_dirty(v, le64_to_cpu(rec->sector),
					       le32_to_cpu(rec->nbytes),
					       DM_REPL_BEHIND_UNRELEASED);
		pos += slot_span(len_flags & DM_REPL_SLOT_LEN_MASK);
		cond_resched();
	}
	mutex_unlock(&ring->release_lock);
}

/*
 * Drop every record and number the next ones from @next_seq in @epoch. For
 * a role change: nothing is in flight, and whatever the records held is
 * marked dirty or no longer needed.
 */
void repl_ring_restart(struct repl_ring *ring, u64 next_seq, u64 epoch)
{
	unsigned long flags;

	mutex_lock(&ring->release_lock);
	spin_lock_irqsave(&ring->lock, flags);
	WRITE_ONCE(ring->ctl->released_pos, ring->ctl->producer_pos);
	WRITE_ONCE(ring->ctl->released_seq, next_seq - 1);
	ring->next_seq = next_seq;
	ring->epoch = epoch;
	spin_unlock_irqrestore(&ring->lock, flags);
	mutex_unlock(&ring->release_lock);
}

/*
 * Begin a new stream at @next_seq in @epoch: every record is dropped (as in
 * repl_ring_restart()), and the next record reserved is the stream's STREAM
 * record naming @prev (DM_REPL_STREAM_HISTORY streams, newest first).
 */
void repl_ring_new_stream(struct repl_ring *ring, u64 next_seq, u64 epoch,
			  const u64 *prev, bool gap)
{
	unsigned long flags;
	u64 stream;

	do {
		stream = get_random_u64();
	} while (!stream);
	repl_ring_restart(ring, next_seq, epoch);
	spin_lock_irqsave(&ring->lock, flags);
	ring->stream = stream;
	memcpy(ring->history, prev, sizeof(ring->history));
	ring->stream_pending = true;
	ring->stream_gap = gap;
	ring->gap_pending = false;
	ring->seq_limit = next_seq + REPL_SEQ_LEASE;
	spin_unlock_irqrestore(&ring->lock, flags);
}

/*
 * The first stream of a group loaded as primary, from a volume's superblock:
 * above every sequence the last stream used (exactly where it ended if it
 * was shut down cleanly; past its persisted bound if not), naming it, with
 * GAP unless it ended cleanly with every record released.
 */
void repl_ring_from_sb(struct repl_ring *ring,
		       const struct dm_repl_meta_sb *sb)
{
	bool clean = le32_to_cpu(sb->flags) & DM_REPL_META_F_CLEAN;
	u64 released = le64_to_cpu(sb->released_seq);
	u64 next = le64_to_cpu(sb->seq_next);
	u64 prev[DM_REPL_STREAM_HISTORY];
	u64 epoch = le64_to_cpu(sb->next_epoch);
	bool gap;
	int i;

	prev[0] = le64_to_cpu(sb->stream);
	for (i = 1; i < DM_REPL_STREAM_HISTORY; i++)
		prev[i] = le64_to_cpu(sb->stream_history[i - 1]);
	/*
	 * A gap unless the last stream ended cleanly, whole and released (a
	 * crash of metadata from before streams, stream 0, is a gap too).
	 */
	gap = !clean || (prev[0] && released + 1 != next);
	next = max3(next, released + 1, 1ULL);
	repl_ring_new_stream(ring, next, max(epoch, 1ULL), prev, gap);
}

/* What the superblock of a primary's volume says while the ring runs. */
void repl_ring_to_sb(struct repl_ring *ring, struct dm_repl_meta_sb *sb)
{
	unsigned long flags;
	int i;

	spin_lock_irqsave(&ring->lock, flags);
	sb->stream = cpu_to_le64(ring->stream);
	for (i = 1; i < DM_REPL_STREAM_HISTORY; i++)
		sb->stream_history[i - 1] = cpu_to_le64(ring->history[i - 1]);
	sb->seq_next = cpu_to_le64(ring->seq_limit);
	sb->next_epoch = cpu_to_le64(ring->epoch);
	spin_unlock_irqrestore(&ring->lock, flags);
}

/*
 * Half of the persisted bound is released: *@limit is the next one, to be
 * persisted before repl_ring_set_limit().
 */
bool repl_ring_lease_low(struct repl_ring *ring, u64 *limit)
{
	u64 released = READ_ONCE(ring->ctl->released_seq);
	unsigned long flags;
	bool low;

	spin_lock_irqsave(&ring->lock, flags);
	low = ring->seq_limit != U64_MAX &&
	      released + REPL_SEQ_LEASE / 2 > ring->seq_limit;
	spin_unlock_irqrestore(&ring->lock, flags);
	*limit = released + REPL_SEQ_LEASE;
	return low;
}

void repl_ring_set_limit(struct repl_ring *ring, u64 limit)
{
	unsigned long flags;

	spin_lock_irqsave(&ring->lock, flags);
	ring->seq_limit = max(ring->seq_limit, limit);
	spin_unlock_irqrestore(&ring->lock, flags);
}
