// SPDX-License-Identifier: GPL-2.0
/*
 * The repld wire protocol's receiving side on one input: decode a frame
 * with small limits; a BATCH is decompressed and checked, then judged for
 * order, and judged alike where it lies (dmrepl_proto_batch_records(), with
 * a zstd context kept across inputs); a HELLO is checked against both
 * roles, each judgement the same from either side; a RESEND's regions are
 * queued as a primary queues them (dmrepl_resync_ask()). Every frame that
 * decodes must encode back to the same bytes (a BATCH: once its records are
 * raw).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dmrepl.h"
#include "dmrepl_proto.h"

/* Small limits: a batch of at most one largest record. */
#define FUZZ_MAX_BATCH	DMREPL_PROTO_MAX_BATCH_MIN
#define FUZZ_MAX_BODY	(DMREPL_PROTO_BATCH_HDR + FUZZ_MAX_BATCH)
/* The local side's generations: those of seed_proto's HELLOs. */
#define FUZZ_GEN	0x6e6e000000000003ULL
#define FUZZ_GEN_OLD	0x6e6e000000000002ULL
/* Regions of a volume a RESEND is queued against. */
#define FUZZ_NR_REGIONS	4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned char out[FUZZ_MAX_BATCH] __attribute__((aligned(8)));
static unsigned char out2[FUZZ_MAX_BATCH] __attribute__((aligned(8)));
/* As a receiver keeps it from one batch to the next. */
static struct dmrepl_proto_rx rx;

/* The decoded frame encodes back to the bytes it came from. */
static void same_bytes(const struct dmrepl_obuf *o, int ret, const void *in, long n)
{
	if (ret || o->len != (size_t)n || memcmp(o->buf, in, (size_t)n))
		abort();
}

static void local_hello(struct dmrepl_proto_hello *h, unsigned int role)
{
	memset(h, 0, sizeof(*h));
	strcpy(h->group, "vm42");
	strcpy(h->site, "here");
	h->role = role;
	h->stream = role == DMREPL_PROTO_PRIMARY ? 0x0123456789abcdefULL : 0;
	h->next_seq = role == DMREPL_PROTO_PRIMARY ? 1000 : 0;
	h->max_batch = FUZZ_MAX_BATCH;
	h->window = 4;
	h->gen_current = FUZZ_GEN;
	h->gen_history[0] = FUZZ_GEN_OLD;
	/* seed_proto's volumes, so that its HELLOs pass every check. */
	h->nvolumes = 2;
	h->volumes[0].region_sectors = 128;
	h->volumes[0].sectors = 1 << 21;
	h->volumes[1].index = 5;
	h->volumes[1].region_sectors = 1024;
	h->volumes[1].sectors = 1 << 22;
}

/* Checked from here and from the peer's side: the same judgement. */
static void check_both_ways(const struct dmrepl_proto_hello *local,
			    const struct dmrepl_proto_hello *peer)
{
	unsigned int reason, reason2;
	const char *text, *text2;
	int ret;

	ret = dmrepl_proto_check_hello(local, peer, &reason, &text);
	if (dmrepl_proto_check_hello(peer, local, &reason2, &text2) != ret ||
	    reason != reason2 || text != text2 || (ret && !text) ||
	    (ret && (!reason || reason > DMREPL_REFUSE_REASON_MAX)))
		abort();
}

static void hello(const struct dmrepl_proto_hello *peer)
{
	struct dmrepl_proto_hello local;

	local_hello(&local, DMREPL_PROTO_PRIMARY);
	check_both_ways(&local, peer);
	local_hello(&local, DMREPL_PROTO_SECONDARY);
	check_both_ways(&local, peer);
	local.gen_current = 0;
	check_both_ways(&local, peer);
}

/* Distinct regions: each is queued once, or none when one is out of range. */
static void resend(const struct dmrepl_proto_resend *r)
{
	struct dmrepl_resync rs;
	int ret;

	dmrepl_resync_init(&rs, -1);
	ret = dmrepl_resync_ask(&rs, r->volume, FUZZ_NR_REGIONS, r->regions, r->count);
	if (r->regions[r->count - 1] < FUZZ_NR_REGIONS ?
	    ret || rs.asked_left != r->count : ret != -EINVAL || rs.asked_left)
		abort();
	dmrepl_resync_free(&rs);
}

static void batch(struct dmrepl_obuf *o, const struct dmrepl_proto_batch *b,
		  const void *in, long n)
{
	struct dmrepl_proto_order ord;
	const void *records;
	const char *why;
	int ret;

	ret = dmrepl_proto_batch_unpack(b, out, sizeof(out), &why);
	/* In place or not, with a kept context or not: the same judgement. */
	if (dmrepl_proto_batch_records(b, &rx, out2, sizeof(out2), &records, &why) != ret ||
	    (!ret && memcmp(records, out, b->raw_len)))
		abort();
	if (ret)
		return;
	dmrepl_proto_order_init(&ord, b->stream, b->first_seq - 1);
	if (dmrepl_proto_order_check(&ord, b, out, &why))
		abort();	/* a batch right after its predecessor */
	dmrepl_proto_order_init(&ord, 0x0123456789abcdefULL, 900);
	dmrepl_proto_order_check(&ord, b, out, &why);
	ret = dmrepl_proto_put_batch(o, out, b->raw_len, 0, NULL, &why);
	if (b->codec == DMREPL_CODEC_RAW)
		same_bytes(o, ret, in, n);
	else if (ret)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dmrepl_frame f;
	struct dmrepl_obuf o;
	int ret = 0;
	long n;

	n = dmrepl_frame_decode(data, size, FUZZ_MAX_BODY, &f);
	if (n <= 0)
		return 0;
	dmrepl_obuf_init(&o);
	switch (f.type) {
	case DMREPL_FRAME_HELLO:
		hello(&f.hello);
		ret = dmrepl_proto_put_hello(&o, &f.hello);
		same_bytes(&o, ret, data, n);
		break;
	case DMREPL_FRAME_BATCH:
		batch(&o, &f.batch, data, n);
		break;
	case DMREPL_FRAME_ACK:
		ret = dmrepl_proto_put_ack(&o, &f.ack);
		same_bytes(&o, ret, data, n);
		break;
	case DMREPL_FRAME_HEARTBEAT:
		ret = dmrepl_proto_put_heartbeat(&o, f.heartbeat.sent_ns);
		same_bytes(&o, ret, data, n);
		break;
	case DMREPL_FRAME_REFUSE:
		ret = dmrepl_proto_put_refuse(&o, f.refuse.reason, f.refuse.text);
		same_bytes(&o, ret, data, n);
		break;
	case DMREPL_FRAME_RESEND:
		resend(&f.resend);
		ret = dmrepl_proto_put_resend(&o, &f.resend);
		same_bytes(&o, ret, data, n);
		break;
	}
	dmrepl_obuf_free(&o);
	return 0;
}
