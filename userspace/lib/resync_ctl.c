// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The resync's share of the link (see dmrepl.h): a token bucket whose rate
 * follows the stream's lag. Simpler than DRBD's c-plan-ahead controller:
 * one knob (the lag the stream may have) and an optional ceiling.
 */
#include <stdio.h>
#include <string.h>

#include "dmrepl.h"

#define NS_PER_S 1e9
#define TICK_NS ((__u64)DMREPL_RESYNC_TICK_MS * 1000000ULL)

/* The budget within its floor and the rate limit (which wins). */
static double bounded(const struct dmrepl_resync_ctl *c, double budget)
{
	if (budget < (double)DMREPL_RESYNC_MIN_RATE)
		budget = (double)DMREPL_RESYNC_MIN_RATE;
	if (c->rate_max && budget > (double)c->rate_max)
		budget = (double)c->rate_max;
	return budget;
}

/* A tick's worth of the budget: the most the bucket holds. */
static void clamp_tokens(struct dmrepl_resync_ctl *c)
{
	double cap = c->budget * DMREPL_RESYNC_TICK_MS / 1000.0;

	if (c->tokens > cap)
		c->tokens = cap;
}

void dmrepl_resync_ctl_init(struct dmrepl_resync_ctl *c, __u64 rate_max, __u64 lag_target_ns,
			    __u64 now_ns)
{
	memset(c, 0, sizeof(*c));
	c->rate_max = rate_max;
	c->lag_target_ns = lag_target_ns;
	c->budget = bounded(c, (double)DMREPL_RESYNC_START_RATE);
	c->used = c->budget;
	c->last_ns = c->tick_ns = now_ns;
}

static bool lag_high(const struct dmrepl_resync_ctl *c)
{
	return c->lag_ns > c->lag_target_ns;
}

/* Past the target: half of what it took lately, once a target's time. */
static void cut(struct dmrepl_resync_ctl *c, __u64 now)
{
	double took = c->used < c->budget ? c->used : c->budget;

	if (c->cuts && now - c->cut_ns < c->lag_target_ns)
		return;
	c->budget = bounded(c, took / 2);
	clamp_tokens(c);
	c->cut_ns = now;
	c->cuts++;
	c->tick_ns = now;
	c->spent = 0;
}

/* A tick ended: grow if the lag is low and the budget was used. */
static void tick(struct dmrepl_resync_ctl *c, __u64 now)
{
	double secs = (double)(now - c->tick_ns) / NS_PER_S;
	double rate = c->spent / secs;

	c->used = (c->used + rate) / 2;
	if (c->lag_ns * 2 < c->lag_target_ns && c->spent * 2 >= c->budget * secs)
		c->budget = bounded(c, c->budget + c->budget / 8);
	c->tick_ns = now;
	c->spent = 0;
}

void dmrepl_resync_ctl_update(struct dmrepl_resync_ctl *c, __u64 now_ns, __u64 lag_ns)
{
	c->lag_ns = lag_ns;
	if (now_ns > c->last_ns) {
		c->tokens += c->budget * (double)(now_ns - c->last_ns) / NS_PER_S;
		clamp_tokens(c);
		c->last_ns = now_ns;
	}
	if (lag_high(c))
		cut(c, now_ns);
	else if (now_ns - c->tick_ns >= TICK_NS)
		tick(c, now_ns);
}

bool dmrepl_resync_ctl_may(struct dmrepl_resync_ctl *c)
{
	if (c->tokens > 0) {
		c->why = DMREPL_RESYNC_FREE;
		return true;
	}
	if (lag_high(c))
		c->why = DMREPL_RESYNC_LAG;
	else if (c->rate_max && c->budget >= (double)c->rate_max)
		c->why = DMREPL_RESYNC_RATE;
	else
		c->why = DMREPL_RESYNC_BUDGET;
	c->waits++;
	if (c->why == DMREPL_RESYNC_RATE)
		c->rate_waits++;
	return false;
}

void dmrepl_resync_ctl_spend(struct dmrepl_resync_ctl *c, __u64 bytes)
{
	c->tokens -= (double)bytes;
	c->spent += (double)bytes;
}

__u64 dmrepl_resync_ctl_next_ns(const struct dmrepl_resync_ctl *c)
{
	if (c->tokens > 0)
		return 0;
	return c->last_ns + (__u64)(-c->tokens * NS_PER_S / c->budget) + 1;
}

const char *dmrepl_resync_ctl_why(const struct dmrepl_resync_ctl *c, char *buf, size_t len)
{
	double lag = (double)c->lag_ns / NS_PER_S, target = (double)c->lag_target_ns / NS_PER_S;

	switch (c->why) {
	case DMREPL_RESYNC_LAG:
		snprintf(buf, len, "stream lag %.1f s > %.1f s", lag, target);
		break;
	case DMREPL_RESYNC_RATE:
		snprintf(buf, len, "rate limit %.1f MiB/s", (double)c->rate_max / (1 << 20));
		break;
	case DMREPL_RESYNC_BUDGET:
		snprintf(buf, len, "budget %.1f MiB/s spent (stream lag %.1f s)",
			 c->budget / (1 << 20), lag);
		break;
	default:
		snprintf(buf, len, "-");
	}
	return buf;
}
