/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared helpers of the guest kselftest-harness tests (tests/guest/NAME_test.c).
 * They run in the qemu guest as root, with dm-repl.ko loaded.
 *
 * Everything a test creates (loop disks over tmpfs files, dm devices, open
 * file descriptors, opened rings) is recorded in a struct tl_env so that
 * FIXTURE_TEARDOWN removes it all, whatever ASSERT stopped the test.
 *
 * This file does not include the harness: the TL_* macros that use
 * _metadata expand in the test files.
 */
#ifndef DMREPL_TESTLIB_H
#define DMREPL_TESTLIB_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dmrepl.h"

#define TL_MAX_LOOPS	8
#define TL_MAX_DMS	8
#define TL_MAX_FDS	8
#define TL_MAX_RINGS	4
#define TL_MAX_VOLS	4
#define TL_NAME_LEN	64
#define TL_ALIGN	4096	/* O_DIRECT buffer alignment */
#define TL_META_MB	4	/* size of a metadata loop disk */

/* What a test created; tl_env_cleanup() undoes it in reverse. */
struct tl_env {
	int nloops;
	char loop_dev[TL_MAX_LOOPS][TL_NAME_LEN];
	char loop_file[TL_MAX_LOOPS][TL_NAME_LEN];
	int ndms;
	char dm_name[TL_MAX_DMS][TL_NAME_LEN];
	int fds[TL_MAX_FDS];
	struct dmrepl_ring *rings[TL_MAX_RINGS];
};

void tl_env_init(struct tl_env *e);
/* Closes rings and fds, removes dm devices, detaches loops. Returns failures. */
int tl_env_cleanup(struct tl_env *e);
/* Remember fd for cleanup; returns fd. */
int tl_env_track_fd(struct tl_env *e, int fd);
/* Close a tracked fd now. */
void tl_env_close_fd(struct tl_env *e, int fd);

/* ---- running commands ------------------------------------------------ */

/* sh -c "<fmt...>"; returns the exit status (0..255), or -1. */
int tl_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same, capturing up to len-1 bytes of stdout (trailing newlines cut). */
int tl_run_out(char *out, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* sh -c in the background, in its own process group; returns its pid or -1. */
pid_t tl_spawn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- devices ---------------------------------------------------------- */

/* A loop device over a new zero-filled tmpfs file of mb MiB. */
int tl_loop_create(struct tl_env *e, unsigned int mb, char *dev, size_t len);
/* dmsetup create NAME --table TABLE, then dmsetup mknodes NAME. */
int tl_dm_create(struct tl_env *e, const char *name, const char *table_fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* dmsetup remove NAME (and its /dev/mapper node); 0 or the exit status. */
int tl_dm_remove(struct tl_env *e, const char *name);

/* "groups volumes files" from /sys/module/dm_repl/parameters/live_objects. */
int tl_live_objects(char *buf, size_t len);

/*
 * Wait until thread TID of this process sleeps in poll() or ppoll() (its
 * /proc state 'S' with that system call in progress): a state, not a
 * duration. 0 once it does, -1 if it did not within timeout_s seconds.
 */
int tl_wait_sleeping_in_poll(pid_t tid, int timeout_s);
/* Wait up to timeout_s for thread tid to sleep uninterruptibly (D): 0, or -1. */
int tl_wait_blocked(pid_t tid, int timeout_s);
/* Wait up to timeout_s for thread tid's kernel stack to name function fn: 0, or -1. */
int tl_wait_in_stack(pid_t tid, const char *fn, int timeout_s);
/* A shell command run in a thread of its own: its status once it ended. */
struct tl_bg {
	char cmd[512];
	pthread_t thread;
	bool started, ended;
	int status;
};

/* Start the command (tl_run()'s format) in b's thread: 0 or -errno. */
int tl_bg_start(struct tl_bg *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Wait up to secs (0: just look) for it to end: true once it has. */
bool tl_bg_wait(struct tl_bg *b, int secs);
/* Size in bytes of a block device (by fd). */
int64_t tl_dev_bytes(int fd);
/* major:minor of the block device at path. */
int tl_dev_rdev(const char *path, unsigned int *maj, unsigned int *min);

/*
 * One repl volume: a loop data disk of data_mb MiB, a loop metadata disk, and
 * the dm device "name" over them in group "group" with the optional
 * arguments opts ("" or e.g. "2 ring_mb 64"); fd is /dev/mapper/<name>
 * opened O_RDWR | O_DIRECT (tracked by the env).
 */
struct tl_vol {
	char name[TL_NAME_LEN];
	char path[TL_NAME_LEN + 16];
	char data[TL_NAME_LEN];
	char meta[TL_NAME_LEN];
	size_t size;
	int fd;
	int index;		/* volume index in records, from the group info
				 * (tl_vol_find_index); its superblock's */
};

/* repltool meta create for a volume of group over data (volume index 0). */
int tl_meta_create(const char *meta, const char *group, const char *data);
/* The same with volume index volume (--volume): one per volume of a group. */
int tl_meta_create_vol(const char *meta, const char *group, const char *data,
		       unsigned int volume);
/* A primary volume with volume index 0 ... */
int tl_vol_create(struct tl_env *e, struct tl_vol *v, const char *name,
		  const char *group, unsigned int data_mb, const char *opts);
/* ... or with volume index volume (each volume of a group needs its own). */
int tl_vol_create_vol(struct tl_env *e, struct tl_vol *v, const char *name,
		      const char *group, unsigned int data_mb, const char *opts,
		      unsigned int volume);
/* ... or over data, an existing block device of data_mb MiB (a dm stack). */
int tl_vol_create_over(struct tl_env *e, struct tl_vol *v, const char *name,
		       const char *group, const char *data, unsigned int data_mb,
		       const char *opts, unsigned int volume);
/* Fill v->index from the group's info (matching the data device). */
int tl_vol_find_index(struct tl_vol *v, const struct dm_repl_group_info *info);

/* dmrepl_ring_open() with the ring tracked by the env. */
int tl_ring_open(struct tl_env *e, const char *group, struct dmrepl_ring **ring,
		 char *errmsg, size_t errmsg_len);
void tl_ring_close(struct tl_env *e, struct dmrepl_ring *ring);

/* ---- I/O ---------------------------------------------------------------- */

void *tl_zalloc_aligned(size_t size);
/* Full pwrite/pread (O_DIRECT-friendly chunks); 0 or -errno. */
int tl_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
int tl_pread_all(int fd, void *buf, size_t len, uint64_t off);
/* BLKDISCARD / BLKZEROOUT / fallocate(PUNCH_HOLE|KEEP_SIZE); 0 or -errno. */
int tl_discard(int fd, uint64_t off, uint64_t len);
int tl_zeroout(int fd, uint64_t off, uint64_t len);
int tl_punch(int fd, uint64_t off, uint64_t len);
/* Offset of the first difference of a and b, or -1 if equal. */
int64_t tl_first_diff(const void *a, const void *b, size_t len);

/* ---- randomness ------------------------------------------------------- */

/* TEST_SEED from the environment, else the time. */
uint64_t tl_seed(void);
struct tl_rng {
	uint64_t s;
};
void tl_rng_init(struct tl_rng *r, uint64_t seed);
uint64_t tl_rand(struct tl_rng *r);
/* Uniform in [lo, hi]. */
uint64_t tl_rand_range(struct tl_rng *r, uint64_t lo, uint64_t hi);
/* Deterministic pseudo-random bytes from seed (any len). */
void tl_fill(void *buf, size_t len, uint64_t seed);

/* ---- records ---------------------------------------------------------- */

/*
 * Apply one record to a volume image: WRITE copies its payload, DISCARD and
 * WRITE_ZEROES zero their range (the data disks are loop devices over tmpfs
 * files, which read zeros after a discard: loop punches a hole in the file).
 * Other types change nothing. -ERANGE if the record is outside the image,
 * -EINVAL for a WRITE whose payload is not its range.
 */
int tl_apply(unsigned char *img, size_t size, const struct dm_repl_rec *r);

/*
 * A consumer that takes every committed record from a ring, checks it and
 * applies it to the image of its volume (when img[volume] is set).
 * Checks: dmrepl_rec_check_unsealed() on the record in the ring (crc 0
 * there), dmrepl_rec_check() (crc) on a sealed copy of it, sequences
 * strictly increasing; a jump
 * over sequences is counted in gap (only DISCARDED slots may cause one).
 * The first problem is kept in err. The headers of all records taken are
 * kept in hdrs (when keep_headers), for later analysis. The ring's own
 * records (STREAM, GAP) are checked and counted in stream_records and
 * by_type only: records, hdrs and hook see the records operations made.
 */
struct tl_consumer {
	struct dmrepl_ring *ring;
	unsigned char *img[TL_MAX_VOLS];
	size_t img_size[TL_MAX_VOLS];
	bool keep_headers;
	/* Optional: called for each record, while its payload is mapped. */
	void (*hook)(void *arg, const struct dm_repl_rec *r);
	void *hook_arg;

	uint64_t last_seq;		/* sequence of the last record taken */
	uint64_t released;		/* last sequence released */
	uint64_t records;
	uint64_t stream_records;	/* STREAM and GAP */
	uint64_t payload_bytes;
	uint64_t by_type[DM_REPL_REC_TYPE_MAX + 1];
	uint64_t gap;			/* sequences never seen */
	uint64_t batches;		/* tl_consume() calls that found records */
	char err[256];			/* first problem, "" if none */

	struct dm_repl_rec *hdrs;
	size_t nhdrs, hdrs_cap;
	struct dm_repl_rec *copy;	/* DMREPL_REC_MAX_LEN bytes, for sealing */
};

/*
 * Take every record committed now; if release, release up to the last one.
 * Returns the number taken or -errno (dmrepl_ring_next/release failed; err
 * says why). Check problems do not stop it: see err.
 */
long tl_consume(struct tl_consumer *c, bool release);

/*
 * dmrepl_ring_next() past the ring's own records (STREAM, GAP): the next
 * record an operation of the test made. Returns as dmrepl_ring_next().
 */
int tl_ring_next_op(struct dmrepl_ring *ring, const struct dm_repl_rec **rec);
void tl_consumer_free(struct tl_consumer *c);

/* DM_REPL_IOC_GET_BITMAP of one volume into buf (size bytes); 0 or -errno. */
int tl_get_bitmap(struct dmrepl_ring *ring, unsigned int volume, void *buf,
		  size_t size, uint64_t *full_size);
static inline bool tl_bit(const unsigned char *bm, uint64_t bit)
{
	return bm[bit / 8] & (1U << (bit % 8));
}

/* ---- harness glue (expands in the tests, where _metadata exists) ------- */

/* A fixture setup: the module is there and nothing of it is alive. */
#define TL_SETUP(env) do {						\
	char _lo[64];							\
	tl_env_init(env);						\
	ASSERT_EQ(0, tl_live_objects(_lo, sizeof(_lo))) {		\
		TH_LOG("dm_repl is not loaded (DMREPL_KO?)");		\
	}								\
	ASSERT_STREQ("0 0 0", _lo) {					\
		TH_LOG("objects alive before the test");		\
	}								\
} while (0)

/* A fixture teardown: remove everything, then nothing may be left alive. */
#define TL_TEARDOWN(env) do {						\
	char _lo[64] = "";						\
	EXPECT_EQ(0, tl_env_cleanup(env));				\
	EXPECT_EQ(0, tl_live_objects(_lo, sizeof(_lo)));		\
	EXPECT_STREQ("0 0 0", _lo);					\
} while (0)

#endif /* DMREPL_TESTLIB_H */
