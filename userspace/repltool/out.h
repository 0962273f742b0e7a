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
/* End of a line (text) or of a top-level JSON value (JSON Lines). */
void out_newline(struct out *o);

#endif
