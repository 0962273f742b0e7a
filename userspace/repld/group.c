// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * One group's thread: find the role in the group's device, then dial the
 * peer (primary) or wait for it (secondary), and run sessions until told to
 * stop. A role change, the group's removal or a broken link ends a session;
 * the next one starts from what is durable on the replica.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#include "link.h"
#include "session.h"

/* A hook runs at most this long: the peer's dead timer runs meanwhile. */
#define HOOK_TIMEOUT_S 60

/*
 * Wait for the hook's exit, up to HOOK_TIMEOUT_S or repld's stop: its wait
 * status, or -1 (its process group killed: what it started goes too).
 */
static int hook_wait(pid_t pid, void (*tick)(void *), void *arg)
{
	struct timespec nap = { .tv_nsec = 20 * 1000000L };
	int status, i;

	for (i = 0; i < HOOK_TIMEOUT_S * 50 && !repld_stopping; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return status;
		tick(arg);
		nanosleep(&nap, NULL);
	}
	kill(-pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

/*
 * In the child, before the hook: a process group of its own (for the kill
 * above), and the signal state of a process just started, not that of
 * repld's threads (every signal blocked, SIGPIPE ignored). Only
 * async-signal-safe calls: the child of a threaded process.
 */
static void hook_child_setup(void)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t none;

	setpgid(0, 0);
	sigaction(SIGPIPE, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

int group_run_hook(struct group *g, const char *hook, const char *verb, char *why,
		   size_t len, void (*tick)(void *), void *arg)
{
	const char *argv[4 + DM_REPL_MAX_VOLUMES + 1] = { hook, verb, g->conf->name, g->kgroup };
	unsigned int i, n = 4;
	int status;
	pid_t pid;

	for (i = 0; i < g->local->nvolumes && i < DM_REPL_MAX_VOLUMES; i++)
		argv[n++] = g->local->volumes[i].data;
	argv[n] = NULL;
	pid = fork();
	if (pid < 0) {
		snprintf(why, len, "fork: %s", strerror(errno));
		return -1;
	}
	if (!pid) {
		hook_child_setup();
		execv(hook, (char *const *)argv);
		_exit(127);
	}
	setpgid(pid, pid);	/* also here: the kill may come before the child's own */
	status = hook_wait(pid, tick, arg);
	if (status == -1)
		snprintf(why, len, repld_stopping ? "repld stops: killed" :
			 "still running after %d s: killed", HOOK_TIMEOUT_S);
	else if (WIFSIGNALED(status))
		snprintf(why, len, "killed by signal %d", WTERMSIG(status));
	else if (WEXITSTATUS(status))
		snprintf(why, len, "exit status %d%s", WEXITSTATUS(status),
			 WEXITSTATUS(status) == 127 ? " (not executable?)" : "");
	else
		return 0;
	return -1;
}

static void set_state(struct group *g, enum link_state state, unsigned int role)
{
	pthread_mutex_lock(&g->lock);
	g->st.state = state;
	g->st.role = role;
	pthread_mutex_unlock(&g->lock);
}

/* The peer's address in the status: written here, under the lock, read by ctl. */
static void set_peer(struct group *g, const char *peer)
{
	pthread_mutex_lock(&g->lock);
	snprintf(g->st.peer, sizeof(g->st.peer), "%.*s", (int)sizeof(g->st.peer) - 1, peer);
	pthread_mutex_unlock(&g->lock);
}

static struct dmrepl_tls *make_tls(struct group *g, bool server, const unsigned char *psk,
				   size_t psk_len)
{
	struct dmrepl_tls_conf c = {
		.psk_mode = g->conf->auth == DMREPL_AUTH_PSK,
		.ca = g->conf->ca,
		.certificate = g->local->certificate,
		.key = g->local->key,
		.peer_identity = g->peer->identity,
		.psk = psk,
		.psk_len = psk_len,
		.psk_identity = g->conf->psk_identity,
	};
	char err[512];
	struct dmrepl_tls *t = dmrepl_tls_new(&c, server, err, sizeof(err));

	if (!t)
		glog(g, LOG_ERR, "TLS %s settings: %s", server ? "server" : "client", err);
	return t;
}

static int setup_tls(struct group *g)
{
	unsigned char psk[256];
	size_t psk_len = sizeof(psk);
	char err[512];
	int ret = 0;

	if (g->conf->auth == DMREPL_AUTH_PSK &&
	    dmrepl_conf_read_psk(g->conf->psk, psk, &psk_len, err, sizeof(err))) {
		glog(g, LOG_ERR, "%s", err);
		return -1;
	}
	g->tls_client = make_tls(g, false, psk, psk_len);
	g->tls_server = make_tls(g, true, psk, psk_len);
	if (!g->tls_client || !g->tls_server)
		ret = -1;
	memset(psk, 0, sizeof(psk));
	return ret;
}

int group_setup(struct group *g, const struct dmrepl_conf_group *conf, const char *site)
{
	char err[512];

	memset(g, 0, sizeof(*g));
	g->conf = conf;
	g->listen_fd = -1;
	pthread_mutex_init(&g->lock, NULL);
	g->local = dmrepl_conf_local_site(conf, site, err, sizeof(err));
	if (!g->local) {
		glog(g, LOG_ERR, "%s", err);
		return -1;
	}
	g->peer = dmrepl_conf_peer_site(conf, g->local);
	snprintf(g->kgroup, sizeof(g->kgroup), "%s", conf_site_group(conf, g->local));
	if (dmrepl_conf_check_local(conf, g->local, err, sizeof(err))) {
		glog(g, LOG_ERR, "%s", err);
		return -1;
	}
	if (setup_tls(g))
		return -1;
	g->listen_fd = net_listen(g->local->address, g->local->port, err, sizeof(err));
	if (g->listen_fd < 0) {
		glog(g, LOG_ERR, "%s", err);
		return -1;
	}
	glog(g, LOG_INFO, "site %s, listening on %s port %u; peer %s at %s port %u",
	     g->local->name, g->local->address, g->local->port, g->peer->name,
	     g->peer->address, g->peer->port);
	return 0;
}

void group_teardown(struct group *g)
{
	if (g->listen_fd >= 0)
		close(g->listen_fd);
	dmrepl_tls_free(g->tls_client);
	dmrepl_tls_free(g->tls_server);
	pthread_mutex_destroy(&g->lock);
}

/* The group's role in this kernel, 0 if it has no device (yet). */
static unsigned int current_role(struct group *g)
{
	struct dm_repl_group_info info;
	char msg[DMREPL_ERRMSG_LEN];
	int fd = dmrepl_group_open(g->kgroup, O_RDONLY, &info, msg, sizeof(msg));

	if (fd < 0)
		return 0;
	close(fd);
	group_note_kernel(g, &info);
	return info.role;
}

/*
 * How long a handshake may take: the dead-peer timeout, but at most
 * HANDSHAKE_MAX_MS, since a connection not yet authenticated holds the
 * group's thread (anyone who reaches the port can open one).
 */
static int handshake_ms(const struct group *g)
{
	return g->conf->timeout_ms < HANDSHAKE_MAX_MS ? (int)g->conf->timeout_ms :
							HANDSHAKE_MAX_MS;
}

/* Dial the peer and shake hands: a connection, or NULL. */
static struct dmrepl_tls_conn *dial(struct group *g)
{
	struct dmrepl_tls_conn *conn;
	char err[512];
	int fd;

	fd = net_dial(g->peer->address, g->peer->port, g->conf->timeout_ms, err, sizeof(err));
	if (fd < 0) {
		group_error(g, LOG_INFO, "%s", err);
		return NULL;
	}
	snprintf(err, sizeof(err), "%s:%u", g->peer->address, g->peer->port);
	set_peer(g, err);
	if (dmrepl_tls_handshake(g->tls_client, fd, handshake_ms(g), &conn, err,
				 sizeof(err))) {
		group_error(g, LOG_WARNING, "%s", err);	/* it names the peer */
		return NULL;
	}
	return conn;
}

/* Take one connection from the listener within ms: a connection, or NULL. */
static struct dmrepl_tls_conn *answer(struct group *g, int ms)
{
	struct pollfd p = { .fd = g->listen_fd, .events = POLLIN };
	struct dmrepl_tls_conn *conn;
	char err[512], peer[80];
	int fd;

	if (poll(&p, 1, ms) <= 0)
		return NULL;
	fd = net_accept(g->listen_fd, peer, sizeof(peer));
	if (fd < 0) {
		/* Out of descriptors, say: the connection stays queued; no spin. */
		poll(NULL, 0, ms < ACCEPT_RETRY_MS ? ms : ACCEPT_RETRY_MS);
		return NULL;
	}
	if (dmrepl_tls_handshake(g->tls_server, fd, handshake_ms(g), &conn, err,
				 sizeof(err))) {
		group_error(g, LOG_WARNING, "%s", err);	/* it names the peer */
		return NULL;
	}
	set_peer(g, peer);
	return conn;
}

unsigned int group_batch_max(const struct group *g)
{
	unsigned int max = g->conf->batch_bytes;

	if (max < DMREPL_PROTO_MAX_BATCH_MIN)
		max = DMREPL_PROTO_MAX_BATCH_MIN;
	return (max + 7) & ~7U;
}

bool group_admin_down(struct group *g)
{
	bool down;

	pthread_mutex_lock(&g->lock);
	down = g->admin_down;
	pthread_mutex_unlock(&g->lock);
	return down;
}

/* The link's messages: with the group's name, refusals kept as its last error. */
static void link_said(void *arg, int level, bool error, const char *msg)
{
	struct group *g = arg;

	if (error)
		group_error(g, level, "%s", msg);
	else
		glog(g, level, "%s", msg);
}

/*
 * Returns true when the session got past the HELLO check. Role 0: no
 * session to offer (no device, or disconnected): the peer is told why.
 */
bool group_run_session(struct group *g, struct dmrepl_tls_conn *conn, unsigned int role)
{
	/* st.peer is written by this thread alone, before the session. */
	const struct link_owner owner = {
		.peer = g->st.peer,
		.heartbeat_ms = g->conf->heartbeat_ms,
		.timeout_ms = g->conf->timeout_ms,
		.bandwidth = g->conf->bandwidth,
		.stop = &repld_stopping,
		.log = link_said,
		.arg = g,
	};
	bool streamed = false;
	struct link l;

	if (link_init(&l, &owner, conn, group_batch_max(g) + DMREPL_PROTO_BATCH_HDR)) {
		group_error(g, LOG_ERR, "link buffers: %s", strerror(ENOMEM));
		link_close(&l);
		return false;
	}
	glog(g, LOG_INFO, "connected to %s (%s)", g->st.peer, dmrepl_tls_peer(conn));
	if (role == DM_REPL_ROLE_PRIMARY)
		streamed = session_primary(g, &l);
	else if (role == DM_REPL_ROLE_SECONDARY)
		streamed = session_secondary(g, &l);
	else if (group_admin_down(g))
		link_refuse(&l, DMREPL_REFUSE_SHUTDOWN, "disconnected by the admin of site %s",
			    g->local->name);
	else
		link_refuse(&l, DMREPL_REFUSE_INTERNAL, "group %s has no device on site %s",
			    g->kgroup, g->local->name);
	link_close(&l);
	glog(g, LOG_INFO, "disconnected from %s", g->st.peer);
	return streamed;
}

/*
 * A primary waits for its next dial on its listener: a peer that thinks
 * itself primary too dials in the meantime and is told why not at once.
 * Two primaries that napped instead met only when one dialled in the
 * other's instant between naps, so a split brain could go unreported for
 * minutes. Each look is at most ROLE_CHECK_MS, so that a role change, the
 * admin's word or a stop is seen between looks, and a connection taken
 * is served in the role of the moment.
 */
static struct dmrepl_tls_conn *primary_turn(struct group *g, __u64 *dial_ns,
					    unsigned int *failures)
{
	struct dmrepl_tls_conn *conn;
	__u64 now = now_ns();

	if (now < *dial_ns) {
		__u64 left_ms = (*dial_ns - now) / 1000000 + 1;

		return answer(g, left_ms < ROLE_CHECK_MS ? (int)left_ms : ROLE_CHECK_MS);
	}
	/* A peer already waiting is served first; the dial comes next turn. */
	conn = answer(g, 0);
	if (conn)
		return conn;
	conn = dial(g);
	*dial_ns = now_ns() + (__u64)net_backoff_ms(failures) * 1000000;
	return conn;
}

/*
 * A primary dials, with a back-off between failures; a secondary waits.
 * Each also answers its listener: a secondary to serve the peer, a primary
 * to tell a peer that thinks itself primary too why not (the HELLO check).
 * A group that is not primary, or held down by the admin, forgets its
 * back-off: once it may dial again, it dials at once.
 */
void *group_main(void *arg)
{
	struct group *g = arg;
	unsigned int failures = 0, role;
	struct dmrepl_tls_conn *conn;
	__u64 dial_ns = 0;
	bool down;

	while (!repld_stopping) {
		role = current_role(g);
		down = group_admin_down(g);
		set_state(g, down ? LINK_DISCONNECTED : role ? LINK_CONNECTING : LINK_DOWN, role);
		if (down)
			role = 0;
		if (role == DM_REPL_ROLE_PRIMARY) {
			conn = primary_turn(g, &dial_ns, &failures);
		} else {
			failures = 0;
			dial_ns = 0;
			conn = answer(g, ROLE_CHECK_MS);
		}
		if (!conn)
			continue;
		if (group_run_session(g, conn, role))
			failures = 0;
		set_state(g, LINK_CONNECTING, role);
		if (role == DM_REPL_ROLE_PRIMARY)
			dial_ns = now_ns() + (__u64)net_backoff_ms(&failures) * 1000000;
	}
	set_state(g, LINK_DOWN, 0);
	return NULL;
}
