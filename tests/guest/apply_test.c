// SPDX-License-Identifier: GPL-2.0
/*
 * Apply: a secondary group takes batches of sealed records by write(2) on
 * /dev/dm-repl/<group> and applies them to its volumes, byte for byte, one
 * epoch at a time; a batch with anything wrong in it is refused whole, with
 * its errno, its reason and the offending sequence in DM_REPL_IOC_APPLY_INFO,
 * and leaves the replica untouched.
 *
 * The records are built here with libdmrepl (dmrepl_rec_encode, sealed, with
 * the source group's group_tag); each volume's expected image is kept in
 * memory and compared with what the device reads back. The data disks are
 * loop devices over tmpfs files, filled with a pattern first, so that a
 * byte written, zeroed or discarded where it should not be shows up.
 *
 * Runs in the guest (tests/guest/vm.sh) with dm-repl.ko loaded. TEST_SEED
 * in the environment replays a run; the seed is printed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "kselftest_harness.h"
#include "testlib.h"

#define DATA_MB		16
#define MAX_WRITE	(128U << 10)
#define MAX_RANGE	(1U << 20)	/* discards and zeroings */
#define FIRST_EPOCH	1		/* the primary's first epoch */
#define MAX_SEC		3

/* ---- a secondary volume and its expected image ------------------------- */

struct sec {
	char name[TL_NAME_LEN];
	char path[TL_NAME_LEN + 16];
	char data[TL_NAME_LEN];
	char meta[TL_NAME_LEN];
	char under[TL_NAME_LEN];	/* wrap_data: the loop disk under data */
	char table[256];
	size_t size;
	int index;		/* --volume */
	int rfd;		/* /dev/mapper/<name>, O_RDONLY | O_DIRECT */
	unsigned char *img;	/* what the device must read */
};

/* The stream of the records these tests make by hand. */
#define TEST_STREAM	0x5eed0000000000a1ULL

/* Where a record stream comes from: the next sequence, epoch and the tag. */
struct src {
	uint64_t seq;
	uint64_t epoch;
	uint32_t tag;
	uint64_t stream;	/* in every record; a fresh replica adopts it */
};

/* Records back to back, as write(2) takes them. */
struct batch {
	unsigned char *buf;
	size_t len, cap;
	size_t *offs;		/* where each record starts */
	size_t nrec, offs_cap;
	uint64_t payload;	/* payload bytes of WRITE and RESYNC records */
	unsigned int flush_recs;
	/*
	 * Data device flushes the batch needs at least: one per volume
	 * written in each epoch it closes (flush_min), and at its end one per
	 * volume written since its last FLUSH (written).
	 */
	unsigned int flush_min;
	uint64_t written;
	char err[160];
};

struct ctx {
	struct tl_env env;
	char group[DM_REPL_GROUP_NAME_MAX];
	struct sec vols[MAX_SEC];
	int nvols;
	int fd;			/* /dev/dm-repl/<group>, O_RDWR */
	struct src s;
	struct batch b;
	struct tl_rng rng;
	uint64_t seed;
	unsigned char *scratch;	/* payloads, DM_REPL_REC_PAYLOAD_MAX + 4096 */
	unsigned char *rbuf;	/* device reads */
	/* New volumes' data: a dm-linear device over the loop disk. */
	bool wrap_data;
	/* More options of new volumes' "meta create" (NULL: none). */
	const char *meta_opts;
};

static void batch_reset(struct batch *b)
{
	b->len = 0;
	b->nrec = 0;
	b->payload = 0;
	b->flush_recs = 0;
	b->flush_min = 0;
	b->written = 0;
	b->err[0] = 0;
}

static void batch_free(struct batch *b)
{
	free(b->buf);
	free(b->offs);
	memset(b, 0, sizeof(*b));
}

static struct dm_repl_rec *rec_at(struct batch *b, size_t i)
{
	return (struct dm_repl_rec *)(b->buf + b->offs[i]);
}

/* Room for need more bytes and one more record. */
static int batch_room(struct batch *b, size_t need)
{
	if (b->len + need > b->cap) {
		size_t cap = b->cap ? b->cap : 1U << 20;
		void *p;

		while (cap < b->len + need)
			cap *= 2;
		p = realloc(b->buf, cap);
		if (!p)
			return -ENOMEM;
		b->buf = p;
		b->cap = cap;
	}
	if (b->nrec == b->offs_cap) {
		size_t cap = b->offs_cap ? 2 * b->offs_cap : 256;
		void *p = realloc(b->offs, cap * sizeof(*b->offs));

		if (!p)
			return -ENOMEM;
		b->offs = p;
		b->offs_cap = cap;
	}
	return 0;
}

/*
 * Append a record with the stream's next sequence, its epoch and its tag;
 * a FLUSH (not VOID) closes the epoch. Returns the record's index.
 */
static long b_add(struct batch *b, struct src *s, struct dmrepl_rec_fields *f)
{
	size_t need = dmrepl_rec_size(f->payload_len);
	long len;

	if (batch_room(b, need)) {
		snprintf(b->err, sizeof(b->err), "out of memory");
		return -1;
	}
	f->seq = s->seq++;
	f->epoch = s->epoch;
	f->group_tag = s->tag;
	f->stream = s->stream;
	f->time_ns = 1700000000ULL * 1000000000ULL + f->seq;
	len = dmrepl_rec_encode(b->buf + b->len, need, f);
	if (len != (long)need) {
		snprintf(b->err, sizeof(b->err), "dmrepl_rec_encode: %ld", len);
		return -1;
	}
	if (f->flags & DM_REPL_RECF_VOID) {
		/* nothing to apply */
	} else if (f->type == DM_REPL_REC_FLUSH) {
		s->epoch++;
		b->flush_recs++;
		b->flush_min += (unsigned int)__builtin_popcountll(b->written);
		b->written = 0;
	} else if (f->type != DM_REPL_REC_MARKER && f->volume < 64) {
		b->written |= 1ULL << f->volume;
	}
	if ((f->type == DM_REPL_REC_WRITE || f->type == DM_REPL_REC_RESYNC) &&
	    !(f->flags & DM_REPL_RECF_VOID))
		b->payload += f->payload_len;
	b->offs[b->nrec] = b->len;
	b->len += need;
	return (long)b->nrec++;
}

/*
 * The STREAM record that begins @stream, naming @prev as the one before it
 * (flags: DM_REPL_RECF_GAP or 0); the records after it are of @stream.
 */
static long b_stream(struct batch *b, struct src *s, uint64_t stream, uint64_t prev,
		     unsigned int flags)
{
	struct dm_repl_stream_link link = { .prev = { htole64(prev) } };
	struct dmrepl_rec_fields f = {
		.type = DM_REPL_REC_STREAM, .flags = flags,
		.payload = &link, .payload_len = sizeof(link),
	};

	s->stream = stream;
	return b_add(b, s, &f);
}

/* WRITE (or RESYNC) of tl_fill(seed) at off; applied to img when not NULL. */
static long b_data(struct ctx *c, struct batch *b, struct src *s, unsigned int type,
		   unsigned int flags, unsigned int vol, uint64_t off, uint32_t len,
		   uint64_t seed, unsigned char *img)
{
	struct dmrepl_rec_fields f = {
		.type = type, .flags = flags, .volume = vol, .sector = off >> 9,
		.nbytes = len, .payload = c->scratch, .payload_len = len,
	};

	tl_fill(c->scratch, len, seed);
	if (img)
		memcpy(img + off, c->scratch, len);
	return b_add(b, s, &f);
}

static long b_write(struct ctx *c, struct batch *b, struct src *s, unsigned int vol,
		    uint64_t off, uint32_t len, uint64_t seed, unsigned char *img)
{
	return b_data(c, b, s, DM_REPL_REC_WRITE, 0, vol, off, len, seed, img);
}

/* DISCARD or WRITE_ZEROES: the loop disks read zeros after either. */
static long b_zero(struct batch *b, struct src *s, unsigned int type, unsigned int vol,
		   uint64_t off, uint32_t len, unsigned char *img)
{
	struct dmrepl_rec_fields f = {
		.type = type, .volume = vol, .sector = off >> 9, .nbytes = len,
	};

	if (img)
		memset(img + off, 0, len);
	return b_add(b, s, &f);
}

static long b_flush(struct batch *b, struct src *s)
{
	struct dmrepl_rec_fields f = { .type = DM_REPL_REC_FLUSH };

	return b_add(b, s, &f);
}

static long b_marker(struct batch *b, struct src *s, const char *label)
{
	struct dmrepl_rec_fields f = {
		.type = DM_REPL_REC_MARKER, .payload = label,
		.payload_len = (uint32_t)strlen(label),
	};

	return b_add(b, s, &f);
}

/* A resynced region of zeros, in its ZERO form: the range reads zeros after. */
static long b_resync_zero(struct batch *b, struct src *s, unsigned int vol, uint64_t off,
			  uint32_t len, unsigned char *img)
{
	struct dmrepl_rec_fields f = {
		.type = DM_REPL_REC_RESYNC, .flags = DM_REPL_RECF_ZERO, .volume = vol,
		.sector = off >> 9, .nbytes = len,
	};

	if (img)
		memset(img + off, 0, len);
	return b_add(b, s, &f);
}

/* The VOID form of a record of type at [off, +len): applies nothing. */
static long b_void(struct batch *b, struct src *s, unsigned int type, unsigned int vol,
		   uint64_t off, uint32_t len)
{
	struct dmrepl_rec_fields f = {
		.type = type, .flags = DM_REPL_RECF_VOID, .volume = vol,
		.sector = off >> 9, .nbytes = len,
	};

	return b_add(b, s, &f);
}

/* Reseal record i after a field was changed by hand. */
static void b_reseal(struct batch *b, size_t i)
{
	dmrepl_rec_seal(rec_at(b, i));
}

/*
 * n random records over the context's volumes (images tracked when track):
 * writes of 512 B to 128 KiB at any sector, discards and zeroings of 4 KiB
 * multiples, FLUSHes, markers and VOID records.
 */
static void b_random(struct ctx *c, struct batch *b, struct src *s, unsigned int n,
		     bool track)
{
	unsigned int i;

	for (i = 0; i < n && !b->err[0]; i++) {
		struct sec *v = &c->vols[tl_rand_range(&c->rng, 0, c->nvols - 1)];
		unsigned char *img = track ? v->img : NULL;
		uint64_t p = tl_rand(&c->rng) % 100, off;
		uint32_t len;
		char label[32];

		if (p < 55) {
			len = (uint32_t)tl_rand_range(&c->rng, 1, MAX_WRITE / 512) * 512;
			off = tl_rand_range(&c->rng, 0, (v->size - len) / 512) * 512;
			b_write(c, b, s, v->index, off, len, tl_rand(&c->rng), img);
		} else if (p < 75) {
			len = (uint32_t)tl_rand_range(&c->rng, 1, MAX_RANGE / 4096) * 4096;
			off = tl_rand_range(&c->rng, 0, (v->size - len) / 4096) * 4096;
			b_zero(b, s, p < 65 ? DM_REPL_REC_DISCARD : DM_REPL_REC_WRITE_ZEROES,
			       v->index, off, len, img);
		} else if (p < 88) {
			b_flush(b, s);
		} else if (p < 93) {
			snprintf(label, sizeof(label), "m%llu", (unsigned long long)s->seq);
			b_marker(b, s, label);
		} else {
			len = (uint32_t)tl_rand_range(&c->rng, 1, 64) * 512;
			off = tl_rand_range(&c->rng, 0, (v->size - len) / 512) * 512;
			b_void(b, s, DM_REPL_REC_WRITE + (unsigned int)(p % 3), v->index,
			       off, len);
		}
	}
}

/* ---- the group ----------------------------------------------------------- */

static int apply_info(int fd, struct dm_repl_apply_info *ai)
{
	memset(ai, 0, sizeof(*ai));
	ai->abi_version = DM_REPL_ABI_VERSION;
	return ioctl(fd, DM_REPL_IOC_APPLY_INFO, ai) ? -errno : 0;
}

static int verify_info(int fd, struct dm_repl_verify_info *vi)
{
	memset(vi, 0, sizeof(*vi));
	vi->abi_version = DM_REPL_ABI_VERSION;
	return ioctl(fd, DM_REPL_IOC_VERIFY_INFO, vi) ? -errno : 0;
}

/* write(2) of a whole batch: its size or -errno. */
static long apply_buf(int fd, const void *buf, size_t len)
{
	ssize_t n = write(fd, buf, len);

	return n < 0 ? -errno : (long)n;
}

static int open_group(struct ctx *c, const char *group, int flags)
{
	char path[64];

	snprintf(path, sizeof(path), DM_REPL_DEV_DIR "/%s", group);
	return tl_env_track_fd(&c->env, open(path, flags | O_CLOEXEC));
}

/* Fill a loop disk with a pattern through the loop device itself. */
static int prefill(const char *dev, unsigned char *img, size_t size, uint64_t seed)
{
	int fd = open(dev, O_RDWR | O_DIRECT | O_CLOEXEC), r;
	void *buf;

	if (fd < 0)
		return -errno;
	tl_fill(img, size, seed);
	buf = tl_zalloc_aligned(size);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	memcpy(buf, img, size);
	r = tl_pwrite_all(fd, buf, size, 0);
	if (!r && fsync(fd))
		r = -errno;
	free(buf);
	close(fd);
	return r;
}

static int sec_load(struct ctx *c, struct sec *v)
{
	int r = tl_dm_create(&c->env, v->name, "%s", v->table);

	if (r)
		return r < 0 ? r : -EIO;
	v->rfd = tl_env_track_fd(&c->env, open(v->path, O_RDONLY | O_DIRECT | O_CLOEXEC));
	return v->rfd < 0 ? -errno : 0;
}

/*
 * A secondary volume of c->group: loop data disk filled with a pattern,
 * loop metadata disk with secondary metadata of volume index, the dm device
 * (table options opts, "" for none).
 */
static int sec_create(struct ctx *c, const char *name, int index, const char *opts)
{
	struct sec *v = &c->vols[c->nvols];
	int r;

	memset(v, 0, sizeof(*v));
	v->rfd = -1;
	v->index = index;
	v->size = (size_t)DATA_MB << 20;
	snprintf(v->name, sizeof(v->name), "%s", name);
	snprintf(v->path, sizeof(v->path), "/dev/mapper/%s", name);
	v->img = malloc(v->size);
	if (!v->img)
		return -ENOMEM;
	c->nvols++;
	r = tl_loop_create(&c->env, DATA_MB, v->data, sizeof(v->data));
	if (!r)
		r = tl_loop_create(&c->env, TL_META_MB, v->meta, sizeof(v->meta));
	if (!r)
		r = prefill(v->data, v->img, v->size, c->seed ^ (0xda7aULL + (uint64_t)index));
	if (!r && c->wrap_data) {
		char dname[TL_NAME_LEN - 16];

		memcpy(v->under, v->data, sizeof(v->under));
		snprintf(dname, sizeof(dname), "%.40s-d", name);
		r = tl_dm_create(&c->env, dname, "0 %zu linear %s 0", v->size >> 9, v->under);
		snprintf(v->data, sizeof(v->data), "/dev/mapper/%s", dname);
	}
	if (r)
		return r;
	r = tl_run("%s meta create --force --role secondary %s --group %s --data-dev %s --volume %d %s >/dev/null",
		   TL_REPLTOOL, c->meta_opts ?: "", c->group, v->data, index, v->meta);
	if (r)
		return r < 0 ? r : -EIO;
	{
		char table[sizeof(v->table)], data[TL_NAME_LEN], meta[TL_NAME_LEN];

		memcpy(data, v->data, sizeof(data));
		memcpy(meta, v->meta, sizeof(meta));
		snprintf(table, sizeof(table), "0 %zu repl %s %s %s secondary%s%s",
			 v->size >> 9, data, meta, c->group, opts[0] ? " " : "", opts);
		memcpy(v->table, table, sizeof(table));
	}
	return sec_load(c, v);
}

/* Remove the dm devices and load them again (group fd closed, reopened). */
static int group_reload(struct ctx *c)
{
	int i, r;

	if (c->fd >= 0)
		tl_env_close_fd(&c->env, c->fd);
	c->fd = -1;
	for (i = 0; i < c->nvols; i++) {
		tl_env_close_fd(&c->env, c->vols[i].rfd);
		c->vols[i].rfd = -1;
		r = tl_dm_remove(&c->env, c->vols[i].name);
		if (r)
			return r < 0 ? r : -EIO;
	}
	for (i = 0; i < c->nvols; i++) {
		r = sec_load(c, &c->vols[i]);
		if (r)
			return r;
	}
	c->fd = open_group(c, c->group, O_RDWR);
	return c->fd < 0 ? -errno : 0;
}

/* The context, with the seed; no volume yet. */
static void ctx_init(struct __test_metadata *_metadata, struct ctx *c, const char *group)
{
	memset(c, 0, sizeof(*c));
	TL_SETUP(&c->env);
	c->fd = -1;
	c->nvols = 0;
	snprintf(c->group, sizeof(c->group), "%s", group);
	c->seed = tl_seed();
	tl_rng_init(&c->rng, c->seed);
	TH_LOG("seed %llu (set TEST_SEED to replay)", (unsigned long long)c->seed);
	c->s.seq = 1;
	c->s.epoch = FIRST_EPOCH;
	c->s.tag = dmrepl_group_tag(group);
	c->s.stream = TEST_STREAM;
	c->scratch = tl_zalloc_aligned(DM_REPL_REC_PAYLOAD_MAX + 4096);
	c->rbuf = tl_zalloc_aligned((size_t)DATA_MB << 20);
	ASSERT_NE(NULL, c->scratch);
	ASSERT_NE(NULL, c->rbuf);
}

static void ctx_free(struct ctx *c)
{
	int i;

	for (i = 0; i < MAX_SEC; i++) {
		free(c->vols[i].img);
		c->vols[i].img = NULL;
	}
	batch_free(&c->b);
	free(c->scratch);
	free(c->rbuf);
	c->scratch = c->rbuf = NULL;
}

/* A group of nvols secondary volumes (indexes 0, 1, ...), opened. */
static void group_create(struct __test_metadata *_metadata, struct ctx *c, int nvols,
			 const char *opts)
{
	struct dm_repl_group_info gi;
	char name[TL_NAME_LEN];
	int i, r;

	for (i = 0; i < nvols; i++) {
		snprintf(name, sizeof(name), "%s-%d", c->group, i);
		r = sec_create(c, name, i, opts);
		ASSERT_EQ(0, r) {
			TH_LOG("secondary volume %s: %d (%s)", name, r, strerror(r < 0 ? -r : EIO));
		}
	}
	c->fd = open_group(c, c->group, O_RDWR);
	ASSERT_LE(0, c->fd) {
		TH_LOG("open " DM_REPL_DEV_DIR "/%s O_RDWR: %s", c->group, strerror(errno));
	}
	ASSERT_EQ(0, dmrepl_group_info(c->fd, &gi, NULL, 0));
	ASSERT_EQ((unsigned int)DM_REPL_ROLE_SECONDARY, gi.role);
	ASSERT_EQ((unsigned int)nvols, gi.nr_volumes);
}

/* ---- checks --------------------------------------------------------------- */

/* Every volume reads back its expected image. */
static void check_devs(struct __test_metadata *_metadata, struct ctx *c, const char *when)
{
	int i;

	for (i = 0; i < c->nvols; i++) {
		struct sec *v = &c->vols[i];
		int64_t diff;

		ASSERT_EQ(0, tl_pread_all(v->rfd, c->rbuf, v->size, 0));
		diff = tl_first_diff(c->rbuf, v->img, v->size);
		EXPECT_EQ(-1, diff) {
			TH_LOG("%s: %s differs from its expected image at byte %lld (sector %lld): reads %02x, want %02x",
			       when, v->name, (long long)diff, (long long)(diff / 512),
			       diff >= 0 ? c->rbuf[diff] : 0, diff >= 0 ? v->img[diff] : 0);
		}
	}
}

/* applied_seq in the superblock on the metadata disk, read under the target. */
static int64_t sb_applied_seq(const struct sec *v)
{
	int fd = open(v->meta, O_RDONLY | O_DIRECT | O_CLOEXEC);
	unsigned char *blk = tl_zalloc_aligned(DM_REPL_META_BLOCK_SIZE);
	int64_t seq = -1;
	uint64_t le;

	if (fd >= 0 && blk && !tl_pread_all(fd, blk, DM_REPL_META_BLOCK_SIZE, 0) &&
	    le32toh(((struct dm_repl_meta_sb *)blk)->magic) == DM_REPL_META_SB_MAGIC) {
		memcpy(&le, blk + offsetof(struct dm_repl_meta_sb, applied_seq), 8);
		seq = (int64_t)le64toh(le);
	}
	if (fd >= 0)
		close(fd);
	free(blk);
	return seq;
}

/* The secondary's dmsetup status line, parsed. */
struct sec_status {
	char role[16], group[DM_REPL_GROUP_NAME_MAX], state[16], gen[24];
	unsigned int index;
	unsigned long long applied_seq, applied_epoch, batches, records, skipped, rejected;
};

static int sec_status(const struct sec *v, struct sec_status *st)
{
	char out[512];

	memset(st, 0, sizeof(*st));
	if (tl_run_out(out, sizeof(out), "dmsetup status %s", v->name))
		return -EIO;
	if (sscanf(out, "%*u %*u repl %15s %31s %u %15s %llu %llu %llu %llu %llu %llu %23s",
		   st->role, st->group, &st->index, st->state, &st->applied_seq,
		   &st->applied_epoch, &st->batches, &st->records, &st->skipped,
		   &st->rejected, st->gen) != 11)
		return -EINVAL;
	return 0;
}

/*
 * Apply c->b: write(2) returns its size; applied_seq is its last sequence,
 * the counters moved by what it held (new records above applied_seq), the
 * superblock holds applied_seq, and the devices read their images.
 */
static void apply_ok(struct __test_metadata *_metadata, struct ctx *c, const char *what)
{
	struct dm_repl_apply_info before, after;
	struct batch *b = &c->b;
	uint64_t last;
	long n;
	int i;

	ASSERT_STREQ("", b->err);
	ASSERT_LT(0UL, b->nrec);
	last = dmrepl_rec_seq(rec_at(b, b->nrec - 1));
	ASSERT_EQ(0, apply_info(c->fd, &before));
	n = apply_buf(c->fd, b->buf, b->len);
	ASSERT_EQ((long)b->len, n) {
		struct dm_repl_apply_info ai;

		apply_info(c->fd, &ai);
		TH_LOG("%s: write of %zu bytes (%zu records, seq %llu..%llu): %s; last_reason %u last_error %d last_error_seq %llu",
		       what, b->len, b->nrec,
		       (unsigned long long)dmrepl_rec_seq(rec_at(b, 0)),
		       (unsigned long long)last, n < 0 ? strerror((int)-n) : "short",
		       ai.last_reason, ai.last_error,
		       (unsigned long long)ai.last_error_seq);
	}
	ASSERT_EQ(0, apply_info(c->fd, &after));
	EXPECT_EQ(last, after.applied_seq);
	EXPECT_EQ(dmrepl_rec_epoch(rec_at(b, b->nrec - 1)), after.applied_epoch);
	EXPECT_EQ(before.batches + 1, after.batches);
	EXPECT_EQ(before.records + (last - before.applied_seq), after.records);
	/* bytes: see payload_bytes_are_counted, one failure for one defect */
	EXPECT_LE(before.flushes + b->flush_min + __builtin_popcountll(b->written),
		  after.flushes);
	EXPECT_EQ(before.rejected, after.rejected);
	for (i = 0; i < c->nvols; i++)
		EXPECT_EQ((int64_t)last, sb_applied_seq(&c->vols[i])) {
			TH_LOG("%s: superblock of %s", what, c->vols[i].name);
		}
	check_devs(_metadata, c, what);
}

/*
 * write(2) of buf is refused with err; APPLY_INFO names reason and seq; the
 * refusal is counted and nothing moved: applied_seq, counters, the devices.
 */
static void refused(struct __test_metadata *_metadata, struct ctx *c, const void *buf,
		    size_t len, int err, unsigned int reason, uint64_t seq, const char *what)
{
	struct dm_repl_apply_info before, after;
	long n;

	ASSERT_EQ(0, apply_info(c->fd, &before));
	n = apply_buf(c->fd, buf, len);
	EXPECT_EQ(-err, n) {
		TH_LOG("%s: write of %zu bytes returned %ld (%s), want -%d (%s)", what, len,
		       n, n < 0 ? strerror((int)-n) : "accepted", err, strerror(err));
	}
	ASSERT_EQ(0, apply_info(c->fd, &after));
	EXPECT_EQ(reason, after.last_reason) {
		TH_LOG("%s: last_reason", what);
	}
	EXPECT_EQ(-err, after.last_error) {
		TH_LOG("%s: last_error", what);
	}
	EXPECT_EQ(seq, after.last_error_seq) {
		TH_LOG("%s: last_error_seq", what);
	}
	EXPECT_EQ(before.rejected + 1, after.rejected);
	EXPECT_EQ(before.applied_seq, after.applied_seq);
	EXPECT_EQ(before.applied_epoch, after.applied_epoch);
	EXPECT_EQ(before.batches, after.batches);
	EXPECT_EQ(before.records, after.records);
	EXPECT_EQ(before.bytes, after.bytes);
	EXPECT_EQ(before.skipped, after.skipped);
	EXPECT_EQ((int64_t)before.applied_seq, sb_applied_seq(&c->vols[0]));
	check_devs(_metadata, c, what);
}

/* ---- refusals ---------------------------------------------------------------- */

/*
 * A refused batch: make() builds it in c->b from the stream at applied_seq
 * + 1 (without touching the images: nothing may be applied) and returns the
 * sequence APPLY_INFO must name.
 */
FIXTURE(refuse) {
	struct ctx c;
};

FIXTURE_VARIANT(refuse) {
	uint64_t (*make)(struct ctx *c, struct batch *b, struct src *s);
	int err;
	unsigned int reason;
};

/* Three good writes; the harm goes into one of them. */
static uint64_t three_writes(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = s->seq;

	b_write(c, b, s, 0, 0, 4096, 1, NULL);
	b_write(c, b, s, 0, 8192, 65536, 2, NULL);
	b_write(c, b, s, 0, 1 << 20, 4096, 3, NULL);
	return first;
}

static uint64_t mk_truncated(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = three_writes(c, b, s);

	b->len -= 100;		/* the third ends inside its payload */
	return first + 2;
}

static uint64_t mk_bad_magic(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = three_writes(c, b, s);

	rec_at(b, 1)->magic = htole32(0x5245504d);
	b_reseal(b, 1);
	return first + 1;
}

static uint64_t mk_bad_version(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = three_writes(c, b, s);

	rec_at(b, 1)->version = htole16(DM_REPL_REC_VERSION + 1);
	b_reseal(b, 1);
	return first + 1;
}

static uint64_t mk_bad_crc_payload(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = three_writes(c, b, s);

	((unsigned char *)rec_at(b, 1))[DM_REPL_REC_HDR_SIZE + 4000] ^= 0x10;
	return first + 1;
}

static uint64_t mk_bad_crc_header(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = three_writes(c, b, s);

	/* Another place on the volume, not resealed. */
	rec_at(b, 2)->sector = htole64(dmrepl_rec_sector(rec_at(b, 2)) + 8);
	return first + 2;
}

static uint64_t mk_past_end(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = s->seq, size = (uint64_t)DATA_MB << 20;

	b_write(c, b, s, 0, 0, 4096, 1, NULL);
	b_write(c, b, s, 0, size - 4096, 8192, 2, NULL);	/* 4 KiB too far */
	return first + 1;
}

static uint64_t mk_past_end_discard(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = s->seq, size = (uint64_t)DATA_MB << 20;

	b_write(c, b, s, 0, 0, 4096, 1, NULL);
	b_zero(b, s, DM_REPL_REC_DISCARD, 0, size, 4096, NULL);	/* just after the end */
	return first + 1;
}

static uint64_t mk_sector_overflow(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = s->seq;
	long i;

	b_write(c, b, s, 0, 0, 4096, 1, NULL);
	i = b_write(c, b, s, 0, 0, 4096, 2, NULL);
	/* sector + nbytes wraps around 2^64 sectors to a small number */
	rec_at(b, (size_t)i)->sector = htole64(~0ULL - 3);
	b_reseal(b, (size_t)i);
	return first + 1;
}

static uint64_t mk_unknown_type(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = three_writes(c, b, s);

	rec_at(b, 1)->type = htole16(DM_REPL_REC_TYPE_MAX + 1);
	b_reseal(b, 1);
	return first + 1;
}

static uint64_t mk_type_zero(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = three_writes(c, b, s);

	rec_at(b, 2)->type = 0;
	b_reseal(b, 2);
	return first + 2;
}

static uint64_t mk_unknown_flag(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = three_writes(c, b, s);

	rec_at(b, 1)->flags = htole16(1U << 3);
	b_reseal(b, 1);
	return first + 1;
}

static uint64_t mk_nbytes_mismatch(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = three_writes(c, b, s);

	rec_at(b, 1)->nbytes = htole32(65536 - 512);
	b_reseal(b, 1);
	return first + 1;
}

static uint64_t mk_seq_gap(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = s->seq;

	b_write(c, b, s, 0, 0, 4096, 1, NULL);
	s->seq++;		/* first + 1 is missing */
	b_write(c, b, s, 0, 8192, 4096, 2, NULL);
	b_write(c, b, s, 0, 16384, 4096, 3, NULL);
	return first + 2;
}

static uint64_t mk_first_seq_gap(struct ctx *c, struct batch *b, struct src *s)
{
	s->seq++;		/* applied_seq + 1 is missing */
	three_writes(c, b, s);
	return s->seq - 3;
}

static uint64_t mk_seq_repeated(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = s->seq;

	b_write(c, b, s, 0, 0, 4096, 1, NULL);
	b_write(c, b, s, 0, 8192, 4096, 2, NULL);
	s->seq--;		/* first + 1 again */
	b_write(c, b, s, 0, 16384, 4096, 3, NULL);
	return first + 1;
}

static uint64_t mk_huge_len(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = three_writes(c, b, s);
	struct dm_repl_rec *r = rec_at(b, 1);

	/* A header that claims a 1 GiB payload, in a small batch. */
	r->len = htole32(1U << 30);
	r->payload_len = htole32((1U << 30) - DM_REPL_REC_HDR_SIZE);
	r->nbytes = r->payload_len;
	return first + 1;
}

static uint64_t mk_payload_over_max(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = s->seq;
	uint32_t plen = DM_REPL_REC_PAYLOAD_MAX + 4096;
	struct dm_repl_rec *r;
	long i;

	b_write(c, b, s, 0, 0, 4096, 1, NULL);
	/* A whole record one page over the largest payload, sealed. */
	i = b_write(c, b, s, 0, 0, 4096, 2, NULL);
	if (i < 0 || batch_room(b, plen))
		return 0;
	r = rec_at(b, (size_t)i);
	tl_fill((unsigned char *)r + DM_REPL_REC_HDR_SIZE, plen, 7);
	r->len = htole32(DM_REPL_REC_HDR_SIZE + plen);
	r->payload_len = htole32(plen);
	r->nbytes = htole32(plen);
	b->len = b->offs[i] + DM_REPL_REC_HDR_SIZE + plen;
	b_reseal(b, (size_t)i);
	return first + 1;
}

static uint64_t mk_batch_over_max(struct ctx *c, struct batch *b, struct src *s)
{
	/* Good 1 MiB writes up to one record past DM_REPL_APPLY_BATCH_MAX. */
	while (b->len <= DM_REPL_APPLY_BATCH_MAX && !b->err[0])
		b_write(c, b, s, 0, ((uint64_t)b->nrec % 8) << 20, 1U << 20, b->nrec, NULL);
	return 0;	/* refused by its size: no record was judged */
}

static uint64_t mk_no_volume(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = s->seq;

	b_write(c, b, s, 0, 0, 4096, 1, NULL);
	b_write(c, b, s, 5, 0, 4096, 2, NULL);
	return first + 1;
}

static uint64_t mk_other_group(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = s->seq;
	uint32_t tag = s->tag;

	b_write(c, b, s, 0, 0, 4096, 1, NULL);
	s->tag = dmrepl_group_tag("other");
	b_write(c, b, s, 0, 8192, 4096, 2, NULL);
	s->tag = tag;
	b_write(c, b, s, 0, 16384, 4096, 3, NULL);
	return first + 1;
}

static uint64_t mk_no_tag(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = s->seq;

	s->tag = 0;
	b_write(c, b, s, 0, 0, 4096, 1, NULL);
	return first;
}

static uint64_t mk_epoch_not_closed(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = s->seq;

	b_write(c, b, s, 0, 0, 4096, 1, NULL);
	b_flush(b, s);
	s->epoch--;		/* the record after a FLUSH stays in its epoch */
	b_write(c, b, s, 0, 8192, 4096, 2, NULL);
	return first + 2;
}

static uint64_t mk_epoch_without_flush(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = s->seq;

	b_write(c, b, s, 0, 0, 4096, 1, NULL);
	s->epoch++;		/* a new epoch with no FLUSH before it */
	b_write(c, b, s, 0, 8192, 4096, 2, NULL);
	return first + 1;
}

static uint64_t mk_epoch_skipped(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = s->seq;

	b_write(c, b, s, 0, 0, 4096, 1, NULL);
	b_flush(b, s);
	s->epoch++;		/* two epochs on after one FLUSH */
	b_write(c, b, s, 0, 8192, 4096, 2, NULL);
	return first + 2;
}

static uint64_t mk_epoch_back(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = s->seq;

	b_write(c, b, s, 0, 0, 4096, 1, NULL);
	b_flush(b, s);
	b_write(c, b, s, 0, 8192, 4096, 2, NULL);
	s->epoch -= 2;		/* back before the FLUSH */
	b_write(c, b, s, 0, 16384, 4096, 3, NULL);
	return first + 3;
}

/* 40 good records over several epochs, then a bad crc, then more. */
static uint64_t mk_bad_in_middle(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t bad;
	long i;

	b_random(c, b, s, 40, false);
	b_flush(b, s);
	i = b_write(c, b, s, 0, 4096 * 7, 65536, 99, NULL);
	bad = s->seq - 1;
	b_random(c, b, s, 10, false);
	if (i >= 0)
		((unsigned char *)rec_at(b, (size_t)i))[DM_REPL_REC_HDR_SIZE + 100] ^= 1;
	return bad;
}

/* A write of another stream, with no STREAM record to place it. */
static uint64_t mk_other_stream(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = s->seq;

	b_write(c, b, s, 0, 0, 4096, 1, NULL);
	s->stream = TEST_STREAM + 1;
	b_write(c, b, s, 0, 8192, 4096, 2, NULL);
	return first + 1;
}

/* A STREAM record that does not name the stream applied. */
static uint64_t mk_stream_not_named(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = s->seq;

	b_stream(b, s, TEST_STREAM + 2, TEST_STREAM + 1, DM_REPL_RECF_GAP);
	b_write(c, b, s, 0, 0, 4096, 1, NULL);
	return first;
}

/* A STREAM record without GAP must go on right after the applied one. */
static uint64_t mk_stream_jumps(struct ctx *c, struct batch *b, struct src *s)
{
	s->seq += 5;
	b_stream(b, s, TEST_STREAM + 2, TEST_STREAM, 0);
	return s->seq - 1;
}

/* Stream 0 is no stream. */
static uint64_t mk_stream_zero(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = three_writes(c, b, s);

	rec_at(b, 1)->stream = 0;
	b_reseal(b, 1);
	return first + 1;
}

static uint64_t mk_reserved_set(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = three_writes(c, b, s);

	rec_at(b, 2)->reserved = htole64(1ULL << 40);
	b_reseal(b, 2);
	return first + 2;
}

static uint64_t mk_gap_flag_on_write(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = three_writes(c, b, s);

	rec_at(b, 0)->flags = htole16(DM_REPL_RECF_GAP);
	b_reseal(b, 0);
	return first;
}

/* A STREAM or GAP record names no volume. */
static uint64_t mk_stream_on_a_volume(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = s->seq;

	b_stream(b, s, TEST_STREAM + 2, TEST_STREAM, 0);
	rec_at(b, 0)->volume = htole16(1);
	b_reseal(b, 0);
	return first;
}

static uint64_t mk_stream_short_link(struct ctx *c, struct batch *b, struct src *s)
{
	struct dmrepl_rec_fields f = {
		.type = DM_REPL_REC_STREAM, .payload = c->scratch, .payload_len = 24,
	};
	uint64_t first = s->seq;

	memset(c->scratch, 0, 24);
	s->stream = TEST_STREAM + 2;
	b_add(b, s, &f);
	return first;
}

/* The VOID form of a STREAM record: it would have no link to place it by. */
static uint64_t mk_void_stream(struct ctx *c, struct batch *b, struct src *s)
{
	struct dmrepl_rec_fields f = {
		.type = DM_REPL_REC_STREAM, .flags = DM_REPL_RECF_VOID,
	};
	uint64_t first = s->seq;

	(void)c;
	s->stream = TEST_STREAM + 2;
	b_add(b, s, &f);
	return first;
}

/* A VERIFY record of [off, +len) with a hash of plen bytes (32 is right). */
static long b_verify(struct ctx *c, struct batch *b, struct src *s, unsigned int flags,
		     uint64_t off, uint64_t len, uint32_t plen)
{
	struct dmrepl_rec_fields f = {
		.type = DM_REPL_REC_VERIFY, .flags = flags, .sector = off >> 9,
		.nbytes = (uint32_t)len, .payload = c->scratch, .payload_len = plen,
	};

	memset(c->scratch, 0x5a, plen);
	return b_add(b, s, &f);
}

static uint64_t mk_verify_short_hash(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = three_writes(c, b, s);

	b_verify(c, b, s, 0, 0, 65536, 24);
	return first + 3;
}

static uint64_t mk_verify_over_1g(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = s->seq;

	b_verify(c, b, s, 0, 0, DM_REPL_VERIFY_NBYTES_MAX + 512ULL, 32);
	return first;
}

static uint64_t mk_verify_past_end(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = s->seq, size = (uint64_t)DATA_MB << 20;

	b_verify(c, b, s, DM_REPL_RECF_RACED, size - 65536, 131072, 32);
	return first;
}

static uint64_t mk_raced_on_write(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = three_writes(c, b, s);

	rec_at(b, 1)->flags = htole16(DM_REPL_RECF_RACED);
	b_reseal(b, 1);
	return first + 1;
}

/* ZERO belongs to a RESYNC record with data. */
static uint64_t mk_zero_flag_on_write(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = three_writes(c, b, s);

	rec_at(b, 1)->flags = htole16(DM_REPL_RECF_ZERO);
	b_reseal(b, 1);
	return first + 1;
}

/* ... and has no payload. */
static uint64_t mk_zero_with_payload(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = s->seq;

	b_data(c, b, s, DM_REPL_REC_RESYNC, DM_REPL_RECF_ZERO, 0, 0, 4096, 1, NULL);
	return first;
}

/* ... and stands for a record whose payload it had. */
static uint64_t mk_zero_too_large(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = s->seq;

	(void)c;
	b_resync_zero(b, s, 0, 0, DM_REPL_REC_PAYLOAD_MAX + 4096, NULL);
	return first;
}

static uint64_t mk_zero_void(struct ctx *c, struct batch *b, struct src *s)
{
	uint64_t first = s->seq;

	(void)c;
	b_resync_zero(b, s, 0, 0, 4096, NULL);
	rec_at(b, 0)->flags = htole16(DM_REPL_RECF_ZERO | DM_REPL_RECF_VOID);
	b_reseal(b, 0);
	return first;
}

#define REFUSE(name, fn, e, why)					\
	FIXTURE_VARIANT_ADD(refuse, name) {				\
		.make = fn, .err = e, .reason = DM_REPL_APPLY_##why,	\
	}

REFUSE(truncated, mk_truncated, EINVAL, TRUNCATED);
REFUSE(bad_magic, mk_bad_magic, EINVAL, BAD_MAGIC);
REFUSE(bad_version, mk_bad_version, EINVAL, BAD_VERSION);
REFUSE(bad_crc_payload, mk_bad_crc_payload, EBADMSG, BAD_CRC);
REFUSE(bad_crc_header, mk_bad_crc_header, EBADMSG, BAD_CRC);
REFUSE(past_the_end, mk_past_end, ERANGE, OUT_OF_RANGE);
REFUSE(discard_past_the_end, mk_past_end_discard, ERANGE, OUT_OF_RANGE);
REFUSE(sector_wraps_around, mk_sector_overflow, ERANGE, OUT_OF_RANGE);
REFUSE(unknown_type, mk_unknown_type, EINVAL, BAD_TYPE);
REFUSE(type_zero, mk_type_zero, EINVAL, BAD_TYPE);
REFUSE(unknown_flag, mk_unknown_flag, EINVAL, BAD_FLAGS);
REFUSE(nbytes_not_payload_len, mk_nbytes_mismatch, EINVAL, BAD_LENGTH);
REFUSE(sequence_gap, mk_seq_gap, EILSEQ, SEQ_GAP);
REFUSE(first_sequence_not_next, mk_first_seq_gap, EILSEQ, SEQ_GAP);
REFUSE(sequence_repeated, mk_seq_repeated, EILSEQ, SEQ_GAP);
REFUSE(huge_record_length, mk_huge_len, EMSGSIZE, TOO_LARGE);
REFUSE(payload_over_max, mk_payload_over_max, EMSGSIZE, TOO_LARGE);
REFUSE(batch_over_max, mk_batch_over_max, EMSGSIZE, TOO_LARGE);
REFUSE(no_such_volume, mk_no_volume, ENXIO, NO_VOLUME);
REFUSE(another_group, mk_other_group, EXDEV, OTHER_GROUP);
REFUSE(no_group_tag, mk_no_tag, EXDEV, OTHER_GROUP);
REFUSE(epoch_not_closed_by_flush, mk_epoch_not_closed, EINVAL, BAD_EPOCH);
REFUSE(epoch_without_flush, mk_epoch_without_flush, EINVAL, BAD_EPOCH);
REFUSE(epoch_skipped, mk_epoch_skipped, EINVAL, BAD_EPOCH);
REFUSE(epoch_back, mk_epoch_back, EINVAL, BAD_EPOCH);
REFUSE(bad_record_in_a_good_batch, mk_bad_in_middle, EBADMSG, BAD_CRC);
REFUSE(record_of_another_stream, mk_other_stream, EILSEQ, UNKNOWN_STREAM);
REFUSE(stream_not_naming_the_applied_one, mk_stream_not_named, EILSEQ, UNKNOWN_STREAM);
REFUSE(stream_without_gap_that_jumps, mk_stream_jumps, EILSEQ, SEQ_GAP);
REFUSE(stream_zero, mk_stream_zero, EILSEQ, UNKNOWN_STREAM);
REFUSE(reserved_header_bytes, mk_reserved_set, EINVAL, BAD_FLAGS);
REFUSE(gap_flag_on_a_write, mk_gap_flag_on_write, EINVAL, BAD_FLAGS);
REFUSE(stream_record_on_a_volume, mk_stream_on_a_volume, ENXIO, NO_VOLUME);
REFUSE(stream_record_with_a_short_link, mk_stream_short_link, EINVAL, BAD_LENGTH);
REFUSE(void_stream_record, mk_void_stream, EINVAL, BAD_FLAGS);
REFUSE(verify_with_a_short_hash, mk_verify_short_hash, EINVAL, BAD_LENGTH);
REFUSE(verify_over_1_gib, mk_verify_over_1g, EINVAL, BAD_LENGTH);
REFUSE(verify_past_the_end, mk_verify_past_end, ERANGE, OUT_OF_RANGE);
REFUSE(raced_flag_on_a_write, mk_raced_on_write, EINVAL, BAD_FLAGS);
REFUSE(zero_flag_on_a_write, mk_zero_flag_on_write, EINVAL, BAD_FLAGS);
REFUSE(zero_resync_with_a_payload, mk_zero_with_payload, EINVAL, BAD_LENGTH);
REFUSE(void_zero_resync, mk_zero_void, EINVAL, BAD_FLAGS);
REFUSE(zero_resync_over_the_largest_payload, mk_zero_too_large, EINVAL, BAD_LENGTH);

FIXTURE_SETUP(refuse)
{
}

FIXTURE_TEARDOWN(refuse)
{
	ctx_free(&self->c);
	TL_TEARDOWN(&self->c.env);
}

/*
 * Each malformed batch is refused whole with its errno, reason and
 * sequence; nothing of it reaches the disk; the group then takes the good
 * batch that continues from where it was.
 */
TEST_F_TIMEOUT(refuse, batch, 120)
{
	struct ctx *c = &self->c;
	struct sec_status st;
	struct src saved;
	uint64_t seq;

	/*
	 * Not in FIXTURE_SETUP: the harness skips the teardown of a setup
	 * that failed, and the group would outlive the test.
	 */
	ctx_init(_metadata, c, "rf");
	group_create(_metadata, c, 1, "");
	/* Something applied first: the refusals start above applied_seq 20. */
	batch_reset(&c->b);
	b_random(c, &c->b, &c->s, 19, true);
	b_flush(&c->b, &c->s);
	apply_ok(_metadata, c, "the first batch");

	saved = c->s;
	batch_reset(&c->b);
	seq = variant->make(c, &c->b, &c->s);
	ASSERT_STREQ("", c->b.err);
	c->s = saved;
	refused(_metadata, c, c->b.buf, c->b.len, variant->err, variant->reason, seq,
		"the refused batch");
	ASSERT_EQ(0, sec_status(&c->vols[0], &st));
	EXPECT_EQ(1ULL, st.rejected);
	EXPECT_EQ(20ULL, st.applied_seq);

	batch_reset(&c->b);
	b_random(c, &c->b, &c->s, 30, true);
	apply_ok(_metadata, c, "the good batch after the refusal");
}

/* ---- applying ------------------------------------------------------------------ */

FIXTURE(apply) {
	struct ctx c;
};

FIXTURE_SETUP(apply)
{
	memset(&self->c, 0, sizeof(self->c));
}

FIXTURE_TEARDOWN(apply)
{
	ctx_free(&self->c);
	TL_TEARDOWN(&self->c.env);
}

/*
 * Random batches of writes, discards, zeroings, FLUSHes, markers and VOID
 * records apply exactly; applied_seq, applied_epoch and the counters follow;
 * dmsetup status agrees.
 */
TEST_F_TIMEOUT(apply, good_batches_apply_exactly, 300)
{
	struct ctx *c = &self->c;
	struct dm_repl_apply_info ai;
	struct sec_status st;
	uint64_t records = 0, bytes = 0;
	unsigned int i;
	char what[64];

	ctx_init(_metadata, c, "ap1");
	group_create(_metadata, c, 1, "");
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ(0ULL, ai.applied_seq);
	EXPECT_EQ(0ULL, ai.batches);
	EXPECT_EQ(0U, ai.flags);
	check_devs(_metadata, c, "before any batch");
	ASSERT_EQ(0, sec_status(&c->vols[0], &st));
	EXPECT_STREQ("secondary", st.role);
	EXPECT_STREQ("ap1", st.group);
	EXPECT_EQ(0U, st.index);
	EXPECT_STREQ("consistent", st.state);
	EXPECT_EQ(0ULL, st.applied_seq);

	for (i = 0; i < 8; i++) {
		batch_reset(&c->b);
		b_random(c, &c->b, &c->s, 20 + 15 * i, true);
		records += c->b.nrec;
		bytes += c->b.payload;
		snprintf(what, sizeof(what), "batch %u", i);
		apply_ok(_metadata, c, what);
	}
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ(records, ai.applied_seq);
	EXPECT_EQ(records, ai.records);
	EXPECT_EQ(8ULL, ai.batches);
	EXPECT_EQ(0ULL, ai.skipped);
	EXPECT_EQ(0ULL, ai.rejected);
	ASSERT_EQ(0, sec_status(&c->vols[0], &st));
	EXPECT_EQ(ai.applied_seq, st.applied_seq);
	EXPECT_EQ(ai.applied_epoch, st.applied_epoch);
	EXPECT_EQ(ai.batches, st.batches);
	EXPECT_EQ(ai.records, st.records);
	EXPECT_EQ(0ULL, st.skipped);
	EXPECT_EQ(0ULL, st.rejected);
	TH_LOG("%llu records, %llu payload bytes, epochs %d..%llu, %llu flushes",
	       (unsigned long long)records, (unsigned long long)bytes, FIRST_EPOCH,
	       (unsigned long long)ai.applied_epoch, (unsigned long long)ai.flushes);
}

/*
 * APPLY_INFO bytes: "payload bytes written" (uapi), i.e. the payloads of
 * WRITE and RESYNC records, not the ranges of DISCARD and WRITE_ZEROES.
 */
TEST_F_TIMEOUT(apply, payload_bytes_are_counted, 120)
{
	struct ctx *c = &self->c;
	struct dm_repl_apply_info ai;
	unsigned char *img;

	ctx_init(_metadata, c, "ap15");
	group_create(_metadata, c, 1, "");
	img = c->vols[0].img;
	batch_reset(&c->b);
	b_write(c, &c->b, &c->s, 0, 0, 8192, 1, img);
	b_zero(&c->b, &c->s, DM_REPL_REC_DISCARD, 0, 1 << 20, 1 << 20, img);
	b_zero(&c->b, &c->s, DM_REPL_REC_WRITE_ZEROES, 0, 4 << 20, 1 << 20, img);
	b_void(&c->b, &c->s, DM_REPL_REC_WRITE, 0, 8 << 20, 65536);
	b_flush(&c->b, &c->s);
	b_data(c, &c->b, &c->s, DM_REPL_REC_RESYNC, DM_REPL_RECF_RESYNC_END, 0, 65536,
	       4096, 2, img);
	apply_ok(_metadata, c, "writes, discards, zeroings, VOID, RESYNC");
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ(8192ULL + 4096, ai.bytes);
}

/* Every kind of record, one at a time at known places, each one a batch. */
TEST_F_TIMEOUT(apply, each_record_type_lands_where_it_says, 120)
{
	struct ctx *c = &self->c;
	unsigned char *img;

	ctx_init(_metadata, c, "ap2");
	group_create(_metadata, c, 1, "");
	img = c->vols[0].img;

	batch_reset(&c->b);
	b_write(c, &c->b, &c->s, 0, 512, 512, 11, img);		/* one sector */
	apply_ok(_metadata, c, "a 512-byte write");
	batch_reset(&c->b);
	b_write(c, &c->b, &c->s, 0, (DATA_MB << 20) - DM_REPL_REC_PAYLOAD_MAX,
		DM_REPL_REC_PAYLOAD_MAX, 12, img);			/* the largest, at the end */
	apply_ok(_metadata, c, "a 1 MiB write at the end");
	batch_reset(&c->b);
	b_zero(&c->b, &c->s, DM_REPL_REC_DISCARD, 0, 1 << 20, 256 << 10, img);
	apply_ok(_metadata, c, "a discard");
	batch_reset(&c->b);
	b_zero(&c->b, &c->s, DM_REPL_REC_WRITE_ZEROES, 0, 3 << 20, 128 << 10, img);
	apply_ok(_metadata, c, "a write-zeroes");
	batch_reset(&c->b);
	b_flush(&c->b, &c->s);
	apply_ok(_metadata, c, "a FLUSH alone");
	batch_reset(&c->b);
	b_write(c, &c->b, &c->s, 0, 5 << 20, 8192, 13, img);
	b_marker(&c->b, &c->s, "after-flush");
	apply_ok(_metadata, c, "a write and a marker in the next epoch");
	batch_reset(&c->b);
	b_data(c, &c->b, &c->s, DM_REPL_REC_WRITE, DM_REPL_RECF_FUA, 0, 6 << 20, 4096, 14, img);
	apply_ok(_metadata, c, "a FUA write");
}

/*
 * Writes to one place in one batch, in several epochs: the last one in
 * sequence order wins, also within one epoch (overlapping writes in
 * sequence order).
 */
TEST_F_TIMEOUT(apply, overlapping_writes_apply_in_sequence_order, 120)
{
	struct ctx *c = &self->c;
	unsigned char *img;
	unsigned int i;

	ctx_init(_metadata, c, "ap3");
	group_create(_metadata, c, 1, "");
	img = c->vols[0].img;
	batch_reset(&c->b);
	for (i = 0; i < 60; i++) {
		uint64_t off = tl_rand_range(&c->rng, 0, 63) * 512;
		uint32_t len = (uint32_t)tl_rand_range(&c->rng, 1, 64) * 512;

		b_write(c, &c->b, &c->s, 0, off, len, c->seed + i, img);
		if (i % 20 == 19)
			b_flush(&c->b, &c->s);
	}
	b_zero(&c->b, &c->s, DM_REPL_REC_WRITE_ZEROES, 0, 8192, 8192, img);
	b_write(c, &c->b, &c->s, 0, 12288, 1024, 5, img);
	apply_ok(_metadata, c, "overlapping writes");
}

/* applied_seq is read back from the superblock when the table is loaded again. */
TEST_F_TIMEOUT(apply, applied_seq_survives_a_reload, 180)
{
	struct ctx *c = &self->c;
	struct dm_repl_apply_info ai;
	struct sec_status st;
	char out[64], state[16];
	uint64_t applied;
	uint32_t flags;

	ctx_init(_metadata, c, "ap4");
	group_create(_metadata, c, 1, "");
	batch_reset(&c->b);
	b_random(c, &c->b, &c->s, 60, true);
	apply_ok(_metadata, c, "before the reload");
	applied = c->s.seq - 1;
	/* Random batches have VOID records (outdated) or not: kept as it was. */
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	flags = ai.flags;
	ASSERT_EQ(0, sec_status(&c->vols[0], &st));
	snprintf(state, sizeof(state), "%s", st.state);

	/* Removed: the superblock says it, and repltool reads it there. */
	tl_env_close_fd(&c->env, c->fd);
	c->fd = -1;
	tl_env_close_fd(&c->env, c->vols[0].rfd);
	c->vols[0].rfd = -1;
	ASSERT_EQ(0, tl_dm_remove(&c->env, c->vols[0].name));
	EXPECT_EQ((int64_t)applied, sb_applied_seq(&c->vols[0]));
	ASSERT_EQ(0, tl_run_out(out, sizeof(out),
				"%s meta show %s | awk '$1 == \"applied_seq\" { print $2 }'",
				TL_REPLTOOL, c->vols[0].meta));
	EXPECT_EQ(applied, strtoull(out, NULL, 10));
	ASSERT_EQ(0, sec_load(c, &c->vols[0]));
	c->fd = open_group(c, c->group, O_RDWR);
	ASSERT_LE(0, c->fd);

	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ(applied, ai.applied_seq);
	EXPECT_EQ(flags, ai.flags);
	EXPECT_EQ(TEST_STREAM, ai.applied_stream);
	ASSERT_EQ(0, sec_status(&c->vols[0], &st));
	EXPECT_EQ(applied, st.applied_seq);
	EXPECT_STREQ(state, st.state);
	check_devs(_metadata, c, "after the reload");

	/* Only applied_seq + 1 continues the stream. */
	batch_reset(&c->b);
	c->s.seq++;
	b_write(c, &c->b, &c->s, 0, 0, 4096, 1, NULL);
	c->s.seq -= 2;
	refused(_metadata, c, c->b.buf, c->b.len, EILSEQ, DM_REPL_APPLY_SEQ_GAP,
		applied + 2, "a gap after the reload");
	batch_reset(&c->b);
	b_random(c, &c->b, &c->s, 40, true);
	apply_ok(_metadata, c, "the next batch after the reload");

	/* And again, with the whole history in place. */
	ASSERT_EQ(0, group_reload(c));
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ(c->s.seq - 1, ai.applied_seq);
	check_devs(_metadata, c, "after the second reload");
}

/* A batch sent again is accepted and skipped: the replica does not go back. */
TEST_F_TIMEOUT(apply, a_replayed_batch_is_skipped, 120)
{
	struct ctx *c = &self->c;
	struct dm_repl_apply_info before, after;
	struct batch old = { 0 };
	long n;

	ctx_init(_metadata, c, "ap5");
	group_create(_metadata, c, 1, "");
	batch_reset(&c->b);
	b_write(c, &c->b, &c->s, 0, 0, 65536, 1, c->vols[0].img);
	b_random(c, &c->b, &c->s, 30, true);
	apply_ok(_metadata, c, "batch A");
	/* Keep A; B overwrites what A wrote. */
	ASSERT_EQ(0, batch_room(&old, c->b.len));
	memcpy(old.buf, c->b.buf, c->b.len);
	old.len = c->b.len;
	old.nrec = c->b.nrec;
	batch_reset(&c->b);
	b_write(c, &c->b, &c->s, 0, 0, 65536, 2, c->vols[0].img);
	b_random(c, &c->b, &c->s, 30, true);
	apply_ok(_metadata, c, "batch B");

	ASSERT_EQ(0, apply_info(c->fd, &before));
	n = apply_buf(c->fd, old.buf, old.len);
	EXPECT_EQ((long)old.len, n) {
		TH_LOG("replay of A: %s", n < 0 ? strerror((int)-n) : "short");
	}
	ASSERT_EQ(0, apply_info(c->fd, &after));
	EXPECT_EQ(before.applied_seq, after.applied_seq);
	EXPECT_EQ(before.applied_epoch, after.applied_epoch);
	EXPECT_EQ(before.skipped + old.nrec, after.skipped);
	EXPECT_EQ(before.records, after.records);
	EXPECT_EQ(before.bytes, after.bytes);
	EXPECT_EQ(before.rejected, after.rejected);
	check_devs(_metadata, c, "after the replay of A");
	batch_free(&old);
}

/*
 * A batch that starts below applied_seq: the records up to it are skipped
 * (here they carry other data than what was applied: it must not appear),
 * the rest applied.
 */
TEST_F_TIMEOUT(apply, an_overlapping_batch_applies_only_the_new_part, 120)
{
	struct ctx *c = &self->c;
	struct dm_repl_apply_info before, after;
	struct batch *b = &c->b;
	struct src s;
	uint64_t applied;
	size_t i;

	ctx_init(_metadata, c, "ap6");
	group_create(_metadata, c, 1, "");
	batch_reset(b);
	for (i = 0; i < 12; i++) {
		b_write(c, b, &c->s, 0, i * 65536, 65536, 100 + i, c->vols[0].img);
		if (i == 5)
			b_flush(b, &c->s);
	}
	apply_ok(_metadata, c, "the first batch");
	applied = c->s.seq - 1;

	/* Its last 5 records again, with other payloads, then 10 new ones. */
	s = c->s;
	s.seq = applied - 4;
	s.epoch = dmrepl_rec_epoch(rec_at(b, b->nrec - 5));
	{
		struct batch nb = { 0 };

		for (i = b->nrec - 5; i < b->nrec; i++) {
			const struct dm_repl_rec *r = rec_at(b, i);

			b_write(c, &nb, &s, 0, dmrepl_rec_sector(r) << 9,
				dmrepl_rec_nbytes(r), 999 + i, NULL);
		}
		ASSERT_EQ(c->s.seq, s.seq);
		ASSERT_EQ(c->s.epoch, s.epoch);
		for (i = 0; i < 10; i++)
			b_write(c, &nb, &c->s, 0, (2 << 20) + i * 4096, 4096, 200 + i,
				c->vols[0].img);
		batch_free(b);
		*b = nb;
	}
	ASSERT_EQ(0, apply_info(c->fd, &before));
	apply_ok(_metadata, c, "the overlapping batch");
	ASSERT_EQ(0, apply_info(c->fd, &after));
	EXPECT_EQ(before.skipped + 5, after.skipped);
	EXPECT_EQ(before.records + 10, after.records);
	EXPECT_EQ(applied + 10, after.applied_seq);
}

/* VOID records consume their sequence and change nothing. */
TEST_F_TIMEOUT(apply, void_records_consume_sequences, 120)
{
	struct ctx *c = &self->c;
	struct dm_repl_apply_info ai;

	ctx_init(_metadata, c, "ap7");
	group_create(_metadata, c, 1, "");
	batch_reset(&c->b);
	b_void(&c->b, &c->s, DM_REPL_REC_WRITE, 0, 0, 65536);
	b_write(c, &c->b, &c->s, 0, 65536, 4096, 1, c->vols[0].img);
	b_void(&c->b, &c->s, DM_REPL_REC_DISCARD, 0, 1 << 20, 1 << 20);
	b_void(&c->b, &c->s, DM_REPL_REC_WRITE_ZEROES, 0, 2 << 20, 1 << 20);
	b_flush(&c->b, &c->s);
	b_void(&c->b, &c->s, DM_REPL_REC_WRITE, 0, 3 << 20, 4096);
	apply_ok(_metadata, c, "VOID records");
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ(6ULL, ai.applied_seq);
	EXPECT_EQ(4096ULL, ai.bytes);
	/* A batch of VOID records alone. */
	batch_reset(&c->b);
	b_void(&c->b, &c->s, DM_REPL_REC_WRITE, 0, 0, 512);
	b_void(&c->b, &c->s, DM_REPL_REC_WRITE, 0, 4096, 512);
	apply_ok(_metadata, c, "VOID records alone");
}

/*
 * Streams: a STREAM record that names the applied stream and goes on right
 * after it continues it (a clean reload); the replica stays consistent.
 */
TEST_F_TIMEOUT(apply, a_stream_that_follows_the_applied_one_continues_it, 120)
{
	struct ctx *c = &self->c;
	struct dm_repl_apply_info ai;

	ctx_init(_metadata, c, "st1");
	group_create(_metadata, c, 1, "");
	batch_reset(&c->b);
	b_write(c, &c->b, &c->s, 0, 0, 4096, 1, c->vols[0].img);
	b_flush(&c->b, &c->s);
	apply_ok(_metadata, c, "the first stream");
	batch_reset(&c->b);
	b_stream(&c->b, &c->s, TEST_STREAM + 7, TEST_STREAM, 0);
	b_write(c, &c->b, &c->s, 0, 8192, 4096, 2, c->vols[0].img);
	apply_ok(_metadata, c, "the next stream");
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ(TEST_STREAM + 7, ai.applied_stream);
	EXPECT_EQ(0U, ai.flags);
	/* And a batch of the old stream, sent again, is refused: not skipped. */
	c->s.stream = TEST_STREAM;
	c->s.seq = 2;
	batch_reset(&c->b);
	b_write(c, &c->b, &c->s, 0, 0, 4096, 9, NULL);
	refused(_metadata, c, c->b.buf, c->b.len, EILSEQ, DM_REPL_APPLY_UNKNOWN_STREAM, 2,
		"a record of the stream before");
}

/*
 * A gap: a STREAM record with GAP, a GAP record, a VOID record. From it on
 * the replica is outdated, says its last consistent sequence, keeps it
 * across a reload, and a resync that ends makes it consistent again.
 */
FIXTURE(gap) {
	struct ctx c;
};

FIXTURE_VARIANT(gap) {
	int kind;	/* 0 STREAM with GAP, 1 GAP record, 2 VOID record */
};

FIXTURE_VARIANT_ADD(gap, stream_with_gap) { .kind = 0 };
FIXTURE_VARIANT_ADD(gap, gap_record) { .kind = 1 };
FIXTURE_VARIANT_ADD(gap, void_record) { .kind = 2 };

FIXTURE_SETUP(gap)
{
}

FIXTURE_TEARDOWN(gap)
{
	ctx_free(&self->c);
	TL_TEARDOWN(&self->c.env);
}

static void b_gap(struct ctx *c, struct batch *b, struct src *s, int kind)
{
	struct dmrepl_rec_fields gap = { .type = DM_REPL_REC_GAP };

	if (kind == 0)
		b_stream(b, s, TEST_STREAM + 9, TEST_STREAM, DM_REPL_RECF_GAP);
	else if (kind == 1)
		b_add(b, s, &gap);
	else
		b_void(b, s, DM_REPL_REC_WRITE, 0, 0, 4096);
	(void)c;
}

TEST_F_TIMEOUT(gap, makes_the_replica_outdated_until_a_resync, 180)
{
	struct ctx *c = &self->c;
	struct dm_repl_apply_info ai;
	struct sec_status st;

	ctx_init(_metadata, c, "gp");
	group_create(_metadata, c, 1, "");
	batch_reset(&c->b);
	b_write(c, &c->b, &c->s, 0, 0, 4096, 1, c->vols[0].img);
	b_flush(&c->b, &c->s);
	apply_ok(_metadata, c, "before the gap");

	batch_reset(&c->b);
	b_write(c, &c->b, &c->s, 0, 8192, 4096, 2, c->vols[0].img);
	b_gap(c, &c->b, &c->s, variant->kind);
	b_write(c, &c->b, &c->s, 0, 16384, 4096, 3, c->vols[0].img);
	apply_ok(_metadata, c, "the gap, and writes after it");
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ((uint32_t)DM_REPL_APPLYF_OUTDATED, ai.flags);
	EXPECT_EQ(3ULL, ai.consistent_seq);
	EXPECT_EQ(1700000000ULL * 1000000000ULL + 3, ai.consistent_time_ns);
	EXPECT_EQ(5ULL, ai.applied_seq);
	ASSERT_EQ(0, sec_status(&c->vols[0], &st));
	EXPECT_STREQ("outdated", st.state);

	/* On disk: a reload keeps it. */
	ASSERT_EQ(0, group_reload(c));
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ((uint32_t)DM_REPL_APPLYF_OUTDATED, ai.flags);
	EXPECT_EQ(3ULL, ai.consistent_seq);
	ASSERT_EQ(0, tl_run("dmsetup suspend %s", c->vols[0].name));
	EXPECT_NE(0, tl_run("dmsetup message %s 0 role primary 2>/dev/null",
			    c->vols[0].name));
	ASSERT_EQ(0, tl_run("dmsetup resume %s", c->vols[0].name));

	/* A resync makes it whole. */
	batch_reset(&c->b);
	b_data(c, &c->b, &c->s, DM_REPL_REC_RESYNC, 0, 0, 0, 65536, 4, c->vols[0].img);
	b_data(c, &c->b, &c->s, DM_REPL_REC_RESYNC, DM_REPL_RECF_RESYNC_END, 0, 65536,
	       65536, 5, c->vols[0].img);
	apply_ok(_metadata, c, "a resync");
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ(0U, ai.flags);
	EXPECT_EQ(0ULL, ai.consistent_seq);
}

/*
 * After a gap a new stream may number its records below what the replica
 * applied of the old one (a forced promotion of a peer that was behind):
 * they are applied, never skipped as "already applied".
 */
TEST_F_TIMEOUT(apply, a_new_stream_below_applied_seq_is_applied_not_skipped, 120)
{
	struct ctx *c = &self->c;
	struct dm_repl_apply_info ai;
	long n;

	ctx_init(_metadata, c, "st2");
	group_create(_metadata, c, 1, "");
	batch_reset(&c->b);
	b_random(c, &c->b, &c->s, 40, true);
	apply_ok(_metadata, c, "the first stream");
	c->s.seq = 10;
	batch_reset(&c->b);
	b_stream(&c->b, &c->s, TEST_STREAM + 3, TEST_STREAM, DM_REPL_RECF_GAP);
	b_write(c, &c->b, &c->s, 0, 0, 65536, 11, c->vols[0].img);
	n = apply_buf(c->fd, c->b.buf, c->b.len);
	ASSERT_EQ((long)c->b.len, n);
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ(11ULL, ai.applied_seq);
	EXPECT_EQ(TEST_STREAM + 3, ai.applied_stream);
	EXPECT_EQ(0ULL, ai.skipped);
	EXPECT_EQ((uint32_t)DM_REPL_APPLYF_OUTDATED, ai.flags & DM_REPL_APPLYF_OUTDATED);
	check_devs(_metadata, c, "the new stream's write");
}

/* Applied markers are listed with seq, epoch and label, the newest 8, newest last. */
TEST_F_TIMEOUT(apply, markers_are_listed_once_applied, 120)
{
	struct ctx *c = &self->c;
	struct dm_repl_apply_info ai;
	uint64_t seq[12], epoch[12];
	char label[12][DM_REPL_MARKER_LABEL_MAX + 1];
	unsigned int i, j;

	ctx_init(_metadata, c, "ap8");
	group_create(_metadata, c, 1, "");
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ(0U, ai.nr_markers);

	batch_reset(&c->b);
	b_write(c, &c->b, &c->s, 0, 0, 4096, 1, c->vols[0].img);
	seq[0] = c->s.seq;
	epoch[0] = c->s.epoch;
	snprintf(label[0], sizeof(label[0]), "first");
	b_marker(&c->b, &c->s, label[0]);
	apply_ok(_metadata, c, "one marker");
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	ASSERT_EQ(1U, ai.nr_markers);
	EXPECT_EQ(seq[0], ai.markers[0].seq);
	EXPECT_EQ(epoch[0], ai.markers[0].epoch);
	EXPECT_STREQ(label[0], ai.markers[0].label);

	/* 11 more over three batches and several epochs; the longest label too. */
	for (i = 1; i < 12; i++) {
		if (i == 1 || i == 5 || i == 9) {
			if (i > 1)
				apply_ok(_metadata, c, "markers");
			batch_reset(&c->b);
		}
		if (i % 3 == 0)
			b_flush(&c->b, &c->s);
		b_write(c, &c->b, &c->s, 0, i * 8192, 4096, i, c->vols[0].img);
		if (i == 11)
			snprintf(label[i], sizeof(label[i]), "%s",
				 "L123456789abcdefghijklmnopqrstuvwxyz_.:+-@ABCDEFGHIJKLMNOPQRSTUV");
		else
			snprintf(label[i], sizeof(label[i]), "nightly-%u", i);
		seq[i] = c->s.seq;
		epoch[i] = c->s.epoch;
		b_marker(&c->b, &c->s, label[i]);
	}
	apply_ok(_metadata, c, "the last markers");
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	ASSERT_EQ((unsigned int)DM_REPL_APPLY_MARKERS, ai.nr_markers);
	for (j = 0; j < DM_REPL_APPLY_MARKERS; j++) {
		i = 12 - DM_REPL_APPLY_MARKERS + j;
		EXPECT_EQ(seq[i], ai.markers[j].seq);
		EXPECT_EQ(epoch[i], ai.markers[j].epoch);
		EXPECT_STREQ(label[i], ai.markers[j].label);
	}
}

/*
 * A wrap_data volume's data device: the loop disk, and with @fail its last
 * 4 KiB an error target (writes there fail).
 */
static int data_fail_tail(const struct sec *v, bool fail)
{
	size_t sectors = v->size >> 9;

	if (!fail)
		return tl_run("dmsetup load %s-d --table '0 %zu linear %s 0' && dmsetup resume %s-d",
			      v->name, sectors, v->under, v->name);
	return tl_run("printf '0 %zu linear %s 0\\n%zu 8 error\\n' | dmsetup load %s-d && "
		      "dmsetup resume %s-d", sectors - 8, v->under, sectors - 8, v->name, v->name);
}

/*
 * VERIFY records count when their batch is applied: a batch refused after
 * its VERIFY record was compared (a write after it failed) counts nothing,
 * the same batch sent again counts the record once, and once more (all
 * skipped) nothing.
 */
TEST_F_TIMEOUT(apply, a_verify_counts_once_when_its_batch_is_sent_again, 120)
{
	struct ctx *c = &self->c;
	struct dm_repl_verify_info vi;
	struct dm_repl_apply_info ai;
	struct sec *v;
	uint64_t vseq;
	long n;

	ctx_init(_metadata, c, "apv");
	c->wrap_data = true;
	group_create(_metadata, c, 1, "");
	v = &c->vols[0];

	batch_reset(&c->b);
	vseq = c->s.seq;
	/* Its hash is 0x5a bytes: the region differs. */
	b_verify(c, &c->b, &c->s, 0, 0, 65536, DM_REPL_VERIFY_HASH_SIZE);
	b_write(c, &c->b, &c->s, 0, v->size - 4096, 4096, 7, v->img);
	ASSERT_STREQ("", c->b.err);

	ASSERT_EQ(0, data_fail_tail(v, true));
	n = apply_buf(c->fd, c->b.buf, c->b.len);
	EXPECT_EQ(-EIO, n);
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ(vseq - 1, ai.applied_seq);
	ASSERT_EQ(0, verify_info(c->fd, &vi));
	EXPECT_EQ(0ULL, vi.compared);
	EXPECT_EQ(0ULL, vi.mismatches);
	EXPECT_EQ(0ULL, vi.raced);
	EXPECT_EQ(0U, vi.nr);

	ASSERT_EQ(0, data_fail_tail(v, false));
	apply_ok(_metadata, c, "the batch sent again");
	ASSERT_EQ(0, verify_info(c->fd, &vi));
	EXPECT_EQ(1ULL, vi.compared);
	EXPECT_EQ(65536ULL, vi.bytes);
	EXPECT_EQ(1ULL, vi.mismatches);
	EXPECT_EQ(0ULL, vi.raced);
	EXPECT_EQ(vseq, vi.last_seq);
	ASSERT_EQ(1U, vi.nr);
	EXPECT_EQ(vseq, vi.list[0].seq);
	EXPECT_EQ(0ULL, vi.list[0].sector);
	EXPECT_EQ(65536U, vi.list[0].nbytes);

	n = apply_buf(c->fd, c->b.buf, c->b.len);
	EXPECT_EQ((long)c->b.len, n);
	ASSERT_EQ(0, verify_info(c->fd, &vi));
	EXPECT_EQ(1ULL, vi.compared);
	EXPECT_EQ(1ULL, vi.mismatches);
	EXPECT_EQ(1U, vi.nr);
}

/* A wrap_data volume's data device: the loop disk, reads taking @ms. */
static int data_slow_reads(const struct sec *v, unsigned int ms)
{
	return tl_run("dmsetup load %s-d --table '0 %zu delay %s 0 %u %s 0 0' && dmsetup resume %s-d",
		      v->name, v->size >> 9, v->under, ms, v->under, v->name);
}

struct apply_job {
	int fd;
	const void *buf;
	size_t len;
	long n;
};

static void *apply_job_run(void *arg)
{
	struct apply_job *j = arg;

	j->n = apply_buf(j->fd, j->buf, j->len);
	return NULL;
}

/*
 * A VERIFY of 4 MiB on a replica whose reads take 3 s a piece (1 MiB): a
 * suspend of the volume that comes 1 s into it waits for that piece only,
 * and the record is counted not compared; with no suspend the same record
 * is compared.
 */
TEST_F_TIMEOUT(apply, a_suspend_stops_a_verify_in_its_batch, 180)
{
	struct ctx *c = &self->c;
	struct dm_repl_verify_info vi;
	struct apply_job job;
	pthread_t t;
	struct sec *v;

	ctx_init(_metadata, c, "aps");
	c->wrap_data = true;
	group_create(_metadata, c, 1, "");
	v = &c->vols[0];
	ASSERT_EQ(0, data_slow_reads(v, 3000));

	batch_reset(&c->b);
	b_verify(c, &c->b, &c->s, 0, 0, 4 << 20, DM_REPL_VERIFY_HASH_SIZE);
	ASSERT_STREQ("", c->b.err);
	job = (struct apply_job) { .fd = c->fd, .buf = c->b.buf, .len = c->b.len };
	ASSERT_EQ(0, pthread_create(&t, NULL, apply_job_run, &job));
	sleep(1);
	EXPECT_EQ(0, tl_run("dmsetup suspend %s", v->name));
	ASSERT_EQ(0, pthread_join(t, NULL));
	EXPECT_EQ((long)c->b.len, job.n);
	EXPECT_EQ(0, tl_run("dmsetup resume %s", v->name));
	ASSERT_EQ(0, verify_info(c->fd, &vi));
	EXPECT_EQ(0ULL, vi.compared);
	EXPECT_EQ(1ULL, vi.raced);

	/* The control: no suspend, compared (and different: its hash is 0x5a). */
	batch_reset(&c->b);
	b_verify(c, &c->b, &c->s, 0, 0, 4 << 20, DM_REPL_VERIFY_HASH_SIZE);
	ASSERT_EQ((long)c->b.len, apply_buf(c->fd, c->b.buf, c->b.len));
	ASSERT_EQ(0, verify_info(c->fd, &vi));
	EXPECT_EQ(1ULL, vi.compared);
	EXPECT_EQ(1ULL, vi.mismatches);
	EXPECT_EQ(1ULL, vi.raced);
	ASSERT_EQ(0, data_slow_reads(v, 0));
}

/* RESYNC records write their data and keep the replica inconsistent until RESYNC_END. */
TEST_F_TIMEOUT(apply, resync_is_inconsistent_until_its_end, 180)
{
	struct ctx *c = &self->c;
	struct dm_repl_apply_info ai;
	struct sec_status st;
	unsigned char *img;

	ctx_init(_metadata, c, "ap9");
	group_create(_metadata, c, 1, "");
	img = c->vols[0].img;
	batch_reset(&c->b);
	b_data(c, &c->b, &c->s, DM_REPL_REC_RESYNC, 0, 0, 0, 65536, 1, img);
	b_data(c, &c->b, &c->s, DM_REPL_REC_RESYNC, 0, 0, 65536, 65536, 2, img);
	apply_ok(_metadata, c, "the first RESYNC records");
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ((unsigned int)DM_REPL_APPLYF_INCONSISTENT, ai.flags);
	ASSERT_EQ(0, sec_status(&c->vols[0], &st));
	EXPECT_STREQ("inconsistent", st.state);

	/* Persisted: still inconsistent after a reload. */
	ASSERT_EQ(0, group_reload(c));
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ((unsigned int)DM_REPL_APPLYF_INCONSISTENT, ai.flags);
	ASSERT_EQ(0, sec_status(&c->vols[0], &st));
	EXPECT_STREQ("inconsistent", st.state);

	/* Writes in between keep it so; the region marked last ends it. */
	batch_reset(&c->b);
	b_write(c, &c->b, &c->s, 0, 4096, 4096, 3, img);
	b_data(c, &c->b, &c->s, DM_REPL_REC_RESYNC, 0, 0, 131072, 65536, 4, img);
	apply_ok(_metadata, c, "more RESYNC records");
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ((unsigned int)DM_REPL_APPLYF_INCONSISTENT, ai.flags);
	batch_reset(&c->b);
	b_data(c, &c->b, &c->s, DM_REPL_REC_RESYNC, DM_REPL_RECF_RESYNC_END, 0,
	       196608, 65536, 5, img);
	apply_ok(_metadata, c, "the RESYNC_END record");
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ(0U, ai.flags);
	ASSERT_EQ(0, sec_status(&c->vols[0], &st));
	EXPECT_STREQ("consistent", st.state);
	ASSERT_EQ(0, group_reload(c));
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ(0U, ai.flags);
	check_devs(_metadata, c, "after the resync");
}

/* A region of zeros in its ZERO form zeroes its range, as a resync. */
TEST_F_TIMEOUT(apply, a_zero_resync_record_zeroes_its_range, 120)
{
	struct ctx *c = &self->c;
	struct dm_repl_apply_info ai;
	unsigned char *img;

	ctx_init(_metadata, c, "ap16");
	group_create(_metadata, c, 1, "");
	img = c->vols[0].img;
	batch_reset(&c->b);
	b_write(c, &c->b, &c->s, 0, 0, 131072, 1, img);
	b_flush(&c->b, &c->s);
	apply_ok(_metadata, c, "data where the zeros go");
	batch_reset(&c->b);
	b_resync_zero(&c->b, &c->s, 0, 65536, 65536, img);
	b_resync_zero(&c->b, &c->s, 0, 262144, 65536, img);	/* zeros already */
	apply_ok(_metadata, c, "two RESYNC records in their ZERO form");
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ((unsigned int)DM_REPL_APPLYF_INCONSISTENT, ai.flags);
	check_devs(_metadata, c, "after the ZERO records");
}

struct poller {
	int fd;
	int timeout_ms;
	short revents;
	int ret;
	atomic_int tid;		/* the thread's, once it runs */
};

static void *poll_thread(void *arg)
{
	struct poller *p = arg;
	struct pollfd pfd = { .fd = p->fd, .events = POLLIN };

	atomic_store(&p->tid, gettid());
	p->ret = poll(&pfd, 1, p->timeout_ms);
	p->revents = pfd.revents;
	return NULL;
}

/* poll(): always writable; readable once applied_seq moved since the fd's last poll. */
TEST_F_TIMEOUT(apply, poll_reports_a_batch_applied, 120)
{
	struct ctx *c = &self->c;
	struct pollfd pfd;
	struct poller p = { 0 };
	pthread_t th;
	int pfd_fd;

	ctx_init(_metadata, c, "ap10");
	group_create(_metadata, c, 1, "");
	pfd_fd = open_group(c, c->group, O_RDONLY);
	ASSERT_LE(0, pfd_fd);

	pfd.fd = pfd_fd;
	pfd.events = POLLIN | POLLOUT;
	ASSERT_EQ(1, poll(&pfd, 1, 0));
	EXPECT_TRUE(pfd.revents & POLLOUT);
	EXPECT_FALSE(pfd.revents & POLLIN);

	/* A poller asleep is woken by a batch written on another fd. */
	p.fd = pfd_fd;
	p.timeout_ms = 20000;
	ASSERT_EQ(0, pthread_create(&th, NULL, poll_thread, &p));
	while (!atomic_load(&p.tid))
		sched_yield();
	/* Asleep in poll() for sure: its state, not a guess at a duration. */
	ASSERT_EQ(0, tl_wait_sleeping_in_poll(atomic_load(&p.tid), 60)) {
		TH_LOG("the poller never slept in poll()");
	}
	batch_reset(&c->b);
	b_random(c, &c->b, &c->s, 20, true);
	apply_ok(_metadata, c, "the batch that wakes the poller");
	ASSERT_EQ(0, pthread_join(th, NULL));
	EXPECT_EQ(1, p.ret);
	EXPECT_TRUE(p.revents & POLLIN);

	/* Reported once: nothing new now. */
	pfd.events = POLLIN | POLLOUT;
	ASSERT_EQ(1, poll(&pfd, 1, 0));
	EXPECT_FALSE(pfd.revents & POLLIN);
	EXPECT_TRUE(pfd.revents & POLLOUT);

	/* A refused batch moves nothing: still not readable. */
	batch_reset(&c->b);
	{
		struct src s = c->s;

		s.seq += 5;
		b_write(c, &c->b, &s, 0, 0, 4096, 1, NULL);
	}
	EXPECT_EQ(-EILSEQ, apply_buf(c->fd, c->b.buf, c->b.len));
	ASSERT_EQ(1, poll(&pfd, 1, 0));
	EXPECT_FALSE(pfd.revents & POLLIN);

	batch_reset(&c->b);
	b_random(c, &c->b, &c->s, 5, true);
	apply_ok(_metadata, c, "the next batch");
	ASSERT_EQ(1, poll(&pfd, 1, 0));
	EXPECT_TRUE(pfd.revents & POLLIN);
}

/* Nothing but the apply path writes a secondary's volumes; its ring is not there. */
TEST_F_TIMEOUT(apply, the_secondary_is_read_only_from_above, 120)
{
	struct ctx *c = &self->c;
	struct dm_repl_group_info gi;
	unsigned char bm[4096];
	struct dm_repl_bitmap_req req = {
		.abi_version = DM_REPL_ABI_VERSION, .volume = 0, .buf_size = sizeof(bm),
	};
	uint64_t rel = 1;
	void *map;
	int fd, wfd, ro = 0;
	long n;

	ctx_init(_metadata, c, "ap11");
	group_create(_metadata, c, 1, "");

	/*
	 * The disk is read-only (blockdev --getro says 1). Opening it for
	 * writing succeeds, as on any read-only disk in 6.1; every write fails
	 * and changes nothing: EPERM from the block layer, buffered or direct.
	 */
	fd = open(c->vols[0].path, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ioctl(fd, BLKROGET, &ro));
	EXPECT_EQ(1, ro);
	close(fd);
	memset(c->rbuf, 0xa5, 65536);
	fd = open(c->vols[0].path, O_WRONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);
	errno = 0;
	EXPECT_EQ(-1, pwrite(fd, c->rbuf, 65536, 1 << 20));
	EXPECT_EQ(EPERM, errno);
	close(fd);
	fd = open(c->vols[0].path, O_RDWR | O_DIRECT | O_CLOEXEC);
	ASSERT_LE(0, fd);
	errno = 0;
	EXPECT_EQ(-1, pwrite(fd, c->rbuf, 65536, 1 << 20));
	EXPECT_EQ(EPERM, errno);
	close(fd);
	check_devs(_metadata, c, "after writes from above");
	/* Reads pass through, buffered too. */
	fd = open(c->vols[0].path, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);
	EXPECT_EQ(65536, pread(fd, c->rbuf, 65536, 1 << 20));
	EXPECT_EQ(0, memcmp(c->rbuf, c->vols[0].img + (1 << 20), 65536));
	close(fd);

	/* The group device: no ring, no release; info and bitmap work. */
	errno = 0;
	map = mmap(NULL, 4096, PROT_READ, MAP_SHARED, c->fd, 0);
	EXPECT_EQ(MAP_FAILED, map);
	EXPECT_EQ(ENODEV, errno);
	if (map != MAP_FAILED)
		munmap(map, 4096);
	errno = 0;
	EXPECT_EQ(-1, ioctl(c->fd, DM_REPL_IOC_RELEASE, &rel));
	EXPECT_EQ(EPERM, errno);
	ASSERT_EQ(0, dmrepl_group_info(c->fd, &gi, NULL, 0));
	EXPECT_EQ((unsigned int)DM_REPL_ROLE_SECONDARY, gi.role);
	EXPECT_STREQ("ap11", gi.name);
	EXPECT_EQ(1U, gi.nr_volumes);
	EXPECT_EQ(0U, gi.volumes[0].index);
	EXPECT_EQ((uint64_t)DATA_MB << 11, gi.volumes[0].sectors);
	req.buf = (uintptr_t)bm;
	EXPECT_EQ(0, ioctl(c->fd, DM_REPL_IOC_GET_BITMAP, &req)) {
		TH_LOG("GET_BITMAP: %s", strerror(errno));
	}

	/* O_WRONLY is enough to apply. */
	wfd = open_group(c, c->group, O_WRONLY);
	ASSERT_LE(0, wfd);
	batch_reset(&c->b);
	b_random(c, &c->b, &c->s, 10, true);
	n = apply_buf(wfd, c->b.buf, c->b.len);
	EXPECT_EQ((long)c->b.len, n);
	check_devs(_metadata, c, "applied through an O_WRONLY fd");
}

/* A primary group takes no batch; its APPLY_INFO is all zero. */
TEST_F_TIMEOUT(apply, a_primary_refuses_batches, 120)
{
	struct ctx *c = &self->c;
	struct dm_repl_apply_info ai;
	struct tl_vol pv;
	unsigned char before[65536] __attribute__((aligned(4096)));
	unsigned char after[65536] __attribute__((aligned(4096)));
	int fd;

	ctx_init(_metadata, c, "ap12");
	ASSERT_EQ(0, tl_vol_create(&c->env, &pv, "ap12-p", "ap12", DATA_MB, ""));
	ASSERT_EQ(0, tl_pread_all(pv.fd, before, sizeof(before), 0));
	fd = open_group(c, "ap12", O_RDWR);
	ASSERT_LE(0, fd) {
		TH_LOG("open of a primary's group device O_RDWR: %s", strerror(errno));
	}
	batch_reset(&c->b);
	b_write(c, &c->b, &c->s, 0, 0, 65536, 1, NULL);
	EXPECT_EQ(-EPERM, apply_buf(fd, c->b.buf, c->b.len));
	ASSERT_EQ(0, apply_info(fd, &ai));
	EXPECT_EQ(0ULL, ai.applied_seq);
	EXPECT_EQ(0ULL, ai.batches);
	EXPECT_EQ(0ULL, ai.records);
	EXPECT_EQ(0U, ai.flags);
	ASSERT_EQ(0, tl_pread_all(pv.fd, after, sizeof(after), 0));
	EXPECT_EQ(0, memcmp(before, after, sizeof(before)));
}

/* The table's source: records tagged with the source group apply, others do not. */
TEST_F_TIMEOUT(apply, source_names_the_group_whose_records_apply, 120)
{
	struct ctx *c = &self->c;

	ctx_init(_metadata, c, "ap13");
	group_create(_metadata, c, 1, "2 source vm7");
	batch_reset(&c->b);
	b_write(c, &c->b, &c->s, 0, 0, 4096, 1, NULL);
	refused(_metadata, c, c->b.buf, c->b.len, EXDEV, DM_REPL_APPLY_OTHER_GROUP, 1,
		"records of the secondary's own group");
	EXPECT_EQ(dmrepl_crc32c(~0U, "vm7", 3), dmrepl_group_tag("vm7"));
	c->s.seq = 1;
	c->s.tag = dmrepl_group_tag("vm7");
	batch_reset(&c->b);
	b_random(c, &c->b, &c->s, 30, true);
	apply_ok(_metadata, c, "records of the source group");
}

/* Two volumes of one group: each record goes to the volume of its index. */
TEST_F_TIMEOUT(apply, two_volumes_take_their_own_records, 300)
{
	struct ctx *c = &self->c;
	struct dm_repl_group_info gi;
	struct sec_status st;
	unsigned int i, seen = 0;
	char out[256];

	ctx_init(_metadata, c, "ap14");
	group_create(_metadata, c, 2, "");
	ASSERT_EQ(0, dmrepl_group_info(c->fd, &gi, NULL, 0));
	for (i = 0; i < gi.nr_volumes; i++)
		seen |= 1U << gi.volumes[i].index;
	EXPECT_EQ(3U, seen);
	ASSERT_EQ(0, sec_status(&c->vols[1], &st));
	EXPECT_EQ(1U, st.index);

	/* A third volume with index 1 is refused. */
	ASSERT_EQ(0, tl_loop_create(&c->env, DATA_MB, c->vols[2].data, sizeof(c->vols[2].data)));
	ASSERT_EQ(0, tl_loop_create(&c->env, TL_META_MB, c->vols[2].meta,
				    sizeof(c->vols[2].meta)));
	ASSERT_EQ(0, tl_run("%s meta create --force --role secondary --group ap14 --data-dev %s --volume 1 %s >/dev/null",
			    TL_REPLTOOL, c->vols[2].data, c->vols[2].meta));
	EXPECT_NE(0, tl_run("dmsetup create ap14-x --table '0 %d repl %s %s ap14 secondary' 2>/dev/null",
			    DATA_MB << 11, c->vols[2].data, c->vols[2].meta));
	tl_run("dmsetup remove ap14-x 2>/dev/null");
	ASSERT_EQ(0, tl_run_out(out, sizeof(out),
				"dmesg | grep 'device-mapper: table: .*repl: ' | tail -1 | sed -E 's/.*repl: //'"));
	EXPECT_EQ(0, strncmp(out, "Volume index is used by another volume of the group",
			     strlen("Volume index is used by another volume of the group"))) {
		TH_LOG("last table error: %s", out);
	}

	for (i = 0; i < 6; i++) {
		batch_reset(&c->b);
		b_random(c, &c->b, &c->s, 60, true);
		apply_ok(_metadata, c, "a batch for two volumes");
	}
	batch_reset(&c->b);
	{
		struct src s = c->s;

		b_write(c, &c->b, &s, 1, 0, 4096, 1, NULL);
		b_write(c, &c->b, &s, 2, 0, 4096, 2, NULL);
	}
	refused(_metadata, c, c->b.buf, c->b.len, ENXIO, DM_REPL_APPLY_NO_VOLUME,
		c->s.seq + 1, "a record for volume 2");
	/* applied_seq is in both superblocks, and both come back. */
	ASSERT_EQ(0, group_reload(c));
	check_devs(_metadata, c, "two volumes after a reload");
}

/* ---- rejoin, generations, and this site's own dirty regions ------------------- */

/* Another primary's stream, unrelated to TEST_STREAM. */
#define OTHER_STREAM	0x5eed0000000000b2ULL

/* The superblock on the metadata disk, read under the target. */
static int sb_read(const struct sec *v, struct dm_repl_meta_sb *sb)
{
	int fd = open(v->meta, O_RDONLY | O_DIRECT | O_CLOEXEC), r;
	unsigned char *blk = tl_zalloc_aligned(DM_REPL_META_BLOCK_SIZE);

	r = fd < 0 || !blk ? -ENOMEM : tl_pread_all(fd, blk, DM_REPL_META_BLOCK_SIZE, 0);
	if (!r)
		memcpy(sb, blk, sizeof(*sb));
	if (fd >= 0)
		close(fd);
	free(blk);
	return r;
}

static int dm_msg(const char *name, const char *msg)
{
	return tl_run("dmsetup message %s 0 %s 2>/dev/null", name, msg);
}

/*
 * "role <role>" with every volume suspended, its read descriptor closed (a
 * demotion refuses open volumes), then resumed and reopened. The message's
 * exit status.
 */
static int group_role(struct ctx *c, const char *role)
{
	char msg[64];
	int i, r;

	for (i = 0; i < c->nvols; i++) {
		tl_env_close_fd(&c->env, c->vols[i].rfd);
		c->vols[i].rfd = -1;
		if (tl_run("dmsetup suspend %s", c->vols[i].name))
			return -EIO;
	}
	snprintf(msg, sizeof(msg), "role %s", role);
	r = dm_msg(c->vols[0].name, msg);
	for (i = 0; i < c->nvols; i++) {
		if (tl_run("dmsetup resume %s", c->vols[i].name))
			return -EIO;
		c->vols[i].rfd = tl_env_track_fd(&c->env, open(c->vols[i].path,
						 O_RDONLY | O_DIRECT | O_CLOEXEC));
		if (c->vols[i].rfd < 0)
			return -errno;
	}
	return r;
}

/* write(2) of c->b is taken whole. */
static void apply_whole(struct __test_metadata *_metadata, struct ctx *c, const char *what)
{
	struct dm_repl_apply_info ai;
	long n;

	ASSERT_STREQ("", c->b.err);
	n = apply_buf(c->fd, c->b.buf, c->b.len);
	ASSERT_EQ((long)c->b.len, n) {
		apply_info(c->fd, &ai);
		TH_LOG("%s: write: %s; last_reason %u last_error_seq %llu", what,
		       n < 0 ? strerror((int)-n) : "short", ai.last_reason,
		       (unsigned long long)ai.last_error_seq);
	}
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ(dmrepl_rec_seq(rec_at(&c->b, c->b.nrec - 1)), ai.applied_seq);
	check_devs(_metadata, c, what);
}

/* The end of a resync, a RESYNC record of its own naming the primary's volumes. */
static long b_resync_end(struct batch *b, struct src *s, uint64_t volumes)
{
	struct dm_repl_resync_end end = { .volumes = htole64(volumes) };
	struct dmrepl_rec_fields f = {
		.type = DM_REPL_REC_RESYNC, .flags = DM_REPL_RECF_RESYNC_END,
		.payload = &end, .payload_len = sizeof(end),
	};

	return b_add(b, s, &f);
}

static uint64_t dirty_regions(struct __test_metadata *_metadata, struct ctx *c, int vol)
{
	struct dm_repl_group_info gi;

	EXPECT_EQ(0, dmrepl_group_info(c->fd, &gi, NULL, 0));
	EXPECT_LT((uint32_t)vol, gi.nr_volumes);
	return gi.volumes[vol].dirty_regions;
}

/*
 * A mismatch a VERIFY of one stream found is not listed once the replica
 * rejoins another, numbered lower: a pass of the new one, reading the
 * mismatches from its own first sequence on, would take it for its own.
 * Nor are the old stream's markers: recovery points of data it no longer
 * holds.
 */
TEST_F_TIMEOUT(apply, a_rejoin_forgets_the_old_streams_mismatches, 120)
{
	struct ctx *c = &self->c;
	struct dm_repl_verify_info vi;
	struct dm_repl_apply_info ai;
	uint64_t vseq;

	ctx_init(_metadata, c, "rjv");
	group_create(_metadata, c, 1, "");
	batch_reset(&c->b);
	b_random(c, &c->b, &c->s, 30, true);
	vseq = c->s.seq;
	/* Its hash is 0x5a bytes: the region differs. */
	b_verify(c, &c->b, &c->s, 0, 0, 65536, DM_REPL_VERIFY_HASH_SIZE);
	b_flush(&c->b, &c->s);
	b_marker(&c->b, &c->s, "old-stream");
	apply_ok(_metadata, c, "a stream with a VERIFY that finds a mismatch");
	ASSERT_EQ(0, verify_info(c->fd, &vi));
	ASSERT_EQ(1U, vi.nr);
	EXPECT_EQ(vseq, vi.list[0].seq);
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_LE(1U, ai.nr_markers);	/* b_random() puts some too */

	ASSERT_EQ(0, dm_msg(c->vols[0].name, "rejoin"));
	ASSERT_EQ(0, verify_info(c->fd, &vi));
	EXPECT_EQ(0U, vi.nr);
	EXPECT_EQ(0ULL, vi.last_seq);
	EXPECT_EQ(1ULL, vi.mismatches);	/* counted since the load */
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ(0U, ai.nr_markers);

	c->s = (struct src) { .seq = 2, .epoch = 5, .tag = c->s.tag,
			      .stream = OTHER_STREAM };
	batch_reset(&c->b);
	b_write(c, &c->b, &c->s, 0, 8192, 4096, 7, c->vols[0].img);
	b_flush(&c->b, &c->s);
	apply_whole(_metadata, c, "the first batch of another stream, numbered lower");
	ASSERT_EQ(0, verify_info(c->fd, &vi));
	EXPECT_EQ(0U, vi.nr);
}

/*
 * "rejoin": a replica that applied one stream takes the next stream it is
 * given, whatever its sequence, from its first record on (not a STREAM
 * record here), and is inconsistent; REJOIN is on disk until that record is
 * applied, and normal rules hold from there.
 */
TEST_F_TIMEOUT(apply, rejoin_takes_the_next_stream_whatever_it_is, 180)
{
	struct ctx *c = &self->c;
	struct dm_repl_group_info gi;
	struct dm_repl_apply_info ai;
	struct dm_repl_meta_sb sb;
	struct sec_status st;
	struct dm_repl_gen g0 = {
		.abi_version = DM_REPL_ABI_VERSION, .gen_current = 0x5151,
	};
	const char *name;
	uint64_t gen;

	ctx_init(_metadata, c, "rj1");
	group_create(_metadata, c, 1, "");
	name = c->vols[0].name;
	batch_reset(&c->b);
	b_random(c, &c->b, &c->s, 30, true);
	b_flush(&c->b, &c->s);
	apply_ok(_metadata, c, "stream S1");
	/* A new secondary has no generation: it takes its primary's (repld). */
	ASSERT_EQ(0, dmrepl_group_info(c->fd, &gi, NULL, 0));
	EXPECT_EQ(0ULL, gi.gen_current);
	ASSERT_EQ(0, ioctl(c->fd, DM_REPL_IOC_ADOPT_GEN, &g0));
	ASSERT_EQ(0, dmrepl_group_info(c->fd, &gi, NULL, 0));
	gen = gi.gen_current;
	EXPECT_EQ(0x5151ULL, gen);
	EXPECT_EQ(0U, gi.flags);

	/* An unrelated stream is refused. */
	batch_reset(&c->b);
	{
		struct src s = c->s;

		b_stream(&c->b, &s, OTHER_STREAM, 0x1234, 0);
		b_write(c, &c->b, &s, 0, 0, 4096, 1, NULL);
	}
	refused(_metadata, c, c->b.buf, c->b.len, EILSEQ, DM_REPL_APPLY_UNKNOWN_STREAM,
		c->s.seq, "a STREAM record of an unrelated stream");

	EXPECT_NE(0, dm_msg(name, "rejoin now"));
	ASSERT_EQ(0, dm_msg(name, "rejoin"));
	ASSERT_EQ(0, dmrepl_group_info(c->fd, &gi, NULL, 0));
	EXPECT_EQ((uint32_t)DM_REPL_GROUPF_REJOIN, gi.flags);
	EXPECT_EQ(0ULL, gi.gen_current);
	EXPECT_EQ(gen, gi.gen_history[0]);
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ((uint32_t)DM_REPL_APPLYF_INCONSISTENT, ai.flags);
	EXPECT_EQ(0ULL, ai.applied_stream);
	ASSERT_EQ(0, sb_read(&c->vols[0], &sb));
	EXPECT_EQ((uint32_t)(DM_REPL_META_F_REJOIN | DM_REPL_META_F_INCONSISTENT),
		  le32toh(sb.flags) & (DM_REPL_META_F_REJOIN | DM_REPL_META_F_INCONSISTENT));
	EXPECT_EQ(0ULL, le64toh(sb.gen_current));
	EXPECT_EQ(gen, le64toh(sb.gen_history[0]));
	EXPECT_EQ(0ULL, le64toh(sb.stream));
	ASSERT_EQ(0, sec_status(&c->vols[0], &st));
	EXPECT_STREQ("inconsistent", st.state);

	/* Loaded again, it is still rejoining. */
	ASSERT_EQ(0, group_reload(c));
	ASSERT_EQ(0, dmrepl_group_info(c->fd, &gi, NULL, 0));
	EXPECT_EQ((uint32_t)DM_REPL_GROUPF_REJOIN, gi.flags);
	EXPECT_EQ(0ULL, gi.gen_current);
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ((uint32_t)DM_REPL_APPLYF_INCONSISTENT, ai.flags);

	/* Another stream, from seq 5000 in epoch 77, no STREAM record first. */
	c->s = (struct src) { .seq = 5000, .epoch = 77, .tag = c->s.tag,
			      .stream = OTHER_STREAM };
	batch_reset(&c->b);
	b_write(c, &c->b, &c->s, 0, 8192, 4096, 7, c->vols[0].img);
	b_flush(&c->b, &c->s);
	b_write(c, &c->b, &c->s, 0, 1 << 20, 65536, 8, c->vols[0].img);
	apply_whole(_metadata, c, "the first batch of another stream");
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ(OTHER_STREAM, ai.applied_stream);
	EXPECT_EQ(78ULL, ai.applied_epoch);
	EXPECT_EQ((uint32_t)DM_REPL_APPLYF_INCONSISTENT, ai.flags);
	ASSERT_EQ(0, dmrepl_group_info(c->fd, &gi, NULL, 0));
	EXPECT_EQ(0U, gi.flags);
	ASSERT_EQ(0, sb_read(&c->vols[0], &sb));
	EXPECT_EQ((uint32_t)DM_REPL_META_F_INCONSISTENT,
		  le32toh(sb.flags) & (DM_REPL_META_F_REJOIN | DM_REPL_META_F_INCONSISTENT));
	EXPECT_EQ(5002ULL, le64toh(sb.applied_seq));
	EXPECT_EQ(OTHER_STREAM, le64toh(sb.stream));

	/* Normal rules from there, also after a reload. */
	ASSERT_EQ(0, group_reload(c));
	ASSERT_EQ(0, dmrepl_group_info(c->fd, &gi, NULL, 0));
	EXPECT_EQ(0U, gi.flags);
	batch_reset(&c->b);
	{
		struct src s = c->s;

		s.seq += 10;
		b_write(c, &c->b, &s, 0, 0, 4096, 9, NULL);
	}
	refused(_metadata, c, c->b.buf, c->b.len, EILSEQ, DM_REPL_APPLY_SEQ_GAP,
		c->s.seq + 10, "a sequence gap after the rejoin");
	batch_reset(&c->b);
	{
		struct src s = c->s;

		b_stream(&c->b, &s, TEST_STREAM + 7, 0x1234, 0);
	}
	refused(_metadata, c, c->b.buf, c->b.len, EILSEQ, DM_REPL_APPLY_UNKNOWN_STREAM,
		c->s.seq, "an unrelated stream after the rejoin");
	batch_reset(&c->b);
	b_write(c, &c->b, &c->s, 0, 4 << 20, 8192, 10, c->vols[0].img);
	b_flush(&c->b, &c->s);
	apply_ok(_metadata, c, "the stream goes on");
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ((uint32_t)DM_REPL_APPLYF_INCONSISTENT, ai.flags);
}

/*
 * DM_REPL_IOC_ADOPT_GEN sets the group's generations in every superblock
 * (a secondary's only; fields checked); a promotion draws one new one for
 * the group, the adopted one going to the history; a primary refuses
 * "rejoin".
 */
TEST_F_TIMEOUT(apply, adopted_generations_are_the_groups_and_a_promotion_shifts_them, 180)
{
	struct ctx *c = &self->c;
	struct dm_repl_group_info gi;
	struct dm_repl_meta_sb sb;
	struct dm_repl_gen gen = {
		.abi_version = DM_REPL_ABI_VERSION, .gen_current = 0x1111,
		.gen_history = { 0x2222, 0x3333, 0, 0x4444 },
	}, bad;
	int i;

	ctx_init(_metadata, c, "gen1");
	group_create(_metadata, c, 2, "");
	/* Secondaries made with meta create: no generation yet, on every volume. */
	ASSERT_EQ(0, dmrepl_group_info(c->fd, &gi, NULL, 0));
	EXPECT_EQ(0ULL, gi.gen_current);
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(0, sb_read(&c->vols[i], &sb));
		EXPECT_EQ(gi.gen_current, le64toh(sb.gen_current));
	}

	bad = gen;
	bad.gen_current = 0;
	EXPECT_EQ(-1, ioctl(c->fd, DM_REPL_IOC_ADOPT_GEN, &bad));
	EXPECT_EQ(EINVAL, errno);
	bad = gen;
	bad.reserved0 = 1;
	EXPECT_EQ(-1, ioctl(c->fd, DM_REPL_IOC_ADOPT_GEN, &bad));
	EXPECT_EQ(EINVAL, errno);
	bad = gen;
	bad.reserved[1] = 1;
	EXPECT_EQ(-1, ioctl(c->fd, DM_REPL_IOC_ADOPT_GEN, &bad));
	EXPECT_EQ(EINVAL, errno);
	bad = gen;
	bad.abi_version = DM_REPL_ABI_VERSION - 1;
	EXPECT_EQ(-1, ioctl(c->fd, DM_REPL_IOC_ADOPT_GEN, &bad));
	EXPECT_EQ(EPROTO, errno);
	ASSERT_EQ(0, dmrepl_group_info(c->fd, &gi, NULL, 0));
	EXPECT_NE(0x1111ULL, gi.gen_current);

	ASSERT_EQ(0, ioctl(c->fd, DM_REPL_IOC_ADOPT_GEN, &gen)) {
		TH_LOG("ADOPT_GEN: %s", strerror(errno));
	}
	ASSERT_EQ(0, dmrepl_group_info(c->fd, &gi, NULL, 0));
	EXPECT_EQ(0x1111ULL, gi.gen_current);
	EXPECT_EQ(0, memcmp(gen.gen_history, gi.gen_history, sizeof(gen.gen_history)));
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(0, sb_read(&c->vols[i], &sb));
		EXPECT_EQ(0x1111ULL, le64toh(sb.gen_current));
		EXPECT_EQ(0x4444ULL, le64toh(sb.gen_history[3]));
	}
	ASSERT_EQ(0, group_reload(c));
	ASSERT_EQ(0, dmrepl_group_info(c->fd, &gi, NULL, 0));
	EXPECT_EQ(0x1111ULL, gi.gen_current);
	EXPECT_EQ(0, memcmp(gen.gen_history, gi.gen_history, sizeof(gen.gen_history)));

	ASSERT_EQ(0, group_role(c, "primary"));
	ASSERT_EQ(0, dmrepl_group_info(c->fd, &gi, NULL, 0));
	ASSERT_EQ((unsigned int)DM_REPL_ROLE_PRIMARY, gi.role);
	EXPECT_NE(0ULL, gi.gen_current);
	EXPECT_NE(0x1111ULL, gi.gen_current);
	EXPECT_EQ(0x1111ULL, gi.gen_history[0]);
	EXPECT_EQ(0x2222ULL, gi.gen_history[1]);
	EXPECT_EQ(0x3333ULL, gi.gen_history[2]);
	EXPECT_EQ(0ULL, gi.gen_history[3]);
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(0, sb_read(&c->vols[i], &sb));
		EXPECT_EQ(gi.gen_current, le64toh(sb.gen_current));
		EXPECT_EQ(0x1111ULL, le64toh(sb.gen_history[0]));
	}
	EXPECT_EQ(-1, ioctl(c->fd, DM_REPL_IOC_ADOPT_GEN, &gen));
	EXPECT_EQ(EPERM, errno);
	EXPECT_NE(0, dm_msg(c->vols[1].name, "rejoin"));
}

/*
 * A secondary's own dirty regions (a primary demoted by force with records
 * not released) go as RESYNC records complete them, full or ZERO; a
 * RESYNC_END leaves the replica inconsistent while any is left, and the
 * record that clears the last does not end it by itself; the end saves the
 * bitmap, clean after a reload. A promotion of a rejoined group (no
 * generation) keeps zeros out of the history.
 */
TEST_F_TIMEOUT(apply, resync_clears_this_sites_own_regions_before_it_ends, 240)
{
	struct ctx *c = &self->c;
	struct dm_repl_group_info gi;
	struct dm_repl_apply_info ai;
	struct sec_status st;
	uint64_t rb, gen;
	unsigned char *buf;
	int fd, i;
	const struct { int vol; uint64_t off; } own[] = {
		{ 0, 3 }, { 0, 10 }, { 1, 5 },
	};

	ctx_init(_metadata, c, "rj2");
	group_create(_metadata, c, 2, "");
	ASSERT_EQ(0, dmrepl_group_info(c->fd, &gi, NULL, 0));
	rb = (uint64_t)gi.volumes[0].region_sectors << 9;
	ASSERT_EQ(rb, (uint64_t)gi.volumes[1].region_sectors << 9);
	ASSERT_GE(c->vols[0].size, 16 * rb);

	/* Promoted, written, demoted by force: those regions are this site's own. */
	ASSERT_EQ(0, group_role(c, "primary"));
	buf = tl_zalloc_aligned(4096);
	ASSERT_NE(NULL, buf);
	for (i = 0; i < 3; i++) {
		struct sec *v = &c->vols[own[i].vol];
		uint64_t off = own[i].off * rb + 4096;

		tl_fill(buf, 4096, 100 + i);
		memcpy(v->img + off, buf, 4096);
		fd = open(v->path, O_RDWR | O_DIRECT | O_CLOEXEC);
		ASSERT_LE(0, fd);
		EXPECT_EQ(0, tl_pwrite_all(fd, buf, 4096, off));
		EXPECT_EQ(0, fsync(fd));
		close(fd);
	}
	free(buf);
	EXPECT_NE(0, group_role(c, "secondary"));
	ASSERT_EQ(0, group_role(c, "secondary force"));
	EXPECT_EQ(2ULL, dirty_regions(_metadata, c, 0));
	EXPECT_EQ(1ULL, dirty_regions(_metadata, c, 1));
	check_devs(_metadata, c, "after the forced demotion");

	ASSERT_EQ(0, dm_msg(c->vols[0].name, "rejoin"));
	ASSERT_EQ(0, dmrepl_group_info(c->fd, &gi, NULL, 0));
	gen = gi.gen_history[0];
	EXPECT_NE(0ULL, gen);
	c->s = (struct src) { .seq = 9000, .epoch = 5, .tag = c->s.tag,
			      .stream = OTHER_STREAM };

	/* A record short of its region's end leaves it dirty. */
	batch_reset(&c->b);
	b_data(c, &c->b, &c->s, DM_REPL_REC_RESYNC, 0, 0, 3 * rb, (uint32_t)(rb / 2), 1,
	       c->vols[0].img);
	apply_whole(_metadata, c, "half a region");
	EXPECT_EQ(2ULL, dirty_regions(_metadata, c, 0));

	/* The rest of it, then an END: one region left on each volume. */
	batch_reset(&c->b);
	b_data(c, &c->b, &c->s, DM_REPL_REC_RESYNC, 0, 0, 3 * rb + rb / 2,
	       (uint32_t)(rb / 2), 2, c->vols[0].img);
	b_resync_end(&c->b, &c->s, 3);
	apply_whole(_metadata, c, "the rest of the region and an END");
	EXPECT_EQ(1ULL, dirty_regions(_metadata, c, 0));
	EXPECT_EQ(1ULL, dirty_regions(_metadata, c, 1));
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ((uint32_t)DM_REPL_APPLYF_INCONSISTENT, ai.flags);

	/* The last ones, in ZERO form and whole: clean, and still inconsistent. */
	batch_reset(&c->b);
	b_resync_zero(&c->b, &c->s, 0, 10 * rb, (uint32_t)rb, c->vols[0].img);
	b_data(c, &c->b, &c->s, DM_REPL_REC_RESYNC, 0, 1, 5 * rb, (uint32_t)rb, 3,
	       c->vols[1].img);
	apply_whole(_metadata, c, "the last regions");
	EXPECT_EQ(0ULL, dirty_regions(_metadata, c, 0));
	EXPECT_EQ(0ULL, dirty_regions(_metadata, c, 1));
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ((uint32_t)DM_REPL_APPLYF_INCONSISTENT, ai.flags);

	batch_reset(&c->b);
	b_resync_end(&c->b, &c->s, 3);
	apply_whole(_metadata, c, "the END");
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ(0U, ai.flags);
	ASSERT_EQ(0, sec_status(&c->vols[0], &st));
	EXPECT_STREQ("consistent", st.state);

	ASSERT_EQ(0, group_reload(c));
	EXPECT_EQ(0ULL, dirty_regions(_metadata, c, 0));
	EXPECT_EQ(0ULL, dirty_regions(_metadata, c, 1));
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ(0U, ai.flags);
	check_devs(_metadata, c, "after the resync and a reload");

	/* Rejoined again (no generation), then promoted: no zero in the history. */
	ASSERT_EQ(0, dm_msg(c->vols[1].name, "rejoin"));
	ASSERT_EQ(0, dmrepl_group_info(c->fd, &gi, NULL, 0));
	EXPECT_EQ(0ULL, gi.gen_current);
	EXPECT_EQ(gen, gi.gen_history[0]);
	ASSERT_EQ(0, group_role(c, "primary force"));
	ASSERT_EQ(0, dmrepl_group_info(c->fd, &gi, NULL, 0));
	EXPECT_NE(0ULL, gi.gen_current);
	EXPECT_EQ(gen, gi.gen_history[0]);
}

/* The first 64 bits of v's dirty bitmap as its metadata disk holds them. */
static int disk_bits0(const struct sec *v, uint64_t *bits)
{
	struct dm_repl_meta_sb sb;
	struct dm_repl_meta_bm_block *b = tl_zalloc_aligned(DM_REPL_META_BLOCK_SIZE);
	int fd = open(v->meta, O_RDONLY | O_DIRECT | O_CLOEXEC), r = -1;

	if (fd >= 0 && b && !sb_read(v, &sb) &&
	    !tl_pread_all(fd, b, DM_REPL_META_BLOCK_SIZE, le64toh(sb.bm_offset) * 512) &&
	    le32toh(b->magic) == DM_REPL_META_BM_MAGIC) {
		*bits = le64toh(b->bits[0]);
		r = 0;
	}
	if (fd >= 0)
		close(fd);
	free(b);
	return r;
}

/*
 * DM_REPL_IOC_MARK (a verify fix): every region the range touches becomes
 * this site's own and the replica inconsistent, on disk (a reload keeps
 * both); bad fields, a reader's file, a missing volume and a primary are
 * refused; the primary's RESYNC records over the regions and an END make it
 * consistent again, and an END before them does not.
 */
TEST_F_TIMEOUT(apply, a_marked_range_stays_inconsistent_until_resent, 240)
{
	struct ctx *c = &self->c;
	struct dm_repl_group_info gi;
	struct dm_repl_apply_info ai;
	struct dm_repl_mark_req req;
	struct dm_repl_meta_sb sb;
	struct sec_status st;
	uint64_t rb, sectors, bits;
	int rfd, i;

	ctx_init(_metadata, c, "mk1");
	group_create(_metadata, c, 2, "");
	ASSERT_EQ(0, dmrepl_group_info(c->fd, &gi, NULL, 0));
	rb = (uint64_t)gi.volumes[1].region_sectors << 9;
	sectors = gi.volumes[1].sectors;
	ASSERT_GE(c->vols[1].size, 8 * rb);
	batch_reset(&c->b);
	b_write(c, &c->b, &c->s, 1, 0, 4096, 1, c->vols[1].img);
	apply_ok(_metadata, c, "a first write");

	/* Two sectors either side of the boundary of regions 2 and 3. */
	req = (struct dm_repl_mark_req) {
		.abi_version = DM_REPL_ABI_VERSION, .volume = 1,
		.sector = 3 * (rb >> 9) - 1, .nr_sectors = 2,
	};
	const struct { struct dm_repl_mark_req req; int err; } bad[] = {
		{ { DM_REPL_ABI_VERSION, 1, req.sector, 0, { 0, 0 } }, EINVAL },
		{ { DM_REPL_ABI_VERSION, 1, sectors, 1, { 0, 0 } }, EINVAL },
		{ { DM_REPL_ABI_VERSION, 1, sectors - 1, UINT64_MAX, { 0, 0 } }, EINVAL },
		{ { DM_REPL_ABI_VERSION, 1, req.sector, 2, { 0, 1 } }, EINVAL },
		{ { DM_REPL_ABI_VERSION - 1, 1, req.sector, 2, { 0, 0 } }, EPROTO },
		{ { DM_REPL_ABI_VERSION, 7, req.sector, 2, { 0, 0 } }, ENOENT },
		{ { DM_REPL_ABI_VERSION, UINT32_MAX, req.sector, 2, { 0, 0 } }, ENOENT },
	};
	for (i = 0; i < (int)ARRAY_SIZE(bad); i++) {
		EXPECT_EQ(-1, ioctl(c->fd, DM_REPL_IOC_MARK, &bad[i].req));
		EXPECT_EQ(bad[i].err, errno) {
			TH_LOG("case %d: %s", i, strerror(errno));
		}
	}
	rfd = open_group(c, c->group, O_RDONLY);
	ASSERT_LE(0, rfd);
	EXPECT_EQ(-1, ioctl(rfd, DM_REPL_IOC_MARK, &req));
	EXPECT_EQ(EBADF, errno);
	close(rfd);
	EXPECT_EQ(0ULL, dirty_regions(_metadata, c, 1));
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ(0U, ai.flags);

	ASSERT_EQ(0, ioctl(c->fd, DM_REPL_IOC_MARK, &req)) {
		TH_LOG("MARK: %s", strerror(errno));
	}
	EXPECT_EQ(2ULL, dirty_regions(_metadata, c, 1));
	EXPECT_EQ(0ULL, dirty_regions(_metadata, c, 0));
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ((uint32_t)DM_REPL_APPLYF_INCONSISTENT, ai.flags);
	ASSERT_EQ(0, dmrepl_group_info(c->fd, &gi, NULL, 0));
	EXPECT_EQ((uint32_t)DM_REPL_STATE_BEHIND, gi.state);
	/* On the metadata disk when the ioctl returns, not only at a reload. */
	ASSERT_EQ(0, disk_bits0(&c->vols[1], &bits));
	EXPECT_EQ(0xcULL, bits);
	ASSERT_EQ(0, sb_read(&c->vols[1], &sb));
	EXPECT_NE(0U, le32toh(sb.flags) & DM_REPL_META_F_INCONSISTENT);
	ASSERT_EQ(0, group_reload(c));
	EXPECT_EQ(2ULL, dirty_regions(_metadata, c, 1));
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ((uint32_t)DM_REPL_APPLYF_INCONSISTENT, ai.flags);
	ASSERT_EQ(0, sec_status(&c->vols[1], &st));
	EXPECT_STREQ("inconsistent", st.state);
	EXPECT_NE(0, group_role(c, "primary"));

	/* An END with the regions not resent yet ends nothing. */
	batch_reset(&c->b);
	b_resync_end(&c->b, &c->s, 3);
	apply_whole(_metadata, c, "an early END");
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ((uint32_t)DM_REPL_APPLYF_INCONSISTENT, ai.flags);

	/* One region of the two, and an END: still inconsistent. */
	batch_reset(&c->b);
	b_data(c, &c->b, &c->s, DM_REPL_REC_RESYNC, 0, 1, 2 * rb, (uint32_t)rb, 2,
	       c->vols[1].img);
	b_resync_end(&c->b, &c->s, 3);
	apply_whole(_metadata, c, "one region and an END");
	EXPECT_EQ(1ULL, dirty_regions(_metadata, c, 1));
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ((uint32_t)DM_REPL_APPLYF_INCONSISTENT, ai.flags);

	batch_reset(&c->b);
	b_data(c, &c->b, &c->s, DM_REPL_REC_RESYNC, 0, 1, 3 * rb, (uint32_t)rb, 3,
	       c->vols[1].img);
	b_resync_end(&c->b, &c->s, 3);
	apply_whole(_metadata, c, "the other region and an END");
	EXPECT_EQ(0ULL, dirty_regions(_metadata, c, 1));
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ(0U, ai.flags);
	/* Nothing of its own left: a promotion would have nothing to resync. */
	ASSERT_EQ(0, dmrepl_group_info(c->fd, &gi, NULL, 0));
	EXPECT_EQ((uint32_t)DM_REPL_STATE_UPTODATE, gi.state);
	ASSERT_EQ(0, group_reload(c));
	ASSERT_EQ(0, sec_status(&c->vols[1], &st));
	EXPECT_STREQ("consistent", st.state);
	check_devs(_metadata, c, "after the resend");

	/* A primary takes no mark. */
	ASSERT_EQ(0, group_role(c, "primary"));
	EXPECT_EQ(-1, ioctl(c->fd, DM_REPL_IOC_MARK, &req));
	EXPECT_EQ(EPERM, errno);
}

/*
 * A region of this site's own counts as resent only when RESYNC records
 * covered it from its start, back to back: the first record taken after a
 * rejoin may fall in its middle, and another record between two halves
 * breaks the run. Neither clears it, and an END leaves the replica
 * inconsistent.
 */
TEST_F_TIMEOUT(apply, a_region_is_resent_only_from_its_start, 180)
{
	struct ctx *c = &self->c;
	struct dm_repl_group_info gi;
	struct dm_repl_apply_info ai;
	unsigned char *buf;
	uint64_t rb;
	int fd;

	ctx_init(_metadata, c, "rj3");
	group_create(_metadata, c, 1, "");
	ASSERT_EQ(0, dmrepl_group_info(c->fd, &gi, NULL, 0));
	rb = (uint64_t)gi.volumes[0].region_sectors << 9;
	ASSERT_GE(c->vols[0].size, 16 * rb);
	ASSERT_GE(rb, 8192ULL);

	/* This site's own write in the first half of region 3. */
	ASSERT_EQ(0, group_role(c, "primary"));
	buf = tl_zalloc_aligned(4096);
	ASSERT_NE(NULL, buf);
	tl_fill(buf, 4096, 77);
	memcpy(c->vols[0].img + 3 * rb, buf, 4096);
	fd = open(c->vols[0].path, O_RDWR | O_DIRECT | O_CLOEXEC);
	ASSERT_LE(0, fd);
	EXPECT_EQ(0, tl_pwrite_all(fd, buf, 4096, 3 * rb));
	EXPECT_EQ(0, fsync(fd));
	close(fd);
	free(buf);
	ASSERT_EQ(0, group_role(c, "secondary force"));
	EXPECT_EQ(1ULL, dirty_regions(_metadata, c, 0));

	ASSERT_EQ(0, dm_msg(c->vols[0].name, "rejoin"));
	c->s = (struct src) { .seq = 7000, .epoch = 9, .tag = c->s.tag,
			      .stream = OTHER_STREAM };

	/* The first record taken: the region's second half, then an END. */
	batch_reset(&c->b);
	b_data(c, &c->b, &c->s, DM_REPL_REC_RESYNC, 0, 0, 3 * rb + rb / 2, (uint32_t)(rb / 2),
	       11, c->vols[0].img);
	b_resync_end(&c->b, &c->s, 1);
	apply_whole(_metadata, c, "the second half first");
	EXPECT_EQ(1ULL, dirty_regions(_metadata, c, 0));
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ((uint32_t)DM_REPL_APPLYF_INCONSISTENT, ai.flags);

	/* Both halves with a write between them: not one run. */
	batch_reset(&c->b);
	b_data(c, &c->b, &c->s, DM_REPL_REC_RESYNC, 0, 0, 3 * rb, (uint32_t)(rb / 2), 12,
	       c->vols[0].img);
	b_write(c, &c->b, &c->s, 0, 9 * rb, 4096, 13, c->vols[0].img);
	b_data(c, &c->b, &c->s, DM_REPL_REC_RESYNC, 0, 0, 3 * rb + rb / 2, (uint32_t)(rb / 2),
	       14, c->vols[0].img);
	b_resync_end(&c->b, &c->s, 1);
	apply_whole(_metadata, c, "two halves apart");
	EXPECT_EQ(1ULL, dirty_regions(_metadata, c, 0));
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ((uint32_t)DM_REPL_APPLYF_INCONSISTENT, ai.flags);

	/* Back to back, across two batches: resent; the END makes it consistent. */
	batch_reset(&c->b);
	b_data(c, &c->b, &c->s, DM_REPL_REC_RESYNC, 0, 0, 3 * rb, (uint32_t)(rb / 2), 15,
	       c->vols[0].img);
	apply_whole(_metadata, c, "the first half");
	EXPECT_EQ(1ULL, dirty_regions(_metadata, c, 0));
	batch_reset(&c->b);
	b_data(c, &c->b, &c->s, DM_REPL_REC_RESYNC, 0, 0, 3 * rb + rb / 2, (uint32_t)(rb / 2),
	       16, c->vols[0].img);
	b_resync_end(&c->b, &c->s, 1);
	apply_whole(_metadata, c, "the second half, right after");
	EXPECT_EQ(0ULL, dirty_regions(_metadata, c, 0));
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ(0U, ai.flags);
}

/* A VERIFY record of [off, +len) of volume 0 whose hash is img's there. */
static long b_verify_img(struct ctx *c, struct batch *b, struct src *s, const unsigned char *img,
			 uint64_t off, uint32_t len)
{
	unsigned char hash[DM_REPL_VERIFY_HASH_SIZE];
	struct dmrepl_rec_fields f = {
		.type = DM_REPL_REC_VERIFY, .sector = off >> 9, .nbytes = len,
		.payload = hash, .payload_len = sizeof(hash),
	};

	(void)c;
	if (!EVP_Digest(img + off, len, hash, NULL, EVP_sha256(), NULL)) {
		snprintf(b->err, sizeof(b->err), "EVP_Digest failed");
		return -1;
	}
	return b_add(b, s, &f);
}

/* The seeded state as the group, the apply info and the superblock say it. */
static void expect_seeded(struct __test_metadata *_metadata, struct ctx *c, bool seeded,
			  uint64_t left, const char *when)
{
	struct dm_repl_group_info gi;
	struct dm_repl_apply_info ai;
	struct dm_repl_meta_sb sb;
	struct sec_status st;
	uint32_t want = seeded ? DM_REPL_META_F_INCONSISTENT | DM_REPL_META_F_SEEDED : 0;

	ASSERT_EQ(0, dmrepl_group_info(c->fd, &gi, NULL, 0));
	EXPECT_EQ(seeded ? (uint32_t)DM_REPL_GROUPF_SEEDED : 0U, gi.flags) TH_LOG("%s", when);
	EXPECT_EQ(left, gi.volumes[0].dirty_regions) TH_LOG("%s", when);
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ(seeded ? (uint32_t)DM_REPL_APPLYF_INCONSISTENT : 0U, ai.flags) TH_LOG("%s", when);
	ASSERT_EQ(0, sb_read(&c->vols[0], &sb));
	EXPECT_EQ(want, le32toh(sb.flags) & (DM_REPL_META_F_INCONSISTENT | DM_REPL_META_F_SEEDED))
		TH_LOG("%s", when);
	ASSERT_EQ(0, sec_status(&c->vols[0], &st));
	EXPECT_STREQ(seeded ? "inconsistent" : "consistent", st.state) TH_LOG("%s", when);
}

/*
 * A seeded replica (meta create --seeded: INCONSISTENT, SEEDED, every region
 * dirty): a VERIFY record that matches clears the regions its range covers
 * whole, and no other; one that does not match clears nothing and is not
 * called corruption; a RESYNC run clears its region as on any replica. A
 * reload keeps what was cleared (a clean shutdown saves the bitmap). The
 * last region cleared ends INCONSISTENT and SEEDED together, on disk too;
 * before that a promotion is refused.
 */
TEST_F_TIMEOUT(apply, a_seeded_replica_is_consistent_once_verified_whole, 180)
{
	const uint32_t rb = 1U << 20;	/* --region-kb 1024: 16 regions */
	struct ctx *c = &self->c;
	unsigned char *img;
	uint64_t r;

	ctx_init(_metadata, c, "apsd");
	c->meta_opts = "--seeded --region-kb 1024";
	group_create(_metadata, c, 1, "");
	img = c->vols[0].img;
	expect_seeded(_metadata, c, true, 16, "created");
	EXPECT_NE(0, group_role(c, "primary"));
	expect_seeded(_metadata, c, true, 16, "promotion refused");

	batch_reset(&c->b);
	/* Region 0 whole; regions 1 and 2 half each; regions 3 and 4 whole. */
	b_verify_img(c, &c->b, &c->s, img, 0, rb);
	b_verify_img(c, &c->b, &c->s, img, rb + rb / 2, rb);
	b_verify_img(c, &c->b, &c->s, img, 3 * rb, 2 * rb);
	/* Region 5: the primary wrote there, and its hash is not ours. */
	b_write(c, &c->b, &c->s, 0, 5 * rb + 4096, 8192, 21, img);
	b_verify(c, &c->b, &c->s, 0, 5 * rb, rb, DM_REPL_VERIFY_HASH_SIZE);
	/* Region 6: written by the primary first, then verified equal. */
	b_write(c, &c->b, &c->s, 0, 6 * rb + 512, 4096, 22, img);
	b_verify_img(c, &c->b, &c->s, img, 6 * rb, rb);
	/* Region 15: a RESYNC run of zeros. */
	b_resync_zero(&c->b, &c->s, 0, 15 * (uint64_t)rb, rb, img);
	apply_whole(_metadata, c, "verified in part");
	expect_seeded(_metadata, c, true, 11, "verified in part");
	EXPECT_NE(0, tl_run("dmesg | grep -q 'apsd: verify: .*corruption'"));

	ASSERT_EQ(0, group_reload(c));
	expect_seeded(_metadata, c, true, 11, "reloaded");

	/* All but region 14: still inconsistent. */
	batch_reset(&c->b);
	b_verify_img(c, &c->b, &c->s, img, rb, rb);
	b_verify_img(c, &c->b, &c->s, img, 2 * rb, rb);
	for (r = 5; r < 14; r++)
		if (r != 6)
			b_verify_img(c, &c->b, &c->s, img, r * rb, rb);
	apply_whole(_metadata, c, "all but one");
	expect_seeded(_metadata, c, true, 1, "all but one");

	/* The last one, in a VERIFY of two regions: consistent, on disk too. */
	batch_reset(&c->b);
	b_verify_img(c, &c->b, &c->s, img, 13 * (uint64_t)rb, 2 * rb);
	apply_whole(_metadata, c, "the last one");
	expect_seeded(_metadata, c, false, 0, "the last one");
	ASSERT_EQ(0, group_reload(c));
	expect_seeded(_metadata, c, false, 0, "the last one, reloaded");
}

/*
 * The seed came by other means and may sit in the disk's volatile cache: a
 * batch of VERIFY records alone, writing nothing, still flushes the data
 * device before the regions it matched count as the primary's. One whose
 * VERIFY found a difference matched nothing, and has nothing to flush.
 */
static uint64_t flushes_of_verify(struct __test_metadata *_metadata, struct ctx *c,
				  bool equal, const char *what)
{
	const uint32_t rb = 1U << 20;
	struct dm_repl_apply_info before, after;

	batch_reset(&c->b);
	if (equal)
		b_verify_img(c, &c->b, &c->s, c->vols[0].img, 0, rb);
	else
		b_verify(c, &c->b, &c->s, 0, rb, rb, DM_REPL_VERIFY_HASH_SIZE);
	EXPECT_EQ(0, apply_info(c->fd, &before));
	apply_whole(_metadata, c, what);
	EXPECT_EQ(0, apply_info(c->fd, &after));
	return after.flushes - before.flushes;
}

TEST_F_TIMEOUT(apply, a_seeded_replicas_verify_match_is_flushed_before_it_counts, 180)
{
	struct ctx *c = &self->c;

	ctx_init(_metadata, c, "apsf");
	c->meta_opts = "--seeded --region-kb 1024";
	group_create(_metadata, c, 1, "");
	EXPECT_EQ(0U, flushes_of_verify(_metadata, c, false, "a VERIFY that differs"));
	expect_seeded(_metadata, c, true, 16, "a VERIFY that differs");
	EXPECT_LE(1U, flushes_of_verify(_metadata, c, true, "a VERIFY that matches"));
	expect_seeded(_metadata, c, true, 15, "a VERIFY that matches");
}

/*
 * A RESYNC_END on a seeded replica with regions left unverified leaves it
 * inconsistent and seeded; one that comes when the bitmap is clean ends
 * both, as at the end of any resync.
 */
TEST_F_TIMEOUT(apply, a_resync_end_ends_a_seeded_replica_only_when_clean, 180)
{
	const uint32_t rb = 4U << 20;	/* --region-kb 4096: 4 regions */
	struct ctx *c = &self->c;
	unsigned char *img;
	uint64_t off;

	ctx_init(_metadata, c, "apse");
	c->meta_opts = "--seeded --region-kb 4096";
	group_create(_metadata, c, 1, "");
	img = c->vols[0].img;
	expect_seeded(_metadata, c, true, 4, "created");

	/* A region is four RESYNC records of 1 MiB back to back. */
	batch_reset(&c->b);
	for (off = 0; off < rb; off += 1U << 20)
		b_resync_zero(&c->b, &c->s, 0, off, 1U << 20, img);
	b_verify_img(c, &c->b, &c->s, img, rb, rb);
	b_resync_end(&c->b, &c->s, 1);
	apply_whole(_metadata, c, "two regions and an END");
	expect_seeded(_metadata, c, true, 2, "two regions and an END");

	batch_reset(&c->b);
	b_verify_img(c, &c->b, &c->s, img, 2 * (uint64_t)rb, rb);
	for (off = 3 * (uint64_t)rb; off < 4 * (uint64_t)rb; off += 1U << 20)
		b_resync_zero(&c->b, &c->s, 0, off, 1U << 20, img);
	b_resync_end(&c->b, &c->s, 1);
	apply_whole(_metadata, c, "the other two and an END");
	expect_seeded(_metadata, c, false, 0, "the other two and an END");
}

/*
 * Past a gap a seeded replica whose last region is cleared at the end of a
 * batch stays inconsistent (and outdated) until the primary's RESYNC_END,
 * which then ends all three: it does not stay outdated for good.
 */
TEST_F_TIMEOUT(apply, a_seeded_replica_past_a_gap_ends_at_the_resync_end, 180)
{
	const uint32_t rb = 4U << 20;	/* --region-kb 4096: 4 regions */
	struct ctx *c = &self->c;
	struct dm_repl_group_info gi;
	struct dm_repl_apply_info ai;
	unsigned char *img;
	uint64_t off;

	ctx_init(_metadata, c, "apsg");
	c->meta_opts = "--seeded --region-kb 4096";
	group_create(_metadata, c, 1, "");
	img = c->vols[0].img;

	batch_reset(&c->b);
	b_gap(c, &c->b, &c->s, 1);
	for (off = 0; off < 3 * (uint64_t)rb; off += rb)
		b_verify_img(c, &c->b, &c->s, img, off, rb);
	for (off = 3 * (uint64_t)rb; off < 4 * (uint64_t)rb; off += 1U << 20)
		b_resync_zero(&c->b, &c->s, 0, off, 1U << 20, img);
	apply_whole(_metadata, c, "a gap, three regions verified, the fourth resent");
	ASSERT_EQ(0, dmrepl_group_info(c->fd, &gi, NULL, 0));
	EXPECT_EQ(0ULL, gi.volumes[0].dirty_regions);
	EXPECT_EQ((uint32_t)DM_REPL_GROUPF_SEEDED, gi.flags);
	ASSERT_EQ(0, apply_info(c->fd, &ai));
	EXPECT_EQ((uint32_t)(DM_REPL_APPLYF_INCONSISTENT | DM_REPL_APPLYF_OUTDATED), ai.flags);

	batch_reset(&c->b);
	b_resync_end(&c->b, &c->s, 1);
	apply_whole(_metadata, c, "the END");
	expect_seeded(_metadata, c, false, 0, "the END");
}

TEST_HARNESS_MAIN
