// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * crc32c from libext2fs (the same table-driven Castagnoli crc the kernel
 * uses for ext4). The only file that sees <ext2fs/ext2fs.h>.
 */
#include <ext2fs/ext2fs.h>

#include "dmrepl.h"

__u32 dmrepl_crc32c(__u32 crc, const void *p, size_t len)
{
	return ext2fs_crc32c_le(crc, p, len);
}
