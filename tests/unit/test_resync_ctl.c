// SPDX-License-Identifier: GPL-2.0
/*
 * The resync controller (userspace/lib/resync_ctl.c) against a simulated
 * link: a queue in front of a link of a fixed rate, fed by a stream of a
 * fixed rate and by the regions the controller lets through. The stream's
 * lag is the queue's age: what waits in it over the link's rate.
 */
#include <stdlib.h>
#include <string.h>

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

TEST_HARNESS_MAIN
