/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * One printer for text and JSON output (iproute2's json_print idea): every
 * value goes through an out_* call that names its JSON key and its text
 * format, so both outputs come from the same code path.
 */
#ifndef REPLTOOL_OUT_H
#define REPLTOOL_OUT_H

#include <stdbool.h>
#include <stdio.h>

/* Which output a call contributes to. */
enum out_to {
	OUT_ANY,	/* text (with fmt) and JSON (with key) */
	OUT_TEXT,	/* text only */
	OUT_JSON,	/* JSON only */
};

#define OUT_MAX_DEPTH 8

struct out {
	FILE *f;
	bool json;
	int depth;			/* open JSON objects and arrays */
	bool need_comma[OUT_MAX_DEPTH];
	int kv_indent;			/* out_kv_*: spaces before the key (text) */
	int kv_width;			/* out_kv_*: key column width (text), 16 */
};

void out_init(struct out *o, FILE *f, bool json);

/* JSON: start an object or array (key is NULL inside an array or at top level). */
void out_open_object(struct out *o, const char *key);
void out_close_object(struct out *o);
void out_open_array(struct out *o, const char *key);
void out_close_array(struct out *o);

void out_u64(struct out *o, enum out_to to, const char *key, const char *fmt,
	     unsigned long long v);
void out_str(struct out *o, enum out_to to, const char *key, const char *fmt,
	     const char *s);
/* A JSON null for key; fmt (no conversion) is the text. */
void out_null(struct out *o, enum out_to to, const char *key, const char *fmt);
/* Text only. */
void out_text(struct out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/*
 * One fact: text "KEY VALUE\n", the key after kv_indent spaces, padded to
 * kv_width columns; JSON "key":value.
 */
void out_kv_u64(struct out *o, const char *key, unsigned long long v);
/* The text part of those alone: indent, key, padding. */
void out_kv_key(struct out *o, const char *key);
void out_kv_str(struct out *o, const char *key, const char *v);
/* End of a line (text) or of a top-level JSON value (JSON Lines). */
void out_newline(struct out *o);

#endif
