// SPDX-License-Identifier: GPL-2.0
/*
 * sbpatch: set one field of a dm-repl metadata superblock and seal it again
 * (a valid crc), so that tests can hand the kernel superblocks that are
 * intact but wrong in exactly one field.
 *
 *   sbpatch META_DEV FIELD VALUE
 *
 * FIELD is a field name of struct dm_repl_meta_sb (the scalar ones, and
 * "reserved" for its first reserved byte); VALUE a number (0x... allowed).
 * Exit status: 0 done, 1 an I/O error, 2 a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/dm-repl.h>

#include "dmrepl.h"

#define FIELD(name, width) { #name, offsetof(struct dm_repl_meta_sb, name), width }

static const struct field {
	const char *name;
	size_t off;
	unsigned int width;
} fields[] = {
	FIELD(flags, 4), FIELD(role, 4), FIELD(region_sectors, 4),
	FIELD(data_sectors, 8), FIELD(gen_current, 8), FIELD(released_seq, 8),
	FIELD(applied_seq, 8), FIELD(al_offset, 8), FIELD(al_slots, 4),
	FIELD(al_slot_bytes, 4), FIELD(extent_sectors, 4),
	FIELD(hot_extents, 4), FIELD(bm_offset, 8), FIELD(bm_sectors, 8),
	FIELD(volume, 2), FIELD(reserved0, 2), FIELD(reserved1, 4),
	FIELD(stream, 8), FIELD(seq_next, 8), FIELD(next_epoch, 8),
	FIELD(reserved, 1), FIELD(uuid, 16),
};

static const struct field *find(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (!strcmp(fields[i].name, name))
			return &fields[i];
	return NULL;
}

/* Little-endian store of @v into @width bytes (zero past its eighth). */
static void store(unsigned char *p, unsigned long long v, unsigned int width)
{
	unsigned int i;

	for (i = 0; i < width; i++)
		p[i] = i < 8 ? (unsigned char)(v >> (8 * i)) : 0;
}

int main(int argc, char **argv)
{
	unsigned char block[DM_REPL_META_BLOCK_SIZE];
	const struct field *f;
	unsigned long long v;
	__u32 crc;
	char *end;
	int fd;

	if (argc != 4 || !(f = find(argv[2]))) {
		fprintf(stderr, "usage: sbpatch META_DEV FIELD VALUE\n");
		return 2;
	}
	errno = 0;
	v = strtoull(argv[3], &end, 0);
	if (errno || *end || end == argv[3]) {
		fprintf(stderr, "sbpatch: %s: not a number\n", argv[3]);
		return 2;
	}
	fd = open(argv[1], O_RDWR);
	if (fd < 0 || pread(fd, block, sizeof(block), 0) != (ssize_t)sizeof(block)) {
		fprintf(stderr, "sbpatch: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	store(block + f->off, v, f->width);
	memset(block + offsetof(struct dm_repl_meta_sb, crc), 0, 4);
	crc = dmrepl_crc32c(~0U, block, sizeof(block));
	store(block + offsetof(struct dm_repl_meta_sb, crc), crc, 4);
	if (pwrite(fd, block, sizeof(block), 0) != (ssize_t)sizeof(block) || fsync(fd)) {
		fprintf(stderr, "sbpatch: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	close(fd);
	return 0;
}
