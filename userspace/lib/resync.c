// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Resync driver (see dmrepl.h): a primary's dirty regions into its ring.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "dmrepl.h"

#define LONG_BITS (8 * sizeof(unsigned long))

void dmrepl_resync_init(struct dmrepl_resync *r, int fd)
{
	memset(r, 0, sizeof(*r));
	r->fd = fd;
}

void dmrepl_resync_free(struct dmrepl_resync *r)
{
	unsigned int i;

	free(r->bits);
	r->bits = NULL;
	for (i = 0; i < DM_REPL_MAX_VOLUMES; i++) {
		free(r->asked[i]);
		r->asked[i] = NULL;
	}
}

bool dmrepl_bit_test(const unsigned long *bits, __u64 n)
{
	return bits[n / LONG_BITS] & (1UL << (n % LONG_BITS));
}

/*
 * Room in the asked bits of @volume for @nr_regions regions. The volume may
 * have grown since the replica's last RESEND (an online resize): the bits
 * asked stay, the new ones start clear. It never shrinks them: a region
 * past the volume's end is dropped when its turn comes (resync_asked).
 */
static int asked_room(struct dmrepl_resync *r, unsigned int volume, __u64 nr_regions)
{
	size_t had = (r->asked_regions[volume] + LONG_BITS - 1) / LONG_BITS;
	size_t words = (nr_regions + LONG_BITS - 1) / LONG_BITS;
	unsigned long *bits;

	if (nr_regions <= r->asked_regions[volume])
		return 0;
	bits = realloc(r->asked[volume], words * sizeof(long));
	if (!bits)
		return -ENOMEM;
	memset(bits + had, 0, (words - had) * sizeof(long));
	r->asked[volume] = bits;
	r->asked_regions[volume] = nr_regions;
	return 0;
}

int dmrepl_resync_ask(struct dmrepl_resync *r, unsigned int volume, __u64 nr_regions,
		      const __u64 *regions, unsigned int n)
{
	unsigned long *bits;
	unsigned int i;
	int ret;

	if (volume >= DM_REPL_MAX_VOLUMES || !nr_regions)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (regions[i] >= nr_regions)
			return -EINVAL;
	ret = asked_room(r, volume, nr_regions);
	if (ret)
		return ret;
	bits = r->asked[volume];
	for (i = 0; i < n; i++) {
		if (dmrepl_bit_test(bits, regions[i]))
			continue;
		bits[regions[i] / LONG_BITS] |= 1UL << (regions[i] % LONG_BITS);
		r->asked_left++;
	}
	return 0;
}

int dmrepl_resync_ask_theirs(struct dmrepl_resync *r, unsigned int volume, __u64 nr_regions,
			     __u32 ours, __u32 theirs, const __u64 *regions, unsigned int n,
			     unsigned int *asked)
{
	__u64 chunk[64], first, last, region;
	unsigned int i, k = 0;
	int ret;

	*asked = 0;
	if (!ours || !theirs)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		/* Past our end (regions[i] * theirs would be, or overflow). */
		if (regions[i] > nr_regions * ours / theirs)
			continue;
		first = regions[i] * theirs / ours;
		last = ((regions[i] + 1) * theirs - 1) / ours;
		for (region = first; region <= last && region < nr_regions; region++) {
			if (k && chunk[k - 1] == region)
				continue;	/* two of theirs in one of ours */
			chunk[k++] = region;
			if (k < sizeof(chunk) / sizeof(chunk[0]))
				continue;
			ret = dmrepl_resync_ask(r, volume, nr_regions, chunk, k);
			if (ret)
				return ret;
			*asked += k;
			k = 0;
		}
	}
	*asked += k;
	return k ? dmrepl_resync_ask(r, volume, nr_regions, chunk, k) : 0;
}

__u64 dmrepl_dirty_past(const unsigned long *bits, __u64 nr_regions, __u32 region_sectors,
			__u64 sectors, __u64 limit)
{
	__u64 n;

	if (sectors <= limit || !region_sectors)
		return nr_regions;
	/* Region n ends at (n + 1) * region_sectors: past limit from here on. */
	for (n = limit / region_sectors; n < nr_regions; n++)
		if (dmrepl_bit_test(bits, n))
			return n;
	return nr_regions;
}

/*
 * Is volume @index's resync held (its data device's flush keeps failing)?
 * Its regions wait for a pass after the hold; the others go meanwhile.
 */
static bool index_held(const struct dmrepl_resync *r, __u32 index)
{
	return index < DM_REPL_MAX_VOLUMES && ((r->info.resync_held_volumes >> index) & 1);
}

/*
 * The next region asked for, from the cursor, of a volume not held: true,
 * or false if none.
 */
static bool next_asked(struct dmrepl_resync *r)
{
	for (; r->asked_vol < DM_REPL_MAX_VOLUMES; r->asked_vol++, r->asked_next = 0) {
		if (!r->asked[r->asked_vol] || index_held(r, r->asked_vol))
			continue;
		for (; r->asked_next < r->asked_regions[r->asked_vol]; r->asked_next++)
			if (dmrepl_bit_test(r->asked[r->asked_vol], r->asked_next))
				return true;
	}
	r->asked_vol = 0;
	r->asked_next = 0;
	return false;
}

static void asked_done(struct dmrepl_resync *r)
{
	r->asked[r->asked_vol][r->asked_next / LONG_BITS] &= ~(1UL << (r->asked_next % LONG_BITS));
	r->asked_left--;
}

int dmrepl_volume_entry(const struct dm_repl_group_info *info, unsigned int index)
{
	unsigned int i;

	for (i = 0; i < info->nr_volumes && i < DM_REPL_MAX_VOLUMES; i++)
		if (info->volumes[i].index == index)
			return (int)i;
	return -1;
}

__u64 dmrepl_resync_left(const struct dm_repl_group_info *info)
{
	__u64 left = info->resync_regions;
	unsigned int i;

	for (i = 0; i < info->nr_volumes && i < DM_REPL_MAX_VOLUMES; i++)
		left += info->volumes[i].dirty_regions;
	return left;
}

const char *dmrepl_behind_reasons(__u32 why, char *buf, size_t len)
{
	static const char *const names[] = {
		"overflow", "failed-write", "al-full", "loaded-dirty", "crash",
		"grown", "unreleased", "marked", "resync-failed",
	};
	size_t used = 0;
	unsigned int i;
	int n;

	if (!len)
		return buf;
	snprintf(buf, len, "-");
	for (i = 0; i < 32 && used < len; i++) {
		if (!(why & (1U << i)))
			continue;
		if (i < sizeof(names) / sizeof(names[0]))
			n = snprintf(buf + used, len - used, "%s%s", used ? "," : "", names[i]);
		else
			n = snprintf(buf + used, len - used, "%sbit-%u", used ? "," : "", i);
		used += (size_t)n;
	}
	if (used >= len && len > 3)
		memcpy(buf + len - 4, "...", 4);
	return buf;
}

int dmrepl_bitmap_get(int fd, const struct dm_repl_volume_info *v, unsigned long **bits,
		      size_t *size)
{
	struct dm_repl_bitmap_req req = {
		.abi_version = DM_REPL_ABI_VERSION,
		.volume = v->index,
	};
	size_t need = (v->nr_regions + LONG_BITS - 1) / LONG_BITS * sizeof(long);

	if (need > *size) {
		void *grown = realloc(*bits, need);

		if (!grown)
			return -ENOMEM;
		*bits = grown;
		*size = need;
	}
	req.buf = (__u64)(uintptr_t)*bits;
	req.buf_size = need;
	if (ioctl(fd, DM_REPL_IOC_GET_BITMAP, &req) < 0)
		return -errno;
	/* The volume may have grown since the info: look at what came. */
	if (req.buf_size < need)
		memset((char *)*bits + req.buf_size, 0, need - req.buf_size);
	return 0;
}

/* The cursor volume's bitmap, copied out of the kernel. */
static int load_bits(struct dmrepl_resync *r)
{
	int ret = dmrepl_bitmap_get(r->fd, &r->info.volumes[r->vol], &r->bits, &r->bits_size);

	r->loaded = !ret;
	return ret;
}

static void restart_pass(struct dmrepl_resync *r)
{
	r->vol = 0;
	r->region = 0;
	r->loaded = false;
}

/* The pass leaves the cursor's volume for the next one. */
static void next_volume(struct dmrepl_resync *r)
{
	r->vol++;
	r->region = 0;
	r->loaded = false;
}

/* The next dirty region at or after the cursor, in this pass: 1, 0 if none. */
static int next_dirty(struct dmrepl_resync *r)
{
	int ret;

	/* Volumes came or went since the bitmap was copied: start again. */
	if (r->loaded && (r->vol >= r->info.nr_volumes ||
			  r->info.volumes[r->vol].index != r->vol_index))
		restart_pass(r);
	for (; r->vol < r->info.nr_volumes; next_volume(r)) {
		__u64 n = r->info.volumes[r->vol].nr_regions;

		if (!r->info.volumes[r->vol].dirty_regions ||
		    index_held(r, r->info.volumes[r->vol].index))
			continue;
		if (!r->loaded) {
			ret = load_bits(r);
			if (ret)
				return ret;
			r->vol_index = r->info.volumes[r->vol].index;
		}
		for (; r->region < n; r->region++)
			if (dmrepl_bit_test(r->bits, r->region))
				return 1;
	}
	return 0;
}

bool dmrepl_ring_over(const struct dm_repl_group_info *info, unsigned int fill_pct)
{
	__u64 used = info->producer_pos - info->released_pos;

	return used * 100 > info->data_size * fill_pct;
}

/* One region (or, with ANY, a clean one to carry the end): 1 put in, 0 no room. */
static int resync_one(struct dmrepl_resync *r, unsigned int vol, __u64 region, __u32 flags)
{
	struct dm_repl_resync_req req = {
		.abi_version = DM_REPL_ABI_VERSION,
		.volume = r->info.volumes[vol].index,
		.region = region,
		.flags = flags,
	};

	r->busy = false;
	if (ioctl(r->fd, DM_REPL_IOC_RESYNC, &req) < 0) {
		r->busy = errno == EBUSY;
		if (errno == ENOSPC || errno == EBUSY)
			return 0;	/* no room now */
		if ((errno == ENOENT || errno == EINVAL) && !(flags & DM_REPL_RESYNCF_ANY)) {
			restart_pass(r);	/* the volume went or changed */
			return 0;
		}
		return -errno;
	}
	if (!req.records)
		return 1;	/* cleaned meanwhile: as good as done */
	r->regions++;
	r->bytes += (__u64)r->info.volumes[vol].region_sectors << 9;
	if (req.flags & DM_REPL_RESYNCF_END)
		r->ended = true;
	return 1;
}

/*
 * The region the replica asked for at the cursor (next_asked()): 1 put in
 * (or its volume is gone: the replica asks again at its next connection),
 * 0 no room now.
 */
static int resync_asked(struct dmrepl_resync *r)
{
	int vol, ret;

	vol = dmrepl_volume_entry(&r->info, r->asked_vol);
	if (vol < 0) {
		asked_done(r);
		return 1;
	}
	ret = resync_one(r, (unsigned int)vol, r->asked_next, DM_REPL_RESYNCF_ANY);
	if (ret == -ENOENT || ret == -EINVAL)
		ret = 1;	/* the volume went or shrank */
	else if (ret == -EAGAIN)
		ret = 0;	/* held: asked again after the hold */
	if (ret > 0)
		asked_done(r);
	return ret;
}

/*
 * A clean region of the first volume not held, to carry the end: 1 put in,
 * 0 not now (no room, or every volume held), or -errno.
 */
static int resync_end(struct dmrepl_resync *r)
{
	unsigned int vol;
	int ret;

	for (vol = 0; vol < r->info.nr_volumes && vol < DM_REPL_MAX_VOLUMES; vol++)
		if (!index_held(r, r->info.volumes[vol].index))
			break;
	if (vol == r->info.nr_volumes || vol == DM_REPL_MAX_VOLUMES)
		return 0;
	ret = resync_one(r, vol, 0, DM_REPL_RESYNCF_ANY);
	return ret == -EAGAIN ? 0 : ret;	/* held since the info */
}

int dmrepl_resync_step(struct dmrepl_resync *r, unsigned int max, unsigned int fill_pct)
{
	unsigned int done = 0;
	int ret;

	r->busy = false;
	while (done < max) {
		ret = dmrepl_group_info(r->fd, &r->info, NULL, 0);
		if (ret)
			return ret;
		if (r->info.role != DM_REPL_ROLE_PRIMARY)
			return -EPERM;
		if (dmrepl_ring_over(&r->info, fill_pct))
			break;
		/* Those of a held volume wait; the dirty ones go meanwhile. */
		if (r->asked_left && next_asked(r)) {
			ret = resync_asked(r);
			if (ret <= 0)
				return ret < 0 ? ret : (int)done;
			done++;
			continue;
		}
		if (r->info.state != DM_REPL_STATE_BEHIND)
			break;
		ret = next_dirty(r);
		if (ret < 0)
			return ret;
		if (!ret) {
			/*
			 * A pass ended. Behind with nothing dirty or in the ring
			 * (a flush that found no room, a volume that left dirty
			 * and came back clean): region 0 again, to end it.
			 */
			restart_pass(r);
			/* Nothing to do until they are back, or no longer held. */
			if (dmrepl_resync_left(&r->info) || r->info.departed_volumes ||
			    r->asked_left)
				break;
			if (!r->info.nr_volumes)
				return -ENODEV;
			ret = resync_end(r);
		} else {
			ret = resync_one(r, r->vol, r->region, 0);
			if (ret == -EAGAIN) {
				/* Held since the info: the next volume. */
				next_volume(r);
				continue;
			}
			if (ret > 0)
				r->region++;
		}
		if (ret <= 0)
			return ret < 0 ? ret : (int)done;
		done++;
	}
	return (int)done;
}
