/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The clock of repld's deadlines and of the link's (link.h). */
#ifndef REPLD_CLOCK_H
#define REPLD_CLOCK_H

#include <time.h>
#include <linux/types.h>

/* CLOCK_MONOTONIC in ns. */
static inline __u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
}

/* Nanoseconds since a CLOCK_REALTIME time (a record's capture), 0 for none. */
static inline __u64 age_ns(__u64 time_ns)
{
	struct timespec ts;
	__u64 now;

	if (!time_ns)
		return 0;
	clock_gettime(CLOCK_REALTIME, &ts);
	now = (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
	return now > time_ns ? now - time_ns : 0;
}

#endif /* REPLD_CLOCK_H */
