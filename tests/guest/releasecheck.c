// SPDX-License-Identifier: GPL-2.0
/*
 * releasecheck.so: an LD_PRELOAD shim for the guest tests. It checks, at
 * every DM_REPL_IOC_RELEASE the program makes and before the release
 * happens, that the sequence released is at most the applied_seq of the
 * secondary group RELEASECHECK_TARGET (a /dev/dm-repl/GROUP path; read with
 * DM_REPL_IOC_APPLY_INFO). Each release appends one line to
 * RELEASECHECK_LOG:
 *
 *   release SEQ applied APPLIED ok
 *   release SEQ applied APPLIED VIOLATION
 *
 * or "release SEQ error ERRNO" when the target's applied_seq cannot be
 * read. Since applied_seq never goes back, a release that passes the check
 * is at most applied_seq from then on: the invariant is checked at every
 * step, not sampled.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/dm-repl.h>

typedef int (*ioctl_fn)(int, unsigned long, ...);

static int target_fd = -1;

static void log_line(const char *line)
{
	const char *path = getenv("RELEASECHECK_LOG");
	ssize_t n;
	int fd;

	if (!path)
		return;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	/* One write per line: a kill between two releases cuts no line. */
	n = write(fd, line, strlen(line));
	(void)n;
	close(fd);
}

static void check_release(ioctl_fn real, __u64 seq)
{
	struct dm_repl_apply_info info;
	const char *target = getenv("RELEASECHECK_TARGET");
	char line[160];
	int saved = errno;

	if (target && target_fd < 0)
		target_fd = open(target, O_RDONLY | O_CLOEXEC);
	memset(&info, 0, sizeof(info));
	info.abi_version = DM_REPL_ABI_VERSION;
	if (target_fd < 0 || real(target_fd, DM_REPL_IOC_APPLY_INFO, &info) < 0)
		snprintf(line, sizeof(line), "release %llu error %d\n",
			 (unsigned long long)seq, errno);
	else
		snprintf(line, sizeof(line), "release %llu applied %llu %s\n",
			 (unsigned long long)seq, (unsigned long long)info.applied_seq,
			 seq <= info.applied_seq ? "ok" : "VIOLATION");
	log_line(line);
	errno = saved;
}

int ioctl(int fd, unsigned long request, ...)
{
	static ioctl_fn real;
	va_list ap;
	void *arg;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (!real)
		real = (ioctl_fn)dlsym(RTLD_NEXT, "ioctl");
	if (request == DM_REPL_IOC_RELEASE && arg)
		check_release(real, *(const __u64 *)arg);
	return real(fd, request, arg);
}
