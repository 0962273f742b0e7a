// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * repltool: device-mapper devices through libdevmapper (see dm.h).
 *
 * Nodes: with udev running, a cookie makes each call wait for udev's rules;
 * without it (the test guests, rescue systems) libdevmapper's fallback or
 * dm_mknodes() makes and removes /dev/mapper/NAME, checked afterwards.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <libdevmapper.h>

#include "dm.h"

static void quiet_log(int level, const char *file, int line, int dm_errno_or_class,
		      const char *f, ...)
{
	(void)level;
	(void)file;
	(void)line;
	(void)dm_errno_or_class;
	(void)f;
}

static struct dm_task *task(int type, const char *name)
{
	struct dm_task *dmt;

	dm_log_with_errno_init(quiet_log);
	dmt = dm_task_create(type);
	if (!dmt)
		return NULL;
	if (!dm_task_set_name(dmt, name)) {
		dm_task_destroy(dmt);
		return NULL;
	}
	return dmt;
}

/* Run dmt and destroy it: 0 or -errno. With udev, wait for its rules. */
static int run(struct dm_task *dmt, bool sync_udev)
{
	uint32_t cookie = 0;
	int ret = 0;

	if (sync_udev && !dm_task_set_cookie(dmt, &cookie, 0)) {
		dm_task_destroy(dmt);
		return -ENOMEM;
	}
	if (!dm_task_run(dmt)) {
		ret = dm_task_get_errno(dmt);
		ret = -(ret ? ret : EIO);
	}
	if (sync_udev)
		dm_udev_wait(cookie);
	dm_task_destroy(dmt);
	return ret;
}

int dmdev_info(const char *name, struct dmdev_info *info)
{
	struct dm_task *dmt = task(DM_DEVICE_INFO, name);
	struct dm_info i;
	int ret;

	memset(info, 0, sizeof(*info));
	if (!dmt)
		return -ENOMEM;
	if (!dm_task_run(dmt)) {
		ret = dm_task_get_errno(dmt);
		dm_task_destroy(dmt);
		return -(ret ? ret : EIO);
	}
	ret = dm_task_get_info(dmt, &i) ? 0 : -EIO;
	if (!ret && i.exists) {
		info->exists = true;
		info->suspended = i.suspended;
		info->open_count = i.open_count;
		info->major = i.major;
		info->minor = i.minor;
	}
	dm_task_destroy(dmt);
	return ret;
}

int dmdev_table(const char *name, __u64 *sectors, char *type, size_t typelen,
		char *params, size_t len)
{
	struct dm_task *dmt = task(DM_DEVICE_TABLE, name);
	char *ttype = NULL, *tparams = NULL;
	uint64_t start, length;
	void *next;
	int ret;

	if (!dmt)
		return -ENOMEM;
	if (!dm_task_run(dmt)) {
		ret = dm_task_get_errno(dmt);
		dm_task_destroy(dmt);
		return -(ret ? ret : EIO);
	}
	next = dm_get_next_target(dmt, NULL, &start, &length, &ttype, &tparams);
	if (!ttype)
		ret = -ENXIO;
	else if (next || start)
		ret = -EMLINK;
	else if ((size_t)snprintf(type, typelen, "%s", ttype) >= typelen ||
		 (size_t)snprintf(params, len, "%s", tparams ? tparams : "") >= len)
		ret = -ENAMETOOLONG;
	else
		ret = 0;
	*sectors = length;
	dm_task_destroy(dmt);
	return ret;
}

/* /dev/mapper/name is (present) or is not a node; dm_mknodes() fixes it. */
static int check_node(const char *name, bool present)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dm_dir(), name);
	if ((stat(path, &st) == 0) == present)
		return 0;
	if (!dm_mknodes(name))
		return -EIO;
	if ((stat(path, &st) == 0) == present)
		return 0;
	return present ? -ENOENT : -EEXIST;
}

static int load(int type, const char *name, __u64 sectors, const char *ttype,
		const char *params)
{
	struct dm_task *dmt = task(type, name);

	if (!dmt)
		return -ENOMEM;
	if (!dm_task_add_target(dmt, 0, sectors, ttype, params) ||
	    (type == DM_DEVICE_CREATE && !dm_task_set_add_node(dmt, DM_ADD_NODE_ON_CREATE))) {
		dm_task_destroy(dmt);
		return -ENOMEM;
	}
	return run(dmt, type == DM_DEVICE_CREATE);
}

int dmdev_create(const char *name, __u64 sectors, const char *type, const char *params)
{
	int ret = load(DM_DEVICE_CREATE, name, sectors, type, params);

	return ret ? ret : check_node(name, true);
}

int dmdev_reload(const char *name, __u64 sectors, const char *type, const char *params)
{
	return load(DM_DEVICE_RELOAD, name, sectors, type, params);
}

int dmdev_remove(const char *name)
{
	struct dm_task *dmt = task(DM_DEVICE_REMOVE, name);
	int ret;

	if (!dmt)
		return -ENOMEM;
	dm_task_retry_remove(dmt);
	ret = run(dmt, true);
	return ret ? ret : check_node(name, false);
}

int dmdev_suspend(const char *name)
{
	struct dm_task *dmt = task(DM_DEVICE_SUSPEND, name);

	return dmt ? run(dmt, false) : -ENOMEM;
}

int dmdev_resume(const char *name)
{
	struct dm_task *dmt = task(DM_DEVICE_RESUME, name);

	return dmt ? run(dmt, true) : -ENOMEM;
}

int dmdev_message(const char *name, const char *message)
{
	struct dm_task *dmt = task(DM_DEVICE_TARGET_MSG, name);

	if (!dmt)
		return -ENOMEM;
	if (!dm_task_set_sector(dmt, 0) || !dm_task_set_message(dmt, message)) {
		dm_task_destroy(dmt);
		return -ENOMEM;
	}
	return run(dmt, false);
}
