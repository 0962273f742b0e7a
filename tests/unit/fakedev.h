/* SPDX-License-Identifier: GPL-2.0 */
/*
 * fakedev: a stand-in for /dev/dm-repl/<group> on a host that cannot load
 * the module. Test binaries are linked with -Wl,--wrap=ioctl,--wrap=mmap so
 * the library's ioctl() and mmap() on the fake device's file come here:
 *  - the device is a pipe, opened through /proc/self/fd/N, so poll() is
 *    real: a byte in the pipe is POLLIN, closing the write end is POLLHUP;
 *  - DM_REPL_IOC_GROUP_INFO (the ring's stream included, on a primary)
 *    and DM_REPL_IOC_RELEASE are answered from a ringsim, like the module
 *    would;
 *  - mmap() returns a read-only [ctl][data][data] view of the ringsim;
 *  - DM_REPL_IOC_APPLY_INFO returns apply_info; write(2) (a batch) goes
 *    into the pipe, unless write_errno or write_short say otherwise, or
 *    with apply_writes is judged and applied as the module would (every
 *    record checked, crc included, and in sequence after applied_seq; the
 *    counters, applied_seq, its stream and a refusal's reason in
 *    apply_info). Streams are not judged: no STREAM record is needed and
 *    none refused;
 *  - DM_REPL_IOC_VERIFY_INFO returns verify_info; DM_REPL_IOC_RESYNC (a
 *    primary) keeps each request in resyncs[] and answers one record at
 *    the next sequence of the ringsim (RACED for a VERIFY with
 *    verify_raced), or resync_errno.
 * Up to FAKEDEV_MAX devices exist at once (a primary and a secondary).
 * Every other fd goes to the real calls.
 */
#ifndef FAKEDEV_H
#define FAKEDEV_H

#include <limits.h>

#include "ringsim.h"

#define FAKEDEV_MAX 2
#define FAKEDEV_RESYNCS 128

struct fakedev {
	struct ringsim *sim;
	int rfd, wfd;			/* the pipe */
	char path[64];			/* /proc/self/fd/<rfd> */
	__u32 abi_version;		/* what the "module" speaks */
	bool refuse_version;		/* EINVAL on a version other than its own */
	int release_calls;
	__u64 last_release;
	__u32 role;			/* GROUP_INFO's role (default primary) */
	struct dm_repl_apply_info apply_info;	/* what APPLY_INFO answers */
	int write_errno;		/* a write(2) fails with it (0: no) */
	int write_errno_after;		/* ... but not the first this many */
	size_t write_short;		/* a write(2) takes at most this (0: all) */
	int writes;			/* write(2) calls on the device */
	bool apply_writes;		/* write(2) applies the batch (see above) */
	struct dm_repl_verify_info verify_info;	/* what VERIFY_INFO answers */
	struct dm_repl_resync_req resyncs[FAKEDEV_RESYNCS];	/* RESYNC asked */
	int nr_resyncs;
	bool verify_raced;		/* every VERIFY comes back RACED */
	int resync_errno;		/* RESYNC fails with it (0: no) */
	/* Called at each DM_REPL_IOC_RELEASE, before it is done. */
	void (*on_release)(struct fakedev *d, __u64 seq);
	void *priv;			/* the test's, for on_release */
};

/* Become a fake device, backed by sim. Returns 0 or -errno (-EBUSY: too many). */
int fakedev_create(struct fakedev *d, struct ringsim *sim);
/* "Remove the group's last volume": close the write end (POLLHUP). */
void fakedev_remove(struct fakedev *d);
/* Report records committed (POLLIN until fakedev_drain). */
void fakedev_wake(struct fakedev *d);
void fakedev_drain(struct fakedev *d);
void fakedev_destroy(struct fakedev *d);

#endif
