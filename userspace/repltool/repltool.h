/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef REPLTOOL_H
#define REPLTOOL_H

#include <stdbool.h>
#include <stdio.h>
#include <linux/types.h>

#include "dmrepl.h"

/* Exit status, as documented in Documentation/repltool.md. */
enum {
	EXIT_OK		= 0,
	EXIT_RUNTIME	= 1,	/* the command could not do its job */
	EXIT_USAGE	= 2,	/* bad command line */
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

int cmd_dump(int argc, char **argv);
void usage_dump(FILE *f);
int cmd_meta(int argc, char **argv);
void usage_meta(FILE *f);
int cmd_apply(int argc, char **argv);
void usage_apply(FILE *f);
int cmd_status(int argc, char **argv);
void usage_status(FILE *f);

#endif
