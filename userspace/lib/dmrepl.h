/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libdmrepl: userspace side of the dm-repl ABI (<linux/dm-repl.h>).
 *
 * One prefix per object:
 *   dmrepl_crc32c   crc32c in the kernel's convention
 *   dmrepl_rec_*    one change record: accessors, checksum, validation, encoding
 *   dmrepl_stream_* records back to back on a file descriptor ("dump --raw")
 *   dmrepl_ring_*   the consumer of a group's ring (/dev/dm-repl/<group>)
 *   dmrepl_group_*  a group's device: open, GROUP_INFO
 *   dmrepl_apply_*  a secondary's apply path: APPLY_INFO, refusal reasons
 *   dmrepl_batch_*  records gathered into batches for write(2) to a secondary
 *   dmrepl_ship_*   a primary's ring shipped to a replica, released on acks
 *   dmrepl_meta_*   the metadata device: superblock, activity log, bitmap
 *
 * Every function that can fail returns a negative errno value. Nothing here
 * keeps global state; the library never prints.
 */
#ifndef DMREPL_H
#define DMREPL_H

#include <endian.h>
#include <stdbool.h>
#include <stddef.h>
#include <linux/dm-repl.h>

#ifdef __cplusplus
extern "C" {
#endif

_Static_assert(sizeof(struct dm_repl_rec) == DM_REPL_REC_HDR_SIZE,
	       "record header size");
_Static_assert(sizeof(struct dm_repl_slot) == 8, "slot header size");
_Static_assert(sizeof(struct dm_repl_ring_ctl) == 192, "ring control size");

/* Largest record: header + largest payload, already aligned. */
#define DMREPL_REC_MAX_LEN (DM_REPL_REC_HDR_SIZE + DM_REPL_REC_PAYLOAD_MAX)

/* ------------------------------------------------------------------ */
/* crc32c                                                              */
/* ------------------------------------------------------------------ */

/*
 * Continue a crc32c (Castagnoli) over len bytes. Seed with ~0U; the result is
 * not inverted (the kernel's crc32c() convention).
 */
__u32 dmrepl_crc32c(__u32 crc, const void *p, size_t len);

/*
 * The two ways behind dmrepl_crc32c(), for tests: the portable table-driven
 * crc, and the CPU's crc32 instruction (x86-64 with SSE4.2 and PCLMUL),
 * which continues *crc and returns true, or returns false without it.
 */
__u32 dmrepl_crc32c_sw(__u32 crc, const void *p, size_t len);
bool dmrepl_crc32c_hw(__u32 *crc, const void *p, size_t len);

/* ------------------------------------------------------------------ */
/* Records                                                             */
/* ------------------------------------------------------------------ */

static inline __u32 dmrepl_rec_magic(const struct dm_repl_rec *r)
{
	return le32toh(r->magic);
}

static inline unsigned int dmrepl_rec_type(const struct dm_repl_rec *r)
{
	return le16toh(r->type);
}

static inline unsigned int dmrepl_rec_flags(const struct dm_repl_rec *r)
{
	return le16toh(r->flags);
}

static inline __u32 dmrepl_rec_len(const struct dm_repl_rec *r)
{
	return le32toh(r->len);
}

static inline __u32 dmrepl_rec_payload_len(const struct dm_repl_rec *r)
{
	return le32toh(r->payload_len);
}

static inline __u64 dmrepl_rec_seq(const struct dm_repl_rec *r)
{
	return le64toh(r->seq);
}

static inline __u64 dmrepl_rec_epoch(const struct dm_repl_rec *r)
{
	return le64toh(r->epoch);
}

static inline __u64 dmrepl_rec_sector(const struct dm_repl_rec *r)
{
	return le64toh(r->sector);
}

static inline __u32 dmrepl_rec_nbytes(const struct dm_repl_rec *r)
{
	return le32toh(r->nbytes);
}

static inline unsigned int dmrepl_rec_volume(const struct dm_repl_rec *r)
{
	return le16toh(r->volume);
}

static inline unsigned int dmrepl_rec_version(const struct dm_repl_rec *r)
{
	return le16toh(r->version);
}

static inline __u64 dmrepl_rec_time_ns(const struct dm_repl_rec *r)
{
	return le64toh(r->time_ns);
}

static inline __u32 dmrepl_rec_crc(const struct dm_repl_rec *r)
{
	return le32toh(r->crc);
}

/* dmrepl_group_tag() of the group that captured the record. */
static inline __u32 dmrepl_rec_group_tag(const struct dm_repl_rec *r)
{
	return le32toh(r->group_tag);
}

/* The stream (primary incarnation) the record belongs to. */
static inline __u64 dmrepl_rec_stream(const struct dm_repl_rec *r)
{
	return le64toh(r->stream);
}

static inline const void *dmrepl_rec_payload(const struct dm_repl_rec *r)
{
	return (const unsigned char *)r + DM_REPL_REC_HDR_SIZE;
}

/* Bytes a record with payload_len bytes of payload occupies (len). */
static inline size_t dmrepl_rec_size(size_t payload_len)
{
	return (DM_REPL_REC_HDR_SIZE + payload_len + DM_REPL_REC_ALIGN - 1) &
	       ~(size_t)(DM_REPL_REC_ALIGN - 1);
}

/* "WRITE", "DISCARD", ...; NULL for an unknown type. */
const char *dmrepl_rec_type_name(unsigned int type);
/* 'W', 'D', 'Z', 'F', 'M', 'R'; '?' for an unknown type. */
char dmrepl_rec_type_letter(unsigned int type);

/*
 * The crc a record must carry: header with crc taken as 0, then
 * payload_len bytes of payload. The caller guarantees those bytes exist.
 */
__u32 dmrepl_rec_compute_crc(const struct dm_repl_rec *r);

/*
 * Validate the record at buf, of which avail bytes are readable. A VOID
 * record (DM_REPL_RECF_VOID) of any type is valid with no payload (len 64):
 * the per-type payload rules do not apply to it; with a payload it is not
 * ("payload on a VOID record"). Returns 0,
 * -EINVAL for a malformed record or -EBADMSG for a checksum mismatch; *why
 * (if why is not NULL) then points to a static phrase naming the rule.
 * Reads nothing beyond min(avail, len). buf must be 8-byte aligned (records
 * are, in the ring and in any buffer from malloc()).
 */
int dmrepl_rec_check(const void *buf, size_t avail, const char **why);

/*
 * A record as the ring holds it, not yet sealed: every rule of
 * dmrepl_rec_check() but the checksum, which must be 0. Returns 0 or -EINVAL.
 */
int dmrepl_rec_check_unsealed(const void *buf, size_t avail, const char **why);

/*
 * The rules of dmrepl_rec_check() that need only the 64 header bytes (magic,
 * version, type, flags, no payload on a VOID record, len and payload_len
 * against each other and against avail). Lets a reader judge len
 * before reading the rest.
 */
int dmrepl_rec_check_header(const struct dm_repl_rec *r, size_t avail,
			    const char **why);

/* Fields of a record to encode; byte order is the host's here. */
struct dmrepl_rec_fields {
	unsigned int type;
	unsigned int flags;
	unsigned int volume;
	__u64 seq;
	__u64 epoch;
	__u64 sector;
	__u32 nbytes;
	__u64 time_ns;
	__u32 group_tag;	/* dmrepl_group_tag() of the capturing group */
	__u64 stream;		/* its stream, never 0 from a kernel */
	const void *payload;
	__u32 payload_len;
};

/*
 * The group_tag of records captured by group_name (no NUL): crc32c seeded
 * with ~0, not inverted, as the kernel's crc32c(~0, name, strlen(name)).
 */
__u32 dmrepl_group_tag(const char *group_name);

/*
 * Encode a complete record (header, payload, zero padding, crc) into buf.
 * Returns its len, or -EMSGSIZE if it does not fit in size bytes or the
 * payload exceeds DM_REPL_REC_PAYLOAD_MAX. Does not judge the fields: run
 * dmrepl_rec_check() for that.
 */
long dmrepl_rec_encode(void *buf, size_t size, const struct dmrepl_rec_fields *f);

/* Recompute and store the crc of a record (its payload must follow it). */
void dmrepl_rec_seal(struct dm_repl_rec *r);

/*
 * The VOID form of a record whose write failed (a DISCARDED slot): src's
 * header (only its DM_REPL_REC_HDR_SIZE bytes are read) with
 * DM_REPL_RECF_VOID added, payload_len 0 and len DM_REPL_REC_HDR_SIZE,
 * sealed, into dst (a header; may be src). The
 * rest (seq, epoch, volume, group_tag, ...) is kept.
 */
void dmrepl_rec_make_void(const struct dm_repl_rec *src, struct dm_repl_rec *dst);

/* A RESYNC record whose data reads as zeros (its end alone is not). */
bool dmrepl_rec_zero_region(const struct dm_repl_rec *r);

/*
 * A slot's record as it leaves the ring (dmrepl_ring_next_slot()): copied
 * to dst and sealed; for a DISCARDED slot, its VOID form (only its header
 * is read); for a RESYNC record whose data reads as zeros, its ZERO form
 * (header only, DM_REPL_RECF_ZERO). dst holds dmrepl_rec_len(src) bytes
 * (DMREPL_REC_MAX_LEN always suffices) and does not overlap src. Returns
 * dst.
 */
struct dm_repl_rec *dmrepl_rec_copy_out(struct dm_repl_rec *dst,
					const struct dm_repl_rec *src, bool discarded);

/*
 * The same in two steps, for a copy into room of the right size: which
 * form the record leaves in (*zero: its ZERO form) and its length then;
 * and the copy in that form, of exactly that length. The ring is read
 * once for each decision, so a slot that changes in between (it must not)
 * cannot make the copy longer than its room.
 */
size_t dmrepl_rec_out_len(const struct dm_repl_rec *src, bool discarded, bool *zero);
void dmrepl_rec_copy_as(struct dm_repl_rec *dst, const struct dm_repl_rec *src,
			bool discarded, bool zero, size_t len);

/* ------------------------------------------------------------------ */
/* Raw record streams                                                  */
/* ------------------------------------------------------------------ */

/* A reader of records stored back to back, without slot headers. */
struct dmrepl_stream {
	int fd;
	__u64 offset;		/* bytes consumed so far */
	__u64 records;		/* records returned so far */
};

void dmrepl_stream_init(struct dmrepl_stream *s, int fd);

/*
 * Read exactly one record into buf (size bytes; DMREPL_REC_MAX_LEN always
 * suffices) and validate it. Returns 1 with a record, 0 at a clean end of
 * stream (end of file on a record boundary), -ENODATA when the stream ends
 * inside a record, -EMSGSIZE when the record does not fit in buf,
 * -EINVAL/-EBADMSG for a bad record (as dmrepl_rec_check) or -errno of
 * read(2). *why names the problem for the non-errno cases. The stream's
 * offset tells where the failing record starts.
 */
int dmrepl_stream_read(struct dmrepl_stream *s, void *buf, size_t size,
		       const char **why);

/* ------------------------------------------------------------------ */
/* Ring consumer                                                       */
/* ------------------------------------------------------------------ */

struct dmrepl_ring;

/* Length of the buffer dmrepl_ring_open() wants for its error message. */
#define DMREPL_ERRMSG_LEN 160

/*
 * Check a mapped control page: magic, ABI version, ctl_size, slot_size,
 * data_size a power of two, and that map_size covers the control page and
 * both copies of the data area. Returns 0, -EPROTO for an ABI version other
 * than DM_REPL_ABI_VERSION, -EINVAL otherwise; if msg is not NULL it then
 * holds a sentence (naming both versions on -EPROTO).
 */
int dmrepl_ring_check_ctl(const void *map, size_t map_size, char *msg,
			  size_t msg_len);

/*
 * Consume a ring already mapped at map (control page, data area twice). The
 * read position starts at the control page's released_pos. The ring does not
 * own the mapping and has no file descriptor: dmrepl_ring_wait(),
 * dmrepl_ring_release() and dmrepl_ring_info() return -EBADF.
 * Returns 0, -ENOMEM or an error of dmrepl_ring_check_ctl().
 */
int dmrepl_ring_attach(void *map, size_t map_size, struct dmrepl_ring **out);

/*
 * Resolve a group name to DM_REPL_DEV_DIR "/<name>"; anything containing a
 * '/' is taken as a path already. Returns 0, -EINVAL for an empty name or
 * -ENAMETOOLONG.
 */
int dmrepl_ring_path(const char *group_or_path, char *buf, size_t len);

/*
 * Open a group's character device (group name or path), check the module's
 * ABI version with DM_REPL_IOC_GROUP_INFO, map the ring read-only and attach
 * to it. On failure returns -errno (-EPROTO for an ABI mismatch) and, if
 * errmsg is not NULL, a sentence (without the path) in errmsg.
 */
int dmrepl_ring_open(const char *group_or_path, struct dmrepl_ring **out,
		     char *errmsg, size_t errmsg_len);

/* Unmap and close what dmrepl_ring_open() acquired; frees the ring. */
void dmrepl_ring_close(struct dmrepl_ring *ring);

/*
 * Next slot that is no longer BUSY, in ring (= sequence) order. A committed
 * record is checked with dmrepl_rec_check_unsealed(): its crc is 0 until
 * whoever copies it out seals the copy (dmrepl_rec_seal). A DISCARDED slot
 * (its write failed) is returned too, with *discarded set: only its header
 * is checked (dmrepl_rec_check_header()), its payload may be partial, so
 * read nothing past the header (dmrepl_rec_make_void() gives the record to
 * copy out). Both must fit their slot and have increasing sequences.
 * Returns 1 with *rec pointing into the mapping (valid until its sequence
 * is released), 0 when the consumer has caught up or the next slot is still
 * BUSY, or a negative errno for a corrupt ring or record, in which case the
 * read position stays on the bad slot and dmrepl_ring_why() names the
 * problem. DISCARDED slots returned are counted (dmrepl_ring_discarded()).
 */
int dmrepl_ring_next_slot(struct dmrepl_ring *ring, const struct dm_repl_rec **rec,
			  bool *discarded);

/*
 * Next committed record: dmrepl_ring_next_slot() skipping (and counting)
 * DISCARDED slots. Returns as dmrepl_ring_next_slot(); *rec is set only
 * with 1.
 */
int dmrepl_ring_next(struct dmrepl_ring *ring, const struct dm_repl_rec **rec);

/*
 * Wait until the module reports new records (POLLIN), for at most
 * timeout_ms (-1: no limit). Returns 1 when woken (possibly spuriously), 0
 * on timeout, -ENODEV when the group went away (POLLHUP/POLLERR), -EINTR
 * when a signal came, -EBADF for an attached ring.
 */
int dmrepl_ring_wait(struct dmrepl_ring *ring, int timeout_ms);

/* Free every record with sequence <= seq (DM_REPL_IOC_RELEASE). */
int dmrepl_ring_release(struct dmrepl_ring *ring, __u64 seq);

/* The module's view of the group (DM_REPL_IOC_GROUP_INFO). -EPROTO on an ABI mismatch. */
int dmrepl_ring_info(struct dmrepl_ring *ring, struct dm_repl_group_info *info);

/* Read position: end of the last slot consumed. */
__u64 dmrepl_ring_pos(const struct dmrepl_ring *ring);
/*
 * Bytes in the ring not yet released (reserved, sent or not, and not
 * acknowledged) in *backlog, and released since the ring was made (a
 * counter that only grows) in *released: the ring's positions.
 */
void dmrepl_ring_backlog(const struct dmrepl_ring *ring, __u64 *backlog, __u64 *released);
/* DISCARDED slots consumed so far (returned by _next_slot() or skipped). */
__u64 dmrepl_ring_discarded(const struct dmrepl_ring *ring);
/* Why the last dmrepl_ring_next{,_slot}() failed (a static phrase), or NULL. */
const char *dmrepl_ring_why(const struct dmrepl_ring *ring);
/* The device path for an opened ring, "" for an attached one. */
const char *dmrepl_ring_dev_path(const struct dmrepl_ring *ring);
/* The file descriptor of an opened ring (for an event loop), -1 if attached. */
int dmrepl_ring_fd(const struct dmrepl_ring *ring);

/* ------------------------------------------------------------------ */
/* A group's device                                                    */
/* ------------------------------------------------------------------ */

/*
 * DM_REPL_IOC_GROUP_INFO on fd, asking for DM_REPL_ABI_VERSION. Returns 0,
 * -EPROTO when the module speaks another version, or -errno; msg (if not
 * NULL) then holds a sentence.
 */
int dmrepl_group_info(int fd, struct dm_repl_group_info *info, char *msg,
		      size_t msg_len);

/* The entry of info->volumes for volume index @index, or -1 if none. */
int dmrepl_volume_entry(const struct dm_repl_group_info *info, unsigned int index);

/*
 * Open a group's character device (group name or path, as
 * dmrepl_ring_path()) with flags (O_RDONLY, O_WRONLY; O_CLOEXEC is added)
 * and read its info, checking the ABI version. Returns the fd, or -errno
 * (-EPROTO for an ABI mismatch) with a sentence (without the path) in errmsg.
 * Nothing is mapped: this works for both roles.
 */
int dmrepl_group_open(const char *group_or_path, int flags,
		      struct dm_repl_group_info *info, char *errmsg, size_t errmsg_len);

/* ------------------------------------------------------------------ */
/* Apply path of a secondary                                           */
/* ------------------------------------------------------------------ */

_Static_assert(sizeof(struct dm_repl_applied_marker) == 88, "applied marker size");

/*
 * DM_REPL_IOC_APPLY_INFO on fd. Returns 0, -EPROTO when the module speaks
 * another ABI version, or -errno of ioctl(2).
 */
int dmrepl_apply_info(int fd, struct dm_repl_apply_info *ai);

/* DM_REPL_IOC_VERIFY_INFO on fd (a secondary): as dmrepl_apply_info(). */
int dmrepl_verify_info(int fd, struct dm_repl_verify_info *vi);

/*
 * A phrase for an enum dm_repl_apply_reason ("sequence gap", ...), NULL
 * for a value this library does not know.
 */
const char *dmrepl_apply_reason_name(unsigned int reason);

/* Default batch size of "repltool apply". */
#define DMREPL_APPLY_BATCH_DEFAULT (4096U << 10)

/*
 * Records gathered into batches, each written to a secondary's device (or
 * any fd) with one write(2). The cut rule keeps an interrupted feeder's
 * replica at a flush boundary whenever epochs are smaller than a batch:
 * when the next record does not fit, the batch ends after the last FLUSH
 * record it holds, the records after it starting the next batch; only a
 * batch without a FLUSH is cut where it is full. A record larger than the
 * batch limit goes in a batch of its own.
 */
struct dmrepl_batch {
	unsigned char *buf;
	size_t limit;		/* most bytes in a batch */
	size_t cap;		/* bytes at buf: limit, or one largest record */
	size_t len;		/* bytes buffered */
	size_t flush_end;	/* end of the last FLUSH buffered, 0 if none */
	__u64 nr;		/* records buffered */
	__u64 flush_nr;		/* of those, up to flush_end */

	/* Totals of the batches written. */
	__u64 batches;
	__u64 records;
	__u64 bytes;

	/* Last sequence of the last batch written in full (0: none yet). */
	__u64 written_seq;

	/* The batch written last (or being written when it failed). */
	__u64 first_seq, last_seq;
	size_t batch_len;
	__u64 batch_nr;		/* records in it */
	long written;		/* what write(2) returned for it */

	/*
	 * Where batches go. NULL: write(2) to the fd given to _add() and
	 * _flush(). Otherwise called with the batch's bytes (first_seq,
	 * last_seq, batch_len and batch_nr are set); it returns 0 when the
	 * batch is taken whole, or -errno (the batch stays buffered).
	 */
	int (*send)(void *arg, const void *buf, const struct dmrepl_batch *b);
	void *send_arg;
};

/* limit from 1 to DM_REPL_APPLY_BATCH_MAX bytes. 0, -EINVAL or -ENOMEM. */
int dmrepl_batch_init(struct dmrepl_batch *b, size_t limit);
void dmrepl_batch_free(struct dmrepl_batch *b);

/*
 * Add a record that passed dmrepl_rec_check(), first writing to fd the
 * batches the cut rule ends. Returns 0, -errno of write(2) (retried on
 * EINTR), or -EIO for a short write (written < batch_len). The failed
 * batch stays buffered.
 */
int dmrepl_batch_add(struct dmrepl_batch *b, const struct dm_repl_rec *r, int fd);

/*
 * dmrepl_batch_add() in two steps, for a record built in place: room for
 * len bytes (at most DMREPL_REC_MAX_LEN) at the end of the batch, after
 * writing what the cut rule ends (NULL and *err as above, or -EMSGSIZE);
 * then, once a record of at most len bytes is there, commit it.
 */
void *dmrepl_batch_room(struct dmrepl_batch *b, size_t len, int fd, int *err);
void dmrepl_batch_commit(struct dmrepl_batch *b);

/* Write everything buffered as one batch (input paused, or ended). As above. */
int dmrepl_batch_flush(struct dmrepl_batch *b, int fd);

/*
 * One batch of len bytes to a secondary's fd, one write(2) (retried on
 * EINTR): 0, -errno, or -EIO for a short write. *written gets what write(2)
 * returned. The write of dmrepl_batch_add() and _flush(), for sinks too.
 */
int dmrepl_batch_write(int fd, const void *buf, size_t len, long *written);

/* ------------------------------------------------------------------ */
/* Shipping a primary's ring to a replica                               */
/* ------------------------------------------------------------------ */

/*
 * The engine of "repltool replicate" and repld: the records of a primary's
 * ring that the replica has not applied are sealed and batched to a sink
 * (batch.send); the ones it has applied are released unsent. The ring is
 * released only up to what the replica acknowledged as applied, so a
 * record leaves the ring only once it is durable on the replica (or was
 * before this run started).
 *
 * Applied means a (stream, sequence) pair, never a sequence alone: a
 * record is skipped only if it is of the replica's applied stream (or the
 * replica has applied nothing yet) and at or below its applied sequence.
 */
struct dmrepl_ship {
	struct dmrepl_ring *ring;
	struct dmrepl_batch batch;	/* batch.send and send_arg: the sink */
	__u64 peer_stream;		/* the replica's applied point at start */
	__u64 peer_seq;
	__u64 start_next_seq;		/* the ring's next sequence at start */
	__u64 start_released_seq;	/* and its released sequence */
	__u64 skipped;			/* records at or below it: not sent */
	__u64 zero_bytes;		/* resynced data sent as ZERO records */
	__u64 acked_seq;		/* applied or skipped: may be released */
	__u64 released_seq;		/* released by this shipper */
	__u64 skipped_seq;		/* the last record skipped */
	__u64 drained_bytes;		/* ring bytes released as acknowledged */
};

/* 0, -EINVAL (limit) or -ENOMEM. The caller sets batch.send afterwards. */
int dmrepl_ship_init(struct dmrepl_ship *s, struct dmrepl_ring *ring, size_t batch_limit);
void dmrepl_ship_free(struct dmrepl_ship *s);

/*
 * Start from the replica's applied (stream, seq). Returns 0, -ESTALE when
 * the replica applied a sequence of the ring's own stream that the
 * primary never reserved (the replica of another group?), -ERANGE when
 * the records after its applied point were released already (another
 * consumer took them: only a resync brings it back), or -errno of
 * DM_REPL_IOC_GROUP_INFO.
 */
int dmrepl_ship_start(struct dmrepl_ship *s, __u64 peer_stream, __u64 peer_seq);

/*
 * Ship the records that are ready: until the ring has no more, then the
 * partial batch is sent too; or until max_batches batches went to the sink
 * (0: no limit), then the partial batch stays buffered. Returns 0, a
 * negative errno of the sink, or of dmrepl_ring_next_slot() for a corrupt
 * ring (dmrepl_ring_why() says why).
 */
int dmrepl_ship_pump(struct dmrepl_ship *s, unsigned int max_batches);

/* The replica applied every record up to seq (an ack). */
void dmrepl_ship_acked(struct dmrepl_ship *s, __u64 seq);

/*
 * Release the ring up to what is acked, adding the bytes freed to
 * drained_bytes unless the release ends at a skipped record. 0 or -errno
 * of dmrepl_ring_release().
 */
int dmrepl_ship_release(struct dmrepl_ship *s);

/* ------------------------------------------------------------------ */
/* Resync: a primary's dirty regions into its ring                     */
/* ------------------------------------------------------------------ */

/*
 * Walks the dirty bitmaps of a primary group's volumes and puts each dirty
 * region in the ring (DM_REPL_IOC_RESYNC), whoever ships the ring. The
 * bitmaps are copied once a pass; a region cleaned meanwhile costs one
 * ioctl that does nothing, one dirtied meanwhile waits for the next pass.
 */
struct dmrepl_resync {
	int fd;				/* the group's device */
	struct dm_repl_group_info info;	/* as of the last step */
	unsigned int vol;		/* cursor: entry of info.volumes */
	unsigned int vol_index;		/* and the volume index it had */
	__u64 region;			/* cursor: next region to look at */
	unsigned long *bits;		/* the cursor volume's bitmap */
	size_t bits_size;
	bool loaded;			/* bits are the cursor volume's */
	__u64 regions, bytes;		/* put in the ring */
	bool ended;			/* a RESYNC_END went out */
	/*
	 * The last step found no room for want of entries (EBUSY): released
	 * ones leave in the kernel's work item, which no event announces, so
	 * the caller tries again shortly (DMREPL_RESYNC_BUSY_RETRY_MS).
	 */
	bool busy;
	/*
	 * Regions the replica asked for (its own dirty regions, a rejoin):
	 * one bitmap per volume index, resent (RESYNCF_ANY) before the
	 * group's own dirty regions.
	 */
	unsigned long *asked[DM_REPL_MAX_VOLUMES];
	__u64 asked_regions[DM_REPL_MAX_VOLUMES];	/* bits in asked[] */
	__u64 asked_left;		/* bits set in all of them */
	unsigned int asked_vol;		/* cursor: volume index */
	__u64 asked_next;		/* cursor: region */
};

void dmrepl_resync_init(struct dmrepl_resync *r, int fd);
void dmrepl_resync_free(struct dmrepl_resync *r);

/*
 * The replica asks for @n regions of the volume of index @volume, which has
 * @nr_regions regions now (its bitmap's; more than at an earlier call if
 * it grew): they are resent before the group's dirty regions. 0, -EINVAL
 * (a region at or past nr_regions), -ENOMEM.
 */
int dmrepl_resync_ask(struct dmrepl_resync *r, unsigned int volume, __u64 nr_regions,
		      const __u64 *regions, unsigned int n);

/*
 * dmrepl_resync_ask() of the regions the replica names in its own region
 * size, @theirs sectors, where ours is @ours (metadata made with another
 * --region-kb): each of ours that overlaps one of theirs, below our
 * @nr_regions; regions past our end are left out. Their count into
 * *asked. 0, -EINVAL (a size of 0), -ENOMEM.
 */
int dmrepl_resync_ask_theirs(struct dmrepl_resync *r, unsigned int volume, __u64 nr_regions,
			     __u32 ours, __u32 theirs, const __u64 *regions, unsigned int n,
			     unsigned int *asked);

/*
 * The first region set in @bits (@nr_regions regions of @region_sectors, a
 * volume of @sectors) that reaches past sector @limit, the primary's end:
 * no RESYNC from the primary covers it whole, so a replica could never
 * clear it. @nr_regions when there is none (or @sectors is not past @limit).
 */
__u64 dmrepl_dirty_past(const unsigned long *bits, __u64 nr_regions, __u32 region_sectors,
			__u64 sectors, __u64 limit);

/*
 * Put up to @max regions asked for, then dirty regions, in the ring while it
 * is at most @fill_pct full, so that the stream keeps its place. Returns the
 * regions put in (0: none could go now, or nothing is asked for and the group
 * is not behind: info.state says which),
 * or -errno of an ioctl (-EPERM: not a primary; -EFBIG: a region larger
 * than half the ring; -ENODEV: behind with no volume).
 */
int dmrepl_resync_step(struct dmrepl_resync *r, unsigned int max, unsigned int fill_pct);

/*
 * One volume's dirty bitmap (DM_REPL_IOC_GET_BITMAP; any role) into *bits,
 * grown (realloc) to v->nr_regions bits if *size is short. 0 or -errno.
 */
int dmrepl_bitmap_get(int fd, const struct dm_repl_volume_info *v, unsigned long **bits,
		      size_t *size);
bool dmrepl_bit_test(const unsigned long *bits, __u64 n);

#define DMREPL_RESYNC_BUSY_RETRY_MS	10

/* Regions still to go: dirty in the bitmaps, or in the ring unreleased. */
__u64 dmrepl_resync_left(const struct dm_repl_group_info *info);

/*
 * A primary's DM_REPL_BEHIND_* reasons in words, comma-separated, in @buf:
 * overflow, failed-write, al-full, loaded-dirty, crash, grown, unreleased,
 * marked, resync-failed; "bit-N" for one this build does not know; "-" for
 * none. Cut short (ending in "...") if @len is too small. Returns @buf.
 */
const char *dmrepl_behind_reasons(__u32 why, char *buf, size_t len);

/*
 * The resync's share of the link, predicted: a write captured now waits
 * behind the bytes queued ahead of it (in the ring, sent or not, and not
 * yet acknowledged: the backlog) for about backlog / drain, the rate at
 * which acknowledgements free the backlog. A region goes while
 * (backlog + its bytes) / drain stays under DMREPL_RESYNC_PREDICT_PCT of
 * the lag target, or when there is no backlog at all (an idle link). The
 * drain is measured only over the time a backlog existed (an idle link's
 * ack rate is the offered load, not the capacity) and smoothed over
 * DMREPL_RESYNC_DRAIN_TAU_MS; before a first measurement a region goes
 * only into an empty backlog. The lag observed (the age of the oldest
 * unacknowledged record) stays a safety: past the target the resync is
 * held. Whatever holds it, a region still goes at DMREPL_RESYNC_MIN_RATE
 * (a resync always ends); the rate limit, when set, is a token bucket no
 * region passes (it wins over the floor). Pure logic: the caller gives
 * the clock, the lag, the backlog and the bytes acknowledged so far.
 */
#define DMREPL_RESYNC_TICK_MS	100
#define DMREPL_RESYNC_MIN_RATE	(64ULL << 10)
#define DMREPL_RESYNC_PREDICT_PCT 75
#define DMREPL_RESYNC_DRAIN_TAU_MS 2000

enum dmrepl_resync_why {
	DMREPL_RESYNC_FREE,	/* not held back */
	DMREPL_RESYNC_LAG,	/* the stream's lag is past the target */
	DMREPL_RESYNC_RATE,	/* at the rate limit */
	DMREPL_RESYNC_BACKLOG,	/* the backlog would drain past the target's share */
	DMREPL_RESYNC_UNMEASURED, /* a backlog, and no drain rate measured yet */
};

struct dmrepl_resync_ctl {
	__u64 rate_max;		/* bytes/s, 0: no limit */
	__u64 lag_target_ns;
	double budget;		/* bytes/s it allows now: the drain, or the floor held */
	double tokens;		/* the rate limit's bucket (rate_max only) */
	double floor_tokens;	/* the floor's bucket, spent by regions it let go */
	bool via_floor;		/* the region may() let go is the floor's */
	/* The drain: smoothed sums of bytes acknowledged and time with a backlog. */
	double drain_bytes, drain_ns;
	__u64 busy_ns;		/* with a backlog since the last acknowledgement */
	__u64 backlog;		/* bytes queued ahead of a write captured now */
	__u64 acked;		/* bytes acknowledged, as last told */
	__u64 region;		/* bytes of the last region */
	__u64 last_ns;
	__u64 lag_ns;		/* as last told */
	bool lag_high;		/* lag_ns is past the target */
	bool paused;		/* no resync since the last update */
	enum dmrepl_resync_why why;	/* what held it back last */
	__u64 lag_holds;	/* times the lag passed the target */
	__u64 waits;		/* times it was held back, by why */
	__u64 rate_waits;	/* of which at the rate limit */
};

void dmrepl_resync_ctl_init(struct dmrepl_resync_ctl *c, __u64 rate_max, __u64 lag_target_ns,
			    __u64 now_ns);

/*
 * The clock moved to now_ns; the stream's lag is lag_ns, backlog bytes
 * are queued and not acknowledged, acked bytes were acknowledged so far
 * (a counter that only grows): refill, measure.
 */
void dmrepl_resync_ctl_update(struct dmrepl_resync_ctl *c, __u64 now_ns, __u64 lag_ns,
			      __u64 backlog, __u64 acked);

/*
 * No resync for now (the group is not behind): the controller is not told
 * meanwhile, so the next update starts a fresh interval, not a sample over
 * the pause. Updates of a resync that runs are samples however far apart
 * (a slow link acknowledges large batches seconds apart).
 */
void dmrepl_resync_ctl_pause(struct dmrepl_resync_ctl *c);

/* The drain rate in bytes/s, 0 before a first measurement. */
double dmrepl_resync_ctl_drain(const struct dmrepl_resync_ctl *c);

/* May a region go now? If not, notes why (and counts a wait). */
bool dmrepl_resync_ctl_may(struct dmrepl_resync_ctl *c);

/* A region of bytes went (into the backlog). */
void dmrepl_resync_ctl_spend(struct dmrepl_resync_ctl *c, __u64 bytes);

/* When a held region may go without news of the link (an ack): 0, now. */
__u64 dmrepl_resync_ctl_next_ns(const struct dmrepl_resync_ctl *c);

/*
 * Why it was held back last, in words ("stream lag 1.4 s > 1.0 s",
 * "backlog 0.9 MiB drains in 0.9 s > 0.8 s"), or "-".
 */
const char *dmrepl_resync_ctl_why(const struct dmrepl_resync_ctl *c, char *buf, size_t len);

/* The ring is more than @fill_pct full (of its data area). */
bool dmrepl_ring_over(const struct dm_repl_group_info *info, unsigned int fill_pct);

/* ------------------------------------------------------------------ */
/* Verify: a primary's regions hashed into its ring                    */
/* ------------------------------------------------------------------ */

_Static_assert(sizeof(struct dm_repl_verify_mismatch) == 24, "verify mismatch size");

/*
 * One pass over every region of every volume of a primary group: a VERIFY
 * record each (DM_REPL_IOC_RESYNC with RESYNCF_VERIFY), whoever ships the
 * ring; the replica compares. A region whose record came out RACED (a
 * write into it during its read, or dirty) is tried again, up to
 * DMREPL_VERIFY_TRIES times in all, then counted as not compared.
 */
#define DMREPL_VERIFY_TRIES	4

struct dmrepl_verify {
	int fd;				/* the primary group's device */
	struct dm_repl_group_info info;	/* as of the start of the pass */
	unsigned int vol;		/* cursor: entry of info.volumes */
	__u64 region;			/* cursor: next region */
	unsigned int tries;		/* RACED records of the cursor region */
	__u64 first_seq, last_seq;	/* of the pass's VERIFY records */
	__u64 regions, bytes;		/* put in, not RACED */
	__u64 raced;			/* RACED records put in */
	__u64 not_compared;		/* regions given up after the tries */
	bool done;			/* the pass went over every region */
};

/* 0, or -errno of DM_REPL_IOC_GROUP_INFO (-EPERM: not a primary). */
int dmrepl_verify_init(struct dmrepl_verify *v, int fd);

/*
 * Put up to @max VERIFY records in the ring while it is at most @fill_pct
 * full. Returns how many went in (0: no room now, or v->done), or -errno
 * of the ioctl (-ENOENT: a volume went away).
 */
int dmrepl_verify_step(struct dmrepl_verify *v, unsigned int max, unsigned int fill_pct);

/* The region of @info's volume index @volume that holds @sector; -1: none. */
long long dmrepl_verify_region_of(const struct dm_repl_group_info *info, unsigned int volume,
				  __u64 sector);

/* ------------------------------------------------------------------ */
/* Metadata device                                                     */
/* ------------------------------------------------------------------ */

_Static_assert(sizeof(struct dm_repl_meta_sb) == DM_REPL_META_SB_SIZE,
	       "metadata superblock size");
_Static_assert(offsetof(struct dm_repl_meta_sb, bm_sectors) == 184,
	       "metadata superblock layout");
_Static_assert(offsetof(struct dm_repl_meta_sb, volume) == 192,
	       "metadata superblock volume field");
_Static_assert(sizeof(struct dm_repl_meta_al_slot) == DM_REPL_META_BLOCK_SIZE,
	       "activity log slot size");
_Static_assert(offsetof(struct dm_repl_meta_al_slot, extents) == DM_REPL_META_HDR_SIZE,
	       "activity log slot header size");
_Static_assert(sizeof(struct dm_repl_meta_bm_block) == DM_REPL_META_BLOCK_SIZE,
	       "bitmap block size");
_Static_assert(offsetof(struct dm_repl_meta_bm_block, bits) == DM_REPL_META_HDR_SIZE,
	       "bitmap block header size");

/*
 * Blocks passed to dmrepl_meta_* are DM_REPL_META_BLOCK_SIZE bytes, 8-byte
 * aligned (malloc() and posix_memalign() buffers are).
 */

/* Defaults of "repltool meta create". */
#define DMREPL_META_REGION_SECTORS_DEFAULT 128		/* 64 KiB, as the target */
#define DMREPL_META_EXTENT_SECTORS_DEFAULT 8192		/* 4 MiB */
#define DMREPL_META_AL_SLOTS_DEFAULT	16
#define DMREPL_META_HOT_EXTENTS_DEFAULT	512

/* What a metadata device is made for; host byte order. */
struct dmrepl_meta_geom {
	__u64 data_sectors;
	__u32 region_sectors;
	__u32 extent_sectors;
	__u32 al_slots;
	__u32 hot_extents;
};

/* Where things are, derived from a geometry; sectors unless named. */
struct dmrepl_meta_layout {
	__u64 al_offset;
	__u64 al_sectors;
	__u64 bm_offset;
	__u64 bm_sectors;
	__u64 bm_blocks;
	__u64 nr_regions;	/* bits in the bitmap */
	__u64 nr_extents;	/* extent numbers an AL transaction may name */
	__u64 end;		/* first sector after the bitmap: the minimum size */
};

/*
 * Check a geometry against the bounds of version 1 and derive the layout
 * "repltool meta create" writes (superblock, AL right after it, bitmap right
 * after the AL). Returns 0 or -EINVAL with *why.
 */
int dmrepl_meta_layout(const struct dmrepl_meta_geom *g,
		       struct dmrepl_meta_layout *l, const char **why);

/*
 * The smallest metadata device, in bytes, for a data device of data_sectors
 * with regions of region_sectors and al_slots AL slots. Returns 0 or
 * -EINVAL when one of them is out of bounds.
 */
int dmrepl_meta_min_bytes(__u64 data_sectors, __u32 region_sectors,
			  __u32 al_slots, __u64 *bytes);

/* A superblock's fields in host byte order. */
struct dmrepl_meta_sb {
	__u32 version;
	__u32 crc;		/* as stored; dmrepl_meta_sb_encode() computes its own */
	__u32 flags;
	__u8 uuid[DM_REPL_META_UUID_SIZE];
	char group[DM_REPL_GROUP_NAME_MAX];
	__u32 role;
	__u32 region_sectors;
	__u64 data_sectors;
	__u64 gen_current;
	__u64 gen_bitmap;
	__u64 gen_history[DM_REPL_META_GEN_HISTORY];
	__u64 released_seq;
	__u64 applied_seq;
	__u64 ctime;
	__u64 al_offset;
	__u32 al_slots;
	__u32 al_slot_bytes;
	__u32 extent_sectors;
	__u32 hot_extents;
	__u64 bm_offset;
	__u64 bm_sectors;
	__u32 volume;		/* index in the group's records, < DM_REPL_MAX_VOLUMES */
	/* Streams and where they are (see struct dm_repl_meta_sb). */
	__u64 stream;
	__u64 stream_history[DM_REPL_STREAM_HISTORY - 1];
	__u64 seq_next;
	__u64 next_epoch;
	__u64 consistent_seq;
	__u64 consistent_time_ns;
};

/* The geometry a superblock describes (not checked). */
void dmrepl_meta_sb_geom(const struct dmrepl_meta_sb *sb, struct dmrepl_meta_geom *g);

/*
 * A fresh superblock: version 1, clean, the canonical layout of g, a random
 * volume UUID and current generation (getrandom(2)), everything else zero
 * (volume index 0: set sb->volume afterwards for another).
 * role is an enum dm_repl_meta_role, ctime seconds since the Epoch. Returns
 * 0, -EINVAL with *why for a bad group name, role or geometry, or -errno of
 * getrandom().
 */
int dmrepl_meta_sb_init(struct dmrepl_meta_sb *sb, const char *group,
			unsigned int role, const struct dmrepl_meta_geom *g,
			__u64 ctime, const char **why);

/* Encode sb into block (DM_REPL_META_BLOCK_SIZE bytes) and seal its crc. */
void dmrepl_meta_sb_encode(const struct dmrepl_meta_sb *sb, void *block);

/*
 * Decode block 0. Returns 0; -EMEDIUMTYPE when the magic is not
 * DM_REPL_META_SB_MAGIC (not dm-repl metadata); -EPROTO for a version this
 * library does not read (0 or newer than DM_REPL_META_VERSION); -EBADMSG for
 * a checksum mismatch, with *sb filled all the same; -EINVAL when a reserved
 * byte (reserved0, reserved, bytes 512..4095) is not zero. *why names the
 * problem. Field rules are dmrepl_meta_sb_check()'s.
 */
int dmrepl_meta_sb_decode(const void *block, struct dmrepl_meta_sb *sb,
			  const char **why);

/*
 * The field rules of version 1, from rule *next on (start with 0). Returns
 * 0 when none fails; else -EINVAL, *why, *field (the offending field's name,
 * as in struct dm_repl_meta_sb) and *next past that rule, so that calling
 * again finds the next problem. Rules that depend on a broken field are
 * skipped rather than reported twice.
 */
int dmrepl_meta_sb_check(const struct dmrepl_meta_sb *sb, unsigned int *next,
			 const char **why, const char **field);

/* Byte offset of a field named by dmrepl_meta_sb_check(); 0 if unknown. */
unsigned int dmrepl_meta_sb_field_offset(const char *field);

/* The layout a (checked) superblock describes. */
void dmrepl_meta_sb_layout(const struct dmrepl_meta_sb *sb, struct dmrepl_meta_layout *l);

/*
 * Does a device of dev_bytes hold the whole layout? 0 or -ENOSPC with *why;
 * *need (if not NULL) gets the bytes the layout needs.
 */
int dmrepl_meta_sb_fits(const struct dmrepl_meta_sb *sb, __u64 dev_bytes,
			__u64 *need, const char **why);

/*
 * A group name field (DM_REPL_GROUP_NAME_MAX bytes) as the kernel takes it:
 * 1-31 of [A-Za-z0-9_.+-], not starting with a dot, NUL-padded.
 */
bool dmrepl_group_name_ok(const char name[DM_REPL_GROUP_NAME_MAX]);

/* "primary", "secondary", or NULL. */
const char *dmrepl_meta_role_name(unsigned int role);
/* enum dm_repl_meta_role of a name, or 0. */
unsigned int dmrepl_meta_role_parse(const char *name);

#define DMREPL_META_UUID_STR_LEN 37	/* 8-4-4-4-12 hex digits and the NUL */
void dmrepl_meta_uuid_str(const __u8 *uuid, char *buf);

/* One activity log transaction, host byte order. */
struct dmrepl_meta_al_txn {
	__u64 seq;
	__u32 nr_extents;
	__u32 extents[DM_REPL_AL_SLOT_EXTENTS];
};

/*
 * Encode a transaction of the volume sb describes into block and seal it.
 * Returns 0 or -EINVAL (seq 0, more than hot_extents extents).
 */
int dmrepl_meta_al_encode(void *block, const struct dmrepl_meta_sb *sb,
			  const struct dmrepl_meta_al_txn *t);

/*
 * Decode AL slot index. Returns 1 with *t; 0 for a slot never written (all
 * zero); -EBADMSG when it does not hold an intact transaction (bad magic or
 * checksum mismatch: what a torn write leaves); -EINVAL for an intact one
 * that breaks a rule (reserved bytes, UUID, seq not belonging in this slot,
 * nr_extents, an extent beyond the device, a used entry after nr_extents).
 * *why names the problem. sb must have passed dmrepl_meta_sb_check().
 */
int dmrepl_meta_al_decode(const void *block, const struct dmrepl_meta_sb *sb,
			  __u32 index, struct dmrepl_meta_al_txn *t, const char **why);

/* What a slot means for recovery, given the highest valid seq in the ring. */
enum dmrepl_meta_al_verdict {
	DMREPL_AL_CURRENT,	/* valid, the latest of its slot: its extents count */
	DMREPL_AL_UNUSED,	/* all zero, and no transaction belongs there yet */
	DMREPL_AL_TORN,		/* not intact (-EBADMSG) where the next transaction goes */
	DMREPL_AL_BAD,		/* anything else: the AL cannot be trusted */
};

/*
 * Judge slot index: decoded is what dmrepl_meta_al_decode() returned for it
 * (seq its transaction's seq when decoded is 1), max_seq the highest seq of
 * every slot that decoded to 1 (0 if none). For DMREPL_AL_BAD of a slot that
 * decoded, *why says what is wrong (a stale or missing transaction); for
 * the others *why is left alone.
 */
enum dmrepl_meta_al_verdict dmrepl_meta_al_judge(const struct dmrepl_meta_sb *sb,
						 __u32 index, int decoded, __u64 seq,
						 __u64 max_seq, const char **why);

/*
 * Encode bitmap block index of the volume sb describes, with the
 * DM_REPL_BM_BLOCK_BITS / 8 bytes at bits (NULL: all clean), and seal it.
 */
void dmrepl_meta_bm_encode(void *block, const struct dmrepl_meta_sb *sb,
			   __u64 index, const void *bits);

/* The same, with every region the block stands for dirty. */
void dmrepl_meta_bm_encode_dirty(void *block, const struct dmrepl_meta_sb *sb,
				 __u64 index);

/*
 * Decode bitmap block index: magic, crc, index, UUID, reserved bytes, bits
 * past the last region. Returns 0 and the number of dirty regions in
 * *dirty, -EBADMSG for a checksum mismatch or -EINVAL, with *why.
 */
int dmrepl_meta_bm_decode(const void *block, const struct dmrepl_meta_sb *sb,
			  __u64 index, __u64 *dirty, const char **why);

#ifdef __cplusplus
}
#endif

#endif /* DMREPL_H */
