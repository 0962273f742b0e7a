// SPDX-License-Identifier: GPL-2.0
/*
 * The guest half of the crash test (tests/crash.sh, tests/guest/crash-guest.sh).
 *
 *   crashwriter write [-j THREADS] DEV LOGDEV ROUND SEED
 *       Write random data at random offsets and sizes to DEV with O_DIRECT,
 *       from THREADS threads (default 4), until killed or until the guest
 *       is reset. After each write completes, append an entry naming it
 *       (offset, length, sequence) to LOGDEV with O_DIRECT|O_DSYNC. An entry
 *       on LOGDEV therefore proves that its write had completed. When
 *       LOGDEV is full the threads stop writing and wait.
 *
 *   crashwriter check GROUP LOGDEV ROUND
 *       After the reset and the table load: read every entry of ROUND from
 *       LOGDEV and the dirty bitmap of the group's volume 0
 *       (DM_REPL_IOC_GET_BITMAP), and check that every region of every
 *       logged write is dirty. Prints one line,
 *         crashcheck: round=R completed=N dirty=D regions=T forgotten=F torn=X stale=Y
 *       (torn: entries cut by the reset, not counted as completed; stale:
 *       entries of another round, i.e. the log was not zeroed), then the
 *       first forgotten writes. Exit status 0 when nothing is forgotten, 1
 *       when a write is, 2 on stale entries or any other error.
 *
 * The log format lives only here. LOGDEV is a zeroed device of 512-byte
 * entries; entry i sits in sector i and has sequence i + 1, handed out in
 * the order the writes completed. A write that was in flight at the reset
 * may have taken a sequence whose entry never reached LOGDEV, so the log
 * can have holes: the checker reads every sector.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "dmrepl.h"

#define ENTRY_SIZE	512
#define ENTRY_MAGIC	0x474f4c4853415243ULL	/* "CRASHLOG" */
#define IO_ALIGN	4096			/* O_DIRECT buffer alignment */
#define IO_UNIT		4096			/* offsets and sizes: multiples */
#define IO_MAX_UNITS	32			/* largest write: 128 KiB */
#define MAX_THREADS	16

struct log_entry {
	uint64_t magic;
	uint64_t round;
	uint64_t seq;		/* 1 + the entry's sector on LOGDEV */
	uint64_t offset;	/* of the write on DEV, in bytes */
	uint64_t length;	/* in bytes */
	uint64_t check;		/* entry_check() of the fields above */
	uint8_t zero[ENTRY_SIZE - 6 * sizeof(uint64_t)];
};
_Static_assert(sizeof(struct log_entry) == ENTRY_SIZE, "one sector per entry");

/* splitmix64: a small, good generator; one state per thread. */
static uint64_t next_random(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* What makes a torn or stale sector fail: a mix of every field. */
static uint64_t entry_check(const struct log_entry *e)
{
	uint64_t state = e->magic;
	const uint64_t fields[] = { e->round, e->seq, e->offset, e->length };
	uint64_t h = 0;

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		state ^= fields[i];
		h ^= next_random(&state);
	}
	return h;
}

static void *alloc_aligned(size_t size)
{
	void *p;

	if (posix_memalign(&p, IO_ALIGN, size)) {
		fprintf(stderr, "crashwriter: out of memory\n");
		exit(2);
	}
	memset(p, 0, size);
	return p;
}

static uint64_t dev_bytes(int fd, const char *path)
{
	uint64_t bytes;

	if (ioctl(fd, BLKGETSIZE64, &bytes)) {
		fprintf(stderr, "crashwriter: %s: BLKGETSIZE64: %s\n", path, strerror(errno));
		exit(2);
	}
	return bytes;
}

static int open_or_die(const char *path, int flags)
{
	int fd = open(path, flags);

	if (fd < 0) {
		fprintf(stderr, "crashwriter: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	return fd;
}

/* ---- write ------------------------------------------------------------- */

struct writer {
	int dev_fd, log_fd;
	uint64_t dev_units;	/* DEV's size in IO_UNITs */
	uint64_t log_entries;	/* entries LOGDEV holds */
	uint64_t round;
	atomic_uint_fast64_t next_seq;
};

struct writer_thread {
	pthread_t tid;
	struct writer *w;
	uint64_t rng;
};

/* Write and log until the log is full; any I/O error ends the program. */
static void *writer_loop(void *arg)
{
	struct writer_thread *t = arg;
	struct writer *w = t->w;
	uint8_t *data = alloc_aligned((size_t)IO_MAX_UNITS * IO_UNIT);
	struct log_entry *e = alloc_aligned(sizeof(*e));

	for (;;) {
		uint64_t units = 1 + next_random(&t->rng) % IO_MAX_UNITS;
		uint64_t off, len, seq;

		if (units > w->dev_units)
			units = w->dev_units;
		off = next_random(&t->rng) % (w->dev_units - units + 1) * IO_UNIT;
		len = units * IO_UNIT;
		for (uint64_t i = 0; i < len; i += sizeof(uint64_t)) {
			uint64_t v = next_random(&t->rng);

			memcpy(data + i, &v, sizeof(v));
		}
		if (pwrite(w->dev_fd, data, len, (off_t)off) != (ssize_t)len) {
			fprintf(stderr, "crashwriter: write of %llu bytes at %llu: %s\n",
				(unsigned long long)len, (unsigned long long)off,
				strerror(errno));
			exit(2);
		}

		/* The write completed: record it. */
		seq = atomic_fetch_add(&w->next_seq, 1);
		if (seq > w->log_entries)
			break;
		*e = (struct log_entry){
			.magic = ENTRY_MAGIC, .round = w->round, .seq = seq,
			.offset = off, .length = len,
		};
		e->check = entry_check(e);
		if (pwrite(w->log_fd, e, sizeof(*e), (off_t)((seq - 1) * ENTRY_SIZE)) !=
		    (ssize_t)sizeof(*e)) {
			fprintf(stderr, "crashwriter: log entry %llu: %s\n",
				(unsigned long long)seq, strerror(errno));
			exit(2);
		}
	}
	free(data);
	free(e);
	return NULL;
}

static int cmd_write(int argc, char **argv)
{
	struct writer_thread threads[MAX_THREADS];
	struct writer w = { 0 };
	unsigned long nthreads = 4;
	uint64_t seed;
	int opt;

	while ((opt = getopt(argc, argv, "j:")) != -1) {
		if (opt != 'j')
			return 2;
		nthreads = strtoul(optarg, NULL, 10);
		if (nthreads < 1 || nthreads > MAX_THREADS) {
			fprintf(stderr, "crashwriter: -j: 1 to %d threads\n", MAX_THREADS);
			return 2;
		}
	}
	if (argc - optind != 4) {
		fprintf(stderr, "usage: crashwriter write [-j THREADS] DEV LOGDEV ROUND SEED\n");
		return 2;
	}
	w.dev_fd = open_or_die(argv[optind], O_WRONLY | O_DIRECT);
	w.log_fd = open_or_die(argv[optind + 1], O_WRONLY | O_DIRECT | O_DSYNC);
	w.round = strtoull(argv[optind + 2], NULL, 10);
	seed = strtoull(argv[optind + 3], NULL, 10);
	w.dev_units = dev_bytes(w.dev_fd, argv[optind]) / IO_UNIT;
	w.log_entries = dev_bytes(w.log_fd, argv[optind + 1]) / ENTRY_SIZE;
	atomic_init(&w.next_seq, 1);
	if (w.dev_units == 0 || w.log_entries == 0) {
		fprintf(stderr, "crashwriter: a device is too small\n");
		return 2;
	}

	printf("crashwriter: round %llu, seed %llu, %lu threads, room for %llu entries\n",
	       (unsigned long long)w.round, (unsigned long long)seed, nthreads,
	       (unsigned long long)w.log_entries);
	fflush(stdout);
	for (unsigned long i = 0; i < nthreads; i++) {
		threads[i] = (struct writer_thread){ .w = &w, .rng = seed * MAX_THREADS + i };
		if (pthread_create(&threads[i].tid, NULL, writer_loop, &threads[i])) {
			fprintf(stderr, "crashwriter: pthread_create failed\n");
			return 2;
		}
	}
	for (unsigned long i = 0; i < nthreads; i++)
		pthread_join(threads[i].tid, NULL);

	/* The log is full: keep still until the reset. */
	printf("crashwriter: log full after %llu writes, waiting\n",
	       (unsigned long long)w.log_entries);
	fflush(stdout);
	for (;;)
		pause();
}

/* ---- check ------------------------------------------------------------- */

/* Volume 0's dirty bitmap and geometry, from the group's device. */
struct bitmap {
	uint8_t *bits;
	uint64_t nr_regions, dirty;
	uint32_t region_sectors;
};

static int read_bitmap(const char *group, struct bitmap *bm)
{
	char msg[DMREPL_ERRMSG_LEN];
	struct dm_repl_group_info info = { .abi_version = DM_REPL_ABI_VERSION };
	struct dm_repl_bitmap_req req = {
		.abi_version = DM_REPL_ABI_VERSION, .volume = 0,
	};
	struct dmrepl_ring *ring;
	size_t size;
	int r;

	r = dmrepl_ring_open(group, &ring, msg, sizeof(msg));
	if (r) {
		fprintf(stderr, "crashwriter: group %s: %s\n", group, msg);
		return r;
	}
	r = dmrepl_ring_info(ring, &info);
	if (r || info.nr_volumes < 1 || info.volumes[0].region_sectors == 0) {
		fprintf(stderr, "crashwriter: group %s: no volume 0 (%s)\n", group,
			strerror(r ? -r : ENOENT));
		dmrepl_ring_close(ring);
		return r ? r : -ENOENT;
	}
	bm->nr_regions = info.volumes[0].nr_regions;
	bm->dirty = info.volumes[0].dirty_regions;
	bm->region_sectors = info.volumes[0].region_sectors;

	/* The module copies whole longs: round up to 8 bytes. */
	size = (bm->nr_regions + 63) / 64 * 8;
	bm->bits = alloc_aligned(size);
	req.buf = (uintptr_t)bm->bits;
	req.buf_size = size;
	r = ioctl(dmrepl_ring_fd(ring), DM_REPL_IOC_GET_BITMAP, &req) ? -errno : 0;
	if (r)
		fprintf(stderr, "crashwriter: DM_REPL_IOC_GET_BITMAP: %s\n", strerror(-r));
	else if (req.buf_size > size)
		r = -EOVERFLOW;
	dmrepl_ring_close(ring);
	return r;
}

static bool region_dirty(const struct bitmap *bm, uint64_t region)
{
	return region < bm->nr_regions && (bm->bits[region / 8] >> (region % 8)) & 1;
}

static bool entry_blank(const struct log_entry *e)
{
	static const struct log_entry zero;

	return memcmp(e, &zero, sizeof(zero)) == 0;
}

/* Entry i is whole and in its place (of whichever round). */
static bool entry_whole(const struct log_entry *e, uint64_t i)
{
	return e->magic == ENTRY_MAGIC && e->check == entry_check(e) &&
	       e->seq == i + 1 && e->length > 0;
}

/* The first region of e's write that is not dirty; false if all are. */
static bool first_clean_region(const struct bitmap *bm, const struct log_entry *e,
			       uint64_t *region)
{
	uint64_t first = e->offset / 512 / bm->region_sectors;
	uint64_t last = (e->offset + e->length - 1) / 512 / bm->region_sectors;

	for (uint64_t r = first; r <= last; r++) {
		if (!region_dirty(bm, r)) {
			*region = r;
			return true;
		}
	}
	return false;
}

static int cmd_check(int argc, char **argv)
{
	uint64_t round, entries, region, shown = 0;
	uint64_t completed = 0, torn = 0, stale = 0, forgotten = 0;
	struct log_entry *log;
	struct bitmap bm;
	int fd;

	if (argc != 4) {
		fprintf(stderr, "usage: crashwriter check GROUP LOGDEV ROUND\n");
		return 2;
	}
	round = strtoull(argv[3], NULL, 10);
	fd = open_or_die(argv[2], O_RDONLY | O_DIRECT);
	entries = dev_bytes(fd, argv[2]) / ENTRY_SIZE;
	log = alloc_aligned(entries * ENTRY_SIZE);
	if (pread(fd, log, entries * ENTRY_SIZE, 0) != (ssize_t)(entries * ENTRY_SIZE)) {
		fprintf(stderr, "crashwriter: read %s: %s\n", argv[2], strerror(errno));
		return 2;
	}
	close(fd);
	if (read_bitmap(argv[1], &bm))
		return 2;

	/* Count first, so that the summary line comes first. */
	for (uint64_t i = 0; i < entries; i++) {
		if (entry_blank(&log[i]))
			continue;	/* never written, or a hole */
		if (!entry_whole(&log[i], i)) {
			torn++;
			continue;
		}
		if (log[i].round != round) {
			stale++;
			continue;
		}
		completed++;
		if (first_clean_region(&bm, &log[i], &region))
			forgotten++;
	}
	printf("crashcheck: round=%llu completed=%llu dirty=%llu regions=%llu forgotten=%llu torn=%llu stale=%llu\n",
	       (unsigned long long)round, (unsigned long long)completed,
	       (unsigned long long)bm.dirty, (unsigned long long)bm.nr_regions,
	       (unsigned long long)forgotten, (unsigned long long)torn,
	       (unsigned long long)stale);
	if (stale)
		printf("crashcheck: %llu entries of another round: the log was not zeroed\n",
		       (unsigned long long)stale);

	for (uint64_t i = 0; forgotten && i < entries && shown < 20; i++) {
		const struct log_entry *e = &log[i];

		if (!entry_whole(e, i) || e->round != round ||
		    !first_clean_region(&bm, e, &region))
			continue;
		printf("crashcheck: forgotten: seq %llu, %llu bytes at %llu: region %llu is clean\n",
		       (unsigned long long)e->seq, (unsigned long long)e->length,
		       (unsigned long long)e->offset, (unsigned long long)region);
		shown++;
	}
	if (forgotten > shown)
		printf("crashcheck: and %llu more forgotten writes\n",
		       (unsigned long long)(forgotten - shown));
	free(bm.bits);
	free(log);
	if (forgotten)
		return 1;
	return stale ? 2 : 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "write") == 0)
		return cmd_write(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "check") == 0)
		return cmd_check(argc - 1, argv + 1);
	fprintf(stderr, "usage: crashwriter write [-j THREADS] DEV LOGDEV ROUND SEED\n"
			"       crashwriter check GROUP LOGDEV ROUND\n");
	return 2;
}
