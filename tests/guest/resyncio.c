// SPDX-License-Identifier: GPL-2.0
/*
 * resyncio: one ioctl of a primary group's device, for tests that must
 * drive a resync region by region (tests/guest/resync.sh).
 *
 *   resyncio DEV resync VOLUME REGION [any|verify|FLAGS]
 *                                             DM_REPL_IOC_RESYNC (FLAGS: a
 *                                             number, as given); prints
 *                                             "records N seq S end E raced R"
 *   resyncio DEV dirty VOLUME REGION          exit 0 if the region is dirty
 *   resyncio DEV release SEQ                  DM_REPL_IOC_RELEASE
 *
 * Exit status: 0 done (dirty: yes), 1 refused or clean (errno said), 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/dm-repl.h>

static __u32 resync_flags(const char *word)
{
	if (!strcmp(word, "any"))
		return DM_REPL_RESYNCF_ANY;
	if (!strcmp(word, "verify"))
		return DM_REPL_RESYNCF_VERIFY;
	return (__u32)strtoul(word, NULL, 0);
}

static int do_resync(int fd, char **argv, int argc)
{
	struct dm_repl_resync_req req = {
		.abi_version = DM_REPL_ABI_VERSION,
		.volume = (__u32)strtoul(argv[0], NULL, 0),
		.region = strtoull(argv[1], NULL, 0),
		.flags = argc > 2 ? resync_flags(argv[2]) : 0,
	};

	if (ioctl(fd, DM_REPL_IOC_RESYNC, &req)) {
		fprintf(stderr, "resyncio: DM_REPL_IOC_RESYNC: %s\n", strerror(errno));
		return 1;
	}
	printf("records %u seq %llu end %u raced %u\n", req.records,
	       (unsigned long long)req.seq, !!(req.flags & DM_REPL_RESYNCF_END),
	       !!(req.flags & DM_REPL_RESYNCF_RACED));
	return 0;
}

static int do_dirty(int fd, char **argv)
{
	__u64 region = strtoull(argv[1], NULL, 0);
	struct dm_repl_bitmap_req req = {
		.abi_version = DM_REPL_ABI_VERSION,
		.volume = (__u32)strtoul(argv[0], NULL, 0),
	};
	unsigned char *bits = NULL;

	if (ioctl(fd, DM_REPL_IOC_GET_BITMAP, &req) || !(bits = calloc(1, req.buf_size + 1))) {
		fprintf(stderr, "resyncio: DM_REPL_IOC_GET_BITMAP: %s\n", strerror(errno));
		return 2;
	}
	req.buf = (__u64)(unsigned long)bits;
	if (ioctl(fd, DM_REPL_IOC_GET_BITMAP, &req) || region / 8 >= req.buf_size) {
		fprintf(stderr, "resyncio: no region %llu\n", (unsigned long long)region);
		free(bits);
		return 2;
	}
	region = bits[region / 8] & (1U << (region % 8));
	free(bits);
	return region ? 0 : 1;
}

static int usage(void)
{
	fprintf(stderr, "usage: resyncio DEV resync VOLUME REGION [any|verify|FLAGS]\n"
		"       resyncio DEV dirty VOLUME REGION\n"
		"       resyncio DEV release SEQ\n");
	return 2;
}

int main(int argc, char **argv)
{
	__u64 seq;
	int fd, r;

	if (argc < 4)
		return usage();
	fd = open(argv[1], O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "resyncio: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	if (!strcmp(argv[2], "resync") && (argc == 5 || argc == 6)) {
		r = do_resync(fd, argv + 3, argc - 3);
	} else if (!strcmp(argv[2], "dirty") && argc == 5) {
		r = do_dirty(fd, argv + 3);
	} else if (!strcmp(argv[2], "release") && argc == 4) {
		seq = strtoull(argv[3], NULL, 0);
		r = ioctl(fd, DM_REPL_IOC_RELEASE, &seq) ? 1 : 0;
		if (r)
			fprintf(stderr, "resyncio: DM_REPL_IOC_RELEASE: %s\n", strerror(errno));
	} else {
		r = usage();
	}
	close(fd);
	return r;
}
