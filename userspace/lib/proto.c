// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The repld wire protocol, version 1: frame codec, batch payloads, and the
 * rules a receiver applies across frames (Documentation/protocol.md).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "dmrepl_proto.h"

static const char *const reason_names[DMREPL_REFUSE_REASON_MAX + 1] = {
	[DMREPL_REFUSE_VERSION]		= "protocol version",
	[DMREPL_REFUSE_GROUP]		= "wrong group",
	[DMREPL_REFUSE_ROLE]		= "wrong role",
	[DMREPL_REFUSE_VOLUMES]		= "volume mismatch",
	[DMREPL_REFUSE_STREAM]		= "stream cannot be placed",
	[DMREPL_REFUSE_MALFORMED]	= "malformed frame",
	[DMREPL_REFUSE_TOO_LARGE]	= "frame over a limit",
	[DMREPL_REFUSE_ORDER]		= "out-of-order batch",
	[DMREPL_REFUSE_APPLY]		= "apply refused",
	[DMREPL_REFUSE_SHUTDOWN]	= "shutting down",
	[DMREPL_REFUSE_INTERNAL]	= "internal error",
	[DMREPL_REFUSE_DIVERGED]	= "diverged",
};

const char *dmrepl_proto_reason_name(unsigned int reason)
{
	return reason <= DMREPL_REFUSE_REASON_MAX ? reason_names[reason] : NULL;
}

/* ------------------------------------------------------------------ */
/* Little-endian fields                                                */
/* ------------------------------------------------------------------ */

static unsigned char *put_u8(unsigned char *p, unsigned int v)
{
	*p = (unsigned char)v;
	return p + 1;
}

static unsigned char *put_u16(unsigned char *p, unsigned int v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	return p + 2;
}

static unsigned char *put_u32(unsigned char *p, __u32 v)
{
	p = put_u16(p, v & 0xffff);
	return put_u16(p, v >> 16);
}

static unsigned char *put_u64(unsigned char *p, __u64 v)
{
	p = put_u32(p, (__u32)v);
	return put_u32(p, (__u32)(v >> 32));
}

static unsigned char *put_bytes(unsigned char *p, const void *src, size_t n)
{
	memcpy(p, src, n);
	return p + n;
}

/* A reader of a body whose length is known to be there. */
struct cursor {
	const unsigned char *p;
};

static unsigned int get_u8(struct cursor *c)
{
	return *c->p++;
}

static __u32 get_u32(struct cursor *c)
{
	const unsigned char *p = c->p;

	c->p += 4;
	return (__u32)p[0] | (__u32)p[1] << 8 | (__u32)p[2] << 16 | (__u32)p[3] << 24;
}

static __u64 get_u64(struct cursor *c)
{
	__u64 lo = get_u32(c);

	return lo | (__u64)get_u32(c) << 32;
}

static void get_bytes(struct cursor *c, void *dst, size_t n)
{
	memcpy(dst, c->p, n);
	c->p += n;
}

static bool all_zero(const unsigned char *p, size_t n)
{
	while (n--)
		if (*p++)
			return false;
	return true;
}

static bool printable(const char *s, size_t n)
{
	while (n--) {
		if (*s < 0x20 || *s > 0x7e)
			return false;
		s++;
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* Output buffer                                                       */
/* ------------------------------------------------------------------ */

void dmrepl_obuf_init(struct dmrepl_obuf *o)
{
	o->buf = NULL;
	o->head = 0;
	o->len = 0;
	o->cap = 0;
	o->zstd = NULL;
	o->zstd_misses = 0;
}

void dmrepl_obuf_free(struct dmrepl_obuf *o)
{
	free(o->buf);
	ZSTD_freeCCtx(o->zstd);
	dmrepl_obuf_init(o);
}

/*
 * Sent bytes are dropped from the front by moving head alone: a sender that
 * writes 16 KiB at a time must not move the rest of a window of batches
 * after each write. The space is taken back when all is sent, or when more
 * room is needed (one move then).
 */
void dmrepl_obuf_consume(struct dmrepl_obuf *o, size_t n)
{
	o->head += n;
	if (o->head == o->len)
		o->head = o->len = 0;
}

/* Room for n more bytes after len; NULL when out of memory. */
static unsigned char *obuf_room(struct dmrepl_obuf *o, size_t n)
{
	size_t cap = o->cap ? o->cap : 4096;
	unsigned char *buf;

	if (o->len + n > o->cap && o->head) {
		memmove(o->buf, o->buf + o->head, o->len - o->head);
		o->len -= o->head;
		o->head = 0;
	}
	if (n > SIZE_MAX / 2 - o->len)
		return NULL;
	if (o->len + n <= o->cap)
		return o->buf + o->len;
	while (cap < o->len + n)
		cap *= 2;
	buf = realloc(o->buf, cap);
	if (!buf)
		return NULL;
	o->buf = buf;
	o->cap = cap;
	return buf + o->len;
}

static unsigned char *put_header(unsigned char *p, unsigned int type, __u32 body_len)
{
	p = put_u32(p, DMREPL_PROTO_MAGIC);
	p = put_u8(p, DMREPL_PROTO_VERSION);
	p = put_u8(p, type);
	p = put_u16(p, 0);
	p = put_u32(p, body_len);
	return put_u32(p, 0);
}

/* ------------------------------------------------------------------ */
/* HELLO                                                               */
/* ------------------------------------------------------------------ */

/* 1..63 printable characters, NUL-padded. */
static bool site_ok(const char site[DMREPL_PROTO_SITE_MAX])
{
	size_t len = strnlen(site, DMREPL_PROTO_SITE_MAX);

	return len && len < DMREPL_PROTO_SITE_MAX && printable(site, len) &&
	       all_zero((const unsigned char *)site + len, DMREPL_PROTO_SITE_MAX - len);
}

/* The fields that only one role fills must be zero in the other's. */
static const char *hello_role_problem(const struct dmrepl_proto_hello *h, __u64 *value)
{
	if (h->role == DMREPL_PROTO_PRIMARY) {
		*value = h->stream;
		if (!h->stream)
			return "HELLO stream is 0 from a primary";
		*value = h->applied_stream | h->applied_seq;
		if (*value)
			return "HELLO applied point is not 0 from a primary";
		*value = h->flags;
		if (h->flags & ~DMREPL_HELLO_BEHIND)
			return "HELLO flags of a secondary from a primary";
		*value = 0;
		if (!h->gen_current)
			return "HELLO gen_current is 0 from a primary";
		return NULL;
	}
	*value = h->stream | h->next_seq;
	if (*value)
		return "HELLO stream or next_seq is not 0 from a secondary";
	*value = h->applied_seq;
	if (!h->applied_stream && h->applied_seq)
		return "HELLO applied_seq is not 0 with applied_stream 0";
	*value = h->flags;
	if (h->flags & DMREPL_HELLO_BEHIND)
		return "HELLO flag behind from a secondary";
	return NULL;
}

static const char *hello_volumes_problem(const struct dmrepl_proto_hello *h, __u64 *value)
{
	__u32 i;

	for (i = 0; i < h->nvolumes; i++) {
		*value = h->volumes[i].index;
		if (h->volumes[i].index >= DM_REPL_MAX_VOLUMES)
			return "HELLO volume index is over 63";
		if (i && h->volumes[i].index <= h->volumes[i - 1].index)
			return "HELLO volume indexes are not strictly increasing";
		*value = h->volumes[i].sectors;
		if (!h->volumes[i].sectors)
			return "HELLO volume sectors is 0";
		*value = h->volumes[i].region_sectors;
		if (*value < DM_REPL_META_REGION_SECTORS_MIN ||
		    *value > DM_REPL_META_REGION_SECTORS_MAX || (*value & (*value - 1)))
			return "HELLO volume region_sectors is not a power of 2 in 8..2097152";
	}
	return NULL;
}

/* Every rule of a HELLO's fields; *value gets the offending one. */
static const char *hello_problem(const struct dmrepl_proto_hello *h, __u64 *value)
{
	const char *why;

	*value = 0;
	if (!dmrepl_group_name_ok(h->group))
		return "HELLO group is not 1-31 of [A-Za-z0-9_.+-], no leading dot, NUL-padded";
	if (!site_ok(h->site))
		return "HELLO site is not 1-63 printable characters, NUL-padded";
	*value = h->role;
	if (h->role != DMREPL_PROTO_PRIMARY && h->role != DMREPL_PROTO_SECONDARY)
		return "HELLO role is neither 1 (primary) nor 2 (secondary)";
	*value = h->flags;
	if (h->flags & ~DMREPL_HELLO_KNOWN)
		return "HELLO flags has unknown bits";
	*value = h->max_batch;
	if (h->max_batch < DMREPL_PROTO_MAX_BATCH_MIN || h->max_batch > DM_REPL_APPLY_BATCH_MAX)
		return "HELLO max_batch is outside 1 MiB + 80 .. 32 MiB";
	*value = h->window;
	if (!h->window || h->window > DMREPL_PROTO_WINDOW_MAX)
		return "HELLO window is outside 1..256";
	*value = h->nvolumes;
	if (h->nvolumes > DM_REPL_MAX_VOLUMES)
		return "HELLO nvolumes is over 64";
	why = hello_role_problem(h, value);
	return why ? why : hello_volumes_problem(h, value);
}

/* A body rule failed when why is set: -EBADMSG, with why in the frame. */
static int bad(struct dmrepl_frame *f, const char *why)
{
	f->why = why;
	return why ? -EBADMSG : 0;
}

static void name_field(char *dst, const char *src, size_t size)
{
	size_t len = strnlen(src, size);

	memset(dst, 0, size);
	memcpy(dst, src, len);
}

int dmrepl_proto_put_hello(struct dmrepl_obuf *o, const struct dmrepl_proto_hello *h)
{
	struct dmrepl_proto_hello n = *h;
	__u32 body_len, i;
	unsigned char *p;
	__u64 value;

	/* A NUL-terminated name with anything after it is sent NUL-padded. */
	name_field(n.group, h->group, sizeof(n.group));
	name_field(n.site, h->site, sizeof(n.site));
	if (hello_problem(&n, &value))
		return -EINVAL;
	body_len = DMREPL_PROTO_HELLO_FIXED + n.nvolumes * DMREPL_PROTO_HELLO_VOLUME;
	p = obuf_room(o, DMREPL_PROTO_HDR_SIZE + body_len);
	if (!p)
		return -ENOMEM;
	p = put_header(p, DMREPL_FRAME_HELLO, body_len);
	p = put_bytes(p, n.group, sizeof(n.group));
	p = put_bytes(p, n.site, sizeof(n.site));
	p = put_u8(p, n.role);
	p = put_u32(p, n.flags);
	p = put_u64(p, n.stream);
	p = put_u64(p, n.next_seq);
	p = put_u64(p, n.applied_stream);
	p = put_u64(p, n.applied_seq);
	p = put_u32(p, n.max_batch);
	p = put_u32(p, n.window);
	p = put_u64(p, n.gen_current);
	for (i = 0; i < DMREPL_PROTO_GEN_HISTORY; i++)
		p = put_u64(p, n.gen_history[i]);
	p = put_u32(p, n.nvolumes);
	for (i = 0; i < n.nvolumes; i++) {
		p = put_u32(p, n.volumes[i].index);
		p = put_u32(p, n.volumes[i].region_sectors);
		p = put_u64(p, n.volumes[i].sectors);
	}
	o->len += DMREPL_PROTO_HDR_SIZE + body_len;
	return 0;
}

static int decode_hello(struct cursor *c, __u32 body_len, struct dmrepl_frame *f)
{
	struct dmrepl_proto_hello *h = &f->hello;
	__u64 *value = &f->bad_value;
	__u32 i;

	memset(h, 0, sizeof(*h));
	get_bytes(c, h->group, sizeof(h->group));
	get_bytes(c, h->site, sizeof(h->site));
	h->role = get_u8(c);
	h->flags = get_u32(c);
	h->stream = get_u64(c);
	h->next_seq = get_u64(c);
	h->applied_stream = get_u64(c);
	h->applied_seq = get_u64(c);
	h->max_batch = get_u32(c);
	h->window = get_u32(c);
	h->gen_current = get_u64(c);
	for (i = 0; i < DMREPL_PROTO_GEN_HISTORY; i++)
		h->gen_history[i] = get_u64(c);
	h->nvolumes = get_u32(c);
	*value = h->nvolumes;
	if (h->nvolumes > DM_REPL_MAX_VOLUMES)
		return bad(f, "HELLO nvolumes is over 64");
	*value = body_len;
	if (body_len != DMREPL_PROTO_HELLO_FIXED + h->nvolumes * DMREPL_PROTO_HELLO_VOLUME)
		return bad(f, "HELLO body length is not 185 + 16 * nvolumes");
	for (i = 0; i < h->nvolumes; i++) {
		h->volumes[i].index = get_u32(c);
		h->volumes[i].region_sectors = get_u32(c);
		h->volumes[i].sectors = get_u64(c);
	}
	return bad(f, hello_problem(h, value));
}

/* ------------------------------------------------------------------ */
/* ACK, HEARTBEAT, REFUSE                                              */
/* ------------------------------------------------------------------ */

int dmrepl_proto_put_ack(struct dmrepl_obuf *o, const struct dmrepl_proto_ack *a)
{
	unsigned char *p = obuf_room(o, DMREPL_PROTO_HDR_SIZE + DMREPL_PROTO_ACK_SIZE);

	if (!p)
		return -ENOMEM;
	p = put_header(p, DMREPL_FRAME_ACK, DMREPL_PROTO_ACK_SIZE);
	p = put_u64(p, a->applied_stream);
	p = put_u64(p, a->applied_seq);
	put_u64(p, a->acked_last_seq);
	o->len += DMREPL_PROTO_HDR_SIZE + DMREPL_PROTO_ACK_SIZE;
	return 0;
}

static int decode_ack(struct cursor *c, struct dmrepl_frame *f)
{
	struct dmrepl_proto_ack *a = &f->ack;

	a->applied_stream = get_u64(c);
	a->applied_seq = get_u64(c);
	a->acked_last_seq = get_u64(c);
	f->bad_value = a->applied_seq;
	if (!a->applied_stream && a->applied_seq)
		return bad(f, "ACK applied_seq is not 0 with applied_stream 0");
	return 0;
}

int dmrepl_proto_put_heartbeat(struct dmrepl_obuf *o, __u64 sent_ns)
{
	unsigned char *p = obuf_room(o, DMREPL_PROTO_HDR_SIZE + DMREPL_PROTO_HEARTBEAT_SIZE);

	if (!p)
		return -ENOMEM;
	p = put_header(p, DMREPL_FRAME_HEARTBEAT, DMREPL_PROTO_HEARTBEAT_SIZE);
	put_u64(p, sent_ns);
	o->len += DMREPL_PROTO_HDR_SIZE + DMREPL_PROTO_HEARTBEAT_SIZE;
	return 0;
}

/* 1..DMREPL_PROTO_RESEND_MAX_REGIONS regions, strictly increasing, of volume 0..63. */
static const char *resend_problem(const struct dmrepl_proto_resend *r, __u64 *value)
{
	__u32 i;

	*value = r->volume;
	if (r->volume >= DM_REPL_MAX_VOLUMES)
		return "RESEND volume is over 63";
	*value = r->count;
	if (!r->count || r->count > DMREPL_PROTO_RESEND_MAX_REGIONS)
		return "RESEND count is not 1..1024";
	for (i = 1; i < r->count; i++) {
		*value = r->regions[i];
		if (r->regions[i] <= r->regions[i - 1])
			return "RESEND regions are not strictly increasing";
	}
	return NULL;
}

int dmrepl_proto_put_resend(struct dmrepl_obuf *o, const struct dmrepl_proto_resend *r)
{
	__u32 body_len = 8 + 8 * r->count, i;
	unsigned char *p;
	__u64 value;

	if (resend_problem(r, &value))
		return -EINVAL;
	p = obuf_room(o, DMREPL_PROTO_HDR_SIZE + body_len);
	if (!p)
		return -ENOMEM;
	p = put_header(p, DMREPL_FRAME_RESEND, body_len);
	p = put_u32(p, r->volume);
	p = put_u32(p, r->count);
	for (i = 0; i < r->count; i++)
		p = put_u64(p, r->regions[i]);
	o->len += DMREPL_PROTO_HDR_SIZE + body_len;
	return 0;
}

static int decode_resend(struct cursor *c, __u32 body_len, struct dmrepl_frame *f)
{
	struct dmrepl_proto_resend *r = &f->resend;
	__u32 i;

	r->volume = get_u32(c);
	r->count = get_u32(c);
	f->bad_value = body_len;
	if (r->count > DMREPL_PROTO_RESEND_MAX_REGIONS || body_len != 8 + 8 * r->count)
		return bad(f, "RESEND body length is not 8 + 8 * count");
	for (i = 0; i < r->count; i++)
		r->regions[i] = get_u64(c);
	return bad(f, resend_problem(r, &f->bad_value));
}

int dmrepl_proto_put_refuse(struct dmrepl_obuf *o, unsigned int reason, const char *text)
{
	size_t text_len = strnlen(text, DMREPL_PROTO_REFUSE_TEXT_MAX);
	__u32 body_len = 4 + text_len;
	unsigned char *p;

	if (!dmrepl_proto_reason_name(reason) || !printable(text, text_len))
		return -EINVAL;
	p = obuf_room(o, DMREPL_PROTO_HDR_SIZE + body_len);
	if (!p)
		return -ENOMEM;
	p = put_header(p, DMREPL_FRAME_REFUSE, body_len);
	p = put_u32(p, reason);
	put_bytes(p, text, text_len);
	o->len += DMREPL_PROTO_HDR_SIZE + body_len;
	return 0;
}

static int decode_refuse(struct cursor *c, __u32 body_len, struct dmrepl_frame *f)
{
	struct dmrepl_proto_refuse *r = &f->refuse;

	r->reason = get_u32(c);
	r->text_len = body_len - 4;
	get_bytes(c, r->text, r->text_len);
	r->text[r->text_len] = '\0';
	f->bad_value = r->reason;
	if (!dmrepl_proto_reason_name(r->reason))
		return bad(f, "REFUSE reason is unknown");
	f->bad_value = r->text_len;
	if (!printable(r->text, r->text_len))
		return bad(f, "REFUSE text is not printable ASCII");
	return 0;
}

/* ------------------------------------------------------------------ */
/* BATCH                                                               */
/* ------------------------------------------------------------------ */

/* What the records of a batch say about themselves. */
struct batch_sum {
	__u64 first_seq;
	__u64 last_seq;
	__u64 stream;
	__u32 nrecords;
};

/* The header rules, or (full) every rule of dmrepl_rec_check(). */
static int rec_ok(const unsigned char *p, size_t avail, bool full, const char **why)
{
	if (full)
		return dmrepl_rec_check(p, avail, why);
	if (avail < DM_REPL_REC_HDR_SIZE) {
		*why = "shorter than a record header";
		return -EINVAL;
	}
	return dmrepl_rec_check_header((const struct dm_repl_rec *)p, avail, why);
}

/* One more record of a batch after sum's: same stream, next sequence. */
static const char *rec_follows(const struct dm_repl_rec *r, const struct batch_sum *s)
{
	if (!dmrepl_rec_stream(r))
		return "a record of stream 0";
	if (!dmrepl_rec_seq(r))
		return "a record of sequence 0";
	if (!s->nrecords)
		return NULL;
	if (dmrepl_rec_type(r) == DM_REPL_REC_STREAM)
		return "a STREAM record that is not the first of its batch";
	if (dmrepl_rec_stream(r) != s->stream)
		return "records of two streams in one batch";
	if (dmrepl_rec_seq(r) != s->last_seq + 1)
		return "record sequences are not contiguous";
	if (s->nrecords == UINT32_MAX)
		return "more than 2^32 - 1 records";
	return NULL;
}

/* Walk len bytes of records, 8-byte aligned; 0 or -EBADMSG with *why. */
static int batch_walk(const unsigned char *recs, size_t len, bool full,
		      struct batch_sum *s, const char **why)
{
	const struct dm_repl_rec *r;
	size_t off = 0;

	memset(s, 0, sizeof(*s));
	if (!len) {
		*why = "a batch without records";
		return -EBADMSG;
	}
	while (off < len) {
		r = (const struct dm_repl_rec *)(recs + off);
		if (rec_ok(recs + off, len - off, full, why))
			return -EBADMSG;
		*why = rec_follows(r, s);
		if (*why)
			return -EBADMSG;
		if (!s->nrecords) {
			s->first_seq = dmrepl_rec_seq(r);
			s->stream = dmrepl_rec_stream(r);
		}
		s->last_seq = dmrepl_rec_seq(r);
		s->nrecords++;
		off += dmrepl_rec_len(r);
	}
	return 0;
}

int dmrepl_proto_batch_check(const struct dmrepl_proto_batch *b, const void *records,
			     const char **why)
{
	struct batch_sum s;

	if (batch_walk(records, b->raw_len, true, &s, why))
		return -EBADMSG;
	if (s.nrecords != b->nrecords)
		*why = "BATCH nrecords differs from the records";
	else if (s.first_seq != b->first_seq)
		*why = "BATCH first_seq differs from the first record's";
	else if (s.last_seq != b->last_seq)
		*why = "BATCH last_seq differs from the last record's";
	else if (s.stream != b->stream)
		*why = "BATCH stream differs from the records'";
	else
		*why = NULL;
	return *why ? -EBADMSG : 0;
}

/*
 * The probe of a batch after one that did not pay: SAMPLE_LEN bytes of
 * every SAMPLE_STRIDE, compressed alone. Its slices have less context than
 * the whole batch, so it need only save 1/32 for the batch to be
 * compressed whole; a batch whose sample saves less goes raw. Every
 * FULL_EVERY-th batch of a run that did not pay is compressed whole all
 * the same, for what the slices cannot see (matches further apart).
 */
#define SAMPLE_LEN	512U
#define SAMPLE_STRIDE	8192U
#define FULL_EVERY	32U

static bool sample_pays(ZSTD_CCtx *zc, unsigned char *dst, size_t cap,
			const unsigned char *src, size_t len, int level)
{
	size_t n = 0, off, k;
	unsigned char *sample;

	if (len < 4 * SAMPLE_STRIDE)
		return true;
	/* The sample at the end of dst, its compressed form at the start. */
	sample = dst + cap - len / SAMPLE_STRIDE * SAMPLE_LEN;
	for (off = 0; off + SAMPLE_STRIDE <= len; off += SAMPLE_STRIDE) {
		memcpy(sample + n, src + off, SAMPLE_LEN);
		n += SAMPLE_LEN;
	}
	k = ZSTD_compressCCtx(zc, dst, (size_t)(sample - dst), sample, n, level);
	return !ZSTD_isError(k) && k <= n - n / 32;
}

/*
 * Compress src into dst (cap bytes, at least len) at level; the compressed
 * size, or 0 when compression does not pay: it must save at least 1/16.
 * The context is kept in o: made anew for each batch, its tables (about
 * 1 MiB at level 3) would be allocated and faulted in each time.
 */
static size_t compress_if_paying(struct dmrepl_obuf *o, void *dst, size_t cap, const void *src,
				 size_t len, int level)
{
	size_t n;

	if (level <= 0)
		return 0;
	if (!o->zstd)
		o->zstd = ZSTD_createCCtx();
	if (!o->zstd)
		return 0;	/* sent raw: still a valid batch */
	if (o->zstd_misses % FULL_EVERY && !sample_pays(o->zstd, dst, cap, src, len, level)) {
		o->zstd_misses++;
		return 0;
	}
	n = ZSTD_compressCCtx(o->zstd, dst, cap, src, len, level);
	if (ZSTD_isError(n) || n > len - len / 16) {
		o->zstd_misses++;
		return 0;
	}
	o->zstd_misses = 0;
	return n;
}

int dmrepl_proto_put_batch(struct dmrepl_obuf *o, const void *records, size_t len,
			   int level, unsigned int *codec, const char **why)
{
	size_t bound = len, payload_len;
	unsigned int used = DMREPL_CODEC_RAW;
	unsigned char *p, *payload;
	struct batch_sum s;

	*why = NULL;
	if (len > DM_REPL_APPLY_BATCH_MAX)
		return -EMSGSIZE;
	if (batch_walk(records, len, false, &s, why))
		return -EINVAL;
	if (level > 0 && ZSTD_compressBound(len) > bound)
		bound = ZSTD_compressBound(len);
	p = obuf_room(o, DMREPL_PROTO_HDR_SIZE + DMREPL_PROTO_BATCH_HDR + bound);
	if (!p)
		return -ENOMEM;
	payload = p + DMREPL_PROTO_HDR_SIZE + DMREPL_PROTO_BATCH_HDR;
	payload_len = compress_if_paying(o, payload, bound, records, len, level);
	if (payload_len) {
		used = DMREPL_CODEC_ZSTD;
	} else {
		memcpy(payload, records, len);
		payload_len = len;
	}
	p = put_header(p, DMREPL_FRAME_BATCH, DMREPL_PROTO_BATCH_HDR + payload_len);
	p = put_u64(p, s.first_seq);
	p = put_u64(p, s.last_seq);
	p = put_u64(p, s.stream);
	p = put_u32(p, s.nrecords);
	p = put_u32(p, len);
	p = put_u8(p, used);
	memset(p, 0, 7);
	o->len += DMREPL_PROTO_HDR_SIZE + DMREPL_PROTO_BATCH_HDR + payload_len;
	if (codec)
		*codec = used;
	return 0;
}

static const char *batch_seq_problem(const struct dmrepl_proto_batch *b, __u64 *value)
{
	*value = b->first_seq;
	if (!b->first_seq)
		return "BATCH first_seq is 0";
	if (b->first_seq > b->last_seq)
		return "BATCH first_seq is above last_seq";
	*value = b->stream;
	if (!b->stream)
		return "BATCH stream is 0";
	*value = b->nrecords;
	if (!b->nrecords || b->nrecords - 1 != b->last_seq - b->first_seq)
		return "BATCH nrecords is not last_seq - first_seq + 1";
	return NULL;
}

static const char *batch_len_problem(const struct dmrepl_proto_batch *b, __u64 *value)
{
	*value = b->raw_len;
	if (b->raw_len % DM_REPL_REC_ALIGN ||
	    b->raw_len / DM_REPL_REC_HDR_SIZE < b->nrecords)
		return "BATCH raw_len is not a multiple of 8 holding nrecords headers";
	*value = b->codec;
	if (b->codec != DMREPL_CODEC_RAW && b->codec != DMREPL_CODEC_ZSTD)
		return "BATCH codec is neither 0 (raw) nor 1 (zstd)";
	*value = b->payload_len;
	if (b->codec == DMREPL_CODEC_RAW && b->payload_len != b->raw_len)
		return "BATCH raw payload length is not raw_len";
	if (b->codec == DMREPL_CODEC_ZSTD && b->payload_len >= b->raw_len)
		return "BATCH zstd payload is not smaller than raw_len";
	return NULL;
}

static int decode_batch(struct cursor *c, __u32 body_len, struct dmrepl_frame *f)
{
	struct dmrepl_proto_batch *b = &f->batch;
	unsigned char reserved[7];
	const char *why;

	b->first_seq = get_u64(c);
	b->last_seq = get_u64(c);
	b->stream = get_u64(c);
	b->nrecords = get_u32(c);
	b->raw_len = get_u32(c);
	b->codec = get_u8(c);
	get_bytes(c, reserved, sizeof(reserved));
	b->payload = c->p;
	b->payload_len = body_len - DMREPL_PROTO_BATCH_HDR;
	f->bad_value = b->raw_len;
	if (b->raw_len > DM_REPL_APPLY_BATCH_MAX) {
		f->why = "BATCH raw_len is over 32 MiB";
		return -EMSGSIZE;
	}
	f->bad_value = 0;
	if (!all_zero(reserved, sizeof(reserved)))
		return bad(f, "BATCH reserved bytes are not 0");
	why = batch_seq_problem(b, &f->bad_value);
	return bad(f, why ? why : batch_len_problem(b, &f->bad_value));
}

static int unpack_zstd(const struct dmrepl_proto_batch *b, void *zd, void *out, const char **why)
{
	size_t n = ZSTD_findFrameCompressedSize(b->payload, b->payload_len);

	if (ZSTD_isError(n) || n != b->payload_len) {
		*why = "BATCH payload is not exactly one zstd frame";
		return -EBADMSG;
	}
	/* The declared size is checked first: no work for a frame that lies. */
	if (ZSTD_getFrameContentSize(b->payload, b->payload_len) != b->raw_len) {
		*why = "BATCH zstd frame does not declare raw_len bytes";
		return -EBADMSG;
	}
	if (zd)
		n = ZSTD_decompressDCtx(zd, out, b->raw_len, b->payload, b->payload_len);
	else
		n = ZSTD_decompress(out, b->raw_len, b->payload, b->payload_len);
	if (ZSTD_isError(n) || n != b->raw_len) {
		*why = "BATCH zstd payload does not decompress to raw_len bytes";
		return -EBADMSG;
	}
	return 0;
}

/* The records into out, or (in_place) left in a raw payload 8-byte aligned. */
static int unpack(const struct dmrepl_proto_batch *b, void *zd, void *out, size_t out_size,
		  bool in_place, const void **records, const char **why)
{
	int ret;

	if (b->raw_len > out_size) {
		*why = "BATCH raw_len is over the receiver's max_batch";
		return -EMSGSIZE;
	}
	*records = out;
	if (b->codec == DMREPL_CODEC_ZSTD) {
		ret = unpack_zstd(b, zd, out, why);
		if (ret)
			return ret;
	} else if (in_place && !((uintptr_t)b->payload % DM_REPL_REC_ALIGN)) {
		*records = b->payload;
	} else {
		memcpy(out, b->payload, b->raw_len);
	}
	return dmrepl_proto_batch_check(b, *records, why);
}

int dmrepl_proto_batch_unpack(const struct dmrepl_proto_batch *b, void *out,
			      size_t out_size, const char **why)
{
	const void *records;

	return unpack(b, NULL, out, out_size, false, &records, why);
}

void dmrepl_proto_rx_free(struct dmrepl_proto_rx *rx)
{
	ZSTD_freeDCtx(rx->zstd);
	rx->zstd = NULL;
}

int dmrepl_proto_batch_records(const struct dmrepl_proto_batch *b, struct dmrepl_proto_rx *rx,
			       void *out, size_t out_size, const void **records,
			       const char **why)
{
	*why = NULL;
	if (b->codec == DMREPL_CODEC_ZSTD && !rx->zstd) {
		rx->zstd = ZSTD_createDCtx();
		if (!rx->zstd)
			return -ENOMEM;
	}
	return unpack(b, rx->zstd, out, out_size, true, records, why);
}

/* ------------------------------------------------------------------ */
/* Frames                                                              */
/* ------------------------------------------------------------------ */

static const __u32 body_max[DMREPL_FRAME_TYPE_MAX + 1] = {
	[DMREPL_FRAME_HELLO]	 = DMREPL_PROTO_HELLO_MAX,
	[DMREPL_FRAME_BATCH]	 = DMREPL_PROTO_BATCH_MAX,
	[DMREPL_FRAME_ACK]	 = DMREPL_PROTO_ACK_SIZE,
	[DMREPL_FRAME_HEARTBEAT] = DMREPL_PROTO_HEARTBEAT_SIZE,
	[DMREPL_FRAME_REFUSE]	 = DMREPL_PROTO_REFUSE_MAX,
	[DMREPL_FRAME_RESEND]	 = DMREPL_PROTO_RESEND_MAX,
};

static const __u32 body_min[DMREPL_FRAME_TYPE_MAX + 1] = {
	[DMREPL_FRAME_HELLO]	 = DMREPL_PROTO_HELLO_FIXED,
	[DMREPL_FRAME_BATCH]	 = DMREPL_PROTO_BATCH_HDR,
	[DMREPL_FRAME_ACK]	 = DMREPL_PROTO_ACK_SIZE,
	[DMREPL_FRAME_HEARTBEAT] = DMREPL_PROTO_HEARTBEAT_SIZE,
	[DMREPL_FRAME_REFUSE]	 = 4,
	[DMREPL_FRAME_RESEND]	 = 16,
};

struct header {
	__u32 magic;
	unsigned int version;
	unsigned int flags;
	__u32 body_len;
	__u32 reserved;
};

/* The rules of the header, in the order a reader must apply them. */
static int header_problem(const struct header *h, size_t max_body, struct dmrepl_frame *f)
{
	f->bad_value = h->magic;
	if (h->magic != DMREPL_PROTO_MAGIC)
		return bad(f, "frame magic is not DREP");
	f->bad_value = h->version;
	if (h->version != DMREPL_PROTO_VERSION) {
		f->why = "frame version is not 3";
		return -EPROTO;
	}
	f->bad_value = f->type;
	if (!f->type || f->type > DMREPL_FRAME_TYPE_MAX)
		return bad(f, "frame type is not 1..6");
	f->bad_value = h->flags;
	if (h->flags)
		return bad(f, "frame flags are not 0");
	f->bad_value = h->reserved;
	if (h->reserved)
		return bad(f, "frame reserved field is not 0");
	f->bad_value = h->body_len;
	if (h->body_len > body_max[f->type] || h->body_len > max_body) {
		f->why = h->body_len > max_body ?
			 "frame body length is over the receiver's limit" :
			 "frame body length is over its type's limit";
		return -EMSGSIZE;
	}
	if (h->body_len < body_min[f->type])
		return bad(f, "frame body length is under its type's size");
	return 0;
}

static int decode_body(struct cursor *c, __u32 body_len, struct dmrepl_frame *f)
{
	switch (f->type) {
	case DMREPL_FRAME_HELLO:
		return decode_hello(c, body_len, f);
	case DMREPL_FRAME_BATCH:
		return decode_batch(c, body_len, f);
	case DMREPL_FRAME_ACK:
		return decode_ack(c, f);
	case DMREPL_FRAME_HEARTBEAT:
		f->heartbeat.sent_ns = get_u64(c);
		return 0;
	case DMREPL_FRAME_RESEND:
		return decode_resend(c, body_len, f);
	}
	return decode_refuse(c, body_len, f);
}

long dmrepl_frame_decode(const void *buf, size_t len, size_t max_body,
			 struct dmrepl_frame *f)
{
	struct cursor c = { .p = buf };
	struct header h;
	int ret;

	memset(f, 0, sizeof(*f));
	if (len < DMREPL_PROTO_HDR_SIZE)
		return 0;
	h.magic = get_u32(&c);
	h.version = get_u8(&c);
	f->type = get_u8(&c);
	h.flags = get_u8(&c);
	h.flags |= get_u8(&c) << 8;
	h.body_len = get_u32(&c);
	h.reserved = get_u32(&c);
	ret = header_problem(&h, max_body, f);
	if (ret)
		return ret;
	if (len - DMREPL_PROTO_HDR_SIZE < h.body_len)
		return 0;
	ret = decode_body(&c, h.body_len, f);
	if (ret)
		return ret;
	f->bad_value = 0;
	return DMREPL_PROTO_HDR_SIZE + (long)h.body_len;
}

/* ------------------------------------------------------------------ */
/* Rules across frames                                                 */
/* ------------------------------------------------------------------ */

/*
 * A seeded replica's regions are cleared by matching VERIFY records that
 * cover them whole, and only the primary's volume is verified: a region of
 * another size, or one past the primary's end, would never be cleared, and
 * the seeding would never end.
 */
static bool seeded_volume_matches(const struct dmrepl_proto_volume *pri,
				  const struct dmrepl_proto_volume *sec, __u32 sec_flags,
				  const char **text)
{
	if (!(sec_flags & DMREPL_HELLO_SEEDED))
		return true;
	if (sec->sectors != pri->sectors) {
		*text = "a seeded replica volume is larger than the primary's: the regions "
			"past the primary's end would never be verified";
		return false;
	}
	if (sec->region_sectors != pri->region_sectors) {
		*text = "a seeded replica's region size differs from the primary's: verify "
			"passes clear its regions only in the primary's size";
		return false;
	}
	return true;
}

static bool volumes_match(const struct dmrepl_proto_hello *pri,
			  const struct dmrepl_proto_hello *sec, const char **text)
{
	__u32 i;

	if (pri->nvolumes != sec->nvolumes) {
		*text = "the two sides have different numbers of volumes";
		return false;
	}
	for (i = 0; i < pri->nvolumes; i++) {
		if (pri->volumes[i].index != sec->volumes[i].index) {
			*text = "the two sides have different volume indexes";
			return false;
		}
		if (sec->volumes[i].sectors < pri->volumes[i].sectors) {
			*text = "a replica volume is smaller than the primary's";
			return false;
		}
		if (!seeded_volume_matches(&pri->volumes[i], &sec->volumes[i], sec->flags, text))
			return false;
		/* Its own regions are resent whole, and cleared whole. */
		if ((sec->flags & DMREPL_HELLO_DIRTY) &&
		    sec->volumes[i].region_sectors != pri->volumes[i].region_sectors) {
			*text = "the replica has regions of its own to be resent, and the two "
				"sides' region sizes differ";
			return false;
		}
	}
	return true;
}

/* Is gen (not 0) h's current generation or one of its history? */
static bool gen_known(const struct dmrepl_proto_hello *h, __u64 gen)
{
	unsigned int i;

	if (gen && h->gen_current == gen)
		return true;
	for (i = 0; gen && i < DMREPL_PROTO_GEN_HISTORY; i++)
		if (h->gen_history[i] == gen)
			return true;
	return false;
}

/* The generations of a primary and its replica: NULL when they may go on. */
static const char *gens_problem(const struct dmrepl_proto_hello *pri,
				const struct dmrepl_proto_hello *sec)
{
	if (!sec->gen_current)
		return NULL;	/* a fresh or rejoining replica takes the primary's */
	if (gen_known(pri, sec->gen_current))
		return (sec->flags & DMREPL_HELLO_DIRTY) &&
		       !(sec->flags & DMREPL_HELLO_INCONSISTENT) ?
		       "the replica holds writes of its own the primary lacks (dirty regions): "
		       "`repltool rejoin --discard-my-data` on it discards them" : NULL;
	if (gen_known(sec, pri->gen_current))
		return "split brain: the replica's generation is newer than the primary's";
	return "split brain: the generations of the two sides share no history";
}

bool dmrepl_proto_gens_agree(unsigned int reason)
{
	return reason == DMREPL_REFUSE_VOLUMES || reason == DMREPL_REFUSE_STREAM;
}

const struct dmrepl_proto_volume *dmrepl_proto_hello_volume(const struct dmrepl_proto_hello *h,
							    __u32 index)
{
	__u32 i;

	for (i = 0; i < h->nvolumes && i < DM_REPL_MAX_VOLUMES; i++)
		if (h->volumes[i].index == index)
			return &h->volumes[i];
	return NULL;
}

int dmrepl_proto_check_hello(const struct dmrepl_proto_hello *local,
			     const struct dmrepl_proto_hello *peer,
			     unsigned int *reason, const char **text)
{
	const struct dmrepl_proto_hello *pri = local, *sec = peer;

	if (local->role == DMREPL_PROTO_SECONDARY) {
		pri = peer;
		sec = local;
	}
	*reason = DMREPL_REFUSE_GROUP;
	*text = "the peer replicates another group";
	if (strncmp(local->group, peer->group, sizeof(local->group)))
		return -ECONNREFUSED;
	*reason = DMREPL_REFUSE_DIVERGED;
	*text = "split brain: both sides are primary, of different generations";
	if (local->role == DMREPL_PROTO_PRIMARY && peer->role == DMREPL_PROTO_PRIMARY &&
	    local->gen_current != peer->gen_current)
		return -ECONNREFUSED;
	*reason = DMREPL_REFUSE_ROLE;
	*text = "both sides have the same role";
	if (local->role == peer->role)
		return -ECONNREFUSED;
	*reason = DMREPL_REFUSE_DIVERGED;
	*text = gens_problem(pri, sec);
	if (*text)
		return -ECONNREFUSED;
	/* From here on the generations agree (dmrepl_proto_gens_agree). */
	*reason = DMREPL_REFUSE_VOLUMES;
	if (!volumes_match(pri, sec, text))
		return -ECONNREFUSED;
	/* A replica cannot have applied what its primary has not written. */
	*reason = DMREPL_REFUSE_STREAM;
	*text = "the replica has applied past the primary's next sequence";
	if (sec->applied_stream == pri->stream && sec->applied_seq >= pri->next_seq)
		return -ECONNREFUSED;
	*reason = 0;
	*text = NULL;
	return 0;
}

void dmrepl_proto_order_init(struct dmrepl_proto_order *ord, __u64 applied_stream,
			     __u64 applied_seq)
{
	ord->stream = applied_stream;
	ord->last_seq = applied_seq;
	ord->resuming = true;
}

/* Does the STREAM record r name stream among the streams before it? */
static bool link_names(const struct dm_repl_rec *r, __u64 stream)
{
	const struct dm_repl_stream_link *l = dmrepl_rec_payload(r);
	unsigned int i;

	for (i = 0; i < DM_REPL_STREAM_HISTORY; i++)
		if (le64toh(l->prev[i]) == stream)
			return true;
	return false;
}

/* A batch of another stream than the last: it must open its stream. */
static const char *stream_change_problem(const struct dmrepl_proto_order *ord,
					 const struct dmrepl_proto_batch *b,
					 const struct dm_repl_rec *first)
{
	if (!ord->stream)
		return NULL;	/* a fresh replica takes the first stream */
	if (dmrepl_rec_type(first) != DM_REPL_REC_STREAM)
		return "a batch of a new stream does not start with its STREAM record";
	if (!link_names(first, ord->stream))
		return "the STREAM record does not name the previous stream";
	if (!(dmrepl_rec_flags(first) & DM_REPL_RECF_GAP) && b->first_seq != ord->last_seq + 1)
		return "a STREAM record without GAP does not follow the previous sequence";
	return NULL;
}

int dmrepl_proto_order_check(struct dmrepl_proto_order *ord,
			     const struct dmrepl_proto_batch *b, const void *records,
			     const char **why)
{
	*why = NULL;
	if (b->stream != ord->stream) {
		*why = stream_change_problem(ord, b, records);
	} else if (b->first_seq != ord->last_seq + 1) {
		/* Resent records the replica already holds: it skips them. */
		if (!ord->resuming || b->first_seq > ord->last_seq)
			*why = "a batch does not start at the previous last_seq + 1";
	}
	if (*why)
		return -EILSEQ;
	if (b->stream != ord->stream || b->last_seq > ord->last_seq) {
		ord->resuming = false;
		ord->last_seq = b->last_seq;
	}
	ord->stream = b->stream;
	return 0;
}
