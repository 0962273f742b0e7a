/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef REPLTOOL_H
#define REPLTOOL_H

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <linux/types.h>

#include "dmrepl.h"
#include "dmrepl_conf.h"

/* Exit status, as documented in Documentation/repltool.md. */
enum {
	EXIT_OK		= 0,
	EXIT_RUNTIME	= 1,	/* the command could not do its job */
	EXIT_USAGE	= 2,	/* bad command line */
	EXIT_DIFFER	= 3,	/* verify: regions differ */
	EXIT_INCOMPLETE	= 4,	/* verify: none differs, not all compared */
};

struct cmd {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);	/* argv[0] is the command name */
	void (*usage)(FILE *f);
};

/* "repltool: " + message + '\n' on stderr. */
void err_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Usage error: message, then "Try 'repltool CMD --help'"; returns EXIT_USAGE. */
int usage_err(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * The entry of tab (n entries) named word, or the only one word is a prefix
 * of; otherwise NULL after saying why on stderr. parent names the command
 * whose subcommands tab holds (NULL for repltool's own).
 */
const struct cmd *cmd_find(const struct cmd *tab, size_t n, const char *parent,
			    const char *word);

/*
 * The usage error for what getopt_long() returned as c when it is ':' (a
 * missing argument) or '?' (an unknown option); call right after it.
 * Returns EXIT_USAGE.
 */
int getopt_error(const char *cmd, int c, char **argv);

/*
 * The options of a command that takes only -j|--json, -h|--help and one
 * argument (what names it in messages): *arg gets it. Returns 0, -1 after
 * --help, or EXIT_USAGE (reported).
 */
int parse_json_opts(int argc, char **argv, const char *cmd, void (*usage)(FILE *),
		    const char *what, bool *json, const char **arg);

/* A decimal number > 0 with nothing around it; -EINVAL otherwise. */
int parse_positive(const char *s, __u64 *out);

/*
 * Say why a group's device could not be opened: "PATH: MSG", with a hint
 * when target is a group name whose device does not exist (ret -ENOENT).
 */
void report_open_error(const char *target, const char *path, int ret, const char *msg);

/*
 * Open a group's device for status and apply (dmrepl_group_open()): path
 * (path_len bytes) gets its path. Returns the fd or -1 (reported).
 */
int open_group(const char *target, int flags, struct dm_repl_group_info *info,
	       char *path, size_t path_len);

/* "primary", "secondary", or "role N" in buf. */
const char *role_name(unsigned int role, char *buf, size_t len);

/* ---- reading a primary's ring (follow.c): dump, replicate ---- */

/* Set by SIGINT and SIGTERM once catch_stop_signals() ran. */
extern volatile sig_atomic_t stop_requested;
void catch_stop_signals(void);

/* Open and map a group's ring; path gets its device. 0 or -1 (reported). */
int open_ring(const char *target, struct dmrepl_ring **ring, char *path, size_t path_len);

/* dmrepl_ring_next_slot(), saying why on a corrupt ring: 1, 0, or -1 (reported). */
int next_slot(struct dmrepl_ring *ring, const char *path, const struct dm_repl_rec **r,
	      bool *discarded);


/*
 * Release up to seq. 0 or -1 (reported); once the group is gone (gone) a
 * release it refuses with ENODEV is no error.
 */
int release_ring(struct dmrepl_ring *ring, const char *path, __u64 seq, bool gone);

/*
 * The loop of a ring's consumer: step(arg, gone) takes what is committed
 * (0, or -1 reported); then, unless done(arg) or a stop signal came, wait
 * for more and step again. When the group goes away there is one last
 * step with gone set, and a word on stderr. Returns EXIT_OK or EXIT_RUNTIME.
 */
int follow_ring(struct dmrepl_ring *ring, const char *path,
		int (*step)(void *arg, bool gone), bool (*done)(void *arg), void *arg);

/* ---- writing batches to a secondary (secondary.c): apply, replicate ---- */

struct secondary {
	const char *target;		/* group name or path, as given */
	char path[PATH_MAX];
	int info_fd, dev_fd;		/* the group's device: ioctls, batches */
	struct dm_repl_apply_info before;	/* at the start */
};

/* The options of apply and replicate: theirs in common, and their help. */
struct batch_opts {
	__u64 batch_kb;
	bool stats;
};

/* getopt_long() values of the common options; a command's own from OPT_OWN. */
enum { OPT_BATCH_KB = 256, OPT_STATS, OPT_OWN };

#define BATCH_LONG_OPTS \
	{ "batch-kb", required_argument, NULL, OPT_BATCH_KB }, \
	{ "stats", no_argument, NULL, OPT_STATS }, \
	{ "help", no_argument, NULL, 'h' }

#define BATCH_OPTS_HELP \
"      --batch-kb N   batch size in KiB, 1-32768 (default 4096); a record\n" \
"                     larger than that goes in a batch of its own\n" \
"      --stats        at the end, print records, batches, bytes, records\n" \
"                     skipped (already applied) and the applied sequence\n"

/* The defaults; getopt_long() starts over. */
void batch_opts_init(struct batch_opts *o);

/*
 * What getopt_long() returned as c, when it is no option of the command's
 * own: a common one, -h (the usage on stdout), or an error. Returns 0, -1
 * after --help, or EXIT_USAGE (reported).
 */
int batch_opt(const char *cmd, int c, struct batch_opts *o, void (*usage)(FILE *),
	      char **argv);

/*
 * Open a secondary group's device for ioctls and for batches and read its
 * apply info (s->before); any other role is refused. 0 or -1 (reported);
 * close_secondary() in both cases.
 */
int open_secondary(const char *cmd, const char *target, struct secondary *s);
void close_secondary(struct secondary *s);

/*
 * Why a batch of b was not written (err from dmrepl_batch_add() or _flush()):
 * a short write, or the module's reason from its apply info.
 */
void report_refused(const char *cmd, const struct secondary *s,
		    const struct dmrepl_batch *b, int err);

/*
 * The end of a command that wrote batches, whose exit status is ret: with
 * stats (and the device open), "PATH: records N batches N bytes N skipped N
 * applied_seq N" on stdout: the batches of b, skipped plus what the module
 * skipped since the start. Returns ret, or EXIT_RUNTIME when stdout fails.
 */
int finish_batches(const struct secondary *s, const struct dmrepl_batch *b, bool stats,
		   __u64 skipped, int ret);

int cmd_dump(int argc, char **argv);
void usage_dump(FILE *f);
int cmd_meta(int argc, char **argv);
void usage_meta(FILE *f);
int cmd_apply(int argc, char **argv);
void usage_apply(FILE *f);
int cmd_status(int argc, char **argv);
void usage_status(FILE *f);
int cmd_replicate(int argc, char **argv);
void usage_replicate(FILE *f);
int cmd_resync(int argc, char **argv);
void usage_resync(FILE *f);
int cmd_verify(int argc, char **argv);
void usage_verify(FILE *f);
int cmd_config(int argc, char **argv);
void usage_config(FILE *f);
/* resource.c: the verbs over a resource file */
int cmd_create_md(int argc, char **argv);
void usage_create_md(FILE *f);
int cmd_up(int argc, char **argv);
void usage_up(FILE *f);
int cmd_down(int argc, char **argv);
void usage_down(FILE *f);
int cmd_primary(int argc, char **argv);
void usage_primary(FILE *f);
int cmd_secondary(int argc, char **argv);
void usage_secondary(FILE *f);
int cmd_rejoin(int argc, char **argv);
void usage_rejoin(FILE *f);
int cmd_resize(int argc, char **argv);
void usage_resize(FILE *f);

/* ---- repld's control socket (daemon.c) ---- */
/*
 * Send req to repld at socket_path: EXIT_OK with the answer's body printed,
 * or EXIT_RUNTIME with repld's error (or the socket's) said, as cmd.
 */
int repld_request(const char *socket_path, const char *cmd, const char *req);

struct out;

/*
 * repld's status: 0 with *reply (free() it) and *body, the group blocks;
 * -errno when repld cannot be reached, -EPROTO when it refused (said).
 */
int repld_status(const char *socket_path, const char *cmd, char **reply, char **body);
/* The next block of a status body: its facts, *name the group; NULL at the end. */
char *repld_next_block(char **pos, char **name);
/* A fact of a block into buf, or NULL. */
const char *repld_fact(const char *facts, const char *key, char *buf, size_t len);
/* A block's facts as the "link" section of status. */
void show_link_facts(struct out *o, const char *facts);

void usage_connect(FILE *f);
/* connect and disconnect: argv[0] says which. */
int cmd_link(int argc, char **argv);

#endif
