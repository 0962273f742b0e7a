// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Resource files (dmrepl_conf.h, dm-repl.conf(5)): a tokenizer that keeps
 * line numbers, one generic block parser driven by a key table per block,
 * then the checks that need the whole group. The first error ends parsing.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>

#include "dmrepl_conf.h"

#define MAX_VOLUMES 64
#define GROUP_NAME_MAX 31
#define SITE_NAME_MAX 63
#define HOST_MAX 253
#define DM_NAME_MAX 127
/* "compression zstd" without a level, and the default (dm-repl.conf(5)). */
#define DEFAULT_ZSTD_LEVEL 1
/* Values quoted in messages are cut here. */
#define VAL "\"%.200s\""

/* ---- tokens ------------------------------------------------------------ */

enum tok_type { TOK_EOF, TOK_WORD, TOK_STRING, TOK_LBRACE, TOK_RBRACE, TOK_SEMI };

struct tok {
	enum tok_type type;
	unsigned int line;
	const char *text;	/* NUL-terminated; the quotes of a string removed */
};

struct file_seen;

struct parser {
	const char *file;
	char *err;
	size_t errlen;
	bool failed;		/* err holds the first error */
	struct tok *toks;
	size_t ntoks, cap, pos;
	char *arena;		/* the tokens' text */
	size_t arena_used;
	struct dmrepl_conf_group *g;
	struct dmrepl_conf_site *site;	/* the site block being parsed */
	struct dmrepl_conf_volume *vol;	/* the volume block being parsed */
	unsigned int nsites;
	struct file_seen *seen;	/* lines of the keys met so far */
};

static int vfail(struct parser *p, unsigned int line, const char *fmt, va_list ap)
{
	int n;

	if (p->failed || !p->err || !p->errlen)
		return -EINVAL;
	p->failed = true;
	n = line ? snprintf(p->err, p->errlen, "%s:%u: ", p->file, line) :
		   snprintf(p->err, p->errlen, "%s: ", p->file);
	if (n >= 0 && (size_t)n < p->errlen)
		vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
	return -EINVAL;
}

/* Report "file:line: message" (line 0: "file: message"); returns -EINVAL. */
__attribute__((format(printf, 3, 4)))
static int fail(struct parser *p, unsigned int line, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = vfail(p, line, fmt, ap);
	va_end(ap);
	return ret;
}

static int nomem(struct parser *p)
{
	fail(p, 0, "out of memory");
	return -ENOMEM;
}

static int push_tok(struct parser *p, enum tok_type type, unsigned int line,
		    const char *text)
{
	if (p->ntoks == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 64;
		struct tok *t = realloc(p->toks, cap * sizeof(*t));

		if (!t)
			return nomem(p);
		p->toks = t;
		p->cap = cap;
	}
	p->toks[p->ntoks++] = (struct tok){ .type = type, .line = line, .text = text };
	return 0;
}

static bool is_word_char(unsigned char c)
{
	return c > ' ' && c != 0x7f && !strchr("{};\"#", c);
}

/* A word from text[*i]: what is_word_char() accepts, copied to the arena. */
static int scan_word(struct parser *p, const char *text, size_t len, size_t *i,
		     unsigned int line)
{
	char *out = p->arena + p->arena_used;
	size_t n = 0;

	while (*i < len && is_word_char((unsigned char)text[*i])) {
		if (n == DMREPL_CONF_MAX_TOKEN)
			return fail(p, line, "word longer than %d bytes",
				    DMREPL_CONF_MAX_TOKEN);
		out[n++] = text[(*i)++];
	}
	out[n] = '\0';
	p->arena_used += n + 1;
	return push_tok(p, TOK_WORD, line, out);
}

/* A string from the '"' at text[*i]; \" and \\ are its only escapes. */
static int scan_string(struct parser *p, const char *text, size_t len, size_t *i,
		       unsigned int line)
{
	char *out = p->arena + p->arena_used;
	size_t n = 0;
	unsigned char c;

	for ((*i)++; *i < len && text[*i] != '"'; (*i)++) {
		c = (unsigned char)text[*i];
		if (c == '\\') {
			if (*i + 1 >= len || (text[*i + 1] != '"' && text[*i + 1] != '\\'))
				return fail(p, line, "bad escape in string: only \\\" and \\\\");
			c = (unsigned char)text[++(*i)];
		} else if (c == '\n') {
			return fail(p, line, "unterminated string");
		} else if (c < ' ' && c != '\t') {
			return fail(p, line, "control character 0x%02x in string", c);
		}
		if (n == DMREPL_CONF_MAX_TOKEN)
			return fail(p, line, "string longer than %d bytes",
				    DMREPL_CONF_MAX_TOKEN);
		out[n++] = (char)c;
	}
	if (*i >= len)
		return fail(p, line, "unterminated string");
	(*i)++;
	out[n] = '\0';
	p->arena_used += n + 1;
	return push_tok(p, TOK_STRING, line, out);
}

static int tokenize(struct parser *p, const char *text, size_t len)
{
	unsigned int line = 1;
	size_t i = 0;
	int ret = 0;

	/* Each token takes at least one byte of text and adds one NUL. */
	p->arena = malloc(2 * len + 1);
	if (!p->arena)
		return nomem(p);
	while (i < len && !ret) {
		unsigned char c = (unsigned char)text[i];

		if (c == '\n') {
			line++;
			i++;
		} else if (c == ' ' || c == '\t' || c == '\r') {
			i++;
		} else if (c == '#') {
			while (i < len && text[i] != '\n')
				i++;
		} else if (c == '{' || c == '}' || c == ';') {
			ret = push_tok(p, c == '{' ? TOK_LBRACE : c == '}' ? TOK_RBRACE :
				       TOK_SEMI, line, c == '{' ? "{" : c == '}' ? "}" : ";");
			i++;
		} else if (c == '"') {
			ret = scan_string(p, text, len, &i, line);
		} else if (is_word_char(c)) {
			ret = scan_word(p, text, len, &i, line);
		} else {
			ret = fail(p, line, "invalid character 0x%02x", c);
		}
	}
	return ret ? ret : push_tok(p, TOK_EOF, line, "");
}

/* How a token reads in a message. */
static const char *tok_desc(const struct tok *t, char *buf, size_t len)
{
	switch (t->type) {
	case TOK_EOF:
		return "end of file";
	case TOK_LBRACE:
		return "'{'";
	case TOK_RBRACE:
		return "'}'";
	case TOK_SEMI:
		return "';'";
	default:
		snprintf(buf, len, VAL, t->text);
		return buf;
	}
}

static bool is_value(const struct tok *t)
{
	return t->type == TOK_WORD || t->type == TOK_STRING;
}

/* ---- values ------------------------------------------------------------ */

/* Decimal digits with nothing else; *end at the first non-digit. */
static bool parse_digits(const char *s, const char **end, unsigned long long *v)
{
	unsigned long long n = 0;
	const char *q = s;

	for (; *q >= '0' && *q <= '9'; q++) {
		if (n > (~0ULL - 9) / 10)
			return false;
		n = n * 10 + (unsigned long long)(*q - '0');
	}
	*end = q;
	*v = n;
	return q != s;
}

static bool parse_uint(const char *s, unsigned long long *v)
{
	const char *end;

	return parse_digits(s, &end, v) && !*end;
}

/* Bytes: digits with an optional K, M or G (powers of 1024). */
static bool parse_size(const char *s, unsigned long long *v)
{
	const char *end;
	unsigned int shift = 0;

	if (!parse_digits(s, &end, v))
		return false;
	if (*end) {
		if (end[1])
			return false;
		switch (*end) {
		case 'K': case 'k':
			shift = 10;
			break;
		case 'M': case 'm':
			shift = 20;
			break;
		case 'G': case 'g':
			shift = 30;
			break;
		default:
			return false;
		}
	}
	if (*v > (~0ULL >> shift))
		return false;
	*v <<= shift;
	return true;
}

bool dmrepl_parse_ms(const char *s, unsigned long long *ms)
{
	const char *end;

	if (!parse_digits(s, &end, ms))
		return false;
	if (!strcmp(end, "ms"))
		return true;
	if (strcmp(end, "s") || *ms > ~0ULL / 1000)
		return false;
	*ms *= 1000;
	return true;
}

/* The kernel's rule for group names; sites follow it too, up to max. */
static bool name_ok(const char *s, size_t max)
{
	size_t i, len = strlen(s);

	if (!len || len > max || s[0] == '.')
		return false;
	for (i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || strchr("_.+-", s[i])))
			return false;
	return true;
}

/* A host name: letters, digits, '-', '.' and '_'. */
static bool host_ok(const char *s)
{
	size_t len = strlen(s);

	return len && len <= HOST_MAX && strspn(s, "abcdefghijklmnopqrstuvwxyz"
		"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._") == len;
}

/* No space or control character, as in a certificate name or a PSK identity. */
static bool printable(const char *s, size_t max)
{
	size_t len = strlen(s), i;

	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
			return false;
	return len && len <= max;
}

static int dup_str(struct parser *p, char **dst, const char *s)
{
	*dst = strdup(s);
	return *dst ? 0 : nomem(p);
}

/* ---- statements and blocks ----------------------------------------------- */

/* KEY VALUE... followed by ';' or by '{' (block). */
struct stmt {
	const struct tok *key;
	const struct tok *args;
	unsigned int nargs;
	bool block;
};

struct key {
	const char *name;
	unsigned char min_args, max_args;
	bool block;		/* KEY ARGS { ... } */
	bool repeat;		/* may appear more than once (site, volume) */
	bool required;
	int (*set)(struct parser *p, const struct stmt *s);
};

struct block {
	const char *name;
	const struct key *keys;
	size_t nkeys;
};

static const struct block *const all_blocks[];
static const size_t nr_all_blocks;

static const struct key *find_key(const struct block *b, const char *name)
{
	size_t i;

	for (i = 0; i < b->nkeys; i++)
		if (!strcmp(b->keys[i].name, name))
			return &b->keys[i];
	return NULL;
}

static int unknown_key(struct parser *p, const struct tok *t, const char *where)
{
	size_t i;

	for (i = 0; i < nr_all_blocks; i++)
		if (find_key(all_blocks[i], t->text))
			return fail(p, t->line, "key \"%s\" belongs in a %s block, not in %s",
				    t->text, all_blocks[i]->name, where);
	return fail(p, t->line, "unknown key " VAL " in %s", t->text, where);
}

static int read_stmt(struct parser *p, const struct key *k, struct stmt *s)
{
	const struct tok *end;
	char buf[224];

	s->key = &p->toks[p->pos++];
	s->args = &p->toks[p->pos];
	s->nargs = 0;
	while (is_value(&p->toks[p->pos])) {
		p->pos++;
		s->nargs++;
	}
	end = &p->toks[p->pos];
	if (end->type != TOK_SEMI && end->type != TOK_LBRACE)
		return fail(p, end->line, "%s: expected ';' before %s", k->name,
			    tok_desc(end, buf, sizeof(buf)));
	p->pos++;
	s->block = end->type == TOK_LBRACE;
	if (s->block != k->block)
		return fail(p, s->key->line, k->block ? "%s: missing block { ... }" :
			    "%s: a value, not a block", k->name);
	if (s->nargs < k->min_args)
		return fail(p, s->key->line, "%s: missing value", k->name);
	if (s->nargs > k->max_args)
		return fail(p, s->args[k->max_args].line,
			    "%s: unexpected " VAL " (missing ';'?)", k->name,
			    s->args[k->max_args].text);
	return 0;
}

/*
 * The statements of block b up to its '}' (the '{' at open_line is read);
 * seen[i] gets the line of key i, 0 if absent. where names the block.
 */
static int parse_block(struct parser *p, const struct block *b, unsigned int open_line,
		       unsigned int *seen, const char *where)
{
	const struct key *k;
	struct stmt s;
	size_t i;
	int ret;

	memset(seen, 0, b->nkeys * sizeof(*seen));
	for (;;) {
		const struct tok *t = &p->toks[p->pos];
		char buf[224];

		if (t->type == TOK_RBRACE)
			break;
		if (t->type == TOK_EOF)
			return fail(p, open_line, "%s: no '}' closes its block", where);
		if (t->type != TOK_WORD)
			return fail(p, t->line, "%s: expected a key, found %s", where,
				    tok_desc(t, buf, sizeof(buf)));
		k = find_key(b, t->text);
		if (!k)
			return unknown_key(p, t, where);
		i = (size_t)(k - b->keys);
		if (seen[i] && !k->repeat)
			return fail(p, t->line, "duplicate key \"%s\" (first at line %u)",
				    k->name, seen[i]);
		if (!seen[i])
			seen[i] = t->line;
		ret = read_stmt(p, k, &s);
		if (!ret)
			ret = k->set(p, &s);
		if (ret)
			return ret;
	}
	p->pos++;
	for (i = 0; i < b->nkeys; i++)
		if (b->keys[i].required && !seen[i])
			return fail(p, open_line, "%s: missing key \"%s\"", where,
				    b->keys[i].name);
	return 0;
}

/* ---- volume block -------------------------------------------------------- */

static int set_path(struct parser *p, const struct stmt *s, char **dst)
{
	if (s->args[0].text[0] != '/')
		return fail(p, s->key->line, "%s " VAL ": not an absolute path",
			    s->key->text, s->args[0].text);
	return dup_str(p, dst, s->args[0].text);
}

static int set_vol_device(struct parser *p, const struct stmt *s)
{
	const char *v = s->args[0].text;

	if (!printable(v, DM_NAME_MAX) || strchr(v, '/') || !strcmp(v, ".") ||
	    !strcmp(v, ".."))
		return fail(p, s->key->line, "device " VAL ": not a device-mapper name "
			    "(1-%d characters, no '/' or space)", v, DM_NAME_MAX);
	return dup_str(p, &p->vol->device, v);
}

static int set_vol_data(struct parser *p, const struct stmt *s)
{
	return set_path(p, s, &p->vol->data);
}

static int set_vol_meta(struct parser *p, const struct stmt *s)
{
	return set_path(p, s, &p->vol->meta);
}

enum { V_DEVICE, V_DATA, V_META, VOLUME_NKEYS };

static const struct key volume_keys[VOLUME_NKEYS] = {
	[V_DEVICE] = { "device", 1, 1, false, false, false, set_vol_device },
	[V_DATA] = { "data", 1, 1, false, false, true, set_vol_data },
	[V_META] = { "meta", 1, 1, false, false, true, set_vol_meta },
};

static const struct block volume_block = { "volume", volume_keys, VOLUME_NKEYS };

/* ---- site block ----------------------------------------------------------- */

enum { S_HOST, S_ADDRESS, S_GROUP, S_CERTIFICATE, S_KEY, S_IDENTITY, S_VOLUME, S_SNAPSHOT_HOOK,
       S_NKEYS };

/* Lines of the keys of each site, for the checks after parsing. */
struct site_seen {
	unsigned int line[S_NKEYS];
};

static int set_site_host(struct parser *p, const struct stmt *s)
{
	if (!host_ok(s->args[0].text))
		return fail(p, s->key->line, "host " VAL ": not a host name", s->args[0].text);
	return dup_str(p, &p->site->host, s->args[0].text);
}

static int bad_address(struct parser *p, const struct stmt *s, const char *why)
{
	return fail(p, s->key->line, "address " VAL ": %s", s->args[0].text, why);
}

/* IPv4:port, [IPv6]:port or name:port; the port is optional. */
static int set_site_address(struct parser *p, const struct stmt *s)
{
	const char *v = s->args[0].text, *host = v, *port = NULL, *q;
	unsigned char addr[16];
	unsigned long long n = DMREPL_CONF_PORT;
	char buf[DMREPL_CONF_MAX_TOKEN + 1];
	size_t hlen;

	if (v[0] == '[') {
		q = strchr(v, ']');
		if (!q || (q[1] && q[1] != ':'))
			return bad_address(p, s, "expected [IPv6]:port");
		host = v + 1;
		hlen = (size_t)(q - host);
		port = q[1] ? q + 2 : NULL;
	} else {
		q = strchr(v, ':');
		if (q && strchr(q + 1, ':'))
			return bad_address(p, s, "an IPv6 address goes in brackets: [IPv6]:port");
		hlen = q ? (size_t)(q - v) : strlen(v);
		port = q ? q + 1 : NULL;
	}
	memcpy(buf, host, hlen);
	buf[hlen] = '\0';
	if (v[0] == '[' && inet_pton(AF_INET6, buf, addr) != 1)
		return bad_address(p, s, "not an IPv6 address in the brackets");
	if (v[0] != '[' && !host_ok(buf))
		return bad_address(p, s, "not an IPv4 address or a host name");
	if (v[0] != '[' && strspn(buf, "0123456789.") == hlen &&
	    inet_pton(AF_INET, buf, addr) != 1)
		return bad_address(p, s, "not an IPv4 address");
	if (port && (!parse_uint(port, &n) || n < 1 || n > 65535))
		return bad_address(p, s, "the port is not a number from 1 to 65535");
	p->site->port = (unsigned short)n;
	return dup_str(p, &p->site->address, buf);
}

/* The group's name in this site's kernel, when it is not the group's own. */
static int set_site_group(struct parser *p, const struct stmt *s)
{
	if (!name_ok(s->args[0].text, GROUP_NAME_MAX))
		return fail(p, s->key->line, "group " VAL ": not a name of 1-%d of "
			    "[A-Za-z0-9_.+-], not starting with '.'", s->args[0].text,
			    GROUP_NAME_MAX);
	return dup_str(p, &p->site->group, s->args[0].text);
}

static int set_site_snapshot_hook(struct parser *p, const struct stmt *s)
{
	return set_path(p, s, &p->site->snapshot_hook);
}

static int set_site_certificate(struct parser *p, const struct stmt *s)
{
	return set_path(p, s, &p->site->certificate);
}

static int set_site_key(struct parser *p, const struct stmt *s)
{
	return set_path(p, s, &p->site->key);
}

static int set_site_identity(struct parser *p, const struct stmt *s)
{
	if (!printable(s->args[0].text, HOST_MAX))
		return fail(p, s->key->line, "identity " VAL ": not 1-%d characters "
			    "without space", s->args[0].text, HOST_MAX);
	return dup_str(p, &p->site->identity, s->args[0].text);
}

static int set_site_volume(struct parser *p, const struct stmt *s)
{
	struct dmrepl_conf_site *site = p->site;
	unsigned long long idx;
	unsigned int i, seen[VOLUME_NKEYS];
	char where[128];

	if (!parse_uint(s->args[0].text, &idx) || idx >= MAX_VOLUMES)
		return fail(p, s->key->line, "volume " VAL ": not an index from 0 to %d",
			    s->args[0].text, MAX_VOLUMES - 1);
	for (i = 0; i < site->nvolumes; i++)
		if (site->volumes[i].index == idx)
			return fail(p, s->key->line, "duplicate volume %llu (first at line %u)",
				    idx, site->volumes[i].line);
	/* Indexes are distinct and below MAX_VOLUMES: this never overflows. */
	if (!site->volumes) {
		site->volumes = calloc(MAX_VOLUMES, sizeof(*site->volumes));
		if (!site->volumes)
			return nomem(p);
	}
	p->vol = &site->volumes[site->nvolumes++];
	p->vol->index = (unsigned int)idx;
	p->vol->line = s->key->line;
	snprintf(where, sizeof(where), "volume %llu of site \"%s\"", idx, site->name);
	return parse_block(p, &volume_block, s->key->line, seen, where);
}

static const struct key site_keys[S_NKEYS] = {
	[S_HOST] = { "host", 1, 1, false, false, true, set_site_host },
	[S_ADDRESS] = { "address", 1, 1, false, false, true, set_site_address },
	[S_GROUP] = { "group", 1, 1, false, false, false, set_site_group },
	[S_CERTIFICATE] = { "certificate", 1, 1, false, false, false, set_site_certificate },
	[S_KEY] = { "key", 1, 1, false, false, false, set_site_key },
	[S_IDENTITY] = { "identity", 1, 1, false, false, false, set_site_identity },
	[S_VOLUME] = { "volume", 1, 1, true, true, true, set_site_volume },
	[S_SNAPSHOT_HOOK] = { "snapshot-hook", 1, 1, false, false, false,
			      set_site_snapshot_hook },
};

static const struct block site_block = { "site", site_keys, S_NKEYS };

/* ---- tls block ---------------------------------------------------------- */

enum { T_CA, T_PSK, T_PSK_IDENTITY, T_NKEYS };

static int set_tls_ca(struct parser *p, const struct stmt *s)
{
	return set_path(p, s, &p->g->ca);
}

static int set_tls_psk(struct parser *p, const struct stmt *s)
{
	return set_path(p, s, &p->g->psk);
}

static int set_tls_psk_identity(struct parser *p, const struct stmt *s)
{
	if (!printable(s->args[0].text, 128))
		return fail(p, s->key->line, "psk-identity " VAL ": not 1-128 characters "
			    "without space", s->args[0].text);
	return dup_str(p, &p->g->psk_identity, s->args[0].text);
}

static const struct key tls_keys[T_NKEYS] = {
	[T_CA] = { "ca", 1, 1, false, false, false, set_tls_ca },
	[T_PSK] = { "psk", 1, 1, false, false, false, set_tls_psk },
	[T_PSK_IDENTITY] = { "psk-identity", 1, 1, false, false, false, set_tls_psk_identity },
};

static const struct block tls_block = { "tls", tls_keys, T_NKEYS };

/* ---- group block ------------------------------------------------------- */

enum { G_COMPRESSION, G_BANDWIDTH, G_WINDOW, G_BATCH, G_HEARTBEAT, G_TIMEOUT, G_RING,
	G_RESYNC_RATE, G_RESYNC_LAG, G_TLS, G_SITE, G_NKEYS };

/* The parse of a whole file: lines of keys that later checks name. */
struct file_seen {
	unsigned int group[G_NKEYS];
	unsigned int tls[T_NKEYS];
	struct site_seen site[2];
};

static int set_compression(struct parser *p, const struct stmt *s)
{
	unsigned long long level = DEFAULT_ZSTD_LEVEL;
	const char *v = s->args[0].text;

	if (!strcmp(v, "none") && s->nargs == 1) {
		p->g->compress_level = 0;
		return 0;
	}
	if (strcmp(v, "zstd"))
		return fail(p, s->key->line, "compression " VAL ": not \"zstd [LEVEL]\" "
			    "or \"none\"", v);
	if (s->nargs == 2 && (!parse_uint(s->args[1].text, &level) || level < 1 ||
			      level > 19))
		return fail(p, s->key->line, "compression zstd " VAL ": not a level from "
			    "1 to 19", s->args[1].text);
	p->g->compress_level = (int)level;
	return 0;
}

static int set_bandwidth(struct parser *p, const struct stmt *s)
{
	if (!parse_size(s->args[0].text, &p->g->bandwidth))
		return fail(p, s->key->line, "bandwidth " VAL ": not bytes per second "
			    "(N, NK, NM or NG)", s->args[0].text);
	return 0;
}

/*
 * 0 (no limit) or at least the controller's floor (DMREPL_RESYNC_MIN_RATE):
 * a limit under it would not be kept, and the resync must always end.
 */
static int set_resync_rate(struct parser *p, const struct stmt *s)
{
	unsigned long long v;

	if (!parse_size(s->args[0].text, &v) || (v && v < (64ULL << 10)))
		return fail(p, s->key->line, "resync-rate " VAL ": not 0 or bytes per second "
			    "from 64K (N, NK, NM or NG)", s->args[0].text);
	p->g->resync_rate = v;
	return 0;
}

/* A time from 100ms to max_s seconds into *ms. */
static int set_time(struct parser *p, const struct stmt *s, unsigned int max_s,
		    unsigned int *ms)
{
	unsigned long long v;

	if (!dmrepl_parse_ms(s->args[0].text, &v) || v < 100 || v > max_s * 1000ULL)
		return fail(p, s->key->line, "%s " VAL ": not a time from 100ms to %us",
			    s->key->text, s->args[0].text, max_s);
	*ms = (unsigned int)v;
	return 0;
}

static int set_resync_lag_target(struct parser *p, const struct stmt *s)
{
	return set_time(p, s, 600, &p->g->resync_lag_ms);
}

static int set_window(struct parser *p, const struct stmt *s)
{
	unsigned long long v;

	if (!parse_uint(s->args[0].text, &v) || v < 1 || v > 64)
		return fail(p, s->key->line, "window " VAL ": not a number from 1 to 64",
			    s->args[0].text);
	p->g->window = (unsigned int)v;
	return 0;
}

static int set_batch_size(struct parser *p, const struct stmt *s)
{
	unsigned long long v;

	if (!parse_size(s->args[0].text, &v) || v < (64 << 10) || v > (32 << 20))
		return fail(p, s->key->line, "batch-size " VAL ": not a size from 64K "
			    "to 32M", s->args[0].text);
	p->g->batch_bytes = (unsigned int)v;
	return 0;
}

static int set_heartbeat(struct parser *p, const struct stmt *s)
{
	return set_time(p, s, 60, &p->g->heartbeat_ms);
}

static int set_timeout(struct parser *p, const struct stmt *s)
{
	unsigned long long v;

	/* The lower bound, above the heartbeat, is checked once both are known. */
	if (!dmrepl_parse_ms(s->args[0].text, &v) || v < 1 || v > 600000)
		return fail(p, s->key->line, "timeout " VAL ": not a time up to 600s "
			    "(units ms, s)", s->args[0].text);
	p->g->timeout_ms = (unsigned int)v;
	return 0;
}

static int set_ring_size(struct parser *p, const struct stmt *s)
{
	unsigned long long v;

	if (!parse_size(s->args[0].text, &v) || v < (2 << 20) || v > (16ULL << 30) ||
	    (v & (v - 1)))
		return fail(p, s->key->line, "ring-size " VAL ": not a power of two "
			    "from 2M to 16G", s->args[0].text);
	p->g->ring_mb = (unsigned int)(v >> 20);
	return 0;
}

static int set_tls(struct parser *p, const struct stmt *s)
{
	return parse_block(p, &tls_block, s->key->line, p->seen->tls, "tls");
}

static int set_site(struct parser *p, const struct stmt *s)
{
	const char *name = s->args[0].text;
	struct dmrepl_conf_site *site;
	char where[96];
	unsigned int i;
	int ret;

	if (!name_ok(name, SITE_NAME_MAX))
		return fail(p, s->key->line, "site " VAL ": not a name of 1-%d of "
			    "[A-Za-z0-9_.+-], not starting with '.'", name, SITE_NAME_MAX);
	for (i = 0; i < p->nsites; i++)
		if (!strcmp(p->g->sites[i].name, name))
			return fail(p, s->key->line, "duplicate site \"%s\" (first at line %u)",
				    name, p->g->sites[i].line);
	if (p->nsites == 2)
		return fail(p, s->key->line, "site \"%s\": a third site; a group has "
			    "exactly two", name);
	site = &p->g->sites[p->nsites];
	p->site = site;
	site->line = s->key->line;
	ret = dup_str(p, &site->name, name);
	if (ret)
		return ret;
	snprintf(where, sizeof(where), "site \"%s\"", name);
	return parse_block(p, &site_block, s->key->line,
			   p->seen->site[p->nsites++].line, where);
}

static const struct key group_keys[G_NKEYS] = {
	[G_COMPRESSION] = { "compression", 1, 2, false, false, false, set_compression },
	[G_BANDWIDTH] = { "bandwidth", 1, 1, false, false, false, set_bandwidth },
	[G_WINDOW] = { "window", 1, 1, false, false, false, set_window },
	[G_BATCH] = { "batch-size", 1, 1, false, false, false, set_batch_size },
	[G_HEARTBEAT] = { "heartbeat", 1, 1, false, false, false, set_heartbeat },
	[G_TIMEOUT] = { "timeout", 1, 1, false, false, false, set_timeout },
	[G_RING] = { "ring-size", 1, 1, false, false, false, set_ring_size },
	[G_RESYNC_RATE] = { "resync-rate", 1, 1, false, false, false, set_resync_rate },
	[G_RESYNC_LAG] = { "resync-lag-target", 1, 1, false, false, false,
			   set_resync_lag_target },
	[G_TLS] = { "tls", 0, 0, true, false, true, set_tls },
	[G_SITE] = { "site", 1, 1, true, true, false, set_site },
};

static const struct block group_block = { "group", group_keys, G_NKEYS };

static const struct block *const all_blocks[] = {
	&group_block, &tls_block, &site_block, &volume_block,
};
static const size_t nr_all_blocks = sizeof(all_blocks) / sizeof(all_blocks[0]);

/* ---- checks of the whole group --------------------------------------------- */

static int check_auth(struct parser *p, const struct file_seen *fs)
{
	struct dmrepl_conf_group *g = p->g;
	const unsigned int *t = fs->tls;
	unsigned int i, k;

	if (t[T_CA] && t[T_PSK])
		return fail(p, t[T_PSK], "tls: psk and ca exclude each other (ca at line %u)",
			    t[T_CA]);
	if (!t[T_CA] && !t[T_PSK])
		return fail(p, fs->group[G_TLS], "tls: missing key \"ca\" (certificate "
			    "mode) or \"psk\" (PSK mode)");
	if (t[T_CA] && t[T_PSK_IDENTITY])
		return fail(p, t[T_PSK_IDENTITY], "tls: psk-identity is for PSK mode, "
			    "not with ca");
	g->auth = t[T_PSK] ? DMREPL_AUTH_PSK : DMREPL_AUTH_CERT;
	for (i = 0; i < 2; i++) {
		const unsigned int *l = fs->site[i].line;

		for (k = S_CERTIFICATE; k <= S_IDENTITY; k++) {
			if (g->auth == DMREPL_AUTH_PSK && l[k])
				return fail(p, l[k], "site \"%s\": %s is for certificate "
					    "mode, not with psk", g->sites[i].name,
					    site_keys[k].name);
			if (g->auth == DMREPL_AUTH_CERT && k != S_IDENTITY && !l[k])
				return fail(p, g->sites[i].line, "site \"%s\": missing key "
					    "\"%s\" (certificate mode)", g->sites[i].name,
					    site_keys[k].name);
		}
	}
	return 0;
}

static int sort_by_index(const void *a, const void *b)
{
	const struct dmrepl_conf_volume *x = a, *y = b;

	return (x->index > y->index) - (x->index < y->index);
}

static int fill_defaults(struct parser *p)
{
	struct dmrepl_conf_group *g = p->g;
	char name[GROUP_NAME_MAX + 16];
	unsigned int i, v;
	int ret = 0;

	if (g->auth == DMREPL_AUTH_PSK && !g->psk_identity)
		ret = dup_str(p, &g->psk_identity, g->name);
	for (i = 0; i < 2 && !ret; i++) {
		struct dmrepl_conf_site *s = &g->sites[i];

		qsort(s->volumes, s->nvolumes, sizeof(*s->volumes), sort_by_index);
		if (g->auth == DMREPL_AUTH_CERT && !s->identity)
			ret = dup_str(p, &s->identity, s->host);
		for (v = 0; v < s->nvolumes && !ret; v++) {
			if (s->volumes[v].device)
				continue;
			snprintf(name, sizeof(name), "%s-%u", g->name, s->volumes[v].index);
			ret = dup_str(p, &s->volumes[v].device, name);
		}
	}
	return ret;
}

static int check_sites(struct parser *p)
{
	const struct dmrepl_conf_site *a = &p->g->sites[0], *b = &p->g->sites[1];
	unsigned int i;

	if (!strcasecmp(a->host, b->host))
		return fail(p, b->line, "site \"%s\": host \"%s\" is also the host of "
			    "site \"%s\"", b->name, b->host, a->name);
	if (!strcasecmp(a->address, b->address) && a->port == b->port)
		return fail(p, b->line, "site \"%s\": address \"%s\" port %u is also the "
			    "address of site \"%s\"", b->name, b->address, b->port, a->name);
	for (i = 0; i < a->nvolumes || i < b->nvolumes; i++) {
		const struct dmrepl_conf_site *s = a, *other = b;

		if (i < a->nvolumes && i < b->nvolumes &&
		    a->volumes[i].index == b->volumes[i].index)
			continue;
		/* The first difference: the smaller index is the one missing. */
		if (i >= a->nvolumes || (i < b->nvolumes &&
					 b->volumes[i].index < a->volumes[i].index)) {
			s = b;
			other = a;
		}
		return fail(p, s->volumes[i].line, "volume %u of site \"%s\" is not in "
			    "site \"%s\"", s->volumes[i].index, s->name, other->name);
	}
	return 0;
}

/* Two volumes of a site on one device path, or with one dm device name. */
static int check_volumes(struct parser *p, const struct dmrepl_conf_site *s)
{
	unsigned int i, j;

	for (i = 0; i < s->nvolumes; i++) {
		const struct dmrepl_conf_volume *v = &s->volumes[i];

		if (!strcmp(v->data, v->meta))
			return fail(p, v->line, "volume %u of site \"%s\": data and meta "
				    "are the same path \"%s\"", v->index, s->name, v->data);
		for (j = 0; j < i; j++) {
			const struct dmrepl_conf_volume *w = &s->volumes[j];
			const char *path = NULL;

			if (!strcmp(v->data, w->data) || !strcmp(v->data, w->meta))
				path = v->data;
			else if (!strcmp(v->meta, w->data) || !strcmp(v->meta, w->meta))
				path = v->meta;
			if (path)
				return fail(p, v->line, "volume %u of site \"%s\": path \"%s\" "
					    "is also used by volume %u", v->index, s->name,
					    path, w->index);
			if (!strcmp(v->device, w->device))
				return fail(p, v->line, "volume %u of site \"%s\": device "
					    "\"%s\" is also the device of volume %u",
					    v->index, s->name, v->device, w->index);
		}
	}
	return 0;
}

static int check_group(struct parser *p, const struct file_seen *fs)
{
	struct dmrepl_conf_group *g = p->g;
	unsigned int i;
	int ret;

	if (p->nsites != 2)
		return fail(p, g->line, "group \"%s\": %u site%s; a group has exactly two",
			    g->name, p->nsites, p->nsites == 1 ? "" : "s");
	ret = check_auth(p, fs);
	if (!ret)
		ret = fill_defaults(p);
	if (!ret)
		ret = check_sites(p);
	for (i = 0; i < 2 && !ret; i++)
		ret = check_volumes(p, &g->sites[i]);
	if (ret)
		return ret;
	if (g->timeout_ms <= g->heartbeat_ms)
		return fail(p, fs->group[G_TIMEOUT] ? fs->group[G_TIMEOUT] :
			    fs->group[G_HEARTBEAT], "timeout %ums is not more than "
			    "heartbeat %ums", g->timeout_ms, g->heartbeat_ms);
	return 0;
}

/* ---- the file --------------------------------------------------------------- */

static void set_defaults(struct dmrepl_conf_group *g)
{
	g->compress_level = DEFAULT_ZSTD_LEVEL;
	g->bandwidth = 0;
	g->window = 4;
	g->batch_bytes = 1 << 20;
	g->heartbeat_ms = 1000;
	g->timeout_ms = 5000;
	g->ring_mb = 64;
	g->resync_rate = 0;
	g->resync_lag_ms = 1000;
}

/* group NAME { ... } and nothing after it. */
static int parse_file(struct parser *p)
{
	const struct tok *t = &p->toks[0];
	char buf[224];
	int ret;

	if (t->type != TOK_WORD || strcmp(t->text, "group"))
		return fail(p, t->line, "expected \"group NAME {\", found %s",
			    tok_desc(t, buf, sizeof(buf)));
	p->g->line = t->line;
	t = &p->toks[1];
	if (!is_value(t) || p->toks[2].type != TOK_LBRACE)
		return fail(p, p->g->line, "expected \"group NAME {\"");
	if (!name_ok(t->text, GROUP_NAME_MAX))
		return fail(p, t->line, "group " VAL ": not a name of 1-%d of "
			    "[A-Za-z0-9_.+-], not starting with '.'", t->text, GROUP_NAME_MAX);
	ret = dup_str(p, &p->g->name, t->text);
	if (ret)
		return ret;
	p->pos = 3;
	ret = parse_block(p, &group_block, p->g->line, p->seen->group, "group");
	if (ret)
		return ret;
	t = &p->toks[p->pos];
	if (t->type != TOK_EOF)
		return fail(p, t->line, "%s after the end of group \"%s\"",
			    tok_desc(t, buf, sizeof(buf)), p->g->name);
	return check_group(p, p->seen);
}

int dmrepl_conf_parse(const char *file, const char *text, size_t len,
		      struct dmrepl_conf_group *g, char *err, size_t errlen)
{
	struct file_seen seen;
	struct parser parser = {
		.file = file, .err = err, .errlen = errlen, .g = g, .seen = &seen,
	};
	struct parser *p = &parser;
	int ret;

	memset(&seen, 0, sizeof(seen));
	memset(g, 0, sizeof(*g));
	if (err && errlen)
		err[0] = '\0';
	set_defaults(g);
	if (len > DMREPL_CONF_MAX_BYTES)
		ret = fail(p, 0, "larger than %d bytes", DMREPL_CONF_MAX_BYTES);
	else
		ret = tokenize(p, text, len);
	if (!ret)
		ret = parse_file(p);
	if (!ret)
		ret = dup_str(p, &g->file, file);
	if (ret)
		dmrepl_conf_free(g);
	free(p->toks);
	free(p->arena);
	return ret;
}

void dmrepl_conf_free(struct dmrepl_conf_group *g)
{
	unsigned int i, v;

	for (i = 0; i < 2; i++) {
		struct dmrepl_conf_site *s = &g->sites[i];

		for (v = 0; v < s->nvolumes; v++) {
			free(s->volumes[v].device);
			free(s->volumes[v].data);
			free(s->volumes[v].meta);
		}
		free(s->volumes);
		free(s->name);
		free(s->host);
		free(s->group);
		free(s->address);
		free(s->certificate);
		free(s->snapshot_hook);
		free(s->key);
		free(s->identity);
	}
	free(g->name);
	free(g->file);
	free(g->ca);
	free(g->psk);
	free(g->psk_identity);
	memset(g, 0, sizeof(*g));
}

void dmrepl_conf_free_all(struct dmrepl_conf_group *groups, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		dmrepl_conf_free(&groups[i]);
	free(groups);
}

/* ---- files ------------------------------------------------------------------- */

__attribute__((format(printf, 3, 4)))
static int set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/*
 * Open path as a regular file of at most max bytes: the fd and its size, or
 * -errno with err "PATH: reason". what names the file's role, or is NULL.
 */
static int open_regular(const char *what, const char *path, size_t max, struct stat *st,
			char *err, size_t errlen)
{
	const char *sep = what ? " " : "";
	int fd, ret;

	what = what ? what : "";
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		ret = -errno;
		set_err(err, errlen, "%s%s%s: %s", what, sep, path, strerror(-ret));
		return ret;
	}
	if (fstat(fd, st)) {
		ret = -errno;
		set_err(err, errlen, "%s%s%s: %s", what, sep, path, strerror(-ret));
	} else if (!S_ISREG(st->st_mode)) {
		ret = set_err(err, errlen, "%s%s%s: not a regular file", what, sep, path);
	} else if ((unsigned long long)st->st_size > max) {
		ret = -EFBIG;
		set_err(err, errlen, "%s%s%s: larger than %zu bytes", what, sep, path, max);
	} else {
		return fd;
	}
	close(fd);
	return ret;
}

/* All of fd (size bytes, re-checked); a malloc()ed buffer in *buf. */
static int read_all(int fd, size_t size, char **buf, size_t *len)
{
	size_t n = 0;
	ssize_t r;

	*buf = malloc(size + 1);
	if (!*buf)
		return -ENOMEM;
	/* Read one byte more than expected, to see a file that grew. */
	while (n <= size) {
		r = read(fd, *buf + n, size + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(*buf);
			return -errno;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n > size) {
		free(*buf);
		return -EFBIG;
	}
	*len = n;
	return 0;
}

static int read_file(const char *what, const char *path, size_t max, char **buf,
		     size_t *len, mode_t *mode, char *err, size_t errlen)
{
	struct stat st;
	int fd, ret;

	fd = open_regular(what, path, max, &st, err, errlen);
	if (fd < 0)
		return fd;
	ret = read_all(fd, (size_t)st.st_size, buf, len);
	close(fd);
	if (ret)
		set_err(err, errlen, "%s%s%s: %s", what ? what : "", what ? " " : "",
			path, ret == -EFBIG ? "changed while read" : strerror(-ret));
	if (mode)
		*mode = st.st_mode;
	return ret;
}

/* The file's name must be <group>.conf. */
static int check_file_name(const char *path, const struct dmrepl_conf_group *g,
			   char *err, size_t errlen)
{
	const char *base = strrchr(path, '/');
	size_t len;

	base = base ? base + 1 : path;
	len = strlen(base);
	if (len > 5 && !strcmp(base + len - 5, ".conf") && len - 5 == strlen(g->name) &&
	    !strncmp(base, g->name, len - 5))
		return 0;
	return set_err(err, errlen, "%s:%u: group \"%s\" must be in a file named "
		       "\"%s.conf\"", path, g->line, g->name, g->name);
}

int dmrepl_conf_load(const char *path, struct dmrepl_conf_group *g, char *err,
		     size_t errlen)
{
	size_t len;
	char *text;
	int ret;

	memset(g, 0, sizeof(*g));
	ret = read_file(NULL, path, DMREPL_CONF_MAX_BYTES, &text, &len, NULL, err, errlen);
	if (ret)
		return ret;
	ret = dmrepl_conf_parse(path, text, len, g, err, errlen);
	free(text);
	if (!ret)
		ret = check_file_name(path, g, err, errlen);
	if (ret)
		dmrepl_conf_free(g);
	return ret;
}

/* ---- directories ---------------------------------------------------------- */

static bool same_path(const struct dmrepl_conf_volume *v, const struct dmrepl_conf_volume *w,
		      const char **path)
{
	if (!strcmp(v->data, w->data) || !strcmp(v->data, w->meta))
		*path = v->data;
	else if (!strcmp(v->meta, w->data) || !strcmp(v->meta, w->meta))
		*path = v->meta;
	else
		return false;
	return true;
}

/*
 * What site s of group g may share with site t of group h on the same host:
 * nothing of its volumes, neither a device path nor a dm device name.
 */
static int site_conflict(const struct dmrepl_conf_group *g, const struct dmrepl_conf_site *s,
			 const struct dmrepl_conf_group *h, const struct dmrepl_conf_site *t,
			 char *err, size_t errlen)
{
	const char *path;
	unsigned int i, j;

	for (i = 0; i < s->nvolumes; i++) {
		const struct dmrepl_conf_volume *v = &s->volumes[i];

		for (j = 0; j < t->nvolumes; j++) {
			const struct dmrepl_conf_volume *w = &t->volumes[j];

			if (same_path(v, w, &path))
				return set_err(err, errlen, "%s:%u: volume %u of site \"%s\": "
					       "path \"%s\" is also used by group \"%s\" "
					       "(%s:%u)", g->file, v->line, v->index, s->name,
					       path, h->name, h->file, w->line);
			if (!strcmp(v->device, w->device))
				return set_err(err, errlen, "%s:%u: volume %u of site \"%s\": "
					       "device \"%s\" is also a device of group "
					       "\"%s\" (%s:%u)", g->file, v->line, v->index,
					       s->name, v->device, h->name, h->file, w->line);
		}
	}
	return 0;
}

static int group_conflict(const struct dmrepl_conf_group *g, const struct dmrepl_conf_group *h,
			  char *err, size_t errlen)
{
	unsigned int i, j;
	int ret;

	for (i = 0; i < 2; i++)
		for (j = 0; j < 2; j++) {
			if (strcasecmp(g->sites[i].host, h->sites[j].host))
				continue;
			ret = site_conflict(g, &g->sites[i], h, &h->sites[j], err, errlen);
			if (ret)
				return ret;
		}
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_conf_name(const char *name)
{
	size_t len = strlen(name);

	return name[0] != '.' && len > 5 && !strcmp(name + len - 5, ".conf");
}

/* The *.conf names of dir, sorted; -errno. */
static int list_dir(const char *dir, char ***names, size_t *n)
{
	size_t cap = 0;
	struct dirent *de;
	char **v = NULL;
	DIR *d;
	int ret = 0;

	*n = 0;
	*names = NULL;
	d = opendir(dir);
	if (!d)
		return -errno;
	while (!ret && (errno = 0, de = readdir(d))) {
		if (!is_conf_name(de->d_name))
			continue;
		if (*n == cap) {
			char **nv = realloc(v, (cap = cap ? 2 * cap : 16) * sizeof(*v));

			if (!nv) {
				ret = -ENOMEM;
				break;
			}
			v = nv;
		}
		v[*n] = strdup(de->d_name);
		if (!v[*n])
			ret = -ENOMEM;
		else
			(*n)++;
	}
	if (!ret && errno)
		ret = -errno;
	closedir(d);
	if (*n)
		qsort(v, *n, sizeof(*v), cmp_names);
	*names = v;
	return ret;
}

static void free_names(char **names, size_t n)
{
	while (n--)
		free(names[n]);
	free(names);
}

/* Load dir/name into g, after the groups before it; 0, -EINVAL (reported), -ENOMEM. */
static int load_one(const char *dir, const char *name, struct dmrepl_conf_group *g,
		    const struct dmrepl_conf_group *before, unsigned int nbefore,
		    void (*report)(const char *msg, void *arg), void *arg)
{
	char path[PATH_MAX], err[512];
	unsigned int i;
	int ret;

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path)) {
		set_err(err, sizeof(err), "%s/%s: %s", dir, name, strerror(ENAMETOOLONG));
		ret = -EINVAL;
	} else {
		ret = dmrepl_conf_load(path, g, err, sizeof(err));
	}
	for (i = 0; i < nbefore && !ret; i++) {
		ret = group_conflict(g, &before[i], err, sizeof(err));
		if (ret)
			dmrepl_conf_free(g);
	}
	if (ret == -ENOMEM)
		return ret;
	if (ret && report)
		report(err, arg);
	return ret ? -EINVAL : 0;
}

int dmrepl_conf_load_dir(const char *dir, struct dmrepl_conf_group **groups,
			 unsigned int *ngroups,
			 void (*report)(const char *msg, void *arg), void *arg)
{
	struct dmrepl_conf_group *v = NULL;
	unsigned int n = 0, bad = 0;
	char **names;
	size_t nnames, i;
	int ret;

	*groups = NULL;
	*ngroups = 0;
	ret = list_dir(dir, &names, &nnames);
	if (!ret && nnames) {
		v = calloc(nnames, sizeof(*v));
		if (!v)
			ret = -ENOMEM;
	}
	for (i = 0; i < nnames && !ret; i++) {
		ret = load_one(dir, names[i], &v[n], v, n, report, arg);
		if (!ret)
			n++;
		else if (ret == -EINVAL)
			bad++;
		if (ret == -EINVAL)
			ret = 0;
	}
	free_names(names, nnames);
	if (ret) {
		dmrepl_conf_free_all(v, n);
		return ret;
	}
	*groups = v;
	*ngroups = n;
	return (int)bad;
}

/* ---- this host --------------------------------------------------------- */

/* host is the host name, or its short name (up to the first dot). */
static bool host_matches(const char *host, const char *hostname)
{
	size_t short_len = strcspn(hostname, ".");

	return !strcasecmp(host, hostname) ||
	       (strlen(host) == short_len && !strncasecmp(host, hostname, short_len));
}

const struct dmrepl_conf_site *
dmrepl_conf_local_site(const struct dmrepl_conf_group *g, const char *site_name,
		       char *err, size_t errlen)
{
	const struct dmrepl_conf_site *a = &g->sites[0], *b = &g->sites[1];
	char hostname[HOST_MAX + 2];
	bool ma, mb;

	if (site_name) {
		if (!strcmp(a->name, site_name) || !strcmp(b->name, site_name))
			return strcmp(a->name, site_name) ? b : a;
		set_err(err, errlen, "%s: group \"%s\" has no site \"%s\" (its sites: %s, %s)",
			g->file, g->name, site_name, a->name, b->name);
		return NULL;
	}
	if (gethostname(hostname, sizeof(hostname))) {
		set_err(err, errlen, "host name: %s", strerror(errno));
		return NULL;
	}
	hostname[sizeof(hostname) - 1] = '\0';
	ma = host_matches(a->host, hostname);
	mb = host_matches(b->host, hostname);
	if (ma != mb)
		return ma ? a : b;
	set_err(err, errlen, "%s: group \"%s\": %s site has host \"%s\" (site %s: host %s, "
		"site %s: host %s); name the local site", g->file, g->name,
		ma ? "more than one" : "no", hostname, a->name, a->host, b->name, b->host);
	return NULL;
}

const struct dmrepl_conf_site *
dmrepl_conf_peer_site(const struct dmrepl_conf_group *g,
		      const struct dmrepl_conf_site *local)
{
	if (local == &g->sites[0])
		return &g->sites[1];
	if (local == &g->sites[1])
		return &g->sites[0];
	return NULL;
}

/* A secret is for root alone, as ssh wants a private key to be. */
static int check_secret_mode(const char *what, const char *path, mode_t mode,
			     char *err, size_t errlen)
{
	if (!(mode & 077))
		return 0;
	return set_err(err, errlen, "%s %s: readable by group or others (mode %04o); "
		       "chmod 600 it", what, path, (unsigned int)(mode & 07777));
}

static int check_readable(const char *what, const char *path, bool secret, char *err,
			  size_t errlen)
{
	struct stat st;
	int fd;

	fd = open_regular(what, path, (size_t)-1, &st, err, errlen);
	if (fd < 0)
		return fd;
	close(fd);
	return secret ? check_secret_mode(what, path, st.st_mode, err, errlen) : 0;
}

int dmrepl_conf_check_local(const struct dmrepl_conf_group *g,
			    const struct dmrepl_conf_site *local, char *err,
			    size_t errlen)
{
	unsigned char key[256];
	size_t keylen = sizeof(key);
	int ret;

	if (local->snapshot_hook && access(local->snapshot_hook, X_OK))
		return set_err(err, errlen, "snapshot-hook %s: %s", local->snapshot_hook,
			       strerror(errno));
	if (g->auth == DMREPL_AUTH_PSK) {
		ret = dmrepl_conf_read_psk(g->psk, key, &keylen, err, errlen);
		explicit_bzero(key, sizeof(key));
		return ret;
	}
	ret = check_readable("ca", g->ca, false, err, errlen);
	if (!ret)
		ret = check_readable("certificate", local->certificate, false, err, errlen);
	if (!ret)
		ret = check_readable("key", local->key, true, err, errlen);
	return ret;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int decode_hex(const char *path, const char *text, size_t len, unsigned char *key,
		      size_t *keylen, char *err, size_t errlen)
{
	size_t i, ndigits;

	while (len && strchr(" \t\r\n", text[len - 1]))
		len--;
	for (ndigits = 0; ndigits < len; ndigits++)
		if (hex_value(text[ndigits]) < 0)
			return set_err(err, errlen, "psk %s: not hex text: byte %zu is 0x%02x",
				       path, ndigits, (unsigned char)text[ndigits]);
	if (ndigits % 2)
		return set_err(err, errlen, "psk %s: odd number of hex digits (%zu)", path,
			       ndigits);
	if (ndigits < 64)
		return set_err(err, errlen, "psk %s: %zu bytes of key; at least 32 "
			       "(openssl rand -hex 32)", path, ndigits / 2);
	if (ndigits / 2 > *keylen)
		return set_err(err, errlen, "psk %s: %zu bytes of key; at most %zu", path,
			       ndigits / 2, *keylen);
	for (i = 0; i < ndigits / 2; i++)
		key[i] = (unsigned char)(hex_value(text[2 * i]) << 4 |
					 hex_value(text[2 * i + 1]));
	*keylen = ndigits / 2;
	return 0;
}

int dmrepl_conf_read_psk(const char *path, unsigned char *key, size_t *keylen,
			 char *err, size_t errlen)
{
	size_t len;
	mode_t mode;
	char *text;
	int ret;

	ret = read_file("psk", path, 4096, &text, &len, &mode, err, errlen);
	if (ret)
		return ret;
	ret = check_secret_mode("psk", path, mode, err, errlen);
	if (!ret)
		ret = decode_hex(path, text, len, key, keylen, err, errlen);
	explicit_bzero(text, len);
	free(text);
	return ret;
}
