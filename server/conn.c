/* conn.c - framing, ordered responses and backpressure for one connection.
 *
 * Life: open -> reading <-> paused (output over --max-output, or too many
 * requests waiting) -> closing (EOF answered, fatal frame error written, drain
 * or I/O error) -> freed once libuv closed the handle and no thread-pool job
 * still writes into one of its requests.
 *
 * A unix connection starts with one read of its own (first_read): libuv
 * pipes do not hand out received fds of non-socket types, so the daemon
 * watches the fd with a uv_poll_t, reads whatever came first with recvmsg,
 * keeping a memfd passed with SCM_RIGHTS for an AttachShmRequest in that
 * first frame, then hands the fd to the pipe and frames those bytes as
 * usual. The shared buffer stays mapped until the connection is freed, after
 * the last job that writes into it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "shm.h"
#include "conn.h"
#include "dispatch.h"
#include "frame.h"
#include "log.h"
#include "loop.h"
#include "stats.h"

#define READ_CHUNK (64u << 10)
#define MAX_WAITING 1024       /* requests answered or running, not yet written */
#define KEEP_INBUF (1u << 20)  /* larger idle input buffers are freed */
#define MAX_BATCH 64           /* responses per writev */
#define SEND_BUFFER_BYTES (4 << 20)

struct ed_conn {
	union {
		uv_handle_t h;
		uv_stream_t s;
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} u;
	struct ed_worker *w;
	uint8_t *in;                 /* received bytes not yet framed */
	size_t in_len, in_cap;
	struct ed_req *head, *tail;  /* requests not yet handed to uv_write */
	size_t waiting;              /* in the queue */
	size_t held;                 /* bytes of done responses in the queue */
	size_t unsent;               /* bytes handed to uv_write, not yet written */
	unsigned writes;             /* uv_write requests in flight */
	unsigned jobs;               /* requests with thread-pool work running */
	int reading, eof, broken, draining, closing, handle_closed;
	/* unix connections: the first read, done here with recvmsg */
	uv_poll_t poll;
	int fd;                      /* the socket until the pipe owns it */
	int polling;                 /* poll handle open (close callback not yet run) */
	int pass_fd;                 /* memfd received with the first bytes, or -1 */
	uint64_t frames;             /* request frames dispatched */
	uint8_t *shm;                /* attached shared buffer, or NULL */
	size_t shm_size;
};

struct write_batch {
	uv_write_t wr;
	struct ed_conn *c;
	size_t n, bytes;
	struct ed_req *reqs[MAX_BATCH];
	uv_buf_t bufs[MAX_BATCH];
};

/* The head of a response still being gathered, sent early. */
struct part_write {
	uv_write_t wr;
	struct ed_conn *c;
	size_t bytes;
};

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void process(struct ed_conn *c);
static void req_done(struct ed_req *req);

static void conn_free_if_idle(struct ed_conn *c)
{
	struct ed_req *r, *next;

	if (!c->handle_closed || c->jobs > 0 || c->polling)
		return;
	for (r = c->head; r; r = next) {
		next = r->next;
		ed_req_free(r);
	}
	if (c->shm)
		munmap(c->shm, c->shm_size);
	if (c->pass_fd >= 0)
		close(c->pass_fd);
	free(c->in);
	ed_worker_conn_del(c->w, &c->u.h);
	free(c);
}

static void on_poll_close(uv_handle_t *h);

static void on_close(uv_handle_t *h)
{
	struct ed_conn *c = h->data;

	c->handle_closed = 1;
	ed_stat_add(connections, (uint_fast64_t)-1);
	conn_free_if_idle(c);
}

static void conn_close(struct ed_conn *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	uv_read_stop(&c->u.s);
	uv_close(&c->u.h, on_close);
	if (c->polling && !uv_is_closing((uv_handle_t *)&c->poll))
		uv_close((uv_handle_t *)&c->poll, on_poll_close);
}

static int paused(const struct ed_conn *c)
{
	return c->unsent + c->held >= ed_cfg.max_output || c->waiting >= MAX_WAITING;
}

static void set_reading(struct ed_conn *c)
{
	int want = !c->polling && !c->closing && !c->eof && !c->broken && !c->draining && !paused(c);

	if (want == c->reading)
		return;
	if (want) {
		if (uv_read_start(&c->u.s, on_alloc, on_read) != 0)
			return;
	} else {
		uv_read_stop(&c->u.s);
	}
	c->reading = want;
}

static void on_write(uv_write_t *wr, int status)
{
	struct write_batch *b = wr->data;
	struct ed_conn *c = b->c;
	int close_after = 0;

	for (size_t i = 0; i < b->n; i++) {
		struct ed_req *r = b->reqs[i];

		if (status == 0) {
			ed_stat_add(bytes_out, r->out.len);
			ed_stat_add(rows, r->rows);
			if (r->rows_request)
				ed_stat_latency(uv_hrtime() - r->t_start);
		}
		close_after |= r->close_after;
		ed_req_free(r);
	}
	c->unsent -= b->bytes;
	c->writes--;
	free(b);
	if (c->closing)
		return;
	if (status < 0) {
		if (status != UV_EPIPE && status != UV_ECONNRESET)
			ed_debug("write failed: %s", uv_strerror(status));
		conn_close(c);
		return;
	}
	if (close_after) {
		conn_close(c);
		return;
	}
	process(c);
}

static void on_part_write(uv_write_t *wr, int status)
{
	struct part_write *p = wr->data;
	struct ed_conn *c = p->c;

	c->unsent -= p->bytes;
	c->writes--;
	free(p);
	if (status < 0 && !c->closing)
		conn_close(c);
}

/* req->progress: the gathered head of a pending response goes out now when
 * it is next in line, so the client reads while the rest is gathered.
 * (libuv keeps writes on a stream in order; the frame's memory lives until
 * the write of its tail completes, after this one.) */
static void send_ready_part(struct ed_req *req)
{
	struct ed_conn *c = req->owner;
	struct part_write *p;
	uv_buf_t buf;

	if (c->closing || c->head != req || req->ready <= req->sent)
		return;
	p = malloc(sizeof(*p));
	if (!p)
		return; /* it goes out whole when done */
	buf.base = (char *)req->out.data + req->sent;
	buf.len = req->ready - req->sent;
	p->wr.data = p;
	p->c = c;
	p->bytes = buf.len;
	if (uv_write(&p->wr, &c->u.s, &buf, 1, on_part_write)) {
		free(p);
		conn_close(c);
		return;
	}
	c->writes++;
	c->unsent += p->bytes;
	req->sent = req->ready;
}

/* Hands every answered request at the head of the queue to uv_write. */
static void flush(struct ed_conn *c)
{
	while (c->head && c->head->done && !c->closing) {
		struct write_batch *b;
		int rc;

		if (c->head->abandon) {
			ed_warn("a response failed after its head was sent; closing the connection");
			conn_close(c);
			return;
		}
		b = calloc(1, sizeof(*b));

		if (!b) {
			ed_error("out of memory writing a response; closing the connection");
			conn_close(c);
			return;
		}
		b->c = c;
		b->wr.data = b;
		while (c->head && c->head->done && b->n < MAX_BATCH) {
			struct ed_req *r = c->head;

			c->head = r->next;
			if (!c->head)
				c->tail = NULL;
			c->waiting--;
			c->held -= r->out.len - r->sent;
			ed_stat_answered(r->status);
			b->reqs[b->n] = r;
			/* not uv_buf_init: its length is an unsigned int */
			b->bufs[b->n].base = (char *)r->out.data + r->sent;
			b->bufs[b->n].len = r->out.len - r->sent;
			b->bytes += r->out.len - r->sent;
			b->n++;
		}
		rc = uv_write(&b->wr, &c->u.s, b->bufs, (unsigned)b->n, on_write);
		if (rc) {
			for (size_t i = 0; i < b->n; i++)
				ed_req_free(b->reqs[i]);
			free(b);
			conn_close(c);
			return;
		}
		c->writes++;
		c->unsent += b->bytes;
	}
	if (c->head && !c->head->done)
		send_ready_part(c->head);
}

/* An AttachShmRequest: maps the memfd that came with the connection's first
 * bytes. Any fault is the client's: answered, never fatal. */
static int attach_shm(struct ed_req *req, uint64_t size, char *msg, size_t msg_len)
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

static struct ed_req *req_new(struct ed_conn *c)
{
	struct ed_req *r = calloc(1, sizeof(*r));

	if (!r) {
		ed_error("out of memory for a request; closing the connection");
		abort(); /* small fixed structure: the daemon's policy */
	}
	r->owner = c;
	r->loop = ed_worker_loop(c->w);
	r->finish = req_done;
	r->progress = send_ready_part;
	r->t_start = uv_hrtime();
	r->shm = c->shm;
	r->shm_size = c->shm_size;
	if (c->fd >= 0)
		r->attach_shm = attach_shm;
	if (c->tail)
		c->tail->next = r;
	else
		c->head = r;
	c->tail = r;
	c->waiting++;
	return r;
}

/* Answers a framing error (id 0) and closes once it is written. */
static void frame_error(struct ed_conn *c, Engram__V1__Status st, const char *msg)
{
	struct ed_req *r = req_new(c);

	ed_encode_error(&r->out, 0, st, "%s", msg);
	r->status = (int)st;
	r->failed = r->done = r->close_after = 1;
	c->held += r->out.len;
	c->broken = 1;
	ed_debug("closing a connection: %s", msg);
}

/* Frames and dispatches every complete request received, in order, until the
 * buffer is empty or output backs up. */
static void process(struct ed_conn *c)
{
	size_t off = 0;

	if (c->polling) {
		/* the first read is not done: nothing to frame yet, unless its
		 * bytes wait for on_poll_close */
		if (c->draining && c->in_len == 0 && !c->closing)
			conn_close(c);
		return;
	}
	while (!c->closing && !c->broken && !paused(c)) {
		uint64_t len = 0;
		size_t hl = 0;
		enum ed_split sp = ed_frame_split(c->in + off, c->in_len - off, ed_cfg.max_frame,
		                                  &hl, &len);
		struct ed_req *r;

		if (sp == ED_SPLIT_BAD_LENGTH) {
			frame_error(c, ENGRAM__V1__STATUS__BAD_REQUEST,
			            "bad frame length: more than 10 varint bytes; closing");
			break;
		}
		if (sp == ED_SPLIT_TOO_LARGE) {
			char msg[160];

			snprintf(msg, sizeof(msg), "frame of %llu bytes is over the limit of %llu (--max-frame); closing",
			         (unsigned long long)len, (unsigned long long)ed_cfg.max_frame);
			frame_error(c, ENGRAM__V1__STATUS__TOO_LARGE, msg);
			break;
		}
		if (sp == ED_SPLIT_MORE)
			break; /* wait for more bytes */
		r = req_new(c);
		ed_dispatch(r, c->in + off + hl, (size_t)len);
		off += hl + (size_t)len;
		c->frames++;
		if (c->pass_fd >= 0) {
			/* only the first frame may take it */
			close(c->pass_fd);
			c->pass_fd = -1;
		}
		if (r->done)
			c->held += r->out.len;
		else
			c->jobs++;
	}
	if (off) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
	if (c->in_len == 0 && c->in_cap > KEEP_INBUF) {
		free(c->in);
		c->in = NULL;
		c->in_cap = 0;
	}
	flush(c);
	if (c->closing)
		return;
	if ((c->eof || c->draining) && !c->head && c->writes == 0) {
		conn_close(c); /* everything received is answered */
		return;
	}
	set_reading(c);
}

/* A request that ran on the thread pool has its response. */
static void req_done(struct ed_req *req)
{
	struct ed_conn *c = req->owner;

	c->jobs--;
	if (c->handle_closed) {
		conn_free_if_idle(c);
		return;
	}
	if (c->closing)
		return;
	c->held += req->out.len - req->sent;
	process(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct ed_conn *c = h->data;
	size_t want = c->in_len + READ_CHUNK;

	(void)suggested;
	if (c->in_cap < want) {
		/* never more than one maximal frame plus its length ahead */
		size_t cap = c->in_cap ? c->in_cap : READ_CHUNK;
		size_t limit = (size_t)ed_cfg.max_frame + 16 + READ_CHUNK;
		uint8_t *p;

		while (cap < want)
			cap *= 2;
		if (cap > limit)
			cap = limit > want ? limit : want;
		p = realloc(c->in, cap);
		if (!p) {
			*buf = uv_buf_init(NULL, 0); /* read_cb gets UV_ENOBUFS */
			return;
		}
		c->in = p;
		c->in_cap = cap;
	}
	*buf = uv_buf_init((char *)c->in + c->in_len, (unsigned)(c->in_cap - c->in_len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct ed_conn *c = s->data;

	(void)buf;
	if (nread == UV_EOF) {
		c->eof = 1;
		uv_read_stop(s);
		c->reading = 0;
		process(c);
		return;
	}
	if (nread < 0) {
		if (nread != UV_ECONNRESET)
			ed_debug("read failed: %s", uv_strerror((int)nread));
		conn_close(c);
		return;
	}
	c->in_len += (size_t)nread;
	process(c);
}

/* The poll handle is closed: the pipe takes the socket over, and the bytes
 * of the first read are framed. */
static void on_poll_close(uv_handle_t *h)
{
	struct ed_conn *c = h->data;
	int rc;

	c->polling = 0;
	if (c->closing) {
		close(c->fd); /* the pipe never owned it */
		c->fd = -1;
		conn_free_if_idle(c);
		return;
	}
	rc = uv_pipe_open(&c->u.pipe, c->fd);
	if (rc) {
		ed_warn("cannot take a connection: %s", uv_strerror(rc));
		close(c->fd);
		c->fd = -1;
		conn_close(c);
		return;
	}
	process(c);
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
	if (c->closing || uv_is_closing((uv_handle_t *)p))
		return;
	if (status < 0) {
		conn_close(c);
		return;
	}
	on_alloc(&c->u.h, READ_CHUNK, &buf);
	if (!buf.base) {
		conn_close(c);
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
		conn_close(c);
		return;
	}
	ed_shm_take_fd(&msg, &c->pass_fd);
	if (n == 0)
		c->eof = 1;
	c->in_len += (size_t)n;
	uv_close((uv_handle_t *)p, on_poll_close);
}

void ed_conn_open(struct ed_worker *w, int fd)
{
	struct ed_conn *c = calloc(1, sizeof(*c));
	uv_loop_t *loop = ed_worker_loop(w);
	int domain = AF_UNIX, rc;
	socklen_t sl = sizeof(domain);

	if (!c) {
		close(fd);
		return;
	}
	c->fd = -1;
	c->pass_fd = -1;
	getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &sl);
	/* big responses leave in fewer, larger writes (the kernel caps it at
	 * net.core.wmem_max) */
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &(int){ SEND_BUFFER_BYTES }, sizeof(int));
	if (domain == AF_UNIX) {
		/* opened on the pipe after the first read (on_poll_close) */
		uv_pipe_init(loop, &c->u.pipe, 0);
		rc = uv_poll_init(loop, &c->poll, fd);
		if (rc == 0) {
			c->fd = fd;
			c->polling = 1;
			c->poll.data = c;
			rc = uv_poll_start(&c->poll, UV_READABLE, on_first_read);
		}
	} else {
		uv_tcp_init(loop, &c->u.tcp);
		rc = uv_tcp_open(&c->u.tcp, fd);
		if (rc == 0)
			uv_tcp_nodelay(&c->u.tcp, 1);
	}
	c->w = w;
	c->u.h.data = c;
	ed_worker_conn_add(w, &c->u.h);
	ed_stat_add(connections, 1);
	ed_stat_add(connections_total, 1);
	if (rc) {
		ed_warn("cannot take a connection: %s", uv_strerror(rc));
		if (!c->polling)
			close(fd); /* else closed with the poll handle */
		conn_close(c);
		return;
	}
	if (ed_worker_stopping(w)) {
		conn_close(c);
		return;
	}
	set_reading(c);
}

void ed_conn_drain(uv_handle_t *h)
{
	struct ed_conn *c = h->data;

	if (c->closing)
		return;
	c->draining = 1;
	process(c);
}

void ed_conn_abort(uv_handle_t *h)
{
	conn_close(h->data);
}
