// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The resync's share of the link (see dmrepl.h): a region goes while the
 * backlog it joins would drain within a share of the lag target, at the
 * drain rate acknowledgements showed while a backlog existed. One knob
 * (the lag the stream may have), an optional ceiling, and a floor.
 */
#include <stdio.h>
#include <string.h>

#include "dmrepl.h"

#define NS_PER_S 1e9
#define TICK_S (DMREPL_RESYNC_TICK_MS / 1000.0)
#define TAU_NS (DMREPL_RESYNC_DRAIN_TAU_MS * 1e6)

void dmrepl_resync_ctl_init(struct dmrepl_resync_ctl *c, __u64 rate_max, __u64 lag_target_ns,
			    __u64 now_ns)
{
	memset(c, 0, sizeof(*c));
	c->rate_max = rate_max;
	c->lag_target_ns = lag_target_ns;
	c->last_ns = now_ns;
}

/* A bucket filled at rate for secs, holding at most a tick's worth. */
static void refill(double *tokens, double rate, double secs)
{
	*tokens += rate * secs;
	if (*tokens > rate * TICK_S)
		*tokens = rate * TICK_S;
}

/*
 * Bytes acknowledged over the time a backlog existed, folded in at each
 * acknowledgement: a sample is the bytes it freed over the time with a
 * backlog since the one before, so acknowledgements of whole batches, far
 * apart, still measure the link. Older samples weigh less by their age in
 * busy time (a first-order decay of DMREPL_RESYNC_DRAIN_TAU_MS).
 */
static void measure(struct dmrepl_resync_ctl *c, __u64 dt, __u64 acked)
{
	__u64 freed = acked > c->acked ? acked - c->acked : 0;
	double keep;

	/* With no backlog at the last look, the link may have idled. */
	if (!c->backlog)
		return;
	c->busy_ns += dt;
	if (!freed || !c->busy_ns)
		return;
	keep = TAU_NS / (TAU_NS + (double)c->busy_ns);
	c->drain_bytes = c->drain_bytes * keep + (double)freed;
	c->drain_ns = c->drain_ns * keep + (double)c->busy_ns;
	c->busy_ns = 0;
}

void dmrepl_resync_ctl_update(struct dmrepl_resync_ctl *c, __u64 now_ns, __u64 lag_ns,
			      __u64 backlog, __u64 acked)
{
	if (now_ns > c->last_ns) {
		double secs = (double)(now_ns - c->last_ns) / NS_PER_S;

		if (c->rate_max)
			refill(&c->tokens, (double)c->rate_max, secs);
		refill(&c->floor_tokens, (double)DMREPL_RESYNC_MIN_RATE, secs);
		if (!c->paused)
			measure(c, now_ns - c->last_ns, acked);
		c->last_ns = now_ns;
	}
	c->paused = false;
	if (acked > c->acked)
		c->acked = acked;
	c->backlog = backlog;
	c->lag_ns = lag_ns;
	if (lag_ns > c->lag_target_ns && !c->lag_high)
		c->lag_holds++;
	c->lag_high = lag_ns > c->lag_target_ns;
}

void dmrepl_resync_ctl_pause(struct dmrepl_resync_ctl *c)
{
	c->paused = true;
	c->busy_ns = 0;
}

/*
 * The time with a backlog since the last acknowledgement counts as
 * having freed nothing yet: a link that stalls is seen to slow down
 * before its next acknowledgement comes.
 */
double dmrepl_resync_ctl_drain(const struct dmrepl_resync_ctl *c)
{
	double ns = c->drain_ns + (double)c->busy_ns;

	return c->drain_bytes > 0 && ns > 0 ? c->drain_bytes * NS_PER_S / ns : 0;
}

/*
 * Would a region joining the backlog now drain within the target's share?
 * DMREPL_RESYNC_PREDICT_PCT (3/4) and not the whole target: the stream's
 * records captured after the region queue behind it too, acknowledgements
 * come a batch at a time, and the drain is an average; the observed lag
 * runs above the prediction by that much, and a quarter of the target is
 * its margin before the safety (the observed lag) holds the resync.
 */
static bool predicted_ok(const struct dmrepl_resync_ctl *c, double drain)
{
	double secs = (double)(c->backlog + c->region) / drain;

	return secs * NS_PER_S * 100 < (double)c->lag_target_ns * DMREPL_RESYNC_PREDICT_PCT;
}

static double capped(const struct dmrepl_resync_ctl *c, double rate)
{
	return c->rate_max && rate > (double)c->rate_max ? (double)c->rate_max : rate;
}

static bool held(struct dmrepl_resync_ctl *c, enum dmrepl_resync_why why)
{
	c->why = why;
	c->waits++;
	if (why == DMREPL_RESYNC_RATE)
		c->rate_waits++;
	return false;
}

bool dmrepl_resync_ctl_may(struct dmrepl_resync_ctl *c)
{
	double drain = dmrepl_resync_ctl_drain(c);
	enum dmrepl_resync_why why;

	c->via_floor = false;
	if (c->rate_max && c->tokens <= 0) {
		c->budget = (double)c->rate_max;
		return held(c, DMREPL_RESYNC_RATE);
	}
	if (c->lag_high)
		why = DMREPL_RESYNC_LAG;
	else if (!c->backlog)
		why = DMREPL_RESYNC_FREE;
	else if (drain <= 0)
		why = DMREPL_RESYNC_UNMEASURED;
	else if (predicted_ok(c, drain))
		why = DMREPL_RESYNC_FREE;
	else
		why = DMREPL_RESYNC_BACKLOG;
	if (why == DMREPL_RESYNC_FREE) {
		c->budget = capped(c, drain > DMREPL_RESYNC_MIN_RATE ? drain :
				   (double)DMREPL_RESYNC_MIN_RATE);
		c->why = why;
		return true;
	}
	c->budget = capped(c, (double)DMREPL_RESYNC_MIN_RATE);
	if (c->floor_tokens > 0) {
		c->via_floor = true;
		c->why = DMREPL_RESYNC_FREE;
		return true;
	}
	return held(c, why);
}

void dmrepl_resync_ctl_spend(struct dmrepl_resync_ctl *c, __u64 bytes)
{
	if (c->rate_max)
		c->tokens -= (double)bytes;
	if (c->via_floor)
		c->floor_tokens -= (double)bytes;
	c->via_floor = false;
	c->backlog += bytes;
	c->region = bytes;
}

static __u64 refilled_ns(const struct dmrepl_resync_ctl *c, double tokens, double rate)
{
	return c->last_ns + (__u64)(-tokens * NS_PER_S / rate) + 1;
}

__u64 dmrepl_resync_ctl_next_ns(const struct dmrepl_resync_ctl *c)
{
	if (c->why == DMREPL_RESYNC_FREE)
		return 0;
	if (c->why == DMREPL_RESYNC_RATE)
		return refilled_ns(c, c->tokens, (double)c->rate_max);
	/* The lag or the backlog: an ack wakes it, the floor at the latest. */
	if (c->floor_tokens > 0)
		return 0;
	return refilled_ns(c, c->floor_tokens, (double)DMREPL_RESYNC_MIN_RATE);
}

const char *dmrepl_resync_ctl_why(const struct dmrepl_resync_ctl *c, char *buf, size_t len)
{
	double lag = (double)c->lag_ns / NS_PER_S, target = (double)c->lag_target_ns / NS_PER_S;
	double drain = dmrepl_resync_ctl_drain(c), backlog = (double)c->backlog / (1 << 20);

	switch (c->why) {
	case DMREPL_RESYNC_LAG:
		snprintf(buf, len, "stream lag %.1f s > %.1f s", lag, target);
		break;
	case DMREPL_RESYNC_RATE:
		snprintf(buf, len, "rate limit %.1f MiB/s", (double)c->rate_max / (1 << 20));
		break;
	case DMREPL_RESYNC_BACKLOG:
		snprintf(buf, len, "backlog %.1f MiB drains in %.1f s > %.1f s", backlog,
			 (double)(c->backlog + c->region) / drain,
			 target * DMREPL_RESYNC_PREDICT_PCT / 100);
		break;
	case DMREPL_RESYNC_UNMEASURED:
		snprintf(buf, len, "backlog %.1f MiB, drain rate not measured yet", backlog);
		break;
	default:
		snprintf(buf, len, "-");
	}
	return buf;
}
