/* SPDX-License-Identifier: GPL-2.0 */
/*
 * fakering: a primary group's ring as repld's session sees it, through the
 * libdmrepl calls it makes (dmrepl_ring_open/_info/_next_slot/_release/
 * _fd/_pos/_why/_close, dmrepl_group_open/_info, dmrepl_ring_path), with no
 * module and no mapping. A test program links fakering.o and the library's
 * objects but ring.o, so these definitions are the only ones.
 *
 * The test appends records (valid WRITE records of the ring's stream, seq
 * 1, 2, ...) while a session thread consumes them; the fake plays the
 * module's part:
 *  - each dmrepl_ring_open() is a consumer of its own, reading from the
 *    first record not released, as the module's mapping does;
 *  - RELEASE frees every record up to a sequence (their memory too: a
 *    reader that keeps a released record trips ASan) and refuses, with
 *    -EINVAL, a sequence never reserved;
 *  - the ring's fd is a pipe: readable while a consumer has records to
 *    read, POLLHUP once the group is removed (fakering_remove());
 *  - GROUP_INFO answers the ring's facts (one volume, generation
 *    FAKERING_GEN) and the role the test sets.
 * One fakering exists at a time; every field is under lock.
 */
#ifndef FAKERING_H
#define FAKERING_H

#include <pthread.h>
#include <stdbool.h>

#include "dmrepl.h"

#define FAKERING_MAX	1024		/* records appended over a ring's life */
#define FAKERING_PAYLOAD 512		/* bytes of data in each record */
#define FAKERING_SECTORS 2048ULL	/* the one volume's size */
#define FAKERING_REGION_SECTORS 128U	/* its bitmap's region size */
#define FAKERING_GEN	0x6e6e000000000001ULL	/* the group's current generation */

struct fakering {
	char group[DM_REPL_GROUP_NAME_MAX];
	__u64 stream;
	__u32 role;			/* GROUP_INFO's (default primary) */
	pthread_mutex_t lock;
	/* Record of sequence s at recs[s - 1]; NULL once released. */
	struct dm_repl_rec *recs[FAKERING_MAX];
	__u64 next_seq;			/* the next record's sequence */
	__u64 released_seq;
	__u64 released_bytes;		/* of the records released */
	__u64 last_release;		/* the last sequence RELEASE was asked for */
	unsigned int releases;		/* RELEASE calls */
	unsigned int bad_releases;	/* of those, refused (-EINVAL) */
	unsigned int opens, closes;	/* dmrepl_ring_open() and _close() */
	__u64 read_seq;			/* the last consumer's next sequence */
	int rfd, wfd;			/* the pipe; wfd -1 once removed */
	bool readable;			/* a byte is in the pipe */
};

/* Become the ring of group (stream: its records'). 0, -EBUSY or -errno. */
int fakering_create(struct fakering *f, const char *group, __u64 stream);
void fakering_destroy(struct fakering *f);

/* Append n committed records and wake the consumer. 0 or -errno. */
int fakering_append(struct fakering *f, unsigned int n);

/* The group's last volume is removed: the ring's fd says POLLHUP. */
void fakering_remove(struct fakering *f);

/* Released up to this sequence (read under the lock). */
__u64 fakering_released(struct fakering *f);

#endif
