// SPDX-License-Identifier: GPL-2.0
/*
 * The repld wire protocol (userspace/lib/proto.c): every frame round-trips,
 * frames arrive byte by byte, hostile frames are refused with their errno
 * and reason, batch payloads are compressed when it pays, and the rules
 * across frames (HELLO, the generations, batch order).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "dmrepl_proto.h"
#include "kselftest_harness.h"

#define STREAM_A	0x0123456789abcdefULL
#define STREAM_B	0x1122334455667788ULL
/* Generations: GEN_1 came before GEN_2, GEN_2 before GEN_3; GEN_X is of no lineage. */
#define GEN_1		0x0000000000001111ULL
#define GEN_2		0x0000000000002222ULL
#define GEN_3		0x0000000000003333ULL
#define GEN_X		0x00000000000099aaULL
#define REGION_SECTORS	128U
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
#define OFF_HELLO_FLAGS	113
#define OFF_STREAM	117
#define OFF_NEXT_SEQ	125
#define OFF_APPLIED	133
#define OFF_MAX_BATCH	149
#define OFF_WINDOW	153
#define OFF_GEN_CURRENT	157
#define OFF_GEN_HISTORY	165
#define OFF_NVOLUMES	197
#define OFF_VOLUMES	201	/* 16 each: index, region_sectors, sectors */
#define OFF_V_REGION	4
#define OFF_V_SECTORS	8
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
#define OFF_RS_VOLUME	16
#define OFF_RS_COUNT	20
#define OFF_RS_REGIONS	24

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
	/* A primary promoted twice; its replica follows it. */
	h->gen_current = GEN_3;
	h->gen_history[0] = GEN_2;
	h->gen_history[1] = GEN_1;
	h->nvolumes = 3;
	for (i = 0; i < 3; i++) {
		h->volumes[i].index = 2 * i;
		h->volumes[i].region_sectors = REGION_SECTORS << i;
		h->volumes[i].sectors = 1 << 21;
	}
}

/* A RESEND of count regions of volume 2: 1, 5, 9, ... */
static void make_resend(struct dmrepl_proto_resend *r, __u32 count)
{
	__u32 i;

	memset(r, 0, sizeof(*r));
	r->volume = 2;
	r->count = count;
	for (i = 0; i < count; i++)
		r->regions[i] = 1 + 4 * i;
}

static __u64 get_le(const unsigned char *p, unsigned int width)
{
	__u64 v = 0;

	while (width--)
		v = v << 8 | p[width];
	return v;
}

/* The valid frames the hostile ones are made from. */
enum base {
	HELLO_PRI, HELLO_SEC, BATCH_RAW, BATCH_ZSTD, ACK, HEARTBEAT, REFUSE, RESEND, NBASE,
};

static struct dmrepl_obuf base[NBASE];

static void make_bases(void)
{
	static unsigned char recs[BATCH_BYTES] __attribute__((aligned(8)));
	struct dmrepl_proto_ack ack = { STREAM_A, 900, 900 };
	static struct dmrepl_proto_resend r;
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
	make_resend(&r, 3);
	if (dmrepl_proto_put_resend(&base[RESEND], &r))
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
		'D', 'R', 'E', 'P', 3, DMREPL_FRAME_HEARTBEAT, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0,
	};

	make_bases();
	ASSERT_EQ(24U, base[HEARTBEAT].len);
	ASSERT_EQ(0, memcmp(want, base[HEARTBEAT].buf, 16));
	ASSERT_EQ(0x15, base[HEARTBEAT].buf[16]);
	ASSERT_EQ(0xcd, base[HEARTBEAT].buf[17]);
}

TEST(hello_is_laid_out_field_by_field)
{
	const unsigned char *b;
	unsigned int i;

	make_bases();
	b = base[HELLO_PRI].buf;
	ASSERT_EQ(DMREPL_PROTO_HDR_SIZE + 185U + 3 * 16U, base[HELLO_PRI].len);
	EXPECT_EQ(185U + 3 * 16U, get_le(b + OFF_BODY_LEN, 4));
	EXPECT_EQ(0, strcmp((const char *)b + OFF_GROUP, GROUP));
	EXPECT_EQ(0, strcmp((const char *)b + OFF_SITE, "site-a"));
	EXPECT_EQ((__u64)DMREPL_PROTO_PRIMARY, get_le(b + OFF_ROLE, 1));
	EXPECT_EQ((__u64)DMREPL_HELLO_BEHIND, get_le(b + OFF_HELLO_FLAGS, 4));
	EXPECT_EQ(STREAM_A, get_le(b + OFF_STREAM, 8));
	EXPECT_EQ(1000U, get_le(b + OFF_NEXT_SEQ, 8));
	EXPECT_EQ(0U, get_le(b + OFF_APPLIED, 16));
	EXPECT_EQ((__u64)DM_REPL_APPLY_BATCH_MAX, get_le(b + OFF_MAX_BATCH, 4));
	EXPECT_EQ(8U, get_le(b + OFF_WINDOW, 4));
	EXPECT_EQ(GEN_3, get_le(b + OFF_GEN_CURRENT, 8));
	EXPECT_EQ(GEN_2, get_le(b + OFF_GEN_HISTORY, 8));
	EXPECT_EQ(GEN_1, get_le(b + OFF_GEN_HISTORY + 8, 8));
	EXPECT_EQ(0U, get_le(b + OFF_GEN_HISTORY + 16, 8));
	EXPECT_EQ(0U, get_le(b + OFF_GEN_HISTORY + 24, 8));
	EXPECT_EQ(3U, get_le(b + OFF_NVOLUMES, 4));
	for (i = 0; i < 3; i++) {
		const unsigned char *v = b + OFF_VOLUMES + 16 * i;

		EXPECT_EQ(2U * i, get_le(v, 4));
		EXPECT_EQ((__u64)REGION_SECTORS << i, get_le(v + OFF_V_REGION, 4));
		EXPECT_EQ(1U << 21, get_le(v + OFF_V_SECTORS, 8));
	}
	/* A secondary's: its applied point where a primary has zeros. */
	b = base[HELLO_SEC].buf;
	EXPECT_EQ(0U, get_le(b + OFF_STREAM, 16));
	EXPECT_EQ(STREAM_A, get_le(b + OFF_APPLIED, 8));
	EXPECT_EQ(900U, get_le(b + OFF_APPLIED + 8, 8));
	EXPECT_EQ((__u64)DMREPL_HELLO_OUTDATED, get_le(b + OFF_HELLO_FLAGS, 4));
}

TEST(resend_round_trips_and_is_laid_out_field_by_field)
{
	static struct dmrepl_proto_resend r;
	static const __u32 counts[] = { 1, 3, DMREPL_PROTO_RESEND_MAX_REGIONS };
	struct dmrepl_frame *f = malloc(sizeof(*f));
	unsigned int i, j;

	ASSERT_NE(NULL, f);
	for (i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		struct dmrepl_obuf o;

		dmrepl_obuf_init(&o);
		make_resend(&r, counts[i]);
		r.regions[0] = 0;
		ASSERT_EQ(0, dmrepl_proto_put_resend(&o, &r));
		ASSERT_EQ(DMREPL_PROTO_HDR_SIZE + 8 + 8 * counts[i], o.len);
		EXPECT_EQ((__u64)DMREPL_FRAME_RESEND, get_le(o.buf + OFF_TYPE, 1));
		EXPECT_EQ(8 + 8 * counts[i], get_le(o.buf + OFF_BODY_LEN, 4));
		EXPECT_EQ(2U, get_le(o.buf + OFF_RS_VOLUME, 4));
		EXPECT_EQ(counts[i], get_le(o.buf + OFF_RS_COUNT, 4));
		for (j = 0; j < counts[i]; j++)
			ASSERT_EQ(r.regions[j], get_le(o.buf + OFF_RS_REGIONS + 8 * j, 8));
		ASSERT_EQ((unsigned int)DMREPL_FRAME_RESEND, decode_ok(_metadata, &o, f));
		ASSERT_EQ(NULL, f->why);
		ASSERT_EQ(2U, f->resend.volume);
		ASSERT_EQ(counts[i], f->resend.count);
		ASSERT_EQ(0, memcmp(r.regions, f->resend.regions, 8 * counts[i]));
		dmrepl_obuf_free(&o);
	}
	/* The largest is the type's limit. */
	EXPECT_EQ(8200U, DMREPL_PROTO_RESEND_MAX);
	free(f);
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
	put_le(o->buf + OFF_BODY_LEN, 4, DMREPL_PROTO_HELLO_FIXED + 65 * 16);
	memset(o->buf + o->len, 0, 62 * 16);
	o->len += 62 * 16;
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
	  "frame version is not 3" },
	{ "version 2 (before generations)", ACK, OFF_VERSION, 1, 2, NULL, 0, -EPROTO, 0,
	  "frame version is not 3" },
	{ "version 4", ACK, OFF_VERSION, 1, 4, NULL, 0, -EPROTO, 0,
	  "frame version is not 3" },
	{ "unknown type", ACK, OFF_TYPE, 1, 7, NULL, 0, -EBADMSG, 0,
	  "frame type is not 1..6" },
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
	  DMREPL_PROTO_HELLO_FIXED + 32, NULL, 0, -EBADMSG, 0,
	  "HELLO body length is not 185 + 16 * nvolumes" },
	{ "HELLO of version 2's length", HELLO_PRI, OFF_BODY_LEN, 4, 145 + 3 * 12, NULL, 0,
	  -EBADMSG, 0, "frame body length is under its type's size" },
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
	{ "volume indexes not increasing", HELLO_PRI, OFF_VOLUMES + 16, 4, 0, NULL, 0,
	  -EBADMSG, 0, "HELLO volume indexes are not strictly increasing" },
	{ "volume index 64", HELLO_PRI, OFF_VOLUMES + 32, 4, 64, NULL, 0, -EBADMSG, 0,
	  "HELLO volume index is over 63" },
	{ "volume sectors 0", HELLO_SEC, OFF_VOLUMES + 16 + OFF_V_SECTORS, 8, 0, NULL, 0,
	  -EBADMSG, 0, "HELLO volume sectors is 0" },
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
	{ "RESEND over its limit", RESEND, OFF_BODY_LEN, 4, 8208, NULL, 0, -EMSGSIZE, 0,
	  "frame body length is over its type's limit" },
	{ "RESEND shorter than one region", RESEND, OFF_BODY_LEN, 4, 8, NULL, 0, -EBADMSG, 0,
	  "frame body length is under its type's size" },
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

/* A RESEND of 1024 regions whose count says 1025. */
static void resend_count_1025(struct dmrepl_obuf *o)
{
	static struct dmrepl_proto_resend r;

	make_resend(&r, DMREPL_PROTO_RESEND_MAX_REGIONS);
	o->len = 0;
	if (dmrepl_proto_put_resend(o, &r))
		abort();
	put_le(o->buf + OFF_RS_COUNT, 4, DMREPL_PROTO_RESEND_MAX_REGIONS + 1);
}

/* count 0 in the smallest body a RESEND may have. */
static void resend_count_0(struct dmrepl_obuf *o)
{
	put_le(o->buf + OFF_RS_COUNT, 4, 0);
	put_le(o->buf + OFF_BODY_LEN, 4, 16);
	o->len = DMREPL_PROTO_HDR_SIZE + 16;
}

/* A region more than count says (body 8 + 8 * 4, count 3). */
static void resend_longer_than_count(struct dmrepl_obuf *o)
{
	put_le(o->buf + o->len, 8, 13);
	o->len += 8;
	put_le(o->buf + OFF_BODY_LEN, 4, o->len - DMREPL_PROTO_HDR_SIZE);
}

/* The rules of version 3's fields, each with the value the decoder names. */
static const struct rule_case {
	const char *name;
	enum base from;
	unsigned int off, width;
	__u64 value;
	void (*patch)(struct dmrepl_obuf *o);
	int err;
	const char *why;
	__u64 bad_value;
} v3_rules[] = {
	{ "region_sectors 0", HELLO_PRI, OFF_VOLUMES + OFF_V_REGION, 4, 0, NULL, -EBADMSG,
	  "HELLO volume region_sectors is not a power of 2 in 8..2097152", 0 },
	{ "region_sectors 4 (under 4 KiB)", HELLO_SEC, OFF_VOLUMES + OFF_V_REGION, 4, 4, NULL,
	  -EBADMSG, "HELLO volume region_sectors is not a power of 2 in 8..2097152", 4 },
	{ "region_sectors 24 (not a power of 2)", HELLO_PRI, OFF_VOLUMES + 16 + OFF_V_REGION, 4,
	  24, NULL, -EBADMSG, "HELLO volume region_sectors is not a power of 2 in 8..2097152",
	  24 },
	{ "region_sectors 2^22 (over 1 GiB)", HELLO_SEC, OFF_VOLUMES + 32 + OFF_V_REGION, 4,
	  1U << 22, NULL, -EBADMSG,
	  "HELLO volume region_sectors is not a power of 2 in 8..2097152", 1U << 22 },
	{ "primary of generation 0", HELLO_PRI, OFF_GEN_CURRENT, 8, 0, NULL, -EBADMSG,
	  "HELLO gen_current is 0 from a primary", 0 },
	{ "primary flag DIRTY", HELLO_PRI, OFF_HELLO_FLAGS, 4, DMREPL_HELLO_DIRTY, NULL, -EBADMSG,
	  "HELLO flags of a secondary from a primary", DMREPL_HELLO_DIRTY },
	{ "primary flags BEHIND and REJOIN", HELLO_PRI, OFF_HELLO_FLAGS, 4,
	  DMREPL_HELLO_BEHIND | DMREPL_HELLO_REJOIN, NULL, -EBADMSG,
	  "HELLO flags of a secondary from a primary",
	  DMREPL_HELLO_BEHIND | DMREPL_HELLO_REJOIN },
	{ "flag bit 6", HELLO_SEC, OFF_HELLO_FLAGS, 4, 1U << 6, NULL, -EBADMSG,
	  "HELLO flags has unknown bits", 1U << 6 },
	{ "RESEND volume 64", RESEND, OFF_RS_VOLUME, 4, 64, NULL, -EBADMSG,
	  "RESEND volume is over 63", 64 },
	{ "RESEND count 0", RESEND, 0, 0, 0, resend_count_0, -EBADMSG,
	  "RESEND body length is not 8 + 8 * count", 16 },
	{ "RESEND count 1025", RESEND, 0, 0, 0, resend_count_1025, -EBADMSG,
	  "RESEND body length is not 8 + 8 * count", 8200 },
	{ "RESEND count 2 in a body of 3", RESEND, OFF_RS_COUNT, 4, 2, NULL, -EBADMSG,
	  "RESEND body length is not 8 + 8 * count", 32 },
	{ "RESEND body longer than its count", RESEND, 0, 0, 0, resend_longer_than_count,
	  -EBADMSG, "RESEND body length is not 8 + 8 * count", 40 },
	{ "RESEND regions not increasing", RESEND, OFF_RS_REGIONS + 16, 8, 3, NULL, -EBADMSG,
	  "RESEND regions are not strictly increasing", 3 },
	{ "RESEND region twice", RESEND, OFF_RS_REGIONS + 8, 8, 1, NULL, -EBADMSG,
	  "RESEND regions are not strictly increasing", 1 },
};

TEST(version_3_rules_are_refused_naming_the_value)
{
	size_t i;

	make_bases();
	for (i = 0; i < sizeof(v3_rules) / sizeof(v3_rules[0]); i++) {
		const struct rule_case *c = &v3_rules[i];
		struct dmrepl_frame *f = malloc(sizeof(*f));
		struct dmrepl_obuf o;

		ASSERT_NE(NULL, f);
		copy_base(&o, c->from);
		if (c->width)
			put_le(o.buf + c->off, c->width, c->value);
		if (c->patch)
			c->patch(&o);
		EXPECT_EQ(c->err, dmrepl_frame_decode(o.buf, o.len, DMREPL_PROTO_BATCH_MAX, f))
			TH_LOG("%s", c->name);
		EXPECT_STREQ(c->why, f->why ? f->why : "(none)") TH_LOG("%s", c->name);
		EXPECT_EQ(c->bad_value, f->bad_value) TH_LOG("%s", c->name);
		dmrepl_obuf_free(&o);
		free(f);
	}
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
	make_hello(&h, DMREPL_PROTO_PRIMARY);
	h.gen_current = 0;
	ASSERT_EQ(-EINVAL, dmrepl_proto_put_hello(&o, &h));
	make_hello(&h, DMREPL_PROTO_PRIMARY);
	h.flags |= DMREPL_HELLO_DIRTY;
	ASSERT_EQ(-EINVAL, dmrepl_proto_put_hello(&o, &h));
	make_hello(&h, DMREPL_PROTO_SECONDARY);
	h.volumes[2].region_sectors = 96;
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

TEST(resend_encoder_refuses_each_rule)
{
	static struct dmrepl_proto_resend r;
	struct dmrepl_obuf o;

	dmrepl_obuf_init(&o);
	make_resend(&r, 0);
	ASSERT_EQ(-EINVAL, dmrepl_proto_put_resend(&o, &r));
	make_resend(&r, DMREPL_PROTO_RESEND_MAX_REGIONS);
	r.count = DMREPL_PROTO_RESEND_MAX_REGIONS + 1;
	ASSERT_EQ(-EINVAL, dmrepl_proto_put_resend(&o, &r));
	make_resend(&r, 3);
	r.volume = DM_REPL_MAX_VOLUMES;
	ASSERT_EQ(-EINVAL, dmrepl_proto_put_resend(&o, &r));
	make_resend(&r, 3);
	r.regions[2] = r.regions[1];
	ASSERT_EQ(-EINVAL, dmrepl_proto_put_resend(&o, &r));
	r.regions[2] = 0;
	ASSERT_EQ(-EINVAL, dmrepl_proto_put_resend(&o, &r));
	ASSERT_EQ(0U, o.len);
	/* The edges are taken: volume 63, one region, the last region there is. */
	make_resend(&r, 1);
	r.volume = DM_REPL_MAX_VOLUMES - 1;
	r.regions[0] = ~0ULL;
	ASSERT_EQ(0, dmrepl_proto_put_resend(&o, &r));
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

	/* Region sizes may differ, unless the replica has regions of its own. */
	sec.volumes[1].region_sectors *= 2;
	ASSERT_EQ(0, dmrepl_proto_check_hello(&pri, &sec, &reason, &text));
	sec.flags = DMREPL_HELLO_DIRTY | DMREPL_HELLO_INCONSISTENT;
	ASSERT_EQ(-ECONNREFUSED, dmrepl_proto_check_hello(&pri, &sec, &reason, &text));
	ASSERT_EQ((unsigned int)DMREPL_REFUSE_VOLUMES, reason);
	ASSERT_NE(NULL, strstr(text, "region sizes differ")) TH_LOG("%s", text);
	ASSERT_EQ(-ECONNREFUSED, dmrepl_proto_check_hello(&sec, &pri, &reason, &text));
	make_hello(&sec, DMREPL_PROTO_SECONDARY);

	/*
	 * A seeded replica: the primary's size and region size on every
	 * volume, or its seeding would never end.
	 */
	sec.flags = DMREPL_HELLO_SEEDED | DMREPL_HELLO_DIRTY | DMREPL_HELLO_INCONSISTENT;
	ASSERT_EQ(0, dmrepl_proto_check_hello(&pri, &sec, &reason, &text));
	sec.volumes[2].sectors++;
	ASSERT_EQ(-ECONNREFUSED, dmrepl_proto_check_hello(&pri, &sec, &reason, &text));
	ASSERT_EQ((unsigned int)DMREPL_REFUSE_VOLUMES, reason);
	ASSERT_NE(NULL, strstr(text, "seeded replica volume is larger")) TH_LOG("%s", text);
	sec.volumes[2].sectors--;
	sec.volumes[0].region_sectors /= 2;
	ASSERT_EQ(-ECONNREFUSED, dmrepl_proto_check_hello(&sec, &pri, &reason, &text));
	ASSERT_EQ((unsigned int)DMREPL_REFUSE_VOLUMES, reason);
	ASSERT_NE(NULL, strstr(text, "seeded replica's region size")) TH_LOG("%s", text);
	make_hello(&sec, DMREPL_PROTO_SECONDARY);

	sec.applied_seq = pri.next_seq;
	ASSERT_EQ(-ECONNREFUSED, dmrepl_proto_check_hello(&pri, &sec, &reason, &text));
	ASSERT_EQ((unsigned int)DMREPL_REFUSE_STREAM, reason);
	/* Another stream is the kernel's to place (its STREAM record). */
	sec.applied_stream = STREAM_B;
	ASSERT_EQ(0, dmrepl_proto_check_hello(&pri, &sec, &reason, &text));
}

/*
 * The generations of a primary and its replica, judged from both sides:
 * each side must come to the same answer. Returns the reason (0: taken)
 * and *text the phrase.
 */
static unsigned int judge_gens(struct __test_metadata *_metadata,
			       const struct dmrepl_proto_hello *pri,
			       const struct dmrepl_proto_hello *sec, const char **text)
{
	unsigned int reason, reason2;
	const char *text2;
	int ret, ret2;

	ret = dmrepl_proto_check_hello(pri, sec, &reason, text);
	ret2 = dmrepl_proto_check_hello(sec, pri, &reason2, &text2);
	EXPECT_EQ(ret, ret2);
	EXPECT_EQ(reason, reason2);
	EXPECT_STREQ(*text ? *text : "(none)", text2 ? text2 : "(none)");
	EXPECT_EQ(ret ? -ECONNREFUSED : 0, ret);
	return ret ? reason : 0;
}

/* A replica of generation gen (and history h0) with flags. */
static void replica_of(struct dmrepl_proto_hello *sec, __u64 gen, __u64 h0, __u32 flags)
{
	make_hello(sec, DMREPL_PROTO_SECONDARY);
	memset(sec->gen_history, 0, sizeof(sec->gen_history));
	sec->gen_current = gen;
	sec->gen_history[0] = h0;
	sec->flags = flags;
}

TEST(generations_a_planned_failover_a_fresh_replica_and_the_same_generation_are_taken)
{
	struct dmrepl_proto_hello pri, sec;
	const char *text;
	unsigned int i;

	make_hello(&pri, DMREPL_PROTO_PRIMARY);	/* GEN_3, history GEN_2 GEN_1 */
	/* The same generation. */
	replica_of(&sec, GEN_3, GEN_2, 0);
	ASSERT_EQ(0U, judge_gens(_metadata, &pri, &sec, &text));
	/* The old primary after a failover: its generation is in the new one's history. */
	replica_of(&sec, GEN_2, GEN_1, DMREPL_HELLO_OUTDATED);
	ASSERT_EQ(0U, judge_gens(_metadata, &pri, &sec, &text));
	replica_of(&sec, GEN_1, 0, 0);
	ASSERT_EQ(0U, judge_gens(_metadata, &pri, &sec, &text));
	/* The last of the history counts as much as the first. */
	pri.gen_history[3] = GEN_X;
	replica_of(&sec, GEN_X, 0, 0);
	ASSERT_EQ(0U, judge_gens(_metadata, &pri, &sec, &text));
	make_hello(&pri, DMREPL_PROTO_PRIMARY);
	/* Generation 0: fresh, or after rejoin; whatever it holds or says. */
	for (i = 0; i <= DMREPL_HELLO_SECONDARY_FLAGS; i++) {
		if (i & ~DMREPL_HELLO_SECONDARY_FLAGS)
			continue;
		replica_of(&sec, 0, 0, i);
		ASSERT_EQ(0U, judge_gens(_metadata, &pri, &sec, &text)) TH_LOG("flags %#x", i);
	}
	/* Of generation 0 even with a history the primary does not know. */
	replica_of(&sec, 0, GEN_X, DMREPL_HELLO_REJOIN | DMREPL_HELLO_DIRTY);
	ASSERT_EQ(0U, judge_gens(_metadata, &pri, &sec, &text));
}

TEST(generations_a_replica_with_writes_of_its_own_is_refused_unless_inconsistent)
{
	struct dmrepl_proto_hello pri, sec;
	const char *text;

	make_hello(&pri, DMREPL_PROTO_PRIMARY);
	replica_of(&sec, GEN_3, GEN_2, DMREPL_HELLO_DIRTY);
	ASSERT_EQ((unsigned int)DMREPL_REFUSE_DIVERGED, judge_gens(_metadata, &pri, &sec, &text));
	ASSERT_NE(NULL, strstr(text, "holds writes of its own")) TH_LOG("%s", text);
	ASSERT_NE(NULL, strstr(text, "rejoin --discard-my-data")) TH_LOG("%s", text);
	ASSERT_STREQ("diverged", dmrepl_proto_reason_name(DMREPL_REFUSE_DIVERGED));
	/* An old primary that wrote after the failover. */
	replica_of(&sec, GEN_2, GEN_1, DMREPL_HELLO_DIRTY | DMREPL_HELLO_OUTDATED);
	ASSERT_EQ((unsigned int)DMREPL_REFUSE_DIVERGED, judge_gens(_metadata, &pri, &sec, &text));
	ASSERT_NE(NULL, strstr(text, "holds writes of its own")) TH_LOG("%s", text);
	/* Inconsistent (a resync under way): its regions are resent, not its own. */
	replica_of(&sec, GEN_3, GEN_2, DMREPL_HELLO_DIRTY | DMREPL_HELLO_INCONSISTENT);
	ASSERT_EQ(0U, judge_gens(_metadata, &pri, &sec, &text));
	replica_of(&sec, GEN_2, 0, DMREPL_HELLO_DIRTY | DMREPL_HELLO_INCONSISTENT);
	ASSERT_EQ(0U, judge_gens(_metadata, &pri, &sec, &text));
}

TEST(generations_a_newer_or_unrelated_replica_is_split_brain)
{
	struct dmrepl_proto_hello pri, sec;
	const char *text;

	make_hello(&pri, DMREPL_PROTO_PRIMARY);
	/* The replica was promoted past the primary's generation. */
	replica_of(&sec, GEN_X, GEN_3, 0);
	ASSERT_EQ((unsigned int)DMREPL_REFUSE_DIVERGED, judge_gens(_metadata, &pri, &sec, &text));
	ASSERT_STREQ("split brain: the replica's generation is newer than the primary's", text);
	sec.gen_history[0] = 0;
	sec.gen_history[3] = GEN_3;
	ASSERT_EQ((unsigned int)DMREPL_REFUSE_DIVERGED, judge_gens(_metadata, &pri, &sec, &text));
	ASSERT_STREQ("split brain: the replica's generation is newer than the primary's", text);
	/* Neither knows the other's. */
	replica_of(&sec, GEN_X, 0x77, 0);
	ASSERT_EQ((unsigned int)DMREPL_REFUSE_DIVERGED, judge_gens(_metadata, &pri, &sec, &text));
	ASSERT_STREQ("split brain: the generations of the two sides share no history", text);
	/* A shared ancestor is no lineage: only the current generations count. */
	replica_of(&sec, GEN_X, GEN_1, 0);
	ASSERT_EQ((unsigned int)DMREPL_REFUSE_DIVERGED, judge_gens(_metadata, &pri, &sec, &text));
	ASSERT_STREQ("split brain: the generations of the two sides share no history", text);
	/* Clean or not, inconsistent or not: diverged is diverged. */
	replica_of(&sec, GEN_X, 0, DMREPL_HELLO_INCONSISTENT);
	ASSERT_EQ((unsigned int)DMREPL_REFUSE_DIVERGED, judge_gens(_metadata, &pri, &sec, &text));
}

TEST(generations_two_primaries_are_split_brain_unless_of_one_generation)
{
	struct dmrepl_proto_hello a, b;
	unsigned int reason;
	const char *text;

	make_hello(&a, DMREPL_PROTO_PRIMARY);
	make_hello(&b, DMREPL_PROTO_PRIMARY);
	strcpy(b.site, "site-b");
	b.gen_current = GEN_X;
	ASSERT_EQ(-ECONNREFUSED, dmrepl_proto_check_hello(&a, &b, &reason, &text));
	ASSERT_EQ((unsigned int)DMREPL_REFUSE_DIVERGED, reason);
	ASSERT_STREQ("split brain: both sides are primary, of different generations", text);
	ASSERT_EQ(-ECONNREFUSED, dmrepl_proto_check_hello(&b, &a, &reason, &text));
	ASSERT_EQ((unsigned int)DMREPL_REFUSE_DIVERGED, reason);
	/* One promoted from the other is split brain all the same. */
	b.gen_current = GEN_X;
	b.gen_history[0] = GEN_3;
	ASSERT_EQ(-ECONNREFUSED, dmrepl_proto_check_hello(&a, &b, &reason, &text));
	ASSERT_EQ((unsigned int)DMREPL_REFUSE_DIVERGED, reason);
	/* The same generation: both took the primary role, no data diverged yet. */
	b.gen_current = GEN_3;
	ASSERT_EQ(-ECONNREFUSED, dmrepl_proto_check_hello(&a, &b, &reason, &text));
	ASSERT_EQ((unsigned int)DMREPL_REFUSE_ROLE, reason);
	ASSERT_STREQ("both sides have the same role", text);
	ASSERT_EQ(-ECONNREFUSED, dmrepl_proto_check_hello(&b, &a, &reason, &text));
	ASSERT_EQ((unsigned int)DMREPL_REFUSE_ROLE, reason);
	/* Two replicas are only of the same role, whatever their generations. */
	replica_of(&a, GEN_1, 0, 0);
	replica_of(&b, GEN_X, 0, DMREPL_HELLO_DIRTY);
	ASSERT_EQ(-ECONNREFUSED, dmrepl_proto_check_hello(&a, &b, &reason, &text));
	ASSERT_EQ((unsigned int)DMREPL_REFUSE_ROLE, reason);
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
