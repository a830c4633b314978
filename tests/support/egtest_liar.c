/* egtest_liar.c - the fake engramd of egtest_liar.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "egtest_liar.h"

/* egtest_wire.c (declared in egtest.h, which needs Check) */
size_t egt_varint_put(uint8_t *p, uint64_t v);
int egt_frame_parse(const uint8_t *buf, size_t len, size_t *hdr, uint64_t *body);

struct egt_liar {
	int lfd, stop[2];
	egt_liar_fn fn;
	void *arg;
	pthread_t thread;
};

void egt_reply_raw(struct egt_reply *r, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (r->len + n > r->cap) {
		size_t cap = (r->len + n) * 2;
		uint8_t *d = realloc(r->data, cap);

		if (!d)
			abort(); /* a test helper: no way on */
		r->data = d;
		r->cap = cap;
	}
	memcpy(r->data + r->len, p, n);
	r->len += n;
}

void egt_reply_varint(struct egt_reply *r, uint64_t v)
{
	uint8_t b[10];

	egt_reply_raw(r, b, egt_varint_put(b, v));
}

void egt_reply_msg(struct egt_reply *r, const Engram__V1__Response *m)
{
	size_t n = engram__v1__response__get_packed_size(m);
	uint8_t *body = malloc(n ? n : 1);

	if (!body)
		abort();
	engram__v1__response__pack(m, body);
	egt_reply_varint(r, n);
	egt_reply_raw(r, body, n);
	free(body);
}

void egt_reply_ok(struct egt_reply *r, uint64_t id)
{
	Engram__V1__Response m = ENGRAM__V1__RESPONSE__INIT;

	m.id = id;
	egt_reply_msg(r, &m);
}

/* Waits until fd has events or stop is asked; 1 ready, 0 stop. */
static int wait_fd(egt_liar *l, int fd, short events)
{
	struct pollfd p[2] = { { .fd = fd, .events = events }, { .fd = l->stop[0], .events = POLLIN } };

	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 0;
		}
		if (p[1].revents)
			return 0;
		if (p[0].revents)
			return 1;
	}
}

/* Sends n bytes of p (NULL: zeros); -1 once the peer is gone or stop. */
static int send_all(egt_liar *l, int fd, const uint8_t *p, uint64_t n)
{
	static const uint8_t zeros[65536];

	while (n > 0) {
		size_t k = n < sizeof(zeros) ? (size_t)n : sizeof(zeros);
		ssize_t w;

		if (!wait_fd(l, fd, POLLOUT))
			return -1;
		w = send(fd, p ? p : zeros, k, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (w <= 0)
			return -1;
		if (p)
			p += w;
		n -= (uint64_t)w;
	}
	return 0;
}

/* Reads what is there; fds passed along are closed. 0 on EOF or error. */
static ssize_t recv_some(int fd, uint8_t *buf, size_t n)
{
	union {
		struct cmsghdr align;
		char b[CMSG_SPACE(8 * sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = n };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
	                      .msg_controllen = sizeof(ctl.b) };
	ssize_t r = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); r > 0 && c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			int fds[8];

			memcpy(fds, CMSG_DATA(c), k * sizeof(int));
			for (size_t i = 0; i < k; i++)
				close(fds[i]);
		}
	}
	return r;
}

/* One request frame of buf: the reply it gets is sent; -1 ends the connection. */
static int answer(egt_liar *l, int fd, unsigned conn, unsigned nreq, const uint8_t *body,
                  size_t len)
{
	Engram__V1__Request *req = engram__v1__request__unpack(NULL, len, body);
	struct egt_reply r = { 0 };
	int rc;

	l->fn(l->arg, conn, nreq, req, &r);
	if (req)
		engram__v1__request__free_unpacked(req, NULL);
	rc = send_all(l, fd, r.data, r.len);
	if (rc == 0 && r.endless)
		rc = send_all(l, fd, NULL, r.endless);
	free(r.data);
	return rc < 0 || r.close_after ? -1 : 0;
}

static void serve(egt_liar *l, int fd, unsigned conn)
{
	size_t cap = 1 << 16, len = 0, hdr;
	uint8_t *buf = malloc(cap);
	uint64_t body;
	unsigned nreq = 0;
	ssize_t r;

	while (buf && wait_fd(l, fd, POLLIN)) {
		if (len == cap) {
			uint8_t *b = realloc(buf, cap * 2);

			if (!b)
				break;
			buf = b;
			cap *= 2;
		}
		r = recv_some(fd, buf + len, cap - len);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
		while (egt_frame_parse(buf, len, &hdr, &body)) {
			if (answer(l, fd, conn, nreq++, buf + hdr, (size_t)body) < 0)
				goto out;
			memmove(buf, buf + hdr + body, len - hdr - body);
			len -= hdr + body;
		}
	}
out:
	free(buf);
}

static void *run(void *arg)
{
	egt_liar *l = arg;
	unsigned conn = 0;
	int fd;

	while (wait_fd(l, l->lfd, POLLIN)) {
		fd = accept4(l->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		serve(l, fd, conn++);
		close(fd);
	}
	return NULL;
}

int egt_liar_start(egt_liar **out, const char *path, egt_liar_fn fn, void *arg)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(path);
	socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	egt_liar *l = calloc(1, sizeof(*l));
	int err;

	if (!l)
		return -ENOMEM;
	l->fn = fn;
	l->arg = arg;
	l->stop[0] = l->stop[1] = -1;
	if (n == 0 || n >= sizeof(sa.sun_path)) {
		free(l);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, n);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';
	else
		alen++;
	l->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (l->lfd < 0 || bind(l->lfd, (struct sockaddr *)&sa, alen) < 0 ||
	    listen(l->lfd, 64) < 0 || pipe2(l->stop, O_CLOEXEC) < 0)
		goto fail;
	err = pthread_create(&l->thread, NULL, run, l);
	if (err) {
		errno = err;
		goto fail;
	}
	*out = l;
	return 0;
fail:
	err = -errno;
	if (l->lfd >= 0)
		close(l->lfd);
	if (l->stop[0] >= 0) {
		close(l->stop[0]);
		close(l->stop[1]);
	}
	free(l);
	return err;
}

void egt_liar_stop(egt_liar *l)
{
	if (!l)
		return;
	if (write(l->stop[1], "x", 1) != 1)
		abort();
	pthread_join(l->thread, NULL);
	close(l->lfd);
	close(l->stop[0]);
	close(l->stop[1]);
	free(l);
}
