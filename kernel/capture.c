// SPDX-License-Identifier: GPL-2.0
/*
 * The capture path of the primary: every write-type bio becomes records in
 * the group's ring, reserved and filled at submission, committed at
 * completion. A write that finds no room is never stalled for long: its
 * regions go to the dirty bitmap instead.
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

static void copy_payload(struct dm_repl_rec *rec, struct bio *bio)
{
	char *dst = (char *)(rec + 1);
	struct bvec_iter iter;
	struct bio_vec bv;

	bio_for_each_segment(bv, bio, iter) {
		memcpy_from_bvec(dst, &bv);
		dst += bv.bv_len;
	}
}

void repl_capture(struct repl_target *rt, struct bio *bio, sector_t sector,
		  struct repl_io *io)
{
	struct repl_volume *v = rt->vol;
	struct repl_group *g = v->group;
	struct repl_rec_req reqs[REPL_MAX_RECS_PER_BIO];
	unsigned int nr, i;

	io->sector = sector;
	io->nbytes = bio->bi_iter.bi_size;
	nr = bio_records(bio, sector, v->index, reqs);
	if (!nr) {
		/* A write we cannot describe still must not be forgotten. */
		if (io->nbytes)
			repl_volume_mark_dirty(v, sector, io->nbytes);
		return;
	}
	if (repl_ring_reserve(&g->ring, reqs, nr) &&
	    (!rt->overflow_block || reserve_blocking(rt, bio, reqs, nr))) {
		atomic64_inc(&g->cnt.overflows);
		if (io->nbytes)
			repl_volume_mark_dirty(v, sector, io->nbytes);
		else
			set_bit(REPL_BEHIND, &g->flags);
		return;
	}

	for (i = 0; i < nr; i++) {
		if (reqs[i].payload_len)
			copy_payload(reqs[i].rec, bio);
		io->pos[i] = reqs[i].pos;
	}
	io->nr = nr;
	atomic64_add(nr, &g->cnt.records);
	atomic64_add(reqs_span(reqs, nr), &g->cnt.record_bytes);
}

/*
 * At completion. A failed write's records are DISCARDED, and since it may
 * have changed part of its range on the primary, that range is dirty too.
 */
void repl_capture_done(struct repl_target *rt, struct repl_io *io,
		       bool failed)
{
	struct repl_group *g = rt->vol->group;
	unsigned int i;

	if (failed && io->nbytes)
		repl_volume_mark_dirty(rt->vol, io->sector, io->nbytes);
	if (!io->nr)
		return;
	for (i = 0; i < io->nr; i++)
		repl_ring_commit(&g->ring, io->pos[i], failed);
	if (failed)
		atomic64_add(io->nr, &g->cnt.discarded);
	repl_group_notify(g);
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
	atomic64_inc(&g->cnt.records);
	atomic64_add(reqs_span(&req, 1), &g->cnt.record_bytes);
	repl_ring_commit(&g->ring, req.pos, false);
	repl_group_notify(g);
	return 0;
}
