// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * probe: the measuring end of the two-guest benchmarks
 * (tests/bench/two-guests.sh, Documentation/benchmarks.md).
 *
 *   probe sink PORT             take one TCP connection, read it to its end,
 *                               print the bytes and the seconds they took
 *   probe send ADDR PORT SECS   write to ADDR:PORT for SECS seconds, then
 *                               wait until the sink has read it all
 *   probe lag GROUP SECS        replication lag of a primary group, record
 *                               by record, from one clock: a record is
 *                               captured when the kernel's next_seq passes
 *                               it and durable on the replica when the ring
 *                               releases it (repld releases only what the
 *                               replica acknowledged as applied and
 *                               persisted)
 *   probe drain GROUP           seconds until the ring released the last
 *                               sequence captured when it started
 *
 * lag and drain read DM_REPL_IOC_GROUP_INFO every --interval-ms (10 by
 * default); a lag is known to within one interval either way.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dmrepl.h"

#define CHUNK		(64U << 10)
#define CONNECT_TRIES	100		/* 10 s, 100 ms apart */

static unsigned int interval_ms = 10;
static double drain_s = 60;		/* lag: the longest wait after SECS */
static const char *samples_path;	/* lag: every sample, for a look */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nap(void)
{
	struct timespec ts = { .tv_nsec = (long)interval_ms * 1000000L };

	nanosleep(&ts, NULL);
}

static int fail(const char *what)
{
	fprintf(stderr, "probe: %s: %s\n", what, strerror(errno));
	return 1;
}

/* ---- the raw link ----------------------------------------------------------- */

static int sink(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int one = 1, lfd, fd;
	unsigned long long bytes = 0;
	double start = 0;
	char *buf = malloc(CHUNK);
	ssize_t n;

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (!buf || lfd < 0)
		return fail("socket");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 1))
		return fail("bind");
	printf("listening on port %d\n", port);
	fflush(stdout);
	fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		return fail("accept");
	while ((n = read(fd, buf, CHUNK)) > 0) {
		if (!bytes)
			start = now_s();
		bytes += (unsigned long long)n;
	}
	if (n < 0)
		return fail("read");
	printf("sink %llu bytes %.3f s\n", bytes, now_s() - start);
	close(fd);
	close(lfd);
	free(buf);
	return 0;
}

static int dial(const char *addr, int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int i, fd;

	if (inet_pton(AF_INET, addr, &a.sin_addr) != 1) {
		fprintf(stderr, "probe: %s: not an IPv4 address\n", addr);
		return -1;
	}
	for (i = 0; i < CONNECT_TRIES; i++) {
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0)
			return -1;
		if (!connect(fd, (struct sockaddr *)&a, sizeof(a)))
			return fd;
		close(fd);
		usleep(100000);
	}
	return -1;
}

static int send_for(const char *addr, int port, double secs)
{
	unsigned long long bytes = 0;
	char *buf = malloc(CHUNK), c;
	double start, end;
	unsigned int i;
	ssize_t n;
	int fd;

	if (!buf)
		return fail("malloc");
	for (i = 0; i < CHUNK; i++)	/* TCP does not compress: any bytes will do */
		buf[i] = (char)(i * 2654435761U >> 24);
	fd = dial(addr, port);
	if (fd < 0)
		return fail("connect");
	start = now_s();
	end = start + secs;
	while (now_s() < end) {
		n = write(fd, buf, CHUNK);
		if (n < 0)
			return fail("write");
		bytes += (unsigned long long)n;
	}
	/* The sink closes once it read everything: the link's own pace. */
	shutdown(fd, SHUT_WR);
	while ((n = read(fd, &c, 1)) > 0)
		;
	printf("send %llu bytes %.3f s\n", bytes, now_s() - start);
	close(fd);
	free(buf);
	return 0;
}

/* ---- a group's ring ------------------------------------------------------- */

struct sample {
	double t;
	__u64 last;		/* next_seq - 1: captured up to here */
	__u64 released;		/* durable on the replica up to here */
};

static int look(int fd, struct sample *s)
{
	struct dm_repl_group_info info;
	char msg[DMREPL_ERRMSG_LEN];

	if (dmrepl_group_info(fd, &info, msg, sizeof(msg))) {
		fprintf(stderr, "probe: group info: %s\n", msg);
		return -1;
	}
	s->t = now_s();
	s->last = info.next_seq - 1;
	s->released = info.released_seq;
	return 0;
}

static int open_group(const char *group)
{
	struct dm_repl_group_info info;
	char msg[DMREPL_ERRMSG_LEN];
	int fd = dmrepl_group_open(group, O_RDONLY, &info, msg, sizeof(msg));

	if (fd < 0)
		fprintf(stderr, "probe: group %s: %s\n", group, msg);
	else if (info.role != DM_REPL_ROLE_PRIMARY) {
		fprintf(stderr, "probe: group %s is not a primary\n", group);
		close(fd);
		fd = -1;
	}
	return fd;
}

static int drain(const char *group, double timeout)
{
	struct sample s0, s;
	int fd = open_group(group);

	if (fd < 0 || look(fd, &s0))
		return 1;
	s = s0;
	while (s.released < s0.last && s.t - s0.t < timeout) {
		nap();
		if (look(fd, &s))
			return 1;
	}
	printf("drain %.3f s seq %llu released %llu\n", s.t - s0.t,
	       (unsigned long long)s0.last, (unsigned long long)s.released);
	close(fd);
	return s.released < s0.last;
}

/* A run of records that share a lag. */
struct lag {
	double lag;
	__u64 n;
};

static int by_lag(const void *a, const void *b)
{
	double x = ((const struct lag *)a)->lag, y = ((const struct lag *)b)->lag;

	return x < y ? -1 : x > y;
}

/* The lag below which a share q of the records lie. */
static double quantile(const struct lag *l, size_t n, __u64 total, double q)
{
	__u64 want = (__u64)(q * (double)total), seen = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		seen += l[i].n;
		if (seen > want)
			return l[i].lag;
	}
	return n ? l[n - 1].lag : 0;
}

/*
 * Walk the samples: record k was captured at the first sample whose last
 * reaches it, and released at the first sample whose released reaches it.
 * Both are step functions of the sequence, so the lags come in runs.
 */
static size_t lags(const struct sample *s, size_t ns, __u64 from, __u64 to, struct lag *out)
{
	size_t c = 0, r = 0, n = 0;
	__u64 k = from + 1, upto;

	while (k <= to) {
		while (c < ns && s[c].last < k)
			c++;
		while (r < ns && s[r].released < k)
			r++;
		if (c == ns || r == ns)
			break;
		upto = s[c].last < s[r].released ? s[c].last : s[r].released;
		if (upto > to)
			upto = to;
		out[n].lag = s[r].t > s[c].t ? s[r].t - s[c].t : 0;
		out[n++].n = upto - k + 1;
		k = upto + 1;
	}
	return n;
}

static int lag(const char *group, double secs)
{
	size_t cap = 1024, ns = 0, nl;
	struct sample *s = malloc(cap * sizeof(*s)), *t;
	struct lag *l;
	__u64 total = 0;
	double end;
	int late;
	size_t i;
	int fd = open_group(group);
	FILE *f;

	if (fd < 0 || !s || look(fd, &s[ns++]))
		return 1;
	end = s[0].t + secs;
	for (;;) {
		if (ns == cap) {
			cap *= 2;
			t = realloc(s, cap * sizeof(*s));
			if (!t)
				return fail("realloc");
			s = t;
		}
		nap();
		if (look(fd, &s[ns]))
			return 1;
		ns++;
		if (s[ns - 1].t < end)
			continue;
		/* After SECS: until what was captured by then is released. */
		if (s[ns - 1].released >= s[ns - 1].last || s[ns - 1].t > end + drain_s)
			break;
	}
	close(fd);
	if (samples_path && (f = fopen(samples_path, "w"))) {
		for (i = 0; i < ns; i++)
			fprintf(f, "%.3f %llu %llu\n", s[i].t - s[0].t,
				(unsigned long long)s[i].last, (unsigned long long)s[i].released);
		fclose(f);
	}
	l = calloc(ns * 2 + 1, sizeof(*l));
	if (!l)
		return fail("calloc");
	nl = lags(s, ns, s[0].last, s[ns - 1].last, l);
	for (i = 0; i < nl; i++)
		total += l[i].n;
	qsort(l, nl, sizeof(*l), by_lag);
	late = s[ns - 1].released < s[ns - 1].last;
	/* The interval asked for, and the one had: a sleep under TCG is longer. */
	printf("lag records %llu released %llu seconds %.1f interval_ms %u mean_interval_ms %.1f "
	       "p50 %.3f p90 %.3f p99 %.3f max %.3f\n",
	       (unsigned long long)(s[ns - 1].last - s[0].last),
	       (unsigned long long)total, s[ns - 1].t - s[0].t, interval_ms,
	       ns > 1 ? 1000 * (s[ns - 1].t - s[0].t) / (double)(ns - 1) : 0,
	       quantile(l, nl, total, 0.50), quantile(l, nl, total, 0.90),
	       quantile(l, nl, total, 0.99), nl ? l[nl - 1].lag : 0);
	free(l);
	free(s);
	return late;
}

/* ---- main ------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f,
"Usage: probe sink PORT\n"
"       probe send ADDR PORT SECONDS\n"
"       probe lag [--interval-ms N] [--drain S] [--samples FILE] GROUP SECONDS\n"
"       probe drain [--interval-ms N] [--drain S] GROUP\n"
"\n"
"sink and send measure a TCP link; lag and drain a primary group's\n"
"replication, from DM_REPL_IOC_GROUP_INFO: a record is captured when\n"
"next_seq passes it and durable on the replica when it is released.\n"
"lag samples for SECONDS, then until what was captured is released (at most\n"
"--drain S more, 60 by default), and prints the lag's p50, p90, p99 and max\n"
"over the records; drain prints the seconds until the last sequence\n"
"captured at its start is released (at most --drain S). Exit status 1 when\n"
"something was not released in time.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "interval-ms", required_argument, NULL, 'i' },
		{ "drain", required_argument, NULL, 'd' },
		{ "samples", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = argc > 1 ? argv[1] : "";
	int c;

	/* The options follow the subcommand, which getopt sees as argv[0]. */
	argc--;
	argv++;
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
		usage(stdout);
		return 0;
	}
	while ((c = getopt_long(argc, argv, "+i:d:s:h", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			interval_ms = (unsigned int)atoi(optarg);
			break;
		case 'd':
			drain_s = atof(optarg);
			break;
		case 's':
			samples_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!*cmd || interval_ms < 1 || interval_ms > 1000 || drain_s <= 0) {
		usage(stderr);
		return 2;
	}
	argc -= optind;
	argv += optind;
	if (!strcmp(cmd, "sink") && argc == 1)
		return sink(atoi(argv[0]));
	if (!strcmp(cmd, "send") && argc == 3)
		return send_for(argv[0], atoi(argv[1]), atof(argv[2]));
	if (!strcmp(cmd, "lag") && argc == 2)
		return lag(argv[0], atof(argv[1]));
	if (!strcmp(cmd, "drain") && argc == 1)
		return drain(argv[0], drain_s);
	usage(stderr);
	return 2;
}
