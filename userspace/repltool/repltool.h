/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef REPLTOOL_H
#define REPLTOOL_H

#include <stdio.h>
#include <linux/types.h>

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

/* A decimal number > 0 with nothing around it; -EINVAL otherwise. */
int parse_positive(const char *s, __u64 *out);

int cmd_dump(int argc, char **argv);
void usage_dump(FILE *f);
int cmd_meta(int argc, char **argv);
void usage_meta(FILE *f);

#endif
