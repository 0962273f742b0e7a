/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * repltool's verbs over a resource file (resource.c): create-md, up, down,
 * primary, secondary, rejoin, resize. What they know of the group, and the table lines they
 * build from it.
 */
#ifndef REPLTOOL_RESOURCE_H
#define REPLTOOL_RESOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "dmrepl.h"
#include "dmrepl_conf.h"

/* A local volume, as its metadata and devices say. */
struct res_vol {
	const struct dmrepl_conf_volume *conf;
	unsigned int role;		/* enum dm_repl_meta_role, the metadata's */
	unsigned int region_kb;		/* the metadata's */
	__u64 sectors;			/* the metadata's data_sectors: the table's */
	__u64 dev_sectors;		/* of the data device: more once it grew */
	__u64 meta_bytes;		/* of the meta device */
	__u64 bm_offset;		/* the metadata's */
	dev_t data, meta;		/* device numbers */
};

/* A resource file and this host's side of it. */
struct res {
	struct dmrepl_conf_group conf;
	const struct dmrepl_conf_site *local, *peer;
	const char *kgroup, *peer_kgroup;	/* the sites' kernel group names */
	struct res_vol vols[DM_REPL_MAX_VOLUMES];	/* local->nvolumes of them */
};

/*
 * Pick the local site (site_name, or this host's) of r->conf, its peer and
 * their kernel group names; r->vols[i].conf point at the local volumes.
 * 0, or -1 with err.
 */
int res_sites(struct res *r, const char *site_name, char *err, size_t errlen);

/*
 * The parameters of a volume's table as repltool loads it, with role:
 * "DATA META KGROUP ROLE 2 ring_mb N", and for a secondary
 * "... secondary 4 ring_mb N source PEER_KGROUP". 0, or -ENAMETOOLONG.
 */
int res_params(const struct res *r, const struct res_vol *v, unsigned int role,
	       char *buf, size_t len);

/*
 * The same table as the kernel prints it (dmsetup table): device numbers
 * and every option spelled out. Equal to the live table's parameters when
 * the volume is up as repltool would load it. 0, or -ENAMETOOLONG.
 */
int res_live_params(const struct res *r, const struct res_vol *v, unsigned int role,
		    char *buf, size_t len);

/*
 * Why the kernel refused a role message (errno err) to become role, in
 * words: the reasons of Documentation/dm-repl.md's "Messages".
 */
const char *res_role_refusal(unsigned int role, int err);

#endif
