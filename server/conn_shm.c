/* conn_shm.c - a unix connection's first read and its shared buffer.
 *
 * libuv pipes do not hand out received fds of non-socket types, so the
 * daemon watches a new unix connection with a uv_poll_t and reads whatever
 * comes first with recvmsg, keeping a memfd passed with SCM_RIGHTS for an
 * AttachShmRequest in that first frame (shm.c takes and maps it). Then it
 * hands the fd to the pipe and frames those bytes as usual. The shared
 * buffer stays mapped until the connection is freed, after the last job
 * that writes into it. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn_int.h"
#include "log.h"
#include "loop.h"
#include "shm.h"

static void on_poll_close(uv_handle_t *h)
{
	struct ed_conn *c = h->data;
	int rc;

	c->handles--;
	if (c->state == ED_CONN_CLOSING) {
		close(c->fd); /* the pipe never owned it */
		c->fd = -1;
		ed__conn_free_if_idle(c);
		return;
	}
	rc = uv_pipe_open(&c->u.pipe, c->fd);
	if (rc) {
		ed_warn("cannot take a connection: %s", uv_strerror(rc));
		close(c->fd);
		c->fd = -1;
		ed__conn_event(c, ED_CONN_EV_CLOSE);
		return;
	}
	ed__conn_event(c, ED_CONN_EV_PIPE_OPEN);
	if (ed_worker_stopping(c->w))
		ed__conn_event(c, ED_CONN_EV_DRAIN); /* answer what came, then close */
	ed__conn_process(c);
}

void ed__conn_close_poll(struct ed_conn *c)
{
	uv_close((uv_handle_t *)&c->poll, on_poll_close);
}

static void on_first_read(uv_poll_t *p, int status, int events)
{
	struct ed_conn *c = p->data;
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} ctl;
	struct msghdr msg = { 0 };
	struct iovec iov;
	uv_buf_t buf;
	ssize_t n;

	(void)events;
	if (c->state != ED_CONN_FIRST_READ)
		return;
	if (status < 0) {
		ed__conn_event(c, ED_CONN_EV_CLOSE);
		return;
	}
	ed__conn_alloc(&c->u.h, 0, &buf);
	if (!buf.base) {
		ed__conn_event(c, ED_CONN_EV_CLOSE);
		return;
	}
	iov.iov_base = buf.base;
	iov.iov_len = buf.len;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = ctl.buf;
	msg.msg_controllen = sizeof(ctl.buf);
	do
		n = recvmsg(c->fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return; /* spurious wake-up: keep polling */
	if (n < 0) {
		if (errno != ECONNRESET)
			ed_debug("read failed: %s", strerror(errno));
		ed__conn_event(c, ED_CONN_EV_CLOSE);
		return;
	}
	ed_shm_take_fd(&msg, &c->pass_fd);
	if (n == 0) {
		ed__conn_event(c, ED_CONN_EV_EOF); /* nothing came: nothing to answer */
		return;
	}
	c->in_len += (size_t)n;
	ed__conn_event(c, ED_CONN_EV_FIRST_BYTES);
}

int ed__conn_first_read(struct ed_conn *c, uv_loop_t *loop, int fd)
{
	int rc = uv_poll_init(loop, &c->poll, fd);

	if (rc)
		return rc;
	c->handles++;
	c->fd = fd;
	c->poll.data = c;
	c->state = ED_CONN_FIRST_READ;
	return uv_poll_start(&c->poll, UV_READABLE, on_first_read);
}

/* Maps the memfd that came with the connection's first bytes. Any fault is
 * the client's: answered, never fatal. */
int ed__conn_attach_shm(struct ed_req *req, uint64_t size, char *msg, size_t msg_len)
{
	struct ed_conn *c = req->owner;
	int fd = c->pass_fd, st;
	void *p;

	if (c->shm) {
		snprintf(msg, msg_len, "a shared buffer is already attached to this connection");
		return ENGRAM__V1__STATUS__BAD_REQUEST;
	}
	if (c->frames != 0 || fd < 0) {
		snprintf(msg, msg_len,
		         "attach_shm needs a memfd passed with SCM_RIGHTS along with this request, "
		         "sent as the first frame of a fresh unix connection");
		return ENGRAM__V1__STATUS__BAD_REQUEST;
	}
	c->pass_fd = -1; /* consumed, whatever happens */
	st = ed_shm_map(fd, size, &p, msg, msg_len);
	if (st != ENGRAM__V1__STATUS__OK)
		return st;
	c->shm = p;
	c->shm_size = (size_t)size;
	ed_debug("attached a shared buffer of %llu bytes", (unsigned long long)size);
	return ENGRAM__V1__STATUS__OK;
}
