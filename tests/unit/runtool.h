/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Run repltool in-process (its main() is compiled as repltool_main()) with
 * stdout and stderr captured.
 */
#ifndef RUNTOOL_H
#define RUNTOOL_H

#include <stddef.h>

#define RUN_OUT_MAX (256 * 1024)

struct run {
	int status;
	char *out;		/* stdout, NUL-terminated; malloc()ed by run_tool */
	size_t out_len;
	char err[4096];		/* stderr */
};

int repltool_main(int argc, char **argv);

/* Run "repltool ARGS..." (NULL ends ARGS, at most 31). Free r->out when done. */
void run_tool(struct run *r, ...);

#endif
