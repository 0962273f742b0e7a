/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * One TLS connection to the peer, framed (Documentation/protocol.md): what
 * came in and is not decoded yet, what is encoded and not sent yet, the
 * heartbeat and dead-peer clocks, and the bandwidth limit on what is sent.
 *
 * The link serves an owner (repld's group, or a benchmark) that sets its
 * clocks and its limit, names the peer, and hears what goes wrong.
 */
#ifndef REPLD_LINK_H
#define REPLD_LINK_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "dmrepl_proto.h"
#include "dmrepl_tls.h"

struct link_owner {
	const char *peer;		/* the peer's address, for messages */
	unsigned int heartbeat_ms, timeout_ms;
	unsigned long long bandwidth;	/* bytes/s, 0: unlimited */
	/* Set when the link must give up waiting for the peer (NULL: never). */
	const volatile sig_atomic_t *stop;
	/*
	 * A message of the link, at a syslog level. error: a refusal, ours
	 * or the peer's, which the owner keeps as the session's error;
	 * otherwise news of the connection (closed, broken, silent, ended).
	 */
	void (*log)(void *arg, int level, bool error, const char *msg);
	void *arg;
};

struct link {
	const struct link_owner *owner;
	struct dmrepl_tls_conn *conn;
	unsigned char *in;		/* received, from in_off to in_len */
	size_t in_off, in_len, in_cap;
	size_t max_body;		/* largest frame body accepted */
	struct dmrepl_obuf out;		/* encoded, not sent yet */
	size_t retry_len;		/* a write that returned -EAGAIN: offer again */
	__u64 last_rx_ns, last_tx_ns;
	__u64 heartbeat_ns, timeout_ns;
	/* Token bucket of the bandwidth limit (bytes/s; 0: none). */
	__u64 rate;
	double tokens;
	__u64 refill_ns;
	__u64 wire_tx;			/* bytes sent */
	int send_err;			/* a send failed: the end, once the frames read are taken */
	char send_why[128];		/* its reason, as the TLS layer said it */
	__u64 wake_ns;			/* the owner's: link_wait() returns by then (0: none) */
};

/*
 * Buffers for frames of bodies up to max_body. 0 or -ENOMEM. The owner
 * outlives the link; the link owns conn, and link_close() closes it, even
 * after a failed link_init().
 */
int link_init(struct link *l, const struct link_owner *owner, struct dmrepl_tls_conn *conn,
	      size_t max_body);
void link_close(struct link *l);

/*
 * Send what is queued, within the bandwidth limit. 0 (all sent, or the
 * socket or the limit wants a wait), or -errno (the link is broken; the
 * reason is logged). A failed send whose peer's last frames came in (its
 * REFUSE, say) returns 0 and drops what is queued: link_next() hands those
 * frames over, then returns the send's error.
 */
int link_flush(struct link *l);
/*
 * A HEARTBEAT if one is due and nothing else waits, then a flush: for a side
 * busy elsewhere (a hook) whose peer must not find it silent. 0 or -errno.
 */
int link_keepalive(struct link *l);

/*
 * The next whole frame received into *f: 1, 0 when none is complete (after
 * reading what the socket had), or -errno (closed, broken, or a malformed
 * frame: the reason is logged, and a REFUSE queued for a malformed one).
 * A BATCH's payload is valid until the next call.
 */
int link_next(struct link *l, struct dmrepl_frame *f);

/*
 * Wait for the socket (and extra_fd for extra_events, if >= 0) until the
 * next heartbeat is due, or the owner's wake_ns. Sends a heartbeat when one
 * is due. Returns the revents of extra_fd (0 if none), or -ETIMEDOUT when
 * the peer was silent for longer than the timeout, or -errno. After a
 * failed send (link_flush()) it returns 0 at once.
 */
int link_wait(struct link *l, int extra_fd, short extra_events);

/* Queue a REFUSE with the reason and text (both logged), then flush it. */
void link_refuse(struct link *l, unsigned int reason, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Queue the first frame of a session, and wait for the peer's within the
 * timeout, or until the owner's stop is set (-EINTR).
 */
int link_hello(struct link *l, const struct dmrepl_proto_hello *ours,
	       struct dmrepl_proto_hello *theirs);

#endif /* REPLD_LINK_H */
