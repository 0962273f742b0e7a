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

static struct fakedev *the_dev;

int fakedev_create(struct fakedev *d, struct ringsim *sim)
{
	int p[2];

	memset(d, 0, sizeof(*d));
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK))
		return -errno;
	d->sim = sim;
	d->rfd = p[0];
	d->wfd = p[1];
	d->abi_version = DM_REPL_ABI_VERSION;
	d->role = DM_REPL_ROLE_PRIMARY;
	snprintf(d->path, sizeof(d->path), "/proc/self/fd/%d", d->rfd);
	the_dev = d;
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
	if (write(d->wfd, "x", 1) != 1)
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
	fakedev_remove(d);
	close(d->rfd);
	the_dev = NULL;
}

/* Does fd refer to the fake device's pipe? */
static bool is_fake(int fd)
{
	struct stat a, b;

	if (!the_dev || fstat(fd, &a) || fstat(the_dev->rfd, &b))
		return false;
	return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static int fake_group_info(struct dm_repl_group_info *info)
{
	struct ringsim *s = the_dev->sim;
	__u32 asked = info->abi_version;

	if (asked != the_dev->abi_version && the_dev->refuse_version) {
		errno = EINVAL;
		return -1;
	}
	memset(info, 0, sizeof(*info));
	info->abi_version = the_dev->abi_version;
	snprintf(info->name, sizeof(info->name), "fake");
	info->data_size = s->data_size;
	info->mmap_size = s->map_size;
	info->next_seq = s->next_seq;
	info->epoch = s->epoch;
	info->producer_pos = s->ctl->producer_pos;
	info->released_pos = s->ctl->released_pos;
	info->released_seq = s->ctl->released_seq;
	info->nr_volumes = 1;
	info->role = the_dev->role;
	info->volumes[0].sectors = 2048;
	info->volumes[0].dirty_regions = 3;
	info->volumes[0].nr_regions = 16;
	info->volumes[0].region_sectors = 128;
	info->volumes[0].index = 0;
	info->volumes[0].dev_major = 7;
	info->volumes[0].dev_minor = 1;
	return 0;
}

static int fake_release(const __u64 *seq)
{
	int ret;

	the_dev->release_calls++;
	the_dev->last_release = *seq;
	ret = ringsim_release(the_dev->sim, *seq);
	if (ret) {
		errno = -ret;
		return -1;
	}
	return 0;
}

int __wrap_ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (!is_fake(fd))
		return __real_ioctl(fd, req, arg);
	switch (req) {
	case DM_REPL_IOC_GROUP_INFO:
		return fake_group_info(arg);
	case DM_REPL_IOC_RELEASE:
		return fake_release(arg);
	case DM_REPL_IOC_APPLY_INFO:
		*(struct dm_repl_apply_info *)arg = the_dev->apply_info;
		((struct dm_repl_apply_info *)arg)->abi_version = the_dev->abi_version;
		return 0;
	}
	errno = ENOTTY;
	return -1;
}

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	struct ringsim *s;

	if (fd < 0 || !is_fake(fd))
		return __real_mmap(addr, len, prot, flags, fd, off);
	s = the_dev->sim;
	if (off || len != s->map_size || (prot & PROT_WRITE)) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	return ringsim_map(s->memfd, s->ctl_size, s->data_size, PROT_READ);
}

ssize_t __wrap_write(int fd, const void *buf, size_t len)
{
	if (!is_fake(fd))
		return __real_write(fd, buf, len);
	the_dev->writes++;
	if (the_dev->write_errno) {
		errno = the_dev->write_errno;
		return -1;
	}
	if (the_dev->write_short && len > the_dev->write_short)
		len = the_dev->write_short;
	return __real_write(fd, buf, len);
}
