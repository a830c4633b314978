/* conn.c - the socket under an eg_client: address parsing, connect with a
 * timeout, reads and writes bounded by the call's deadline.
 *
 * The socket is non-blocking; every wait is a poll() bounded by the deadline
 * of the public call in progress, so one timeout covers the whole call. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "egc_int.h"

int64_t egc__now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void egc__start_call(eg_client *c)
{
	c->deadline = c->timeout_ms > 0 ? egc__now_ms() + c->timeout_ms : -1;
	if (!c->reader_on)
		c->rd_deadline = c->deadline;
}

static int remaining_ms(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - egc__now_ms();
	if (left < 0)
		return 0;
	return left > 0x7fffffff ? 0x7fffffff : (int)left;
}

/* Waits until fd is ready for events or deadline passes. */
static int poll_fd(int fd, short events, short *revents, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r;

	for (;;) {
		r = poll(&p, 1, remaining_ms(deadline));
		if (r > 0) {
			if (revents)
				*revents = p.revents;
			return 0;
		}
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

int egc__poll(eg_client *c, short events, short *revents)
{
	int err, fd = c->fd;

	egc__fd_wait_begin(c);
	err = poll_fd(fd, events, revents, c->deadline);
	egc__fd_wait_end(c);
	return err;
}

/* ---- connecting ---------------------------------------------------------- */

/* Connects a fresh non-blocking socket to sa within the call's deadline. */
static int connect_one(eg_client *c, int family, const struct sockaddr *sa, socklen_t len,
                       int *out)
{
	int fd, err = 0, one = 1;
	socklen_t elen = sizeof(err);
	short rev;

	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	while (connect(fd, sa, len) < 0) {
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN && family == AF_UNIX) {
			/* listen backlog full: a Unix connect cannot be waited
			 * for, so retry shortly while the deadline allows */
			struct timespec ms = { 0, 1000000 };

			if (remaining_ms(c->deadline) == 0) {
				err = -ETIMEDOUT;
				goto fail;
			}
			nanosleep(&ms, NULL);
			continue;
		}
		if (errno != EINPROGRESS) {
			err = -errno;
			goto fail;
		}
		err = poll_fd(fd, POLLOUT, &rev, c->deadline);
		if (err < 0)
			goto fail;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0) {
			err = -errno;
			goto fail;
		}
		if (err) {
			err = -err;
			goto fail;
		}
		break;
	}
	if (family != AF_UNIX)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	*out = fd;
	return 0;
fail:
	close(fd);
	return err;
}

static int dial_unix(eg_client *c, const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t n = strlen(path);
	socklen_t len;

	if (n == 0 || n >= sizeof(sun.sun_path)) {
		egc__set_msg(c, "bad address '%s': unix socket path empty or longer than %zu bytes",
		             c->addr, sizeof(sun.sun_path) - 1);
		return EGC_EADDR;
	}
	memcpy(sun.sun_path, path, n);
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	if (path[0] == '@')  /* Linux abstract namespace */
		sun.sun_path[0] = '\0';
	else
		len++;
	return connect_one(c, AF_UNIX, (const struct sockaddr *)&sun, len, &c->fd);
}

static int dial_tcp(eg_client *c, const char *hostport)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL, *ai;
	char host[256];
	const char *colon = strrchr(hostport, ':');
	size_t hlen;
	int r, err = -ECONNREFUSED;

	if (!colon || colon == hostport || !colon[1])
		goto bad;
	hlen = (size_t)(colon - hostport);
	if (hostport[0] == '[' && hlen >= 2 && hostport[hlen - 1] == ']') {
		hostport++;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		goto bad;
	memcpy(host, hostport, hlen);
	host[hlen] = '\0';
	r = getaddrinfo(host, colon + 1, &hints, &res);
	if (r != 0) {
		egc__set_msg(c, "cannot resolve '%s': %s", c->addr,
		             r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
		return EGC_EADDR;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		err = connect_one(c, ai->ai_family, ai->ai_addr, ai->ai_addrlen, &c->fd);
		if (err == 0 || err == -ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	return err;
bad:
	egc__set_msg(c, "bad address '%s': expected tcp:HOST:PORT", c->addr);
	return EGC_EADDR;
}

int egc__dial(eg_client *c)
{
	int err;

	c->fd = -1;
	c->rpos = c->rlen = 0;
	__atomic_store_n(&c->reads_fixed_slots, 0, __ATOMIC_RELAXED); /* until this daemon says so */
	egc__forget_layouts(c);
	if (strncmp(c->addr, "unix:", 5) == 0)
		err = dial_unix(c, c->addr + 5);
	else if (strncmp(c->addr, "tcp:", 4) == 0)
		err = dial_tcp(c, c->addr + 4);
	else {
		egc__set_msg(c, "bad address '%s': expected unix:PATH or tcp:HOST:PORT", c->addr);
		return EGC_EADDR;
	}
	if (err < 0) {
		c->fd = -1;
		if (err != EGC_EADDR)
			egc__set_msg(c, "cannot connect to %s: %s", c->addr, eg_client_strerror(err));
		return err;
	}
	return egc__shm_reattach(c);
}

/* An idle connection (nothing awaited) that is readable was closed by the
 * daemon (restart, idle limit) or is out of step: start a fresh one, so a
 * restart costs the caller nothing. */
int egc__ensure_connected(eg_client *c)
{
	struct pollfd p;

	if (c->fd >= 0 && !egc__head(c)) {
		p.fd = c->fd;
		p.events = POLLIN;
		p.revents = 0;
		if (c->rpos < c->rlen || (poll(&p, 1, 0) > 0 && p.revents))
			egc__drop(c, -ECONNRESET, "connection closed by the daemon");
	}
	if (c->fd >= 0)
		return 0;
	return egc__dial(c);
}

void egc__drop(eg_client *c, int err, const char *why)
{
	size_t i;

	if (c->kill_err) { /* a caller asked for it: its reason */
		err = c->kill_err;
		why = c->kill_why;
	}
	if (c->fd >= 0 && c->fd_users) {
		shutdown(c->fd, SHUT_RDWR); /* wakes who waits on it; closed by the last */
		c->zombie = c->fd;
	} else if (c->fd >= 0) {
		close(c->fd);
	}
	c->fd = -1;
	c->rpos = c->rlen = 0;
	for (i = 0; i < c->qlen; i++) {
		egc_ticket *t = c->q[i];

		if (t->done)
			continue;
		t->done = 1;
		t->err = err;
		snprintf(t->msg, sizeof(t->msg), "%s", why);
	}
	egc__reap(c);
}

/* ---- reading --------------------------------------------------------------- */

/* The deadline is checked before every read, not only while waiting: a
 * daemon that streams a huge frame without pause never lets poll() wait.
 * The reader thread lets the lock go while it copies, too: a large answer
 * streaming in never keeps a caller from sending. One recv takes at most
 * EGC_RECV_MAX bytes: a Unix socket's recv goes on copying for as long as
 * the sender keeps its queue filled, and a kernel without preemption
 * (PREEMPT_NONE) switches to no other thread inside a system call: next
 * to a client receiving 160 MB answers, the slowest decode step of
 * bench_prefill took 33 - 40 ms with whole-answer recvs, 21 - 28 ms with
 * these. */
int egc__recv_some(eg_client *c, void *dst, size_t n, size_t *got)
{
	ssize_t r;
	int err = 0, fd = c->fd;

	if (n > EGC_RECV_MAX)
		n = EGC_RECV_MAX;
	for (;;) {
		if (c->rd_deadline >= 0 && egc__now_ms() > c->rd_deadline)
			return -ETIMEDOUT;
		egc__fd_wait_begin(c);
		r = recv(fd, dst, n, MSG_DONTWAIT);
		if (r < 0)
			err = errno;
		egc__fd_wait_end(c);
		if (r > 0) {
			*got = (size_t)r;
			return 0;
		}
		if (r == 0)
			return -ECONNRESET;
		if (err == EINTR)
			continue;
		if (err != EAGAIN && err != EWOULDBLOCK)
			return -err;
		egc__fd_wait_begin(c);
		err = poll_fd(fd, POLLIN, NULL, c->rd_deadline);
		egc__fd_wait_end(c);
		if (err < 0)
			return err;
	}
}

static int fill(eg_client *c)
{
	size_t got;
	int err;

	c->rpos = c->rlen = 0;
	err = egc__recv_some(c, c->rbuf, EGC_RBUF_SIZE, &got);
	if (err == 0)
		c->rlen = got;
	return err;
}

int egc__byte(eg_client *c, unsigned char *out)
{
	int err;

	if (c->rpos == c->rlen) {
		err = fill(c);
		if (err < 0)
			return err;
	}
	*out = c->rbuf[c->rpos++];
	return 0;
}

/* Reads exactly n bytes into dst: buffered bytes first, then big remainders
 * straight from the socket into dst (the row bytes of a lookup are copied
 * once, kernel to caller). */
int egc__read_exact(eg_client *c, void *dst, size_t n)
{
	unsigned char *p = dst;
	size_t k = c->rlen - c->rpos, got;
	int err;

	if (n == 0)
		return 0; /* dst may be NULL for an empty block */
	if (k > n)
		k = n;
	memcpy(p, c->rbuf + c->rpos, k);
	c->rpos += k;
	p += k;
	n -= k;
	while (n >= 4096) {
		err = egc__recv_some(c, p, n, &got);
		if (err < 0)
			return err;
		p += got;
		n -= got;
	}
	while (n > 0) {
		err = fill(c);
		if (err < 0)
			return err;
		k = c->rlen < n ? c->rlen : n;
		memcpy(p, c->rbuf, k);
		c->rpos = k;
		p += k;
		n -= k;
	}
	return 0;
}

int egc__skip(eg_client *c, uint64_t n)
{
	size_t k;
	int err;

	while (n > 0) {
		if (c->rpos == c->rlen) {
			err = fill(c);
			if (err < 0)
				return err;
		}
		k = c->rlen - c->rpos;
		if (k > n)
			k = (size_t)n;
		c->rpos += k;
		n -= k;
	}
	return 0;
}

int egc__varint(eg_client *c, uint64_t *out, uint64_t *used)
{
	uint64_t v = 0;
	unsigned char b;
	int shift, err;

	for (shift = 0; shift < 64; shift += 7) {
		err = egc__byte(c, &b);
		if (err < 0)
			return err;
		(*used)++;
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*out = v;
			return 0;
		}
	}
	return egc__proto(c, "a varint longer than ten bytes");
}
