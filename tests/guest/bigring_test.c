// SPDX-License-Identifier: GPL-2.0
/*
 * The largest rings: ring_mb is documented from 2 to 16384 (as memory
 * allows). Needs a guest with more than 8 GiB (the table refuses a ring
 * over half the memory): tests/run-all.sh runs it in a second guest started
 * with vm.sh --mem 10240 (the "bigmem" section of tests/manifest). In a
 * smaller guest it fails: it must never pass without having run.
 *
 * Runs in the guest (tests/guest/vm.sh) with dm-repl.ko loaded.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "testlib.h"

#define DATA_MB		16

FIXTURE(bigring) {
	struct tl_env env;
	struct tl_vol vol;
};

FIXTURE_SETUP(bigring)
{
	TL_SETUP(&self->env);
}

FIXTURE_TEARDOWN(bigring)
{
	TL_TEARDOWN(&self->env);
}

static long long mem_total_kb(void)
{
	char out[64];

	if (tl_run_out(out, sizeof(out), "awk '/^MemTotal:/ { print $2 }' /proc/meminfo"))
		return -1;
	return strtoll(out, NULL, 10);
}

/*
 * A 4 GiB ring has 4 GiB of data and maps whole. Writes nothing to the
 * volume: with a ring smaller than it claims, a write would land outside
 * the vmap area.
 */
TEST_F_TIMEOUT(bigring, a_4096_mb_ring_has_4096_mb_and_maps_whole, 300)
{
	struct dm_repl_group_info info;
	struct dmrepl_ring *ring;
	char msg[DMREPL_ERRMSG_LEN], vm[64] = "";
	long long kb = mem_total_kb();
	int fd, r;

	ASSERT_LE((4096LL << 10) + (256LL << 10), kb / 2) {
		TH_LOG("needs more than 8 GiB of guest memory (vm.sh --mem 10240), have %lld KiB",
		       kb);
	}
	ASSERT_EQ(0, tl_vol_create(&self->env, &self->vol, "big1", "big1", DATA_MB,
				   "2 ring_mb 4096"));
	fd = tl_env_track_fd(&self->env, open("/dev/dm-repl/big1", O_RDONLY | O_CLOEXEC));
	ASSERT_LE(0, fd);
	memset(&info, 0, sizeof(info));
	info.abi_version = DM_REPL_ABI_VERSION;
	ASSERT_EQ(0, ioctl(fd, DM_REPL_IOC_GROUP_INFO, &info));
	EXPECT_EQ(4096ULL << 20, info.data_size);
	/*
	 * The ring's areas in /proc/vmallocinfo (start-end size caller ...): its
	 * own allocations and the vmap of the data twice; the largest is that.
	 */
	ASSERT_EQ(0, tl_run_out(vm, sizeof(vm),
				"awk '/repl_ring_init/ { print $2 }' /proc/vmallocinfo | "
				"sort -n | tail -n 1"));
	TH_LOG("largest repl_ring_init area in vmallocinfo: %s bytes", vm);
	/* The kernel's area: control page + twice the data (+ guard page). */
	EXPECT_LE((4096ULL << 21) + 4096, strtoull(vm, NULL, 10)) {
		TH_LOG("the ring's vmap area is smaller than its data_size");
	}
	r = dmrepl_ring_open("big1", &ring, msg, sizeof(msg));
	EXPECT_EQ(0, r) {
		TH_LOG("map %llu bytes: %s", (unsigned long long)info.mmap_size, msg);
	}
	if (!r)
		dmrepl_ring_close(ring);
}

TEST_HARNESS_MAIN
