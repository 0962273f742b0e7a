// SPDX-License-Identifier: GPL-2.0
/*
 * repld's primary: its session (session_primary(), run as group_main() runs
 * it, by group_run_session()) and its group's thread, over a fake ring
 * (fakering.c) and with the test as the replica: real TLS 1.3 in PSK mode
 * and the real frame codec, over a socketpair or loopback TCP.
 *
 * Pinned here, each found missing by a review (commit 0f49788):
 *  - records the replica already has are skipped, so no ack comes for them:
 *    they are released all the same, or a failover waiting for the ring to
 *    drain waits forever;
 *  - only an ack that lands batches of this session opens the window: one
 *    of another stream or from before the session does not, one past the
 *    last sequence sent is refused, and nothing is released beyond what the
 *    replica has;
 *  - a peer that connects and goes silent, or stalls in a handshake or a
 *    frame, holds the group's thread no longer than the handshake cap
 *    (HANDSHAKE_MAX_MS, whatever the configured timeout) or the dead-peer
 *    timeout.
 * And, of protocol 3: a replica whose generations diverged is refused and
 * the status says why; a RESEND the primary cannot take is refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#include "dmrepl_proto.h"
#include "dmrepl_tls.h"
#include "fakering.h"
#include "link.h"
#include "repld.h"
#include "kselftest_harness.h"

#define GROUP		"vm7"
#define STREAM		0x5e55104e00000001ULL
#define OTHER_STREAM	0x0dd0000000000002ULL
#define PSK_ID		"dm-repl test_session"
/* A guard: what does not happen in this time did not happen. */
#define TIMEOUT_MS	10000
/* How late a timer may fire on a busy, sanitized host. */
#define SLACK_MS	2500
/* Far above HANDSHAKE_MAX_MS: the cap, not the timeout, must end a handshake. */
#define LONG_TIMEOUT_MS	60000
#define SHORT_TIMEOUT_MS 400
#define HEARTBEAT_MS	100
/* One record a batch: windows count batches, and this makes them records. */
#define REC_LEN		dmrepl_rec_size(FAKERING_PAYLOAD)
#define MAX_BATCH	DMREPL_PROTO_MAX_BATCH_MIN
#define MAX_BODY	(DMREPL_PROTO_BATCH_HDR + MAX_BATCH)
#define NSEC_PER_MSEC	1000000ULL

static const unsigned char psk_key[32] = {
	0x3c, 0x91, 0x07, 0xe2, 0x5a, 0x18, 0xd4, 0x6f, 0x82, 0x2b, 0xc9, 0x70, 0x15, 0xae,
	0x4d, 0xf3, 0x68, 0x0e, 0xb7, 0x39, 0xd1, 0x5c, 0x26, 0x8a, 0xf0, 0x43, 0x9e, 0x11,
	0x7b, 0xc5, 0x2d, 0x64,
};

static long long ms_since(__u64 t0)
{
	return (long long)((now_ns() - t0) / NSEC_PER_MSEC);
}

/* poll() one fd until the deadline: its revents, or 0 when the time ran out. */
static short wait_fd(int fd, short events, __u64 end_ns)
{
	struct pollfd p = { .fd = fd, .events = events };
	__u64 now;

	for (;;) {
		now = now_ns();
		if (now >= end_ns)
			return 0;
		if (poll(&p, 1, (int)((end_ns - now) / NSEC_PER_MSEC) + 1) > 0)
			return p.revents;
	}
}

/* ---- this site: its resource file, its group, its ring ------------------- */

struct site {
	char dir[32], psk[64];
	struct dmrepl_conf_group conf;
	struct group g;
	bool group_ready;
	struct fakering ring;
	bool ring_ready;
	struct dmrepl_tls *replica_tls;	/* the peer's side: a TLS server */
};

static int write_psk(const char *path)
{
	char hex[2 * sizeof(psk_key) + 2];
	size_t i;
	int fd, ok;

	for (i = 0; i < sizeof(psk_key); i++)
		snprintf(hex + 2 * i, 3, "%02x", psk_key[i]);
	strcat(hex, "\n");
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	ok = write(fd, hex, strlen(hex)) == (ssize_t)strlen(hex);
	close(fd);
	return ok ? 0 : -EIO;
}

/*
 * Site alpha of group GROUP, primary, PSK mode, listening on 127.0.0.1 (a
 * port of its own); its peer beta at 127.0.0.1:peer_port. Windows of 2,
 * one record a batch, a heartbeat of HEARTBEAT_MS and a dead-peer timeout
 * of TIMEOUT_MS: a test changes them before its session starts.
 */
static int site_setup(struct site *s, unsigned short peer_port, char *err, size_t errlen)
{
	struct dmrepl_conf_group *c = &s->conf;
	struct dmrepl_tls_conf tc = {
		.psk_mode = true, .psk = psk_key, .psk_len = sizeof(psk_key),
		.psk_identity = PSK_ID,
	};
	int ret;

	snprintf(s->dir, sizeof(s->dir), "/tmp/test_session.XXXXXX");
	if (!mkdtemp(s->dir)) {
		s->dir[0] = '\0';
		return -errno;
	}
	snprintf(s->psk, sizeof(s->psk), "%s/psk", s->dir);
	ret = write_psk(s->psk);
	if (ret)
		return ret;
	c->name = GROUP;
	c->file = "/etc/dm-repl/" GROUP ".conf";
	c->auth = DMREPL_AUTH_PSK;
	c->psk = s->psk;
	c->psk_identity = PSK_ID;
	c->compress_level = 1;
	c->window = 2;
	c->batch_bytes = REC_LEN;
	c->heartbeat_ms = HEARTBEAT_MS;
	c->timeout_ms = TIMEOUT_MS;
	c->sites[0].name = "alpha";
	c->sites[0].host = "alpha";
	c->sites[0].address = "127.0.0.1";
	c->sites[1].name = "beta";
	c->sites[1].host = "beta";
	c->sites[1].address = "127.0.0.1";
	c->sites[1].port = peer_port;
	ret = fakering_create(&s->ring, GROUP, STREAM);
	if (ret)
		return ret;
	s->ring_ready = true;
	s->group_ready = true;
	if (group_setup(&s->g, c, "alpha"))
		return -EINVAL;		/* its reason is on stderr */
	s->replica_tls = dmrepl_tls_new(&tc, true, err, errlen);
	return s->replica_tls ? 0 : -EINVAL;
}

static void site_teardown(struct site *s)
{
	if (s->group_ready)
		group_teardown(&s->g);
	dmrepl_tls_free(s->replica_tls);
	if (s->ring_ready)
		fakering_destroy(&s->ring);
	if (s->dir[0]) {
		unlink(s->psk);
		rmdir(s->dir);
	}
}

static enum link_state group_state(struct group *g, char *last_error, size_t len)
{
	enum link_state state;

	pthread_mutex_lock(&g->lock);
	state = g->st.state;
	if (last_error)
		snprintf(last_error, len, "%s", g->st.last_error);
	pthread_mutex_unlock(&g->lock);
	return state;
}

static __u64 group_acked_seq(struct group *g)
{
	__u64 seq;

	pthread_mutex_lock(&g->lock);
	seq = g->st.acked_seq;
	pthread_mutex_unlock(&g->lock);
	return seq;
}

/* Wait until the ring is released up to seq; false when TIMEOUT_MS ran out. */
static bool wait_released(struct fakering *f, __u64 seq)
{
	__u64 end = now_ns() + TIMEOUT_MS * NSEC_PER_MSEC;

	while (fakering_released(f) < seq) {
		if (now_ns() >= end)
			return false;
		poll(NULL, 0, 5);
	}
	return true;
}

static bool wait_state(struct group *g, enum link_state state)
{
	__u64 end = now_ns() + TIMEOUT_MS * NSEC_PER_MSEC;

	while (group_state(g, NULL, 0) != state) {
		if (now_ns() >= end)
			return false;
		poll(NULL, 0, 5);
	}
	return true;
}

/* Everything freed by now is all there is: a leak is a failure. */
static int leaks(void)
{
#if defined(__SANITIZE_ADDRESS__)
	return __lsan_do_recoverable_leak_check();
#else
	return 0;
#endif
}

/* ---- the replica: the test's side of the link ---------------------------- */

struct replica {
	struct dmrepl_tls_conn *conn;
	struct dmrepl_obuf out;
	unsigned char *in;		/* received, from in_off to in_len */
	size_t in_off, in_len;
	void *records;			/* a batch's, unpacked */
	struct dmrepl_proto_hello primary;	/* the primary's HELLO */
};

static int replica_init(struct replica *r)
{
	dmrepl_obuf_init(&r->out);
	r->in = malloc(DMREPL_PROTO_HDR_SIZE + MAX_BODY);
	r->records = aligned_alloc(8, MAX_BATCH);
	return r->in && r->records ? 0 : -ENOMEM;
}

static void replica_free(struct replica *r)
{
	dmrepl_tls_close(r->conn);
	r->conn = NULL;
	dmrepl_obuf_free(&r->out);
	free(r->in);
	free(r->records);
	r->in = r->records = NULL;
}

static int replica_handshake(struct replica *r, struct dmrepl_tls *tls, int fd, char *err,
			     size_t errlen)
{
	return dmrepl_tls_handshake(tls, fd, TIMEOUT_MS, &r->conn, err, errlen);
}

/* Send what is queued, within TIMEOUT_MS: 0 or -errno. */
static int replica_send(struct replica *r)
{
	__u64 end = now_ns() + TIMEOUT_MS * NSEC_PER_MSEC;
	ssize_t n;

	while (dmrepl_obuf_pending(&r->out)) {
		n = dmrepl_tls_write(r->conn, dmrepl_obuf_data(&r->out),
				     dmrepl_obuf_pending(&r->out));
		if (n > 0)
			dmrepl_obuf_consume(&r->out, (size_t)n);
		else if (n != -EAGAIN)
			return n ? (int)n : -EIO;
		else if (!wait_fd(dmrepl_tls_fd(r->conn), dmrepl_tls_events(r->conn), end))
			return -ETIMEDOUT;
	}
	return 0;
}

/*
 * The next frame from the primary but heartbeats, within ms: 1, 0 when the
 * primary closed the connection, or -errno (-ETIMEDOUT, a decode error, a
 * broken connection). A BATCH's payload is valid until the next call.
 */
static int replica_next(struct replica *r, struct dmrepl_frame *f, int ms)
{
	__u64 end = now_ns() + (__u64)ms * NSEC_PER_MSEC;
	ssize_t n;
	long len;

	for (;;) {
		len = dmrepl_frame_decode(r->in + r->in_off, r->in_len - r->in_off, MAX_BODY, f);
		if (len < 0)
			return (int)len;
		if (len > 0) {
			r->in_off += (size_t)len;
			if (f->type == DMREPL_FRAME_HEARTBEAT)
				continue;
			return 1;
		}
		memmove(r->in, r->in + r->in_off, r->in_len - r->in_off);
		r->in_len -= r->in_off;
		r->in_off = 0;
		n = dmrepl_tls_read(r->conn, r->in + r->in_len,
				    DMREPL_PROTO_HDR_SIZE + MAX_BODY - r->in_len);
		if (n > 0)
			r->in_len += (size_t)n;
		else if (n != -EAGAIN)
			return (int)n;
		else if (!wait_fd(dmrepl_tls_fd(r->conn), dmrepl_tls_events(r->conn), end))
			return -ETIMEDOUT;
	}
}

static const char *frame_name(const struct dmrepl_frame *f)
{
	static char text[DMREPL_PROTO_REFUSE_TEXT_MAX + 64];
	const char *reason;

	switch (f->type) {
	case DMREPL_FRAME_HELLO:
		return "HELLO";
	case DMREPL_FRAME_BATCH:
		snprintf(text, sizeof(text), "BATCH of seq %llu..%llu",
			 (unsigned long long)f->batch.first_seq,
			 (unsigned long long)f->batch.last_seq);
		return text;
	case DMREPL_FRAME_ACK:
		return "ACK";
	case DMREPL_FRAME_REFUSE:
		reason = dmrepl_proto_reason_name(f->refuse.reason);
		snprintf(text, sizeof(text), "REFUSE (%s): %s", reason ? reason : "?",
			 f->refuse.text);
		return text;
	}
	return "a frame of unknown type";
}

/* As the replica: queue an ACK of the applied point (stream, seq), for batch acked. */
static int replica_ack(struct replica *r, __u64 stream, __u64 seq, __u64 acked)
{
	struct dmrepl_proto_ack a = {
		.applied_stream = stream, .applied_seq = seq, .acked_last_seq = acked,
	};

	return dmrepl_proto_put_ack(&r->out, &a);
}

/*
 * The HELLO of a replica of the primary's generation whose durable applied
 * point is (stream, seq), taking window batches in flight.
 */
static void replica_default_hello(struct dmrepl_proto_hello *h, __u64 stream, __u64 seq,
				  unsigned int window)
{
	const struct dmrepl_proto_hello d = {
		.group = GROUP, .site = "beta", .role = DMREPL_PROTO_SECONDARY,
		.applied_stream = stream, .applied_seq = seq,
		.max_batch = MAX_BATCH, .window = window,
		.gen_current = FAKERING_GEN,
		.nvolumes = 1, .volumes = { { .index = 0, .region_sectors = FAKERING_REGION_SECTORS,
					      .sectors = FAKERING_SECTORS } },
	};

	*h = d;
}

/* The HELLO exchange as a replica that says h. The primary's HELLO is kept. */
static void replica_send_hello(struct __test_metadata *_metadata, struct replica *r,
			       const struct dmrepl_proto_hello *h)
{
	struct dmrepl_frame f;

	ASSERT_EQ(1, replica_next(r, &f, TIMEOUT_MS));
	ASSERT_EQ((unsigned int)DMREPL_FRAME_HELLO, f.type) TH_LOG("%s", frame_name(&f));
	r->primary = f.hello;
	ASSERT_EQ(0, dmrepl_proto_put_hello(&r->out, h));
	ASSERT_EQ(0, replica_send(r));
}

static void replica_hello(struct __test_metadata *_metadata, struct replica *r, __u64 stream,
			  __u64 seq, unsigned int window)
{
	struct dmrepl_proto_hello h;

	replica_default_hello(&h, stream, seq, window);
	replica_send_hello(_metadata, r, &h);
}

/* The next frame is a BATCH of seq first..last of the ring's stream, records intact. */
static void expect_batch(struct __test_metadata *_metadata, struct replica *r, __u64 first,
			 __u64 last)
{
	const char *why = "";
	struct dmrepl_frame f;

	ASSERT_EQ(1, replica_next(r, &f, TIMEOUT_MS));
	ASSERT_EQ((unsigned int)DMREPL_FRAME_BATCH, f.type) TH_LOG("%s", frame_name(&f));
	EXPECT_EQ(STREAM, f.batch.stream);
	ASSERT_EQ(first, f.batch.first_seq) TH_LOG("%s", frame_name(&f));
	ASSERT_EQ(last, f.batch.last_seq) TH_LOG("%s", frame_name(&f));
	ASSERT_EQ(0, dmrepl_proto_batch_unpack(&f.batch, r->records, MAX_BATCH, &why))
		TH_LOG("%s: %s", frame_name(&f), why);
}

/*
 * Stop as a replica does (REFUSE SHUTDOWN) and read on to the primary's
 * close: the batches that came meanwhile are counted. 0, or -errno.
 */
static int replica_stop(struct replica *r, unsigned int *batches)
{
	struct dmrepl_frame f;
	int ret;

	*batches = 0;
	ret = dmrepl_proto_put_refuse(&r->out, DMREPL_REFUSE_SHUTDOWN, "replica stopping");
	if (!ret)
		ret = replica_send(r);
	if (ret)
		return ret;
	while ((ret = replica_next(r, &f, TIMEOUT_MS)) == 1)
		if (f.type == DMREPL_FRAME_BATCH)
			(*batches)++;
	return ret;
}

/* ---- a session of the primary, in a thread of its own ---------------------- */

struct primary {
	struct group *g;
	int fd;				/* its end of the socketpair */
	pthread_t thread;
	bool started;			/* then fd is the handshake's */
	bool running;			/* started, not joined */
	int handshake;			/* dmrepl_tls_handshake()'s */
	char err[512];
	bool streamed;			/* group_run_session()'s */
};

/* The group's thread for one connection: a dial's handshake, then the session. */
static void *primary_run(void *arg)
{
	struct primary *p = arg;
	struct dmrepl_tls_conn *conn;

	p->handshake = dmrepl_tls_handshake(p->g->tls_client, p->fd, TIMEOUT_MS, &conn,
					    p->err, sizeof(p->err));
	if (!p->handshake)
		p->streamed = group_run_session(p->g, conn, DM_REPL_ROLE_PRIMARY);
	return NULL;
}

static int primary_start(struct primary *p)
{
	int ret = pthread_create(&p->thread, NULL, primary_run, p);

	p->started = p->running = !ret;
	return -ret;
}

/* Join within ms: 0, or -ETIMEDOUT (the thread still runs). */
static int primary_join(struct primary *p, int ms)
{
	struct timespec ts;
	int ret;

	if (!p->running)
		return 0;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	ret = pthread_timedjoin_np(p->thread, NULL, &ts);
	if (!ret)
		p->running = false;
	return -ret;
}

FIXTURE(session) {
	struct site site;
	struct replica r;
	struct primary p;
	int replica_fd;			/* until the replica's handshake takes it */
	struct dmrepl_frame f;
	char err[512];
};

FIXTURE_SETUP(session)
{
	int sv[2];

	self->p.fd = self->replica_fd = -1;
	ASSERT_EQ(0, site_setup(&self->site, 0, self->err, sizeof(self->err)))
		TH_LOG("%s", self->err);
	ASSERT_EQ(0, replica_init(&self->r));
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	self->p.fd = sv[0];
	self->replica_fd = sv[1];
	self->p.g = &self->site.g;
	snprintf(self->site.g.st.peer, sizeof(self->site.g.st.peer), "the test's replica");
}

FIXTURE_TEARDOWN(session)
{
	/* A session still running (a test that failed) ends on a stop or a close. */
	repld_stopping = 1;
	replica_free(&self->r);
	if (self->replica_fd >= 0)
		close(self->replica_fd);
	if (primary_join(&self->p, TIMEOUT_MS)) {
		TH_LOG("the primary's session did not end: its memory stays");
		_metadata->passed = 0;
		return;
	}
	if (!self->p.started && self->p.fd >= 0)
		close(self->p.fd);
	/*
	 * Never a release of a sequence never reserved; every ring opened is
	 * closed. (No TH_LOG() here: after a failed ASSERT the harness would
	 * print it whatever the result.)
	 */
	EXPECT_EQ(0U, self->site.ring.bad_releases);
	EXPECT_EQ(self->site.ring.opens, self->site.ring.closes);
	site_teardown(&self->site);
	EXPECT_EQ(0, leaks());
}

/* The primary's session starts, and the replica shakes hands and says h. */
static void connect_replica_hello(struct __test_metadata *_metadata,
				  FIXTURE_DATA(session) *self, const struct dmrepl_proto_hello *h)
{
	int fd = self->replica_fd;

	ASSERT_EQ(0, primary_start(&self->p));
	self->replica_fd = -1;
	ASSERT_EQ(0, replica_handshake(&self->r, self->site.replica_tls, fd, self->err,
				       sizeof(self->err))) TH_LOG("%s", self->err);
	replica_send_hello(_metadata, &self->r, h);
	EXPECT_EQ(STREAM, self->r.primary.stream);
	EXPECT_EQ(self->site.ring.next_seq, self->r.primary.next_seq);
	EXPECT_EQ(FAKERING_GEN, self->r.primary.gen_current);
}

/* ... with the HELLO of a replica of the primary's generation. */
static void connect_replica(struct __test_metadata *_metadata, FIXTURE_DATA(session) *self,
			    __u64 applied_stream, __u64 applied_seq, unsigned int window)
{
	struct dmrepl_proto_hello h;

	replica_default_hello(&h, applied_stream, applied_seq, window);
	connect_replica_hello(_metadata, self, &h);
}

/* The next frame is a REFUSE of reason and text, and the session ends without streaming. */
static void expect_refused(struct __test_metadata *_metadata, FIXTURE_DATA(session) *self,
			   unsigned int reason, const char *text)
{
	ASSERT_EQ(1, replica_next(&self->r, &self->f, TIMEOUT_MS));
	ASSERT_EQ((unsigned int)DMREPL_FRAME_REFUSE, self->f.type)
		TH_LOG("%s", frame_name(&self->f));
	EXPECT_EQ(reason, self->f.refuse.reason);
	EXPECT_STREQ(text, self->f.refuse.text);
	EXPECT_EQ(0, replica_next(&self->r, &self->f, TIMEOUT_MS));
	ASSERT_EQ(0, primary_join(&self->p, TIMEOUT_MS));
}

/* The replica stops; the primary ends its session. Returns the batches sent meanwhile. */
static unsigned int stop_replica(struct __test_metadata *_metadata,
				 FIXTURE_DATA(session) *self)
{
	unsigned int batches = 0;

	EXPECT_EQ(0, replica_stop(&self->r, &batches));
	EXPECT_EQ(0, primary_join(&self->p, TIMEOUT_MS));
	EXPECT_TRUE(self->p.streamed);
	return batches;
}

/* ---- skipped records are released ----------------------------------------- */

TEST_F(session, records_the_replica_has_are_released_with_no_ack_to_come)
{
	ASSERT_EQ(0, fakering_append(&self->site.ring, 10));
	connect_replica(_metadata, self, STREAM, 10, 2);
	/* Nothing to send, nothing to ack: the ring drains all the same. */
	ASSERT_TRUE(wait_released(&self->site.ring, 10))
		TH_LOG("released up to %llu of 10, no ack to come",
		       (unsigned long long)fakering_released(&self->site.ring));
	EXPECT_EQ(10U, group_acked_seq(&self->site.g));
	/* None of them was sent: the next batch is the next record. */
	ASSERT_EQ(0, fakering_append(&self->site.ring, 2));
	expect_batch(_metadata, &self->r, 11, 11);
	expect_batch(_metadata, &self->r, 12, 12);
	ASSERT_EQ(0, replica_ack(&self->r, STREAM, 12, 12));
	ASSERT_EQ(0, replica_send(&self->r));
	ASSERT_TRUE(wait_released(&self->site.ring, 12));
	EXPECT_EQ(0U, stop_replica(_metadata, self));
	EXPECT_EQ(12U, fakering_released(&self->site.ring));
}

TEST_F(session, records_the_replica_has_are_released_before_the_first_ack)
{
	__u64 seq;

	ASSERT_EQ(0, fakering_append(&self->site.ring, 8));
	connect_replica(_metadata, self, STREAM, 4, 2);
	/* The release of 1..4 comes with the first batch, not with its ack. */
	expect_batch(_metadata, &self->r, 5, 5);
	EXPECT_EQ(4U, fakering_released(&self->site.ring));
	expect_batch(_metadata, &self->r, 6, 6);
	EXPECT_EQ(4U, fakering_released(&self->site.ring));
	for (seq = 5; seq <= 8; seq++) {
		ASSERT_EQ(0, replica_ack(&self->r, STREAM, seq, seq));
		ASSERT_EQ(0, replica_send(&self->r));
		ASSERT_TRUE(wait_released(&self->site.ring, seq));
		if (seq + 2 <= 8)
			expect_batch(_metadata, &self->r, seq + 2, seq + 2);
	}
	EXPECT_EQ(0U, stop_replica(_metadata, self));
	EXPECT_EQ(8U, fakering_released(&self->site.ring));
}

/* ---- the window: batches in flight ----------------------------------------- */

/*
 * A window of 2 full (batches first and first + 1 in flight), nacks acks
 * that land no batch, then the ack of batch first: one more batch may go,
 * no other. The count at the end holds whatever the primary sent.
 */
static void window_holds(struct __test_metadata *_metadata, FIXTURE_DATA(session) *self,
			 __u64 first, int nacks, __u64 ack_stream, __u64 ack_seq, __u64 ack_last)
{
	int i;

	expect_batch(_metadata, &self->r, first, first);
	expect_batch(_metadata, &self->r, first + 1, first + 1);
	for (i = 0; i < nacks; i++)
		ASSERT_EQ(0, replica_ack(&self->r, ack_stream, ack_seq, ack_last));
	ASSERT_EQ(0, replica_send(&self->r));
	ASSERT_EQ(0, replica_ack(&self->r, STREAM, first, first));
	ASSERT_EQ(0, replica_send(&self->r));
	expect_batch(_metadata, &self->r, first + 2, first + 2);
	/* Two in flight again (first + 1, first + 2): no more until an ack. */
	EXPECT_EQ(0U, stop_replica(_metadata, self)) TH_LOG("batches past the window");
	EXPECT_EQ(first, fakering_released(&self->site.ring));
}

TEST_F(session, acks_of_another_stream_do_not_open_the_window)
{
	ASSERT_EQ(0, fakering_append(&self->site.ring, 20));
	connect_replica(_metadata, self, 0, 0, 2);
	/* The replica's applied point in another stream: nothing of ours applied. */
	window_holds(_metadata, self, 1, 8, OTHER_STREAM, 19, 2);
}

TEST_F(session, acks_from_before_the_session_do_not_open_the_window)
{
	ASSERT_EQ(0, fakering_append(&self->site.ring, 20));
	connect_replica(_metadata, self, STREAM, 3, 2);
	ASSERT_TRUE(wait_released(&self->site.ring, 3));
	/* Acks of what the replica had before: they land no batch of this session. */
	window_holds(_metadata, self, 4, 8, STREAM, 3, 3);
}

TEST_F(session, the_window_is_the_smaller_of_the_two_hellos)
{
	self->site.conf.window = 8;
	ASSERT_EQ(0, fakering_append(&self->site.ring, 20));
	connect_replica(_metadata, self, 0, 0, 2);
	window_holds(_metadata, self, 1, 0, 0, 0, 0);
}

TEST_F(session, an_ack_past_the_last_sequence_sent_is_refused_and_releases_nothing)
{
	char last_error[512];

	ASSERT_EQ(0, fakering_append(&self->site.ring, 20));
	connect_replica(_metadata, self, STREAM, 3, 2);
	expect_batch(_metadata, &self->r, 4, 4);
	expect_batch(_metadata, &self->r, 5, 5);
	ASSERT_EQ(0, replica_ack(&self->r, STREAM, 8, 5));
	ASSERT_EQ(0, replica_send(&self->r));
	ASSERT_EQ(1, replica_next(&self->r, &self->f, TIMEOUT_MS));
	ASSERT_EQ((unsigned int)DMREPL_FRAME_REFUSE, self->f.type)
		TH_LOG("%s", frame_name(&self->f));
	EXPECT_EQ((unsigned int)DMREPL_REFUSE_ORDER, self->f.refuse.reason);
	EXPECT_STREQ("ack of sequence 8, past the last sequence sent, 5", self->f.refuse.text);
	/* The session is over. */
	EXPECT_EQ(0, replica_next(&self->r, &self->f, TIMEOUT_MS));
	ASSERT_EQ(0, primary_join(&self->p, TIMEOUT_MS));
	/* What the replica had is released; what it claimed is not. */
	EXPECT_EQ(3U, fakering_released(&self->site.ring));
	EXPECT_EQ(3U, self->site.ring.last_release);
	group_state(&self->site.g, last_error, sizeof(last_error));
	EXPECT_NE(NULL, strstr(last_error, "past the last sequence sent")) TH_LOG("%s", last_error);
}

/* ---- generations and the replica's own regions ---------------------------- */

TEST_F(session, a_replica_of_another_lineage_is_refused_as_diverged_and_the_status_says_so)
{
	struct dmrepl_proto_hello h;

	ASSERT_EQ(0, fakering_append(&self->site.ring, 4));
	replica_default_hello(&h, STREAM, 2, 2);
	h.gen_current = 0x0dd0000000000077ULL;
	connect_replica_hello(_metadata, self, &h);
	expect_refused(_metadata, self, DMREPL_REFUSE_DIVERGED,
		       "split brain: the generations of the two sides share no history");
	EXPECT_FALSE(self->p.streamed);
	EXPECT_STREQ("split brain: the generations of the two sides share no history",
		     self->site.g.st.diverged);
	/* Nothing of the ring went to it, nor was released for it. */
	EXPECT_EQ(0U, fakering_released(&self->site.ring));
}

TEST_F(session, a_replica_with_writes_of_its_own_is_refused_as_diverged)
{
	struct dmrepl_proto_hello h;

	replica_default_hello(&h, STREAM, 0, 2);
	h.applied_stream = 0;
	h.flags = DMREPL_HELLO_DIRTY;
	connect_replica_hello(_metadata, self, &h);
	expect_refused(_metadata, self, DMREPL_REFUSE_DIVERGED,
		       "the replica holds writes of its own the primary lacks (dirty regions): "
		       "`repltool rejoin --discard-my-data` on it discards them");
	EXPECT_NE(NULL, strstr(self->site.g.st.diverged, "writes of its own"));
}

/* A divergence said by an earlier session, as the status would show it. */
#define EARLIER_SPLIT "split brain: the generations of the two sides share no history"

TEST_F(session, a_refusal_judged_after_the_generations_ends_the_divergence_said_before)
{
	struct dmrepl_proto_hello h;

	snprintf(self->site.g.st.diverged, sizeof(self->site.g.st.diverged), EARLIER_SPLIT);
	ASSERT_EQ(0, fakering_append(&self->site.ring, 4));
	/* The generations agree now (say, after a rejoin); the stream does not. */
	replica_default_hello(&h, STREAM, self->site.ring.next_seq + 3, 2);
	connect_replica_hello(_metadata, self, &h);
	expect_refused(_metadata, self, DMREPL_REFUSE_STREAM,
		       "the replica has applied past the primary's next sequence");
	EXPECT_STREQ("-", self->site.g.st.diverged);
}

TEST_F(session, a_refusal_judged_before_the_generations_keeps_the_divergence_said_before)
{
	struct dmrepl_proto_hello h;

	snprintf(self->site.g.st.diverged, sizeof(self->site.g.st.diverged), EARLIER_SPLIT);
	replica_default_hello(&h, STREAM, 0, 2);
	/* Another group: refused before its generations are looked at. */
	snprintf(h.group, sizeof(h.group), "other");
	connect_replica_hello(_metadata, self, &h);
	expect_refused(_metadata, self, DMREPL_REFUSE_GROUP, "the peer replicates another group");
	EXPECT_STREQ(EARLIER_SPLIT, self->site.g.st.diverged);
}

/* A RESEND of one region of volume, as the replica. */
static void replica_resend(struct __test_metadata *_metadata, struct replica *r, __u32 volume)
{
	struct dmrepl_proto_resend *rs = calloc(1, sizeof(*rs));

	ASSERT_NE(NULL, rs);
	rs->volume = volume;
	rs->count = 1;
	rs->regions[0] = 3;
	ASSERT_EQ(0, dmrepl_proto_put_resend(&r->out, rs));
	free(rs);
	ASSERT_EQ(0, replica_send(r));
}

TEST_F(session, a_resend_of_a_volume_the_primary_lacks_is_refused)
{
	connect_replica(_metadata, self, STREAM, 0, 2);
	replica_resend(_metadata, &self->r, 3);
	expect_refused(_metadata, self, DMREPL_REFUSE_VOLUMES,
		       "RESEND of volume 3: no such volume");
}

/*
 * Regions of another size are taken in ours (test_resync_ctl has the
 * arithmetic): region 3 of 1024 sectors starts past the volume's 2048, so
 * there is nothing to resend, and the session goes on.
 */
TEST_F(session, a_resend_in_another_region_size_is_taken_not_refused)
{
	struct dmrepl_proto_hello h;

	replica_default_hello(&h, STREAM, 0, 2);
	h.volumes[0].region_sectors = 8 * FAKERING_REGION_SECTORS;
	connect_replica_hello(_metadata, self, &h);
	replica_resend(_metadata, &self->r, 0);
	ASSERT_EQ(0, fakering_append(&self->site.ring, 1));
	expect_batch(_metadata, &self->r, 1, 1);
	ASSERT_EQ(0, replica_ack(&self->r, STREAM, 1, 1));
	ASSERT_EQ(0, replica_send(&self->r));
	ASSERT_TRUE(wait_released(&self->site.ring, 1));
	EXPECT_EQ(0U, stop_replica(_metadata, self));
}

/* ---- a silent peer ---------------------------------------------------------- */

/* The session ends by itself within the dead-peer timeout (and not before). */
static void ends_at_the_timeout(struct __test_metadata *_metadata, FIXTURE_DATA(session) *self,
				__u64 t0)
{
	long long ms;

	ASSERT_EQ(0, primary_join(&self->p, SHORT_TIMEOUT_MS + SLACK_MS))
		TH_LOG("the session outlived a silent peer by %d ms", SLACK_MS);
	ms = ms_since(t0);
	EXPECT_LE(SHORT_TIMEOUT_MS, ms);
	/* Closed with a close_notify, after heartbeats at most. */
	EXPECT_EQ(0, replica_next(&self->r, &self->f, TIMEOUT_MS))
		TH_LOG("%s", frame_name(&self->f));
}

TEST_F(session, a_replica_silent_after_its_hello_is_dropped_at_the_timeout)
{
	__u64 t0 = now_ns();

	self->site.conf.timeout_ms = SHORT_TIMEOUT_MS;
	ASSERT_EQ(0, fakering_append(&self->site.ring, 4));
	connect_replica(_metadata, self, STREAM, 4, 2);
	ends_at_the_timeout(_metadata, self, t0);
	EXPECT_TRUE(self->p.streamed);
	EXPECT_EQ(4U, fakering_released(&self->site.ring));
}

TEST_F(session, a_replica_silent_in_the_hello_exchange_is_dropped_at_the_timeout)
{
	int fd = self->replica_fd;
	__u64 t0;

	self->site.conf.timeout_ms = SHORT_TIMEOUT_MS;
	ASSERT_EQ(0, primary_start(&self->p));
	self->replica_fd = -1;
	t0 = now_ns();
	ASSERT_EQ(0, replica_handshake(&self->r, self->site.replica_tls, fd, self->err,
				       sizeof(self->err))) TH_LOG("%s", self->err);
	ASSERT_EQ(1, replica_next(&self->r, &self->f, TIMEOUT_MS));
	ASSERT_EQ((unsigned int)DMREPL_FRAME_HELLO, self->f.type);
	/* No HELLO goes back. */
	ends_at_the_timeout(_metadata, self, t0);
	EXPECT_EQ(0U, self->site.g.st.sessions);
}

TEST_F(session, a_replica_stalled_mid_frame_is_dropped_at_the_timeout)
{
	__u64 t0;

	self->site.conf.timeout_ms = SHORT_TIMEOUT_MS;
	ASSERT_EQ(0, fakering_append(&self->site.ring, 4));
	connect_replica(_metadata, self, 0, 0, 2);
	expect_batch(_metadata, &self->r, 1, 1);
	expect_batch(_metadata, &self->r, 2, 2);
	/* Ten bytes of an ACK's sixteen-byte header, and nothing more. */
	ASSERT_EQ(0, replica_ack(&self->r, STREAM, 1, 1));
	t0 = now_ns();
	ASSERT_EQ(10, dmrepl_tls_write(self->r.conn, dmrepl_obuf_data(&self->r.out), 10));
	ends_at_the_timeout(_metadata, self, t0);
	EXPECT_TRUE(self->p.streamed);
	EXPECT_EQ(0U, fakering_released(&self->site.ring));
}

/* ---- a peer's last words --------------------------------------------------- */

/* The dialing side's handshake, in a thread while the test answers it. */
struct dial {
	struct dmrepl_tls *tls;
	int fd;
	struct dmrepl_tls_conn *conn;
	int ret;
	char err[512];
};

static void *dial_run(void *arg)
{
	struct dial *d = arg;

	d->ret = dmrepl_tls_handshake(d->tls, d->fd, TIMEOUT_MS, &d->conn, d->err,
				      sizeof(d->err));
	return NULL;
}

#define LINK_SAID_MAX 1024

/* A link owner's log: every message, one a line. */
static void link_said(void *arg, int level, bool error, const char *msg)
{
	char *said = arg;
	size_t len = strlen(said);

	(void)level;
	(void)error;
	snprintf(said + len, LINK_SAID_MAX - len, "%s\n", msg);
}

/*
 * The replica refuses, closes and reads nothing: the primary's next send
 * fails (a TCP peer that closes with bytes unread resets the connection;
 * here the socketpair's EPIPE). The REFUSE that came first is still the
 * first thing the link hands over, and the failure comes after it: the log
 * that said "send: Broken pipe" in place of the peer's reason (rejoin-larger
 * in CI) says the reason now.
 */
TEST_F(session, a_refusal_that_came_before_a_failed_send_is_handed_over_first)
{
	struct dial d = { .tls = self->site.g.tls_client, .fd = self->p.fd };
	struct link_owner owner = {
		.peer = "the test's replica", .heartbeat_ms = HEARTBEAT_MS,
		.timeout_ms = TIMEOUT_MS, .log = link_said,
	};
	char said[LINK_SAID_MAX] = "";
	struct link l;
	pthread_t t;
	int fd = self->replica_fd;

	owner.arg = said;
	self->p.fd = self->replica_fd = -1;	/* the handshakes own them */
	ASSERT_EQ(0, pthread_create(&t, NULL, dial_run, &d));
	EXPECT_EQ(0, replica_handshake(&self->r, self->site.replica_tls, fd, self->err,
				       sizeof(self->err))) TH_LOG("%s", self->err);
	ASSERT_EQ(0, pthread_join(t, NULL));
	ASSERT_EQ(0, d.ret) TH_LOG("%s", d.err);
	ASSERT_EQ(0, link_init(&l, &owner, d.conn, MAX_BODY));
	ASSERT_NE(NULL, self->r.conn);
	ASSERT_EQ(0, dmrepl_proto_put_refuse(&self->r.out, DMREPL_REFUSE_VOLUMES,
					     "region 9 lies past the primary's end"));
	ASSERT_EQ(0, replica_send(&self->r));
	dmrepl_tls_close(self->r.conn);
	self->r.conn = NULL;

	ASSERT_EQ(0, dmrepl_proto_put_heartbeat(&l.out, now_ns()));
	EXPECT_EQ(0, link_flush(&l)) TH_LOG("%s", said);
	EXPECT_EQ(0, link_wait(&l, -1, 0));
	ASSERT_EQ(1, link_next(&l, &self->f)) TH_LOG("%s", said);
	ASSERT_EQ((unsigned int)DMREPL_FRAME_REFUSE, self->f.type);
	EXPECT_STREQ("region 9 lies past the primary's end", self->f.refuse.text);
	/* Then the send's failure, and nothing more goes. */
	EXPECT_EQ(-EPIPE, link_next(&l, &self->f));
	EXPECT_NE(NULL, strstr(said, "send: Broken pipe")) TH_LOG("%s", said);
	ASSERT_EQ(0, dmrepl_proto_put_heartbeat(&l.out, now_ns()));
	EXPECT_EQ(0, link_flush(&l));
	EXPECT_EQ(0U, dmrepl_obuf_pending(&l.out));
	link_close(&l);
}

/* ---- the group's thread ------------------------------------------------------ */

/*
 * group_main() of a primary whose peer's address is the test's listener;
 * a dead-peer timeout far above HANDSHAKE_MAX_MS.
 */
FIXTURE(group_thread) {
	struct site site;
	int listen_fd;			/* the peer's address */
	pthread_t thread;
	bool running;
	struct replica r;
	int fds[2];			/* connections the test stalls */
	char err[512];
};

FIXTURE_SETUP(group_thread)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);

	self->fds[0] = self->fds[1] = -1;
	self->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_LE(0, self->listen_fd);
	ASSERT_EQ(0, bind(self->listen_fd, (struct sockaddr *)&a, sizeof(a)));
	ASSERT_EQ(0, listen(self->listen_fd, 4));
	ASSERT_EQ(0, getsockname(self->listen_fd, (struct sockaddr *)&a, &alen));
	ASSERT_EQ(0, site_setup(&self->site, ntohs(a.sin_port), self->err, sizeof(self->err)))
		TH_LOG("%s", self->err);
	self->site.conf.timeout_ms = LONG_TIMEOUT_MS;
	ASSERT_EQ(0, replica_init(&self->r));
}

FIXTURE_TEARDOWN(group_thread)
{
	struct timespec ts;
	int i;

	repld_stopping = 1;
	replica_free(&self->r);
	for (i = 0; i < 2; i++)
		if (self->fds[i] >= 0)
			close(self->fds[i]);
	if (self->listen_fd >= 0)
		close(self->listen_fd);
	if (self->running) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += TIMEOUT_MS / 1000;
		if (pthread_timedjoin_np(self->thread, NULL, &ts)) {
			TH_LOG("the group's thread did not stop: its memory stays");
			_metadata->passed = 0;
			return;
		}
	}
	site_teardown(&self->site);
	EXPECT_EQ(0, leaks());
}

/* The next connection to the test's listener, within ms: its fd, or -1. */
static int accept_within(int listen_fd, int ms)
{
	if (!(wait_fd(listen_fd, POLLIN, now_ns() + (__u64)ms * NSEC_PER_MSEC) & POLLIN))
		return -1;
	return accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
}

/* fd reads to its end (the group let go of it) within TIMEOUT_MS. */
static bool reads_to_eof(int fd)
{
	__u64 end = now_ns() + TIMEOUT_MS * NSEC_PER_MSEC;
	char buf[4096];
	ssize_t n;

	for (;;) {
		if (!wait_fd(fd, POLLIN, end))
			return false;
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return true;
		if (n < 0 && errno != EAGAIN)
			return false;
	}
}

/* The group dialled fd: a session, past the HELLO check, as replica. */
static void serve_session(struct __test_metadata *_metadata, FIXTURE_DATA(group_thread) *self,
			  int fd)
{
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, replica_handshake(&self->r, self->site.replica_tls, fd, self->err,
				       sizeof(self->err))) TH_LOG("%s", self->err);
	replica_hello(_metadata, &self->r, STREAM, 0, 2);
	ASSERT_TRUE(wait_state(&self->site.g, LINK_CONNECTED));
}

TEST_F(group_thread, a_silent_connection_holds_the_group_no_longer_than_the_handshake_cap)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	__u64 t0;
	int fd;

	/* Connected before the thread starts: its first look at the port takes it. */
	ASSERT_EQ(0, getsockname(self->site.g.listen_fd, (struct sockaddr *)&a, &alen));
	self->fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_EQ(0, connect(self->fds[0], (struct sockaddr *)&a, sizeof(a)));
	t0 = now_ns();
	ASSERT_EQ(0, pthread_create(&self->thread, NULL, group_main, &self->site.g));
	self->running = true;
	/* The group dials its peer once it has given up on the silent one. */
	fd = accept_within(self->listen_fd, HANDSHAKE_MAX_MS + SLACK_MS);
	ASSERT_LE(0, fd) TH_LOG("no dial within %d ms of a silent connection", HANDSHAKE_MAX_MS +
				SLACK_MS);
	EXPECT_LE(HANDSHAKE_MAX_MS, ms_since(t0));
	EXPECT_TRUE(reads_to_eof(self->fds[0]));
	serve_session(_metadata, self, fd);
}

TEST_F(group_thread, a_peer_stalled_mid_handshake_holds_the_group_no_longer_than_the_cap)
{
	int fd;

	ASSERT_EQ(0, pthread_create(&self->thread, NULL, group_main, &self->site.g));
	self->running = true;
	/* The group dials; its ClientHello comes, and no answer goes back. */
	self->fds[0] = accept_within(self->listen_fd, TIMEOUT_MS);
	ASSERT_LE(0, self->fds[0]);
	ASSERT_TRUE(wait_fd(self->fds[0], POLLIN, now_ns() + TIMEOUT_MS * NSEC_PER_MSEC) & POLLIN);
	/* It gives up, waits its back-off and dials again. */
	fd = accept_within(self->listen_fd, HANDSHAKE_MAX_MS + BACKOFF_MIN_MS + SLACK_MS);
	ASSERT_LE(0, fd) TH_LOG("no second dial within %d ms", HANDSHAKE_MAX_MS +
				BACKOFF_MIN_MS + SLACK_MS);
	EXPECT_TRUE(reads_to_eof(self->fds[0]));
	serve_session(_metadata, self, fd);
}

/*
 * Two sides that both think themselves primary. The group's dials are
 * refused (its peer's port is closed) until its back-off is seconds long;
 * the other primary then dials it, and is answered at once and refused as
 * a split brain. A group that napped through its back-off answered only in
 * the instant between two naps, seconds later.
 */
TEST_F(group_thread, a_primary_backing_off_answers_another_primary_at_once)
{
	struct dmrepl_tls_conf tc = {
		.psk_mode = true, .psk = psk_key, .psk_len = sizeof(psk_key),
		.psk_identity = PSK_ID,
	};
	struct dmrepl_tls *client = dmrepl_tls_new(&tc, false, self->err, sizeof(self->err));
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	struct dmrepl_proto_hello h;
	struct dmrepl_frame f;
	int fd;

	ASSERT_NE(NULL, client) TH_LOG("%s", self->err);
	close(self->listen_fd);
	self->listen_fd = -1;
	ASSERT_EQ(0, pthread_create(&self->thread, NULL, group_main, &self->site.g));
	self->running = true;
	/*
	 * Back-offs of at most 0.5, 1, 2, 4, 8 and 16 s, each at least half
	 * of it: 12 s on, a napping group would still nap for seconds.
	 */
	sleep(12);
	ASSERT_EQ(0, getsockname(self->site.g.listen_fd, (struct sockaddr *)&a, &alen));
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_EQ(0, connect(fd, (struct sockaddr *)&a, sizeof(a)));
	/* Answered within a look at the port, not at the end of the back-off. */
	EXPECT_EQ(0, dmrepl_tls_handshake(client, fd, ROLE_CHECK_MS + SLACK_MS, &self->r.conn,
					  self->err, sizeof(self->err))) TH_LOG("%s", self->err);
	dmrepl_tls_free(client);
	if (!self->r.conn)
		return;
	replica_default_hello(&h, 0, 0, 2);
	h.role = DMREPL_PROTO_PRIMARY;
	h.stream = OTHER_STREAM;
	h.next_seq = 1;
	h.gen_current = 0x0dd0000000000077ULL;
	replica_send_hello(_metadata, &self->r, &h);
	ASSERT_EQ(1, replica_next(&self->r, &f, TIMEOUT_MS));
	ASSERT_EQ((unsigned int)DMREPL_FRAME_REFUSE, f.type) TH_LOG("%s", frame_name(&f));
	EXPECT_EQ((unsigned int)DMREPL_REFUSE_DIVERGED, f.refuse.reason);
	EXPECT_STREQ("split brain: both sides are primary, of different generations",
		     f.refuse.text);
}

TEST_HARNESS_MAIN
