// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * repltool: the administrator's tool for dm-repl. A table of subcommands;
 * any unambiguous prefix of a name selects it.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <linux/dm-repl.h>

#include "dmrepl_conf.h"
#include "repltool.h"

#define REPLTOOL_VERSION "0.1"

static int cmd_help(int argc, char **argv);
static void usage_help(FILE *f);

static const struct cmd cmds[] = {
	{ "apply", "write a record stream to a secondary group", cmd_apply, usage_apply },
	{ "config", "check or show the resource files (" DMREPL_CONF_DIR ")", cmd_config,
	  usage_config },
	{ "connect", "let repld connect a group to its peer", cmd_link, usage_connect },
	{ "create-md", "write fresh metadata for a resource's local volumes",
	  cmd_create_md, usage_create_md },
	{ "disconnect", "make repld end a group's session and stay disconnected", cmd_link,
	  usage_connect },
	{ "down", "remove a resource's local devices", cmd_down, usage_down },
	{ "dump", "print or save the records in a group's ring", cmd_dump, usage_dump },
	{ "help", "show help for repltool or one command", cmd_help, usage_help },
	{ "meta", "create, show or check a metadata device", cmd_meta, usage_meta },
	{ "primary", "promote a resource's local volumes", cmd_primary, usage_primary },
	{ "rejoin", "make this site its peer's replica again, giving up its own writes",
	  cmd_rejoin, usage_rejoin },
	{ "replicate", "ship a primary group's ring to a secondary group",
	  cmd_replicate, usage_replicate },
	{ "resize", "grow a resource's local volumes to their grown data devices",
	  cmd_resize, usage_resize },
	{ "resync", "put a primary group's dirty regions in its ring", cmd_resync,
	  usage_resync },
	{ "secondary", "demote a resource's local volumes", cmd_secondary,
	  usage_secondary },
	{ "status", "show a group's role, state, volumes and apply progress",
	  cmd_status, usage_status },
	{ "up", "load the tables of a resource's local volumes", cmd_up, usage_up },
	{ "verify", "compare a primary group's regions with its replica's", cmd_verify,
	  usage_verify },
};

#define NR_CMDS (sizeof(cmds) / sizeof(cmds[0]))

void err_msg(const char *fmt, ...)
{
	va_list ap;

	fputs("repltool: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int usage_err(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "repltool: %s%s", cmd ? cmd : "", cmd ? ": " : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'repltool %s%s--help'.\n", cmd ? cmd : "", cmd ? " " : "");
	return EXIT_USAGE;
}

static void usage_main(FILE *f)
{
	size_t i;

	fprintf(f, "Usage: repltool [-V|--version] [-h|--help] COMMAND [OPTIONS] [ARGS]\n\n"
		   "Commands (any unambiguous prefix will do):\n");
	for (i = 0; i < NR_CMDS; i++)
		fprintf(f, "  %-9s %s\n", cmds[i].name, cmds[i].summary);
	fprintf(f, "\n'repltool COMMAND --help' describes one command.\n"
		   "Exit status: 0 success, 1 runtime error, 2 usage error.\n");
}

static void usage_help(FILE *f)
{
	fprintf(f, "Usage: repltool help [COMMAND]\n\n"
		   "Without COMMAND, list the commands; with it, describe COMMAND.\n");
}

const struct cmd *cmd_find(const struct cmd *tab, size_t n, const char *parent,
			    const char *word)
{
	const struct cmd *found = NULL;
	size_t i, len = strlen(word);
	int matches = 0;

	for (i = 0; i < n; i++) {
		if (!strcmp(tab[i].name, word))
			return &tab[i];
		if (len && !strncmp(tab[i].name, word, len)) {
			found = &tab[i];
			matches++;
		}
	}
	if (matches > 1) {
		fprintf(stderr, "repltool: %s%s\"%s\" is ambiguous:", parent ? parent : "",
			parent ? ": " : "", word);
		for (i = 0; i < n; i++)
			if (!strncmp(tab[i].name, word, len))
				fprintf(stderr, " %s", tab[i].name);
		fputc('\n', stderr);
		return NULL;
	}
	if (!found)
		fprintf(stderr, "repltool: %s%sunknown command \"%s\"; try 'repltool %s%shelp'\n",
			parent ? parent : "", parent ? ": " : "", word,
			parent ? parent : "", parent ? " --" : "");
	return found;
}

static const struct cmd *find_cmd(const char *word)
{
	return cmd_find(cmds, NR_CMDS, NULL, word);
}

static int cmd_help(int argc, char **argv)
{
	const struct cmd *c;

	if (argc > 2)
		return usage_err("help", "too many arguments");
	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		usage_help(stdout);
		return EXIT_OK;
	}
	if (argc < 2) {
		usage_main(stdout);
		return EXIT_OK;
	}
	c = find_cmd(argv[1]);
	if (!c)
		return EXIT_USAGE;
	c->usage(stdout);
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	const struct cmd *c;

	if (argc < 2) {
		usage_main(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage_main(stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
		printf("repltool %s (dm-repl ABI version %u)\n", REPLTOOL_VERSION,
		       DM_REPL_ABI_VERSION);
		return EXIT_OK;
	}
	if (argv[1][0] == '-')
		return usage_err(NULL, "unknown option \"%s\"", argv[1]);
	c = find_cmd(argv[1]);
	if (!c)
		return EXIT_USAGE;
	return c->run(argc - 1, argv + 1);
}

int parse_positive(const char *s, __u64 *out)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v == 0)
		return -EINVAL;
	*out = v;
	return 0;
}

void report_open_error(const char *target, const char *path, int ret, const char *msg)
{
	if (ret == -ENOENT && !strchr(target, '/'))
		err_msg("%s: %s (is a repl volume in group \"%s\" loaded?)", path, msg,
			target);
	else
		err_msg("%s: %s", path, msg);
}

int open_group(const char *target, int flags, struct dm_repl_group_info *info,
	       char *path, size_t path_len)
{
	char msg[DMREPL_ERRMSG_LEN];
	int fd;

	if (dmrepl_ring_path(target, path, path_len)) {
		err_msg("%s: %s", target, strlen(target) ? "group name too long" :
			"empty group name");
		return -1;
	}
	fd = dmrepl_group_open(target, flags, info, msg, sizeof(msg));
	if (fd >= 0)
		return fd;
	report_open_error(target, path, fd, msg);
	return -1;
}

const char *role_name(unsigned int role, char *buf, size_t len)
{
	const char *name = dmrepl_meta_role_name(role);

	if (name)
		return name;
	snprintf(buf, len, "role %u", role);
	return buf;
}

int getopt_error(const char *cmd, int c, char **argv)
{
	if (c == ':')
		return usage_err(cmd, "option \"%s\" needs an argument", argv[optind - 1]);
	if (optopt)
		return usage_err(cmd, "unknown option \"-%c\"", optopt);
	return usage_err(cmd, "unknown option \"%s\"", argv[optind - 1]);
}

int parse_json_opts(int argc, char **argv, const char *cmd, void (*usage)(FILE *),
		    const char *what, bool *json, const char **arg)
{
	static const struct option lopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*json = false;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":jh", lopts, NULL)) != -1) {
		if (c == 'j') {
			*json = true;
		} else if (c == 'h') {
			usage(stdout);
			return -1;
		} else {
			return getopt_error(cmd, c, argv);
		}
	}
	if (optind != argc - 1)
		return usage_err(cmd, "%s %s", optind == argc ? "missing" : "only one", what);
	*arg = argv[optind];
	return 0;
}
