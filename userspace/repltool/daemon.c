// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Talking to repld over its control socket (repld(8)): the link facts of
 * repltool status, repltool connect / disconnect, and verify --results
 * --fix.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "out.h"
#include "repltool.h"

#define REPLY_MAX (1U << 20)

/* Send req, read the whole reply: 0 and *reply (malloc()ed), or -errno. */
static int ask(const char *path, const char *req, char **reply)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = 0, cap = 4096;
	char *buf = NULL, *more;
	ssize_t n;
	int fd, ret = 0;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    write(fd, req, strlen(req)) != (ssize_t)strlen(req) || write(fd, "\n", 1) != 1) {
		ret = -errno;
		goto out;
	}
	buf = malloc(cap);
	while (buf && (n = read(fd, buf + len, cap - len - 1)) > 0) {
		len += (size_t)n;
		if (len < cap - 1)
			continue;
		if (cap >= REPLY_MAX) {
			ret = -EMSGSIZE;
			goto out;
		}
		more = realloc(buf, cap * 2);
		if (!more)
			break;
		buf = more;
		cap *= 2;
	}
	if (!buf || len == cap - 1) {
		ret = -ENOMEM;
		goto out;
	}
	buf[len] = '\0';
	*reply = buf;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return ret;
}

/* The reply's first line: 0 for "ok" (body after it), -1 with the error said. */
static int reply_ok(const char *cmd, char *reply, char **body)
{
	char *nl = strchr(reply, '\n');

	if (nl)
		*nl = '\0';
	if (!strcmp(reply, "ok")) {
		*body = nl ? nl + 1 : reply + strlen(reply);
		return 0;
	}
	err_msg("%s: repld: %s", cmd, !strncmp(reply, "error ", 6) ? reply + 6 : reply);
	return -1;
}

int repld_status(const char *socket_path, const char *cmd, char **reply, char **body)
{
	int ret = ask(socket_path, "status", reply);

	if (ret)
		return ret;
	if (!reply_ok(cmd, *reply, body))
		return 0;
	free(*reply);
	*reply = NULL;
	return -EPROTO;
}

/* The next "group" block of a status body: its first line's name, the facts. */
char *repld_next_block(char **pos, char **name)
{
	char *block = *pos, *end, *nl;

	if (strncmp(block, "group ", 6))
		return NULL;
	end = strstr(block, "\n\n");
	*pos = end ? end + 2 : block + strlen(block);
	if (end)
		*end = '\0';
	nl = strchr(block, '\n');
	*name = block + 6;
	if (nl)
		*nl = '\0';
	return nl ? nl + 1 : block + strlen(block);
}

/* The value of key in a block's facts ("key value" lines), or NULL. */
const char *repld_fact(const char *facts, const char *key, char *buf, size_t len)
{
	size_t klen = strlen(key);
	const char *p = facts, *nl;

	while (*p) {
		nl = strchrnul(p, '\n');
		if (!strncmp(p, key, klen) && p[klen] == ' ') {
			snprintf(buf, len, "%.*s", (int)(nl - p - (int)klen - 1), p + klen + 1);
			return buf;
		}
		p = *nl ? nl + 1 : nl;
	}
	return NULL;
}

void show_link_facts(struct out *o, const char *facts)
{
	const char *p = facts, *nl, *sp;
	char key[64], val[600], *end;
	unsigned long long v;

	out_open_object(o, "link");
	out_text(o, "link\n");
	o->kv_indent = 2;
	while (*p) {
		nl = strchrnul(p, '\n');
		sp = memchr(p, ' ', (size_t)(nl - p));
		if (sp && sp - p < (long)sizeof(key)) {
			snprintf(key, sizeof(key), "%.*s", (int)(sp - p), p);
			snprintf(val, sizeof(val), "%.*s", (int)(nl - sp - 1), sp + 1);
			errno = 0;
			v = strtoull(val, &end, 10);
			if (*val && !*end && !errno && val[0] != '-')
				out_kv_u64(o, key, v);
			else
				out_kv_str(o, key, val);
		}
		p = *nl ? nl + 1 : nl;
	}
	o->kv_indent = 0;
	out_close_object(o);
}

/* ---- connect, disconnect ----------------------------------------------------- */

void usage_connect(FILE *f)
{
	fprintf(f,
"Usage: repltool connect [--socket PATH] GROUP\n"
"       repltool disconnect [--socket PATH] GROUP\n"
"\n"
"Ask this host's repld to connect GROUP to its peer again (the default), or\n"
"to end its session and stay disconnected: the primary's ring then fills\n"
"and, once full, its writes go to the bitmap only (state behind). GROUP is\n"
"the resource's name.\n"
"\n"
"  -S, --socket PATH  repld's control socket (default " DMREPL_REPLD_SOCKET ")\n"
"  -h, --help         show this text\n"
"\n"
"Exit status: 0 done, 1 repld refused or is not running, 2 usage error.\n");
}

int cmd_link(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "socket", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = argv[0], *path = DMREPL_REPLD_SOCKET;
	char req[128];
	int c;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":S:h", lopts, NULL)) != -1) {
		if (c == 'S') {
			path = optarg;
		} else if (c == 'h') {
			usage_connect(stdout);
			return EXIT_OK;
		} else {
			return getopt_error(cmd, c, argv);
		}
	}
	if (optind != argc - 1)
		return usage_err(cmd, "%s GROUP", optind == argc ? "missing" : "only one");
	if (strlen(argv[optind]) > DM_REPL_GROUP_NAME_MAX || strpbrk(argv[optind], " \n"))
		return usage_err(cmd, "\"%s\" is not a group name", argv[optind]);
	snprintf(req, sizeof(req), "%s %s", cmd, argv[optind]);
	return repld_request(path, cmd, req);
}

int repld_request(const char *socket_path, const char *cmd, const char *req)
{
	char *reply, *body;
	int ret = ask(socket_path, req, &reply);

	if (ret) {
		err_msg("%s: repld at %s: %s", cmd, socket_path, strerror(-ret));
		return EXIT_RUNTIME;
	}
	ret = reply_ok(cmd, reply, &body) ? EXIT_RUNTIME : EXIT_OK;
	if (!ret)
		fputs(body, stdout);
	free(reply);
	return ret;
}
