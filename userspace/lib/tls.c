// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The TLS 1.3 layer of the replication link: an OpenSSL context per group
 * and role, a socket BIO that sends with MSG_NOSIGNAL, a handshake under a
 * deadline, then non-blocking reads and writes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "dmrepl_tls.h"

/* The one cipher suite, in both modes; 0x13,0x02 is its IANA code point. */
#define CIPHER_SUITE "TLS_AES_256_GCM_SHA384"
static const unsigned char cipher_suite_id[2] = { 0x13, 0x02 };

/* What the server sends once it has accepted the client (ASCII ACK). */
#define ACCEPTED 0x06

#define MSG_LEN 320

/*
 * The most a recv() takes: a whole TLS 1.3 record of application data
 * (header, 16 KiB, content type, AES-GCM tag). See bio_read().
 */
#define RECV_MAX (SSL3_RT_HEADER_LENGTH + SSL3_RT_MAX_PLAIN_LENGTH + 1 + EVP_GCM_TLS_TAG_LEN)

struct dmrepl_tls {
	SSL_CTX *ctx;
	BIO_METHOD *bio_meth;
	bool server;
	bool psk_mode;
	char *peer_identity;	/* certificate mode */
	char *psk_identity;	/* PSK mode */
	SSL_SESSION *psk_sess;	/* PSK mode: the key, its cipher and version */
};

struct dmrepl_tls_conn {
	struct dmrepl_tls *t;
	SSL *ssl;
	int fd;
	short events;		/* what the last -EAGAIN waits for */
	bool eof;		/* recv() returned 0 */
	bool failed;		/* a fatal error: no close_notify then */
	bool read_blocked;	/* the last read said -EAGAIN */
	int sys_errno;		/* of the last recv() or send() that failed */
	/* A PSK server keeps what the client offered, to explain a refusal. */
	bool psk_offered;
	bool psk_unknown;
	char offered[64];
	char refused_subject[128];	/* the certificate verification refused */
	char peer[256];
	char error[MSG_LEN];
};

static void say(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void say(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!buf || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/* The oldest error in OpenSSL's queue, in words, into buf; empties the queue. */
static const char *ossl_reason(char *buf, size_t len)
{
	unsigned long e = ERR_peek_error();
	const char *r = ERR_reason_error_string(e);

	if (!e)
		say(buf, len, "unknown TLS error");
	else if (r)
		say(buf, len, "%s", r);
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

/* ------------------------------------------------------------------ */
/* A socket BIO that never raises SIGPIPE                              */
/* ------------------------------------------------------------------ */

static int bio_write(BIO *b, const char *buf, size_t len, size_t *done)
{
	struct dmrepl_tls_conn *c = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	do
		n = send(c->fd, buf, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno == EAGAIN)
			BIO_set_retry_write(b);
		else
			c->sys_errno = errno;
		return 0;
	}
	*done = (size_t)n;
	return 1;
}

static int bio_read(BIO *b, char *buf, size_t len, size_t *done)
{
	struct dmrepl_tls_conn *c = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	/*
	 * Reading ahead, OpenSSL asks for as much as its buffer holds, and
	 * before each record moves what is left to the front of the buffer
	 * (to align it). At most a record a call, the rest of a record and
	 * the next one's header come in one recv() and nearly nothing is
	 * left to move.
	 */
	if (len > RECV_MAX)
		len = RECV_MAX;
	do
		n = recv(c->fd, buf, len, 0);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		if (n == 0)
			c->eof = true;
		else if (errno == EAGAIN)
			BIO_set_retry_read(b);
		else
			c->sys_errno = errno;
		return 0;
	}
	*done = (size_t)n;
	return 1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct dmrepl_tls_conn *c = BIO_get_data(b);

	(void)num;
	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;	/* send() keeps nothing back */
	case BIO_CTRL_EOF:
		/* Lets OpenSSL tell a truncated stream from a socket error. */
		return c->eof;
	default:
		return 0;
	}
}

static BIO_METHOD *bio_meth_new(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_TYPE_SOURCE_SINK, "dmrepl socket");

	if (m && BIO_meth_set_write_ex(m, bio_write) &&
	    BIO_meth_set_read_ex(m, bio_read) && BIO_meth_set_ctrl(m, bio_ctrl))
		return m;
	BIO_meth_free(m);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Contexts                                                            */
/* ------------------------------------------------------------------ */

static int new_ctx(struct dmrepl_tls *t, char *err, size_t errlen)
{
	char why[MSG_LEN];

	t->ctx = SSL_CTX_new(t->server ? TLS_server_method() : TLS_client_method());
	t->bio_meth = bio_meth_new();
	if (!t->ctx || !t->bio_meth ||
	    !SSL_CTX_set_min_proto_version(t->ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(t->ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_ciphersuites(t->ctx, CIPHER_SUITE) ||
	    !SSL_CTX_set_num_tickets(t->ctx, 0)) {
		say(err, errlen, "TLS context: %s", ossl_reason(why, sizeof(why)));
		return -1;
	}
	SSL_CTX_set_options(t->ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_OFF);
	/* The chain sent is the certificate file, not completed from the CA file. */
	SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
			 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_NO_AUTO_CHAIN);
	/*
	 * One recv() a record instead of two (its header, then its body):
	 * the body and the next header come together (see bio_read()).
	 */
	SSL_CTX_set_read_ahead(t->ctx, 1);
	return 0;
}

/* Can path be opened? Says why not, with what the file is for. */
static int check_file(const char *what, const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		say(err, errlen, "%s %s: %s", what, path, strerror(errno));
		return -1;
	}
	close(fd);
	return 0;
}

static bool unset(const char *s)
{
	return !s || !*s;
}

static int load_ca(struct dmrepl_tls *t, const char *ca, char *err, size_t errlen)
{
	char why[MSG_LEN];

	if (check_file("CA", ca, err, errlen))
		return -1;
	if (SSL_CTX_load_verify_locations(t->ctx, ca, NULL) != 1) {
		say(err, errlen, "CA %s: %s", ca, ossl_reason(why, sizeof(why)));
		return -1;
	}
	return 0;
}

static int load_pair(struct dmrepl_tls *t, const struct dmrepl_tls_conf *c,
		     char *err, size_t errlen)
{
	char why[MSG_LEN];

	if (check_file("certificate", c->certificate, err, errlen) ||
	    check_file("key", c->key, err, errlen))
		return -1;
	if (SSL_CTX_use_PrivateKey_file(t->ctx, c->key, SSL_FILETYPE_PEM) != 1) {
		say(err, errlen, "key %s: %s", c->key, ossl_reason(why, sizeof(why)));
		return -1;
	}
	if (SSL_CTX_use_certificate_chain_file(t->ctx, c->certificate) != 1) {
		say(err, errlen, "certificate %s: %s", c->certificate,
		    ossl_reason(why, sizeof(why)));
		return -1;
	}
	/* A certificate that does not match makes OpenSSL drop the key: this fails. */
	if (SSL_CTX_check_private_key(t->ctx) != 1) {
		ERR_clear_error();
		say(err, errlen, "key %s does not match certificate %s", c->key,
		    c->certificate);
		return -1;
	}
	return 0;
}

/* The subject of cert, in RFC 2253 form, into buf ("" if it cannot be had). */
static void subject_of(X509 *cert, char *buf, size_t len)
{
	BIO *mem = BIO_new(BIO_s_mem());
	int n = -1;

	if (mem && X509_NAME_print_ex(mem, X509_get_subject_name(cert), 0,
				      XN_FLAG_RFC2253) >= 0)
		n = BIO_read(mem, buf, (int)len - 1);
	buf[n > 0 ? n : 0] = '\0';
	BIO_free(mem);
}

/*
 * Verification's own result stands; on a refusal keep the peer's subject,
 * which OpenSSL does not keep for a handshake that fails.
 */
static int verify_cb(int ok, X509_STORE_CTX *x)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct dmrepl_tls_conn *c = ssl ? SSL_get_app_data(ssl) : NULL;
	X509 *leaf = X509_STORE_CTX_get0_cert(x);

	if (!ok && c && leaf && !c->refused_subject[0])
		subject_of(leaf, c->refused_subject, sizeof(c->refused_subject));
	return ok;
}

static int setup_certs(struct dmrepl_tls *t, const struct dmrepl_tls_conf *c,
		       char *err, size_t errlen)
{
	X509_VERIFY_PARAM *vp = SSL_CTX_get0_param(t->ctx);

	if (unset(c->ca) || unset(c->certificate) || unset(c->key) ||
	    unset(c->peer_identity)) {
		say(err, errlen, "certificate mode needs a CA, a certificate, a key and a peer identity");
		return -1;
	}
	if (load_ca(t, c->ca, err, errlen) || load_pair(t, c, err, errlen))
		return -1;
	t->peer_identity = strdup(c->peer_identity);
	if (!t->peer_identity) {
		say(err, errlen, "TLS settings: out of memory");
		return -1;
	}
	/*
	 * The verification itself checks the name, on both sides: a DNS
	 * subjectAltName, or the CN of a certificate without one.
	 */
	X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (!X509_VERIFY_PARAM_set1_host(vp, c->peer_identity, 0)) {
		ERR_clear_error();
		say(err, errlen, "peer identity \"%s\": not a valid DNS name", c->peer_identity);
		return -1;
	}
	/* FAIL_IF_NO_PEER_CERT matters to a server only: a client always gets one. */
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
			   verify_cb);
	return 0;
}

static int psk_use(SSL *ssl, const EVP_MD *md, const unsigned char **id,
		   size_t *idlen, SSL_SESSION **sess)
{
	struct dmrepl_tls_conn *c = SSL_get_app_data(ssl);

	/* md, set after a HelloRetryRequest, can only be our one suite's hash. */
	(void)md;
	if (!SSL_SESSION_up_ref(c->t->psk_sess))
		return 0;
	*sess = c->t->psk_sess;
	*id = (const unsigned char *)c->t->psk_identity;
	*idlen = strlen(c->t->psk_identity);
	return 1;
}

/* Keep an offered identity printable for an error message. */
static void keep_offered(struct dmrepl_tls_conn *c, const unsigned char *id, size_t len)
{
	size_t i;

	if (len > sizeof(c->offered) - 1)
		len = sizeof(c->offered) - 1;
	for (i = 0; i < len; i++)
		c->offered[i] = id[i] >= 0x20 && id[i] < 0x7f ? (char)id[i] : '?';
	c->offered[len] = '\0';
}

static int psk_find(SSL *ssl, const unsigned char *id, size_t idlen,
		    SSL_SESSION **sess)
{
	struct dmrepl_tls_conn *c = SSL_get_app_data(ssl);
	const char *ours = c->t->psk_identity;

	c->psk_offered = true;
	*sess = NULL;
	if (idlen != strlen(ours) || memcmp(id, ours, idlen)) {
		/* No session: the handshake goes on without a key, and fails. */
		c->psk_unknown = true;
		keep_offered(c, id, idlen);
		return 1;
	}
	if (!SSL_SESSION_up_ref(c->t->psk_sess))
		return 0;
	*sess = c->t->psk_sess;
	return 1;
}

/* The session a PSK handshake starts from: the key, the suite, TLS 1.3. */
static int make_psk_session(struct dmrepl_tls *t, const struct dmrepl_tls_conf *c,
			    char *err, size_t errlen)
{
	SSL *ssl = SSL_new(t->ctx);
	const SSL_CIPHER *cipher = ssl ? SSL_CIPHER_find(ssl, cipher_suite_id) : NULL;
	char why[MSG_LEN];

	/* The cipher is static data in OpenSSL: it outlives this SSL. */
	SSL_free(ssl);
	t->psk_sess = SSL_SESSION_new();
	if (!cipher || !t->psk_sess || !SSL_SESSION_set_cipher(t->psk_sess, cipher) ||
	    !SSL_SESSION_set_protocol_version(t->psk_sess, TLS1_3_VERSION)) {
		say(err, errlen, "PSK session: %s", ossl_reason(why, sizeof(why)));
		return -1;
	}
	if (!SSL_SESSION_set1_master_key(t->psk_sess, c->psk, c->psk_len)) {
		ERR_clear_error();
		say(err, errlen, "pre-shared key of %zu bytes: too long for OpenSSL",
		    c->psk_len);
		return -1;
	}
	return 0;
}

static int setup_psk(struct dmrepl_tls *t, const struct dmrepl_tls_conf *c,
		     char *err, size_t errlen)
{
	if (!c->psk || c->psk_len < DMREPL_TLS_PSK_MIN) {
		say(err, errlen, "pre-shared key of %zu bytes: at least %d needed",
		    c->psk ? c->psk_len : 0, DMREPL_TLS_PSK_MIN);
		return -1;
	}
	if (unset(c->psk_identity)) {
		say(err, errlen, "PSK mode needs a PSK identity");
		return -1;
	}
	t->psk_identity = strdup(c->psk_identity);
	if (!t->psk_identity) {
		say(err, errlen, "TLS settings: out of memory");
		return -1;
	}
	if (make_psk_session(t, c, err, errlen))
		return -1;
	if (t->server) {
		SSL_CTX_set_psk_find_session_callback(t->ctx, psk_find);
	} else {
		SSL_CTX_set_psk_use_session_callback(t->ctx, psk_use);
		/* No trust anchor: a server offering a certificate instead is refused. */
		SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
	}
	return 0;
}

struct dmrepl_tls *dmrepl_tls_new(const struct dmrepl_tls_conf *c, bool server,
				  char *err, size_t errlen)
{
	struct dmrepl_tls *t = calloc(1, sizeof(*t));
	int ret;

	if (!t) {
		say(err, errlen, "TLS settings: out of memory");
		return NULL;
	}
	t->server = server;
	t->psk_mode = c->psk_mode;
	ret = new_ctx(t, err, errlen);
	if (!ret)
		ret = t->psk_mode ? setup_psk(t, c, err, errlen) :
				    setup_certs(t, c, err, errlen);
	if (ret) {
		dmrepl_tls_free(t);
		return NULL;
	}
	return t;
}

void dmrepl_tls_free(struct dmrepl_tls *t)
{
	if (!t)
		return;
	SSL_SESSION_free(t->psk_sess);
	SSL_CTX_free(t->ctx);
	BIO_meth_free(t->bio_meth);
	free(t->peer_identity);
	free(t->psk_identity);
	free(t);
}

/* ------------------------------------------------------------------ */
/* Errors of a connection                                              */
/* ------------------------------------------------------------------ */

static void set_error(struct dmrepl_tls_conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void set_error(struct dmrepl_tls_conn *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->error, sizeof(c->error), fmt, ap);
	va_end(ap);
}

/* Why the certificate check or the PSK lookup refused the peer, if it did. */
static bool explain_refusal(struct dmrepl_tls_conn *c)
{
	struct dmrepl_tls *t = c->t;
	long vr = SSL_get_verify_result(c->ssl);

	if (vr != X509_V_OK) {
		set_error(c, "peer certificate \"%s\" refused: %s (expected identity \"%s\")",
			  c->refused_subject, X509_verify_cert_error_string(vr),
			  t->peer_identity ? t->peer_identity : "");
		return true;
	}
	if (!t->psk_mode || !t->server)
		return false;
	if (!c->psk_offered) {
		set_error(c, "the peer offered no pre-shared key (a client in certificate mode?)");
		return true;
	}
	if (c->psk_unknown) {
		set_error(c, "the peer's PSK identity \"%s\" is not \"%s\"", c->offered,
			  t->psk_identity);
		return true;
	}
	return false;
}

/* A TLS protocol failure (SSL_ERROR_SSL), in c->error; returns -errno. */
static int ssl_failure(struct dmrepl_tls_conn *c)
{
	unsigned long e = ERR_peek_error();
	int reason = ERR_GET_LIB(e) == ERR_LIB_SSL ? ERR_GET_REASON(e) : 0;
	char why[MSG_LEN];

	ossl_reason(why, sizeof(why));
	if (reason == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
		set_error(c, "the peer closed the connection without close_notify");
		return -ECONNRESET;
	}
	if (explain_refusal(c))
		return -EPROTO;
	if (reason == SSL_R_BINDER_DOES_NOT_VERIFY)
		set_error(c, "the peer's pre-shared key differs from ours (%s)", why);
	else if (reason == SSL_R_WRONG_VERSION_NUMBER)
		set_error(c, "the peer's bytes are not TLS records (%s)", why);
	else if (reason >= SSL_AD_REASON_OFFSET)
		set_error(c, "alert from the peer: %s", why);
	else
		set_error(c, "%s", why);
	return -EPROTO;
}

/*
 * After an SSL call returned ret <= 0: -EAGAIN with c->events set, 0 for
 * the peer's close_notify, or another -errno with c->error set.
 */
static int io_error(struct dmrepl_tls_conn *c, int ret)
{
	switch (SSL_get_error(c->ssl, ret)) {
	case SSL_ERROR_WANT_READ:
		c->events = POLLIN;
		return -EAGAIN;
	case SSL_ERROR_WANT_WRITE:
		c->events = POLLOUT;
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		c->failed = true;
		ERR_clear_error();
		if (c->sys_errno) {
			set_error(c, "%s", strerror(c->sys_errno));
			return -c->sys_errno;
		}
		set_error(c, "the peer closed the connection");
		return -ECONNRESET;
	default:
		c->failed = true;
		return ssl_failure(c);
	}
}

/* Before each SSL call: errors are then the call's own. */
static void call_start(struct dmrepl_tls_conn *c)
{
	ERR_clear_error();
	c->sys_errno = 0;
}

/* ------------------------------------------------------------------ */
/* Handshake                                                           */
/* ------------------------------------------------------------------ */

/* Milliseconds from now to the deadline, rounded up; 0 when past. */
static int ms_left(const struct timespec *dl)
{
	struct timespec now;
	long long ns;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ns = (long long)(dl->tv_sec - now.tv_sec) * 1000000000LL +
	     (dl->tv_nsec - now.tv_nsec);
	if (ns <= 0)
		return 0;
	ns = (ns + 999999) / 1000000;
	return ns > INT_MAX ? INT_MAX : (int)ns;
}

static void deadline_in(struct timespec *dl, int timeout_ms)
{
	long long ms = timeout_ms > 0 ? timeout_ms : 0;

	clock_gettime(CLOCK_MONOTONIC, dl);
	dl->tv_sec += ms / 1000;
	dl->tv_nsec += (ms % 1000) * 1000000;
	if (dl->tv_nsec >= 1000000000) {
		dl->tv_sec++;
		dl->tv_nsec -= 1000000000;
	}
}

/* Wait for c->events until the deadline: 0, -ETIMEDOUT or -errno of poll(). */
static int wait_fd(struct dmrepl_tls_conn *c, const struct timespec *dl)
{
	struct pollfd p = { .fd = c->fd, .events = c->events };
	int n, e;

	do
		n = poll(&p, 1, ms_left(dl));
	while (n < 0 && errno == EINTR);
	if (n > 0)
		return 0;
	if (n == 0) {
		set_error(c, "timed out");
		return -ETIMEDOUT;
	}
	e = errno;
	set_error(c, "poll: %s", strerror(e));
	return -e;
}

enum hs_step { HS_HANDSHAKE, HS_SEND_ACCEPTED, HS_RECV_ACCEPTED };

static int hs_try(struct dmrepl_tls_conn *c, enum hs_step step, unsigned char *byte)
{
	size_t n;

	if (step == HS_HANDSHAKE)
		return SSL_do_handshake(c->ssl);
	if (step == HS_SEND_ACCEPTED)
		return SSL_write_ex(c->ssl, byte, 1, &n);
	return SSL_read_ex(c->ssl, byte, 1, &n);
}

/* Run one step to its end, polling as it needs, until the deadline. */
static int hs_do(struct dmrepl_tls_conn *c, enum hs_step step, unsigned char *byte,
		 const struct timespec *dl)
{
	int ret;

	for (;;) {
		call_start(c);
		ret = hs_try(c, step, byte);
		if (ret == 1)
			return 0;
		ret = io_error(c, ret);
		if (ret == 0) {
			c->failed = true;
			set_error(c, "the peer closed the connection");
			return -ECONNRESET;
		}
		if (ret != -EAGAIN)
			return ret;
		ret = wait_fd(c, dl);
		if (ret)
			return ret;
	}
}

/*
 * The TLS handshake, then the server's ACCEPTED byte: with TLS 1.3 the
 * client's handshake ends before the server has judged the client, so
 * without it a refused client would learn so only at its first read.
 */
static int hs_run(struct dmrepl_tls_conn *c, const struct timespec *dl)
{
	unsigned char byte = ACCEPTED;
	int ret = hs_do(c, HS_HANDSHAKE, &byte, dl);

	if (ret)
		return ret;
	if (c->t->server)
		return hs_do(c, HS_SEND_ACCEPTED, &byte, dl);
	ret = hs_do(c, HS_RECV_ACCEPTED, &byte, dl);
	if (!ret && byte != ACCEPTED) {
		c->failed = true;
		set_error(c, "the peer sent 0x%02x where it accepts the connection", byte);
		return -EPROTO;
	}
	return ret;
}

/* "address:port" of the peer on fd, or "the peer on fd N". */
static void peer_addr(int fd, char *buf, size_t len)
{
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
		struct sockaddr_storage ss;
	} a;
	socklen_t alen = sizeof(a);
	char host[INET6_ADDRSTRLEN];

	if (getpeername(fd, &a.sa, &alen) == 0) {
		if (a.sa.sa_family == AF_INET &&
		    inet_ntop(AF_INET, &a.in.sin_addr, host, sizeof(host))) {
			say(buf, len, "%s:%u", host, ntohs(a.in.sin_port));
			return;
		}
		if (a.sa.sa_family == AF_INET6 &&
		    inet_ntop(AF_INET6, &a.in6.sin6_addr, host, sizeof(host))) {
			say(buf, len, "[%s]:%u", host, ntohs(a.in6.sin6_port));
			return;
		}
	}
	say(buf, len, "the peer on fd %d", fd);
}

/* A connection on fd, non-blocking, ready to handshake. 0 or -errno. */
static int conn_new(struct dmrepl_tls *t, int fd, struct dmrepl_tls_conn **out)
{
	int flags = fcntl(fd, F_GETFL);
	struct dmrepl_tls_conn *c;
	BIO *bio;

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->t = t;
	c->fd = fd;
	c->ssl = SSL_new(t->ctx);
	bio = BIO_new(t->bio_meth);
	if (!c->ssl || !bio) {
		ERR_clear_error();
		BIO_free(bio);
		SSL_free(c->ssl);
		free(c);
		return -ENOMEM;
	}
	BIO_set_data(bio, c);
	BIO_set_init(bio, 1);
	SSL_set_bio(c->ssl, bio, bio);
	SSL_set_app_data(c->ssl, c);
	if (t->server)
		SSL_set_accept_state(c->ssl);
	else
		SSL_set_connect_state(c->ssl);
	*out = c;
	return 0;
}

static void set_peer(struct dmrepl_tls_conn *c)
{
	const char *name = c->t->psk_mode ? c->t->psk_identity : SSL_get0_peername(c->ssl);

	say(c->peer, sizeof(c->peer), "%s", name ? name : "");
}

int dmrepl_tls_handshake(struct dmrepl_tls *t, int fd, int timeout_ms,
			 struct dmrepl_tls_conn **out, char *err, size_t errlen)
{
	struct dmrepl_tls_conn *c = NULL;
	struct timespec dl;
	char addr[INET6_ADDRSTRLEN + 32];
	int ret;

	*out = NULL;
	deadline_in(&dl, timeout_ms);
	peer_addr(fd, addr, sizeof(addr));
	ret = conn_new(t, fd, &c);
	if (ret) {
		close(fd);
		say(err, errlen, "TLS connection with %s: %s", addr, strerror(-ret));
		return ret;
	}
	ret = hs_run(c, &dl);
	if (ret == -ETIMEDOUT)
		say(err, errlen, "TLS handshake with %s: timed out after %d ms", addr,
		    timeout_ms);
	else if (ret)
		say(err, errlen, "TLS handshake with %s: %s", addr, c->error);
	if (ret) {
		c->failed = true;
		dmrepl_tls_close(c);
		return ret;
	}
	set_peer(c);
	*out = c;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Data                                                                */
/* ------------------------------------------------------------------ */

ssize_t dmrepl_tls_read(struct dmrepl_tls_conn *c, void *buf, size_t len)
{
	size_t n;
	int ret;

	if (!len) {
		set_error(c, "a read of 0 bytes");
		return -EINVAL;
	}
	call_start(c);
	ret = SSL_read_ex(c->ssl, buf, len > SSIZE_MAX ? SSIZE_MAX : len, &n);
	c->read_blocked = false;
	if (ret == 1)
		return (ssize_t)n;
	ret = io_error(c, ret);
	c->read_blocked = ret == -EAGAIN;
	return ret;
}

ssize_t dmrepl_tls_write(struct dmrepl_tls_conn *c, const void *buf, size_t len)
{
	size_t n;
	int ret;

	if (!len)
		return 0;
	call_start(c);
	ret = SSL_write_ex(c->ssl, buf, len > SSIZE_MAX ? SSIZE_MAX : len, &n);
	if (ret == 1)
		return (ssize_t)n;
	ret = io_error(c, ret);
	if (ret)
		return ret;
	set_error(c, "the peer closed the connection");
	return -EPIPE;
}

short dmrepl_tls_events(const struct dmrepl_tls_conn *c)
{
	return c->events;
}

size_t dmrepl_tls_pending(const struct dmrepl_tls_conn *c)
{
	int n = SSL_pending(c->ssl);

	if (n > 0)
		return (size_t)n;
	/*
	 * Records read ahead, not decrypted yet. After a read that said
	 * -EAGAIN, what is buffered cannot make a record by itself (or
	 * waits for a write): poll then.
	 */
	return !c->read_blocked && SSL_has_pending(c->ssl);
}

const char *dmrepl_tls_error(const struct dmrepl_tls_conn *c)
{
	return c->error;
}

const char *dmrepl_tls_peer(const struct dmrepl_tls_conn *c)
{
	return c->peer;
}

int dmrepl_tls_fd(const struct dmrepl_tls_conn *c)
{
	return c->fd;
}

void dmrepl_tls_close(struct dmrepl_tls_conn *c)
{
	if (!c)
		return;
	/* One try: close_notify goes out if the socket takes it now. */
	if (!c->failed && SSL_is_init_finished(c->ssl)) {
		call_start(c);
		SSL_shutdown(c->ssl);
		ERR_clear_error();
	}
	close(c->fd);
	SSL_free(c->ssl);
	free(c);
}
