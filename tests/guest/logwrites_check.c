// SPDX-License-Identifier: GPL-2.0
/*
 * logwrites_check: the oracle of the apply crash tests (tests/apply-crash.sh,
 * tests/guest/apply-crash.sh). dm-log-writes under the primary records what
 * the primary's disk saw, in the order the disk made it durable; this program
 * replays that log in memory, one flush mark after another, and tells whether
 * a replica image is a state the primary's disk could have been in.
 *
 *   logwrites_check check [-B BS] [-b BASE] [-m MIN_MARK] [-q] LOG IMAGE|HASHFILE...
 *       Classify each image against the log. Mark 0 is BASE (default: all
 *       zeros), mark k the state after the log's k-th FLUSH entry. An image
 *       is
 *         exact      equal to the state at some mark k >= MIN_MARK;
 *         partial    equal to the state at some mark k >= MIN_MARK except
 *                    for blocks that each hold a value that some write of
 *                    epoch k + 1 (the log entries between mark k and mark
 *                    k + 1, or after the last mark) put there: what the
 *                    primary's own disk may hold after a power cut in the
 *                    middle of that epoch;
 *         violation  anything else.
 *       One line per image, then a summary line:
 *         lwcheck: label=L result=R mark=K min_mark=M ...
 *         lwcheck-summary: images=N exact=A partial=P violations=V marks=M ...
 *       Exit 0 when there is no violation, 1 when there is one, 2 on error.
 *
 *   logwrites_check hash [-B BS] [-m MIN_MARK] [-l LABEL] IMAGE OUT
 *       Keep a replica's state for a later check: one 64-bit hash per block
 *       of IMAGE (read with O_DIRECT when it can), with MIN_MARK and LABEL,
 *       into OUT (a few hundred KiB where a copy would take the volume's
 *       size). A hash file given to check uses its own MIN_MARK and LABEL.
 *
 *   logwrites_check info [-v] LOG
 *       What the log holds: entries, writes, flushes, FUA writes, discards,
 *       user marks; -v lists every entry.
 *
 *   logwrites_check replay [-b BASE] [-k MARK] LOG OUT
 *       Write the state at flush mark MARK (default: after every entry) into
 *       the existing file or device OUT (for looking at a violation).
 *
 *   logwrites_check stream-mark STREAM SEQ
 *       In a raw record stream (repltool dump --raw), count the FLUSH records
 *       at or below sequence SEQ: the flush mark a replica whose applied_seq
 *       is SEQ has reached at least, when the primary's FLUSH records and the
 *       log's FLUSH entries correspond one to one. Prints "flushes=N
 *       records=R last_seq=S offset=O", O being the byte offset of the
 *       first record above SEQ (where to resume feeding the stream).
 *
 *   logwrites_check write [-s SEED] [-e EPOCHS] [-M MAX_MB] [-w WRITES]
 *                         [-z MAX_KB] [-p PAUSE_MS] [-F] DEV
 *       The workload of the raw tests: epochs of 1 to WRITES (default 6)
 *       O_DIRECT writes of 4 KiB to MAX_KB (default 64 KiB), some of them
 *       overlapping earlier writes of their epoch, then fsync (a flush), one
 *       writer with one write in flight, so that the primary's epochs and
 *       the log's flush marks are the same. -F makes the first write of
 *       some epochs FUA (O_DSYNC); only the first, because dm-log-writes logs
 *       a FUA write when it completes, ahead of the earlier writes of its
 *       epoch, and an overlap would then be replayed out of order. Every
 *       512-byte sector written carries data no other write has. Stops after
 *       EPOCHS epochs (default: none), MAX_MB MiB written, or at SIGTERM /
 *       SIGINT, always after an epoch's fsync. Prints "writer: epochs=E
 *       writes=W bytes=B fua=F".
 *
 * The dm-log-writes format (drivers/md/dm-log-writes.c, version 1), all
 * little-endian: the log device's first block (of the logged device's
 * logical block size, "sectorsize") is the super: magic, version,
 * nr_entries, sectorsize. Entries follow from byte sectorsize on, each a
 * block holding its header (sector and nr_sectors in sectorsize units,
 * flags, data_len) and, for a MARK, its label after the header; then, unless
 * it is a DISCARD, nr_sectors blocks of the data written. The super is
 * rewritten only after FUA writes and marks, so nr_entries can lag behind:
 * send a mark (dmsetup message LOG 0 mark X) or remove the log-writes device
 * before reading the log. Read it with O_DIRECT (this program does): the
 * target writes it with bios, past the page cache.
 *
 * Discarded blocks are taken to hold anything until written again.
 *
 * The state is a map from block number to a hash of the block's content,
 * updated entry by entry; no mark's image is ever kept. Blocks are BS bytes
 * (-B, default 512); every logged extent must be aligned to BS.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/dm-repl.h>

#define PROG "logwrites_check"

/* dm-log-writes.c, format version 1 */
#define LW_MAGIC		0x6a736677736872ULL
#define LW_VERSION		1ULL
#define LW_FLUSH		(1ULL << 0)
#define LW_FUA			(1ULL << 1)
#define LW_DISCARD		(1ULL << 2)
#define LW_MARK			(1ULL << 3)
#define LW_METADATA		(1ULL << 4)
#define LW_KNOWN_FLAGS		(LW_FLUSH | LW_FUA | LW_DISCARD | LW_MARK | LW_METADATA)
#define LW_HDR_SIZE		32	/* the entry header before a mark's label */

#define IO_ALIGN		4096
#define WINDOW			(1U << 20)	/* log read window */

#define HASH_MAGIC		"LWCHASH1"
#define LABEL_MAX		64
#define WILD			0ULL		/* hash of a discarded block */

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		die("out of memory (%zu bytes)", n);
	return p;
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		die("out of memory (%zu x %zu bytes)", n, size);
	return p;
}

static void *xaligned(size_t n)
{
	void *p;

	if (posix_memalign(&p, IO_ALIGN, n))
		die("out of memory (%zu bytes)", n);
	memset(p, 0, n);
	return p;
}

static uint64_t parse_u64(const char *s, const char *what)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end || *s == '-')
		die("%s: not a number: \"%s\"", what, s);
	return v;
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

/* ---- block hashes ------------------------------------------------------ */

static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* A 64-bit hash of a block's content; never WILD. */
static uint64_t block_hash(const uint8_t *p, size_t len)
{
	uint64_t h = 0x6c6f672d77726974ULL ^ len;

	for (size_t i = 0; i + 8 <= len; i += 8) {
		uint64_t w;

		memcpy(&w, p + i, 8);
		h ^= w * 0x9e3779b97f4a7c15ULL;
		h = ((h << 29) | (h >> 35)) * 0xff51afd7ed558ccdULL;
	}
	h = mix64(h);
	return h == WILD ? 1 : h;
}

/* ---- files -------------------------------------------------------------- */

struct input {
	const char *path;
	int fd;
	bool direct;
	uint64_t size;
	uint8_t *buf;		/* WINDOW bytes, aligned */
	uint64_t buf_off;	/* file offset of buf[0] */
	uint64_t buf_len;	/* valid bytes in buf */
};

static uint64_t fd_size(int fd, const char *path)
{
	struct stat st;
	uint64_t bytes;

	if (fstat(fd, &st))
		die("%s: %s", path, strerror(errno));
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &bytes))
			die("%s: BLKGETSIZE64: %s", path, strerror(errno));
		return bytes;
	}
	return (uint64_t)st.st_size;
}

/* Open for reading, with O_DIRECT when the file system takes it. */
static void input_open(struct input *in, const char *path)
{
	memset(in, 0, sizeof(*in));
	in->path = path;
	in->fd = open(path, O_RDONLY | O_DIRECT);
	in->direct = in->fd >= 0;
	if (in->fd < 0)
		in->fd = open(path, O_RDONLY);
	if (in->fd < 0)
		die("%s: %s", path, strerror(errno));
	in->size = fd_size(in->fd, path);
	in->buf = xaligned(WINDOW);
}

static void input_close(struct input *in)
{
	close(in->fd);
	free(in->buf);
}

/* Load the aligned window holding offset off. */
static void input_window(struct input *in, uint64_t off)
{
	uint64_t start = off & ~(uint64_t)(IO_ALIGN - 1);
	uint64_t want = WINDOW;
	ssize_t n;

	if (start >= in->size)
		die("%s: read past its end (offset %" PRIu64 ")", in->path, off);
	if (want > in->size - start)
		want = in->size - start;
	/* O_DIRECT wants whole aligned blocks; the size of a device is. */
	want = (want + IO_ALIGN - 1) & ~(uint64_t)(IO_ALIGN - 1);
	do {
		n = pread(in->fd, in->buf, want, (off_t)start);
	} while (n < 0 && errno == EINTR);
	if (n < 0 && in->direct && errno == EINVAL) {
		/* Not alignable after all: drop O_DIRECT. */
		int fd = open(in->path, O_RDONLY);

		if (fd < 0)
			die("%s: %s", in->path, strerror(errno));
		close(in->fd);
		in->fd = fd;
		in->direct = false;
		n = pread(in->fd, in->buf, want, (off_t)start);
	}
	if (n < 0)
		die("%s: read at %" PRIu64 ": %s", in->path, start, strerror(errno));
	in->buf_off = start;
	in->buf_len = (uint64_t)n;
	if (in->buf_len > in->size - start)
		in->buf_len = in->size - start;
}

/* Copy len bytes at off into dst; a short file is an error. */
static void input_read(struct input *in, uint64_t off, void *dst, uint64_t len)
{
	uint8_t *d = dst;

	if (off > in->size || len > in->size - off)
		die("%s: truncated: %" PRIu64 " bytes at %" PRIu64 " past its end (%" PRIu64 ")",
		    in->path, len, off, in->size);
	while (len) {
		uint64_t n;

		if (off < in->buf_off || off >= in->buf_off + in->buf_len)
			input_window(in, off);
		if (off < in->buf_off || off >= in->buf_off + in->buf_len)
			die("%s: short read at %" PRIu64, in->path, off);
		n = in->buf_off + in->buf_len - off;
		if (n > len)
			n = len;
		memcpy(d, in->buf + (off - in->buf_off), n);
		d += n;
		off += n;
		len -= n;
	}
}

/* ---- the log ------------------------------------------------------------ */

struct lw_entry {
	uint64_t sector;	/* in sectorsize units */
	uint64_t nr_sectors;
	uint64_t flags;
	uint64_t data_len;
	char label[LABEL_MAX + 1];	/* a MARK's */
	uint64_t data_off;	/* where its data starts in the log */
};

struct lw_log {
	struct input in;
	uint64_t nr_entries;
	uint32_t sectorsize;
	uint64_t next_off;	/* where the next entry's header is */
	uint64_t index;		/* entries read so far */
};

static void log_open(struct lw_log *log, const char *path)
{
	uint8_t sb[32];

	input_open(&log->in, path);
	input_read(&log->in, 0, sb, sizeof(sb));
	if (get_le64(sb) != LW_MAGIC)
		die("%s: not a dm-log-writes log (bad magic)", path);
	if (get_le64(sb + 8) != LW_VERSION)
		die("%s: log format version %" PRIu64 ", this program reads %llu", path,
		    get_le64(sb + 8), LW_VERSION);
	log->nr_entries = get_le64(sb + 16);
	log->sectorsize = get_le32(sb + 24);
	if (log->sectorsize < 512 || log->sectorsize > 65536 ||
	    (log->sectorsize & (log->sectorsize - 1)))
		die("%s: bad sector size %u in the log's super", path, log->sectorsize);
	log->next_off = log->sectorsize;
	log->index = 0;
}

/* Read the next entry's header; false at the end of the log. */
static bool log_next(struct lw_log *log, struct lw_entry *e)
{
	uint8_t hdr[LW_HDR_SIZE + LABEL_MAX];
	uint64_t hdr_len = sizeof(hdr);

	if (log->index >= log->nr_entries)
		return false;
	if (hdr_len > log->sectorsize)
		hdr_len = log->sectorsize;
	memset(hdr, 0, sizeof(hdr));
	input_read(&log->in, log->next_off, hdr, hdr_len);
	e->sector = get_le64(hdr);
	e->nr_sectors = get_le64(hdr + 8);
	e->flags = get_le64(hdr + 16);
	e->data_len = get_le64(hdr + 24);
	e->label[0] = 0;
	if (e->flags & ~LW_KNOWN_FLAGS)
		die("%s: entry %" PRIu64 " at byte %" PRIu64 ": unknown flags %#" PRIx64,
		    log->in.path, log->index, log->next_off, e->flags);
	if (e->flags & LW_MARK) {
		uint64_t n = e->data_len;

		if (n > hdr_len - LW_HDR_SIZE)
			n = hdr_len - LW_HDR_SIZE;
		memcpy(e->label, hdr + LW_HDR_SIZE, n);
		e->label[n] = 0;
	} else if (!e->nr_sectors && !(e->flags & LW_FLUSH)) {
		die("%s: entry %" PRIu64 " at byte %" PRIu64 ": empty and not a flush",
		    log->in.path, log->index, log->next_off);
	}
	if (e->nr_sectors > (UINT64_MAX >> 20))
		die("%s: entry %" PRIu64 ": absurd length", log->in.path, log->index);
	e->data_off = log->next_off + log->sectorsize;
	log->next_off = e->data_off;
	if (!(e->flags & (LW_DISCARD | LW_MARK)))
		log->next_off += e->nr_sectors * log->sectorsize;
	log->index++;
	return true;
}

static bool entry_has_data(const struct lw_entry *e)
{
	return !(e->flags & (LW_DISCARD | LW_MARK)) && e->nr_sectors;
}

/* ---- the state ---------------------------------------------------------- */

/* One image (a replica) under classification. */
struct image {
	char label[LABEL_MAX + 1];
	const char *path;
	uint64_t *h;		/* per-block hashes */
	int64_t min_mark;
	uint64_t diff;		/* blocks where the state does not match it now */
	uint64_t diff_mark;	/* ... at the last mark */
	uint64_t explained;	/* of those, blocks written to its value since */
	/* results, over marks >= min_mark */
	int64_t exact_first, exact_last;
	uint64_t exact_count;
	int64_t partial_first, partial_last;
	uint64_t partial_count, partial_blocks;
	/* the closest miss, for a violation */
	int64_t best_mark;
	uint64_t best_diff, best_unexplained;
};

/* Values written to a block during the current epoch: a linked list. */
struct vnode {
	uint64_t v;
	int32_t next;
};

struct state {
	uint64_t nblocks;
	uint32_t bs;
	uint64_t *cur;		/* hash of each block now */
	uint64_t *at_mark;	/* of each block touched this epoch, at the mark */
	uint32_t *stamp;	/* epoch in which at_mark/head are valid */
	int32_t *head;
	struct vnode *pool;
	size_t pool_len, pool_cap;
	uint32_t epoch;		/* 1 + the current mark */
	int64_t mark;		/* flush marks passed */
	struct image *img;
	size_t nimg;
};

static bool matches(uint64_t state, uint64_t replica)
{
	return state == WILD || state == replica;
}

static void mark_reached(struct state *st)
{
	for (size_t i = 0; i < st->nimg; i++) {
		struct image *im = &st->img[i];

		if (st->mark < im->min_mark)
			goto next;
		if (im->diff == 0) {
			if (!im->exact_count)
				im->exact_first = st->mark;
			im->exact_last = st->mark;
			im->exact_count++;
		}
next:
		im->diff_mark = im->diff;
		im->explained = 0;
	}
	st->epoch++;
	st->pool_len = 0;
}

/* The epoch after mark st->mark ends (at the next mark or the log's end). */
static void epoch_ended(struct state *st)
{
	for (size_t i = 0; i < st->nimg; i++) {
		struct image *im = &st->img[i];
		uint64_t unexplained = im->diff_mark - im->explained;

		if (st->mark < im->min_mark)
			continue;
		if (im->diff_mark && !unexplained) {
			if (!im->partial_count)
				im->partial_first = st->mark;
			im->partial_last = st->mark;
			im->partial_count++;
			im->partial_blocks = im->diff_mark;
		}
		if (im->best_mark < 0 || unexplained < im->best_unexplained ||
		    (unexplained == im->best_unexplained && im->diff_mark <= im->best_diff)) {
			im->best_mark = st->mark;
			im->best_diff = im->diff_mark;
			im->best_unexplained = unexplained;
		}
	}
}

static void state_write(struct state *st, uint64_t b, uint64_t v)
{
	uint64_t old = st->cur[b];
	bool seen = false;

	if (st->stamp[b] != st->epoch) {
		st->stamp[b] = st->epoch;
		st->at_mark[b] = old;
		st->head[b] = -1;
	}
	for (int32_t n = st->head[b]; n >= 0; n = st->pool[n].next) {
		if (st->pool[n].v == v) {
			seen = true;
			break;
		}
	}
	if (!seen) {
		for (size_t i = 0; i < st->nimg; i++) {
			uint64_t r = st->img[i].h[b];
			bool before = false;

			if (!matches(v, r) || matches(st->at_mark[b], r))
				continue;
			for (int32_t n = st->head[b]; n >= 0; n = st->pool[n].next) {
				if (matches(st->pool[n].v, r)) {
					before = true;
					break;
				}
			}
			if (!before)
				st->img[i].explained++;
		}
		if (st->pool_len == st->pool_cap) {
			st->pool_cap = st->pool_cap ? 2 * st->pool_cap : 4096;
			st->pool = realloc(st->pool, st->pool_cap * sizeof(*st->pool));
			if (!st->pool)
				die("out of memory");
		}
		st->pool[st->pool_len] = (struct vnode){ .v = v, .next = st->head[b] };
		st->head[b] = (int32_t)st->pool_len++;
	}
	if (old == v)
		return;
	for (size_t i = 0; i < st->nimg; i++) {
		uint64_t r = st->img[i].h[b];

		st->img[i].diff -= !matches(old, r);
		st->img[i].diff += !matches(v, r);
	}
	st->cur[b] = v;
}

/* ---- hashing an image --------------------------------------------------- */

struct hash_hdr {
	char magic[8];
	uint32_t bs;
	uint32_t reserved;
	uint64_t nblocks;
	int64_t min_mark;
	char label[LABEL_MAX];
};

/* Hash every block of path; *nblocks in, or 0 to take the file's size. */
static uint64_t *hash_image(const char *path, uint32_t bs, uint64_t *nblocks)
{
	struct input in;
	uint8_t *blk = xmalloc(bs);
	uint64_t *h, n;

	input_open(&in, path);
	if (in.size % bs)
		die("%s: %" PRIu64 " bytes, not a multiple of the block size %u", path,
		    in.size, bs);
	n = in.size / bs;
	if (*nblocks && n != *nblocks)
		die("%s: %" PRIu64 " blocks of %u bytes, the volume has %" PRIu64, path, n,
		    bs, *nblocks);
	*nblocks = n;
	h = xcalloc(n, sizeof(*h));
	for (uint64_t b = 0; b < n; b++) {
		input_read(&in, b * bs, blk, bs);
		h[b] = block_hash(blk, bs);
	}
	input_close(&in);
	free(blk);
	return h;
}

/* A block device is an image: never read one through the page cache. */
static bool is_hash_file(const char *path)
{
	char magic[8];
	struct stat st;
	FILE *f;
	bool yes;

	if (stat(path, &st) || !S_ISREG(st.st_mode))
		return false;
	f = fopen(path, "rb");
	if (!f)
		return false;
	yes = fread(magic, 1, sizeof(magic), f) == sizeof(magic) &&
	      !memcmp(magic, HASH_MAGIC, sizeof(magic));
	fclose(f);
	return yes;
}

static void load_hash_file(const char *path, struct image *im, uint32_t bs,
			   uint64_t *nblocks)
{
	struct hash_hdr hdr;
	FILE *f = fopen(path, "rb");

	if (!f)
		die("%s: %s", path, strerror(errno));
	if (fread(&hdr, sizeof(hdr), 1, f) != 1)
		die("%s: truncated hash file", path);
	if (hdr.bs != bs)
		die("%s: made with block size %u, checking with %u (-B)", path, hdr.bs, bs);
	if (*nblocks && hdr.nblocks != *nblocks)
		die("%s: %" PRIu64 " blocks, the volume has %" PRIu64, path, hdr.nblocks,
		    *nblocks);
	*nblocks = hdr.nblocks;
	im->h = xcalloc(hdr.nblocks, sizeof(uint64_t));
	if (fread(im->h, sizeof(uint64_t), hdr.nblocks, f) != hdr.nblocks)
		die("%s: truncated hash file", path);
	fclose(f);
	im->min_mark = hdr.min_mark;
	memcpy(im->label, hdr.label, LABEL_MAX);
	im->label[LABEL_MAX] = 0;
}

static int cmd_hash(int argc, char **argv)
{
	struct hash_hdr hdr = { .magic = HASH_MAGIC };
	uint32_t bs = 512;
	int64_t min_mark = 0;
	const char *label = NULL;
	uint64_t nblocks = 0, *h;
	FILE *f;
	int opt;

	while ((opt = getopt(argc, argv, "B:m:l:")) != -1) {
		switch (opt) {
		case 'B': bs = (uint32_t)parse_u64(optarg, "-B"); break;
		case 'm': min_mark = (int64_t)parse_u64(optarg, "-m"); break;
		case 'l': label = optarg; break;
		default: return 2;
		}
	}
	if (argc - optind != 2)
		die("usage: hash [-B BS] [-m MIN_MARK] [-l LABEL] IMAGE OUT");
	if (bs < 512 || (bs & (bs - 1)) || bs > (1U << 20))
		die("-B: a power of two from 512 to 1 MiB");
	h = hash_image(argv[optind], bs, &nblocks);
	hdr.bs = bs;
	hdr.nblocks = nblocks;
	hdr.min_mark = min_mark;
	snprintf(hdr.label, sizeof(hdr.label), "%s", label ? label : argv[optind]);
	f = fopen(argv[optind + 1], "wb");
	if (!f)
		die("%s: %s", argv[optind + 1], strerror(errno));
	if (fwrite(&hdr, sizeof(hdr), 1, f) != 1 ||
	    fwrite(h, sizeof(*h), nblocks, f) != nblocks || fclose(f))
		die("%s: write failed", argv[optind + 1]);
	free(h);
	return 0;
}

/* ---- check -------------------------------------------------------------- */

static void classify_print(const struct image *im, uint64_t marks, bool quiet,
			   uint64_t *exact, uint64_t *partial, uint64_t *bad)
{
	if (im->exact_count) {
		(*exact)++;
		printf("lwcheck: label=%s result=exact mark=%" PRId64 " min_mark=%" PRId64
		       " matching_marks=%" PRIu64 " first=%" PRId64 "\n",
		       im->label, im->exact_last, im->min_mark, im->exact_count,
		       im->exact_first);
	} else if (im->partial_count) {
		(*partial)++;
		printf("lwcheck: label=%s result=partial mark=%" PRId64 " min_mark=%" PRId64
		       " blocks_of_next_epoch=%" PRIu64 "\n",
		       im->label, im->partial_last, im->min_mark, im->partial_blocks);
	} else {
		(*bad)++;
		printf("lwcheck: label=%s result=violation min_mark=%" PRId64
		       " closest_mark=%" PRId64 " differ=%" PRIu64 " unexplained=%" PRIu64
		       " marks=%" PRIu64 "\n",
		       im->label, im->min_mark, im->best_mark, im->best_diff,
		       im->best_unexplained, marks);
		if (!quiet && im->best_mark >= 0)
			printf("  %s: no flush mark >= %" PRId64 " explains it; at mark %" PRId64
			       ", %" PRIu64 " blocks differ and %" PRIu64
			       " of them hold a value no write of the next epoch wrote\n",
			       im->label, im->min_mark, im->best_mark, im->best_diff,
			       im->best_unexplained);
		else if (!quiet)
			printf("  %s: min_mark %" PRId64 " is past the log's %" PRIu64 " marks\n",
			       im->label, im->min_mark, marks);
	}
}

static int cmd_check(int argc, char **argv)
{
	struct state st = { .bs = 512, .epoch = 1 };
	const char *base = NULL;
	int64_t min_mark = 0;
	bool quiet = false;
	struct lw_log log;
	struct lw_entry e;
	uint8_t *data;
	uint64_t *base_h = NULL, zero_h;
	uint64_t entries = 0, writes = 0, flushes = 0, fua = 0, discards = 0, marks = 0;
	uint64_t exact = 0, partial = 0, bad = 0;
	uint32_t per;
	int opt;

	while ((opt = getopt(argc, argv, "B:b:m:q")) != -1) {
		switch (opt) {
		case 'B': st.bs = (uint32_t)parse_u64(optarg, "-B"); break;
		case 'b': base = optarg; break;
		case 'm': min_mark = (int64_t)parse_u64(optarg, "-m"); break;
		case 'q': quiet = true; break;
		default: return 2;
		}
	}
	if (argc - optind < 2)
		die("usage: check [-B BS] [-b BASE] [-m MIN_MARK] [-q] LOG IMAGE|HASHFILE...");
	if (st.bs < 512 || (st.bs & (st.bs - 1)) || st.bs > (1U << 20))
		die("-B: a power of two from 512 to 1 MiB");

	log_open(&log, argv[optind]);
	if (st.bs % log.sectorsize)
		die("-B %u is not a multiple of the log's sector size %u", st.bs,
		    log.sectorsize);
	per = st.bs / log.sectorsize;

	if (base)
		base_h = hash_image(base, st.bs, &st.nblocks);
	st.nimg = (size_t)(argc - optind - 1);
	st.img = xcalloc(st.nimg, sizeof(*st.img));
	for (size_t i = 0; i < st.nimg; i++) {
		struct image *im = &st.img[i];
		const char *path = argv[optind + 1 + i];

		im->path = path;
		im->best_mark = -1;
		if (is_hash_file(path)) {
			load_hash_file(path, im, st.bs, &st.nblocks);
		} else {
			im->h = hash_image(path, st.bs, &st.nblocks);
			im->min_mark = min_mark;
			snprintf(im->label, sizeof(im->label), "%s", path);
		}
	}

	st.cur = xcalloc(st.nblocks, sizeof(uint64_t));
	st.at_mark = xcalloc(st.nblocks, sizeof(uint64_t));
	st.stamp = xcalloc(st.nblocks, sizeof(uint32_t));
	st.head = xcalloc(st.nblocks, sizeof(int32_t));
	data = xmalloc(st.bs);
	memset(data, 0, st.bs);
	zero_h = block_hash(data, st.bs);
	for (uint64_t b = 0; b < st.nblocks; b++)
		st.cur[b] = base_h ? base_h[b] : zero_h;
	free(base_h);
	for (size_t i = 0; i < st.nimg; i++)
		for (uint64_t b = 0; b < st.nblocks; b++)
			st.img[i].diff += !matches(st.cur[b], st.img[i].h[b]);

	/* Mark 0: the base. */
	st.mark = 0;
	mark_reached(&st);

	while (log_next(&log, &e)) {
		entries++;
		if (e.flags & LW_MARK) {
			marks++;
			continue;
		}
		if (e.flags & LW_FLUSH) {
			/*
			 * A flush (REQ_PREFLUSH) makes what completed before it
			 * durable; data it carries is written after the flush,
			 * so it belongs to the next epoch.
			 */
			flushes++;
			epoch_ended(&st);
			st.mark++;
			mark_reached(&st);
		}
		if (e.flags & LW_FUA)
			fua++;
		if (!e.nr_sectors)
			continue;
		if (e.sector % per || e.nr_sectors % per)
			die("entry %" PRIu64 " (sector %" PRIu64 ", %" PRIu64
			    " sectors of %u bytes) is not aligned to -B %u; use a smaller -B",
			    entries - 1, e.sector, e.nr_sectors, log.sectorsize, st.bs);
		if ((e.sector + e.nr_sectors) / per > st.nblocks)
			die("entry %" PRIu64 " ends past the volume's %" PRIu64 " blocks",
			    entries - 1, st.nblocks);
		if (e.flags & LW_DISCARD) {
			discards++;
			for (uint64_t b = e.sector / per; b < (e.sector + e.nr_sectors) / per; b++)
				state_write(&st, b, WILD);
			continue;
		}
		writes++;
		for (uint64_t i = 0; i < e.nr_sectors / per; i++) {
			input_read(&log.in, e.data_off + i * st.bs, data, st.bs);
			state_write(&st, e.sector / per + i, block_hash(data, st.bs));
		}
	}
	/* The writes after the last flush: a partial epoch at most. */
	epoch_ended(&st);

	for (size_t i = 0; i < st.nimg; i++)
		classify_print(&st.img[i], (uint64_t)st.mark, quiet, &exact, &partial, &bad);
	printf("lwcheck-summary: images=%zu exact=%" PRIu64 " partial=%" PRIu64
	       " violations=%" PRIu64 " marks=%" PRId64 " entries=%" PRIu64 " writes=%" PRIu64
	       " flushes=%" PRIu64 " fua=%" PRIu64 " discards=%" PRIu64 " user_marks=%" PRIu64
	       " blocks=%" PRIu64 " block_size=%u\n",
	       st.nimg, exact, partial, bad, st.mark, entries, writes, flushes, fua, discards,
	       marks, st.nblocks, st.bs);
	for (size_t i = 0; i < st.nimg; i++)
		free(st.img[i].h);
	free(st.img);
	free(st.cur);
	free(st.at_mark);
	free(st.stamp);
	free(st.head);
	free(st.pool);
	free(data);
	input_close(&log.in);
	return bad ? 1 : 0;
}

/* ---- info, replay --------------------------------------------------------- */

static int cmd_info(int argc, char **argv)
{
	bool verbose = false;
	struct lw_log log;
	struct lw_entry e;
	uint64_t writes = 0, flushes = 0, fua = 0, discards = 0, marks = 0, bytes = 0;
	int opt;

	while ((opt = getopt(argc, argv, "v")) != -1) {
		if (opt != 'v')
			return 2;
		verbose = true;
	}
	if (argc - optind != 1)
		die("usage: info [-v] LOG");
	log_open(&log, argv[optind]);
	while (log_next(&log, &e)) {
		if (verbose)
			printf("%" PRIu64 ": %s%s%s%s%s sector=%" PRIu64 " nr=%" PRIu64 "%s%s\n",
			       log.index - 1, e.flags & LW_FLUSH ? "FLUSH " : "",
			       e.flags & LW_FUA ? "FUA " : "",
			       e.flags & LW_DISCARD ? "DISCARD " : "",
			       e.flags & LW_MARK ? "MARK " : "",
			       e.flags & LW_METADATA ? "META " : "", e.sector, e.nr_sectors,
			       e.flags & LW_MARK ? " label=" : "", e.label);
		if (e.flags & LW_MARK) {
			marks++;
			continue;
		}
		flushes += !!(e.flags & LW_FLUSH);
		fua += !!(e.flags & LW_FUA);
		if (e.flags & LW_DISCARD)
			discards++;
		else if (e.nr_sectors) {
			writes++;
			bytes += e.nr_sectors * log.sectorsize;
		}
	}
	printf("log: entries=%" PRIu64 " sectorsize=%u writes=%" PRIu64 " bytes=%" PRIu64
	       " flushes=%" PRIu64 " fua=%" PRIu64 " discards=%" PRIu64 " user_marks=%" PRIu64
	       " log_bytes=%" PRIu64 "\n",
	       log.nr_entries, log.sectorsize, writes, bytes, flushes, fua, discards, marks,
	       log.next_off);
	input_close(&log.in);
	return 0;
}

static int cmd_replay(int argc, char **argv)
{
	const char *base = NULL;
	int64_t upto = -1, mark = 0;
	struct lw_log log;
	struct lw_entry e;
	uint8_t *buf;
	uint64_t size;
	int opt, fd;

	while ((opt = getopt(argc, argv, "b:k:")) != -1) {
		switch (opt) {
		case 'b': base = optarg; break;
		case 'k': upto = (int64_t)parse_u64(optarg, "-k"); break;
		default: return 2;
		}
	}
	if (argc - optind != 2)
		die("usage: replay [-b BASE] [-k MARK] LOG OUT");
	log_open(&log, argv[optind]);
	fd = open(argv[optind + 1], O_WRONLY);
	if (fd < 0)
		die("%s: %s", argv[optind + 1], strerror(errno));
	size = fd_size(fd, argv[optind + 1]);
	buf = xaligned(WINDOW);
	/* Start from BASE, or zeros. */
	for (uint64_t off = 0; off < size; off += WINDOW) {
		uint64_t n = size - off < WINDOW ? size - off : WINDOW;

		if (base) {
			struct input in;

			input_open(&in, base);
			input_read(&in, off, buf, n);
			input_close(&in);
		}
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
			die("%s: write: %s", argv[optind + 1], strerror(errno));
	}
	/* Mark k: the entries before the k-th FLUSH entry. */
	while (mark != upto && log_next(&log, &e)) {
		if (e.flags & LW_FLUSH) {
			mark++;
			if (mark == upto)
				break;	/* its data is the next epoch's */
		}
		if (!entry_has_data(&e) && !(e.flags & LW_DISCARD))
			continue;
		for (uint64_t done = 0; done < e.nr_sectors * log.sectorsize; done += WINDOW) {
			uint64_t n = e.nr_sectors * log.sectorsize - done;
			uint64_t off = e.sector * log.sectorsize + done;

			if (n > WINDOW)
				n = WINDOW;
			if (e.flags & LW_DISCARD)
				memset(buf, 0, n);
			else
				input_read(&log.in, e.data_off + done, buf, n);
			if (off + n > size)
				die("entry %" PRIu64 " ends past %s", log.index - 1, argv[optind + 1]);
			if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
				die("%s: write: %s", argv[optind + 1], strerror(errno));
		}
	}
	if (upto >= 0 && mark != upto)
		die("the log has %" PRId64 " flush marks, not %" PRId64, mark, upto);
	if (fsync(fd) && errno != EINVAL)
		die("%s: fsync: %s", argv[optind + 1], strerror(errno));
	close(fd);
	free(buf);
	input_close(&log.in);
	printf("replay: mark=%" PRId64 "\n", mark);
	return 0;
}

/* ---- stream-mark ---------------------------------------------------------- */

static int cmd_stream_mark(int argc, char **argv)
{
	struct dm_repl_rec r;
	uint64_t seq, flushes = 0, records = 0, last = 0, off = 0, next = UINT64_MAX;
	FILE *f;

	if (argc != 3)
		die("usage: stream-mark STREAM SEQ");
	seq = parse_u64(argv[2], "SEQ");
	f = fopen(argv[1], "rb");
	if (!f)
		die("%s: %s", argv[1], strerror(errno));
	while (fread(&r, sizeof(r), 1, f) == 1) {
		uint32_t len = le32toh(r.len);

		if (le32toh(r.magic) != DM_REPL_REC_MAGIC || len < sizeof(r) ||
		    len % DM_REPL_REC_ALIGN)
			die("%s: no record at byte %" PRIu64, argv[1], off);
		records++;
		last = le64toh(r.seq);
		if (last > seq && next == UINT64_MAX)
			next = off;
		if (last <= seq && le16toh(r.type) == DM_REPL_REC_FLUSH)
			flushes++;
		if (fseeko(f, (off_t)(len - sizeof(r)), SEEK_CUR))
			die("%s: %s", argv[1], strerror(errno));
		off += len;
	}
	fclose(f);
	printf("flushes=%" PRIu64 " records=%" PRIu64 " last_seq=%" PRIu64 " offset=%" PRIu64 "\n",
	       flushes, records, last, next == UINT64_MAX ? off : next);
	return 0;
}

/* ---- write ---------------------------------------------------------------- */

static volatile sig_atomic_t stop;

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

static int cmd_write(int argc, char **argv)
{
	uint64_t seed = 1, epochs = 0, max_bytes = 0, rng;
	uint64_t max_writes = 6, max_kb = 64, pause_ms = 0;
	uint64_t n_epochs = 0, n_writes = 0, n_bytes = 0, n_fua = 0, serial = 0;
	bool use_fua = false;
	uint64_t size, units, max_units;
	struct sigaction sa = { .sa_handler = on_stop };
	uint8_t *buf;
	int opt, fd, fd_fua = -1;

	while ((opt = getopt(argc, argv, "s:e:M:w:z:p:F")) != -1) {
		switch (opt) {
		case 's': seed = parse_u64(optarg, "-s"); break;
		case 'e': epochs = parse_u64(optarg, "-e"); break;
		case 'M': max_bytes = parse_u64(optarg, "-M") << 20; break;
		case 'w': max_writes = parse_u64(optarg, "-w"); break;
		case 'z': max_kb = parse_u64(optarg, "-z"); break;
		case 'p': pause_ms = parse_u64(optarg, "-p"); break;
		case 'F': use_fua = true; break;
		default: return 2;
		}
	}
	if (argc - optind != 1)
		die("usage: write [-s SEED] [-e EPOCHS] [-M MAX_MB] [-w WRITES] [-z MAX_KB] [-p PAUSE_MS] [-F] DEV");
	if (!max_writes || max_kb < 4 || max_kb > 1024)
		die("-w at least 1, -z from 4 to 1024");
	fd = open(argv[optind], O_WRONLY | O_DIRECT);
	if (fd < 0)
		die("%s: %s", argv[optind], strerror(errno));
	if (use_fua) {
		fd_fua = open(argv[optind], O_WRONLY | O_DIRECT | O_DSYNC);
		if (fd_fua < 0)
			die("%s: %s", argv[optind], strerror(errno));
	}
	size = fd_size(fd, argv[optind]);
	units = size / 4096;
	max_units = max_kb / 4;
	if (units < max_units)
		die("%s: smaller than one write", argv[optind]);
	buf = xaligned(max_units * 4096);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	rng = mix64(seed);

	while (!stop && (!epochs || n_epochs < epochs) && (!max_bytes || n_bytes < max_bytes)) {
		uint64_t nw = 1 + mix64(rng++) % max_writes;
		uint64_t prev_off = 0, prev_len = 0;

		for (uint64_t w = 0; w < nw; w++) {
			uint64_t len = 4096 * (1 + mix64(rng++) % max_units);
			uint64_t off = 4096 * (mix64(rng++) % (units - len / 4096 + 1));
			bool fua = use_fua && w == 0 && mix64(rng++) % 4 == 0;

			/* A third of the later writes overlap the previous one. */
			if (w && mix64(rng++) % 3 == 0) {
				off = prev_off + 4096 * (mix64(rng++) % (prev_len / 4096));
				if (off + len > units * 4096)
					off = units * 4096 - len;
			}
			serial++;
			for (uint64_t s = 0; s < len / 512; s++) {
				/* Sector s of write number serial: unique content. */
				uint64_t x = mix64(seed ^ mix64(serial)) + s;

				for (uint64_t i = 0; i < 512; i += 8) {
					uint64_t v = mix64(x + i);

					memcpy(buf + s * 512 + i, &v, 8);
				}
			}
			if (pwrite(fua ? fd_fua : fd, buf, len, (off_t)off) != (ssize_t)len)
				die("%s: write of %" PRIu64 " bytes at %" PRIu64 ": %s", argv[optind],
				    len, off, strerror(errno));
			n_writes++;
			n_fua += fua;
			n_bytes += len;
			prev_off = off;
			prev_len = len;
		}
		if (fsync(fd))
			die("%s: fsync: %s", argv[optind], strerror(errno));
		n_epochs++;
		if (pause_ms) {
			struct timespec ts = { (time_t)(pause_ms / 1000),
					       (long)(pause_ms % 1000) * 1000000L };

			nanosleep(&ts, NULL);
		}
	}
	printf("writer: epochs=%" PRIu64 " writes=%" PRIu64 " bytes=%" PRIu64 " fua=%" PRIu64 "\n",
	       n_epochs, n_writes, n_bytes, n_fua);
	close(fd);
	if (fd_fua >= 0)
		close(fd_fua);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "check", cmd_check }, { "hash", cmd_hash }, { "info", cmd_info },
		{ "replay", cmd_replay }, { "stream-mark", cmd_stream_mark },
		{ "write", cmd_write },
	};

	if (argc < 2) {
		fprintf(stderr, "usage: " PROG " check|hash|info|replay|stream-mark|write ... (see the source's head)\n");
		return 2;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, PROG ": unknown command \"%s\"\n", argv[1]);
	return 2;
}
