// SPDX-License-Identifier: GPL-2.0
/*
 * fakering: the ring calls of libdmrepl, answered without the module (see
 * fakering.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fakering.h"

/* A consumer: what dmrepl_ring_open() returns. */
struct dmrepl_ring {
	struct fakering *f;
	__u64 next_seq;			/* the next record to read */
	const char *why;		/* of the last failed read */
};

static struct fakering *the_ring;

int fakering_create(struct fakering *f, const char *group, __u64 stream)
{
	int p[2];

	memset(f, 0, sizeof(*f));
	if (the_ring)
		return -EBUSY;
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK))
		return -errno;
	snprintf(f->group, sizeof(f->group), "%s", group);
	f->stream = stream;
	f->role = DM_REPL_ROLE_PRIMARY;
	f->next_seq = 1;
	f->read_seq = 1;
	f->rfd = p[0];
	f->wfd = p[1];
	pthread_mutex_init(&f->lock, NULL);
	the_ring = f;
	return 0;
}

void fakering_destroy(struct fakering *f)
{
	__u64 s;

	if (the_ring != f)
		return;
	for (s = f->released_seq + 1; s < f->next_seq; s++)
		free(f->recs[s - 1]);
	close(f->rfd);
	if (f->wfd >= 0)
		close(f->wfd);
	pthread_mutex_destroy(&f->lock);
	the_ring = NULL;
}

/* The pipe is readable while the last consumer has records to read. Under lock. */
static void sync_fd(struct fakering *f)
{
	bool want = f->wfd >= 0 && f->read_seq < f->next_seq;
	char c = 'x';

	if (want && !f->readable)
		f->readable = write(f->wfd, &c, 1) == 1;
	else if (!want && f->readable)
		f->readable = read(f->rfd, &c, 1) != 1;
}

static struct dm_repl_rec *make_record(const struct fakering *f, __u64 seq)
{
	unsigned char data[FAKERING_PAYLOAD];
	struct dmrepl_rec_fields fields = {
		.type = DM_REPL_REC_WRITE,
		.seq = seq,
		.epoch = 1,
		.sector = (seq - 1) * 8 % (FAKERING_SECTORS - 8),
		.nbytes = sizeof(data),
		.time_ns = 1700000000000000000ULL + seq,
		.group_tag = dmrepl_group_tag(f->group),
		.stream = f->stream,
		.payload = data,
		.payload_len = sizeof(data),
	};
	size_t len = dmrepl_rec_size(sizeof(data)), i;
	struct dm_repl_rec *r = malloc(len);

	if (!r)
		return NULL;
	for (i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(seq * 131 + i * 7);
	if (dmrepl_rec_encode(r, len, &fields) < 0) {
		free(r);
		return NULL;
	}
	r->crc = 0;		/* the ring holds records unsealed */
	return r;
}

int fakering_append(struct fakering *f, unsigned int n)
{
	int ret = 0;

	pthread_mutex_lock(&f->lock);
	for (; n && !ret; n--) {
		if (f->next_seq > FAKERING_MAX) {
			ret = -ENOSPC;
			break;
		}
		f->recs[f->next_seq - 1] = make_record(f, f->next_seq);
		if (!f->recs[f->next_seq - 1])
			ret = -ENOMEM;
		else
			f->next_seq++;
	}
	sync_fd(f);
	pthread_mutex_unlock(&f->lock);
	return ret;
}

void fakering_remove(struct fakering *f)
{
	pthread_mutex_lock(&f->lock);
	if (f->wfd >= 0)
		close(f->wfd);
	f->wfd = -1;
	pthread_mutex_unlock(&f->lock);
}

__u64 fakering_released(struct fakering *f)
{
	__u64 seq;

	pthread_mutex_lock(&f->lock);
	seq = f->released_seq;
	pthread_mutex_unlock(&f->lock);
	return seq;
}

/* ---- the library's calls ------------------------------------------------ */

static struct fakering *find(const char *group_or_path, char *msg, size_t msg_len)
{
	char path[64];

	snprintf(path, sizeof(path), "%s/%s", DM_REPL_DEV_DIR, the_ring ? the_ring->group : "");
	if (the_ring && (!strcmp(group_or_path, the_ring->group) || !strcmp(group_or_path, path)))
		return the_ring;
	if (msg)
		snprintf(msg, msg_len, "%s", strerror(ENOENT));
	return NULL;
}

/* Under lock. */
static void fill_info(const struct fakering *f, struct dm_repl_group_info *info)
{
	memset(info, 0, sizeof(*info));
	info->abi_version = DM_REPL_ABI_VERSION;
	snprintf(info->name, sizeof(info->name), "%s", f->group);
	info->state = DM_REPL_STATE_UPTODATE;
	info->role = f->role;
	info->next_seq = f->next_seq;
	info->epoch = 1;
	info->released_seq = f->released_seq;
	info->records = f->next_seq - 1;
	info->stream = f->stream;
	info->gen_current = FAKERING_GEN;
	info->nr_volumes = 1;
	info->volumes[0].sectors = FAKERING_SECTORS;
	info->volumes[0].region_sectors = FAKERING_REGION_SECTORS;
	info->volumes[0].nr_regions = FAKERING_SECTORS / FAKERING_REGION_SECTORS;
	info->volumes[0].index = 0;
}

int dmrepl_ring_path(const char *group_or_path, char *buf, size_t len)
{
	int n;

	if (!group_or_path[0])
		return -EINVAL;
	if (strchr(group_or_path, '/'))
		n = snprintf(buf, len, "%s", group_or_path);
	else
		n = snprintf(buf, len, "%s/%s", DM_REPL_DEV_DIR, group_or_path);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int dmrepl_group_open(const char *group_or_path, int flags, struct dm_repl_group_info *info,
		      char *errmsg, size_t errmsg_len)
{
	struct fakering *f = find(group_or_path, errmsg, errmsg_len);
	int fd;

	(void)flags;
	if (!f)
		return -ENOENT;
	fd = fcntl(f->rfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	pthread_mutex_lock(&f->lock);
	fill_info(f, info);
	pthread_mutex_unlock(&f->lock);
	return fd;
}

int dmrepl_group_info(int fd, struct dm_repl_group_info *info, char *msg, size_t msg_len)
{
	struct fakering *f = the_ring;

	if (!f || fd != f->rfd) {
		if (msg)
			snprintf(msg, msg_len, "GROUP_INFO: %s", strerror(ENOTTY));
		return -ENOTTY;
	}
	pthread_mutex_lock(&f->lock);
	fill_info(f, info);
	pthread_mutex_unlock(&f->lock);
	return 0;
}

int dmrepl_ring_open(const char *group_or_path, struct dmrepl_ring **out, char *errmsg,
		     size_t errmsg_len)
{
	struct fakering *f = find(group_or_path, errmsg, errmsg_len);
	struct dmrepl_ring *ring;

	if (!f)
		return -ENOENT;
	ring = malloc(sizeof(*ring));
	if (!ring)
		return -ENOMEM;
	pthread_mutex_lock(&f->lock);
	ring->f = f;
	ring->why = NULL;
	ring->next_seq = f->released_seq + 1;
	f->read_seq = ring->next_seq;
	f->opens++;
	sync_fd(f);
	pthread_mutex_unlock(&f->lock);
	*out = ring;
	return 0;
}

void dmrepl_ring_close(struct dmrepl_ring *ring)
{
	if (!ring)
		return;
	pthread_mutex_lock(&ring->f->lock);
	ring->f->closes++;
	pthread_mutex_unlock(&ring->f->lock);
	free(ring);
}

int dmrepl_ring_next_slot(struct dmrepl_ring *ring, const struct dm_repl_rec **rec,
			  bool *discarded)
{
	struct fakering *f = ring->f;
	int ret = 0;

	pthread_mutex_lock(&f->lock);
	if (ring->next_seq < f->next_seq) {
		*rec = f->recs[ring->next_seq - 1];
		*discarded = false;
		ret = 1;
		if (*rec) {
			ring->next_seq++;
		} else {	/* the position stays on the bad slot */
			ring->why = "a released record read";
			ret = -EINVAL;
		}
	}
	f->read_seq = ring->next_seq;
	sync_fd(f);
	pthread_mutex_unlock(&f->lock);
	return ret;
}

int dmrepl_ring_release(struct dmrepl_ring *ring, __u64 seq)
{
	struct fakering *f = ring->f;
	int ret = 0;

	pthread_mutex_lock(&f->lock);
	f->releases++;
	f->last_release = seq;
	if (seq >= f->next_seq) {
		f->bad_releases++;	/* never reserved: the module refuses it */
		ret = -EINVAL;
	}
	for (; !ret && f->released_seq < seq; f->released_seq++) {
		f->released_bytes += dmrepl_rec_len(f->recs[f->released_seq]);
		free(f->recs[f->released_seq]);
		f->recs[f->released_seq] = NULL;
	}
	pthread_mutex_unlock(&f->lock);
	return ret;
}

int dmrepl_ring_info(struct dmrepl_ring *ring, struct dm_repl_group_info *info)
{
	pthread_mutex_lock(&ring->f->lock);
	fill_info(ring->f, info);
	pthread_mutex_unlock(&ring->f->lock);
	return 0;
}

int dmrepl_ring_fd(const struct dmrepl_ring *ring)
{
	return ring->f->rfd;
}

/* In record bytes: the fake has no slot headers. */
void dmrepl_ring_backlog(const struct dmrepl_ring *ring, __u64 *backlog, __u64 *released)
{
	struct fakering *f = ring->f;
	__u64 s;

	pthread_mutex_lock(&f->lock);
	*backlog = 0;
	for (s = f->released_seq + 1; s < f->next_seq; s++)
		*backlog += dmrepl_rec_len(f->recs[s - 1]);
	*released = f->released_bytes;
	pthread_mutex_unlock(&f->lock);
}

__u64 dmrepl_ring_pos(const struct dmrepl_ring *ring)
{
	return ring->next_seq - 1;	/* records, not bytes: only for messages */
}

const char *dmrepl_ring_why(const struct dmrepl_ring *ring)
{
	return ring->why;
}
