// SPDX-License-Identifier: GPL-2.0
/*
 * The repld wire protocol (userspace/lib/proto.c): every frame round-trips,
 * frames arrive byte by byte, hostile frames are refused with their errno
 * and reason, batch payloads are compressed when it pays, and the rules
 * across frames (HELLO, batch order).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "dmrepl_proto.h"
#include "kselftest_harness.h"

#define STREAM_A	0x0123456789abcdefULL
#define STREAM_B	0x1122334455667788ULL
#define GROUP		"vm42"
#define NREC		3
#define PAYLOAD		4096
#define REC_LEN		(DM_REPL_REC_HDR_SIZE + PAYLOAD)
#define BATCH_BYTES	(NREC * REC_LEN)
#define MAX_BATCH	DMREPL_PROTO_MAX_BATCH_MIN

/* Offsets in a frame: header, then the body's fields. */
#define OFF_VERSION	4
#define OFF_TYPE	5
#define OFF_FLAGS	6
#define OFF_BODY_LEN	8
#define OFF_RESERVED	12
#define OFF_GROUP	16
#define OFF_SITE	48
#define OFF_ROLE	112
#define OFF_STREAM	117
#define OFF_MAX_BATCH	149
#define OFF_WINDOW	153
#define OFF_NVOLUMES	157
#define OFF_VOLUMES	161
#define OFF_FIRST_SEQ	16
#define OFF_LAST_SEQ	24
#define OFF_B_STREAM	32
#define OFF_NRECORDS	40
#define OFF_RAW_LEN	44
#define OFF_CODEC	48
#define OFF_B_RESERVED	49
#define OFF_PAYLOAD	56
#define OFF_ACK_STREAM	16
#define OFF_REASON	16
#define OFF_TEXT	20

static unsigned long long rng = 88172645463325252ULL;

static unsigned char next_random(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned char)rng;
}

/*
 * A batch of real records into buf (8-byte aligned): a STREAM record naming
 * prev when prev is not 0, then WRITE records up to NREC records in all,
 * from first_seq on. Returns its length.
 */
static size_t make_records(unsigned char *buf, __u64 first_seq, __u64 stream, __u64 prev,
			   bool random_data)
{
	static unsigned char data[PAYLOAD];
	struct dm_repl_stream_link link = { .prev = { htole64(prev) } };
	struct dmrepl_rec_fields f = {
		.epoch = 1, .time_ns = 1700000000000000000ULL,
		.group_tag = dmrepl_group_tag(GROUP), .stream = stream,
	};
	size_t len = 0, i, j;
	long n;

	for (i = 0; i < NREC; i++) {
		for (j = 0; j < PAYLOAD; j++)
			data[j] = random_data ? next_random() : (unsigned char)(j / 64);
		f.seq = first_seq + i;
		if (i == 0 && prev) {
			f.type = DM_REPL_REC_STREAM;
			f.flags = DM_REPL_RECF_GAP;
			f.nbytes = 0;
			f.payload = &link;
			f.payload_len = sizeof(link);
		} else {
			f.type = DM_REPL_REC_WRITE;
			f.flags = 0;
			f.sector = 8 * i;
			f.nbytes = PAYLOAD;
			f.payload = data;
			f.payload_len = PAYLOAD;
		}
		n = dmrepl_rec_encode(buf + len, BATCH_BYTES - len, &f);
		if (n < 0)
			abort();
		len += (size_t)n;
	}
	return len;
}

static void make_hello(struct dmrepl_proto_hello *h, unsigned int role)
{
	unsigned int i;

	memset(h, 0, sizeof(*h));
	strcpy(h->group, GROUP);
	strcpy(h->site, role == DMREPL_PROTO_PRIMARY ? "site-a" : "site-b");
	h->role = role;
	if (role == DMREPL_PROTO_PRIMARY) {
		h->flags = DMREPL_HELLO_BEHIND;
		h->stream = STREAM_A;
		h->next_seq = 1000;
	} else {
		h->flags = DMREPL_HELLO_OUTDATED;
		h->applied_stream = STREAM_A;
		h->applied_seq = 900;
	}
	h->max_batch = DM_REPL_APPLY_BATCH_MAX;
	h->window = 8;
	h->nvolumes = 3;
	for (i = 0; i < 3; i++) {
		h->volumes[i].index = 2 * i;
		h->volumes[i].sectors = 1 << 21;
	}
}

/* The valid frames the hostile ones are made from. */
enum base {
	HELLO_PRI, HELLO_SEC, BATCH_RAW, BATCH_ZSTD, ACK, HEARTBEAT, REFUSE, NBASE,
};

static struct dmrepl_obuf base[NBASE];

static void make_bases(void)
{
	static unsigned char recs[BATCH_BYTES] __attribute__((aligned(8)));
	struct dmrepl_proto_ack ack = { STREAM_A, 900, 900 };
	struct dmrepl_proto_hello h;
	const char *why;
	size_t len;
	int i;

	for (i = 0; i < NBASE; i++)
		dmrepl_obuf_free(&base[i]);
	make_hello(&h, DMREPL_PROTO_PRIMARY);
	if (dmrepl_proto_put_hello(&base[HELLO_PRI], &h))
		abort();
	make_hello(&h, DMREPL_PROTO_SECONDARY);
	if (dmrepl_proto_put_hello(&base[HELLO_SEC], &h))
		abort();
	len = make_records(recs, 901, STREAM_A, 0, false);
	if (dmrepl_proto_put_batch(&base[BATCH_RAW], recs, len, 0, NULL, &why) ||
	    dmrepl_proto_put_batch(&base[BATCH_ZSTD], recs, len, 3, NULL, &why) ||
	    dmrepl_proto_put_ack(&base[ACK], &ack) ||
	    dmrepl_proto_put_heartbeat(&base[HEARTBEAT], 123456789) ||
	    dmrepl_proto_put_refuse(&base[REFUSE], DMREPL_REFUSE_SHUTDOWN, "repld stops"))
		abort();
}

/* Decode a whole frame that must be valid; returns its type. */
static unsigned int decode_ok(struct __test_metadata *_metadata, const struct dmrepl_obuf *o,
			      struct dmrepl_frame *f)
{
	long n = dmrepl_frame_decode(o->buf, o->len, DMREPL_PROTO_BATCH_MAX, f);

	EXPECT_EQ((long)o->len, n) TH_LOG("%s (%llu)", f->why, (unsigned long long)f->bad_value);
	return f->type;
}

TEST(hello_round_trips_for_both_roles)
{
	struct dmrepl_proto_hello h;
	struct dmrepl_frame f;
	unsigned int role;

	for (role = DMREPL_PROTO_PRIMARY; role <= DMREPL_PROTO_SECONDARY; role++) {
		struct dmrepl_obuf o;

		dmrepl_obuf_init(&o);
		make_hello(&h, role);
		ASSERT_EQ(0, dmrepl_proto_put_hello(&o, &h));
		ASSERT_EQ(DMREPL_PROTO_HDR_SIZE + DMREPL_PROTO_HELLO_FIXED +
			  3 * DMREPL_PROTO_HELLO_VOLUME, o.len);
		ASSERT_EQ((unsigned int)DMREPL_FRAME_HELLO, decode_ok(_metadata, &o, &f));
		ASSERT_EQ(0, memcmp(&h, &f.hello, sizeof(h)));
		ASSERT_EQ(NULL, f.why);
		dmrepl_obuf_free(&o);
	}
}

TEST(header_is_little_endian_field_by_field)
{
	static const unsigned char want[16] = {
		'D', 'R', 'E', 'P', 2, DMREPL_FRAME_HEARTBEAT, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0,
	};

	make_bases();
	ASSERT_EQ(24U, base[HEARTBEAT].len);
	ASSERT_EQ(0, memcmp(want, base[HEARTBEAT].buf, 16));
	ASSERT_EQ(0x15, base[HEARTBEAT].buf[16]);
	ASSERT_EQ(0xcd, base[HEARTBEAT].buf[17]);
}

TEST(ack_heartbeat_and_refuse_round_trip)
{
	struct dmrepl_frame f;

	make_bases();
	ASSERT_EQ((unsigned int)DMREPL_FRAME_ACK, decode_ok(_metadata, &base[ACK], &f));
	ASSERT_EQ(STREAM_A, f.ack.applied_stream);
	ASSERT_EQ(900U, f.ack.applied_seq);
	ASSERT_EQ(900U, f.ack.acked_last_seq);
	ASSERT_EQ((unsigned int)DMREPL_FRAME_HEARTBEAT, decode_ok(_metadata, &base[HEARTBEAT], &f));
	ASSERT_EQ(123456789U, f.heartbeat.sent_ns);
	ASSERT_EQ((unsigned int)DMREPL_FRAME_REFUSE, decode_ok(_metadata, &base[REFUSE], &f));
	ASSERT_EQ((unsigned int)DMREPL_REFUSE_SHUTDOWN, f.refuse.reason);
	ASSERT_EQ(11U, f.refuse.text_len);
	ASSERT_STREQ("repld stops", f.refuse.text);
	ASSERT_STREQ("shutting down", dmrepl_proto_reason_name(f.refuse.reason));
}

TEST(batch_round_trips_raw_and_compressed)
{
	static unsigned char recs[BATCH_BYTES] __attribute__((aligned(8)));
	static unsigned char out[MAX_BATCH] __attribute__((aligned(8)));
	size_t len = make_records(recs, 7, STREAM_B, STREAM_A, false);
	unsigned int codec, want;
	struct dmrepl_frame f;
	const char *why;

	for (want = DMREPL_CODEC_RAW; want <= DMREPL_CODEC_ZSTD; want++) {
		struct dmrepl_obuf o;

		dmrepl_obuf_init(&o);
		ASSERT_EQ(0, dmrepl_proto_put_batch(&o, recs, len, want ? 3 : 0, &codec, &why));
		ASSERT_EQ(want, codec);
		ASSERT_EQ((unsigned int)DMREPL_FRAME_BATCH, decode_ok(_metadata, &o, &f));
		EXPECT_EQ(7U, f.batch.first_seq);
		EXPECT_EQ(9U, f.batch.last_seq);
		EXPECT_EQ(STREAM_B, f.batch.stream);
		EXPECT_EQ((unsigned int)NREC, f.batch.nrecords);
		EXPECT_EQ(len, f.batch.raw_len);
		EXPECT_EQ(want, f.batch.codec);
		/* The payload is not copied: it points into the buffer. */
		EXPECT_EQ((void *)(o.buf + OFF_PAYLOAD), f.batch.payload);
		ASSERT_EQ(0, dmrepl_proto_batch_unpack(&f.batch, out, sizeof(out), &why))
			TH_LOG("%s", why);
		ASSERT_EQ(0, memcmp(recs, out, len));
		dmrepl_obuf_free(&o);
	}
}

TEST(batch_records_are_judged_in_place_when_raw_and_aligned_else_unpacked)
{
	static unsigned char recs[BATCH_BYTES] __attribute__((aligned(8)));
	static unsigned char out[MAX_BATCH] __attribute__((aligned(8)));
	static unsigned char moved[DMREPL_PROTO_HDR_SIZE + DMREPL_PROTO_BATCH_HDR + BATCH_BYTES + 4]
		__attribute__((aligned(8)));
	size_t len = make_records(recs, 7, STREAM_B, STREAM_A, false);
	struct dmrepl_proto_rx rx = { 0 };
	struct dmrepl_obuf o;
	struct dmrepl_frame f;
	const void *records;
	const char *why;
	unsigned int i;

	dmrepl_obuf_init(&o);
	/* Raw, 8-byte aligned: no copy. */
	ASSERT_EQ(0, dmrepl_proto_put_batch(&o, recs, len, 0, NULL, &why));
	ASSERT_EQ((unsigned int)DMREPL_FRAME_BATCH, decode_ok(_metadata, &o, &f));
	ASSERT_EQ(0, dmrepl_proto_batch_records(&f.batch, &rx, out, sizeof(out), &records, &why))
		TH_LOG("%s", why);
	ASSERT_EQ(f.batch.payload, records);
	ASSERT_EQ(NULL, rx.zstd);
	/* Raw at an odd place: copied to out, then judged. */
	memcpy(moved + 4, o.buf, o.len);
	ASSERT_EQ((long)o.len, dmrepl_frame_decode(moved + 4, o.len, DMREPL_PROTO_BATCH_MAX, &f));
	ASSERT_EQ(0, dmrepl_proto_batch_records(&f.batch, &rx, out, sizeof(out), &records, &why));
	ASSERT_EQ((const void *)out, records);
	ASSERT_EQ(0, memcmp(recs, out, len));
	/* In place, a record is judged as unpacked: a byte changed is a bad crc. */
	o.buf[OFF_PAYLOAD + DM_REPL_REC_HDR_SIZE + 100] ^= 1;
	ASSERT_EQ((unsigned int)DMREPL_FRAME_BATCH, decode_ok(_metadata, &o, &f));
	ASSERT_EQ(-EBADMSG, dmrepl_proto_batch_records(&f.batch, &rx, out, sizeof(out), &records,
						       &why));
	ASSERT_STREQ("checksum mismatch", why);
	ASSERT_EQ(-EBADMSG, dmrepl_proto_batch_unpack(&f.batch, out, sizeof(out), &why));
	ASSERT_STREQ("checksum mismatch", why);
	dmrepl_obuf_consume(&o, o.len);
	/* zstd, twice with the context rx keeps. */
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(0, dmrepl_proto_put_batch(&o, recs, len, 3, NULL, &why));
		ASSERT_EQ((unsigned int)DMREPL_FRAME_BATCH, decode_ok(_metadata, &o, &f));
		ASSERT_EQ((unsigned int)DMREPL_CODEC_ZSTD, f.batch.codec);
		memset(out, 0, len);
		ASSERT_EQ(0, dmrepl_proto_batch_records(&f.batch, &rx, out, sizeof(out), &records,
							&why)) TH_LOG("%s", why);
		ASSERT_EQ((const void *)out, records);
		ASSERT_EQ(0, memcmp(recs, out, len));
		ASSERT_NE(NULL, rx.zstd);
		dmrepl_obuf_consume(&o, o.len);
	}
	/* raw_len over out_size: refused before anything is written. */
	ASSERT_EQ(0, dmrepl_proto_put_batch(&o, recs, len, 0, NULL, &why));
	ASSERT_EQ((unsigned int)DMREPL_FRAME_BATCH, decode_ok(_metadata, &o, &f));
	ASSERT_EQ(-EMSGSIZE, dmrepl_proto_batch_records(&f.batch, &rx, out, len - 8, &records,
							&why));
	dmrepl_proto_rx_free(&rx);
	ASSERT_EQ(NULL, rx.zstd);
	dmrepl_obuf_free(&o);
}

TEST(compressible_batches_are_compressed_random_ones_sent_raw)
{
	static unsigned char recs[BATCH_BYTES] __attribute__((aligned(8)));
	struct dmrepl_obuf o;
	unsigned int codec;
	const char *why;
	size_t len;

	dmrepl_obuf_init(&o);
	len = make_records(recs, 1, STREAM_A, 0, false);
	ASSERT_EQ(0, dmrepl_proto_put_batch(&o, recs, len, 1, &codec, &why));
	ASSERT_EQ((unsigned int)DMREPL_CODEC_ZSTD, codec);
	ASSERT_LT(o.len, len / 4);
	dmrepl_obuf_consume(&o, o.len);
	ASSERT_EQ(0U, o.len);

	len = make_records(recs, 1, STREAM_A, 0, true);
	ASSERT_EQ(0, dmrepl_proto_put_batch(&o, recs, len, 19, &codec, &why));
	ASSERT_EQ((unsigned int)DMREPL_CODEC_RAW, codec);
	ASSERT_EQ(DMREPL_PROTO_HDR_SIZE + DMREPL_PROTO_BATCH_HDR + len, o.len);
	dmrepl_obuf_free(&o);
}

#define BIG_NREC	16
#define BIG_PAYLOAD	65536
#define BIG_BYTES	(BIG_NREC * (DM_REPL_REC_HDR_SIZE + BIG_PAYLOAD))

enum big_kind { BIG_RANDOM, BIG_TEXT, BIG_REPEATED };

/*
 * A batch of 16 writes of 64 KiB: random payloads, compressible ones, or
 * one random payload 16 times, turned (only long matches compress it).
 */
static size_t make_big(unsigned char *buf, __u64 first_seq, enum big_kind kind)
{
	static unsigned char data[BIG_PAYLOAD], data0[BIG_PAYLOAD];
	struct dmrepl_rec_fields f = {
		.type = DM_REPL_REC_WRITE, .epoch = 1, .nbytes = BIG_PAYLOAD,
		.group_tag = dmrepl_group_tag(GROUP), .stream = STREAM_A,
		.payload = data, .payload_len = BIG_PAYLOAD,
	};
	size_t len = 0, i, j;

	for (i = 0; i < BIG_NREC; i++) {
		for (j = 0; j < BIG_PAYLOAD && (kind != BIG_REPEATED || !i); j++)
			data[j] = kind == BIG_TEXT ? "the quick brown fox "[(j * 7 / 5) % 20] :
						     next_random();
		/*
		 * Repeated, each a turn of the first by 592 bytes more: the
		 * sample's slices (512 bytes every 8 KiB) then never meet.
		 */
		if (kind == BIG_REPEATED && i)
			for (j = 0; j < BIG_PAYLOAD; j++)
				data[j] = data0[(j + 592 * i) % BIG_PAYLOAD];
		else if (kind == BIG_REPEATED)
			memcpy(data0, data, BIG_PAYLOAD);
		f.seq = first_seq + i;
		f.sector = 128 * i;
		len += (size_t)dmrepl_rec_encode(buf + len, BIG_BYTES - len, &f);
	}
	return len;
}

TEST(after_a_batch_that_did_not_pay_a_sample_decides)
{
	static unsigned char recs[BIG_BYTES] __attribute__((aligned(8)));
	__u64 seq = 1;
	unsigned int codec, i;
	struct dmrepl_obuf o;
	const char *why;
	size_t len;

	dmrepl_obuf_init(&o);
	/* Matches 64 KiB apart pay, seen whole. */
	len = make_big(recs, seq, BIG_REPEATED);
	ASSERT_EQ(0, dmrepl_proto_put_batch(&o, recs, len, 1, &codec, &why));
	ASSERT_EQ((unsigned int)DMREPL_CODEC_ZSTD, codec);
	ASSERT_EQ(0U, o.zstd_misses);
	dmrepl_obuf_consume(&o, o.len);
	seq += BIG_NREC;
	/* Random data does not pay; compressible data after it is still compressed. */
	len = make_big(recs, seq, BIG_RANDOM);
	ASSERT_EQ(0, dmrepl_proto_put_batch(&o, recs, len, 1, &codec, &why));
	ASSERT_EQ((unsigned int)DMREPL_CODEC_RAW, codec);
	ASSERT_EQ(1U, o.zstd_misses);
	dmrepl_obuf_consume(&o, o.len);
	seq += BIG_NREC;
	len = make_big(recs, seq, BIG_TEXT);
	ASSERT_EQ(0, dmrepl_proto_put_batch(&o, recs, len, 1, &codec, &why));
	ASSERT_EQ((unsigned int)DMREPL_CODEC_ZSTD, codec);
	ASSERT_EQ(0U, o.zstd_misses);
	dmrepl_obuf_consume(&o, o.len);
	seq += BIG_NREC;
	/*
	 * After a miss, the sample of the repeated payload does not pay: it
	 * goes raw, until a batch is compressed whole again (every 32nd).
	 */
	len = make_big(recs, seq, BIG_RANDOM);
	ASSERT_EQ(0, dmrepl_proto_put_batch(&o, recs, len, 1, &codec, &why));
	dmrepl_obuf_consume(&o, o.len);
	seq += BIG_NREC;
	for (i = 1; i < 32; i++) {
		len = make_big(recs, seq, BIG_REPEATED);
		ASSERT_EQ(0, dmrepl_proto_put_batch(&o, recs, len, 1, &codec, &why));
		ASSERT_EQ((unsigned int)DMREPL_CODEC_RAW, codec) TH_LOG("batch %u after the miss", i);
		dmrepl_obuf_consume(&o, o.len);
		seq += BIG_NREC;
	}
	len = make_big(recs, seq, BIG_REPEATED);
	ASSERT_EQ(0, dmrepl_proto_put_batch(&o, recs, len, 1, &codec, &why));
	ASSERT_EQ((unsigned int)DMREPL_CODEC_ZSTD, codec);
	ASSERT_EQ(0U, o.zstd_misses);
	dmrepl_obuf_free(&o);
}

TEST(frames_fed_byte_by_byte_need_more_until_complete)
{
	struct dmrepl_frame f;
	size_t n;
	int b;

	make_bases();
	for (b = 0; b < NBASE; b++) {
		for (n = 0; n < base[b].len; n++)
			ASSERT_EQ(0, dmrepl_frame_decode(base[b].buf, n, DMREPL_PROTO_BATCH_MAX, &f))
				TH_LOG("frame %d, %zu bytes", b, n);
		ASSERT_EQ((long)base[b].len,
			  dmrepl_frame_decode(base[b].buf, n, DMREPL_PROTO_BATCH_MAX, &f));
	}
}

TEST(frames_back_to_back_are_decoded_one_at_a_time)
{
	struct dmrepl_proto_ack ack = { STREAM_A, 5, 5 };
	struct dmrepl_frame f;
	struct dmrepl_obuf o;
	long n;

	dmrepl_obuf_init(&o);
	ASSERT_EQ(0, dmrepl_proto_put_ack(&o, &ack));
	ASSERT_EQ(0, dmrepl_proto_put_heartbeat(&o, 9));
	n = dmrepl_frame_decode(o.buf, o.len, 64, &f);
	ASSERT_EQ(DMREPL_PROTO_HDR_SIZE + DMREPL_PROTO_ACK_SIZE, n);
	ASSERT_EQ((unsigned int)DMREPL_FRAME_ACK, f.type);
	dmrepl_obuf_consume(&o, (size_t)n);
	ASSERT_EQ(DMREPL_PROTO_HDR_SIZE + DMREPL_PROTO_HEARTBEAT_SIZE, dmrepl_obuf_pending(&o));
	ASSERT_EQ(DMREPL_PROTO_HDR_SIZE + DMREPL_PROTO_HEARTBEAT_SIZE,
		  dmrepl_frame_decode(dmrepl_obuf_data(&o), dmrepl_obuf_pending(&o), 64, &f));
	ASSERT_EQ(9U, f.heartbeat.sent_ns);
	/* Sent to the end: the space is taken back at once. */
	dmrepl_obuf_consume(&o, dmrepl_obuf_pending(&o));
	ASSERT_EQ(0U, o.len);
	ASSERT_EQ(0U, o.head);
	dmrepl_obuf_free(&o);
}

/* A frame queued after a partial send lands after what is left: one move. */
TEST(an_output_buffer_keeps_its_order_across_partial_sends)
{
	struct dmrepl_proto_ack ack = { STREAM_A, 5, 5 };
	struct dmrepl_frame f;
	struct dmrepl_obuf o;
	size_t i;

	dmrepl_obuf_init(&o);
	for (i = 0; i < 200; i++)
		ASSERT_EQ(0, dmrepl_proto_put_heartbeat(&o, i));
	/* All but the last heartbeat sent; an ack queued behind it. */
	dmrepl_obuf_consume(&o, 199 * (DMREPL_PROTO_HDR_SIZE + DMREPL_PROTO_HEARTBEAT_SIZE));
	ASSERT_EQ(0, dmrepl_proto_put_ack(&o, &ack));
	ASSERT_LT(0, dmrepl_frame_decode(dmrepl_obuf_data(&o), dmrepl_obuf_pending(&o), 64, &f));
	ASSERT_EQ(199U, f.heartbeat.sent_ns);
	dmrepl_obuf_consume(&o, DMREPL_PROTO_HDR_SIZE + DMREPL_PROTO_HEARTBEAT_SIZE);
	ASSERT_LT(0, dmrepl_frame_decode(dmrepl_obuf_data(&o), dmrepl_obuf_pending(&o), 64, &f));
	ASSERT_EQ((unsigned int)DMREPL_FRAME_ACK, f.type);
	ASSERT_EQ(5U, f.ack.applied_seq);
	dmrepl_obuf_free(&o);
}

/* ------------------------------------------------------------------ */
/* Hostile frames                                                      */
/* ------------------------------------------------------------------ */

static void put_le(unsigned char *p, unsigned int width, __u64 v)
{
	unsigned int i;

	for (i = 0; i < width; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* Reseal the record at off of a raw BATCH frame after changing it. */
static struct dm_repl_rec *payload_rec(unsigned char *frame, size_t off)
{
	return (struct dm_repl_rec *)(frame + OFF_PAYLOAD + off);
}

static void second_record_other_stream(struct dmrepl_obuf *o)
{
	struct dm_repl_rec *r = payload_rec(o->buf, REC_LEN);

	r->stream = htole64(STREAM_B);
	dmrepl_rec_seal(r);
}

static void second_record_skips_a_sequence(struct dmrepl_obuf *o)
{
	struct dm_repl_rec *r = payload_rec(o->buf, REC_LEN);

	r->seq = htole64(dmrepl_rec_seq(r) + 1);
	dmrepl_rec_seal(r);
}

static void second_record_bad_crc(struct dmrepl_obuf *o)
{
	o->buf[OFF_PAYLOAD + REC_LEN + DM_REPL_REC_HDR_SIZE] ^= 1;
}

static void last_record_truncated(struct dmrepl_obuf *o)
{
	/* Drop the last 8 bytes of the records; the frame stays consistent. */
	o->len -= 8;
	put_le(o->buf + OFF_BODY_LEN, 4, o->len - DMREPL_PROTO_HDR_SIZE);
	put_le(o->buf + OFF_RAW_LEN, 4, BATCH_BYTES - 8);
}

static void zstd_garbage(struct dmrepl_obuf *o)
{
	memset(o->buf + OFF_PAYLOAD, 0xa5, o->len - OFF_PAYLOAD);
}

static void zstd_trailing_bytes(struct dmrepl_obuf *o)
{
	o->buf[o->len++] = 0;
	put_le(o->buf + OFF_BODY_LEN, 4, o->len - DMREPL_PROTO_HDR_SIZE);
}

/* A small zstd frame of 8 MiB of zeros in place of the payload. */
static void zstd_bomb(struct dmrepl_obuf *o)
{
	size_t big = 8U << 20, n;
	void *zeros = calloc(1, big);

	if (!zeros)
		abort();
	n = ZSTD_compress(o->buf + OFF_PAYLOAD, o->cap - OFF_PAYLOAD, zeros, big, 19);
	free(zeros);
	if (ZSTD_isError(n) || n >= BATCH_BYTES)
		abort();
	o->len = OFF_PAYLOAD + n;
	put_le(o->buf + OFF_BODY_LEN, 4, o->len - DMREPL_PROTO_HDR_SIZE);
}

/* The same records under a frame that moves first_seq and last_seq by 1. */
static void batch_seqs_shifted(struct dmrepl_obuf *o)
{
	put_le(o->buf + OFF_FIRST_SEQ, 8, 902);
	put_le(o->buf + OFF_LAST_SEQ, 8, 904);
}

static void hello_nvolumes_65(struct dmrepl_obuf *o)
{
	put_le(o->buf + OFF_NVOLUMES, 4, 65);
	put_le(o->buf + OFF_BODY_LEN, 4, DMREPL_PROTO_HELLO_FIXED + 65 * 12);
	memset(o->buf + o->len, 0, 62 * 12);
	o->len += 62 * 12;
}

static void hello_group_garbage_after_nul(struct dmrepl_obuf *o)
{
	o->buf[OFF_GROUP + 10] = 'x';
}

static void refuse_text_with_newline(struct dmrepl_obuf *o)
{
	o->buf[OFF_TEXT + 5] = '\n';
}

struct hostile {
	const char *name;
	enum base from;
	unsigned int off, width;	/* width 0: no field is set */
	__u64 value;
	void (*patch)(struct dmrepl_obuf *o);
	size_t max_body;		/* 0: the BATCH limit */
	int decode_err;			/* 0: decodes; then unpack fails */
	int unpack_err;
	const char *why;
};

static const struct hostile hostile[] = {
	{ "bad magic", ACK, 0, 4, 0x50455245, NULL, 0, -EBADMSG, 0,
	  "frame magic is not DREP" },
	{ "version 1 (before ZERO records)", ACK, OFF_VERSION, 1, 1, NULL, 0, -EPROTO, 0,
	  "frame version is not 2" },
	{ "version 3", ACK, OFF_VERSION, 1, 3, NULL, 0, -EPROTO, 0,
	  "frame version is not 2" },
	{ "unknown type", ACK, OFF_TYPE, 1, 6, NULL, 0, -EBADMSG, 0,
	  "frame type is not 1..5" },
	{ "flags", HEARTBEAT, OFF_FLAGS, 2, 0x100, NULL, 0, -EBADMSG, 0,
	  "frame flags are not 0" },
	{ "reserved", HEARTBEAT, OFF_RESERVED, 4, 1, NULL, 0, -EBADMSG, 0,
	  "frame reserved field is not 0" },
	{ "ACK longer than 24", ACK, OFF_BODY_LEN, 4, 25, NULL, 0, -EMSGSIZE, 0,
	  "frame body length is over its type's limit" },
	{ "HELLO over 4 KiB", HELLO_PRI, OFF_BODY_LEN, 4, 4097, NULL, 0, -EMSGSIZE, 0,
	  "frame body length is over its type's limit" },
	{ "BATCH over the receiver's limit", BATCH_RAW, 0, 0, 0, NULL, 4096, -EMSGSIZE, 0,
	  "frame body length is over the receiver's limit" },
	{ "HEARTBEAT shorter than 8", HEARTBEAT, OFF_BODY_LEN, 4, 4, NULL, 0, -EBADMSG, 0,
	  "frame body length is under its type's size" },
	{ "HELLO body cut short of its volumes", HELLO_PRI, OFF_BODY_LEN, 4,
	  DMREPL_PROTO_HELLO_FIXED + 24, NULL, 0, -EBADMSG, 0,
	  "HELLO body length is not 145 + 12 * nvolumes" },
	{ "group starting with a dot", HELLO_PRI, OFF_GROUP, 1, '.', NULL, 0, -EBADMSG, 0,
	  "HELLO group is not 1-31 of [A-Za-z0-9_.+-], no leading dot, NUL-padded" },
	{ "group with bytes after its NUL", HELLO_PRI, 0, 0, 0, hello_group_garbage_after_nul,
	  0, -EBADMSG, 0,
	  "HELLO group is not 1-31 of [A-Za-z0-9_.+-], no leading dot, NUL-padded" },
	{ "site with a control character", HELLO_SEC, OFF_SITE + 1, 1, 7, NULL, 0, -EBADMSG, 0,
	  "HELLO site is not 1-63 printable characters, NUL-padded" },
	{ "role 3", HELLO_PRI, OFF_ROLE, 1, 3, NULL, 0, -EBADMSG, 0,
	  "HELLO role is neither 1 (primary) nor 2 (secondary)" },
	{ "secondary with a stream", HELLO_SEC, OFF_STREAM, 8, 5, NULL, 0, -EBADMSG, 0,
	  "HELLO stream or next_seq is not 0 from a secondary" },
	{ "max_batch under one largest record", HELLO_PRI, OFF_MAX_BATCH, 4, 4096, NULL, 0,
	  -EBADMSG, 0, "HELLO max_batch is outside 1 MiB + 80 .. 32 MiB" },
	{ "window 0", HELLO_PRI, OFF_WINDOW, 4, 0, NULL, 0, -EBADMSG, 0,
	  "HELLO window is outside 1..256" },
	{ "nvolumes 65", HELLO_PRI, 0, 0, 0, hello_nvolumes_65, 0, -EBADMSG, 0,
	  "HELLO nvolumes is over 64" },
	{ "volume indexes not increasing", HELLO_PRI, OFF_VOLUMES + 12, 4, 0, NULL, 0,
	  -EBADMSG, 0, "HELLO volume indexes are not strictly increasing" },
	{ "volume index 64", HELLO_PRI, OFF_VOLUMES + 24, 4, 64, NULL, 0, -EBADMSG, 0,
	  "HELLO volume index is over 63" },
	{ "first_seq above last_seq", BATCH_RAW, OFF_FIRST_SEQ, 8, 905, NULL, 0, -EBADMSG, 0,
	  "BATCH first_seq is above last_seq" },
	{ "nrecords against the sequence range", BATCH_RAW, OFF_NRECORDS, 4, 2, NULL, 0,
	  -EBADMSG, 0, "BATCH nrecords is not last_seq - first_seq + 1" },
	{ "stream 0", BATCH_RAW, OFF_B_STREAM, 8, 0, NULL, 0, -EBADMSG, 0,
	  "BATCH stream is 0" },
	{ "codec 2", BATCH_RAW, OFF_CODEC, 1, 2, NULL, 0, -EBADMSG, 0,
	  "BATCH codec is neither 0 (raw) nor 1 (zstd)" },
	{ "batch reserved", BATCH_RAW, OFF_B_RESERVED + 6, 1, 1, NULL, 0, -EBADMSG, 0,
	  "BATCH reserved bytes are not 0" },
	{ "raw_len over 32 MiB", BATCH_ZSTD, OFF_RAW_LEN, 4, (32U << 20) + 8, NULL, 0,
	  -EMSGSIZE, 0, "BATCH raw_len is over 32 MiB" },
	{ "raw payload shorter than raw_len", BATCH_RAW, OFF_RAW_LEN, 4, BATCH_BYTES + 8, NULL,
	  0, -EBADMSG, 0, "BATCH raw payload length is not raw_len" },
	{ "raw_len over the receiver's max_batch", BATCH_ZSTD, OFF_RAW_LEN, 4,
	  MAX_BATCH + 8, NULL, 0, 0, -EMSGSIZE,
	  "BATCH raw_len is over the receiver's max_batch" },
	{ "garbage zstd", BATCH_ZSTD, 0, 0, 0, zstd_garbage, 0, 0, -EBADMSG,
	  "BATCH payload is not exactly one zstd frame" },
	{ "bytes after the zstd frame", BATCH_ZSTD, 0, 0, 0, zstd_trailing_bytes, 0, 0,
	  -EBADMSG, "BATCH payload is not exactly one zstd frame" },
	{ "zstd bomb", BATCH_ZSTD, 0, 0, 0, zstd_bomb, 0, 0, -EBADMSG,
	  "BATCH zstd frame does not declare raw_len bytes" },
	{ "first and last sequences not the records'", BATCH_ZSTD, 0, 0, 0,
	  batch_seqs_shifted, 0, 0, -EBADMSG,
	  "BATCH first_seq differs from the first record's" },
	{ "stream not the records'", BATCH_RAW, OFF_B_STREAM, 8, STREAM_B, NULL, 0, 0,
	  -EBADMSG, "BATCH stream differs from the records'" },
	{ "records of two streams", BATCH_RAW, 0, 0, 0, second_record_other_stream, 0, 0,
	  -EBADMSG, "records of two streams in one batch" },
	{ "a sequence skipped", BATCH_RAW, 0, 0, 0, second_record_skips_a_sequence, 0, 0,
	  -EBADMSG, "record sequences are not contiguous" },
	{ "a record with a bad crc", BATCH_RAW, 0, 0, 0, second_record_bad_crc, 0, 0,
	  -EBADMSG, "checksum mismatch" },
	{ "the last record cut short", BATCH_RAW, 0, 0, 0, last_record_truncated, 0, 0,
	  -EBADMSG, "len runs past the available bytes" },
	{ "REFUSE reason unknown", REFUSE, OFF_REASON, 4, 99, NULL, 0, -EBADMSG, 0,
	  "REFUSE reason is unknown" },
	{ "REFUSE text not printable", REFUSE, 0, 0, 0, refuse_text_with_newline, 0,
	  -EBADMSG, 0, "REFUSE text is not printable ASCII" },
	{ "REFUSE text over 256 bytes", REFUSE, OFF_BODY_LEN, 4, 261, NULL, 0, -EMSGSIZE, 0,
	  "frame body length is over its type's limit" },
	{ "ACK of a sequence without a stream", ACK, OFF_ACK_STREAM, 8, 0, NULL, 0, -EBADMSG, 0,
	  "ACK applied_seq is not 0 with applied_stream 0" },
};

/* A copy of a base frame, with room to grow. */
static void copy_base(struct dmrepl_obuf *o, enum base from)
{
	dmrepl_obuf_init(o);
	o->cap = base[from].len + 4096;
	o->buf = calloc(1, o->cap);
	if (!o->buf)
		abort();
	memcpy(o->buf, base[from].buf, base[from].len);
	o->len = base[from].len;
}

TEST(hostile_frames_are_refused_with_their_errno_and_reason)
{
	static unsigned char out[MAX_BATCH] __attribute__((aligned(8)));
	size_t i;

	make_bases();
	ASSERT_GE(sizeof(hostile) / sizeof(hostile[0]), (size_t)20);
	for (i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		const struct hostile *h = &hostile[i];
		struct dmrepl_frame f;
		struct dmrepl_obuf o;
		const char *why = NULL;
		long n;

		copy_base(&o, h->from);
		if (h->width)
			put_le(o.buf + h->off, h->width, h->value);
		if (h->patch)
			h->patch(&o);
		n = dmrepl_frame_decode(o.buf, o.len,
					h->max_body ? h->max_body : DMREPL_PROTO_BATCH_MAX, &f);
		if (h->decode_err) {
			EXPECT_EQ(h->decode_err, n) TH_LOG("%s", h->name);
			EXPECT_STREQ(h->why, f.why ? f.why : "(none)") TH_LOG("%s", h->name);
		} else {
			EXPECT_EQ((long)o.len, n) TH_LOG("%s: %s", h->name, f.why);
			if (n > 0) {
				EXPECT_EQ(h->unpack_err,
					  dmrepl_proto_batch_unpack(&f.batch, out, sizeof(out), &why))
					TH_LOG("%s", h->name);
				EXPECT_STREQ(h->why, why ? why : "(none)") TH_LOG("%s", h->name);
			}
		}
		dmrepl_obuf_free(&o);
	}
}

TEST(decode_names_the_offending_value)
{
	struct dmrepl_frame f;
	struct dmrepl_obuf o;

	make_bases();
	copy_base(&o, HELLO_PRI);
	put_le(o.buf + OFF_WINDOW, 4, 257);
	ASSERT_EQ(-EBADMSG, dmrepl_frame_decode(o.buf, o.len, 4096, &f));
	ASSERT_EQ(257U, f.bad_value);
	dmrepl_obuf_free(&o);
}

TEST(encoders_refuse_what_decoders_would)
{
	static unsigned char recs[BATCH_BYTES] __attribute__((aligned(8)));
	struct dmrepl_proto_hello h;
	struct dmrepl_obuf o;
	const char *why;
	size_t len;

	dmrepl_obuf_init(&o);
	make_hello(&h, DMREPL_PROTO_PRIMARY);
	h.volumes[1].index = 0;
	ASSERT_EQ(-EINVAL, dmrepl_proto_put_hello(&o, &h));
	ASSERT_EQ(-EINVAL, dmrepl_proto_put_refuse(&o, DMREPL_REFUSE_GROUP, "tab\there"));
	ASSERT_EQ(-EINVAL, dmrepl_proto_put_refuse(&o, 0, "no reason"));
	len = make_records(recs, 1, STREAM_A, 0, false);
	ASSERT_EQ(-EINVAL, dmrepl_proto_put_batch(&o, recs, len - 8, 0, NULL, &why));
	ASSERT_STREQ("len runs past the available bytes", why);
	ASSERT_EQ(-EINVAL, dmrepl_proto_put_batch(&o, recs, 0, 0, NULL, &why));
	ASSERT_EQ(0U, o.len);
	dmrepl_obuf_free(&o);
}

/* ------------------------------------------------------------------ */
/* Rules across frames                                                 */
/* ------------------------------------------------------------------ */

TEST(hello_check_names_each_mismatch)
{
	struct dmrepl_proto_hello pri, sec;
	unsigned int reason;
	const char *text;

	make_hello(&pri, DMREPL_PROTO_PRIMARY);
	make_hello(&sec, DMREPL_PROTO_SECONDARY);
	ASSERT_EQ(0, dmrepl_proto_check_hello(&pri, &sec, &reason, &text));
	ASSERT_EQ(0, dmrepl_proto_check_hello(&sec, &pri, &reason, &text));

	strcpy(sec.group, "other");
	ASSERT_EQ(-ECONNREFUSED, dmrepl_proto_check_hello(&pri, &sec, &reason, &text));
	ASSERT_EQ((unsigned int)DMREPL_REFUSE_GROUP, reason);
	make_hello(&sec, DMREPL_PROTO_SECONDARY);

	ASSERT_EQ(-ECONNREFUSED, dmrepl_proto_check_hello(&pri, &pri, &reason, &text));
	ASSERT_EQ((unsigned int)DMREPL_REFUSE_ROLE, reason);

	sec.volumes[2].sectors--;
	ASSERT_EQ(-ECONNREFUSED, dmrepl_proto_check_hello(&sec, &pri, &reason, &text));
	ASSERT_EQ((unsigned int)DMREPL_REFUSE_VOLUMES, reason);
	ASSERT_STREQ("a replica volume is smaller than the primary's", text);
	sec.volumes[2].sectors += 2;
	ASSERT_EQ(0, dmrepl_proto_check_hello(&sec, &pri, &reason, &text));
	sec.nvolumes = 2;
	ASSERT_EQ(-ECONNREFUSED, dmrepl_proto_check_hello(&sec, &pri, &reason, &text));
	ASSERT_EQ((unsigned int)DMREPL_REFUSE_VOLUMES, reason);
	make_hello(&sec, DMREPL_PROTO_SECONDARY);

	sec.applied_seq = pri.next_seq;
	ASSERT_EQ(-ECONNREFUSED, dmrepl_proto_check_hello(&pri, &sec, &reason, &text));
	ASSERT_EQ((unsigned int)DMREPL_REFUSE_STREAM, reason);
	/* Another stream is the kernel's to place (its STREAM record). */
	sec.applied_stream = STREAM_B;
	ASSERT_EQ(0, dmrepl_proto_check_hello(&pri, &sec, &reason, &text));
}

/* Decode and unpack a batch of records made by make_records(). */
static void batch_of(struct dmrepl_proto_batch *b, unsigned char *out, __u64 first_seq,
		     __u64 stream, __u64 prev)
{
	static unsigned char recs[BATCH_BYTES] __attribute__((aligned(8)));
	static struct dmrepl_obuf o;
	struct dmrepl_frame f;
	const char *why;
	size_t len = make_records(recs, first_seq, stream, prev, false);

	o.len = 0;
	if (dmrepl_proto_put_batch(&o, recs, len, 0, NULL, &why) ||
	    dmrepl_frame_decode(o.buf, o.len, DMREPL_PROTO_BATCH_MAX, &f) != (long)o.len ||
	    dmrepl_proto_batch_unpack(&f.batch, out, BATCH_BYTES, &why))
		abort();
	*b = f.batch;
}

TEST(batches_follow_in_order_and_resends_are_taken_only_when_resuming)
{
	static unsigned char out[BATCH_BYTES] __attribute__((aligned(8)));
	struct dmrepl_proto_order ord;
	struct dmrepl_proto_batch b;
	const char *why;

	dmrepl_proto_order_init(&ord, STREAM_A, 900);
	/* Resuming: a resend of records already applied is skipped by the kernel. */
	batch_of(&b, out, 895, STREAM_A, 0);
	ASSERT_EQ(0, dmrepl_proto_order_check(&ord, &b, out, &why));
	batch_of(&b, out, 898, STREAM_A, 0);
	ASSERT_EQ(0, dmrepl_proto_order_check(&ord, &b, out, &why));
	ASSERT_EQ(900U, ord.last_seq);
	/* A hole is never taken. */
	batch_of(&b, out, 902, STREAM_A, 0);
	ASSERT_EQ(-EILSEQ, dmrepl_proto_order_check(&ord, &b, out, &why));
	ASSERT_STREQ("a batch does not start at the previous last_seq + 1", why);
	batch_of(&b, out, 901, STREAM_A, 0);
	ASSERT_EQ(0, dmrepl_proto_order_check(&ord, &b, out, &why));
	ASSERT_EQ(903U, ord.last_seq);
	/* Past the applied point, a resend is out of order. */
	batch_of(&b, out, 902, STREAM_A, 0);
	ASSERT_EQ(-EILSEQ, dmrepl_proto_order_check(&ord, &b, out, &why));
	/* A new stream comes in with its STREAM record naming the previous one. */
	batch_of(&b, out, 5000, STREAM_B, 0);
	ASSERT_EQ(-EILSEQ, dmrepl_proto_order_check(&ord, &b, out, &why));
	ASSERT_STREQ("a batch of a new stream does not start with its STREAM record", why);
	batch_of(&b, out, 5000, STREAM_B, 0x77);
	ASSERT_EQ(-EILSEQ, dmrepl_proto_order_check(&ord, &b, out, &why));
	ASSERT_STREQ("the STREAM record does not name the previous stream", why);
	batch_of(&b, out, 5000, STREAM_B, STREAM_A);
	ASSERT_EQ(0, dmrepl_proto_order_check(&ord, &b, out, &why));
	ASSERT_EQ(STREAM_B, ord.stream);
	ASSERT_EQ(5002U, ord.last_seq);
	batch_of(&b, out, 5003, STREAM_B, 0);
	ASSERT_EQ(0, dmrepl_proto_order_check(&ord, &b, out, &why));
}

TEST(a_fresh_replica_takes_the_first_stream)
{
	static unsigned char out[BATCH_BYTES] __attribute__((aligned(8)));
	struct dmrepl_proto_order ord;
	struct dmrepl_proto_batch b;
	const char *why;

	dmrepl_proto_order_init(&ord, 0, 0);
	batch_of(&b, out, 77, STREAM_A, 0);
	ASSERT_EQ(0, dmrepl_proto_order_check(&ord, &b, out, &why));
	ASSERT_EQ(STREAM_A, ord.stream);
	ASSERT_EQ(79U, ord.last_seq);
}

TEST_HARNESS_MAIN
