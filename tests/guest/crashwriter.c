// SPDX-License-Identifier: GPL-2.0
/*
 * The guest half of the crash test (tests/crash.sh, tests/guest/crash-guest.sh),
 * and the metadata decoder of the primary reset test (tests/al-reset.sh) and
 * of the unplanned failover test (tests/guest/rejoin.sh).
 *
 *   crashwriter write [-j THREADS] DEV LOGDEV ROUND SEED
 *       Write random data at random offsets and sizes to DEV with O_DIRECT,
 *       from THREADS threads (default 4), until killed or until the guest
 *       is reset. After each write completes, append an entry naming it
 *       (offset, length, the seed its data was made from and data_hash() of
 *       the data, sequence) to LOGDEV with O_DIRECT|O_DSYNC. An entry on
 *       LOGDEV therefore proves that its write had completed. When LOGDEV
 *       is full the threads stop writing and wait.
 *
 *   crashwriter consume GROUP RELDEV ROUND
 *       A shipper: read the group's ring (libdmrepl) and, for every WRITE
 *       record, append an entry (sector, nbytes, volume, data_hash() of the
 *       payload, sequence) to RELDEV with O_DIRECT|O_DSYNC; only once a
 *       batch's entries are durable, release the ring up to the batch's
 *       last sequence (DM_REPL_IOC_RELEASE). A released record is thus
 *       always durable on RELDEV, as a real shipper's records are at the
 *       peer. When RELDEV is full it stops releasing and waits.
 *
 *   crashwriter check [-m META] GROUP LOGDEV ROUND [RELDEV]
 *       After the reset and the table load: read every entry of ROUND from
 *       LOGDEV, the released records of ROUND from RELDEV (if given) and
 *       the dirty bitmap of the group's only volume (DM_REPL_IOC_GET_BITMAP).
 *       A completed write is accounted for when each of its sectors lies
 *       in a dirty region or in a released record of that write (a RELDEV
 *       entry within the write's range whose hash is that of the write's
 *       data there: a bio may have been split into several records);
 *       otherwise it is forgotten. Without RELDEV every sector must be
 *       dirty. Prints one line,
 *         crashcheck: round=R completed=N by_dirty=A by_released=B forgotten=F
 *                     dirty=D regions=T released=E torn=X stale=Y [META fields]
 *       (by_dirty: writes whose regions are all dirty; by_released: the
 *       others that are accounted for, with released records; released:
 *       WRITE records of the volume on RELDEV; torn: entries cut by the
 *       reset, on either device, not counted; stale: entries of another
 *       round, i.e. a device was not zeroed), then the first forgotten
 *       writes.
 *       META is a copy of the metadata device taken before the table load.
 *       With it the same check is made against what the crash left there:
 *       every sector must be in a region of an extent that a current AL
 *       transaction names, dirty in the on-disk bitmap, or released; the
 *       AL must be one recovery can trust; and every region so named must
 *       be dirty after the load. Its fields: al_seq (last transaction),
 *       al_extents and al_regions (what the current transactions name),
 *       bm_dirty (on-disk bitmap), by_al (writes with a sector that only
 *       the AL accounts for: the AL did the work), ondisk_forgotten,
 *       unrecovered (regions named but clean after the load), extra
 *       (regions dirty after the load that neither named; not an error
 *       here), al_torn, al_bad (slots that make the AL untrustworthy),
 *       bm_bad.
 *       Exit status 0 when all is well, 1 when a write is forgotten (or
 *       the metadata fails as above), 2 on stale entries or any other
 *       error.
 *
 *   crashwriter ondisk [-g GROUP [-l]] META
 *       Decode META (a copy of a metadata device) as check -m does, and
 *       print what recovery must mark dirty when it is loaded after a crash:
 *         ondisk: al_seq=S al_extents=E al_regions=A bm_dirty=B union=U
 *                 regions=T al_torn=X al_bad=Y bm_bad=Z
 *       (union: regions in the AL's extents or dirty in the bitmap, or
 *       both). With GROUP, whose volume of META's index was loaded from
 *       META's device since the copy was taken and not written since, also
 *       " dirty=D unrecovered=N extra=M" from its bitmap: recovery marked
 *       exactly the union when both are 0. With -l, then a line
 *       "dirty REGION" for each region dirty in that bitmap, in order.
 *       Exit status 0 then, 1 when the AL cannot be trusted or the bitmap
 *       is not the union, 2 on any other error.
 *
 * The formats live only here.
 *
 * LOGDEV is a zeroed device of 512-byte entries; entry i sits in sector i
 * and has sequence i + 1, handed out in the order the writes completed. A
 * write that was in flight at the reset may have taken a sequence whose
 * entry never reached LOGDEV, so the log can have holes: the checker reads
 * every sector. A write's data is data_fill() of a 64-bit seed that its
 * entry keeps, so that the checker can hash any part of it.
 *
 * RELDEV is a zeroed device of 64-byte entries, eight to a sector. Each
 * batch of the consumer starts on a fresh sector and is written once, with
 * the rest of its last sector zero: a sector that holds durable entries is
 * never written again, so a write torn by the reset can only cut entries
 * of the batch being written, whose records were not yet released.
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

#define SECTOR		512
#define ENTRY_SIZE	512
#define ENTRY_MAGIC	0x474f4c4853415243ULL	/* "CRASHLOG" */
#define IO_ALIGN	4096			/* O_DIRECT buffer alignment */
#define IO_UNIT		4096			/* offsets and sizes: multiples */
#define IO_MAX_UNITS	32			/* largest write: 128 KiB */
#define IO_MAX_SECTORS	(IO_MAX_UNITS * IO_UNIT / SECTOR)
#define MAX_THREADS	16

#define REL_ENTRY_SIZE	64
#define REL_PER_SECTOR	(SECTOR / REL_ENTRY_SIZE)
#define REL_MAGIC	0x4c45524853415243ULL	/* "CRASHREL" */
#define REL_BATCH	256			/* records per batch, at most */
#define REL_BATCH_SECTORS (REL_BATCH / REL_PER_SECTOR)

struct log_entry {
	uint64_t magic;
	uint64_t round;
	uint64_t seq;		/* 1 + the entry's sector on LOGDEV */
	uint64_t offset;	/* of the write on DEV, in bytes */
	uint64_t length;	/* in bytes */
	uint64_t data_seed;	/* the data written: data_fill(data_seed) */
	uint64_t hash;		/* data_hash() of the data written */
	uint64_t check;		/* entry_check() of the fields above */
	uint8_t zero[ENTRY_SIZE - 8 * sizeof(uint64_t)];
};
_Static_assert(sizeof(struct log_entry) == ENTRY_SIZE, "one sector per entry");

/* What the consumer keeps of a record it released (or is about to). */
struct rel_entry {
	uint64_t magic;
	uint64_t round;
	uint64_t index;		/* the entry's place on RELDEV, from 0 */
	uint64_t seq;		/* the record's sequence */
	uint64_t sector;	/* the record's */
	uint32_t nbytes;	/* the record's */
	uint16_t volume;	/* the record's */
	uint16_t type;		/* the record's: DM_REPL_REC_WRITE */
	uint64_t hash;		/* data_hash() of the record's payload */
	uint64_t check;		/* rel_check() of the fields above */
};
_Static_assert(sizeof(struct rel_entry) == REL_ENTRY_SIZE, "eight entries per sector");

/* splitmix64: a small, good generator; one state per thread. */
static uint64_t next_random(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* What makes a torn or stale entry fail: a mix of every field. */
static uint64_t mix_fields(uint64_t state, const uint64_t *fields, size_t n)
{
	uint64_t h = 0;

	for (size_t i = 0; i < n; i++) {
		state ^= fields[i];
		h ^= next_random(&state);
	}
	return h;
}

static uint64_t entry_check(const struct log_entry *e)
{
	const uint64_t fields[] = { e->round, e->seq, e->offset, e->length,
				    e->data_seed, e->hash };

	return mix_fields(e->magic, fields, sizeof(fields) / sizeof(fields[0]));
}

static uint64_t rel_check(const struct rel_entry *e)
{
	const uint64_t fields[] = {
		e->round, e->index, e->seq, e->sector,
		e->nbytes | (uint64_t)e->volume << 32 | (uint64_t)e->type << 48,
		e->hash,
	};

	return mix_fields(e->magic, fields, sizeof(fields) / sizeof(fields[0]));
}

/* A write's data: len bytes (a multiple of 8) made from seed. */
static void data_fill(uint8_t *data, uint64_t len, uint64_t seed)
{
	uint64_t state = seed;

	for (uint64_t i = 0; i < len; i += sizeof(uint64_t)) {
		uint64_t v = next_random(&state);

		memcpy(data + i, &v, sizeof(v));
	}
}

/*
 * The hash of a write's data or a record's payload: FNV-1a over 64-bit
 * little-endian words (payloads are whole sectors), each step followed by
 * an xorshift so that every bit of a word reaches every bit of the hash,
 * then the length. Eight times fewer multiplications than byte-wise FNV,
 * which matters under TCG.
 */
static uint64_t data_hash(const void *p, uint64_t len)
{
	const uint8_t *b = p;
	uint64_t h = 0xcbf29ce484222325ULL;
	uint64_t i = 0;

	for (; i + 8 <= len; i += 8) {
		uint64_t w;

		memcpy(&w, b + i, sizeof(w));
		h = (h ^ le64toh(w)) * 0x100000001b3ULL;
		h ^= h >> 29;
	}
	for (; i < len; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return (h ^ len) * 0x100000001b3ULL;
}

static void *alloc_aligned(size_t size)
{
	void *p;

	if (posix_memalign(&p, IO_ALIGN, size ? size : 1)) {
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

static uint64_t parse_u64(const char *what, const char *s)
{
	char *end;
	uint64_t v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-') {
		fprintf(stderr, "crashwriter: %s: not a number: %s\n", what, s);
		exit(2);
	}
	return v;
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
		uint64_t off, len, seq, data_seed;

		if (units > w->dev_units)
			units = w->dev_units;
		off = next_random(&t->rng) % (w->dev_units - units + 1) * IO_UNIT;
		len = units * IO_UNIT;
		data_seed = next_random(&t->rng);
		data_fill(data, len, data_seed);
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
			.offset = off, .length = len, .data_seed = data_seed,
			.hash = data_hash(data, len),
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
	w.round = parse_u64("ROUND", argv[optind + 2]);
	seed = parse_u64("SEED", argv[optind + 3]);
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

/* ---- consume ----------------------------------------------------------- */

static int cmd_consume(int argc, char **argv)
{
	char msg[DMREPL_ERRMSG_LEN];
	struct dmrepl_ring *ring;
	struct rel_entry *batch;
	uint64_t round, rel_sectors, next_sector = 0;
	uint64_t records = 0, entries = 0, batches = 0;
	int fd, r;

	if (argc != 4) {
		fprintf(stderr, "usage: crashwriter consume GROUP RELDEV ROUND\n");
		return 2;
	}
	round = parse_u64("ROUND", argv[3]);
	fd = open_or_die(argv[2], O_WRONLY | O_DIRECT | O_DSYNC);
	rel_sectors = dev_bytes(fd, argv[2]) / SECTOR;
	r = dmrepl_ring_open(argv[1], &ring, msg, sizeof(msg));
	if (r) {
		fprintf(stderr, "crashwriter: group %s: %s\n", argv[1], msg);
		return 2;
	}
	batch = alloc_aligned(REL_BATCH * sizeof(*batch));
	printf("crashwriter: consuming group %s, room for %llu batches of up to %d records\n",
	       argv[1], (unsigned long long)(rel_sectors / REL_BATCH_SECTORS), REL_BATCH);
	fflush(stdout);

	for (;;) {
		const struct dm_repl_rec *rec;
		uint64_t n = 0, nent = 0, last_seq = 0;
		bool discarded;

		if (rel_sectors - next_sector < REL_BATCH_SECTORS) {
			/* No room for a whole batch: release nothing more. */
			printf("crashwriter: RELDEV full after %llu records in %llu batches, waiting\n",
			       (unsigned long long)records, (unsigned long long)batches);
			fflush(stdout);
			for (;;)
				pause();
		}
		while (n < REL_BATCH &&
		       (r = dmrepl_ring_next_slot(ring, &rec, &discarded)) == 1) {
			n++;
			last_seq = dmrepl_rec_seq(rec);
			/* A failed write's slot: its range is dirty, nothing to keep. */
			if (discarded || dmrepl_rec_type(rec) != DM_REPL_REC_WRITE)
				continue;
			batch[nent] = (struct rel_entry){
				.magic = REL_MAGIC, .round = round,
				.index = next_sector * REL_PER_SECTOR + nent,
				.seq = last_seq, .sector = dmrepl_rec_sector(rec),
				.nbytes = dmrepl_rec_nbytes(rec),
				.volume = (uint16_t)dmrepl_rec_volume(rec),
				.type = DM_REPL_REC_WRITE,
				.hash = data_hash(dmrepl_rec_payload(rec),
						  dmrepl_rec_payload_len(rec)),
			};
			batch[nent].check = rel_check(&batch[nent]);
			nent++;
		}
		if (r < 0) {
			fprintf(stderr, "crashwriter: ring of %s: %s (%s)\n", argv[1],
				strerror(-r), dmrepl_ring_why(ring) ?: "?");
			return 2;
		}
		if (nent) {
			uint64_t sectors = (nent + REL_PER_SECTOR - 1) / REL_PER_SECTOR;

			memset(batch + nent, 0,
			       (sectors * REL_PER_SECTOR - nent) * sizeof(*batch));
			if (pwrite(fd, batch, sectors * SECTOR, (off_t)(next_sector * SECTOR)) !=
			    (ssize_t)(sectors * SECTOR)) {
				fprintf(stderr, "crashwriter: RELDEV write at sector %llu: %s\n",
					(unsigned long long)next_sector, strerror(errno));
				return 2;
			}
			next_sector += sectors;
			entries += nent;
		}
		if (n) {
			/* Durable on RELDEV: now the ring may forget them. */
			r = dmrepl_ring_release(ring, last_seq);
			if (r) {
				fprintf(stderr, "crashwriter: release up to %llu: %s\n",
					(unsigned long long)last_seq, strerror(-r));
				return 2;
			}
			records += n;
			batches++;
		}
		if (n == REL_BATCH)
			continue;
		r = dmrepl_ring_wait(ring, 100);
		if (r < 0 && r != -EINTR) {
			fprintf(stderr, "crashwriter: waiting on %s: %s\n", argv[1],
				strerror(-r));
			return 2;
		}
	}
}

/* ---- check ------------------------------------------------------------- */

/* A volume's dirty bitmap and geometry, from the group's device. */
struct bitmap {
	uint8_t *bits;
	uint64_t nr_regions, dirty;
	uint32_t region_sectors;
	uint32_t volume;	/* its index in the records */
};

/*
 * The bitmap of the group's volume of index volume, or with volume < 0 of
 * its only volume.
 */
static int read_bitmap(const char *group, int volume, struct bitmap *bm)
{
	char msg[DMREPL_ERRMSG_LEN];
	struct dm_repl_group_info info = { .abi_version = DM_REPL_ABI_VERSION };
	struct dm_repl_bitmap_req req = { .abi_version = DM_REPL_ABI_VERSION };
	const struct dm_repl_volume_info *v = NULL;
	struct dmrepl_ring *ring;
	size_t size;
	int r;

	r = dmrepl_ring_open(group, &ring, msg, sizeof(msg));
	if (r) {
		fprintf(stderr, "crashwriter: group %s: %s\n", group, msg);
		return r;
	}
	r = dmrepl_ring_info(ring, &info);
	for (__u32 i = 0; !r && i < info.nr_volumes; i++)
		if (volume < 0 ? info.nr_volumes == 1 : info.volumes[i].index == (__u32)volume)
			v = &info.volumes[i];
	if (!v || v->region_sectors == 0) {
		if (volume < 0)
			fprintf(stderr, "crashwriter: group %s: not one volume (%s, %u volumes)\n",
				group, strerror(r ? -r : ENOENT), info.nr_volumes);
		else
			fprintf(stderr, "crashwriter: group %s: no volume %d (%s)\n",
				group, volume, strerror(r ? -r : ENOENT));
		dmrepl_ring_close(ring);
		return r ? r : -ENOENT;
	}
	bm->nr_regions = v->nr_regions;
	bm->dirty = v->dirty_regions;
	bm->region_sectors = v->region_sectors;
	bm->volume = v->index;

	/* The module copies whole longs: round up to 8 bytes. */
	size = (bm->nr_regions + 63) / 64 * 8;
	bm->bits = alloc_aligned(size);
	req.volume = bm->volume;
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

static bool all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

/* Entry i is whole and in its place (of whichever round). */
static bool entry_whole(const struct log_entry *e, uint64_t i)
{
	return e->magic == ENTRY_MAGIC && e->check == entry_check(e) &&
	       e->seq == i + 1 && e->length > 0 && e->length % SECTOR == 0 &&
	       e->offset % SECTOR == 0 && e->length <= IO_MAX_SECTORS * SECTOR;
}

static bool rel_whole(const struct rel_entry *e, uint64_t i)
{
	return e->magic == REL_MAGIC && e->check == rel_check(e) && e->index == i;
}

/* Released records of the volume, sorted by sector. */
struct released {
	struct rel_entry *e;
	uint64_t n;
	uint64_t torn, stale;
};

static int rel_cmp(const void *a, const void *b)
{
	const struct rel_entry *x = a, *y = b;

	if (x->sector != y->sector)
		return x->sector < y->sector ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void read_released(const char *path, uint64_t round, uint32_t volume,
			  struct released *rel)
{
	int fd = open_or_die(path, O_RDONLY | O_DIRECT);
	uint64_t bytes = dev_bytes(fd, path) / SECTOR * SECTOR;
	uint64_t total = bytes / REL_ENTRY_SIZE;
	struct rel_entry *all = alloc_aligned(bytes);

	if (pread(fd, all, bytes, 0) != (ssize_t)bytes) {
		fprintf(stderr, "crashwriter: read %s: %s\n", path, strerror(errno));
		exit(2);
	}
	close(fd);
	*rel = (struct released){ .e = all };
	for (uint64_t i = 0; i < total; i++) {
		if (all_zero(&all[i], sizeof(all[i])))
			continue;	/* never written: the rest of a batch's sector */
		if (!rel_whole(&all[i], i)) {
			rel->torn++;
			continue;
		}
		if (all[i].round != round) {
			rel->stale++;
			continue;
		}
		if (all[i].volume != volume || all[i].type != DM_REPL_REC_WRITE ||
		    all[i].nbytes == 0 || all[i].nbytes % SECTOR)
			continue;
		all[rel->n++] = all[i];	/* compacts in place: n <= i */
	}
	qsort(rel->e, rel->n, sizeof(*rel->e), rel_cmp);
}

/* First released record at or after sector. */
static uint64_t rel_lower_bound(const struct released *rel, uint64_t sector)
{
	uint64_t lo = 0, hi = rel->n;

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (rel->e[mid].sector < sector)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * What the metadata device held before the table load (check -m): the
 * regions the current AL transactions name and the on-disk bitmap's, i.e.
 * what recovery must mark dirty (Documentation/metadata.md, "Recovery").
 */
struct ondisk {
	uint8_t *al_bits;	/* regions of the extents current slots name */
	uint8_t *bm_bits;	/* the bitmap's bits; a failed block all set */
	uint64_t nr_regions;	/* the volume's, as its superblock says */
	uint32_t region_sectors, volume;
	uint64_t al_seq;	/* highest valid transaction */
	uint64_t al_extents;	/* distinct extents current slots name */
	uint64_t al_regions, bm_dirty;
	uint64_t al_torn, al_bad, bm_bad;
};

static void set_bit_range(uint8_t *bits, uint64_t first, uint64_t end)
{
	for (uint64_t r = first; r < end; r++)
		bits[r / 8] |= (uint8_t)(1U << (r % 8));
}

static bool bit_set(const uint8_t *bits, uint64_t r)
{
	return (bits[r / 8] >> (r % 8)) & 1;
}

static void read_block(int fd, const char *path, void *block, uint64_t sector)
{
	if (pread(fd, block, DM_REPL_META_BLOCK_SIZE, (off_t)(sector * SECTOR)) !=
	    DM_REPL_META_BLOCK_SIZE) {
		fprintf(stderr, "crashwriter: read %s at sector %llu: %s\n", path,
			(unsigned long long)sector, errno ? strerror(errno) : "short read");
		exit(2);
	}
}

static void read_ondisk(const char *path, struct ondisk *od)
{
	uint8_t *block = alloc_aligned(DM_REPL_META_BLOCK_SIZE);
	struct dmrepl_meta_al_txn *t = alloc_aligned(sizeof(*t));
	struct dmrepl_meta_layout lay;
	struct dmrepl_meta_sb sb;
	uint64_t per_extent, nr_regions;
	const char *why, *field;
	unsigned int next = 0;
	int fd = open_or_die(path, O_RDONLY);
	uint8_t *seen;		/* extents counted, by number */
	int *decoded;
	uint64_t *seqs;
	size_t size;

	read_block(fd, path, block, 0);
	if (dmrepl_meta_sb_decode(block, &sb, &why) ||
	    dmrepl_meta_sb_check(&sb, &next, &why, &field)) {
		fprintf(stderr, "crashwriter: %s: superblock: %s\n", path, why);
		exit(2);
	}
	dmrepl_meta_sb_layout(&sb, &lay);
	nr_regions = lay.nr_regions;
	size = (nr_regions + 63) / 64 * 8;
	seen = alloc_aligned(size);
	*od = (struct ondisk){
		.al_bits = alloc_aligned(size), .bm_bits = alloc_aligned(size),
		.nr_regions = nr_regions, .region_sectors = sb.region_sectors,
		.volume = sb.volume,
	};
	per_extent = sb.extent_sectors / sb.region_sectors;

	/* The activity log, judged as recovery judges it. */
	decoded = calloc(sb.al_slots, sizeof(*decoded));
	seqs = calloc(sb.al_slots, sizeof(*seqs));
	if (!decoded || !seqs)
		exit(2);
	for (uint32_t i = 0; i < sb.al_slots; i++) {
		read_block(fd, path, block, lay.al_offset + (uint64_t)i * DM_REPL_META_BLOCK_SECTORS);
		decoded[i] = dmrepl_meta_al_decode(block, &sb, i, t, &why);
		seqs[i] = decoded[i] == 1 ? t->seq : 0;
		if (seqs[i] > od->al_seq)
			od->al_seq = seqs[i];
	}
	for (uint32_t i = 0; i < sb.al_slots; i++) {
		switch (dmrepl_meta_al_judge(&sb, i, decoded[i], seqs[i], od->al_seq, &why)) {
		case DMREPL_AL_CURRENT:
			break;
		case DMREPL_AL_TORN:
			od->al_torn++;
			continue;
		case DMREPL_AL_BAD:
			od->al_bad++;
			printf("crashcheck: AL slot %u cannot be trusted: %s\n", i, why);
			continue;
		default:
			continue;
		}
		read_block(fd, path, block, lay.al_offset + (uint64_t)i * DM_REPL_META_BLOCK_SECTORS);
		dmrepl_meta_al_decode(block, &sb, i, t, &why);
		for (uint32_t k = 0; k < t->nr_extents; k++) {
			uint64_t e = t->extents[k], end = (e + 1) * per_extent;

			if (!bit_set(seen, e)) {
				seen[e / 8] |= (uint8_t)(1U << (e % 8));
				od->al_extents++;
			}
			set_bit_range(od->al_bits, e * per_extent,
				      end < nr_regions ? end : nr_regions);
		}
	}

	/* The bitmap: a block that fails its checks stands for all its regions. */
	for (uint64_t b = 0; b < lay.bm_blocks; b++) {
		uint64_t first = b * DM_REPL_BM_BLOCK_BITS, bytes = DM_REPL_BM_BLOCK_BITS / 8;
		__u64 dirty;

		read_block(fd, path, block, lay.bm_offset + b * DM_REPL_META_BLOCK_SECTORS);
		if (dmrepl_meta_bm_decode(block, &sb, b, &dirty, &why)) {
			uint64_t end = first + DM_REPL_BM_BLOCK_BITS;

			od->bm_bad++;
			printf("crashcheck: bitmap block %llu: %s\n", (unsigned long long)b, why);
			set_bit_range(od->bm_bits, first, end < nr_regions ? end : nr_regions);
			continue;
		}
		if (first / 8 + bytes > size)
			bytes = size - first / 8;
		memcpy(od->bm_bits + first / 8, block + DM_REPL_META_HDR_SIZE, bytes);
	}
	for (uint64_t r = 0; r < nr_regions; r++) {
		od->al_regions += bit_set(od->al_bits, r);
		od->bm_dirty += bit_set(od->bm_bits, r);
	}
	close(fd);
	free(decoded);
	free(seqs);
	free(seen);
	free(t);
	free(block);
}

/* od is the metadata of bm's volume (the group loaded from it). */
static bool ondisk_is_loaded(const struct ondisk *od, const struct bitmap *bm, const char *path)
{
	if (od->nr_regions == bm->nr_regions && od->region_sectors == bm->region_sectors &&
	    od->volume == bm->volume)
		return true;
	fprintf(stderr, "crashwriter: %s is not the loaded volume's metadata\n", path);
	return false;
}

/*
 * Recovery against the metadata it started from: regions the AL or the
 * on-disk bitmap named that are clean after the load (unrecovered), and
 * regions dirty after the load that neither named (extra).
 */
static void ondisk_recovered(const struct ondisk *od, const struct bitmap *bm,
			     uint64_t *unrecovered, uint64_t *extra)
{
	*unrecovered = *extra = 0;
	for (uint64_t r = 0; r < bm->nr_regions; r++) {
		bool named = bit_set(od->al_bits, r) || bit_set(od->bm_bits, r);

		*unrecovered += named && !region_dirty(bm, r);
		*extra += !named && region_dirty(bm, r);
	}
}

/* How one completed write is accounted for. */
struct judgement {
	bool bad_entry;		/* its hash is not that of its seed's data */
	bool forgotten;		/* a sector neither dirty nor released */
	bool all_dirty;		/* every sector dirty */
	bool ondisk_forgotten;	/* a sector in no AL extent, bitmap bit or released record */
	bool needed_al;		/* a sector only the AL's extents account for */
	uint64_t sector;	/* the first sector accounted for by nothing */
	uint64_t overlapping;	/* released records within the write */
	uint64_t matching;	/* of those, with the write's data */
};

/*
 * Is every sector of e's write in a dirty region, or in a released record
 * of this very write (same data)? And, with od, in a region the metadata
 * named before the load, or released? data is scratch for the regenerated
 * data.
 */
static void judge(const struct bitmap *bm, const struct ondisk *od,
		  const struct released *rel, const struct log_entry *e,
		  uint8_t *data, struct judgement *j)
{
	uint64_t first = e->offset / SECTOR, nr = e->length / SECTOR;
	bool dirty[IO_MAX_SECTORS], released[IO_MAX_SECTORS];
	bool need_released = false;

	*j = (struct judgement){ .all_dirty = true, .sector = UINT64_MAX };
	for (uint64_t s = 0; s < nr; s++) {
		uint64_t r = (first + s) / bm->region_sectors;

		dirty[s] = region_dirty(bm, r);
		released[s] = false;
		j->all_dirty &= dirty[s];
		if (!dirty[s] || (od && !bit_set(od->al_bits, r) && !bit_set(od->bm_bits, r)))
			need_released = true;
	}

	if (need_released && rel->n) {
		data_fill(data, e->length, e->data_seed);
		if (data_hash(data, e->length) != e->hash) {
			j->bad_entry = true;
			return;
		}
		for (uint64_t i = rel_lower_bound(rel, first);
		     i < rel->n && rel->e[i].sector < first + nr; i++) {
			const struct rel_entry *r = &rel->e[i];
			uint64_t rs = r->sector - first, rn = r->nbytes / SECTOR;

			if (rs + rn > nr)
				continue;	/* reaches past the write: another write's */
			j->overlapping++;
			if (data_hash(data + rs * SECTOR, r->nbytes) != r->hash)
				continue;	/* another write's data at the same place */
			j->matching++;
			for (uint64_t s = rs; s < rs + rn; s++)
				released[s] = true;
		}
	}
	for (uint64_t s = 0; s < nr; s++) {
		uint64_t r = (first + s) / bm->region_sectors;

		if (!dirty[s] && !released[s]) {
			j->forgotten = true;
			if (j->sector == UINT64_MAX)
				j->sector = first + s;
		}
		if (!od || released[s] || bit_set(od->bm_bits, r))
			continue;
		if (bit_set(od->al_bits, r)) {
			j->needed_al = true;
		} else {
			j->ondisk_forgotten = true;
			if (j->sector == UINT64_MAX)
				j->sector = first + s;
		}
	}
}

static int cmd_check(int argc, char **argv)
{
	uint64_t round, entries, shown = 0, unrecovered = 0, extra;
	uint64_t completed = 0, torn = 0, stale = 0, bad = 0;
	uint64_t by_dirty = 0, by_released = 0, forgotten = 0;
	uint64_t by_al = 0, ondisk_forgotten = 0;
	struct released rel = { 0 };
	struct ondisk ondisk, *od = NULL;
	const char *meta = NULL;
	struct log_entry *log;
	struct judgement j;
	struct bitmap bm;
	uint8_t *data;
	int fd, opt;

	while ((opt = getopt(argc, argv, "m:")) != -1) {
		if (opt != 'm')
			return 2;
		meta = optarg;
	}
	argc -= optind - 1;
	argv += optind - 1;
	if (argc != 4 && argc != 5) {
		fprintf(stderr, "usage: crashwriter check [-m META] GROUP LOGDEV ROUND [RELDEV]\n");
		return 2;
	}
	round = parse_u64("ROUND", argv[3]);
	fd = open_or_die(argv[2], O_RDONLY | O_DIRECT);
	entries = dev_bytes(fd, argv[2]) / ENTRY_SIZE;
	log = alloc_aligned(entries * ENTRY_SIZE);
	if (pread(fd, log, entries * ENTRY_SIZE, 0) != (ssize_t)(entries * ENTRY_SIZE)) {
		fprintf(stderr, "crashwriter: read %s: %s\n", argv[2], strerror(errno));
		return 2;
	}
	close(fd);
	if (read_bitmap(argv[1], -1, &bm))
		return 2;
	if (argc == 5)
		read_released(argv[4], round, bm.volume, &rel);
	if (meta) {
		read_ondisk(meta, &ondisk);
		od = &ondisk;
		if (!ondisk_is_loaded(od, &bm, meta))
			return 2;
		/* Recovery marks at least what the metadata named. */
		ondisk_recovered(od, &bm, &unrecovered, &extra);
	}
	data = alloc_aligned((size_t)IO_MAX_UNITS * IO_UNIT);

	/* Count first, so that the summary line comes first. */
	for (uint64_t i = 0; i < entries; i++) {
		if (all_zero(&log[i], sizeof(log[i])))
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
		judge(&bm, od, &rel, &log[i], data, &j);
		if (j.bad_entry) {
			bad++;
			continue;
		}
		forgotten += j.forgotten;
		by_dirty += !j.forgotten && j.all_dirty;
		by_released += !j.forgotten && !j.all_dirty;
		ondisk_forgotten += j.ondisk_forgotten;
		by_al += !j.ondisk_forgotten && j.needed_al;
	}
	printf("crashcheck: round=%llu completed=%llu by_dirty=%llu by_released=%llu forgotten=%llu dirty=%llu regions=%llu released=%llu torn=%llu stale=%llu",
	       (unsigned long long)round, (unsigned long long)completed,
	       (unsigned long long)by_dirty, (unsigned long long)by_released,
	       (unsigned long long)forgotten, (unsigned long long)bm.dirty,
	       (unsigned long long)bm.nr_regions, (unsigned long long)rel.n,
	       (unsigned long long)(torn + rel.torn), (unsigned long long)(stale + rel.stale));
	if (od)
		printf(" al_seq=%llu al_extents=%llu al_regions=%llu bm_dirty=%llu by_al=%llu ondisk_forgotten=%llu unrecovered=%llu extra=%llu al_torn=%llu al_bad=%llu bm_bad=%llu",
		       (unsigned long long)od->al_seq, (unsigned long long)od->al_extents,
		       (unsigned long long)od->al_regions, (unsigned long long)od->bm_dirty,
		       (unsigned long long)by_al, (unsigned long long)ondisk_forgotten,
		       (unsigned long long)unrecovered, (unsigned long long)extra,
		       (unsigned long long)od->al_torn,
		       (unsigned long long)od->al_bad, (unsigned long long)od->bm_bad);
	printf("\n");
	if (stale || rel.stale)
		printf("crashcheck: %llu log and %llu released entries of another round: a device was not zeroed\n",
		       (unsigned long long)stale, (unsigned long long)rel.stale);
	if (bad)
		printf("crashcheck: %llu log entries whose hash is not that of the data their seed makes\n",
		       (unsigned long long)bad);
	if (unrecovered)
		printf("crashcheck: %llu regions the metadata named before the load are clean after it\n",
		       (unsigned long long)unrecovered);

	for (uint64_t i = 0; (forgotten || ondisk_forgotten) && i < entries && shown < 20; i++) {
		const struct log_entry *e = &log[i];
		uint64_t r;

		if (all_zero(e, sizeof(*e)) || !entry_whole(e, i) || e->round != round)
			continue;
		judge(&bm, od, &rel, e, data, &j);
		if (j.bad_entry || (!j.forgotten && !j.ondisk_forgotten))
			continue;
		r = j.sector / bm.region_sectors;
		printf("crashcheck: %s: seq %llu, %llu bytes at %llu (sectors %llu+%llu): sector %llu (region %llu, %s after the load%s) is in no released record of it; %llu released records within it, %llu with its data\n",
		       j.forgotten ? "forgotten" : "forgotten by the metadata",
		       (unsigned long long)e->seq, (unsigned long long)e->length,
		       (unsigned long long)e->offset, (unsigned long long)(e->offset / SECTOR),
		       (unsigned long long)(e->length / SECTOR), (unsigned long long)j.sector,
		       (unsigned long long)r, region_dirty(&bm, r) ? "dirty" : "clean",
		       !od ? "" : bit_set(od->al_bits, r) ? ", named by the AL" :
		       bit_set(od->bm_bits, r) ? ", dirty in the on-disk bitmap" :
		       ", in neither the AL nor the on-disk bitmap",
		       (unsigned long long)j.overlapping, (unsigned long long)j.matching);
		shown++;
	}
	if (forgotten + ondisk_forgotten > shown)
		printf("crashcheck: and more forgotten writes\n");
	free(data);
	free(rel.e);
	free(bm.bits);
	free(log);
	if (forgotten || ondisk_forgotten || unrecovered || (od && od->al_bad))
		return 1;
	return stale || rel.stale || bad ? 2 : 0;
}

/* ---- ondisk ------------------------------------------------------------ */

static int cmd_ondisk(int argc, char **argv)
{
	uint64_t both = 0, unrecovered = 0, extra = 0;
	const char *group = NULL;
	bool list = false;
	struct ondisk od;
	struct bitmap bm;
	int opt;

	while ((opt = getopt(argc, argv, "g:l")) != -1) {
		if (opt == 'g')
			group = optarg;
		else if (opt == 'l')
			list = true;
		else
			return 2;
	}
	if (argc - optind != 1 || (list && !group)) {
		fprintf(stderr, "usage: crashwriter ondisk [-g GROUP [-l]] META\n");
		return 2;
	}
	read_ondisk(argv[optind], &od);
	for (uint64_t r = 0; r < od.nr_regions; r++)
		both += bit_set(od.al_bits, r) || bit_set(od.bm_bits, r);
	printf("ondisk: al_seq=%llu al_extents=%llu al_regions=%llu bm_dirty=%llu union=%llu regions=%llu al_torn=%llu al_bad=%llu bm_bad=%llu",
	       (unsigned long long)od.al_seq, (unsigned long long)od.al_extents,
	       (unsigned long long)od.al_regions, (unsigned long long)od.bm_dirty,
	       (unsigned long long)both, (unsigned long long)od.nr_regions,
	       (unsigned long long)od.al_torn, (unsigned long long)od.al_bad,
	       (unsigned long long)od.bm_bad);
	if (group) {
		if (read_bitmap(group, (int)od.volume, &bm) ||
		    !ondisk_is_loaded(&od, &bm, argv[optind]))
			return 2;
		ondisk_recovered(&od, &bm, &unrecovered, &extra);
		printf(" dirty=%llu unrecovered=%llu extra=%llu\n", (unsigned long long)bm.dirty,
		       (unsigned long long)unrecovered, (unsigned long long)extra);
		for (uint64_t r = 0; list && r < bm.nr_regions; r++)
			if (region_dirty(&bm, r))
				printf("dirty %llu\n", (unsigned long long)r);
		free(bm.bits);
	} else {
		printf("\n");
	}
	free(od.al_bits);
	free(od.bm_bits);
	return od.al_bad || unrecovered || extra ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "write") == 0)
		return cmd_write(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "consume") == 0)
		return cmd_consume(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "check") == 0)
		return cmd_check(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "ondisk") == 0)
		return cmd_ondisk(argc - 1, argv + 1);
	fprintf(stderr, "usage: crashwriter write [-j THREADS] DEV LOGDEV ROUND SEED\n"
			"       crashwriter consume GROUP RELDEV ROUND\n"
			"       crashwriter check [-m META] GROUP LOGDEV ROUND [RELDEV]\n"
			"       crashwriter ondisk [-g GROUP [-l]] META\n");
	return 2;
}
