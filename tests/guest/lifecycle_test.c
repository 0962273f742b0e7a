// SPDX-License-Identifier: GPL-2.0
/*
 * Lifecycle of a group and of its character device: removal under a
 * consumer, the read-only mapping, the ioctls' refusals, table reloads, no
 * leak over create/remove cycles, and a data device that hangs: it holds
 * back its own group's demotion and removal only, and no refusal.
 *
 * Runs in the guest (tests/guest/vm.sh) with dm-repl.ko loaded.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "testlib.h"

#define DATA_MB		16
#define SMALL_RING	"2 ring_mb 2"

FIXTURE(lifecycle) {
	struct tl_env env;
	struct tl_vol vol, vol2;
	void *map;		/* a mapping of our own, if any */
	size_t map_size;
	unsigned char *buf;
};

FIXTURE_SETUP(lifecycle)
{
	TL_SETUP(&self->env);
	self->buf = tl_zalloc_aligned(1 << 20);
	ASSERT_NE(NULL, self->buf);
}

FIXTURE_TEARDOWN(lifecycle)
{
	if (self->map)
		munmap(self->map, self->map_size);
	free(self->buf);
	TL_TEARDOWN(&self->env);
}

static void expect_live(struct __test_metadata *_metadata, const char *want)
{
	char lo[64] = "";

	ASSERT_EQ(0, tl_live_objects(lo, sizeof(lo)));
	EXPECT_STREQ(want, lo);
}

static int write_seeded(struct tl_vol *v, unsigned char *buf, uint32_t len,
			uint64_t off, uint64_t seed)
{
	tl_fill(buf, len, seed);
	return tl_pwrite_all(v->fd, buf, len, off);
}

struct poller {
	struct dmrepl_ring *ring;
	atomic_int blocking;	/* about to wait with nothing pending */
	atomic_int tid;		/* the thread's, once it runs */
	atomic_int done;
	int ret;
};

/* Wait until the group goes away: the first POLLINs are old news. */
static void *poll_thread(void *arg)
{
	struct poller *p = arg;
	int r;

	atomic_store(&p->tid, gettid());
	while ((r = dmrepl_ring_wait(p->ring, 0)) == 1)
		;
	atomic_store(&p->blocking, 1);
	if (r == 0) {
		do
			r = dmrepl_ring_wait(p->ring, 10000);
		while (r == 1 || r == 0);
	}
	p->ret = r;
	atomic_store(&p->done, 1);
	return NULL;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/*
 * dmsetup remove while the ring is mapped and a thread sleeps in poll():
 * POLLHUP, the mapping stays readable, the node goes, the open file holds
 * the group until it is closed.
 */
TEST_F_TIMEOUT(lifecycle, remove_under_a_mapped_polled_ring_hangs_up_and_keeps_the_mapping, 120)
{
	struct poller p = { 0 };
	struct dm_repl_group_info info;
	const struct dm_repl_ring_ctl *ctl;
	const struct dm_repl_rec *rec1, *rec2;
	struct dm_repl_rec hdr1;
	struct dmrepl_ring *ring, *mine;
	char msg[DMREPL_ERRMSG_LEN];
	pthread_t t;

	ASSERT_EQ(0, tl_vol_create(&self->env, &self->vol, "lc1", "lc1", DATA_MB, SMALL_RING));
	ASSERT_EQ(0, write_seeded(&self->vol, self->buf, 4096, 0, 1));
	ASSERT_EQ(0, write_seeded(&self->vol, self->buf, 8192, 1 << 20, 2));
	ASSERT_EQ(0, tl_ring_open(&self->env, "lc1", &ring, msg, sizeof(msg))) {
		TH_LOG("%s", msg);
	}
	ASSERT_EQ(0, dmrepl_ring_info(ring, &info));
	/* A second mapping of our own, to read the control page. */
	self->map_size = info.mmap_size;
	self->map = mmap(NULL, self->map_size, PROT_READ, MAP_SHARED,
			 dmrepl_ring_fd(ring), 0);
	ASSERT_NE(MAP_FAILED, self->map);
	ASSERT_EQ(1, tl_ring_next_op(ring, &rec1));
	hdr1 = *rec1;
	expect_live(_metadata, "1 1 1");

	p.ring = ring;
	ASSERT_EQ(0, pthread_create(&t, NULL, poll_thread, &p));
	while (!atomic_load(&p.blocking))
		sleep_ms(10);
	/* Asleep in poll(): its state, not a guess at a duration. */
	ASSERT_EQ(0, tl_wait_sleeping_in_poll(atomic_load(&p.tid), 60)) {
		TH_LOG("the poller never slept in poll()");
	}
	EXPECT_EQ(0, atomic_load(&p.done)) {
		TH_LOG("the poller did not block (returned %d)", p.ret);
	}

	tl_env_close_fd(&self->env, self->vol.fd);
	ASSERT_EQ(0, tl_dm_remove(&self->env, "lc1"));
	ASSERT_EQ(0, pthread_join(t, NULL));
	EXPECT_EQ(-ENODEV, p.ret);
	EXPECT_EQ(-ENODEV, dmrepl_ring_wait(ring, 0));

	/* The mappings are still readable: control page and records. */
	ctl = self->map;
	EXPECT_EQ((unsigned int)DM_REPL_CTL_MAGIC, ctl->magic);
	EXPECT_EQ(info.producer_pos, ctl->producer_pos);
	EXPECT_EQ(0, memcmp(&hdr1, rec1, sizeof(hdr1)));
	EXPECT_EQ(0, dmrepl_rec_check_unsealed(rec1, dmrepl_rec_len(rec1), NULL));
	ASSERT_EQ(1, tl_ring_next_op(ring, &rec2));
	EXPECT_EQ(3ULL, dmrepl_rec_seq(rec2));	/* after the STREAM record, the first write */
	EXPECT_EQ(8192U, dmrepl_rec_nbytes(rec2));
	tl_fill(self->buf, 8192, 2);
	EXPECT_EQ(0, memcmp(self->buf, dmrepl_rec_payload(rec2), 8192));
	ASSERT_EQ(0, dmrepl_ring_attach(self->map, self->map_size, &mine));
	EXPECT_EQ(1, tl_ring_next_op(mine, &rec1));
	EXPECT_EQ(1, tl_ring_next_op(mine, &rec2));
	EXPECT_EQ(0, tl_ring_next_op(mine, &rec2));
	dmrepl_ring_close(mine);	/* an attached ring owns no mapping */

	/* The group is dead but held by the open file. */
	EXPECT_EQ(-1, access("/dev/dm-repl/lc1", F_OK));
	EXPECT_EQ(ENOENT, errno);
	expect_live(_metadata, "1 0 1");
	ASSERT_EQ(0, dmrepl_ring_info(ring, &info));
	EXPECT_EQ(0U, info.nr_volumes);

	munmap(self->map, self->map_size);
	self->map = NULL;
	tl_ring_close(&self->env, ring);
	expect_live(_metadata, "0 0 0");
}

/* A new group of the same name while the dead one is still open: a new ring. */
TEST_F_TIMEOUT(lifecycle, same_name_while_the_old_group_is_open_is_a_new_ring, 120)
{
	struct dm_repl_group_info a0, a1, b;
	struct dmrepl_ring *ra, *rb;
	const struct dm_repl_rec *rec;
	char msg[DMREPL_ERRMSG_LEN];

	ASSERT_EQ(0, tl_vol_create(&self->env, &self->vol, "lc2a", "lc2", DATA_MB, SMALL_RING));
	ASSERT_EQ(0, write_seeded(&self->vol, self->buf, 4096, 0, 3));
	ASSERT_EQ(0, tl_ring_open(&self->env, "lc2", &ra, msg, sizeof(msg))) {
		TH_LOG("%s", msg);
	}
	tl_env_close_fd(&self->env, self->vol.fd);
	ASSERT_EQ(0, tl_dm_remove(&self->env, "lc2a"));
	expect_live(_metadata, "1 0 1");
	ASSERT_EQ(0, dmrepl_ring_info(ra, &a0));

	ASSERT_EQ(0, tl_vol_create_vol(&self->env, &self->vol2, "lc2b", "lc2", DATA_MB,
				       SMALL_RING, 1));
	EXPECT_EQ(0, access("/dev/dm-repl/lc2", F_OK));
	expect_live(_metadata, "2 1 1");
	ASSERT_EQ(0, tl_ring_open(&self->env, "lc2", &rb, msg, sizeof(msg))) {
		TH_LOG("%s", msg);
	}
	expect_live(_metadata, "2 1 2");
	ASSERT_EQ(0, dmrepl_ring_info(rb, &b));
	EXPECT_EQ(1ULL, b.next_seq);
	EXPECT_EQ(0ULL, b.producer_pos);
	EXPECT_EQ(1U, b.nr_volumes);
	EXPECT_EQ(1U, b.volumes[0].index);	/* its superblock's, not the lowest free */

	ASSERT_EQ(0, write_seeded(&self->vol2, self->buf, 4096, 4096, 4));
	ASSERT_EQ(1, tl_ring_next_op(rb, &rec));
	EXPECT_EQ(2ULL, dmrepl_rec_seq(rec));	/* its STREAM record is 1 */
	EXPECT_EQ(8ULL, dmrepl_rec_sector(rec));
	EXPECT_EQ(1U, dmrepl_rec_volume(rec));
	tl_fill(self->buf, 4096, 4);
	EXPECT_EQ(0, memcmp(self->buf, dmrepl_rec_payload(rec), 4096));
	EXPECT_EQ(0, tl_ring_next_op(rb, &rec));

	/* The old ring did not move and still has only its own record. */
	ASSERT_EQ(0, dmrepl_ring_info(ra, &a1));
	EXPECT_EQ(a0.next_seq, a1.next_seq);
	EXPECT_EQ(a0.producer_pos, a1.producer_pos);
	EXPECT_EQ(0U, a1.nr_volumes);
	ASSERT_EQ(1, tl_ring_next_op(ra, &rec));
	EXPECT_EQ(0ULL, dmrepl_rec_sector(rec));
	EXPECT_EQ(0, tl_ring_next_op(ra, &rec));
	EXPECT_EQ(-ENODEV, dmrepl_ring_wait(ra, 0));
	EXPECT_LE(0, dmrepl_ring_wait(rb, 0));

	tl_ring_close(&self->env, ra);
	expect_live(_metadata, "1 1 1");
}

/* The mapping is read-only and whole; the ioctls refuse what they must. */
TEST_F_TIMEOUT(lifecycle, mapping_is_read_only_and_ioctls_refuse_bad_arguments, 120)
{
	struct dm_repl_group_info *info = calloc(1, sizeof(*info));
	struct dm_repl_bitmap_req req;
	unsigned char bm[256];
	long page = sysconf(_SC_PAGESIZE);
	void *p;
	int fd;

	ASSERT_NE(NULL, info);
	ASSERT_EQ(0, tl_vol_create(&self->env, &self->vol, "lc3", "lc3", DATA_MB, SMALL_RING));
	/* Read-write, so that the refusals below are the module's, not the VFS's. */
	fd = tl_env_track_fd(&self->env, open("/dev/dm-repl/lc3", O_RDWR | O_CLOEXEC));
	ASSERT_LE(0, fd);
	info->abi_version = DM_REPL_ABI_VERSION;
	ASSERT_EQ(0, ioctl(fd, DM_REPL_IOC_GROUP_INFO, info));
	ASSERT_EQ((uint64_t)page + 2 * (2ULL << 20), info->mmap_size);

	errno = 0;
	EXPECT_EQ(MAP_FAILED, mmap(NULL, info->mmap_size, PROT_READ | PROT_WRITE,
				   MAP_SHARED, fd, 0));
	EXPECT_EQ(EPERM, errno);
	errno = 0;
	EXPECT_EQ(MAP_FAILED, mmap(NULL, info->mmap_size, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE, fd, 0));
	EXPECT_EQ(EPERM, errno);
	errno = 0;
	EXPECT_EQ(MAP_FAILED, mmap(NULL, (size_t)page, PROT_READ, MAP_SHARED, fd, page));
	EXPECT_EQ(EINVAL, errno);
	errno = 0;
	EXPECT_EQ(MAP_FAILED, mmap(NULL, info->mmap_size + (size_t)page, PROT_READ,
				   MAP_SHARED, fd, 0));
	EXPECT_EQ(EINVAL, errno);

	/* A read-only mapping cannot be made writable, shared or private. */
	p = mmap(NULL, info->mmap_size, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_EQ(-1, mprotect(p, info->mmap_size, PROT_READ | PROT_WRITE));
	EXPECT_EQ(EACCES, errno);
	EXPECT_EQ((unsigned int)DM_REPL_CTL_MAGIC, ((const struct dm_repl_ring_ctl *)p)->magic);
	munmap(p, info->mmap_size);
	p = mmap(NULL, (size_t)page, PROT_READ, MAP_PRIVATE, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_EQ(-1, mprotect(p, (size_t)page, PROT_READ | PROT_WRITE));
	EXPECT_EQ(EACCES, errno);
	munmap(p, (size_t)page);

	/* Another ABI version: EPROTO, and the module's version written back. */
	memset(info, 0, sizeof(*info));
	info->abi_version = DM_REPL_ABI_VERSION + 41;
	EXPECT_EQ(-1, ioctl(fd, DM_REPL_IOC_GROUP_INFO, info));
	EXPECT_EQ(EPROTO, errno);
	EXPECT_EQ((unsigned int)DM_REPL_ABI_VERSION, info->abi_version);
	EXPECT_EQ(0U, info->nr_volumes);

	/* Unknown ioctls, including a known number with another size. */
	EXPECT_EQ(-1, ioctl(fd, _IO(DM_REPL_IOC_MAGIC, 99)));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(-1, ioctl(fd, _IOWR(DM_REPL_IOC_MAGIC, 1, __u64), info));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(-1, ioctl(fd, BLKGETSIZE64, info));
	EXPECT_EQ(ENOTTY, errno);

	/* GET_BITMAP: volume 0 exists, 1 does not; reserved must be zero. */
	memset(&req, 0, sizeof(req));
	req.abi_version = DM_REPL_ABI_VERSION;
	req.buf = (uintptr_t)bm;
	req.buf_size = sizeof(bm);
	EXPECT_EQ(0, ioctl(fd, DM_REPL_IOC_GET_BITMAP, &req));
	EXPECT_EQ((uint64_t)DATA_MB * 16 / 8, req.buf_size);
	req.buf_size = sizeof(bm);
	req.volume = 1;
	EXPECT_EQ(-1, ioctl(fd, DM_REPL_IOC_GET_BITMAP, &req));
	EXPECT_EQ(ENOENT, errno);
	req.volume = DM_REPL_MAX_VOLUMES;
	EXPECT_EQ(-1, ioctl(fd, DM_REPL_IOC_GET_BITMAP, &req));
	EXPECT_EQ(EINVAL, errno);
	req.volume = 0;
	req.reserved[1] = 1;
	EXPECT_EQ(-1, ioctl(fd, DM_REPL_IOC_GET_BITMAP, &req));
	EXPECT_EQ(EINVAL, errno);
	req.reserved[1] = 0;
	req.abi_version = DM_REPL_ABI_VERSION + 1;
	EXPECT_EQ(-1, ioctl(fd, DM_REPL_IOC_GET_BITMAP, &req));
	EXPECT_EQ(EPROTO, errno);
	free(info);
}

/*
 * dmsetup reload + resume with the same table while records wait in the
 * ring: ring, sequences and dirty bitmap carry on.
 */
TEST_F_TIMEOUT(lifecycle, reload_keeps_ring_sequences_and_bitmap, 120)
{
	struct dm_repl_group_info before, after;
	struct tl_consumer c = { 0 };
	unsigned char bm0[64] = { 0 }, bm1[64] = { 0 };
	struct dmrepl_ring *ring;
	char msg[DMREPL_ERRMSG_LEN], table[512];
	const struct dm_repl_rec *rec;
	unsigned int i;

	ASSERT_EQ(0, tl_vol_create(&self->env, &self->vol, "lc4", "lc4", DATA_MB,
				   "6 ring_mb 2 region_kb 64 overflow bitmap"));
	ASSERT_EQ(0, tl_ring_open(&self->env, "lc4", &ring, msg, sizeof(msg))) {
		TH_LOG("%s", msg);
	}
	/* 3 MiB into a 2 MiB ring: records, then overflow into the bitmap. */
	for (i = 0; i < 48; i++)
		ASSERT_EQ(0, write_seeded(&self->vol, self->buf, 64 << 10,
					  (uint64_t)i * (256 << 10), 100 + i));
	c.ring = ring;
	/* Take and release a few, so that released_seq is not 0 either. */
	for (i = 0; i < 5; i++) {
		ASSERT_EQ(1, dmrepl_ring_next(ring, &rec));
		c.last_seq = dmrepl_rec_seq(rec);
	}
	ASSERT_EQ(0, dmrepl_ring_release(ring, c.last_seq));
	c.released = c.last_seq;
	ASSERT_EQ(0, dmrepl_ring_info(ring, &before));
	ASSERT_LT(0ULL, before.overflows);
	ASSERT_LT(0ULL, before.volumes[0].dirty_regions);
	ASSERT_EQ(0, tl_get_bitmap(ring, 0, bm0, sizeof(bm0), NULL));

	ASSERT_EQ(0, tl_run_out(table, sizeof(table), "dmsetup table lc4"));
	ASSERT_EQ(0, tl_run("dmsetup reload lc4 --table '%s'", table));
	ASSERT_EQ(0, tl_run("dmsetup resume lc4"));
	expect_live(_metadata, "1 1 1");

	ASSERT_EQ(0, dmrepl_ring_info(ring, &after));
	EXPECT_EQ(before.next_seq, after.next_seq);
	EXPECT_EQ(before.epoch, after.epoch);
	EXPECT_EQ(before.producer_pos, after.producer_pos);
	EXPECT_EQ(before.released_pos, after.released_pos);
	EXPECT_EQ(before.released_seq, after.released_seq);
	EXPECT_EQ(before.records, after.records);
	EXPECT_EQ(before.overflows, after.overflows);
	EXPECT_EQ(before.state, after.state);
	EXPECT_EQ(1U, after.nr_volumes);
	EXPECT_EQ(before.volumes[0].index, after.volumes[0].index);
	EXPECT_EQ(before.volumes[0].dirty_regions, after.volumes[0].dirty_regions);
	ASSERT_EQ(0, tl_get_bitmap(ring, 0, bm1, sizeof(bm1), NULL));
	EXPECT_EQ(0, memcmp(bm0, bm1, sizeof(bm0)));

	/* The records left in the ring are all there, none lost. */
	ASSERT_LE(0, tl_consume(&c, true));
	EXPECT_STREQ("", c.err);
	EXPECT_EQ(0ULL, c.gap);
	EXPECT_EQ(before.next_seq - 1, c.last_seq);
	EXPECT_EQ(before.next_seq - 1 - 5, c.records + c.stream_records);

	/* And the next write takes the next sequence, through the new table. */
	ASSERT_EQ(0, write_seeded(&self->vol, self->buf, 4096, 0, 999));
	ASSERT_EQ(1, dmrepl_ring_next(ring, &rec));
	EXPECT_EQ(before.next_seq, dmrepl_rec_seq(rec));
	tl_fill(self->buf, 4096, 999);
	EXPECT_EQ(0, memcmp(self->buf, dmrepl_rec_payload(rec), 4096));
	tl_consumer_free(&c);
}

static long vmalloc_entries(const char *what)
{
	char out[64];

	/* grep -c prints 0 and exits 1 when nothing matches. */
	if (tl_run_out(out, sizeof(out), "grep -c '%s' /proc/vmallocinfo", what) > 1)
		return -1;
	return strtol(out, NULL, 10);
}

/* 20 create/write/remove cycles leave nothing: no object, no vmap. */
TEST_F_TIMEOUT(lifecycle, create_write_remove_cycles_leak_nothing, 180)
{
	char data[TL_NAME_LEN], meta[TL_NAME_LEN], msg[DMREPL_ERRMSG_LEN];
	struct dmrepl_ring *ring;
	const struct dm_repl_rec *rec;
	unsigned int i;
	int fd;

	ASSERT_EQ(0L, vmalloc_entries("repl_ring_init"));
	ASSERT_EQ(0, tl_loop_create(&self->env, DATA_MB, data, sizeof(data)));
	ASSERT_EQ(0, tl_loop_create(&self->env, TL_META_MB, meta, sizeof(meta)));
	ASSERT_EQ(0, tl_meta_create(meta, "lc5", data));
	for (i = 0; i < 20; i++) {
		ASSERT_EQ(0, tl_dm_create(&self->env, "lc5", "0 %u repl %s %s lc5 primary %s",
					  DATA_MB << 11, data, meta, SMALL_RING));
		fd = tl_env_track_fd(&self->env, open("/dev/mapper/lc5", O_RDWR | O_DIRECT));
		ASSERT_LE(0, fd);
		tl_fill(self->buf, 65536, i);
		ASSERT_EQ(0, tl_pwrite_all(fd, self->buf, 65536, (uint64_t)i << 16));
		ASSERT_EQ(0, tl_ring_open(&self->env, "lc5", &ring, msg, sizeof(msg))) {
			TH_LOG("cycle %u: %s", i, msg);
		}
		/*
		 * Each load is a new stream, numbered on where the last one
		 * stopped (never from 1 again); its records were not
		 * released, so it says GAP.
		 */
		ASSERT_EQ(1, dmrepl_ring_next(ring, &rec));
		EXPECT_EQ((unsigned int)DM_REPL_REC_STREAM, dmrepl_rec_type(rec));
		EXPECT_EQ(1ULL + 2 * i, dmrepl_rec_seq(rec));
		EXPECT_EQ(i ? (unsigned int)DM_REPL_RECF_GAP : 0U, dmrepl_rec_flags(rec));
		ASSERT_EQ(1, dmrepl_ring_next(ring, &rec));
		EXPECT_EQ(2ULL + 2 * i, dmrepl_rec_seq(rec));
		expect_live(_metadata, "1 1 1");
		if (i == 0)
			EXPECT_LT(0L, vmalloc_entries("repl_ring_init"));
		tl_ring_close(&self->env, ring);
		tl_env_close_fd(&self->env, fd);
		ASSERT_EQ(0, tl_dm_remove(&self->env, "lc5"));
		expect_live(_metadata, "0 0 0");
	}
	EXPECT_EQ(0L, vmalloc_entries("repl_ring_init"));
	EXPECT_EQ(0L, vmalloc_entries("dm_repl"));
}

/*
 * A reload onto another data device: either refused, or the volume follows
 * it (group info names the new device, and no second volume of the group
 * may then use it).
 */
TEST_F_TIMEOUT(lifecycle, reload_onto_another_data_device_is_refused, 120)
{
	struct dm_repl_group_info info;
	struct dmrepl_ring *ring;
	char data2[TL_NAME_LEN], msg[DMREPL_ERRMSG_LEN];
	unsigned int maj, min;

	ASSERT_EQ(0, tl_vol_create(&self->env, &self->vol, "lc7", "lc7", DATA_MB, SMALL_RING));
	ASSERT_EQ(0, tl_loop_create(&self->env, DATA_MB, data2, sizeof(data2)));
	ASSERT_EQ(0, tl_dev_rdev(self->vol.data, &maj, &min));
	/* The volume's records and bitmap describe its data device. */
	ASSERT_NE(0, tl_run("dmsetup reload lc7 --table '0 %u repl %s %s lc7 primary %s' 2>/dev/null",
			    DATA_MB << 11, data2, self->vol.meta, SMALL_RING));
	ASSERT_EQ(0, tl_ring_open(&self->env, "lc7", &ring, msg, sizeof(msg))) {
		TH_LOG("%s", msg);
	}
	ASSERT_EQ(0, dmrepl_ring_info(ring, &info));
	ASSERT_EQ(1U, info.nr_volumes);
	EXPECT_TRUE(info.volumes[0].dev_major == maj && info.volumes[0].dev_minor == min);
}

/*
 * @cmd runs while lcla (lc8's data device) holds its bios; meanwhile
 * another group (lc9) is made and removed, which must not wait for it.
 * Then lcla is back: @cmd's status.
 */
static int while_lcla_hangs(struct __test_metadata *_metadata, const char *cmd,
			    const char *other_table)
{
	struct tl_bg job, other;
	bool waited;

	if (tl_run("dmsetup suspend --noflush lcla") || tl_bg_start(&job, "%s", cmd))
		return -1;
	/* Its dmsetup waits in the kernel (D) before the other group's starts. */
	EXPECT_EQ(0, tl_run("for i in $(seq 300); do grep -qs '^State:.*D' "
			    "$(grep -ls '^Name:.*dmsetup' /proc/[0-9]*/status) /dev/null && "
			    "exit 0; sleep 0.1; done; exit 1")) TH_LOG("'%s' never waited", cmd);
	if (tl_bg_start(&other, "dmsetup create lc9 --table '%s' && dmsetup remove lc9",
			other_table)) {
		tl_run("dmsetup resume lcla");
		tl_bg_wait(&job, 600);
		return -1;
	}
	waited = !tl_bg_wait(&other, 60);
	EXPECT_FALSE(tl_bg_wait(&job, 0)) TH_LOG("'%s' did not wait for lcla", cmd);
	EXPECT_EQ(0, tl_run("dmsetup resume lcla"));
	tl_bg_wait(&other, 600);
	tl_bg_wait(&job, 600);
	EXPECT_FALSE(waited) TH_LOG("another group's table waited for lc8's data device");
	EXPECT_EQ(0, other.status);
	return job.status;
}

/*
 * A data device that hangs (dm-linear suspended with its bios held, as
 * multipath queues them with no path left) holds back the demotion that
 * flushes it and the removal of a primary's volume, and nothing of any
 * other group. Once it is back, both end as they would have: the volume
 * secondary, then (promoted again) removed with its metadata clean.
 */
TEST_F_TIMEOUT(lifecycle, a_data_device_that_hangs_holds_back_no_other_group, 240)
{
	char loop[TL_NAME_LEN], data9[TL_NAME_LEN], meta9[TL_NAME_LEN];
	char other[256], table[512], msg[DMREPL_ERRMSG_LEN], status[256];
	struct dm_repl_group_info info;
	struct dmrepl_ring *ring;

	ASSERT_EQ(0, tl_loop_create(&self->env, DATA_MB, loop, sizeof(loop)));
	ASSERT_EQ(0, tl_dm_create(&self->env, "lcla", "0 %u linear %s 0", DATA_MB * 2048, loop));
	ASSERT_EQ(0, tl_vol_create_over(&self->env, &self->vol, "lc8", "lc8", "/dev/mapper/lcla",
					DATA_MB, SMALL_RING, 0));
	tl_env_close_fd(&self->env, self->vol.fd);	/* an open volume cannot step down */
	ASSERT_EQ(0, tl_loop_create(&self->env, DATA_MB, data9, sizeof(data9)));
	ASSERT_EQ(0, tl_loop_create(&self->env, TL_META_MB, meta9, sizeof(meta9)));
	ASSERT_EQ(0, tl_meta_create(meta9, "lc9", data9));
	snprintf(other, sizeof(other), "0 %u repl %s %s lc9 primary %s", DATA_MB * 2048, data9,
		 meta9, SMALL_RING);

	ASSERT_EQ(0, tl_run("dmsetup suspend lc8"));
	EXPECT_EQ(0, while_lcla_hangs(_metadata, "dmsetup message lc8 0 role secondary", other));
	ASSERT_EQ(0, tl_run_out(status, sizeof(status), "dmsetup status lc8"));
	EXPECT_NE(NULL, strstr(status, " repl secondary ")) TH_LOG("%s", status);

	ASSERT_EQ(0, tl_run("dmsetup message lc8 0 role primary && dmsetup resume lc8"));
	EXPECT_EQ(0, while_lcla_hangs(_metadata, "dmsetup remove lc8", other));
	/* Back from its metadata: it was shut down cleanly. */
	snprintf(table, sizeof(table), "0 %u repl /dev/mapper/lcla %s lc8 primary %s",
		 DATA_MB * 2048, self->vol.meta, SMALL_RING);
	ASSERT_EQ(0, tl_run("dmsetup create lc8 --table '%s'", table));
	ASSERT_EQ(0, tl_ring_open(&self->env, "lc8", &ring, msg, sizeof(msg))) TH_LOG("%s", msg);
	ASSERT_EQ(0, dmrepl_ring_info(ring, &info));
	EXPECT_EQ(0U, info.behind_reasons);
	EXPECT_EQ(0ULL, info.volumes[0].dirty_regions);
}

/*
 * A demotion that is refused (a record not released; a volume not
 * suspended) is refused at once, even while the data device hangs: it
 * flushes nothing first.
 */
TEST_F_TIMEOUT(lifecycle, a_demotion_refused_waits_for_no_hung_device, 240)
{
	static const char *const cases[] = { "unreleased", "resumed" };
	char loop[TL_NAME_LEN];
	struct tl_bg job;
	unsigned int i;

	ASSERT_EQ(0, tl_loop_create(&self->env, DATA_MB, loop, sizeof(loop)));
	ASSERT_EQ(0, tl_dm_create(&self->env, "lcla", "0 %u linear %s 0", DATA_MB * 2048, loop));
	ASSERT_EQ(0, tl_vol_create_over(&self->env, &self->vol, "lc8", "lc8", "/dev/mapper/lcla",
					DATA_MB, SMALL_RING, 0));
	tl_env_close_fd(&self->env, self->vol.fd);
	ASSERT_EQ(0, tl_run("dd if=/dev/urandom of=/dev/mapper/lc8 bs=4k count=1 oflag=direct "
			    "status=none"));
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(0, tl_run(i ? "dmsetup resume lc8" : "dmsetup suspend lc8"));
		ASSERT_EQ(0, tl_run("dmsetup suspend --noflush lcla"));
		ASSERT_EQ(0, tl_bg_start(&job, "dmsetup message lc8 0 role secondary"));
		EXPECT_TRUE(tl_bg_wait(&job, 60)) TH_LOG("%s: the refusal waited for lcla", cases[i]);
		EXPECT_EQ(0, tl_run("dmsetup resume lcla"));
		tl_bg_wait(&job, 600);
		EXPECT_NE(0, job.status) TH_LOG("%s: the demotion was not refused", cases[i]);
	}
}

TEST_HARNESS_MAIN
