/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * dm-repl: the ABI between the "repl" device-mapper target and userspace.
 *
 * Three things live here and nowhere else:
 *  - the change record (header + payload), which is the same bytes in the
 *    primary's ring, in a "repltool dump --raw" stream and on the wire;
 *    little-endian, explicit widths, reserved space, crc32c;
 *  - the ring as mapped by the consumer: a control page, then the data area
 *    mapped twice so that no record ever appears to wrap;
 *  - the ioctls of the group's character device /dev/dm-repl/<group>.
 *
 * Any change to a layout below bumps DM_REPL_ABI_VERSION. Both sides check
 * it: the module in every ioctl argument, userspace in the control page.
 */
#ifndef _UAPI_LINUX_DM_REPL_H
#define _UAPI_LINUX_DM_REPL_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define DM_REPL_ABI_VERSION	4

#define DM_REPL_GROUP_NAME_MAX	32	/* including the terminating NUL */
#define DM_REPL_DEV_DIR		"/dev/dm-repl"

/* ------------------------------------------------------------------ */
/* Change records                                                      */
/* ------------------------------------------------------------------ */

#define DM_REPL_REC_MAGIC	0x4c504552	/* "REPL" read as LE bytes */
#define DM_REPL_REC_VERSION	2
#define DM_REPL_REC_ALIGN	8

enum dm_repl_rec_type {
	DM_REPL_REC_WRITE	 = 1,	/* payload: nbytes of data at sector */
	DM_REPL_REC_DISCARD	 = 2,	/* no payload; nbytes discarded */
	DM_REPL_REC_WRITE_ZEROES = 3,	/* no payload; nbytes zeroed */
	DM_REPL_REC_FLUSH	 = 4,	/* last record of its epoch */
	DM_REPL_REC_MARKER	 = 5,	/* payload: label, no NUL */
	DM_REPL_REC_RESYNC	 = 6,	/* payload: a whole region's data */
	DM_REPL_REC_STREAM	 = 7,	/* first of a stream: struct dm_repl_stream_link */
	DM_REPL_REC_GAP		 = 8,	/* no payload: writes before it were not captured */
	DM_REPL_REC_VERIFY	 = 9,	/* payload: struct dm_repl_verify_hash */
	DM_REPL_REC_TYPE_MAX	 = DM_REPL_REC_VERIFY,
};

/*
 * Streams. A stream is one incarnation of a primary group's ring: from a
 * load of the group as primary (or a promotion) to its removal (or
 * demotion). Its identifier, a random non-zero 64-bit number, is in every
 * record. Sequences are never reused by a group: a new stream goes on
 * above every sequence the previous one may have used. The first record of
 * a stream is a STREAM record whose payload names the streams before it,
 * newest first (zero: none), and which carries DM_REPL_RECF_GAP when
 * records of the previous stream may have been lost (a crash, records not
 * released at removal, a dirty bitmap). A secondary takes a new stream only
 * from its STREAM record, and only if that names the stream it applied
 * last. A GAP record says that writes between the record before it and
 * itself went only to the primary's bitmap (the ring was full). See
 * Documentation/dm-repl.md, "Streams".
 */
#define DM_REPL_STREAM_HISTORY	4

struct dm_repl_stream_link {
	__le64 prev[DM_REPL_STREAM_HISTORY];	/* newest first, 0: none */
};

/* Record flags (dm_repl_rec.flags). */
#define DM_REPL_RECF_FUA	(1U << 0)	/* the write carried REQ_FUA */
#define DM_REPL_RECF_RESYNC_END	(1U << 1)	/* RESYNC: last region of a resync */
/*
 * The end of a resync is a RESYNC record of its own: RESYNC_END, nbytes 0,
 * and as payload the volumes the primary had then (bit N: volume index N).
 * A replica is whole there only if it names every volume the replica has.
 */
struct dm_repl_resync_end {
	__le64 volumes;
};
/*
 * VOID: the write failed on the primary (its ring slot was DISCARDED):
 * nothing is applied for it, only its sequence is consumed; the primary
 * marked its range dirty. A VOID record is its header alone (payload_len 0,
 * len 80), of any type, with the original type, sector and nbytes. The
 * module never sets it: whoever copies a DISCARDED slot out of the ring
 * writes its VOID form, so that sequences stay contiguous.
 */
#define DM_REPL_RECF_VOID	(1U << 2)
/* STREAM: the previous stream may have lost records (see above). */
#define DM_REPL_RECF_GAP	(1U << 3)
/*
 * ZERO: a RESYNC record whose region read as zeros on the primary, sent
 * without its payload (payload_len 0, len 80, nbytes kept: at most
 * DM_REPL_REC_PAYLOAD_MAX). The replica zeroes the range, leaving
 * unwritten what reads as zeros already (a thin or sparse volume stays
 * unallocated). The ring never holds it: whoever copies a RESYNC record
 * out of the ring may write this form of it, as for VOID.
 */
#define DM_REPL_RECF_ZERO	(1U << 4)
/* VERIFY: a write to the range raced the read: the hash is not compared. */
#define DM_REPL_RECF_RACED	(1U << 5)
#define DM_REPL_RECF_KNOWN	(DM_REPL_RECF_FUA | DM_REPL_RECF_RESYNC_END | \
				 DM_REPL_RECF_VOID | DM_REPL_RECF_GAP | \
				 DM_REPL_RECF_ZERO | DM_REPL_RECF_RACED)

/*
 * Online verify (Documentation/dm-repl.md, "Verify"). A VERIFY record at
 * sequence S covers nbytes (a whole region, at most
 * DM_REPL_VERIFY_NBYTES_MAX) at sector of its volume and carries the
 * SHA-256 of what the primary's data device held there once every write
 * before S had completed. The replica, once it has applied every record
 * before S, hashes the same range of its own data device and compares.
 * RACED: a write captured after S (or a dirty region) may be in the
 * primary's hash: not compared. A VERIFY changes no data and no state.
 */
#define DM_REPL_VERIFY_HASH_SIZE	32
#define DM_REPL_VERIFY_NBYTES_MAX	(1U << 30)

struct dm_repl_verify_hash {
	__u8 sha256[DM_REPL_VERIFY_HASH_SIZE];
};

#define DM_REPL_MARKER_LABEL_MAX 64

/*
 * The record header. "crc" is crc32c (Castagnoli), seeded with ~0 and not
 * inverted at the end (the kernel's crc32c() convention, as in ext4), over
 * the header with crc set to 0 and then over payload_len bytes of payload.
 * "len" is the whole record, header + payload + padding to
 * DM_REPL_REC_ALIGN; the padding is zero.
 *
 * In the primary's ring a record is not yet sealed: its crc is 0, so that
 * the copy of the payload is the only extra work on the VM's write path.
 * Whoever copies a record out of the ring (a raw stream, the shipper) seals
 * it; every record outside the ring carries its crc.
 */
struct dm_repl_rec {
	__le32 magic;		/* DM_REPL_REC_MAGIC */
	__le16 type;		/* enum dm_repl_rec_type */
	__le16 flags;		/* DM_REPL_RECF_* */
	__le32 len;		/* header + payload + padding, in bytes */
	__le32 payload_len;	/* bytes of payload after the header */
	__le64 seq;		/* group-wide, strictly increasing */
	__le64 epoch;		/* flush epoch this record belongs to */
	__le64 sector;		/* 512-byte sector on the volume */
	__le32 nbytes;		/* bytes of the volume covered */
	__le16 volume;		/* volume index within the group */
	__le16 version;		/* DM_REPL_REC_VERSION */
	__le64 time_ns;		/* CLOCK_REALTIME_COARSE at capture */
	__le32 crc;		/* see above */
	__le32 group_tag;	/* dm_repl_group_tag() of the source group */
	__le64 stream;		/* the stream it belongs to, never 0 */
	__le64 reserved;	/* zero */
};

#define DM_REPL_REC_HDR_SIZE	80

/*
 * group_tag is crc32c (seeded with ~0, not inverted) of the name of the
 * primary's group, without its NUL. A secondary applies only records whose
 * tag is its source's (the table's "source" option, by default its own
 * group name), so that a stream fed to the wrong group is refused before
 * any of it reaches a disk. It guards against mistakes, not attacks (the
 * transport authenticates its peer).
 */
/* Largest payload a record carries: one bio of at most this size. */
#define DM_REPL_REC_PAYLOAD_MAX	(1U << 20)

/* ------------------------------------------------------------------ */
/* The ring                                                            */
/* ------------------------------------------------------------------ */

/*
 * mmap() of the group's character device, read-only, offset 0:
 *
 *   [control page][data area (data_size bytes)][the same data area again]
 *
 * Positions are byte counters that only grow; a position's offset in the
 * data area is pos & (data_size - 1) (data_size is a power of two). Every
 * record in the data area is preceded by a struct dm_repl_slot. Because the
 * data area is mapped twice, a slot that starts near the end is readable in
 * one piece.
 *
 * Consumer protocol: load producer_pos with acquire semantics; from the
 * consumer's own read position up to it, load each slot's len_flags with
 * acquire semantics; stop at a BUSY slot (reserved, not yet committed); a
 * DISCARDED one (its write failed) keeps its header readable, but not
 * necessarily its payload: its sequence can be released, and outside the
 * ring it becomes a DM_REPL_RECF_VOID record; otherwise the record follows
 * the slot. The consumer never writes the mapping; it frees
 * space with DM_REPL_IOC_RELEASE once the records are durable elsewhere.
 */
#define DM_REPL_CTL_MAGIC	0x4c525044	/* "DPRL" read as LE bytes */

struct dm_repl_ring_ctl {
	__u32 magic;		/* DM_REPL_CTL_MAGIC */
	__u32 abi_version;	/* DM_REPL_ABI_VERSION */
	__u32 ctl_size;		/* bytes before the data area (one page) */
	__u32 slot_size;	/* sizeof(struct dm_repl_slot) */
	__u64 data_size;	/* bytes in the data area, a power of two */
	__u64 reserved0[5];

	/* Own cache line: moved by the kernel at every reservation. */
	__u64 producer_pos;	/* end of the last reserved slot */
	__u64 reserved1[7];

	/* Own cache line: moved by DM_REPL_IOC_RELEASE. */
	__u64 released_pos;	/* everything before it is free */
	__u64 released_seq;	/* highest released sequence */
	__u64 reserved2[6];
};

/* Slot header, in the ring only (host byte order): not part of a record. */
#define DM_REPL_SLOT_BUSY	(1U << 31)
#define DM_REPL_SLOT_DISCARDED	(1U << 30)
#define DM_REPL_SLOT_LEN_MASK	(DM_REPL_SLOT_DISCARDED - 1)

struct dm_repl_slot {
	__u32 len_flags;	/* record len | BUSY | DISCARDED */
	__u32 reserved;
};

/* ------------------------------------------------------------------ */
/* ioctls on /dev/dm-repl/<group>                                       */
/* ------------------------------------------------------------------ */

#define DM_REPL_IOC_MAGIC	0xd7

#define DM_REPL_MAX_VOLUMES	64

enum dm_repl_group_state {
	DM_REPL_STATE_UPTODATE	= 0,	/* every write is in the ring */
	DM_REPL_STATE_BEHIND	= 1,	/* some writes are only in the bitmap */
};

enum dm_repl_role {
	DM_REPL_ROLE_PRIMARY	= 1,	/* = DM_REPL_META_ROLE_PRIMARY */
	DM_REPL_ROLE_SECONDARY	= 2,
};

struct dm_repl_volume_info {
	__u64 sectors;		/* size of the volume */
	__u64 dirty_regions;	/* bits set in its dirty bitmap */
	__u64 nr_regions;	/* bits in its dirty bitmap */
	__u32 region_sectors;	/* sectors per bitmap region */
	__u32 index;		/* volume index used in records */
	__u32 dev_major;	/* the data device */
	__u32 dev_minor;
};

/* DM_REPL_IOC_GROUP_INFO: static facts and counters of the group. */
struct dm_repl_group_info {
	__u32 abi_version;	/* in: DM_REPL_ABI_VERSION; out: the module's */
	__u32 nr_volumes;	/* out: entries used in volumes[] */
	char name[DM_REPL_GROUP_NAME_MAX];
	__u64 data_size;	/* ring data area in bytes */
	__u64 mmap_size;	/* bytes to mmap: control page + 2 * data */
	__u32 state;		/* enum dm_repl_group_state */
	__u32 role;		/* enum dm_repl_role */

	__u64 next_seq;		/* sequence the next record will get */
	__u64 epoch;		/* current epoch */
	__u64 producer_pos;
	__u64 released_pos;
	__u64 released_seq;

	__u64 records;		/* next_seq - 1: lower after some promotions */
	__u64 record_bytes;	/* bytes reserved in the ring */
	__u64 discarded;	/* records marked DISCARDED (failed writes) */
	__u64 overflows;	/* writes sent to the bitmap for lack of room */
	__u64 block_waits;	/* overflow block: writes that waited */
	__u64 block_timeouts;	/* overflow block: waits that timed out */
	__u64 wakeups;		/* poll wake-ups issued */
	__u64 stream;		/* the ring's stream (primary) */
	/*
	 * Regions resynced not yet taken out of the resync: their records not
	 * released, or released and waiting for the kernel's work item (the
	 * data device's flush) to take them out: resync_regions_released.
	 */
	__u64 resync_regions;
	/* Bit N: volume index N left dirty; no resync ends before it is back. */
	__u64 departed_volumes;
	/* Regions put in the ring by DM_REPL_IOC_RESYNC since the group came. */
	__u64 resynced_regions;
	/*
	 * The group's generation identifiers (DRBD's UUIDs), the same on every
	 * volume's superblock: a promotion moves gen_current to the history
	 * and draws a new one; a secondary adopts its primary's
	 * (DM_REPL_IOC_ADOPT_GEN); 0 is "none" (a fresh or rejoining replica).
	 */
	__u64 gen_current;
	__u64 gen_history[4];		/* DM_REPL_META_GEN_HISTORY, newest first */
	__u32 flags;			/* DM_REPL_GROUPF_* */
	/* Primary: why it is behind (DM_REPL_BEHIND_*), since it was up to date. */
	__u32 behind_reasons;
	/*
	 * Bitmap blocks holding regions whose resync was released, not yet
	 * written to the metadata (a crash resends those regions); and the
	 * blocks so written since the group came.
	 */
	__u64 resync_blocks_unsaved;
	__u64 resync_blocks_saved;
	__u64 resync_regions_released;
	/*
	 * Bit N: volume index N's resync is held: its data device failed to
	 * flush after a resync (its regions are dirty again), and
	 * DM_REPL_IOC_RESYNC refuses its regions with EAGAIN for a while: 1 s
	 * after the first failure, twice as long after each next one in a row
	 * (a failure during a hold adds none), at most 300 s. A flush that
	 * succeeds ends it.
	 */
	__u64 resync_held_volumes;

	struct dm_repl_volume_info volumes[DM_REPL_MAX_VOLUMES];
};

/*
 * Secondary: "rejoin" was sent and the group has not yet taken a stream: it
 * takes the first record it is given, of any stream and sequence.
 */
#define DM_REPL_GROUPF_REJOIN	(1U << 0)

/* Why a primary is behind: what made regions dirty that the ring lacks. */
#define DM_REPL_BEHIND_OVERFLOW		(1U << 0) /* writes found no room in the ring */
#define DM_REPL_BEHIND_FAILED_WRITE	(1U << 1) /* a write failed on the data device */
#define DM_REPL_BEHIND_AL_FULL		(1U << 2) /* activity log full: writes marked */
#define DM_REPL_BEHIND_LOADED		(1U << 3) /* dirty in the metadata at load */
#define DM_REPL_BEHIND_CRASH		(1U << 4) /* not shut down cleanly: AL's extents */
#define DM_REPL_BEHIND_GROWN		(1U << 5) /* a volume grew: its new space */
#define DM_REPL_BEHIND_UNRELEASED	(1U << 6) /* records dropped unreleased */
#define DM_REPL_BEHIND_MARKED		(1U << 7) /* regions marked (DM_REPL_IOC_MARK) */
#define DM_REPL_BEHIND_RESYNC_FAILED	(1U << 8) /* a resync's read or flush failed */
/*
 * Secondary: seeded (DM_REPL_META_F_SEEDED) and inconsistent until a VERIFY
 * found every region equal (volumes[].dirty_regions are the ones left) or a
 * resync ended with a clean bitmap.
 */
#define DM_REPL_GROUPF_SEEDED	(1U << 1)

/*
 * DM_REPL_IOC_ADOPT_GEN (secondary): take the primary's generation
 * identifiers, written to every volume's superblock before it returns.
 * EPERM on a primary, EINVAL if gen_current is 0 or a reserved field is
 * not zero.
 */
struct dm_repl_gen {
	__u32 abi_version;	/* DM_REPL_ABI_VERSION */
	__u32 reserved0;	/* zero */
	__u64 gen_current;
	__u64 gen_history[4];	/* DM_REPL_META_GEN_HISTORY, newest first */
	__u64 reserved[2];	/* zero */
};

/* DM_REPL_IOC_GET_BITMAP: copy one volume's dirty bitmap out. */
struct dm_repl_bitmap_req {
	__u32 abi_version;	/* DM_REPL_ABI_VERSION */
	__u32 volume;		/* volume index */
	__u64 buf;		/* user pointer, little-endian bit order */
	__u64 buf_size;		/* in: bytes at buf; out: bytes of the bitmap */
	__u64 reserved[2];	/* zero */
};

/* ------------------------------------------------------------------ */
/* The apply path of a secondary                                        */
/* ------------------------------------------------------------------ */

/*
 * write(2) to a secondary group's device takes a batch: whole sealed
 * records, back to back, at most DM_REPL_APPLY_BATCH_MAX bytes. The batch is
 * checked whole before any of it reaches a disk; then it is applied one
 * epoch at a time (an epoch's writes, then a flush of the data devices, and
 * only then the next epoch's), and applied_seq is persisted in every
 * volume's superblock before write(2) returns the batch's size. Records at
 * or below applied_seq are skipped (a resent batch is harmless); the first
 * record above it must be applied_seq + 1, and each next one its
 * predecessor + 1. A refused batch returns the errno below, and the reason
 * and offending sequence are in struct dm_repl_apply_info:
 *
 *   EPERM    the group is not secondary
 *   EINVAL   malformed: truncated, bad magic, version, length, flags,
 *            type, reserved bits or epoch
 *   EMSGSIZE a batch or a record larger than the limits
 *   EBADMSG  a record's crc32c does not match
 *   EXDEV    a record of another group (group_tag)
 *   ENXIO    a volume index with no volume in the group
 *   ERANGE   a record past the end of its volume
 *   EILSEQ   a sequence gap or a sequence out of order, or a record of
 *            a stream the secondary cannot place
 *   EIO      a data or metadata device failed; nothing past the last
 *            persisted applied_seq counts as applied
 */
#define DM_REPL_APPLY_BATCH_MAX	(32U << 20)

enum dm_repl_apply_reason {
	DM_REPL_APPLY_OK = 0,
	DM_REPL_APPLY_TRUNCATED,	/* EINVAL: a record runs past the batch */
	DM_REPL_APPLY_BAD_MAGIC,	/* EINVAL */
	DM_REPL_APPLY_BAD_VERSION,	/* EINVAL */
	DM_REPL_APPLY_BAD_LENGTH,	/* EINVAL: len, payload_len, nbytes disagree */
	DM_REPL_APPLY_BAD_TYPE,		/* EINVAL */
	DM_REPL_APPLY_BAD_FLAGS,	/* EINVAL */
	DM_REPL_APPLY_BAD_EPOCH,	/* EINVAL: epochs out of order */
	DM_REPL_APPLY_TOO_LARGE,	/* EMSGSIZE */
	DM_REPL_APPLY_BAD_CRC,		/* EBADMSG */
	DM_REPL_APPLY_OTHER_GROUP,	/* EXDEV */
	DM_REPL_APPLY_NO_VOLUME,	/* ENXIO */
	DM_REPL_APPLY_OUT_OF_RANGE,	/* ERANGE */
	DM_REPL_APPLY_SEQ_GAP,		/* EILSEQ */
	DM_REPL_APPLY_IO_ERROR,		/* EIO */
	DM_REPL_APPLY_NOT_SECONDARY,	/* EPERM */
	DM_REPL_APPLY_UNKNOWN_STREAM,	/* EILSEQ: a stream it cannot place */
	DM_REPL_APPLY_REASON_MAX = DM_REPL_APPLY_UNKNOWN_STREAM,
};

/* Apply info flags. */
#define DM_REPL_APPLYF_INCONSISTENT (1U << 0)	/* a resync is under way */
/* Past a gap: not crash-consistent since consistent_seq (resync needed). */
#define DM_REPL_APPLYF_OUTDATED	(1U << 1)

#define DM_REPL_APPLY_MARKERS	8

/* A MARKER record that has been applied: a recovery point can be taken. */
struct dm_repl_applied_marker {
	__u64 seq;
	__u64 epoch;
	char label[DM_REPL_MARKER_LABEL_MAX + 8];	/* NUL-terminated */
};

/* DM_REPL_IOC_APPLY_INFO: where a secondary is, and why it refused. */
struct dm_repl_apply_info {
	__u32 abi_version;	/* in: DM_REPL_ABI_VERSION; out: the module's */
	__u32 flags;		/* DM_REPL_APPLYF_* */
	__u64 applied_seq;	/* persisted: every record up to it is on disk */
	__u64 applied_epoch;	/* epoch of the record at applied_seq */
	__u64 batches;		/* batches applied */
	__u64 records;		/* records applied */
	__u64 skipped;		/* records at or below applied_seq, skipped */
	__u64 bytes;		/* payload bytes written */
	__u64 flushes;		/* data device flushes */
	__u64 rejected;		/* batches refused */
	__u64 last_error_seq;	/* sequence of the record refused last */
	__s32 last_error;	/* its negative errno, 0 if none */
	__u32 last_reason;	/* its enum dm_repl_apply_reason */
	/* Entries used in markers[], newest last; none after a rejoin or demotion. */
	__u32 nr_markers;
	__u32 reserved0;
	struct dm_repl_applied_marker markers[DM_REPL_APPLY_MARKERS];
	__u64 applied_stream;	/* stream of the record at applied_seq */
	__u64 consistent_seq;	/* OUTDATED: the last consistent state */
	__u64 consistent_time_ns; /* OUTDATED: its capture time (realtime) */
	__u64 reserved1[5];
};

/*
 * DM_REPL_IOC_RESYNC: put one region of a primary's volume in the ring as
 * RESYNC records (its data as the data device holds it), and take it out of
 * the dirty bitmap; it counts as dirty in every bitmap save until the
 * consumer released the records. A clean region is left alone (records 0)
 * unless RESYNCF_ANY. The last record says RESYNC_END (and the ioctl
 * RESYNCF_END) when no region of the group was dirty after it: the replica
 * is whole there (as far as the primary knows: a replica that still has
 * regions of its own dirty stays inconsistent). So RESYNCF_ANY on a group
 * with a clean bitmap always ends with RESYNC_END when the ring has room
 * for it: the way to end a replica's rejoin once its regions are resent.
 * Errors: EPERM (not primary), ENOENT (no such volume),
 * EINVAL (a field), ENOSPC (no room in the ring), EBUSY (too many regions
 * unreleased), EAGAIN (the volume's resync is held: resync_held_volumes of
 * DM_REPL_IOC_GROUP_INFO), EIO (the read failed); the region stays dirty on
 * any.
 */
struct dm_repl_resync_req {
	__u32 abi_version;	/* DM_REPL_ABI_VERSION */
	__u32 volume;		/* volume index */
	__u64 region;		/* region index in its bitmap */
	__u32 flags;		/* in: RESYNCF_ANY; out: RESYNCF_END */
	__u32 records;		/* out: RESYNC records put in the ring */
	__u64 seq;		/* out: the sequence of the last of them */
	__u64 reserved[2];	/* zero */
};

#define DM_REPL_RESYNCF_ANY	(1U << 0)	/* in: even if the region is clean */
#define DM_REPL_RESYNCF_END	(1U << 1)	/* out: it ended the resync */
/*
 * in: put one VERIFY record for the region in the ring instead (clean or
 * dirty; the bitmaps are left alone; records 1, seq its sequence);
 * out: RESYNCF_RACED if it says RACED (retry the region later).
 */
#define DM_REPL_RESYNCF_VERIFY	(1U << 2)
#define DM_REPL_RESYNCF_RACED	(1U << 3)

/*
 * DM_REPL_IOC_VERIFY_INFO (secondary): what the VERIFY records applied
 * since the group was loaded found, counted as their batch is applied (a
 * refused batch counts nothing). The list keeps the latest
 * DM_REPL_VERIFY_LIST mismatches, oldest first; a verify pass reads those
 * with a sequence in its own range, before more than DM_REPL_VERIFY_LIST
 * newer ones come (the count of mismatches tells it if some did). The list
 * and last_seq start afresh when the replica takes another stream (a
 * rejoin, a demotion), whose sequences may be lower.
 */
#define DM_REPL_VERIFY_LIST	128

struct dm_repl_verify_mismatch {
	__u64 seq;		/* the VERIFY record's */
	__u64 sector;		/* its range on the volume */
	__u32 nbytes;
	__u16 volume;		/* volume index */
	__u16 reserved;
};

struct dm_repl_verify_info {
	__u32 abi_version;	/* in: DM_REPL_ABI_VERSION; out: the module's */
	__u32 nr;		/* out: entries used in list[] */
	__u64 compared;		/* VERIFY records compared */
	__u64 bytes;		/* bytes hashed on the replica */
	__u64 raced;		/* not compared: RACED, VOID, read failed, suspend */
	__u64 mismatches;	/* compared and different (list[] keeps the last) */
	__u64 last_seq;		/* sequence of the last VERIFY record applied */
	__u64 reserved[4];
	struct dm_repl_verify_mismatch list[DM_REPL_VERIFY_LIST];
};

/*
 * DM_REPL_IOC_MARK (a secondary's, on a file open for writing): the range
 * of a volume differs from the primary's (a verify found it). Every region
 * it touches is marked dirty, as this site's own, and the replica becomes
 * inconsistent, both on disk before the ioctl returns (the bitmap first).
 * Its repld asks the primary for its dirty regions (RESEND) at each
 * connection; each bit is cleared once the primary's RESYNC records have
 * replaced its region, and the replica is consistent again at the
 * RESYNC_END that finds its bitmap clean. Errors: EBADF (not open for
 * writing), EPERM (not a secondary), ENOENT (no such volume), EBUSY (the
 * volume has not joined the group yet: resume it), EINVAL (a field, or a
 * range empty or past the volume's end), EIO (a metadata write failed:
 * the mark may be on disk in part; the replica is inconsistent in memory
 * all the same, and its status says so).
 */
struct dm_repl_mark_req {
	__u32 abi_version;	/* DM_REPL_ABI_VERSION */
	__u32 volume;		/* volume index */
	__u64 sector;		/* the range's start */
	__u64 nr_sectors;	/* and length, 1 or more */
	__u64 reserved[2];	/* zero */
};

/* DM_REPL_IOC_RELEASE takes a pointer to the sequence to release up to. */
#define DM_REPL_IOC_GROUP_INFO	_IOWR(DM_REPL_IOC_MAGIC, 1, struct dm_repl_group_info)
#define DM_REPL_IOC_RELEASE	_IOW(DM_REPL_IOC_MAGIC, 2, __u64)
#define DM_REPL_IOC_GET_BITMAP	_IOWR(DM_REPL_IOC_MAGIC, 3, struct dm_repl_bitmap_req)
#define DM_REPL_IOC_APPLY_INFO	_IOWR(DM_REPL_IOC_MAGIC, 4, struct dm_repl_apply_info)
#define DM_REPL_IOC_RESYNC	_IOWR(DM_REPL_IOC_MAGIC, 5, struct dm_repl_resync_req)
#define DM_REPL_IOC_VERIFY_INFO	_IOWR(DM_REPL_IOC_MAGIC, 6, struct dm_repl_verify_info)
#define DM_REPL_IOC_ADOPT_GEN	_IOW(DM_REPL_IOC_MAGIC, 7, struct dm_repl_gen)
#define DM_REPL_IOC_MARK	_IOW(DM_REPL_IOC_MAGIC, 8, struct dm_repl_mark_req)

/* ------------------------------------------------------------------ */
/* The metadata device (on-disk format)                                */
/* ------------------------------------------------------------------ */

/*
 * Versioned on its own by DM_REPL_META_VERSION, not by DM_REPL_ABI_VERSION.
 * Documentation/metadata.md gives the rules a reader applies. All of it is
 * made of 4 KiB blocks, little-endian:
 *
 *   block 0                  superblock (struct dm_repl_meta_sb, the rest of
 *                            the block zero)
 *   al_offset .. +al_slots   activity log: a ring of transactions, slot i
 *                            holding the transaction seq with
 *                            seq % al_slots == i (all zero: never written)
 *   bm_offset .. +bm_sectors dirty bitmap, DM_REPL_BM_BLOCK_BITS regions per
 *                            block, each block with its own header and crc
 *
 * Offsets and lengths on the metadata device are in 512-byte sectors and
 * multiples of 8. Every block's crc is crc32c seeded with ~0, not inverted,
 * over its DM_REPL_META_BLOCK_SIZE bytes with the crc field taken as 0 (the
 * records' convention). All the superblock's fields lie in its first 512
 * bytes, so rewriting it in place is atomic on any device.
 */
#define DM_REPL_META_VERSION	1
#define DM_REPL_META_BLOCK_SIZE	4096
#define DM_REPL_META_BLOCK_SECTORS (DM_REPL_META_BLOCK_SIZE / 512)

#define DM_REPL_META_SB_MAGIC	0x534c5052	/* "RPLS" read as LE bytes */
#define DM_REPL_META_AL_MAGIC	0x414c5052	/* "RPLA" */
#define DM_REPL_META_BM_MAGIC	0x424c5052	/* "RPLB" */

#define DM_REPL_META_UUID_SIZE	16
#define DM_REPL_META_GEN_HISTORY 4

/* Superblock flags (dm_repl_meta_sb.flags). */
#define DM_REPL_META_F_CLEAN	(1U << 0)	/* shut down cleanly: AL folded into the bitmap */
#define DM_REPL_META_F_INCONSISTENT (1U << 1)	/* secondary: a resync is under way */
#define DM_REPL_META_F_OUTDATED (1U << 2)	/* secondary: past a gap */
#define DM_REPL_META_F_REJOIN	(1U << 3)	/* secondary: takes the next stream given */
/*
 * Secondary, with INCONSISTENT only: seeded by other means (a copy, a
 * backup); its dirty bits are the regions no VERIFY has found equal to the
 * primary's yet. Ends with INCONSISTENT when the bitmap is clean.
 */
#define DM_REPL_META_F_SEEDED	(1U << 4)
#define DM_REPL_META_F_KNOWN	(DM_REPL_META_F_CLEAN | \
				 DM_REPL_META_F_INCONSISTENT | \
				 DM_REPL_META_F_OUTDATED | \
				 DM_REPL_META_F_REJOIN | \
				 DM_REPL_META_F_SEEDED)

enum dm_repl_meta_role {
	DM_REPL_META_ROLE_PRIMARY   = 1,
	DM_REPL_META_ROLE_SECONDARY = 2,
};

/* Bounds of version 1. */
#define DM_REPL_META_REGION_SECTORS_MIN	8		/* 4 KiB */
#define DM_REPL_META_REGION_SECTORS_MAX	(1U << 21)	/* 1 GiB */
#define DM_REPL_META_EXTENT_SECTORS_MAX	(1U << 21)	/* 1 GiB */
#define DM_REPL_META_AL_SLOTS_MIN	2
#define DM_REPL_META_AL_SLOTS_MAX	1024

struct dm_repl_meta_sb {
	__le32 magic;		/*   0 DM_REPL_META_SB_MAGIC */
	__le32 version;		/*   4 DM_REPL_META_VERSION */
	__le32 crc;		/*   8 over the whole 4 KiB block */
	__le32 flags;		/*  12 DM_REPL_META_F_* */
	__u8 uuid[DM_REPL_META_UUID_SIZE]; /* 16 the volume's identity */
	char group[DM_REPL_GROUP_NAME_MAX]; /* 32 NUL-terminated, NUL-padded */
	__le32 role;		/*  64 enum dm_repl_meta_role */
	__le32 region_sectors;	/*  68 sectors per bitmap region, a power of 2 */
	__le64 data_sectors;	/*  72 size of the data device */
	__le64 gen_current;	/*  80 generation identifiers (DRBD's UUIDs) */
	__le64 gen_bitmap;	/*  88 */
	__le64 gen_history[DM_REPL_META_GEN_HISTORY]; /* 96 */
	__le64 released_seq;	/* 128 primary: highest sequence released */
	__le64 applied_seq;	/* 136 secondary: highest sequence applied */
	__le64 ctime;		/* 144 creation, seconds since the Epoch */
	__le64 al_offset;	/* 152 sectors */
	__le32 al_slots;	/* 160 transactions in the ring */
	__le32 al_slot_bytes;	/* 164 DM_REPL_META_BLOCK_SIZE */
	__le32 extent_sectors;	/* 168 hot extent, a power of 2 >= region */
	__le32 hot_extents;	/* 172 most extents hot at once */
	__le64 bm_offset;	/* 176 sectors */
	__le64 bm_sectors;	/* 184 sectors, whole bitmap blocks */
	__le16 volume;		/* 192 volume index in the group's records */
	__le16 reserved0;	/* 194 zero */
	__le32 reserved1;	/* 196 zero */
	/*
	 * Streams (zero in metadata never loaded). Primary: the ring's stream
	 * and the ones before it; secondary: the stream of applied_seq.
	 */
	__le64 stream;		/* 200 */
	__le64 stream_history[DM_REPL_STREAM_HISTORY - 1]; /* 208 newest first */
	/*
	 * Primary: the next sequence and epoch if CLEAN; else seq_next is a
	 * bound no sequence of the running stream reaches (raised ahead).
	 * Secondary: next_epoch is the epoch the next record must have.
	 */
	__le64 seq_next;	/* 232 */
	__le64 next_epoch;	/* 240 */
	/* Secondary, OUTDATED: the last consistent state. */
	__le64 consistent_seq;	/* 248 */
	__le64 consistent_time_ns; /* 256 */
	__u8 reserved[248];	/* 264 zero */
};

#define DM_REPL_META_SB_SIZE	512

/* Header of an activity log slot and of a bitmap block. */
#define DM_REPL_META_HDR_SIZE	64

/* Extent numbers one transaction can name. */
#define DM_REPL_AL_SLOT_EXTENTS	\
	((DM_REPL_META_BLOCK_SIZE - DM_REPL_META_HDR_SIZE) / 4)

/*
 * One activity log transaction: the extents (data sector / extent_sectors)
 * that may hold writes not yet released. A reader takes the union of the
 * extents of every current transaction; entries after nr_extents are zero.
 */
struct dm_repl_meta_al_slot {
	__le32 magic;		/*  0 DM_REPL_META_AL_MAGIC */
	__le32 crc;		/*  4 over the whole slot */
	__le64 seq;		/*  8 transaction number, from 1 */
	__le32 nr_extents;	/* 16 entries used in extents[] */
	__le32 reserved0;	/* 20 zero */
	__u8 uuid[DM_REPL_META_UUID_SIZE]; /* 24 the superblock's */
	__u8 reserved1[24];	/* 40 zero */
	__le32 extents[DM_REPL_AL_SLOT_EXTENTS]; /* 64 */
};

/* Regions per bitmap block: 504 little-endian 64-bit words. */
#define DM_REPL_BM_BLOCK_BITS	\
	((DM_REPL_META_BLOCK_SIZE - DM_REPL_META_HDR_SIZE) * 8)

/*
 * One block of the dirty bitmap: regions [index * DM_REPL_BM_BLOCK_BITS,
 * (index + 1) * DM_REPL_BM_BLOCK_BITS), region r of the block at bit r % 64
 * of bits[r / 64] (= byte r / 8, bit r % 8). Bits past the last region of
 * the device are zero.
 */
struct dm_repl_meta_bm_block {
	__le32 magic;		/*  0 DM_REPL_META_BM_MAGIC */
	__le32 crc;		/*  4 over the whole block */
	__le64 index;		/*  8 block number within the bitmap, from 0 */
	__u8 uuid[DM_REPL_META_UUID_SIZE]; /* 16 the superblock's */
	__u8 reserved[32];	/* 32 zero */
	__le64 bits[DM_REPL_BM_BLOCK_BITS / 64]; /* 64 */
};

#endif /* _UAPI_LINUX_DM_REPL_H */
