// SPDX-License-Identifier: GPL-2.0
/*
 * The apply path of a secondary: write(2) of a batch of sealed records to
 * the group's character device.
 *
 * A batch is read and judged whole before any of it reaches a disk: every
 * record's structure, crc32c, group, volume, bounds, sequence and epoch.
 * The payloads are copied straight into the pages of the bios that will
 * write them. Then the batch is applied one epoch at a time: the epoch's
 * writes are submitted together (a write that overlaps one in flight waits
 * for it, so overlapping writes land in sequence order), and a FLUSH record
 * waits for them all and flushes the data devices before any write of the
 * next epoch is submitted. A crash in the middle of an epoch leaves the
 * replica at the previous flush plus some of the epoch's writes: what the
 * primary's own disk may hold after a power loss. At the end of the batch
 * the data devices are flushed once more and only then is applied_seq
 * written to every volume's superblock.
 *
 * Locking: apply->lock serialises batches and is taken before
 * repl_groups_lock and group->lock; a volume leaves its group only under it,
 * so a batch's volumes stay alive. apply->stat_lock guards what status and
 * the info ioctl read.
 */
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/crc32c.h>
#include <linux/highmem.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "repl.h"

/* Writes in flight at once; a full window or an overlap waits for all. */
#define APPLY_WINDOW	64

struct apply_rec {
	u64 seq;
	u64 stream;
	u64 time_ns;
	u64 epoch;
	bool skip;		/* applied before: at or below applied_seq */
	sector_t sector;
	u32 nbytes;
	u16 type;
	u16 flags;
	struct repl_volume *vol;
	char *label;		/* MARKER: NUL-terminated */
	struct dm_repl_stream_link *link;	/* STREAM */
	u64 end_volumes;	/* RESYNC_END without data: the primary's */
	struct dm_repl_verify_hash *hash;	/* VERIFY */
	unsigned char verdict;	/* VERIFY: enum verify_verdict, once applied */
	struct bio *bio;	/* WRITE, RESYNC: the payload, not submitted */
	bool region_end;	/* RESYNC: reaches the end of its region */
	bool seed_equal;	/* VERIFY, seeded: equal, clears what it covers */
};

/* What a VERIFY record found; counted only once its batch is applied. */
enum verify_verdict {
	VERIFY_NONE,		/* not applied (skipped, or not reached) */
	VERIFY_NOT_COMPARED,	/* RACED, VOID, a failed read, a suspend */
	VERIFY_EQUAL,
	VERIFY_DIFFER,
};

struct apply_range {
	struct repl_volume *vol;
	sector_t start, end;
};

struct apply_batch {
	struct repl_group *g;
	struct repl_volume *vols[DM_REPL_MAX_VOLUMES];
	struct apply_rec *recs;
	unsigned int nr, cap;

	/* Why it was refused. */
	unsigned int reason;
	u64 bad_seq;

	/* Submission: pending counts the bios in flight, plus one. */
	atomic_t pending;
	struct completion done;
	blk_status_t status;
	u64 written;		/* volumes written since their last flush */
	u64 touched;		/* volumes written in the batch */
	unsigned int nr_window;
	struct apply_range window[APPLY_WINDOW];
	bool inconsistent;	/* after the records submitted so far */
	bool seeded;		/* after the records submitted so far */
	bool outdated;		/* after the records submitted so far */
	bool rejoin;		/* no record submitted yet, and rejoining */
	struct repl_resync_run run;	/* the group's, as the batch goes */
	bool said_dirty;	/* why a RESYNC_END did not end the resync */
	/*
	 * RESYNC records that end a region, VERIFY records a seeded replica
	 * found equal, from and before: not flushed yet
	 */
	unsigned int clear_from, clear_to;
	u64 consistent_seq, consistent_time_ns;
	const struct apply_rec *applied;	/* the last one submitted */

	/* What it did. */
	u64 records, skipped, bytes, flushes;
};

static const int reason_errno[] = {
	[DM_REPL_APPLY_TRUNCATED]	= EINVAL,
	[DM_REPL_APPLY_BAD_MAGIC]	= EINVAL,
	[DM_REPL_APPLY_BAD_VERSION]	= EINVAL,
	[DM_REPL_APPLY_BAD_LENGTH]	= EINVAL,
	[DM_REPL_APPLY_BAD_TYPE]	= EINVAL,
	[DM_REPL_APPLY_BAD_FLAGS]	= EINVAL,
	[DM_REPL_APPLY_BAD_EPOCH]	= EINVAL,
	[DM_REPL_APPLY_TOO_LARGE]	= EMSGSIZE,
	[DM_REPL_APPLY_BAD_CRC]		= EBADMSG,
	[DM_REPL_APPLY_OTHER_GROUP]	= EXDEV,
	[DM_REPL_APPLY_NO_VOLUME]	= ENXIO,
	[DM_REPL_APPLY_OUT_OF_RANGE]	= ERANGE,
	[DM_REPL_APPLY_SEQ_GAP]		= EILSEQ,
	[DM_REPL_APPLY_IO_ERROR]	= EIO,
	[DM_REPL_APPLY_NOT_SECONDARY]	= EPERM,
	[DM_REPL_APPLY_UNKNOWN_STREAM]	= EILSEQ,
};

static const char * const reason_text[] = {
	[DM_REPL_APPLY_TRUNCATED]	= "record runs past the end of the batch",
	[DM_REPL_APPLY_BAD_MAGIC]	= "bad record magic",
	[DM_REPL_APPLY_BAD_VERSION]	= "unknown record version",
	[DM_REPL_APPLY_BAD_LENGTH]	= "record lengths disagree",
	[DM_REPL_APPLY_BAD_TYPE]	= "unknown record type",
	[DM_REPL_APPLY_BAD_FLAGS]	= "unknown or misplaced record flags",
	[DM_REPL_APPLY_BAD_EPOCH]	= "epochs out of order",
	[DM_REPL_APPLY_TOO_LARGE]	= "batch or record too large",
	[DM_REPL_APPLY_BAD_CRC]		= "record checksum mismatch",
	[DM_REPL_APPLY_OTHER_GROUP]	= "record of another group",
	[DM_REPL_APPLY_NO_VOLUME]	= "no volume with the record's index",
	[DM_REPL_APPLY_OUT_OF_RANGE]	= "record past the end of its volume",
	[DM_REPL_APPLY_SEQ_GAP]		= "sequence gap",
	[DM_REPL_APPLY_IO_ERROR]	= "I/O error",
	[DM_REPL_APPLY_NOT_SECONDARY]	= "group is not secondary",
	[DM_REPL_APPLY_UNKNOWN_STREAM]	= "record of a stream that does not follow the applied one",
};

void repl_apply_init(struct repl_group *g, const char *source)
{
	struct repl_apply *a = &g->apply;

	mutex_init(&a->lock);
	atomic_set(&a->suspended, 0);
	init_waitqueue_head(&a->resume_wait);
	spin_lock_init(&a->stat_lock);
	strscpy(a->source, source ?: g->name, sizeof(a->source));
	a->source_tag = repl_group_tag(a->source);
}

/*
 * A new volume of a secondary group: the group has applied what all its
 * volumes have. Going back to the lowest is safe: records re-applied in
 * order onto a later state leave it as it was.
 */
void repl_apply_join(struct repl_group *g, struct repl_volume *v)
{
	struct repl_apply *a = &g->apply;
	const struct dm_repl_meta_sb *sb = v->sb;
	u64 seq = le64_to_cpu(sb->applied_seq);
	u32 sb_flags = le32_to_cpu(sb->flags);
	unsigned long flags;

	mutex_lock(&a->lock);
	if (!v->joined) {
		v->joined = true;
		spin_lock_irqsave(&a->stat_lock, flags);
		if (!a->nr_joined++ || seq < a->applied_seq) {
			if (a->nr_joined > 1)
				DMWARN("%s: volume %u has applied up to %llu only: the group resumes from there",
				       g->name, v->index, seq);
			a->applied_seq = seq;
			a->applied_stream = le64_to_cpu(sb->stream);
			a->applied_time_ns = 0;
			a->applied_epoch = 0;
			a->next_epoch = le64_to_cpu(sb->next_epoch);
		}
		a->inconsistent |= sb_flags & DM_REPL_META_F_INCONSISTENT;
		a->seeded |= sb_flags & DM_REPL_META_F_SEEDED;
		a->rejoin |= sb_flags & DM_REPL_META_F_REJOIN;
		if ((sb_flags & DM_REPL_META_F_OUTDATED) && !a->outdated) {
			a->outdated = true;
			a->consistent_seq = le64_to_cpu(sb->consistent_seq);
			a->consistent_time_ns =
				le64_to_cpu(sb->consistent_time_ns);
		}
		spin_unlock_irqrestore(&a->stat_lock, flags);
	}
	mutex_unlock(&a->lock);
}

/* Counted while not resumed: batches wait until no target is. */
void repl_apply_suspend(struct repl_target *rt)
{
	struct repl_apply *a = &rt->vol->group->apply;

	if (!rt->suspended) {
		rt->suspended = true;
		atomic_inc(&a->suspended);
	}
	/* The batch being applied finishes before the device suspends. */
	mutex_lock(&a->lock);
	mutex_unlock(&a->lock);
}

void repl_apply_resume(struct repl_target *rt)
{
	struct repl_apply *a = &rt->vol->group->apply;

	if (!rt->suspended)
		return;
	rt->suspended = false;
	if (atomic_dec_and_test(&a->suspended))
		wake_up_all(&a->resume_wait);
}

static int apply_lock(struct repl_apply *a)
{
	int r;

	for (;;) {
		r = wait_event_killable(a->resume_wait,
					!atomic_read(&a->suspended));
		if (r)
			return r;
		r = mutex_lock_killable(&a->lock);
		if (r)
			return r;
		if (!atomic_read(&a->suspended))
			return 0;
		mutex_unlock(&a->lock);
	}
}

static int refuse(struct apply_batch *b, unsigned int reason, u64 seq)
{
	b->reason = reason;
	b->bad_seq = seq;
	return -reason_errno[reason];
}

/* Structure of a header: enough to know how much of the batch it takes. */
static unsigned int check_structure(const struct dm_repl_rec *h, size_t avail)
{
	u32 len = le32_to_cpu(h->len);
	u32 plen = le32_to_cpu(h->payload_len);
	u32 nbytes = le32_to_cpu(h->nbytes);
	u16 type = le16_to_cpu(h->type);
	u16 flags = le16_to_cpu(h->flags);

	if (le32_to_cpu(h->magic) != DM_REPL_REC_MAGIC)
		return DM_REPL_APPLY_BAD_MAGIC;
	if (le16_to_cpu(h->version) != DM_REPL_REC_VERSION)
		return DM_REPL_APPLY_BAD_VERSION;
	if (plen > DM_REPL_REC_PAYLOAD_MAX ||
	    len > repl_rec_size(DM_REPL_REC_PAYLOAD_MAX))
		return DM_REPL_APPLY_TOO_LARGE;
	if (len != repl_rec_size(plen))
		return DM_REPL_APPLY_BAD_LENGTH;
	if (len > avail)
		return DM_REPL_APPLY_TRUNCATED;
	if (type < DM_REPL_REC_WRITE || type > DM_REPL_REC_TYPE_MAX)
		return DM_REPL_APPLY_BAD_TYPE;
	if ((flags & ~DM_REPL_RECF_KNOWN) ||
	    ((flags & DM_REPL_RECF_RESYNC_END) && type != DM_REPL_REC_RESYNC) ||
	    ((flags & DM_REPL_RECF_GAP) && type != DM_REPL_REC_STREAM) ||
	    ((flags & DM_REPL_RECF_RACED) && type != DM_REPL_REC_VERIFY))
		return DM_REPL_APPLY_BAD_FLAGS;
	if (h->reserved)
		return DM_REPL_APPLY_BAD_FLAGS;
	/* The ring's own records never fail: no VOID form. */
	if ((flags & DM_REPL_RECF_VOID) &&
	    (type == DM_REPL_REC_STREAM || type == DM_REPL_REC_GAP))
		return DM_REPL_APPLY_BAD_FLAGS;
	/* ZERO: a resynced region's data, as zeros without a payload. */
	if ((flags & DM_REPL_RECF_ZERO) &&
	    (type != DM_REPL_REC_RESYNC || (flags & DM_REPL_RECF_VOID)))
		return DM_REPL_APPLY_BAD_FLAGS;
	if (flags & DM_REPL_RECF_VOID)
		return plen ? DM_REPL_APPLY_BAD_LENGTH : DM_REPL_APPLY_OK;

	switch (type) {
	case DM_REPL_REC_RESYNC:
		/* ZERO stands for a record whose payload it had. */
		if (flags & DM_REPL_RECF_ZERO) {
			if (plen || !nbytes || nbytes % SECTOR_SIZE ||
			    nbytes > DM_REPL_REC_PAYLOAD_MAX)
				return DM_REPL_APPLY_BAD_LENGTH;
			break;
		}
		/* The end of a resync: a record of its own, with no data. */
		if ((flags & DM_REPL_RECF_RESYNC_END) && !nbytes) {
			if (plen != sizeof(struct dm_repl_resync_end))
				return DM_REPL_APPLY_BAD_LENGTH;
			break;
		}
		fallthrough;
	case DM_REPL_REC_WRITE:
		/* The data of whole sectors: payload_len == nbytes. */
		if (plen != nbytes || !nbytes || nbytes % SECTOR_SIZE)
			return DM_REPL_APPLY_BAD_LENGTH;
		break;
	case DM_REPL_REC_DISCARD:
	case DM_REPL_REC_WRITE_ZEROES:
		if (plen || !nbytes || nbytes % SECTOR_SIZE)
			return DM_REPL_APPLY_BAD_LENGTH;
		break;
	case DM_REPL_REC_FLUSH:
		if (plen || nbytes)
			return DM_REPL_APPLY_BAD_LENGTH;
		break;
	case DM_REPL_REC_MARKER:
		if (!plen || plen > DM_REPL_MARKER_LABEL_MAX || nbytes)
			return DM_REPL_APPLY_BAD_LENGTH;
		break;
	case DM_REPL_REC_STREAM:
		if (plen != sizeof(struct dm_repl_stream_link) || nbytes)
			return DM_REPL_APPLY_BAD_LENGTH;
		break;
	case DM_REPL_REC_GAP:
		if (plen || nbytes)
			return DM_REPL_APPLY_BAD_LENGTH;
		break;
	case DM_REPL_REC_VERIFY:
		if (plen != sizeof(struct dm_repl_verify_hash) || !nbytes ||
		    nbytes % SECTOR_SIZE || nbytes > DM_REPL_VERIFY_NBYTES_MAX)
			return DM_REPL_APPLY_BAD_LENGTH;
		break;
	}
	return DM_REPL_APPLY_OK;
}

static struct apply_rec *batch_add(struct apply_batch *b)
{
	struct apply_rec *recs;
	unsigned int cap;

	if (b->nr == b->cap) {
		cap = b->cap ? 2 * b->cap : 64;
		recs = kvrealloc(b->recs, b->cap * sizeof(*recs),
				 cap * sizeof(*recs), GFP_KERNEL | __GFP_ZERO);
		if (!recs)
			return NULL;
		b->recs = recs;
		b->cap = cap;
	}
	return &b->recs[b->nr++];
}

/* Copy a payload into new pages of a bio, adding it to *crc. */
static int read_payload_bio(struct apply_rec *rec, const char __user *src,
			    u32 len, u32 *crc)
{
	struct bio *bio;
	struct page *page;
	u32 n;
	unsigned short nr_vecs = DIV_ROUND_UP(len, PAGE_SIZE);

	/*
	 * A batch holds its payloads until it is judged whole: its own
	 * allocations, never a bio_set's reserve that I/O relies on.
	 */
	bio = bio_kmalloc(nr_vecs, GFP_KERNEL);
	if (!bio)
		return -ENOMEM;
	bio_init(bio, NULL, bio->bi_inline_vecs, nr_vecs, REQ_OP_WRITE);
	rec->bio = bio;
	for (; len; len -= n, src += n) {
		n = min_t(u32, len, PAGE_SIZE);
		page = alloc_page(GFP_KERNEL);
		if (!page)
			return -ENOMEM;
		__bio_add_page(bio, page, n, 0);
		if (copy_from_user(page_address(page), src, n))
			return -EFAULT;
		*crc = crc32c(*crc, page_address(page), n);
	}
	return 0;
}

static void payload_bio_free(struct bio *bio)
{
	bio_free_pages(bio);
	bio_uninit(bio);
	kfree(bio);
}

static int read_label(struct apply_rec *rec, const char __user *src, u32 len,
		      u32 *crc)
{
	rec->label = kzalloc(len + 1, GFP_KERNEL);
	if (!rec->label)
		return -ENOMEM;
	if (copy_from_user(rec->label, src, len))
		return -EFAULT;
	*crc = crc32c(*crc, rec->label, len);
	return 0;
}

static int read_link(struct apply_rec *rec, const char __user *src, u32 len,
		     u32 *crc)
{
	rec->link = kmalloc(len, GFP_KERNEL);
	if (!rec->link)
		return -ENOMEM;
	if (copy_from_user(rec->link, src, len))
		return -EFAULT;
	*crc = crc32c(*crc, rec->link, len);
	return 0;
}

static int read_hash(struct apply_rec *rec, const char __user *src, u32 len,
		     u32 *crc)
{
	rec->hash = kmalloc(sizeof(*rec->hash), GFP_KERNEL);
	if (!rec->hash)
		return -ENOMEM;
	if (len != sizeof(*rec->hash) || copy_from_user(rec->hash, src, len))
		return -EFAULT;
	*crc = crc32c(*crc, rec->hash, len);
	return 0;
}

static int read_end(struct apply_rec *rec, const char __user *src, u32 len,
		    u32 *crc)
{
	struct dm_repl_resync_end end;

	if (len != sizeof(end) || copy_from_user(&end, src, sizeof(end)))
		return -EFAULT;
	*crc = crc32c(*crc, &end, sizeof(end));
	rec->end_volumes = le64_to_cpu(end.volumes);
	return 0;
}

/* The payload, into the record; then the record's crc must match. */
static int read_record(struct apply_batch *b, struct apply_rec *rec,
		       const struct dm_repl_rec *h, const char __user *src)
{
	struct dm_repl_rec zeroed = *h;
	u32 plen = le32_to_cpu(h->payload_len);
	u32 crc;
	int r = 0;

	zeroed.crc = 0;
	crc = crc32c(~0U, &zeroed, sizeof(zeroed));
	if (plen && rec->type == DM_REPL_REC_MARKER)
		r = read_label(rec, src, plen, &crc);
	else if (plen && rec->type == DM_REPL_REC_STREAM)
		r = read_link(rec, src, plen, &crc);
	else if (plen && rec->type == DM_REPL_REC_RESYNC && !rec->nbytes)
		r = read_end(rec, src, plen, &crc);
	else if (plen && rec->type == DM_REPL_REC_VERIFY)
		r = read_hash(rec, src, plen, &crc);
	else if (plen)
		r = read_payload_bio(rec, src, plen, &crc);
	if (r)
		return r;
	if (crc != le32_to_cpu(h->crc))
		return refuse(b, DM_REPL_APPLY_BAD_CRC, rec->seq);
	return 0;
}

static int check_sequence(struct apply_batch *b, struct apply_rec *rec,
			  const struct apply_rec *prev);

/* Where the record goes and where it stands in the group's sequence. */
static int check_place(struct apply_batch *b, struct apply_rec *rec,
		       const struct dm_repl_rec *h)
{
	const struct apply_rec *prev = b->nr > 1 ? rec - 1 : NULL;
	struct repl_apply *a = &b->g->apply;
	unsigned int index = le16_to_cpu(h->volume);

	if (le32_to_cpu(h->group_tag) != a->source_tag)
		return refuse(b, DM_REPL_APPLY_OTHER_GROUP, rec->seq);
	/* The ring's own records: of the group, on no volume. */
	if (rec->type == DM_REPL_REC_STREAM || rec->type == DM_REPL_REC_GAP) {
		if (index)
			return refuse(b, DM_REPL_APPLY_NO_VOLUME, rec->seq);
		return check_sequence(b, rec, prev);
	}
	if (index >= DM_REPL_MAX_VOLUMES || !b->vols[index])
		return refuse(b, DM_REPL_APPLY_NO_VOLUME, rec->seq);
	rec->vol = b->vols[index];
	if (rec->sector > rec->vol->sectors ||
	    (rec->nbytes >> SECTOR_SHIFT) > rec->vol->sectors - rec->sector)
		return refuse(b, DM_REPL_APPLY_OUT_OF_RANGE, rec->seq);

	return check_sequence(b, rec, prev);
}

static bool link_names(const struct dm_repl_stream_link *link, u64 stream)
{
	unsigned int i;

	for (i = 0; i < DM_REPL_STREAM_HISTORY; i++)
		if (le64_to_cpu(link->prev[i]) == stream)
			return true;
	return false;
}

/*
 * A STREAM record begins a stream after the one the replica is at (@stream,
 * up to @seq): it must name that stream among those before it and, unless
 * it says GAP, go on right after it. A replica that never applied a stream
 * (0) takes the first one it is given.
 */
static int check_new_stream(struct apply_batch *b, struct apply_rec *rec,
			    u64 stream, u64 seq, u64 expect_epoch)
{
	bool gap = rec->flags & DM_REPL_RECF_GAP;

	if (rec->type != DM_REPL_REC_STREAM ||
	    (stream && !link_names(rec->link, stream)))
		return refuse(b, DM_REPL_APPLY_UNKNOWN_STREAM, rec->seq);
	if (!gap && rec->seq != seq + 1)
		return refuse(b, DM_REPL_APPLY_SEQ_GAP, rec->seq);
	if (!rec->epoch || (!gap && expect_epoch && rec->epoch != expect_epoch))
		return refuse(b, DM_REPL_APPLY_BAD_EPOCH, rec->seq);
	return 0;
}

/*
 * Where the record stands: right after the one before it in the batch (or,
 * for the first, at or below applied_seq + 1 of the applied stream, those
 * at or below being skipped), or at the start of a new stream. Records
 * count as applied by (stream, sequence), never by the sequence alone.
 */
static int check_sequence(struct apply_batch *b, struct apply_rec *rec,
			  const struct apply_rec *prev)
{
	struct repl_apply *a = &b->g->apply;
	u64 stream = prev ? prev->stream : a->applied_stream;
	/* After records skipped, the replica is where it was. */
	u64 seq = prev && !prev->skip ? prev->seq : a->applied_seq;
	u64 expect_epoch;

	if (!rec->seq || rec->seq >= REPL_SEQ_MAX)
		return refuse(b, DM_REPL_APPLY_SEQ_GAP, rec->seq);

	if (prev)
		expect_epoch = prev->epoch + (prev->type == DM_REPL_REC_FLUSH);
	else
		expect_epoch = a->next_epoch;
	if (!rec->stream)
		return refuse(b, DM_REPL_APPLY_UNKNOWN_STREAM, rec->seq);
	/* Rejoining: the first record is taken, whatever its place. */
	if (!prev && a->rejoin)
		return rec->epoch ? 0 : refuse(b, DM_REPL_APPLY_BAD_EPOCH, rec->seq);
	/* A replica that never applied a stream adopts the first record's. */
	if (rec->stream != stream &&
	    (prev || stream || rec->type == DM_REPL_REC_STREAM))
		return check_new_stream(b, rec, stream, seq, expect_epoch);

	if (prev ? rec->seq != prev->seq + 1 :
		   !rec->seq || rec->seq > a->applied_seq + 1)
		return refuse(b, DM_REPL_APPLY_SEQ_GAP, rec->seq);
	rec->skip = prev ? prev->skip && rec->seq <= a->applied_seq :
			   rec->seq <= a->applied_seq;
	if (!prev && rec->seq != seq + 1)
		expect_epoch = 0;
	if (!rec->epoch || (expect_epoch && rec->epoch != expect_epoch))
		return refuse(b, DM_REPL_APPLY_BAD_EPOCH, rec->seq);
	return 0;
}

static int parse_record(struct apply_batch *b, const char __user *src,
			size_t avail, u32 *len)
{
	struct dm_repl_rec h;
	struct apply_rec *rec;
	unsigned int reason;
	int r;

	if (avail < sizeof(h))
		return refuse(b, DM_REPL_APPLY_TRUNCATED,
			      b->nr ? b->recs[b->nr - 1].seq + 1 : 0);
	if (copy_from_user(&h, src, sizeof(h)))
		return -EFAULT;
	reason = check_structure(&h, avail);
	if (reason)
		return refuse(b, reason, le64_to_cpu(h.seq));

	rec = batch_add(b);
	if (!rec)
		return -ENOMEM;
	rec->seq = le64_to_cpu(h.seq);
	rec->stream = le64_to_cpu(h.stream);
	rec->time_ns = le64_to_cpu(h.time_ns);
	rec->epoch = le64_to_cpu(h.epoch);
	rec->sector = le64_to_cpu(h.sector);
	rec->nbytes = le32_to_cpu(h.nbytes);
	rec->type = le16_to_cpu(h.type);
	rec->flags = le16_to_cpu(h.flags);
	r = read_record(b, rec, &h, src + sizeof(h));
	if (r)
		return r;
	*len = le32_to_cpu(h.len);
	return check_place(b, rec, &h);
}

static int batch_parse(struct apply_batch *b, const char __user *buf,
		       size_t count)
{
	size_t off = 0;
	u32 len;
	int r;

	while (off < count) {
		r = parse_record(b, buf + off, count - off, &len);
		if (r)
			return r;
		off += len;
	}
	return 0;
}

static void apply_end_io(struct bio *bio)
{
	struct apply_batch *b = bio->bi_private;

	if (bio->bi_status)
		WRITE_ONCE(b->status, bio->bi_status);
	payload_bio_free(bio);
	if (atomic_dec_and_test(&b->pending))
		complete(&b->done);
}

/* Wait for every write in flight. */
static void window_drain(struct apply_batch *b)
{
	if (!atomic_dec_and_test(&b->pending))
		wait_for_completion(&b->done);
	reinit_completion(&b->done);
	atomic_set(&b->pending, 1);
	b->nr_window = 0;
}

static bool window_overlaps(const struct apply_batch *b,
			    const struct apply_rec *rec)
{
	sector_t end = rec->sector + (rec->nbytes >> SECTOR_SHIFT);
	unsigned int i;

	for (i = 0; i < b->nr_window; i++)
		if (b->window[i].vol == rec->vol &&
		    rec->sector < b->window[i].end &&
		    b->window[i].start < end)
			return true;
	return false;
}

/* Make room in the window for @rec, after what it overlaps. */
static void window_enter(struct apply_batch *b, const struct apply_rec *rec)
{
	if (b->nr_window == APPLY_WINDOW || window_overlaps(b, rec))
		window_drain(b);
	b->window[b->nr_window++] = (struct apply_range) {
		.vol = rec->vol,
		.start = rec->sector,
		.end = rec->sector + (rec->nbytes >> SECTOR_SHIFT),
	};
	b->written |= BIT_ULL(rec->vol->index);
	b->touched |= BIT_ULL(rec->vol->index);
}

static void submit_write(struct apply_batch *b, struct apply_rec *rec)
{
	struct bio *bio = rec->bio;

	window_enter(b, rec);
	b->bytes += rec->nbytes;
	rec->bio = NULL;	/* apply_end_io() frees it */
	bio_set_dev(bio, rec->vol->data_bdev);
	bio->bi_iter.bi_sector = rec->sector;
	bio->bi_end_io = apply_end_io;
	bio->bi_private = b;
	atomic_inc(&b->pending);
	submit_bio(bio);
}

/* Discard and write-zeroes: rare, so done synchronously, in order. */
static void submit_zeroes(struct apply_batch *b, struct apply_rec *rec)
{
	struct block_device *bdev = rec->vol->data_bdev;
	sector_t nr = rec->nbytes >> SECTOR_SHIFT;
	int r;

	window_enter(b, rec);
	if (rec->type == DM_REPL_REC_DISCARD && bdev_max_discard_sectors(bdev))
		r = blkdev_issue_discard(bdev, rec->sector, nr, GFP_KERNEL);
	else
		r = blkdev_issue_zeroout(bdev, rec->sector, nr, GFP_KERNEL, 0);
	if (r)
		WRITE_ONCE(b->status, BLK_STS_IOERR);
}

/* 64 KiB, a thin pool's usual block: read, and zeroed unless zeros. */
#define ZERO_CHUNK_PAGES 16

/* Are the first @nr sectors held by @pages zeros? */
static bool pages_zero(struct page **pages, sector_t nr)
{
	unsigned int i;
	bool zeros = true;

	for (i = 0; zeros && nr; i++) {
		unsigned int n = min_t(sector_t, nr, PAGE_SECTORS);
		void *p = kmap_local_page(pages[i]);

		zeros = !memchr_inv(p, 0, n << SECTOR_SHIFT);
		kunmap_local(p);
		nr -= n;
	}
	return zeros;
}

/* Read @nr sectors (at most @n pages) at @sector into @pages. */
static int read_chunk(struct block_device *bdev, sector_t sector, sector_t nr,
		      struct page **pages, unsigned int n)
{
	struct bio_vec bvecs[ZERO_CHUNK_PAGES];
	struct bio bio;
	unsigned int i;
	int r;

	bio_init(&bio, bdev, bvecs, n, REQ_OP_READ);
	bio.bi_iter.bi_sector = sector;
	for (i = 0; nr; i++) {
		unsigned int len = min_t(sector_t, nr, PAGE_SECTORS);

		__bio_add_page(&bio, pages[i], len << SECTOR_SHIFT, 0);
		nr -= len;
	}
	r = submit_bio_wait(&bio);
	bio_uninit(&bio);
	return r;
}

/*
 * Zero @nr sectors at @sector, a chunk at a time, writing only the chunks
 * that do not read as zeros already: a thin or sparse device stays
 * unallocated there. A chunk that cannot be read is zeroed.
 */
static int zero_where_not_zero(struct block_device *bdev, sector_t sector,
			       sector_t nr)
{
	struct page *pages[ZERO_CHUNK_PAGES];
	unsigned int n;
	int r = 0;

	for (n = 0; n < ZERO_CHUNK_PAGES; n++) {
		pages[n] = alloc_page(GFP_NOIO);
		if (!pages[n])
			break;
	}
	if (!n)
		return blkdev_issue_zeroout(bdev, sector, nr, GFP_NOIO, 0);
	while (!r && nr) {
		sector_t len = min_t(sector_t, nr, (sector_t)n * PAGE_SECTORS);

		if (read_chunk(bdev, sector, len, pages, n) ||
		    !pages_zero(pages, len))
			r = blkdev_issue_zeroout(bdev, sector, len, GFP_NOIO, 0);
		sector += len;
		nr -= len;
		cond_resched();
	}
	while (n--)
		__free_page(pages[n]);
	return r;
}

/*
 * A resynced region that was zeros on the primary (a RESYNC record in its
 * ZERO form). The device zeroes it if it can do so without writing pages
 * (it may unmap it); else only the chunks that are not zeros already are
 * written, so that a thin or sparse replica is not filled with zeros.
 */
static void submit_resync_zeroes(struct apply_batch *b, struct apply_rec *rec)
{
	struct block_device *bdev = rec->vol->data_bdev;
	sector_t nr = rec->nbytes >> SECTOR_SHIFT;
	int r;

	window_enter(b, rec);	/* the read sees every write before it */
	/*
	 * Not only EOPNOTSUPP: a device that said it could and then could
	 * not (EREMOTEIO) gets the slow way too, and a real I/O error shows
	 * there again.
	 */
	r = blkdev_issue_zeroout(bdev, rec->sector, nr, GFP_NOIO,
				 BLKDEV_ZERO_NOFALLBACK);
	if (r)
		r = zero_where_not_zero(bdev, rec->sector, nr);
	if (r)
		WRITE_ONCE(b->status, BLK_STS_IOERR);
}

/*
 * A RESYNC record (full or ZERO) whose range ends where its region ends
 * completes the region: a primary resyncs a region as contiguous records in
 * ascending order, with the region size of this replica.
 */
/*
 * A region is resent when the RESYNC records that end at its end began at
 * or before its start, back to back: the first record taken after a rejoin
 * may fall in the middle of a region whose start still holds this site's
 * own write, and so may a run whose region size is not this replica's.
 */
static void note_region_end(struct apply_batch *b, struct apply_rec *rec)
{
	const struct repl_volume *v = rec->vol;
	struct repl_resync_run *run = &b->run;
	sector_t end = rec->sector + (rec->nbytes >> SECTOR_SHIFT);
	unsigned long region = (end - 1) >> v->region_shift;

	if (!run->valid || run->stream != rec->stream || run->seq + 1 != rec->seq ||
	    run->volume != v->index || run->end != rec->sector)
		run->start = rec->sector;
	run->valid = true;
	run->stream = rec->stream;
	run->seq = rec->seq;
	run->volume = v->index;
	run->end = end;
	if (end != min_t(sector_t, (sector_t)(region + 1) << v->region_shift,
			 v->sectors) ||
	    run->start > (sector_t)region << v->region_shift)
		return;
	rec->region_end = true;
	b->clear_to = rec - b->recs + 1;
}

/*
 * A seeded replica's regions that a VERIFY record found equal, the ones its
 * range covers whole (the primary's region size may differ from ours): they
 * are the primary's now.
 */
static void clear_verified(const struct apply_rec *rec)
{
	struct repl_volume *v = rec->vol;
	sector_t end = rec->sector + (rec->nbytes >> SECTOR_SHIFT);
	unsigned long region, last;

	region = (rec->sector + (1ULL << v->region_shift) - 1) >> v->region_shift;
	last = end >= v->sectors ? v->nr_regions : end >> v->region_shift;
	for (; region < last; region++)
		if (test_and_clear_bit(region, v->bitmap))
			atomic64_dec(&v->dirty);
}

/*
 * The regions that RESYNC records completed are on the disk now, as the
 * primary has them: what this site wrote there on its own (its dirty bits)
 * is gone; so are the regions a seeded replica found equal. Saved with the
 * bitmap when the resync ends; a crash before makes them dirty again, which
 * is only more work.
 */
static void clear_resynced(struct apply_batch *b)
{
	struct apply_rec *rec;
	unsigned long region;

	for (; b->clear_from < b->clear_to; b->clear_from++) {
		rec = &b->recs[b->clear_from];
		if (rec->seed_equal)
			clear_verified(rec);
		if (!rec->region_end)
			continue;
		region = (rec->sector + (rec->nbytes >> SECTOR_SHIFT) - 1) >>
			 rec->vol->region_shift;
		if (test_and_clear_bit(region, rec->vol->bitmap))
			atomic64_dec(&rec->vol->dirty);
	}
}

/* The end of an epoch: its writes are complete and durable. */
static void flush_written(struct apply_batch *b)
{
	unsigned int i;

	window_drain(b);
	for (i = 0; i < DM_REPL_MAX_VOLUMES; i++) {
		if (!(b->written & BIT_ULL(i)))
			continue;
		if (blkdev_issue_flush(b->vols[i]->data_bdev))
			WRITE_ONCE(b->status, BLK_STS_IOERR);
		b->flushes++;
	}
	b->written = 0;
	if (!READ_ONCE(b->status))
		clear_resynced(b);
}

static void sb_flag(struct dm_repl_meta_sb *sb, u32 flag, bool set)
{
	if (set)
		sb->flags |= cpu_to_le32(flag);
	else
		sb->flags &= cpu_to_le32(~flag);
}

void repl_apply_to_sb(const struct repl_apply_point *p,
		      struct dm_repl_meta_sb *sb)
{
	sb->applied_seq = cpu_to_le64(p->applied_seq);
	sb->stream = cpu_to_le64(p->applied_stream);
	sb->next_epoch = cpu_to_le64(p->next_epoch);
	sb->consistent_seq = cpu_to_le64(p->outdated ? p->consistent_seq : 0);
	sb->consistent_time_ns =
		cpu_to_le64(p->outdated ? p->consistent_time_ns : 0);
	sb_flag(sb, DM_REPL_META_F_INCONSISTENT, p->inconsistent);
	sb_flag(sb, DM_REPL_META_F_SEEDED, p->seeded);
	sb_flag(sb, DM_REPL_META_F_OUTDATED, p->outdated);
	sb_flag(sb, DM_REPL_META_F_REJOIN, p->rejoin);
}

/* Where the group is now. Caller holds a->lock. */
void repl_apply_point(const struct repl_apply *a, struct repl_apply_point *p)
{
	*p = (struct repl_apply_point) {
		.applied_seq = a->applied_seq,
		.applied_stream = a->applied_stream,
		.next_epoch = a->next_epoch,
		.inconsistent = a->inconsistent,
		.seeded = a->seeded,
		.outdated = a->outdated,
		.rejoin = a->rejoin,
		.consistent_seq = a->consistent_seq,
		.consistent_time_ns = a->consistent_time_ns,
	};
}

/* The point after the records of the batch submitted so far. */
static void batch_point(const struct apply_batch *b,
			struct repl_apply_point *p)
{
	const struct apply_rec *last = b->applied;

	repl_apply_point(&b->g->apply, p);
	if (last) {
		p->applied_seq = last->seq;
		p->applied_stream = last->stream;
		p->next_epoch = last->epoch + (last->type == DM_REPL_REC_FLUSH);
	}
	p->inconsistent = b->inconsistent;
	p->seeded = b->seeded;
	p->outdated = b->outdated;
	p->rejoin = b->rejoin;
	p->consistent_seq = b->consistent_seq;
	p->consistent_time_ns = b->consistent_time_ns;
}

/* Write the batch's point into every volume's superblock. */
static int persist(struct apply_batch *b)
{
	struct repl_apply_point p;
	struct repl_volume *v;
	unsigned int i;
	int r = 0;

	batch_point(b, &p);
	for (i = 0; i < DM_REPL_MAX_VOLUMES; i++) {
		v = b->vols[i];
		if (!v)
			continue;
		repl_apply_to_sb(&p, v->sb);
		r = repl_meta_write_sb(v->meta_bdev, v) ?: r;
	}
	return r;
}

/*
 * From this record on the replica is not crash-consistent: what came before
 * it is the last consistent state, which status reports until a resync.
 */
static void become_outdated(struct apply_batch *b)
{
	const struct apply_rec *last = b->applied;

	if (b->outdated)
		return;
	b->outdated = true;
	b->consistent_seq = last ? last->seq : b->g->apply.applied_seq;
	b->consistent_time_ns = last ? last->time_ns :
				b->g->apply.applied_time_ns;
	/*
	 * On disk before anything past the gap lands: a crash from here on
	 * must not leave a replica that says consistent. What came before
	 * the gap is made durable first, so the point persisted is true.
	 */
	flush_written(b);
	if (persist(b))
		WRITE_ONCE(b->status, BLK_STS_IOERR);
}

/* A resync begins: the replica says so on disk before its data changes. */
static void begin_resync(struct apply_batch *b)
{
	flush_written(b);
	b->inconsistent = true;
	if (persist(b))
		WRITE_ONCE(b->status, BLK_STS_IOERR);
}

/*
 * The resync makes the replica whole again: only one under way (the
 * primary's END follows its RESYNC records), and, for an END of its own,
 * only if the primary had every volume this replica has (a volume it
 * lacked may be dirty on its side). Whether this site's own writes are all
 * gone too, end_resync() sees.
 */
static bool resync_ends(const struct apply_batch *b, const struct apply_rec *rec)
{
	unsigned int i;

	if (!b->inconsistent)
		return false;
	if (rec->nbytes)
		return true;
	for (i = 0; i < DM_REPL_MAX_VOLUMES; i++)
		if (b->vols[i] && !(rec->end_volumes & BIT_ULL(i)))
			return false;
	return true;
}

/* Regions this site wrote on its own that no RESYNC record replaced yet. */
static u64 dirty_regions(const struct apply_batch *b)
{
	u64 dirty = 0;
	unsigned int i;

	for (i = 0; i < DM_REPL_MAX_VOLUMES; i++)
		if (b->vols[i])
			dirty += atomic64_read(&b->vols[i]->dirty);
	return dirty;
}

/*
 * The bitmaps are clean: they reach the disk before a superblock says
 * consistent (the batch's persist() writes it).
 */
static bool save_clean(struct apply_batch *b)
{
	unsigned int i;

	for (i = 0; i < DM_REPL_MAX_VOLUMES; i++) {
		if (b->vols[i] && repl_meta_save_bitmap(b->vols[i])) {
			WRITE_ONCE(b->status, BLK_STS_IOERR);
			return false;
		}
	}
	/*
	 * No region of its own is left: a promotion from here has nothing
	 * to resync (it would otherwise start with a resync's END). Both
	 * under g->lock, as status reads them: never "behind" for no reason.
	 */
	mutex_lock(&b->g->lock);
	atomic_set(&b->g->behind_why, 0);
	clear_bit(REPL_BEHIND, &b->g->flags);
	mutex_unlock(&b->g->lock);
	if (b->seeded)
		DMINFO("%s: seeded replica: every region verified equal to the primary or resent: consistent",
		       b->g->name);
	b->inconsistent = false;
	b->seeded = false;
	return true;
}

/*
 * A RESYNC_END: consistent again once every record before it is durable,
 * and only if no volume has a region of this site's own left (a force-
 * demoted primary's unreleased writes, a crashed primary's activity log,
 * which the primary resends as RESYNC records). The bitmaps, cleared by
 * those records, reach the disk before a superblock says consistent. On a
 * seeded replica the regions left are those not verified yet: the resync
 * repaired a gap (not outdated any more), the seed is still inconsistent.
 */
static void end_resync(struct apply_batch *b)
{
	u64 dirty;

	flush_written(b);
	if (READ_ONCE(b->status))
		return;
	dirty = dirty_regions(b);
	if (dirty && b->seeded) {
		b->outdated = false;
		return;
	}
	if (dirty) {
		if (!b->said_dirty)
			DMINFO("%s: resync end: %llu regions this site wrote are not resynced yet: still inconsistent",
			       b->g->name, dirty);
		b->said_dirty = true;
		return;
	}
	if (save_clean(b))
		b->outdated = false;
}

/*
 * The end of a batch on a seeded replica: once VERIFY records (flushed)
 * and RESYNC runs have cleared every region, the seed is the primary's
 * data, inconsistent no more. A gap is still owed its resync.
 */
static void end_seeded(struct apply_batch *b)
{
	/*
	 * Past a gap the primary's resync owes its END: the seeding ends
	 * there (end_resync()), or the END would find the replica no longer
	 * inconsistent and leave it outdated for good.
	 */
	if (!b->seeded || b->outdated || READ_ONCE(b->status) || dirty_regions(b))
		return;
	save_clean(b);
}

/*
 * A VERIFY record: once every record before it is on the data devices,
 * hash the range as this replica has it and compare. Nothing changes; the
 * verdict is counted when the batch is applied (note_verifies()), so a
 * batch refused half-way and sent again counts each record once. The hash
 * reads the range a chunk at a time and gives up (not compared) when a
 * target of the group is being suspended or the writer is killed: a
 * suspend waits for the batch, and must not wait for a whole region, nor
 * for every region a batch may hold. A mismatch on a consistent replica is
 * corruption; on a seeded one it is expected (the primary resends the
 * range), and a match clears the regions it covers once it is durable.
 */
static void apply_verify(struct apply_batch *b, struct apply_rec *rec)
{
	struct repl_apply *a = &b->g->apply;
	u8 hash[DM_REPL_VERIFY_HASH_SIZE];
	int r;

	rec->verdict = VERIFY_NOT_COMPARED;
	if (rec->flags & (DM_REPL_RECF_RACED | DM_REPL_RECF_VOID))
		return;
	window_drain(b);
	if (READ_ONCE(b->status))
		return;
	r = repl_verify_hash(rec->vol, rec->sector, rec->nbytes, hash,
			     &a->suspended);
	if (r == -EINTR)
		return;
	if (r) {
		DMERR_LIMIT("%s: verify: volume %u sector %llu: read failed: not compared",
			    b->g->name, rec->vol->index,
			    (unsigned long long)rec->sector);
		return;
	}
	if (!memcmp(hash, rec->hash, sizeof(hash))) {
		rec->verdict = VERIFY_EQUAL;
		if (b->seeded) {
			rec->seed_equal = true;
			b->clear_to = rec - b->recs + 1;
			/*
			 * The seed came by other means and may sit in the
			 * disk's volatile cache: it is flushed before the
			 * regions it holds count as the primary's.
			 */
			b->written |= BIT_ULL(rec->vol->index);
		}
		return;
	}
	rec->verdict = VERIFY_DIFFER;
	if (!b->inconsistent && !b->outdated)
		DMERR_LIMIT("%s: verify: volume %u sectors %llu+%u differ from the primary at seq %llu on a consistent replica: corruption",
			    b->g->name, rec->vol->index,
			    (unsigned long long)rec->sector,
			    rec->nbytes >> SECTOR_SHIFT, rec->seq);
}

static void apply_one(struct apply_batch *b, struct apply_rec *rec)
{
	switch (rec->type) {
	case DM_REPL_REC_RESYNC:
		if (rec->nbytes) {
			if (!b->inconsistent)
				begin_resync(b);
			if (rec->flags & DM_REPL_RECF_ZERO)
				submit_resync_zeroes(b, rec);
			else
				submit_write(b, rec);
			note_region_end(b, rec);
		}
		if ((rec->flags & DM_REPL_RECF_RESYNC_END) && resync_ends(b, rec))
			end_resync(b);
		break;
	case DM_REPL_REC_STREAM:
		if (rec->flags & DM_REPL_RECF_GAP)
			become_outdated(b);
		break;
	case DM_REPL_REC_GAP:
		become_outdated(b);
		break;
	case DM_REPL_REC_WRITE:
		submit_write(b, rec);
		break;
	case DM_REPL_REC_DISCARD:
	case DM_REPL_REC_WRITE_ZEROES:
		submit_zeroes(b, rec);
		break;
	case DM_REPL_REC_FLUSH:
		flush_written(b);
		break;
	case DM_REPL_REC_VERIFY:
		apply_verify(b, rec);
		break;
	}
}

/* A VOID end of a resync, a VOID verify: they wrote nothing on the primary. */
static bool void_no_hole(const struct apply_rec *rec)
{
	return (rec->type == DM_REPL_REC_RESYNC && !rec->nbytes) ||
	       rec->type == DM_REPL_REC_VERIFY;
}

/* Apply the records above applied_seq; returns the last one applied. */
static struct apply_rec *batch_submit(struct apply_batch *b)
{
	struct repl_apply *a = &b->g->apply;
	struct apply_rec *last = NULL;
	unsigned int i;

	b->inconsistent = a->inconsistent;
	b->seeded = a->seeded;
	b->outdated = a->outdated;
	b->rejoin = a->rejoin;
	b->run = a->run;
	b->consistent_seq = a->consistent_seq;
	b->consistent_time_ns = a->consistent_time_ns;
	for (i = 0; i < b->nr && !READ_ONCE(b->status); i++) {
		struct apply_rec *rec = &b->recs[i];

		if (rec->skip) {
			b->skipped++;
			continue;
		}
		/*
		 * A write that failed on the primary left its range there
		 * undefined and dirty: a hole here. A failed flush still ends
		 * its epoch.
		 */
		if ((rec->flags & DM_REPL_RECF_VOID) && !void_no_hole(rec))
			become_outdated(b);
		if (!(rec->flags & DM_REPL_RECF_VOID) ||
		    rec->type == DM_REPL_REC_FLUSH ||
		    rec->type == DM_REPL_REC_VERIFY)
			apply_one(b, rec);
		last = rec;
		b->applied = rec;
		b->rejoin = false;
		b->records++;
	}
	flush_written(b);
	end_seeded(b);
	return last;
}

static void note_markers(struct apply_batch *b)
{
	struct repl_apply *a = &b->g->apply;
	struct dm_repl_applied_marker *m;
	unsigned int i;

	for (i = 0; i < b->nr; i++) {
		if (b->recs[i].type != DM_REPL_REC_MARKER || b->recs[i].skip ||
		    (b->recs[i].flags & DM_REPL_RECF_VOID))
			continue;
		if (a->nr_markers == DM_REPL_APPLY_MARKERS) {
			memmove(a->markers, a->markers + 1,
				sizeof(a->markers) - sizeof(a->markers[0]));
			a->nr_markers--;
		}
		m = &a->markers[a->nr_markers++];
		m->seq = b->recs[i].seq;
		m->epoch = b->recs[i].epoch;
		strscpy(m->label, b->recs[i].label, sizeof(m->label));
	}
}

/* The VERIFY records of an applied batch. Caller holds a->stat_lock. */
static void note_verifies(struct apply_batch *b)
{
	struct repl_verify_stats *s = &b->g->apply.verify;
	const struct apply_rec *rec;
	unsigned int i;

	for (i = 0; i < b->nr; i++) {
		rec = &b->recs[i];
		if (!rec->verdict)
			continue;
		s->last_seq = rec->seq;
		if (rec->verdict == VERIFY_NOT_COMPARED) {
			s->raced++;
			continue;
		}
		s->compared++;
		s->bytes += rec->nbytes;
		if (rec->verdict == VERIFY_EQUAL)
			continue;
		s->mismatches++;
		if (s->nr == DM_REPL_VERIFY_LIST) {
			s->head = (s->head + 1) % DM_REPL_VERIFY_LIST;
			s->nr--;
		}
		s->list[(s->head + s->nr++) % DM_REPL_VERIFY_LIST] =
			(struct dm_repl_verify_mismatch) {
				.seq = rec->seq,
				.sector = rec->sector,
				.nbytes = rec->nbytes,
				.volume = rec->vol->index,
			};
	}
}

/* The batch is on disk: make it the group's state. */
static void batch_done(struct apply_batch *b, const struct apply_rec *last)
{
	struct repl_apply *a = &b->g->apply;
	unsigned long flags;

	spin_lock_irqsave(&a->stat_lock, flags);
	if (last) {
		a->applied_seq = last->seq;
		a->applied_stream = last->stream;
		a->applied_time_ns = last->time_ns;
		a->applied_epoch = last->epoch;
		a->next_epoch = last->epoch +
				(last->type == DM_REPL_REC_FLUSH);
		a->inconsistent = b->inconsistent;
		a->seeded = b->seeded;
		a->outdated = b->outdated;
		a->rejoin = b->rejoin;
		a->run = b->run;
		a->consistent_seq = b->consistent_seq;
		a->consistent_time_ns = b->consistent_time_ns;
	}
	note_markers(b);
	note_verifies(b);
	a->batches++;
	a->records += b->records;
	a->skipped += b->skipped;
	a->bytes += b->bytes;
	a->flushes += b->flushes;
	spin_unlock_irqrestore(&a->stat_lock, flags);
	repl_group_notify_now(b->g);
}

/*
 * The batch went to the data devices under the volumes' own devices: what
 * a reader of those has in its page cache is stale now.
 */
static void invalidate_touched(struct apply_batch *b)
{
	unsigned int i;

	for (i = 0; i < DM_REPL_MAX_VOLUMES; i++)
		if (b->touched & BIT_ULL(i))
			invalidate_bdev(dm_disk(b->vols[i]->md)->part0);
}

/*
 * The batch failed half-way: the superblocks may already say INCONSISTENT
 * (a resync began) or OUTDATED (a gap), and so must the group, whatever
 * applied_seq says.
 */
static void note_failed_point(struct apply_batch *b)
{
	struct repl_apply *a = &b->g->apply;
	unsigned long flags;

	spin_lock_irqsave(&a->stat_lock, flags);
	a->inconsistent |= b->inconsistent;
	a->run.valid = false;
	if (b->outdated && !a->outdated) {
		a->outdated = true;
		a->consistent_seq = b->consistent_seq;
		a->consistent_time_ns = b->consistent_time_ns;
	}
	spin_unlock_irqrestore(&a->stat_lock, flags);
}

static int batch_apply(struct apply_batch *b)
{
	struct apply_rec *last = batch_submit(b);

	invalidate_touched(b);
	if (b->status) {
		note_failed_point(b);
		return refuse(b, DM_REPL_APPLY_IO_ERROR, last ? last->seq : 0);
	}
	if (last && persist(b))
		return refuse(b, DM_REPL_APPLY_IO_ERROR, last->seq);
	batch_done(b, last);
	return 0;
}

static void note_refusal(struct repl_group *g, unsigned int reason, u64 seq,
			 int error)
{
	struct repl_apply *a = &g->apply;
	unsigned long flags;

	spin_lock_irqsave(&a->stat_lock, flags);
	a->rejected++;
	a->last_error_seq = seq;
	a->last_error = error;
	a->last_reason = reason;
	spin_unlock_irqrestore(&a->stat_lock, flags);
	DMWARN_LIMIT("%s: batch refused at seq %llu: %s", g->name, seq,
		     reason_text[reason]);
}

static struct apply_batch *batch_alloc(struct repl_group *g)
{
	struct apply_batch *b = kzalloc(sizeof(*b), GFP_KERNEL);
	unsigned int i;

	if (!b)
		return NULL;
	b->g = g;
	atomic_set(&b->pending, 1);
	init_completion(&b->done);
	/*
	 * Only volumes that joined (under a->lock, held here): a volume whose
	 * table is still being built may be behind the group, and a batch
	 * must not carry it past records it never had.
	 */
	mutex_lock(&g->lock);
	for (i = 0; i < DM_REPL_MAX_VOLUMES; i++)
		if (g->volumes[i] && g->volumes[i]->joined)
			b->vols[i] = g->volumes[i];
	mutex_unlock(&g->lock);
	return b;
}

static void batch_free(struct apply_batch *b)
{
	unsigned int i;

	for (i = 0; i < b->nr; i++) {
		if (b->recs[i].bio)
			payload_bio_free(b->recs[i].bio);
		kfree(b->recs[i].label);
		kfree(b->recs[i].link);
		kfree(b->recs[i].hash);
	}
	kvfree(b->recs);
	kfree(b);
}

ssize_t repl_apply_write(struct repl_group *g, const char __user *buf,
			 size_t count)
{
	struct repl_apply *a = &g->apply;
	struct apply_batch *b;
	int r;

	if (g->role != DM_REPL_ROLE_SECONDARY)
		return -EPERM;
	if (count > DM_REPL_APPLY_BATCH_MAX) {
		note_refusal(g, DM_REPL_APPLY_TOO_LARGE, 0, -EMSGSIZE);
		return -EMSGSIZE;
	}
	if (!count)
		return 0;
	r = apply_lock(a);
	if (r)
		return r;
	if (READ_ONCE(g->dead)) {
		r = -ENODEV;
		goto out;
	}
	/* A promotion may have come while this write waited for the lock. */
	if (g->role != DM_REPL_ROLE_SECONDARY) {
		note_refusal(g, DM_REPL_APPLY_NOT_SECONDARY, 0, -EPERM);
		r = -EPERM;
		goto out;
	}
	b = batch_alloc(g);
	if (!b) {
		r = -ENOMEM;
		goto out;
	}
	r = batch_parse(b, buf, count);
	if (!r)
		r = batch_apply(b);
	if (b->reason)
		note_refusal(g, b->reason, b->bad_seq, r);
	batch_free(b);
out:
	mutex_unlock(&a->lock);
	return r ?: count;
}

void repl_apply_info(struct repl_group *g, struct dm_repl_apply_info *info)
{
	struct repl_apply *a = &g->apply;
	unsigned long flags;

	spin_lock_irqsave(&a->stat_lock, flags);
	info->flags = (a->inconsistent ? DM_REPL_APPLYF_INCONSISTENT : 0) |
		      (a->outdated ? DM_REPL_APPLYF_OUTDATED : 0);
	info->applied_stream = a->applied_stream;
	info->consistent_seq = a->outdated ? a->consistent_seq : 0;
	info->consistent_time_ns = a->outdated ? a->consistent_time_ns : 0;
	info->applied_seq = a->applied_seq;
	info->applied_epoch = a->applied_epoch;
	info->batches = a->batches;
	info->records = a->records;
	info->skipped = a->skipped;
	info->bytes = a->bytes;
	info->flushes = a->flushes;
	info->rejected = a->rejected;
	info->last_error_seq = a->last_error_seq;
	info->last_error = a->last_error;
	info->last_reason = a->last_reason;
	info->nr_markers = a->nr_markers;
	memcpy(info->markers, a->markers, sizeof(info->markers));
	spin_unlock_irqrestore(&a->stat_lock, flags);
}
