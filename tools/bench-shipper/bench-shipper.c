// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * bench-shipper: repld's primary pipeline on one host (issue 15).
 *
 *   producer thread   plays the kernel: 64 KiB WRITE records into a ring in
 *                     memory (tests/unit/ringsim), waiting for room when full
 *   main thread       plays repld's primary: dmrepl_ring_attach() and
 *                     dmrepl_ship_*, 1 MiB batches, dmrepl_proto_put_batch(),
 *                     TLS 1.3 (certificate mode) over 127.0.0.1, releases on acks
 *   receiver thread   plays the secondary: decodes frames, unpacks each batch
 *                     (zstd, every record's crc32c, sequence order), compares
 *                     every payload with what was produced, answers ACKs
 *
 * Both ends send and receive through repld's own link (userspace/repld/link.c).
 *
 * The figure is payload MB/s per CPU-second of the whole process, against
 * `openssl speed -evp aes-256-gcm` (one thread, 16 KiB) in the same run.
 * MB is 10^6 bytes, as openssl counts.
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dmrepl.h"
#include "dmrepl_proto.h"
#include "dmrepl_tls.h"
#include "link.h"
#include "ringsim.h"

#ifndef BENCH_REPO
#define BENCH_REPO "."
#endif

#define REC_PAYLOAD	(64U << 10)
#define REC_SECTORS	(REC_PAYLOAD >> 9)
#define POOL_SLOTS	256U		/* 16 MiB of payloads, one per 64 KiB slot */
#define RING_BYTES	(64ULL << 20)
#define BATCH_BYTES	(1U << 20)	/* repld's default batch_bytes */
#define WINDOW		4U		/* repld's default window */
#define HANDSHAKE_MS	10000
#define HEARTBEAT_MS	1000		/* repld's defaults */
#define TIMEOUT_MS	5000
#define ERR_LEN		512
#define GROUP_NAME	"bench"

/* ---- payloads -------------------------------------------------------------- */

static __u64 rnd_next(__u64 *s)
{
	/* xorshift64*: a fixed sequence, fast, good enough for test data. */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

static void fill_random(unsigned char *p, size_t len, __u64 seed)
{
	__u64 v;
	size_t i;

	for (i = 0; i < len; i += 8) {
		v = rnd_next(&seed);
		memcpy(p + i, &v, len - i < 8 ? len - i : 8);
	}
}

/*
 * Text-like: words of a small made-up vocabulary, spaces and line breaks,
 * and now and then a few random bytes (numbers, ids). Tuned to compress
 * about 3:1 with zstd at level 3 in 1 MiB batches.
 */
#define VOCAB_WORDS	256
#define RANDOM_EVERY	12	/* words between runs of random bytes */
#define RANDOM_RUN	2

static void fill_text(unsigned char *p, size_t len, __u64 seed)
{
	static const char letters[] = "etaoinshrdlucmfwypvbgkqjxz";
	char vocab[VOCAB_WORDS][12];
	size_t i = 0, col = 0, n, k;
	unsigned int w;

	for (w = 0; w < VOCAB_WORDS; w++) {
		n = 2 + rnd_next(&seed) % 9;
		for (k = 0; k < n; k++)	/* frequent letters more often */
			vocab[w][k] = letters[(rnd_next(&seed) % 26) * (rnd_next(&seed) % 26) / 26];
		vocab[w][n] = '\0';
	}
	for (w = 0; i < len; w++) {
		const char *word = vocab[rnd_next(&seed) % VOCAB_WORDS];

		for (k = 0; word[k] && i < len; k++, col++)
			p[i++] = (unsigned char)word[k];
		if (w % RANDOM_EVERY == 0)
			for (k = 0; k < RANDOM_RUN && i < len; k++, col++)
				p[i++] = (unsigned char)rnd_next(&seed);
		if (i < len)
			p[i++] = col > 72 ? '\n' : ' ';
		col = col > 72 ? 0 : col + 1;
	}
}

/* The payload of the record with sequence seq: 16 in a row are distinct. */
static const unsigned char *payload_of(const unsigned char *pool, __u64 seq)
{
	return pool + (size_t)((seq * 7) % POOL_SLOTS) * REC_PAYLOAD;
}

/* ---- one case -------------------------------------------------------------- */

struct bench_case {
	const char *name;
	bool text;		/* compressible payloads */
	int level;		/* zstd level of dmrepl_proto_put_batch(), 0: none */
};

static const struct bench_case cases[] = {
	{ "random-zstd3", false, 3 },
	{ "random-raw", false, 0 },
	{ "text-zstd3", true, 3 },
	{ "text-zstd1", true, 1 },	/* repld's default level */
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

struct result {
	double wall_s, cpu_s;			/* whole process */
	double producer_s, shipper_s, receiver_s;	/* CPU of each thread */
	__u64 payload_bytes, raw_bytes, wire_bytes, batches;
};

struct run {
	const struct bench_case *c;
	const unsigned char *pool;
	__u64 nrecords;

	/*
	 * The kernel's ring lock: guards sim's bookkeeping (next_seq, the
	 * reservations), taken by the producer to reserve and by the shipper
	 * to release (the RELEASE ioctl). The record bytes are written outside.
	 */
	pthread_mutex_t lock;
	pthread_cond_t room;		/* a release freed space */
	struct ringsim sim;
	/* The shipper sleeps on wake_fd after setting waiting (see ship_wait()). */
	int wake_fd;
	int waiting;

	int listen_fd;
	struct dmrepl_tls *server, *client;
	char rx_err[ERR_LEN];
	int rx_ret;

	__u64 produced, produced_bytes;
	__u64 received, received_bytes;
	struct result res;
	char err[ERR_LEN];
};

static double cpu_of(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- producer: the kernel's side of the ring ------------------------------- */

static void wake_shipper(struct run *r)
{
	__u64 one = 1;

	/* Pairs with the fence in ship_wait(): commit, then look at waiting. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(&r->waiting, __ATOMIC_RELAXED) &&
	    __atomic_exchange_n(&r->waiting, 0, __ATOMIC_RELAXED))
		(void)!write(r->wake_fd, &one, sizeof(one));
}

static void *producer(void *arg)
{
	struct run *r = arg;
	__u32 rec_len = (__u32)dmrepl_rec_size(REC_PAYLOAD);
	struct dmrepl_rec_fields f = {
		.type = DM_REPL_REC_WRITE,
		.nbytes = REC_PAYLOAD,
		/* The header alone: the payload follows, see below. */
		.group_tag = dmrepl_group_tag(GROUP_NAME),
		.stream = r->sim.stream,
	};
	struct dm_repl_rec *rec;
	struct timespec ts;
	long long pos;
	__u64 i;

	_Static_assert(DM_REPL_REC_HDR_SIZE + REC_PAYLOAD == sizeof(*rec) + REC_PAYLOAD &&
		       (DM_REPL_REC_HDR_SIZE + REC_PAYLOAD) % DM_REPL_REC_ALIGN == 0,
		       "a 64 KiB record has no padding");
	for (i = 0; i < r->nrecords; i++) {
		pthread_mutex_lock(&r->lock);
		while ((pos = ringsim_reserve(&r->sim, rec_len)) == -ENOSPC)
			pthread_cond_wait(&r->room, &r->lock);
		if (pos >= 0)
			f.seq = r->sim.next_seq++;
		pthread_mutex_unlock(&r->lock);
		if (pos < 0) {
			snprintf(r->err, sizeof(r->err), "producer: reserve: %s", strerror((int)-pos));
			break;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		f.time_ns = (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
		f.sector = f.seq * REC_SECTORS;
		ringsim_encode(&r->sim, (__u64)pos, rec_len, &f);
		/*
		 * As the kernel fills a slot: the header, then the payload
		 * copied in, crc left 0. (A record encoded with its payload
		 * would cost a crc32c here that the kernel never computes.)
		 */
		rec = ringsim_rec_at(&r->sim, (__u64)pos);
		rec->len = htole32(rec_len);
		rec->payload_len = htole32(REC_PAYLOAD);
		memcpy(rec + 1, payload_of(r->pool, f.seq), REC_PAYLOAD);
		ringsim_commit(&r->sim, (__u64)pos);
		r->produced++;
		r->produced_bytes += REC_PAYLOAD;
		wake_shipper(r);
	}
	r->res.producer_s = cpu_of(CLOCK_THREAD_CPUTIME_ID);
	return NULL;
}

/* ---- the link: repld's link.c ---------------------------------------------- */

/* A link's messages (struct link_owner): the first is kept as its side's error. */
static void keep_first(void *arg, int level, bool error, const char *msg)
{
	char *err = arg;

	(void)level;
	(void)error;
	if (!err[0])
		snprintf(err, ERR_LEN, "%s", msg);
}

/*
 * One side's link over conn, with repld's default heartbeat and timeout
 * and no bandwidth limit. As link_init(): link_close() closes conn even
 * after a failure.
 */
static int side_init(struct link_owner *o, struct link *l, struct dmrepl_tls_conn *conn,
		     const char *peer, char *err)
{
	*o = (struct link_owner){
		.peer = peer,
		.heartbeat_ms = HEARTBEAT_MS,
		.timeout_ms = TIMEOUT_MS,
		.log = keep_first,
		.arg = err,
	};
	return link_init(l, o, conn, DMREPL_PROTO_BATCH_MAX);
}

/* ---- receiver: the secondary ----------------------------------------------- */

struct receiver {
	struct run *r;
	struct link_owner owner;
	struct link l;
	void *buf;			/* a batch's records, unpacked */
	struct dmrepl_proto_rx prx;	/* kept across batches, as repld does */
	struct dmrepl_proto_order order;
	__u64 next_seq;
};

static int rx_fail(struct receiver *rx, const struct dmrepl_proto_batch *b, const char *why)
{
	snprintf(rx->r->rx_err, sizeof(rx->r->rx_err), "receiver: batch of seq %llu..%llu: %s",
		 (unsigned long long)b->first_seq, (unsigned long long)b->last_seq, why);
	return -EBADMSG;
}

/* Each record: a WRITE of the expected sector carrying the expected bytes. */
static int rx_records(struct receiver *rx, const struct dmrepl_proto_batch *b,
		      const void *records)
{
	const unsigned char *p = records, *end = p + b->raw_len;
	const struct dm_repl_rec *rec;
	__u64 seq;

	for (; p < end; p += dmrepl_rec_len(rec)) {
		rec = (const struct dm_repl_rec *)p;
		seq = dmrepl_rec_seq(rec);
		if (seq != rx->next_seq)
			return rx_fail(rx, b, "a record out of sequence");
		if (dmrepl_rec_type(rec) != DM_REPL_REC_WRITE ||
		    dmrepl_rec_payload_len(rec) != REC_PAYLOAD ||
		    dmrepl_rec_sector(rec) != seq * REC_SECTORS)
			return rx_fail(rx, b, "a record not as produced");
		if (memcmp(dmrepl_rec_payload(rec), payload_of(rx->r->pool, seq), REC_PAYLOAD))
			return rx_fail(rx, b, "a payload differs from what was produced");
		rx->next_seq++;
		rx->r->received++;
		rx->r->received_bytes += REC_PAYLOAD;
	}
	return 0;
}

static int rx_batch(struct receiver *rx, const struct dmrepl_proto_batch *b)
{
	struct dmrepl_proto_ack ack = {
		.applied_stream = b->stream,
		.applied_seq = b->last_seq,
		.acked_last_seq = b->last_seq,
	};
	const void *records = NULL;
	const char *why = NULL;
	int ret;

	/* As repld's apply_batch(): a raw batch is checked where it was received. */
	ret = dmrepl_proto_batch_records(b, &rx->prx, rx->buf, DM_REPL_APPLY_BATCH_MAX,
					 &records, &why);
	if (!ret)
		ret = dmrepl_proto_order_check(&rx->order, b, records, &why);
	if (ret)
		return rx_fail(rx, b, why ? why : strerror(-ret));
	if (b->first_seq != rx->next_seq)
		return rx_fail(rx, b, "does not follow the previous batch");
	ret = rx_records(rx, b, records);
	if (ret)
		return ret;
	return dmrepl_proto_put_ack(&rx->l.out, &ack);
}

static int rx_loop(struct receiver *rx)
{
	struct dmrepl_frame f;
	int ret;

	for (;;) {
		while ((ret = link_next(&rx->l, &f)) == 1) {
			if (f.type == DMREPL_FRAME_BATCH)
				ret = rx_batch(rx, &f.batch);
			else	/* a heartbeat is no error: ret was link_next()'s 1 */
				ret = f.type == DMREPL_FRAME_HEARTBEAT ? 0 : -EPROTO;
			if (ret)
				return ret;
		}
		/* The shipper closes once every batch is acked. */
		if (ret == -ECONNRESET && rx->r->received == rx->r->nrecords)
			return 0;
		if (!ret)
			ret = link_flush(&rx->l);
		if (!ret)
			ret = link_wait(&rx->l, -1, 0);
		if (ret < 0)
			return ret;
	}
}

static void *receiver(void *arg)
{
	struct receiver rx = { .r = arg, .next_seq = 1 };
	struct run *r = rx.r;
	struct dmrepl_tls_conn *conn;
	int fd, ret;

	fd = accept4(r->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		r->rx_ret = -errno;
		snprintf(r->rx_err, sizeof(r->rx_err), "receiver: accept: %s", strerror(errno));
		return NULL;
	}
	ret = dmrepl_tls_handshake(r->server, fd, HANDSHAKE_MS, &conn, r->rx_err,
				   sizeof(r->rx_err));
	if (ret) {
		r->rx_ret = ret;
		return NULL;
	}
	rx.buf = aligned_alloc(8, DM_REPL_APPLY_BATCH_MAX);
	ret = side_init(&rx.owner, &rx.l, conn, "shipper", r->rx_err);
	if (!rx.buf && !ret)
		ret = -ENOMEM;
	dmrepl_proto_order_init(&rx.order, 0, 0);	/* a fresh replica */
	if (!ret)
		ret = rx_loop(&rx);
	if (ret && !r->rx_err[0])
		snprintf(r->rx_err, sizeof(r->rx_err), "receiver: %s", strerror(-ret));
	r->rx_ret = ret;
	r->res.receiver_s = cpu_of(CLOCK_THREAD_CPUTIME_ID);
	link_close(&rx.l);
	free(rx.buf);
	dmrepl_proto_rx_free(&rx.prx);
	return NULL;
}

/* ---- shipper: repld's primary ---------------------------------------------- */

struct shipper {
	struct run *r;
	struct link_owner owner;
	struct link l;
	struct dmrepl_ship ship;
	unsigned int inflight;		/* batches sent, not acked */
};

/* The sink, as repld's send_batch(): one BATCH frame queued on the link. */
static int send_batch(void *arg, const void *buf, const struct dmrepl_batch *b)
{
	struct shipper *s = arg;
	size_t before = dmrepl_obuf_pending(&s->l.out);
	const char *why = NULL;
	int ret;

	ret = dmrepl_proto_put_batch(&s->l.out, buf, b->batch_len, s->r->c->level, NULL, &why);
	if (ret) {
		snprintf(s->r->err, sizeof(s->r->err), "shipper: batch of seq %llu..%llu: %s",
			 (unsigned long long)b->first_seq, (unsigned long long)b->last_seq,
			 why ? why : strerror(-ret));
		return ret;
	}
	s->inflight++;
	s->r->res.batches++;
	s->r->res.raw_bytes += b->batch_len;
	s->r->res.wire_bytes += dmrepl_obuf_pending(&s->l.out) - before;
	return 0;
}

/*
 * An ack, as repld's take_ack(). dmrepl_ship_release() is the RELEASE
 * ioctl of a ring that has a device; this ring is in plain memory, so the
 * shipper does here what the kernel does for that ioctl, under its lock.
 */
static int take_ack(struct shipper *s, const struct dmrepl_proto_ack *a)
{
	struct run *r = s->r;
	int ret = 0;

	if (a->acked_last_seq && s->inflight)
		s->inflight--;
	if (a->applied_stream != r->sim.stream)
		return 0;
	dmrepl_ship_acked(&s->ship, a->applied_seq);
	if (s->ship.acked_seq <= s->ship.released_seq)
		return 0;
	pthread_mutex_lock(&r->lock);
	ret = ringsim_release(&r->sim, s->ship.acked_seq);
	pthread_mutex_unlock(&r->lock);
	if (ret) {
		snprintf(r->err, sizeof(r->err), "shipper: release up to %llu: %s",
			 (unsigned long long)s->ship.acked_seq, strerror(-ret));
		return ret;
	}
	s->ship.released_seq = s->ship.acked_seq;
	pthread_cond_signal(&r->room);
	return 0;
}

/* As repld's ship_some(): pump within the window, then send. */
static int ship_some(struct shipper *s)
{
	int ret;

	if (s->inflight < WINDOW) {
		ret = dmrepl_ship_pump(&s->ship, WINDOW - s->inflight);
		if (ret) {
			if (!s->r->err[0])
				snprintf(s->r->err, sizeof(s->r->err), "shipper: ring: %s",
					 dmrepl_ring_why(s->ship.ring) ? dmrepl_ring_why(s->ship.ring) :
					 strerror(-ret));
			return ret;
		}
	}
	return link_flush(&s->l);
}

/*
 * Is a committed (or discarded) slot waiting at the shipper's read position?
 * A look at the consumer's read-only view, without consuming: the library
 * has no peek, and dmrepl_ring_next_slot() would take the slot.
 */
static bool ring_ready(const struct run *r, const struct dmrepl_ring *ring)
{
	const struct dm_repl_ring_ctl *ctl = (const void *)r->sim.ro;
	const struct dm_repl_slot *slot;
	__u64 pos = dmrepl_ring_pos(ring);

	if (__atomic_load_n(&ctl->producer_pos, __ATOMIC_ACQUIRE) == pos)
		return false;
	slot = (const void *)(r->sim.ro + ctl->ctl_size + (pos & (ctl->data_size - 1)));
	return !(__atomic_load_n(&slot->len_flags, __ATOMIC_ACQUIRE) & DM_REPL_SLOT_BUSY);
}

/*
 * Sleep until an ack comes or, with room in the window, the producer
 * commits: the producer writes wake_fd only when it sees waiting set, so
 * the ring is looked at once more after setting it.
 */
static int ship_wait(struct shipper *s)
{
	struct run *r = s->r;
	__u64 v;
	int ev;

	if (s->inflight >= WINDOW)
		return link_wait(&s->l, -1, 0);
	__atomic_store_n(&r->waiting, 1, __ATOMIC_RELAXED);
	/* Pairs with the fence in wake_shipper(): set waiting, then look. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (ring_ready(r, s->ship.ring)) {
		__atomic_store_n(&r->waiting, 0, __ATOMIC_RELAXED);
		return 0;
	}
	ev = link_wait(&s->l, r->wake_fd, POLLIN);
	__atomic_store_n(&r->waiting, 0, __ATOMIC_RELAXED);
	if (ev > 0 && (ev & POLLIN))
		(void)!read(r->wake_fd, &v, sizeof(v));
	return ev < 0 ? ev : 0;
}

static int ship_loop(struct shipper *s)
{
	struct dmrepl_frame f;
	int ret;

	while (s->ship.acked_seq < s->r->nrecords) {
		ret = ship_some(s);
		while (!ret && (ret = link_next(&s->l, &f)) == 1)
			ret = f.type == DMREPL_FRAME_ACK ? take_ack(s, &f.ack) :
			      f.type == DMREPL_FRAME_HEARTBEAT ? 0 : -EPROTO;
		if (ret < 0)
			return ret;
		if (s->ship.acked_seq >= s->r->nrecords)
			break;
		ret = ship_wait(s);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int connect_local(int port)
{
	struct sockaddr_in sa = {
		.sin_family = AF_INET,
		.sin_port = htons((uint16_t)port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	int one = 1, fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		return -errno;
	}
	/* As repld's net.c: acks and heartbeats are small and must not wait. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int listen_local(int *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 1) ||
	    getsockname(fd, (struct sockaddr *)&sa, &len)) {
		close(fd);
		return -errno;
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

/* ---- one run of one case --------------------------------------------------- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double rusage_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Shipper side of a run, over conn (closed here). 0 or -errno (r->err). */
static int ship_run(struct run *r, struct dmrepl_tls_conn *conn)
{
	struct shipper s = { .r = r };
	struct dmrepl_ring *ring;
	double wall0, cpu0, thread0;
	pthread_t prod;
	int ret;

	ret = side_init(&s.owner, &s.l, conn, "receiver", r->err);
	if (ret)
		goto out_link;
	ret = dmrepl_ring_attach(r->sim.ro, r->sim.map_size, &ring);
	if (ret)
		goto out_link;
	ret = dmrepl_ship_init(&s.ship, ring, BATCH_BYTES);
	if (ret)
		goto out_ring;
	/*
	 * dmrepl_ship_start() reads GROUP_INFO, which a ring in memory does
	 * not have; the replica is fresh (applied 0, 0), for which it would
	 * leave peer_stream and peer_seq at 0 as dmrepl_ship_init() did.
	 */
	s.ship.start_next_seq = r->sim.next_seq;
	s.ship.batch.send = send_batch;
	s.ship.batch.send_arg = &s;

	wall0 = now_s();
	cpu0 = rusage_s();
	thread0 = cpu_of(CLOCK_THREAD_CPUTIME_ID);
	ret = pthread_create(&prod, NULL, producer, r);
	if (ret) {
		ret = -ret;
	} else {
		ret = ship_loop(&s);
		if (ret) {
			/* Let a producer waiting for room finish. */
			pthread_mutex_lock(&r->lock);
			r->nrecords = r->produced;
			pthread_mutex_unlock(&r->lock);
		}
		r->res.shipper_s = cpu_of(CLOCK_THREAD_CPUTIME_ID) - thread0;
		if (ret)
			ringsim_release_pos(&r->sim, r->sim.ctl->producer_pos);
		pthread_cond_signal(&r->room);
		pthread_join(prod, NULL);
		r->res.wall_s = now_s() - wall0;
		r->res.cpu_s = rusage_s() - cpu0;
	}
	dmrepl_ship_free(&s.ship);
out_ring:
	dmrepl_ring_close(ring);
out_link:
	/* close_notify: the receiver has all it expects, or ends with an error. */
	link_close(&s.l);
	return ret;
}

static int run_case(struct run *r)
{
	struct dmrepl_tls_conn *conn = NULL;
	char err[256] = "";
	pthread_t rx;
	int port = 0, fd, ret;

	r->listen_fd = listen_local(&port);
	if (r->listen_fd < 0) {
		snprintf(r->err, sizeof(r->err), "listen: %s", strerror(-r->listen_fd));
		return r->listen_fd;
	}
	ret = pthread_create(&rx, NULL, receiver, r);
	if (ret) {
		close(r->listen_fd);
		return -ret;
	}
	fd = connect_local(port);
	if (fd < 0)
		ret = fd;
	else
		ret = dmrepl_tls_handshake(r->client, fd, HANDSHAKE_MS, &conn, err, sizeof(err));
	if (ret)
		snprintf(r->err, sizeof(r->err), "shipper: connect: %s", err[0] ? err : strerror(-ret));
	else
		ret = ship_run(r, conn);
	if (fd < 0)
		shutdown(r->listen_fd, SHUT_RDWR);
	pthread_join(rx, NULL);
	close(r->listen_fd);
	if (r->rx_ret && !ret) {
		snprintf(r->err, sizeof(r->err), "%s", r->rx_err);
		return r->rx_ret;
	}
	if (r->rx_ret && r->rx_ret != -ECONNRESET) {
		/* The receiver's reason comes first: the shipper only saw the close. */
		fprintf(stderr, "bench-shipper: %s: %s\n", r->c->name, r->rx_err);
		return r->rx_ret;
	}
	if (ret)
		return ret;
	if (r->received != r->produced || r->received_bytes != r->produced_bytes ||
	    r->produced != r->nrecords) {
		snprintf(r->err, sizeof(r->err),
			 "verification: produced %llu records (%llu bytes), received %llu (%llu bytes)",
			 (unsigned long long)r->produced, (unsigned long long)r->produced_bytes,
			 (unsigned long long)r->received, (unsigned long long)r->received_bytes);
		return -EBADMSG;
	}
	r->res.payload_bytes = r->received_bytes;
	return 0;
}

/* ---- the baseline ---------------------------------------------------------- */

/* openssl speed -evp aes-256-gcm -bytes 16384: MB/s, or a negative value. */
static double openssl_mbs(int seconds)
{
	char cmd[128], line[512], *k, *last;
	double v = -1;
	FILE *p;

	snprintf(cmd, sizeof(cmd),
		 "openssl speed -evp aes-256-gcm -bytes 16384 -seconds %d 2>/dev/null", seconds);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	while (fgets(line, sizeof(line), p)) {
		/* "AES-256-GCM    2684756.23k": 1000s of bytes per second. */
		if (strncmp(line, "AES-256-GCM", 11))
			continue;
		last = strrchr(line, ' ');
		if (last && (k = strchr(last, 'k')))
			v = strtod(last + 1, NULL) / 1000.0;
	}
	if (pclose(p))
		return -1;
	return v;
}

/* ---- main ------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, unsigned int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct tls_pair {
	struct dmrepl_tls *server, *client;
};

static int make_tls(const char *dir, struct tls_pair *t)
{
	char ca[4096], scrt[4096], skey[4096], ccrt[4096], ckey[4096], err[256];
	struct dmrepl_tls_conf sc = { 0 }, cc = { 0 };

	snprintf(ca, sizeof(ca), "%s/ca.crt", dir);
	snprintf(scrt, sizeof(scrt), "%s/secondary.crt", dir);
	snprintf(skey, sizeof(skey), "%s/secondary.key", dir);
	snprintf(ccrt, sizeof(ccrt), "%s/primary.crt", dir);
	snprintf(ckey, sizeof(ckey), "%s/primary.key", dir);
	sc = (struct dmrepl_tls_conf){ .ca = ca, .certificate = scrt, .key = skey,
				       .peer_identity = "primary" };
	cc = (struct dmrepl_tls_conf){ .ca = ca, .certificate = ccrt, .key = ckey,
				       .peer_identity = "secondary" };
	t->server = dmrepl_tls_new(&sc, true, err, sizeof(err));
	if (!t->server) {
		fprintf(stderr, "bench-shipper: TLS server: %s\n", err);
		return -1;
	}
	t->client = dmrepl_tls_new(&cc, false, err, sizeof(err));
	if (!t->client) {
		fprintf(stderr, "bench-shipper: TLS client: %s\n", err);
		dmrepl_tls_free(t->server);
		return -1;
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bench-shipper [--quick] [--mib N] [--rounds R] [--case NAME]\n"
		"                     [--certs DIR] [--no-baseline] [--seconds S]\n"
		"  --quick        256 MiB per case, one round: a smoke run\n"
		"  --mib N        payload MiB per case and round (default 2048)\n"
		"  --rounds R     rounds; figures are medians (default 3)\n"
		"  --case NAME    only this case: random-zstd3, random-raw, text-zstd3,\n"
		"                 text-zstd1\n"
		"  --certs DIR    certificates of tests/lib/mkcerts.sh DIR primary secondary\n"
		"                 (default: made into a temporary directory)\n"
		"  --no-baseline  do not run openssl speed\n"
		"  --seconds S    openssl speed -seconds (default 3)\n"
		"Exit status: 0, 1 when a run fails verification or cannot run, 2 usage.\n");
}

struct opts {
	__u64 mib;
	unsigned int rounds;
	const char *only, *certs;
	bool baseline;
	int seconds;
};

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "mib", required_argument, NULL, 'm' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "case", required_argument, NULL, 'c' },
		{ "certs", required_argument, NULL, 'C' },
		{ "no-baseline", no_argument, NULL, 'B' },
		{ "seconds", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	unsigned long v;
	char *end;
	int opt;

	while ((opt = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (opt) {
		case 'q':
			o->mib = 256;
			o->rounds = 1;
			break;
		case 'm':
		case 'r':
		case 's':
			v = strtoul(optarg, &end, 10);
			if (*end || !v || v > 1000000) {
				fprintf(stderr, "bench-shipper: %s: not a number from 1 to 1000000\n",
					optarg);
				return 2;
			}
			if (opt == 'm')
				o->mib = v;
			else if (opt == 'r')
				o->rounds = (unsigned int)v;
			else
				o->seconds = (int)v;
			break;
		case 'c':
			o->only = optarg;
			break;
		case 'C':
			o->certs = optarg;
			break;
		case 'B':
			o->baseline = false;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	return 0;
}

/* One case, one round: 0 or 1 (printed why). */
static int one_run(const struct opts *o, const struct bench_case *c, const unsigned char *pool,
		   const struct tls_pair *t, struct result *res)
{
	struct run *r = calloc(1, sizeof(*r));
	int ret;

	if (!r)
		return 1;
	r->c = c;
	r->pool = pool;
	r->nrecords = (o->mib << 20) / REC_PAYLOAD;
	r->server = t->server;
	r->client = t->client;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->room, NULL);
	r->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ret = r->wake_fd < 0 ? -errno : ringsim_create(&r->sim, RING_BYTES, 0);
	if (!ret)
		ret = run_case(r);
	if (ret)
		fprintf(stderr, "bench-shipper: %s: %s\n", c->name,
			r->err[0] ? r->err : strerror(-ret));
	*res = r->res;
	ringsim_destroy(&r->sim);
	if (r->wake_fd >= 0)
		close(r->wake_fd);
	pthread_cond_destroy(&r->room);
	pthread_mutex_destroy(&r->lock);
	free(r);
	return ret ? 1 : 0;
}

static void print_row(const char *name, double mbs, double per_cpu, double ratio,
		      double ship_per_cpu, double wire)
{
	char r[16] = "-";

	if (ratio > 0)
		snprintf(r, sizeof(r), "%.3f", ratio);
	printf("%-13s %9.1f %12.1f %7s %12.1f %6.2f\n", name, mbs, per_cpu, r,
	       ship_per_cpu, wire);
}

int main(int argc, char **argv)
{
	struct opts o = { .mib = 2048, .rounds = 3, .baseline = true, .seconds = 3 };
	double base[64], mbs[NCASES][64], per_cpu[NCASES][64], ship[NCASES][64], wire[NCASES][64];
	char tmp[] = "/tmp/bench-shipper.XXXXXX", cmd[8192];
	unsigned char *pool[2];
	struct tls_pair t;
	const char *certs;
	unsigned int i, n;
	struct result res;
	double b = 0, pc;
	int fail = 0;

	if (parse(argc, argv, &o))
		return 2;
	if (o.rounds > 64) {
		fprintf(stderr, "bench-shipper: at most 64 rounds\n");
		return 2;
	}
	for (i = 0; o.only && i < NCASES && strcmp(o.only, cases[i].name); i++)
		;
	if (o.only && i == NCASES) {
		fprintf(stderr, "bench-shipper: %s: no such case\n", o.only);
		return 2;
	}
	certs = o.certs;
	if (!certs) {
		if (!mkdtemp(tmp)) {
			perror("bench-shipper: mkdtemp");
			return 1;
		}
		snprintf(cmd, sizeof(cmd), "'%s/tests/lib/mkcerts.sh' '%s' primary secondary",
			 BENCH_REPO, tmp);
		if (system(cmd)) {
			fprintf(stderr, "bench-shipper: %s failed\n", cmd);
			return 1;
		}
		certs = tmp;
	}
	if (make_tls(certs, &t))
		return 1;
	pool[0] = malloc((size_t)POOL_SLOTS * REC_PAYLOAD);
	pool[1] = malloc((size_t)POOL_SLOTS * REC_PAYLOAD);
	if (!pool[0] || !pool[1])
		return 1;
	fill_random(pool[0], (size_t)POOL_SLOTS * REC_PAYLOAD, 0x9e3779b97f4a7c15ULL);
	fill_text(pool[1], (size_t)POOL_SLOTS * REC_PAYLOAD, 0x0123456789abcdefULL);

	/* Rounds interleave the baseline and the cases: load drifts hit both. */
	for (n = 0; n < o.rounds && !fail; n++) {
		if (o.baseline) {
			base[n] = openssl_mbs(o.seconds);
			if (base[n] <= 0) {
				fprintf(stderr, "bench-shipper: openssl speed failed\n");
				return 1;
			}
		}
		for (i = 0; i < NCASES && !fail; i++) {
			if (o.only && strcmp(o.only, cases[i].name))
				continue;
			fail = one_run(&o, &cases[i], pool[cases[i].text], &t, &res);
			if (fail)
				break;
			mbs[i][n] = (double)res.payload_bytes / 1e6 / res.wall_s;
			per_cpu[i][n] = (double)res.payload_bytes / 1e6 / res.cpu_s;
			ship[i][n] = (double)res.payload_bytes / 1e6 / res.shipper_s;
			wire[i][n] = (double)res.raw_bytes / (double)res.wire_bytes;
			fprintf(stderr, "# round %u %s: %.2f s wall, %.2f s CPU (producer %.2f, "
				"shipper %.2f, receiver %.2f), %llu batches, %llu MB verified\n",
				n + 1, cases[i].name, res.wall_s, res.cpu_s, res.producer_s,
				res.shipper_s, res.receiver_s, (unsigned long long)res.batches,
				(unsigned long long)(res.payload_bytes / 1000000));
		}
	}
	if (!fail) {
		if (o.baseline)
			b = median(base, o.rounds);
		printf("%-13s %9s %12s %7s %12s %6s\n", "case", "MB/s", "MB/s/CPU-s", "ratio",
		       "shipper-only", "wire");
		for (i = 0; i < NCASES; i++) {
			if (o.only && strcmp(o.only, cases[i].name))
				continue;
			pc = median(per_cpu[i], o.rounds);
			print_row(cases[i].name, median(mbs[i], o.rounds), pc, b > 0 ? pc / b : 0,
				  median(ship[i], o.rounds), median(wire[i], o.rounds));
		}
		if (o.baseline)
			printf("%-13s %9.1f %12.1f %7.3f   (openssl speed -evp aes-256-gcm "
			       "-bytes 16384 -seconds %d)\n", "aes-256-gcm", b, b, 1.0, o.seconds);
		printf("(medians of %u round%s of %llu MiB; MB = 10^6 bytes; ratio = MB/s/CPU-s "
		       "over aes-256-gcm; goal >= 0.70)\n", o.rounds, o.rounds > 1 ? "s" : "",
		       (unsigned long long)o.mib);
	}
	dmrepl_tls_free(t.server);
	dmrepl_tls_free(t.client);
	free(pool[0]);
	free(pool[1]);
	if (!o.certs) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
		if (system(cmd))
			fprintf(stderr, "bench-shipper: could not remove %s\n", tmp);
	}
	return fail;
}
