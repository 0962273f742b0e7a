// SPDX-License-Identifier: GPL-2.0
/*
 * The resync controller (userspace/lib/resync_ctl.c) against a simulated
 * link: a queue in front of a link of a fixed rate, fed by a stream of a
 * fixed rate and by the regions the controller lets through. What the link
 * sent is acknowledged (at once, or a batch at a time); the backlog is what
 * was queued and not acknowledged, and the stream's lag is the backlog over
 * the link's rate: what a write captured now waits behind. The controller
 * is told at each step and whenever the backlog runs dry (an ack that frees
 * it all wakes repld), as repld tells it.
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
	double batch;		/* bytes an ack frees at once, 0: every byte sent */
	double queue;		/* bytes waiting for the link */
	double sent;		/* bytes the link sent, ever */
	double acked;		/* bytes acknowledged, ever */
	__u64 extra_lag;	/* ns of lag of the replica's own (a slow apply) */
	bool no_resync;		/* the controller is told, never asked */
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

static double sim_backlog(const struct sim *s)
{
	return s->queue + s->sent - s->acked;
}

/* The lag a write captured now would have, in seconds. */
static double sim_lag(const struct sim *s)
{
	return sim_backlog(s) / s->link + (double)s->extra_lag / 1e9;
}

/* repld's turn at time t: tell the controller, put in what it lets go. */
static double sim_turn(struct sim *s, __u64 t)
{
	double put = 0;

	dmrepl_resync_ctl_update(&s->c, t, (__u64)(sim_lag(s) * 1e9), (__u64)sim_backlog(s),
				 (__u64)s->acked);
	while (!s->no_resync && dmrepl_resync_ctl_may(&s->c)) {
		dmrepl_resync_ctl_spend(&s->c, REGION);
		put += REGION;
	}
	s->queue += put;
	s->resync += put;
	return put;
}

/* The link sends for ns; its acks come a batch at a time, or a partial one once it idles. */
static void sim_send(struct sim *s, double ns)
{
	double n = s->link * ns / 1e9;

	if (n > s->queue)
		n = s->queue;
	s->queue -= n;
	s->sent += n;
	if (!s->batch || s->queue <= 0)
		s->acked = s->sent;
	else
		while (s->sent - s->acked >= s->batch)
			s->acked += s->batch;
}

/* One step of 10 ms; returns the bytes the resync put in. */
static double sim_step(struct sim *s)
{
	double lag, put, left = STEP_NS, dry;

	s->queue += s->stream * STEP_NS / 1e9;
	lag = sim_lag(s);
	put = sim_turn(s, s->now);
	/* A backlog that runs dry within the step: repld's turn then. */
	while (s->queue > 0 && (dry = s->queue / s->link * 1e9) < left) {
		sim_send(s, dry);
		left -= dry;
		put += sim_turn(s, s->now + STEP_NS - (__u64)left);
	}
	sim_send(s, left);
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

/*
 * The benchmark's case (Documentation/benchmarks.md): an 8 Mbit link, a
 * stream of a quarter of it, a 1 s target; from the first step on.
 */
static void sim_bench(struct __test_metadata *_metadata, double batch)
{
	static struct sim s;
	const double link = 0.96e6, left = 0.75 * link;

	sim_init(&s, link, 0.25 * link, 0);
	s.batch = batch;
	sim_run(&s, 60);
	TH_LOG("batch %.0f KiB: resync %.3f MB/s of %.3f left (%.2fx), lag p99 %.2f s, "
	       "max %.2f s, drain %.3f MB/s", batch / 1024, s.resync / 60 / 1e6, left / 1e6,
	       s.resync / 60 / left, sim_lag_p99(&s), s.lag_max,
	       dmrepl_resync_ctl_drain(&s.c) / 1e6);
	EXPECT_GE(s.resync / 60, 0.8 * left);
	EXPECT_LT(s.lag_max, 1.0);
	EXPECT_EQ(0ULL, s.c.lag_holds);
}

TEST(it_takes_most_of_what_the_stream_leaves_and_keeps_the_lag_under_the_target)
{
	sim_bench(_metadata, 0);
}

TEST(acks_of_whole_batches_measure_the_link_as_well)
{
	sim_bench(_metadata, 256 << 10);
}

TEST(it_takes_most_of_a_fast_link_the_stream_leaves)
{
	static struct sim s;

	sim_init(&s, 10 * MIB, 3 * MIB, 0);
	sim_run(&s, 20);
	sim_reset_stats(&s);
	sim_run(&s, 60);
	TH_LOG("resync %.2f MiB/s of 7 left, lag p99 %.2f s, max %.2f s",
	       s.resync / 60 / MIB, sim_lag_p99(&s), s.lag_max);
	EXPECT_GE(s.resync / 60, 0.8 * 7 * MIB);
	EXPECT_LT(s.lag_max, 1.0);
}

TEST(it_backs_off_when_the_stream_takes_the_link)
{
	static struct sim s;
	char why[80];

	sim_init(&s, 10 * MIB, 5 * MIB, 0);
	sim_run(&s, 20);
	s.stream = 9.5 * MIB;
	sim_run(&s, 10);
	sim_reset_stats(&s);
	sim_run(&s, 30);
	TH_LOG("resync %.2f MiB/s of 0.5 left, lag p99 %.2f s, max %.2f s, drain %.2f MiB/s",
	       s.resync / 30 / MIB, sim_lag_p99(&s), s.lag_max,
	       dmrepl_resync_ctl_drain(&s.c) / MIB);
	/* What is left, give or take the floor. */
	EXPECT_LE(s.resync / 30, 0.5 * MIB + DMREPL_RESYNC_MIN_RATE);
	EXPECT_GE(s.resync / 30, 0.8 * 0.5 * MIB);
	EXPECT_LT(s.lag_max, 1.0);
	/* Held for the backlog, the drain measured right. */
	EXPECT_GT(s.c.waits, 0ULL);
	EXPECT_GT(dmrepl_resync_ctl_drain(&s.c), 0.9 * 10 * MIB);
	EXPECT_LT(dmrepl_resync_ctl_drain(&s.c), 1.1 * 10 * MIB);
	s.c.why = DMREPL_RESYNC_BACKLOG;
	EXPECT_EQ(0, strncmp("backlog ", dmrepl_resync_ctl_why(&s.c, why, sizeof(why)), 8))
		TH_LOG("%s", why);
}

TEST(an_idle_links_acks_are_not_its_capacity)
{
	static struct sim s;

	/*
	 * The stream alone, a tenth of the link: acks of 1 MiB/s, but each
	 * backlog drained at the link's rate, and that is the drain.
	 */
	sim_init(&s, 10 * MIB, 1 * MIB, 0);
	s.no_resync = true;
	sim_run(&s, 10);
	TH_LOG("drain %.2f MiB/s", dmrepl_resync_ctl_drain(&s.c) / MIB);
	EXPECT_GT(dmrepl_resync_ctl_drain(&s.c), 0.9 * 10 * MIB);
	EXPECT_LT(dmrepl_resync_ctl_drain(&s.c), 1.1 * 10 * MIB);
}

TEST(a_lag_past_the_target_holds_it_and_the_floor_still_ends_it)
{
	static struct sim s;
	char why[80];

	/* The replica applies slowly: a lag of its own, whatever the link. */
	sim_init(&s, 10 * MIB, 1 * MIB, 0);
	s.extra_lag = 5 * SEC_NS;
	sim_run(&s, 60);
	TH_LOG("resync %.3f MiB/s, floor %.3f", s.resync / 60 / MIB,
	       (double)DMREPL_RESYNC_MIN_RATE / MIB);
	EXPECT_GE(s.resync, 0.9 * 60 * DMREPL_RESYNC_MIN_RATE);
	EXPECT_LE(s.resync, 1.1 * 60 * DMREPL_RESYNC_MIN_RATE + REGION);
	EXPECT_EQ(1ULL, s.c.lag_holds);
	EXPECT_EQ((int)DMREPL_RESYNC_LAG, (int)s.c.why);
	EXPECT_STREQ("stream lag 5.0 s > 1.0 s", dmrepl_resync_ctl_why(&s.c, why, sizeof(why)));
	EXPECT_EQ((double)DMREPL_RESYNC_MIN_RATE, s.c.budget);
	/* Held, it wakes when the floor has a token again. */
	EXPECT_GT(dmrepl_resync_ctl_next_ns(&s.c), s.c.last_ns);
}

TEST(a_link_the_stream_fills_still_lets_the_resync_through_at_its_floor)
{
	static struct sim s;

	sim_init(&s, 10 * MIB, 10 * MIB, 0);
	sim_run(&s, 20);
	sim_reset_stats(&s);
	sim_run(&s, 60);
	TH_LOG("resync %.3f MiB/s, lag max %.2f s", s.resync / 60 / MIB, s.lag_max);
	EXPECT_GE(s.resync, 0.9 * 60 * DMREPL_RESYNC_MIN_RATE);
	EXPECT_LE(s.resync, 1.1 * 60 * DMREPL_RESYNC_MIN_RATE + REGION);
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
		/* A second's worth, a tick's bucket, the region past it. */
		EXPECT_LE(in_sec, limit + limit / 10 + REGION) TH_LOG("second %u", sec);
		if (sec >= 2)
			EXPECT_GE(in_sec, limit - REGION) TH_LOG("second %u", sec);
	}
	EXPECT_GT(s.c.rate_waits, 0ULL);
	EXPECT_STREQ("rate limit 2.0 MiB/s", dmrepl_resync_ctl_why(&s.c, why, sizeof(why)));
	EXPECT_EQ(limit, s.c.budget);
	EXPECT_GT(dmrepl_resync_ctl_next_ns(&s.c), s.c.last_ns);
}

TEST(the_rate_limit_holds_the_floor_too)
{
	static struct sim s;
	const double limit = 16 << 10;

	sim_init(&s, 10 * MIB, 10 * MIB, (__u64)limit);
	s.extra_lag = 5 * SEC_NS;
	sim_run(&s, 60);
	EXPECT_LE(s.resync, 60 * limit + limit / 10 + REGION);
	EXPECT_GE(s.resync, 60 * limit - REGION);
}

TEST(with_no_backlog_a_region_goes_whatever_was_measured)
{
	struct dmrepl_resync_ctl c;
	char why[80];

	dmrepl_resync_ctl_init(&c, 0, SEC_NS, SEC_NS);
	/* Nothing measured, nothing queued: it goes. */
	EXPECT_TRUE(dmrepl_resync_ctl_may(&c));
	dmrepl_resync_ctl_spend(&c, REGION);
	/* Now a backlog, and still no drain measured: held, and said so. */
	EXPECT_FALSE(dmrepl_resync_ctl_may(&c));
	EXPECT_STREQ("backlog 0.1 MiB, drain rate not measured yet",
		     dmrepl_resync_ctl_why(&c, why, sizeof(why)));
	/* An ack wakes it, or the floor's next token. */
	EXPECT_EQ(SEC_NS + 1, dmrepl_resync_ctl_next_ns(&c));
	/* A slow link: 4 KiB acknowledged in 1 s of backlog. */
	dmrepl_resync_ctl_update(&c, 2 * SEC_NS, 0, REGION - 4096, 4096);
	EXPECT_EQ(4096.0, dmrepl_resync_ctl_drain(&c));
	c.floor_tokens = -1e12;
	EXPECT_FALSE(dmrepl_resync_ctl_may(&c));
	EXPECT_EQ((int)DMREPL_RESYNC_BACKLOG, (int)c.why);
	EXPECT_STREQ("backlog 0.1 MiB drains in 31.0 s > 0.8 s",
		     dmrepl_resync_ctl_why(&c, why, sizeof(why)));
	/* All acknowledged: the link idles, a region goes though it would take 16 s. */
	dmrepl_resync_ctl_update(&c, 3 * SEC_NS, 0, 0, REGION);
	EXPECT_TRUE(dmrepl_resync_ctl_may(&c));
	EXPECT_EQ((int)DMREPL_RESYNC_FREE, (int)c.why);
	EXPECT_EQ(0ULL, dmrepl_resync_ctl_next_ns(&c));
}

TEST(a_pause_in_the_resync_is_not_a_slow_link)
{
	struct dmrepl_resync_ctl c;

	dmrepl_resync_ctl_init(&c, 0, SEC_NS, SEC_NS);
	dmrepl_resync_ctl_update(&c, SEC_NS, 0, 4 << 20, 0);
	dmrepl_resync_ctl_update(&c, 2 * SEC_NS, 0, 3 << 20, 1 << 20);
	EXPECT_EQ(1.0 * (1 << 20), dmrepl_resync_ctl_drain(&c));
	/* Told again a minute later (no resync meanwhile): not a sample. */
	dmrepl_resync_ctl_pause(&c);
	dmrepl_resync_ctl_update(&c, 62 * SEC_NS, 0, 3 << 20, 2 << 20);
	EXPECT_EQ(1.0 * (1 << 20), dmrepl_resync_ctl_drain(&c));
	/* A second of backlog without an ack: the drain is seen to slow. */
	dmrepl_resync_ctl_update(&c, 63 * SEC_NS, 0, 3 << 20, 2 << 20);
	EXPECT_EQ(0.5 * (1 << 20), dmrepl_resync_ctl_drain(&c));
}

TEST(acks_seconds_apart_during_a_resync_measure_a_slow_link)
{
	struct dmrepl_resync_ctl c;

	dmrepl_resync_ctl_init(&c, 0, 10 * SEC_NS, SEC_NS);
	dmrepl_resync_ctl_update(&c, SEC_NS, 0, 8 << 20, 0);
	/* A 4 MiB batch acknowledged 4 s later: 1 MiB/s, not unknown. */
	dmrepl_resync_ctl_update(&c, 5 * SEC_NS, 0, 4 << 20, 4 << 20);
	EXPECT_EQ(1.0 * (1 << 20), dmrepl_resync_ctl_drain(&c));
	dmrepl_resync_ctl_update(&c, 9 * SEC_NS, 0, 4 << 20, 8 << 20);
	EXPECT_EQ(1.0 * (1 << 20), dmrepl_resync_ctl_drain(&c));
}

/* ---- the resync over a fake kernel ------------------------------------ */

#define FK_REGIONS	200	/* regions of each volume */
#define FK_CALLS	64

/*
 * A primary group as DM_REPL_IOC_GROUP_INFO, _GET_BITMAP and _RESYNC see it:
 * volumes of FK_REGIONS regions, their dirty bits, and a log of the RESYNC
 * calls. A RESYNC of a dirty region (or of any, with RESYNCF_ANY) puts one
 * record in and cleans the region; of a volume index the group does not
 * have, ENOENT; of a region past its end, EINVAL; of a volume in held,
 * EAGAIN (the info says so, or not yet); with room 0, ENOSPC.
 * The one that leaves a group behind with no dirty region says END, and the
 * group is up to date.
 */
static struct fake_kernel {
	int fd;
	struct dm_repl_group_info info;
	unsigned long bits[DM_REPL_MAX_VOLUMES][FK_REGIONS / (8 * sizeof(long)) + 1];
	int room;			/* RESYNCs taken before ENOSPC; -1: no end */
	__u64 held;			/* bit N: volume N's RESYNCs refused (EAGAIN) */
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
	if ((fk.held >> req->volume) & 1) {
		errno = EAGAIN;
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

/* Volume 3's resync held, as the kernel's info says it and as its RESYNC does. */
static void fk_hold(__u64 held)
{
	fk.held = held;
	fk.info.resync_held_volumes = held;
}

/* Region 5 of volume 7 dirty too. */
static void fk_dirty_7(void)
{
	fk.bits[7][0] = 1UL << 5;
	fk.info.volumes[2].dirty_regions = 1;
}

TEST(a_held_volumes_regions_wait_and_the_others_go)
{
	static const __u64 v3[] = { 2 }, v0[] = { 4 };
	struct dmrepl_resync r;

	fk_setup(&r);
	fk_dirty_7();
	fk_hold(1ULL << 3);
	ASSERT_EQ(0, dmrepl_resync_ask(&r, 3, FK_REGIONS, v3, 1));
	ASSERT_EQ(0, dmrepl_resync_ask(&r, 0, FK_REGIONS, v0, 1));
	/* Volume 0's asked region, volume 7's dirty one; no end while 3 waits. */
	ASSERT_EQ(2, dmrepl_resync_step(&r, 8, 50));
	ASSERT_EQ(2U, fk.ncalls);
	expect_call(_metadata, 0, 0, 4, true);
	expect_call(_metadata, 1, 7, 5, false);
	EXPECT_EQ(1U, r.asked_left);
	ASSERT_EQ(0, dmrepl_resync_step(&r, 8, 50));
	EXPECT_EQ(2U, fk.ncalls);
	/* The hold ends: volume 3's asked region, then its dirty ones, the last the end. */
	fk_hold(0);
	ASSERT_EQ(3, dmrepl_resync_step(&r, 8, 50));
	ASSERT_EQ(5U, fk.ncalls);
	expect_call(_metadata, 2, 3, 2, true);
	expect_call(_metadata, 3, 3, 10, false);
	expect_call(_metadata, 4, 3, 150, false);
	EXPECT_TRUE(r.ended);
	fk_teardown(&r);
}

TEST(a_hold_the_info_did_not_show_yet_skips_to_the_next_volume)
{
	struct dmrepl_resync r;

	fk_setup(&r);
	fk_dirty_7();
	fk.held = 1ULL << 3;
	ASSERT_EQ(1, dmrepl_resync_step(&r, 8, 50));
	ASSERT_EQ(2U, fk.ncalls);
	expect_call(_metadata, 0, 3, 10, false);
	expect_call(_metadata, 1, 7, 5, false);
	fk_teardown(&r);
}

TEST(the_end_goes_by_a_volume_not_held_and_waits_if_all_are)
{
	struct dmrepl_resync r;

	fk_setup(&r);
	/* Behind with nothing dirty: a clean region carries the end. */
	memset(fk.bits, 0, sizeof(fk.bits));
	fk.info.volumes[1].dirty_regions = 0;
	fk_hold(1ULL << 0 | 1ULL << 3 | 1ULL << 7);
	ASSERT_EQ(0, dmrepl_resync_step(&r, 8, 50));
	EXPECT_EQ(0U, fk.ncalls);
	fk_hold(1ULL << 0);
	ASSERT_EQ(1, dmrepl_resync_step(&r, 8, 50));
	ASSERT_EQ(1U, fk.ncalls);
	expect_call(_metadata, 0, 3, 0, true);
	EXPECT_TRUE(r.ended);
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

/* Why a primary is behind, as status shows it. */
TEST(behind_reasons_are_words_in_bit_order_and_cut_short_visibly)
{
	char buf[64], tiny[12];

	EXPECT_STREQ("-", dmrepl_behind_reasons(0, buf, sizeof(buf)));
	EXPECT_STREQ("overflow", dmrepl_behind_reasons(DM_REPL_BEHIND_OVERFLOW, buf, sizeof(buf)));
	EXPECT_STREQ("loaded-dirty,crash",
		     dmrepl_behind_reasons(DM_REPL_BEHIND_CRASH | DM_REPL_BEHIND_LOADED,
					   buf, sizeof(buf)));
	EXPECT_STREQ("grown,resync-failed,bit-31",
		     dmrepl_behind_reasons(DM_REPL_BEHIND_GROWN | DM_REPL_BEHIND_RESYNC_FAILED |
					   1U << 31, buf, sizeof(buf)));
	EXPECT_STREQ("overflow...",
		     dmrepl_behind_reasons(DM_REPL_BEHIND_OVERFLOW | DM_REPL_BEHIND_FAILED_WRITE,
					   tiny, sizeof(tiny)));
}

TEST_HARNESS_MAIN
