/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * repltool: device-mapper devices through libdevmapper, one target each.
 * Every function returns 0 or -errno of the failing ioctl; libdevmapper's
 * own messages are silenced, so the caller says what failed.
 */
#ifndef REPLTOOL_DM_H
#define REPLTOOL_DM_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

struct dmdev_info {
	bool exists;
	bool suspended;
	int open_count;
	unsigned int major, minor;
};

/* What the kernel knows of device name; exists is false if it has none. */
int dmdev_info(const char *name, struct dmdev_info *info);

/*
 * The live table of device name, when it is one target: its length in
 * sectors, type (typelen bytes) and parameters (len bytes). -ENXIO when no
 * table is loaded, -EMLINK when it has more than one target.
 */
int dmdev_table(const char *name, __u64 *sectors, char *type, size_t typelen,
		char *params, size_t len);

/*
 * Create device name with the table "0 sectors type params" and resume it,
 * then make sure /dev/mapper/name exists (udev, or without it, the node
 * made here).
 */
int dmdev_create(const char *name, __u64 sectors, const char *type, const char *params);
/* Load "0 sectors type params" as name's inactive table (a resume swaps it in). */
int dmdev_reload(const char *name, __u64 sectors, const char *type, const char *params);
/* Remove device name and its /dev/mapper node. */
int dmdev_remove(const char *name);
int dmdev_suspend(const char *name);
int dmdev_resume(const char *name);
/* Send message to the target at sector 0 of name. */
int dmdev_message(const char *name, const char *message);

#endif
