// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The metadata device: geometry, superblock, activity log slots, bitmap
 * blocks. Documentation/metadata.md states the rules checked here.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "dmrepl.h"

#define BLOCK DM_REPL_META_BLOCK_SIZE
#define BLOCK_SECTORS DM_REPL_META_BLOCK_SECTORS
#define BM_WORDS (DM_REPL_BM_BLOCK_BITS / 64)

/* ---- helpers --------------------------------------------------------- */

static bool is_pow2(__u64 v)
{
	return v && !(v & (v - 1));
}

static bool all_zero(const void *p, size_t n)
{
	const unsigned char *c = p;

	while (n--)
		if (*c++)
			return false;
	return true;
}

/* Units of size unit needed to cover n (0 for a zero unit: no UB). */
static __u64 units(__u64 n, __u64 unit)
{
	if (!unit || !n)
		return 0;
	return (n - 1) / unit + 1;
}

/* crc32c of a block with its 4-byte crc field at crc_off taken as 0. */
static __u32 block_crc(const void *block, size_t crc_off)
{
	static const unsigned char zero[4];
	const unsigned char *p = block;
	__u32 crc;

	crc = dmrepl_crc32c(~0U, p, crc_off);
	crc = dmrepl_crc32c(crc, zero, sizeof(zero));
	return dmrepl_crc32c(crc, p + crc_off + 4, BLOCK - crc_off - 4);
}

/* ---- geometry ---------------------------------------------------------- */

static bool region_ok(__u64 region)
{
	return is_pow2(region) && region >= DM_REPL_META_REGION_SECTORS_MIN &&
	       region <= DM_REPL_META_REGION_SECTORS_MAX;
}

static bool extent_ok(__u64 extent, __u64 region)
{
	return is_pow2(extent) && extent >= region &&
	       extent <= DM_REPL_META_EXTENT_SECTORS_MAX;
}

static bool slots_ok(__u64 slots)
{
	return slots >= DM_REPL_META_AL_SLOTS_MIN && slots <= DM_REPL_META_AL_SLOTS_MAX;
}

static bool hot_ok(__u64 hot)
{
	return hot >= 1 && hot <= DM_REPL_AL_SLOT_EXTENTS;
}

/* Extent numbers are 32 bits wide. */
static bool extents_fit(__u64 data_sectors, __u64 extent)
{
	return units(data_sectors, extent) <= UINT32_MAX;
}

static const char *geom_problem(const struct dmrepl_meta_geom *g)
{
	if (!g->data_sectors)
		return "data device size is zero";
	if (!region_ok(g->region_sectors))
		return "region size is not a power of two from 4 KiB to 1 GiB";
	if (!extent_ok(g->extent_sectors, g->region_sectors))
		return "hot extent size is not a power of two from the region size to 1 GiB";
	if (!extents_fit(g->data_sectors, g->extent_sectors))
		return "data device has more hot extents than 32-bit extent numbers name";
	if (!slots_ok(g->al_slots))
		return "AL slot count is not from 2 to 1024";
	if (!hot_ok(g->hot_extents))
		return "hot extent count is not from 1 to 1008";
	return NULL;
}

/* The canonical layout: superblock, AL, bitmap, back to back. */
static void canonical(__u64 data_sectors, __u32 region, __u32 slots,
		      struct dmrepl_meta_layout *l)
{
	l->nr_regions = units(data_sectors, region);
	l->al_offset = BLOCK_SECTORS;
	l->al_sectors = (__u64)slots * BLOCK_SECTORS;
	l->bm_offset = l->al_offset + l->al_sectors;
	l->bm_blocks = units(l->nr_regions, DM_REPL_BM_BLOCK_BITS);
	l->bm_sectors = l->bm_blocks * BLOCK_SECTORS;
	l->end = l->bm_offset + l->bm_sectors;
}

int dmrepl_meta_layout(const struct dmrepl_meta_geom *g,
		       struct dmrepl_meta_layout *l, const char **why)
{
	const char *problem = geom_problem(g);

	if (problem) {
		if (why)
			*why = problem;
		return -EINVAL;
	}
	canonical(g->data_sectors, g->region_sectors, g->al_slots, l);
	l->nr_extents = units(g->data_sectors, g->extent_sectors);
	return 0;
}

int dmrepl_meta_min_bytes(__u64 data_sectors, __u32 region_sectors,
			  __u32 al_slots, __u64 *bytes)
{
	struct dmrepl_meta_layout l;

	if (!data_sectors || !region_ok(region_sectors) || !slots_ok(al_slots))
		return -EINVAL;
	canonical(data_sectors, region_sectors, al_slots, &l);
	*bytes = l.end * 512;
	return 0;
}

/* ---- superblock: names and values -------------------------------------- */

const char *dmrepl_meta_role_name(unsigned int role)
{
	switch (role) {
	case DM_REPL_META_ROLE_PRIMARY:
		return "primary";
	case DM_REPL_META_ROLE_SECONDARY:
		return "secondary";
	}
	return NULL;
}

unsigned int dmrepl_meta_role_parse(const char *name)
{
	if (!strcmp(name, "primary"))
		return DM_REPL_META_ROLE_PRIMARY;
	if (!strcmp(name, "secondary"))
		return DM_REPL_META_ROLE_SECONDARY;
	return 0;
}

void dmrepl_meta_uuid_str(const __u8 *u, char *buf)
{
	snprintf(buf, DMREPL_META_UUID_STR_LEN,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9],
		 u[10], u[11], u[12], u[13], u[14], u[15]);
}

/* The kernel's rule: 1-31 of [A-Za-z0-9_.+-], no leading dot; NUL-padded here. */
static bool group_ok(const char *name)
{
	size_t len = strnlen(name, DM_REPL_GROUP_NAME_MAX);
	size_t i;

	if (!len || len >= DM_REPL_GROUP_NAME_MAX || name[0] == '.')
		return false;
	for (i = 0; i < len; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') ||
		      (name[i] >= 'A' && name[i] <= 'Z') ||
		      (name[i] >= '0' && name[i] <= '9') || strchr("_.+-", name[i])))
			return false;
	return all_zero(name + len, DM_REPL_GROUP_NAME_MAX - len);
}

bool dmrepl_group_name_ok(const char name[DM_REPL_GROUP_NAME_MAX])
{
	return group_ok(name);
}

void dmrepl_meta_sb_geom(const struct dmrepl_meta_sb *sb, struct dmrepl_meta_geom *g)
{
	g->data_sectors = sb->data_sectors;
	g->region_sectors = sb->region_sectors;
	g->extent_sectors = sb->extent_sectors;
	g->al_slots = sb->al_slots;
	g->hot_extents = sb->hot_extents;
}

/* ---- superblock: a fresh one ------------------------------------------- */

static int fill_random(void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len) {
		ssize_t n = getrandom(p, len, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * A random (version 4, RFC 4122) volume UUID and, for a primary, a non-zero
 * generation; a secondary has none (0) until it takes its primary's.
 */
static int random_identity(struct dmrepl_meta_sb *sb)
{
	int ret = fill_random(sb->uuid, sizeof(sb->uuid));

	if (ret)
		return ret;
	sb->uuid[6] = (sb->uuid[6] & 0x0f) | 0x40;
	sb->uuid[8] = (sb->uuid[8] & 0x3f) | 0x80;
	if (sb->role != DM_REPL_META_ROLE_PRIMARY)
		return 0;
	do {
		ret = fill_random(&sb->gen_current, sizeof(sb->gen_current));
	} while (!ret && !sb->gen_current);
	return ret;
}

int dmrepl_meta_sb_init(struct dmrepl_meta_sb *sb, const char *group,
			unsigned int role, const struct dmrepl_meta_geom *g,
			__u64 ctime, const char **why)
{
	struct dmrepl_meta_layout l;
	int ret;

	memset(sb, 0, sizeof(*sb));
	if (strlen(group) >= sizeof(sb->group)) {
		*why = "group name is longer than 31 characters";
		return -EINVAL;
	}
	memcpy(sb->group, group, strlen(group));
	if (!group_ok(sb->group)) {
		*why = "group name is not 1-31 of [A-Za-z0-9_.+-], not starting with a dot";
		return -EINVAL;
	}
	if (!dmrepl_meta_role_name(role)) {
		*why = "role is neither primary nor secondary";
		return -EINVAL;
	}
	ret = dmrepl_meta_layout(g, &l, why);
	if (ret)
		return ret;
	sb->version = DM_REPL_META_VERSION;
	sb->flags = DM_REPL_META_F_CLEAN;
	sb->role = role;
	sb->data_sectors = g->data_sectors;
	sb->region_sectors = g->region_sectors;
	sb->extent_sectors = g->extent_sectors;
	sb->al_slots = g->al_slots;
	sb->hot_extents = g->hot_extents;
	sb->al_slot_bytes = BLOCK;
	sb->al_offset = l.al_offset;
	sb->bm_offset = l.bm_offset;
	sb->bm_sectors = l.bm_sectors;
	sb->ctime = ctime;
	return random_identity(sb);
}

/* ---- superblock: encoding ----------------------------------------------- */

void dmrepl_meta_sb_encode(const struct dmrepl_meta_sb *sb, void *block)
{
	struct dm_repl_meta_sb *d = block;
	unsigned int i;

	memset(block, 0, BLOCK);
	d->magic = htole32(DM_REPL_META_SB_MAGIC);
	d->version = htole32(sb->version);
	d->flags = htole32(sb->flags);
	memcpy(d->uuid, sb->uuid, sizeof(d->uuid));
	memcpy(d->group, sb->group, sizeof(d->group));
	d->role = htole32(sb->role);
	d->region_sectors = htole32(sb->region_sectors);
	d->data_sectors = htole64(sb->data_sectors);
	d->gen_current = htole64(sb->gen_current);
	d->gen_bitmap = htole64(sb->gen_bitmap);
	for (i = 0; i < DM_REPL_META_GEN_HISTORY; i++)
		d->gen_history[i] = htole64(sb->gen_history[i]);
	d->released_seq = htole64(sb->released_seq);
	d->applied_seq = htole64(sb->applied_seq);
	d->ctime = htole64(sb->ctime);
	d->al_offset = htole64(sb->al_offset);
	d->al_slots = htole32(sb->al_slots);
	d->al_slot_bytes = htole32(sb->al_slot_bytes);
	d->extent_sectors = htole32(sb->extent_sectors);
	d->hot_extents = htole32(sb->hot_extents);
	d->bm_offset = htole64(sb->bm_offset);
	d->bm_sectors = htole64(sb->bm_sectors);
	d->volume = htole16((__u16)sb->volume);
	d->stream = htole64(sb->stream);
	for (i = 0; i < DM_REPL_STREAM_HISTORY - 1; i++)
		d->stream_history[i] = htole64(sb->stream_history[i]);
	d->seq_next = htole64(sb->seq_next);
	d->next_epoch = htole64(sb->next_epoch);
	d->consistent_seq = htole64(sb->consistent_seq);
	d->consistent_time_ns = htole64(sb->consistent_time_ns);
	d->crc = htole32(block_crc(block, offsetof(struct dm_repl_meta_sb, crc)));
}

static void sb_fields(const struct dm_repl_meta_sb *d, struct dmrepl_meta_sb *sb)
{
	unsigned int i;

	sb->crc = le32toh(d->crc);
	sb->flags = le32toh(d->flags);
	memcpy(sb->uuid, d->uuid, sizeof(sb->uuid));
	memcpy(sb->group, d->group, sizeof(sb->group));
	sb->role = le32toh(d->role);
	sb->region_sectors = le32toh(d->region_sectors);
	sb->data_sectors = le64toh(d->data_sectors);
	sb->gen_current = le64toh(d->gen_current);
	sb->gen_bitmap = le64toh(d->gen_bitmap);
	for (i = 0; i < DM_REPL_META_GEN_HISTORY; i++)
		sb->gen_history[i] = le64toh(d->gen_history[i]);
	sb->released_seq = le64toh(d->released_seq);
	sb->applied_seq = le64toh(d->applied_seq);
	sb->ctime = le64toh(d->ctime);
	sb->al_offset = le64toh(d->al_offset);
	sb->al_slots = le32toh(d->al_slots);
	sb->al_slot_bytes = le32toh(d->al_slot_bytes);
	sb->extent_sectors = le32toh(d->extent_sectors);
	sb->hot_extents = le32toh(d->hot_extents);
	sb->bm_offset = le64toh(d->bm_offset);
	sb->bm_sectors = le64toh(d->bm_sectors);
	sb->volume = le16toh(d->volume);
	sb->stream = le64toh(d->stream);
	for (i = 0; i < DM_REPL_STREAM_HISTORY - 1; i++)
		sb->stream_history[i] = le64toh(d->stream_history[i]);
	sb->seq_next = le64toh(d->seq_next);
	sb->next_epoch = le64toh(d->next_epoch);
	sb->consistent_seq = le64toh(d->consistent_seq);
	sb->consistent_time_ns = le64toh(d->consistent_time_ns);
}

int dmrepl_meta_sb_decode(const void *block, struct dmrepl_meta_sb *sb,
			  const char **why)
{
	const struct dm_repl_meta_sb *d = block;
	const unsigned char *p = block;

	memset(sb, 0, sizeof(*sb));
	if (le32toh(d->magic) != DM_REPL_META_SB_MAGIC) {
		*why = "not dm-repl metadata (bad magic)";
		return -EMEDIUMTYPE;
	}
	sb->version = le32toh(d->version);
	if (sb->version == 0 || sb->version > DM_REPL_META_VERSION) {
		*why = sb->version ? "format version is newer than this reader knows" :
				     "format version 0 does not exist";
		return -EPROTO;
	}
	sb_fields(d, sb);
	if (le32toh(d->crc) != block_crc(block, offsetof(struct dm_repl_meta_sb, crc))) {
		*why = "checksum mismatch";
		return -EBADMSG;
	}
	if (d->reserved0 || d->reserved1 || !all_zero(d->reserved, sizeof(d->reserved)) ||
	    !all_zero(p + DM_REPL_META_SB_SIZE, BLOCK - DM_REPL_META_SB_SIZE)) {
		*why = "reserved bytes are not zero";
		return -EINVAL;
	}
	return 0;
}

/* ---- superblock: field rules ------------------------------------------- */

static bool sb_al_ok(const struct dmrepl_meta_sb *sb)
{
	return sb->al_offset >= BLOCK_SECTORS && sb->al_offset % BLOCK_SECTORS == 0 &&
	       slots_ok(sb->al_slots) && sb->al_slot_bytes == BLOCK;
}

static const char *rule_flags(const struct dmrepl_meta_sb *sb)
{
	if (sb->flags & ~DM_REPL_META_F_KNOWN)
		return "unknown flag bits are set";
	if ((sb->flags & DM_REPL_META_F_SEEDED) &&
	    (sb->role != DM_REPL_META_ROLE_SECONDARY || !(sb->flags & DM_REPL_META_F_INCONSISTENT)))
		return "SEEDED is set on a primary or without INCONSISTENT";
	return NULL;
}

static const char *rule_uuid(const struct dmrepl_meta_sb *sb)
{
	return all_zero(sb->uuid, sizeof(sb->uuid)) ? "volume UUID is all zero" : NULL;
}

static const char *rule_group(const struct dmrepl_meta_sb *sb)
{
	return group_ok(sb->group) ? NULL :
	       "group name is not 1-31 of [A-Za-z0-9_.+-], no leading dot, NUL-padded";
}

static const char *rule_role(const struct dmrepl_meta_sb *sb)
{
	return dmrepl_meta_role_name(sb->role) ? NULL :
	       "role is neither primary (1) nor secondary (2)";
}

static const char *rule_region(const struct dmrepl_meta_sb *sb)
{
	return region_ok(sb->region_sectors) ? NULL :
	       "region size is not a power of two from 8 to 2097152 sectors";
}

static const char *rule_data(const struct dmrepl_meta_sb *sb)
{
	return sb->data_sectors ? NULL : "data device size is zero";
}

static const char *rule_gen(const struct dmrepl_meta_sb *sb)
{
	return sb->gen_current || sb->role != DM_REPL_META_ROLE_PRIMARY ? NULL :
	       "current generation identifier is zero on a primary";
}

static const char *rule_al_offset(const struct dmrepl_meta_sb *sb)
{
	if (sb->al_offset >= BLOCK_SECTORS && sb->al_offset % BLOCK_SECTORS == 0)
		return NULL;
	return "AL does not start on a 4 KiB boundary after the superblock";
}

static const char *rule_al_slots(const struct dmrepl_meta_sb *sb)
{
	return slots_ok(sb->al_slots) ? NULL : "AL slot count is not from 2 to 1024";
}

static const char *rule_al_slot_bytes(const struct dmrepl_meta_sb *sb)
{
	return sb->al_slot_bytes == BLOCK ? NULL : "AL slot size is not 4096 bytes";
}

static const char *rule_extent(const struct dmrepl_meta_sb *sb)
{
	if (!region_ok(sb->region_sectors))
		return NULL;
	if (!extent_ok(sb->extent_sectors, sb->region_sectors))
		return "hot extent size is not a power of two from the region size to 2097152 sectors";
	if (!extents_fit(sb->data_sectors, sb->extent_sectors))
		return "data device has more hot extents than 32-bit extent numbers name";
	return NULL;
}

static const char *rule_hot(const struct dmrepl_meta_sb *sb)
{
	return hot_ok(sb->hot_extents) ? NULL : "hot extent count is not from 1 to 1008";
}

static const char *rule_bm_offset(const struct dmrepl_meta_sb *sb)
{
	if (!sb_al_ok(sb))
		return NULL;
	if (sb->bm_offset % BLOCK_SECTORS ||
	    sb->bm_offset < sb->al_offset + (__u64)sb->al_slots * BLOCK_SECTORS)
		return "bitmap does not start on a 4 KiB boundary after the AL";
	return NULL;
}

static const char *rule_bm_sectors(const struct dmrepl_meta_sb *sb)
{
	struct dmrepl_meta_layout l;

	if (!region_ok(sb->region_sectors) || !sb->data_sectors)
		return NULL;
	canonical(sb->data_sectors, sb->region_sectors, DM_REPL_META_AL_SLOTS_MIN, &l);
	if (sb->bm_sectors != l.bm_sectors)
		return "bitmap length does not match the data size and region size";
	return NULL;
}

static const char *rule_volume(const struct dmrepl_meta_sb *sb)
{
	return sb->volume < DM_REPL_MAX_VOLUMES ? NULL : "volume index is not from 0 to 63";
}

#define SB_FIELD(name) #name, offsetof(struct dm_repl_meta_sb, name)

static const struct {
	const char *field;
	unsigned int offset;
	const char *(*broken)(const struct dmrepl_meta_sb *sb);
} sb_rules[] = {
	{ SB_FIELD(flags), rule_flags },
	{ SB_FIELD(uuid), rule_uuid },
	{ SB_FIELD(group), rule_group },
	{ SB_FIELD(role), rule_role },
	{ SB_FIELD(region_sectors), rule_region },
	{ SB_FIELD(data_sectors), rule_data },
	{ SB_FIELD(gen_current), rule_gen },
	{ SB_FIELD(al_offset), rule_al_offset },
	{ SB_FIELD(al_slots), rule_al_slots },
	{ SB_FIELD(al_slot_bytes), rule_al_slot_bytes },
	{ SB_FIELD(extent_sectors), rule_extent },
	{ SB_FIELD(hot_extents), rule_hot },
	{ SB_FIELD(bm_offset), rule_bm_offset },
	{ SB_FIELD(bm_sectors), rule_bm_sectors },
	{ SB_FIELD(volume), rule_volume },
};

#define NR_SB_RULES (sizeof(sb_rules) / sizeof(sb_rules[0]))

int dmrepl_meta_sb_check(const struct dmrepl_meta_sb *sb, unsigned int *next,
			 const char **why, const char **field)
{
	const char *problem;

	for (; *next < NR_SB_RULES; (*next)++) {
		problem = sb_rules[*next].broken(sb);
		if (problem) {
			*why = problem;
			*field = sb_rules[*next].field;
			(*next)++;
			return -EINVAL;
		}
	}
	return 0;
}

unsigned int dmrepl_meta_sb_field_offset(const char *field)
{
	size_t i;

	for (i = 0; i < NR_SB_RULES; i++)
		if (!strcmp(sb_rules[i].field, field))
			return sb_rules[i].offset;
	return 0;
}

void dmrepl_meta_sb_layout(const struct dmrepl_meta_sb *sb, struct dmrepl_meta_layout *l)
{
	l->nr_regions = units(sb->data_sectors, sb->region_sectors);
	l->nr_extents = units(sb->data_sectors, sb->extent_sectors);
	l->al_offset = sb->al_offset;
	l->al_sectors = (__u64)sb->al_slots * BLOCK_SECTORS;
	l->bm_offset = sb->bm_offset;
	l->bm_sectors = sb->bm_sectors;
	l->bm_blocks = sb->bm_sectors / BLOCK_SECTORS;
	l->end = sb->bm_offset + sb->bm_sectors;
}

int dmrepl_meta_sb_fits(const struct dmrepl_meta_sb *sb, __u64 dev_bytes,
			__u64 *need, const char **why)
{
	struct dmrepl_meta_layout l;

	dmrepl_meta_sb_layout(sb, &l);
	if (need)
		*need = l.end * 512;
	if (dev_bytes / 512 >= l.end)
		return 0;
	*why = "device is smaller than the layout (truncated?)";
	return -ENOSPC;
}

/* ---- activity log ----------------------------------------------------- */

int dmrepl_meta_al_encode(void *block, const struct dmrepl_meta_sb *sb,
			  const struct dmrepl_meta_al_txn *t)
{
	struct dm_repl_meta_al_slot *s = block;
	__u32 i;

	if (!t->seq || t->nr_extents > sb->hot_extents ||
	    t->nr_extents > DM_REPL_AL_SLOT_EXTENTS)
		return -EINVAL;
	memset(block, 0, BLOCK);
	s->magic = htole32(DM_REPL_META_AL_MAGIC);
	s->seq = htole64(t->seq);
	s->nr_extents = htole32(t->nr_extents);
	memcpy(s->uuid, sb->uuid, sizeof(s->uuid));
	for (i = 0; i < t->nr_extents; i++)
		s->extents[i] = htole32(t->extents[i]);
	s->crc = htole32(block_crc(block, offsetof(struct dm_repl_meta_al_slot, crc)));
	return 0;
}

/* The rules after magic and crc; fills t. */
static const char *al_problem(const struct dm_repl_meta_al_slot *s,
			      const struct dmrepl_meta_sb *sb, __u32 index,
			      struct dmrepl_meta_al_txn *t)
{
	__u64 nr_extents = units(sb->data_sectors, sb->extent_sectors);
	__u32 i;

	if (s->reserved0 || !all_zero(s->reserved1, sizeof(s->reserved1)))
		return "reserved bytes are not zero";
	if (memcmp(s->uuid, sb->uuid, sizeof(s->uuid)))
		return "belongs to another volume (UUID differs from the superblock's)";
	t->seq = le64toh(s->seq);
	if (!t->seq)
		return "transaction sequence is zero";
	if (!sb->al_slots || t->seq % sb->al_slots != index)
		return "transaction sequence does not belong in this slot";
	t->nr_extents = le32toh(s->nr_extents);
	if (t->nr_extents > sb->hot_extents || t->nr_extents > DM_REPL_AL_SLOT_EXTENTS)
		return "names more extents than hot_extents";
	for (i = 0; i < t->nr_extents; i++) {
		t->extents[i] = le32toh(s->extents[i]);
		if (t->extents[i] >= nr_extents)
			return "names an extent beyond the end of the data device";
	}
	if (!all_zero(&s->extents[i], (DM_REPL_AL_SLOT_EXTENTS - i) * sizeof(s->extents[0])))
		return "an entry after nr_extents is not zero";
	return NULL;
}

int dmrepl_meta_al_decode(const void *block, const struct dmrepl_meta_sb *sb,
			  __u32 index, struct dmrepl_meta_al_txn *t, const char **why)
{
	const struct dm_repl_meta_al_slot *s = block;
	const char *problem;

	t->seq = 0;
	t->nr_extents = 0;
	if (all_zero(block, BLOCK))
		return 0;
	if (le32toh(s->magic) != DM_REPL_META_AL_MAGIC) {
		*why = "not an AL transaction (bad magic)";
		return -EBADMSG;
	}
	if (le32toh(s->crc) != block_crc(block, offsetof(struct dm_repl_meta_al_slot, crc))) {
		*why = "checksum mismatch";
		return -EBADMSG;
	}
	problem = al_problem(s, sb, index, t);
	if (problem) {
		*why = problem;
		return -EINVAL;
	}
	return 1;
}

/* The seq that slot index holds when max_seq is the newest; 0 if none yet. */
static __u64 expected_seq(__u32 slots, __u32 index, __u64 max_seq)
{
	__u64 back = (max_seq % slots + slots - index) % slots;

	return back >= max_seq ? 0 : max_seq - back;
}

enum dmrepl_meta_al_verdict dmrepl_meta_al_judge(const struct dmrepl_meta_sb *sb,
						 __u32 index, int decoded, __u64 seq,
						 __u64 max_seq, const char **why)
{
	__u64 want;

	if (!sb->al_slots)
		return DMREPL_AL_BAD;
	want = expected_seq(sb->al_slots, index, max_seq);
	if (decoded == -EBADMSG && (max_seq + 1) % sb->al_slots == index)
		return DMREPL_AL_TORN;
	if (decoded < 0)
		return DMREPL_AL_BAD;
	if (decoded == 0) {
		if (!want)
			return DMREPL_AL_UNUSED;
		*why = "empty, but a transaction belongs in this slot";
		return DMREPL_AL_BAD;
	}
	if (seq == want)
		return DMREPL_AL_CURRENT;
	*why = "stale transaction: a newer one belongs in this slot";
	return DMREPL_AL_BAD;
}

/* ---- bitmap ------------------------------------------------------------- */

void dmrepl_meta_bm_encode(void *block, const struct dmrepl_meta_sb *sb,
			   __u64 index, const void *bits)
{
	struct dm_repl_meta_bm_block *b = block;

	memset(block, 0, BLOCK);
	b->magic = htole32(DM_REPL_META_BM_MAGIC);
	b->index = htole64(index);
	memcpy(b->uuid, sb->uuid, sizeof(b->uuid));
	if (bits)
		memcpy(b->bits, bits, sizeof(b->bits));
	b->crc = htole32(block_crc(block, offsetof(struct dm_repl_meta_bm_block, crc)));
}

/* Bits of block index that stand for regions of the device. */
static __u64 bits_in_block(const struct dmrepl_meta_sb *sb, __u64 index)
{
	__u64 regions = units(sb->data_sectors, sb->region_sectors);
	__u64 first = index * DM_REPL_BM_BLOCK_BITS;

	if (first >= regions)
		return 0;
	return regions - first < DM_REPL_BM_BLOCK_BITS ? regions - first :
							 DM_REPL_BM_BLOCK_BITS;
}

void dmrepl_meta_bm_encode_dirty(void *block, const struct dmrepl_meta_sb *sb,
				 __u64 index)
{
	__le64 bits[BM_WORDS] = { 0 };
	__u64 valid = bits_in_block(sb, index);
	unsigned int w;

	for (w = 0; w < BM_WORDS && valid; w++) {
		unsigned int n = valid < 64 ? (unsigned int)valid : 64;

		bits[w] = htole64(n == 64 ? ~0ULL : (1ULL << n) - 1);
		valid -= n;
	}
	dmrepl_meta_bm_encode(block, sb, index, bits);
}

/* Count dirty bits; false if a bit past the last region is set. */
static bool count_bits(const struct dm_repl_meta_bm_block *b, __u64 valid, __u64 *dirty)
{
	unsigned int w;

	*dirty = 0;
	for (w = 0; w < BM_WORDS; w++) {
		__u64 word = le64toh(b->bits[w]);
		__u64 first = (__u64)w * 64;
		__u64 mask = valid <= first ? 0 :
			     valid - first >= 64 ? ~0ULL : (1ULL << (valid - first)) - 1;

		if (word & ~mask)
			return false;
		*dirty += (__u64)__builtin_popcountll(word);
	}
	return true;
}

int dmrepl_meta_bm_decode(const void *block, const struct dmrepl_meta_sb *sb,
			  __u64 index, __u64 *dirty, const char **why)
{
	const struct dm_repl_meta_bm_block *b = block;

	*dirty = 0;
	if (le32toh(b->magic) != DM_REPL_META_BM_MAGIC) {
		*why = "not a bitmap block (bad magic)";
		return -EINVAL;
	}
	if (le32toh(b->crc) != block_crc(block, offsetof(struct dm_repl_meta_bm_block, crc))) {
		*why = "checksum mismatch";
		return -EBADMSG;
	}
	if (le64toh(b->index) != index) {
		*why = "block number does not match its position";
		return -EINVAL;
	}
	if (memcmp(b->uuid, sb->uuid, sizeof(b->uuid))) {
		*why = "belongs to another volume (UUID differs from the superblock's)";
		return -EINVAL;
	}
	if (!all_zero(b->reserved, sizeof(b->reserved))) {
		*why = "reserved bytes are not zero";
		return -EINVAL;
	}
	if (!count_bits(b, bits_in_block(sb, index), dirty)) {
		*why = "a bit past the last region of the data device is set";
		return -EINVAL;
	}
	return 0;
}
