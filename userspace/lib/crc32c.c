// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * crc32c (Castagnoli) in the kernel's convention, two ways with the same
 * results:
 *
 *   portable   libext2fs's table-driven crc (the one ext4's tools use);
 *              the only code that sees <ext2fs/ext2fs.h>
 *   x86-64     the SSE4.2 crc32 instruction over three streams at once,
 *              joined with one carry-less multiply (PCLMUL) per stream
 *
 * dmrepl_crc32c() takes the second when the CPU has both instructions.
 * tests/unit/test_rec.c compares the two on many lengths and alignments.
 */
#include <ext2fs/ext2fs.h>
#include <stdint.h>
#include <string.h>

#include "dmrepl.h"

__u32 dmrepl_crc32c_sw(__u32 crc, const void *p, size_t len)
{
	return ext2fs_crc32c_le(crc, p, len);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define CRC_TARGET __attribute__((target("sse4.2,pclmul")))

/*
 * The crc32 instruction has a latency of three cycles and a throughput of
 * one: three independent streams keep it busy. Each loop takes three
 * consecutive stretches of n bytes, the first continuing the crc, the
 * other two from 0, and joins them as the crc of the whole:
 *
 *   crc(c, A B) = crc(c, A) * x^(8 |B|) ^ crc(0, B)   (mod P)
 *
 * The product is one PCLMUL of the 32-bit crc by K = x^(8n - 33) mod P
 * (bit-reflected, as the crc), whose 64-bit result the crc32 instruction
 * reduces: it multiplies by x^32 and the reflected product carries one
 * more x, hence the 33.
 */
#define LONG_LEN	8192U
#define LONG_K		0x54a86326U	/* x^(8 * 8192 - 33) mod P */
#define SHORT_LEN	256U
#define SHORT_K		0xb9e02b86U	/* x^(8 * 256 - 33) mod P */

static inline __u64 load64(const unsigned char *p)
{
	__u64 v;

	memcpy(&v, p, sizeof(v));
	return v;
}

CRC_TARGET static __u32 shift(__u32 crc, __u32 k)
{
	__m128i prod = _mm_clmulepi64_si128(_mm_cvtsi32_si128((int)crc),
					    _mm_cvtsi32_si128((int)k), 0);

	return (__u32)_mm_crc32_u64(0, (__u64)_mm_cvtsi128_si64(prod));
}

/* Three streams of n bytes while 3 * n remain; *p and *len move on. */
CRC_TARGET static __u32 crc_3way(__u32 crc, const unsigned char **p, size_t *len,
				 size_t n, __u32 k)
{
	const unsigned char *q = *p, *end;
	__u64 c0, c1, c2;

	while (*len >= 3 * n) {
		c0 = crc;
		c1 = 0;
		c2 = 0;
		for (end = q + n; q < end; q += 8) {
			c0 = _mm_crc32_u64(c0, load64(q));
			c1 = _mm_crc32_u64(c1, load64(q + n));
			c2 = _mm_crc32_u64(c2, load64(q + 2 * n));
		}
		crc = shift(shift((__u32)c0, k) ^ (__u32)c1, k) ^ (__u32)c2;
		q += 2 * n;
		*len -= 3 * n;
	}
	*p = q;
	return crc;
}

CRC_TARGET static __u32 crc_hw(__u32 crc, const unsigned char *p, size_t len)
{
	__u64 c;

	for (; len && ((uintptr_t)p & 7); p++, len--)
		crc = _mm_crc32_u8(crc, *p);
	crc = crc_3way(crc, &p, &len, LONG_LEN, LONG_K);
	crc = crc_3way(crc, &p, &len, SHORT_LEN, SHORT_K);
	for (c = crc; len >= 8; p += 8, len -= 8)
		c = _mm_crc32_u64(c, load64(p));
	for (crc = (__u32)c; len; p++, len--)
		crc = _mm_crc32_u8(crc, *p);
	return crc;
}

static bool have_hw(void)
{
	return __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("pclmul");
}

bool dmrepl_crc32c_hw(__u32 *crc, const void *p, size_t len)
{
	if (!have_hw())
		return false;
	*crc = crc_hw(*crc, p, len);
	return true;
}

__u32 dmrepl_crc32c(__u32 crc, const void *p, size_t len)
{
	return have_hw() ? crc_hw(crc, p, len) : dmrepl_crc32c_sw(crc, p, len);
}

#else

bool dmrepl_crc32c_hw(__u32 *crc, const void *p, size_t len)
{
	(void)crc;
	(void)p;
	(void)len;
	return false;
}

__u32 dmrepl_crc32c(__u32 crc, const void *p, size_t len)
{
	return dmrepl_crc32c_sw(crc, p, len);
}

#endif
