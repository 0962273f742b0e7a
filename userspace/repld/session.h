/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A session over a link: shipping (primary) or applying (secondary). */
#ifndef REPLD_SESSION_H
#define REPLD_SESSION_H

#include "link.h"
#include "repld.h"

/* Each returns true when the session got past the HELLO check. */
bool session_primary(struct group *g, struct link *l);
bool session_secondary(struct group *g, struct link *l);

/* The HELLO fields every role fills in from its group's facts. */
void hello_init(const struct group *g, const struct dm_repl_group_info *info,
		unsigned int role, struct dmrepl_proto_hello *h);

/* Exchange HELLOs and judge the peer's: 0, or -errno (refused, logged). */
int hello_exchange(struct group *g, struct link *l, const struct dmrepl_proto_hello *ours,
		   struct dmrepl_proto_hello *theirs);

#endif /* REPLD_SESSION_H */
