// SPDX-License-Identifier: GPL-2.0
/*
 * The resync controller (userspace/lib/resync_ctl.c) against a simulated
 * link: a queue in front of a link of a fixed rate, fed by a stream of a
 * fixed rate and by the regions the controller lets through. The stream's
 * lag is the queue's age: what waits in it over the link's rate.
 *
 * And the resync itself (userspace/lib/resync.c) over a fake kernel (the
 * program is linked with -Wl,--wrap=ioctl): the regions a replica asks for
 * (RESEND) are queued once each and resent, with RESYNCF_ANY, before the
 * group's own dirty regions.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "dmrepl.h"
#include "kselftest_harness.h"

#define MIB (1024.0 * 1024.0)
#define REGION (64 << 10)
#define STEP_NS 10000000ULL	/* 10 ms */
#define SEC_NS 1000000000ULL

struct sim {
	struct dmrepl_resync_ctl c;
	double link, stream;	/* bytes/s */
	double queue;		/* bytes waiting for the link */
	__u64 now;
	double resync;		/* bytes let through */
	double lag_max;		/* seconds, since the last sim_reset_stats() */
	double lags[100000];	/* seconds, one a step, since then */
	unsigned int nlags;
};

static void sim_init(struct sim *s, double link, double stream, __u64 rate_max)
{
	memset(s, 0, sizeof(*s));
	s->link = link;
	s->stream = stream;
	s->now = SEC_NS;
	dmrepl_resync_ctl_init(&s->c, rate_max, SEC_NS, s->now);
}

static void sim_reset_stats(struct sim *s)
{
	s->resync = 0;
	s->lag_max = 0;
	s->nlags = 0;
}

/* One step of 10 ms; returns the bytes the resync put in. */
static double sim_step(struct sim *s)
{
	double lag = s->queue / s->link, put = 0;

	s->queue += s->stream * STEP_NS / 1e9;
	dmrepl_resync_ctl_update(&s->c, s->now, (__u64)(lag * 1e9));
	while (dmrepl_resync_ctl_may(&s->c)) {
		dmrepl_resync_ctl_spend(&s->c, REGION);
		put += REGION;
	}
	s->queue += put;
	s->resync += put;
	s->queue -= s->link * STEP_NS / 1e9;
	if (s->queue < 0)
		s->queue = 0;
	s->now += STEP_NS;
	if (lag > s->lag_max)
		s->lag_max = lag;
	if (s->nlags < sizeof(s->lags) / sizeof(s->lags[0]))
		s->lags[s->nlags++] = lag;
	return put;
}

static void sim_run(struct sim *s, unsigned int secs)
{
	unsigned int i;

	for (i = 0; i < secs * 100; i++)
		sim_step(s);
}

/* A sim run for 20 s, its statistics from there on. */
static void sim_settled(struct sim *s, double link, double stream)
{
	sim_init(s, link, stream, 0);
	sim_run(s, 20);
	sim_reset_stats(s);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double sim_lag_p99(struct sim *s)
{
	qsort(s->lags, s->nlags, sizeof(s->lags[0]), cmp_double);
	return s->nlags ? s->lags[s->nlags * 99 / 100] : 0;
}

TEST(it_takes_most_of_what_the_stream_leaves_and_keeps_the_lag_near_the_target)
{
	static struct sim s;

	sim_settled(&s, 10 * MIB, 3 * MIB);
	sim_run(&s, 60);
	TH_LOG("resync %.2f MiB/s of 7 left, lag p99 %.2f s, max %.2f s, %llu cuts",
	       s.resync / 60 / MIB, sim_lag_p99(&s), s.lag_max, (unsigned long long)s.c.cuts);
	EXPECT_GE(s.resync / 60, 0.8 * 7 * MIB);
	EXPECT_LT(sim_lag_p99(&s), 1.5);
}

TEST(it_backs_off_when_the_stream_takes_the_link)
{
	static struct sim s;

	sim_init(&s, 10 * MIB, 5 * MIB, 0);
	sim_run(&s, 20);
	s.stream = 9.5 * MIB;
	sim_run(&s, 10);
	sim_reset_stats(&s);
	sim_run(&s, 30);
	TH_LOG("resync %.2f MiB/s of 0.5 left, lag p99 %.2f s, max %.2f s, budget %.2f MiB/s",
	       s.resync / 30 / MIB, sim_lag_p99(&s), s.lag_max, s.c.budget / MIB);
	/* What is left, give or take the floor. */
	EXPECT_LE(s.resync / 30, 0.5 * MIB + DMREPL_RESYNC_MIN_RATE);
	EXPECT_LT(sim_lag_p99(&s), 1.5);
	EXPECT_GT(s.c.cuts, 2ULL);
}

TEST(a_lag_past_the_target_halves_the_budget_at_once_and_says_why)
{
	struct dmrepl_resync_ctl c;
	char why[80];
	double before;

	dmrepl_resync_ctl_init(&c, 0, SEC_NS, SEC_NS);
	before = c.budget;
	dmrepl_resync_ctl_update(&c, SEC_NS + STEP_NS, 1400000000ULL);
	EXPECT_EQ(before / 2, c.budget);
	EXPECT_EQ(1ULL, c.cuts);
	while (dmrepl_resync_ctl_may(&c))
		dmrepl_resync_ctl_spend(&c, REGION);
	EXPECT_EQ((int)DMREPL_RESYNC_LAG, (int)c.why);
	EXPECT_STREQ("stream lag 1.4 s > 1.0 s", dmrepl_resync_ctl_why(&c, why, sizeof(why)));
	/* Not again before a target's time: the first cut must show first. */
	dmrepl_resync_ctl_update(&c, SEC_NS + 50 * STEP_NS, 1400000000ULL);
	EXPECT_EQ(before / 2, c.budget);
	dmrepl_resync_ctl_update(&c, 2 * SEC_NS + 2 * STEP_NS, 1400000000ULL);
	EXPECT_EQ(2ULL, c.cuts);
	EXPECT_EQ(before / 4, c.budget);
	while (dmrepl_resync_ctl_may(&c))
		dmrepl_resync_ctl_spend(&c, REGION);
	EXPECT_GT(dmrepl_resync_ctl_next_ns(&c), 2 * SEC_NS + 2 * STEP_NS);
}

TEST(it_never_exceeds_the_rate_limit)
{
	static struct sim s;
	const double limit = 2 * MIB;
	unsigned int sec, i;
	double in_sec;
	char why[80];

	sim_init(&s, 100 * MIB, 0, (__u64)limit);
	for (sec = 0; sec < 30; sec++) {
		for (in_sec = 0, i = 0; i < 100; i++)
			in_sec += sim_step(&s);
		/* A second's budget, a tick's bucket, the region past it. */
		EXPECT_LE(in_sec, limit + limit / 10 + REGION) TH_LOG("second %u", sec);
		if (sec >= 2)
			EXPECT_GE(in_sec, limit - REGION) TH_LOG("second %u", sec);
	}
	EXPECT_GT(s.c.rate_waits, 0ULL);
	EXPECT_STREQ("rate limit 2.0 MiB/s", dmrepl_resync_ctl_why(&s.c, why, sizeof(why)));
	EXPECT_EQ(0ULL, s.c.cuts);
}

TEST(a_link_the_stream_fills_still_lets_the_resync_through_at_its_floor)
{
	static struct sim s;

	sim_settled(&s, 10 * MIB, 10 * MIB);
	sim_run(&s, 60);
	TH_LOG("resync %.3f MiB/s, budget %.3f MiB/s", s.resync / 60 / MIB, s.c.budget / MIB);
	EXPECT_GE(s.resync, 0.9 * 60 * DMREPL_RESYNC_MIN_RATE);
	EXPECT_LE(s.resync, 1.1 * 60 * DMREPL_RESYNC_MIN_RATE + REGION);
}

TEST(without_a_stream_the_budget_grows_to_the_link)
{
	static struct sim s;

	sim_init(&s, 50 * MIB, 0, 0);
	sim_run(&s, 10);
	sim_reset_stats(&s);
	sim_run(&s, 30);
	TH_LOG("resync %.2f MiB/s of 50, lag p99 %.2f s", s.resync / 30 / MIB, sim_lag_p99(&s));
	EXPECT_GE(s.resync / 30, 0.8 * 50 * MIB);
	EXPECT_LT(sim_lag_p99(&s), 1.5);
}

/* ---- the resync over a fake kernel ------------------------------------ */

#define FK_REGIONS	200	/* regions of each volume */
#define FK_CALLS	64

/*
 * A primary group as DM_REPL_IOC_GROUP_INFO, _GET_BITMAP and _RESYNC see it:
 * volumes of FK_REGIONS regions, their dirty bits, and a log of the RESYNC
 * calls. A RESYNC of a dirty region (or of any, with RESYNCF_ANY) puts one
 * record in and cleans the region; of a volume index the group does not
 * have, ENOENT; of a region past its end, EINVAL; with room 0, ENOSPC.
 * The one that leaves a group behind with no dirty region says END, and the
 * group is up to date.
 */
static struct fake_kernel {
	int fd;
	struct dm_repl_group_info info;
	unsigned long bits[DM_REPL_MAX_VOLUMES][FK_REGIONS / (8 * sizeof(long)) + 1];
	int room;			/* RESYNCs taken before ENOSPC; -1: no end */
	unsigned int ncalls;
	struct dm_repl_resync_req calls[FK_CALLS];
} fk = { .fd = -1 };

int __real_ioctl(int fd, unsigned long req, ...);

static int fk_volume(__u32 index)
{
	unsigned int i;

	for (i = 0; i < fk.info.nr_volumes; i++)
		if (fk.info.volumes[i].index == index)
			return (int)i;
	return -1;
}

static int fk_resync(struct dm_repl_resync_req *req)
{
	int v = fk_volume(req->volume);
	unsigned long *w, bit;

	if (fk.ncalls < FK_CALLS)
		fk.calls[fk.ncalls++] = *req;
	if (v < 0 || req->region >= fk.info.volumes[v].nr_regions) {
		errno = v < 0 ? ENOENT : EINVAL;
		return -1;
	}
	if (!fk.room) {
		errno = ENOSPC;
		return -1;
	}
	if (fk.room > 0)
		fk.room--;
	w = &fk.bits[req->volume][req->region / (8 * sizeof(long))];
	bit = 1UL << (req->region % (8 * sizeof(long)));
	req->records = (*w & bit) || (req->flags & DM_REPL_RESYNCF_ANY);
	if (*w & bit)
		fk.info.volumes[v].dirty_regions--;
	*w &= ~bit;
	req->flags = 0;
	for (v = 0; v < (int)fk.info.nr_volumes; v++)
		if (fk.info.volumes[v].dirty_regions)
			return 0;
	if (fk.info.state == DM_REPL_STATE_BEHIND) {
		fk.info.state = DM_REPL_STATE_UPTODATE;
		req->flags = DM_REPL_RESYNCF_END;
	}
	return 0;
}

int __wrap_ioctl(int fd, unsigned long req, ...)
{
	struct dm_repl_bitmap_req *b;
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (fd != fk.fd)
		return __real_ioctl(fd, req, arg);
	switch (req) {
	case DM_REPL_IOC_GROUP_INFO:
		memcpy(arg, &fk.info, sizeof(fk.info));
		return 0;
	case DM_REPL_IOC_GET_BITMAP:
		b = arg;
		if (b->buf_size > sizeof(fk.bits[0]))
			b->buf_size = sizeof(fk.bits[0]);
		memcpy((void *)(uintptr_t)b->buf, fk.bits[b->volume], b->buf_size);
		return 0;
	case DM_REPL_IOC_RESYNC:
		return fk_resync(arg);
	}
	errno = ENOTTY;
	return -1;
}

/* A primary of volumes 0, 3 and 7, behind, with regions 10 and 150 of volume 3 dirty. */
static void fk_setup(struct dmrepl_resync *r)
{
	static const __u32 index[] = { 0, 3, 7 };
	unsigned int i;

	memset(&fk, 0, sizeof(fk));
	fk.fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	fk.room = -1;
	fk.info.abi_version = DM_REPL_ABI_VERSION;
	fk.info.role = DM_REPL_ROLE_PRIMARY;
	fk.info.state = DM_REPL_STATE_BEHIND;
	fk.info.data_size = 1 << 20;
	fk.info.nr_volumes = 3;
	for (i = 0; i < 3; i++) {
		fk.info.volumes[i].index = index[i];
		fk.info.volumes[i].nr_regions = FK_REGIONS;
		fk.info.volumes[i].region_sectors = 128;
	}
	fk.bits[3][0] = 1UL << 10;
	fk.bits[3][150 / (8 * sizeof(long))] |= 1UL << (150 % (8 * sizeof(long)));
	fk.info.volumes[1].dirty_regions = 2;
	dmrepl_resync_init(r, fk.fd);
}

static void fk_teardown(struct dmrepl_resync *r)
{
	dmrepl_resync_free(r);
	close(fk.fd);
	fk.fd = -1;
}

/* RESYNC call i was of (volume, region), with RESYNCF_ANY or not. */
static void expect_call(struct __test_metadata *_metadata, unsigned int i, __u32 volume,
			__u64 region, bool any)
{
	ASSERT_LT(i, fk.ncalls);
	EXPECT_EQ(volume, fk.calls[i].volume) TH_LOG("call %u", i);
	EXPECT_EQ(region, fk.calls[i].region) TH_LOG("call %u", i);
	EXPECT_EQ(any ? DM_REPL_RESYNCF_ANY : 0U, fk.calls[i].flags) TH_LOG("call %u", i);
}

TEST(a_region_asked_twice_is_queued_once)
{
	static const __u64 first[] = { 4, 9, 4 }, again[] = { 9, 120 };
	struct dmrepl_resync r;

	fk_setup(&r);
	ASSERT_EQ(0, dmrepl_resync_ask(&r, 3, FK_REGIONS, first, 3));
	EXPECT_EQ(2U, r.asked_left);
	ASSERT_EQ(0, dmrepl_resync_ask(&r, 3, FK_REGIONS, again, 2));
	EXPECT_EQ(3U, r.asked_left);
	ASSERT_EQ(0, dmrepl_resync_ask(&r, 0, FK_REGIONS, again, 1));
	EXPECT_EQ(4U, r.asked_left);
	/* Nothing asked is nothing queued. */
	ASSERT_EQ(0, dmrepl_resync_ask(&r, 7, FK_REGIONS, NULL, 0));
	EXPECT_EQ(4U, r.asked_left);
	fk_teardown(&r);
}

TEST(a_volume_grown_between_two_asks_keeps_what_was_asked)
{
	static const __u64 before[] = { 1, 199 }, after[] = { 199, 4000 };
	struct dmrepl_resync r;

	fk_setup(&r);
	ASSERT_EQ(0, dmrepl_resync_ask(&r, 3, FK_REGIONS, before, 2));
	/* Grown (an online resize) between two RESEND frames: both count. */
	ASSERT_EQ(0, dmrepl_resync_ask(&r, 3, 4001, after, 2));
	EXPECT_EQ(3U, r.asked_left);
	EXPECT_EQ(4001U, r.asked_regions[3]);
	/* A smaller count later (a shrink is refused by the kernel; the
	 * volume may have been replaced) keeps the bits: region 4000 is
	 * dropped when its turn comes if the volume has no such region. */
	ASSERT_EQ(0, dmrepl_resync_ask(&r, 3, FK_REGIONS, before, 1));
	EXPECT_EQ(3U, r.asked_left);
	EXPECT_EQ(4001U, r.asked_regions[3]);
	ASSERT_EQ(3, dmrepl_resync_step(&r, 3, 50));
	EXPECT_EQ(0U, r.asked_left);
	ASSERT_EQ(3U, fk.ncalls);
	expect_call(_metadata, 0, 3, 1, true);
	expect_call(_metadata, 1, 3, 199, true);
	expect_call(_metadata, 2, 3, 4000, true);
	fk_teardown(&r);
}

TEST(regions_of_another_size_are_asked_as_the_ones_of_ours_they_overlap)
{
	static const __u64 big[] = { 1, 99, 100 }, small[] = { 5, 6, 7, 399, 400 };
	unsigned int asked;
	struct dmrepl_resync r;

	fk_setup(&r);
	/* Theirs twice ours: 1 is our 2 and 3, 99 our 198 and 199, 100 past our end. */
	ASSERT_EQ(0, dmrepl_resync_ask_theirs(&r, 3, FK_REGIONS, 128, 256, big, 3, &asked));
	EXPECT_EQ(4U, asked);
	EXPECT_EQ(4U, r.asked_left);
	/* Theirs half ours: 5 is our 2, 6 and 7 our 3, 399 our 199, 400 past the end. */
	ASSERT_EQ(0, dmrepl_resync_ask_theirs(&r, 0, FK_REGIONS, 128, 64, small, 5, &asked));
	EXPECT_EQ(3U, asked);
	EXPECT_EQ(7U, r.asked_left);
	ASSERT_EQ(7, dmrepl_resync_step(&r, 7, 50));
	ASSERT_EQ(7U, fk.ncalls);
	expect_call(_metadata, 0, 0, 2, true);
	expect_call(_metadata, 1, 0, 3, true);
	expect_call(_metadata, 2, 0, 199, true);
	expect_call(_metadata, 3, 3, 2, true);
	expect_call(_metadata, 4, 3, 3, true);
	expect_call(_metadata, 5, 3, 198, true);
	expect_call(_metadata, 6, 3, 199, true);
	/* The same size is the regions themselves; a size of 0 is refused. */
	ASSERT_EQ(0, dmrepl_resync_ask_theirs(&r, 7, FK_REGIONS, 128, 128, big, 2, &asked));
	EXPECT_EQ(2U, asked);
	ASSERT_EQ(-EINVAL, dmrepl_resync_ask_theirs(&r, 7, FK_REGIONS, 128, 0, big, 2, &asked));
	fk_teardown(&r);
}

TEST(what_cannot_be_asked_is_refused_and_queues_nothing)
{
	static const __u64 ok[] = { 1, 199 }, past[] = { 5, 200 };
	struct dmrepl_resync r;

	fk_setup(&r);
	/* A region at or past nr_regions: none of the call's is taken. */
	ASSERT_EQ(-EINVAL, dmrepl_resync_ask(&r, 3, FK_REGIONS, past, 2));
	EXPECT_EQ(0U, r.asked_left);
	ASSERT_EQ(0, dmrepl_resync_ask(&r, 3, FK_REGIONS, ok, 2));
	EXPECT_EQ(2U, r.asked_left);
	/* Past a smaller size, even when it was asked before at a larger one. */
	ASSERT_EQ(-EINVAL, dmrepl_resync_ask(&r, 3, FK_REGIONS - 1, &ok[1], 1));
	EXPECT_EQ(2U, r.asked_left);
	/* Volume 64, or no region at all. */
	ASSERT_EQ(-EINVAL, dmrepl_resync_ask(&r, DM_REPL_MAX_VOLUMES, FK_REGIONS, ok, 1));
	ASSERT_EQ(-EINVAL, dmrepl_resync_ask(&r, 0, 0, ok, 0));
	EXPECT_EQ(2U, r.asked_left);
	fk_teardown(&r);
}

TEST(asked_regions_go_first_even_clean_then_the_dirty_ones)
{
	static const __u64 v7[] = { 2 }, v3[] = { 150, 40 }, v0[] = { 199 };
	struct dmrepl_resync r;

	fk_setup(&r);
	ASSERT_EQ(0, dmrepl_resync_ask(&r, 7, FK_REGIONS, v7, 1));
	ASSERT_EQ(0, dmrepl_resync_ask(&r, 3, FK_REGIONS, v3, 2));
	ASSERT_EQ(0, dmrepl_resync_ask(&r, 0, FK_REGIONS, v0, 1));
	/* In order of volume index, then of region; each with ANY. */
	ASSERT_EQ(3, dmrepl_resync_step(&r, 3, 50));
	EXPECT_EQ(1U, r.asked_left);
	expect_call(_metadata, 0, 0, 199, true);
	expect_call(_metadata, 1, 3, 40, true);
	expect_call(_metadata, 2, 3, 150, true);
	EXPECT_FALSE(r.ended);
	/* Region 150 went as asked: only 10 is left dirty, and it ends the resync. */
	ASSERT_EQ(2, dmrepl_resync_step(&r, 8, 50));
	EXPECT_EQ(0U, r.asked_left);
	ASSERT_EQ(5U, fk.ncalls);
	expect_call(_metadata, 3, 7, 2, true);
	expect_call(_metadata, 4, 3, 10, false);
	EXPECT_EQ(0U, fk.info.volumes[1].dirty_regions);
	EXPECT_TRUE(r.ended);
	EXPECT_EQ(5U, r.regions);
	EXPECT_EQ(5U * 128 * 512, r.bytes);
	fk_teardown(&r);
}

TEST(asked_regions_go_though_the_group_is_not_behind)
{
	static const __u64 asked[] = { 0 };
	struct dmrepl_resync r;

	fk_setup(&r);
	fk.info.state = DM_REPL_STATE_UPTODATE;
	ASSERT_EQ(0, dmrepl_resync_step(&r, 8, 50));
	ASSERT_EQ(0U, fk.ncalls);
	/* A rejoining replica with nothing of its own asks for region 0. */
	ASSERT_EQ(0, dmrepl_resync_ask(&r, 0, FK_REGIONS, asked, 1));
	ASSERT_EQ(1, dmrepl_resync_step(&r, 8, 50));
	ASSERT_EQ(1U, fk.ncalls);
	expect_call(_metadata, 0, 0, 0, true);
	fk_teardown(&r);
}

TEST(asked_regions_wait_for_room_and_for_a_ring_under_its_fill)
{
	static const __u64 asked[] = { 5, 6 };
	struct dmrepl_resync r;

	fk_setup(&r);
	ASSERT_EQ(0, dmrepl_resync_ask(&r, 0, FK_REGIONS, asked, 2));
	fk.room = 0;
	ASSERT_EQ(0, dmrepl_resync_step(&r, 8, 50));
	EXPECT_EQ(2U, r.asked_left);
	fk.info.producer_pos = fk.info.data_size * 6 / 10;
	fk.room = -1;
	fk.ncalls = 0;
	ASSERT_EQ(0, dmrepl_resync_step(&r, 8, 50));
	EXPECT_EQ(0U, fk.ncalls);
	fk.info.released_pos = fk.info.producer_pos;
	fk.room = 1;
	ASSERT_EQ(1, dmrepl_resync_step(&r, 8, 50));
	expect_call(_metadata, 0, 0, 5, true);
	EXPECT_EQ(1U, r.asked_left);
	fk.room = -1;
	ASSERT_EQ(3, dmrepl_resync_step(&r, 8, 50));
	EXPECT_EQ(0U, r.asked_left);
	/* Region 6 was tried once with no room, and again now. */
	ASSERT_EQ(5U, fk.ncalls);
	expect_call(_metadata, 1, 0, 6, true);
	expect_call(_metadata, 2, 0, 6, true);
	expect_call(_metadata, 3, 3, 10, false);
	expect_call(_metadata, 4, 3, 150, false);
	fk_teardown(&r);
}

TEST(asked_regions_of_a_volume_gone_or_shrunk_are_dropped)
{
	static const __u64 asked[] = { 1, 2 }, last[] = { 199 };
	struct dmrepl_resync r;

	fk_setup(&r);
	fk.info.state = DM_REPL_STATE_UPTODATE;
	ASSERT_EQ(0, dmrepl_resync_ask(&r, 7, FK_REGIONS, asked, 2));
	ASSERT_EQ(0, dmrepl_resync_ask(&r, 0, FK_REGIONS, last, 1));
	/* Volume 7 left the group; volume 0 is now 100 regions. */
	fk.info.nr_volumes = 2;
	fk.info.volumes[0].nr_regions = 100;
	ASSERT_LE(0, dmrepl_resync_step(&r, 8, 50));
	EXPECT_EQ(0U, r.asked_left);
	/* Volume 0's was tried (the kernel said EINVAL), volume 7's never. */
	ASSERT_EQ(1U, fk.ncalls);
	expect_call(_metadata, 0, 0, 199, true);
	EXPECT_EQ(0U, r.regions);
	fk_teardown(&r);
}

TEST(only_a_primary_resyncs)
{
	static const __u64 asked[] = { 1 };
	struct dmrepl_resync r;

	fk_setup(&r);
	fk.info.role = DM_REPL_ROLE_SECONDARY;
	ASSERT_EQ(0, dmrepl_resync_ask(&r, 0, FK_REGIONS, asked, 1));
	ASSERT_EQ(-EPERM, dmrepl_resync_step(&r, 8, 50));
	EXPECT_EQ(0U, fk.ncalls);
	EXPECT_EQ(1U, r.asked_left);
	fk_teardown(&r);
}

/*
 * A replica larger than its primary: which of its dirty regions reach past
 * the primary's end (8 sectors a region, a replica of 100 sectors: 13
 * regions, the last one 4 sectors).
 */
TEST(dirty_regions_past_the_primary_end)
{
	unsigned long bits[1] = { 0 };

	bits[0] = 1UL << 3 | 1UL << 9;
	/* The primary as large: nothing is past it. */
	EXPECT_EQ(13U, dmrepl_dirty_past(bits, 13, 8, 100, 100));
	/* Its end at 80, a region's end: region 9 ([72, 80)) is not past. */
	EXPECT_EQ(13U, dmrepl_dirty_past(bits, 13, 8, 100, 80));
	/* Its end at 76: region 9 straddles it. */
	EXPECT_EQ(9U, dmrepl_dirty_past(bits, 13, 8, 100, 76));
	/* Its end at 20: region 3 ([24, 32)) is wholly past. */
	EXPECT_EQ(3U, dmrepl_dirty_past(bits, 13, 8, 100, 20));
	/* The replica's last, partial region ([96, 100)). */
	bits[0] = 1UL << 12;
	EXPECT_EQ(12U, dmrepl_dirty_past(bits, 13, 8, 100, 98));
	EXPECT_EQ(13U, dmrepl_dirty_past(bits, 13, 8, 100, 100));
}

TEST_HARNESS_MAIN
