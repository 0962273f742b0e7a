// SPDX-License-Identifier: GPL-2.0
/*
 * The TLS layer (dmrepl_tls_*): handshakes in certificate and PSK mode over
 * a socketpair, the server in a thread; data through the non-blocking
 * calls; every refusal with its reason; bad settings.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "dmrepl_tls.h"
#include "kselftest_harness.h"

#define TIMEOUT_MS 10000
#define SHORT_MS 200
#define ECHO_LEN (1U << 20)
#define PSK_ID "dm-repl test group"

/*
 * Made by tests/lib/mkcerts.sh once, before the harness forks a child per
 * test; removed when the harness exits (children leave with _exit()).
 * Empty when mkcerts.sh failed.
 */
static char certs[32];

static void __attribute__((constructor)) make_certs(void)
{
	char exe[PATH_MAX], cmd[PATH_MAX + 128];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n <= 0)
		return;
	exe[n] = '\0';
	strcpy(certs, "/tmp/test_tls.XXXXXX");
	if (!mkdtemp(certs)) {
		certs[0] = '\0';
		return;
	}
	snprintf(cmd, sizeof(cmd), "bash '%s/../lib/mkcerts.sh' %s alpha beta",
		 dirname(exe), certs);
	if (system(cmd) != 0) {
		fprintf(stderr, "# %s failed\n", cmd);
		rmdir(certs);
		certs[0] = '\0';
	}
}

static void __attribute__((destructor)) remove_certs(void)
{
	char cmd[64];

	if (!certs[0])
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", certs);
	if (system(cmd) != 0)
		fprintf(stderr, "# could not remove %s\n", certs);
}

static const char *cert_file(char *buf, const char *name, const char *ext)
{
	snprintf(buf, PATH_MAX, "%s/%s.%s", certs, name, ext);
	return buf;
}

/* Certificate mode: trust ca, present name, expect peer. NULL: the error is logged. */
static struct dmrepl_tls *cert_tls(const char *ca, const char *name, const char *peer,
				   bool server)
{
	char cap[PATH_MAX], crt[PATH_MAX], key[PATH_MAX], err[512];
	struct dmrepl_tls_conf c = {
		.ca = cert_file(cap, ca, "crt"),
		.certificate = cert_file(crt, name, "crt"),
		.key = cert_file(key, name, "key"),
		.peer_identity = peer,
	};
	struct dmrepl_tls *t = dmrepl_tls_new(&c, server, err, sizeof(err));

	if (!t)
		fprintf(stderr, "# %s\n", err);
	return t;
}

/* The 32 bytes whose hex digits mkcerts.sh wrote into certs/psk. */
static int read_psk(unsigned char *key)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/psk", certs);
	f = fopen(path, "r");
	unsigned int i, byte;
	int ret = 0;

	if (!f)
		return -1;
	for (i = 0; i < 32 && !ret; i++)
		if (fscanf(f, "%2x", &byte) == 1)
			key[i] = (unsigned char)byte;
		else
			ret = -1;
	fclose(f);
	return ret;
}

/* PSK mode with our key, its first byte changed when wrong_key. */
static struct dmrepl_tls *psk_tls(const char *identity, bool wrong_key, bool server)
{
	unsigned char key[32];
	struct dmrepl_tls_conf c = {
		.psk_mode = true, .psk = key, .psk_len = sizeof(key),
		.psk_identity = identity,
	};
	struct dmrepl_tls *t;
	char err[512];

	if (read_psk(key))
		return NULL;
	key[0] ^= wrong_key;
	t = dmrepl_tls_new(&c, server, err, sizeof(err));
	if (!t)
		fprintf(stderr, "# %s\n", err);
	return t;
}

/* One end of the socketpair. */
struct side {
	struct dmrepl_tls *t;
	int fd;			/* -1 once given to dmrepl_tls_handshake() */
	int timeout_ms;
	struct dmrepl_tls_conn *conn;
	int ret;
	char err[512];
};

static void *handshake(void *arg)
{
	struct side *s = arg;
	int fd = s->fd;

	s->fd = -1;
	s->ret = dmrepl_tls_handshake(s->t, fd, s->timeout_ms, &s->conn, s->err,
				      sizeof(s->err));
	return NULL;
}

FIXTURE(tls) {
	struct side srv, cli;
	pthread_t srv_thread;
};

FIXTURE_SETUP(tls)
{
	int sv[2];

	ASSERT_NE(0, certs[0]) TH_LOG("tests/lib/mkcerts.sh did not run");
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	self->srv.fd = sv[0];
	self->cli.fd = sv[1];
	self->srv.timeout_ms = TIMEOUT_MS;
	self->cli.timeout_ms = TIMEOUT_MS;
}

static void side_free(struct side *s)
{
	dmrepl_tls_close(s->conn);
	dmrepl_tls_free(s->t);
	if (s->fd >= 0)
		close(s->fd);
}

FIXTURE_TEARDOWN(tls)
{
	side_free(&self->srv);
	side_free(&self->cli);
}

/* Start the server's handshake in a thread; join_server() waits for it. */
static int start_server(FIXTURE_DATA(tls) *self)
{
	return pthread_create(&self->srv_thread, NULL, handshake, &self->srv);
}

static int join_server(FIXTURE_DATA(tls) *self)
{
	return pthread_join(self->srv_thread, NULL);
}

/* Both handshakes at once: the server's in a thread, the client's here. */
static int handshake_both(FIXTURE_DATA(tls) *self)
{
	if (start_server(self))
		return -1;
	handshake(&self->cli);
	return join_server(self);
}

#define EXPECT_SAYS(text, word) \
	EXPECT_NE(NULL, strstr(text, word)) TH_LOG("\"%s\" does not say \"%s\"", text, word)

/*
 * The server refused: no connection, so no application data could reach
 * it, and its message names the reason.
 */
#define ASSERT_SERVER_REFUSED(self, word) do { \
	ASSERT_GT(0, (self)->srv.ret); \
	ASSERT_EQ(NULL, (self)->srv.conn); \
	EXPECT_SAYS((self)->srv.err, word); \
} while (0)

#define ASSERT_CLIENT_REFUSED(self, word) do { \
	ASSERT_GT(0, (self)->cli.ret); \
	ASSERT_EQ(NULL, (self)->cli.conn); \
	EXPECT_SAYS((self)->cli.err, word); \
} while (0)

/* Read until something other than -EAGAIN comes, polling as asked. */
static ssize_t read_wait(struct dmrepl_tls_conn *c, void *buf, size_t len)
{
	struct pollfd p = { .fd = dmrepl_tls_fd(c) };
	ssize_t n;

	while ((n = dmrepl_tls_read(c, buf, len)) == -EAGAIN) {
		p.events = dmrepl_tls_events(c);
		if (poll(&p, 1, TIMEOUT_MS) <= 0)
			return -ETIMEDOUT;
	}
	return n;
}

TEST_F(tls, certificate_mode_authenticates_both_sides_and_names_the_peer)
{
	self->srv.t = cert_tls("ca", "beta", "alpha", true);
	self->cli.t = cert_tls("ca", "alpha", "beta", false);
	ASSERT_NE(NULL, self->srv.t);
	ASSERT_NE(NULL, self->cli.t);
	ASSERT_EQ(0, handshake_both(self));
	ASSERT_EQ(0, self->srv.ret) TH_LOG("server: %s", self->srv.err);
	ASSERT_EQ(0, self->cli.ret) TH_LOG("client: %s", self->cli.err);
	EXPECT_STREQ("alpha", dmrepl_tls_peer(self->srv.conn));
	EXPECT_STREQ("beta", dmrepl_tls_peer(self->cli.conn));
}

TEST_F(tls, certificate_mode_works_with_the_roles_swapped)
{
	self->srv.t = cert_tls("ca", "alpha", "beta", true);
	self->cli.t = cert_tls("ca", "beta", "alpha", false);
	ASSERT_NE(NULL, self->srv.t);
	ASSERT_NE(NULL, self->cli.t);
	ASSERT_EQ(0, handshake_both(self));
	ASSERT_EQ(0, self->srv.ret) TH_LOG("server: %s", self->srv.err);
	ASSERT_EQ(0, self->cli.ret) TH_LOG("client: %s", self->cli.err);
	EXPECT_STREQ("beta", dmrepl_tls_peer(self->srv.conn));
	EXPECT_STREQ("alpha", dmrepl_tls_peer(self->cli.conn));
}

/* One end of the echo: writes out, reads into in, until ECHO_LEN each way. */
struct pump {
	struct dmrepl_tls_conn *c;
	const unsigned char *out;
	unsigned char *in;
	bool echo;		/* out is in: send what was received */
	size_t sent, got;
	int ret;
};

/* Read once if reads remain: 1 moved bytes, 0 would block (events set), <0. */
static int pump_read(struct pump *p, short *events)
{
	ssize_t n;

	if (p->got == ECHO_LEN)
		return 0;
	n = dmrepl_tls_read(p->c, p->in + p->got, ECHO_LEN - p->got);
	if (n > 0) {
		p->got += (size_t)n;
		return 1;
	}
	if (n == -EAGAIN) {
		*events |= dmrepl_tls_events(p->c);
		return 0;
	}
	return n ? (int)n : -ECONNRESET;
}

static int pump_write(struct pump *p, short *events)
{
	size_t avail = p->echo ? p->got : ECHO_LEN;
	ssize_t n;

	if (p->sent == avail)
		return 0;
	n = dmrepl_tls_write(p->c, p->out + p->sent, avail - p->sent);
	if (n > 0) {
		p->sent += (size_t)n;
		return 1;
	}
	if (n == -EAGAIN) {
		*events |= dmrepl_tls_events(p->c);
		return 0;
	}
	return (int)n;
}

static void *pump_run(void *arg)
{
	struct pump *p = arg;
	struct pollfd pfd = { .fd = dmrepl_tls_fd(p->c) };
	int r, w;

	while (p->got < ECHO_LEN || p->sent < ECHO_LEN) {
		pfd.events = 0;
		r = pump_read(p, &pfd.events);
		w = pump_write(p, &pfd.events);
		if (r < 0 || w < 0) {
			p->ret = r < 0 ? r : w;
			return NULL;
		}
		/* Decrypted bytes in OpenSSL's buffer never wake poll(). */
		if (r || w || dmrepl_tls_pending(p->c))
			continue;
		if (poll(&pfd, 1, TIMEOUT_MS) <= 0) {
			p->ret = -ETIMEDOUT;
			return NULL;
		}
	}
	p->ret = 0;
	return NULL;
}

TEST_F(tls, one_mib_echoes_through_nonblocking_reads_and_writes)
{
	unsigned char *src = malloc(ECHO_LEN), *dst = malloc(ECHO_LEN), *mid = malloc(ECHO_LEN);
	struct pump cli = { .out = src, .in = dst };
	struct pump srv = { .out = mid, .in = mid, .echo = true };
	pthread_t th;
	size_t i;

	ASSERT_NE(NULL, src);
	ASSERT_NE(NULL, dst);
	ASSERT_NE(NULL, mid);
	for (i = 0; i < ECHO_LEN; i++)
		src[i] = (unsigned char)(i * 2654435761U >> 13);
	self->srv.t = cert_tls("ca", "beta", "alpha", true);
	self->cli.t = cert_tls("ca", "alpha", "beta", false);
	ASSERT_EQ(0, handshake_both(self));
	ASSERT_EQ(0, self->srv.ret) TH_LOG("server: %s", self->srv.err);
	ASSERT_EQ(0, self->cli.ret) TH_LOG("client: %s", self->cli.err);
	srv.c = self->srv.conn;
	cli.c = self->cli.conn;
	ASSERT_EQ(0, pthread_create(&th, NULL, pump_run, &srv));
	pump_run(&cli);
	ASSERT_EQ(0, pthread_join(th, NULL));
	EXPECT_EQ(0, srv.ret) TH_LOG("server: %s", dmrepl_tls_error(srv.c));
	EXPECT_EQ(0, cli.ret) TH_LOG("client: %s", dmrepl_tls_error(cli.c));
	EXPECT_EQ(0, memcmp(src, dst, ECHO_LEN));
	free(src);
	free(dst);
	free(mid);
}

TEST_F(tls, pending_counts_decrypted_bytes_readable_without_poll)
{
	char buf[16];

	self->srv.t = psk_tls(PSK_ID, false, true);
	self->cli.t = psk_tls(PSK_ID, false, false);
	ASSERT_EQ(0, handshake_both(self));
	ASSERT_EQ(0, self->srv.ret) TH_LOG("server: %s", self->srv.err);
	ASSERT_EQ(0, self->cli.ret) TH_LOG("client: %s", self->cli.err);
	ASSERT_EQ(10, dmrepl_tls_write(self->cli.conn, "0123456789", 10));
	ASSERT_EQ(1, read_wait(self->srv.conn, buf, 1));
	ASSERT_EQ(9U, dmrepl_tls_pending(self->srv.conn));
	ASSERT_EQ(9, dmrepl_tls_read(self->srv.conn, buf + 1, sizeof(buf) - 1));
	ASSERT_EQ(0, memcmp(buf, "0123456789", 10));
	ASSERT_EQ(0U, dmrepl_tls_pending(self->srv.conn));
	ASSERT_EQ(-EAGAIN, dmrepl_tls_read(self->srv.conn, buf, sizeof(buf)));
	ASSERT_EQ(POLLIN, dmrepl_tls_events(self->srv.conn));
}

/* Small records: one recv() takes several whole ones (a record's wire size: */
#define RECORD 10
/* 5 bytes of header, the data, the content type and a 16-byte tag). */
#define RECORD_WIRE (5 + RECORD + 1 + 16)

/*
 * Whole records read ahead from the socket count as pending: the socket has
 * nothing left for poll(2) to report, but each read returns one of them.
 */
TEST_F(tls, records_read_ahead_count_as_pending_until_read)
{
	static const char src[3][RECORD] = { "record 0.", "record 1.", "record 2." };
	struct pollfd p = { .events = POLLIN };
	char dst[RECORD];
	int i, avail = 0;

	self->srv.t = psk_tls(PSK_ID, false, true);
	self->cli.t = psk_tls(PSK_ID, false, false);
	ASSERT_EQ(0, handshake_both(self));
	ASSERT_EQ(0, self->srv.ret) TH_LOG("server: %s", self->srv.err);
	ASSERT_EQ(0, self->cli.ret) TH_LOG("client: %s", self->cli.err);
	for (i = 0; i < 3; i++)		/* one record each */
		ASSERT_EQ(RECORD, dmrepl_tls_write(self->cli.conn, src[i], RECORD));
	p.fd = dmrepl_tls_fd(self->srv.conn);
	for (i = 0; i < TIMEOUT_MS && avail < 3 * RECORD_WIRE; i++) {
		ASSERT_EQ(0, ioctl(p.fd, FIONREAD, &avail));
		if (avail < 3 * RECORD_WIRE)
			usleep(1000);
	}
	ASSERT_EQ(3 * RECORD_WIRE, avail);
	ASSERT_EQ(RECORD, read_wait(self->srv.conn, dst, sizeof(dst)));
	ASSERT_EQ(0, memcmp(src[0], dst, RECORD));
	ASSERT_EQ(0, poll(&p, 1, 0));		/* all three came in one read */
	for (i = 1; i < 3; i++) {
		ASSERT_LT(0U, dmrepl_tls_pending(self->srv.conn));
		ASSERT_EQ(RECORD, dmrepl_tls_read(self->srv.conn, dst, sizeof(dst)));
		ASSERT_EQ(0, memcmp(src[i], dst, RECORD));
	}
	ASSERT_EQ(0U, dmrepl_tls_pending(self->srv.conn));
	ASSERT_EQ(-EAGAIN, dmrepl_tls_read(self->srv.conn, dst, sizeof(dst)));
	ASSERT_EQ(0U, dmrepl_tls_pending(self->srv.conn));
}

TEST_F(tls, a_clean_close_reads_0)
{
	char buf[16];

	self->srv.t = cert_tls("ca", "beta", "alpha", true);
	self->cli.t = cert_tls("ca", "alpha", "beta", false);
	ASSERT_EQ(0, handshake_both(self));
	ASSERT_EQ(0, self->srv.ret) TH_LOG("server: %s", self->srv.err);
	ASSERT_EQ(0, self->cli.ret) TH_LOG("client: %s", self->cli.err);
	dmrepl_tls_close(self->cli.conn);
	self->cli.conn = NULL;
	EXPECT_EQ(0, read_wait(self->srv.conn, buf, sizeof(buf)))
		TH_LOG("%s", dmrepl_tls_error(self->srv.conn));
}

TEST_F(tls, a_close_without_close_notify_is_a_reset)
{
	char buf[16];

	self->srv.t = psk_tls(PSK_ID, false, true);
	self->cli.t = psk_tls(PSK_ID, false, false);
	ASSERT_EQ(0, handshake_both(self));
	ASSERT_EQ(0, self->srv.ret) TH_LOG("server: %s", self->srv.err);
	ASSERT_EQ(0, self->cli.ret) TH_LOG("client: %s", self->cli.err);
	ASSERT_EQ(0, shutdown(dmrepl_tls_fd(self->cli.conn), SHUT_WR));
	EXPECT_EQ(-ECONNRESET, read_wait(self->srv.conn, buf, sizeof(buf)));
	EXPECT_SAYS(dmrepl_tls_error(self->srv.conn), "without close_notify");
}

/* The harness would report SIGPIPE as the test's death. */
TEST_F(tls, a_write_to_a_closed_peer_is_epipe_not_sigpipe)
{
	char buf[4096] = { 0 };
	ssize_t n;
	int i;

	self->srv.t = psk_tls(PSK_ID, false, true);
	self->cli.t = psk_tls(PSK_ID, false, false);
	ASSERT_EQ(0, handshake_both(self));
	ASSERT_EQ(0, self->srv.ret) TH_LOG("server: %s", self->srv.err);
	ASSERT_EQ(0, self->cli.ret) TH_LOG("client: %s", self->cli.err);
	dmrepl_tls_close(self->srv.conn);
	self->srv.conn = NULL;
	for (i = 0, n = 1; i < 100 && n > 0; i++)
		n = dmrepl_tls_write(self->cli.conn, buf, sizeof(buf));
	EXPECT_EQ(-EPIPE, n);
	EXPECT_SAYS(dmrepl_tls_error(self->cli.conn), "Broken pipe");
}

TEST_F(tls, a_client_certificate_from_another_ca_is_refused)
{
	self->srv.t = cert_tls("ca", "beta", "rogue", true);
	self->cli.t = cert_tls("ca", "rogue", "beta", false);
	ASSERT_EQ(0, handshake_both(self));
	ASSERT_SERVER_REFUSED(self, "unable to get local issuer certificate");
	ASSERT_CLIENT_REFUSED(self, "unknown ca");
}

TEST_F(tls, a_server_certificate_from_another_ca_is_refused)
{
	self->srv.t = cert_tls("ca", "beta", "alpha", true);
	self->cli.t = cert_tls("rogue-ca", "alpha", "beta", false);
	ASSERT_EQ(0, handshake_both(self));
	ASSERT_CLIENT_REFUSED(self, "unable to get local issuer certificate");
	ASSERT_SERVER_REFUSED(self, "unknown ca");
}

TEST_F(tls, the_server_refuses_a_client_with_another_identity)
{
	self->srv.t = cert_tls("ca", "beta", "gamma", true);
	self->cli.t = cert_tls("ca", "alpha", "beta", false);
	ASSERT_EQ(0, handshake_both(self));
	ASSERT_SERVER_REFUSED(self, "hostname mismatch");
	EXPECT_SAYS(self->srv.err, "\"gamma\"");
	EXPECT_SAYS(self->srv.err, "CN=alpha");
	ASSERT_CLIENT_REFUSED(self, "alert");
}

TEST_F(tls, the_client_refuses_a_server_with_another_identity)
{
	self->srv.t = cert_tls("ca", "beta", "alpha", true);
	self->cli.t = cert_tls("ca", "alpha", "gamma", false);
	ASSERT_EQ(0, handshake_both(self));
	ASSERT_CLIENT_REFUSED(self, "hostname mismatch");
	EXPECT_SAYS(self->cli.err, "\"gamma\"");
	ASSERT_SERVER_REFUSED(self, "alert");
}

TEST_F(tls, an_expired_certificate_is_refused)
{
	self->srv.t = cert_tls("ca", "beta", "expired", true);
	self->cli.t = cert_tls("ca", "expired", "beta", false);
	ASSERT_EQ(0, handshake_both(self));
	ASSERT_SERVER_REFUSED(self, "certificate has expired");
	ASSERT_CLIENT_REFUSED(self, "expired");
}

/* dmrepl_tls_new() wants a certificate: this client is OpenSSL's own. */
TEST_F(tls, a_client_without_certificate_is_refused_before_its_data)
{
	char path[PATH_MAX], buf[16];
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl;

	/* Should the server have closed already, the write must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	ASSERT_NE(NULL, ctx);
	ASSERT_EQ(1, SSL_CTX_load_verify_locations(ctx, cert_file(path, "ca", "crt"), NULL));
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	ssl = SSL_new(ctx);
	ASSERT_NE(NULL, ssl);
	ASSERT_EQ(1, SSL_set_fd(ssl, self->cli.fd));
	self->srv.t = cert_tls("ca", "beta", "alpha", true);
	ASSERT_EQ(0, start_server(self));
	/* TLS 1.3: the client is done before the server has judged it. */
	EXPECT_EQ(1, SSL_connect(ssl));
	/* It fails if the server has refused already: nothing gets through either way. */
	SSL_write(ssl, "secret", 6);
	ASSERT_EQ(0, join_server(self));
	ASSERT_SERVER_REFUSED(self, "peer did not return a certificate");
	EXPECT_GE(0, SSL_read(ssl, buf, sizeof(buf)));
	SSL_free(ssl);
	SSL_CTX_free(ctx);
}

/* A peer that writes bytes, not TLS: the server must refuse, not wait. */
static void raw_client(struct __test_metadata *_metadata, FIXTURE_DATA(tls) *self,
		       const void *bytes, size_t len)
{
	self->srv.t = cert_tls("ca", "beta", "alpha", true);
	ASSERT_NE(NULL, self->srv.t);
	ASSERT_EQ(0, start_server(self));
	ASSERT_EQ((ssize_t)len, send(self->cli.fd, bytes, len, MSG_NOSIGNAL));
	ASSERT_EQ(0, join_server(self));
}

TEST_F(tls, a_plaintext_client_is_refused)
{
	raw_client(_metadata, self, "HELLO\r\n", 7);
	ASSERT_SERVER_REFUSED(self, "wrong version number");
}

TEST_F(tls, garbage_in_a_handshake_record_is_refused)
{
	unsigned char bytes[64] = { 0x16, 0x03, 0x01, 0x00, sizeof(bytes) - 5 };
	size_t i;

	for (i = 5; i < sizeof(bytes); i++)
		bytes[i] = (unsigned char)(i * 151 + 7);
	raw_client(_metadata, self, bytes, sizeof(bytes));
	ASSERT_SERVER_REFUSED(self, "unexpected message");
}

static long long elapsed_ms(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000LL + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

TEST_F(tls, a_server_handshake_with_a_silent_client_times_out)
{
	struct timespec t0;

	self->srv.t = cert_tls("ca", "beta", "alpha", true);
	self->srv.timeout_ms = SHORT_MS;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	handshake(&self->srv);
	EXPECT_GE(elapsed_ms(&t0), SHORT_MS);
	ASSERT_EQ(-ETIMEDOUT, self->srv.ret);
	ASSERT_EQ(NULL, self->srv.conn);
	EXPECT_SAYS(self->srv.err, "timed out after 200 ms");
}

/* Over TCP, the message names the peer by address and port. */
TEST_F(tls, a_refusal_names_the_peer_address)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	char want[64];

	ASSERT_LE(0, lfd);
	ASSERT_EQ(0, bind(lfd, (struct sockaddr *)&a, sizeof(a)));
	ASSERT_EQ(0, listen(lfd, 1));
	ASSERT_EQ(0, getsockname(lfd, (struct sockaddr *)&a, &alen));
	close(self->cli.fd);
	self->cli.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_EQ(0, connect(self->cli.fd, (struct sockaddr *)&a, sizeof(a)));
	ASSERT_EQ(0, getsockname(self->cli.fd, (struct sockaddr *)&a, &alen));
	close(self->srv.fd);
	self->srv.fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	close(lfd);
	ASSERT_LE(0, self->srv.fd);
	raw_client(_metadata, self, "HELLO\r\n", 7);
	snprintf(want, sizeof(want), "TLS handshake with 127.0.0.1:%u: ", ntohs(a.sin_port));
	ASSERT_SERVER_REFUSED(self, want);
	EXPECT_SAYS(self->srv.err, "not TLS records");
}

TEST_F(tls, a_client_handshake_with_a_silent_server_times_out)
{
	self->cli.t = psk_tls(PSK_ID, false, false);
	self->cli.timeout_ms = SHORT_MS;
	handshake(&self->cli);
	ASSERT_CLIENT_REFUSED(self, "timed out");
	EXPECT_EQ(-ETIMEDOUT, self->cli.ret);
}

TEST_F(tls, psk_mode_succeeds_and_names_the_identity)
{
	self->srv.t = psk_tls(PSK_ID, false, true);
	self->cli.t = psk_tls(PSK_ID, false, false);
	ASSERT_NE(NULL, self->srv.t);
	ASSERT_NE(NULL, self->cli.t);
	ASSERT_EQ(0, handshake_both(self));
	ASSERT_EQ(0, self->srv.ret) TH_LOG("server: %s", self->srv.err);
	ASSERT_EQ(0, self->cli.ret) TH_LOG("client: %s", self->cli.err);
	EXPECT_STREQ(PSK_ID, dmrepl_tls_peer(self->srv.conn));
	EXPECT_STREQ(PSK_ID, dmrepl_tls_peer(self->cli.conn));
}

TEST_F(tls, a_wrong_psk_is_refused)
{
	self->srv.t = psk_tls(PSK_ID, false, true);
	self->cli.t = psk_tls(PSK_ID, true, false);
	ASSERT_EQ(0, handshake_both(self));
	ASSERT_SERVER_REFUSED(self, "pre-shared key differs");
	ASSERT_CLIENT_REFUSED(self, "alert");
}

TEST_F(tls, a_wrong_psk_identity_is_refused)
{
	self->srv.t = psk_tls(PSK_ID, false, true);
	self->cli.t = psk_tls("another group", false, false);
	ASSERT_EQ(0, handshake_both(self));
	ASSERT_SERVER_REFUSED(self, "PSK identity \"another group\" is not");
	ASSERT_CLIENT_REFUSED(self, "alert");
}

TEST_F(tls, a_certificate_mode_client_is_refused_by_a_psk_server)
{
	self->srv.t = psk_tls(PSK_ID, false, true);
	self->cli.t = cert_tls("ca", "alpha", "beta", false);
	ASSERT_EQ(0, handshake_both(self));
	ASSERT_SERVER_REFUSED(self, "offered no pre-shared key");
	ASSERT_CLIENT_REFUSED(self, "alert");
}

TEST(a_missing_certificate_file_is_named)
{
	struct dmrepl_tls_conf c = {
		.ca = "/nonexistent/ca.crt", .certificate = "/nonexistent/x.crt",
		.key = "/nonexistent/x.key", .peer_identity = "beta",
	};
	char err[512];

	ASSERT_NE(0, certs[0]);
	ASSERT_EQ(NULL, dmrepl_tls_new(&c, false, err, sizeof(err)));
	EXPECT_STREQ("CA /nonexistent/ca.crt: No such file or directory", err);
}

TEST(a_key_that_does_not_match_the_certificate_is_refused)
{
	char ca[PATH_MAX], crt[PATH_MAX], key[PATH_MAX], err[512], want[3 * PATH_MAX];
	struct dmrepl_tls_conf c = {
		.ca = cert_file(ca, "ca", "crt"),
		.certificate = cert_file(crt, "alpha", "crt"),
		.key = cert_file(key, "beta", "key"),
		.peer_identity = "beta",
	};

	ASSERT_NE(0, certs[0]);
	ASSERT_EQ(NULL, dmrepl_tls_new(&c, true, err, sizeof(err)));
	snprintf(want, sizeof(want), "key %s does not match certificate %s", key, crt);
	EXPECT_STREQ(want, err);
}

TEST(a_short_psk_is_refused)
{
	static const unsigned char key[DMREPL_TLS_PSK_MIN - 1];
	struct dmrepl_tls_conf c = {
		.psk_mode = true, .psk = key, .psk_len = sizeof(key), .psk_identity = PSK_ID,
	};
	char err[512];

	ASSERT_EQ(NULL, dmrepl_tls_new(&c, true, err, sizeof(err)));
	EXPECT_STREQ("pre-shared key of 15 bytes: at least 16 needed", err);
}

TEST_HARNESS_MAIN
