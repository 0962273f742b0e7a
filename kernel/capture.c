// SPDX-License-Identifier: GPL-2.0
/*
 * The capture path of the primary: every write-type bio becomes records in
 * the group's ring, reserved at submission, committed at completion. A large
 * payload is copied into the ring by the group's copier on another CPU while
 * the data device writes it (the bio's pages cannot change before the bio
 * completes, and it completes only when both are done), so the copy, the
 * only extra work of a write, overlaps the write instead of preceding it; a
 * small one is copied at submission, which costs less than the hand-over.
 * A write that finds no room is never stalled for long: its regions go to
 * the dirty bitmap instead.
 */
#include <linux/bio.h>
#include <linux/jiffies.h>

#include "repl.h"

/* The records a bio asks for: an optional FLUSH, then its data record. */
static unsigned int bio_records(struct bio *bio, sector_t sector,
				u16 volume, struct repl_rec_req *reqs)
{
	u32 nbytes = bio->bi_iter.bi_size;
	unsigned int nr = 0;
	u16 type;

	if (bio->bi_opf & REQ_PREFLUSH)
		reqs[nr++] = (struct repl_rec_req) {
			.type = DM_REPL_REC_FLUSH, .volume = volume,
		};
	if (!nbytes)
		return nr;

	switch (bio_op(bio)) {
	case REQ_OP_WRITE:
		type = DM_REPL_REC_WRITE;
		break;
	case REQ_OP_DISCARD:
		type = DM_REPL_REC_DISCARD;
		break;
	case REQ_OP_WRITE_ZEROES:
		type = DM_REPL_REC_WRITE_ZEROES;
		break;
	default:
		return nr;
	}
	reqs[nr++] = (struct repl_rec_req) {
		.type = type,
		.flags = bio->bi_opf & REQ_FUA ? DM_REPL_RECF_FUA : 0,
		.volume = volume,
		.sector = sector,
		.nbytes = nbytes,
		.payload_len = type == DM_REPL_REC_WRITE ? nbytes : 0,
	};
	return nr;
}

static u64 reqs_span(const struct repl_rec_req *reqs, unsigned int nr)
{
	u64 bytes = 0;

	while (nr--)
		bytes += sizeof(struct dm_repl_slot) +
			 repl_rec_size(reqs[nr].payload_len);
	return bytes;
}

/*
 * overflow block: wait for room up to block_ms in all, then give up. Never
 * for a REQ_NOWAIT bio, and not once the group is going away.
 */
static int reserve_blocking(struct repl_target *rt, struct bio *bio,
			    struct repl_rec_req *reqs, unsigned int nr)
{
	struct repl_group *g = rt->vol->group;
	unsigned long deadline = jiffies + msecs_to_jiffies(rt->block_ms);
	u64 bytes = reqs_span(reqs, nr);
	long left;

	if (bio->bi_opf & REQ_NOWAIT)
		return -ENOSPC;
	atomic64_inc(&g->cnt.block_waits);
	do {
		left = (long)(deadline - jiffies);
		if (left <= 0 ||
		    !wait_event_timeout(g->room_wait,
					repl_ring_has_room(&g->ring, bytes) ||
					READ_ONCE(g->dead), left)) {
			atomic64_inc(&g->cnt.block_timeouts);
			return -ENOSPC;
		}
	} while (repl_ring_reserve(&g->ring, reqs, nr));
	return 0;
}

/*
 * @start is the bio's iterator as it was at map time: by completion the
 * data device may have advanced bio->bi_iter.
 */
static void copy_payload(struct dm_repl_rec *rec, struct bio *bio,
			 struct bvec_iter start)
{
	char *dst = (char *)(rec + 1);
	struct bvec_iter iter;
	struct bio_vec bv;

	__bio_for_each_segment(bv, bio, iter, start) {
		memcpy_from_bvec(dst, &bv);
		dst += bv.bv_len;
	}
}

/*
 * The copy overlaps the lower write only on another CPU than the submitter's
 * (which goes on to write the data device), and the scheduler tends to wake
 * a worker on the waker's CPU: name the next online CPU explicitly.
 */
static int copier_cpu(void)
{
	int cpu = cpumask_next(raw_smp_processor_id(), cpu_online_mask);

	return cpu < nr_cpu_ids ? cpu : cpumask_first(cpu_online_mask);
}

/*
 * A payload up to this size is copied at submission: handing it to the
 * copier costs the submitter a cross-CPU wake-up and a completion that
 * arrives from another CPU, more than copying a few pages itself.
 */
#define REPL_COPY_INLINE_MAX	(16U << 10)

/* Hand a payload to the group's copier; the bio completes when it is done. */
static void defer_copy(struct repl_group *g, struct repl_io *io,
		       struct bio *bio, struct dm_repl_rec *rec)
{
	io->deferred = true;
	atomic_set(&io->pending, 2);
	io->rec = rec;
	io->iter = bio->bi_iter;
	io->bio = bio;
	llist_add(&io->copy_node, &g->copy_list);
	queue_work_on(copier_cpu(), repl_wq, &g->copy_work);
}

/*
 * The copier: copies the payloads handed to it. Whichever of the copy and
 * the lower write finishes last completes the bio; when that is the copy,
 * the bio comes back through repl_capture_end() a second time.
 */
void repl_copier_work(struct work_struct *work)
{
	struct repl_group *g = container_of(work, struct repl_group,
					    copy_work);
	struct llist_node *list = llist_del_all(&g->copy_list);
	struct repl_io *io, *next;

	llist_for_each_entry_safe(io, next, list, copy_node) {
		copy_payload(io->rec, io->bio, io->iter);
		/* Full barrier: the copy is visible to whoever commits. */
		if (atomic_dec_and_test(&io->pending)) {
			io->deferred = false;
			io->bio->bi_status = io->status;
			bio_endio(io->bio);
		}
	}
}

void repl_capture(struct repl_target *rt, struct bio *bio, sector_t sector,
		  struct repl_io *io)
{
	struct repl_volume *v = rt->vol;
	struct repl_group *g = v->group;
	struct repl_rec_req reqs[REPL_MAX_RECS_PER_BIO];
	unsigned int nr, i;
	u32 payload_len;
	bool overflow;

	io->sector = sector;
	io->nbytes = bio->bi_iter.bi_size;
	nr = bio_records(bio, sector, v->index, reqs);
	if (!nr) {
		/* A write we cannot describe still must not be forgotten. */
		if (io->nbytes) {
			repl_resync_overflow_start(g, io);
			repl_volume_mark_dirty(v, sector, io->nbytes,
					       DM_REPL_BEHIND_OVERFLOW);
			repl_ring_note_overflow(&g->ring);
		}
		return;
	}
	overflow = repl_ring_reserve(&g->ring, reqs, nr) &&
		   (!rt->overflow_block || reserve_blocking(rt, bio, reqs, nr));
	/* After the reservation, before the write goes down (verify.c). */
	if (unlikely(READ_ONCE(g->verify.open)) && io->nbytes)
		repl_verify_note_write(g, v, sector, io->nbytes);
	if (overflow) {
		atomic64_inc(&g->cnt.overflows);
		if (io->nbytes) {
			repl_resync_overflow_start(g, io);
			repl_volume_mark_dirty(v, sector, io->nbytes,
					       DM_REPL_BEHIND_OVERFLOW);
		}
		repl_ring_note_overflow(&g->ring);
		if (!io->nbytes)
			repl_group_behind(g, DM_REPL_BEHIND_OVERFLOW);
		return;
	}

	for (i = 0; i < nr; i++)
		io->pos[i] = reqs[i].pos;
	io->nr = nr;
	io->seq = le64_to_cpu(reqs[nr - 1].rec->seq);

	/* Only the last record of a bio carries its payload. */
	payload_len = reqs[nr - 1].payload_len;
	if (payload_len > REPL_COPY_INLINE_MAX)
		defer_copy(g, io, bio, reqs[nr - 1].rec);
	else if (payload_len)
		copy_payload(reqs[nr - 1].rec, bio, bio->bi_iter);
}

/*
 * At completion. A failed write's records are DISCARDED, and since it may
 * have changed part of its range on the primary, that range is dirty too.
 */
static void capture_done(struct repl_target *rt, struct repl_io *io,
			 bool failed)
{
	struct repl_group *g = rt->vol->group;
	unsigned int i;

	if (failed && io->nbytes)
		repl_volume_mark_dirty(rt->vol, io->sector, io->nbytes,
				       DM_REPL_BEHIND_FAILED_WRITE);
	repl_resync_overflow_end(g, io);
	if (!io->nr)
		return;
	for (i = 0; i < io->nr; i++)
		repl_ring_commit(&g->ring, io->pos[i], failed);
	if (failed)
		atomic64_add(io->nr, &g->cnt.discarded);
	repl_group_notify(g, io->nr);
}

/* The lower write ended; DM_ENDIO_INCOMPLETE while the copier still runs. */
int repl_capture_end(struct repl_target *rt, struct repl_io *io,
		     blk_status_t *error)
{
	if (io->deferred) {
		io->status = *error;
		if (!atomic_dec_and_test(&io->pending))
			return DM_ENDIO_INCOMPLETE;
	}
	capture_done(rt, io, *error != BLK_STS_OK);
	return DM_ENDIO_DONE;
}

/* A MARKER record with @label, committed at once: no bio carries it. */
int repl_capture_marker(struct repl_target *rt, const char *label)
{
	struct repl_group *g = rt->vol->group;
	u32 len = strlen(label);
	struct repl_rec_req req = {
		.type = DM_REPL_REC_MARKER,
		.volume = rt->vol->index,
		.payload_len = len,
	};
	char *payload;

	if (repl_ring_reserve(&g->ring, &req, 1))
		return -ENOSPC;
	payload = (char *)(req.rec + 1);
	memcpy(payload, label, len);
	memset(payload + len, 0, repl_rec_size(len) - DM_REPL_REC_HDR_SIZE - len);
	repl_ring_commit(&g->ring, req.pos, false);
	repl_group_notify_now(g);
	return 0;
}
