// SPDX-License-Identifier: GPL-2.0
/*
 * Resource files (dmrepl_conf.h): a full file field by field, the defaults,
 * a table of bad files each with its exact message, directories, the local
 * site, the local files and PSK files; then "repltool config check|show".
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dmrepl_conf.h"
#include "kselftest_harness.h"
#include "runtool.h"

static const char full_conf[] =
	"# /etc/dm-repl/vm1.conf\n"
	"group vm1 {\n"
	"\tcompression zstd 7;\n"
	"\tbandwidth 100M;\n"
	"\twindow 8;\n"
	"\tbatch-size 2M;\n"
	"\theartbeat 500ms;\n"
	"\ttimeout 10s;\n"
	"\tring-size 1G;\n"
	"\ttls {\n"
	"\t\tca /etc/dm-repl/tls/ca.crt;\n"
	"\t}\n"
	"\tsite alpha {\n"
	"\t\thost alpha;\n"
	"\t\taddress 192.0.2.10:7000;\n"
	"\t\tcertificate /etc/dm-repl/tls/alpha.crt;\n"
	"\t\tkey \"/etc/dm-repl/tls/alpha \\\"1\\\\.key\";\n"
	"\t\tidentity alpha.example.net;\n"
	"\t\tvolume 1 {\n"
	"\t\t\tdevice vm1-one;\n"
	"\t\t\tdata /dev/vg0/vm1-disk1;\n"
	"\t\t\tmeta /dev/vg0/vm1-disk1-meta;\n"
	"\t\t}\n"
	"\t\tvolume 0 { data /dev/vg0/vm1-disk0; meta /dev/vg0/vm1-disk0-meta; }\n"
	"\t}\n"
	"\tsite beta {\n"
	"\t\thost beta.example.net;\n"
	"\t\taddress [2001:db8::2];\n"
	"\t\tcertificate /etc/dm-repl/tls/beta.crt;\n"
	"\t\tkey /etc/dm-repl/tls/beta.key;\n"
	"\t\tsnapshot-hook /etc/dm-repl/snapshot-hook;\n"
	"\t\tvolume 0 { data /dev/dr/d0; meta /dev/dr/m0; }\n"
	"\t\tvolume 1 { data /dev/dr/d1; meta /dev/dr/m1; }\n"
	"\t}\n"
	"\tresync-rate 20M;\n"
	"\tresync-lag-target 500ms;\n"
	"}\n";

TEST(a_full_file_is_parsed_field_by_field)
{
	struct dmrepl_conf_group g;
	const struct dmrepl_conf_site *a = &g.sites[0], *b = &g.sites[1];
	char err[256];

	ASSERT_EQ(0, dmrepl_conf_parse("vm1.conf", full_conf, strlen(full_conf), &g, err,
				       sizeof(err))) TH_LOG("%s", err);
	EXPECT_STREQ("vm1", g.name);
	EXPECT_STREQ("vm1.conf", g.file);
	EXPECT_EQ(2U, g.line);
	EXPECT_EQ(7, g.compress_level);
	EXPECT_EQ(100ULL << 20, g.bandwidth);
	EXPECT_EQ(8U, g.window);
	EXPECT_EQ(2U << 20, g.batch_bytes);
	EXPECT_EQ(500U, g.heartbeat_ms);
	EXPECT_EQ(10000U, g.timeout_ms);
	EXPECT_EQ(1024U, g.ring_mb);
	EXPECT_EQ(20ULL << 20, g.resync_rate);
	EXPECT_EQ(500U, g.resync_lag_ms);
	EXPECT_EQ((int)DMREPL_AUTH_CERT, (int)g.auth);
	EXPECT_STREQ("/etc/dm-repl/tls/ca.crt", g.ca);
	EXPECT_EQ(NULL, g.psk);
	EXPECT_EQ(NULL, g.psk_identity);

	EXPECT_STREQ("alpha", a->name);
	EXPECT_EQ(13U, a->line);
	EXPECT_STREQ("alpha", a->host);
	EXPECT_STREQ("192.0.2.10", a->address);
	EXPECT_EQ(7000U, a->port);
	EXPECT_STREQ("/etc/dm-repl/tls/alpha.crt", a->certificate);
	EXPECT_STREQ("/etc/dm-repl/tls/alpha \"1\\.key", a->key);
	EXPECT_STREQ("alpha.example.net", a->identity);
	ASSERT_EQ(2U, a->nvolumes);
	EXPECT_EQ(0U, a->volumes[0].index);
	EXPECT_EQ(24U, a->volumes[0].line);
	EXPECT_STREQ("vm1-0", a->volumes[0].device);
	EXPECT_STREQ("/dev/vg0/vm1-disk0", a->volumes[0].data);
	EXPECT_STREQ("/dev/vg0/vm1-disk0-meta", a->volumes[0].meta);
	EXPECT_EQ(1U, a->volumes[1].index);
	EXPECT_EQ(19U, a->volumes[1].line);
	EXPECT_STREQ("vm1-one", a->volumes[1].device);
	EXPECT_STREQ("/dev/vg0/vm1-disk1", a->volumes[1].data);
	EXPECT_STREQ("/dev/vg0/vm1-disk1-meta", a->volumes[1].meta);

	EXPECT_STREQ("beta", b->name);
	EXPECT_STREQ("2001:db8::2", b->address);
	EXPECT_EQ((unsigned int)DMREPL_CONF_PORT, b->port);
	EXPECT_STREQ("beta.example.net", b->identity);
	EXPECT_STREQ("/etc/dm-repl/snapshot-hook", b->snapshot_hook);
	EXPECT_EQ(NULL, a->snapshot_hook);
	ASSERT_EQ(2U, b->nvolumes);
	EXPECT_STREQ("vm1-1", b->volumes[1].device);
	EXPECT_STREQ("/dev/dr/m1", b->volumes[1].meta);
	EXPECT_EQ(b, dmrepl_conf_peer_site(&g, a));
	EXPECT_EQ(a, dmrepl_conf_peer_site(&g, b));
	dmrepl_conf_free(&g);
	EXPECT_EQ(NULL, g.name);
}

/* The smallest good file: line 1 group, 2 tls, 3 and 4 the sites, 5 the end. */
#define VOL(i, d) "volume " #i " { data /" d "; meta /" d "m; } "
#define SITE(n, host, addr, vols) "site " n " { host " host "; address " addr \
	"; certificate /" n ".crt; key /" n ".key; " vols "}\n"
#define HEAD "group g {\n"
#define TLS "tls { ca /ca; }\n"
#define SA SITE("a", "ha", "10.0.0.1", VOL(0, "a0"))
#define SB SITE("b", "hb", "10.0.0.2", VOL(0, "b0"))
#define MIN HEAD TLS SA SB "}\n"

TEST(defaults_fill_what_a_file_leaves_out)
{
	static const char psk[] = "group g {\ntls { psk /p; }\n"
		"site a { host ha; address h1; volume 0 { data /a; meta /am; } }\n"
		"site b { host hb; address h2:1; volume 0 { data /b; meta /bm; } }\n}\n";
	static const char zstd[] = HEAD "compression zstd;\n" TLS SA SB "}\n";
	struct dmrepl_conf_group g;
	char err[256];

	ASSERT_EQ(0, dmrepl_conf_parse("g.conf", MIN, strlen(MIN), &g, err, sizeof(err)))
		TH_LOG("%s", err);
	EXPECT_EQ(1, g.compress_level);
	EXPECT_EQ(0ULL, g.bandwidth);
	EXPECT_EQ(4U, g.window);
	EXPECT_EQ(1U << 20, g.batch_bytes);
	EXPECT_EQ(1000U, g.heartbeat_ms);
	EXPECT_EQ(5000U, g.timeout_ms);
	EXPECT_EQ(64U, g.ring_mb);
	EXPECT_EQ(0ULL, g.resync_rate);
	EXPECT_EQ(1000U, g.resync_lag_ms);
	EXPECT_EQ((unsigned int)DMREPL_CONF_PORT, g.sites[0].port);
	EXPECT_STREQ("ha", g.sites[0].identity);
	EXPECT_STREQ("g-0", g.sites[1].volumes[0].device);
	dmrepl_conf_free(&g);

	ASSERT_EQ(0, dmrepl_conf_parse("g.conf", zstd, strlen(zstd), &g, err, sizeof(err)))
		TH_LOG("%s", err);
	EXPECT_EQ(1, g.compress_level);		/* "zstd" alone: the default level */
	dmrepl_conf_free(&g);

	ASSERT_EQ(0, dmrepl_conf_parse("g.conf", psk, strlen(psk), &g, err, sizeof(err)))
		TH_LOG("%s", err);
	EXPECT_EQ((int)DMREPL_AUTH_PSK, (int)g.auth);
	EXPECT_STREQ("/p", g.psk);
	EXPECT_STREQ("g", g.psk_identity);
	EXPECT_EQ(NULL, g.ca);
	EXPECT_EQ(NULL, g.sites[0].certificate);
	EXPECT_EQ(NULL, g.sites[0].key);
	EXPECT_EQ(NULL, g.sites[0].identity);
	EXPECT_STREQ("h2", g.sites[1].address);
	EXPECT_EQ(1U, g.sites[1].port);
	dmrepl_conf_free(&g);
}

struct bad_file {
	const char *text;
	const char *err;
};

static const struct bad_file bad_files[] = {
	{ "", "t.conf:1: expected \"group NAME {\", found end of file" },
	{ "# nothing\n\nsite a {}", "t.conf:3: expected \"group NAME {\", found \"site\"" },
	{ "group g;", "t.conf:1: expected \"group NAME {\"" },
	{ "group .g {}", "t.conf:1: group \".g\": not a name of 1-31 of [A-Za-z0-9_.+-], "
	  "not starting with '.'" },
	{ "group g23456789012345678901234567890bc {}", "t.conf:1: group "
	  "\"g23456789012345678901234567890bc\": not a name of 1-31 of [A-Za-z0-9_.+-], "
	  "not starting with '.'" },
	{ HEAD "frobnicate 1;\n", "t.conf:2: unknown key \"frobnicate\" in group" },
	{ HEAD "data /x;\n", "t.conf:2: key \"data\" belongs in a volume block, not in group" },
	{ HEAD TLS "site a { ca /x; }\n", "t.conf:3: key \"ca\" belongs in a tls block, "
	  "not in site \"a\"" },
	{ HEAD "window 4;\nwindow 5;\n", "t.conf:3: duplicate key \"window\" (first at line 2)" },
	{ HEAD "window 4\nbatch-size 1M;\n", "t.conf:3: window: unexpected \"batch-size\" "
	  "(missing ';'?)" },
	{ HEAD "window;\n", "t.conf:2: window: missing value" },
	{ HEAD "window 4 }", "t.conf:2: window: expected ';' before '}'" },
	{ HEAD "tls;\n", "t.conf:2: tls: missing block { ... }" },
	{ HEAD "window { }\n", "t.conf:2: window: a value, not a block" },
	{ HEAD TLS SA, "t.conf:1: group: no '}' closes its block" },
	{ HEAD TLS "site a {\nhost ha;\n", "t.conf:3: site \"a\": no '}' closes its block" },
	{ HEAD SA SB "}\n", "t.conf:1: group: missing key \"tls\"" },
	{ HEAD TLS "site a { host ha; volume 0 { data /a; meta /b; } }\n",
	  "t.conf:3: site \"a\": missing key \"address\"" },
	{ HEAD TLS "site a { host ha; address x; volume 0 { data /a; } }\n",
	  "t.conf:3: volume 0 of site \"a\": missing key \"meta\"" },
	{ HEAD TLS SA "}\n", "t.conf:1: group \"g\": 1 site; a group has exactly two" },
	{ HEAD TLS SA SB SITE("c", "hc", "10.0.0.3", VOL(0, "c0")) "}\n",
	  "t.conf:5: site \"c\": a third site; a group has exactly two" },
	{ HEAD TLS SA SITE("a", "hb", "10.0.0.2", VOL(0, "b0")) "}\n",
	  "t.conf:4: duplicate site \"a\" (first at line 3)" },
	{ HEAD TLS SA SITE("b", "HA", "10.0.0.2", VOL(0, "b0")) "}\n",
	  "t.conf:4: site \"b\": host \"HA\" is also the host of site \"a\"" },
	{ HEAD TLS SA SITE("b", "hb", "10.0.0.1:7790", VOL(0, "b0")) "}\n",
	  "t.conf:4: site \"b\": address \"10.0.0.1\" port 7790 is also the address of "
	  "site \"a\"" },
	{ HEAD TLS SITE("a", "ha", "h", VOL(0, "a0") VOL(0, "a1")) SB "}\n",
	  "t.conf:3: duplicate volume 0 (first at line 3)" },
	{ HEAD TLS SITE("a", "ha", "h", VOL(64, "a0")) SB "}\n",
	  "t.conf:3: volume \"64\": not an index from 0 to 63" },
	{ HEAD TLS SA SITE("b", "hb", "h", VOL(0, "b0") VOL(2, "b2")) "}\n",
	  "t.conf:4: volume 2 of site \"b\" is not in site \"a\"" },
	{ HEAD TLS SITE("a", "ha", "h", VOL(0, "a0") VOL(1, "a1")) SB "}\n",
	  "t.conf:3: volume 1 of site \"a\" is not in site \"b\"" },
	{ HEAD TLS SITE("a", "ha", "h", "volume 0 { data /x; meta /x; } ") SB "}\n",
	  "t.conf:3: volume 0 of site \"a\": data and meta are the same path \"/x\"" },
	{ HEAD TLS SITE("a", "ha", "h", VOL(0, "a0") "volume 1 { data /a0m; meta /y; }")
	  SITE("b", "hb", "h2", VOL(0, "b0") VOL(1, "b1")) "}\n",
	  "t.conf:3: volume 1 of site \"a\": path \"/a0m\" is also used by volume 0" },
	{ HEAD TLS SITE("a", "ha", "h", VOL(0, "a0") "volume 1 { device g-0; data /x; meta "
	  "/y; }") SITE("b", "hb", "h2", VOL(0, "b0") VOL(1, "b1")) "}\n",
	  "t.conf:3: volume 1 of site \"a\": device \"g-0\" is also the device of volume 0" },
	{ HEAD "window 0;\n", "t.conf:2: window \"0\": not a number from 1 to 64" },
	{ HEAD "window 65;\n", "t.conf:2: window \"65\": not a number from 1 to 64" },
	{ HEAD "batch-size 1X;\n", "t.conf:2: batch-size \"1X\": not a size from 64K to 32M" },
	{ HEAD "batch-size 33M;\n", "t.conf:2: batch-size \"33M\": not a size from 64K to 32M" },
	{ HEAD "bandwidth 10T;\n", "t.conf:2: bandwidth \"10T\": not bytes per second "
	  "(N, NK, NM or NG)" },
	{ HEAD "bandwidth 99999999999999999999;\n", "t.conf:2: bandwidth "
	  "\"99999999999999999999\": not bytes per second (N, NK, NM or NG)" },
	{ HEAD "resync-rate 5X;\n", "t.conf:2: resync-rate \"5X\": not 0 or bytes per second "
	  "from 64K (N, NK, NM or NG)" },
	{ HEAD "resync-rate 63K;\n", "t.conf:2: resync-rate \"63K\": not 0 or bytes per second "
	  "from 64K (N, NK, NM or NG)" },
	{ HEAD "resync-lag-target 50ms;\n", "t.conf:2: resync-lag-target \"50ms\": not a "
	  "time from 100ms to 600s" },
	{ HEAD "resync-lag-target 1;\n", "t.conf:2: resync-lag-target \"1\": not a "
	  "time from 100ms to 600s" },
	{ HEAD "ring-size 3M;\n", "t.conf:2: ring-size \"3M\": not a power of two from "
	  "2M to 16G" },
	{ HEAD "ring-size 32G;\n", "t.conf:2: ring-size \"32G\": not a power of two from "
	  "2M to 16G" },
	{ HEAD "heartbeat 50ms;\n", "t.conf:2: heartbeat \"50ms\": not a time from 100ms "
	  "to 60s" },
	{ HEAD "heartbeat 1;\n", "t.conf:2: heartbeat \"1\": not a time from 100ms to 60s" },
	{ HEAD "timeout 601s;\n", "t.conf:2: timeout \"601s\": not a time up to 600s "
	  "(units ms, s)" },
	{ HEAD "heartbeat 10s;\n" TLS SA SB "}\n", "t.conf:2: timeout 5000ms is not more "
	  "than heartbeat 10000ms" },
	{ HEAD "compression zstd 20;\n", "t.conf:2: compression zstd \"20\": not a level "
	  "from 1 to 19" },
	{ HEAD "compression lz4;\n", "t.conf:2: compression \"lz4\": not \"zstd [LEVEL]\" "
	  "or \"none\"" },
	{ HEAD TLS "site a { host ha; address h; certificate /c; volume 0 { data /a; meta /m; "
	  "} }\n" SB "}\n", "t.conf:3: site \"a\": missing key \"key\" (certificate mode)" },
	{ HEAD "tls { psk /p; }\n" SA SB "}\n", "t.conf:3: site \"a\": certificate is for "
	  "certificate mode, not with psk" },
	{ HEAD "tls { ca /c;\npsk /p; }\n" SA SB "}\n", "t.conf:3: tls: psk and ca exclude "
	  "each other (ca at line 2)" },
	{ HEAD "tls { }\n" SA SB "}\n", "t.conf:2: tls: missing key \"ca\" (certificate "
	  "mode) or \"psk\" (PSK mode)" },
	{ HEAD "tls { ca /c; psk-identity x; }\n" SA SB "}\n", "t.conf:2: tls: psk-identity "
	  "is for PSK mode, not with ca" },
	{ HEAD "tls { ca c; }\n", "t.conf:2: ca \"c\": not an absolute path" },
	{ MIN "group h {}\n", "t.conf:6: \"group\" after the end of group \"g\"" },
	{ MIN ";", "t.conf:6: ';' after the end of group \"g\"" },
	{ HEAD "tls { ca \"/c;\n}", "t.conf:2: unterminated string" },
	{ HEAD "tls { ca \"/c\\n\"; }", "t.conf:2: bad escape in string: only \\\" and \\\\" },
	{ HEAD "window \x01;", "t.conf:2: invalid character 0x01" },
	{ HEAD TLS SITE("a", "ha", "h:0", VOL(0, "a0")),
	  "t.conf:3: address \"h:0\": the port is not a number from 1 to 65535" },
	{ HEAD TLS SITE("a", "ha", "2001:db8::1", VOL(0, "a0")),
	  "t.conf:3: address \"2001:db8::1\": an IPv6 address goes in brackets: [IPv6]:port" },
	{ HEAD TLS SITE("a", "ha", "10.0.0.256", VOL(0, "a0")),
	  "t.conf:3: address \"10.0.0.256\": not an IPv4 address" },
	{ HEAD TLS SITE("a", "ha", "[::1", VOL(0, "a0")),
	  "t.conf:3: address \"[::1\": expected [IPv6]:port" },
	{ HEAD TLS SITE("a", "h/a", "h", VOL(0, "a0")), "t.conf:3: host \"h/a\": not a host name" },
	{ HEAD TLS SITE("a", "ha", "h", "volume 0 { device a/b; }"),
	  "t.conf:3: device \"a/b\": not a device-mapper name (1-127 characters, no '/' or "
	  "space)" },
};

TEST(each_bad_file_gets_its_own_message)
{
	struct dmrepl_conf_group g;
	char err[512];
	size_t i;

	for (i = 0; i < sizeof(bad_files) / sizeof(bad_files[0]); i++) {
		const struct bad_file *b = &bad_files[i];

		memset(err, 0, sizeof(err));
		EXPECT_EQ(-EINVAL, dmrepl_conf_parse("t.conf", b->text, strlen(b->text), &g,
						     err, sizeof(err))) TH_LOG("file %zu", i);
		EXPECT_STREQ(b->err, err) TH_LOG("file %zu: %s", i, b->text);
		EXPECT_EQ(NULL, g.name);
		dmrepl_conf_free(&g);
	}
}

TEST(tokens_and_files_are_bounded)
{
	size_t len = DMREPL_CONF_MAX_BYTES + 1;
	struct dmrepl_conf_group g;
	char *text = malloc(len);
	char err[256];

	ASSERT_NE(NULL, text);
	memset(text, ' ', len);
	EXPECT_EQ(-EINVAL, dmrepl_conf_parse("t.conf", text, len, &g, err, sizeof(err)));
	EXPECT_STREQ("t.conf: larger than 1048576 bytes", err);
	memset(text, 'x', DMREPL_CONF_MAX_TOKEN + 1);
	EXPECT_EQ(-EINVAL, dmrepl_conf_parse("t.conf", text, DMREPL_CONF_MAX_TOKEN + 1, &g,
					     err, sizeof(err)));
	EXPECT_STREQ("t.conf:1: word longer than 4096 bytes", err);
	/* A NUL byte is a character like any other for the tokenizer. */
	EXPECT_EQ(-EINVAL, dmrepl_conf_parse("t.conf", "group\0g {}", 10, &g, err,
					     sizeof(err)));
	EXPECT_STREQ("t.conf:1: invalid character 0x00", err);
	free(text);
}

/* ---- files in a temporary directory ------------------------------------ */

FIXTURE(dir) {
	char path[64];
	struct run r;
};

FIXTURE_SETUP(dir)
{
	memset(&self->r, 0, sizeof(self->r));
	snprintf(self->path, sizeof(self->path), "/tmp/dmrepl-conf-XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->path));
}

FIXTURE_TEARDOWN(dir)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", self->path);
	if (system(cmd))
		TH_LOG("cannot remove %s", self->path);
	free(self->r.out);
}

static void write_file(const char *dir, const char *name, const char *text, mode_t mode)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) || chmod(path, mode))
		abort();
}

/* A group's text: name, first site's host, a device path of that site. */
static char *group_text(const char *name, const char *host, const char *data)
{
	static char buf[1024];

	snprintf(buf, sizeof(buf), "group %s {\ntls { ca /ca; }\n"
		 "site a { host %s; address 10.0.0.1; certificate /c; key /k;\n"
		 "volume 0 { data %s; meta /%s-m; } }\n"
		 "site b { host other-host; address 10.0.0.2; certificate /c; key /k;\n"
		 "volume 0 { data /%s-b; meta /%s-bm; } }\n}\n", name, host, data, name, name,
		 name);
	return buf;
}

struct reports {
	char msg[4][512];
	unsigned int n;
};

static void collect(const char *msg, void *arg)
{
	struct reports *r = arg;

	if (r->n < 4)
		snprintf(r->msg[r->n], sizeof(r->msg[0]), "%s", msg);
	r->n++;
}

TEST_F(dir, load_dir_keeps_the_good_files_and_reports_each_bad_one)
{
	struct dmrepl_conf_group *groups;
	struct reports rep = { .n = 0 };
	unsigned int n;
	char want[512];

	write_file(self->path, "vm1.conf", group_text("vm1", "ha", "/d1"), 0644);
	/* The same group again, and vm1's data path on the same host. */
	write_file(self->path, "vm1-copy.conf", group_text("vm1", "ha", "/d9"), 0644);
	write_file(self->path, "vm2.conf", group_text("vm2", "HA", "/d1"), 0644);
	/* The same path on another host is no conflict. */
	write_file(self->path, "vm3.conf", group_text("vm3", "hc", "/d1"), 0644);
	write_file(self->path, "vm4.conf", "group vm4 {\n", 0644);
	write_file(self->path, "README", "not a resource file", 0644);

	ASSERT_EQ(3, dmrepl_conf_load_dir(self->path, &groups, &n, collect, &rep));
	ASSERT_EQ(2U, n);
	EXPECT_STREQ("vm1", groups[0].name);
	EXPECT_STREQ("vm3", groups[1].name);
	ASSERT_EQ(3U, rep.n);
	snprintf(want, sizeof(want), "%s/vm1-copy.conf:1: group \"vm1\" must be in a file "
		 "named \"vm1.conf\"", self->path);
	EXPECT_STREQ(want, rep.msg[0]);
	snprintf(want, sizeof(want), "%s/vm2.conf:4: volume 0 of site \"a\": path \"/d1\" is "
		 "also used by group \"vm1\" (%s/vm1.conf:4)", self->path, self->path);
	EXPECT_STREQ(want, rep.msg[1]);
	snprintf(want, sizeof(want), "%s/vm4.conf:1: group: no '}' closes its block",
		 self->path);
	EXPECT_STREQ(want, rep.msg[2]);
	dmrepl_conf_free_all(groups, n);

	EXPECT_EQ(-ENOENT, dmrepl_conf_load_dir("/nonexistent", &groups, &n, collect, &rep));
}

TEST_F(dir, local_site_is_found_by_name_or_by_host_name)
{
	const struct dmrepl_conf_site *s;
	struct dmrepl_conf_group g;
	char host[256], path[128], err[512];

	ASSERT_EQ(0, gethostname(host, sizeof(host)));
	snprintf(path, sizeof(path), "%s/vm1.conf", self->path);
	write_file(self->path, "vm1.conf", group_text("vm1", host, "/d1"), 0644);
	ASSERT_EQ(0, dmrepl_conf_load(path, &g, err, sizeof(err))) TH_LOG("%s", err);

	s = dmrepl_conf_local_site(&g, NULL, err, sizeof(err));
	ASSERT_EQ(&g.sites[0], s) TH_LOG("%s", err);
	EXPECT_EQ(&g.sites[1], dmrepl_conf_local_site(&g, "b", err, sizeof(err)));
	EXPECT_EQ(NULL, dmrepl_conf_local_site(&g, "c", err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "group \"vm1\" has no site \"c\" (its sites: a, b)"));
	dmrepl_conf_free(&g);

	write_file(self->path, "vm1.conf", group_text("vm1", "no-such-host", "/d1"), 0644);
	ASSERT_EQ(0, dmrepl_conf_load(path, &g, err, sizeof(err))) TH_LOG("%s", err);
	EXPECT_EQ(NULL, dmrepl_conf_local_site(&g, NULL, err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "group \"vm1\": no site has host"));
	dmrepl_conf_free(&g);
}

/* The test runs in a child of its own: a new UTS namespace changes nothing else. */
TEST_F(dir, a_site_host_may_be_the_short_name_of_the_host_name)
{
	static const char name[] = "ha.example.net";
	struct dmrepl_conf_group g;
	char path[128], err[512];

	if (unshare(CLONE_NEWUTS) || sethostname(name, strlen(name)))
		SKIP(return, "cannot set the host name in a new UTS namespace: %s",
		     strerror(errno));
	snprintf(path, sizeof(path), "%s/vm1.conf", self->path);
	write_file(self->path, "vm1.conf", group_text("vm1", "ha", "/d1"), 0644);
	ASSERT_EQ(0, dmrepl_conf_load(path, &g, err, sizeof(err))) TH_LOG("%s", err);
	EXPECT_EQ(&g.sites[0], dmrepl_conf_local_site(&g, NULL, err, sizeof(err)));
	dmrepl_conf_free(&g);
	write_file(self->path, "vm1.conf", group_text("vm1", "ha.example", "/d1"), 0644);
	ASSERT_EQ(0, dmrepl_conf_load(path, &g, err, sizeof(err))) TH_LOG("%s", err);
	EXPECT_EQ(NULL, dmrepl_conf_local_site(&g, NULL, err, sizeof(err)));
	dmrepl_conf_free(&g);
}

/* A certificate-mode group whose files are in dir; site a is local. */
static void load_cert_group(const char *dir, struct dmrepl_conf_group *g)
{
	char text[1024], path[128], err[512];

	snprintf(text, sizeof(text), "group vm1 {\ntls { ca %s/ca.crt; }\n"
		 "site a { host ha; address h1; certificate %s/a.crt; key %s/a.key;\n"
		 "volume 0 { data /a; meta /am; } }\n"
		 "site b { host hb; address h2; certificate /b.crt; key /b.key;\n"
		 "volume 0 { data /b; meta /bm; } }\n}\n", dir, dir, dir);
	write_file(dir, "vm1.conf", text, 0644);
	snprintf(path, sizeof(path), "%s/vm1.conf", dir);
	if (dmrepl_conf_load(path, g, err, sizeof(err)))
		abort();
}

TEST_F(dir, check_local_wants_the_local_files_and_a_private_key)
{
	struct dmrepl_conf_group g;
	char err[512], want[512];

	load_cert_group(self->path, &g);
	write_file(self->path, "ca.crt", "ca\n", 0644);
	write_file(self->path, "a.crt", "cert\n", 0644);
	/* The peer's certificate and key, /b.crt and /b.key, are not looked at. */
	EXPECT_EQ(-ENOENT, dmrepl_conf_check_local(&g, &g.sites[0], err, sizeof(err)));
	snprintf(want, sizeof(want), "key %s/a.key: No such file or directory", self->path);
	EXPECT_STREQ(want, err);

	write_file(self->path, "a.key", "key\n", 0640);
	EXPECT_EQ(-EINVAL, dmrepl_conf_check_local(&g, &g.sites[0], err, sizeof(err)));
	snprintf(want, sizeof(want), "key %s/a.key: readable by group or others (mode 0640); "
		 "chmod 600 it", self->path);
	EXPECT_STREQ(want, err);

	write_file(self->path, "a.key", "key\n", 0600);
	EXPECT_EQ(0, dmrepl_conf_check_local(&g, &g.sites[0], err, sizeof(err))) TH_LOG("%s", err);

	/* A snapshot-hook must be executable. */
	snprintf(want, sizeof(want), "%s/hook", self->path);
	write_file(self->path, "hook", "#!/bin/sh\n", 0644);
	g.sites[0].snapshot_hook = strdup(want);
	ASSERT_NE(NULL, g.sites[0].snapshot_hook);
	EXPECT_EQ(-EINVAL, dmrepl_conf_check_local(&g, &g.sites[0], err, sizeof(err)));
	snprintf(want, sizeof(want), "snapshot-hook %s/hook: Permission denied", self->path);
	EXPECT_STREQ(want, err);
	ASSERT_EQ(0, chmod(g.sites[0].snapshot_hook, 0755));
	EXPECT_EQ(0, dmrepl_conf_check_local(&g, &g.sites[0], err, sizeof(err))) TH_LOG("%s", err);

	snprintf(want, sizeof(want), "%s/ca.crt", self->path);
	ASSERT_EQ(0, unlink(want));
	ASSERT_EQ(0, mkdir(want, 0755));
	EXPECT_EQ(-EINVAL, dmrepl_conf_check_local(&g, &g.sites[0], err, sizeof(err)));
	snprintf(want, sizeof(want), "ca %s/ca.crt: not a regular file", self->path);
	EXPECT_STREQ(want, err);
	dmrepl_conf_free(&g);
}

#define HEX32 "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF"

TEST_F(dir, read_psk_wants_at_least_32_bytes_of_hex)
{
	unsigned char key[64];
	char path[128], err[512], want[512];
	size_t keylen = sizeof(key);

	snprintf(path, sizeof(path), "%s/g.psk", self->path);
	write_file(self->path, "g.psk", HEX32 "\n", 0600);
	ASSERT_EQ(0, dmrepl_conf_read_psk(path, key, &keylen, err, sizeof(err))) TH_LOG("%s", err);
	EXPECT_EQ(32U, keylen);
	EXPECT_EQ(0x00, key[0]);
	EXPECT_EQ(0x11, key[1]);
	EXPECT_EQ(0xff, key[31]);

	write_file(self->path, "g.psk", HEX32 "00", 0600);
	keylen = 32;
	EXPECT_EQ(-EINVAL, dmrepl_conf_read_psk(path, key, &keylen, err, sizeof(err)));
	snprintf(want, sizeof(want), "psk %s: 33 bytes of key; at most 32", path);
	EXPECT_STREQ(want, err);

	write_file(self->path, "g.psk", "0011223344556677\n", 0600);
	keylen = sizeof(key);
	EXPECT_EQ(-EINVAL, dmrepl_conf_read_psk(path, key, &keylen, err, sizeof(err)));
	snprintf(want, sizeof(want), "psk %s: 8 bytes of key; at least 32 (openssl rand -hex 32)",
		 path);
	EXPECT_STREQ(want, err);

	write_file(self->path, "g.psk", "00112g\n", 0600);
	EXPECT_EQ(-EINVAL, dmrepl_conf_read_psk(path, key, &keylen, err, sizeof(err)));
	snprintf(want, sizeof(want), "psk %s: not hex text: byte 5 is 0x67", path);
	EXPECT_STREQ(want, err);

	write_file(self->path, "g.psk", HEX32 "0", 0600);
	EXPECT_EQ(-EINVAL, dmrepl_conf_read_psk(path, key, &keylen, err, sizeof(err)));
	snprintf(want, sizeof(want), "psk %s: odd number of hex digits (65)", path);
	EXPECT_STREQ(want, err);

	write_file(self->path, "g.psk", HEX32 "\n", 0644);
	EXPECT_EQ(-EINVAL, dmrepl_conf_read_psk(path, key, &keylen, err, sizeof(err)));
	snprintf(want, sizeof(want), "psk %s: readable by group or others (mode 0644); "
		 "chmod 600 it", path);
	EXPECT_STREQ(want, err);
}

/* ---- repltool config ------------------------------------------------------ */

TEST_F(dir, config_check_reports_each_error_and_exits_1)
{
	char want[512];

	write_file(self->path, "vm1.conf", group_text("vm1", "ha", "/d1"), 0644);
	write_file(self->path, "vm2.conf", "group vm2 {\nwindow 0;\n}\n", 0644);
	run_tool(&self->r, "config", "check", "--dir", self->path, "--site", "b", NULL);
	EXPECT_EQ(1, self->r.status);
	snprintf(want, sizeof(want), "repltool: %s/vm2.conf:2: window \"0\": not a number "
		 "from 1 to 64\nrepltool: %s/vm1.conf: group \"vm1\", site \"b\": ca /ca: "
		 "No such file or directory\n", self->path, self->path);
	EXPECT_STREQ(want, self->r.err);

	run_tool(&self->r, "config", "check", "--bogus", NULL);
	EXPECT_EQ(2, self->r.status);
}

TEST_F(dir, config_check_of_good_files_exits_0)
{
	char text[1024], path[128], want[512];

	snprintf(text, sizeof(text), "group vm1 {\ntls { psk %s/vm1.psk; }\n"
		 "site a { host ha; address h1; volume 0 { data /a; meta /am; } }\n"
		 "site b { host hb; address h2; volume 0 { data /b; meta /bm; } }\n}\n",
		 self->path);
	write_file(self->path, "vm1.conf", text, 0644);
	write_file(self->path, "vm1.psk", HEX32 "\n", 0600);
	snprintf(path, sizeof(path), "%s/vm1.conf", self->path);
	run_tool(&self->r, "config", "check", "--site", "a", path, NULL);
	EXPECT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	snprintf(want, sizeof(want), "%s: group \"vm1\": ok, local site \"a\"\n", path);
	EXPECT_STREQ(want, self->r.out);

	/* Without --site this host must be one of the sites. */
	run_tool(&self->r, "config", "check", path, NULL);
	EXPECT_EQ(1, self->r.status);
	EXPECT_NE(NULL, strstr(self->r.err, "no site has host"));
}

TEST_F(dir, config_show_prints_a_file_that_parses_to_the_same_group)
{
	struct dmrepl_conf_group a, b;
	char path[128], err[512];

	snprintf(path, sizeof(path), "%s/vm1.conf", self->path);
	write_file(self->path, "vm1.conf", full_conf, 0644);
	run_tool(&self->r, "config", "show", "--dir", self->path, "vm1", NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	EXPECT_NE(NULL, strstr(self->r.out, "\tbatch-size 2M;\n\theartbeat 500ms;\n"
			       "\ttimeout 10s;\n\tring-size 1G;\n\tresync-rate 20M;\n"
			       "\tresync-lag-target 500ms;\n"));
	EXPECT_NE(NULL, strstr(self->r.out, "\t\tkey \"/etc/dm-repl/tls/alpha \\\"1\\\\.key\";\n"));
	EXPECT_NE(NULL, strstr(self->r.out, "\t\taddress [2001:db8::2]:7790;\n"));

	ASSERT_EQ(0, dmrepl_conf_load(path, &a, err, sizeof(err))) TH_LOG("%s", err);
	ASSERT_EQ(0, dmrepl_conf_parse(path, self->r.out, self->r.out_len, &b, err,
				       sizeof(err))) TH_LOG("%s", err);
	EXPECT_EQ(a.compress_level, b.compress_level);
	EXPECT_EQ(a.bandwidth, b.bandwidth);
	EXPECT_EQ(a.batch_bytes, b.batch_bytes);
	EXPECT_EQ(a.heartbeat_ms, b.heartbeat_ms);
	EXPECT_EQ(a.ring_mb, b.ring_mb);
	EXPECT_EQ(a.resync_rate, b.resync_rate);
	EXPECT_EQ(a.resync_lag_ms, b.resync_lag_ms);
	EXPECT_STREQ(a.sites[0].key, b.sites[0].key);
	EXPECT_STREQ(a.sites[1].address, b.sites[1].address);
	EXPECT_STREQ(a.sites[0].volumes[1].device, b.sites[0].volumes[1].device);
	EXPECT_STREQ(a.sites[1].snapshot_hook, b.sites[1].snapshot_hook);
	dmrepl_conf_free(&a);
	dmrepl_conf_free(&b);

	run_tool(&self->r, "config", "show", "--dir", self->path, "--json", NULL);
	ASSERT_EQ(0, self->r.status) TH_LOG("%s", self->r.err);
	EXPECT_EQ(0, strncmp(self->r.out, "{\"file\":", 8));
	EXPECT_NE(NULL, strstr(self->r.out, "\"heartbeat_ms\":500,\"timeout_ms\":10000,"
			       "\"ring_mb\":1024,\"resync_rate\":20971520,\"resync_lag_ms\":500,"
			       "\"tls\":{\"auth\":\"certificate\","));
	EXPECT_NE(NULL, strstr(self->r.out, "{\"index\":1,\"device\":\"vm1-one\","));

	run_tool(&self->r, "config", "show", "--dir", self->path, "vm9", NULL);
	EXPECT_EQ(1, self->r.status);
}

TEST_HARNESS_MAIN
