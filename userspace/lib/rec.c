// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Change records: checksum, validation, encoding.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "dmrepl.h"

#define SECTOR_SIZE 512U

static const struct {
	const char *name;
	char letter;
} rec_types[DM_REPL_REC_TYPE_MAX + 1] = {
	[DM_REPL_REC_WRITE]	   = { "WRITE", 'W' },
	[DM_REPL_REC_DISCARD]	   = { "DISCARD", 'D' },
	[DM_REPL_REC_WRITE_ZEROES] = { "WRITE_ZEROES", 'Z' },
	[DM_REPL_REC_FLUSH]	   = { "FLUSH", 'F' },
	[DM_REPL_REC_MARKER]	   = { "MARKER", 'M' },
	[DM_REPL_REC_RESYNC]	   = { "RESYNC", 'R' },
	[DM_REPL_REC_STREAM]	   = { "STREAM", 'S' },
	[DM_REPL_REC_GAP]	   = { "GAP", 'G' },
	[DM_REPL_REC_VERIFY]	   = { "VERIFY", 'V' },
};

const char *dmrepl_rec_type_name(unsigned int type)
{
	return type <= DM_REPL_REC_TYPE_MAX ? rec_types[type].name : NULL;
}

char dmrepl_rec_type_letter(unsigned int type)
{
	if (type == 0 || type > DM_REPL_REC_TYPE_MAX)
		return '?';
	return rec_types[type].letter;
}

__u32 dmrepl_rec_compute_crc(const struct dm_repl_rec *r)
{
	struct dm_repl_rec hdr = *r;
	__u32 crc;

	hdr.crc = 0;
	crc = dmrepl_crc32c(~0U, &hdr, sizeof(hdr));
	return dmrepl_crc32c(crc, dmrepl_rec_payload(r), dmrepl_rec_payload_len(r));
}

void dmrepl_rec_seal(struct dm_repl_rec *r)
{
	r->crc = htole32(dmrepl_rec_compute_crc(r));
}

static bool all_zero(const unsigned char *p, size_t n)
{
	while (n--)
		if (*p++)
			return false;
	return true;
}

static bool sectors_ok(__u32 nbytes)
{
	return nbytes > 0 && nbytes % SECTOR_SIZE == 0;
}

static bool label_ok(const unsigned char *p, size_t n)
{
	if (n < 1 || n > DM_REPL_MARKER_LABEL_MAX)
		return false;
	while (n--) {
		if (*p < 0x20 || *p > 0x7e)
			return false;
		p++;
	}
	return true;
}

/*
 * Rules that depend on the type. The payload is known to be readable. A VOID
 * record carries nothing to apply: its header keeps the failed record's
 * fields, but none of their payload rules hold any more.
 */
static const char *check_type_rules(const struct dm_repl_rec *r)
{
	__u32 plen = dmrepl_rec_payload_len(r);
	__u32 nbytes = dmrepl_rec_nbytes(r);

	if (dmrepl_rec_flags(r) & DM_REPL_RECF_VOID)
		return NULL;
	switch (dmrepl_rec_type(r)) {
	case DM_REPL_REC_RESYNC:
		if (dmrepl_rec_flags(r) & DM_REPL_RECF_ZERO) {
			if (plen)
				return "payload on a ZERO record";
			/* It stands for a record whose payload it had. */
			if (nbytes > DM_REPL_REC_PAYLOAD_MAX)
				return "nbytes of a ZERO record is over the largest payload";
			return sectors_ok(nbytes) ? NULL :
			       "nbytes is not a positive multiple of 512";
		}
		/* The end of a resync may be a record of its own, with no data. */
		if ((dmrepl_rec_flags(r) & DM_REPL_RECF_RESYNC_END) && !nbytes)
			return plen == sizeof(struct dm_repl_resync_end) ? NULL :
			       "the end of a resync without its volumes";
		/* fall through */
	case DM_REPL_REC_WRITE:
		if (!sectors_ok(nbytes))
			return "nbytes is not a positive multiple of 512";
		if (plen != nbytes)
			return "payload_len differs from nbytes";
		return NULL;
	case DM_REPL_REC_DISCARD:
	case DM_REPL_REC_WRITE_ZEROES:
		if (plen)
			return "payload on a record that carries none";
		if (!sectors_ok(nbytes))
			return "nbytes is not a positive multiple of 512";
		return NULL;
	case DM_REPL_REC_FLUSH:
		if (plen)
			return "payload on a record that carries none";
		if (nbytes)
			return "nbytes is not zero on a FLUSH";
		return NULL;
	case DM_REPL_REC_MARKER:
		if (nbytes)
			return "nbytes is not zero on a MARKER";
		if (!label_ok(dmrepl_rec_payload(r), plen))
			return "marker label is not 1..64 printable characters";
		return NULL;
	case DM_REPL_REC_STREAM:
		if (plen != sizeof(struct dm_repl_stream_link))
			return "payload of a STREAM is not its link";
		if (nbytes || dmrepl_rec_volume(r))
			return "nbytes or volume is not zero on a STREAM";
		return NULL;
	case DM_REPL_REC_GAP:
		if (plen)
			return "payload on a record that carries none";
		if (nbytes || dmrepl_rec_volume(r))
			return "nbytes or volume is not zero on a GAP";
		return NULL;
	case DM_REPL_REC_VERIFY:
		if (plen != sizeof(struct dm_repl_verify_hash))
			return "payload of a VERIFY is not its hash";
		if (!sectors_ok(nbytes) || nbytes > DM_REPL_VERIFY_NBYTES_MAX)
			return "nbytes of a VERIFY is not a positive multiple of 512 up to 1 GiB";
		return NULL;
	}
	return "unknown record type";
}

/* Rules of the header alone; len must not exceed avail. */
static const char *header_problem(const struct dm_repl_rec *r, size_t avail)
{
	__u32 len = dmrepl_rec_len(r);
	__u32 plen = dmrepl_rec_payload_len(r);

	if (dmrepl_rec_magic(r) != DM_REPL_REC_MAGIC)
		return "bad magic";
	if (dmrepl_rec_version(r) != DM_REPL_REC_VERSION)
		return "unknown record version";
	if (!dmrepl_rec_type_name(dmrepl_rec_type(r)))
		return "unknown record type";
	if (dmrepl_rec_flags(r) & ~DM_REPL_RECF_KNOWN)
		return "unknown flags";
	if ((dmrepl_rec_flags(r) & DM_REPL_RECF_GAP) &&
	    dmrepl_rec_type(r) != DM_REPL_REC_STREAM)
		return "GAP flag on a record that is not a STREAM";
	if ((dmrepl_rec_flags(r) & DM_REPL_RECF_RACED) &&
	    dmrepl_rec_type(r) != DM_REPL_REC_VERIFY)
		return "RACED flag on a record that is not a VERIFY";
	if ((dmrepl_rec_flags(r) & DM_REPL_RECF_VOID) &&
	    (dmrepl_rec_type(r) == DM_REPL_REC_STREAM || dmrepl_rec_type(r) == DM_REPL_REC_GAP))
		return "VOID flag on a STREAM or GAP record (they never fail)";
	if ((dmrepl_rec_flags(r) & DM_REPL_RECF_ZERO) &&
	    (dmrepl_rec_type(r) != DM_REPL_REC_RESYNC ||
	     (dmrepl_rec_flags(r) & DM_REPL_RECF_VOID)))
		return "ZERO flag on a record that is not a RESYNC with its data";
	if (r->reserved)
		return "reserved bytes are not zero";
	if ((dmrepl_rec_flags(r) & DM_REPL_RECF_VOID) && plen)
		return "payload on a VOID record";
	if (len < DM_REPL_REC_HDR_SIZE)
		return "len is shorter than the header";
	if (len % DM_REPL_REC_ALIGN)
		return "len is not a multiple of 8";
	if (len > avail)
		return "len runs past the available bytes";
	if (plen > len - DM_REPL_REC_HDR_SIZE || plen > DM_REPL_REC_PAYLOAD_MAX)
		return "payload_len does not fit in len";
	if (len != dmrepl_rec_size(plen))
		return "len has more padding than alignment needs";
	return NULL;
}

int dmrepl_rec_check_header(const struct dm_repl_rec *r, size_t avail,
			    const char **why)
{
	const char *bad = header_problem(r, avail);

	if (why)
		*why = bad;
	return bad ? -EINVAL : 0;
}

static int rec_check(const void *buf, size_t avail, bool sealed,
		     const char **why)
{
	const struct dm_repl_rec *r = buf;
	const char *bad;
	__u32 plen;

	if (why)
		*why = NULL;
	if (avail < DM_REPL_REC_HDR_SIZE) {
		bad = "shorter than a record header";
		goto invalid;
	}
	bad = header_problem(r, avail);
	if (bad)
		goto invalid;
	plen = dmrepl_rec_payload_len(r);
	if (!all_zero((const unsigned char *)buf + DM_REPL_REC_HDR_SIZE + plen,
		      dmrepl_rec_len(r) - DM_REPL_REC_HDR_SIZE - plen)) {
		bad = "padding is not zero";
		goto invalid;
	}
	bad = check_type_rules(r);
	if (bad)
		goto invalid;
	if (!sealed) {
		if (dmrepl_rec_flags(r) & DM_REPL_RECF_ZERO) {
			bad = "a record in the ring is never in its ZERO form";
			goto invalid;
		}
		if (dmrepl_rec_crc(r)) {
			bad = "a record in the ring must not be sealed (crc 0)";
			goto invalid;
		}
		return 0;
	}
	if (dmrepl_rec_compute_crc(r) != dmrepl_rec_crc(r)) {
		if (why)
			*why = "checksum mismatch";
		return -EBADMSG;
	}
	return 0;

invalid:
	if (why)
		*why = bad;
	return -EINVAL;
}

int dmrepl_rec_check(const void *buf, size_t avail, const char **why)
{
	return rec_check(buf, avail, true, why);
}

int dmrepl_rec_check_unsealed(const void *buf, size_t avail, const char **why)
{
	return rec_check(buf, avail, false, why);
}

void dmrepl_rec_make_void(const struct dm_repl_rec *src, struct dm_repl_rec *dst)
{
	*dst = *src;
	dst->flags = htole16(dmrepl_rec_flags(dst) | DM_REPL_RECF_VOID);
	dst->len = htole32(DM_REPL_REC_HDR_SIZE);
	dst->payload_len = 0;
	dmrepl_rec_seal(dst);
}

/* The data of a RESYNC record (not its end alone) that reads as zeros. */
bool dmrepl_rec_zero_region(const struct dm_repl_rec *r)
{
	const unsigned char *p = dmrepl_rec_payload(r);
	__u32 plen = dmrepl_rec_payload_len(r);

	if (dmrepl_rec_type(r) != DM_REPL_REC_RESYNC || !dmrepl_rec_nbytes(r) ||
	    plen < 16 || (dmrepl_rec_flags(r) & DM_REPL_RECF_VOID))
		return false;
	/* 16 zero bytes, then each 16 equal to the 16 before them. */
	return all_zero(p, 16) && !memcmp(p, p + 16, plen - 16);
}

static void make_zero(const struct dm_repl_rec *src, struct dm_repl_rec *dst)
{
	*dst = *src;
	dst->flags = htole16(dmrepl_rec_flags(dst) | DM_REPL_RECF_ZERO);
	dst->len = htole32(DM_REPL_REC_HDR_SIZE);
	dst->payload_len = 0;
	dmrepl_rec_seal(dst);
}

size_t dmrepl_rec_out_len(const struct dm_repl_rec *src, bool discarded, bool *zero)
{
	*zero = !discarded && dmrepl_rec_zero_region(src);
	return discarded || *zero ? DM_REPL_REC_HDR_SIZE : dmrepl_rec_len(src);
}

void dmrepl_rec_copy_as(struct dm_repl_rec *dst, const struct dm_repl_rec *src,
			bool discarded, bool zero, size_t len)
{
	if (discarded) {
		dmrepl_rec_make_void(src, dst);
	} else if (zero) {
		make_zero(src, dst);
	} else {
		memcpy(dst, src, len);
		dmrepl_rec_seal(dst);
	}
}

struct dm_repl_rec *dmrepl_rec_copy_out(struct dm_repl_rec *dst,
					const struct dm_repl_rec *src, bool discarded)
{
	bool zero;
	size_t len = dmrepl_rec_out_len(src, discarded, &zero);

	dmrepl_rec_copy_as(dst, src, discarded, zero, len);
	return dst;
}

__u32 dmrepl_group_tag(const char *group_name)
{
	return dmrepl_crc32c(~0U, group_name, strlen(group_name));
}

long dmrepl_rec_encode(void *buf, size_t size, const struct dmrepl_rec_fields *f)
{
	struct dm_repl_rec *r = buf;
	size_t len;

	if (f->payload_len > DM_REPL_REC_PAYLOAD_MAX)
		return -EMSGSIZE;
	len = dmrepl_rec_size(f->payload_len);
	if (len > size)
		return -EMSGSIZE;

	memset(r, 0, sizeof(*r));
	r->magic = htole32(DM_REPL_REC_MAGIC);
	r->type = htole16(f->type);
	r->flags = htole16(f->flags);
	r->len = htole32(len);
	r->payload_len = htole32(f->payload_len);
	r->seq = htole64(f->seq);
	r->epoch = htole64(f->epoch);
	r->sector = htole64(f->sector);
	r->nbytes = htole32(f->nbytes);
	r->volume = htole16(f->volume);
	r->version = htole16(DM_REPL_REC_VERSION);
	r->time_ns = htole64(f->time_ns);
	r->group_tag = htole32(f->group_tag);
	r->stream = htole64(f->stream);
	if (f->payload_len)
		memcpy((unsigned char *)buf + DM_REPL_REC_HDR_SIZE, f->payload,
		       f->payload_len);
	memset((unsigned char *)buf + DM_REPL_REC_HDR_SIZE + f->payload_len, 0,
	       len - DM_REPL_REC_HDR_SIZE - f->payload_len);
	dmrepl_rec_seal(r);
	return (long)len;
}
