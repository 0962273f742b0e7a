// SPDX-License-Identifier: GPL-2.0
/*
 * repltool's main() run in-process with its output captured in memfds.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runtool.h"

#define MAX_ARGS 32

static size_t slurp(int fd, char *buf, size_t size)
{
	ssize_t n;

	lseek(fd, 0, SEEK_SET);
	n = read(fd, buf, size - 1);
	if (n < 0)
		n = 0;
	buf[n] = '\0';
	return (size_t)n;
}

void run_tool(struct run *r, ...)
{
	char *argv[MAX_ARGS + 1] = { "repltool" };
	int argc = 1, out, err, save_out, save_err;
	va_list ap;

	va_start(ap, r);
	while (argc < MAX_ARGS && (argv[argc] = va_arg(ap, char *)))
		argc++;
	va_end(ap);
	argv[argc] = NULL;

	out = memfd_create("out", 0);
	err = memfd_create("err", 0);
	fflush(stdout);
	fflush(stderr);
	save_out = dup(1);
	save_err = dup(2);
	dup2(out, 1);
	dup2(err, 2);
	r->status = repltool_main(argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(save_out, 1);
	dup2(save_err, 2);
	close(save_out);
	close(save_err);
	if (!r->out)
		r->out = malloc(RUN_OUT_MAX);
	r->out_len = slurp(out, r->out, RUN_OUT_MAX);
	slurp(err, r->err, sizeof(r->err));
	close(out);
	close(err);
}
