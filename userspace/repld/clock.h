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

#endif /* REPLD_CLOCK_H */
