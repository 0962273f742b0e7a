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
#include <linux/mm.h>
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
		     u64 seq, u64 epoch, u32 group_tag)
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
	u64 seq[REPL_MAX_RECS_PER_BIO], epoch[REPL_MAX_RECS_PER_BIO];
	struct dm_repl_slot *slot;
	unsigned long flags;
	u64 total = 0, pos;
	unsigned int i;

	for (i = 0; i < nr; i++)
		total += slot_span(repl_rec_size(reqs[i].payload_len));

	spin_lock_irqsave(&ring->lock, flags);
	if (!ring_fits(ring, total)) {
		spin_unlock_irqrestore(&ring->lock, flags);
		return -ENOSPC;
	}
	pos = ring->ctl->producer_pos;
	for (i = 0; i < nr; i++) {
		u32 len = repl_rec_size(reqs[i].payload_len);

		slot = ring_slot(ring, pos);
		slot->len_flags = len | DM_REPL_SLOT_BUSY;
		slot->reserved = 0;
		reqs[i].pos = pos;
		reqs[i].rec = (struct dm_repl_rec *)(slot + 1);
		seq[i] = ring->next_seq++;
		epoch[i] = ring->epoch;
		if (reqs[i].type == DM_REPL_REC_FLUSH)
			ring->epoch++;
		pos += slot_span(len);
	}
	/*
	 * Pairs with the consumer's acquire load of producer_pos: the BUSY
	 * slot headers above are visible before the position that covers them.
	 */
	smp_store_release(&ring->ctl->producer_pos, pos);
	spin_unlock_irqrestore(&ring->lock, flags);

	for (i = 0; i < nr; i++)
		rec_fill(reqs[i].rec, &reqs[i], seq[i], epoch[i], ring->group_tag);
	return 0;
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
					       le32_to_cpu(rec->nbytes));
		pos += slot_span(len_flags & DM_REPL_SLOT_LEN_MASK);
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
