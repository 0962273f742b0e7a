/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libdmrepl: the TLS 1.3 layer of repld's replication link (OpenSSL 3.0).
 *
 *   struct dmrepl_tls       an SSL_CTX for one group and one role
 *   struct dmrepl_tls_conn  one connection over a connected TCP (or AF_UNIX)
 *                           socket, from dmrepl_tls_handshake()
 *
 * Only TLS 1.3, cipher suite TLS_AES_256_GCM_SHA384, no plaintext mode, no
 * session tickets, resumption or renegotiation. Two ways to authenticate:
 *
 *   certificate mode   both sides present a certificate signed by the
 *                      configured CA, and each checks that the other's
 *                      carries peer_identity: a DNS subjectAltName, or the
 *                      CN when the certificate has no subjectAltName.
 *   PSK mode           a TLS 1.3 external pre-shared key (psk, psk_len bytes)
 *                      known under psk_identity; no certificate is sent.
 *
 * The handshake ends with the server confirming, inside the TLS channel, that
 * it accepted the client (one byte the client's handshake consumes). With TLS
 * 1.3 a client otherwise finishes before the server has judged its
 * certificate or key: this way a refused client fails in its own handshake,
 * with the server's alert as the reason, instead of at its first read.
 *
 * Writes use send(MSG_NOSIGNAL): a peer that went away never raises SIGPIPE.
 * Nothing here keeps global state; the library never prints.
 */
#ifndef DMREPL_TLS_H
#define DMREPL_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Shortest pre-shared key accepted, in bytes. */
#define DMREPL_TLS_PSK_MIN 16

/* Plain values from the configuration; copied by dmrepl_tls_new(). */
struct dmrepl_tls_conf {
	bool psk_mode;
	/* Certificate mode: PEM files, and the name the peer's certificate must carry. */
	const char *ca, *certificate, *key;
	const char *peer_identity;
	/* PSK mode: the key's bytes (as read from its file) and its identity. */
	const unsigned char *psk;
	size_t psk_len;
	const char *psk_identity;
};

struct dmrepl_tls;
struct dmrepl_tls_conn;

/*
 * The settings of one group for one role (server: the side that accepted
 * the TCP connection). Certificate mode needs ca, certificate, key and
 * peer_identity, and the key must match the certificate; PSK mode needs a
 * psk of at least DMREPL_TLS_PSK_MIN bytes and a psk_identity. Returns NULL
 * with a sentence naming the file or setting and the reason in err
 * ("certificate /x/y.crt: No such file or directory") on failure.
 */
struct dmrepl_tls *dmrepl_tls_new(const struct dmrepl_tls_conf *c, bool server,
				  char *err, size_t errlen);
/* Free t after every connection made with it has been closed. NULL is a no-op. */
void dmrepl_tls_free(struct dmrepl_tls *t);

/*
 * Handshake on a connected socket fd, blocking or not (the fd is made
 * non-blocking and polled), for at most timeout_ms. The connection owns fd
 * from the call on: on failure fd is closed. Returns 0 and *out, or a
 * negative errno with *out NULL and a sentence naming the peer's address and
 * the reason in err: -ETIMEDOUT when the time ran out, -EPROTO when the TLS
 * handshake failed (or was refused, either way), -ECONNRESET when the peer
 * closed the connection, another -errno from the socket, -ENOMEM.
 */
int dmrepl_tls_handshake(struct dmrepl_tls *t, int fd, int timeout_ms,
			 struct dmrepl_tls_conn **out, char *err, size_t errlen);

/*
 * After the handshake the fd is non-blocking. For len > 0 (a read of 0 bytes
 * is -EINVAL, a write of 0 bytes returns 0), both return > 0 bytes moved,
 * 0 on the peer's clean close (close_notify; read only), -EAGAIN when the
 * call would block (then poll the fd for dmrepl_tls_events(); a read may
 * wait for POLLOUT and a write for POLLIN), or another negative errno with
 * dmrepl_tls_error(): -ECONNRESET when the peer closed without close_notify,
 * -EPIPE when a write finds the peer gone, -EPROTO for a TLS error, the
 * socket's errno otherwise.
 *
 * A write may be partial. After -EAGAIN from a write, the next write must
 * offer the same bytes again, possibly followed by more and possibly from
 * another address, as OpenSSL already encrypted part of them.
 */
ssize_t dmrepl_tls_read(struct dmrepl_tls_conn *c, void *buf, size_t len);
ssize_t dmrepl_tls_write(struct dmrepl_tls_conn *c, const void *buf, size_t len);

/* POLLIN or POLLOUT: what the last -EAGAIN waits for. */
short dmrepl_tls_events(const struct dmrepl_tls_conn *c);
/*
 * Bytes already decrypted and buffered, or 1 when bytes read ahead from the
 * socket wait to be decrypted (a read returns them, or -EAGAIN if they are
 * only part of a record; then this is 0 until a read succeeds): read
 * before polling while it is not 0, as the fd may never become readable
 * for them.
 */
size_t dmrepl_tls_pending(const struct dmrepl_tls_conn *c);
/* The last error, in words ("" if none). */
const char *dmrepl_tls_error(const struct dmrepl_tls_conn *c);
/*
 * The peer as verified: in certificate mode the certificate's name that
 * matched peer_identity, in PSK mode the PSK identity.
 */
const char *dmrepl_tls_peer(const struct dmrepl_tls_conn *c);
int dmrepl_tls_fd(const struct dmrepl_tls_conn *c);
/*
 * Send close_notify if the connection is healthy (best effort, never
 * blocking), close the fd and free c. NULL is a no-op.
 */
void dmrepl_tls_close(struct dmrepl_tls_conn *c);

#ifdef __cplusplus
}
#endif

#endif /* DMREPL_TLS_H */
