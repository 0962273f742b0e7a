// SPDX-License-Identifier: GPL-2.0
/*
 * DM_REPL_IOC_RESYNC (Documentation/dm-repl.md, "Resync"): every bad field
 * is refused with its errno and changes nothing; a region's RESYNC record
 * holds what its data device holds; a region leaves the bitmap only while
 * its record is in the ring, and goes back to it when there is no room;
 * at most 256 regions wait unreleased (or released, not yet taken out);
 * the last one ends the resync; a release has the kernel flush the data
 * device, then write the bitmap blocks of its regions, not those between;
 * a volume whose flush fails has its released regions dirty again, its
 * resync held a while (EAGAIN), and holds back no other volume's; an end
 * whose wait saw a volume join is no end.
 *
 * Runs in the guest (tests/guest/vm.sh) with dm-repl.ko loaded.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "testlib.h"

#define DATA_MB		16
#define REGION		(64U << 10)	/* repltool meta create's default */
#define NR_REGIONS	(DATA_MB * 16)

FIXTURE(resync) {
	struct tl_env env;
	struct tl_vol vol;
	struct dmrepl_ring *ring;
	int fd;
	unsigned char *buf;
};

FIXTURE_SETUP(resync)
{
	TL_SETUP(&self->env);
	self->buf = tl_zalloc_aligned(4 << 20);
	ASSERT_NE(NULL, self->buf);
}

FIXTURE_TEARDOWN(resync)
{
	free(self->buf);
	TL_TEARDOWN(&self->env);
}

/* A primary volume of group rs of mb MiB with opts, its ring and device open. */
static void setup_vol_mb(struct __test_metadata *_metadata, FIXTURE_DATA(resync) *self,
			 unsigned int mb, const char *opts)
{
	char err[DMREPL_ERRMSG_LEN];

	ASSERT_EQ(0, tl_vol_create(&self->env, &self->vol, "rs", "rs", mb, opts));
	ASSERT_EQ(0, tl_ring_open(&self->env, "rs", &self->ring, err, sizeof(err)));
	self->fd = dmrepl_ring_fd(self->ring);
}

static void setup_vol(struct __test_metadata *_metadata, FIXTURE_DATA(resync) *self,
		      const char *opts)
{
	setup_vol_mb(_metadata, self, DATA_MB, opts);
}

static int resync(int fd, unsigned int volume, __u64 region, __u32 flags,
		  struct dm_repl_resync_req *out)
{
	struct dm_repl_resync_req req = {
		.abi_version = DM_REPL_ABI_VERSION,
		.volume = volume,
		.region = region,
		.flags = flags,
	};
	int r = ioctl(fd, DM_REPL_IOC_RESYNC, &req);

	if (out)
		*out = req;
	return r ? -errno : 0;
}

static __u64 dirty_of(int fd)
{
	struct dm_repl_group_info info;

	if (dmrepl_group_info(fd, &info, NULL, 0))
		return ~0ULL;
	return info.volumes[0].dirty_regions;
}

/* Field @f (from 1) of a block device's /sys/block/NAME/stat; -1 if none. */
static long long stat_of(const char *dev, int f)
{
	const char *name = strrchr(dev, '/') + 1;
	unsigned long long v = 0;
	char path[128];
	FILE *s;
	int n;

	snprintf(path, sizeof(path), "/sys/block/%s/stat", name);
	s = fopen(path, "r");
	if (!s)
		return -1;
	for (n = 0; n < f && fscanf(s, "%llu", &v) == 1; n++)
		;
	fclose(s);
	return n == f ? (long long)v : -1;
}

#define STAT_WRITES	5	/* writes completed */
#define STAT_FLUSHES	16	/* flush requests completed */

/*
 * The group's info once save_work took out the regions released, leaving
 * @regions unreleased, and wrote their blocks.
 */
static int saves_done(int fd, __u64 regions, struct dm_repl_group_info *info)
{
	int i, r;

	for (i = 0; i < 100; i++) {
		r = dmrepl_group_info(fd, info, NULL, 0);
		if (r || (!info->resync_blocks_unsaved && info->resync_regions == regions))
			return r;
		usleep(50000);
	}
	return -ETIMEDOUT;
}

static int raw(int fd, struct dm_repl_resync_req *req)
{
	return ioctl(fd, DM_REPL_IOC_RESYNC, req) ? -errno : 0;
}

TEST_F_TIMEOUT(resync, every_bad_field_is_refused_and_changes_nothing, 120)
{
	struct dm_repl_group_info info = { .abi_version = DM_REPL_ABI_VERSION };
	struct dm_repl_resync_req req;

	setup_vol(_metadata, self, "2 ring_mb 8");

	memset(&req, 0, sizeof(req));
	req.abi_version = DM_REPL_ABI_VERSION + 1;
	EXPECT_EQ(-EPROTO, raw(self->fd, &req));
	req.abi_version = DM_REPL_ABI_VERSION;
	req.volume = DM_REPL_MAX_VOLUMES;
	EXPECT_EQ(-EINVAL, raw(self->fd, &req));
	req.volume = ~0U;
	EXPECT_EQ(-EINVAL, raw(self->fd, &req));
	req.volume = 1;
	EXPECT_EQ(-ENOENT, raw(self->fd, &req));
	req.volume = 0;
	req.region = NR_REGIONS;
	EXPECT_EQ(-EINVAL, raw(self->fd, &req));
	req.region = ~0ULL;
	EXPECT_EQ(-EINVAL, raw(self->fd, &req));
	req.region = 0;
	req.flags = DM_REPL_RESYNCF_END;
	EXPECT_EQ(-EINVAL, raw(self->fd, &req));
	req.flags = 1U << 31;
	EXPECT_EQ(-EINVAL, raw(self->fd, &req));
	req.flags = 0;
	req.records = 1;
	EXPECT_EQ(-EINVAL, raw(self->fd, &req));
	req.records = 0;
	req.seq = 5;
	EXPECT_EQ(-EINVAL, raw(self->fd, &req));
	req.seq = 0;
	req.reserved[0] = 1;
	EXPECT_EQ(-EINVAL, raw(self->fd, &req));
	req.reserved[0] = 0;
	req.reserved[1] = 1;
	EXPECT_EQ(-EINVAL, raw(self->fd, &req));
	EXPECT_EQ(-1, ioctl(self->fd, DM_REPL_IOC_RESYNC, (void *)8));
	EXPECT_EQ(EFAULT, errno);

	/* Nothing of it reached the ring. */
	ASSERT_EQ(0, dmrepl_ring_info(self->ring, &info));
	EXPECT_EQ(0ULL, info.records);
	EXPECT_EQ(0ULL, info.resync_regions);
	EXPECT_EQ((__u32)DM_REPL_STATE_UPTODATE, info.state);
	/* A clean region is left alone, unless ANY. */
	ASSERT_EQ(0, resync(self->fd, 0, 3, 0, &req));
	EXPECT_EQ(0U, req.records);
	ASSERT_EQ(0, resync(self->fd, 0, 3, DM_REPL_RESYNCF_ANY, &req));
	EXPECT_EQ(1U, req.records);
	EXPECT_EQ((__u32)DM_REPL_RESYNCF_END, req.flags);
}

TEST_F_TIMEOUT(resync, the_record_holds_the_region_as_the_disk_has_it, 120)
{
	const struct dm_repl_rec *rec;
	struct dm_repl_resync_req req;
	struct dm_repl_group_info info = { .abi_version = DM_REPL_ABI_VERSION };

	setup_vol(_metadata, self, "2 ring_mb 8");
	/* The region's data goes to the disk under the target, not through it. */
	tl_fill(self->buf, REGION, 42);
	{
		int dfd = open(self->vol.data, O_RDWR | O_DIRECT);

		ASSERT_LE(0, dfd);
		ASSERT_EQ(0, tl_pwrite_all(dfd, self->buf, REGION, 5ULL * REGION));
		close(dfd);
	}
	ASSERT_EQ(0, resync(self->fd, 0, 5, DM_REPL_RESYNCF_ANY, &req));
	ASSERT_EQ(1U, req.records);
	/* A clean bitmap: this region ends the resync (a rejoin relies on it). */
	EXPECT_EQ((uint32_t)DM_REPL_RESYNCF_END, req.flags);
	ASSERT_EQ(1, tl_ring_next_op(self->ring, &rec));
	EXPECT_EQ((__u16)DM_REPL_REC_RESYNC, le16toh(rec->type));
	EXPECT_EQ(req.seq, le64toh(rec->seq));
	EXPECT_EQ(5ULL * REGION / 512, le64toh(rec->sector));
	EXPECT_EQ(REGION, le32toh(rec->nbytes));
	EXPECT_EQ(REGION, le32toh(rec->payload_len));
	EXPECT_EQ(-1, tl_first_diff(rec + 1, self->buf, REGION));
	EXPECT_EQ(0U, le16toh(rec->flags) & DM_REPL_RECF_RESYNC_END);
	/* The end, a record of its own after the read: no region's data. */
	ASSERT_EQ(1, tl_ring_next_op(self->ring, &rec));
	EXPECT_EQ((__u16)DM_REPL_REC_RESYNC, le16toh(rec->type));
	EXPECT_EQ(req.seq + 1, le64toh(rec->seq));
	EXPECT_EQ((__u16)DM_REPL_RECF_RESYNC_END, le16toh(rec->flags));
	EXPECT_EQ(0U, le32toh(rec->nbytes));
	ASSERT_EQ(sizeof(struct dm_repl_resync_end), le32toh(rec->payload_len));
	/* It names the primary's volumes: volume 0 alone. */
	EXPECT_EQ(1ULL, le64toh(((const struct dm_repl_resync_end *)(rec + 1))->volumes));
	ASSERT_EQ(0, dmrepl_ring_info(self->ring, &info));
	EXPECT_EQ(1ULL, info.resync_regions);
	/* Released: no longer waiting, once the kernel took it out. */
	ASSERT_EQ(0, dmrepl_ring_release(self->ring, req.seq));
	EXPECT_EQ(0, saves_done(self->fd, 0, &info));
}

TEST_F_TIMEOUT(resync, a_region_larger_than_half_the_ring_is_refused, 120)
{
	unsigned char bm[NR_REGIONS / 8];

	/* 2 MiB regions, a 2 MiB ring (the smallest). */
	ASSERT_EQ(0, tl_loop_create(&self->env, DATA_MB, self->vol.data, sizeof(self->vol.data)));
	ASSERT_EQ(0, tl_loop_create(&self->env, TL_META_MB, self->vol.meta, sizeof(self->vol.meta)));
	ASSERT_EQ(0, tl_run("%s meta create --force --group rs --region-kb 2048 "
			    "--data-dev %s %s >/dev/null", TL_REPLTOOL, self->vol.data,
			    self->vol.meta));
	ASSERT_EQ(0, tl_dm_create(&self->env, "rs", "0 %d repl %s %s rs primary 2 ring_mb 2",
				  DATA_MB * 2048, self->vol.data, self->vol.meta));
	{
		char err[DMREPL_ERRMSG_LEN];

		ASSERT_EQ(0, tl_ring_open(&self->env, "rs", &self->ring, err, sizeof(err)));
	}
	EXPECT_EQ(-EFBIG, resync(dmrepl_ring_fd(self->ring), 0, 0, DM_REPL_RESYNCF_ANY, NULL));
	ASSERT_EQ(0, tl_get_bitmap(self->ring, 0, bm, sizeof(bm), NULL));
	EXPECT_FALSE(tl_bit(bm, 0));
}

TEST_F_TIMEOUT(resync, no_room_leaves_the_region_dirty_then_it_goes, 120)
{
	struct dm_repl_resync_req req;
	unsigned char bm[NR_REGIONS / 8];
	__u64 dirty, r, first = ~0ULL;
	long n;
	struct tl_consumer c = { 0 };

	setup_vol(_metadata, self, "2 ring_mb 2");
	/*
	 * 4 MiB in writes of a region each into a 2 MiB ring with no
	 * consumer: the ring fills up to less than a region's record, the
	 * rest goes to the bitmap.
	 */
	tl_fill(self->buf, 4 << 20, 7);
	for (r = 0; r < 64; r++)
		ASSERT_EQ(0, tl_pwrite_all(self->vol.fd, self->buf + r * REGION, REGION,
					   r * REGION));
	dirty = dirty_of(self->fd);
	ASSERT_LT(0ULL, dirty);
	ASSERT_EQ(0, tl_get_bitmap(self->ring, 0, bm, sizeof(bm), NULL));
	for (r = 0; r < NR_REGIONS && first == ~0ULL; r++)
		if (tl_bit(bm, r))
			first = r;
	EXPECT_EQ(-ENOSPC, resync(self->fd, 0, first, 0, NULL));
	EXPECT_EQ(dirty, dirty_of(self->fd));
	ASSERT_EQ(0, tl_get_bitmap(self->ring, 0, bm, sizeof(bm), NULL));
	EXPECT_TRUE(tl_bit(bm, first));

	/* Room again: it goes, leaves the bitmap, and its record is right. */
	c.ring = self->ring;
	n = tl_consume(&c, true);
	ASSERT_LT(0, n);
	ASSERT_EQ(0, resync(self->fd, 0, first, 0, &req));
	EXPECT_EQ(1U, req.records);
	EXPECT_EQ(0U, req.flags & DM_REPL_RESYNCF_END);	/* others are dirty */
	EXPECT_EQ(dirty - 1, dirty_of(self->fd));
	ASSERT_EQ(0, tl_get_bitmap(self->ring, 0, bm, sizeof(bm), NULL));
	EXPECT_FALSE(tl_bit(bm, first));
	tl_consumer_free(&c);
}

TEST_F_TIMEOUT(resync, at_most_256_regions_wait_unreleased, 180)
{
	struct dm_repl_group_info info;
	struct dm_repl_resync_req req;
	__u64 r;

	setup_vol(_metadata, self, "2 ring_mb 32");
	for (r = 0; r < 256; r++)
		ASSERT_EQ(0, resync(self->fd, 0, r, DM_REPL_RESYNCF_ANY, &req));
	EXPECT_EQ(-EBUSY, resync(self->fd, 0, 256 % NR_REGIONS, DM_REPL_RESYNCF_ANY, NULL));
	ASSERT_EQ(0, dmrepl_ring_release(self->ring, req.seq));
	ASSERT_EQ(0, saves_done(self->fd, 0, &info));
	EXPECT_EQ(0, resync(self->fd, 0, 0, DM_REPL_RESYNCF_ANY, NULL));
}

/*
 * 10 GiB of 64 KiB regions: six bitmap blocks of 32256 regions. One
 * release of the first region and the last flushes the data device and
 * writes blocks 0 and 5 only (the metadata device sees two writes); a
 * release of nothing writes none.
 */
TEST_F_TIMEOUT(resync, a_release_saves_the_blocks_of_its_regions_only, 120)
{
	struct dm_repl_resync_req req;
	struct dm_repl_group_info info;
	__u64 last = (10ULL << 30) / REGION - 1;
	long long flushes, writes;

	setup_vol_mb(_metadata, self, 10 << 10, "2 ring_mb 8");
	ASSERT_EQ(0, resync(self->fd, 0, 0, DM_REPL_RESYNCF_ANY, NULL));
	ASSERT_EQ(0, resync(self->fd, 0, last, DM_REPL_RESYNCF_ANY, &req));
	ASSERT_EQ(0, saves_done(self->fd, 2, &info));
	EXPECT_EQ(0U, info.resync_blocks_saved);
	flushes = stat_of(self->vol.data, STAT_FLUSHES);
	writes = stat_of(self->vol.meta, STAT_WRITES);
	ASSERT_LE(0, flushes);
	ASSERT_LE(0, writes);

	ASSERT_EQ(0, dmrepl_ring_release(self->ring, req.seq));
	ASSERT_EQ(0, saves_done(self->fd, 0, &info));
	EXPECT_EQ(2U, info.resync_blocks_saved);
	EXPECT_LT(flushes, stat_of(self->vol.data, STAT_FLUSHES));
	EXPECT_EQ(writes + 2, stat_of(self->vol.meta, STAT_WRITES));

	ASSERT_EQ(0, dmrepl_ring_release(self->ring, req.seq));
	ASSERT_EQ(0, saves_done(self->fd, 0, &info));
	EXPECT_EQ(2U, info.resync_blocks_saved);
	EXPECT_EQ(writes + 2, stat_of(self->vol.meta, STAT_WRITES));
}

/* dm-flakey over a loop disk: up for an hour, or down with every write and flush failed. */
#define FLAKEY_UP	"0 %u flakey %s 0 3600 0"
#define FLAKEY_DOWN	"0 %u flakey %s 0 0 1 1 error_writes"

/* A volume's entry in the group's info, by its index; NULL if none. */
static const struct dm_repl_volume_info *vol_info(const struct dm_repl_group_info *info,
						  unsigned int index)
{
	unsigned int i;

	for (i = 0; i < info->nr_volumes && i < DM_REPL_MAX_VOLUMES; i++)
		if (info->volumes[i].index == index)
			return &info->volumes[i];
	return NULL;
}

/* A resync of @region of @volume once its hold ended (within 20 s). */
static int resync_after_hold(int fd, unsigned int volume, __u64 region,
			     struct dm_repl_resync_req *out)
{
	int i, r = -EAGAIN;

	for (i = 0; i < 200 && r == -EAGAIN; i++) {
		r = resync(fd, volume, region, 0, out);
		if (r == -EAGAIN)
			usleep(100000);
	}
	return r;
}

/*
 * Volume 0's data device (dm-flakey) fails every flush from the release on,
 * volume 1's does not. 128 regions of each fill the resync; their release
 * takes them all out: volume 1's clean, its one bitmap block written;
 * volume 0's dirty again (resync-failed). Volume 0's resync is held
 * (EAGAIN), volume 1's is not; once the device flushes again and the hold
 * ended, volume 0's regions go, and their release ends the hold.
 */
TEST_F_TIMEOUT(resync, a_volume_that_cannot_flush_holds_back_no_other, 240)
{
	const struct dm_repl_volume_info *a, *b;
	unsigned char bm[2][NR_REGIONS / 8];
	struct dm_repl_group_info info;
	struct dm_repl_resync_req req;
	char loop[TL_NAME_LEN], err[DMREPL_ERRMSG_LEN];
	unsigned int wrong = 0;
	struct tl_vol vb;
	__u64 r;

	ASSERT_EQ(0, tl_run("modprobe dm-flakey"));
	ASSERT_EQ(0, tl_loop_create(&self->env, DATA_MB, loop, sizeof(loop)));
	ASSERT_EQ(0, tl_dm_create(&self->env, "rsfa", FLAKEY_UP, DATA_MB * 2048, loop));
	ASSERT_EQ(0, tl_vol_create_over(&self->env, &self->vol, "rs", "rs", "/dev/mapper/rsfa",
					DATA_MB, "2 ring_mb 32", 0));
	ASSERT_EQ(0, tl_vol_create_vol(&self->env, &vb, "rsb", "rs", DATA_MB, "2 ring_mb 32", 1));
	ASSERT_EQ(0, tl_ring_open(&self->env, "rs", &self->ring, err, sizeof(err)));
	self->fd = dmrepl_ring_fd(self->ring);
	for (r = 0; r < 128; r++) {
		ASSERT_EQ(0, resync(self->fd, 0, r, DM_REPL_RESYNCF_ANY, NULL));
		ASSERT_EQ(0, resync(self->fd, 1, r, DM_REPL_RESYNCF_ANY, &req));
	}
	EXPECT_EQ(-EBUSY, resync(self->fd, 1, 128, DM_REPL_RESYNCF_ANY, NULL));
	ASSERT_EQ(0, tl_run("dmsetup suspend rsfa && dmsetup load rsfa --table '" FLAKEY_DOWN
			    "' && dmsetup resume rsfa", DATA_MB * 2048, loop));

	ASSERT_EQ(0, dmrepl_ring_release(self->ring, req.seq));
	ASSERT_EQ(0, saves_done(self->fd, 0, &info));
	/* At once, within the first hold's second: volume 0's resync is held. */
	EXPECT_EQ(-EAGAIN, resync(self->fd, 0, 0, 0, NULL));
	EXPECT_EQ(1ULL, info.resync_held_volumes);
	a = vol_info(&info, 0);
	b = vol_info(&info, 1);
	ASSERT_NE(NULL, a);
	ASSERT_NE(NULL, b);
	EXPECT_EQ(128ULL, a->dirty_regions);
	EXPECT_EQ(0ULL, b->dirty_regions);
	EXPECT_EQ(1U, info.resync_blocks_saved);
	EXPECT_EQ((__u32)DM_REPL_STATE_BEHIND, info.state);
	EXPECT_EQ((__u32)DM_REPL_BEHIND_RESYNC_FAILED, info.behind_reasons);
	ASSERT_EQ(0, tl_get_bitmap(self->ring, 0, bm[0], sizeof(bm[0]), NULL));
	ASSERT_EQ(0, tl_get_bitmap(self->ring, 1, bm[1], sizeof(bm[1]), NULL));
	for (r = 0; r < NR_REGIONS; r++)
		wrong += (tl_bit(bm[0], r) != (r < 128)) + tl_bit(bm[1], r);
	EXPECT_EQ(0U, wrong);
	/* Volume 1's resync is not held. */
	EXPECT_EQ(0, resync(self->fd, 1, 0, DM_REPL_RESYNCF_ANY, &req));
	ASSERT_EQ(0, dmrepl_ring_release(self->ring, req.seq));
	ASSERT_EQ(0, tl_run("dmsetup suspend rsfa && dmsetup load rsfa --table '" FLAKEY_UP
			    "' && dmsetup resume rsfa", DATA_MB * 2048, loop));
	/* The hold ends (1 s after a first failure): volume 0's regions go again. */
	ASSERT_EQ(0, resync_after_hold(self->fd, 0, 0, &req));
	EXPECT_EQ(1U, req.records);
	ASSERT_EQ(0, dmrepl_ring_release(self->ring, req.seq));
	ASSERT_EQ(0, saves_done(self->fd, 0, &info));
	EXPECT_EQ(127ULL, vol_info(&info, 0)->dirty_regions);
	EXPECT_EQ(0ULL, info.resync_held_volumes);
}

/*
 * Group rs of two volumes, volume 0 (self->vol) over dm-linear rsla (for a
 * test to suspend), volume 1 (@vb) on a loop device; the ring open.
 */
static void setup_two_over_linear(struct __test_metadata *_metadata,
				  FIXTURE_DATA(resync) *self, struct tl_vol *vb)
{
	char loop[TL_NAME_LEN], err[DMREPL_ERRMSG_LEN];

	ASSERT_EQ(0, tl_loop_create(&self->env, DATA_MB, loop, sizeof(loop)));
	ASSERT_EQ(0, tl_dm_create(&self->env, "rsla", "0 %u linear %s 0", DATA_MB * 2048, loop));
	ASSERT_EQ(0, tl_vol_create_over(&self->env, &self->vol, "rs", "rs", "/dev/mapper/rsla",
					DATA_MB, "2 ring_mb 32", 0));
	ASSERT_EQ(0, tl_vol_create_vol(&self->env, vb, "rsb", "rs", DATA_MB, "2 ring_mb 32", 1));
	ASSERT_EQ(0, tl_ring_open(&self->env, "rs", &self->ring, err, sizeof(err)));
	self->fd = dmrepl_ring_fd(self->ring);
}

struct resync_job {
	int fd;
	__u32 volume;
	__u64 region;
	int r;
};

static void *resync_job_run(void *arg)
{
	struct resync_job *j = arg;

	j->r = resync(j->fd, j->volume, j->region, DM_REPL_RESYNCF_ANY, NULL);
	return NULL;
}

/*
 * The flush of released regions' data device hangs (volume 0's, suspended
 * with its bios held): a resync of volume 1 goes on meanwhile, since
 * repld's loop makes it between the batches it ships. Once the device is
 * back, the flush ends and the region leaves the resync.
 */
TEST_F_TIMEOUT(resync, a_flush_that_hangs_holds_back_no_resync, 240)
{
	struct resync_job job = { .volume = 1, .region = 5, .r = -EINPROGRESS };
	struct dm_repl_group_info info;
	struct dm_repl_resync_req req;
	struct timespec until;
	struct tl_vol vb;
	pthread_t t;
	int joined;

	setup_two_over_linear(_metadata, self, &vb);
	job.fd = self->fd;
	ASSERT_EQ(0, resync(self->fd, 0, 0, DM_REPL_RESYNCF_ANY, &req));
	ASSERT_EQ(0, tl_run("dmsetup suspend --noflush rsla"));
	ASSERT_EQ(0, dmrepl_ring_release(self->ring, req.seq));
	sleep(1);	/* the work is in the flush by now (else this proves less) */

	ASSERT_EQ(0, pthread_create(&t, NULL, resync_job_run, &job));
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 60;
	joined = pthread_timedjoin_np(t, NULL, &until);
	ASSERT_EQ(0, dmrepl_group_info(self->fd, &info, NULL, 0));
	EXPECT_EQ(1ULL, info.resync_regions_released);
	ASSERT_EQ(0, tl_run("dmsetup resume rsla"));
	if (joined)
		ASSERT_EQ(0, pthread_join(t, NULL));
	EXPECT_EQ(0, joined) TH_LOG("the resync waited for the flush");
	EXPECT_EQ(0, job.r);
	ASSERT_EQ(0, saves_done(self->fd, 1, &info));
	EXPECT_EQ(0ULL, vol_info(&info, 0)->dirty_regions);
}

struct hung_resync {
	int fd;
	pthread_t thread;
	_Atomic pid_t tid;
	struct dm_repl_resync_req req;
	_Atomic int r;
};

static void *hung_resync_run(void *arg)
{
	struct hung_resync *h = arg;

	h->tid = gettid();
	h->r = resync(h->fd, 0, 0, DM_REPL_RESYNCF_ANY, &h->req);
	return NULL;
}

/* Volume 0's resync of region 0 in a thread, once it sleeps in the kernel (D). */
static int hung_resync_start(struct hung_resync *h, int fd)
{
	h->fd = fd;
	h->r = -EINPROGRESS;
	if (pthread_create(&h->thread, NULL, hung_resync_run, h))
		return -1;
	while (!h->tid)
		usleep(1000);
	return tl_wait_blocked(h->tid, 30);
}

/*
 * A resync's read hangs (volume 0's data device suspended with its bios
 * held, as multipath queues them with no path left). Meanwhile the group's
 * status answers, a third volume joins the group, and another group is
 * made and removed: the read holds the resync's lock, not the group's, nor
 * the lock of every group a table load takes. Once the device is back, the
 * region goes as it would have. (Nothing asserts between the suspend and
 * the resume: a failure there must not leave the device held.)
 */
TEST_F_TIMEOUT(resync, a_read_that_hangs_holds_back_no_status_and_no_table, 240)
{
	char data[2][TL_NAME_LEN], meta[2][TL_NAME_LEN];
	struct tl_bg status = { 0 }, join = { 0 }, other = { 0 };
	struct hung_resync h = { 0 };
	struct tl_vol vb;

	setup_two_over_linear(_metadata, self, &vb);
	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(0, tl_loop_create(&self->env, DATA_MB, data[i], sizeof(data[i])));
		ASSERT_EQ(0, tl_loop_create(&self->env, TL_META_MB, meta[i], sizeof(meta[i])));
	}
	ASSERT_EQ(0, tl_meta_create_vol(meta[0], "rs", data[0], 2));
	ASSERT_EQ(0, tl_meta_create(meta[1], "rsd", data[1]));

	ASSERT_EQ(0, tl_run("dmsetup suspend --noflush rsla"));
	EXPECT_EQ(0, hung_resync_start(&h, self->fd)) TH_LOG("the resync never waited for rsla");
	EXPECT_EQ(0, tl_bg_start(&status, "%s status rs >/dev/null", TL_REPLTOOL));
	/* It joins; its removal would wait: a volume leaves no resync reading it. */
	EXPECT_EQ(0, tl_bg_start(&join, "dmsetup create rsc --table '0 %u repl %s %s rs "
				 "primary 2 ring_mb 32'", DATA_MB * 2048, data[0], meta[0]));
	EXPECT_EQ(0, tl_bg_start(&other, "dmsetup create rsd --table '0 %u repl %s %s rsd "
				 "primary 2 ring_mb 2' && dmsetup remove rsd", DATA_MB * 2048,
				 data[1], meta[1]));
	EXPECT_TRUE(tl_bg_wait(&status, 30)) TH_LOG("the status waited for the read");
	EXPECT_TRUE(tl_bg_wait(&join, 10)) TH_LOG("a volume joining waited for the read");
	EXPECT_TRUE(tl_bg_wait(&other, 10)) TH_LOG("another group waited for the read");
	EXPECT_EQ(-EINPROGRESS, h.r) TH_LOG("the resync did not wait for rsla");
	EXPECT_EQ(0, tl_run("dmsetup resume rsla"));

	if (h.thread)
		EXPECT_EQ(0, pthread_join(h.thread, NULL));
	EXPECT_TRUE(tl_bg_wait(&status, 600) && tl_bg_wait(&join, 600) &&
		    tl_bg_wait(&other, 600));
	EXPECT_EQ(0, status.status);
	EXPECT_EQ(0, join.status);
	EXPECT_EQ(0, other.status);
	EXPECT_EQ(0, h.r);
	EXPECT_LE(1U, h.req.records);
	if (join.started)
		EXPECT_EQ(0, tl_run("dmsetup remove rsc"));
}

/*
 * Group rs of one volume over dm-delay rsde (reads held @read_ms, writes
 * @write_ms, flushes not), the ring open.
 */
static void setup_over_delay(struct __test_metadata *_metadata, FIXTURE_DATA(resync) *self,
			     unsigned int read_ms, unsigned int write_ms)
{
	char loop[TL_NAME_LEN], err[DMREPL_ERRMSG_LEN];

	ASSERT_EQ(0, tl_loop_create(&self->env, DATA_MB, loop, sizeof(loop)));
	ASSERT_EQ(0, tl_dm_create(&self->env, "rsde", "0 %u delay %s 0 %u %s 0 %u %s 0 0",
				  DATA_MB * 2048, loop, read_ms, loop, write_ms, loop));
	ASSERT_EQ(0, tl_vol_create_over(&self->env, &self->vol, "rs", "rs", "/dev/mapper/rsde",
					DATA_MB, "2 ring_mb 32", 0));
	ASSERT_EQ(0, tl_ring_open(&self->env, "rs", &self->ring, err, sizeof(err)));
	self->fd = dmrepl_ring_fd(self->ring);
}

/*
 * A resync reads slowly (dm-delay holds reads 15 s, neither writes nor
 * flushes): a forced demotion waits for it rather than drop the ring under
 * its reserved records, and then goes. A role the group has already is no
 * wait at all.
 */
TEST_F_TIMEOUT(resync, a_role_change_waits_for_a_resync_that_reads, 240)
{
	struct hung_resync h = { 0 };
	struct tl_bg role = { 0 };
	char status[256];

	setup_over_delay(_metadata, self, 15000, 0);
	tl_env_close_fd(&self->env, self->vol.fd);	/* an open volume cannot step down */
	ASSERT_EQ(0, tl_run("dmsetup suspend rs"));

	EXPECT_EQ(0, hung_resync_start(&h, self->fd)) TH_LOG("the resync never read rsde");
	EXPECT_EQ(0, tl_run("timeout 10 dmsetup message rs 0 role primary"));
	EXPECT_EQ(0, tl_bg_start(&role, "dmsetup message rs 0 role secondary force"));
	EXPECT_FALSE(tl_bg_wait(&role, 3)) TH_LOG("the demotion did not wait for the resync");
	EXPECT_EQ(-EINPROGRESS, h.r);

	if (h.thread)
		EXPECT_EQ(0, pthread_join(h.thread, NULL));
	EXPECT_TRUE(tl_bg_wait(&role, 600));
	EXPECT_EQ(0, h.r);
	EXPECT_LE(1U, h.req.records);
	EXPECT_EQ(0, role.status);
	ASSERT_EQ(0, tl_run_out(status, sizeof(status), "dmsetup status rs"));
	EXPECT_NE(NULL, strstr(status, " repl secondary ")) TH_LOG("%s", status);
}

/*
 * The end of a resync waits for a write reserved during the last read
 * (dm-delay: reads 5 s, writes 20 s), and a clean volume joins the group
 * meanwhile: the end names the volumes the group had, so it goes VOID. The
 * next end, with every volume named, ends it.
 */
TEST_F_TIMEOUT(resync, an_end_waiting_while_a_volume_joins_is_no_end, 240)
{
	char data[TL_NAME_LEN], meta[TL_NAME_LEN];
	struct tl_bg write = { 0 }, join = { 0 };
	struct dm_repl_resync_req req;
	struct hung_resync h = { 0 };

	setup_over_delay(_metadata, self, 5000, 20000);
	ASSERT_EQ(0, tl_loop_create(&self->env, DATA_MB, data, sizeof(data)));
	ASSERT_EQ(0, tl_loop_create(&self->env, TL_META_MB, meta, sizeof(meta)));
	ASSERT_EQ(0, tl_meta_create_vol(meta, "rs", data, 2));

	ASSERT_EQ(0, hung_resync_start(&h, self->fd));
	ASSERT_EQ(0, tl_wait_in_stack(h.tid, "submit_bio_wait", 30)) TH_LOG("the resync never read");
	ASSERT_EQ(0, tl_bg_start(&write, "dd if=/dev/urandom of=/dev/mapper/rs bs=4k count=1 "
				 "seek=100 oflag=direct status=none"));
	EXPECT_EQ(0, tl_wait_in_stack(h.tid, "repl_ring_wait_before", 30)) TH_LOG("the end never waited");
	EXPECT_EQ(0, tl_bg_start(&join, "dmsetup create rsc --table '0 %u repl %s %s rs "
				 "primary 2 ring_mb 32'", DATA_MB * 2048, data, meta));
	EXPECT_TRUE(tl_bg_wait(&join, 15)) TH_LOG("the volume's join waited for the end");
	EXPECT_EQ(-EINPROGRESS, h.r) TH_LOG("the end did not wait for the write");

	EXPECT_EQ(0, pthread_join(h.thread, NULL));
	EXPECT_TRUE(tl_bg_wait(&write, 600) && tl_bg_wait(&join, 600));
	EXPECT_EQ(0, write.status);
	EXPECT_EQ(0, join.status);
	EXPECT_EQ(0, h.r);
	EXPECT_EQ(1U, h.req.records);
	EXPECT_EQ(0U, h.req.flags & DM_REPL_RESYNCF_END) TH_LOG("an end of one volume of two");
	EXPECT_EQ(0, resync(self->fd, 0, 0, DM_REPL_RESYNCF_ANY, &req));
	EXPECT_EQ((__u32)DM_REPL_RESYNCF_END, req.flags & DM_REPL_RESYNCF_END)
		TH_LOG("no end with both volumes named");
	if (join.started)
		EXPECT_EQ(0, tl_run("dmsetup remove rsc"));
}

TEST_F_TIMEOUT(resync, a_secondary_refuses, 120)
{
	setup_vol(_metadata, self, "2 ring_mb 8");
	tl_env_close_fd(&self->env, self->vol.fd);	/* an open volume cannot step down */
	ASSERT_EQ(0, tl_run("dmsetup suspend rs && dmsetup message rs 0 role secondary && "
			    "dmsetup resume rs"));
	EXPECT_EQ(-EPERM, resync(self->fd, 0, 0, DM_REPL_RESYNCF_ANY, NULL));
}

TEST_HARNESS_MAIN
