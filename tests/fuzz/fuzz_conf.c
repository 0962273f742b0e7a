// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target: the resource file parser on any bytes. It must return
 * 0 or an error, never crash, leak or read out of bounds.
 */
#include <stddef.h>
#include <stdint.h>

#include "dmrepl_conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dmrepl_conf_group g;
	char err[256];

	dmrepl_conf_parse("fuzz.conf", (const char *)data, size, &g, err, sizeof(err));
	dmrepl_conf_free(&g);
	return 0;
}
