// SPDX-License-Identifier: GPL-2.0
/*
 * The ring consumer against a userspace producer using the module's layout
 * (ringsim): control page checks, BUSY/commit, DISCARDED slots (skipped by
 * dmrepl_ring_next(), returned by dmrepl_ring_next_slot()), records
 * straddling the physical end of the data area, wrap-around after release,
 * corrupt slots and records, and a producer thread racing the reader.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "dmrepl.h"
#include "ringsim.h"
#include "kselftest_harness.h"

#define DATA_SIZE (64 * 1024)
#define HDR DM_REPL_REC_HDR_SIZE

static long long produce_write(struct ringsim *s, __u32 bytes)
{
	struct dmrepl_rec_fields f = { .type = DM_REPL_REC_WRITE, .payload_len = bytes,
				       .sector = 8 * s->next_seq };

	return ringsim_produce(s, &f);
}

static long long produce_type(struct ringsim *s, unsigned int type)
{
	struct dmrepl_rec_fields f = { .type = type };

	if (type == DM_REPL_REC_DISCARD)
		f.nbytes = 1 << 20;
	if (type == DM_REPL_REC_MARKER) {
		f.payload = "point";
		f.payload_len = 5;
	}
	if (type == DM_REPL_REC_STREAM) {
		static struct dm_repl_stream_link link;

		link.prev[0] = htole64(RINGSIM_STREAM - 1);
		f.flags = DM_REPL_RECF_GAP;
		f.payload = &link;
		f.payload_len = sizeof(link);
	}
	return ringsim_produce(s, &f);
}

static bool payload_matches(const struct dm_repl_rec *r)
{
	const unsigned char *p = dmrepl_rec_payload(r);
	__u32 i;

	for (i = 0; i < dmrepl_rec_payload_len(r); i++)
		if (p[i] != ringsim_pattern(dmrepl_rec_seq(r), i))
			return false;
	return true;
}

/* ---- the control page --------------------------------------------- */

FIXTURE(ctl) {
	struct ringsim sim;
	char msg[DMREPL_ERRMSG_LEN];
};

FIXTURE_SETUP(ctl)
{
	ASSERT_EQ(0, ringsim_create(&self->sim, DATA_SIZE, 0));
}

FIXTURE_TEARDOWN(ctl)
{
	ringsim_destroy(&self->sim);
}

TEST_F(ctl, valid_control_page_attaches)
{
	struct dmrepl_ring *ring = NULL;

	ASSERT_EQ(0, dmrepl_ring_attach(self->sim.ro, self->sim.map_size, &ring));
	ASSERT_EQ(0ULL, dmrepl_ring_pos(ring));
	ASSERT_EQ(-1, dmrepl_ring_fd(ring));
	ASSERT_STREQ("", dmrepl_ring_dev_path(ring));
	dmrepl_ring_close(ring);
}

TEST_F(ctl, other_abi_version_is_refused_with_eproto_naming_both)
{
	struct dmrepl_ring *ring = NULL;
	char want[128];

	self->sim.ctl->abi_version = DM_REPL_ABI_VERSION + 1;
	ASSERT_EQ(-EPROTO, dmrepl_ring_attach(self->sim.ro, self->sim.map_size, &ring));
	ASSERT_EQ(NULL, ring);
	ASSERT_EQ(-EPROTO, dmrepl_ring_check_ctl(self->sim.ro, self->sim.map_size,
						 self->msg, sizeof(self->msg)));
	snprintf(want, sizeof(want), "ABI version mismatch: ring has version %d, "
		 "libdmrepl speaks version %d", DM_REPL_ABI_VERSION + 1, DM_REPL_ABI_VERSION);
	ASSERT_STREQ(want, self->msg);
	/* An older one (ABI 2: 64-byte records, no streams) is refused too. */
	self->sim.ctl->abi_version = DM_REPL_ABI_VERSION - 1;
	ASSERT_EQ(-EPROTO, dmrepl_ring_check_ctl(self->sim.ro, self->sim.map_size,
						 self->msg, sizeof(self->msg)));
	snprintf(want, sizeof(want), "ABI version mismatch: ring has version %d, "
		 "libdmrepl speaks version %d", DM_REPL_ABI_VERSION - 1, DM_REPL_ABI_VERSION);
	ASSERT_STREQ(want, self->msg);
}

TEST_F(ctl, bad_magic_is_refused)
{
	struct dmrepl_ring *ring;

	self->sim.ctl->magic = 0;
	ASSERT_EQ(-EINVAL, dmrepl_ring_attach(self->sim.ro, self->sim.map_size, &ring));
	ASSERT_EQ(-EINVAL, dmrepl_ring_check_ctl(self->sim.ro, self->sim.map_size,
						 self->msg, sizeof(self->msg)));
	ASSERT_STREQ("bad ring control magic 0x00000000", self->msg);
}

TEST_F(ctl, data_size_not_a_power_of_two_is_refused)
{
	self->sim.ctl->data_size = 3 * 4096;
	ASSERT_EQ(-EINVAL, dmrepl_ring_check_ctl(self->sim.ro, self->sim.map_size,
						 self->msg, sizeof(self->msg)));
	ASSERT_NE(NULL, strstr(self->msg, "not a power of two"));
	self->sim.ctl->data_size = 0;
	ASSERT_EQ(-EINVAL, dmrepl_ring_check_ctl(self->sim.ro, self->sim.map_size, NULL, 0));
}

TEST_F(ctl, mapping_without_room_for_both_copies_is_refused)
{
	struct dmrepl_ring *ring;

	ASSERT_EQ(-EINVAL, dmrepl_ring_attach(self->sim.ro, self->sim.map_size - 1, &ring));
	ASSERT_EQ(-EINVAL, dmrepl_ring_check_ctl(self->sim.ro, self->sim.ctl_size + DATA_SIZE,
						 self->msg, sizeof(self->msg)));
	ASSERT_NE(NULL, strstr(self->msg, "smaller than the control page and two copies"));
	ASSERT_EQ(-EINVAL, dmrepl_ring_check_ctl(self->sim.ro, 100, NULL, 0));
}

TEST_F(ctl, wrong_slot_size_is_refused)
{
	self->sim.ctl->slot_size = 16;
	ASSERT_EQ(-EINVAL, dmrepl_ring_check_ctl(self->sim.ro, self->sim.map_size,
						 self->msg, sizeof(self->msg)));
	ASSERT_STREQ("ring slot header size 16, expected 8", self->msg);
}

TEST_F(ctl, control_size_not_whole_pages_is_refused)
{
	self->sim.ctl->ctl_size = 192;
	ASSERT_EQ(-EINVAL, dmrepl_ring_check_ctl(self->sim.ro, self->sim.map_size, NULL, 0));
	self->sim.ctl->ctl_size = 0;
	ASSERT_EQ(-EINVAL, dmrepl_ring_check_ctl(self->sim.ro, self->sim.map_size, NULL, 0));
}

TEST_F(ctl, attached_ring_has_no_device_to_wait_release_or_query)
{
	struct dm_repl_group_info info;
	struct dmrepl_ring *ring;

	ASSERT_EQ(0, dmrepl_ring_attach(self->sim.ro, self->sim.map_size, &ring));
	ASSERT_EQ(-EBADF, dmrepl_ring_wait(ring, 0));
	ASSERT_EQ(-EBADF, dmrepl_ring_release(ring, 1));
	ASSERT_EQ(-EBADF, dmrepl_ring_info(ring, &info));
	dmrepl_ring_close(ring);
}

/* ---- reading ------------------------------------------------------- */

FIXTURE(ring) {
	struct ringsim sim;
	struct dmrepl_ring *ring;
	const struct dm_repl_rec *rec;
};

FIXTURE_VARIANT(ring) {
	__u64 start_pos;	/* where producer and consumer begin */
};

/* Positions far from zero also exercise the masking of large counters. */
FIXTURE_VARIANT_ADD(ring, at_zero) { .start_pos = 0 };
FIXTURE_VARIANT_ADD(ring, near_the_end) { .start_pos = DATA_SIZE - 200 };
FIXTURE_VARIANT_ADD(ring, after_many_laps) { .start_pos = (1ULL << 40) + 4096 };

FIXTURE_SETUP(ring)
{
	ASSERT_EQ(0, ringsim_create(&self->sim, DATA_SIZE, variant->start_pos));
	ASSERT_EQ(0, dmrepl_ring_attach(self->sim.ro, self->sim.map_size, &self->ring));
}

FIXTURE_TEARDOWN(ring)
{
	dmrepl_ring_close(self->ring);
	ringsim_destroy(&self->sim);
}

TEST_F(ring, empty_ring_has_nothing_to_read)
{
	ASSERT_EQ(0, dmrepl_ring_next(self->ring, &self->rec));
	ASSERT_EQ(variant->start_pos, dmrepl_ring_pos(self->ring));
}

TEST_F(ring, committed_records_come_once_in_sequence_order)
{
	unsigned int types[] = { DM_REPL_REC_WRITE, DM_REPL_REC_DISCARD,
				 DM_REPL_REC_MARKER, DM_REPL_REC_FLUSH };
	__u64 seq;

	ASSERT_LE(0, produce_write(&self->sim, 4096));
	ASSERT_LE(0, produce_type(&self->sim, DM_REPL_REC_DISCARD));
	ASSERT_LE(0, produce_type(&self->sim, DM_REPL_REC_MARKER));
	ASSERT_LE(0, produce_type(&self->sim, DM_REPL_REC_FLUSH));
	for (seq = 1; seq <= 4; seq++) {
		ASSERT_EQ(1, dmrepl_ring_next(self->ring, &self->rec));
		ASSERT_EQ(seq, dmrepl_rec_seq(self->rec));
		ASSERT_EQ(types[seq - 1], dmrepl_rec_type(self->rec));
		ASSERT_TRUE(payload_matches(self->rec) ||
			    dmrepl_rec_type(self->rec) != DM_REPL_REC_WRITE);
	}
	ASSERT_EQ(0, dmrepl_ring_next(self->ring, &self->rec));
	ASSERT_EQ(self->sim.ctl->producer_pos, dmrepl_ring_pos(self->ring));
	ASSERT_EQ(0ULL, dmrepl_ring_discarded(self->ring));
}

TEST_F(ring, stream_and_gap_records_are_read_like_any_other)
{
	unsigned int types[] = { DM_REPL_REC_STREAM, DM_REPL_REC_WRITE, DM_REPL_REC_GAP,
				 DM_REPL_REC_WRITE, DM_REPL_REC_FLUSH };
	unsigned char out[8192] __attribute__((aligned(8)));
	const struct dm_repl_stream_link *link;
	__u64 seq;

	ASSERT_LE(0, produce_type(&self->sim, DM_REPL_REC_STREAM));
	ASSERT_LE(0, produce_write(&self->sim, 1024));
	ASSERT_LE(0, produce_type(&self->sim, DM_REPL_REC_GAP));
	ASSERT_LE(0, produce_write(&self->sim, 512));
	ASSERT_LE(0, produce_type(&self->sim, DM_REPL_REC_FLUSH));
	for (seq = 1; seq <= 5; seq++) {
		ASSERT_EQ(1, dmrepl_ring_next(self->ring, &self->rec))
			TH_LOG("seq %llu: %s", (unsigned long long)seq,
			       dmrepl_ring_why(self->ring));
		ASSERT_EQ(seq, dmrepl_rec_seq(self->rec));
		ASSERT_EQ(types[seq - 1], dmrepl_rec_type(self->rec));
		ASSERT_EQ(RINGSIM_STREAM, dmrepl_rec_stream(self->rec));
		ASSERT_EQ(0U, dmrepl_rec_crc(self->rec));	/* in the ring: unsealed */
		/* Copied out, sealed: the stream is kept and the crc covers it. */
		dmrepl_rec_copy_out((void *)out, self->rec, false);
		ASSERT_EQ(0, dmrepl_rec_check(out, sizeof(out), NULL));
		ASSERT_EQ(RINGSIM_STREAM, dmrepl_rec_stream((const void *)out));
		if (seq != 1)
			continue;
		/* The STREAM record: its link and its GAP flag, as produced. */
		ASSERT_EQ(DM_REPL_RECF_GAP, dmrepl_rec_flags(self->rec));
		ASSERT_EQ(HDR + sizeof(*link), dmrepl_rec_len(self->rec));
		link = dmrepl_rec_payload(self->rec);
		ASSERT_EQ(RINGSIM_STREAM - 1, le64toh(link->prev[0]));
		ASSERT_EQ(0ULL, link->prev[1]);
	}
	ASSERT_EQ(0, dmrepl_ring_next(self->ring, &self->rec));
}

TEST_F(ring, record_with_reserved_bytes_set_is_an_error_and_is_not_skipped)
{
	struct dm_repl_rec *rec;
	long long pos;

	pos = produce_write(&self->sim, 512);
	ASSERT_LE(0, pos);
	rec = ringsim_rec_at(&self->sim, (__u64)pos);
	rec->reserved = htole64(1);
	ASSERT_EQ(-EINVAL, dmrepl_ring_next(self->ring, &self->rec));
	ASSERT_STREQ("reserved bytes are not zero", dmrepl_ring_why(self->ring));
	ASSERT_EQ(-EINVAL, dmrepl_ring_next(self->ring, &self->rec));
	ASSERT_EQ(variant->start_pos, dmrepl_ring_pos(self->ring));
	rec->reserved = 0;
	ASSERT_EQ(1, dmrepl_ring_next(self->ring, &self->rec));
	ASSERT_EQ(1ULL, dmrepl_rec_seq(self->rec));
}

TEST_F(ring, busy_slot_stops_the_reader_until_it_is_committed)
{
	struct dmrepl_rec_fields f1 = { .payload_len = 512 }, f2 = { .payload_len = 1024 };
	long long p1, p2;

	p1 = ringsim_produce_busy(&self->sim, &f1);
	p2 = ringsim_produce_busy(&self->sim, &f2);
	ASSERT_LE(0, p1);
	ASSERT_LE(0, p2);
	ringsim_commit(&self->sim, (__u64)p2);		/* later one first */
	ASSERT_EQ(0, dmrepl_ring_next(self->ring, &self->rec));
	ASSERT_EQ(variant->start_pos, dmrepl_ring_pos(self->ring));

	ringsim_commit(&self->sim, (__u64)p1);
	ASSERT_EQ(1, dmrepl_ring_next(self->ring, &self->rec));
	ASSERT_EQ(1ULL, dmrepl_rec_seq(self->rec));
	ASSERT_EQ(1, dmrepl_ring_next(self->ring, &self->rec));
	ASSERT_EQ(2ULL, dmrepl_rec_seq(self->rec));
	ASSERT_TRUE(payload_matches(self->rec));
	ASSERT_EQ(0, dmrepl_ring_next(self->ring, &self->rec));
}

TEST_F(ring, discarded_slots_are_skipped_and_counted)
{
	struct dmrepl_rec_fields f = { .payload_len = 2048 };
	long long pos;

	ASSERT_LE(0, produce_write(&self->sim, 512));
	pos = ringsim_produce_busy(&self->sim, &f);
	ASSERT_LE(0, pos);
	ringsim_discard(&self->sim, (__u64)pos);
	pos = ringsim_produce_busy(&self->sim, &f);
	ASSERT_LE(0, pos);
	ringsim_discard(&self->sim, (__u64)pos);
	ASSERT_LE(0, produce_write(&self->sim, 512));

	ASSERT_EQ(1, dmrepl_ring_next(self->ring, &self->rec));
	ASSERT_EQ(1ULL, dmrepl_rec_seq(self->rec));
	ASSERT_EQ(1, dmrepl_ring_next(self->ring, &self->rec));
	ASSERT_EQ(4ULL, dmrepl_rec_seq(self->rec));
	ASSERT_EQ(2ULL, dmrepl_ring_discarded(self->ring));
	ASSERT_EQ(0, dmrepl_ring_next(self->ring, &self->rec));
}

TEST_F(ring, discarded_slot_at_the_head_is_consumed_without_a_record)
{
	struct dmrepl_rec_fields f = { .payload_len = 512 };
	long long pos = ringsim_produce_busy(&self->sim, &f);

	ASSERT_LE(0, pos);
	ringsim_discard(&self->sim, (__u64)pos);
	ASSERT_EQ(0, dmrepl_ring_next(self->ring, &self->rec));
	ASSERT_EQ(1ULL, dmrepl_ring_discarded(self->ring));
	ASSERT_EQ(self->sim.ctl->producer_pos, dmrepl_ring_pos(self->ring));
}

/* A WRITE of 2048 bytes reserved with seq 2 and DISCARDED between 1 and 3. */
static long long produce_discarded_between(struct ringsim *s)
{
	struct dmrepl_rec_fields f = { .payload_len = 2048, .sector = 77 };
	long long pos;

	if (produce_write(s, 512) < 0)
		return -1;
	pos = ringsim_produce_busy(s, &f);
	if (pos < 0)
		return pos;
	ringsim_discard(s, (__u64)pos);
	if (produce_write(s, 512) < 0)
		return -1;
	return pos;
}

TEST_F(ring, next_slot_returns_a_discarded_slot_saying_so)
{
	bool discarded = true;
	long long pos = produce_discarded_between(&self->sim);

	ASSERT_LE(0, pos);
	ASSERT_EQ(1, dmrepl_ring_next_slot(self->ring, &self->rec, &discarded));
	ASSERT_EQ(1ULL, dmrepl_rec_seq(self->rec));
	ASSERT_FALSE(discarded);
	ASSERT_EQ(1, dmrepl_ring_next_slot(self->ring, &self->rec, &discarded));
	ASSERT_TRUE(discarded);
	ASSERT_EQ(2ULL, dmrepl_rec_seq(self->rec));
	ASSERT_EQ((unsigned int)DM_REPL_REC_WRITE, dmrepl_rec_type(self->rec));
	ASSERT_EQ(77ULL, dmrepl_rec_sector(self->rec));
	ASSERT_EQ(2048U, dmrepl_rec_nbytes(self->rec));
	/* In the mapping, where the slot is. */
	ASSERT_EQ((unsigned char *)ringsim_rec_at(&self->sim, (__u64)pos) - self->sim.rw,
		  (const unsigned char *)self->rec - self->sim.ro);
	ASSERT_EQ(1ULL, dmrepl_ring_discarded(self->ring));
	ASSERT_EQ(1, dmrepl_ring_next_slot(self->ring, &self->rec, &discarded));
	ASSERT_FALSE(discarded);
	ASSERT_EQ(3ULL, dmrepl_rec_seq(self->rec));
	ASSERT_EQ(0, dmrepl_ring_next_slot(self->ring, &self->rec, &discarded));
	ASSERT_EQ(self->sim.ctl->producer_pos, dmrepl_ring_pos(self->ring));
}

TEST_F(ring, next_skips_the_discarded_slot_next_slot_returns)
{
	ASSERT_LE(0, produce_discarded_between(&self->sim));
	ASSERT_EQ(1, dmrepl_ring_next(self->ring, &self->rec));
	ASSERT_EQ(1ULL, dmrepl_rec_seq(self->rec));
	ASSERT_EQ(1, dmrepl_ring_next(self->ring, &self->rec));
	ASSERT_EQ(3ULL, dmrepl_rec_seq(self->rec));
	ASSERT_EQ(1ULL, dmrepl_ring_discarded(self->ring));
}

TEST_F(ring, discarded_slot_is_judged_by_its_header_alone)
{
	struct dmrepl_rec_fields f = { .type = DM_REPL_REC_MARKER, .payload = "abc",
				       .payload_len = 3 };
	bool discarded;
	long long pos = ringsim_produce_busy(&self->sim, &f);

	ASSERT_LE(0, pos);
	/*
	 * Payload and padding not what a record needs (as a payload never
	 * copied in full may be): a committed slot would be refused.
	 */
	memset((struct dm_repl_rec *)ringsim_rec_at(&self->sim, (__u64)pos) + 1, 1, 8);
	ringsim_discard(&self->sim, (__u64)pos);
	ASSERT_EQ(1, dmrepl_ring_next_slot(self->ring, &self->rec, &discarded));
	ASSERT_TRUE(discarded);
	ASSERT_EQ(1ULL, dmrepl_rec_seq(self->rec));
}

TEST_F(ring, discarded_slot_with_a_bad_header_is_an_error_for_both_readers)
{
	struct dm_repl_rec *rec;
	bool discarded;
	long long pos = produce_discarded_between(&self->sim);

	ASSERT_LE(0, pos);
	ASSERT_EQ(1, dmrepl_ring_next(self->ring, &self->rec));
	rec = ringsim_rec_at(&self->sim, (__u64)pos);
	rec->magic = 0;
	ASSERT_EQ(-EINVAL, dmrepl_ring_next(self->ring, &self->rec));
	ASSERT_STREQ("bad magic", dmrepl_ring_why(self->ring));
	ASSERT_EQ(-EINVAL, dmrepl_ring_next_slot(self->ring, &self->rec, &discarded));
	rec->magic = htole32(DM_REPL_REC_MAGIC);
	rec->seq = htole64(1);
	ASSERT_EQ(-EINVAL, dmrepl_ring_next_slot(self->ring, &self->rec, &discarded));
	ASSERT_STREQ("sequence number does not increase", dmrepl_ring_why(self->ring));
	rec->seq = htole64(2);
	ASSERT_EQ(1, dmrepl_ring_next_slot(self->ring, &self->rec, &discarded));
	ASSERT_TRUE(discarded);
	ASSERT_EQ(NULL, dmrepl_ring_why(self->ring));
}

TEST_F(ring, records_wrap_around_for_many_laps_after_release)
{
	__u64 next_expected = 1, produced_bytes = 0;
	int lap;

	for (lap = 0; lap < 12; lap++) {
		__u64 last = 0;
		long long pos;
		int n = 0;

		/* Sizes vary so slots land at every offset, straddling too. */
		while ((pos = produce_write(&self->sim, 512 * (1 + (self->sim.next_seq % 9)))) >= 0)
			n++;
		ASSERT_EQ(-ENOSPC, pos);
		ASSERT_LT(0, n);
		while (dmrepl_ring_next(self->ring, &self->rec) == 1) {
			ASSERT_EQ(next_expected, dmrepl_rec_seq(self->rec));
			ASSERT_TRUE(payload_matches(self->rec));
			produced_bytes += sizeof(struct dm_repl_slot) + dmrepl_rec_len(self->rec);
			last = dmrepl_rec_seq(self->rec);
			next_expected++;
			n--;
		}
		ASSERT_EQ(0, n);
		ASSERT_EQ(0, ringsim_release(&self->sim, last));
	}
	ASSERT_LT(6ULL * DATA_SIZE, produced_bytes);
	ASSERT_EQ(variant->start_pos + produced_bytes, dmrepl_ring_pos(self->ring));
}

TEST_F(ring, reader_starts_at_released_pos)
{
	struct dmrepl_ring *late;
	const struct dm_repl_rec *r;

	ASSERT_LE(0, produce_write(&self->sim, 512));
	ASSERT_LE(0, produce_write(&self->sim, 512));
	ASSERT_LE(0, produce_write(&self->sim, 512));
	ASSERT_EQ(0, ringsim_release(&self->sim, 2));
	ASSERT_EQ(0, dmrepl_ring_attach(self->sim.ro, self->sim.map_size, &late));
	ASSERT_EQ(1, dmrepl_ring_next(late, &r));
	ASSERT_EQ(3ULL, dmrepl_rec_seq(r));
	ASSERT_EQ(0, dmrepl_ring_next(late, &r));
	dmrepl_ring_close(late);
}

/* ---- straddling the physical end ---------------------------------- */

FIXTURE(straddle) {
	struct ringsim sim;
	struct dmrepl_ring *ring;
};

FIXTURE_VARIANT(straddle) {
	__u64 back;		/* start this many bytes before the physical end */
};

FIXTURE_VARIANT_ADD(straddle, header_split_by_the_end) { .back = 8 + 24 };
FIXTURE_VARIANT_ADD(straddle, record_begins_at_the_end) { .back = 8 };
/* The header before the end but its last field (reserved), which is past it. */
FIXTURE_VARIANT_ADD(straddle, header_tail_past_the_end) { .back = 8 + HDR - 8 };
FIXTURE_VARIANT_ADD(straddle, payload_split_by_the_end) { .back = 8 + HDR + 1000 };

FIXTURE_SETUP(straddle)
{
	ASSERT_EQ(0, ringsim_create(&self->sim, DATA_SIZE, 5 * DATA_SIZE - variant->back));
	ASSERT_EQ(0, dmrepl_ring_attach(self->sim.ro, self->sim.map_size, &self->ring));
}

FIXTURE_TEARDOWN(straddle)
{
	dmrepl_ring_close(self->ring);
	ringsim_destroy(&self->sim);
}

TEST_F(straddle, record_across_the_end_reads_in_one_piece)
{
	const struct dm_repl_rec *r;
	const unsigned char *start, *end;

	ASSERT_LE(0, produce_write(&self->sim, 4096));
	ASSERT_EQ(1, dmrepl_ring_next(self->ring, &r));
	start = (const unsigned char *)r;
	end = start + dmrepl_rec_len(r);
	/* It begins in (or at the end of) the first copy and ends in the second. */
	ASSERT_TRUE(start >= self->sim.ro + self->sim.ctl_size + DATA_SIZE - variant->back);
	ASSERT_TRUE(end > self->sim.ro + self->sim.ctl_size + DATA_SIZE);
	ASSERT_TRUE(payload_matches(r));
	ASSERT_EQ(0, dmrepl_ring_next(self->ring, &r));
}

/* ---- corruption ----------------------------------------------------- */

struct corrupt_ctx {
	struct ringsim sim;
	struct dmrepl_ring *ring;
	const struct dm_repl_rec *rec;
	long long pos;		/* slot of record 2, the next one to read */
};

/* Records 1 (read already) and 2 (next) in a fresh ring. */
static int ctx_setup(struct corrupt_ctx *c)
{
	if (ringsim_create(&c->sim, DATA_SIZE, 0) ||
	    dmrepl_ring_attach(c->sim.ro, c->sim.map_size, &c->ring))
		return -1;
	if (produce_write(&c->sim, 512) < 0)
		return -1;
	c->pos = produce_write(&c->sim, 4096);
	if (c->pos < 0 || dmrepl_ring_next(c->ring, &c->rec) != 1)
		return -1;
	return 0;
}

static void ctx_teardown(struct corrupt_ctx *c)
{
	dmrepl_ring_close(c->ring);
	ringsim_destroy(&c->sim);
}

/* The error must repeat: the reader stays on the bad slot. */
static int next_twice(struct dmrepl_ring *ring, const struct dm_repl_rec **rec,
		      const char **why)
{
	__u64 before = dmrepl_ring_pos(ring);
	int a = dmrepl_ring_next(ring, rec);
	int b = dmrepl_ring_next(ring, rec);

	*why = dmrepl_ring_why(ring);
	if (a != b || dmrepl_ring_pos(ring) != before)
		return 1000;
	return a;
}

FIXTURE(bad_slot) {
	struct corrupt_ctx c;
};

FIXTURE_VARIANT(bad_slot) {
	__u32 len_flags;
	const char *why;
};

#define SLOT_LEN_BAD "slot length is not a record length within the ring"
FIXTURE_VARIANT_ADD(bad_slot, len_zero) { .len_flags = 0, .why = SLOT_LEN_BAD };
FIXTURE_VARIANT_ADD(bad_slot, len_below_a_header) { .len_flags = HDR - 8, .why = SLOT_LEN_BAD };
FIXTURE_VARIANT_ADD(bad_slot, len_not_8_aligned) {
	.len_flags = HDR + 4096 + 4, .why = SLOT_LEN_BAD };
FIXTURE_VARIANT_ADD(bad_slot, len_beyond_the_data_area) {
	.len_flags = DATA_SIZE, .why = SLOT_LEN_BAD };
FIXTURE_VARIANT_ADD(bad_slot, discarded_len_beyond_the_data_area) {
	.len_flags = DM_REPL_SLOT_DISCARDED | (DATA_SIZE + 8), .why = SLOT_LEN_BAD };
FIXTURE_VARIANT_ADD(bad_slot, past_the_producer_position) {
	.len_flags = HDR + 4096 + HDR, .why = "slot runs past the producer position" };

FIXTURE_SETUP(bad_slot)
{
	ASSERT_EQ(0, ctx_setup(&self->c));
}

FIXTURE_TEARDOWN(bad_slot)
{
	ctx_teardown(&self->c);
}

TEST_F(bad_slot, is_an_error_and_is_not_skipped)
{
	const char *why;

	ringsim_set_len_flags(&self->c.sim, (__u64)self->c.pos, variant->len_flags);
	ASSERT_EQ(-EINVAL, next_twice(self->c.ring, &self->c.rec, &why));
	ASSERT_STREQ(variant->why, why);
}

FIXTURE(corrupt) {
	struct corrupt_ctx c;
};

FIXTURE_SETUP(corrupt)
{
	ASSERT_EQ(0, ctx_setup(&self->c));
}

FIXTURE_TEARDOWN(corrupt)
{
	ctx_teardown(&self->c);
}

TEST_F(corrupt, sealed_record_in_the_ring_is_an_error_and_is_not_skipped)
{
	struct dm_repl_rec *rec = ringsim_rec_at(&self->c.sim, (__u64)self->c.pos);
	const char *why;

	rec->crc = htole32(0x1234);
	ASSERT_EQ(-EINVAL, next_twice(self->c.ring, &self->c.rec, &why));
	ASSERT_STREQ("a record in the ring must not be sealed (crc 0)", why);
	rec->crc = 0;	/* repaired: reading goes on */
	ASSERT_EQ(1, dmrepl_ring_next(self->c.ring, &self->c.rec));
	ASSERT_EQ(2ULL, dmrepl_rec_seq(self->c.rec));
	ASSERT_EQ(NULL, dmrepl_ring_why(self->c.ring));
}

TEST_F(corrupt, malformed_record_is_an_error_with_the_codec_reason)
{
	struct dm_repl_rec *rec = ringsim_rec_at(&self->c.sim, (__u64)self->c.pos);
	const char *why;

	rec->magic = 0;
	ASSERT_EQ(-EINVAL, next_twice(self->c.ring, &self->c.rec, &why));
	ASSERT_STREQ("bad magic", why);
}

TEST_F(corrupt, producer_position_beyond_one_ring_is_an_error)
{
	const char *why;

	self->c.sim.ctl->producer_pos = dmrepl_ring_pos(self->c.ring) + DATA_SIZE + 8;
	ASSERT_EQ(-EINVAL, next_twice(self->c.ring, &self->c.rec, &why));
	ASSERT_STREQ("producer position is outside the ring", why);
	self->c.sim.ctl->producer_pos = dmrepl_ring_pos(self->c.ring) - 8;
	ASSERT_EQ(-EINVAL, next_twice(self->c.ring, &self->c.rec, &why));
	ASSERT_STREQ("producer position is outside the ring", why);
	self->c.sim.ctl->producer_pos = dmrepl_ring_pos(self->c.ring) + 4;
	ASSERT_EQ(-EINVAL, next_twice(self->c.ring, &self->c.rec, &why));
	ASSERT_STREQ("producer position inside a slot header", why);
}

TEST_F(corrupt, record_shorter_than_its_slot_is_an_error)
{
	struct dmrepl_rec_fields f = { .type = DM_REPL_REC_FLUSH, .seq = 3 };
	long long pos;
	const char *why;

	ASSERT_EQ(1, dmrepl_ring_next(self->c.ring, &self->c.rec));	/* seq 2 */
	pos = ringsim_reserve(&self->c.sim, HDR + 8);	/* a FLUSH in a slot 8 bytes longer */
	ASSERT_LE(0, pos);
	ASSERT_EQ(HDR, ringsim_encode(&self->c.sim, (__u64)pos, HDR + 8, &f));
	ringsim_commit(&self->c.sim, (__u64)pos);
	ASSERT_EQ(-EINVAL, next_twice(self->c.ring, &self->c.rec, &why));
	ASSERT_STREQ("record len differs from its slot", why);
}

TEST_F(corrupt, sequence_that_does_not_increase_is_an_error)
{
	struct dmrepl_rec_fields f = { .type = DM_REPL_REC_FLUSH, .seq = 2 };
	long long pos;
	const char *why;

	ASSERT_EQ(1, dmrepl_ring_next(self->c.ring, &self->c.rec));	/* seq 2 */
	pos = ringsim_reserve(&self->c.sim, HDR);
	ASSERT_LE(0, pos);
	ASSERT_EQ(HDR, ringsim_encode(&self->c.sim, (__u64)pos, HDR, &f));
	ringsim_commit(&self->c.sim, (__u64)pos);
	ASSERT_EQ(-EINVAL, next_twice(self->c.ring, &self->c.rec, &why));
	ASSERT_STREQ("sequence number does not increase", why);
}

/* ---- a producer thread racing the reader --------------------------- */

#define RACE_RECORDS 100000

struct race {
	struct ringsim sim;
	__u64 discarded;	/* by the producer */
	int failed;
};

static bool race_discards(__u64 seq)
{
	return seq % 97 == 0;
}

/* The record the producer makes for seq: WRITEs of 512..4096 bytes, a FLUSH every 50. */
static void race_fields(__u64 seq, struct dmrepl_rec_fields *f)
{
	memset(f, 0, sizeof(*f));
	if (seq % 50 == 0) {
		f->type = DM_REPL_REC_FLUSH;
		return;
	}
	f->type = DM_REPL_REC_WRITE;
	f->payload_len = 512 * (__u32)(1 + (seq * 7919) % 8);
	f->sector = seq * 8;
}

/* Reserve the next record, waiting for the reader to release room. */
static long long race_reserve(struct race *r)
{
	struct dmrepl_rec_fields f;
	long long pos;

	do {
		race_fields(r->sim.next_seq, &f);
		pos = ringsim_produce_busy(&r->sim, &f);
	} while (pos == -ENOSPC && sched_yield() == 0);
	return pos;
}

static void race_finish(struct race *r, long long pos, __u64 seq)
{
	if (race_discards(seq)) {
		ringsim_discard(&r->sim, (__u64)pos);
		r->discarded++;
	} else {
		ringsim_commit(&r->sim, (__u64)pos);
	}
}

/*
 * Reserve records in pairs and complete the second before the first, like
 * two bios finishing out of order. The first is completed before waiting
 * for room for the second, or the reader could never free any.
 */
static void *race_producer(void *arg)
{
	struct race *r = arg;
	struct dmrepl_rec_fields f;
	__u64 seq;

	for (seq = 1; seq <= RACE_RECORDS; seq += 2) {
		long long a = race_reserve(r), b = -ENOSPC;

		if (a < 0)
			goto fail;
		if (seq + 1 <= RACE_RECORDS) {
			race_fields(seq + 1, &f);
			b = ringsim_produce_busy(&r->sim, &f);
		}
		if (b < 0) {
			race_finish(r, a, seq);
			if (seq + 1 > RACE_RECORDS)
				break;
			b = race_reserve(r);
			a = -1;
		}
		if (b < 0)
			goto fail;
		race_finish(r, b, seq + 1);
		if (a >= 0)
			race_finish(r, a, seq);
	}
	return NULL;
fail:
	r->failed = 1;
	return NULL;
}

TEST(reader_racing_a_producer_thread_loses_and_duplicates_nothing)
{
	static struct race race;
	struct dmrepl_ring *ring;
	const struct dm_repl_rec *rec;
	__u64 expect = 1, seen = 0, since_release = 0;
	pthread_t th;
	int ret;

	ASSERT_EQ(0, ringsim_create(&race.sim, 256 * 1024, 0));
	ASSERT_EQ(0, dmrepl_ring_attach(race.sim.ro, race.sim.map_size, &ring));
	ASSERT_EQ(0, pthread_create(&th, NULL, race_producer, &race));

	while (expect <= RACE_RECORDS) {
		ret = dmrepl_ring_next(ring, &rec);
		ASSERT_LE(0, ret) TH_LOG("at seq %llu: %s", (unsigned long long)expect,
					 dmrepl_ring_why(ring));
		if (ret == 0) {
			ringsim_release_pos(&race.sim, dmrepl_ring_pos(ring));
			since_release = 0;
			sched_yield();
			continue;
		}
		while (race_discards(expect))
			expect++;
		ASSERT_EQ(expect, dmrepl_rec_seq(rec));	/* none lost, none twice */
		ASSERT_TRUE(payload_matches(rec));
		expect++;
		while (expect <= RACE_RECORDS && race_discards(expect))
			expect++;
		seen++;
		if (++since_release == 32) {
			ringsim_release_pos(&race.sim, dmrepl_ring_pos(ring));
			since_release = 0;
		}
	}
	pthread_join(th, NULL);
	ASSERT_EQ(0, race.failed);
	ASSERT_EQ(0, dmrepl_ring_next(ring, &rec));
	ASSERT_EQ(race.discarded, dmrepl_ring_discarded(ring));
	ASSERT_EQ((__u64)RACE_RECORDS, seen + race.discarded);
	dmrepl_ring_close(ring);
	ringsim_destroy(&race.sim);
}

TEST_HARNESS_MAIN
