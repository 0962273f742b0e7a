/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libdmrepl: the repld wire protocol, version 3 (Documentation/protocol.md).
 *
 * Pure codec: bytes in, structs out, and back; no I/O. One prefix per object:
 *   dmrepl_obuf_*        a growable output buffer that encoders append to
 *   dmrepl_proto_put_*   encode one frame
 *   dmrepl_frame_decode  decode one frame
 *   dmrepl_proto_batch_* a BATCH's payload: build, decompress, check
 *   dmrepl_proto_check_hello, dmrepl_proto_order_*: rules across frames
 *
 * Everything on the wire is little-endian and converted field by field.
 */
#ifndef DMREPL_PROTO_H
#define DMREPL_PROTO_H

#include "dmrepl.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DMREPL_PROTO_MAGIC	0x50455244	/* "DREP" as bytes */
#define DMREPL_PROTO_VERSION	3
#define DMREPL_PROTO_HDR_SIZE	16U

enum dmrepl_frame_type {
	DMREPL_FRAME_HELLO	= 1,
	DMREPL_FRAME_BATCH	= 2,
	DMREPL_FRAME_ACK	= 3,
	DMREPL_FRAME_HEARTBEAT	= 4,
	DMREPL_FRAME_REFUSE	= 5,
	DMREPL_FRAME_RESEND	= 6,
	DMREPL_FRAME_TYPE_MAX	= DMREPL_FRAME_RESEND,
};

/* Body sizes and limits of version 3. */
#define DMREPL_PROTO_HELLO_MAX		4096U
#define DMREPL_PROTO_HELLO_FIXED	185U	/* without volume entries */
#define DMREPL_PROTO_HELLO_VOLUME	16U	/* one volume entry */
#define DMREPL_PROTO_GEN_HISTORY	4U	/* older generations in a HELLO */
#define DMREPL_PROTO_RESEND_MAX_REGIONS	1024U	/* regions in one RESEND */
#define DMREPL_PROTO_RESEND_MAX		(8U + 8U * DMREPL_PROTO_RESEND_MAX_REGIONS)
#define DMREPL_PROTO_BATCH_HDR		40U	/* before the payload */
#define DMREPL_PROTO_BATCH_MAX		(DM_REPL_APPLY_BATCH_MAX + 64)
#define DMREPL_PROTO_ACK_SIZE		24U
#define DMREPL_PROTO_HEARTBEAT_SIZE	8U
#define DMREPL_PROTO_REFUSE_TEXT_MAX	256U
#define DMREPL_PROTO_REFUSE_MAX		(4U + DMREPL_PROTO_REFUSE_TEXT_MAX)

#define DMREPL_PROTO_SITE_MAX	64U	/* site name field, NUL-padded */
/* A batch must be able to carry one largest record. */
#define DMREPL_PROTO_MAX_BATCH_MIN	DMREPL_REC_MAX_LEN
#define DMREPL_PROTO_WINDOW_MAX		256U

enum dmrepl_proto_role {
	DMREPL_PROTO_PRIMARY	= 1,
	DMREPL_PROTO_SECONDARY	= 2,
};

/* HELLO flags: the sender's state, as in its status. */
#define DMREPL_HELLO_INCONSISTENT (1U << 0)	/* secondary: resync under way */
#define DMREPL_HELLO_OUTDATED	(1U << 1)	/* secondary: past a gap */
#define DMREPL_HELLO_BEHIND	(1U << 2)	/* primary: writes only in the bitmap */
/* secondary: regions in its own bitmap, writes of its own its primary may lack */
#define DMREPL_HELLO_DIRTY	(1U << 3)
#define DMREPL_HELLO_REJOIN	(1U << 4)	/* secondary: "rejoin" was sent to it */
/* secondary: seeded by other means, its dirty regions the ones not yet verified */
#define DMREPL_HELLO_SEEDED	(1U << 5)
#define DMREPL_HELLO_SECONDARY_FLAGS (DMREPL_HELLO_INCONSISTENT | DMREPL_HELLO_OUTDATED | \
				      DMREPL_HELLO_DIRTY | DMREPL_HELLO_REJOIN | \
				      DMREPL_HELLO_SEEDED)
#define DMREPL_HELLO_KNOWN	(DMREPL_HELLO_SECONDARY_FLAGS | DMREPL_HELLO_BEHIND)

enum dmrepl_proto_codec {
	DMREPL_CODEC_RAW	= 0,
	DMREPL_CODEC_ZSTD	= 1,
};

enum dmrepl_refuse_reason {
	DMREPL_REFUSE_VERSION = 1,	/* protocol version */
	DMREPL_REFUSE_GROUP,		/* wrong group */
	DMREPL_REFUSE_ROLE,		/* wrong role */
	DMREPL_REFUSE_VOLUMES,		/* volume mismatch */
	DMREPL_REFUSE_STREAM,		/* the stream cannot be placed */
	DMREPL_REFUSE_MALFORMED,	/* malformed frame */
	DMREPL_REFUSE_TOO_LARGE,	/* frame over a limit */
	DMREPL_REFUSE_ORDER,		/* out-of-order batch */
	DMREPL_REFUSE_APPLY,		/* the kernel refused the batch */
	DMREPL_REFUSE_SHUTDOWN,		/* shutting down */
	DMREPL_REFUSE_INTERNAL,		/* local failure (memory, device) */
	DMREPL_REFUSE_DIVERGED,		/* the generations say the data diverged */
	DMREPL_REFUSE_REASON_MAX = DMREPL_REFUSE_DIVERGED,
};

struct dmrepl_proto_volume {
	__u32 index;		/* volume index in the group's records */
	__u32 region_sectors;	/* sectors per bitmap region, a power of 2 */
	__u64 sectors;		/* size of the volume */
};

struct dmrepl_proto_hello {
	char group[DM_REPL_GROUP_NAME_MAX];	/* NUL-terminated */
	char site[DMREPL_PROTO_SITE_MAX];	/* NUL-terminated */
	unsigned int role;	/* enum dmrepl_proto_role */
	__u32 flags;		/* DMREPL_HELLO_* */
	__u64 stream;		/* primary: its ring's stream; secondary: 0 */
	__u64 next_seq;		/* primary: its next sequence; secondary: 0 */
	__u64 applied_stream;	/* secondary: durable applied point; primary: 0 */
	__u64 applied_seq;
	__u32 max_batch;	/* largest raw batch the sender accepts */
	__u32 window;		/* batches in flight */
	/* The group's generation identifiers; 0: none (a fresh or rejoining replica). */
	__u64 gen_current;
	__u64 gen_history[DMREPL_PROTO_GEN_HISTORY];
	__u32 nvolumes;
	struct dmrepl_proto_volume volumes[DM_REPL_MAX_VOLUMES];
};

struct dmrepl_proto_batch {
	__u64 first_seq;
	__u64 last_seq;
	__u64 stream;
	__u32 nrecords;
	__u32 raw_len;		/* bytes of records */
	unsigned int codec;	/* enum dmrepl_proto_codec */
	const void *payload;	/* decoded: points into the decoded buffer */
	__u32 payload_len;
};

struct dmrepl_proto_ack {
	__u64 applied_stream;	/* durable applied point of the replica */
	__u64 applied_seq;
	__u64 acked_last_seq;	/* last_seq of the batch acked; 0: none */
};

struct dmrepl_proto_heartbeat {
	__u64 sent_ns;
};

struct dmrepl_proto_refuse {
	__u32 reason;		/* enum dmrepl_refuse_reason */
	__u32 text_len;
	char text[DMREPL_PROTO_REFUSE_TEXT_MAX + 1];	/* NUL-terminated */
};

/* The replica's own dirty regions of one volume, to be resent by the primary. */
struct dmrepl_proto_resend {
	__u32 volume;		/* volume index */
	__u32 count;		/* 1..DMREPL_PROTO_RESEND_MAX_REGIONS */
	__u64 regions[DMREPL_PROTO_RESEND_MAX_REGIONS];	/* strictly increasing */
};

struct dmrepl_frame {
	unsigned int type;	/* enum dmrepl_frame_type */
	union {
		struct dmrepl_proto_resend resend;
		struct dmrepl_proto_hello hello;
		struct dmrepl_proto_batch batch;
		struct dmrepl_proto_ack ack;
		struct dmrepl_proto_heartbeat heartbeat;
		struct dmrepl_proto_refuse refuse;
	};
	/* Set by a failed decode: what is wrong, and the offending value. */
	const char *why;
	__u64 bad_value;
};

/* "protocol version", "wrong group", ...; NULL for an unknown reason. */
const char *dmrepl_proto_reason_name(unsigned int reason);

/* ------------------------------------------------------------------ */
/* Output buffer                                                       */
/* ------------------------------------------------------------------ */

struct dmrepl_obuf {
	unsigned char *buf;
	size_t head;		/* bytes at the front already sent */
	size_t len;		/* bytes encoded, sent or not */
	size_t cap;		/* bytes allocated at buf */
	/* zstd's compression context, made by the first compressed BATCH */
	void *zstd;
	unsigned int zstd_misses;	/* BATCHes in a row compression did not pay */
};

/* What is left to send: dmrepl_obuf_pending() bytes at dmrepl_obuf_data(). */
static inline const unsigned char *dmrepl_obuf_data(const struct dmrepl_obuf *o)
{
	return o->buf + o->head;
}

static inline size_t dmrepl_obuf_pending(const struct dmrepl_obuf *o)
{
	return o->len - o->head;
}

void dmrepl_obuf_init(struct dmrepl_obuf *o);
/* The buffer and the compression context. */
void dmrepl_obuf_free(struct dmrepl_obuf *o);
/* Drop the first n (<= pending) bytes: they were sent. */
void dmrepl_obuf_consume(struct dmrepl_obuf *o, size_t n);

/* ------------------------------------------------------------------ */
/* Encoders: append one frame; 0, -EINVAL (a field out of bounds),     */
/* -ENOMEM. On failure the buffer is as it was.                        */
/* ------------------------------------------------------------------ */

int dmrepl_proto_put_hello(struct dmrepl_obuf *o, const struct dmrepl_proto_hello *h);
int dmrepl_proto_put_ack(struct dmrepl_obuf *o, const struct dmrepl_proto_ack *a);
int dmrepl_proto_put_heartbeat(struct dmrepl_obuf *o, __u64 sent_ns);
int dmrepl_proto_put_resend(struct dmrepl_obuf *o, const struct dmrepl_proto_resend *r);
/* text: printable ASCII, at most DMREPL_PROTO_REFUSE_TEXT_MAX bytes used. */
int dmrepl_proto_put_refuse(struct dmrepl_obuf *o, unsigned int reason, const char *text);

/*
 * A BATCH of len bytes of sealed records at records, 8-byte aligned (a
 * batch as userspace/lib cuts them, of one stream: see
 * dmrepl_proto_batch_check(); only their headers are judged here). first_seq, last_seq,
 * stream and nrecords are read from the records' headers. The payload is
 * compressed with zstd at level (1..ZSTD_maxCLevel(); 0: never compress) and
 * sent raw when that saves less than 1/16 of it. After a batch that did not
 * pay, a sample is compressed first (Documentation/protocol.md). Returns 0, -EINVAL with
 * *why when the records are not a batch, -EMSGSIZE when len exceeds
 * DM_REPL_APPLY_BATCH_MAX, -ENOMEM; *codec (if not NULL) gets the codec used.
 */
int dmrepl_proto_put_batch(struct dmrepl_obuf *o, const void *records, size_t len,
			   int level, unsigned int *codec, const char **why);

/* ------------------------------------------------------------------ */
/* Decoder                                                             */
/* ------------------------------------------------------------------ */

/*
 * Decode the frame at the start of buf (len bytes readable). The header is
 * judged as soon as its 16 bytes are there. Returns the bytes the frame
 * takes, 0 when more bytes are needed, or -EBADMSG (malformed), -EMSGSIZE
 * (body over max_body or over its type's limit), -EPROTO (another protocol
 * version); then f->why names the field and the rule, f->bad_value holds
 * the offending value. A BATCH's payload points into buf; its records are
 * judged by dmrepl_proto_batch_unpack(), not here.
 */
long dmrepl_frame_decode(const void *buf, size_t len, size_t max_body,
			 struct dmrepl_frame *f);

/* ------------------------------------------------------------------ */
/* Batch payloads                                                      */
/* ------------------------------------------------------------------ */

/*
 * The records of a decoded BATCH into out (out_size bytes, 8-byte aligned,
 * the receiver's max_batch): raw_len must fit out_size (-EMSGSIZE), a zstd
 * payload must be one frame that declares raw_len and decompresses to
 * exactly raw_len bytes (-EBADMSG), and the records must pass
 * dmrepl_proto_batch_check(). Returns 0 or a negative errno with *why.
 */
int dmrepl_proto_batch_unpack(const struct dmrepl_proto_batch *b, void *out,
			      size_t out_size, const char **why);

/* What a receiver keeps from one batch to the next: zero it to start. */
struct dmrepl_proto_rx {
	void *zstd;		/* zstd's decompression context, made at first use */
};

void dmrepl_proto_rx_free(struct dmrepl_proto_rx *rx);

/*
 * dmrepl_proto_batch_unpack() for a receiver that keeps rx, without a copy
 * where none is needed: *records gets the batch's records, judged by the
 * same rules, either at the raw payload itself (where the decoded frame
 * lies, while it lies there) when it is 8-byte aligned, or at out.
 */
int dmrepl_proto_batch_records(const struct dmrepl_proto_batch *b, struct dmrepl_proto_rx *rx,
			       void *out, size_t out_size, const void **records,
			       const char **why);

/*
 * The records of a batch (raw_len bytes at records, 8-byte aligned) against
 * its frame: every record whole and valid (dmrepl_rec_check()), nrecords of
 * them, sequences contiguous from first_seq to last_seq, all of b->stream,
 * and a STREAM record only as the first. Returns 0 or -EBADMSG with *why.
 */
int dmrepl_proto_batch_check(const struct dmrepl_proto_batch *b, const void *records,
			     const char **why);

/* ------------------------------------------------------------------ */
/* Rules across frames                                                 */
/* ------------------------------------------------------------------ */

/*
 * A peer's HELLO against ours: group, roles, generations, volumes, limits
 * and the place of the replica's applied point in the primary's stream.
 * The generations (Documentation/protocol.md, "Generations") refuse, with
 * DMREPL_REFUSE_DIVERGED, two primaries of different generations (split
 * brain), a replica whose generation is not its primary's nor one of its
 * history, or is but holds writes of its own (DIRTY, not INCONSISTENT). A
 * replica of generation 0 (fresh, or after "rejoin") is taken. Returns 0, or
 * -ECONNREFUSED with *reason (enum dmrepl_refuse_reason) and *text (a
 * static phrase for the REFUSE frame and the log).
 */
int dmrepl_proto_check_hello(const struct dmrepl_proto_hello *local,
			     const struct dmrepl_proto_hello *peer,
			     unsigned int *reason, const char **text);

/*
 * A refusal for reason (of dmrepl_proto_check_hello, ours or the peer's)
 * is judged after the generations and so says they agree: a divergence
 * said earlier is over. False for the reasons judged before them (group,
 * roles) and for DIVERGED itself.
 */
bool dmrepl_proto_gens_agree(unsigned int reason);

/* The volume of that index in h (as decoded: nvolumes checked), NULL if none. */
const struct dmrepl_proto_volume *dmrepl_proto_hello_volume(const struct dmrepl_proto_hello *h,
							    __u32 index);

/*
 * The receiver's order of batches within one connection, starting from its
 * durable applied point (what its HELLO said).
 */
struct dmrepl_proto_order {
	__u64 stream;		/* stream of the last batch (or applied) */
	__u64 last_seq;		/* its last sequence */
	bool resuming;		/* nothing past the applied point yet */
};

void dmrepl_proto_order_init(struct dmrepl_proto_order *ord, __u64 applied_stream,
			     __u64 applied_seq);

/*
 * Judge the next batch, whose records passed dmrepl_proto_batch_check(),
 * and take it as the last one. Returns 0, or -EILSEQ with *why (refuse with
 * DMREPL_REFUSE_ORDER).
 */
int dmrepl_proto_order_check(struct dmrepl_proto_order *ord,
			     const struct dmrepl_proto_batch *b, const void *records,
			     const char **why);

#ifdef __cplusplus
}
#endif

#endif /* DMREPL_PROTO_H */
