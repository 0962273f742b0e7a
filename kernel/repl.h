/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dm-repl internals shared by the target, the ring, the group and the
 * character device. The ABI is in uapi/linux/dm-repl.h.
 */
#ifndef DM_REPL_INTERNAL_H
#define DM_REPL_INTERNAL_H

#include <linux/atomic.h>
#include <linux/device-mapper.h>
#include <linux/kref.h>
#include <linux/llist.h>
#include <linux/miscdevice.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <linux/dm-repl.h>

#define DM_MSG_PREFIX "repl"

/* Table defaults and limits. */
#define REPL_RING_MB_DEFAULT	64
#define REPL_RING_MB_MIN	2	/* holds at least one largest record */
#define REPL_RING_MB_MAX	16384
#define REPL_REGION_KB_MIN	4
#define REPL_REGION_KB_MAX	(1024 * 1024)
#define REPL_BLOCK_MS_DEFAULT	100
#define REPL_BLOCK_MS_MAX	60000

/* A bio yields at most a FLUSH record and one data record. */
#define REPL_MAX_RECS_PER_BIO	2
/* Before them the ring may put a STREAM and a GAP record. */
#define REPL_MAX_PREFIX_RECS	2
/*
 * Sequences a stream may use past what is persisted: far more than a ring
 * holds (16 GiB / 88 bytes < 2^28), raised when half of it is released.
 */
#define REPL_SEQ_LEASE		(1ULL << 32)
/* Sequences and epochs stay below it, so no bound ever wraps. */
#define REPL_SEQ_MAX		(1ULL << 62)

/*
 * The ring of one group: a control page followed by the data area, which is
 * vmap()ed twice back to back so that a record that starts near the end can
 * be written and read in one piece (as kernel/bpf/ringbuf.c does).
 */
struct repl_ring {
	/*
	 * Guards reservation: ctl->producer_pos, next_seq, epoch, and the
	 * reading of ctl->released_pos against its update by release.
	 */
	spinlock_t lock;
	u64 next_seq;
	u64 epoch;
	/* The stream (see uapi/linux/dm-repl.h): in every record. */
	u64 stream;
	u64 history[DM_REPL_STREAM_HISTORY];	/* its STREAM record's payload */
	bool stream_pending;	/* that record is not in the ring yet */
	bool stream_gap;	/* it carries DM_REPL_RECF_GAP */
	bool gap_pending;	/* a write overflowed: a GAP record goes next */
	u64 gaps_noted;		/* overflows noted, each owing a GAP */
	/* No sequence reaches it: persisted ahead, so a crash reuses none. */
	u64 seq_limit;

	/* Serialises releases (the walk runs outside the spinlock). */
	struct mutex release_lock;

	struct dm_repl_ring_ctl *ctl;	/* start of the vmap()ed area */
	void *data;			/* ctl + PAGE_SIZE */
	u64 size;			/* data area bytes, a power of two */
	struct page **pages;		/* control page, then the data pages */
	unsigned int nr_pages;
	u32 group_tag;			/* the group's, in every record */
};

/* What a bio asks the ring for; filled in by repl_ring_reserve(). */
struct repl_rec_req {
	u16 type;
	u16 flags;
	u16 volume;
	u64 sector;
	u32 nbytes;
	u32 payload_len;
	/* out */
	u64 pos;
	struct dm_repl_rec *rec;
};

int repl_ring_init(struct repl_ring *ring, unsigned int ring_mb);
u32 repl_group_tag(const char *name);
void repl_ring_free(struct repl_ring *ring);
int repl_ring_reserve(struct repl_ring *ring, struct repl_rec_req *reqs,
		      unsigned int nr);
void repl_ring_commit(struct repl_ring *ring, u64 pos, bool failed);
bool repl_ring_has_room(struct repl_ring *ring, u64 bytes);
int repl_ring_release(struct repl_ring *ring, u64 seq);
u32 repl_rec_size(u32 payload_len);
u64 repl_ring_last_seq(struct repl_ring *ring);
struct repl_volume;
void repl_ring_mark_unreleased(struct repl_ring *ring, struct repl_volume *v);
void repl_ring_restart(struct repl_ring *ring, u64 next_seq, u64 epoch);
void repl_ring_new_stream(struct repl_ring *ring, u64 next_seq, u64 epoch,
			  const u64 *prev, bool gap);
void repl_ring_note_overflow(struct repl_ring *ring);
void repl_ring_note_missing(struct repl_ring *ring);
u64 repl_ring_gaps_noted(struct repl_ring *ring);
int repl_ring_wait_before(struct repl_ring *ring, u64 end);
bool repl_ring_emit_gap(struct repl_ring *ring);
u64 repl_ring_applied_stream(struct repl_ring *ring, bool *gap);
bool repl_ring_gap_owed(struct repl_ring *ring);
bool repl_ring_lease_low(struct repl_ring *ring, u64 *limit);
void repl_ring_set_limit(struct repl_ring *ring, u64 limit);
void repl_ring_to_sb(struct repl_ring *ring, struct dm_repl_meta_sb *sb);
void repl_ring_from_sb(struct repl_ring *ring,
		       const struct dm_repl_meta_sb *sb);

/*
 * One volume of a group. It outlives a table reload: the old and the new
 * target of the same mapped device share it (and its dirty bitmap).
 */
struct repl_volume {
	struct repl_group *group;
	struct mapped_device *md;	/* identity across reloads */
	dev_t data_dev;
	/* Open while the volume lives: a table of its device holds them. */
	struct block_device *data_bdev;
	struct block_device *meta_bdev;
	u8 uuid[DM_REPL_META_UUID_SIZE];	/* from its metadata */
	struct dm_repl_meta_sb *sb;	/* its superblock's block */
	unsigned int index;		/* volume index in records */
	unsigned int users;		/* targets using it, under group->lock */
	bool joined;			/* secondary: in apply's applied_seq */
	/* Its targets that are resumed: a role change wants none. */
	atomic_t active;
	sector_t sectors;

	struct repl_al *al;		/* its activity log (kernel/al.c) */

	unsigned int region_shift;	/* log2 of sectors per region */
	unsigned long nr_regions;
	unsigned long *bitmap;		/* dirty regions */
	atomic64_t dirty;		/* bits set in bitmap */
	/*
	 * Regions resynced, not yet released by the consumer (kernel/resync.c):
	 * dirty for every bitmap save.
	 */
	unsigned long *syncing;
	/*
	 * Flushes of its data device after a resync that failed in a row, and
	 * until when its resync is held (jiffies): kernel/resync.c, under the
	 * group's resync lock.
	 */
	unsigned int flush_failures;
	u64 resync_hold_until;
};

/*
 * Counters of a group, read by status and DM_REPL_IOC_GROUP_INFO. Records
 * and their bytes are not counted on the write path: the ring's next_seq
 * and producer_pos already say how many were reserved.
 */
struct repl_counters {
	atomic64_t discarded;
	atomic64_t overflows;
	atomic64_t block_waits;
	atomic64_t block_timeouts;
	atomic64_t wakeups;
};

#define REPL_WAKE_PENDING	0	/* bit in repl_group.flags */
/* Committed records that wake a consumer at once (else the next tick). */
#define REPL_WAKE_RECORDS	64
#define REPL_BEHIND		1	/* a write went only to the bitmap */

/* A primary's resync (kernel/resync.c). */
#define REPL_RESYNC_UNRELEASED	256	/* regions resynced, not released */
#define REPL_RESYNC_UNSAVED	32	/* bitmap blocks save_work writes at once */

/* A bitmap block of a region taken out of syncing. */
struct repl_unsaved_block {
	u32 volume;			/* index */
	u32 block;
};

struct repl_resync_entry {
	u64 seq;			/* of its last RESYNC record */
	struct repl_volume *vol;
	unsigned long region;
};

struct repl_resync {
	/*
	 * Serialises resyncs; taken before every other lock of the group but
	 * flush_lock, and by a volume going away (so none goes while a resync
	 * reads it), a resize and a role change. A resync holds group->lock
	 * only around its checks, never across its reads and waits.
	 */
	struct mutex lock;
	/*
	 * Held by save_work while it flushes data devices, and by a volume
	 * going away (before lock): so a resync never waits for a flush.
	 */
	struct mutex flush_lock;
	/* Guards the entries: a release pops them without waiting for lock. */
	spinlock_t entries_lock;
	unsigned int head, nr;
	unsigned int drops;	/* role changes: a release point's numbering */
	struct repl_resync_entry unreleased[REPL_RESYNC_UNRELEASED];
	atomic64_t regions;		/* nr, for status without the lock */
	atomic64_t sent;		/* regions put in the ring, ever */
	/*
	 * Writes that went to the bitmap and are still in flight, by phase;
	 * the phase is read and a write counted under phase_lock.
	 */
	spinlock_t phase_lock;
	unsigned int phase;
	atomic_t overflowing[2];
	wait_queue_head_t overflow_wait;
	/* Volume indexes that left dirty: no resync ends before they are back. */
	DECLARE_BITMAP(departed, DM_REPL_MAX_VOLUMES);
	/*
	 * Takes the released entries out, after a flush of their data
	 * devices (dirty again where it failed), and writes their bitmap
	 * blocks (kernel/resync.c).
	 */
	struct work_struct save_work;
	atomic64_t unsaved_blocks;	/* taken out, not yet written: status */
	atomic64_t saved_blocks;	/* written by save_work, ever */
};

/*
 * A primary's verify of one region (kernel/verify.c): while it is open,
 * every write captured into the range counts a hit, and a hit makes the
 * VERIFY record RACED.
 */
struct repl_verify_window {
	spinlock_t lock;		/* guards all below */
	bool open;			/* also read without the lock */
	struct repl_volume *vol;
	sector_t start, end;
	unsigned int hits;
};

/*
 * What a secondary's VERIFY records found, counted when their batch is
 * applied (under repl_apply.stat_lock).
 */
struct repl_verify_stats {
	u64 compared, bytes, raced, mismatches, last_seq;
	unsigned int head, nr;		/* list[] is a ring, oldest at head */
	struct dm_repl_verify_mismatch list[DM_REPL_VERIFY_LIST];
};

/* A secondary's apply state (kernel/apply.c). */
/*
 * The RESYNC records applied last, back to back: consecutive sequences of
 * one stream and one volume, each starting where the one before ended. A
 * region counts as resent only when such a run covered it from its start.
 */
struct repl_resync_run {
	bool valid;
	u64 stream, seq;	/* of its last record */
	unsigned int volume;
	sector_t start, end;
};

struct repl_apply {
	/* Serialises batches; taken before repl_groups_lock and group->lock. */
	struct mutex lock;
	/* Targets of the group that are suspended (or not resumed yet). */
	atomic_t suspended;
	wait_queue_head_t resume_wait;
	u32 source_tag;		/* group_tag of the records it accepts */
	char source[DM_REPL_GROUP_NAME_MAX];	/* the name it comes from */

	/* Under lock; read by status without it. */
	u64 applied_seq;	/* persisted in every volume's superblock */
	u64 applied_stream;	/* stream of applied_seq; 0: none yet */
	u64 applied_time_ns;	/* capture time of applied_seq */
	u64 applied_epoch;	/* 0: not known since the load */
	u64 next_epoch;		/* epoch of applied_seq + 1; 0: not known */
	bool inconsistent;	/* a resync is under way */
	/* Seeded: its dirty bits are the regions not yet verified equal. */
	bool seeded;
	/* "rejoin": the first record of the next batch may be of any stream */
	bool rejoin;
	/* Past a gap: the last consistent state was consistent_seq. */
	bool outdated;
	u64 consistent_seq, consistent_time_ns;
	unsigned int nr_joined;	/* volumes that ever joined */
	/* Under lock: forgotten at a role change, a rejoin, a failed batch. */
	struct repl_resync_run run;

	/* Guards the counters and markers below (read by the info ioctl). */
	spinlock_t stat_lock;
	u64 batches, records, skipped, bytes, flushes, rejected;
	u64 last_error_seq;
	int last_error;
	unsigned int last_reason;
	unsigned int nr_markers;
	struct dm_repl_applied_marker markers[DM_REPL_APPLY_MARKERS];
	struct repl_verify_stats verify;
};

struct repl_group {
	struct list_head list;		/* on repl_groups, under repl_groups_lock */
	struct kref kref;		/* one per volume, one per open file */
	char name[DM_REPL_GROUP_NAME_MAX];
	char misc_name[DM_REPL_GROUP_NAME_MAX + 8];
	char nodename[DM_REPL_GROUP_NAME_MAX + 8];
	struct miscdevice misc;

	/* Guards volumes[], index_last_seq[], nr_volumes and dead. */
	struct mutex lock;
	struct repl_volume *volumes[DM_REPL_MAX_VOLUMES];
	/* Last sequence of a removed volume's index: reusable once released. */
	u64 index_last_seq[DM_REPL_MAX_VOLUMES];
	unsigned int nr_volumes;
	bool dead;			/* its last volume is gone */

	unsigned int role;		/* enum dm_repl_role, of every volume */
	/*
	 * The last role change failed to reach a superblock: a message that
	 * names the role writes them again, and a primary takes no write.
	 * Written under lock, read without it too.
	 */
	bool role_unsaved;
	/*
	 * The generation identifiers, written to every superblock of the
	 * group: from its first volume, changed under both apply.lock and
	 * lock (a superblock is written under one of them), read under
	 * either (status reads gen_current without them).
	 */
	u64 gen_current;
	u64 gen_history[DM_REPL_META_GEN_HISTORY];
	unsigned long flags;		/* REPL_WAKE_PENDING, REPL_BEHIND */
	atomic_t behind_why;		/* DM_REPL_BEHIND_*, while behind */
	atomic64_t commits;		/* records committed, for poll() */
	u64 woken_commits;		/* commits at the last wake-up */
	struct timer_list wake_timer;	/* a wake-up the next tick */
	wait_queue_head_t poll_wait;	/* consumers in poll() */
	wait_queue_head_t room_wait;	/* writers waiting for ring room */

	struct repl_ring ring;
	struct repl_counters cnt;

	/* Payloads to copy off the submitter's CPU, and the worker that does. */
	struct llist_head copy_list;
	struct work_struct copy_work;

	struct repl_apply apply;	/* secondary only */
	struct repl_resync resync;	/* primary only */
	struct repl_verify_window verify;	/* primary only */
};

/* What the metadata must match, from the table line and the devices. */
struct repl_meta_args {
	const char *group;
	unsigned int role;	/* enum dm_repl_role */
	sector_t data_sectors;
	sector_t meta_sectors;
	unsigned int region_kb;	/* 0: not given in the table */
};

/* What the target takes from the metadata superblock. */
struct repl_meta {
	u8 uuid[DM_REPL_META_UUID_SIZE];
	unsigned int region_kb;
	unsigned int index;	/* volume index in records */
	sector_t data_sectors;	/* may be less than the table's: a grow */
	struct dm_repl_meta_sb *sb;	/* its whole block, kmalloc()ed */
};

int repl_meta_load(struct block_device *bdev,
		   const struct repl_meta_args *args, struct repl_meta *meta,
		   char **error);
int repl_meta_open(struct block_device *bdev, struct repl_volume *v,
		   char **error);
void repl_meta_close(struct block_device *bdev, struct repl_volume *v,
		     u64 released_seq);
int repl_meta_write_sb(struct block_device *bdev, struct repl_volume *v);
u32 repl_meta_crc(const void *block, size_t crc_offset);
int repl_meta_save_regions(struct repl_volume *v, unsigned long first,
			   unsigned long last);
int repl_meta_save_bitmap(struct repl_volume *v);
u64 repl_meta_sectors_for(const struct dm_repl_meta_sb *sb, sector_t sectors);
int repl_meta_grow(struct repl_volume *v, sector_t old_sectors);
int repl_meta_read_al(struct repl_volume *v, void *block, unsigned int slot);
int repl_meta_write_al(struct repl_volume *v, struct dm_repl_meta_al_slot *s,
		       u64 seq, unsigned int nr_extents);
int repl_meta_zero_al(struct repl_volume *v, void *zero_block,
		      unsigned int slot);

struct repl_al_stats {
	unsigned int hot, max_hot;
	u64 txns, evictions, fallbacks;
};

struct repl_io;
int repl_al_create(struct repl_volume *v);
void repl_al_destroy(struct repl_volume *v);
bool repl_al_admit(struct repl_volume *v, struct bio *bio,
		   const struct repl_io *io);
int repl_al_recover(struct repl_volume *v);
int repl_al_reset(struct repl_volume *v);
int repl_al_save_regions(struct repl_volume *v, unsigned long first,
			 unsigned long last);
void repl_al_forget_seqs(struct repl_volume *v);
void repl_al_stats(const struct repl_volume *v, struct repl_al_stats *st);

/* What a table line says about its volume. */
struct repl_volume_args {
	const char *group;
	unsigned int role;
	const char *source;	/* secondary: the primary group's name */
	unsigned int ring_mb;
	bool ring_mb_given;
	unsigned int region_kb;
	dev_t data_dev;
	struct block_device *data_bdev;
	const struct repl_meta *meta;
	struct block_device *meta_bdev;
};

struct repl_volume *repl_volume_get(struct dm_target *ti,
				    const struct repl_volume_args *args,
				    char **error);
void repl_volume_put(struct repl_volume *v, struct block_device *meta_bdev);
void repl_group_put(struct repl_group *g);
extern struct mutex repl_groups_lock;
void repl_volume_mark_dirty(struct repl_volume *v, sector_t sector,
			    u32 nbytes, u32 why);
void repl_group_behind(struct repl_group *g, u32 why);
void repl_group_notify(struct repl_group *g, unsigned int nr);
void repl_group_notify_now(struct repl_group *g);
void repl_group_released(struct repl_group *g);
void repl_group_extend_lease(struct repl_group *g);
void repl_group_push_gen(struct repl_group *g, u64 gen);
struct repl_target;
int repl_volume_grow(struct repl_target *rt, sector_t sectors);
void repl_volume_set_active(struct repl_target *rt, bool active);
bool repl_group_name_valid(const char *name);

/* One table line's target. */
struct repl_target {
	struct dm_dev *data_dev;
	struct dm_dev *meta_dev;
	struct repl_volume *vol;
	unsigned int ring_mb;
	unsigned int region_kb;
	unsigned int block_ms;
	bool overflow_block;
	bool suspended;		/* counted in group->apply.suspended */
	bool active;		/* resumed: counted in vol->active */
	/* As the table line said (status prints it, whatever the role now). */
	unsigned int table_role;
	char source[DM_REPL_GROUP_NAME_MAX];
	/* A table larger than its volume: the bitmaps it grows to at resume. */
	unsigned long *grow_bitmap, *grow_syncing;
};

/* Per-bio data: the records a bio reserved, committed at its completion. */
struct repl_io {
	u64 pos[REPL_MAX_RECS_PER_BIO];
	unsigned int nr;
	u32 nbytes;
	sector_t sector;	/* on the volume */
	u64 seq;		/* of its last record; 0 if none */
	bool al_fallback;	/* no room in the AL: bitmap written first */
	/* Went to the bitmap: 1 + its phase in repl_resync.overflowing. */
	u8 overflow_phase;

	/*
	 * A payload copied by the group's copier while the data device
	 * writes it: the bio completes when both are done.
	 */
	bool deferred;
	atomic_t pending;	/* the copy and the lower write */
	blk_status_t status;	/* of the lower write */
	struct dm_repl_rec *rec;	/* the record the payload goes to */
	struct bvec_iter iter;	/* the payload, as it was at map time */
	struct bio *bio;
	struct llist_node copy_node;	/* on repl_group.copy_list */
};

void repl_capture(struct repl_target *rt, struct bio *bio, sector_t sector,
		  struct repl_io *io);
int repl_capture_end(struct repl_target *rt, struct repl_io *io,
		     blk_status_t *error);
void repl_copier_work(struct work_struct *work);
extern struct workqueue_struct *repl_wq;
/* Metadata I/O: not from fs_bio_set, whose reserve belongs to filesystems. */
extern struct bio_set repl_bio_set;
int repl_capture_marker(struct repl_target *rt, const char *label);

void repl_apply_init(struct repl_group *g, const char *source);
void repl_apply_join(struct repl_group *g, struct repl_volume *v);
ssize_t repl_apply_write(struct repl_group *g, const char __user *buf,
			 size_t count);
void repl_apply_info(struct repl_group *g, struct dm_repl_apply_info *info);
void repl_apply_suspend(struct repl_target *rt);
void repl_apply_resume(struct repl_target *rt);
struct repl_apply_point {
	u64 applied_seq, applied_stream, next_epoch;
	bool inconsistent, seeded, outdated, rejoin;
	u64 consistent_seq, consistent_time_ns;
};

void repl_apply_point(const struct repl_apply *a, struct repl_apply_point *p);
void repl_apply_to_sb(const struct repl_apply_point *p,
		      struct dm_repl_meta_sb *sb);

/*
 * A word of the bitmap as a save must see it: dirty or syncing. A region
 * moves from one to the other setting the new bit before clearing the old
 * (with a full barrier between), so reading syncing, then dirty, then
 * syncing again sees it in one of them whichever way it moves.
 */
static inline unsigned long repl_dirty_word(const unsigned long *dirty,
					    const unsigned long *syncing)
{
	unsigned long w = READ_ONCE(*syncing);

	smp_rmb();	/* pairs with the full barriers of the moves */
	w |= READ_ONCE(*dirty);
	smp_rmb();	/* the same, for a move the other way */
	return w | READ_ONCE(*syncing);
}

/* Is a region from @first to @last dirty or syncing? */
static inline bool repl_regions_dirty(const struct repl_volume *v,
				      unsigned long first, unsigned long last)
{
	unsigned long i;

	for (i = first / BITS_PER_LONG; i <= last / BITS_PER_LONG; i++) {
		unsigned long w = repl_dirty_word(v->bitmap + i, v->syncing + i);

		if (i == first / BITS_PER_LONG)
			w &= BITMAP_FIRST_WORD_MASK(first);
		if (i == last / BITS_PER_LONG)
			w &= BITMAP_LAST_WORD_MASK(last + 1);
		if (w)
			return true;
	}
	return false;
}

void repl_resync_init(struct repl_group *g);
void repl_resync_overflow_start(struct repl_group *g, struct repl_io *io);
void repl_resync_overflow_end(struct repl_group *g, struct repl_io *io);
void repl_resync_released(struct repl_group *g);
void repl_resync_stop(struct repl_group *g);
u64 repl_resync_releasing(struct repl_group *g);
bool repl_resync_held(const struct repl_volume *v);
void repl_resync_forget(struct repl_volume *v);
void repl_resync_drop(struct repl_group *g, u64 released);
void repl_resync_renumbered(struct repl_group *g);
void repl_resync_joined(struct repl_volume *v);
struct dm_repl_resync_req;
int repl_resync_region(struct repl_group *g, struct dm_repl_resync_req *req);
int repl_read_data(struct repl_volume *v, sector_t sector, void *buf,
		   u32 nbytes);

void repl_verify_init(struct repl_group *g);
void repl_verify_forget(struct repl_verify_stats *s);
int repl_verify_region(struct repl_group *g, struct repl_volume *v,
		       unsigned long region, struct dm_repl_resync_req *req);
void repl_verify_note_write(struct repl_group *g, struct repl_volume *v,
			    sector_t sector, u32 nbytes);
int repl_verify_hash(struct repl_volume *v, sector_t sector, u32 nbytes,
		     u8 *hash, const atomic_t *stop);
void repl_verify_info(struct repl_group *g, struct dm_repl_verify_info *info);

int repl_role_message(struct repl_group *g, unsigned int argc, char **argv);
int repl_source_message(struct repl_group *g, unsigned int argc, char **argv);
int repl_rejoin_message(struct repl_group *g, unsigned int argc, char **argv);
int repl_adopt_gen(struct repl_group *g, const struct dm_repl_gen *gen);
int repl_mark(struct repl_group *g, const struct dm_repl_mark_req *req);

int repl_chardev_register(struct repl_group *g);
void repl_chardev_unregister(struct repl_group *g);

/* Live objects, for the leak checks of the tests (module parameter). */
extern atomic_t repl_live_groups;
extern atomic_t repl_live_volumes;
extern atomic_t repl_live_files;

#endif /* DM_REPL_INTERNAL_H */
