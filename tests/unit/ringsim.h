/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ringsim: a userspace producer that lays out a group's ring exactly as the
 * module does (control page, data area mapped twice) and plays the kernel's
 * part of the protocol: reserve (slot BUSY, producer_pos released), commit or
 * discard (len_flags released), and moving released_pos.
 *
 * The consumer gets its own read-only view of the same memory (ro), built
 * the same way, so a stray write by the library faults.
 */
#ifndef RINGSIM_H
#define RINGSIM_H

#include <stddef.h>
#include <linux/dm-repl.h>

#include "dmrepl.h"

struct ringsim_rec {
	__u64 seq;
	__u64 pos;		/* slot position */
	__u64 end_pos;		/* producer_pos after this reservation */
};

struct ringsim {
	int memfd;
	size_t ctl_size;
	__u64 data_size;
	size_t map_size;		/* ctl_size + 2 * data_size */
	unsigned char *rw;		/* producer's view */
	unsigned char *ro;		/* consumer's view (PROT_READ) */
	struct dm_repl_ring_ctl *ctl;	/* in rw */
	unsigned char *data;		/* in rw */

	__u64 next_seq;
	__u64 epoch;
	__u64 stream;		/* of every record produced (RINGSIM_STREAM) */
	/* Reservations not yet released, oldest first (for RELEASE by seq). */
	struct ringsim_rec *recs;
	size_t nr_recs, cap_recs;
};

/* The stream ringsim_create() gives the ring: the kernel never uses 0. */
#define RINGSIM_STREAM 0x5354524541d00001ULL

/* data_size: a power of two, a multiple of the page size. start_pos: the
 * initial producer/released position (lets a test start near the end). */
int ringsim_create(struct ringsim *s, __u64 data_size, __u64 start_pos);
void ringsim_destroy(struct ringsim *s);

/* Build a [ctl][data][data] view of memfd at a fresh address; NULL on error. */
void *ringsim_map(int memfd, size_t ctl_size, __u64 data_size, int prot);

/*
 * Reserve a slot for a record of rec_len bytes: writes len|BUSY and then
 * publishes producer_pos. Returns the slot's position, or -ENOSPC.
 */
long long ringsim_reserve(struct ringsim *s, __u32 rec_len);
/* Pointer (producer view) to the record of the slot at pos. */
void *ringsim_rec_at(struct ringsim *s, __u64 pos);
/* Clear BUSY (commit) or replace it with DISCARDED. */
void ringsim_commit(struct ringsim *s, __u64 pos);
void ringsim_discard(struct ringsim *s, __u64 pos);
/* Store len_flags raw (for corruption tests). */
void ringsim_set_len_flags(struct ringsim *s, __u64 pos, __u32 len_flags);

/*
 * Reserve, encode and commit a record. f->seq is assigned, and f->stream
 * if 0 (s->stream); type WRITE with payload_len of a deterministic pattern
 * unless f says otherwise.
 * Returns the slot position or a negative errno.
 */
long long ringsim_produce(struct ringsim *s, struct dmrepl_rec_fields *f);
/* Reserve and encode without committing; returns the slot position. */
long long ringsim_produce_busy(struct ringsim *s, struct dmrepl_rec_fields *f);

/*
 * The kernel's RELEASE: free every record with sequence <= seq; -EINVAL if
 * seq was never reserved or a record up to it is still BUSY.
 */
int ringsim_release(struct ringsim *s, __u64 seq);
/* Move released_pos directly (a consumer thread's shortcut: no bookkeeping). */
void ringsim_release_pos(struct ringsim *s, __u64 pos);

/* Deterministic payload byte i of the record with sequence seq. */
static inline unsigned char ringsim_pattern(__u64 seq, size_t i)
{
	return (unsigned char)(seq * 131 + i * 7 + (i >> 8));
}

/* Encode a record at pos the way the kernel leaves it: unsealed (crc 0). */
long ringsim_encode(struct ringsim *s, __u64 pos, size_t size,
		    const struct dmrepl_rec_fields *f);

#endif
