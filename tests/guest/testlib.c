// SPDX-License-Identifier: GPL-2.0
/*
 * Shared helpers of the guest kselftest-harness tests: see testlib.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"

#define LIVE_OBJECTS "/sys/module/dm_repl/parameters/live_objects"
#define IO_CHUNK (1U << 20)

/* ---- commands ----------------------------------------------------------- */

static int vformat(char *buf, size_t len, const char *fmt, va_list ap)
{
	int n = vsnprintf(buf, len, fmt, ap);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int exit_status(int status)
{
	if (status == -1)
		return -1;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

int tl_run(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vformat(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (r)
		return -1;
	fflush(NULL);
	return exit_status(system(cmd));
}

static void *bg_run(void *arg)
{
	struct tl_bg *b = arg;

	b->status = tl_run("%s", b->cmd);
	return NULL;
}

int tl_bg_start(struct tl_bg *b, const char *fmt, ...)
{
	va_list ap;
	int r;

	memset(b, 0, sizeof(*b));
	va_start(ap, fmt);
	r = vformat(b->cmd, sizeof(b->cmd), fmt, ap);
	va_end(ap);
	if (!r)
		r = -pthread_create(&b->thread, NULL, bg_run, b);
	b->started = !r;
	return r;
}

bool tl_bg_wait(struct tl_bg *b, int secs)
{
	struct timespec until;

	if (!b->started || b->ended)
		return b->ended;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += secs;
	b->ended = !pthread_timedjoin_np(b->thread, NULL, &until);
	return b->ended;
}

int tl_run_out(char *out, size_t len, const char *fmt, ...)
{
	char cmd[4096];
	size_t n = 0;
	va_list ap;
	FILE *p;
	int r;

	va_start(ap, fmt);
	r = vformat(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (r || !len)
		return -1;
	fflush(NULL);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	while (n + 1 < len) {
		size_t got = fread(out + n, 1, len - 1 - n, p);

		if (!got)
			break;
		n += got;
	}
	/* Drain what did not fit so that the command is not killed by SIGPIPE. */
	while (fgetc(p) != EOF)
		;
	out[n] = 0;
	while (n && out[n - 1] == '\n')
		out[--n] = 0;
	return exit_status(pclose(p));
}

pid_t tl_spawn(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	pid_t pid;
	int r;

	va_start(ap, fmt);
	r = vformat(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (r)
		return -1;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		setpgid(0, 0);	/* its own group: kill(-pid) stops it all */
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* ---- the environment ----------------------------------------------------- */

void tl_env_init(struct tl_env *e)
{
	static bool loop_loaded;
	int i;

	/* The guest loads dm and dm-repl; loop is ours to load. */
	if (!loop_loaded && !tl_run("modprobe loop"))
		loop_loaded = true;

	memset(e, 0, sizeof(*e));
	for (i = 0; i < TL_MAX_FDS; i++)
		e->fds[i] = -1;
}

int tl_env_track_fd(struct tl_env *e, int fd)
{
	int i;

	if (fd < 0)
		return fd;
	for (i = 0; i < TL_MAX_FDS; i++)
		if (e->fds[i] < 0) {
			e->fds[i] = fd;
			return fd;
		}
	fprintf(stderr, "# testlib: too many fds to track\n");
	return fd;
}

void tl_env_close_fd(struct tl_env *e, int fd)
{
	int i;

	for (i = 0; i < TL_MAX_FDS; i++)
		if (e->fds[i] == fd)
			e->fds[i] = -1;
	close(fd);
}

static int loop_destroy(const char *dev, const char *file)
{
	int bad = 0;

	if (dev[0] && tl_run("losetup -d %s", dev)) {
		fprintf(stderr, "# testlib: losetup -d %s failed\n", dev);
		bad++;
	}
	if (file[0])
		unlink(file);
	return bad;
}

int tl_env_cleanup(struct tl_env *e)
{
	int bad = 0, i;

	for (i = 0; i < TL_MAX_RINGS; i++)
		if (e->rings[i]) {
			dmrepl_ring_close(e->rings[i]);
			e->rings[i] = NULL;
		}
	for (i = 0; i < TL_MAX_FDS; i++)
		if (e->fds[i] >= 0) {
			close(e->fds[i]);
			e->fds[i] = -1;
		}
	while (e->ndms > 0) {
		const char *name = e->dm_name[e->ndms - 1];

		if (tl_run("dmsetup remove --retry %s", name)) {
			fprintf(stderr, "# testlib: dmsetup remove %s failed\n", name);
			bad++;
		}
		tl_run("rm -f /dev/mapper/%s", name);
		e->ndms--;
	}
	while (e->nloops > 0) {
		e->nloops--;
		bad += loop_destroy(e->loop_dev[e->nloops], e->loop_file[e->nloops]);
	}
	return bad;
}

/* ---- devices -------------------------------------------------------------- */

int tl_loop_create(struct tl_env *e, unsigned int mb, char *dev, size_t len)
{
	char file[TL_NAME_LEN] = "/tmp/dmrepl-loop.XXXXXX";
	char out[TL_NAME_LEN];
	int fd;

	if (e->nloops >= TL_MAX_LOOPS)
		return -ENOSPC;
	fd = mkstemp(file);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)mb << 20)) {
		int err = -errno;

		close(fd);
		unlink(file);
		return err;
	}
	close(fd);
	if (tl_run_out(out, sizeof(out), "losetup -f --show %s", file) ||
	    strncmp(out, "/dev/loop", 9) || strlen(out) >= len) {
		unlink(file);
		return -EIO;
	}
	strcpy(dev, out);
	strcpy(e->loop_dev[e->nloops], out);
	strcpy(e->loop_file[e->nloops], file);
	e->nloops++;
	return 0;
}

int tl_dm_create(struct tl_env *e, const char *name, const char *table_fmt, ...)
{
	char table[1024];
	va_list ap;
	int r;

	if (e->ndms >= TL_MAX_DMS || strlen(name) >= TL_NAME_LEN)
		return -ENOSPC;
	va_start(ap, table_fmt);
	r = vformat(table, sizeof(table), table_fmt, ap);
	va_end(ap);
	if (r)
		return r;
	r = tl_run("dmsetup create %s --table '%s'", name, table);
	if (r)
		return r;
	strcpy(e->dm_name[e->ndms++], name);
	/* No udev in the guest: make /dev/mapper/<name> ourselves. */
	return tl_run("dmsetup mknodes %s", name);
}

int tl_dm_remove(struct tl_env *e, const char *name)
{
	int i, r;

	r = tl_run("dmsetup remove --retry %s", name);
	if (r)
		return r;
	tl_run("rm -f /dev/mapper/%s", name);
	for (i = 0; i < e->ndms; i++)
		if (!strcmp(e->dm_name[i], name)) {
			memmove(e->dm_name[i], e->dm_name[i + 1],
				(size_t)(e->ndms - i - 1) * TL_NAME_LEN);
			e->ndms--;
			break;
		}
	return 0;
}

int tl_live_objects(char *buf, size_t len)
{
	FILE *f = fopen(LIVE_OBJECTS, "r");
	size_t n;

	if (!f)
		return -errno;
	if (!fgets(buf, (int)len, f)) {
		fclose(f);
		return -EIO;
	}
	fclose(f);
	n = strlen(buf);
	while (n && buf[n - 1] == '\n')
		buf[--n] = 0;
	return 0;
}

int64_t tl_dev_bytes(int fd)
{
	uint64_t bytes;

	if (ioctl(fd, BLKGETSIZE64, &bytes))
		return -errno;
	return (int64_t)bytes;
}

int tl_dev_rdev(const char *path, unsigned int *maj, unsigned int *min)
{
	struct stat st;

	if (stat(path, &st))
		return -errno;
	if (!S_ISBLK(st.st_mode))
		return -ENOTBLK;
	*maj = major(st.st_rdev);
	*min = minor(st.st_rdev);
	return 0;
}

int tl_meta_create_vol(const char *meta, const char *group, const char *data,
		       unsigned int volume)
{
	return tl_run("%s meta create --force --group %s --volume %u --data-dev %s %s "
		      ">/dev/null", TL_REPLTOOL, group, volume, data, meta);
}

int tl_meta_create(const char *meta, const char *group, const char *data)
{
	return tl_meta_create_vol(meta, group, data, 0);
}

int tl_vol_create(struct tl_env *e, struct tl_vol *v, const char *name,
		  const char *group, unsigned int data_mb, const char *opts)
{
	return tl_vol_create_vol(e, v, name, group, data_mb, opts, 0);
}

int tl_vol_create_vol(struct tl_env *e, struct tl_vol *v, const char *name,
		      const char *group, unsigned int data_mb, const char *opts,
		      unsigned int volume)
{
	char data[TL_NAME_LEN];
	int r;

	r = tl_loop_create(e, data_mb, data, sizeof(data));
	if (r)
		return r;
	return tl_vol_create_over(e, v, name, group, data, data_mb, opts, volume);
}

int tl_vol_create_over(struct tl_env *e, struct tl_vol *v, const char *name,
		       const char *group, const char *data, unsigned int data_mb,
		       const char *opts, unsigned int volume)
{
	int r;

	memset(v, 0, sizeof(*v));
	v->fd = -1;
	v->index = -1;
	snprintf(v->name, sizeof(v->name), "%s", name);
	snprintf(v->path, sizeof(v->path), "/dev/mapper/%s", name);
	snprintf(v->data, sizeof(v->data), "%s", data);
	v->size = (size_t)data_mb << 20;
	r = tl_loop_create(e, TL_META_MB, v->meta, sizeof(v->meta));
	if (r)
		return r;
	r = tl_meta_create_vol(v->meta, group, v->data, volume);
	if (r)
		return r < 0 ? r : -EIO;
	r = tl_dm_create(e, name, "0 %zu repl %s %s %s primary %s", v->size >> 9,
			 v->data, v->meta, group, opts);
	if (r)
		return r < 0 ? r : -EIO;
	v->fd = tl_env_track_fd(e, open(v->path, O_RDWR | O_DIRECT | O_CLOEXEC));
	if (v->fd < 0)
		return -errno;
	if (tl_dev_bytes(v->fd) != (int64_t)v->size)
		return -EINVAL;
	return 0;
}

int tl_vol_find_index(struct tl_vol *v, const struct dm_repl_group_info *info)
{
	unsigned int maj, min, i;
	int r = tl_dev_rdev(v->data, &maj, &min);

	if (r)
		return r;
	for (i = 0; i < info->nr_volumes && i < DM_REPL_MAX_VOLUMES; i++)
		if (info->volumes[i].dev_major == maj &&
		    info->volumes[i].dev_minor == min) {
			v->index = (int)info->volumes[i].index;
			return 0;
		}
	return -ENOENT;
}

int tl_ring_open(struct tl_env *e, const char *group, struct dmrepl_ring **ring,
		 char *errmsg, size_t errmsg_len)
{
	int i, r;

	for (i = 0; i < TL_MAX_RINGS; i++)
		if (!e->rings[i])
			break;
	if (i == TL_MAX_RINGS)
		return -ENOSPC;
	r = dmrepl_ring_open(group, ring, errmsg, errmsg_len);
	if (!r)
		e->rings[i] = *ring;
	return r;
}

void tl_ring_close(struct tl_env *e, struct dmrepl_ring *ring)
{
	int i;

	for (i = 0; i < TL_MAX_RINGS; i++)
		if (e->rings[i] == ring)
			e->rings[i] = NULL;
	dmrepl_ring_close(ring);
}

/* ---- I/O ------------------------------------------------------------------ */

void *tl_zalloc_aligned(size_t size)
{
	void *p;

	if (posix_memalign(&p, TL_ALIGN, size ? size : TL_ALIGN))
		return NULL;
	memset(p, 0, size);
	return p;
}

/* pread or pwrite all of len bytes, in pieces of at most IO_CHUNK. */
static int io_all(int fd, char *p, size_t len, uint64_t off, bool write)
{
	while (len) {
		size_t want = len < IO_CHUNK ? len : IO_CHUNK;
		ssize_t n = write ? pwrite(fd, p, want, (off_t)off) :
				    pread(fd, p, want, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int tl_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	return io_all(fd, (char *)buf, len, off, true);
}

int tl_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	return io_all(fd, buf, len, off, false);
}

int tl_discard(int fd, uint64_t off, uint64_t len)
{
	uint64_t range[2] = { off, len };

	return ioctl(fd, BLKDISCARD, range) ? -errno : 0;
}

int tl_zeroout(int fd, uint64_t off, uint64_t len)
{
	uint64_t range[2] = { off, len };

	return ioctl(fd, BLKZEROOUT, range) ? -errno : 0;
}

int tl_punch(int fd, uint64_t off, uint64_t len)
{
	return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			 (off_t)off, (off_t)len) ? -errno : 0;
}

int64_t tl_first_diff(const void *a, const void *b, size_t len)
{
	const unsigned char *x = a, *y = b;
	size_t i, step = 4096;

	for (i = 0; i < len; i += step) {
		size_t n = len - i < step ? len - i : step;

		if (memcmp(x + i, y + i, n)) {
			while (x[i] == y[i])
				i++;
			return (int64_t)i;
		}
	}
	return -1;
}

/* ---- randomness ------------------------------------------------------------ */

uint64_t tl_seed(void)
{
	const char *s = getenv("TEST_SEED");
	struct timespec ts;

	if (s && *s)
		return strtoull(s, NULL, 0);
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)ts.tv_nsec;
}

/* splitmix64: any seed, including 0, gives a good stream. */
static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void tl_rng_init(struct tl_rng *r, uint64_t seed)
{
	r->s = seed;
}

uint64_t tl_rand(struct tl_rng *r)
{
	return splitmix(&r->s);
}

uint64_t tl_rand_range(struct tl_rng *r, uint64_t lo, uint64_t hi)
{
	return lo + tl_rand(r) % (hi - lo + 1);
}

void tl_fill(void *buf, size_t len, uint64_t seed)
{
	unsigned char *p = buf;
	uint64_t s = seed, v;

	while (len >= 8) {
		v = splitmix(&s);
		memcpy(p, &v, 8);
		p += 8;
		len -= 8;
	}
	if (len) {
		v = splitmix(&s);
		memcpy(p, &v, len);
	}
}

/* ---- records ------------------------------------------------------------------ */

int tl_apply(unsigned char *img, size_t size, const struct dm_repl_rec *r)
{
	uint64_t off = dmrepl_rec_sector(r) << 9;
	uint32_t nbytes = dmrepl_rec_nbytes(r);

	switch (dmrepl_rec_type(r)) {
	case DM_REPL_REC_WRITE:
	case DM_REPL_REC_DISCARD:
	case DM_REPL_REC_WRITE_ZEROES:
		break;
	default:
		return 0;
	}
	if (off > size || nbytes > size - off)
		return -ERANGE;
	if (dmrepl_rec_type(r) != DM_REPL_REC_WRITE) {
		/* A loop disk over tmpfs reads zeros after a discard. */
		memset(img + off, 0, nbytes);
		return 0;
	}
	if (dmrepl_rec_payload_len(r) != nbytes)
		return -EINVAL;
	memcpy(img + off, dmrepl_rec_payload(r), nbytes);
	return 0;
}

static void consumer_error(struct tl_consumer *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void consumer_error(struct tl_consumer *c, const char *fmt, ...)
{
	va_list ap;

	if (c->err[0])
		return;
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
}

static void keep_header(struct tl_consumer *c, const struct dm_repl_rec *r)
{
	if (c->nhdrs == c->hdrs_cap) {
		size_t cap = c->hdrs_cap ? 2 * c->hdrs_cap : 1024;
		void *p = realloc(c->hdrs, cap * sizeof(*c->hdrs));

		if (!p) {
			consumer_error(c, "out of memory for headers");
			return;
		}
		c->hdrs = p;
		c->hdrs_cap = cap;
	}
	c->hdrs[c->nhdrs++] = *r;
}

static void take(struct tl_consumer *c, const struct dm_repl_rec *r)
{
	uint64_t seq = dmrepl_rec_seq(r);
	unsigned int type = dmrepl_rec_type(r), vol = dmrepl_rec_volume(r);
	const char *why = NULL;
	int ret;

	/*
	 * In the ring a record is unsealed (crc 0); whoever copies it out
	 * seals the copy, which must then pass the full check, crc included.
	 */
	ret = dmrepl_rec_check_unsealed(r, dmrepl_rec_len(r), &why);
	if (ret)
		consumer_error(c, "seq %llu: dmrepl_rec_check_unsealed: %s",
			       (unsigned long long)seq, why ? why : "?");
	if (!c->copy)
		c->copy = malloc(DMREPL_REC_MAX_LEN);
	if (!c->copy) {
		consumer_error(c, "out of memory for a record copy");
	} else if (!ret && dmrepl_rec_len(r) <= DMREPL_REC_MAX_LEN) {
		memcpy(c->copy, r, dmrepl_rec_len(r));
		dmrepl_rec_seal(c->copy);
		ret = dmrepl_rec_check(c->copy, dmrepl_rec_len(r), &why);
		if (ret)
			consumer_error(c, "seq %llu: sealed copy: dmrepl_rec_check: %s",
				       (unsigned long long)seq, why ? why : "?");
	}
	if (seq <= c->last_seq)
		consumer_error(c, "seq %llu after %llu", (unsigned long long)seq,
			       (unsigned long long)c->last_seq);
	else
		c->gap += seq - c->last_seq - 1;
	c->last_seq = seq;
	if (type <= DM_REPL_REC_TYPE_MAX)
		c->by_type[type]++;
	/* The ring's own records: no operation of a test made them. */
	if (type == DM_REPL_REC_STREAM || type == DM_REPL_REC_GAP) {
		c->stream_records++;
		return;
	}
	c->records++;
	c->payload_bytes += dmrepl_rec_payload_len(r);
	if (vol < TL_MAX_VOLS && c->img[vol]) {
		ret = tl_apply(c->img[vol], c->img_size[vol], r);
		if (ret)
			consumer_error(c, "seq %llu (type %u vol %u sector %llu nbytes %u): cannot apply: %d",
				       (unsigned long long)seq, type, vol,
				       (unsigned long long)dmrepl_rec_sector(r),
				       dmrepl_rec_nbytes(r), ret);
	} else if (type == DM_REPL_REC_WRITE || type == DM_REPL_REC_DISCARD ||
		   type == DM_REPL_REC_WRITE_ZEROES) {
		bool any = false;
		int i;

		for (i = 0; i < TL_MAX_VOLS; i++)
			any |= c->img[i] != NULL;
		if (any)
			consumer_error(c, "seq %llu: data record for unknown volume %u",
				       (unsigned long long)seq, vol);
	}
	if (c->keep_headers)
		keep_header(c, r);
	if (c->hook)
		c->hook(c->hook_arg, r);
}

int tl_ring_next_op(struct dmrepl_ring *ring, const struct dm_repl_rec **rec)
{
	unsigned int type;
	int ret;

	do {
		ret = dmrepl_ring_next(ring, rec);
		type = ret == 1 ? dmrepl_rec_type(*rec) : 0;
	} while (type == DM_REPL_REC_STREAM || type == DM_REPL_REC_GAP);
	return ret;
}

long tl_consume(struct tl_consumer *c, bool release)
{
	const struct dm_repl_rec *r;
	long n = 0;
	int ret;

	while ((ret = dmrepl_ring_next(c->ring, &r)) == 1) {
		take(c, r);
		n++;
	}
	if (ret < 0) {
		consumer_error(c, "dmrepl_ring_next: %s (%d)",
			       dmrepl_ring_why(c->ring) ?: "?", ret);
		return ret;
	}
	if (n)
		c->batches++;
	if (release && c->last_seq > c->released) {
		ret = dmrepl_ring_release(c->ring, c->last_seq);
		if (ret) {
			consumer_error(c, "release %llu: %d",
				       (unsigned long long)c->last_seq, ret);
			return ret;
		}
		c->released = c->last_seq;
	}
	return n;
}

void tl_consumer_free(struct tl_consumer *c)
{
	free(c->hdrs);
	free(c->copy);
	c->copy = NULL;
	c->hdrs = NULL;
	c->nhdrs = c->hdrs_cap = 0;
}

int tl_get_bitmap(struct dmrepl_ring *ring, unsigned int volume, void *buf,
		  size_t size, uint64_t *full_size)
{
	struct dm_repl_bitmap_req req = {
		.abi_version = DM_REPL_ABI_VERSION,
		.volume = volume,
		.buf = (uintptr_t)buf,
		.buf_size = size,
	};

	if (ioctl(dmrepl_ring_fd(ring), DM_REPL_IOC_GET_BITMAP, &req))
		return -errno;
	if (full_size)
		*full_size = req.buf_size;
	return 0;
}

/* The state letter of /proc/self/task/TID/stat, after "(comm) ". */
/* /proc/self/task/TID/WHAT into buf (a string): its length, or -1. */
static ssize_t read_task_file(pid_t tid, const char *what, char *buf, size_t size)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/%s", (int)tid, what);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	return n;
}

static char task_state(pid_t tid)
{
	char buf[512], *p;

	if (read_task_file(tid, "stat", buf, sizeof(buf)) <= 0)
		return 0;
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : 0;
}

/* The system call TID is in (/proc/self/task/TID/syscall), or -1. */
static long task_syscall(pid_t tid)
{
	char buf[256];

	if (read_task_file(tid, "syscall", buf, sizeof(buf)) <= 0)
		return -1;
	if (buf[0] < '0' || buf[0] > '9')	/* "running" */
		return -1;
	return strtol(buf, NULL, 10);
}

int tl_wait_sleeping_in_poll(pid_t tid, int timeout_s)
{
	struct timespec tick = { 0, 1000000L };
	long i, nr;

	for (i = 0; i < timeout_s * 1000L; i++) {
		nr = task_syscall(tid);
		/* The state after the call: both say the same sleep. */
		if ((nr == SYS_poll || nr == SYS_ppoll) && task_state(tid) == 'S' &&
		    task_syscall(tid) == nr)
			return 0;
		nanosleep(&tick, NULL);
	}
	return -1;
}

int tl_wait_in_stack(pid_t tid, const char *fn, int timeout_s)
{
	struct timespec tick = { 0, 10000000L };
	char stack[8192];
	long i;

	for (i = 0; i < timeout_s * 100L; i++) {
		if (read_task_file(tid, "stack", stack, sizeof(stack)) > 0 && strstr(stack, fn))
			return 0;
		nanosleep(&tick, NULL);
	}
	return -1;
}

int tl_wait_blocked(pid_t tid, int timeout_s)
{
	struct timespec tick = { 0, 1000000L };
	long i;

	for (i = 0; i < timeout_s * 1000L; i++) {
		if (task_state(tid) == 'D')
			return 0;
		nanosleep(&tick, NULL);
	}
	return -1;
}
