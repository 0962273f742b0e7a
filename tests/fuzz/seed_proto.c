// SPDX-License-Identifier: GPL-2.0
/*
 * Seeds of fuzz_proto: one valid frame of every type (and a BATCH both raw
 * and compressed, one opening a stream; a HELLO of each role, and of a
 * rejoining replica), each in its own file of the directory given. Usage:
 * seed_proto DIR
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmrepl_proto.h"

#define STREAM_A	0x0123456789abcdefULL
#define STREAM_B	0x1122334455667788ULL
/* The primary's generations (fuzz_proto's local side has the same). */
#define GEN		0x6e6e000000000003ULL
#define GEN_OLD		0x6e6e000000000002ULL

static const char *dir;

static void save(const char *name, struct dmrepl_obuf *o, int ret)
{
	char path[4096];
	FILE *f;

	if (ret) {
		fprintf(stderr, "seed_proto: %s: %s\n", name, strerror(-ret));
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/seed-%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(o->buf, 1, o->len, f) != o->len || fclose(f)) {
		perror(path);
		exit(1);
	}
	o->len = 0;
}

/* A primary, its replica, or (rejoining) a replica of generation 0 with dirty regions. */
static void hello(struct dmrepl_obuf *o, unsigned int role, bool rejoining)
{
	struct dmrepl_proto_hello h = {
		.group = "vm42", .role = role, .max_batch = DMREPL_PROTO_MAX_BATCH_MIN,
		.window = 4, .gen_current = GEN, .gen_history = { GEN_OLD }, .nvolumes = 2,
		.volumes = { { .index = 0, .region_sectors = 128, .sectors = 1 << 21 },
			     { .index = 5, .region_sectors = 1024, .sectors = 1 << 22 } },
	};
	const char *name = "hello-primary";

	if (role == DMREPL_PROTO_PRIMARY) {
		strcpy(h.site, "site-a");
		h.flags = DMREPL_HELLO_BEHIND;
		h.stream = STREAM_A;
		h.next_seq = 1000;
	} else {
		name = "hello-secondary";
		strcpy(h.site, "site-b");
		h.applied_stream = STREAM_A;
		h.applied_seq = 900;
		h.flags = DMREPL_HELLO_OUTDATED;
	}
	if (rejoining) {
		name = "hello-rejoin";
		memset(h.gen_history, 0, sizeof(h.gen_history));
		h.gen_current = 0;
		h.flags = DMREPL_HELLO_REJOIN | DMREPL_HELLO_DIRTY | DMREPL_HELLO_INCONSISTENT;
	}
	save(name, o, dmrepl_proto_put_hello(o, &h));
}

/* A replica's own dirty regions of volume 5. */
static void resend(struct dmrepl_obuf *o)
{
	static struct dmrepl_proto_resend r = {
		.volume = 5, .count = 4, .regions = { 0, 7, 64, 4095 },
	};

	save("resend", o, dmrepl_proto_put_resend(o, &r));
}

/* A STREAM record when opening, a WRITE, a MARKER, a VERIFY and a FLUSH. */
static size_t records(unsigned char *buf, size_t size, bool opening)
{
	static unsigned char data[4096];
	struct dm_repl_stream_link link = { .prev = { htole64(STREAM_A) } };
	struct dmrepl_rec_fields f[5] = {
		{ .type = DM_REPL_REC_STREAM, .flags = DM_REPL_RECF_GAP,
		  .payload = &link, .payload_len = sizeof(link) },
		{ .type = DM_REPL_REC_WRITE, .volume = 5, .sector = 8, .nbytes = 4096,
		  .payload = data, .payload_len = 4096 },
		{ .type = DM_REPL_REC_MARKER, .payload = "daily", .payload_len = 5 },
		{ .type = DM_REPL_REC_VERIFY, .flags = DM_REPL_RECF_RACED, .volume = 5,
		  .sector = 128, .nbytes = 65536, .payload = data,
		  .payload_len = DM_REPL_VERIFY_HASH_SIZE },
		{ .type = DM_REPL_REC_FLUSH },
	};
	size_t len = 0, i;
	long n;

	memset(data, 'x', sizeof(data));
	for (i = opening ? 0 : 1; i < 5; i++) {
		f[i].seq = 901 + i;
		f[i].epoch = 3;
		f[i].group_tag = dmrepl_group_tag("vm42");
		f[i].stream = opening ? STREAM_B : STREAM_A;
		n = dmrepl_rec_encode(buf + len, size - len, &f[i]);
		if (n < 0)
			exit(1);
		len += (size_t)n;
	}
	return len;
}

/* A resync's region of zeros (its ZERO form), then the resync's end. */
static size_t resync_records(unsigned char *buf, size_t size)
{
	struct dm_repl_resync_end end = { htole64(1ULL << 5) };
	struct dmrepl_rec_fields f[2] = {
		{ .type = DM_REPL_REC_RESYNC, .flags = DM_REPL_RECF_ZERO, .volume = 5,
		  .sector = 128, .nbytes = 65536 },
		{ .type = DM_REPL_REC_RESYNC, .flags = DM_REPL_RECF_RESYNC_END, .volume = 5,
		  .payload = &end, .payload_len = sizeof(end) },
	};
	size_t len = 0, i;
	long n;

	for (i = 0; i < 2; i++) {
		f[i].seq = 904 + i;
		f[i].epoch = 4;
		f[i].group_tag = dmrepl_group_tag("vm42");
		f[i].stream = STREAM_A;
		n = dmrepl_rec_encode(buf + len, size - len, &f[i]);
		if (n < 0)
			exit(1);
		len += (size_t)n;
	}
	return len;
}

int main(int argc, char **argv)
{
	static unsigned char recs[16384] __attribute__((aligned(8)));
	struct dmrepl_proto_ack ack = { STREAM_A, 903, 903 };
	struct dmrepl_obuf o;
	const char *why;
	size_t len;

	if (argc != 2) {
		fprintf(stderr, "usage: seed_proto DIR\n");
		return 2;
	}
	dir = argv[1];
	dmrepl_obuf_init(&o);
	hello(&o, DMREPL_PROTO_PRIMARY, false);
	hello(&o, DMREPL_PROTO_SECONDARY, false);
	hello(&o, DMREPL_PROTO_SECONDARY, true);
	resend(&o);
	len = records(recs, sizeof(recs), false);
	save("batch-raw", &o, dmrepl_proto_put_batch(&o, recs, len, 0, NULL, &why));
	save("batch-zstd", &o, dmrepl_proto_put_batch(&o, recs, len, 3, NULL, &why));
	len = records(recs, sizeof(recs), true);
	save("batch-stream", &o, dmrepl_proto_put_batch(&o, recs, len, 0, NULL, &why));
	len = resync_records(recs, sizeof(recs));
	save("batch-resync", &o, dmrepl_proto_put_batch(&o, recs, len, 0, NULL, &why));
	save("ack", &o, dmrepl_proto_put_ack(&o, &ack));
	save("heartbeat", &o, dmrepl_proto_put_heartbeat(&o, 1700000000000000000ULL));
	save("refuse", &o, dmrepl_proto_put_refuse(&o, DMREPL_REFUSE_ORDER,
						   "batch does not follow 903"));
	save("refuse-diverged", &o, dmrepl_proto_put_refuse(&o, DMREPL_REFUSE_DIVERGED,
		"split brain: the generations of the two sides share no history"));
	dmrepl_obuf_free(&o);
	return 0;
}
