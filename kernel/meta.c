// SPDX-License-Identifier: GPL-2.0
/*
 * The metadata device: reading and judging its superblock when a table is
 * loaded. The format is in uapi/linux/dm-repl.h and Documentation/metadata.md;
 * repltool meta create writes it. A table is refused unless the superblock
 * is intact, of a version this module knows, and made for this volume.
 */
#include <linux/bio.h>
#include <linux/crc32c.h>
#include <linux/slab.h>

#include "repl.h"

static int read_block0(struct block_device *bdev, void *buf)
{
	struct page *page = alloc_page(GFP_KERNEL);
	struct bio *bio;
	int r;

	if (!page)
		return -ENOMEM;
	bio = bio_alloc(bdev, 1, REQ_OP_READ | REQ_SYNC | REQ_META, GFP_KERNEL);
	bio->bi_iter.bi_sector = 0;
	__bio_add_page(bio, page, DM_REPL_META_BLOCK_SIZE, 0);
	r = submit_bio_wait(bio);
	bio_put(bio);
	if (!r)
		memcpy(buf, page_address(page), DM_REPL_META_BLOCK_SIZE);
	__free_page(page);
	return r;
}

static u32 block_crc(const void *block, size_t crc_offset)
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

	if (!is_power_of_2(region) ||
	    region < DM_REPL_META_REGION_SECTORS_MIN ||
	    region > DM_REPL_META_REGION_SECTORS_MAX)
		return "Metadata region size is invalid";
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
	if (block_crc(sb, offsetof(struct dm_repl_meta_sb, crc)) !=
	    le32_to_cpu(sb->crc))
		return "Metadata superblock checksum mismatch (repltool meta check)";
	if (le32_to_cpu(sb->flags) & ~DM_REPL_META_F_KNOWN)
		return "Metadata superblock has unknown flags";
	if (strncmp(sb->group, args->group, sizeof(sb->group)))
		return "Metadata belongs to another group";
	if (le32_to_cpu(sb->role) != DM_REPL_META_ROLE_PRIMARY)
		return "Metadata role is not primary";
	if (le64_to_cpu(sb->data_sectors) != args->data_sectors)
		return "Metadata was made for a data device of another size";
	if (args->region_kb && le32_to_cpu(sb->region_sectors) !=
	    args->region_kb << 1)
		return "region_kb differs from the metadata's";
	return check_layout(sb, args->meta_sectors);
}

/* Read and judge the superblock; fills @meta from it. */
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
	r = read_block0(bdev, sb);
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
	meta->region_kb = le32_to_cpu(sb->region_sectors) >> 1;
	meta->gen_current = le64_to_cpu(sb->gen_current);
out:
	kfree(sb);
	return r;
}
