// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * repltool config: the resource files of /etc/dm-repl (dm-repl.conf(5)).
 * "check" parses them and checks the local site's files; "show" prints the
 * groups with their defaults filled in, as a resource file or as JSON.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "dmrepl_conf.h"
#include "out.h"
#include "repltool.h"

static int config_check(int argc, char **argv);
static void usage_config_check(FILE *f);
static int config_show(int argc, char **argv);
static void usage_config_show(FILE *f);

static const struct cmd config_cmds[] = {
	{ "check", "parse resource files and check the local site's files",
	  config_check, usage_config_check },
	{ "show", "print the groups with their defaults, as text or JSON",
	  config_show, usage_config_show },
};

#define NR_CONFIG_CMDS (sizeof(config_cmds) / sizeof(config_cmds[0]))

void usage_config(FILE *f)
{
	size_t i;

	fprintf(f, "Usage: repltool config COMMAND [OPTIONS] [ARGS]\n\n"
		   "The resource files, " DMREPL_CONF_DIR "/GROUP.conf (dm-repl.conf(5)).\n"
		   "Commands (any unambiguous prefix will do):\n");
	for (i = 0; i < NR_CONFIG_CMDS; i++)
		fprintf(f, "  %-8s %s\n", config_cmds[i].name, config_cmds[i].summary);
	fprintf(f, "\n'repltool config COMMAND --help' describes one command.\n");
}

int cmd_config(int argc, char **argv)
{
	const struct cmd *c;

	if (argc < 2)
		return usage_err("config", "missing command: check or show");
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage_config(stdout);
		return EXIT_OK;
	}
	if (argv[1][0] == '-')
		return usage_err("config", "unknown option \"%s\"", argv[1]);
	c = cmd_find(config_cmds, NR_CONFIG_CMDS, "config", argv[1]);
	if (!c)
		return EXIT_USAGE;
	return c->run(argc - 1, argv + 1);
}

/* ---- loading ---------------------------------------------------------- */

static void report_error(const char *msg, void *arg)
{
	(void)arg;
	err_msg("%s", msg);
}

/* Every *.conf of dir; the number of bad files, or -1 (reported). */
static int load_dir(const char *dir, struct dmrepl_conf_group **groups, unsigned int *n)
{
	int ret = dmrepl_conf_load_dir(dir, groups, n, report_error, NULL);

	if (ret < 0) {
		err_msg("%s: %s", dir, strerror(-ret));
		return -1;
	}
	return ret;
}

/*
 * The files named on the command line, in their order. A group in two of
 * them is an error (in a directory, file names keep groups apart).
 */
static int load_files(char **files, int nfiles, struct dmrepl_conf_group **groups,
		      unsigned int *n)
{
	struct dmrepl_conf_group *v = calloc((size_t)nfiles, sizeof(*v));
	char err[512];
	int i, bad = 0;
	unsigned int j;

	*groups = v;
	*n = 0;
	if (!v) {
		err_msg("%s", strerror(ENOMEM));
		return -1;
	}
	for (i = 0; i < nfiles; i++) {
		if (dmrepl_conf_load(files[i], &v[*n], err, sizeof(err))) {
			err_msg("%s", err);
			bad++;
			continue;
		}
		for (j = 0; j < *n && strcmp(v[j].name, v[*n].name); j++)
			;
		if (j < *n) {
			err_msg("%s: group \"%s\" is also in %s", files[i], v[j].name, v[j].file);
			dmrepl_conf_free(&v[*n]);
			bad++;
			continue;
		}
		(*n)++;
	}
	return bad;
}

/* ---- check ------------------------------------------------------------- */

static void usage_config_check(FILE *f)
{
	fprintf(f,
"Usage: repltool config check [--dir DIR] [--site NAME] [FILE...]\n"
"\n"
"Parse the resource files given, or every *.conf of DIR (default\n"
DMREPL_CONF_DIR "), and print each error as FILE:LINE: MESSAGE. For each\n"
"group, find the local site (the one whose host is this host's name, or\n"
"its short name) and check its files: the CA, its certificate and key, or\n"
"the PSK file, readable regular files, the key and the PSK file readable\n"
"by their owner only. Exit status 0 when all is well, 1 otherwise.\n"
"\n"
"      --dir DIR     the directory of resource files\n"
"      --site NAME   the local site is the site NAME of each group\n"
"  -h, --help        show this text\n");
}

/* The local site of g and its files; 0 or -1 (reported). */
static int check_group(const struct dmrepl_conf_group *g, const char *site_name)
{
	const struct dmrepl_conf_site *local;
	char err[512];

	local = dmrepl_conf_local_site(g, site_name, err, sizeof(err));
	if (!local) {
		err_msg("%s", err);
		return -1;
	}
	if (dmrepl_conf_check_local(g, local, err, sizeof(err))) {
		err_msg("%s: group \"%s\", site \"%s\": %s", g->file, g->name, local->name, err);
		return -1;
	}
	printf("%s: group \"%s\": ok, local site \"%s\"\n", g->file, g->name, local->name);
	return 0;
}

/* --dir and --site of check and show. */
enum { OPT_DIR = 256, OPT_SITE };

static int config_check(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "dir", required_argument, NULL, OPT_DIR },
		{ "site", required_argument, NULL, OPT_SITE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = NULL, *site = NULL;
	struct dmrepl_conf_group *groups;
	unsigned int n, i;
	int c, bad;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":h", lopts, NULL)) != -1) {
		if (c == OPT_DIR) {
			dir = optarg;
		} else if (c == OPT_SITE) {
			site = optarg;
		} else if (c == 'h') {
			usage_config_check(stdout);
			return EXIT_OK;
		} else {
			return getopt_error("config check", c, argv);
		}
	}
	if (dir && optind < argc)
		return usage_err("config check", "--dir and files exclude each other");
	if (optind < argc)
		bad = load_files(argv + optind, argc - optind, &groups, &n);
	else
		bad = load_dir(dir ? dir : DMREPL_CONF_DIR, &groups, &n);
	if (bad < 0)
		return EXIT_RUNTIME;
	for (i = 0; i < n; i++)
		if (check_group(&groups[i], site))
			bad++;
	if (!n && !bad) {
		err_msg("%s: no resource file (*.conf)", dir ? dir : DMREPL_CONF_DIR);
		bad++;
	}
	dmrepl_conf_free_all(groups, n);
	return bad ? EXIT_RUNTIME : EXIT_OK;
}

/* ---- show --------------------------------------------------------------- */

static void usage_config_show(FILE *f)
{
	fprintf(f,
"Usage: repltool config show [--dir DIR] [-j|--json] [GROUP]\n"
"\n"
"Print every group of DIR (default " DMREPL_CONF_DIR "), or GROUP alone,\n"
"with the defaults filled in: as a resource file, or with --json as one\n"
"JSON object per group and line. Files with errors are reported and left\n"
"out (exit status 1).\n"
"\n"
"      --dir DIR   the directory of resource files\n"
"  -j, --json      JSON instead of text\n"
"  -h, --help      show this text\n");
}

static bool is_word(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	for (; *p; p++)
		if (*p <= ' ' || *p == 0x7f || strchr("{};\"#", *p))
			return false;
	return p != (const unsigned char *)s;
}

/* s as a token of a resource file: itself, or quoted. */
static const char *quote(const char *s, char *buf, size_t len)
{
	size_t n = 0;

	if (is_word(s) || len < 3)
		return s;
	buf[n++] = '"';
	for (; *s && n + 3 < len; s++) {
		if (*s == '"' || *s == '\\')
			buf[n++] = '\\';
		buf[n++] = *s;
	}
	buf[n++] = '"';
	buf[n] = '\0';
	return buf;
}

static const char tabs[] = "\t\t\t";

/* "KEY VALUE;" at depth in text, "jkey":"VALUE" in JSON. */
static void show_str(struct out *o, int depth, const char *key, const char *jkey,
		     const char *v)
{
	char buf[2 * DMREPL_CONF_MAX_TOKEN + 3];

	out_text(o, "%.*s%s %s;\n", depth, tabs, key, quote(v, buf, sizeof(buf)));
	out_str(o, OUT_JSON, jkey, NULL, v);
}

/* "KEY TEXT;" in text, "jkey":v in JSON. */
static void show_num(struct out *o, int depth, const char *key, const char *text,
		     const char *jkey, unsigned long long v)
{
	out_text(o, "%.*s%s %s;\n", depth, tabs, key, text);
	out_u64(o, OUT_JSON, jkey, NULL, v);
}

/* Bytes with the largest suffix that divides them. */
static const char *size_text(unsigned long long v, char *buf, size_t len)
{
	static const char suffix[] = "GMK";
	int shift;

	for (shift = 30; shift > 0; shift -= 10)
		if (v && !(v & ((1ULL << shift) - 1))) {
			snprintf(buf, len, "%llu%c", v >> shift, suffix[(30 - shift) / 10]);
			return buf;
		}
	snprintf(buf, len, "%llu", v);
	return buf;
}

static const char *ms_text(unsigned int ms, char *buf, size_t len)
{
	if (ms % 1000)
		snprintf(buf, len, "%ums", ms);
	else
		snprintf(buf, len, "%us", ms / 1000);
	return buf;
}

static void show_volume(struct out *o, const struct dmrepl_conf_volume *v)
{
	out_open_object(o, NULL);
	out_u64(o, OUT_ANY, "index", "\t\tvolume %llu {\n", v->index);
	show_str(o, 3, "device", "device", v->device);
	show_str(o, 3, "data", "data", v->data);
	show_str(o, 3, "meta", "meta", v->meta);
	out_text(o, "\t\t}\n");
	out_close_object(o);
}

static void show_site(struct out *o, const struct dmrepl_conf_site *s)
{
	char addr[300];
	unsigned int i;

	out_open_object(o, NULL);
	out_str(o, OUT_ANY, "name", "\tsite %s {\n", s->name);
	show_str(o, 2, "host", "host", s->host);
	if (s->group)
		show_str(o, 2, "group", "group", s->group);
	snprintf(addr, sizeof(addr), strchr(s->address, ':') ? "[%s]:%u" : "%s:%u",
		 s->address, s->port);
	out_text(o, "\t\taddress %s;\n", addr);
	out_str(o, OUT_JSON, "address", NULL, s->address);
	out_u64(o, OUT_JSON, "port", NULL, s->port);
	if (s->certificate) {
		show_str(o, 2, "certificate", "certificate", s->certificate);
		show_str(o, 2, "key", "key", s->key);
		show_str(o, 2, "identity", "identity", s->identity);
	}
	if (s->snapshot_hook)
		show_str(o, 2, "snapshot-hook", "snapshot_hook", s->snapshot_hook);
	out_open_array(o, "volumes");
	for (i = 0; i < s->nvolumes; i++)
		show_volume(o, &s->volumes[i]);
	out_close_array(o);
	out_text(o, "\t}\n");
	out_close_object(o);
}

static void show_tls(struct out *o, const struct dmrepl_conf_group *g)
{
	out_open_object(o, "tls");
	out_text(o, "\ttls {\n");
	if (g->auth == DMREPL_AUTH_CERT) {
		out_str(o, OUT_JSON, "auth", NULL, "certificate");
		show_str(o, 2, "ca", "ca", g->ca);
	} else {
		out_str(o, OUT_JSON, "auth", NULL, "psk");
		show_str(o, 2, "psk", "psk", g->psk);
		show_str(o, 2, "psk-identity", "psk_identity", g->psk_identity);
	}
	out_text(o, "\t}\n");
	out_close_object(o);
}

static void show_group(struct out *o, const struct dmrepl_conf_group *g)
{
	char buf[32];

	out_open_object(o, NULL);
	out_str(o, OUT_ANY, "file", "# %s\n", g->file);
	out_str(o, OUT_ANY, "name", "group %s {\n", g->name);
	snprintf(buf, sizeof(buf), g->compress_level ? "zstd %d" : "none", g->compress_level);
	show_num(o, 1, "compression", buf, "compress_level", (unsigned int)g->compress_level);
	show_num(o, 1, "bandwidth", size_text(g->bandwidth, buf, sizeof(buf)), "bandwidth",
		 g->bandwidth);
	snprintf(buf, sizeof(buf), "%u", g->window);
	show_num(o, 1, "window", buf, "window", g->window);
	show_num(o, 1, "batch-size", size_text(g->batch_bytes, buf, sizeof(buf)),
		 "batch_bytes", g->batch_bytes);
	show_num(o, 1, "heartbeat", ms_text(g->heartbeat_ms, buf, sizeof(buf)),
		 "heartbeat_ms", g->heartbeat_ms);
	show_num(o, 1, "timeout", ms_text(g->timeout_ms, buf, sizeof(buf)), "timeout_ms",
		 g->timeout_ms);
	show_num(o, 1, "ring-size", size_text((unsigned long long)g->ring_mb << 20, buf,
					      sizeof(buf)), "ring_mb", g->ring_mb);
	show_num(o, 1, "resync-rate", size_text(g->resync_rate, buf, sizeof(buf)),
		 "resync_rate", g->resync_rate);
	show_num(o, 1, "resync-lag-target", ms_text(g->resync_lag_ms, buf, sizeof(buf)),
		 "resync_lag_ms", g->resync_lag_ms);
	show_tls(o, g);
	out_open_array(o, "sites");
	show_site(o, &g->sites[0]);
	show_site(o, &g->sites[1]);
	out_close_array(o);
	out_text(o, "}\n");
	out_close_object(o);
	if (o->json)
		out_newline(o);
}

static int config_show(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "dir", required_argument, NULL, OPT_DIR },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = DMREPL_CONF_DIR, *name = NULL;
	struct dmrepl_conf_group *groups;
	bool json = false, found = false;
	unsigned int n, i;
	struct out o;
	int c, bad;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":jh", lopts, NULL)) != -1) {
		if (c == OPT_DIR) {
			dir = optarg;
		} else if (c == 'j') {
			json = true;
		} else if (c == 'h') {
			usage_config_show(stdout);
			return EXIT_OK;
		} else {
			return getopt_error("config show", c, argv);
		}
	}
	if (argc - optind > 1)
		return usage_err("config show", "only one group");
	if (optind < argc)
		name = argv[optind];
	bad = load_dir(dir, &groups, &n);
	if (bad < 0)
		return EXIT_RUNTIME;
	out_init(&o, stdout, json);
	for (i = 0; i < n; i++) {
		if (name && strcmp(groups[i].name, name))
			continue;
		if (found)
			out_text(&o, "\n");
		show_group(&o, &groups[i]);
		found = true;
	}
	if (name && !found) {
		err_msg("%s: no group \"%s\"", dir, name);
		bad++;
	}
	dmrepl_conf_free_all(groups, n);
	if (fflush(stdout) || ferror(stdout)) {
		err_msg("standard output: %s", strerror(errno));
		return EXIT_RUNTIME;
	}
	return bad ? EXIT_RUNTIME : EXIT_OK;
}
