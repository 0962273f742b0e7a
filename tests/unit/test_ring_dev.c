// SPDX-License-Identifier: GPL-2.0
/*
 * The ring consumer through its character device: open, GROUP_INFO and the
 * ABI handshake, mmap, RELEASE, poll. The device is fakedev (a pipe whose
 * ioctl() and mmap() a ringsim answers), since the host cannot load the
 * module; the guest tests run the same calls against the real one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dmrepl.h"
#include "fakedev.h"
#include "kselftest_harness.h"

#define DATA_SIZE (64 * 1024)

FIXTURE(dev) {
	struct ringsim sim;
	struct fakedev dev;
	struct dmrepl_ring *ring;
	const struct dm_repl_rec *rec;
	char msg[DMREPL_ERRMSG_LEN];
};

FIXTURE_SETUP(dev)
{
	ASSERT_EQ(0, ringsim_create(&self->sim, DATA_SIZE, 0));
	ASSERT_EQ(0, fakedev_create(&self->dev, &self->sim));
	self->ring = NULL;
}

FIXTURE_TEARDOWN(dev)
{
	dmrepl_ring_close(self->ring);
	fakedev_destroy(&self->dev);
	ringsim_destroy(&self->sim);
}

/* "ABI version mismatch: <who> <verb> version <theirs>, libdmrepl speaks ..." */
static const char *abi_mismatch(const char *who, __u32 theirs)
{
	static char msg[128];

	snprintf(msg, sizeof(msg), "ABI version mismatch: %s version %u, libdmrepl speaks "
		 "version %u", who, theirs, DM_REPL_ABI_VERSION);
	return msg;
}

static long long produce(struct ringsim *s, __u32 bytes)
{
	struct dmrepl_rec_fields f = { .type = DM_REPL_REC_WRITE, .payload_len = bytes };

	return ringsim_produce(s, &f);
}

TEST(group_names_resolve_under_dev_dm_repl)
{
	char buf[64];

	ASSERT_EQ(0, dmrepl_ring_path("vm1", buf, sizeof(buf)));
	ASSERT_STREQ("/dev/dm-repl/vm1", buf);
	ASSERT_EQ(0, dmrepl_ring_path("./vm1", buf, sizeof(buf)));
	ASSERT_STREQ("./vm1", buf);
	ASSERT_EQ(-EINVAL, dmrepl_ring_path("", buf, sizeof(buf)));
	ASSERT_EQ(0, dmrepl_ring_path("0123456789012345678901234567890", buf, sizeof(buf)));
	ASSERT_EQ(-ENAMETOOLONG,
		  dmrepl_ring_path("01234567890123456789012345678901", buf, sizeof(buf)));
	ASSERT_EQ(-ENAMETOOLONG, dmrepl_ring_path("/a/long/path", buf, 8));
}

TEST(missing_group_is_enoent_in_words)
{
	struct dmrepl_ring *ring;
	char msg[DMREPL_ERRMSG_LEN];

	ASSERT_EQ(-ENOENT, dmrepl_ring_open("dmrepl-unit-no-such-group", &ring, msg,
					    sizeof(msg)));
	ASSERT_STREQ("No such file or directory", msg);
}

TEST(device_that_is_not_dm_repl_is_refused)
{
	struct dmrepl_ring *ring;
	char msg[DMREPL_ERRMSG_LEN];

	ASSERT_EQ(-ENOTTY, dmrepl_ring_open("/dev/null", &ring, msg, sizeof(msg)));
	ASSERT_STREQ("DM_REPL_IOC_GROUP_INFO: Inappropriate ioctl for device (not a dm-repl device)",
		     msg);
}

TEST_F(dev, open_maps_the_ring_read_only_and_reads_records)
{
	ASSERT_LE(0, produce(&self->sim, 4096));
	ASSERT_LE(0, produce(&self->sim, 512));
	ASSERT_EQ(0, dmrepl_ring_open(self->dev.path, &self->ring, self->msg,
				      sizeof(self->msg)));
	ASSERT_STREQ(self->dev.path, dmrepl_ring_dev_path(self->ring));
	ASSERT_LE(0, dmrepl_ring_fd(self->ring));
	ASSERT_EQ(FD_CLOEXEC, fcntl(dmrepl_ring_fd(self->ring), F_GETFD) & FD_CLOEXEC);
	ASSERT_EQ(1, dmrepl_ring_next(self->ring, &self->rec));
	ASSERT_EQ(1ULL, dmrepl_rec_seq(self->rec));
	ASSERT_EQ(RINGSIM_STREAM, dmrepl_rec_stream(self->rec));
	ASSERT_EQ(DM_REPL_REC_HDR_SIZE + 4096U, dmrepl_rec_len(self->rec));
	ASSERT_EQ(1, dmrepl_ring_next(self->ring, &self->rec));
	ASSERT_EQ(2ULL, dmrepl_rec_seq(self->rec));
	ASSERT_EQ(0, dmrepl_ring_next(self->ring, &self->rec));
}

TEST_F(dev, module_with_another_abi_version_is_refused_naming_both)
{
	self->dev.abi_version = DM_REPL_ABI_VERSION + 1;
	ASSERT_EQ(-EPROTO, dmrepl_ring_open(self->dev.path, &self->ring, self->msg,
					    sizeof(self->msg)));
	ASSERT_EQ(NULL, self->ring);
	ASSERT_STREQ(abi_mismatch("module speaks", DM_REPL_ABI_VERSION + 1), self->msg);
	/* The ABI of 64-byte records, before streams. */
	self->dev.abi_version = 2;
	ASSERT_EQ(-EPROTO, dmrepl_ring_open(self->dev.path, &self->ring, self->msg,
					    sizeof(self->msg)));
	ASSERT_STREQ(abi_mismatch("module speaks", 2), self->msg);
}

TEST_F(dev, module_refusing_our_abi_version_is_an_error_in_words)
{
	self->dev.abi_version = DM_REPL_ABI_VERSION + 1;
	self->dev.refuse_version = true;
	ASSERT_EQ(-EINVAL, dmrepl_ring_open(self->dev.path, &self->ring, self->msg,
					    sizeof(self->msg)));
	ASSERT_STREQ("DM_REPL_IOC_GROUP_INFO: Invalid argument", self->msg);
}

TEST_F(dev, control_page_with_another_abi_version_is_refused)
{
	self->sim.ctl->abi_version = DM_REPL_ABI_VERSION + 1;
	ASSERT_EQ(-EPROTO, dmrepl_ring_open(self->dev.path, &self->ring, self->msg,
					    sizeof(self->msg)));
	ASSERT_STREQ(abi_mismatch("ring has", DM_REPL_ABI_VERSION + 1), self->msg);
}

TEST_F(dev, info_returns_the_module_view_of_the_group)
{
	struct dm_repl_group_info info;

	ASSERT_LE(0, produce(&self->sim, 512));
	ASSERT_EQ(0, dmrepl_ring_open(self->dev.path, &self->ring, NULL, 0));
	ASSERT_EQ(0, dmrepl_ring_info(self->ring, &info));
	ASSERT_EQ((__u32)DM_REPL_ABI_VERSION, info.abi_version);
	ASSERT_EQ((__u64)DATA_SIZE, info.data_size);
	ASSERT_EQ(self->sim.map_size, info.mmap_size);
	ASSERT_EQ(2ULL, info.next_seq);
	ASSERT_EQ(RINGSIM_STREAM, info.stream);
	ASSERT_STREQ("fake", info.name);
	self->dev.abi_version = 7;
	ASSERT_EQ(-EPROTO, dmrepl_ring_info(self->ring, &info));
}

TEST_F(dev, release_frees_records_up_to_a_sequence)
{
	ASSERT_LE(0, produce(&self->sim, 512));
	ASSERT_LE(0, produce(&self->sim, 512));
	ASSERT_LE(0, produce(&self->sim, 512));
	ASSERT_EQ(0, dmrepl_ring_open(self->dev.path, &self->ring, NULL, 0));
	ASSERT_EQ(1, dmrepl_ring_next(self->ring, &self->rec));
	ASSERT_EQ(1, dmrepl_ring_next(self->ring, &self->rec));
	ASSERT_EQ(0, dmrepl_ring_release(self->ring, 2));
	ASSERT_EQ(2ULL, self->dev.last_release);
	ASSERT_EQ(dmrepl_ring_pos(self->ring), self->sim.ctl->released_pos);
	ASSERT_EQ(0, dmrepl_ring_release(self->ring, 2));	/* again: no-op */
	ASSERT_EQ(-EINVAL, dmrepl_ring_release(self->ring, 4));	/* never reserved */
}

TEST_F(dev, release_of_a_busy_record_is_refused)
{
	struct dmrepl_rec_fields f = { .payload_len = 512 };

	ASSERT_LE(0, ringsim_produce_busy(&self->sim, &f));
	ASSERT_EQ(0, dmrepl_ring_open(self->dev.path, &self->ring, NULL, 0));
	ASSERT_EQ(-EINVAL, dmrepl_ring_release(self->ring, 1));
}

TEST_F(dev, wait_reports_committed_records_and_times_out_otherwise)
{
	ASSERT_EQ(0, dmrepl_ring_open(self->dev.path, &self->ring, NULL, 0));
	ASSERT_EQ(0, dmrepl_ring_wait(self->ring, 0));
	ASSERT_LE(0, produce(&self->sim, 512));
	fakedev_wake(&self->dev);
	ASSERT_EQ(1, dmrepl_ring_wait(self->ring, 1000));
	ASSERT_EQ(1, dmrepl_ring_next(self->ring, &self->rec));
	fakedev_drain(&self->dev);
	ASSERT_EQ(0, dmrepl_ring_wait(self->ring, 10));
}

TEST_F(dev, wait_reports_a_removed_group_as_enodev)
{
	ASSERT_EQ(0, dmrepl_ring_open(self->dev.path, &self->ring, NULL, 0));
	fakedev_remove(&self->dev);
	ASSERT_EQ(-ENODEV, dmrepl_ring_wait(self->ring, -1));
	/* What was committed before stays readable. */
	ASSERT_LE(0, produce(&self->sim, 512));
	ASSERT_EQ(1, dmrepl_ring_next(self->ring, &self->rec));
}

TEST_F(dev, close_releases_the_file_descriptor)
{
	int fd;

	ASSERT_EQ(0, dmrepl_ring_open(self->dev.path, &self->ring, NULL, 0));
	fd = dmrepl_ring_fd(self->ring);
	dmrepl_ring_close(self->ring);
	self->ring = NULL;
	ASSERT_EQ(-1, fcntl(fd, F_GETFD));
	ASSERT_EQ(EBADF, errno);
}

TEST_HARNESS_MAIN
