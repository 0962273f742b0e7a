// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Text and JSON from the same calls; see out.h.
 */
#include <stdarg.h>

#include "out.h"

void out_init(struct out *o, FILE *f, bool json)
{
	o->f = f;
	o->json = json;
	o->depth = 0;
	o->need_comma[0] = false;
	o->kv_indent = 0;
	o->kv_width = 16;
}

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

/* Comma and key before a JSON value at the current depth. */
static void json_key(struct out *o, const char *key)
{
	if (o->need_comma[o->depth])
		fputc(',', o->f);
	o->need_comma[o->depth] = true;
	if (key) {
		json_string(o->f, key);
		fputc(':', o->f);
	}
}

static void json_open(struct out *o, const char *key, char c)
{
	if (!o->json)
		return;
	json_key(o, key);
	fputc(c, o->f);
	if (o->depth < OUT_MAX_DEPTH - 1)
		o->depth++;
	o->need_comma[o->depth] = false;
}

static void json_close(struct out *o, char c)
{
	if (!o->json)
		return;
	fputc(c, o->f);
	if (o->depth > 0)
		o->depth--;
}

void out_open_object(struct out *o, const char *key)
{
	json_open(o, key, '{');
}

void out_close_object(struct out *o)
{
	json_close(o, '}');
}

void out_open_array(struct out *o, const char *key)
{
	json_open(o, key, '[');
}

void out_close_array(struct out *o)
{
	json_close(o, ']');
}

static bool wanted(const struct out *o, enum out_to to)
{
	return to == OUT_ANY || (to == OUT_JSON) == o->json;
}

void out_u64(struct out *o, enum out_to to, const char *key, const char *fmt,
	     unsigned long long v)
{
	if (!wanted(o, to))
		return;
	if (o->json) {
		json_key(o, key);
		fprintf(o->f, "%llu", v);
	} else {
		fprintf(o->f, fmt, v);
	}
}

void out_str(struct out *o, enum out_to to, const char *key, const char *fmt,
	     const char *s)
{
	if (!wanted(o, to))
		return;
	if (o->json) {
		json_key(o, key);
		json_string(o->f, s);
	} else {
		fprintf(o->f, fmt, s);
	}
}

void out_null(struct out *o, enum out_to to, const char *key, const char *fmt)
{
	if (!wanted(o, to))
		return;
	if (o->json) {
		json_key(o, key);
		fputs("null", o->f);
	} else {
		fputs(fmt, o->f);
	}
}

void out_text(struct out *o, const char *fmt, ...)
{
	va_list ap;

	if (o->json)
		return;
	va_start(ap, fmt);
	vfprintf(o->f, fmt, ap);
	va_end(ap);
}

void out_kv_key(struct out *o, const char *key)
{
	out_text(o, "%*s%-*s ", o->kv_indent, "", o->kv_width - o->kv_indent - 1, key);
}

void out_kv_u64(struct out *o, const char *key, unsigned long long v)
{
	out_kv_key(o, key);
	out_u64(o, OUT_ANY, key, "%llu\n", v);
}

void out_kv_str(struct out *o, const char *key, const char *v)
{
	out_kv_key(o, key);
	out_str(o, OUT_ANY, key, "%s\n", v);
}

void out_newline(struct out *o)
{
	if (!o->json || o->depth == 0) {
		fputc('\n', o->f);
		if (o->json)
			o->need_comma[0] = false;
	}
}
