// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The consumer side of a group's ring: a read-only mapping of
 * [control page][data area][data area again] (see <linux/dm-repl.h>).
 *
 * The consumer never writes the mapping. It keeps its own read position,
 * starting at released_pos, and frees space only with DM_REPL_IOC_RELEASE.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dmrepl.h"

struct dmrepl_ring {
	const struct dm_repl_ring_ctl *ctl;
	const unsigned char *data;	/* first copy of the data area */
	__u64 data_size;
	__u32 slot_size;

	__u64 pos;		/* read position: end of the last slot consumed */
	__u64 last_seq;		/* sequence of the last record returned */
	bool have_seq;		/* last_seq is valid */
	__u64 discarded;	/* DISCARDED slots consumed */
	const char *why;	/* reason of the last failure of _next_slot() */

	/* Only for a ring from dmrepl_ring_open(). */
	int fd;
	void *map;
	size_t map_size;
	char *path;
};

static void set_msg(char *msg, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_msg(char *msg, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!msg || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, len, fmt, ap);
	va_end(ap);
}

static bool is_pow2(__u64 v)
{
	return v && !(v & (v - 1));
}

static int check_geometry(const struct dm_repl_ring_ctl *ctl, size_t map_size,
			  char *msg, size_t msg_len)
{
	__u64 page = (__u64)sysconf(_SC_PAGESIZE);

	if (ctl->ctl_size < sizeof(*ctl) || ctl->ctl_size % page) {
		set_msg(msg, msg_len, "ring control size %u is not a whole number of pages",
			ctl->ctl_size);
		return -EINVAL;
	}
	if (ctl->slot_size != sizeof(struct dm_repl_slot)) {
		set_msg(msg, msg_len, "ring slot header size %u, expected %zu",
			ctl->slot_size, sizeof(struct dm_repl_slot));
		return -EINVAL;
	}
	if (!is_pow2(ctl->data_size) || ctl->data_size % page) {
		set_msg(msg, msg_len,
			"ring data size %llu is not a power of two of whole pages",
			(unsigned long long)ctl->data_size);
		return -EINVAL;
	}
	if (ctl->data_size > (SIZE_MAX - ctl->ctl_size) / 2 ||
	    map_size < ctl->ctl_size + 2 * ctl->data_size) {
		set_msg(msg, msg_len,
			"mapping of %zu bytes is smaller than the control page and two copies of %llu bytes of data",
			map_size, (unsigned long long)ctl->data_size);
		return -EINVAL;
	}
	return 0;
}

int dmrepl_ring_check_ctl(const void *map, size_t map_size, char *msg,
			  size_t msg_len)
{
	const struct dm_repl_ring_ctl *ctl = map;

	if (map_size < sizeof(*ctl)) {
		set_msg(msg, msg_len, "mapping of %zu bytes has no room for the control page",
			map_size);
		return -EINVAL;
	}
	if (ctl->magic != DM_REPL_CTL_MAGIC) {
		set_msg(msg, msg_len, "bad ring control magic 0x%08x", ctl->magic);
		return -EINVAL;
	}
	if (ctl->abi_version != DM_REPL_ABI_VERSION) {
		set_msg(msg, msg_len,
			"ABI version mismatch: ring has version %u, libdmrepl speaks version %u",
			ctl->abi_version, DM_REPL_ABI_VERSION);
		return -EPROTO;
	}
	return check_geometry(ctl, map_size, msg, msg_len);
}

int dmrepl_ring_attach(void *map, size_t map_size, struct dmrepl_ring **out)
{
	const struct dm_repl_ring_ctl *ctl = map;
	struct dmrepl_ring *ring;
	int ret;

	ret = dmrepl_ring_check_ctl(map, map_size, NULL, 0);
	if (ret)
		return ret;
	ring = calloc(1, sizeof(*ring));
	if (!ring)
		return -ENOMEM;
	ring->ctl = ctl;
	ring->data = (const unsigned char *)map + ctl->ctl_size;
	ring->data_size = ctl->data_size;
	ring->slot_size = ctl->slot_size;
	/* Pairs with the kernel's smp_store_release() of released_pos. */
	ring->pos = __atomic_load_n(&ctl->released_pos, __ATOMIC_ACQUIRE);
	ring->fd = -1;
	*out = ring;
	return 0;
}

static int ring_bad(struct dmrepl_ring *ring, const char *why, int err)
{
	ring->why = why;
	return err;
}

/*
 * Judge the slot at the read position. Returns its record length (slot
 * header excluded), 0 when it is still BUSY, or -EINVAL.
 */
static long slot_len(struct dmrepl_ring *ring, const struct dm_repl_slot *slot,
		     __u64 avail, __u32 *len_flags)
{
	__u32 lf, len;

	/*
	 * Pairs with the kernel's smp_store_release() of len_flags at commit
	 * (BUSY cleared) or discard: the record bytes are visible once the
	 * flag is seen clear.
	 */
	lf = __atomic_load_n(&slot->len_flags, __ATOMIC_ACQUIRE);
	*len_flags = lf;
	if (lf & DM_REPL_SLOT_BUSY)
		return 0;
	len = lf & DM_REPL_SLOT_LEN_MASK;
	if (len < DM_REPL_REC_HDR_SIZE || len % DM_REPL_REC_ALIGN ||
	    len > ring->data_size - ring->slot_size)
		return ring_bad(ring, "slot length is not a record length within the ring",
				-EINVAL);
	if (ring->slot_size + len > avail)
		return ring_bad(ring, "slot runs past the producer position", -EINVAL);
	return len;
}

/*
 * Judge the record of a slot of len bytes. A DISCARDED slot's payload may
 * never have been copied in full: only its header is judged.
 */
static int take_record(struct dmrepl_ring *ring, const struct dm_repl_rec *r,
		       __u32 len, bool discarded)
{
	const char *why;
	int ret;

	if (discarded)
		ret = dmrepl_rec_check_header(r, len, &why);
	else
		ret = dmrepl_rec_check_unsealed(r, len, &why);
	if (ret)
		return ring_bad(ring, why, ret);
	if (dmrepl_rec_len(r) != len)
		return ring_bad(ring, "record len differs from its slot", -EINVAL);
	if (ring->have_seq && dmrepl_rec_seq(r) <= ring->last_seq)
		return ring_bad(ring, "sequence number does not increase", -EINVAL);
	ring->last_seq = dmrepl_rec_seq(r);
	ring->have_seq = true;
	return 0;
}

/*
 * The slot at the read position, once producer_pos covers its header.
 * Returns 1 with *slot, 0 when the consumer has caught up, or -EINVAL.
 */
static int head_slot(struct dmrepl_ring *ring, const struct dm_repl_slot **slot,
		     __u64 *avail)
{
	/*
	 * Pairs with the kernel's smp_store_release() of producer_pos at
	 * reservation, which follows the store of the new slot's BUSY
	 * len_flags.
	 */
	__u64 prod = __atomic_load_n(&ring->ctl->producer_pos, __ATOMIC_ACQUIRE);

	*avail = prod - ring->pos;
	if (!*avail)
		return 0;
	if ((__s64)*avail < 0 || *avail > ring->data_size)
		return ring_bad(ring, "producer position is outside the ring", -EINVAL);
	if (*avail < ring->slot_size)
		return ring_bad(ring, "producer position inside a slot header", -EINVAL);
	*slot = (const void *)(ring->data + (ring->pos & (ring->data_size - 1)));
	return 1;
}

int dmrepl_ring_next_slot(struct dmrepl_ring *ring, const struct dm_repl_rec **rec,
			  bool *discarded)
{
	const struct dm_repl_slot *slot;
	__u64 avail;
	__u32 lf;
	long len;
	bool dis;
	int ret;

	ret = head_slot(ring, &slot, &avail);
	if (ret <= 0)
		return ret;
	len = slot_len(ring, slot, avail, &lf);
	if (len <= 0)
		return (int)len;
	dis = lf & DM_REPL_SLOT_DISCARDED;
	/* The double mapping makes the record contiguous. */
	ret = take_record(ring, (const void *)(slot + 1), (__u32)len, dis);
	if (ret)
		return ret;
	ring->pos += ring->slot_size + len;
	ring->discarded += dis;
	*rec = (const void *)(slot + 1);
	*discarded = dis;
	ring->why = NULL;
	return 1;
}

int dmrepl_ring_next(struct dmrepl_ring *ring, const struct dm_repl_rec **rec)
{
	const struct dm_repl_rec *r;
	bool discarded;
	int ret;

	do
		ret = dmrepl_ring_next_slot(ring, &r, &discarded);
	while (ret == 1 && discarded);
	if (ret == 1)
		*rec = r;
	return ret;
}

int dmrepl_ring_path(const char *group_or_path, char *buf, size_t len)
{
	int n;

	if (!group_or_path[0])
		return -EINVAL;
	if (strchr(group_or_path, '/'))
		n = snprintf(buf, len, "%s", group_or_path);
	else if (strlen(group_or_path) >= DM_REPL_GROUP_NAME_MAX)
		return -ENAMETOOLONG;
	else
		n = snprintf(buf, len, "%s/%s", DM_REPL_DEV_DIR, group_or_path);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int dmrepl_group_info(int fd, struct dm_repl_group_info *info, char *msg,
		      size_t msg_len)
{
	char ebuf[64];

	memset(info, 0, sizeof(*info));
	info->abi_version = DM_REPL_ABI_VERSION;
	if (ioctl(fd, DM_REPL_IOC_GROUP_INFO, info) < 0) {
		int err = errno;

		if (info->abi_version != DM_REPL_ABI_VERSION)
			goto mismatch;
		set_msg(msg, msg_len, "DM_REPL_IOC_GROUP_INFO: %s%s",
			strerror_r(err, ebuf, sizeof(ebuf)),
			err == ENOTTY ? " (not a dm-repl device)" : "");
		return -err;
	}
	if (info->abi_version == DM_REPL_ABI_VERSION)
		return 0;
mismatch:
	set_msg(msg, msg_len,
		"ABI version mismatch: module speaks version %u, libdmrepl speaks version %u",
		info->abi_version, DM_REPL_ABI_VERSION);
	return -EPROTO;
}

int dmrepl_group_open(const char *group_or_path, int flags,
		      struct dm_repl_group_info *info, char *errmsg, size_t errmsg_len)
{
	char path[PATH_MAX], ebuf[64];
	int fd, ret;

	ret = dmrepl_ring_path(group_or_path, path, sizeof(path));
	if (ret) {
		set_msg(errmsg, errmsg_len, "%s", ret == -EINVAL ?
			"empty group name" : "group name too long");
		return ret;
	}
	fd = open(path, flags | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		set_msg(errmsg, errmsg_len, "%s", strerror_r(-ret, ebuf, sizeof(ebuf)));
		return ret;
	}
	ret = dmrepl_group_info(fd, info, errmsg, errmsg_len);
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}

static int map_ring(int fd, const struct dm_repl_group_info *info, void **map,
		    char *msg, size_t msg_len)
{
	char ebuf[64];

	if (info->mmap_size == 0 || info->mmap_size > SIZE_MAX) {
		set_msg(msg, msg_len, "module reports a mapping size of %llu bytes",
			(unsigned long long)info->mmap_size);
		return -EINVAL;
	}
	*map = mmap(NULL, info->mmap_size, PROT_READ, MAP_SHARED, fd, 0);
	if (*map == MAP_FAILED) {
		int err = errno;

		set_msg(msg, msg_len, "mmap of %llu bytes: %s",
			(unsigned long long)info->mmap_size,
			strerror_r(err, ebuf, sizeof(ebuf)));
		return -err;
	}
	return 0;
}

/* Map and attach; on success the ring owns fd and the mapping. */
static int open_fd(int fd, const struct dm_repl_group_info *info, const char *path,
		   struct dmrepl_ring **out, char *msg, size_t msg_len)
{
	struct dmrepl_ring *ring;
	void *map;
	int ret;

	ret = map_ring(fd, info, &map, msg, msg_len);
	if (ret)
		return ret;
	ret = dmrepl_ring_check_ctl(map, info->mmap_size, msg, msg_len);
	if (!ret)
		ret = dmrepl_ring_attach(map, info->mmap_size, &ring);
	if (!ret) {
		ring->path = strdup(path);
		if (!ring->path) {
			free(ring);
			ret = -ENOMEM;
		}
	}
	if (ret) {
		if (ret == -ENOMEM)
			set_msg(msg, msg_len, "out of memory");
		munmap(map, info->mmap_size);
		return ret;
	}
	ring->fd = fd;
	ring->map = map;
	ring->map_size = info->mmap_size;
	*out = ring;
	return 0;
}

int dmrepl_ring_open(const char *group_or_path, struct dmrepl_ring **out,
		     char *errmsg, size_t errmsg_len)
{
	struct dm_repl_group_info info;
	char path[PATH_MAX];
	int fd, ret;

	fd = dmrepl_group_open(group_or_path, O_RDONLY, &info, errmsg, errmsg_len);
	if (fd < 0)
		return fd;
	dmrepl_ring_path(group_or_path, path, sizeof(path));
	ret = open_fd(fd, &info, path, out, errmsg, errmsg_len);
	if (ret)
		close(fd);
	return ret;
}

void dmrepl_ring_close(struct dmrepl_ring *ring)
{
	if (!ring)
		return;
	if (ring->map)
		munmap(ring->map, ring->map_size);
	if (ring->fd >= 0)
		close(ring->fd);
	free(ring->path);
	free(ring);
}

int dmrepl_ring_wait(struct dmrepl_ring *ring, int timeout_ms)
{
	struct pollfd pfd = { .fd = ring->fd, .events = POLLIN };
	int n;

	if (ring->fd < 0)
		return -EBADF;
	n = poll(&pfd, 1, timeout_ms);
	if (n < 0)
		return -errno;
	if (n == 0)
		return 0;
	if (pfd.revents & POLLNVAL)
		return -EBADF;
	if (pfd.revents & (POLLHUP | POLLERR))
		return -ENODEV;
	return 1;
}

int dmrepl_ring_release(struct dmrepl_ring *ring, __u64 seq)
{
	if (ring->fd < 0)
		return -EBADF;
	if (ioctl(ring->fd, DM_REPL_IOC_RELEASE, &seq) < 0)
		return -errno;
	return 0;
}

int dmrepl_ring_info(struct dmrepl_ring *ring, struct dm_repl_group_info *info)
{
	if (ring->fd < 0)
		return -EBADF;
	return dmrepl_group_info(ring->fd, info, NULL, 0);
}

__u64 dmrepl_ring_pos(const struct dmrepl_ring *ring)
{
	return ring->pos;
}

void dmrepl_ring_backlog(const struct dmrepl_ring *ring, __u64 *backlog, __u64 *released)
{
	/*
	 * Figures, not a fence: nothing is read through them. released_pos
	 * first, as the kernel never moves it past producer_pos.
	 */
	__u64 rel = __atomic_load_n(&ring->ctl->released_pos, __ATOMIC_RELAXED);
	__u64 prod = __atomic_load_n(&ring->ctl->producer_pos, __ATOMIC_RELAXED);

	*backlog = prod > rel ? prod - rel : 0;
	*released = rel;
}

__u64 dmrepl_ring_discarded(const struct dmrepl_ring *ring)
{
	return ring->discarded;
}

const char *dmrepl_ring_why(const struct dmrepl_ring *ring)
{
	return ring->why;
}

const char *dmrepl_ring_dev_path(const struct dmrepl_ring *ring)
{
	return ring->path ? ring->path : "";
}

int dmrepl_ring_fd(const struct dmrepl_ring *ring)
{
	return ring->fd;
}
