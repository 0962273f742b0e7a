// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Reading a primary's ring, for the commands that consume it (dump,
 * replicate): opening it, the next slot, waiting for more until a signal
 * or the group's removal, releasing.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "dmrepl.h"
#include "repltool.h"

/* While following, wake up this often to notice a signal that raced poll(). */
#define WAIT_SLICE_MS 1000

volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

void catch_stop_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };

	/* No SA_RESTART: poll() returns EINTR and the loop sees the flag. */
	stop_requested = 0;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int open_ring(const char *target, struct dmrepl_ring **ring, char *path, size_t path_len)
{
	char msg[DMREPL_ERRMSG_LEN];
	int ret;

	ret = dmrepl_ring_path(target, path, path_len);
	if (ret) {
		err_msg("%s: %s", target, ret == -ENAMETOOLONG ?
			"group name too long" : "empty group name");
		return -1;
	}
	ret = dmrepl_ring_open(target, ring, msg, sizeof(msg));
	if (!ret)
		return 0;
	report_open_error(target, path, ret, msg);
	return -1;
}

int next_slot(struct dmrepl_ring *ring, const char *path, const struct dm_repl_rec **r,
	      bool *discarded)
{
	int ret = dmrepl_ring_next_slot(ring, r, discarded);

	if (ret >= 0)
		return ret;
	err_msg("%s: corrupt ring at position %llu: %s", path,
		(unsigned long long)dmrepl_ring_pos(ring), dmrepl_ring_why(ring));
	return -1;
}

/* Wait for records: 0 (more may be there), 1 (stop), -ENODEV (gone) or -1 (reported). */
static int wait_records(struct dmrepl_ring *ring, const char *path)
{
	int ret;

	for (;;) {
		if (stop_requested)
			return 1;
		ret = dmrepl_ring_wait(ring, WAIT_SLICE_MS);
		if (ret == 1)
			return 0;
		if (ret == 0 || ret == -EINTR)
			continue;
		if (ret == -ENODEV)
			return -ENODEV;
		err_msg("%s: poll: %s", path, strerror(-ret));
		return -1;
	}
}

int release_ring(struct dmrepl_ring *ring, const char *path, __u64 seq, bool gone)
{
	int ret = dmrepl_ring_release(ring, seq);

	if (!ret || (gone && ret == -ENODEV))
		return 0;
	err_msg("%s: release up to sequence %llu: %s", path, (unsigned long long)seq,
		strerror(-ret));
	return -1;
}

int follow_ring(struct dmrepl_ring *ring, const char *path,
		int (*step)(void *arg, bool gone), bool (*done)(void *arg), void *arg)
{
	bool gone = false;
	int ret;

	for (;;) {
		if (step(arg, gone))
			return EXIT_RUNTIME;
		if (gone) {
			err_msg("%s: the group went away (its last volume was removed)",
				path);
			return EXIT_OK;
		}
		if (done(arg) || stop_requested)
			return EXIT_OK;
		ret = wait_records(ring, path);
		if (ret == 1)
			return EXIT_OK;
		if (ret == -ENODEV)
			gone = true;	/* one last step over what was committed */
		else if (ret)
			return EXIT_RUNTIME;
	}
}
