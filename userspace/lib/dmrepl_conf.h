/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libdmrepl: resource files, /etc/dm-repl/<group>.conf (dm-repl.conf(5)).
 *
 * One group per file, the same file on both hosts. dmrepl_conf_parse() is
 * pure (text in, group out); dmrepl_conf_load*() read files; the checks of
 * the files a group names are separate and for the local site only, since
 * the peer's certificate and key live on the peer.
 *
 * Errors are one line, "FILE:LINE: message" for what is in a file. Strings
 * in the structures are malloc()ed; dmrepl_conf_free() frees them.
 */
#ifndef DMREPL_CONF_H
#define DMREPL_CONF_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DMREPL_CONF_DIR "/etc/dm-repl"
#define DMREPL_CONF_PORT 7790
/* repld's control socket (repld(8)), root only. */
#define DMREPL_REPLD_SOCKET "/run/dm-repl/repld.sock"
/* Bounds of the parser's input. */
#define DMREPL_CONF_MAX_BYTES (1 << 20)
#define DMREPL_CONF_MAX_TOKEN 4096

enum dmrepl_auth { DMREPL_AUTH_CERT, DMREPL_AUTH_PSK };

struct dmrepl_conf_volume {
	unsigned int index;
	char *device, *data, *meta;
	unsigned int line;
};

struct dmrepl_conf_site {
	char *name, *host;
	char *group;			/* the group's name in this site's kernel;
					 * NULL: the group's own name */
	char *address;			/* host part, no brackets */
	unsigned short port;
	char *certificate, *key, *identity;	/* NULL in PSK mode */
	/*
	 * Run by this site's repld as a replica: "HOOK take|drop GROUP DATA..."
	 * before a resync makes it inconsistent, and once it is consistent
	 * again (NULL: none).
	 */
	char *snapshot_hook;
	unsigned int nvolumes;
	struct dmrepl_conf_volume *volumes;	/* sorted by index */
	unsigned int line;
};

struct dmrepl_conf_group {
	char *name, *file;
	enum dmrepl_auth auth;
	char *ca;			/* certificate mode, else NULL */
	char *psk, *psk_identity;	/* PSK mode, else NULL */
	int compress_level;		/* zstd level; 0: none */
	unsigned long long bandwidth;	/* bytes/s, 0: unlimited */
	unsigned int window, batch_bytes, heartbeat_ms, timeout_ms, ring_mb;
	unsigned long long resync_rate;	/* bytes/s, 0: what the stream leaves */
	unsigned int resync_lag_ms;	/* the stream's lag a resync yields to */
	struct dmrepl_conf_site sites[2];
	unsigned int line;		/* of "group NAME {" */
};

/* A time as the files write it, digits with a unit, ms or s, into *ms. */
bool dmrepl_parse_ms(const char *s, unsigned long long *ms);

/*
 * Parse len bytes of text (the fuzz target); file names it in messages.
 * Returns 0 with *g filled in (defaults included), -EINVAL with err
 * "file:line: ..." and *g empty, or -ENOMEM.
 */
int dmrepl_conf_parse(const char *file, const char *text, size_t len,
		      struct dmrepl_conf_group *g, char *err, size_t errlen);

/* Read and parse path, and check that its name is <group>.conf. */
int dmrepl_conf_load(const char *path, struct dmrepl_conf_group *g, char *err,
		     size_t errlen);

/*
 * Load every *.conf of dir, sorted by file name, into *groups (*ngroups of
 * them; free with dmrepl_conf_free_all()). A file that fails, or that uses
 * a device path or a dm device name that a file before it uses on the same
 * host, is left out and its error goes to report().
 * Returns the number of bad files, or -errno when dir cannot be read.
 */
int dmrepl_conf_load_dir(const char *dir, struct dmrepl_conf_group **groups,
			 unsigned int *ngroups,
			 void (*report)(const char *msg, void *arg), void *arg);

/* Free the fields of g and empty it; g itself is the caller's. */
void dmrepl_conf_free(struct dmrepl_conf_group *g);
void dmrepl_conf_free_all(struct dmrepl_conf_group *groups, unsigned int n);

/*
 * This host's site: the one named site_name if not NULL, else the one whose
 * host is gethostname(), or the short name (up to the first dot) of it.
 * NULL with err when none matches or both do.
 */
const struct dmrepl_conf_site *
dmrepl_conf_local_site(const struct dmrepl_conf_group *g, const char *site_name,
		       char *err, size_t errlen);
/* The other site of g; NULL if local is not one of g's. */
const struct dmrepl_conf_site *
dmrepl_conf_peer_site(const struct dmrepl_conf_group *g,
		      const struct dmrepl_conf_site *local);

/*
 * The files the local site needs: the CA, its certificate and key, or the
 * PSK file, each a readable regular file; a key or PSK file readable by
 * group or others is refused (as ssh refuses such a key); the PSK file
 * must parse. 0, or -errno / -EINVAL with err "PATH: reason".
 */
int dmrepl_conf_check_local(const struct dmrepl_conf_group *g,
			    const struct dmrepl_conf_site *local, char *err,
			    size_t errlen);

/*
 * Read a PSK file: hex text ('openssl rand -hex 32'), trailing white space
 * allowed, at least 32 bytes of key. *keylen: in, the size of key; out, the
 * bytes written. 0, or -errno / -EINVAL with err "PATH: reason".
 */
int dmrepl_conf_read_psk(const char *path, unsigned char *key, size_t *keylen,
			 char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
