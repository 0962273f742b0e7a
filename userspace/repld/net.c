// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * TCP for repld: the listener of this site's address, a dial with a
 * timeout to the peer's, and the back-off between dials.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "repld.h"

static int resolve(const char *host, unsigned short port, bool passive,
		   struct addrinfo **res, char *err, size_t errlen)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = passive ? AI_PASSIVE : 0,
	};
	char service[8];
	int ret;

	snprintf(service, sizeof(service), "%u", port);
	ret = getaddrinfo(host, service, &hints, res);
	if (!ret)
		return 0;
	snprintf(err, errlen, "address %s port %u: %s", host, port,
		 ret == EAI_SYSTEM ? strerror(errno) : gai_strerror(ret));
	return -EHOSTUNREACH;
}

/* TCP_NODELAY: acks and heartbeats are small and must not wait. */
static void tune(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int net_listen(const char *host, unsigned short port, char *err, size_t errlen)
{
	struct addrinfo *res;
	int fd, one = 1, ret;

	ret = resolve(host, port, true, &res, err, errlen);
	if (ret)
		return ret;
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, 16))
		goto fail;
	freeaddrinfo(res);
	return fd;
fail:
	ret = -errno;
	snprintf(err, errlen, "listen on %s port %u: %s", host, port, strerror(errno));
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
	return ret;
}

int net_accept(int lfd, char *peer, size_t peerlen)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[NI_MAXHOST], serv[NI_MAXSERV];
	int fd;

	fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host), serv, sizeof(serv),
			NI_NUMERICHOST | NI_NUMERICSERV))
		snprintf(peer, peerlen, "?");
	else
		snprintf(peer, peerlen, "%s:%s", host, serv);
	tune(fd);
	return fd;
}

/* Wait for a non-blocking connect: 0 or -errno. */
static int connect_wait(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	socklen_t len = sizeof(int);
	int ret, soerr = 0;

	do
		ret = poll(&p, 1, timeout_ms);
	while (ret < 0 && errno == EINTR);
	if (ret < 0)
		return -errno;
	if (!ret)
		return -ETIMEDOUT;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len))
		return -errno;
	return -soerr;
}

int net_dial(const char *host, unsigned short port, int timeout_ms, char *err, size_t errlen)
{
	struct addrinfo *res;
	int fd, ret;

	ret = resolve(host, port, false, &res, err, errlen);
	if (ret)
		return ret;
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		ret = -errno;
	} else if (connect(fd, res->ai_addr, res->ai_addrlen) && errno != EINPROGRESS) {
		ret = -errno;
	} else {
		ret = connect_wait(fd, timeout_ms);
	}
	freeaddrinfo(res);
	if (!ret) {
		tune(fd);
		return fd;
	}
	snprintf(err, errlen, "connect to %s port %u: %s", host, port, strerror(-ret));
	if (fd >= 0)
		close(fd);
	return ret;
}

/*
 * The wait before the next dial: doubling from BACKOFF_MIN_MS to
 * BACKOFF_MAX_MS, each wait drawn between half and all of it, so that
 * the two hosts of many groups do not dial in lockstep.
 */
int net_backoff_ms(unsigned int *failures)
{
	unsigned int shift = *failures < 6 ? *failures : 6;
	unsigned int ceiling = BACKOFF_MIN_MS << shift;

	if (ceiling > BACKOFF_MAX_MS)
		ceiling = BACKOFF_MAX_MS;
	(*failures)++;
	return (int)(ceiling / 2 + (unsigned int)random() % (ceiling / 2 + 1));
}
