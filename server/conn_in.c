/* conn_in.c - a connection's input: reading, framing, dispatching each
 * request in order, and taking back the ones that ran on the thread pool. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "conn_int.h"
#include "frame.h"
#include "log.h"
#include "loop.h"

#define READ_CHUNK (64u << 10)
#define KEEP_INBUF (1u << 20)  /* larger idle input buffers are freed */

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

void ed__conn_set_reading(struct ed_conn *c)
{
	/* libuv ignores a start while reading (UV_EALREADY) and a stop while not */
	if (c->state == ED_CONN_OPEN && !ed__conn_paused(c))
		uv_read_start(&c->u.s, ed__conn_alloc, on_read);
	else
		uv_read_stop(&c->u.s);
}

/* A request that ran on the thread pool has its response. */
static void req_done(struct ed_req *req)
{
	struct ed_conn *c = req->owner;

	c->jobs--;
	if (c->state == ED_CONN_CLOSING) {
		ed__conn_free_if_idle(c);
		return;
	}
	ed__conn_charge(c, req);
	ed__conn_process(c);
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
	r->mailbox = ed_worker_mailbox(c->w);
	r->finish = req_done;
	r->progress = ed__conn_send_head;
	r->reserve = ed__conn_reserve;
	r->t_start = uv_hrtime();
	r->shm = c->shm;
	r->shm_size = c->shm_size;
	if (c->fd >= 0)
		r->attach_shm = ed__conn_attach_shm;
	return r;
}

/* Queues r behind every earlier answer; it is charged once answered. */
static void enqueue(struct ed_conn *c, struct ed_req *r)
{
	if (c->tail)
		c->tail->next = r;
	else
		c->head = r;
	c->tail = r;
	c->waiting++;
	if (r->state != ED_REQ_PENDING)
		ed__conn_charge(c, r);
}

/* Answers a framing error (id 0); the connection closes once it is written. */
static void frame_error(struct ed_conn *c, Engram__V1__Status st, const char *msg)
{
	struct ed_req *r = req_new(c);

	ed_dispatch_refuse(r, st, msg);
	enqueue(c, r);
	ed__conn_event(c, ED_CONN_EV_BAD_FRAME);
	ed_debug("closing a connection: %s", msg);
}

/* Dispatches one frame of in[off..]; returns the bytes it took, or 0 when
 * no whole frame is there, a framing error was answered, or the request
 * waits for room (the frame stays, c->want says for how much). */
static size_t take_frame(struct ed_conn *c, size_t off)
{
	uint64_t len = 0;
	size_t hl = 0;
	enum ed_split sp = ed_frame_split(c->in + off, c->in_len - off, ed_cfg.max_frame, &hl, &len);
	struct ed_req *r;

	if (sp == ED_SPLIT_BAD_LENGTH) {
		frame_error(c, ENGRAM__V1__STATUS__BAD_REQUEST,
		            "bad frame length: more than 10 varint bytes; closing");
		return 0;
	}
	if (sp == ED_SPLIT_TOO_LARGE) {
		char msg[160];

		snprintf(msg, sizeof(msg), "frame of %llu bytes is over the limit of %llu (--max-frame); closing",
		         (unsigned long long)len, (unsigned long long)ed_cfg.max_frame);
		frame_error(c, ENGRAM__V1__STATUS__TOO_LARGE, msg);
		return 0;
	}
	if (sp == ED_SPLIT_MORE)
		return 0; /* wait for more bytes */
	if (!ed__conn_may_frame(c))
		return 0; /* the daemon holds all it may: wait for room */
	r = req_new(c);
	if (c->wait_start)
		r->t_start = c->wait_start; /* its frame waited for room */
	ed_dispatch(r, c->in + off + hl, (size_t)len);
	if (r->state == ED_REQ_WAIT) {
		c->wait_start = r->t_start;
		ed_req_free(r); /* it counted nothing */
		return 0;
	}
	c->wait_start = 0;
	c->frames++;
	if (c->pass_fd >= 0) {
		/* only the first frame may take it */
		close(c->pass_fd);
		c->pass_fd = -1;
	}
	if (r->state == ED_REQ_PENDING)
		c->jobs++;
	enqueue(c, r);
	return hl + (size_t)len;
}

void ed__conn_process(struct ed_conn *c)
{
	size_t off = 0, n;

	if (c->state == ED_CONN_FIRST_READ || c->state == ED_CONN_HANDOVER ||
	    c->state == ED_CONN_CLOSING)
		return; /* nothing to frame yet, or any more */
	if (c->want > 0 && ed__conn_room(c))
		c->want = 0; /* try its frame again */
	while ((c->state == ED_CONN_OPEN || c->state == ED_CONN_FINISHING) &&
	       !ed__conn_paused(c) && (n = take_frame(c, off)) > 0)
		off += n;
	if (off) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
	if (c->in_len == 0 && c->in_cap > KEEP_INBUF) {
		free(c->in);
		c->in = NULL;
		c->in_cap = 0;
	}
	ed__conn_flush(c);
	if (c->state == ED_CONN_CLOSING)
		return;
	/* a FINISHING or BROKEN connection closes once everything is answered */
	if (!c->head && c->writes == 0 && ed__conn_event(c, ED_CONN_EV_ANSWERED))
		return;
	ed__conn_set_reading(c);
}

void ed__conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
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
		ed__conn_event(c, ED_CONN_EV_EOF);
		ed__conn_process(c);
		return;
	}
	if (nread < 0) {
		if (nread != UV_ECONNRESET)
			ed_debug("read failed: %s", uv_strerror((int)nread));
		ed__conn_event(c, ED_CONN_EV_CLOSE);
		return;
	}
	c->in_len += (size_t)nread;
	ed__conn_process(c);
}
