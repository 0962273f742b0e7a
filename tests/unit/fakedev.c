// SPDX-License-Identifier: GPL-2.0
/*
 * fakedev: the module's char device, faked for host tests (see fakedev.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fakedev.h"

int __real_ioctl(int fd, unsigned long req, ...);
void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __wrap_ioctl(int fd, unsigned long req, ...);
ssize_t __real_write(int fd, const void *buf, size_t len);
ssize_t __wrap_write(int fd, const void *buf, size_t len);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);

static struct fakedev *devs[FAKEDEV_MAX];

static struct fakedev **free_place(void)
{
	int i;

	for (i = 0; i < FAKEDEV_MAX; i++)
		if (!devs[i])
			return &devs[i];
	return NULL;
}

int fakedev_create(struct fakedev *d, struct ringsim *sim)
{
	struct fakedev **place = free_place();
	int p[2];

	memset(d, 0, sizeof(*d));
	if (!place)
		return -EBUSY;
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK))
		return -errno;
	d->sim = sim;
	d->rfd = p[0];
	d->wfd = p[1];
	d->abi_version = DM_REPL_ABI_VERSION;
	d->role = DM_REPL_ROLE_PRIMARY;
	snprintf(d->path, sizeof(d->path), "/proc/self/fd/%d", d->rfd);
	*place = d;
	return 0;
}

void fakedev_remove(struct fakedev *d)
{
	if (d->wfd >= 0)
		close(d->wfd);
	d->wfd = -1;
}

void fakedev_wake(struct fakedev *d)
{
	if (__real_write(d->wfd, "x", 1) != 1)
		perror("fakedev_wake");
}

void fakedev_drain(struct fakedev *d)
{
	char buf[64];

	while (read(d->rfd, buf, sizeof(buf)) > 0)
		;
}

void fakedev_destroy(struct fakedev *d)
{
	int i;

	fakedev_remove(d);
	close(d->rfd);
	for (i = 0; i < FAKEDEV_MAX; i++)
		if (devs[i] == d)
			devs[i] = NULL;
}

/* The fake device whose pipe fd refers to, or NULL. */
static struct fakedev *fake_of(int fd)
{
	struct stat a, b;
	int i;

	if (fd < 0 || fstat(fd, &a))
		return NULL;
	for (i = 0; i < FAKEDEV_MAX; i++)
		if (devs[i] && !fstat(devs[i]->rfd, &b) &&
		    a.st_dev == b.st_dev && a.st_ino == b.st_ino)
			return devs[i];
	return NULL;
}

static int fake_group_info(struct fakedev *d, struct dm_repl_group_info *info)
{
	struct ringsim *s = d->sim;
	__u32 asked = info->abi_version;

	if (asked != d->abi_version && d->refuse_version) {
		errno = EINVAL;
		return -1;
	}
	memset(info, 0, sizeof(*info));
	info->abi_version = d->abi_version;
	snprintf(info->name, sizeof(info->name), "fake");
	info->data_size = s->data_size;
	info->mmap_size = s->map_size;
	info->next_seq = s->next_seq;
	info->epoch = s->epoch;
	info->producer_pos = s->ctl->producer_pos;
	info->released_pos = s->ctl->released_pos;
	info->released_seq = s->ctl->released_seq;
	info->nr_volumes = 1;
	info->role = d->role;
	if (d->role != DM_REPL_ROLE_SECONDARY)
		info->stream = s->stream;
	info->volumes[0].sectors = 2048;
	info->volumes[0].dirty_regions = 3;
	info->volumes[0].nr_regions = 16;
	info->volumes[0].region_sectors = 128;
	info->volumes[0].index = 0;
	info->volumes[0].dev_major = 7;
	info->volumes[0].dev_minor = 1;
	return 0;
}

static int fake_release(struct fakedev *d, const __u64 *seq)
{
	int ret;

	if (d->on_release)
		d->on_release(d, *seq);
	d->release_calls++;
	d->last_release = *seq;
	ret = ringsim_release(d->sim, *seq);
	if (ret) {
		errno = -ret;
		return -1;
	}
	return 0;
}

static int fake_resync(struct fakedev *d, struct dm_repl_resync_req *req)
{
	if (d->resync_errno || d->role != DM_REPL_ROLE_PRIMARY ||
	    d->nr_resyncs == FAKEDEV_RESYNCS) {
		errno = d->resync_errno ? d->resync_errno :
			d->role != DM_REPL_ROLE_PRIMARY ? EPERM : ENOSPC;
		return -1;
	}
	d->resyncs[d->nr_resyncs++] = *req;
	req->records = 1;
	req->seq = d->sim->next_seq++;
	req->flags = (req->flags & DM_REPL_RESYNCF_VERIFY) && d->verify_raced ?
		     DM_REPL_RESYNCF_RACED : 0;
	return 0;
}

int __wrap_ioctl(int fd, unsigned long req, ...)
{
	struct fakedev *d;
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	d = fake_of(fd);
	if (!d)
		return __real_ioctl(fd, req, arg);
	switch (req) {
	case DM_REPL_IOC_GROUP_INFO:
		return fake_group_info(d, arg);
	case DM_REPL_IOC_RELEASE:
		return fake_release(d, arg);
	case DM_REPL_IOC_APPLY_INFO:
		*(struct dm_repl_apply_info *)arg = d->apply_info;
		((struct dm_repl_apply_info *)arg)->abi_version = d->abi_version;
		return 0;
	case DM_REPL_IOC_VERIFY_INFO:
		*(struct dm_repl_verify_info *)arg = d->verify_info;
		((struct dm_repl_verify_info *)arg)->abi_version = d->abi_version;
		return 0;
	case DM_REPL_IOC_RESYNC:
		return fake_resync(d, arg);
	}
	errno = ENOTTY;
	return -1;
}

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	struct fakedev *d = fake_of(fd);
	struct ringsim *s;

	if (!d)
		return __real_mmap(addr, len, prot, flags, fd, off);
	s = d->sim;
	if (off || len != s->map_size || (prot & PROT_WRITE)) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	return ringsim_map(s->memfd, s->ctl_size, s->data_size, PROT_READ);
}

/* Refuse a batch as the module does: errno, and the reason in apply_info. */
static ssize_t refuse(struct fakedev *d, int err, unsigned int reason, __u64 seq)
{
	d->apply_info.rejected++;
	d->apply_info.last_error = -err;
	d->apply_info.last_reason = reason;
	d->apply_info.last_error_seq = seq;
	errno = err;
	return -1;
}

/* The module's rules, reduced: sealed records, in sequence after applied_seq. */
static ssize_t judge(struct fakedev *d, const unsigned char *buf, size_t len)
{
	__u64 next = d->apply_info.applied_seq + 1, seq;
	const struct dm_repl_rec *r;
	size_t off;

	for (off = 0; off < len; off += dmrepl_rec_len(r)) {
		r = (const void *)(buf + off);
		if (dmrepl_rec_check(r, len - off, NULL))
			return refuse(d, EBADMSG, DM_REPL_APPLY_BAD_CRC, dmrepl_rec_seq(r));
		seq = dmrepl_rec_seq(r);
		if (seq > next)
			return refuse(d, EILSEQ, DM_REPL_APPLY_SEQ_GAP, seq);
		if (seq == next)
			next++;
	}
	return 0;
}

static ssize_t apply_batch(struct fakedev *d, const unsigned char *buf, size_t len)
{
	struct dm_repl_apply_info *ai = &d->apply_info;
	const struct dm_repl_rec *r;
	size_t off;

	if (judge(d, buf, len))
		return -1;
	for (off = 0; off < len; off += dmrepl_rec_len(r)) {
		r = (const void *)(buf + off);
		if (dmrepl_rec_seq(r) <= ai->applied_seq) {
			ai->skipped++;
			continue;
		}
		ai->applied_seq = dmrepl_rec_seq(r);
		ai->applied_epoch = dmrepl_rec_epoch(r);
		ai->applied_stream = dmrepl_rec_stream(r);
		ai->records++;
	}
	ai->batches++;
	return (ssize_t)len;
}

ssize_t __wrap_write(int fd, const void *buf, size_t len)
{
	struct fakedev *d = fake_of(fd);

	if (!d)
		return __real_write(fd, buf, len);
	d->writes++;
	if (d->write_errno && d->writes > d->write_errno_after) {
		errno = d->write_errno;
		return -1;
	}
	if (d->write_short && len > d->write_short)
		len = d->write_short;
	if (d->apply_writes)
		return apply_batch(d, buf, len);
	return __real_write(fd, buf, len);
}
