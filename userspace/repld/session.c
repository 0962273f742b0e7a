// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Sessions (Documentation/protocol.md): HELLO both ways, then the primary
 * ships its ring in batches within the window and releases on acks, and the
 * secondary applies each batch through its group's device and acks the
 * durable applied point. Either ends on a role change, the group's removal,
 * a refusal, a dead link or repld stopping.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <syslog.h>
#include <unistd.h>

#include "session.h"

/* A turn puts at most this many regions in the ring, as the controller lets it ... */
#define RESYNC_REGIONS 16
/* ... and only while the ring is at most this full. */
#define RESYNC_FILL_PCT 50

/* ---- both roles ---------------------------------------------------------- */

/* The periodic look at the group (session_check()). */
struct tick {
	__u64 next_ns, last_ns;
	__u64 raw_bytes;	/* the status's, at last_ns */
	__u64 gen;		/* secondary: the generation the session runs with */
};

void hello_init(const struct group *g, const struct dm_repl_group_info *info,
		unsigned int role, struct dmrepl_proto_hello *h)
{
	unsigned int i;

	memset(h, 0, sizeof(*h));
	snprintf(h->group, sizeof(h->group), "%s", g->conf->name);
	snprintf(h->site, sizeof(h->site), "%s", g->local->name);
	h->role = role == DM_REPL_ROLE_PRIMARY ? DMREPL_PROTO_PRIMARY : DMREPL_PROTO_SECONDARY;
	h->max_batch = group_batch_max(g);
	h->window = g->conf->window;
	h->gen_current = info->gen_current;
	memcpy(h->gen_history, info->gen_history, sizeof(h->gen_history));
	h->nvolumes = info->nr_volumes;
	for (i = 0; i < info->nr_volumes && i < DM_REPL_MAX_VOLUMES; i++) {
		h->volumes[i].index = info->volumes[i].index;
		h->volumes[i].region_sectors = info->volumes[i].region_sectors;
		h->volumes[i].sectors = info->volumes[i].sectors;
	}
}

/* "cur (history h0 h1 ...)" of a HELLO, for the log. */
static const char *gens_text(const struct dmrepl_proto_hello *h, char *buf, size_t len)
{
	const __u64 *hi = h->gen_history;

	snprintf(buf, len, "%016llx (history %llx %llx %llx %llx)",
		 (unsigned long long)h->gen_current, (unsigned long long)hi[0],
		 (unsigned long long)hi[1], (unsigned long long)hi[2], (unsigned long long)hi[3]);
	return buf;
}

/* Data diverged (split brain or writes of a replica's own): said in the status. */
static void note_diverged(struct group *g, const char *text)
{
	pthread_mutex_lock(&g->lock);
	snprintf(g->st.diverged, sizeof(g->st.diverged), "%s", text);
	pthread_mutex_unlock(&g->lock);
}

/*
 * A refusal, ours or the peer's, in the status: a divergence it says, or
 * the end of one said before when it was judged after the generations.
 */
static void note_refusal(struct group *g, unsigned int reason, const char *text)
{
	if (reason == DMREPL_REFUSE_DIVERGED)
		note_diverged(g, text);
	else if (dmrepl_proto_gens_agree(reason))
		note_diverged(g, "-");
}

int hello_exchange(struct group *g, struct link *l, const struct dmrepl_proto_hello *ours,
		   struct dmrepl_proto_hello *theirs)
{
	unsigned int reason;
	const char *text;
	int ret = link_hello(l, ours, theirs);

	if (ret == -EINVAL)	/* ours does not encode */
		group_error(g, LOG_ERR, "our HELLO: a field out of the protocol's bounds");
	if (ret)
		return ret;
	char gen_ours[96], gen_theirs[96];

	if (!dmrepl_proto_check_hello(ours, theirs, &reason, &text)) {
		note_diverged(g, "-");
		return 0;
	}
	link_refuse(l, reason, "%s", text);
	note_refusal(g, reason, text);
	if (reason == DMREPL_REFUSE_DIVERGED) {
		group_error(g, LOG_ERR, "refused peer %s (site %s): %s; our generation %s, "
			    "theirs %s", g->st.peer, theirs->site, text,
			    gens_text(ours, gen_ours, sizeof(gen_ours)),
			    gens_text(theirs, gen_theirs, sizeof(gen_theirs)));
	} else {
		group_error(g, LOG_ERR, "refused peer %s (site %s): %s", g->st.peer,
			    theirs->site, text);
	}
	return -ECONNREFUSED;
}

/* Frames a role does not expect end the session. */
static int unexpected(struct group *g, struct link *l, const struct dmrepl_frame *f)
{
	const char *name;

	if (f->type == DMREPL_FRAME_HEARTBEAT)
		return 0;
	if (f->type == DMREPL_FRAME_REFUSE) {
		name = dmrepl_proto_reason_name(f->refuse.reason);
		/* A stop or a role change of the peer is no error of ours. */
		note_refusal(g, f->refuse.reason, f->refuse.text);
		if (f->refuse.reason == DMREPL_REFUSE_SHUTDOWN ||
		    f->refuse.reason == DMREPL_REFUSE_ROLE)
			glog(g, LOG_NOTICE, "peer %s ended the session: %s", g->st.peer,
			     f->refuse.text);
		else
			group_error(g, LOG_ERR, "peer %s ended the session: %s: %s", g->st.peer,
				    name ? name : "unknown reason", f->refuse.text);
		return -ECONNREFUSED;
	}
	link_refuse(l, DMREPL_REFUSE_MALFORMED, "unexpected frame type %u", f->type);
	return -EPROTO;
}

/*
 * Every ROLE_CHECK_MS: is the group still here, in this role (and stream, if
 * not 0), and not disconnected by the admin? Also the facts of the status that come from
 * the kernel, and the rate. Returns true when the session must end.
 */
static bool session_check(struct group *g, struct link *l, int info_fd, unsigned int role,
			  __u64 stream, struct tick *t)
{
	struct dm_repl_group_info info;
	char msg[DMREPL_ERRMSG_LEN];
	__u64 now = now_ns();

	if (now < t->next_ns)
		return false;
	if (dmrepl_group_info(info_fd, &info, msg, sizeof(msg))) {
		glog(g, LOG_WARNING, "group %s: %s", g->kgroup, msg);
		return true;
	}
	group_note_kernel(g, &info);
	pthread_mutex_lock(&g->lock);
	if (t->next_ns)
		g->st.rate = (g->st.rate + (double)(g->st.raw_bytes - t->raw_bytes) * 1e9 /
			      (double)(now - t->last_ns)) / 2;
	t->raw_bytes = g->st.raw_bytes;
	pthread_mutex_unlock(&g->lock);
	t->last_ns = now;
	t->next_ns = now + ROLE_CHECK_MS * 1000000ULL;
	if (group_admin_down(g)) {
		link_refuse(l, DMREPL_REFUSE_SHUTDOWN, "disconnected by the admin of site %s",
			    g->local->name);
		return true;
	}
	/*
	 * A rejoin (the generation back to none) takes a new session: its
	 * dirty regions go to the primary, which judges it again.
	 */
	if (role == DM_REPL_ROLE_SECONDARY && info.gen_current != t->gen) {
		glog(g, LOG_NOTICE, "group %s: its generation changed (a rejoin): a new session",
		     g->kgroup);
		link_refuse(l, DMREPL_REFUSE_SHUTDOWN, "site %s rejoins", g->local->name);
		return true;
	}
	if (info.role == role && (!stream || info.stream == stream))
		return false;
	/* A role changed twice between two looks is a new stream. */
	glog(g, LOG_NOTICE, "group %s changed role: ending the session", g->kgroup);
	link_refuse(l, DMREPL_REFUSE_ROLE, "site %s changed role", g->local->name);
	return true;
}

/* ---- primary --------------------------------------------------------------- */

/* A batch in flight: its last sequence, the capture time of its first record. */
struct flight {
	__u64 last_seq;
	__u64 time_ns;
};

struct shipping {
	struct group *g;
	struct link *l;
	struct dmrepl_ship ship;
	__u64 stream;			/* our ring's */
	unsigned int window;		/* the smaller of ours and the peer's */
	int send_err;			/* the sink's last error */
	/*
	 * Batches sent and not yet applied, the oldest first: the window.
	 * A pump may send a few past it, never past max_flights.
	 */
	struct flight *flights;
	unsigned int nflights, max_flights;
	struct dmrepl_resync resync;	/* the group's dirty regions into the ring */
	struct dmrepl_resync_ctl ctl;	/* and how fast, so the stream keeps its lag */
	bool resync_held;		/* the controller held the last region back */
	bool resync_failed;		/* said why; not again this session */
	const struct dmrepl_proto_hello *peer;
};

/* Note a batch sent, for the lag in seconds of the status. */
static void flight_push(struct shipping *s, const void *records, __u64 last_seq)
{
	struct group *g = s->g;

	s->flights[s->nflights].last_seq = last_seq;
	s->flights[s->nflights].time_ns = dmrepl_rec_time_ns(records);
	if (!s->nflights++) {
		pthread_mutex_lock(&g->lock);
		g->st.oldest_unacked_ns = s->flights[0].time_ns;
		pthread_mutex_unlock(&g->lock);
	}
}

/* Forget the batches applied up to seq. */
static void flight_land(struct shipping *s, __u64 seq)
{
	struct group *g = s->g;
	unsigned int n = 0;

	while (n < s->nflights && s->flights[n].last_seq <= seq)
		n++;
	memmove(s->flights, s->flights + n, (s->nflights - n) * sizeof(*s->flights));
	s->nflights -= n;
	pthread_mutex_lock(&g->lock);
	g->st.oldest_unacked_ns = s->nflights ? s->flights[0].time_ns : 0;
	pthread_mutex_unlock(&g->lock);
}

/* The shipper's sink: one BATCH frame queued on the link. */
static int send_batch(void *arg, const void *buf, const struct dmrepl_batch *b)
{
	struct shipping *s = arg;
	struct group *g = s->g;
	size_t before = dmrepl_obuf_pending(&s->l->out);
	const char *why = NULL;
	unsigned int codec;
	int ret;

	if (s->nflights == s->max_flights)	/* the pump's bound: never */
		return s->send_err = -ENOBUFS;
	ret = dmrepl_proto_put_batch(&s->l->out, buf, b->batch_len, g->conf->compress_level,
				     &codec, &why);
	if (ret) {
		group_error(g, LOG_ERR, "batch of seq %llu..%llu: %s", (unsigned long long)b->first_seq,
			    (unsigned long long)b->last_seq, why ? why : strerror(-ret));
		return s->send_err = ret;
	}
	flight_push(s, buf, b->last_seq);
	pthread_mutex_lock(&g->lock);
	g->st.batches++;
	g->st.records += b->batch_nr;
	g->st.raw_bytes += b->batch_len;
	g->st.wire_bytes += dmrepl_obuf_pending(&s->l->out) - before;
	pthread_mutex_unlock(&g->lock);
	return 0;
}

/* Release what the replica applied, or had before: 0 or -errno (said). */
static int release(struct shipping *s)
{
	struct group *g = s->g;
	int ret = dmrepl_ship_release(&s->ship);

	if (ret) {
		group_error(g, LOG_ERR, "release up to sequence %llu: %s",
			    (unsigned long long)s->ship.acked_seq, strerror(-ret));
		return ret;
	}
	pthread_mutex_lock(&g->lock);
	g->st.acked_seq = s->ship.acked_seq;
	pthread_mutex_unlock(&g->lock);
	return 0;
}

/*
 * The controller's view: the stream's lag, the ring's backlog and the bytes
 * the replica acknowledged. Told at each ack too, not only at the next turn
 * of the loop (a heartbeat later, maybe): the time after the backlog
 * drained must not count as time spent draining it.
 */
static void tell_ctl(struct shipping *s)
{
	__u64 lag = s->nflights ? age_ns(s->flights[0].time_ns) : 0;
	__u64 backlog, released;

	dmrepl_ring_backlog(s->ship.ring, &backlog, &released);
	dmrepl_resync_ctl_update(&s->ctl, now_ns(), lag, backlog, s->ship.drained_bytes);
}

static int take_ack(struct shipping *s, const struct dmrepl_proto_ack *a)
{
	__u64 sent = s->ship.batch.written_seq;	/* the last sequence sent */
	int ret;

	/* Our records are applied once the replica's applied stream is ours. */
	if (a->applied_stream != s->stream)
		return 0;
	/* Never release what was not sent (or skipped as the replica's). */
	if (a->applied_seq > sent && a->applied_seq > s->ship.acked_seq) {
		link_refuse(s->l, DMREPL_REFUSE_ORDER,
			    "ack of sequence %llu, past the last sequence sent, %llu",
			    (unsigned long long)a->applied_seq, (unsigned long long)sent);
		return -EPROTO;
	}
	dmrepl_ship_acked(&s->ship, a->applied_seq);
	flight_land(s, a->applied_seq);
	ret = release(s);
	if (!ret)
		tell_ctl(s);
	return ret;
}

/*
 * The regions the controller lets through this turn, given the stream's lag
 * (the age of the oldest record sent and not yet applied) and the ring's
 * backlog: every record in it, sent or not, waits for the replica's ack
 * before its space is released, and a write captured now waits behind
 * them. Bytes released by acks (not by skipping what the replica had),
 * over time, are the link's drain rate. 0 or -errno of the step.
 */
static int resync_regions(struct shipping *s)
{
	__u64 before;
	unsigned int n;
	int ret;

	tell_ctl(s);
	for (n = 0; n < RESYNC_REGIONS; n++) {
		s->resync_held = !dmrepl_resync_ctl_may(&s->ctl);
		/* Held back before any step: the group's state still comes. */
		if (s->resync_held)
			return n ? 0 : dmrepl_group_info(s->resync.fd, &s->resync.info, NULL, 0);
		before = s->resync.bytes;
		ret = dmrepl_resync_step(&s->resync, 1, RESYNC_FILL_PCT);
		if (ret <= 0)
			return ret;
		dmrepl_resync_ctl_spend(&s->ctl, s->resync.bytes - before);
	}
	return 0;
}

/* The controller's facts for the status; caller holds g->lock. */
static void note_ctl(struct shipping *s)
{
	struct group_status *st = &s->g->st;

	st->resync_budget = s->ctl.budget;
	st->resync_lag_holds = s->ctl.lag_holds;
	st->resync_rate_waits = s->ctl.rate_waits;
	if (s->resync_held)
		dmrepl_resync_ctl_why(&s->ctl, st->resync_held, sizeof(st->resync_held));
	else
		snprintf(st->resync_held, sizeof(st->resync_held), "-");
}

/*
 * While the group is behind, its dirty regions go into the ring as fast as
 * the controller lets them, and as long as the ring is at most
 * RESYNC_FILL_PCT full: the stream keeps its place and its lag.
 */
static int resync_some(struct shipping *s)
{
	struct group *g = s->g;
	bool behind;
	int ret;

	pthread_mutex_lock(&g->lock);
	behind = g->st.behind || g->st.resyncing || s->resync.asked_left;
	pthread_mutex_unlock(&g->lock);
	s->resync_held = false;
	if (!behind || s->resync_failed) {
		dmrepl_resync_ctl_pause(&s->ctl);
		s->resync.busy = false;
		return 0;
	}
	ret = resync_regions(s);
	/* A role change ends the session at the next check; any other
	 * failure ends the resync, not the stream, until the next session. */
	if (ret < 0 && ret != -EPERM) {
		group_error(g, LOG_ERR, "resync of group %s stopped: %s", g->kgroup,
			    ret == -EFBIG ? "a region is larger than half the ring" :
			    strerror(-ret));
		s->resync_failed = true;
		pthread_mutex_lock(&g->lock);
		g->st.resyncing = false;	/* behind, and last_error says why */
		pthread_mutex_unlock(&g->lock);
		return 0;
	}
	behind = s->resync.info.state == DM_REPL_STATE_BEHIND || s->resync.asked_left;
	pthread_mutex_lock(&g->lock);
	if (behind && !g->st.resyncing) {
		g->st.resyncing = true;
		g->st.resync_start_ns = now_ns();
		g->st.resync_done = g->st.resync_bytes = 0;
	}
	g->st.resync_done = s->resync.regions;
	g->st.resync_bytes = s->resync.bytes;
	g->st.resync_unreleased = s->resync.info.resync_regions;
	g->st.resync_dirty = dmrepl_resync_left(&s->resync.info) - s->resync.info.resync_regions +
			     s->resync.asked_left;
	g->st.resync_asked = s->resync.asked_left;
	g->st.resync_held_volumes = s->resync.info.resync_held_volumes;
	g->st.behind_reasons = s->resync.info.behind_reasons;
	g->st.behind = behind;
	g->st.resyncing = behind;
	note_ctl(s);
	pthread_mutex_unlock(&g->lock);
	if (s->resync.ended)
		glog(g, LOG_INFO, "resync of group %s: %llu regions sent, the last ends it; "
		     "%llu bytes of zeros went as record headers this session", g->kgroup,
		     (unsigned long long)s->resync.regions,
		     (unsigned long long)s->ship.zero_bytes);
	s->resync.ended = false;
	return 0;
}

/*
 * Ship within the window. Records the replica had are skipped, and
 * released here: no ack will come for them.
 */
static int ship_some(struct shipping *s)
{
	int ret = resync_some(s);

	if (ret)
		return ret;
	if (s->nflights < s->window) {
		s->send_err = 0;
		ret = dmrepl_ship_pump(&s->ship, s->window - s->nflights);
	}
	if (ret && ret == s->send_err)
		return ret;	/* the sink said why */
	if (ret) {
		group_error(s->g, LOG_ERR, "corrupt ring at position %llu: %s",
			    (unsigned long long)dmrepl_ring_pos(s->ship.ring),
			    dmrepl_ring_why(s->ship.ring));
		return ret;
	}
	ret = release(s);
	return ret ? ret : link_flush(s->l);
}

/*
 * The replica's own dirty regions (RESEND): resent before ours, if its
 * volume is ours. Regions past our volume's end hold nothing of ours and
 * are left out.
 */
static int take_resend(struct shipping *s, const struct dmrepl_proto_resend *r)
{
	int entry = dmrepl_volume_entry(&s->resync.info, r->volume);
	const struct dm_repl_volume_info *v = entry < 0 ? NULL : &s->resync.info.volumes[entry];
	const struct dmrepl_proto_volume *pv;
	unsigned int n = 0;
	int ret;

	pv = dmrepl_proto_hello_volume(s->peer, r->volume);
	if (!v || !pv) {
		link_refuse(s->l, DMREPL_REFUSE_VOLUMES, "RESEND of volume %u: no such volume",
			    r->volume);
		return -EPROTO;
	}
	ret = dmrepl_resync_ask_theirs(&s->resync, r->volume, v->nr_regions, v->region_sectors,
				       pv->region_sectors, r->regions, r->count, &n);
	if (ret) {
		group_error(s->g, LOG_ERR, "RESEND of volume %u: %s", r->volume, strerror(-ret));
		link_refuse(s->l, DMREPL_REFUSE_INTERNAL, "RESEND: %s", strerror(-ret));
		return ret;
	}
	if (n)
		glog(s->g, LOG_INFO, "group %s: the replica asks for %u regions of volume %u "
		     "(to be overwritten there)", s->g->kgroup, n, r->volume);
	return 0;
}

static int take_frame(struct shipping *s, const struct dmrepl_frame *f)
{
	if (f->type == DMREPL_FRAME_ACK)
		return take_ack(s, &f->ack);
	if (f->type == DMREPL_FRAME_RESEND)
		return take_resend(s, &f->resend);
	return unexpected(s->g, s->l, f);
}

static int stream(struct shipping *s)
{
	struct dmrepl_frame f;
	struct tick tick = { 0 };
	int ret, ev;

	for (;;) {
		if (repld_stopping) {
			link_refuse(s->l, DMREPL_REFUSE_SHUTDOWN, "repld stopping");
			return 0;
		}
		ret = ship_some(s);
		while (!ret && (ret = link_next(s->l, &f)) == 1)
			ret = take_frame(s, &f);
		if (ret < 0)
			return ret;
		if (session_check(s->g, s->l, dmrepl_ring_fd(s->ship.ring), DM_REPL_ROLE_PRIMARY,
				  s->stream, &tick))
			return 0;
		/*
		 * A region held back goes when the bucket has room again; one
		 * that found no entry free, once the kernel took released ones.
		 */
		s->l->wake_ns = s->resync_held ? dmrepl_resync_ctl_next_ns(&s->ctl) :
				s->resync.busy ? now_ns() + DMREPL_RESYNC_BUSY_RETRY_MS * 1000000ULL : 0;
		ev = link_wait(s->l, dmrepl_ring_fd(s->ship.ring),
			       s->nflights < s->window ? POLLIN : 0);
		if (ev < 0)
			return ev;
		if (ev & (POLLHUP | POLLERR)) {
			glog(s->g, LOG_NOTICE, "group %s went away", s->g->kgroup);
			ship_some(s);	/* what was committed still goes */
			return 0;
		}
	}
}

static int ship_start(struct shipping *s, const struct dmrepl_proto_hello *peer)
{
	int ret = dmrepl_ship_start(&s->ship, peer->applied_stream, peer->applied_seq);

	if (ret == -ESTALE)
		link_refuse(s->l, DMREPL_REFUSE_STREAM,
			    "applied sequence %llu is past our last sequence %llu of stream %llx",
			    (unsigned long long)peer->applied_seq,
			    (unsigned long long)s->ship.start_next_seq - 1,
			    (unsigned long long)s->stream);
	else if (ret == -ERANGE)
		link_refuse(s->l, DMREPL_REFUSE_STREAM,
			    "the ring no longer holds the records after sequence %llu (released up "
			    "to %llu): a resync is needed", (unsigned long long)peer->applied_seq,
			    (unsigned long long)s->ship.start_released_seq);
	else if (ret)
		group_error(s->g, LOG_ERR, "group %s: %s", s->g->kgroup, strerror(-ret));
	return ret;
}

bool session_primary(struct group *g, struct link *l)
{
	struct shipping s = { .g = g, .l = l };
	struct dmrepl_proto_hello ours, theirs;
	struct dm_repl_group_info info;
	char msg[DMREPL_ERRMSG_LEN];
	struct dmrepl_ring *ring;
	int ret;

	ret = dmrepl_ring_open(g->kgroup, &ring, msg, sizeof(msg));
	if (ret) {
		link_refuse(l, DMREPL_REFUSE_INTERNAL, "group %s: %s", g->kgroup, msg);
		return false;
	}
	ret = dmrepl_ring_info(ring, &info);
	if (!ret)
		ret = dmrepl_ship_init(&s.ship, ring, g->conf->batch_bytes);
	if (ret) {
		link_refuse(l, DMREPL_REFUSE_INTERNAL, "group %s: %s", g->kgroup, strerror(-ret));
		dmrepl_ring_close(ring);
		return false;
	}
	s.stream = info.stream;
	s.window = g->conf->window;
	s.max_flights = s.window + 8;
	s.flights = calloc(s.max_flights, sizeof(*s.flights));
	if (!s.flights) {
		link_refuse(l, DMREPL_REFUSE_INTERNAL, "%s", strerror(ENOMEM));
		dmrepl_ship_free(&s.ship);
		dmrepl_ring_close(ring);
		return false;
	}
	s.ship.batch.send = send_batch;
	s.ship.batch.send_arg = &s;
	dmrepl_resync_init(&s.resync, dmrepl_ring_fd(ring));
	dmrepl_resync_ctl_init(&s.ctl, g->conf->resync_rate,
			       (__u64)g->conf->resync_lag_ms * 1000000ULL, now_ns());
	hello_init(g, &info, DM_REPL_ROLE_PRIMARY, &ours);
	ours.stream = info.stream;
	ours.next_seq = info.next_seq;
	if (info.state == DM_REPL_STATE_BEHIND)
		ours.flags |= DMREPL_HELLO_BEHIND;
	ret = hello_exchange(g, l, &ours, &theirs);
	if (!ret && theirs.max_batch < s.ship.batch.limit)
		s.ship.batch.limit = theirs.max_batch;	/* the buffer stays as large */
	if (!ret && theirs.window < s.window)
		s.window = theirs.window;
	s.peer = &theirs;
	/* The info the replica's RESENDs are judged by, before the first step. */
	s.resync.info = info;
	if (!ret)
		ret = ship_start(&s, &theirs);
	if (!ret) {
		session_started(g, &theirs);
		ret = stream(&s);
	}
	if (s.resync.regions)
		glog(g, LOG_INFO, "resync of group %s: %llu regions (%llu bytes) put in the ring "
		     "this session", g->kgroup, (unsigned long long)s.resync.regions,
		     (unsigned long long)s.resync.bytes);
	flight_land(&s, ~0ULL);
	free(s.flights);
	dmrepl_resync_free(&s.resync);
	pthread_mutex_lock(&g->lock);
	g->st.resyncing = false;
	pthread_mutex_unlock(&g->lock);
	dmrepl_ship_free(&s.ship);
	dmrepl_ring_close(ring);
	return ret != -ECONNREFUSED || s.ship.released_seq;
}

/* ---- secondary ------------------------------------------------------------- */

struct applying {
	bool consistent;		/* as of the last batch (or the session's start) */
	struct group *g;
	struct link *l;
	int info_fd, dev_fd;
	void *buf;			/* a batch's records, unpacked */
	struct dmrepl_proto_rx rx;	/* kept across batches */
	struct dmrepl_proto_order order;
	__u64 gen;			/* the primary's, taken at the start */
	const struct dmrepl_proto_hello *pri;	/* its HELLO */
};

/* Does a record of the batch end the replica's consistency (Documentation/dm-repl.md)? */
static bool breaks_consistency(const void *records, __u32 len)
{
	const unsigned char *p = records, *end = p + len;
	const struct dm_repl_rec *r;

	for (; p < end; p += dmrepl_rec_len(r)) {
		r = (const struct dm_repl_rec *)p;
		if (dmrepl_rec_type(r) == DM_REPL_REC_RESYNC ||
		    dmrepl_rec_type(r) == DM_REPL_REC_GAP ||
		    (dmrepl_rec_flags(r) & (DM_REPL_RECF_VOID | DM_REPL_RECF_GAP)))
			return true;
	}
	return false;
}

/* A failed drop is tried again after this long, not at every batch. */
#define HOOK_RETRY_S 60

/* While a hook runs: the primary must not find us silent. */
static void hook_tick(void *arg)
{
	struct applying *a = arg;

	link_keepalive(a->l);
}

/*
 * The site's snapshot hook (dm-repl.conf(5), snapshot-hook): "take" before a
 * batch ends the replica's consistency, "drop" once it is consistent again.
 * 0, or -1 (said, and in the status).
 */
static int snapshot(struct applying *a, const char *verb)
{
	struct group *g = a->g;
	char why[160];
	int ret = group_run_hook(g, g->local->snapshot_hook, verb, why, sizeof(why), hook_tick,
				 a);

	pthread_mutex_lock(&g->lock);
	if (ret)
		snprintf(g->st.snapshot, sizeof(g->st.snapshot), "%s failed: %s", verb, why);
	else
		snprintf(g->st.snapshot, sizeof(g->st.snapshot), "%s",
			 !strcmp(verb, "take") ? "taken" : "none");
	g->snapshot_held = !strcmp(verb, "take") ? !ret : !!ret;
	pthread_mutex_unlock(&g->lock);
	if (ret) {
		group_error(g, LOG_ERR, "group %s: snapshot-hook %s %s: %s", g->kgroup,
			    g->local->snapshot_hook, verb, why);
		return -1;
	}
	glog(g, LOG_NOTICE, "group %s: snapshot-hook %s: done", g->kgroup, verb);
	return 0;
}

/*
 * A consistent replica about to apply what ends its consistency keeps a
 * copy first, if the site has a hook. "take" replaces any copy there is: one
 * kept before is older than this consistent state (its drop failed, or
 * repld restarted before it). The batch is refused when the hook fails: the
 * replica stays consistent and the next session tries again.
 */
static int keep_consistent_copy(struct applying *a, const struct dmrepl_proto_batch *b,
				const void *records)
{
	if (!a->g->local->snapshot_hook || !a->consistent ||
	    !breaks_consistency(records, b->raw_len))
		return 0;
	if (!snapshot(a, "take"))
		return 0;
	link_refuse(a->l, DMREPL_REFUSE_INTERNAL, "site %s: the snapshot-hook failed before "
		    "a resync or a gap", a->g->local->name);
	return -EIO;
}

/* The kernel refused a batch: its reason goes to the log and to the peer. */
static int apply_refused(struct applying *a, const struct dmrepl_proto_batch *b, int err)
{
	struct dm_repl_apply_info ai;
	const char *reason = NULL;

	if (!dmrepl_apply_info(a->info_fd, &ai) && ai.last_error == err)
		reason = dmrepl_apply_reason_name(ai.last_reason);
	link_refuse(a->l, DMREPL_REFUSE_APPLY, "batch of seq %llu..%llu refused at seq %llu: %s (%s)",
		    (unsigned long long)b->first_seq, (unsigned long long)b->last_seq,
		    reason ? (unsigned long long)ai.last_error_seq : 0ULL,
		    reason ? reason : "no reason given", strerror(-err));
	return err;
}

static int apply_batch(struct applying *a, const struct dmrepl_proto_batch *b)
{
	struct dmrepl_proto_ack ack = { .acked_last_seq = b->last_seq };
	struct dm_repl_apply_info ai;
	struct group *g = a->g;
	const void *records = NULL;
	const char *why = NULL;
	ssize_t n;
	int ret;

	/* A raw batch is checked and applied where the link received it. */
	ret = dmrepl_proto_batch_records(b, &a->rx, a->buf, group_batch_max(g), &records, &why);
	if (!ret)
		ret = dmrepl_proto_order_check(&a->order, b, records, &why);
	if (ret) {
		link_refuse(a->l, ret == -EILSEQ ? DMREPL_REFUSE_ORDER : DMREPL_REFUSE_MALFORMED,
			    "batch of seq %llu..%llu: %s", (unsigned long long)b->first_seq,
			    (unsigned long long)b->last_seq, why ? why : strerror(-ret));
		return ret;
	}
	ret = keep_consistent_copy(a, b, records);
	if (ret)
		return ret;
	do
		n = write(a->dev_fd, records, b->raw_len);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)b->raw_len)
		return apply_refused(a, b, n < 0 ? -errno : -EIO);
	ret = dmrepl_apply_info(a->info_fd, &ai);
	if (ret) {
		link_refuse(a->l, DMREPL_REFUSE_INTERNAL, "APPLY_INFO: %s", strerror(-ret));
		return ret;
	}
	ack.applied_stream = ai.applied_stream;
	ack.applied_seq = ai.applied_seq;
	a->consistent = !(ai.flags & (DM_REPL_APPLYF_INCONSISTENT | DM_REPL_APPLYF_OUTDATED));
	/* Consistent again: the copy kept before has done its work. */
	if (a->consistent && g->snapshot_held && g->local->snapshot_hook &&
	    now_ns() >= g->snapshot_retry_ns && snapshot(a, "drop"))
		g->snapshot_retry_ns = now_ns() + HOOK_RETRY_S * 1000000000ULL;
	pthread_mutex_lock(&g->lock);
	g->st.batches++;
	g->st.records += b->nrecords;
	g->st.raw_bytes += b->raw_len;
	g->st.wire_bytes += b->payload_len + DMREPL_PROTO_HDR_SIZE + DMREPL_PROTO_BATCH_HDR;
	g->st.applied_seq = ai.applied_seq;
	pthread_mutex_unlock(&g->lock);
	ret = dmrepl_proto_put_ack(&a->l->out, &ack);
	return ret ? ret : link_flush(a->l);
}

static int ask_cmp(const void *x, const void *y)
{
	const struct verify_ask *a = x, *b = y;

	if (a->volume != b->volume)
		return a->volume < b->volume ? -1 : 1;
	return a->sector < b->sector ? -1 : a->sector > b->sector;
}

/* One RESEND frame of r's regions, if any: 0 or -errno. */
static int put_asked(struct applying *a, struct dmrepl_proto_resend *r)
{
	int ret = r->count ? dmrepl_proto_put_resend(&a->l->out, r) : 0;

	r->count = 0;
	return ret;
}

/*
 * Are the regions of each of our volumes of the primary's size? The
 * primary refuses a replica with regions of its own at connect otherwise.
 */
static bool regions_match(const struct applying *a, const struct dm_repl_group_info *info)
{
	const struct dmrepl_proto_volume *pv;
	unsigned int i;

	for (i = 0; i < info->nr_volumes && i < DM_REPL_MAX_VOLUMES; i++) {
		pv = dmrepl_proto_hello_volume(a->pri, info->volumes[i].index);
		if (!pv || pv->region_sectors != info->volumes[i].region_sectors)
			return false;
	}
	return true;
}

/*
 * Why a region asked for cannot be marked, or NULL once it is (see
 * mark_asked()). A region that reaches past the primary's end (our volume
 * is the larger) is never resent whole, so never cleared.
 */
static const char *mark_region(struct applying *a, bool same_regions,
			       const struct dm_repl_volume_info *v, __u64 region)
{
	const struct dmrepl_proto_volume *pv = dmrepl_proto_hello_volume(a->pri, v->index);
	struct dm_repl_mark_req req = {
		.abi_version = DM_REPL_ABI_VERSION,
		.volume = v->index,
		.sector = region * v->region_sectors,
	};

	req.nr_sectors = v->sectors - req.sector < v->region_sectors ?
			 v->sectors - req.sector : v->region_sectors;
	if (!pv || !same_regions)
		return "the primary's regions are of another size";
	if (req.sector + req.nr_sectors > pv->sectors)
		return "the region reaches past the primary's end";
	/* A consistent replica keeps a copy first, as before a resync. */
	if (a->g->local->snapshot_hook && a->consistent && snapshot(a, "take"))
		return "the snapshot-hook failed";
	if (ioctl(a->dev_fd, DM_REPL_IOC_MARK, &req))
		return strerror(errno);
	a->consistent = false;
	return NULL;
}

/*
 * A region asked for is marked first (DM_REPL_IOC_MARK), on disk: the
 * replica is inconsistent until the primary has resent it, and asks for it
 * again at its next connection if this session ends first. One that cannot
 * be marked is asked of this session only, which is said. Marked or not.
 */
static bool mark_asked(struct applying *a, bool same_regions,
		       const struct dm_repl_volume_info *v, __u64 region)
{
	const char *why = mark_region(a, same_regions, v, region);

	if (!why)
		return true;
	group_error(a->g, LOG_WARNING, "group %s: volume %u region %llu: asked of this session "
		    "only, not marked: %s", a->g->kgroup, v->index, (unsigned long long)region, why);
	return false;
}

/*
 * The ranges the admin's verify found differing (repltool verify --results
 * --fix, through the control socket), asked of the primary as RESEND
 * frames of our regions that hold them, in order, one frame a volume. A
 * range of a volume we lack, or past its end, is left out and said.
 */
static int send_asks(struct applying *a)
{
	struct verify_ask asks[DM_REPL_VERIFY_LIST];
	struct dm_repl_group_info info;
	struct dmrepl_proto_resend *r;
	unsigned int n, i, sent = 0, marked = 0;
	bool same_regions;
	int ret;

	pthread_mutex_lock(&a->g->lock);
	n = a->g->nr_asks;
	memcpy(asks, a->g->asks, n * sizeof(*asks));
	a->g->nr_asks = 0;
	pthread_mutex_unlock(&a->g->lock);
	if (!n)
		return 0;
	r = malloc(sizeof(*r));
	ret = r ? dmrepl_group_info(a->info_fd, &info, NULL, 0) : -ENOMEM;
	same_regions = !ret && regions_match(a, &info);
	qsort(asks, n, sizeof(*asks), ask_cmp);
	if (r)
		r->count = 0;
	for (i = 0; !ret && i < n; i++) {
		int e = dmrepl_volume_entry(&info, asks[i].volume);
		const struct dm_repl_volume_info *v = e < 0 ? NULL : &info.volumes[e];
		__u64 region;

		if (!v || !v->region_sectors || asks[i].sector >= v->sectors) {
			group_error(a->g, LOG_WARNING, "resend of volume %u sector %llu: not a "
				    "range of ours: left out", asks[i].volume,
				    (unsigned long long)asks[i].sector);
			continue;
		}
		region = asks[i].sector / v->region_sectors;
		if (r->count && r->volume != v->index)
			ret = put_asked(a, r);
		else if (r->count && r->regions[r->count - 1] == region)
			continue;
		marked += mark_asked(a, same_regions, v, region);
		r->volume = v->index;
		r->regions[r->count++] = region;
		sent++;
	}
	if (!ret)
		ret = put_asked(a, r);
	free(r);
	if (ret) {
		group_error(a->g, LOG_ERR, "asking the primary to resend: %s", strerror(-ret));
		return ret;
	}
	glog(a->g, LOG_NOTICE, "asked the primary to resend %u regions verify found differing "
	     "(%u marked: inconsistent until resent, asked again at the next connection)",
	     sent, marked);
	return link_flush(a->l);
}

static int receive(struct applying *a)
{
	struct dmrepl_frame f;
	struct tick tick = { .gen = a->gen };
	int ret, got;

	for (;;) {
		if (repld_stopping) {
			link_refuse(a->l, DMREPL_REFUSE_SHUTDOWN, "repld stopping");
			return 0;
		}
		/* One frame a pass: a busy link must not hide a stop or a role change. */
		got = link_next(a->l, &f);
		ret = got;
		if (got == 1)
			ret = f.type == DMREPL_FRAME_BATCH ? apply_batch(a, &f.batch) :
			      unexpected(a->g, a->l, &f);
		if (ret < 0)
			return ret;
		if (session_check(a->g, a->l, a->info_fd, DM_REPL_ROLE_SECONDARY, 0, &tick))
			return 0;
		ret = send_asks(a);
		if (ret < 0)
			return ret;
		if (got == 1)
			continue;	/* more may be buffered: no wait */
		ret = link_wait(a->l, -1, 0);
		if (ret < 0)
			return ret;
	}
}

static int open_device(struct applying *a, struct dm_repl_group_info *info,
		       struct dm_repl_apply_info *ai)
{
	char msg[DMREPL_ERRMSG_LEN], path[256];
	struct group *g = a->g;
	int ret;

	a->info_fd = dmrepl_group_open(g->kgroup, O_RDONLY, info, msg, sizeof(msg));
	if (a->info_fd < 0) {
		link_refuse(a->l, DMREPL_REFUSE_INTERNAL, "group %s: %s", g->kgroup, msg);
		return a->info_fd;
	}
	ret = dmrepl_apply_info(a->info_fd, ai);
	if (ret) {
		link_refuse(a->l, DMREPL_REFUSE_INTERNAL, "group %s: APPLY_INFO: %s", g->kgroup,
			    strerror(-ret));
		return ret;
	}
	dmrepl_ring_path(g->kgroup, path, sizeof(path));
	a->dev_fd = open(path, O_WRONLY | O_CLOEXEC);
	if (a->dev_fd >= 0)
		return 0;
	ret = -errno;
	link_refuse(a->l, DMREPL_REFUSE_INTERNAL, "%s: open for writing: %s", path, strerror(errno));
	return ret;
}

/* Regions of its own bitmap, any volume: the replica's own writes. */
static bool own_dirty(const struct dm_repl_group_info *info)
{
	unsigned int i;

	for (i = 0; i < info->nr_volumes && i < DM_REPL_MAX_VOLUMES; i++)
		if (info->volumes[i].dirty_regions)
			return true;
	return false;
}

/* Our HELLO as a replica: where we are, and what we hold of our own. */
static void hello_secondary(struct group *g, const struct dm_repl_group_info *info,
			    const struct dm_repl_apply_info *ai, struct dmrepl_proto_hello *h)
{
	hello_init(g, info, DM_REPL_ROLE_SECONDARY, h);
	h->applied_stream = ai->applied_stream;
	h->applied_seq = ai->applied_stream ? ai->applied_seq : 0;
	if (ai->flags & DM_REPL_APPLYF_OUTDATED)
		h->flags |= DMREPL_HELLO_OUTDATED;
	if (ai->flags & DM_REPL_APPLYF_INCONSISTENT)
		h->flags |= DMREPL_HELLO_INCONSISTENT;
	if (own_dirty(info))
		h->flags |= DMREPL_HELLO_DIRTY;
	if (info->flags & DM_REPL_GROUPF_REJOIN)
		h->flags |= DMREPL_HELLO_REJOIN;
	if (info->flags & DM_REPL_GROUPF_SEEDED)
		h->flags |= DMREPL_HELLO_SEEDED;
}

/* The primary's generations become ours: we follow its data from now on. */
static int adopt_gens(struct applying *a, const struct dmrepl_proto_hello *pri)
{
	struct dm_repl_gen gen = {
		.abi_version = DM_REPL_ABI_VERSION,
		.gen_current = pri->gen_current,
	};

	memcpy(gen.gen_history, pri->gen_history, sizeof(gen.gen_history));
	if (!ioctl(a->dev_fd, DM_REPL_IOC_ADOPT_GEN, &gen))
		return 0;
	link_refuse(a->l, DMREPL_REFUSE_INTERNAL, "group %s: ADOPT_GEN: %s", a->g->kgroup,
		    strerror(errno));
	group_error(a->g, LOG_ERR, "group %s: cannot take the primary's generation %016llx: %s",
		    a->g->kgroup, (unsigned long long)pri->gen_current, strerror(errno));
	return -errno;
}

/* One RESEND frame's worth of the bitmap's set bits, from *next on. */
static void fill_resend(struct dmrepl_proto_resend *r, const unsigned long *bits, __u64 nr,
			__u64 *next)
{
	r->count = 0;
	for (; *next < nr && r->count < DMREPL_PROTO_RESEND_MAX_REGIONS; (*next)++)
		if (dmrepl_bit_test(bits, *next))
			r->regions[r->count++] = *next;
}

/* Refuse the primary: our region past its end, written here. */
static int refuse_past_end(struct applying *a, const struct dm_repl_volume_info *v,
			   __u64 region, __u64 pri_sectors)
{
	link_refuse(a->l, DMREPL_REFUSE_VOLUMES, "volume %u: the replica's region %llu, "
		    "written there, reaches past the primary's end", v->index,
		    (unsigned long long)region);
	group_error(a->g, LOG_ERR, "group %s: volume %u: our region %llu, written here, reaches "
		    "past the primary's end (sector %llu of our %llu): no resync can cover it; "
		    "grow the primary's volume to ours (repltool resize) and connect again",
		    a->g->kgroup, v->index, (unsigned long long)region,
		    (unsigned long long)pri_sectors, (unsigned long long)v->sectors);
	return -EPROTO;
}

/*
 * A region of ours that reaches past the primary's end (our volume is the
 * larger) is never resent whole, so never cleared: we would stay
 * inconsistent for good. Refused, saying what to do, before anything of
 * the primary's is taken (its generations) or asked (RESEND).
 */
static int check_dirty_past(struct applying *a, const struct dm_repl_group_info *info,
			    const struct dmrepl_proto_hello *pri)
{
	unsigned long *bits = NULL;
	size_t size = 0;
	unsigned int i;
	int ret = 0;

	for (i = 0; !ret && i < info->nr_volumes && i < DM_REPL_MAX_VOLUMES; i++) {
		const struct dm_repl_volume_info *v = &info->volumes[i];
		__u64 past;

		if (!v->dirty_regions || v->sectors <= pri->volumes[i].sectors)
			continue;
		ret = dmrepl_bitmap_get(a->info_fd, v, &bits, &size);
		if (ret) {
			group_error(a->g, LOG_ERR, "group %s: volume %u: dirty bitmap: %s",
				    a->g->kgroup, v->index, strerror(-ret));
			break;
		}
		past = dmrepl_dirty_past(bits, v->nr_regions, v->region_sectors, v->sectors,
					 pri->volumes[i].sectors);
		if (past < v->nr_regions)
			ret = refuse_past_end(a, v, past, pri->volumes[i].sectors);
	}
	free(bits);
	return ret;
}

/* The RESEND frames of our own dirty regions (see send_own_regions()). */
static int send_dirty_regions(struct applying *a, const struct dm_repl_group_info *info,
			      bool inconsistent)
{
	struct dmrepl_proto_resend *r = malloc(sizeof(*r));
	unsigned long *bits = NULL;
	size_t size = 0;
	__u64 next, total = 0;
	unsigned int i;
	int ret = r ? 0 : -ENOMEM;

	for (i = 0; !ret && i < info->nr_volumes && i < DM_REPL_MAX_VOLUMES; i++) {
		const struct dm_repl_volume_info *v = &info->volumes[i];

		if (!v->dirty_regions)
			continue;
		ret = dmrepl_bitmap_get(a->info_fd, v, &bits, &size);
		r->volume = v->index;
		for (next = 0; !ret && next < v->nr_regions;) {
			fill_resend(r, bits, v->nr_regions, &next);
			total += r->count;
			if (r->count)
				ret = dmrepl_proto_put_resend(&a->l->out, r);
			if (!ret)
				ret = link_flush(a->l);
		}
	}
	free(bits);
	if (!ret && !total && inconsistent && info->nr_volumes) {
		r->volume = info->volumes[0].index;
		r->count = 1;
		r->regions[0] = 0;
		ret = dmrepl_proto_put_resend(&a->l->out, r);
	}
	free(r);
	if (ret) {
		group_error(a->g, LOG_ERR, "group %s: sending our dirty regions: %s", a->g->kgroup,
			    strerror(-ret));
		return ret;
	}
	if (total)
		glog(a->g, LOG_NOTICE, "group %s: %llu regions of our own writes asked from the "
		     "primary, to be overwritten", a->g->kgroup, (unsigned long long)total);
	return link_flush(a->l);
}

/*
 * Our own dirty regions go to the primary, which resends its data for them:
 * each one's bit is cleared by the kernel when that is applied. An
 * inconsistent replica with none asks for region 0 all the same, so that a
 * RESYNC_END comes and ends its inconsistency: a rejoin whose first session
 * ended before the primary's END would wait for it forever otherwise. A
 * seeded replica asks for nothing: its dirty bits are the regions no verify
 * pass found equal yet (every region at first), which verify passes compare
 * and resend only where they differ.
 */
static int send_own_regions(struct applying *a, const struct dm_repl_group_info *info,
			    bool inconsistent)
{
	if (info->flags & DM_REPL_GROUPF_SEEDED) {
		glog(a->g, LOG_NOTICE, "group %s: seeded replica: no region asked from the "
		     "primary; verify passes end the seeding", a->g->kgroup);
		return 0;
	}
	return send_dirty_regions(a, info, inconsistent);
}

/*
 * A resend is asked of one session (the control socket takes it only while
 * one runs): none left from another is carried into it or past it.
 */
static void drop_asks(struct group *g)
{
	pthread_mutex_lock(&g->lock);
	g->nr_asks = 0;
	pthread_mutex_unlock(&g->lock);
}

bool session_secondary(struct group *g, struct link *l)
{
	struct applying a = { .g = g, .l = l, .info_fd = -1, .dev_fd = -1 };
	struct dmrepl_proto_hello ours, theirs;
	struct dm_repl_group_info info;
	struct dm_repl_apply_info ai;
	bool streamed = false;

	a.buf = aligned_alloc(8, group_batch_max(g));
	if (!a.buf)
		link_refuse(l, DMREPL_REFUSE_INTERNAL, "batch buffer: %s", strerror(ENOMEM));
	else if (!open_device(&a, &info, &ai)) {
		hello_secondary(g, &info, &ai, &ours);
		if (!hello_exchange(g, l, &ours, &theirs) && !check_dirty_past(&a, &info, &theirs) &&
		    (theirs.gen_current == ours.gen_current || !adopt_gens(&a, &theirs)) &&
		    !send_own_regions(&a, &info, ai.flags & DM_REPL_APPLYF_INCONSISTENT)) {
			streamed = true;
			a.gen = theirs.gen_current;
			a.pri = &theirs;
			a.consistent = !(ai.flags & (DM_REPL_APPLYF_INCONSISTENT |
						     DM_REPL_APPLYF_OUTDATED));
			/* A copy this repld did not see taken may be there: drop it when due. */
			if (!g->snapshot_known) {
				g->snapshot_known = true;
				g->snapshot_held = !a.consistent;
			}
			dmrepl_proto_order_init(&a.order, ours.applied_stream, ours.applied_seq);
			drop_asks(g);
			session_started(g, &theirs);
			receive(&a);
		}
	}
	drop_asks(g);
	if (a.dev_fd >= 0)
		close(a.dev_fd);
	if (a.info_fd >= 0)
		close(a.info_fd);
	free(a.buf);
	dmrepl_proto_rx_free(&a.rx);
	return streamed;
}
