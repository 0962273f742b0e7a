// SPDX-License-Identifier: GPL-2.0
/*
 * The metadata format (libdmrepl's dmrepl_meta_*) and "repltool meta
 * create|show|check" on regular files: round trips, what create refuses,
 * and each corruption check finds, with its own message.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dmrepl.h"
#include "kselftest_harness.h"
#include "runtool.h"

#define BLOCK DM_REPL_META_BLOCK_SIZE
/* 1 GiB of data, 64 KiB regions, 16 slots: 16384 regions, one bitmap block. */
#define DATA_SECTORS "2097152"
#define LAYOUT_BYTES (BLOCK * (1 + 16 + 1))
#define AL_SLOT_OFF(i) (BLOCK * (1 + (i)))
#define BM_OFF (BLOCK * 17)

FIXTURE(meta) {
	char path[64];
	struct run r;
};

static void make_file(const char *path, off_t size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || ftruncate(fd, size))
		abort();
	close(fd);
}

FIXTURE_SETUP(meta)
{
	int fd;

	memset(&self->r, 0, sizeof(self->r));
	snprintf(self->path, sizeof(self->path), "/tmp/dmrepl-meta-XXXXXX");
	fd = mkstemp(self->path);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ftruncate(fd, 1 << 20));
	close(fd);
}

FIXTURE_TEARDOWN(meta)
{
	unlink(self->path);
	free(self->r.out);
}

static void rd(const char *path, void *buf, size_t len, off_t off)
{
	int fd = open(path, O_RDONLY);

	if (fd < 0 || pread(fd, buf, len, off) != (ssize_t)len)
		abort();
	close(fd);
}

static void wr(const char *path, const void *buf, size_t len, off_t off)
{
	int fd = open(path, O_WRONLY);

	if (fd < 0 || pwrite(fd, buf, len, off) != (ssize_t)len)
		abort();
	close(fd);
}

static void flip_byte(const char *path, off_t off)
{
	unsigned char c;

	rd(path, &c, 1, off);
	c ^= 0x10;
	wr(path, &c, 1, off);
}

static int create(struct run *r, const char *path)
{
	run_tool(r, "meta", "create", "--group", "vm1", "--data-sectors", DATA_SECTORS,
		 path, NULL);
	return r->status;
}

/* Metadata of a new volume over whatever path holds. */
static int create_force_other(struct run *r, const char *path)
{
	run_tool(r, "meta", "create", "--force", "--group", "vm1", "--data-sectors",
		 DATA_SECTORS, path, NULL);
	return r->status;
}

/* The superblock of path, decoded (its crc may be wrong). */
static int read_sb(const char *path, struct dmrepl_meta_sb *sb)
{
	static unsigned char block[BLOCK] __attribute__((aligned(8)));
	const char *why;

	rd(path, block, BLOCK, 0);
	return dmrepl_meta_sb_decode(block, sb, &why);
}

/* Encode sb back to path with a good crc. */
static void write_sb(const char *path, const struct dmrepl_meta_sb *sb)
{
	static unsigned char block[BLOCK] __attribute__((aligned(8)));

	dmrepl_meta_sb_encode(sb, block);
	wr(path, block, BLOCK, 0);
}

/* AL transaction seq naming extents first..first+n-1, into slot index. */
static void put_txn(const char *path, __u32 index, __u64 seq, __u32 first, __u32 n)
{
	static unsigned char block[BLOCK] __attribute__((aligned(8)));
	static struct dmrepl_meta_al_txn t;
	struct dmrepl_meta_sb sb;
	__u32 i;

	if (read_sb(path, &sb))
		abort();
	t.seq = seq;
	t.nr_extents = n;
	for (i = 0; i < n; i++)
		t.extents[i] = first + i;
	if (dmrepl_meta_al_encode(block, &sb, &t))
		abort();
	wr(path, block, BLOCK, AL_SLOT_OFF(index));
}

static void check_finds(struct __test_metadata *_metadata, struct run *r,
			const char *path, const char *line)
{
	run_tool(r, "meta", "check", path, NULL);
	ASSERT_EQ(1, r->status) TH_LOG("%s", r->out);
	ASSERT_NE(NULL, strstr(r->out, line)) TH_LOG("wanted \"%s\" in:\n%s", line, r->out);
}

#define CHECK_FINDS(line) check_finds(_metadata, &self->r, self->path, line)

/* ---- round trip --------------------------------------------------------- */

TEST_F(meta, create_show_check_round_trip)
{
	ASSERT_EQ(0, create(&self->r, self->path)) TH_LOG("%s", self->r.err);
	ASSERT_NE(NULL, strstr(self->r.out, "dm-repl metadata version 1 created: group vm1"));
	run_tool(&self->r, "meta", "show", self->path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	EXPECT_NE(NULL, strstr(self->r.out, "\ngroup           vm1\n"));
	EXPECT_NE(NULL, strstr(self->r.out, "\nrole            primary\n"));
	EXPECT_NE(NULL, strstr(self->r.out, "\nflags           CLEAN\n"));
	EXPECT_NE(NULL, strstr(self->r.out, "\nnr_regions      16384\n"));
	EXPECT_NE(NULL, strstr(self->r.out, "\nmeta_sectors    144\n"));
	EXPECT_NE(NULL, strstr(self->r.out, "\nbm_dirty        0\n"));
	run_tool(&self->r, "meta", "check", self->path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.out);
	ASSERT_NE(NULL, strstr(self->r.out, ": no problems: superblock, 16 AL slots (0 in use), "
			       "1 bitmap blocks (0 dirty regions)\n"));
}

TEST_F(meta, show_json_has_the_same_fields_as_text)
{
	static const char *keys[] = {
		"device", "magic", "version", "crc", "flags", "uuid", "group", "role",
		"volume", "gen_current", "gen_bitmap", "gen_history", "released_seq",
		"applied_seq", "stream", "stream_history", "seq_next", "next_epoch",
		"consistent_seq", "consistent_time_ns", "ctime", "data_sectors",
		"region_sectors", "nr_regions",
		"extent_sectors", "hot_extents", "al_offset", "al_slots",
		"al_slot_bytes", "bm_offset", "bm_sectors", "meta_sectors", "al_in_use",
		"al_last_seq", "al_hot_extents", "bm_dirty", "bm_bad_blocks",
	};
	char text[8192], want[64], uuid[DMREPL_META_UUID_STR_LEN];
	struct dmrepl_meta_sb sb;
	size_t i;

	ASSERT_EQ(0, create(&self->r, self->path));
	run_tool(&self->r, "meta", "show", self->path, NULL);
	ASSERT_EQ(0, self->r.status);
	snprintf(text, sizeof(text), "\n%s", self->r.out);
	run_tool(&self->r, "m", "s", "-j", self->path, NULL);
	ASSERT_EQ(0, self->r.status);
	ASSERT_EQ('{', self->r.out[0]);
	ASSERT_EQ(0, strcmp(self->r.out + self->r.out_len - 2, "}\n"));
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		snprintf(want, sizeof(want), "\n%s ", keys[i]);
		EXPECT_NE(NULL, strstr(text, want)) TH_LOG("text lacks %s", keys[i]);
		snprintf(want, sizeof(want), "\"%s\":", keys[i]);
		EXPECT_NE(NULL, strstr(self->r.out, want)) TH_LOG("JSON lacks %s", keys[i]);
	}
	ASSERT_EQ(0, read_sb(self->path, &sb));
	dmrepl_meta_uuid_str(sb.uuid, uuid);
	snprintf(want, sizeof(want), "\"uuid\":\"%s\"", uuid);
	EXPECT_NE(NULL, strstr(self->r.out, want));
	EXPECT_NE(NULL, strstr(self->r.out, "\"group\":\"vm1\",\"role\":\"primary\",\"volume\":0,"));
	EXPECT_NE(NULL, strstr(self->r.out, "\"flags\":[\"CLEAN\"]"));
	EXPECT_NE(NULL, strstr(self->r.out, "\"nr_regions\":16384,"));
}

TEST_F(meta, show_counts_dirty_bits_and_al_transactions)
{
	static unsigned char block[BLOCK] __attribute__((aligned(8)));
	unsigned char bits[DM_REPL_BM_BLOCK_BITS / 8] = { 0 };
	struct dmrepl_meta_sb sb;

	ASSERT_EQ(0, create(&self->r, self->path));
	put_txn(self->path, 1, 1, 10, 3);	/* extents 10 11 12 */
	put_txn(self->path, 2, 2, 11, 4);	/* extents 11 .. 14 */
	ASSERT_EQ(0, read_sb(self->path, &sb));
	bits[0] = 0x81;
	bits[2047] = 0x01;			/* region 16376, the last byte */
	dmrepl_meta_bm_encode(block, &sb, 0, bits);
	wr(self->path, block, BLOCK, BM_OFF);
	run_tool(&self->r, "meta", "show", "--json", self->path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	EXPECT_NE(NULL, strstr(self->r.out, "\"al_in_use\":2,\"al_last_seq\":2,\"al_torn\":0,"
			       "\"al_bad\":0,\"al_hot_extents\":5,"));
	EXPECT_NE(NULL, strstr(self->r.out, "\"bm_dirty\":3}"));
	run_tool(&self->r, "meta", "check", self->path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.out);
	EXPECT_NE(NULL, strstr(self->r.out, "16 AL slots (2 in use), 1 bitmap blocks (3 dirty"));
}

TEST_F(meta, create_takes_the_size_from_data_dev_and_the_options)
{
	char data[80];
	struct dmrepl_meta_sb sb;

	snprintf(data, sizeof(data), "%s.data", self->path);
	make_file(data, 3 << 20);
	run_tool(&self->r, "meta", "create", "--group", "g.2", "--role", "secondary",
		 "--region-kb", "4", "--extent-kb", "1024", "--al-slots", "4",
		 "--hot-extents", "7", "--data-dev", data, self->path, NULL);
	unlink(data);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	ASSERT_EQ(0, read_sb(self->path, &sb));
	EXPECT_EQ(6144U, sb.data_sectors);
	EXPECT_EQ(8U, sb.region_sectors);
	EXPECT_EQ(2048U, sb.extent_sectors);
	EXPECT_EQ(4U, sb.al_slots);
	EXPECT_EQ(7U, sb.hot_extents);
	EXPECT_EQ((__u32)DM_REPL_META_ROLE_SECONDARY, sb.role);
	EXPECT_EQ(8U + 4 * 8, sb.bm_offset);
	EXPECT_EQ(8U, sb.bm_sectors);
	EXPECT_STREQ("g.2", sb.group);
}

TEST_F(meta, create_initial_sync_dirties_every_region_of_a_primary_and_no_more)
{
	run_tool(&self->r, "meta", "create", "--initial-sync", "--group", "vm1",
		 "--data-sectors", DATA_SECTORS, self->path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	run_tool(&self->r, "meta", "show", "--json", self->path, NULL);
	EXPECT_NE(NULL, strstr(self->r.out, "\"bm_dirty\":16384}")) TH_LOG("%s", self->r.out);
	EXPECT_NE(NULL, strstr(self->r.out, "\"flags\":[\"CLEAN\"]"));
	/* 125 regions: the last word of the block is partly past the end. */
	run_tool(&self->r, "meta", "create", "--force", "--initial-sync", "--group", "vm1",
		 "--region-kb", "4", "--data-sectors", "1000", self->path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	run_tool(&self->r, "meta", "check", self->path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.out);
	EXPECT_NE(NULL, strstr(self->r.out, "(125 dirty")) TH_LOG("%s", self->r.out);
}

TEST_F(meta, create_initial_sync_makes_a_secondary_inconsistent_and_clean)
{
	run_tool(&self->r, "meta", "create", "--initial-sync", "--role", "secondary",
		 "--group", "vm1", "--data-sectors", DATA_SECTORS, self->path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	run_tool(&self->r, "meta", "show", "--json", self->path, NULL);
	EXPECT_NE(NULL, strstr(self->r.out, "\"flags\":[\"CLEAN\",\"INCONSISTENT\"]"))
		TH_LOG("%s", self->r.out);
	EXPECT_NE(NULL, strstr(self->r.out, "\"bm_dirty\":0}"));
}

TEST_F(meta, create_seeded_makes_a_secondary_inconsistent_seeded_and_all_dirty)
{
	run_tool(&self->r, "meta", "create", "--seeded", "--role", "secondary",
		 "--group", "vm1", "--data-sectors", DATA_SECTORS, self->path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	run_tool(&self->r, "meta", "show", "--json", self->path, NULL);
	EXPECT_NE(NULL, strstr(self->r.out, "\"flags\":[\"CLEAN\",\"INCONSISTENT\",\"SEEDED\"]"))
		TH_LOG("%s", self->r.out);
	EXPECT_NE(NULL, strstr(self->r.out, "\"bm_dirty\":16384}")) TH_LOG("%s", self->r.out);
	run_tool(&self->r, "meta", "check", self->path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.out);
}

TEST_F(meta, create_seeded_is_for_a_secondary_without_initial_sync)
{
	run_tool(&self->r, "meta", "create", "--seeded", "--group", "vm1",
		 "--data-sectors", DATA_SECTORS, self->path, NULL);
	ASSERT_EQ(2, self->r.status);
	ASSERT_NE(NULL, strstr(self->r.err, "--seeded is for --role secondary only"))
		TH_LOG("%s", self->r.err);
	run_tool(&self->r, "meta", "create", "--seeded", "--initial-sync", "--role", "secondary",
		 "--group", "vm1", "--data-sectors", DATA_SECTORS, self->path, NULL);
	ASSERT_EQ(2, self->r.status);
	ASSERT_NE(NULL, strstr(self->r.err, "--seeded and --initial-sync exclude each other"))
		TH_LOG("%s", self->r.err);
	/* Nothing was written. */
	run_tool(&self->r, "meta", "show", self->path, NULL);
	ASSERT_NE(0, self->r.status);
}

TEST_F(meta, check_takes_seeded_only_on_an_inconsistent_secondary)
{
	struct dmrepl_meta_sb sb;

	ASSERT_EQ(0, create(&self->r, self->path));
	ASSERT_EQ(0, read_sb(self->path, &sb));
	sb.flags = DM_REPL_META_F_CLEAN | DM_REPL_META_F_INCONSISTENT | DM_REPL_META_F_SEEDED;
	write_sb(self->path, &sb);
	CHECK_FINDS(": superblock field flags at byte 12: "
		    "SEEDED is set on a primary or without INCONSISTENT\n");
	sb.role = DM_REPL_META_ROLE_SECONDARY;
	sb.flags = DM_REPL_META_F_CLEAN | DM_REPL_META_F_SEEDED;
	write_sb(self->path, &sb);
	CHECK_FINDS(": superblock field flags at byte 12: "
		    "SEEDED is set on a primary or without INCONSISTENT\n");
	sb.flags = DM_REPL_META_F_CLEAN | DM_REPL_META_F_INCONSISTENT | DM_REPL_META_F_SEEDED;
	write_sb(self->path, &sb);
	run_tool(&self->r, "meta", "check", self->path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.out);
	run_tool(&self->r, "meta", "show", self->path, NULL);
	EXPECT_NE(NULL, strstr(self->r.out, "\nflags           CLEAN INCONSISTENT SEEDED\n"))
		TH_LOG("%s", self->r.out);
}

TEST_F(meta, show_names_the_rejoin_flag)
{
	struct dmrepl_meta_sb sb;

	ASSERT_EQ(0, create(&self->r, self->path));
	ASSERT_EQ(0, read_sb(self->path, &sb));
	sb.role = DM_REPL_META_ROLE_SECONDARY;
	sb.flags = DM_REPL_META_F_CLEAN | DM_REPL_META_F_REJOIN;
	write_sb(self->path, &sb);
	run_tool(&self->r, "meta", "show", self->path, NULL);
	EXPECT_NE(NULL, strstr(self->r.out, "\nflags           CLEAN REJOIN\n"))
		TH_LOG("%s", self->r.out);
}

TEST_F(meta, create_stores_the_volume_index_and_show_prints_it)
{
	struct dmrepl_meta_sb sb;

	run_tool(&self->r, "meta", "create", "--group", "vm1", "--volume", "63",
		 "--data-sectors", DATA_SECTORS, self->path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	ASSERT_NE(NULL, strstr(self->r.out, "created: group vm1, primary, volume index 63, uuid "));
	ASSERT_EQ(0, read_sb(self->path, &sb));
	EXPECT_EQ(63U, sb.volume);
	run_tool(&self->r, "meta", "show", self->path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	EXPECT_NE(NULL, strstr(self->r.out, "\nrole            primary\nvolume          63\n"));
	run_tool(&self->r, "meta", "check", self->path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.out);
	/* The default is 0, at offset 192, little-endian. */
	ASSERT_EQ(0, create_force_other(&self->r, self->path));
	ASSERT_EQ(0, read_sb(self->path, &sb));
	EXPECT_EQ(0U, sb.volume);
}

TEST_F(meta, volume_is_a_le16_at_192)
{
	static unsigned char block[BLOCK] __attribute__((aligned(8)));

	run_tool(&self->r, "meta", "create", "--group", "vm1", "--volume", "7",
		 "--data-sectors", DATA_SECTORS, self->path, NULL);
	ASSERT_EQ(0, self->r.status);
	rd(self->path, block, BLOCK, 0);
	EXPECT_EQ(7, block[192]);
	EXPECT_EQ(0, block[193]);
}

TEST_F(meta, show_prints_the_sequences_and_every_flag)
{
	struct dmrepl_meta_sb sb;

	ASSERT_EQ(0, create(&self->r, self->path));
	ASSERT_EQ(0, read_sb(self->path, &sb));
	sb.flags = DM_REPL_META_F_CLEAN | DM_REPL_META_F_INCONSISTENT | DM_REPL_META_F_OUTDATED;
	sb.applied_seq = 1234;
	sb.released_seq = 77;
	write_sb(self->path, &sb);
	run_tool(&self->r, "meta", "show", self->path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	EXPECT_NE(NULL, strstr(self->r.out, "\nflags           CLEAN INCONSISTENT OUTDATED\n"))
		TH_LOG("%s", self->r.out);
	EXPECT_NE(NULL, strstr(self->r.out, "\nreleased_seq    77\napplied_seq     1234\n"));
	run_tool(&self->r, "meta", "show", "-j", self->path, NULL);
	EXPECT_NE(NULL, strstr(self->r.out, "\"flags\":[\"CLEAN\",\"INCONSISTENT\",\"OUTDATED\"]"));
	EXPECT_NE(NULL, strstr(self->r.out, "\"released_seq\":77,\"applied_seq\":1234,"));
	sb.flags = DM_REPL_META_F_INCONSISTENT;
	write_sb(self->path, &sb);
	run_tool(&self->r, "meta", "show", self->path, NULL);
	EXPECT_NE(NULL, strstr(self->r.out, "\nflags           INCONSISTENT\n"));
	sb.flags = DM_REPL_META_F_OUTDATED;
	write_sb(self->path, &sb);
	run_tool(&self->r, "meta", "show", self->path, NULL);
	EXPECT_NE(NULL, strstr(self->r.out, "\nflags           OUTDATED\n"));
	sb.flags = 0;
	write_sb(self->path, &sb);
	run_tool(&self->r, "meta", "show", self->path, NULL);
	EXPECT_NE(NULL, strstr(self->r.out, "\nflags           -\n"));
	run_tool(&self->r, "meta", "check", self->path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.out);
}

TEST_F(meta, check_finds_a_volume_index_of_64)
{
	struct dmrepl_meta_sb sb;

	ASSERT_EQ(0, create(&self->r, self->path));
	ASSERT_EQ(0, read_sb(self->path, &sb));
	sb.volume = DM_REPL_MAX_VOLUMES;
	write_sb(self->path, &sb);
	CHECK_FINDS(": superblock field volume at byte 192: volume index is not from 0 to 63\n");
	ASSERT_NE(NULL, strstr(self->r.out, ": 1 problem found\n")) TH_LOG("%s", self->r.out);
	run_tool(&self->r, "meta", "show", self->path, NULL);
	ASSERT_EQ(1, self->r.status);
}

/* Set byte off of the superblock and seal it again: only a rule can notice. */
static void poke_sealed(const char *path, size_t off, unsigned char v)
{
	static unsigned char block[BLOCK] __attribute__((aligned(8)));
	static const unsigned char zero[4];
	__u32 crc;

	rd(path, block, BLOCK, 0);
	block[off] = v;
	crc = dmrepl_crc32c(~0U, block, 8);
	crc = dmrepl_crc32c(crc, zero, 4);
	crc = dmrepl_crc32c(crc, block + 12, BLOCK - 12);
	crc = htole32(crc);
	memcpy(block + 8, &crc, 4);
	wr(path, block, BLOCK, 0);
}

TEST_F(meta, check_finds_reserved_bytes_after_the_volume_field)
{
	static const size_t reserved[] = {
		194, 195,			/* reserved0 */
		196, 199,			/* reserved1 */
		264, 300, DM_REPL_META_SB_SIZE - 1,	/* reserved, after the streams */
	};
	size_t i;

	ASSERT_EQ(264U, offsetof(struct dm_repl_meta_sb, reserved));
	for (i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
		ASSERT_EQ(0, create_force_other(&self->r, self->path));
		poke_sealed(self->path, reserved[i], 1);
		CHECK_FINDS(": superblock at byte 0: reserved bytes are not zero\n");
	}
	/* What was reserved before streams (200..263) no longer is. */
	ASSERT_EQ(0, create_force_other(&self->r, self->path));
	poke_sealed(self->path, 200, 1);	/* stream 1 */
	run_tool(&self->r, "meta", "check", self->path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.out);
	ASSERT_EQ(0, create_force_other(&self->r, self->path));
	poke_sealed(self->path, 193, 1);	/* volume 256: a field rule */
	CHECK_FINDS(": superblock field volume at byte 192: volume index is not from 0 to 63\n");
}

TEST(superblock_stream_fields_are_at_their_offsets)
{
	ASSERT_EQ(512U, sizeof(struct dm_repl_meta_sb));
	ASSERT_EQ((size_t)DM_REPL_META_SB_SIZE, sizeof(struct dm_repl_meta_sb));
	ASSERT_EQ(192U, offsetof(struct dm_repl_meta_sb, volume));
	ASSERT_EQ(194U, offsetof(struct dm_repl_meta_sb, reserved0));
	ASSERT_EQ(196U, offsetof(struct dm_repl_meta_sb, reserved1));
	ASSERT_EQ(200U, offsetof(struct dm_repl_meta_sb, stream));
	ASSERT_EQ(208U, offsetof(struct dm_repl_meta_sb, stream_history));
	ASSERT_EQ(232U, offsetof(struct dm_repl_meta_sb, seq_next));
	ASSERT_EQ(240U, offsetof(struct dm_repl_meta_sb, next_epoch));
	ASSERT_EQ(248U, offsetof(struct dm_repl_meta_sb, consistent_seq));
	ASSERT_EQ(256U, offsetof(struct dm_repl_meta_sb, consistent_time_ns));
	ASSERT_EQ(264U, offsetof(struct dm_repl_meta_sb, reserved));
	ASSERT_EQ(1U << 2, DM_REPL_META_F_OUTDATED);
	ASSERT_NE(0U, DM_REPL_META_F_KNOWN & DM_REPL_META_F_OUTDATED);
	ASSERT_EQ(1U << 4, DM_REPL_META_F_SEEDED);
	ASSERT_NE(0U, DM_REPL_META_F_KNOWN & DM_REPL_META_F_SEEDED);
}

/* An le64 at off of a block. */
static __u64 le64_at(const unsigned char *block, size_t off)
{
	__u64 v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = (v << 8) | block[off + (size_t)i];
	return v;
}

TEST_F(meta, stream_fields_round_trip_little_endian_and_show_prints_them)
{
	static unsigned char block[BLOCK] __attribute__((aligned(8)));
	struct dmrepl_meta_sb sb, back;
	const char *why = NULL;
	size_t off;

	ASSERT_EQ(0, create(&self->r, self->path));
	ASSERT_EQ(0, read_sb(self->path, &sb));
	/* A new volume: no stream yet. */
	EXPECT_EQ(0ULL, sb.stream);
	EXPECT_EQ(0ULL, sb.seq_next);
	sb.flags = DM_REPL_META_F_OUTDATED;
	sb.stream = 0x0123456789abcdefULL;
	sb.stream_history[0] = 0x1111111111111111ULL;
	sb.stream_history[1] = 0x2222222222222222ULL;
	sb.stream_history[2] = 0x8000000000000003ULL;
	sb.seq_next = 5000;
	sb.next_epoch = 77;
	sb.consistent_seq = 4321;
	sb.consistent_time_ns = 1700000000123456789ULL;
	write_sb(self->path, &sb);

	rd(self->path, block, BLOCK, 0);
	EXPECT_EQ(0x0123456789abcdefULL, le64_at(block, 200));
	EXPECT_EQ(0xef, block[200]);			/* low byte first */
	EXPECT_EQ(0x1111111111111111ULL, le64_at(block, 208));
	EXPECT_EQ(0x2222222222222222ULL, le64_at(block, 216));
	EXPECT_EQ(0x8000000000000003ULL, le64_at(block, 224));
	EXPECT_EQ(5000ULL, le64_at(block, 232));
	EXPECT_EQ(77ULL, le64_at(block, 240));
	EXPECT_EQ(4321ULL, le64_at(block, 248));
	EXPECT_EQ(1700000000123456789ULL, le64_at(block, 256));
	for (off = 264; off < DM_REPL_META_SB_SIZE; off++)
		ASSERT_EQ(0, block[off]) TH_LOG("byte %zu", off);
	for (off = 194; off < 200; off++)
		ASSERT_EQ(0, block[off]) TH_LOG("byte %zu", off);

	ASSERT_EQ(0, dmrepl_meta_sb_decode(block, &back, &why)) TH_LOG("%s", why);
	EXPECT_EQ(sb.stream, back.stream);
	EXPECT_EQ(sb.stream_history[0], back.stream_history[0]);
	EXPECT_EQ(sb.stream_history[1], back.stream_history[1]);
	EXPECT_EQ(sb.stream_history[2], back.stream_history[2]);
	EXPECT_EQ(sb.seq_next, back.seq_next);
	EXPECT_EQ(sb.next_epoch, back.next_epoch);
	EXPECT_EQ(sb.consistent_seq, back.consistent_seq);
	EXPECT_EQ(sb.consistent_time_ns, back.consistent_time_ns);
	EXPECT_EQ((__u32)DM_REPL_META_F_OUTDATED, back.flags);

	/* Covered by the crc. */
	flip_byte(self->path, 205);
	run_tool(&self->r, "meta", "check", self->path, NULL);
	ASSERT_EQ(1, self->r.status);
	ASSERT_NE(NULL, strstr(self->r.out, ": superblock at byte 0: checksum mismatch\n"))
		TH_LOG("%s", self->r.out);
	flip_byte(self->path, 205);

	run_tool(&self->r, "meta", "check", self->path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.out);
	run_tool(&self->r, "meta", "show", "-j", self->path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	EXPECT_NE(NULL, strstr(self->r.out, "\"stream\":\"0x0123456789abcdef\",\"stream_history\":"
			       "[\"0x1111111111111111\",\"0x2222222222222222\","
			       "\"0x8000000000000003\"],\"seq_next\":5000,\"next_epoch\":77,"
			       "\"consistent_seq\":4321,\"consistent_time_ns\":1700000000123456789,"))
		TH_LOG("%s", self->r.out);
}

/* ---- what create refuses ------------------------------------------------ */

TEST_F(meta, create_refuses_existing_metadata_unless_forced)
{
	struct dmrepl_meta_sb before, after;
	char uuid[DMREPL_META_UUID_STR_LEN], want[128];

	ASSERT_EQ(0, create(&self->r, self->path));
	ASSERT_EQ(0, read_sb(self->path, &before));
	dmrepl_meta_uuid_str(before.uuid, uuid);
	ASSERT_EQ(1, create(&self->r, self->path));
	snprintf(want, sizeof(want), "holds dm-repl metadata of group \"vm1\", volume %s; "
		 "use --force to overwrite it\n", uuid);
	ASSERT_NE(NULL, strstr(self->r.err, want)) TH_LOG("%s", self->r.err);
	run_tool(&self->r, "meta", "create", "--force", "--group", "vm2", "--data-sectors",
		 DATA_SECTORS, self->path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	ASSERT_EQ(0, read_sb(self->path, &after));
	EXPECT_STREQ("vm2", after.group);
	EXPECT_NE(0, memcmp(before.uuid, after.uuid, sizeof(after.uuid)));
	EXPECT_NE(before.gen_current, after.gen_current);
}

TEST_F(meta, create_refuses_a_device_that_is_not_blank_unless_forced)
{
	flip_byte(self->path, 1080);		/* where ext4 keeps its magic */
	ASSERT_EQ(1, create(&self->r, self->path));
	ASSERT_NE(NULL, strstr(self->r.err, "its first 4 KiB are not all zero (a filesystem, "
			       "a partition table, other data?); use --force to overwrite"));
	run_tool(&self->r, "meta", "create", "--force", "--group", "vm1", "--data-sectors",
		 DATA_SECTORS, self->path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	run_tool(&self->r, "meta", "check", self->path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.out);
}

TEST_F(meta, create_refuses_a_small_device_and_says_how_large_it_must_be)
{
	make_file(self->path, LAYOUT_BYTES - BLOCK);
	ASSERT_EQ(1, create(&self->r, self->path));
	ASSERT_NE(NULL, strstr(self->r.err, ": too small: the metadata needs 73728 bytes "
			       "(72 KiB), the device has 69632 bytes\n")) TH_LOG("%s", self->r.err);
	run_tool(&self->r, "meta", "create", "--force", "--group", "vm1", "--data-sectors",
		 DATA_SECTORS, self->path, NULL);
	ASSERT_EQ(1, self->r.status);
	make_file(self->path, LAYOUT_BYTES);
	ASSERT_EQ(0, create(&self->r, self->path)) TH_LOG("%s", self->r.err);
}

TEST_F(meta, create_never_creates_the_file)
{
	unlink(self->path);
	ASSERT_EQ(1, create(&self->r, self->path));
	ASSERT_NE(NULL, strstr(self->r.err, ": No such file or directory\n"));
	ASSERT_NE(0, access(self->path, F_OK));
}

TEST(create_usage_errors_exit_2)
{
	struct run r = { 0 };

	run_tool(&r, "meta", "create", "--data-sectors", "8", "f", NULL);
	ASSERT_EQ(2, r.status);
	ASSERT_NE(NULL, strstr(r.err, "--group is required"));
	run_tool(&r, "meta", "create", "--group", "g", "f", NULL);
	ASSERT_NE(NULL, strstr(r.err, "give one of --data-sectors and --data-dev"));
	run_tool(&r, "meta", "create", "--group", "g", "--data-sectors", "8",
		 "--data-dev", "d", "f", NULL);
	ASSERT_EQ(2, r.status);
	run_tool(&r, "meta", "create", "--group", "g", "--data-sectors", "8",
		 "--region-kb", "12", "f", NULL);
	ASSERT_EQ(2, r.status);
	ASSERT_NE(NULL, strstr(r.err, "region size is not a power of two from 4 KiB to 1 GiB"));
	run_tool(&r, "meta", "create", "--group", ".g", "--data-sectors", "8", "f", NULL);
	ASSERT_EQ(2, r.status);
	ASSERT_NE(NULL, strstr(r.err, "group name is not 1-31"));
	run_tool(&r, "meta", "create", "--group", "g", "--data-sectors", "8",
		 "--role", "boss", "f", NULL);
	ASSERT_NE(NULL, strstr(r.err, "--role is primary or secondary, not \"boss\""));
	run_tool(&r, "meta", "create", "--group", "g", "--data-sectors", "0", "f", NULL);
	ASSERT_NE(NULL, strstr(r.err, "--data-sectors wants a positive number, not \"0\""));
	run_tool(&r, "meta", "create", "--group", "g", "--data-sectors", "8",
		 "--hot-extents", "1009", "f", NULL);
	ASSERT_NE(NULL, strstr(r.err, "hot extent count is not from 1 to 1008"));
	run_tool(&r, "meta", "create", "--group", "g", "--data-sectors", "8", NULL);
	ASSERT_NE(NULL, strstr(r.err, "missing META_DEV"));
	run_tool(&r, "meta", "create", "--group", "g", "--data-sectors", "8",
		 "--volume", "64", "f", NULL);
	ASSERT_EQ(2, r.status);
	ASSERT_STREQ("repltool: meta create: --volume wants a volume index from 0 to 63, "
		     "not \"64\"\nTry 'repltool meta create --help'.\n", r.err);
	run_tool(&r, "meta", "create", "--group", "g", "--data-sectors", "8",
		 "--volume", "-1", "f", NULL);
	ASSERT_EQ(2, r.status);
	ASSERT_NE(NULL, strstr(r.err, "--volume wants a volume index from 0 to 63, not \"-1\""));
	run_tool(&r, "meta", "create", "--group", "g", "--data-sectors", "8",
		 "--volume", "one", "f", NULL);
	ASSERT_EQ(2, r.status);
	run_tool(&r, "meta", "create", "--group", "g", "--data-sectors", "8",
		 "--volume", "00", "f", NULL);
	ASSERT_EQ(2, r.status);
	run_tool(&r, "meta", "create", "--group", "g", "--data-sectors", "8", "--volume", NULL);
	ASSERT_EQ(2, r.status);
	ASSERT_NE(NULL, strstr(r.err, "option \"--volume\" needs an argument"));
	free(r.out);
}

/* ---- each corruption check finds ------------------------------------------ */

TEST_F(meta, check_finds_a_flipped_byte_in_the_superblock)
{
	ASSERT_EQ(0, create(&self->r, self->path));
	flip_byte(self->path, 40);		/* in the group name */
	CHECK_FINDS(": superblock at byte 0: checksum mismatch\n");
	run_tool(&self->r, "meta", "show", self->path, NULL);
	ASSERT_EQ(1, self->r.status);
	ASSERT_NE(NULL, strstr(self->r.err, ": no valid dm-repl metadata; 'repltool meta check"));
}

TEST_F(meta, check_finds_a_wrong_magic)
{
	ASSERT_EQ(0, create(&self->r, self->path));
	flip_byte(self->path, 0);
	CHECK_FINDS(": superblock at byte 0: not dm-repl metadata (bad magic)\n");
	ASSERT_NE(NULL, strstr(self->r.out, ": 1 problem found\n"));
}

TEST_F(meta, check_finds_a_future_version)
{
	struct dmrepl_meta_sb sb;

	ASSERT_EQ(0, create(&self->r, self->path));
	ASSERT_EQ(0, read_sb(self->path, &sb));
	sb.version = DM_REPL_META_VERSION + 1;
	write_sb(self->path, &sb);
	CHECK_FINDS(": superblock at byte 0: format version 2 is newer than version 1, "
		    "the newest this repltool reads\n");
}

TEST_F(meta, check_finds_a_truncated_device)
{
	ASSERT_EQ(0, create(&self->r, self->path));
	ASSERT_EQ(0, truncate(self->path, BLOCK * 10));
	CHECK_FINDS(": device at byte 40960: device is smaller than the layout (truncated?): "
		    "the layout needs 73728 bytes, the device has 40960\n");
	ASSERT_NE(NULL, strstr(self->r.out, ": 1 problem found\n")) TH_LOG("%s", self->r.out);
	ASSERT_EQ(0, truncate(self->path, 100));
	CHECK_FINDS(": device at byte 0: smaller than the 4 KiB superblock\n");
}

TEST_F(meta, check_finds_a_bitmap_length_that_does_not_match)
{
	struct dmrepl_meta_sb sb;

	ASSERT_EQ(0, create(&self->r, self->path));
	ASSERT_EQ(0, read_sb(self->path, &sb));
	sb.bm_sectors += 8;
	write_sb(self->path, &sb);
	CHECK_FINDS(": superblock field bm_sectors at byte 184: bitmap length does not "
		    "match the data size and region size\n");
}

TEST_F(meta, check_names_every_broken_superblock_field)
{
	struct dmrepl_meta_sb sb;

	ASSERT_EQ(0, create(&self->r, self->path));
	ASSERT_EQ(0, read_sb(self->path, &sb));
	sb.region_sectors = 100;
	sb.gen_current = 0;
	write_sb(self->path, &sb);
	CHECK_FINDS(": superblock field region_sectors at byte 68: "
		    "region size is not a power of two");
	ASSERT_NE(NULL, strstr(self->r.out, ": superblock field gen_current at byte 80: "
			       "current generation identifier is zero on a primary\n"));
	sb.role = 7;
	sb.gen_current = 1;
	write_sb(self->path, &sb);
	CHECK_FINDS(": superblock field role at byte 64: role is neither primary (1) "
		    "nor secondary (2)\n");
	ASSERT_NE(NULL, strstr(self->r.out, ": superblock field region_sectors at byte 68: "
			       "region size is not a power of two"));
	ASSERT_NE(NULL, strstr(self->r.out, ": 2 problems found\n")) TH_LOG("%s", self->r.out);
}

TEST_F(meta, generation_zero_is_a_problem_on_a_primary_only)
{
	struct dmrepl_meta_sb sb;

	ASSERT_EQ(0, create(&self->r, self->path));
	ASSERT_EQ(0, read_sb(self->path, &sb));
	ASSERT_NE(0U, sb.gen_current);
	sb.gen_current = 0;
	write_sb(self->path, &sb);
	CHECK_FINDS(": superblock field gen_current at byte 80: "
		    "current generation identifier is zero on a primary\n");
	ASSERT_NE(NULL, strstr(self->r.out, ": 1 problem found\n")) TH_LOG("%s", self->r.out);
	/* A secondary has none until it takes its primary's. */
	sb.role = DM_REPL_META_ROLE_SECONDARY;
	write_sb(self->path, &sb);
	run_tool(&self->r, "meta", "check", self->path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.out);
}

TEST_F(meta, create_gives_a_primary_a_generation_and_a_secondary_none)
{
	struct dmrepl_meta_sb sb;

	run_tool(&self->r, "meta", "create", "--role", "secondary", "--group", "vm1",
		 "--data-sectors", DATA_SECTORS, self->path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	ASSERT_EQ(0, read_sb(self->path, &sb));
	EXPECT_EQ(0U, sb.gen_current);
	EXPECT_EQ(0U, sb.gen_history[0] | sb.gen_history[1] | sb.gen_history[2] |
		  sb.gen_history[3]);
	run_tool(&self->r, "meta", "check", self->path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.out);
	ASSERT_EQ(0, create_force_other(&self->r, self->path));
	ASSERT_EQ(0, read_sb(self->path, &sb));
	EXPECT_EQ((__u32)DM_REPL_META_ROLE_PRIMARY, sb.role);
	EXPECT_NE(0U, sb.gen_current);
}

TEST_F(meta, check_finds_a_flipped_byte_in_an_al_slot)
{
	ASSERT_EQ(0, create(&self->r, self->path));
	put_txn(self->path, 1, 1, 0, 2);
	put_txn(self->path, 2, 2, 5, 1);
	flip_byte(self->path, AL_SLOT_OFF(1) + 70);
	CHECK_FINDS(": AL slot 1 at byte 8192: checksum mismatch\n");
	ASSERT_NE(NULL, strstr(self->r.out, ": 1 problem found\n")) TH_LOG("%s", self->r.out);
}

TEST_F(meta, check_calls_a_bad_next_slot_torn)
{
	ASSERT_EQ(0, create(&self->r, self->path));
	put_txn(self->path, 1, 1, 0, 2);
	put_txn(self->path, 2, 2, 5, 1);
	put_txn(self->path, 3, 3, 6, 1);
	flip_byte(self->path, AL_SLOT_OFF(3) + 9);
	CHECK_FINDS(": AL slot 3 at byte 16384: checksum mismatch (torn: the next "
		    "transaction, being written when the device stopped?)\n");
}

TEST_F(meta, check_finds_stale_and_missing_al_transactions)
{
	ASSERT_EQ(0, create(&self->r, self->path));
	put_txn(self->path, 1, 1, 0, 1);
	put_txn(self->path, 2, 18, 0, 1);	/* 17 belongs in slot 1 */
	CHECK_FINDS(": AL slot 1 at byte 8192: stale transaction: a newer one belongs "
		    "in this slot\n");
	ASSERT_NE(NULL, strstr(self->r.out, ": AL slot 0 at byte 4096: empty, but a "
			       "transaction belongs in this slot\n"));
	ASSERT_NE(NULL, strstr(self->r.out, ": AL slot 15 at byte 65536: empty, but"))
		TH_LOG("%s", self->r.out);
}

TEST_F(meta, check_finds_an_al_slot_of_another_volume)
{
	static unsigned char block[BLOCK] __attribute__((aligned(8)));

	ASSERT_EQ(0, create(&self->r, self->path));
	put_txn(self->path, 1, 1, 0, 1);
	rd(self->path, block, BLOCK, AL_SLOT_OFF(1));
	ASSERT_EQ(0, create_force_other(&self->r, self->path));
	wr(self->path, block, BLOCK, AL_SLOT_OFF(1));
	CHECK_FINDS(": AL slot 1 at byte 8192: belongs to another volume (UUID differs "
		    "from the superblock's)\n");
}

TEST_F(meta, check_finds_a_flipped_byte_in_the_bitmap)
{
	ASSERT_EQ(0, create(&self->r, self->path));
	flip_byte(self->path, BM_OFF + 1000);
	CHECK_FINDS(": bitmap block 0 at byte 69632: checksum mismatch\n");
	run_tool(&self->r, "meta", "show", "-j", self->path, NULL);
	ASSERT_EQ(0, self->r.status);
	ASSERT_NE(NULL, strstr(self->r.out, "\"bm_bad_blocks\":1,"));
}

TEST_F(meta, check_finds_a_bit_past_the_last_region)
{
	static unsigned char block[BLOCK] __attribute__((aligned(8)));
	unsigned char bits[DM_REPL_BM_BLOCK_BITS / 8] = { 0 };
	struct dmrepl_meta_sb sb;

	run_tool(&self->r, "meta", "create", "--group", "vm1", "--data-sectors", "1000",
		 self->path, NULL);
	ASSERT_EQ(0, self->r.status);
	ASSERT_EQ(0, read_sb(self->path, &sb));
	bits[1] = 0x01;				/* region 8 of 8 (0..7) */
	dmrepl_meta_bm_encode(block, &sb, 0, bits);
	wr(self->path, block, BLOCK, BM_OFF);
	CHECK_FINDS(": bitmap block 0 at byte 69632: a bit past the last region of the "
		    "data device is set\n");
}

TEST_F(meta, check_json_lists_each_problem)
{
	ASSERT_EQ(0, create(&self->r, self->path));
	flip_byte(self->path, 300);		/* reserved: only the crc notices */
	flip_byte(self->path, BM_OFF + 8);
	run_tool(&self->r, "meta", "check", "--json", self->path, NULL);
	ASSERT_EQ(1, self->r.status);
	ASSERT_NE(NULL, strstr(self->r.out, "\"problems\":[{\"area\":\"superblock\",\"offset\":0,"
			       "\"problem\":\"checksum mismatch\"},{\"area\":\"bitmap block 0\","
			       "\"offset\":69632,\"problem\":\"checksum mismatch\"}],"
			       "\"problems_found\":2}\n")) TH_LOG("%s", self->r.out);
}

/* ---- the command line ----------------------------------------------------- */

TEST(meta_help_and_usage)
{
	struct run r = { 0 };

	run_tool(&r, "meta", NULL);
	ASSERT_EQ(2, r.status);
	run_tool(&r, "meta", "c", "f", NULL);
	ASSERT_EQ(2, r.status);
	ASSERT_NE(NULL, strstr(r.err, "repltool: meta: \"c\" is ambiguous: create check\n"));
	run_tool(&r, "meta", "frob", NULL);
	ASSERT_NE(NULL, strstr(r.err, "unknown command \"frob\"; try 'repltool meta --help'"));
	run_tool(&r, "meta", "check", "a", "b", NULL);
	ASSERT_EQ(2, r.status);
	run_tool(&r, "meta", "show", "--bogus", "a", NULL);
	ASSERT_EQ(2, r.status);
	run_tool(&r, "meta", "--help", NULL);
	ASSERT_EQ(0, r.status);
	ASSERT_NE(NULL, strstr(r.out, "Usage: repltool meta COMMAND"));
	run_tool(&r, "help", "meta", NULL);
	ASSERT_EQ(0, r.status);
	run_tool(&r, "meta", "cr", "--help", NULL);
	ASSERT_EQ(0, r.status);
	ASSERT_NE(NULL, strstr(r.out, "Usage: repltool meta create"));
	run_tool(&r, "meta", "check", "-h", NULL);
	ASSERT_NE(NULL, strstr(r.out, "Usage: repltool meta check"));
	run_tool(&r, "meta", "show", "/nonexistent/dmrepl-meta", NULL);
	ASSERT_EQ(1, r.status);
	ASSERT_STREQ("repltool: /nonexistent/dmrepl-meta: No such file or directory\n", r.err);
	free(r.out);
}

/* ---- the library ---------------------------------------------------------- */

TEST(min_bytes_for_a_terabyte)
{
	__u64 bytes;

	/* 2^24 regions of 64 KiB: 521 bitmap blocks, + superblock + 16 slots. */
	ASSERT_EQ(0, dmrepl_meta_min_bytes(1ULL << 31, 128, 16, &bytes));
	ASSERT_EQ(4096ULL * (1 + 16 + 521), bytes);
	ASSERT_EQ(0, dmrepl_meta_min_bytes(1, 8, 2, &bytes));
	ASSERT_EQ(4096ULL * 4, bytes);
	ASSERT_EQ(-EINVAL, dmrepl_meta_min_bytes(0, 128, 16, &bytes));
	ASSERT_EQ(-EINVAL, dmrepl_meta_min_bytes(8, 96, 16, &bytes));
	ASSERT_EQ(-EINVAL, dmrepl_meta_min_bytes(8, 128, 1, &bytes));
}

TEST(layout_refuses_extent_numbers_wider_than_32_bits)
{
	struct dmrepl_meta_geom g = {
		.data_sectors = (1ULL << 32) * 8 + 1, .region_sectors = 8,
		.extent_sectors = 8, .al_slots = 2, .hot_extents = 1,
	};
	struct dmrepl_meta_layout l;
	const char *why = NULL;

	ASSERT_EQ(-EINVAL, dmrepl_meta_layout(&g, &l, &why));
	ASSERT_STREQ("data device has more hot extents than 32-bit extent numbers name", why);
	g.extent_sectors = 16;
	ASSERT_EQ(0, dmrepl_meta_layout(&g, &l, &why));
	ASSERT_EQ((1ULL << 31) + 1, l.nr_extents);
}

TEST(superblock_round_trip_and_fresh_identities)
{
	static unsigned char block[BLOCK] __attribute__((aligned(8)));
	struct dmrepl_meta_geom g = {
		.data_sectors = 12345, .region_sectors = 16, .extent_sectors = 64,
		.al_slots = 3, .hot_extents = 9,
	};
	struct dmrepl_meta_sb a, b, c;
	unsigned int next = 0;
	const char *why, *field;

	ASSERT_EQ(0, dmrepl_meta_sb_init(&a, "vm-7", DM_REPL_META_ROLE_PRIMARY, &g, 99, &why));
	ASSERT_EQ(0, dmrepl_meta_sb_init(&c, "vm-7", DM_REPL_META_ROLE_PRIMARY, &g, 99, &why));
	ASSERT_NE(0, memcmp(a.uuid, c.uuid, sizeof(a.uuid)));
	ASSERT_EQ(0x40, a.uuid[6] & 0xf0);
	ASSERT_EQ(0x80, a.uuid[8] & 0xc0);
	ASSERT_NE(0U, a.gen_current);
	a.gen_history[3] = 42;
	a.released_seq = 7;
	dmrepl_meta_sb_encode(&a, block);
	ASSERT_EQ(0, dmrepl_meta_sb_decode(block, &b, &why));
	a.crc = b.crc;
	ASSERT_EQ(0, memcmp(&a, &b, sizeof(a)));
	ASSERT_EQ(0, dmrepl_meta_sb_check(&b, &next, &why, &field));
	/* A secondary is made with no generation, and that passes; a primary's must not. */
	ASSERT_EQ(0, dmrepl_meta_sb_init(&c, "vm-7", DM_REPL_META_ROLE_SECONDARY, &g, 99, &why));
	ASSERT_EQ(0U, c.gen_current);
	next = 0;
	ASSERT_EQ(0, dmrepl_meta_sb_check(&c, &next, &why, &field));
	c.role = DM_REPL_META_ROLE_PRIMARY;
	next = 0;
	ASSERT_EQ(-EINVAL, dmrepl_meta_sb_check(&c, &next, &why, &field));
	ASSERT_STREQ("gen_current", field);
	ASSERT_STREQ("current generation identifier is zero on a primary", why);
	block[600] = 1;
	ASSERT_EQ(-EBADMSG, dmrepl_meta_sb_decode(block, &b, &why));
	ASSERT_EQ(-EINVAL, dmrepl_meta_sb_init(&a, "vm/7", 1, &g, 0, &why));
	ASSERT_EQ(-EINVAL, dmrepl_meta_sb_init(&a, "vm7", 3, &g, 0, &why));
}

static int judge(const struct dmrepl_meta_sb *sb, __u32 index, int decoded, __u64 seq,
		 __u64 max_seq, const char **why)
{
	return (int)dmrepl_meta_al_judge(sb, index, decoded, seq, max_seq, why);
}

TEST(al_judge_follows_the_ring)
{
	struct dmrepl_meta_sb sb = { .al_slots = 4 };
	const char *why = NULL;

	/* Nothing written yet: every slot unused; slot 1 is the next. */
	EXPECT_EQ(DMREPL_AL_UNUSED, judge(&sb, 0, 0, 0, 0, &why));
	EXPECT_EQ(DMREPL_AL_TORN, judge(&sb, 1, -EBADMSG, 0, 0, &why));
	EXPECT_EQ(DMREPL_AL_BAD, judge(&sb, 2, -EBADMSG, 0, 0, &why));
	/* Highest 6: slots hold 4 5 6 3, slot 3 is the next. */
	EXPECT_EQ(DMREPL_AL_CURRENT, judge(&sb, 0, 1, 4, 6, &why));
	EXPECT_EQ(DMREPL_AL_CURRENT, judge(&sb, 3, 1, 3, 6, &why));
	EXPECT_EQ(DMREPL_AL_TORN, judge(&sb, 3, -EBADMSG, 0, 6, &why));
	/* Intact but breaking a rule is no torn write. */
	EXPECT_EQ(DMREPL_AL_BAD, judge(&sb, 3, -EINVAL, 0, 6, &why));
	EXPECT_EQ(DMREPL_AL_BAD, judge(&sb, 1, 0, 0, 6, &why));
	EXPECT_STREQ("empty, but a transaction belongs in this slot", why);
	EXPECT_EQ(DMREPL_AL_BAD, judge(&sb, 2, 1, 2, 6, &why));
	EXPECT_STREQ("stale transaction: a newer one belongs in this slot", why);
	/* Highest 2: slot 3 has no transaction yet. */
	EXPECT_EQ(DMREPL_AL_UNUSED, judge(&sb, 3, 0, 0, 2, &why));
	EXPECT_EQ(DMREPL_AL_UNUSED, judge(&sb, 0, 0, 0, 2, &why));
}

TEST(al_decode_checks_its_rules)
{
	static unsigned char block[BLOCK] __attribute__((aligned(8)));
	static struct dmrepl_meta_al_txn t, got;
	struct dmrepl_meta_geom g = {
		.data_sectors = 8192 * 10, .region_sectors = 128, .extent_sectors = 8192,
		.al_slots = 4, .hot_extents = 3,
	};
	struct dmrepl_meta_sb sb;
	const char *why = NULL;

	ASSERT_EQ(0, dmrepl_meta_sb_init(&sb, "g", 1, &g, 0, &why));
	memset(block, 0, sizeof(block));
	ASSERT_EQ(0, dmrepl_meta_al_decode(block, &sb, 1, &got, &why));
	t.seq = 5;
	t.nr_extents = 2;
	t.extents[0] = 9;
	t.extents[1] = 3;
	ASSERT_EQ(0, dmrepl_meta_al_encode(block, &sb, &t));
	ASSERT_EQ(1, dmrepl_meta_al_decode(block, &sb, 1, &got, &why));
	ASSERT_EQ(5U, got.seq);
	ASSERT_EQ(2U, got.nr_extents);
	ASSERT_EQ(9U, got.extents[0]);
	ASSERT_EQ(-EINVAL, dmrepl_meta_al_decode(block, &sb, 2, &got, &why));
	ASSERT_STREQ("transaction sequence does not belong in this slot", why);
	t.extents[0] = 10;
	ASSERT_EQ(0, dmrepl_meta_al_encode(block, &sb, &t));
	ASSERT_EQ(-EINVAL, dmrepl_meta_al_decode(block, &sb, 1, &got, &why));
	ASSERT_STREQ("names an extent beyond the end of the data device", why);
	t.nr_extents = 4;
	ASSERT_EQ(-EINVAL, dmrepl_meta_al_encode(block, &sb, &t));
	t.nr_extents = 1;
	t.seq = 0;
	ASSERT_EQ(-EINVAL, dmrepl_meta_al_encode(block, &sb, &t));
}

TEST_HARNESS_MAIN
