// SPDX-License-Identifier: GPL-2.0
/*
 * Overflow: a ring too small for the writes never fails or stalls a write
 * for long; what does not fit in the ring is in the dirty bitmap. For every
 * write, either records in the ring hold it (same volume, sectors, data) or
 * the bitmap marks every region of what the ring lacks.
 *
 * Runs in the guest (tests/guest/vm.sh) with dm-repl.ko loaded.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "testlib.h"

#define DATA_MB		64
#define BITMAP_OPTS	"6 ring_mb 2 region_kb 64 overflow bitmap"
#define BLOCK_OPTS	"8 ring_mb 2 region_kb 64 overflow block block_ms 20"
#define MIN_WRITE	(4U << 10)
#define MAX_WRITE	(128U << 10)
#define MAX_SECTORS	(MAX_WRITE / 512)

/* One write the test made, and which of its sectors records hold. */
struct wlog {
	uint64_t off;
	uint32_t len;
	uint64_t seed;
	uint64_t in_ring[MAX_SECTORS / 64];	/* sector bits */
};

struct burst {
	struct wlog *w;
	size_t n;
	unsigned int volume;	/* volume index in records */
	unsigned char *scratch;
	uint64_t unmatched;	/* WRITE records that are no write of ours */
	uint64_t matched;
};

/* total bytes of random 4 KiB..128 KiB O_DIRECT writes at random 4 KiB offsets. */
static int write_burst(struct tl_vol *v, struct tl_rng *rng, uint64_t total,
		       uint64_t seed, struct burst *b, unsigned char *buf)
{
	uint64_t done = 0;
	size_t cap = total / MIN_WRITE + 1;
	int r;

	b->w = calloc(cap, sizeof(*b->w));
	b->scratch = malloc(MAX_WRITE);
	if (!b->w || !b->scratch)
		return -ENOMEM;
	b->volume = (unsigned int)v->index;
	while (done < total) {
		struct wlog *w = &b->w[b->n];

		w->len = (uint32_t)tl_rand_range(rng, MIN_WRITE / 4096, MAX_WRITE / 4096) * 4096;
		w->off = tl_rand_range(rng, 0, (v->size - w->len) / 4096) * 4096;
		w->seed = seed ^ ((uint64_t)b->n << 24) ^ 0xb1e55ULL;
		tl_fill(buf, w->len, w->seed);
		r = tl_pwrite_all(v->fd, buf, w->len, w->off);
		if (r)
			return r;
		b->n++;
		done += w->len;
	}
	return 0;
}

static void burst_free(struct burst *b)
{
	free(b->w);
	free(b->scratch);
	memset(b, 0, sizeof(*b));
}

/* Consumer hook: mark the sectors of our writes that this record holds. */
static void cover_hook(void *arg, const struct dm_repl_rec *rec)
{
	struct burst *b = arg;
	uint64_t off = dmrepl_rec_sector(rec) << 9, len = dmrepl_rec_nbytes(rec);
	size_t i;

	if (dmrepl_rec_type(rec) != DM_REPL_REC_WRITE)
		return;
	if (dmrepl_rec_volume(rec) != b->volume) {
		b->unmatched++;
		return;
	}
	/* Newest first: a later write over the same place is the likelier. */
	for (i = b->n; i-- > 0;) {
		struct wlog *w = &b->w[i];
		uint64_t s;

		if (off < w->off || off + len > w->off + w->len)
			continue;
		tl_fill(b->scratch, w->len, w->seed);
		if (memcmp(b->scratch + (off - w->off), dmrepl_rec_payload(rec), len))
			continue;
		for (s = (off - w->off) / 512; s < (off + len - w->off) / 512; s++)
			w->in_ring[s / 64] |= 1ULL << (s % 64);
		b->matched++;
		return;
	}
	b->unmatched++;
}

struct verdict {
	unsigned int in_ring;	/* every sector in records */
	unsigned int in_bitmap;	/* no sector in records, all regions dirty */
	unsigned int split;	/* some of each, the rest's regions dirty */
	unsigned int lost;	/* a sector in neither */
};

/*
 * The invariant, per sector: in a record of the write, or its region set in
 * the dirty bitmap.
 */
static struct verdict judge(const struct burst *b, const unsigned char *bm,
			    uint64_t nr_regions, unsigned int region_sectors,
			    char *why, size_t why_len)
{
	struct verdict v = { 0 };
	size_t i;

	for (i = 0; i < b->n; i++) {
		const struct wlog *w = &b->w[i];
		unsigned int s, nsec = w->len / 512, held = 0, missing = 0;

		for (s = 0; s < nsec; s++) {
			uint64_t region = (w->off / 512 + s) / region_sectors;

			if (w->in_ring[s / 64] & (1ULL << (s % 64)))
				held++;
			else if (region >= nr_regions || !tl_bit(bm, region))
				missing++;
		}
		if (missing) {
			if (!v.lost++)
				snprintf(why, why_len,
					 "write %zu [%llu, +%u): %u sectors neither in the ring nor dirty",
					 i, (unsigned long long)w->off, w->len, missing);
		} else if (held == nsec) {
			v.in_ring++;
		} else if (!held) {
			v.in_bitmap++;
		} else {
			v.split++;
		}
	}
	return v;
}

static uint64_t popcount_bytes(const unsigned char *bm, size_t len)
{
	uint64_t n = 0;
	size_t i;

	for (i = 0; i < len; i++)
		n += (uint64_t)__builtin_popcount(bm[i]);
	return n;
}

FIXTURE(overflow) {
	struct tl_env env;
	struct tl_vol vol;
	struct dmrepl_ring *ring;
	struct tl_consumer c;
	struct burst b1, b2;
	struct tl_rng rng;
	uint64_t seed;
	unsigned char *buf;
};

FIXTURE_SETUP(overflow)
{
	TL_SETUP(&self->env);
	self->seed = tl_seed();
	tl_rng_init(&self->rng, self->seed);
	TH_LOG("seed %llu (set TEST_SEED to replay)", (unsigned long long)self->seed);
	self->buf = tl_zalloc_aligned(MAX_WRITE);
	ASSERT_NE(NULL, self->buf);
}

FIXTURE_TEARDOWN(overflow)
{
	burst_free(&self->b1);
	burst_free(&self->b2);
	tl_consumer_free(&self->c);
	free(self->buf);
	TL_TEARDOWN(&self->env);
}

/* Create the volume, open its ring, with a consumer that maps records to b1. */
static void start(struct __test_metadata *_metadata,
		  FIXTURE_DATA(overflow) *self, const char *name, const char *opts)
{
	struct dm_repl_group_info info;
	char msg[DMREPL_ERRMSG_LEN];

	ASSERT_EQ(0, tl_vol_create(&self->env, &self->vol, name, name, DATA_MB, opts));
	ASSERT_EQ(0, tl_ring_open(&self->env, name, &self->ring, msg, sizeof(msg))) {
		TH_LOG("open %s: %s", name, msg);
	}
	ASSERT_EQ(0, dmrepl_ring_info(self->ring, &info));
	ASSERT_EQ(0, tl_vol_find_index(&self->vol, &info));
	ASSERT_EQ(2ULL << 20, info.data_size);
	self->c.ring = self->ring;
	self->c.hook = cover_hook;
	self->c.hook_arg = &self->b1;
}

/*
 * After a burst without release: take what the ring holds, read the dirty
 * bitmap, and judge every write of b1.
 */
static void check_burst(struct __test_metadata *_metadata,
			FIXTURE_DATA(overflow) *self, const char *what)
{
	struct dm_repl_group_info info;
	const struct dm_repl_volume_info *vi;
	unsigned char *bm;
	uint64_t full = 0;
	struct verdict v;
	char why[256] = "";

	ASSERT_LE(0, tl_consume(&self->c, false));
	EXPECT_STREQ("", self->c.err);
	EXPECT_EQ(0ULL, self->b1.unmatched);
	ASSERT_EQ(0, dmrepl_ring_info(self->ring, &info));
	vi = &info.volumes[0];
	ASSERT_EQ((unsigned int)self->vol.index, vi->index);
	EXPECT_EQ(128U, vi->region_sectors);
	EXPECT_EQ((uint64_t)DATA_MB * 16, vi->nr_regions);
	/* Everything reserved is committed and was taken, in one sequence. */
	EXPECT_EQ(info.next_seq - 1, self->c.last_seq);
	EXPECT_EQ(0ULL, self->c.gap);

	bm = calloc(1, (size_t)(vi->nr_regions + 63) / 64 * 8);
	ASSERT_NE(NULL, bm);
	ASSERT_EQ(0, tl_get_bitmap(self->ring, vi->index, bm,
				   (size_t)(vi->nr_regions + 63) / 64 * 8, &full));
	EXPECT_EQ((vi->nr_regions + 63) / 64 * 8, full);
	EXPECT_EQ(vi->dirty_regions, popcount_bytes(bm, (size_t)full));

	v = judge(&self->b1, bm, vi->nr_regions, vi->region_sectors, why, sizeof(why));
	TH_LOG("%s: %zu writes: %u wholly in ring records, %u only in the bitmap, %u split between both, %u lost; %llu records, %llu dirty regions of %llu; overflows %llu block_waits %llu block_timeouts %llu",
	       what, self->b1.n, v.in_ring, v.in_bitmap, v.split, v.lost,
	       (unsigned long long)self->c.records,
	       (unsigned long long)vi->dirty_regions,
	       (unsigned long long)vi->nr_regions,
	       (unsigned long long)info.overflows,
	       (unsigned long long)info.block_waits,
	       (unsigned long long)info.block_timeouts);
	EXPECT_EQ(0U, v.lost) {
		TH_LOG("%s", why);
	}
	EXPECT_LT(0U, v.in_ring);
	EXPECT_LT(0U, v.in_bitmap + v.split);
	free(bm);
}

static void expect_behind(struct __test_metadata *_metadata,
			  FIXTURE_DATA(overflow) *self)
{
	struct dm_repl_group_info info;
	char status[512];

	ASSERT_EQ(0, dmrepl_ring_info(self->ring, &info));
	EXPECT_LT(0ULL, info.overflows);
	EXPECT_EQ((unsigned int)DM_REPL_STATE_BEHIND, info.state);
	EXPECT_LT(0ULL, info.volumes[0].dirty_regions);
	ASSERT_EQ(0, tl_run_out(status, sizeof(status), "dmsetup status %s",
				self->vol.name));
	EXPECT_NE(NULL, strstr(status, " behind ")) {
		TH_LOG("dmsetup status: %s", status);
	}
}

/*
 * overflow bitmap: 32 MiB of writes into a 2 MiB ring with no release. No
 * write fails; the group is behind; every write is in the ring or the
 * bitmap. Then releasing all frees the ring and writes make records again.
 */
TEST_F_TIMEOUT(overflow, bitmap_keeps_every_write_that_misses_the_ring, 240)
{
	struct dm_repl_group_info info, after;
	uint64_t last, half, i;

	start(_metadata, self, "ovb", BITMAP_OPTS);
	ASSERT_EQ(0, write_burst(&self->vol, &self->rng, 32ULL << 20, self->seed,
				 &self->b1, self->buf));
	expect_behind(_metadata, self);
	check_burst(_metadata, self, "bitmap");

	/* Release validation. */
	ASSERT_EQ(0, dmrepl_ring_info(self->ring, &info));
	last = info.next_seq - 1;
	ASSERT_LT(3ULL, last);
	EXPECT_EQ(-EINVAL, dmrepl_ring_release(self->ring, last + 1));
	EXPECT_EQ(-EINVAL, dmrepl_ring_release(self->ring, last + 1000));
	ASSERT_EQ(0, dmrepl_ring_info(self->ring, &after));
	EXPECT_EQ(info.released_pos, after.released_pos);
	EXPECT_EQ(0ULL, after.released_seq);
	half = last / 2;
	EXPECT_EQ(0, dmrepl_ring_release(self->ring, half));
	EXPECT_EQ(0, dmrepl_ring_release(self->ring, half - 1));
	EXPECT_EQ(0, dmrepl_ring_release(self->ring, half));
	ASSERT_EQ(0, dmrepl_ring_info(self->ring, &after));
	EXPECT_EQ(half, after.released_seq);
	EXPECT_LT(info.released_pos, after.released_pos);
	EXPECT_GT(info.producer_pos, after.released_pos);

	/*
	 * Release everything: what is left is the GAP record the overflow
	 * owed, put in the ring as soon as a release made room (header only).
	 */
	EXPECT_EQ(0, dmrepl_ring_release(self->ring, last));
	ASSERT_EQ(0, dmrepl_ring_info(self->ring, &after));
	EXPECT_EQ(last + 2, after.next_seq);
	EXPECT_EQ(last, after.released_seq);
	EXPECT_EQ(sizeof(struct dm_repl_slot) + DM_REPL_REC_HDR_SIZE,
		  after.producer_pos - after.released_pos);
	EXPECT_EQ(0, dmrepl_ring_release(self->ring, last + 1));
	ASSERT_EQ(0, dmrepl_ring_info(self->ring, &after));
	EXPECT_EQ(after.producer_pos, after.released_pos);
	EXPECT_EQ(0, dmrepl_ring_release(self->ring, half));
	EXPECT_EQ(-EINVAL, dmrepl_ring_release(self->ring, last + 2));

	/* New writes are records again, with the next sequences. */
	burst_free(&self->b1);
	self->b1.volume = (unsigned int)self->vol.index;
	ASSERT_EQ(0, write_burst(&self->vol, &self->rng, 3 * MAX_WRITE,
				 self->seed + 1, &self->b1, self->buf));
	ASSERT_LE(0, tl_consume(&self->c, true));
	EXPECT_STREQ("", self->c.err);
	EXPECT_EQ(0ULL, self->b1.unmatched);
	for (i = 0; i < self->b1.n; i++) {
		const struct wlog *w = &self->b1.w[i];
		unsigned int s, held = 0;

		for (s = 0; s < w->len / 512; s++)
			held += !!(w->in_ring[s / 64] & (1ULL << (s % 64)));
		EXPECT_EQ(w->len / 512, held) {
			TH_LOG("new write %llu not in the ring", (unsigned long long)i);
		}
	}
	ASSERT_EQ(0, dmrepl_ring_info(self->ring, &after));
	EXPECT_EQ(info.overflows, after.overflows);
	EXPECT_LT(last, self->c.last_seq);
	EXPECT_EQ(after.next_seq - 1, self->c.last_seq);
}

struct drainer {
	struct tl_consumer *c;
	atomic_int stop;
	uint64_t waits;
	int ret;
};

/* Drain and release continuously until told to stop. */
static void *drain_thread(void *arg)
{
	struct drainer *d = arg;
	long r;

	while (!atomic_load(&d->stop)) {
		r = tl_consume(d->c, true);
		if (r < 0) {
			d->ret = (int)r;
			break;
		}
		if (!r) {
			dmrepl_ring_wait(d->c->ring, 20);
			d->waits++;
		}
	}
	return NULL;
}

/*
 * overflow block: with no consumer, writers wait block_ms, then fall back to
 * the bitmap; none fails and the invariant holds. Then with a consumer that
 * releases as it goes, a second burst: its counters are reported.
 */
TEST_F_TIMEOUT(overflow, block_waits_then_falls_back_to_the_bitmap, 240)
{
	struct dm_repl_group_info before, after;
	struct drainer d = { .c = &self->c };
	uint64_t records_before;
	pthread_t t;

	start(_metadata, self, "ovk", BLOCK_OPTS);
	ASSERT_EQ(0, write_burst(&self->vol, &self->rng, 16ULL << 20, self->seed,
				 &self->b1, self->buf));
	ASSERT_EQ(0, dmrepl_ring_info(self->ring, &before));
	EXPECT_LT(0ULL, before.block_waits);
	EXPECT_LT(0ULL, before.block_timeouts);
	expect_behind(_metadata, self);
	check_burst(_metadata, self, "block, no consumer");

	/* Second burst with a consumer releasing continuously. */
	self->c.hook = NULL;
	records_before = self->c.records;
	ASSERT_EQ(0, dmrepl_ring_info(self->ring, &before));
	ASSERT_EQ(0, pthread_create(&t, NULL, drain_thread, &d));
	EXPECT_EQ(0, write_burst(&self->vol, &self->rng, 16ULL << 20,
				 self->seed + 2, &self->b2, self->buf));
	atomic_store(&d.stop, 1);
	ASSERT_EQ(0, pthread_join(t, NULL));
	EXPECT_EQ(0, d.ret);
	ASSERT_LE(0, tl_consume(&self->c, true));
	EXPECT_STREQ("", self->c.err);
	ASSERT_EQ(0, dmrepl_ring_info(self->ring, &after));
	EXPECT_EQ(after.next_seq - 1, self->c.last_seq);
	EXPECT_EQ(after.producer_pos, after.released_pos);
	TH_LOG("block with a consumer: %zu writes -> %llu records; block_waits +%llu, block_timeouts +%llu, overflows +%llu, wakeups +%llu, consumer polls %llu",
	       self->b2.n, (unsigned long long)(self->c.records - records_before),
	       (unsigned long long)(after.block_waits - before.block_waits),
	       (unsigned long long)(after.block_timeouts - before.block_timeouts),
	       (unsigned long long)(after.overflows - before.overflows),
	       (unsigned long long)(after.wakeups - before.wakeups),
	       (unsigned long long)d.waits);
}

TEST_HARNESS_MAIN
