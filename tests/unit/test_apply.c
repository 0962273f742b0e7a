// SPDX-License-Identifier: GPL-2.0
/*
 * The apply batcher (dmrepl_batch_*): where batches are cut, written to a
 * pipe that the test drains after each record, and how a failed or short
 * write is reported; the names of the module's refusal reasons.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "dmrepl.h"
#include "kselftest_harness.h"

#define W1K 1024		/* a WRITE of 1 KiB: a 1104-byte record */
#define W1K_LEN (DM_REPL_REC_HDR_SIZE + 1024U)
#define FLUSH_LEN ((unsigned int)DM_REPL_REC_HDR_SIZE)

static unsigned char data[8192];

FIXTURE(batch) {
	struct dmrepl_batch b;
	int p[2];		/* the sink: p[1] is written, the test reads p[0] */
	__u64 seq;
	__u64 epoch;
	unsigned char rec[16384] __attribute__((aligned(8)));
};

FIXTURE_SETUP(batch)
{
	ASSERT_EQ(0, pipe2(self->p, O_CLOEXEC | O_NONBLOCK));
	ASSERT_LT(0, fcntl(self->p[1], F_SETPIPE_SZ, 1 << 20));
	ASSERT_EQ(0, dmrepl_batch_init(&self->b, 4096));
	self->seq = 1;
	self->epoch = 0;
}

FIXTURE_TEARDOWN(batch)
{
	dmrepl_batch_free(&self->b);
	close(self->p[0]);
	close(self->p[1]);
}

/* Encode the next record (a WRITE of nbytes, or a FLUSH when nbytes is 0). */
static const struct dm_repl_rec *next(unsigned char *buf, __u64 *seq, __u64 *epoch,
				      __u32 nbytes)
{
	struct dmrepl_rec_fields f = {
		.type = nbytes ? DM_REPL_REC_WRITE : DM_REPL_REC_FLUSH,
		.seq = (*seq)++, .epoch = *epoch, .nbytes = nbytes,
		.payload = data, .payload_len = nbytes,
	};

	if (!nbytes)
		(*epoch)++;
	if (dmrepl_rec_encode(buf, 16384, &f) < 0)
		abort();
	return (const void *)buf;
}

/* Bytes waiting in the pipe (what was written so far), drained. */
static size_t drain(int fd)
{
	static unsigned char buf[1 << 16];
	size_t total = 0;
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		total += (size_t)n;
	return total;
}

#define ADD(nbytes) \
	ASSERT_EQ(0, dmrepl_batch_add(&self->b, next(self->rec, &self->seq, &self->epoch, \
						      nbytes), self->p[1]))

TEST_F(batch, a_batch_ends_after_the_last_flush_when_the_next_record_does_not_fit)
{
	ADD(W1K);
	ADD(W1K);
	ADD(0);				/* flush: epoch 0 ends at 2288 bytes */
	ADD(W1K);			/* 3392 */
	ASSERT_EQ(0U, drain(self->p[0]));
	ADD(W1K);			/* 4496 > 4096: seq 1..3 go, 4 stays */
	ASSERT_EQ(2 * W1K_LEN + FLUSH_LEN, drain(self->p[0]));
	ASSERT_EQ(1ULL, self->b.batches);
	ASSERT_EQ(3ULL, self->b.records);
	ASSERT_EQ(1ULL, self->b.first_seq);
	ASSERT_EQ(3ULL, self->b.last_seq);
	ASSERT_EQ(2 * W1K_LEN, self->b.len);
	ASSERT_EQ(0, dmrepl_batch_flush(&self->b, self->p[1]));
	ASSERT_EQ(2 * W1K_LEN, drain(self->p[0]));
	ASSERT_EQ(2ULL, self->b.batches);
	ASSERT_EQ(5ULL, self->b.records);
	ASSERT_EQ(4ULL, self->b.first_seq);
	ASSERT_EQ(5ULL, self->b.last_seq);
	ASSERT_EQ(0U, self->b.len);
}

TEST_F(batch, the_cut_is_after_the_last_flush_not_the_first)
{
	ADD(W1K);
	ADD(0);
	ADD(W1K);
	ADD(0);				/* 2368 */
	ADD(W1K);			/* 3472 */
	ADD(W1K);			/* 4576: cut at 2368, 4 records */
	ASSERT_EQ(2 * (W1K_LEN + FLUSH_LEN), drain(self->p[0]));
	ASSERT_EQ(4ULL, self->b.last_seq);
}

TEST_F(batch, without_a_flush_a_batch_is_cut_where_it_is_full)
{
	ADD(W1K);
	ADD(W1K);
	ADD(W1K);			/* 3312 */
	ADD(W1K);			/* 4416 > 4096 */
	ASSERT_EQ(3 * W1K_LEN, drain(self->p[0]));
	ASSERT_EQ(W1K_LEN, self->b.len);
}

TEST_F(batch, a_batch_that_is_exactly_full_is_not_cut_early)
{
	/* 4096 = (80 + 3936) + 80: a write of 3936 bytes and a flush. */
	ADD(4096 - 2 * DM_REPL_REC_HDR_SIZE);
	ADD(0);
	ASSERT_EQ(4096U, self->b.len);
	ASSERT_EQ(0U, drain(self->p[0]));
	ADD(0);
	ASSERT_EQ(4096U, drain(self->p[0]));
}

TEST_F(batch, the_rest_after_the_flush_may_need_a_second_cut)
{
	ADD(0);				/* 80 */
	ADD(W1K);
	ADD(W1K);			/* 2288 */
	ADD(2048);			/* 2128: 80 goes, 2208 + 2128 still too much */
	ASSERT_EQ(FLUSH_LEN + 2 * W1K_LEN, drain(self->p[0]));
	ASSERT_EQ(2ULL, self->b.batches);
	ASSERT_EQ(DM_REPL_REC_HDR_SIZE + 2048U, self->b.len);
}

TEST_F(batch, a_record_larger_than_the_limit_goes_alone)
{
	ADD(W1K);
	ADD(8192);			/* 8272 > 4096: the 1104 go first */
	ASSERT_EQ(W1K_LEN, drain(self->p[0]));
	ASSERT_EQ(DM_REPL_REC_HDR_SIZE + 8192U, self->b.len);
	ADD(0);
	ASSERT_EQ(DM_REPL_REC_HDR_SIZE + 8192U, drain(self->p[0]));
	ASSERT_EQ(FLUSH_LEN, self->b.len);
}

TEST_F(batch, the_bytes_written_are_the_records_in_order)
{
	unsigned char want[8192], got[8192];
	size_t off = 0;
	int i;

	for (i = 0; i < 5; i++) {
		const struct dm_repl_rec *r = next(self->rec, &self->seq, &self->epoch,
						   i == 2 ? 0 : W1K);

		memcpy(want + off, r, dmrepl_rec_len(r));
		off += dmrepl_rec_len(r);
		ASSERT_EQ(0, dmrepl_batch_add(&self->b, r, self->p[1]));
	}
	ASSERT_EQ(0, dmrepl_batch_flush(&self->b, self->p[1]));
	ASSERT_EQ((ssize_t)off, read(self->p[0], got, sizeof(got)));
	ASSERT_EQ(0, memcmp(want, got, off));
	ASSERT_EQ((__u64)off, self->b.bytes);
}

TEST_F(batch, a_failed_write_is_reported_and_the_batch_kept)
{
	ADD(W1K);
	ADD(0);
	ASSERT_EQ(-EBADF, dmrepl_batch_flush(&self->b, self->p[0]));	/* the read end */
	ASSERT_EQ(-1, self->b.written);
	ASSERT_EQ(1ULL, self->b.first_seq);
	ASSERT_EQ(2ULL, self->b.last_seq);
	ASSERT_EQ(0ULL, self->b.written_seq);
	ASSERT_EQ(W1K_LEN + FLUSH_LEN, self->b.len);
	ASSERT_EQ(0ULL, self->b.batches);
	ASSERT_EQ(0, dmrepl_batch_flush(&self->b, self->p[1]));
	ASSERT_EQ(2ULL, self->b.written_seq);
	ASSERT_EQ(W1K_LEN + FLUSH_LEN, drain(self->p[0]));
}

TEST_F(batch, written_seq_stays_at_the_last_batch_written_in_full)
{
	ADD(W1K);
	ADD(0);
	ADD(W1K);
	ADD(W1K);
	ASSERT_EQ(0ULL, self->b.written_seq);
	ADD(W1K);	/* does not fit: 1..2 go out */
	ASSERT_EQ(2ULL, self->b.written_seq);
	ASSERT_EQ(-EBADF, dmrepl_batch_flush(&self->b, self->p[0]));
	ASSERT_EQ(5ULL, self->b.last_seq);		/* the batch that failed */
	ASSERT_EQ(2ULL, self->b.written_seq);		/* what was written */
}

TEST_F(batch, a_short_write_is_an_error)
{
	struct rlimit rl = { .rlim_cur = 1000, .rlim_max = RLIM_INFINITY };
	char path[] = "/tmp/dmrepl-batch-XXXXXX";
	int fd = mkstemp(path);

	ASSERT_LE(0, fd);
	unlink(path);
	signal(SIGXFSZ, SIG_IGN);
	ASSERT_EQ(0, setrlimit(RLIMIT_FSIZE, &rl));
	ADD(W1K);
	ASSERT_EQ(-EIO, dmrepl_batch_flush(&self->b, fd));
	ASSERT_EQ(1000, self->b.written);
	ASSERT_EQ(W1K_LEN, self->b.batch_len);
	close(fd);
}

TEST(batch_limits)
{
	struct dmrepl_batch b;

	ASSERT_EQ(-EINVAL, dmrepl_batch_init(&b, 0));
	ASSERT_EQ(-EINVAL, dmrepl_batch_init(&b, DM_REPL_APPLY_BATCH_MAX + 1));
	ASSERT_EQ(0, dmrepl_batch_init(&b, DM_REPL_APPLY_BATCH_MAX));
	ASSERT_EQ((size_t)DM_REPL_APPLY_BATCH_MAX, b.cap);
	dmrepl_batch_free(&b);
	/* Small batches still hold the largest record. */
	ASSERT_EQ(0, dmrepl_batch_init(&b, 1024));
	ASSERT_EQ((size_t)DMREPL_REC_MAX_LEN, b.cap);
	ASSERT_EQ(0, dmrepl_batch_flush(&b, -1));	/* nothing to write */
	dmrepl_batch_free(&b);
}

TEST(every_apply_reason_has_its_own_name)
{
	unsigned int i, j;

	for (i = 0; i <= DM_REPL_APPLY_REASON_MAX; i++) {
		ASSERT_NE(NULL, dmrepl_apply_reason_name(i)) TH_LOG("reason %u", i);
		for (j = 0; j < i; j++)
			ASSERT_STRNE(dmrepl_apply_reason_name(i), dmrepl_apply_reason_name(j));
	}
	ASSERT_EQ(NULL, dmrepl_apply_reason_name(DM_REPL_APPLY_REASON_MAX + 1));
	ASSERT_STREQ("sequence gap", dmrepl_apply_reason_name(DM_REPL_APPLY_SEQ_GAP));
	ASSERT_STREQ("checksum mismatch", dmrepl_apply_reason_name(DM_REPL_APPLY_BAD_CRC));
	ASSERT_STREQ("group is not secondary",
		     dmrepl_apply_reason_name(DM_REPL_APPLY_NOT_SECONDARY));
}

TEST_HARNESS_MAIN
