// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * repld: read the resource files, start one thread a group, stop them all on
 * SIGTERM or SIGINT. See repld(8).
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "repld.h"

/* Exit status, as in repld(8). */
enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

volatile sig_atomic_t repld_stopping;

struct options {
	const char *dir;
	const char *site;
	const char *socket;
};

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * One line a message on stderr; "<N>" first, the syslog level, which
 * journald reads (SyslogLevelPrefix=), so that a unit's log keeps levels.
 */
static void vlog(const char *group, int level, const char *fmt, va_list ap)
{
	pthread_mutex_lock(&log_lock);
	fprintf(stderr, "<%d>repld: ", level);
	if (group)
		fprintf(stderr, "%s: ", group);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	pthread_mutex_unlock(&log_lock);
}

static void plog(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void plog(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(NULL, level, fmt, ap);
	va_end(ap);
}

void glog(const struct group *g, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(g->conf->name, level, fmt, ap);
	va_end(ap);
}

void group_error(struct group *g, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	pthread_mutex_lock(&g->lock);
	vsnprintf(g->st.last_error, sizeof(g->st.last_error), fmt, ap);
	pthread_mutex_unlock(&g->lock);
	va_end(ap);
	va_start(ap, fmt);
	vlog(g->conf->name, level, fmt, ap);
	va_end(ap);
}

void session_started(struct group *g, const struct dmrepl_proto_hello *peer)
{
	pthread_mutex_lock(&g->lock);
	snprintf(g->st.peer_site, sizeof(g->st.peer_site), "%s", peer->site);
	g->st.state = LINK_CONNECTED;
	g->st.sessions++;
	g->st.last_error[0] = '\0';
	pthread_mutex_unlock(&g->lock);
	glog(g, LOG_NOTICE, "replicating with site %s at %s as %s", peer->site, g->st.peer,
	     peer->role == DMREPL_PROTO_PRIMARY ? "secondary" : "primary");
}

void group_note_kernel(struct group *g, const struct dm_repl_group_info *info)
{
	pthread_mutex_lock(&g->lock);
	g->st.last_seq = info->next_seq - 1;
	g->st.lag_bytes = info->producer_pos - info->released_pos;
	g->st.behind = info->state == DM_REPL_STATE_BEHIND;
	g->st.behind_reasons = info->behind_reasons;
	pthread_mutex_unlock(&g->lock);
}

static void usage(FILE *f)
{
	fprintf(f,
"Usage: repld [--config-dir DIR] [--site NAME] [--socket PATH]\n"
"\n"
"Replicate every group of the resource files in DIR (default " DMREPL_CONF_DIR "):\n"
"ship a primary group's ring to the peer site's repld, or apply what the peer\n"
"ships to a secondary group. Logs go to stderr, one line a message, prefixed\n"
"with its syslog level for journald. Stops on SIGTERM or SIGINT.\n"
"\n"
"  -c, --config-dir DIR  the resource files' directory\n"
"  -s, --site NAME       this host's site in every group (default: by host name)\n"
"  -S, --socket PATH     the control socket (default " DMREPL_REPLD_SOCKET ")\n"
"  -h, --help            show this text\n"
"\n"
"Exit status: 0 when stopped by a signal, 1 when no group could start, 2 for\n"
"a usage error.\n");
}

static int parse_opts(int argc, char **argv, struct options *o)
{
	static const struct option lopts[] = {
		{ "config-dir", required_argument, NULL, 'c' },
		{ "site", required_argument, NULL, 's' },
		{ "socket", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	o->dir = DMREPL_CONF_DIR;
	o->site = NULL;
	o->socket = DMREPL_REPLD_SOCKET;
	while ((c = getopt_long(argc, argv, "c:s:S:h", lopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->dir = optarg;
			break;
		case 's':
			o->site = optarg;
			break;
		case 'S':
			o->socket = optarg;
			break;
		case 'h':
			usage(stdout);
			return -1;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind == argc)
		return 0;
	fprintf(stderr, "repld: unexpected argument \"%s\"\n", argv[optind]);
	usage(stderr);
	return EXIT_USAGE;
}

static void on_stop(int sig)
{
	(void)sig;
	repld_stopping = 1;
}

/* Stop signals set the flag; SIGPIPE is ignored (writes use MSG_NOSIGNAL too). */
static void catch_signals(void)
{
	struct sigaction sa = { .sa_handler = on_stop };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

/* Until SIGTERM or SIGINT; the flag is read with them blocked, so none is lost. */
static void wait_for_stop(void)
{
	sigset_t stops, old;

	sigemptyset(&stops);
	sigaddset(&stops, SIGTERM);
	sigaddset(&stops, SIGINT);
	sigprocmask(SIG_BLOCK, &stops, &old);
	while (!repld_stopping)
		sigsuspend(&old);
	sigprocmask(SIG_SETMASK, &old, NULL);
}

static void report_conf(const char *msg, void *arg)
{
	(void)arg;
	plog(LOG_ERR, "%s", msg);
}

/* Start a thread for every group that sets up; returns how many started. */
static unsigned int start_groups(struct group *groups, const struct dmrepl_conf_group *conf,
				 unsigned int n, const char *site)
{
	unsigned int i, started = 0;

	for (i = 0; i < n; i++) {
		if (group_setup(&groups[i], &conf[i], site)) {
			glog(&groups[i], LOG_ERR, "not started");
			continue;
		}
		if (pthread_create(&groups[i].thread, NULL, group_main, &groups[i])) {
			glog(&groups[i], LOG_ERR, "thread: %s", strerror(errno));
			continue;
		}
		groups[i].running = true;
		started++;
	}
	return started;
}

/*
 * The groups' threads and the control socket's. They get no signals: the
 * main thread takes them. 0, or -1 (logged) when nothing could start.
 */
static int start(struct group *groups, const struct dmrepl_conf_group *conf, unsigned int n,
		 const struct options *o, struct ctl *ctl)
{
	sigset_t all, old;
	int ret = -1;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	if (!start_groups(groups, conf, n, o->site)) {
		plog(LOG_ERR, "%s: no group to serve", o->dir);
	} else {
		ret = ctl_start(ctl, groups, n, o->socket);
		if (ret)
			plog(LOG_ERR, "control socket %s: %s", o->socket,
			     ret == -EADDRINUSE ? "another repld answers there" : strerror(-ret));
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret)
		repld_stopping = 1;	/* the groups that started end */
	return ret ? -1 : 0;
}

/*
 * A session's buffers (a batch, a frame, the window in flight) are a few MiB
 * and live as long as its connection. A fixed mmap threshold (it also turns
 * off glibc's sliding one) maps each of them apart and unmaps it on free, so
 * a daemon that reconnects for months returns to its idle size instead of
 * keeping the peak, fragmented, in its arenas.
 */
#define MMAP_THRESHOLD (128 * 1024)

static void stop_groups(struct group *groups, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		if (groups[i].running)
			pthread_join(groups[i].thread, NULL);
		group_teardown(&groups[i]);
	}
}

int main(int argc, char **argv)
{
	struct dmrepl_conf_group *conf = NULL;
	struct ctl ctl = { .fd = -1 };
	struct group *groups;
	struct options o;
	unsigned int n = 0;
	int ret;

	ret = parse_opts(argc, argv, &o);
	if (ret)
		return ret < 0 ? EXIT_OK : ret;
	catch_signals();
	mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
	srandom((unsigned int)(now_ns() ^ (__u64)getpid()));
	ret = dmrepl_conf_load_dir(o.dir, &conf, &n, report_conf, NULL);
	if (ret < 0) {
		plog(LOG_ERR, "%s: %s", o.dir, strerror(-ret));
		return EXIT_RUNTIME;
	}
	groups = calloc(n ? n : 1, sizeof(*groups));
	if (!groups) {
		plog(LOG_ERR, "%s", strerror(ENOMEM));
		ret = EXIT_RUNTIME;
	} else if (start(groups, conf, n, &o, &ctl)) {
		ret = EXIT_RUNTIME;
	} else {
		plog(LOG_INFO, "serving %u group%s of %s", n, n == 1 ? "" : "s", o.dir);
		wait_for_stop();
		plog(LOG_INFO, "stopping");
		ret = EXIT_OK;
	}
	ctl_stop(&ctl);
	if (groups)
		stop_groups(groups, n);
	free(groups);
	dmrepl_conf_free_all(conf, n);
	return ret;
}

const char *conf_site_group(const struct dmrepl_conf_group *conf,
			    const struct dmrepl_conf_site *site)
{
	return site->group ? site->group : conf->name;
}
