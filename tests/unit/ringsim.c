// SPDX-License-Identifier: GPL-2.0
/*
 * ringsim: the module's side of the ring, in userspace, for tests.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ringsim.h"

void *ringsim_map(int memfd, size_t ctl_size, __u64 data_size, int prot)
{
	size_t size = ctl_size + 2 * data_size;
	unsigned char *base, *p;

	/* Reserve the whole range, then put the file's pages in place. */
	base = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		return NULL;
	p = mmap(base, ctl_size + data_size, prot, MAP_SHARED | MAP_FIXED, memfd, 0);
	if (p == MAP_FAILED)
		goto fail;
	p = mmap(base + ctl_size + data_size, data_size, prot,
		 MAP_SHARED | MAP_FIXED, memfd, (off_t)ctl_size);
	if (p == MAP_FAILED)
		goto fail;
	return base;
fail:
	munmap(base, size);
	return NULL;
}

int ringsim_create(struct ringsim *s, __u64 data_size, __u64 start_pos)
{
	memset(s, 0, sizeof(*s));
	s->ctl_size = (size_t)sysconf(_SC_PAGESIZE);
	s->data_size = data_size;
	s->map_size = s->ctl_size + 2 * data_size;
	s->memfd = memfd_create("ringsim", MFD_CLOEXEC);
	if (s->memfd < 0)
		return -errno;
	if (ftruncate(s->memfd, (off_t)(s->ctl_size + data_size)))
		goto fail;
	s->rw = ringsim_map(s->memfd, s->ctl_size, data_size, PROT_READ | PROT_WRITE);
	s->ro = ringsim_map(s->memfd, s->ctl_size, data_size, PROT_READ);
	if (!s->rw || !s->ro)
		goto fail;
	s->ctl = (struct dm_repl_ring_ctl *)s->rw;
	s->data = s->rw + s->ctl_size;
	s->ctl->magic = DM_REPL_CTL_MAGIC;
	s->ctl->abi_version = DM_REPL_ABI_VERSION;
	s->ctl->ctl_size = (__u32)s->ctl_size;
	s->ctl->slot_size = sizeof(struct dm_repl_slot);
	s->ctl->data_size = data_size;
	s->ctl->producer_pos = start_pos;
	s->ctl->released_pos = start_pos;
	s->next_seq = 1;
	s->stream = RINGSIM_STREAM;
	return 0;
fail:
	ringsim_destroy(s);
	return -ENOMEM;
}

void ringsim_destroy(struct ringsim *s)
{
	if (s->rw)
		munmap(s->rw, s->map_size);
	if (s->ro)
		munmap(s->ro, s->map_size);
	if (s->memfd > 0)
		close(s->memfd);
	free(s->recs);
	memset(s, 0, sizeof(*s));
}

static struct dm_repl_slot *slot_at(struct ringsim *s, __u64 pos)
{
	return (struct dm_repl_slot *)(s->data + (pos & (s->data_size - 1)));
}

void *ringsim_rec_at(struct ringsim *s, __u64 pos)
{
	return slot_at(s, pos) + 1;
}

static int remember(struct ringsim *s, __u64 seq, __u64 pos, __u64 end_pos)
{
	if (s->nr_recs == s->cap_recs) {
		size_t cap = s->cap_recs ? 2 * s->cap_recs : 64;
		struct ringsim_rec *n = realloc(s->recs, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		s->recs = n;
		s->cap_recs = cap;
	}
	s->recs[s->nr_recs].seq = seq;
	s->recs[s->nr_recs].pos = pos;
	s->recs[s->nr_recs].end_pos = end_pos;
	s->nr_recs++;
	return 0;
}

long long ringsim_reserve(struct ringsim *s, __u32 rec_len)
{
	__u64 pos = s->ctl->producer_pos;
	__u64 released = __atomic_load_n(&s->ctl->released_pos, __ATOMIC_ACQUIRE);
	__u64 need = sizeof(struct dm_repl_slot) + rec_len;
	struct dm_repl_slot *slot;

	if (pos + need - released > s->data_size)
		return -ENOSPC;
	if (remember(s, s->next_seq, pos, pos + need))
		return -ENOMEM;
	slot = slot_at(s, pos);
	slot->reserved = 0;
	__atomic_store_n(&slot->len_flags, rec_len | DM_REPL_SLOT_BUSY, __ATOMIC_RELAXED);
	/* The consumer's acquire of producer_pos pairs with this. */
	__atomic_store_n(&s->ctl->producer_pos, pos + need, __ATOMIC_RELEASE);
	return (long long)pos;
}

void ringsim_set_len_flags(struct ringsim *s, __u64 pos, __u32 len_flags)
{
	/* The consumer's acquire of len_flags pairs with this. */
	__atomic_store_n(&slot_at(s, pos)->len_flags, len_flags, __ATOMIC_RELEASE);
}

void ringsim_commit(struct ringsim *s, __u64 pos)
{
	__u32 lf = __atomic_load_n(&slot_at(s, pos)->len_flags, __ATOMIC_RELAXED);

	ringsim_set_len_flags(s, pos, lf & ~DM_REPL_SLOT_BUSY);
}

void ringsim_discard(struct ringsim *s, __u64 pos)
{
	__u32 lf = __atomic_load_n(&slot_at(s, pos)->len_flags, __ATOMIC_RELAXED);

	ringsim_set_len_flags(s, pos, (lf & ~DM_REPL_SLOT_BUSY) | DM_REPL_SLOT_DISCARDED);
}

long long ringsim_produce_busy(struct ringsim *s, struct dmrepl_rec_fields *f)
{
	unsigned char *payload = NULL;
	long long pos;
	__u32 i;

	if (!f->type)
		f->type = DM_REPL_REC_WRITE;
	if (f->type == DM_REPL_REC_WRITE && !f->payload && f->payload_len) {
		payload = malloc(f->payload_len);
		if (!payload)
			return -ENOMEM;
		for (i = 0; i < f->payload_len; i++)
			payload[i] = ringsim_pattern(s->next_seq, i);
		f->payload = payload;
		f->nbytes = f->payload_len;
	}
	f->seq = s->next_seq;
	f->epoch = s->epoch;
	if (!f->stream)
		f->stream = s->stream;
	pos = ringsim_reserve(s, (__u32)dmrepl_rec_size(f->payload_len));
	if (pos >= 0) {
		ringsim_encode(s, (__u64)pos, DMREPL_REC_MAX_LEN, f);
		s->next_seq++;
		if (f->type == DM_REPL_REC_FLUSH)
			s->epoch++;
	}
	if (payload) {
		free(payload);
		f->payload = NULL;
	}
	return pos;
}

long long ringsim_produce(struct ringsim *s, struct dmrepl_rec_fields *f)
{
	long long pos = ringsim_produce_busy(s, f);

	if (pos >= 0)
		ringsim_commit(s, (__u64)pos);
	return pos;
}

int ringsim_release(struct ringsim *s, __u64 seq)
{
	size_t n = 0;

	if (seq >= s->next_seq)
		return -EINVAL;
	while (n < s->nr_recs && s->recs[n].seq <= seq) {
		if (slot_at(s, s->recs[n].pos)->len_flags & DM_REPL_SLOT_BUSY)
			return -EINVAL;
		n++;
	}
	if (!n)
		return 0;
	ringsim_release_pos(s, s->recs[n - 1].end_pos);
	s->ctl->released_seq = s->recs[n - 1].seq;
	memmove(s->recs, s->recs + n, (s->nr_recs - n) * sizeof(*s->recs));
	s->nr_recs -= n;
	return 0;
}

void ringsim_release_pos(struct ringsim *s, __u64 pos)
{
	/* Pairs with the producer's acquire in ringsim_reserve(). */
	__atomic_store_n(&s->ctl->released_pos, pos, __ATOMIC_RELEASE);
}

long ringsim_encode(struct ringsim *s, __u64 pos, size_t size,
		    const struct dmrepl_rec_fields *f)
{
	struct dm_repl_rec *r = ringsim_rec_at(s, pos);
	long len = dmrepl_rec_encode(r, size, f);

	/* As the kernel does: records in the ring are not sealed. */
	if (len > 0)
		r->crc = 0;
	return len;
}
