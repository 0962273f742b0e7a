// SPDX-License-Identifier: GPL-2.0
/*
 * Concurrency: fio writes with 4 jobs x iodepth 8 while the test drains the
 * ring, applies every record to an image and releases as it goes. The ring
 * wraps several times; no record is lost or duplicated and the image is the
 * device.
 *
 * Runs in the guest (tests/guest/vm.sh) with dm-repl.ko loaded.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "testlib.h"

#define JOBS		4
#define JOB_MB		8
#define DATA_MB		(JOBS * JOB_MB)
/*
 * 16 MiB ring for 32 MiB of writes. overflow block with a long block_ms:
 * with a live consumer no write may go to the bitmap, so a writer that
 * outruns the consumer waits for room instead (bitmap mode would make
 * "overflows == 0" depend on the consumer's speed under TCG).
 */
#define OPTS		"6 ring_mb 16 overflow block block_ms 10000"
#define FIO_LOG		"/tmp/dmrepl-fio.log"

FIXTURE(concurrency) {
	struct tl_env env;
	struct tl_vol vol;
	struct tl_consumer c;
	pid_t fio;
};

FIXTURE_SETUP(concurrency)
{
	TL_SETUP(&self->env);
	self->fio = -1;
	ASSERT_EQ(0, tl_run("command -v fio >/dev/null")) {
		TH_LOG("fio is not installed");
	}
}

FIXTURE_TEARDOWN(concurrency)
{
	int status;

	if (self->fio > 0) {
		kill(-self->fio, SIGKILL);
		waitpid(self->fio, &status, 0);
	}
	free(self->c.img[0]);
	free(self->c.img[1]);
	tl_consumer_free(&self->c);
	TL_TEARDOWN(&self->env);
}

/*
 * Each job writes its own 8 MiB range (overlapping in-flight writes have no
 * defined order on the disk either); the main thread consumes meanwhile.
 */
TEST_F_TIMEOUT(concurrency, fio_under_a_draining_consumer_loses_and_duplicates_nothing, 300)
{
	struct dm_repl_group_info info;
	struct tl_consumer *c = &self->c;
	char msg[DMREPL_ERRMSG_LEN], log[2048];
	struct dmrepl_ring *ring;
	unsigned char *disk;
	uint64_t seed = tl_seed(), polls = 0;
	int status = -1, idx;
	pid_t done = 0;
	int64_t diff;

	TH_LOG("seed %llu (fio --randseed)", (unsigned long long)seed);
	ASSERT_EQ(0, tl_vol_create(&self->env, &self->vol, "cc1", "cc1", DATA_MB, OPTS));
	ASSERT_EQ(0, tl_ring_open(&self->env, "cc1", &ring, msg, sizeof(msg))) {
		TH_LOG("%s", msg);
	}
	ASSERT_EQ(0, dmrepl_ring_info(ring, &info));
	ASSERT_EQ(0, tl_vol_find_index(&self->vol, &info));
	idx = self->vol.index;
	ASSERT_GT(TL_MAX_VOLS, idx);
	c->ring = ring;
	c->img[idx] = calloc(1, self->vol.size);
	ASSERT_NE(NULL, c->img[idx]);
	c->img_size[idx] = self->vol.size;

	self->fio = tl_spawn("exec fio --name=repl --filename=%s --direct=1 "
			     "--ioengine=libaio --rw=randwrite --bsrange=4k-64k "
			     "--numjobs=%d --size=%dM --offset_increment=%dM "
			     "--iodepth=8 --group_reporting --refill_buffers "
			     "--randseed=%llu >" FIO_LOG " 2>&1",
			     self->vol.path, JOBS, JOB_MB, JOB_MB,
			     (unsigned long long)(seed % 1000000007ULL));
	ASSERT_LT(0, self->fio);

	/* Drain while fio runs: wait, take everything, release the batch. */
	while (done == 0) {
		long n = tl_consume(c, true);

		ASSERT_LE(0, n) {
			TH_LOG("%s", c->err);
		}
		if (!n) {
			int w = dmrepl_ring_wait(ring, 100);

			ASSERT_LE(0, w);
			polls++;
		}
		done = waitpid(self->fio, &status, WNOHANG);
		ASSERT_LE(0, done);
	}
	self->fio = -1;
	tl_run_out(log, sizeof(log), "tail -c 1500 " FIO_LOG);
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		TH_LOG("fio failed (status %d):\n%s", status, log);
	}
	ASSERT_LE(0, tl_consume(c, true));
	ASSERT_EQ(0, dmrepl_ring_info(ring, &info));

	TH_LOG("%llu records, %llu payload bytes in %llu batches; wakeups %llu, polls %llu; ring %llu MiB written %.1f times; block_waits %llu overflows %llu",
	       (unsigned long long)c->records, (unsigned long long)c->payload_bytes,
	       (unsigned long long)c->batches, (unsigned long long)info.wakeups,
	       (unsigned long long)polls, (unsigned long long)(info.data_size >> 20),
	       (double)info.producer_pos / (double)info.data_size,
	       (unsigned long long)info.block_waits,
	       (unsigned long long)info.overflows);
	EXPECT_STREQ("", c->err);
	/* Nothing lost, nothing twice: 1..next_seq-1, each once, in order. */
	EXPECT_EQ(0ULL, info.overflows);
	EXPECT_EQ(0ULL, info.discarded);
	EXPECT_EQ(0ULL, c->gap);
	EXPECT_EQ(info.next_seq - 1, c->last_seq);
	EXPECT_EQ(info.next_seq - 1, c->records + c->stream_records);
	EXPECT_EQ(info.records, c->records + c->stream_records);
	EXPECT_EQ(1ULL, c->stream_records);	/* its STREAM record, no GAP */
	EXPECT_EQ(info.producer_pos, info.released_pos);
	EXPECT_EQ((unsigned int)DM_REPL_STATE_UPTODATE, info.state);
	/* The ring wrapped: more than its size went through it. */
	EXPECT_LT(info.data_size, info.producer_pos);
	EXPECT_LE((uint64_t)DATA_MB << 20, c->payload_bytes);
	/* Wake-ups are batched. */
	EXPECT_LT(info.wakeups, c->records);

	disk = tl_zalloc_aligned(self->vol.size);
	ASSERT_NE(NULL, disk);
	ASSERT_EQ(0, tl_pread_all(self->vol.fd, disk, self->vol.size, 0));
	diff = tl_first_diff(disk, c->img[idx], self->vol.size);
	EXPECT_EQ(-1, diff) {
		TH_LOG("the rebuilt image differs from the device at byte %lld",
		       (long long)diff);
	}
	free(disk);
}

TEST_HARNESS_MAIN
