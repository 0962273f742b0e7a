// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Raw record streams: records back to back, as "repltool dump --raw" writes
 * them, read one record at a time.
 */
#include <errno.h>
#include <unistd.h>

#include "dmrepl.h"

void dmrepl_stream_init(struct dmrepl_stream *s, int fd)
{
	s->fd = fd;
	s->offset = 0;
	s->records = 0;
}

/* Read up to n bytes, retrying short reads; returns bytes read or -errno. */
static long read_full(int fd, unsigned char *p, size_t n)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = read(fd, p + done, n - done);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (long)done;
}

static int fail(const char **why, const char *reason, int err)
{
	if (why)
		*why = reason;
	return err;
}

int dmrepl_stream_read(struct dmrepl_stream *s, void *buf, size_t size,
		       const char **why)
{
	unsigned char *p = buf;
	long got;
	__u32 len;
	int ret;

	if (why)
		*why = NULL;
	if (size < DM_REPL_REC_HDR_SIZE)
		return fail(why, "buffer shorter than a record header", -EMSGSIZE);
	got = read_full(s->fd, p, DM_REPL_REC_HDR_SIZE);
	if (got < 0)
		return (int)got;
	if (got == 0)
		return 0;
	if (got < DM_REPL_REC_HDR_SIZE)
		return fail(why, "stream ends inside a record header", -ENODATA);

	/* Judge the header before trusting len to size the next read. */
	ret = dmrepl_rec_check_header(buf, DMREPL_REC_MAX_LEN, why);
	if (ret)
		return ret;
	len = dmrepl_rec_len(buf);
	if (len > size)
		return fail(why, "record larger than the buffer", -EMSGSIZE);

	got = read_full(s->fd, p + DM_REPL_REC_HDR_SIZE, len - DM_REPL_REC_HDR_SIZE);
	if (got < 0)
		return (int)got;
	if ((__u32)got < len - DM_REPL_REC_HDR_SIZE)
		return fail(why, "stream ends inside a record", -ENODATA);

	ret = dmrepl_rec_check(buf, len, why);
	if (ret)
		return ret;
	s->offset += len;
	s->records++;
	return 1;
}
