// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Shipping a primary's ring to a replica (see dmrepl.h): skip what the
 * replica has, batch the rest to a sink, release only what it acknowledged.
 */
#include <errno.h>
#include <string.h>

#include "dmrepl.h"

int dmrepl_ship_init(struct dmrepl_ship *s, struct dmrepl_ring *ring, size_t batch_limit)
{
	memset(s, 0, sizeof(*s));
	s->ring = ring;
	return dmrepl_batch_init(&s->batch, batch_limit);
}

void dmrepl_ship_free(struct dmrepl_ship *s)
{
	dmrepl_batch_free(&s->batch);
}

int dmrepl_ship_start(struct dmrepl_ship *s, __u64 peer_stream, __u64 peer_seq)
{
	struct dm_repl_group_info info;
	int ret = dmrepl_ring_info(s->ring, &info);

	if (ret)
		return ret;
	s->peer_stream = peer_stream;
	s->peer_seq = peer_seq;
	s->start_next_seq = info.next_seq;
	s->start_released_seq = info.released_seq;
	/*
	 * A replica at another stream is placed by the kernel from the ring's
	 * STREAM record, or refuses it. One that applied a sequence of this
	 * stream that was never reserved would have the ring skipped unsent.
	 */
	if (peer_stream && peer_stream != info.stream)
		return 0;
	if (peer_seq >= info.next_seq)
		return -ESTALE;
	/* What follows its applied point left the ring: only a resync helps. */
	return peer_stream && peer_seq < info.released_seq ? -ERANGE : 0;
}

/* Applied is (stream, sequence): never a sequence alone. */
static bool peer_has(const struct dmrepl_ship *s, const struct dm_repl_rec *slot)
{
	return dmrepl_rec_seq(slot) <= s->peer_seq &&
	       (!s->peer_stream || dmrepl_rec_stream(slot) == s->peer_stream);
}

/*
 * The record is copied out of the ring straight into the batch and sealed
 * there: the crc covers the bytes that are sent, not the ring's, which
 * the kernel may reuse once released.
 */
static int ship_slot(struct dmrepl_ship *s, const struct dm_repl_rec *slot, bool discarded)
{
	void *room;
	size_t len;
	bool zero;
	int ret;

	if (peer_has(s, slot)) {
		s->skipped++;
		s->skipped_seq = dmrepl_rec_seq(slot);
		dmrepl_ship_acked(s, s->skipped_seq);
		return 0;
	}
	len = dmrepl_rec_out_len(slot, discarded, &zero);
	/* No fd: batch.send is the sink. */
	room = dmrepl_batch_room(&s->batch, len, -1, &ret);
	if (!room)
		return ret;
	dmrepl_rec_copy_as(room, slot, discarded, zero, len);
	if (dmrepl_rec_len(room) != len)
		return -EIO;	/* the slot changed under the copy: it must not */
	dmrepl_batch_commit(&s->batch);
	if (zero)
		s->zero_bytes += dmrepl_rec_nbytes(room);
	return 0;
}

static int flush_then(struct dmrepl_ship *s, int err)
{
	int ret = dmrepl_batch_flush(&s->batch, -1);

	return ret ? ret : err;
}

int dmrepl_ship_pump(struct dmrepl_ship *s, unsigned int max_batches)
{
	__u64 start = s->batch.batches;
	const struct dm_repl_rec *slot;
	bool discarded;
	int ret;

	for (;;) {
		if (max_batches && s->batch.batches - start >= max_batches)
			return 0;
		ret = dmrepl_ring_next_slot(s->ring, &slot, &discarded);
		if (ret < 0)	/* the records before a corrupt one still go */
			return flush_then(s, ret);
		if (!ret)
			break;
		ret = ship_slot(s, slot, discarded);
		if (ret)
			return ret;
	}
	return dmrepl_batch_flush(&s->batch, -1);
}

void dmrepl_ship_acked(struct dmrepl_ship *s, __u64 seq)
{
	if (seq > s->acked_seq)
		s->acked_seq = seq;
}

/*
 * What a release frees counts as drained unless it ends at a skipped
 * record: the replica had those before, and they freed their room without
 * crossing the link (a drain rate counting them would be far too high).
 */
int dmrepl_ship_release(struct dmrepl_ship *s)
{
	__u64 backlog, before, after;
	int ret;

	if (s->acked_seq <= s->released_seq)
		return 0;
	dmrepl_ring_backlog(s->ring, &backlog, &before);
	ret = dmrepl_ring_release(s->ring, s->acked_seq);
	if (ret)
		return ret;
	s->released_seq = s->acked_seq;
	dmrepl_ring_backlog(s->ring, &backlog, &after);
	if (s->acked_seq > s->skipped_seq && after > before)
		s->drained_bytes += after - before;
	return 0;
}
