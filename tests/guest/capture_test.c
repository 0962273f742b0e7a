// SPDX-License-Identifier: GPL-2.0
/*
 * Capture: every write, discard, zeroing and flush on a repl volume becomes
 * records in the group's ring that rebuild the volume byte for byte, in an
 * order and with epochs that a replica can apply.
 *
 * Runs in the guest (tests/guest/vm.sh) with dm-repl.ko loaded. TEST_SEED
 * in the environment replays a run; the seed is printed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "testlib.h"

#define DATA_MB		64
#define RING_OPTS	"2 ring_mb 64"
#define RANDOM_OPS	500
#define MAX_WRITE	(1U << 20)	/* a record's largest payload */
#define MAX_RANGE	(1U << 20)	/* discards and zeroings */
#define RELEASE_EVERY	32		/* ops between releases */

enum op_kind { OP_WRITE, OP_DISCARD, OP_ZEROOUT, OP_PUNCH, OP_FSYNC,
	       OP_MARKER, OP_KINDS };
static const char *const op_names[OP_KINDS] = {
	"write", "discard", "zeroout", "punch", "fsync", "marker"
};

struct op {
	enum op_kind kind;
	int vol;		/* index into the test's volumes */
	uint64_t off, len;
	uint64_t seed;		/* of a write's data */
};

/* A run of random operations on one or more volumes of one group. */
struct runner {
	struct tl_vol *vols;
	int nvols;
	struct dmrepl_ring *ring;
	struct tl_consumer c;
	struct tl_rng rng;
	uint64_t seed;
	unsigned char *buf;
	unsigned int n[OP_KINDS];
	char err[320];
};

static void runner_error(struct runner *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void runner_error(struct runner *r, const char *fmt, ...)
{
	va_list ap;

	if (r->err[0])
		return;
	va_start(ap, fmt);
	vsnprintf(r->err, sizeof(r->err), fmt, ap);
	va_end(ap);
}

static int cmp_sector(const void *a, const void *b)
{
	const struct dm_repl_rec *x = a, *y = b;
	uint64_t sx = dmrepl_rec_sector(x), sy = dmrepl_rec_sector(y);

	return sx < sy ? -1 : sx > sy;
}

/*
 * The records a synchronous operation produced (hdrs[from..to)) must be
 * its own: its volume, types that fit, ranges that tile its range exactly;
 * an fsync gives exactly one FLUSH.
 */
static void check_op_records(struct runner *r, const struct op *op,
			     struct dm_repl_rec *h, size_t n)
{
	unsigned int want_vol = (unsigned int)r->vols[op->vol].index;
	uint64_t at = op->off;
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned int t = dmrepl_rec_type(&h[i]);
		bool ok;

		if (dmrepl_rec_volume(&h[i]) != want_vol) {
			runner_error(r, "%s on volume %u gave seq %llu with volume %u",
				     op_names[op->kind], want_vol,
				     (unsigned long long)dmrepl_rec_seq(&h[i]),
				     dmrepl_rec_volume(&h[i]));
			return;
		}
		switch (op->kind) {
		case OP_WRITE:
			ok = t == DM_REPL_REC_WRITE;
			break;
		case OP_DISCARD:
			ok = t == DM_REPL_REC_DISCARD;
			break;
		case OP_ZEROOUT:
		case OP_PUNCH:
			/* WRITE of zero pages is the block layer's fallback. */
			ok = t == DM_REPL_REC_WRITE_ZEROES || t == DM_REPL_REC_WRITE;
			break;
		case OP_FSYNC:
			ok = t == DM_REPL_REC_FLUSH;
			break;
		default:
			ok = t == DM_REPL_REC_MARKER;
		}
		if (!ok) {
			runner_error(r, "%s gave a record of type %s (seq %llu)",
				     op_names[op->kind], dmrepl_rec_type_name(t) ?: "?",
				     (unsigned long long)dmrepl_rec_seq(&h[i]));
			return;
		}
	}
	if (op->kind == OP_FSYNC || op->kind == OP_MARKER) {
		if (n != 1)
			runner_error(r, "%s gave %zu records, want 1",
				     op_names[op->kind], n);
		return;
	}
	qsort(h, n, sizeof(*h), cmp_sector);
	for (i = 0; i < n; i++) {
		if (dmrepl_rec_sector(&h[i]) << 9 != at)
			break;
		at += dmrepl_rec_nbytes(&h[i]);
	}
	if (i != n || at != op->off + op->len)
		runner_error(r, "%s [%llu, +%llu) on volume %u: its %zu records do not tile the range (stop at record %zu, byte %llu)",
			     op_names[op->kind], (unsigned long long)op->off,
			     (unsigned long long)op->len, want_vol, n, i,
			     (unsigned long long)at);
}

static int do_op(struct runner *r, const struct op *op)
{
	int fd = r->vols[op->vol].fd;

	switch (op->kind) {
	case OP_WRITE:
		tl_fill(r->buf, op->len, op->seed);
		return tl_pwrite_all(fd, r->buf, op->len, op->off);
	case OP_DISCARD:
		return tl_discard(fd, op->off, op->len);
	case OP_ZEROOUT:
		return tl_zeroout(fd, op->off, op->len);
	case OP_PUNCH:
		return tl_punch(fd, op->off, op->len);
	case OP_FSYNC:
		return fsync(fd) ? -errno : 0;
	default:
		return -EINVAL;
	}
}

static struct op random_op(struct runner *r, unsigned int i)
{
	struct op op = { .vol = (int)tl_rand_range(&r->rng, 0, r->nvols - 1) };
	uint64_t size = r->vols[op.vol].size, p = tl_rand(&r->rng) % 100;

	/*
	 * BLKZEROOUT asks loop for FALLOC_FL_ZERO_RANGE, which tmpfs lacks: the
	 * WRITE_ZEROES fails (a DISCARDED slot) and the block layer falls back
	 * to writing zero pages. fallocate(PUNCH_HOLE) on the dm device sends a
	 * WRITE_ZEROES without NOUNMAP, which loop turns into a hole: that one
	 * succeeds, so both paths are exercised.
	 */
	op.kind = p < 55 ? OP_WRITE : p < 67 ? OP_DISCARD : p < 79 ? OP_ZEROOUT :
		  p < 85 ? OP_PUNCH : OP_FSYNC;
	if (op.kind == OP_FSYNC)
		return op;
	op.len = tl_rand_range(&r->rng, 1, (op.kind == OP_WRITE ? MAX_WRITE :
					   MAX_RANGE) / 512) * 512;
	op.off = tl_rand_range(&r->rng, 0, (size - op.len) / 512) * 512;
	op.seed = r->seed ^ ((uint64_t)i << 32) ^ 0x5eed;
	return op;
}

/* Run one operation, then take and judge the records it produced. */
static void run_op(struct runner *r, const struct op *op, unsigned int i)
{
	size_t before = r->c.nhdrs;
	int ret = do_op(r, op);

	r->n[op->kind]++;
	if (ret) {
		runner_error(r, "op %u: %s [%llu, +%llu) on %s: %s", i,
			     op_names[op->kind], (unsigned long long)op->off,
			     (unsigned long long)op->len, r->vols[op->vol].name,
			     strerror(-ret));
		return;
	}
	/* Every operation above is synchronous: its records are committed. */
	tl_consume(&r->c, i % RELEASE_EVERY == RELEASE_EVERY - 1);
	check_op_records(r, op, r->c.hdrs + before, r->c.nhdrs - before);
}

/*
 * Epochs: for every FLUSH F, data records before it are in epochs <= F's,
 * those after it in later epochs, and the record right after F is in epoch
 * F.epoch + 1. Headers are in sequence order.
 */
static int check_epochs(const struct dm_repl_rec *h, size_t n, char *err,
			size_t len)
{
	uint64_t *suffix_min = calloc(n + 1, sizeof(*suffix_min));
	uint64_t prefix_max = 0;
	size_t i;
	int bad = 0;

	if (!suffix_min) {
		snprintf(err, len, "out of memory");
		return -1;
	}
	suffix_min[n] = UINT64_MAX;
	for (i = n; i-- > 0;) {
		unsigned int t = dmrepl_rec_type(&h[i]);
		bool data = t == DM_REPL_REC_WRITE || t == DM_REPL_REC_DISCARD ||
			    t == DM_REPL_REC_WRITE_ZEROES;
		uint64_t e = dmrepl_rec_epoch(&h[i]);

		suffix_min[i] = data && e < suffix_min[i + 1] ? e : suffix_min[i + 1];
	}
	for (i = 0; i < n && !bad; i++) {
		unsigned int t = dmrepl_rec_type(&h[i]);
		uint64_t e = dmrepl_rec_epoch(&h[i]);

		if (i && e < dmrepl_rec_epoch(&h[i - 1])) {
			snprintf(err, len, "epoch goes back at seq %llu",
				 (unsigned long long)dmrepl_rec_seq(&h[i]));
			bad = 1;
		} else if (t == DM_REPL_REC_FLUSH) {
			if (prefix_max > e || suffix_min[i + 1] <= e ||
			    (i + 1 < n && dmrepl_rec_epoch(&h[i + 1]) != e + 1)) {
				snprintf(err, len,
					 "FLUSH seq %llu epoch %llu: max epoch before %llu, min after %llu, next record's epoch %llu",
					 (unsigned long long)dmrepl_rec_seq(&h[i]),
					 (unsigned long long)e,
					 (unsigned long long)prefix_max,
					 (unsigned long long)suffix_min[i + 1],
					 (unsigned long long)(i + 1 < n ?
						dmrepl_rec_epoch(&h[i + 1]) : 0));
				bad = 1;
			}
		} else if (t != DM_REPL_REC_MARKER && e > prefix_max) {
			prefix_max = e;
		}
	}
	free(suffix_min);
	return bad;
}

/* After the run: drain, then every count and every byte must agree. */
static void check_final(struct __test_metadata *_metadata, struct runner *r)
{
	struct dm_repl_group_info info;
	unsigned char *disk;
	char err[256] = "";
	int v;

	ASSERT_LE(0, tl_consume(&r->c, true));
	ASSERT_EQ(0, dmrepl_ring_info(r->ring, &info));
	TH_LOG("seed %llu: ops write %u discard %u zeroout %u punch %u fsync %u; records %llu (W %llu D %llu Z %llu F %llu M %llu), %llu payload bytes, %llu DISCARDED slots",
	       (unsigned long long)r->seed, r->n[OP_WRITE], r->n[OP_DISCARD],
	       r->n[OP_ZEROOUT], r->n[OP_PUNCH], r->n[OP_FSYNC],
	       (unsigned long long)r->c.records,
	       (unsigned long long)r->c.by_type[DM_REPL_REC_WRITE],
	       (unsigned long long)r->c.by_type[DM_REPL_REC_DISCARD],
	       (unsigned long long)r->c.by_type[DM_REPL_REC_WRITE_ZEROES],
	       (unsigned long long)r->c.by_type[DM_REPL_REC_FLUSH],
	       (unsigned long long)r->c.by_type[DM_REPL_REC_MARKER],
	       (unsigned long long)r->c.payload_bytes,
	       (unsigned long long)dmrepl_ring_discarded(r->ring));

	EXPECT_STREQ("", r->err);
	EXPECT_STREQ("", r->c.err);
	EXPECT_EQ(0ULL, info.overflows);
	/* One sequence space: 1, 2, 3, ... with no gap but DISCARDED slots. */
	EXPECT_EQ(info.next_seq - 1, r->c.last_seq);
	EXPECT_EQ(dmrepl_ring_discarded(r->ring), r->c.gap);
	EXPECT_EQ(info.discarded, r->c.gap);
	EXPECT_EQ(info.records, r->c.records + r->c.stream_records + r->c.gap);
	/* Every fsync made exactly one FLUSH (each was also checked in place). */
	EXPECT_EQ(r->n[OP_FSYNC], r->c.by_type[DM_REPL_REC_FLUSH]);
	EXPECT_EQ(0, check_epochs(r->c.hdrs, r->c.nhdrs, err, sizeof(err))) {
		TH_LOG("%s", err);
	}
	/* Both kinds of zeroing happened and were seen as such. */
	if (r->n[OP_PUNCH])
		EXPECT_LT(0ULL, r->c.by_type[DM_REPL_REC_WRITE_ZEROES]);
	if (r->n[OP_DISCARD])
		EXPECT_LT(0ULL, r->c.by_type[DM_REPL_REC_DISCARD]);

	for (v = 0; v < r->nvols; v++) {
		struct tl_vol *vol = &r->vols[v];
		int64_t diff;

		disk = tl_zalloc_aligned(vol->size);
		ASSERT_NE(NULL, disk);
		ASSERT_EQ(0, tl_pread_all(vol->fd, disk, vol->size, 0));
		diff = tl_first_diff(disk, r->c.img[vol->index], vol->size);
		EXPECT_EQ(-1, diff) {
			TH_LOG("%s: the rebuilt image differs from the device at byte %lld",
			       vol->name, (long long)diff);
		}
		free(disk);
	}
}

static void runner_init(struct __test_metadata *_metadata, struct runner *r,
			struct tl_env *env, struct tl_vol *vols, int nvols,
			const char *group)
{
	struct dm_repl_group_info info;
	char msg[DMREPL_ERRMSG_LEN];
	int v;

	memset(r, 0, sizeof(*r));
	r->vols = vols;
	r->nvols = nvols;
	r->seed = tl_seed();
	tl_rng_init(&r->rng, r->seed);
	TH_LOG("seed %llu (set TEST_SEED to replay)", (unsigned long long)r->seed);
	r->buf = tl_zalloc_aligned(MAX_WRITE);
	ASSERT_NE(NULL, r->buf);
	ASSERT_EQ(0, tl_ring_open(env, group, &r->ring, msg, sizeof(msg))) {
		TH_LOG("open %s: %s", group, msg);
	}
	ASSERT_EQ(0, dmrepl_ring_info(r->ring, &info));
	ASSERT_EQ((unsigned int)nvols, info.nr_volumes);
	ASSERT_EQ(1ULL, info.next_seq);
	r->c.ring = r->ring;
	r->c.keep_headers = true;
	for (v = 0; v < nvols; v++) {
		ASSERT_EQ(0, tl_vol_find_index(&vols[v], &info));
		ASSERT_GT(TL_MAX_VOLS, vols[v].index);
		ASSERT_EQ(NULL, r->c.img[vols[v].index]);
		r->c.img[vols[v].index] = calloc(1, vols[v].size);
		ASSERT_NE(NULL, r->c.img[vols[v].index]);
		r->c.img_size[vols[v].index] = vols[v].size;
	}
}

static void runner_free(struct runner *r)
{
	int i;

	for (i = 0; i < TL_MAX_VOLS; i++)
		free(r->c.img[i]);
	tl_consumer_free(&r->c);
	free(r->buf);
}

FIXTURE(capture) {
	struct tl_env env;
	struct tl_vol vols[2];
	struct runner run;
};

FIXTURE_SETUP(capture)
{
	TL_SETUP(&self->env);
}

FIXTURE_TEARDOWN(capture)
{
	runner_free(&self->run);
	TL_TEARDOWN(&self->env);
}

/*
 * 500 random writes, discards, zeroings and fsyncs through O_DIRECT: the
 * records, applied in order to a zeroed image, give the device's content.
 */
TEST_F_TIMEOUT(capture, records_rebuild_the_volume_byte_for_byte, 300)
{
	struct runner *r = &self->run;
	unsigned int i;

	ASSERT_EQ(0, tl_vol_create(&self->env, &self->vols[0], "cap1", "cap1",
				   DATA_MB, RING_OPTS));
	runner_init(_metadata, r, &self->env, self->vols, 1, "cap1");
	for (i = 0; i < RANDOM_OPS && !r->err[0]; i++) {
		struct op op = random_op(r, i);

		run_op(r, &op, i);
	}
	check_final(_metadata, r);
}

/*
 * Two volumes in one group, operations interleaved at random: one sequence
 * space, each record names the volume it was written to, both images
 * rebuild byte for byte.
 */
TEST_F_TIMEOUT(capture, two_volumes_share_one_sequence_and_rebuild_each, 300)
{
	struct runner *r = &self->run;
	unsigned int i;

	ASSERT_EQ(0, tl_vol_create(&self->env, &self->vols[0], "cap2a", "cap2",
				   DATA_MB, RING_OPTS));
	ASSERT_EQ(0, tl_vol_create_vol(&self->env, &self->vols[1], "cap2b", "cap2",
				       DATA_MB, RING_OPTS, 1));
	runner_init(_metadata, r, &self->env, self->vols, 2, "cap2");
	/* The index each volume's superblock names (meta create --volume). */
	ASSERT_EQ(0, self->vols[0].index);
	ASSERT_EQ(1, self->vols[1].index);
	for (i = 0; i < RANDOM_OPS && !r->err[0]; i++) {
		struct op op = random_op(r, i);

		run_op(r, &op, i);
	}
	check_final(_metadata, r);
	EXPECT_LT(0U, r->n[OP_WRITE]);
}

struct sleeper {
	struct dmrepl_ring *ring;
	atomic_int tid;		/* the thread's, once it runs */
	int ret;
};

static void *sleeper_thread(void *arg)
{
	struct sleeper *s = arg;

	atomic_store(&s->tid, gettid());
	s->ret = dmrepl_ring_wait(s->ring, 60000);
	return NULL;
}

/*
 * Wake-ups are coalesced (a burst of records, or the next tick), but never
 * at a record's expense: poll() reports a committed record at once, and a
 * consumer asleep in poll() is woken for a single record with nothing
 * after it, by exactly one wake-up.
 */
TEST_F_TIMEOUT(capture, poll_reports_each_record_and_wakes_a_sleeper_for_one, 120)
{
	struct dm_repl_group_info before, after;
	struct timespec pause = { 0, 200 * 1000000L };
	struct tl_vol *v = &self->vols[0];
	struct sleeper s = { 0 };
	char msg[DMREPL_ERRMSG_LEN];
	struct dmrepl_ring *ring;
	pthread_t th;
	void *buf;

	ASSERT_EQ(0, tl_vol_create(&self->env, v, "cap3", "cap3", DATA_MB,
				   RING_OPTS));
	ASSERT_EQ(0, tl_ring_open(&self->env, "cap3", &ring, msg, sizeof(msg))) {
		TH_LOG("%s", msg);
	}
	buf = tl_zalloc_aligned(4096);
	ASSERT_NE(NULL, buf);
	while (dmrepl_ring_wait(ring, 0) == 1)
		;

	/* Seen by poll() before any wake-up could have come. */
	ASSERT_EQ(0, dmrepl_ring_info(ring, &before));
	ASSERT_EQ(0, tl_pwrite_all(v->fd, buf, 4096, 0));
	ASSERT_EQ(1, dmrepl_ring_wait(ring, 0));
	ASSERT_EQ(0, dmrepl_ring_wait(ring, 0));
	/* Its wake-up comes all the same, once, at the next tick. */
	do {
		nanosleep(&pause, NULL);
		ASSERT_EQ(0, dmrepl_ring_info(ring, &after));
	} while (after.wakeups == before.wakeups);
	EXPECT_EQ(before.wakeups + 1, after.wakeups);

	/* One record, once the sleeper sleeps in poll() (its state, not a guess). */
	before = after;
	s.ring = ring;
	ASSERT_EQ(0, pthread_create(&th, NULL, sleeper_thread, &s));
	while (!atomic_load(&s.tid))
		nanosleep(&pause, NULL);
	ASSERT_EQ(0, tl_wait_sleeping_in_poll(atomic_load(&s.tid), 60)) {
		TH_LOG("the sleeper never slept in poll()");
	}
	ASSERT_EQ(0, tl_pwrite_all(v->fd, buf, 4096, 4096));
	ASSERT_EQ(0, pthread_join(th, NULL));
	ASSERT_EQ(0, dmrepl_ring_info(ring, &after));
	EXPECT_EQ(1, s.ret);
	EXPECT_EQ(before.next_seq + 1, after.next_seq);
	EXPECT_EQ(before.wakeups + 1, after.wakeups);
	free(buf);
}

/* dmsetup message <dev> 0 <words>: its exit status. */
static int dm_message(const char *dev, const char *words)
{
	return tl_run("dmsetup message %s 0 %s 2>/dev/null", dev, words);
}

#define ORDER_OPS	300
#define ORDER_WRITE	(64U << 10)

/* Maps each record, while its payload is mapped, to the operation that made it. */
struct order_map {
	const struct op *ops;
	const char *const *labels;	/* of OP_MARKER ops */
	unsigned int nops;
	uint64_t *covered;	/* bytes (write) or records (fsync, marker) */
	long cur;		/* operation of the previous record, -1: none */
	unsigned char *scratch;
	char err[320];
};

static bool op_complete(const struct order_map *m, long i)
{
	return m->covered[i] == (m->ops[i].kind == OP_WRITE ? m->ops[i].len : 1);
}

static bool rec_is_op(const struct order_map *m, long i,
		      const struct dm_repl_rec *rec)
{
	const struct op *op = &m->ops[i];
	uint64_t off = dmrepl_rec_sector(rec) << 9, len = dmrepl_rec_nbytes(rec);

	switch (dmrepl_rec_type(rec)) {
	case DM_REPL_REC_WRITE:
		if (op->kind != OP_WRITE || off < op->off ||
		    off + len > op->off + op->len || op_complete(m, i))
			return false;
		tl_fill(m->scratch, op->len, op->seed);
		return !memcmp(m->scratch + (off - op->off),
			       dmrepl_rec_payload(rec), len);
	case DM_REPL_REC_FLUSH:
		return op->kind == OP_FSYNC && !m->covered[i];
	case DM_REPL_REC_MARKER:
		return op->kind == OP_MARKER && !m->covered[i] &&
		       dmrepl_rec_payload_len(rec) == strlen(m->labels[i]) &&
		       !memcmp(dmrepl_rec_payload(rec), m->labels[i],
			       dmrepl_rec_payload_len(rec));
	default:
		return false;
	}
}

static void order_hook(void *arg, const struct dm_repl_rec *rec)
{
	struct order_map *m = arg;
	unsigned long long seq = (unsigned long long)dmrepl_rec_seq(rec);
	long i, j = -1;

	if (m->err[0])
		return;
	for (i = m->cur < 0 ? 0 : m->cur; i < (long)m->nops && j < 0; i++)
		if (rec_is_op(m, i, rec))
			j = i;
	if (j < 0) {
		for (i = 0; i < m->cur && j < 0; i++)
			if (rec_is_op(m, i, rec))
				j = i;
		snprintf(m->err, sizeof(m->err),
			 "seq %llu (%s sector %llu nbytes %u) %s %ld", seq,
			 dmrepl_rec_type_name(dmrepl_rec_type(rec)) ?: "?",
			 (unsigned long long)dmrepl_rec_sector(rec),
			 dmrepl_rec_nbytes(rec),
			 j < 0 ? "belongs to no operation; current op" :
				 "belongs to op", j < 0 ? m->cur : j);
		if (j >= 0)
			snprintf(m->err + strlen(m->err), sizeof(m->err) - strlen(m->err),
				 ", issued before op %ld whose records came earlier", m->cur);
		return;
	}
	if (j != m->cur) {
		/* A new operation: the previous ones are all complete. */
		for (i = m->cur < 0 ? 0 : m->cur; i < j; i++)
			if (!op_complete(m, i)) {
				snprintf(m->err, sizeof(m->err),
					 "seq %llu is op %ld's, but op %ld (%s) has %llu of %llu covered",
					 seq, j, i, op_names[m->ops[i].kind],
					 (unsigned long long)m->covered[i],
					 (unsigned long long)(m->ops[i].kind == OP_WRITE ?
							      m->ops[i].len : 1));
				return;
			}
		m->cur = j;
	}
	m->covered[j] += m->ops[j].kind == OP_WRITE ? dmrepl_rec_nbytes(rec) : 1;
}

/*
 * One thread: a write issued after another completed has a higher sequence;
 * epochs follow the FLUSHes; a marker sits in sequence with its label; bad
 * marker messages are refused and leave no record.
 */
TEST_F_TIMEOUT(capture, sequence_follows_completion_order_and_flushes_close_epochs, 300)
{
	static const char label64[] =
		"L123456789abcdefghijklmnopqrstuvwxyz_.:+-@ABCDEFGHIJKLMNOPQRSTUV";
	const unsigned int nops = ORDER_OPS + 1, marker_at = ORDER_OPS / 2;
	struct runner *r = &self->run;
	struct op ops[ORDER_OPS + 1];
	const char *labels[ORDER_OPS + 1] = { 0 };
	uint64_t covered[ORDER_OPS + 1] = { 0 };
	struct order_map map = {
		.ops = ops, .labels = labels, .nops = nops, .covered = covered,
		.cur = -1, .scratch = malloc(ORDER_WRITE),
	};
	struct dm_repl_group_info info, after;
	const struct dm_repl_rec *last;
	unsigned char *want;
	char bad70[80], err[256] = "", words[128];
	unsigned int i, incomplete;

	ASSERT_NE(NULL, map.scratch);
	ASSERT_EQ(0, tl_vol_create(&self->env, &self->vols[0], "ord1", "ord1",
				   DATA_MB, RING_OPTS));
	runner_init(_metadata, r, &self->env, self->vols, 1, "ord1");
	r->c.hook = order_hook;
	r->c.hook_arg = &map;

	/* Writes and fsyncs, no draining in between; a marker in the middle. */
	memset(ops, 0, sizeof(ops));
	for (i = 0; i < ORDER_OPS; i++) {
		struct op *op = &ops[i];

		if (i == marker_at) {
			op->kind = OP_MARKER;
			labels[i] = "label1";
			ASSERT_EQ(0, dm_message("ord1", "marker label1"));
			continue;
		}
		op->kind = tl_rand(&r->rng) % 100 < 85 ? OP_WRITE : OP_FSYNC;
		if (op->kind == OP_WRITE) {
			op->len = tl_rand_range(&r->rng, 1, ORDER_WRITE / 512) * 512;
			op->off = tl_rand_range(&r->rng, 0,
						(self->vols[0].size - op->len) / 512) * 512;
			op->seed = r->seed ^ ((uint64_t)i << 32) ^ 0x0d0e;
		}
		ASSERT_EQ(0, do_op(r, op));
		r->n[op->kind]++;
	}

	/* Refused messages add nothing to the ring. */
	ASSERT_EQ(0, dmrepl_ring_info(r->ring, &info));
	memset(bad70, 'a', 70);
	bad70[70] = 0;
	snprintf(words, sizeof(words), "marker %s", bad70);
	EXPECT_NE(0, dm_message("ord1", "marker 'a b'"));
	EXPECT_NE(0, dm_message("ord1", words));
	EXPECT_NE(0, dm_message("ord1", "marker"));
	EXPECT_NE(0, dm_message("ord1", "frobnicate now"));
	EXPECT_NE(0, dm_message("ord1", "marker bad/label"));
	ASSERT_EQ(0, dmrepl_ring_info(r->ring, &after));
	EXPECT_EQ(info.next_seq, after.next_seq);
	/* The longest label (64) is taken, with every allowed character. */
	ASSERT_EQ(64UL, strlen(label64));
	snprintf(words, sizeof(words), "marker %s", label64);
	ops[ORDER_OPS].kind = OP_MARKER;
	labels[ORDER_OPS] = label64;
	EXPECT_EQ(0, dm_message("ord1", words));

	/*
	 * Map every record back to its operation: in sequence order the
	 * operation index never goes back, and an operation's records all come
	 * before the next one's (each completed before the next was issued).
	 */
	ASSERT_LE(0, tl_consume(&r->c, true));
	EXPECT_STREQ("", r->c.err);
	EXPECT_STREQ("", map.err);
	EXPECT_EQ(0ULL, r->c.gap);
	EXPECT_EQ(info.next_seq, r->c.last_seq);
	EXPECT_EQ(r->n[OP_FSYNC], r->c.by_type[DM_REPL_REC_FLUSH]);
	EXPECT_EQ(2ULL, r->c.by_type[DM_REPL_REC_MARKER]);
	EXPECT_EQ(nops - 1, (unsigned long)map.cur);
	for (i = 0, incomplete = 0; i < nops; i++)
		if (!op_complete(&map, i) && incomplete++ < 5)
			TH_LOG("op %u (%s) is covered by %llu", i, op_names[ops[i].kind],
			       (unsigned long long)covered[i]);
	EXPECT_EQ(0U, incomplete);
	EXPECT_EQ(0, check_epochs(r->c.hdrs, r->c.nhdrs, err, sizeof(err))) {
		TH_LOG("%s", err);
	}
	ASSERT_LT(0UL, r->c.nhdrs);
	last = &r->c.hdrs[r->c.nhdrs - 1];
	EXPECT_EQ((unsigned int)DM_REPL_REC_MARKER, dmrepl_rec_type(last));

	/* And the records rebuilt what was written. */
	want = calloc(1, self->vols[0].size);
	ASSERT_NE(NULL, want);
	for (i = 0; i < ORDER_OPS; i++)
		if (ops[i].kind == OP_WRITE)
			tl_fill(want + ops[i].off, ops[i].len, ops[i].seed);
	EXPECT_EQ(-1, tl_first_diff(want, r->c.img[self->vols[0].index],
				    self->vols[0].size));
	free(want);
	TH_LOG("%u writes, %u fsyncs, 2 markers -> %llu records, epochs 1..%llu",
	       r->n[OP_WRITE], r->n[OP_FSYNC], (unsigned long long)r->c.records,
	       (unsigned long long)dmrepl_rec_epoch(last));
	free(map.scratch);
}

TEST_HARNESS_MAIN
