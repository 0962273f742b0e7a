// SPDX-License-Identifier: GPL-2.0
/*
 * repltool's verbs over a resource file (resource.c): the sites and kernel
 * group names taken from a file, the table lines built from it, the words
 * for the kernel's refusals; then the command lines, and create-md on
 * regular files. Loading tables needs the kernel: tests/guest/resource.sh.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "resource.h"
#include "runtool.h"

/* Two sites in one kernel: beta names its own kernel group. */
static const char conf_text[] =
	"group vm1 {\n"
	"\tring-size 256M;\n"
	"\ttls { psk /etc/dm-repl/vm1.psk; }\n"
	"\tsite alpha {\n"
	"\t\thost alpha; address 192.0.2.1;\n"
	"\t\tvolume 0 { data /dev/a/d0; meta /dev/a/m0; }\n"
	"\t\tvolume 1 { data /dev/a/d1; meta /dev/a/m1; }\n"
	"\t}\n"
	"\tsite beta {\n"
	"\t\thost beta; address 192.0.2.2; group vm1b;\n"
	"\t\tvolume 0 { device vm1b-0; data /dev/b/d0; meta /dev/b/m0; }\n"
	"\t\tvolume 1 { device vm1b-1; data /dev/b/d1; meta /dev/b/m1; }\n"
	"\t}\n"
	"}\n";

static void load(struct res *r, const char *site)
{
	char err[256];

	memset(r, 0, sizeof(*r));
	if (dmrepl_conf_parse("vm1.conf", conf_text, strlen(conf_text), &r->conf, err,
			      sizeof(err)) ||
	    res_sites(r, site, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
}

TEST(each_site_has_its_kernel_group_and_the_peers)
{
	struct res r;

	load(&r, "alpha");
	EXPECT_STREQ("alpha", r.local->name);
	EXPECT_STREQ("beta", r.peer->name);
	EXPECT_STREQ("vm1", r.kgroup);
	EXPECT_STREQ("vm1b", r.peer_kgroup);
	EXPECT_STREQ("/dev/a/d1", r.vols[1].conf->data);
	EXPECT_STREQ("vm1-1", r.vols[1].conf->device);
	dmrepl_conf_free(&r.conf);

	load(&r, "beta");
	EXPECT_STREQ("vm1b", r.kgroup);
	EXPECT_STREQ("vm1", r.peer_kgroup);
	EXPECT_STREQ("vm1b-0", r.vols[0].conf->device);
	dmrepl_conf_free(&r.conf);
}

TEST(an_unknown_site_is_an_error)
{
	struct res r;
	char err[256];

	memset(&r, 0, sizeof(r));
	ASSERT_EQ(0, dmrepl_conf_parse("vm1.conf", conf_text, strlen(conf_text), &r.conf, err,
				       sizeof(err)));
	EXPECT_EQ(-1, res_sites(&r, "gamma", err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "gamma"));
	dmrepl_conf_free(&r.conf);
}

TEST(a_primary_table_names_its_group_and_ring)
{
	char buf[256];
	struct res r;

	load(&r, "alpha");
	ASSERT_EQ(0, res_params(&r, &r.vols[1], DM_REPL_META_ROLE_PRIMARY, buf, sizeof(buf)));
	EXPECT_STREQ("/dev/a/d1 /dev/a/m1 vm1 primary 2 ring_mb 256", buf);
	dmrepl_conf_free(&r.conf);
}

TEST(a_secondary_table_takes_the_peers_kernel_group_as_source)
{
	char buf[256];
	struct res r;

	load(&r, "beta");
	ASSERT_EQ(0, res_params(&r, &r.vols[0], DM_REPL_META_ROLE_SECONDARY, buf, sizeof(buf)));
	EXPECT_STREQ("/dev/b/d0 /dev/b/m0 vm1b secondary 4 ring_mb 256 source vm1", buf);
	dmrepl_conf_free(&r.conf);
}

TEST(the_live_table_is_the_kernels_spelling_of_the_same)
{
	char buf[256];
	struct res r;

	load(&r, "alpha");
	r.vols[0].data = makedev(7, 0);
	r.vols[0].meta = makedev(259, 12);
	r.vols[0].region_kb = 128;
	ASSERT_EQ(0, res_live_params(&r, &r.vols[0], DM_REPL_META_ROLE_PRIMARY, buf,
				     sizeof(buf)));
	EXPECT_STREQ("7:0 259:12 vm1 primary 8 ring_mb 256 region_kb 128 overflow bitmap "
		     "block_ms 100", buf);
	ASSERT_EQ(0, res_live_params(&r, &r.vols[0], DM_REPL_META_ROLE_SECONDARY, buf,
				     sizeof(buf)));
	EXPECT_STREQ("7:0 259:12 vm1 secondary 6 ring_mb 256 region_kb 128 source vm1b", buf);
	dmrepl_conf_free(&r.conf);
}

TEST(a_table_that_does_not_fit_is_refused)
{
	char buf[40];
	struct res r;

	load(&r, "alpha");
	EXPECT_EQ(-ENAMETOOLONG, res_params(&r, &r.vols[0], DM_REPL_META_ROLE_SECONDARY, buf,
					    sizeof(buf)));
	EXPECT_EQ(-ENAMETOOLONG, res_live_params(&r, &r.vols[0], DM_REPL_META_ROLE_PRIMARY,
						 buf, 20));
	EXPECT_EQ(-ENAMETOOLONG, res_live_params(&r, &r.vols[0], DM_REPL_META_ROLE_PRIMARY,
						 buf, sizeof(buf)));
	dmrepl_conf_free(&r.conf);
}

TEST(the_kernels_refusals_are_put_in_words)
{
	EXPECT_NE(NULL, strstr(res_role_refusal(DM_REPL_META_ROLE_SECONDARY, EBUSY),
			       "records are not yet released to the peer"));
	EXPECT_NE(NULL, strstr(res_role_refusal(DM_REPL_META_ROLE_PRIMARY, EBUSY),
			       "outdated past a gap"));
	EXPECT_NE(NULL, strstr(res_role_refusal(DM_REPL_META_ROLE_SECONDARY, EPERM),
			       "not secondary"));
}

/* ---- command lines ------------------------------------------------------- */

FIXTURE(files) {
	char dir[64];
	struct run r;
};

static void make_file(const char *dir, const char *name, off_t size)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f || ftruncate(fileno(f), size) || fclose(f))
		abort();
}

/* A resource file whose volumes are regular files of dir. */
FIXTURE_SETUP(files)
{
	char path[128];
	FILE *f;

	memset(&self->r, 0, sizeof(self->r));
	snprintf(self->dir, sizeof(self->dir), "/tmp/dmrepl-res-XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->dir));
	make_file(self->dir, "d0", 1 << 20);
	make_file(self->dir, "m0", 256 << 10);
	snprintf(path, sizeof(path), "%s/vm1.conf", self->dir);
	f = fopen(path, "w");
	ASSERT_NE(NULL, f);
	fprintf(f, "group vm1 { tls { psk /p; }\n"
		"site alpha { host alpha; address 192.0.2.1;\n"
		"  volume 3 { data %s/d0; meta %s/m0; } }\n"
		"site beta { host beta; address 192.0.2.2; group vm1b;\n"
		"  volume 3 { data %s/d0; meta %s/m0; } } }\n",
		self->dir, self->dir, self->dir, self->dir);
	ASSERT_EQ(0, fclose(f));
}

FIXTURE_TEARDOWN(files)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", self->dir);
	if (system(cmd))
		TH_LOG("cannot remove %s", self->dir);
	free(self->r.out);
}

TEST_F(files, create_md_writes_the_sites_kernel_group_role_and_volume)
{
	char meta[128];

	snprintf(meta, sizeof(meta), "%s/m0", self->dir);
	run_tool(&self->r, "create-md", "vm1", "--site", "beta", "--role", "secondary",
		 "--config-dir", self->dir, NULL);
	ASSERT_EQ(0, self->r.status);
	EXPECT_NE(NULL, strstr(self->r.out, "group vm1b, secondary, volume index 3"));
	run_tool(&self->r, "meta", "show", "--json", meta, NULL);
	ASSERT_EQ(0, self->r.status);
	EXPECT_NE(NULL, strstr(self->r.out, "\"group\":\"vm1b\""));
	EXPECT_NE(NULL, strstr(self->r.out, "\"role\":\"secondary\""));
	EXPECT_NE(NULL, strstr(self->r.out, "\"volume\":3"));
}

TEST_F(files, create_md_keeps_existing_metadata_without_force)
{
	run_tool(&self->r, "create-md", "vm1", "--site", "alpha", "--role", "primary",
		 "--config-dir", self->dir, NULL);
	ASSERT_EQ(0, self->r.status);
	run_tool(&self->r, "create-md", "vm1", "--site", "alpha", "--role", "primary",
		 "--config-dir", self->dir, NULL);
	EXPECT_EQ(1, self->r.status);
	EXPECT_NE(NULL, strstr(self->r.err, "holds dm-repl metadata of group \"vm1\""));
	EXPECT_NE(NULL, strstr(self->r.err, "use --force"));
	run_tool(&self->r, "create-md", "vm1", "--site", "alpha", "--role", "primary",
		 "--force", "--config-dir", self->dir, NULL);
	EXPECT_EQ(0, self->r.status);
}

TEST_F(files, create_md_needs_a_role)
{
	run_tool(&self->r, "create-md", "vm1", "--config-dir", self->dir, NULL);
	EXPECT_EQ(2, self->r.status);
	EXPECT_NE(NULL, strstr(self->r.err, "--role is required"));
}

TEST_F(files, up_wants_block_devices)
{
	run_tool(&self->r, "up", "vm1", "--site", "alpha", "--config-dir", self->dir, NULL);
	EXPECT_EQ(1, self->r.status);
	EXPECT_NE(NULL, strstr(self->r.err, "vm1: volume 3: data "));
	EXPECT_NE(NULL, strstr(self->r.err, "/d0: not a block device"));
}

TEST_F(files, a_missing_resource_file_is_named)
{
	char want[128];

	snprintf(want, sizeof(want), "%s/vm2.conf: ", self->dir);
	run_tool(&self->r, "down", "vm2", "--config-dir", self->dir, NULL);
	EXPECT_EQ(1, self->r.status);
	EXPECT_NE(NULL, strstr(self->r.err, want));
}

TEST_F(files, an_unknown_site_is_named)
{
	run_tool(&self->r, "primary", "vm1", "--site", "gamma", "--config-dir", self->dir,
		 NULL);
	EXPECT_EQ(1, self->r.status);
	EXPECT_NE(NULL, strstr(self->r.err, "gamma"));
}

TEST(a_bad_group_name_is_a_usage_error)
{
	struct run r = { 0 };

	run_tool(&r, "up", "../vm1", NULL);
	EXPECT_EQ(2, r.status);
	EXPECT_NE(NULL, strstr(r.err, "bad group name \"../vm1\""));
	run_tool(&r, "secondary", ".vm1", NULL);
	EXPECT_EQ(2, r.status);
	free(r.out);
}

TEST(usage_errors_exit_2)
{
	struct run r = { 0 };

	run_tool(&r, "secondary", "--wait", "0", "vm1", NULL);
	EXPECT_EQ(2, r.status);
	EXPECT_NE(NULL, strstr(r.err, "--wait wants seconds"));
	run_tool(&r, "primary", "--wait", "5", "vm1", NULL);
	EXPECT_EQ(2, r.status);
	run_tool(&r, "down", NULL);
	EXPECT_EQ(2, r.status);
	EXPECT_NE(NULL, strstr(r.err, "missing GROUP"));
	run_tool(&r, "up", "vm1", "vm2", NULL);
	EXPECT_EQ(2, r.status);
	run_tool(&r, "create-md", "--role", "tertiary", "vm1", NULL);
	EXPECT_EQ(2, r.status);
	free(r.out);
}

TEST(each_verb_has_its_help)
{
	static const char *const verbs[] = { "create-md", "up", "down", "primary", "secondary" };
	char want[64];
	struct run r = { 0 };
	size_t i;

	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		run_tool(&r, verbs[i], "--help", NULL);
		EXPECT_EQ(0, r.status);
		snprintf(want, sizeof(want), "Usage: repltool %s ", verbs[i]);
		EXPECT_EQ(0, strncmp(r.out, want, strlen(want)));
	}
	free(r.out);
}

TEST_HARNESS_MAIN
