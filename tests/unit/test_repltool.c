// SPDX-License-Identifier: GPL-2.0
/*
 * repltool's command line, run in-process (its main() is compiled as
 * repltool_main()) against fakedev: output formats, options, exit status
 * and error messages of "repltool dump".
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dmrepl.h"
#include "fakedev.h"
#include "runtool.h"
#include "kselftest_harness.h"

#define DATA_SIZE (64 * 1024)
#define HDR DM_REPL_REC_HDR_SIZE
/* Bytes of a record with n bytes of payload, and of a slot's header. */
#define RECLEN(n) ((unsigned int)dmrepl_rec_size(n))
#define SLOT_HDR ((unsigned int)sizeof(struct dm_repl_slot))
/* produce_mix(): W 4096, D, Z, F, M "nightly 03:00", R 1024. */
#define MIX_BYTES (RECLEN(4096) + 3 * HDR + RECLEN(13) + RECLEN(1024))
/* produce_with_failed(): W 512, two VOID headers, W 1024. */
#define WITH_FAILED_BYTES (RECLEN(512) + 2 * HDR + RECLEN(1024))

FIXTURE(tool) {
	struct ringsim sim;
	struct fakedev dev;
	struct run r;
};

FIXTURE_SETUP(tool)
{
	memset(&self->r, 0, sizeof(self->r));
	ASSERT_EQ(0, ringsim_create(&self->sim, DATA_SIZE, 0));
	ASSERT_EQ(0, fakedev_create(&self->dev, &self->sim));
}

FIXTURE_TEARDOWN(tool)
{
	free(self->r.out);
	fakedev_destroy(&self->dev);
	ringsim_destroy(&self->sim);
}

/* Not all zeros: a RESYNC record of zeros would leave as its ZERO form. */
static unsigned char data[8192] = { 1 };

static long long produce(struct ringsim *s, unsigned int type, unsigned int flags,
			 __u64 sector, __u32 nbytes, const char *label)
{
	struct dmrepl_rec_fields f = {
		.type = type, .flags = flags, .sector = sector, .nbytes = nbytes,
		.volume = 1, .time_ns = 5,
	};

	if (type == DM_REPL_REC_WRITE || type == DM_REPL_REC_RESYNC) {
		f.payload = data;
		f.payload_len = nbytes;
	}
	if (label) {
		f.payload = label;
		f.payload_len = (__u32)strlen(label);
	}
	return ringsim_produce(s, &f);
}

/* One record of each type, FUA and RESYNC_END flags, epochs 0 and 1. */
static int produce_mix(struct ringsim *s)
{
	if (produce(s, DM_REPL_REC_WRITE, DM_REPL_RECF_FUA, 16, 4096, NULL) < 0 ||
	    produce(s, DM_REPL_REC_DISCARD, 0, 2048, 1 << 20, NULL) < 0 ||
	    produce(s, DM_REPL_REC_WRITE_ZEROES, 0, 4096, 8192, NULL) < 0 ||
	    produce(s, DM_REPL_REC_FLUSH, 0, 0, 0, NULL) < 0 ||
	    produce(s, DM_REPL_REC_MARKER, 0, 0, 0, "nightly 03:00") < 0 ||
	    produce(s, DM_REPL_REC_RESYNC, DM_REPL_RECF_RESYNC_END, 0, 1024, NULL) < 0)
		return -1;
	return 0;
}

/* A record whose write failed: reserved, encoded, then DISCARDED. */
static long long produce_failed(struct ringsim *s, unsigned int type, unsigned int flags,
				__u64 sector, __u32 nbytes)
{
	struct dmrepl_rec_fields f = {
		.type = type, .flags = flags, .sector = sector, .nbytes = nbytes,
		.volume = 1, .time_ns = 5,
	};
	long long pos;

	if (type == DM_REPL_REC_WRITE) {
		f.payload = data;
		f.payload_len = nbytes;
	}
	if (type == DM_REPL_REC_MARKER) {
		f.payload = "lost";
		f.payload_len = 4;
	}
	pos = ringsim_produce_busy(s, &f);
	if (pos >= 0)
		ringsim_discard(s, (__u64)pos);
	return pos;
}

/* WRITE 1, a failed FUA WRITE 2, a failed FLUSH 3, WRITE 4. */
static int produce_with_failed(struct ringsim *s)
{
	if (produce(s, DM_REPL_REC_WRITE, 0, 0, 512, NULL) < 0 ||
	    produce_failed(s, DM_REPL_REC_WRITE, DM_REPL_RECF_FUA, 64, 4096) < 0 ||
	    produce_failed(s, DM_REPL_REC_FLUSH, 0, 0, 0) < 0 ||
	    produce(s, DM_REPL_REC_WRITE, 0, 8, 1024, NULL) < 0)
		return -1;
	return 0;
}

TEST_F(tool, dump_prints_one_text_line_per_record)
{
	ASSERT_EQ(0, produce_mix(&self->sim));
	run_tool(&self->r, "dump", self->dev.path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	ASSERT_STREQ(
		"         1      0   1 W 16+8 FUA 4096\n"
		"         2      0   1 D 2048+2048 - 0\n"
		"         3      0   1 Z 4096+16 - 0\n"
		"         4      0   1 F - - 0\n"
		"         5      1   1 M \"nightly 03:00\" - 13\n"
		"         6      1   1 R 0+2 END 1024\n", self->r.out);
	ASSERT_STREQ("", self->r.err);
}

TEST_F(tool, dump_json_prints_one_object_per_line_from_the_same_fields)
{
	ASSERT_EQ(0, produce_mix(&self->sim));
	run_tool(&self->r, "dump", "-j", self->dev.path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	ASSERT_STREQ(
		"{\"seq\":1,\"epoch\":0,\"volume\":1,\"type\":\"WRITE\",\"sector\":16,\"sectors\":8,"
		"\"flags\":[\"FUA\"],\"payload_len\":4096,\"time_ns\":5}\n"
		"{\"seq\":2,\"epoch\":0,\"volume\":1,\"type\":\"DISCARD\",\"sector\":2048,"
		"\"sectors\":2048,\"flags\":[],\"payload_len\":0,\"time_ns\":5}\n"
		"{\"seq\":3,\"epoch\":0,\"volume\":1,\"type\":\"WRITE_ZEROES\",\"sector\":4096,"
		"\"sectors\":16,\"flags\":[],\"payload_len\":0,\"time_ns\":5}\n"
		"{\"seq\":4,\"epoch\":0,\"volume\":1,\"type\":\"FLUSH\",\"flags\":[],"
		"\"payload_len\":0,\"time_ns\":5}\n"
		"{\"seq\":5,\"epoch\":1,\"volume\":1,\"type\":\"MARKER\",\"label\":\"nightly 03:00\","
		"\"flags\":[],\"payload_len\":13,\"time_ns\":5}\n"
		"{\"seq\":6,\"epoch\":1,\"volume\":1,\"type\":\"RESYNC\",\"sector\":0,\"sectors\":2,"
		"\"flags\":[\"RESYNC_END\"],\"payload_len\":1024,\"time_ns\":5}\n", self->r.out);
}

TEST_F(tool, failed_writes_show_as_void_records_in_their_place)
{
	ASSERT_EQ(0, produce_with_failed(&self->sim));
	run_tool(&self->r, "dump", self->dev.path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	ASSERT_STREQ(
		"         1      0   1 W 0+1 - 512\n"
		"         2      0   1 W 64+8 FUA,VOID 0\n"
		"         3      0   1 F - VOID 0\n"
		"         4      1   1 W 8+2 - 1024\n", self->r.out);
}

TEST_F(tool, void_marker_shows_no_label)
{
	ASSERT_LE(0, produce_failed(&self->sim, DM_REPL_REC_MARKER, 0, 0, 0));
	run_tool(&self->r, "dump", self->dev.path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	ASSERT_STREQ("         1      0   1 M - VOID 0\n", self->r.out);
	run_tool(&self->r, "dump", "-j", self->dev.path, NULL);
	ASSERT_STREQ("{\"seq\":1,\"epoch\":0,\"volume\":1,\"type\":\"MARKER\",\"flags\":[\"VOID\"],"
		     "\"payload_len\":0,\"time_ns\":5}\n", self->r.out);
}

TEST_F(tool, failed_writes_show_as_void_in_the_json_flags)
{
	ASSERT_EQ(0, produce_with_failed(&self->sim));
	/* VOID records do not count: 2 records, and the VOID ones between. */
	run_tool(&self->r, "dump", "-j", "-n", "2", self->dev.path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	ASSERT_STREQ(
		"{\"seq\":1,\"epoch\":0,\"volume\":1,\"type\":\"WRITE\",\"sector\":0,\"sectors\":1,"
		"\"flags\":[],\"payload_len\":512,\"time_ns\":5}\n"
		"{\"seq\":2,\"epoch\":0,\"volume\":1,\"type\":\"WRITE\",\"sector\":64,\"sectors\":8,"
		"\"flags\":[\"FUA\",\"VOID\"],\"payload_len\":0,\"time_ns\":5}\n"
		"{\"seq\":3,\"epoch\":0,\"volume\":1,\"type\":\"FLUSH\",\"flags\":[\"VOID\"],"
		"\"payload_len\":0,\"time_ns\":5}\n"
		"{\"seq\":4,\"epoch\":1,\"volume\":1,\"type\":\"WRITE\",\"sector\":8,\"sectors\":2,"
		"\"flags\":[],\"payload_len\":1024,\"time_ns\":5}\n", self->r.out);
}

TEST_F(tool, json_escapes_quotes_in_marker_labels)
{
	ASSERT_LE(0, produce(&self->sim, DM_REPL_REC_MARKER, 0, 0, 0, "say \"hi\" \\o/"));
	run_tool(&self->r, "dump", "--json", self->dev.path, NULL);
	ASSERT_EQ(0, self->r.status);
	ASSERT_NE(NULL, strstr(self->r.out, "\"label\":\"say \\\"hi\\\" \\\\o/\""));
}

TEST_F(tool, stats_prints_a_summary_instead_of_records)
{
	struct dmrepl_rec_fields f = { .payload_len = 512 };
	char want[1024];
	long long pos;

	ASSERT_EQ(0, produce_mix(&self->sim));
	pos = ringsim_produce_busy(&self->sim, &f);
	ASSERT_LE(0, pos);
	ringsim_discard(&self->sim, (__u64)pos);
	run_tool(&self->r, "dump", "--stats", self->dev.path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	/* 5616 = 4176 + 3 * 80 + 96 + 1104 */
	snprintf(want, sizeof(want),
		 "%s: records 6 bytes %u discarded_slots 1\n"
		 "  WRITE         records 1 bytes %u volume_bytes 4096\n"
		 "  DISCARD       records 1 bytes %u volume_bytes 1048576\n"
		 "  WRITE_ZEROES  records 1 bytes %u volume_bytes 8192\n"
		 "  FLUSH         records 1 bytes %u volume_bytes 0\n"
		 "  MARKER        records 1 bytes %u volume_bytes 0\n"
		 "  RESYNC        records 1 bytes %u volume_bytes 1024\n"
		 "  STREAM        records 0 bytes 0 volume_bytes 0\n"
		 "  GAP           records 0 bytes 0 volume_bytes 0\n"
		 "  VERIFY        records 0 bytes 0 volume_bytes 0\n"
		 "  seq 1..6 epochs 2 (0..1)\n", self->dev.path, MIX_BYTES, RECLEN(4096),
		 HDR, HDR, HDR, RECLEN(13), RECLEN(1024));
	ASSERT_STREQ(want, self->r.out);
}

TEST_F(tool, stats_json_is_one_object)
{
	char want[256];

	ASSERT_LE(0, produce(&self->sim, DM_REPL_REC_WRITE, 0, 0, 512, NULL));
	run_tool(&self->r, "dump", "--stats", "-j", self->dev.path, NULL);
	ASSERT_EQ(0, self->r.status);
	snprintf(want, sizeof(want),
		 "\"records\":1,\"bytes\":%u,\"discarded\":0,\"types\":{\"WRITE\":{\"records\":1,"
		 "\"bytes\":%u,\"volume_bytes\":512},\"DISCARD\":{\"records\":0,",
		 RECLEN(512), RECLEN(512));
	ASSERT_NE(NULL, strstr(self->r.out, want)) TH_LOG("%s", self->r.out);
	ASSERT_NE(NULL, strstr(self->r.out, "\"STREAM\":{\"records\":0,\"bytes\":0,"
			       "\"volume_bytes\":0},\"GAP\":{\"records\":0,\"bytes\":0,"
			       "\"volume_bytes\":0},\"VERIFY\":{\"records\":0,\"bytes\":0,"
			       "\"volume_bytes\":0}}")) TH_LOG("%s", self->r.out);
	ASSERT_NE(NULL, strstr(self->r.out,
		"\"first_seq\":1,\"last_seq\":1,\"epochs\":1,\"first_epoch\":0,\"last_epoch\":0}\n"));
	ASSERT_EQ('{', self->r.out[0]);
	ASSERT_EQ(self->r.out + self->r.out_len - 1, strchr(self->r.out, '\n'));
}

TEST_F(tool, stats_of_an_empty_ring_has_no_sequences)
{
	run_tool(&self->r, "dump", "--stats", "-j", self->dev.path, NULL);
	ASSERT_EQ(0, self->r.status);
	ASSERT_NE(NULL, strstr(self->r.out, "\"first_seq\":null,\"last_seq\":null,\"epochs\":0,"
				       "\"first_epoch\":null,\"last_epoch\":null}"));
	run_tool(&self->r, "dump", "--stats", self->dev.path, NULL);
	ASSERT_NE(NULL, strstr(self->r.out, "  seq -..- epochs 0 (-..-)\n"));
}

TEST_F(tool, raw_writes_the_records_byte_exact)
{
	unsigned char buf[8192] __attribute__((aligned(8)));
	const unsigned char *ring_rec;
	struct dmrepl_stream s;
	char want[64];
	int fd, i;

	ASSERT_EQ(0, produce_mix(&self->sim));
	run_tool(&self->r, "dump", "--raw", "--stats", self->dev.path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	ASSERT_EQ(MIX_BYTES, self->r.out_len);
	/*
	 * The slot of record 1 is at 0: its record starts 8 bytes in. The
	 * output is the ring's record, sealed: only the crc (at 56) differs;
	 * the stream (at 64) and the rest go out as they are.
	 */
	ring_rec = self->sim.ro + self->sim.ctl_size + SLOT_HDR;
	ASSERT_EQ(0, memcmp(self->r.out, ring_rec, 56));
	ASSERT_EQ(0, memcmp(self->r.out + 60, ring_rec + 60, RECLEN(4096) - 60));
	ASSERT_EQ(0U, dmrepl_rec_crc((const void *)ring_rec));
	ASSERT_EQ(RINGSIM_STREAM, dmrepl_rec_stream((const void *)self->r.out));
	snprintf(want, sizeof(want), "records 6 bytes %u", MIX_BYTES);
	ASSERT_NE(NULL, strstr(self->r.err, want));	/* stats to stderr */

	fd = memfd_create("raw", 0);
	ASSERT_EQ((ssize_t)self->r.out_len, write(fd, self->r.out, self->r.out_len));
	lseek(fd, 0, SEEK_SET);
	dmrepl_stream_init(&s, fd);
	for (i = 1; i <= 6; i++) {
		/* The stream reader checks every crc. */
		ASSERT_EQ(1, dmrepl_stream_read(&s, buf, sizeof(buf), NULL));
		ASSERT_EQ((__u64)i, dmrepl_rec_seq((void *)buf));
		ASSERT_EQ(RINGSIM_STREAM, dmrepl_rec_stream((void *)buf));
	}
	ASSERT_EQ(0, dmrepl_stream_read(&s, buf, sizeof(buf), NULL));
	close(fd);
}

TEST_F(tool, raw_writes_a_void_record_for_a_failed_write_keeping_sequences_contiguous)
{
	unsigned char buf[8192] __attribute__((aligned(8)));
	const struct dm_repl_rec *r = (const void *)buf;
	struct dmrepl_stream s;
	const char *why = NULL;
	char want[64];
	int fd, i;

	ASSERT_LE(0, produce(&self->sim, DM_REPL_REC_WRITE, 0, 0, 512, NULL));
	ASSERT_LE(0, produce_failed(&self->sim, DM_REPL_REC_WRITE, 0, 64, 4096));
	ASSERT_LE(0, produce(&self->sim, DM_REPL_REC_WRITE, 0, 8, 1024, NULL));
	run_tool(&self->r, "dump", "--raw", "--stats", self->dev.path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	/* 592 + the failed write's header alone (80) + 1104. */
	ASSERT_EQ(RECLEN(512) + HDR + RECLEN(1024), self->r.out_len);
	snprintf(want, sizeof(want), "records 2 bytes %u discarded_slots 1\n",
		 RECLEN(512) + RECLEN(1024));
	ASSERT_NE(NULL, strstr(self->r.err, want)) TH_LOG("%s", self->r.err);

	fd = memfd_create("raw", 0);
	ASSERT_EQ((ssize_t)self->r.out_len, write(fd, self->r.out, self->r.out_len));
	lseek(fd, 0, SEEK_SET);
	dmrepl_stream_init(&s, fd);
	for (i = 1; i <= 3; i++) {
		ASSERT_EQ(1, dmrepl_stream_read(&s, buf, sizeof(buf), &why)) TH_LOG("%s", why);
		ASSERT_EQ((__u64)i, dmrepl_rec_seq(r));
		ASSERT_EQ(i == 2 ? DM_REPL_RECF_VOID : 0, dmrepl_rec_flags(r));
	}
	ASSERT_EQ(0, dmrepl_stream_read(&s, buf, sizeof(buf), NULL));
	close(fd);
	/* The middle one: sealed, header alone, what was captured kept. */
	r = (const void *)(self->r.out + RECLEN(512));
	ASSERT_EQ(0, dmrepl_rec_check(r, HDR, &why)) TH_LOG("%s", why);
	ASSERT_NE(0U, dmrepl_rec_crc(r));
	ASSERT_EQ((__u32)HDR, dmrepl_rec_len(r));
	ASSERT_EQ(RINGSIM_STREAM, dmrepl_rec_stream(r));
	ASSERT_EQ(0U, dmrepl_rec_payload_len(r));
	ASSERT_EQ((unsigned int)DM_REPL_REC_WRITE, dmrepl_rec_type(r));
	ASSERT_EQ(64ULL, dmrepl_rec_sector(r));
	ASSERT_EQ(4096U, dmrepl_rec_nbytes(r));
}

TEST_F(tool, release_goes_through_a_failed_write_at_the_end)
{
	ASSERT_LE(0, produce(&self->sim, DM_REPL_REC_WRITE, 0, 0, 512, NULL));
	ASSERT_LE(0, produce_failed(&self->sim, DM_REPL_REC_WRITE, 0, 64, 4096));
	run_tool(&self->r, "dump", "--release", self->dev.path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	ASSERT_EQ(2ULL, self->dev.last_release);
	ASSERT_EQ(self->sim.ctl->producer_pos, self->sim.ctl->released_pos);
}

TEST_F(tool, raw_refuses_a_terminal)
{
	int ptm = posix_openpt(O_RDWR | O_NOCTTY), pts, save;

	ASSERT_LE(0, ptm);
	ASSERT_EQ(0, grantpt(ptm));
	ASSERT_EQ(0, unlockpt(ptm));
	pts = open(ptsname(ptm), O_RDWR | O_NOCTTY);
	ASSERT_LE(0, pts);
	save = dup(1);
	dup2(pts, 1);
	{
		char *argv[] = { "repltool", "dump", "--raw", self->dev.path, NULL };
		int err = dup(2), devnull = open("/dev/null", O_WRONLY);

		dup2(devnull, 2);
		self->r.status = repltool_main(4, argv);
		dup2(err, 2);
		close(err);
		close(devnull);
	}
	dup2(save, 1);
	close(save);
	close(pts);
	close(ptm);
	ASSERT_EQ(2, self->r.status);
}

TEST_F(tool, release_frees_what_was_printed)
{
	ASSERT_EQ(0, produce_mix(&self->sim));
	run_tool(&self->r, "dump", "--release", self->dev.path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	ASSERT_EQ(1, self->dev.release_calls);
	ASSERT_EQ(6ULL, self->dev.last_release);
	ASSERT_EQ(self->sim.ctl->producer_pos, self->sim.ctl->released_pos);
}

TEST_F(tool, without_release_nothing_is_freed)
{
	ASSERT_EQ(0, produce_mix(&self->sim));
	run_tool(&self->r, "dump", self->dev.path, NULL);
	ASSERT_EQ(0, self->dev.release_calls);
	ASSERT_EQ(0ULL, self->sim.ctl->released_pos);
}

TEST_F(tool, count_stops_after_n_records_and_releases_only_those)
{
	ASSERT_EQ(0, produce_mix(&self->sim));
	run_tool(&self->r, "dump", "-n", "2", "--release", self->dev.path, NULL);
	ASSERT_EQ(0, self->r.status);
	ASSERT_STREQ("         1      0   1 W 16+8 FUA 4096\n"
		     "         2      0   1 D 2048+2048 - 0\n", self->r.out);
	ASSERT_EQ(2ULL, self->dev.last_release);
}

TEST_F(tool, unambiguous_prefix_selects_the_command)
{
	ASSERT_EQ(0, produce_mix(&self->sim));
	run_tool(&self->r, "du", "-n", "1", self->dev.path, NULL);
	ASSERT_EQ(0, self->r.status);
	ASSERT_STREQ("         1      0   1 W 16+8 FUA 4096\n", self->r.out);
}

struct later {
	struct tool_context {
		struct ringsim *sim;
		struct fakedev *dev;
	} c;
	pthread_t main;
	enum { LATER_PRODUCE, LATER_REMOVE, LATER_SIGTERM } what;
};

/* What a follower waits for, 100 ms after it starts. */
static void *later_thread(void *arg)
{
	struct later *l = arg;

	usleep(100 * 1000);
	switch (l->what) {
	case LATER_PRODUCE:
		produce(l->c.sim, DM_REPL_REC_FLUSH, 0, 0, 0, NULL);
		fakedev_wake(l->c.dev);
		break;
	case LATER_REMOVE:
		produce(l->c.sim, DM_REPL_REC_FLUSH, 0, 0, 0, NULL);
		fakedev_remove(l->c.dev);
		break;
	case LATER_SIGTERM:
		pthread_kill(l->main, SIGTERM);
		break;
	}
	return NULL;
}

static void start_later(struct later *l, struct ringsim *sim, struct fakedev *dev,
			int what, pthread_t *th)
{
	l->c.sim = sim;
	l->c.dev = dev;
	l->main = pthread_self();
	l->what = what;
	pthread_create(th, NULL, later_thread, l);
}

TEST_F(tool, follow_waits_for_new_records_until_count)
{
	struct later l;
	pthread_t th;

	ASSERT_LE(0, produce(&self->sim, DM_REPL_REC_WRITE, 0, 0, 512, NULL));
	start_later(&l, &self->sim, &self->dev, LATER_PRODUCE, &th);
	run_tool(&self->r, "dump", "-f", "-n", "2", self->dev.path, NULL);
	pthread_join(th, NULL);
	ASSERT_EQ(0, self->r.status);
	ASSERT_STREQ("         1      0   1 W 0+1 - 512\n"
		     "         2      0   1 F - - 0\n", self->r.out);
}

TEST_F(tool, follow_ends_cleanly_when_the_group_goes_away)
{
	struct later l;
	pthread_t th;

	ASSERT_LE(0, produce(&self->sim, DM_REPL_REC_WRITE, 0, 0, 512, NULL));
	start_later(&l, &self->sim, &self->dev, LATER_REMOVE, &th);
	run_tool(&self->r, "dump", "--follow", self->dev.path, NULL);
	pthread_join(th, NULL);
	ASSERT_EQ(0, self->r.status);
	/* The record committed just before the removal is not lost. */
	ASSERT_STREQ("         1      0   1 W 0+1 - 512\n"
		     "         2      0   1 F - - 0\n", self->r.out);
	ASSERT_NE(NULL, strstr(self->r.err, "the group went away"));
}

TEST_F(tool, sigterm_ends_follow_with_the_summary_and_exit_0)
{
	struct later l;
	char want[64];
	pthread_t th;

	ASSERT_LE(0, produce(&self->sim, DM_REPL_REC_WRITE, 0, 0, 512, NULL));
	start_later(&l, &self->sim, &self->dev, LATER_SIGTERM, &th);
	run_tool(&self->r, "dump", "-f", "--stats", self->dev.path, NULL);
	pthread_join(th, NULL);
	ASSERT_EQ(0, self->r.status);
	snprintf(want, sizeof(want), ": records 1 bytes %u discarded_slots 0\n", RECLEN(512));
	ASSERT_NE(NULL, strstr(self->r.out, want)) TH_LOG("%s", self->r.out);
}

TEST_F(tool, corrupt_ring_is_a_runtime_error_naming_the_reason)
{
	long long pos = produce(&self->sim, DM_REPL_REC_WRITE, 0, 0, 512, NULL);
	unsigned char *rec;

	ASSERT_LE(0, pos);
	rec = ringsim_rec_at(&self->sim, (__u64)pos);
	rec[0] ^= 1;
	run_tool(&self->r, "dump", self->dev.path, NULL);
	ASSERT_EQ(1, self->r.status);
	ASSERT_NE(NULL, strstr(self->r.err, ": corrupt ring at position 0: bad magic\n"));
}

TEST_F(tool, abi_mismatch_names_both_versions)
{
	char want[256];

	self->dev.abi_version = 9;
	run_tool(&self->r, "dump", self->dev.path, NULL);
	ASSERT_EQ(1, self->r.status);
	snprintf(want, sizeof(want), "repltool: %s: ABI version mismatch: module speaks "
		 "version 9, libdmrepl speaks version %d\n", self->dev.path, DM_REPL_ABI_VERSION);
	ASSERT_STREQ(want, self->r.err);
}

TEST(missing_group_names_the_device_and_asks_if_it_is_loaded)
{
	struct run r = { 0 };

	run_tool(&r, "dump", "dmrepl-unit-nosuch", NULL);
	ASSERT_EQ(1, r.status);
	ASSERT_STREQ("repltool: /dev/dm-repl/dmrepl-unit-nosuch: No such file or directory "
		     "(is a repl volume in group \"dmrepl-unit-nosuch\" loaded?)\n", r.err);
	free(r.out);
}

TEST(usage_errors_exit_2)
{
	struct run r = { 0 };

	run_tool(&r, NULL);
	ASSERT_EQ(2, r.status);
	run_tool(&r, "frobnicate", NULL);
	ASSERT_EQ(2, r.status);
	ASSERT_NE(NULL, strstr(r.err, "unknown command \"frobnicate\""));
	run_tool(&r, "dump", NULL);
	ASSERT_EQ(2, r.status);
	ASSERT_NE(NULL, strstr(r.err, "missing GROUP or PATH"));
	run_tool(&r, "dump", "a", "b", NULL);
	ASSERT_EQ(2, r.status);
	run_tool(&r, "dump", "-n", "0", "vm1", NULL);
	ASSERT_EQ(2, r.status);
	ASSERT_NE(NULL, strstr(r.err, "--count wants a positive number, not \"0\""));
	run_tool(&r, "dump", "-n", "-3", "vm1", NULL);
	ASSERT_EQ(2, r.status);
	run_tool(&r, "dump", "--bogus", "vm1", NULL);
	ASSERT_EQ(2, r.status);
	ASSERT_NE(NULL, strstr(r.err, "unknown option \"--bogus\""));
	run_tool(&r, "dump", "-x", "vm1", NULL);
	ASSERT_EQ(2, r.status);
	ASSERT_NE(NULL, strstr(r.err, "unknown option \"-x\""));
	run_tool(&r, "dump", "vm1", "-n", NULL);
	ASSERT_EQ(2, r.status);
	ASSERT_NE(NULL, strstr(r.err, "option \"-n\" needs an argument"));
	run_tool(&r, "dump", "--raw", "-j", "vm1", NULL);
	ASSERT_EQ(2, r.status);
	run_tool(&r, "--frob", NULL);
	ASSERT_EQ(2, r.status);
	free(r.out);
}

TEST(help_goes_to_stdout_and_exits_0)
{
	struct run r = { 0 };
	char abi[32];

	run_tool(&r, "help", NULL);
	ASSERT_EQ(0, r.status);
	ASSERT_NE(NULL, strstr(r.out, "  dump "));
	run_tool(&r, "help", "dump", NULL);
	ASSERT_EQ(0, r.status);
	ASSERT_NE(NULL, strstr(r.out, "Usage: repltool dump"));
	run_tool(&r, "dump", "--help", NULL);
	ASSERT_EQ(0, r.status);
	ASSERT_NE(NULL, strstr(r.out, "Usage: repltool dump"));
	run_tool(&r, "h", "-h", NULL);
	ASSERT_EQ(0, r.status);
	ASSERT_NE(NULL, strstr(r.out, "Usage: repltool help"));
	run_tool(&r, "--help", NULL);
	ASSERT_EQ(0, r.status);
	ASSERT_NE(NULL, strstr(r.out, "Exit status: 0 success, 1 runtime error, 2 usage error"));
	run_tool(&r, "--version", NULL);
	ASSERT_EQ(0, r.status);
	snprintf(abi, sizeof(abi), "ABI version %d", DM_REPL_ABI_VERSION);
	ASSERT_NE(NULL, strstr(r.out, abi)) TH_LOG("%s", r.out);
	free(r.out);
}

/* ---- apply and status ------------------------------------------------------ */

/* A sealed stream of WRITE 1 (512), FLUSH 2, WRITE 3 (1024) in a memfd. */
static int stream_file(char *path, size_t len, size_t *bytes)
{
	static unsigned char rec[2048] __attribute__((aligned(8)));
	struct dmrepl_rec_fields f = { .type = DM_REPL_REC_WRITE, .seq = 1, .nbytes = 512,
				       .payload = data, .payload_len = 512 };
	int fd = memfd_create("stream", 0);
	long n;

	*bytes = 0;
	n = dmrepl_rec_encode(rec, sizeof(rec), &f);
	*bytes += (size_t)write(fd, rec, (size_t)n);
	f = (struct dmrepl_rec_fields){ .type = DM_REPL_REC_FLUSH, .seq = 2 };
	n = dmrepl_rec_encode(rec, sizeof(rec), &f);
	*bytes += (size_t)write(fd, rec, (size_t)n);
	f = (struct dmrepl_rec_fields){ .type = DM_REPL_REC_WRITE, .seq = 3, .epoch = 1,
					.nbytes = 1024, .payload = data, .payload_len = 1024 };
	n = dmrepl_rec_encode(rec, sizeof(rec), &f);
	*bytes += (size_t)write(fd, rec, (size_t)n);
	snprintf(path, len, "/proc/self/fd/%d", fd);
	return fd;
}

/* What the fake device received (its pipe), up to len bytes. */
static ssize_t received(struct fakedev *d, void *buf, size_t len)
{
	ssize_t n = read(d->rfd, buf, len);

	return n < 0 ? 0 : n;
}

static void secondary(struct fakedev *d)
{
	d->role = DM_REPL_ROLE_SECONDARY;
	fcntl(d->wfd, F_SETPIPE_SZ, 1 << 20);
}

/*
 * repltool apply [--batch-kb KB] of the three-record stream to the fake
 * secondary; *bytes gets the stream's size; fix (if not NULL) may change
 * the stream first (its fd).
 */
static void apply_stream(FIXTURE_DATA(tool) *self, const char *kb, size_t *bytes,
			 void (*fix)(int fd))
{
	char in[64];
	int fd = stream_file(in, sizeof(in), bytes);

	secondary(&self->dev);
	if (fix)
		fix(fd);
	if (kb)
		run_tool(&self->r, "apply", "--stats", "--batch-kb", kb, "-i", in,
			 self->dev.path, NULL);
	else
		run_tool(&self->r, "apply", "--stats", "-i", in, self->dev.path, NULL);
	close(fd);
}

TEST_F(tool, apply_writes_the_stream_to_the_device_and_prints_stats)
{
	unsigned char got[4096], sent[4096];
	char in[64], want[256];
	size_t bytes;
	int fd = stream_file(in, sizeof(in), &bytes);

	self->dev.apply_info.applied_seq = 3;
	apply_stream(self, NULL, &bytes, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	ASSERT_EQ(1, self->dev.writes);
	ASSERT_EQ((ssize_t)bytes, received(&self->dev, got, sizeof(got)));
	ASSERT_EQ((ssize_t)bytes, pread(fd, sent, bytes, 0));
	ASSERT_EQ(0, memcmp(got, sent, bytes));
	snprintf(want, sizeof(want), "%s: records 3 batches 1 bytes %zu skipped 0 "
		 "applied_seq 3\n", self->dev.path, bytes);
	ASSERT_STREQ(want, self->r.out);
	close(fd);
}

TEST_F(tool, apply_cuts_batches_at_the_flush)
{
	unsigned char got[4096];
	size_t bytes;

	/* 1 KiB: 592 + 80 fit, the 1104 of seq 3 do not; then seq 3 alone. */
	apply_stream(self, "1", &bytes, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	ASSERT_EQ(2, self->dev.writes);
	ASSERT_EQ((ssize_t)bytes, received(&self->dev, got, sizeof(got)));
	ASSERT_NE(NULL, strstr(self->r.out, ": records 3 batches 2 bytes "));
}

TEST_F(tool, apply_names_the_reason_of_a_refused_batch)
{
	char want[256];
	size_t bytes;

	self->dev.write_errno = EILSEQ;
	self->dev.apply_info.last_error = -EILSEQ;
	self->dev.apply_info.last_reason = DM_REPL_APPLY_SEQ_GAP;
	self->dev.apply_info.last_error_seq = 1234;
	apply_stream(self, NULL, &bytes, NULL);
	ASSERT_EQ(1, self->r.status);
	snprintf(want, sizeof(want), "repltool: apply: %s: batch refused at seq 1234: "
		 "sequence gap (%s)\n", self->dev.path, strerror(EILSEQ));
	ASSERT_STREQ(want, self->r.err);
}

TEST_F(tool, apply_calls_a_short_write_an_error)
{
	char want[256];
	size_t bytes;

	self->dev.write_short = 100;
	apply_stream(self, NULL, &bytes, NULL);
	ASSERT_EQ(1, self->r.status);
	snprintf(want, sizeof(want), "repltool: apply: %s: short write of the batch of "
		 "seq 1..3: 100 of %zu bytes\n", self->dev.path, bytes);
	ASSERT_STREQ(want, self->r.err);
}

/* Where seq 3 begins in stream_file(): after W 512 and a FLUSH. */
#define THIRD_OFF (RECLEN(512) + HDR)

/* Flip a bit in the payload of seq 3 (100 bytes in). */
static void spoil_third(int fd)
{
	unsigned char c = 0;

	if (pread(fd, &c, 1, THIRD_OFF + HDR + 100) != 1)
		abort();
	c ^= 1;
	if (pwrite(fd, &c, 1, THIRD_OFF + HDR + 100) != 1)
		abort();
}

TEST_F(tool, apply_stops_at_a_bad_record_after_writing_the_good_ones)
{
	unsigned char got[4096];
	char want[128];
	size_t bytes;

	apply_stream(self, NULL, &bytes, spoil_third);
	ASSERT_EQ(1, self->r.status);
	snprintf(want, sizeof(want), ": bad record at stream offset %u (seq 3): "
		 "checksum mismatch\n", THIRD_OFF);
	ASSERT_NE(NULL, strstr(self->r.err, want)) TH_LOG("%s", self->r.err);
	ASSERT_EQ((ssize_t)THIRD_OFF, received(&self->dev, got, sizeof(got)));
}

TEST_F(tool, apply_refuses_a_primary_group)
{
	char in[64], want[256];
	size_t bytes;
	int fd = stream_file(in, sizeof(in), &bytes);

	run_tool(&self->r, "apply", "-i", in, self->dev.path, NULL);
	ASSERT_EQ(1, self->r.status);
	snprintf(want, sizeof(want), "repltool: apply: %s: group \"fake\" is primary; apply "
		 "writes to a secondary group only\n", self->dev.path);
	ASSERT_STREQ(want, self->r.err);
	ASSERT_EQ(0, self->dev.writes);
	close(fd);
}

TEST_F(tool, status_of_a_primary_lists_the_group_and_its_volumes)
{
	ASSERT_LE(0, produce(&self->sim, DM_REPL_REC_WRITE, 0, 0, 512, NULL));
	run_tool(&self->r, "status", self->dev.path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	ASSERT_NE(NULL, strstr(self->r.out, "group             fake\n"));
	ASSERT_NE(NULL, strstr(self->r.out, "\nrole              primary\n"));
	ASSERT_NE(NULL, strstr(self->r.out, "\nstate             uptodate\n"
			       "behind_reasons    -\n"
			       "stream            5354524541d00001\n")) TH_LOG("%s", self->r.out);
	ASSERT_NE(NULL, strstr(self->r.out, "\nnext_seq          2\n"));
	ASSERT_NE(NULL, strstr(self->r.out, "\nvolumes           1\nvolume 0\n"
			       "  data_dev        7:1\n  sectors         2048\n"
			       "  dirty_regions   3\n"));
	ASSERT_EQ(NULL, strstr(self->r.out, "apply"));
	run_tool(&self->r, "status", "-j", self->dev.path, NULL);
	ASSERT_EQ(0, self->r.status);
	ASSERT_NE(NULL, strstr(self->r.out, "\"volumes\":[{\"index\":0,\"data_dev\":\"7:1\","
			       "\"sectors\":2048,\"dirty_regions\":3,\"nr_regions\":16,"
			       "\"region_sectors\":128}]}\n"));
}

TEST_F(tool, status_of_a_secondary_shows_the_apply_path)
{
	struct dm_repl_apply_info *ai = &self->dev.apply_info;

	secondary(&self->dev);
	ai->flags = DM_REPL_APPLYF_INCONSISTENT;
	ai->applied_seq = 99;
	ai->applied_stream = RINGSIM_STREAM;
	ai->rejected = 1;
	ai->last_error = -EXDEV;
	ai->last_reason = DM_REPL_APPLY_OTHER_GROUP;
	ai->last_error_seq = 100;
	ai->nr_markers = 1;
	ai->markers[0].seq = 42;
	ai->markers[0].epoch = 7;
	strcpy(ai->markers[0].label, "nightly");
	run_tool(&self->r, "status", self->dev.path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	ASSERT_NE(NULL, strstr(self->r.out, "\napply\n  consistency     inconsistent\n"
			       "  inconsistent_reason 3 regions marked, waiting for the primary "
			       "to resend them\n"
			       "  applied_stream  5354524541d00001\n"
			       "  applied_seq     99\n")) TH_LOG("%s", self->r.out);
	ASSERT_NE(NULL, strstr(self->r.out, "\n  rejected        1\n  verify_compared 0\n"
			       "  verify_bytes    0\n  verify_not_compared 0\n"
			       "  verify_mismatches 0\n  last_error      record of "
			       "another group (group_tag) at seq 100 (Invalid cross-device "
			       "link)\n  marker          seq 42 epoch 7 \"nightly\"\n"))
		TH_LOG("%s", self->r.out);
	run_tool(&self->r, "status", "--json", self->dev.path, NULL);
	ASSERT_NE(NULL, strstr(self->r.out, "\"apply\":{\"consistency\":\"inconsistent\","
			       "\"inconsistent_reason\":\"3 regions marked, waiting for the "
			       "primary to resend them\","
			       "\"applied_stream\":\"5354524541d00001\",\"applied_seq\":99,"))
		TH_LOG("%s", self->r.out);
	ASSERT_NE(NULL, strstr(self->r.out, "\"last_error\":{\"errno\":18,\"error\":"
			       "\"Invalid cross-device link\",\"reason\":10,\"reason_name\":"
			       "\"record of another group (group_tag)\",\"seq\":100},\"markers\":"
			       "[{\"seq\":42,\"epoch\":7,\"label\":\"nightly\"}]}}\n"))
		TH_LOG("%s", self->r.out);
}

TEST(apply_and_status_usage_errors_exit_2)
{
	struct run r = { 0 };

	run_tool(&r, "apply", "-i", "/dev/null", NULL);
	ASSERT_EQ(2, r.status);
	ASSERT_NE(NULL, strstr(r.err, "apply: missing GROUP or PATH"));
	run_tool(&r, "apply", "-i", "/dev/null", "--batch-kb", "0", "g", NULL);
	ASSERT_EQ(2, r.status);
	ASSERT_NE(NULL, strstr(r.err, "--batch-kb wants a number from 1 to 32768, not \"0\""));
	run_tool(&r, "apply", "-i", "/dev/null", "--batch-kb", "32769", "g", NULL);
	ASSERT_EQ(2, r.status);
	ASSERT_NE(NULL, strstr(r.err, "--batch-kb wants a number from 1 to 32768, not \"32769\""));
	run_tool(&r, "apply", "-i", "/dev/null", "--batch-kb", "4k", "g", NULL);
	ASSERT_EQ(2, r.status);
	run_tool(&r, "apply", "-i", "/dev/null", "g", "h", NULL);
	ASSERT_EQ(2, r.status);
	ASSERT_NE(NULL, strstr(r.err, "only one GROUP or PATH, please"));
	run_tool(&r, "apply", "--frob", "g", NULL);
	ASSERT_EQ(2, r.status);
	ASSERT_NE(NULL, strstr(r.err, "apply: unknown option \"--frob\""));
	run_tool(&r, "apply", "g", "-i", NULL);
	ASSERT_EQ(2, r.status);
	ASSERT_NE(NULL, strstr(r.err, "option \"-i\" needs an argument"));
	run_tool(&r, "status", "g", "h", NULL);
	ASSERT_EQ(2, r.status);
	ASSERT_NE(NULL, strstr(r.err, "status: only one GROUP or PATH"));
	/* Without GROUP, the groups repld serves: none answers here. */
	run_tool(&r, "status", "--socket", "/nonexistent/repld.sock", NULL);
	ASSERT_EQ(1, r.status);
	ASSERT_NE(NULL, strstr(r.err, "status: no GROUP given, and repld does not answer at "
			       "/nonexistent/repld.sock: No such file or directory"));
	run_tool(&r, "connect", "--socket", "/nonexistent/repld.sock", "g", NULL);
	ASSERT_EQ(1, r.status);
	ASSERT_NE(NULL, strstr(r.err, "connect: repld at /nonexistent/repld.sock: "));
	run_tool(&r, "disconnect", NULL);
	ASSERT_EQ(2, r.status);
	ASSERT_NE(NULL, strstr(r.err, "disconnect: missing GROUP"));
	run_tool(&r, "status", "-x", "g", NULL);
	ASSERT_EQ(2, r.status);
	run_tool(&r, "status", "--help", NULL);
	ASSERT_EQ(0, r.status);
	ASSERT_NE(NULL, strstr(r.out, "Usage: repltool status"));
	run_tool(&r, "apply", "--help", NULL);
	ASSERT_EQ(0, r.status);
	ASSERT_NE(NULL, strstr(r.out, "Usage: repltool apply"));
	free(r.out);
}

TEST(apply_and_status_on_a_missing_group_are_runtime_errors)
{
	struct run r = { 0 };

	run_tool(&r, "status", "dmrepl-unit-nosuch", NULL);
	ASSERT_EQ(1, r.status);
	ASSERT_STREQ("repltool: /dev/dm-repl/dmrepl-unit-nosuch: No such file or directory "
		     "(is a repl volume in group \"dmrepl-unit-nosuch\" loaded?)\n", r.err);
	run_tool(&r, "apply", "-i", "/dev/null", "dmrepl-unit-nosuch", NULL);
	ASSERT_EQ(1, r.status);
	run_tool(&r, "apply", "-i", "/nonexistent/stream", "dmrepl-unit-nosuch", NULL);
	ASSERT_EQ(1, r.status);
	ASSERT_STREQ("repltool: /nonexistent/stream: No such file or directory\n", r.err);
	free(r.out);
}

/* ---- replicate ---------------------------------------------------------------- */

/* A primary (src) whose ring replicate reads, a secondary (dst) that applies. */
FIXTURE(repl) {
	struct ringsim src_sim, dst_sim;
	struct fakedev src, dst;
	struct run r;
	int too_far;		/* releases beyond what dst had applied */
};

/* The source's releases, checked against what the secondary has applied. */
static void check_release(struct fakedev *src, __u64 seq)
{
	FIXTURE_DATA(repl) *self = src->priv;

	if (seq > self->dst.apply_info.applied_seq)
		self->too_far++;
}

FIXTURE_SETUP(repl)
{
	memset(&self->r, 0, sizeof(self->r));
	self->too_far = 0;
	ASSERT_EQ(0, ringsim_create(&self->src_sim, DATA_SIZE, 0));
	ASSERT_EQ(0, ringsim_create(&self->dst_sim, DATA_SIZE, 0));
	ASSERT_EQ(0, fakedev_create(&self->src, &self->src_sim));
	ASSERT_EQ(0, fakedev_create(&self->dst, &self->dst_sim));
	self->dst.role = DM_REPL_ROLE_SECONDARY;
	self->dst.apply_writes = true;
	self->src.priv = self;
	self->src.on_release = check_release;
}

FIXTURE_TEARDOWN(repl)
{
	EXPECT_EQ(0, self->too_far);	/* in every test, whatever else happens */
	free(self->r.out);
	fakedev_destroy(&self->src);
	fakedev_destroy(&self->dst);
	ringsim_destroy(&self->src_sim);
	ringsim_destroy(&self->dst_sim);
}


/* W 1, F 2, W 3, F 4, W 5, W 6, F 7: WRITEs of 512 bytes (592-byte records). */
static int produce_epochs(struct ringsim *s)
{
	static const unsigned int types[] = { 1, 4, 1, 4, 1, 1, 4 };
	size_t i;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (produce(s, types[i], 0, 8 * i, types[i] == 1 ? 512 : 0, NULL) < 0)
			return -1;
	return 0;
}

/* produce_epochs(), then "repltool replicate --once --stats [--batch-kb KB]". */
static int replicate_epochs(FIXTURE_DATA(repl) *self, const char *kb)
{
	if (produce_epochs(&self->src_sim))
		return -1;
	if (kb)
		run_tool(&self->r, "replicate", "--once", "--stats", "--batch-kb", kb,
			 self->src.path, self->dst.path, NULL);
	else
		run_tool(&self->r, "replicate", "--once", "--stats", self->src.path,
			 self->dst.path, NULL);
	return 0;
}

TEST_F(repl, once_ships_sealed_records_and_releases_what_was_applied)
{
	char want[256];

	ASSERT_EQ(0, produce_mix(&self->src_sim));
	ASSERT_EQ(0, produce_with_failed(&self->src_sim));
	run_tool(&self->r, "replicate", "--once", "--stats", self->src.path, self->dst.path,
		 NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	ASSERT_STREQ("", self->r.err);
	/* The fake secondary checks every record, crc included: all sealed. */
	ASSERT_EQ(10ULL, self->dst.apply_info.applied_seq);
	ASSERT_EQ(0ULL, self->dst.apply_info.rejected);
	ASSERT_EQ(10ULL, self->src.last_release);
	/* The records went as they were: of the source's stream. */
	ASSERT_EQ(RINGSIM_STREAM, self->dst.apply_info.applied_stream);
	/* 5616 bytes of produce_mix(), 1856 of produce_with_failed() (VOID: 80 each). */
	snprintf(want, sizeof(want), "%s: records 10 batches 1 bytes %u skipped 0 "
		 "applied_seq 10\n", self->dst.path, MIX_BYTES + WITH_FAILED_BYTES);
	ASSERT_STREQ(want, self->r.out);
}

TEST_F(repl, every_release_follows_the_write_of_its_batch)
{
	ASSERT_EQ(0, replicate_epochs(self, "1"));
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	/* Batches 1..2, 3..4, 5 (no FLUSH to cut at), 6..7: one release each. */
	ASSERT_EQ(4ULL, self->dst.apply_info.batches);
	ASSERT_EQ(4, self->src.release_calls);
	ASSERT_EQ(7ULL, self->src.last_release);
}

TEST_F(repl, records_already_applied_are_released_without_being_sent)
{
	char want[128];

	self->dst.apply_info.applied_seq = 3;	/* a previous run died before releasing */
	self->dst.apply_info.applied_stream = RINGSIM_STREAM;
	ASSERT_EQ(0, replicate_epochs(self, NULL));
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	ASSERT_EQ(4ULL, self->dst.apply_info.records);
	ASSERT_EQ(0ULL, self->dst.apply_info.skipped);	/* 1..3 were not sent */
	ASSERT_EQ(7ULL, self->src.last_release);
	/* F 4, W 5, W 6, F 7 */
	snprintf(want, sizeof(want), ": records 4 batches 1 bytes %u skipped 3 "
		 "applied_seq 7\n", 2 * HDR + 2 * RECLEN(512));
	ASSERT_NE(NULL, strstr(self->r.out, want)) TH_LOG("%s", self->r.out);
}

TEST_F(repl, a_ring_applied_in_full_is_released_and_nothing_sent)
{
	self->dst.apply_info.applied_seq = 7;
	ASSERT_EQ(0, replicate_epochs(self, NULL));
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	ASSERT_EQ(0, self->dst.writes);
	ASSERT_EQ(7ULL, self->src.last_release);
}

TEST_F(repl, a_secondary_ahead_of_the_primary_is_refused)
{
	char want[256];

	self->dst.apply_info.applied_seq = 100;
	ASSERT_EQ(0, replicate_epochs(self, NULL));
	ASSERT_EQ(1, self->r.status);
	snprintf(want, sizeof(want), "repltool: replicate: %s: applied sequence 100 is past "
		 "the last sequence of %s (7): a replica of another group?\n",
		 self->dst.path, self->src.path);
	ASSERT_STREQ(want, self->r.err);
	ASSERT_EQ(0, self->dst.writes);
	ASSERT_EQ(0, self->src.release_calls);
}

TEST_F(repl, a_refused_batch_names_the_reason_and_releases_nothing)
{
	char want[256];

	self->dst.write_errno = EXDEV;
	self->dst.apply_info.last_error = -EXDEV;
	self->dst.apply_info.last_reason = DM_REPL_APPLY_OTHER_GROUP;
	self->dst.apply_info.last_error_seq = 1;
	ASSERT_EQ(0, replicate_epochs(self, NULL));
	ASSERT_EQ(1, self->r.status);
	snprintf(want, sizeof(want), "repltool: replicate: %s: batch refused at seq 1: "
		 "record of another group (group_tag) (%s)\n", self->dst.path,
		 strerror(EXDEV));
	ASSERT_STREQ(want, self->r.err);
	ASSERT_EQ(0, self->src.release_calls);
	ASSERT_EQ(0ULL, self->src_sim.ctl->released_seq);
}

TEST_F(repl, after_a_refused_batch_only_the_batches_before_it_are_released)
{
	self->dst.write_errno = EIO;
	self->dst.write_errno_after = 1;	/* 1..2 are applied, 3..4 fail */
	ASSERT_EQ(0, replicate_epochs(self, "1"));
	ASSERT_EQ(1, self->r.status);
	ASSERT_NE(NULL, strstr(self->r.err, "batch of seq 3..4 refused: Input/output error"))
		TH_LOG("%s", self->r.err);
	ASSERT_EQ(2ULL, self->dst.apply_info.applied_seq);
	ASSERT_EQ(1, self->src.release_calls);
	ASSERT_EQ(2ULL, self->src.last_release);
}

TEST_F(repl, a_gap_is_refused_by_the_secondary)
{
	ASSERT_EQ(0, produce_epochs(&self->src_sim));
	ASSERT_EQ(0, ringsim_release(&self->src_sim, 2));	/* lost by a pipe */
	run_tool(&self->r, "replicate", "--once", self->src.path, self->dst.path, NULL);
	ASSERT_EQ(1, self->r.status);
	ASSERT_NE(NULL, strstr(self->r.err, "batch refused at seq 3: sequence gap"))
		TH_LOG("%s", self->r.err);
	ASSERT_EQ(0, self->src.release_calls);
}

TEST_F(repl, the_records_before_a_corrupt_slot_are_shipped_and_released)
{
	char want[128];
	long long pos;

	ASSERT_LE(0, produce(&self->src_sim, DM_REPL_REC_WRITE, 0, 0, 512, NULL));
	ASSERT_LE(0, produce(&self->src_sim, DM_REPL_REC_FLUSH, 0, 0, 0, NULL));
	pos = produce(&self->src_sim, DM_REPL_REC_WRITE, 0, 0, 512, NULL);
	ASSERT_LE(0, pos);
	((unsigned char *)ringsim_rec_at(&self->src_sim, (__u64)pos))[0] ^= 1;
	run_tool(&self->r, "replicate", "--once", self->src.path, self->dst.path, NULL);
	ASSERT_EQ(1, self->r.status);
	/* The third slot: after the slots of W 512 and of a FLUSH. */
	snprintf(want, sizeof(want), ": corrupt ring at position %u: bad magic\n",
		 2 * SLOT_HDR + RECLEN(512) + HDR);
	ASSERT_NE(NULL, strstr(self->r.err, want)) TH_LOG("%s", self->r.err);
	ASSERT_EQ(2ULL, self->dst.apply_info.applied_seq);
	ASSERT_EQ(2ULL, self->src.last_release);
}

TEST_F(repl, sigterm_finishes_the_batch_and_exits_0)
{
	struct later l;
	pthread_t th;

	ASSERT_EQ(0, produce_epochs(&self->src_sim));
	start_later(&l, &self->src_sim, &self->src, LATER_SIGTERM, &th);
	run_tool(&self->r, "replicate", self->src.path, self->dst.path, NULL);
	pthread_join(th, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	ASSERT_EQ(7ULL, self->dst.apply_info.applied_seq);
	ASSERT_EQ(7ULL, self->src.last_release);
}

TEST_F(repl, follows_new_records_until_the_source_goes_away)
{
	struct later l;
	pthread_t th;

	ASSERT_LE(0, produce(&self->src_sim, DM_REPL_REC_WRITE, 0, 0, 512, NULL));
	start_later(&l, &self->src_sim, &self->src, LATER_REMOVE, &th);
	run_tool(&self->r, "replicate", self->src.path, self->dst.path, NULL);
	pthread_join(th, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	/* The record committed just before the removal is shipped too. */
	ASSERT_EQ(2ULL, self->dst.apply_info.applied_seq);
	ASSERT_EQ(2ULL, self->src.last_release);
	ASSERT_NE(NULL, strstr(self->r.err, "the group went away"));
}

TEST_F(repl, a_primary_target_is_refused)
{
	self->dst.role = DM_REPL_ROLE_PRIMARY;
	run_tool(&self->r, "replicate", "--once", self->src.path, self->dst.path, NULL);
	ASSERT_EQ(1, self->r.status);
	ASSERT_NE(NULL, strstr(self->r.err, ": group \"fake\" is primary; replicate writes "
			       "to a secondary group only\n"));
	ASSERT_EQ(0, self->src.release_calls);
}

TEST(replicate_usage_errors_exit_2)
{
	struct run r = { 0 };

	run_tool(&r, "replicate", "g1", NULL);
	ASSERT_EQ(2, r.status);
	ASSERT_NE(NULL, strstr(r.err, "replicate: wants SOURCE_GROUP and TARGET_GROUP"));
	run_tool(&r, "replicate", "g1", "g2", "g3", NULL);
	ASSERT_EQ(2, r.status);
	run_tool(&r, "replicate", "--batch-kb", "0", "g1", "g2", NULL);
	ASSERT_EQ(2, r.status);
	ASSERT_NE(NULL, strstr(r.err, "replicate: --batch-kb wants a number from 1 to 32768"));
	run_tool(&r, "replicate", "--frob", "g1", "g2", NULL);
	ASSERT_EQ(2, r.status);
	run_tool(&r, "replicate", "--help", NULL);
	ASSERT_EQ(0, r.status);
	ASSERT_NE(NULL, strstr(r.out, "Usage: repltool replicate"));
	run_tool(&r, "replicate", "--once", "dmrepl-unit-nosuch", "g2", NULL);
	ASSERT_EQ(1, r.status);
	ASSERT_NE(NULL, strstr(r.err, "is a repl volume in group \"dmrepl-unit-nosuch\" loaded?"));
	free(r.out);
}

/* ---- verify ------------------------------------------------------------------- */

/* The fake group: one volume (index 0) of 2048 sectors, 16 regions of 128. */
TEST_F(tool, verify_puts_a_record_for_every_region_and_exits_0)
{
	int i;

	run_tool(&self->r, "verify", self->dev.path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s%s", self->r.out, self->r.err);
	ASSERT_EQ(16, self->dev.nr_resyncs);
	for (i = 0; i < 16; i++) {
		EXPECT_EQ((__u32)DM_REPL_RESYNCF_VERIFY, self->dev.resyncs[i].flags);
		EXPECT_EQ((__u64)i, self->dev.resyncs[i].region);
	}
	ASSERT_NE(NULL, strstr(self->r.out, ": 16 regions (1048576 bytes) put in the ring"))
		TH_LOG("%s", self->r.out);
}

TEST_F(tool, verify_whose_every_region_raced_exits_4)
{
	self->dev.verify_raced = true;
	run_tool(&self->r, "verify", self->dev.path, NULL);
	ASSERT_EQ(4, self->r.status) TH_LOG("%s%s", self->r.out, self->r.err);
	ASSERT_EQ(16 * DMREPL_VERIFY_TRIES, self->dev.nr_resyncs);
	ASSERT_NE(NULL, strstr(self->r.out, "16 regions given up, 0 put in the ring: not every "
			       "region will be compared\n")) TH_LOG("%s", self->r.out);
}

TEST_F(tool, results_with_nothing_compared_exit_4)
{
	secondary(&self->dev);
	run_tool(&self->r, "verify", "--results", self->dev.path, NULL);
	ASSERT_EQ(4, self->r.status) TH_LOG("%s%s", self->r.out, self->r.err);
	ASSERT_NE(NULL, strstr(self->r.out, "no VERIFY record compared here: not verified\n"))
		TH_LOG("%s", self->r.out);

	/* Compared, but nothing from --since on. */
	self->dev.verify_info.compared = 3;
	self->dev.verify_info.last_seq = 40;
	run_tool(&self->r, "verify", "--results", "--since", "41", self->dev.path, NULL);
	ASSERT_EQ(4, self->r.status) TH_LOG("%s%s", self->r.out, self->r.err);
	run_tool(&self->r, "verify", "--results", "--since", "40", self->dev.path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s%s", self->r.out, self->r.err);
}

static void mismatch(struct dm_repl_verify_info *vi, __u64 seq, __u64 sector)
{
	vi->list[vi->nr++] = (struct dm_repl_verify_mismatch) {
		.seq = seq, .sector = sector, .nbytes = 65536,
	};
	vi->mismatches++;
	vi->compared++;
	vi->last_seq = seq;
}

/* By the sector the primary's region starts at: the replica's regions may differ. */
TEST_F(tool, results_list_mismatches_by_sector_from_since_and_exit_3)
{
	secondary(&self->dev);
	mismatch(&self->dev.verify_info, 10, 256);
	mismatch(&self->dev.verify_info, 12, 384);
	run_tool(&self->r, "verify", "--results", "--since", "11", self->dev.path, NULL);
	ASSERT_EQ(3, self->r.status) TH_LOG("%s%s", self->r.out, self->r.err);
	ASSERT_EQ(NULL, strstr(self->r.out, "seq 10\n")) TH_LOG("%s", self->r.out);
	ASSERT_NE(NULL, strstr(self->r.out, "mismatch volume 0 sector 384 seq 12\n"))
		TH_LOG("%s", self->r.out);
	ASSERT_NE(NULL, strstr(self->r.out, "2 mismatches since loaded, 1 listed"))
		TH_LOG("%s", self->r.out);
}

TEST_F(tool, results_say_which_mismatches_left_the_list)
{
	struct dm_repl_verify_info *vi = &self->dev.verify_info;
	int i;

	secondary(&self->dev);
	for (i = 0; i < DM_REPL_VERIFY_LIST; i++)
		mismatch(vi, 100 + (__u64)i, 0);
	vi->mismatches = 200;
	run_tool(&self->r, "verify", "--results", "--since", "50", self->dev.path, NULL);
	ASSERT_EQ(3, self->r.status) TH_LOG("%s%s", self->r.out, self->r.err);
	ASSERT_NE(NULL, strstr(self->r.out, "the list holds the last 128 mismatches only: those "
			       "before seq 100 are not listed\n")) TH_LOG("%s", self->r.out);
	/* From the oldest listed on, nothing is missing. */
	run_tool(&self->r, "verify", "--results", "--since", "100", self->dev.path, NULL);
	ASSERT_EQ(3, self->r.status);
	ASSERT_EQ(NULL, strstr(self->r.out, "not listed")) TH_LOG("%s", self->r.out);
}

TEST_F(tool, resend_takes_the_sector_a_region_starts_at_or_the_region)
{
	run_tool(&self->r, "verify", "--resend", "0@384,0:2", self->dev.path, NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s%s", self->r.out, self->r.err);
	ASSERT_EQ(2, self->dev.nr_resyncs);
	EXPECT_EQ(3ULL, self->dev.resyncs[0].region);
	EXPECT_EQ(2ULL, self->dev.resyncs[1].region);
	EXPECT_EQ((__u32)DM_REPL_RESYNCF_ANY, self->dev.resyncs[0].flags);
	ASSERT_NE(NULL, strstr(self->r.out, "resend fake: 2 regions put in the ring"));
}

/* A sector that no region of this primary starts at: nothing is resent. */
TEST_F(tool, resend_refuses_a_sector_that_starts_no_region)
{
	run_tool(&self->r, "verify", "--resend", "0:1,0@192", self->dev.path, NULL);
	ASSERT_EQ(1, self->r.status) TH_LOG("%s%s", self->r.out, self->r.err);
	ASSERT_EQ(0, self->dev.nr_resyncs);
	ASSERT_NE(NULL, strstr(self->r.err, "--resend 0@192: not where a region of volume 0 "
			       "starts (regions of 128 sectors, 2048 sectors)"))
		TH_LOG("%s", self->r.err);
	run_tool(&self->r, "verify", "--resend", "0@2048", self->dev.path, NULL);
	ASSERT_EQ(1, self->r.status);
	run_tool(&self->r, "verify", "--resend", "0:16", self->dev.path, NULL);
	ASSERT_EQ(1, self->r.status);
	ASSERT_NE(NULL, strstr(self->r.err, "volume 0 has 16 regions")) TH_LOG("%s", self->r.err);
	run_tool(&self->r, "verify", "--resend", "1@0", self->dev.path, NULL);
	ASSERT_EQ(1, self->r.status);
	ASSERT_NE(NULL, strstr(self->r.err, "--resend: no volume 1")) TH_LOG("%s", self->r.err);
	ASSERT_EQ(0, self->dev.nr_resyncs);
}

/* The replica is past the pass, but none of its records was compared there. */
TEST_F(repl, verify_with_a_replica_that_compared_nothing_exits_4)
{
	self->dst.apply_info.applied_seq = 1000;
	run_tool(&self->r, "verify", "--replica", self->dst.path, self->src.path, NULL);
	ASSERT_EQ(4, self->r.status) TH_LOG("%s%s", self->r.out, self->r.err);
	ASSERT_NE(NULL, strstr(self->r.out, ": nothing compared on ")) TH_LOG("%s", self->r.out);
}

TEST_HARNESS_MAIN
