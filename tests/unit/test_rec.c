// SPDX-License-Identifier: GPL-2.0
/*
 * The record codec: crc32c convention, encoding, accessors and every rule
 * of dmrepl_rec_check().
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "dmrepl.h"
#include "kselftest_harness.h"

#define BUF_SIZE 8192
#define HDR DM_REPL_REC_HDR_SIZE

/* The stream of every record make_rec() builds, and the two before it. */
#define STREAM_ID 0x0123456789abcdefULL
#define STREAM_PREV0 0x1122334455667788ULL
#define STREAM_PREV1 0x99aabbccddeeff00ULL

static unsigned char payload_4k[4096];

/* The link of a STREAM record: two streams before it, newest first. */
static const struct dm_repl_stream_link *stream_link(void)
{
	static struct dm_repl_stream_link link;

	memset(&link, 0, sizeof(link));
	link.prev[0] = htole64(STREAM_PREV0);
	link.prev[1] = htole64(STREAM_PREV1);
	return &link;
}

/* A valid record of the given type into buf; returns its len. */
static long make_rec(unsigned char *buf, unsigned int type)
{
	struct dmrepl_rec_fields f = {
		.type = type, .seq = 42, .epoch = 7, .volume = 3,
		.time_ns = 1700000000000000000ULL, .group_tag = 0x1CF96D7C,
		.stream = STREAM_ID,
	};

	switch (type) {
	case DM_REPL_REC_WRITE:
	case DM_REPL_REC_RESYNC:
		f.sector = 2048;
		f.nbytes = 4096;
		f.payload = payload_4k;
		f.payload_len = 4096;
		break;
	case DM_REPL_REC_DISCARD:
	case DM_REPL_REC_WRITE_ZEROES:
		f.sector = 4096;
		f.nbytes = 1 << 20;
		break;
	case DM_REPL_REC_MARKER:
		f.payload = "daily-0300";
		f.payload_len = 10;
		break;
	case DM_REPL_REC_STREAM:
		f.volume = 0;
		f.payload = stream_link();
		f.payload_len = sizeof(struct dm_repl_stream_link);
		break;
	case DM_REPL_REC_GAP:
		f.volume = 0;
		break;
	case DM_REPL_REC_VERIFY:
		f.sector = 128;
		f.nbytes = 64 << 10;
		f.payload = payload_4k;
		f.payload_len = sizeof(struct dm_repl_verify_hash);
		break;
	}
	return dmrepl_rec_encode(buf, BUF_SIZE, &f);
}

static struct dm_repl_rec *hdr(unsigned char *buf)
{
	return (struct dm_repl_rec *)buf;
}

TEST(crc32c_of_123456789_is_the_castagnoli_check_value)
{
	__u32 crc = dmrepl_crc32c(~0U, "123456789", 9);

	ASSERT_EQ(0x1CF96D7CU, crc);
	ASSERT_EQ(0xE3069283U, ~crc);
}

TEST(crc32c_continues_across_pieces)
{
	__u32 crc = dmrepl_crc32c(~0U, "1234", 4);

	ASSERT_EQ(0x1CF96D7CU, dmrepl_crc32c(crc, "56789", 5));
}

/* A 64 KiB payload (past two rounds of the hardware path's 3 x 8 KiB loop) and a bit. */
#define CRC_BUF (65536 + 64)

static __u64 crc_rnd(__u64 *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/*
 * One length at one offset, seeded with ~0 and with a random crc: the
 * hardware path, the portable one and dmrepl_crc32c() agree.
 */
static bool crc_paths_agree(struct __test_metadata *_metadata, const unsigned char *buf,
			    size_t off, size_t len, __u64 *s)
{
	__u32 seeds[2] = { ~0U, (__u32)crc_rnd(s) }, hw, sw;
	unsigned int i;

	for (i = 0; i < 2; i++) {
		sw = dmrepl_crc32c_sw(seeds[i], buf + off, len);
		hw = seeds[i];
		if (!dmrepl_crc32c_hw(&hw, buf + off, len))
			return false;
		if (hw != sw || dmrepl_crc32c(seeds[i], buf + off, len) != sw) {
			TH_LOG("offset %zu, length %zu, seed 0x%08x: hardware 0x%08x, portable 0x%08x",
			       off, len, seeds[i], hw, sw);
			return false;
		}
	}
	return true;
}

TEST(crc32c_hardware_and_portable_paths_give_the_same_crc)
{
	static const size_t edges[] = { 3 * 256, 3 * 8192, 2 * 3 * 8192,
					DM_REPL_REC_HDR_SIZE + 4096, 65536 };
	static unsigned char buf[CRC_BUF];
	__u64 s = 0x9e3779b97f4a7c15ULL;
	size_t off, len, i;
	__u32 crc = ~0U;
	int d;

	if (!dmrepl_crc32c_hw(&crc, "123456789", 9))
		SKIP(return, "no SSE4.2 and PCLMUL: only the portable path runs here");
	ASSERT_EQ(0x1CF96D7CU, crc);
	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)crc_rnd(&s);
	/* Every length up to a few short rounds, at every alignment. */
	for (off = 0; off < 8; off++)
		for (len = 0; len <= 4 * 3 * 256 + 17; len++)
			ASSERT_TRUE(crc_paths_agree(_metadata, buf, off, len, &s));
	/* Around each loop's edge, and lengths drawn at random. */
	for (i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
		for (d = -9; d <= 9; d++)
			for (off = 0; off < 8; off++)
				ASSERT_TRUE(crc_paths_agree(_metadata, buf, off, edges[i] + d, &s));
	for (i = 0; i < 200; i++) {
		off = crc_rnd(&s) % 64;
		ASSERT_TRUE(crc_paths_agree(_metadata, buf, off, crc_rnd(&s) % (CRC_BUF - off), &s));
	}
}

TEST(record_crc_covers_header_with_crc_zero_then_payload)
{
	unsigned char buf[BUF_SIZE] __attribute__((aligned(8)));
	struct dm_repl_rec copy;
	__u32 crc;

	ASSERT_GT(make_rec(buf, DM_REPL_REC_WRITE), 0);
	copy = *hdr(buf);
	copy.crc = 0;
	crc = dmrepl_crc32c(~0U, &copy, sizeof(copy));
	crc = dmrepl_crc32c(crc, buf + DM_REPL_REC_HDR_SIZE, 4096);
	ASSERT_EQ(crc, dmrepl_rec_crc(hdr(buf)));
	ASSERT_EQ(crc, dmrepl_rec_compute_crc(hdr(buf)));
}

TEST(encoded_records_of_every_type_pass_the_check)
{
	unsigned char buf[BUF_SIZE] __attribute__((aligned(8)));
	const char *why = "unset";
	unsigned int type;

	for (type = 1; type <= DM_REPL_REC_TYPE_MAX; type++) {
		long len = make_rec(buf, type);

		ASSERT_GT(len, 0);
		EXPECT_EQ(0, dmrepl_rec_check(buf, (size_t)len, &why))
			TH_LOG("type %u: %s", type, why);
		EXPECT_EQ(NULL, why);
		EXPECT_EQ(type, dmrepl_rec_type(hdr(buf)));
	}
}

TEST(ring_records_are_checked_unsealed_and_must_have_crc_zero)
{
	unsigned char buf[BUF_SIZE] __attribute__((aligned(8)));
	const char *why = NULL;
	long len = make_rec(buf, DM_REPL_REC_WRITE);

	ASSERT_GT(len, 0);
	/* Sealed, as outside the ring: not a ring record. */
	ASSERT_EQ(-EINVAL, dmrepl_rec_check_unsealed(buf, (size_t)len, &why));
	ASSERT_STREQ("a record in the ring must not be sealed (crc 0)", why);
	hdr(buf)->crc = 0;
	ASSERT_EQ(0, dmrepl_rec_check_unsealed(buf, (size_t)len, &why));
	/* Every other rule still holds for an unsealed record. */
	hdr(buf)->magic = 0;
	ASSERT_EQ(-EINVAL, dmrepl_rec_check_unsealed(buf, (size_t)len, &why));
	ASSERT_STREQ("bad magic", why);
	/* And sealing makes it a valid record outside the ring. */
	hdr(buf)->magic = htole32(DM_REPL_REC_MAGIC);
	dmrepl_rec_seal(hdr(buf));
	ASSERT_EQ(0, dmrepl_rec_check(buf, (size_t)len, &why));
}

TEST(header_fields_are_little_endian_on_the_wire)
{
	unsigned char buf[BUF_SIZE] __attribute__((aligned(8)));

	ASSERT_GT(make_rec(buf, DM_REPL_REC_WRITE), 0);
	ASSERT_EQ(0, memcmp(buf, "REPL", 4));
	ASSERT_EQ(1, buf[4]);		/* type, low byte first */
	ASSERT_EQ(0, buf[5]);
	ASSERT_EQ(42, buf[16]);		/* seq */
	ASSERT_EQ(0, buf[17]);
	ASSERT_EQ(0x00, buf[40]);	/* nbytes 4096 = 0x1000 */
	ASSERT_EQ(0x10, buf[41]);
	ASSERT_EQ(3, buf[44]);		/* volume */
	ASSERT_EQ(DM_REPL_REC_VERSION, buf[46]);
	ASSERT_EQ(42ULL, dmrepl_rec_seq(hdr(buf)));
	ASSERT_EQ(7ULL, dmrepl_rec_epoch(hdr(buf)));
	ASSERT_EQ(2048ULL, dmrepl_rec_sector(hdr(buf)));
	ASSERT_EQ(4096U, dmrepl_rec_nbytes(hdr(buf)));
	ASSERT_EQ(3U, dmrepl_rec_volume(hdr(buf)));
	ASSERT_EQ(1700000000000000000ULL, dmrepl_rec_time_ns(hdr(buf)));
	ASSERT_EQ(STREAM_ID, dmrepl_rec_stream(hdr(buf)));
	ASSERT_EQ(HDR + 4096U, dmrepl_rec_len(hdr(buf)));
	ASSERT_EQ(4096U, dmrepl_rec_payload_len(hdr(buf)));
	ASSERT_EQ(buf + DM_REPL_REC_HDR_SIZE, (unsigned char *)dmrepl_rec_payload(hdr(buf)));
}

TEST(encode_rounds_len_up_to_8_with_zero_padding)
{
	unsigned char buf[BUF_SIZE] __attribute__((aligned(8)));
	long len;

	memset(buf, 0xaa, sizeof(buf));
	len = make_rec(buf, DM_REPL_REC_MARKER);
	ASSERT_EQ(HDR + 16, len);	/* header + 10 -> header + 16 */
	ASSERT_EQ(10U, dmrepl_rec_payload_len(hdr(buf)));
	ASSERT_EQ(0, memcmp(buf + HDR, "daily-0300", 10));
	ASSERT_EQ(0, buf[HDR + 10]);
	ASSERT_EQ(0, buf[HDR + 15]);
	ASSERT_EQ(0xaa, buf[HDR + 16]);	/* nothing written past len */
	ASSERT_EQ(HDR + 16U, dmrepl_rec_size(10));
	ASSERT_EQ(HDR + 8U, dmrepl_rec_size(1));
	ASSERT_EQ(HDR + 8U, dmrepl_rec_size(8));
	ASSERT_EQ((size_t)HDR, dmrepl_rec_size(0));
}

TEST(encode_refuses_a_buffer_too_small)
{
	unsigned char buf[BUF_SIZE] __attribute__((aligned(8)));
	struct dmrepl_rec_fields f = {
		.type = DM_REPL_REC_WRITE, .nbytes = 4096,
		.payload = payload_4k, .payload_len = 4096,
	};

	ASSERT_EQ(-EMSGSIZE, dmrepl_rec_encode(buf, HDR + 4096 - 1, &f));
	ASSERT_EQ(HDR + 4096, dmrepl_rec_encode(buf, HDR + 4096, &f));
	f.payload_len = DM_REPL_REC_PAYLOAD_MAX + 512;
	ASSERT_EQ(-EMSGSIZE, dmrepl_rec_encode(buf, sizeof(buf), &f));
}

TEST(type_names_and_letters)
{
	ASSERT_STREQ("WRITE", dmrepl_rec_type_name(DM_REPL_REC_WRITE));
	ASSERT_STREQ("WRITE_ZEROES", dmrepl_rec_type_name(DM_REPL_REC_WRITE_ZEROES));
	ASSERT_EQ(NULL, dmrepl_rec_type_name(0));
	ASSERT_EQ(NULL, dmrepl_rec_type_name(DM_REPL_REC_TYPE_MAX + 1));
	ASSERT_EQ('W', dmrepl_rec_type_letter(DM_REPL_REC_WRITE));
	ASSERT_EQ('D', dmrepl_rec_type_letter(DM_REPL_REC_DISCARD));
	ASSERT_EQ('Z', dmrepl_rec_type_letter(DM_REPL_REC_WRITE_ZEROES));
	ASSERT_EQ('F', dmrepl_rec_type_letter(DM_REPL_REC_FLUSH));
	ASSERT_EQ('M', dmrepl_rec_type_letter(DM_REPL_REC_MARKER));
	ASSERT_EQ('R', dmrepl_rec_type_letter(DM_REPL_REC_RESYNC));
	ASSERT_EQ('S', dmrepl_rec_type_letter(DM_REPL_REC_STREAM));
	ASSERT_EQ('G', dmrepl_rec_type_letter(DM_REPL_REC_GAP));
	ASSERT_STREQ("STREAM", dmrepl_rec_type_name(DM_REPL_REC_STREAM));
	ASSERT_STREQ("GAP", dmrepl_rec_type_name(DM_REPL_REC_GAP));
	ASSERT_EQ(7, DM_REPL_REC_STREAM);
	ASSERT_EQ(8, DM_REPL_REC_GAP);
	ASSERT_EQ('V', dmrepl_rec_type_letter(DM_REPL_REC_VERIFY));
	ASSERT_STREQ("VERIFY", dmrepl_rec_type_name(DM_REPL_REC_VERIFY));
	ASSERT_EQ(9, DM_REPL_REC_VERIFY);
	ASSERT_EQ(DM_REPL_REC_VERIFY, DM_REPL_REC_TYPE_MAX);
	ASSERT_EQ('?', dmrepl_rec_type_letter(0));
	ASSERT_EQ('?', dmrepl_rec_type_letter(DM_REPL_REC_TYPE_MAX + 1));
}

TEST(a_changed_payload_byte_is_a_checksum_mismatch)
{
	unsigned char buf[BUF_SIZE] __attribute__((aligned(8)));
	const char *why;
	long len = make_rec(buf, DM_REPL_REC_WRITE);

	buf[HDR + 1000] ^= 1;
	ASSERT_EQ(-EBADMSG, dmrepl_rec_check(buf, (size_t)len, &why));
	ASSERT_STREQ("checksum mismatch", why);
}

TEST(a_changed_header_field_is_a_checksum_mismatch)
{
	unsigned char buf[BUF_SIZE] __attribute__((aligned(8)));
	const char *why;
	long len = make_rec(buf, DM_REPL_REC_WRITE);

	hdr(buf)->sector = htole64(2056);
	ASSERT_EQ(-EBADMSG, dmrepl_rec_check(buf, (size_t)len, &why));
	ASSERT_STREQ("checksum mismatch", why);
}

TEST(check_accepts_a_null_why)
{
	unsigned char buf[BUF_SIZE] __attribute__((aligned(8)));
	long len = make_rec(buf, DM_REPL_REC_FLUSH);

	ASSERT_EQ(0, dmrepl_rec_check(buf, (size_t)len, NULL));
	ASSERT_EQ(-EINVAL, dmrepl_rec_check(buf, 8, NULL));
}

/*
 * Every rejection rule: a valid record of one type, one field spoiled, the
 * crc recomputed (so the rule itself, not the crc, must catch it).
 */
FIXTURE(rejection) {
	unsigned char buf[BUF_SIZE] __attribute__((aligned(8)));
	long len;
};

FIXTURE_VARIANT(rejection) {
	unsigned int type;
	void (*spoil)(unsigned char *buf, long *len);
	const char *why;
};

FIXTURE_SETUP(rejection)
{
	memset(self->buf, 0, sizeof(self->buf));
	self->len = make_rec(self->buf, variant->type);
	ASSERT_GT(self->len, 0);
}

FIXTURE_TEARDOWN(rejection)
{
}

static void set_len(unsigned char *buf, long *len, __u32 v)
{
	hdr(buf)->len = htole32(v);
	*len = v;
}

static void spoil_avail(unsigned char *buf, long *len)
{
	(void)buf;
	*len = DM_REPL_REC_HDR_SIZE - 1;
}
static void spoil_magic(unsigned char *buf, long *len)
{
	(void)len;
	hdr(buf)->magic = htole32(0x4c504553);
}
static void spoil_version(unsigned char *buf, long *len)
{
	(void)len;
	hdr(buf)->version = htole16(DM_REPL_REC_VERSION + 1);
}
static void spoil_type_zero(unsigned char *buf, long *len)
{
	(void)len;
	hdr(buf)->type = 0;
}
static void spoil_type_max(unsigned char *buf, long *len)
{
	(void)len;
	hdr(buf)->type = htole16(DM_REPL_REC_TYPE_MAX + 1);
}
static void spoil_flags(unsigned char *buf, long *len)
{
	(void)len;
	/* The first bit past the known ones. */
	hdr(buf)->flags = htole16(DM_REPL_RECF_FUA | (DM_REPL_RECF_KNOWN + 1));
}
static void spoil_flags_high(unsigned char *buf, long *len)
{
	(void)len;
	hdr(buf)->flags = htole16(DM_REPL_RECF_VOID | (1U << 15));
}
static void add_void_flag(unsigned char *buf)
{
	hdr(buf)->flags = htole16(dmrepl_rec_flags(hdr(buf)) | DM_REPL_RECF_VOID);
}
/* VOID on the record as it is: the write's payload still there. */
static void spoil_void_with_payload(unsigned char *buf, long *len)
{
	(void)len;
	add_void_flag(buf);
}
/* VOID with len of the header alone but a payload_len left over. */
static void spoil_void_payload_len(unsigned char *buf, long *len)
{
	add_void_flag(buf);
	set_len(buf, len, DM_REPL_REC_HDR_SIZE);
}
/* VOID without payload but len longer than the header. */
static void spoil_void_len(unsigned char *buf, long *len)
{
	add_void_flag(buf);
	hdr(buf)->payload_len = 0;
	memset(buf + DM_REPL_REC_HDR_SIZE, 0, 4096);
	set_len(buf, len, DM_REPL_REC_HDR_SIZE + 8);
}
/* The ZERO form (header alone) of a record that may not have one. */
static void add_zero_form(unsigned char *buf, long *len, __u16 more_flags)
{
	hdr(buf)->flags = htole16(DM_REPL_RECF_ZERO | more_flags);
	hdr(buf)->payload_len = 0;
	set_len(buf, len, DM_REPL_REC_HDR_SIZE);
}
static void spoil_zero_form(unsigned char *buf, long *len)
{
	add_zero_form(buf, len, 0);
}
static void spoil_zero_void(unsigned char *buf, long *len)
{
	add_zero_form(buf, len, DM_REPL_RECF_VOID);
}
/* ZERO with its data still there. */
static void spoil_zero_with_payload(unsigned char *buf, long *len)
{
	(void)len;
	hdr(buf)->flags = htole16(DM_REPL_RECF_ZERO);
}
static void spoil_zero_nbytes(unsigned char *buf, long *len)
{
	add_zero_form(buf, len, 0);
	hdr(buf)->nbytes = htole32(1000);
}
/* Larger than any record it could stand for. */
static void spoil_zero_nbytes_big(unsigned char *buf, long *len)
{
	add_zero_form(buf, len, 0);
	hdr(buf)->nbytes = htole32(DM_REPL_REC_PAYLOAD_MAX + 512);
}
static void spoil_len_short(unsigned char *buf, long *len)
{
	(void)len;
	/* 8 short of a header, the whole header still readable. */
	hdr(buf)->len = htole32(HDR - 8);
}
static void spoil_len_odd(unsigned char *buf, long *len)
{
	set_len(buf, len, HDR + 4096 + 4);
}
static void spoil_avail_short(unsigned char *buf, long *len)
{
	(void)buf;
	*len -= 8;
}
static void spoil_payload_len_big(unsigned char *buf, long *len)
{
	(void)len;
	hdr(buf)->payload_len = htole32(4096 + 8);
}
static void spoil_extra_padding(unsigned char *buf, long *len)
{
	set_len(buf, len, HDR + 4096 + 8);
}
static void spoil_padding(unsigned char *buf, long *len)
{
	(void)len;
	/* marker: header + 10 bytes of label, padding to header + 16 */
	buf[HDR + 14] = 1;
}
static void spoil_nbytes_payload(unsigned char *buf, long *len)
{
	(void)len;
	hdr(buf)->nbytes = htole32(3584);
}
static void spoil_nbytes_zero(unsigned char *buf, long *len)
{
	(void)len;
	hdr(buf)->nbytes = 0;
}
static void spoil_nbytes_unaligned(unsigned char *buf, long *len)
{
	(void)len;
	hdr(buf)->nbytes = htole32(4097);
}
static void spoil_payload_on_empty(unsigned char *buf, long *len)
{
	hdr(buf)->payload_len = htole32(8);
	set_len(buf, len, HDR + 8);
}
static void spoil_nbytes_set(unsigned char *buf, long *len)
{
	(void)len;
	hdr(buf)->nbytes = htole32(512);
}
static void spoil_label_empty(unsigned char *buf, long *len)
{
	memset(buf + HDR, 0, 16);
	hdr(buf)->payload_len = 0;
	set_len(buf, len, HDR);
}
static void spoil_label_long(unsigned char *buf, long *len)
{
	memset(buf + HDR, 'a', DM_REPL_MARKER_LABEL_MAX + 1);
	hdr(buf)->payload_len = htole32(DM_REPL_MARKER_LABEL_MAX + 1);
	set_len(buf, len, (__u32)dmrepl_rec_size(DM_REPL_MARKER_LABEL_MAX + 1));
}
static void spoil_label_newline(unsigned char *buf, long *len)
{
	(void)len;
	buf[HDR + 5] = '\n';
}
static void spoil_label_del(unsigned char *buf, long *len)
{
	(void)len;
	buf[HDR] = 0x7f;
}
static void spoil_label_high(unsigned char *buf, long *len)
{
	(void)len;
	buf[HDR + 9] = 0xc3;
}
/*
 * A STREAM whose payload is not one struct dm_repl_stream_link: cut (what
 * is cut off zeroed, so that it is padding that passes) or longer (the
 * fixture's buffer is zero past the link).
 */
static void set_stream_payload_len(unsigned char *buf, long *len, __u32 plen)
{
	const __u32 link = sizeof(struct dm_repl_stream_link);

	if (plen < link)
		memset(buf + HDR + plen, 0, link - plen);
	hdr(buf)->payload_len = htole32(plen);
	set_len(buf, len, (__u32)dmrepl_rec_size(plen));
}
static void spoil_link_short(unsigned char *buf, long *len)
{
	set_stream_payload_len(buf, len, sizeof(struct dm_repl_stream_link) - 8);
}
static void spoil_link_long(unsigned char *buf, long *len)
{
	set_stream_payload_len(buf, len, sizeof(struct dm_repl_stream_link) + 8);
}
static void spoil_link_unaligned(unsigned char *buf, long *len)
{
	set_stream_payload_len(buf, len, sizeof(struct dm_repl_stream_link) - 1);
}
static void spoil_link_missing(unsigned char *buf, long *len)
{
	set_stream_payload_len(buf, len, 0);
}
static void spoil_volume_set(unsigned char *buf, long *len)
{
	(void)len;
	hdr(buf)->volume = htole16(1);
}
static void spoil_gap_flag(unsigned char *buf, long *len)
{
	(void)len;
	hdr(buf)->flags = htole16(dmrepl_rec_flags(hdr(buf)) | DM_REPL_RECF_GAP);
}
/* The VOID form (header alone) of a record that is not a STREAM, with GAP. */
static void spoil_void_gap_flag(unsigned char *buf, long *len)
{
	memset(buf + HDR, 0, 4096);
	hdr(buf)->payload_len = 0;
	hdr(buf)->flags = htole16(DM_REPL_RECF_VOID | DM_REPL_RECF_GAP);
	set_len(buf, len, HDR);
}
static void spoil_reserved_low(unsigned char *buf, long *len)
{
	(void)len;
	hdr(buf)->reserved = htole64(1);
}
static void spoil_reserved_high(unsigned char *buf, long *len)
{
	(void)len;
	hdr(buf)->reserved = htole64(1ULL << 63);
}

/* A VERIFY whose payload is not one hash (what is cut off zeroed). */
static void spoil_hash_short(unsigned char *buf, long *len)
{
	memset(buf + HDR + 24, 0, 8);
	hdr(buf)->payload_len = htole32(24);
	set_len(buf, len, (__u32)dmrepl_rec_size(24));
}
static void spoil_hash_long(unsigned char *buf, long *len)
{
	hdr(buf)->payload_len = htole32(40);
	set_len(buf, len, (__u32)dmrepl_rec_size(40));
}
static void spoil_nbytes_over_1g(unsigned char *buf, long *len)
{
	(void)len;
	hdr(buf)->nbytes = htole32(DM_REPL_VERIFY_NBYTES_MAX + 512);
}
static void spoil_raced_flag(unsigned char *buf, long *len)
{
	(void)len;
	hdr(buf)->flags = htole16(dmrepl_rec_flags(hdr(buf)) | DM_REPL_RECF_RACED);
}

#define REJECT(name, t, fn, reason)				\
	FIXTURE_VARIANT_ADD(rejection, name) {			\
		.type = DM_REPL_REC_##t, .spoil = fn, .why = reason, \
	}

REJECT(shorter_than_a_header, WRITE, spoil_avail, "shorter than a record header");
REJECT(bad_magic, WRITE, spoil_magic, "bad magic");
REJECT(unknown_version, FLUSH, spoil_version, "unknown record version");
REJECT(type_zero, FLUSH, spoil_type_zero, "unknown record type");
REJECT(type_beyond_max, FLUSH, spoil_type_max, "unknown record type");
REJECT(unknown_flag_bit, WRITE, spoil_flags, "unknown flags");
REJECT(unknown_flag_bit_on_void, FLUSH, spoil_flags_high, "unknown flags");
REJECT(void_write_with_its_payload, WRITE, spoil_void_with_payload, "payload on a VOID record");
REJECT(void_marker_with_its_label, MARKER, spoil_void_with_payload, "payload on a VOID record");
REJECT(void_with_payload_len_but_len_of_the_header, RESYNC, spoil_void_payload_len,
       "payload on a VOID record");
REJECT(void_with_padding_beyond_the_header, DISCARD, spoil_void_len,
       "len has more padding than alignment needs");
REJECT(zero_form_of_a_write, WRITE, spoil_zero_form,
       "ZERO flag on a record that is not a RESYNC with its data");
REJECT(zero_form_of_a_void_resync, RESYNC, spoil_zero_void,
       "ZERO flag on a record that is not a RESYNC with its data");
REJECT(zero_resync_with_its_payload, RESYNC, spoil_zero_with_payload, "payload on a ZERO record");
REJECT(zero_resync_nbytes_not_sector_multiple, RESYNC, spoil_zero_nbytes,
       "nbytes is not a positive multiple of 512");
REJECT(zero_resync_nbytes_over_the_largest_payload, RESYNC, spoil_zero_nbytes_big,
       "nbytes of a ZERO record is over the largest payload");
REJECT(len_below_header, FLUSH, spoil_len_short, "len is shorter than the header");
REJECT(len_not_multiple_of_8, WRITE, spoil_len_odd, "len is not a multiple of 8");
REJECT(len_beyond_available, WRITE, spoil_avail_short, "len runs past the available bytes");
REJECT(payload_len_beyond_len, WRITE, spoil_payload_len_big, "payload_len does not fit in len");
REJECT(len_with_extra_padding, WRITE, spoil_extra_padding,
       "len has more padding than alignment needs");
REJECT(padding_not_zero, MARKER, spoil_padding, "padding is not zero");
REJECT(write_payload_len_differs_from_nbytes, WRITE, spoil_nbytes_payload,
       "payload_len differs from nbytes");
REJECT(write_nbytes_zero, WRITE, spoil_nbytes_zero, "nbytes is not a positive multiple of 512");
REJECT(write_nbytes_not_sector_multiple, WRITE, spoil_nbytes_unaligned,
       "nbytes is not a positive multiple of 512");
REJECT(resync_payload_len_differs_from_nbytes, RESYNC, spoil_nbytes_payload,
       "payload_len differs from nbytes");
REJECT(resync_nbytes_zero, RESYNC, spoil_nbytes_zero, "nbytes is not a positive multiple of 512");
REJECT(discard_with_payload, DISCARD, spoil_payload_on_empty,
       "payload on a record that carries none");
REJECT(discard_nbytes_zero, DISCARD, spoil_nbytes_zero, "nbytes is not a positive multiple of 512");
REJECT(discard_nbytes_not_sector_multiple, DISCARD, spoil_nbytes_unaligned,
       "nbytes is not a positive multiple of 512");
REJECT(write_zeroes_with_payload, WRITE_ZEROES, spoil_payload_on_empty,
       "payload on a record that carries none");
REJECT(write_zeroes_nbytes_zero, WRITE_ZEROES, spoil_nbytes_zero,
       "nbytes is not a positive multiple of 512");
REJECT(write_zeroes_nbytes_not_sector_multiple, WRITE_ZEROES, spoil_nbytes_unaligned,
       "nbytes is not a positive multiple of 512");
REJECT(flush_with_payload, FLUSH, spoil_payload_on_empty, "payload on a record that carries none");
REJECT(flush_with_nbytes, FLUSH, spoil_nbytes_set, "nbytes is not zero on a FLUSH");
REJECT(marker_with_nbytes, MARKER, spoil_nbytes_set, "nbytes is not zero on a MARKER");
REJECT(marker_empty_label, MARKER, spoil_label_empty,
       "marker label is not 1..64 printable characters");
REJECT(marker_label_over_64, MARKER, spoil_label_long,
       "marker label is not 1..64 printable characters");
REJECT(marker_label_with_newline, MARKER, spoil_label_newline,
       "marker label is not 1..64 printable characters");
REJECT(marker_label_with_del, MARKER, spoil_label_del,
       "marker label is not 1..64 printable characters");
REJECT(marker_label_not_ascii, MARKER, spoil_label_high,
       "marker label is not 1..64 printable characters");
REJECT(stream_link_8_bytes_short, STREAM, spoil_link_short, "payload of a STREAM is not its link");
REJECT(stream_link_8_bytes_long, STREAM, spoil_link_long, "payload of a STREAM is not its link");
REJECT(stream_link_1_byte_short, STREAM, spoil_link_unaligned,
       "payload of a STREAM is not its link");
REJECT(stream_without_its_link, STREAM, spoil_link_missing, "payload of a STREAM is not its link");
REJECT(stream_with_nbytes, STREAM, spoil_nbytes_set, "nbytes or volume is not zero on a STREAM");
REJECT(stream_with_volume, STREAM, spoil_volume_set, "nbytes or volume is not zero on a STREAM");
REJECT(gap_with_payload, GAP, spoil_payload_on_empty, "payload on a record that carries none");
REJECT(gap_with_nbytes, GAP, spoil_nbytes_set, "nbytes or volume is not zero on a GAP");
REJECT(gap_with_volume, GAP, spoil_volume_set, "nbytes or volume is not zero on a GAP");
REJECT(gap_flag_on_a_write, WRITE, spoil_gap_flag, "GAP flag on a record that is not a STREAM");
REJECT(gap_flag_on_a_flush, FLUSH, spoil_gap_flag, "GAP flag on a record that is not a STREAM");
REJECT(gap_flag_on_a_marker, MARKER, spoil_gap_flag, "GAP flag on a record that is not a STREAM");
REJECT(gap_flag_on_a_gap_record, GAP, spoil_gap_flag,
       "GAP flag on a record that is not a STREAM");
REJECT(gap_flag_on_a_void_write, WRITE, spoil_void_gap_flag,
       "GAP flag on a record that is not a STREAM");
REJECT(verify_hash_short, VERIFY, spoil_hash_short, "payload of a VERIFY is not its hash");
REJECT(verify_hash_long, VERIFY, spoil_hash_long, "payload of a VERIFY is not its hash");
REJECT(verify_nbytes_zero, VERIFY, spoil_nbytes_zero,
       "nbytes of a VERIFY is not a positive multiple of 512 up to 1 GiB");
REJECT(verify_nbytes_not_sector_multiple, VERIFY, spoil_nbytes_unaligned,
       "nbytes of a VERIFY is not a positive multiple of 512 up to 1 GiB");
REJECT(verify_nbytes_over_1g, VERIFY, spoil_nbytes_over_1g,
       "nbytes of a VERIFY is not a positive multiple of 512 up to 1 GiB");
REJECT(raced_flag_on_a_write, WRITE, spoil_raced_flag,
       "RACED flag on a record that is not a VERIFY");
REJECT(raced_flag_on_a_resync, RESYNC, spoil_raced_flag,
       "RACED flag on a record that is not a VERIFY");
REJECT(reserved_low_bit_on_a_write, WRITE, spoil_reserved_low, "reserved bytes are not zero");
REJECT(reserved_high_bit_on_a_flush, FLUSH, spoil_reserved_high, "reserved bytes are not zero");
REJECT(reserved_on_a_stream, STREAM, spoil_reserved_low, "reserved bytes are not zero");
REJECT(reserved_on_a_gap, GAP, spoil_reserved_high, "reserved bytes are not zero");

TEST_F(rejection, is_refused_with_its_reason)
{
	const char *why = NULL;

	variant->spoil(self->buf, &self->len);
	dmrepl_rec_seal(hdr(self->buf));	/* the rule, not the crc, must catch it */
	ASSERT_EQ(-EINVAL, dmrepl_rec_check(self->buf, (size_t)self->len, &why));
	ASSERT_STREQ(variant->why, why);
}

TEST(void_form_of_each_type_is_its_header_alone_and_passes_the_check)
{
	unsigned char buf[BUF_SIZE] __attribute__((aligned(8)));
	struct dm_repl_rec v, orig;
	const char *why = "unset";
	unsigned int type;

	for (type = 1; type <= DM_REPL_REC_TYPE_MAX; type++) {
		/* The ring's own records never fail (see below). */
		if (type == DM_REPL_REC_STREAM || type == DM_REPL_REC_GAP)
			continue;
		ASSERT_GT(make_rec(buf, type), 0);
		hdr(buf)->crc = 0;		/* as in the ring */
		orig = *hdr(buf);
		dmrepl_rec_make_void(hdr(buf), &v);
		EXPECT_EQ(0, dmrepl_rec_check(&v, sizeof(v), &why))
			TH_LOG("type %u: %s", type, why);
		EXPECT_EQ(DM_REPL_RECF_VOID, dmrepl_rec_flags(&v) & DM_REPL_RECF_VOID);
		EXPECT_EQ((__u32)HDR, dmrepl_rec_len(&v));
		EXPECT_EQ(0U, dmrepl_rec_payload_len(&v));
		EXPECT_EQ(dmrepl_rec_compute_crc(&v), dmrepl_rec_crc(&v));
		/* What was captured stays: type, seq, epoch, volume, extent. */
		EXPECT_EQ(type, dmrepl_rec_type(&v));
		EXPECT_EQ(dmrepl_rec_seq(&orig), dmrepl_rec_seq(&v));
		EXPECT_EQ(dmrepl_rec_epoch(&orig), dmrepl_rec_epoch(&v));
		EXPECT_EQ(dmrepl_rec_volume(&orig), dmrepl_rec_volume(&v));
		EXPECT_EQ(dmrepl_rec_sector(&orig), dmrepl_rec_sector(&v));
		EXPECT_EQ(dmrepl_rec_nbytes(&orig), dmrepl_rec_nbytes(&v));
		EXPECT_EQ(dmrepl_rec_time_ns(&orig), dmrepl_rec_time_ns(&v));
		EXPECT_EQ(0x1CF96D7CU, dmrepl_rec_group_tag(&v));
		EXPECT_EQ(STREAM_ID, dmrepl_rec_stream(&v));
		/* The source is left alone. */
		EXPECT_EQ(0, memcmp(&orig, buf, sizeof(orig)));
	}
}

TEST(void_keeps_the_other_flags_and_may_be_made_in_place)
{
	unsigned char buf[BUF_SIZE] __attribute__((aligned(8)));

	ASSERT_GT(make_rec(buf, DM_REPL_REC_WRITE), 0);
	hdr(buf)->flags = htole16(DM_REPL_RECF_FUA);
	dmrepl_rec_make_void(hdr(buf), hdr(buf));
	ASSERT_EQ(DM_REPL_RECF_FUA | DM_REPL_RECF_VOID, dmrepl_rec_flags(hdr(buf)));
	ASSERT_EQ(0, dmrepl_rec_check(buf, DM_REPL_REC_HDR_SIZE, NULL));
	/* Unsealed, it is a ring record's form like any other. */
	hdr(buf)->crc = 0;
	ASSERT_EQ(0, dmrepl_rec_check_unsealed(buf, DM_REPL_REC_HDR_SIZE, NULL));
}

TEST(a_record_leaves_the_ring_sealed_or_as_its_void_form)
{
	unsigned char buf[BUF_SIZE] __attribute__((aligned(8)));
	unsigned char out[BUF_SIZE] __attribute__((aligned(8)));
	long len = make_rec(buf, DM_REPL_REC_WRITE);
	struct dm_repl_rec *r;

	ASSERT_GT(len, HDR);
	hdr(buf)->crc = 0;		/* as in the ring */
	r = dmrepl_rec_copy_out(hdr(out), hdr(buf), false);
	ASSERT_EQ((void *)out, (void *)r);
	ASSERT_EQ(0, dmrepl_rec_check(out, sizeof(out), NULL));
	/* Only the crc (at 56) differs: the stream (at 64) goes out as it is. */
	ASSERT_EQ(0, memcmp(buf, out, 56));
	ASSERT_EQ(0, memcmp(buf + 60, out + 60, (size_t)len - 60));
	ASSERT_EQ(STREAM_ID, dmrepl_rec_stream(hdr(out)));
	ASSERT_EQ(0U, dmrepl_rec_crc(hdr(buf)));	/* the ring is left alone */
	/* A DISCARDED slot: its header alone, VOID, sealed. */
	memset(out, 0xa5, sizeof(out));
	dmrepl_rec_copy_out(hdr(out), hdr(buf), true);
	ASSERT_EQ(0, dmrepl_rec_check(out, HDR, NULL));
	ASSERT_EQ((__u32)HDR, dmrepl_rec_len(hdr(out)));
	ASSERT_NE(0U, dmrepl_rec_flags(hdr(out)) & DM_REPL_RECF_VOID);
	ASSERT_EQ(STREAM_ID, dmrepl_rec_stream(hdr(out)));
	ASSERT_EQ(0xa5, out[HDR]);			/* nothing past the header */
}

TEST(a_resync_record_of_zeros_leaves_the_ring_as_its_zero_form)
{
	unsigned char buf[BUF_SIZE] __attribute__((aligned(8)));
	unsigned char out[BUF_SIZE] __attribute__((aligned(8)));
	long len = make_rec(buf, DM_REPL_REC_RESYNC);
	const char *why = "unset";

	memset(buf + HDR, 0, 4096);
	hdr(buf)->crc = 0;		/* as in the ring */
	ASSERT_TRUE(dmrepl_rec_zero_region(hdr(buf)));
	memset(out, 0xa5, sizeof(out));
	dmrepl_rec_copy_out(hdr(out), hdr(buf), false);
	ASSERT_EQ(0, dmrepl_rec_check(out, HDR, &why));
	ASSERT_EQ((__u32)HDR, dmrepl_rec_len(hdr(out)));
	ASSERT_EQ(0U, dmrepl_rec_payload_len(hdr(out)));
	ASSERT_EQ(4096U, dmrepl_rec_nbytes(hdr(out)));
	ASSERT_EQ(2048U, dmrepl_rec_sector(hdr(out)));
	ASSERT_EQ(DM_REPL_RECF_ZERO, dmrepl_rec_flags(hdr(out)));
	ASSERT_EQ(0xa5, out[HDR]);			/* nothing past the header */
	/* The ring never holds it. */
	hdr(out)->crc = 0;
	ASSERT_EQ(-EINVAL, dmrepl_rec_check_unsealed(out, HDR, &why));
	ASSERT_STREQ("a record in the ring is never in its ZERO form", why);
	/* One byte of data, at the end, and the data goes as it is. */
	buf[len - 1] = 1;
	ASSERT_FALSE(dmrepl_rec_zero_region(hdr(buf)));
	dmrepl_rec_copy_out(hdr(out), hdr(buf), false);
	ASSERT_EQ((__u32)len, dmrepl_rec_len(hdr(out)));
	ASSERT_EQ(0U, dmrepl_rec_flags(hdr(out)));
	/* Nor a WRITE of zeros: only a resync's region. */
	len = make_rec(buf, DM_REPL_REC_WRITE);
	memset(buf + HDR, 0, 4096);
	ASSERT_FALSE(dmrepl_rec_zero_region(hdr(buf)));
}

TEST(void_header_with_nbytes_that_no_type_rule_allows_is_accepted)
{
	unsigned char buf[BUF_SIZE] __attribute__((aligned(8)));
	struct dmrepl_rec_fields f = {
		.type = DM_REPL_REC_FLUSH, .flags = DM_REPL_RECF_VOID, .nbytes = 4097,
	};
	const char *why = NULL;

	/* A FLUSH with nbytes, a WRITE without payload: only VOID allows them. */
	ASSERT_EQ(HDR, dmrepl_rec_encode(buf, sizeof(buf), &f));
	ASSERT_EQ(0, dmrepl_rec_check(buf, HDR, &why)) TH_LOG("%s", why);
	f.type = DM_REPL_REC_WRITE;
	f.nbytes = 4096;
	ASSERT_EQ(HDR, dmrepl_rec_encode(buf, sizeof(buf), &f));
	ASSERT_EQ(0, dmrepl_rec_check(buf, HDR, &why)) TH_LOG("%s", why);
	f.flags = 0;
	ASSERT_EQ(HDR, dmrepl_rec_encode(buf, sizeof(buf), &f));
	ASSERT_EQ(-EINVAL, dmrepl_rec_check(buf, HDR, &why));
	ASSERT_STREQ("payload_len differs from nbytes", why);
}

TEST(check_header_refuses_a_void_record_with_a_payload)
{
	unsigned char buf[BUF_SIZE] __attribute__((aligned(8)));
	const char *why;

	ASSERT_GT(make_rec(buf, DM_REPL_REC_WRITE), 0);
	add_void_flag(buf);
	ASSERT_EQ(-EINVAL, dmrepl_rec_check_header(hdr(buf), DMREPL_REC_MAX_LEN, &why));
	ASSERT_STREQ("payload on a VOID record", why);
}

TEST(marker_label_of_exactly_64_printable_characters_is_accepted)
{
	unsigned char buf[BUF_SIZE] __attribute__((aligned(8)));
	char label[DM_REPL_MARKER_LABEL_MAX];
	struct dmrepl_rec_fields f = {
		.type = DM_REPL_REC_MARKER, .payload = label,
		.payload_len = sizeof(label),
	};
	long len;

	memset(label, '~', sizeof(label));
	label[0] = ' ';
	len = dmrepl_rec_encode(buf, sizeof(buf), &f);
	ASSERT_EQ(HDR + DM_REPL_MARKER_LABEL_MAX, len);
	ASSERT_EQ(0, dmrepl_rec_check(buf, (size_t)len, NULL));
}

TEST(largest_write_is_accepted_and_one_sector_more_is_not)
{
	static unsigned char buf[DMREPL_REC_MAX_LEN + 512] __attribute__((aligned(8)));
	static unsigned char data[DM_REPL_REC_PAYLOAD_MAX + 512];
	struct dmrepl_rec_fields f = {
		.type = DM_REPL_REC_WRITE, .payload = data,
		.payload_len = DM_REPL_REC_PAYLOAD_MAX, .nbytes = DM_REPL_REC_PAYLOAD_MAX,
	};
	const char *why;
	long len;

	len = dmrepl_rec_encode(buf, sizeof(buf), &f);
	ASSERT_EQ((long)DMREPL_REC_MAX_LEN, len);
	ASSERT_EQ(0, dmrepl_rec_check(buf, (size_t)len, NULL));

	/* Hand-build one sector more: encode refuses it, check must too. */
	hdr(buf)->payload_len = htole32(DM_REPL_REC_PAYLOAD_MAX + 512);
	hdr(buf)->nbytes = htole32(DM_REPL_REC_PAYLOAD_MAX + 512);
	hdr(buf)->len = htole32(DMREPL_REC_MAX_LEN + 512);
	dmrepl_rec_seal(hdr(buf));
	ASSERT_EQ(-EINVAL, dmrepl_rec_check(buf, sizeof(buf), &why));
	ASSERT_STREQ("payload_len does not fit in len", why);
}

TEST(check_header_judges_len_before_the_payload_is_read)
{
	unsigned char buf[BUF_SIZE] __attribute__((aligned(8)));
	const char *why;

	ASSERT_GT(make_rec(buf, DM_REPL_REC_WRITE), 0);
	ASSERT_EQ(0, dmrepl_rec_check_header(hdr(buf), DMREPL_REC_MAX_LEN, &why));
	ASSERT_EQ(NULL, why);
	hdr(buf)->magic = 0;
	ASSERT_EQ(-EINVAL, dmrepl_rec_check_header(hdr(buf), DMREPL_REC_MAX_LEN, &why));
	ASSERT_STREQ("bad magic", why);
}

TEST(group_tag_is_crc32c_of_the_name_seeded_not_inverted)
{
	/* The Castagnoli check value: the kernel's crc32c(~0, "123456789", 9). */
	ASSERT_EQ(0x1CF96D7CU, dmrepl_group_tag("123456789"));
	ASSERT_EQ(dmrepl_crc32c(~0U, "vm1", 3), dmrepl_group_tag("vm1"));
	ASSERT_NE(dmrepl_group_tag("vm1"), dmrepl_group_tag("vm2"));
	/* No NUL: the empty name leaves the seed alone. */
	ASSERT_EQ(~0U, dmrepl_group_tag(""));
}

TEST(group_tag_is_stored_little_endian_at_60_and_covered_by_the_crc)
{
	unsigned char buf[BUF_SIZE] __attribute__((aligned(8)));
	const char *why;
	long len = make_rec(buf, DM_REPL_REC_WRITE);

	ASSERT_GT(len, 0);
	ASSERT_EQ(0x7C, buf[60]);
	ASSERT_EQ(0x6D, buf[61]);
	ASSERT_EQ(0xF9, buf[62]);
	ASSERT_EQ(0x1C, buf[63]);
	ASSERT_EQ(0x1CF96D7CU, dmrepl_rec_group_tag(hdr(buf)));
	/* Any tag is valid (the field is no longer reserved)... */
	ASSERT_EQ(0, dmrepl_rec_check(buf, (size_t)len, &why));
	/* ...but a changed one no longer matches the crc. */
	hdr(buf)->group_tag = htole32(dmrepl_group_tag("other"));
	ASSERT_EQ(-EBADMSG, dmrepl_rec_check(buf, (size_t)len, &why));
	dmrepl_rec_seal(hdr(buf));
	ASSERT_EQ(0, dmrepl_rec_check(buf, (size_t)len, &why));
}

/* ---- the header's layout, streams and the reserved bytes ------------- */

TEST(header_is_80_bytes_with_stream_at_64_and_reserved_at_72)
{
	ASSERT_EQ(80, DM_REPL_REC_HDR_SIZE);
	ASSERT_EQ((size_t)DM_REPL_REC_HDR_SIZE, sizeof(struct dm_repl_rec));
	ASSERT_EQ(0, DM_REPL_REC_HDR_SIZE % DM_REPL_REC_ALIGN);
	ASSERT_EQ(56U, offsetof(struct dm_repl_rec, crc));
	ASSERT_EQ(60U, offsetof(struct dm_repl_rec, group_tag));
	ASSERT_EQ(64U, offsetof(struct dm_repl_rec, stream));
	ASSERT_EQ(72U, offsetof(struct dm_repl_rec, reserved));
	ASSERT_EQ(2, DM_REPL_REC_VERSION);
	ASSERT_EQ(4, DM_REPL_ABI_VERSION);
	ASSERT_EQ(32U, sizeof(struct dm_repl_stream_link));
	ASSERT_EQ(DM_REPL_STREAM_HISTORY,
		  (int)(sizeof(struct dm_repl_stream_link) / sizeof(__le64)));
	/* GAP is a known flag, one of its own. */
	ASSERT_EQ(1U << 3, DM_REPL_RECF_GAP);
	ASSERT_NE(0U, DM_REPL_RECF_KNOWN & DM_REPL_RECF_GAP);
	ASSERT_EQ(0U, (DM_REPL_RECF_FUA | DM_REPL_RECF_RESYNC_END | DM_REPL_RECF_VOID) &
		      DM_REPL_RECF_GAP);
	ASSERT_EQ(1U << 4, DM_REPL_RECF_ZERO);
	ASSERT_NE(0U, DM_REPL_RECF_KNOWN & DM_REPL_RECF_ZERO);
}

TEST(stream_record_with_its_link_passes_the_check)
{
	unsigned char buf[BUF_SIZE] __attribute__((aligned(8)));
	const struct dm_repl_stream_link *link;
	const char *why = "unset";
	long len;

	memset(buf, 0xaa, sizeof(buf));
	len = make_rec(buf, DM_REPL_REC_STREAM);
	ASSERT_EQ((long)(HDR + sizeof(struct dm_repl_stream_link)), len);
	ASSERT_EQ(0, dmrepl_rec_check(buf, (size_t)len, &why)) TH_LOG("%s", why);
	ASSERT_EQ(NULL, why);
	ASSERT_EQ((unsigned int)DM_REPL_REC_STREAM, dmrepl_rec_type(hdr(buf)));
	ASSERT_EQ(STREAM_ID, dmrepl_rec_stream(hdr(buf)));
	ASSERT_EQ(0U, dmrepl_rec_nbytes(hdr(buf)));
	ASSERT_EQ(0U, dmrepl_rec_volume(hdr(buf)));
	ASSERT_EQ((__u32)sizeof(*link), dmrepl_rec_payload_len(hdr(buf)));
	link = dmrepl_rec_payload(hdr(buf));
	ASSERT_EQ(STREAM_PREV0, le64toh(link->prev[0]));
	ASSERT_EQ(STREAM_PREV1, le64toh(link->prev[1]));
	ASSERT_EQ(0ULL, le64toh(link->prev[2]));
	ASSERT_EQ(0ULL, le64toh(link->prev[3]));
	/* With GAP: records of the stream before may have been lost. */
	hdr(buf)->flags = htole16(DM_REPL_RECF_GAP);
	dmrepl_rec_seal(hdr(buf));
	ASSERT_EQ(0, dmrepl_rec_check(buf, (size_t)len, &why)) TH_LOG("%s", why);
	/* As the ring holds it: unsealed. */
	hdr(buf)->crc = 0;
	ASSERT_EQ(0, dmrepl_rec_check_unsealed(buf, (size_t)len, &why)) TH_LOG("%s", why);
	/* The first stream of a group: a link naming none. */
	memset(buf + HDR, 0, sizeof(*link));
	dmrepl_rec_seal(hdr(buf));
	ASSERT_EQ(0, dmrepl_rec_check(buf, (size_t)len, &why)) TH_LOG("%s", why);
}

TEST(gap_record_is_its_header_alone_and_passes_the_check)
{
	unsigned char buf[BUF_SIZE] __attribute__((aligned(8)));
	const char *why = "unset";
	long len;

	memset(buf, 0xaa, sizeof(buf));
	len = make_rec(buf, DM_REPL_REC_GAP);
	ASSERT_EQ(HDR, len);
	ASSERT_EQ(0, dmrepl_rec_check(buf, (size_t)len, &why)) TH_LOG("%s", why);
	ASSERT_EQ((unsigned int)DM_REPL_REC_GAP, dmrepl_rec_type(hdr(buf)));
	ASSERT_EQ(0U, dmrepl_rec_payload_len(hdr(buf)));
	ASSERT_EQ(STREAM_ID, dmrepl_rec_stream(hdr(buf)));
	ASSERT_EQ(0xaa, buf[HDR]);		/* nothing written past the header */
	hdr(buf)->crc = 0;
	ASSERT_EQ(0, dmrepl_rec_check_unsealed(buf, (size_t)len, &why)) TH_LOG("%s", why);
}

/*
 * The ring's own records (STREAM, GAP) are committed whole and never fail:
 * a VOID form of one is refused (a STREAM record without its link would
 * leave a replica unable to place the stream).
 */
TEST(void_form_of_a_stream_or_gap_record_is_refused)
{
	unsigned char buf[BUF_SIZE] __attribute__((aligned(8)));
	static const unsigned int types[] = { DM_REPL_REC_STREAM, DM_REPL_REC_GAP };
	struct dm_repl_rec v;
	const char *why = "unset";
	size_t i;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		ASSERT_GT(make_rec(buf, types[i]), 0);
		hdr(buf)->crc = 0;
		dmrepl_rec_make_void(hdr(buf), &v);
		EXPECT_EQ(-EINVAL, dmrepl_rec_check(&v, sizeof(v), &why));
		EXPECT_STREQ("VOID flag on a STREAM or GAP record (they never fail)", why);
	}
}

TEST(verify_record_plain_and_raced_passes_the_check)
{
	unsigned char buf[BUF_SIZE] __attribute__((aligned(8)));
	const char *why = "unset";
	long len = make_rec(buf, DM_REPL_REC_VERIFY);

	ASSERT_EQ(HDR + DM_REPL_VERIFY_HASH_SIZE, len);
	ASSERT_EQ(0, dmrepl_rec_check(buf, (size_t)len, &why)) TH_LOG("%s", why);
	hdr(buf)->flags = htole16(DM_REPL_RECF_RACED);
	dmrepl_rec_seal(hdr(buf));
	ASSERT_EQ(0, dmrepl_rec_check(buf, (size_t)len, &why)) TH_LOG("%s", why);
	hdr(buf)->nbytes = htole32(DM_REPL_VERIFY_NBYTES_MAX);
	dmrepl_rec_seal(hdr(buf));
	ASSERT_EQ(0, dmrepl_rec_check(buf, (size_t)len, &why)) TH_LOG("%s", why);
}

TEST(stream_round_trips_through_encode_little_endian_at_64)
{
	unsigned char buf[BUF_SIZE] __attribute__((aligned(8)));
	static const __u64 streams[] = {
		1, 0x0123456789abcdefULL, 0x8000000000000000ULL, ~0ULL,
	};
	unsigned int type;
	size_t i;

	for (type = 1; type <= DM_REPL_REC_TYPE_MAX; type++) {
		long len = make_rec(buf, type);

		ASSERT_GT(len, 0);
		ASSERT_EQ(STREAM_ID, dmrepl_rec_stream(hdr(buf))) TH_LOG("type %u", type);
	}
	for (i = 0; i < sizeof(streams) / sizeof(streams[0]); i++) {
		struct dmrepl_rec_fields f = {
			.type = DM_REPL_REC_FLUSH, .seq = 9, .stream = streams[i],
		};
		unsigned int b;

		memset(buf, 0xaa, sizeof(buf));
		ASSERT_EQ(HDR, dmrepl_rec_encode(buf, sizeof(buf), &f));
		ASSERT_EQ(streams[i], dmrepl_rec_stream(hdr(buf)));
		for (b = 0; b < 8; b++)
			ASSERT_EQ((unsigned char)(streams[i] >> (8 * b)), buf[64 + b]);
		/* The reserved bytes are zeroed, whatever the buffer held. */
		for (b = 72; b < HDR; b++)
			ASSERT_EQ(0, buf[b]) TH_LOG("byte %u", b);
		ASSERT_EQ(0, dmrepl_rec_check(buf, HDR, NULL));
	}
}

TEST(a_changed_stream_is_a_checksum_mismatch)
{
	unsigned char buf[BUF_SIZE] __attribute__((aligned(8)));
	unsigned int type, bit;
	const char *why;

	for (type = 1; type <= DM_REPL_REC_TYPE_MAX; type++) {
		long len = make_rec(buf, type);

		ASSERT_GT(len, 0);
		/* Every bit of the stream is covered by the crc. */
		for (bit = 0; bit < 64; bit++) {
			hdr(buf)->stream = htole64(STREAM_ID ^ (1ULL << bit));
			why = NULL;
			ASSERT_EQ(-EBADMSG, dmrepl_rec_check(buf, (size_t)len, &why))
				TH_LOG("type %u bit %u", type, bit);
			ASSERT_STREQ("checksum mismatch", why);
		}
		hdr(buf)->stream = htole64(STREAM_ID);
		ASSERT_EQ(0, dmrepl_rec_check(buf, (size_t)len, NULL));
		/* Sealed again, another stream is a valid record of that stream. */
		hdr(buf)->stream = htole64(STREAM_ID + 1);
		dmrepl_rec_seal(hdr(buf));
		ASSERT_EQ(0, dmrepl_rec_check(buf, (size_t)len, NULL));
		ASSERT_EQ(STREAM_ID + 1, dmrepl_rec_stream(hdr(buf)));
	}
}

TEST(record_crc_covers_the_stream_as_part_of_the_header)
{
	unsigned char buf[BUF_SIZE] __attribute__((aligned(8)));
	unsigned char raw[HDR];
	__u32 crc;

	ASSERT_GT(make_rec(buf, DM_REPL_REC_STREAM), 0);
	/* The crc's input: all 80 header bytes, crc zeroed, then the link. */
	memcpy(raw, buf, HDR);
	memset(raw + 56, 0, 4);
	crc = dmrepl_crc32c(~0U, raw, HDR);
	crc = dmrepl_crc32c(crc, buf + HDR, sizeof(struct dm_repl_stream_link));
	ASSERT_EQ(crc, dmrepl_rec_crc(hdr(buf)));
}

TEST(every_reserved_byte_of_the_header_is_checked)
{
	unsigned char buf[BUF_SIZE] __attribute__((aligned(8)));
	unsigned int off;
	const char *why;
	long len = make_rec(buf, DM_REPL_REC_WRITE);

	ASSERT_GT(len, 0);
	for (off = offsetof(struct dm_repl_rec, reserved); off < HDR; off++) {
		buf[off] = 0x01;
		dmrepl_rec_seal(hdr(buf));	/* the rule, not the crc, must catch it */
		why = NULL;
		ASSERT_EQ(-EINVAL, dmrepl_rec_check(buf, (size_t)len, &why)) TH_LOG("byte %u", off);
		ASSERT_STREQ("reserved bytes are not zero", why);
		ASSERT_EQ(-EINVAL, dmrepl_rec_check_header(hdr(buf), (size_t)len, &why));
		ASSERT_STREQ("reserved bytes are not zero", why);
		/* In the ring too. */
		hdr(buf)->crc = 0;
		ASSERT_EQ(-EINVAL, dmrepl_rec_check_unsealed(buf, (size_t)len, &why));
		ASSERT_STREQ("reserved bytes are not zero", why);
		buf[off] = 0;
	}
	dmrepl_rec_seal(hdr(buf));
	ASSERT_EQ(0, dmrepl_rec_check(buf, (size_t)len, NULL));
}

TEST(gap_flag_is_refused_on_every_type_but_stream)
{
	unsigned char buf[BUF_SIZE] __attribute__((aligned(8)));
	unsigned int type;
	const char *why;

	for (type = 1; type <= DM_REPL_REC_TYPE_MAX; type++) {
		long len = make_rec(buf, type);

		ASSERT_GT(len, 0);
		hdr(buf)->flags = htole16(DM_REPL_RECF_GAP);
		dmrepl_rec_seal(hdr(buf));
		why = NULL;
		if (type == DM_REPL_REC_STREAM) {
			ASSERT_EQ(0, dmrepl_rec_check(buf, (size_t)len, &why)) TH_LOG("%s", why);
			continue;
		}
		ASSERT_EQ(-EINVAL, dmrepl_rec_check(buf, (size_t)len, &why)) TH_LOG("type %u", type);
		ASSERT_STREQ("GAP flag on a record that is not a STREAM", why);
		ASSERT_EQ(-EINVAL, dmrepl_rec_check_header(hdr(buf), (size_t)len, &why));
		ASSERT_STREQ("GAP flag on a record that is not a STREAM", why);
	}
}

TEST_HARNESS_MAIN
