/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * repltool meta: what create (meta.c) and show/check (meta_read.c) share.
 */
#ifndef REPLTOOL_META_H
#define REPLTOOL_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "dmrepl.h"

/* A metadata device or file, opened. */
struct meta_dev {
	const char *path;
	int fd;
	__u64 bytes;		/* its size */
	bool blk;		/* a block device: O_DIRECT, aligned I/O */
};

/*
 * Open a block device (O_DIRECT; O_EXCL too when writing) or a regular file
 * (never created). Returns 0, or -1 after saying why on stderr.
 */
int meta_dev_open(struct meta_dev *d, const char *path, bool write);
void meta_dev_close(struct meta_dev *d);
/* Read or write len bytes at off in full. 0 or -errno (-ENODATA at the end). */
int meta_dev_read(struct meta_dev *d, void *buf, size_t len, __u64 off);
int meta_dev_write(struct meta_dev *d, const void *buf, size_t len, __u64 off);
/* A zeroed buffer aligned for O_DIRECT, or NULL after saying so on stderr. */
void *meta_buf(size_t len);

/* What "meta create" makes: its options, as parsed. */
struct create_opts {
	bool force;
	bool initial_sync;	/* every region dirty, or the replica inconsistent */
	bool seeded;		/* a replica seeded by a copy: inconsistent, all dirty */
	const char *group;
	const char *data_dev;
	const char *meta;
	unsigned int role;
	unsigned int volume;
	__u64 region_kb, extent_kb, al_slots, hot_extents, data_sectors;
};

/* The defaults of "meta create": primary, volume 0, the library's geometry. */
void meta_create_opts_init(struct create_opts *o);
/* --seeded with what it excludes: EXIT_USAGE (reported as cmd's), or 0. */
int meta_create_seeded_check(const char *cmd, bool seeded, bool initial_sync,
			     unsigned int role);
/*
 * Write fresh metadata as o says ("meta create"); cmd names the command in
 * a usage error. Returns EXIT_OK, or EXIT_RUNTIME / EXIT_USAGE (reported).
 */
int meta_create_run(const char *cmd, const struct create_opts *o);

int meta_show(int argc, char **argv);
void usage_meta_show(FILE *f);
int meta_check(int argc, char **argv);
void usage_meta_check(FILE *f);

#endif
