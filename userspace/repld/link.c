// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A framed TLS connection to the peer (link.h).
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "clock.h"
#include "link.h"

#define NSEC_PER_MSEC 1000000ULL
#define NSEC_PER_SEC 1000000000ULL
/* The bucket holds at most this long a burst at the limit, or one chunk. */
#define BUCKET_NS (100 * NSEC_PER_MSEC)
#define BUCKET_MIN 65536.0

int link_init(struct link *l, const struct link_owner *owner, struct dmrepl_tls_conn *conn,
	      size_t max_body)
{
	__u64 now = now_ns();

	memset(l, 0, sizeof(*l));
	l->owner = owner;
	l->conn = conn;
	l->max_body = max_body;
	l->in_cap = DMREPL_PROTO_HDR_SIZE + max_body;
	l->in = malloc(l->in_cap);
	dmrepl_obuf_init(&l->out);
	l->last_rx_ns = l->last_tx_ns = l->refill_ns = now;
	l->heartbeat_ns = owner->heartbeat_ms * NSEC_PER_MSEC;
	l->timeout_ns = owner->timeout_ms * NSEC_PER_MSEC;
	l->rate = owner->bandwidth;
	return l->in ? 0 : -ENOMEM;
}

void link_close(struct link *l)
{
	dmrepl_tls_close(l->conn);
	l->conn = NULL;
	free(l->in);
	l->in = NULL;
	dmrepl_obuf_free(&l->out);
}

static double bucket_size(const struct link *l)
{
	double burst = (double)l->rate * BUCKET_NS / NSEC_PER_SEC;

	return burst > BUCKET_MIN ? burst : BUCKET_MIN;
}

/* Bytes the limit allows now (SIZE_MAX without a limit). */
static size_t allowance(struct link *l)
{
	__u64 now = now_ns();

	if (!l->rate)
		return SIZE_MAX;
	l->tokens += (double)(now - l->refill_ns) * l->rate / NSEC_PER_SEC;
	l->refill_ns = now;
	if (l->tokens > bucket_size(l))
		l->tokens = bucket_size(l);
	return l->tokens >= 1 ? (size_t)l->tokens : 0;
}

/* ns until the bucket allows a write again (0: now, or no limit). */
static __u64 refill_wait_ns(const struct link *l)
{
	if (!l->rate || l->tokens >= 1)
		return 0;
	return (__u64)((1 - l->tokens) * NSEC_PER_SEC / l->rate) + 1;
}

/* Tell the owner, error or not (struct link_owner). */
static void say(const struct link *l, int level, bool error, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void say(const struct link *l, int level, bool error, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	l->owner->log(l->owner->arg, level, error, msg);
}

/* The link is broken: @what failed with @err, for @why (NULL: errno's words). */
static int broken_why(struct link *l, int err, const char *what, const char *why)
{
	say(l, LOG_WARNING, false, "peer %s: %s: %s", l->owner->peer, what,
	    why && *why ? why : strerror(-err));
	return err;
}

static int broken(struct link *l, int err, const char *what)
{
	return broken_why(l, err, what, dmrepl_tls_error(l->conn));
}

/*
 * Read what the socket has into the input buffer: bytes read (> 0), 0 (none
 * now, or no room), -ECONNRESET at the peer's close, or -errno.
 */
static ssize_t read_some(struct link *l)
{
	ssize_t n;

	if (l->in_off) {
		memmove(l->in, l->in + l->in_off, l->in_len - l->in_off);
		l->in_len -= l->in_off;
		l->in_off = 0;
	}
	if (l->in_len == l->in_cap)
		return 0;
	n = dmrepl_tls_read(l->conn, l->in + l->in_len, l->in_cap - l->in_len);
	if (n == -EAGAIN)
		return 0;
	if (!n)
		return -ECONNRESET;
	if (n > 0) {
		l->in_len += (size_t)n;
		l->last_rx_ns = now_ns();
	}
	return n;
}

/* As read_some(), the end of the link logged: 1 (bytes read), 0 or -errno. */
static int fill(struct link *l)
{
	ssize_t n = read_some(l);

	if (l->send_err && n <= 0)	/* the frames that came are taken */
		return broken_why(l, l->send_err, "send", l->send_why);
	if (n == -ECONNRESET) {
		say(l, LOG_WARNING, false, "peer %s closed the connection", l->owner->peer);
		return -ECONNRESET;
	}
	if (n < 0)
		return broken(l, (int)n, "receive");
	return n > 0;
}

/*
 * A send failed. A peer that refuses us and closes resets the connection
 * when bytes of ours are still unread there, and its REFUSE then waits
 * unread here: the caller must hear the peer's reason, not "Broken pipe".
 * So when a whole frame came in, the failure waits until link_next() has
 * handed over every frame that came; what is queued or sent meanwhile is
 * dropped.
 */
static int send_failed(struct link *l, int err)
{
	const char *why = dmrepl_tls_error(l->conn);
	struct dmrepl_frame f;

	/* The reads below say their own errors: the send's words first. */
	snprintf(l->send_why, sizeof(l->send_why), "%s", why ? why : "");
	while (read_some(l) > 0)
		;
	if (dmrepl_frame_decode(l->in + l->in_off, l->in_len - l->in_off, l->max_body, &f) <= 0)
		return broken_why(l, err, "send", l->send_why);
	l->send_err = err;
	l->retry_len = 0;
	dmrepl_obuf_consume(&l->out, dmrepl_obuf_pending(&l->out));
	return 0;
}

int link_flush(struct link *l)
{
	size_t chunk;
	ssize_t n;

	if (l->send_err) {	/* what is queued can no longer go */
		dmrepl_obuf_consume(&l->out, dmrepl_obuf_pending(&l->out));
		return 0;
	}
	while (dmrepl_obuf_pending(&l->out)) {
		chunk = allowance(l);
		if (chunk < l->retry_len)	/* TLS wants the same bytes again */
			chunk = l->retry_len;
		if (!chunk)
			return 0;
		if (chunk > dmrepl_obuf_pending(&l->out))
			chunk = dmrepl_obuf_pending(&l->out);
		n = dmrepl_tls_write(l->conn, dmrepl_obuf_data(&l->out), chunk);
		if (n == -EAGAIN) {
			l->retry_len = chunk;
			return 0;
		}
		if (n < 0)
			return send_failed(l, (int)n);
		l->retry_len = 0;
		dmrepl_obuf_consume(&l->out, (size_t)n);
		l->tokens -= (double)n;
		l->wire_tx += (__u64)n;
		l->last_tx_ns = now_ns();
	}
	return 0;
}

static unsigned int decode_reason(long err)
{
	if (err == -EPROTO)
		return DMREPL_REFUSE_VERSION;
	return err == -EMSGSIZE ? DMREPL_REFUSE_TOO_LARGE : DMREPL_REFUSE_MALFORMED;
}

int link_next(struct link *l, struct dmrepl_frame *f)
{
	long ret;
	int got;

	for (;;) {
		ret = dmrepl_frame_decode(l->in + l->in_off, l->in_len - l->in_off,
					  l->max_body, f);
		if (ret > 0) {
			l->in_off += (size_t)ret;
			return 1;
		}
		if (ret < 0) {
			link_refuse(l, decode_reason(ret), "bad frame from %s: %s (%llu)",
				    l->owner->peer, f->why, (unsigned long long)f->bad_value);
			return (int)ret;
		}
		got = fill(l);
		if (got <= 0)
			return got;
	}
}

/*
 * poll(2)'s timeout: until the next heartbeat, the dead line or a refill.
 * A heartbeat is queued only when nothing else is (link_wait()): while
 * bytes wait for room in the socket, its deadline is no reason to wake,
 * and once past, it would make every poll return at once (a busy loop for
 * as long as a slow link keeps the socket full).
 */
static int wait_ms(const struct link *l, __u64 now)
{
	__u64 hb = l->last_tx_ns + l->heartbeat_ns, dead = l->last_rx_ns + l->timeout_ns;
	__u64 until = dead, refill = refill_wait_ns(l);
	bool pending = dmrepl_obuf_pending(&l->out);

	if (!pending && hb < until)
		until = hb;
	if (pending && refill && now + refill < until)
		until = now + refill;
	if (l->wake_ns && l->wake_ns < until)
		until = l->wake_ns;
	if (until <= now)
		return 0;
	return (int)((until - now + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC);
}

int link_keepalive(struct link *l)
{
	__u64 now = now_ns();

	if (!dmrepl_obuf_pending(&l->out) && now - l->last_tx_ns >= l->heartbeat_ns &&
	    dmrepl_proto_put_heartbeat(&l->out, now))
		return -ENOMEM;
	return link_flush(l);
}

int link_wait(struct link *l, int extra_fd, short extra_events)
{
	struct pollfd p[2] = {
		{ .fd = dmrepl_tls_fd(l->conn), .events = POLLIN },
		{ .fd = extra_fd, .events = extra_events },
	};
	__u64 now = now_ns();
	int ret;

	if (l->send_err)	/* no wait: link_next() has frames, then the failure */
		return 0;
	if (dmrepl_obuf_pending(&l->out) && (l->retry_len || !refill_wait_ns(l)))
		p[0].events |= POLLOUT;
	ret = poll(p, extra_fd >= 0 ? 2 : 1,
		   dmrepl_tls_pending(l->conn) ? 0 : wait_ms(l, now));
	if (ret < 0)
		return errno == EINTR ? 0 : -errno;
	now = now_ns();
	if (now - l->last_rx_ns > l->timeout_ns) {
		say(l, LOG_WARNING, false, "peer %s silent for %u ms: link considered dead",
		    l->owner->peer, l->owner->timeout_ms);
		return -ETIMEDOUT;
	}
	if (!dmrepl_obuf_pending(&l->out) && now - l->last_tx_ns >= l->heartbeat_ns) {
		if (dmrepl_proto_put_heartbeat(&l->out, now))
			return -ENOMEM;
	}
	ret = link_flush(l);
	if (ret)
		return ret;
	return extra_fd >= 0 ? p[1].revents : 0;
}

void link_refuse(struct link *l, unsigned int reason, const char *fmt, ...)
{
	char text[DMREPL_PROTO_REFUSE_TEXT_MAX + 1];
	va_list ap;
	char *c;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (reason == DMREPL_REFUSE_SHUTDOWN || reason == DMREPL_REFUSE_ROLE)
		say(l, LOG_NOTICE, false, "ending the session with %s: %s", l->owner->peer, text);
	else
		say(l, LOG_ERR, true, "refusing peer %s: %s: %s", l->owner->peer,
		    dmrepl_proto_reason_name(reason), text);
	for (c = text; *c; c++)		/* the frame carries printable ASCII */
		if (*c < 0x20 || *c > 0x7e)
			*c = '?';
	if (!dmrepl_proto_put_refuse(&l->out, reason, text))
		link_flush(l);
}

static int peer_refused(struct link *l, const struct dmrepl_proto_refuse *r)
{
	const char *name = dmrepl_proto_reason_name(r->reason);

	say(l, LOG_ERR, true, "peer %s refused us: %s: %s", l->owner->peer,
	    name ? name : "unknown reason", r->text);
	return -ECONNREFUSED;
}

int link_hello(struct link *l, const struct dmrepl_proto_hello *ours,
	       struct dmrepl_proto_hello *theirs)
{
	struct dmrepl_frame f;
	int ret;

	ret = dmrepl_proto_put_hello(&l->out, ours);
	if (ret)
		return ret;
	for (;;) {
		if (l->owner->stop && *l->owner->stop)
			return -EINTR;
		ret = link_flush(l);
		if (!ret)
			ret = link_next(l, &f);
		if (ret < 0)
			return ret;
		if (ret && f.type == DMREPL_FRAME_HELLO) {
			*theirs = f.hello;
			return 0;
		}
		if (ret && f.type == DMREPL_FRAME_REFUSE)
			return peer_refused(l, &f.refuse);
		if (ret && f.type != DMREPL_FRAME_HEARTBEAT) {
			link_refuse(l, DMREPL_REFUSE_MALFORMED,
				    "frame type %u before HELLO", f.type);
			return -EPROTO;
		}
		if (!ret) {
			ret = link_wait(l, -1, 0);
			if (ret < 0)
				return ret;
		}
	}
}
