// SPDX-License-Identifier: GPL-2.0
/*
 * The activity log of a primary volume: which extents may hold writes that
 * a crash would make us forget (Documentation/metadata.md).
 *
 * A write into a hot extent whose transaction is on disk passes at once
 * (the common case: no metadata I/O). Any other write is held on a list
 * and the AL worker makes its extents hot: one transaction, naming the
 * whole hot set, written with FUA for every write that waited meanwhile,
 * and only then are the writes passed down. An extent may go cold once
 * every record of a write into it was released; it is dropped only when
 * the hot set is full and a new extent needs its place, after the bitmap
 * blocks of its dirty regions (from overflows, failed writes) are on disk,
 * and by a transaction written after a flush of the data device.
 * When nothing can be dropped, a write's regions are marked dirty and their
 * bitmap blocks written before it passes: slower, never stalled.
 *
 * At load after a crash, the regions of every extent a current transaction
 * names are marked dirty (repl_al_recover()); then the AL starts afresh.
 *
 * Locking: al->lock (irq-safe) guards the hot set and the waiting list;
 * al->txn_lock serialises the worker's metadata I/O.
 */
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/hash.h>
#include <linux/log2.h>
#include <linux/slab.h>

#include <linux/sched/mm.h>

#include "repl.h"

struct repl_al_extent {
	struct hlist_node hash;
	struct list_head list;	/* on al->hot or al->free */
	u32 nr;			/* extent number */
	bool logged;		/* named by a transaction on disk */
	u64 last_seq;		/* newest record of a write into it */
	u64 stamp;		/* al->clock at the last write into it */
};

#define AL_HASH_BITS	10

struct repl_al {
	spinlock_t lock;
	struct mutex txn_lock;
	struct work_struct work;
	struct bio_list waiting;
	struct repl_volume *vol;

	unsigned int extent_shift;	/* log2(sectors per extent) */
	unsigned int max_hot, nr_hot;
	u64 clock;
	struct list_head hot, free;
	struct hlist_head table[1 << AL_HASH_BITS];
	struct repl_al_extent *pool;

	u32 slots;
	u64 seq;			/* last transaction written */
	bool dropped;			/* an extent went since it */
	struct dm_repl_meta_al_slot *block;

	/* Counters, for status. */
	atomic64_t txns, evictions, fallbacks;
};

static struct repl_al_extent *al_find(struct repl_al *al, u32 nr)
{
	struct repl_al_extent *x;

	hlist_for_each_entry(x, &al->table[hash_32(nr, AL_HASH_BITS)], hash)
		if (x->nr == nr)
			return x;
	return NULL;
}

static void extent_range(const struct repl_al *al, sector_t sector,
			 u32 nbytes, u32 *first, u32 *last)
{
	*first = sector >> al->extent_shift;
	*last = (sector + (nbytes >> SECTOR_SHIFT) - 1) >> al->extent_shift;
}

/*
 * The fast path, from map: true when every extent of the write is hot and
 * logged (the write may pass); otherwise the bio waits for the worker.
 */
bool repl_al_admit(struct repl_volume *v, struct bio *bio,
		   const struct repl_io *io)
{
	struct repl_al *al = v->al;
	struct repl_al_extent *x;
	unsigned long flags;
	u32 e, first, last;
	bool hot = true;

	extent_range(al, io->sector, io->nbytes, &first, &last);
	spin_lock_irqsave(&al->lock, flags);
	al->clock++;
	for (e = first; e <= last && hot; e++) {
		x = al_find(al, e);
		hot = x && x->logged;
		if (hot) {
			x->last_seq = max(x->last_seq, io->seq);
			x->stamp = al->clock;
		}
	}
	if (!hot)
		bio_list_add(&al->waiting, bio);
	spin_unlock_irqrestore(&al->lock, flags);
	if (!hot)
		queue_work(repl_wq, &al->work);
	return hot;
}

/* Bitmap regions of extent @nr. */
static void extent_regions(const struct repl_al *al, u32 nr,
			   unsigned long *first, unsigned long *last)
{
	const struct repl_volume *v = al->vol;
	unsigned int shift = al->extent_shift - v->region_shift;

	*first = (unsigned long)nr << shift;
	*last = min(v->nr_regions - 1,
		    (((unsigned long)nr + 1) << shift) - 1);
}

/*
 * Drop one extent that may go cold, its dirty regions saved first. Caller
 * holds txn_lock. Returns false if none can go.
 */
static bool al_evict_one(struct repl_al *al)
{
	struct repl_volume *v = al->vol;
	u64 released = READ_ONCE(v->group->ring.ctl->released_seq);
	unsigned long first, last, flags;
	struct repl_al_extent *x;
	bool gone = false;
	u64 stamp;

	spin_lock_irqsave(&al->lock, flags);
	list_for_each_entry(x, &al->hot, list)
		if (x->logged && x->last_seq <= released)
			break;
	if (list_entry_is_head(x, &al->hot, list)) {
		spin_unlock_irqrestore(&al->lock, flags);
		return false;
	}
	stamp = x->stamp;
	/* Tried once; goes to the back whatever happens below. */
	list_move_tail(&x->list, &al->hot);
	spin_unlock_irqrestore(&al->lock, flags);

	extent_regions(al, x->nr, &first, &last);
	if (repl_regions_dirty(v, first, last) &&
	    repl_meta_save_regions(v, first, last))
		return false;

	spin_lock_irqsave(&al->lock, flags);
	/* Not if a write went into it meanwhile. */
	if (x->stamp == stamp) {
		hlist_del(&x->hash);
		list_move(&x->list, &al->free);
		al->nr_hot--;
		gone = true;
	}
	spin_unlock_irqrestore(&al->lock, flags);
	if (gone) {
		atomic64_inc(&al->evictions);
		al->dropped = true;
	}
	return true;
}

/*
 * Extent @e of a waiting write: found, or taken from the free list (hot, not
 * yet logged), and stamped with the write. False if the hot set is full.
 */
static bool al_take(struct repl_al *al, u32 e, const struct repl_io *io)
{
	struct repl_al_extent *x;
	unsigned long flags;

	spin_lock_irqsave(&al->lock, flags);
	x = al_find(al, e);
	if (!x && !list_empty(&al->free)) {
		x = list_first_entry(&al->free, typeof(*x), list);
		list_move_tail(&x->list, &al->hot);
		x->nr = e;
		x->logged = false;
		x->last_seq = 0;
		hlist_add_head(&x->hash, &al->table[hash_32(e, AL_HASH_BITS)]);
		al->nr_hot++;
	}
	if (x) {
		x->last_seq = max(x->last_seq, io->seq);
		x->stamp = ++al->clock;
	}
	spin_unlock_irqrestore(&al->lock, flags);
	return x;
}

/*
 * Make the extents of a waiting write hot (not yet logged). False when the
 * hot set is full of extents that cannot go cold. Caller holds txn_lock.
 */
static bool al_make_hot(struct repl_al *al, const struct repl_io *io)
{
	unsigned int tries = 0;
	u32 e, first, last;

	extent_range(al, io->sector, io->nbytes, &first, &last);
	for (e = first; e <= last; e++) {
		while (!al_take(al, e, io)) {
			if (tries++ == al->max_hot || !al_evict_one(al))
				return false;
		}
	}
	return true;
}

/*
 * One transaction naming the whole hot set; then it is all logged. If it
 * drops an extent, the writes into it are flushed first: the replica may
 * have them from the data device's volatile cache, and after a crash that
 * lost them only the extent's place in the AL would have them resynced.
 */
static int al_write_txn(struct repl_al *al)
{
	struct dm_repl_meta_al_slot *s = al->block;
	struct repl_al_extent *x;
	unsigned long flags;
	unsigned int n = 0;
	int r;

	if (al->dropped) {
		r = blkdev_issue_flush(al->vol->data_bdev);
		if (r)
			return r;
		al->dropped = false;
	}
	memset(s, 0, DM_REPL_META_BLOCK_SIZE);
	spin_lock_irqsave(&al->lock, flags);
	list_for_each_entry(x, &al->hot, list)
		s->extents[n++] = cpu_to_le32(x->nr);
	spin_unlock_irqrestore(&al->lock, flags);

	r = repl_meta_write_al(al->vol, s, al->seq + 1, n);
	if (r)
		return r;
	al->seq++;
	atomic64_inc(&al->txns);
	spin_lock_irqsave(&al->lock, flags);
	list_for_each_entry(x, &al->hot, list)
		x->logged = true;
	spin_unlock_irqrestore(&al->lock, flags);
	return 0;
}

/* No room in the AL: the write's regions are dirty on disk before it passes. */
static int al_fallback(struct repl_al *al, const struct repl_io *io)
{
	struct repl_volume *v = al->vol;

	atomic64_inc(&al->fallbacks);
	repl_volume_mark_dirty(v, io->sector, io->nbytes, DM_REPL_BEHIND_AL_FULL);
	return repl_meta_save_regions(v, io->sector >> v->region_shift,
				      (io->sector + (io->nbytes >> SECTOR_SHIFT) - 1) >>
				      v->region_shift);
}

static void al_work(struct work_struct *work)
{
	struct repl_al *al = container_of(work, struct repl_al, work);
	struct bio_list bios;
	struct repl_io *io;
	unsigned long flags;
	unsigned int noio;
	struct bio *bio;
	int r = 0;

	/* Writes wait for us: no allocation may recurse into I/O. */
	noio = memalloc_noio_save();
	mutex_lock(&al->txn_lock);
	spin_lock_irqsave(&al->lock, flags);
	bios = al->waiting;
	bio_list_init(&al->waiting);
	spin_unlock_irqrestore(&al->lock, flags);

	bio_list_for_each(bio, &bios) {
		io = dm_per_bio_data(bio, sizeof(*io));
		io->al_fallback = !al_make_hot(al, io);
	}
	if (!bio_list_empty(&bios))
		r = al_write_txn(al);

	while ((bio = bio_list_pop(&bios))) {
		int fr = 0;

		io = dm_per_bio_data(bio, sizeof(*io));
		if (io->al_fallback)
			fr = al_fallback(al, io);
		if (r || fr)
			bio_io_error(bio);
		else
			dm_submit_bio_remap(bio, NULL);
	}
	mutex_unlock(&al->txn_lock);
	memalloc_noio_restore(noio);
}

int repl_al_create(struct repl_volume *v)
{
	const struct dm_repl_meta_sb *sb = v->sb;
	struct repl_al *al;
	unsigned int i;

	al = kzalloc(sizeof(*al), GFP_KERNEL);
	if (!al)
		return -ENOMEM;
	al->max_hot = le32_to_cpu(sb->hot_extents);
	al->pool = kvcalloc(al->max_hot, sizeof(*al->pool), GFP_KERNEL);
	al->block = kmalloc(DM_REPL_META_BLOCK_SIZE, GFP_KERNEL);
	if (!al->pool || !al->block) {
		kvfree(al->pool);
		kfree(al->block);
		kfree(al);
		return -ENOMEM;
	}
	spin_lock_init(&al->lock);
	mutex_init(&al->txn_lock);
	INIT_WORK(&al->work, al_work);
	bio_list_init(&al->waiting);
	al->vol = v;
	al->extent_shift = ilog2(le32_to_cpu(sb->extent_sectors));
	al->slots = le32_to_cpu(sb->al_slots);
	INIT_LIST_HEAD(&al->hot);
	INIT_LIST_HEAD(&al->free);
	for (i = 0; i < al->max_hot; i++)
		list_add_tail(&al->pool[i].list, &al->free);
	atomic64_set(&al->txns, 0);
	atomic64_set(&al->evictions, 0);
	atomic64_set(&al->fallbacks, 0);
	v->al = al;
	return 0;
}

/* The volume goes: no write waits any more (it is suspended). */
void repl_al_destroy(struct repl_volume *v)
{
	struct repl_al *al = v->al;

	if (!al)
		return;
	flush_work(&al->work);
	WARN_ON(!bio_list_empty(&al->waiting));
	mutex_destroy(&al->txn_lock);
	kvfree(al->pool);
	kfree(al->block);
	kfree(al);
	v->al = NULL;
}

/*
 * Save the bitmap blocks of regions @first to @last under txn_lock, as the
 * worker's saves: no block filled before another save can land after it.
 * Process context, txn_lock not held.
 */
int repl_al_save_regions(struct repl_volume *v, unsigned long first,
			 unsigned long last)
{
	struct repl_al *al = v->al;
	unsigned int noio;
	int r;

	/* Writes wait for txn_lock: no allocation may recurse into I/O. */
	noio = memalloc_noio_save();
	mutex_lock(&al->txn_lock);
	r = repl_meta_save_regions(v, first, last);
	mutex_unlock(&al->txn_lock);
	memalloc_noio_restore(noio);
	return r;
}

/*
 * The ring's records are gone (a demotion): nothing in the hot set waits for
 * a release any more. The next records may be numbered lower (a promotion
 * goes on from the sequence the copy applied): a stale number would keep
 * its extent hot for good, and the hot set full.
 */
void repl_al_forget_seqs(struct repl_volume *v)
{
	struct repl_al *al = v->al;
	struct repl_al_extent *x;
	unsigned long flags;

	spin_lock_irqsave(&al->lock, flags);
	list_for_each_entry(x, &al->hot, list)
		x->last_seq = 0;
	spin_unlock_irqrestore(&al->lock, flags);
}

void repl_al_stats(const struct repl_volume *v, struct repl_al_stats *st)
{
	const struct repl_al *al = v->al;

	st->hot = READ_ONCE(al->nr_hot);
	st->max_hot = al->max_hot;
	st->txns = atomic64_read(&al->txns);
	st->evictions = atomic64_read(&al->evictions);
	st->fallbacks = atomic64_read(&al->fallbacks);
}

/* ---- Recovery ---- */

enum al_slot_state { SLOT_UNUSED, SLOT_TORN, SLOT_BROKEN, SLOT_VALID };

static bool all_zero(const void *p, size_t len)
{
	return !memchr_inv(p, 0, len);
}

static enum al_slot_state judge_slot(const struct repl_volume *v,
				     const struct dm_repl_meta_al_slot *s,
				     unsigned int index, u32 nr_extents_max)
{
	u32 nr = le32_to_cpu(s->nr_extents);
	u64 seq = le64_to_cpu(s->seq);
	u32 i, extents = DIV_ROUND_UP_SECTOR_T(v->sectors,
					le32_to_cpu(v->sb->extent_sectors));

	if (all_zero(s, DM_REPL_META_BLOCK_SIZE))
		return SLOT_UNUSED;
	if (le32_to_cpu(s->magic) != DM_REPL_META_AL_MAGIC ||
	    repl_meta_crc(s, offsetof(struct dm_repl_meta_al_slot, crc)) !=
	    le32_to_cpu(s->crc))
		return SLOT_TORN;
	if (!seq || seq % v->al->slots != index || nr > nr_extents_max ||
	    s->reserved0 || !all_zero(s->reserved1, sizeof(s->reserved1)) ||
	    memcmp(s->uuid, v->uuid, sizeof(s->uuid)) ||
	    !all_zero(&s->extents[nr], (DM_REPL_AL_SLOT_EXTENTS - nr) * 4))
		return SLOT_BROKEN;
	for (i = 0; i < nr; i++)
		if (le32_to_cpu(s->extents[i]) >= extents)
			return SLOT_BROKEN;
	return SLOT_VALID;
}

/* The transaction slot @index should hold when @max is the newest. */
static u64 expected_seq(u32 slots, u32 index, u64 max)
{
	u64 back = (max % slots + slots - index) % slots;

	return max >= back + 1 ? max - back : 0;
}

static void mark_extent(struct repl_al *al, u32 nr)
{
	unsigned long first, last;

	extent_regions(al, nr, &first, &last);
	bitmap_set(al->vol->bitmap, first, last - first + 1);
}

/*
 * After a crash: every region of every extent a current transaction names
 * is dirty. -EUCLEAN when the AL cannot be trusted (metadata.md, rule 4);
 * otherwise the number of current transactions.
 */
int repl_al_recover(struct repl_volume *v)
{
	struct repl_al *al = v->al;
	u32 slots = al->slots, i, j, max_hot = le32_to_cpu(v->sb->hot_extents);
	struct dm_repl_meta_al_slot *s;
	enum al_slot_state *state;
	u64 newest = 0, *seqs;
	int r, current_txns = 0;

	state = kcalloc(slots, sizeof(*state), GFP_KERNEL);
	seqs = kcalloc(slots, sizeof(*seqs), GFP_KERNEL);
	s = kvmalloc_array(slots, DM_REPL_META_BLOCK_SIZE, GFP_KERNEL);
	r = -ENOMEM;
	if (!state || !seqs || !s)
		goto out;
	for (i = 0; i < slots; i++) {
		struct dm_repl_meta_al_slot *b = (void *)s + i * DM_REPL_META_BLOCK_SIZE;

		r = repl_meta_read_al(v, b, i);
		if (r)
			goto out;
		state[i] = judge_slot(v, b, i, max_hot);
		seqs[i] = le64_to_cpu(b->seq);
		if (state[i] == SLOT_VALID)
			newest = max(newest, seqs[i]);
	}
	for (i = 0; i < slots; i++) {
		struct dm_repl_meta_al_slot *b = (void *)s + i * DM_REPL_META_BLOCK_SIZE;
		u64 want = expected_seq(slots, i, newest);

		if (state[i] == SLOT_VALID && seqs[i] == want) {
			for (j = 0; j < le32_to_cpu(b->nr_extents); j++)
				mark_extent(al, le32_to_cpu(b->extents[j]));
			current_txns++;
		} else if (!(state[i] == SLOT_UNUSED && !want) &&
			   !(state[i] == SLOT_TORN && i == (newest + 1) % slots)) {
			r = -EUCLEAN;
			goto out;
		}
	}
	r = current_txns;
out:
	kvfree(s);
	kfree(seqs);
	kfree(state);
	return r;
}

/* A fresh AL: every slot zero, the next transaction number 1. */
int repl_al_reset(struct repl_volume *v)
{
	struct repl_al *al = v->al;
	unsigned int i;
	int r = 0;

	memset(al->block, 0, DM_REPL_META_BLOCK_SIZE);
	for (i = 0; i < al->slots && !r; i++)
		r = repl_meta_zero_al(v, al->block, i);
	al->seq = 0;
	return r;
}
