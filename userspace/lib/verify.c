// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Verify driver (see dmrepl.h): a VERIFY record for every region of a
 * primary group, for the replica to compare.
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "dmrepl.h"

int dmrepl_verify_init(struct dmrepl_verify *v, int fd)
{
	int ret;

	memset(v, 0, sizeof(*v));
	v->fd = fd;
	ret = dmrepl_group_info(fd, &v->info, NULL, 0);
	if (ret)
		return ret;
	if (v->info.role != DM_REPL_ROLE_PRIMARY)
		return -EPERM;
	if (v->info.nr_volumes > DM_REPL_MAX_VOLUMES)
		return -EINVAL;
	return 0;
}

/* Past the cursor region: the next one, or the next volume's first. */
static void advance(struct dmrepl_verify *v)
{
	v->tries = 0;
	if (++v->region < v->info.volumes[v->vol].nr_regions)
		return;
	v->region = 0;
	v->vol++;
}

/* One VERIFY record for the cursor region: 1 put in, 0 no room. */
static int verify_one(struct dmrepl_verify *v)
{
	const struct dm_repl_volume_info *vi = &v->info.volumes[v->vol];
	struct dm_repl_resync_req req = {
		.abi_version = DM_REPL_ABI_VERSION,
		.volume = vi->index,
		.region = v->region,
		.flags = DM_REPL_RESYNCF_VERIFY,
	};
	__u64 start = v->region * vi->region_sectors;
	__u64 sectors = vi->sectors - start < vi->region_sectors ?
			vi->sectors - start : vi->region_sectors;

	if (ioctl(v->fd, DM_REPL_IOC_RESYNC, &req) < 0)
		return errno == ENOSPC ? 0 : -errno;
	if (!v->first_seq)
		v->first_seq = req.seq;
	v->last_seq = req.seq;
	if (!(req.flags & DM_REPL_RESYNCF_RACED)) {
		v->regions++;
		v->bytes += sectors << 9;
		advance(v);
		return 1;
	}
	v->raced++;
	if (++v->tries == DMREPL_VERIFY_TRIES) {
		v->not_compared++;
		advance(v);
	}
	return 1;
}

int dmrepl_verify_step(struct dmrepl_verify *v, unsigned int max, unsigned int fill_pct)
{
	struct dm_repl_group_info now;
	unsigned int done = 0;
	int ret;

	while (done < max && v->vol < v->info.nr_volumes) {
		ret = dmrepl_group_info(v->fd, &now, NULL, 0);
		if (ret)
			return ret;
		if (dmrepl_ring_over(&now, fill_pct))
			break;
		ret = verify_one(v);
		if (ret <= 0)
			return ret < 0 ? ret : (int)done;
		done++;
	}
	v->done = v->vol >= v->info.nr_volumes;
	return (int)done;
}

long long dmrepl_verify_region_of(const struct dm_repl_group_info *info, unsigned int volume,
				  __u64 sector)
{
	unsigned int i;

	for (i = 0; i < info->nr_volumes && i < DM_REPL_MAX_VOLUMES; i++) {
		const struct dm_repl_volume_info *vi = &info->volumes[i];

		if (vi->index == volume && vi->region_sectors && sector < vi->sectors)
			return (long long)(sector / vi->region_sectors);
	}
	return -1;
}
