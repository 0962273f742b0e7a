// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * repld's control socket (repld(8)): a unix stream socket, root only, one
 * request a connection, one line long:
 *
 *   status              every group's link, as "key value" lines
 *   connect GROUP       let the group connect again (the default)
 *   disconnect GROUP    end its session and stay disconnected
 *   resend KGROUP V@S[,V@S...]
 *                       replica: ask the primary to resend the ranges of
 *                       volume V starting at sector S (verify --results
 *                       --fix), over the running session; KGROUP is the
 *                       group's name in this kernel
 *
 * GROUP is the resource's name. The answer is "ok" or "error MESSAGE" on
 * its first line; for status, then
 * one block a group ("group NAME" and its facts), blocks ended by an empty
 * line. repltool status, connect, disconnect and verify are its clients.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "repld.h"

/* resend: DM_REPL_VERIFY_LIST items of "63@18446744073709551615," at most. */
#define REQUEST_MAX 4096
#define REQUEST_TIMEOUT_MS 2000

static const char *const state_names[] = {
	[LINK_DOWN] = "down",
	[LINK_CONNECTING] = "connecting",
	[LINK_CONNECTED] = "connected",
	[LINK_DISCONNECTED] = "disconnected",
};

static const char *role_word(unsigned int role)
{
	if (role == DM_REPL_ROLE_PRIMARY)
		return "primary";
	return role == DM_REPL_ROLE_SECONDARY ? "secondary" : "none";
}

/* Seconds since a CLOCK_REALTIME capture time, 0 for none. */
static double age_s(__u64 time_ns)
{
	return (double)age_ns(time_ns) / 1e9;
}

/*
 * The volumes whose resync the kernel holds, their data device's flush
 * failing: "0,2", or "-".
 */
static void print_held_volumes(FILE *f, __u64 held)
{
	const char *sep = "";
	unsigned int i;

	fputs("resync_held_volumes ", f);
	for (i = 0; i < 64; i++) {
		if (!((held >> i) & 1))
			continue;
		fprintf(f, "%s%u", sep, i);
		sep = ",";
	}
	fputs(held ? "\n" : "-\n", f);
}

/* A primary's state; while it resyncs, how far, how fast, how long still. */
static void print_state(FILE *f, const struct group_status *st,
			const struct dmrepl_conf_group *conf)
{
	__u64 applied = st->resync_done - st->resync_unreleased;
	__u64 total = st->resync_done + st->resync_dirty;
	double secs, rate;
	char why[160];

	if (!st->resyncing) {
		fprintf(f, "state %s\n", st->behind ? "behind" : "uptodate");
		fprintf(f, "behind_reasons %s\n", dmrepl_behind_reasons(st->behind ? st->behind_reasons : 0,
									why, sizeof(why)));
		return;
	}
	secs = (double)(now_ns() - st->resync_start_ns) / 1e9;
	rate = secs > 0 ? (double)applied / secs : 0;
	fprintf(f, "state resyncing\nbehind_reasons %s\n",
		dmrepl_behind_reasons(st->behind_reasons, why, sizeof(why)));
	fprintf(f, "resync_percent %.1f\nresync_regions_left %llu\n",
		total ? 100.0 * (double)applied / (double)total : 0.0,
		(unsigned long long)(st->resync_dirty + st->resync_unreleased));
	fprintf(f, "resync_bytes %llu\nresync_regions_per_s %.1f\nresync_eta_seconds ",
		(unsigned long long)st->resync_bytes, rate);
	if (rate > 0)
		fprintf(f, "%.0f\n", (double)(st->resync_dirty + st->resync_unreleased) / rate);
	else
		fputs("-\n", f);
	fprintf(f, "resync_rate_limit %llu\nresync_lag_target_ms %u\n",
		conf->resync_rate, conf->resync_lag_ms);
	fprintf(f, "resync_budget_bytes_per_s %.0f\nresync_throttled %s\n",
		st->resync_budget, st->resync_held[0] ? st->resync_held : "-");
	fprintf(f, "resync_lag_holds %llu\nresync_rate_waits %llu\n",
		(unsigned long long)st->resync_lag_holds,
		(unsigned long long)st->resync_rate_waits);
	fprintf(f, "resync_asked_regions %llu\n", (unsigned long long)st->resync_asked);
	print_held_volumes(f, st->resync_held_volumes);
}

static void print_group(FILE *f, struct group *g)
{
	struct group_status st;

	pthread_mutex_lock(&g->lock);
	st = g->st;
	pthread_mutex_unlock(&g->lock);
	fprintf(f, "group %s\n", g->conf->name);
	fprintf(f, "kernel_group %s\nsite %s\npeer_site %s\n", g->kgroup, g->local->name,
		g->peer->name);
	fprintf(f, "role %s\nlink %s\n", role_word(st.role), state_names[st.state]);
	fprintf(f, "peer %s\n", st.state == LINK_CONNECTED ? st.peer : "-");
	fprintf(f, "sessions %llu\nbatches %llu\nrecords %llu\n",
		(unsigned long long)st.sessions, (unsigned long long)st.batches,
		(unsigned long long)st.records);
	fprintf(f, "raw_bytes %llu\nwire_bytes %llu\ncompression %.2f\n",
		(unsigned long long)st.raw_bytes, (unsigned long long)st.wire_bytes,
		st.wire_bytes ? (double)st.raw_bytes / (double)st.wire_bytes : 1.0);
	fprintf(f, "rate_bytes_per_s %.0f\n", st.rate);
	if (st.role == DM_REPL_ROLE_PRIMARY) {
		fprintf(f, "acked_seq %llu\nlag_records %llu\nlag_bytes %llu\nlag_seconds %.3f\n",
			(unsigned long long)st.acked_seq,
			(unsigned long long)(st.last_seq > st.acked_seq ?
					     st.last_seq - st.acked_seq : 0),
			(unsigned long long)st.lag_bytes, age_s(st.oldest_unacked_ns));
		print_state(f, &st, g->conf);
	} else if (st.role == DM_REPL_ROLE_SECONDARY) {
		fprintf(f, "applied_seq %llu\n", (unsigned long long)st.applied_seq);
	}
	if (g->local->snapshot_hook)
		fprintf(f, "snapshot %s\n", st.snapshot[0] ? st.snapshot : "-");
	/* Split brain, or a replica's writes of its own: what the admin must decide. */
	fprintf(f, "diverged %s\n", st.diverged[0] ? st.diverged : "-");
	fprintf(f, "last_error %s\n\n", st.last_error[0] ? st.last_error : "-");
}

/*
 * The running group of that name: the resource's, or (by_kgroup, as resend
 * names it, verify's way) the group's in this kernel. NULL, said in f.
 */
static struct group *find(FILE *f, struct group *groups, unsigned int n, const char *name,
			  bool by_kgroup)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (groups[i].running &&
		    !strcmp(by_kgroup ? groups[i].kgroup : groups[i].conf->name, name))
			return &groups[i];
	fprintf(f, "error no group \"%.*s\" served by this repld\n", 64, name);
	return NULL;
}

/* A decimal number and nothing else, within max: 0, or -1. */
static int decimal(const char *p, unsigned long long max, unsigned long long *n)
{
	char *end;

	if (*p < '0' || *p > '9')
		return -1;
	errno = 0;
	*n = strtoull(p, &end, 10);
	return *end || errno || *n > max ? -1 : 0;
}

/* "V@S[,V@S...]" into asks: how many, or -1 (said in f). */
static int parse_asks(FILE *f, char *list, struct verify_ask *asks)
{
	unsigned long long v, sector;
	char *item, *at;
	int n = 0;

	while ((item = strsep(&list, ","))) {
		at = strchr(item, '@');
		if (at)
			*at++ = '\0';
		if (!at || decimal(item, DM_REPL_MAX_VOLUMES - 1, &v) ||
		    decimal(at, ~0ULL, &sector)) {
			fprintf(f, "error \"%.*s%s%.*s\" is not VOLUME@SECTOR\n", 32, item,
				at ? "@" : "", 32, at ? at : "");
			return -1;
		}
		if (n == DM_REPL_VERIFY_LIST) {
			fprintf(f, "error more than %d ranges in one request\n", DM_REPL_VERIFY_LIST);
			return -1;
		}
		asks[n].volume = (__u32)v;
		asks[n++].sector = sector;
	}
	return n;
}

/*
 * resend GROUP LIST: queued for the replica's session, which asks the
 * primary; refused unless the group is a connected secondary, and when
 * the queue has no room for the whole list.
 */
static void take_resend(FILE *f, struct group *groups, unsigned int n, char *arg)
{
	struct verify_ask asks[DM_REPL_VERIFY_LIST];
	char *list = strchr(arg, ' ');
	const char *why = NULL;
	struct group *g;
	int nr;

	if (!list) {
		fputs("error resend GROUP VOLUME@SECTOR[,VOLUME@SECTOR...]\n", f);
		return;
	}
	*list++ = '\0';
	g = find(f, groups, n, arg, true);
	if (!g)
		return;
	nr = parse_asks(f, list, asks);
	if (nr < 0)
		return;
	pthread_mutex_lock(&g->lock);
	if (g->st.role != DM_REPL_ROLE_SECONDARY)
		why = "not a secondary here: verify --resend on the primary's host";
	else if (g->st.state != LINK_CONNECTED)
		why = "not connected to its primary";
	else if (g->nr_asks + (unsigned int)nr > DM_REPL_VERIFY_LIST)
		why = "an earlier resend is still queued: try again";
	if (!why) {
		memcpy(g->asks + g->nr_asks, asks, (size_t)nr * sizeof(*asks));
		g->nr_asks += (unsigned int)nr;
	}
	pthread_mutex_unlock(&g->lock);
	if (why) {
		fprintf(f, "error group %s: %s\n", g->kgroup, why);
		return;
	}
	glog(g, LOG_NOTICE, "the admin asks the primary to resend %d ranges verify found "
	     "differing", nr);
	fprintf(f, "ok\ngroup %s: %d ranges to be asked of the primary by repld\n",
		g->kgroup, nr);
}

static void answer(FILE *f, struct group *groups, unsigned int n, char *req)
{
	char *arg = strchr(req, ' ');
	struct group *g;
	unsigned int i;

	if (arg)
		*arg++ = '\0';
	if (!strcmp(req, "status") && !arg) {
		fputs("ok\n", f);
		for (i = 0; i < n; i++)
			if (groups[i].running)
				print_group(f, &groups[i]);
		return;
	}
	if (!strcmp(req, "resend") && arg) {
		take_resend(f, groups, n, arg);
		return;
	}
	if ((strcmp(req, "connect") && strcmp(req, "disconnect")) || !arg) {
		fputs("error unknown request\n", f);
		return;
	}
	g = find(f, groups, n, arg, false);
	if (!g)
		return;
	pthread_mutex_lock(&g->lock);
	g->admin_down = !strcmp(req, "disconnect");
	pthread_mutex_unlock(&g->lock);
	glog(g, LOG_NOTICE, "%s by the admin", req[0] == 'c' ? "connect" : "disconnect");
	fputs("ok\n", f);
}

/* One line from fd within the timeout, without its newline; 0 or -errno. */
static int read_request(int fd, char *buf, size_t len)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	__u64 end = now_ns() + REQUEST_TIMEOUT_MS * 1000000ULL, now;
	size_t got = 0;
	ssize_t n;

	while (got < len - 1) {
		now = now_ns();
		if (now >= end || poll(&p, 1, (int)((end - now) / 1000000) + 1) <= 0)
			return -ETIMEDOUT;
		n = read(fd, buf + got, len - 1 - got);
		if (n <= 0)
			return n ? -errno : -ECONNRESET;
		got += (size_t)n;
		buf[got] = '\0';
		if (strchr(buf, '\n')) {
			*strchr(buf, '\n') = '\0';
			return 0;
		}
	}
	return -EMSGSIZE;
}

/* Root only: the socket's mode says so, the peer's credentials too. */
static bool peer_is_root(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	return !getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) && cred.uid == 0;
}

static void serve_one(struct ctl *c, int fd)
{
	struct timeval tv = { .tv_sec = REQUEST_TIMEOUT_MS / 1000 };
	char req[REQUEST_MAX];
	FILE *f;

	if (read_request(fd, req, sizeof(req)) || !peer_is_root(fd)) {
		close(fd);
		return;
	}
	/* A client that does not read its answer holds the thread this long at most. */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return;
	}
	answer(f, c->groups, c->n, req);
	fclose(f);
}

static void *ctl_main(void *arg)
{
	struct ctl *c = arg;
	struct pollfd p = { .fd = c->fd, .events = POLLIN };
	int fd;

	while (!repld_stopping) {
		if (poll(&p, 1, 500) <= 0)
			continue;
		fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			serve_one(c, fd);
	}
	return NULL;
}

/* Is a repld answering on path? Then its socket is not stale. */
static bool in_use(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool used = fd >= 0 && !connect(fd, (const struct sockaddr *)sa, sizeof(*sa));

	if (fd >= 0)
		close(fd);
	return used;
}

static int bind_socket(struct ctl *c, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[sizeof(sa.sun_path)], *slash;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	strcpy(dir, path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0700) && errno != EEXIST)
			return -errno;
	}
	if (in_use(&sa))
		return -EADDRINUSE;
	unlink(path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	if (bind(c->fd, (struct sockaddr *)&sa, sizeof(sa)) || chmod(path, 0600) ||
	    listen(c->fd, 8))
		return -errno;
	return 0;
}

int ctl_start(struct ctl *c, struct group *groups, unsigned int n, const char *path)
{
	int ret;

	c->groups = groups;
	c->n = n;
	c->fd = -1;
	c->path = path;
	ret = bind_socket(c, path);
	if (!ret)
		ret = -pthread_create(&c->thread, NULL, ctl_main, c);
	if (!ret) {
		c->running = true;
		return 0;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	return ret;
}

void ctl_stop(struct ctl *c)
{
	if (c->running)
		pthread_join(c->thread, NULL);
	if (c->fd >= 0) {
		close(c->fd);
		unlink(c->path);
	}
}
