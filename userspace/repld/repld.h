/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * repld: the replication daemon of one host (repld(8)). One thread a group:
 * as primary it ships the group's ring to the peer's repld and releases what
 * the peer acknowledged as applied; as secondary it applies the batches it
 * receives through the group's device and acknowledges them.
 */
#ifndef REPLD_H
#define REPLD_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <linux/types.h>

#include "clock.h"
#include "dmrepl.h"
#include "dmrepl_conf.h"
#include "dmrepl_proto.h"
#include "dmrepl_tls.h"

#define BACKOFF_MIN_MS	500U
#define BACKOFF_MAX_MS	30000U
/* The longest a TLS handshake may hold a group's thread. */
#define HANDSHAKE_MAX_MS 2000
/* How often a group looks at its device for a role change, at most. */
#define ROLE_CHECK_MS	1000
#define ACCEPT_RETRY_MS	100	/* after an accept that failed */

/* Set by SIGTERM and SIGINT: every group ends its session and its thread. */
extern volatile sig_atomic_t repld_stopping;

enum link_state {
	LINK_DOWN,		/* no device, or not trying */
	LINK_CONNECTING,	/* dialling or waiting for the peer */
	LINK_CONNECTED,		/* session running (past the HELLO check) */
	LINK_DISCONNECTED,	/* by the admin (repltool disconnect) */
};

/* What repld tells of a group (repltool status), under group.lock. */
struct group_status {
	enum link_state state;
	unsigned int role;		/* enum dm_repl_role, 0: no device */
	char peer[80];			/* address of the connected peer */
	char last_error[512];
	char peer_site[DMREPL_PROTO_SITE_MAX];
	__u64 sessions;			/* sessions past the HELLO check */
	__u64 batches, records, raw_bytes, wire_bytes;
	double rate;			/* raw bytes/s, smoothed */
	__u64 acked_seq;		/* primary: the peer's applied sequence */
	__u64 last_seq;			/* primary: our last sequence */
	__u64 lag_bytes;		/* primary: ring bytes not released */
	__u64 oldest_unacked_ns;	/* primary: capture time, 0 if none */
	bool behind;			/* primary: writes only in the bitmap */
	__u32 behind_reasons;		/* the kernel's DM_REPL_BEHIND_* */
	/* Primary, behind: the resync this session runs (its regions). */
	bool resyncing;
	__u64 resync_start_ns;
	__u64 resync_done;		/* regions put in the ring */
	__u64 resync_bytes;		/* their bytes */
	__u64 resync_unreleased;	/* of those, not yet applied by the peer */
	__u64 resync_dirty;		/* regions still in the bitmaps */
	double resync_budget;		/* bytes/s the controller allows now */
	__u64 resync_lag_holds;		/* times the stream's lag passed its target */
	__u64 resync_rate_waits;	/* regions held back at the rate limit */
	char resync_held[80];		/* why the last was held back, or "-" */
	__u64 resync_asked;		/* primary: regions the replica asked for, to go */
	__u64 resync_held_volumes;	/* bit N: volume N's flush failing, its resync held */
	char snapshot[200];		/* replica: the snapshot-hook's last word, or "" */
	char diverged[DMREPL_PROTO_REFUSE_TEXT_MAX + 1];	/* the last refusal of the
							 * generations, or "-" */
	__u64 applied_seq;		/* secondary: ours */
};

struct group {
	const struct dmrepl_conf_group *conf;
	const struct dmrepl_conf_site *local, *peer;
	char kgroup[DM_REPL_GROUP_NAME_MAX];	/* the group's name in this kernel */
	struct dmrepl_tls *tls_client, *tls_server;
	int listen_fd;
	pthread_t thread;
	bool running;			/* thread started */
	pthread_mutex_t lock;
	struct group_status st;
	bool admin_down;		/* repltool disconnect; under lock */
	/*
	 * Replica: ranges its verify found differing (repltool verify
	 * --results --fix), each by its volume and the sector it starts at,
	 * to be asked of the primary (RESEND) by the session; under lock.
	 */
	struct verify_ask {
		__u32 volume;
		__u64 sector;
	} asks[DM_REPL_VERIFY_LIST];
	unsigned int nr_asks;
	/* Replica: the snapshot-hook's copy may exist (snapshot_known: we know). */
	bool snapshot_held, snapshot_known;
	__u64 snapshot_retry_ns;	/* a failed drop: not again before */
};

/* The control socket (ctl.c), DMREPL_REPLD_SOCKET by default. */
struct ctl {
	struct group *groups;
	unsigned int n;
	const char *path;
	int fd;
	pthread_t thread;
	bool running;
};

/* Bind path (its directory made 0700) and serve it in a thread: 0 or -errno. */
int ctl_start(struct ctl *c, struct group *groups, unsigned int n, const char *path);
void ctl_stop(struct ctl *c);

/*
 * The largest batch the group takes from its peer (HELLO max_batch): its
 * batch size, but at least one largest record, 8-byte aligned.
 */
unsigned int group_batch_max(const struct group *g);

/* Is the group disconnected by the admin? */
bool group_admin_down(struct group *g);

/* Log with the group's name: "repld: GROUP: message", at a syslog level. */
void glog(const struct group *g, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Log as glog() and keep the message as the group's last error (status). */
void group_error(struct group *g, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A session got past the HELLO check: note the peer's site in the status. */
void session_started(struct group *g, const struct dmrepl_proto_hello *peer);

/*
 * Run HOOK VERB CONF-GROUP KERNEL-GROUP DATA... (the local volumes' data
 * devices), up to HOOK_TIMEOUT_S, calling tick(arg) every few ms meanwhile
 * (the session's heartbeats): 0 when it exited 0, else -1 with why.
 */
int group_run_hook(struct group *g, const char *hook, const char *verb, char *why,
		   size_t len, void (*tick)(void *), void *arg);

/* The kernel's facts of the status (last sequence, ring bytes, behind). */
void group_note_kernel(struct group *g, const struct dm_repl_group_info *info);

/* The group's name in this site's kernel (the site's "group", or the resource's). */
const char *conf_site_group(const struct dmrepl_conf_group *conf,
			    const struct dmrepl_conf_site *site);

/* net.c */
int net_listen(const char *host, unsigned short port, char *err, size_t errlen);
int net_accept(int lfd, char *peer, size_t peerlen);
int net_dial(const char *host, unsigned short port, int timeout_ms, char *err, size_t errlen);
int net_backoff_ms(unsigned int *failures);

/* group.c */
int group_setup(struct group *g, const struct dmrepl_conf_group *conf, const char *site);
void group_teardown(struct group *g);
void *group_main(void *arg);
/* One session over conn (the session's), in role: group_main()'s, and the tests'. */
bool group_run_session(struct group *g, struct dmrepl_tls_conn *conn, unsigned int role);

#endif /* REPLD_H */
