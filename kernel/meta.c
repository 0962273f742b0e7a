// SPDX-License-Identifier: GPL-2.0
/*
 * The metadata device: reading and judging its superblock when a table is
 * loaded. The format is in uapi/linux/dm-repl.h and Documentation/metadata.md;
 * repltool meta create writes it. A table is refused unless the superblock
 * is intact, of a version this module knows, and made for this volume.
 */
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/crc32c.h>
#include <linux/slab.h>

#include "repl.h"

/*
 * Read or write one metadata block synchronously. @buf is a
 * DM_REPL_META_BLOCK_SIZE kmalloc() buffer: naturally aligned, in one page.
 */
static int meta_io(struct block_device *bdev, sector_t sector, void *buf,
		   blk_opf_t opf)
{
	struct bio *bio = bio_alloc_bioset(bdev, 1, opf | REQ_SYNC | REQ_META,
					   GFP_NOIO, &repl_bio_set);
	int r;

	bio->bi_iter.bi_sector = sector;
	__bio_add_page(bio, virt_to_page(buf), DM_REPL_META_BLOCK_SIZE,
		       offset_in_page(buf));
	r = submit_bio_wait(bio);
	bio_put(bio);
	return r;
}

u32 repl_meta_crc(const void *block, size_t crc_offset)
{
	static const u8 zero[4];
	u32 crc;

	crc = crc32c(~0U, block, crc_offset);
	crc = crc32c(crc, zero, sizeof(zero));
	return crc32c(crc, block + crc_offset + 4,
		      DM_REPL_META_BLOCK_SIZE - crc_offset - 4);
}

/* Whole bitmap blocks needed for @regions. */
static u64 bm_blocks(u64 regions)
{
	return DIV_ROUND_UP_ULL(regions, DM_REPL_BM_BLOCK_BITS);
}

/* The layout must lie on the device and the bitmap cover the data. */
static const char *check_layout(const struct dm_repl_meta_sb *sb,
				sector_t meta_sectors)
{
	u64 al_offset = le64_to_cpu(sb->al_offset);
	u64 al_sectors = (u64)le32_to_cpu(sb->al_slots) *
			 DM_REPL_META_BLOCK_SECTORS;
	u64 bm_offset = le64_to_cpu(sb->bm_offset);
	u64 bm_sectors = le64_to_cpu(sb->bm_sectors);
	u32 region = le32_to_cpu(sb->region_sectors);
	u64 regions;

	if (al_offset < DM_REPL_META_BLOCK_SECTORS ||
	    al_offset % DM_REPL_META_BLOCK_SECTORS ||
	    bm_offset < al_offset + al_sectors ||
	    bm_offset % DM_REPL_META_BLOCK_SECTORS)
		return "Metadata layout is invalid";
	if (al_offset + al_sectors > meta_sectors ||
	    bm_offset + bm_sectors > meta_sectors)
		return "Metadata device is smaller than its layout";
	regions = DIV_ROUND_UP_ULL(le64_to_cpu(sb->data_sectors), region);
	if (bm_sectors != bm_blocks(regions) * DM_REPL_META_BLOCK_SECTORS)
		return "Metadata bitmap does not match the data device";
	return NULL;
}

static bool all_zero(const u8 *p, size_t n)
{
	return !n || (!p[0] && !memcmp(p, p + 1, n - 1));
}

/*
 * The activity log's and the extents' fields, each with its own reason:
 * the AL code divides by al_slots, writes hot_extents entries into one
 * block and names extents with 32 bits. Values as repltool meta check
 * judges them (Documentation/metadata.md).
 */
static const char *check_region(const struct dm_repl_meta_sb *sb)
{
	u32 region = le32_to_cpu(sb->region_sectors);

	if (!is_power_of_2(region) ||
	    region < DM_REPL_META_REGION_SECTORS_MIN ||
	    region > DM_REPL_META_REGION_SECTORS_MAX)
		return "Metadata region size is invalid";
	return NULL;
}

static const char *check_al(const struct dm_repl_meta_sb *sb)
{
	u32 slots = le32_to_cpu(sb->al_slots);
	u32 extent = le32_to_cpu(sb->extent_sectors);
	u32 region = le32_to_cpu(sb->region_sectors);
	u32 hot = le32_to_cpu(sb->hot_extents);

	if (slots < DM_REPL_META_AL_SLOTS_MIN ||
	    slots > DM_REPL_META_AL_SLOTS_MAX)
		return "Metadata AL slot count is not from 2 to 1024";
	if (le32_to_cpu(sb->al_slot_bytes) != DM_REPL_META_BLOCK_SIZE)
		return "Metadata AL slot size is not 4096 bytes";
	if (!is_power_of_2(extent) || extent < region ||
	    extent > DM_REPL_META_EXTENT_SECTORS_MAX)
		return "Metadata hot extent size is not a power of two from the region size to 1 GiB";
	if (DIV_ROUND_UP_ULL(le64_to_cpu(sb->data_sectors), extent) > U32_MAX)
		return "Metadata names more hot extents than 32-bit extent numbers hold";
	if (!hot || hot > DM_REPL_AL_SLOT_EXTENTS)
		return "Metadata hot extent count is not from 1 to 1008";
	return NULL;
}

/*
 * Judge the superblock in the order that gives the most useful message: a
 * newer format first (its checksum rules may differ), then integrity, then
 * whether it was made for this volume.
 */
static const char *check_sb(const struct dm_repl_meta_sb *sb,
			    const struct repl_meta_args *args)
{
	u32 version = le32_to_cpu(sb->version);

	if (le32_to_cpu(sb->magic) != DM_REPL_META_SB_MAGIC)
		return "Metadata device has no dm-repl superblock (run repltool meta create)";
	if (version > DM_REPL_META_VERSION)
		return "Metadata format version is newer than this module's";
	if (version != DM_REPL_META_VERSION)
		return "Metadata format version is unknown";
	if (repl_meta_crc(sb, offsetof(struct dm_repl_meta_sb, crc)) !=
	    le32_to_cpu(sb->crc))
		return "Metadata superblock checksum mismatch (repltool meta check)";
	if (le32_to_cpu(sb->flags) & ~DM_REPL_META_F_KNOWN)
		return "Metadata superblock has unknown flags";
	if ((le32_to_cpu(sb->flags) & DM_REPL_META_F_SEEDED) &&
	    (le32_to_cpu(sb->role) != DM_REPL_META_ROLE_SECONDARY ||
	     !(le32_to_cpu(sb->flags) & DM_REPL_META_F_INCONSISTENT)))
		return "Metadata superblock says SEEDED on a primary or a consistent replica";
	if (sb->reserved0 || sb->reserved1 ||
	    !all_zero(sb->reserved, sizeof(sb->reserved)) ||
	    !all_zero((const u8 *)sb + DM_REPL_META_SB_SIZE,
		      DM_REPL_META_BLOCK_SIZE - DM_REPL_META_SB_SIZE))
		return "Metadata superblock has reserved bytes that are not zero";
	if (all_zero(sb->uuid, sizeof(sb->uuid)))
		return "Metadata volume UUID is all zero";
	if (le64_to_cpu(sb->released_seq) >= REPL_SEQ_MAX ||
	    le64_to_cpu(sb->applied_seq) >= REPL_SEQ_MAX ||
	    le64_to_cpu(sb->seq_next) >= REPL_SEQ_MAX ||
	    le64_to_cpu(sb->next_epoch) >= REPL_SEQ_MAX ||
	    le64_to_cpu(sb->consistent_seq) >= REPL_SEQ_MAX)
		return "Metadata sequence or epoch is out of range (2^62 and above)";
	if (strnlen(sb->group, sizeof(sb->group)) == sizeof(sb->group))
		return "Metadata group name is not NUL-terminated";
	if (strncmp(sb->group, args->group, sizeof(sb->group)))
		return "Metadata belongs to another group";
	if (le32_to_cpu(sb->role) != args->role)
		return args->role == DM_REPL_ROLE_PRIMARY ?
			"Metadata role is not primary" :
			"Metadata role is not secondary";
	if (le16_to_cpu(sb->volume) >= DM_REPL_MAX_VOLUMES)
		return "Metadata volume index is out of range (0-63)";
	/* Larger: a reload that grows the volume (volume_check_grow()). */
	if (le64_to_cpu(sb->data_sectors) > args->data_sectors)
		return "Data device is smaller than its metadata says: shrinking a replicated volume is not supported";
	if (args->region_kb && le32_to_cpu(sb->region_sectors) !=
	    args->region_kb << 1)
		return "region_kb differs from the metadata's";
	return check_region(sb) ?: check_al(sb) ?:
	       check_layout(sb, args->meta_sectors);
}

/*
 * Read and judge the superblock; fills @meta from it. On success @meta->sb is
 * the superblock's block, for the caller to keep or kfree().
 */
int repl_meta_load(struct block_device *bdev,
		   const struct repl_meta_args *args, struct repl_meta *meta,
		   char **error)
{
	struct dm_repl_meta_sb *sb;
	const char *bad;
	int r;

	BUILD_BUG_ON(sizeof(struct dm_repl_meta_sb) != DM_REPL_META_SB_SIZE);
	if (args->meta_sectors < DM_REPL_META_BLOCK_SECTORS) {
		*error = "Metadata device is too small for a superblock";
		return -EINVAL;
	}
	sb = kmalloc(DM_REPL_META_BLOCK_SIZE, GFP_KERNEL);
	if (!sb) {
		*error = "Cannot allocate metadata buffer";
		return -ENOMEM;
	}
	r = meta_io(bdev, 0, sb, REQ_OP_READ);
	if (r) {
		*error = "Cannot read the metadata superblock";
		goto out;
	}
	bad = check_sb(sb, args);
	if (bad) {
		*error = (char *)bad;
		r = -EINVAL;
		goto out;
	}
	memcpy(meta->uuid, sb->uuid, sizeof(meta->uuid));
	meta->data_sectors = le64_to_cpu(sb->data_sectors);
	meta->region_kb = le32_to_cpu(sb->region_sectors) >> 1;
	meta->index = le16_to_cpu(sb->volume);
	meta->sb = sb;
	return 0;
out:
	kfree(sb);
	return r;
}

/*
 * Write the volume's superblock, after everything before it is durable,
 * with the group's generations (see struct repl_group).
 */
int repl_meta_write_sb(struct block_device *bdev, struct repl_volume *v)
{
	const struct repl_group *g = v->group;
	unsigned int i;

	v->sb->gen_current = cpu_to_le64(g->gen_current);
	for (i = 0; i < DM_REPL_META_GEN_HISTORY; i++)
		v->sb->gen_history[i] = cpu_to_le64(g->gen_history[i]);
	v->sb->crc = cpu_to_le32(repl_meta_crc(v->sb,
				 offsetof(struct dm_repl_meta_sb, crc)));
	return meta_io(bdev, 0, v->sb,
		       REQ_OP_WRITE | REQ_PREFLUSH | REQ_FUA);
}

static u64 bm_block_sector(const struct repl_volume *v, u64 index)
{
	return le64_to_cpu(v->sb->bm_offset) +
	       index * DM_REPL_META_BLOCK_SECTORS;
}

#define BM_WORDS	(DM_REPL_BM_BLOCK_BITS / 64)

/* Words of the in-memory bitmap that block @index holds. */
static unsigned long bm_block_words(const struct repl_volume *v, u64 index)
{
	unsigned long words = BITS_TO_LONGS(v->nr_regions);

	return min_t(unsigned long, BM_WORDS, words - index * BM_WORDS);
}

static bool bm_block_valid(const struct repl_volume *v,
			   const struct dm_repl_meta_bm_block *b, u64 index)
{
	return le32_to_cpu(b->magic) == DM_REPL_META_BM_MAGIC &&
	       le64_to_cpu(b->index) == index &&
	       !memcmp(b->uuid, v->uuid, sizeof(b->uuid)) &&
	       repl_meta_crc(b, offsetof(struct dm_repl_meta_bm_block, crc)) ==
	       le32_to_cpu(b->crc);
}

/* Load one bitmap block; a damaged one makes all its regions dirty. */
static int bm_load_block(struct block_device *bdev, struct repl_volume *v,
			 struct dm_repl_meta_bm_block *b, u64 index)
{
	unsigned long *words = v->bitmap + index * BM_WORDS;
	unsigned long i, n = bm_block_words(v, index);
	int r = meta_io(bdev, bm_block_sector(v, index), b, REQ_OP_READ);

	if (r)
		return r;
	if (!bm_block_valid(v, b, index)) {
		DMWARN("%s: bitmap block %llu is damaged: its regions are dirty",
		       v->group->name, index);
		memset(b->bits, 0xff, sizeof(b->bits));
	}
	for (i = 0; i < n; i++)
		words[i] = le64_to_cpu(b->bits[i]);
	return 0;
}

static u64 bm_nr_blocks(const struct repl_volume *v)
{
	return DIV_ROUND_UP_ULL(v->nr_regions, DM_REPL_BM_BLOCK_BITS);
}

/* Bits past the last region are never set, whatever the device held. */
static void bm_count(struct repl_volume *v)
{
	if (v->nr_regions % BITS_PER_LONG)
		v->bitmap[v->nr_regions / BITS_PER_LONG] &=
			BITMAP_LAST_WORD_MASK(v->nr_regions);
	atomic64_set(&v->dirty, bitmap_weight(v->bitmap, v->nr_regions));
}

static int bm_load(struct block_device *bdev, struct repl_volume *v)
{
	struct dm_repl_meta_bm_block *b;
	int r = 0;
	u64 i;

	b = kmalloc(DM_REPL_META_BLOCK_SIZE, GFP_KERNEL);
	if (!b)
		return -ENOMEM;
	for (i = 0; i < bm_nr_blocks(v) && !r; i++)
		r = bm_load_block(bdev, v, b, i);
	kfree(b);
	return r;
}

/*
 * A primary that crashed: the writes it may forget are in the extents its
 * activity log names. An AL that cannot be trusted makes every region
 * dirty: never assume clean.
 */
static int recover(struct repl_volume *v)
{
	u64 before = atomic64_read(&v->dirty);
	int txns = repl_al_recover(v);

	if (txns == -EUCLEAN) {
		DMWARN("%s: volume %u was not shut down cleanly and its activity log cannot be trusted: all %lu regions are dirty",
		       v->group->name, v->index, v->nr_regions);
		bitmap_fill(v->bitmap, v->nr_regions);
	} else if (txns < 0) {
		return txns;
	}
	bm_count(v);
	if (txns >= 0)
		DMWARN("%s: volume %u was not shut down cleanly: %d activity log transactions made %llu regions dirty (%llu in all)",
		       v->group->name, v->index, txns,
		       (u64)atomic64_read(&v->dirty) - before,
		       (u64)atomic64_read(&v->dirty));
	return 0;
}

/*
 * What a volume of @sectors needs of its metadata device, bitmap included,
 * with the superblock's layout; and whether its hot extents stay numbered
 * by 32 bits. 0 if they do not.
 */
u64 repl_meta_sectors_for(const struct dm_repl_meta_sb *sb, sector_t sectors)
{
	u32 region = le32_to_cpu(sb->region_sectors);
	u32 extent = le32_to_cpu(sb->extent_sectors);

	if (DIV_ROUND_UP_ULL(sectors, extent) > U32_MAX)
		return 0;
	return le64_to_cpu(sb->bm_offset) +
	       bm_blocks(DIV_ROUND_UP_ULL(sectors, region)) *
	       DM_REPL_META_BLOCK_SECTORS;
}

/*
 * The volume grew from @old_sectors (kernel/group.c has its bitmap grown
 * already): the bitmap blocks from the one of its old last region on, then
 * the superblock with the new size. A crash between the two leaves the old
 * size on the metadata device, which a table of the old size still loads.
 */
int repl_meta_grow(struct repl_volume *v, sector_t old_sectors)
{
	__le64 data = v->sb->data_sectors, bm = v->sb->bm_sectors;
	int r;

	r = repl_meta_save_regions(v, old_sectors >> v->region_shift,
				   v->nr_regions - 1);
	if (r)
		return r;
	v->sb->data_sectors = cpu_to_le64(v->sectors);
	v->sb->bm_sectors = cpu_to_le64(bm_nr_blocks(v) *
					DM_REPL_META_BLOCK_SECTORS);
	r = repl_meta_write_sb(v->meta_bdev, v);
	if (r) {
		v->sb->data_sectors = data;
		v->sb->bm_sectors = bm;
	}
	return r;
}

/* The whole bitmap, with FUA. */
int repl_meta_save_bitmap(struct repl_volume *v)
{
	return repl_meta_save_regions(v, 0, v->nr_regions - 1);
}

/*
 * A volume comes up: its dirty bitmap is the one on the metadata device,
 * plus, if a primary's device was not shut down cleanly, every region of
 * the extents its activity log names (saved at once: the AL starts afresh).
 * A secondary takes no write from above: what it applied, applied_seq says.
 * Then the superblock says "not clean" before any write can pass.
 */
int repl_meta_open(struct block_device *bdev, struct repl_volume *v,
		   char **error)
{
	bool clean = le32_to_cpu(v->sb->flags) & DM_REPL_META_F_CLEAN;
	u32 why = DM_REPL_BEHIND_LOADED;
	int r;

	r = bm_load(bdev, v);
	if (r) {
		*error = "Cannot read the metadata bitmap";
		return r;
	}
	bm_count(v);
	if (!clean && le32_to_cpu(v->sb->role) == DM_REPL_ROLE_PRIMARY) {
		r = recover(v);
		if (!r)
			r = repl_meta_save_bitmap(v);
		if (r) {
			*error = "Cannot recover from the activity log";
			return r;
		}
		why |= DM_REPL_BEHIND_CRASH;
	}
	if (atomic64_read(&v->dirty))
		repl_group_behind(v->group, why);
	r = repl_al_reset(v);
	if (r) {
		*error = "Cannot write the activity log";
		return r;
	}

	v->sb->flags &= cpu_to_le32(~DM_REPL_META_F_CLEAN);
	r = repl_meta_write_sb(bdev, v);
	if (r)
		*error = "Cannot write the metadata superblock";
	return r;
}

static void bm_fill_block(const struct repl_volume *v,
			  struct dm_repl_meta_bm_block *b, u64 index)
{
	const unsigned long *words = v->bitmap + index * BM_WORDS;
	const unsigned long *syncing = v->syncing + index * BM_WORDS;
	unsigned long i, n = bm_block_words(v, index);

	memset(b, 0, DM_REPL_META_BLOCK_SIZE);
	b->magic = cpu_to_le32(DM_REPL_META_BM_MAGIC);
	b->index = cpu_to_le64(index);
	memcpy(b->uuid, v->uuid, sizeof(b->uuid));
	for (i = 0; i < n; i++)
		b->bits[i] = cpu_to_le64(repl_dirty_word(words + i, syncing + i));
	b->crc = cpu_to_le32(repl_meta_crc(b,
				offsetof(struct dm_repl_meta_bm_block, crc)));
}

/*
 * Write the bitmap blocks that hold regions @first to @last, with FUA: for
 * the AL, whose extents go cold only when their dirty bits are on disk.
 */
int repl_meta_save_regions(struct repl_volume *v, unsigned long first,
			   unsigned long last)
{
	struct dm_repl_meta_bm_block *b;
	u64 i;
	int r = 0;

	might_sleep();
	b = kmalloc(DM_REPL_META_BLOCK_SIZE, GFP_KERNEL);
	if (!b)
		return -ENOMEM;
	for (i = first / DM_REPL_BM_BLOCK_BITS;
	     i <= last / DM_REPL_BM_BLOCK_BITS && !r; i++) {
		bm_fill_block(v, b, i);
		r = meta_io(v->meta_bdev, bm_block_sector(v, i), b,
			    REQ_OP_WRITE | REQ_FUA);
	}
	kfree(b);
	return r;
}

static sector_t al_slot_sector(const struct repl_volume *v, unsigned int slot)
{
	return le64_to_cpu(v->sb->al_offset) +
	       (sector_t)slot * DM_REPL_META_BLOCK_SECTORS;
}

int repl_meta_read_al(struct repl_volume *v, void *block, unsigned int slot)
{
	return meta_io(v->meta_bdev, al_slot_sector(v, slot), block,
		       REQ_OP_READ);
}

int repl_meta_zero_al(struct repl_volume *v, void *zero_block,
		      unsigned int slot)
{
	return meta_io(v->meta_bdev, al_slot_sector(v, slot), zero_block,
		       REQ_OP_WRITE | REQ_FUA);
}

/* Transaction @seq, its extents filled in by the caller, goes to its slot. */
int repl_meta_write_al(struct repl_volume *v, struct dm_repl_meta_al_slot *s,
		       u64 seq, unsigned int nr_extents)
{
	s->magic = cpu_to_le32(DM_REPL_META_AL_MAGIC);
	s->seq = cpu_to_le64(seq);
	s->nr_extents = cpu_to_le32(nr_extents);
	memcpy(s->uuid, v->uuid, sizeof(s->uuid));
	s->crc = 0;
	s->crc = cpu_to_le32(repl_meta_crc(s,
			offsetof(struct dm_repl_meta_al_slot, crc)));
	return meta_io(v->meta_bdev,
		       al_slot_sector(v, seq % le32_to_cpu(v->sb->al_slots)),
		       s, REQ_OP_WRITE | REQ_FUA);
}

/*
 * The volume goes away: its bitmap (with the regions of its records the
 * consumer has not released yet) reaches the metadata device, and only then
 * does the superblock say "clean".
 */
void repl_meta_close(struct block_device *bdev, struct repl_volume *v,
		     u64 released_seq)
{
	struct dm_repl_meta_bm_block *b;
	int r = 0;
	u64 i;

	/*
	 * "Clean" drops the activity log's extents: the writes in them, which
	 * the replica may have, must not be only in the data device's cache.
	 */
	if (le32_to_cpu(v->sb->role) == DM_REPL_ROLE_PRIMARY) {
		r = blkdev_issue_flush(v->data_bdev);
		if (r) {
			DMERR("%s: volume %u: cannot flush its data device (%d): the next load recovers from its activity log",
			      v->group->name, v->index, r);
			return;
		}
	}
	b = kmalloc(DM_REPL_META_BLOCK_SIZE, GFP_KERNEL);
	if (!b) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < bm_nr_blocks(v) && !r; i++) {
		bm_fill_block(v, b, i);
		r = meta_io(bdev, bm_block_sector(v, i), b, REQ_OP_WRITE);
	}
	kfree(b);
	if (r)
		goto out;
	v->sb->flags |= cpu_to_le32(DM_REPL_META_F_CLEAN);
	if (le32_to_cpu(v->sb->role) == DM_REPL_ROLE_PRIMARY)
		v->sb->released_seq = cpu_to_le64(released_seq);
	r = repl_meta_write_sb(bdev, v);
out:
	if (r)
		DMERR("%s: volume %u: cannot save its bitmap (%d): the next load will mark every region dirty",
		      v->group->name, v->index, r);
}
