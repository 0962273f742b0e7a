// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The apply path of a secondary: its info ioctl, the names of its refusal
 * reasons, and the batcher that turns a record stream into write(2) batches
 * cut at epoch boundaries (see dmrepl.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "dmrepl.h"

/* An info ioctl whose argument starts with its __u32 abi_version. */
static int info_ioctl(int fd, unsigned long cmd, void *arg, size_t size)
{
	__u32 *version = arg;
	int err;

	memset(arg, 0, size);
	*version = DM_REPL_ABI_VERSION;
	if (ioctl(fd, cmd, arg) < 0) {
		err = errno;
		return *version != DM_REPL_ABI_VERSION ? -EPROTO : -err;
	}
	return *version == DM_REPL_ABI_VERSION ? 0 : -EPROTO;
}

int dmrepl_apply_info(int fd, struct dm_repl_apply_info *ai)
{
	return info_ioctl(fd, DM_REPL_IOC_APPLY_INFO, ai, sizeof(*ai));
}

int dmrepl_verify_info(int fd, struct dm_repl_verify_info *vi)
{
	return info_ioctl(fd, DM_REPL_IOC_VERIFY_INFO, vi, sizeof(*vi));
}

static const char *const reason_names[DM_REPL_APPLY_REASON_MAX + 1] = {
	[DM_REPL_APPLY_OK]		= "no error",
	[DM_REPL_APPLY_TRUNCATED]	= "record runs past the end of the batch",
	[DM_REPL_APPLY_BAD_MAGIC]	= "bad magic",
	[DM_REPL_APPLY_BAD_VERSION]	= "unknown record version",
	[DM_REPL_APPLY_BAD_LENGTH]	= "len, payload_len and nbytes disagree",
	[DM_REPL_APPLY_BAD_TYPE]	= "unknown record type",
	[DM_REPL_APPLY_BAD_FLAGS]	= "unknown flags",
	[DM_REPL_APPLY_BAD_EPOCH]	= "epoch out of order",
	[DM_REPL_APPLY_TOO_LARGE]	= "batch or record too large",
	[DM_REPL_APPLY_BAD_CRC]		= "checksum mismatch",
	[DM_REPL_APPLY_OTHER_GROUP]	= "record of another group (group_tag)",
	[DM_REPL_APPLY_NO_VOLUME]	= "no volume of that index in the group",
	[DM_REPL_APPLY_OUT_OF_RANGE]	= "record past the end of its volume",
	[DM_REPL_APPLY_SEQ_GAP]		= "sequence gap",
	[DM_REPL_APPLY_IO_ERROR]	= "I/O error on a data or metadata device",
	[DM_REPL_APPLY_NOT_SECONDARY]	= "group is not secondary",
	[DM_REPL_APPLY_UNKNOWN_STREAM]	= "record of a stream that does not follow the applied one",
};

const char *dmrepl_apply_reason_name(unsigned int reason)
{
	return reason <= DM_REPL_APPLY_REASON_MAX ? reason_names[reason] : NULL;
}

/* ---- the batcher -------------------------------------------------------- */

int dmrepl_batch_init(struct dmrepl_batch *b, size_t limit)
{
	memset(b, 0, sizeof(*b));
	if (!limit || limit > DM_REPL_APPLY_BATCH_MAX)
		return -EINVAL;
	b->limit = limit;
	b->cap = limit > DMREPL_REC_MAX_LEN ? limit : DMREPL_REC_MAX_LEN;
	b->buf = malloc(b->cap);	/* 8-byte aligned, as records want */
	return b->buf ? 0 : -ENOMEM;
}

void dmrepl_batch_free(struct dmrepl_batch *b)
{
	free(b->buf);
	b->buf = NULL;
}

static const struct dm_repl_rec *rec_at(const struct dmrepl_batch *b, size_t off)
{
	return (const void *)(b->buf + off);
}

/* Note the sequences of the first len bytes, about to be written. */
static void batch_bounds(struct dmrepl_batch *b, size_t len)
{
	size_t off = 0, last = 0;

	while (off < len) {
		last = off;
		off += dmrepl_rec_len(rec_at(b, off));
	}
	b->first_seq = dmrepl_rec_seq(rec_at(b, 0));
	b->last_seq = dmrepl_rec_seq(rec_at(b, last));
	b->batch_len = len;
}

/*
 * Write the first len bytes (nr records) as one batch; what follows them
 * moves to the front. len is flush_end or the whole buffer, so no FLUSH is
 * left behind.
 */
int dmrepl_batch_write(int fd, const void *buf, size_t len, long *written)
{
	ssize_t n;

	do
		n = write(fd, buf, len);
	while (n < 0 && errno == EINTR);
	*written = n;
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

static int write_batch(struct dmrepl_batch *b, size_t len, __u64 nr, int fd)
{
	int ret;

	batch_bounds(b, len);
	b->batch_nr = nr;
	b->written = -1;
	ret = b->send ? b->send(b->send_arg, b->buf, b) : dmrepl_batch_write(fd, b->buf, b->batch_len, &b->written);
	if (ret)
		return ret;
	b->written_seq = b->last_seq;
	b->batches++;
	b->records += nr;
	b->bytes += len;
	memmove(b->buf, b->buf + len, b->len - len);
	b->len -= len;
	b->nr -= nr;
	b->flush_end = 0;
	b->flush_nr = 0;
	return 0;
}

/* The cut rule: after the last FLUSH if there is one, else all of it. */
static int cut(struct dmrepl_batch *b, int fd)
{
	if (b->flush_end)
		return write_batch(b, b->flush_end, b->flush_nr, fd);
	return write_batch(b, b->len, b->nr, fd);
}

void *dmrepl_batch_room(struct dmrepl_batch *b, size_t len, int fd, int *err)
{
	int ret;

	*err = 0;
	if (len > DMREPL_REC_MAX_LEN) {
		*err = -EMSGSIZE;
		return NULL;
	}
	while (b->len && b->len + len > b->limit) {
		ret = cut(b, fd);
		if (ret) {
			*err = ret;
			return NULL;
		}
	}
	return b->buf + b->len;
}

void dmrepl_batch_commit(struct dmrepl_batch *b)
{
	const struct dm_repl_rec *r = rec_at(b, b->len);

	b->len += dmrepl_rec_len(r);
	b->nr++;
	if (dmrepl_rec_type(r) == DM_REPL_REC_FLUSH) {
		b->flush_end = b->len;
		b->flush_nr = b->nr;
	}
}

int dmrepl_batch_add(struct dmrepl_batch *b, const struct dm_repl_rec *r, int fd)
{
	size_t len = dmrepl_rec_len(r);
	void *room;
	int ret;

	room = dmrepl_batch_room(b, len, fd, &ret);
	if (!room)
		return ret;
	memcpy(room, r, len);
	dmrepl_batch_commit(b);
	return 0;
}

int dmrepl_batch_flush(struct dmrepl_batch *b, int fd)
{
	return b->len ? write_batch(b, b->len, b->nr, fd) : 0;
}
