// SPDX-License-Identifier: GPL-2.0
/*
 * Raw record streams ("repltool dump --raw" output): one record per read,
 * clean end of stream versus a truncated record.
 */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dmrepl.h"
#include "kselftest_harness.h"

#define STREAM_BUF 16384
#define HDR DM_REPL_REC_HDR_SIZE

FIXTURE(stream) {
	int fd;			/* a memfd holding the stream */
	unsigned char rec[STREAM_BUF] __attribute__((aligned(8)));
	unsigned char buf[STREAM_BUF] __attribute__((aligned(8)));
	struct dmrepl_stream s;
};

FIXTURE_SETUP(stream)
{
	self->fd = memfd_create("stream", MFD_CLOEXEC);
	ASSERT_LE(0, self->fd);
	dmrepl_stream_init(&self->s, self->fd);
}

FIXTURE_TEARDOWN(stream)
{
	close(self->fd);
}

/* Append a WRITE (payload bytes) or, with payload 0, a FLUSH. Returns len. */
static long append(int fd, unsigned char *rec, __u64 seq, __u32 payload)
{
	static unsigned char data[8192];
	struct dmrepl_rec_fields f = {
		.type = payload ? DM_REPL_REC_WRITE : DM_REPL_REC_FLUSH,
		.seq = seq, .nbytes = payload, .payload = data, .payload_len = payload,
	};
	long len;

	memset(data, (int)seq, sizeof(data));
	len = dmrepl_rec_encode(rec, STREAM_BUF, &f);
	if (len > 0 && write(fd, rec, (size_t)len) != len)
		return -EIO;
	return len;
}

static void rewind_fd(int fd)
{
	lseek(fd, 0, SEEK_SET);
}

TEST_F(stream, empty_stream_is_a_clean_end)
{
	ASSERT_EQ(0, dmrepl_stream_read(&self->s, self->buf, sizeof(self->buf), NULL));
	ASSERT_EQ(0ULL, self->s.records);
}

TEST_F(stream, records_come_back_one_per_read_then_clean_end)
{
	const char *why;
	long l1, l2;

	l1 = append(self->fd, self->rec, 1, 4096);
	l2 = append(self->fd, self->rec, 2, 0);
	ASSERT_GT(l1, 0);
	ASSERT_GT(l2, 0);
	rewind_fd(self->fd);

	ASSERT_EQ(1, dmrepl_stream_read(&self->s, self->buf, sizeof(self->buf), &why));
	ASSERT_EQ(1ULL, dmrepl_rec_seq((void *)self->buf));
	ASSERT_EQ((unsigned int)DM_REPL_REC_WRITE, dmrepl_rec_type((void *)self->buf));
	ASSERT_EQ(1, self->buf[DM_REPL_REC_HDR_SIZE + 4095]);
	ASSERT_EQ((__u64)l1, self->s.offset);

	ASSERT_EQ(1, dmrepl_stream_read(&self->s, self->buf, sizeof(self->buf), &why));
	ASSERT_EQ(2ULL, dmrepl_rec_seq((void *)self->buf));
	ASSERT_EQ((__u64)(l1 + l2), self->s.offset);

	ASSERT_EQ(0, dmrepl_stream_read(&self->s, self->buf, sizeof(self->buf), &why));
	ASSERT_EQ(2ULL, self->s.records);
}

TEST_F(stream, end_inside_a_header_is_a_truncated_record)
{
	const char *why;
	long l1 = append(self->fd, self->rec, 1, 512);

	ASSERT_EQ(HDR + 512, l1);
	ASSERT_EQ(0, ftruncate(self->fd, l1 + 20));	/* 20 bytes of a 2nd header */
	lseek(self->fd, l1, SEEK_SET);
	ASSERT_EQ(20, write(self->fd, self->rec, 20));
	rewind_fd(self->fd);

	ASSERT_EQ(1, dmrepl_stream_read(&self->s, self->buf, sizeof(self->buf), &why));
	ASSERT_EQ(-ENODATA, dmrepl_stream_read(&self->s, self->buf, sizeof(self->buf), &why));
	ASSERT_STREQ("stream ends inside a record header", why);
	ASSERT_EQ((__u64)l1, self->s.offset);
}

TEST_F(stream, end_in_the_last_bytes_of_a_header_is_a_truncated_record)
{
	const char *why;

	/* A header but for its last field (reserved): a read must not stop short. */
	ASSERT_EQ(HDR, append(self->fd, self->rec, 1, 0));
	ASSERT_EQ(0, ftruncate(self->fd, HDR - 8));
	rewind_fd(self->fd);

	ASSERT_EQ(-ENODATA, dmrepl_stream_read(&self->s, self->buf, sizeof(self->buf), &why));
	ASSERT_STREQ("stream ends inside a record header", why);
	ASSERT_EQ(0ULL, self->s.offset);
	ASSERT_EQ(0ULL, self->s.records);
}

TEST_F(stream, end_inside_a_payload_is_a_truncated_record)
{
	const char *why;

	ASSERT_GT(append(self->fd, self->rec, 1, 4096), 0);
	ASSERT_EQ(0, ftruncate(self->fd, 4000));
	rewind_fd(self->fd);

	ASSERT_EQ(-ENODATA, dmrepl_stream_read(&self->s, self->buf, sizeof(self->buf), &why));
	ASSERT_STREQ("stream ends inside a record", why);
	ASSERT_EQ(0ULL, self->s.records);
}

TEST_F(stream, bad_header_is_refused_without_reading_its_payload)
{
	const char *why;

	ASSERT_GT(append(self->fd, self->rec, 1, 4096), 0);
	self->rec[0] ^= 0xff;
	ASSERT_EQ(HDR, pwrite(self->fd, self->rec, HDR, 0));
	rewind_fd(self->fd);

	ASSERT_EQ(-EINVAL, dmrepl_stream_read(&self->s, self->buf, sizeof(self->buf), &why));
	ASSERT_STREQ("bad magic", why);
	ASSERT_EQ(HDR, lseek(self->fd, 0, SEEK_CUR));
	ASSERT_EQ(0ULL, self->s.offset);
}

TEST_F(stream, header_with_reserved_bytes_set_is_refused_without_reading_its_payload)
{
	struct dm_repl_rec *r = (void *)self->rec;
	const char *why;

	ASSERT_GT(append(self->fd, self->rec, 1, 4096), 0);
	r->reserved = htole64(1ULL << 40);
	dmrepl_rec_seal(r);
	ASSERT_EQ(HDR, pwrite(self->fd, self->rec, HDR, 0));
	rewind_fd(self->fd);

	ASSERT_EQ(-EINVAL, dmrepl_stream_read(&self->s, self->buf, sizeof(self->buf), &why));
	ASSERT_STREQ("reserved bytes are not zero", why);
	ASSERT_EQ(HDR, lseek(self->fd, 0, SEEK_CUR));
}

TEST_F(stream, stream_and_gap_records_come_back_with_their_stream)
{
	struct dm_repl_stream_link link = { .prev = { htole64(0x51), 0, 0, 0 } };
	struct dmrepl_rec_fields f = {
		.type = DM_REPL_REC_STREAM, .seq = 100, .stream = 0x52,
		.flags = DM_REPL_RECF_GAP, .payload = &link, .payload_len = sizeof(link),
	};
	const struct dm_repl_rec *r = (const void *)self->buf;
	const char *why = NULL;
	long l1, l2;

	l1 = dmrepl_rec_encode(self->rec, sizeof(self->rec), &f);
	ASSERT_EQ((long)(HDR + sizeof(link)), l1);
	ASSERT_EQ(l1, write(self->fd, self->rec, (size_t)l1));
	f = (struct dmrepl_rec_fields){ .type = DM_REPL_REC_GAP, .seq = 101, .stream = 0x52 };
	l2 = dmrepl_rec_encode(self->rec, sizeof(self->rec), &f);
	ASSERT_EQ(HDR, l2);
	ASSERT_EQ(l2, write(self->fd, self->rec, (size_t)l2));
	rewind_fd(self->fd);

	ASSERT_EQ(1, dmrepl_stream_read(&self->s, self->buf, sizeof(self->buf), &why))
		TH_LOG("%s", why);
	ASSERT_EQ((unsigned int)DM_REPL_REC_STREAM, dmrepl_rec_type(r));
	ASSERT_EQ(DM_REPL_RECF_GAP, dmrepl_rec_flags(r));
	ASSERT_EQ(0x52ULL, dmrepl_rec_stream(r));
	ASSERT_EQ(0, memcmp(&link, dmrepl_rec_payload(r), sizeof(link)));
	ASSERT_EQ(1, dmrepl_stream_read(&self->s, self->buf, sizeof(self->buf), &why))
		TH_LOG("%s", why);
	ASSERT_EQ((unsigned int)DM_REPL_REC_GAP, dmrepl_rec_type(r));
	ASSERT_EQ(101ULL, dmrepl_rec_seq(r));
	ASSERT_EQ(0x52ULL, dmrepl_rec_stream(r));
	ASSERT_EQ((__u64)(l1 + l2), self->s.offset);
	ASSERT_EQ(0, dmrepl_stream_read(&self->s, self->buf, sizeof(self->buf), &why));
}

TEST_F(stream, a_stream_changed_on_the_way_is_ebadmsg)
{
	const char *why;
	unsigned char c;

	ASSERT_GT(append(self->fd, self->rec, 1, 512), 0);
	ASSERT_EQ(1, pread(self->fd, &c, 1, offsetof(struct dm_repl_rec, stream)));
	c ^= 0x80;
	ASSERT_EQ(1, pwrite(self->fd, &c, 1, offsetof(struct dm_repl_rec, stream)));
	rewind_fd(self->fd);
	ASSERT_EQ(-EBADMSG, dmrepl_stream_read(&self->s, self->buf, sizeof(self->buf), &why));
	ASSERT_STREQ("checksum mismatch", why);
}

TEST_F(stream, absurd_len_is_refused_before_any_allocation_or_read)
{
	struct dm_repl_rec *r = (void *)self->rec;
	const char *why;

	ASSERT_GT(append(self->fd, self->rec, 1, 0), 0);
	r->len = htole32(0x7ffffff8);
	dmrepl_rec_seal(r);
	ASSERT_EQ(HDR, pwrite(self->fd, self->rec, HDR, 0));
	rewind_fd(self->fd);

	ASSERT_EQ(-EINVAL, dmrepl_stream_read(&self->s, self->buf, sizeof(self->buf), &why));
	ASSERT_STREQ("len runs past the available bytes", why);
}

TEST_F(stream, record_larger_than_the_buffer_is_emsgsize)
{
	const char *why;

	ASSERT_GT(append(self->fd, self->rec, 1, 8192), 0);
	rewind_fd(self->fd);
	ASSERT_EQ(-EMSGSIZE, dmrepl_stream_read(&self->s, self->buf, 4096, &why));
	ASSERT_STREQ("record larger than the buffer", why);
	ASSERT_EQ(-EMSGSIZE, dmrepl_stream_read(&self->s, self->buf, 32, &why));
}

TEST_F(stream, checksum_mismatch_in_the_payload_is_ebadmsg)
{
	const char *why;

	ASSERT_GT(append(self->fd, self->rec, 1, 1024), 0);
	ASSERT_EQ(1, pwrite(self->fd, "\x55", 1, HDR + 100));
	rewind_fd(self->fd);
	ASSERT_EQ(-EBADMSG, dmrepl_stream_read(&self->s, self->buf, sizeof(self->buf), &why));
	ASSERT_STREQ("checksum mismatch", why);
}

struct trickle {
	int fd;
	const unsigned char *p;
	size_t len;
};

/* Write in 7-byte pieces so the reader sees many short reads. */
static void *trickle_writer(void *arg)
{
	struct trickle *t = arg;
	size_t done = 0;

	while (done < t->len) {
		size_t n = t->len - done < 7 ? t->len - done : 7;

		if (write(t->fd, t->p + done, n) != (ssize_t)n)
			break;
		done += n;
		usleep(50);
	}
	close(t->fd);
	return NULL;
}

TEST(short_reads_from_a_pipe_are_reassembled)
{
	static unsigned char stream[3 * (HDR + 2048)] __attribute__((aligned(8)));
	static unsigned char buf[STREAM_BUF] __attribute__((aligned(8)));
	struct dmrepl_stream s;
	struct trickle t;
	pthread_t th;
	size_t len = 0;
	int p[2], i;

	for (i = 0; i < 3; i++) {
		static unsigned char data[2048];
		struct dmrepl_rec_fields f = {
			.type = DM_REPL_REC_WRITE, .seq = (__u64)i + 10,
			.nbytes = 2048, .payload = data, .payload_len = 2048,
		};
		long l = dmrepl_rec_encode(stream + len, sizeof(stream) - len, &f);

		ASSERT_GT(l, 0);
		len += (size_t)l;
	}
	ASSERT_EQ(0, pipe(p));
	t = (struct trickle){ .fd = p[1], .p = stream, .len = len };
	ASSERT_EQ(0, pthread_create(&th, NULL, trickle_writer, &t));
	dmrepl_stream_init(&s, p[0]);
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(1, dmrepl_stream_read(&s, buf, sizeof(buf), NULL));
		ASSERT_EQ((__u64)i + 10, dmrepl_rec_seq((void *)buf));
	}
	ASSERT_EQ(0, dmrepl_stream_read(&s, buf, sizeof(buf), NULL));
	pthread_join(th, NULL);
	close(p[0]);
}

TEST(read_error_is_returned_as_negative_errno)
{
	unsigned char buf[128] __attribute__((aligned(8)));
	struct dmrepl_stream s;

	dmrepl_stream_init(&s, -1);
	ASSERT_EQ(-EBADF, dmrepl_stream_read(&s, buf, sizeof(buf), NULL));
}

TEST_HARNESS_MAIN
